/* sandbox.h - building a room's lua_State: capped allocator, the libraries a
 * party may use, the luaparty modules, and the party script itself. */
#ifndef LP_SANDBOX_H
#define LP_SANDBOX_H

struct room;

/* Creates r->L, loads the party script and the runtime, makes the instance.
 * Returns 0, or -1 with *err (caller frees) holding the Lua error. */
int sandbox_open_room(struct room *r, char **err);

/* Limits around one callback step: arm sets the CPU deadline hook, disarm
 * removes it. See sandbox.c for why the hook re-arms itself, and for time
 * slices. cpu_left: what a paused step has left of the CPU limit (ns), 0
 * for a new step. */
#include <stdint.h>
void sandbox_arm(struct room *r, uint64_t cpu_left);
void sandbox_disarm(struct room *r);
/* Around party code: the memory cap binds only between enter and leave. */
void sandbox_enter(struct room *r);
void sandbox_leave(struct room *r);

/* Loads and runs a party's current code in a throwaway room state, so code
 * that fails at load time is refused (at start-up, or by a reload) before
 * any room sees it, and records which static hooks it defines (p->hooks).
 * Returns 0, or -1 with *err (caller frees). */
struct worker;
struct party;
int sandbox_try_party(struct worker *w, struct party *p, char **err);

/* Frees the runtime's compiled bytecode (at exit). */
/* Compiles the embedded runtime once, before any worker thread starts
 * (every room state loads it from there). */
void sandbox_prepare(void);
void sandbox_free_compiled(void);

#endif
