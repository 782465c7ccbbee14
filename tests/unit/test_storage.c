/* test_storage.c - SQLite storage in a temporary directory: writes in a
 * batch, reads (inside and after the batch), commit/abort, durability across
 * close/reopen, ordered listing, savepoints, alarms, and refusing a file
 * that is not a database. */
#include "unit.h"

#include "log.h"
#include "storage.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *make_tmpdir(void)
{
    log_set_level(LOG_OFF); /* commit failures are logged; keep the output to one line per test */
    return unit_tmpdir("storage");
}

static storage *open_ok(const char *dir)
{
    char *err = NULL;
    storage *s = storage_open(dir, false, &err);
    ASSERT_MSG(s != NULL, "storage_open: %s", err ? err : "?");
    return s;
}

typedef struct done_rec {
    int calls, status;
    char error[256];
} done_rec;

static void on_done(void *ud, int status, const char *error)
{
    done_rec *d = ud;
    d->calls++;
    d->status = status;
    snprintf(d->error, sizeof d->error, "%s", error ? error : "");
}

static void commit_ok(storage *s)
{
    done_rec d = {0};
    storage_commit(s, on_done, &d);
    ASSERT_EQ(d.calls, 1);
    ASSERT_MSG(d.status == 0, "commit failed: %s", d.error);
    ASSERT(!storage_dirty(s));
}

static void put(storage *s, const char *party, const char *room, const char *key, size_t klen, const char *val,
                size_t vlen)
{
    const char *err = NULL;
    ASSERT_MSG(storage_put(s, party, room, key, klen, val, vlen, &err) == 0, "storage_put: %s", err);
}

#define PUT(s, room, k, v) put(s, "main", room, k, sizeof k - 1, v, sizeof v - 1)

/* Expects key to hold exactly (val, vlen), or to be absent if val is NULL. */
static void expect(storage *s, const char *party, const char *room, const char *key, size_t klen, const void *val,
                   size_t vlen)
{
    buf out;
    buf_init(&out);
    const char *err = NULL;
    int rv = storage_get(s, party, room, key, klen, &out, &err);
    ASSERT_MSG(rv >= 0, "storage_get: %s", err ? err : "?");
    if (val) {
        ASSERT_MSG(rv == 1, "key %s is missing", unit_repr(key, klen));
        ASSERT_BYTES_EQ(out.data, out.len, val, vlen);
    } else {
        ASSERT_MSG(rv == 0, "key %s is still there", unit_repr(key, klen));
        ASSERT_EQ(out.len, 0);
    }
    buf_free(&out);
}

#define EXPECT(s, room, k, v) expect(s, "main", room, k, sizeof k - 1, v, sizeof v - 1)
#define EXPECT_ABSENT(s, room, k) expect(s, "main", room, k, sizeof k - 1, NULL, 0)

TEST(storage_batch_commit_get_delete_reopen)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    ASSERT_NOT_NULL(storage_path(s));
    ASSERT_CONTAINS(storage_path(s), dir);
    ASSERT(!storage_dirty(s));

    PUT(s, "r1", "a", "1");
    ASSERT(storage_dirty(s));
    PUT(s, "r1", "b\0x", "bin\0val"); /* binary key and value */
    PUT(s, "r1", "gone", "soon");
    EXPECT(s, "r1", "a", "1"); /* the batch's own writes are visible before the commit */
    const char *err = NULL;
    ASSERT_EQ(storage_delete(s, "main", "r1", "never", 5, &err), 0); /* absent: 0 */
    commit_ok(s);

    EXPECT(s, "r1", "a", "1");
    EXPECT(s, "r1", "b\0x", "bin\0val");
    EXPECT_ABSENT(s, "r1", "b"); /* a prefix is another key */
    EXPECT(s, "r1", "gone", "soon");
    EXPECT_ABSENT(s, "r1", "never");
    /* other rooms and parties do not see it */
    EXPECT_ABSENT(s, "r2", "a");
    expect(s, "other", "r1", "a", 1, NULL, 0);

    ASSERT_EQ(storage_delete(s, "main", "r1", "gone", 4, &err), 1); /* existed: 1 */
    PUT(s, "r1", "a", "updated");
    EXPECT_ABSENT(s, "r1", "gone");
    commit_ok(s);
    EXPECT_ABSENT(s, "r1", "gone");
    EXPECT(s, "r1", "a", "updated");

    PUT(s, "r2", "a", "room two");
    commit_ok(s);
    storage_close(s);

    s = open_ok(dir);
    EXPECT(s, "r1", "a", "updated");
    EXPECT(s, "r1", "b\0x", "bin\0val");
    EXPECT_ABSENT(s, "r1", "gone");
    EXPECT(s, "r2", "a", "room two");
    storage_close(s);
    unit_remove_tree(dir);
}

TEST(storage_abort_and_close_discard_uncommitted)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    PUT(s, "r", "kept", "yes");
    commit_ok(s);
    PUT(s, "r", "aborted", "no");
    const char *err;
    ASSERT_EQ(storage_delete(s, "main", "r", "kept", 4, &err), 1);
    storage_abort(s);
    ASSERT(!storage_dirty(s));
    EXPECT_ABSENT(s, "r", "aborted");
    EXPECT(s, "r", "kept", "yes");
    PUT(s, "r", "unfinished", "no");
    storage_close(s); /* an open batch is thrown away */
    s = open_ok(dir);
    EXPECT_ABSENT(s, "r", "unfinished");
    EXPECT(s, "r", "kept", "yes");
    /* committing with no batch open just reports success */
    commit_ok(s);
    storage_commit(s, NULL, NULL);
    storage_close(s);
    unit_remove_tree(dir);
}

TEST(storage_many_keys_and_large_value)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    char k[32], v[32];
    for (int i = 0; i < 2000; i++) {
        int kn = snprintf(k, sizeof k, "key-%d", i), vn = snprintf(v, sizeof v, "value-%d", i * 3);
        put(s, "p", "room", k, (size_t)kn, v, (size_t)vn);
    }
    size_t big = 1 << 20;
    char *blob = malloc(big);
    for (size_t i = 0; i < big; i++) blob[i] = (char)(i * 13);
    put(s, "p", "room", "big", 3, blob, big);
    commit_ok(s);
    for (int i = 0; i < 2000; i += 97) {
        int kn = snprintf(k, sizeof k, "key-%d", i), vn = snprintf(v, sizeof v, "value-%d", i * 3);
        expect(s, "p", "room", k, (size_t)kn, v, (size_t)vn);
    }
    expect(s, "p", "room", "big", 3, blob, big);
    free(blob);
    storage_close(s);
    unit_remove_tree(dir);
}

TEST(storage_delete_all_only_that_room)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    PUT(s, "r1", "a", "1");
    PUT(s, "r1", "b", "2");
    PUT(s, "r2", "a", "other room");
    const char *err = NULL;
    ASSERT_EQ(storage_set_alarm(s, "main", "r1", 1000, 0, &err), 0);
    commit_ok(s);
    ASSERT(storage_delete_all(s, "main", "r1", &err) >= 0);
    commit_ok(s);
    EXPECT_ABSENT(s, "r1", "a");
    EXPECT_ABSENT(s, "r1", "b");
    EXPECT(s, "r2", "a", "other room");
    int64_t at = 0;
    ASSERT_EQ(storage_get_alarm(s, "main", "r1", &at, NULL, &err), 0); /* deleteAll drops the alarm too */
    storage_close(s);
    unit_remove_tree(dir);
}

/* luaparty test empties the database between tests: every room, every alarm. */
TEST(storage_wipe_empties_every_room)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    PUT(s, "r1", "a", "1");
    PUT(s, "r2", "b", "2");
    const char *err = NULL;
    ASSERT_EQ(storage_set_alarm(s, "main", "r1", 1000, 0, &err), 0);
    commit_ok(s);
    PUT(s, "r3", "c", "in a batch not committed yet");
    char *werr = NULL;
    ASSERT_MSG(storage_wipe(s, &werr) == 0, "storage_wipe: %s", werr ? werr : "?");
    ASSERT(!storage_dirty(s));
    EXPECT_ABSENT(s, "r1", "a");
    EXPECT_ABSENT(s, "r2", "b");
    EXPECT_ABSENT(s, "r3", "c");
    int64_t at = 0;
    ASSERT_EQ(storage_next_alarm(s, &at), 0);
    PUT(s, "r1", "a", "again"); /* and it works as before */
    commit_ok(s);
    storage_close(s);
    s = open_ok(dir);
    EXPECT(s, "r1", "a", "again");
    EXPECT_ABSENT(s, "r2", "b");
    storage_close(s);
    unit_remove_tree(dir);
}

/* ---- list ---- */

typedef struct rows {
    int n;
    char keys[64][16];
    size_t klens[64];
    char vals[64][16];
} rows;

static void collect(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    rows *r = ud;
    ASSERT(r->n < 64 && klen < 16 && vlen < 16);
    memcpy(r->keys[r->n], key, klen);
    r->keys[r->n][klen] = 0;
    r->klens[r->n] = klen;
    memcpy(r->vals[r->n], val, vlen);
    r->vals[r->n][vlen] = 0;
    r->n++;
}

/* Lists with range and returns the keys joined with ',' (NULs shown as '0'). */
static const char *list(storage *s, const storage_range *range)
{
    static char out[1024];
    rows r;
    memset(&r, 0, sizeof r);
    const char *err = NULL;
    ASSERT_MSG(storage_list(s, "main", "r", range, collect, &r, &err) == 0, "storage_list: %s", err);
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < r.n; i++) {
        if (i) out[o++] = ',';
        for (size_t j = 0; j < r.klens[i]; j++) out[o++] = r.keys[i][j] ? r.keys[i][j] : '0';
    }
    out[o] = 0;
    return out;
}

static storage_range all(void) { return (storage_range){.limit = -1}; }

#define KEY(field, lit) .field = lit, .field##_len = sizeof lit - 1

TEST(storage_list_ranges)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    static const char *keys[] = {"b", "a", "ab", "abc", "b\xff", "c", "a\x01", "ba"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) put(s, "main", "r", keys[i], strlen(keys[i]), "v", 1);
    put(s, "main", "r", "a\0z", 3, "nul", 3);
    put(s, "main", "other", "aa", 2, "x", 1);
    commit_ok(s);

    static const struct {
        storage_range r;
        bool limited; /* false: no limit (r.limit is set to -1) */
        const char *want;
    } cases[] = {
        /* byte order (memcmp; shorter first) */
        {{0}, false, "a,a0z,a\x01,ab,abc,b,ba,b\xff,c"},
        {{.reverse = true}, false, "c,b\xff,ba,b,abc,ab,a\x01,a0z,a"},
        {{.limit = 3}, true, "a,a0z,a\x01"},
        {{.limit = 0}, true, ""},
        {{KEY(start, "ab")}, false, "ab,abc,b,ba,b\xff,c"},
        {{KEY(start_after, "ab")}, false, "abc,b,ba,b\xff,c"},
        {{KEY(end, "b")}, false, "a,a0z,a\x01,ab,abc"}, /* end is exclusive */
        {{KEY(end, "b"), KEY(start, "a\x01"), .reverse = true, .limit = 2}, true, "abc,ab"},
        {{KEY(prefix, "a")}, false, "a,a0z,a\x01,ab,abc"},
        {{KEY(prefix, "ab")}, false, "ab,abc"},
        {{KEY(prefix, "b")}, false, "b,ba,b\xff"},
        {{KEY(prefix, "b\xff")}, false, "b\xff"}, /* no upper bound exists: everything from the prefix up */
        {{KEY(prefix, "")}, false, "a,a0z,a\x01,ab,abc,b,ba,b\xff,c"},
        {{KEY(prefix, "zz")}, false, ""},
        /* prefix combined with start / end */
        {{KEY(prefix, "a"), KEY(start, "ab")}, false, "ab,abc"},
        {{KEY(prefix, "a"), KEY(end, "ab")}, false, "a,a0z,a\x01"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        storage_range r = cases[i].r;
        if (!cases[i].limited) r.limit = -1;
        const char *got = list(s, &r);
        ASSERT_MSG(!strcmp(got, cases[i].want), "range %zu: %s", i, unit_repr(got, strlen(got)));
    }
    storage_close(s);
    unit_remove_tree(dir);
}

/* A prefix longer than any key can be (lua_storage.c caps keys at 2048
 * bytes) matches nothing: it must not be ignored. */
TEST(storage_list_long_prefix_matches_nothing)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    put(s, "main", "r", "a", 1, "1", 1);
    put(s, "main", "r", "b", 1, "2", 1);
    commit_ok(s);
    static char prefix[3000];
    memset(prefix, 'a', sizeof prefix);
    storage_range r = all();
    r.prefix = prefix;
    r.prefix_len = sizeof prefix;
    ASSERT_STR_EQ(list(s, &r), "");
    storage_close(s);
    unit_remove_tree(dir);
}

/* ---- savepoints ---- */

TEST(storage_savepoints)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    const char *err = NULL;
    PUT(s, "r", "outer", "1");
    ASSERT_EQ(storage_savepoint(s, &err), 0);
    PUT(s, "r", "inner", "2");
    ASSERT_EQ(storage_rollback_to(s, &err), 0);
    EXPECT_ABSENT(s, "r", "inner");
    EXPECT(s, "r", "outer", "1");
    ASSERT_EQ(storage_savepoint(s, &err), 0);
    PUT(s, "r", "kept", "3");
    ASSERT_EQ(storage_savepoint(s, &err), 0); /* nested */
    PUT(s, "r", "nested", "4");
    ASSERT_EQ(storage_rollback_to(s, &err), 0);
    ASSERT_EQ(storage_release(s, &err), 0);
    commit_ok(s);
    storage_close(s);
    s = open_ok(dir);
    EXPECT(s, "r", "outer", "1");
    EXPECT(s, "r", "kept", "3");
    EXPECT_ABSENT(s, "r", "inner");
    EXPECT_ABSENT(s, "r", "nested");
    /* a savepoint opens a batch by itself */
    ASSERT(!storage_dirty(s));
    ASSERT_EQ(storage_savepoint(s, &err), 0);
    ASSERT(storage_dirty(s));
    PUT(s, "r", "in-txn", "5");
    ASSERT_EQ(storage_release(s, &err), 0);
    commit_ok(s);
    EXPECT(s, "r", "in-txn", "5");
    storage_close(s);
    unit_remove_tree(dir);
}

/* ---- alarms ---- */

typedef struct due {
    int n;
    char party[8][16], room[8][16];
    int64_t at[8];
} due;

static void on_due(void *ud, const char *party, const char *room, int64_t at, int retries)
{
    (void)retries;
    due *d = ud;
    ASSERT(d->n < 8);
    snprintf(d->party[d->n], sizeof d->party[0], "%s", party);
    snprintf(d->room[d->n], sizeof d->room[0], "%s", room);
    d->at[d->n] = at;
    d->n++;
}

TEST(storage_alarm_retries_kept)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    const char *err = NULL;
    int64_t at = 0;
    int retries = -1;
    ASSERT_EQ(storage_set_alarm(s, "main", "r1", 7000, 3, &err), 0);
    commit_ok(s);
    storage_close(s);
    s = open_ok(dir); /* a retry count survives a restart */
    ASSERT_EQ(storage_get_alarm(s, "main", "r1", &at, &retries, &err), 1);
    ASSERT_EQ(at, 7000);
    ASSERT_EQ(retries, 3);
    storage_close(s);
    unit_remove_tree(dir);
}

TEST(storage_alarms)
{
    const char *dir = make_tmpdir();
    storage *s = open_ok(dir);
    const char *err = NULL;
    int64_t at = -1;
    ASSERT_EQ(storage_next_alarm(s, &at), 0);
    ASSERT_EQ(storage_get_alarm(s, "main", "r1", &at, NULL, &err), 0);
    ASSERT_EQ(storage_set_alarm(s, "main", "r1", 5000, 0, &err), 0);
    ASSERT_EQ(storage_set_alarm(s, "main", "r1", 3000, 0, &err), 0); /* one per room: replaced */
    ASSERT_EQ(storage_set_alarm(s, "main", "r2", 1000, 0, &err), 0);
    ASSERT_EQ(storage_set_alarm(s, "chat", "r1", 9000000000000LL, 0, &err), 0);
    commit_ok(s);
    ASSERT_EQ(storage_get_alarm(s, "main", "r1", &at, NULL, &err), 1);
    ASSERT_EQ(at, 3000);
    ASSERT_EQ(storage_next_alarm(s, &at), 1);
    ASSERT_EQ(at, 1000);
    due d;
    memset(&d, 0, sizeof d);
    ASSERT_EQ(storage_due_alarms(s, 3000, 10, on_due, &d), 2);
    ASSERT_EQ(d.n, 2);
    ASSERT_STR_EQ(d.room[0], "r2"); /* earliest first */
    ASSERT_EQ(d.at[0], 1000);
    ASSERT_STR_EQ(d.room[1], "r1");
    ASSERT_STR_EQ(d.party[1], "main");
    memset(&d, 0, sizeof d);
    ASSERT_EQ(storage_due_alarms(s, 3000, 1, on_due, &d), 1); /* limit */
    ASSERT_EQ(storage_delete_alarm(s, "main", "r2", &err), 0);
    commit_ok(s);
    ASSERT_EQ(storage_get_alarm(s, "main", "r2", &at, NULL, &err), 0);
    storage_close(s);
    s = open_ok(dir);
    ASSERT_EQ(storage_next_alarm(s, &at), 1);
    ASSERT_EQ(at, 3000);
    ASSERT_EQ(storage_get_alarm(s, "chat", "r1", &at, NULL, &err), 1);
    ASSERT_EQ(at, 9000000000000LL);
    storage_close(s);
    unit_remove_tree(dir);
}

/* ---- opening ---- */

TEST(storage_creates_missing_directories)
{
    const char *dir = make_tmpdir();
    char nested[128];
    snprintf(nested, sizeof nested, "%s/a/b/c", dir);
    char *err = NULL;
    storage *s = storage_open(nested, true, &err);
    ASSERT_MSG(s != NULL, "storage_open: %s", err);
    storage_close(s);
    char db[160];
    snprintf(db, sizeof db, "%s/luaparty.db", nested);
    ASSERT_EQ(access(db, F_OK), 0);
    unit_remove_tree(dir);
}

TEST(storage_rejects_non_database)
{
    const char *dir = make_tmpdir();
    char db[128];
    snprintf(db, sizeof db, "%s/luaparty.db", dir);
    char garbage[4096];
    uint64_t rng = 99;
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)unit_rand(&rng);
    memcpy(garbage, "this is not a database, it is a shopping list\n", 46);
    unit_write_file(dir, "luaparty.db", garbage, sizeof garbage);
    char *err = NULL;
    storage *s = storage_open(dir, false, &err);
    ASSERT_NULL(s);
    ASSERT_NOT_NULL(err);
    ASSERT_CONTAINS(err, db);
    ASSERT_CONTAINS(err, "not a database");
    free(err);
    /* the file was left alone */
    size_t len = 0;
    char *after = read_file(db, &len);
    ASSERT_NOT_NULL(after);
    ASSERT_BYTES_EQ(after, len, garbage, sizeof garbage);
    free(after);
    /* a short text file too */
    unit_write_file(dir, "luaparty.db", "hello\n", 6);
    err = NULL;
    s = storage_open(dir, false, &err);
    ASSERT_NULL(s);
    ASSERT_CONTAINS(err, db);
    free(err);
    unit_remove_tree(dir);
}

TEST(storage_open_fails_when_dir_is_a_file)
{
    const char *dir = make_tmpdir();
    char file[128];
    snprintf(file, sizeof file, "%s/file", dir);
    unit_write_file(dir, "file", "x", 1);
    char *err = NULL;
    storage *s = storage_open(file, false, &err);
    ASSERT_NULL(s);
    ASSERT_NOT_NULL(err);
    ASSERT_CONTAINS(err, file);
    free(err);
    unit_remove_tree(dir);
}
