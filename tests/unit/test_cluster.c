/* test_cluster.c - cluster.c against a real redis-server started by each
 * test (a free port on 127.0.0.1, or a unix socket with a password), killed
 * at the end. Every wait is bounded. Without redis-server on PATH the tests
 * fail with a message saying so: cluster mode cannot be tested without it. */
#include "unit.h"

#include "cluster.h"
#include "cluster_storage.h"
#include "fixture.h"
#include "placement.h"
#include "registry.h"
#include "storage.h"
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* ---- a redis-server per test ---------------------------------------------- */

typedef struct redis_proc {
    pid_t pid;
    int port;          /* 0: unix socket only */
    char dir[64];      /* its --dir, log and socket */
    char sock[128];
    char password[64];
} redis_proc;

static redis_proc procs[2];
static int nprocs;

static void redis_kill(redis_proc *rp)
{
    if (rp->pid > 0) {
        kill(rp->pid, SIGCONT); /* in case a test stopped it */
        kill(rp->pid, SIGKILL);
        while (waitpid(rp->pid, NULL, 0) < 0 && errno == EINTR) {}
        rp->pid = 0;
    }
    if (rp->dir[0]) {
        DIR *d = opendir(rp->dir);
        struct dirent *e;
        char path[400];
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", rp->dir, e->d_name);
            unlink(path);
        }
        if (d) closedir(d);
        rmdir(rp->dir);
        rp->dir[0] = 0;
    }
}

static void kill_all(void *unused)
{
    (void)unused;
    for (int i = 0; i < nprocs; i++) redis_kill(&procs[i]);
    nprocs = 0;
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char file[1024];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(file, sizeof file, "%.*s/%s", (int)n, path, prog);
        if (access(file, X_OK) == 0) return true;
        path += n;
        if (*path == ':') path++;
    }
    return false;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    ASSERT(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *redis_connect(const redis_proc *rp)
{
    struct timeval tv = {0, 200000};
    redisContext *rc = rp->port ? redisConnectWithTimeout("127.0.0.1", rp->port, tv)
                                : redisConnectUnixWithTimeout(rp->sock, tv);
    if (rc && rc->err) {
        redisFree(rc);
        return NULL;
    }
    if (rc) redisSetTimeout(rc, (struct timeval){5, 0});
    return rc;
}

/* Starts redis-server on a free TCP port, or (unix_pw) on a unix socket
 * only, with that password. Fails the test if it does not answer PING. */
static redis_proc *redis_start(const char *unix_pw)
{
    ASSERT_MSG(on_path("redis-server"),
               "redis-server not found on PATH: the cluster tests need a real Redis 7 "
               "(apt-get install redis-server, or scripts/install-deps.sh)");
    ASSERT(nprocs < 2);
    redis_proc *rp = &procs[nprocs++];
    memset(rp, 0, sizeof *rp);
    unit_on_fail(kill_all, NULL);
    snprintf(rp->dir, sizeof rp->dir, "/tmp/lp-cluster-XXXXXX");
    ASSERT(mkdtemp(rp->dir));
    char port[16], log[128];
    snprintf(log, sizeof log, "%s/redis.log", rp->dir);
    if (unix_pw) {
        char dir[sizeof rp->dir];
        str_copy(dir, sizeof dir, rp->dir);
        snprintf(rp->sock, sizeof rp->sock, "%s/redis.sock", dir);
        str_copy(rp->password, sizeof rp->password, unix_pw);
        snprintf(port, sizeof port, "0");
    } else {
        rp->port = free_port();
        snprintf(port, sizeof port, "%d", rp->port);
    }
    const char *argv[32] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                            "no", "--daemonize", "no", "--dir", rp->dir, "--loglevel", "warning"};
    int argc = 15;
    if (unix_pw) {
        argv[argc++] = "--unixsocket";
        argv[argc++] = rp->sock;
        argv[argc++] = "--unixsocketperm";
        argv[argc++] = "700";
        argv[argc++] = "--requirepass";
        argv[argc++] = unix_pw;
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    rp->pid = fork();
    ASSERT(rp->pid >= 0);
    if (rp->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test killed by its alarm */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp("redis-server", (char **)argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* 5 s */
        int status;
        if (waitpid(rp->pid, &status, WNOHANG) == rp->pid) {
            rp->pid = 0;
            char *text = read_file(log, NULL);
            unit_fail(__FILE__, __LINE__, "redis-server exited at start (status %d): %s", status,
                      text ? unit_repr(text, strlen(text)) : "(no log)");
        }
        redisContext *rc = redis_connect(rp);
        if (rc) {
            redisReply *r = redisCommand(rc, "PING");
            redisFree(rc);
            if (r) {
                freeReplyObject(r); /* PONG, or NOAUTH: either way it is up */
                return rp;
            }
        }
        usleep(10000);
    }
    unit_fail(__FILE__, __LINE__, "redis-server on %s did not answer PING within 5 s", rp->port ? port : rp->sock);
}

/* A side connection for checking what the cluster wrote. */
static redisContext *side(const redis_proc *rp)
{
    redisContext *rc = redis_connect(rp);
    ASSERT_MSG(rc != NULL, "cannot open a side connection to redis");
    if (rp->password[0]) {
        redisReply *r = redisCommand(rc, "AUTH %s", rp->password);
        ASSERT(r && r->type != REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
    return rc;
}

static redisReply *cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ASSERT_MSG(r != NULL, "side connection: %s", rc->errstr);
    return r;
}

static long long cmd_int(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ASSERT_MSG(r != NULL, "side connection: %s", rc->errstr);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                  : r->type == REDIS_REPLY_NIL    ? -1000
                                                  : -2000;
    freeReplyObject(r);
    return v;
}

/* The string reply into out ("(nil)" for nil). */
static const char *cmd_str(redisContext *rc, char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ASSERT_MSG(r != NULL, "side connection: %s", rc->errstr);
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        str_copy(out, cap, r->str);
    else if (r->type == REDIS_REPLY_NIL) str_copy(out, cap, "(nil)");
    else snprintf(out, cap, "(type %d)", r->type);
    freeReplyObject(r);
    return out;
}

/* ---- the loop --------------------------------------------------------------- */

static void tick_cb(uv_timer_t *t) { (void)t; }

/* Runs the loop until pred(arg) or timeout_ms; returns pred's last value. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t timeout_ms)
{
    uv_timer_t tick; /* so UV_RUN_ONCE returns at least every 5 ms */
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    uint64_t end = uv_hrtime() + timeout_ms * 1000000;
    bool ok;
    while (!(ok = pred(arg)) && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* runs the close */
    return ok;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(uv_loop_t *loop, uint64_t ms) { run_until(loop, never, NULL, ms); }

/* After cluster_stop: the loop must end by itself, with every handle closed. */
static void finish(uv_loop_t *loop)
{
    uint64_t end = uv_hrtime() + 5000 * UINT64_C(1000000);
    while (uv_loop_alive(loop) && uv_hrtime() < end) uv_run(loop, UV_RUN_ONCE);
    ASSERT_MSG(!uv_loop_alive(loop), "the loop still has handles 5 s after cluster_stop");
    ASSERT_EQ(uv_loop_close(loop), 0);
}

/* ---- helpers around cluster ------------------------------------------------- */

static char url_buf[4][300];

static const char *tcp_url(const redis_proc *rp)
{
    static int i;
    char *u = url_buf[i++ % 4];
    snprintf(u, 300, "redis://127.0.0.1:%d", rp->port);
    return u;
}

static cluster *start_node(uv_loop_t *loop, const redis_proc *rp, const char *id, const char *addr, uint64_t ttl)
{
    cluster_opts o = {.url = tcp_url(rp), .node_id = id, .internal_addr = addr, .lease_ttl_ms = ttl};
    char *err = NULL;
    cluster *c = cluster_start(loop, &o, &err);
    ASSERT_MSG(c != NULL, "cluster_start(%s): %s", id, err ? err : "?");
    return c;
}

typedef struct answers {
    int n;
    claim_answer a[128];
} answers;

static void on_claim(void *arg, const claim_answer *a)
{
    answers *s = arg;
    if (s->n < 128) s->a[s->n] = *a;
    s->n++;
}

typedef struct wait_n {
    answers *s;
    int n;
} wait_n;

static bool have_answers(void *arg)
{
    wait_n *w = arg;
    return w->s->n >= w->n;
}

/* One claim, answered. */
static claim_answer claim(uv_loop_t *loop, cluster *c, const char *pname, const char *id)
{
    answers s = {0};
    cluster_claim(c, pname, id, on_claim, &s);
    ASSERT_EQ(s.n, 0); /* never answered inside the call */
    wait_n w = {&s, 1};
    ASSERT_MSG(run_until(loop, have_answers, &w, 3000), "claim of %s/%s unanswered after 3 s", pname, id);
    return s.a[0];
}

static bool renewed(void *arg)
{
    cluster *c = arg;
    return cluster_counters_get(c)->renewals_ok >= 1;
}

typedef struct events {
    int fences, rejoins;
    uint64_t fence_ns, epoch;
} events;

static void on_fence(void *arg)
{
    events *e = arg;
    e->fences++;
    e->fence_ns = uv_hrtime();
}

static void on_rejoin(void *arg, uint64_t epoch)
{
    events *e = arg;
    e->rejoins++;
    e->epoch = epoch;
}

static bool fenced(void *arg) { return ((events *)arg)->fences > 0; }
static bool rejoined(void *arg) { return ((events *)arg)->rejoins > 0; }

/* ---- tests ------------------------------------------------------------------ */

TEST(redis_url_parse_table)
{
    static const struct {
        const char *url, *host, *path, *user, *pw;
        int port, db;
    } good[] = {
        {"redis://localhost", "localhost", "", "", "", 6379, 0},
        {"redis://127.0.0.1:6380/2", "127.0.0.1", "", "", "", 6380, 2},
        {"redis://:secret@h:1/0", "h", "", "", "secret", 1, 0},
        {"redis://alice:s%40cret@h", "h", "", "alice", "s@cret", 6379, 0},
        {"redis://pw@h", "h", "", "", "pw", 6379, 0},
        {"redis://a:b@c@h:7", "h", "", "a", "b@c", 7, 0},
        {"redis://[::1]:6390/3", "::1", "", "", "", 6390, 3},
        {"redis://h/", "h", "", "", "", 6379, 0},
        {"unix:/tmp/r.sock", "", "/tmp/r.sock", "", "", 6379, 0},
        {"unix:///tmp/r.sock?db=4&password=p%20w&user=bob", "", "/tmp/r.sock", "bob", "p w", 6379, 4},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        redis_url u;
        char *err = NULL;
        int rc = redis_url_parse(good[i].url, &u, &err);
        ASSERT_MSG(rc == 0, "%s: %s", good[i].url, err ? err : "?");
        ASSERT_NULL(err);
        ASSERT_STR_EQ(u.host, good[i].host);
        ASSERT_STR_EQ(u.unix_path, good[i].path);
        ASSERT_STR_EQ(u.user, good[i].user);
        ASSERT_STR_EQ(u.password, good[i].pw);
        ASSERT_EQ(u.port, good[i].port);
        ASSERT_EQ(u.db, good[i].db);
    }

    char long_path[220] = "unix:/", long_host[320] = "redis://";
    memset(long_path + 6, 'x', 200);
    memset(long_host + 8, 'h', 300);
    const struct {
        const char *url, *msg;
    } bad[] = {
        {"", "cluster URL is empty (redis://HOST[:PORT][/DB] or unix:/path/to.sock)"},
        {"http://x", "cluster URL must start with redis:// or unix: (redis://HOST[:PORT][/DB] or unix:/path/to.sock)"},
        {"localhost:6379", "cluster URL must start with redis:// or unix: (redis://HOST[:PORT][/DB] or unix:/path/to.sock)"},
        {"rediss://h", "cluster URL: rediss:// (TLS) is not supported; use redis:// or unix:"},
        {"redis://", "cluster URL: no host (redis://HOST[:PORT][/DB])"},
        {"redis://:6379", "cluster URL: no host (redis://HOST[:PORT][/DB])"},
        {"redis://h:0", "cluster URL: port must be a number 1-65535"},
        {"redis://h:65536", "cluster URL: port must be a number 1-65535"},
        {"redis://h:x", "cluster URL: port must be a number 1-65535"},
        {"redis://h:", "cluster URL: port must be a number 1-65535"},
        {"redis://h/x", "cluster URL: database must be a number (redis://HOST:PORT/DB)"},
        {"redis://h/1/2", "cluster URL: database must be a number (redis://HOST:PORT/DB)"},
        {"redis://h?timeout=1", "cluster URL: unexpected '?' after the address (redis:// takes no parameters)"},
        {"redis://h:1/0?x", "cluster URL: unexpected '?' after the address (redis:// takes no parameters)"},
        {"redis://[::1", "cluster URL: unterminated [IPv6] host"},
        {"redis://[::1]x", "cluster URL: unexpected text after the [IPv6] host"},
        {"redis://:@h", "cluster URL: empty password before '@'"},
        {"redis://:p%zz@h", "cluster URL: bad %-escape in the password"},
        {"redis://:p%00@h", "cluster URL: bad %-escape in the password"},
        {"redis://u%4:p@h", "cluster URL: bad %-escape in the user name"},
        {"unix:rel.sock", "cluster URL: unix: wants an absolute socket path (unix:/path/to.sock)"},
        {"unix:", "cluster URL: unix: wants an absolute socket path (unix:/path/to.sock)"},
        {"unix:/tmp/x?foo=1", "cluster URL: unknown parameter 'foo' (expected db, password or user)"},
        {"unix:/tmp/x?db", "cluster URL: parameter without '=' (unix:/path?db=N&password=P&user=U)"},
        {"unix:/tmp/x?db=-1", "cluster URL: db must be a number"},
        {"unix:/tmp/x?password=%", "cluster URL: bad %-escape in the password"},
        {long_path, "cluster URL: unix socket path too long (max 107 bytes)"},
        {long_host, "cluster URL: host too long (max 255 bytes)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redis_url u;
        char *err = NULL;
        ASSERT_MSG(redis_url_parse(bad[i].url, &u, &err) == -1, "accepted %s", bad[i].url);
        ASSERT_STR_EQ(err, bad[i].msg);
        ASSERT(!strchr(err, '\n'));
        free(err);
    }
    redis_url u;
    ASSERT_EQ(redis_url_parse(NULL, &u, NULL), -1); /* err is optional */
}

TEST(redis_room_key_encoding)
{
    static const struct {
        const char *party, *room, *key;
    } cases[] = {
        {"chat", "lobby", "lp:own:{chat/lobby}"},
        {"chat", "a{b}c%d e", "lp:own:{chat/a%7Bb%7Dc%25d%20e}"},
        {"p/q", "x/y", "lp:own:{p%2Fq/x/y}"},
        {"p", "\x01\x7f\xc3\xa9", "lp:own:{p/%01%7F\xc3\xa9}"},
        {"p", "", "lp:own:{p/}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b;
        buf_init(&b);
        redis_room_key(&b, "lp:own:", cases[i].party, cases[i].room);
        ASSERT_BYTES_EQ(b.data, b.len, cases[i].key, strlen(cases[i].key));
        buf_free(&b);
    }
}

TEST(cluster_start_registers_and_stop_cleans_up)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);

    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0); /* default ttl 5000 */
    ASSERT_EQ(cluster_epoch(a), 1);
    ASSERT_EQ(cmd_int(rc, "GET lp:epoch"), 1);
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), 1);
    long long pttl = cmd_int(rc, "PTTL lp:node:A");
    ASSERT_MSG(pttl > 4000 && pttl <= 5000, "PTTL lp:node:A = %lld", pttl);
    char v[400];
    cmd_str(rc, v, sizeof v, "HGET lp:nodes A");
    ASSERT_MSG(!strncmp(v, "1|127.0.0.1:9001|0|", 19), "lp:nodes A = %s", v);
    ASSERT(cluster_lease_valid(a));
    ASSERT_STR_EQ(cluster_node_id(a), "A");

    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 0);
    ASSERT_EQ(cluster_epoch(b), 2); /* every registration takes a new epoch */
    ASSERT_EQ(cmd_int(rc, "GET lp:epoch"), 2);

    /* Renewals publish the load and fill each node's view of the others. */
    cluster_set_load(a, 7);
    ASSERT(run_until(&loop, renewed, a, 2000));
    ASSERT(run_until(&loop, renewed, b, 2000));
    cmd_str(rc, v, sizeof v, "HGET lp:nodes A");
    ASSERT_MSG(!strncmp(v, "1|127.0.0.1:9001|7|", 19), "lp:nodes A = %s", v);
    char addr[300];
    ASSERT(cluster_node_addr(a, "B", addr, sizeof addr));
    ASSERT_STR_EQ(addr, "127.0.0.1:9002");
    ASSERT(cluster_node_addr(b, "A", addr, sizeof addr));
    ASSERT_STR_EQ(addr, "127.0.0.1:9001");
    ASSERT(cluster_node_addr(a, "A", addr, sizeof addr));
    ASSERT(!cluster_node_addr(a, "Z", addr, sizeof addr));

    /* A clean stop deletes the lease and the lp:nodes entry at once. */
    cluster_stop(a);
    ASSERT(!cluster_lease_valid(a)); /* a stays valid until the loop frees it */
    cluster_stop(b);
    finish(&loop);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:A"), 0);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:B"), 0);
    ASSERT_EQ(cmd_int(rc, "HLEN lp:nodes"), 0);
    ASSERT_EQ(cmd_int(rc, "GET lp:epoch"), 2);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_id_collision_fails_and_leaves_no_trace)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    char before[400], after[400];
    cmd_str(rc, before, sizeof before, "HGET lp:nodes A");

    cluster_opts o = {.url = tcp_url(rp), .node_id = "A", .internal_addr = "127.0.0.1:9999"};
    char *err = NULL;
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    ASSERT_STR_EQ(err, "node id A is already live in the cluster (epoch 1)");
    free(err);
    ASSERT_EQ(cmd_int(rc, "GET lp:epoch"), 1); /* no epoch taken */
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), 1);
    ASSERT_EQ(cmd_int(rc, "HLEN lp:nodes"), 1);
    ASSERT_STR_EQ(cmd_str(rc, after, sizeof after, "HGET lp:nodes A"), before);
    ASSERT(cluster_lease_valid(a));

    /* Once A stopped cleanly its id is free at once (no wait for the TTL). */
    cluster_stop(a);
    finish(&loop);
    uv_loop_init(&loop);
    cluster *again = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    ASSERT_EQ(cluster_epoch(again), 2);
    cluster_stop(again);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_start_errors)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *err = NULL;
    char url[300];

    /* Nothing listens on a port we just released. */
    int port = free_port();
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    cluster_opts o = {.url = url, .node_id = "A", .internal_addr = "127.0.0.1:9001"};
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    char want[300];
    snprintf(want, sizeof want, "cannot connect to redis at 127.0.0.1:%d: Connection refused", port);
    ASSERT_STR_EQ(err, want);
    free(err);

    o.url = "redis://h:99999";
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    ASSERT_STR_EQ(err, "cluster URL: port must be a number 1-65535");
    free(err);

    redis_proc *rp = redis_start("p@ss word");
    o.url = url;
    o.node_id = "a b";
    snprintf(url, sizeof url, "unix:%s?password=p%%40ss%%20word", rp->sock);
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    ASSERT_STR_EQ(err, "cluster: node id must be 1-63 printable bytes without spaces or '|'");
    free(err);
    o.node_id = "A";
    o.lease_ttl_ms = 100;
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    ASSERT_STR_EQ(err, "cluster: lease ttl must be 200 ms - 1 h");
    free(err);
    o.lease_ttl_ms = 0;

    /* unix socket + requirepass: no password, a wrong one, the right one. */
    snprintf(url, sizeof url, "unix:%s", rp->sock);
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    snprintf(want, sizeof want,
             "redis at unix:%s wants a password (NOAUTH): put it in the cluster URL "
             "(redis://:PASSWORD@HOST or unix:/path?password=PASSWORD)",
             rp->sock);
    ASSERT_STR_EQ(err, want);
    free(err);

    snprintf(url, sizeof url, "unix:%s?password=wrong", rp->sock);
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    snprintf(want, sizeof want, "redis at unix:%s refused the password: WRONGPASS", rp->sock);
    ASSERT_MSG(!strncmp(err, want, strlen(want)), "got: %s", err);
    free(err);

    snprintf(url, sizeof url, "unix:%s?password=p%%40ss%%20word&db=3", rp->sock);
    cluster *a = cluster_start(&loop, &o, &err);
    ASSERT_MSG(a != NULL, "%s", err ? err : "?");
    ASSERT(run_until(&loop, renewed, a, 3000)); /* the async connection authenticates and selects too */
    redisContext *rc = side(rp);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:A"), 0); /* db 0 */
    redisReply *r = cmd(rc, "SELECT 3");
    freeReplyObject(r);
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), 1);
    cluster_stop(a);
    finish(&loop);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:A"), 0);
    redisFree(rc);

    /* A Redis that accepts connections but never answers (on a fresh loop:
     * finish closed the last one). */
    ASSERT_EQ(uv_loop_init(&loop), 0);
    ASSERT_EQ(kill(rp->pid, SIGSTOP), 0);
    uint64_t t0 = uv_hrtime();
    ASSERT_NULL(cluster_start(&loop, &o, &err));
    kill(rp->pid, SIGCONT);
    snprintf(want, sizeof want, "redis at unix:%s: AUTH: no answer within 2 s", rp->sock);
    ASSERT_STR_EQ(err, want);
    free(err);
    ASSERT((uv_hrtime() - t0) / 1000000 < 3000);
    finish(&loop);
    kill_all(NULL);
}

TEST(cluster_racing_claims_agree_on_one_owner)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 0);
    ASSERT(run_until(&loop, renewed, a, 2000));
    ASSERT(run_until(&loop, renewed, b, 2000));

    /* Two connections, 50 claims each, interleaved: Redis serializes them. */
    static answers sa, sb;
    for (int i = 0; i < 50; i++) {
        cluster_claim(a, "chat", "race", on_claim, &sa);
        cluster_claim(b, "chat", "race", on_claim, &sb);
    }
    wait_n wa = {&sa, 50}, wb = {&sb, 50};
    ASSERT(run_until(&loop, have_answers, &wa, 5000));
    ASSERT(run_until(&loop, have_answers, &wb, 5000));
    ASSERT_EQ(sa.n, 50);
    ASSERT_EQ(sb.n, 50);
    bool a_won = sa.a[0].result == CLAIM_MINE;
    const char *owner = a_won ? "A" : "B", *owner_addr = a_won ? "127.0.0.1:9001" : "127.0.0.1:9002";
    for (int i = 0; i < 50; i++) {
        for (int k = 0; k < 2; k++) {
            const claim_answer *x = k ? &sb.a[i] : &sa.a[i];
            bool is_owner = (k == 0) == a_won;
            ASSERT_MSG(x->result == (is_owner ? CLAIM_MINE : CLAIM_OTHER), "answer %d of %s: result %d (%s)", i,
                       k ? "B" : "A", x->result, x->error ? x->error : "");
            ASSERT_EQ(x->fence, 1);
            ASSERT_STR_EQ(x->node, owner);
            ASSERT_STR_EQ(x->addr, owner_addr);
        }
    }
    char v[64];
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{chat/race} fence"), 1);
    ASSERT_STR_EQ(cmd_str(rc, v, sizeof v, "HGET lp:own:{chat/race} node"), owner);
    const cluster_counters *ca = cluster_counters_get(a), *cb = cluster_counters_get(b);
    ASSERT_EQ(ca->claims_won + cb->claims_won, 1); /* won once; the owner's other 49 found it theirs already */
    ASSERT_EQ(ca->claims_lost + cb->claims_lost, 50);
    ASSERT_EQ(ca->claims_errors + cb->claims_errors, 0);

    cluster_stop(a);
    cluster_stop(b);
    finish(&loop);
    /* The directory entry outlives its owner: the fence stays monotonic. */
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{chat/race} fence"), 1);
    redisFree(rc);
    kill_all(NULL);
}

static bool released(void *arg)
{
    redisContext *rc = arg;
    return cmd_int(rc, "HEXISTS lp:own:{chat/r1} node") == 0;
}

TEST(cluster_release_then_claim_bumps_the_fence)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 0);

    claim_answer x = claim(&loop, a, "chat", "r1");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 1);
    ASSERT_STR_EQ(x.node, "A");
    x = claim(&loop, a, "chat", "r1"); /* again: still mine, same fence */
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 1);

    cluster_release(b, "chat", "r1"); /* not B's: changes nothing */
    cluster_release(a, "chat", "r1");
    ASSERT(run_until(&loop, released, rc, 2000));
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{chat/r1} fence"), 1);

    x = claim(&loop, b, "chat", "r1");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 2);
    x = claim(&loop, a, "chat", "r1");
    ASSERT_EQ(x.result, CLAIM_OTHER);
    ASSERT_EQ(x.fence, 2);
    ASSERT_STR_EQ(x.node, "B");
    ASSERT_STR_EQ(x.addr, "127.0.0.1:9002");

    /* Room names that would break the hash tag are encoded. */
    x = claim(&loop, a, "chat", "we{ir}d %id");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(cmd_int(rc, "HGET %s fence", "lp:own:{chat/we%7Bir%7Dd%20%25id}"), 1);

    cluster_stop(a);
    cluster_stop(b);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

static bool pinned(void *arg)
{
    redisContext *rc = arg;
    return cmd_int(rc, "HEXISTS lp:own:{chat/p1} home") == 1;
}

/* A room whose data is in A's local storage (pinned) never moves to B: while
 * A is down B's claim answers PINNED naming A, and once A is back the room
 * goes to A again, even when B asks first. An unpinned room moves freely. */
TEST(cluster_pinned_room_stays_with_its_home_node)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 0);
    ASSERT_EQ(claim(&loop, a, "chat", "p1").result, CLAIM_MINE);
    ASSERT_EQ(claim(&loop, a, "chat", "free").result, CLAIM_MINE);
    cluster_pin(b, "chat", "p1"); /* not B's room: changes nothing */
    run_for(&loop, 100);
    ASSERT_EQ(cmd_int(rc, "HEXISTS lp:own:{chat/p1} home"), 0);
    cluster_pin(a, "chat", "p1");
    ASSERT(run_until(&loop, pinned, rc, 2000));
    cluster_stop(a); /* A goes away: its lease is deleted */
    run_for(&loop, 200);

    claim_answer x = claim(&loop, b, "chat", "p1");
    ASSERT_EQ(x.result, CLAIM_PINNED);
    ASSERT_STR_EQ(x.node, "A");
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{chat/p1} fence"), 1); /* nobody took it */
    x = claim(&loop, b, "chat", "free");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 2);

    a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0); /* back, with a new epoch */
    x = claim(&loop, b, "chat", "p1");
    ASSERT_EQ(x.result, CLAIM_OTHER);
    ASSERT_STR_EQ(x.node, "A");
    ASSERT_EQ(claim(&loop, a, "chat", "p1").result, CLAIM_MINE);

    cluster_stop(a);
    cluster_stop(b);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

static bool sees_b(void *arg)
{
    char addr[300];
    return cluster_node_addr(arg, "B", addr, sizeof addr);
}

TEST(cluster_load_guard_claims_for_the_least_loaded_node)
{
    redis_proc *rp = redis_start(NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 1000);
    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 1000);
    ASSERT(run_until(&loop, sees_b, a, 2000)); /* A's view includes B (0 rooms) */
    cluster_set_load(a, 10);

    claim_answer x = claim(&loop, a, "chat", "busy");
    ASSERT_EQ(x.result, CLAIM_OTHER);
    ASSERT_STR_EQ(x.node, "B");
    ASSERT_STR_EQ(x.addr, "127.0.0.1:9002");
    ASSERT_EQ(x.fence, 1);
    ASSERT_EQ(cluster_counters_get(a)->claims_delegated, 1);
    x = claim(&loop, b, "chat", "busy"); /* the forwarded request arrives at B */
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 1);

    /* B is below the mean: it claims for itself. */
    x = claim(&loop, b, "chat", "quiet");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(cluster_counters_get(b)->claims_delegated, 0);

    cluster_stop(a);
    cluster_stop(b);
    finish(&loop);
    kill_all(NULL);
}

TEST(cluster_lost_lease_fences_and_peer_takes_over)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 1000);
    cluster *b = start_node(&loop, rp, "B", "127.0.0.1:9002", 1000);
    events ea = {0};
    cluster_on_fence(a, on_fence, &ea);
    cluster_on_rejoin(a, on_rejoin, &ea);

    claim_answer x = claim(&loop, a, "chat", "x");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 1);

    /* A's key disappears: its next renewal (<= 200 ms) learns it. */
    uint64_t t_del = uv_hrtime();
    ASSERT_EQ(cmd_int(rc, "DEL lp:node:A"), 1);
    ASSERT_MSG(run_until(&loop, fenced, &ea, 1000), "A not fenced 1 s after its lease key was deleted");
    ASSERT_EQ(ea.fences, 1);
    /* before the key would have expired (last renewal < t_del, ttl 1 s) */
    ASSERT_MSG(ea.fence_ns - t_del < 1000 * UINT64_C(1000000), "fenced %llu ms after the DEL",
               (unsigned long long)((ea.fence_ns - t_del) / 1000000));
    ASSERT(ea.rejoins == 0);
    ASSERT(!cluster_lease_valid(a));
    ASSERT_EQ(cluster_counters_get(a)->fences, 1);

    /* A's old epoch no longer owns anything: B takes the room, fence + 1. */
    x = claim(&loop, b, "chat", "x");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 2);
    ASSERT_STR_EQ(x.node, "B");

    /* A re-registers with a new epoch, then sees B as the owner. */
    ASSERT_MSG(run_until(&loop, rejoined, &ea, 3000), "A did not rejoin within 3 s");
    ASSERT_EQ(ea.rejoins, 1);
    ASSERT(ea.epoch > 2);
    ASSERT_EQ(cluster_epoch(a), ea.epoch);
    ASSERT(cluster_lease_valid(a));
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), (long long)ea.epoch);
    x = claim(&loop, a, "chat", "x");
    ASSERT_EQ(x.result, CLAIM_OTHER);
    ASSERT_STR_EQ(x.node, "B");
    ASSERT_EQ(x.fence, 2);
    ASSERT_EQ(ea.fences, 1);

    cluster_stop(a);
    cluster_stop(b);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_fences_before_expiry_when_redis_stalls_then_rejoins)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 1000);
    events ea = {0};
    cluster_on_fence(a, on_fence, &ea);
    cluster_on_rejoin(a, on_rejoin, &ea);
    run_for(&loop, 500); /* a few renewals */
    ASSERT(cluster_counters_get(a)->renewals_ok >= 2);

    /* The key expires no earlier than t0 + PTTL (PTTL is read after t0). */
    uint64_t t0 = uv_hrtime();
    long long pttl = cmd_int(rc, "PTTL lp:node:A");
    ASSERT(pttl > 0);
    uint64_t expiry_lower_bound = t0 + (uint64_t)pttl * 1000000;
    redisFree(rc);

    ASSERT_EQ(kill(rp->pid, SIGSTOP), 0); /* Redis stalls: renewals time out */
    bool got = run_until(&loop, fenced, &ea, 2000);
    kill(rp->pid, SIGCONT);
    ASSERT_MSG(got, "A was not fenced while Redis was stopped");
    ASSERT_MSG(ea.fence_ns < expiry_lower_bound, "fenced %lld ms after its key could have expired",
               (long long)(ea.fence_ns - expiry_lower_bound) / 1000000);
    ASSERT(!cluster_lease_valid(a));
    ASSERT(cluster_counters_get(a)->renewals_failed >= 1);
    claim_answer x = claim(&loop, a, "chat", "y");
    ASSERT_EQ(x.result, CLAIM_ERROR);
    ASSERT_STR_EQ(x.error, "node is fenced (lease lost)");

    ASSERT_MSG(run_until(&loop, rejoined, &ea, 5000), "A did not rejoin within 5 s of Redis resuming");
    ASSERT_EQ(ea.epoch, 2);
    ASSERT(cluster_lease_valid(a));
    rc = side(rp);
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), 2);
    x = claim(&loop, a, "chat", "y");
    ASSERT_EQ(x.result, CLAIM_MINE);

    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_reconnects_without_losing_the_lease)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 1000);
    events ea = {0};
    cluster_on_fence(a, on_fence, &ea);
    ASSERT(run_until(&loop, renewed, a, 1000));

    ASSERT(cmd_int(rc, "CLIENT KILL TYPE normal") >= 1); /* not the side connection (SKIPME) */
    uint64_t ok_before = cluster_counters_get(a)->renewals_ok;
    run_for(&loop, 1500); /* longer than the lease */
    ASSERT_EQ(ea.fences, 0);
    ASSERT(cluster_lease_valid(a));
    ASSERT(cluster_counters_get(a)->reconnects >= 1);
    ASSERT(cluster_counters_get(a)->renewals_ok >= ok_before + 3);
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), 1);
    claim_answer x = claim(&loop, a, "chat", "z");
    ASSERT_EQ(x.result, CLAIM_MINE);

    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_recovers_from_a_redis_that_lost_everything)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 1000);
    events ea = {0};
    cluster_on_fence(a, on_fence, &ea);
    cluster_on_rejoin(a, on_rejoin, &ea);
    ASSERT(run_until(&loop, renewed, a, 1000));

    /* As a restart without persistence: no library, no keys. */
    freeReplyObject(cmd(rc, "FUNCTION FLUSH"));
    freeReplyObject(cmd(rc, "FLUSHALL"));
    ASSERT_MSG(run_until(&loop, rejoined, &ea, 3000), "A did not rejoin within 3 s");
    ASSERT_EQ(ea.fences, 1);
    ASSERT_EQ(ea.epoch, 2); /* lp:epoch restarted at 0, but A never gets its old epoch again */
    ASSERT_EQ(cmd_int(rc, "GET lp:epoch"), 2);
    ASSERT(cluster_lease_valid(a));
    ASSERT_EQ(cmd_int(rc, "GET lp:node:A"), (long long)cluster_epoch(a));
    claim_answer x = claim(&loop, a, "chat", "after");
    ASSERT_EQ(x.result, CLAIM_MINE);
    ASSERT_EQ(x.fence, 1);

    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_stop_right_after_start_and_with_claims_pending)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Stopped before the async connection even connected. */
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    cluster_stop(a);
    finish(&loop);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:A"), 0);

    /* Stopped with claims in flight: their callbacks never run. */
    uv_loop_init(&loop);
    a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    static answers s;
    for (int i = 0; i < 20; i++) cluster_claim(a, "chat", "pending", on_claim, &s);
    cluster_stop(a);
    finish(&loop);
    ASSERT_EQ(s.n, 0);
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:A"), 0);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_status_lists_nodes)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    cluster_set_load(a, 3);
    ASSERT(run_until(&loop, renewed, a, 2000));
    /* C registered with a 50 ms lease and never renewed: expired. */
    redisReply *r = cmd(rc, "FCALL lp_register 0 C 10.0.0.3:1 50 0");
    ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    usleep(100000);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ASSERT_EQ(cluster_status_print(tcp_url(rp), out), 0);
    fclose(out);
    ASSERT_MSG(!strncmp(text, "A epoch=1 lease=alive ttl=", 26), "status: %s", text);
    ASSERT_CONTAINS(text, " addr=127.0.0.1:9001 rooms=3 renewed=");
    ASSERT_CONTAINS(text, "\nC epoch=2 lease=expired addr=10.0.0.3:1 rooms=0 renewed=");
    int lines = 0;
    for (char *p = text; *p; p++) lines += *p == '\n';
    ASSERT_EQ(lines, 2);
    free(text);

    out = open_memstream(&text, &len);
    ASSERT_EQ(cluster_status_print("redis://", out), 1);
    fclose(out);
    ASSERT_EQ(len, 0);
    free(text);

    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

TEST(cluster_functions_check_their_arguments)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0); /* loads the library */
    static const struct {
        const char *cmd, *err;
    } cases[] = {
        {"FCALL lp_register 0 A", "LPARG lp_register: wants 0 keys and id, addr, ttl, prev_epoch"},
        {"FCALL lp_register 0 a|b x 100 0", "LPARG lp_register: bad node id"},
        {"FCALL lp_register 0 N x 0 0", "LPARG lp_register: bad ttl"},
        {"FCALL lp_renew 0 A x 100 0 addr", "LPARG lp_renew: bad node id or epoch"},
        {"FCALL lp_claim 1 lp:own:x A 1 '' ''", "LPARG lp_claim: key is not lp:own:{...}"},
        {"FCALL lp_claim 1 lp:own:{p/r} A 1", "LPARG lp_claim: wants 1 key and id, epoch, for_id, for_epoch"},
        {"FCALL lp_release 1 lp:own:{p/r} A -1", "LPARG lp_release: bad node id or epoch"},
        {"FCALL lp_unregister 0 A", "LPARG lp_unregister: wants 0 keys and id, epoch"},
        {"FCALL lp_alarm_drop 1 lp:alarms", "LPARG lp_alarm_drop: wants a member and its time"},
        {"FCALL lp_alarm_drop 1 lp:alarms p/r soon", "LPARG lp_alarm_drop: wants a member and its time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redisReply *r = cmd(rc, cases[i].cmd);
        ASSERT_MSG(r->type == REDIS_REPLY_ERROR, "%s: not an error", cases[i].cmd);
        ASSERT_STR_EQ(r->str, cases[i].err);
        freeReplyObject(r);
    }
    /* A renewal of a key that vanished never recreates it. */
    ASSERT_EQ(cmd_int(rc, "FCALL lp_renew 0 Q 7 1000 0 addr"), -2000); /* {0}: an array */
    ASSERT_EQ(cmd_int(rc, "EXISTS lp:node:Q"), 0);
    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

/* ---- cluster storage: lp_commit and a room's copy ------------------------- */

#define ROOM_KEYS "3 lp:own:{p/r} lp:kv:{p/r} lp:alarms" /* lp_commit's keys for room p/r */

/* lp_commit applies a batch once: a retry with the same token answers the
 * seq and applies nothing, another commit on a stale base is refused
 * (LPSEQ), a stale fence or a released room is refused (LPFENCED), and a
 * malformed op list applies nothing at all. */
TEST(cluster_commit_is_fenced_sequenced_and_idempotent)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    claim_answer got = claim(&loop, a, "p", "r");
    ASSERT_EQ(got.result, CLAIM_MINE);
    ASSERT_EQ(got.data_seq, 0);
    char fence[24];
    snprintf(fence, sizeof fence, "%llu", (unsigned long long)got.fence);
    ASSERT_EQ(cmd_int(rc, "FCALL lp_commit " ROOM_KEYS " %s 0 t1 P k v1", fence), 1);
    ASSERT_EQ(cmd_int(rc, "FCALL lp_commit " ROOM_KEYS " %s 0 t1 P k v1 P x y", fence), 1); /* a retry: nothing applied */
    ASSERT_EQ(cmd_int(rc, "HEXISTS lp:kv:{p/r} x"), 0);
    redisReply *r = cmd(rc, "FCALL lp_commit " ROOM_KEYS " %s 0 t2 P k stale", fence);
    ASSERT(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPSEQ", 5));
    freeReplyObject(r);
    r = cmd(rc, "HGET lp:kv:{p/r} k");
    ASSERT_STR_EQ(r->str, "v1");
    freeReplyObject(r);
    r = cmd(rc, "FCALL lp_commit " ROOM_KEYS " 999 1 t3 P k other");
    ASSERT(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPFENCED", 8));
    freeReplyObject(r);
    r = cmd(rc, "FCALL lp_commit " ROOM_KEYS " %s 1 t4 P a 1 Q b", fence); /* Q is no op: nothing of it applies */
    ASSERT(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPARG", 5));
    freeReplyObject(r);
    ASSERT_EQ(cmd_int(rc, "HEXISTS lp:kv:{p/r} a"), 0);
    ASSERT_EQ(cmd_int(rc, "FCALL lp_commit " ROOM_KEYS " %s 1 t5 A 1234 0 D k", fence), 2);
    ASSERT_EQ(cmd_int(rc, "ZSCORE lp:alarms p/r"), 1234);
    ASSERT_EQ(cmd_int(rc, "HEXISTS lp:kv:{p/r} k"), 0);
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{p/r} vfence"), (long long)got.fence);
    cluster_release(a, "p", "r");
    run_for(&loop, 200);
    r = cmd(rc, "FCALL lp_commit " ROOM_KEYS " %s 2 t6 P k late", fence); /* released: its fence is void */
    ASSERT(r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "LPFENCED", 8));
    freeReplyObject(r);
    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

typedef struct activation_result {
    bool done;
    char err[200];
} activation_result;

static void on_activated(void *arg, const char *err)
{
    activation_result *x = arg;
    x->done = true;
    if (err) snprintf(x->err, sizeof x->err, "%s", err);
}

static bool activated(void *arg) { return ((activation_result *)arg)->done; }

static void activate(uv_loop_t *loop, cluster_storage *cs, uint64_t fence, uint64_t vfence, uint64_t seq)
{
    activation_result x = {0};
    cluster_storage_activate(cs, "p", "r", fence, vfence, seq, on_activated, &x);
    ASSERT_MSG(run_until(loop, activated, &x, 3000), "activation unanswered after 3 s");
    ASSERT_MSG(!x.err[0], "activation failed: %s", x.err);
}

static int local_get(storage *s, const char *key, char *out, size_t cap)
{
    buf b;
    buf_init(&b);
    const char *err = NULL;
    int found = storage_get(s, "p", "r", key, strlen(key), &b, &err);
    snprintf(out, cap, "%.*s", (int)b.len, b.data ? b.data : "");
    buf_free(&b);
    return found;
}

/* A node's copy of a room: loaded from Redis when its version differs,
 * kept when it matches, and never replaced while the node holds the room
 * under the same fence (its room's copy may be a commit ahead of Redis). */
TEST(cluster_storage_activation_loads_only_a_stale_copy)
{
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    uv_loop_t loop;
    uv_loop_init(&loop);
    cluster *a = start_node(&loop, rp, "A", "127.0.0.1:9001", 0);
    claim_answer got = claim(&loop, a, "p", "r");
    char fence[24];
    snprintf(fence, sizeof fence, "%llu", (unsigned long long)got.fence);
    ASSERT_EQ(cmd_int(rc, "FCALL lp_commit " ROOM_KEYS " %s 0 t1 P k from-redis", fence), 1);
    const char *dir = unit_tmpdir("cstore");
    char *err = NULL;
    storage *s = storage_open(dir, false, &err);
    ASSERT_MSG(s != NULL, "%s", err ? err : "?");
    redis_url u;
    ASSERT_EQ(redis_url_parse(tcp_url(rp), &u, NULL), 0);
    cluster_storage *cs = cluster_storage_new(&loop, &u, a, s);
    char v[64];
    activate(&loop, cs, got.fence, got.fence, 1); /* no copy: loaded */
    ASSERT_EQ(local_get(s, "k", v, sizeof v), 1);
    ASSERT_STR_EQ(v, "from-redis");
    /* The room writes locally ahead of Redis (its commit on the way), and
     * the node claims the room again under the same fence: the copy stays. */
    const char *serr = NULL;
    ASSERT_EQ(storage_put(s, "p", "r", "k", 1, "mine", 4, &serr), 0);
    ASSERT_EQ(storage_version_put(s, "p", "r", got.fence, got.fence, 2, &serr), 0);
    storage_set_record(s, NULL); /* the test's own local write, not a room's batch */
    storage_commit(s, NULL, NULL);
    cluster_storage_close(cs);
    cs = cluster_storage_new(&loop, &u, a, s);
    activate(&loop, cs, got.fence, got.fence, 1);
    ASSERT_EQ(local_get(s, "k", v, sizeof v), 1);
    ASSERT_STR_EQ(v, "mine");
    /* Under a new fence (the room moved and came back) a copy whose version
     * differs from Redis' is loaded again. */
    activate(&loop, cs, got.fence + 1, got.fence, 1);
    ASSERT_EQ(local_get(s, "k", v, sizeof v), 1);
    ASSERT_STR_EQ(v, "from-redis");
    cluster_storage_close(cs);
    storage_close(s);
    unit_remove_tree(dir);
    cluster_stop(a);
    finish(&loop);
    redisFree(rc);
    kill_all(NULL);
}

/* ---- placement: an unloaded room and a late placement answer ------------- */

typedef struct placed_answer {
    bool done;
    place pl;
} placed_answer;

static void on_placed(void *arg, const place *pl)
{
    placed_answer *a = arg;
    a->pl = *pl;
    a->done = true;
}

static bool place_done(void *arg) { return ((placed_answer *)arg)->done; }

static place place_room(fixture *f, const char *party_name, const char *id)
{
    placed_answer a = {0};
    placement_resolve(&f->w, fx_party(f, party_name), id, on_placed, &a);
    ASSERT_MSG(fx_run(f, place_done, &a, 3000), "no placement of %s/%s within 3 s", party_name, id);
    return a.pl;
}

static bool owner_released(void *arg) { return cmd_int(arg, "HEXISTS lp:own:{main/r1} node") == 0; }

/* A room is unloaded (its release goes to worker 0's queue) while a request
 * placed here before is on its way to the room's worker: the room starts
 * again, and the release must not reach Redis, or Redis would call free a
 * room this node runs and another node could claim it (two live owners).
 * Once the release went, a late answer may not start the room: it is
 * claimed again, under a new fence. */
TEST(placement_release_never_frees_a_room_that_runs_here)
{
    fixture f = {0};
    fx_project(&f, "placement", "{\"name\": \"pl\", \"main\": \"parties/main.lua\"}\n");
    fx_file(&f, "parties/main.lua", "return {}\n");
    fx_load(&f);
    fx_start(&f, false);
    redis_proc *rp = redis_start(NULL);
    redisContext *rc = side(rp);
    cluster *c = start_node(&f.loop, rp, "A", "127.0.0.1:9001", 0);
    ASSERT(run_until(&f.loop, renewed, c, 2000));
    placement_start(c, NULL, f.all, 1, 5000);
    const party *p = fx_party(&f, "main");

    ASSERT_EQ(place_room(&f, "main", "r1").kind, PLACE_HERE);
    char *err = NULL;
    room *r = registry_resolve(&f.w, p, "r1", &err);
    ASSERT_MSG(r != NULL, "%s", err ? err : "?");
    registry_evict(&f.w, r, 1001, "idle");
    /* the late answer: the room starts again before worker 0 runs the release */
    r = registry_resolve(&f.w, p, "r1", &err);
    ASSERT_MSG(r != NULL, "started again: %s", err ? err : "?");
    fx_run(&f, NULL, NULL, 300);
    char v[64];
    ASSERT_STR_EQ(cmd_str(rc, v, sizeof v, "HGET lp:own:{main/r1} node"), "A");
    ASSERT_EQ(place_room(&f, "main", "r1").kind, PLACE_HERE);

    /* unloaded for good: the release goes out, and a late answer is refused */
    registry_evict(&f.w, r, 1001, "idle");
    ASSERT(run_until(&f.loop, owner_released, rc, 2000));
    ASSERT_NULL(registry_resolve(&f.w, p, "r1", &err));
    ASSERT_STR_EQ(err, REGISTRY_ROOM_MOVED);
    free(err);
    err = NULL;
    ASSERT_EQ(place_room(&f, "main", "r1").kind, PLACE_HERE); /* claimed again */
    ASSERT_EQ(cmd_int(rc, "HGET lp:own:{main/r1} fence"), 2);
    r = registry_resolve(&f.w, p, "r1", &err);
    ASSERT_MSG(r != NULL, "after the claim: %s", err ? err : "?");

    registry_evict(&f.w, r, 1001, "idle");
    fx_run(&f, NULL, NULL, 100);
    placement_stop();
    cluster_stop(c);
    fx_run(&f, NULL, NULL, 200);
    fx_stop(&f);
    redisFree(rc);
    kill_all(NULL);
}
