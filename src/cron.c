/* cron.c - the cron loop: once a minute (UTC), every matching entry of
 * partykit.json "crons" runs the main party's static onCron(cron, lobby) in
 * its lobby. `luaparty dev` also runs one on GET /__scheduled__?cron=NAME,
 * as partykit dev does. */
#include "cron.h"
#include "log.h"
#include "registry.h"
#include "room.h"
#include "worker.h"

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

typedef struct cron_run {
    gatekeeper g;
    char *name;
} cron_run;

static void scheduled_done(gatekeeper *g, http_response *res, http_headers *headers)
{
    cron_run *run = (cron_run *)g;
    if (res && res->status >= 400) log_error("cron %s failed", run->name);
    http_response_free(res);
    if (headers) http_headers_free(headers);
    free(headers);
    free(run->name);
    free(run);
}

static bool run_cron(worker *w, const cron_entry *e, gatekeeper *g)
{
    const party *main_party = w->cfg->parties[0];
    if (!(main_party->hooks & PARTY_HAS_CRON)) {
        log_warn("cron %s: the main party has no onCron", e->name);
        return false;
    }
    char *err = NULL;
    room *lobby = registry_resolve(w, main_party, "", &err);
    if (!lobby) {
        log_error("cron %s: %s", e->name, err);
        free(err);
        return false;
    }
    buf t;
    buf_init(&t);
    buf_printf(&t, "/__scheduled__?cron=%s", e->name);
    http_request *req = http_request_new("GET", t.data);
    buf_free(&t);
    req->host = xstrdup(w->authority);
    /* the lobby gets name and expression through the request and room id */
    http_headers_add(&req->headers, "x-cron", 6, e->expr, strlen(e->expr));
    room_hook(lobby, HOOK_CRON, req, e->name, g);
    http_request_free(req);
    return true;
}

bool cron_trigger(worker *w, const char *name, gatekeeper *g)
{
    for (size_t i = 0; i < w->cfg->ncrons; i++)
        if (strcmp(w->cfg->crons[i].name, name) == 0) return run_cron(w, &w->cfg->crons[i], g);
    return false;
}

static void arm(worker *w);

static void on_minute(uv_timer_t *t)
{
    worker *w = t->data;
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    for (size_t i = 0; i < w->cfg->ncrons; i++) {
        const cron_entry *e = &w->cfg->crons[i];
        if (!cron_matches(e, &utc)) continue;
        cron_run *run = xcalloc(1, sizeof *run);
        run->g.decide = scheduled_done;
        run->name = xstrdup(e->name);
        if (!run_cron(w, e, &run->g)) scheduled_done(&run->g, NULL, NULL);
    }
    arm(w);
}

/* Fires just after the next minute starts. */
static void arm(worker *w)
{
    uint64_t ms = now_ms();
    uv_timer_start(&w->cron_timer, on_minute, 60000 - ms % 60000 + 5, 0);
}

void cron_start(worker *w)
{
    uv_timer_init(w->loop, &w->cron_timer);
    w->cron_timer.data = w;
    if (w->cfg->ncrons) arm(w);
}

void cron_stop(worker *w)
{
    uv_timer_stop(&w->cron_timer);
    uv_close((uv_handle_t *)&w->cron_timer, NULL);
}
