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

#endif
