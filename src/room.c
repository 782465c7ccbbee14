/* room.c - a room's event queue, its coroutines and its output gate.
 *
 * Every event runs the matching function of the Lua runtime
 * (lua/luaparty/runtime.lua) in a fresh coroutine, a "task". A task either
 * finishes, fails (logged with a traceback; the room lives on), or suspends
 * inside a C function that started I/O (room_task_suspend); that I/O later
 * queues an EV_RESUME with a completion that pushes the results.
 *
 * After every step of a task (finish or suspend) the room's buffered storage
 * writes are committed (storage.c); outputs produced while writes were
 * pending are held and released only once the commit succeeded. */
#include "room.h"
#include "alarm.h"
#include "lua_bind.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "sandbox.h"
#include "storage.h"
#include "worker.h"
#include "ws.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

typedef struct task {
    room *r;
    lua_State *co;
    int co_ref;
    event_kind kind;
    const char *callback;   /* for error messages */
    lp_conn *conn;          /* holds a reference; busy while the task lives */
    exchange *ex;           /* REQUEST: where the response goes */
    gatekeeper *gate;       /* HOOK: who waits for the verdict */
    hook_kind hook;         /* HOOK: which one */
    bool suspended;         /* set by room_task_suspend before a yield */
    int64_t lease;          /* ALARM: the alarm time marking this run */
    struct task *prev, *next; /* the room's live tasks */
} task;

enum held_kind { HELD_SEND, HELD_CLOSE, HELD_RESPOND };

struct held {
    held *next;
    enum held_kind kind;
    lp_conn *conn;
    chunk *msg;
    exchange *ex;
    http_response *res;
    int code;
    char *reason;
    size_t reason_len;
};

static void commit(room *r);
static void task_free(task *t, bool keep_co);
static void hook_done(task *t);
static bool runnable(const room *r, const event *ev);

room *room_from_state(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---- events ---- */

static event *event_new(room *r, event_kind kind)
{
    event *ev = pool_get(&r->owner->events, sizeof *ev);
    ev->kind = kind;
    ev->ref = LUA_NOREF;
    return ev;
}

static void event_free(room *r, event *ev)
{
    if (ev->conn) conn_unref(ev->conn);
    chunk_unref(ev->msg);
    http_request_free(ev->req);
    free(ev->error);
    pool_put(&r->owner->events, ev);
}

/* An event that will never run: whoever waits on it gets a 503. */
static void event_abandon(room *r, event *ev)
{
    if (ev->ex) ev->ex->respond(ev->ex, http_response_new(503, "text/plain", "room closed", 11));
    if (ev->gate) ev->gate->decide(ev->gate, http_response_new(503, "text/plain", "room closed", 11), NULL);
    if (ev->done) ev->done->destroy(ev->done);
    event_free(r, ev);
}

static void enqueue(room *r, event *ev)
{
    if (r->state == ROOM_GONE) { /* shutting down: nobody will run it */
        event_abandon(r, ev);
        return;
    }
    if (r->q_tail) r->q_tail->next = ev;
    else r->q_head = ev;
    r->q_tail = ev;
    worker_schedule(r->owner, r);
}

room *room_create(worker *w, const party *p, const char *id, char **err)
{
    room *r = xcalloc(1, sizeof *r);
    r->owner = w;
    r->party = p;
    r->id = xstrdup(id);
    r->mem_limit = w->cfg->room_memory;
    r->rt_ref = r->message_ref = r->request_ref = LUA_NOREF;
    r->refs = 1;
    r->last_active = uv_now(w->loop);
    r->state = ROOM_ACTIVATING;
    if (sandbox_open_room(r, err) != 0) {
        room_unref(r);
        return NULL;
    }
    r->state = ROOM_ACTIVE;
    log_debug("room %s/%s created", p->name, id);
    return r;
}

void room_start(room *r)
{
    r->starting = true; /* nothing but onStart until it finishes */
    enqueue(r, event_new(r, EV_START));
}

static void free_held(held *h)
{
    if (h->conn) conn_unref(h->conn);
    chunk_unref(h->msg);
    http_response_free(h->res);
    free(h->reason);
    free(h);
}

void room_shutdown(room *r)
{
    r->refs++; /* releasing connections below may drop the last other reference */
    r->state = ROOM_GONE;
    while (r->tasks) task_free(r->tasks, false); /* suspended: their I/O will never answer now */
    r->suspended = 0;
    while (r->conns) {
        lp_conn *c = r->conns;
        r->conns = c->next;
        c->prev = c->next = NULL;
        c->joined = false;
        r->nconns--;
        conn_unref(c); /* the join reference: breaks the room <-> connection cycle */
    }
    room_unref(r);
}

void room_unref(room *r)
{
    if (--r->refs > 0) return;
    while (r->q_head) {
        event *ev = r->q_head;
        r->q_head = ev->next;
        event_abandon(r, ev);
    }
    while (r->held_head) {
        held *h = r->held_head;
        r->held_head = h->next;
        if (h->ex) h->ex->respond(h->ex, http_response_new(503, "text/plain", "room closed", 11));
        h->res = NULL;
        free_held(h);
    }
    if (r->L) lua_close(r->L);
    arena_release(&r->heap);
    free(r->id);
    free(r);
}

void room_connect(room *r, lp_conn *c, http_request *upgrade)
{
    c->room = r;
    r->refs++; /* released by conn_cleanup */
    r->attached++;
    event *ev = event_new(r, EV_CONNECT);
    ev->conn = c;
    conn_ref(c);
    ev->req = upgrade;
    enqueue(r, ev);
}

void room_message(lp_conn *c, chunk *msg)
{
    event *ev = event_new(c->room, EV_MESSAGE);
    ev->conn = c;
    conn_ref(c);
    ev->msg = chunk_ref(msg);
    enqueue(c->room, ev);
}

/* When the room can run the message right now (no Lua on the stack,
 * nothing queued before it, nothing holding it back), it runs on the
 * caller's bytes; otherwise they are copied into a chunk and queued.
 * Skipping the copy saves a malloc and a memcpy per message. */
void room_message_bytes(lp_conn *c, int opcode, const void *data, size_t len)
{
    room *r = c->room;
    event *ev = event_new(r, EV_MESSAGE);
    ev->conn = c;
    conn_ref(c);
    if (room_runs_now(r) && !r->q_head && r->state == ROOM_ACTIVE && runnable(r, ev)) {
        ev->bytes = data; /* enqueue runs it at once: worker_schedule calls room_run */
        ev->nbytes = len;
        ev->opcode = opcode;
    } else {
        ev->msg = ws_msg_new(opcode, data, len);
    }
    enqueue(r, ev);
}

void room_disconnect(lp_conn *c, int code, const char *error)
{
    c->gone = true;
    event *ev = event_new(c->room, EV_CLOSE);
    ev->conn = c;
    conn_ref(c);
    ev->code = code;
    ev->error = error ? xstrdup(error) : NULL;
    enqueue(c->room, ev);
}

void room_request(room *r, http_request *req, exchange *ex)
{
    event *ev = event_new(r, EV_REQUEST);
    ev->req = req;
    ev->ex = ex;
    enqueue(r, ev);
}

void room_resume(room *r, task *t, completion *done)
{
    event *ev = event_new(r, EV_RESUME);
    ev->task = t;
    ev->done = done;
    enqueue(r, ev);
}

void room_call(room *r, int ref, const char *hook, chunk *msg, int code)
{
    event *ev = event_new(r, EV_CALL);
    ev->ref = ref;
    ev->error = xstrdup(hook);
    ev->msg = msg ? chunk_ref(msg) : NULL;
    ev->code = code;
    enqueue(r, ev);
}

void room_alarm(room *r, int64_t lease, int retries)
{
    event *ev = event_new(r, EV_ALARM);
    ev->lease = lease;
    ev->code = retries;
    enqueue(r, ev);
}

void room_hook(room *lobby, hook_kind kind, const http_request *req, const char *room_id, gatekeeper *g)
{
    event *ev = event_new(lobby, EV_HOOK);
    ev->req = http_request_clone(req);
    ev->code = (int)kind;
    ev->error = xstrdup(room_id ? room_id : "");
    ev->gate = g;
    enqueue(lobby, ev);
}

void room_reload(room *r, bool code, bool env)
{
    event *ev = event_new(r, EV_RELOAD);
    ev->code = (code ? 1 : 0) | (env ? 2 : 0);
    enqueue(r, ev);
}

bool room_idle(const room *r)
{
    return r->state == ROOM_ACTIVE && r->nconns == 0 && !r->q_head && !r->suspended && !r->running &&
           !r->scheduled && r->refs == 1 && !r->held_head && !r->pins && !r->commit_inflight;
}

/* ---- running events ---- */

static bool runnable(const room *r, const event *ev)
{
    if (ev->kind == EV_RESUME) return true;
    if (r->commit_inflight) return false;                 /* input gate */
    if (r->starting) return ev->kind == EV_START;         /* onStart first */
    if (ev->conn && ev->conn->busy) return false;         /* per-connection order */
    return true;
}

static event *take_runnable(room *r)
{
    event *prev = NULL;
    for (event *ev = r->q_head; ev; prev = ev, ev = ev->next) {
        if (!runnable(r, ev)) continue;
        if (prev) prev->next = ev->next;
        else r->q_head = ev->next;
        if (r->q_tail == ev) r->q_tail = prev;
        ev->next = NULL;
        return ev;
    }
    return NULL;
}

static const char *callback_name(event_kind k)
{
    switch (k) {
    case EV_START: return "onStart";
    case EV_CONNECT: return "onConnect";
    case EV_MESSAGE: return "onMessage";
    case EV_CLOSE: return "onClose";
    case EV_REQUEST: return "onRequest";
    case EV_ALARM: return "onAlarm";
    case EV_RELOAD: return "onReload (hot reload)";
    case EV_HOOK: return "static hook";
    default: return "callback";
    }
}

/* keep_co: the task's callback returned, so its coroutine is as good as
 * new and can run the next event. */
static void task_free(task *t, bool keep_co)
{
    room *r = t->r;
    if (t->prev) t->prev->next = t->next;
    else r->tasks = t->next;
    if (t->next) t->next->prev = t->prev;
    if (t->conn) {
        t->conn->busy = false;
        conn_unref(t->conn);
    }
    if (r->L && keep_co && r->nspare < 8) {
        /* a coroutine that returned is as good as a new one: keep it (a
         * lua_newthread per event is a measurable part of a message's cost) */
        lua_settop(t->co, 0);
        r->spare[r->nspare] = t->co;
        r->spare_ref[r->nspare++] = t->co_ref;
    } else if (r->L) {
        luaL_unref(r->L, LUA_REGISTRYINDEX, t->co_ref);
    }
    pool_put(&r->owner->tasks, t);
}

/* The message body of a failed onRequest: details only in `dev`, where
 * they help; a production server does not leak its internals. */
static http_response *error_response(room *r, const char *msg)
{
    if (r->owner->cfg->dev) return http_response_new(500, "text/plain; charset=utf-8", msg, strlen(msg));
    static const char generic[] = "Internal Server Error";
    return http_response_new(500, "text/plain; charset=utf-8", generic, sizeof generic - 1);
}

/* The traceback without the runtime's own frames: users should see their
 * files and lines, not ours. */
static void log_traceback(room *r, task *t, const char *msg)
{
    luaL_traceback(r->L, t->co, msg, 0);
    const char *tb = lua_tostring(r->L, -1);
    buf b;
    buf_init(&b);
    for (const char *line = tb; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line + 1) : strlen(line);
        if (!memmem(line, n, "lua/luaparty/", 13)) buf_append(&b, line, n);
        line += n;
    }
    lua_pop(r->L, 1);
    while (b.len && b.data[b.len - 1] == '\n') b.data[--b.len] = 0;
    log_error("%s/%s %s: %s", r->party->name, r->id, t->callback, b.data ? b.data : msg);
    buf_free(&b);
}

static void task_failed(task *t)
{
    room *r = t->r;
    const char *msg = lua_tostring(t->co, -1);
    if (!msg) msg = "(error object is not a string)";
    METRIC_ADD(callback_errors, 1);
    log_traceback(r, t, msg);
    if (t->kind == EV_REQUEST) {
        room_output_respond(r, t->ex, error_response(r, msg));
    } else if (t->kind == EV_HOOK) {
        /* PartyKit: an error thrown by onBefore* rejects with 401 */
        http_response *res = t->hook == HOOK_FETCH ? error_response(r, msg)
                                                    : http_response_new(401, "text/plain; charset=utf-8", msg, strlen(msg));
        if (t->hook != HOOK_FETCH && !r->owner->cfg->dev) {
            http_response_free(res);
            res = http_response_new(401, "text/plain; charset=utf-8", "Unauthorized", 12);
        }
        t->gate->decide(t->gate, res, NULL);
    } else if (t->kind == EV_CONNECT && t->conn) {
        /* As PartyKit: accept, then close with 1011 and the message, so the
         * client's devtools show what went wrong. */
        room_output_close(r, t->conn, 1011, msg, strlen(msg));
    }
}

static void task_done(task *t)
{
    room *r = t->r;
    if (t->kind == EV_REQUEST) {
        char *err = NULL;
        http_response *res = lua_to_response(t->co, 1, &err);
        if (!res) {
            log_error("%s/%s onRequest: %s", r->party->name, r->id, err);
            res = error_response(r, err);
            free(err);
        }
        room_output_respond(r, t->ex, res);
    } else if (t->kind == EV_START) {
        r->starting = false;
    } else if (t->kind == EV_HOOK) {
        hook_done(t);
    }
}

/* rt.hook returned "pass" | "request", headers | "response", status, headers, body */
static void hook_done(task *t)
{
    lua_State *co = t->co;
    const char *verdict = lua_tostring(co, 1);
    if (verdict && strcmp(verdict, "response") == 0) {
        char *err = NULL;
        http_response *res = lua_to_response(co, 2, &err);
        if (!res) {
            log_error("%s static hook: %s", t->r->party->name, err);
            res = error_response(t->r, err);
            free(err);
        }
        t->gate->decide(t->gate, res, NULL);
    } else if (verdict && strcmp(verdict, "request") == 0) {
        http_headers *h = xcalloc(1, sizeof *h);
        const char *bad = lua_collect_headers(co, 2, h);
        if (bad) { /* checked as a response's headers are: a request must not carry them on */
            http_headers_free(h);
            free(h);
            log_error("%s static hook: the request it returned: %s", t->r->party->name, bad);
            t->gate->decide(t->gate, error_response(t->r, bad), NULL);
            return;
        }
        t->gate->decide(t->gate, NULL, h);
    } else {
        t->gate->decide(t->gate, NULL, NULL);
    }
}

static void step(room *r, task *t, int nargs)
{
    r->current = t;
    t->suspended = false;
    r->limit_hit = LIMIT_NONE;
    sandbox_arm(r);
    sandbox_enter(r);
    int st = lua_resume(t->co, nargs);
    sandbox_leave(r);
    sandbox_disarm(r);
    r->current = NULL;
    if (st != 0 && st != LUA_YIELD && r->limit_hit != LIMIT_NONE) {
        /* Its tables may be half-updated: rebuild the room from storage once
         * this run ends (room_run). Other rooms never notice. */
        r->reset_reason = r->limit_hit == LIMIT_CPU ? "room reset: a callback exceeded the CPU time limit"
                                                    : "room reset: the room exceeded its memory limit";
        if (r->limit_hit == LIMIT_MEMORY)
            lua_pushfstring(t->co, "the room exceeded its memory limit of %d MiB (%s)",
                            (int)(r->mem_limit >> 20), lua_tostring(t->co, -1));
    }
    if (st == LUA_YIELD && t->suspended) {
        r->suspended++;
    } else {
        if (st == LUA_YIELD) {
            lua_pushstring(t->co, "coroutine.yield() called directly in a callback: only luaparty "
                                  "calls (fetch, socket) may suspend a callback");
            st = LUA_ERRRUN;
        }
        if (st != 0) task_failed(t);
        else task_done(t);
        if (t->kind == EV_START && st != 0) r->starting = false; /* a failed onStart must not wedge the room */
        if (t->kind == EV_ALARM) alarm_finished(r, t->lease, st == 0);
        task_free(t, st == 0);
    }
    commit(r); /* a callback boundary: see the file comment */
}

/* The runtime's function for an event (runtime.lua), pushed on co. The two
 * that run per message and per request come from registry references
 * taken at start-up instead: a field lookup by name hashes the name. */
static void push_entry(room *r, lua_State *co, const char *name)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->rt_ref);
    lua_getfield(co, -1, name);
    lua_remove(co, -2);
}

static void dispatch(room *r, event *ev)
{
    lua_State *L = r->L;
    if (ev->kind == EV_RESUME) {
        task *t = ev->task;
        r->suspended--;
        int n = ev->done->push(ev->done, t->co);
        ev->done->destroy(ev->done);
        ev->done = NULL;
        event_free(r, ev);
        step(r, t, n);
        return;
    }

    task *t = pool_get(&r->owner->tasks, sizeof *t);
    t->r = r;
    t->next = r->tasks;
    if (r->tasks) r->tasks->prev = t;
    r->tasks = t;
    t->kind = ev->kind;
    t->callback = ev->kind == EV_CALL ? "socket handler" : callback_name(ev->kind);
    if (r->nspare) {
        r->nspare--;
        t->co = r->spare[r->nspare];
        t->co_ref = r->spare_ref[r->nspare];
    } else {
        t->co = lua_newthread(L);
        t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (ev->conn) {
        t->conn = ev->conn;
        conn_ref(t->conn);
        t->conn->busy = true;
    }
    lua_State *co = t->co;
    int nargs = 0;
    switch (ev->kind) {
    case EV_START:
        push_entry(r, co, "start");
        break;
    case EV_CONNECT:
        push_entry(r, co, "connect");
        nargs = lua_conn_join(co, r, ev->conn);
        lua_push_request(co, ev->req);
        nargs++;
        break;
    case EV_MESSAGE:
        lua_rawgeti(co, LUA_REGISTRYINDEX, r->message_ref);
        lua_conn_push(co, ev->conn);
        if (ev->msg) lua_push_message(co, ev->msg);
        else lua_push_message_bytes(co, ev->opcode, ev->bytes, ev->nbytes);
        nargs = 2;
        break;
    case EV_CLOSE:
        push_entry(r, co, "close");
        lua_conn_push(co, ev->conn);
        lua_pushinteger(co, ev->code);
        if (ev->error) lua_pushstring(co, ev->error);
        else lua_pushnil(co);
        nargs = 3;
        lua_conn_leave(co, r, ev->conn);
        break;
    case EV_REQUEST:
        lua_rawgeti(co, LUA_REGISTRYINDEX, r->request_ref);
        lua_push_request(co, ev->req);
        t->ex = ev->ex;
        nargs = 1;
        break;
    case EV_CALL:
        push_entry(r, co, ev->error);
        lua_rawgeti(co, LUA_REGISTRYINDEX, ev->ref);
        if (ev->msg) lua_push_message(co, ev->msg);
        else lua_pushnil(co);
        lua_pushinteger(co, ev->code);
        nargs = 3;
        break;
    case EV_ALARM:
        push_entry(r, co, "alarm");
        lua_pushinteger(co, ev->code);
        t->lease = ev->lease;
        r->alarm_lease = ev->lease;
        nargs = 1;
        break;
    case EV_RELOAD:
        push_entry(r, co, "reload");
        if (!(ev->code & 1)) lua_pushnil(co);
        else if (luaL_loadbuffer(co, r->party->bytecode, r->party->bytecode_len, r->party->chunkname) != 0)
            lua_pushnil(co); /* cannot happen: the bytecode was made from a good load */
        if (ev->code & 2) lua_pushstring(co, r->owner->cfg->vars_json);
        else lua_pushnil(co);
        nargs = 2;
        break;
    case EV_HOOK:
        push_entry(r, co, "hook");
        lua_pushinteger(co, ev->code);
        lua_push_request(co, ev->req);
        lua_pushstring(co, ev->error);
        t->gate = ev->gate;
        t->hook = (hook_kind)ev->code;
        nargs = 3;
        break;
    case EV_RESUME:
        break;
    }
    event_free(r, ev);
    step(r, t, nargs);
}

bool room_runs_now(const room *r) { return r->owner->lua_depth == 0 && !r->running; }

void room_run(room *r)
{
    if (r->running || r->state == ROOM_GONE) return;
    r->refs++; /* a reset below may drop the registry's reference */
    r->running = true;
    r->owner->lua_depth++;
    event *ev;
    while ((ev = take_runnable(r))) dispatch(r, ev);
    r->owner->lua_depth--;
    r->running = false;
    r->last_active = uv_now(r->owner->loop);
    if (r->reset_reason) {
        const char *why = r->reset_reason;
        r->reset_reason = NULL;
        log_warn("%s/%s: %s", r->party->name, r->id, why);
        registry_evict(r->owner, r, 1011, why);
    }
    room_unref(r);
}

task *room_current_task(room *r) { return r->current; }

void room_task_suspend(task *t) { t->suspended = true; }

lua_State *room_task_thread(task *t) { return t->co; }

void room_close_all(room *r, int code, const char *reason)
{
    for (lp_conn *c = r->conns; c; c = c->next)
        if (!c->gone) c->ops->close(c, code, reason, strlen(reason));
}

/* ---- output gate ---- */

static bool gate_closed(const room *r) { return r->dirty || r->commit_inflight; }

static held *hold(room *r, enum held_kind kind)
{
    held *h = xcalloc(1, sizeof *h);
    h->kind = kind;
    if (r->held_tail) r->held_tail->next = h;
    else r->held_head = h;
    r->held_tail = h;
    return h;
}

void room_output_send(room *r, lp_conn *c, chunk *msg)
{
    if (c->gone) return;
    if (!gate_closed(r)) {
        c->ops->send(c, msg);
        return;
    }
    held *h = hold(r, HELD_SEND);
    h->conn = c;
    conn_ref(c);
    h->msg = chunk_ref(msg);
}

void room_output_close(room *r, lp_conn *c, int code, const char *reason, size_t len)
{
    if (c->gone) return;
    if (!gate_closed(r)) {
        c->ops->close(c, code, reason, len);
        return;
    }
    held *h = hold(r, HELD_CLOSE);
    h->conn = c;
    conn_ref(c);
    h->code = code;
    h->reason = xstrndup(reason, len);
    h->reason_len = len;
}

void room_output_respond(room *r, exchange *ex, http_response *res)
{
    if (!gate_closed(r)) {
        ex->respond(ex, res);
        return;
    }
    held *h = hold(r, HELD_RESPOND);
    h->ex = ex;
    h->res = res;
}

static void release_held(room *r, bool deliver)
{
    while (r->held_head) {
        held *h = r->held_head;
        r->held_head = h->next;
        if (!r->held_head) r->held_tail = NULL;
        switch (h->kind) {
        case HELD_SEND:
            if (deliver && !h->conn->gone) h->conn->ops->send(h->conn, h->msg);
            break;
        case HELD_CLOSE:
            if (!h->conn->gone) h->conn->ops->close(h->conn, deliver ? h->code : 1011, h->reason, h->reason_len);
            break;
        case HELD_RESPOND:
            /* A response is never dropped: the caller gets a 500 instead. */
            if (deliver) {
                h->ex->respond(h->ex, h->res);
            } else {
                http_response_free(h->res);
                h->ex->respond(h->ex, http_response_new(500, "text/plain", "storage commit failed", 21));
            }
            h->res = NULL;
            break;
        }
        free_held(h);
    }
}

static void commit_done(void *ud, int status, const char *error)
{
    room *r = ud;
    r->commit_inflight = false;
    metrics_commit_observed(uv_hrtime() - r->commit_start, status);
    if (status != 0) {
        /* The writes are lost, so everything the room said after them must
         * not reach anyone. */
        log_error("%s/%s: storage commit failed, dropping %s: %s", r->party->name, r->id,
                  "the messages sent after the write", error ? error : "?");
    }
    release_held(r, status == 0);
    if (r->alarm_changed) {
        r->alarm_changed = false;
        alarm_reschedule(r->owner);
    }
    if (status != 0) {
        /* Its Lua state may hold what storage does not: rebuild it from
         * storage on the next event (DO's reset). */
        registry_evict(r->owner, r, 1011, "room reset after a storage failure");
        return;
    }
    if (r->q_head) worker_schedule(r->owner, r);
}

static void commit(room *r)
{
    if (!r->dirty || r->commit_inflight) return;
    r->dirty = false;
    r->commit_inflight = true;
    r->commit_start = uv_hrtime();
    storage_commit(r->owner->store, commit_done, r);
}
