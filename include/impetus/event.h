/*
 * impetus/event.h - threads, posted events, timers and thread pools
 *
 * impetusd runs one scheduler thread, a few I/O loops and a spool thread,
 * each an event loop that never blocks, plus two thread pools: CPU (for
 * work such as signing) and IO (for blocking file or network work). State
 * belongs to one loop; to act on another loop's state, post an event to
 * it. A module follows the same rule: a pool job or another thread never
 * touches a loop's data, it posts.
 */
#ifndef IMPETUS_EVENT_H
#define IMPETUS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_loop;
struct imp_timer;

typedef void (*imp_event_fn)(void *arg);

/* The scheduler loop (queues, DNS, logs, configuration). Any thread. */
struct imp_loop *imp_loop_scheduler(void);
/* imp_loop_io - I/O loop i (0 <= i < imp_loop_io_count()), or NULL. Any thread. */
struct imp_loop *imp_loop_io(size_t i);
size_t imp_loop_io_count(void);
/* imp_loop_current - the loop of the calling thread, or NULL on a pool or foreign thread. */
struct imp_loop *imp_loop_current(void);

/*
 * imp_post - run fn(arg) on loop's thread soon, after what is already
 * queued there. Any thread; never blocks, never fails. When the daemon
 * stops before fn ran, fn is not run: arg must not need it to be freed
 * at shutdown (or be freed by the instance's fini).
 */
void imp_post(struct imp_loop *loop, imp_event_fn fn, void *arg);
/*
 * imp_dispatch - imp_post, except that on loop's own thread fn(arg) runs
 * at once, before imp_dispatch returns (Momentum's "schedule, or dispatch
 * now when already there"). Any thread; never blocks.
 */
void imp_dispatch(struct imp_loop *loop, imp_event_fn fn, void *arg);

/*
 * imp_timer_add - run fn(arg) on the calling loop's thread after ms
 * milliseconds; with periodic, every ms milliseconds until cancelled.
 * Returns the timer, or NULL when the caller is not on a loop thread.
 * A one-shot timer frees itself after it fires (do not cancel it then).
 * A periodic timer of 0 ms runs every millisecond.
 */
struct imp_timer *imp_timer_add(uint64_t ms, bool periodic, imp_event_fn fn, void *arg);
/*
 * imp_timer_cancel - stop and free a timer that has not fired (or a
 * periodic one). On the loop that added it it is gone when this returns
 * (a periodic timer may cancel itself from its fn); from another thread
 * the cancel is posted to that loop, so fn may still run once meanwhile.
 */
void imp_timer_cancel(struct imp_timer *t);

/* Thread pools: CPU-bound work and blocking I/O. Sizes: CPU_Threads, IO_Threads. */
enum imp_pool { IMP_POOL_CPU, IMP_POOL_IO };

/*
 * imp_pool_submit - run job(arg) on a thread of the pool, then done(arg)
 * on the calling loop's thread (done may be NULL). From a loop thread
 * only: returns 0, -EINVAL off a loop, -ENOTCONN when the daemon has
 * no such pool (a tool or test without a runtime), or -ESHUTDOWN in the
 * fini of the last generation at shutdown, when the pools are gone. Jobs must not touch
 * loop state; they hand results back through arg to done.
 *
 * A job holds no reference to the instance or generation that submitted
 * it: a reload may finalise the instance (fini) while the job still runs
 * or before done is called. An instance that submits jobs keeps what the
 * jobs use in memory of its own with a reference count (rcpt_filter and
 * json_log in modules/ show how), and fini must not free it under them.
 */
int imp_pool_submit(enum imp_pool pool, imp_event_fn job, imp_event_fn done, void *arg);

/* imp_now_ms - the monotonic clock (CLOCK_MONOTONIC) in milliseconds; any thread. */
uint64_t imp_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
