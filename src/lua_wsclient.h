/* lua_wsclient.h - luaparty.connect: outbound WebSockets from a room (lua_wsclient.c, over wsclient.c). */
#ifndef LP_LUA_WSCLIENT_H
#define LP_LUA_WSCLIENT_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_wsclient_register(lua_State *L);

#endif
