/* test_arena.c - a room's Lua allocator: slabs for small blocks, malloc for
 * the rest, lua_Alloc semantics, everything freed by arena_release (ASan
 * checks that nothing leaks and that copies stay in bounds). */
#include "unit.h"

#include "arena.h"

#include <string.h>

/* 8 bytes, as LuaJIT's own allocator (lj_alloc.c, MALLOC_ALIGNMENT) */
TEST(arena_small_blocks_are_8_aligned_distinct_and_writable)
{
    arena a = {0};
    char *p[64];
    for (int i = 0; i < 64; i++) {
        size_t n = (size_t)(i % 16 + 1) * 16 - (size_t)(i % 3) * 4; /* sizes of every 8-byte class */
        p[i] = arena_realloc(&a, NULL, 0, n);
        ASSERT_NOT_NULL(p[i]);
        ASSERT_EQ((uintptr_t)p[i] % 8, 0);
        memset(p[i], i, n);
    }
    for (int i = 0; i < 64; i++) ASSERT_EQ((unsigned char)p[i][0], (unsigned char)i); /* no overlap */
    ASSERT(a.slab_bytes >= 4096);
    arena_release(&a);
    ASSERT_EQ(a.slab_bytes, 0);
}

TEST(arena_freed_block_is_reused_by_its_class)
{
    arena a = {0};
    void *p = arena_realloc(&a, NULL, 0, 40);
    ASSERT_NULL(arena_realloc(&a, p, 40, 0));
    ASSERT(arena_realloc(&a, NULL, 0, 33) == p); /* 33..48 bytes: the same class */
    void *q = arena_realloc(&a, NULL, 0, 40);
    ASSERT(q != p);
    arena_release(&a);
}

TEST(arena_a_larger_free_block_is_split_when_a_class_is_empty)
{
    arena a = {0};
    char *p = arena_realloc(&a, NULL, 0, 64);
    size_t slabs = a.slab_bytes;
    char *bump = a.bump;
    ASSERT_NULL(arena_realloc(&a, p, 64, 0));
    ASSERT(arena_realloc(&a, NULL, 0, 16) == p);      /* the front of the 64-byte hole */
    ASSERT(arena_realloc(&a, NULL, 0, 48) == p + 16); /* its rest, a 48-byte block */
    ASSERT_EQ(a.slab_bytes, slabs);                   /* no new space taken: no new slab */
    ASSERT(a.bump == bump);                           /* nor carved from the current one */
    arena_release(&a);
}

TEST(arena_shrinking_frees_the_tail)
{
    arena a = {0};
    char *p = arena_realloc(&a, NULL, 0, 128);
    ASSERT(arena_realloc(&a, p, 128, 32) == p);
    ASSERT(arena_realloc(&a, NULL, 0, 96) == p + 32); /* the 96 bytes it gave back */
    arena_release(&a);
}

TEST(arena_grow_and_shrink_keep_the_bytes)
{
    arena a = {0};
    char *p = arena_realloc(&a, NULL, 0, 20);
    memcpy(p, "0123456789abcdefghi", 20);
    char *q = arena_realloc(&a, p, 20, 200); /* small -> bigger class: moved, copied */
    ASSERT_MEM_EQ(q, "0123456789abcdefghi", 20);
    char *r = arena_realloc(&a, q, 200, 5000); /* small -> malloc */
    ASSERT_MEM_EQ(r, "0123456789abcdefghi", 20);
    memset(r + 20, 'x', 4980);
    char *s = arena_realloc(&a, r, 5000, 9000); /* malloc -> malloc */
    ASSERT_EQ(s[4999], 'x');
    char *t = arena_realloc(&a, s, 9000, 100); /* malloc -> small: copied */
    ASSERT_MEM_EQ(t, "0123456789abcdefghi", 20);
    char *u = arena_realloc(&a, t, 100, 10); /* shrinking in the slabs never moves */
    ASSERT(u == t);
    ASSERT_NULL(arena_realloc(&a, u, 10, 0));
    arena_release(&a);
}

TEST(arena_large_blocks_are_malloc_and_freed_by_lua)
{
    arena a = {0};
    void *big = arena_realloc(&a, NULL, 0, 100000);
    ASSERT_NOT_NULL(big);
    ASSERT_EQ(a.slab_bytes, 0); /* no slab for it */
    ASSERT_NULL(arena_realloc(&a, big, 100000, 0));
    arena_release(&a);
}

TEST(arena_thousands_of_objects_then_release_frees_all_slabs)
{
    arena a = {0};
    for (int i = 0; i < 5000; i++) ASSERT_NOT_NULL(arena_realloc(&a, NULL, 0, (size_t)(i % 256) + 1));
    ASSERT(a.slab_bytes > 100 * 4096);
    arena_release(&a); /* ASan: a leak here would fail the run */
    ASSERT_NULL(a.slabs);
}
