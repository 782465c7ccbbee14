/* lua_storage.c - room.storage for Lua: get, put, delete, list, deleteAll,
 * transaction savepoints and alarms.
 *
 * Writes go into the open storage batch (storage.h) and mark the room dirty;
 * room.c commits at the end of the callback step and holds the room's output
 * until then. Reads see the batch, so a callback reads its own writes. */
#include "codec.h"
#include "config.h"
#include "lua_storage.h"
#include "room.h"
#include "storage.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#define MAX_KEY 2048

static storage *store_of(room *r) { return r->owner->store; }

static const char *check_key(lua_State *L, int idx, size_t *len)
{
    const char *key = luaL_checklstring(L, idx, len);
    if (*len > MAX_KEY) luaL_error(L, "storage key is %d bytes; the limit is %d", (int)*len, MAX_KEY);
    return key;
}

static int storage_error(lua_State *L, storage *s, const char *what, const char *err)
{
    return luaL_error(L, "storage %s failed (%s): %s", what, storage_path(s), err ? err : "unknown error");
}

static void mark_dirty(room *r) { r->dirty = true; }

/* The room set or deleted its alarm: re-arm, and if onAlarm is running, the
 * alarm is the room's from now on (runner.c leaves it alone when it ends). */
static void alarm_touched(room *r)
{
    r->alarm_changed = true;
    if (r->alarm_lease) r->alarm_touched = true;
}

void lua_storage_push_value(lua_State *L, storage *s, const char *party_name, const char *room_id, const char *key,
                            size_t klen)
{
    buf *out = storage_scratch(s); /* the storage's: nothing to free if decoding raises */
    const char *err = NULL;
    int found = storage_get(s, party_name, room_id, key, klen, out, &err);
    if (found < 0) storage_error(L, s, "read", err);
    if (!found) lua_pushnil(L);
    else if (codec_decode(L, out->data, out->len)) luaL_error(L, "storage: the value of key '%s' is corrupt", key);
}

void lua_storage_encode(lua_State *L, int idx, const char *key, size_t max, buf *out)
{
    char err[200];
    if (codec_encode(L, idx, out, err, sizeof err) != 0) {
        buf_free(out);
        luaL_error(L, "storage:put('%s'): %s; nothing was written", key, err);
    }
    if (out->len > max) {
        size_t n = out->len;
        buf_free(out);
        luaL_error(L, "storage:put('%s'): the value is %d bytes encoded; the limit is %d", key, (int)n, (int)max);
    }
}

/* Pushes the value stored under the key at idx (nil if none). */
static void push_stored(lua_State *L, room *r, int idx)
{
    size_t klen;
    const char *key = check_key(L, idx, &klen);
    storage_begin_read(store_of(r)); /* until the step ends (room_commit) */
    lua_storage_push_value(L, store_of(r), r->party->name, r->id, key, klen);
}

/* Stores the value at vidx under the key at kidx: raises (writing nothing)
 * if the value cannot be stored. */
static void put_value(lua_State *L, room *r, int kidx, int vidx)
{
    size_t klen;
    const char *key = check_key(L, kidx, &klen);
    luaL_checkany(L, vidx); /* nil is a value like any other: get returns nil */
    buf *v = storage_scratch(store_of(r)); /* the storage's: no allocation per put */
    lua_storage_encode(L, vidx, key, r->owner->cfg->max_value, v);
    const char *serr = NULL;
    int rc = storage_put(store_of(r), r->party->name, r->id, key, klen, v->data, v->len, &serr);
    mark_dirty(r);
    if (rc) storage_error(L, store_of(r), "write", serr);
}

/* Deletes the key at idx: 1 if it existed. */
static int delete_key(lua_State *L, room *r, int idx)
{
    size_t klen;
    const char *key = check_key(L, idx, &klen);
    const char *err = NULL;
    int rc = storage_delete(store_of(r), r->party->name, r->id, key, klen, &err);
    mark_dirty(r);
    if (rc < 0) storage_error(L, store_of(r), "delete", err);
    return rc;
}

/* core.storage_put(key, value) */
static int l_put(lua_State *L)
{
    put_value(L, room_from_state(L), 1, 2);
    return 0;
}

/* ---- room.storage's get, put and delete (runtime.lua) ----
 * C functions with the storage object as argument 1, so a get or put from
 * party code is one call, without a Lua method in between. The forms that
 * take a table of keys run their loop here too; put of a table of pairs,
 * which must be all or nothing, calls back the Lua function it was made
 * with (a pcall around a transaction). */

/* The i-th key of the array at idx, pushed (keys as ipairs walks them:
 * up to the first nil); false at the end. */
static bool push_nth_key(lua_State *L, int idx, int i, const char *method)
{
    lua_rawgeti(L, idx, i);
    int t = lua_type(L, -1);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "storage:%s({...}): keys must be strings, got %s", method, lua_typename(L, t));
    return true;
}

/* storage:get(key) -> value; storage:get({k1, k2}) -> {k1 = v1, ...} (missing keys absent) */
static int m_get(lua_State *L)
{
    room *r = room_from_state(L);
    if (lua_type(L, 2) != LUA_TTABLE) {
        push_stored(L, r, 2);
        return 1;
    }
    lua_settop(L, 2);
    lua_newtable(L);
    for (int i = 1; push_nth_key(L, 2, i, "get"); i++) { /* keys, out, key */
        push_stored(L, r, 4);
        lua_rawset(L, 3);
    }
    return 1;
}

/* storage:put(key, value); storage:put({k1 = v1, ...}) (upvalue 1) */
static int m_put(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE && lua_isnoneornil(L, 3)) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_pushvalue(L, 2);
        lua_call(L, 1, 0);
        return 0;
    }
    put_value(L, room_from_state(L), 2, 3);
    return 0;
}

/* storage:delete(key) -> existed; storage:delete({k1, ...}) -> count deleted */
static int m_delete(lua_State *L)
{
    room *r = room_from_state(L);
    if (lua_type(L, 2) != LUA_TTABLE) {
        lua_pushboolean(L, delete_key(L, r, 2));
        return 1;
    }
    lua_settop(L, 2);
    int n = 0;
    for (int i = 1; push_nth_key(L, 2, i, "delete"); i++) {
        n += delete_key(L, r, 3);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, n);
    return 1;
}

/* core.storage_methods(put_all) -> get, put, delete */
static int l_methods(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushcfunction(L, m_get);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, m_put, 1);
    lua_pushcfunction(L, m_delete);
    return 3;
}

static int l_delete_all(lua_State *L)
{
    room *r = room_from_state(L);
    const char *err = NULL;
    int rc = storage_delete_all(store_of(r), r->party->name, r->id, &err);
    mark_dirty(r);
    alarm_touched(r);
    if (rc < 0) return storage_error(L, store_of(r), "deleteAll", err);
    return 0;
}

typedef struct list_ctx {
    lua_State *L;
    int n;
    int bad;
} list_ctx;

static void list_row(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    list_ctx *lc = ud;
    lua_State *L = lc->L;
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, key, klen);
    lua_setfield(L, -2, "key");
    if (codec_decode(L, val, vlen) != 0) {
        lc->bad++;
        lua_pushnil(L);
    }
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, ++lc->n);
}

static const char *opt_field(lua_State *L, int t, const char *name, size_t *len)
{
    lua_getfield(L, t, name);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "storage:list: option '%s' must be a string", name);
        s = lua_tolstring(L, -1, len);
    }
    lua_pop(L, 1); /* the string stays alive: it is referenced by the options table */
    return s;
}

void lua_storage_check_range(lua_State *L, int idx, storage_range *range)
{
    memset(range, 0, sizeof *range);
    range->limit = -1;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    range->start = opt_field(L, idx, "start", &range->start_len);
    range->start_after = opt_field(L, idx, "startAfter", &range->start_after_len);
    range->end = opt_field(L, idx, "end", &range->end_len);
    range->prefix = opt_field(L, idx, "prefix", &range->prefix_len);
    lua_getfield(L, idx, "reverse");
    range->reverse = lua_toboolean(L, -1);
    lua_getfield(L, idx, "limit");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (!lua_isnumber(L, -1) || n < 0 || n != (lua_Number)(long)n)
            luaL_error(L, "storage:list: limit must be a non-negative integer");
        range->limit = (long)n;
    }
    lua_pop(L, 2);
}

void lua_storage_push_list(lua_State *L, storage *s, const char *party_name, const char *room_id,
                           const storage_range *range)
{
    lua_newtable(L);
    list_ctx lc = {L, 0, 0};
    const char *err = NULL;
    if (storage_list(s, party_name, room_id, range, list_row, &lc, &err) != 0) storage_error(L, s, "list", err);
    if (lc.bad) luaL_error(L, "storage:list: %d corrupt value(s)", lc.bad);
}

/* core.storage_list(options) -> array of {key=, value=} in key order */
static int l_list(lua_State *L)
{
    room *r = room_from_state(L);
    storage_range range;
    lua_storage_check_range(L, 1, &range);
    lua_storage_push_list(L, store_of(r), r->party->name, r->id, &range);
    return 1;
}

/* Transactions: savepoints inside the batch. A transaction cannot suspend
 * (lua_party.c checks r->in_transaction): its writes must commit or roll
 * back together, and a suspension ends the batch. */
static int l_txn_begin(lua_State *L)
{
    room *r = room_from_state(L);
    const char *err = NULL;
    if (storage_savepoint(store_of(r), &err)) return storage_error(L, store_of(r), "transaction", err);
    mark_dirty(r);
    r->in_transaction++;
    return 0;
}

static int l_txn_end(lua_State *L)
{
    room *r = room_from_state(L);
    bool commit = lua_toboolean(L, 1);
    const char *err = NULL;
    r->in_transaction--;
    int rc = commit ? storage_release(store_of(r), &err) : storage_rollback_to(store_of(r), &err);
    if (rc) return storage_error(L, store_of(r), "transaction", err);
    return 0;
}

static int l_set_alarm(lua_State *L)
{
    room *r = room_from_state(L);
    lua_Number at = luaL_checknumber(L, 1);
    luaL_argcheck(L, at == at && at > -1e18 && at < 1e18, 1, "alarm time must be epoch milliseconds");
    const char *err = NULL;
    int rc = storage_set_alarm(store_of(r), r->party->name, r->id, (int64_t)at, 0, &err);
    mark_dirty(r);
    alarm_touched(r);
    if (rc) return storage_error(L, store_of(r), "setAlarm", err);
    return 0;
}

static int l_get_alarm(lua_State *L)
{
    room *r = room_from_state(L);
    int64_t at;
    const char *err = NULL;
    int rc = storage_get_alarm(store_of(r), r->party->name, r->id, &at, NULL, &err);
    if (rc < 0) return storage_error(L, store_of(r), "getAlarm", err);
    /* the running alarm's own entry is bookkeeping, not a pending alarm */
    if (rc && (at != r->alarm_lease || r->alarm_touched)) lua_pushnumber(L, (lua_Number)at);
    else lua_pushnil(L);
    return 1;
}

static int l_delete_alarm(lua_State *L)
{
    room *r = room_from_state(L);
    const char *err = NULL;
    int rc = storage_delete_alarm(store_of(r), r->party->name, r->id, &err);
    mark_dirty(r);
    alarm_touched(r);
    if (rc) return storage_error(L, store_of(r), "deleteAlarm", err);
    return 0;
}

const luaL_Reg lua_storage_functions[] = {{"storage_methods", l_methods},
                                          {"storage_put", l_put},
                                          {"storage_delete_all", l_delete_all},
                                          {"storage_list", l_list},
                                          {"storage_txn_begin", l_txn_begin},
                                          {"storage_txn_end", l_txn_end},
                                          {"storage_set_alarm", l_set_alarm},
                                          {"storage_get_alarm", l_get_alarm},
                                          {"storage_delete_alarm", l_delete_alarm},
                                          {NULL, NULL}};
