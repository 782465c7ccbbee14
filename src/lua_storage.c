/* lua_storage.c - room.storage for Lua: get, put, delete.
 *
 * Writes go to the room's write buffer (room->writes) and are committed at
 * the end of the callback step (room.c); reads look in that buffer first, so
 * a callback reads its own writes. */
#include "codec.h"
#include "config.h"
#include "lua_bind.h"
#include "room.h"
#include "storage.h"
#include "worker.h"

#include <stdlib.h>

#define MAX_KEY 2048
#define MAX_VALUE (128 * 1024)

static const char *check_key(lua_State *L, int idx, size_t *len)
{
    const char *key = luaL_checklstring(L, idx, len);
    if (*len > MAX_KEY) luaL_error(L, "storage key is %d bytes; the limit is %d", (int)*len, MAX_KEY);
    return key;
}

/* Looks the key up in the write buffer, then in the database. Returns 1 and
 * pushes the value if found; 0 if absent or deleted. */
static int lookup(lua_State *L, room *r, const char *key, size_t klen)
{
    dict_entry *e = dict_find(&r->writes, key, klen);
    if (e) {
        buf *v = e->val;
        if (!v) return 0; /* deleted in this batch */
        if (codec_decode(L, v->data, v->len) != 0) return luaL_error(L, "storage: corrupt pending value");
        return 1;
    }
    buf out;
    buf_init(&out);
    const char *err = NULL;
    int found = storage_get(r->owner->store, r->party->name, r->id, key, klen, &out, &err);
    if (found < 0) {
        buf_free(&out);
        return luaL_error(L, "storage read failed: %s", err);
    }
    if (found) {
        int bad = codec_decode(L, out.data, out.len);
        buf_free(&out);
        if (bad) return luaL_error(L, "storage: the value of key '%s' is corrupt", key);
    }
    return found;
}

static int l_get(lua_State *L)
{
    room *r = room_from_state(L);
    size_t klen;
    const char *key = check_key(L, 1, &klen);
    if (!lookup(L, r, key, klen)) lua_pushnil(L);
    return 1;
}

static void set_pending(room *r, const char *key, size_t klen, buf *value)
{
    dict_entry *e = dict_upsert(&r->writes, key, klen, NULL);
    storage_value_free(e->val);
    e->val = value;
}

static int l_put(lua_State *L)
{
    room *r = room_from_state(L);
    size_t klen;
    const char *key = check_key(L, 1, &klen);
    luaL_checkany(L, 2);
    if (lua_isnil(L, 2)) return luaL_error(L, "storage:put() of nil: use storage:delete(key)");
    buf *v = xmalloc(sizeof *v);
    buf_init(v);
    char err[160];
    if (codec_encode(L, 2, v, err, sizeof err) != 0) {
        storage_value_free(v);
        return luaL_error(L, "storage:put('%s'): %s", key, err);
    }
    if (v->len > MAX_VALUE) {
        size_t n = v->len;
        storage_value_free(v);
        return luaL_error(L, "storage:put('%s'): value is %d bytes encoded; the limit is %d", key, (int)n,
                          MAX_VALUE);
    }
    set_pending(r, key, klen, v);
    return 0;
}

static int l_delete(lua_State *L)
{
    room *r = room_from_state(L);
    size_t klen;
    const char *key = check_key(L, 1, &klen);
    int existed = lookup(L, r, key, klen);
    set_pending(r, key, klen, NULL);
    lua_pushboolean(L, existed);
    return 1;
}

void lua_storage_register(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"storage_get", l_get}, {"storage_put", l_put}, {"storage_delete", l_delete}, {NULL, NULL}};
    luaL_register(L, NULL, fns);
}
