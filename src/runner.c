/* runner.c - runs a room's events: each in a coroutine (a task) running
 * what lua_room.c pushes for it: the party's own callback (onMessage, ...),
 * or a function of the Lua runtime's modules (lua/luaparty).
 *
 * A task either finishes, fails (logged with a traceback of the party's own
 * frames; the room lives on), or suspends inside a C function that started
 * I/O (room_task_suspend); that I/O later queues an EV_RESUME with a
 * completion that pushes the results. After every step (finish or suspend)
 * the room's storage writes are committed (room_commit). A step that ran
 * into the CPU or memory limit has the room reset once the run ends.
 *
 * A step that used up its time slice (sandbox.c) is paused, not ended: it
 * goes on at the worker's next turn (room_run), after the loop polled for
 * I/O, so one runaway callback no longer stalls every room of its worker.
 * Until it ends nothing else of its room runs, as if it had not paused. */
#include "runner.h"
#include "clock.h"
#include "lua_binary.h"
#include "lua_conn.h"
#include "lua_request.h"
#include "lua_room.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"
#include "sandbox.h"
#include "storage.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define ALARM_TRIES 6

static void hook_done(task *t);
static void task_free(task *t, bool keep_co);

/* The worker's deferred queue holds a reference while the room waits there. */
static void run_later(deferred *d)
{
    room *r = (room *)((char *)d - offsetof(room, later));
    room_run(r);
    room_unref(r);
}

room *room_create(worker *w, const party *p, const char *id, char **err)
{
    room *r = xcalloc(1, sizeof *r);
    r->owner = w;
    r->party = p;
    r->id = xstrdup(id);
    r->mem_limit = w->cfg->room_memory;
    r->rt_ref = r->class_ref = r->instance_ref = r->request_ref = LUA_NOREF;
    r->refs = 1;
    r->generation = placement_generation();
    r->later.run = run_later;
    r->last_active = clock_loop_now(w->loop);
    r->state = ROOM_ACTIVATING;
    if (sandbox_open_room(r, err) != 0) {
        room_unref(r);
        return NULL;
    }
    r->state = ROOM_ACTIVE;
    log_debug("room %s/%s created", p->name, id);
    return r;
}

void room_shutdown(room *r)
{
    r->refs++; /* releasing connections below may drop the last other reference */
    r->state = ROOM_GONE;
    while (r->tasks) task_free(r->tasks, false); /* suspended: their I/O will never answer now */
    r->suspended = 0;
    r->preempted = NULL;
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

/* A wake-up for the alarm marked `lease` runs onAlarm only if the room's
 * alarm is still that one: a second wake-up for the same alarm (cluster
 * mode sweeps Redis, which learns that onAlarm ended only when the commit
 * lands) or one for an alarm the room changed meanwhile does nothing. */
static bool alarm_still_due(room *r, int64_t lease)
{
    int64_t at;
    const char *err = NULL;
    if (r->alarm_lease == lease) return false; /* running now (it suspended) */
    return storage_get_alarm(r->owner->store, r->party->name, r->id, &at, NULL, &err) == 1 && at == lease;
}

/* onAlarm of the run marked `lease` finished: clear the alarm, or retry it
 * with exponential backoff (2 s, 4 s, ... up to ALARM_TRIES) if it failed.
 * An alarm that onAlarm set or deleted itself is theirs: left alone. */
static void alarm_finished(room *r, int64_t lease, bool ok)
{
    storage *s = r->owner->store;
    int64_t at;
    int retries = 0;
    const char *err = NULL;
    r->alarm_lease = 0;
    bool theirs = r->alarm_touched;
    r->alarm_touched = false;
    /* The room set a new alarm or deleted it meanwhile (even to the same
     * time: in cluster mode the lease is the alarm time itself): theirs wins. */
    if (theirs || storage_get_alarm(s, r->party->name, r->id, &at, &retries, &err) != 1 || at != lease) return;
    if (ok) {
        storage_delete_alarm(s, r->party->name, r->id, &err);
    } else if (++retries < ALARM_TRIES) {
        int64_t delay = 2000LL << (retries - 1);
        log_warn("%s/%s: onAlarm failed; retry %d of %d in %lld ms", r->party->name, r->id, retries, ALARM_TRIES - 1,
                 (long long)delay);
        storage_set_alarm(s, r->party->name, r->id, (int64_t)now_ms() + delay, retries, &err);
    } else {
        log_error("%s/%s: onAlarm failed %d times; giving up on this alarm", r->party->name, r->id, ALARM_TRIES);
        storage_delete_alarm(s, r->party->name, r->id, &err);
    }
    r->dirty = true;
    r->alarm_changed = true;
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
    METRIC_ADD(callback_errors[r->party->metric_slot], 1);
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
    t->suspended = t->preempted = false;
    r->limit_hit = LIMIT_NONE;
    sandbox_arm(r, t->cpu_left);
    t->cpu_left = 0;
    sandbox_enter(r);
    int st = lua_resume(t->co, nargs);
    sandbox_leave(r);
    sandbox_disarm(r);
    r->current = NULL;
    if (st == LUA_YIELD && t->preempted) {
        /* the step is not over: nothing to commit (it had written nothing,
         * see may_pause), nothing else of the room runs (room_take_event) */
        r->preempted = t;
        r->preempted_turn = r->owner->turn;
        return;
    }
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
    room_commit(r); /* a callback boundary: see room.c */
}

/* A task for a new event, in a spare coroutine if the room has one. */
static task *new_task(room *r, const event *ev)
{
    lua_State *L = r->L;
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
    return t;
}

/* Pushes the runtime's function for ev and its arguments on the task's
 * coroutine; returns the number of arguments. */
static int push_event(room *r, task *t, event *ev)
{
    lua_State *co = t->co;
    int nargs = 0;
    switch (ev->kind) {
    case EV_START:
    case EV_CONNECT:
    case EV_MESSAGE:
    case EV_CLOSE:
        nargs = lua_room_push_event(co, r, ev);
        break;
    case EV_REQUEST:
        nargs = lua_room_push_event(co, r, ev);
        t->ex = ev->ex;
        break;
    case EV_ALARM:
        nargs = lua_room_push_event(co, r, ev);
        t->lease = ev->lease;
        r->alarm_lease = ev->lease;
        r->alarm_touched = false;
        break;
    case EV_CALL:
        lua_room_push_entry(co, r, ev->error);
        lua_rawgeti(co, LUA_REGISTRYINDEX, ev->ref);
        if (ev->msg) lua_push_message(co, ev->msg);
        else lua_pushnil(co);
        lua_pushinteger(co, ev->code);
        nargs = 3;
        break;
    case EV_RELOAD:
        lua_room_push_entry(co, r, "reload");
        if (!(ev->code & 1)) lua_pushnil(co);
        else if (luaL_loadbuffer(co, r->party->bytecode, r->party->bytecode_len, r->party->chunkname) != 0)
            lua_pushnil(co); /* cannot happen: the bytecode was made from a good load */
        if (ev->code & 2) lua_pushstring(co, r->owner->cfg->vars_json);
        else lua_pushnil(co);
        nargs = 2;
        break;
    case EV_HOOK:
        lua_room_push_entry(co, r, "hook");
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
    return nargs;
}

/* An evicted room (reset, moved to another node, unloaded) starts nothing
 * new. What was queued before its eviction (behind a storage commit's input
 * gate) and would start something is answered here instead: a connection
 * is closed (1012: reconnect, to the room's next instance), a request gets
 * a 503 to retry, a message is dropped (its connection is closing with the
 * room). Before, a connection queued so joined the evicted room and stayed
 * open in it for good. Closes, resumptions and the rest still run. */
static bool refused_while_draining(room *r, event *ev)
{
    if (r->state != ROOM_DRAINING) return false;
    switch (ev->kind) {
    case EV_CONNECT:
        room_output_close(r, ev->conn, 1012, "room restarted: reconnect", 25);
        break;
    case EV_REQUEST:
        room_output_respond(r, ev->ex, http_response_retry("room restarted: retry"));
        break;
    case EV_MESSAGE:
        break;
    default:
        return false;
    }
    room_event_free(r, ev);
    return true;
}

static void run_event(room *r, event *ev)
{
    if (refused_while_draining(r, ev)) return;
    if (ev->kind == EV_RESUME) { /* the I/O a task waited for has answered */
        task *t = ev->task;
        r->suspended--;
        int n = ev->done->push(ev->done, t->co);
        ev->done->destroy(ev->done);
        ev->done = NULL;
        room_event_free(r, ev);
        step(r, t, n);
        return;
    }
    if (ev->kind == EV_ALARM && !alarm_still_due(r, ev->lease)) {
        room_event_free(r, ev);
        return;
    }
    task *t = new_task(r, ev);
    int nargs = push_event(r, t, ev);
    room_event_free(r, ev);
    step(r, t, nargs);
}

/* A paused step's next slice: on the worker's next turn. */
static void run_next_turn(room *r)
{
    if (r->later.queued) return; /* it runs in this pass; room_run defers it again */
    r->refs++; /* as room_schedule's: run_later releases it */
    worker_defer_turn(r->owner, &r->later);
}

void room_run(room *r)
{
    if (r->running || r->state == ROOM_GONE) return;
    if (r->preempted && r->preempted_turn == r->owner->turn) {
        /* paused in this turn: whatever woke it now, others come first */
        run_next_turn(r);
        return;
    }
    r->refs++; /* a reset below may drop the registry's reference */
    r->running = true;
    r->owner->lua_depth++;
    if (r->preempted) {
        task *t = r->preempted;
        r->preempted = NULL;
        step(r, t, 0);
    }
    event *ev;
    while ((ev = room_take_event(r))) run_event(r, ev);
    if (r->preempted) run_next_turn(r);
    r->owner->lua_depth--;
    r->running = false;
    r->last_active = clock_loop_now(r->owner->loop);
    if (r->reset_reason) {
        const char *why = r->reset_reason;
        r->reset_reason = NULL;
        log_warn("%s/%s: %s", r->party->name, r->id, why);
        room_reset(r, 1011, why);
    }
    room_unref(r);
}
