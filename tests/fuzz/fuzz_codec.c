/* fuzz_codec.c - the storage value format (codec.c) on untrusted bytes.
 *
 * Stored values come back from SQLite, so codec_decode must survive any
 * bytes. If the input decodes, the value must encode again (whatever
 * decodes is storable), that encoding must decode, and encoding the result
 * once more must give identical bytes: decode(encode(x)) re-encodes the
 * same. A failure aborts with both encodings in hex.
 *
 * Every input gets a fresh lua_State: LuaJIT seeds its string hash at random
 * per state, so a table's traversal order (and the codec's key order) can
 * differ between states; a fresh state per run makes `-runs=N` on a saved
 * input try N different seeds.
 *
 * FUZZ_CODEC_KEY_ORDER=any in the environment relaxes the last check to
 * "the same value": both encodings are compared with every table's pairs
 * sorted, so a fuzzing run can look past a key-order difference for other
 * bugs. Without it the check is byte-for-byte. */
#include "codec.h"
#include "fuzz_util.h"
#include "util.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

static bool any_order;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *v = getenv("FUZZ_CODEC_KEY_ORDER");
    any_order = v && strcmp(v, "any") == 0;
    return 0;
}

static void hex(const char *what, const buf *b)
{
    fprintf(stderr, "%s (%zu bytes):", what, b->len);
    for (size_t i = 0; i < b->len && i < 512; i++) fprintf(stderr, " %02x", (unsigned char)b->data[i]);
    fprintf(stderr, "%s\n", b->len > 512 ? " ..." : "");
}

/* ---- canonical form of an encoding (tables' pairs sorted by bytes) ---- */

typedef struct cur {
    const uint8_t *p, *end;
} cur;

static uint64_t varint(cur *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        FUZZ_CHECK(c->p < c->end, "truncated varint in an encoder's output");
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    FUZZ_CHECK(0, "overlong varint in an encoder's output");
    return 0;
}

typedef struct pair {
    buf k, v;
} pair;

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    size_t n = x->k.len < y->k.len ? x->k.len : y->k.len;
    int c = memcmp(x->k.data, y->k.data, n);
    return c ? c : (x->k.len > y->k.len) - (x->k.len < y->k.len);
}

static void canon(cur *c, buf *out)
{
    FUZZ_CHECK(c->p < c->end, "truncated value in an encoder's output");
    uint8_t tag = *c->p++;
    switch (tag) {
    case 'n': case 'f': case 't':
        buf_append(out, &tag, 1);
        return;
    case 'd':
        FUZZ_CHECK(c->end - c->p >= 8, "truncated number");
        buf_append(out, &tag, 1);
        buf_append(out, c->p, 8);
        c->p += 8;
        return;
    case 's': {
        uint64_t n = varint(c);
        FUZZ_CHECK(n <= (uint64_t)(c->end - c->p), "truncated string");
        buf_append(out, &tag, 1);
        buf_put_varuint(out, n);
        buf_append(out, c->p, (size_t)n);
        c->p += n;
        return;
    }
    case 'T': {
        uint64_t n = varint(c);
        FUZZ_CHECK(n <= (uint64_t)(c->end - c->p), "absurd pair count");
        pair *pairs = xcalloc(n ? (size_t)n : 1, sizeof *pairs);
        for (uint64_t i = 0; i < n; i++) {
            buf_init(&pairs[i].k);
            buf_init(&pairs[i].v);
            canon(c, &pairs[i].k);
            canon(c, &pairs[i].v);
        }
        qsort(pairs, (size_t)n, sizeof *pairs, pair_cmp);
        buf_append(out, &tag, 1);
        buf_put_varuint(out, n);
        for (uint64_t i = 1; i < n; i++)
            FUZZ_CHECK(pair_cmp(&pairs[i - 1], &pairs[i]) != 0, "a key written twice in one table");
        for (uint64_t i = 0; i < n; i++) {
            buf_append(out, pairs[i].k.data, pairs[i].k.len);
            buf_append(out, pairs[i].v.data, pairs[i].v.len);
            buf_free(&pairs[i].k);
            buf_free(&pairs[i].v);
        }
        free(pairs);
        return;
    }
    default:
        FUZZ_CHECK(0, "tag 0x%02x in an encoder's output", tag);
    }
}

static void canonical(const buf *in, buf *out)
{
    cur c = {(const uint8_t *)in->data, (const uint8_t *)in->data + in->len};
    buf_init(out);
    canon(&c, out);
    FUZZ_CHECK(c.p == c.end, "trailing bytes in an encoder's output");
}

static bool same(const buf *a, const buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    FUZZ_CHECK(L != NULL, "luaL_newstate failed");
    /* an exact-size copy: the decoder must not read past `size` */
    char *in = xmalloc(size ? size : 1);
    if (size) memcpy(in, data, size);
    int rc = codec_decode(L, in, size);
    free(in);
    if (rc != 0) {
        FUZZ_CHECK(lua_gettop(L) == 0, "failed decode left %d values on the stack", lua_gettop(L));
        lua_close(L);
        return 0;
    }
    FUZZ_CHECK(lua_gettop(L) == 1, "decode pushed %d values", lua_gettop(L));

    char err[256];
    buf e1, e2;
    buf_init(&e1);
    buf_init(&e2);
    FUZZ_CHECK(codec_encode(L, 1, &e1, err, sizeof err) == 0, "a decoded value does not encode: %s", err);
    FUZZ_CHECK(lua_gettop(L) == 1, "encode changed the stack");
    FUZZ_CHECK(codec_decode(L, e1.data, e1.len) == 0, "an encoding does not decode");
    FUZZ_CHECK(codec_encode(L, 2, &e2, err, sizeof err) == 0, "a decoded encoding does not encode: %s", err);
    FUZZ_CHECK(lua_gettop(L) == 2, "encode changed the stack");

    buf c1, c2;
    canonical(&e1, &c1);
    canonical(&e2, &c2);
    if (!same(&c1, &c2)) {
        hex("encode(decode(input))", &e1);
        hex("encode(decode(encode(decode(input))))", &e2);
        FUZZ_CHECK(0, "decode(encode(x)) is a different value than x");
    }
    if (!any_order && !same(&e1, &e2)) {
        hex("encode(decode(input))", &e1);
        hex("encode(decode(encode(decode(input))))", &e2);
        FUZZ_CHECK(0, "decode(encode(x)) re-encodes to different bytes (same value, other key order; "
                      "FUZZ_CODEC_KEY_ORDER=any skips this check)");
    }
    buf_free(&c1);
    buf_free(&c2);
    buf_free(&e1);
    buf_free(&e2);
    lua_close(L);
    return 0;
}
