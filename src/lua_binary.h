/* lua_binary.h - Binary values: binary WebSocket messages in Lua (lua_binary.c). */
#ifndef LP_LUA_BINARY_H
#define LP_LUA_BINARY_H

#include "lua_bind.h"

/* Registers its core functions into the table on top of the stack. */
void lua_binary_register(lua_State *L);
/* Binary: pushes a message chunk as a string (text) or Binary (binary). */
void lua_push_message(lua_State *L, const chunk *msg);
void lua_push_message_bytes(lua_State *L, int opcode, const void *data, size_t len);
void lua_push_binary(lua_State *L, const void *data, size_t len);
/* Reads a string or Binary at idx; sets *opcode to 1 or 2. Raises otherwise. */
const char *lua_check_message(lua_State *L, int idx, size_t *len, int *opcode);
/* lua_check_message for what becomes a WebSocket frame (conn:send,
 * room:broadcast, socket:send): a string that is not valid UTF-8 raises an
 * error at the party's line pointing at luaparty.binary, since a text frame
 * must be UTF-8 and a client closes the socket (1007) on one that is not. */
const char *lua_check_frame(lua_State *L, int idx, size_t *len, int *opcode);
/* For a close frame's reason, which must be UTF-8 too. */
void lua_check_utf8_reason(lua_State *L, const char *reason, size_t len);

#endif
