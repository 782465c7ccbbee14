/* placement.h - which node serves a room (placement.c). On one node every
 * room is here and nothing is asked; in cluster mode (--cluster) the answer
 * comes from the node's cache or a claim in Redis (cluster.c). */
#ifndef LP_PLACEMENT_H
#define LP_PLACEMENT_H

#include "cluster.h"
#include "cluster_storage.h"
#include "config.h"
#include "worker.h"

typedef enum {
    PLACE_HERE,   /* this node owns it: serve it */
    PLACE_THERE,  /* another node owns it: forward to addr */
    PLACE_NONE,   /* nobody can serve it now (why): answer 503 */
} place_kind;

typedef struct place {
    place_kind kind;
    char node[64];      /* THERE: the owner's node id */
    char addr[300];     /* THERE: its internal host:port */
    const char *why;    /* NONE: static text */
} place;

typedef void (*place_fn)(void *arg, const place *pl);

/* Cluster mode for the process: c lives on workers[0]'s loop, and so does
 * cs (room data in Redis; NULL: local storage, rooms pinned to the node
 * that wrote). Before any worker thread runs. */
void placement_start(cluster *c, cluster_storage *cs, worker **workers, int n, uint64_t lease_ttl_ms);
/* Shutdown, on worker 0's thread, before cluster_stop: later answers are dropped. */
void placement_stop(void);
bool placement_clustered(void);
/* Cluster mode with local storage: a room that wrote stays on its node. */
bool placement_pins_rooms(void);
/* This node's id (NULL on one node). */
const char *placement_node_id(void);

/* Where room (party, id) is served; fn runs on w's thread, possibly at once
 * (a cached answer). */
void placement_resolve(worker *w, const party *p, const char *id, place_fn fn, void *arg);
/* The cached answer naming another node is wrong (a 421, an unreachable
 * node): ask again next time. An entry saying "here" stays. */
void placement_forget(const party *p, const char *id);
/* A room of this node was unloaded: it is free for any node again, unless
 * it starts here again before worker 0 sends the release (see
 * placement_may_start). On the room's worker. */
void placement_released(const party *p, const char *id);
/* Whether the room's worker may start (party, id) now: true on one node and
 * for lobbies; in cluster mode only while this node's entry says "here",
 * which calls off a release not yet sent. False once the release went to
 * Redis: the placement answer that led here came before it, and the room
 * must be claimed again. */
bool placement_may_start(const party *p, const char *id);
/* A room of this node wrote to its local storage: pin it to this node. */
void placement_pinned(const party *p, const char *id);

/* True while this node may serve its rooms (always on one node): every room
 * output checks it. Any thread. */
bool placement_lease_valid(void);

/* For /metrics, on worker 0's thread: the cluster's counters and the rooms
 * this node owns. */
const cluster_counters *placement_counters(void);
size_t placement_rooms_here(void);

/* Which incarnation of this node rooms made now belong to (bumped when the
 * lease is lost). Any thread. */
uint64_t placement_generation(void);

/* The node lost its lease: every cached answer is dropped. */
void placement_fenced(void);

#endif
