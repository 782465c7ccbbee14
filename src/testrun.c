/* testrun.c - `luaparty test`: a project's tests, in-process, against the
 * real runtime.
 *
 * Each test gets a fresh world: a worker on this process's loop, as
 * main.c starts one (registry, alarms, crons), empty storage (one SQLite
 * database in a temporary directory, emptied between tests) and a virtual
 * clock (clock.h) that starts at the same instant for every test and moves
 * only when the test waits. A test's requests and WebSockets enter where a
 * socket's would: a test client is an http_peer (dispatch.h), so routing,
 * static files, CORS, onFetch, onBeforeConnect/onBeforeRequest and the
 * room's callbacks run exactly as in a server; an accepted WebSocket is one
 * more implementation of the connection interface (conn.h) next to
 * server.c's and lua_pipe.c's. Nothing here runs party code itself.
 *
 * Waiting: every call first settles the world (runs the loop until no room
 * has work left; real I/O such as a party's outbound fetch is waited for,
 * for a bounded real time). A call that needs an answer that has not come
 * (a receive, a request held by a suspended callback) then moves the
 * virtual clock from timer to timer (alarms, the idle sweep, crons, socket
 * receive timeouts) until the answer comes or its timeout is reached.
 *
 * Errors: log lines go to a sink while tests run. An error-level line is
 * what a failing callback produces (runner.c logs it with the party's
 * file:line and traceback); the Lua side turns those into a failure of the
 * test at the line of the call that was running (luaparty_test.lua: check). */
#include "testrun.h"
#include "alarm.h"
#include "clock.h"
#include "cron.h"
#include "dispatch.h"
#include "fetch.h"
#include "log.h"
#include "lua_binary.h"
#include "lua_conn.h"
#include "lua_storage.h"
#include "metrics.h"
#include "registry.h"
#include "reload.h"
#include "sandbox.h"
#include "storage.h"
#include "worker.h"
#include "ws.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every test starts at 2025-01-01T00:00:00Z on the virtual clock. */
#define TEST_EPOCH_MS 1735689600000ull
/* How long (real time) one call waits for real I/O (outbound fetch). */
#define IO_WAIT_MS 5000
#define WATCH_POLL_MS 150

extern const char luaparty_test_lua[];
extern const size_t luaparty_test_lua_len;

typedef struct tconn tconn;

/* Strings: the log lines of a test, paths. */
typedef struct lines {
    char **items;
    size_t n;
} lines;

/* The run: one at a time, on this thread (the log sink and the virtual
 * clock are process-wide anyway). */
static struct {
    const cli_options *o;
    testrun_loader load;
    config cfg;
    bool cfg_loaded;
    bool cfg_changed;       /* a test reloaded a party: read the project again */
    char *tmp;              /* the storage directory of this run */
    storage *store;
    uv_loop_t loop;
    uv_timer_t guard;       /* bounds a wait for real I/O */
    worker w;               /* the current test's world (when in_test) */
    worker *all[1];
    bool in_test;
    tconn *conns;           /* the test's WebSockets */
    lines errors, logs;
    lines outside;          /* party scripts outside the project (--watch watches them too) */
    uint64_t seed;
} R;

static void lines_add(lines *l, const char *s)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof *l->items);
    l->items[l->n++] = xstrdup(s);
}

static void lines_clear(lines *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* Pushes the lines as an array and clears them; nil if there are none. */
static int push_lines(lua_State *L, lines *l)
{
    if (!l->n) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, (int)l->n, 0);
    for (size_t i = 0; i < l->n; i++) {
        lua_pushstring(L, l->items[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lines_clear(l);
    return 1;
}

static void on_log(void *ud, enum log_level lvl, const char *msg)
{
    (void)ud;
    lines_add(lvl >= LOG_ERROR ? &R.errors : &R.logs, msg);
}

/* ---- waiting ---- */

static void on_guard(uv_timer_t *t) { (void)t; }

/* Runs the world until no room has work it can do now. */
static void settle(void)
{
    uint64_t give_up = 0;
    for (;;) {
        if (R.w.runq_head || uv_loop_alive(&R.loop)) uv_run(&R.loop, UV_RUN_NOWAIT);
        if (R.w.runq_head) continue;
        if (registry_quiet(&R.w) || !uv_loop_alive(&R.loop)) return;
        /* A room waits and real I/O is in flight (a party's outbound fetch):
         * wait for it, a few ms at a time, for a bounded real time. */
        uint64_t now = uv_hrtime() / 1000000;
        if (!give_up) give_up = now + IO_WAIT_MS;
        if (now >= give_up) return;
        uv_timer_start(&R.guard, on_guard, 5, 0);
        uv_run(&R.loop, UV_RUN_ONCE);
        uv_timer_stop(&R.guard);
    }
}

/* Settles, then moves the virtual clock from timer to timer until done(arg)
 * or the clock reaches until (done may be NULL: all the way). */
static void wait_until(uint64_t until, bool (*done)(void *), void *arg)
{
    settle();
    while (!(done && done(arg))) {
        if (!clock_virtual_fire(until)) {
            clock_virtual_set(until);
            settle();
            return;
        }
        settle();
    }
}

/* ---- a test's WebSocket (conn.h) ---- */

typedef struct tconn_box {
    tconn *c;
} tconn_box;

#define TCONN_MT "luaparty.testconn"

/* Its memory belongs to the world (world_end frees it), so the test can
 * still read what came and how it closed after the connection itself is
 * gone (dead: its last reference dropped). */
struct tconn {
    lp_conn conn;
    tconn_box *box;         /* the Lua handle, NULL once collected */
    chunk **inbox;          /* messages from the room not received yet */
    size_t head, n, cap;
    bool closed;            /* by the room or by the test */
    bool transport;         /* holds the client's reference (conn_init's), as server.c's client does */
    bool dead;              /* conn_cleanup ran */
    deferred answer;        /* the client's answer to the room's close, on the next loop turn */
    int close_code;
    char *close_reason;
    tconn *next;            /* R.conns */
};

static void inbox_push(tconn *c, chunk *msg)
{
    if (c->head + c->n == c->cap) {
        if (c->head) { /* slide the unread ones to the front */
            memmove(c->inbox, c->inbox + c->head, c->n * sizeof *c->inbox);
            c->head = 0;
        }
        if (c->n == c->cap) c->inbox = xrealloc(c->inbox, (c->cap = c->cap ? 2 * c->cap : 8) * sizeof *c->inbox);
    }
    c->inbox[c->head + c->n++] = chunk_ref(msg);
}

static chunk *inbox_pop(tconn *c)
{
    if (!c->n) return NULL;
    c->n--;
    return c->inbox[c->head++];
}

static void mark_closed(tconn *c, int code, const char *reason, size_t len)
{
    c->closed = true;
    c->close_code = code;
    free(c->close_reason);
    c->close_reason = reason ? xstrndup(reason, len) : NULL;
}

static void tconn_send(lp_conn *conn, chunk *msg)
{
    tconn *c = (tconn *)conn;
    if (!c->closed) inbox_push(c, msg);
}

/* The connection ends (either side closed, or the server refused a
 * message): the room hears of it, then the client lets go, as a server's
 * client does once its socket is closed. */
static void finish(tconn *c, int code, const char *error)
{
    dispatch_ws_closed(&c->conn, code, c->close_reason, error);
    if (c->transport) {
        c->transport = false;
        conn_unref(&c->conn);
    }
}

static void answer_close(deferred *d)
{
    tconn *c = (tconn *)((char *)d - offsetof(tconn, answer));
    finish(c, c->close_code, NULL);
    conn_unref(&c->conn); /* answer_close's own */
}

/* The client ends the connection: it closes, or the server refused what it
 * sent (error: what the room's onError hears). */
static void client_ends(tconn *c, int code, const char *reason, size_t len, const char *error)
{
    mark_closed(c, code, reason, len);
    finish(c, code, error);
}

/* The room closes: the client answers with the same code, later (as over
 * a network: the room may be going through its connections right now). */
static void tconn_close(lp_conn *conn, int code, const char *reason, size_t len)
{
    tconn *c = (tconn *)conn;
    if (c->closed) return;
    mark_closed(c, code, reason, len);
    conn_ref(conn);
    c->answer.run = answer_close;
    worker_defer(&R.w, &c->answer);
}

static void tconn_destroy(lp_conn *conn)
{
    tconn *c = (tconn *)conn;
    conn_cleanup(conn);
    c->dead = true;
}

static void tconn_free(tconn *c)
{
    if (c->box) c->box->c = NULL;
    chunk *m;
    while ((m = inbox_pop(c))) chunk_unref(m);
    free(c->inbox);
    free(c->close_reason);
    free(c);
}

static const conn_ops tconn_ops = {tconn_send, tconn_close, tconn_destroy};

/* ---- a test's request (http_peer, dispatch.h) ---- */

typedef struct tpeer {
    http_peer peer;
    bool answered;
    http_response *res;     /* a copy of the answer */
    tconn *accepted;        /* an upgrade that became a WebSocket */
} tpeer;

static void peer_respond(http_peer *p, const http_response *res, bool keep_alive, bool head, const char *method,
                         const char *target, uint64_t start)
{
    tpeer *tp = (tpeer *)p;
    http_response *copy = http_response_new(res->status, NULL, NULL, 0);
    http_headers_add_all(&copy->headers, &res->headers);
    if (!head) buf_append(&copy->body, res->body.data, res->body.len);
    http_response_free(tp->res);
    tp->res = copy;
    tp->answered = true;
}

static void peer_nothing(http_peer *p) { (void)p; }

static bool peer_move(http_peer *p, http_request *req, bool upgrade, worker *to) { return false; } /* one worker */

static lp_conn *peer_accept_ws(http_peer *p, const http_request *req, const char *id, const char *node)
{
    tpeer *tp = (tpeer *)p;
    tconn *c = xcalloc(1, sizeof *c);
    char *uri = http_request_url(req);
    conn_init(&c->conn, &tconn_ops, id, uri);
    free(uri);
    c->transport = true;
    c->next = R.conns;
    R.conns = c;
    tp->accepted = c;
    tp->answered = true;
    return &c->conn;
}

/* Only cluster mode tunnels, and a test runs one node. */
static void peer_tunnel(http_peer *p, const char *host, int port, http_request *req, chunk *head)
{
    http_request_free(req);
    chunk_unref(head);
    http_response *res = http_response_new(502, "text/plain", "no tunnels in luaparty test", 27);
    peer_respond(p, res, false, false, NULL, NULL, 0);
    http_response_free(res);
}

static const peer_ops tpeer_ops = {peer_respond, peer_nothing, peer_nothing, peer_move, peer_accept_ws, peer_tunnel};

static bool answered(void *arg) { return ((tpeer *)arg)->answered; }

/* Hands req to dispatch as a client's request and waits for the answer
 * (timeout_ms of virtual time at most). The caller frees the peer with
 * peer_done. */
static tpeer *send_request(http_request *req, bool upgrade, uint64_t timeout_ms)
{
    tpeer *tp = xcalloc(1, sizeof *tp);
    tp->peer = (http_peer){&tpeer_ops, &R.w, NULL, false, 0};
    dispatch_request(&tp->peer, req, upgrade);
    wait_until(now_ms() + timeout_ms, answered, tp);
    return tp;
}

static void peer_done(tpeer *tp)
{
    if (tp->peer.waiting) tp->peer.waiting->peer = NULL; /* no answer came: dispatch drops it when it does */
    http_response_free(tp->res);
    free(tp);
}

/* ---- the world of one test ---- */

/* Runs every party's top-level code once, which also records its static
 * hooks (p->hooks), as main.c does at start-up. */
static int try_parties(char **err)
{
    worker probe;
    memset(&probe, 0, sizeof probe);
    probe.cfg = &R.cfg;
    probe.loop = &R.loop;
    for (size_t i = 0; i < R.cfg.nparties; i++) {
        char *why = NULL;
        if (sandbox_try_party(&probe, R.cfg.parties[i], &why) == 0) continue;
        buf b;
        buf_init(&b);
        buf_printf(&b, "partykit.json: party \"%s\": %s", R.cfg.parties[i]->name, why);
        free(why);
        *err = buf_steal(&b);
        return -1;
    }
    return 0;
}

/* path relative to the project directory, or NULL if it is outside. */
static const char *inside_project(const char *path)
{
    size_t n = strlen(R.cfg.dir);
    return strncmp(path, R.cfg.dir, n) == 0 && path[n] == '/' ? path + n + 1 : NULL;
}

static void unload_project(void)
{
    if (R.cfg_loaded) config_free(&R.cfg);
    R.cfg_loaded = false;
}

/* partykit.json and the options, as `dev` reads them, with storage in this
 * run's directory. Returns -1, or an exit code (printed). */
static int load_project(void)
{
    unload_project();
    int rc = R.load(&R.cfg, R.o);
    if (rc >= 0) return rc;
    R.cfg_loaded = true;
    R.cfg_changed = false;
    lines_clear(&R.outside);
    for (size_t i = 0; i < R.cfg.nparties; i++)
        if (!inside_project(R.cfg.parties[i]->path)) lines_add(&R.outside, R.cfg.parties[i]->path);
    free(R.cfg.persist_dir);
    R.cfg.persist_dir = xstrdup(R.tmp); /* never the project's own .luaparty */
    char *err = NULL;
    if (try_parties(&err) != 0) {
        printf("luaparty test: %s\n", err);
        free(err);
        return 1;
    }
    return -1;
}

static void world_begin(lua_State *L)
{
    char *err = NULL;
    if (R.cfg_changed && load_project() >= 0) luaL_error(L, "the project cannot be read again after t.reload");
    if (storage_wipe(R.store, &err) != 0) {
        lua_pushstring(L, err);
        free(err);
        lua_error(L);
    }
    lines_clear(&R.errors);
    lines_clear(&R.logs);
    clock_virtual_start(TEST_EPOCH_MS);
    uuid_seed(true, R.seed);
    worker_init(&R.w, &R.loop, &R.cfg, R.store);
    R.w.index = 0;
    R.w.nworkers = 1;
    R.all[0] = &R.w;
    R.w.all = R.all;
    snprintf(R.w.authority, sizeof R.w.authority, "%s:%d", R.cfg.host, R.cfg.port > 0 ? R.cfg.port : 1999);
    lp_metrics_here = &R.w.stats;
    /* main.c's start_services, on the virtual clock */
    registry_start(&R.w);
    R.w.alarms_changed = alarm_reschedule;
    alarm_start(&R.w);
    cron_start(&R.w);
    R.in_test = true;
}

/* The rooms close their connections (their onClose runs), then the world
 * goes as main.c's teardown takes a worker down. */
static void world_end(void)
{
    if (!R.in_test) return;
    settle();
    registry_evict_all(&R.w, 1001, "the test ended");
    settle();
    for (tconn *c = R.conns; c; c = c->next) /* the rooms closed them all: this is a safety net */
        if (c->transport) {
            c->transport = false;
            conn_unref(&c->conn);
        }
    worker_settle(&R.w);
    registry_close(&R.w);
    alarm_stop(&R.w);
    cron_stop(&R.w);
    worker_close(&R.w);
    uv_close((uv_handle_t *)&R.w.wakeup, NULL);
    for (int i = 0; i < 3 && uv_loop_alive(&R.loop); i++) uv_run(&R.loop, UV_RUN_NOWAIT);
    worker_free(&R.w);
    for (tconn *c = R.conns, *next; c; c = next) {
        next = c->next;
        if (c->dead) tconn_free(c); /* else something still holds it: a leak the sanitizers report */
    }
    R.conns = NULL;
    clock_virtual_stop();
    uuid_seed(false, 0);
    R.in_test = false;
}

/* ---- luaparty.testcore: what luaparty_test.lua calls ---- */

static void need_test(lua_State *L)
{
    if (!R.in_test) luaL_error(L, "this works inside a test only (t.test(name, function() ... end))");
}

static const party *check_party(lua_State *L, int idx)
{
    size_t len;
    const char *name = luaL_checklstring(L, idx, &len);
    const party *p = config_party(&R.cfg, name, len);
    if (!p) luaL_error(L, "no party named '%s' in partykit.json", name);
    return p;
}

/* (party, room, ...) arguments: the room's party (checked) and id. */
static const party *check_room(lua_State *L, const char **id)
{
    need_test(L);
    const party *p = check_party(L, 1);
    *id = luaL_checkstring(L, 2);
    settle(); /* what the rooms are doing is done first */
    return p;
}

/* The live room (party, id), or NULL. */
static room *find_room(const party *p, const char *id)
{
    room **list, *found = NULL;
    size_t n = registry_rooms(&R.w, p, &list);
    for (size_t i = 0; i < n && !found; i++)
        if (strcmp(list[i]->id, id) == 0) found = list[i];
    free(list);
    return found;
}

/* A request as a client sends it: Host, the headers given (a table at
 * headers_idx, names lowercased by the caller), a body with its length,
 * and for an upgrade the WebSocket handshake headers. Raises (before
 * allocating) on a header that cannot be sent. */
static http_request *make_request(lua_State *L, const char *method, const char *target, int headers_idx,
                                  int body_idx, bool upgrade)
{
    if (!lua_isnoneornil(L, headers_idx)) {
        luaL_checktype(L, headers_idx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, headers_idx)) {
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "header names must be strings");
            size_t nlen, vlen;
            const char *name = lua_tolstring(L, -2, &nlen), *value = lua_tolstring(L, -1, &vlen);
            if (!value || !nlen || !http_header_value_ok(name, nlen) || !http_header_value_ok(value, vlen))
                luaL_error(L, "header %s cannot be sent", name);
            lua_pop(L, 1);
        }
    }
    size_t blen = 0;
    const char *body = luaL_optlstring(L, body_idx, NULL, &blen);
    http_request *req = http_request_new(method, target);
    http_request_set_host(req, R.w.authority, strlen(R.w.authority));
    req->upgrade = upgrade;
    if (!lua_isnoneornil(L, headers_idx)) {
        lua_pushnil(L);
        while (lua_next(L, headers_idx)) {
            size_t nlen, vlen;
            const char *name = lua_tolstring(L, -2, &nlen), *value = lua_tolstring(L, -1, &vlen);
            http_headers_add(&req->headers, name, nlen, value, vlen);
            lua_pop(L, 1);
        }
    }
    static const char *const defaults[][2] = {
        {"host", NULL}, {"user-agent", "luaparty-test"}, {"upgrade", "websocket"}, {"connection", "Upgrade"},
        {"sec-websocket-version", "13"}, {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
    };
    for (size_t i = 0; i < (upgrade ? 6u : 2u); i++) {
        const char *name = defaults[i][0], *value = defaults[i][1] ? defaults[i][1] : R.w.authority;
        if (!http_headers_get(&req->headers, name))
            http_headers_add(&req->headers, name, strlen(name), value, strlen(value));
    }
    if (body) {
        buf_append(&req->body, body, blen);
        char len[24];
        *put_uint(len, blen) = 0;
        if (!http_headers_get(&req->headers, "content-length"))
            http_headers_add(&req->headers, "content-length", 14, len, strlen(len));
    }
    return req;
}

/* status, headers (a table), body */
static int push_response(lua_State *L, const http_response *res)
{
    lua_pushinteger(L, res->status);
    lua_createtable(L, 0, (int)res->headers.n);
    for (size_t i = 0; i < res->headers.n; i++) {
        lua_pushstring(L, res->headers.items[i].value);
        lua_setfield(L, -2, res->headers.items[i].name);
    }
    lua_pushlstring(L, res->body.data ? res->body.data : "", res->body.len);
    return 3;
}

static int no_answer(lua_State *L, const char *what, const char *target)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: no answer within %d ms (virtual time)", what, target, (int)R.cfg.fetch_timeout_ms);
    return 2;
}

/* core.fetch(method, target, headers, body) -> status, headers, body | nil, why */
static int l_fetch(lua_State *L)
{
    need_test(L);
    const char *method = luaL_checkstring(L, 1), *target = luaL_checkstring(L, 2);
    http_request *req = make_request(L, method, target, 3, 4, false);
    tpeer *tp = send_request(req, false, R.cfg.fetch_timeout_ms);
    int n = tp->answered ? push_response(L, tp->res) : no_answer(L, method, target);
    peer_done(tp);
    return n;
}

static tconn *check_conn(lua_State *L, int idx)
{
    need_test(L);
    tconn_box *b = luaL_checkudata(L, idx, TCONN_MT);
    if (!b->c) luaL_error(L, "this connection belongs to a test that has ended");
    return b->c;
}

static int box_gc(lua_State *L)
{
    tconn_box *b = luaL_checkudata(L, 1, TCONN_MT);
    if (b->c) b->c->box = NULL; /* the connection stays open until the test ends */
    b->c = NULL;
    return 0;
}

/* core.connect(target, headers) -> handle | nil, status, headers, body | nil, why */
static int l_connect(lua_State *L)
{
    need_test(L);
    const char *target = luaL_checkstring(L, 1);
    http_request *req = make_request(L, "GET", target, 2, 3, true);
    tpeer *tp = send_request(req, true, R.cfg.fetch_timeout_ms);
    tconn *c = tp->accepted;
    int n;
    if (c) {
        tconn_box *b = lua_newuserdata(L, sizeof *b);
        b->c = c;
        c->box = b;
        luaL_getmetatable(L, TCONN_MT);
        lua_setmetatable(L, -2);
        n = 1;
    } else if (tp->answered) {
        lua_pushnil(L);
        n = 1 + push_response(L, tp->res);
    } else {
        n = no_answer(L, "WebSocket", target);
    }
    peer_done(tp);
    return n;
}

/* core.send(handle, message) */
static int l_send(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    size_t len;
    int opcode;
    const char *data = lua_check_message(L, 2, &len, &opcode);
    if (c->closed)
        return luaL_error(L, "send on a closed connection (closed with %d%s%s)", c->close_code,
                          c->close_reason ? ": " : "", c->close_reason ? c->close_reason : "");
    /* what the server's WebSocket session refuses (ws.c), it refuses here */
    int bad = len > R.cfg.max_message ? 1009 : opcode == WS_TEXT && !utf8_valid((const uint8_t *)data, len) ? 1007 : 0;
    if (bad) client_ends(c, bad, ws_close_reason(bad), strlen(ws_close_reason(bad)), ws_close_reason(bad));
    else dispatch_ws_message(&c->conn, opcode, data, len);
    settle();
    return 0;
}

static bool has_news(void *arg)
{
    tconn *c = arg;
    return c->n || c->closed;
}

static int push_next(lua_State *L, tconn *c)
{
    chunk *m = inbox_pop(c);
    if (!m) return 0;
    lua_push_message(L, m);
    chunk_unref(m);
    return 1;
}

/* core.receive(handle, timeout_ms) -> message | nil, "closed" / "timeout" */
static int l_receive(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    lua_Number timeout = luaL_checknumber(L, 2);
    if (!c->n && !c->closed) wait_until(now_ms() + (uint64_t)(timeout > 0 ? timeout : 0), has_news, c);
    if (push_next(L, c)) return 1;
    lua_pushnil(L);
    lua_pushstring(L, c->closed ? "closed" : "timeout");
    return 2;
}

/* core.messages(handle) -> {messages} */
static int l_messages(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    settle();
    lua_createtable(L, (int)c->n, 0);
    for (int i = 1; push_next(L, c); i++) lua_rawseti(L, -2, i);
    return 1;
}

/* core.close(handle, code, reason): the client closes */
static int l_close(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    int code;
    size_t len;
    const char *reason = lua_check_close(L, 2, &code, &len);
    if (!c->closed) client_ends(c, code, reason, len, NULL);
    settle();
    return 0;
}

/* core.state(handle) -> closed, code, reason */
static int l_state(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    lua_pushboolean(L, c->closed);
    if (c->closed) lua_pushinteger(L, c->close_code);
    else lua_pushnil(L);
    if (c->close_reason) lua_pushstring(L, c->close_reason);
    else lua_pushnil(L);
    return 3;
}

/* core.ident(handle) -> id, uri (read once, at connect: a connection
 * that ended has let go of them) */
static int l_ident(lua_State *L)
{
    tconn *c = check_conn(L, 1);
    if (c->dead) return luaL_error(L, "the connection has ended");
    lua_pushstring(L, c->conn.id);
    lua_pushstring(L, c->conn.uri);
    return 2;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)now_ms());
    return 1;
}

/* real milliseconds, for the time a test took */
static int l_clock(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
    return 1;
}

static int l_advance(lua_State *L)
{
    need_test(L);
    lua_Number ms = luaL_checknumber(L, 1);
    luaL_argcheck(L, ms >= 0, 1, "cannot go back in time");
    wait_until(now_ms() + (uint64_t)ms, NULL, NULL);
    return 0;
}

/* core.restart(party, room): unloaded as on a server restart, then started
 * again from storage. */
static int l_restart(lua_State *L)
{
    const char *id;
    const party *p = check_room(L, &id);
    room *r = find_room(p, id);
    if (r) registry_evict(&R.w, r, 1012, "the room restarted");
    settle();
    char *err = NULL;
    if (!registry_resolve(&R.w, p, id, &err)) free(err); /* logged: the test fails on it */
    settle();
    return 0;
}

static int l_loaded(lua_State *L)
{
    const char *id;
    const party *p = check_room(L, &id);
    lua_pushboolean(L, find_room(p, id) != NULL);
    return 1;
}

typedef struct new_source {
    const char *party;
    const char *text;
    size_t len;
    char *err;
} new_source;

/* reload_apply_edited's edit: the party's text as the test gave it. */
static bool put_source(config *next, void *ud)
{
    new_source *ns = ud;
    party *p = (party *)config_party(next, ns->party, strlen(ns->party));
    if (!p) {
        ns->err = xstrdup("the party is not in partykit.json any more");
        return false;
    }
    free(p->source);
    p->source = xstrndup(ns->text, ns->len);
    p->source_len = ns->len;
    return party_compile(p, &ns->err) == 0;
}

/* core.reload(party [, source]) -> true | false, why */
static int l_reload(lua_State *L)
{
    need_test(L);
    const party *p = check_party(L, 1);
    new_source ns = {p->name, NULL, 0, NULL};
    ns.text = luaL_optlstring(L, 2, NULL, &ns.len);
    settle();
    size_t before = R.errors.n;
    R.cfg_changed = true; /* the next test starts from the project as it is on disk */
    bool ok = reload_apply_edited(&R.w, &R.cfg, ns.text == NULL, ns.text ? put_source : NULL, &ns);
    settle();
    if (ok) {
        free(ns.err);
        lua_pushboolean(L, 1);
        return 1;
    }
    /* why it was refused is the answer, not an error of the test */
    buf why;
    buf_init(&why);
    if (ns.err) buf_appendstr(&why, ns.err);
    for (size_t i = before; i < R.errors.n; i++) {
        if (why.len) buf_appendstr(&why, "\n");
        buf_appendstr(&why, R.errors.items[i]);
        free(R.errors.items[i]);
    }
    R.errors.n = before;
    free(ns.err);
    lua_pushboolean(L, 0);
    lua_pushstring(L, why.data ? why.data : "reload refused");
    buf_free(&why);
    return 2;
}

typedef struct cron_wait {
    gatekeeper g;
    bool decided, abandoned;
} cron_wait;

static void cron_decided(gatekeeper *g, http_response *res, http_headers *headers)
{
    cron_wait *cw = (cron_wait *)g;
    http_response_free(res);
    if (headers) http_headers_free(headers);
    free(headers);
    cw->decided = true;
    if (cw->abandoned) free(cw);
}

static bool cron_done(void *arg) { return ((cron_wait *)arg)->decided; }

/* core.cron(name) -> true | nil, why */
static int l_cron(lua_State *L)
{
    need_test(L);
    const char *name = luaL_checkstring(L, 1);
    cron_wait *cw = xcalloc(1, sizeof *cw);
    cw->g.decide = cron_decided;
    if (!cron_trigger(&R.w, name, &cw->g)) {
        free(cw);
        lua_pushnil(L);
        lua_pushfstring(L, "no cron named '%s' in partykit.json (or the main party has no onCron)", name);
        return 2;
    }
    wait_until(now_ms() + R.cfg.fetch_timeout_ms, cron_done, cw);
    bool done = cw->decided;
    if (done) free(cw);
    else cw->abandoned = true;
    if (done) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "cron %s: onCron did not finish", name);
    return 2;
}

/* ---- storage, as the rooms keep it (lua_storage.c reads and writes it) ---- */

/* (party, room, key, ...) arguments */
typedef struct stored_key {
    const party *p;
    const char *id, *key;
    size_t klen;
} stored_key;

static stored_key check_key(lua_State *L)
{
    stored_key k;
    k.p = check_room(L, &k.id);
    k.key = luaL_checklstring(L, 3, &k.klen);
    return k;
}

static int storage_failed(lua_State *L, const char *err)
{
    storage_abort(R.store);
    return luaL_error(L, "storage %s: %s", storage_path(R.store), err ? err : "?");
}

/* core.storage_get(party, room, key) -> value or nil */
static int l_storage_get(lua_State *L)
{
    stored_key k = check_key(L);
    lua_storage_push_value(L, R.store, k.p->name, k.id, k.key, k.klen);
    return 1;
}

/* core.storage_put(party, room, key, value): written and committed now */
static int l_storage_put(lua_State *L)
{
    stored_key k = check_key(L);
    luaL_checkany(L, 4);
    buf v;
    buf_init(&v);
    lua_storage_encode(L, 4, k.key, R.cfg.max_value, &v);
    const char *err = NULL;
    int rc = storage_put(R.store, k.p->name, k.id, k.key, k.klen, v.data, v.len, &err);
    buf_free(&v);
    if (rc != 0) return storage_failed(L, err);
    storage_commit(R.store, NULL, NULL);
    return 0;
}

/* core.storage_delete(party, room, key) -> true if it existed */
static int l_storage_delete(lua_State *L)
{
    stored_key k = check_key(L);
    const char *err = NULL;
    int rc = storage_delete(R.store, k.p->name, k.id, k.key, k.klen, &err);
    if (rc < 0) return storage_failed(L, err);
    storage_commit(R.store, NULL, NULL);
    lua_pushboolean(L, rc == 1);
    return 1;
}

/* core.storage_list(party, room [, options]) -> {{key=, value=}, ...}, as storage:list */
static int l_storage_list(lua_State *L)
{
    const char *id;
    const party *p = check_room(L, &id);
    storage_range range;
    lua_storage_check_range(L, 3, &range);
    lua_storage_push_list(L, R.store, p->name, id, &range);
    return 1;
}

/* core.storage_alarm(party, room) -> epoch ms or nil */
static int l_storage_alarm(lua_State *L)
{
    const char *id;
    const party *p = check_room(L, &id);
    int64_t at;
    int retries;
    const char *err = NULL;
    int rc = storage_get_alarm(R.store, p->name, id, &at, &retries, &err);
    if (rc < 0) return storage_failed(L, err);
    if (rc == 0) lua_pushnil(L);
    else lua_pushnumber(L, (lua_Number)at);
    return 1;
}

/* ---- the test's life ---- */

static int l_begin(lua_State *L)
{
    world_end();
    world_begin(L);
    return 0;
}

/* core.finish() -> errors logged while the test's rooms closed (and any
 * the test left untaken), or nil */
static int l_finish(lua_State *L)
{
    world_end();
    return push_lines(L, &R.errors);
}

static int l_errors(lua_State *L) { return push_lines(L, &R.errors); }
static int l_logs(lua_State *L) { return push_lines(L, &R.logs); }

static int l_seed(lua_State *L)
{
    R.seed = (uint64_t)luaL_checknumber(L, 1);
    uuid_seed(true, R.seed);
    return 0;
}

static int open_core(lua_State *L)
{
    luaL_newmetatable(L, TCONN_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {
        {"fetch", l_fetch},       {"connect", l_connect},   {"send", l_send},
        {"receive", l_receive},   {"messages", l_messages}, {"close", l_close},
        {"state", l_state},       {"ident", l_ident},
        {"now", l_now},           {"clock", l_clock},       {"advance", l_advance},
        {"restart", l_restart},   {"loaded", l_loaded},     {"reload", l_reload},
        {"cron", l_cron},         {"storage_get", l_storage_get}, {"storage_put", l_storage_put},
        {"storage_delete", l_storage_delete}, {"storage_list", l_storage_list},
        {"storage_alarm", l_storage_alarm}, {"begin", l_begin}, {"finish", l_finish},
        {"errors", l_errors},     {"logs", l_logs},         {"seed", l_seed},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    lua_binary_register(L); /* binary, isBinary: messages are the rooms' own Binary values */
    return 1;
}

static int open_test_module(lua_State *L)
{
    if (luaL_loadbuffer(L, luaparty_test_lua, luaparty_test_lua_len, "@luaparty.test") != 0) return lua_error(L);
    lua_call(L, 0, 1);
    return 1;
}

/* ---- files ---- */

/* A test file's name as tests show it: relative to the project if inside. */
static const char *shown_name(const char *path)
{
    const char *rel = inside_project(path);
    return rel ? rel : path;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* DIR/tests/..._test.lua in name order (caller frees), or the files o names. */
static char **find_files(size_t *n)
{
    char **files = NULL;
    *n = 0;
    if (R.o->nfiles) {
        for (size_t i = 0; i < R.o->nfiles; i++) {
            char resolved[PATH_MAX];
            const char *f = realpath(R.o->files[i], resolved) ? resolved : R.o->files[i];
            files = xrealloc(files, (*n + 1) * sizeof *files);
            files[(*n)++] = xstrdup(f);
        }
        return files;
    }
    char dir[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s/tests", R.cfg.dir);
    DIR *d = opendir(dir);
    if (!d) return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 9 || strcmp(e->d_name + len - 9, "_test.lua") != 0) continue;
        files = xrealloc(files, (*n + 1) * sizeof *files);
        buf b;
        buf_init(&b);
        buf_printf(&b, "%s/%s", dir, e->d_name);
        files[(*n)++] = buf_steal(&b);
    }
    closedir(d);
    if (*n) qsort(files, *n, sizeof *files, by_name);
    return files;
}

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

/* A new state for one test file: the standard libraries, cjson, the test
 * API, and the project's modules on package.path. */
static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    preload(L, "cjson", luaopen_cjson);
    preload(L, "luaparty.testcore", open_core);
    preload(L, "luaparty.test", open_test_module);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/tests/?.lua;%s", R.cfg.dir, R.cfg.dir, R.cfg.dir,
                    lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    return L;
}

static void count_failure(const char *shown, const char *what, const char *msg, int *failed)
{
    printf("FAIL %s: %s\n    %s\n", shown, what, msg);
    (*failed)++;
}

/* Loads one test file and runs its tests. */
static void run_file(const char *path, int *passed, int *failed)
{
    const char *shown = shown_name(path);
    size_t len;
    char *src = read_file(path, &len);
    if (!src) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot read %s: %s", path, strerror(errno));
        count_failure(shown, "the file", msg, failed);
        return;
    }
    lua_State *L = new_state();
    lua_pushfstring(L, "@%s", shown);
    int rc = luaL_loadbuffer(L, src, len, lua_tostring(L, -1));
    free(src);
    if (rc == 0) rc = lua_pcall(L, 0, 0, 0);
    if (rc != 0) {
        count_failure(shown, "the file", lua_tostring(L, -1), failed);
        world_end(); /* a t.* call at load time */
    } else {
        lua_getglobal(L, "require");
        lua_pushliteral(L, "luaparty.test");
        lua_call(L, 1, 1);
        lua_getfield(L, -1, "_run");
        lua_pushstring(L, shown);
        if (R.o->filter) lua_pushstring(L, R.o->filter);
        else lua_pushnil(L);
        lua_pushboolean(L, R.o->verbose);
        if (lua_pcall(L, 3, 2, 0) != 0) {
            count_failure(shown, "the test runner", lua_tostring(L, -1), failed);
            world_end();
        } else {
            *passed += (int)lua_tointeger(L, -2);
            *failed += (int)lua_tointeger(L, -1);
        }
    }
    lua_close(L);
    fflush(stdout);
}

/* One run: the project read afresh, storage in a new temporary directory,
 * every file. Returns the exit code. */
static int run_once(void)
{
    int passed = 0, failed = 0;
    char tmpl[PATH_MAX];
    const char *tmpdir = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/luaparty-test-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(tmpl)) {
        printf("luaparty test: cannot make a temporary directory in %s: %s\n", tmpl, strerror(errno));
        return 2;
    }
    R.tmp = xstrdup(tmpl);
    int rc = load_project();
    char *err = NULL;
    if (rc < 0 && !(R.store = storage_open(R.tmp, false, &err))) {
        printf("luaparty test: %s\n", err);
        free(err);
        rc = 2;
    }
    if (rc < 0) {
        size_t n;
        char **files = find_files(&n);
        if (!n) printf("no tests: no %s\n", R.o->nfiles ? "such files" : "tests/*_test.lua in the project");
        for (size_t i = 0; i < n; i++) {
            run_file(files[i], &passed, &failed);
            free(files[i]);
        }
        free(files);
        rc = failed || !passed ? 1 : 0;
    } else {
        failed = 1;
    }
    storage_close(R.store);
    R.store = NULL;
    unload_project();
    /* the database and its WAL files, then the directory */
    static const char *const db_files[] = {"luaparty.db", "luaparty.db-wal", "luaparty.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char f[PATH_MAX + 32];
        snprintf(f, sizeof f, "%s/%s", R.tmp, db_files[i]);
        unlink(f);
    }
    rmdir(R.tmp);
    free(R.tmp);
    R.tmp = NULL;
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return rc;
}

/* ---- --watch ---- */

/* One file into a fingerprint: its name, size and time. */
static uint64_t fingerprint_file(const char *path, const struct stat *st, uint64_t h)
{
    for (const char *s = path; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    uint64_t parts[] = {(uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec};
    for (size_t i = 0; i < 3; i++) h = (h ^ parts[i]) * 1099511628211ull;
    return h;
}

/* A fingerprint of the project's Lua files and partykit.json: it changes
 * when one is saved (or added, or removed). */
static uint64_t fingerprint_dir(const char *dir, int depth, uint64_t h)
{
    DIR *d = opendir(dir);
    if (!d) return h;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "node_modules")) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        size_t len = strlen(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            if (depth < 4) h = fingerprint_dir(path, depth + 1, h);
        } else if ((len > 4 && !strcmp(e->d_name + len - 4, ".lua")) || !strcmp(e->d_name, "partykit.json")) {
            h = fingerprint_file(path, &st, h);
        }
    }
    closedir(d);
    return h;
}

/* The project, the test files named, and party scripts that live outside
 * the project (partykit.json may name ../shared/x.lua). */
static uint64_t fingerprint(void)
{
    uint64_t h = fingerprint_dir(R.o->dir, 0, 14695981039346656037ull);
    struct stat st;
    for (size_t i = 0; i < R.o->nfiles; i++)
        if (stat(R.o->files[i], &st) == 0) h = fingerprint_file(R.o->files[i], &st, h);
    for (size_t i = 0; i < R.outside.n; i++)
        if (stat(R.outside.items[i], &st) == 0) h = fingerprint_file(R.outside.items[i], &st, h);
    return h;
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int testrun_main(const cli_options *o, testrun_loader load)
{
    memset(&R, 0, sizeof R);
    R.o = o;
    R.load = load;
    R.seed = o->seed.set ? o->seed.value : 1;
    uv_loop_init(&R.loop);
    uv_timer_init(&R.loop, &R.guard);
    sandbox_prepare();
    if (log_get_level() > LOG_INFO) log_set_level(LOG_INFO); /* prints of party code are info */
    log_set_sink(on_log, NULL);
    int rc = run_once();
    while (o->watch) {
        printf("watching %s for changes (Ctrl-C to stop)\n", o->dir);
        fflush(stdout);
        uint64_t seen = fingerprint();
        while (fingerprint() == seen) nap(WATCH_POLL_MS);
        nap(WATCH_POLL_MS); /* an editor's save can be several writes */
        printf("\n-- a file changed: running the tests again\n");
        rc = run_once();
    }
    log_set_sink(NULL, NULL);
    lines_clear(&R.errors);
    lines_clear(&R.logs);
    lines_clear(&R.outside);
    fetch_shutdown();
    uv_close((uv_handle_t *)&R.guard, NULL);
    for (int i = 0; i < 3 && uv_loop_alive(&R.loop); i++) uv_run(&R.loop, UV_RUN_NOWAIT);
    uv_loop_close(&R.loop);
    sandbox_free_compiled();
    thread_cache_drain();
    return rc;
}
