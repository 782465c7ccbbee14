/* test_http.c - the request parser (llhttp wrapper) and response
 * serialization. Bytes go in through http_parser_feed; no sockets. Most
 * tests are tables: every request is fed whole, one byte at a time, and
 * split in two at every byte, and must come out the same each way. */
#include "unit.h"

#include "http.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static const http_limits big = {.max_header_bytes = 16384, .max_body_bytes = 1 << 20};

#define BYTES(s) s, sizeof s - 1

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

/* The ways a request is fed: whole, byte by byte, or in two feeds cut at a
 * byte (FEED_SPLIT + cut). */
enum { FEED_WHOLE = -2, FEED_BYTEWISE = -1, FEED_SPLIT = 0 };

/* Feeds len bytes of s the given way; *used gets how many the parser took. */
static enum http_parse_result feed(http_parser *hp, const char *s, size_t len, int how, size_t *used)
{
    if (how == FEED_WHOLE) return http_parser_feed(hp, s, len, used);
    if (how == FEED_BYTEWISE) return feed_bytewise(hp, s, len, used);
    size_t cut = (size_t)how;
    enum http_parse_result res = http_parser_feed(hp, s, cut, used);
    if (res != HTTP_PARSE_MORE) return res;
    ASSERT_EQ(*used, cut);
    res = http_parser_feed(hp, s + cut, len - cut, used);
    *used += cut;
    return res;
}

static const char *feed_name(int how)
{
    static char name[32];
    if (how == FEED_WHOLE) return "whole";
    if (how == FEED_BYTEWISE) return "byte by byte";
    snprintf(name, sizeof name, "split at %d", how);
    return name;
}

/* ---- requests that parse ---- */

typedef struct header_want {
    const char *name, *value;
} header_want;

typedef struct request_case {
    const char *bytes;
    size_t len;
    const char *method, *target, *host;
    bool keep_alive;
    size_t nheaders;
    header_want headers[5]; /* each must be there, with this value */
    const char *body;
    size_t body_len;
    const char *url; /* http_request_url, or NULL: not checked */
} request_case;

static const request_case requests[] = {
    {BYTES("GET /parties/main/r1?x=1 HTTP/1.1\r\nHost: example.com:1999\r\n"
           "User-Agent: unit\r\nX-Mixed-Case: Value With Spaces\r\n\r\n"),
     "GET", "/parties/main/r1?x=1", "example.com:1999", true, 3,
     {{"user-agent", "unit"}, {"x-mixed-case", "Value With Spaces"}, {"host", "example.com:1999"}},
     BYTES(""), "http://example.com:1999/parties/main/r1?x=1"},
    /* no Host: localhost; HTTP/1.0 without keep-alive */
    {BYTES("GET / HTTP/1.0\r\n\r\n"), "GET", "/", "localhost", false, 0, {{0}}, BYTES(""), "http://localhost/"},
    {BYTES("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "GET", "/", "localhost", true, 1,
     {{"connection", "keep-alive"}}, BYTES(""), NULL},
    /* RFC 9112 3.2.2: a server must accept the absolute form of the target.
     * http.h documents http_request.target as the origin-form "path +
     * query", and http_request_url builds http://host + target from it. */
    {BYTES("GET http://example.com:1999/parties/main/r1?x=1 HTTP/1.1\r\nHost: example.com:1999\r\n\r\n"), "GET",
     "/parties/main/r1?x=1", "example.com:1999", true, 1, {{0}}, BYTES(""),
     "http://example.com:1999/parties/main/r1?x=1"},
    /* the first Host wins, whatever its case */
    {BYTES("GET / HTTP/1.1\r\nhOsT: first\r\nX: y\r\n\r\n"), "GET", "/", "first", true, 2,
     {{"host", "first"}, {"x", "y"}}, BYTES(""), NULL},
    {BYTES("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), "GET", "/", "a", false, 2, {{0}}, BYTES(""),
     NULL},
    {BYTES("POST /parties/main/room-1/sub HTTP/1.1\r\nHost: h.example\r\n"
           "Content-Type: application/json\r\nX-Long-Header-Name: a fairly long value\r\n"
           "Content-Length: 11\r\n\r\n{\"a\":\"b c\"}"),
     "POST", "/parties/main/room-1/sub", "h.example", true, 4,
     {{"content-type", "application/json"}, {"x-long-header-name", "a fairly long value"},
      {"content-length", "11"}},
     BYTES("{\"a\":\"b c\"}"), NULL},
    {BYTES("PUT /x?y=z HTTP/1.1\r\nHost: h\r\nA: 1\r\nBb: 22\r\nContent-Length: 3\r\n\r\nabc"), "PUT", "/x?y=z", "h",
     true, 4, {{"a", "1"}, {"bb", "22"}}, BYTES("abc"), NULL},
    /* empty values, with and without spaces */
    {BYTES("GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\nX-Blank:   \r\nX-After: z\r\n\r\n"), "GET", "/", "a", true, 4,
     {{"x-empty", ""}, {"host", "a"}, {"x-blank", ""}, {"x-after", "z"}}, BYTES(""), NULL},
    /* a body with a NUL in it */
    {BYTES("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123\0" "56789"), "POST", "/p", "a", true, 2,
     {{0}}, BYTES("0123\0" "56789"), NULL},
    /* chunked, with a chunk extension and a trailer */
    {BYTES("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"),
     "POST", "/c", "a", true, 2, {{"transfer-encoding", "chunked"}}, BYTES("hello 0123456789"), NULL},
};

static void check_request(const request_case *c, int how)
{
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used = 0;
    enum http_parse_result res = feed(&hp, c->bytes, c->len, how, &used);
    const char *t = c->target, *f = feed_name(how);
    ASSERT_MSG(res == HTTP_PARSE_REQUEST, "%s %s: result %d", t, f, (int)res);
    ASSERT_MSG(used == c->len, "%s %s: used %zu of %zu bytes", t, f, used, c->len);
    http_request *r = http_parser_take(&hp);
    ASSERT_NOT_NULL(r);
    ASSERT_STR_EQ(r->method, c->method);
    ASSERT_STR_EQ(r->target, c->target);
    ASSERT_STR_EQ(r->host, c->host);
    ASSERT_MSG(r->keep_alive == c->keep_alive, "%s %s: keep_alive %d", t, f, r->keep_alive);
    ASSERT(!r->upgrade);
    ASSERT_MSG(r->headers.n == c->nheaders, "%s %s: %zu headers", t, f, (size_t)r->headers.n);
    for (size_t i = 0; i < sizeof c->headers / sizeof *c->headers && c->headers[i].name; i++)
        ASSERT_STR_EQ(http_headers_get(&r->headers, c->headers[i].name), c->headers[i].value);
    for (size_t i = 0; i < r->headers.n; i++) /* names are stored lowercase */
        for (const char *p = r->headers.items[i].name; *p; p++) ASSERT_MSG(*p < 'A' || *p > 'Z', "%s", p);
    ASSERT_BYTES_EQ(r->body.data, r->body.len, c->body, c->body_len);
    if (c->url) {
        char *url = http_request_url(r);
        ASSERT_STR_EQ(url, c->url);
        free(url);
    }
    http_request_free(r);
    ASSERT_NULL(http_parser_take(&hp)); /* one request, taken once */
    http_parser_free(&hp);
}

TEST(http_parse_requests_every_way)
{
    for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
        check_request(&requests[i], FEED_WHOLE);
        check_request(&requests[i], FEED_BYTEWISE);
        for (size_t cut = 0; cut <= requests[i].len; cut++) check_request(&requests[i], FEED_SPLIT + (int)cut);
    }
}

TEST(http_header_lookup_is_lowercase)
{
    static const char req[] = "GET / HTTP/1.1\r\nX-Mixed-Case: v\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, big);
    size_t used;
    ASSERT_EQ(http_parser_feed(&hp, req, sizeof req - 1, &used), HTTP_PARSE_REQUEST);
    http_request *r = http_parser_take(&hp);
    ASSERT_STR_EQ(http_headers_get(&r->headers, "x-mixed-case"), "v");
    ASSERT_NULL(http_headers_get(&r->headers, "X-Mixed-Case")); /* the name asked for must be lowercase */
    http_request_free(r);
    http_parser_free(&hp);
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

/* ---- requests that are refused ---- */

static char many_headers[2048], long_url[256], empty_headers[70000], wide_ows[300], headers_100[1500],
    headers_101[1500];

/* n header lines "h: v" (short ones) after a request line. */
static void n_headers(char *out, int n)
{
    strcpy(out, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < n; i++) strcat(out, "h: v\r\n");
    strcat(out, "\r\n");
}

/* Requests built at run time (too long to write out). */
static void build_requests(void)
{
    /* 15,000 empty headers: 60 KB on the wire, no name or value bytes to speak of */
    strcpy(empty_headers, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 15000; i++) memcpy(empty_headers + 16 + 4 * i, "a:\r\n", 4);
    strcpy(empty_headers + 16 + 4 * 15000, "\r\n");
    /* whitespace around a value is on the wire too */
    strcpy(wide_ows, "GET / HTTP/1.1\r\nX:");
    memset(wide_ows + strlen(wide_ows), ' ', 200);
    strcpy(wide_ows + 18 + 200, "a\r\n\r\n");
    n_headers(headers_100, 100);
    n_headers(headers_101, 101);
    strcpy(many_headers, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 40; i++) strcat(many_headers, "A: b\r\n"); /* many small headers add up */
    strcat(many_headers, "\r\n");
    strcpy(long_url, "GET /");
    memset(long_url + 5, 'u', 100); /* the URL counts too */
    strcpy(long_url + 105, " HTTP/1.1\r\n\r\n");
}

static const http_limits small_header = {.max_header_bytes = 64, .max_body_bytes = 1024};
static const http_limits tiny_header = {.max_header_bytes = 40, .max_body_bytes = 1024};
static const http_limits small_body = {.max_header_bytes = 1024, .max_body_bytes = 10};
static const http_limits no_count = {.max_header_bytes = 16384, .max_body_bytes = 1024}; /* max_headers 0: no cap */
static const http_limits kib = {.max_header_bytes = 1024, .max_body_bytes = 1024};
static const http_limits hundred = {.max_header_bytes = 16384, .max_body_bytes = 1024, .max_headers = 100};

static const struct refusal_case {
    const char *what;
    const http_limits *limits;
    const char *bytes;
    int status, or_status; /* 0: parses fine; or_status: another acceptable status */
} refusals[] = {
    {"a large header", &small_header,
     "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "
     "0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
     431, 0},
    {"many small headers", &small_header, many_headers, 431, 0},
    {"a long URL", &small_header, long_url, 431, 0},
    {"just under the header limit", &small_header, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0},
    {"three headers over 40 bytes", &tiny_header,
     "GET / HTTP/1.1\r\nX-A: 0123456789ab\r\nX-B: 0123456789ab\r\nX-C: 0123456789ab\r\n\r\n", 431, 0},
    /* a Content-Length over the limit is refused before the body arrives,
     * with 413 (http.c on_headers_complete) */
    {"Content-Length over the limit", &small_body, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413,
     0},
    {"a body of exactly the limit", &small_body, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
     0, 0},
    /* chunked: only the sum of the chunks can tell */
    {"chunks adding up over the limit", &small_body,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n", 413, 0},
    {"a header without a colon", &big, "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400, 0},
    {"not HTTP", &big, "GET / HTTX/1.1\r\n\r\n", 400, 0},
    {"a bad Content-Length", &big, "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, 0},
    {"Content-Length and chunked", &big,
     "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0},
    {"a bad chunk size", &big, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, 0},
    /* bytes that are not HTTP at all, e.g. a TLS ClientHello sent to the
     * plain HTTP port: the request line is invalid, so 400 (RFC 9112
     * section 3), not 501 (which says "this method is not implemented") */
    {"a TLS ClientHello", &big, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, 0},
    {"an unknown method", &big, "BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", 501, 400},
    /* the header section counts as received, line ends and whitespace too */
    {"15,000 empty headers over 16 KiB", &no_count, empty_headers, 431, 0},
    {"200 spaces before a value over 128 bytes", &kib, wide_ows, 0, 0},
    {"100 headers", &hundred, headers_100, 0, 0},
    {"101 headers over a cap of 100", &hundred, headers_101, 431, 0},
    /* strict framing (RFC 9112): a proxy that reads these differently
     * could smuggle a request past it */
    {"chunk data not followed by CRLF", &big,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", 400, 0},
    {"chunk data followed by CR and another byte", &big,
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX0\r\n\r\n", 400, 0},
    {"obsolete line folding", &big, "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400, 0},
    {"obsolete line folding with a tab", &big, "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\nHost: a\r\n\r\n", 400, 0},
    {"HTTP/0.9 (no version)", &big, "GET /\r\n\r\n", 400, 0},
};

TEST(http_parse_refusals_whole_and_bytewise)
{
    build_requests();
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        const struct refusal_case *c = &refusals[i];
        for (int how = FEED_WHOLE; how <= FEED_BYTEWISE; how++) {
            http_parser hp;
            http_parser_init(&hp, *c->limits);
            size_t used;
            enum http_parse_result res = feed(&hp, c->bytes, strlen(c->bytes), how, &used);
            if (!c->status) {
                ASSERT_MSG(res == HTTP_PARSE_REQUEST, "%s (%s): result %d, status %d", c->what, feed_name(how),
                           (int)res, hp.error_status);
            } else {
                ASSERT_MSG(res == HTTP_PARSE_ERROR, "%s (%s) was accepted", c->what, feed_name(how));
                ASSERT_MSG(hp.error_status == c->status || (c->or_status && hp.error_status == c->or_status),
                           "%s (%s): status %d (%s), not %d", c->what, feed_name(how), hp.error_status,
                           hp.error_reason ? hp.error_reason : "no reason", c->status);
                ASSERT_MSG(hp.error_reason != NULL, "%s (%s): no reason", c->what, feed_name(how));
            }
            http_request_free(http_parser_take(&hp));
            http_parser_free(&hp);
        }
    }
}

/* A wider limit lets the same 200 spaces through: the case above is the
 * header limit at work, not a parse error. And every llhttp leniency is
 * off (http.c's top comment). */
TEST(http_parse_strict_and_counted)
{
    build_requests();
    http_parser hp;
    http_parser_init(&hp, (http_limits){.max_header_bytes = 128, .max_body_bytes = 1024});
    ASSERT_EQ(hp.p.lenient_flags, 0);
    size_t used;
    ASSERT_EQ(http_parser_feed(&hp, wide_ows, strlen(wide_ows), &used), HTTP_PARSE_ERROR);
    ASSERT_EQ(hp.error_status, 431);
    http_parser_free(&hp);
    /* split at every byte, the chunk's CRLF is checked across the cut */
    static const char bad[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n";
    static const char good[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for (size_t cut = 0; cut <= sizeof bad - 1; cut++) {
        http_parser_init(&hp, big);
        ASSERT_MSG(feed(&hp, bad, sizeof bad - 1, FEED_SPLIT + (int)cut, &used) == HTTP_PARSE_ERROR &&
                       hp.error_status == 400,
                   "bad chunk, split at %zu: accepted", cut);
        http_request_free(http_parser_take(&hp));
        http_parser_free(&hp);
        http_parser_init(&hp, big);
        ASSERT_MSG(feed(&hp, good, sizeof good - 1, FEED_SPLIT + (int)cut, &used) == HTTP_PARSE_REQUEST,
                   "good chunk, split at %zu: refused (%d %s)", cut, hp.error_status,
                   hp.error_reason ? hp.error_reason : "");
        http_request *r = http_parser_take(&hp);
        ASSERT_BYTES_EQ(r->body.data, r->body.len, "abc", 3);
        http_request_free(r);
        http_parser_free(&hp);
    }
}

/* ---- responses ---- */

static const struct response_case {
    int status;
    const char *content_type, *body;
    size_t body_len;
    const char *headers[9]; /* name, value, ...: added before serializing */
    bool keep_alive, head_only;
    const char *want;
    size_t want_len;
} responses[] = {
    {200, "text/plain", BYTES("hello"), {0}, true, false,
     BYTES("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello")},
    {200, "text/plain", BYTES("hello"), {0}, false, false,
     BYTES("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")},
    {201, NULL, BYTES("a\0b"), {0}, true, false, BYTES("HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\na\0b")},
    /* HEAD: the length, but no body */
    {200, "text/html", BYTES("<p>hi</p>"), {0}, true, true,
     BYTES("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 9\r\n\r\n")},
    /* 204 and 304 have no length (and no body) */
    {204, NULL, BYTES("ignored"), {0}, true, false, BYTES("HTTP/1.1 204 No Content\r\n\r\n")},
    {304, NULL, NULL, 0, {0}, false, false, BYTES("HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n")},
    /* a party's framing headers are dropped: ours are the ones that count */
    {200, NULL, BYTES("abc"),
     {"Content-Length", "99", "Transfer-Encoding", "chunked", "Connection", "keep-alive", "X-Custom", "yes"}, true,
     false, BYTES("HTTP/1.1 200 OK\r\nx-custom: yes\r\ncontent-length: 3\r\n\r\nabc")},
    {299, NULL, NULL, 0, {0}, true, false, BYTES("HTTP/1.1 299 Unknown\r\ncontent-length: 0\r\n\r\n")},
};

TEST(http_serialize_responses)
{
    for (size_t i = 0; i < sizeof responses / sizeof *responses; i++) {
        const struct response_case *c = &responses[i];
        http_response *r = http_response_new(c->status, c->content_type, c->body, c->body_len);
        for (size_t h = 0; c->headers[h]; h += 2)
            http_headers_add(&r->headers, c->headers[h], strlen(c->headers[h]), c->headers[h + 1],
                             strlen(c->headers[h + 1]));
        chunk *out = http_response_serialize(r, c->keep_alive, c->head_only);
        ASSERT_MSG(out->len == c->want_len && !memcmp(chunk_bytes(out), c->want, c->want_len),
                   "response %zu: %s", i, unit_repr(chunk_bytes(out), out->len));
        chunk_unref(out);
        http_response_free(r);
    }
}

TEST(http_status_texts)
{
    static const struct {
        int status;
        const char *text;
    } cases[] = {
        {404, "Not Found"},
        {101, "Switching Protocols"},
        {413, "Payload Too Large"},
        {426, "Upgrade Required"},
        {431, "Request Header Fields Too Large"},
        {501, "Not Implemented"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_STR_EQ(http_status_text(cases[i].status), cases[i].text);
}

TEST(http_header_value_ok_cases)
{
    static const struct {
        const char *v;
        size_t len;
        bool ok;
    } cases[] = {
        {BYTES(""), true},
        {BYTES("text/plain; charset=utf-8"), true},
        {BYTES("tab\tok"), true},
        {BYTES("\xc3\xa9"), true},
        {BYTES("a\rb"), false},
        {BYTES("a\nb"), false},
        {BYTES("a\r\nSet-Cookie: x"), false},
        {BYTES("a\0b"), false},
        {"a\nb", 1, true}, /* only len bytes are checked */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_MSG(http_header_value_ok(cases[i].v, cases[i].len) == cases[i].ok, "%s",
                   unit_repr(cases[i].v, cases[i].len));
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

/* The parser's (NULL, NULL) leaves method and target for the parser to
 * set (nothing copied only to be freed); given ones are copied. */
TEST(http_request_new_defaults)
{
    http_request *r = http_request_new(NULL, NULL);
    ASSERT_NULL(r->method);
    ASSERT_NULL(r->target);
    ASSERT(r->keep_alive);
    http_request_free(r);
    char method[] = "GET", target[] = "/";
    r = http_request_new(method, target);
    method[0] = target[0] = 'x';
    ASSERT_STR_EQ(r->method, "GET");
    ASSERT_STR_EQ(r->target, "/");
    ASSERT(r->keep_alive);
    char *url = http_request_url(r);
    ASSERT_STR_EQ(url, "http://localhost/");
    free(url);
    http_request_free(r);
    http_request_free(NULL);
}

/* A request forwarded to another node: its headers and the extra ones, no
 * length framing of its own (the body's length is set), Connection and
 * Upgrade kept; and x-luaparty-* removed by prefix. */
TEST(http_request_serialize_for_forwarding)
{
    http_request *r = http_request_new("POST", "/parties/main/r?x=1");
    http_headers_add(&r->headers, "Upgrade", 7, "websocket", 9);
    http_headers_add(&r->headers, "connection", 10, "Upgrade", 7);
    http_headers_add(&r->headers, "content-length", 14, "999", 3);
    http_headers_add(&r->headers, "X-Luaparty-Hop", 14, "spoofed", 7);
    buf_append(&r->body, "hey", 3);
    ASSERT_EQ(http_headers_remove_prefix(&r->headers, "x-luaparty-"), 1);
    ASSERT(!http_headers_get(&r->headers, "x-luaparty-hop"));
    http_headers extra = {0};
    http_headers_add(&extra, "x-luaparty-hop", 14, "a", 1);
    chunk *c = http_request_serialize(r, &extra);
    const char *want = "POST /parties/main/r?x=1 HTTP/1.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                       "x-luaparty-hop: a\r\ncontent-length: 3\r\n\r\nhey";
    ASSERT_EQ(c->len, strlen(want));
    ASSERT(memcmp(chunk_bytes(c), want, c->len) == 0);
    chunk_unref(c);
    http_headers_free(&extra);
    http_request_free(r);
}
