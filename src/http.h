/* http.h - HTTP/1.1 messages: the request and response structs that travel
 * between sockets, rooms and cross-party calls, their wire format, and the
 * llhttp-based request parser. Nothing here touches a socket. */
#ifndef LP_HTTP_H
#define LP_HTTP_H

#include "buf.h"
#include <llhttp.h>
#include <stdbool.h>

typedef struct http_header {
    char *name;     /* lowercase */
    char *value;    /* in the same allocation as name: free name only */
} http_header;

typedef struct http_headers {
    http_header *items;
    size_t n, cap;
} http_headers;

typedef struct http_request {
    const char *method; /* llhttp's name for a parsed request (static), else a copy */
    bool method_owned;  /* method is a copy: freed with the request */
    char *target;       /* origin-form request target: path + query */
    char *host;         /* Host header or "localhost" */
    http_headers headers;
    buf body;
    bool upgrade;       /* a WebSocket upgrade request */
    bool keep_alive;
} http_request;

typedef struct http_response {
    int status;
    http_headers headers;
    buf body;
} http_response;

void http_headers_add(http_headers *h, const char *name, size_t nlen, const char *value, size_t vlen);
const char *http_headers_get(const http_headers *h, const char *name);
/* Adds every header of from (may be NULL) to h. */
void http_headers_add_all(http_headers *h, const http_headers *from);
void http_headers_free(http_headers *h);
/* Removes every header whose (lowercase) name starts with prefix; returns
 * how many went. */
size_t http_headers_remove_prefix(http_headers *h, const char *prefix);
/* Removes the headers whose (lowercase) name drop(name, arg) says; returns how many. */
size_t http_headers_remove_if(http_headers *h, bool (*drop)(const char *name, const void *arg), const void *arg);

/* method and target are copied; the parser passes NULL for both and sets
 * them once the request's head is complete. */
http_request *http_request_new(const char *method, const char *target);
void http_request_free(http_request *r);
/* Sets (or replaces) the request's host to a copy of host[0..len). */
void http_request_set_host(http_request *r, const char *host, size_t len);
http_request *http_request_clone(const http_request *r);
/* The absolute URL a party sees: http://host/target. Caller frees. */
char *http_request_url(const http_request *r);
/* Its host part: the Host header, or "localhost" without one. */
static inline const char *http_request_host(const http_request *r) { return r->host ? r->host : "localhost"; }

http_response *http_response_new(int status, const char *content_type, const char *body, size_t len);
void http_response_free(http_response *r);
/* A 503 with Retry-After: 1 and why as its text: the room is elsewhere or
 * restarting, ask again. */
http_response *http_response_retry(const char *why);
const char *http_status_text(int status);
/* True if the value may go into a header line (no CR, LF or NUL). */
bool http_header_value_ok(const char *s, size_t len);
/* Serializes a request as received (for forwarding to another node): its
 * headers, then extra's, without Content-Length/Transfer-Encoding (the
 * body's length is set). Connection and Upgrade headers are kept: an upgrade stays one. */
chunk *http_request_serialize(const http_request *r, const http_headers *extra);
/* Pieces of a request's head: "METHOD target HTTP/1.1\r\n", "name: value\r\n",
 * "content-length: n\r\n" (fetch.c builds its requests from them too). */
void http_append_request_line(buf *b, const char *method, const char *target);
void http_append_header(buf *b, const char *name, const char *value);
void http_append_content_length(buf *b, size_t n);
/* Serializes status line, headers (Content-Length added), body. */
chunk *http_response_serialize(const http_response *r, bool keep_alive, bool head_only);

/* ---- request parser (wraps llhttp; one per HTTP connection) ---- */

enum http_parse_result {
    HTTP_PARSE_MORE,     /* everything consumed, need more bytes */
    HTTP_PARSE_REQUEST,  /* a whole request is ready (http_parser_take) */
    HTTP_PARSE_UPGRADE,  /* a whole upgrade request is ready; the rest is WebSocket */
    HTTP_PARSE_ERROR,    /* bad request: error_status/error_reason say why */
};

typedef struct http_limits {
    size_t max_header_bytes; /* the request line and headers as received */
    size_t max_body_bytes;
    size_t max_headers;      /* header lines; 0: no cap */
} http_limits;

/* A header line as llhttp hands it over: the name, then the value, each
 * possibly in several pieces. Both parsers (requests here, fetch's
 * responses in fetch.c) assemble their headers with it. */
typedef struct header_asm {
    buf field, value;
    bool in_value;
} header_asm;

void header_asm_init(header_asm *a);
void header_asm_free(header_asm *a);
/* A piece of a name: a name after a value first completes that header. */
void header_asm_field(header_asm *a, http_headers *into, const char *at, size_t n);
void header_asm_value(header_asm *a, const char *at, size_t n);
/* Completes the pending header into `into` (NULL: drops it) and resets. */
void header_asm_flush(header_asm *a, http_headers *into);

typedef struct http_parser {
    llhttp_t p;
    http_request *req;
    http_limits limits;
    header_asm head;
    buf url;
    /* The header section's size on the wire: head_before bytes of it came
     * in earlier feeds; in this feed it runs from feed_start (a request
     * begins where a feed does, see http.c). */
    bool in_head;
    size_t head_before;
    size_t nheaders;
    const char *feed_start;   /* the bytes of the current feed */
    size_t feed_len;
    char last_byte;           /* the last byte of the previous feed */
    uint8_t crlf_left;        /* bytes of the CRLF after chunk data still to check (2, 1, 0) */
    int error_status;
    const char *error_reason;
} http_parser;

void http_parser_init(http_parser *hp, http_limits limits);
void http_parser_free(http_parser *hp);
/* Feeds bytes; *consumed says how many were used. After REQUEST the parser
 * is paused: take the request, answer it, then feed the rest. */
enum http_parse_result http_parser_feed(http_parser *hp, const char *data, size_t len, size_t *consumed);
http_request *http_parser_take(http_parser *hp);

#endif
