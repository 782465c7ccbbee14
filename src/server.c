/* server.c - TCP connections: HTTP requests, the WebSocket upgrade, the
 * WebSocket connection (one implementation of conn.h), output queues with
 * backpressure, and the closing sequence.
 *
 * Output: everything written to a client is a refcounted chunk in its queue
 * (a broadcast frame is one chunk shared by all receivers). Queues are
 * flushed from a prepare handle, right before the loop polls again, so the
 * many sends of one loop turn leave in one writev, whatever phase (I/O,
 * timer, deferred room run) produced them. Every byte queued for a client
 * counts (data frames, the pongs and close frames wslay answers with, HTTP
 * responses, TLS records): a client whose unsent output grows past
 * max_output (it stopped reading) is dropped before the loop polls again,
 * so no client can make the server grow (a ping flood that never reads
 * the pongs was the way around it). Its memory goes back to the system
 * soon after (trim_soon).
 *
 * Closing: we never close a socket with unread data in it (the kernel would
 * answer with RST and the peer would lose our close frame). We shut down the
 * write side, read until EOF, and bound that with a timer.
 *
 * Requests go to dispatch.c, which sees a client as an http_peer (its ops
 * are at "what dispatch sees of a client" below) and never a socket.
 *
 * Workers: each worker has its own server (clients, flusher, pinger) on the
 * shared listening socket. A client whose request is for a room of another
 * worker moves there (start_move, hand_over, adopt_moved), so a WebSocket
 * always lives on its room's worker; see README "Workers". */
#include "server.h"
#include "dispatch.h"
#include "dial.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Clients of every worker, for --max-connections (a process-wide limit). */
static atomic_size_t total_clients;

enum client_state { C_HTTP, C_WS, C_TUNNEL, C_CLOSING };

#define PARK_AFTER_MS 1000 /* a WebSocket quiet this long gives its parser back */

typedef struct out_item {
    chunk *c;
    size_t off;
} out_item;

struct client {
    lp_conn conn;              /* valid once upgraded */
    http_peer peer;            /* what dispatch sees of it (while HTTP) */
    uv_tcp_t tcp;
    uv_timer_t timer;          /* closing deadline, initialised on demand */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    server *srv;
    enum client_state state;
    http_parser *http;
    buf pending_in;            /* bytes behind a request that is being answered */
    ws_session ws;
    tls *tls;                  /* https/wss: bytes on the wire are ciphertext */
    dial *up;                  /* C_TUNNEL: the node the bytes are spliced to */
    http_request *tunnel_req;  /* C_TUNNEL: kept until that node answers */
    chunk *tunnel_head;        /* C_TUNNEL: the forwarded request, sent once connected */
    out_item *out;
    size_t out_head, out_n, out_cap, out_bytes;
    size_t writing_n;          /* items in the uv_write in flight */
    bool writing, in_feed, shutdown_pending, shut, timer_on, upgraded, disconnected, dirty;
    bool overflow;             /* past max_output: dropped at the next flush, nothing more is queued */
    uint64_t due, timer_due;   /* the deadline (loop ms, 0: none); when the timer fires */
    bool partial;              /* part of a request has arrived (header timeout applies) */
    char method[12], target[120]; /* the request being answered, for the dev log */
    bool over_limit;           /* accepted past --max-connections: gets a 503 */
    http_request *moving;      /* on its way to the worker that owns its room */
    worker *move_to;
    bool move_upgrade;
    bool moved;                /* has moved once (HTTP moves at most once) */
    int moved_fd;
    uint64_t last_seen;        /* uv_now of the last bytes from the peer */
    int handles;               /* libuv handles not yet closed */
    client *prev, *next, *next_dirty;
};

static void client_close_now(client *c);
static void client_finish(client *c);
static void parse_requests(client *c, const char *data, size_t len);
static void resume_reading(client *c);

/* ---- lifetime ---- */

/* glibc keeps what a dropped client freed (thousands of small chunks) in
 * its arenas: after a ping flood 0.6 MB was in use and 140 MB still held,
 * because a heap gives back pages below its top only on malloc_trim. So a
 * client that leaves with a large queue asks for a trim, at most one a
 * second per worker (a trim walks every arena, under its lock). */
#define TRIM_AFTER_MS 1000
#define TRIM_MIN_BYTES (1u << 20)

static void on_trim(uv_timer_t *t) { malloc_trim(0); }

static void trim_soon(server *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->trimmer) && !uv_is_active((uv_handle_t *)&s->trimmer))
        uv_timer_start(&s->trimmer, on_trim, TRIM_AFTER_MS, 0);
}

static void client_maybe_free(client *c)
{
    /* still on the flush list: on_prepare frees it when it gets there */
    if (c->handles > 0 || (c->upgraded && c->conn.refs > 0) || c->dirty) return;
    if (c->out_bytes >= TRIM_MIN_BYTES) trim_soon(c->srv);
    if (c->peer.waiting) c->peer.waiting->peer = NULL;
    for (size_t i = 0; i < c->out_n; i++) chunk_unref(c->out[(c->out_head + i) % c->out_cap].c);
    free(c->out);
    if (c->http) {
        http_parser_free(c->http);
        free(c->http);
    }
    buf_free(&c->pending_in);
    http_request_free(c->moving);
    if (c->upgraded) {
        ws_session_free(&c->ws);
        conn_cleanup(&c->conn);
    }
    tls_free(c->tls);
    http_request_free(c->tunnel_req);
    chunk_unref(c->tunnel_head);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    client *c = h->data;
    c->handles--;
    client_maybe_free(c);
}

static void ws_conn_destroy(lp_conn *conn)
{
    client *c = (client *)conn;
    client_maybe_free(c);
}

static void link_client(server *s, client *c)
{
    c->srv = s;
    c->next = s->clients;
    if (s->clients) s->clients->prev = c;
    s->clients = c;
    s->nclients++;
}

static void unlink_client(client *c)
{
    server *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else if (s->clients == c) s->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nclients--;
}

/* Tells the room the connection is gone (once). */
static void notify_room(client *c, int code, const char *error)
{
    if (!c->upgraded || c->disconnected) return;
    c->disconnected = true;
    dispatch_ws_closed(&c->conn, code, c->ws.close_reason, error);
}

static void client_close_now(client *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->up) {
        dial_close(c->up);
        c->up = NULL;
    }
    notify_room(c, 1006, NULL);
    c->state = C_CLOSING;
    unlink_client(c);
    atomic_fetch_sub_explicit(&total_clients, 1, memory_order_relaxed);
    if (c->timer_on) {
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    if (c->upgraded) conn_unref(&c->conn); /* the client's own reference */
}

static void respond(client *c, int status, const char *body, bool close);
static bool awaiting_answer(const client *c);

/* The client's one timer: header/keep-alive timeouts while HTTP, the
 * closing handshake's deadline otherwise. The deadline moves two or three
 * times per keep-alive request (header timeout, none while the room works,
 * keep-alive), so it lives in c->due (0: none) and the timer is not
 * restarted for each move: it is started only for an earlier deadline, and
 * when it fires before c->due it waits for the rest. */
static void on_deadline(uv_timer_t *t)
{
    client *c = t->data;
    if (!c->due) return;
    uint64_t now = uv_now(t->loop);
    if (now < c->due) {
        c->timer_due = c->due;
        uv_timer_start(t, on_deadline, c->due - now, 0);
        return;
    }
    c->due = 0;
    if (c->state == C_HTTP && c->partial && !awaiting_answer(c)) {
        respond(c, 408, "request header timeout", true); /* slowloris */
        return;
    }
    client_close_now(c);
}

static void arm_deadline(client *c, uint64_t ms)
{
    if (!c->timer_on) {
        uv_timer_init(c->tcp.loop, &c->timer);
        c->timer.data = c;
        c->timer_on = true;
        c->handles++;
    }
    c->due = uv_now(c->tcp.loop) + ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->due < c->timer_due) {
        c->timer_due = c->due;
        uv_timer_start(&c->timer, on_deadline, ms, 0);
    }
}

static void disarm_deadline(client *c) { c->due = 0; }

/* ---- output ---- */

static void mark_dirty(client *c)
{
    if (c->dirty) return;
    c->dirty = true;
    c->next_dirty = c->srv->dirty;
    c->srv->dirty = c;
}

/* Queues bytes exactly as given (ciphertext, or plain on a plain socket).
 * Past max_output the client is marked to be dropped: the drop itself
 * waits for the flush (before the loop polls again), because the caller
 * may be deep in wslay or in the HTTP parser. One chunk alone may be
 * larger than the limit (a big response to a client that reads): only
 * output piling up behind earlier unsent output counts as not reading. */
static void out_push_raw(client *c, chunk *ch)
{
    if (c->overflow) return;
    if (c->out_n == c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4;
        out_item *n = xmalloc(cap * sizeof *n);
        for (size_t i = 0; i < c->out_n; i++) n[i] = c->out[(c->out_head + i) % c->out_cap];
        free(c->out);
        c->out = n;
        c->out_cap = cap;
        c->out_head = 0;
    }
    c->out[(c->out_head + c->out_n) % c->out_cap] = (out_item){chunk_ref(ch), 0};
    c->out_n++;
    c->out_bytes += ch->len;
    if (c->out_bytes > c->srv->cfg->max_output && c->out_n > 1) c->overflow = true;
    mark_dirty(c);
}

/* Queues plaintext: on a TLS connection it is encrypted here (a broadcast
 * frame cannot be shared then: each peer has its own keys). */
static void out_push(client *c, chunk *ch)
{
    if (!c->tls || c->overflow) {
        out_push_raw(c, ch);
        return;
    }
    buf ct;
    buf_init(&ct);
    if (tls_write(c->tls, chunk_bytes(ch), ch->len, &ct) == TLS_OK && ct.len) {
        chunk *enc = chunk_from(ct.data, ct.len);
        out_push_raw(c, enc);
        chunk_unref(enc);
    }
    buf_free(&ct);
}

/* Drops `bytes` written bytes from the front of the queue. */
static void out_consume(client *c, size_t bytes)
{
    while (bytes > 0 && c->out_n > 0) {
        out_item *it = &c->out[c->out_head];
        size_t left = it->c->len - it->off;
        size_t n = bytes < left ? bytes : left;
        it->off += n;
        bytes -= n;
        c->out_bytes -= n;
        if (it->off == it->c->len) {
            chunk_unref(it->c);
            c->out_head = (c->out_head + 1) % c->out_cap;
            c->out_n--;
        }
    }
}

static size_t gather(client *c, uv_buf_t *bufs, size_t max)
{
    size_t n = c->out_n < max ? c->out_n : max;
    for (size_t i = 0; i < n; i++) {
        out_item *it = &c->out[(c->out_head + i) % c->out_cap];
        bufs[i] = uv_buf_init((char *)chunk_bytes(it->c) + it->off, (unsigned)(it->c->len - it->off));
    }
    return n;
}

static void flush(client *c);
static void hand_over(client *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    client *c = req->data;
    c->handles--; /* the shutdown request held the client */
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp)) {
        client_close_now(c);
        client_maybe_free(c);
        return;
    }
    /* keep reading until the peer closes: see the file comment */
    client_maybe_free(c);
}

static void start_shutdown(client *c)
{
    if (c->shut || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    c->shut = true;
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        client_close_now(c);
        return;
    }
    c->handles++;
    arm_deadline(c, 2000);
}

static void on_written(uv_write_t *req, int status)
{
    client *c = req->data;
    c->writing = false;
    c->handles--;
    if (uv_is_closing((uv_handle_t *)&c->tcp)) {
        client_maybe_free(c);
        return;
    }
    if (status < 0) {
        client_close_now(c);
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < c->writing_n; i++) {
        out_item *it = &c->out[(c->out_head + i) % c->out_cap];
        bytes += it->c->len - it->off;
    }
    out_consume(c, bytes);
    flush(c);
}

/* The client stopped reading: drop it, and with it everything queued. */
static void drop_overflowing(client *c)
{
    if (c->upgraded) {
        log_warn("%s: dropping connection %s: it stopped reading (%zu bytes queued)", c->conn.uri, c->conn.id,
                 c->out_bytes);
        notify_room(c, 1013, "slow consumer: output buffer full");
    } else {
        log_warn("dropping a client that stopped reading (%zu bytes queued)", c->out_bytes);
    }
    client_close_now(c);
}

static void flush(client *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (c->overflow) {
        drop_overflowing(c);
        return;
    }
    if (c->writing) return;
    uv_buf_t bufs[64];
    if (c->out_n > 0) {
        size_t n = gather(c, bufs, 64);
        int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)n);
        if (w < 0 && w != UV_EAGAIN) {
            client_close_now(c);
            return;
        }
        if (w > 0) out_consume(c, (size_t)w);
    }
    if (c->out_n > 0) {
        size_t n = gather(c, bufs, 64);
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_written) != 0) {
            client_close_now(c);
            return;
        }
        c->writing = true;
        c->writing_n = n;
        c->handles++;
        return;
    }
    if (c->shutdown_pending) start_shutdown(c);
    else if (c->moving) hand_over(c);
}

static void flush_dirty(server *s)
{
    while (s->dirty) {
        client *c = s->dirty;
        s->dirty = c->next_dirty;
        c->dirty = false;
        if (uv_is_closing((uv_handle_t *)&c->tcp)) client_maybe_free(c);
        else flush(c);
    }
}

/* Right after the poll, while rooms have paused steps (runner.c): their
 * next slices run before the prepare phase, so what this turn's I/O
 * produced leaves now instead of after them. Otherwise (no handle to run
 * on every turn) output waits for the prepare phase, gathered into one
 * write per client. */
static void on_check(uv_check_t *h) { flush_dirty(h->data); }

static void on_prepare(uv_prepare_t *h)
{
    server *s = h->data;
    flush_dirty(s);
    if (!s->w->nextq_head == !s->early_flushing) return;
    s->early_flushing = !s->early_flushing;
    if (s->early_flushing) uv_check_start(&s->early_flusher, on_check);
    else uv_check_stop(&s->early_flusher);
}

/* Graceful end: send what is queued, then shut down (file comment). */
static void client_finish(client *c)
{
    if (c->state == C_CLOSING) return;
    c->state = C_CLOSING;
    c->shutdown_pending = true;
    arm_deadline(c, 5000);
    mark_dirty(c);
}

/* ---- WebSocket connection (conn.h) ---- */

static void ws_conn_send(lp_conn *conn, chunk *msg)
{
    client *c = (client *)conn;
    if (c->state != C_WS || c->overflow || ws_session_close_sent(&c->ws)) return;
    METRIC_ADD(messages_out[conn->metric_party], 1);
    METRIC_ADD(bytes_out, chunk_payload_len(msg));
    out_push(c, msg);
}

static void ws_conn_close(lp_conn *conn, int code, const char *reason, size_t len)
{
    client *c = (client *)conn;
    if (c->state != C_WS) return;
    ws_session_close(&c->ws, code, reason, len);
    arm_deadline(c, 5000); /* the peer has this long to answer the close */
}

static const conn_ops ws_conn_ops = {ws_conn_send, ws_conn_close, ws_conn_destroy};

static void ws_on_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    client *c = ud;
    METRIC_ADD(messages_in[c->conn.metric_party], 1);
    METRIC_ADD(bytes_in, len);
    dispatch_ws_message(&c->conn, opcode, data, len);
}

static void ws_on_write(void *ud, const uint8_t *data, size_t len)
{
    client *c = ud;
    chunk *ch = chunk_from(data, len);
    out_push(c, ch);
    chunk_unref(ch);
}

static const ws_events ws_callbacks = {ws_on_message, ws_on_write};

static void ws_feed(client *c, const uint8_t *data, size_t len)
{
    /* wslay validates frames, UTF-8 of text messages and the size limit,
     * and queues the matching close (1002, 1007, 1009) itself */
    ws_session_feed(&c->ws, data, len);
    if (c->ws.protocol_error) {
        int code = wslay_event_get_status_code_sent(c->ws.ctx);
        if (!code) code = 1002;
        notify_room(c, code, ws_close_reason(code));
        client_finish(c);
    } else if (ws_session_finished(&c->ws)) {
        notify_room(c, c->ws.close_code ? c->ws.close_code : 1005, NULL);
        client_finish(c);
    }
    /* A busy socket keeps its wslay context (~4.5 KB); a quiet one gives it
     * back at the next park sweep (on_park_timer). Parking after every read
     * cost 5% of the echo path. */
}

/* ---- HTTP ---- */

static bool request_log(const client *c) { return dispatch_logs_requests(c->srv->cfg); }

/* Queues a response; the connection stays open for the next request
 * (keep-alive, with its idle deadline) or closes after it. */
static void send_response(client *c, const http_response *res, bool keep_alive, bool head, const char *method,
                          const char *target, uint64_t start)
{
    if (c->srv->w->stopping) keep_alive = false; /* shutting down: last answer */
    if (res->status >= 100 && res->status < 600) METRIC_ADD(http_status[res->status], 1);
    chunk *ch = http_response_serialize(res, keep_alive, head);
    out_push(c, ch);
    chunk_unref(ch);
    if (request_log(c)) {
        if (method) log_info("%s %s %d (%.1f ms)", method, target, res->status, (double)(uv_hrtime() - start) / 1e6);
        else log_info("%s %s %d", c->method[0] ? c->method : "-", c->target[0] ? c->target : "-", res->status);
    }
    if (!keep_alive) client_finish(c);
    else arm_deadline(c, c->srv->cfg->keepalive_timeout_ms);
}

static void respond(client *c, int status, const char *body, bool close)
{
    http_response *res = http_response_new(status, "text/plain;charset=UTF-8", body, strlen(body));
    send_response(c, res, !close, false, NULL, NULL, 0);
    http_response_free(res);
}

/* A request is with a room or a hook: input waits. */
static bool awaiting_answer(const client *c) { return c->peer.waiting || c->moving; }

/* An answer came after parse_requests() returned: go on with the pipelined bytes. */
static void continue_input(client *c)
{
    if (c->in_feed || c->state != C_HTTP || awaiting_answer(c)) return;
    buf rest = c->pending_in;
    buf_init(&c->pending_in);
    if (rest.len) parse_requests(c, rest.data, rest.len);
    buf_free(&rest);
    if (c->state == C_HTTP && !awaiting_answer(c)) resume_reading(c);
}

/* ---- what dispatch sees of a client (dispatch.h) ---- */

static client *client_of(http_peer *p) { return (client *)((char *)p - offsetof(client, peer)); }

static void peer_respond(http_peer *p, const http_response *res, bool keep_alive, bool head, const char *method,
                         const char *target, uint64_t start)
{
    send_response(client_of(p), res, keep_alive, head, method, target, start);
}

static void peer_hold(http_peer *p) { disarm_deadline(client_of(p)); }

/* A new WebSocket's early frames, once its room has its onConnect queued. */
static void start_ws_input(client *c)
{
    buf early = c->pending_in;
    buf_init(&c->pending_in);
    if (early.len) ws_feed(c, (const uint8_t *)early.data, early.len);
    buf_free(&early);
    resume_reading(c);
}

static void peer_resume(http_peer *p)
{
    client *c = client_of(p);
    if (c->state == C_WS) start_ws_input(c);
    else continue_input(c);
}

static void start_move(client *c, http_request *req, bool upgrade, worker *to);

/* A WebSocket always goes to its room's worker (it stays with its room).
 * An HTTP connection moves at most once, for its first room, and only when
 * nothing is queued for it; after that its requests to other workers' rooms
 * are forwarded (bench/run.sh: a connection that moved for every request
 * cost ~5 us a request). */
static bool peer_move(http_peer *p, http_request *req, bool upgrade, worker *to)
{
    client *c = client_of(p);
    if (!upgrade && (c->moved || c->dirty || c->writing || c->out_n)) return false;
    start_move(c, req, upgrade, to);
    return true;
}

static lp_conn *peer_accept_ws(http_peer *p, const http_request *req, const char *id, const char *node)
{
    client *c = client_of(p);
    char *uri = http_request_url(req);
    conn_init(&c->conn, &ws_conn_ops, id, uri);
    free(uri);
    c->upgraded = true;
    if (ws_session_init(&c->ws, c->srv->cfg->max_message, &ws_callbacks, c) != 0) {
        conn_unref(&c->conn);
        c->upgraded = false;
        respond(c, 500, "cannot start a WebSocket session", true);
        return NULL;
    }
    chunk *hs = ws_handshake_response(req, node);
    out_push(c, hs);
    chunk_unref(hs);
    http_parser_free(c->http);
    free(c->http);
    c->http = NULL;
    c->state = C_WS;
    disarm_deadline(c);
    return &c->conn;
}

/* ---- a tunnel to the node that owns the room (cluster mode) ---- */

/* Connected: the forwarded request first, then what the client sent since. */
static void tunnel_open(dial *d)
{
    client *c = dial_data(d);
    dial_send(d, chunk_bytes(c->tunnel_head), c->tunnel_head->len);
    chunk_unref(c->tunnel_head);
    c->tunnel_head = NULL;
    if (c->pending_in.len) dial_send(d, c->pending_in.data, c->pending_in.len);
    buf_free(&c->pending_in);
    buf_init(&c->pending_in);
}

/* The node's first bytes: a 421 (it does not own the room) or nothing at
 * all hands the request back to dispatch; anything else is its answer,
 * passed on from then on byte for byte. */
static void tunnel_data(dial *d, const char *data, size_t len)
{
    client *c = dial_data(d);
    if (c->tunnel_req) {
        if (len >= 12 && memcmp(data, "HTTP/1.1 421", 12) == 0) {
            /* (frames a client sent before its 101 went there too and are lost:
             * clients wait for the 101, so there are none in practice) */
            dial_close(d);
            c->up = NULL;
            c->state = C_HTTP;
            http_request *req = c->tunnel_req;
            c->tunnel_req = NULL;
            dispatch_tunnel_failed(&c->peer, req, 421, "misdirected");
            return;
        }
        http_request_free(c->tunnel_req);
        c->tunnel_req = NULL;
    }
    chunk *ch = chunk_from(data, len);
    out_push(c, ch);
    chunk_unref(ch);
    if (c->out_bytes > c->srv->cfg->max_output) client_close_now(c); /* the client stopped reading */
}

static void tunnel_eof(dial *d)
{
    client *c = dial_data(d);
    dial_close(d);
    c->up = NULL;
    client_finish(c);
}

static void tunnel_error(dial *d, const char *msg)
{
    client *c = dial_data(d);
    c->up = NULL; /* closed by dial */
    chunk_unref(c->tunnel_head);
    c->tunnel_head = NULL;
    if (c->tunnel_req) {
        c->state = C_HTTP;
        http_request *req = c->tunnel_req;
        c->tunnel_req = NULL;
        dispatch_tunnel_failed(&c->peer, req, 502, msg);
        return;
    }
    client_close_now(c);
}

static const dial_events tunnel_events = {tunnel_open, tunnel_data, tunnel_eof, tunnel_error};

static void peer_tunnel(http_peer *p, const char *host, int port, http_request *req, chunk *head)
{
    client *c = client_of(p);
    c->state = C_TUNNEL;
    c->tunnel_req = req;
    disarm_deadline(c);
    c->tunnel_head = head;
    dial *d = dial_new(c->tcp.loop, host, port, false, &tunnel_events, c);
    if (c->state != C_TUNNEL) return; /* it failed at once: tunnel_error handed req back */
    c->up = d;
    resume_reading(c);
}

static const peer_ops client_peer_ops = {peer_respond, peer_hold, peer_resume, peer_move, peer_accept_ws, peer_tunnel};

/* ---- moving a client to the worker that owns its room ---- */

static void moved_closed(uv_handle_t *h);

/* Starts the move: input stops; once queued output is written (flush),
 * hand_over gives the socket away. */
static void start_move(client *c, http_request *req, bool upgrade, worker *to)
{
    c->moving = req;
    c->moved = true;
    c->move_upgrade = upgrade;
    c->move_to = to;
    uv_read_stop((uv_stream_t *)&c->tcp);
    disarm_deadline(c);
    if (!c->dirty && !c->writing && c->out_n == 0) hand_over(c);
}

/* The socket leaves this loop: a duplicate of its descriptor travels, the
 * handles are closed here (which takes it out of this loop's epoll set)
 * and the client is posted to its new worker once they are. Every other
 * field (parser, TLS session, early bytes) is plain memory and goes along. */
static void hand_over(client *c)
{
    int fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || (c->moved_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        log_warn("cannot hand a connection to its room's worker: %s", strerror(errno));
        client_close_now(c);
        return;
    }
    unlink_client(c);
    if (c->timer_on) {
        c->timer_on = false;
        uv_close((uv_handle_t *)&c->timer, moved_closed);
    }
    uv_close((uv_handle_t *)&c->tcp, moved_closed);
}

static void adopt_moved(worker *w, void *arg);

static void moved_closed(uv_handle_t *h)
{
    client *c = h->data;
    if (--c->handles == 0) worker_post(c->move_to, adopt_moved, c);
}

/* On the new worker: open the socket in this loop and handle the request
 * as if it had been read here. */
static void adopt_moved(worker *w, void *arg)
{
    client *c = arg;
    server *s = w->srv;
    link_client(s, c);
    c->peer.w = w;
    uv_tcp_init(w->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    c->last_seen = uv_now(w->loop);
    if (uv_tcp_open(&c->tcp, c->moved_fd) != 0) {
        close(c->moved_fd);
        client_close_now(c);
        return;
    }
    if (w->stopping) {
        client_close_now(c);
        return;
    }
    http_request *req = c->moving;
    c->moving = NULL;
    c->move_to = NULL;
    /* Read as a fresh client does: bytes that come while the request is
     * answered wait in pending_in (consume_input), and the closing sequence
     * needs to see the peer's EOF. */
    resume_reading(c);
    dispatch_arrived(&c->peer, req, c->move_upgrade);
    continue_input(c);
}

static void parse_requests(client *c, const char *data, size_t len)
{
    c->in_feed = true;
    while (len > 0 && c->state == C_HTTP && !awaiting_answer(c) && !c->overflow) {
        size_t used = 0;
        enum http_parse_result rv = http_parser_feed(c->http, data, len, &used);
        data += used;
        len -= used;
        if (rv == HTTP_PARSE_MORE) {
            if (!c->partial && used) { /* a request has begun: its headers have a deadline */
                c->partial = true;
                arm_deadline(c, c->srv->cfg->header_timeout_ms);
            }
            break;
        }
        c->partial = false;
        if (rv == HTTP_PARSE_ERROR) {
            respond(c, c->http->error_status, c->http->error_reason, true);
            len = 0;
            break;
        }
        http_request *req = http_parser_take(c->http);
        if (request_log(c)) { /* for the log line of an answer that has no exchange (respond) */
            str_copy(c->method, sizeof c->method, req->method);
            str_copy(c->target, sizeof c->target, req->target);
        }
        if (c->over_limit) {
            http_request_free(req);
            respond(c, 503, "server is full", true);
            len = 0;
            break;
        }
        if (rv == HTTP_PARSE_UPGRADE) {
            /* the rest are early WebSocket frames: they wait for the 101 */
            buf_append(&c->pending_in, data, len);
            len = 0;
        }
        dispatch_request(&c->peer, req, rv == HTTP_PARSE_UPGRADE);
        if (rv == HTTP_PARSE_UPGRADE) break;
    }
    if (len > 0 && c->state == C_HTTP) {
        /* a request is with a room: keep the rest and stop reading */
        buf_append(&c->pending_in, data, len);
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (len > 0 && c->state == C_WS) {
        ws_feed(c, (const uint8_t *)data, len);
    }
    c->in_feed = false;
}

/* ---- libuv callbacks ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    client *c = h->data;
    b->base = c->srv->rbuf;
    b->len = sizeof c->srv->rbuf;
}

static void consume_input(client *c, const char *data, size_t len);

/* TLS: decrypt, send what the handshake wants sent, process the plaintext. */
static void on_tls_read(client *c, const char *data, size_t len)
{
    buf plain, hs;
    buf_init(&plain);
    buf_init(&hs);
    int rc = tls_read(c->tls, data, len, &plain, &hs);
    if (hs.len) {
        chunk *ch = chunk_from(hs.data, hs.len);
        out_push_raw(c, ch);
        chunk_unref(ch);
    }
    if (rc == TLS_ERR) {
        log_debug("TLS handshake or record failed: %s", tls_error(c->tls));
        client_close_now(c);
    } else {
        if (plain.len) consume_input(c, plain.data, plain.len);
        if (rc == TLS_CLOSED && !uv_is_closing((uv_handle_t *)&c->tcp)) client_close_now(c);
    }
    buf_free(&plain);
    buf_free(&hs);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    client *c = stream->data;
    if (nread == 0) return;
    c->last_seen = uv_now(stream->loop);
    if (nread < 0) {
        client_close_now(c);
        return;
    }
    if (c->tls) on_tls_read(c, b->base, (size_t)nread);
    else consume_input(c, b->base, (size_t)nread);
}

static void consume_input(client *c, const char *data, size_t len)
{
    uv_stream_t *stream = (uv_stream_t *)&c->tcp;
    if (c->overflow) return; /* being dropped: what it says no longer matters */
    switch (c->state) {
    case C_HTTP:
        if (awaiting_answer(c)) { /* pipelined while we answer: keep it for later */
            buf_append(&c->pending_in, data, len);
            uv_read_stop(stream);
        } else {
            parse_requests(c, data, len);
        }
        break;
    case C_WS: ws_feed(c, (const uint8_t *)data, len); break;
    case C_TUNNEL: /* before the node is connected, bytes wait with the early frames */
        if (c->up && dial_open(c->up)) dial_send(c->up, data, len);
        else buf_append(&c->pending_in, data, len);
        break;
    case C_CLOSING:
        if (c->upgraded && !c->disconnected) ws_feed(c, (const uint8_t *)data, len);
        break; /* draining until EOF */
    }
}

static void resume_reading(client *c)
{
    if (c->state != C_CLOSING && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *ls, int status)
{
    server *s = ls->data;
    if (status < 0) return;
    client *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->peer = (http_peer){&client_peer_ops, s->w, NULL, ls == (uv_stream_t *)&s->internal, 0};
    uv_tcp_init(ls->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->cfg->tls_cert && !c->peer.internal) c->tls = tls_server_new(); /* decided at start-up */
    c->http = xmalloc(sizeof *c->http);
    http_parser_init(c->http, (http_limits){s->cfg->max_header, s->cfg->max_body, s->cfg->max_headers});
    c->state = C_HTTP;
    buf_init(&c->pending_in);
    link_client(s, c);
    size_t total = atomic_fetch_add_explicit(&total_clients, 1, memory_order_relaxed) + 1;
    c->last_seen = uv_now(ls->loop);
    if (s->w->stopping) {
        client_close_now(c);
        return;
    }
    /* Over the limit: answered 503 once its request is read (on TLS only
     * then can anything be sent). */
    c->over_limit = total > s->cfg->max_connections;
    arm_deadline(c, s->cfg->header_timeout_ms);
    resume_reading(c);
}

/* Pings WebSockets that have been quiet for a ping interval; one quiet for
 * two intervals did not answer: its peer is gone. */
static void on_ping_timer(uv_timer_t *t)
{
    server *s = t->data;
    uint64_t now = uv_now(t->loop), every = s->cfg->ping_interval_ms;
    for (client *c = s->clients, *next; c; c = next) {
        next = c->next;
        if (c->state != C_WS) continue;
        uint64_t quiet = now - c->last_seen;
        if (quiet >= 2 * every) {
            notify_room(c, 1006, "no answer to ping");
            client_close_now(c);
        } else if (quiet >= every) {
            ws_session_ping(&c->ws);
        }
    }
}

/* Every second: WebSockets quiet for a second give their parser back
 * (ws_session_park keeps it if a frame or message is half-read), so an
 * idle socket costs ~2 KB while an active one skips re-creating it. */
static void on_park_timer(uv_timer_t *t)
{
    server *s = t->data;
    uint64_t now = uv_now(t->loop);
    for (client *c = s->clients; c; c = c->next)
        if (c->state == C_WS && now - c->last_seen >= PARK_AFTER_MS) ws_session_park(&c->ws);
}

size_t server_clients(const server *s) { return s->nclients; }

static char *listen_error(const char *host, int port, int rc)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
    return buf_steal(&b);
}

/* Binds host:port for the first worker. */
static int bind_listener(uv_tcp_t *h, const char *host, int port, const char *flag, char **err)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc != 0) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    if (rc != 0) {
        buf b;
        buf_init(&b);
        buf_printf(&b, "%s %s: not an IPv4 or IPv6 address", flag, host);
        *err = buf_steal(&b);
        return -1;
    }
    rc = uv_tcp_bind(h, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h, 1024, on_connection);
    if (rc != 0) *err = listen_error(host, port, rc);
    return rc ? -1 : 0;
}

/* Other workers listen on a duplicate of the first one's socket: each loop
 * polls it and whichever wakes first accepts. (SO_REUSEPORT would spread
 * connections evenly, but would also let a second server on the same port
 * silently take half of them.) */
static int share_listener(uv_tcp_t *h, const uv_tcp_t *first, const char *host, int port, char **err)
{
    int fd;
    int rc = uv_fileno((const uv_handle_t *)first, &fd);
    int copy = rc == 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (copy < 0) {
        *err = listen_error(host, port, rc ? rc : -errno);
        return -1;
    }
    rc = uv_tcp_open(h, copy);
    if (rc == 0) rc = uv_listen((uv_stream_t *)h, 1024, on_connection);
    if (rc != 0) {
        if (uv_fileno((const uv_handle_t *)h, &fd) != 0) close(copy);
        *err = listen_error(host, port, rc);
    }
    return rc ? -1 : 0;
}

/* One listener of the server: bound here (first == NULL) or shared. */
static int open_listener(server *s, uv_tcp_t *h, const uv_tcp_t *first, const char *host, int port, const char *flag,
                         char **err)
{
    uv_tcp_init(s->w->loop, h);
    h->data = s;
    if ((first ? share_listener(h, first, host, port, err) : bind_listener(h, host, port, flag, err)) != 0) {
        uv_close((uv_handle_t *)h, NULL);
        return -1;
    }
    return 0;
}

static void start_timers(server *s)
{
    const config *cfg = s->cfg;
    uv_loop_t *loop = s->w->loop;
    uv_timer_init(loop, &s->pinger);
    s->pinger.data = s;
    uv_timer_start(&s->pinger, on_ping_timer, cfg->ping_interval_ms / 2, cfg->ping_interval_ms / 2);
    uv_unref((uv_handle_t *)&s->pinger);
    uv_timer_init(loop, &s->parker);
    s->parker.data = s;
    uv_timer_start(&s->parker, on_park_timer, PARK_AFTER_MS, PARK_AFTER_MS);
    uv_unref((uv_handle_t *)&s->parker);
    uv_timer_init(loop, &s->trimmer);
    uv_unref((uv_handle_t *)&s->trimmer);
    uv_prepare_init(loop, &s->flusher);
    s->flusher.data = s;
    uv_prepare_start(&s->flusher, on_prepare);
    uv_unref((uv_handle_t *)&s->flusher);
    uv_check_init(loop, &s->early_flusher); /* started by on_prepare when needed */
    s->early_flusher.data = s;
    uv_unref((uv_handle_t *)&s->early_flusher);
}

int server_listen(server *s, worker *w, const server *first, char **err)
{
    const config *cfg = w->cfg;
    memset(s, 0, offsetof(server, rbuf));
    s->w = w;
    s->cfg = cfg;
    w->srv = s;
    if (open_listener(s, &s->listener, first ? &first->listener : NULL, cfg->host, cfg->port, "--host", err) != 0)
        return -1;
    s->listening = true;
    if (cfg->cluster.url) { /* requests other nodes forward (cluster mode) */
        if (open_listener(s, &s->internal, first ? &first->internal : NULL, cfg->cluster.internal_host,
                          cfg->cluster.internal_port, "--internal-host", err) != 0) {
            uv_close((uv_handle_t *)&s->listener, NULL);
            s->listening = false;
            return -1;
        }
        s->internal_listening = true;
    }
    start_timers(s);
    snprintf(w->authority, sizeof w->authority, "%s:%d", cfg->host, server_port(s));
    return 0;
}

static int port_of(const uv_tcp_t *h)
{
    struct sockaddr_storage addr;
    int len = sizeof addr;
    uv_tcp_getsockname(h, (struct sockaddr *)&addr, &len);
    if (addr.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

int server_internal_port(server *s) { return s->internal_listening ? port_of(&s->internal) : 0; }

int server_port(server *s) { return port_of(&s->listener); }

void server_shutdown(server *s)
{
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
    }
    if (s->internal_listening) {
        s->internal_listening = false;
        uv_close((uv_handle_t *)&s->internal, NULL);
    }
    for (client *c = s->clients, *next; c; c = next) {
        next = c->next;
        /* in a cluster, 1012 (service restart): reconnect, any node serves the room */
        if (c->state == C_WS && s->cfg->cluster.url) ws_conn_close(&c->conn, 1012, "node shutting down", 18);
        else if (c->state == C_WS) ws_conn_close(&c->conn, 1001, "server shutting down", 20);
        else if (c->state == C_TUNNEL) client_close_now(c);
        else if (c->state == C_HTTP && !awaiting_answer(c)) client_close_now(c);
    }
}

void server_free(server *s)
{
    for (client *c = s->clients, *next; c; c = next) {
        next = c->next;
        client_close_now(c);
    }
    /* The flusher runs no more: clients on its list must not wait for it
     * to be freed (their queued output is not sent; they are closing). */
    for (client *c = s->dirty, *next; c; c = next) {
        next = c->next_dirty;
        c->dirty = false;
        client_maybe_free(c);
    }
    s->dirty = NULL;
    if (!uv_is_closing((uv_handle_t *)&s->flusher)) uv_close((uv_handle_t *)&s->flusher, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->early_flusher)) uv_close((uv_handle_t *)&s->early_flusher, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->pinger)) uv_close((uv_handle_t *)&s->pinger, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->parker)) uv_close((uv_handle_t *)&s->parker, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->trimmer)) uv_close((uv_handle_t *)&s->trimmer, NULL);
}
