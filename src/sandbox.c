/* sandbox.c - one lua_State per room.
 *
 * The state uses our allocator with the room as its userdata: that gives a
 * hard per-room memory cap (an allocation past it fails with "not enough
 * memory" inside that room only) and lets any C function find its room from
 * the state (room_from_state). Blocks come from the room's arena (arena.c):
 * small objects from slabs, which also makes closing a room cheap; glibc
 * malloc for the rest (it uses far less RSS per state than LuaJIT's own
 * per-state allocator).
 *
 * CPU limit: a count hook checks a deadline every few thousand VM
 * instructions; the deadline is in the worker thread's CPU time, so a step
 * is not charged for time it waited for a core (clock_start). Count hooks
 * do not run inside JIT-compiled traces, so room states run with the JIT
 * off whenever a CPU limit is set (--cpu-limit 0 turns both off). Once
 * the deadline passed, the hook re-arms itself to fire on every
 * instruction, so a party's own pcall cannot swallow the error and carry
 * on (the trick Redis uses for scripts).
 *
 * Time slices: the limit is per callback step, but a step that has run for
 * a slice (SLICE_NS) yields from the same hook (LuaJIT supports lua_yield
 * in a hook when the JIT is off) and runner.c resumes it on a later turn
 * of the loop, so the other rooms of the worker are served in between: a
 * runaway callback stalled them all for the whole CPU limit. The CPU left
 * goes with the task, so the limit counts only the step's own slices.
 * A step pauses only where the yield is safe and changes nothing a party
 * can see (may_pause).
 *
 * The party sees the standard libraries minus what reaches outside the room:
 * no io, ffi or jit (not even through require), no
 * os.exit/execute/remove/rename/getenv/setlocale, no C modules, no
 * dofile/loadfile, load and loadstring of source only (no bytecode), and
 * debug reduced to traceback. print goes to the log. */
#include "sandbox.h"
#include "clock.h"
#include "arena.h"
#include "log.h"
#include "lua_binary.h"
#include "lua_conn.h"
#include "lua_fetch.h"
#include "lua_party.h"
#include "lua_pipe.h"
#include "lua_request.h"
#include "lua_room.h"
#include "lua_socket.h"
#include "lua_storage.h"
#include "lua_wsclient.h"
#include "lua_yjs.h"
#include "lua_bind.h"
#include "lua_embedded.h"
#include "room.h"
#include "worker.h"

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include <stdlib.h>
#include <string.h>

#define GLUE_HEADROOM (4u << 20)

static void *room_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    room *r = ud;
    if (nsize == 0) {
        arena_realloc(&r->heap, ptr, osize, 0);
        r->mem_used -= osize;
        return NULL;
    }
    /* The cap binds party code. Our own glue outside it (tracebacks after a
     * memory error, pushing the next event) gets headroom, so it never
     * fails unprotected, which would abort the whole process. */
    size_t cap = r->mem_limit + (r->in_user_code ? 0 : GLUE_HEADROOM);
    if (nsize > osize && r->mem_limit && r->mem_used - osize + nsize > cap) {
        r->limit_hit = LIMIT_MEMORY;
        return NULL;
    }
    void *p = arena_realloc(&r->heap, ptr, osize, nsize);
    if (p) r->mem_used = r->mem_used - osize + nsize;
    return p;
}

/* r->deadline outside a step: the hook, which stays set (see sandbox_arm),
 * then does nothing (Lua also runs outside steps: a finalizer in a GC step
 * of the C glue must not be stopped by the last step's deadline). */
#define DEADLINE_IDLE UINT64_MAX
#define HOOK_EVERY 10000
#define SLICE_NS 2000000ULL   /* a step runs at most this long before others get a turn */
#define RETRY_NS 500000ULL    /* could not pause: look again this much later */

/* The registry key of the set of C functions a yield may cross: pcall and
 * xpcall are part of LuaJIT's VM (a coroutine yields across them); any
 * other C function on the stack (table.sort's comparator, string.gsub's
 * replacement, a binding that calls Lua) is a C frame lua_yield cannot
 * cross. */
static const char resumable_key = 0;

/* True if the step may yield here: in the task's own coroutine (a yield in
 * a coroutine of the party's would go to the party's resume), with no
 * storage write pending (the worker's SQLite batch is shared: another
 * room's commit would make half a step durable), not inside
 * storage:transaction, and with only Lua frames, pcall and xpcall between
 * here and the step's lua_resume. */
static bool may_pause(room *r, lua_State *L)
{
    task *t = room_current_task(r);
    if (!t || L != room_task_thread(t) || r->dirty || r->in_transaction) return false;
    lua_Debug ar;
    lua_bind_get(L, &resumable_key);
    bool ok = lua_istable(L, -1);
    for (int level = 0; ok && lua_getstack(L, level, &ar); level++) {
        ok = lua_getinfo(L, "Sf", &ar) != 0; /* pushes the frame's function */
        if (!ok) break;
        if (ar.what[0] == 'C') {
            lua_rawget(L, -2); /* the function -> true if it is pcall or xpcall */
            ok = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

/* The limit is on the CPU time the step uses, not on wall time: a step that
 * waited for a core on a busy machine is not stopped for time it did not
 * use. Reading the thread's CPU clock is a system call, so the hook reads
 * the cheap wall clock and asks for CPU time only once the wall clock says
 * the limit may be reached (CPU time never runs ahead of wall time):
 * r->deadline is that moment, pushed on by what the step has not used yet.
 * Time slices stay in wall time: they are about the other rooms' latency. */
static void clock_start(room *r, uint64_t now, uint64_t allowed)
{
    r->cpu_mark = clock_thread_cpu_ns();
    r->cpu_allowed = allowed;
    r->deadline = now + allowed;
    r->slice_end = now + SLICE_NS;
}

/* CPU time the step may still use (ns), at least 1 while any is left. */
static uint64_t cpu_remaining(const room *r)
{
    uint64_t used = clock_thread_cpu_ns() - r->cpu_mark;
    return used < r->cpu_allowed ? r->cpu_allowed - used : 0;
}

static void cpu_hook(lua_State *L, lua_Debug *ar)
{
    room *r = room_from_state(L);
    if (r->deadline == DEADLINE_IDLE) return;
    uint64_t now = uv_hrtime();
    if (!r->deadline) { /* the clock starts here, see sandbox_arm */
        clock_start(r, now, r->owner->cfg->cpu_limit_ms * 1000000ULL);
        return;
    }
    if (now >= r->deadline) {
        uint64_t left = cpu_remaining(r);
        if (left) r->deadline = now + left; /* it waited for a core meanwhile */
    }
    if (now >= r->slice_end && now < r->deadline) {
        if (!may_pause(r, L)) {
            r->slice_end = now + RETRY_NS;
            return;
        }
        uint64_t left = cpu_remaining(r);
        room_task_preempt(room_current_task(r), left ? left : 1);
        lua_yield(L, 0); /* does not return: the step's lua_resume returns LUA_YIELD */
        return;
    }
    if (now < r->deadline) return;
    r->limit_hit = LIMIT_CPU;
    r->hook_tripped = true;
    lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1); /* see the file comment */
    /* level 0: inside a hook that is the interrupted function, the user's */
    luaL_where(L, 0);
    lua_pushfstring(L, "callback exceeded the CPU time limit of %d ms", (int)r->owner->cfg->cpu_limit_ms);
    lua_concat(L, 2);
    lua_error(L);
}

/* The hook is set once per state and left set: lua_sethook rewrites
 * LuaJIT's dispatch table, which twice per step was a visible part of a
 * message's cost. A step only resets the deadline. It is set when the hook
 * first runs, 10,000 instructions in (microseconds, against a limit in
 * milliseconds): most callbacks end before that and never read the clock. */
void sandbox_arm(room *r, uint64_t cpu_left)
{
    if (!r->owner->cfg->cpu_limit_ms) return;
    if (!lua_gethook(r->L)) lua_sethook(r->L, cpu_hook, LUA_MASKCOUNT, HOOK_EVERY);
    r->deadline = 0;
    if (cpu_left) clock_start(r, uv_hrtime(), cpu_left); /* a paused step goes on (rare: read the clocks) */
}

void sandbox_disarm(room *r)
{
    r->deadline = DEADLINE_IDLE;
    if (r->hook_tripped) { /* back from every instruction to every 10,000 */
        lua_sethook(r->L, cpu_hook, LUA_MASKCOUNT, HOOK_EVERY);
        r->hook_tripped = false;
    }
}

void sandbox_enter(room *r) { r->in_user_code = true; }
void sandbox_leave(room *r) { r->in_user_code = false; }

static int l_print(lua_State *L)
{
    room *r = room_from_state(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = lua_gettop(L);
    lua_getglobal(L, "tostring");
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, -1);
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_addvalue(&b); /* pops the string, keeps tostring below */
    }
    luaL_pushresult(&b);
    log_info("[%s/%s] %s", r->party->name, r->id, lua_tostring(L, -1));
    return 0;
}

/* load and loadstring for party code: source only. LuaJIT does not verify
 * bytecode, so a crafted binary chunk (string.dump's output, edited, or
 * bytes a client sent to a party that loads what it is given) could crash
 * the process and every room in it; source goes through the compiler's
 * checks. Upvalue 1 is the original load. */
#define BINARY_REFUSED "binary chunks cannot be loaded in a party (LuaJIT does not check them): load Lua source"

static int l_load_source(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING && lua_tostring(L, 1)[0] == LUA_SIGNATURE[0]) {
        lua_pushnil(L);
        lua_pushliteral(L, BINARY_REFUSED);
        return 2;
    }
    lua_settop(L, 4);
    lua_pushliteral(L, "t"); /* a reader function's chunk: the mode check refuses binary */
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 4, 2);
    if (lua_isnil(L, -2) && lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "wrong mode")) {
        lua_pop(L, 1);
        lua_pushliteral(L, BINARY_REFUSED);
    }
    if (lua_isnil(L, -2)) return 2; /* nil, message */
    lua_pop(L, 1);
    return 1;
}

static void restrict_load(lua_State *L)
{
    lua_getglobal(L, "load");
    lua_pushcclosure(L, l_load_source, 1);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "load");
    lua_setglobal(L, "loadstring"); /* loadstring(s, name) is load(s, name) */
}

/* The runtime modules as stripped bytecode (no line info, no local names),
 * made once per process: every room loads these, and their debug info
 * would cost each room's heap a few KB for frames we hide from tracebacks
 * anyway (room.c filters lua/luaparty/ frames). */
typedef struct compiled {
    char *code;
    size_t len;
} compiled;

static compiled *compiled_modules;

static void compile_embedded(void)
{
    size_t n = 0;
    while (lua_embedded_modules[n].name) n++;
    compiled_modules = xcalloc(n + 1, sizeof *compiled_modules);
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    for (size_t i = 0; i < n; i++) {
        const lua_embedded_module *m = &lua_embedded_modules[i];
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "dump");
        if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) == 0) {
            lua_pushboolean(L, 1); /* strip */
            if (lua_pcall(L, 2, 1, 0) == 0) {
                size_t len;
                const char *code = lua_tolstring(L, -1, &len);
                compiled_modules[i].code = xmalloc(len);
                memcpy(compiled_modules[i].code, code, len);
                compiled_modules[i].len = len;
            }
        }
        lua_settop(L, 0);
    }
    lua_close(L);
}

void sandbox_prepare(void)
{
    if (!compiled_modules) compile_embedded();
}

void sandbox_free_compiled(void)
{
    if (!compiled_modules) return;
    for (size_t i = 0; lua_embedded_modules[i].name; i++) free(compiled_modules[i].code);
    free(compiled_modules);
    compiled_modules = NULL;
}

static int load_embedded(lua_State *L)
{
    const lua_embedded_module *m = lua_touserdata(L, lua_upvalueindex(1));
    const compiled *c = &compiled_modules[m - lua_embedded_modules];
    int rc = c->code ? luaL_loadbuffer(L, c->code, c->len, m->chunkname)
                     : luaL_loadbuffer(L, m->source, m->len, m->chunkname);
    if (rc != 0) return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* The names project_searcher found, in a registry table, so that a hot
 * reload forgets exactly those (core.forget_project_modules) and keeps the
 * libraries and the runtime's own modules, however late they loaded. */
#define PROJECT_MODULES "luaparty.project_modules"

static void note_project_module(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, PROJECT_MODULES);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, PROJECT_MODULES);
    }
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* core.forget_project_modules(): package.loaded drops the project's
 * modules, so the next require loads their new code. */
static int l_forget_project_modules(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, PROJECT_MODULES);
    if (!lua_istable(L, -1)) return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_pushnil(L);
    while (lua_next(L, -3)) { /* project_modules, _LOADED, name, true */
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_settable(L, -4);
    }
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, PROJECT_MODULES);
    return 0;
}

/* package.loaders entry for project modules: require "a.b" loads
 * <project>/a/b.lua or <project>/a/b/init.lua, named by its project-relative
 * path so errors and tracebacks say a/b.lua:12, like party scripts. */
static int project_searcher(lua_State *L)
{
    room *r = room_from_state(L);
    const char *name = luaL_checkstring(L, 1);
    char rel[512];
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof rel - 16 || name[0] == '.' || strstr(name, "..") || strchr(name, '/')) {
        lua_pushfstring(L, "\n\tno project module '%s' (bad name)", name);
        return 1;
    }
    for (size_t i = 0; i <= n; i++) rel[i] = name[i] == '.' ? '/' : name[i];
    static const char *patterns[] = {"%s.lua", "%s/init.lua"};
    for (int i = 0; i < 2; i++) {
        char file[600], path[4700];
        snprintf(file, sizeof file, patterns[i], rel);
        snprintf(path, sizeof path, "%s/%s", r->owner->cfg->dir, file);
        size_t len;
        char *src = read_file(path, &len);
        if (!src) continue;
        lua_pushfstring(L, "@%s", file);
        int rc = luaL_loadbuffer(L, src, len, lua_tostring(L, -1));
        free(src);
        if (rc != 0) return lua_error(L);
        note_project_module(L, name);
        return 1;
    }
    lua_pushfstring(L, "\n\tno file '%s.lua' or '%s/init.lua' in the project", rel, rel);
    return 1;
}

/* require's searcher for the runtime's own modules (lua/luaparty), after
 * package.preload: (name) -> loader. One searcher instead of a preload
 * entry per module, which every room's state paid for. */
static int embedded_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    for (const lua_embedded_module *m = lua_embedded_modules; m->name; m++) {
        if (strcmp(m->name, name) != 0) continue;
        lua_pushlightuserdata(L, (void *)m);
        lua_pushcclosure(L, load_embedded, 1);
        return 1;
    }
    return 0;
}

/* (name) -> the runtime's module of that name, loaded (package.loaded)
 * the first time: how lua_room.c loads luaparty.runtime when a room first
 * needs it, whatever party code did to require and package. */
static int require_embedded(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, name);
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
    if (!embedded_searcher(L)) return luaL_error(L, "no runtime module %s", name);
    lua_call(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* Opens only the libraries a party may use. io, ffi and (with a CPU limit)
 * jit are never opened, so neither a global nor require can reach them.
 * math, bit, os and debug are opened on first use (lazy_libs below). */
static void open_libraries(lua_State *L, bool jit)
{
    static const luaL_Reg libs[] = {
        {"", luaopen_base}, {LUA_LOADLIBNAME, luaopen_package}, {LUA_JITLIBNAME, luaopen_jit},
    };
    size_t n = sizeof libs / sizeof *libs - (jit ? 0 : 1);
    for (size_t i = 0; i < n; i++) {
        lua_pushcfunction(L, libs[i].func);
        lua_pushstring(L, libs[i].name);
        lua_call(L, 1, 0);
    }
    /* LuaJIT registers ffi in package.preload: take it out */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushnil(L);
    lua_setfield(L, -2, "ffi");
    lua_pop(L, 2);
}

static void remove_field(lua_State *L, const char *table, const char *field)
{
    lua_getglobal(L, table);
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_setfield(L, -2, field);
    }
    lua_pop(L, 1);
}

/* package.loaded[name] = the global name. Through the registry's _LOADED
 * (the table require uses), not the global package, which party code may
 * have replaced by the time a lazy library opens. */
static void set_loaded(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getglobal(L, name);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Libraries many parties never touch, opened the first time party code
 * names one: as a global (the __index of _G's metatable), through require
 * (lazy_searcher), a method of a string (the __index of the strings'
 * metatable, for string) or, before a setmetatable on _G replaces that
 * __index, all of them. Opened up front they cost every room's Lua state
 * ~11 KB, and there can be 100,000 rooms. Party code sees no difference
 * except rawget(_G, "math") being nil before first use. Each opener
 * registers the global and the package.loaded entry and returns the
 * table. */
static int open_plain(lua_State *L, lua_CFunction open, const char *name)
{
    lua_pushcfunction(L, open);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    return 1;
}
static int open_math(lua_State *L) { return open_plain(L, luaopen_math, LUA_MATHLIBNAME); }
static int open_bit(lua_State *L) { return open_plain(L, luaopen_bit, LUA_BITLIBNAME); }
static int open_table(lua_State *L) { return open_plain(L, luaopen_table, LUA_TABLIBNAME); }
/* (luaopen_string also gives strings their real metatable, {__index = string}) */
static int open_string(lua_State *L) { return open_plain(L, luaopen_string, LUA_STRLIBNAME); }

/* os.time() and os.date(fmt) tell the time of now_ms(), which is the
 * virtual clock under `luaparty test` (clock.h); with a time given, they
 * are the library's own (upvalue 1). */
static int os_time(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_pushnumber(L, (lua_Number)(now_ms() / 1000));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int os_date(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_isnil(L, 2)) {
        lua_pushnumber(L, (lua_Number)(now_ms() / 1000));
        lua_replace(L, 2);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static int open_os(lua_State *L)
{
    static const char *os_out[] = {"exit", "execute", "remove", "rename", "tmpname", "getenv", "setlocale"};
    open_plain(L, luaopen_os, LUA_OSLIBNAME);
    for (size_t i = 0; i < sizeof os_out / sizeof *os_out; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, os_out[i]);
    }
    static const luaL_Reg clocked[] = {{"time", os_time}, {"date", os_date}};
    for (size_t i = 0; i < 2; i++) {
        lua_getfield(L, -1, clocked[i].name);
        lua_pushcclosure(L, clocked[i].func, 1);
        lua_setfield(L, -2, clocked[i].name);
    }
    return 1;
}

/* debug: only traceback, as a global and through require */
static int open_debug(lua_State *L)
{
    open_plain(L, luaopen_debug, LUA_DBLIBNAME);
    lua_createtable(L, 0, 1);
    lua_getfield(L, -2, "traceback");
    lua_setfield(L, -2, "traceback");
    lua_pushvalue(L, -1);
    lua_setglobal(L, LUA_DBLIBNAME);
    set_loaded(L, LUA_DBLIBNAME);
    return 1;
}

static const luaL_Reg lazy_libs[] = {
    {LUA_STRLIBNAME, open_string}, {LUA_TABLIBNAME, open_table}, {LUA_MATHLIBNAME, open_math},
    {LUA_BITLIBNAME, open_bit},    {LUA_OSLIBNAME, open_os},     {LUA_DBLIBNAME, open_debug},
};
#define NLAZY (sizeof lazy_libs / sizeof *lazy_libs)

static const luaL_Reg *lazy_lib(const char *name)
{
    for (size_t i = 0; name && i < NLAZY; i++)
        if (strcmp(name, lazy_libs[i].name) == 0) return &lazy_libs[i];
    return NULL;
}

/* The library, opened now unless it already is (while require runs a
 * loader, package.loaded holds its sentinel there, not a table). */
static void push_lazy_lib(lua_State *L, const luaL_Reg *lib)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED"); /* see set_loaded */
    lua_getfield(L, -1, lib->name);
    lua_remove(L, -2);
    if (lua_istable(L, -1)) return;
    lua_pop(L, 1);
    lua_pushcfunction(L, lib->func);
    lua_call(L, 0, 1);
}

/* The global fetch PartyKit code calls, the same as luaparty.fetch, is
 * set the first time it is named: the luaparty module (init.lua) costs a
 * room's state ~6 KB, and a room whose party never uses it never loads it. */
static void push_fetch(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "luaparty");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "fetch");
    lua_remove(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_GLOBALSINDEX, "fetch"); /* _G has no __newindex */
}

/* _G's __index: (t, key) */
static int lazy_global(lua_State *L)
{
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    const luaL_Reg *lib = lazy_lib(name);
    if (lib) {
        push_lazy_lib(L, lib);
        return 1;
    }
    if (name && strcmp(name, "fetch") == 0) {
        push_fetch(L);
        return 1;
    }
    return 0;
}

/* require's searcher for them, before project_searcher: (name) -> loader */
static int lazy_loader(lua_State *L)
{
    push_lazy_lib(L, lua_touserdata(L, lua_upvalueindex(1)));
    return 1;
}

static int lazy_searcher(lua_State *L)
{
    const luaL_Reg *lib = lazy_lib(luaL_checkstring(L, 1));
    if (!lib) return 0;
    lua_pushlightuserdata(L, (void *)lib);
    lua_pushcclosure(L, lazy_loader, 1);
    return 1;
}

/* setmetatable(t, mt), replacing the global: a metatable set on _G
 * replaces the lazy __index, so every library is opened first. Otherwise
 * base setmetatable's checks and result; the runtime's modules use the
 * builtin (guard_setmetatable leaves it in luaparty.core). */
static int guarded_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, lua_isnoneornil(L, 2) || lua_istable(L, 2), 2, "nil or table expected");
    if (luaL_getmetafield(L, 1, "__metatable")) return luaL_error(L, "cannot change a protected metatable");
    if (lua_rawequal(L, 1, LUA_GLOBALSINDEX)) {
        for (size_t i = 0; i < NLAZY; i++) {
            push_lazy_lib(L, &lazy_libs[i]);
            lua_pop(L, 1);
        }
        lua_getfield(L, LUA_GLOBALSINDEX, "fetch"); /* lazy_global sets it */
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* The strings' metatable until the string library opens: __index (s, key) */
static int lazy_string_method(lua_State *L)
{
    push_lazy_lib(L, &lazy_libs[0]);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

/* getmetatable, replacing the global: a string's is the library's real one
 * ({__index = string}), so the library is opened first. */
static int guarded_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (lua_type(L, 1) == LUA_TSTRING) {
        push_lazy_lib(L, &lazy_libs[0]);
        lua_pop(L, 1);
    }
    if (!lua_getmetatable(L, 1)) return 0;
    lua_getfield(L, -1, "__metatable");
    return lua_isnil(L, -1) ? (lua_pop(L, 1), 1) : 1;
}

static void install_lazy_libs(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lazy_global);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, LUA_GLOBALSINDEX);
    lua_pushliteral(L, "");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lazy_string_method);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

/* Before party code runs. The builtins stay in luaparty.core for the
 * runtime's modules (core.setmetatable, core.getmetatable): they are on
 * the hot path (Response.json), and know no lazy library. */
static void guard_setmetatable(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "luaparty.core");
    lua_getglobal(L, "setmetatable");
    lua_setfield(L, -2, "setmetatable");
    lua_getglobal(L, "getmetatable");
    lua_setfield(L, -2, "getmetatable");
    lua_pop(L, 2);
    lua_pushcfunction(L, guarded_setmetatable);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, guarded_getmetatable);
    lua_setglobal(L, "getmetatable");
}

static void restrict_libraries(lua_State *L, const room *r)
{
    remove_field(L, "package", "loadlib");
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    lua_pushnil(L);
    lua_setglobal(L, "jit"); /* even with the JIT on, parties do not steer it */
    set_loaded(L, "jit");
    static const char *jit_modules[] = {"jit.opt", "jit.util", "jit.profile"};
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -2, "preload");
    for (size_t i = 0; i < 3; i++) {
        lua_pushnil(L);
        lua_setfield(L, -3, jit_modules[i]);
        lua_pushnil(L);
        lua_setfield(L, -2, jit_modules[i]);
    }
    lua_pop(L, 3);
    restrict_load(L);
    install_lazy_libs(L);
    lua_pushcfunction(L, l_print);
    lua_setglobal(L, "print");

    /* require finds preloaded and project modules only: no C modules, no
     * system paths. */
    lua_getglobal(L, "package");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_getfield(L, -1, "loaders");
    if (lua_istable(L, -1)) {
        lua_pushcfunction(L, project_searcher);
        lua_rawseti(L, -2, 4);
        lua_pushcfunction(L, embedded_searcher);
        lua_rawseti(L, -2, 3);
        lua_pushcfunction(L, lazy_searcher);
        lua_rawseti(L, -2, 2);
    }
    lua_pop(L, 2);
}

/* require "cjson": the state's one (lua_request.c: without a kept encode
 * buffer) */
static int open_cjson(lua_State *L)
{
    lua_push_cjson(L);
    return 1;
}

/* luaparty.core: the C functions the runtime builds the API from, each
 * made the first time it is looked up (lua_bind.h). */
static const luaL_Reg sandbox_functions[] = {{"forget_project_modules", l_forget_project_modules}, {NULL, NULL}};
static const luaL_Reg *const core_functions[] = {
    lua_room_functions,  lua_binary_functions, lua_storage_functions,  lua_party_functions,
    lua_pipe_functions,  lua_socket_functions, lua_request_functions,  lua_fetch_functions,
    lua_wsclient_functions, lua_yjs_functions, sandbox_functions,
};

/* core's __index: (core, name) -> the function, kept in core from now on */
static int core_index(lua_State *L)
{
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    for (size_t i = 0; name && i < sizeof core_functions / sizeof *core_functions; i++) {
        for (const luaL_Reg *f = core_functions[i]; f->name; f++) {
            if (strcmp(f->name, name) != 0) continue;
            lua_pushcfunction(L, f->func);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1);
            return 1;
        }
    }
    return 0;
}

static void preload_modules(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pop(L, 2);

    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, core_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "luaparty.core");
    lua_pop(L, 1);
}

/* Runs protected (lua_cpcall): every step may raise, e.g. out of memory. */
static int setup(lua_State *L)
{
    room *r = lua_touserdata(L, 1);
    const config *cfg = r->owner->cfg;
    /* Without the jit library the JIT never starts: the CPU limit's count
     * hook needs the interpreter. --cpu-limit 0 opens it (JIT on). */
    open_libraries(L, cfg->cpu_limit_ms == 0);
    if (cfg->cpu_limit_ms) luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_createtable(L, 0, 2); /* see may_pause */
    lua_getglobal(L, "pcall");
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_getglobal(L, "xpcall");
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_bind_set(L, &resumable_key);
    restrict_libraries(L, r);
    preload_modules(L);
    lua_room_set_loader(L, require_embedded);
    guard_setmetatable(L);

    const party *p = r->party;
    if (luaL_loadbuffer(L, p->bytecode, p->bytecode_len, p->chunkname) != 0) return lua_error(L);
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s must return a table of callbacks (it returned %s)", p->script,
                          luaL_typename(L, -1));
    lua_room_init(L, r);
    return 0;
}

int sandbox_open_room(room *r, char **err)
{
    r->rt_ref = r->class_ref = r->instance_ref = r->request_ref = LUA_NOREF;
    r->L = lua_newstate(room_alloc, r);
    if (!r->L) {
        *err = xstrdup("cannot create a Lua state (out of memory)");
        return -1;
    }
    /* The party's top-level code runs under the limits too. */
    sandbox_arm(r, 0);
    sandbox_enter(r);
    int rc = lua_cpcall(r->L, setup, r);
    sandbox_leave(r);
    sandbox_disarm(r);
    /* Loading made garbage (compiler temporaries, the chunk's strings): a
     * full collection now, while it is small, keeps an idle room at its
     * live size instead of waiting for the next GC cycle that an idle room
     * may never reach. */
    if (rc == 0) lua_gc(r->L, LUA_GCCOLLECT, 0);
    if (rc != 0) {
        const char *msg = lua_tostring(r->L, -1);
        *err = xstrdup(msg ? msg : "error while loading the party");
        lua_close(r->L);
        arena_release(&r->heap);
        r->L = NULL;
        return -1;
    }
    return 0;
}

int sandbox_try_party(worker *w, party *p, char **err)
{
    room probe;
    memset(&probe, 0, sizeof probe);
    probe.owner = w;
    probe.party = p;
    probe.id = (char *)"(reload check)";
    probe.mem_limit = w->cfg->room_memory;
    if (sandbox_open_room(&probe, err) != 0) return -1;
    lua_State *L = probe.L;
    lua_room_push_entry(L, &probe, "hooks");
    p->hooks = lua_pcall(L, 0, 1, 0) == 0 ? (unsigned)lua_tointeger(L, -1) : 0;
    lua_close(L);
    arena_release(&probe.heap);
    return 0;
}
