/* sandbox.h - building a room's lua_State: capped allocator, the libraries a
 * party may use, the luaparty modules, and the party script itself. */
#ifndef LP_SANDBOX_H
#define LP_SANDBOX_H

struct room;

/* Creates r->L, loads the party script and the runtime, makes the instance.
 * Returns 0, or -1 with *err (caller frees) holding the Lua error. */
int sandbox_open_room(struct room *r, char **err);

#endif
