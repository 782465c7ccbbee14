/* codec.c - the storage value format (see codec.h).
 *
 * The encoder must not raise a Lua error (it holds a malloc'd buffer), so it
 * checks stack space with lua_checkstack and detects cycles with a C array
 * of the tables on the current path instead of a Lua "seen" table. The
 * decoder treats its input as untrusted: every length is bounds-checked. */
#include "codec.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct enc {
    lua_State *L;
    buf *out;
    const void *path[CODEC_MAX_DEPTH];
    int depth;
    char *err;
    size_t errlen;
    char where[256];     /* key path of the failing value, innermost last */
} enc;

static void put_double(buf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++) tmp[i] = (uint8_t)(u >> (8 * i));
    buf_append(b, tmp, 8);
}

static int fail(enc *e, const char *what)
{
    snprintf(e->err, e->errlen, "%s", what);
    return -1;
}

static int encode_value(enc *e, int idx);

/* Builds "a.b.1" from the outside in as the failure unwinds. */
static void prepend_key(enc *e, lua_State *L, int key)
{
    char seg[64], tmp[sizeof seg + sizeof e->where + 1];
    if (lua_type(L, key) == LUA_TSTRING) snprintf(seg, sizeof seg, "%.60s", lua_tostring(L, key));
    else if (lua_type(L, key) == LUA_TNUMBER) snprintf(seg, sizeof seg, "%.14g", lua_tonumber(L, key));
    else snprintf(seg, sizeof seg, "?");
    snprintf(tmp, sizeof tmp, "%s%s%s", seg, e->where[0] ? "." : "", e->where);
    size_t n = strlen(tmp);
    if (n >= sizeof e->where) n = sizeof e->where - 1; /* a deep path keeps its outer keys */
    memcpy(e->where, tmp, n);
    e->where[n] = 0;
}

typedef struct pair_span {
    size_t off, key_len, len;   /* in the table's scratch buffer */
    const char *base;
} pair_span;

static int by_key(const void *a, const void *b)
{
    const pair_span *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->base + x->off, y->base + y->off, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Pairs are written sorted by their encoded key, so a value always encodes
 * to the same bytes, whatever order lua_next happens to walk the table in
 * (it depends on insertion history and the state's hash seed). */
static int encode_table(enc *e, int idx)
{
    lua_State *L = e->L;
    const void *p = lua_topointer(L, idx);
    for (int i = 0; i < e->depth; i++)
        if (e->path[i] == p) return fail(e, "cannot store a table that contains itself (a cycle)");
    if (e->depth >= CODEC_MAX_DEPTH) return fail(e, "cannot store tables nested deeper than 1000 levels");
    if (!lua_checkstack(L, 4)) return fail(e, "value too deeply nested");
    e->path[e->depth++] = p;
    buf scratch, *out = e->out;
    buf_init(&scratch);
    pair_span *pairs = NULL;
    size_t count = 0, cap = 0;
    int rv = 0;
    e->out = &scratch;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
            lua_pop(L, 2);
            rv = fail(e, kt == LUA_TBOOLEAN ? "cannot store a table with a boolean key"
                                            : "table keys must be strings or numbers");
            break;
        }
        int top = lua_gettop(L);
        size_t start = scratch.len;
        if (encode_value(e, top - 1)) {
            rv = -1;
        } else {
            size_t key_len = scratch.len - start;
            if (encode_value(e, top)) rv = -1;
            else {
                if (count == cap) pairs = xrealloc(pairs, (cap = cap ? cap * 2 : 8) * sizeof *pairs);
                pairs[count++] = (pair_span){start, key_len, scratch.len - start, NULL};
            }
        }
        if (rv) {
            prepend_key(e, L, top - 1);
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    e->out = out;
    if (rv == 0) {
        for (size_t i = 0; i < count; i++) pairs[i].base = scratch.data;
        if (count) qsort(pairs, count, sizeof *pairs, by_key);
        buf_append(out, "T", 1);
        buf_put_varuint(out, count);
        for (size_t i = 0; i < count; i++) buf_append(out, scratch.data + pairs[i].off, pairs[i].len);
    }
    free(pairs);
    buf_free(&scratch);
    e->depth--;
    return rv;
}

static int encode_value(enc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        buf_append(e->out, "n", 1);
        return 0;
    case LUA_TBOOLEAN:
        buf_append(e->out, lua_toboolean(L, idx) ? "t" : "f", 1);
        return 0;
    case LUA_TNUMBER:
        buf_append(e->out, "d", 1);
        put_double(e->out, lua_tonumber(L, idx));
        return 0;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        buf_append(e->out, "s", 1);
        buf_put_varuint(e->out, len);
        buf_append(e->out, s, len);
        return 0;
    }
    case LUA_TTABLE:
        return encode_table(e, idx);
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "cannot store a value of type %s", lua_typename(L, lua_type(L, idx)));
        return fail(e, msg);
    }
    }
}

int codec_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen)
{
    /* Fields one by one: an initializer would zero path[] (8 KB) on every
     * encode, which was two thirds of a storage:put's instructions. */
    enc e;
    e.L = L;
    e.out = out;
    e.depth = 0;
    e.err = err;
    e.errlen = errlen;
    e.where[0] = 0;
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    int top = lua_gettop(L);
    int rv = encode_value(&e, idx);
    lua_settop(L, top);
    if (rv && e.where[0]) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " at key '%s'", e.where);
    }
    return rv;
}

/* ---- decoding ---- */

typedef struct dec {
    const uint8_t *p, *end;
    int depth;
} dec;

static int get_varint(dec *d, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (d->p >= d->end) return -1;
        uint8_t byte = *d->p++;
        *v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) return 0;
    }
    return -1;
}

static int decode_value(lua_State *L, dec *d)
{
    if (d->p >= d->end || !lua_checkstack(L, 3)) return -1;
    switch (*d->p++) {
    case 'n': lua_pushnil(L); return 0;
    case 'f': lua_pushboolean(L, 0); return 0;
    case 't': lua_pushboolean(L, 1); return 0;
    case 'd': {
        if (d->end - d->p < 8) return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u |= (uint64_t)d->p[i] << (8 * i);
        d->p += 8;
        double v;
        memcpy(&v, &u, 8);
        lua_pushnumber(L, v);
        return 0;
    }
    case 's': {
        uint64_t len;
        if (get_varint(d, &len) || len > (uint64_t)(d->end - d->p)) return -1;
        lua_pushlstring(L, (const char *)d->p, (size_t)len);
        d->p += len;
        return 0;
    }
    case 'T': {
        uint64_t count;
        /* each pair takes at least two bytes: reject absurd counts early */
        if (get_varint(d, &count) || count > (uint64_t)(d->end - d->p) / 2) return -1;
        if (++d->depth > CODEC_MAX_DEPTH) return -1;
        lua_createtable(L, 0, count < 1024 ? (int)count : 1024);
        for (uint64_t i = 0; i < count; i++) {
            if (decode_value(L, d)) goto bad;
            if (!lua_isstring(L, -1) || lua_isnil(L, -1)) { lua_pop(L, 1); goto bad; }
            if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)) { lua_pop(L, 1); goto bad; }
            if (decode_value(L, d)) { lua_pop(L, 1); goto bad; }
            lua_rawset(L, -3);
        }
        d->depth--;
        return 0;
    bad:
        lua_pop(L, 1);
        return -1;
    }
    default:
        return -1;
    }
}

int codec_decode(lua_State *L, const char *data, size_t len)
{
    dec d = {.p = (const uint8_t *)data, .end = (const uint8_t *)data + len, .depth = 0};
    int top = lua_gettop(L);
    if (decode_value(L, &d) || d.p != d.end) {
        lua_settop(L, top);
        return -1;
    }
    return 0;
}
