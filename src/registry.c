/* registry.c - rooms by (party, id), and which worker owns them.
 *
 * Keys are "party\0id": the NUL cannot occur in a party name, so two
 * different pairs never share a key. Placement is a hash of the same key
 * modulo the worker count; calls into a room of another worker travel as
 * jobs (worker_post) and their answers come back the same way, so a room's
 * Lua state is only ever touched by its owner's thread. */
#include "registry.h"
#include "clock.h"
#include "placement.h"
#include "runner.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

worker *registry_owner(worker *w, const party *p, const char *id)
{
    if (w->nworkers < 2 || !id[0]) return w;
    uint32_t h = 2166136261u; /* FNV-1a over "party\0id" */
    for (const char *s = p->name;; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
        if (!*s) break;
    }
    for (const char *s = id; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    /* FNV's low bits depend only on the bytes' low bits (with 2 workers the
     * owner would be the parity of the odd bytes: "a", "c", "e" together):
     * mix every bit into every other before taking the modulo. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return w->all[h % (uint32_t)w->nworkers];
}

/* A room asks to be reset (its state may hold what storage does not, or
 * another node owns it now). */
static void reset_room(room *r, int code, const char *why) { registry_evict(r->owner, r, code, why); }

room *registry_resolve(worker *w, const party *p, const char *id, char **err)
{
    char key[1024];
    size_t klen = room_key(key, sizeof key, p->name, id);
    if (!klen) {
        *err = xstrdup("room id too long");
        return NULL;
    }
    room *r = dict_get(&w->rooms, key, klen);
    if (r) return r;
    if (w->closed) { /* shutting down: its rooms are gone and none may start */
        *err = xstrdup("the server is shutting down");
        return NULL;
    }
    if (!placement_may_start(p, id)) { /* cluster mode: released meanwhile */
        log_info("%s/%s: placed here before this node released it: refused, to be placed again", p->name, id);
        *err = xstrdup(REGISTRY_ROOM_MOVED);
        return NULL;
    }
    r = room_create(w, p, id, err);
    if (!r) {
        log_error("%s/%s: cannot start the room: %s", p->name, id, *err); /* here, for every caller */
        return NULL;
    }
    dict_upsert(&w->rooms, key, klen, NULL)->val = r;
    r->reset = reset_room;
    room_start(r);
    return r;
}

/* ---- calls into rooms of other workers ---- */

typedef struct visit {
    const party *p;
    char *id;
    room_visit fn;
    void *arg;
} visit;

static void visit_here(worker *w, const party *p, const char *id, room_visit fn, void *arg)
{
    char *err = NULL;
    room *r = registry_resolve(w, p, id, &err);
    fn(r, arg, r ? NULL : err);
    free(err);
}

static void visit_job(worker *w, void *arg)
{
    visit *v = arg;
    visit_here(w, v->p, v->id, v->fn, v->arg);
    free(v->id);
    free(v);
}

void registry_with_room(worker *w, const party *p, const char *id, room_visit fn, void *arg)
{
    worker *owner = registry_owner(w, p, id);
    if (owner == w) {
        visit_here(w, p, id, fn, arg);
        return;
    }
    visit *v = xmalloc(sizeof *v);
    *v = (visit){p, xstrdup(id), fn, arg};
    worker_post(owner, visit_job, v);
}

/* A request on its way to a room: the exchange the room answers lives on
 * the room's worker and sends the answer back to the asker's. */
typedef struct forward {
    exchange ex;           /* what the room answers (owner's thread) */
    worker *origin;
    exchange *asker;       /* the original exchange (origin's thread) */
    http_request *req;
    http_response *res;
    char *err;
} forward;

static void answer_job(worker *w, void *arg)
{
    forward *f = arg;
    (void)w;
    if (f->err) f->asker->fail(f->asker, f->err);
    else f->asker->respond(f->asker, f->res);
    free(f->err);
    free(f);
}

static void forward_respond(exchange *ex, http_response *res)
{
    forward *f = (forward *)ex;
    f->res = res;
    worker_post(f->origin, answer_job, f);
}

static void forward_visit(room *r, void *arg, const char *err)
{
    forward *f = arg;
    if (!r) {
        http_request_free(f->req);
        f->err = xstrdup(err);
        worker_post(f->origin, answer_job, f);
        return;
    }
    room_request(r, f->req, &f->ex);
}

void registry_request(worker *w, const party *p, const char *id, http_request *req, exchange *ex)
{
    if (registry_owner(w, p, id) == w) {
        char *err = NULL;
        room *r = registry_resolve(w, p, id, &err);
        if (r) {
            room_request(r, req, ex);
        } else {
            http_request_free(req);
            ex->fail(ex, err);
        }
        free(err);
        return;
    }
    forward *f = xcalloc(1, sizeof *f);
    f->ex.respond = forward_respond;
    f->origin = w;
    f->asker = ex;
    f->req = req;
    registry_with_room(w, p, id, forward_visit, f);
}

void registry_evict(worker *w, room *r, int code, const char *reason)
{
    char key[1024];
    size_t klen = room_key(key, sizeof key, r->party->name, r->id);
    if (dict_get(&w->rooms, key, klen) != r) return;
    dict_remove(&w->rooms, key, klen);
    log_debug("room %s/%s unloaded (%s)", r->party->name, r->id, reason);
    if (r->id[0]) placement_released(r->party, r->id); /* cluster mode: it may move now */
    /* Draining: its connections close (their onClose still runs); the room
     * is freed when the last reference (a connection) goes. */
    r->state = ROOM_DRAINING;
    room_close_all(r, code, reason);
    room_unref(r);
}

static void sweep(worker *w)
{
    uint64_t now = clock_loop_now(w->loop), idle = w->cfg->idle_timeout_ms;
    room **victims = NULL;
    size_t n = 0;
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) {
        room *r = e->val;
        if (room_idle(r) && now - r->last_active >= idle) {
            victims = xrealloc(victims, (n + 1) * sizeof *victims);
            victims[n++] = r;
        }
    }
    for (size_t i = 0; i < n; i++) registry_evict(w, victims[i], 1001, "idle");
    free(victims);
}

static void drop(void *v)
{
    room *r = v;
    room_shutdown(r);
    room_unref(r);
}

void registry_each(worker *w, void (*fn)(room *r, void *ud), void *ud)
{
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) fn(e->val, ud);
}

size_t registry_rooms(worker *w, const party *p, room ***list)
{
    size_t n = 0, cap = 0;
    dict_entry *e;
    if (list) *list = NULL;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) {
        room *r = e->val;
        if (p && r->party != p) continue;
        if (list) {
            if (n == cap) *list = xrealloc(*list, (cap = cap ? 2 * cap : 16) * sizeof **list);
            (*list)[n] = r;
        }
        n++;
    }
    return n;
}

void registry_evict_all(worker *w, int code, const char *reason)
{
    room **all;
    size_t n = registry_rooms(w, NULL, &all);
    for (size_t i = 0; i < n; i++) registry_evict(w, all[i], code, reason);
    free(all);
}

static void on_sweep(uv_timer_t *t) { sweep(t->data); }

/* One node: every room is here. */
static void place_here(worker *w, const party *p, const char *id, room_place_fn fn, void *arg)
{
    fn(arg, NULL, NULL, NULL, NULL);
}

static const room_calls calls = {registry_owner, registry_resolve, registry_with_room, registry_request, place_here};

void registry_start(worker *w)
{
    w->calls = &calls;
    uv_timer_init(w->loop, &w->sweeper);
    w->sweeper.data = w;
    uint64_t every = w->cfg->idle_timeout_ms / 4;
    if (every < 20) every = 20;
    if (every > 5000) every = 5000;
    clock_timer_start(&w->sweeper, on_sweep, every, every);
}

void registry_close(worker *w)
{
    dict_free(&w->rooms, drop);
    w->closed = true;
    if (w->sweeper.loop) {
        clock_timer_stop(&w->sweeper);
        uv_close((uv_handle_t *)&w->sweeper, NULL);
    }
}


bool registry_quiet(worker *w)
{
    if (w->runq_head || w->nextq_head) return false;
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) {
        room *r = e->val;
        if (room_busy(r)) return false;
    }
    return true;
}
