/* room.h - one live instance of a party: its Lua state, its connections, its
 * event queue and its output gate (room.c; runner.c runs its events).
 *
 * Events are delivered one at a time, each in its own coroutine. A callback
 * that suspends (cross-party fetch, socket receive) lets the room take the
 * next event, except events of the same connection, which wait so a
 * connection's callbacks never overlap (onMessage never runs before its
 * onConnect finished). Storage writes are buffered per room and committed at
 * every callback boundary; anything the room sends after a write is held
 * until that write is durable (room_output_*). */
#ifndef LP_ROOM_H
#define LP_ROOM_H

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "util.h"
#include "worker.h"
#include <lua.h>

struct worker;
struct task;

/* An HTTP request waiting for its response: a socket or a suspended fetch. */
typedef struct exchange exchange;
struct exchange {
    /* Takes ownership of res. Called once, on the thread of the worker that
     * made the request (registry_request), whichever worker owns the room. */
    void (*respond)(exchange *ex, http_response *res);
    /* The room could not be started (its script fails to load, or the
     * server is shutting down): called instead of respond. */
    void (*fail)(exchange *ex, const char *err);
};

/* The verdict of a party's static hook (onBeforeConnect, onBeforeRequest,
 * onFetch), run in the party's lobby. res: reject (or, for onFetch, answer)
 * with it; NULL: let the request through, with headers replaced when
 * headers is not NULL (the hook returned a modified request). Takes both. */
typedef struct gatekeeper gatekeeper;
struct gatekeeper {
    void (*decide)(gatekeeper *g, http_response *res, http_headers *headers);
};

typedef enum { HOOK_BEFORE_CONNECT, HOOK_BEFORE_REQUEST, HOOK_FETCH, HOOK_CRON } hook_kind;

/* A value handed back to a suspended coroutine. */
typedef struct completion completion;
struct completion {
    int (*push)(completion *c, lua_State *co);  /* pushes results, returns count */
    void (*destroy)(completion *c);
};

typedef enum {
    EV_START,      /* onStart */
    EV_CONNECT,    /* onConnect */
    EV_MESSAGE,    /* onMessage */
    EV_CLOSE,      /* onError (if error) + onClose */
    EV_REQUEST,    /* onRequest */
    EV_RESUME,     /* continue a suspended coroutine */
    EV_CALL,       /* call a runtime hook with a chunk (cross-party socket events) */
    EV_ALARM,      /* onAlarm */
    EV_RELOAD,     /* swap in the party's new code and/or env, then onReload */
    EV_HOOK,       /* a static hook in the lobby: see gatekeeper */
} event_kind;

typedef struct event {
    struct event *next;
    event_kind kind;
    lp_conn *conn;          /* CONNECT, MESSAGE, CLOSE (a reference is held) */
    chunk *msg;             /* MESSAGE, CALL */
    const void *bytes;      /* MESSAGE without msg: borrowed (room_message_bytes) */
    size_t nbytes;
    int opcode;
    http_request *req;      /* CONNECT, REQUEST (owned) */
    exchange *ex;           /* REQUEST */
    struct task *task;      /* RESUME */
    completion *done;       /* RESUME */
    char *error;            /* CLOSE: onError message; CALL: hook name */
    int ref;                /* CALL: registry ref of the Lua target */
    int code;               /* CLOSE/CALL: close code */
    int64_t lease;          /* ALARM: the alarm time that marks this run */
    gatekeeper *gate;       /* HOOK */
} event;

/* One event running in its own coroutine (runner.c). */
typedef struct task {
    struct room *r;
    lua_State *co;
    int co_ref;
    event_kind kind;
    const char *callback;   /* for error messages */
    lp_conn *conn;          /* holds a reference; busy while the task lives */
    exchange *ex;           /* REQUEST: where the response goes */
    gatekeeper *gate;       /* HOOK: who waits for the verdict */
    hook_kind hook;         /* HOOK: which one */
    bool suspended;         /* set by room_task_suspend before a yield */
    bool preempted;         /* set by room_task_preempt: its time slice is over */
    uint64_t cpu_left;      /* a preempted step: what it has left of the CPU limit (ns) */
    int64_t lease;          /* ALARM: the alarm time marking this run */
    struct task *prev, *next; /* the room's live tasks */
} task;

typedef enum { ROOM_ACTIVATING, ROOM_ACTIVE, ROOM_DRAINING, ROOM_GONE } room_state;
typedef enum { LIMIT_NONE, LIMIT_CPU, LIMIT_MEMORY } room_limit;

typedef struct held held;

typedef struct room {
    struct worker *owner;
    const party *party;
    char *id;
    lua_State *L;
    room_state state;
    size_t mem_used, mem_limit;   /* Lua heap accounting (sandbox.c) */
    arena heap;                   /* where the Lua heap lives (arena.c) */
    bool in_user_code;            /* the cap applies only while party code runs */
    uint64_t deadline;            /* the running step's CPU limit may be reached from then on (uv_hrtime; sandbox.c) */
    uint64_t cpu_mark;            /* the worker thread's CPU time when the step's clock started (ns) */
    uint64_t cpu_allowed;         /* CPU time the step may use from cpu_mark (ns) */
    uint64_t slice_end;           /* the step yields to other rooms after this (sandbox.c) */
    bool hook_tripped;            /* the CPU hook runs on every instruction (sandbox.c) */
    room_limit limit_hit;         /* set when a step ran into a limit */
    const char *reset_reason;     /* reset the room once the current run ends */
    /* A room cannot unload itself: it asks whoever holds it (the registry
     * sets this) to take it out of service, closing its sockets with code. */
    void (*reset)(struct room *r, int code, const char *why);
    size_t attached;              /* connections given to the room and not yet freed */

    event *q_head, *q_tail;
    struct task *current;         /* the task running right now */
    /* A step paused at the end of its time slice (sandbox.c): it goes on
     * at the worker's next turn, and until it ends no other event of the
     * room runs (the input gate stays closed, as while it ran). */
    struct task *preempted;
    uint64_t preempted_turn;      /* the worker's turn (worker.h) it was paused in */
    int suspended;                /* tasks waiting on I/O */
    bool starting;                /* onStart has not finished: hold events */
    bool running;
    deferred later;               /* queued on the worker to run its events (room_schedule) */

    lp_conn *conns;               /* joined connections, newest first */
    size_t nconns;

    bool dirty;                   /* wrote to storage in this step: output is held */
    bool commit_inflight;         /* input gate: hold events until committed */
    bool pinned;                  /* cluster mode, local storage: its data is in this node's (placement_pinned) */
    uint64_t generation;          /* cluster mode: the node's incarnation when it was made (placement.h) */
    uint64_t commit_start;        /* uv_hrtime when the commit began (metrics) */
    bool alarm_changed;           /* the step set or deleted the alarm */
    int in_transaction;           /* inside storage:transaction: may not suspend */
    int64_t alarm_lease;          /* the lease of a running onAlarm, else 0 */
    bool alarm_touched;           /* the room set or deleted its alarm while onAlarm ran */
    held *held_head, *held_tail;  /* output gate */
    uint64_t last_active;         /* uv_now of the last event, for idle unloading */
    int pins;                     /* open cross-party sockets: keep the room loaded */

    int rt_ref;                   /* the runtime module (lua/luaparty/runtime.lua) once loaded, else LUA_NOREF */
    int class_ref, instance_ref;  /* the party class and self (lua_room.c) */
    int request_ref;              /* luaparty.http's request once a request came, else LUA_NOREF */
    struct task *tasks;           /* live tasks (running or suspended) */
    lua_State *spare[8];          /* finished coroutines kept for the next events */
    int spare_ref[8];
    int nspare;
    int refs;                     /* registry + pending calls into the room */
} room;

/* Queues onStart; called once the room is findable (registry.c). */
void room_start(room *r);
void room_unref(room *r);

/* Inputs. Each takes what it is given (references, request). */
void room_connect(room *r, lp_conn *c, http_request *upgrade);
void room_message(lp_conn *c, chunk *msg);
/* The same from bytes that live only during the call (a socket's read). */
void room_message_bytes(lp_conn *c, int opcode, const void *data, size_t len);
void room_disconnect(lp_conn *c, int code, const char *error);
void room_request(room *r, http_request *req, exchange *ex);
void room_resume(room *r, struct task *t, completion *done);
void room_call(room *r, int ref, const char *hook, chunk *msg, int code);
void room_alarm(room *r, int64_t lease, int retries);
/* Runs a static hook in a lobby (the room "" of the party): req is copied,
 * room_id is the room the request is for. */
void room_hook(room *lobby, hook_kind kind, const http_request *req, const char *room_id, gatekeeper *g);

/* Queues a reload: new code (the party's current bytecode) and/or env. */
void room_reload(room *r, bool code, bool env);

/* True if the room holds `max` connections already (a new one is refused). */
static inline bool room_full(const room *r, size_t max) { return r->attached >= max; }
/* True if the room has work queued, running, paused or waiting for a commit. */
bool room_busy(const room *r);
/* True if the room has no connections and nothing pending: it may be unloaded. */
bool room_idle(const room *r);

/* No Lua on the owner's stack and the room not running: a queued event
 * runs at once (room_message_bytes relies on that). */
bool room_runs_now(const room *r);
/* The next event that may run now (see room.c), taken off the queue; NULL
 * if none may. */
event *room_take_event(room *r);
void room_event_free(room *r, event *ev);
/* Commits the storage writes of the step that just ended (if any); the
 * gates stay closed until storage answers. */
void room_commit(room *r);
/* Asks whoever holds the room (r->reset) to take it out of service, its
 * sockets closing with code (1011 after a failure, 1012 when it moved). */
void room_reset(room *r, int code, const char *why);

/* Outputs: every byte a room sends goes through these (output gate). */
void room_output_send(room *r, lp_conn *c, chunk *msg);
void room_output_close(room *r, lp_conn *c, int code, const char *reason, size_t len);
void room_output_respond(room *r, exchange *ex, http_response *res);

/* The task (coroutine) running now; C functions that suspend use it. */
struct task *room_current_task(room *r);
void room_task_suspend(struct task *t);
/* The running task's time slice is over: it yields now and goes on at a
 * later turn of the loop with cpu_left ns of its CPU limit (sandbox.c). */
void room_task_preempt(struct task *t, uint64_t cpu_left);
/* The coroutine a task runs in (C functions check they are called from it). */
lua_State *room_task_thread(struct task *t);
room *room_from_state(lua_State *L);
/* Closes every connection with code, e.g. 1001 on shutdown. */
void room_close_all(room *r, int code, const char *reason);

#endif
