/* procinfo.h - the process as Prometheus' standard process_* metrics see it
 * (CPU time, memory, file descriptors, start time), read from Linux /proc. */
#ifndef LP_PROCINFO_H
#define LP_PROCINFO_H

#include <stdint.h>

typedef struct proc_info {
    double cpu_seconds;     /* user + system CPU time */
    double start_time;      /* seconds since the epoch */
    uint64_t rss_bytes;     /* resident memory */
    uint64_t vm_bytes;      /* virtual memory */
    uint64_t open_fds;
    uint64_t max_fds;       /* the soft RLIMIT_NOFILE */
} proc_info;

/* Fills pi. Returns 0, or -1 if /proc could not be read (the fields it
 * could not read are 0). */
int proc_info_read(proc_info *pi);

/* The parsers, for the unit tests: field 22 (starttime, in clock ticks
 * after boot) of /proc/<pid>/stat, and "btime" of /proc/stat. 0 or -1. */
int proc_parse_starttime(const char *stat, unsigned long long *ticks);
int proc_parse_btime(const char *stat, unsigned long long *btime);

#endif
