/* lua_storage.h - room.storage (lua_storage.c). */
#ifndef LP_LUA_STORAGE_H
#define LP_LUA_STORAGE_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_storage_register(lua_State *L);

/* What room.storage and `luaparty test`'s t.storage() share (they raise
 * Lua errors saying what failed): */
struct storage;
struct storage_range;
/* Pushes the value stored under key in (party, room), or nil. */
void lua_storage_push_value(lua_State *L, struct storage *s, const char *party_name, const char *room_id,
                            const char *key, size_t klen);
/* Encodes the value at idx into out (initialised by the caller); raises,
 * having freed out, if it cannot be stored or is over max bytes. */
void lua_storage_encode(lua_State *L, int idx, const char *key, size_t max, buf *out);
/* storage:list's options table at idx (nil: everything) into range; its
 * strings live as long as the table. */
void lua_storage_check_range(lua_State *L, int idx, struct storage_range *range);
/* Pushes the entries of (party, room) in range: an array of {key=, value=} in key order. */
void lua_storage_push_list(lua_State *L, struct storage *s, const char *party_name, const char *room_id,
                           const struct storage_range *range);

#endif
