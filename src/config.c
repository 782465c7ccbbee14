/* config.c - reading partykit.json.
 *
 * The JSON is decoded with lua-cjson in a throwaway Lua state (the same
 * decoder party code uses), then checked key by key. Every error names
 * partykit.json and the key, and an unknown key gets a "did you mean". */
#include "config.h"
#include "buf.h"
#include "lua_bind.h"
#include "cron_expr.h"
#include "dotenv.h"
#include "script.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys PartyKit knows (config-schema.ts). Those without `instead` are
 * honoured; the others are ignored with a warning that says what to do. */
static const struct { const char *key, *instead; } known_keys[] = {
    {"$schema", NULL}, {"name", NULL}, {"main", NULL}, {"parties", NULL}, {"vars", NULL},
    {"port", NULL}, {"persist", NULL}, {"serve", NULL}, {"crons", NULL}, {"luaparty", NULL},
    {"team", "it names a PartyKit team for deploys; nothing to do"},
    {"define", "no bundle to substitute into: put values in \"vars\" or .env and read room.env"},
    {"build", "luaparty runs no build step: run the command yourself before (or beside) luaparty"},
    {"compatibilityDate", "a Cloudflare Workers setting; nothing to do"},
    {"compatibilityFlags", "a Cloudflare Workers setting; nothing to do"},
    {"minify", "parties are Lua scripts, not a bundle; nothing to do"},
    {"ai", "a Cloudflare binding luaparty does not have: call the service with fetch()"},
    {"vectorize", "a Cloudflare binding luaparty does not have: call the service with fetch()"},
    {"bindings", "Cloudflare bindings (R2, KV) luaparty does not have: use room storage or fetch()"},
    {"analytics", "a Cloudflare binding luaparty does not have: see --metrics"},
    {"domain", "a deploy setting: put luaparty behind your own proxy or DNS"},
    {"preview", "a deploy setting; nothing to do"},
    {"logpush", "Cloudflare logging: luaparty logs to stderr (--log-format json) and serves --metrics"},
    {"tailConsumers", "Cloudflare logging: luaparty logs to stderr (--log-format json) and serves --metrics"},
    {"observability", "Cloudflare logging: luaparty logs to stderr (--log-format json) and serves --metrics"},
    {"placement", "Cloudflare placement: see --workers and --cluster"},
};

void config_defaults(config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = xstrdup("127.0.0.1");
    cfg->port = -1;
    cfg->max_message = 1024 * 1024;
    cfg->max_header = 16 * 1024;
    cfg->max_headers = 100;
    cfg->max_body = 8 * 1024 * 1024;
    cfg->max_output = 16 * 1024 * 1024;
    cfg->room_memory = 64 * 1024 * 1024;
    cfg->max_value = 128 * 1024;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->cpu_limit_ms = 1000;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->keepalive_timeout_ms = 60 * 1000;
    cfg->ping_interval_ms = 30 * 1000;
    cfg->max_connections = 100000;
    cfg->max_room_connections = 10000;
    cfg->fetch_timeout_ms = 30000;
    cfg->fetch_max_bytes = 16 * 1024 * 1024;
}

static int set_error(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    *err = xstrdup(tmp);
    return -1;
}

bool config_valid_party_name(const char *s, size_t len)
{
    if (!len || len > 64) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

const party *config_party(const config *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->nparties; i++)
        if (strlen(cfg->parties[i]->name) == len && memcmp(cfg->parties[i]->name, name, len) == 0)
            return cfg->parties[i];
    return NULL;
}

/* The nearest of a table's n names to key, if one is close enough to be
 * a misspelling (edit distance 3 or less), else NULL. Each entry of table
 * is stride bytes and starts with its name (a const char *). */
static const char *nearest_key(const char *key, const void *table, size_t n, size_t stride)
{
    const char *best = NULL;
    size_t best_d = 4;
    for (size_t j = 0; j < n; j++) {
        const char *name = *(const char *const *)(const void *)((const char *)table + j * stride);
        size_t d = edit_distance(key, name);
        if (d < best_d) best_d = d, best = name;
    }
    return best;
}

/* The error for an unknown key of the object `where` ("serve", "luaparty";
 * NULL: the top level, where the key is quoted), suggesting the nearest of
 * its known keys (table: as nearest_key's). */
static int unknown_key(char **err, const char *where, const char *key, const void *table, size_t n, size_t stride)
{
    const char *best = nearest_key(key, table, n, stride);
    const char *before = where ? where : "\"", *dot = where ? "." : "", *after = where ? "" : "\"";
    return best ? set_error(err, "partykit.json: unknown key %s%s%s%s (did you mean \"%s\"?)", before, dot, key,
                            after, best)
                : set_error(err, "partykit.json: unknown key %s%s%s%s", before, dot, key, after);
}

int party_compile(party *p, char **err)
{
    size_t len;
    char *bc = script_compile(p->source, p->source_len, p->chunkname, &len, err);
    if (!bc) return -1;
    free(p->bytecode);
    p->bytecode = bc;
    p->bytecode_len = len;
    return 0;
}

void party_free(party *p)
{
    if (!p) return;
    free(p->name);
    free(p->script);
    free(p->path);
    free(p->chunkname);
    free(p->source);
    free(p->bytecode);
    free(p);
}

/* "TypeScript" or "JavaScript" if script is named like one, else NULL. */
static const char *js_kind(const char *script)
{
    static const char *const ts[] = {".ts", ".tsx", ".mts", ".cts"}, *const js[] = {".js", ".jsx", ".mjs", ".cjs"};
    const char *dot = strrchr(script, '.');
    if (!dot || strchr(dot, '/')) return NULL;
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(dot, ts[i])) return "TypeScript";
        if (!strcmp(dot, js[i])) return "JavaScript";
    }
    return NULL;
}

/* Loads a party script and compiles it, so syntax errors stop start-up with
 * file:line instead of failing on the first request. */
static int add_party(config *cfg, const char *name, const char *script, char **err)
{
    const char *kind = js_kind(script);
    if (kind)
        return set_error(err,
                         "partykit.json: party \"%s\": %s is %s, and luaparty runs parties written in Lua: README "
                         "\"Porting from PartyKit\" shows a TypeScript party next to its Lua version",
                         name, script, kind);
    party *p = xcalloc(1, sizeof *p);
    cfg->parties[cfg->nparties] = p;
    p->name = xstrdup(name);
    p->metric_slot = metrics_party_slot(name);
    p->script = xstrdup(script);
    buf b;
    buf_init(&b);
    if (script[0] == '/') buf_appendstr(&b, script); /* an absolute path is used as it is */
    else buf_printf(&b, "%s/%s", cfg->dir, script);
    p->path = buf_steal(&b);
    buf_printf(&b, "@%s", script);
    p->chunkname = buf_steal(&b);
    cfg->nparties++;
    p->source = read_file(p->path, &p->source_len);
    if (!p->source)
        return set_error(err, "partykit.json: party \"%s\": cannot read %s: %s", name, p->path, strerror(errno));
    char *cerr = NULL;
    if (party_compile(p, &cerr) != 0) {
        set_error(err, "partykit.json: party \"%s\": %s is not valid Lua: %s", name, script, cerr);
        free(cerr);
        return -1;
    }
    return 0;
}

static int check_string(lua_State *L, const char *key, char **err)
{
    lua_getfield(L, 1, key);
    int t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TNIL && t != LUA_TSTRING) return set_error(err, "partykit.json: \"%s\" must be a string", key);
    return 0;
}

static int decode_json(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    size_t len = (size_t)lua_tointeger(L, 2);
    lua_settop(L, 0);
    luaopen_cjson(L);
    lua_getfield(L, -1, "decode");
    lua_pushlstring(L, text, len);
    lua_call(L, 1, 1);
    return 1;
}

/* serve.build (a string, or {entry, outdir, ...}) at the top of the stack:
 * luaparty does not bundle, so say so, with the esbuild command that makes
 * what `partykit dev` would have (its defaults: bundle, esm, splitting,
 * source maps, outdir <serve path>/dist). */
static void warn_serve_build(lua_State *L, const char *serve_path)
{
    buf entry, outdir;
    buf_init(&entry);
    buf_init(&outdir);
    int build = lua_gettop(L);
    if (lua_istable(L, build)) lua_getfield(L, build, "entry");
    else lua_pushvalue(L, build);
    if (lua_type(L, -1) == LUA_TSTRING) buf_appendstr(&entry, lua_tostring(L, -1));
    else if (lua_istable(L, -1))
        for (int i = 1; i <= (int)lua_objlen(L, -1); i++) {
            lua_rawgeti(L, -1, i);
            if (lua_type(L, -1) == LUA_TSTRING) buf_printf(&entry, "%s%s", entry.len ? " " : "", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    if (lua_istable(L, build)) lua_getfield(L, build, "outdir");
    else lua_pushnil(L);
    if (lua_type(L, -1) == LUA_TSTRING) buf_appendstr(&outdir, lua_tostring(L, -1));
    else buf_printf(&outdir, "%s/dist", serve_path ? serve_path : "public");
    lua_settop(L, build);
    log_warn("partykit.json: \"serve.build\" is ignored: luaparty serves %s as it is and bundles nothing. Bundle "
             "the client yourself, beside luaparty dev, with the esbuild PartyKit uses: npx esbuild %s --bundle "
             "--format=esm --splitting --sourcemap --outdir=%s --watch (README \"Porting from PartyKit\")",
             serve_path ? serve_path : "the folder", entry.len ? entry.data : "<entry>", outdir.data);
    buf_free(&entry);
    buf_free(&outdir);
}

/* The keys of a "serve" object (the table at the top of the stack): path and
 * singlePageApp are used, build and PartyKit's cache and filter settings
 * warn, anything else is a mistake. */
static int check_serve_keys(lua_State *L, const char *path, char **err)
{
    static const struct { const char *key, *instead; } keys[] = {
        {"path", NULL}, {"singlePageApp", NULL}, {"build", NULL},
        {"include", "luaparty serves every file under \"path\""},
        {"exclude", "luaparty serves every file under \"path\""},
        {"browserTTL", "files are served with an ETag and cache-control: no-cache"},
        {"edgeTTL", "files are served with an ETag and cache-control: no-cache"},
    };
    size_t n = sizeof keys / sizeof *keys;
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        size_t i = 0;
        while (i < n && strcmp(keys[i].key, key) != 0) i++;
        if (i == n) return unknown_key(err, "serve", key, keys, n, sizeof *keys);
        if (!strcmp(key, "build")) warn_serve_build(L, path);
        else if (keys[i].instead) log_warn("partykit.json: \"serve.%s\" is ignored by luaparty: %s", key, keys[i].instead);
    }
    return 0;
}

/* "serve": "public" or { "path": "public", "singlePageApp": true } */
static int load_serve(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "serve");
    const char *path = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        path = lua_tostring(L, -1);
    } else if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "path");
        path = lua_tostring(L, -1);
        lua_getfield(L, -2, "singlePageApp");
        cfg->serve_spa = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        int bad = check_serve_keys(L, path, err);
        lua_pop(L, 2); /* the serve object's copy, and path (kept on the stack while path is used) */
        if (bad) return -1;
        if (!path) return set_error(err, "partykit.json: \"serve\": the object needs a \"path\"");
    } else if (!lua_isnil(L, -1)) {
        return set_error(err, "partykit.json: \"serve\" must be a folder name or { \"path\": ... }");
    }
    if (path) {
        char joined[PATH_MAX * 2], real[PATH_MAX];
        if (path[0] == '/') snprintf(joined, sizeof joined, "%s", path);
        else snprintf(joined, sizeof joined, "%s/%s", cfg->dir, path);
        if (!realpath(joined, real)) return set_error(err, "partykit.json: \"serve\": %s: %s", path, strerror(errno));
        cfg->serve_dir = xstrdup(real);
    }
    lua_pop(L, 1);
    return 0;
}

/* "crons": { "name": "* * * * *" } */
static int load_crons(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "crons");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) return set_error(err, "partykit.json: \"crons\" must be an object of name: schedule");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *name = lua_tostring(L, -2), *expr = lua_tostring(L, -1), *why = NULL;
        if (lua_type(L, -1) != LUA_TSTRING) return set_error(err, "partykit.json: crons: \"%s\" must be a string", name);
        cron_entry e = {0};
        if (cron_parse(expr, &e, &why) != 0)
            return set_error(err, "partykit.json: crons: \"%s\": \"%s\": %s", name, expr, why);
        e.name = xstrdup(name);
        e.expr = xstrdup(expr);
        cfg->crons = xrealloc(cfg->crons, (cfg->ncrons + 1) * sizeof *cfg->crons);
        cfg->crons[cfg->ncrons++] = e;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* "luaparty": our own settings; the command line overrides them. */
static int load_luaparty(lua_State *L, config *cfg, char **err)
{
    static const struct { const char *key; size_t off; int unit; } keys[] = {
        /* unit: 0 bytes/count (size_t), 1 seconds -> ms, 2 ms (uint64_t) */
        {"maxMessage", offsetof(config, max_message), 0},
        {"roomMemory", offsetof(config, room_memory), 0},
        {"maxValue", offsetof(config, max_value), 0},
        {"maxConnections", offsetof(config, max_connections), 0},
        {"maxRoomConnections", offsetof(config, max_room_connections), 0},
        {"maxHeader", offsetof(config, max_header), 0},
        {"maxHeaders", offsetof(config, max_headers), 0},
        {"maxBody", offsetof(config, max_body), 0},
        {"maxOutput", offsetof(config, max_output), 0},
        {"cpuLimit", offsetof(config, cpu_limit_ms), 2},
        {"idleTimeout", offsetof(config, idle_timeout_ms), 1},
        {"pingInterval", offsetof(config, ping_interval_ms), 1},
        {"headerTimeout", offsetof(config, header_timeout_ms), 1},
        {"keepaliveTimeout", offsetof(config, keepalive_timeout_ms), 1},
        {"fetchTimeout", offsetof(config, fetch_timeout_ms), 1},
        {"fetchMaxBytes", offsetof(config, fetch_max_bytes), 0},
        {"workers", offsetof(config, workers), 0},
    };
    lua_getfield(L, 1, "luaparty");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) return set_error(err, "partykit.json: \"luaparty\" must be an object");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *key = lua_tostring(L, -2);
        if (strcmp(key, "cluster") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                return set_error(err, "partykit.json: luaparty.cluster must be a redis:// or unix: URL");
            if (!cfg->cluster.url) cfg->cluster.url = xstrdup(lua_tostring(L, -1)); /* --cluster wins */
            lua_pop(L, 1);
            continue;
        }
        if (strcmp(key, "clusterStorage") == 0) {
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (strcmp(v, "redis") != 0 && strcmp(v, "local") != 0)
                return set_error(err, "partykit.json: luaparty.clusterStorage must be \"redis\" or \"local\"");
            cfg->cluster.local_storage = strcmp(v, "local") == 0;
            lua_pop(L, 1);
            continue;
        }
        if (strcmp(key, "cors") == 0) {
            if (lua_type(L, -1) == LUA_TBOOLEAN) {
                free(cfg->cors_origin);
                cfg->cors_origin = lua_toboolean(L, -1) ? xstrdup("*") : NULL;
            } else if (lua_type(L, -1) == LUA_TSTRING) {
                free(cfg->cors_origin);
                cfg->cors_origin = xstrdup(lua_tostring(L, -1));
            } else {
                return set_error(err, "partykit.json: luaparty.cors must be true, false or an origin");
            }
            lua_pop(L, 1);
            continue;
        }
        if (strcmp(key, "outbound") == 0) {
            if (!lua_istable(L, -1)) return set_error(err, "partykit.json: luaparty.outbound must be an array of host names");
            size_t n = lua_objlen(L, -1);
            cfg->outbound = xcalloc(n ? n : 1, sizeof *cfg->outbound);
            for (size_t j = 1; j <= n; j++) {
                lua_rawgeti(L, -1, (int)j);
                if (lua_type(L, -1) != LUA_TSTRING)
                    return set_error(err, "partykit.json: luaparty.outbound[%zu] must be a host name", j);
                cfg->outbound[cfg->noutbound++] = xstrdup(lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            continue;
        }
        size_t i = 0, n = sizeof keys / sizeof *keys;
        while (i < n && strcmp(keys[i].key, key) != 0) i++;
        if (i == n) return unknown_key(err, "luaparty", key, keys, n, sizeof *keys);
        lua_Number v = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || v < 0 || (keys[i].unit != 2 && v == 0))
            return set_error(err, "partykit.json: luaparty.%s must be a positive number", key);
        char *field = (char *)cfg + keys[i].off;
        if (keys[i].unit == 0) *(size_t *)field = (size_t)v;
        else *(uint64_t *)field = (uint64_t)(keys[i].unit == 1 ? v * 1000 : v);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* cjson's error ("Expected value but found T_END at character 42", the
 * character a 1-based byte offset) as an editor shows it:
 * "partykit.json:3:5: not valid JSON: expected value but found the end of
 * the file". The column counts characters, not bytes. */
static void json_error(char **err, const char *text, size_t len, const char *msg)
{
    static const struct { const char *token, *words; } tokens[] = {
        {"T_OBJ_BEGIN", "'{'"}, {"T_OBJ_END", "'}'"}, {"T_ARR_BEGIN", "'['"}, {"T_ARR_END", "']'"},
        {"T_STRING", "a string"}, {"T_NUMBER", "a number"}, {"T_BOOLEAN", "a boolean"}, {"T_NULL", "null"},
        {"T_COLON", "':'"}, {"T_COMMA", "','"}, {"T_END", "the end of the file"},
    };
    const char *at = strstr(msg, " at character ");
    if (!at) {
        set_error(err, "partykit.json is not valid JSON: %s", msg);
        return;
    }
    size_t offset = strtoul(at + 14, NULL, 10), line = 1, col = 1;
    for (size_t i = 0; i + 1 < offset && i < len; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            col++;
        }
    }
    char why[256];
    snprintf(why, sizeof why, "%.*s", (int)(at - msg), msg);
    if (why[0] >= 'A' && why[0] <= 'Z') why[0] = (char)(why[0] - 'A' + 'a');
    char *found = strstr(why, "found T_");
    for (size_t i = 0; found && i < sizeof tokens / sizeof *tokens; i++) {
        if (strcmp(found + 6, tokens[i].token) != 0) continue;
        snprintf(found + 6, sizeof why - (size_t)(found + 6 - why), "%s", tokens[i].words);
        break;
    }
    set_error(err, "partykit.json:%zu:%zu: not valid JSON: %s", line, col, why);
}

/* What a JSON text holds at its top, from its first byte after whitespace
 * (cjson decodes an array to a table, as it does an object). */
static const char *json_top_type(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", text[i])) i++;
    if (i == len) return "nothing";
    switch (text[i]) {
    case '{': return "an object";
    case '[': return "an array";
    case '"': return "a string";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

/* Reads partykit.json and decodes it into a fresh Lua state, the object at
 * index 1. Returns the state, or NULL with *err. */
static lua_State *read_project(const config *cfg, char **err)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "%s/partykit.json", cfg->dir);
    char *path = buf_steal(&b);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        set_error(err, "%s: cannot read: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    free(path);
    lua_State *L = luaL_newstate();
    lua_pushcfunction(L, decode_json);
    lua_pushlightuserdata(L, text);
    lua_pushinteger(L, (lua_Integer)len);
    int rc = lua_pcall(L, 2, 1, 0);
    const char *top = json_top_type(text, len);
    if (rc != 0) {
        json_error(err, text, len, lua_tostring(L, -1));
    } else if (strcmp(top, "an object") != 0) {
        set_error(err, "partykit.json must hold a JSON object, not %s", top);
    } else {
        free(text);
        lua_settop(L, 1); /* the decoded object is now the only value: index 1 */
        return L;
    }
    free(text);
    lua_close(L);
    return NULL;
}

/* Every top-level key must be known; known but unsupported ones warn. */
static int check_keys(lua_State *L, char **err)
{
    const size_t nknown = sizeof known_keys / sizeof *known_keys;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        const char *key = lua_tostring(L, -1);
        bool found = false;
        for (size_t i = 0; i < nknown; i++) {
            if (strcmp(key, known_keys[i].key) != 0) continue;
            found = true;
            if (known_keys[i].instead)
                log_warn("partykit.json: \"%s\" is ignored by luaparty: %s", key, known_keys[i].instead);
        }
        if (!found) return unknown_key(err, NULL, key, known_keys, nknown, sizeof *known_keys);
    }
    return check_string(L, "name", err) || check_string(L, "main", err) ? -1 : 0;
}

/* One entry of "parties" (name at -2, script at -1). */
static int load_named_party(lua_State *L, config *cfg, char **err)
{
    size_t nlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    if (!config_valid_party_name(name, nlen))
        return set_error(err,
                         "partykit.json: parties: \"%s\" is not a valid party name (use letters, digits, '_' and '-')",
                         name);
    if (strcmp(name, "main") == 0)
        return set_error(err, "partykit.json: parties: \"main\" is the party of the \"main\" key; pick another name");
    if (lua_type(L, -1) != LUA_TSTRING)
        return set_error(err, "partykit.json: parties: \"%s\" must name a script file", name);
    return add_party(cfg, name, lua_tostring(L, -1), err);
}

/* "main" and "parties": the main party first, then the others. */
static int load_parties(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "main");
    if (!lua_isstring(L, -1))
        return set_error(err, "partykit.json: \"main\" is missing: it names the script of the main party");
    lua_getfield(L, 1, "parties");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        return set_error(err, "partykit.json: \"parties\" must be an object of name: script");
    size_t nparties = 1;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            nparties++;
            lua_pop(L, 1);
        }
    }
    cfg->parties = xcalloc(nparties, sizeof(party *));
    if (add_party(cfg, "main", lua_tostring(L, -2), err)) return -1;
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (load_named_party(L, cfg, err)) return -1;
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 1);
    return 0;
}

static const char *const env_sources[4] = {"partykit.json \"vars\"", ".env", ".env.local", "--var"};

typedef struct env_fill {
    lua_State *L; /* the env table is at its top */
    size_t n;
} env_fill;

/* dotenv_fn: env[key] = value. */
static void set_env(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    env_fill *f = ud;
    lua_pushlstring(f->L, key, klen);
    lua_pushlstring(f->L, val, vlen);
    lua_rawset(f->L, -3);
    f->n++;
}

/* <dir>/.env or .env.local, if it exists, into the table at the top of the
 * stack. Errors name the file and the line, never a value. */
static int load_env_file(lua_State *L, config *cfg, int source, char **err)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "%s/%s", cfg->dir, env_sources[source]);
    char *path = buf_steal(&b);
    size_t len;
    char *text = read_file(path, &len);
    free(path);
    if (!text) return errno == ENOENT ? 0 : set_error(err, "%s: cannot read: %s", env_sources[source], strerror(errno));
    env_fill f = {L, 0};
    char *why = NULL;
    int rc = dotenv_parse(text, len, set_env, &f, &why);
    free(text);
    cfg->env_counts[source] = f.n;
    if (rc == 0) return 0;
    set_error(err, "%s: %s", env_sources[source], why);
    free(why);
    return -1;
}

typedef struct env_entry {
    char *key;   /* the name (binary-safe copy), to sort by */
    size_t klen;
    char *json;  /* "name":value */
} env_entry;

static int cmp_env_entry(const void *a, const void *b)
{
    const env_entry *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The env table at the top of the stack as a JSON object with its names in
 * byte order, into cfg->vars_json: the same env gives the same text at
 * every load (a Lua table's order differs from state to state), so a
 * reload tells changed vars from unchanged ones by comparing the text. */
static int encode_env(lua_State *L, config *cfg, char **err)
{
    int env = lua_gettop(L);
    size_t n = 0, cap = 8;
    env_entry *es = xcalloc(cap, sizeof *es);
    luaopen_cjson(L);
    lua_getfield(L, -1, "encode");
    int enc = lua_gettop(L);
    int rc = 0;
    for (lua_pushnil(L); lua_next(L, env); lua_pop(L, 1)) {
        lua_pushvalue(L, -2); /* the name as a string (a copy: lua_next needs the key as it is) */
        size_t kl;
        const char *k = lua_tolstring(L, -1, &kl);
        lua_pushvalue(L, enc);
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 1, 0) != 0) goto bad;
        lua_pushvalue(L, enc);
        lua_pushvalue(L, -4); /* the value */
        if (lua_pcall(L, 1, 1, 0) != 0) goto bad;
        if (n == cap) es = xrealloc(es, (cap *= 2) * sizeof *es);
        buf b;
        buf_init(&b);
        buf_appendstr(&b, lua_tostring(L, -2));
        buf_appendstr(&b, ":");
        buf_appendstr(&b, lua_tostring(L, -1));
        es[n] = (env_entry){xmalloc(kl ? kl : 1), kl, buf_steal(&b)};
        memcpy(es[n++].key, k, kl);
        lua_pop(L, 3);
    }
    qsort(es, n, sizeof *es, cmp_env_entry);
    buf out;
    buf_init(&out);
    buf_appendstr(&out, "{");
    for (size_t i = 0; i < n; i++) buf_printf(&out, "%s%s", i ? "," : "", es[i].json);
    buf_appendstr(&out, "}");
    cfg->vars_json = buf_steal(&out);
    goto done;
bad:
    rc = set_error(err, "partykit.json: \"vars\": %s", lua_tostring(L, -1));
done:
    for (size_t i = 0; i < n; i++) {
        free(es[i].key);
        free(es[i].json);
    }
    free(es);
    lua_settop(L, 1);
    return rc;
}

/* room.env, as JSON text each room decodes: partykit.json "vars", then
 * .env, then .env.local, then --var, each overriding the ones before (as
 * PartyKit: the command line wins). */
static int load_vars(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "vars");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1)) return set_error(err, "partykit.json: \"vars\" must be an object");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    memset(cfg->env_counts, 0, sizeof cfg->env_counts);
    for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) cfg->env_counts[0]++;
    if (load_env_file(L, cfg, 1, err) || load_env_file(L, cfg, 2, err)) return -1;
    env_fill f = {L, 0};
    for (size_t i = 0; i < cfg->ncli_vars; i++) {
        const char *eq = strchr(cfg->cli_vars[i], '='); /* cli.c checked there is one */
        if (eq) set_env(&f, cfg->cli_vars[i], (size_t)(eq - cfg->cli_vars[i]), eq + 1, strlen(eq + 1));
    }
    cfg->env_counts[3] = f.n;
    return encode_env(L, cfg, err);
}

void config_log_env(const config *cfg)
{
    buf b;
    buf_init(&b);
    for (int i = 0; i < 4; i++)
        if (cfg->env_counts[i])
            buf_printf(&b, "%s%zu from %s", b.len ? ", " : "", cfg->env_counts[i], env_sources[i]);
    if (b.len) log_info("room.env: %s (values are never logged)", b.data);
    buf_free(&b);
}

/* "port" and "persist": the command line wins over both. */
static int load_port_persist(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "port");
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0 || lua_tonumber(L, -1) > 65535)
            return set_error(err, "partykit.json: \"port\" must be a number from 0 to 65535");
        if (cfg->port < 0) cfg->port = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "persist");
    if (lua_type(L, -1) == LUA_TSTRING && !cfg->persist_dir) {
        buf p;
        buf_init(&p);
        const char *v = lua_tostring(L, -1);
        if (v[0] == '/') buf_appendstr(&p, v);
        else buf_printf(&p, "%s/%s", cfg->dir, v);
        cfg->persist_dir = buf_steal(&p);
    }
    lua_pop(L, 1);
    return 0;
}

static void apply_defaults(config *cfg)
{
    if (cfg->port < 0) cfg->port = 1999;
    if (!cfg->persist_dir) {
        buf p;
        buf_init(&p);
        buf_printf(&p, "%s/.luaparty", cfg->dir);
        cfg->persist_dir = buf_steal(&p);
    }
}

int config_load(config *cfg, char **err)
{
    lua_State *L = read_project(cfg, err);
    int rv = -1;
    if (L) {
        lua_getfield(L, 1, "name");
        cfg->name = xstrdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "luaparty");
        lua_pop(L, 1);
        rv = check_keys(L, err) || load_parties(L, cfg, err) || load_vars(L, cfg, err) ||
                     load_port_persist(L, cfg, err) || load_serve(L, cfg, err) || load_crons(L, cfg, err) ||
                     load_luaparty(L, cfg, err)
                 ? -1
                 : 0;
        lua_close(L);
    }
    apply_defaults(cfg);
    return rv;
}

int config_load_storage(config *cfg, char **err)
{
    lua_State *L = read_project(cfg, err);
    int rv = -1;
    if (L) {
        rv = load_port_persist(L, cfg, err);
        lua_close(L);
    }
    apply_defaults(cfg);
    return rv;
}

void config_free_project(config *cfg)
{
    for (size_t i = 0; i < cfg->ncrons; i++) {
        free(cfg->crons[i].name);
        free(cfg->crons[i].expr);
    }
    free(cfg->crons);
    cfg->crons = NULL;
    cfg->ncrons = 0;
    free(cfg->serve_dir);
    free(cfg->cors_origin);
    cfg->serve_dir = cfg->cors_origin = NULL;
    for (size_t i = 0; i < cfg->noutbound; i++) free(cfg->outbound[i]);
    free(cfg->outbound);
    cfg->outbound = NULL;
    cfg->noutbound = 0;
    for (size_t i = 0; i < cfg->nparties; i++) party_free(cfg->parties[i]);
    free(cfg->parties);
    free(cfg->name);
    free(cfg->vars_json);
    cfg->parties = NULL;
    cfg->nparties = 0;
    cfg->name = cfg->vars_json = NULL;
}

void config_free(config *cfg)
{
    config_free_project(cfg);
    for (size_t i = 0; i < cfg->nretired; i++) party_free(cfg->retired[i]);
    free(cfg->retired);
    free(cfg->dir);
    free(cfg->host);
    free(cfg->persist_dir);
    free(cfg->metrics_addr);
    for (size_t i = 0; i < cfg->ncli_vars; i++) free(cfg->cli_vars[i]);
    free(cfg->cli_vars);
    free(cfg->tls_ca);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->cluster.url);
    free(cfg->cluster.node_id);
    free(cfg->cluster.internal_host);
    free(cfg->cluster.advertise);
    free(cfg->cluster.secret);
    memset(cfg, 0, sizeof *cfg);
}
