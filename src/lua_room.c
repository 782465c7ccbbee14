/* lua_room.c - a room's party object, and what each of its events runs.
 *
 * What PartyKit code sees in every room is made here, in C: self (the
 * instance: its own fields, then the party class's through __index, so a
 * hot reload can swap the methods), self.room (id, name, broadcast,
 * getConnection, getConnections; storage, context and env made when first
 * read), and the function each event's coroutine runs: the party's own
 * callback with its arguments (onStart, onConnect, onMessage, onClose,
 * onAlarm), or a no-op when the party has none. No Lua glue runs between
 * C and the party on those events, and none of its code sits in every
 * room's memory: written in Lua, that glue cost each room ~12 KB of its
 * Lua heap (bench/rooms.mjs).
 *
 * The rest is Lua, loaded the first time a room needs it: requests
 * (lua/luaparty/http.lua: onRequest's answer is read in Lua, where fields
 * are cheap to read), and what rooms rarely need (lua/luaparty/runtime.lua
 * and the parts it loads): the lobby and static hooks, connection tags,
 * onError, hot reload, sockets, room.storage, room.context, room.env. */
#include "lua_room.h"
#include "lua_binary.h"
#include "lua_conn.h"
#include "lua_request.h"
#include "room.h"
#include "util.h"

#include <string.h>

/* Per-state values kept in the registry under these addresses (a light
 * userdata key: no string to hash on the hot path). */
static char KEY_LOADER, KEY_NOOP, KEY_ROOM_MT;

static bool lobby(const room *r) { return r->id[0] == 0; }

/* ---- the runtime module (rare paths) ---- */

void lua_room_set_loader(lua_State *L, lua_CFunction require_embedded)
{
    lua_pushcfunction(L, require_embedded);
    lua_bind_set(L, &KEY_LOADER);
}

/* A runtime module loaded on first use (lua_cpcall: protected) and kept in
 * the registry under *ref: luaparty.runtime itself (field NULL), or one
 * function of a module (luaparty.http's request). */
typedef struct module_ref {
    const char *name, *field;
    int *ref;
} module_ref;

static int load_module(lua_State *L)
{
    const module_ref *m = lua_touserdata(L, 1);
    lua_bind_get(L, &KEY_LOADER);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    if (m->field) lua_getfield(L, -1, m->field);
    if (lua_type(L, -1) != (m->field ? LUA_TFUNCTION : LUA_TTABLE)) return luaL_error(L, "%s did not load", m->name);
    *m->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Raises its upvalue: the entry of an event whose runtime did not load. */
static int raise_upvalue(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return lua_error(L);
}

/* Pushes the module's value on L, loaded first if need be; if it cannot
 * be, a function that raises why (an event's entry then fails with it). */
static void push_module(lua_State *L, room *r, const module_ref *m)
{
    if (*m->ref == LUA_NOREF && lua_cpcall(r->L, load_module, (void *)m) != 0) {
        lua_xmove(r->L, L, 1);
        lua_pushcclosure(L, raise_upvalue, 1);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, *m->ref);
}

void lua_room_push_entry(lua_State *co, room *r, const char *name)
{
    module_ref m = {"luaparty.runtime", NULL, &r->rt_ref};
    push_module(co, r, &m);
    if (r->rt_ref == LUA_NOREF) return; /* it did not load: the raiser is the entry */
    lua_getfield(co, -1, name);
    lua_remove(co, -2);
}

/* Calls the runtime's function name with the n values on top of L's
 * stack, with nres results (inside party code: errors propagate). */
static void call_runtime(lua_State *L, room *r, const char *name, int n, int nres)
{
    lua_room_push_entry(L, r, name);
    lua_insert(L, -n - 1);
    lua_call(L, n, nres);
}

/* ---- self and self.room ---- */

/* self's __index: (self, key) -> the party class's field */
static int instance_index(lua_State *L)
{
    room *r = room_from_state(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->class_ref);
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

/* Pushes the connection objects of the room, oldest first, into a new array. */
static void push_connections(lua_State *L, room *r, const char *tag)
{
    lua_createtable(L, (int)r->nconns, 0);
    int n = 0;
    lp_conn *last = r->conns;
    while (last && last->next) last = last->next;
    for (lp_conn *c = last; c; c = c->prev) {
        lua_conn_push(L, c);
        /* a connection's id is always one of its tags, as in PartyKit */
        bool in = !tag || strcmp(tag, c->id) == 0;
        if (!in && lua_istable(L, -1)) {
            lua_pushliteral(L, "_tags");
            lua_rawget(L, -2);
            if (lua_istable(L, -1)) {
                lua_pushstring(L, tag);
                lua_rawget(L, -2);
                in = lua_toboolean(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        if (in) lua_rawseti(L, -2, ++n);
        else lua_pop(L, 1);
    }
}

/* The iterator getConnections returns: upvalue 1 the array, 2 the index. */
static int next_connection(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(2)) + 1;
    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(2));
    lua_rawgeti(L, lua_upvalueindex(1), (int)i);
    return 1;
}

/* for conn in room:getConnections([tag]) do ... end */
static int m_get_connections(lua_State *L)
{
    const char *tag = luaL_optstring(L, 2, NULL);
    push_connections(L, room_from_state(L), tag);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, next_connection, 2);
    return 1;
}

/* room:getConnection(id) -> an open connection with that id, or nil */
static int m_get_connection(lua_State *L)
{
    room *r = room_from_state(L);
    const char *id = lua_tostring(L, 2);
    lp_conn *found = NULL;
    for (lp_conn *c = r->conns; id && c; c = c->next)
        if (strcmp(c->id, id) == 0) found = c; /* the oldest, as before */
    if (found) lua_conn_push(L, found);
    else lua_pushnil(L);
    return 1;
}

/* The room methods table's __index: (methods, key). The fields made when
 * first read come from the runtime, which sets them on the room object. */
static int room_more(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    if (!k || (strcmp(k, "storage") && strcmp(k, "context") && strcmp(k, "env"))) return 0;
    lua_pushvalue(L, 2);
    call_runtime(L, room_from_state(L), "room_field", 1, 1);
    return 1;
}

static void push_room_mt(lua_State *L)
{
    lua_bind_get(L, &KEY_ROOM_MT);
    if (!lua_isnil(L, -1)) return;
    lua_pop(L, 1);
    static const luaL_Reg methods[] = {{"broadcast", lua_room_broadcast},
                                       {"getConnection", m_get_connection},
                                       {"getConnections", m_get_connections},
                                       {NULL, NULL}};
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 3);
    luaL_register(L, NULL, methods);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, room_more);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_bind_set(L, &KEY_ROOM_MT);
}

void lua_room_init(lua_State *L, room *r)
{
    r->class_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, r->party->name);
    lua_setfield(L, -2, "name");
    push_room_mt(L);
    lua_setmetatable(L, -2);
    lua_createtable(L, 0, 1); /* self */
    lua_insert(L, -2);
    lua_setfield(L, -2, "room");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, instance_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    r->instance_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- what the runtime module asks of C ---- */

/* core.class() -> the party class; core.instance() -> self */
static int l_class(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, room_from_state(L)->class_ref);
    return 1;
}

static int l_instance(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, room_from_state(L)->instance_ref);
    return 1;
}

/* core.set_class(class): a hot reload swapped the party's code */
static int l_set_class(lua_State *L)
{
    room *r = room_from_state(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, r->class_ref);
    r->class_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* core.info() -> {id=, name=, env_json=, parties={names...}} */
static int l_info(lua_State *L)
{
    room *r = room_from_state(L);
    const config *cfg = r->owner->cfg;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, r->party->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, cfg->vars_json);
    lua_setfield(L, -2, "env_json");
    lua_createtable(L, (int)cfg->nparties, 0);
    for (size_t i = 0; i < cfg->nparties; i++) {
        lua_pushstring(L, cfg->parties[i]->name);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "parties");
    return 1;
}

const luaL_Reg lua_room_functions[] = {{"class", l_class},
                                       {"instance", l_instance},
                                       {"set_class", l_set_class},
                                       {"info", l_info},
                                       {NULL, NULL}};

/* ---- events ---- */

static int noop(lua_State *L)
{
    (void)L;
    return 0;
}

static void push_noop(lua_State *L)
{
    lua_bind_get(L, &KEY_NOOP);
    if (!lua_isnil(L, -1)) return;
    lua_pop(L, 1);
    lua_pushcfunction(L, noop);
    lua_pushvalue(L, -1);
    lua_bind_set(L, &KEY_NOOP);
}

/* Pushes class[name] (a plain table: see by_runtime); true if it is set. */
static bool push_class_field(lua_State *co, room *r, const char *name)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->class_ref);
    lua_getfield(co, -1, name);
    lua_replace(co, -2);
    return lua_toboolean(co, -1);
}

/* C reads the class's fields only if it is a plain table. One with a
 * metatable (a base class, a proxy) could run party code on a lookup, and
 * that must run in the event's coroutine, under the CPU and memory limits
 * and with its errors caught: the runtime looks the callback up there. */
static bool by_runtime(lua_State *co, room *r)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->class_ref);
    bool meta = lua_getmetatable(co, -1);
    lua_pop(co, meta ? 2 : 1);
    return meta || lobby(r);
}

/* Pushes the party's callback name and self; false (a no-op pushed) if the
 * party has no such callback. */
static bool push_callback(lua_State *co, room *r, const char *name)
{
    if (!push_class_field(co, r, name)) {
        lua_pop(co, 1);
        push_noop(co);
        return false;
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->instance_ref);
    return true;
}

/* Moves the function and arguments pushed last (n values) below the
 * `below` values under them: they were pushed after their arguments. */
static void lift(lua_State *co, int n, int below)
{
    for (int i = 0; i < n; i++) lua_insert(co, -below - n);
}

int lua_room_push_event(lua_State *co, room *r, event *ev)
{
    switch (ev->kind) {
    case EV_START:
        if (by_runtime(co, r)) {
            lua_room_push_entry(co, r, "start");
            return 0;
        }
        return push_callback(co, r, "onStart") ? 1 : 0;
    case EV_MESSAGE:
        if (!ev->conn->joined) { /* it closed before this message's turn */
            push_noop(co);
            return 0;
        }
        if (by_runtime(co, r)) {
            lua_room_push_entry(co, r, "message");
            lua_conn_push(co, ev->conn);
            if (ev->msg) lua_push_message(co, ev->msg);
            else lua_push_message_bytes(co, ev->opcode, ev->bytes, ev->nbytes);
            return 2;
        }
        if (!push_callback(co, r, "onMessage")) return 0;
        if (ev->msg) lua_push_message(co, ev->msg);
        else lua_push_message_bytes(co, ev->opcode, ev->bytes, ev->nbytes);
        lua_conn_push(co, ev->conn);
        return 3;
    case EV_CONNECT: {
        lua_conn_join(co, r, ev->conn);
        lua_push_request(co, ev->req);
        bool special = by_runtime(co, r);
        if (!special) {
            special = push_class_field(co, r, "getConnectionTags");
            lua_pop(co, 1);
        }
        if (special) { /* (conn, req): onSocket, or tags, then onConnect */
            lua_room_push_entry(co, r, "connect");
            lift(co, 1, 2);
            return 2;
        }
        lua_createtable(co, 0, 1); /* ctx = {request = req} */
        lua_insert(co, -2);
        lua_setfield(co, -2, "request");
        if (!push_callback(co, r, "onConnect")) {
            lift(co, 1, 2);
            lua_settop(co, 1);
            return 0;
        }
        lift(co, 2, 2); /* onConnect(self, conn, ctx) */
        return 3;
    }
    case EV_CLOSE: {
        lua_conn_push(co, ev->conn);
        lua_conn_leave(co, r, ev->conn);
        if (lua_isnil(co, -1)) { /* it never joined, or left already */
            lua_pop(co, 1);
            push_noop(co);
            return 0;
        }
        bool special = by_runtime(co, r);
        if (!special && ev->error) {
            special = push_class_field(co, r, "onError");
            lua_pop(co, 1);
        }
        if (special) { /* (conn, code, err) */
            lua_pushinteger(co, ev->code);
            if (ev->error) lua_pushstring(co, ev->error);
            else lua_pushnil(co);
            lua_room_push_entry(co, r, "close");
            lift(co, 1, 3);
            return 3;
        }
        if (!push_callback(co, r, "onClose")) {
            lua_remove(co, -2);
            return 0;
        }
        lift(co, 2, 1); /* onClose(self, conn) */
        return 2;
    }
    case EV_REQUEST: { /* http.request(class, self, req) (lua/luaparty/http.lua) */
        module_ref m = {"luaparty.http", "request", &r->request_ref};
        push_module(co, r, &m);
        if (*m.ref == LUA_NOREF) return 0; /* it did not load: the raiser is the entry */
        lua_rawgeti(co, LUA_REGISTRYINDEX, r->class_ref);
        lua_rawgeti(co, LUA_REGISTRYINDEX, r->instance_ref);
        lua_push_request(co, ev->req);
        return 3;
    }
    case EV_ALARM: {
        if (by_runtime(co, r)) {
            lua_room_push_entry(co, r, "alarm");
            lua_pushinteger(co, ev->code);
            return 1;
        }
        if (!push_callback(co, r, "onAlarm")) return 0;
        lua_createtable(co, 0, 2);
        lua_pushinteger(co, ev->code);
        lua_setfield(co, -2, "retryCount");
        lua_pushboolean(co, ev->code > 0);
        lua_setfield(co, -2, "isRetry");
        return 2;
    }
    default:
        return 0;
    }
}
