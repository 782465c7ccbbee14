/* room.c - a room's inputs and outputs: its event queue (input gate), its
 * held output (output gate), the storage commit that opens both, and the
 * task (coroutine) handles bindings suspend and resume. Running the events
 * is runner.c's; this file never calls into Lua code.
 *
 * Inputs become events in the queue. An event runs when it is runnable:
 * not while a storage commit is in flight (input gate), nothing but onStart
 * before onStart finished, and a connection's events one at a time. Storage
 * writes are buffered per room and committed at every callback boundary
 * (room_commit); outputs produced while writes are pending are held and
 * released only once the commit succeeded. */
#include "room.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"
#include "storage.h"
#include "worker.h"
#include "ws.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>


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

void room_event_free(room *r, event *ev)
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
    room_event_free(r, ev);
}

static void room_schedule(room *r);

static void enqueue(room *r, event *ev)
{
    if (r->state == ROOM_GONE) { /* shutting down: nobody will run it */
        event_abandon(r, ev);
        return;
    }
    if (r->q_tail) r->q_tail->next = ev;
    else r->q_head = ev;
    r->q_tail = ev;
    room_schedule(r);
}

/* Runs the room's queued events now if no Lua code is on the stack, else on
 * the next loop turn: one room's Lua never runs inside another's. */
static void room_schedule(room *r)
{
    if (room_runs_now(r)) {
        r->refs++; /* as the worker's queue does: later.run releases it */
        r->later.run(&r->later);
    } else if (!r->later.queued) {
        r->refs++;
        worker_defer(r->owner, &r->later);
    }
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

/* conn_cleanup: the connection is being freed. */
static void release_conn(lp_conn *c)
{
    c->room->attached--;
    room_unref(c->room);
}

void room_connect(room *r, lp_conn *c, http_request *upgrade)
{
    c->room = r;
    c->metric_party = (unsigned short)r->party->metric_slot;
    c->release = release_conn;
    r->refs++; /* released by conn_cleanup (release_conn) */
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
        ev->bytes = data; /* enqueue runs it at once (room_schedule) */
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

bool room_busy(const room *r)
{
    return r->q_head || r->suspended || r->running || r->preempted || r->held_head || r->commit_inflight;
}

bool room_idle(const room *r)
{
    return r->state == ROOM_ACTIVE && r->nconns == 0 && !room_busy(r) && !r->later.queued && r->refs == 1 && !r->pins;
}

/* ---- running events ---- */

static bool runnable(const room *r, const event *ev)
{
    if (r->preempted) return false;                       /* a step is not over yet */
    /* input gate, for a suspended task's resumption too: its next writes
     * must not open a batch while the last one is on its way to Redis
     * (cluster storage), where another room's step would find it open */
    if (r->commit_inflight) return false;
    if (ev->kind == EV_RESUME) return true;
    if (r->starting) return ev->kind == EV_START;         /* onStart first */
    if (ev->conn && ev->conn->busy) return false;         /* per-connection order */
    return true;
}

event *room_take_event(room *r)
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

void room_reset(room *r, int code, const char *why)
{
    if (r->reset) r->reset(r, code, why);
}

bool room_runs_now(const room *r) { return r->owner->lua_depth == 0 && !r->running; }

task *room_current_task(room *r) { return r->current; }

void room_task_suspend(task *t) { t->suspended = true; }

void room_task_preempt(task *t, uint64_t cpu_left)
{
    t->preempted = true;
    t->cpu_left = cpu_left;
}

lua_State *room_task_thread(task *t) { return t->co; }

/* Walks a copy of the list, each connection held by a reference: closing a
 * cross-party socket runs the room's onClose for it at once (room_disconnect
 * runs the room when no Lua is on the stack), which takes it off the list
 * and clears its next pointer: a walk of the list itself stopped there, and
 * the connections after it stayed open. */
void room_close_all(room *r, int code, const char *reason)
{
    size_t n = 0;
    for (lp_conn *c = r->conns; c; c = c->next) n++;
    if (!n) return;
    lp_conn **all = xmalloc(n * sizeof *all);
    n = 0;
    for (lp_conn *c = r->conns; c; c = c->next) {
        conn_ref(c);
        all[n++] = c;
    }
    for (size_t i = 0; i < n; i++) {
        if (!all[i]->gone) all[i]->ops->close(all[i], code, reason, strlen(reason));
        conn_unref(all[i]);
    }
    free(all);
}

/* ---- output gate ---- */

/* Cluster mode: a node past its lease, or a room of an incarnation that
 * lost its lease (the node may have registered again since), says nothing:
 * another node may own the room now. Always true on one node. */
static bool may_speak(const room *r) { return placement_lease_valid() && r->generation == placement_generation(); }

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
    if (c->gone || !may_speak(r)) return;
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
    if (!may_speak(r)) { /* its clients learn it from the fence's 1012 */
        code = 1012;
        reason = "this node lost its cluster lease";
        len = strlen(reason);
    }
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
    if (!may_speak(r)) { /* what it computed may be stale: another node may own the room now */
        http_response_free(res);
        res = http_response_retry("this node lost its cluster lease");
    }
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
            if (deliver && !h->conn->gone && may_speak(r)) h->conn->ops->send(h->conn, h->msg);
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

/* Storage has the step's writes (status 0), or not: then nothing the room
 * said after them may reach anyone. In cluster mode this runs when Redis
 * answered, possibly after the room was taken out of service. */
static void commit_done(void *ud, int status, const char *error)
{
    room *r = ud;
    r->commit_inflight = false;
    metrics_commit_observed(uv_hrtime() - r->commit_start, status);
    if (status == STORAGE_FENCED) {
        log_warn("%s/%s: %s: dropping what the room sent after its last write, closing it (1012)", r->party->name,
                 r->id, error ? error : "this node no longer owns the room");
    } else if (status != 0) {
        log_error("%s/%s: storage commit failed, dropping %s: %s", r->party->name, r->id,
                  "the messages sent after the write", error ? error : "?");
    }
    release_held(r, status == 0);
    if (status == 0 && !r->pinned && r->id[0] && placement_pins_rooms()) {
        /* its data is in this node's SQLite now: it may not move (README "Cluster mode") */
        r->pinned = true;
        placement_pinned(r->party, r->id);
    }
    if (r->alarm_changed) {
        r->alarm_changed = false;
        if (r->owner->alarms_changed) r->owner->alarms_changed(r->owner);
    }
    if (status == STORAGE_FENCED) {
        /* Another node owns it now: its clients reconnect there. */
        room_reset(r, 1012, "this node no longer owns the room");
    } else if (status != 0) {
        /* Its Lua state may hold what storage does not: rebuild it from
         * storage on the next event (DO's reset). */
        room_reset(r, 1011, "room reset after a storage failure");
    }
    /* What the input gate held runs now, in a room that was reset too: a
     * queued onClose holds its connection, the connection holds the room,
     * and nothing else would ever run them (the room leaked, onClose never
     * ran). */
    if (r->q_head) room_schedule(r);
    room_unref(r); /* room_commit's */
}

void room_commit(room *r)
{
    storage_end_read(r->owner->store);
    if (!r->dirty || r->commit_inflight) return;
    r->dirty = false;
    r->commit_inflight = true;
    r->commit_start = uv_hrtime();
    r->refs++; /* a commit may answer after the room was evicted */
    storage_commit(r->owner->store, commit_done, r);
}
