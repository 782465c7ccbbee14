/* worker.c - the loop owner: runs rooms whose events were deferred.
 *
 * Events that arrive from socket callbacks run at once (no Lua is on the C
 * stack then). Events raised while Lua code runs (one room fetching another,
 * a broadcast to a cross-party socket) are deferred to the idle handle, so
 * one room's Lua never runs nested inside another's. */
#include "worker.h"
#include "alarm.h"
#include "cron.h"
#include "registry.h"
#include "room.h"

#include <string.h>

static void run_queue(uv_idle_t *h)
{
    worker *w = h->data;
    /* Rooms scheduled while this runs go on the queue again and run in the
     * same pass, until nothing is left. */
    while (w->runq_head) {
        room *r = w->runq_head;
        w->runq_head = r->runq_next;
        if (!w->runq_head) w->runq_tail = NULL;
        r->runq_next = NULL;
        r->scheduled = false;
        room_run(r);
        room_unref(r);
    }
    uv_idle_stop(&w->runner);
}

static void sweep(uv_timer_t *t) { registry_sweep(t->data); }

int worker_init(worker *w, uv_loop_t *loop, const config *cfg, struct storage *store)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->cfg = cfg;
    w->store = store;
    dict_init(&w->rooms);
    uv_idle_init(loop, &w->runner);
    w->runner.data = w;
    uv_timer_init(loop, &w->sweeper);
    w->sweeper.data = w;
    uint64_t every = cfg->idle_timeout_ms / 4;
    if (every < 20) every = 20;
    if (every > 5000) every = 5000;
    uv_timer_start(&w->sweeper, sweep, every, every);
    alarm_start(w);
    cron_start(w);
    return 0;
}

void worker_schedule(worker *w, room *r)
{
    if (w->lua_depth == 0 && !r->running) {
        room_run(r);
        return;
    }
    if (r->scheduled) return;
    r->scheduled = true;
    r->refs++; /* the queue keeps the room alive */
    if (w->runq_tail) w->runq_tail->runq_next = r;
    else w->runq_head = r;
    w->runq_tail = r;
    uv_idle_start(&w->runner, run_queue);
}

void worker_close(worker *w)
{
    run_queue(&w->runner);
    registry_clear(w);
    alarm_stop(w);
    cron_stop(w);
    uv_timer_stop(&w->sweeper);
    uv_close((uv_handle_t *)&w->sweeper, NULL);
    uv_close((uv_handle_t *)&w->runner, NULL);
}
