/* arena.h - the memory of one room's Lua state (see arena.c). */
#ifndef LP_ARENA_H
#define LP_ARENA_H

#include <stddef.h>

#define ARENA_SMALL 256 /* blocks up to this size come from slabs */
#define ARENA_CLASSES (ARENA_SMALL / 8)

typedef struct arena_slab arena_slab;

typedef struct arena {
    void *free[ARENA_CLASSES]; /* freed blocks by 8-byte size class, linked through their first word */
    arena_slab *slabs;         /* every slab, freed together by arena_release */
    char *bump, *end;          /* the unused rest of the newest slab */
    size_t slab_bytes;         /* what the slabs take (tests, metrics) */
} arena;

/* lua_Alloc semantics: p NULL allocates, nsize 0 frees; osize is the size
 * the block was allocated (or last resized) with, which Lua always passes.
 * Returns NULL when out of memory (never when nsize is 0). */
void *arena_realloc(arena *a, void *p, size_t osize, size_t nsize);
/* Frees every slab at once; the blocks in them need no free of their own
 * (call after lua_close, which has freed the large blocks). */
void arena_release(arena *a);

#endif
