/* cluster.h - this node's membership in a Redis-backed cluster: its lease
 * (self-fencing included), room ownership claims, and the cached view of the
 * other nodes (their internal addresses and room counts).
 *
 * Everything runs on one libuv loop and must be called on that loop's
 * thread, except cluster_lease_valid(), which any thread may call. The
 * design is /work/shared/notes/cluster-design.md (sections 4.1-4.3).
 *
 * Redis key layout (one Redis 7 primary; the functions are in
 * lua/redis/luaparty_functions.lua, loaded with FUNCTION LOAD REPLACE):
 *   lp:epoch                 INCR counter: one epoch per node incarnation
 *   lp:node:<id>             = <epoch>, PX lease_ttl_ms: the node's lease
 *   lp:nodes                 hash <id> -> "<epoch>|<internal addr>|<rooms>|<ts>"
 *                            (ts: Redis TIME in ms of the last renewal)
 *   lp:own:{<party>/<room>}  hash node, epoch, fence: the room's owner and
 *                            fencing counter; never deleted (release clears
 *                            node/epoch only), so fences stay monotonic
 *                            (cluster storage adds seq, vfence, alarm: see
 *                            cluster_storage.h)
 * Party and room names inside {...} are percent-encoded (redis_room_key),
 * so a Redis Cluster hash tag always spans exactly one room.
 *
 * Lease: registering takes a new epoch and sets lp:node:<id>. A renewal
 * (every ttl/5) extends the key only if it still holds this epoch; a node
 * whose key vanished never recreates it. The node's own deadline is the
 * monotonic send time of its last successful renewal + ttl - margin (1 s,
 * or ttl/5 when ttl < 5 s): Redis expires the key no earlier than arrival +
 * ttl, so the node stops serving before anyone else can claim its rooms.
 * When the deadline passes (or Redis says the lease is gone) the node is
 * fenced: on_fence runs once, claims fail, and the module keeps trying to
 * register again with a new epoch; on_rejoin reports it. */
#ifndef LP_CLUSTER_H
#define LP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "redis_link.h"

/* ---- membership ----------------------------------------------------------- */

typedef struct cluster_opts {
    const char *url;           /* see redis_url_parse */
    const char *node_id;       /* 1-63 printable ASCII bytes, no space or '|' */
    const char *internal_addr; /* host:port of this node's internal listener */
    uint64_t lease_ttl_ms;     /* 0: 5000; at least 200 */
    /* This node's own last epoch, if it knows it (0: none): a lease still
     * held by that epoch is its own, left by a crash, and is taken over
     * instead of refused as a collision. */
    uint64_t prev_epoch;
} cluster_opts;

typedef struct cluster cluster;

/* Counters for /metrics, read on the loop thread (cluster_counters_get). */
typedef struct cluster_counters {
    uint64_t renewals_ok, renewals_failed;   /* failed: error, timeout, lost */
    uint64_t claims_won, claims_lost, claims_errors;
    uint64_t claims_delegated;               /* load guard asked another node */
    uint64_t fences, rejoins, reconnects;
} cluster_counters;

/* Connects synchronously (2 s timeout for the connection and each command),
 * loads the `luaparty` function library, registers this node (new epoch,
 * lease key, lp:nodes entry) and then continues on an async connection on
 * `loop`. Returns NULL with a one-line *err (caller frees) on a bad URL or
 * option, unreachable Redis, refused password, a Redis without functions,
 * or a node id that is already live ("node id X is already live in the
 * cluster (epoch N)"); nothing stays registered then. A node restarted
 * after a crash therefore waits until its old lease expired (<= ttl). */
cluster *cluster_start(uv_loop_t *loop, const cluster_opts *o, char **err);

/* True while this node may serve its rooms: one compare of uv_hrtime()
 * against an atomic deadline, so any thread may call it (the output path);
 * false from cluster_stop on. Other threads must stop calling it before the
 * loop thread calls cluster_stop (the loop frees c afterwards). */
bool cluster_lease_valid(const cluster *c);
/* The current incarnation; while fenced, the lost one (until on_rejoin).
 * Any thread. */
uint64_t cluster_epoch(const cluster *c);
const char *cluster_node_id(const cluster *c);

/* on_fence runs on the loop, once per lost lease, when the deadline passed
 * without a renewal or Redis answered that the lease is gone: the node must
 * stop serving every room it owns (they belong to the old epoch). The
 * module then retries registration with a new epoch and calls on_rejoin. */
void cluster_on_fence(cluster *c, void (*cb)(void *arg), void *arg);
void cluster_on_rejoin(cluster *c, void (*cb)(void *arg, uint64_t epoch), void *arg);

/* This node's room count: published with the next renewal and used by the
 * load guard of cluster_claim. */
void cluster_set_load(cluster *c, size_t rooms);

/* PINNED: the room's data lives in node's local storage (cluster_pin) and
 * that node is down: no other node may serve it until it is back. */
typedef enum { CLAIM_MINE, CLAIM_OTHER, CLAIM_PINNED, CLAIM_ERROR } claim_result;

typedef struct claim_answer {
    claim_result result;
    uint64_t fence;      /* the room's fencing token (MINE and OTHER) */
    char node[64];       /* owner's node id (MINE: mine) */
    char addr[300];      /* owner's internal address */
    const char *error;   /* CLAIM_ERROR: why (static text) */
    bool fresh;          /* MINE: won by this claim (not mine already) */
    /* The version of the room's data in Redis (cluster storage): the fence
     * of the node that committed last and its commit count; 0, 0 if none. */
    uint64_t data_fence, data_seq;
} claim_answer;

/* Claims (party, room) with lp_claim: answers MINE (activate it here, with
 * `fence`), OTHER (forward to node/addr) or ERROR (fenced, Redis down or
 * slow: the caller answers 503). The callback runs later on the loop, never
 * inside this call. While Redis is being reconnected the claim waits (up to
 * its 2 s timeout). Load guard: when this node's rooms > 1.25 x the mean of
 * the live nodes and a less loaded node exists, the room is claimed for the
 * least loaded one (the function checks that node's lease) and the answer
 * is OTHER naming it. */
/* Neither this nor cluster_release may be called after cluster_stop. */
void cluster_claim(cluster *c, const char *party, const char *room,
                   void (*cb)(void *arg, const claim_answer *a), void *arg);

/* Fire and forget: clears the room's node/epoch if they are still mine. */
void cluster_release(cluster *c, const char *party, const char *room);
/* Fire and forget: the room (mine) wrote to this node's local storage, so it
 * is pinned here: only this node may claim it from now on. */
void cluster_pin(cluster *c, const char *party, const char *room);

/* Copies the internal address of a live node (as of the last renewal) into
 * out; false if the node is unknown or not live. */
bool cluster_node_addr(const cluster *c, const char *node_id, char *out, size_t cap);

const cluster_counters *cluster_counters_get(const cluster *c);

/* Stops renewing, deletes this incarnation's lease key and lp:nodes entry
 * (peers may claim its rooms at once) and closes the connection. No callback
 * of c runs after this call (pending claims are dropped silently). c is
 * freed once hiredis and libuv are done with it: the caller keeps running
 * the loop (uv_run to completion). Bounded: an unanswered unregister is
 * abandoned after 500 ms. */
void cluster_stop(cluster *c);

/* `luaparty cluster status --cluster URL`: synchronous; prints one line per
 * registered node (id, epoch, lease alive/expired with PTTL, internal addr,
 * rooms, seconds since the last renewal) to out, errors to stderr. Returns
 * the process exit code (0 ok, 1 error). */
int cluster_status_print(const char *url, FILE *out);

#endif
