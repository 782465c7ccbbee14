/* test_clock.c - the virtual clock of `luaparty test` (src/clock.c): timers
 * fire in due order (ties in the order they were set), repeat, stop, and
 * only when the clock is moved; now_ms() and clock_loop_now() follow it.
 * Without it, the calls are libuv's. */
#include "unit.h"

#include "clock.h"
#include "util.h"

#include <uv.h>

static char fired[64];
static size_t nfired;

static void record(uv_timer_t *t)
{
    ASSERT(nfired < sizeof fired - 1);
    fired[nfired++] = *(const char *)t->data;
    fired[nfired] = 0;
}

/* A timer that stops another when it fires (as a room's close stops its socket's). */
static uv_timer_t *victim;
static void stop_victim(uv_timer_t *t)
{
    record(t);
    clock_timer_stop(victim);
}

TEST(clock_virtual_timers_fire_in_order_when_moved)
{
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    uv_timer_t a, b, c, r;
    uv_timer_init(&loop, &a);
    uv_timer_init(&loop, &b);
    uv_timer_init(&loop, &c);
    uv_timer_init(&loop, &r);
    a.data = "a";
    b.data = "b";
    c.data = "c";
    r.data = "r";
    nfired = 0;
    fired[0] = 0;

    clock_virtual_start(1000);
    ASSERT(clock_is_virtual());
    ASSERT_EQ(now_ms(), 1000);
    ASSERT_EQ(clock_loop_now(&loop), 1000);
    clock_timer_start(&a, record, 50, 0);
    clock_timer_start(&b, record, 20, 0);
    clock_timer_start(&c, record, 50, 0); /* same time as a, set after it */
    clock_timer_start(&r, record, 30, 30); /* repeats */
    ASSERT(!uv_is_active((uv_handle_t *)&a)); /* nothing in libuv */
    uint64_t due = 0;
    ASSERT(clock_virtual_next(&due));
    ASSERT_EQ(due, 1020);

    ASSERT(!clock_virtual_fire(1019)); /* nothing due yet: the clock stays */
    ASSERT_EQ(now_ms(), 1000);
    while (clock_virtual_fire(1100)) {}
    ASSERT_STR_EQ(fired, "brac" "rr"); /* 1020 b, 1030 r, 1050 a c (set order), 1060 r, 1090 r */
    ASSERT_EQ(now_ms(), 1090);         /* the last timer's time; the caller moves it on */
    clock_virtual_set(1100);
    ASSERT_EQ(clock_loop_now(&loop), 1100);
    clock_virtual_set(50); /* never back */
    ASSERT_EQ(now_ms(), 1100);

    /* setting a timer again replaces it; stopping drops it */
    clock_timer_start(&a, record, 10, 0);
    clock_timer_start(&a, record, 40, 0);
    clock_timer_stop(&r);
    nfired = 0;
    while (clock_virtual_fire(2000)) {}
    ASSERT_STR_EQ(fired, "a");
    ASSERT_EQ(now_ms(), 1140);
    ASSERT(!clock_virtual_next(&due));

    /* a callback may stop another timer due at the same time */
    a.data = "x";
    victim = &b;
    clock_timer_start(&a, stop_victim, 10, 0);
    clock_timer_start(&b, record, 10, 0);
    nfired = 0;
    while (clock_virtual_fire(2000)) {}
    ASSERT_STR_EQ(fired, "x");

    clock_timer_start(&c, record, 5, 0);
    clock_virtual_stop(); /* drops its timers, back to the real clocks */
    ASSERT(!clock_is_virtual());
    ASSERT(now_ms() > 1600000000000ULL);

    /* without the virtual clock: libuv's timers */
    clock_timer_start(&a, record, 100000, 0);
    ASSERT(uv_is_active((uv_handle_t *)&a));
    clock_timer_stop(&a);
    ASSERT(!uv_is_active((uv_handle_t *)&a));
    uv_close((uv_handle_t *)&a, NULL);
    uv_close((uv_handle_t *)&b, NULL);
    uv_close((uv_handle_t *)&c, NULL);
    uv_close((uv_handle_t *)&r, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}
