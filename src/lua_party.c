/* lua_party.c - room.context.parties.<name>:get(id):fetch(), and the
 * checks of a party, room id and path that :socket() (lua_pipe.c) shares.
 *
 * In-process: no network hop, no HTTP bytes. fetch queues an onRequest
 * event in the target room and suspends the calling coroutine; the
 * target's response (released by its output gate) resumes it.
 * Values cross only as bytes, so the two rooms never share a Lua heap. */
#include "lua_party.h"
#include "lua_binary.h"
#include "lua_request.h"
#include "calls.h"
#include "room.h"
#include "worker.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>


/* The suspended task of the caller, or a Lua error if C cannot resume it. */
static struct task *suspendable_task(lua_State *L, room *r, const char *what)
{
    struct task *t = room_current_task(r);
    if (!t || room_task_thread(t) != L)
        luaL_error(L, "%s must be called from a party callback (not at load time, and not inside a "
                      "coroutine the script created itself)", what);
    if (r->in_transaction) luaL_error(L, "%s cannot be called inside storage:transaction()", what);
    return t;
}

const party *lua_check_party(lua_State *L, int idx)
{
    room *r = room_from_state(L);
    size_t len;
    const char *name = luaL_checklstring(L, idx, &len);
    const party *p = config_party(r->owner->cfg, name, len);
    if (!p) luaL_error(L, "unknown party '%s'", name);
    return p;
}

const char *lua_check_room_id(lua_State *L, int idx)
{
    size_t len;
    const char *id = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, len > 0 && len <= 256 && strlen(id) == len, idx, "room id must be 1-256 bytes, no NUL");
    return id;
}

char *lua_party_target(const party *p, const char *id, const char *path)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "/parties/%s/%s%s", p->name, id, path);
    return buf_steal(&b);
}

/* ---- fetch ---- */

typedef struct fetch_call {
    exchange ex;
    completion done;
    room *caller;
    struct task *task;
    http_response *res;
    char *err;             /* the target room could not start */
} fetch_call;

static void fetch_respond(exchange *ex, http_response *res)
{
    fetch_call *fc = (fetch_call *)ex;
    fc->res = res;
    room_resume(fc->caller, fc->task, &fc->done);
}

static void fetch_fail(exchange *ex, const char *err)
{
    fetch_call *fc = (fetch_call *)ex;
    fc->err = xstrdup(err);
    room_resume(fc->caller, fc->task, &fc->done);
}

static int fetch_push(completion *c, lua_State *co)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    if (fc->err) return lua_push_fetch_result(co, fc->err, 0, NULL, NULL);
    return lua_push_fetch_result(co, NULL, fc->res->status, &fc->res->headers, &fc->res->body);
}

static void fetch_destroy(completion *c)
{
    fetch_call *fc = (fetch_call *)((char *)c - offsetof(fetch_call, done));
    http_response_free(fc->res);
    free(fc->err);
    room_unref(fc->caller);
    free(fc);
}

/* core.fetch(party, id, method, path, headers, body) -> status, headers, body
 * or nil, error. Suspends the calling coroutine until the answer, which may
 * come from a room on another worker. */
static int l_fetch(lua_State *L)
{
    room *r = room_from_state(L);
    struct task *t = suspendable_task(L, r, "fetch");
    const party *p = lua_check_party(L, 1);
    const char *id = lua_check_room_id(L, 2);
    const char *method = luaL_optstring(L, 3, "GET");
    const char *path = luaL_optstring(L, 4, "");
    luaL_argcheck(L, !*path || *path == '/' || *path == '?', 4, "path must start with '/' or '?'");
    size_t blen = 0;
    const char *body = NULL;
    if (!lua_isnoneornil(L, 6)) {
        int opcode;
        body = lua_check_message(L, 6, &blen, &opcode);
    }
    for (const char *m = method; *m; m++)
        luaL_argcheck(L, isupper((unsigned char)*m) || *m == '-', 3, "method must be an uppercase token");

    http_headers headers = {0};
    lua_check_headers(L, 5, &headers);
    char *target = lua_party_target(p, id, path);
    http_request *req = http_request_new(method, target);
    free(target);
    req->headers = headers;
    http_request_set_host(req, r->owner->authority, strlen(r->owner->authority));
    if (body) buf_append(&req->body, body, blen);

    fetch_call *fc = xcalloc(1, sizeof *fc);
    fc->ex.respond = fetch_respond;
    fc->ex.fail = fetch_fail;
    fc->done.push = fetch_push;
    fc->done.destroy = fetch_destroy;
    fc->caller = r;
    r->refs++;
    fc->task = t;
    room_task_suspend(t);
    r->owner->calls->request(r->owner, p, id, req, &fc->ex);
    return lua_yield(L, 0);
}

const luaL_Reg lua_party_functions[] = {{"fetch", l_fetch}, {NULL, NULL}};
