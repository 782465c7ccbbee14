/* lp_loadgen: WebSocket load generator for the luaparty benchmarks.
 *
 * One libuv loop, N client WebSockets (RFC 6455 masked frames via wslay's
 * client context, handshake response parsed with llhttp). Modes:
 *
 *   echo       N sockets, W messages in flight per socket, S bytes each.
 *              Reports round trips/s and p50/p99 round-trip latency.
 *   broadcast  1 sender + R receivers on one URL; W broadcasts in flight.
 *              A broadcast completes when every receiver got it. Reports
 *              deliveries/s, p50/p99 send->receive latency, lost count.
 *   idle       Opens connections in steps (--steps 1000,10000), holds them,
 *              and reads the server's VmRSS (--pid): RSS per connection =
 *              (rss_after - rss_before) / n.
 *   http       N keep-alive HTTP/1.1 connections, one GET in flight on
 *              each (no pipelining, like wrk). Reports requests/s, p50/p99
 *              latency (send -> end of response) and non-2xx answers.
 *   startup    Spawns the command after "--" repeatedly, times until it
 *              prints "listening on http://", and reads its RSS.
 *
 * Rooms (--rooms K, any mode but startup): connection i uses the URL
 * --path with "-<i mod K>" appended (PATH-0 .. PATH-(K-1)); the query, if
 * any, is kept after the suffix. With K = 1 (the default) every connection
 * uses --path as given. A connection keeps its room for its whole life, so
 * on a multi-worker luaparty each one settles on its room's worker.
 *
 * Every run prints one line "RESULT mode=... key=value ..." on stdout.
 * Every loop is bounded in time (--duration, --timeout) and count (--max-msgs).
 *
 * Message format (text frames, ASCII): "T<16 hex ns>S<8 hex seq>" padded
 * with 'x' to --size bytes. The timestamp is CLOCK_MONOTONIC of this
 * process, so latency needs no clock sync.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "lp_common.h"

enum { M_ECHO, M_BCAST, M_IDLE, M_STARTUP, M_HTTP };
enum { S_NEW, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_DEAD };
enum { R_ECHO, R_SENDER, R_RECEIVER, R_IDLE, R_HTTP };

#define MIN_SIZE 27
#define RING 65536u

typedef struct conn {
  lp_io io; /* first member */
  uv_connect_t creq;
  llhttp_t parser;
  wslay_event_context_ptr ws;
  const uint8_t *in;
  size_t in_len;
  int id, state, role;
  char key[32];
  char field[32];
  size_t field_len;
  int cur; /* 1 while reading Sec-WebSocket-Accept */
  char accept[40];
  size_t accept_len;
  uint64_t sent, recvd;
  uint64_t t_req; /* http: when the request in flight was sent */
  char *req;      /* http: the request bytes */
  size_t req_len;
} conn;

static struct {
  int mode;
  const char *host;
  int port;
  const char *path;
  int conns;
  int window;
  int size;
  double duration, warmup, timeout, grace;
  long long max_msgs;
  int receivers;
  int rooms;
  int pid;
  int max_pending;
  int settle_ms, hold_ms;
  int steps[16];
  int nsteps;
  int repeat;
  char **cmd;
  const char *label;
  double bcast_timeout;
} cfg;

static uv_loop_t *loop;
static conn *conns;
static int nconns;      /* connections allocated */
static int target_open; /* connections wanted in this phase */
static int next_start;  /* next index to connect */
static int pending, n_open, n_failed;
static void (*on_all_open)(void);
static llhttp_settings_t http_settings, resp_settings;
static struct wslay_event_callbacks ws_callbacks;
static char read_slab[65536];
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uv_timer_t phase_timer, tick_timer;
static int finished;

/* measurement */
static uint64_t t_start, t_warm, t_end, t_last_recv;
static int stopping;
static lp_hist hist;
static uint64_t total_sent, total_recv, window_recv, bad_msgs, unexpected, non2xx;
static long long cpu0_us, cpu1_us;
static struct rusage ru0, ru1;
static uint64_t t_meas0, t_meas1;

/* broadcast */
typedef struct {
  uint32_t seq;
  uint32_t remaining;
  uint64_t t_sent;
  int live;
} bslot;
static bslot *ring;
static uint32_t next_seq, oldest_seq;
static int inflight;
static uint64_t timed_out, deliveries_total;

/* At most a few lines per kind of connection error: 10k identical lines help nobody. */
static int n_warned;
#define WARN(...)                                                                    \
  do {                                                                               \
    if (n_warned++ < 8)                                                              \
      fprintf(stderr, "lp_loadgen: " __VA_ARGS__);                                   \
    else if (n_warned == 9)                                                          \
      fprintf(stderr, "lp_loadgen: (more connection errors; see failed= in RESULT)\n"); \
  } while (0)

static void die(const char *msg) {
  fprintf(stderr, "lp_loadgen: %s\n", msg);
  exit(1);
}

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static double secs(uint64_t ns) {
  return (double)ns / 1e9;
}

static void finish(void);

/* ---- messages --------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

static void put_hex(char *p, uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; i--) {
    p[i] = HEX[v & 15];
    v >>= 4;
  }
}

static int get_hex(const uint8_t *p, int digits, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < digits; i++) {
    uint8_t ch = p[i];
    v <<= 4;
    if (ch >= '0' && ch <= '9')
      v |= (uint64_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f')
      v |= (uint64_t)(ch - 'a' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static int parse_msg(const uint8_t *m, size_t len, uint64_t *ts, uint64_t *seq) {
  if (len < MIN_SIZE || m[0] != 'T' || m[17] != 'S')
    return -1;
  if (get_hex(m + 1, 16, ts) || get_hex(m + 18, 8, seq))
    return -1;
  return 0;
}

static char *msgbuf;

static int send_msg(conn *c, uint64_t seq) {
  uint64_t now = lp_now_ns();
  msgbuf[0] = 'T';
  put_hex(msgbuf + 1, now, 16);
  msgbuf[17] = 'S';
  put_hex(msgbuf + 18, seq, 8);
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msgbuf, (size_t)cfg.size};
  if (wslay_event_queue_msg(c->ws, &m) != 0)
    return -1;
  c->sent++;
  total_sent++;
  return 0;
}

/* ---- connection plumbing ---------------------------------------------- */

static void conn_fail(conn *c);
static void http_read(conn *c, const uv_buf_t *buf, ssize_t nread);

static void pump(conn *c) {
  if (c->state == S_DEAD || c->io.closing)
    return;
  if (c->ws && wslay_event_send(c->ws) != 0) {
    conn_fail(c);
    return;
  }
  if (lp_io_flush(&c->io) < 0)
    conn_fail(c);
}

static void on_drained(lp_io *io) {
  conn *c = (conn *)io;
  if (c->ws && wslay_event_send(c->ws) != 0)
    conn_fail(c);
}

static void on_closed(uv_handle_t *h) {
  (void)h;
}

static void start_more(void);

static void conn_fail(conn *c) {
  int was = c->state;
  if (was == S_DEAD)
    return;
  c->state = S_DEAD;
  if (!c->io.closing) {
    c->io.closing = 1;
    uv_close((uv_handle_t *)&c->io.tcp, on_closed);
  }
  if (was == S_OPEN) {
    n_open--;
    if (!finished && !stopping)
      WARN("connection %d closed by server\n", c->id);
  } else {
    pending--;
  }
  n_failed++;
  if (!finished)
    start_more();
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud) {
  (void)flags;
  conn *c = ud;
  return lp_ws_recv_from(ctx, &c->in, &c->in_len, buf, len);
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
  (void)flags;
  conn *c = ud;
  if (lp_io_pending(&c->io) >= (1u << 20)) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (lp_io_append(&c->io, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static int ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud) {
  (void)ctx;
  (void)ud;
  /* Masking keys only need to vary for a benchmark client (RFC 6455 10.3
   * is about browsers); xorshift is enough and costs nothing. */
  while (len) {
    uint64_t r = rnd();
    size_t n = len < 8 ? len : 8;
    memcpy(buf, &r, n);
    buf += n;
    len -= n;
  }
  return 0;
}

static void bcast_send_more(void);

static void on_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud) {
  (void)ctx;
  conn *c = ud;
  if (wslay_is_ctrl_frame(a->opcode))
    return;
  uint64_t now = lp_now_ns();
  c->recvd++;
  total_recv++;
  uint64_t ts, seq;
  if (parse_msg(a->msg, a->msg_length, &ts, &seq) != 0 || a->msg_length != (size_t)cfg.size) {
    bad_msgs++;
    if (c->role == R_ECHO && !stopping && send_msg(c, 0) != 0)
      conn_fail(c);
    return;
  }
  if (c->role == R_SENDER || c->role == R_IDLE) {
    unexpected++;
    return;
  }
  if (now >= t_warm && ts >= t_warm && now <= t_end) {
    lp_hist_add(&hist, (now - ts) / 1000u);
    window_recv++;
  }
  t_last_recv = now;
  if (c->role == R_ECHO) {
    if (!stopping && (cfg.max_msgs <= 0 || (long long)total_sent < cfg.max_msgs)) {
      if (send_msg(c, c->sent) != 0)
        conn_fail(c);
    }
  } else { /* receiver */
    deliveries_total++;
    bslot *s = &ring[seq % RING];
    if (s->live && s->seq == (uint32_t)seq) {
      if (--s->remaining == 0) {
        s->live = 0;
        inflight--;
        bcast_send_more();
      }
    }
  }
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  (void)h;
  (void)sz;
  buf->base = read_slab;
  buf->len = sizeof read_slab;
}

static void became_open(conn *c) {
  c->state = S_OPEN;
  pending--;
  n_open++;
  start_more();
  if (n_open + n_failed >= target_open && pending == 0 && next_start >= target_open &&
      on_all_open) {
    void (*f)(void) = on_all_open;
    on_all_open = NULL;
    f();
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (nread < 0) {
    conn_fail(c);
    return;
  }
  if (nread == 0 || c->state == S_DEAD)
    return;
  if (cfg.mode == M_HTTP) {
    http_read(c, buf, nread);
    return;
  }
  if (c->state == S_HANDSHAKE) {
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e == HPE_OK)
      return; /* need more */
    if (e != HPE_PAUSED_UPGRADE || c->parser.status_code != 101) {
      WARN("handshake failed on conn %d (status %d, %s)\n", c->id, c->parser.status_code,
           llhttp_errno_name(e));
      conn_fail(c);
      return;
    }
    char want[29];
    lp_ws_accept(c->key, strlen(c->key), want);
    while (c->accept_len && (c->accept[c->accept_len - 1] == ' ' ||
                             c->accept[c->accept_len - 1] == '\t'))
      c->accept_len--; /* optional trailing whitespace */
    if (c->accept_len != 28 || memcmp(c->accept, want, 28) != 0) {
      WARN("bad Sec-WebSocket-Accept on conn %d\n", c->id);
      conn_fail(c);
      return;
    }
    if (wslay_event_context_client_init(&c->ws, &ws_callbacks, c) != 0)
      die("wslay init");
    wslay_event_config_set_max_recv_msg_length(c->ws, 1u << 24);
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used = (size_t)(pos - buf->base);
    became_open(c);
    if (c->state != S_OPEN)
      return;
    if ((size_t)nread > used) {
      c->in = (const uint8_t *)pos;
      c->in_len = (size_t)nread - used;
      if (wslay_event_recv(c->ws) != 0) {
        conn_fail(c);
        return;
      }
    }
  } else if (c->ws) {
    c->in = (const uint8_t *)buf->base;
    c->in_len = (size_t)nread;
    if (wslay_event_recv(c->ws) != 0) {
      conn_fail(c);
      return;
    }
    if (!wslay_event_want_read(c->ws)) {
      conn_fail(c);
      return;
    }
  }
  c->in_len = 0;
  pump(c);
}

static int on_h_field(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  lp_append_capped(c->field, &c->field_len, sizeof c->field, at, len);
  return 0;
}

static int on_h_field_done(llhttp_t *p) {
  conn *c = p->data;
  c->field[c->field_len] = '\0';
  c->cur = strcasecmp(c->field, "sec-websocket-accept") == 0;
  c->field_len = 0;
  return 0;
}

static int on_h_value(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  if (c->cur)
    lp_append_capped(c->accept, &c->accept_len, sizeof c->accept, at, len);
  return 0;
}

static void path_for(int i, char *out, size_t cap) {
  if (cfg.rooms > 1) {
    const char *q = strchr(cfg.path, '?');
    int plen = q ? (int)(q - cfg.path) : (int)strlen(cfg.path);
    snprintf(out, cap, "%.*s-%d%s", plen, cfg.path, i % cfg.rooms, q ? q : "");
  } else {
    snprintf(out, cap, "%s", cfg.path);
  }
}

/* ---- http mode -------------------------------------------------------- */

static int http_send(conn *c) {
  if (lp_io_append(&c->io, c->req, c->req_len) != 0)
    return -1;
  c->t_req = lp_now_ns();
  c->sent++;
  total_sent++;
  return 0;
}

static int on_resp_complete(llhttp_t *p) {
  conn *c = p->data;
  uint64_t now = lp_now_ns();
  c->recvd++;
  total_recv++;
  if (p->status_code < 200 || p->status_code > 299)
    non2xx++;
  if (now >= t_warm && c->t_req >= t_warm && now <= t_end) {
    lp_hist_add(&hist, (now - c->t_req) / 1000u);
    window_recv++;
  }
  t_last_recv = now;
  if (!stopping && (cfg.max_msgs <= 0 || (long long)total_sent < cfg.max_msgs)) {
    if (http_send(c) != 0)
      return -1; /* the caller fails the connection */
  }
  return 0;
}

static void http_read(conn *c, const uv_buf_t *buf, ssize_t nread) {
  llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
  if (e != HPE_OK) {
    if (!finished && !stopping)
      WARN("bad HTTP response on conn %d (%s)\n", c->id, llhttp_errno_name(e));
    conn_fail(c);
    return;
  }
  pump(c);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (c->state == S_DEAD)
    return;
  if (status < 0) {
    if (!finished)
      WARN("connect %d failed: %s\n", c->id, uv_strerror(status));
    conn_fail(c);
    return;
  }
  uv_tcp_nodelay(&c->io.tcp, 1);
  if (cfg.mode == M_HTTP) {
    char path[512], req_s[1024];
    path_for(c->id, path, sizeof path);
    int n = snprintf(req_s, sizeof req_s, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path,
                     cfg.host, cfg.port);
    c->req = malloc((size_t)n);
    if (!c->req)
      die("out of memory");
    memcpy(c->req, req_s, (size_t)n);
    c->req_len = (size_t)n;
    llhttp_init(&c->parser, HTTP_RESPONSE, &resp_settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->io.tcp, on_alloc, on_read);
    became_open(c);
    return;
  }
  c->state = S_HANDSHAKE;
  unsigned char raw[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rnd();
    memcpy(raw + i, &r, 8);
  }
  EVP_EncodeBlock((unsigned char *)c->key, raw, 16);
  char path[512], req_s[1024];
  path_for(c->id, path, sizeof path);
  int n = snprintf(req_s, sizeof req_s,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   path, cfg.host, cfg.port, c->key);
  lp_io_append(&c->io, req_s, (size_t)n);
  llhttp_init(&c->parser, HTTP_RESPONSE, &http_settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->io.tcp, on_alloc, on_read);
  pump(c);
}

static void start_conn(conn *c) {
  struct sockaddr_in addr;
  uv_ip4_addr(cfg.host, cfg.port, &addr);
  lp_io_init(&c->io);
  c->io.on_drained = on_drained;
  c->state = S_CONNECTING;
  pending++;
  uv_tcp_init(loop, &c->io.tcp);
  c->creq.data = c;
  int r = uv_tcp_connect(&c->creq, &c->io.tcp, (const struct sockaddr *)&addr, on_connect);
  if (r != 0) {
    WARN("connect %d: %s\n", c->id, uv_strerror(r));
    conn_fail(c);
  }
}

static void start_more(void) {
  while (pending < cfg.max_pending && next_start < target_open) {
    conn *c = &conns[next_start++];
    start_conn(c);
  }
  if (on_all_open && n_open + n_failed >= target_open && pending == 0 &&
      next_start >= target_open) {
    void (*f)(void) = on_all_open;
    on_all_open = NULL;
    f();
  }
}

static void open_until(int total, void (*cb)(void)) {
  target_open = total;
  on_all_open = cb;
  start_more();
}

/* ---- measurement window ----------------------------------------------- */

static void meas_begin(void) {
  t_meas0 = lp_now_ns();
  if (cfg.pid > 0)
    cpu0_us = lp_read_cpu_us(cfg.pid);
  getrusage(RUSAGE_SELF, &ru0);
}

static void meas_end(void) {
  t_meas1 = lp_now_ns();
  if (cfg.pid > 0)
    cpu1_us = lp_read_cpu_us(cfg.pid);
  getrusage(RUSAGE_SELF, &ru1);
}

static double ru_us(const struct rusage *r) {
  return (double)r->ru_utime.tv_sec * 1e6 + (double)r->ru_utime.tv_usec +
         (double)r->ru_stime.tv_sec * 1e6 + (double)r->ru_stime.tv_usec;
}

static void print_cpu(uint64_t ops) {
  double wall_us = (double)(t_meas1 - t_meas0) / 1e3;
  double cli = wall_us > 0 ? 100.0 * (ru_us(&ru1) - ru_us(&ru0)) / wall_us : 0;
  printf(" client_cpu_pct=%.0f", cli);
  if (cfg.pid > 0 && cpu0_us >= 0 && cpu1_us >= 0) {
    double srv = (double)(cpu1_us - cpu0_us);
    printf(" server_cpu_pct=%.0f", wall_us > 0 ? 100.0 * srv / wall_us : 0);
    if (ops)
      printf(" server_cpu_us_per_op=%.2f", srv / (double)ops);
  } else if (cfg.pid > 0) {
    printf(" server_alive=0");
  }
}

static void on_tick(uv_timer_t *t);

static void stop_phase(void) {
  stopping = 1;
  meas_end();
}

static void on_phase_timer(uv_timer_t *t) {
  (void)t;
  if (!stopping) {
    stop_phase();
    /* grace: wait for in-flight messages, bounded */
    uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(cfg.grace * 1000), 0);
    return;
  }
  finish();
}

static int drained(void) {
  if (cfg.mode == M_ECHO || cfg.mode == M_HTTP)
    return total_recv >= total_sent;
  return deliveries_total >= (uint64_t)next_seq * (uint64_t)cfg.receivers;
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  uint64_t now = lp_now_ns();
  if (stopping) {
    if (drained())
      finish();
    return;
  }
  if ((cfg.mode == M_ECHO || cfg.mode == M_HTTP) && cfg.max_msgs > 0 &&
      (long long)total_sent >= cfg.max_msgs &&
      total_recv >= total_sent) {
    t_end = now;
    stop_phase();
    finish();
    return;
  }
  if (cfg.mode == M_BCAST) {
    /* Retire broadcasts that some receiver never got, so a lost message
     * cannot stall the window. */
    uint64_t lim = (uint64_t)(cfg.bcast_timeout * 1e9);
    while (oldest_seq != next_seq) {
      bslot *s = &ring[oldest_seq % RING];
      if (s->live && s->seq == oldest_seq) {
        if (now - s->t_sent < lim)
          break;
        s->live = 0;
        inflight--;
        timed_out++;
      }
      oldest_seq++;
    }
    bcast_send_more();
    if (cfg.max_msgs > 0 && (long long)next_seq >= cfg.max_msgs && inflight == 0) {
      t_end = now;
      stop_phase();
      finish();
    }
  }
}

static void start_timers(void) {
  t_start = lp_now_ns();
  t_warm = t_start + (uint64_t)(cfg.warmup * 1e9);
  t_end = t_warm + (uint64_t)(cfg.duration * 1e9);
  uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)((cfg.warmup + cfg.duration) * 1000),
                 0);
  uv_timer_start(&tick_timer, on_tick, 20, 20);
}

static uv_timer_t warm_timer;
static void on_warm(uv_timer_t *t) {
  (void)t;
  meas_begin();
}

/* The measurement starts after the warm-up (or at once without one). */
static void begin_run(void) {
  if (n_open == 0)
    die("no connection could be opened");
  start_timers();
  if (cfg.warmup > 0)
    uv_timer_start(&warm_timer, on_warm, (uint64_t)(cfg.warmup * 1000), 0);
  else
    meas_begin();
}

/* echo */
static void echo_go(void) {
  begin_run();
  for (int i = 0; i < nconns; i++) {
    conn *c = &conns[i];
    if (c->state != S_OPEN)
      continue;
    for (int w = 0; w < cfg.window; w++)
      if (cfg.max_msgs <= 0 || (long long)total_sent < cfg.max_msgs)
        send_msg(c, c->sent);
    pump(c);
  }
}

/* http */
static void http_go(void) {
  begin_run();
  for (int i = 0; i < nconns; i++) {
    conn *c = &conns[i];
    if (c->state != S_OPEN)
      continue;
    if (cfg.max_msgs <= 0 || (long long)total_sent < cfg.max_msgs) {
      if (http_send(c) != 0) {
        conn_fail(c);
        continue;
      }
    }
    pump(c);
  }
}

/* broadcast */
static void bcast_send_more(void) {
  conn *s = &conns[0];
  if (s->state != S_OPEN || stopping)
    return;
  int queued = 0;
  while (inflight < cfg.window && (cfg.max_msgs <= 0 || (long long)next_seq < cfg.max_msgs)) {
    bslot *b = &ring[next_seq % RING];
    if (b->live)
      break; /* ring full of stragglers */
    b->seq = next_seq;
    b->remaining = (uint32_t)cfg.receivers;
    b->t_sent = lp_now_ns();
    b->live = 1;
    if (send_msg(s, next_seq) != 0) {
      b->live = 0;
      break;
    }
    next_seq++;
    inflight++;
    queued = 1;
  }
  if (queued)
    pump(s);
}

static uv_timer_t settle_timer;
static void bcast_start(uv_timer_t *t) {
  (void)t;
  start_timers();
  if (cfg.warmup > 0)
    uv_timer_start(&warm_timer, on_warm, (uint64_t)(cfg.warmup * 1000), 0);
  else
    meas_begin();
  bcast_send_more();
}

static void bcast_go(void) {
  if (conns[0].state != S_OPEN)
    die("broadcast sender could not connect");
  int live = 0;
  for (int i = 1; i < nconns; i++)
    if (conns[i].state == S_OPEN)
      live++;
  if (live != cfg.receivers)
    fprintf(stderr, "lp_loadgen: only %d of %d receivers connected\n", live, cfg.receivers);
  cfg.receivers = live;
  if (live == 0)
    die("no receiver connected");
  /* bench/instructions.sh waits for this line to start counting, so the
   * handshakes are not counted: the first broadcast goes --settle-ms later. */
  fprintf(stderr, "lp_loadgen: broadcast: %d receivers connected\n", live);
  /* Let the server finish registering the last sockets in the room. */
  uv_timer_start(&settle_timer, bcast_start, (uint64_t)cfg.settle_ms, 0);
}

/* idle */
static int step_idx;
static long rss_before;
static uint64_t t_step0;
static uv_timer_t hold_timer;
static void idle_step(void);

static void idle_measure(uv_timer_t *t) {
  (void)t;
  long rss = lp_read_rss_kb(cfg.pid);
  int n = n_open;
  double per = n > 0 && rss >= 0 ? (double)(rss - rss_before) * 1024.0 / n : 0;
  printf("RESULT mode=idle label=%s conns=%d failed=%d rss_before_kb=%ld rss_after_kb=%ld "
         "bytes_per_conn=%.0f open_secs=%.2f",
         cfg.label, n, n_failed, rss_before, rss, per, secs(lp_now_ns() - t_step0) -
         cfg.hold_ms / 1000.0);
  if (rss < 0)
    printf(" server_alive=0");
  printf("\n");
  fflush(stdout);
  step_idx++;
  if (rss < 0 || step_idx >= cfg.nsteps) {
    /* Close everything and report what the server gives back. */
    for (int i = 0; i < nconns; i++) {
      conn *c = &conns[i];
      if (c->state != S_NEW && !c->io.closing) {
        c->io.closing = 1;
        uv_close((uv_handle_t *)&c->io.tcp, on_closed);
      }
    }
    stopping = 1;
    uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)cfg.hold_ms, 0);
    return;
  }
  idle_step();
}

static void idle_opened(void) {
  uv_timer_start(&hold_timer, idle_measure, (uint64_t)cfg.hold_ms, 0);
}

static void idle_step(void) {
  t_step0 = lp_now_ns();
  open_until(cfg.steps[step_idx], idle_opened);
}

static void on_global_timeout(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "lp_loadgen: global timeout (%.0fs): open=%d pending=%d failed=%d\n",
          cfg.timeout, n_open, pending, n_failed);
  if (cfg.mode == M_IDLE) {
    printf("RESULT mode=idle label=%s conns=%d failed=%d pending=%d error=timeout\n", cfg.label,
           n_open, n_failed, pending);
    exit(1);
  }
  if (!stopping)
    stop_phase();
  finish();
}

static void finish(void) {
  if (finished)
    return;
  finished = 1;
  if (cfg.mode == M_ECHO || cfg.mode == M_BCAST || cfg.mode == M_HTTP) {
    uint64_t end = t_end;
    if (t_meas1 && t_meas1 < end)
      end = t_meas1;
    double dur = end > t_warm ? secs(end - t_warm) : 0;
    if (cfg.mode == M_HTTP) {
      printf("RESULT mode=http label=%s conns=%d rooms=%d secs=%.2f requests=%llu "
             "req_per_s=%.0f p50_us=%llu p99_us=%llu max_us=%llu non2xx=%llu lost=%llu "
             "failed=%d",
             cfg.label, n_open, cfg.rooms, dur, (unsigned long long)window_recv,
             dur > 0 ? (double)window_recv / dur : 0,
             (unsigned long long)lp_hist_pct(&hist, 50), (unsigned long long)lp_hist_pct(&hist, 99),
             (unsigned long long)hist.max, (unsigned long long)non2xx,
             (unsigned long long)(total_sent - total_recv), n_failed);
    } else if (cfg.mode == M_ECHO) {
      printf("RESULT mode=echo label=%s conns=%d rooms=%d window=%d size=%d secs=%.2f msgs=%llu "
             "msgs_per_s=%.0f p50_us=%llu p99_us=%llu max_us=%llu lost=%llu bad=%llu "
             "failed=%d",
             cfg.label, n_open, cfg.rooms, cfg.window, cfg.size, dur, (unsigned long long)window_recv,
             dur > 0 ? (double)window_recv / dur : 0,
             (unsigned long long)lp_hist_pct(&hist, 50), (unsigned long long)lp_hist_pct(&hist, 99),
             (unsigned long long)hist.max, (unsigned long long)(total_sent - total_recv),
             (unsigned long long)bad_msgs, n_failed);
    } else {
      uint64_t expect = (uint64_t)next_seq * (uint64_t)cfg.receivers;
      printf("RESULT mode=broadcast label=%s receivers=%d window=%d size=%d secs=%.2f "
             "broadcasts=%u deliveries=%llu deliveries_per_s=%.0f p50_us=%llu p99_us=%llu "
             "max_us=%llu lost=%llu timed_out=%llu echoed_to_sender=%llu bad=%llu failed=%d",
             cfg.label, cfg.receivers, cfg.window, cfg.size, dur, next_seq,
             (unsigned long long)window_recv, dur > 0 ? (double)window_recv / dur : 0,
             (unsigned long long)lp_hist_pct(&hist, 50), (unsigned long long)lp_hist_pct(&hist, 99),
             (unsigned long long)hist.max,
             (unsigned long long)(expect > deliveries_total ? expect - deliveries_total : 0),
             (unsigned long long)timed_out, (unsigned long long)unexpected,
             (unsigned long long)bad_msgs, n_failed);
    }
    print_cpu(window_recv);
    printf("\n");
  }
  fflush(stdout);
  uv_stop(loop);
}

/* ---- startup mode ----------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int run_startup(void) {
  double ms[32], rss[32];
  int n = 0, port = 0;
  if (cfg.repeat > 32)
    cfg.repeat = 32;
  for (int r = 0; r < cfg.repeat; r++) {
    int fds[2];
    if (pipe(fds) != 0)
      die("pipe");
    uint64_t t0 = lp_now_ns();
    pid_t pid = fork();
    if (pid < 0)
      die("fork");
    if (pid == 0) {
      dup2(fds[1], 2);
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      execvp(cfg.cmd[0], cfg.cmd);
      _exit(127);
    }
    close(fds[1]);
    char buf[8192];
    size_t have = 0;
    int ok = 0;
    uint64_t deadline = t0 + (uint64_t)(cfg.timeout * 1e9);
    while (!ok && lp_now_ns() < deadline) {
      struct pollfd pfd = {fds[0], POLLIN, 0};
      int pr = poll(&pfd, 1, 100);
      if (pr <= 0)
        continue;
      ssize_t k = read(fds[0], buf + have, sizeof buf - 1 - have);
      if (k <= 0)
        break;
      have += (size_t)k;
      buf[have] = '\0';
      char *p = strstr(buf, "listening on http://");
      if (p && strchr(p, '\n')) {
        char *colon = strchr(p + 20, ':');
        if (colon)
          port = atoi(colon + 1);
        ok = 1;
      }
      if (have >= sizeof buf - 1)
        have = 0;
    }
    uint64_t t1 = lp_now_ns();
    if (ok) {
      /* Settle a little, draining output so the child never blocks. */
      int fl = fcntl(fds[0], F_GETFL);
      fcntl(fds[0], F_SETFL, fl | O_NONBLOCK);
      for (int i = 0; i < 20; i++) {
        sleep_ms(10);
        while (read(fds[0], buf, sizeof buf) > 0) {
        }
      }
      ms[n] = (double)(t1 - t0) / 1e6;
      rss[n] = (double)lp_read_rss_kb(pid);
      n++;
    } else {
      buf[have] = '\0';
      fprintf(stderr, "lp_loadgen: startup run %d: no listening line; output: %.400s\n", r, buf);
    }
    kill(pid, SIGTERM);
    int st;
    int waited = 0;
    for (int i = 0; i < 200; i++) {
      if (waitpid(pid, &st, WNOHANG) == pid) {
        waited = 1;
        break;
      }
      sleep_ms(10);
      while (read(fds[0], buf, sizeof buf) > 0) {
      }
    }
    if (!waited) {
      fprintf(stderr, "lp_loadgen: startup run %d: no exit 2 s after SIGTERM, killing\n", r);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
    close(fds[0]);
  }
  if (n == 0) {
    printf("RESULT mode=startup label=%s error=no_listen\n", cfg.label);
    return 1;
  }
  qsort(ms, (size_t)n, sizeof ms[0], cmp_d);
  qsort(rss, (size_t)n, sizeof rss[0], cmp_d);
  printf("RESULT mode=startup label=%s runs=%d listen_ms_median=%.1f listen_ms_min=%.1f "
         "listen_ms_max=%.1f rss_kb_median=%.0f port_seen=%d\n",
         cfg.label, n, ms[n / 2], ms[0], ms[n - 1], rss[n / 2], port);
  return 0;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: lp_loadgen --mode echo|broadcast|idle|http|startup [options] [-- cmd args]\n"
          "  --host H (127.0.0.1)  --port N  --path /p (/)\n"
          "  --conns N (50)        echo: sockets; http: keep-alive connections\n"
          "  --window W (8)        messages (echo, per socket) / broadcasts in flight\n"
          "  --size S (64)         message bytes (>= %d)\n"
          "  --duration D (5)      measured seconds, after --warmup (0.5; 0 with --max-msgs)\n"
          "  --max-msgs M (0=inf)  stop after M messages sent (echo) / broadcasts / requests (http)\n"
          "  --receivers R (200)   broadcast receivers\n"
          "  --steps a,b (1000,10000)  idle: cumulative connection counts\n"
          "  --rooms K (1)         connection i uses PATH-<i mod K> (echo, broadcast, idle, http)\n"
          "  --pid P               server pid (RSS, CPU time from /proc)\n"
          "  --hold-ms (1000)  --settle-ms (300)  --grace S (2)  --timeout S (60)\n"
          "  --max-pending N (128) concurrent connects/handshakes\n"
          "  --repeat N (5)        startup: runs\n"
          "  --label NAME          copied into the RESULT line\n",
          MIN_SIZE);
  exit(2);
}

int main(int argc, char **argv) {
  cfg.host = "127.0.0.1";
  cfg.path = "/";
  cfg.conns = 50;
  cfg.window = 8;
  cfg.size = 64;
  cfg.duration = 5;
  cfg.warmup = -1; /* default: 0.5 s, or 0 with --max-msgs */
  cfg.timeout = 60;
  cfg.grace = 2;
  cfg.receivers = 200;
  cfg.rooms = 1;
  cfg.max_pending = 128;
  cfg.settle_ms = 300;
  cfg.hold_ms = 1000;
  cfg.repeat = 5;
  cfg.label = "-";
  cfg.bcast_timeout = 2;
  cfg.mode = -1;
  cfg.steps[0] = 1000;
  cfg.steps[1] = 10000;
  cfg.nsteps = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      cfg.cmd = argv + i + 1;
      break;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (!strcmp(a, "--mode")) {
      if (!strcmp(v, "echo"))
        cfg.mode = M_ECHO;
      else if (!strcmp(v, "broadcast"))
        cfg.mode = M_BCAST;
      else if (!strcmp(v, "idle"))
        cfg.mode = M_IDLE;
      else if (!strcmp(v, "startup"))
        cfg.mode = M_STARTUP;
      else if (!strcmp(v, "http"))
        cfg.mode = M_HTTP;
      else
        usage();
    } else if (!strcmp(a, "--host"))
      cfg.host = v;
    else if (!strcmp(a, "--port"))
      cfg.port = atoi(v);
    else if (!strcmp(a, "--path"))
      cfg.path = v;
    else if (!strcmp(a, "--conns"))
      cfg.conns = atoi(v);
    else if (!strcmp(a, "--window"))
      cfg.window = atoi(v);
    else if (!strcmp(a, "--size"))
      cfg.size = atoi(v);
    else if (!strcmp(a, "--duration"))
      cfg.duration = atof(v);
    else if (!strcmp(a, "--warmup"))
      cfg.warmup = atof(v);
    else if (!strcmp(a, "--max-msgs"))
      cfg.max_msgs = atoll(v);
    else if (!strcmp(a, "--receivers"))
      cfg.receivers = atoi(v);
    else if (!strcmp(a, "--rooms"))
      cfg.rooms = atoi(v);
    else if (!strcmp(a, "--pid"))
      cfg.pid = atoi(v);
    else if (!strcmp(a, "--hold-ms"))
      cfg.hold_ms = atoi(v);
    else if (!strcmp(a, "--settle-ms"))
      cfg.settle_ms = atoi(v);
    else if (!strcmp(a, "--grace"))
      cfg.grace = atof(v);
    else if (!strcmp(a, "--timeout"))
      cfg.timeout = atof(v);
    else if (!strcmp(a, "--max-pending"))
      cfg.max_pending = atoi(v);
    else if (!strcmp(a, "--repeat"))
      cfg.repeat = atoi(v);
    else if (!strcmp(a, "--label"))
      cfg.label = v;
    else if (!strcmp(a, "--bcast-timeout"))
      cfg.bcast_timeout = atof(v);
    else if (!strcmp(a, "--steps")) {
      cfg.nsteps = 0;
      char *dup = strdup(v), *save = NULL;
      for (char *t = strtok_r(dup, ",", &save); t && cfg.nsteps < 16;
           t = strtok_r(NULL, ",", &save))
        cfg.steps[cfg.nsteps++] = atoi(t);
      free(dup);
    } else
      usage();
  }
  if (cfg.mode < 0)
    usage();
  signal(SIGPIPE, SIG_IGN);
  rng_state ^= lp_now_ns() ^ ((uint64_t)getpid() << 32);
  if (cfg.mode == M_STARTUP) {
    if (!cfg.cmd || !cfg.cmd[0])
      usage();
    return run_startup();
  }
  if (cfg.port <= 0)
    die("--port is required");
  if (cfg.warmup < 0)
    cfg.warmup = cfg.max_msgs > 0 ? 0 : 0.5;
  if (cfg.size < MIN_SIZE)
    cfg.size = MIN_SIZE;
  if (cfg.window < 1)
    cfg.window = 1;
  if (cfg.max_pending < 1)
    cfg.max_pending = 1;
  if (cfg.rooms < 1)
    cfg.rooms = 1;

  if (cfg.mode == M_ECHO || cfg.mode == M_HTTP)
    nconns = cfg.conns;
  else if (cfg.mode == M_BCAST)
    nconns = cfg.receivers + 1;
  else {
    if (cfg.pid <= 0)
      die("idle mode needs --pid");
    for (int i = 1; i < cfg.nsteps; i++)
      if (cfg.steps[i] < cfg.steps[i - 1])
        die("--steps must be increasing");
    nconns = cfg.steps[cfg.nsteps - 1];
  }
  if (nconns <= 0)
    die("nothing to do");
  long lim = lp_raise_nofile(nconns + 64);
  if (lim < nconns + 16) {
    fprintf(stderr, "lp_loadgen: RLIMIT_NOFILE is %ld, need %d\n", lim, nconns + 16);
    return 1;
  }

  conns = calloc((size_t)nconns, sizeof *conns);
  msgbuf = malloc((size_t)cfg.size);
  if (!conns || !msgbuf || lp_hist_init(&hist) != 0)
    die("out of memory");
  memset(msgbuf, 'x', (size_t)cfg.size);
  for (int i = 0; i < nconns; i++) {
    conns[i].id = i;
    conns[i].role = cfg.mode == M_ECHO    ? R_ECHO
                    : cfg.mode == M_HTTP  ? R_HTTP
                    : cfg.mode == M_IDLE  ? R_IDLE
                    : i == 0              ? R_SENDER
                                          : R_RECEIVER;
  }
  if (cfg.mode == M_BCAST) {
    ring = calloc(RING, sizeof *ring);
    if (!ring)
      die("out of memory");
    if (cfg.window > (int)RING / 2)
      cfg.window = RING / 2;
  }

  llhttp_settings_init(&http_settings);
  http_settings.on_header_field = on_h_field;
  http_settings.on_header_field_complete = on_h_field_done;
  http_settings.on_header_value = on_h_value;
  memset(&ws_callbacks, 0, sizeof ws_callbacks);
  ws_callbacks.recv_callback = ws_recv;
  ws_callbacks.send_callback = ws_send;
  ws_callbacks.genmask_callback = ws_genmask;
  ws_callbacks.on_msg_recv_callback = on_ws_msg;
  llhttp_settings_init(&resp_settings);
  resp_settings.on_message_complete = on_resp_complete;

  loop = uv_default_loop();
  uv_timer_init(loop, &phase_timer);
  uv_timer_init(loop, &tick_timer);
  uv_timer_init(loop, &warm_timer);
  uv_timer_init(loop, &settle_timer);
  uv_timer_init(loop, &hold_timer);
  static uv_timer_t global_timer;
  uv_timer_init(loop, &global_timer);
  uv_timer_start(&global_timer, on_global_timeout, (uint64_t)(cfg.timeout * 1000), 0);

  if (cfg.mode == M_ECHO) {
    open_until(nconns, echo_go);
  } else if (cfg.mode == M_HTTP) {
    open_until(nconns, http_go);
  } else if (cfg.mode == M_BCAST) {
    open_until(nconns, bcast_go);
  } else {
    rss_before = lp_read_rss_kb(cfg.pid);
    if (rss_before < 0)
      die("cannot read server RSS (bad --pid?)");
    idle_step();
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (cfg.mode == M_IDLE && step_idx >= cfg.nsteps) {
    long rss = lp_read_rss_kb(cfg.pid);
    printf("RESULT mode=idle_closed label=%s rss_before_kb=%ld rss_after_close_kb=%ld\n",
           cfg.label, rss_before, rss);
  }
  fflush(stdout);
  /* Sockets are closed by process exit; no need to tear 10k handles down. */
  _exit(0);
}
