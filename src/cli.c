/* cli.c - the luaparty command line: which command, which options, and the
 * usage text. cli_parse checks argv and fills a cli_options; cli_apply
 * writes it into a config. Errors are kept as text (not printed here) so
 * main prints them and the unit tests can read them. */
#include "cli.h"
#include "dotenv.h"
#include "log.h"
#include "util.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char cli_usage[] =
    "usage: luaparty <command> [DIR] [options]\n"
    "\n"
    "commands:\n"
    "  dev   [DIR]   development server (logs every request and connection, hot reload)\n"
    "  serve [DIR]   production server\n"
    "  init  [DIR]   write a small working project to start from\n"
    "  test  [DIR] [FILE...]   run the project's tests/*_test.lua in-process, on a virtual clock\n"
    "                (--filter TEXT: only tests whose name has it; --watch: run again on every\n"
    "                save; --seed N: connection ids; --verbose: party logs of passing tests too)\n"
    "  cluster status --cluster URL   the nodes of a cluster: leases, addresses, rooms\n"
    "  storage export --cluster URL [DIR] [--persist P]   a single-node database into Redis\n"
    "  storage import --cluster URL [DIR] [--persist P]   the cluster's rooms from Redis into one\n"
    "\n"
    "DIR holds partykit.json (default: the current directory).\n"
    "\n"
    "options:\n"
    "  --port N          port to listen on (default 1999, or partykit.json \"port\"; 0 = any)\n"
    "  --host ADDR       address to listen on (default 127.0.0.1)\n"
    "  --persist DIR     storage directory (default DIR/.luaparty)\n"
    "  --log-level L     debug, info, warn, error (default info)\n"
    "  --var KEY=VALUE   set room.env.KEY (repeatable); wins over .env.local, .env and\n"
    "                    partykit.json \"vars\" (README \"Secrets and room.env\")\n"
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
    "  --max-headers N           HTTP header lines (default 100; more: 431)\n"
    "  --max-body N              HTTP body bytes (default 8388608; more: 413)\n"
    "  --max-output N            unsent bytes per client before it is dropped (default 16777216)\n"
    "  --header-timeout S        request headers must arrive within S (default 10)\n"
    "  --keepalive-timeout S     close idle keep-alive connections (default 60)\n"
    "  --metrics ADDR    serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464)\n"
    "  --tls-ca FILE     also trust this CA (PEM) for outbound https fetch\n"
    "  --tls-cert FILE --tls-key FILE   serve https and wss (PEM); SIGHUP reloads them\n"
    "  --log-format F    text (default) or json (one object per line)\n"
    "  --cluster URL     cluster mode on Redis: redis://[:password@]host[:port][/db] or\n"
    "                    unix:/path/redis.sock[?db=N] (README \"Cluster mode\")\n"
    "  --node-id ID      this node's name, unique among live nodes (cluster mode)\n"
    "  --internal-host ADDR --internal-port N   where other nodes forward requests\n"
    "                    (default: --host, any free port)\n"
    "  --cluster-secret S  shared by the nodes (or LUAPARTY_CLUSTER_SECRET)\n"
    "  --lease-ttl MS    node lease (default 5000): a dead node's rooms move after it\n"
    "  --cluster-storage S  redis (default: room data in Redis, rooms move freely) or\n"
    "                    local (each node's SQLite; a room that wrote stays on its node)\n"
    "  --watch           hot reload in serve (always on in dev)\n"
    "  --help            this text\n"
    "  --version         print the version\n"
    "\n"
    "Limits can also be set in partykit.json under \"luaparty\" (maxMessage, roomMemory,\n"
    "maxValue, cpuLimit, maxConnections, maxRoomConnections, maxHeader, maxHeaders, maxBody, maxOutput,\n"
    "idleTimeout, pingInterval, headerTimeout, keepaliveTimeout, fetchTimeout, fetchMaxBytes,\n"
    "outbound, cors, workers); the command line wins.\n";

/* Options taking a string: one table for parsing and applying, instead of
 * one branch each. */
static const struct {
    const char *name;
    size_t opt, cfg; /* offsets of the const char * in cli_options, the char * in config */
} string_options[] = {
    {"--host", offsetof(cli_options, host), offsetof(config, host)},
    {"--persist", offsetof(cli_options, persist_dir), offsetof(config, persist_dir)},
    {"--tls-cert", offsetof(cli_options, tls_cert), offsetof(config, tls_cert)},
    {"--tls-key", offsetof(cli_options, tls_key), offsetof(config, tls_key)},
    {"--tls-ca", offsetof(cli_options, tls_ca), offsetof(config, tls_ca)},
    {"--metrics", offsetof(cli_options, metrics_addr), offsetof(config, metrics_addr)},
    {"--cluster", offsetof(cli_options, cluster_url), offsetof(config, cluster.url)},
    {"--node-id", offsetof(cli_options, node_id), offsetof(config, cluster.node_id)},
    {"--internal-host", offsetof(cli_options, internal_host), offsetof(config, cluster.internal_host)},
    {"--cluster-secret", offsetof(cli_options, cluster_secret), offsetof(config, cluster.secret)},
};

enum number_kind {
    NUM_SIZE,    /* a positive integer, into a size_t */
    NUM_SECONDS, /* positive seconds (decimals allowed), into uint64_t ms */
    NUM_MS,      /* milliseconds, 0 allowed, into uint64_t */
};

/* Options taking a number, likewise. */
static const struct {
    const char *name;
    size_t opt, cfg; /* offsets of the cli_number, and of the config field */
    enum number_kind kind;
} number_options[] = {
    {"--max-message", offsetof(cli_options, max_message), offsetof(config, max_message), NUM_SIZE},
    {"--room-memory", offsetof(cli_options, room_memory), offsetof(config, room_memory), NUM_SIZE},
    {"--max-value", offsetof(cli_options, max_value), offsetof(config, max_value), NUM_SIZE},
    {"--max-connections", offsetof(cli_options, max_connections), offsetof(config, max_connections), NUM_SIZE},
    {"--workers", offsetof(cli_options, workers), offsetof(config, workers), NUM_SIZE},
    {"--max-room-connections", offsetof(cli_options, max_room_connections), offsetof(config, max_room_connections),
     NUM_SIZE},
    {"--max-header", offsetof(cli_options, max_header), offsetof(config, max_header), NUM_SIZE},
    {"--max-headers", offsetof(cli_options, max_headers), offsetof(config, max_headers), NUM_SIZE},
    {"--max-body", offsetof(cli_options, max_body), offsetof(config, max_body), NUM_SIZE},
    {"--max-output", offsetof(cli_options, max_output), offsetof(config, max_output), NUM_SIZE},
    {"--idle-timeout", offsetof(cli_options, idle_timeout_ms), offsetof(config, idle_timeout_ms), NUM_SECONDS},
    {"--ping-interval", offsetof(cli_options, ping_interval_ms), offsetof(config, ping_interval_ms), NUM_SECONDS},
    {"--header-timeout", offsetof(cli_options, header_timeout_ms), offsetof(config, header_timeout_ms), NUM_SECONDS},
    {"--keepalive-timeout", offsetof(cli_options, keepalive_timeout_ms), offsetof(config, keepalive_timeout_ms),
     NUM_SECONDS},
    {"--cpu-limit", offsetof(cli_options, cpu_limit_ms), offsetof(config, cpu_limit_ms), NUM_MS},
    {"--lease-ttl", offsetof(cli_options, lease_ttl_ms), offsetof(config, cluster.lease_ttl_ms), NUM_MS},
};

/* Sets the error text; returns -1 so a caller can `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(cli_options *o, bool usage, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    o->error = xmalloc((size_t)n + 1);
    vsnprintf(o->error, (size_t)n + 1, fmt, again);
    va_end(again);
    o->error_usage = usage;
    return -1;
}

static int parse_size(const char *s, uint64_t *out)
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

static int parse_ms(const char *s, uint64_t *ms)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0) return -1;
    *ms = (uint64_t)v;
    return 0;
}

/* 1 if name is a string option (now recorded), else 0. */
static int string_option(cli_options *o, const char *name, const char *v)
{
    for (size_t i = 0; i < sizeof string_options / sizeof *string_options; i++) {
        if (strcmp(name, string_options[i].name) != 0) continue;
        *(const char **)((char *)o + string_options[i].opt) = v;
        return 1;
    }
    return 0;
}

/* 1 if name is a number option (now recorded), 0 if it is not one, -1 if
 * the value is bad. */
static int number_option(cli_options *o, const char *name, const char *v)
{
    for (size_t i = 0; i < sizeof number_options / sizeof *number_options; i++) {
        if (strcmp(name, number_options[i].name) != 0) continue;
        cli_number *n = (cli_number *)((char *)o + number_options[i].opt);
        switch (number_options[i].kind) {
        case NUM_SIZE:
            if (parse_size(v, &n->value)) return fail(o, false, "%s %s: not a positive number", name, v);
            break;
        case NUM_SECONDS:
            if (parse_seconds(v, &n->value))
                return fail(o, false, "%s %s: not a positive number of seconds", name, v);
            break;
        case NUM_MS:
            if (parse_ms(v, &n->value)) return fail(o, false, "%s %s: milliseconds, or 0 for no limit", name, v);
            break;
        }
        n->set = true;
        return 1;
    }
    return 0;
}

/* For the options that take one of two words: 0 for a, 1 for b, -1 for
 * anything else. */
static int pick(const char *v, const char *a, const char *b)
{
    return !strcmp(v, a) ? 0 : !strcmp(v, b) ? 1 : -1;
}

/* --var KEY=VALUE. The value may be a secret: no message quotes it. */
static int var_option(cli_options *o, const char *v)
{
    const char *eq = strchr(v, '=');
    if (!eq) return fail(o, false, "--var needs KEY=VALUE (the argument has no '=')");
    if (!dotenv_valid_key(v, (size_t)(eq - v)))
        return fail(o, false, "--var %.*s=...: a name is letters, digits, '_', '.' and '-'", (int)(eq - v), v);
    o->vars = xrealloc(o->vars, (o->nvars + 1) * sizeof *o->vars);
    o->vars[o->nvars++] = v;
    return 0;
}

/* An option with a value (name v). */
static int value_option(cli_options *o, const char *name, const char *v)
{
    if (!strcmp(name, "--var")) return var_option(o, v);
    if (!strcmp(name, "--port") || !strcmp(name, "--internal-port")) {
        char *end;
        long p = strtol(v, &end, 10);
        if (!*v || *end || p < 0 || p > 65535) return fail(o, false, "%s %s: not a port number", name, v);
        *(!strcmp(name, "--port") ? &o->port : &o->internal_port) = (int)p;
        return 0;
    }
    if (string_option(o, name, v)) return 0;
    int rc = number_option(o, name, v);
    if (rc) return rc < 0 ? -1 : 0;
    if (!strcmp(name, "--log-level")) {
        o->log_level = log_parse_level(v);
        if (o->log_level < 0) return fail(o, false, "--log-level %s: use debug, info, warn or error", v);
        return 0;
    }
    if (!strcmp(name, "--log-format")) {
        o->log_json = pick(v, "text", "json");
        if (o->log_json < 0) return fail(o, false, "--log-format %s: use text or json", v);
        return 0;
    }
    if (!strcmp(name, "--cluster-storage")) {
        o->cluster_local = pick(v, "redis", "local");
        if (o->cluster_local < 0) return fail(o, false, "--cluster-storage %s: use redis or local", v);
        return 0;
    }
    if (!strcmp(name, "--storage-sync")) {
        o->storage_sync_full = pick(v, "normal", "full");
        if (o->storage_sync_full < 0) return fail(o, false, "--storage-sync %s: use normal or full", v);
        return 0;
    }
    return fail(o, true, "unknown option '%s'", name);
}

/* luaparty cluster status --cluster URL */
static int parse_cluster_command(cli_options *o, int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[2], "status") && !strcmp(argv[3], "--cluster")) {
        o->command = CLI_CLUSTER_STATUS;
        o->cluster_url = argv[4];
        return 0;
    }
    return fail(o, false, "usage: luaparty cluster status --cluster URL");
}

/* argv[1]: the command, or --help / -h / --version instead of one. Returns
 * 1 when the command takes options (dev, serve), 0 when parsing is done,
 * -1 on an error. */
static int parse_command(cli_options *o, int argc, char **argv)
{
    if (argc < 2) {
        o->error_usage = true; /* the usage alone says what is missing */
        return -1;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h")) {
        o->command = CLI_HELP;
        return 0;
    }
    if (!strcmp(c, "--version")) {
        o->command = CLI_VERSION;
        return 0;
    }
    if (!strcmp(c, "init")) {
        if (argc > 3) return fail(o, false, "usage: luaparty init [DIR]");
        o->command = CLI_INIT;
        o->dir = xstrdup(argc == 3 ? argv[2] : ".");
        return 0;
    }
    if (!strcmp(c, "cluster")) return parse_cluster_command(o, argc, argv);
    if (!strcmp(c, "test")) {
        o->command = CLI_TEST;
        return 1;
    }
    if (!strcmp(c, "storage")) {
        if (argc < 3 || (strcmp(argv[2], "export") && strcmp(argv[2], "import")))
            return fail(o, false, "usage: luaparty storage export|import --cluster URL [DIR] [--persist P]");
        o->command = !strcmp(argv[2], "export") ? CLI_STORAGE_EXPORT : CLI_STORAGE_IMPORT;
        return 1;
    }
    if (strcmp(c, "dev") && strcmp(c, "serve")) return fail(o, true, "unknown command '%s'", c);
    o->command = !strcmp(c, "dev") ? CLI_DEV : CLI_SERVE;
    o->watch = o->command == CLI_DEV;
    return 1;
}

/* `test` only: --filter, --seed and --verbose (1 if a was one of them, and
 * *i moved past its value), and the words that are not options: the first
 * may be the project directory, the others (and a first that is not a
 * directory) are test files. 0 if a is neither, -1 on an error. */
static int test_argument(cli_options *o, int argc, char **argv, int *i, const char **dir)
{
    const char *a = argv[*i];
    struct stat st;
    if (a[0] != '-') {
        if (!*dir && !o->nfiles && stat(a, &st) == 0 && S_ISDIR(st.st_mode)) {
            *dir = a;
        } else {
            o->files = xrealloc(o->files, (o->nfiles + 1) * sizeof *o->files);
            o->files[o->nfiles++] = a;
        }
        return 1;
    }
    if (!strcmp(a, "--verbose")) {
        o->verbose = true;
        return 1;
    }
    if (strcmp(a, "--filter") && strcmp(a, "--seed")) return 0;
    if (*i + 1 >= argc) return fail(o, false, "%s needs a value", a);
    const char *v = argv[++*i];
    if (!strcmp(a, "--filter")) {
        o->filter = v;
    } else if (parse_ms(v, &o->seed.value) != 0) {
        return fail(o, false, "--seed %s: not a number", v);
    } else {
        o->seed.set = true;
    }
    return 1;
}

/* The arguments after dev/serve/test, in order: the first problem, --help or
 * --version ends the parse. *dir gets the project directory if one is given. */
static int parse_options(cli_options *o, int argc, char **argv, const char **dir)
{
    bool storage = o->command == CLI_STORAGE_EXPORT || o->command == CLI_STORAGE_IMPORT;
    for (int i = storage ? 3 : 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "--version")) {
            o->command = !strcmp(a, "--help") ? CLI_HELP : CLI_VERSION;
            return 0;
        }
        if (!strcmp(a, "--watch")) {
            o->watch = true;
            continue;
        }
        int rc = o->command == CLI_TEST ? test_argument(o, argc, argv, &i, dir) : 0;
        if (rc < 0) return -1;
        if (rc) continue;
        if (a[0] != '-') {
            if (*dir) return fail(o, false, "more than one project directory given ('%s', '%s')", *dir, a);
            *dir = a;
            continue;
        }
        /* the next argument is the value, whatever it looks like ("--port -1") */
        if (i + 1 >= argc) return fail(o, false, "%s needs a value", a);
        if (value_option(o, a, argv[++i]) != 0) return -1;
    }
    return 0;
}

/* The project directory as an absolute path, so messages and storage paths
 * do not depend on the working directory. */
static int resolve_dir(cli_options *o, const char *dir)
{
    char resolved[PATH_MAX];
    if (!realpath(dir ? dir : ".", resolved))
        return fail(o, false, "project directory '%s' does not exist", dir ? dir : ".");
    o->dir = xstrdup(resolved);
    return 0;
}

int cli_parse(cli_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->port = o->internal_port = o->log_level = o->log_json = o->storage_sync_full = o->cluster_local = -1;
    int rc = parse_command(o, argc, argv);
    if (rc <= 0) return rc;
    const char *dir = NULL;
    if (parse_options(o, argc, argv, &dir) != 0) return -1;
    if (o->command == CLI_HELP || o->command == CLI_VERSION) return 0;
    if ((o->command == CLI_STORAGE_EXPORT || o->command == CLI_STORAGE_IMPORT) && !o->cluster_url)
        return fail(o, false, "luaparty storage %s needs --cluster URL",
                    o->command == CLI_STORAGE_EXPORT ? "export" : "import");
    return resolve_dir(o, dir);
}

void cli_apply(const cli_options *o, config *cfg)
{
    if (o->command != CLI_DEV && o->command != CLI_SERVE && o->command != CLI_TEST &&
        o->command != CLI_STORAGE_EXPORT && o->command != CLI_STORAGE_IMPORT)
        return; /* the commands that read no project */
    cfg->dev = o->command == CLI_DEV;
    cfg->watch = o->watch && o->command != CLI_TEST; /* test's --watch runs the tests again, no hot reload */
    free(cfg->dir);
    cfg->dir = xstrdup(o->dir);
    if (o->port >= 0) cfg->port = o->port;
    if (o->internal_port >= 0) cfg->cluster.internal_port = o->internal_port;
    for (size_t i = 0; i < sizeof string_options / sizeof *string_options; i++) {
        const char *v = *(const char *const *)((const char *)o + string_options[i].opt);
        if (!v) continue;
        char **field = (char **)((char *)cfg + string_options[i].cfg);
        free(*field);
        *field = xstrdup(v);
    }
    for (size_t i = 0; i < sizeof number_options / sizeof *number_options; i++) {
        const cli_number *n = (const cli_number *)((const char *)o + number_options[i].opt);
        if (!n->set) continue;
        char *field = (char *)cfg + number_options[i].cfg;
        if (number_options[i].kind == NUM_SIZE) *(size_t *)field = (size_t)n->value;
        else *(uint64_t *)field = n->value;
    }
    if (o->nvars) {
        for (size_t i = 0; i < cfg->ncli_vars; i++) free(cfg->cli_vars[i]);
        free(cfg->cli_vars);
        cfg->cli_vars = xcalloc(o->nvars, sizeof *cfg->cli_vars);
        for (size_t i = 0; i < o->nvars; i++) cfg->cli_vars[i] = xstrdup(o->vars[i]);
        cfg->ncli_vars = o->nvars;
    }
    if (o->storage_sync_full >= 0) cfg->storage_sync_full = o->storage_sync_full;
    if (o->cluster_local >= 0) cfg->cluster.local_storage = o->cluster_local;
    if (o->log_level >= 0) log_set_level((enum log_level)o->log_level);
    if (o->log_json >= 0) log_set_json(o->log_json);
}

void cli_print_error(const cli_options *o, FILE *f)
{
    if (o->error) fprintf(f, "luaparty: %s\n", o->error);
    if (o->error_usage) fprintf(f, "%s%s", o->error ? "\n" : "", cli_usage);
}

void cli_options_free(cli_options *o)
{
    free(o->files);
    o->files = NULL;
    free(o->dir);
    free(o->error);
    free(o->vars);
    o->dir = o->error = NULL;
    o->vars = NULL;
    o->nvars = 0;
}
