/* lua_fetch.c - luaparty.fetch (and the global fetch): outbound HTTP(S)
 * as party code sees it.
 *
 * core.http_fetch checks its arguments, suspends the calling coroutine
 * (like cross-party fetch, lua_party.c) and starts a fetch (fetch.c); the
 * fetch's callback resumes the coroutine with (status, headers, body) or
 * (nil, error). */
#include "fetch.h"
#include "lua_fetch.h"
#include "lua_binary.h"
#include "lua_request.h"
#include "room.h"
#include "worker.h"

#include <ctype.h>
#include <stdlib.h>

/* One core.http_fetch in flight, until the room resumed its caller. */
typedef struct lua_fetch {
    completion done;
    room *caller;          /* holds a reference until destroyed */
    struct task *task;
    fetch_result res;
} lua_fetch;

static int fetch_push(completion *done, lua_State *co)
{
    lua_fetch *f = (lua_fetch *)done;
    return lua_push_fetch_result(co, f->res.error, f->res.status, &f->res.headers, &f->res.body);
}

static void fetch_destroy(completion *done)
{
    lua_fetch *f = (lua_fetch *)done;
    fetch_result_free(&f->res);
    room_unref(f->caller);
    free(f);
}

static void fetch_done(void *ud, fetch_result *res)
{
    lua_fetch *f = ud;
    f->res = *res;
    room_resume(f->caller, f->task, &f->done);
}

/* core.http_fetch(url, method, headers, body, timeout_ms) -> status,
 * headers, body | nil, error. Suspends the calling coroutine. */
static int l_http_fetch(lua_State *L)
{
    room *r = room_from_state(L);
    const char *target = luaL_checkstring(L, 1);
    const char *method = luaL_optstring(L, 2, "GET");
    for (const char *m = method; *m; m++)
        luaL_argcheck(L, isupper((unsigned char)*m) || *m == '-', 2, "method must be an uppercase token");
    size_t blen = 0;
    const char *body = NULL;
    if (!lua_isnoneornil(L, 4)) {
        int opcode;
        body = lua_check_message(L, 4, &blen, &opcode);
    }
    lua_Number timeout = luaL_optnumber(L, 5, (lua_Number)r->owner->cfg->fetch_timeout_ms);
    struct task *t = room_current_task(r);
    if (!t || room_task_thread(t) != L)
        return luaL_error(L, "fetch must be called from a party callback (not at load time, and not inside a "
                             "coroutine the script created itself)");
    if (r->in_transaction) return luaL_error(L, "fetch cannot be called inside storage:transaction()");
    http_headers headers = {0};
    lua_check_headers(L, 3, &headers); /* may raise: nothing allocated yet */
    url u;
    const char *why = NULL;
    if (dial_parse_url(target, &u, &why) != 0 || (u.ws && (why = "use luaparty.connect for WebSockets"))) {
        http_headers_free(&headers);
        free(u.target);
        return luaL_error(L, "fetch('%s'): %s", target, why);
    }
    lua_fetch *f = xcalloc(1, sizeof *f);
    f->done.push = fetch_push;
    f->done.destroy = fetch_destroy;
    f->caller = r;
    r->refs++;
    f->task = t;
    fetch_request req = {
        .method = method,
        .u = u,
        .headers = headers,
        .body = body,
        .body_len = blen,
        .max_bytes = r->owner->cfg->fetch_max_bytes,
        .timeout_ms = timeout > 0 ? (uint64_t)timeout : 1,
    };
    room_task_suspend(t);
    fetch_start(r->owner->loop, r->owner->cfg, &req, fetch_done, f);
    return lua_yield(L, 0);
}

const luaL_Reg lua_fetch_functions[] = {{"http_fetch", l_http_fetch}, {NULL, NULL}};
