/* lua_yjs.h - Yjs updates and y-protocols messages for Lua (lua_yjs.c). */
#ifndef LP_LUA_YJS_H
#define LP_LUA_YJS_H

#include "lua_bind.h"

/* Registers core.yjs into the table on top of the stack. */
void lua_yjs_register(lua_State *L);

#endif
