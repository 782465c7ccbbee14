/* cluster_storage.h - room storage whose record is in Redis (cluster mode's
 * default; `--cluster-storage local` keeps single-node storage, pinned).
 *
 * Each worker keeps its SQLite connection as the node's copy: rooms read
 * from it as on one node, so reads stay synchronous. Every batch a room
 * commits is also sent to Redis as one lp_commit call (its ops, the room's
 * fencing token and its data version); the room's output gate waits for
 * Redis' answer, so nothing a room says after a write leaves before Redis
 * has the write. A node that lost the room is refused (STORAGE_FENCED).
 *
 * A room's local copy is used only while its version matches Redis': the
 * claim answers the version (cluster.h), cluster_storage_activate compares
 * it with the copy's (storage_version_get) and loads the room from Redis
 * when they differ. A commit that fails forgets the copy's version, so the
 * next activation loads the room again.
 *
 * Redis keys (besides cluster.h's): lp:kv:{room} a hash of the room's keys
 * and encoded values; lp:own:{room} seq, vfence, token (the last commit's),
 * alarm, alarm_retries; lp:alarms a sorted set of rooms by alarm time. */
#ifndef LP_CLUSTER_STORAGE_H
#define LP_CLUSTER_STORAGE_H

#include "cluster.h"
#include "storage.h"

#include <stdio.h>

typedef struct cluster_storage cluster_storage;

/* Makes local (a worker's connection) the copy of a Redis record: connects
 * a link on loop and installs itself as local's record. node answers
 * whether this node's lease is valid (any thread). */
cluster_storage *cluster_storage_new(uv_loop_t *loop, const redis_url *url, const cluster *node, storage *local);
/* Closes the link (commits in flight end without their callback: only at
 * shutdown, after the rooms are gone). */
void cluster_storage_close(cluster_storage *cs);

/* Makes the local copy of (party, room) the data Redis holds at version
 * (vfence, seq), held from now on with `fence`: at once if it is already,
 * else loaded from Redis. cb(arg, NULL) then, or cb(arg, why) if the load
 * failed; cb runs inside this call when the copy is current. On worker 0,
 * whose loop runs the claims. */
void cluster_storage_activate(cluster_storage *cs, const char *party, const char *room, uint64_t fence,
                              uint64_t vfence, uint64_t seq, void (*cb)(void *arg, const char *err), void *arg);

/* A due alarm, as lp_alarm_due lists it. */
typedef struct cluster_alarm {
    char *party, *room;
    int64_t at;
    int retries;
} cluster_alarm;

/* Due alarms this node may run (its rooms', and those of rooms no live node
 * owns), at most limit; next: the earliest alarm after now (-1 if none).
 * err set if Redis could not be asked. */
typedef void (*cluster_alarms_fn)(void *arg, const cluster_alarm *due, int n, int64_t next, const char *err);
void cluster_storage_due_alarms(cluster_storage *cs, int64_t now, int limit, cluster_alarms_fn cb, void *arg);
/* Forgets the alarm of a room nobody can run (its party is gone), if it is
 * still the one due at `at`. */
void cluster_storage_drop_alarm(cluster_storage *cs, const char *party, const char *room, int64_t at);

/* `luaparty storage export|import --cluster URL`: copies every room of the
 * single-node database in persist_dir into Redis (refusing rooms a live
 * node owns), or every room in Redis into it. Progress on out, errors on
 * stderr; returns the exit code. */
int cluster_storage_export(const char *url, const char *persist_dir, FILE *out);
int cluster_storage_import(const char *url, const char *persist_dir, FILE *out);

#endif
