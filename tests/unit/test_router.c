/* test_router.c - route_parse and query_param over a hand-built config. */
#include "unit.h"

#include "router.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static config cfg;

static void setup(void)
{
    static const char *names[] = {"main", "connections", "my-party"};
    config_defaults(&cfg);
    cfg.nparties = 3;
    cfg.parties = xcalloc(3, sizeof *cfg.parties);
    for (size_t i = 0; i < 3; i++) {
        cfg.parties[i] = xcalloc(1, sizeof(party));
        cfg.parties[i]->name = xstrdup(names[i]);
    }
}

static void teardown(void) { config_free(&cfg); }

static route r;

static route_kind parse(const char *target)
{
    memset(&r, 0x5a, sizeof r); /* route_parse must set everything */
    route_parse(&cfg, target, &r);
    return r.kind;
}

/* One target and the whole route it must give: kind, party (index into
 * cfg.parties, -1 for none), the party name as written, the room id. */
typedef struct route_case {
    const char *target;
    route_kind kind;
    int party;
    const char *name, *room;
} route_case;

#define ROOM(t, p, n, room) {t, ROUTE_ROOM, p, n, room}
#define UNKNOWN(t, n) {t, ROUTE_UNKNOWN_PARTY, -1, n, ""}
#define NOT_FOUND(t) {t, ROUTE_NOT_FOUND, -1, "", ""}

static void check_routes(const route_case *cases, size_t n)
{
    setup();
    for (size_t i = 0; i < n; i++) {
        const route_case *c = &cases[i];
        route_kind k = parse(c->target);
        ASSERT_MSG(k == c->kind, "%s: kind %d, not %d", unit_repr(c->target, strlen(c->target)), (int)k,
                   (int)c->kind);
        ASSERT_MSG(r.party == (c->party < 0 ? NULL : cfg.parties[c->party]), "%s: wrong party",
                   unit_repr(c->target, strlen(c->target)));
        ASSERT_STR_EQ(r.name, c->name);
        ASSERT_STR_EQ(r.room, c->room);
    }
    teardown();
}

TEST(route_rooms)
{
    static const route_case cases[] = {
        ROOM("/parties/main/r1", 0, "main", "r1"),
        ROOM("/parties/my-party/some-room", 2, "my-party", "some-room"),
        ROOM("/parties/connections/r", 1, "connections", "r"),
        /* sub-paths, queries and fragments are not part of the room id */
        ROOM("/parties/main/r1/sub?x=1", 0, "main", "r1"),
        ROOM("/parties/main/r1?x=/y/z", 0, "main", "r1"),
        ROOM("/parties/main/r1#frag", 0, "main", "r1"),
        ROOM("/parties/main/r1/", 0, "main", "r1"),
        ROOM("/parties/main/r1/a/b/c", 0, "main", "r1"),
        /* taken raw, not percent-decoded */
        ROOM("/parties/main/a%20b", 0, "main", "a%20b"),
        ROOM("/parties/main/\xc3\xa9t\xc3\xa9", 0, "main", "\xc3\xa9t\xc3\xa9"),
        /* /party/:room is the main party */
        ROOM("/party/r1", 0, "main", "r1"),
        ROOM("/party/r2/sub/path?q=1", 0, "main", "r2"),
        /* absolute-form targets route on their path */
        ROOM("http://host/parties/main/r1", 0, "main", "r1"),
        ROOM("http://host:1999/party/r2?x=1", 0, "main", "r2"),
        ROOM("https://example.com/parties/my-party/r3/x", 2, "my-party", "r3"),
    };
    check_routes(cases, sizeof cases / sizeof *cases);
}

TEST(route_unknown_party)
{
    static const route_case cases[] = {
        UNKNOWN("/parties/nope/x", "nope"),
        UNKNOWN("/parties/Main/x", "Main"), /* case-sensitive */
        UNKNOWN("/parties/mai/x", "mai"),
        UNKNOWN("/parties/mainx/x", "mainx"),
        UNKNOWN("http://host/parties/nope/r", "nope"),
    };
    check_routes(cases, sizeof cases / sizeof *cases);
}

TEST(route_not_found)
{
    static const route_case cases[] = {
        NOT_FOUND("/"),
        NOT_FOUND(""),
        NOT_FOUND("/parties"),
        NOT_FOUND("/parties/"),
        NOT_FOUND("/parties/main"),
        NOT_FOUND("/parties/main/"),
        NOT_FOUND("/parties/main?x=1"),
        NOT_FOUND("/parties/main/?x=1"),
        NOT_FOUND("/parties//r1"),
        NOT_FOUND("/partiesX/main/r1"),
        NOT_FOUND("/index.html"),
        NOT_FOUND("*"),
        NOT_FOUND("/party/"),
        NOT_FOUND("/party"),
        NOT_FOUND("/party//x"),
        NOT_FOUND("http://host"),
        NOT_FOUND("http://host/"),
    };
    check_routes(cases, sizeof cases / sizeof *cases);
}

TEST(route_long_party_name)
{
    setup();
    char t[512] = "/parties/";
    memset(t + 9, 'p', 300);
    strcpy(t + 309, "/room");
    ASSERT_EQ(parse(t), ROUTE_UNKNOWN_PARTY);
    ASSERT_EQ(strlen(r.name), sizeof r.name - 1); /* truncated, terminated */
    ASSERT_NULL(r.party);
    teardown();
}

TEST(route_room_id_length_limit)
{
    setup();
    static const struct {
        const char *prefix;
        size_t id_len;
        const char *suffix;
        route_kind kind;
    } cases[] = {
        {"/parties/main/", 257, "", ROUTE_ID_TOO_LONG},
        {"/parties/main/", 256, "", ROUTE_ROOM}, /* exactly ROUTE_MAX_ROOM_ID: fine */
        {"/parties/main/", 257, "/sub?x=1", ROUTE_ID_TOO_LONG},
        {"/party/", 257, "", ROUTE_ID_TOO_LONG},
        {"/party/", 256, "?x=1", ROUTE_ROOM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char t[600];
        size_t p = strlen(cases[i].prefix);
        memcpy(t, cases[i].prefix, p);
        memset(t + p, 'r', cases[i].id_len);
        strcpy(t + p + cases[i].id_len, cases[i].suffix);
        ASSERT_MSG(parse(t) == cases[i].kind, "%s + %zu bytes + %s: kind %d", cases[i].prefix, cases[i].id_len,
                   cases[i].suffix, (int)r.kind);
        ASSERT_STR_EQ(r.name, "main");
        ASSERT(r.party == cfg.parties[0]);
        ASSERT_EQ(strlen(r.room), cases[i].kind == ROUTE_ROOM ? cases[i].id_len : 0);
    }
    teardown();
}

TEST(config_party_lookup)
{
    setup();
    ASSERT(config_party(&cfg, "main", 4) == cfg.parties[0]);
    ASSERT(config_party(&cfg, "my-party", 8) == cfg.parties[2]);
    ASSERT(config_party(&cfg, "mainx", 4) == cfg.parties[0]); /* by length */
    ASSERT_NULL(config_party(&cfg, "mai", 3));
    ASSERT_NULL(config_party(&cfg, "", 0));
    teardown();
}

TEST(config_valid_party_names)
{
    static const struct {
        const char *name;
        bool ok;
    } cases[] = {
        {"main", true}, {"my-party_2", true}, {"", false}, {"a b", false}, {"a/b", false}, {"a.b", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_MSG(config_valid_party_name(cases[i].name, strlen(cases[i].name)) == cases[i].ok, "\"%s\"",
                   cases[i].name);
    char l[65];
    memset(l, 'a', sizeof l);
    ASSERT(config_valid_party_name(l, 64));
    ASSERT(!config_valid_party_name(l, 65));
}

TEST(query_param_cases)
{
    static const struct {
        const char *target, *name;
        const char *value; /* NULL: absent */
    } cases[] = {
        /* present */
        {"/parties/main/r1?_pk=abc", "_pk", "abc"},
        {"/parties/main/r1?_pk=abc&x=1", "_pk", "abc"},
        {"/parties/main/r1?x=1&_pk=second", "_pk", "second"}, /* as the 2nd parameter */
        {"/parties/main/r1?x=1&y=2&_pk=third#frag", "_pk", "third"},
        {"/p?_pk=first&_pk=second", "_pk", "first"}, /* the first wins */
        /* URL-decoded */
        {"/p?_pk=a%20b%2Fc", "_pk", "a b/c"},
        {"/p?name=a+b", "name", "a b"},
        {"/p?name=%26%3D%23", "name", "&=#"},
        {"/p?name=50%", "name", "50%"},
        /* empty */
        {"/p?_pk=", "_pk", ""},
        {"/p?_pk", "_pk", ""},
        {"/p?x=1&_pk=&y=2", "_pk", ""},
        {"/p?x=1&_pk&y=2", "_pk", ""},
        {"/p?&&_pk=v", "_pk", "v"},
        /* absent */
        {"/parties/main/r1", "_pk", NULL},
        {"/parties/main/r1?", "_pk", NULL},
        {"/parties/main/r1?x=1", "_pk", NULL},
        {"/p?x_pk=1", "_pk", NULL},
        {"/p?_pkx=1", "_pk", NULL},
        {"/p?_p=1", "_pk", NULL},
        {"/p?a=_pk=1", "_pk", NULL},
        {"/p?x=1#_pk=2", "_pk", NULL}, /* in the fragment */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char v[256];
        memset(v, 'X', sizeof v);
        bool found = query_param(cases[i].target, cases[i].name, v, sizeof v);
        ASSERT_MSG(found == (cases[i].value != NULL), "%s: %s", cases[i].target, found ? "found" : "not found");
        if (cases[i].value) ASSERT_STR_EQ(v, cases[i].value);
        else ASSERT_EQ(v[0], 'X'); /* out untouched */
    }
}

TEST(query_param_truncated_to_capacity)
{
    char small[4];
    ASSERT(query_param("/p?k=abcdef", "k", small, sizeof small));
    ASSERT_STR_EQ(small, "abc");
}
