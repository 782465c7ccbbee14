/* fetch.h - outbound HTTP(S) from party code: luaparty.fetch / global fetch. */
#ifndef LP_FETCH_H
#define LP_FETCH_H

#include <lua.h>

struct worker;

/* Registers core.http_fetch into the table on top of the stack. */
void lua_fetch_register(lua_State *L);
/* Closes pooled keep-alive connections (shutdown). */
void fetch_shutdown(void);

#endif
