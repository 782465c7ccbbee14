/* lp_rawserver: the "ceiling" reference for the luaparty benchmarks.
 *
 * Same building blocks as luaparty (libuv + llhttp + wslay, one loop
 * thread) but no Lua and no routing beyond what the benchmark needs:
 *   - HTTP GET (any path)        -> 200 {"ok":true,"room":"<path>"}, keep-alive
 *   - WebSocket upgrade (any path) -> every message is echoed to its sender,
 *     except on paths containing "/broadcast", where every message goes to
 *     every *other* socket on the same path (room = path without query).
 *
 * Usage: lp_rawserver [--port N] [--host 127.0.0.1]
 *   --port 0 picks a free port; "listening on http://HOST:PORT" goes to stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <llhttp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "lp_common.h"

#define MAX_URL 1024
#define MAX_OUT (1u << 20) /* backpressure point per connection */
#define MAX_MSG (1u << 20) /* max received message */

typedef struct room room;
typedef struct conn conn;

struct room {
  room *next; /* hash chain */
  char *path;
  conn **members;
  size_t n, cap;
};

struct conn {
  lp_io io; /* first member */
  llhttp_t parser;
  wslay_event_context_ptr ws;
  const uint8_t *in;
  size_t in_len;
  char url[MAX_URL];
  size_t url_len;
  char field[32];
  size_t field_len;
  int cur; /* header being read: 0 other, 1 key, 2 upgrade */
  char key[64];
  size_t key_len;
  int upgrade_ws;
  int close_after_write;
  room *room;
  size_t room_idx;
  conn *dirty_next;
  int dirty;
  /* the data message being received (wslay's no_buffering mode, as luaparty
   * uses it: a message that comes in one piece is used where wslay read it) */
  const uint8_t *whole;
  size_t whole_len;
  int has_whole, in_ctrl, fin, too_big;
  uint64_t frame_len, msg_len;
  uint8_t *parts;
  size_t parts_len;
};

static uv_loop_t *loop;
static llhttp_settings_t http_settings;
static struct wslay_event_callbacks ws_callbacks;
static char read_slab[65536];
static int slab_busy;
static conn *dirty_head;

#define NBUCKETS 4096
static room *rooms[NBUCKETS];

static void conn_close(conn *c);

/* ---- rooms ------------------------------------------------------------ */

static uint32_t hash_str(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)s[i];
    h *= 16777619u;
  }
  return h;
}

static room *room_get(const char *path, size_t n) {
  uint32_t b = hash_str(path, n) % NBUCKETS;
  for (room *r = rooms[b]; r; r = r->next)
    if (strlen(r->path) == n && memcmp(r->path, path, n) == 0)
      return r;
  room *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->path = malloc(n + 1);
  if (!r->path) {
    free(r);
    return NULL;
  }
  memcpy(r->path, path, n);
  r->path[n] = '\0';
  r->next = rooms[b];
  rooms[b] = r;
  return r;
}

static int room_join(room *r, conn *c) {
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 8;
    conn **m = realloc(r->members, nc * sizeof *m);
    if (!m)
      return -1;
    r->members = m;
    r->cap = nc;
  }
  c->room = r;
  c->room_idx = r->n;
  r->members[r->n++] = c;
  return 0;
}

static void room_leave(conn *c) {
  room *r = c->room;
  if (!r)
    return;
  conn *last = r->members[--r->n];
  r->members[c->room_idx] = last;
  last->room_idx = c->room_idx;
  c->room = NULL;
  /* Empty rooms are kept: the benchmark reuses a handful of paths. */
}

/* ---- output ----------------------------------------------------------- */

static void mark_dirty(conn *c) {
  if (c->dirty || c->io.closing)
    return;
  c->dirty = 1;
  c->dirty_next = dirty_head;
  dirty_head = c;
}

static void ws_pump(conn *c) {
  if (c->io.closing)
    return;
  if (c->ws) {
    if (wslay_event_send(c->ws) != 0) {
      conn_close(c);
      return;
    }
  }
  if (lp_io_flush(&c->io) < 0) {
    conn_close(c);
    return;
  }
  if (c->ws && !wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws) &&
      lp_io_pending(&c->io) == 0)
    conn_close(c);
  else if (c->close_after_write && lp_io_pending(&c->io) == 0)
    conn_close(c);
}

static void flush_dirty(void) {
  while (dirty_head) {
    conn *c = dirty_head;
    dirty_head = c->dirty_next;
    c->dirty = 0;
    ws_pump(c);
  }
}

static void on_drained(lp_io *io) {
  conn *c = (conn *)io;
  if (c->ws && wslay_event_send(c->ws) != 0) {
    conn_close(c);
    return;
  }
  if (lp_io_pending(io) == 0) {
    if (c->close_after_write ||
        (c->ws && !wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)))
      conn_close(c);
  }
}

/* ---- connection lifecycle --------------------------------------------- */

static void on_closed(uv_handle_t *h) {
  conn *c = (conn *)h;
  if (c->ws)
    wslay_event_context_free(c->ws);
  free(c->parts);
  lp_io_free(&c->io);
  free(c);
}

static void conn_close(conn *c) {
  if (c->io.closing)
    return;
  c->io.closing = 1;
  room_leave(c);
  uv_close((uv_handle_t *)&c->io.tcp, on_closed);
}

/* ---- wslay callbacks -------------------------------------------------- */

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
  if (lp_io_pending(&c->io) >= MAX_OUT) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (lp_io_append(&c->io, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

/* Data frames are encoded here once and appended to each receiver's output
 * as bytes, so a broadcast costs one header encode plus one memcpy per
 * receiver (the same trick a real server uses). wslay still parses input and
 * answers pings/closes; when it has output pending for a socket (a partial
 * frame, a queued control frame, backpressure) the message goes through
 * wslay's own queue instead, so frames never interleave. */
static size_t frame_header(uint8_t *h, uint8_t opcode, size_t len) {
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++)
    h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

static void send_frame(conn *o, const uint8_t *hdr, size_t hl,
                       const struct wslay_event_msg *m) {
  if (o->io.closing || wslay_event_get_close_sent(o->ws))
    return;
  if (!wslay_event_want_write(o->ws) && lp_io_pending(&o->io) < MAX_OUT) {
    if (lp_io_append(&o->io, hdr, hl) == 0 && lp_io_append(&o->io, m->msg, m->msg_length) == 0)
      mark_dirty(o);
    return;
  }
  if (wslay_event_queue_msg(o->ws, m) == 0)
    mark_dirty(o);
}

static void ws_on_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
                        void *ud) {
  conn *c = ud;
  c->in_ctrl = wslay_is_ctrl_frame(a->opcode);
  if (c->in_ctrl || c->too_big)
    return;
  if (a->opcode != WSLAY_CONTINUATION_FRAME)
    c->msg_len = 0;
  c->fin = a->fin;
  c->frame_len = a->payload_length;
  c->msg_len += a->payload_length;
  if (c->msg_len > MAX_MSG) { /* wslay checks one frame; a fragmented message is ours */
    c->too_big = 1;
    wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
    wslay_event_shutdown_read(ctx);
  }
}

static void ws_on_chunk(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_chunk_arg *a,
                        void *ud) {
  (void)ctx;
  conn *c = ud;
  if (c->in_ctrl || c->too_big)
    return;
  if (c->fin && c->msg_len == c->frame_len && a->data_length == c->frame_len) {
    c->whole = a->data;
    c->whole_len = a->data_length;
    c->has_whole = 1;
    return;
  }
  if (!a->data_length)
    return;
  uint8_t *p = realloc(c->parts, c->parts_len + a->data_length);
  if (!p)
    abort();
  memcpy(p + c->parts_len, a->data, a->data_length);
  c->parts = p;
  c->parts_len += a->data_length;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud) {
  (void)ctx;
  conn *c = ud;
  if (wslay_is_ctrl_frame(a->opcode) || c->too_big)
    return; /* ping/pong/close are handled by wslay */
  struct wslay_event_msg m = {a->opcode, c->has_whole ? c->whole : c->parts,
                              c->has_whole ? c->whole_len : c->parts_len};
  uint8_t hdr[10];
  size_t hl = frame_header(hdr, a->opcode, m.msg_length);
  if (c->room) {
    room *r = c->room;
    for (size_t i = 0; i < r->n; i++) {
      conn *o = r->members[i];
      if (o != c)
        send_frame(o, hdr, hl, &m);
    }
  } else {
    send_frame(c, hdr, hl, &m);
  }
  c->has_whole = 0;
  free(c->parts);
  c->parts = NULL;
  c->parts_len = 0;
}

/* ---- HTTP ------------------------------------------------------------- */

static int on_url(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  if (c->url_len + len >= MAX_URL)
    return -1;
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  lp_append_capped(c->field, &c->field_len, sizeof c->field, at, len);
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  conn *c = p->data;
  c->field[c->field_len] = '\0';
  if (strcasecmp(c->field, "sec-websocket-key") == 0) {
    c->cur = 1;
    c->key_len = 0;
  } else if (strcasecmp(c->field, "upgrade") == 0) {
    c->cur = 2;
  } else {
    c->cur = 0;
  }
  c->field_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  conn *c = p->data;
  if (c->cur == 1) {
    lp_append_capped(c->key, &c->key_len, sizeof c->key, at, len);
  } else if (c->cur == 2) {
    if (len >= 9 && strncasecmp(at, "websocket", 9) == 0)
      c->upgrade_ws = 1;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->url_len = 0;
  c->field_len = 0;
  c->key_len = 0;
  c->upgrade_ws = 0;
  c->cur = 0;
  return 0;
}

static size_t path_len(const conn *c) {
  const char *q = memchr(c->url, '?', c->url_len);
  return q ? (size_t)(q - c->url) : c->url_len;
}

/* The JSON answer's body. Not inlined: bench/instructions.sh reads its
 * count, the part of a request that luaparty's cjson.encode does instead. */
__attribute__((noinline)) static int json_body(const conn *c, char *body, size_t cap) {
  size_t pl = path_len(c);
  int bl = snprintf(body, cap, "{\"ok\":true,\"room\":\"");
  for (size_t i = 0; i < pl; i++) {
    char ch = c->url[i];
    body[bl++] = (ch == '"' || ch == '\\' || (unsigned char)ch < 0x20) ? '_' : ch;
  }
  bl += snprintf(body + bl, cap - (size_t)bl, "\"}");
  return bl;
}

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  if (p->upgrade)
    return 0; /* handled after llhttp_execute returns HPE_PAUSED_UPGRADE */
  char body[MAX_URL + 64];
  int bl = json_body(c, body, sizeof body);
  int keep = llhttp_should_keep_alive(p);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n%s\r\n",
                    bl, keep ? "" : "Connection: close\r\n");
  lp_io_append(&c->io, head, (size_t)hl);
  lp_io_append(&c->io, body, (size_t)bl);
  if (!keep)
    c->close_after_write = 1;
  mark_dirty(c);
  return 0;
}

static int start_ws(conn *c, const char *rest, size_t rest_len) {
  if (!c->upgrade_ws || c->key_len == 0) {
    static const char bad[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    lp_io_append(&c->io, bad, sizeof bad - 1);
    c->close_after_write = 1;
    mark_dirty(c);
    return 0;
  }
  char accept[29];
  lp_ws_accept(c->key, c->key_len, accept);
  char resp[256];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                   accept);
  lp_io_append(&c->io, resp, (size_t)n);
  if (wslay_event_context_server_init(&c->ws, &ws_callbacks, c) != 0)
    return -1;
  wslay_event_config_set_max_recv_msg_length(c->ws, MAX_MSG);
  wslay_event_config_set_no_buffering(c->ws, 1); /* see ws_on_start */
  size_t pl = path_len(c);
  const char *bc = "/broadcast";
  int is_bcast = 0;
  for (size_t i = 0; i + 10 <= pl; i++)
    if (memcmp(c->url + i, bc, 10) == 0) {
      is_bcast = 1;
      break;
    }
  if (is_bcast) {
    room *r = room_get(c->url, pl);
    if (!r || room_join(r, c) != 0)
      return -1;
  }
  mark_dirty(c);
  if (rest_len) {
    c->in = (const uint8_t *)rest;
    c->in_len = rest_len;
    if (wslay_event_recv(c->ws) != 0)
      return -1;
  }
  return 0;
}

/* ---- reading ---------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf) {
  (void)h;
  (void)sz;
  if (slab_busy) { /* never happens with one loop thread, but be safe */
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
    return;
  }
  slab_busy = 1;
  buf->base = read_slab;
  buf->len = sizeof read_slab;
}

static void release_buf(const uv_buf_t *buf) {
  if (buf->base == read_slab)
    slab_busy = 0;
  else
    free(buf->base);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = (conn *)s;
  if (nread < 0) {
    release_buf(buf);
    conn_close(c);
    flush_dirty();
    return;
  }
  if (nread == 0 || c->io.closing) {
    release_buf(buf);
    return;
  }
  if (c->ws) {
    c->in = (const uint8_t *)buf->base;
    c->in_len = (size_t)nread;
    if (wslay_event_recv(c->ws) != 0)
      conn_close(c);
    else
      mark_dirty(c);
  } else {
    llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (e == HPE_PAUSED_UPGRADE) {
      const char *pos = llhttp_get_error_pos(&c->parser);
      size_t used = (size_t)(pos - buf->base);
      if (start_ws(c, pos, (size_t)nread - used) != 0)
        conn_close(c);
    } else if (e != HPE_OK) {
      conn_close(c);
    }
  }
  c->in_len = 0;
  release_buf(buf);
  flush_dirty();
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  lp_io_init(&c->io);
  c->io.on_drained = on_drained;
  uv_tcp_init(loop, &c->io.tcp);
  if (uv_accept(server, (uv_stream_t *)&c->io.tcp) != 0) {
    c->io.closing = 1;
    uv_close((uv_handle_t *)&c->io.tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->io.tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &http_settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->io.tcp, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  exit(0);
}

int main(int argc, char **argv) {
  int port = 0;
  const char *host = "127.0.0.1";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      host = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--port N] [--host ADDR]\n", argv[0]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  lp_raise_nofile(65536);
  loop = uv_default_loop();

  llhttp_settings_init(&http_settings);
  http_settings.on_message_begin = on_message_begin;
  http_settings.on_url = on_url;
  http_settings.on_header_field = on_header_field;
  http_settings.on_header_field_complete = on_header_field_complete;
  http_settings.on_header_value = on_header_value;
  http_settings.on_message_complete = on_message_complete;

  memset(&ws_callbacks, 0, sizeof ws_callbacks);
  ws_callbacks.recv_callback = ws_recv;
  ws_callbacks.send_callback = ws_send;
  ws_callbacks.on_msg_recv_callback = ws_on_msg;
  ws_callbacks.on_frame_recv_start_callback = ws_on_start;
  ws_callbacks.on_frame_recv_chunk_callback = ws_on_chunk;

  static uv_tcp_t server;
  struct sockaddr_in addr;
  if (uv_ip4_addr(host, port, &addr) != 0) {
    fprintf(stderr, "bad host %s\n", host);
    return 2;
  }
  uv_tcp_init(loop, &server);
  int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
  if (r != 0) {
    fprintf(stderr, "listen failed: %s\n", uv_strerror(r));
    return 1;
  }
  struct sockaddr_in bound;
  int bl = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &bl);
  fprintf(stderr, "listening on http://%s:%d\n", host, ntohs(bound.sin_port));
  fflush(stderr);

  static uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  return uv_run(loop, UV_RUN_DEFAULT);
}
