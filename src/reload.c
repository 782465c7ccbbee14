/* reload.c - hot reload.
 *
 * Watching: libuv fs events on the project directory and its
 * subdirectories (inotify is not recursive), skipping hidden directories,
 * node_modules and the storage directory. One save produces a burst of
 * events (editors write a temp file, then rename it), so they are coalesced
 * by a short timer.
 *
 * Applying: partykit.json (with .env and .env.local, which feed room.env)
 * and every party script are read again. A script
 * that changed is compiled once and run once in a throwaway state; if that
 * fails, the error (file:line) is logged and the running code stays. Good
 * code reaches every live room of the party as an EV_RELOAD event, queued
 * behind what the room already has, so each message is handled by either
 * the old or the new code and none is lost. The room keeps its instance
 * (self and its fields) and its connections. New parties become routable;
 * removed parties drain (connections closed with 1012 after onClose). */
#include "reload.h"
#include "cron.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "room.h"
#include "sandbox.h"
#include "worker.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WATCHES 256
#define DEBOUNCE_MS 40

static struct {
    worker *w;
    config *cfg;
    uv_fs_event_t *watches[MAX_WATCHES]; /* each freed by its close callback */
    int nwatches;
    uv_timer_t debounce;
    bool modules_changed;
    bool active;
} R;

static bool skip_dir(const char *name, const char *path);
static void watch_tree(const char *dir, int depth);
static void unwatch_all(void);
static void watch_all(void);

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_party_script(const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    for (size_t i = 0; i < R.cfg->nparties; i++)
        if (strcmp(R.cfg->parties[i]->path, path) == 0) return true;
    return false;
}

static void on_debounce(uv_timer_t *t)
{
    bool modules = R.modules_changed;
    R.modules_changed = false;
    reload_apply(R.w, R.cfg, modules);
}

/* .env and .env.local in the project folder: room.env changes without a restart. */
static bool is_env_file(const char *dir, const char *file)
{
    return (strcmp(file, ".env") == 0 || strcmp(file, ".env.local") == 0) && strcmp(dir, R.cfg->dir) == 0;
}

static void on_fs_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    if (status < 0 || !file) return;
    const char *dir = h->data;
    if (strcmp(file, "partykit.json") != 0 && !ends_with(file, ".lua") && !is_env_file(dir, file)) {
        /* a new directory may soon hold modules: watch it now */
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if ((events & UV_RENAME) && lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && !skip_dir(file, path)) {
            unwatch_all();
            watch_all();
        }
        return;
    }
    if (ends_with(file, ".lua") && !is_party_script(dir, file)) R.modules_changed = true;
    uv_timer_start(&R.debounce, on_debounce, DEBOUNCE_MS, 0);
}

static bool skip_dir(const char *name, const char *path)
{
    if (name[0] == '.' || strcmp(name, "node_modules") == 0) return true;
    return R.cfg->persist_dir && strcmp(path, R.cfg->persist_dir) == 0;
}

static void free_watch(uv_handle_t *h)
{
    free(h->data);
    free(h);
}

static void watch_tree(const char *dir, int depth)
{
    if (R.nwatches >= MAX_WATCHES) return;
    uv_fs_event_t *h = xmalloc(sizeof *h);
    uv_fs_event_init(R.w->loop, h);
    h->data = xstrdup(dir);
    if (uv_fs_event_start(h, on_fs_event, dir, 0) != 0) {
        uv_close((uv_handle_t *)h, free_watch);
        return;
    }
    R.watches[R.nwatches++] = h;
    if (depth >= 4) return;
    /* open + fdopendir rather than opendir: ThreadSanitizer sees open()
     * give out the fd number, not opendir. libuv closes sockets with a raw
     * syscall it cannot see either, so a number a worker's socket just
     * released looked like a race between that socket's last read and our
     * closedir (CI, --workers 2 under TSan). */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st; /* lstat: a symlinked folder may lead back into the tree */
        if (skip_dir(e->d_name, path) || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        watch_tree(path, depth + 1);
    }
    closedir(d);
}

static void unwatch_all(void)
{
    for (int i = 0; i < R.nwatches; i++) uv_close((uv_handle_t *)R.watches[i], free_watch);
    R.nwatches = 0;
}

/* The project tree, plus the folder of every party script that lives
 * outside it (shared parties such as ../../parties/presence.lua). */
static void watch_all(void)
{
    watch_tree(R.cfg->dir, 0);
    size_t n = strlen(R.cfg->dir);
    for (size_t i = 0; i < R.cfg->nparties; i++) {
        const char *path = R.cfg->parties[i]->path;
        if (strncmp(path, R.cfg->dir, n) == 0 && path[n] == '/') continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash) continue;
        *slash = 0;
        watch_tree(dir, 4); /* that folder only, not below */
    }
}

int reload_start(worker *w, config *cfg)
{
    R.w = w;
    R.cfg = cfg;
    R.active = true;
    uv_timer_init(w->loop, &R.debounce);
    watch_all();
    return 0;
}

void reload_stop(void)
{
    if (!R.active) return;
    R.active = false;
    unwatch_all();
    uv_timer_stop(&R.debounce);
    uv_close((uv_handle_t *)&R.debounce, NULL);
}

typedef struct change {
    const party *p;
    bool code, env, retire;
} change;

/* On the worker that owns the rooms: queue a reload (code and/or env) in
 * each, or close them all if the party was removed. */
static void apply_change(worker *w, void *arg)
{
    change *c = arg;
    room **list;
    size_t n = registry_rooms(w, c->p, &list);
    for (size_t i = 0; i < n; i++) {
        if (c->retire) registry_evict(w, list[i], 1012, "party removed from partykit.json");
        else room_reload(list[i], c->code, c->env);
    }
    free(list);
    free(c);
}

/* Applies a change to p's rooms on every worker: here at once, elsewhere
 * as a job (their rooms run only on their own thread). The others are
 * paused, so their registries can be counted. Returns the room count. */
static size_t change_rooms(worker *w, const party *p, bool code, bool env, bool retire)
{
    size_t total = 0;
    for (int k = 0; k < w->nworkers; k++) {
        worker *to = w->all[k];
        total += registry_rooms(to, p, NULL);
        change *c = xmalloc(sizeof *c);
        *c = (change){p, code, env, retire};
        if (to == w) apply_change(w, c);
        else worker_post(to, apply_change, c);
    }
    return total;
}

static void retire(worker *w, config *cfg, party *p)
{
    p->removed = true;
    size_t n = change_rooms(w, p, false, false, true);
    cfg->retired = xrealloc(cfg->retired, (cfg->nretired + 1) * sizeof *cfg->retired);
    cfg->retired[cfg->nretired++] = p;
    log_info("party %s removed (%zu room%s closed)", p->name, n, n == 1 ? "" : "s");
}

/* Whether p's code must be loaded again: its source or path changed, or a
 * module it may require did (modules). */
static bool code_changed(const party *cur, const party *np, bool modules)
{
    return modules || cur->source_len != np->source_len || memcmp(cur->source, np->source, np->source_len) != 0 ||
           strcmp(cur->path, np->path) != 0;
}

/* Reads the project again into next, a scratch config sharing cfg's
 * command-line fields (not owned by next). Returns false, logged, if
 * partykit.json or a script cannot be read. */
static bool read_project(const config *cfg, config *next)
{
    memset(next, 0, sizeof *next);
    next->dir = cfg->dir;
    next->host = cfg->host;
    next->port = cfg->port;
    next->persist_dir = cfg->persist_dir;
    next->cli_vars = cfg->cli_vars; /* --var: merged into room.env again */
    next->ncli_vars = cfg->ncli_vars;
    char *err = NULL;
    if (config_load(next, &err) == 0) return true;
    log_error("reload: %s/%s; still running the previous code", cfg->dir, err);
    free(err);
    config_free_project(next);
    return false;
}

/* Runs every new or changed script once in a throwaway state, before
 * anything is touched: one bad script keeps all the running code. */
static bool scripts_load(worker *w, const config *cfg, const config *next, bool modules)
{
    bool ok = true;
    for (size_t i = 0; i < next->nparties; i++) {
        party *np = next->parties[i];
        const party *cur = config_party(cfg, np->name, strlen(np->name));
        if (cur && !code_changed(cur, np, modules)) continue;
        char *perr = NULL;
        if (sandbox_try_party(w, np, &perr) != 0) {
            log_error("reload of %s failed: %s; still running the previous code", np->script, perr);
            free(perr);
            ok = false;
        }
    }
    return ok;
}

/* Takes next's vars if they differ. Returns whether they did. */
static bool take_vars(config *cfg, config *next)
{
    if (strcmp(cfg->vars_json, next->vars_json) == 0) return false;
    free(cfg->vars_json);
    cfg->vars_json = next->vars_json;
    next->vars_json = NULL;
    return true;
}

/* Moves np's code into cur: rooms hold pointers to cur, so the object
 * stays and its contents change. */
static void take_code(party *cur, party *np)
{
    free(cur->source);
    free(cur->bytecode);
    free(cur->script);
    free(cur->path);
    free(cur->chunkname);
    cur->source = np->source;
    cur->source_len = np->source_len;
    cur->bytecode = np->bytecode;
    cur->bytecode_len = np->bytecode_len;
    cur->script = np->script;
    cur->path = np->path;
    cur->chunkname = np->chunkname;
    cur->hooks = np->hooks;
    np->source = np->bytecode = np->script = np->path = np->chunkname = NULL;
}

typedef struct merge_count {
    size_t rooms, swapped;
} merge_count;

/* The party list after the reload, in next's order: parties still present
 * keep their objects (with new code if it changed, and their rooms told),
 * new ones are taken from next (their slot there set to NULL). */
static party **merge_parties(worker *w, config *cfg, config *next, bool modules, bool env_changed,
                             merge_count *count)
{
    party **merged = xcalloc(next->nparties, sizeof *merged);
    for (size_t i = 0; i < next->nparties; i++) {
        party *np = next->parties[i];
        party *cur = (party *)config_party(cfg, np->name, strlen(np->name));
        if (!cur) {
            merged[i] = np;
            next->parties[i] = NULL;
            log_info("party %s added (%s)", np->name, np->script);
            continue;
        }
        bool changed = code_changed(cur, np, modules);
        if (changed) {
            take_code(cur, np);
            count->swapped++;
        }
        if (changed || env_changed) count->rooms += change_rooms(w, cur, changed, env_changed, false);
        merged[i] = cur;
    }
    return merged;
}

/* Parties gone from partykit.json: their rooms close, their objects are
 * kept (cfg->retired) while those rooms drain. */
static void retire_removed(worker *w, config *cfg, party **merged, size_t nmerged)
{
    for (size_t i = 0; i < cfg->nparties; i++) {
        bool kept = false;
        for (size_t j = 0; j < nmerged; j++) kept |= merged[j] == cfg->parties[i];
        if (!kept) retire(w, cfg, cfg->parties[i]);
    }
}

/* Installs the merged list and the new name; frees what is left of next's
 * parties (the shells of swapped ones, and unchanged ones). */
static void adopt_parties(config *cfg, config *next, party **merged)
{
    free(cfg->parties);
    cfg->parties = merged;
    cfg->nparties = next->nparties;
    free(cfg->name);
    cfg->name = next->name;
    next->name = NULL;
    for (size_t i = 0; i < next->nparties; i++) party_free(next->parties[i]);
    free(next->parties);
    next->parties = NULL;
    next->nparties = 0;
    free(next->vars_json);
    next->vars_json = NULL;
}

/* serve, crons and cors apply at once; limits need a restart. The old
 * values go to next, to be freed with it. */
static void swap_live_settings(config *cfg, config *next)
{
    char *old_serve = cfg->serve_dir, *old_cors = cfg->cors_origin;
    cron_entry *old_crons = cfg->crons;
    size_t old_ncrons = cfg->ncrons;
    cfg->serve_dir = next->serve_dir;
    cfg->serve_spa = next->serve_spa;
    cfg->cors_origin = next->cors_origin;
    cfg->crons = next->crons;
    cfg->ncrons = next->ncrons;
    next->serve_dir = old_serve;
    next->cors_origin = old_cors;
    next->crons = old_crons;
    next->ncrons = old_ncrons;
}

void reload_apply(worker *w, config *cfg, bool modules) { reload_apply_edited(w, cfg, modules, NULL, NULL); }

bool reload_apply_edited(worker *w, config *cfg, bool modules, bool (*edit)(config *next, void *ud), void *ud)
{
    uint64_t t0 = uv_hrtime();
    config next;
    if (!read_project(cfg, &next)) return false;
    if ((edit && !edit(&next, ud)) || !scripts_load(w, cfg, &next, modules) || !worker_pause_others(w)) {
        /* a bad edit or script, or shutting down: the others cannot be paused */
        config_free_project(&next);
        return false;
    }
    /* The other workers wait while the shared config changes. */
    bool env_changed = take_vars(cfg, &next);
    merge_count count = {0, 0};
    party **merged = merge_parties(w, cfg, &next, modules, env_changed, &count);
    retire_removed(w, cfg, merged, next.nparties);
    adopt_parties(cfg, &next, merged);
    swap_live_settings(cfg, &next);
    config_free_project(&next); /* the old serve, cors and crons; next's outbound list (a restart applies it) */
    worker_resume_others(w);
    if (R.active) { /* new directories may hold new modules */
        unwatch_all();
        watch_all();
    }
    METRIC_ADD(reloads, 1);
    log_info("reloaded %zu part%s%s in %.1f ms (%zu room%s)", count.swapped, count.swapped == 1 ? "y" : "ies",
             env_changed ? " and vars" : "", (double)(uv_hrtime() - t0) / 1e6, count.rooms,
             count.rooms == 1 ? "" : "s");
    return true;
}
