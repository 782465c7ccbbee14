/* test_buf.c - buf (growable buffer) and chunk (refcounted bytes). */
#include "unit.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>

TEST(buf_init_is_empty)
{
    buf b;
    buf_init(&b);
    ASSERT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, 0);
    buf_free(&b); /* freeing an empty buf is fine */
    ASSERT_NULL(b.data);
}

TEST(buf_append_binary_keeps_nul_terminator)
{
    buf b;
    buf_init(&b);
    buf_append(&b, "a\0b", 3);
    ASSERT_EQ(b.len, 3);
    ASSERT_MEM_EQ(b.data, "a\0b", 4); /* includes the terminator */
    buf_append(&b, "", 0);
    ASSERT_EQ(b.len, 3);
    ASSERT_EQ(b.data[3], 0);
    buf_appendstr(&b, "cd");
    ASSERT_BYTES_EQ(b.data, b.len, "a\0bcd", 5);
    ASSERT_EQ(b.data[5], 0);
    buf_free(&b);
}

TEST(buf_append_empty_to_empty_is_terminated)
{
    buf b;
    buf_init(&b);
    buf_append(&b, "", 0);
    ASSERT_NOT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.data[0], 0);
    buf_free(&b);
}

TEST(buf_printf_grows)
{
    buf b;
    buf_init(&b);
    char expect[16384];
    size_t elen = 0;
    for (int i = 0; i < 2000; i++) {
        buf_printf(&b, "%d,", i);
        elen += (size_t)snprintf(expect + elen, sizeof expect - elen, "%d,", i);
        ASSERT_EQ(b.len, elen);
        ASSERT(b.cap >= b.len + 1);
        ASSERT_EQ(b.data[b.len], 0);
    }
    ASSERT_STR_EQ(b.data, expect);
    buf_free(&b);
}

TEST(buf_printf_large_single_format)
{
    buf b;
    buf_init(&b);
    buf_appendstr(&b, "x=");
    char *big = malloc(100001);
    memset(big, 'q', 100000);
    big[100000] = 0;
    buf_printf(&b, "[%s]%d", big, 42);
    ASSERT_EQ(b.len, 2 + 1 + 100000 + 1 + 2);
    ASSERT_MEM_EQ(b.data, "x=[qq", 5);
    ASSERT_STR_EQ(b.data + b.len - 4, "q]42");
    free(big);
    buf_free(&b);
}

TEST(buf_printf_empty_result)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "%s", "");
    ASSERT_EQ(b.len, 0);
    ASSERT_NOT_NULL(b.data);
    ASSERT_STR_EQ(b.data, "");
    buf_free(&b);
}

TEST(buf_reserve_keeps_content)
{
    buf b;
    buf_init(&b);
    buf_appendstr(&b, "hello");
    buf_reserve(&b, 10000);
    ASSERT(b.cap >= 10006);
    ASSERT_EQ(b.len, 5);
    ASSERT_STR_EQ(b.data, "hello");
    buf_free(&b);
}

TEST(buf_steal_returns_string_and_resets)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "%s-%d", "id", 7);
    char *s = buf_steal(&b);
    ASSERT_STR_EQ(s, "id-7");
    ASSERT_NULL(b.data);
    ASSERT_EQ(b.len, 0);
    ASSERT_EQ(b.cap, 0);
    free(s);
}

/* buf.h: "Gives the buffer's memory to the caller (NUL-terminated)". */
TEST(buf_steal_empty_is_nul_terminated)
{
    /* Leave a dirty 64-byte block for malloc to hand back (ASan fills new
     * blocks with 0xbe anyway), so an unterminated result shows. */
    char *dirty = malloc(64);
    memset(dirty, 0xaa, 64);
    free(dirty);
    buf b;
    buf_init(&b);
    char *s = buf_steal(&b);
    ASSERT_NOT_NULL(s);
    char first = s[0];
    free(s);
    ASSERT_EQ(first, 0);
}

TEST(chunk_from_copies)
{
    char src[] = "abc\0def";
    chunk *c = chunk_from(src, 7);
    src[0] = 'X';
    ASSERT_EQ(c->refs, 1);
    ASSERT_EQ(c->len, 7);
    ASSERT_EQ(c->off, 0);
    ASSERT_EQ(c->opcode, 0);
    ASSERT_MEM_EQ(chunk_bytes(c), "abc\0def", 7);
    chunk_unref(c);
}

TEST(chunk_refcount)
{
    chunk *c = chunk_new(16);
    memset(c->data, 7, 16);
    ASSERT_EQ(c->refs, 1);
    chunk *r = chunk_ref(c);
    ASSERT(r == c);
    ASSERT_EQ(c->refs, 2);
    chunk_ref(c);
    ASSERT_EQ(c->refs, 3);
    chunk_unref(c);
    ASSERT_EQ(c->refs, 2);
    chunk_unref(c);
    ASSERT_EQ(c->refs, 1);
    ASSERT_EQ(c->data[15], 7); /* still alive: ASan would flag a use after free */
    chunk_unref(c);            /* freed now: LeakSanitizer would flag a leak otherwise */
    chunk_unref(NULL);         /* harmless */
}

TEST(chunk_empty)
{
    chunk *c = chunk_from(NULL, 0);
    ASSERT_EQ(c->len, 0);
    chunk_unref(c);
    c = chunk_new(0);
    ASSERT_EQ(c->len, 0);
    chunk_unref(c);
}
