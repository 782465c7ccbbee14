/* storage.c - SQLite behind the storage interface (see storage.h).
 *
 * Durability: WAL with synchronous=NORMAL makes a committed transaction
 * survive a crash of this process (kill -9); --storage-sync full adds an
 * fsync per commit, for power loss. Statements are prepared once. Keys are
 * BLOBs, so SQLite orders them by their bytes (memcmp), as the API promises.
 *
 * With a store of record (storage_set_record), every write of a batch is
 * also appended to a journal; savepoints remember its length, so a rolled
 * back transaction takes its ops out again. */
#include "storage.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <sys/stat.h>

enum {
    ST_GET, ST_PUT, ST_DEL, ST_DEL_ALL, ST_LIST_ASC, ST_LIST_DESC, ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
    ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_ALARM_SET, ST_ALARM_DEL, ST_ALARM_GET, ST_ALARM_NEXT,
    ST_ALARM_DUE, ST_VER_GET, ST_VER_PUT, ST_VER_DEL, ST_ROLE_GET, ST_ROLE_PUT, ST_ANY_KV, ST_ROOMS, ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    [ST_GET] = "SELECT value FROM kv WHERE party=?1 AND room=?2 AND key=?3",
    [ST_PUT] = "INSERT OR REPLACE INTO kv (party, room, key, value) VALUES (?1, ?2, ?3, ?4)",
    [ST_DEL] = "DELETE FROM kv WHERE party=?1 AND room=?2 AND key=?3",
    [ST_DEL_ALL] = "DELETE FROM kv WHERE party=?1 AND room=?2",
    [ST_LIST_ASC] = "SELECT key, value FROM kv WHERE party=?1 AND room=?2"
                    " AND (?3 IS NULL OR key >= ?3) AND (?4 IS NULL OR key > ?4) AND (?5 IS NULL OR key < ?5)"
                    " ORDER BY key ASC LIMIT ?6",
    [ST_LIST_DESC] = "SELECT key, value FROM kv WHERE party=?1 AND room=?2"
                     " AND (?3 IS NULL OR key >= ?3) AND (?4 IS NULL OR key > ?4) AND (?5 IS NULL OR key < ?5)"
                     " ORDER BY key DESC LIMIT ?6",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT txn",
    [ST_RELEASE] = "RELEASE txn",
    [ST_ROLLBACK_TO] = "ROLLBACK TO txn",
    [ST_ALARM_SET] = "INSERT OR REPLACE INTO alarms (party, room, at, retries) VALUES (?1, ?2, ?3, ?4)",
    [ST_ALARM_DEL] = "DELETE FROM alarms WHERE party=?1 AND room=?2",
    [ST_ALARM_GET] = "SELECT at, retries FROM alarms WHERE party=?1 AND room=?2",
    [ST_ALARM_NEXT] = "SELECT min(at) FROM alarms",
    [ST_ALARM_DUE] = "SELECT party, room, at, retries FROM alarms WHERE at <= ?1 ORDER BY at LIMIT ?2",
    [ST_VER_GET] = "SELECT fence, vfence, seq FROM versions WHERE party=?1 AND room=?2",
    [ST_VER_PUT] = "INSERT OR REPLACE INTO versions (party, room, fence, vfence, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_VER_DEL] = "DELETE FROM versions WHERE party=?1 AND room=?2",
    [ST_ROLE_GET] = "SELECT value FROM meta WHERE key='role'",
    [ST_ROLE_PUT] = "INSERT OR REPLACE INTO meta (key, value) VALUES ('role', ?1)",
    [ST_ANY_KV] = "SELECT 1 FROM kv UNION ALL SELECT 1 FROM alarms LIMIT 1",
    [ST_ROOMS] = "SELECT party, room FROM kv UNION SELECT party, room FROM alarms ORDER BY 1, 2",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS kv ("
    "  party TEXT NOT NULL, room TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    "  PRIMARY KEY (party, room, key)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS alarms ("
    "  party TEXT NOT NULL, room TEXT NOT NULL, at INTEGER NOT NULL,"
    "  retries INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (party, room)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS alarms_at ON alarms (at);"
    /* cluster storage: the version of each room's local copy (storage.h) */
    "CREATE TABLE IF NOT EXISTS versions ("
    "  party TEXT NOT NULL, room TEXT NOT NULL, fence INTEGER NOT NULL, vfence INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, PRIMARY KEY (party, room)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

struct storage {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    bool in_batch;
    struct timespec busy_since;  /* when the current wait for the write lock began */
    const storage_record *rec;   /* NULL: this database is the record */
    bool paused;                 /* journal off (storage_journal_pause) */
    storage_batch journal;       /* the open batch's ops, if rec */
    bool mixed;                  /* the batch wrote to two rooms: cannot be recorded */
    size_t *marks;               /* journal length at each open savepoint */
    size_t nmarks, capmarks;
};

/* With several workers, another connection may hold the write lock for
 * one room's callback step (microseconds). SQLite's own busy handler
 * sleeps 1, 2, 5, ... ms, which would stall this worker's whole loop far
 * longer than the lock is held: yield the CPU instead, then wait in 100 us
 * naps, and give up after 5 s as before (the commit then fails cleanly). */
static int on_busy(void *ud, int count)
{
    storage *s = ud;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (count == 0) s->busy_since = now;
    double waited = (double)(now.tv_sec - s->busy_since.tv_sec) + (double)(now.tv_nsec - s->busy_since.tv_nsec) / 1e9;
    if (waited > 5.0) return 0;
    if (count < 100) {
        sched_yield();
    } else {
        struct timespec nap = {0, 100000};
        nanosleep(&nap, NULL);
    }
    return 1;
}

static int mkdirs(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n >= sizeof tmp) return -1;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(tmp, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static char *errorf(const char *path, const char *what, const char *detail)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "storage %s: %s: %s", path, what, detail);
    return buf_steal(&b);
}

/* first: the first connection checks the file and creates the schema; the
 * others (one per worker) only open it. */
static storage *open_db(const char *dir, bool sync_full, bool first, char **err)
{
    if (mkdirs(dir) != 0) {
        *err = errorf(dir, "cannot create the directory", strerror(errno));
        return NULL;
    }
    storage *s = xcalloc(1, sizeof *s);
    buf p;
    buf_init(&p);
    buf_printf(&p, "%s/luaparty.db", dir);
    s->path = buf_steal(&p);
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        *err = errorf(s->path, "cannot open", s->db ? sqlite3_errmsg(s->db) : "out of memory");
        storage_close(s);
        return NULL;
    }
    sqlite3_busy_handler(s->db, on_busy, s);
    /* quick_check reads every page: a corrupt file is refused here, at
     * start-up, not discovered by the first unlucky room. */
    const struct {
        const char *sql;
        bool first_only; /* the other connections: pragmas only */
    } setup[] = {
        {"PRAGMA quick_check", true},
        {"PRAGMA journal_mode=WAL", false},
        {sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", false},
        {schema, true},
    };
    for (size_t i = 0; i < sizeof setup / sizeof *setup; i++) {
        if (setup[i].first_only && !first) continue;
        char *msg = NULL;
        int rc = sqlite3_exec(s->db, setup[i].sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            *err = errorf(s->path, "unusable database", msg ? msg : sqlite3_errmsg(s->db));
            sqlite3_free(msg);
            storage_close(s);
            return NULL;
        }
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            *err = errorf(s->path, "cannot prepare statements", sqlite3_errmsg(s->db));
            storage_close(s);
            return NULL;
        }
    }
    return s;
}

storage *storage_open(const char *dir, bool sync_full, char **err) { return open_db(dir, sync_full, true, err); }

storage *storage_open_again(const char *dir, bool sync_full, char **err)
{
    return open_db(dir, sync_full, false, err);
}

void storage_close(storage *s)
{
    if (!s) return;
    if (s->in_batch) storage_abort(s);
    storage_batch_free(&s->journal);
    free(s->marks);
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(s->st[i]);
    if (s->db) sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *storage_path(const storage *s) { return s->path; }

int storage_wipe(storage *s, char **err)
{
    storage_abort(s);
    char *msg = NULL;
    if (sqlite3_exec(s->db, "BEGIN; DELETE FROM kv; DELETE FROM alarms; DELETE FROM versions; COMMIT", NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    *err = errorf(s->path, "cannot empty the database", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    storage_abort(s);
    return -1;
}

/* Ends a one-row query: 1 if it had a row, 0 if not, -1 on error. */
static int finish_row(storage *s, sqlite3_stmt *st, int rc, const char **err)
{
    int result = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (result < 0) *err = sqlite3_errmsg(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return result;
}

/* Runs a statement that returns no rows. */
static int exec(storage *s, sqlite3_stmt *st, const char **err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    if (err) *err = sqlite3_errmsg(s->db);
    return -1;
}

static int begin(storage *s, const char **err)
{
    if (s->in_batch) return 0;
    if (exec(s, s->st[ST_BEGIN], err) != 0) return -1;
    s->in_batch = true;
    return 0;
}

static void bind_room(sqlite3_stmt *st, const char *party, const char *room)
{
    sqlite3_bind_text(st, 1, party, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
}

/* ---- the journal ---- */

static void put_arg(buf *b, const void *p, size_t n)
{
    uint32_t len = (uint32_t)n;
    buf_append(b, &len, sizeof len);
    buf_append(b, p, n);
}

/* Appends an op of (party, room) to the journal, if there is a record. */
static void journal(storage *s, const char *party, const char *room, char op, const void *a, size_t alen,
                    const void *b, size_t blen, int nargs)
{
    if (!s->rec || s->paused) return;
    storage_batch *j = &s->journal;
    if (!j->party) {
        j->party = xstrdup(party);
        j->room = xstrdup(room);
    } else if (strcmp(j->party, party) || strcmp(j->room, room)) {
        s->mixed = true; /* never in a room's step: see storage.h */
    }
    buf_append(&j->ops, &op, 1);
    if (nargs > 0) put_arg(&j->ops, a, alen);
    if (nargs > 1) put_arg(&j->ops, b, blen);
}

static void journal_reset(storage *s)
{
    storage_batch_free(&s->journal);
    s->mixed = false;
    s->nmarks = 0;
}

int storage_batch_next(const storage_batch *b, size_t *pos, const char *args[2], size_t lens[2], int *nargs)
{
    if (*pos >= b->ops.len) return 0;
    const char *p = b->ops.data + *pos;
    char op = *p++;
    int n = op == STORAGE_OP_PUT || op == STORAGE_OP_ALARM ? 2 : op == STORAGE_OP_DELETE ? 1 : 0;
    for (int i = 0; i < n; i++) {
        uint32_t len;
        memcpy(&len, p, sizeof len);
        p += sizeof len;
        args[i] = p;
        lens[i] = len;
        p += len;
    }
    *nargs = n;
    *pos = (size_t)(p - b->ops.data);
    return op;
}

void storage_batch_free(storage_batch *b)
{
    free(b->party);
    free(b->room);
    buf_free(&b->ops);
    memset(b, 0, sizeof *b);
}

void storage_set_record(storage *s, const storage_record *rec) { s->rec = rec; }

void storage_journal_pause(storage *s, bool paused) { s->paused = paused; }

/* ---- reads and writes ---- */

int storage_get(storage *s, const char *party, const char *room, const char *key, size_t klen, buf *out,
                const char **err)
{
    sqlite3_stmt *st = s->st[ST_GET];
    bind_room(st, party, room);
    sqlite3_bind_blob(st, 3, key, (int)klen, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) buf_append(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    return finish_row(s, st, rc, err);
}

int storage_put(storage *s, const char *party, const char *room, const char *key, size_t klen, const void *val,
                size_t vlen, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_PUT];
    bind_room(st, party, room);
    sqlite3_bind_blob(st, 3, key, (int)klen, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, val, (int)vlen, SQLITE_STATIC);
    if (exec(s, st, err)) return -1;
    journal(s, party, room, STORAGE_OP_PUT, key, klen, val, vlen, 2);
    return 0;
}

int storage_delete(storage *s, const char *party, const char *room, const char *key, size_t klen,
                   const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_DEL];
    bind_room(st, party, room);
    sqlite3_bind_blob(st, 3, key, (int)klen, SQLITE_STATIC);
    if (exec(s, st, err)) return -1;
    int existed = sqlite3_changes(s->db) > 0;
    if (existed) journal(s, party, room, STORAGE_OP_DELETE, key, klen, NULL, 0, 1);
    return existed;
}

int storage_delete_all(storage *s, const char *party, const char *room, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_DEL_ALL];
    bind_room(st, party, room);
    if (exec(s, st, err)) return -1;
    sqlite3_stmt *al = s->st[ST_ALARM_DEL];
    bind_room(al, party, room);
    if (exec(s, al, err)) return -1;
    journal(s, party, room, STORAGE_OP_DELETE_ALL, NULL, 0, NULL, 0, 0);
    return 0;
}

/* The smallest key greater than every key with this prefix: the prefix with
 * its last non-0xff byte incremented. Returns its length; 0 if none exists
 * (the prefix is all 0xff: no upper bound). */
static size_t prefix_upper(const char *prefix, size_t len, char *out)
{
    memcpy(out, prefix, len);
    while (len > 0 && (unsigned char)out[len - 1] == 0xff) len--;
    if (len == 0) return 0;
    out[len - 1] = (char)((unsigned char)out[len - 1] + 1);
    return len;
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

int storage_list(storage *s, const char *party, const char *room, const storage_range *r, storage_row cb,
                 void *ud, const char **err)
{
    sqlite3_stmt *st = s->st[r->reverse ? ST_LIST_DESC : ST_LIST_ASC];
    bind_room(st, party, room);
    /* a prefix is the range [prefix, upper(prefix)), intersected with the others */
    const char *lo = r->start;
    size_t lo_len = r->start_len;
    const char *hi = r->end;
    size_t hi_len = r->end_len;
    char upper[2048];
    if (r->prefix && r->prefix_len > sizeof upper) return 0; /* longer than any key: nothing matches */
    if (r->prefix) {
        if (!lo || key_cmp(r->prefix, r->prefix_len, lo, lo_len) > 0) {
            lo = r->prefix;
            lo_len = r->prefix_len;
        }
        size_t ul = prefix_upper(r->prefix, r->prefix_len, upper);
        if (ul && (!hi || key_cmp(upper, ul, hi, hi_len) < 0)) {
            hi = upper;
            hi_len = ul;
        }
    }
    if (lo) sqlite3_bind_blob(st, 3, lo, (int)lo_len, SQLITE_STATIC);
    if (r->start_after) sqlite3_bind_blob(st, 4, r->start_after, (int)r->start_after_len, SQLITE_STATIC);
    if (hi) sqlite3_bind_blob(st, 5, hi, (int)hi_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->limit < 0 ? -1 : r->limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(ud, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_blob(st, 1),
           (size_t)sqlite3_column_bytes(st, 1));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        *err = sqlite3_errmsg(s->db);
        return -1;
    }
    return 0;
}

int storage_savepoint(storage *s, const char **err)
{
    if (begin(s, err)) return -1;
    if (exec(s, s->st[ST_SAVEPOINT], err)) return -1;
    if (s->nmarks == s->capmarks) s->marks = xrealloc(s->marks, (s->capmarks = s->capmarks * 2 + 8) * sizeof *s->marks);
    s->marks[s->nmarks++] = s->journal.ops.len;
    return 0;
}

int storage_release(storage *s, const char **err)
{
    if (exec(s, s->st[ST_RELEASE], err)) return -1;
    if (s->nmarks) s->nmarks--;
    return 0;
}

int storage_rollback_to(storage *s, const char **err)
{
    if (exec(s, s->st[ST_ROLLBACK_TO], err)) return -1;
    if (s->nmarks) s->journal.ops.len = s->marks[s->nmarks - 1]; /* its ops never happened */
    return storage_release(s, err);
}

bool storage_dirty(const storage *s) { return s->in_batch; }

/* The batch goes to the record too: it has ops of one room (a lobby's
 * writes stay on the node, as lobbies do). */
static bool recorded(const storage *s)
{
    return s->rec && s->journal.ops.len && s->journal.room && s->journal.room[0];
}

void storage_commit(storage *s, storage_done cb, void *ud)
{
    const char *err = NULL;
    int rc = 0;
    if (s->in_batch && recorded(s)) {
        if (s->mixed) {
            err = "one batch wrote to two rooms (a bug): not recorded";
            rc = -1;
        } else {
            rc = s->rec->prepare(s->rec->ud, s, &s->journal, &err);
        }
    }
    if (rc == 0 && s->in_batch) rc = exec(s, s->st[ST_COMMIT], &err);
    if (rc != 0) {
        char *msg = xstrdup(err ? err : "unknown error");
        log_error("storage %s: commit failed: %s", s->path, msg);
        storage_abort(s);
        if (cb) cb(ud, -1, msg);
        free(msg);
        return;
    }
    s->in_batch = false;
    if (recorded(s)) {
        storage_batch b = s->journal;
        memset(&s->journal, 0, sizeof s->journal);
        journal_reset(s);
        s->rec->send(s->rec->ud, &b, cb, ud);
        storage_batch_free(&b);
        return;
    }
    journal_reset(s);
    if (cb) cb(ud, 0, NULL);
}

void storage_abort(storage *s)
{
    if (!sqlite3_get_autocommit(s->db)) exec(s, s->st[ST_ROLLBACK], NULL);
    s->in_batch = false;
    journal_reset(s);
}

int storage_set_alarm(storage *s, const char *party, const char *room, int64_t at, int retries, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_ALARM_SET];
    bind_room(st, party, room);
    sqlite3_bind_int64(st, 3, at);
    sqlite3_bind_int(st, 4, retries);
    if (exec(s, st, err)) return -1;
    char a[24], r[24];
    int alen = snprintf(a, sizeof a, "%lld", (long long)at), rlen = snprintf(r, sizeof r, "%d", retries);
    journal(s, party, room, STORAGE_OP_ALARM, a, (size_t)alen, r, (size_t)rlen, 2);
    return 0;
}

int storage_delete_alarm(storage *s, const char *party, const char *room, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_ALARM_DEL];
    bind_room(st, party, room);
    if (exec(s, st, err)) return -1;
    journal(s, party, room, STORAGE_OP_NO_ALARM, NULL, 0, NULL, 0, 0);
    return 0;
}

int storage_get_alarm(storage *s, const char *party, const char *room, int64_t *at, int *retries,
                      const char **err)
{
    sqlite3_stmt *st = s->st[ST_ALARM_GET];
    bind_room(st, party, room);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *at = sqlite3_column_int64(st, 0);
        if (retries) *retries = sqlite3_column_int(st, 1);
    }
    return finish_row(s, st, rc, err);
}

int storage_next_alarm(storage *s, int64_t *at)
{
    sqlite3_stmt *st = s->st[ST_ALARM_NEXT];
    int found = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
    if (found) *at = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return found;
}

int storage_due_alarms(storage *s, int64_t now, int limit, storage_alarm_row cb, void *ud)
{
    sqlite3_stmt *st = s->st[ST_ALARM_DUE];
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, limit);
    /* collect first: the callbacks may write to the same table */
    typedef struct { char *party, *room; int64_t at; int retries; } row;
    row *rows = NULL;
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows = xrealloc(rows, (size_t)(n + 1) * sizeof *rows);
        rows[n].party = xstrdup((const char *)sqlite3_column_text(st, 0));
        rows[n].room = xstrdup((const char *)sqlite3_column_text(st, 1));
        rows[n].at = sqlite3_column_int64(st, 2);
        rows[n].retries = sqlite3_column_int(st, 3);
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (int i = 0; i < n; i++) {
        cb(ud, rows[i].party, rows[i].room, rows[i].at, rows[i].retries);
        free(rows[i].party);
        free(rows[i].room);
    }
    free(rows);
    return rc == SQLITE_DONE ? n : -1;
}

/* ---- versions and roles (cluster storage) ---- */

int storage_version_get(storage *s, const char *party, const char *room, uint64_t *fence, uint64_t *vfence,
                        uint64_t *seq, const char **err)
{
    sqlite3_stmt *st = s->st[ST_VER_GET];
    bind_room(st, party, room);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *fence = (uint64_t)sqlite3_column_int64(st, 0);
        *vfence = (uint64_t)sqlite3_column_int64(st, 1);
        *seq = (uint64_t)sqlite3_column_int64(st, 2);
    }
    return finish_row(s, st, rc, err);
}

int storage_version_put(storage *s, const char *party, const char *room, uint64_t fence, uint64_t vfence,
                        uint64_t seq, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_VER_PUT];
    bind_room(st, party, room);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)fence);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)vfence);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)seq);
    return exec(s, st, err);
}

int storage_version_forget(storage *s, const char *party, const char *room, const char **err)
{
    if (begin(s, err)) return -1;
    sqlite3_stmt *st = s->st[ST_VER_DEL];
    bind_room(st, party, room);
    return exec(s, st, err);
}

int storage_check_role(storage *s, bool cluster_copy, char **err)
{
    const char *want = cluster_copy ? "cluster-copy" : "single-node", *serr = NULL;
    sqlite3_stmt *st = s->st[ST_ROLE_GET];
    int rc = sqlite3_step(st);
    char role[32] = "";
    if (rc == SQLITE_ROW) str_copy(role, sizeof role, (const char *)sqlite3_column_text(st, 0));
    if (finish_row(s, st, rc, &serr) < 0) goto sql_error;
    if (!role[0]) { /* a database from before roles: single-node data, or empty */
        st = s->st[ST_ANY_KV];
        rc = sqlite3_step(st);
        int any = finish_row(s, st, rc, &serr);
        if (any < 0) goto sql_error;
        if (any) str_copy(role, sizeof role, "single-node");
    }
    if (role[0] && strcmp(role, want) != 0) {
        buf b;
        buf_init(&b);
        if (cluster_copy)
            buf_printf(&b, "storage %s holds single-node data, which is not in Redis: move it there first with "
                           "`luaparty storage export --cluster URL` (README \"Cluster mode\"), or give this node "
                           "another --persist directory", s->path);
        else
            buf_printf(&b, "storage %s is a cluster node's copy of data whose record is in Redis (it may be stale): "
                           "run with --cluster, or bring the data back with `luaparty storage import --cluster URL` "
                           "into another --persist directory", s->path);
        *err = buf_steal(&b);
        return -1;
    }
    if (!role[0]) {
        st = s->st[ST_ROLE_PUT];
        sqlite3_bind_text(st, 1, want, -1, SQLITE_STATIC);
        if (exec(s, st, &serr)) goto sql_error;
    }
    return 0;
sql_error:
    *err = errorf(s->path, "cannot read its role", serr ? serr : "?");
    return -1;
}

int storage_each_room(storage *s, storage_room_row cb, void *ud, const char **err)
{
    sqlite3_stmt *st = s->st[ST_ROOMS];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        cb(ud, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        *err = sqlite3_errmsg(s->db);
        return -1;
    }
    return 0;
}
