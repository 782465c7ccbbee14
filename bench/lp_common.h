/* Shared helpers for the bench programs (lp_loadgen, lp_rawserver).
 *
 * lp_io is a TCP stream with a two-buffer writer: bytes are appended to
 * `out`; lp_io_flush() tries a zero-copy uv_try_write first and hands the
 * rest to one uv_write from the second buffer. While that write is in
 * flight, new bytes accumulate in `out`, so there is at most one uv_write
 * per connection and no malloc per message. */
#ifndef LP_COMMON_H
#define LP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <wslay/wslay.h>

#define LP_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct lp_io lp_io;
struct lp_io {
  uv_tcp_t tcp; /* first member: (uv_handle_t *)io works */
  uv_write_t wreq;
  char *out;
  size_t out_len, out_cap;
  char *wbuf;
  size_t wbuf_len, wbuf_cap;
  int writing;
  int closing;
  /* Called after a write finished successfully (before the next flush). */
  void (*on_drained)(lp_io *io);
};

void lp_io_init(lp_io *io);
int lp_io_append(lp_io *io, const void *data, size_t len);
/* Writes what is pending. Returns 0, or a negative libuv error. */
int lp_io_flush(lp_io *io);
size_t lp_io_pending(const lp_io *io);
/* Releases the buffers (call from the close callback). */
void lp_io_free(lp_io *io);

uint64_t lp_now_ns(void);

/* Appends at[0..n) to dst (holding *len bytes of cap), cut so that a NUL
 * still fits: an llhttp field callback may come in pieces. */
void lp_append_capped(char *dst, size_t *len, size_t cap, const char *at, size_t n);

/* Raises RLIMIT_NOFILE to at least `want` if it can (hard limit too when
 * privileged). Returns the resulting soft limit. */
long lp_raise_nofile(long want);

/* out must hold 29 bytes: base64(SHA-1(key + GUID)) + NUL. */
void lp_ws_accept(const char *key, size_t key_len, char out[29]);
/* The body of a wslay recv callback that reads from (*in, *in_len), set by
 * the caller before wslay_event_recv; WOULDBLOCK when they are used up. */
ssize_t lp_ws_recv_from(wslay_event_context_ptr ctx, const uint8_t **in, size_t *in_len, uint8_t *buf,
                        size_t len);

/* Server resident set size in KiB from /proc/<pid>/status, -1 if gone. */
long lp_read_rss_kb(int pid);
/* utime+stime of a process in microseconds from /proc/<pid>/stat, -1 if gone. */
long long lp_read_cpu_us(int pid);

/* Latency histogram in microseconds: exact below 2048 µs, then 1024
 * sub-buckets per power of two (0.1% resolution), capped at 2^31 µs. */
typedef struct lp_hist {
  uint64_t *b;
  size_t nb;
  uint64_t count;
  uint64_t max;
} lp_hist;
int lp_hist_init(lp_hist *h);
void lp_hist_add(lp_hist *h, uint64_t us);
uint64_t lp_hist_pct(const lp_hist *h, double pct);
void lp_hist_free(lp_hist *h);

#endif
