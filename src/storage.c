/* storage.c - SQLite behind the storage interface.
 *
 * Durability: WAL with synchronous=NORMAL makes a committed transaction
 * survive a crash of this process (kill -9); --storage-sync full adds an
 * fsync per commit for power loss. All statements are prepared once. */
#include "storage.h"
#include "log.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct storage {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *get, *put, *del, *begin, *commit, *rollback;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS kv ("
    "  party TEXT NOT NULL, room TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    "  PRIMARY KEY (party, room, key)) WITHOUT ROWID;";

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
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static char *errorf(const char *path, const char *what, const char *detail)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "storage %s: %s: %s", path, what, detail);
    return buf_steal(&b);
}

storage *storage_open(const char *dir, char **err)
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
    sqlite3_busy_timeout(s->db, 5000);
    const char *setup[] = {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", schema,
                           "PRAGMA quick_check"};
    for (size_t i = 0; i < sizeof setup / sizeof *setup; i++) {
        char *msg = NULL;
        if (sqlite3_exec(s->db, setup[i], NULL, NULL, &msg) != SQLITE_OK) {
            /* e.g. "file is not a database": refuse to start rather than
             * start empty over data we cannot read. */
            *err = errorf(s->path, "unusable database", msg ? msg : sqlite3_errmsg(s->db));
            sqlite3_free(msg);
            storage_close(s);
            return NULL;
        }
    }
    struct { sqlite3_stmt **st; const char *sql; } stmts[] = {
        {&s->get, "SELECT value FROM kv WHERE party=?1 AND room=?2 AND key=?3"},
        {&s->put, "INSERT OR REPLACE INTO kv (party, room, key, value) VALUES (?1, ?2, ?3, ?4)"},
        {&s->del, "DELETE FROM kv WHERE party=?1 AND room=?2 AND key=?3"},
        {&s->begin, "BEGIN IMMEDIATE"},
        {&s->commit, "COMMIT"},
        {&s->rollback, "ROLLBACK"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++) {
        if (sqlite3_prepare_v2(s->db, stmts[i].sql, -1, stmts[i].st, NULL) != SQLITE_OK) {
            *err = errorf(s->path, "cannot prepare statements", sqlite3_errmsg(s->db));
            storage_close(s);
            return NULL;
        }
    }
    return s;
}

void storage_close(storage *s)
{
    if (!s) return;
    sqlite3_stmt *all[] = {s->get, s->put, s->del, s->begin, s->commit, s->rollback};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) sqlite3_finalize(all[i]);
    if (s->db) sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static void bind_room_key(sqlite3_stmt *st, const char *party, const char *room, const char *key, size_t klen)
{
    sqlite3_bind_text(st, 1, party, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, room, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, key, (int)klen, SQLITE_STATIC);
}

int storage_get(storage *s, const char *party, const char *room, const char *key, size_t klen, buf *out,
                const char **err)
{
    sqlite3_stmt *st = s->get;
    bind_room_key(st, party, room, key, klen);
    int rc = sqlite3_step(st);
    int result = 0;
    if (rc == SQLITE_ROW) {
        buf_append(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
        result = 1;
    } else if (rc != SQLITE_DONE) {
        *err = sqlite3_errmsg(s->db);
        result = -1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return result;
}

static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

void storage_commit(storage *s, const char *party, const char *room, const dict *writes, storage_done cb,
                    void *ud)
{
    if (step_once(s->begin) != 0) goto fail;
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(writes, &i));) {
        buf *v = e->val;
        sqlite3_stmt *st = v ? s->put : s->del;
        bind_room_key(st, party, room, e->key, e->klen);
        if (v) sqlite3_bind_blob(st, 4, v->data, (int)v->len, SQLITE_STATIC);
        int rc = step_once(st);
        sqlite3_clear_bindings(st);
        if (rc != 0) goto fail;
    }
    if (step_once(s->commit) != 0) goto fail;
    cb(ud, 0, NULL);
    return;
fail:;
    char *msg = xstrdup(sqlite3_errmsg(s->db));
    if (!sqlite3_get_autocommit(s->db)) step_once(s->rollback);
    cb(ud, -1, msg);
    free(msg);
}

void storage_value_free(void *v)
{
    if (!v) return;
    buf_free(v);
    free(v);
}
