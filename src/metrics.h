/* metrics.h - counters for /metrics (Prometheus text format), served on a
 * separate listener (--metrics HOST:PORT) so it is never public by accident. */
#ifndef LP_METRICS_H
#define LP_METRICS_H

#include "buf.h"
#include <stdbool.h>
#include <stdint.h>

/* Counters by party: each party name gets a slot for the life of the
 * process (metrics_party_slot), so its counts go on across reloads and a
 * removed party's stay on the page. Past METRICS_PARTIES - 1 names, the
 * rest share the last slot (party="(others)"). */
#define METRICS_PARTIES 64
/* Storage commit latency buckets: 100 us to 10 s (a full disk or a slow
 * fsync shows in the upper ones), then +Inf. */
#define METRICS_COMMIT_BUCKETS 16

typedef struct metrics {
    uint64_t bytes_in, bytes_out;
    uint64_t messages_in[METRICS_PARTIES], messages_out[METRICS_PARTIES]; /* by party slot */
    uint64_t callback_errors[METRICS_PARTIES];                             /* by party slot */
    uint64_t http_status[600];       /* responses by status code */
    uint64_t commits, commit_failures;
    uint64_t commit_buckets[METRICS_COMMIT_BUCKETS + 1]; /* metrics_commit_buckets, then +Inf */
    uint64_t commit_ns_sum;
    uint64_t reloads;
    uint64_t connections_opened;
    uint64_t frames_encoded;         /* frames made for a party's sends (lua_conn.c) */
    uint64_t cluster_proxied_requests, cluster_proxied_sockets; /* forwarded to the owner node */
    uint64_t cluster_misdirected;    /* 421s answered: forwarded here, owned elsewhere */
    /* cluster storage (cluster_storage.c) */
    uint64_t cluster_commits, cluster_commits_fenced, cluster_commits_failed, cluster_commit_retries;
    uint64_t cluster_room_loads, cluster_room_load_keys;
} metrics;
/* Only uint64_t counters: metrics.c sums the workers' sets as arrays. */
_Static_assert(sizeof(metrics) % sizeof(uint64_t) == 0, "metrics holds uint64_t counters only");

/* Each worker counts into its own set (worker.stats); this points at the
 * running thread's. Only that thread writes it, so a bump is a relaxed load
 * and store (plain instructions, no lock); /metrics reads every worker's
 * with relaxed loads and sums them. */
extern _Thread_local metrics *lp_metrics_here;
#define METRIC_ADD(field, n)                                                                                     \
    __atomic_store_n(&lp_metrics_here->field, __atomic_load_n(&lp_metrics_here->field, __ATOMIC_RELAXED) + (n), \
                     __ATOMIC_RELAXED)

/* A storage commit took ns; status != 0: it failed. */
void metrics_commit_observed(uint64_t ns, int status);
/* Upper bounds (seconds) of the commit histogram's buckets, +Inf aside. */
extern const double metrics_commit_buckets[METRICS_COMMIT_BUCKETS];
/* The slot of a party name's counters (made on first use). Called where
 * parties are made (config loading: the thread of worker 0, which also
 * renders the page, so the name table needs no lock). */
unsigned metrics_party_slot(const char *name);
/* How many slots are in use, and the label of one. */
unsigned metrics_party_slots(void);
const char *metrics_party_name(unsigned slot);

#endif
