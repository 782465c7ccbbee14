/* lp_luafloor - the Lua part of an echoed message and of an HTTP request,
 * with nothing around it: the least a server that runs a Lua callback per
 * event must execute on top of what the raw C server does.
 *
 * bench/instructions.sh runs it under callgrind (--toggle-collect=floor_run)
 * and adds its count per operation to the raw server's: the lowest ratio to
 * raw that any such server can reach, set beside issue 21's goals. It is a
 * lower bound by construction. The party's code runs in the interpreter,
 * where the CPU limit's count hook can stop it (it does not run inside a
 * JIT trace); the party code is the same as bench/project's. Everything
 * else is the cheapest possible:
 *   - by default the state is a room's today: JIT off, a count hook every
 *     10,000 instructions. --jit turns the JIT on for the runtime's code
 *     (Response.json), as measured on branch jit (bench/README.md);
 *     --no-hook leaves the hook out, as a CPU limit that sets it only when
 *     a step overruns (a timer) would;
 *   - memory comes from a bump allocator that never frees (no allocator
 *     could be cheaper);
 *   - the messages are made before counting;
 *   - one coroutine, reused for every event, as src/runner.c does;
 *   - the connection is a full userdata whose metatable's __index is the
 *     method table, and send is a C function that only reads its string;
 *   - the request is a light userdata: no table, no strings (http); for
 *     http-table the least a party can read at once: a table with method
 *     and url, made with lua_rawset and its two keys kept in the registry;
 *     for http-lazy the least a request whose fields are made on first
 *     read needs: a full userdata with a metatable (its __index, a C
 *     function, is never called: bench/project's handler reads nothing);
 *   - Response.json is one table constructor around cjson.encode, with
 *     lua-cjson's default kept encode buffer (no malloc per encode);
 *   - C reads the answer's status, content type and body with lua_rawget,
 *     the three keys kept in the registry (not hashed again each time).
 * Nothing here routes, queues, gates, accounts memory or copies a byte
 * into a socket's buffer.
 *
 *   lp_luafloor echo|http|http-table|http-lazy N [--jit] [--no-hook]
 *       runs N events, checks each answer, prints "floor=TEST ops=N ...";
 *       exit 1 on a wrong answer, 2 on bad arguments
 */
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_cjson(lua_State *L); /* lua-cjson, linked statically */

#define HOOK_EVERY 10000 /* src/sandbox.c */

/* What the runtime gives (luaparty.Response, lua/luaparty/init.lua), at its cheapest. */
static const char *runtime_src =
    "local cjson = require 'cjson'\n"
    "local response_mt = {}\n"
    "local Response = {}\n"
    "function Response.json(value)\n"
    "  return setmetatable({ status = 200, _type = 'application/json', body = cjson.encode(value), ok = true },\n"
    "                      response_mt)\n"
    "end\n"
    "return Response\n";

/* The party: bench/project's echo and http callbacks. */
static const char *party_src =
    "local Response = ...\n"
    "local P = {}\n"
    "function P:onMessage(m, sender) sender:send(m) end\n"
    "function P:onRequest(req) return Response.json({ ok = true, room = self.room.id }) end\n"
    "return P\n";

static size_t sent_bytes, sends;

/* The cheapest allocator there is: bump a pointer, never free. */
#define BUMP_BLOCK (64u << 20)
static char *bump_at, *bump_end;

static void *bump_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) return NULL;
    nsize = (nsize + 15) & ~(size_t)15;
    if (!bump_at || (size_t)(bump_end - bump_at) < nsize) {
        size_t size = nsize > BUMP_BLOCK ? nsize : BUMP_BLOCK; /* the old blocks stay: never freed */
        if (!(bump_at = malloc(size))) return NULL;
        bump_end = bump_at + size;
    }
    void *p = bump_at;
    bump_at += nsize;
    if (ptr) memcpy(p, ptr, osize < nsize ? osize : nsize);
    return p;
}

static int conn_send(lua_State *L)
{
    size_t n;
    if (!lua_touserdata(L, 1) || !lua_tolstring(L, 2, &n)) return luaL_error(L, "send(message)");
    sent_bytes += n;
    sends++;
    return 0;
}

static int lazy_index(lua_State *L)
{
    return luaL_error(L, "lp_luafloor: the handler read a request field");
}

static void no_hook(lua_State *L, lua_Debug *ar)
{
    (void)L;
    (void)ar;
}

typedef enum { REQ_LIGHT, REQ_TABLE, REQ_LAZY } req_kind;

typedef struct floor_state {
    lua_State *L, *co;
    char (*msgs)[64];
    int on_message, on_request, self, sender;
    int keys[3]; /* "status", "_type", "body" */
    int req_keys[2]; /* "method", "url" */
    int req_mt;      /* http-lazy's metatable */
    req_kind req;    /* what the request is */
} floor_state;

/* The tests: echo, and http with each kind of request. */
static const struct {
    const char *name;
    int http;
    req_kind req;
} tests[] = {{"echo", 0, REQ_LIGHT}, {"http", 1, REQ_LIGHT}, {"http-table", 1, REQ_TABLE}, {"http-lazy", 1, REQ_LAZY}};

static int ref_field(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void load(lua_State *L, const char *src, int nargs)
{
    if (luaL_loadstring(L, src)) {
        fprintf(stderr, "lp_luafloor: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    lua_insert(L, -1 - nargs);
}

static void run(lua_State *L, int nargs)
{
    if (lua_pcall(L, nargs, 1, 0)) {
        fprintf(stderr, "lp_luafloor: %s\n", lua_tostring(L, -1));
        exit(2);
    }
}

static void floor_open(floor_state *f, int jit, int hook)
{
    lua_State *L = f->L = lua_newstate(bump_alloc, NULL);
    luaL_openlibs(L);
    if (!jit) luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    if (hook) lua_sethook(L, no_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pop(L, 2);
    load(L, runtime_src, 0);
    run(L, 0);
    load(L, party_src, 1);
    luaJIT_setmode(L, -2, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF); /* the party: interpreted */
    run(L, 1);
    f->on_message = ref_field(L, -1, "onMessage");
    f->on_request = ref_field(L, -1, "onRequest");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1); /* self = { room = { id = "bench" } } */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "bench");
    lua_setfield(L, -2, "id");
    lua_setfield(L, -2, "room");
    f->self = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newuserdata(L, sizeof(void *)); /* the connection */
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, conn_send);
    lua_setfield(L, -2, "send");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    f->sender = luaL_ref(L, LUA_REGISTRYINDEX);
    static const char *const names[3] = {"status", "_type", "body"};
    for (int k = 0; k < 3; k++) {
        lua_pushstring(L, names[k]);
        f->keys[k] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    static const char *const req_names[2] = {"method", "url"};
    for (int k = 0; k < 2; k++) {
        lua_pushstring(L, req_names[k]);
        f->req_keys[k] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_createtable(L, 0, 1); /* http-lazy's metatable: __index would make a field */
    lua_pushcfunction(L, lazy_index);
    lua_setfield(L, -2, "__index");
    f->req_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    f->co = lua_newthread(L);
    luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Resumes the reused coroutine with what is on its stack; 0 on success. */
static int resume(floor_state *f, int nargs)
{
    int st = lua_resume(f->co, nargs);
    if (st != 0) fprintf(stderr, "lp_luafloor: %s\n", lua_tostring(f->co, -1));
    return st;
}

static int echo_one(floor_state *f, unsigned long i)
{
    const char *msg = f->msgs[i];
    lua_State *co = f->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->on_message);
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->self);
    lua_pushlstring(co, msg, 64);
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->sender);
    int st = resume(f, 3);
    lua_settop(co, 0);
    return st;
}

/* The request as a table with method and url: the url is made from its
 * parts each time, as a server must (wrk asks for the same one). */
static void push_table_request(floor_state *f, lua_State *co)
{
    static const char host[] = "127.0.0.1:40000", target[] = "/parties/http/bench";
    char url[64];
    memcpy(url, "http://", 7);
    memcpy(url + 7, host, sizeof host - 1);
    memcpy(url + 7 + sizeof host - 1, target, sizeof target - 1);
    lua_createtable(co, 0, 2);
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->req_keys[0]);
    lua_pushlstring(co, "GET", 3);
    lua_rawset(co, -3);
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->req_keys[1]);
    lua_pushlstring(co, url, 7 + sizeof host - 1 + sizeof target - 1);
    lua_rawset(co, -3);
}

static int http_one(floor_state *f)
{
    lua_State *co = f->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->on_request);
    lua_rawgeti(co, LUA_REGISTRYINDEX, f->self);
    if (f->req == REQ_TABLE) {
        push_table_request(f, co);
    } else if (f->req == REQ_LAZY) {
        *(void **)lua_newuserdata(co, sizeof(void *)) = f; /* where the raw request would be */
        lua_rawgeti(co, LUA_REGISTRYINDEX, f->req_mt);
        lua_setmetatable(co, -2);
    } else {
        lua_pushlightuserdata(co, f);
    }
    if (resume(f, 2)) return 1;
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, f->keys[k]);
        lua_rawget(co, 1);
    }
    const char *body = lua_tolstring(co, -1, &n);
    int ok = lua_tointeger(co, -3) == 200 && lua_isstring(co, -2) && body &&
             n == sizeof "{\"ok\":true,\"room\":\"bench\"}" - 1;
    if (ok) sent_bytes += n, sends++;
    lua_settop(co, 0);
    return !ok;
}

/* Runs n events (messages 0..n-1); 1 on a wrong answer. */
static int run_events(floor_state *f, int http, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++)
        if (http ? http_one(f) : echo_one(f, i)) return 1;
    return 0;
}

/* The counted part (callgrind --toggle-collect=floor_run). */
__attribute__((noinline)) int floor_run(floor_state *f, int http, unsigned long n) { return run_events(f, http, n); }

int main(int argc, char **argv)
{
    int jit = 0, hook = 1, words = 0;
    const char *test = NULL, *count = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--jit")) jit = 1;
        else if (!strcmp(argv[i], "--no-hook")) hook = 0;
        else if (++words == 1) test = argv[i];
        else count = argv[i];
    }
    size_t t = 0;
    while (t < sizeof tests / sizeof *tests && (!test || strcmp(test, tests[t].name))) t++;
    unsigned long n = count ? strtoul(count, NULL, 10) : 0;
    if (words != 2 || t == sizeof tests / sizeof *tests || !n) {
        fprintf(stderr, "usage: lp_luafloor echo|http|http-table|http-lazy N [--jit] [--no-hook]\n");
        return 2;
    }
    floor_state f;
    floor_open(&f, jit, hook);
    f.req = tests[t].req;
    int http = tests[t].http;
    /* a new 64-byte text for each message, as lp_loadgen sends */
    unsigned long nmsgs = n > 100 ? n : 100;
    if (!(f.msgs = malloc(nmsgs * sizeof *f.msgs))) return 2;
    for (unsigned long i = 0; i < nmsgs; i++) {
        memset(f.msgs[i], 'x', sizeof f.msgs[i]);
        for (int d = 0; d < 16; d++) f.msgs[i][d] = "0123456789abcdef"[(i >> (4 * d)) & 15];
    }
    /* warm-up, not counted (not in floor_run): cjson's module, first strings and tables */
    if (run_events(&f, http, 100)) return 1;
    sends = sent_bytes = 0;
    if (floor_run(&f, http, n)) return 1;
    if (sends != n) {
        fprintf(stderr, "lp_luafloor: %zu answers for %lu events\n", sends, n);
        return 1;
    }
    printf("floor=%s ops=%lu bytes=%zu jit=%s hook=%s\n", test, n, sent_bytes,
           jit ? "runtime" : "off", hook ? "on" : "off");
    lua_close(f.L);
    free(f.msgs); /* the bump blocks are left to the exit */
    return 0;
}
