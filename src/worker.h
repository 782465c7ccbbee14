/* worker.h - the owner of an event loop and of every room that lives on it.
 *
 * With --workers N there are N workers, one per thread, each with its own
 * loop, listener handle, storage connection and rooms. A room belongs to
 * exactly one worker (registry_owner), so its lua_State is only ever touched by
 * that worker's thread. Workers talk only through worker_post: a job queued
 * for another worker runs on that worker's thread, in order. */
#ifndef LP_WORKER_H
#define LP_WORKER_H

#include "config.h"
#include "metrics.h"
#include "util.h"
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

struct room;
struct room_calls;
struct storage;
struct cluster_storage;
struct worker;
struct server;

typedef void (*worker_job_fn)(struct worker *w, void *arg);
typedef struct worker_job worker_job;

/* Work for a later turn of this worker's loop (a room whose events were
 * raised while Lua code ran): embedded in its owner, queued at most once. */
typedef struct deferred {
    struct deferred *next;
    void (*run)(struct deferred *d);
    bool queued;
} deferred;

typedef struct worker {
    uv_loop_t *loop;
    const config *cfg;
    struct storage *store;
    struct cluster_storage *cstore; /* cluster storage: store's record in Redis (else NULL) */
    int index;                      /* 0..nworkers-1; worker 0 runs alarms, crons, reload */
    int nworkers;
    struct worker **all;            /* every worker, by index (shared, read-only) */
    dict rooms;                     /* "party\0room" -> room* (registry.c) */
    deferred *runq_head, *runq_tail; /* work for the next loop turn */
    deferred *nextq_head, *nextq_tail; /* work for the turn after the current one (worker_defer_turn) */
    uint64_t turn;                  /* counts passes of the run queue */
    uv_idle_t runner;               /* drains runq without blocking in poll */
    uv_timer_t alarm_timer;         /* alarm.c */
    uv_timer_t sweeper;             /* unloads idle rooms (registry.c) */
    uv_timer_t cron_timer;          /* cron.c */
    int lua_depth;                  /* >0 while a Lua callback runs */
    /* A commit changed a room's alarm: re-arm the alarm timer (alarm.c sets it). */
    void (*alarms_changed)(struct worker *w);
    struct server *srv;             /* the clients of this worker (server.c) */
    const struct room_calls *calls; /* how rooms reach other rooms (calls.h; registry.c) */
    char authority[300];            /* host:port of the listener, for in-process URLs */
    bool stopping;
    bool closed;                    /* worker_close ran: no room may start now */
    atomic_bool drained;            /* shutdown: no client, no room work, no job */

    /* jobs from other workers */
    uv_async_t wakeup;
    pthread_mutex_t jobs_lock;
    worker_job *jobs_head, *jobs_tail;
    metrics stats;                  /* this worker's counters (metrics.c sums them) */
    pool events, tasks;             /* spare room events and tasks (room.c) */
} worker;

int worker_init(worker *w, uv_loop_t *loop, const config *cfg, struct storage *store);
/* Shutdown: runs the jobs and deferred work that are queued, now. */
void worker_settle(worker *w);
/* Closes the worker's own handles (after its rooms are gone). */
void worker_close(worker *w);
/* Frees what worker_close left (the job queue), once the loop is closed. */
void worker_free(worker *w);
/* Queues d to run on the next loop turn (at once if it is queued already:
 * nothing happens). Used so one room's Lua never runs inside another's. */
void worker_defer(worker *w, deferred *d);
/* Queues d for the next pass of the run queue after this one, so the loop
 * polls for I/O first: a room whose step used up its time slice goes on
 * there, after the other rooms had their turn. */
void worker_defer_turn(worker *w, deferred *d);

/* Runs fn(to, arg) on `to`'s thread, after the jobs posted before it.
 * Callable from any thread. */
void worker_post(worker *to, worker_job_fn fn, void *arg);
/* True if jobs are queued for w (shutdown: is everything handled?). */
bool worker_has_jobs(worker *w);
/* Stop-the-world for changes to shared state (the config on hot reload):
 * every other worker parks between two loop iterations until
 * worker_resume_others. Called by worker 0 only. Returns false (nothing
 * paused, do not resume) once shutdown has begun: another worker's loop
 * may have stopped already and would never park. */
bool worker_pause_others(worker *w);
void worker_resume_others(worker *w);

#endif
