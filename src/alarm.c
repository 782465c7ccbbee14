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
 * the worker that owns it. */
#include "alarm.h"
#include "clock.h"
#include "log.h"
#include "registry.h"
#include "room.h"
#include "storage.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#define LEASE_MS 60000
#define BATCH 64

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

static void reschedule_job(worker *w, void *arg) { alarm_reschedule(w); }

void alarm_reschedule(worker *w)
{
    if (w->index != 0) { /* the one alarm timer lives on worker 0 */
        worker_post(w->all[0], reschedule_job, NULL);
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
