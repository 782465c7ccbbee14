/* lua_conn.c - connection handles for Lua: conn:send, conn:close and
 * room:broadcast.
 *
 * A handle is a small userdata pointing at the C connection. The connection
 * points back at it, and whichever dies first clears the other's pointer, so
 * a party that keeps a connection object after it closed gets a harmless
 * no-op instead of a dangling pointer. The runtime's connection object (the
 * table holding the handle as _h) is given to C with core.adopt and kept by
 * the connection (obj_ref) while it is joined: messages and the close come
 * with the object itself, so the runtime does not look it up by handle (a
 * userdata key is the interpreter's slow path). */
#include "lua_conn.h"
#include "lua_binary.h"
#include "metrics.h"
#include "room.h"
#include "util.h"
#include "ws.h"

#include <string.h>

#define CONN_MT "luaparty.conn"


static int box_gc(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (b->c) b->c->box = NULL;
    b->c = NULL;
    return 0;
}

int lua_conn_join(lua_State *L, room *r, lp_conn *c)
{
    conn_box *b = lua_newuserdata(L, sizeof *b);
    b->c = c;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    c->box = b;
    c->obj_ref = LUA_NOREF; /* until core.adopt */
    /* Newest first, as the room keeps them. */
    c->prev = NULL;
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    c->joined = true;
    conn_ref(c);
    lua_pushstring(L, c->id);
    lua_pushstring(L, c->uri);
    return 3;
}

void lua_conn_push(lua_State *L, lp_conn *c)
{
    /* obj_ref is set by join (LUA_NOREF, which reads as nil) */
    if (c->joined) lua_rawgeti(L, LUA_REGISTRYINDEX, c->obj_ref);
    else lua_pushnil(L);
}

void lua_conn_leave(lua_State *L, room *r, lp_conn *c)
{
    if (!c->joined) return;
    c->joined = false;
    if (c->prev) c->prev->next = c->next;
    else r->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    r->nconns--;
    luaL_unref(L, LUA_REGISTRYINDEX, c->obj_ref);
    c->obj_ref = LUA_NOREF;
    conn_unref(c);
}


/* Returns the live connection of the handle at idx, or NULL if it closed. */
static lp_conn *check_conn(lua_State *L, int idx)
{
    conn_box *b = luaL_checkudata(L, idx, CONN_MT);
    return b->c && !b->c->gone ? b->c : NULL;
}

/* The frame for a message a party sends to its connections: made once
 * however many receive it (counted for /metrics, where a broadcast shows
 * as one frame). */
static chunk *frame_of(int opcode, const char *data, size_t len)
{
    METRIC_ADD(frames_encoded, 1);
    return ws_msg_new(opcode, data, len);
}

/* Sends the message at idx to the handle's connection; pushes true, or
 * false if the connection is closed. */
static int send_message(lua_State *L, conn_box *b, int idx)
{
    size_t len;
    int opcode;
    const char *data = lua_check_frame(L, idx, &len, &opcode);
    lp_conn *c = b->c && !b->c->gone ? b->c : NULL;
    if (!c) {
        lua_pushboolean(L, 0);
        return 1;
    }
    chunk *msg = frame_of(opcode, data, len);
    room_output_send(c->room, c, msg);
    chunk_unref(msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.send(handle, message) -> true, or false if the connection is closed */
static int l_send(lua_State *L)
{
    return send_message(L, luaL_checkudata(L, 1, CONN_MT), 2);
}

/* conn:send(message): core.adopt puts one in each connection object, bound
 * to its handle (upvalue 1) and to the object (upvalue 2), so a send goes
 * from the party's code straight to C: no Lua method in between looking up
 * core.send and self._h (a measurable part of an echoed message). */
static int l_conn_send(lua_State *L)
{
    if (lua_rawequal(L, 1, lua_upvalueindex(2)))
        return send_message(L, lua_touserdata(L, lua_upvalueindex(1)), 2);
    /* called as conn.send(other, message) */
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_h");
    lua_replace(L, 1); /* so a bad handle is reported as argument 1 */
    return send_message(L, luaL_checkudata(L, 1, CONN_MT), 2);
}

/* core.adopt(handle, conn): conn is what message and close events pass;
 * it gets its send function. */
static int l_adopt(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!b->c || !b->c->joined) return 0;
    lua_settop(L, 2);
    lua_pushliteral(L, "send");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, l_conn_send, 2);
    lua_rawset(L, 2);
    luaL_unref(L, LUA_REGISTRYINDEX, b->c->obj_ref);
    b->c->obj_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

const char *lua_check_close(lua_State *L, int idx, int *code, size_t *len)
{
    *code = (int)luaL_optinteger(L, idx, 1000);
    const char *reason = luaL_optlstring(L, idx + 1, "", len);
    /* the codes RFC 6455 lets an endpoint send: 1003 (data it cannot take)
     * and 1007 (malformed data) let a party refuse a bad message */
    bool ok = (*code >= 1000 && *code <= 1003) || (*code >= 1007 && *code <= 1014) || (*code >= 3000 && *code <= 4999);
    luaL_argcheck(L, ok, idx, "close code must be 1000-1003, 1007-1014 or 3000-4999");
    luaL_argcheck(L, *len <= 123, idx + 1, "close reason is longer than 123 bytes");
    lua_check_utf8_reason(L, reason, *len);
    return reason;
}

/* core.close(handle [, code [, reason]]) */
static int l_close(lua_State *L)
{
    lp_conn *c = check_conn(L, 1);
    int code;
    size_t len;
    const char *reason = lua_check_close(L, 2, &code, &len);
    if (c) room_output_close(c->room, c, code, reason, len);
    return 0;
}

static bool excluded(lua_State *L, int without, const char *id)
{
    if (without == 0) return false;
    size_t n = lua_objlen(L, without);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, without, (int)i);
        const char *s = lua_tostring(L, -1);
        bool hit = s && strcmp(s, id) == 0;
        lua_pop(L, 1);
        if (hit) return true;
    }
    return false;
}

/* core.broadcast(message [, without_ids]): the frame is encoded once and
 * the same chunk is queued on every connection. */
static int l_broadcast(lua_State *L)
{
    room *r = room_from_state(L);
    size_t len;
    int opcode;
    const char *data = lua_check_frame(L, 1, &len, &opcode);
    int without = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        without = 2;
    }
    if (!r->conns) return 0; /* no one to send to: nothing to encode */
    chunk *msg = frame_of(opcode, data, len);
    for (lp_conn *c = r->conns; c; c = c->next)
        if (!c->gone && !excluded(L, without, c->id)) room_output_send(r, c, msg);
    chunk_unref(msg);
    return 0;
}

void lua_conn_register(lua_State *L)
{
    luaL_newmetatable(L, CONN_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "connection handle");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"adopt", l_adopt}, {"send", l_send}, {"close", l_close}, {"broadcast", l_broadcast}, {NULL, NULL}};
    luaL_register(L, NULL, fns);
}
