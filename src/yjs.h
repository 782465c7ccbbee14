/* yjs.h - Yjs document updates (format v1) and the y-protocols messages
 * around them (yjs.c). No Lua, no I/O: bytes in, bytes out.
 *
 * Every function checks its input completely (the way Yjs reads it, plus
 * valid UTF-8, valid JSON where Yjs parses JSON, no trailing bytes) and
 * returns -1 with a message in err on the first thing wrong, so a party can
 * refuse a bad message before it reaches storage or another client. */
#ifndef LP_YJS_H
#define LP_YJS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define YJS_ERR_MAX 160

/* An input update: bytes and length. */
typedef struct yjs_bytes {
    const uint8_t *data;
    size_t len;
} yjs_bytes;

/* yjs_merge flags */
enum {
    /* Content of deleted items is dropped (kept as its length), as a Y.Doc
     * with gc on stores it. */
    YJS_GC = 1,
    /* Neighbouring items of one client that a Y.Doc would store as one
     * (typed text, runs of deleted content) are written as one item. */
    YJS_COALESCE = 2,
};

/* Y.mergeUpdates: n updates into one (out is appended to). With flags 0 the
 * result is byte for byte what Yjs's mergeUpdates makes of updates Yjs
 * wrote; one update comes back unchanged, as in Yjs. */
int yjs_merge(const yjs_bytes *updates, size_t n, int flags, buf *out, char err[YJS_ERR_MAX]);

/* Y.diffUpdate(update, sv): what of update a peer with state vector sv lacks. */
int yjs_diff(const uint8_t *update, size_t len, const uint8_t *sv, size_t svlen, buf *out,
             char err[YJS_ERR_MAX]);

/* Y.encodeStateVectorFromUpdate. */
int yjs_state_vector(const uint8_t *update, size_t len, buf *out, char err[YJS_ERR_MAX]);

/* What of update is not already in doc (a merged update): its structs past
 * doc's state vector, its deletions not in doc's delete set. *empty is set
 * when that is nothing. */
int yjs_news(const uint8_t *update, size_t len, const uint8_t *doc, size_t doclen, buf *out, bool *empty,
             char err[YJS_ERR_MAX]);

/* Checks an update; 0 if well formed. *empty: no structs and no deletions. */
int yjs_check_update(const uint8_t *update, size_t len, bool *empty, char err[YJS_ERR_MAX]);

/* Checks a state vector (count, then client/clock pairs). */
int yjs_check_state_vector(const uint8_t *sv, size_t len, char err[YJS_ERR_MAX]);

/* ---- lib0 encoding, shared with the y-protocols envelope (lua_yjs.c) ---- */

/* A lib0 varuint (at most 2^53, as JavaScript reads it); 0, or -1 at a bad
 * or truncated number. *p advances. */
int yjs_read_varuint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/* lib0 varUint8Array: a varuint length and that many bytes. */
int yjs_read_varbytes(const uint8_t **p, const uint8_t *end, const uint8_t **data, size_t *len);
/* lib0 varUint8Array out (buf_put_varuint for a varuint). */
void yjs_put_varbytes(buf *b, const void *data, size_t len);

/* True if s is one JSON text (RFC 8259, surrounding whitespace allowed), as
 * JSON.parse accepts it. */
bool yjs_json_valid(const uint8_t *s, size_t len);

#endif
