/* lua_yjs.c - the C half of luaparty.yjs (lua/luaparty/yjs.lua): Yjs updates
 * (yjs.c) and the y-protocols messages around them, for Lua.
 *
 * core.yjs() returns the table of functions, made on first use: rooms that
 * never hold a Yjs document pay for one C function in luaparty.core.
 *
 *   message(msg)          -> kind, ...  (a y-websocket message, checked)
 *       "sync1", sv | "sync2", update, empty | "update", update, empty |
 *       "awareness", {client, clock, state, client, clock, state, ...} |
 *       "query"; or nil, error, close code (1003 unknown type, 1007 bad data)
 *   sync(sub, bytes)      -> message   (0: step 1, 1: step 2, 2: update)
 *   awareness({...})      -> message   (the flat list message() returns)
 *   merge({updates} [, gc [, coalesce]]) -> update, or nil, error
 *   diff(update, sv)      -> update    stateVector(update) -> sv
 *   news(update, doc)     -> update, empty
 *   now()                 -> wall clock in ms
 * Updates come in as strings or Binary values and go out as strings.
 *
 * A result is built in a C buffer (yjs.c allocates with malloc and never
 * calls Lua); the buffer sits in a userdata with a __gc while the string
 * is pushed, so an out-of-memory error there cannot leak it. */
#include "lua_yjs.h"
#include "lua_binary.h"
#include "util.h"
#include "yjs.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_MT "luaparty.yjs.buf"

static int guard_gc(lua_State *L)
{
    buf_free(luaL_checkudata(L, 1, GUARD_MT));
    return 0;
}

static void guard_metatable(lua_State *L)
{
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
}

/* A buffer owned by a new userdata on the stack. */
static buf *guarded_buf(lua_State *L)
{
    buf *b = lua_newuserdata(L, sizeof *b);
    buf_init(b);
    lua_bind_metatable(L, GUARD_MT, guard_metatable);
    lua_setmetatable(L, -2);
    return b;
}

/* Replaces the guard on top with the buffer's bytes as a string. */
static void push_buf(lua_State *L, buf *b)
{
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    buf_free(b);
    lua_remove(L, -2);
}

/* The result in b (a guarded buffer on top of the stack) as a string, or
 * nil and the error when rc says the call failed. */
static int result(lua_State *L, buf *b, int rc, const char *err)
{
    if (rc != 0) {
        buf_free(b);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    push_buf(L, b);
    return 1;
}

static const uint8_t *check_bytes(lua_State *L, int idx, size_t *len)
{
    int opcode;
    return (const uint8_t *)lua_check_message(L, idx, len, &opcode);
}

/* nil, the message (lua_pushfstring's format), the close code */
static int push_error(lua_State *L, int code, const char *fmt, ...)
{
    lua_pushnil(L);
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushinteger(L, code);
    return 3;
}

/* An awareness update: count, then client, clock, JSON state per entry. */
static int push_awareness(lua_State *L, const uint8_t *p, const uint8_t *end)
{
    uint64_t n;
    if (yjs_read_varuint(&p, end, &n) != 0) return push_error(L, 1007, "awareness update: bad entry count");
    if (n > (uint64_t)(end - p)) return push_error(L, 1007, "awareness update: more entries than bytes");
    lua_pushliteral(L, "awareness");
    lua_createtable(L, (int)n * 3, 0);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t client, clock;
        const uint8_t *state;
        size_t len;
        if (yjs_read_varuint(&p, end, &client) != 0 || yjs_read_varuint(&p, end, &clock) != 0 ||
            yjs_read_varbytes(&p, end, &state, &len) != 0)
            return push_error(L, 1007, "awareness update: an entry is truncated");
        if (!utf8_valid(state, len) || !yjs_json_valid(state, len))
            return push_error(L, 1007, "awareness update: a state is not valid JSON");
        lua_pushnumber(L, (lua_Number)client);
        lua_rawseti(L, -2, (int)(3 * i + 1));
        lua_pushnumber(L, (lua_Number)clock);
        lua_rawseti(L, -2, (int)(3 * i + 2));
        lua_pushlstring(L, (const char *)state, len);
        lua_rawseti(L, -2, (int)(3 * i + 3));
    }
    if (p != end) return push_error(L, 1007, "awareness update: trailing bytes");
    return 2;
}

/* message(msg): the y-websocket / y-partykit message, read and checked */
static int l_message(lua_State *L)
{
    size_t len;
    const uint8_t *data = check_bytes(L, 1, &len), *p = data, *end = data + len;
    uint64_t type, sub;
    const uint8_t *payload;
    size_t plen;
    char err[YJS_ERR_MAX];
    if (yjs_read_varuint(&p, end, &type) != 0) return push_error(L, 1007, "empty or unreadable message type");
    switch (type) {
    case 0: { /* sync */
        if (yjs_read_varuint(&p, end, &sub) != 0) return push_error(L, 1007, "sync message without a step");
        if (sub > 2) return push_error(L, 1003, "unknown sync message step");
        if (yjs_read_varbytes(&p, end, &payload, &plen) != 0 || p != end)
            return push_error(L, 1007, sub == 0 ? "sync step 1: the state vector is truncated or followed by bytes"
                                                : "sync: the update is truncated or followed by bytes");
        if (sub == 0) {
            if (yjs_check_state_vector(payload, plen, err) != 0)
                return push_error(L, 1007, "sync step 1: %s", err);
            lua_pushliteral(L, "sync1");
            lua_pushlstring(L, (const char *)payload, plen);
            return 2;
        }
        bool empty;
        if (yjs_check_update(payload, plen, &empty, err) != 0)
            return push_error(L, 1007, "%s: %s", sub == 1 ? "sync step 2" : "update", err);
        lua_pushstring(L, sub == 1 ? "sync2" : "update");
        lua_pushlstring(L, (const char *)payload, plen);
        lua_pushboolean(L, empty);
        return 3;
    }
    case 1: /* awareness */
        if (yjs_read_varbytes(&p, end, &payload, &plen) != 0 || p != end)
            return push_error(L, 1007, "awareness message: truncated or followed by bytes");
        return push_awareness(L, payload, payload + plen);
    case 3: /* query awareness */
        if (p != end) return push_error(L, 1007, "awareness query followed by bytes");
        lua_pushliteral(L, "query");
        return 1;
    default:
        return push_error(L, 1003, "unknown message type");
    }
}

/* sync(sub, bytes) -> a sync message */
static int l_sync(lua_State *L)
{
    int sub = (int)luaL_checkinteger(L, 1);
    luaL_argcheck(L, sub >= 0 && sub <= 2, 1, "sync step must be 0, 1 or 2");
    size_t len;
    const uint8_t *data = check_bytes(L, 2, &len);
    buf *b = guarded_buf(L);
    buf_append(b, "\0", 1);
    buf_put_varuint(b, (uint64_t)sub);
    yjs_put_varbytes(b, data, len);
    push_buf(L, b);
    return 1;
}

/* awareness({client, clock, state, ...}) -> an awareness message */
static int l_awareness(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)lua_objlen(L, 1);
    luaL_argcheck(L, n % 3 == 0, 1, "a list of client, clock, state triples");
    /* check and measure first: the buffers below must not meet an error */
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        if (i % 3 == 0 ? lua_type(L, -1) != LUA_TSTRING : lua_type(L, -1) != LUA_TNUMBER)
            luaL_argerror(L, 1, "a list of client, clock, state triples");
        lua_pop(L, 1);
    }
    buf *inner = guarded_buf(L);
    buf_put_varuint(inner, (uint64_t)(n / 3));
    for (int i = 1; i <= n; i += 3) {
        size_t len;
        lua_rawgeti(L, 1, i);
        buf_put_varuint(inner, (uint64_t)lua_tonumber(L, -1));
        lua_rawgeti(L, 1, i + 1);
        buf_put_varuint(inner, (uint64_t)lua_tonumber(L, -1));
        lua_rawgeti(L, 1, i + 2);
        const char *s = lua_tolstring(L, -1, &len);
        yjs_put_varbytes(inner, s, len);
        lua_pop(L, 3);
    }
    buf *b = guarded_buf(L);
    buf_append(b, "\1", 1);
    yjs_put_varbytes(b, inner->data, inner->len);
    buf_free(inner);
    push_buf(L, b);
    return 1;
}

/* merge({updates} [, gc [, coalesce]]) */
static int l_merge(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int flags = (lua_toboolean(L, 2) ? YJS_GC : 0) | (lua_toboolean(L, 3) ? YJS_COALESCE : 0);
    size_t n = lua_objlen(L, 1);
    yjs_bytes *in = lua_newuserdata(L, (n ? n : 1) * sizeof *in); /* collected with the call */
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (int)i + 1);
        in[i].data = check_bytes(L, -1, &in[i].len); /* the table keeps it alive */
        lua_pop(L, 1);
    }
    char err[YJS_ERR_MAX];
    buf *b = guarded_buf(L);
    return result(L, b, yjs_merge(in, n, flags, b, err), err);
}

static int l_diff(lua_State *L)
{
    size_t len, svlen;
    const uint8_t *u = check_bytes(L, 1, &len), *sv = check_bytes(L, 2, &svlen);
    char err[YJS_ERR_MAX];
    buf *b = guarded_buf(L);
    return result(L, b, yjs_diff(u, len, sv, svlen, b, err), err);
}

static int l_state_vector(lua_State *L)
{
    size_t len;
    const uint8_t *u = check_bytes(L, 1, &len);
    char err[YJS_ERR_MAX];
    buf *b = guarded_buf(L);
    return result(L, b, yjs_state_vector(u, len, b, err), err);
}

static int l_news(lua_State *L)
{
    size_t len, dlen;
    const uint8_t *u = check_bytes(L, 1, &len), *d = check_bytes(L, 2, &dlen);
    char err[YJS_ERR_MAX];
    bool empty = false;
    buf *b = guarded_buf(L);
    if (result(L, b, yjs_news(u, len, d, dlen, b, &empty, err), err) == 2) return 2;
    lua_pushboolean(L, empty);
    return 2;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)now_ms());
    return 1;
}

/* core.yjs() -> the table above (made once per state) */
static int l_open(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "luaparty.yjs.core");
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"message", l_message}, {"sync", l_sync}, {"awareness", l_awareness},
                                   {"merge", l_merge},     {"diff", l_diff}, {"stateVector", l_state_vector},
                                   {"news", l_news},       {"now", l_now},   {NULL, NULL}};
    lua_createtable(L, 0, 8);
    luaL_register(L, NULL, fns);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "luaparty.yjs.core");
    return 1;
}

const luaL_Reg lua_yjs_functions[] = {{"yjs", l_open}, {NULL, NULL}};
