/*
 * loop.h - an event loop thread with a cross-thread inbox
 *
 * A struct loop is one libevent event_base run by exactly one thread, plus
 * an inbox that any thread may post typed messages to. This is the only way
 * work crosses threads in impetus: the state a loop's callbacks touch
 * belongs to that loop's thread, and everyone else asks by posting.
 *
 * Messages are typed: a post names a struct loop_kind (its name, which
 * threads send it, which loop roles own it, its handler) instead of a bare
 * function pointer. Core only carries the kind and checks it; the list of
 * impetus's own kinds lives above core, in src/msgs/msgs.def. Each loop is
 * created with a role (one bit the layer above gives meaning to: scheduler,
 * I/O, spool). In debug and sanitizer builds (!NDEBUG or IMPETUS_SANITIZE)
 * a post to a loop whose role does not own the kind, or a handler run on
 * such a loop, prints the kind and both loops and aborts: ownership is
 * decided, never guessed. Release builds compile the checks out, so a post
 * costs what an untyped one did (one pointer per post).
 *
 * The inbox is a lock-free multi-producer, single-consumer stack: producers
 * push with one compare-and-swap, the owner takes the whole stack with one
 * exchange and reverses it, so posts run in the order they were made by a
 * given producer. Wake-ups are coalesced: only the post that finds the
 * inbox idle writes to the eventfd.
 *
 * After the owner has run a drained batch it calls the drain hook, if one
 * is set; the spool thread uses it to write and fsync everything that
 * arrived as one group.
 *
 * Timers and sockets use libevent directly on loop_base().
 */
#ifndef IMPETUS_CORE_LOOP_H
#define IMPETUS_CORE_LOOP_H

#include <stdbool.h>

struct event_base;
struct loop;

typedef void (*loop_fn)(void *arg);

/*
 * A message kind. Immutable, defined once in a table (src/msgs/msgs.c for
 * impetus's own kinds); posts carry a pointer to it.
 */
struct loop_kind {
	const char *name;	/* "smtp.deliver": shows in the owner check's abort */
	const char *from;	/* the threads that send it, for the docs and the abort */
	unsigned owners;	/* mask of loop roles whose thread may run the handler */
	loop_fn handler;	/* runs on the owner loop with the post's arg */
};

/* loop_owner_checks - true when this build checks message owners (debug or sanitizer). */
bool loop_owner_checks(void);

/* loop_new - create a loop (not running yet) with role (one bit); name shows in thread names and logs. */
struct loop *loop_new(const char *name, unsigned role);
/* loop_start - run the loop on a new thread. Returns 0 or -errno. */
int loop_start(struct loop *lp);
/* loop_run - run the loop on the calling thread until loop_stop(). */
void loop_run(struct loop *lp);
/*
 * loop_post - run kind->handler(arg) on lp's thread soon. Any thread; never
 * blocks. Debug/sanitizer builds abort when lp's role does not own kind.
 * Callers outside core use the typed wrapper msgs_post (src/msgs/msgs.h).
 */
void loop_post(struct loop *lp, const struct loop_kind *kind, void *arg);
/*
 * loop_post_lazy - as loop_post, but without waking lp now: the post runs
 * when lp next wakes for anything else, and at most about 10 ms later (a
 * timer on the calling loop then wakes lp if the post is still waiting).
 * For work nobody waits for, such as the spool's delivery-state records:
 * it rides with the next batch instead of costing lp a wake-up and a
 * context switch of its own. Ordering with the caller's other posts to lp
 * is kept. From a thread without a loop, or to its own loop, it is
 * loop_post. Only from the calling loop's thread.
 */
void loop_post_lazy(struct loop *lp, const struct loop_kind *kind, void *arg);
/*
 * loop_post_batched - as loop_post, but the wake-up waits until the
 * calling loop's current callbacks are over: the posts a loop makes to lp
 * while it handles one batch of work (the spool's answers to a group
 * commit, an I/O loop's messages for the queue) cost lp one wake-up, not
 * one each. The post itself is in lp's inbox at once, in order. Never
 * from code that then waits for lp's answer on the same thread. From a
 * thread without a loop, or to its own loop, it is loop_post.
 */
void loop_post_batched(struct loop *lp, const struct loop_kind *kind, void *arg);
/* loop_flush_batched - wake now the loops the calling loop's batched posts are waiting for. */
void loop_flush_batched(void);
/* loop_set_drain_hook - call fn(arg) on lp's thread after each inbox batch. */
void loop_set_drain_hook(struct loop *lp, loop_fn fn, void *arg);
/* loop_stop - make the loop return after its current callbacks. Any thread. */
void loop_stop(struct loop *lp);
/* loop_join - wait for a loop started with loop_start() to end. */
void loop_join(struct loop *lp);
/* loop_free - release a stopped loop. Unrun posts are dropped. */
void loop_free(struct loop *lp);
/*
 * loop_call_as - run fn(arg) now, on the calling thread, as if on lp's
 * thread (loop_current() is lp meanwhile): for start-up work on the
 * thread that will run lp, before loop_run.
 */
void loop_call_as(struct loop *lp, loop_fn fn, void *arg);
/* loop_drain_now - run everything posted so far on the calling thread (after the loop ended). */
void loop_drain_now(struct loop *lp);

struct event_base *loop_base(struct loop *lp);
const char *loop_name(const struct loop *lp);
/* loop_role - the role bit lp was created with. */
unsigned loop_role(const struct loop *lp);
/* loop_current - the loop whose thread is calling, or NULL. */
struct loop *loop_current(void);
/* loop_is_current - true when called from lp's own thread. */
bool loop_is_current(const struct loop *lp);

/* What `threads` shows of one loop (loop_stats_each). */
struct loop_stats {
	const char *name;	/* valid during the callback */
	bool running;		/* a thread is in loop_run */
	unsigned long long posted;	/* posts made to it since it was created */
	unsigned long long handled;	/* posts it has run */
	unsigned long long queued;	/* posted and not run yet (approximate) */
	long long cpu_ms;	/* CPU time of its thread; -1 when not running */
};
/*
 * loop_stats_each - fn for every loop that exists, oldest first, with a
 * registry lock held (fn must not create or free a loop). Any thread.
 */
void loop_stats_each(void (*fn)(void *arg, const struct loop_stats *st), void *arg);

#endif
