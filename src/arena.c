/* arena.c - the memory of one room's Lua state.
 *
 * A room's Lua heap is about a thousand small objects (strings, tables,
 * closures, most under 128 bytes). From malloc each pays a header and,
 * when the room closes, a free() of its own with glibc's consolidation work
 * (closing 10,000 rooms took a second). Small blocks come instead from
 * 2 KiB slabs: carved in order, returned to a free list per 16-byte size
 * class, reused from there; closing the room frees its slabs, not its
 * objects. (2 KiB: an idle room leaves half its last slab unused, and
 * bench/rooms.mjs measured 2 KB less RSS per room than with 4 KiB; with
 * 1 KiB the slabs' own overhead and unusable tails cost more again.) Larger blocks (the state itself, big strings and arrays) go to
 * malloc. One room's arena is only ever used by its owner's thread. */
#include "arena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLAB_SIZE 2048

struct arena_slab {
    arena_slab *next;
    uint64_t pad; /* blocks start 16-byte aligned */
};

static size_t class_of(size_t size) { return (size + 15) / 16 - 1; }
static size_t block_size(size_t cls) { return (cls + 1) * 16; }

static void *small_alloc(arena *a, size_t size)
{
    size_t cls = class_of(size);
    void *p = a->free[cls];
    if (p) {
        memcpy(&a->free[cls], p, sizeof(void *));
        return p;
    }
    size_t need = block_size(cls);
    if ((size_t)(a->end - a->bump) < need) {
        arena_slab *s = malloc(SLAB_SIZE);
        if (!s) return NULL;
        s->next = a->slabs;
        a->slabs = s;
        a->slab_bytes += SLAB_SIZE;
        a->bump = (char *)(s + 1);
        a->end = (char *)s + SLAB_SIZE;
    }
    p = a->bump;
    a->bump += need;
    return p;
}

static void small_free(arena *a, void *p, size_t size)
{
    size_t cls = class_of(size);
    memcpy(p, &a->free[cls], sizeof(void *));
    a->free[cls] = p;
}

void *arena_realloc(arena *a, void *p, size_t osize, size_t nsize)
{
    bool was_small = p && osize <= ARENA_SMALL, small = nsize <= ARENA_SMALL;
    if (nsize == 0) {
        if (was_small) small_free(a, p, osize);
        else free(p);
        return NULL;
    }
    if (!p) return small ? small_alloc(a, nsize) : malloc(nsize);
    /* It still fits: shrinking never fails (Lua relies on that). The block
     * then counts as the smaller class and goes back to that free list. */
    if (was_small && small && class_of(nsize) <= class_of(osize)) return p;
    if (!was_small && !small) return realloc(p, nsize);
    void *q = small ? small_alloc(a, nsize) : malloc(nsize);
    if (!q) return NULL;
    memcpy(q, p, osize < nsize ? osize : nsize);
    if (was_small) small_free(a, p, osize);
    else free(p);
    return q;
}

void arena_release(arena *a)
{
    for (arena_slab *s = a->slabs, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    memset(a, 0, sizeof *a);
}
