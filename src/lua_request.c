/* lua_request.c - HTTP requests and responses crossing between C and Lua.
 *
 * A request becomes a table {method, url, body, _headers} with the Request
 * metatable (set here, for every caller): its methods (text, query, json),
 * and req.headers made from _headers when the party first reads it. A
 * response comes back as three values (status, headers, body), normalized
 * by lua_room.c or the runtime. */
#include "lua_request.h"
#include "util.h"
#include "router.h"

#include <stdlib.h>
#include <string.h>

/* headers[name] = value on the table at -3 (name at -2, value at -1, both
 * popped). The name is interned once for the lookup and the store.
 * Repeated headers are joined, as the Fetch API's Headers does. */
static void set_header(lua_State *L)
{
    lua_pushvalue(L, -2);
    lua_rawget(L, -4);
    if (lua_isstring(L, -1)) {
        lua_insert(L, -2);
        lua_pushliteral(L, ", ");
        lua_insert(L, -2);
        lua_concat(L, 3);
    } else {
        lua_pop(L, 1);
    }
    lua_rawset(L, -3);
}

void lua_push_headers(lua_State *L, const http_headers *h)
{
    lua_createtable(L, 0, (int)h->n);
    for (size_t i = 0; i < h->n; i++) {
        lua_pushstring(L, h->items[i].name);
        lua_pushstring(L, h->items[i].value);
        set_header(L);
    }
}

/* A request's headers as one string of "name\0value\0" pairs: most
 * onRequest and onConnect handlers never read req.headers, and making each
 * header two Lua strings and a table slot costs ~250 instructions, for
 * every header of every request (a browser sends ten or more). */
static void push_header_blob(lua_State *L, const http_headers *h)
{
    size_t size = 0;
    for (size_t i = 0; i < h->n; i++) /* name and value are one allocation (http.c) */
        size += (size_t)(h->items[i].value - h->items[i].name) + strlen(h->items[i].value) + 1;
    char stack[2048];
    char *blob = size <= sizeof stack ? stack : xmalloc(size);
    char *p = blob;
    for (size_t i = 0; i < h->n; i++) {
        size_t n = (size_t)(h->items[i].value - h->items[i].name) + strlen(h->items[i].value) + 1;
        memcpy(p, h->items[i].name, n);
        p += n;
    }
    lua_pushlstring(L, blob, size);
    if (blob != stack) free(blob);
}

/* Pushes the headers table of a request's _headers blob at idx (an empty
 * table for nil). Stops at the first incomplete pair. */
static void push_headers_of_blob(lua_State *L, int idx)
{
    size_t size = 0;
    const char *p = luaL_optlstring(L, idx, "", &size), *end = p + size;
    lua_newtable(L);
    while (p < end) {
        const char *name_end = memchr(p, 0, (size_t)(end - p));
        if (!name_end) break;
        const char *value = name_end + 1;
        const char *value_end = value < end ? memchr(value, 0, (size_t)(end - value)) : NULL;
        if (!value_end) break;
        lua_pushlstring(L, p, (size_t)(name_end - p));
        lua_pushlstring(L, value, (size_t)(value_end - value));
        set_header(L);
        p = value_end + 1;
    }
}

int lua_push_fetch_result(lua_State *L, const char *err, int status, const http_headers *h, const buf *body)
{
    if (err) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushinteger(L, status);
    lua_push_headers(L, h);
    lua_pushlstring(L, body->data ? body->data : "", body->len);
    return 3;
}

/* luaparty.queryParam(url, name) -> the URL-decoded value, "" for a bare
 * name, or nil: the same parsing the server uses for _pk. */
static int l_query_param(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t cap = strlen(url) + 1;
    char *out = lua_newuserdata(L, cap); /* GC-owned: a Lua error cannot leak it */
    if (!query_param(url, name, out, cap)) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, out);
    return 1;
}

void lua_push_cjson(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "cjson");
    if (lua_istable(L, -1)) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    /* lua-cjson keeps a 1 KB encode buffer per state by default, malloc'ed
     * outside the room's heap; a buffer per encode instead (glibc hands the
     * same block back) saves each room that uses JSON that kilobyte. */
    lua_getfield(L, -1, "encode_keep_buffer");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "cjson");
    lua_remove(L, -2);
}

/* ---- the Request metatable ---- */

#define REQUEST_MT "luaparty.request"

/* req:text() -> the body */
static int m_text(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "body");
    return 1;
}

/* req:query(name) -> the URL-decoded query parameter, or nil */
static int m_query(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "url");
    lua_replace(L, 1);
    return l_query_param(L);
}

/* req:json() -> the body decoded; raises at the caller's line if it is not JSON */
static int m_json(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_push_cjson(L);
    lua_getfield(L, -1, "decode");
    lua_getfield(L, 1, "body");
    if (lua_pcall(L, 1, 1, 0) == 0) return 1;
    const char *why = lua_tostring(L, -1);
    luaL_where(L, 2); /* 1 is this function, 2 its caller */
    lua_pushfstring(L, "request body is not valid JSON: %s", why ? why : "(not a string)");
    lua_concat(L, 2);
    return lua_error(L);
}

/* __index(req, key): req.headers, made from _headers the first time it is
 * read (most handlers never read it, and each header made into a table
 * entry costs every request), or a method: a field of the metatable
 * (upvalue 1), as in the Lua class idiom. */
static int request_index(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "headers") == 0) {
        lua_pushliteral(L, "_headers");
        lua_rawget(L, 1);
        push_headers_of_blob(L, lua_gettop(L));
        lua_pushliteral(L, "headers");
        lua_pushvalue(L, -2);
        lua_rawset(L, 1);
        lua_pushliteral(L, "_headers");
        lua_pushnil(L);
        lua_rawset(L, 1);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static void request_metatable(lua_State *L)
{
    static const luaL_Reg methods[] = {{"text", m_text}, {"query", m_query}, {"json", m_json}, {NULL, NULL}};
    luaL_register(L, NULL, methods);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, request_index, 1);
    lua_setfield(L, -2, "__index");
}

/* core.request_mt() -> the Request metatable (static hooks compare with it) */
static int l_request_mt(lua_State *L)
{
    lua_bind_metatable(L, REQUEST_MT, request_metatable);
    return 1;
}

const luaL_Reg lua_request_functions[] = {
    {"queryParam", l_query_param}, {"request_mt", l_request_mt}, {NULL, NULL}};

void lua_push_request(lua_State *L, const http_request *req)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    /* http_request_url without its malloc: this runs for every request,
     * and a lua_pushfstring costs as much again as this copy */
    const char *host = http_request_host(req);
    size_t hl = strlen(host), tl = strlen(req->target);
    char url[512];
    if (7 + hl + tl <= sizeof url) {
        memcpy(url, "http://", 7);
        memcpy(url + 7, host, hl);
        memcpy(url + 7 + hl, req->target, tl);
        lua_pushlstring(L, url, 7 + hl + tl);
    } else {
        lua_pushfstring(L, "http://%s%s", host, req->target);
    }
    lua_setfield(L, -2, "url");
    push_header_blob(L, &req->headers);
    lua_setfield(L, -2, "_headers");
    lua_pushlstring(L, req->body.data ? req->body.data : "", req->body.len);
    lua_setfield(L, -2, "body");
    lua_bind_metatable(L, REQUEST_MT, request_metatable);
    lua_setmetatable(L, -2);
}

/* RFC 9110 tchar; letters and digits first, which is nearly every name. */
static bool tchar(unsigned char ch)
{
    unsigned char lower = ch | 0x20;
    if ((lower >= 'a' && lower <= 'z') || (ch >= '0' && ch <= '9')) return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch);
}

static bool token_ok(const char *s, size_t n)
{
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i])) return false;
    return true;
}

/* Adds one header a party gave, if it is valid: returns what is wrong, or NULL. */
static const char *add_checked(http_headers *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (!token_ok(name, nlen)) return "invalid header name";
    if (!value || !http_header_value_ok(value, vlen)) return "header values must be strings without CR, LF or NUL";
    http_headers_add(h, name, nlen, value, vlen);
    return NULL;
}

const char *lua_collect_headers(lua_State *L, int idx, http_headers *h)
{
    if (lua_isnoneornil(L, idx)) return NULL;
    if (!lua_istable(L, idx)) return "headers must be a table of name = value";
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t nlen, vlen = 0; /* read only with a value */
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return "header names must be strings";
        }
        const char *name = lua_tolstring(L, -2, &nlen);
        const char *value = lua_isstring(L, -1) ? lua_tolstring(L, -1, &vlen) : NULL;
        const char *bad = add_checked(h, name, nlen, value, vlen);
        if (bad) {
            lua_pop(L, 2);
            return bad;
        }
        lua_pop(L, 1);
    }
    return NULL;
}

void lua_check_headers(lua_State *L, int idx, http_headers *h)
{
    const char *err = lua_collect_headers(L, idx, h);
    if (err) {
        http_headers_free(h);
        luaL_error(L, "%s", err);
    }
}

http_response *lua_to_response(lua_State *L, int idx, char **err)
{
    int status = (int)lua_tointeger(L, idx);
    if (status < 100 || status > 999) {
        *err = xstrdup("onRequest returned a response with an invalid status");
        return NULL;
    }
    http_response *res = http_response_new(status, NULL, NULL, 0);
    const char *e;
    if (lua_type(L, idx + 1) == LUA_TSTRING) { /* the content type alone (runtime.lua: normalize) */
        size_t n;
        const char *type = lua_tolstring(L, idx + 1, &n);
        e = add_checked(&res->headers, "content-type", 12, type, n);
    } else {
        e = lua_collect_headers(L, idx + 1, &res->headers);
    }
    if (e) {
        buf b;
        buf_init(&b);
        buf_printf(&b, "onRequest returned a bad response: %s", e);
        *err = buf_steal(&b);
        http_response_free(res);
        return NULL;
    }
    size_t len = 0;
    const char *body = lua_tolstring(L, idx + 2, &len);
    if (body) buf_append(&res->body, body, len);
    return res;
}
