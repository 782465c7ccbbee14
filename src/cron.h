/* cron.h - partykit.json "crons": five-field cron expressions (UTC) that
 * call the main party's static onCron(cron, lobby). */
#ifndef LP_CRON_H
#define LP_CRON_H

#include "cron_expr.h"
#include <stdbool.h>

struct worker;
struct gatekeeper;

void cron_start(struct worker *w);
void cron_stop(struct worker *w);
/* Runs the cron named `name` now; g gets the verdict (NULL response: ran).
 * Returns false if there is no such cron. */
bool cron_trigger(struct worker *w, const char *name, struct gatekeeper *g);

#endif
