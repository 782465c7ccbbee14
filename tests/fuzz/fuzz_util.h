/* fuzz_util.h - helpers shared by the fuzz targets: the input's split
 * schedule, a check that stops the run, and a reference UTF-8 validator. */
#ifndef LP_FUZZ_UTIL_H
#define LP_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed invariant is a finding: say which and abort (libFuzzer keeps the input). */
#define FUZZ_CHECK(cond, ...)                                                     \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "\nFUZZ CHECK FAILED at %s:%d: %s\n  ", __FILE__,      \
                    __LINE__, #cond);                                             \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* The first byte of an input says how many control bytes follow (low 3
 * bits); its high bits are flags for the target. The control bytes give the
 * sizes of the pieces the rest is fed in (cycled), so the fuzzer explores
 * every way a TCP stream can be cut. No control bytes: one piece. */
typedef struct split {
    uint8_t flags;          /* data[0] >> 3 */
    const uint8_t *ctl;
    size_t nctl, next;
    const uint8_t *data;    /* the stream */
    size_t size;
} split;

static inline bool split_init(split *s, const uint8_t *data, size_t size)
{
    if (size < 1) return false;
    s->flags = data[0] >> 3;
    s->nctl = data[0] & 7;
    if (s->nctl > size - 1) s->nctl = size - 1;
    s->ctl = data + 1;
    s->next = 0;
    s->data = data + 1 + s->nctl;
    s->size = size - 1 - s->nctl;
    return true;
}

/* Size of the next piece (at least 1, at most `left`). */
static inline size_t split_next(split *s, size_t left)
{
    size_t n = s->nctl ? (size_t)s->ctl[s->next++ % s->nctl] + 1 : left;
    return n < left ? n : left;
}

/* The control byte used for the piece just returned (for per-piece actions). */
static inline uint8_t split_ctl(const split *s)
{
    return s->nctl ? s->ctl[(s->next + s->nctl - 1) % s->nctl] : 0;
}

/* Well-formed UTF-8 after the Unicode standard's table 3-7, written
 * independently of util.c's utf8_valid so the two can be compared. */
static inline bool ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c <= 0x7f) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return false;
        }
        if (n - i - 1 < need) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return false;
        i += need + 1;
    }
    return true;
}

#endif
