/* main.c - start-up and shutdown: load the project (the command line is
 * cli.c), open storage, start the workers, listen, run the loops, and shut
 * down cleanly on SIGINT/SIGTERM. */
#include "alarm.h"
#include "buf.h"
#include "cli.h"
#include "cluster.h"
#include "cluster_storage.h"
#include "config.h"
#include "dispatch.h"
#include "cron.h"
#include "fetch.h"
#include "init.h"
#include "tls.h"
#include "log.h"
#include "metrics.h"
#include "metrics_listener.h"
#include "placement.h"
#include "registry.h"
#include "reload.h"
#include "sandbox.h"
#include "server.h"
#include "storage.h"
#include "testrun.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <uv.h>

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
    cluster *cluster;       /* cluster mode: on worker 0's loop */
    int node_lock;          /* cluster mode: <persist>/cluster-node, locked (-1: none) */
} app;

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
    thread_cache_drain();
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

/* Runs the loops until every closed Redis link has said goodbye (its
 * last replies read, its handles closed), at most a second: closing their
 * handles from outside would leak them. */
static void settle_links(app *a)
{
    uint64_t end = uv_hrtime() + 1000000000ull;
    while (redis_link_live() > 0 && uv_hrtime() < end) {
        settle(a);
        uv_sleep(1);
    }
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
    for (size_t i = 0; i < a->nslots; i++) { /* commits still in flight end as failed */
        cluster_storage_close(a->slots[i].w.cstore);
        a->slots[i].w.cstore = NULL;
    }
    settle_links(a); /* the cluster's link too: cluster_stop closed it */
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

/* The options first (the loader needs the directory, and a given --port
 * or --persist keeps the file's out), then partykit.json (all of it, or
 * config_load_storage's part), then the options once more so they win over
 * its "luaparty" settings. Returns -1 to go on, or 2 (cfg is freed then). */
static int load_project(config *cfg, const cli_options *o, int (*load)(config *, char **))
{
    char *err = NULL;
    config_defaults(cfg);
    cli_apply(o, cfg);
    if (load(cfg, &err) != 0) {
        fprintf(stderr, "luaparty: %s/%s\n", cfg->dir, err);
        free(err);
        config_free(cfg);
        return 2;
    }
    cli_apply(o, cfg);
    return -1;
}

/* Runs the commands that do not serve: help, version, init. Returns their
 * exit code, or -1 for dev and serve. */
static int run_other_command(const cli_options *o)
{
    switch (o->command) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("luaparty %s\n", LUAPARTY_VERSION);
        return 0;
    case CLI_INIT:
        return init_project(o->dir);
    case CLI_CLUSTER_STATUS:
        return cluster_status_print(o->cluster_url, stdout);
    case CLI_STORAGE_EXPORT:
    case CLI_STORAGE_IMPORT: { /* the storage directory serve would use */
        config cfg;
        int rc = load_project(&cfg, o, config_load_storage);
        if (rc >= 0) return rc;
        rc = (o->command == CLI_STORAGE_EXPORT ? cluster_storage_export : cluster_storage_import)(
            o->cluster_url, cfg.persist_dir, stdout);
        config_free(&cfg);
        return rc;
    }
    case CLI_DEV:
    case CLI_SERVE:
    case CLI_TEST:
        break;
    }
    return -1;
}

/* Cluster mode needs a node id and the shared secret (the internal
 * listener refuses requests without it); the rest has defaults. Returns -1
 * to go on, or the exit code. */
static int check_cluster(config *cfg)
{
    if (!cfg->cluster.url) return -1;
    redis_url u;
    char *err = NULL;
    const char *secret = getenv("LUAPARTY_CLUSTER_SECRET");
    if (redis_url_parse(cfg->cluster.url, &u, &err) != 0) {
        fprintf(stderr, "luaparty: --cluster: %s\n", err);
        free(err);
        return 2;
    }
    if (!cfg->cluster.node_id) {
        fprintf(stderr, "luaparty: --cluster needs --node-id (a name for this node, unique among live nodes)\n");
        return 2;
    }
    if (!cfg->cluster.secret && secret && *secret) cfg->cluster.secret = xstrdup(secret);
    if (!cfg->cluster.secret || !*cfg->cluster.secret) {
        fprintf(stderr, "luaparty: --cluster needs --cluster-secret or LUAPARTY_CLUSTER_SECRET (shared by the nodes)\n");
        return 2;
    }
    if (!cfg->cluster.internal_host) cfg->cluster.internal_host = xstrdup(cfg->host);
    if (!cfg->cluster.lease_ttl_ms) cfg->cluster.lease_ttl_ms = 5000;
    return -1;
}

/* What partykit.json and the options may both ask for but luaparty cannot
 * do. Returns -1 to go on, or the exit code. */
static int check_config(config *cfg)
{
    if (cfg->workers > MAX_WORKERS) {
        fprintf(stderr, "luaparty: --workers %zu: at most %d\n", cfg->workers, MAX_WORKERS);
        return 2;
    }
    if ((cfg->tls_cert != NULL) != (cfg->tls_key != NULL)) {
        fprintf(stderr, "luaparty: --tls-cert and --tls-key go together\n");
        return 2;
    }
    return check_cluster(cfg);
}

/* Loads the certificates now, so a bad file stops start-up instead of the
 * first handshake. Returns -1 to go on, or the exit code. */
static int load_tls(const config *cfg)
{
    char *err = NULL;
    if (cfg->tls_cert && tls_server_init(cfg->tls_cert, cfg->tls_key, &err) != 0) goto bad;
    /* The system CA bundle is loaded on the first https fetch, not here: it
     * takes tens of ms. A given --tls-ca is checked now, to fail early. */
    if (cfg->tls_ca && tls_client_init(cfg->tls_ca, &err) != 0) goto bad;
    return -1;
bad:
    fprintf(stderr, "luaparty: %s\n", err);
    free(err);
    return 2;
}

/* load_project, then the checks serve needs. Returns -1 to go on, or the
 * exit code (cfg is freed then). */
static int load_config(config *cfg, const cli_options *o)
{
    int rc = load_project(cfg, o, config_load);
    if (rc >= 0) return rc;
    rc = check_config(cfg);
    if (rc < 0) rc = load_tls(cfg);
    if (rc >= 0) config_free(cfg);
    return rc;
}

/* From the command line to a loaded project. Returns -1 to go on and
 * serve, or the exit code. */
static int configure(app *a, int argc, char **argv)
{
    cli_options o;
    int rc;
    if (cli_parse(&o, argc, argv) != 0) {
        cli_print_error(&o, stderr);
        rc = 2;
    } else if (o.command == CLI_TEST) { /* reads the project itself: once per run with --watch */
        rc = testrun_main(&o, load_config);
    } else if ((rc = run_other_command(&o)) < 0) {
        rc = load_config(&a->cfg, &o);
    }
    cli_options_free(&o);
    return rc;
}

/* Signals are caught from here on: one sent as soon as "listening" is
 * printed must not meet the default action (SIGHUP would kill us). They
 * are handled once the loop runs, on worker 0's loop. */
static void catch_signals(app *a)
{
    uv_loop_t *loop = a->slots[0].loop;
    uv_signal_init(loop, &a->sigint);
    uv_signal_init(loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &a->sighup);
    a->sighup.data = a;
    uv_signal_start(&a->sighup, on_sighup, SIGHUP);
}

/* Runs every party's top-level code once now: a script that fails to load
 * stops start-up with file:line, not the first request. */
static int try_parties(app *a, char **err)
{
    for (size_t i = 0; i < a->cfg.nparties; i++) {
        char *why = NULL;
        if (sandbox_try_party(&a->slots[0].w, a->cfg.parties[i], &why) == 0) continue;
        buf b;
        buf_init(&b);
        buf_printf(&b, "%s/partykit.json: party \"%s\": %s", a->cfg.dir, a->cfg.parties[i]->name, why);
        free(why);
        *err = buf_steal(&b);
        return -1;
    }
    return 0;
}

/* Every worker listens (the others on worker 0's socket); then /metrics,
 * if asked for. */
static int listen_all(app *a, char **err)
{
    slot *first = &a->slots[0];
    for (size_t i = 0; i < a->nslots; i++)
        if (server_listen(&a->slots[i].srv, &a->slots[i].w, i ? &first->srv : NULL, err) != 0) return -1;
    if (a->cfg.metrics_addr && metrics_listen(&first->w, a->cfg.metrics_addr, err) != 0) return -1;
    return 0;
}

/* The node lost its lease: its rooms belong to an epoch that is gone, and
 * another node may own them now. Every room closes (WebSockets with 1012,
 * clients reconnect through any node) and every cached owner is dropped. */
static void evict_all_job(worker *w, void *arg)
{
    (void)arg;
    registry_evict_all(w, 1012, "this node lost its cluster lease");
}

static void on_fence(void *arg)
{
    app *a = arg;
    log_error("cluster: node %s lost its lease: closing its rooms, re-registering", a->cfg.cluster.node_id);
    placement_fenced();
    for (size_t i = 0; i < a->nslots; i++) worker_post(&a->slots[i].w, evict_all_job, NULL);
}

/* <persist>/cluster-node holds "<node id> <epoch>" of the last process that
 * served this persist directory, locked while one does. A node restarted
 * after a crash finds its own epoch there and takes its stale lease over
 * (instead of waiting a lease TTL to be let in); a second process on the
 * same directory is refused. Returns the epoch to take over (0: none), or
 * -1 with *err. */
static int64_t node_token_take(app *a, char **err)
{
    buf path;
    buf_init(&path);
    buf_printf(&path, "%s/cluster-node", a->cfg.persist_dir);
    a->node_lock = open(path.data, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (a->node_lock < 0 || flock(a->node_lock, LOCK_EX | LOCK_NB) != 0) {
        buf msg;
        buf_init(&msg);
        if (a->node_lock >= 0 && errno == EWOULDBLOCK)
            buf_printf(&msg, "another luaparty process serves --persist %s: each node needs its own",
                       a->cfg.persist_dir);
        else buf_printf(&msg, "cannot use %s: %s", path.data, strerror(errno));
        *err = buf_steal(&msg);
        buf_free(&path);
        return -1;
    }
    buf_free(&path);
    char text[128] = "", id[70];
    ssize_t n = pread(a->node_lock, text, sizeof text - 1, 0);
    if (n > 0) text[n] = 0;
    unsigned long long epoch = 0;
    if (sscanf(text, "%69s %llu", id, &epoch) == 2 && !strcmp(id, a->cfg.cluster.node_id)) return (int64_t)epoch;
    return 0;
}

static void node_token_write(app *a, uint64_t epoch)
{
    char text[128];
    int n = snprintf(text, sizeof text, "%s %llu\n", a->cfg.cluster.node_id, (unsigned long long)epoch);
    if (ftruncate(a->node_lock, 0) != 0 || pwrite(a->node_lock, text, (size_t)n, 0) != n)
        log_warn("cluster: cannot record this node's epoch in %s/cluster-node: %s", a->cfg.persist_dir,
                 strerror(errno));
}

static void on_rejoin(void *arg, uint64_t epoch)
{
    app *a = arg;
    log_warn("cluster: node %s registered again (epoch %llu)", a->cfg.cluster.node_id, (unsigned long long)epoch);
    node_token_write(a, epoch);
}

/* Cluster mode: registers this node (its internal listener is bound by
 * now, so the address it publishes is real). Exit code 2 on failure. */
static int join_cluster(app *a, char **err)
{
    const config *cfg = &a->cfg;
    if (!cfg->cluster.url) return 0;
    int64_t prev = node_token_take(a, err);
    if (prev < 0) return -1;
    char addr[300];
    int port = server_internal_port(&a->slots[0].srv);
    snprintf(addr, sizeof addr, "%s:%d", cfg->cluster.internal_host, port);
    cluster_opts o = {cfg->cluster.url, cfg->cluster.node_id, addr, cfg->cluster.lease_ttl_ms, (uint64_t)prev};
    a->cluster = cluster_start(a->slots[0].loop, &o, err);
    if (!a->cluster) return -1;
    node_token_write(a, cluster_epoch(a->cluster));
    cluster_on_fence(a->cluster, on_fence, a);
    cluster_on_rejoin(a->cluster, on_rejoin, a);
    if (!cfg->cluster.local_storage) {
        redis_url u;
        redis_url_parse(cfg->cluster.url, &u, NULL); /* checked by check_cluster */
        for (size_t i = 0; i < a->nslots; i++)
            a->slots[i].w.cstore = cluster_storage_new(a->slots[i].loop, &u, a->cluster, a->slots[i].store);
    }
    placement_start(a->cluster, a->slots[0].w.cstore, a->workers, (int)a->nslots, cfg->cluster.lease_ttl_ms);
    log_info("cluster: node %s, epoch %llu, internal %s", cfg->cluster.node_id,
             (unsigned long long)cluster_epoch(a->cluster), addr);
    return 0;
}

/* The start-up summary. The "listening" line is printed even at
 * --log-level error: tests and scripts wait for it to learn the port. */
static void log_ready(const app *a, uint64_t t0)
{
    const config *cfg = &a->cfg;
    int port = server_port(&a->slots[0].srv);
    log_info("%s: %zu part%s, storage in %s", cfg->name, cfg->nparties, cfg->nparties == 1 ? "y" : "ies",
             cfg->persist_dir);
    if (a->nslots > 1) log_info("%zu workers (event loop threads)", a->nslots);
    config_log_env(cfg);
    if (cfg->dev)
        for (size_t i = 0; i < cfg->nparties; i++)
            log_info("  party %-12s http://%s:%d/parties/%s/:room  (%s)", cfg->parties[i]->name, cfg->host, port,
                     cfg->parties[i]->name, cfg->parties[i]->script);
    log_always(LOG_INFO, "listening on %s://%s:%d (ready in %.1f ms)", cfg->tls_cert ? "https" : "http", cfg->host,
               port, (double)(uv_hrtime() - t0) / 1e6);
}

/* Starts hot reload and the other workers' threads, then runs worker 0 on
 * this thread until shutdown stops its loop. */
static void run(app *a)
{
    slot *first = &a->slots[0];
    if (a->cfg.watch) reload_start(&first->w, &a->cfg);
    for (size_t i = 1; i < a->nslots; i++) uv_thread_create(&a->slots[i].thread, worker_thread, &a->slots[i]);
    uv_run(first->loop, UV_RUN_DEFAULT);
}

/* After worker 0's loop stopped (every worker has drained): wait for the
 * threads, close everything, free everything. */
static void shut_down(app *a)
{
    reload_stop();
    metrics_close();
    fetch_shutdown();
    for (size_t i = 1; i < a->nslots; i++) uv_thread_join(&a->slots[i].thread);
    if (a->cluster) { /* its lease goes now: other nodes may claim its rooms at once */
        placement_stop();
        cluster_stop(a->cluster);
        a->cluster = NULL;
    }
    teardown(a);
    free_slots(a);
    tls_server_free();
    tls_client_free();
    config_free(&a->cfg);
    sandbox_free_compiled();
    thread_cache_drain();
    if (a->node_lock >= 0) close(a->node_lock);
    log_info("bye");
}

int main(int argc, char **argv)
{
    static app a = {.node_lock = -1}; /* static: reachable from the signal handlers until exit */
    int rc = configure(&a, argc, argv);
    if (rc >= 0) return rc;
    char *err = NULL;
    if (make_slots(&a, &err) != 0) return abort_start(&a, 1, err);
    /* a cluster node's copy is never served as the record, nor the reverse */
    bool copy = a.cfg.cluster.url && !a.cfg.cluster.local_storage;
    if (storage_check_role(a.slots[0].store, copy, &err) != 0) return abort_start(&a, 2, err);
    signal(SIGPIPE, SIG_IGN);
    sandbox_prepare();
    catch_signals(&a);
    lp_metrics_here = &a.slots[0].w.stats;
    uint64_t t0 = uv_hrtime();
    if (try_parties(&a, &err) != 0) return abort_start(&a, 2, err);
    if (listen_all(&a, &err) != 0) return abort_start(&a, 1, err);
    if (join_cluster(&a, &err) != 0) return abort_start(&a, 2, err);
    for (size_t i = 0; i < a.nslots; i++) {
        start_services(&a.slots[i].w);
        dispatch_start(&a.slots[i].w); /* after registry_start: cluster mode replaces its calls */
    }
    log_ready(&a, t0);
    run(&a);
    shut_down(&a);
    return 0;
}
