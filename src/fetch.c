/* fetch.c - the outbound HTTP and HTTPS client (see fetch.h).
 *
 * dial.c resolves the name (never blocking the loop), connects and speaks
 * TLS when the URL is https; here we write the request, parse the response
 * with llhttp in response mode, and hand (status, headers, body) or an
 * error to the caller's callback. Connections are kept per origin and
 * reused (keep-alive). GET/HEAD follow up to 5 redirects. Every call has a
 * deadline and a response size limit. An optional allow-list (partykit.json
 * "luaparty": {"outbound": [...]}) refuses other hosts. */
#include "fetch.h"
#include "util.h"

#include <ctype.h>
#include <stdarg.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REDIRECTS 5
#define POOL_IDLE_MS 30000


typedef struct out_conn out_conn;
typedef struct call call;

/* One fetch in flight, until its callback ran. */
struct call {
    uv_loop_t *loop;
    const struct config *cfg;
    fetch_done_fn done;
    void *ud;
    char *method;
    http_headers headers;
    buf body;
    url u;
    int redirects;
    size_t max_bytes;
    bool forward;
    uv_timer_t *timer;      /* freed by its close callback */
    out_conn *conn;
    fetch_result res;
};

/* A connection to one origin; idle (c == NULL) ones wait for reuse. */
struct out_conn {
    dial *d;
    char origin[300];
    bool sent, keep_alive, complete, too_large;
    llhttp_t parser;
    header_asm head;        /* the response header being read */
    call *c;                /* the call using it, NULL while idle */
    uint64_t idle_since;
    out_conn *prev, *next;  /* every live connection */
};

static _Thread_local out_conn *conns; /* each worker keeps its own pool */

static void call_fail(call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_close(out_conn *oc);
static void start_call(call *c);

/* ---- completing a call ---- */

static void free_timer(uv_handle_t *h) { free(h); }

/* Nothing refers to c any more (its connection went back to the pool or
 * was closed): the result goes to the callback, the rest away. */
static void call_finish(call *c)
{
    uv_timer_stop(c->timer);
    uv_close((uv_handle_t *)c->timer, free_timer);
    c->done(c->ud, &c->res);
    free(c->method);
    http_headers_free(&c->headers);
    buf_free(&c->body);
    free(c->u.target);
    free(c);
}

void fetch_result_free(fetch_result *res)
{
    free(res->error);
    http_headers_free(&res->headers);
    buf_free(&res->body);
}

static void call_fail(call *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(c->res.error);
    c->res.error = xstrdup(msg);
    if (c->conn) {
        out_conn *oc = c->conn;
        c->conn = NULL;
        conn_close(oc); /* a failed exchange leaves the connection in an unknown state */
    }
    call_finish(c);
}

static void on_deadline(uv_timer_t *t)
{
    call *c = t->data;
    call_fail(c, "fetch %s://%s:%d%s timed out", c->u.tls ? "https" : "http", c->u.host, c->u.port, c->u.target);
}

static void send_request(out_conn *oc)
{
    call *c = oc->c;
    buf b;
    buf_init(&b);
    buf_reserve(&b, 256 + c->body.len);
    http_append_request_line(&b, c->method, c->u.target);
    if (!http_headers_get(&c->headers, "host")) {
        bool v6 = strchr(c->u.host, ':') != NULL;
        buf_appendstr(&b, v6 ? "host: [" : "host: ");
        buf_appendstr(&b, c->u.host);
        if (v6) buf_append(&b, "]", 1);
        if (c->u.port != (c->u.tls ? 443 : 80)) {
            char digits[24];
            buf_append(&b, ":", 1);
            buf_append(&b, digits, (size_t)(put_uint(digits, (uint64_t)c->u.port) - digits));
        }
        buf_append(&b, "\r\n", 2);
    }
    if (!http_headers_get(&c->headers, "user-agent")) buf_appendstr(&b, "user-agent: luaparty/" LUAPARTY_VERSION "\r\n");
    for (size_t i = 0; i < c->headers.n; i++) {
        const http_header *h = &c->headers.items[i];
        if (!strcmp(h->name, "content-length") || !strcmp(h->name, "connection") ||
            !strcmp(h->name, "transfer-encoding"))
            continue;
        http_append_header(&b, h->name, h->value);
    }
    if (c->body.len || strcmp(c->method, "GET") != 0) http_append_content_length(&b, c->body.len);
    buf_appendstr(&b, "connection: keep-alive\r\n\r\n");
    buf_append(&b, c->body.data, c->body.len);
    oc->sent = true;
    dial_send(oc->d, b.data, b.len); /* a failure arrives through on_error */
    buf_free(&b);
}

/* ---- response parsing ---- */

static out_conn *conn_of(llhttp_t *p) { return p->data; }

/* Headers go to the call; with no call left (it gave up) they are dropped. */
static http_headers *headers_of(out_conn *oc) { return oc->c ? &oc->c->res.headers : NULL; }

static int r_field(llhttp_t *p, const char *at, size_t n)
{
    out_conn *oc = conn_of(p);
    header_asm_field(&oc->head, headers_of(oc), at, n);
    return 0;
}

static int r_value(llhttp_t *p, const char *at, size_t n)
{
    header_asm_value(&conn_of(p)->head, at, n);
    return 0;
}

static int r_headers_complete(llhttp_t *p)
{
    out_conn *oc = conn_of(p);
    header_asm_flush(&oc->head, headers_of(oc));
    call *c = oc->c;
    if (!c) return HPE_USER;
    c->res.status = p->status_code;
    if (c->res.status >= 100 && c->res.status < 200) return 0; /* interim: the real response follows */
    if (strcmp(c->method, "HEAD") == 0) return 1;      /* 1: no body follows */
    if (p->content_length != UINT64_MAX && p->content_length > c->max_bytes) {
        oc->too_large = true;
        return HPE_USER;
    }
    return 0;
}

static int r_body(llhttp_t *p, const char *at, size_t n)
{
    out_conn *oc = conn_of(p);
    call *c = oc->c;
    if (!c) return HPE_USER;
    if (c->res.body.len + n > c->max_bytes) {
        oc->too_large = true;
        return HPE_USER;
    }
    buf_append(&c->res.body, at, n);
    return 0;
}

static void response_done(out_conn *oc);

static int r_complete(llhttp_t *p)
{
    out_conn *oc = conn_of(p);
    if (oc->c && oc->c->res.status >= 100 && oc->c->res.status < 200) { /* 103 Early Hints etc.: skip it */
        http_headers_free(&oc->c->res.headers);
        oc->c->res.status = 0;
        return 0;
    }
    oc->keep_alive = llhttp_should_keep_alive(p);
    oc->complete = true; /* handled once llhttp_execute returned (feed_plain) */
    return HPE_PAUSED;
}

static const llhttp_settings_t response_settings = {
    .on_header_field = r_field,
    .on_header_value = r_value,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_complete,
};

/* ---- pool ---- */

static void conn_close(out_conn *oc)
{
    if (oc->prev) oc->prev->next = oc->next;
    else conns = oc->next;
    if (oc->next) oc->next->prev = oc->prev;
    if (oc->d) dial_close(oc->d); /* no callback comes after this */
    header_asm_free(&oc->head);
    free(oc);
}

/* An idle keep-alive connection to origin, if one is left; stale ones go. */
static out_conn *pool_take(const char *origin, uint64_t now)
{
    for (out_conn *oc = conns, *next; oc; oc = next) {
        next = oc->next;
        if (oc->c || !dial_open(oc->d)) continue;
        if (now - oc->idle_since > POOL_IDLE_MS) conn_close(oc);
        else if (strcmp(oc->origin, origin) == 0) return oc;
    }
    return NULL;
}

/* The absolute URL a Location header names, relative to the current one
 * (RFC 3986 section 5.2, enough for what servers send). Caller frees. */
static char *resolve_location(const url *base, const char *loc)
{
    buf b;
    buf_init(&b);
    size_t slen = 0; /* an absolute URL starts with scheme "://" (RFC 3986 3.1) */
    while (loc[slen] && (isalnum((unsigned char)loc[slen]) || strchr("+-.", loc[slen]))) slen++;
    if (slen && isalpha((unsigned char)loc[0]) && strncmp(loc + slen, "://", 3) == 0) {
        buf_appendstr(&b, loc);
        return buf_steal(&b);
    }
    const char *scheme = base->tls ? "https" : "http";
    if (loc[0] == '/' && loc[1] == '/') {
        buf_printf(&b, "%s:%s", scheme, loc);
        return buf_steal(&b);
    }
    bool v6 = strchr(base->host, ':') != NULL;
    buf_printf(&b, "%s://%s%s%s:%d", scheme, v6 ? "[" : "", base->host, v6 ? "]" : "", base->port);
    size_t origin_len = b.len;
    if (loc[0] == '/') {
        buf_appendstr(&b, loc);
        return buf_steal(&b);
    }
    if (loc[0] == '?') { /* same path, new query */
        buf_append(&b, base->target, strcspn(base->target, "?"));
        buf_appendstr(&b, loc);
        return buf_steal(&b);
    }
    /* the base path up to its last '/', then the reference, then dot segments */
    size_t plen = strcspn(base->target, "?");
    while (plen > 0 && base->target[plen - 1] != '/') plen--;
    buf_append(&b, base->target, plen ? plen : 1);
    if (!plen) b.data[b.len - 1] = '/';
    const char *q = strchr(loc, '?');
    size_t seg_end = q ? (size_t)(q - loc) : strlen(loc);
    for (const char *p = loc; p < loc + seg_end;) {
        size_t n = strcspn(p, "/?");
        if (p + n > loc + seg_end) n = (size_t)(loc + seg_end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (b.len > origin_len + 1) { /* drop the last segment */
                b.len--;
                while (b.len > origin_len + 1 && b.data[b.len - 1] != '/') b.len--;
            }
        } else if (!(n == 1 && p[0] == '.')) {
            buf_append(&b, p, n);
            if (p[n] == '/') buf_append(&b, "/", 1);
        }
        p += n + (p[n] == '/');
    }
    if (q) buf_appendstr(&b, q);
    return buf_steal(&b);
}

static void response_done(out_conn *oc)
{
    call *c = oc->c;
    oc->c = NULL;
    if (c) c->conn = NULL;
    if (oc->keep_alive) {
        /* back to the pool; a fresh parser state for the next exchange */
        llhttp_init(&oc->parser, HTTP_RESPONSE, &response_settings);
        oc->parser.data = oc;
        oc->complete = false;
        oc->sent = false;
        oc->idle_since = uv_now(c->loop);
    } else {
        conn_close(oc);
    }
    if (!c) return;
    /* redirects: GET and HEAD only */
    const char *loc = http_headers_get(&c->res.headers, "location");
    int status = c->res.status;
    bool redirect = !c->forward && (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) && loc &&
                    (!strcmp(c->method, "GET") || !strcmp(c->method, "HEAD"));
    if (redirect && c->redirects < MAX_REDIRECTS) {
        url next;
        const char *why = NULL;
        char *abs = resolve_location(&c->u, loc);
        int bad = dial_parse_url(abs, &next, &why);
        free(abs);
        if (bad || next.ws) {
            free(next.target);
            call_fail(c, "bad redirect location '%s': %s", loc, why ? why : "not an http URL");
            return;
        }
        c->redirects++;
        free(c->u.target);
        c->u = next;
        http_headers_free(&c->res.headers);
        c->res.body.len = 0;
        start_call(c);
        return;
    }
    if (redirect) {
        call_fail(c, "too many redirects (more than %d)", MAX_REDIRECTS);
        return;
    }
    call_finish(c);
}

/* ---- connection input (dial events) ---- */

static void on_data(dial *d, const char *data, size_t len)
{
    out_conn *oc = dial_data(d);
    if (!oc->c) { /* bytes on an idle connection: not HTTP we expect */
        conn_close(oc);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&oc->parser, data, len);
    if (oc->complete) {
        response_done(oc); /* outside llhttp's callbacks: it may reuse the parser */
        return;
    }
    if (e == HPE_OK) return;
    call *c = oc->c;
    if (oc->too_large) call_fail(c, "response from %s is larger than %zu bytes", c->u.host, c->max_bytes);
    else call_fail(c, "bad HTTP response from %s: %s", c->u.host, llhttp_errno_name(e));
}

static void on_eof(dial *d)
{
    out_conn *oc = dial_data(d);
    call *c = oc->c;
    if (c && oc->sent && c->res.status) {
        llhttp_finish(&oc->parser); /* a body that ends at EOF completes here */
        if (oc->complete) {
            oc->keep_alive = false;
            response_done(oc);
            return;
        }
    }
    if (c) call_fail(c, "%s:%d closed the connection before the response was complete", c->u.host, c->u.port);
    else conn_close(oc);
}

static void on_error(dial *d, const char *msg)
{
    out_conn *oc = dial_data(d);
    oc->d = NULL; /* the dial closes itself */
    if (oc->c) call_fail(oc->c, "%s", msg); /* closes oc */
    else conn_close(oc);
}

static void on_open(dial *d)
{
    out_conn *oc = dial_data(d);
    if (oc->c) send_request(oc);
}

static const dial_events conn_events = {on_open, on_data, on_eof, on_error};

static void conn_new(uv_loop_t *loop, const char *origin, call *c)
{
    out_conn *oc = xcalloc(1, sizeof *oc);
    str_copy(oc->origin, sizeof oc->origin, origin);
    llhttp_init(&oc->parser, HTTP_RESPONSE, &response_settings);
    oc->parser.data = oc;
    header_asm_init(&oc->head);
    oc->c = c;
    c->conn = oc;
    oc->next = conns;
    if (conns) conns->prev = oc;
    conns = oc;
    oc->d = dial_new(loop, c->u.host, c->u.port, c->u.tls, &conn_events, oc); /* may fail at once */
}

static void start_call(call *c)
{
    uv_loop_t *loop = c->loop;
    if (!c->forward && !dial_allowed(c->cfg, c->u.host)) {
        call_fail(c, "fetch to %s refused: the host is not in luaparty.outbound of partykit.json", c->u.host);
        return;
    }
    /* "scheme://host:port", the pool's key (built without printf: once per
     * fetch, and every request forwarded between nodes is one) */
    char origin[300], digits[24];
    const char *scheme = c->u.tls ? "https://" : "http://";
    size_t hl = strlen(c->u.host), sl = strlen(scheme), dl = (size_t)(put_uint(digits, (uint64_t)c->u.port) - digits);
    if (sl + hl + 1 + dl >= sizeof origin) hl = sizeof origin - sl - dl - 2; /* host names are < 256 bytes */
    memcpy(origin, scheme, sl);
    memcpy(origin + sl, c->u.host, hl);
    origin[sl + hl] = ':';
    memcpy(origin + sl + hl + 1, digits, dl);
    origin[sl + hl + 1 + dl] = 0;
    out_conn *oc = pool_take(origin, uv_now(loop));
    if (oc) {
        oc->c = c;
        c->conn = oc;
        send_request(oc);
        return;
    }
    conn_new(loop, origin, c);
}

void fetch_start(uv_loop_t *loop, const struct config *cfg, fetch_request *req, fetch_done_fn done, void *ud)
{
    call *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->cfg = cfg;
    c->done = done;
    c->ud = ud;
    c->u = req->u;
    c->headers = req->headers;
    c->method = xstrdup(req->method);
    buf_init(&c->body);
    buf_init(&c->res.body);
    if (req->body) buf_append(&c->body, req->body, req->body_len);
    c->max_bytes = req->max_bytes;
    c->forward = req->forward;
    c->timer = xmalloc(sizeof *c->timer);
    uv_timer_init(loop, c->timer);
    c->timer->data = c;
    uv_timer_start(c->timer, on_deadline, req->timeout_ms, 0);
    start_call(c); /* may finish c at once */
}

void fetch_shutdown(void)
{
    while (conns) {
        out_conn *oc = conns;
        if (oc->c) call_fail(oc->c, "the server is shutting down"); /* closes oc */
        else conn_close(oc);
    }
}
