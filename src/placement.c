/* placement.c - the one place that decides which node serves a room.
 *
 * One node: every room is here, answered at once, nothing is stored.
 *
 * Cluster mode: answers are cached per node (all workers share the cache,
 * under a mutex: a hit costs a lock and a hash lookup). A miss claims the
 * room in Redis (cluster_claim, first touch wins) on worker 0, whose loop
 * runs the cluster connection, and the answer travels back to the asking
 * worker. Cached answers are dropped when they prove wrong (a 421 or an
 * unreachable owner: placement_forget), when a room of this node is
 * unloaded (its ownership is released in Redis too, so it may move), and
 * all of them when the node loses its lease.
 *
 * An unloaded room's entry is marked releasing (a miss from then on) and
 * the release goes through worker 0's queue, so a claim made after the
 * unload reaches Redis after the release. A placement answer given before
 * the unload may still start the room again on its worker: starting checks
 * the entry (placement_may_start), and calls the release off if it was not
 * sent yet, or refuses if it was. Either way Redis never says "free" of a
 * room this node runs.
 *
 * With cluster storage, a room won here is answered HERE only once the
 * node's copy of its data is current (cluster_storage_activate): the room
 * then starts from it as on one node. */
#include "placement.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct owner_entry {
    bool here;
    bool releasing;    /* here, unloaded, its release on worker 0's queue */
    uint64_t at;       /* uv_hrtime when learnt (another node's entry is asked again after stale_ns) */
    char node[64];
    char addr[300];
} owner_entry;

/* A claim on its way: made on worker 0, answered on `origin`. */
typedef struct claim_ctx {
    worker *origin;
    char *party, *id;
    place_fn fn;
    void *arg;
    place answer;
    struct claim_ctx *prev, *next; /* pending on worker 0 */
    struct claim_ctx *also;        /* more askers for the same room, answered with this one */
    uint64_t generation;           /* the node's incarnation when the claim was made */
} claim_ctx;

static struct {
    cluster *c;               /* NULL: one node */
    cluster_storage *cs;      /* worker 0's: room data in Redis (NULL: local, pinned) */
    worker **workers;
    int nworkers;
    pthread_mutex_t lock;     /* the cache */
    dict cache;               /* "party\0id" -> owner_entry* */
    size_t here;              /* rooms this node owns (worker 0 only) */
    uint64_t stale_ns;        /* half a lease: how long another node's ownership is believed */
    claim_ctx *pending;       /* worker 0 only */
    bool stopped;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Bumped at every lost lease: a room made before it belongs to a lost epoch
 * and stays silent even once the node has registered again. */
static atomic_uint_fast64_t generation;

uint64_t placement_generation(void) { return atomic_load_explicit(&generation, memory_order_acquire); }

void placement_start(cluster *c, cluster_storage *cs, worker **workers, int n, uint64_t lease_ttl_ms)
{
    P.c = c;
    P.cs = cs;
    P.stopped = false;
    P.here = 0;
    P.stale_ns = lease_ttl_ms * 1000000ull / 2;
    P.workers = workers;
    P.nworkers = n;
    dict_init(&P.cache);
}

bool placement_clustered(void) { return P.c != NULL; }

bool placement_pins_rooms(void) { return P.c && !P.cs; }

const char *placement_node_id(void) { return P.c ? cluster_node_id(P.c) : NULL; }

bool placement_lease_valid(void) { return !P.c || cluster_lease_valid(P.c); }

const cluster_counters *placement_counters(void) { return cluster_counters_get(P.c); }

size_t placement_rooms_here(void) { return P.here; }

static void drop_all(void)
{
    pthread_mutex_lock(&P.lock);
    dict_free(&P.cache, free);
    dict_init(&P.cache);
    pthread_mutex_unlock(&P.lock);
}

void placement_fenced(void)
{
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    drop_all();
    P.here = 0;
}

/* ---- the cache ---- */

typedef struct cache_key {
    char s[1024];
    size_t len; /* 0: too long, never cached */
} cache_key;

/* Locks the cache and finds (pname, id)'s entry (NULL if none); unlock with
 * cache_unlock. k keeps the key for remove_entry. */
static owner_entry *lock_entry(const char *pname, const char *id, cache_key *k)
{
    k->len = room_key(k->s, sizeof k->s, pname, id);
    pthread_mutex_lock(&P.lock);
    return k->len ? dict_get(&P.cache, k->s, k->len) : NULL;
}

static void cache_unlock(void) { pthread_mutex_unlock(&P.lock); }

/* Under the lock. */
static void remove_entry(const cache_key *k, owner_entry *e)
{
    dict_remove(&P.cache, k->s, k->len);
    free(e);
}

static bool cache_get(const party *p, const char *id, place *out)
{
    cache_key k;
    owner_entry *e = lock_entry(p->name, id, &k);
    /* Another node's ownership is asked again after half a lease, so a node
     * that hangs (SIGSTOP, a dead link) loses its rooms to a claim once its
     * lease is gone, instead of being forwarded to for ever. */
    if (e && !e->here && uv_hrtime() - e->at > P.stale_ns) e = NULL;
    if (e && e->releasing) e = NULL; /* claimed again: after the release, in worker 0's order */
    if (e) {
        out->kind = e->here ? PLACE_HERE : PLACE_THERE;
        memcpy(out->node, e->node, sizeof out->node);
        memcpy(out->addr, e->addr, sizeof out->addr);
    }
    cache_unlock();
    return e != NULL;
}

/* Returns true if the entry is new (a room newly owned counts once). */
static bool cache_put(const char *pname, const char *id, const place *pl)
{
    char key[1024];
    size_t klen = room_key(key, sizeof key, pname, id);
    if (!klen) return false;
    pthread_mutex_lock(&P.lock);
    dict_entry *slot = dict_upsert(&P.cache, key, klen, NULL);
    bool fresh = slot->val == NULL;
    owner_entry *e = slot->val ? slot->val : xcalloc(1, sizeof *e);
    e->here = pl->kind == PLACE_HERE;
    e->releasing = false;
    e->at = uv_hrtime();
    memcpy(e->node, pl->node, sizeof e->node);
    memcpy(e->addr, pl->addr, sizeof e->addr);
    slot->val = e;
    pthread_mutex_unlock(&P.lock);
    return fresh;
}

/* Drops the entry if it names another node. */
static void cache_drop_other(const char *pname, const char *id)
{
    cache_key k;
    owner_entry *e = lock_entry(pname, id, &k);
    if (e && !e->here) remove_entry(&k, e);
    cache_unlock();
}

/* ---- claims (worker 0) ---- */

static void answer_job(worker *w, void *arg)
{
    claim_ctx *x = arg;
    (void)w;
    x->fn(x->arg, &x->answer);
    free(x->party);
    free(x->id);
    free(x);
}

/* Posts x's answer to x and to every asker that joined it. */
static void answer_all(claim_ctx *x)
{
    while (x) {
        claim_ctx *next = x->also;
        if (next) next->answer = x->answer;
        worker_post(x->origin, answer_job, x);
        x = next;
    }
}

static void unlink_pending(claim_ctx *x)
{
    if (x->prev) x->prev->next = x->next;
    else P.pending = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* The answer is known: cache it, tell every asker. */
static void settle(claim_ctx *x)
{
    unlink_pending(x);
    place *pl = &x->answer;
    if (pl->kind != PLACE_NONE && cache_put(x->party, x->id, pl) && pl->kind == PLACE_HERE) {
        P.here++;
        cluster_set_load(P.c, P.here);
    }
    answer_all(x);
}

/* Cluster storage: the node's copy of a room won here is current (or could
 * not be loaded). */
static void activated(void *arg, const char *err)
{
    claim_ctx *x = arg;
    if (P.stopped) return; /* placement_stop answered it */
    if (err) x->answer = (place){.kind = PLACE_NONE, .why = "cannot load the room's data from redis"};
    else if (x->generation != placement_generation()) /* fenced while loading: the claim is void */
        x->answer = (place){.kind = PLACE_NONE, .why = "this node lost its cluster lease"};
    settle(x);
}

static void claimed(void *arg, const claim_answer *a)
{
    claim_ctx *x = arg;
    place *pl = &x->answer;
    switch (a->result) {
    case CLAIM_MINE:
        pl->kind = PLACE_HERE;
        str_copy(pl->node, sizeof pl->node, a->node);
        if (P.cs) { /* stays pending until the data is here: askers join it */
            cluster_storage_activate(P.cs, x->party, x->id, a->fence, a->data_fence, a->data_seq, activated, x);
            return;
        }
        break;
    case CLAIM_OTHER:
        pl->kind = PLACE_THERE;
        str_copy(pl->node, sizeof pl->node, a->node);
        str_copy(pl->addr, sizeof pl->addr, a->addr);
        break;
    case CLAIM_PINNED:
        pl->kind = PLACE_NONE;
        pl->why = "the room's data is in the local storage of a node that is down (it comes back with that node)";
        break;
    case CLAIM_ERROR:
        pl->kind = PLACE_NONE;
        pl->why = a->error ? a->error : "the claim failed";
        break;
    }
    settle(x);
}

/* The claim on its way for (pname, id), if any. */
static claim_ctx *pending_claim(const char *pname, const char *id)
{
    for (claim_ctx *y = P.pending; y; y = y->next)
        if (!strcmp(y->party, pname) && !strcmp(y->id, id)) return y;
    return NULL;
}

static void claim_job(worker *w, void *arg)
{
    claim_ctx *x = arg;
    (void)w;
    if (P.stopped) {
        x->answer = (place){.kind = PLACE_NONE, .why = "the node is shutting down"};
        worker_post(x->origin, answer_job, x);
        return;
    }
    /* A burst of first requests for one room makes one claim. */
    claim_ctx *y = pending_claim(x->party, x->id);
    if (y) {
        x->also = y->also;
        y->also = x;
        return;
    }
    x->next = P.pending;
    if (P.pending) P.pending->prev = x;
    P.pending = x;
    x->generation = placement_generation();
    cluster_claim(P.c, x->party, x->id, claimed, x);
}

void placement_resolve(worker *w, const party *p, const char *id, place_fn fn, void *arg)
{
    place pl = {.kind = PLACE_HERE};
    if (!P.c || cache_get(p, id, &pl)) {
        /* past its lease a node serves nothing and sends nothing elsewhere
         * either: what it does now may already be another owner's */
        if (P.c && !placement_lease_valid())
            pl = (place){.kind = PLACE_NONE, .why = "this node lost its cluster lease"};
        fn(arg, &pl);
        return;
    }
    claim_ctx *x = xcalloc(1, sizeof *x);
    x->origin = w;
    x->party = xstrdup(p->name);
    x->id = xstrdup(id);
    x->fn = fn;
    x->arg = arg;
    worker_post(P.workers[0], claim_job, x);
}

void placement_forget(const party *p, const char *id)
{
    /* Only another node's entry proved wrong. By the time a forward to the
     * old owner fails, this node may own the room, and its room is live:
     * dropping that would claim it again while it runs (and load its data
     * over its own copy). */
    if (P.c) cache_drop_other(p->name, id);
}

typedef struct room_job {
    char *party, *id;
    bool pin;
} room_job;

/* An unloaded room's release, on worker 0: dropped if the room started
 * here again meanwhile (its entry is no longer releasing) or is being
 * claimed (the claim went to Redis first). The entry goes with it, under
 * the lock placement_may_start takes: after this the room must be claimed. */
static void release(const char *pname, const char *id)
{
    cache_key k;
    owner_entry *e = lock_entry(pname, id, &k);
    bool send = k.len && (e ? e->here && e->releasing : !pending_claim(pname, id));
    if (send && e) {
        remove_entry(&k, e);
        if (P.here) P.here--;
    }
    cache_unlock();
    if (!send) return;
    cluster_release(P.c, pname, id);
    cluster_set_load(P.c, P.here);
}

static void room_job_run(worker *w, void *arg)
{
    room_job *j = arg;
    (void)w;
    if (!P.stopped) {
        if (j->pin) cluster_pin(P.c, j->party, j->id);
        else release(j->party, j->id);
    }
    free(j->party);
    free(j->id);
    free(j);
}

static void post_room_job(const party *p, const char *id, bool pin)
{
    if (!P.c || P.stopped) return;
    room_job *j = xmalloc(sizeof *j);
    *j = (room_job){xstrdup(p->name), xstrdup(id), pin};
    worker_post(P.workers[0], room_job_run, j);
}

void placement_released(const party *p, const char *id)
{
    if (!P.c || P.stopped) return;
    /* Marked and posted under the lock: a claim that misses the entry from
     * now on is posted after the release. */
    cache_key k;
    owner_entry *e = lock_entry(p->name, id, &k);
    if (e && e->here) e->releasing = true;
    post_room_job(p, id, false);
    cache_unlock();
}

bool placement_may_start(const party *p, const char *id)
{
    if (!P.c || !id[0]) return true;
    cache_key k;
    owner_entry *e = lock_entry(p->name, id, &k);
    bool ok = e && e->here;
    if (ok) e->releasing = false; /* the release, not sent yet, is off */
    cache_unlock();
    return ok;
}

void placement_pinned(const party *p, const char *id) { post_room_job(p, id, true); }

void placement_stop(void)
{
    if (!P.c) return;
    P.stopped = true;
    /* cluster_stop drops claims in flight silently: answer them here */
    while (P.pending) {
        claim_ctx *x = P.pending;
        unlink_pending(x);
        x->answer = (place){.kind = PLACE_NONE, .why = "the node is shutting down"};
        answer_all(x);
    }
    drop_all();
    dict_free(&P.cache, free);
    P.c = NULL; /* cluster_stop comes next: from now on, as on one node */
    P.cs = NULL;
}
