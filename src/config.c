/* config.c - reading partykit.json.
 *
 * The JSON is decoded with lua-cjson in a throwaway Lua state (the same
 * decoder party code uses), then checked key by key. Every error names
 * partykit.json and the key, and an unknown key gets a "did you mean". */
#include "config.h"
#include "buf.h"
#include "lua_bind.h"
#include "cron_expr.h"
#include "script.h"
#include "log.h"
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

/* Keys PartyKit knows (config-schema.ts). Those marked used are honoured. */
static const struct { const char *key; bool used; } known_keys[] = {
    {"$schema", true}, {"name", true}, {"main", true}, {"parties", true}, {"vars", true},
    {"port", true}, {"persist", true}, {"team", false}, {"define", false}, {"serve", true},
    {"build", false}, {"crons", true}, {"compatibilityDate", false}, {"compatibilityFlags", false},
    {"minify", false}, {"ai", false}, {"vectorize", false}, {"bindings", false}, {"analytics", false},
    {"domain", false}, {"preview", false}, {"logpush", false}, {"tailConsumers", false},
    {"observability", false}, {"placement", false}, {"luaparty", true},
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

static const char *nearest_key(const char *key)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < sizeof known_keys / sizeof *known_keys; i++) {
        size_t d = edit_distance(key, known_keys[i].key);
        if (d < best_d) {
            best_d = d;
            best = known_keys[i].key;
        }
    }
    return best_d <= 3 ? best : NULL;
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

/* Loads a party script and compiles it, so syntax errors stop start-up with
 * file:line instead of failing on the first request. */
static int add_party(config *cfg, const char *name, const char *script, char **err)
{
    party *p = xcalloc(1, sizeof *p);
    cfg->parties[cfg->nparties] = p;
    p->name = xstrdup(name);
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
        lua_pop(L, 2);
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
        if (i == n) {
            const char *best = NULL;
            size_t best_d = 4;
            for (size_t j = 0; j < n; j++) {
                size_t d = edit_distance(key, keys[j].key);
                if (d < best_d) best_d = d, best = keys[j].key;
            }
            return best ? set_error(err, "partykit.json: unknown key luaparty.%s (did you mean \"%s\"?)", key, best)
                        : set_error(err, "partykit.json: unknown key luaparty.%s", key);
        }
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
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) continue;
        const char *key = lua_tostring(L, -1);
        bool found = false;
        for (size_t i = 0; i < sizeof known_keys / sizeof *known_keys; i++) {
            if (strcmp(key, known_keys[i].key) != 0) continue;
            found = true;
            if (!known_keys[i].used)
                log_warn("partykit.json: \"%s\" is not supported by luaparty yet and is ignored", key);
        }
        if (!found) {
            const char *near = nearest_key(key);
            if (near) return set_error(err, "partykit.json: unknown key \"%s\" (did you mean \"%s\"?)", key, near);
            return set_error(err, "partykit.json: unknown key \"%s\"", key);
        }
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

/* "vars": kept as JSON text, which each room decodes into room.env. */
static int load_vars(lua_State *L, config *cfg, char **err)
{
    lua_getfield(L, 1, "vars");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1)) return set_error(err, "partykit.json: \"vars\" must be an object");
    if (!lua_istable(L, -1)) {
        cfg->vars_json = xstrdup("{}");
        lua_settop(L, 1);
        return 0;
    }
    luaopen_cjson(L);
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -3);
    if (lua_pcall(L, 1, 1, 0) != 0) return set_error(err, "partykit.json: \"vars\": %s", lua_tostring(L, -1));
    cfg->vars_json = xstrdup(lua_tostring(L, -1));
    lua_settop(L, 1);
    return 0;
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
