/* lua_request.h - requests and responses crossing C <-> Lua (lua_request.c). */
#ifndef LP_LUA_REQUEST_H
#define LP_LUA_REQUEST_H

#include "lua_bind.h"

/* Its functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_request_functions[];
/* Requests and responses. A request pushed is a table with the Request
 * metatable (its methods, lazy headers). */
void lua_push_request(lua_State *L, const http_request *req);
/* Pushes the state's cjson module (package.loaded.cjson), opened on first use. */
void lua_push_cjson(lua_State *L);
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
