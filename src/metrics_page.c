/* metrics_page.c - the Prometheus text /metrics answers with: every
 * worker's counters summed, and gauges (rooms, connections, clients, Lua
 * memory) read from the registries at scrape time. */
#include "metrics_page.h"
#include "placement.h"
#include "procinfo.h"
#include "registry.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* Every worker's counters, summed. */
static void sum_counters(worker *w, metrics *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < w->nworkers; i++) {
        const uint64_t *from = (const uint64_t *)&w->all[i]->stats;
        uint64_t *to = (uint64_t *)m;
        for (size_t k = 0; k < sizeof *m / sizeof(uint64_t); k++) to[k] += __atomic_load_n(&from[k], __ATOMIC_RELAXED);
    }
}

/* Rooms, connections and Lua memory, read from the registries. */
typedef struct tally {
    const config *cfg;
    size_t *party_rooms;   /* by party index */
    size_t rooms;          /* of the worker being read */
    size_t conns, mem;
} tally;

static void count_room(room *r, void *ud)
{
    tally *t = ud;
    t->conns += r->nconns;
    t->mem += r->mem_used;
    if (!r->id[0]) return; /* the lobby "" is not a room */
    t->rooms++;
    for (size_t i = 0; i < t->cfg->nparties; i++)
        if (t->cfg->parties[i] == r->party) t->party_rooms[i]++;
}

static void counter(buf *b, const char *name, const char *help, uint64_t v);
static void gauge(buf *b, const char *name, const char *help, double v);
static void render_process(buf *b);

/* Cluster mode: this node's share of the cluster (cluster.c counts on
 * worker 0, whose loop this runs on: the listener lives there). */
static void render_cluster(buf *b, const metrics *m)
{
    const cluster_counters *cc = placement_counters();
    gauge(b, "luaparty_cluster_rooms_owned", "Rooms this node owns.", (double)placement_rooms_here());
    counter(b, "luaparty_cluster_proxied_requests_total", "HTTP requests forwarded to the owner node.",
            m->cluster_proxied_requests);
    counter(b, "luaparty_cluster_proxied_sockets_total", "WebSockets spliced to the owner node.",
            m->cluster_proxied_sockets);
    counter(b, "luaparty_cluster_misdirected_total", "421s: forwarded here, owned elsewhere.", m->cluster_misdirected);
    counter(b, "luaparty_cluster_claims_won_total", "Rooms claimed by this node.", cc->claims_won);
    counter(b, "luaparty_cluster_claims_lost_total", "Claims that found another owner.", cc->claims_lost);
    counter(b, "luaparty_cluster_claim_errors_total", "Claims that failed (Redis down, node fenced).", cc->claims_errors);
    counter(b, "luaparty_cluster_claims_delegated_total",
            "First requests for a room that the load guard placed on a less loaded node.", cc->claims_delegated);
    counter(b, "luaparty_cluster_lease_renewals_total", "Lease renewals that succeeded.", cc->renewals_ok);
    counter(b, "luaparty_cluster_lease_failures_total", "Lease renewals that failed.", cc->renewals_failed);
    counter(b, "luaparty_cluster_fences_total", "Times this node lost its lease and closed its rooms.", cc->fences);
    counter(b, "luaparty_cluster_commits_total", "Storage commits Redis acknowledged.", m->cluster_commits);
    counter(b, "luaparty_cluster_commits_fenced_total",
            "Storage commits Redis refused: another node owns the room (or this node's lease ran out).",
            m->cluster_commits_fenced);
    counter(b, "luaparty_cluster_commits_failed_total", "Storage commits Redis refused for another reason.",
            m->cluster_commits_failed);
    counter(b, "luaparty_cluster_commit_retries_total", "Commits sent again after no answer (Redis restarting).",
            m->cluster_commit_retries);
    counter(b, "luaparty_cluster_room_loads_total", "Rooms whose data was loaded from Redis (the copy was stale).",
            m->cluster_room_loads);
    counter(b, "luaparty_cluster_room_load_keys_total", "Keys loaded from Redis by those loads.",
            m->cluster_room_load_keys);
}

/* A counter with a party label: every party name seen since start (a
 * removed party's counts stay, as counters must not go back). */
static void by_party(buf *b, const char *name, const char *help, const uint64_t *v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (unsigned i = 0; i < metrics_party_slots(); i++)
        buf_printf(b, "%s{party=\"%s\"} %llu\n", name, metrics_party_name(i), (unsigned long long)v[i]);
}

/* The standard process_* metrics every Prometheus client library exports,
 * so the usual dashboards and alerts work unchanged. */
static void render_process(buf *b)
{
    proc_info pi;
    proc_info_read(&pi);
    buf_printf(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                  "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.6f\n", pi.cpu_seconds);
    gauge(b, "process_resident_memory_bytes", "Resident memory size in bytes.", (double)pi.rss_bytes);
    gauge(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", (double)pi.vm_bytes);
    gauge(b, "process_open_fds", "Number of open file descriptors.", (double)pi.open_fds);
    if (pi.max_fds) gauge(b, "process_max_fds", "Maximum number of open file descriptors.", (double)pi.max_fds);
    buf_printf(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                  "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n", pi.start_time);
}

static void counter(buf *b, const char *name, const char *help, uint64_t v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void gauge(buf *b, const char *name, const char *help, double v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.0f\n", name, help, name, name, v);
}

/* Gauges are read from the registries of all workers: the others are
 * paused for the few microseconds that takes (worker.h), so no room is read
 * while its owner changes it. */
bool metrics_render(worker *w, buf *b)
{
    if (!worker_pause_others(w)) return false;
    metrics sum;
    sum_counters(w, &sum);
    const metrics *m = &sum;
    const config *cfg = w->cfg;
    size_t clients = 0;
    tally t = {cfg, xcalloc(cfg->nparties, sizeof *t.party_rooms), 0, 0, 0};
    size_t *worker_rooms = xcalloc((size_t)w->nworkers, sizeof *worker_rooms);
    for (int k = 0; k < w->nworkers; k++) {
        t.rooms = 0;
        registry_each(w->all[k], count_room, &t);
        worker_rooms[k] = t.rooms;
    }
    buf_appendstr(b, "# HELP luaparty_rooms Live rooms per party.\n# TYPE luaparty_rooms gauge\n");
    for (size_t i = 0; i < cfg->nparties; i++)
        buf_printf(b, "luaparty_rooms{party=\"%s\"} %zu\n", cfg->parties[i]->name, t.party_rooms[i]);
    free(t.party_rooms);
    buf_appendstr(b, "# HELP luaparty_worker_rooms Live rooms per worker (placement by party/room hash).\n"
                     "# TYPE luaparty_worker_rooms gauge\n");
    for (int k = 0; k < w->nworkers; k++) buf_printf(b, "luaparty_worker_rooms{worker=\"%d\"} %zu\n", k, worker_rooms[k]);
    free(worker_rooms);
    buf_appendstr(b, "# HELP luaparty_worker_clients Open TCP clients per worker.\n"
                     "# TYPE luaparty_worker_clients gauge\n");
    for (int k = 0; k < w->nworkers; k++) {
        size_t n = server_clients(w->all[k]->srv);
        clients += n;
        buf_printf(b, "luaparty_worker_clients{worker=\"%d\"} %zu\n", k, n);
    }
    worker_resume_others(w);
    gauge(b, "luaparty_connections", "Open WebSocket connections joined to rooms.", (double)t.conns);
    gauge(b, "luaparty_clients", "Open TCP clients (HTTP and WebSocket).", (double)clients);
    gauge(b, "luaparty_lua_memory_bytes", "Lua heap in use, all rooms.", (double)t.mem);
    gauge(b, "luaparty_workers", "Worker threads (event loops).", (double)w->nworkers);
    counter(b, "luaparty_connections_opened_total", "WebSocket connections accepted.", m->connections_opened);
    by_party(b, "luaparty_messages_in_total", "WebSocket messages received, by party.", m->messages_in);
    by_party(b, "luaparty_messages_out_total", "WebSocket messages sent, by party.", m->messages_out);
    counter(b, "luaparty_bytes_in_total", "WebSocket payload bytes received.", m->bytes_in);
    counter(b, "luaparty_bytes_out_total", "WebSocket payload bytes sent.", m->bytes_out);
    counter(b, "luaparty_ws_frames_encoded_total",
            "WebSocket data frames encoded (a broadcast encodes one frame for all its receivers).", m->frames_encoded);
    buf_appendstr(b, "# HELP luaparty_http_requests_total HTTP responses by status.\n"
                     "# TYPE luaparty_http_requests_total counter\n");
    for (int code = 100; code < 600; code++)
        if (m->http_status[code])
            buf_printf(b, "luaparty_http_requests_total{status=\"%d\"} %llu\n", code,
                       (unsigned long long)m->http_status[code]);
    by_party(b, "luaparty_callback_errors_total", "Lua errors raised by party callbacks, by party.", m->callback_errors);
    counter(b, "luaparty_storage_commit_failures_total", "Storage commits that failed.", m->commit_failures);
    buf_appendstr(b, "# HELP luaparty_storage_commit_seconds Storage commit latency.\n"
                     "# TYPE luaparty_storage_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
        cum += m->commit_buckets[i];
        buf_printf(b, "luaparty_storage_commit_seconds_bucket{le=\"%g\"} %llu\n", metrics_commit_buckets[i],
                   (unsigned long long)cum);
    }
    buf_printf(b, "luaparty_storage_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->commits);
    buf_printf(b, "luaparty_storage_commit_seconds_sum %.6f\nluaparty_storage_commit_seconds_count %llu\n",
               (double)m->commit_ns_sum / 1e9, (unsigned long long)m->commits);
    counter(b, "luaparty_reloads_total", "Hot reloads applied.", m->reloads);
    if (placement_clustered()) render_cluster(b, m);
    render_process(b);
    return true;
}
