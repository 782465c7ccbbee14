/* lp_sqlite_raw.c - the reference for bench/storage.mjs: the same rows that
 * the Lua benchmark writes through room.storage, written and read with raw
 * SQLite (same schema, WAL, synchronous=NORMAL, prepared statements, one
 * transaction for all puts). Prints one RESULT line: rates (wall clock)
 * and the CPU time (user + system) each phase took. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process used so far. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void check(int rc, sqlite3 *db, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "lp_sqlite_raw: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: lp_sqlite_raw DBFILE N VALUE_BYTES\n");
        return 2;
    }
    const char *path = argv[1];
    int n = atoi(argv[2]), vbytes = atoi(argv[3]);
    sqlite3 *db;
    check(sqlite3_open(path, &db), db, "open");
    check(sqlite3_exec(db,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                       "CREATE TABLE IF NOT EXISTS kv (party TEXT NOT NULL, room TEXT NOT NULL, key BLOB NOT NULL,"
                       " value BLOB NOT NULL, PRIMARY KEY (party, room, key)) WITHOUT ROWID;",
                       NULL, NULL, NULL),
          db, "schema");
    sqlite3_stmt *put, *get;
    check(sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES ('bench', 'raw', ?1, ?2)", -1, &put, NULL), db,
          "prepare");
    check(sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE party='bench' AND room='raw' AND key=?1", -1, &get, NULL),
          db, "prepare");
    /* the value as luaparty encodes a string of vbytes: 's', varint length, bytes */
    unsigned char *val = malloc((size_t)vbytes + 8);
    size_t vlen = 0;
    val[vlen++] = 's';
    for (unsigned v = (unsigned)vbytes;; v >>= 7) {
        val[vlen++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f) break;
    }
    memset(val + vlen, 'x', (size_t)vbytes);
    vlen += (size_t)vbytes;

    char key[32];
    double t0 = now(), c0 = cpu();
    check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db, "begin");
    for (int i = 1; i <= n; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        sqlite3_bind_blob(put, 1, key, kl, SQLITE_STATIC);
        sqlite3_bind_blob(put, 2, val, (int)vlen, SQLITE_STATIC);
        check(sqlite3_step(put), db, "insert");
        sqlite3_reset(put);
    }
    check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
    double t_put = now() - t0, c_put = cpu() - c0;
    t0 = now();
    c0 = cpu();
    size_t total = 0;
    for (int i = 1; i <= n; i++) {
        int kl = snprintf(key, sizeof key, "k%d", i);
        sqlite3_bind_blob(get, 1, key, kl, SQLITE_STATIC);
        check(sqlite3_step(get), db, "select");
        total += (size_t)sqlite3_column_bytes(get, 0);
        sqlite3_reset(get);
    }
    double t_get = now() - t0, c_get = cpu() - c0;
    printf("RESULT raw puts_per_s=%.0f gets_per_s=%.0f bytes_read=%zu put_cpu_s=%.4f get_cpu_s=%.4f\n", n / t_put,
           n / t_get, total, c_put, c_get);
    sqlite3_finalize(put);
    sqlite3_finalize(get);
    sqlite3_close(db);
    free(val);
    return 0;
}
