/* lua_fetch.h - luaparty.fetch: outbound HTTP(S) from a room (lua_fetch.c, over fetch.c). */
#ifndef LP_LUA_FETCH_H
#define LP_LUA_FETCH_H

#include "lua_bind.h"

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_fetch_functions[];

#endif
