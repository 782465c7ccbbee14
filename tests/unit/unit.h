/* unit.h - a tiny test harness in the style of libuv's and wslay's own tests.
 *
 *   TEST(module_what) { ASSERT_EQ(1 + 1, 2); }
 *
 * TEST registers the function at start-up (a constructor), so a new test
 * only needs a new TEST block. main.c runs every registered test (each in a
 * forked child by default, so a crash, an ASan report or a leak is charged
 * to the test that caused it), prints one line per test and a summary line
 * "N passed, N failed". A failed ASSERT reports file:line and the failing
 * expression and ends the test. */
#ifndef LP_UNIT_H
#define LP_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef void (*unit_fn)(void);

void unit_register(const char *name, const char *file, int line, unit_fn fn);
void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Registers fn(arg) to run if the current test fails (e.g. removing its
 * temporary directory); one per test, a later call replaces it. */
void unit_on_fail(void (*fn)(void *), void *arg);
/* Formats up to n bytes of s for a failure message (escapes non-printables). */
const char *unit_repr(const void *s, size_t n);

/* tmpdir.c: a fresh directory /tmp/lp-unit-<label>-XXXXXX for the current
 * test (one at a time: a later call replaces it), removed if the test
 * fails; unit_remove_tree removes it (rm -r) when the test is done. */
const char *unit_tmpdir(const char *label);
void unit_remove_tree(const char *path);
/* Writes len bytes to dir/rel, making rel's directories first. */
void unit_write_file(const char *dir, const char *rel, const void *data, size_t len);

#define TEST(name)                                                                                      \
    static void test_##name(void);                                                                      \
    __attribute__((constructor)) static void unit_reg_##name(void)                                     \
    {                                                                                                   \
        unit_register(#name, __FILE__, __LINE__, test_##name);                                          \
    }                                                                                                   \
    static void test_##name(void)

#define ASSERT(e)                                                                                       \
    do {                                                                                                \
        if (!(e)) unit_fail(__FILE__, __LINE__, "ASSERT(%s)", #e);                                      \
    } while (0)

#define ASSERT_MSG(e, ...)                                                                              \
    do {                                                                                                \
        if (!(e)) unit_fail(__FILE__, __LINE__, __VA_ARGS__);                                           \
    } while (0)

#define ASSERT_EQ(a, b)                                                                                 \
    do {                                                                                                \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                                   \
        if (unit_a_ != unit_b_)                                                                         \
            unit_fail(__FILE__, __LINE__, "ASSERT_EQ(%s, %s): %lld != %lld", #a, #b, unit_a_, unit_b_); \
    } while (0)

#define ASSERT_NE(a, b)                                                                                 \
    do {                                                                                                \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                                   \
        if (unit_a_ == unit_b_)                                                                         \
            unit_fail(__FILE__, __LINE__, "ASSERT_NE(%s, %s): both %lld", #a, #b, unit_a_);             \
    } while (0)

#define ASSERT_NULL(p)                                                                                  \
    do {                                                                                                \
        if ((p) != NULL) unit_fail(__FILE__, __LINE__, "ASSERT_NULL(%s)", #p);                          \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                                              \
    do {                                                                                                \
        if ((p) == NULL) unit_fail(__FILE__, __LINE__, "ASSERT_NOT_NULL(%s)", #p);                      \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                             \
    do {                                                                                                \
        const char *unit_a_ = (a), *unit_b_ = (b);                                                      \
        if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0)                                      \
            unit_fail(__FILE__, __LINE__, "ASSERT_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b,            \
                      unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)");                      \
    } while (0)

/* a (n bytes) equals b (n bytes) */
#define ASSERT_MEM_EQ(a, b, n)                                                                          \
    do {                                                                                                \
        const void *unit_a_ = (a), *unit_b_ = (b);                                                      \
        size_t unit_n_ = (n);                                                                           \
        if (unit_n_ && memcmp(unit_a_, unit_b_, unit_n_) != 0)                                          \
            unit_fail(__FILE__, __LINE__, "ASSERT_MEM_EQ(%s, %s, %s): %s", #a, #b, #n,                  \
                      unit_repr(unit_a_, unit_n_));                                                     \
    } while (0)

/* (a, alen) equals (b, blen) */
#define ASSERT_BYTES_EQ(a, alen, b, blen)                                                               \
    do {                                                                                                \
        const void *unit_a_ = (a), *unit_b_ = (b);                                                      \
        size_t unit_al_ = (alen), unit_bl_ = (blen);                                                    \
        if (unit_al_ != unit_bl_ || (unit_al_ && memcmp(unit_a_, unit_b_, unit_al_) != 0))              \
            unit_fail(__FILE__, __LINE__, "ASSERT_BYTES_EQ(%s, %s): got %zu bytes %s", #a, #b,          \
                      unit_al_, unit_repr(unit_a_, unit_al_));                                          \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                                    \
    do {                                                                                                \
        const char *unit_h_ = (hay), *unit_n_ = (needle);                                               \
        if (!unit_h_ || !strstr(unit_h_, unit_n_))                                                      \
            unit_fail(__FILE__, __LINE__, "ASSERT_CONTAINS(%s, %s): \"%s\" does not contain \"%s\"",    \
                      #hay, #needle, unit_h_ ? unit_h_ : "(null)", unit_n_);                            \
    } while (0)

/* A small deterministic PRNG for the randomized tests (xorshift64*). */
static inline uint64_t unit_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
