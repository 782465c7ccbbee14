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

#endif
