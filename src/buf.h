/* buf.h - a growable byte buffer, and a refcounted immutable chunk used for
 * everything that is written to a socket (so one broadcast frame can be
 * queued on a thousand connections without a copy). */
#ifndef LP_BUF_H
#define LP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *data, size_t len);
void buf_appendstr(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decimal number into p (room for 20 bytes), without printf (the hot
 * path writes one per response); returns the end. */
char *put_uint(char *p, uint64_t v);
/* v as an unsigned LEB128 varint (7 bits a byte, low first): the storage
 * codec's and Yjs's lib0 encoding. */
void buf_put_varuint(buf *b, uint64_t v);
/* Gives the buffer's memory to the caller (NUL-terminated) and resets b. */
char *buf_steal(buf *b);

/* An immutable, refcounted byte chunk. `off` lets a WebSocket frame keep its
 * header room in front of the payload (see ws_msg_new). */
typedef struct chunk {
    int refs;
    uint32_t off;       /* first byte to write */
    size_t len;         /* bytes to write from off */
    uint8_t opcode;     /* WebSocket opcode of a message chunk, 0 for raw bytes */
    bool small;         /* of the small size class (buf.c: a per-thread free list) */
    uint32_t payload;   /* offset of the message payload (WebSocket messages) */
    uint8_t data[];
} chunk;

chunk *chunk_new(size_t size);
chunk *chunk_from(const void *data, size_t len);
static inline chunk *chunk_ref(chunk *c) { c->refs++; return c; }
void chunk_unref(chunk *c);
static inline const uint8_t *chunk_bytes(const chunk *c) { return c->data + c->off; }
static inline const uint8_t *chunk_payload(const chunk *c) { return c->data + c->payload; }
static inline size_t chunk_payload_len(const chunk *c) { return c->len - (c->payload - c->off); }

#endif
