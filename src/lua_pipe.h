/* lua_pipe.h - room.context.parties: the :get(id):socket() pipe to another room (lua_pipe.c). */
#ifndef LP_LUA_PIPE_H
#define LP_LUA_PIPE_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_pipe_register(lua_State *L);

#endif
