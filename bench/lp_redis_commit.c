/* lp_redis_commit: the raw reference of bench/cluster-storage.mjs. N client
 * threads, each with its own hiredis connection and its own room, call the
 * same Redis function luaparty calls for a commit (lp_commit: one put of a
 * value of S bytes, with the room's fence and seq) one at a time for D
 * seconds, and report commits/s and p50/p99 latency per call. No Lua, no
 * WebSocket, no SQLite: what Redis itself costs.
 *
 *   lp_redis_commit PORT LIBRARY.lua [--clients N] [--duration S] [--size BYTES]
 *
 * Prints one line "RESULT commits=... seconds=... rate=... p50_us=... p99_us=... mean_us=...". */
#define _POSIX_C_SOURCE 200809L
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CLIENTS 256
#define MAX_SAMPLES 2000000

static int port, clients = 16, duration = 5, size = 32;
static char epoch[32];

typedef struct thread_arg {
    int index;
    double *lat; /* microseconds */
    size_t n;
    int failed;
} thread_arg;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static redisReply *cmd(redisContext *c, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        fprintf(stderr, "lp_redis_commit: %s\n", c->errstr);
        exit(1);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "lp_redis_commit: %s: %s\n", argv[0], r->str);
        exit(1);
    }
    return r;
}

static void *run(void *p)
{
    thread_arg *a = p;
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "lp_redis_commit: cannot connect\n");
        exit(1);
    }
    char own[64], kv[64], fence[32], base[32], key[16];
    snprintf(own, sizeof own, "lp:own:{commit/raw-%d}", a->index);
    snprintf(kv, sizeof kv, "lp:kv:{commit/raw-%d}", a->index);
    const char *claim[] = {"FCALL", "lp_claim", "1", own, "raw", epoch, "", ""};
    redisReply *r = cmd(c, 8, claim, NULL);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 6) {
        fprintf(stderr, "lp_redis_commit: unexpected claim answer\n");
        exit(1);
    }
    snprintf(fence, sizeof fence, "%lld", r->element[1]->integer);
    long long seq = r->element[5]->integer;
    freeReplyObject(r);
    char *value = malloc((size_t)size);
    memset(value, 'x', (size_t)size);
    double end = now_s() + duration;
    while (a->n < MAX_SAMPLES / (size_t)clients) {
        double t0 = now_s();
        if (t0 >= end) break;
        snprintf(base, sizeof base, "%lld", seq);
        snprintf(key, sizeof key, "k%lld", seq % 100);
        char token[32];
        snprintf(token, sizeof token, "raw-%d-%lld", a->index, seq);
        const char *argv[] = {"FCALL", "lp_commit", "3", own, kv, "lp:alarms", fence, base, token, "P", key, value};
        size_t lens[12];
        for (int i = 0; i < 11; i++) lens[i] = strlen(argv[i]);
        lens[11] = (size_t)size;
        r = cmd(c, 12, argv, lens);
        if (r->type != REDIS_REPLY_INTEGER || r->integer != seq + 1) a->failed++;
        freeReplyObject(r);
        seq++;
        a->lat[a->n++] = (now_s() - t0) * 1e6;
    }
    free(value);
    redisFree(c);
    return NULL;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: lp_redis_commit PORT LIBRARY.lua [--clients N] [--duration S] [--size BYTES]\n");
        return 2;
    }
    port = atoi(argv[1]);
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
    }
    if (clients < 1 || clients > MAX_CLIENTS || duration < 1 || duration > 60 || size < 1 || size > 1 << 20) {
        fprintf(stderr, "lp_redis_commit: clients 1-%d, duration 1-60 s, size 1 B-1 MiB\n", MAX_CLIENTS);
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    static char lib[1 << 20];
    size_t n = fread(lib, 1, sizeof lib - 1, f);
    fclose(f);
    lib[n] = 0;
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "lp_redis_commit: cannot connect to redis on port %d\n", port);
        return 1;
    }
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", lib};
    freeReplyObject(cmd(c, 4, load, NULL));
    const char *reg[] = {"FCALL", "lp_register", "0", "raw", "127.0.0.1:1", "600000", "0"};
    redisReply *r = cmd(c, 7, reg, NULL);
    snprintf(epoch, sizeof epoch, "%lld", r->integer);
    freeReplyObject(r);
    redisFree(c);

    pthread_t th[MAX_CLIENTS];
    thread_arg args[MAX_CLIENTS];
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        args[i] = (thread_arg){.index = i, .lat = malloc(sizeof(double) * (MAX_SAMPLES / (size_t)clients))};
        pthread_create(&th[i], NULL, run, &args[i]);
    }
    size_t total = 0;
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += args[i].n;
        failed += args[i].failed;
    }
    double secs = now_s() - t0;
    double *all = malloc(sizeof(double) * (total ? total : 1));
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, args[i].lat, args[i].n * sizeof(double));
        k += args[i].n;
        free(args[i].lat);
    }
    qsort(all, total, sizeof(double), by_value);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[total * 99 / 100] : 0, sum = 0;
    for (size_t i = 0; i < total; i++) sum += all[i];
    printf("RESULT commits=%zu seconds=%.2f rate=%.0f p50_us=%.1f p99_us=%.1f mean_us=%.1f failed=%d\n", total, secs,
           (double)total / secs, p50, p99, total ? sum / (double)total : 0, failed);
    free(all);
    return failed ? 1 : 0;
}
