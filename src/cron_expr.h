/* cron_expr.h - a cron expression, parsed (cron_expr.c). */
#ifndef LP_CRON_EXPR_H
#define LP_CRON_EXPR_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

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

#endif
