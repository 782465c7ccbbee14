/* lua_conn.c - connections as party code sees them: the connection object
 * (id, uri, send, close, setState, state) and room:broadcast.
 *
 * The object is a table made here when the connection joins: {_h = handle,
 * id =, uri =, send =} with the Connection metatable (its other methods).
 * The handle is a small userdata pointing at the C connection. The
 * connection points back at it, and whichever dies first clears the other's
 * pointer, so a party that keeps a connection object after it closed gets a
 * harmless no-op instead of a dangling pointer. The connection keeps the
 * object (obj_ref) while it is joined: messages and the close come with the
 * object itself. */
#include "lua_conn.h"
#include "lua_binary.h"
#include "metrics.h"
#include "room.h"
#include "util.h"
#include "ws.h"

#include <string.h>

#define CONN_MT "luaparty.conn"
#define CONNECTION_MT "luaparty.connection"


static int box_gc(lua_State *L)
{
    conn_box *b = luaL_checkudata(L, 1, CONN_MT);
    if (b->c) b->c->box = NULL;
    b->c = NULL;
    return 0;
}

static void conn_metatable(lua_State *L)
{
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "connection handle");
    lua_setfield(L, -2, "__metatable");
}

static int l_conn_send(lua_State *L);
static void connection_metatable(lua_State *L);

void lua_conn_join(lua_State *L, room *r, lp_conn *c)
{
    lua_createtable(L, 0, 4);
    int obj = lua_gettop(L);
    conn_box *b = lua_newuserdata(L, sizeof *b);
    b->c = c;
    lua_bind_metatable(L, CONN_MT, conn_metatable);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, obj, "_h");
    /* conn.send: bound to the handle (upvalue 1) and to the object
     * (upvalue 2), in the table itself, so a send goes from the party's
     * code straight to C (a miss that goes on to __index is the
     * interpreter's slow path; a Lua method between would cost a call and
     * two lookups, once per message). */
    lua_pushvalue(L, obj);
    lua_pushcclosure(L, l_conn_send, 2);
    lua_setfield(L, obj, "send");
    lua_pushstring(L, c->id);
    lua_setfield(L, obj, "id");
    lua_pushstring(L, c->uri);
    lua_setfield(L, obj, "uri");
    lua_bind_metatable(L, CONNECTION_MT, connection_metatable);
    lua_setmetatable(L, obj);
    c->box = b;
    lua_pushvalue(L, obj);
    c->obj_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* Newest first, as the room keeps them. */
    c->prev = NULL;
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    c->joined = true;
    conn_ref(c);
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


/* The handle's connection, or NULL if it closed. */
static lp_conn *live_conn(const conn_box *b) { return b->c && !b->c->gone ? b->c : NULL; }

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
    lp_conn *c = live_conn(b);
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

/* conn:send(message): the one in each connection object (lua_conn_join) */
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

/* ---- the Connection metatable: the methods a connection object finds
 * through __index (send is in the object itself), and its tostring ---- */

/* The handle of the connection object at idx (its _h). */
static conn_box *object_box(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "_h");
    conn_box *b = luaL_checkudata(L, -1, CONN_MT);
    lua_pop(L, 1);
    return b;
}

/* conn:send(message) -> true, or false if the connection is closed */
static int m_send(lua_State *L) { return send_message(L, object_box(L, 1), 2); }

/* conn:close([code [, reason]]) */
static int m_close(lua_State *L)
{
    lp_conn *c = live_conn(object_box(L, 1));
    int code;
    size_t len;
    const char *reason = lua_check_close(L, 2, &code, &len);
    if (c) room_output_close(c->room, c, code, reason, len);
    return 0;
}

/* conn:setState(value or function(previous) -> value) -> value */
static int m_set_state(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_isfunction(L, 2)) {
        lua_getfield(L, 1, "state");
        lua_call(L, 1, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "state");
    return 1;
}

/* tostring(conn): "Connection(<id>)" */
static int m_tostring(lua_State *L)
{
    lua_pushliteral(L, "Connection(");
    lua_getfield(L, 1, "id");
    lua_pushliteral(L, ")");
    lua_concat(L, 3);
    return 1;
}

/* The methods are fields of the metatable itself, its own __index (the
 * Lua class idiom: getmetatable(conn).send(conn, msg) works). */
static void connection_metatable(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"send", m_send}, {"close", m_close}, {"setState", m_set_state}, {"__tostring", m_tostring}, {NULL, NULL}};
    luaL_register(L, NULL, methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
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

/* The ids a broadcast skips, read from the Lua array once (not once per
 * receiver: with 1,000 receivers that lookup was a third of a delivery's
 * cost). The strings stay on the Lua stack while the list is used, so the
 * pointers stay valid; ids are compared as C strings, as before. */
#define SKIP_INLINE 8

typedef struct skip_list {
    const char **ids;
    size_t n;
    const char *inline_ids[SKIP_INLINE];
} skip_list;

static void skip_list_read(lua_State *L, int without, skip_list *s)
{
    s->ids = s->inline_ids;
    s->n = 0;
    if (without == 0) return;
    size_t n = lua_objlen(L, without);
    if (n > SKIP_INLINE) /* GC-owned: a Lua error cannot leak it */
        s->ids = lua_newuserdata(L, n * sizeof *s->ids);
    luaL_checkstack(L, (int)(n > 64 ? 64 : n), "too many ids to skip");
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, without, (int)i);
        const char *id = lua_tostring(L, -1); /* numbers as strings, as before */
        if (!id) {
            lua_pop(L, 1);
            continue;
        }
        s->ids[s->n++] = id;
        if (s->n % 64 == 0) luaL_checkstack(L, 64, "too many ids to skip");
    }
}

static bool skipped(const skip_list *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->ids[i][0] == id[0] && strcmp(s->ids[i], id) == 0) return true;
    return false;
}

/* room:broadcast(message [, without_ids]): the frame is encoded once and
 * the same chunk is queued on every connection. The arguments are read
 * where the method call put them (1 is the room), so an error names the
 * argument the party wrote. */
int lua_room_broadcast(lua_State *L)
{
    room *r = room_from_state(L);
    size_t len;
    int opcode;
    const char *data = lua_check_frame(L, 2, &len, &opcode);
    int without = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        without = 3;
    }
    if (!r->conns) return 0; /* no one to send to: nothing to encode */
    skip_list skip;
    skip_list_read(L, without, &skip);
    chunk *msg = frame_of(opcode, data, len);
    for (lp_conn *c = r->conns; c; c = c->next)
        if (!c->gone && !skipped(&skip, c->id)) room_output_send(r, c, msg);
    chunk_unref(msg);
    return 0;
}

