/* wsclient.h - outbound WebSockets from party code (luaparty.connect). */
#ifndef LP_WSCLIENT_H
#define LP_WSCLIENT_H

#include <lua.h>

/* Registers core.ws_connect into the table on top of the stack. */
void lua_wsclient_register(lua_State *L);

#endif
