/* fuzz_ws.c - the WebSocket side of a client connection, as server.c drives it.
 *
 * The input is the byte stream a client sends after the handshake (see
 * fuzz_util.h for how its first bytes cut it into pieces; bit 0 of a
 * piece's control byte also queues a ping, bit 1 a close from the server
 * side, as a room or the pinger would). Pieces are fed into a ws_session
 * with a 64 KiB message limit until the server would stop feeding it: a
 * protocol error (wslay's own checks, UTF-8 of text messages included),
 * a text message our utf8_valid rejects (the server closes with 1007), or a
 * finished session. Checked:
 *   - no message longer than the limit is delivered;
 *   - utf8_valid agrees with an independent validator (on every text
 *     message and on the raw input);
 *   - everything the session writes is a sequence of complete, unmasked
 *     server control frames (close, ping, pong), FIN set, payload <= 125. */
#include "fuzz_util.h"
#include "util.h"
#include "ws.h"

#include <string.h>

enum { MAX_MESSAGE = 64 * 1024 };

typedef struct counts {
    size_t messages, text, binary, bytes, writes;
    bool bad_utf8;
    buf out;
    uint32_t sum; /* touches every payload byte so ASan sees each one */
} counts;

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    counts *c = ud;
    FUZZ_CHECK(opcode == WS_TEXT || opcode == WS_BINARY, "message with opcode %d", opcode);
    FUZZ_CHECK(len <= MAX_MESSAGE, "a %zu-byte message passed the %d-byte limit", len, MAX_MESSAGE);
    c->messages++;
    c->bytes += len;
    for (size_t i = 0; i < len; i++) c->sum += data[i];
    if (opcode == WS_TEXT) {
        c->text++;
        bool ours = utf8_valid(data, len), ref = ref_utf8_valid(data, len);
        FUZZ_CHECK(ours == ref, "utf8_valid says %d, the reference %d (len %zu)", ours, ref, len);
        if (!ours) c->bad_utf8 = true;
    } else {
        c->binary++;
    }
}

static void on_write(void *ud, const uint8_t *data, size_t len)
{
    counts *c = ud;
    FUZZ_CHECK(len > 0, "empty write");
    c->writes++;
    buf_append(&c->out, data, len);
}

static const ws_events events = {on_message, on_write};

/* Everything written so far must be whole server frames. */
static void check_output(const counts *c)
{
    if (!c->out.len) return;
    const uint8_t *p = (const uint8_t *)c->out.data, *end = p + c->out.len;
    while (p < end) {
        FUZZ_CHECK(end - p >= 2, "truncated frame header in the output");
        uint8_t b0 = p[0], b1 = p[1];
        int op = b0 & 0x0f;
        FUZZ_CHECK(b0 & 0x80, "server frame without FIN");
        FUZZ_CHECK((b0 & 0x70) == 0, "server frame with RSV bits");
        FUZZ_CHECK(op == WS_CLOSE || op == WS_PING || op == WS_PONG, "wslay wrote opcode %d", op);
        FUZZ_CHECK(!(b1 & 0x80), "server frame is masked");
        size_t len = b1 & 0x7f;
        FUZZ_CHECK(len <= 125, "control frame with a %zu-byte payload", len);
        FUZZ_CHECK((size_t)(end - p - 2) >= len, "truncated frame payload in the output");
        if (op == WS_CLOSE && len) {
            FUZZ_CHECK(len >= 2, "close frame with a 1-byte payload");
            int code = p[2] << 8 | p[3];
            FUZZ_CHECK(code >= 1000 && code < 5000 && code != 1005 && code != 1006 && code != 1015,
                       "close frame with code %d", code);
        }
        p += 2 + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    split sp;
    if (!split_init(&sp, data, size)) return 0;
    FUZZ_CHECK(utf8_valid(sp.data, sp.size) == ref_utf8_valid(sp.data, sp.size), "utf8_valid disagrees on the input");

    counts c;
    memset(&c, 0, sizeof c);
    buf_init(&c.out);
    ws_session s;
    FUZZ_CHECK(ws_session_init(&s, MAX_MESSAGE, &events, &c) == 0, "ws_session_init failed");
    size_t off = 0;
    while (off < sp.size) {
        size_t n = split_next(&sp, sp.size - off);
        uint8_t *piece = xmalloc(n);
        memcpy(piece, sp.data + off, n);
        off += n;
        ws_session_feed(&s, piece, n);
        free(piece);
        check_output(&c);
        if (c.bad_utf8) { /* close 1007, feed no more */
            ws_session_close(&s, 1007, "invalid UTF-8 in a text message", 32);
            break;
        }
        if (s.protocol_error || ws_session_finished(&s)) break;
        uint8_t ctl = split_ctl(&sp);
        if (ctl & 1) ws_session_ping(&s);
        if (ctl & 2) { /* the codes the server and parties (1000, 3000-4999) use */
            static const int codes[] = {1000, 1001, 1007, 1011, 1013, 3000, 4000, 4999};
            ws_session_close(&s, codes[(ctl >> 2) & 7], "bye", 3);
        }
        check_output(&c);
    }
    check_output(&c);
    (void)ws_session_finished(&s);
    ws_session_free(&s);
    buf_free(&c.out);
    return 0;
}
