/* lua_party.c - room.context.parties.<name>:get(id):fetch() and :socket().
 *
 * Both are in-process: no network hop, no HTTP bytes. fetch queues an
 * onRequest event in the target room and suspends the calling coroutine;
 * the target's response (released by its output gate) resumes it. socket
 * joins a "pipe" connection to the target room: the target sees an ordinary
 * connection (onConnect, onMessage, onClose); the caller sees a socket
 * object whose messages arrive through its queue, receive() or onmessage.
 * Values cross only as bytes, so the two rooms never share a Lua heap. */
#include "lua_bind.h"
#include "log.h"
#include "registry.h"
#include "room.h"
#include "worker.h"
#include "ws.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct task;
lua_State *room_task_thread(struct task *t);

/* The suspended task of the caller, or a Lua error if C cannot resume it. */
static struct task *suspendable_task(lua_State *L, room *r, const char *what)
{
    struct task *t = room_current_task(r);
    if (!t || room_task_thread(t) != L)
        luaL_error(L, "%s must be called from a party callback (not at load time, and not inside a "
                      "coroutine the script created itself)", what);
    if (r->in_transaction) luaL_error(L, "%s cannot be called inside storage:transaction()", what);
    return t;
}

static const party *check_party(lua_State *L, int idx)
{
    room *r = room_from_state(L);
    size_t len;
    const char *name = luaL_checklstring(L, idx, &len);
    const party *p = config_party(r->owner->cfg, name, len);
    if (!p) luaL_error(L, "unknown party '%s'", name);
    return p;
}

static const char *check_room_id(lua_State *L, int idx)
{
    size_t len;
    const char *id = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, len > 0 && len <= 256 && strlen(id) == len, idx, "room id must be 1-256 bytes, no NUL");
    return id;
}

static char *target_of(const party *p, const char *id, const char *path)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "/parties/%s/%s%s", p->name, id, path);
    return buf_steal(&b);
}

/* ---- fetch ---- */

typedef struct fetch_call {
    exchange ex;
    completion done;
    room *caller;
    struct task *task;
    http_response *res;
} fetch_call;

static void fetch_respond(exchange *ex, http_response *res)
{
    fetch_call *fc = (fetch_call *)ex;
    fc->res = res;
    room_resume(fc->caller, fc->task, &fc->done);
}

static int fetch_push(completion *c, lua_State *co)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    lua_pushinteger(co, fc->res->status);
    lua_push_headers(co, &fc->res->headers);
    lua_pushlstring(co, fc->res->body.data ? fc->res->body.data : "", fc->res->body.len);
    return 3;
}

static void fetch_destroy(completion *c)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    http_response_free(fc->res);
    room_unref(fc->caller);
    free(fc);
}

/* core.fetch(party, id, method, path, headers, body) -> status, headers, body
 * or nil, error. Suspends the calling coroutine until the answer. */
static int l_fetch(lua_State *L)
{
    room *r = room_from_state(L);
    struct task *t = suspendable_task(L, r, "fetch");
    const party *p = check_party(L, 1);
    const char *id = check_room_id(L, 2);
    const char *method = luaL_optstring(L, 3, "GET");
    const char *path = luaL_optstring(L, 4, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 4, "path must start with '/' or '?'");
    size_t blen = 0;
    const char *body = NULL;
    if (!lua_isnoneornil(L, 6)) {
        int opcode;
        body = lua_check_message(L, 6, &blen, &opcode);
    }
    for (const char *m = method; *m; m++)
        luaL_argcheck(L, isupper((unsigned char)*m) || *m == '-', 3, "method must be an uppercase token");

    http_headers headers = {0};
    lua_check_headers(L, 5, &headers);
    char *target = target_of(p, id, path);
    http_request *req = http_request_new(method, target);
    free(target);
    req->headers = headers;
    req->host = xstrdup(r->owner->authority);
    if (body) buf_append(&req->body, body, blen);

    char *err = NULL;
    room *dest = registry_resolve(r->owner, p, id, &err);
    if (!dest) {
        http_request_free(req);
        lua_pushnil(L);
        lua_pushfstring(L, "fetch to %s/%s failed: %s", p->name, id, err);
        free(err);
        return 2;
    }
    fetch_call *fc = xcalloc(1, sizeof *fc);
    fc->ex.respond = fetch_respond;
    fc->done.push = fetch_push;
    fc->done.destroy = fetch_destroy;
    fc->caller = r;
    r->refs++;
    fc->task = t;
    room_request(dest, req, &fc->ex);
    room_task_suspend(t);
    return lua_yield(L, 0);
}

/* ---- socket ---- */

#define SOCKET_MT "luaparty.socket"

typedef struct pipe_conn {
    lp_conn conn;          /* the connection as the target room sees it */
    room *caller;          /* the room that opened it; NULL once it let go */
    int listener_ref;      /* caller registry ref of the Lua socket object */
    struct task *waiter;   /* a caller task blocked in receive() */
    uv_timer_t *timer;     /* receive(timeout); freed by its close callback */
    bool closed;
} pipe_conn;

typedef struct socket_box {
    pipe_conn *p;
} socket_box;

typedef struct pipe_delivery {
    completion done;
    chunk *msg;            /* NULL: no message, see why */
    const char *why;       /* "closed" or "timeout" */
} pipe_delivery;

static int delivery_push(completion *c, lua_State *co)
{
    pipe_delivery *d = (pipe_delivery *)c;
    if (d->msg) {
        lua_push_message(co, d->msg);
        return 1;
    }
    lua_pushnil(co);
    lua_pushstring(co, d->why);
    return 2;
}

static void delivery_destroy(completion *c)
{
    pipe_delivery *d = (pipe_delivery *)c;
    chunk_unref(d->msg);
    free(d);
}

static void wake_waiter(pipe_conn *p, chunk *msg, const char *why)
{
    if (p->timer) uv_timer_stop(p->timer);
    pipe_delivery *d = xcalloc(1, sizeof *d);
    d->done.push = delivery_push;
    d->done.destroy = delivery_destroy;
    d->msg = msg ? chunk_ref(msg) : NULL;
    d->why = why;
    struct task *t = p->waiter;
    p->waiter = NULL;
    room_resume(p->caller, t, &d->done);
}

/* The target room sent on this connection: deliver to the caller. */
static void pipe_send(lp_conn *c, chunk *msg)
{
    pipe_conn *p = (pipe_conn *)c;
    if (p->closed || !p->caller) return;
    if (p->waiter) wake_waiter(p, msg, NULL);
    else room_call(p->caller, p->listener_ref, "socket_message", msg, 0);
}

static void pipe_close(lp_conn *c, int code, const char *reason, size_t len)
{
    pipe_conn *p = (pipe_conn *)c;
    if (p->closed) return;
    p->closed = true;
    if (p->caller) {
        if (p->waiter) wake_waiter(p, NULL, "closed");
        room_call(p->caller, p->listener_ref, "socket_close", NULL, code);
    }
    room_disconnect(c, code, NULL);
}

static void free_handle(uv_handle_t *h) { free(h); }

static void pipe_destroy(lp_conn *c)
{
    pipe_conn *p = (pipe_conn *)c;
    if (p->timer) uv_close((uv_handle_t *)p->timer, free_handle);
    conn_cleanup(c);
    free(c);
}

static void on_receive_timeout(uv_timer_t *t)
{
    pipe_conn *p = t->data;
    if (p->waiter && p->caller) wake_waiter(p, NULL, "timeout");
}

static const conn_ops pipe_ops = {pipe_send, pipe_close, pipe_destroy};

static pipe_conn *check_socket(lua_State *L, int idx)
{
    socket_box *b = luaL_checkudata(L, idx, SOCKET_MT);
    return b->p;
}

static int socket_gc(lua_State *L)
{
    socket_box *b = luaL_checkudata(L, 1, SOCKET_MT);
    if (b->p) {
        b->p->caller = NULL;
        b->p->waiter = NULL;
        conn_unref(&b->p->conn);
        b->p = NULL;
    }
    return 0;
}

/* core.socket_open(party, id, path, listener) -> handle */
static int l_socket_open(lua_State *L)
{
    room *r = room_from_state(L);
    const party *p = check_party(L, 1);
    const char *id = check_room_id(L, 2);
    const char *path = luaL_optstring(L, 3, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 3, "path must start with '/' or '?'");
    luaL_checktype(L, 4, LUA_TTABLE);

    char *err = NULL;
    room *dest = registry_resolve(r->owner, p, id, &err);
    if (!dest) {
        lua_pushfstring(L, "socket to %s/%s failed: %s", p->name, id, err);
        free(err);
        return lua_error(L);
    }
    socket_box *b = lua_newuserdata(L, sizeof *b);
    b->p = NULL;
    luaL_getmetatable(L, SOCKET_MT);
    lua_setmetatable(L, -2);

    char *target = target_of(p, id, path);
    http_request *req = http_request_new("GET", target);
    req->host = xstrdup(r->owner->authority);
    char *uri = http_request_url(req);
    char conn_id[37];
    uuid_v4(conn_id);
    pipe_conn *pc = xmalloc(sizeof *pc);
    conn_init(&pc->conn, &pipe_ops, conn_id, uri);
    free(uri);
    free(target);
    pc->caller = r;
    pc->waiter = NULL;
    pc->timer = NULL;
    pc->closed = false;
    r->pins++; /* an open socket keeps the caller loaded */
    lua_pushvalue(L, 4);
    pc->listener_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    b->p = pc; /* the handle owns the initial reference */
    room_connect(dest, &pc->conn, req);
    return 1;
}

static int l_socket_send(lua_State *L)
{
    pipe_conn *p = check_socket(L, 1);
    size_t len;
    int opcode;
    const char *data = lua_check_message(L, 2, &len, &opcode);
    if (!p || p->closed) {
        lua_pushboolean(L, 0);
        return 1;
    }
    chunk *msg = ws_msg_new(opcode, data, len);
    room_message(&p->conn, msg);
    chunk_unref(msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_socket_close(lua_State *L)
{
    pipe_conn *p = check_socket(L, 1);
    int code = (int)luaL_optinteger(L, 2, 1000);
    if (!p || p->closed) return 0;
    p->closed = true;
    if (p->waiter) wake_waiter(p, NULL, "closed");
    room_disconnect(&p->conn, code, NULL);
    return 0;
}

/* core.socket_wait(handle [, timeout_ms]) -> message, or nil, "closed" /
 * "timeout". Suspends. */
static int l_socket_wait(lua_State *L)
{
    room *r = room_from_state(L);
    pipe_conn *p = check_socket(L, 1);
    lua_Number timeout = luaL_optnumber(L, 2, -1);
    if (!p || p->closed) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    if (p->waiter) return luaL_error(L, "another callback is already waiting in receive() on this socket");
    struct task *t = suspendable_task(L, r, "receive");
    p->waiter = t;
    if (timeout >= 0) {
        if (!p->timer) {
            p->timer = xmalloc(sizeof *p->timer);
            uv_timer_init(r->owner->loop, p->timer);
            p->timer->data = p;
        }
        uv_timer_start(p->timer, on_receive_timeout, (uint64_t)timeout, 0);
    }
    room_task_suspend(t);
    return lua_yield(L, 0);
}

/* core.socket_release(handle): the socket is closed; let its object go. */
static int l_socket_release(lua_State *L)
{
    pipe_conn *p = check_socket(L, 1);
    if (p && p->listener_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, p->listener_ref);
        p->listener_ref = LUA_NOREF;
        room_from_state(L)->pins--;
    }
    return 0;
}

void lua_party_register(lua_State *L)
{
    luaL_newmetatable(L, SOCKET_MT);
    lua_pushcfunction(L, socket_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"fetch", l_fetch},
                                   {"socket_open", l_socket_open},
                                   {"socket_send", l_socket_send},
                                   {"socket_close", l_socket_close},
                                   {"socket_wait", l_socket_wait},
                                   {"socket_release", l_socket_release},
                                   {NULL, NULL}};
    luaL_register(L, NULL, fns);
}
