/* wsclient.c - the outbound WebSocket client (see wsclient.h).
 *
 * dial.c connects (and speaks TLS); this file does the opening handshake
 * (checking Sec-WebSocket-Accept) and frames with wslay in client mode
 * (masked frames, random masks). Messages sent before the handshake
 * finished are queued and sent right after it. */
#include "wsclient.h"
#include "util.h"
#include "ws.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#define MAX_HANDSHAKE 16384

struct wsclient {
    const wsclient_events *ev;
    void *ud;
    dial *d;
    url u;
    char key[25];
    char *extra_headers;          /* "name: value\r\n"... from the caller's headers */
    buf hs;                       /* the handshake response, until its blank line */
    bool open;
    wslay_event_context_ptr ws;
    const uint8_t *in;
    size_t in_len;
    chunk **queued;               /* sent before the handshake finished */
    size_t nqueued;
    size_t max_message;
    char *host_header;            /* a Host given in the headers */
};

/* Ends the network side (after writing what is queued, e.g. our close
 * frame): no dial callback after this. */
static void shut(wsclient *w, int code, const char *reason)
{
    if (w->d) dial_end(w->d);
    w->d = NULL;
    w->ev->on_close(w, code, reason);
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *data, size_t len, int flags, void *ud)
{
    wsclient *w = ud;
    return ws_recv_from(ctx, &w->in, &w->in_len, data, len);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    wsclient *w = ud;
    if (!w->d || dial_send(w->d, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *mask, size_t len, void *ud)
{
    return RAND_bytes(mask, (int)len) == 1 ? 0 : -1;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    wsclient *w = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        chunk *msg = ws_msg_new(arg->opcode, arg->msg, arg->msg_length);
        w->ev->on_message(w, msg);
        chunk_unref(msg);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* the payload is the 2-byte code, then the reason */
        char reason[124] = "";
        if (arg->status_code && arg->msg_length > 2) {
            size_t n = arg->msg_length - 2 < sizeof reason - 1 ? arg->msg_length - 2 : sizeof reason - 1;
            memcpy(reason, arg->msg + 2, n);
            reason[n] = 0;
        }
        w->ev->on_close(w, arg->status_code ? arg->status_code : 1005, reason[0] ? reason : NULL);
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .genmask_callback = genmask_cb,
    .on_msg_recv_callback = msg_cb,
};

static void queue(wsclient *w, chunk *msg)
{
    struct wslay_event_msg m = {msg->opcode, chunk_payload(msg), chunk_payload_len(msg)};
    wslay_event_queue_msg(w->ws, &m);
}

/* After each exchange: send what wslay queued; finish when both sides closed. */
static void pump(wsclient *w)
{
    if (!w->ws) return;
    wslay_event_send(w->ws);
    if (!wslay_event_want_read(w->ws) && !wslay_event_want_write(w->ws)) shut(w, 1000, NULL);
}

/* ---- handshake ---- */

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') return false;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t') v++;
    *value = v;
    return true;
}

/* Checks the 101 response; returns NULL or why it is not one. */
static const char *check_handshake(wsclient *w, const char *resp, size_t len)
{
    if (len < 12 || strncmp(resp, "HTTP/1.1 101", 12) != 0) return "the server did not switch protocols";
    char accept[29];
    ws_accept_key(w->key, accept);
    for (const char *line = strstr(resp, "\r\n") + 2; line < resp + len;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol || eol == line) break;
        const char *v;
        if (header_is(line, (size_t)(eol - line), "sec-websocket-accept", &v))
            return (size_t)(eol - v) == 28 && memcmp(v, accept, 28) == 0 ? NULL : "wrong Sec-WebSocket-Accept";
        line = eol + 2;
    }
    return "no Sec-WebSocket-Accept in the response";
}

static void on_open(dial *d)
{
    wsclient *w = dial_data(d);
    uint8_t raw[16];
    RAND_bytes(raw, sizeof raw);
    EVP_EncodeBlock((unsigned char *)w->key, raw, sizeof raw);
    buf b;
    buf_init(&b);
    bool v6 = strchr(w->u.host, ':') != NULL;
    buf_printf(&b, "GET %s HTTP/1.1\r\n", w->u.target);
    if (w->host_header) buf_printf(&b, "host: %s\r\n", w->host_header);
    else buf_printf(&b, "host: %s%s%s:%d\r\n", v6 ? "[" : "", w->u.host, v6 ? "]" : "", w->u.port);
    buf_printf(&b, "upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: %s\r\n"
                   "sec-websocket-version: 13\r\nuser-agent: luaparty/" LUAPARTY_VERSION "\r\n%s\r\n",
               w->key, w->extra_headers ? w->extra_headers : "");
    dial_send(d, b.data, b.len);
    buf_free(&b);
}

static void feed_frames(wsclient *w, const char *data, size_t len)
{
    w->in = (const uint8_t *)data;
    w->in_len = len;
    if (wslay_event_recv(w->ws) != 0) {
        shut(w, 1002, "protocol error from the server");
        return;
    }
    wslay_event_send(w->ws); /* wslay sets the code it sent only once it is sent */
    int sent = wslay_event_get_status_code_sent(w->ws);
    if (sent == 1009 || sent == 1002 || sent == 1007) { /* it refused a frame and closed */
        shut(w, sent, ws_close_reason(sent));
        return;
    }
    pump(w);
}

static void on_data(dial *d, const char *data, size_t len)
{
    wsclient *w = dial_data(d);
    if (w->open) {
        feed_frames(w, data, len);
        return;
    }
    buf_append(&w->hs, data, len);
    char *end = memmem(w->hs.data, w->hs.len, "\r\n\r\n", 4);
    if (!end) {
        if (w->hs.len > MAX_HANDSHAKE) shut(w, 1002, "handshake response too large");
        return;
    }
    size_t hlen = (size_t)(end + 4 - w->hs.data);
    const char *why = check_handshake(w, w->hs.data, hlen);
    if (why) {
        shut(w, 1006, why);
        return;
    }
    if (wslay_event_context_client_init(&w->ws, &callbacks, w) != 0) {
        shut(w, 1006, "out of memory");
        return;
    }
    wslay_event_config_set_max_recv_msg_length(w->ws, w->max_message);
    w->open = true;
    for (size_t i = 0; i < w->nqueued; i++) {
        queue(w, w->queued[i]);
        chunk_unref(w->queued[i]);
    }
    w->nqueued = 0;
    size_t rest = w->hs.len - hlen;
    if (rest) feed_frames(w, w->hs.data + hlen, rest); /* frames right behind the 101 */
    else pump(w);
}

static void on_eof(dial *d)
{
    wsclient *w = dial_data(d);
    shut(w, 1006, "the server closed the connection");
}

static void on_error(dial *d, const char *msg)
{
    wsclient *w = dial_data(d);
    w->d = NULL; /* it closes itself */
    w->ev->on_error(w, msg);
}

static const dial_events events = {on_open, on_data, on_eof, on_error};

/* ---- the client as its user sees it ---- */

wsclient *wsclient_new(uv_loop_t *loop, url *u, const http_headers *headers, size_t max_message,
                       const wsclient_events *ev, void *ud)
{
    wsclient *w = xcalloc(1, sizeof *w);
    w->ev = ev;
    w->ud = ud;
    w->u = *u;
    w->max_message = max_message;
    buf_init(&w->hs);
    if (headers->n) {
        buf eh;
        buf_init(&eh);
        for (size_t i = 0; i < headers->n; i++) {
            const http_header *h = &headers->items[i];
            if (!strcmp(h->name, "host")) w->host_header = xstrdup(h->value);
            else buf_printf(&eh, "%s: %s\r\n", h->name, h->value);
        }
        w->extra_headers = buf_steal(&eh);
    }
    w->d = dial_new(loop, w->u.host, w->u.port, w->u.tls, &events, w); /* may fail at once (on_error) */
    return w;
}

void wsclient_send(wsclient *w, chunk *msg)
{
    if (!w->open) {
        w->queued = xrealloc(w->queued, (w->nqueued + 1) * sizeof *w->queued);
        w->queued[w->nqueued++] = chunk_ref(msg);
        return;
    }
    queue(w, msg);
    pump(w);
}

void wsclient_close(wsclient *w, int code, const char *reason, size_t len)
{
    if (!w->open) { /* as in browsers: closing before the handshake aborts it */
        for (size_t i = 0; i < w->nqueued; i++) chunk_unref(w->queued[i]);
        w->nqueued = 0;
        shut(w, code, "closed before the handshake finished");
        return;
    }
    wslay_event_queue_close(w->ws, (uint16_t)code, (const uint8_t *)reason, len);
    pump(w); /* the server's close reply ends it (pump) */
}

void wsclient_free(wsclient *w)
{
    if (w->d) dial_close(w->d); /* no callback after this: safe to free now */
    for (size_t i = 0; i < w->nqueued; i++) chunk_unref(w->queued[i]);
    free(w->queued);
    if (w->ws) wslay_event_context_free(w->ws);
    buf_free(&w->hs);
    free(w->u.target);
    free(w->extra_headers);
    free(w->host_header);
    free(w);
}

void *wsclient_data(const wsclient *w) { return w->ud; }
const url *wsclient_url(const wsclient *w) { return &w->u; }
