/* worker.c - the loop owner: runs rooms whose events were deferred, and
 * jobs other workers post to it.
 *
 * Events that arrive from socket callbacks run at once (no Lua is on the C
 * stack then). Events raised while Lua code runs (one room fetching another,
 * a broadcast to a cross-party socket) are deferred to the idle handle, so
 * one room's Lua never runs nested inside another's.
 *
 * Jobs from other threads go through a mutex-protected FIFO and a uv_async
 * wakeup; the whole list is taken at once, so the lock is held for a pointer
 * swap, not for the work. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

struct worker_job {
    worker_job *next;
    worker_job_fn fn;
    void *arg;
};

static void run_queue(uv_idle_t *h)
{
    worker *w = h->data;
    w->turn++;
    /* what waited for this turn runs in it (after what was queued before) */
    if (w->nextq_head) {
        if (w->runq_tail) w->runq_tail->next = w->nextq_head;
        else w->runq_head = w->nextq_head;
        w->runq_tail = w->nextq_tail;
        w->nextq_head = w->nextq_tail = NULL;
    }
    /* Rooms scheduled while this runs go on the queue again and run in the
     * same pass, until nothing is left. */
    while (w->runq_head) {
        deferred *d = w->runq_head;
        w->runq_head = d->next;
        if (!w->runq_head) w->runq_tail = NULL;
        d->next = NULL;
        d->queued = false;
        d->run(d);
    }
    if (!w->nextq_head) uv_idle_stop(&w->runner);
}

static void run_jobs(uv_async_t *h)
{
    worker *w = h->data;
    for (;;) {
        pthread_mutex_lock(&w->jobs_lock);
        worker_job *j = w->jobs_head;
        w->jobs_head = w->jobs_tail = NULL;
        pthread_mutex_unlock(&w->jobs_lock);
        if (!j) return;
        while (j) {
            worker_job *next = j->next;
            j->fn(w, j->arg);
            free(j);
            j = next;
        }
    }
}

void worker_post(worker *to, worker_job_fn fn, void *arg)
{
    worker_job *j = xmalloc(sizeof *j);
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&to->jobs_lock);
    if (to->jobs_tail) to->jobs_tail->next = j;
    else to->jobs_head = j;
    to->jobs_tail = j;
    pthread_mutex_unlock(&to->jobs_lock);
    uv_async_send(&to->wakeup);
}

bool worker_has_jobs(worker *w)
{
    pthread_mutex_lock(&w->jobs_lock);
    bool any = w->jobs_head != NULL;
    pthread_mutex_unlock(&w->jobs_lock);
    return any;
}

/* ---- stop-the-world (hot reload of shared config) ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int parked;
    bool hold;
} pause_state = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};

static void park(worker *w, void *arg)
{
    (void)w;
    (void)arg;
    pthread_mutex_lock(&pause_state.lock);
    pause_state.parked++;
    pthread_cond_broadcast(&pause_state.cond);
    while (pause_state.hold) pthread_cond_wait(&pause_state.cond, &pause_state.lock);
    pause_state.parked--;
    pthread_cond_broadcast(&pause_state.cond);
    pthread_mutex_unlock(&pause_state.lock);
}

bool worker_pause_others(worker *w)
{
    if (w->stopping) return false;
    if (w->nworkers < 2) return true;
    pthread_mutex_lock(&pause_state.lock);
    pause_state.hold = true;
    pthread_mutex_unlock(&pause_state.lock);
    for (int i = 0; i < w->nworkers; i++)
        if (w->all[i] != w) worker_post(w->all[i], park, NULL);
    pthread_mutex_lock(&pause_state.lock);
    while (pause_state.parked < w->nworkers - 1) pthread_cond_wait(&pause_state.cond, &pause_state.lock);
    pthread_mutex_unlock(&pause_state.lock);
    return true;
}

void worker_resume_others(worker *w)
{
    if (w->nworkers < 2) return;
    pthread_mutex_lock(&pause_state.lock);
    pause_state.hold = false;
    pthread_cond_broadcast(&pause_state.cond);
    while (pause_state.parked > 0) pthread_cond_wait(&pause_state.cond, &pause_state.lock);
    pthread_mutex_unlock(&pause_state.lock);
}

int worker_init(worker *w, uv_loop_t *loop, const config *cfg, struct storage *store)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->cfg = cfg;
    w->store = store;
    w->nworkers = 1;
    w->all = NULL;
    dict_init(&w->rooms);
    uv_idle_init(loop, &w->runner);
    w->runner.data = w;
    pthread_mutex_init(&w->jobs_lock, NULL);
    uv_async_init(loop, &w->wakeup, run_jobs);
    w->wakeup.data = w;
    uv_unref((uv_handle_t *)&w->wakeup); /* jobs alone do not keep the loop alive */
    return 0;
}

/* Appends d to the queue (head, tail) unless it is queued somewhere already. */
static void enqueue(worker *w, deferred **head, deferred **tail, deferred *d)
{
    if (d->queued) return;
    d->queued = true;
    if (*tail) (*tail)->next = d;
    else *head = d;
    *tail = d;
    uv_idle_start(&w->runner, run_queue);
}

void worker_defer(worker *w, deferred *d) { enqueue(w, &w->runq_head, &w->runq_tail, d); }

void worker_defer_turn(worker *w, deferred *d) { enqueue(w, &w->nextq_head, &w->nextq_tail, d); }

void worker_settle(worker *w)
{
    run_jobs(&w->wakeup);
    run_queue(&w->runner);
}

/* The wakeup stays open: during teardown other workers may still post here
 * (main.c runs every loop until no job is left, then closes every handle). */
void worker_close(worker *w) { uv_close((uv_handle_t *)&w->runner, NULL); }

/* After the loop has closed: jobs posted since are dropped with their memory
 * owners gone; only the queue itself is freed here. */
void worker_free(worker *w)
{
    worker_job *j = w->jobs_head;
    while (j) {
        worker_job *next = j->next;
        free(j);
        j = next;
    }
    w->jobs_head = w->jobs_tail = NULL;
    pthread_mutex_destroy(&w->jobs_lock);
    pool_drain(&w->events);
    pool_drain(&w->tasks);
}
