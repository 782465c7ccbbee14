/* lua_party.c - room.context.parties.<name>:get(id):fetch() and :socket().
 *
 * Both are in-process: no network hop, no HTTP bytes. fetch queues an
 * onRequest event in the target room and suspends the calling coroutine;
 * the target's response (released by its output gate) resumes it. socket
 * joins a "pipe" connection to the target room: the target sees an ordinary
 * connection (onConnect, onMessage, onClose); the caller sees a socket
 * (lua_socket.c) whose messages arrive through its queue, receive() or
 * onmessage.
 * Values cross only as bytes, so the two rooms never share a Lua heap. */
#include "lua_bind.h"
#include "lua_socket.h"
#include "log.h"
#include "registry.h"
#include "room.h"
#include "worker.h"
#include "ws.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


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
    char *err;             /* the target room could not start */
} fetch_call;

static void fetch_respond(exchange *ex, http_response *res)
{
    fetch_call *fc = (fetch_call *)ex;
    fc->res = res;
    room_resume(fc->caller, fc->task, &fc->done);
}

static void fetch_fail(exchange *ex, const char *err)
{
    fetch_call *fc = (fetch_call *)ex;
    fc->err = xstrdup(err);
    room_resume(fc->caller, fc->task, &fc->done);
}

static int fetch_push(completion *c, lua_State *co)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    if (fc->err) return lua_push_fetch_result(co, fc->err, 0, NULL, NULL);
    return lua_push_fetch_result(co, NULL, fc->res->status, &fc->res->headers, &fc->res->body);
}

static void fetch_destroy(completion *c)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    http_response_free(fc->res);
    free(fc->err);
    room_unref(fc->caller);
    free(fc);
}

/* core.fetch(party, id, method, path, headers, body) -> status, headers, body
 * or nil, error. Suspends the calling coroutine until the answer, which may
 * come from a room on another worker. */
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

    fetch_call *fc = xcalloc(1, sizeof *fc);
    fc->ex.respond = fetch_respond;
    fc->ex.fail = fetch_fail;
    fc->done.push = fetch_push;
    fc->done.destroy = fetch_destroy;
    fc->caller = r;
    r->refs++;
    fc->task = t;
    room_task_suspend(t);
    registry_request(r->owner, p, id, req, &fc->ex);
    return lua_yield(L, 0);
}

/* ---- socket: a pipe between two rooms ----
 *
 * The caller's side (near) and the target room's side (far) may live on
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

/* Runs fn on `to`'s side of the pipe (see the section comment). */
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
    const party *p = check_party(L, 1);
    const char *id = check_room_id(L, 2);
    const char *path = luaL_optstring(L, 3, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 3, "path must start with '/' or '?'");
    luaL_checktype(L, 4, LUA_TTABLE);

    worker *far = registry_owner(r->owner, p, id);
    if (far == r->owner) { /* here a room that cannot start is an error now */
        char *err = NULL;
        if (!registry_resolve(far, p, id, &err)) {
            lua_pushfstring(L, "socket to %s/%s failed: %s", p->name, id, err);
            free(err);
            return lua_error(L);
        }
    }
    char *target = target_of(p, id, path);
    http_request *req = http_request_new("GET", target);
    free(target);
    req->host = xstrdup(r->owner->authority);
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
    registry_with_room(r->owner, p, id, pipe_join, pc);
    return 1;
}

void lua_party_register(lua_State *L)
{
    static const luaL_Reg fns[] = {{"fetch", l_fetch}, {"socket_open", l_socket_open}, {NULL, NULL}};
    luaL_register(L, NULL, fns);
    lua_socket_register(L);
}
