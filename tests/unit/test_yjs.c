/* test_yjs.c - src/yjs.c on small updates made by npm yjs 13.6 (two clients
 * typing "abc", then "x😀" and a deletion; the expected bytes are what
 * Y.mergeUpdates, Y.diffUpdate and Y.encodeStateVectorFromUpdate gave), the
 * checks that refuse malformed input, and the JSON and varint helpers.
 * tests/integration/yjs-codec.test.mjs compares against yjs on random
 * histories. */
#include "unit.h"

#include "yjs.h"

#include <stdio.h>
#include <stdlib.h>

/* bytes from hex, into a static buffer per slot */
static const uint8_t *hex(const char *s, size_t *len)
{
    static uint8_t slots[8][256];
    static int next;
    uint8_t *out = slots[next++ % 8];
    size_t n = strlen(s) / 2;
    ASSERT(n <= sizeof slots[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ASSERT(sscanf(s + 2 * i, "%2x", &v) == 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static const char *UPDATES[] = {
    "010101000401017402616200",         /* a: "ab" */
    "01010102840101016300",             /* a: "c" after it */
    "01010100040101740361626300",       /* b got a's state */
    "01010200c4010001010578f09f988000", /* b: "x😀" after "a" */
    "000101010001",                     /* b: deletes "a" */
};
#define MERGED "02010200c4010001010578f09f98800201000401017402616284010101630101010001"

static void merge_hex(const char **list, size_t n, int flags, buf *out)
{
    yjs_bytes in[8];
    for (size_t i = 0; i < n; i++) in[i].data = hex(list[i], &in[i].len);
    char err[YJS_ERR_MAX];
    ASSERT_MSG(yjs_merge(in, n, flags, out, err) == 0, "merge: %s", err);
}

static void assert_hex(const buf *b, const char *want)
{
    size_t n;
    const uint8_t *w = hex(want, &n);
    ASSERT_BYTES_EQ(b->data, b->len, w, n);
}

TEST(yjs_merge_as_yjs)
{
    buf out;
    buf_init(&out);
    merge_hex(UPDATES, 5, 0, &out);
    assert_hex(&out, MERGED);
    buf_free(&out);
    /* without the first update (b's copy of "abc" fills the gap) */
    const char *gappy[] = {UPDATES[1], UPDATES[2], UPDATES[3], UPDATES[4]};
    buf_init(&out);
    merge_hex(gappy, 4, 0, &out);
    assert_hex(&out, "02010200c4010001010578f09f988001010004010174036162630101010001");
    buf_free(&out);
    /* one update is its own merge; none is the empty update */
    buf_init(&out);
    merge_hex(UPDATES + 2, 1, 0, &out);
    assert_hex(&out, UPDATES[2]);
    buf_free(&out);
    buf_init(&out);
    merge_hex(NULL, 0, 0, &out);
    assert_hex(&out, "0000");
    buf_free(&out);
}

TEST(yjs_merge_gc_drops_deleted_content)
{
    buf plain, gc;
    buf_init(&plain);
    buf_init(&gc);
    merge_hex(UPDATES, 5, 0, &plain);
    merge_hex(UPDATES, 5, YJS_GC | YJS_COALESCE, &gc);
    ASSERT(memmem(plain.data, plain.len, "ab", 2) != NULL);
    ASSERT_MSG(memmem(gc.data, gc.len, "ab", 2) == NULL, "the deleted a is gone: %s", unit_repr(gc.data, gc.len));
    ASSERT(memmem(gc.data, gc.len, "b", 1) != NULL);
    /* the same clocks: the state vector does not change */
    buf sv1, sv2;
    buf_init(&sv1);
    buf_init(&sv2);
    char err[YJS_ERR_MAX];
    ASSERT(yjs_state_vector((uint8_t *)plain.data, plain.len, &sv1, err) == 0);
    ASSERT(yjs_state_vector((uint8_t *)gc.data, gc.len, &sv2, err) == 0);
    ASSERT_BYTES_EQ(sv1.data, sv1.len, sv2.data, sv2.len);
    assert_hex(&sv1, "0202030103");
    buf_free(&plain);
    buf_free(&gc);
    buf_free(&sv1);
    buf_free(&sv2);
}

TEST(yjs_diff_and_news)
{
    size_t mlen, svlen;
    const uint8_t *m = hex(MERGED, &mlen);
    const uint8_t *sv = hex("010102", &svlen); /* has a's first two clocks */
    buf out;
    buf_init(&out);
    char err[YJS_ERR_MAX];
    ASSERT(yjs_diff(m, mlen, sv, svlen, &out, err) == 0);
    assert_hex(&out, "02010200c4010001010578f09f988001010284010101630101010001");
    buf_free(&out);
    /* nothing is new in a document for itself; all of it for the empty one */
    bool empty = false;
    buf_init(&out);
    ASSERT(yjs_news(m, mlen, m, mlen, &out, &empty, err) == 0);
    ASSERT(empty);
    buf_free(&out);
    size_t elen;
    const uint8_t *e = hex("0000", &elen);
    buf_init(&out);
    ASSERT(yjs_news(m, mlen, e, elen, &out, &empty, err) == 0);
    ASSERT(!empty);
    buf_free(&out);
}

TEST(yjs_refuses_malformed_updates)
{
    static const struct {
        const char *hex, *why;
    } bad[] = {
        {"0101010004010174026162", "truncated (no delete set)"},
        {"01010100040101740261620000", "trailing byte"},
        {"010101001f00", "content type 31"},
        {"0101010004010174026128c300", "bad UTF-8"},
        {"0101010001000000", "a deleted run of length 0"},
        {"0101010008010174017c00", "a float32 value cut short"},
        {"01010100050101740278780000", "embed that is not JSON"},
        {"ffffffffffffffffff01", "a number past 2^53"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n;
        const uint8_t *u = hex(bad[i].hex, &n);
        char err[YJS_ERR_MAX];
        bool empty;
        ASSERT_MSG(yjs_check_update(u, n, &empty, err) == -1, "accepted: %s", bad[i].why);
        ASSERT_MSG(err[0] != 0, "no reason for: %s", bad[i].why);
        buf out;
        buf_init(&out);
        yjs_bytes in = {u, n};
        ASSERT(yjs_merge(&in, 1, 0, &out, err) == -1);
        buf_free(&out);
    }
    for (size_t i = 0; i < 5; i++) {
        size_t n;
        const uint8_t *u = hex(UPDATES[i], &n);
        char err[YJS_ERR_MAX];
        bool empty = true;
        ASSERT_MSG(yjs_check_update(u, n, &empty, err) == 0, "refused %s: %s", UPDATES[i], err);
        ASSERT(!empty);
    }
    static const struct {
        const char *hex;
        int rc;
    } svs[] = {{"010102", 0}, {"00", 0}, {"01010200", -1}, {"0201", -1}, {"", -1}};
    for (size_t i = 0; i < sizeof svs / sizeof *svs; i++) {
        char err[YJS_ERR_MAX];
        size_t n;
        const uint8_t *sv = hex(svs[i].hex, &n);
        ASSERT_MSG(yjs_check_state_vector(sv, n, err) == svs[i].rc, "state vector %s", svs[i].hex);
    }
}

TEST(yjs_json_and_varints)
{
    static const char *good[] = {"null", " {\"a\": [1, -2.5e+3, true, false, null, \"\\u00e9\\n\"]} ", "0", "\"x\"", "[]", "{}"};
    static const char *bad[] = {"", "nul", "{", "[1,]", "01", "1.", "{\"a\" 1}", "\"\\x\"", "'a'", "[1] [2]", "\"\x01\""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ASSERT_MSG(yjs_json_valid((const uint8_t *)good[i], strlen(good[i])), "refused %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_MSG(!yjs_json_valid((const uint8_t *)bad[i], strlen(bad[i])), "accepted %s", bad[i]);
    static const uint64_t vals[] = {0, 1, 127, 128, 300, 1ULL << 32, (1ULL << 53) - 1};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        buf b;
        buf_init(&b);
        buf_put_varuint(&b, vals[i]);
        const uint8_t *p = (const uint8_t *)b.data;
        uint64_t v = 0;
        ASSERT(yjs_read_varuint(&p, p + b.len, &v) == 0);
        ASSERT(v == vals[i]);
        ASSERT(p == (const uint8_t *)b.data + b.len);
        buf_free(&b);
    }
    const uint8_t big[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10}, *p = big; /* 2^53 */
    uint64_t v;
    ASSERT(yjs_read_varuint(&p, big + sizeof big, &v) == -1);
    const uint8_t cut[] = {0x80, 0x80};
    p = cut;
    ASSERT(yjs_read_varuint(&p, cut + 2, &v) == -1);
}
