/* metrics.c - the counters: each thread's set, and the storage commit
 * histogram. Counters are bumped where things happen (server.c, room.c,
 * reload.c ...); metrics_page.c renders them, metrics_listener.c serves the
 * page. */
#include "metrics.h"

static metrics outside_workers; /* counts of threads that are not workers (none today) */
_Thread_local metrics *lp_metrics_here = &outside_workers;

const double metrics_commit_buckets[7] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01};

void metrics_commit_observed(uint64_t ns, int status)
{
    METRIC_ADD(commits, 1);
    if (status != 0) METRIC_ADD(commit_failures, 1);
    METRIC_ADD(commit_ns_sum, ns);
    double secs = (double)ns / 1e9;
    size_t i = 0;
    while (i < 7 && secs > metrics_commit_buckets[i]) i++;
    METRIC_ADD(commit_us_buckets[i], 1);
}
