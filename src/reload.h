/* reload.h - hot reload: watch the project and swap party code into live
 * rooms without dropping a connection. */
#ifndef LP_RELOAD_H
#define LP_RELOAD_H

#include "config.h"

struct worker;

/* Starts watching cfg->dir (partykit.json, party scripts, project modules). */
int reload_start(struct worker *w, config *cfg);
void reload_stop(void);
/* Re-reads the project and applies what changed (also used by tests via
 * SIGHUP-free paths). `modules` says a non-party .lua file changed. */
void reload_apply(struct worker *w, config *cfg, bool modules);
/* The same, with the project as read from disk first changed by edit
 * (`luaparty test`: t.reload(party, source) swaps a script's text without
 * writing the file). Returns false, logged, if nothing was applied: the
 * project cannot be read, edit refused, or a script fails to load. */
bool reload_apply_edited(struct worker *w, config *cfg, bool modules, bool (*edit)(config *next, void *ud), void *ud);

#endif
