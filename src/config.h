/* config.h - the project: partykit.json, its parties, and server options. */
#ifndef LP_CONFIG_H
#define LP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct party {
    char *name;
    char *script;        /* as written in partykit.json, relative to the project */
    char *path;          /* project dir + script */
    char *chunkname;     /* "@<script>" so Lua errors say parties/x.lua:12 */
    char *source;        /* the script's text */
    size_t source_len;
    char *bytecode;      /* compiled once; every room loads this (lua_dump) */
    size_t bytecode_len;
    bool removed;        /* dropped from partykit.json by a reload */
    unsigned hooks;      /* PARTY_HAS_* : which static hooks the code defines */
    unsigned metric_slot;/* its counters in /metrics (metrics_party_slot of its name) */
} party;

enum {
    PARTY_HAS_BEFORE_CONNECT = 1,
    PARTY_HAS_BEFORE_REQUEST = 2,
    PARTY_HAS_FETCH = 4,
    PARTY_HAS_CRON = 8,
    PARTY_HAS_SOCKET = 16,
};

typedef struct config {
    /* command line */
    char *dir;               /* project directory */
    char *host;
    int port;                /* -1: not given (partykit.json "port" or 1999) */
    char *persist_dir;       /* NULL: <dir>/.luaparty */
    bool dev;
    bool watch;              /* hot reload (default in dev) */
    char *metrics_addr;      /* --metrics HOST:PORT, or NULL */
    char **cli_vars;         /* --var KEY=VALUE, as given (kept across reloads) */
    size_t ncli_vars;
    /* partykit.json */
    char *name;
    party **parties;         /* parties[0] is "main"; pointers stay valid across reloads */
    size_t nparties;
    char *vars_json;         /* JSON object text for room.env: "vars", .env, .env.local, --var */
    size_t env_counts[4];    /* how many names each of those four gave (for the log; never values) */
    char *serve_dir;         /* "serve": static files (realpath), or NULL */
    bool serve_spa;          /* serve.singlePageApp: index.html for unknown paths */
    char *cors_origin;       /* luaparty.cors: Access-Control-Allow-Origin, or NULL */
    char **outbound;         /* luaparty.outbound: hosts fetch may reach (NULL: any) */
    size_t noutbound;
    struct cron_entry *crons;/* "crons" */
    size_t ncrons;
    party **retired;         /* removed by reloads; kept while rooms drain */
    size_t nretired;
    /* limits */
    size_t max_message;      /* WebSocket message bytes */
    size_t max_header;       /* HTTP header bytes */
    size_t max_headers;      /* HTTP header lines */
    size_t max_body;         /* HTTP body bytes */
    size_t max_output;       /* per-connection output queue before a slow client is dropped */
    size_t room_memory;      /* Lua heap per room */
    size_t max_value;        /* encoded storage value bytes */
    uint64_t idle_timeout_ms;/* unload rooms idle this long */
    bool storage_sync_full;  /* fsync every commit */
    uint64_t cpu_limit_ms;   /* per callback step; 0 = no limit (and the JIT on) */
    uint64_t header_timeout_ms; /* a request's headers must arrive within this */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connections are closed after this */
    uint64_t ping_interval_ms;  /* WebSocket pings to find dead peers */
    size_t max_connections;  /* clients in total */
    size_t workers;          /* event loop threads; 0: 1 in dev, one per core in serve */
    size_t max_room_connections; /* WebSockets per room */
    uint64_t fetch_timeout_ms; /* outbound fetch, per call */
    size_t fetch_max_bytes;  /* outbound fetch response size */
    char *tls_ca;            /* --tls-ca: extra CA file for outbound TLS */
    char *tls_cert, *tls_key;/* --tls-cert/--tls-key: serve https and wss */
    /* cluster mode (--cluster, or "luaparty": {"cluster": ...}); url NULL: one node */
    struct {
        char *url;           /* redis://[:password@]host[:port][/db] or unix:/path */
        char *node_id;       /* unique among the live nodes */
        char *internal_host; /* the internal listener: requests other nodes forward */
        int internal_port;
        char *advertise;     /* host:port other nodes reach it at (default internal host:port) */
        char *secret;        /* --cluster-secret / LUAPARTY_CLUSTER_SECRET: required there */
        uint64_t lease_ttl_ms;
        bool local_storage;  /* --cluster-storage local: SQLite, rooms pinned (default: Redis) */
    } cluster;
} config;

void config_defaults(config *cfg);
/* Logs where room.env came from (names of sources and counts, no values). */
void config_log_env(const config *cfg);
/* Reads <cfg->dir>/partykit.json and the party scripts. On error returns -1
 * with *err set to one line naming the file and the key (caller frees). */
int config_load(config *cfg, char **err);
/* Reads only where partykit.json keeps storage ("persist", and "port"):
 * the storage commands work while a party does not compile. */
int config_load_storage(config *cfg, char **err);
void config_free(config *cfg);
/* Frees what partykit.json filled in (name, parties, vars, serve, crons, cors). */
void config_free_project(config *cfg);
void party_free(party *p);
/* Compiles source into bytecode (syntax check). Returns 0 or -1 with *err. */
int party_compile(party *p, char **err);
const party *config_party(const config *cfg, const char *name, size_t len);
/* True for [A-Za-z0-9_-]+ */
bool config_valid_party_name(const char *s, size_t len);

#endif
