/* lua_room.h - a room's party object and what each event runs (lua_room.c). */
#ifndef LP_LUA_ROOM_H
#define LP_LUA_ROOM_H

#include "lua_bind.h"

struct room;
struct event;

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_room_functions[];

/* Makes self and self.room for the party class on top of the stack (popped)
 * and keeps both (r->class_ref, r->instance_ref). Raises on out of memory. */
void lua_room_init(lua_State *L, struct room *r);
/* How the runtime module (lua/luaparty/runtime.lua) is loaded, the first
 * time a room needs it: a C function (name) -> module, set once per state
 * by the sandbox. */
void lua_room_set_loader(lua_State *L, lua_CFunction require_embedded);
/* Pushes on co the function the event's coroutine runs and its arguments;
 * returns the number of arguments. For onStart, onConnect, onMessage,
 * onClose and onAlarm that is the party's own callback (a no-op if it has
 * none); for a request luaparty.http's request (it answers with status,
 * headers, body); what is rarer goes through the runtime module. */
int lua_room_push_event(lua_State *co, struct room *r, struct event *ev);
/* Pushes the runtime module's function name (hot reload, sockets, static
 * hooks). If the module cannot be loaded, the function pushed raises why. */
void lua_room_push_entry(lua_State *co, struct room *r, const char *name);

#endif
