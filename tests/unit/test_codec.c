/* test_codec.c - Lua value <-> bytes round trips through a real lua_State,
 * the byte format, encode errors, and decoding of untrusted bytes. */
#include "unit.h"

#include "codec.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    /* deep equality, with NaN == NaN and -0 ~= 0 */
    int rc = luaL_dostring(L,
        "function deq(a, b, seen)\n"
        "  if type(a) ~= type(b) then return false end\n"
        "  if type(a) == 'number' then\n"
        "    if a ~= a then return b ~= b end\n"
        "    if a == 0 and b == 0 then return 1/a == 1/b end\n"
        "    return a == b\n"
        "  end\n"
        "  if type(a) ~= 'table' then return a == b end\n"
        "  for k, v in pairs(a) do if not deq(v, b[k]) then return false end end\n"
        "  for k in pairs(b) do if a[k] == nil then return false end end\n"
        "  return true\n"
        "end\n");
    ASSERT_MSG(rc == 0, "deq: %s", lua_tostring(L, -1));
    return L;
}

/* Pushes the result of a Lua expression. */
static void push_expr(lua_State *L, const char *expr)
{
    char code[4096];
    snprintf(code, sizeof code, "return %s", expr);
    ASSERT_MSG(luaL_loadstring(L, code) == 0, "%s", lua_tostring(L, -1));
    ASSERT_MSG(lua_pcall(L, 0, 1, 0) == 0, "%s", lua_tostring(L, -1));
}

/* Encodes the value on top, decodes it, checks deq(original, decoded), and
 * leaves the stack as it was (value still on top). Returns the encoding
 * length. */
static size_t roundtrip(lua_State *L, buf *enc)
{
    int top = lua_gettop(L);
    char err[256] = "";
    buf_init(enc);
    ASSERT_MSG(codec_encode(L, -1, enc, err, sizeof err) == 0, "encode failed: %s", err);
    ASSERT_EQ(lua_gettop(L), top);
    ASSERT_EQ(codec_decode(L, enc->data, enc->len), 0);
    ASSERT_EQ(lua_gettop(L), top + 1);
    lua_getglobal(L, "deq");
    lua_pushvalue(L, top);
    lua_pushvalue(L, top + 1);
    ASSERT(lua_pcall(L, 2, 1, 0) == 0);
    ASSERT_MSG(lua_toboolean(L, -1), "round trip changed the value (%zu bytes: %s)", enc->len,
               unit_repr(enc->data, enc->len));
    lua_settop(L, top);
    return enc->len;
}

static void roundtrip_expr(lua_State *L, const char *expr)
{
    push_expr(L, expr);
    buf enc;
    roundtrip(L, &enc);
    buf_free(&enc);
    lua_pop(L, 1);
}

/* Decodes an encoding of one number and returns it. */
static double number_roundtrip(lua_State *L, double d)
{
    lua_pushnumber(L, d);
    buf enc;
    buf_init(&enc);
    char err[128];
    ASSERT_EQ(codec_encode(L, -1, &enc, err, sizeof err), 0);
    ASSERT_EQ(enc.len, 9);
    ASSERT_EQ(enc.data[0], 'd');
    lua_pop(L, 1);
    ASSERT_EQ(codec_decode(L, enc.data, enc.len), 0);
    ASSERT_EQ(lua_type(L, -1), LUA_TNUMBER);
    double got = lua_tonumber(L, -1);
    lua_pop(L, 1);
    buf_free(&enc);
    return got;
}

TEST(codec_byte_format)
{
    lua_State *L = new_state();
    char err[128];
    buf b;
    struct { const char *expr; const char *bytes; size_t len; } cases[] = {
        {"nil", "n", 1},
        {"false", "f", 1},
        {"true", "t", 1},
        {"1", "d\x00\x00\x00\x00\x00\x00\xf0\x3f", 9},
        {"-2", "d\x00\x00\x00\x00\x00\x00\x00\xc0", 9},
        {"''", "s\x00", 2},
        {"'ab'", "s\x02" "ab", 4},
        {"{}", "T\x00", 2},
        {"{'x'}", "T\x01" "d\x00\x00\x00\x00\x00\x00\xf0\x3f" "s\x01x", 14},
        {"{k=false}", "T\x01s\x01kf", 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        push_expr(L, cases[i].expr);
        buf_init(&b);
        ASSERT_EQ(codec_encode(L, -1, &b, err, sizeof err), 0);
        ASSERT_BYTES_EQ(b.data, b.len, cases[i].bytes, cases[i].len);
        buf_free(&b);
        lua_pop(L, 1);
    }
    /* a 300-byte string: two-byte varint length (300 = 0xac 0x02) */
    push_expr(L, "string.rep('z', 300)");
    buf_init(&b);
    ASSERT_EQ(codec_encode(L, -1, &b, err, sizeof err), 0);
    ASSERT_EQ(b.len, 303);
    ASSERT_MEM_EQ(b.data, "s\xac\x02zz", 5);
    buf_free(&b);
    lua_close(L);
}

TEST(codec_nil_and_booleans)
{
    lua_State *L = new_state();
    roundtrip_expr(L, "nil");
    roundtrip_expr(L, "true");
    roundtrip_expr(L, "false");
    lua_close(L);
}

TEST(codec_numbers)
{
    lua_State *L = new_state();
    double exact[] = {0, 1, -1, 42, 1e15, 9007199254740991.0 /* 2^53-1 */, 9007199254740992.0 /* 2^53 */,
                      -9007199254740992.0, 4294967296.0, 0.1, -0.5, 3.141592653589793, 1e308, -1e-308,
                      5e-324 /* smallest denormal */, 1.7976931348623157e308};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
        double got = number_roundtrip(L, exact[i]);
        ASSERT_MSG(memcmp(&got, &exact[i], sizeof got) == 0, "%.17g came back as %.17g", exact[i], got);
    }
    double nz = number_roundtrip(L, -0.0);
    ASSERT(nz == 0 && signbit(nz));
    double pz = number_roundtrip(L, 0.0);
    ASSERT(pz == 0 && !signbit(pz));
    ASSERT(isinf(number_roundtrip(L, INFINITY)) && number_roundtrip(L, INFINITY) > 0);
    ASSERT(isinf(number_roundtrip(L, -INFINITY)) && number_roundtrip(L, -INFINITY) < 0);
    ASSERT(isnan(number_roundtrip(L, NAN)));
    /* through Lua expressions too */
    roundtrip_expr(L, "2^53");
    roundtrip_expr(L, "-2^53");
    roundtrip_expr(L, "-0");
    roundtrip_expr(L, "1/0");
    roundtrip_expr(L, "-1/0");
    roundtrip_expr(L, "0/0");
    roundtrip_expr(L, "{-0, 1/0, -1/0, 0/0, 2^53, 0.1}");
    lua_close(L);
}

TEST(codec_strings_binary_safe)
{
    lua_State *L = new_state();
    static const char bins[][8] = {"a\0b", "\0\0\0", "\xff\xfe\xfd", "\xc0\x80", "\xed\xa0\x80"};
    static const size_t lens[] = {3, 3, 3, 2, 3};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        lua_pushlstring(L, bins[i], lens[i]);
        buf enc;
        roundtrip(L, &enc);
        buf_free(&enc);
        ASSERT_EQ(codec_decode(L, (const char[]){'s', (char)lens[i], bins[i][0], bins[i][1], bins[i][2]},
                               2 + lens[i]),
                  0);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        ASSERT_BYTES_EQ(s, n, bins[i], lens[i]);
        lua_pop(L, 2);
    }
    roundtrip_expr(L, "''");
    roundtrip_expr(L, "string.rep('x', 127)");
    roundtrip_expr(L, "string.rep('x', 128)");
    roundtrip_expr(L, "string.rep('\\0\\255', 100000)");
    roundtrip_expr(L, "{['a\\0b'] = 'v\\0w', ['\\255'] = '\\0'}");
    lua_close(L);
}

TEST(codec_tables_mixed_keys)
{
    lua_State *L = new_state();
    roundtrip_expr(L, "{}");
    roundtrip_expr(L, "{1, 2, 3, 'four', true, false}");
    roundtrip_expr(L, "{x = 'y', [1] = 'one', ['1'] = 'string one', [1.5] = true, [-1] = false,"
                      " [0] = 0, [2^53] = 'big', [-0.25] = {}, nested = {a = {b = {c = 'd'}}}}");
    roundtrip_expr(L, "{[1] = 'a', [3] = 'c', [100] = 'sparse'}");
    /* t[1] and t['1'] stay distinct */
    push_expr(L, "{[1] = 'number', ['1'] = 'string'}");
    buf enc;
    roundtrip(L, &enc);
    lua_pop(L, 1);
    ASSERT_EQ(codec_decode(L, enc.data, enc.len), 0);
    lua_rawgeti(L, -1, 1);
    ASSERT_STR_EQ(lua_tostring(L, -1), "number");
    lua_getfield(L, -2, "1");
    ASSERT_STR_EQ(lua_tostring(L, -1), "string");
    lua_pop(L, 3);
    buf_free(&enc);
    /* shared (not cyclic) subtables are fine: stored twice */
    roundtrip_expr(L, "(function() local s = {1, 2} return {a = s, b = s, c = {s, s}} end)()");
    /* many keys */
    roundtrip_expr(L, "(function() local t = {} for i = 1, 5000 do t[i] = i * 2; t['k' .. i] = -i end return t end)()");
    ASSERT_EQ(lua_gettop(L), 0);
    lua_close(L);
}

static void push_nested(lua_State *L, int depth)
{
    lua_newtable(L); /* the root */
    lua_pushvalue(L, -1);
    for (int i = 1; i < depth; i++) {
        lua_newtable(L);
        lua_pushinteger(L, i);
        lua_setfield(L, -2, "level");
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "child"); /* parent.child = new */
        lua_remove(L, -2);
    }
    lua_pop(L, 1); /* leaves the root */
}

TEST(codec_nested_depth_100)
{
    lua_State *L = new_state();
    push_nested(L, 100);
    buf enc;
    roundtrip(L, &enc);
    ASSERT_EQ(codec_decode(L, enc.data, enc.len), 0);
    int depth = 1;
    for (;;) {
        lua_getfield(L, -1, "child");
        if (lua_isnil(L, -1)) break;
        depth++;
        lua_remove(L, -2);
        lua_getfield(L, -1, "level");
        ASSERT_EQ(lua_tointeger(L, -1), depth - 1);
        lua_pop(L, 1);
    }
    ASSERT_EQ(depth, 100);
    buf_free(&enc);
    lua_close(L);
}

TEST(codec_depth_limit)
{
    lua_State *L = new_state();
    push_nested(L, CODEC_MAX_DEPTH);
    buf enc;
    roundtrip(L, &enc); /* exactly the limit works both ways */
    buf_free(&enc);
    lua_pop(L, 1);
    push_nested(L, CODEC_MAX_DEPTH + 1);
    buf_init(&enc);
    char err[256] = "";
    int top = lua_gettop(L);
    ASSERT_EQ(codec_encode(L, -1, &enc, err, sizeof err), -1);
    ASSERT_EQ(lua_gettop(L), top);
    ASSERT_CONTAINS(err, "nested");
    buf_free(&enc);
    lua_close(L);
}

TEST(codec_decode_depth_limit)
{
    lua_State *L = new_state();
    /* {a = {a = {... {}}}} written by hand: CODEC_MAX_DEPTH + 1 tables */
    buf b;
    buf_init(&b);
    for (int i = 0; i < CODEC_MAX_DEPTH; i++) buf_append(&b, "T\x01s\x01" "a", 5);
    buf_append(&b, "T\x00", 2);
    int top = lua_gettop(L);
    ASSERT_EQ(codec_decode(L, b.data, b.len), -1);
    ASSERT_EQ(lua_gettop(L), top);
    /* drop one level: now exactly the limit */
    ASSERT_EQ(codec_decode(L, b.data + 5, b.len - 5), 0);
    ASSERT_EQ(lua_gettop(L), top + 1);
    buf_free(&b);
    lua_close(L);
}

static void expect_encode_error(lua_State *L, const char *word)
{
    buf b;
    buf_init(&b);
    char err[256];
    memset(err, 0, sizeof err);
    int top = lua_gettop(L);
    int rv = codec_encode(L, -1, &b, err, sizeof err);
    buf_free(&b);
    ASSERT_EQ(rv, -1);
    ASSERT_EQ(lua_gettop(L), top); /* the stack is left as it was */
    ASSERT_CONTAINS(err, word);
    lua_pop(L, 1);
}

static int dummy_cfunction(lua_State *L)
{
    (void)L;
    return 0;
}

TEST(codec_encode_errors)
{
    lua_State *L = new_state();
    lua_pushcfunction(L, dummy_cfunction);
    expect_encode_error(L, "function");
    push_expr(L, "function() end");
    expect_encode_error(L, "function");
    lua_newuserdata(L, 16);
    expect_encode_error(L, "userdata");
    lua_pushlightuserdata(L, L);
    expect_encode_error(L, "userdata");
    lua_newthread(L);
    expect_encode_error(L, "thread");
    push_expr(L, "(function() local t = {} t.self = t return t end)()");
    expect_encode_error(L, "cycle");
    push_expr(L, "(function() local t = {a = {b = {}}} t.a.b.c = t.a return t end)()");
    expect_encode_error(L, "cycle");
    push_expr(L, "{[true] = 1}");
    expect_encode_error(L, "boolean");
    push_expr(L, "{[{}] = 1}");
    expect_encode_error(L, "key");
    push_expr(L, "{ok = 1, nested = {deeper = {f = print}}}");
    expect_encode_error(L, "function");
    push_expr(L, "{1, 2, coroutine.create(print)}");
    expect_encode_error(L, "thread");
    ASSERT_EQ(lua_gettop(L), 0);
    lua_close(L);
}

/* codec.h documents the message as e.g. "cannot store a function at key
 * 'a.b'": the error should say where in the value the problem is. */
TEST(codec_encode_error_names_key_path)
{
    lua_State *L = new_state();
    push_expr(L, "{a = {b = print}}");
    expect_encode_error(L, "a.b");
    lua_close(L);
}

TEST(codec_encode_error_small_err_buffer)
{
    lua_State *L = new_state();
    lua_pushcfunction(L, dummy_cfunction);
    buf b;
    buf_init(&b);
    char err[8];
    memset(err, 'x', sizeof err);
    ASSERT_EQ(codec_encode(L, -1, &b, err, sizeof err), -1);
    ASSERT_EQ(strlen(err), sizeof err - 1); /* truncated, terminated */
    buf_free(&b);
    lua_close(L);
}

TEST(codec_encode_positive_index)
{
    lua_State *L = new_state();
    lua_pushstring(L, "first");
    lua_pushnumber(L, 2);
    buf b;
    buf_init(&b);
    char err[64];
    ASSERT_EQ(codec_encode(L, 1, &b, err, sizeof err), 0);
    ASSERT_BYTES_EQ(b.data, b.len, "s\x05" "first", 7);
    ASSERT_EQ(lua_gettop(L), 2);
    buf_free(&b);
    lua_close(L);
}

/* Every proper prefix of a valid encoding is invalid, and leaves the stack
 * alone; so does the encoding plus a trailing byte. */
TEST(codec_decode_truncations)
{
    lua_State *L = new_state();
    push_expr(L, "{1, 'two', {three = 3, [4.5] = {true, false}}, s = string.rep('x', 200), n = -0,"
                 " e = '', deep = {{{{{}}}}}, [-7] = 1/0}");
    buf enc;
    roundtrip(L, &enc);
    lua_settop(L, 0);
    lua_pushstring(L, "sentinel");
    for (size_t n = 0; n < enc.len; n++) {
        ASSERT_MSG(codec_decode(L, enc.data, n) == -1, "prefix of %zu/%zu bytes decoded", n, enc.len);
        ASSERT_EQ(lua_gettop(L), 1);
    }
    buf_append(&enc, "n", 1);
    ASSERT_EQ(codec_decode(L, enc.data, enc.len), -1);
    ASSERT_EQ(lua_gettop(L), 1);
    ASSERT_EQ(codec_decode(L, enc.data, enc.len - 1), 0);
    ASSERT_EQ(lua_gettop(L), 2);
    ASSERT_STR_EQ(lua_tostring(L, 1), "sentinel");
    buf_free(&enc);
    lua_close(L);
}

static void expect_bad(lua_State *L, const char *data, size_t len)
{
    int top = lua_gettop(L);
    ASSERT_MSG(codec_decode(L, data, len) == -1, "decoded: %s", unit_repr(data, len));
    ASSERT_EQ(lua_gettop(L), top);
}

TEST(codec_decode_invalid)
{
    lua_State *L = new_state();
    expect_bad(L, "", 0);
    expect_bad(L, "x", 1);
    expect_bad(L, "N", 1);
    expect_bad(L, "d\x00", 2);
    expect_bad(L, "s\x05" "abc", 5);                                          /* short string */
    expect_bad(L, "s\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);           /* huge length */
    expect_bad(L, "s\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);       /* varint too long */
    expect_bad(L, "s\x80", 2);                                                /* varint cut */
    expect_bad(L, "T\xff\xff\xff\xff\x0f", 6);                                /* absurd count */
    expect_bad(L, "T\x01", 2);
    expect_bad(L, "T\x01n", 3);
    expect_bad(L, "T\x01nt", 4);                                               /* nil key */
    expect_bad(L, "T\x01tt", 4);                                               /* boolean key */
    expect_bad(L, "T\x01T\x00t", 5);                                           /* table key */
    expect_bad(L, "T\x01" "d\x00\x00\x00\x00\x00\x00\xf8\x7f" "t", 12);        /* NaN key */
    expect_bad(L, "T\x01s\x01" "a", 5);                                        /* key without value */
    expect_bad(L, "T\x02s\x01" "at", 6);                                       /* one pair short */
    expect_bad(L, "T\x01s\x01" "aT\x01s\x01" "bx", 11);                        /* bad tag inside */
    expect_bad(L, "tt", 2);                                                   /* two values */
    /* and valid ones, for contrast */
    ASSERT_EQ(codec_decode(L, "T\x01s\x01" "at", 6), 0);
    ASSERT_EQ(codec_decode(L, "T\x01" "d\x00\x00\x00\x00\x00\x00\xf0\x3fs\x01x", 14), 0);
    ASSERT_EQ(codec_decode(L, "T\x01s\x01" "an", 6), 0); /* a nil value is just absent */
    ASSERT_EQ(lua_gettop(L), 3);
    lua_close(L);
}

TEST(codec_decode_random_bytes)
{
    lua_State *L = new_state();
    uint64_t rng = 12345;
    lua_pushstring(L, "sentinel");
    static const char tags[] = "nftdsT";
    int ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char data[64];
        size_t len = (size_t)(unit_rand(&rng) % sizeof data);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = unit_rand(&rng);
            /* mostly tags and small numbers, so the decoder gets deep */
            data[i] = (r & 3) == 0 ? tags[(r >> 8) % 6] : (r & 3) == 1 ? (char)((r >> 8) % 4) : (char)(r >> 8);
        }
        int rv = codec_decode(L, data, len);
        if (rv == 0) {
            ASSERT_EQ(lua_gettop(L), 2);
            lua_pop(L, 1);
            ok++;
        } else {
            ASSERT_EQ(rv, -1);
            ASSERT_EQ(lua_gettop(L), 1);
        }
    }
    ASSERT_STR_EQ(lua_tostring(L, 1), "sentinel");
    ASSERT(ok > 0); /* the generator does hit valid encodings */
    lua_close(L);
}

/* Mutating single bytes of a valid encoding never breaks the decoder. */
TEST(codec_decode_mutations)
{
    lua_State *L = new_state();
    push_expr(L, "{a = {1, 2, 'x'}, b = 'hello', [3] = {c = true}}");
    buf enc;
    roundtrip(L, &enc);
    lua_settop(L, 0);
    for (size_t i = 0; i < enc.len; i++) {
        for (int v = 0; v < 256; v++) {
            char *copy = malloc(enc.len);
            memcpy(copy, enc.data, enc.len);
            copy[i] = (char)v;
            int rv = codec_decode(L, copy, enc.len);
            free(copy);
            ASSERT_EQ(lua_gettop(L), rv == 0 ? 1 : 0);
            lua_settop(L, 0);
        }
    }
    buf_free(&enc);
    lua_close(L);
}
