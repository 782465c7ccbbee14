/* metrics.c - the counters: each thread's set, and the storage commit
 * histogram. Counters are bumped where things happen (server.c, room.c,
 * reload.c ...); metrics_page.c renders them, metrics_listener.c serves the
 * page. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static metrics outside_workers; /* counts of threads that are not workers (none today) */
_Thread_local metrics *lp_metrics_here = &outside_workers;

const double metrics_commit_buckets[METRICS_COMMIT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void metrics_commit_observed(uint64_t ns, int status)
{
    METRIC_ADD(commits, 1);
    if (status != 0) METRIC_ADD(commit_failures, 1);
    METRIC_ADD(commit_ns_sum, ns);
    double secs = (double)ns / 1e9;
    size_t i = 0;
    while (i < METRICS_COMMIT_BUCKETS && secs > metrics_commit_buckets[i]) i++;
    METRIC_ADD(commit_buckets[i], 1);
}

static char party_names[METRICS_PARTIES][65]; /* party names are at most 64 bytes (config.c) */
static unsigned nparty_names;

unsigned metrics_party_slot(const char *name)
{
    for (unsigned i = 0; i < nparty_names; i++)
        if (!strcmp(party_names[i], name)) return i;
    if (nparty_names == METRICS_PARTIES - 1) { /* the last slot is for all the others */
        snprintf(party_names[nparty_names++], sizeof party_names[0], "(others)");
        return METRICS_PARTIES - 1;
    }
    if (nparty_names == METRICS_PARTIES) return METRICS_PARTIES - 1;
    snprintf(party_names[nparty_names], sizeof party_names[0], "%s", name);
    return nparty_names++;
}

unsigned metrics_party_slots(void) { return nparty_names; }

const char *metrics_party_name(unsigned slot) { return slot < nparty_names ? party_names[slot] : "(others)"; }
