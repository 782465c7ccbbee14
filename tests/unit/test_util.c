/* test_util.c - dict, url_decode, uuid_v4, edit_distance and friends. */
#include "unit.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define V(i) ((void *)(uintptr_t)(i))

static void *get_s(const dict *d, const char *k) { return dict_get(d, k, strlen(k)); }

static void put(dict *d, const char *k, size_t klen, void *v)
{
    bool created = false;
    dict_entry *e = dict_upsert(d, k, klen, &created);
    ASSERT(created);
    e->val = v;
}

TEST(dict_empty)
{
    dict d;
    dict_init(&d);
    ASSERT_NULL(dict_get(&d, "a", 1));
    ASSERT_NULL(dict_find(&d, "a", 1));
    ASSERT_NULL(dict_remove(&d, "a", 1));
    size_t i = 0;
    ASSERT_NULL(dict_next(&d, &i));
    dict_free(&d, NULL);
}

TEST(dict_insert_get_many)
{
    dict d;
    dict_init(&d);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        put(&d, k, (size_t)n, V(i + 1));
        ASSERT_EQ(d.count, i + 1);
    }
    ASSERT(d.count * 4 <= d.cap * 3);
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        ASSERT(dict_get(&d, k, (size_t)n) == V(i + 1));
    }
    ASSERT_NULL(get_s(&d, "key5000"));
    ASSERT_NULL(get_s(&d, "key"));
    ASSERT_NULL(get_s(&d, ""));
    /* upsert of an existing key returns the same entry, not a new one */
    bool created = true;
    dict_entry *e = dict_upsert(&d, "key42", 5, &created);
    ASSERT(!created);
    ASSERT(e->val == V(43));
    ASSERT_EQ(d.count, 5000);
    dict_free(&d, NULL);
}

TEST(dict_binary_keys_with_nul)
{
    dict d;
    dict_init(&d);
    put(&d, "a\0b", 3, V(1));
    put(&d, "a\0c", 3, V(2));
    put(&d, "a", 1, V(3));
    put(&d, "a\0", 2, V(4));
    put(&d, "", 0, V(5));
    put(&d, "\0", 1, V(6));
    put(&d, "\0\0", 2, V(7));
    ASSERT_EQ(d.count, 7);
    ASSERT(dict_get(&d, "a\0b", 3) == V(1));
    ASSERT(dict_get(&d, "a\0c", 3) == V(2));
    ASSERT(dict_get(&d, "a", 1) == V(3));
    ASSERT(dict_get(&d, "a\0", 2) == V(4));
    ASSERT(dict_get(&d, "", 0) == V(5));
    ASSERT(dict_get(&d, "\0", 1) == V(6));
    ASSERT(dict_get(&d, "\0\0", 2) == V(7));
    ASSERT_NULL(dict_get(&d, "a\0d", 3));
    dict_entry *e = dict_find(&d, "a\0c", 3);
    ASSERT_NOT_NULL(e);
    ASSERT_BYTES_EQ(e->key, e->klen, "a\0c", 3);
    ASSERT(dict_remove(&d, "a\0b", 3) == V(1));
    ASSERT_NULL(dict_get(&d, "a\0b", 3));
    ASSERT(dict_get(&d, "a\0c", 3) == V(2));
    ASSERT(dict_get(&d, "a", 1) == V(3));
    ASSERT(dict_remove(&d, "", 0) == V(5));
    ASSERT_NULL(dict_find(&d, "", 0));
    ASSERT_EQ(d.count, 5);
    dict_free(&d, NULL);
}

TEST(dict_find_tells_null_value_from_absent)
{
    dict d;
    dict_init(&d);
    dict_upsert(&d, "k", 1, NULL); /* val NULL */
    ASSERT_NULL(dict_get(&d, "k", 1));
    ASSERT_NOT_NULL(dict_find(&d, "k", 1));
    ASSERT_NULL(dict_find(&d, "j", 1));
    ASSERT_NULL(dict_remove(&d, "k", 1));
    ASSERT_EQ(d.count, 0);
    ASSERT_NULL(dict_find(&d, "k", 1));
    dict_free(&d, NULL);
}

TEST(dict_remove_keeps_others_findable)
{
    dict d;
    dict_init(&d);
    char k[32];
    enum { N = 3000 };
    for (int i = 0; i < N; i++) put(&d, k, (size_t)snprintf(k, sizeof k, "k:%d", i), V(i + 1));
    /* remove every other key */
    for (int i = 0; i < N; i += 2) {
        int n = snprintf(k, sizeof k, "k:%d", i);
        ASSERT(dict_remove(&d, k, (size_t)n) == V(i + 1));
        ASSERT_NULL(dict_remove(&d, k, (size_t)n)); /* twice: absent */
    }
    ASSERT_EQ(d.count, N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "k:%d", i);
        if (i % 2) ASSERT(dict_get(&d, k, (size_t)n) == V(i + 1));
        else ASSERT_NULL(dict_find(&d, k, (size_t)n));
    }
    /* and reinsert them */
    for (int i = 0; i < N; i += 2) put(&d, k, (size_t)snprintf(k, sizeof k, "k:%d", i), V(i + 100000));
    ASSERT_EQ(d.count, N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "k:%d", i);
        ASSERT(dict_get(&d, k, (size_t)n) == V(i % 2 ? i + 1 : i + 100000));
    }
    dict_free(&d, NULL);
}

/* Small tables (16 slots, up to 12 keys) give long probe runs that wrap
 * around the end of the slot array: after every single removal, every
 * remaining key must still be found (backward shift, no tombstones). */
TEST(dict_remove_backward_shift_randomized)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int trial = 0; trial < 400; trial++) {
        dict d;
        dict_init(&d);
        int nkeys = 2 + (int)(unit_rand(&rng) % 11); /* 2..12: stays at 16 slots */
        char keys[12][8];
        int order[12];
        for (int i = 0; i < nkeys; i++) {
            snprintf(keys[i], sizeof keys[i], "%c%c%d", 'a' + (int)(unit_rand(&rng) % 26),
                     'a' + (int)(unit_rand(&rng) % 26), i);
            put(&d, keys[i], strlen(keys[i]), V(i + 1));
            order[i] = i;
        }
        ASSERT_EQ(d.cap, 16);
        for (int i = nkeys - 1; i > 0; i--) { /* shuffle the removal order */
            int j = (int)(unit_rand(&rng) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int r = 0; r < nkeys; r++) {
            int gone = order[r];
            ASSERT(dict_remove(&d, keys[gone], strlen(keys[gone])) == V(gone + 1));
            for (int s = 0; s < nkeys; s++) {
                bool removed = false;
                for (int q = 0; q <= r; q++) removed |= order[q] == s;
                void *v = dict_get(&d, keys[s], strlen(keys[s]));
                ASSERT_MSG(removed ? v == NULL : v == V(s + 1),
                           "trial %d: after removing %d keys, key \"%s\" %s", trial, r + 1, keys[s],
                           removed ? "is still there" : "is lost");
            }
            ASSERT_EQ(d.count, nkeys - r - 1);
        }
        dict_free(&d, NULL);
    }
}

TEST(dict_iteration_visits_each_once)
{
    dict d;
    dict_init(&d);
    enum { N = 1000 };
    static int seen[N];
    memset(seen, 0, sizeof seen);
    char k[32];
    for (int i = 0; i < N; i++) put(&d, k, (size_t)snprintf(k, sizeof k, "it%d", i), V(i + 1));
    for (int i = 0; i < N; i += 3) dict_remove(&d, k, (size_t)snprintf(k, sizeof k, "it%d", i));
    dict_entry *e;
    size_t visited = 0;
    for (size_t i = 0; (e = dict_next(&d, &i));) {
        int idx = (int)(uintptr_t)e->val - 1;
        ASSERT(idx >= 0 && idx < N);
        seen[idx]++;
        visited++;
        char expect[32];
        int n = snprintf(expect, sizeof expect, "it%d", idx);
        ASSERT_BYTES_EQ(e->key, e->klen, expect, (size_t)n);
    }
    ASSERT_EQ(visited, d.count);
    for (int i = 0; i < N; i++) ASSERT_EQ(seen[i], i % 3 ? 1 : 0);
    dict_free(&d, NULL);
}

static int freed_vals;
static void count_free(void *v)
{
    if (v) freed_vals++;
    free(v);
}

TEST(dict_free_calls_free_val)
{
    dict d;
    dict_init(&d);
    freed_vals = 0;
    char k[16];
    for (int i = 0; i < 100; i++) put(&d, k, (size_t)snprintf(k, sizeof k, "%d", i), malloc(8));
    dict_upsert(&d, "null", 4, NULL);
    dict_free(&d, count_free);
    ASSERT_EQ(freed_vals, 100);
    ASSERT_EQ(d.count, 0);
    ASSERT_NULL(d.slots);
}

static size_t dec(char *s, const char *in, bool plus)
{
    strcpy(s, in);
    return url_decode(s, strlen(s), plus);
}

TEST(url_decode_percent)
{
    char s[64];
    ASSERT_EQ(dec(s, "%41%42c", false), 3);
    ASSERT_STR_EQ(s, "ABc");
    ASSERT_EQ(dec(s, "%2f%2F%7e", false), 3);
    ASSERT_STR_EQ(s, "//~");
    ASSERT_EQ(dec(s, "a%20b%2Fc", true), 5);
    ASSERT_STR_EQ(s, "a b/c");
    ASSERT_EQ(dec(s, "%e2%82%ac", false), 3);
    ASSERT_STR_EQ(s, "\xe2\x82\xac");
    ASSERT_EQ(dec(s, "", false), 0);
    ASSERT_STR_EQ(s, "");
    ASSERT_EQ(dec(s, "plain", false), 5);
    ASSERT_STR_EQ(s, "plain");
}

TEST(url_decode_nul_byte)
{
    char s[16];
    ASSERT_EQ(dec(s, "a%00b", false), 3);
    ASSERT_MEM_EQ(s, "a\0b", 4);
}

TEST(url_decode_plus)
{
    char s[64];
    ASSERT_EQ(dec(s, "a+b++c", true), 6);
    ASSERT_STR_EQ(s, "a b  c");
    ASSERT_EQ(dec(s, "a+b", false), 3);
    ASSERT_STR_EQ(s, "a+b");
    ASSERT_EQ(dec(s, "%2B", true), 1); /* an encoded plus stays a plus */
    ASSERT_STR_EQ(s, "+");
}

TEST(url_decode_truncated_and_invalid_percent)
{
    char s[64];
    ASSERT_EQ(dec(s, "%", false), 1);
    ASSERT_STR_EQ(s, "%");
    ASSERT_EQ(dec(s, "%4", false), 2);
    ASSERT_STR_EQ(s, "%4");
    ASSERT_EQ(dec(s, "abc%", false), 4);
    ASSERT_STR_EQ(s, "abc%");
    ASSERT_EQ(dec(s, "abc%6", false), 5);
    ASSERT_STR_EQ(s, "abc%6");
    ASSERT_EQ(dec(s, "%zz%4g%g4", false), 9);
    ASSERT_STR_EQ(s, "%zz%4g%g4");
    ASSERT_EQ(dec(s, "%%41", false), 2);
    ASSERT_STR_EQ(s, "%A");
    /* decoding stops at len, not at the string's end */
    strcpy(s, "%41%42");
    ASSERT_EQ(url_decode(s, 4, false), 2);
    ASSERT_STR_EQ(s, "A%");
}

static int hexdig(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

TEST(uuid_v4_format)
{
    char prev[37] = "";
    for (int n = 0; n < 200; n++) {
        char u[37];
        memset(u, 'Z', sizeof u);
        uuid_v4(u);
        ASSERT_EQ(strlen(u), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) ASSERT_MSG(u[i] == '-', "uuid %s: no '-' at %d", u, i);
            else ASSERT_MSG(hexdig(u[i]), "uuid %s: not lowercase hex at %d", u, i);
        }
        ASSERT_MSG(u[14] == '4', "uuid %s: version nibble is not 4", u);
        ASSERT_MSG(strchr("89ab", u[19]) != NULL, "uuid %s: variant bits are not 10xx", u);
        ASSERT(strcmp(u, prev) != 0);
        memcpy(prev, u, sizeof u);
    }
}

TEST(edit_distance_values)
{
    ASSERT_EQ(edit_distance("", ""), 0);
    ASSERT_EQ(edit_distance("abc", ""), 3);
    ASSERT_EQ(edit_distance("", "abcd"), 4);
    ASSERT_EQ(edit_distance("kitten", "sitting"), 3);
    ASSERT_EQ(edit_distance("sitting", "kitten"), 3);
    ASSERT_EQ(edit_distance("flaw", "lawn"), 2);
    ASSERT_EQ(edit_distance("parties", "partes"), 1);
    ASSERT_EQ(edit_distance("Main", "main"), 0); /* case-insensitive */
    ASSERT_EQ(edit_distance("persist", "persits"), 2);
    ASSERT_EQ(edit_distance("abc", "abc"), 0);
    char a[66], b[66];
    memset(a, 'a', 64);
    a[64] = 0;
    memset(b, 'b', 64);
    b[64] = 0;
    ASSERT_EQ(edit_distance(a, b), 64);
    ASSERT_EQ(edit_distance(a, ""), 64);
    a[64] = 'a';
    a[65] = 0; /* 65 bytes: too long to bother */
    ASSERT_EQ(edit_distance(a, "a"), (size_t)-1);
}

TEST(host_port_split_table)
{
    static const struct {
        const char *addr;
        bool ok;
        const char *host;
        int port;
    } cases[] = {
        {"127.0.0.1:7001", true, "127.0.0.1", 7001},
        {"node-a.local:0", true, "node-a.local", 0},
        {"[::1]:65535", true, "[::1]", 65535},
        {"h:65536", false, NULL, 0},
        {"h:-1", false, NULL, 0},
        {"h:+80", false, NULL, 0},
        {"h:80x", false, NULL, 0},
        {"h:", false, NULL, 0},
        {":80", false, NULL, 0},
        {"no-port", false, NULL, 0},
        {"0123456789abcdef:1", false, NULL, 0}, /* host longer than the buffer below */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[16];
        int port = -7;
        bool ok = host_port_split(cases[i].addr, host, sizeof host, &port);
        ASSERT_MSG(ok == cases[i].ok, "%s: %d", cases[i].addr, ok);
        if (!ok) continue;
        ASSERT_STR_EQ(host, cases[i].host);
        ASSERT_EQ(port, cases[i].port);
    }
}

TEST(str_ieq_and_ieqn)
{
    ASSERT(str_ieq("Upgrade", "upgrade"));
    ASSERT(!str_ieq("Upgrade", "upgrades"));
    ASSERT(str_ieqn("HOSTx", 4, "host"));
    ASSERT(!str_ieqn("HOSTx", 5, "host"));
    ASSERT(!str_ieqn("HOS", 3, "host"));
    ASSERT(str_ieqn("", 0, ""));
}

TEST(xstrndup_copies_n)
{
    char *s = xstrndup("abcdef", 3);
    ASSERT_STR_EQ(s, "abc");
    free(s);
    s = xstrdup("");
    ASSERT_STR_EQ(s, "");
    free(s);
}

TEST(read_file_whole_and_missing)
{
    char path[] = "/tmp/lp-unit-read-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    char data[10000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 7);
    ASSERT_EQ(write(fd, data, sizeof data), (ssize_t)sizeof data);
    close(fd);
    size_t len = 0;
    char *got = read_file(path, &len);
    unlink(path);
    ASSERT_NOT_NULL(got);
    ASSERT_BYTES_EQ(got, len, data, sizeof data);
    ASSERT_EQ(got[len], 0);
    free(got);
    errno = 0;
    ASSERT_NULL(read_file("/nonexistent/lp-unit/none", &len));
    ASSERT_EQ(errno, ENOENT);
}

TEST(now_ms_is_wall_clock)
{
    uint64_t t = now_ms();
    ASSERT(t > 1600000000000ULL); /* after 2020 */
    ASSERT(now_ms() >= t);
    uint64_t frozen = 1234;
    now_ms_follow(&frozen); /* luaparty test's virtual clock */
    ASSERT_EQ(now_ms(), 1234);
    frozen = 5678;
    ASSERT_EQ(now_ms(), 5678);
    now_ms_follow(NULL);
    ASSERT(now_ms() >= t);
}

/* Seeded UUIDs (luaparty test --seed) repeat for a seed, differ between
 * seeds, and are still well-formed version 4; unseeded ones are random. */
TEST(uuid_seeded)
{
    char a[3][37], b[3][37], c[37], d[37];
    uuid_seed(true, 1);
    for (int i = 0; i < 3; i++) uuid_v4(a[i]);
    uuid_seed(true, 1);
    for (int i = 0; i < 3; i++) uuid_v4(b[i]);
    uuid_seed(true, 2);
    uuid_v4(c);
    uuid_seed(false, 0);
    uuid_v4(d);
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_EQ(a[i], b[i]);
        ASSERT(a[i][14] == '4' && strchr("89ab", a[i][19]));
    }
    ASSERT(strcmp(a[0], a[1]) != 0);
    ASSERT(strcmp(a[0], c) != 0);
    ASSERT(strcmp(d, a[0]) != 0); /* seeding off: the CSPRNG again, not the seeded sequence */
}

/* utf8_valid_prefix: where well-formed UTF-8 stops; utf8_valid is "all of it". */
TEST(utf8_valid_prefix_stops_at_the_first_bad_byte)
{
    static const struct {
        const char *s;
        size_t len, valid; /* len 0: strlen */
    } cases[] = {
        {"", 0, 0},
        {"plain ascii, longer than eight bytes", 0, 36},
        {"caf\xc3\xa9", 0, 5},                                /* é */
        {"\xe2\x82\xac and \xf0\x9f\x8e\x89", 0, 12},         /* € and 🎉 */
        {"abcdefgh\xff", 0, 8},                               /* a byte that is never UTF-8, after the fast path */
        {"ab\xc3", 0, 2},                                     /* a character cut short at the end */
        {"ab\xe2\x82", 0, 2},
        {"ab\xc3(cd", 0, 2},                                  /* a continuation byte missing */
        {"\xc0\xaf", 0, 0},                                   /* overlong '/' */
        {"\xe0\x80\xaf", 0, 0},                               /* overlong, 3 bytes */
        {"x\xed\xa0\x80", 0, 1},                              /* a UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 0, 0},                           /* above U+10FFFF */
        {"\x80", 0, 0},                                       /* a lone continuation byte */
        {"nul\0inside", 10, 10},                              /* NUL is a character */
        {"0123456\xc3\xa9" "01234567\xf0\x9f\x8e", 0, 17},   /* a 4-byte character cut, after two fast runs */
        {"0123456789abcdef0123456789abcdef01234567\xff", 0, 40}, /* past a 32-byte and an 8-byte run */
        {"0123456789abcdef0123456789abcde\xc3\xa9" "0123456789abcdef0123456789abcdef", 0, 65},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
        size_t got = utf8_valid_prefix((const uint8_t *)cases[i].s, len);
        ASSERT_MSG(got == cases[i].valid, "case %zu (%s): valid prefix %zu, expected %zu", i,
                   unit_repr(cases[i].s, len), got, cases[i].valid);
        ASSERT_EQ(utf8_valid((const uint8_t *)cases[i].s, len), cases[i].valid == len);
    }
}

/* A spare comes back zeroed from its size class; under AddressSanitizer no
 * spare is kept (a kept block would hide a use after free from it), so the
 * block freed is never the one handed out next (ASan's quarantine). */
TEST(thread_cache_spares_by_class)
{
    unsigned char *a = thread_cache_get(100);
    memset(a, 0xab, 100);
    thread_cache_put(a, 100);
    unsigned char *b = thread_cache_get(90); /* the same 64-byte class (65-128) */
#ifdef __SANITIZE_ADDRESS__
    ASSERT_MSG(a != b, "AddressSanitizer build: a spare was kept");
#else
    ASSERT_MSG(a == b, "the spare of the class was not reused");
#endif
    for (size_t i = 0; i < 90; i++) ASSERT_EQ(b[i], 0);
    thread_cache_put(b, 90);
    void *big = thread_cache_take(THREAD_CACHE_MAX + 1); /* over the classes: malloc and free */
    ASSERT_NOT_NULL(big);
    thread_cache_put(big, THREAD_CACHE_MAX + 1);
    thread_cache_drain();
}
