/* test_config.c - config_load (src/config.c) on partykit.json files written
 * to a temporary project directory: what a valid project fills in, and the
 * exact one-line error for each kind of mistake. */
#include "unit.h"

#include "config.h"
#include "cron_expr.h"
#include "log.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#define OK_LUA "return { onRequest = function(self, req) return 'ok' end }\n"

static const char *project;

/* A fresh project: partykit.json holding json, and parties/main.lua. */
static void write_project(const char *json)
{
    log_set_level(LOG_OFF); /* keys luaparty ignores are warned about; keep one line per test */
    project = unit_tmpdir("config");
    unit_write_file(project, "partykit.json", json, strlen(json));
    unit_write_file(project, "parties/main.lua", OK_LUA, sizeof OK_LUA - 1);
}

/* config_load as main calls it: on defaults, with the directory set. */
static int load(config *cfg, char **err)
{
    config_defaults(cfg);
    cfg->dir = xstrdup(project);
    *err = NULL;
    return config_load(cfg, err);
}

/* want with every "@DIR@" replaced by the project directory. */
static const char *expand(const char *want)
{
    static char out[2048];
    size_t o = 0;
    for (const char *p = want; *p && o < sizeof out - PATH_MAX;) {
        if (!strncmp(p, "@DIR@", 5)) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", project);
            p += 5;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return out;
}

TEST(config_load_valid_project)
{
    write_project("{\n"
                  "  \"$schema\": \"https://www.partykit.io/schema.json\",\n"
                  "  \"name\": \"demo\",\n"
                  "  \"main\": \"parties/main.lua\",\n"
                  "  \"parties\": { \"chat-room\": \"parties/chat.lua\" },\n"
                  "  \"vars\": { \"GREETING\": \"hi\" },\n"
                  "  \"port\": 4000,\n"
                  "  \"persist\": \"data\",\n"
                  "  \"serve\": { \"path\": \"public\", \"singlePageApp\": true },\n"
                  "  \"crons\": { \"hourly\": \"0 * * * *\" },\n"
                  "  \"luaparty\": { \"maxMessage\": 2048, \"idleTimeout\": 1.5, \"cpuLimit\": 0,\n"
                  "                \"workers\": 3, \"cors\": true, \"outbound\": [\"example.com\"] }\n"
                  "}\n");
    static const char chat[] = "return {}\n";
    unit_write_file(project, "parties/chat.lua", chat, sizeof chat - 1);
    unit_write_file(project, "public/index.html", "<p>", 3);
    config cfg;
    char *err;
    ASSERT_MSG(load(&cfg, &err) == 0, "config_load: %s", err);
    ASSERT_STR_EQ(cfg.name, "demo");
    ASSERT_EQ(cfg.nparties, 2);
    const party *m = cfg.parties[0], *c = cfg.parties[1];
    ASSERT_STR_EQ(m->name, "main");
    ASSERT_STR_EQ(m->script, "parties/main.lua");
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/parties/main.lua", project);
    ASSERT_STR_EQ(m->path, path);
    ASSERT_STR_EQ(m->chunkname, "@parties/main.lua");
    ASSERT_BYTES_EQ(m->source, m->source_len, OK_LUA, sizeof OK_LUA - 1);
    ASSERT_NOT_NULL(m->bytecode); /* compiled at load */
    ASSERT(m->bytecode_len > 0);
    ASSERT_STR_EQ(c->name, "chat-room");
    ASSERT_STR_EQ(c->script, "parties/chat.lua");
    ASSERT(config_party(&cfg, "chat-room", 9) == c);
    ASSERT_STR_EQ(cfg.vars_json, "{\"GREETING\":\"hi\"}");
    ASSERT_EQ(cfg.port, 4000);
    snprintf(path, sizeof path, "%s/data", project);
    ASSERT_STR_EQ(cfg.persist_dir, path);
    char real[PATH_MAX];
    snprintf(path, sizeof path, "%s/public", project);
    ASSERT_NOT_NULL(realpath(path, real));
    ASSERT_STR_EQ(cfg.serve_dir, real);
    ASSERT(cfg.serve_spa);
    ASSERT_EQ(cfg.ncrons, 1);
    ASSERT_STR_EQ(cfg.crons[0].name, "hourly");
    ASSERT_STR_EQ(cfg.crons[0].expr, "0 * * * *");
    ASSERT_EQ(cfg.crons[0].minute, 1); /* minute 0 only */
    ASSERT_EQ(cfg.max_message, 2048);
    ASSERT_EQ(cfg.idle_timeout_ms, 1500); /* seconds in the file */
    ASSERT_EQ(cfg.cpu_limit_ms, 0);       /* 0 is allowed here: no limit */
    ASSERT_EQ(cfg.workers, 3);
    ASSERT_STR_EQ(cfg.cors_origin, "*");
    ASSERT_EQ(cfg.noutbound, 1);
    ASSERT_STR_EQ(cfg.outbound[0], "example.com");
    ASSERT_EQ(cfg.max_body, 8 * 1024 * 1024); /* not in the file: the default */
    config_free(&cfg);
    unit_remove_tree(project);
}

TEST(config_load_minimal_project_defaults)
{
    write_project("{\"main\": \"parties/main.lua\", \"luaparty\": {\"cors\": \"https://a.example\"}}");
    config cfg;
    char *err;
    ASSERT_MSG(load(&cfg, &err) == 0, "config_load: %s", err);
    ASSERT_STR_EQ(cfg.name, "luaparty");
    ASSERT_EQ(cfg.nparties, 1);
    ASSERT_STR_EQ(cfg.vars_json, "{}");
    ASSERT_EQ(cfg.port, 1999);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.luaparty", project);
    ASSERT_STR_EQ(cfg.persist_dir, path);
    ASSERT_NULL(cfg.serve_dir);
    ASSERT_EQ(cfg.ncrons, 0);
    ASSERT_NULL(cfg.outbound); /* any host */
    ASSERT_STR_EQ(cfg.cors_origin, "https://a.example");
    config_free(&cfg);
    unit_remove_tree(project);
}

/* Given on the command line, port and persist win over the file. */
TEST(config_load_command_line_port_and_persist_win)
{
    write_project("{\"main\": \"parties/main.lua\", \"port\": 4000, \"persist\": \"data\"}");
    config cfg;
    config_defaults(&cfg);
    cfg.dir = xstrdup(project);
    cfg.port = 0;
    cfg.persist_dir = xstrdup("/elsewhere");
    char *err = NULL;
    ASSERT_MSG(config_load(&cfg, &err) == 0, "config_load: %s", err);
    ASSERT_EQ(cfg.port, 0);
    ASSERT_STR_EQ(cfg.persist_dir, "/elsewhere");
    config_free(&cfg);
    unit_remove_tree(project);
}

TEST(config_load_errors_name_the_problem)
{
    static const struct {
        const char *json, *want; /* "@DIR@" in want: the project directory */
    } cases[] = {
        /* not JSON, or not an object */
        {"{\"name\": \"x\", \"main\": \"parties/main.lua\",",
         "partykit.json:1:42: not valid JSON: expected object key string but found the end of the file"},
        {"{\"main\": parties}", "partykit.json:1:10: not valid JSON: expected value but found invalid token"},
        {"", "partykit.json:1:1: not valid JSON: expected value but found the end of the file"},
        /* line and column as an editor counts them: characters, not bytes */
        {"{\n  \"name\": \"caf\xc3\xa9\",\n  \"main\": \"parties/main.lua\"\n  \"vars\": {}\n}",
         "partykit.json:4:3: not valid JSON: expected comma or object end but found a string"},
        {"{\"name\": \"\xc3\xa9\xc3\xa9\" ]",
         "partykit.json:1:15: not valid JSON: expected comma or object end but found ']'"},
        {"\"just a string\"", "partykit.json must hold a JSON object, not a string"},
        {"42", "partykit.json must hold a JSON object, not a number"},
        {"[1,2,3]", "partykit.json must hold a JSON object, not an array"},
        {" \n[]", "partykit.json must hold a JSON object, not an array"},
        {"null", "partykit.json must hold a JSON object, not null"},
        /* keys */
        {"{\"main\": \"parties/main.lua\", \"partiez\": {}}",
         "partykit.json: unknown key \"partiez\" (did you mean \"parties\"?)"},
        {"{\"main\": \"parties/main.lua\", \"zzzzzzzzzzzz\": 1}", "partykit.json: unknown key \"zzzzzzzzzzzz\""},
        {"{\"name\": \"x\"}", "partykit.json: \"main\" is missing: it names the script of the main party"},
        /* party files */
        {"{\"main\": \"parties/nothere.lua\"}",
         "partykit.json: party \"main\": cannot read @DIR@/parties/nothere.lua: No such file or directory"},
        {"{\"main\": \"parties/main.lua\", \"parties\": {\"other\": \"parties/missing-other.lua\"}}",
         "partykit.json: party \"other\": cannot read @DIR@/parties/missing-other.lua: No such file or directory"},
        /* a folder opens but does not read: read_file says EIO for any read error */
        {"{\"main\": \"parties\"}", "partykit.json: party \"main\": cannot read @DIR@/parties: Input/output error"},
        {"{\"main\": \"partykit.json\"}",
         "partykit.json: party \"main\": partykit.json is not valid Lua: partykit.json:1: unexpected symbol near '{'"},
        /* types */
        {"{\"name\": 5, \"main\": \"parties/main.lua\"}", "partykit.json: \"name\" must be a string"},
        {"{\"main\": true}", "partykit.json: \"main\" must be a string"},
        {"{\"main\": \"parties/main.lua\", \"parties\": \"x\"}",
         "partykit.json: \"parties\" must be an object of name: script"},
        {"{\"main\": \"parties/main.lua\", \"parties\": {\"a\": 5}}",
         "partykit.json: parties: \"a\" must name a script file"},
        {"{\"main\": \"parties/main.lua\", \"parties\": {\"bad name!\": \"parties/main.lua\"}}",
         "partykit.json: parties: \"bad name!\" is not a valid party name (use letters, digits, '_' and '-')"},
        {"{\"main\": \"parties/main.lua\", \"parties\": {\"main\": \"parties/main.lua\"}}",
         "partykit.json: parties: \"main\" is the party of the \"main\" key; pick another name"},
        {"{\"main\": \"parties/main.lua\", \"vars\": [1]}", NULL}, /* an array is a table: accepted */
        {"{\"main\": \"parties/main.lua\", \"vars\": \"x\"}", "partykit.json: \"vars\" must be an object"},
        {"{\"main\": \"parties/main.lua\", \"port\": \"eighty\"}",
         "partykit.json: \"port\" must be a number from 0 to 65535"},
        {"{\"main\": \"parties/main.lua\", \"port\": 65536}",
         "partykit.json: \"port\" must be a number from 0 to 65535"},
        {"{\"main\": \"parties/main.lua\", \"serve\": 5}",
         "partykit.json: \"serve\" must be a folder name or { \"path\": ... }"},
        {"{\"main\": \"parties/main.lua\", \"serve\": {\"singlePageApp\": true}}",
         "partykit.json: \"serve\": the object needs a \"path\""},
        {"{\"main\": \"parties/main.lua\", \"serve\": \"public\"}",
         "partykit.json: \"serve\": public: No such file or directory"},
        {"{\"main\": \"parties/main.lua\", \"serve\": {\"path\": \"parties\", \"bulid\": \"x\"}}",
         "partykit.json: unknown key serve.bulid (did you mean \"build\"?)"},
        {"{\"main\": \"parties/main.lua\", \"serve\": {\"path\": \"parties\", \"colour\": 1}}",
         "partykit.json: unknown key serve.colour"},
        /* a PartyKit party in TypeScript or JavaScript: one line pointing at the README */
        {"{\"main\": \"src/server.ts\"}",
         "partykit.json: party \"main\": src/server.ts is TypeScript, and luaparty runs parties written in Lua: "
         "README \"Porting from PartyKit\" shows a TypeScript party next to its Lua version"},
        {"{\"main\": \"parties/main.lua\", \"parties\": {\"chat\": \"src/chat.mjs\"}}",
         "partykit.json: party \"chat\": src/chat.mjs is JavaScript, and luaparty runs parties written in Lua: "
         "README \"Porting from PartyKit\" shows a TypeScript party next to its Lua version"},
        {"{\"main\": \"parties/main.lua\", \"crons\": 5}",
         "partykit.json: \"crons\" must be an object of name: schedule"},
        /* (a number is converted by lua_tostring before the type check, so
         * {"a": 5} is reported as the schedule "5" instead) */
        {"{\"main\": \"parties/main.lua\", \"crons\": {\"a\": true}}", "partykit.json: crons: \"a\" must be a string"},
        {"{\"main\": \"parties/main.lua\", \"crons\": {\"a\": \"* *\"}}",
         "partykit.json: crons: \"a\": \"* *\": needs five fields: minute hour day-of-month month day-of-week"},
        {"{\"main\": \"parties/main.lua\", \"crons\": {\"a\": \"61 * * * *\"}}",
         "partykit.json: crons: \"a\": \"61 * * * *\": bad minute field"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": 5}", "partykit.json: \"luaparty\" must be an object"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"maxMesage\": 1}}",
         "partykit.json: unknown key luaparty.maxMesage (did you mean \"maxMessage\"?)"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"colour\": 1}}",
         "partykit.json: unknown key luaparty.colour"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"maxMessage\": \"big\"}}",
         "partykit.json: luaparty.maxMessage must be a positive number"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"maxBody\": 0}}",
         "partykit.json: luaparty.maxBody must be a positive number"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"cpuLimit\": -1}}",
         "partykit.json: luaparty.cpuLimit must be a positive number"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"cors\": 5}}",
         "partykit.json: luaparty.cors must be true, false or an origin"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"outbound\": \"a.example\"}}",
         "partykit.json: luaparty.outbound must be an array of host names"},
        {"{\"main\": \"parties/main.lua\", \"luaparty\": {\"outbound\": [\"a.example\", 5]}}",
         "partykit.json: luaparty.outbound[2] must be a host name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_project(cases[i].json);
        config cfg;
        char *err;
        int rv = load(&cfg, &err);
        if (!cases[i].want) {
            ASSERT_MSG(rv == 0, "%s: %s", cases[i].json, err);
        } else {
            ASSERT_MSG(rv == -1, "%s was accepted", cases[i].json);
            ASSERT_MSG(err && !strcmp(err, expand(cases[i].want)), "%s:\n  got  %s\n  want %s", cases[i].json,
                       err ? err : "(null)", expand(cases[i].want));
        }
        free(err);
        /* whatever was filled in before the error is freed with the config */
        config_free(&cfg);
        unit_remove_tree(project);
    }
}

TEST(config_load_missing_partykit_json)
{
    project = unit_tmpdir("config");
    config cfg;
    char *err;
    ASSERT_EQ(load(&cfg, &err), -1);
    ASSERT_STR_EQ(err, expand("@DIR@/partykit.json: cannot read: No such file or directory"));
    free(err);
    config_free(&cfg);
    unit_remove_tree(project);
}

/* A party script with a syntax error is refused with file:line. */
TEST(config_load_bad_lua_names_the_line)
{
    write_project("{\"main\": \"parties/main.lua\"}");
    static const char bad[] = "return {\n  onRequest = function(self\n";
    unit_write_file(project, "parties/main.lua", bad, sizeof bad - 1);
    config cfg;
    char *err;
    ASSERT_EQ(load(&cfg, &err), -1);
    ASSERT_STR_EQ(err, "partykit.json: party \"main\": parties/main.lua is not valid Lua: "
                       "parties/main.lua:3: ')' expected near '<eof>'");
    free(err);
    config_free(&cfg);
    unit_remove_tree(project);
}

TEST(config_free_project_keeps_command_line_fields)
{
    write_project("{\"main\": \"parties/main.lua\", \"crons\": {\"c\": \"* * * * *\"}, \"serve\": \"parties\"}");
    config cfg;
    char *err;
    ASSERT_MSG(load(&cfg, &err) == 0, "config_load: %s", err);
    config_free_project(&cfg);
    ASSERT_NULL(cfg.parties);
    ASSERT_EQ(cfg.nparties, 0);
    ASSERT_NULL(cfg.name);
    ASSERT_NULL(cfg.crons);
    ASSERT_NULL(cfg.serve_dir);
    ASSERT_STR_EQ(cfg.dir, project);
    ASSERT_STR_EQ(cfg.host, "127.0.0.1");
    config_free(&cfg);
    unit_remove_tree(project);
}

/* room.env: partykit.json "vars", then .env, then .env.local, then --var,
 * each overriding the ones before; a JSON value keeps its type. */
TEST(config_env_precedence)
{
    write_project("{\"main\": \"parties/main.lua\", \"vars\": {\"A\": \"json\", \"B\": \"json\", \"C\": \"json\","
                  " \"D\": \"json\", \"N\": 5}}");
    unit_write_file(project, ".env", "B=env\nC=env\nD=env\nE=env\n", 24);
    unit_write_file(project, ".env.local", "C=local\nD=local\n", 16);
    config cfg;
    char *err;
    config_defaults(&cfg);
    cfg.dir = xstrdup(project);
    cfg.cli_vars = xcalloc(2, sizeof *cfg.cli_vars);
    cfg.cli_vars[0] = xstrdup("D=cli");
    cfg.cli_vars[1] = xstrdup("F=a=b");
    cfg.ncli_vars = 2;
    err = NULL;
    ASSERT_MSG(config_load(&cfg, &err) == 0, "config_load: %s", err);
    static const char *want[] = {"\"A\":\"json\"", "\"B\":\"env\"", "\"C\":\"local\"", "\"D\":\"cli\"",
                                 "\"E\":\"env\"", "\"F\":\"a=b\"", "\"N\":5"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) ASSERT_CONTAINS(cfg.vars_json, want[i]);
    ASSERT_EQ(cfg.env_counts[0], 5);
    ASSERT_EQ(cfg.env_counts[1], 4);
    ASSERT_EQ(cfg.env_counts[2], 2);
    ASSERT_EQ(cfg.env_counts[3], 2);
    /* a reload's config_load (the same command line) gives the same text */
    config again;
    config_defaults(&again);
    again.dir = xstrdup(project);
    again.cli_vars = cfg.cli_vars;
    again.ncli_vars = cfg.ncli_vars;
    ASSERT_MSG(config_load(&again, &err) == 0, "config_load: %s", err);
    ASSERT_STR_EQ(again.vars_json, cfg.vars_json);
    again.cli_vars = NULL; /* cfg's */
    again.ncli_vars = 0;
    config_free(&again);
    config_free(&cfg);
    unit_remove_tree(project);
}

/* A bad .env line stops the load with the file and the line, never the value. */
TEST(config_env_file_errors)
{
    static const struct { const char *file, *text, *want; } cases[] = {
        {".env", "OK=1\nTOKEN s3cr3t\n", ".env: line 2: expected NAME=VALUE (a name is letters, digits, '_', '.' and '-')"},
        {".env.local", "TOKEN=\"s3cr3t\n", ".env.local: line 1: the value of TOKEN has no closing \""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_project("{\"main\": \"parties/main.lua\"}");
        unit_write_file(project, cases[i].file, cases[i].text, strlen(cases[i].text));
        config cfg;
        char *err;
        ASSERT_EQ(load(&cfg, &err), -1);
        ASSERT_STR_EQ(err, cases[i].want);
        ASSERT(!strstr(err, "s3cr3t"));
        free(err);
        config_free(&cfg);
        unit_remove_tree(project);
    }
    /* a .env that is a folder cannot be read: said so */
    write_project("{\"main\": \"parties/main.lua\"}");
    unit_write_file(project, ".env/x", "", 0);
    config cfg;
    char *err;
    ASSERT_EQ(load(&cfg, &err), -1);
    ASSERT_STR_EQ(err, ".env: cannot read: Input/output error");
    free(err);
    config_free(&cfg);
    unit_remove_tree(project);
}
