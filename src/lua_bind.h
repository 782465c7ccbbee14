/* lua_bind.h - the C side of the Lua API, one file per bound object:
 *   lua_conn.c     connections (send, close, broadcast)
 *   lua_binary.c   Binary values (binary WebSocket messages)
 *   lua_request.c  requests and responses crossing C <-> Lua
 *   lua_storage.c  room.storage
 *   lua_party.c    room.context.parties: cross-party fetch
 *   lua_pipe.c     room.context.parties: cross-party socket (a pipe)
 *   lua_socket.c   the socket object pipes and outbound WebSockets share
 *   lua_fetch.c    luaparty.fetch: outbound HTTP(S) (fetch.c)
 *   lua_wsclient.c luaparty.connect: outbound WebSockets (wsclient.c)
 * All of them are functions of the private module "luaparty.core", which the
 * Lua runtime (lua/luaparty/runtime.lua) wraps into PartyKit's API. */
#ifndef LP_LUA_BIND_H
#define LP_LUA_BIND_H

#include "buf.h"
#include "conn.h"
#include "http.h"
#include <lua.h>
#include <lauxlib.h>

struct room;

/* lua-cjson (Debian's liblua5.1-cjson.a), linked statically. */
int luaopen_cjson(lua_State *L);

/* Registers every core function into the table on top of the stack. */
void lua_conn_register(lua_State *L);
void lua_binary_register(lua_State *L);
void lua_storage_register(lua_State *L);
void lua_party_register(lua_State *L);
void lua_pipe_register(lua_State *L);
void lua_socket_register(lua_State *L);
void lua_request_register(lua_State *L);
void lua_fetch_register(lua_State *L);
void lua_wsclient_register(lua_State *L);

/* Connections: join creates the handle and pushes (handle, id, uri);
 * returns the number of values pushed. push pushes the runtime's object
 * for the connection (core.adopt), or nil once it left. */
int lua_conn_join(lua_State *L, struct room *r, lp_conn *c);
void lua_conn_push(lua_State *L, lp_conn *c);
void lua_conn_leave(lua_State *L, struct room *r, lp_conn *c);
/* Reads an optional (code, reason) pair at idx, idx+1 for a close: 1000 or
 * 3000-4999, at most 123 bytes of reason. Raises otherwise. */
const char *lua_check_close(lua_State *L, int idx, int *code, size_t *len);

/* Binary: pushes a message chunk as a string (text) or Binary (binary). */
void lua_push_message(lua_State *L, const chunk *msg);
void lua_push_message_bytes(lua_State *L, int opcode, const void *data, size_t len);
void lua_push_binary(lua_State *L, const void *data, size_t len);
/* Reads a string or Binary at idx; sets *opcode to 1 or 2. Raises otherwise. */
const char *lua_check_message(lua_State *L, int idx, size_t *len, int *opcode);

/* Parties, for :get(id):fetch() and :socket(): the party named at idx and
 * a room id at idx (1-256 bytes, no NUL), raising otherwise; the path a
 * request to that room gets ("/parties/<party>/<id><path>", caller frees). */
const struct party *lua_check_party(lua_State *L, int idx);
const char *lua_check_room_id(lua_State *L, int idx);
char *lua_party_target(const struct party *p, const char *id, const char *path);

/* Requests and responses. */
void lua_push_request(lua_State *L, const http_request *req);
void lua_push_headers(lua_State *L, const http_headers *h);
/* What a suspended fetch resumes with: nil, err; or status, headers, body.
 * Returns the number of values pushed. */
int lua_push_fetch_result(lua_State *L, const char *err, int status, const http_headers *h, const buf *body);
/* Reads (status, headers, body) at idx..idx+2 as returned by the runtime;
 * headers is a table, or a string: the content type alone. Returns NULL with
 * *err set (caller frees) if they are malformed. */
http_response *lua_to_response(lua_State *L, int idx, char **err);
/* Copies a Lua table of headers at idx into h; raises on bad names/values. */
void lua_check_headers(lua_State *L, int idx, http_headers *h);
/* The same without raising: returns what is wrong (a static string) or NULL. */
const char *lua_collect_headers(lua_State *L, int idx, http_headers *h);

#endif
