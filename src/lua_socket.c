/* lua_socket.c - the caller's side of sockets (see lua_socket.h).
 *
 * A message for a callback blocked in receive() resumes it directly; any
 * other message becomes an event of the room (runtime.socket_message: the
 * onmessage handler, or the socket's queue for a later receive()). */
#include "lua_socket.h"
#include "lua_binary.h"
#include "lua_conn.h"
#include "clock.h"
#include "room.h"
#include "util.h"
#include "worker.h"
#include "ws.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define SOCKET_MT "luaparty.socket"


typedef struct socket_box {
    endpoint *e;
} socket_box;

typedef struct delivery {
    completion done;
    chunk *msg;            /* NULL: no message, see why */
    const char *why;       /* "closed" or "timeout" */
    char *reason;          /* for "closed": what happened, if known */
    int code;              /* for "closed": the close code */
} delivery;

/* nil, "closed", reason, code: what receive() returns once closed */
static int push_closed(lua_State *co, const char *reason, int code)
{
    lua_pushnil(co);
    lua_pushliteral(co, "closed");
    if (reason) lua_pushstring(co, reason);
    else lua_pushnil(co);
    lua_pushinteger(co, code);
    return 4;
}

static int delivery_push(completion *c, lua_State *co)
{
    delivery *d = (delivery *)c;
    if (d->msg) {
        lua_push_message(co, d->msg);
        return 1;
    }
    if (strcmp(d->why, "closed") == 0) return push_closed(co, d->reason, d->code);
    lua_pushnil(co);
    lua_pushstring(co, d->why);
    return 2;
}

static void delivery_destroy(completion *c)
{
    delivery *d = (delivery *)c;
    chunk_unref(d->msg);
    free(d->reason);
    free(d);
}

static void wake_waiter(endpoint *e, chunk *msg, const char *why, const char *reason, int code)
{
    if (e->timer) clock_timer_stop(e->timer);
    delivery *d = xcalloc(1, sizeof *d);
    d->done.push = delivery_push;
    d->done.destroy = delivery_destroy;
    d->msg = msg ? chunk_ref(msg) : NULL;
    d->why = why;
    d->reason = reason ? xstrdup(reason) : NULL;
    d->code = code;
    struct task *t = e->waiter;
    e->waiter = NULL;
    room_resume(e->caller, t, &d->done);
}

void endpoint_deliver(endpoint *e, chunk *msg)
{
    if (e->closed || !e->caller) return;
    if (e->waiter) wake_waiter(e, msg, NULL, NULL, 0);
    else room_call(e->caller, e->listener_ref, "socket_message", msg, 0);
}

void endpoint_closed(endpoint *e, int code, const char *reason)
{
    if (e->closed) return;
    e->closed = true;
    e->close_code = code;
    e->close_reason = reason ? xstrdup(reason) : NULL;
    if (!e->caller) return;
    if (e->waiter) wake_waiter(e, NULL, "closed", reason, code);
    chunk *why = reason ? ws_msg_new(WS_TEXT, reason, strlen(reason)) : NULL;
    room_call(e->caller, e->listener_ref, "socket_close", why, code);
    chunk_unref(why);
}

static void free_handle(uv_handle_t *h) { free(h); }

void endpoint_cleanup(endpoint *e)
{
    free(e->close_reason);
    e->close_reason = NULL;
    if (e->timer) {
        clock_timer_stop(e->timer); /* uv_close stops a libuv timer, not a virtual one */
        uv_close((uv_handle_t *)e->timer, free_handle);
    }
    e->timer = NULL;
}

void endpoint_open(lua_State *L, endpoint *e, const endpoint_ops *ops, int listener_idx)
{
    room *r = room_from_state(L);
    if (listener_idx < 0) listener_idx = lua_gettop(L) + listener_idx + 1;
    socket_box *b = lua_newuserdata(L, sizeof *b);
    b->e = e;
    luaL_getmetatable(L, SOCKET_MT);
    lua_setmetatable(L, -2);
    e->ops = ops;
    e->caller = r;
    e->waiter = NULL;
    e->timer = NULL;
    e->closed = false;
    e->close_code = 0;
    e->close_reason = NULL;
    lua_pushvalue(L, listener_idx);
    e->listener_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    r->pins++; /* an open socket keeps the caller loaded */
}

static endpoint *check_socket(lua_State *L, int idx)
{
    socket_box *b = luaL_checkudata(L, idx, SOCKET_MT);
    return b->e;
}

static int socket_gc(lua_State *L)
{
    socket_box *b = luaL_checkudata(L, 1, SOCKET_MT);
    endpoint *e = b->e;
    b->e = NULL;
    if (e) {
        e->caller = NULL;
        e->waiter = NULL;
        e->ops->release(e);
    }
    return 0;
}

/* core.socket_send(handle, message) -> true, or false if closed */
static int l_socket_send(lua_State *L)
{
    endpoint *e = check_socket(L, 1);
    size_t len;
    int opcode;
    const char *data = lua_check_frame(L, 2, &len, &opcode);
    if (!e || e->closed) {
        lua_pushboolean(L, 0);
        return 1;
    }
    chunk *msg = ws_msg_new(opcode, data, len);
    e->ops->send(e, msg);
    chunk_unref(msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.socket_close(handle [, code [, reason]]) */
static int l_socket_close(lua_State *L)
{
    endpoint *e = check_socket(L, 1);
    int code;
    size_t len;
    const char *reason = lua_check_close(L, 2, &code, &len);
    if (!e || e->closed) return 0;
    e->closed = true;
    e->close_code = code;
    if (e->waiter) wake_waiter(e, NULL, "closed", NULL, code);
    e->ops->close(e, code, reason, len);
    return 0;
}

static void on_receive_timeout(uv_timer_t *t)
{
    endpoint *e = t->data;
    if (e->waiter && e->caller) wake_waiter(e, NULL, "timeout", NULL, 0);
}

/* core.socket_wait(handle [, timeout_ms]) -> message, or nil, "closed" /
 * "timeout". Suspends the calling callback. */
static int l_socket_wait(lua_State *L)
{
    room *r = room_from_state(L);
    endpoint *e = check_socket(L, 1);
    lua_Number timeout = luaL_optnumber(L, 2, -1);
    if (!e || e->closed) return push_closed(L, e ? e->close_reason : NULL, e ? e->close_code : 1006);
    if (e->waiter) return luaL_error(L, "another callback is already waiting in receive() on this socket");
    struct task *t = room_current_task(r);
    if (!t || room_task_thread(t) != L)
        return luaL_error(L, "receive must be called from a party callback (not inside a coroutine the script "
                             "created itself)");
    if (r->in_transaction) return luaL_error(L, "receive cannot be called inside storage:transaction()");
    e->waiter = t;
    if (timeout >= 0) {
        if (!e->timer) {
            e->timer = xmalloc(sizeof *e->timer);
            uv_timer_init(r->owner->loop, e->timer);
            e->timer->data = e;
        }
        clock_timer_start(e->timer, on_receive_timeout, (uint64_t)timeout, 0);
    }
    room_task_suspend(t);
    return lua_yield(L, 0);
}

/* core.socket_handoff(handle, message) -> true if a receive() was waiting
 * and now gets the message. A message reaches Lua as a queued event; a
 * receive() that started after it was queued (the queue looked empty then)
 * is waiting in C, and must get it rather than time out. */
static int l_socket_handoff(lua_State *L)
{
    endpoint *e = check_socket(L, 1);
    size_t len;
    int opcode;
    const char *data = lua_check_message(L, 2, &len, &opcode);
    if (!e || !e->waiter || !e->caller) {
        lua_pushboolean(L, 0);
        return 1;
    }
    chunk *msg = ws_msg_new(opcode, data, len);
    wake_waiter(e, msg, NULL, NULL, 0);
    chunk_unref(msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.socket_release(handle): the socket is closed; let its object go. */
static int l_socket_release(lua_State *L)
{
    endpoint *e = check_socket(L, 1);
    if (e && e->listener_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, e->listener_ref);
        e->listener_ref = LUA_NOREF;
        room_from_state(L)->pins--;
    }
    return 0;
}

void lua_socket_register(lua_State *L)
{
    luaL_newmetatable(L, SOCKET_MT);
    lua_pushcfunction(L, socket_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"socket_send", l_socket_send},
                                   {"socket_close", l_socket_close},
                                   {"socket_wait", l_socket_wait},
                                   {"socket_release", l_socket_release},
                                   {"socket_handoff", l_socket_handoff},
                                   {NULL, NULL}};
    luaL_register(L, NULL, fns);
}
