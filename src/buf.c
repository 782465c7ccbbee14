/* buf.c - growable buffers and refcounted chunks. Allocation failure aborts:
 * the server cannot do anything sensible without memory for its own I/O
 * buffers (room Lua memory is capped separately, see sandbox.c). */
#include "buf.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b) { b->data = NULL; b->len = b->cap = 0; }

void buf_free(buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reserve(buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void buf_appendstr(buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *put_uint(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(p, tmp + sizeof tmp - n, (size_t)n);
    return p + n;
}


void buf_put_varuint(buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v > 0x7f) {
        tmp[n++] = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_append(b, tmp, n);
}

char *buf_steal(buf *b)
{
    buf_reserve(b, 0);
    b->data[b->len] = 0;
    char *s = b->data;
    buf_init(b);
    return s;
}

/* Small chunks (most WebSocket frames: one is made and freed per message
 * sent) come from the thread's spare blocks (thread_cache, util.c): ~200
 * instructions less per echoed message than malloc + free. */
enum { SMALL_CHUNK = 192 }; /* a 64-byte message's frame: 106 */

chunk *chunk_new(size_t size)
{
    bool small = sizeof(chunk) + size <= SMALL_CHUNK;
    chunk *c = small ? thread_cache_take(SMALL_CHUNK) : xmalloc(sizeof *c + size);
    c->small = small;
    c->refs = 1;
    c->off = 0;
    c->len = size;
    c->opcode = 0;
    c->payload = 0;
    return c;
}

chunk *chunk_from(const void *data, size_t len)
{
    chunk *c = chunk_new(len);
    if (len) memcpy(c->data, data, len);
    return c;
}

void chunk_unref(chunk *c)
{
    if (!c || --c->refs > 0) return;
    if (c->small) thread_cache_put(c, SMALL_CHUNK);
    else free(c);
}
