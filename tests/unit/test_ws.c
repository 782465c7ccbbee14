/* test_ws.c - WebSocket handshake, frame encoding, and the wslay session
 * driven with fake I/O: client frames are built here and fed with
 * ws_session_feed; whatever the session writes is captured through the
 * on_write callback and parsed back into frames (as wslay's tests do). */
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
    static const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    const char *why;
    ASSERT_EQ(check(upgrade_req("GET", "websocket", key, "13"), &why), 0);
    ASSERT_EQ(check(upgrade_req("GET", "WebSocket", key, "13"), &why), 0);
    ASSERT_EQ(check(upgrade_req("GET", "websocket", NULL, "13"), &why), 400);
    ASSERT_NOT_NULL(why);
    ASSERT_CONTAINS(why, "Key");
    ASSERT_EQ(check(upgrade_req("GET", "websocket", "short", "13"), &why), 400);
    ASSERT_EQ(check(upgrade_req("GET", "websocket", key, "8"), &why), 426);
    ASSERT_CONTAINS(why, "Version");
    ASSERT_EQ(check(upgrade_req("GET", "websocket", key, NULL), &why), 426);
    ASSERT_EQ(check(upgrade_req("POST", "websocket", key, "13"), &why), 400);
    ASSERT_CONTAINS(why, "GET");
    ASSERT_EQ(check(upgrade_req("GET", "h2c", key, "13"), &why), 400);
    ASSERT_EQ(check(upgrade_req("GET", NULL, key, "13"), &why), 400);
}

TEST(ws_check_upgrade_from_parser)
{
    static const char req[] = "GET /parties/main/r1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
    http_parser hp;
    http_parser_init(&hp, (http_limits){4096, 4096});
    size_t used;
    ASSERT_EQ(http_parser_feed(&hp, req, sizeof req - 1, &used), HTTP_PARSE_UPGRADE);
    http_request *r = http_parser_take(&hp);
    http_parser_free(&hp);
    const char *why = NULL;
    ASSERT_EQ(ws_check_upgrade(r, &why), 0);
    chunk *c = ws_handshake_response(r);
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
    chunk *c = ws_handshake_response(r);
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
    check_msg(0, (const uint8_t *)"\x82\x00", 2);
    check_msg(1, (const uint8_t *)"\x82\x01", 2);
    check_msg(125, (const uint8_t *)"\x82\x7d", 2);
    check_msg(126, (const uint8_t *)"\x82\x7e\x00\x7e", 4);
    check_msg(127, (const uint8_t *)"\x82\x7e\x00\x7f", 4);
    check_msg(65535, (const uint8_t *)"\x82\x7e\xff\xff", 4);
    check_msg(65536, (const uint8_t *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    check_msg(70000, (const uint8_t *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10);
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

/* ---- session ---- */

TEST(ws_session_rfc_masked_text)
{
    /* RFC 6455 section 5.7: a single-frame masked text message "Hello" */
    static const uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    wscap c;
    cap_init(&c);
    ws_session s;
    ASSERT_EQ(ws_session_init(&s, 1 << 20, &cap_events, &c), 0);
    ASSERT_EQ(ws_session_feed(&s, in, sizeof in), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_EQ(c.ops[0], WS_TEXT);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "Hello", 5);
    ASSERT_EQ(c.out.len, 0); /* nothing to answer */
    ASSERT(!s.protocol_error);
    ASSERT(!ws_session_finished(&s));
    ASSERT(!ws_session_close_sent(&s));
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_byte_by_byte)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "first", 5);
    uint8_t big[300];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)i;
    client_frame(&in, true, WS_BINARY, big, sizeof big);
    wscap c;
    cap_init(&c);
    ws_session s;
    ASSERT_EQ(ws_session_init(&s, 1 << 20, &cap_events, &c), 0);
    for (size_t i = 0; i < in.len; i++) ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data + i, 1), 0);
    ASSERT_EQ(c.nmsg, 2);
    ASSERT_EQ(c.ops[0], WS_TEXT);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "first", 5);
    ASSERT_EQ(c.ops[1], WS_BINARY);
    ASSERT_BYTES_EQ(c.msgs[1].data, c.msgs[1].len, big, sizeof big);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
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
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 40);
    for (int i = 0; i < 40; i++) {
        int n = snprintf(text, sizeof text, "message %d", i);
        ASSERT_BYTES_EQ(c.msgs[i].data, c.msgs[i].len, text, (size_t)n);
    }
    ws_session_free(&s);
    cap_free(&c);
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
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 6);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        ASSERT_BYTES_EQ(c.msgs[k].data, c.msgs[k].len, data, sizes[k]);
    ASSERT_BYTES_EQ(c.msgs[5].data, c.msgs[5].len, "after", 5);
    ASSERT_BYTES_EQ(c.out.data, c.out.len, "\x8a\x01p", 3);
    free(data);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_fragmented_message)
{
    buf in;
    buf_init(&in);
    client_frame(&in, false, WS_TEXT, "Hel", 3);
    client_frame(&in, true, WS_PING, "mid", 3); /* control frames may come between fragments */
    client_frame(&in, false, 0, "lo, ", 4);
    client_frame(&in, false, 0, "", 0);
    client_frame(&in, true, 0, "world", 5);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    /* in two halves, cutting a fragment */
    size_t half = in.len / 2;
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, half), 0);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data + half, in.len - half), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_EQ(c.ops[0], WS_TEXT);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "Hello, world", 12);
    ASSERT_BYTES_EQ(c.out.data, c.out.len, "\x8a\x03mid", 5);
    ASSERT(!s.protocol_error);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_ping_gets_pong_with_same_payload)
{
    /* RFC 6455 section 5.7: masked ping "Hello" */
    static const uint8_t in[] = {0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, in, sizeof in), 0);
    ASSERT_EQ(c.nmsg, 0); /* pings are not messages */
    /* the RFC's unmasked pong "Hello" */
    ASSERT_BYTES_EQ(c.out.data, c.out.len, "\x8a\x05Hello", 7);
    ASSERT(!ws_session_finished(&s));
    /* an empty ping and a 125-byte ping (the largest allowed) */
    buf more;
    buf_init(&more);
    client_frame(&more, true, WS_PING, "", 0);
    char p125[125];
    memset(p125, 'z', sizeof p125);
    client_frame(&more, true, WS_PING, p125, sizeof p125);
    c.out.len = 0;
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)more.data, more.len), 0);
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT(f.opcode == WS_PONG && f.len == 0 && !f.masked);
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT(f.opcode == WS_PONG && !f.masked);
    ASSERT_BYTES_EQ(f.payload, f.len, p125, sizeof p125);
    ASSERT_EQ(off, c.out.len);
    ASSERT(!s.protocol_error);
    buf_free(&more);
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_unsolicited_pong_ignored)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_PONG, "x", 1);
    client_frame(&in, true, WS_TEXT, "t", 1);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_EQ(c.out.len, 0);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_client_close_is_echoed)
{
    buf in;
    buf_init(&in);
    client_close(&in, 1000, "bye");
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT_EQ(s.close_code, 1000);
    expect_single_close(&c, 1000);
    ASSERT(ws_session_close_sent(&s));
    ASSERT(ws_session_finished(&s));
    ASSERT(!s.protocol_error);
    /* bytes after the close are ignored */
    buf_free(&in);
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "late", 4);
    size_t before = c.out.len;
    ws_session_feed(&s, (const uint8_t *)in.data, in.len);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT_EQ(c.out.len, before);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_client_close_without_code)
{
    buf in;
    buf_init(&in);
    client_close(&in, 0, NULL);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(s.close_code, 1005);
    ASSERT(ws_session_close_sent(&s));
    ASSERT(ws_session_finished(&s));
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT_EQ(f.opcode, WS_CLOSE);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_server_close_then_client_answer)
{
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ws_session_close(&s, 1001, "going away", 10);
    ASSERT(ws_session_close_sent(&s));
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT_EQ(f.opcode, WS_CLOSE);
    ASSERT_BYTES_EQ(f.payload, f.len, "\x03\xe9going away", 12);
    ASSERT_EQ(off, c.out.len);
    ASSERT(!ws_session_finished(&s)); /* waiting for the peer's close */
    ws_session_close(&s, 1000, "again", 5); /* only once */
    ASSERT_EQ(off, c.out.len);
    /* a message still in flight from the client is delivered */
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "in flight", 9);
    client_close(&in, 1001, NULL);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_EQ(s.close_code, 1001);
    ASSERT_EQ(off, c.out.len); /* no second close frame */
    ASSERT(ws_session_finished(&s));
    buf_free(&in);
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_close_long_reason_truncated)
{
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    char reason[300];
    memset(reason, 'r', sizeof reason);
    ws_session_close(&s, 4000, reason, sizeof reason);
    ASSERT(ws_session_close_sent(&s));
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT_EQ(f.opcode, WS_CLOSE);
    ASSERT_EQ(f.len, 125); /* a control frame payload is at most 125 bytes */
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_oversized_message_1009)
{
    uint8_t payload[64];
    memset(payload, 'a', sizeof payload);
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, payload, 32);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 16, &cap_events, &c);
    ws_session_feed(&s, (const uint8_t *)in.data, in.len);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT(s.protocol_error);
    expect_single_close(&c, 1009);
    ASSERT(ws_session_close_sent(&s));
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_oversized_fragmented_1009)
{
    buf in;
    buf_init(&in);
    client_frame(&in, false, WS_BINARY, "0123456789", 10);
    client_frame(&in, true, 0, "0123456789", 10);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 16, &cap_events, &c);
    ws_session_feed(&s, (const uint8_t *)in.data, in.len);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT(s.protocol_error);
    expect_single_close(&c, 1009);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_message_at_limit_ok)
{
    buf in;
    buf_init(&in);
    client_frame(&in, false, WS_BINARY, "01234567", 8);
    client_frame(&in, true, 0, "89abcdef", 8);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 16, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "0123456789abcdef", 16);
    ASSERT(!s.protocol_error);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

static void expect_protocol_error(const buf *in, int code)
{
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ws_session_feed(&s, (const uint8_t *)in->data, in->len);
    int nmsg = c.nmsg;
    bool perr = s.protocol_error, sent = ws_session_close_sent(&s);
    ASSERT_EQ(nmsg, 0);
    expect_single_close(&c, code);
    ASSERT(sent);
    ASSERT(perr);
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_unmasked_client_frame_1002)
{
    buf in;
    buf_init(&in);
    client_frame_ex(&in, 0x81, "Hello", 5, false);
    expect_protocol_error(&in, 1002);
    buf_free(&in);
}

TEST(ws_session_reserved_opcode_1002)
{
    buf in;
    buf_init(&in);
    client_frame_ex(&in, 0x83, "x", 1, true);
    expect_protocol_error(&in, 1002);
    buf_free(&in);
}

TEST(ws_session_rsv_bits_1002)
{
    buf in;
    buf_init(&in);
    client_frame_ex(&in, 0xc1, "x", 1, true); /* RSV1 without an extension */
    expect_protocol_error(&in, 1002);
    buf_free(&in);
}

TEST(ws_session_continuation_without_start_1002)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, 0, "x", 1);
    expect_protocol_error(&in, 1002);
    buf_free(&in);
}

/* Frames that wslay's frame layer rejects (bad control frame, non-minimal
 * length): the session fails (feed returns -1, protocol_error) and a close
 * frame goes out. wslay 1.1 sends that close without a status code, which
 * RFC 6455 7.1.7 allows; 1002 would be fine too. */
static void expect_frame_rejected(const buf *in)
{
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    int rv = ws_session_feed(&s, (const uint8_t *)in->data, in->len);
    ASSERT_EQ(rv, -1);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT(s.protocol_error);
    ASSERT(ws_session_close_sent(&s));
    size_t off = 0;
    frame f;
    ASSERT(next_frame(&c.out, &off, &f));
    ASSERT_EQ(f.opcode, WS_CLOSE);
    ASSERT(!f.masked);
    ASSERT(f.len == 0 || (f.len >= 2 && (f.payload[0] << 8 | f.payload[1]) == 1002));
    ASSERT_EQ(off, c.out.len);
    ws_session_free(&s);
    cap_free(&c);
}

TEST(ws_session_fragmented_control_frame_rejected)
{
    buf in;
    buf_init(&in);
    client_frame(&in, false, WS_PING, "x", 1);
    expect_frame_rejected(&in);
    buf_free(&in);
}

TEST(ws_session_long_control_frame_rejected)
{
    char p[126];
    memset(p, 'p', sizeof p);
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_PING, p, sizeof p);
    expect_frame_rejected(&in);
    buf_free(&in);
}

TEST(ws_session_non_minimal_length_rejected)
{
    buf in;
    buf_init(&in);
    /* 5 bytes announced with the 16-bit extended length */
    buf_append(&in, "\x81\xfe\x00\x05", 4);
    buf_append(&in, mask_key, 4);
    buf_append(&in, "\x5f\x9f\x4d\x51\x58", 5);
    expect_frame_rejected(&in);
    buf_free(&in);
}

TEST(ws_session_huge_length_is_too_big)
{
    buf in;
    buf_init(&in);
    /* 2^40 bytes announced: refused from the header alone */
    buf_append(&in, "\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00", 10);
    buf_append(&in, mask_key, 4);
    buf_append(&in, "some payload", 12); /* wslay looks at the length once payload arrives */
    expect_protocol_error(&in, 1009);
    buf_free(&in);
}

TEST(ws_session_new_message_inside_fragmented_1002)
{
    buf in;
    buf_init(&in);
    client_frame(&in, false, WS_TEXT, "a", 1);
    client_frame(&in, true, WS_TEXT, "b", 1);
    expect_protocol_error(&in, 1002);
    buf_free(&in);
}

/* ws.h: protocol_error is "wslay rejected a frame". A text message that is
 * not UTF-8 is rejected by wslay with close 1007 (RFC 6455 8.1). */
TEST(ws_session_invalid_utf8_text_rejected)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_TEXT, "\xff\xfe", 2);
    expect_protocol_error(&in, 1007);
    buf_free(&in);
}

TEST(ws_session_binary_need_not_be_utf8)
{
    buf in;
    buf_init(&in);
    client_frame(&in, true, WS_BINARY, "\xff\xfe\x00", 3);
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, (const uint8_t *)in.data, in.len), 0);
    ASSERT_EQ(c.nmsg, 1);
    ASSERT_EQ(c.ops[0], WS_BINARY);
    ASSERT_BYTES_EQ(c.msgs[0].data, c.msgs[0].len, "\xff\xfe\x00", 3);
    ws_session_free(&s);
    cap_free(&c);
    buf_free(&in);
}

TEST(ws_session_empty_feed)
{
    wscap c;
    cap_init(&c);
    ws_session s;
    ws_session_init(&s, 1 << 20, &cap_events, &c);
    ASSERT_EQ(ws_session_feed(&s, NULL, 0), 0);
    ASSERT_EQ(c.nmsg, 0);
    ASSERT_EQ(c.out.len, 0);
    ASSERT(!ws_session_finished(&s));
    ws_session_free(&s);
    ws_session_free(&s); /* twice is harmless */
    cap_free(&c);
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

/* A close frame with a code the peer may not send (999, or 1005 which only
 * means "no code") is a protocol error: answered with 1002. */
TEST(ws_session_bad_close_code_1002)
{
    int bad[] = {999, 1005, 1006, 5000};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        buf in;
        buf_init(&in);
        client_close(&in, bad[i], "");
        expect_protocol_error(&in, 1002);
        buf_free(&in);
    }
}
