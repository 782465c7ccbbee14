/* lua_pipe.c - room.context.parties.<name>:get(id):socket(): a "pipe"
 * connection from one room to another, in-process (no network hop, no
 * HTTP bytes). The target room sees an ordinary connection (onConnect,
 * onMessage, onClose); the caller sees a socket (lua_socket.c) whose
 * messages arrive through its queue, receive() or onmessage. Values cross
 * only as bytes, so the two rooms never share a Lua heap. */
#include "lua_pipe.h"
#include "lua_party.h"
#include "lua_request.h"
#include "lua_socket.h"
#include "lua_wsclient.h"
#include "calls.h"
#include "room.h"
#include "worker.h"
#include "ws.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The caller's side (near) and the target room's side (far) may live on
 * two workers. Every crossing goes through hop(), which calls at once when
 * both are on one worker and posts a job otherwise; messages are copied
 * when they cross (chunk refcounts are not atomic). The pipe is freed when
 * both sides and every hop in flight have let go. */

typedef struct pipe_conn {
    lp_conn conn;          /* the connection as the target room sees it (far) */
    endpoint ep;           /* the socket as the caller sees it (near) */
    worker *near, *far;
    atomic_int refs;       /* near side + far side + hops in flight */
    bool far_closed;       /* far only: the target room was told it closed */
    http_request *upgrade; /* until the target room has it */
} pipe_conn;

typedef void (*pipe_step)(pipe_conn *p, chunk *msg, int code);

typedef struct hop_job {
    pipe_conn *p;
    pipe_step fn;
    chunk *msg;
    int code;
} hop_job;

static pipe_conn *pipe_of_ep(endpoint *e) { return (pipe_conn *)((char *)e - offsetof(pipe_conn, ep)); }

static void pipe_unref(pipe_conn *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1) return;
    http_request_free(p->upgrade);
    free(p->ep.close_reason);
    conn_cleanup(&p->conn);
    free(p);
}

static void hop_run(worker *w, void *arg)
{
    hop_job *h = arg;
    (void)w;
    h->fn(h->p, h->msg, h->code);
    if (h->msg) chunk_unref(h->msg);
    pipe_unref(h->p);
    free(h);
}

/* Runs fn on `to`'s side of the pipe (see the comment above pipe_conn). */
static void hop(pipe_conn *p, worker *to, pipe_step fn, chunk *msg, int code)
{
    if (p->near == p->far) {
        fn(p, msg, code);
        return;
    }
    atomic_fetch_add(&p->refs, 1);
    hop_job *h = xmalloc(sizeof *h);
    *h = (hop_job){p, fn, msg ? ws_msg_new(msg->opcode, chunk_payload(msg), chunk_payload_len(msg)) : NULL, code};
    worker_post(to, hop_run, h);
}

/* near side */
static void near_deliver(pipe_conn *p, chunk *msg, int code) { endpoint_deliver(&p->ep, msg); }
static void near_closed(pipe_conn *p, chunk *why, int code)
{
    char *reason = why ? strndup((const char *)chunk_payload(why), chunk_payload_len(why)) : NULL;
    endpoint_closed(&p->ep, code, reason);
    free(reason);
}

/* far side */
static void far_message(pipe_conn *p, chunk *msg, int code) { room_message(&p->conn, msg); }
static void far_disconnect(pipe_conn *p, chunk *msg, int code)
{
    if (p->far_closed) return;
    p->far_closed = true;
    room_disconnect(&p->conn, code, NULL);
}
static void far_release(pipe_conn *p, chunk *msg, int code) { conn_unref(&p->conn); }

/* The target room sent on its connection: to the caller. */
static void pipe_send(lp_conn *c, chunk *msg)
{
    pipe_conn *p = (pipe_conn *)c;
    hop(p, p->near, near_deliver, msg, 0);
}

/* The target room closed its connection. */
static void pipe_close(lp_conn *c, int code, const char *reason, size_t len)
{
    pipe_conn *p = (pipe_conn *)c;
    if (p->far_closed) return;
    p->far_closed = true;
    hop(p, p->near, near_closed, NULL, code);
    room_disconnect(c, code, NULL);
}

static void pipe_destroy(lp_conn *c) { pipe_unref((pipe_conn *)c); }

static const conn_ops pipe_conn_ops = {pipe_send, pipe_close, pipe_destroy};

/* The caller sent: an onMessage in the target room. */
static void ep_send(endpoint *e, chunk *msg)
{
    pipe_conn *p = pipe_of_ep(e);
    hop(p, p->far, far_message, msg, 0);
}

/* The caller closed: onClose in the target room. */
static void ep_close(endpoint *e, int code, const char *reason, size_t len)
{
    pipe_conn *p = pipe_of_ep(e);
    hop(p, p->far, far_disconnect, NULL, code);
}

static void ep_release(endpoint *e)
{
    pipe_conn *p = pipe_of_ep(e);
    endpoint_cleanup(e);
    hop(p, p->far, far_release, NULL, 0);
    pipe_unref(p);
}

static const endpoint_ops pipe_ep_ops = {ep_send, ep_close, ep_release};

/* On the target's worker: join the target room, or tell the caller why not. */
static void pipe_join(room *dest, void *arg, const char *err)
{
    pipe_conn *p = arg;
    if (dest) {
        http_request *req = p->upgrade;
        p->upgrade = NULL;
        room_connect(dest, &p->conn, req);
    } else {
        p->far_closed = true; /* the registry logged why */
        chunk *why = ws_msg_new(WS_TEXT, "room failed to start", 20);
        hop(p, p->near, near_closed, why, 1011);
        chunk_unref(why);
    }
    pipe_unref(p); /* the reference of the join in flight */
}

/* core.socket_open(party, id, path, listener) -> handle */
static int l_socket_open(lua_State *L)
{
    room *r = room_from_state(L);
    const party *p = lua_check_party(L, 1);
    const char *id = lua_check_room_id(L, 2);
    const char *path = luaL_optstring(L, 3, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 3, "path must start with '/' or '?'");
    luaL_checktype(L, 4, LUA_TTABLE);

    const room_calls *calls = r->owner->calls;
    worker *far = calls->owner(r->owner, p, id);
    if (far == r->owner) { /* here a room that cannot start is an error now */
        char *err = NULL;
        if (!calls->resolve(far, p, id, &err)) {
            lua_pushfstring(L, "socket to %s/%s failed: %s", p->name, id, err);
            free(err);
            return lua_error(L);
        }
    }
    char *target = lua_party_target(p, id, path);
    http_request *req = http_request_new("GET", target);
    free(target);
    http_request_set_host(req, r->owner->authority, strlen(r->owner->authority));
    char *uri = http_request_url(req);
    char conn_id[37];
    uuid_v4(conn_id);
    pipe_conn *pc = xcalloc(1, sizeof *pc);
    conn_init(&pc->conn, &pipe_conn_ops, conn_id, uri); /* its reference belongs to the Lua handle */
    free(uri);
    pc->near = r->owner;
    pc->far = far;
    atomic_init(&pc->refs, 3); /* near, far, and the join below */
    pc->upgrade = req;
    endpoint_open(L, &pc->ep, &pipe_ep_ops, 4);
    calls->visit(r->owner, p, id, pipe_join, pc);
    return 1;
}

/* ---- cluster mode: the room may be another node's ---- */

/* Where a socket's room lives, asked before the socket opens. */
typedef struct where_call {
    completion done;
    room *caller;
    struct task *task;     /* set once the caller suspended */
    bool answered, abandoned;
    char *node, *addr, *err;
    http_headers hop;
} where_call;

static where_call *where_of(completion *c) { return (where_call *)((char *)c - offsetof(where_call, done)); }

static void where_free(where_call *wc)
{
    room_unref(wc->caller);
    free(wc->node);
    free(wc->addr);
    free(wc->err);
    http_headers_free(&wc->hop);
    free(wc);
}

/* true (here) | node, addr, headers for the hop | nil, error */
static int where_results(lua_State *L, where_call *wc)
{
    if (wc->err) {
        lua_pushnil(L);
        lua_pushstring(L, wc->err);
        return 2;
    }
    if (!wc->node) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushstring(L, wc->node);
    lua_pushstring(L, wc->addr);
    lua_push_headers(L, &wc->hop);
    return 3;
}

static int where_push(completion *c, lua_State *co) { return where_results(co, where_of(c)); }
static void where_destroy(completion *c) { where_free(where_of(c)); }

static void where_answer(void *arg, const char *node, const char *addr, const http_headers *hop, const char *err)
{
    where_call *wc = arg;
    wc->answered = true;
    if (node) {
        wc->node = xstrdup(node);
        wc->addr = xstrdup(addr);
        http_headers_add_all(&wc->hop, hop);
    }
    if (err) wc->err = xstrdup(err);
    if (wc->abandoned) where_free(wc);
    else if (wc->task) room_resume(wc->caller, wc->task, &wc->done);
}

/* core.socket_where(party, id): see where_results. On one node (or when
 * the answer is known) it answers at once; else the caller suspends. */
static int l_socket_where(lua_State *L)
{
    room *r = room_from_state(L);
    const party *p = lua_check_party(L, 1);
    const char *id = lua_check_room_id(L, 2);
    where_call *wc = xcalloc(1, sizeof *wc);
    wc->done.push = where_push;
    wc->done.destroy = where_destroy;
    wc->caller = r;
    r->refs++;
    r->owner->calls->place(r->owner, p, id, where_answer, wc);
    if (wc->answered) {
        int n = where_results(L, wc);
        where_free(wc);
        return n;
    }
    struct task *t = room_current_task(r);
    if (!t || room_task_thread(t) != L || r->in_transaction) {
        wc->abandoned = true; /* the answer frees it */
        return luaL_error(L, "socket(): the room may live on another node, so it must be asked from a party "
                             "callback (not at load time, not inside storage:transaction())");
    }
    wc->task = t;
    room_task_suspend(t);
    return lua_yield(L, 0);
}

/* core.socket_remote(node, addr, party, id, path, headers, listener) ->
 * handle: a socket to a room of another node, a WebSocket to its internal
 * listener (the room sees an ordinary connection, as for a client's). */
static int l_socket_remote(lua_State *L)
{
    room *r = room_from_state(L);
    const char *node = luaL_checkstring(L, 1);
    const char *addr = luaL_checkstring(L, 2);
    const party *p = lua_check_party(L, 3);
    const char *id = lua_check_room_id(L, 4);
    const char *path = luaL_optstring(L, 5, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 5, "path must start with '/' or '?'");
    luaL_checktype(L, 7, LUA_TTABLE);
    url u = {0};
    luaL_argcheck(L, host_port_split(addr, u.host, sizeof u.host, &u.port), 2, "not a host:port");
    u.ws = true;
    http_headers h = {0};
    lua_check_headers(L, 6, &h);
    u.target = lua_party_target(p, id, path);
    lua_ws_open(L, r, &u, &h, 7, node);
    http_headers_free(&h);
    return 1;
}

const luaL_Reg lua_pipe_functions[] = {
    {"socket_open", l_socket_open}, {"socket_where", l_socket_where}, {"socket_remote", l_socket_remote}, {NULL, NULL}};
