/* dotenv.h - reading .env files: KEY=VALUE lines, read the way the dotenv
 * npm package (which PartyKit uses) reads them, so one file means the same
 * thing to both. Values may be secrets: no message here ever quotes one. */
#ifndef LP_DOTENV_H
#define LP_DOTENV_H

#include <stdbool.h>
#include <stddef.h>

/* One variable, in file order (a later one with the same key wins). */
typedef void (*dotenv_fn)(void *ud, const char *key, size_t klen, const char *val, size_t vlen);

/* Parses text; calls fn for each variable. Returns 0, or -1 with *err set
 * to "line N: ..." (caller frees), after which fn is not called again. */
int dotenv_parse(const char *text, size_t len, dotenv_fn fn, void *ud, char **err);
/* A variable name: [A-Za-z0-9_.-]+ (dotenv's). */
bool dotenv_valid_key(const char *s, size_t len);

#endif
