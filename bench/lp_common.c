#define _POSIX_C_SOURCE 200809L
#include "lp_common.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- writer ---------------------------------------------------------- */

void lp_io_init(lp_io *io) {
  memset(io, 0, sizeof *io);
}

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 256;
  while (n < need)
    n *= 2;
  char *p = realloc(*buf, n);
  if (!p)
    return -1;
  *buf = p;
  *cap = n;
  return 0;
}

int lp_io_append(lp_io *io, const void *data, size_t len) {
  if (grow(&io->out, &io->out_cap, io->out_len + len) != 0)
    return -1;
  memcpy(io->out + io->out_len, data, len);
  io->out_len += len;
  return 0;
}

size_t lp_io_pending(const lp_io *io) {
  return io->out_len + (io->writing ? io->wbuf_len : 0);
}

static void on_write(uv_write_t *req, int status) {
  lp_io *io = req->data;
  io->writing = 0;
  io->wbuf_len = 0;
  if (status < 0 || io->closing)
    return;
  if (io->on_drained)
    io->on_drained(io);
  if (!io->closing)
    lp_io_flush(io);
}

int lp_io_flush(lp_io *io) {
  if (io->writing || io->out_len == 0 || io->closing)
    return 0;
  uv_buf_t b = uv_buf_init(io->out, (unsigned)io->out_len);
  int n = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
  if (n == (int)io->out_len) {
    io->out_len = 0;
    if (io->out_cap > 65536) { /* don't keep a burst's buffer forever */
      free(io->out);
      io->out = NULL;
      io->out_cap = 0;
    }
    return 0;
  }
  if (n < 0 && n != UV_EAGAIN)
    return n;
  if (n < 0)
    n = 0;
  /* Swap: the unwritten tail becomes the in-flight buffer. */
  size_t rest = io->out_len - (size_t)n;
  if (n > 0)
    memmove(io->out, io->out + n, rest);
  char *tb = io->wbuf;
  size_t tc = io->wbuf_cap;
  io->wbuf = io->out;
  io->wbuf_cap = io->out_cap;
  io->wbuf_len = rest;
  io->out = tb;
  io->out_cap = tc;
  io->out_len = 0;
  io->wreq.data = io;
  b = uv_buf_init(io->wbuf, (unsigned)rest);
  int r = uv_write(&io->wreq, (uv_stream_t *)&io->tcp, &b, 1, on_write);
  if (r == 0)
    io->writing = 1;
  return r;
}

void lp_io_free(lp_io *io) {
  free(io->out);
  free(io->wbuf);
  io->out = io->wbuf = NULL;
  io->out_cap = io->wbuf_cap = io->out_len = io->wbuf_len = 0;
}

/* ---- misc ------------------------------------------------------------ */

uint64_t lp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long lp_raise_nofile(long want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return -1;
  if ((long)rl.rlim_cur >= want)
    return (long)rl.rlim_cur;
  if ((long)rl.rlim_max < want) {
    struct rlimit r2 = {(rlim_t)want, (rlim_t)want};
    if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
      return want;
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return (long)rl.rlim_cur;
}

void lp_ws_accept(const char *key, size_t key_len, char out[29]) {
  unsigned char buf[128];
  unsigned char md[SHA_DIGEST_LENGTH];
  size_t gl = strlen(LP_GUID);
  if (key_len > sizeof buf - gl)
    key_len = sizeof buf - gl;
  memcpy(buf, key, key_len);
  memcpy(buf + key_len, LP_GUID, gl);
  SHA1(buf, key_len + gl, md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
  out[28] = '\0';
}

long lp_read_rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

long long lp_read_cpu_us(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* comm may contain spaces: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p)
    return -1;
  p += 2; /* field 3 (state) */
  unsigned long long ut = 0, st = 0;
  for (int field = 3; field <= 15 && *p; field++) {
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (field == 14)
      ut = v;
    if (field == 15)
      st = v;
    p = strchr(p, ' ');
    if (!p)
      break;
    p++;
  }
  long tck = sysconf(_SC_CLK_TCK);
  if (tck <= 0)
    tck = 100;
  return (long long)((ut + st) * 1000000ull / (unsigned long long)tck);
}

/* ---- histogram ------------------------------------------------------- */

#define H_EXACT 2048u
#define H_SUB 1024u
#define H_OCT 21u /* 2^11 .. 2^31 */

int lp_hist_init(lp_hist *h) {
  h->nb = H_EXACT + H_OCT * H_SUB;
  h->b = calloc(h->nb, sizeof *h->b);
  h->count = 0;
  h->max = 0;
  return h->b ? 0 : -1;
}

static size_t h_index(uint64_t v) {
  if (v < H_EXACT)
    return (size_t)v;
  if (v >= (1ull << 31))
    v = (1ull << 31) - 1;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 11 */
  return H_EXACT + (e - 11u) * H_SUB + (size_t)((v >> (e - 10u)) - H_SUB);
}

static uint64_t h_value(size_t i) {
  if (i < H_EXACT)
    return i;
  size_t k = i - H_EXACT;
  unsigned e = (unsigned)(k / H_SUB) + 11u;
  uint64_t sub = k % H_SUB + H_SUB;
  return sub << (e - 10u);
}

void lp_hist_add(lp_hist *h, uint64_t us) {
  h->b[h_index(us)]++;
  h->count++;
  if (us > h->max)
    h->max = us;
}

uint64_t lp_hist_pct(const lp_hist *h, double pct) {
  if (h->count == 0)
    return 0;
  uint64_t want = (uint64_t)((double)h->count * pct / 100.0);
  if (want >= h->count)
    want = h->count - 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < h->nb; i++) {
    seen += h->b[i];
    if (seen > want)
      return h_value(i);
  }
  return h->max;
}

void lp_hist_free(lp_hist *h) {
  free(h->b);
  h->b = NULL;
}

ssize_t lp_ws_recv_from(wslay_event_context_ptr ctx, const uint8_t **in, size_t *in_len, uint8_t *buf,
                        size_t len) {
  if (*in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < *in_len ? len : *in_len;
  memcpy(buf, *in, n);
  *in += n;
  *in_len -= n;
  return (ssize_t)n;
}

void lp_append_capped(char *dst, size_t *len, size_t cap, const char *at, size_t n) {
  if (*len + n > cap - 1)
    n = cap - 1 - *len;
  memcpy(dst + *len, at, n);
  *len += n;
}
