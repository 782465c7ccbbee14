/* cluster_storage.c - room storage whose record is in Redis (see
 * cluster_storage.h): fenced commits, loading a room's copy on activation,
 * the alarm index, and the export/import commands.
 *
 * A commit that gets no answer (Redis restarting, a dropped connection), or
 * an answer that means "not now" (LOADING while Redis reads its AOF), is sent
 * again until the node's lease runs out: lp_commit knows a retry of a commit
 * that landed (same fence and token, seq one past its base) and answers it
 * again, so a retry never applies a batch twice. */
#include "cluster_storage.h"

#include "log.h"
#include "metrics.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define COMMIT_TRY_MS 1000    /* one attempt; retried while the lease holds */
#define LOAD_TIMEOUT_MS 5000
#define ALARMS_TIMEOUT_MS 2000
#define IMPORT_CHUNK 500      /* entries per lp_import call */

typedef struct commit commit;

struct cluster_storage {
    uv_loop_t *loop;
    redis_link *link;
    commit *inflight;         /* commits waiting for Redis (failed at close) */
    const cluster *node;
    storage *local;
    storage_record rec;
    uint64_t next_fence, next_base; /* prepare -> send, within one storage_commit */
};

static bool is_int(const redisReply *r) { return r && r->type == REDIS_REPLY_INTEGER; }
static bool is_str(const redisReply *r) { return r && r->type == REDIS_REPLY_STRING; }

/* "<prefix>{room}" for both of a room's keys. */
typedef struct room_keys {
    buf own, kv;
} room_keys;

static void keys_of(room_keys *k, const char *party, const char *room)
{
    buf_init(&k->own);
    buf_init(&k->kv);
    redis_room_key(&k->own, REDIS_OWN_PREFIX, party, room);
    redis_room_key(&k->kv, "lp:kv:", party, room);
}

static void keys_free(room_keys *k)
{
    buf_free(&k->own);
    buf_free(&k->kv);
}

static void set_status(void *ud, int status, const char *err) { *(int *)ud = status; }

/* Commits what this file wrote locally (nothing of it is recorded, so the
 * callback runs at once). */
static int commit_copy(storage *s)
{
    int status = -1;
    storage_commit(s, set_status, &status);
    return status;
}

/* The local copy's version is unknown from now on: the room is loaded
 * again from Redis when it next starts here. */
static void forget_copy(cluster_storage *cs, const char *party, const char *room)
{
    const char *err = NULL;
    bool open = storage_dirty(cs->local);
    if (storage_version_forget(cs->local, party, room, &err) != 0) {
        log_error("%s/%s: cannot mark the local copy stale: %s", party, room, err);
        return;
    }
    if (!open) commit_copy(cs->local);
}

/* ---- commits -------------------------------------------------------------- */

struct commit {
    commit *prev, *next;      /* cs->inflight */
    cluster_storage *cs;
    storage_batch b;
    room_keys keys;
    uint64_t fence, base;
    char token[37];           /* this commit's id: a retry is known by it */
    storage_done done;
    void *done_ud;
    uv_timer_t *retry;        /* a retry after Redis said "not now" (made on first use) */
};

static void commit_send(commit *k);

static void retry_due(uv_timer_t *t) { commit_send(t->data); }

/* Redis answered but cannot take writes yet (loading its AOF after a
 * restart, a script running too long): the same commit again in a moment. */
static void commit_retry_later(commit *k)
{
    if (!k->retry) {
        k->retry = xmalloc(sizeof *k->retry);
        uv_timer_init(k->cs->loop, k->retry);
        k->retry->data = k;
    }
    uv_timer_start(k->retry, retry_due, 50, 0);
}

/* Error replies that say "later", not "no". */
static bool transient(const char *err)
{
    static const char *const later[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "ERR Function not found"};
    for (size_t i = 0; i < sizeof later / sizeof *later; i++)
        if (!strncmp(err, later[i], strlen(later[i]))) return true;
    return false;
}

static void free_handle(uv_handle_t *h) { free(h); }

static void commit_finish(commit *k, int status, const char *err)
{
    cluster_storage *cs = k->cs;
    if (status == 0) {
        METRIC_ADD(cluster_commits, 1);
    } else {
        if (status == STORAGE_FENCED) METRIC_ADD(cluster_commits_fenced, 1);
        else METRIC_ADD(cluster_commits_failed, 1);
        forget_copy(cs, k->b.party, k->b.room);
    }
    if (k->prev) k->prev->next = k->next;
    else cs->inflight = k->next;
    if (k->next) k->next->prev = k->prev;
    if (k->done) k->done(k->done_ud, status, err);
    if (k->retry) uv_close((uv_handle_t *)k->retry, free_handle);
    storage_batch_free(&k->b);
    keys_free(&k->keys);
    free(k);
}

static void commit_answered(void *arg, const redis_result *res)
{
    commit *k = arg;
    const redisReply *r = res->reply;
    if (!r) { /* no answer: it may or may not have landed; a retry tells */
        if (cluster_lease_valid(k->cs->node)) {
            METRIC_ADD(cluster_commit_retries, 1);
            commit_send(k);
        } else {
            commit_finish(k, STORAGE_FENCED, "this node lost its cluster lease before redis had the write");
        }
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && transient(r->str) && cluster_lease_valid(k->cs->node)) {
        METRIC_ADD(cluster_commit_retries, 1);
        if (!strncmp(r->str, "ERR Function not found", 22)) redis_link_load_library(k->cs->link);
        commit_retry_later(k);
    } else if (is_int(r) && (uint64_t)r->integer == k->base + 1) {
        commit_finish(k, 0, NULL);
    } else if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPFENCED", 8)) {
        commit_finish(k, STORAGE_FENCED, "another node owns the room now (commit refused by its fence)");
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "redis refused the commit: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an answer that is not the new seq");
        commit_finish(k, -1, msg);
    }
}

static void commit_send(commit *k)
{
    size_t nops = 0, pos = 0;
    const char *a[2];
    size_t l[2];
    int n;
    while (storage_batch_next(&k->b, &pos, a, l, &n)) nops++;
    char fence[24], base[24];
    snprintf(fence, sizeof fence, "%" PRIu64, k->fence);
    snprintf(base, sizeof base, "%" PRIu64, k->base);
    const char *head[] = {"FCALL", "lp_commit", "3", k->keys.own.data, k->keys.kv.data, "lp:alarms", fence, base,
                          k->token};
    const int nhead = (int)(sizeof head / sizeof *head);
    size_t max = (size_t)nhead + 3 * nops;
    const char **argv = xmalloc(max * sizeof *argv);
    size_t *lens = xmalloc(max * sizeof *lens);
    int argc = 0;
    for (; argc < nhead; argc++) {
        argv[argc] = head[argc];
        lens[argc] = strlen(head[argc]);
    }
    pos = 0;
    int op;
    while ((op = storage_batch_next(&k->b, &pos, a, l, &n))) {
        static const char letters[] = "PDXAa"; /* the op as a one-byte argument */
        argv[argc] = strchr(letters, op);
        lens[argc++] = 1;
        for (int i = 0; i < n; i++) {
            argv[argc] = a[i];
            lens[argc++] = l[i];
        }
    }
    redis_link_call(k->cs->link, argc, argv, lens, COMMIT_TRY_MS, 0, commit_answered, k);
    free(argv);
    free(lens);
}

/* Before the local COMMIT: the batch moves the copy to the next version, in
 * the same transaction, so a crash between the local commit and Redis'
 * answer leaves a copy whose version Redis never had (or had: then both
 * agree). */
static int rec_prepare(void *ud, storage *s, const storage_batch *b, const char **err)
{
    cluster_storage *cs = ud;
    uint64_t fence, vfence, seq;
    int rc = storage_version_get(s, b->party, b->room, &fence, &vfence, &seq, err);
    if (rc < 0) return -1;
    if (rc == 0 || fence == 0) {
        *err = "this node's copy of the room is not known to be current (it was not activated here)";
        return -1;
    }
    cs->next_fence = fence;
    cs->next_base = seq;
    return storage_version_put(s, b->party, b->room, fence, fence, seq + 1, err);
}

static void rec_send(void *ud, storage_batch *b, storage_done done, void *done_ud)
{
    cluster_storage *cs = ud;
    commit *k = xcalloc(1, sizeof *k);
    k->cs = cs;
    k->b = *b;
    memset(b, 0, sizeof *b); /* taken */
    keys_of(&k->keys, k->b.party, k->b.room);
    k->fence = cs->next_fence;
    k->base = cs->next_base;
    uuid_v4(k->token);
    k->done = done;
    k->done_ud = done_ud;
    k->next = cs->inflight;
    if (k->next) k->next->prev = k;
    cs->inflight = k;
    commit_send(k);
}

/* ---- activation ----------------------------------------------------------- */

typedef struct activation {
    cluster_storage *cs;
    char *party, *room;
    uint64_t fence;
    void (*cb)(void *arg, const char *err);
    void *arg;
} activation;

static void activation_free(activation *x)
{
    free(x->party);
    free(x->room);
    free(x);
}

/* Puts lp_load's answer {vfence, seq, alarm, retries, k, v, ...} (checked
 * by load_reply_ok) into s as the room's entries and alarm, in place of what
 * s had: a node's copy on activation, and `luaparty storage import`. */
static int put_loaded(storage *s, const char *party, const char *room, const redisReply *r, const char **err)
{
    int rc = storage_delete_all(s, party, room, err);
    for (size_t i = 4; rc == 0 && i + 1 < r->elements; i += 2) {
        const redisReply *key = r->element[i], *val = r->element[i + 1];
        rc = storage_put(s, party, room, key->str, key->len, val->str, val->len, err);
    }
    const redisReply *alarm = r->element[2];
    if (rc == 0 && alarm->len > 0)
        rc = storage_set_alarm(s, party, room, strtoll(alarm->str, NULL, 10), (int)r->element[3]->integer, err);
    return rc;
}

/* Writes lp_load's answer as the room's local copy, with its version, in
 * one local transaction that is not recorded. */
static const char *write_copy(cluster_storage *cs, const activation *x, const redisReply *r)
{
    storage *s = cs->local;
    const char *err = NULL;
    if (storage_dirty(s)) log_error("cluster storage: loading %s/%s while a batch is open", x->party, x->room);
    storage_journal_pause(s, true);
    int rc = put_loaded(s, x->party, x->room, r, &err);
    if (rc == 0)
        rc = storage_version_put(s, x->party, x->room, x->fence, (uint64_t)r->element[0]->integer,
                                 (uint64_t)r->element[1]->integer, &err);
    storage_journal_pause(s, false);
    if (rc != 0) {
        storage_abort(s);
        return err ? err : "local write failed";
    }
    if (commit_copy(s) != 0) return "local commit failed";
    METRIC_ADD(cluster_room_loads, 1);
    METRIC_ADD(cluster_room_load_keys, (r->elements - 4) / 2);
    return NULL;
}

static bool load_reply_ok(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 4 || r->elements % 2 != 0) return false;
    if (!is_int(r->element[0]) || !is_int(r->element[1]) || !is_str(r->element[2]) || !is_int(r->element[3]))
        return false;
    for (size_t i = 4; i < r->elements; i++)
        if (!is_str(r->element[i])) return false;
    return true;
}

static void loaded(void *arg, const redis_result *res)
{
    activation *x = arg;
    const char *err = NULL;
    char msg[300];
    if (!res->reply) {
        snprintf(msg, sizeof msg, "cannot load the room's data from redis: %s", res->why);
        err = msg;
    } else if (!load_reply_ok(res->reply)) {
        snprintf(msg, sizeof msg, "redis answered lp_load with %s",
                 res->reply->type == REDIS_REPLY_ERROR ? res->reply->str : "something else than a room");
        err = msg;
    } else {
        err = write_copy(x->cs, x, res->reply);
    }
    if (err) log_error("%s/%s: %s", x->party, x->room, err);
    x->cb(x->arg, err);
    activation_free(x);
}

void cluster_storage_activate(cluster_storage *cs, const char *party, const char *room, uint64_t fence,
                              uint64_t vfence, uint64_t seq, void (*cb)(void *arg, const char *err), void *arg)
{
    uint64_t f0 = 0, vf0 = 0, s0 = 0;
    const char *err = NULL;
    int rc = storage_version_get(cs->local, party, room, &f0, &vf0, &s0, &err);
    if (rc == 1 && f0 == fence) {
        /* This node holds the room under this very fence (a second claim of
         * a room it owns): its copy is the one its room writes, maybe one
         * commit ahead of Redis while that commit is on its way. Loading
         * Redis' data over it would lose that write. */
        cb(arg, NULL);
        return;
    }
    if (rc == 1 && vf0 == vfence && s0 == seq) { /* the copy is current: record the new fence */
        int status = storage_version_put(cs->local, party, room, fence, vfence, seq, &err);
        if (status == 0) status = commit_copy(cs->local);
        cb(arg, status == 0 ? NULL : "cannot record the room's fence locally");
        return;
    }
    activation *x = xcalloc(1, sizeof *x);
    *x = (activation){cs, xstrdup(party), xstrdup(room), fence, cb, arg};
    room_keys k;
    keys_of(&k, party, room);
    const char *argv[] = {"FCALL", "lp_load", "2", k.own.data, k.kv.data};
    redis_link_call(cs->link, 5, argv, NULL, LOAD_TIMEOUT_MS, 0, loaded, x);
    keys_free(&k);
}

/* ---- alarms --------------------------------------------------------------- */

typedef struct due_call {
    cluster_alarms_fn cb;
    void *arg;
} due_call;

static void due_answered(void *arg, const redis_result *res)
{
    due_call *d = arg;
    const redisReply *r = res->reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_int(r->element[0]) || (r->elements - 1) % 3) {
        d->cb(d->arg, NULL, 0, -1,
              res->why ? res->why : r && r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected answer");
        free(d);
        return;
    }
    size_t n = (r->elements - 1) / 3, got = 0;
    cluster_alarm *due = xcalloc(n + 1, sizeof *due);
    for (size_t i = 0; i < n; i++) {
        const redisReply *m = r->element[1 + 3 * i], *at = r->element[2 + 3 * i], *tries = r->element[3 + 3 * i];
        buf party, room;
        buf_init(&party);
        buf_init(&room);
        if (is_str(m) && is_str(at) && is_int(tries) && redis_room_parse(m->str, m->len, &party, &room)) {
            due[got++] = (cluster_alarm){buf_steal(&party), buf_steal(&room), strtoll(at->str, NULL, 10),
                                         (int)tries->integer};
        }
        buf_free(&party);
        buf_free(&room);
    }
    d->cb(d->arg, due, (int)got, r->element[0]->integer, NULL);
    for (size_t i = 0; i < got; i++) {
        free(due[i].party);
        free(due[i].room);
    }
    free(due);
    free(d);
}

void cluster_storage_due_alarms(cluster_storage *cs, int64_t now, int limit, cluster_alarms_fn cb, void *arg)
{
    char ep[24], nows[24], lim[24];
    snprintf(ep, sizeof ep, "%" PRIu64, cluster_epoch(cs->node));
    snprintf(nows, sizeof nows, "%" PRId64, now);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *argv[] = {"FCALL", "lp_alarm_due", "1", "lp:alarms", cluster_node_id(cs->node), ep, nows, lim};
    due_call *d = xmalloc(sizeof *d);
    *d = (due_call){cb, arg};
    redis_link_call(cs->link, 8, argv, NULL, ALARMS_TIMEOUT_MS, 0, due_answered, d);
}

void cluster_storage_drop_alarm(cluster_storage *cs, const char *party, const char *room, int64_t at)
{
    buf m;
    buf_init(&m);
    redis_room_key(&m, "", party, room);
    m.data[m.len - 1] = 0; /* the member is what stands between the braces: "{" + member + "}" */
    char ats[24];
    snprintf(ats, sizeof ats, "%" PRId64, at);
    const char *argv[] = {"FCALL", "lp_alarm_drop", "1", "lp:alarms", m.data + 1, ats};
    redis_link_call(cs->link, 6, argv, NULL, ALARMS_TIMEOUT_MS, 0, NULL, NULL);
    buf_free(&m);
}

/* ---- the worker's instance ------------------------------------------------ */

cluster_storage *cluster_storage_new(uv_loop_t *loop, const redis_url *url, const cluster *node, storage *local)
{
    cluster_storage *cs = xcalloc(1, sizeof *cs);
    cs->loop = loop;
    cs->node = node;
    cs->local = local;
    redis_link_opts o = {.url = url, .name = "cluster storage"};
    cs->link = redis_link_new(loop, &o);
    cs->rec = (storage_record){rec_prepare, rec_send, cs};
    storage_set_record(local, &cs->rec);
    return cs;
}

void cluster_storage_close(cluster_storage *cs)
{
    if (!cs) return;
    storage_set_record(cs->local, NULL);
    redis_link_close(cs->link); /* none of its callbacks runs from now on */
    while (cs->inflight) commit_finish(cs->inflight, -1, "the server is shutting down");
    free(cs);
}

/* ---- luaparty storage export / import ------------------------------------- */

typedef struct room_list {
    char **party, **room;
    size_t n, cap;
} room_list;

static void add_room(void *ud, const char *party, const char *room)
{
    room_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->party = xrealloc(l->party, l->cap * sizeof *l->party);
        l->room = xrealloc(l->room, l->cap * sizeof *l->room);
    }
    l->party[l->n] = xstrdup(party);
    l->room[l->n++] = xstrdup(room);
}

static void room_list_free(room_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->party[i]);
        free(l->room[i]);
    }
    free(l->party);
    free(l->room);
}

/* A room's entries, gathered from storage_list into argv form. */
typedef struct entries {
    buf data;              /* keys and values, back to back */
    size_t *off, *len;     /* 2 per entry */
    size_t n, cap;
} entries;

static void add_entry(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    entries *e = ud;
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->off = xrealloc(e->off, e->cap * sizeof *e->off);
        e->len = xrealloc(e->len, e->cap * sizeof *e->len);
    }
    e->off[e->n] = e->data.len;
    e->len[e->n++] = klen;
    buf_append(&e->data, key, klen);
    e->off[e->n] = e->data.len;
    e->len[e->n++] = vlen;
    buf_append(&e->data, val, vlen);
}

/* Opens the database at dir for the tools: it must be single-node data. */
static storage *open_single(const char *dir, char **err)
{
    storage *s = storage_open(dir, false, err);
    if (s && storage_check_role(s, false, err) != 0) {
        storage_close(s);
        return NULL;
    }
    return s;
}

/* lp_import of one room, in chunks: the first replaces the room's data. */
static int export_room(redisContext *rc, const redis_url *u, storage *s, const char *party, const char *room,
                       char **err)
{
    entries e = {0};
    buf_init(&e.data);
    const char *serr = NULL;
    storage_range all = {.limit = -1};
    int64_t at = 0;
    int retries = 0;
    int has_alarm = storage_get_alarm(s, party, room, &at, &retries, &serr);
    if (has_alarm < 0 || storage_list(s, party, room, &all, add_entry, &e, &serr) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot read %s/%s: %s", party, room, serr);
        *err = xstrdup(msg);
        goto out;
    }
    room_keys k;
    keys_of(&k, party, room);
    char ats[24] = "", tries[24] = "0";
    if (has_alarm) {
        snprintf(ats, sizeof ats, "%" PRId64, at);
        snprintf(tries, sizeof tries, "%d", retries);
    }
    size_t done = 0;
    do {
        size_t part = e.n - done > 2 * IMPORT_CHUNK ? 2 * IMPORT_CHUNK : e.n - done;
        size_t argc = 9 + part;
        const char **argv = xmalloc(argc * sizeof *argv);
        size_t *lens = xmalloc(argc * sizeof *lens);
        const char *head[] = {"FCALL", "lp_import", "3", k.own.data, k.kv.data, "lp:alarms",
                              done ? "more" : "first", ats, tries};
        for (size_t i = 0; i < 9; i++) {
            argv[i] = head[i];
            lens[i] = strlen(head[i]);
        }
        for (size_t i = 0; i < part; i++) {
            argv[9 + i] = e.data.data + e.off[done + i];
            lens[9 + i] = e.len[done + i];
        }
        redisReply *r = redisCommandArgv(rc, (int)argc, argv, lens);
        free(argv);
        free(lens);
        char msg[400] = "";
        if (!r) snprintf(msg, sizeof msg, "redis: %s", rc->errstr);
        else if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPOWNED ", 8))
            snprintf(msg, sizeof msg, "%s/%s is live on node %s: stop the cluster before exporting", party, room,
                     r->str + 8);
        else if (r->type == REDIS_REPLY_ERROR) snprintf(msg, sizeof msg, "redis refused %s/%s: %s", party, room, r->str);
        if (r) freeReplyObject(r);
        if (msg[0]) {
            *err = xstrdup(msg);
            break;
        }
        done += part;
    } while (done < e.n);
    keys_free(&k);
out:
    buf_free(&e.data);
    free(e.off);
    free(e.len);
    return *err ? -1 : 0;
}

/* Connects for a tool and loads the functions it calls. */
static redisContext *tool_connect(const char *url, redis_url *u, char **err)
{
    if (redis_url_parse(url, u, err) != 0) return NULL;
    redisContext *rc = redis_sync_connect(u, err);
    if (rc && redis_sync_load_library(rc, u, err) != 0) {
        redisFree(rc);
        return NULL;
    }
    return rc;
}

int cluster_storage_export(const char *url, const char *persist_dir, FILE *out)
{
    char *err = NULL;
    redis_url u;
    redisContext *rc = tool_connect(url, &u, &err);
    storage *s = rc ? open_single(persist_dir, &err) : NULL;
    room_list rooms = {0};
    const char *serr = NULL;
    size_t failed = 0;
    if (s && storage_each_room(s, add_room, &rooms, &serr) != 0) {
        fprintf(stderr, "luaparty storage export: cannot list the rooms: %s\n", serr);
        failed = 1;
    }
    for (size_t i = 0; s && i < rooms.n; i++) {
        char *why = NULL;
        if (export_room(rc, &u, s, rooms.party[i], rooms.room[i], &why) != 0) {
            fprintf(stderr, "luaparty storage export: %s\n", why);
            free(why);
            failed++;
        }
    }
    if (s) fprintf(out, "exported %zu of %zu rooms from %s\n", rooms.n - failed, rooms.n, storage_path(s));
    else fprintf(stderr, "luaparty storage export: %s\n", err);
    room_list_free(&rooms);
    free(err);
    storage_close(s);
    if (rc) redisFree(rc);
    return !s || failed ? 1 : 0;
}

/* Writes one room from lp_load's answer into s (a single-node database). */
static int import_room(storage *s, const char *party, const char *room, const redisReply *r, const char **err)
{
    if (put_loaded(s, party, room, r, err) != 0) {
        storage_abort(s);
        return -1;
    }
    return commit_copy(s);
}

int cluster_storage_import(const char *url, const char *persist_dir, FILE *out)
{
    char *err = NULL;
    redis_url u;
    redisContext *rc = tool_connect(url, &u, &err);
    storage *s = rc ? open_single(persist_dir, &err) : NULL;
    if (!s) {
        fprintf(stderr, "luaparty storage import: %s\n", err);
        free(err);
        if (rc) redisFree(rc);
        return 1;
    }
    size_t rooms = 0, failed = 0;
    char cursor[32] = "0";
    do {
        redisReply *page = redis_sync_cmd(rc, &u, "SCAN", false, &err, "SCAN", cursor, "MATCH",
                                          REDIS_OWN_PREFIX "{*}", "COUNT", "500", NULL);
        if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2) {
            fprintf(stderr, "luaparty storage import: %s\n", err ? err : "SCAN answered something unexpected");
            if (page) freeReplyObject(page);
            failed++;
            break;
        }
        str_copy(cursor, sizeof cursor, page->element[0]->str);
        const redisReply *keys = page->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *own = keys->element[i];
            buf party, room;
            buf_init(&party);
            buf_init(&room);
            size_t pre = sizeof REDIS_OWN_PREFIX; /* the prefix and '{' (MATCH: the key ends with '}') */
            if (!redis_room_parse(own->str + pre, own->len - pre - 1, &party, &room) || !room.len) goto next;
            room_keys k;
            keys_of(&k, party.data, room.data);
            const char *argv[] = {"FCALL", "lp_load", "2", k.own.data, k.kv.data};
            redisReply *r = redisCommandArgv(rc, 5, argv, NULL);
            keys_free(&k);
            const char *serr = NULL;
            if (!load_reply_ok(r)) {
                fprintf(stderr, "luaparty storage import: %s/%s: %s\n", party.data, room.data,
                        r && r->type == REDIS_REPLY_ERROR ? r->str : "no usable answer from redis");
                failed++;
            } else if (r->elements > 4 || r->element[2]->len) { /* a room with data */
                if (import_room(s, party.data, room.data, r, &serr) != 0) {
                    fprintf(stderr, "luaparty storage import: %s/%s: %s\n", party.data, room.data,
                            serr ? serr : "local write failed");
                    failed++;
                } else {
                    rooms++;
                }
            }
            if (r) freeReplyObject(r);
        next:
            buf_free(&party);
            buf_free(&room);
        }
        freeReplyObject(page);
    } while (strcmp(cursor, "0") != 0);
    fprintf(out, "imported %zu rooms into %s\n", rooms, storage_path(s));
    free(err);
    storage_close(s);
    redisFree(rc);
    return failed ? 1 : 0;
}
