/* gen_codec_seeds.c - writes the fuzz_codec seed corpus: the encodings of
 * a few Lua values (every tag, nesting, binary strings, edge numbers).
 *   gen_codec_seeds OUTDIR */
#include "codec.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

static const char *values[] = {
    "return nil",
    "return true",
    "return false",
    "return 0",
    "return -0.0",
    "return 1/0",
    "return -1/0",
    "return 2^53",
    "return 3.25",
    "return ''",
    "return 'hello'",
    "return 'bin\\0ary\\255\\1'",
    "return string.rep('x', 200)",
    "return {}",
    "return {1, 2, 3}",
    "return {a = 1, b = 'two', c = true, d = false}",
    "return {[1] = 'one', x = {y = {z = {}}}}",
    "return {list = {1, 2, {3, 4}}, map = {k = 'v'}, [2.5] = 'float key', [-1] = 'neg'}",
    "return {['\\0'] = '\\0', [''] = ''}",
    "local t = {} local c = t for i = 1, 50 do c.n = {} c = c.n end return t",
    "local t = {} for i = 1, 40 do t['k' .. i] = i end return t",
    "return {connections = {room1 = 3, room2 = 0}}",
    NULL,
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    for (int i = 0; values[i]; i++) {
        lua_settop(L, 0);
        if (luaL_dostring(L, values[i]) != 0) {
            fprintf(stderr, "%s: %s\n", values[i], lua_tostring(L, -1));
            return 1;
        }
        buf b;
        buf_init(&b);
        char err[256];
        if (codec_encode(L, 1, &b, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", values[i], err);
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%02d", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
        buf_free(&b);
    }
    lua_close(L);
    return 0;
}
