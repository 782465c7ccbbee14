/* procinfo.c - process_* metrics from /proc (see procinfo.h). Read when
 * /metrics is scraped, never on a hot path: a scrape opens three files and
 * lists /proc/self/fd. */
#include "procinfo.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int proc_parse_starttime(const char *stat, unsigned long long *ticks)
{
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
     * the fields are counted from the last ')'; state is field 3 */
    const char *p = strrchr(stat, ')');
    if (!p) return -1;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') p++;
        if (!*p) return -1;
        if (field == 22) {
            char *end;
            *ticks = strtoull(p, &end, 10);
            return end == p ? -1 : 0;
        }
        while (*p && *p != ' ') p++;
    }
    return -1;
}

int proc_parse_btime(const char *stat, unsigned long long *btime)
{
    for (const char *line = stat; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, "btime ", 6) != 0) continue;
        char *end;
        *btime = strtoull(line + 6, &end, 10);
        return end == line + 6 ? -1 : 0;
    }
    return -1;
}

/* Entries of /proc/self/fd, not counting the one the listing itself uses. */
static int count_fds(uint64_t *n)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int own = dirfd(d);
    struct dirent *e;
    *n = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != own) (*n)++;
    closedir(d);
    return 0;
}

int proc_info_read(proc_info *pi)
{
    memset(pi, 0, sizeof *pi);
    int rc = 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        pi->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                          (double)ru.ru_stime.tv_usec / 1e6;
    else rc = -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) pi->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
    if (count_fds(&pi->open_fds) != 0) rc = -1;
    long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
    char *statm = read_file("/proc/self/statm", NULL);
    unsigned long long size, resident;
    if (statm && sscanf(statm, "%llu %llu", &size, &resident) == 2) {
        pi->vm_bytes = size * (uint64_t)page;
        pi->rss_bytes = resident * (uint64_t)page;
    } else {
        rc = -1;
    }
    free(statm);
    char *self = read_file("/proc/self/stat", NULL), *all = read_file("/proc/stat", NULL);
    unsigned long long ticks, btime;
    if (self && all && hz > 0 && proc_parse_starttime(self, &ticks) == 0 && proc_parse_btime(all, &btime) == 0)
        pi->start_time = (double)btime + (double)ticks / (double)hz;
    else rc = -1;
    free(self);
    free(all);
    return rc;
}
