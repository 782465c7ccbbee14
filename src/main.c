/* main.c - the luaparty command line: parse options, load the project, open
 * storage, listen, run the loop, and shut down cleanly on SIGINT/SIGTERM. */
#include "alarm.h"
#include "buf.h"
#include "config.h"
#include "cron.h"
#include "fetch.h"
#include "init.h"
#include "tls.h"
#include "log.h"
#include "metrics.h"
#include "metrics_listener.h"
#include "registry.h"
#include "reload.h"
#include "sandbox.h"
#include "server.h"
#include "storage.h"
#include "worker.h"

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char usage[] =
    "usage: luaparty <command> [DIR] [options]\n"
    "\n"
    "commands:\n"
    "  dev   [DIR]   development server (logs every request and connection, hot reload)\n"
    "  serve [DIR]   production server\n"
    "  init  [DIR]   write a small working project to start from\n"
    "\n"
    "DIR holds partykit.json (default: the current directory).\n"
    "\n"
    "options:\n"
    "  --port N          port to listen on (default 1999, or partykit.json \"port\"; 0 = any)\n"
    "  --host ADDR       address to listen on (default 127.0.0.1)\n"
    "  --persist DIR     storage directory (default DIR/.luaparty)\n"
    "  --log-level L     debug, info, warn, error (default info)\n"
    "  --max-message N   largest WebSocket message in bytes (default 1048576)\n"
    "  --room-memory N   Lua memory per room in bytes (default 67108864)\n"
    "  --max-value N     largest encoded storage value in bytes (default 131072)\n"
    "  --idle-timeout S  unload rooms idle for S seconds (default 60; decimals allowed)\n"
    "  --storage-sync M  normal (survives a process crash) or full (fsync: survives power loss)\n"
    "  --cpu-limit MS    CPU time per callback step (default 1000; 0 = no limit, JIT on)\n"
    "  --workers N       event loop threads; each room lives on one (default: 1 in dev,\n"
    "                    one per core in serve)\n"
    "  --max-connections N       clients in total (default 100000)\n"
    "  --max-room-connections N  WebSockets per room (default 10000)\n"
    "  --ping-interval S         ping quiet WebSockets; drop them after 2 (default 30)\n"
    "  --max-header N            HTTP header bytes (default 16384; more: 431)\n"
    "  --max-body N              HTTP body bytes (default 8388608; more: 413)\n"
    "  --max-output N            unsent bytes per client before it is dropped (default 16777216)\n"
    "  --header-timeout S        request headers must arrive within S (default 10)\n"
    "  --keepalive-timeout S     close idle keep-alive connections (default 60)\n"
    "  --metrics ADDR    serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464)\n"
    "  --tls-ca FILE     also trust this CA (PEM) for outbound https fetch\n"
    "  --tls-cert FILE --tls-key FILE   serve https and wss (PEM); SIGHUP reloads them\n"
    "  --log-format F    text (default) or json (one object per line)\n"
    "  --watch           hot reload in serve (always on in dev)\n"
    "  --help            this text\n"
    "  --version         print the version\n"
    "\n"
    "Limits can also be set in partykit.json under \"luaparty\" (maxMessage, roomMemory,\n"
    "maxValue, cpuLimit, maxConnections, maxRoomConnections, maxHeader, maxBody, maxOutput,\n"
    "idleTimeout, pingInterval, headerTimeout, keepaliveTimeout, fetchTimeout, fetchMaxBytes,\n"
    "outbound, cors, workers); the command line wins.\n";

/* One worker and what it owns: its loop (the default loop for worker 0,
 * which also takes the signals), its storage connection and its clients. */
typedef struct slot {
    worker w;
    server srv;
    storage *store;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    uv_thread_t thread;
    uv_timer_t grace;
    uint64_t grace_end;
} slot;

#define MAX_WORKERS 256

typedef struct app {
    config cfg;
    size_t nslots;
    slot *slots;
    worker **workers;       /* w->all */
    uv_signal_t sigint, sigterm, sighup;
    int signals;
} app;

static int parse_size(const char *s, size_t *out)
{
    char *end;
    if (*s < '0' || *s > '9') return -1; /* strtoull would take "-1" as 2^64-1 */
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || v == 0) return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_seconds(const char *s, uint64_t *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v <= 0) return -1;
    *ms = (uint64_t)(v * 1000);
    return 0;
}

/* Options taking a string: one table instead of one branch each. */
static bool set_string_option(config *cfg, const char *name, const char *v)
{
    static const struct { const char *name; size_t off; } opts[] = {
        {"--host", offsetof(config, host)},         {"--persist", offsetof(config, persist_dir)},
        {"--tls-cert", offsetof(config, tls_cert)}, {"--tls-key", offsetof(config, tls_key)},
        {"--tls-ca", offsetof(config, tls_ca)},     {"--metrics", offsetof(config, metrics_addr)},
    };
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        if (strcmp(name, opts[i].name) != 0) continue;
        char **field = (char **)((char *)cfg + opts[i].off);
        free(*field);
        *field = xstrdup(v);
        return true;
    }
    return false;
}

/* Options taking a number: one table instead of one branch each. */
static int parse_number_option(config *cfg, const char *name, const char *v)
{
    struct { const char *name; size_t *size; uint64_t *ms; bool seconds; } opts[] = {
        {"--max-message", &cfg->max_message, NULL, false},
        {"--room-memory", &cfg->room_memory, NULL, false},
        {"--max-value", &cfg->max_value, NULL, false},
        {"--max-connections", &cfg->max_connections, NULL, false},
        {"--workers", &cfg->workers, NULL, false},
        {"--max-room-connections", &cfg->max_room_connections, NULL, false},
        {"--max-header", &cfg->max_header, NULL, false},
        {"--max-body", &cfg->max_body, NULL, false},
        {"--max-output", &cfg->max_output, NULL, false},
        {"--idle-timeout", NULL, &cfg->idle_timeout_ms, true},
        {"--ping-interval", NULL, &cfg->ping_interval_ms, true},
        {"--header-timeout", NULL, &cfg->header_timeout_ms, true},
        {"--keepalive-timeout", NULL, &cfg->keepalive_timeout_ms, true},
    };
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        if (strcmp(name, opts[i].name) != 0) continue;
        int bad = opts[i].seconds ? parse_seconds(v, opts[i].ms) : parse_size(v, opts[i].size);
        if (bad) {
            fprintf(stderr, "luaparty: %s %s: not a positive number%s\n", name, v, opts[i].seconds ? " of seconds" : "");
            return 2;
        }
        return 0;
    }
    return -1; /* not a number option */
}

/* Parses the command line. With options_only (the second pass, after
 * partykit.json was read) only options are applied, so they win over the
 * file's "luaparty" settings. */
static int parse_args(config *cfg, int argc, char **argv, bool options_only)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("luaparty %s\n", LUAPARTY_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "init")) {
        if (argc > 3) {
            fprintf(stderr, "luaparty: usage: luaparty init [DIR]\n");
            return 2;
        }
        return init_project(argc == 3 ? argv[2] : ".");
    }
    if (strcmp(argv[1], "dev") && strcmp(argv[1], "serve")) {
        fprintf(stderr, "luaparty: unknown command '%s'\n\n%s", argv[1], usage);
        return 2;
    }
    int rc;
    cfg->dev = !strcmp(argv[1], "dev");
    cfg->watch = cfg->dev;
    const char *dir = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("luaparty %s\n", LUAPARTY_VERSION);
            return 0;
        }
        if (!strcmp(a, "--watch")) {
            cfg->watch = true;
            continue;
        }
        if (a[0] != '-') {
            if (options_only) continue;
            if (dir) {
                fprintf(stderr, "luaparty: more than one project directory given ('%s', '%s')\n", dir, a);
                return 2;
            }
            dir = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "luaparty: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port")) {
            char *end;
            long p = strtol(v, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf(stderr, "luaparty: --port %s: not a port number\n", v);
                return 2;
            }
            cfg->port = (int)p;
        } else if (set_string_option(cfg, a, v)) {
            continue;
        } else if (!strcmp(a, "--log-level")) {
            int lvl = log_parse_level(v);
            if (lvl < 0) {
                fprintf(stderr, "luaparty: --log-level %s: use debug, info, warn or error\n", v);
                return 2;
            }
            log_set_level((enum log_level)lvl);
        } else if (!strcmp(a, "--cpu-limit")) {
            char *end;
            long ms = strtol(v, &end, 10);
            if (*end || ms < 0) {
                fprintf(stderr, "luaparty: --cpu-limit %s: milliseconds, or 0 for no limit\n", v);
                return 2;
            }
            cfg->cpu_limit_ms = (uint64_t)ms;
        } else if ((rc = parse_number_option(cfg, a, v)) >= 0) {
            if (rc) return rc;
        } else if (!strcmp(a, "--log-format")) {
            if (strcmp(v, "json") && strcmp(v, "text")) {
                fprintf(stderr, "luaparty: --log-format %s: use text or json\n", v);
                return 2;
            }
            log_set_json(!strcmp(v, "json"));
        } else if (!strcmp(a, "--storage-sync")) {
            if (strcmp(v, "normal") && strcmp(v, "full")) {
                fprintf(stderr, "luaparty: --storage-sync %s: use normal or full\n", v);
                return 2;
            }
            cfg->storage_sync_full = !strcmp(v, "full");
        } else {
            fprintf(stderr, "luaparty: unknown option '%s'\n\n%s", a, usage);
            return 2;
        }
    }
    if (options_only) return -1;
    char resolved[PATH_MAX];
    if (!realpath(dir ? dir : ".", resolved)) {
        fprintf(stderr, "luaparty: project directory '%s' does not exist\n", dir ? dir : ".");
        return 2;
    }
    cfg->dir = xstrdup(resolved);
    return -1; /* go on */
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* What runs on a worker besides its clients: the registry's idle sweep and,
 * on worker 0 only, the alarm and cron timers (one of each for the whole
 * process; due rooms are woken on their owners). After w->all is set. */
static void start_services(worker *w)
{
    registry_start(w);
    w->alarms_changed = alarm_reschedule;
    if (w->index != 0) return;
    alarm_start(w);
    cron_start(w);
}

/* Runs what is queued, drops every room, stops the timers, then the
 * worker's own handles. */
static void stop_worker(worker *w)
{
    worker_settle(w);
    registry_close(w);
    if (w->index == 0 && w->alarm_timer.loop) {
        alarm_stop(w);
        cron_stop(w);
    }
    worker_close(w);
}

/* Closes every handle of a slot's loop, runs the close callbacks, frees the
 * loop. The worker's rooms are dropped first. */
static void close_loop(slot *sl)
{
    stop_worker(&sl->w);
    uv_walk(sl->loop, on_walk_close, NULL);
    uv_run(sl->loop, UV_RUN_DEFAULT);
    uv_loop_close(sl->loop);
}

static void free_slots(app *a)
{
    for (size_t i = 0; i < a->nslots; i++) {
        worker_free(&a->slots[i].w);
        storage_close(a->slots[i].store);
    }
    free(a->slots);
    free(a->workers);
}

/* Start-up failed before any thread started: report, close what exists. */
static int abort_start(app *a, int code, char *err)
{
    fprintf(stderr, "luaparty: %s\n", err);
    free(err);
    for (size_t i = 0; i < a->nslots; i++) close_loop(&a->slots[i]);
    free_slots(a);
    config_free(&a->cfg);
    sandbox_free_compiled();
    return code;
}

/* During shutdown: the workers stop together, once every client of every
 * worker is gone and no room has work left (onClose callbacks and their
 * cross-party calls have run and committed), or when the grace period is
 * over. */
static void on_drain_check(uv_timer_t *t)
{
    slot *sl = t->data;
    worker *w = &sl->w;
    atomic_store(&w->drained, server_clients(&sl->srv) == 0 && registry_quiet(w) && !worker_has_jobs(w));
    bool done = true;
    for (int i = 0; i < w->nworkers; i++) done &= atomic_load(&w->all[i]->drained);
    if (done || uv_now(t->loop) >= sl->grace_end) {
        if (!done && w->index == 0) log_warn("shutdown grace period over: closing what is left");
        uv_timer_stop(t);
        uv_stop(t->loop);
    }
}

/* On each worker's own thread: stop accepting, close clients, drain. */
static void begin_shutdown(worker *w, void *arg)
{
    slot *sl = arg;
    w->stopping = true;
    server_shutdown(&sl->srv);
    sl->grace_end = uv_now(w->loop) + 5000;
    uv_timer_start(&sl->grace, on_drain_check, 10, 10);
}

/* SIGHUP: load the certificate and key again (renewed certificates need
 * no restart); a bad pair is refused and the old one stays. */
static void on_sighup(uv_signal_t *sig, int signum)
{
    app *a = sig->data;
    char *err = NULL;
    if (!a->cfg.tls_cert) return;
    if (tls_server_init(a->cfg.tls_cert, a->cfg.tls_key, &err) != 0) {
        log_error("SIGHUP: %s; still using the previous certificate", err);
        free(err);
    } else {
        log_info("SIGHUP: reloaded %s", a->cfg.tls_cert);
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app *a = sig->data;
    if (++a->signals > 1) {
        log_warn("second signal: exiting now");
        exit(1);
    }
    log_info("shutting down (%s): closing connections", signum == SIGINT ? "SIGINT" : "SIGTERM");
    for (size_t i = 1; i < a->nslots; i++) worker_post(&a->slots[i].w, begin_shutdown, &a->slots[i]);
    begin_shutdown(&a->slots[0].w, &a->slots[0]);
}

static void worker_thread(void *arg)
{
    slot *sl = arg;
    lp_metrics_here = &sl->w.stats;
    uv_run(sl->loop, UV_RUN_DEFAULT);
    fetch_shutdown(); /* its keep-alive pool belongs to this thread */
    chunk_cache_drain();
}

/* Runs every loop without blocking, in rounds, until no worker has a job
 * waiting: what one worker's teardown posts to another (a room's onClose
 * closing a cross-party socket) is handled, not dropped. */
static void settle(app *a)
{
    for (int round = 0; round < 1000; round++) {
        bool pending = false;
        for (size_t i = 0; i < a->nslots; i++) {
            lp_metrics_here = &a->slots[i].w.stats;
            uv_run(a->slots[i].loop, UV_RUN_NOWAIT);
        }
        for (size_t i = 0; i < a->nslots; i++) pending |= worker_has_jobs(&a->slots[i].w);
        if (!pending && round > 0) break;
    }
    lp_metrics_here = &a->slots[0].w.stats;
}

/* Every loop has stopped and every worker thread has exited: the teardown
 * runs here, on the main thread, one loop at a time (a loop may be run by
 * any thread, one at a time), so workers never wait on each other. Clients
 * close first (their rooms run onClose), then the rooms, then the handles. */
static void teardown(app *a)
{
    for (size_t i = 0; i < a->nslots; i++) server_free(&a->slots[i].srv);
    settle(a);
    for (size_t i = 0; i < a->nslots; i++) {
        lp_metrics_here = &a->slots[i].w.stats;
        stop_worker(&a->slots[i].w);
    }
    settle(a);
    for (size_t i = 0; i < a->nslots; i++) uv_walk(a->slots[i].loop, on_walk_close, NULL);
    for (size_t i = 0; i < a->nslots; i++) uv_run(a->slots[i].loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < a->nslots; i++) uv_loop_close(a->slots[i].loop);
}

static size_t default_workers(const config *cfg)
{
    if (cfg->dev) return 1; /* one loop: logs in order, as partykit dev */
    unsigned n = uv_available_parallelism();
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n;
}

/* Opens each worker's storage connection and loop. */
static int make_slots(app *a, char **err)
{
    a->nslots = a->cfg.workers ? a->cfg.workers : default_workers(&a->cfg);
    a->slots = xcalloc(a->nslots, sizeof *a->slots);
    a->workers = xcalloc(a->nslots, sizeof *a->workers);
    for (size_t i = 0; i < a->nslots; i++) {
        slot *sl = &a->slots[i];
        sl->store = (i ? storage_open_again : storage_open)(a->cfg.persist_dir, a->cfg.storage_sync_full, err);
        if (!sl->store) {
            a->nslots = i;
            return -1;
        }
        if (i == 0) {
            sl->loop = uv_default_loop();
        } else {
            uv_loop_init(&sl->own_loop);
            sl->loop = &sl->own_loop;
        }
        worker_init(&sl->w, sl->loop, &a->cfg, sl->store);
        sl->w.index = (int)i;
        sl->w.nworkers = (int)a->nslots;
        sl->w.all = a->workers;
        a->workers[i] = &sl->w;
        uv_timer_init(sl->loop, &sl->grace);
        sl->grace.data = sl;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static app a;
    config_defaults(&a.cfg);
    int rc = parse_args(&a.cfg, argc, argv, false);
    if (rc >= 0) {
        config_free(&a.cfg);
        return rc;
    }
    char *err = NULL;
    if (config_load(&a.cfg, &err) != 0) {
        fprintf(stderr, "luaparty: %s/%s\n", a.cfg.dir, err);
        free(err);
        config_free(&a.cfg);
        return 2;
    }
    parse_args(&a.cfg, argc, argv, true);
    if (a.cfg.workers > MAX_WORKERS) {
        fprintf(stderr, "luaparty: --workers %zu: at most %d\n", a.cfg.workers, MAX_WORKERS);
        config_free(&a.cfg);
        return 2;
    }
    if ((a.cfg.tls_cert != NULL) != (a.cfg.tls_key != NULL)) {
        fprintf(stderr, "luaparty: --tls-cert and --tls-key go together\n");
        config_free(&a.cfg);
        return 2;
    }
    if (a.cfg.tls_cert && tls_server_init(a.cfg.tls_cert, a.cfg.tls_key, &err) != 0) {
        fprintf(stderr, "luaparty: %s\n", err);
        free(err);
        config_free(&a.cfg);
        return 2;
    }
    /* The system CA bundle is loaded on the first https fetch, not here: it
     * takes tens of ms. A given --tls-ca is checked now, to fail early. */
    if (a.cfg.tls_ca && tls_client_init(a.cfg.tls_ca, &err) != 0) {
        fprintf(stderr, "luaparty: %s\n", err);
        free(err);
        config_free(&a.cfg);
        return 2;
    }
    if (make_slots(&a, &err) != 0) return abort_start(&a, 1, err);
    signal(SIGPIPE, SIG_IGN);
    sandbox_prepare();
    slot *first = &a.slots[0];
    uv_loop_t *loop = first->loop;
    /* Signals are caught from here on: one sent as soon as "listening" is
     * printed must not meet the default action (SIGHUP would kill us). They
     * are handled once the loop runs. */
    uv_signal_init(loop, &a.sigint);
    uv_signal_init(loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &a.sighup);
    a.sighup.data = &a;
    uv_signal_start(&a.sighup, on_sighup, SIGHUP);
    lp_metrics_here = &first->w.stats;
    uint64_t t0 = uv_hrtime();
    /* Run every party's top-level code once now: a script that fails to
     * load stops start-up with file:line, not the first request. */
    for (size_t i = 0; i < a.cfg.nparties; i++) {
        if (sandbox_try_party(&first->w, a.cfg.parties[i], &err) != 0) {
            buf b;
            buf_init(&b);
            buf_printf(&b, "%s/partykit.json: party \"%s\": %s", a.cfg.dir, a.cfg.parties[i]->name, err);
            free(err);
            return abort_start(&a, 2, buf_steal(&b));
        }
    }
    for (size_t i = 0; i < a.nslots; i++) {
        if (server_listen(&a.slots[i].srv, &a.slots[i].w, i ? &first->srv : NULL, &err) != 0)
            return abort_start(&a, 1, err);
        start_services(&a.slots[i].w);
    }
    if (a.cfg.metrics_addr && metrics_listen(&first->w, a.cfg.metrics_addr, &err) != 0)
        return abort_start(&a, 1, err);
    int port = server_port(&first->srv);
    log_info("%s: %zu part%s, storage in %s", a.cfg.name, a.cfg.nparties, a.cfg.nparties == 1 ? "y" : "ies",
             a.cfg.persist_dir);
    if (a.nslots > 1) log_info("%zu workers (event loop threads)", a.nslots);
    if (a.cfg.dev)
        for (size_t i = 0; i < a.cfg.nparties; i++)
            log_info("  party %-12s http://%s:%d/parties/%s/:room  (%s)", a.cfg.parties[i]->name, a.cfg.host, port,
                     a.cfg.parties[i]->name, a.cfg.parties[i]->script);
    log_msg(LOG_WARN < log_get_level() ? LOG_ERROR : LOG_WARN, "listening on %s://%s:%d (ready in %.1f ms)",
            a.cfg.tls_cert ? "https" : "http", a.cfg.host, port, (double)(uv_hrtime() - t0) / 1e6);

    if (a.cfg.watch) reload_start(&first->w, &a.cfg);
    for (size_t i = 1; i < a.nslots; i++) uv_thread_create(&a.slots[i].thread, worker_thread, &a.slots[i]);

    uv_run(loop, UV_RUN_DEFAULT);

    reload_stop();
    metrics_close();
    fetch_shutdown();
    for (size_t i = 1; i < a.nslots; i++) uv_thread_join(&a.slots[i].thread);
    teardown(&a);
    free_slots(&a);
    tls_server_free();
    tls_client_free();
    config_free(&a.cfg);
    sandbox_free_compiled();
    chunk_cache_drain();
    log_info("bye");
    return 0;
}
