/* lua_storage.h - room.storage (lua_storage.c). */
#ifndef LP_LUA_STORAGE_H
#define LP_LUA_STORAGE_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_storage_register(lua_State *L);

#endif
