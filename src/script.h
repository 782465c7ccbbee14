/* script.h - compiling a party's Lua source once (script.c). */
#ifndef LP_SCRIPT_H
#define LP_SCRIPT_H

#include <stddef.h>

/* Compiles source (named chunkname in error messages: "@path" gives
 * file:line) to LuaJIT bytecode. Returns the bytecode (caller frees) with
 * *len set, or NULL with *err (caller frees): the syntax error, file:line
 * first. */
char *script_compile(const char *source, size_t source_len, const char *chunkname, size_t *len, char **err);

#endif
