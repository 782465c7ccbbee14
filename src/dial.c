/* dial.c - outbound connections (see dial.h).
 *
 * Every error is reported once, through on_error, with a message a party
 * author can act on: "could not resolve host X: ...", "connect to H:P
 * failed: connection refused", "TLS with H failed: certificate verify
 * failed: hostname mismatch". After on_error or dial_close no callback
 * runs again. */
#include "dial.h"
#include "buf.h"
#include "tls.h"
#include "util.h"
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dial {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    const dial_events *ev;
    void *ud;
    char host[256];
    int port;
    tls *tls;
    buf pending;     /* ciphertext/plaintext waiting for the write in flight */
    buf wbuf;        /* bytes of the write in flight */
    bool writing, open, closed, resolving, ending;
};

static void fail(dial *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void on_closed(uv_handle_t *h)
{
    dial *d = h->data;
    tls_free(d->tls);
    buf_free(&d->pending);
    buf_free(&d->wbuf);
    free(d);
}

void dial_close(dial *d)
{
    if (d->closed) return;
    d->closed = true;
    if (d->resolving) {
        uv_cancel((uv_req_t *)&d->gai); /* on_resolved sees closed and finishes the close */
        return;
    }
    uv_close((uv_handle_t *)&d->tcp, on_closed);
}

static void fail(dial *d, const char *fmt, ...)
{
    if (d->closed) return;
    if (d->ending) { /* nobody listens any more */
        dial_close(d);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const dial_events *ev = d->ev;
    void *ud = d->ud;
    dial_close(d);
    d->ud = ud;
    ev->on_error(d, msg);
}

static void flush(dial *d);

void dial_end(dial *d)
{
    if (d->closed || d->ending) return;
    d->ending = true; /* no callbacks from now on */
    if (!d->writing && !d->pending.len) dial_close(d);
}

static void on_written(uv_write_t *req, int status)
{
    dial *d = req->data;
    d->writing = false;
    d->wbuf.len = 0;
    if (d->closed) return;
    if (d->ending) {
        if (status < 0 || !d->pending.len) dial_close(d);
        else flush(d);
        return;
    }
    if (status < 0) {
        fail(d, "writing to %s:%d failed: %s", d->host, d->port, uv_strerror(status));
        return;
    }
    flush(d);
}

static void flush(dial *d)
{
    if (d->writing || !d->pending.len || d->closed) return;
    buf t = d->wbuf;
    d->wbuf = d->pending;
    d->pending = t;
    d->pending.len = 0;
    uv_buf_t b = uv_buf_init(d->wbuf.data, (unsigned)d->wbuf.len);
    d->wreq.data = d;
    if (uv_write(&d->wreq, (uv_stream_t *)&d->tcp, &b, 1, on_written) == 0) d->writing = true;
}

int dial_send(dial *d, const void *data, size_t len)
{
    if (d->closed) return -1;
    if (d->tls) {
        if (tls_write(d->tls, data, len, &d->pending) != TLS_OK) {
            fail(d, "TLS with %s failed: %s", d->host, tls_error(d->tls));
            return -1;
        }
    } else {
        buf_append(&d->pending, data, len);
    }
    flush(d);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static _Thread_local char slab[65536]; /* one per worker thread: each read is consumed at once */
    b->base = slab;
    b->len = sizeof slab;
}

static void opened(dial *d)
{
    d->open = true;
    d->ev->on_open(d);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    dial *d = s->data;
    if (n == 0 || d->closed) return;
    if (d->ending) {
        if (n < 0) dial_close(d);
        return;
    }
    if (n < 0) {
        if (n == UV_EOF && d->open) {
            d->ev->on_eof(d);
            return;
        }
        fail(d, "%s:%d closed the connection%s", d->host, d->port, d->open ? "" : " during the TLS handshake");
        return;
    }
    if (!d->tls) {
        d->ev->on_data(d, b->base, (size_t)n);
        return;
    }
    buf plain;
    buf_init(&plain);
    int rc = tls_read(d->tls, b->base, (size_t)n, &plain, &d->pending);
    flush(d);
    if (rc == TLS_ERR) {
        fail(d, "TLS with %s failed: %s", d->host, tls_error(d->tls));
    } else {
        if (!d->open && tls_ready(d->tls)) opened(d);
        if (plain.len && !d->closed) d->ev->on_data(d, plain.data, plain.len);
        /* the data that came with the peer's close_notify is delivered first */
        if (rc == TLS_CLOSED && !d->closed) d->ev->on_eof(d);
    }
    buf_free(&plain);
}

static void on_connect(uv_connect_t *req, int status)
{
    dial *d = req->data;
    if (d->closed) return;
    if (status < 0) {
        fail(d, "connect to %s:%d failed: %s", d->host, d->port, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&d->tcp, 1);
    uv_read_start((uv_stream_t *)&d->tcp, on_alloc, on_read);
    if (!d->tls) {
        opened(d);
        return;
    }
    if (tls_handshake(d->tls, &d->pending) == TLS_ERR) /* the ClientHello */
        fail(d, "TLS with %s failed: %s", d->host, tls_error(d->tls));
    flush(d);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    dial *d = req->data;
    d->resolving = false;
    if (d->closed) { /* closed (or cancelled) while resolving */
        if (res) uv_freeaddrinfo(res);
        uv_close((uv_handle_t *)&d->tcp, on_closed);
        return;
    }
    if (status < 0 || !res) {
        if (res) uv_freeaddrinfo(res);
        fail(d, "could not resolve host %s: %s", d->host, uv_strerror(status));
        return;
    }
    d->creq.data = d;
    int rc = uv_tcp_connect(&d->creq, &d->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc != 0) fail(d, "connect to %s:%d failed: %s", d->host, d->port, uv_strerror(rc));
}

dial *dial_new(uv_loop_t *loop, const char *host, int port, bool use_tls, const dial_events *ev, void *ud)
{
    dial *d = xcalloc(1, sizeof *d);
    d->ev = ev;
    d->ud = ud;
    snprintf(d->host, sizeof d->host, "%s", host);
    d->port = port;
    buf_init(&d->pending);
    buf_init(&d->wbuf);
    uv_tcp_init(loop, &d->tcp);
    d->tcp.data = d;
    if (use_tls && !(d->tls = tls_client_new(host))) {
        fail(d, "TLS is not available");
        return d;
    }
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    d->gai.data = d;
    d->resolving = true;
    int rc = uv_getaddrinfo(loop, &d->gai, on_resolved, host, ps, &hints);
    if (rc != 0) {
        d->resolving = false;
        fail(d, "could not resolve host %s: %s", host, uv_strerror(rc));
    }
    return d;
}

void *dial_data(const dial *d) { return d->ud; }
bool dial_open(const dial *d) { return d->open && !d->closed; }

/* ---- URLs and the outbound allow-list ---- */

int dial_parse_url(const char *s, url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    static const struct { const char *prefix; bool tls; int port; } schemes[] = {
        {"http://", false, 80}, {"https://", true, 443}, {"ws://", false, 80}, {"wss://", true, 443}};
    size_t k = 0;
    while (k < 4 && strncmp(s, schemes[k].prefix, strlen(schemes[k].prefix)) != 0) k++;
    if (k == 4) {
        *why = "the URL must start with http://, https://, ws:// or wss://";
        return -1;
    }
    s += strlen(schemes[k].prefix);
    u->tls = schemes[k].tls;
    u->ws = k >= 2;
    const char *end = s + strcspn(s, "/?#");
    const char *host = s, *host_end = end;
    if (*s == '[') { /* IPv6 literal */
        host_end = memchr(s, ']', (size_t)(end - s));
        if (!host_end) {
            *why = "bad IPv6 address in URL";
            return -1;
        }
        host = s + 1;
    }
    const char *colon = memchr(host_end, ':', (size_t)(end - host_end));
    if (!colon && *s != '[') colon = memchr(s, ':', (size_t)(end - s)), host_end = colon ? colon : end;
    size_t hl = (size_t)(host_end - host);
    if (!hl || hl >= sizeof u->host) {
        *why = "bad host in URL";
        return -1;
    }
    memcpy(u->host, host, hl);
    u->port = u->tls ? 443 : 80;
    if (colon) {
        char *pe;
        long p = strtol(colon + 1, &pe, 10);
        if (pe != end || p <= 0 || p > 65535) {
            *why = "bad port in URL";
            return -1;
        }
        u->port = (int)p;
    }
    const char *frag = strchr(end, '#');
    size_t tl = frag ? (size_t)(frag - end) : strlen(end);
    buf t;
    buf_init(&t);
    if (tl == 0 || *end != '/') buf_append(&t, "/", 1);
    buf_append(&t, end, tl);
    u->target = buf_steal(&t);
    return 0;
}

bool dial_allowed(const config *cfg, const char *host)
{
    if (!cfg->outbound) return true;
    for (size_t i = 0; i < cfg->noutbound; i++) {
        const char *pat = cfg->outbound[i];
        if (str_ieq(pat, host)) return true;
        if (strncmp(pat, "*.", 2) == 0) {
            size_t hl = strlen(host), pl = strlen(pat + 1);
            if (hl > pl && str_ieq(host + hl - pl, pat + 1)) return true;
        }
    }
    return false;
}
