/* script.c - a party's script compiled once, at start-up and on reload:
 * a syntax error stops start-up (or is reported by the reload) with
 * file:line instead of failing on the first request, and every room loads
 * the same bytecode instead of parsing the source again (sandbox.c). */
#include "script.h"
#include "buf.h"
#include "util.h"

#include <lauxlib.h>
#include <lua.h>

static int dump_writer(lua_State *L, const void *data, size_t len, void *ud)
{
    buf_append(ud, data, len);
    return 0;
}

char *script_compile(const char *source, size_t source_len, const char *chunkname, size_t *len, char **err)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        *err = xstrdup("out of memory compiling the party script");
        return NULL;
    }
    if (luaL_loadbuffer(L, source, source_len, chunkname) != 0) {
        *err = xstrdup(lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    buf b;
    buf_init(&b);
    lua_dump(L, dump_writer, &b);
    lua_close(L);
    *len = b.len;
    return buf_steal(&b);
}
