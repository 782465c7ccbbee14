/* lua_pipe.h - room.context.parties: the :get(id):socket() pipe to another room (lua_pipe.c). */
#ifndef LP_LUA_PIPE_H
#define LP_LUA_PIPE_H

#include "lua_bind.h"

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_pipe_functions[];

#endif
