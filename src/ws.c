/* ws.c - WebSocket handshake, frame encoding and the wslay receive session.
 *
 * Why wslay only for receiving: wslay copies each queued message into its own
 * buffer and frames it per connection. For broadcast we want one encoded
 * frame shared by every receiver, so data frames are encoded here
 * (ws_msg_new) and written straight to the connection's output queue.
 * wslay still parses and validates incoming frames, reassembles fragments,
 * enforces the message size limit and produces pong and close replies,
 * which reach the output queue through on_write, always as whole frames. */
#include "ws.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

int ws_check_upgrade(const http_request *req, const char **why)
{
    const char *up = http_headers_get(&req->headers, "upgrade");
    if (!up || !str_ieq(up, "websocket")) {
        *why = "Upgrade header must be websocket";
        return 400;
    }
    if (strcmp(req->method, "GET") != 0) {
        *why = "WebSocket upgrade must use GET";
        return 400;
    }
    const char *key = http_headers_get(&req->headers, "sec-websocket-key");
    if (!key || strlen(key) != 24) {
        *why = "missing or malformed Sec-WebSocket-Key";
        return 400;
    }
    const char *ver = http_headers_get(&req->headers, "sec-websocket-version");
    if (!ver || strcmp(ver, "13") != 0) {
        *why = "unsupported Sec-WebSocket-Version (13 is required)";
        return 426;
    }
    return 0;
}

void ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    char in[128];
    size_t klen = strlen(key);
    if (klen > 64) klen = 64;
    memcpy(in, key, klen);
    memcpy(in + klen, guid, sizeof guid - 1);
    SHA1((const unsigned char *)in, klen + sizeof guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

chunk *ws_handshake_response(const http_request *req, const char *node)
{
    char accept[29];
    ws_accept_key(http_headers_get(&req->headers, "sec-websocket-key"), accept);
    buf b;
    buf_init(&b);
    buf_printf(&b,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n",
               accept);
    const char *protos = http_headers_get(&req->headers, "sec-websocket-protocol");
    if (protos && *protos) {
        size_t n = strcspn(protos, ", ");
        if (n && http_header_value_ok(protos, n)) buf_printf(&b, "Sec-WebSocket-Protocol: %.*s\r\n", (int)n, protos);
    }
    if (node) buf_printf(&b, "x-luaparty-node: %s\r\n", node);
    buf_appendstr(&b, "\r\n");
    chunk *c = chunk_from(b.data, b.len);
    buf_free(&b);
    return c;
}

chunk *ws_msg_new(int opcode, const void *payload, size_t len)
{
    enum { ROOM = 10 }; /* the largest header: 2 + 8 bytes of length */
    chunk *c = chunk_new(ROOM + len);
    uint8_t *p = c->data + ROOM;
    if (len) memcpy(p, payload, len);
    size_t hl = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    uint8_t *h = p - hl;
    h[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (hl == 2) {
        h[1] = (uint8_t)len;
    } else if (hl == 4) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    c->off = (uint32_t)(ROOM - hl);
    c->len = hl + len;
    c->payload = ROOM;
    c->opcode = (uint8_t)opcode;
    return c;
}

/* ---- wslay callbacks ---- */

ssize_t ws_recv_from(wslay_event_context_ptr ctx, const uint8_t **in, size_t *in_len, uint8_t *data, size_t len)
{
    if (!*in_len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < *in_len ? len : *in_len;
    memcpy(data, *in, n);
    *in += n;
    *in_len -= n;
    return (ssize_t)n;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *data, size_t len, int flags, void *ud)
{
    ws_session *s = ud;
    return ws_recv_from(ctx, &s->in, &s->in_len, data, len);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    ws_session *s = ud;
    s->ev->on_write(s->ud, data, len);
    return (ssize_t)len;
}

/* Data messages are not buffered by wslay (no_buffering, see unpark): its
 * buffering costs two mallocs, two copies and their frees per message. A
 * message whose one frame arrives in one piece is handed on from wslay's
 * own read buffer (still valid in msg_cb, which wslay calls in the same
 * step); only a message in several pieces (fragments, or a frame split
 * across reads or over wslay's 4 KiB buffer) is gathered in s->parts. wslay
 * still checks each frame (masking, opcodes, UTF-8 of text); lengths, of a
 * frame and of a fragmented message as a whole, are checked from the
 * headers before wslay sees them (track). */
static void frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *ud)
{
    ws_session *s = ud;
    s->in_ctrl = arg->opcode >= 8;
    if (s->in_ctrl) return; /* wslay buffers control frames itself */
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) s->msg_len = 0; /* a new message */
    s->frame_fin = arg->fin;
    s->frame_len = arg->payload_length;
    s->msg_len += arg->payload_length;
}

static void frame_chunk_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *arg,
                           void *ud)
{
    ws_session *s = ud;
    if (s->in_ctrl) return;
    if (s->frame_fin && s->msg_len == s->frame_len && arg->data_length == s->frame_len) {
        s->whole = arg->data; /* the whole message in one piece */
        s->whole_len = arg->data_length;
        s->has_whole = true;
    } else if (arg->data_length) {
        buf_append(&s->parts, arg->data, arg->data_length);
    }
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    ws_session *s = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        if (s->has_whole) {
            s->has_whole = false;
            s->ev->on_message(s->ud, arg->opcode, s->whole, s->whole_len);
        } else {
            s->ev->on_message(s->ud, arg->opcode, (const uint8_t *)s->parts.data, s->parts.len);
            buf_free(&s->parts); /* rare: no memory kept between messages */
        }
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        s->close_code = arg->status_code ? arg->status_code : 1005;
        /* the payload is the 2-byte code, then the reason (for the dev log) */
        if (arg->status_code && arg->msg_length > 2 && !s->close_reason)
            s->close_reason = xstrndup((const char *)arg->msg + 2, arg->msg_length - 2);
    }
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *mask, size_t len, void *ud)
{
    memset(mask, 0, len); /* only used by clients; servers never mask */
    return 0;
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .genmask_callback = genmask_cb,
    .on_msg_recv_callback = msg_cb,
    .on_frame_recv_start_callback = frame_start_cb,
    .on_frame_recv_chunk_callback = frame_chunk_cb,
};

static int unpark(ws_session *s)
{
    if (s->ctx) return 0;
    if (wslay_event_context_server_init(&s->ctx, &callbacks, s) != 0) return -1;
    wslay_event_config_set_max_recv_msg_length(s->ctx, s->max_message);
    wslay_event_config_set_no_buffering(s->ctx, 1); /* see frame_start_cb */
    return 0;
}

int ws_session_init(ws_session *s, size_t max_message, const ws_events *ev, void *ud)
{
    memset(s, 0, sizeof *s);
    s->ev = ev;
    s->ud = ud;
    s->max_message = max_message;
    return 0; /* the wslay context comes with the first byte (unpark) */
}

/* The length of the frame header whose first two bytes are at h (2-14). */
static size_t header_len(const uint8_t *h)
{
    uint8_t l7 = h[1] & 0x7f;
    return 2 + ((h[1] & 0x80) ? 4 : 0) + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
}

/* The payload length a whole frame header at h announces. */
static uint64_t header_payload_len(const uint8_t *h)
{
    uint8_t l7 = h[1] & 0x7f;
    uint64_t plen = l7;
    if (l7 == 126) plen = (uint64_t)h[2] << 8 | h[3];
    if (l7 == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++) plen = plen << 8 | h[2 + i];
    }
    return plen;
}

/* Judges a frame header from its first n bytes (2 <= n <= its length):
 * 0, or the close code that refuses it from the header alone:
 * - 1002 for what wslay's frame layer refuses (a fragmented or over-125-byte
 *   control frame, a length not in its shortest form or with the top bit
 *   set), which it answers with an empty close (the peer sees 1005), and a
 *   close frame with a 1-byte payload, which it would echo;
 * - 1009 for a message announced over max_message: wslay would notice only
 *   once payload arrives, which may be never.
 * wslay decides on a header's first two bytes, then on its extended length,
 * so this must decide no later: it is asked again as each byte comes.
 * Once the header is whole and accepted, its payload is to be skipped, and
 * a data frame without FIN leaves a fragmented message in progress. */
static inline int header_seen(ws_session *s, const uint8_t *h, size_t n)
{
    uint8_t l7 = h[1] & 0x7f;
    int opcode = h[0] & 0x0f;
    bool fin = h[0] & 0x80;
    if (opcode >= 8 && (!fin || l7 > 125 || (opcode == WS_CLOSE && l7 == 1))) return 1002;
    size_t ext = l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    if (n < 2 + ext) return 0;
    uint64_t plen = l7;
    if (ext) {
        plen = header_payload_len(h);
        if (plen < 126 || (ext == 8 && (plen <= 0xffff || plen >> 63))) return 1002;
    }
    bool whole = n == header_len(h);
    if (opcode < 8) { /* data or continuation; control frames never fragment */
        uint64_t msg = (opcode == 0 && s->in_fragments ? s->announced : 0) + plen;
        if (msg > s->max_message) return 1009;
        if (whole) {
            s->announced = msg;
            s->in_fragments = !fin;
        }
    }
    if (whole) s->payload_left = plen;
    return 0;
}

/* Follows frame boundaries in the bytes wslay is about to read: only the
 * headers are looked at; wslay still does the rest of the parsing and
 * checking. Returns how many bytes wslay may read: all of them, or those
 * before a header header_seen refused (*code says why). */
static size_t track(ws_session *s, const uint8_t *p, size_t len, int *code)
{
    const uint8_t *start = p;
    while (len > 0) {
        if (s->payload_left) {
            uint64_t n = s->payload_left < len ? s->payload_left : len;
            s->payload_left -= n;
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (s->hdr_len == 0 && len >= 2 && len >= header_len(p)) {
            /* the usual case: the whole header is in this read */
            size_t n = header_len(p);
            if ((*code = header_seen(s, p, n))) return (size_t)(p - start);
            p += n;
            len -= n;
            continue;
        }
        /* a header split across reads: gathered byte by byte; wslay gets
         * each byte only once the header so far is accepted */
        s->hdr[s->hdr_len++] = *p++;
        len--;
        if (s->hdr_len < 2) continue;
        if ((*code = header_seen(s, s->hdr, s->hdr_len))) return (size_t)(p - 1 - start);
        if (s->hdr_len == header_len(s->hdr)) s->hdr_len = 0;
    }
    return (size_t)(p - start);
}

void ws_session_park(ws_session *s)
{
    if (!s->ctx || s->hdr_len || s->payload_left || s->in_fragments || s->close_code || s->protocol_error ||
        s->refused)
        return;
    if (wslay_event_get_close_sent(s->ctx) || wslay_event_get_close_received(s->ctx)) return;
    if (wslay_event_get_queued_msg_count(s->ctx)) return;
    wslay_event_context_free(s->ctx);
    s->ctx = NULL;
}

void ws_session_free(ws_session *s)
{
    if (s->ctx) wslay_event_context_free(s->ctx);
    s->ctx = NULL;
    buf_free(&s->parts);
    free(s->close_reason);
    s->close_reason = NULL;
}

int ws_session_feed(ws_session *s, const uint8_t *data, size_t len)
{
    if (unpark(s) != 0) return -1;
    int refuse = 0;
    /* after a refused header nothing the peer sends is read */
    s->in = data;
    s->in_len = s->refused ? 0 : track(s, data, len, &refuse);
    int rv = wslay_event_recv(s->ctx);
    s->in_len = 0;
    if (rv != 0) s->protocol_error = true;
    if (refuse) {
        /* the frames before it were wslay's to judge: its close, if it
         * queued one, stands */
        s->refused = true;
        wslay_event_queue_close(s->ctx, (uint16_t)refuse, NULL, 0);
        wslay_event_shutdown_read(s->ctx);
        rv = -1;
    }
    /* wslay queues pongs and close replies (and a 1002/1007 close on a bad
     * frame); hand them to the output now. */
    if (wslay_event_send(s->ctx) != 0) return -1;
    int sent = wslay_event_get_status_code_sent(s->ctx);
    if (sent == WSLAY_CODE_PROTOCOL_ERROR || sent == WSLAY_CODE_MESSAGE_TOO_BIG ||
        sent == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
        s->protocol_error = true;
    return rv == 0 ? 0 : -1;
}

void ws_session_close(ws_session *s, int code, const char *reason, size_t len)
{
    if (unpark(s) != 0 || wslay_event_get_close_sent(s->ctx)) return;
    if (len > 123) len = 123; /* a control frame payload is at most 125 bytes */
    /* the reason must be UTF-8 (a client fails the socket with 1006 on one
     * that is not): an error message put there may hold any bytes, and the
     * cut above may fall inside a character */
    len = utf8_valid_prefix((const uint8_t *)reason, len);
    wslay_event_queue_close(s->ctx, (uint16_t)code, (const uint8_t *)reason, len);
    wslay_event_send(s->ctx);
}

bool ws_session_finished(const ws_session *s)
{
    return s->ctx && !wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx);
}

bool ws_session_close_sent(const ws_session *s) { return s->ctx && wslay_event_get_close_sent(s->ctx) != 0; }

void ws_session_ping(ws_session *s)
{
    if (unpark(s) != 0) return;
    struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"lp", 2};
    wslay_event_queue_msg(s->ctx, &m);
    wslay_event_send(s->ctx);
}

const char *ws_close_reason(int code)
{
    switch (code) {
    case 1002: return "protocol error";
    case 1007: return "invalid UTF-8 in a text message";
    case 1009: return "message too big";
    default: return "protocol error";
    }
}
