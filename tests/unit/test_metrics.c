/* test_metrics.c - the pure parts of /metrics: party slots, the commit
 * histogram's buckets, and the /proc parsers behind process_*. */
#include "unit.h"

#include "metrics.h"
#include "procinfo.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

TEST(metrics_party_slots_are_kept_by_name)
{
    unsigned a = metrics_party_slot("slot-a"), b = metrics_party_slot("slot-b");
    ASSERT_NE(a, b);
    ASSERT_EQ(metrics_party_slot("slot-a"), a); /* the same name, the same slot (a reload keeps counting) */
    ASSERT_STR_EQ(metrics_party_name(a), "slot-a");
    ASSERT_STR_EQ(metrics_party_name(b), "slot-b");
    /* past METRICS_PARTIES - 1 names, the rest share the last slot */
    char name[32];
    for (int i = 0; i < METRICS_PARTIES + 10; i++) {
        snprintf(name, sizeof name, "p%d", i);
        ASSERT(metrics_party_slot(name) < METRICS_PARTIES);
    }
    ASSERT_EQ(metrics_party_slots(), METRICS_PARTIES);
    ASSERT_EQ(metrics_party_slot("one-too-many"), METRICS_PARTIES - 1);
    ASSERT_STR_EQ(metrics_party_name(METRICS_PARTIES - 1), "(others)");
    ASSERT_EQ(metrics_party_slot("slot-b"), b);
}

TEST(metrics_commit_histogram_reaches_10_seconds)
{
    metrics m = {0};
    metrics *was = lp_metrics_here;
    lp_metrics_here = &m;
    static const struct { uint64_t ns; int bucket; } cases[] = {
        {50000, 0},          /* 50 us: le 0.0001 */
        {100000, 0},         /* exactly on a bound: that bucket */
        {9000000, 6},        /* 9 ms: le 0.01 */
        {30000000, 8},       /* 30 ms: le 0.05 */
        {700000000, 12},     /* 0.7 s: le 1 */
        {9000000000ULL, 15}, /* 9 s: le 10 */
        {20000000000ULL, 16} /* 20 s: +Inf */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) metrics_commit_observed(cases[i].ns, 0);
    lp_metrics_here = was;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_MSG(m.commit_buckets[cases[i].bucket] >= 1, "%llu ns not in bucket %d",
                   (unsigned long long)cases[i].ns, cases[i].bucket);
    ASSERT_EQ(m.commits, 7);
    for (int i = 1; i < METRICS_COMMIT_BUCKETS; i++) ASSERT(metrics_commit_buckets[i] > metrics_commit_buckets[i - 1]);
    ASSERT(metrics_commit_buckets[METRICS_COMMIT_BUCKETS - 1] == 10.0);
}

TEST(proc_parsers)
{
    unsigned long long t = 0;
    /* a command name with spaces and parentheses: fields are counted from the last ')' */
    ASSERT_EQ(proc_parse_starttime("4242 (odd) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 "
                                   "123456 10000000 500 18446744073709551615",
                                   &t),
              0);
    ASSERT_EQ(t, 123456);
    ASSERT_EQ(proc_parse_starttime("1 (short) S 1 2 3", &t), -1);
    ASSERT_EQ(proc_parse_starttime("no parenthesis", &t), -1);
    unsigned long long bt = 0;
    ASSERT_EQ(proc_parse_btime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n", &bt), 0);
    ASSERT_EQ(bt, 1700000000);
    ASSERT_EQ(proc_parse_btime("cpu 1\n", &bt), -1);
}

TEST(proc_info_reads_this_process)
{
    proc_info pi;
    ASSERT_EQ(proc_info_read(&pi), 0);
    ASSERT(pi.rss_bytes > 1024 * 1024 && pi.vm_bytes >= pi.rss_bytes);
    ASSERT(pi.open_fds >= 3 && pi.max_fds >= pi.open_fds);
    double now = (double)time(NULL);
    ASSERT_MSG(pi.start_time > now - 3600 && pi.start_time <= now + 1, "start time %.0f, now %.0f", pi.start_time, now);
    int fd = dup(0);
    proc_info more;
    ASSERT_EQ(proc_info_read(&more), 0);
    ASSERT_EQ(more.open_fds, pi.open_fds + 1);
    close(fd);
}
