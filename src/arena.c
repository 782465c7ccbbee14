/* arena.c - the memory of one room's Lua state.
 *
 * A room's Lua heap is about a thousand small objects (strings, tables,
 * closures, most under 128 bytes). From malloc each pays a header and,
 * when the room closes, a free() of its own with glibc's consolidation work
 * (closing 10,000 rooms took a second). Small blocks come instead from
 * 2 KiB slabs: carved in order, returned to a free list per 8-byte size
 * class, reused from there (a block of a larger class is split when its
 * own list is empty); closing the room frees its slabs, not its
 * objects. (8 bytes: the alignment LuaJIT's own allocator gives, and half
 * the rounding of 16-byte classes: ~2 KB per room.) (2 KiB: an idle room leaves half its last slab unused, and
 * bench/rooms.mjs measured 2 KB less RSS per room than with 4 KiB; with
 * 1 KiB the slabs' own overhead and unusable tails cost more again.)
 * Larger blocks (the state itself, big strings and arrays) go to malloc.
 * One room's arena is only ever used by its owner's thread. */
#include "arena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLAB_SIZE 2048

struct arena_slab {
    arena_slab *next;
};

static size_t class_of(size_t size) { return (size + 7) / 8 - 1; }
static size_t block_size(size_t cls) { return (cls + 1) * 8; }

static void push_free(arena *a, void *p, size_t cls)
{
    memcpy(p, &a->free[cls], sizeof(void *));
    a->free[cls] = p;
}

static void *pop_free(arena *a, size_t cls)
{
    void *p = a->free[cls];
    if (p) memcpy(&a->free[cls], p, sizeof(void *));
    return p;
}

static void *small_alloc(arena *a, size_t size)
{
    size_t cls = class_of(size);
    void *p = pop_free(a, cls);
    if (p) return p;
    /* Before new space: a free block of a larger class, split, the rest
     * going to the free list of its size. The garbage a room makes while
     * it loads leaves such holes, which would otherwise wait for objects
     * of exactly their size (bench/rooms.mjs: a slab less per room). */
    for (size_t big = cls + 1; big < ARENA_CLASSES; big++) {
        if (!(p = pop_free(a, big))) continue;
        push_free(a, (char *)p + block_size(cls), big - cls - 1);
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


void *arena_realloc(arena *a, void *p, size_t osize, size_t nsize)
{
    bool was_small = p && osize <= ARENA_SMALL, small = nsize <= ARENA_SMALL;
    if (nsize == 0) {
        if (was_small) push_free(a, p, class_of(osize));
        else free(p);
        return NULL;
    }
    if (!p) return small ? small_alloc(a, nsize) : malloc(nsize);
    /* It still fits: shrinking never fails (Lua relies on that). The block
     * then counts as the smaller class; the rest is a free block. */
    if (was_small && small && class_of(nsize) <= class_of(osize)) {
        size_t oc = class_of(osize), nc = class_of(nsize);
        if (nc < oc) push_free(a, (char *)p + block_size(nc), oc - nc - 1);
        return p;
    }
    if (!was_small && !small) return realloc(p, nsize);
    void *q = small ? small_alloc(a, nsize) : malloc(nsize);
    if (!q) return NULL;
    memcpy(q, p, osize < nsize ? osize : nsize);
    if (was_small) push_free(a, p, class_of(osize));
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
