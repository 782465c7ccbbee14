/* lua_conn.h - connections: the Lua handle of a joined connection (lua_conn.c). */
#ifndef LP_LUA_CONN_H
#define LP_LUA_CONN_H

#include "lua_bind.h"

/* Connections: join makes the connection's object (lua_conn.c) and pushes
 * it; push pushes it again, or nil once it left. */
void lua_conn_join(lua_State *L, struct room *r, lp_conn *c);
void lua_conn_push(lua_State *L, lp_conn *c);
void lua_conn_leave(lua_State *L, struct room *r, lp_conn *c);
/* Reads an optional (code, reason) pair at idx, idx+1 for a close: 1000-1003,
 * 1007-1014 or 3000-4999, at most 123 bytes of UTF-8 reason. Raises otherwise. */
const char *lua_check_close(lua_State *L, int idx, int *code, size_t *len);
/* room:broadcast (lua_room.c's room object has it) */
int lua_room_broadcast(lua_State *L);

#endif
