/* lua_binary.c - Binary: how a binary WebSocket message looks in Lua.
 *
 * Text frames arrive as plain strings. A binary frame arrives as a Binary
 * userdata, so that echoing it (conn:send(msg)) sends a binary frame again
 * and code can tell the two apart (luaparty.isBinary). tostring(b) or
 * b:bytes() give the raw bytes, #b their length. */
#include "lua_binary.h"
#include "util.h"

#include <string.h>

#define BINARY_MT "luaparty.Binary"

typedef struct binary {
    size_t len;
    char data[];
} binary;

void lua_push_binary(lua_State *L, const void *data, size_t len)
{
    binary *b = lua_newuserdata(L, sizeof *b + len);
    b->len = len;
    if (len) memcpy(b->data, data, len);
    luaL_getmetatable(L, BINARY_MT);
    lua_setmetatable(L, -2);
}

void lua_push_message_bytes(lua_State *L, int opcode, const void *data, size_t len)
{
    if (opcode == 2) lua_push_binary(L, data, len);
    else lua_pushlstring(L, data, len);
}

void lua_push_message(lua_State *L, const chunk *msg)
{
    lua_push_message_bytes(L, msg->opcode, chunk_payload(msg), chunk_payload_len(msg));
}

const char *lua_check_message(lua_State *L, int idx, size_t *len, int *opcode)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        *opcode = 1;
        return lua_tolstring(L, idx, len);
    }
    binary *b = luaL_testudata(L, idx, BINARY_MT);
    if (!b) {
        luaL_typerror(L, idx, "string or Binary");
        return NULL;
    }
    *opcode = 2;
    *len = b->len;
    return b->data;
}

/* Pushes "file:line: " of the party code that called into the runtime
 * (the first frame outside lua/luaparty/), or "" if there is none. */
static void where_in_party(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        if (ar.source[0] == '@' && strncmp(ar.source, "@lua/luaparty/", 14) == 0) continue;
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        return;
    }
    lua_pushliteral(L, "");
}

/* Raises "<where>: <what> is not valid UTF-8 (byte N) ...". */
static void not_utf8(lua_State *L, const char *what, const char *s, size_t len, const char *advice)
{
    size_t at = utf8_valid_prefix((const uint8_t *)s, len);
    where_in_party(L);
    lua_pushfstring(L, "%s is not valid UTF-8 (bad byte at offset %d of %d)%s", what, (int)at, (int)len, advice);
    lua_concat(L, 2);
    lua_error(L);
}

const char *lua_check_frame(lua_State *L, int idx, size_t *len, int *opcode)
{
    const char *data = lua_check_message(L, idx, len, opcode);
    if (*opcode == 1 && utf8_valid_prefix((const uint8_t *)data, *len) != *len)
        not_utf8(L, "a text message", data, *len,
                 ": a WebSocket text frame must be UTF-8, and clients close the socket on one that is not; "
                 "send bytes as a binary frame with luaparty.binary(s)");
    return data;
}

void lua_check_utf8_reason(lua_State *L, const char *reason, size_t len)
{
    if (!utf8_valid((const uint8_t *)reason, len)) not_utf8(L, "the close reason", reason, len, "");
}

static int l_binary(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_push_binary(L, s, len);
    return 1;
}

static int l_is_binary(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, BINARY_MT) != NULL);
    return 1;
}

static int b_tostring(lua_State *L)
{
    binary *b = luaL_checkudata(L, 1, BINARY_MT);
    lua_pushlstring(L, b->data, b->len);
    return 1;
}

static int b_len(lua_State *L)
{
    binary *b = luaL_checkudata(L, 1, BINARY_MT);
    lua_pushinteger(L, (lua_Integer)b->len);
    return 1;
}

static int b_eq(lua_State *L)
{
    binary *a = luaL_checkudata(L, 1, BINARY_MT), *b = luaL_checkudata(L, 2, BINARY_MT);
    lua_pushboolean(L, a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    return 1;
}

/* luaparty.validUtf8(s): true if s is well-formed UTF-8 (what a text frame
 * must be) */
static int l_valid_utf8(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, utf8_valid((const uint8_t *)s, len));
    return 1;
}

void lua_binary_register(lua_State *L)
{
    luaL_newmetatable(L, BINARY_MT);
    lua_pushcfunction(L, b_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, b_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, b_eq);
    lua_setfield(L, -2, "__eq");
    lua_newtable(L);
    lua_pushcfunction(L, b_tostring);
    lua_setfield(L, -2, "bytes");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_binary);
    lua_setfield(L, -2, "binary");
    lua_pushcfunction(L, l_is_binary);
    lua_setfield(L, -2, "isBinary");
    lua_pushcfunction(L, l_valid_utf8);
    lua_setfield(L, -2, "validUtf8");
}
