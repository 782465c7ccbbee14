/* redis_link.h - one asynchronous connection to Redis on a libuv loop, with
 * what hiredis 0.14 lacks: command timeouts, reconnection, and commands
 * that wait for a connection instead of failing (redis_link.c).
 *
 * Cluster membership (cluster.c) runs one link on worker 0; cluster storage
 * (cluster_storage.c) runs one per worker. A link belongs to one loop and is
 * used only on that loop's thread. Also here: the Redis URL format and the
 * per-room key names both of them use. */
#ifndef LP_REDIS_LINK_H
#define LP_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

struct redisReply;
struct redisContext;

/* ---- Redis URL ------------------------------------------------------------ */

/* A parsed Redis address. Exactly one of host (TCP) or unix_path is set. */
typedef struct redis_url {
    char host[256];      /* TCP host name or address (IPv6 without brackets) */
    int port;            /* TCP port, 6379 by default */
    char unix_path[108]; /* unix socket path (sun_path limit) */
    char user[256];      /* ACL user name, "" for the default user */
    char password[256];  /* "" for none */
    int db;              /* SELECT index, 0 by default */
} redis_url;

/* Parses
 *   redis://[[user]:password@]host[:port][/db]   (user/password %-decoded,
 *                                                  host may be [IPv6])
 *   redis://password@host...                      (as redis-cli: a password)
 *   unix:/path/to.sock[?db=N][&password=P][&user=U]   (also unix:///path)
 * Returns 0, or -1 with a one-line *err (caller frees) that never repeats
 * the URL (it may hold a password). */
int redis_url_parse(const char *url, redis_url *out, char **err);
/* "host:port" or "unix:/path", for messages (never the password). */
void redis_url_where(const redis_url *u, char *out, size_t cap);

/* The prefix of a room's ownership hash: lp:own:{party/room}. */
#define REDIS_OWN_PREFIX "lp:own:"

/* Appends "<prefix>{<party>/<room>}" to b, with '{', '}', '%', '/' (in the
 * party only) and bytes < 0x21 or 0x7f percent-encoded, so a Redis Cluster
 * hash tag always spans exactly one room. */
void redis_room_key(buf *b, const char *prefix, const char *party, const char *room);
/* The inverse for the part between the braces ("party/room", encoded):
 * false if it is not one. */
bool redis_room_parse(const char *s, size_t n, buf *party, buf *room);

/* ---- synchronous use (start-up checks, command-line tools) ---------------- */

/* Connects (2 s timeout for the connection and each command), authenticates
 * and selects the database; NULL with a one-line *err (caller frees). */
struct redisContext *redis_sync_connect(const redis_url *u, char **err);
/* Runs one command (NULL-terminated arguments). Returns the reply, or NULL
 * with *err on an I/O error, a timeout, or an error reply when !errors_ok.
 * `what` names the step in the message. */
struct redisReply *redis_sync_cmd(struct redisContext *rc, const redis_url *u, const char *what, bool errors_ok,
                                  char **err, ...);
/* FUNCTION LOAD REPLACE of the luaparty library (lua/redis/) on a context
 * of redis_sync_connect, with a message that says Redis 7 is needed when it
 * fails. */
int redis_sync_load_library(struct redisContext *rc, const redis_url *u, char **err);

/* ---- the asynchronous link ------------------------------------------------ */

typedef struct redis_link redis_link;

/* How a command ended: reply (NULL if none came: why says why - a timeout,
 * the connection lost, the link closing), and when it was last sent
 * (uv_hrtime), e.g. for a lease renewed from its send time. */
typedef struct redis_result {
    const struct redisReply *reply;
    const char *why;
    uint64_t sent_ns;
} redis_result;

/* Called exactly once per command, on the loop, never inside the call that
 * made the command. */
typedef void (*redis_done_fn)(void *arg, const redis_result *res);

typedef enum {
    REDIS_LINK_CONNECTING, /* a new connection is being made (commands queue on it) */
    REDIS_LINK_BACK,       /* the first answer after an outage */
} redis_link_event;

typedef struct redis_link_opts {
    const redis_url *url;
    const char *name;        /* for log lines: "cluster", "storage" */
    bool load_library;       /* FUNCTION LOAD on every new connection (a Redis
                                restarted without persistence lost it) */
    void (*on_event)(void *arg, redis_link_event ev);
    void *event_arg;
} redis_link_opts;

/* Starts connecting at once; never fails (an unreachable Redis is retried
 * every 250 ms, with one warning per outage). */
redis_link *redis_link_new(uv_loop_t *loop, const redis_link_opts *o);

/* Sends a command of argc arguments (binary-safe: argvlen may be NULL for C
 * strings), or queues it until there is a connection. timeout_ms bounds the
 * whole wait, queueing included; an overdue command tears the connection
 * down (Redis answers in order: the connection is stuck) and every command
 * on it ends with why set. tag: commands can be failed by tag
 * (redis_link_fail_queued). fn may be NULL (fire and forget). */
void redis_link_call(redis_link *l, int argc, const char **argv, const size_t *argvlen, uint64_t timeout_ms,
                     int tag, redis_done_fn fn, void *arg);
/* Answers fn with why (no reply) from the loop, as a failed command would. */
void redis_link_answer_later(redis_link *l, redis_done_fn fn, void *arg, const char *why);
/* Ends every command with this tag that still waits for a connection (not
 * those already sent), with why. */
void redis_link_fail_queued(redis_link *l, int tag, const char *why);
/* FUNCTION LOAD again on this connection (Redis answered "Function not found"). */
void redis_link_load_library(redis_link *l);
/* True while there is a connection (made, or being made): a command goes
 * out at once instead of waiting in the queue. */
bool redis_link_up(const redis_link *l);

/* Closes the link: every command not answered yet is answered now (inside
 * this call, with why "the redis link is closing"), and none after it; a
 * command made from such a callback, or later, is dropped unanswered.
 * Commands already sent are still written, and the connection ends after
 * their replies (at most 500 ms): a fire-and-forget command sent just
 * before closing (an unregister) reaches Redis. The link frees itself once
 * hiredis and libuv are done with it: the caller keeps running the loop. */
void redis_link_close(redis_link *l);
/* Links not freed yet, in the whole process: shutdown runs the loops until
 * closed links are gone (bounded by their 500 ms). */
int redis_link_live(void);

#endif
