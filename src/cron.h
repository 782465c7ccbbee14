/* cron.h - partykit.json "crons": five-field cron expressions (UTC) that
 * call the main party's static onCron(cron, lobby). */
#ifndef LP_CRON_H
#define LP_CRON_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct worker;
struct gatekeeper;

typedef struct cron_entry {
    char *name, *expr;
    uint64_t minute;     /* bit per allowed value */
    uint32_t hour, dom;
    uint16_t month;
    uint8_t dow;         /* 0 = Sunday */
    bool dom_any, dow_any;
} cron_entry;

/* Parses "m h dom mon dow" (numbers, *, a-b, lists, /step; dow 7 = Sunday).
 * Returns 0, or -1 with *why set to a static message. */
int cron_parse(const char *expr, cron_entry *e, const char **why);
bool cron_matches(const cron_entry *e, const struct tm *utc);

void cron_start(struct worker *w);
void cron_stop(struct worker *w);
/* Runs the cron named `name` now; g gets the verdict (NULL response: ran).
 * Returns false if there is no such cron. */
bool cron_trigger(struct worker *w, const char *name, struct gatekeeper *g);

#endif
