/* lua_yjs.h - Yjs updates and y-protocols messages for Lua (lua_yjs.c). */
#ifndef LP_LUA_YJS_H
#define LP_LUA_YJS_H

#include "lua_bind.h"

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_yjs_functions[];

#endif
