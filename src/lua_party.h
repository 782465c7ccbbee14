/* lua_party.h - room.context.parties: the :get(id):fetch() stub (lua_party.c). */
#ifndef LP_LUA_PARTY_H
#define LP_LUA_PARTY_H

#include "lua_bind.h"

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_party_functions[];
/* Parties, for :get(id):fetch() and :socket(): the party named at idx and
 * a room id at idx (1-256 bytes, no NUL), raising otherwise; the path a
 * request to that room gets ("/parties/<party>/<id><path>", caller frees). */
const struct party *lua_check_party(lua_State *L, int idx);
const char *lua_check_room_id(lua_State *L, int idx);
char *lua_party_target(const struct party *p, const char *id, const char *path);

#endif
