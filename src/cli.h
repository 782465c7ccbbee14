/* cli.h - the luaparty command line: the command, its options and the usage
 * text. Parsing only reads argv and checks it; nothing is applied until
 * cli_apply, so main can apply the options twice (before and after reading
 * partykit.json, which they override) and the tests can look at the result. */
#ifndef LP_CLI_H
#define LP_CLI_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_command {
    CLI_DEV, CLI_SERVE, CLI_INIT, CLI_HELP, CLI_VERSION, CLI_CLUSTER_STATUS,
    CLI_STORAGE_EXPORT, CLI_STORAGE_IMPORT, /* luaparty storage export|import --cluster URL [DIR] */
    CLI_TEST                                /* luaparty test [DIR] [FILE...] */
} cli_command;

/* A number option: set says it was given (0 can be a given value). */
typedef struct cli_number {
    bool set;
    uint64_t value;
} cli_number;

typedef struct cli_options {
    cli_command command;
    char *dir;             /* dev/serve/test: the project directory, resolved; init: as given, or "." */
    bool watch;            /* --watch, or the dev command; test: run again on every save */
    /* test: the test files named (as given, pointing into argv), --filter, --seed, --verbose */
    const char **files;
    size_t nfiles;
    const char *filter;
    cli_number seed;
    bool verbose;
    int port;              /* -1: not given */
    /* strings point into argv; NULL: not given */
    const char *host, *persist_dir, *tls_cert, *tls_key, *tls_ca, *metrics_addr;
    /* cluster mode; cluster_url is also `cluster status`'s */
    const char *cluster_url, *node_id, *internal_host, *cluster_secret;
    int internal_port;     /* -1: not given */
    cli_number lease_ttl_ms;
    const char **vars;     /* --var KEY=VALUE, in order (into argv) */
    size_t nvars;
    int log_level;         /* enum log_level, or -1: not given */
    int log_json;          /* --log-format: 1 json, 0 text, -1 not given */
    int storage_sync_full; /* --storage-sync: 1 full, 0 normal, -1 not given */
    int cluster_local;     /* --cluster-storage: 1 local, 0 redis, -1 not given */
    cli_number cpu_limit_ms;
    /* bytes and counts */
    cli_number max_message, room_memory, max_value, max_connections, workers, max_room_connections, max_header,
        max_headers, max_body, max_output;
    /* given in seconds, kept in ms */
    cli_number idle_timeout_ms, ping_interval_ms, header_timeout_ms, keepalive_timeout_ms;
    /* after a failed parse: one line without the "luaparty: " prefix, or NULL
     * when the usage alone says it (no command given) */
    char *error;
    bool error_usage;      /* the usage text follows the error */
} cli_options;

extern const char cli_usage[];

/* Parses argv into o (which it initializes). Returns 0, or -1 with
 * o->error / o->error_usage set; either way call cli_options_free. */
int cli_parse(cli_options *o, int argc, char **argv);
/* Writes what the options give into cfg (dev/serve/test only), and the log
 * settings, which are process-wide. Applying twice is harmless. */
void cli_apply(const cli_options *o, config *cfg);
/* Prints a failed parse's message the way luaparty always has. */
void cli_print_error(const cli_options *o, FILE *f);
void cli_options_free(cli_options *o);

#endif
