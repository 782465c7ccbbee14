/* clock.h - the time rooms and their timers run on.
 *
 * In a server: the loop's clock (uv_now) and libuv timers. Under
 * `luaparty test` the process runs on a virtual clock instead
 * (clock_virtual_start): clock_loop_now() and now_ms() return it, and the
 * timers set through clock_timer_start are kept here rather than in libuv,
 * so they fire only when the test moves the clock (clock_virtual_fire).
 * Alarms, crons, idle unloading and socket receive timeouts use these, so a
 * test runs a minute of them in microseconds, always in the same order. */
#ifndef LP_CLOCK_H
#define LP_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The loop's clock in ms (uv_now), or the virtual clock's. */
uint64_t clock_loop_now(uv_loop_t *loop);
/* The CPU time the calling thread has used, in ns (a system call: ~0.2 us). */
uint64_t clock_thread_cpu_ns(void);
/* uv_timer_start / uv_timer_stop, or their virtual twins. t must have been
 * initialised with uv_timer_init (its close stays the caller's). */
void clock_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t timeout, uint64_t repeat);
void clock_timer_stop(uv_timer_t *t);

/* From now on the process runs on a virtual clock reading epoch_ms (ms
 * since the epoch); one thread only. Stop drops its timers and goes back
 * to the real clocks. */
void clock_virtual_start(uint64_t epoch_ms);
void clock_virtual_stop(void);
/* True while the virtual clock runs: timers fire exactly on time, with no
 * drift between the loop's clock and the wall clock to allow for. */
bool clock_is_virtual(void);
/* The earliest virtual timer's due time; false if none is set. */
bool clock_virtual_next(uint64_t *due);
/* If the earliest timer is due at or before `until`, moves the clock to its
 * due time and runs it (a repeating one is set again first); false if no
 * timer is due by then. */
bool clock_virtual_fire(uint64_t until);
/* Moves the virtual clock forward to ms (never back). */
void clock_virtual_set(uint64_t ms);

#endif
