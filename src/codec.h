/* codec.h - Lua values <-> bytes, for storage (and anything else that must
 * leave a lua_State: values never cross between rooms as Lua objects).
 *
 * Format: one tag byte per value. 'n' nil, 'f' false, 't' true,
 * 'd' number (8-byte IEEE-754 double, little endian: exact for integers up
 * to 2^53, -0, inf), 's' string (varint length + bytes, binary-safe),
 * 'T' table (varint pair count, then key, value, ...; pairs sorted by the
 * bytes of their encoded key, so equal values encode to equal bytes). */
#ifndef LP_CODEC_H
#define LP_CODEC_H

#include "buf.h"
#include <lua.h>

#define CODEC_MAX_DEPTH 1000

/* Encodes the value at idx into out. Never raises: returns 0, or -1 with a
 * message in err (e.g. "cannot store a value of type function at key
 * 'a.b'"). */
int codec_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen);
/* Pushes the decoded value. Returns 0, or -1 (nothing pushed) if the bytes
 * are not a valid encoding. */
int codec_decode(lua_State *L, const char *data, size_t len);

#endif
