/* test_cli.c - the command line (src/cli.c): argv in, cli_options out,
 * the error texts luaparty prints, and cli_apply onto a config. */
#include "unit.h"

#include "cli.h"
#include "log.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* "dev --port 1" -> argv {"luaparty", "dev", "--port", "1"}; words split on
 * spaces. The strings live until the next call. */
static int split(const char *args, char ***argv_out)
{
    static char text[1024];
    static char *argv[64];
    snprintf(text, sizeof text, "%s", args);
    int argc = 0;
    argv[argc++] = "luaparty";
    for (char *w = strtok(text, " "); w; w = strtok(NULL, " ")) {
        ASSERT(argc < 63);
        argv[argc++] = w;
    }
    argv[argc] = NULL;
    *argv_out = argv;
    return argc;
}

static int parse(cli_options *o, const char *args)
{
    char **argv;
    int argc = split(args, &argv);
    return cli_parse(o, argc, argv);
}

/* What cli_print_error writes. */
static char *printed(const cli_options *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_NOT_NULL(f);
    cli_print_error(o, f);
    fclose(f);
    return text;
}

TEST(cli_bad_arguments_say_why)
{
    static const struct {
        const char *args, *error; /* error NULL: the usage alone */
        bool usage;
    } cases[] = {
        {"", NULL, true},
        {"bogus", "unknown command 'bogus'", true},
        {"-x", "unknown command '-x'", true},
        {"init a b", "usage: luaparty init [DIR]", false},
        {"dev --bogus", "--bogus needs a value", false},
        {"dev --port", "--port needs a value", false},
        {"serve . --persist", "--persist needs a value", false},
        {"dev --bogus x", "unknown option '--bogus'", true},
        {"dev -h", "-h needs a value", false},
        {"dev --port 70000", "--port 70000: not a port number", false},
        {"dev --port -1", "--port -1: not a port number", false},
        {"dev --port 12ab", "--port 12ab: not a port number", false},
        {"dev --max-message 0", "--max-message 0: not a positive number", false},
        {"dev --max-message -5", "--max-message -5: not a positive number", false},
        {"dev --room-memory 1.5", "--room-memory 1.5: not a positive number", false},
        {"dev --workers two", "--workers two: not a positive number", false},
        {"dev --max-output 8k", "--max-output 8k: not a positive number", false},
        {"dev --idle-timeout 0", "--idle-timeout 0: not a positive number of seconds", false},
        {"dev --ping-interval -1", "--ping-interval -1: not a positive number of seconds", false},
        {"dev --header-timeout soon", "--header-timeout soon: not a positive number of seconds", false},
        {"dev --keepalive-timeout 1s", "--keepalive-timeout 1s: not a positive number of seconds", false},
        {"dev --cpu-limit -1", "--cpu-limit -1: milliseconds, or 0 for no limit", false},
        {"dev --cpu-limit 1.5", "--cpu-limit 1.5: milliseconds, or 0 for no limit", false},
        {"dev --log-level loud", "--log-level loud: use debug, info, warn or error", false},
        {"dev --log-format xml", "--log-format xml: use text or json", false},
        {"dev --storage-sync some", "--storage-sync some: use normal or full", false},
        {"dev a b", "more than one project directory given ('a', 'b')", false},
        {"dev /nonexistent-lp-unit", "project directory '/nonexistent-lp-unit' does not exist", false},
        /* the first problem wins, even over a later --help */
        {"dev --bogus x --help", "unknown option '--bogus'", true},
        {"dev --port 1 --port x --port 99999", "--port x: not a port number", false},
        /* --var: the value may be a secret and is never quoted back */
        {"dev --var s3cr3t", "--var needs KEY=VALUE (the argument has no '=')", false},
        {"dev --var =s3cr3t", "--var =...: a name is letters, digits, '_', '.' and '-'", false},
        {"dev --var b@d=s3cr3t", "--var b@d=...: a name is letters, digits, '_', '.' and '-'", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_options o;
        ASSERT_MSG(parse(&o, cases[i].args) == -1, "\"%s\" was accepted", cases[i].args);
        if (cases[i].error) ASSERT_STR_EQ(o.error, cases[i].error);
        else ASSERT_NULL(o.error);
        ASSERT_MSG(o.error_usage == cases[i].usage, "\"%s\": usage %d", cases[i].args, o.error_usage);
        cli_options_free(&o);
    }
}

TEST(cli_print_error_formats)
{
    static const struct {
        const char *args, *head; /* head: what comes before the usage, if any */
        bool usage;
    } cases[] = {
        {"", "", true},
        {"bogus", "luaparty: unknown command 'bogus'\n\n", true},
        {"dev --bogus x", "luaparty: unknown option '--bogus'\n\n", true},
        {"dev --port", "luaparty: --port needs a value\n", false},
        {"dev --port 70000", "luaparty: --port 70000: not a port number\n", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_options o;
        ASSERT_EQ(parse(&o, cases[i].args), -1);
        char *text = printed(&o);
        char want[8192];
        snprintf(want, sizeof want, "%s%s", cases[i].head, cases[i].usage ? cli_usage : "");
        ASSERT_STR_EQ(text, want);
        free(text);
        cli_options_free(&o);
    }
}

TEST(cli_commands_without_a_project)
{
    static const struct {
        const char *args;
        cli_command command;
        const char *dir; /* NULL: none */
    } cases[] = {
        {"--help", CLI_HELP, NULL},
        {"-h", CLI_HELP, NULL},
        {"--version", CLI_VERSION, NULL},
        {"--help extra words", CLI_HELP, NULL},
        {"dev --help", CLI_HELP, NULL},
        {"serve --version", CLI_VERSION, NULL},
        {"dev --help --bogus x", CLI_HELP, NULL},       /* --help ends the parse: later words are not read */
        {"dev /nonexistent-lp-unit --version", CLI_VERSION, NULL}, /* nor is the directory checked */
        {"init", CLI_INIT, "."},
        {"init some/where", CLI_INIT, "some/where"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_options o;
        ASSERT_MSG(parse(&o, cases[i].args) == 0, "\"%s\": %s", cases[i].args, o.error ? o.error : "?");
        ASSERT_MSG(o.command == cases[i].command, "\"%s\": command %d", cases[i].args, (int)o.command);
        if (cases[i].dir) ASSERT_STR_EQ(o.dir, cases[i].dir);
        else ASSERT_NULL(o.dir);
        ASSERT_NULL(o.error);
        cli_options_free(&o);
    }
}

TEST(cli_dev_and_serve_defaults)
{
    char cwd[PATH_MAX];
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    static const struct {
        const char *args;
        cli_command command;
        bool watch;
    } cases[] = {
        {"dev", CLI_DEV, true},
        {"serve", CLI_SERVE, false},
        {"serve --watch", CLI_SERVE, true},
        {"dev --watch --watch", CLI_DEV, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_options o;
        ASSERT_EQ(parse(&o, cases[i].args), 0);
        ASSERT_EQ(o.command, cases[i].command);
        ASSERT_EQ(o.watch, cases[i].watch);
        ASSERT_STR_EQ(o.dir, cwd); /* no directory: the current one, resolved */
        ASSERT_EQ(o.port, -1);
        ASSERT_EQ(o.log_level, -1);
        ASSERT_EQ(o.log_json, -1);
        ASSERT_EQ(o.storage_sync_full, -1);
        ASSERT_NULL(o.host);
        ASSERT_NULL(o.persist_dir);
        ASSERT_NULL(o.tls_cert);
        ASSERT_NULL(o.metrics_addr);
        ASSERT(!o.max_message.set && !o.workers.set && !o.idle_timeout_ms.set && !o.cpu_limit_ms.set);
        cli_options_free(&o);
    }
}

TEST(cli_every_option)
{
    const char *dir = unit_tmpdir("cli");
    char args[2048], real[PATH_MAX];
    ASSERT_NOT_NULL(realpath(dir, real));
    snprintf(args, sizeof args,
             "serve --port 0 %s/. --host 0.0.0.0 --persist /p --tls-cert c.pem --tls-key k.pem --tls-ca ca.pem "
             "--metrics 127.0.0.1:9464 --log-level debug --log-format json --storage-sync full --cpu-limit 0 "
             "--max-message 5 --room-memory 6 --max-value 7 --max-connections 8 --workers 2 "
             "--max-room-connections 9 --max-header 10 --max-headers 13 --max-body 11 --max-output 12 "
             "--idle-timeout 1.5 "
             "--ping-interval 2 --header-timeout 0.25 --keepalive-timeout 3",
             dir);
    cli_options o;
    ASSERT_EQ(parse(&o, args), 0);
    ASSERT_EQ(o.command, CLI_SERVE);
    ASSERT(!o.watch);
    ASSERT_STR_EQ(o.dir, real); /* "dir/." resolved */
    ASSERT_EQ(o.port, 0);       /* 0: any free port */
    ASSERT_STR_EQ(o.host, "0.0.0.0");
    ASSERT_STR_EQ(o.persist_dir, "/p");
    ASSERT_STR_EQ(o.tls_cert, "c.pem");
    ASSERT_STR_EQ(o.tls_key, "k.pem");
    ASSERT_STR_EQ(o.tls_ca, "ca.pem");
    ASSERT_STR_EQ(o.metrics_addr, "127.0.0.1:9464");
    ASSERT_EQ(o.log_level, LOG_DEBUG);
    ASSERT_EQ(o.log_json, 1);
    ASSERT_EQ(o.storage_sync_full, 1);
    const struct {
        const char *name;
        const cli_number *n;
        uint64_t want;
    } numbers[] = {
        {"cpu-limit", &o.cpu_limit_ms, 0},
        {"max-message", &o.max_message, 5},
        {"room-memory", &o.room_memory, 6},
        {"max-value", &o.max_value, 7},
        {"max-connections", &o.max_connections, 8},
        {"workers", &o.workers, 2},
        {"max-room-connections", &o.max_room_connections, 9},
        {"max-header", &o.max_header, 10},
        {"max-headers", &o.max_headers, 13},
        {"max-body", &o.max_body, 11},
        {"max-output", &o.max_output, 12},
        {"idle-timeout", &o.idle_timeout_ms, 1500},
        {"ping-interval", &o.ping_interval_ms, 2000},
        {"header-timeout", &o.header_timeout_ms, 250},
        {"keepalive-timeout", &o.keepalive_timeout_ms, 3000},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        ASSERT_MSG(numbers[i].n->set, "--%s not set", numbers[i].name);
        ASSERT_MSG(numbers[i].n->value == numbers[i].want, "--%s: %llu, not %llu", numbers[i].name,
                   (unsigned long long)numbers[i].n->value, (unsigned long long)numbers[i].want);
    }
    cli_options_free(&o);
    unit_remove_tree(dir);
}

TEST(cli_words_and_repeats)
{
    static const struct {
        const char *args;
        int port, log_level, log_json, sync;
    } cases[] = {
        {"dev --port 1 --port 2", 2, -1, -1, -1}, /* the last one wins */
        {"dev --log-level warn --log-level error", -1, LOG_ERROR, -1, -1},
        {"dev --log-level off", -1, LOG_OFF, -1, -1},
        {"dev --log-format text", -1, -1, 0, -1},
        {"dev --storage-sync normal", -1, -1, -1, 0},
        {"dev --port 65535 --storage-sync full --storage-sync normal", 65535, -1, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_options o;
        ASSERT_MSG(parse(&o, cases[i].args) == 0, "\"%s\": %s", cases[i].args, o.error ? o.error : "?");
        ASSERT_EQ(o.port, cases[i].port);
        ASSERT_EQ(o.log_level, cases[i].log_level);
        ASSERT_EQ(o.log_json, cases[i].log_json);
        ASSERT_EQ(o.storage_sync_full, cases[i].sync);
        cli_options_free(&o);
    }
}

/* The usage text names every option the parser takes. */
TEST(cli_usage_lists_every_option)
{
    static const char *names[] = {
        "--port", "--host", "--persist", "--log-level", "--max-message", "--room-memory", "--max-value",
        "--idle-timeout", "--storage-sync", "--cpu-limit", "--workers", "--max-connections",
        "--max-room-connections", "--ping-interval", "--max-header", "--max-headers", "--max-body", "--max-output",
        "--header-timeout", "--keepalive-timeout", "--metrics", "--tls-ca", "--tls-cert", "--tls-key",
        "--log-format", "--var", "--watch", "--help", "--version",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        ASSERT_CONTAINS(cli_usage, names[i]);
        if (!strcmp(names[i], "--watch") || !strcmp(names[i], "--help") || !strcmp(names[i], "--version")) continue;
        /* and the parser knows it: without a value it asks for one */
        char args[64], want[96];
        snprintf(args, sizeof args, "dev %s", names[i]);
        snprintf(want, sizeof want, "%s needs a value", names[i]);
        cli_options o;
        ASSERT_EQ(parse(&o, args), -1);
        ASSERT_STR_EQ(o.error, want);
        cli_options_free(&o);
    }
}

/* main applies the options before and after partykit.json: given options
 * win, the others keep what the file set. */
TEST(cli_apply_twice_options_win)
{
    const char *dir = unit_tmpdir("cli");
    char args[512], real[PATH_MAX];
    ASSERT_NOT_NULL(realpath(dir, real));
    snprintf(args, sizeof args,
             "dev %s --max-message 5 --idle-timeout 2 --host ::1 --cpu-limit 0 --storage-sync full "
             "--log-level warn --log-format json",
             dir);
    cli_options o;
    ASSERT_EQ(parse(&o, args), 0);
    config cfg;
    config_defaults(&cfg);
    cli_apply(&o, &cfg);
    ASSERT(cfg.dev && cfg.watch);
    ASSERT_STR_EQ(cfg.dir, real);
    ASSERT_STR_EQ(cfg.host, "::1");
    ASSERT_EQ(cfg.port, -1); /* not given: partykit.json or 1999 decides */
    ASSERT_EQ(cfg.max_message, 5);
    ASSERT_EQ(cfg.idle_timeout_ms, 2000);
    ASSERT_EQ(cfg.cpu_limit_ms, 0);
    ASSERT(cfg.storage_sync_full);
    ASSERT_NULL(cfg.persist_dir);
    ASSERT_EQ(log_get_level(), LOG_WARN);
    /* what partykit.json's "luaparty" and "port" would set */
    cfg.max_message = 999;
    cfg.max_body = 777;
    cfg.cpu_limit_ms = 50;
    cfg.port = 4321;
    cli_apply(&o, &cfg);
    ASSERT_EQ(cfg.max_message, 5);
    ASSERT_EQ(cfg.cpu_limit_ms, 0);
    ASSERT_EQ(cfg.max_body, 777);
    ASSERT_EQ(cfg.port, 4321);
    ASSERT_STR_EQ(cfg.dir, real);
    config_free(&cfg);
    cli_options_free(&o);
    log_set_json(false);
    log_set_level(LOG_INFO);
    unit_remove_tree(dir);
}

TEST(cli_apply_ignores_commands_that_do_not_serve)
{
    cli_options o;
    ASSERT_EQ(parse(&o, "init somewhere"), 0);
    config cfg;
    config_defaults(&cfg);
    cli_apply(&o, &cfg);
    ASSERT_NULL(cfg.dir);
    ASSERT(!cfg.dev);
    ASSERT_STR_EQ(cfg.host, "127.0.0.1");
    config_free(&cfg);
    cli_options_free(&o);
}

/* Cluster mode's options land in cfg->cluster; `cluster status` takes the URL. */
TEST(cli_cluster_options)
{
    cli_options o;
    ASSERT_EQ(parse(&o, "serve / --cluster redis://127.0.0.1:6390 --node-id a --internal-host 10.0.0.1 "
                        "--internal-port 7001 --cluster-secret s3 --lease-ttl 2000"),
              0);
    config cfg;
    config_defaults(&cfg);
    cli_apply(&o, &cfg);
    ASSERT_STR_EQ(cfg.cluster.url, "redis://127.0.0.1:6390");
    ASSERT_STR_EQ(cfg.cluster.node_id, "a");
    ASSERT_STR_EQ(cfg.cluster.internal_host, "10.0.0.1");
    ASSERT_EQ(cfg.cluster.internal_port, 7001);
    ASSERT_STR_EQ(cfg.cluster.secret, "s3");
    ASSERT_EQ(cfg.cluster.lease_ttl_ms, 2000);
    config_free(&cfg);
    cli_options_free(&o);

    ASSERT_EQ(parse(&o, "serve / --internal-port 70000"), -1);
    ASSERT_STR_EQ(o.error, "--internal-port 70000: not a port number");
    cli_options_free(&o);

    ASSERT_EQ(parse(&o, "cluster status --cluster unix:/tmp/r.sock"), 0);
    ASSERT_EQ(o.command, CLI_CLUSTER_STATUS);
    ASSERT_STR_EQ(o.cluster_url, "unix:/tmp/r.sock");
    cli_options_free(&o);
    ASSERT_EQ(parse(&o, "cluster nodes"), -1);
    ASSERT_STR_EQ(o.error, "usage: luaparty cluster status --cluster URL");
    cli_options_free(&o);
}

/* --var KEY=VALUE, repeatable, in order; the value may hold '='. Applied
 * twice (as main does) the list is replaced, not doubled. */
TEST(cli_var_repeats_in_order)
{
    const char *dir = unit_tmpdir("cli");
    char args[512];
    snprintf(args, sizeof args, "serve %s --var A=1 --var B=x=y --var A=2 --var EMPTY=", dir);
    cli_options o;
    ASSERT_EQ(parse(&o, args), 0);
    ASSERT_EQ(o.nvars, 4);
    config cfg;
    config_defaults(&cfg);
    cli_apply(&o, &cfg);
    cli_apply(&o, &cfg);
    ASSERT_EQ(cfg.ncli_vars, 4);
    ASSERT_STR_EQ(cfg.cli_vars[0], "A=1");
    ASSERT_STR_EQ(cfg.cli_vars[1], "B=x=y");
    ASSERT_STR_EQ(cfg.cli_vars[2], "A=2");
    ASSERT_STR_EQ(cfg.cli_vars[3], "EMPTY=");
    config_free(&cfg);
    cli_options_free(&o);
}

/* luaparty test [DIR] [FILE...]: the first word is the project if it is a
 * directory; the others (and a first that is not) are test files. */
TEST(cli_test_command)
{
    const char *dir = unit_tmpdir("cli");
    char args[1024], real[PATH_MAX], cwd[PATH_MAX];
    ASSERT_NOT_NULL(realpath(dir, real));
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    snprintf(args, sizeof args, "test %s a_test.lua --filter alarm b_test.lua --seed 7 --watch --verbose "
                                "--idle-timeout 2", dir);
    cli_options o;
    ASSERT_MSG(parse(&o, args) == 0, "%s", o.error ? o.error : "?");
    ASSERT_EQ(o.command, CLI_TEST);
    ASSERT_STR_EQ(o.dir, real);
    ASSERT_EQ(o.nfiles, 2);
    ASSERT_STR_EQ(o.files[0], "a_test.lua");
    ASSERT_STR_EQ(o.files[1], "b_test.lua");
    ASSERT_STR_EQ(o.filter, "alarm");
    ASSERT(o.seed.set && o.seed.value == 7);
    ASSERT(o.watch && o.verbose);
    config cfg;
    config_defaults(&cfg);
    cli_apply(&o, &cfg);
    ASSERT_EQ(cfg.idle_timeout_ms, 2000); /* the limits apply to the test's server too */
    ASSERT(!cfg.dev && !cfg.watch);       /* its --watch runs the tests again: no hot reload */
    config_free(&cfg);
    cli_options_free(&o);

    ASSERT_EQ(parse(&o, "test only_test.lua"), 0); /* a file first: the project is the current directory */
    ASSERT_STR_EQ(o.dir, cwd);
    ASSERT_EQ(o.nfiles, 1);
    ASSERT(!o.seed.set && !o.filter && !o.watch);
    cli_options_free(&o);

    static const struct {
        const char *args, *error;
    } bad[] = {
        {"test --filter", "--filter needs a value"},
        {"test --seed x", "--seed x: not a number"},
        {"dev --filter x", "unknown option '--filter'"}, /* test's options are test's only */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_EQ(parse(&o, bad[i].args), -1);
        ASSERT_STR_EQ(o.error, bad[i].error);
        cli_options_free(&o);
    }
    ASSERT_CONTAINS(cli_usage, "test  [DIR]");
    unit_remove_tree(dir);
}
