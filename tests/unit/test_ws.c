/* test_ws.c - WebSocket handshake, frame encoding, and the wslay session
 * driven with fake I/O: client frames are built here and fed with
 * ws_session_feed; whatever the session writes is captured through the
 * on_write callback and parsed back into frames (as wslay's tests do).
 * The session tests are mostly tables of frame sequences, each fed whole,
 * byte by byte and (when short) split in two at every byte. */
#include "unit.h"

#include "util.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- capture of the session's output ---- */

enum { MAX_MSGS = 64 };

typedef struct wscap {
    buf out;                /* every byte written through on_write */
    int writes;             /* number of on_write calls */
    int nmsg;
    int ops[MAX_MSGS];
    buf msgs[MAX_MSGS];
} wscap;

static void cap_on_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    wscap *c = ud;
    ASSERT(c->nmsg < MAX_MSGS);
    c->ops[c->nmsg] = opcode;
    buf_init(&c->msgs[c->nmsg]);
    buf_append(&c->msgs[c->nmsg], data, len);
    c->nmsg++;
}

static void cap_on_write(void *ud, const uint8_t *data, size_t len)
{
    wscap *c = ud;
    c->writes++;
    buf_append(&c->out, data, len);
}

static const ws_events cap_events = {cap_on_message, cap_on_write};

static void cap_init(wscap *c)
{
    memset(c, 0, sizeof *c);
    buf_init(&c->out);
}

static void cap_free(wscap *c)
{
    for (int i = 0; i < c->nmsg; i++) buf_free(&c->msgs[i]);
    buf_free(&c->out);
}

/* ---- client frames ---- */

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

static void client_frame_ex(buf *b, int first_byte, const void *payload, size_t len, bool masked)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)first_byte;
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        h[hl++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        h[hl++] = m | 126;
        h[hl++] = (uint8_t)(len >> 8);
        h[hl++] = (uint8_t)len;
    } else {
        h[hl++] = m | 127;
        for (int i = 0; i < 8; i++) h[hl++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(h + hl, mask_key, 4);
        hl += 4;
    }
    buf_append(b, h, hl);
    size_t start = b->len;
    buf_append(b, payload, len);
    if (masked)
        for (size_t i = 0; i < len; i++) b->data[start + i] ^= (char)mask_key[i % 4];
}

static void client_frame(buf *b, bool fin, int opcode, const void *payload, size_t len)
{
    client_frame_ex(b, (fin ? 0x80 : 0) | opcode, payload, len, true);
}

static void client_close(buf *b, int code, const char *reason)
{
    uint8_t p[128];
    size_t n = 0;
    if (code) {
        p[n++] = (uint8_t)(code >> 8);
        p[n++] = (uint8_t)code;
    }
    if (reason) {
        memcpy(p + n, reason, strlen(reason));
        n += strlen(reason);
    }
    client_frame(b, true, WS_CLOSE, p, n);
}

/* ---- server frames ---- */

typedef struct frame {
    bool fin, masked;
    int opcode, rsv;
    const uint8_t *payload;
    size_t len;
} frame;

/* Parses the frame at *off; false if there is no complete frame there. */
static bool next_frame(const buf *b, size_t *off, frame *f)
{
    const uint8_t *d = (const uint8_t *)b->data + *off;
    size_t n = b->len - *off;
    if (n < 2) return false;
    f->fin = d[0] & 0x80;
    f->rsv = (d[0] >> 4) & 7;
    f->opcode = d[0] & 0x0f;
    f->masked = d[1] & 0x80;
    uint64_t len = d[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4) return false;
        len = (uint64_t)d[2] << 8 | d[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10) return false;
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | d[2 + i];
        hl = 10;
    }
    if (f->masked) hl += 4;
    if (n - hl < len) return false;
    f->payload = d + hl;
    f->len = (size_t)len;
    *off += hl + (size_t)len;
    return true;
}

/* The output must be exactly one close frame with this code (0: a close
 * frame without a status code). */
static void expect_single_close(const wscap *c, int code)
{
    size_t off = 0;
    frame f;
    ASSERT_MSG(next_frame(&c->out, &off, &f), "no frame written (%zu bytes)", c->out.len);
    ASSERT_EQ(f.opcode, WS_CLOSE);
    ASSERT(f.fin);
    ASSERT(!f.masked); /* servers never mask */
    ASSERT_EQ(f.rsv, 0);
    ASSERT_EQ(off, c->out.len);
    if (!code) {
        ASSERT_EQ(f.len, 0);
        return;
    }
    ASSERT_MSG(f.len >= 2, "close frame without a status code (expected %d)", code);
    ASSERT_EQ(f.payload[0] << 8 | f.payload[1], code);
}

/* ---- handshake ---- */

/* RFC 6455 section 1.3 (and 4.2.2): the key "dGhlIHNhbXBsZSBub25jZQ==" gives
 * "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (base64 of SHA-1 of key + GUID). */
TEST(ws_accept_key_rfc6455_example)
{
    char out[29];
    memset(out, 'x', sizeof out);
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(ws_accept_key_other)
{
    /* Sec-WebSocket-Accept for the key of RFC 6455 section 1.2's client. */
    char out[29];
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
    ASSERT_STR_EQ(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static http_request *upgrade_req(const char *method, const char *upgrade, const char *key, const char *version)
{
    http_request *r = http_request_new(method, "/parties/main/r1");
    if (upgrade) http_headers_add(&r->headers, "Upgrade", 7, upgrade, strlen(upgrade));
    http_headers_add(&r->headers, "Connection", 10, "Upgrade", 7);
    if (key) http_headers_add(&r->headers, "Sec-WebSocket-Key", 17, key, strlen(key));
    if (version) http_headers_add(&r->headers, "Sec-WebSocket-Version", 21, version, strlen(version));
    r->upgrade = true;
    return r;
}

static int check(http_request *r, const char **why)
{
    *why = NULL;
    int rv = ws_check_upgrade(r, why);
    http_request_free(r);
    return rv;
}

TEST(ws_check_upgrade_cases)
{
    static const struct {
        const char *method, *upgrade, *key, *version;
        int status;
        const char *why; /* in the reason, or NULL: not checked */
    } cases[] = {
        {"GET", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "13", 0, NULL},
        {"GET", "WebSocket", "dGhlIHNhbXBsZSBub25jZQ==", "13", 0, NULL},
        {"GET", "websocket", NULL, "13", 400, "Key"},
        {"GET", "websocket", "short", "13", 400, NULL},
        {"GET", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "8", 426, "Version"},
        {"GET", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", NULL, 426, NULL},
        {"POST", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "13", 400, "GET"},
        {"GET", "h2c", "dGhlIHNhbXBsZSBub25jZQ==", "13", 400, NULL},
        {"GET", NULL, "dGhlIHNhbXBsZSBub25jZQ==", "13", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *why;
        int status = check(upgrade_req(cases[i].method, cases[i].upgrade, cases[i].key, cases[i].version), &why);
        ASSERT_MSG(status == cases[i].status, "case %zu: status %d (%s)", i, status, why ? why : "");
        if (status) ASSERT_NOT_NULL(why);
        if (cases[i].why) ASSERT_CONTAINS(why, cases[i].why);
    }
}

TEST(ws_check_upgrade_from_parser)
{
    static const char req[] = "GET /parties/main/r1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, (http_limits){4096, 4096, 0});
    size_t used;
    ASSERT_EQ(http_parser_feed(&hp, req, sizeof req - 1, &used), HTTP_PARSE_UPGRADE);
    http_request *r = http_parser_take(&hp);
    http_parser_free(&hp);
    const char *why = NULL;
    ASSERT_EQ(ws_check_upgrade(r, &why), 0);
    chunk *c = ws_handshake_response(r, NULL);
    char *s = xstrndup((const char *)chunk_bytes(c), c->len);
    chunk_unref(c);
    http_request_free(r);
    ASSERT_STR_EQ(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Protocol: chat\r\n\r\n");
    free(s);
}

TEST(ws_handshake_without_protocol)
{
    http_request *r = upgrade_req("GET", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "13");
    chunk *c = ws_handshake_response(r, NULL);
    char *s = xstrndup((const char *)chunk_bytes(c), c->len);
    chunk_unref(c);
    http_request_free(r);
    ASSERT_STR_EQ(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    free(s);
}

/* ---- ws_msg_new ---- */

static void check_msg(size_t len, const uint8_t *hdr, size_t hl)
{
    uint8_t *payload = calloc(1, len ? len : 1); /* zeroed: gcc -O2 warns about passing unset bytes, even 0 of them */
    for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)(i * 31 + 7);
    chunk *c = ws_msg_new(WS_BINARY, payload, len);
    ASSERT_EQ(c->refs, 1);
    ASSERT_EQ(c->opcode, WS_BINARY);
    ASSERT_EQ(c->len, hl + len);
    ASSERT_MEM_EQ(chunk_bytes(c), hdr, hl);
    ASSERT(chunk_payload(c) == chunk_bytes(c) + hl);
    ASSERT_EQ(chunk_payload_len(c), len);
    ASSERT_MEM_EQ(chunk_payload(c), payload, len);
    /* and it parses back as one unmasked final frame */
    buf b;
    buf_init(&b);
    buf_append(&b, chunk_bytes(c), c->len);
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&b, &off, &f));
    ASSERT(f.fin && !f.masked && f.opcode == WS_BINARY && f.len == len);
    ASSERT_EQ(off, b.len);
    buf_free(&b);
    chunk_unref(c);
    free(payload);
}

TEST(ws_msg_new_length_encodings)
{
    static const struct {
        size_t len;
        const char *hdr;
        size_t hl;
    } cases[] = {
        {0, "\x82\x00", 2},
        {1, "\x82\x01", 2},
        {125, "\x82\x7d", 2},
        {126, "\x82\x7e\x00\x7e", 4},
        {127, "\x82\x7e\x00\x7f", 4},
        {65535, "\x82\x7e\xff\xff", 4},
        {65536, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10},
        {70000, "\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_msg(cases[i].len, (const uint8_t *)cases[i].hdr, cases[i].hl);
}

TEST(ws_msg_new_text_opcode)
{
    chunk *c = ws_msg_new(WS_TEXT, "Hello", 5);
    ASSERT_BYTES_EQ(chunk_bytes(c), c->len, "\x81\x05Hello", 7);
    ASSERT_EQ(c->opcode, WS_TEXT);
    ASSERT_BYTES_EQ(chunk_payload(c), chunk_payload_len(c), "Hello", 5);
    chunk_unref(c);
    c = ws_msg_new(WS_TEXT, NULL, 0);
    ASSERT_BYTES_EQ(chunk_bytes(c), c->len, "\x81\x00", 2);
    ASSERT_EQ(chunk_payload_len(c), 0);
    chunk_unref(c);
}

/* ---- session fixture ---- */

/* A session and the capture of what it does. */
typedef struct fixture {
    wscap c;
    ws_session s;
} fixture;

static void fx_init(fixture *f, size_t max_message)
{
    cap_init(&f->c);
    ASSERT_EQ(ws_session_init(&f->s, max_message, &cap_events, &f->c), 0);
}

static int fx_feed(fixture *f, const void *data, size_t len)
{
    return ws_session_feed(&f->s, data, len);
}

static void fx_free(fixture *f)
{
    ws_session_free(&f->s);
    cap_free(&f->c);
}

/* One frame a client sends: first byte (FIN, RSV bits, opcode), payload.
 * With raw, the payload is the whole frame, as written. */
typedef struct fspec {
    bool on; /* false: the end of the list */
    int first;
    const char *payload; /* NULL: len bytes counting up from 0 */
    size_t len;
    bool unmasked, raw;
} fspec;

enum { FIN = 0x80 };
#define F(first, lit) {true, first, lit, sizeof lit - 1, false, false}
#define F_COUNTING(first, n) {true, first, NULL, n, false, false}
#define F_UNMASKED(first, lit) {true, first, lit, sizeof lit - 1, true, false}
#define F_RAW(lit) {true, 0, lit, sizeof lit - 1, false, true}
#define MAX_FRAMES 8

/* Appends the frames to b. done[k] gets the offset where the k-th message
 * is complete (a final data or continuation frame ends); returns how many. */
static int build(buf *b, const fspec *frames, int done_cap, size_t *done)
{
    int n = 0;
    for (int i = 0; i < MAX_FRAMES && frames[i].on; i++) {
        const fspec *f = &frames[i];
        if (f->raw) {
            buf_append(b, f->payload, f->len);
            continue;
        }
        uint8_t counting[256];
        for (size_t k = 0; k < sizeof counting; k++) counting[k] = (uint8_t)k;
        ASSERT(f->payload || f->len <= sizeof counting);
        client_frame_ex(b, f->first, f->payload ? (const void *)f->payload : counting, f->len, !f->unmasked);
        if ((f->first & FIN) && (f->first & 0x08) == 0 && n < done_cap) done[n++] = b->len;
    }
    return n;
}

/* ---- session: streams that are delivered ---- */

typedef struct msg_want {
    int op;
    const char *data;
    size_t len;
} msg_want;

#define M(op, lit) {op, lit, sizeof lit - 1}

static const struct delivery_case {
    const char *what;
    fspec frames[MAX_FRAMES];
    size_t max_message;
    msg_want msgs[4];
    const char *out; /* everything the session writes back */
    size_t out_len;
} deliveries[] = {
    /* RFC 6455 section 5.7: a single-frame masked text message "Hello" */
    {"RFC 5.7 masked text", {F_RAW("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")}, 1 << 20,
     {M(WS_TEXT, "Hello")}, "", 0},
    /* the RFC's masked ping "Hello" gets its unmasked pong; pings are not messages */
    {"RFC 5.7 ping", {F_RAW("\x89\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")}, 1 << 20, {{0}},
     "\x8a\x05Hello", 7},
    {"text then binary (extended length)", {F(FIN | WS_TEXT, "first"), F_COUNTING(FIN | WS_BINARY, 200)}, 1 << 20,
     {M(WS_TEXT, "first"), {WS_BINARY, NULL, 200}}, "", 0},
    /* control frames may come between fragments */
    {"fragmented, a ping between",
     {F(WS_TEXT, "Hel"), F(FIN | WS_PING, "mid"), F(0, "lo, "), F(0, ""), F(FIN, "world")}, 1 << 20,
     {M(WS_TEXT, "Hello, world")}, "\x8a\x03mid", 5},
    {"an unsolicited pong is ignored", {F(FIN | WS_PONG, "x"), F(FIN | WS_TEXT, "t")}, 1 << 20,
     {M(WS_TEXT, "t")}, "", 0},
    {"binary need not be UTF-8", {F(FIN | WS_BINARY, "\xff\xfe\x00")}, 1 << 20, {M(WS_BINARY, "\xff\xfe\x00")}, "",
     0},
    {"a message of exactly max_message", {F(WS_BINARY, "01234567"), F(FIN, "89abcdef")}, 16,
     {M(WS_BINARY, "0123456789abcdef")}, "", 0},
    {"an empty ping, then a 5-byte one", {F(FIN | WS_PING, ""), F(FIN | WS_PING, "abcde")}, 1 << 20, {{0}},
     "\x8a\x00\x8a\x05" "abcde", 9},
};

static void check_delivery(const struct delivery_case *c, const buf *in, const size_t *done, int ndone, int how)
{
    fixture f;
    fx_init(&f, c->max_message);
    if (how == -1) {
        for (size_t i = 0; i < in->len; i++) ASSERT_EQ(fx_feed(&f, in->data + i, 1), 0);
    } else {
        size_t cut = how == -2 ? in->len : (size_t)how;
        ASSERT_EQ(fx_feed(&f, in->data, cut), 0);
        int complete = 0; /* messages whose last byte came in the first part */
        for (int k = 0; k < ndone; k++) complete += done[k] <= cut;
        ASSERT_MSG(f.c.nmsg == complete, "%s, cut at %zu: %d messages, not %d", c->what, cut, f.c.nmsg, complete);
        ASSERT_EQ(fx_feed(&f, in->data + cut, in->len - cut), 0);
    }
    int want = 0;
    while (want < 4 && c->msgs[want].op) want++;
    ASSERT_MSG(f.c.nmsg == want, "%s (%d): %d messages, not %d", c->what, how, f.c.nmsg, want);
    uint8_t counting[256];
    for (size_t k = 0; k < sizeof counting; k++) counting[k] = (uint8_t)k;
    for (int k = 0; k < want; k++) {
        const void *data = c->msgs[k].data ? (const void *)c->msgs[k].data : counting;
        ASSERT_MSG(f.c.ops[k] == c->msgs[k].op && f.c.msgs[k].len == c->msgs[k].len &&
                       (!c->msgs[k].len || !memcmp(f.c.msgs[k].data, data, c->msgs[k].len)),
                   "%s (%d): message %d is opcode %d %s", c->what, how, k, f.c.ops[k],
                   unit_repr(f.c.msgs[k].data, f.c.msgs[k].len));
    }
    ASSERT_MSG(f.c.out.len == c->out_len && (!c->out_len || !memcmp(f.c.out.data, c->out, c->out_len)),
               "%s (%d): wrote %s", c->what, how, unit_repr(f.c.out.data, f.c.out.len));
    ASSERT_MSG(!f.s.protocol_error && !ws_session_finished(&f.s) && !ws_session_close_sent(&f.s),
               "%s (%d): the session failed or closed", c->what, how);
    fx_free(&f);
}

TEST(ws_session_delivers_every_way)
{
    for (size_t i = 0; i < sizeof deliveries / sizeof *deliveries; i++) {
        buf in;
        buf_init(&in);
        size_t done[MAX_FRAMES];
        int ndone = build(&in, deliveries[i].frames, MAX_FRAMES, done);
        if (deliveries[i].frames[0].raw) { /* one raw frame: its message, if any, is complete at its end */
            ndone = deliveries[i].msgs[0].op != 0;
            done[0] = in.len;
        }
        check_delivery(&deliveries[i], &in, done, ndone, -2); /* whole */
        check_delivery(&deliveries[i], &in, done, ndone, -1); /* byte by byte */
        for (size_t cut = 0; cut <= in.len; cut++) check_delivery(&deliveries[i], &in, done, ndone, (int)cut);
        buf_free(&in);
    }
}

TEST(ws_session_many_frames_in_one_feed)
{
    buf in;
    buf_init(&in);
    char text[32];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(text, sizeof text, "message %d", i);
        client_frame(&in, true, WS_TEXT, text, (size_t)n);
    }
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    ASSERT_EQ(f.c.nmsg, 40);
    for (int i = 0; i < 40; i++) {
        int n = snprintf(text, sizeof text, "message %d", i);
        ASSERT_BYTES_EQ(f.c.msgs[i].data, f.c.msgs[i].len, text, (size_t)n);
    }
    fx_free(&f);
    buf_free(&in);
}

/* Larger than wslay's 4 KiB read buffer, with extended lengths. */
TEST(ws_session_large_messages)
{
    size_t sizes[] = {126, 4096, 65535, 65536, 200000};
    buf in;
    buf_init(&in);
    uint8_t *data = malloc(200000);
    for (size_t i = 0; i < 200000; i++) data[i] = (uint8_t)(i ^ (i >> 8));
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) client_frame(&in, true, WS_BINARY, data, sizes[k]);
    client_frame(&in, true, WS_PING, "p", 1);
    client_frame(&in, true, WS_TEXT, "after", 5);
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    ASSERT_EQ(f.c.nmsg, 6);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        ASSERT_BYTES_EQ(f.c.msgs[k].data, f.c.msgs[k].len, data, sizes[k]);
    ASSERT_BYTES_EQ(f.c.msgs[5].data, f.c.msgs[5].len, "after", 5);
    ASSERT_BYTES_EQ(f.c.out.data, f.c.out.len, "\x8a\x01p", 3);
    free(data);
    fx_free(&f);
    buf_free(&in);
}

/* The largest ping allowed (125 bytes) is answered with the same payload. */
TEST(ws_session_ping_125_bytes)
{
    buf in;
    buf_init(&in);
    char p125[125];
    memset(p125, 'z', sizeof p125);
    client_frame(&in, true, WS_PING, p125, sizeof p125);
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    size_t off = 0;
    frame fr;
    ASSERT(next_frame(&f.c.out, &off, &fr));
    ASSERT(fr.opcode == WS_PONG && fr.fin && !fr.masked);
    ASSERT_BYTES_EQ(fr.payload, fr.len, p125, sizeof p125);
    ASSERT_EQ(off, f.c.out.len);
    ASSERT_EQ(f.c.nmsg, 0);
    fx_free(&f);
    buf_free(&in);
}

/* ---- session: streams that are refused ---- */

static const struct refusal_case {
    const char *what;
    fspec frames[MAX_FRAMES];
    size_t max_message;
    int code; /* the close code sent */
} refusals[] = {
    {"an unmasked client frame", {F_UNMASKED(FIN | WS_TEXT, "Hello")}, 1 << 20, 1002},
    {"a reserved opcode", {F(FIN | 0x3, "x")}, 1 << 20, 1002},
    {"RSV1 without an extension", {F(FIN | 0x40 | WS_TEXT, "x")}, 1 << 20, 1002},
    {"a continuation without a start", {F(FIN, "x")}, 1 << 20, 1002},
    {"a new message inside a fragmented one", {F(WS_TEXT, "a"), F(FIN | WS_TEXT, "b")}, 1 << 20, 1002},
    /* ws.h: protocol_error is "wslay rejected a frame". A text message that
     * is not UTF-8 is rejected by wslay with close 1007 (RFC 6455 8.1). */
    {"text that is not UTF-8", {F(FIN | WS_TEXT, "\xff\xfe")}, 1 << 20, 1007},
    {"a message over max_message", {F_COUNTING(FIN | WS_TEXT, 32)}, 16, 1009},
    {"a fragmented message over max_message", {F(WS_BINARY, "0123456789"), F(FIN, "0123456789")}, 16, 1009},
    /* 2^40 bytes announced: refused from the header alone (wslay looks at
     * the length once payload arrives) */
    {"a huge length", {F_RAW("\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00\x37\xfa\x21\x3d" "some payload")}, 1 << 20,
     1009},
    /* a close frame with a code the peer may not send (999, or 1005 which
     * only means "no code") is a protocol error: answered with 1002 */
    {"close code 999", {F(FIN | WS_CLOSE, "\x03\xe7")}, 1 << 20, 1002},
    {"close code 1005", {F(FIN | WS_CLOSE, "\x03\xed")}, 1 << 20, 1002},
    {"close code 1006", {F(FIN | WS_CLOSE, "\x03\xee")}, 1 << 20, 1002},
    {"close code 5000", {F(FIN | WS_CLOSE, "\x13\x88")}, 1 << 20, 1002},
    /* Frames wslay's frame layer rejects (it would send a close without a
     * status code, which the peer sees as 1005), and a close frame whose
     * payload cannot hold a code: refused from the header with 1002 */
    {"a fragmented control frame", {F(WS_PING, "x")}, 1 << 20, 1002},
    {"a 126-byte control frame", {F_COUNTING(FIN | WS_PING, 126)}, 1 << 20, 1002},
    {"a 1-byte close payload", {F(FIN | WS_CLOSE, "\x03")}, 1 << 20, 1002},
    /* 5 bytes announced with the 16-bit extended length */
    {"a non-minimal length", {F_RAW("\x81\xfe\x00\x05\x37\xfa\x21\x3d\x5f\x9f\x4d\x51\x58")}, 1 << 20, 1002},
    {"a 64-bit length with the top bit set",
     {F_RAW("\x82\xff\x80\x00\x00\x00\x00\x01\x00\x00\x37\xfa\x21\x3d" "x")}, 1 << 20, 1002},
    /* 2^62 bytes announced and not one byte of payload: 1009 at once */
    {"a header alone announcing 2^62 bytes", {F_RAW("\x82\xff\x40\x00\x00\x00\x00\x00\x00\x00\x37\xfa\x21\x3d")},
     1 << 20, 1009},
    /* a fragment whose header takes the message over the limit, before its payload */
    {"a fragment header over max_message", {F(WS_TEXT, "0123456789"), F_RAW("\x80\x87\x37\xfa\x21\x3d")}, 16,
     1009},
    {"a pong between fragments, then one over the limit",
     {F(WS_BINARY, "0123456789"), F(FIN | WS_PONG, "p"), F_RAW("\x80\x87\x37\xfa\x21\x3d")}, 16, 1009},
};

static void check_refusal(const struct refusal_case *c, const buf *in, bool bytewise)
{
    fixture f;
    fx_init(&f, c->max_message);
    int rv = 0;
    if (!bytewise) rv = fx_feed(&f, in->data, in->len);
    for (size_t i = 0; bytewise && i < in->len && rv == 0; i++) rv = fx_feed(&f, in->data + i, 1);
    const char *how = bytewise ? "byte by byte" : "whole";
    ASSERT_MSG(f.c.nmsg == 0, "%s (%s): %d messages delivered", c->what, how, f.c.nmsg);
    ASSERT_MSG(f.s.protocol_error, "%s (%s): no protocol error", c->what, how);
    ASSERT_MSG(ws_session_close_sent(&f.s), "%s (%s): no close sent", c->what, how);
    /* exactly one close frame goes out */
    size_t off = 0;
    frame fr;
    ASSERT_MSG(next_frame(&f.c.out, &off, &fr) && fr.opcode == WS_CLOSE && fr.fin && !fr.masked && !fr.rsv,
               "%s (%s): not a close frame: %s", c->what, how, unit_repr(f.c.out.data, f.c.out.len));
    ASSERT_MSG(off == f.c.out.len, "%s (%s): more than the close frame: %s", c->what, how,
               unit_repr(f.c.out.data, f.c.out.len));
    int code = fr.len >= 2 ? fr.payload[0] << 8 | fr.payload[1] : 0;
    ASSERT_MSG(code == c->code, "%s (%s): close code %d, not %d", c->what, how, code, c->code);
    fx_free(&f);
}

TEST(ws_session_refuses_whole_and_bytewise)
{
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        buf in;
        buf_init(&in);
        size_t done[MAX_FRAMES];
        build(&in, refusals[i].frames, MAX_FRAMES, done);
        check_refusal(&refusals[i], &in, false);
        check_refusal(&refusals[i], &in, true);
        buf_free(&in);
    }
}

/* ---- session: closing ---- */

TEST(ws_session_client_close_is_echoed)
{
    buf in;
    buf_init(&in);
    client_close(&in, 1000, "bye");
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    ASSERT_EQ(f.c.nmsg, 0);
    ASSERT_EQ(f.s.close_code, 1000);
    expect_single_close(&f.c, 1000);
    ASSERT(ws_session_close_sent(&f.s));
    ASSERT(ws_session_finished(&f.s));
    ASSERT(!f.s.protocol_error);
    /* bytes after the close are ignored */
    buf_free(&in);
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "late", 4);
    size_t before = f.c.out.len;
    fx_feed(&f, in.data, in.len);
    ASSERT_EQ(f.c.nmsg, 0);
    ASSERT_EQ(f.c.out.len, before);
    fx_free(&f);
    buf_free(&in);
}

TEST(ws_session_client_close_without_code)
{
    buf in;
    buf_init(&in);
    client_close(&in, 0, NULL);
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    ASSERT_EQ(f.s.close_code, 1005);
    ASSERT(ws_session_close_sent(&f.s));
    ASSERT(ws_session_finished(&f.s));
    size_t off = 0;
    frame fr;
    ASSERT(next_frame(&f.c.out, &off, &fr));
    ASSERT_EQ(fr.opcode, WS_CLOSE);
    fx_free(&f);
    buf_free(&in);
}

TEST(ws_session_server_close_then_client_answer)
{
    fixture f;
    fx_init(&f, 1 << 20);
    ws_session_close(&f.s, 1001, "going away", 10);
    ASSERT(ws_session_close_sent(&f.s));
    size_t off = 0;
    frame fr;
    ASSERT(next_frame(&f.c.out, &off, &fr));
    ASSERT_EQ(fr.opcode, WS_CLOSE);
    ASSERT_BYTES_EQ(fr.payload, fr.len, "\x03\xe9going away", 12);
    ASSERT_EQ(off, f.c.out.len);
    ASSERT(!ws_session_finished(&f.s)); /* waiting for the peer's close */
    ws_session_close(&f.s, 1000, "again", 5); /* only once */
    ASSERT_EQ(off, f.c.out.len);
    /* a message still in flight from the client is delivered */
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "in flight", 9);
    client_close(&in, 1001, NULL);
    ASSERT_EQ(fx_feed(&f, in.data, in.len), 0);
    ASSERT_EQ(f.c.nmsg, 1);
    ASSERT_EQ(f.s.close_code, 1001);
    ASSERT_EQ(off, f.c.out.len); /* no second close frame */
    ASSERT(ws_session_finished(&f.s));
    buf_free(&in);
    fx_free(&f);
}

TEST(ws_session_close_long_reason_truncated)
{
    fixture f;
    fx_init(&f, 1 << 20);
    char reason[300];
    memset(reason, 'r', sizeof reason);
    ws_session_close(&f.s, 4000, reason, sizeof reason);
    ASSERT(ws_session_close_sent(&f.s));
    size_t off = 0;
    frame fr;
    ASSERT(next_frame(&f.c.out, &off, &fr));
    ASSERT_EQ(fr.opcode, WS_CLOSE);
    ASSERT_EQ(fr.len, 125); /* a control frame payload is at most 125 bytes */
    fx_free(&f);
}

/* A long reason is cut at a character boundary, never inside one: the
 * longest prefix of at most 123 bytes that is still UTF-8. */
TEST(ws_session_close_reason_cut_between_characters)
{
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e"}; /* é € 𝄞 */
    for (size_t k = 0; k < 3; k++) {
        for (size_t lead = 0; lead < 4; lead++) { /* every alignment of the characters against byte 123 */
            buf reason;
            buf_init(&reason);
            for (size_t i = 0; i < lead; i++) buf_appendstr(&reason, "a");
            while (reason.len < 200) buf_appendstr(&reason, chars[k]);
            fixture f;
            fx_init(&f, 1 << 20);
            ws_session_close(&f.s, 4000, reason.data, reason.len);
            size_t off = 0;
            frame fr;
            ASSERT(next_frame(&f.c.out, &off, &fr));
            ASSERT_EQ(fr.opcode, WS_CLOSE);
            size_t n = fr.len - 2, clen = strlen(chars[k]);
            ASSERT_MSG(utf8_valid(fr.payload + 2, n), "%s after %zu bytes: the reason cut is not UTF-8: %s", chars[k],
                       lead, unit_repr((const char *)fr.payload + 2, n));
            ASSERT_MSG(n <= 123 && n + clen > 123, "cut at %zu bytes", n);
            ASSERT_BYTES_EQ(fr.payload + 2, n, reason.data, n);
            fx_free(&f);
            buf_free(&reason);
        }
    }
}

TEST(ws_session_empty_feed)
{
    fixture f;
    fx_init(&f, 1 << 20);
    ASSERT_EQ(fx_feed(&f, NULL, 0), 0);
    ASSERT_EQ(f.c.nmsg, 0);
    ASSERT_EQ(f.c.out.len, 0);
    ASSERT(!ws_session_finished(&f.s));
    ws_session_free(&f.s); /* twice is harmless */
    fx_free(&f);
}

/* Parking: the wslay context is freed only between messages, and a parked
 * session receives the next message as if nothing happened, even when the
 * bytes arrive one at a time and a fragmented message spans the reads. */
TEST(ws_session_parks_only_between_messages)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "one", 3);
    size_t first = in.len;
    client_frame(&in, false, WS_TEXT, "tw", 2);
    client_frame(&in, true, 0, "o", 1);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, first), 0);
    ws_session_park(&s);
    ASSERT(s.ctx == NULL); /* a whole message was read: parked */
    for (size_t i = first; i < in.len; i++) {
        ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data + i, 1), 0);
        ws_session_park(&s);
        if (i + 1 < in.len) ASSERT(s.ctx != NULL); /* mid-frame or mid-message: kept */
    }
    ASSERT(s.ctx == NULL);
    ASSERT_EQ(c.nmsg, 2);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "one", 3);
    ASSERT_BYTES_EQ(c.msgs[1].data, c.msgs[1].len, "two", 3);
    /* a parked session still answers a ping and a close */
    buf more;
    buf_init(&more);
    client_frame(&more, true, WS_PING, "p", 1);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)more.data, more.len), 0);
    ASSERT_BYTES_EQ(c.out.data, c.out.len, "\x8a\x01p", 3);
    ws_session_close(&s, 1000, "", 0);
    ASSERT(ws_session_close_sent(&s));
    ws_session_park(&s);
    ASSERT(s.ctx != NULL); /* a close under way: never parked */
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
    buf_free(&more);
}

/* Frame boundaries are followed whether a header comes whole (with a 7-,
 * 16- or 64-bit length) or split across two reads at any byte of the first
 * headers and around the second message: parked exactly when the first read
 * ends between messages. */
TEST(ws_session_tracks_headers_whole_and_split)
{
    static char big[70000];
    memset(big, 'x', sizeof big);
    size_t sizes[] = {5, 300, sizeof big};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        buf in;
        buf_init(&in);
        client_frame(&in, false, WS_BINARY, big, sizes[k]);
        client_frame(&in, true, 0, "!", 1);
        size_t first = in.len; /* the end of the first (fragmented) message */
        client_frame(&in, true, WS_TEXT, "end", 3);
        for (size_t at = 1; at < in.len; at++) {
            if (at > 16 && at + 16 < first) at = first - 16; /* not every payload byte */
            wscap c;
            cap_init(&c);
            ws_session s;
            ws_session_init(&s, 1 << 20, &cap_events, &c);
            ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, at), 0);
            ws_session_park(&s);
            ASSERT(at == first ? s.ctx == NULL : s.ctx != NULL);
            ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data + at, in.len - at), 0);
            ws_session_park(&s);
            ASSERT(s.ctx == NULL);
            ASSERT_EQ(c.nmsg, 2);
            ASSERT_EQ(c.msgs[0].len, sizes[k] + 1);
            ASSERT_BYTES_EQ(c.msgs[1].data, c.msgs[1].len, "end", 3);
            ws_session_free(&s);
            cap_free(&c);
        }
        buf_free(&in);
    }
}
