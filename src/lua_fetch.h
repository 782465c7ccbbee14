/* lua_fetch.h - luaparty.fetch: outbound HTTP(S) from a room (lua_fetch.c, over fetch.c). */
#ifndef LP_LUA_FETCH_H
#define LP_LUA_FETCH_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_fetch_register(lua_State *L);

#endif
