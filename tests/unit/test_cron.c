/* test_cron.c - cron expressions (src/cron_expr.c): cron_parse into bit sets,
 * its error texts, and cron_matches on UTC times. cron.c exposes no
 * next-fire function (its timer wakes every minute and asks cron_matches),
 * so next_fire below walks the minutes the same way. */
#include "unit.h"

#include "cron_expr.h"

#include <stdio.h>
#include <time.h>

/* Bits lo..hi set, every step. */
static uint64_t bits(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int v = lo; v <= hi; v += step) b |= 1ULL << v;
    return b;
}

#define ALL_MIN bits(0, 59, 1)
#define ALL_HOUR bits(0, 23, 1)
#define ALL_DOM bits(1, 31, 1)
#define ALL_MON bits(1, 12, 1)
#define ALL_DOW bits(0, 6, 1)

TEST(cron_parse_valid_expressions)
{
    const struct { /* not static: bits() is not a constant */
        const char *expr;
        uint64_t minute, hour, dom, month, dow;
        bool dom_any, dow_any;
    } cases[] = {
        {"* * * * *", ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true},
        {"0 * * * *", 1, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true},
        {"59 23 31 12 6", 1ULL << 59, 1ULL << 23, 1ULL << 31, 1ULL << 12, 1ULL << 6, false, false},
        {"*/15 * * * *", bits(0, 59, 15), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true},
        {"5/15 * * * *", bits(5, 59, 15), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true}, /* from 5 on */
        {"1-10/3 * * * *", bits(1, 10, 3), ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, true, true},
        {"0,30 9-17 * * 1-5", 1 | 1ULL << 30, bits(9, 17, 1), ALL_DOM, ALL_MON, bits(1, 5, 1), true, false},
        {"0 0 1,15 */3 *", 1, 1, 1ULL << 1 | 1ULL << 15, bits(1, 12, 3), ALL_DOW, false, true},
        {"0 0 * * 7", 1, 1, ALL_DOM, ALL_MON, 1, true, false},         /* 7 is Sunday, as 0 */
        {"0 0 * * 0,7", 1, 1, ALL_DOM, ALL_MON, 1, true, false},
        {"0 0 * * */2", 1, 1, ALL_DOM, ALL_MON, bits(0, 6, 2), true, false}, /* 0,2,4,6 (and 8 is past 7) */
        {"0 0 * * 5-7", 1, 1, ALL_DOM, ALL_MON, 1 | bits(5, 6, 1), true, false},
        {"  0   12  *  *  *  ", 1, 1ULL << 12, ALL_DOM, ALL_MON, ALL_DOW, true, true}, /* spaces around */
        {"*/1 */1 */1 */1 */1", ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, bits(0, 6, 1), false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cron_entry e;
        memset(&e, 0xa5, sizeof e); /* cron_parse must set every field */
        const char *why = NULL;
        ASSERT_MSG(cron_parse(cases[i].expr, &e, &why) == 0, "\"%s\": %s", cases[i].expr, why);
        ASSERT_MSG(e.minute == cases[i].minute, "\"%s\": minute bits %llx", cases[i].expr,
                   (unsigned long long)e.minute);
        ASSERT_MSG(e.hour == cases[i].hour, "\"%s\": hour bits %x", cases[i].expr, e.hour);
        ASSERT_MSG(e.dom == cases[i].dom, "\"%s\": day-of-month bits %x", cases[i].expr, e.dom);
        ASSERT_MSG(e.month == cases[i].month, "\"%s\": month bits %x", cases[i].expr, e.month);
        ASSERT_MSG(e.dow == cases[i].dow, "\"%s\": day-of-week bits %x", cases[i].expr, e.dow);
        ASSERT_MSG(e.dom_any == cases[i].dom_any && e.dow_any == cases[i].dow_any, "\"%s\": any %d %d",
                   cases[i].expr, e.dom_any, e.dow_any);
    }
}

TEST(cron_parse_invalid_expressions)
{
    static const struct {
        const char *expr, *why;
    } cases[] = {
        {"", "needs five fields: minute hour day-of-month month day-of-week"},
        {"* * * *", "needs five fields: minute hour day-of-month month day-of-week"},
        {"    ", "needs five fields: minute hour day-of-month month day-of-week"},
        {"* * * * * *", "needs exactly five fields"},
        {"60 * * * *", "bad minute field"},
        {"-1 * * * *", "bad minute field"},
        {"a * * * *", "bad minute field"},
        {"*/0 * * * *", "bad minute field"},
        {"*/x * * * *", "bad minute field"},
        {"5-1 * * * *", "bad minute field"},
        {"1- * * * *", "bad minute field"},
        {"*-5 * * * *", "bad minute field"},
        {"1,,2 * * * *", "bad minute field"},
        {"*\t* * * *", "bad minute field"}, /* fields are separated by spaces only */
        {"* 24 * * *", "bad hour field"},
        {"* * 0 * *", "bad day-of-month field"},
        {"* * 32 * *", "bad day-of-month field"},
        {"* * * 0 *", "bad month field"},
        {"* * * 13 *", "bad month field"},
        {"* * * jan *", "bad month field"}, /* no names */
        {"* * * * 8", "bad day-of-week field"},
        {"* * * * mon", "bad day-of-week field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cron_entry e = {0};
        const char *why = NULL;
        ASSERT_MSG(cron_parse(cases[i].expr, &e, &why) == -1, "\"%s\" was accepted", cases[i].expr);
        ASSERT_STR_EQ(why, cases[i].why);
    }
}

static struct tm utc(int year, int mon, int mday, int hour, int min)
{
    struct tm t = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = mday, .tm_hour = hour, .tm_min = min};
    time_t s = timegm(&t); /* fills in tm_wday */
    gmtime_r(&s, &t);
    return t;
}

TEST(cron_matches_times)
{
    static const struct {
        const char *expr;
        int y, mo, d, h, mi;
        bool match;
    } cases[] = {
        {"* * * * *", 2024, 2, 29, 23, 59, true},
        {"30 9 * * *", 2024, 5, 1, 9, 30, true},
        {"30 9 * * *", 2024, 5, 1, 9, 31, false},
        {"30 9 * * *", 2024, 5, 1, 10, 30, false},
        {"0 0 1 1 *", 2025, 1, 1, 0, 0, true},
        {"0 0 1 1 *", 2025, 2, 1, 0, 0, false},          /* month */
        {"0 0 * * 1", 2024, 6, 3, 0, 0, true},           /* a Monday */
        {"0 0 * * 1", 2024, 6, 4, 0, 0, false},
        {"0 0 * * 7", 2024, 6, 2, 0, 0, true},           /* Sunday */
        {"0 0 * * 0", 2024, 6, 2, 0, 0, true},
        /* both day fields restricted: either may match (classic cron) */
        {"0 0 13 * 5", 2024, 9, 13, 0, 0, true},         /* Friday the 13th */
        {"0 0 13 * 5", 2024, 9, 20, 0, 0, true},         /* a Friday */
        {"0 0 13 * 5", 2024, 11, 13, 0, 0, true},        /* a Wednesday the 13th */
        {"0 0 13 * 5", 2024, 9, 14, 0, 0, false},
        /* one restricted: it must match */
        {"0 0 13 * *", 2024, 9, 20, 0, 0, false},
        {"0 0 * * 5", 2024, 9, 13, 0, 0, true},
        {"0 0 * * 5", 2024, 9, 14, 0, 0, false},
        {"*/15 * * * *", 2024, 1, 1, 12, 45, true},
        {"*/15 * * * *", 2024, 1, 1, 12, 46, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cron_entry e;
        const char *why;
        ASSERT_EQ(cron_parse(cases[i].expr, &e, &why), 0);
        struct tm t = utc(cases[i].y, cases[i].mo, cases[i].d, cases[i].h, cases[i].mi);
        ASSERT_MSG(cron_matches(&e, &t) == cases[i].match, "\"%s\" at %04d-%02d-%02d %02d:%02d: %s", cases[i].expr,
                   cases[i].y, cases[i].mo, cases[i].d, cases[i].h, cases[i].mi,
                   cases[i].match ? "no match" : "matched");
    }
}

/* The first minute after `from` (UTC) that e matches, within a year; -1 if
 * none. This is what cron.c's minute timer amounts to. */
static time_t next_fire(const cron_entry *e, time_t from)
{
    time_t t = from - from % 60 + 60;
    for (int i = 0; i < 366 * 24 * 60; i++, t += 60) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (cron_matches(e, &tm)) return t;
    }
    return -1;
}

TEST(cron_next_fire)
{
    static const struct {
        const char *expr;
        int from[5], want[5]; /* y, mo, d, h, mi */
    } cases[] = {
        {"* * * * *", {2024, 3, 10, 8, 0}, {2024, 3, 10, 8, 1}},
        {"0 * * * *", {2024, 3, 10, 8, 0}, {2024, 3, 10, 9, 0}},
        {"30 9 * * 1", {2024, 6, 2, 12, 0}, {2024, 6, 3, 9, 30}},    /* Sunday noon -> Monday 09:30 */
        {"0 0 1 * *", {2024, 12, 15, 0, 0}, {2025, 1, 1, 0, 0}},     /* over the year */
        {"0 12 29 2 *", {2023, 3, 1, 0, 0}, {2024, 2, 29, 12, 0}},   /* the next leap day */
        {"*/20 * * * *", {2024, 3, 10, 8, 41}, {2024, 3, 10, 9, 0}},
        {"0 0 13 * 5", {2024, 9, 1, 0, 0}, {2024, 9, 6, 0, 0}},      /* a Friday comes before the 13th */
        {"59 23 31 12 *", {2024, 1, 1, 0, 0}, {2024, 12, 31, 23, 59}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cron_entry e;
        const char *why;
        ASSERT_EQ(cron_parse(cases[i].expr, &e, &why), 0);
        const int *f = cases[i].from, *w = cases[i].want;
        struct tm from = utc(f[0], f[1], f[2], f[3], f[4]), want = utc(w[0], w[1], w[2], w[3], w[4]);
        time_t got = next_fire(&e, timegm(&from));
        ASSERT_MSG(got == timegm(&want), "\"%s\": next fire %lld, want %lld", cases[i].expr, (long long)got,
                   (long long)timegm(&want));
    }
    /* February 30th never comes */
    cron_entry e;
    const char *why;
    ASSERT_EQ(cron_parse("0 0 30 2 *", &e, &why), 0);
    ASSERT_EQ(next_fire(&e, 0), -1);
}
