/* alarm.c - the alarm loop.
 *
 * Alarms live in storage (table alarms: one per room, epoch ms), so they
 * survive restarts and unloaded rooms. One libuv timer is armed for the
 * earliest. When it fires, each due alarm is first moved LEASE_MS into the
 * future and committed, then its room is woken with that lease. If the
 * process dies during onAlarm, the lease makes it fire again (at least once,
 * as Durable Objects promise); when onAlarm ends, the alarm is cleared only
 * if it still holds the lease, so an alarm set by onAlarm itself stays.
 * With several workers the timer runs on worker 0, which wakes each room on
 * the worker that owns it.
 *
 * Cluster storage keeps the alarms in Redis (lp:alarms), where every node
 * sweeps for the due ones it may run: its rooms' and those of rooms no
 * live node owns, which it claims first (placement), so an alarm of a room
 * whose node died fires on another node. No lease is written: a wake-up
 * runs onAlarm only while the room's alarm is still the one due (runner.c),
 * and a node that dies during onAlarm leaves the alarm due in Redis, where
 * another node finds it once the dead node's lease is gone. */
#include "alarm.h"
#include "clock.h"
#include "cluster_storage.h"
#include "log.h"
#include "placement.h"
#include "registry.h"
#include "room.h"
#include "storage.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#define LEASE_MS 60000
#define BATCH 64
#define SWEEP_MS 500 /* cluster storage: how often Redis is asked at most */

typedef struct due {
    char *party, *room;
    int retries;
} due;

typedef struct due_list {
    due items[BATCH];
    int n;
} due_list;

static void collect(void *ud, const char *party_name, const char *room_id, int64_t at, int retries)
{
    due_list *l = ud;
    if (l->n < BATCH) l->items[l->n++] = (due){xstrdup(party_name), xstrdup(room_id), retries};
}

typedef struct wake {
    int64_t lease;
    int retries;
} wake;

/* On the room's owner: run its onAlarm (the lease is already stored). */
static void wake_room(room *r, void *arg, const char *err)
{
    wake *k = arg;
    if (r) room_alarm(r, k->lease, k->retries); /* else the registry logged why; the lease retries it */
    free(k);
}

static void on_sweep(uv_timer_t *t);

static void on_timer(uv_timer_t *t)
{
    worker *w = t->data;
    storage *s = w->store;
    int64_t now = (int64_t)now_ms(), lease = now + LEASE_MS;
    due_list l = {.n = 0};
    storage_due_alarms(s, now, BATCH, collect, &l);
    const char *err = NULL;
    for (int i = 0; i < l.n; i++)
        if (storage_set_alarm(s, l.items[i].party, l.items[i].room, lease, l.items[i].retries, &err) != 0)
            log_error("alarm of %s/%s: %s", l.items[i].party, l.items[i].room, err);
    storage_commit(s, NULL, NULL);
    for (int i = 0; i < l.n; i++) {
        due *d = &l.items[i];
        const party *p = config_party(w->cfg, d->party, strlen(d->party));
        if (p) {
            wake *k = xmalloc(sizeof *k);
            *k = (wake){lease, d->retries};
            registry_with_room(w, p, d->room, wake_room, k);
        } else { /* the party is gone from partykit.json */
            log_error("alarm of %s/%s cannot run: no such party", d->party, d->room);
            storage_delete_alarm(s, d->party, d->room, &err);
            storage_commit(s, NULL, NULL);
        }
        free(d->party);
        free(d->room);
    }
    alarm_reschedule(w);
}

/* ---- cluster storage: sweeping Redis ---- */

typedef struct sweep_wake {
    worker *w;
    const party *p;
    char *room;
    int64_t at;
    int retries;
} sweep_wake;

static void sweep_placed(void *arg, const place *pl)
{
    sweep_wake *x = arg;
    if (pl->kind == PLACE_HERE && !x->w->closed) {
        wake *k = xmalloc(sizeof *k);
        *k = (wake){x->at, x->retries};
        registry_with_room(x->w, x->p, x->room, wake_room, k);
    } /* else another node runs it, or nobody can now: the next sweep sees it again */
    free(x->room);
    free(x);
}

static bool sweeping; /* worker 0 only: one lp_alarm_due at a time */
static bool again;    /* an alarm changed while one was on its way: look once more */
static bool warned;   /* Redis could not be asked: said once per outage */

static void sweep_answered(void *arg, const cluster_alarm *list, int n, int64_t next, const char *err)
{
    worker *w = arg;
    sweeping = false;
    if (w->closed) return;
    if (err && !warned) log_warn("cluster: cannot read due alarms from redis: %s (retrying)", err);
    warned = err != NULL;
    for (int i = 0; i < n; i++) {
        const party *p = config_party(w->cfg, list[i].party, strlen(list[i].party));
        if (!p) {
            log_error("alarm of %s/%s cannot run: no such party", list[i].party, list[i].room);
            cluster_storage_drop_alarm(w->cstore, list[i].party, list[i].room, list[i].at);
            continue;
        }
        sweep_wake *x = xmalloc(sizeof *x);
        *x = (sweep_wake){w, p, xstrdup(list[i].room), list[i].at, list[i].retries};
        placement_resolve(w, p, list[i].room, sweep_placed, x);
    }
    /* Sooner when an alarm is due before the next regular sweep; at once
     * again when this sweep was full. */
    int64_t delay = SWEEP_MS - SWEEP_MS / 10 + (int64_t)(now_ms() % (SWEEP_MS / 5)); /* jitter: nodes spread out */
    if (next >= 0 && next - (int64_t)now_ms() < delay) delay = next - (int64_t)now_ms();
    if (n >= BATCH || again) delay = 0;
    again = false;
    clock_timer_start(&w->alarm_timer, on_sweep, delay > 0 ? (uint64_t)delay : 0, 0);
}

static void on_sweep(uv_timer_t *t)
{
    worker *w = t->data;
    if (sweeping || w->closed) return;
    sweeping = true;
    cluster_storage_due_alarms(w->cstore, (int64_t)now_ms(), BATCH, sweep_answered, w);
}

static void reschedule_job(worker *w, void *arg) { alarm_reschedule(w); }

void alarm_reschedule(worker *w)
{
    if (w->index != 0) { /* the one alarm timer lives on worker 0 */
        worker_post(w->all[0], reschedule_job, NULL);
        return;
    }
    if (w->cstore) { /* a commit changed an alarm and Redis has it: look now */
        if (sweeping) again = true;
        else clock_timer_start(&w->alarm_timer, on_sweep, 0, 0);
        return;
    }
    int64_t at;
    if (!storage_next_alarm(w->store, &at)) {
        clock_timer_stop(&w->alarm_timer);
        return;
    }
    int64_t delay = at - (int64_t)now_ms();
    clock_timer_start(&w->alarm_timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

void alarm_start(worker *w)
{
    uv_timer_init(w->loop, &w->alarm_timer);
    w->alarm_timer.data = w;
    alarm_reschedule(w);
}

void alarm_stop(worker *w)
{
    clock_timer_stop(&w->alarm_timer);
    uv_close((uv_handle_t *)&w->alarm_timer, NULL);
}
