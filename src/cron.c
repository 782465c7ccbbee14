/* cron.c - the cron loop: once a minute (UTC), every matching entry of
 * partykit.json "crons" runs the main party's static onCron(cron, lobby) in
 * its lobby. `luaparty dev` also runs one on GET /__scheduled__?cron=NAME,
 * as partykit dev does. */
#include "cron.h"
#include "clock.h"
#include "log.h"
#include "registry.h"
#include "room.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

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
    http_request_set_host(req, w->authority, strlen(w->authority));
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
    time_t now = (time_t)(now_ms() / 1000); /* the virtual clock under luaparty test */
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

/* Fires just after the next minute starts: a few ms after, as the loop's
 * clock and the wall clock drift apart (a virtual clock does not). */
static void arm(worker *w)
{
    uint64_t ms = now_ms();
    clock_timer_start(&w->cron_timer, on_minute, 60000 - ms % 60000 + (clock_is_virtual() ? 0 : 5), 0);
}

void cron_start(worker *w)
{
    uv_timer_init(w->loop, &w->cron_timer);
    w->cron_timer.data = w;
    if (w->cfg->ncrons) arm(w);
}

void cron_stop(worker *w)
{
    clock_timer_stop(&w->cron_timer);
    uv_close((uv_handle_t *)&w->cron_timer, NULL);
}
