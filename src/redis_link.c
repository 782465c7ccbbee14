/* redis_link.c - an asynchronous Redis connection that keeps going
 * (redis_link.h), plus the Redis URL, the room key names and the
 * synchronous helpers of start-up and the command-line tools.
 *
 * hiredis 0.14 has no command timeouts, so this file keeps its own: every
 * command records when it was sent, and a 50 ms watchdog tears the
 * connection down when one is overdue (hiredis then runs every pending
 * callback with a NULL reply) and reconnects. Redis answers in order, so an
 * overdue command means the connection is stuck, not just that command.
 *
 * Lifetime: a closed link is freed only when its async context is gone
 * (its callbacks all ran) and its timer is closed; uv_close callbacks are
 * always deferred, so a link never disappears under a running hiredis
 * callback. */
#include "redis_link.h"

#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>

/* lua/redis/luaparty_functions.lua, embedded by scripts/embed-file.cmake. */
extern const char cluster_functions_lua[];
extern const size_t cluster_functions_lua_len;

#define WATCH_MS 50              /* command timeouts and deferred answers */
#define SYNC_TIMEOUT_S 2         /* synchronous use: connect and each command */
#define SETUP_TIMEOUT_MS 2000    /* AUTH, SELECT, FUNCTION LOAD */
#define RECONNECT_MS 250         /* between connection attempts */
#define CLOSE_MS 500             /* a closing link waits this long for its replies */
#define MS (UINT64_C(1000000))   /* ns per ms, for uv_hrtime() */

/* ---- Redis URL and key names ---------------------------------------------- */

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

static int parse_redis_url(const char *s, redis_url *u, char **err)
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

static int parse_unix_url(const char *s, redis_url *u, char **err)
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

int redis_url_parse(const char *url, redis_url *out, char **err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) return fail(err, "cluster URL is empty (redis://HOST[:PORT][/DB] or unix:/path/to.sock)");
    if (!strncmp(url, "redis://", 8)) return parse_redis_url(url + 8, out, err);
    if (!strncmp(url, "unix:", 5)) return parse_unix_url(url + 5, out, err);
    if (!strncmp(url, "rediss://", 9)) return fail(err, "cluster URL: rediss:// (TLS) is not supported; use redis:// or unix:");
    return fail(err, "cluster URL must start with redis:// or unix: (redis://HOST[:PORT][/DB] or unix:/path/to.sock)");
}

void redis_url_where(const redis_url *u, char *out, size_t cap)
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

void redis_room_key(buf *b, const char *prefix, const char *party, const char *room)
{
    buf_appendstr(b, prefix);
    buf_append(b, "{", 1);
    key_part(b, party, true);
    buf_append(b, "/", 1);
    key_part(b, room, false);
    buf_append(b, "}", 1);
}
bool redis_room_parse(const char *s, size_t n, buf *party, buf *room)
{
    const char *slash = memchr(s, '/', n);
    if (!slash || slash == s) return false;
    char tmp[1024];
    size_t plen = (size_t)(slash - s), rlen = n - plen - 1;
    if (plen >= sizeof tmp || rlen >= sizeof tmp) return false;
    if (pct_decode(s, plen, tmp, sizeof tmp) != 0) return false;
    buf_appendstr(party, tmp);
    if (pct_decode(slash + 1, rlen, tmp, sizeof tmp) != 0) return false; /* "" when rlen is 0 */
    buf_appendstr(room, tmp);
    return true;
}

/* ---- synchronous use ------------------------------------------------------ */

redisReply *redis_sync_cmd(redisContext *rc, const redis_url *u, const char *what, bool errors_ok, char **err, ...)
{
    const char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *a; argc < 16 && (a = va_arg(ap, const char *));) argv[argc++] = a;
    va_end(ap);
    char where[400];
    redis_url_where(u, where, sizeof where);
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

redisContext *redis_sync_connect(const redis_url *u, char **err)
{
    char where[400];
    redis_url_where(u, where, sizeof where);
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
        r = u->user[0] ? redis_sync_cmd(rc, u, "AUTH", true, err, "AUTH", u->user, u->password, NULL)
                       : redis_sync_cmd(rc, u, "AUTH", true, err, "AUTH", u->password, NULL);
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
        if (!(r = redis_sync_cmd(rc, u, "SELECT", false, err, "SELECT", db, NULL))) goto bad;
        freeReplyObject(r);
    }
    /* A Redis that wants a password says NOAUTH here, before a large
     * command would meet its "unauthenticated bulk length" limit. */
    if (!(r = redis_sync_cmd(rc, u, "PING", false, err, "PING", NULL))) goto bad;
    freeReplyObject(r);
    return rc;
bad:
    if (r) freeReplyObject(r);
    redisFree(rc);
    return NULL;
}

int redis_sync_load_library(redisContext *rc, const redis_url *u, char **err)
{
    char where[400];
    redis_url_where(u, where, sizeof where);
    redisReply *r =
        redis_sync_cmd(rc, u, "FUNCTION LOAD", true, err, "FUNCTION", "LOAD", "REPLACE", cluster_functions_lua, NULL);
    if (!r) return -1;
    int rc_out = 0;
    if (r->type == REDIS_REPLY_ERROR) { /* NOAUTH cannot come here: redis_sync_connect's PING said it */
        fail(err, "redis at %s cannot load the luaparty functions (Redis 7 or later is needed): %s", where, r->str);
        rc_out = -1;
    }
    freeReplyObject(r);
    return rc_out;
}

/* ---- commands on the async connection ------------------------------------- */

static atomic_int live_links; /* made and not yet freed, on every thread */

int redis_link_live(void) { return atomic_load(&live_links); }

typedef struct rq rq;
typedef struct rq_list {
    rq *head, *tail;
} rq_list;

/* One command: in l->sent (given to hiredis, privdata of its callback),
 * l->waiting (no connection yet) or l->done (to be answered with `why`). */
struct rq {
    rq *prev, *next;
    rq_list *list;
    redis_link *l;
    int tag;
    bool setup;          /* AUTH, SELECT, FUNCTION LOAD: the link's own */
    uint64_t start_ns;   /* sent (or queued) */
    uint64_t timeout_ns;
    char *cmd;           /* RESP text until handed to hiredis */
    size_t cmdlen;
    const char *why;
    redis_done_fn fn;
    void *arg;
};

struct redis_link {
    uv_loop_t *loop;
    redis_url url;
    char where[400];
    char name[32];
    bool load;               /* FUNCTION LOAD on every connection */
    void (*on_event)(void *, redis_link_event);
    void *event_arg;

    redisAsyncContext *ac;
    bool connected;          /* ac finished connecting */
    bool answered;           /* a command was answered on this connection */
    bool conn_warned;        /* one warning per outage, not per attempt */
    const char *drop_reason; /* why NULL replies come: we dropped the connection */
    char conn_err[128];      /* hiredis' reason for a failed connect() */
    uint64_t next_connect_ns;
    uint64_t close_deadline_ns;

    rq_list sent, waiting, done;
    uv_timer_t watch_timer;
    bool closing, timer_closed;
};

static void rq_push(rq_list *q, rq *r)
{
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail) q->tail->next = r;
    else q->head = r;
    q->tail = r;
    r->list = q;
}

static void rq_unlink(rq *r)
{
    rq_list *q = r->list;
    if (!q) return;
    if (r->prev) r->prev->next = r->next;
    else q->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else q->tail = r->prev;
    r->prev = r->next = NULL;
    r->list = NULL;
}

static void rq_free(rq *r)
{
    rq_unlink(r);
    if (r->cmd) redisFreeCommand(r->cmd);
    free(r);
}

static void rq_free_list(rq_list *q)
{
    while (q->head) rq_free(q->head);
}

static rq *rq_new(redis_link *l, int argc, const char **argv, const size_t *argvlen, uint64_t timeout_ms)
{
    rq *r = xcalloc(1, sizeof *r);
    r->l = l;
    r->timeout_ns = timeout_ms * MS;
    int n = redisFormatCommandArgv(&r->cmd, argc, argv, argvlen);
    if (n < 0) {
        fputs("luaparty: out of memory\n", stderr);
        abort();
    }
    r->cmdlen = (size_t)n;
    return r;
}

static void watch_cb(uv_timer_t *t);

/* Runs the watchdog at the next loop iteration (deferred answers). */
static void watch_kick(redis_link *l)
{
    if (!l->timer_closed) uv_timer_start(&l->watch_timer, watch_cb, 0, WATCH_MS);
}

/* Answers r with an error from the watchdog, never from the caller's stack. */
static void rq_fail(redis_link *l, rq *r, const char *why)
{
    rq_unlink(r);
    r->why = why;
    rq_push(&l->done, r);
    watch_kick(l);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Hands r to hiredis; false if the context refuses (disconnecting). */
static bool rq_send(redis_link *l, rq *r)
{
    r->start_ns = uv_hrtime();
    if (!l->ac) return false;
    if (redisAsyncFormattedCommand(l->ac, on_reply, r, r->cmd, r->cmdlen) != REDIS_OK) return false;
    redisFreeCommand(r->cmd);
    r->cmd = NULL;
    rq_push(&l->sent, r);
    return true;
}

static void conn_drop(redis_link *l, const char *why);

/* Every command ends here, once: with a reply, or with `why` (NULL reply). */
static void rq_finish(redis_link *l, rq *r, const redisReply *reply, const char *why)
{
    if (r->setup && reply && reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: redis at %s refused the connection setup: %s", l->name, l->where, reply->str);
        /* The rest of this connection would fail the same way. */
        if (!l->closing) conn_drop(l, "redis refused the connection setup");
    }
    if (r->fn) {
        redis_result res = {reply, reply ? NULL : why ? why : "no answer from redis", r->start_ns};
        r->fn(r->arg, &res);
    }
    rq_free(r);
}

static void send_setup(redis_link *l, int argc, const char **argv)
{
    rq *r = rq_new(l, argc, argv, NULL, SETUP_TIMEOUT_MS);
    r->setup = true;
    if (!rq_send(l, r)) rq_free(r);
}

void redis_link_load_library(redis_link *l)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", cluster_functions_lua};
    send_setup(l, 4, argv);
}

void redis_link_call(redis_link *l, int argc, const char **argv, const size_t *argvlen, uint64_t timeout_ms, int tag,
                     redis_done_fn fn, void *arg)
{
    rq *r = rq_new(l, argc, argv, argvlen, timeout_ms);
    r->tag = tag;
    r->fn = fn;
    r->arg = arg;
    if (l->closing) { /* no callback runs after redis_link_close */
        rq_free(r);
        return;
    }
    if (l->ac && rq_send(l, r)) return;
    r->start_ns = uv_hrtime();
    rq_push(&l->waiting, r);
}

void redis_link_answer_later(redis_link *l, redis_done_fn fn, void *arg, const char *why)
{
    if (l->closing) return;
    rq *r = xcalloc(1, sizeof *r);
    r->l = l;
    r->fn = fn;
    r->arg = arg;
    r->start_ns = uv_hrtime();
    rq_fail(l, r, why);
}

void redis_link_fail_queued(redis_link *l, int tag, const char *why)
{
    for (rq *r = l->waiting.head, *next; r; r = next) {
        next = r->next;
        if (r->tag == tag) rq_fail(l, r, why);
    }
}

bool redis_link_up(const redis_link *l) { return l->ac != NULL; }

/* ---- the connection ------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rq *r = priv;
    redis_link *l = r->l;
    const redisReply *rep = reply;
    if (rep && ac == l->ac && !l->answered) {
        l->answered = true;
        /* Counted at the first answer, not at connect(): a stopped Redis
         * still completes TCP handshakes from its listen backlog. */
        if (l->conn_warned && rep->type != REDIS_REPLY_ERROR) {
            l->conn_warned = false;
            log_info("%s: reconnected to redis at %s", l->name, l->where);
            if (l->on_event && !l->closing) l->on_event(l->event_arg, REDIS_LINK_BACK);
        }
    }
    rq_unlink(r);
    rq_finish(l, r, reply, reply ? NULL : l->drop_reason ? l->drop_reason : "connection to redis lost");
}

static void close_timer(redis_link *l);

/* The async context is gone (all its callbacks ran or will run before the
 * loop's next iteration): reconnect, or finish closing. */
static void conn_gone(redis_link *l)
{
    l->connected = false;
    l->answered = false;
    if (l->closing) close_timer(l);
    else watch_kick(l);
}

/* Tears the connection down: hiredis answers every pending command with a
 * NULL reply (now, or right after the running callback returns). */
static void conn_drop(redis_link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;
    if (!ac) return;
    l->ac = NULL;
    l->drop_reason = why;
    if (!l->closing && !l->conn_warned)
        log_warn("%s: dropping the connection to redis at %s: %s (reconnecting)", l->name, l->where, why);
    else
        log_debug("%s: dropping the connection to redis at %s: %s", l->name, l->where, why);
    l->conn_warned = true;
    redisAsyncFree(ac);
    conn_gone(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_link *l = ac->data;
    if (ac != l->ac) return;
    if (status != REDIS_OK) {
        if (!l->conn_warned && !l->closing)
            log_warn("%s: cannot connect to redis at %s: %s (retrying)", l->name, l->where, ac->errstr);
        l->conn_warned = true;
        l->ac = NULL;
        l->drop_reason = "cannot connect to redis";
        conn_gone(l); /* hiredis frees ac after this callback */
        return;
    }
    l->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_link *l = ac->data;
    if (ac != l->ac) return; /* we dropped it ourselves */
    l->ac = NULL;
    if (!l->closing && !l->conn_warned)
        log_warn("%s: lost the connection to redis at %s: %s", l->name, l->where,
                 status == REDIS_OK ? "closed" : ac->errstr);
    l->conn_warned = true;
    conn_gone(l);
}

/* A new async context, or NULL with *why. */
static redisAsyncContext *conn_create(redis_link *l, const char **why)
{
    redisAsyncContext *ac =
        l->url.unix_path[0] ? redisAsyncConnectUnix(l->url.unix_path) : redisAsyncConnect(l->url.host, l->url.port);
    if (!ac) {
        *why = "out of memory";
        return NULL;
    }
    if (ac->err) {
        str_copy(l->conn_err, sizeof l->conn_err, ac->errstr);
        *why = l->conn_err;
        redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibuvAttach(ac, l->loop) != REDIS_OK) {
        *why = "cannot watch the socket";
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = l;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Makes ac the connection: authenticate, select, (re)load the functions,
 * then whatever waited for a connection. hiredis buffers all of it until
 * the socket connects. */
static void conn_use(redis_link *l, redisAsyncContext *ac)
{
    l->ac = ac;
    l->connected = false;
    l->answered = false;
    l->drop_reason = NULL;
    if (l->url.password[0]) {
        const char *with_user[] = {"AUTH", l->url.user, l->url.password};
        const char *without[] = {"AUTH", l->url.password};
        if (l->url.user[0]) send_setup(l, 3, with_user);
        else send_setup(l, 2, without);
    }
    if (l->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", l->url.db);
        const char *argv[] = {"SELECT", db};
        send_setup(l, 2, argv);
    }
    if (l->load) redis_link_load_library(l);
    if (l->on_event) l->on_event(l->event_arg, REDIS_LINK_CONNECTING);
    while (l->waiting.head && l->ac) {
        rq *r = l->waiting.head;
        rq_unlink(r);
        if (!rq_send(l, r)) rq_fail(l, r, "redis connection refused the command");
    }
}

static void conn_open(redis_link *l)
{
    l->next_connect_ns = uv_hrtime() + RECONNECT_MS * MS;
    const char *why = NULL;
    redisAsyncContext *ac = conn_create(l, &why);
    if (!ac) {
        if (!l->conn_warned) log_warn("%s: cannot connect to redis at %s: %s (retrying)", l->name, l->where, why);
        l->conn_warned = true;
        return;
    }
    conn_use(l, ac);
}

static void watch_cb(uv_timer_t *t)
{
    redis_link *l = t->data;
    uint64_t now = uv_hrtime();
    if (l->closing && l->ac && now > l->close_deadline_ns) conn_drop(l, "closing");
    for (rq *r = l->sent.head; r; r = r->next)
        if (now - r->start_ns > r->timeout_ns) {
            conn_drop(l, "redis did not answer in time");
            break; /* the list was emptied */
        }
    for (rq *r = l->waiting.head, *next; r; r = next) {
        next = r->next;
        if (now - r->start_ns > r->timeout_ns) rq_fail(l, r, "redis is unreachable");
    }
    while (l->done.head) {
        rq *r = l->done.head;
        rq_unlink(r);
        rq_finish(l, r, NULL, r->why);
    }
    if (!l->closing && !l->ac && uv_hrtime() >= l->next_connect_ns) conn_open(l);
}

redis_link *redis_link_new(uv_loop_t *loop, const redis_link_opts *o)
{
    redis_link *l = xcalloc(1, sizeof *l);
    atomic_fetch_add(&live_links, 1);
    l->loop = loop;
    l->url = *o->url;
    redis_url_where(&l->url, l->where, sizeof l->where);
    str_copy(l->name, sizeof l->name, o->name ? o->name : "redis");
    l->load = o->load_library;
    l->on_event = o->on_event;
    l->event_arg = o->event_arg;
    uv_timer_init(loop, &l->watch_timer);
    l->watch_timer.data = l;
    uv_timer_start(&l->watch_timer, watch_cb, WATCH_MS, WATCH_MS);
    conn_open(l);
    return l;
}

/* ---- closing -------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    redis_link *l = h->data;
    rq_free_list(&l->sent); /* empty: the context is gone */
    rq_free_list(&l->waiting);
    rq_free_list(&l->done);
    free(l);
    atomic_fetch_sub(&live_links, 1);
}

static void close_timer(redis_link *l)
{
    if (l->timer_closed) return;
    l->timer_closed = true;
    uv_close((uv_handle_t *)&l->watch_timer, on_timer_closed);
}

void redis_link_close(redis_link *l)
{
    if (!l || l->closing) return;
    l->closing = true;
    l->close_deadline_ns = uv_hrtime() + CLOSE_MS * MS;
    /* Every command still unanswered is answered now, so its caller can
     * free what it holds; hiredis keeps the sent ones (their bytes still go
     * out) but runs no callback of ours for them any more. */
    rq_list *lists[] = {&l->waiting, &l->done, &l->sent};
    for (size_t i = 0; i < 3; i++)
        for (rq *r = lists[i]->head; r; r = r->next) {
            redis_done_fn fn = r->fn;
            r->fn = NULL;
            if (fn) fn(r->arg, &(redis_result){NULL, "the redis link is closing", r->start_ns});
        }
    rq_free_list(&l->waiting);
    rq_free_list(&l->done);
    if (!l->ac) {
        close_timer(l);
        return;
    }
    if (l->connected || l->sent.head)
        redisAsyncDisconnect(l->ac); /* after the pending replies; on_disconnect or the watchdog ends it */
    else
        conn_drop(l, "closing");
}
