/* util.c - allocation, string helpers, UUIDs and the dict hash table. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

static void oom(void)
{
    fputs("luaparty: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) oom();
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* uuid_seed: splitmix64's state, and whether it is in use. One thread
 * seeds it (luaparty test runs on one); servers never do. */
static uint64_t seeded_state;
static bool seeded;

void uuid_seed(bool on, uint64_t seed)
{
    seeded = on;
    seeded_state = seed;
}

static uint64_t splitmix64(void)
{
    uint64_t z = (seeded_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void uuid_v4(char out[37])
{
    uint8_t b[16];
    size_t got = seeded ? sizeof b : 0;
    for (size_t i = 0; seeded && i < sizeof b; i += 8) {
        uint64_t v = splitmix64();
        memcpy(b + i, &v, 8);
    }
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) abort(); /* the kernel always has getrandom on Debian 12 */
        got += (size_t)n;
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

size_t url_decode(char *s, size_t len, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len &&
            (h = hexval((unsigned char)s[i + 1])) >= 0 && (l = hexval((unsigned char)s[i + 2])) >= 0) {
            s[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            s[o++] = ' ';
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = 0;
    return o;
}

bool str_ieq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

size_t utf8_valid_prefix(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII 32, then 8 bytes at a time: most text a party sends is
         * ASCII, and conn:send checks every text message */
        const uint64_t high = 0x8080808080808080ULL;
        while (i + 32 <= len) {
            uint64_t w[4];
            memcpy(w, s + i, 32);
            if ((w[0] | w[1] | w[2] | w[3]) & high) break;
            i += 32;
        }
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & high) break;
            i += 8;
        }
        if (i >= len) break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) n = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) n = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) n = 3, cp = c & 0x07;
        else return i;
        if (i + n >= len) return i; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += n + 1;
    }
    return len;
}

bool utf8_valid(const uint8_t *s, size_t len) { return utf8_valid_prefix(s, len) == len; }

bool str_ieqn(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

bool host_port_split(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= cap || !colon[1]) return false;
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == '-' || colon[1] == '+' || v < 0 || v > 65535) return false;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    *port = (int)v;
    return true;
}

size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            data = xrealloc(data, cap);
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(data);
        errno = EIO;
        return NULL;
    }
    data[n] = 0;
    if (len) *len = n;
    return data;
}

/* Set by clock.c while `luaparty test` runs on its virtual clock. */
static const uint64_t *virtual_now;

void now_ms_follow(const uint64_t *clock) { virtual_now = clock; }

uint64_t now_ms(void)
{
    if (virtual_now) return *virtual_now;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- dict ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void dict_init(dict *d)
{
    d->slots = NULL;
    d->cap = d->count = 0;
}

void dict_free(dict *d, void (*free_val)(void *))
{
    for (size_t i = 0; i < d->cap; i++) {
        if (!d->slots[i].key) continue;
        free(d->slots[i].key);
        if (free_val) free_val(d->slots[i].val);
    }
    free(d->slots);
    dict_init(d);
}

static dict_entry *find_slot(const dict *d, const char *key, size_t klen, uint64_t h)
{
    size_t mask = d->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        dict_entry *e = &d->slots[i];
        if (!e->key) return e;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) return e;
    }
}

static void grow(dict *d)
{
    dict old = *d;
    d->cap = old.cap ? old.cap * 2 : 16;
    d->slots = xcalloc(d->cap, sizeof(dict_entry));
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key) *find_slot(d, old.slots[i].key, old.slots[i].klen, old.slots[i].hash) = old.slots[i];
    free(old.slots);
}

dict_entry *dict_find(const dict *d, const char *key, size_t klen)
{
    if (!d->count) return NULL;
    dict_entry *e = find_slot(d, key, klen, hash_bytes(key, klen));
    return e->key ? e : NULL;
}

void *dict_get(const dict *d, const char *key, size_t klen)
{
    dict_entry *e = dict_find(d, key, klen);
    return e ? e->val : NULL;
}

dict_entry *dict_upsert(dict *d, const char *key, size_t klen, bool *created)
{
    if ((d->count + 1) * 4 > d->cap * 3) grow(d);
    uint64_t h = hash_bytes(key, klen);
    dict_entry *e = find_slot(d, key, klen, h);
    if (created) *created = !e->key;
    if (!e->key) {
        e->key = xstrndup(key, klen);
        e->klen = klen;
        e->hash = h;
        e->val = NULL;
        d->count++;
    }
    return e;
}

void *dict_remove(dict *d, const char *key, size_t klen)
{
    if (!d->count) return NULL;
    dict_entry *e = find_slot(d, key, klen, hash_bytes(key, klen));
    if (!e->key) return NULL;
    void *val = e->val;
    free(e->key);
    e->key = NULL;
    d->count--;
    /* Backward-shift the following run so probing never stops early. */
    size_t mask = d->cap - 1, hole = (size_t)(e - d->slots);
    for (size_t i = (hole + 1) & mask; d->slots[i].key; i = (i + 1) & mask) {
        size_t home = d->slots[i].hash & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            d->slots[hole] = d->slots[i];
            d->slots[i].key = NULL;
            hole = i;
        }
    }
    return val;
}

dict_entry *dict_next(const dict *d, size_t *i)
{
    for (; *i < d->cap; (*i)++)
        if (d->slots[*i].key) return &d->slots[(*i)++];
    return NULL;
}

void str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Spare blocks per pool: more in flight go back to malloc. Under
 * AddressSanitizer none is kept: a spare stays addressable, so a use after
 * its put would go unseen, and the sanitizer builds exist to see it. */
#define POOL_KEEP 256
#ifdef __SANITIZE_ADDRESS__
#define POOL_KEEPS_NONE true
#else
#define POOL_KEEPS_NONE false
#endif

void *pool_pop(pool *p)
{
    void *b = p->head;
    if (!b) return NULL;
    memcpy(&p->head, b, sizeof(void *));
    p->n--;
    return b;
}

void *pool_get(pool *p, size_t size)
{
    void *b = pool_pop(p);
    if (!b) return xcalloc(1, size);
    memset(b, 0, size);
    return b;
}

void pool_put(pool *p, void *block)
{
    if (!block) return;
    if (POOL_KEEPS_NONE || p->n >= POOL_KEEP) {
        free(block);
        return;
    }
    memcpy(block, &p->head, sizeof(void *));
    p->head = block;
    p->n++;
}

void pool_drain(pool *p)
{
    while (p->head) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof(void *));
        free(b);
    }
    p->n = 0;
}

#define CACHE_CLASS 64
static _Thread_local pool thread_cache[THREAD_CACHE_MAX / CACHE_CLASS];

static pool *cache_class(size_t size) { return size && size <= THREAD_CACHE_MAX ? &thread_cache[(size - 1) / CACHE_CLASS] : NULL; }

void *thread_cache_take(size_t size)
{
    pool *p = cache_class(size);
    if (!p) return xmalloc(size);
    void *b = pool_pop(p);
    if (b) return b;
    /* the whole class, so the block serves any size of it later; under
     * AddressSanitizer (no spares) the exact size, so a write past it shows */
    return xmalloc(POOL_KEEPS_NONE ? size : (size + CACHE_CLASS - 1) / CACHE_CLASS * CACHE_CLASS);
}

void *thread_cache_get(size_t size)
{
    void *b = thread_cache_take(size);
    memset(b, 0, size);
    return b;
}

void thread_cache_put(void *block, size_t size)
{
    pool *p = cache_class(size);
    if (p) pool_put(p, block);
    else free(block);
}

void thread_cache_drain(void)
{
    for (size_t i = 0; i < THREAD_CACHE_MAX / CACHE_CLASS; i++) pool_drain(&thread_cache[i]);
}

size_t room_key(char *out, size_t cap, const char *party, const char *id)
{
    size_t pl = strlen(party), il = strlen(id);
    if (pl + 1 + il > cap) return 0;
    memcpy(out, party, pl);
    out[pl] = 0;
    memcpy(out + pl + 1, id, il);
    return pl + 1 + il;
}
