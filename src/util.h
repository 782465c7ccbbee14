/* util.h - small helpers shared by every file: checked allocation, strings,
 * random ids, and a string-keyed hash table. */
#ifndef LP_UTIL_H
#define LP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Fills out[37] with a random version-4 UUID (from the OS CSPRNG). */
void uuid_v4(char out[37]);
/* on: the following UUIDs come from a PRNG seeded with seed, so they repeat
 * from run to run (`luaparty test --seed`); off: from the CSPRNG again. */
void uuid_seed(bool on, uint64_t seed);
/* Decodes %XX and (when plus_is_space) '+' in place; returns the new length. */
size_t url_decode(char *s, size_t len, bool plus_is_space);
bool str_ieq(const char *a, const char *b);
/* True if s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
bool utf8_valid(const uint8_t *s, size_t len);
/* The length of the longest prefix of s that is well-formed UTF-8: a close
 * reason cut to fit a frame must not end inside a character. */
size_t utf8_valid_prefix(const uint8_t *s, size_t len);
bool str_ieqn(const char *a, size_t alen, const char *b);
/* "host:port" -> host (NUL-terminated, fits cap) and port (0-65535, all
 * digits); false if addr is not one. */
bool host_port_split(const char *addr, char *host, size_t cap, int *port);
/* Levenshtein distance, for "did you mean" messages. */
size_t edit_distance(const char *a, const char *b);
/* Reads a whole file; returns NULL and sets errno on failure. */
char *read_file(const char *path, size_t *len);
uint64_t now_ms(void);     /* wall clock, ms since the epoch */
/* While clock is set, now_ms() returns *clock: the virtual clock of
 * `luaparty test` (clock.c); NULL: the wall clock again. */
void now_ms_follow(const uint64_t *clock);

/* dict: string keys (binary-safe, copied) -> void* values. Open addressing
 * with linear probing; deletion uses backward-shift so there are no
 * tombstones. Used by the room registry and the storage write buffer. */
typedef struct dict_entry {
    char *key;
    size_t klen;
    uint64_t hash;
    void *val;
} dict_entry;

typedef struct dict {
    dict_entry *slots;
    size_t cap, count;
} dict;

void dict_init(dict *d);
void dict_free(dict *d, void (*free_val)(void *));
void *dict_get(const dict *d, const char *key, size_t klen);
/* The entry for key, or NULL (tells a NULL value from an absent key). */
dict_entry *dict_find(const dict *d, const char *key, size_t klen);
/* Returns the slot for key, creating it (val NULL) if missing. */
dict_entry *dict_upsert(dict *d, const char *key, size_t klen, bool *created);
/* Removes key; returns its value (NULL if absent). */
void *dict_remove(dict *d, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; (e = dict_next(d, &i)); ) */
dict_entry *dict_next(const dict *d, size_t *i);

/* Copies src into dst[cap], cut to fit, always terminated (no printf:
 * the request path runs this for every request). */
void str_copy(char *dst, size_t cap, const char *src);

/* Spare blocks of one size, kept by one thread for the structs made and
 * freed once per message (a room's events and tasks, small chunks): taking
 * one is a pointer swap instead of calloc + free. */
typedef struct pool {
    void *head;       /* spare blocks, linked through their first word */
    unsigned n;
} pool;
/* A zeroed block of `size` bytes (the same size every call on a pool). */
void *pool_get(pool *p, size_t size);
/* A spare block as it was left, or NULL if there is none. */
void *pool_pop(pool *p);
void pool_put(pool *p, void *block);
void pool_drain(pool *p);

/* The calling thread's spare blocks, for what is made and freed once per
 * request or message and may travel between workers (requests, responses,
 * exchanges, small chunks): a block freed on another thread than the one
 * that made it joins that thread's spares, which serve as well. Sizes in
 * classes of 64 bytes up to THREAD_CACHE_MAX; larger go to malloc. Every
 * thread that used it calls thread_cache_drain when it ends. */
#define THREAD_CACHE_MAX 256
void *thread_cache_get(size_t size);  /* zeroed */
void *thread_cache_take(size_t size); /* as it was left */
void thread_cache_put(void *block, size_t size);
void thread_cache_drain(void);

/* "party\0id" into out (cap bytes): a key no other (party, id) pair shares,
 * since a party name has no NUL. Returns its length, 0 if it does not fit. */
size_t room_key(char *out, size_t cap, const char *party, const char *id);

#endif
