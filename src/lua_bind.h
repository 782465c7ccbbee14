/* lua_bind.h - the C side of the Lua API, one file (and header) per bound object:
 *   lua_conn.c     connections (send, close, broadcast)
 *   lua_binary.c   Binary values (binary WebSocket messages)
 *   lua_request.c  requests and responses crossing C <-> Lua
 *   lua_storage.c  room.storage
 *   lua_party.c    room.context.parties: cross-party fetch
 *   lua_pipe.c     room.context.parties: cross-party socket (a pipe)
 *   lua_socket.c   the socket object pipes and outbound WebSockets share
 *   lua_fetch.c    luaparty.fetch: outbound HTTP(S) (fetch.c)
 *   lua_wsclient.c luaparty.connect: outbound WebSockets (wsclient.c)
 *   lua_yjs.c      luaparty.yjs: Yjs updates and y-protocols messages (yjs.c)
 * All of them are functions of the private module "luaparty.core", which the
 * Lua runtime (lua/luaparty/runtime.lua) wraps into PartyKit's API. */
#ifndef LP_LUA_BIND_H
#define LP_LUA_BIND_H

#include "buf.h"
#include "conn.h"
#include "http.h"
#include <lua.h>
#include <lauxlib.h>

struct room;

/* lua-cjson (Debian's liblua5.1-cjson.a), linked statically. */
int luaopen_cjson(lua_State *L);

/* Each file lists its functions of luaparty.core in a luaL_Reg array
 * (lua_<file>_functions); a room's core table makes each the first time it
 * is looked up (sandbox.c), and metatables are made on first use too: a
 * room pays only for what its party uses (there can be 100,000 rooms).
 *
 * lua_bind_metatable pushes the metatable registered under name, made
 * the first time by luaL_newmetatable and init (which fills the table on
 * top of the stack). luaL_checkudata and luaL_testudata need no change:
 * before the metatable exists, no value can have it. It is found again
 * under the address of name, a light userdata: no string is hashed for
 * that, once per message or request. */
/* Pushes the registry's value under the address key (nil if none). */
static inline void lua_bind_get(lua_State *L, const void *key)
{
    lua_pushlightuserdata(L, (void *)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

/* Pops the value on top into the registry under the address key. */
static inline void lua_bind_set(lua_State *L, const void *key)
{
    lua_pushlightuserdata(L, (void *)key);
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

static inline void lua_bind_metatable(lua_State *L, const char *name, void (*init)(lua_State *L))
{
    lua_bind_get(L, name);
    if (!lua_isnil(L, -1)) return;
    lua_pop(L, 1);
    if (luaL_newmetatable(L, name)) init(L);
    lua_pushvalue(L, -1);
    lua_bind_set(L, name);
}

#endif
