/* cron_expr.c - five-field cron expressions (partykit.json "crons"):
 * parsing into bit sets, and matching a UTC time. No scheduling here:
 * that is cron.c's. */
#include "cron_expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one field into a bit set of values lo..hi. */
static int field(const char *s, size_t len, int lo, int hi, uint64_t *bits, bool *any)
{
    *bits = 0;
    *any = len == 1 && s[0] == '*';
    const char *end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        int a = lo, b = hi, step = 1;
        const char *p = s;
        if (*p == '*') {
            p++;
        } else {
            char *e;
            a = (int)strtol(p, &e, 10);
            if (e == p) return -1;
            b = a;
            p = e;
            if (p < item_end && *p == '-') {
                b = (int)strtol(p + 1, &e, 10);
                if (e == p + 1) return -1;
                p = e;
            }
        }
        if (p < item_end && *p == '/') {
            char *e;
            step = (int)strtol(p + 1, &e, 10);
            if (e == p + 1 || step <= 0) return -1;
            if (a == b && s[0] != '*') b = hi; /* "5/15" means from 5 on */
            p = e;
        }
        if (p != item_end || a < lo || b > hi || a > b) return -1;
        for (int v = a; v <= b; v += step) *bits |= 1ULL << v;
        s = comma ? comma + 1 : end;
    }
    return 0;
}

int cron_parse(const char *expr, cron_entry *e, const char **why)
{
    const char *p = expr;
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    bool any[5];
    for (int i = 0; i < 5; i++) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        if (!n) {
            *why = "needs five fields: minute hour day-of-month month day-of-week";
            return -1;
        }
        if (field(p, n, lo[i], hi[i], &bits[i], &any[i]) != 0) {
            static const char *names[] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
            static _Thread_local char msg[64];
            snprintf(msg, sizeof msg, "bad %s field", names[i]);
            *why = msg;
            return -1;
        }
        p += n;
    }
    while (*p == ' ') p++;
    if (*p) {
        *why = "needs exactly five fields";
        return -1;
    }
    e->minute = bits[0];
    e->hour = (uint32_t)bits[1];
    e->dom = (uint32_t)bits[2];
    e->month = (uint16_t)bits[3];
    e->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    e->dom_any = any[2];
    e->dow_any = any[4];
    return 0;
}

bool cron_matches(const cron_entry *e, const struct tm *t)
{
    if (!(e->minute >> t->tm_min & 1) || !(e->hour >> t->tm_hour & 1) || !(e->month >> (t->tm_mon + 1) & 1))
        return false;
    bool dom = e->dom >> t->tm_mday & 1, dow = e->dow >> t->tm_wday & 1;
    /* classic cron: if both day fields are restricted, either may match */
    if (!e->dom_any && !e->dow_any) return dom || dow;
    return dom && dow;
}
