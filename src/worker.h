/* worker.h - the owner of an event loop and of every room that lives on it.
 *
 * One worker today. Everything that reaches a room (a socket event, a
 * cross-party call) goes through the room's owner, so running one worker per
 * thread later means replacing worker_schedule's in-loop queue with a
 * cross-thread one, not rewriting rooms. */
#ifndef LP_WORKER_H
#define LP_WORKER_H

#include "config.h"
#include "util.h"
#include <uv.h>

struct room;
struct storage;

typedef struct worker {
    uv_loop_t *loop;
    const config *cfg;
    struct storage *store;
    dict rooms;                     /* "party\0room" -> room* (registry.c) */
    struct room *runq_head, *runq_tail; /* rooms with deferred events */
    uv_idle_t runner;               /* drains runq without blocking in poll */
    uv_timer_t alarm_timer;         /* alarm.c */
    uv_timer_t sweeper;             /* unloads idle rooms */
    uv_timer_t cron_timer;          /* cron.c */
    int lua_depth;                  /* >0 while a Lua callback runs */
    char authority[300];            /* host:port of the listener, for in-process URLs */
    bool stopping;
} worker;

int worker_init(worker *w, uv_loop_t *loop, const config *cfg, struct storage *store);
void worker_close(worker *w);
/* Run the room's queued events now if no Lua code is on the stack, else on
 * the next loop turn. Never runs one room's Lua from inside another's. */
void worker_schedule(worker *w, struct room *r);

#endif
