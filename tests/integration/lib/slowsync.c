/* slowsync.c - a slow disk for the tests: an LD_PRELOAD shim whose fsync
 * and fdatasync wait SLOWSYNC_MS milliseconds while the file SLOWSYNC_FLAG
 * exists, then do the real call. metrics.test.mjs compiles it (cc) and runs
 * luaparty --storage-sync full over it, so a storage commit really takes
 * that long and shows in the commit latency histogram. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void slow(void)
{
    const char *flag = getenv("SLOWSYNC_FLAG"), *ms = getenv("SLOWSYNC_MS");
    if (!flag || !ms || access(flag, F_OK) != 0) return;
    long v = atol(ms);
    struct timespec t = {v / 1000, (v % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow();
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow();
    return real(fd);
}
