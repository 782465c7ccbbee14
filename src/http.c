/* http.c - HTTP/1.1 request parsing (llhttp) and response serialization.
 *
 * The parser pauses after every complete request so that pipelined requests
 * are answered strictly in order: the connection feeds the remaining bytes
 * only once the previous response is queued.
 *
 * Framing is strict (RFC 9112), because a proxy in front that frames a
 * request differently than we do could smuggle a second request past it:
 * every llhttp lenient flag is off (llhttp_init clears lenient_flags and
 * nothing here sets one: no lenient headers, chunked length, keep-alive,
 * transfer-encoding or version; test_http.c checks it). llhttp 8 in its
 * default (non-strict) build still accepts three things, refused here with
 * 400 and a close: chunk data not followed by CRLF (check_crlf), obsolete
 * line folding (on_header_value), and HTTP/0.9's "GET /" without a version
 * (on_headers_complete). Its strict build (LLHTTP_STRICT_MODE) would check
 * the CRLF too, but also refuses raw UTF-8 in a target, which browsers
 * never send but other clients do, and still accepts the other two. */
#include "http.h"
#include "util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Headers are added for every request and response: their list and each
 * header's block (name and value together, the value right after the name's
 * NUL) are the thread's spare blocks (thread_cache, util.c) when small, as
 * nearly all are, instead of a malloc and a free each. */
static size_t header_block(const http_header *e) { return (size_t)(e->value - e->name) + strlen(e->value) + 1; }

static void header_free(http_header *e) { thread_cache_put(e->name, header_block(e)); }

void http_headers_add(http_headers *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        http_header *items = thread_cache_take(cap * sizeof *items);
        if (h->n) memcpy(items, h->items, h->n * sizeof *items);
        thread_cache_put(h->items, h->cap * sizeof *items);
        h->items = items;
        h->cap = cap;
    }
    http_header *e = &h->items[h->n++];
    e->name = thread_cache_take(nlen + vlen + 2);
    for (size_t i = 0; i < nlen; i++) e->name[i] = (char)tolower((unsigned char)name[i]);
    e->name[nlen] = '\0';
    e->value = e->name + nlen + 1;
    memcpy(e->value, value, vlen);
    e->value[vlen] = '\0';
}

void http_headers_add_all(http_headers *h, const http_headers *from)
{
    for (size_t i = 0; from && i < from->n; i++) {
        const http_header *e = &from->items[i];
        http_headers_add(h, e->name, strlen(e->name), e->value, strlen(e->value));
    }
}

const char *http_headers_get(const http_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->items[i].name, name) == 0) return h->items[i].value;
    return NULL;
}

size_t http_headers_remove_if(http_headers *h, bool (*drop)(const char *name, const void *arg), const void *arg)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (drop(h->items[i].name, arg)) {
            header_free(&h->items[i]);
            removed++;
        } else {
            h->items[kept++] = h->items[i];
        }
    }
    h->n = kept;
    return removed;
}

static bool has_prefix(const char *name, const void *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

size_t http_headers_remove_prefix(http_headers *h, const char *prefix)
{
    return http_headers_remove_if(h, has_prefix, prefix);
}

void header_asm_init(header_asm *a)
{
    buf_init(&a->field);
    buf_init(&a->value);
    a->in_value = false;
}

void header_asm_free(header_asm *a)
{
    buf_free(&a->field);
    buf_free(&a->value);
}

void header_asm_flush(header_asm *a, http_headers *into)
{
    if (a->field.len && into)
        http_headers_add(into, a->field.data, a->field.len, a->value.data ? a->value.data : "", a->value.len);
    a->field.len = a->value.len = 0;
    a->in_value = false;
}

void header_asm_field(header_asm *a, http_headers *into, const char *at, size_t n)
{
    if (a->in_value) header_asm_flush(a, into);
    buf_append(&a->field, at, n);
}

void header_asm_value(header_asm *a, const char *at, size_t n)
{
    a->in_value = true;
    buf_append(&a->value, at, n);
}

void http_headers_free(http_headers *h)
{
    for (size_t i = 0; i < h->n; i++) header_free(&h->items[i]);
    thread_cache_put(h->items, h->cap * sizeof *h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}

/* Requests, responses and a request's target and host (one of each per
 * HTTP request served) are the thread's spare blocks (thread_cache,
 * util.c): malloc + free cost ~250 instructions more per object. A
 * string's block size is found again from its length. */
static char *spare_strndup(const char *s, size_t n)
{
    char *d = thread_cache_take(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void spare_str_free(char *s)
{
    if (s) thread_cache_put(s, strlen(s) + 1);
}

void http_request_set_host(http_request *r, const char *host, size_t len)
{
    char *old = r->host; /* freed after the copy: host may point into it */
    r->host = spare_strndup(host, len);
    spare_str_free(old);
}

http_request *http_request_new(const char *method, const char *target)
{
    http_request *r = thread_cache_get(sizeof *r);
    /* the parser's (NULL, NULL) are filled in when the head is complete:
     * no default copied per request only to be freed */
    r->method = method ? xstrdup(method) : NULL;
    r->method_owned = method != NULL;
    r->target = target ? spare_strndup(target, strlen(target)) : NULL;
    buf_init(&r->body);
    r->keep_alive = true;
    return r;
}

void http_request_free(http_request *r)
{
    if (!r) return;
    if (r->method_owned) free((char *)r->method);
    spare_str_free(r->target);
    spare_str_free(r->host);
    http_headers_free(&r->headers);
    buf_free(&r->body);
    thread_cache_put(r, sizeof *r);
}

http_request *http_request_clone(const http_request *r)
{
    http_request *c = http_request_new(r->method, r->target);
    if (r->host) http_request_set_host(c, r->host, strlen(r->host));
    http_headers_add_all(&c->headers, &r->headers);
    buf_append(&c->body, r->body.data, r->body.len);
    c->upgrade = r->upgrade;
    c->keep_alive = r->keep_alive;
    return c;
}

char *http_request_url(const http_request *r)
{
    buf b;
    buf_init(&b);
    buf_appendstr(&b, "http://");
    buf_appendstr(&b, http_request_host(r));
    buf_appendstr(&b, r->target);
    return buf_steal(&b);
}

http_response *http_response_new(int status, const char *content_type, const char *body, size_t len)
{
    http_response *r = thread_cache_get(sizeof *r);
    r->status = status;
    buf_init(&r->body);
    if (content_type) http_headers_add(&r->headers, "content-type", 12, content_type, strlen(content_type));
    if (body) buf_append(&r->body, body, len);
    return r;
}

void http_response_free(http_response *r)
{
    if (!r) return;
    http_headers_free(&r->headers);
    buf_free(&r->body);
    thread_cache_put(r, sizeof *r);
}

http_response *http_response_retry(const char *why)
{
    http_response *r = http_response_new(503, "text/plain", why, strlen(why));
    http_headers_add(&r->headers, "retry-after", 11, "1", 1);
    return r;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

bool http_header_value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return false;
    return true;
}

/* We own framing: a party cannot set these and break the stream. */
static bool framing_header(const char *name)
{
    return !strcmp(name, "content-length") || !strcmp(name, "transfer-encoding") || !strcmp(name, "connection");
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

chunk *http_response_serialize(const http_response *r, bool keep_alive, bool head_only)
{
    /* Sized first, then written straight into the chunk: no growing
     * buffer and no second copy, this runs for every response. */
    bool no_body = r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200);
    bool with_body = !head_only && !no_body;
    const char *reason = http_status_text(r->status);
    size_t rlen = strlen(reason);
    size_t size = sizeof "HTTP/1.1 999 \r\n" + rlen + sizeof "content-length: \r\n" + 20 +
                  sizeof "connection: close\r\n" + 2 + (with_body ? r->body.len : 0);
    for (size_t i = 0; i < r->headers.n; i++)
        size += strlen(r->headers.items[i].name) + strlen(r->headers.items[i].value) + 4;
    chunk *c = chunk_new(size);
    char *p = (char *)c->data;
    p = put(p, "HTTP/1.1 ", 9);
    p = put_uint(p, (uint64_t)r->status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = put(p, "\r\n", 2);
    for (size_t i = 0; i < r->headers.n; i++) {
        const http_header *h = &r->headers.items[i];
        if (framing_header(h->name)) continue;
        p = put(p, h->name, strlen(h->name));
        p = put(p, ": ", 2);
        p = put(p, h->value, strlen(h->value));
        p = put(p, "\r\n", 2);
    }
    if (!no_body) {
        p = put(p, "content-length: ", 16);
        p = put_uint(p, r->body.len);
        p = put(p, "\r\n", 2);
    }
    if (!keep_alive) p = put(p, "connection: close\r\n", 19);
    p = put(p, "\r\n", 2);
    if (with_body && r->body.len) p = put(p, r->body.data, r->body.len);
    c->len = (size_t)(p - (char *)c->data);
    return c;
}

/* Appends, not printf: requests forwarded between nodes are built here and
 * in fetch.c, where printf was a quarter of a proxied request's cost. */
void http_append_request_line(buf *b, const char *method, const char *target)
{
    buf_appendstr(b, method);
    buf_append(b, " ", 1);
    buf_appendstr(b, target);
    buf_append(b, " HTTP/1.1\r\n", 11);
}

void http_append_header(buf *b, const char *name, const char *value)
{
    buf_appendstr(b, name);
    buf_append(b, ": ", 2);
    buf_appendstr(b, value);
    buf_append(b, "\r\n", 2);
}

void http_append_content_length(buf *b, size_t n)
{
    char digits[24];
    buf_append(b, "content-length: ", 16);
    buf_append(b, digits, (size_t)(put_uint(digits, n) - digits));
    buf_append(b, "\r\n", 2);
}

chunk *http_request_serialize(const http_request *r, const http_headers *extra)
{
    buf b;
    buf_init(&b);
    http_append_request_line(&b, r->method, r->target);
    for (int pass = 0; pass < 2; pass++) {
        const http_headers *h = pass ? extra : &r->headers;
        for (size_t i = 0; h && i < h->n; i++) {
            const http_header *x = &h->items[i];
            if (!strcmp(x->name, "content-length") || !strcmp(x->name, "transfer-encoding")) continue;
            http_append_header(&b, x->name, x->value);
        }
    }
    if (r->body.len || (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0))
        http_append_content_length(&b, r->body.len);
    buf_appendstr(&b, "\r\n");
    if (r->body.len) buf_append(&b, r->body.data, r->body.len);
    chunk *c = chunk_from(b.data, b.len);
    buf_free(&b);
    return c;
}

/* ---- parser ---- */

static http_parser *hp_of(llhttp_t *p) { return (http_parser *)p->data; }

static int fail(http_parser *hp, int status, const char *reason)
{
    hp->error_status = status;
    hp->error_reason = reason;
    return HPE_USER;
}

/* The header section counts as received: request line, header lines,
 * the whitespace and line ends between them (15,000 empty headers are
 * 60 KB on the wire). `upto` is where the bytes seen so far end. */
static int check_head_size(http_parser *hp, const char *upto)
{
    if (hp->head_before + (size_t)(upto - hp->feed_start) > hp->limits.max_header_bytes)
        return fail(hp, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    http_parser *hp = hp_of(p);
    hp->req = http_request_new(NULL, NULL);
    hp->in_head = true;
    hp->head_before = 0; /* a request begins where a feed does (the parser pauses after each) */
    hp->nheaders = 0;
    hp->url.len = 0;
    header_asm_flush(&hp->head, NULL);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    http_parser *hp = hp_of(p);
    if (check_head_size(hp, at + n)) return HPE_USER;
    buf_append(&hp->url, at, n);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    http_parser *hp = hp_of(p);
    if (check_head_size(hp, at + n)) return HPE_USER;
    bool starts = hp->head.in_value || !hp->head.field.len; /* a new header line, not a piece of a name */
    if (starts && hp->limits.max_headers && ++hp->nheaders > hp->limits.max_headers)
        return fail(hp, 431, "too many header fields");
    header_asm_field(&hp->head, &hp->req->headers, at, n);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    http_parser *hp = hp_of(p);
    if (check_head_size(hp, at + n)) return HPE_USER;
    /* llhttp starts a value piece right after a line end only for an
     * obsolete folded line (RFC 9112 5.2: a server rejects it or replaces
     * it; we reject, as a proxy may have read it differently) */
    char before = at > hp->feed_start ? at[-1] : hp->last_byte;
    if (n && before == '\n') return fail(hp, 400, "obsolete line folding in a header");
    header_asm_value(&hp->head, at, n);
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    http_parser *hp = hp_of(p);
    http_request *r = hp->req;
    hp->in_head = false;
    if (p->http_major == 0) return fail(hp, 400, "HTTP/0.9 requests are not supported");
    header_asm_flush(&hp->head, &r->headers);
    const char *host = http_headers_get(&r->headers, "host"); /* the first Host, if any */
    if (host && !r->host) http_request_set_host(r, host, strlen(host));
    r->method = llhttp_method_name((llhttp_method_t)p->method); /* static: no copy per request */
    const char *url = hp->url.data ? hp->url.data : "/";
    size_t ulen = hp->url.len;
    /* absolute-form (a proxy-style request): keep the origin form, and the
     * authority as the host if the Host header is missing */
    size_t scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (scheme) {
        const char *auth = url + scheme, *end = url + ulen;
        const char *path = memchr(auth, '/', (size_t)(end - auth));
        if (!path) path = memchr(auth, '?', (size_t)(end - auth));
        if (!path) path = end;
        if (!r->host) http_request_set_host(r, auth, (size_t)(path - auth));
        ulen = (size_t)(end - path);
        url = ulen ? path : "/";
        if (!ulen) ulen = 1;
        if (*url == '?') {
            r->target = thread_cache_take(ulen + 2);
            r->target[0] = '/';
            memcpy(r->target + 1, url, ulen);
            r->target[ulen + 1] = 0;
            goto targeted;
        }
    }
    r->target = spare_strndup(url, ulen);
targeted:
    if (p->content_length > hp->limits.max_body_bytes && p->content_length != UINT64_MAX)
        return fail(hp, 413, "request body too large");
    return 0;
}

/* The CRLF that must follow chunk data, as far as the feed holds it:
 * llhttp 8 skips those two bytes unread. */
static int check_crlf(http_parser *hp, const char *at, const char *end)
{
    for (; hp->crlf_left && at < end; at++, hp->crlf_left--)
        if (*at != "\r\n"[2 - hp->crlf_left]) return fail(hp, 400, "chunk data not followed by CRLF");
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    http_parser *hp = hp_of(p);
    if (hp->req->body.len + n > hp->limits.max_body_bytes) return fail(hp, 413, "request body too large");
    buf_append(&hp->req->body, at, n);
    if ((p->flags & F_CHUNKED) && p->content_length == 0) { /* this piece ends a chunk */
        hp->crlf_left = 2;
        if (check_crlf(hp, at + n, hp->feed_start + hp->feed_len)) return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    http_parser *hp = hp_of(p);
    hp->req->keep_alive = llhttp_should_keep_alive(p);
    hp->req->upgrade = p->upgrade;
    /* Pause after each request: see the file comment. An upgrade pauses by
     * itself (HPE_PAUSED_UPGRADE). */
    return p->upgrade ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_parser_init(http_parser *hp, http_limits limits)
{
    memset(hp, 0, sizeof *hp);
    llhttp_init(&hp->p, HTTP_REQUEST, &settings);
    hp->p.data = hp;
    hp->limits = limits;
    header_asm_init(&hp->head);
    buf_init(&hp->url);
}

void http_parser_free(http_parser *hp)
{
    http_request_free(hp->req);
    hp->req = NULL;
    header_asm_free(&hp->head);
    buf_free(&hp->url);
}

static bool unknown_method(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && i < 32 && data[i] >= 'A' && data[i] <= 'Z') i++;
    return i > 0 && i < len && data[i] == ' ';
}

enum http_parse_result http_parser_feed(http_parser *hp, const char *data, size_t len, size_t *consumed)
{
    if (llhttp_get_errno(&hp->p) == HPE_PAUSED) llhttp_resume(&hp->p);
    hp->feed_start = data;
    hp->feed_len = len;
    llhttp_errno_t err = check_crlf(hp, data, data + len) ? HPE_USER : llhttp_execute(&hp->p, data, len);
    if (len) hp->last_byte = data[len - 1];
    if (err == HPE_OK && hp->in_head) { /* the header section goes on in the next feed */
        hp->head_before += len;
        if (check_head_size(hp, data)) err = HPE_USER;
    }
    switch (err) {
    case HPE_OK:
        *consumed = len;
        return HTTP_PARSE_MORE;
    case HPE_PAUSED:
        *consumed = (size_t)(llhttp_get_error_pos(&hp->p) - data);
        return HTTP_PARSE_REQUEST;
    case HPE_PAUSED_UPGRADE:
        *consumed = (size_t)(llhttp_get_error_pos(&hp->p) - data);
        return HTTP_PARSE_UPGRADE;
    case HPE_USER:
        *consumed = len;
        return HTTP_PARSE_ERROR;
    default:
        *consumed = len;
        if (hp->error_status) return HTTP_PARSE_ERROR; /* a callback said why (413, 431) */
        /* 501 only for a whole method token we do not know ("BREW /");
         * other garbage (a TLS hello, "GET" alone) is a 400 */
        hp->error_status = err == HPE_INVALID_METHOD && unknown_method(data, len) ? 501 : 400;
        hp->error_reason = llhttp_get_error_reason(&hp->p);
        if (!hp->error_reason) hp->error_reason = llhttp_errno_name(err);
        return HTTP_PARSE_ERROR;
    }
}

http_request *http_parser_take(http_parser *hp)
{
    http_request *r = hp->req;
    hp->req = NULL;
    if (r && !r->host) http_request_set_host(r, "localhost", 9);
    return r;
}
