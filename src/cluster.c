/* cluster.c - this node's membership in a Redis-backed cluster (cluster.h):
 * registration, the lease with self-fencing and rejoin, room claims with
 * the load guard, and `luaparty cluster status`.
 *
 * A synchronous hiredis connection is used at start (so a bad URL, password
 * or node id collision fails before the server listens) and by the status
 * command. Everything else goes over one redis_link (redis_link.c: timeouts,
 * reconnection) on the loop of worker 0.
 *
 * Lifetime: c is freed once its two timers are closed; the link frees
 * itself, and none of its callbacks runs after cluster_stop. */
#include "cluster.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define CLAIM_TIMEOUT_MS 2000    /* lp_claim, lp_release, incl. waiting for a connection */
#define REGISTER_TIMEOUT_MS 2000 /* lp_register after a fence */
#define RENEW_TIMEOUT_MS 500     /* lp_renew (capped at the renew interval) */
#define UNREGISTER_TIMEOUT_MS 500
#define MS (UINT64_C(1000000))   /* ns per ms, for uv_hrtime() */

/* Tags of commands that a fence ends while they wait for a connection. */
enum { TAG_NONE, TAG_CLAIM, TAG_RELEASE };

typedef struct node_info {
    char id[64];
    uint64_t epoch;
    char addr[300];
    size_t rooms;
} node_info;

struct cluster {
    char id[64];
    char addr[300];
    uint64_t ttl_ms, ttl_ns, margin_ns, interval_ms, renew_timeout_ms;
    _Atomic uint64_t epoch;
    _Atomic uint64_t deadline_ns; /* monotonic; 0 while fenced */
    bool fenced;
    size_t rooms;

    redis_link *link;
    bool live_warned;        /* rejoin refused: said once */
    bool renew_warned;       /* renewal errors: said once until one succeeds */
    bool renew_inflight, register_inflight;

    uv_timer_t renew_timer, fence_timer;
    int open_handles;
    bool stopping;

    node_info *nodes; /* live nodes as of the last renewal */
    size_t nnodes, capnodes;

    void (*on_fence)(void *);
    void *fence_arg;
    void (*on_rejoin)(void *, uint64_t);
    void *rejoin_arg;
    cluster_counters counters;
};

/* A command of this module: its answer is void if the epoch changed. */
typedef struct call {
    cluster *c;
    uint64_t epoch;
    void (*cb)(void *arg, const claim_answer *a);
    void *arg;
    char target[64];     /* load guard: the node the claim was made for */
} call;

static call *call_new(cluster *c)
{
    call *k = xcalloc(1, sizeof *k);
    k->c = c;
    k->epoch = c->epoch;
    return k;
}

static void send_argv(cluster *c, const char **argv, uint64_t timeout_ms, int tag, redis_done_fn fn, void *arg)
{
    int argc = 0;
    while (argv[argc]) argc++;
    redis_link_call(c->link, argc, argv, NULL, timeout_ms, tag, fn, arg);
}

/* ---- lease ---------------------------------------------------------------- */

static void fence_cb(uv_timer_t *t);
static void renew_cb(uv_timer_t *t);

static void arm_fence_timer(cluster *c)
{
    uint64_t d = atomic_load(&c->deadline_ns), now = uv_hrtime();
    uint64_t ms = d > now ? (d - now + MS - 1) / MS : 0;
    uv_timer_start(&c->fence_timer, fence_cb, ms, 0);
}

/* A renewal (or registration) sent at sent_ns succeeded. */
static void lease_extend(cluster *c, uint64_t sent_ns)
{
    uint64_t d = sent_ns + c->ttl_ns - c->margin_ns;
    if (d > atomic_load(&c->deadline_ns)) atomic_store(&c->deadline_ns, d);
    arm_fence_timer(c);
}

/* The lease is lost (deadline passed, or Redis says it is gone): stop
 * everything of this epoch, tell the node, start re-registering. */
static void fence_now(cluster *c, const char *why)
{
    if (c->fenced || c->stopping) return;
    c->fenced = true;
    atomic_store(&c->deadline_ns, 0);
    uv_timer_stop(&c->fence_timer);
    c->counters.fences++;
    c->live_warned = false;
    log_warn("cluster: node %s fenced (epoch %llu): %s; its rooms stop, re-registering", c->id,
             (unsigned long long)c->epoch, why);
    /* Queued claims were made for the old epoch: answer them now. */
    redis_link_fail_queued(c->link, TAG_CLAIM, "node is fenced (lease lost)");
    redis_link_fail_queued(c->link, TAG_RELEASE, "node is fenced (lease lost)");
    if (c->on_fence) c->on_fence(c->fence_arg);
    if (!c->stopping) uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
}

static void fence_cb(uv_timer_t *t)
{
    cluster *c = t->data;
    if (c->fenced || c->stopping) return;
    if (uv_hrtime() < atomic_load(&c->deadline_ns)) {
        arm_fence_timer(c); /* loop time lags uv_hrtime: fired a little early */
        return;
    }
    fence_now(c, "no successful lease renewal before the deadline");
}

/* "epoch|addr|rooms|ts" from lp:nodes. */
static bool parse_node_entry(const char *v, node_info *n)
{
    char *end;
    errno = 0;
    unsigned long long e = strtoull(v, &end, 10);
    if (errno || end == v || *end != '|') return false;
    const char *a = end + 1, *bar = strchr(a, '|');
    if (!bar || (size_t)(bar - a) >= sizeof n->addr) return false;
    unsigned long long rooms = strtoull(bar + 1, &end, 10);
    if (end == bar + 1 || *end != '|') return false;
    n->epoch = e;
    memcpy(n->addr, a, (size_t)(bar - a));
    n->addr[bar - a] = 0;
    n->rooms = (size_t)rooms;
    return true;
}

/* The live nodes from a renewal's answer {1, id, entry, id, entry, ...}. */
static void nodes_update(cluster *c, const redisReply *r)
{
    c->nnodes = 0;
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *v = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || id->len >= 64) continue;
        if (c->nnodes == c->capnodes) {
            c->capnodes = c->capnodes ? c->capnodes * 2 : 8;
            c->nodes = xrealloc(c->nodes, c->capnodes * sizeof *c->nodes);
        }
        node_info *n = &c->nodes[c->nnodes];
        if (!parse_node_entry(v->str, n)) continue;
        memcpy(n->id, id->str, id->len);
        n->id[id->len] = 0;
        c->nnodes++;
    }
}

static void renew_done(void *arg, const redis_result *res)
{
    call *k = arg;
    cluster *c = k->c;
    const redisReply *reply = res->reply;
    uint64_t epoch = k->epoch;
    free(k);
    c->renew_inflight = false;
    if (epoch != c->epoch || c->fenced || c->stopping) return; /* an old incarnation's */
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        c->counters.renewals_failed++;
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            if (!c->renew_warned) log_warn("cluster: lease renewal failed: %s", reply->str);
            c->renew_warned = true;
            /* A Redis restarted without persistence lost the library (and
             * the lease, which the next renewal then reports). */
            if (strstr(reply->str, "Function not found")) redis_link_load_library(c->link);
        }
        return;
    }
    if (reply->element[0]->integer != 1) {
        c->counters.renewals_failed++;
        fence_now(c, "redis says the lease key is gone or taken");
        return;
    }
    c->counters.renewals_ok++;
    c->renew_warned = false;
    lease_extend(c, res->sent_ns);
    nodes_update(c, reply);
}

static void register_done(void *arg, const redis_result *res)
{
    call *k = arg;
    cluster *c = k->c;
    const redisReply *reply = res->reply;
    free(k);
    c->register_inflight = false;
    if (!c->fenced || c->stopping) return;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        atomic_store(&c->epoch, (uint64_t)reply->integer);
        c->fenced = false;
        lease_extend(c, res->sent_ns);
        c->counters.rejoins++;
        log_info("cluster: node %s rejoined as epoch %llu", c->id, (unsigned long long)c->epoch);
        uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms); /* refresh the node view now */
        if (c->on_rejoin) c->on_rejoin(c->rejoin_arg, c->epoch);
        return;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR && !c->live_warned) {
        c->live_warned = true;
        if (!strncmp(reply->str, "LPLIVE ", 7))
            log_error("cluster: node id %s is already live in the cluster (epoch %s); not rejoining until it is gone",
                      c->id, reply->str + 7);
        else
            log_error("cluster: re-registration failed: %s", reply->str);
    }
}

static void send_renew(cluster *c)
{
    char ep[24], ttl[24], rooms[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)c->ttl_ms);
    snprintf(rooms, sizeof rooms, "%zu", c->rooms);
    const char *argv[] = {"FCALL", "lp_renew", "0", c->id, ep, ttl, rooms, c->addr, NULL};
    c->renew_inflight = true;
    send_argv(c, argv, c->renew_timeout_ms, TAG_NONE, renew_done, call_new(c));
}

static void send_register(cluster *c)
{
    char ttl[24], prev[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)c->ttl_ms);
    snprintf(prev, sizeof prev, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", "lp_register", "0", c->id, c->addr, ttl, prev, NULL};
    c->register_inflight = true;
    send_argv(c, argv, REGISTER_TIMEOUT_MS, TAG_NONE, register_done, call_new(c));
}

/* Every ttl/5: renew the lease, or re-register while fenced. */
static void renew_cb(uv_timer_t *t)
{
    cluster *c = t->data;
    if (c->stopping || !redis_link_up(c->link)) return; /* the link reconnects */
    if (c->fenced) {
        if (!c->register_inflight) send_register(c);
    } else if (!c->renew_inflight) {
        send_renew(c);
    }
}

static void on_link_event(void *arg, redis_link_event ev)
{
    cluster *c = arg;
    if (c->stopping) return;
    if (ev == REDIS_LINK_BACK) c->counters.reconnects++;
    /* Renew (or re-register) on a new connection at once. */
    else uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
}

/* ---- claims --------------------------------------------------------------- */

static node_info *node_find(const cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].id, id)) return &c->nodes[i];
    return NULL;
}

/* Load guard: the least loaded live node when this one holds more than
 * 1.25 x the mean, else NULL (claim for myself). */
static node_info *load_guard_pick(cluster *c)
{
    double sum = (double)c->rooms;
    size_t n = 1;
    node_info *least = NULL;
    for (size_t i = 0; i < c->nnodes; i++) {
        node_info *x = &c->nodes[i];
        if (!strcmp(x->id, c->id)) continue; /* counted with my current load */
        sum += (double)x->rooms;
        n++;
        if (!least || x->rooms < least->rooms) least = x;
    }
    if (!least || least->rooms >= c->rooms) return NULL;
    return (double)c->rooms > 1.25 * (sum / (double)n) ? least : NULL;
}

static bool int_at(const redisReply *r, size_t i) { return r->element[i]->type == REDIS_REPLY_INTEGER; }
static bool str_at(const redisReply *r, size_t i) { return r->element[i]->type == REDIS_REPLY_STRING; }

/* lp_claim's answer {code, fence, node, addr, data fence, data seq} into a. */
static void claim_parse(cluster *c, const redisReply *reply, claim_answer *a)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 6 || !int_at(reply, 0) ||
        !int_at(reply, 1) || !str_at(reply, 2) || !str_at(reply, 3) || !int_at(reply, 4) || !int_at(reply, 5)) {
        if (reply && reply->type == REDIS_REPLY_ERROR) log_warn("cluster: lp_claim failed: %s", reply->str);
        a->error = "redis error during the claim";
        return;
    }
    long long code = reply->element[0]->integer;
    a->fence = (uint64_t)reply->element[1]->integer;
    str_copy(a->node, sizeof a->node, reply->element[2]->str);
    str_copy(a->addr, sizeof a->addr, reply->element[3]->str);
    a->data_fence = (uint64_t)reply->element[4]->integer;
    a->data_seq = (uint64_t)reply->element[5]->integer;
    if (code == -2) {
        a->result = CLAIM_PINNED;
    } else if (code < 0) {
        a->error = "node is fenced (lease lost)";
        fence_now(c, "redis says the lease is gone (claim refused)");
    } else {
        a->result = code >= 1 ? CLAIM_MINE : CLAIM_OTHER;
        a->fresh = code == 1;
    }
}

static void claim_done(void *arg, const redis_result *res)
{
    call *k = arg;
    cluster *c = k->c;
    if (c->stopping) { /* cluster_stop: nobody waits for it any more */
        free(k);
        return;
    }
    claim_answer a;
    memset(&a, 0, sizeof a);
    a.result = CLAIM_ERROR;
    if (res->why) a.error = res->why;
    else if (k->epoch != c->epoch || c->fenced) a.error = "node is fenced (lease lost)";
    else claim_parse(c, res->reply, &a);
    if (a.result == CLAIM_MINE) c->counters.claims_won += a.fresh; /* a room newly won, not one kept */
    else if (a.result == CLAIM_OTHER || a.result == CLAIM_PINNED) c->counters.claims_lost++;
    else c->counters.claims_errors++;
    if (a.result == CLAIM_OTHER && k->target[0] && !strcmp(a.node, k->target)) {
        /* Count the room now, so a burst of claims spreads instead of all
         * going to the node that was least loaded at the last renewal. */
        node_info *n = node_find(c, k->target);
        if (n) n->rooms++;
        c->counters.claims_delegated++;
    }
    k->cb(k->arg, &a);
    free(k);
}

void cluster_claim(cluster *c, const char *party, const char *room, void (*cb)(void *arg, const claim_answer *a),
                   void *arg)
{
    buf key;
    buf_init(&key);
    redis_room_key(&key, REDIS_OWN_PREFIX, party, room);
    char ep[24], tep[24] = "";
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    node_info *t = c->fenced ? NULL : load_guard_pick(c);
    if (t) snprintf(tep, sizeof tep, "%llu", (unsigned long long)t->epoch);
    const char *argv[] = {"FCALL", "lp_claim", "1", key.data, c->id, ep, t ? t->id : "", tep, NULL};
    call *k = call_new(c);
    k->cb = cb;
    k->arg = arg;
    if (t) str_copy(k->target, sizeof k->target, t->id);
    if (c->fenced) redis_link_answer_later(c->link, claim_done, k, "node is fenced (lease lost)");
    else send_argv(c, argv, CLAIM_TIMEOUT_MS, TAG_CLAIM, claim_done, k);
    buf_free(&key);
}

static void room_fcall_done(void *arg, const redis_result *res)
{
    const char *fn = arg;
    if (res->reply && res->reply->type == REDIS_REPLY_ERROR) log_warn("cluster: %s failed: %s", fn, res->reply->str);
}

/* lp_release or lp_pin: one room, mine, fire and forget. */
static void room_fcall(cluster *c, const char *fn, const char *party, const char *room)
{
    if (c->fenced || c->stopping) return; /* nothing is mine under a lost epoch */
    buf key;
    buf_init(&key);
    redis_room_key(&key, REDIS_OWN_PREFIX, party, room);
    char ep[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", fn, "1", key.data, c->id, ep, NULL};
    send_argv(c, argv, CLAIM_TIMEOUT_MS, TAG_RELEASE, room_fcall_done, (void *)fn);
    buf_free(&key);
}

void cluster_release(cluster *c, const char *party, const char *room) { room_fcall(c, "lp_release", party, room); }

void cluster_pin(cluster *c, const char *party, const char *room) { room_fcall(c, "lp_pin", party, room); }

/* ---- start, stop ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    cluster *c = h->data;
    if (--c->open_handles > 0) return;
    free(c->nodes);
    free(c);
}

static bool bad_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return true;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '|') return true;
    return false;
}

/* lp_register on the synchronous connection: the epoch, or 0 with *err. */
static uint64_t register_sync(redisContext *rc, const redis_url *u, const cluster_opts *o, uint64_t ttl,
                              uint64_t prev, char **err)
{
    char ttls[24], prevs[24], where[400];
    snprintf(ttls, sizeof ttls, "%llu", (unsigned long long)ttl);
    snprintf(prevs, sizeof prevs, "%llu", (unsigned long long)prev);
    redis_url_where(u, where, sizeof where);
    redisReply *r = redis_sync_cmd(rc, u, "lp_register", true, err, "FCALL", "lp_register", "0", o->node_id,
                                   o->internal_addr, ttls, prevs, NULL);
    if (!r) return 0;
    uint64_t epoch = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[600];
        if (!strncmp(r->str, "LPLIVE ", 7))
            snprintf(msg, sizeof msg, "node id %s is already live in the cluster (epoch %s)", o->node_id, r->str + 7);
        else snprintf(msg, sizeof msg, "redis at %s: lp_register failed: %s", where, r->str);
        *err = xstrdup(msg);
    } else if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "redis at %s: lp_register answered something other than an epoch", where);
        *err = xstrdup(msg);
    } else {
        epoch = (uint64_t)r->integer;
    }
    freeReplyObject(r);
    return epoch;
}

cluster *cluster_start(uv_loop_t *loop, const cluster_opts *o, char **err)
{
    redis_url u;
    if (redis_url_parse(o->url, &u, err) < 0) return NULL;
    if (!o->node_id || bad_token(o->node_id, 63)) {
        *err = xstrdup("cluster: node id must be 1-63 printable bytes without spaces or '|'");
        return NULL;
    }
    if (!o->internal_addr || bad_token(o->internal_addr, 299)) {
        *err = xstrdup("cluster: internal address must be HOST:PORT (1-299 bytes, no spaces or '|')");
        return NULL;
    }
    uint64_t ttl = o->lease_ttl_ms ? o->lease_ttl_ms : 5000;
    if (ttl < 200 || ttl > 3600000) {
        *err = xstrdup("cluster: lease ttl must be 200 ms - 1 h");
        return NULL;
    }
    redisContext *rc = redis_sync_connect(&u, err);
    if (!rc) return NULL;
    if (redis_sync_load_library(rc, &u, err) < 0) {
        redisFree(rc);
        return NULL;
    }
    uint64_t sent = uv_hrtime();
    uint64_t epoch = register_sync(rc, &u, o, ttl, o->prev_epoch, err);
    redisFree(rc);
    if (!epoch) return NULL;

    cluster *c = xcalloc(1, sizeof *c);
    str_copy(c->id, sizeof c->id, o->node_id);
    str_copy(c->addr, sizeof c->addr, o->internal_addr);
    c->ttl_ms = ttl;
    c->ttl_ns = ttl * MS;
    c->margin_ns = (ttl < 5000 ? ttl / 5 : 1000) * MS;
    c->interval_ms = ttl / 5;
    c->renew_timeout_ms = c->interval_ms < RENEW_TIMEOUT_MS ? c->interval_ms : RENEW_TIMEOUT_MS;
    atomic_init(&c->epoch, epoch);
    atomic_init(&c->deadline_ns, sent + c->ttl_ns - c->margin_ns);

    uv_timer_init(loop, &c->renew_timer);
    uv_timer_init(loop, &c->fence_timer);
    c->renew_timer.data = c->fence_timer.data = c;
    c->open_handles = 2;
    /* The library is loaded already; the link loads it again on every
     * reconnection (a Redis restarted without persistence lost it). */
    redis_link_opts lo = {.url = &u, .name = "cluster", .load_library = true, .on_event = on_link_event,
                          .event_arg = c};
    c->link = redis_link_new(loop, &lo);
    /* First renewal at once: it fills the node view for the load guard. */
    uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
    arm_fence_timer(c);
    char where[400];
    redis_url_where(&u, where, sizeof where);
    log_info("cluster: node %s joined as epoch %llu (redis at %s, lease %llu ms)", c->id,
             (unsigned long long)epoch, where, (unsigned long long)ttl);
    return c;
}

void cluster_stop(cluster *c)
{
    if (!c || c->stopping) return;
    c->stopping = true;
    c->on_fence = NULL;
    c->on_rejoin = NULL;
    atomic_store(&c->deadline_ns, 0);
    uv_close((uv_handle_t *)&c->renew_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->fence_timer, on_handle_closed);
    log_info("cluster: node %s (epoch %llu) leaves the cluster", c->id, (unsigned long long)c->epoch);
    /* Even a fenced node deletes its old key if it is still there: peers
     * can then claim its rooms at once instead of after the TTL. */
    char ep[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", "lp_unregister", "0", c->id, ep, NULL};
    send_argv(c, argv, UNREGISTER_TIMEOUT_MS, TAG_NONE, NULL, NULL);
    redis_link_close(c->link); /* sends what is queued and sent, then ends */
    c->link = NULL;
}

/* ---- small accessors ------------------------------------------------------ */

bool cluster_lease_valid(const cluster *c)
{
    return uv_hrtime() < atomic_load_explicit(&((cluster *)c)->deadline_ns, memory_order_acquire);
}

uint64_t cluster_epoch(const cluster *c) { return atomic_load(&((cluster *)c)->epoch); }
const char *cluster_node_id(const cluster *c) { return c->id; }
const cluster_counters *cluster_counters_get(const cluster *c) { return &c->counters; }
void cluster_set_load(cluster *c, size_t rooms) { c->rooms = rooms; }

void cluster_on_fence(cluster *c, void (*cb)(void *arg), void *arg)
{
    c->on_fence = cb;
    c->fence_arg = arg;
}

void cluster_on_rejoin(cluster *c, void (*cb)(void *arg, uint64_t epoch), void *arg)
{
    c->on_rejoin = cb;
    c->rejoin_arg = arg;
}

bool cluster_node_addr(const cluster *c, const char *node_id, char *out, size_t cap)
{
    if (!strcmp(node_id, c->id)) {
        if (c->fenced) return false;
        str_copy(out, cap, c->addr);
        return true;
    }
    const node_info *n = node_find(c, node_id);
    if (!n) return false;
    str_copy(out, cap, n->addr);
    return true;
}

/* ---- luaparty cluster status ---------------------------------------------- */

typedef struct status_row {
    char id[64];
    node_info n;
    uint64_t ts;
} status_row;

static int by_id(const void *a, const void *b) { return strcmp(((const status_row *)a)->id, ((const status_row *)b)->id); }

int cluster_status_print(const char *url, FILE *out)
{
    redis_url u;
    char *err = NULL, where[400];
    if (redis_url_parse(url, &u, &err) < 0) goto fail;
    redis_url_where(&u, where, sizeof where);
    redisContext *rc = redis_sync_connect(&u, &err);
    if (!rc) goto fail;
    redisReply *now = redis_sync_cmd(rc, &u, "TIME", false, &err, "TIME", NULL);
    redisReply *all = now ? redis_sync_cmd(rc, &u, "HGETALL lp:nodes", false, &err, "HGETALL", "lp:nodes", NULL) : NULL;
    if (!all) {
        if (now) freeReplyObject(now);
        redisFree(rc);
        goto fail;
    }
    uint64_t now_ms = 0;
    if (now->type == REDIS_REPLY_ARRAY && now->elements == 2)
        now_ms = strtoull(now->element[0]->str, NULL, 10) * 1000 + strtoull(now->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(now);

    size_t nrows = 0;
    status_row *rows = xcalloc(all->elements / 2 + 1, sizeof *rows);
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        status_row *row = &rows[nrows];
        const redisReply *id = all->element[i], *v = all->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || id->len >= sizeof row->id) continue;
        if (!parse_node_entry(v->str, &row->n)) continue;
        const char *ts = strrchr(v->str, '|');
        row->ts = ts ? strtoull(ts + 1, NULL, 10) : 0;
        str_copy(row->id, sizeof row->id, id->str);
        nrows++;
    }
    freeReplyObject(all);
    qsort(rows, nrows, sizeof *rows, by_id);

    int rc_exit = 0;
    for (size_t i = 0; i < nrows; i++) {
        status_row *row = &rows[i];
        char key[80];
        snprintf(key, sizeof key, "lp:node:%s", row->id);
        redisReply *held = redis_sync_cmd(rc, &u, "GET", false, &err, "GET", key, NULL);
        redisReply *pttl = held ? redis_sync_cmd(rc, &u, "PTTL", false, &err, "PTTL", key, NULL) : NULL;
        if (!pttl) {
            if (held) freeReplyObject(held);
            rc_exit = 1;
            break;
        }
        char lease[64];
        uint64_t held_epoch = held->type == REDIS_REPLY_STRING ? strtoull(held->str, NULL, 10) : 0;
        if (held_epoch == row->n.epoch && pttl->type == REDIS_REPLY_INTEGER && pttl->integer > 0)
            snprintf(lease, sizeof lease, "alive ttl=%lldms", pttl->integer);
        else if (held_epoch)
            snprintf(lease, sizeof lease, "other(epoch %llu)", (unsigned long long)held_epoch);
        else
            snprintf(lease, sizeof lease, "expired");
        double age = now_ms >= row->ts ? (double)(now_ms - row->ts) / 1000.0 : 0.0;
        fprintf(out, "%s epoch=%llu lease=%s addr=%s rooms=%zu renewed=%.1fs ago\n", row->id,
                (unsigned long long)row->n.epoch, lease, row->n.addr, row->n.rooms, age);
        freeReplyObject(held);
        freeReplyObject(pttl);
    }
    if (!nrows) fprintf(stderr, "cluster status: no nodes registered in redis at %s\n", where);
    free(rows);
    redisFree(rc);
    if (rc_exit) goto fail;
    return 0;
fail:
    fprintf(stderr, "cluster status: %s\n", err ? err : "failed");
    free(err);
    return 1;
}
