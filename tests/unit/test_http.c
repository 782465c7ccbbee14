/* test_http.c - the request parser (llhttp wrapper) and response
 * serialization. Bytes go in through http_parser_feed; no sockets. */
#include "unit.h"

#include "http.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static const http_limits big = {.max_header_bytes = 16384, .max_body_bytes = 1 << 20};

/* Feeds all of s in one call. */
static enum http_parse_result feed_all(http_parser *hp, const char *s, size_t len, size_t *consumed)
{
    return http_parser_feed(hp, s, len, consumed);
}

/* Feeds s one byte per call until the parser reports something other than
 * MORE; *at gets the offset just past the bytes the parser used. */
static enum http_parse_result feed_bytewise(http_parser *hp, const char *s, size_t len, size_t *at)
{
    for (size_t i = 0; i < len; i++) {
        size_t used = 0;
        enum http_parse_result r = http_parser_feed(hp, s + i, 1, &used);
        if (r != HTTP_PARSE_MORE) {
            *at = i + used;
            return r;
        }
        ASSERT_EQ(used, 1);
    }
    *at = len;
    return HTTP_PARSE_MORE;
}

TEST(http_parse_simple_get)
{
    static const char req[] = "GET /parties/main/r1?x=1 HTTP/1.1\r\nHost: example.com:1999\r\n"
                              "User-Agent: unit\r\nX-Mixed-Case: Value With Spaces\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used = 0;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    ASSERT_EQ(used, sizeof req - 1);
    http_request *r = http_parser_take(&hp);
    ASSERT_NOT_NULL(r);
    ASSERT_STR_EQ(r->method, "GET");
    ASSERT_STR_EQ(r->target, "/parties/main/r1?x=1");
    ASSERT_STR_EQ(r->host, "example.com:1999");
    ASSERT_EQ(r->headers.n, 3);
    ASSERT_STR_EQ(http_headers_get(&r->headers, "user-agent"), "unit");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "x-mixed-case"), "Value With Spaces");
    ASSERT_NULL(http_headers_get(&r->headers, "X-Mixed-Case")); /* names are stored lowercase */
    ASSERT_EQ(r->body.len, 0);
    ASSERT(!r->upgrade);
    ASSERT(r->keep_alive);
    char *url = http_request_url(r);
    ASSERT_STR_EQ(url, "http://example.com:1999/parties/main/r1?x=1");
    free(url);
    http_request_free(r);
    ASSERT_NULL(http_parser_take(&hp));
    http_parser_free(&hp);
}

TEST(http_parse_no_host_defaults_to_localhost)
{
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->host, "localhost");
    ASSERT(!r->keep_alive); /* HTTP/1.0 without keep-alive */
    http_request_free(r);
    http_parser_free(&hp);
}

/* RFC 9112 3.2.2: a server must accept the absolute form of the target.
 * http.h documents http_request.target as the origin-form "path + query",
 * and http_request_url builds http://host + target from it. */
TEST(http_parse_absolute_form_target)
{
    static const char req[] = "GET http://example.com:1999/parties/main/r1?x=1 HTTP/1.1\r\nHost: example.com:1999\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    http_parser_free(&hp);
    char *url = http_request_url(r);
    char target[256], host[64];
    snprintf(target, sizeof target, "%s", r->target);
    snprintf(host, sizeof host, "%s", r->host);
    http_request_free(r);
    char u[512];
    snprintf(u, sizeof u, "%s", url);
    free(url);
    ASSERT_STR_EQ(host, "example.com:1999");
    ASSERT_STR_EQ(u, "http://example.com:1999/parties/main/r1?x=1");
    ASSERT_STR_EQ(target, "/parties/main/r1?x=1");
}

TEST(http_parse_http10_keep_alive)
{
    static const char req[] = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    ASSERT(r->keep_alive);
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_first_host_wins)
{
    static const char req[] = "GET / HTTP/1.1\r\nhOsT: first\r\nX: y\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->host, "first");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "host"), "first");
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_connection_close)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(feed_all(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    ASSERT(!r->keep_alive);
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_headers_byte_by_byte)
{
    static const char req[] = "POST /parties/main/room-1/sub HTTP/1.1\r\nHost: h.example\r\n"
                              "Content-Type: application/json\r\nX-Long-Header-Name: a fairly long value\r\n"
                              "Content-Length: 11\r\n\r\n{\"a\":\"b c\"}";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t at = 0;
    ASSERT_EQ(feed_bytewise(&hp, req, sizeof req - 1, &at), HTTP_PARSE_REQUEST);
    ASSERT_EQ(at, sizeof req - 1);
    http_request *r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->method, "POST");
    ASSERT_STR_EQ(r->target, "/parties/main/room-1/sub");
    ASSERT_STR_EQ(r->host, "h.example");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "content-type"), "application/json");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "x-long-header-name"), "a fairly long value");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "content-length"), "11");
    ASSERT_EQ(r->headers.n, 4);
    ASSERT_BYTES_EQ(r->body.data, r->body.len, "{\"a\":\"b c\"}", 11);
    http_request_free(r);
    http_parser_free(&hp);
}

/* Every split of the request into two feeds gives the same request. */
TEST(http_parse_every_two_way_split)
{
    static const char req[] = "PUT /x?y=z HTTP/1.1\r\nHost: h\r\nA: 1\r\nBb: 22\r\nContent-Length: 3\r\n\r\nabc";
    size_t n = sizeof req - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        http_parser hp;
        http_parser_init(&hp, big);
        size_t used = 0;
        enum http_parse_result res = http_parser_feed(&hp, req, cut, &used);
        if (res == HTTP_PARSE_MORE) {
            ASSERT_EQ(used, cut);
            res = http_parser_feed(&hp, req + cut, n - cut, &used);
            ASSERT_EQ(used, n - cut);
        } else {
            ASSERT_EQ(cut, n);
        }
        ASSERT_MSG(res == HTTP_PARSE_REQUEST, "split at %zu: result %d", cut, (int)res);
        http_request *r = http_parser_take(&hp);
        ASSERT_STR_EQ(r->method, "PUT");
        ASSERT_STR_EQ(r->target, "/x?y=z");
        ASSERT_STR_EQ(r->host, "h");
        ASSERT_STR_EQ(http_headers_get(&r->headers, "a"), "1");
        ASSERT_STR_EQ(http_headers_get(&r->headers, "bb"), "22");
        ASSERT_EQ(r->headers.n, 4);
        ASSERT_BYTES_EQ(r->body.data, r->body.len, "abc", 3);
        http_request_free(r);
        http_parser_free(&hp);
    }
}

TEST(http_parse_empty_header_value)
{
    static const char req[] = "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\nX-Blank:   \r\nX-After: z\r\n\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        http_parser hp;
        http_parser_init(&hp, big);
        size_t used;
        enum http_parse_result res = bytewise ? feed_bytewise(&hp, req, sizeof req - 1, &used)
                                              : feed_all(&hp, req, sizeof req - 1, &used);
        ASSERT_EQ(res, HTTP_PARSE_REQUEST);
        http_request *r = http_parser_take(&hp);
        ASSERT_STR_EQ(http_headers_get(&r->headers, "x-empty"), "");
        ASSERT_STR_EQ(http_headers_get(&r->headers, "host"), "a");
        ASSERT_STR_EQ(r->host, "a");
        ASSERT_STR_EQ(http_headers_get(&r->headers, "x-blank"), "");
        ASSERT_STR_EQ(http_headers_get(&r->headers, "x-after"), "z");
        ASSERT_EQ(r->headers.n, 4);
        http_request_free(r);
        http_parser_free(&hp);
    }
}

TEST(http_parse_body_content_length)
{
    static const char req[] = "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123\0" "56789";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    /* headers and the first 3 body bytes, then the rest */
    size_t first = sizeof req - 1 - 7;
    ASSERT_EQ(http_parser_feed(&hp, req, first, &used), HTTP_PARSE_MORE);
    ASSERT_EQ(used, first);
    ASSERT_EQ(http_parser_feed(&hp, req + first, 7, &used), HTTP_PARSE_REQUEST);
    ASSERT_EQ(used, 7);
    http_request *r = http_parser_take(&hp);
    ASSERT_BYTES_EQ(r->body.data, r->body.len, "0123\0" "56789", 10);
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_chunked_body)
{
    static const char req[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        http_parser hp;
        http_parser_init(&hp, big);
        size_t used;
        enum http_parse_result res = bytewise ? feed_bytewise(&hp, req, sizeof req - 1, &used)
                                              : feed_all(&hp, req, sizeof req - 1, &used);
        ASSERT_EQ(res, HTTP_PARSE_REQUEST);
        ASSERT_EQ(used, sizeof req - 1);
        http_request *r = http_parser_take(&hp);
        ASSERT_BYTES_EQ(r->body.data, r->body.len, "hello 0123456789", 16);
        http_request_free(r);
        http_parser_free(&hp);
    }
}

TEST(http_parse_pipelined_pauses_after_first)
{
    static const char one[] = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char two[] = "POST /second HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi";
    char both[256];
    size_t n1 = sizeof one - 1, n2 = sizeof two - 1;
    memcpy(both, one, n1);
    memcpy(both + n1, two, n2);
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used = 0;
    ASSERT_EQ(http_parser_feed(&hp, both, n1 + n2, &used), HTTP_PARSE_REQUEST);
    ASSERT_EQ(used, n1); /* consumed points at the second request */
    http_request *r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->target, "/first");
    ASSERT_STR_EQ(r->host, "a");
    http_request_free(r);
    size_t used2 = 0;
    ASSERT_EQ(http_parser_feed(&hp, both + used, n1 + n2 - used, &used2), HTTP_PARSE_REQUEST);
    ASSERT_EQ(used2, n2);
    r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->method, "POST");
    ASSERT_STR_EQ(r->target, "/second");
    ASSERT_STR_EQ(r->host, "b");
    ASSERT_BYTES_EQ(r->body.data, r->body.len, "hi", 2);
    http_request_free(r);
    /* and the parser keeps going after the second one */
    ASSERT_EQ(http_parser_feed(&hp, one, n1, &used), HTTP_PARSE_REQUEST);
    ASSERT_EQ(used, n1);
    r = http_parser_take(&hp);
    ASSERT_STR_EQ(r->target, "/first");
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_three_pipelined_bytewise)
{
    static const char reqs[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                               "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t off = 0;
    for (int i = 1; i <= 3; i++) {
        size_t at = 0;
        ASSERT_EQ(feed_bytewise(&hp, reqs + off, sizeof reqs - 1 - off, &at), HTTP_PARSE_REQUEST);
        off += at;
        ASSERT_EQ(off, (size_t)i * (sizeof reqs - 1) / 3);
        http_request *r = http_parser_take(&hp);
        char t[4] = {'/', (char)('0' + i), 0, 0};
        ASSERT_STR_EQ(r->target, t);
        http_request_free(r);
    }
    http_parser_free(&hp);
}

TEST(http_parse_upgrade)
{
    static const char req[] = "GET /parties/main/r1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    static const char ws[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    char both[512];
    size_t n = sizeof req - 1;
    memcpy(both, req, n);
    memcpy(both + n, ws, sizeof ws - 1);
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used = 0;
    ASSERT_EQ(http_parser_feed(&hp, both, n + sizeof ws - 1, &used), HTTP_PARSE_UPGRADE);
    ASSERT_EQ(used, n); /* the first WebSocket byte */
    ASSERT_EQ((uint8_t)both[used], 0x81);
    http_request *r = http_parser_take(&hp);
    ASSERT(r->upgrade);
    ASSERT_STR_EQ(r->target, "/parties/main/r1");
    ASSERT_STR_EQ(http_headers_get(&r->headers, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==");
    http_request_free(r);
    http_parser_free(&hp);
}

TEST(http_parse_upgrade_bytewise)
{
    static const char req[] = "GET /party/r HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                              "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n\x81\x80";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t at = 0;
    ASSERT_EQ(feed_bytewise(&hp, req, sizeof req - 1, &at), HTTP_PARSE_UPGRADE);
    ASSERT_EQ(at, sizeof req - 3);
    http_request *r = http_parser_take(&hp);
    ASSERT(r->upgrade);
    http_request_free(r);
    http_parser_free(&hp);
}

static enum http_parse_result parse_with(http_limits lim, const char *req, size_t len, int *status,
                                         const char **reason)
{
    http_parser hp;
    http_parser_init(&hp, lim);
    size_t used;
    enum http_parse_result res = http_parser_feed(&hp, req, len, &used);
    *status = hp.error_status;
    *reason = hp.error_reason;
    http_request_free(http_parser_take(&hp));
    http_parser_free(&hp);
    return res;
}

TEST(http_parse_header_too_large_431)
{
    http_limits small = {.max_header_bytes = 64, .max_body_bytes = 1024};
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "
                              "0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n";
    int status;
    const char *reason;
    ASSERT_EQ(parse_with(small, req, sizeof req - 1, &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_EQ(status, 431);
    ASSERT_NOT_NULL(reason);
    /* many small headers add up */
    char many[2048] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 40; i++) strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    ASSERT_EQ(parse_with(small, many, strlen(many), &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_EQ(status, 431);
    /* and the URL counts too */
    char longurl[256] = "GET /";
    memset(longurl + 5, 'u', 100);
    strcpy(longurl + 105, " HTTP/1.1\r\n\r\n");
    ASSERT_EQ(parse_with(small, longurl, strlen(longurl), &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_EQ(status, 431);
    /* just under the limit is fine */
    static const char ok[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse_with(small, ok, sizeof ok - 1, &status, &reason), HTTP_PARSE_REQUEST);
}

TEST(http_parse_header_too_large_bytewise)
{
    http_limits small = {.max_header_bytes = 40, .max_body_bytes = 1024};
    static const char req[] = "GET / HTTP/1.1\r\nX-A: 0123456789ab\r\nX-B: 0123456789ab\r\nX-C: 0123456789ab\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, small);
    size_t at;
    ASSERT_EQ(feed_bytewise(&hp, req, sizeof req - 1, &at), HTTP_PARSE_ERROR);
    ASSERT_EQ(hp.error_status, 431);
    http_parser_free(&hp);
}

/* A Content-Length over the limit is refused before the body arrives, with
 * 413 (http.c on_headers_complete). */
TEST(http_parse_content_length_too_large_413)
{
    http_limits small = {.max_header_bytes = 1024, .max_body_bytes = 10};
    int status;
    const char *reason;
    static const char cl[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    ASSERT_EQ(parse_with(small, cl, sizeof cl - 1, &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_MSG(status == 413, "status %d (%s), not 413", status, reason ? reason : "no reason");
}

TEST(http_parse_chunked_body_too_large_413)
{
    http_limits small = {.max_header_bytes = 1024, .max_body_bytes = 10};
    int status;
    const char *reason;
    /* exactly the limit is fine */
    static const char ok[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    ASSERT_EQ(parse_with(small, ok, sizeof ok - 1, &status, &reason), HTTP_PARSE_REQUEST);
    /* chunked: only the sum of the chunks can tell */
    static const char ch[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n";
    ASSERT_EQ(parse_with(small, ch, sizeof ch - 1, &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_EQ(status, 413);
}

TEST(http_parse_garbage_400)
{
    int status;
    const char *reason;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",           /* header without a colon */
        "GET / HTTX/1.1\r\n\r\n",                     /* not HTTP */
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_MSG(parse_with(big, bad[i], strlen(bad[i]), &status, &reason) == HTTP_PARSE_ERROR,
                   "request %zu was accepted", i);
        ASSERT_MSG(status == 400, "request %zu: status %d, not 400", i, status);
        ASSERT_NOT_NULL(reason);
    }
}

/* Bytes that are not HTTP at all, e.g. a TLS ClientHello sent to the plain
 * HTTP port: the request line is invalid, so 400 (RFC 9112 section 3), not
 * 501 (which says "this method is not implemented"). */
TEST(http_parse_binary_garbage_400)
{
    int status;
    const char *reason;
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    ASSERT_EQ(parse_with(big, tls, sizeof tls - 1, &status, &reason), HTTP_PARSE_ERROR);
    ASSERT_EQ(status, 400);
}

TEST(http_parse_unknown_method)
{
    int status;
    const char *reason;
    static const char req[] = "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse_with(big, req, sizeof req - 1, &status, &reason), HTTP_PARSE_ERROR);
    ASSERT(status == 501 || status == 400);
    ASSERT_NOT_NULL(reason);
}

static char *serialize(const http_response *r, bool keep_alive, bool head_only, size_t *len)
{
    chunk *c = http_response_serialize(r, keep_alive, head_only);
    *len = c->len;
    char *s = xstrndup((const char *)chunk_bytes(c), c->len);
    chunk_unref(c);
    return s;
}

TEST(http_serialize_basic)
{
    http_response *r = http_response_new(200, "text/plain", "hello", 5);
    size_t len;
    char *s = serialize(r, true, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello");
    ASSERT_EQ(len, strlen(s));
    free(s);
    s = serialize(r, false, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n"
                     "\r\nhello");
    free(s);
    http_response_free(r);
}

TEST(http_serialize_binary_body)
{
    http_response *r = http_response_new(201, NULL, "a\0b", 3);
    chunk *c = http_response_serialize(r, true, false);
    static const char want[] = "HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\na\0b";
    ASSERT_BYTES_EQ(chunk_bytes(c), c->len, want, sizeof want - 1);
    chunk_unref(c);
    http_response_free(r);
}

TEST(http_serialize_head_has_length_but_no_body)
{
    http_response *r = http_response_new(200, "text/html", "<p>hi</p>", 9);
    size_t len;
    char *s = serialize(r, true, true, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 9\r\n\r\n");
    free(s);
    http_response_free(r);
}

TEST(http_serialize_204_and_304_have_no_length)
{
    http_response *r = http_response_new(204, NULL, "ignored", 7);
    size_t len;
    char *s = serialize(r, true, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 204 No Content\r\n\r\n");
    free(s);
    http_response_free(r);
    r = http_response_new(304, NULL, NULL, 0);
    s = serialize(r, false, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n");
    free(s);
    http_response_free(r);
}

TEST(http_serialize_framing_headers_not_duplicated)
{
    http_response *r = http_response_new(200, NULL, "abc", 3);
    http_headers_add(&r->headers, "Content-Length", 14, "99", 2);
    http_headers_add(&r->headers, "Transfer-Encoding", 17, "chunked", 7);
    http_headers_add(&r->headers, "Connection", 10, "keep-alive", 10);
    http_headers_add(&r->headers, "X-Custom", 8, "yes", 3);
    size_t len;
    char *s = serialize(r, true, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 200 OK\r\nx-custom: yes\r\ncontent-length: 3\r\n\r\nabc");
    free(s);
    http_response_free(r);
}

TEST(http_serialize_empty_body_and_unknown_status)
{
    http_response *r = http_response_new(299, NULL, NULL, 0);
    size_t len;
    char *s = serialize(r, true, false, &len);
    ASSERT_STR_EQ(s, "HTTP/1.1 299 Unknown\r\ncontent-length: 0\r\n\r\n");
    free(s);
    http_response_free(r);
}

TEST(http_status_texts)
{
    ASSERT_STR_EQ(http_status_text(404), "Not Found");
    ASSERT_STR_EQ(http_status_text(101), "Switching Protocols");
    ASSERT_STR_EQ(http_status_text(413), "Payload Too Large");
    ASSERT_STR_EQ(http_status_text(426), "Upgrade Required");
    ASSERT_STR_EQ(http_status_text(431), "Request Header Fields Too Large");
    ASSERT_STR_EQ(http_status_text(501), "Not Implemented");
}

TEST(http_header_value_ok_cases)
{
    ASSERT(http_header_value_ok("", 0));
    ASSERT(http_header_value_ok("text/plain; charset=utf-8", 25));
    ASSERT(http_header_value_ok("tab\tok", 6));
    ASSERT(http_header_value_ok("\xc3\xa9", 2));
    ASSERT(!http_header_value_ok("a\rb", 3));
    ASSERT(!http_header_value_ok("a\nb", 3));
    ASSERT(!http_header_value_ok("a\r\nSet-Cookie: x", 16));
    ASSERT(!http_header_value_ok("a\0b", 3));
    ASSERT(http_header_value_ok("a\nb", 1)); /* only len bytes are checked */
}

TEST(http_headers_add_get_free)
{
    http_headers h = {0};
    for (int i = 0; i < 50; i++) http_headers_add(&h, "X-Many", 6, "v", 1);
    http_headers_add(&h, "Set-COOKIE", 10, "a=b", 3);
    ASSERT_EQ(h.n, 51);
    ASSERT_STR_EQ(http_headers_get(&h, "set-cookie"), "a=b");
    ASSERT_STR_EQ(h.items[50].name, "set-cookie");
    ASSERT_NULL(http_headers_get(&h, "missing"));
    http_headers_free(&h);
    ASSERT_EQ(h.n, 0);
    ASSERT_NULL(h.items);
}

TEST(http_request_new_defaults)
{
    http_request *r = http_request_new(NULL, NULL);
    ASSERT_STR_EQ(r->method, "GET");
    ASSERT_STR_EQ(r->target, "/");
    ASSERT(r->keep_alive);
    char *url = http_request_url(r);
    ASSERT_STR_EQ(url, "http://localhost/");
    free(url);
    http_request_free(r);
    http_request_free(NULL);
}
