/* test_router.c - route_parse and query_param over a hand-built config. */
#include "unit.h"

#include "router.h"
#include "util.h"

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

TEST(route_parties_room)
{
    setup();
    ASSERT_EQ(parse("/parties/main/r1"), ROUTE_ROOM);
    ASSERT(r.party == cfg.parties[0]);
    ASSERT_STR_EQ(r.name, "main");
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/parties/my-party/some-room"), ROUTE_ROOM);
    ASSERT(r.party == cfg.parties[2]);
    ASSERT_STR_EQ(r.name, "my-party");
    ASSERT_STR_EQ(r.room, "some-room");
    ASSERT_EQ(parse("/parties/connections/r"), ROUTE_ROOM);
    ASSERT(r.party == cfg.parties[1]);
    teardown();
}

TEST(route_subpath_and_query)
{
    setup();
    ASSERT_EQ(parse("/parties/main/r1/sub?x=1"), ROUTE_ROOM);
    ASSERT(r.party == cfg.parties[0]);
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/parties/main/r1?x=/y/z"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/parties/main/r1#frag"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/parties/main/r1/"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/parties/main/r1/a/b/c"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r1");
    teardown();
}

TEST(route_room_id_raw_not_decoded)
{
    setup();
    ASSERT_EQ(parse("/parties/main/a%20b"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "a%20b");
    ASSERT_EQ(parse("/parties/main/\xc3\xa9t\xc3\xa9"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "\xc3\xa9t\xc3\xa9");
    teardown();
}

TEST(route_party_alias)
{
    setup();
    ASSERT_EQ(parse("/party/r1"), ROUTE_ROOM);
    ASSERT(r.party == cfg.parties[0]);
    ASSERT_STR_EQ(r.name, "main");
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT_EQ(parse("/party/r2/sub/path?q=1"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r2");
    ASSERT_EQ(parse("/party/"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/party"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/party//x"), ROUTE_NOT_FOUND);
    teardown();
}

TEST(route_unknown_party)
{
    setup();
    ASSERT_EQ(parse("/parties/nope/x"), ROUTE_UNKNOWN_PARTY);
    ASSERT_STR_EQ(r.name, "nope");
    ASSERT_NULL(r.party);
    ASSERT_EQ(parse("/parties/Main/x"), ROUTE_UNKNOWN_PARTY); /* case-sensitive */
    ASSERT_STR_EQ(r.name, "Main");
    ASSERT_EQ(parse("/parties/mai/x"), ROUTE_UNKNOWN_PARTY);
    ASSERT_EQ(parse("/parties/mainx/x"), ROUTE_UNKNOWN_PARTY);
    ASSERT_STR_EQ(r.name, "mainx");
    teardown();
}

TEST(route_long_party_name)
{
    setup();
    char t[512] = "/parties/";
    memset(t + 9, 'p', 300);
    strcpy(t + 309, "/room");
    ASSERT_EQ(parse(t), ROUTE_UNKNOWN_PARTY);
    ASSERT_EQ(strlen(r.name), sizeof r.name - 1); /* truncated, terminated */
    teardown();
}

TEST(route_not_found)
{
    setup();
    ASSERT_EQ(parse("/"), ROUTE_NOT_FOUND);
    ASSERT_NULL(r.party);
    ASSERT_EQ(parse(""), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties/"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties/main"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties/main/"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties/main?x=1"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties/main/?x=1"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/parties//r1"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/partiesX/main/r1"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("/index.html"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("*"), ROUTE_NOT_FOUND);
    teardown();
}

TEST(route_room_id_length_limit)
{
    setup();
    char t[600] = "/parties/main/";
    size_t p = strlen(t);
    memset(t + p, 'r', 257);
    t[p + 257] = 0;
    ASSERT_EQ(parse(t), ROUTE_ID_TOO_LONG);
    ASSERT_STR_EQ(r.name, "main");
    t[p + 256] = 0; /* exactly 256: fine */
    ASSERT_EQ(parse(t), ROUTE_ROOM);
    ASSERT_EQ(strlen(r.room), 256);
    strcpy(t + p + 256, "r/sub?x=1"); /* 257 again, followed by more */
    ASSERT_EQ(parse(t), ROUTE_ID_TOO_LONG);
    char a[600] = "/party/";
    memset(a + 7, 'r', 257);
    a[7 + 257] = 0;
    ASSERT_EQ(parse(a), ROUTE_ID_TOO_LONG);
    teardown();
}

TEST(route_absolute_form)
{
    setup();
    ASSERT_EQ(parse("http://host/parties/main/r1"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r1");
    ASSERT(r.party == cfg.parties[0]);
    ASSERT_EQ(parse("http://host:1999/party/r2?x=1"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r2");
    ASSERT_EQ(parse("https://example.com/parties/my-party/r3/x"), ROUTE_ROOM);
    ASSERT_STR_EQ(r.room, "r3");
    ASSERT_EQ(parse("http://host"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("http://host/"), ROUTE_NOT_FOUND);
    ASSERT_EQ(parse("http://host/parties/nope/r"), ROUTE_UNKNOWN_PARTY);
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
    ASSERT(config_valid_party_name("main", 4));
    ASSERT(config_valid_party_name("my-party_2", 10));
    ASSERT(!config_valid_party_name("", 0));
    ASSERT(!config_valid_party_name("a b", 3));
    ASSERT(!config_valid_party_name("a/b", 3));
    ASSERT(!config_valid_party_name("a.b", 3));
    char l[65];
    memset(l, 'a', sizeof l);
    ASSERT(config_valid_party_name(l, 64));
    ASSERT(!config_valid_party_name(l, 65));
}

static char qv[256];

static bool qp(const char *target, const char *name)
{
    memset(qv, 'X', sizeof qv);
    return query_param(target, name, qv, sizeof qv);
}

TEST(query_param_present)
{
    ASSERT(qp("/parties/main/r1?_pk=abc", "_pk"));
    ASSERT_STR_EQ(qv, "abc");
    ASSERT(qp("/parties/main/r1?_pk=abc&x=1", "_pk"));
    ASSERT_STR_EQ(qv, "abc");
    ASSERT(qp("/parties/main/r1?x=1&_pk=second", "_pk")); /* as the 2nd parameter */
    ASSERT_STR_EQ(qv, "second");
    ASSERT(qp("/parties/main/r1?x=1&y=2&_pk=third#frag", "_pk"));
    ASSERT_STR_EQ(qv, "third");
    ASSERT(qp("/p?_pk=first&_pk=second", "_pk")); /* the first wins */
    ASSERT_STR_EQ(qv, "first");
}

TEST(query_param_url_decoded)
{
    ASSERT(qp("/p?_pk=a%20b%2Fc", "_pk"));
    ASSERT_STR_EQ(qv, "a b/c");
    ASSERT(qp("/p?name=a+b", "name"));
    ASSERT_STR_EQ(qv, "a b");
    ASSERT(qp("/p?name=%26%3D%23", "name"));
    ASSERT_STR_EQ(qv, "&=#");
    ASSERT(qp("/p?name=50%", "name"));
    ASSERT_STR_EQ(qv, "50%");
}

TEST(query_param_absent)
{
    ASSERT(!qp("/parties/main/r1", "_pk"));
    ASSERT(!qp("/parties/main/r1?", "_pk"));
    ASSERT(!qp("/parties/main/r1?x=1", "_pk"));
    ASSERT(!qp("/p?x_pk=1", "_pk"));
    ASSERT(!qp("/p?_pkx=1", "_pk"));
    ASSERT(!qp("/p?_p=1", "_pk"));
    ASSERT(!qp("/p?a=_pk=1", "_pk"));
    ASSERT(!qp("/p?x=1#_pk=2", "_pk")); /* in the fragment */
}

TEST(query_param_empty)
{
    ASSERT(qp("/p?_pk=", "_pk"));
    ASSERT_STR_EQ(qv, "");
    ASSERT(qp("/p?_pk", "_pk"));
    ASSERT_STR_EQ(qv, "");
    ASSERT(qp("/p?x=1&_pk=&y=2", "_pk"));
    ASSERT_STR_EQ(qv, "");
    ASSERT(qp("/p?x=1&_pk&y=2", "_pk"));
    ASSERT_STR_EQ(qv, "");
    ASSERT(qp("/p?&&_pk=v", "_pk"));
    ASSERT_STR_EQ(qv, "v");
}

TEST(query_param_truncated_to_capacity)
{
    char small[4];
    ASSERT(query_param("/p?k=abcdef", "k", small, sizeof small));
    ASSERT_STR_EQ(small, "abc");
}
