/* fuzz_http.c - the HTTP side of a client connection, as server.c drives it.
 *
 * The input is a TCP byte stream (see fuzz_util.h for how its first bytes
 * cut it into pieces). Each piece is copied into its own heap block, so a
 * read past the piece is an ASan error, and fed to http_parser exactly as
 * server.c's feed() does: after a request, take it and feed the rest; stop
 * at an upgrade or an error. Every complete request then goes through what
 * the server does with it before a room sees it: route_parse, query_param
 * (_pk), http_request_url, ws_check_upgrade + ws_handshake_response, and a
 * response built from its headers through http_response_serialize, whose
 * output is parsed back and checked (no header injection, right framing). */
#include "config.h"
#include "fuzz_util.h"
#include "http.h"
#include "router.h"
#include "util.h"
#include "ws.h"

#include <string.h>

static config cfg;
static party party_main = {.name = "main"}, party_conns = {.name = "connections"};
static party *parties[] = {&party_main, &party_conns};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    config_defaults(&cfg);
    cfg.parties = parties;
    cfg.nparties = 2;
    return 0;
}

static bool token_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch)) return false;
    }
    return true;
}

static void check_route(const http_request *req)
{
    route rt;
    route_parse(&cfg, req->target, &rt);
    FUZZ_CHECK(memchr(rt.name, 0, sizeof rt.name) != NULL, "party name not terminated");
    FUZZ_CHECK(memchr(rt.room, 0, sizeof rt.room) != NULL, "room id not terminated");
    switch (rt.kind) {
    case ROUTE_ROOM:
        FUZZ_CHECK(rt.party == &party_main || rt.party == &party_conns, "ROUTE_ROOM without a party");
        FUZZ_CHECK(strcmp(rt.party->name, rt.name) == 0, "party %s routed as %s", rt.name, rt.party->name);
        FUZZ_CHECK(rt.room[0] != 0, "empty room id for %s", req->target);
        FUZZ_CHECK(strlen(rt.room) <= ROUTE_MAX_ROOM_ID, "room id too long");
        FUZZ_CHECK(strpbrk(rt.room, "/?#") == NULL, "room id '%s' holds a separator", rt.room);
        break;
    case ROUTE_UNKNOWN_PARTY:
        FUZZ_CHECK(rt.party == NULL, "unknown party with a party");
        break;
    case ROUTE_ID_TOO_LONG:
        FUZZ_CHECK(rt.party != NULL, "too long id without a party");
        break;
    case ROUTE_NOT_FOUND:
        break;
    default:
        FUZZ_CHECK(0, "bad route kind %d", (int)rt.kind);
    }

    char id[512];
    if (query_param(req->target, "_pk", id, sizeof id))
        FUZZ_CHECK(memchr(id, 0, sizeof id) != NULL, "_pk not terminated");
    char small[4];
    if (query_param(req->target, "x", small, sizeof small))
        FUZZ_CHECK(strlen(small) < sizeof small, "query_param overflowed a 4-byte buffer");
    char one[1];
    if (query_param(req->target, "", one, sizeof one)) FUZZ_CHECK(one[0] == 0, "cap 1 must give an empty string");
}

static void check_upgrade(const http_request *req)
{
    const char *why = NULL;
    int bad = ws_check_upgrade(req, &why);
    if (bad) {
        FUZZ_CHECK(bad == 400 || bad == 426, "ws_check_upgrade returned %d", bad);
        FUZZ_CHECK(why != NULL, "no reason for %d", bad);
        return;
    }
    chunk *hs = ws_handshake_response(req, NULL);
    const char *s = (const char *)chunk_bytes(hs);
    size_t n = hs->len;
    FUZZ_CHECK(n > 4 && memcmp(s + n - 4, "\r\n\r\n", 4) == 0, "handshake does not end the head");
    const char *end = memmem(s, n, "\r\n\r\n", 4);
    FUZZ_CHECK(end == s + n - 4, "handshake has an early blank line (header injection)");
    size_t lines = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '\n') FUZZ_CHECK(p > s && p[-1] == '\r', "bare LF in the handshake");
        if (*p == '\r') {
            FUZZ_CHECK(p[1] == '\n', "bare CR in the handshake");
            lines++;
        }
    }
    FUZZ_CHECK(lines == 3 || lines == 4, "handshake has %zu header lines", lines);
    chunk_unref(hs);
}

static void check_response(const http_request *req, uint8_t seed)
{
    int status = 100 + (int)(((unsigned)seed * 7 + req->headers.n + req->body.len) % 900);
    http_response *res = http_response_new(status, "text/plain", NULL, 0);
    size_t kept = 1; /* content-type */
    for (size_t i = 0; i < req->headers.n; i++) {
        const http_header *h = &req->headers.items[i];
        size_t vlen = strlen(h->value);
        /* what lua_request.c lets a party set */
        if (!token_ok(h->name) || !http_header_value_ok(h->value, vlen)) continue;
        http_headers_add(&res->headers, h->name, strlen(h->name), h->value, vlen);
        if (strcmp(h->name, "content-length") && strcmp(h->name, "transfer-encoding") && strcmp(h->name, "connection"))
            kept++;
    }
    if (req->body.len) buf_append(&res->body, req->body.data, req->body.len);
    bool head = strcmp(req->method, "HEAD") == 0;
    bool keep = req->keep_alive;
    chunk *ch = http_response_serialize(res, keep, head);
    const char *s = (const char *)chunk_bytes(ch);
    size_t n = ch->len;

    const char *end = memmem(s, n, "\r\n\r\n", 4);
    FUZZ_CHECK(end != NULL, "response has no end of head");
    char first[64];
    snprintf(first, sizeof first, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    FUZZ_CHECK(n >= strlen(first) && memcmp(s, first, strlen(first)) == 0, "bad status line");
    size_t lines = 0, cl_lines = 0;
    long long cl = -1;
    for (const char *line = s + strlen(first); line < end + 2;) {
        const char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        FUZZ_CHECK(eol != NULL, "unterminated header line");
        FUZZ_CHECK(memchr(line, '\n', (size_t)(eol - line)) == NULL && memchr(line, '\r', (size_t)(eol - line)) == NULL,
                   "CR or LF inside a header line (injection)");
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        FUZZ_CHECK(colon && colon > line && colon + 1 < eol && colon[1] == ' ', "header line without 'name: '");
        if ((size_t)(colon - line) == 14 && memcmp(line, "content-length", 14) == 0) {
            cl_lines++;
            cl = strtoll(colon + 2, NULL, 10);
        }
        lines++;
        line = eol + 2;
    }
    bool no_body = status == 204 || status == 304 || status < 200;
    size_t expect = kept + (no_body ? 0 : 1) + (keep ? 0 : 1);
    FUZZ_CHECK(lines == expect, "%zu header lines, expected %zu", lines, expect);
    FUZZ_CHECK(cl_lines == (no_body ? 0u : 1u), "%zu content-length lines", cl_lines);
    size_t body = n - (size_t)(end + 4 - s);
    if (!no_body) FUZZ_CHECK(cl == (long long)req->body.len, "content-length %lld for a %zu-byte body", cl, req->body.len);
    FUZZ_CHECK(body == (head || no_body ? 0 : req->body.len), "%zu body bytes written", body);
    chunk_unref(ch);
    http_response_free(res);
}

static void handle(http_request *req, uint8_t seed)
{
    FUZZ_CHECK(req != NULL, "a request was announced but none taken");
    FUZZ_CHECK(req->method && req->target && req->host, "request without method/target/host");
    check_route(req);
    char *url = http_request_url(req);
    FUZZ_CHECK(strncmp(url, "http://", 7) == 0, "bad url");
    free(url);
    check_upgrade(req);
    check_response(req, seed);
    http_request_free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    split sp;
    if (!split_init(&sp, data, size)) return 0;
    http_parser hp;
    /* a small body limit so the 413 path is reachable */
    http_parser_init(&hp, (http_limits){cfg.max_header, 4096, cfg.max_headers});
    size_t off = 0;
    bool done = false;
    int stalls = 0;
    while (off < sp.size && !done) {
        size_t n = split_next(&sp, sp.size - off);
        char *piece = xmalloc(n);
        memcpy(piece, sp.data + off, n);
        off += n;
        const char *p = piece;
        size_t left = n;
        while (left > 0 && !done) {
            size_t used = (size_t)-1;
            enum http_parse_result r = http_parser_feed(&hp, p, left, &used);
            FUZZ_CHECK(used <= left, "consumed %zu of %zu bytes", used, left);
            p += used;
            left -= used;
            switch (r) {
            case HTTP_PARSE_MORE:
                FUZZ_CHECK(left == 0, "MORE with %zu bytes left", left);
                break;
            case HTTP_PARSE_REQUEST:
                /* server.c loops while bytes are left: no progress twice in a
                 * row would spin it forever */
                stalls = used ? 0 : stalls + 1;
                FUZZ_CHECK(stalls < 2, "a request announced twice without consuming input");
                handle(http_parser_take(&hp), split_ctl(&sp));
                break;
            case HTTP_PARSE_UPGRADE:
                handle(http_parser_take(&hp), split_ctl(&sp));
                done = true; /* the rest is WebSocket */
                break;
            case HTTP_PARSE_ERROR:
                FUZZ_CHECK(hp.error_status >= 400 && hp.error_status <= 599, "error status %d", hp.error_status);
                FUZZ_CHECK(hp.error_reason != NULL, "error without a reason");
                done = true;
                break;
            default:
                FUZZ_CHECK(0, "bad parse result %d", (int)r);
            }
        }
        free(piece);
    }
    http_parser_free(&hp);
    return 0;
}
