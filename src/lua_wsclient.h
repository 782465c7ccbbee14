/* lua_wsclient.h - luaparty.connect: outbound WebSockets from a room (lua_wsclient.c, over wsclient.c). */
#ifndef LP_LUA_WSCLIENT_H
#define LP_LUA_WSCLIENT_H

#include "dial.h"
#include "http.h"
#include "lua_bind.h"

struct room;

/* Pushes a socket handle for an outbound WebSocket to u (taking u->target)
 * with headers h, whose events go to the Lua socket object at
 * listener_idx. node: it is a cross-party socket to a room of that node
 * (its errors name the node). */
void lua_ws_open(lua_State *L, struct room *r, url *u, const http_headers *h, int listener_idx, const char *node);

/* Registers its core functions into the table on top of the stack. */
void lua_wsclient_register(lua_State *L);

#endif
