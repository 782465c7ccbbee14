/* clock.c - the real clocks, or the virtual one of `luaparty test` (see
 * clock.h).
 *
 * The virtual timers are a small unsorted array: a test has a handful (the
 * idle sweep, the alarm, the cron minute, a socket's receive timeout), so a
 * linear scan beats keeping a heap. Timers due at the same time fire in the
 * order they were set, as libuv's do. */
#include "clock.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct vtimer {
    uv_timer_t *t;
    uv_timer_cb cb;
    uint64_t due, repeat;
    uint64_t seq;        /* order of setting: ties fire first-set first */
} vtimer;

static struct {
    bool on;
    uint64_t now;
    vtimer *timers;
    size_t n, cap;
    uint64_t seq;
} V;

uint64_t clock_loop_now(uv_loop_t *loop) { return V.on ? V.now : uv_now(loop); }

uint64_t clock_thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return uv_hrtime(); /* never on Linux */
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool clock_is_virtual(void) { return V.on; }

static vtimer *find(const uv_timer_t *t)
{
    for (size_t i = 0; i < V.n; i++)
        if (V.timers[i].t == t) return &V.timers[i];
    return NULL;
}

static void drop(vtimer *v) { *v = V.timers[--V.n]; }

void clock_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    if (!V.on) {
        uv_timer_start(t, cb, timeout, repeat);
        return;
    }
    vtimer *v = find(t);
    if (!v) {
        if (V.n == V.cap) V.timers = xrealloc(V.timers, (V.cap = V.cap ? 2 * V.cap : 8) * sizeof *V.timers);
        v = &V.timers[V.n++];
    }
    *v = (vtimer){t, cb, V.now + timeout, repeat, ++V.seq};
}

void clock_timer_stop(uv_timer_t *t)
{
    if (!V.on) {
        uv_timer_stop(t);
        return;
    }
    vtimer *v = find(t);
    if (v) drop(v);
}

void clock_virtual_start(uint64_t epoch_ms)
{
    V.on = true;
    V.now = epoch_ms;
    V.n = 0;
    now_ms_follow(&V.now);
}

void clock_virtual_stop(void)
{
    now_ms_follow(NULL);
    free(V.timers);
    memset(&V, 0, sizeof V);
}

static vtimer *earliest(void)
{
    vtimer *best = NULL;
    for (size_t i = 0; i < V.n; i++) {
        vtimer *v = &V.timers[i];
        if (!best || v->due < best->due || (v->due == best->due && v->seq < best->seq)) best = v;
    }
    return best;
}

bool clock_virtual_next(uint64_t *due)
{
    vtimer *v = earliest();
    if (v) *due = v->due;
    return v != NULL;
}

bool clock_virtual_fire(uint64_t until)
{
    vtimer *v = earliest();
    if (!v || v->due > until) return false;
    uv_timer_t *t = v->t;
    uv_timer_cb cb = v->cb;
    if (v->due > V.now) V.now = v->due;
    if (v->repeat) { /* as libuv: set again before the callback, which may stop it */
        v->due = V.now + v->repeat;
        v->seq = ++V.seq;
    } else {
        drop(v);
    }
    cb(t);
    return true;
}

void clock_virtual_set(uint64_t ms)
{
    if (ms > V.now) V.now = ms;
}
