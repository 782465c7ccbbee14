/* cluster.c - this node's membership in a Redis-backed cluster (cluster.h):
 * Redis URL parsing, registration, the lease with self-fencing and rejoin,
 * room claims with the load guard, and `luaparty cluster status`.
 *
 * A synchronous hiredis connection is used at start (so a bad URL, password
 * or node id collision fails before the server listens) and by the status
 * command. Everything else goes over one async connection on the libuv loop.
 *
 * hiredis 0.14 has no command timeouts, so this file keeps its own: every
 * request records when it was sent, and a 50 ms watchdog tears the
 * connection down when one is overdue (hiredis then runs every pending
 * callback with a NULL reply) and reconnects. Redis answers in order, so an
 * overdue request means the connection is stuck, not just that request.
 *
 * Lifetime: c is freed only when the async context is gone (its callbacks
 * all ran) and the three timers are closed; uv_close callbacks are always
 * deferred, so c never disappears under a running hiredis callback. */
#include "cluster.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>

/* lua/redis/luaparty_functions.lua, embedded by scripts/embed-file.cmake. */
extern const char cluster_functions_lua[];
extern const size_t cluster_functions_lua_len;

#define WATCH_MS 50              /* request timeouts and deferred answers */
#define SYNC_TIMEOUT_S 2         /* start and status: connect and each command */
#define SETUP_TIMEOUT_MS 2000    /* AUTH, SELECT, FUNCTION LOAD, lp_register */
#define CLAIM_TIMEOUT_MS 2000    /* lp_claim, lp_release, incl. waiting for a connection */
#define RENEW_TIMEOUT_MS 500     /* lp_renew (capped at the renew interval) */
#define UNREGISTER_TIMEOUT_MS 500
#define RECONNECT_MS 250         /* between connection attempts */
#define MS (UINT64_C(1000000))   /* ns per ms, for uv_hrtime() */

/* ---- Redis URL ------------------------------------------------------------ */

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
    if (!err) return -1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    *err = xstrdup(msg);
    return -1;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out[cap]: 0, -1 on a bad escape (or one that
 * makes a NUL byte), -2 if it does not fit. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= cap) return -2;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* A decimal in s[0..n) within [0, max]. */
static bool parse_num(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 10) return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

static int decode_field(const char *s, size_t n, char *out, size_t cap, const char *what, char **err)
{
    int rc = pct_decode(s, n, out, cap);
    if (rc == -1) return fail(err, "cluster URL: bad %%-escape in the %s", what);
    if (rc == -2) return fail(err, "cluster URL: %s too long (max %zu bytes)", what, cap - 1);
    return 0;
}

static int parse_redis_url(const char *s, cluster_url *u, char **err)
{
    /* userinfo ends at the last '@': a password may hold a raw '@', the
     * host and the database number never do. */
    const char *at = strrchr(s, '@');
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        const char *pw = s;
        if (colon) {
            if (decode_field(s, (size_t)(colon - s), u->user, sizeof u->user, "user name", err) < 0) return -1;
            pw = colon + 1;
        }
        if (decode_field(pw, (size_t)(at - pw), u->password, sizeof u->password, "password", err) < 0) return -1;
        if (!u->password[0]) return fail(err, "cluster URL: empty password before '@'");
        s = at + 1;
    }
    const char *host = s, *host_end;
    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end) return fail(err, "cluster URL: unterminated [IPv6] host");
        s = host_end + 1;
        if (*s && *s != ':' && *s != '/') return fail(err, "cluster URL: unexpected text after the [IPv6] host");
    } else {
        host_end = host + strcspn(host, ":/?#");
        s = host_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0) return fail(err, "cluster URL: no host (redis://HOST[:PORT][/DB])");
    if (hlen >= sizeof u->host) return fail(err, "cluster URL: host too long (max %zu bytes)", sizeof u->host - 1);
    memcpy(u->host, host, hlen);
    u->host[hlen] = 0;
    if (*s == ':') {
        const char *p = ++s;
        s += strcspn(s, "/?#");
        long port;
        if (!parse_num(p, (size_t)(s - p), 65535, &port) || port == 0)
            return fail(err, "cluster URL: port must be a number 1-65535");
        u->port = (int)port;
    }
    if (*s == '/') {
        const char *p = ++s;
        s += strcspn(s, "?#");
        long db = 0;
        if (s > p && !parse_num(p, (size_t)(s - p), INT_MAX, &db))
            return fail(err, "cluster URL: database must be a number (redis://HOST:PORT/DB)");
        u->db = (int)db;
    }
    if (*s) return fail(err, "cluster URL: unexpected '%c' after the address (redis:// takes no parameters)", *s);
    return 0;
}

static int parse_unix_url(const char *s, cluster_url *u, char **err)
{
    if (s[0] == '/' && s[1] == '/') s += 2; /* unix:///path */
    if (*s != '/') return fail(err, "cluster URL: unix: wants an absolute socket path (unix:/path/to.sock)");
    const char *q = strchr(s, '?');
    size_t plen = q ? (size_t)(q - s) : strlen(s);
    int rc = pct_decode(s, plen, u->unix_path, sizeof u->unix_path);
    if (rc == -1) return fail(err, "cluster URL: bad %%-escape in the socket path");
    if (rc == -2) return fail(err, "cluster URL: unix socket path too long (max %zu bytes)", sizeof u->unix_path - 1);
    if (!q) return 0;
    for (const char *p = q + 1; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (!eq) return fail(err, "cluster URL: parameter without '=' (unix:/path?db=N&password=P&user=U)");
        size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
        if (klen == 2 && !memcmp(p, "db", 2)) {
            long db;
            if (!parse_num(eq + 1, vlen, INT_MAX, &db)) return fail(err, "cluster URL: db must be a number");
            u->db = (int)db;
        } else if (klen == 8 && !memcmp(p, "password", 8)) {
            if (decode_field(eq + 1, vlen, u->password, sizeof u->password, "password", err) < 0) return -1;
        } else if (klen == 4 && !memcmp(p, "user", 4)) {
            if (decode_field(eq + 1, vlen, u->user, sizeof u->user, "user name", err) < 0) return -1;
        } else {
            return fail(err, "cluster URL: unknown parameter '%.*s' (expected db, password or user)",
                        (int)(klen > 32 ? 32 : klen), p);
        }
        p += n;
        if (*p == '&') p++;
    }
    return 0;
}

int cluster_url_parse(const char *url, cluster_url *out, char **err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) return fail(err, "cluster URL is empty (redis://HOST[:PORT][/DB] or unix:/path/to.sock)");
    if (!strncmp(url, "redis://", 8)) return parse_redis_url(url + 8, out, err);
    if (!strncmp(url, "unix:", 5)) return parse_unix_url(url + 5, out, err);
    if (!strncmp(url, "rediss://", 9)) return fail(err, "cluster URL: rediss:// (TLS) is not supported; use redis:// or unix:");
    return fail(err, "cluster URL must start with redis:// or unix: (redis://HOST[:PORT][/DB] or unix:/path/to.sock)");
}

/* "host:port" or "unix:/path", for messages (never the password). */
static void url_where(const cluster_url *u, char *out, size_t cap)
{
    if (u->unix_path[0]) snprintf(out, cap, "unix:%s", u->unix_path);
    else if (strchr(u->host, ':')) snprintf(out, cap, "[%s]:%d", u->host, u->port);
    else snprintf(out, cap, "%s:%d", u->host, u->port);
}

static void key_part(buf *b, const char *s, bool slash)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch > 0x20 && ch != 0x7f && ch != '{' && ch != '}' && ch != '%' && !(slash && ch == '/')) continue;
        buf_append(b, run, (size_t)(s - run));
        char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        buf_append(b, e, 3);
        run = s + 1;
    }
    buf_append(b, run, (size_t)(s - run));
}

void cluster_room_key(buf *b, const char *prefix, const char *party, const char *room)
{
    buf_appendstr(b, prefix);
    buf_append(b, "{", 1);
    key_part(b, party, true);
    buf_append(b, "/", 1);
    key_part(b, room, false);
    buf_append(b, "}", 1);
}

/* ---- synchronous connection (start, status) ------------------------------- */

/* Runs one command (NULL-terminated argument list). Returns the reply, or
 * NULL with *err on an I/O error, a timeout, or an error reply when
 * !errors_ok. `where` and `what` name the server and the step. */
static redisReply *sync_cmd(redisContext *rc, const char *where, const char *what, bool errors_ok, char **err, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *a; argc < 16 && (a = va_arg(ap, const char *));) argv[argc++] = a;
    va_end(ap);
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    if (!r) {
        bool timeout = rc->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        fail(err, "redis at %s: %s: %s", where, what,
             timeout ? "no answer within 2 s" : rc->errstr[0] ? rc->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR && !errors_ok) {
        if (!strncmp(r->str, "NOAUTH", 6))
            fail(err, "redis at %s wants a password (NOAUTH): put it in the cluster URL "
                      "(redis://:PASSWORD@HOST or unix:/path?password=PASSWORD)", where);
        else
            fail(err, "redis at %s: %s failed: %s", where, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Connects, authenticates and selects the database. */
static redisContext *sync_connect(const cluster_url *u, const char *where, char **err)
{
    struct timeval tv = {SYNC_TIMEOUT_S, 0};
    redisContext *rc = u->unix_path[0] ? redisConnectUnixWithTimeout(u->unix_path, tv)
                                       : redisConnectWithTimeout(u->host, u->port, tv);
    if (!rc) {
        fail(err, "cannot connect to redis at %s: out of memory", where);
        return NULL;
    }
    if (rc->err) {
        fail(err, "cannot connect to redis at %s: %s", where, rc->errstr);
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    redisReply *r = NULL;
    if (u->password[0]) {
        r = u->user[0] ? sync_cmd(rc, where, "AUTH", true, err, "AUTH", u->user, u->password, NULL)
                       : sync_cmd(rc, where, "AUTH", true, err, "AUTH", u->password, NULL);
        if (!r) goto bad;
        if (r->type == REDIS_REPLY_ERROR) {
            fail(err, "redis at %s refused the password: %s", where, r->str);
            goto bad;
        }
        freeReplyObject(r);
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        if (!(r = sync_cmd(rc, where, "SELECT", false, err, "SELECT", db, NULL))) goto bad;
        freeReplyObject(r);
    }
    return rc;
bad:
    if (r) freeReplyObject(r);
    redisFree(rc);
    return NULL;
}

/* ---- requests on the async connection ------------------------------------- */

typedef enum { RQ_AUTH, RQ_SELECT, RQ_LOAD, RQ_REGISTER, RQ_RENEW, RQ_CLAIM, RQ_RELEASE, RQ_UNREGISTER } rq_kind;

typedef struct rq rq;
typedef struct rq_list {
    rq *head, *tail;
} rq_list;

/* One command: in c->sent (given to hiredis, privdata of its callback),
 * c->waiting (no connection yet) or c->done (to be answered with `fail`). */
struct rq {
    rq *prev, *next;
    rq_list *list;
    struct cluster *c;
    rq_kind kind;
    uint64_t epoch;      /* c->epoch when made: late answers of an old epoch are void */
    uint64_t start_ns;   /* sent (or queued); for a renewal, the lease's base */
    uint64_t timeout_ns;
    char *cmd;           /* RESP text until handed to hiredis */
    size_t cmdlen;
    const char *fail;
    void (*cb)(void *arg, const claim_answer *a);
    void *arg;
    char target[64];     /* load guard: the node the claim was made for */
};

typedef struct node_info {
    char id[64];
    uint64_t epoch;
    char addr[300];
    size_t rooms;
} node_info;

struct cluster {
    uv_loop_t *loop;
    cluster_url url;
    char where[400];
    char id[64];
    char addr[300];
    uint64_t ttl_ms, ttl_ns, margin_ns, interval_ms, renew_timeout_ms;
    uint64_t epoch;
    _Atomic uint64_t deadline_ns; /* monotonic; 0 while fenced */
    bool fenced;
    size_t rooms;

    redisAsyncContext *ac;
    bool connected;          /* ac finished connecting */
    bool conn_warned;        /* one warning per outage, not per attempt */
    bool load_library;       /* FUNCTION LOAD on the next connection */
    bool live_warned;        /* rejoin refused: said once */
    bool renew_warned;       /* renewal errors: said once until one succeeds */
    const char *drop_reason; /* why NULL replies come: we dropped the connection */
    char conn_err[128];      /* hiredis' reason for a failed connect() */
    uint64_t next_connect_ns;
    bool renew_inflight, register_inflight;

    rq_list sent, waiting, done;
    uv_timer_t renew_timer, fence_timer, watch_timer;
    int open_handles;
    bool stopping, watch_closing;

    node_info *nodes; /* live nodes as of the last renewal */
    size_t nnodes, capnodes;

    void (*on_fence)(void *);
    void *fence_arg;
    void (*on_rejoin)(void *, uint64_t);
    void *rejoin_arg;
    cluster_counters counters;
};

static void rq_push(rq_list *l, rq *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    r->list = l;
}

static void rq_unlink(rq *r)
{
    rq_list *l = r->list;
    if (!l) return;
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
    r->list = NULL;
}

static void rq_free(rq *r)
{
    rq_unlink(r);
    if (r->cmd) redisFreeCommand(r->cmd);
    free(r);
}

static void rq_free_list(rq_list *l)
{
    while (l->head) rq_free(l->head);
}

/* A request for `argv` (NULL-terminated strings). */
static rq *rq_new(cluster *c, rq_kind kind, uint64_t timeout_ms, const char **argv)
{
    int argc = 0;
    while (argv[argc]) argc++;
    rq *r = xcalloc(1, sizeof *r);
    r->c = c;
    r->kind = kind;
    r->epoch = c->epoch;
    r->timeout_ns = timeout_ms * MS;
    int n = redisFormatCommandArgv(&r->cmd, argc, argv, NULL);
    if (n < 0) {
        fputs("luaparty: out of memory\n", stderr);
        abort();
    }
    r->cmdlen = (size_t)n;
    return r;
}

static void watch_cb(uv_timer_t *t);

/* Runs the watchdog at the next loop iteration (deferred answers). */
static void watch_kick(cluster *c)
{
    if (!c->watch_closing) uv_timer_start(&c->watch_timer, watch_cb, 0, WATCH_MS);
}

/* Answers r with an error from the watchdog, never from the caller's stack. */
static void rq_fail(cluster *c, rq *r, const char *why)
{
    rq_unlink(r);
    r->fail = why;
    rq_push(&c->done, r);
    watch_kick(c);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Hands r to hiredis; false if the context refuses (disconnecting). */
static bool rq_send(cluster *c, rq *r)
{
    r->start_ns = uv_hrtime();
    if (!c->ac) return false;
    if (redisAsyncFormattedCommand(c->ac, on_reply, r, r->cmd, r->cmdlen) != REDIS_OK) return false;
    redisFreeCommand(r->cmd);
    r->cmd = NULL;
    rq_push(&c->sent, r);
    return true;
}

/* Sends r, or queues it until the next connection (bounded by its timeout). */
static void rq_submit(cluster *c, rq *r)
{
    if (c->ac && rq_send(c, r)) return;
    r->start_ns = uv_hrtime();
    rq_push(&c->waiting, r);
}

/* ---- lease ---------------------------------------------------------------- */

static void fence_cb(uv_timer_t *t);
static void renew_cb(uv_timer_t *t);

static void arm_fence_timer(cluster *c)
{
    uint64_t d = atomic_load(&c->deadline_ns), now = uv_hrtime();
    uint64_t ms = d > now ? (d - now + MS - 1) / MS : 0;
    uv_timer_start(&c->fence_timer, fence_cb, ms, 0);
}

/* A renewal (or registration) sent at sent_ns succeeded. */
static void lease_extend(cluster *c, uint64_t sent_ns)
{
    uint64_t d = sent_ns + c->ttl_ns - c->margin_ns;
    if (d > atomic_load(&c->deadline_ns)) atomic_store(&c->deadline_ns, d);
    arm_fence_timer(c);
}

/* The lease is lost (deadline passed, or Redis says it is gone): stop
 * everything of this epoch, tell the node, start re-registering. */
static void fence_now(cluster *c, const char *why)
{
    if (c->fenced || c->stopping) return;
    c->fenced = true;
    atomic_store(&c->deadline_ns, 0);
    uv_timer_stop(&c->fence_timer);
    c->counters.fences++;
    c->live_warned = false;
    log_warn("cluster: node %s fenced (epoch %llu): %s; its rooms stop, re-registering", c->id,
             (unsigned long long)c->epoch, why);
    /* Queued claims were made for the old epoch: answer them now. */
    for (rq *r = c->waiting.head, *next; r; r = next) {
        next = r->next;
        if (r->kind == RQ_CLAIM) rq_fail(c, r, "node is fenced (lease lost)");
        else if (r->kind == RQ_RELEASE) rq_free(r);
    }
    if (c->on_fence) c->on_fence(c->fence_arg);
    if (!c->stopping) uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
}

static void fence_cb(uv_timer_t *t)
{
    cluster *c = t->data;
    if (c->fenced || c->stopping) return;
    if (uv_hrtime() < atomic_load(&c->deadline_ns)) {
        arm_fence_timer(c); /* loop time lags uv_hrtime: fired a little early */
        return;
    }
    fence_now(c, "no successful lease renewal before the deadline");
}

static void send_load(cluster *c)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", cluster_functions_lua, NULL};
    rq *r = rq_new(c, RQ_LOAD, SETUP_TIMEOUT_MS, argv);
    if (!rq_send(c, r)) rq_free(r);
}

static void send_renew(cluster *c)
{
    char ep[24], ttl[24], rooms[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)c->ttl_ms);
    snprintf(rooms, sizeof rooms, "%zu", c->rooms);
    const char *argv[] = {"FCALL", "lp_renew", "0", c->id, ep, ttl, rooms, c->addr, NULL};
    rq *r = rq_new(c, RQ_RENEW, c->renew_timeout_ms, argv);
    if (rq_send(c, r)) c->renew_inflight = true;
    else rq_free(r);
}

static void send_register(cluster *c)
{
    char ttl[24], prev[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)c->ttl_ms);
    snprintf(prev, sizeof prev, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", "lp_register", "0", c->id, c->addr, ttl, prev, NULL};
    rq *r = rq_new(c, RQ_REGISTER, SETUP_TIMEOUT_MS, argv);
    if (rq_send(c, r)) c->register_inflight = true;
    else rq_free(r);
}

/* Every ttl/5: renew the lease, or re-register while fenced. */
static void renew_cb(uv_timer_t *t)
{
    cluster *c = t->data;
    if (c->stopping || !c->ac) return; /* the watchdog reconnects */
    if (c->fenced) {
        if (!c->register_inflight) send_register(c);
    } else if (!c->renew_inflight) {
        send_renew(c);
    }
}

/* "epoch|addr|rooms|ts" from lp:nodes. */
static bool parse_node_entry(const char *v, node_info *n)
{
    char *end;
    errno = 0;
    unsigned long long e = strtoull(v, &end, 10);
    if (errno || end == v || *end != '|') return false;
    const char *a = end + 1, *bar = strchr(a, '|');
    if (!bar || (size_t)(bar - a) >= sizeof n->addr) return false;
    unsigned long long rooms = strtoull(bar + 1, &end, 10);
    if (end == bar + 1 || *end != '|') return false;
    n->epoch = e;
    memcpy(n->addr, a, (size_t)(bar - a));
    n->addr[bar - a] = 0;
    n->rooms = (size_t)rooms;
    return true;
}

/* The live nodes from a renewal's answer {1, id, entry, id, entry, ...}. */
static void nodes_update(cluster *c, const redisReply *r)
{
    c->nnodes = 0;
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *v = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || id->len >= 64) continue;
        if (c->nnodes == c->capnodes) {
            c->capnodes = c->capnodes ? c->capnodes * 2 : 8;
            c->nodes = xrealloc(c->nodes, c->capnodes * sizeof *c->nodes);
        }
        node_info *n = &c->nodes[c->nnodes];
        if (!parse_node_entry(v->str, n)) continue;
        memcpy(n->id, id->str, id->len);
        n->id[id->len] = 0;
        c->nnodes++;
    }
}

static void renew_done(cluster *c, rq *r, const redisReply *reply)
{
    c->renew_inflight = false;
    if (r->epoch != c->epoch || c->fenced || c->stopping) return; /* an old incarnation's */
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        c->counters.renewals_failed++;
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            if (!c->renew_warned) log_warn("cluster: lease renewal failed: %s", reply->str);
            c->renew_warned = true;
            /* A Redis restarted without persistence lost the library (and
             * the lease, which the next renewal then reports). */
            if (strstr(reply->str, "Function not found")) send_load(c);
        }
        return;
    }
    if (reply->element[0]->integer != 1) {
        c->counters.renewals_failed++;
        fence_now(c, "redis says the lease key is gone or taken");
        return;
    }
    c->counters.renewals_ok++;
    c->renew_warned = false;
    lease_extend(c, r->start_ns);
    nodes_update(c, reply);
}

static void register_done(cluster *c, rq *r, const redisReply *reply)
{
    c->register_inflight = false;
    if (!c->fenced || c->stopping) return;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        c->epoch = (uint64_t)reply->integer;
        c->fenced = false;
        lease_extend(c, r->start_ns);
        c->counters.rejoins++;
        log_info("cluster: node %s rejoined as epoch %llu", c->id, (unsigned long long)c->epoch);
        uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms); /* refresh the node view now */
        if (c->on_rejoin) c->on_rejoin(c->rejoin_arg, c->epoch);
        return;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR && !c->live_warned) {
        c->live_warned = true;
        if (!strncmp(reply->str, "LPLIVE ", 7))
            log_error("cluster: node id %s is already live in the cluster (epoch %s); not rejoining until it is gone",
                      c->id, reply->str + 7);
        else
            log_error("cluster: re-registration failed: %s", reply->str);
    }
}

/* ---- claims --------------------------------------------------------------- */

static node_info *node_find(const cluster *c, const char *id)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].id, id)) return &c->nodes[i];
    return NULL;
}

/* Load guard: the least loaded live node when this one holds more than
 * 1.25 x the mean, else NULL (claim for myself). */
static node_info *load_guard_pick(cluster *c)
{
    double sum = (double)c->rooms;
    size_t n = 1;
    node_info *least = NULL;
    for (size_t i = 0; i < c->nnodes; i++) {
        node_info *x = &c->nodes[i];
        if (!strcmp(x->id, c->id)) continue; /* counted with my current load */
        sum += (double)x->rooms;
        n++;
        if (!least || x->rooms < least->rooms) least = x;
    }
    if (!least || least->rooms >= c->rooms) return NULL;
    return (double)c->rooms > 1.25 * (sum / (double)n) ? least : NULL;
}

static void claim_done(cluster *c, rq *r, const redisReply *reply, const char *why)
{
    claim_answer a;
    memset(&a, 0, sizeof a);
    a.result = CLAIM_ERROR;
    if (why) {
        a.error = why;
    } else if (r->epoch != c->epoch || c->fenced) {
        a.error = "node is fenced (lease lost)";
    } else if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 ||
               reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[1]->type != REDIS_REPLY_INTEGER ||
               reply->element[2]->type != REDIS_REPLY_STRING || reply->element[3]->type != REDIS_REPLY_STRING) {
        if (reply && reply->type == REDIS_REPLY_ERROR) log_warn("cluster: lp_claim failed: %s", reply->str);
        a.error = "redis error during the claim";
    } else if (reply->element[0]->integer == -2) {
        a.result = CLAIM_PINNED;
        a.fence = (uint64_t)reply->element[1]->integer;
        str_copy(a.node, sizeof a.node, reply->element[2]->str);
    } else if (reply->element[0]->integer < 0) {
        a.error = "node is fenced (lease lost)";
        fence_now(c, "redis says the lease is gone (claim refused)");
    } else {
        a.result = reply->element[0]->integer >= 1 ? CLAIM_MINE : CLAIM_OTHER;
        a.fresh = reply->element[0]->integer == 1;
        a.fence = (uint64_t)reply->element[1]->integer;
        str_copy(a.node, sizeof a.node, reply->element[2]->str);
        str_copy(a.addr, sizeof a.addr, reply->element[3]->str);
    }
    if (a.result == CLAIM_MINE) c->counters.claims_won += a.fresh; /* a room newly won, not one kept */
    else if (a.result == CLAIM_OTHER || a.result == CLAIM_PINNED) c->counters.claims_lost++;
    else c->counters.claims_errors++;
    if (a.result == CLAIM_OTHER && r->target[0] && !strcmp(a.node, r->target)) {
        /* Count the room now, so a burst of claims spreads instead of all
         * going to the node that was least loaded at the last renewal. */
        node_info *n = node_find(c, r->target);
        if (n) n->rooms++;
        c->counters.claims_delegated++;
    }
    if (r->cb) r->cb(r->arg, &a);
}

void cluster_claim(cluster *c, const char *party, const char *room, void (*cb)(void *arg, const claim_answer *a),
                   void *arg)
{
    buf key;
    buf_init(&key);
    cluster_room_key(&key, "lp:own:", party, room);
    char ep[24], tep[24] = "";
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    node_info *t = c->fenced ? NULL : load_guard_pick(c);
    if (t) snprintf(tep, sizeof tep, "%llu", (unsigned long long)t->epoch);
    const char *argv[] = {"FCALL", "lp_claim", "1", key.data, c->id, ep, t ? t->id : "", tep, NULL};
    rq *r = rq_new(c, RQ_CLAIM, CLAIM_TIMEOUT_MS, argv);
    buf_free(&key);
    r->cb = cb;
    r->arg = arg;
    if (t) str_copy(r->target, sizeof r->target, t->id);
    if (c->fenced || c->stopping) rq_fail(c, r, "node is fenced (lease lost)");
    else rq_submit(c, r);
}

/* lp_release or lp_pin: one room, mine, fire and forget. */
static void room_fcall(cluster *c, const char *fn, const char *party, const char *room)
{
    if (c->fenced || c->stopping) return; /* nothing is mine under a lost epoch */
    buf key;
    buf_init(&key);
    cluster_room_key(&key, "lp:own:", party, room);
    char ep[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", fn, "1", key.data, c->id, ep, NULL};
    rq *r = rq_new(c, RQ_RELEASE, CLAIM_TIMEOUT_MS, argv);
    buf_free(&key);
    rq_submit(c, r);
}

void cluster_release(cluster *c, const char *party, const char *room) { room_fcall(c, "lp_release", party, room); }

void cluster_pin(cluster *c, const char *party, const char *room) { room_fcall(c, "lp_pin", party, room); }

/* ---- the async connection ------------------------------------------------- */

static void conn_drop(cluster *c, const char *why);

/* Every request ends here, once: with a reply, or with `why` (NULL reply). */
static void rq_finish(cluster *c, rq *r, const redisReply *reply, const char *why)
{
    switch (r->kind) {
    case RQ_RENEW: renew_done(c, r, reply); break;
    case RQ_REGISTER: register_done(c, r, reply); break;
    case RQ_CLAIM: claim_done(c, r, reply, why); break;
    case RQ_AUTH:
    case RQ_SELECT:
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            log_error("cluster: redis at %s refused %s: %s", c->where, r->kind == RQ_AUTH ? "the password" : "SELECT",
                      reply->str);
            /* The rest of this connection would fail the same way. */
            if (!c->stopping) conn_drop(c, "redis refused the connection setup");
        }
        break;
    case RQ_LOAD:
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_error("cluster: redis at %s cannot load the luaparty functions: %s", c->where, reply->str);
        break;
    case RQ_RELEASE:
    case RQ_UNREGISTER:
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_warn("cluster: %s failed: %s", r->kind == RQ_RELEASE ? "lp_release/lp_pin" : "lp_unregister",
                     reply->str);
        break;
    }
    rq_free(r);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rq *r = priv;
    cluster *c = r->c;
    const redisReply *rep = reply;
    if (rep && rep->type != REDIS_REPLY_ERROR && ac == c->ac && c->conn_warned) {
        /* Counted at the first answer, not at connect(): a stopped Redis
         * still completes TCP handshakes from its listen backlog. */
        c->conn_warned = false;
        c->counters.reconnects++;
        log_info("cluster: reconnected to redis at %s", c->where);
    }
    rq_unlink(r);
    rq_finish(c, r, reply, reply ? NULL : c->drop_reason ? c->drop_reason : "connection to redis lost");
}

static void close_watch(cluster *c);

/* The async context is gone (all its callbacks ran or will run before the
 * loop's next iteration): reconnect, or finish stopping. */
static void conn_gone(cluster *c)
{
    c->connected = false;
    if (c->stopping) close_watch(c);
    else watch_kick(c);
}

/* Tears the connection down: hiredis answers every pending command with a
 * NULL reply (now, or right after the running callback returns). */
static void conn_drop(cluster *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    c->ac = NULL;
    c->drop_reason = why;
    if (!c->stopping && !c->conn_warned)
        log_warn("cluster: dropping the connection to redis at %s: %s (reconnecting)", c->where, why);
    else
        log_debug("cluster: dropping the connection to redis at %s: %s", c->where, why);
    c->conn_warned = true;
    redisAsyncFree(ac);
    conn_gone(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    cluster *c = ac->data;
    if (ac != c->ac) return;
    if (status != REDIS_OK) {
        if (!c->conn_warned && !c->stopping)
            log_warn("cluster: cannot connect to redis at %s: %s (retrying)", c->where, ac->errstr);
        c->conn_warned = true;
        c->ac = NULL;
        c->drop_reason = "cannot connect to redis";
        conn_gone(c); /* hiredis frees ac after this callback */
        return;
    }
    c->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    cluster *c = ac->data;
    if (ac != c->ac) return; /* we dropped it ourselves */
    c->ac = NULL;
    if (!c->stopping && !c->conn_warned) log_warn("cluster: lost the connection to redis at %s: %s", c->where,
                                                  status == REDIS_OK ? "closed" : ac->errstr);
    c->conn_warned = true;
    conn_gone(c);
}

/* A new async context, or NULL with *why. */
static redisAsyncContext *conn_create(cluster *c, const char **why)
{
    redisAsyncContext *ac =
        c->url.unix_path[0] ? redisAsyncConnectUnix(c->url.unix_path) : redisAsyncConnect(c->url.host, c->url.port);
    if (!ac) {
        *why = "out of memory";
        return NULL;
    }
    if (ac->err) {
        str_copy(c->conn_err, sizeof c->conn_err, ac->errstr);
        *why = c->conn_err;
        redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        *why = "cannot watch the socket";
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Makes ac the connection: authenticate, select, (re)load the functions,
 * then whatever waited for a connection. hiredis buffers all of it until
 * the socket connects. */
static void conn_use(cluster *c, redisAsyncContext *ac)
{
    c->ac = ac;
    c->connected = false;
    c->drop_reason = NULL;
    if (c->url.password[0]) {
        const char *with_user[] = {"AUTH", c->url.user, c->url.password, NULL};
        const char *without[] = {"AUTH", c->url.password, NULL};
        rq *r = rq_new(c, RQ_AUTH, SETUP_TIMEOUT_MS, c->url.user[0] ? with_user : without);
        if (!rq_send(c, r)) rq_free(r);
    }
    if (c->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->url.db);
        const char *argv[] = {"SELECT", db, NULL};
        rq *r = rq_new(c, RQ_SELECT, SETUP_TIMEOUT_MS, argv);
        if (!rq_send(c, r)) rq_free(r);
    }
    if (c->load_library) send_load(c);
    /* A Redis restarted without persistence lost the library: reload it on
     * every reconnection (all nodes run the same version). */
    c->load_library = true;
    while (c->waiting.head) {
        rq *r = c->waiting.head;
        rq_unlink(r);
        if (!rq_send(c, r)) rq_fail(c, r, "redis connection refused the command");
    }
}

static void conn_open(cluster *c)
{
    c->next_connect_ns = uv_hrtime() + RECONNECT_MS * MS;
    const char *why = NULL;
    redisAsyncContext *ac = conn_create(c, &why);
    if (!ac) {
        if (!c->conn_warned) log_warn("cluster: cannot connect to redis at %s: %s (retrying)", c->where, why);
        c->conn_warned = true;
        return;
    }
    conn_use(c, ac);
    /* Renew (or re-register) on the new connection at once. */
    uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
}

static void watch_cb(uv_timer_t *t)
{
    cluster *c = t->data;
    uint64_t now = uv_hrtime();
    for (rq *r = c->sent.head; r; r = r->next)
        if (now - r->start_ns > r->timeout_ns) {
            conn_drop(c, "redis did not answer in time");
            break; /* the list was emptied */
        }
    for (rq *r = c->waiting.head, *next; r; r = next) {
        next = r->next;
        if (now - r->start_ns > r->timeout_ns) rq_fail(c, r, "redis is unreachable");
    }
    while (c->done.head) {
        rq *r = c->done.head;
        rq_unlink(r);
        rq_finish(c, r, NULL, r->fail);
    }
    if (!c->stopping && !c->ac && uv_hrtime() >= c->next_connect_ns) conn_open(c);
}

/* ---- start, stop ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    cluster *c = h->data;
    if (--c->open_handles > 0) return;
    rq_free_list(&c->sent); /* empty: the context is gone */
    rq_free_list(&c->waiting);
    rq_free_list(&c->done);
    free(c->nodes);
    free(c);
}

static void close_watch(cluster *c)
{
    if (c->watch_closing) return;
    c->watch_closing = true;
    uv_close((uv_handle_t *)&c->watch_timer, on_handle_closed);
}

static bool bad_token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return true;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '|') return true;
    return false;
}

cluster *cluster_start(uv_loop_t *loop, const cluster_opts *o, char **err)
{
    cluster_url u;
    if (cluster_url_parse(o->url, &u, err) < 0) return NULL;
    if (!o->node_id || bad_token(o->node_id, 63)) {
        fail(err, "cluster: node id must be 1-63 printable bytes without spaces or '|'");
        return NULL;
    }
    if (!o->internal_addr || bad_token(o->internal_addr, 299)) {
        fail(err, "cluster: internal address must be HOST:PORT (1-299 bytes, no spaces or '|')");
        return NULL;
    }
    uint64_t ttl = o->lease_ttl_ms ? o->lease_ttl_ms : 5000;
    if (ttl < 200 || ttl > 3600000) {
        fail(err, "cluster: lease ttl must be 200 ms - 1 h");
        return NULL;
    }
    char where[400];
    url_where(&u, where, sizeof where);
    redisContext *rc = sync_connect(&u, where, err);
    if (!rc) return NULL;

    redisReply *r = sync_cmd(rc, where, "FUNCTION LOAD", true, err, "FUNCTION", "LOAD", "REPLACE",
                             cluster_functions_lua, NULL);
    if (!r) goto bad;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strncmp(r->str, "NOAUTH", 6))
            fail(err, "redis at %s wants a password (NOAUTH): put it in the cluster URL "
                      "(redis://:PASSWORD@HOST or unix:/path?password=PASSWORD)", where);
        else
            fail(err, "redis at %s cannot load the luaparty functions (Redis 7 or later is needed): %s", where,
                 r->str);
        goto bad;
    }
    freeReplyObject(r);

    char ttls[24];
    snprintf(ttls, sizeof ttls, "%llu", (unsigned long long)ttl);
    uint64_t sent = uv_hrtime();
    r = sync_cmd(rc, where, "lp_register", true, err, "FCALL", "lp_register", "0", o->node_id, o->internal_addr,
                 ttls, "0", NULL);
    if (!r) goto bad;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strncmp(r->str, "LPLIVE ", 7))
            fail(err, "node id %s is already live in the cluster (epoch %s)", o->node_id, r->str + 7);
        else fail(err, "redis at %s: lp_register failed: %s", where, r->str);
        goto bad;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
        fail(err, "redis at %s: lp_register answered something other than an epoch", where);
        goto bad;
    }
    uint64_t epoch = (uint64_t)r->integer;
    freeReplyObject(r);
    r = NULL;

    cluster *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->url = u;
    str_copy(c->where, sizeof c->where, where);
    str_copy(c->id, sizeof c->id, o->node_id);
    str_copy(c->addr, sizeof c->addr, o->internal_addr);
    c->ttl_ms = ttl;
    c->ttl_ns = ttl * MS;
    c->margin_ns = (ttl < 5000 ? ttl / 5 : 1000) * MS;
    c->interval_ms = ttl / 5;
    c->renew_timeout_ms = c->interval_ms < RENEW_TIMEOUT_MS ? c->interval_ms : RENEW_TIMEOUT_MS;
    c->epoch = epoch;
    atomic_init(&c->deadline_ns, sent + c->ttl_ns - c->margin_ns);

    const char *why = NULL;
    redisAsyncContext *ac = conn_create(c, &why);
    if (!ac) {
        fail(err, "cannot connect to redis at %s: %s", where, why);
        char ep[24];
        snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
        char *ignored = NULL;
        r = sync_cmd(rc, where, "lp_unregister", true, &ignored, "FCALL", "lp_unregister", "0", o->node_id, ep, NULL);
        free(ignored);
        free(c);
        goto bad;
    }
    redisFree(rc);

    uv_timer_init(loop, &c->renew_timer);
    uv_timer_init(loop, &c->fence_timer);
    uv_timer_init(loop, &c->watch_timer);
    c->renew_timer.data = c->fence_timer.data = c->watch_timer.data = c;
    c->open_handles = 3;
    conn_use(c, ac);
    c->next_connect_ns = uv_hrtime() + RECONNECT_MS * MS;
    /* First renewal at once: it fills the node view for the load guard. */
    uv_timer_start(&c->renew_timer, renew_cb, 0, c->interval_ms);
    uv_timer_start(&c->watch_timer, watch_cb, WATCH_MS, WATCH_MS);
    arm_fence_timer(c);
    log_info("cluster: node %s joined as epoch %llu (redis at %s, lease %llu ms)", c->id,
             (unsigned long long)epoch, where, (unsigned long long)ttl);
    return c;

bad:
    if (r) freeReplyObject(r);
    redisFree(rc);
    return NULL;
}

void cluster_stop(cluster *c)
{
    if (!c || c->stopping) return;
    c->stopping = true;
    c->on_fence = NULL;
    c->on_rejoin = NULL;
    atomic_store(&c->deadline_ns, 0);
    for (rq *r = c->sent.head; r; r = r->next) r->cb = NULL;
    rq_free_list(&c->waiting);
    rq_free_list(&c->done);
    uv_close((uv_handle_t *)&c->renew_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->fence_timer, on_handle_closed);
    log_info("cluster: node %s (epoch %llu) leaves the cluster", c->id, (unsigned long long)c->epoch);
    if (!c->ac) {
        close_watch(c);
        return;
    }
    /* Even a fenced node deletes its old key if it is still there: peers
     * can then claim its rooms at once instead of after the TTL. */
    char ep[24];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)c->epoch);
    const char *argv[] = {"FCALL", "lp_unregister", "0", c->id, ep, NULL};
    rq *r = rq_new(c, RQ_UNREGISTER, UNREGISTER_TIMEOUT_MS, argv);
    if (!rq_send(c, r)) rq_free(r);
    if (c->connected || c->sent.head)
        redisAsyncDisconnect(c->ac); /* after the pending replies; on_disconnect or the watchdog ends it */
    else
        conn_drop(c, "stopping");
}

/* ---- small accessors ------------------------------------------------------ */

bool cluster_lease_valid(const cluster *c)
{
    return uv_hrtime() < atomic_load_explicit(&((cluster *)c)->deadline_ns, memory_order_acquire);
}

uint64_t cluster_epoch(const cluster *c) { return c->epoch; }
const char *cluster_node_id(const cluster *c) { return c->id; }
const cluster_counters *cluster_counters_get(const cluster *c) { return &c->counters; }
void cluster_set_load(cluster *c, size_t rooms) { c->rooms = rooms; }

void cluster_on_fence(cluster *c, void (*cb)(void *arg), void *arg)
{
    c->on_fence = cb;
    c->fence_arg = arg;
}

void cluster_on_rejoin(cluster *c, void (*cb)(void *arg, uint64_t epoch), void *arg)
{
    c->on_rejoin = cb;
    c->rejoin_arg = arg;
}

bool cluster_node_addr(const cluster *c, const char *node_id, char *out, size_t cap)
{
    if (!strcmp(node_id, c->id)) {
        if (c->fenced) return false;
        str_copy(out, cap, c->addr);
        return true;
    }
    const node_info *n = node_find(c, node_id);
    if (!n) return false;
    str_copy(out, cap, n->addr);
    return true;
}

/* ---- luaparty cluster status ---------------------------------------------- */

typedef struct status_row {
    char id[64];
    node_info n;
    uint64_t ts;
} status_row;

static int by_id(const void *a, const void *b) { return strcmp(((const status_row *)a)->id, ((const status_row *)b)->id); }

int cluster_status_print(const char *url, FILE *out)
{
    cluster_url u;
    char *err = NULL, where[400];
    if (cluster_url_parse(url, &u, &err) < 0) goto fail;
    url_where(&u, where, sizeof where);
    redisContext *rc = sync_connect(&u, where, &err);
    if (!rc) goto fail;
    redisReply *now = sync_cmd(rc, where, "TIME", false, &err, "TIME", NULL);
    redisReply *all = now ? sync_cmd(rc, where, "HGETALL lp:nodes", false, &err, "HGETALL", "lp:nodes", NULL) : NULL;
    if (!all) {
        if (now) freeReplyObject(now);
        redisFree(rc);
        goto fail;
    }
    uint64_t now_ms = 0;
    if (now->type == REDIS_REPLY_ARRAY && now->elements == 2)
        now_ms = strtoull(now->element[0]->str, NULL, 10) * 1000 + strtoull(now->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(now);

    size_t nrows = 0;
    status_row *rows = xcalloc(all->elements / 2 + 1, sizeof *rows);
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        status_row *row = &rows[nrows];
        const redisReply *id = all->element[i], *v = all->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || id->len >= sizeof row->id) continue;
        if (!parse_node_entry(v->str, &row->n)) continue;
        const char *ts = strrchr(v->str, '|');
        row->ts = ts ? strtoull(ts + 1, NULL, 10) : 0;
        str_copy(row->id, sizeof row->id, id->str);
        nrows++;
    }
    freeReplyObject(all);
    qsort(rows, nrows, sizeof *rows, by_id);

    int rc_exit = 0;
    for (size_t i = 0; i < nrows; i++) {
        status_row *row = &rows[i];
        char key[80];
        snprintf(key, sizeof key, "lp:node:%s", row->id);
        redisReply *held = sync_cmd(rc, where, "GET", false, &err, "GET", key, NULL);
        redisReply *pttl = held ? sync_cmd(rc, where, "PTTL", false, &err, "PTTL", key, NULL) : NULL;
        if (!pttl) {
            if (held) freeReplyObject(held);
            rc_exit = 1;
            break;
        }
        char lease[64];
        uint64_t held_epoch = held->type == REDIS_REPLY_STRING ? strtoull(held->str, NULL, 10) : 0;
        if (held_epoch == row->n.epoch && pttl->type == REDIS_REPLY_INTEGER && pttl->integer > 0)
            snprintf(lease, sizeof lease, "alive ttl=%lldms", pttl->integer);
        else if (held_epoch)
            snprintf(lease, sizeof lease, "other(epoch %llu)", (unsigned long long)held_epoch);
        else
            snprintf(lease, sizeof lease, "expired");
        double age = now_ms >= row->ts ? (double)(now_ms - row->ts) / 1000.0 : 0.0;
        fprintf(out, "%s epoch=%llu lease=%s addr=%s rooms=%zu renewed=%.1fs ago\n", row->id,
                (unsigned long long)row->n.epoch, lease, row->n.addr, row->n.rooms, age);
        freeReplyObject(held);
        freeReplyObject(pttl);
    }
    if (!nrows) fprintf(stderr, "cluster status: no nodes registered in redis at %s\n", where);
    free(rows);
    redisFree(rc);
    if (rc_exit) goto fail;
    return 0;
fail:
    fprintf(stderr, "cluster status: %s\n", err ? err : "failed");
    free(err);
    return 1;
}
