/*
 * pool.h - worker thread pools for blocking or CPU-heavy jobs
 *
 * Loops must never block, so work that does (a slow file-system call, a
 * DKIM signature over a large body, a policy script) runs on a pool: the
 * job gets its argument, does its work, and posts the result back to the
 * loop that asked (a typed message, src/msgs/msgs.def). Pools hold no state
 * between jobs. impetus has two, named after Momentum's: "CPU" and "IO".
 *
 * Ownership: the job queue is the pool's, guarded by its mutex; any thread
 * may submit. Jobs run in submission order, in parallel up to the number
 * of threads.
 */
#ifndef IMPETUS_CORE_POOL_H
#define IMPETUS_CORE_POOL_H

#include <stddef.h>

struct pool;

typedef void (*pool_fn)(void *arg);

/* pool_new - start nthreads workers (at least one). */
struct pool *pool_new(const char *name, size_t nthreads);
/* pool_submit - run fn(arg) on a worker. Any thread; never blocks on the job. */
void pool_submit(struct pool *p, pool_fn fn, void *arg);
/* pool_pending - jobs waiting for a worker (for the console; approximate). */
size_t pool_pending(struct pool *p);
/*
 * pool_wait_idle - block until no job is queued or running. Jobs submitted
 * meanwhile are waited for too. Any thread but a worker of p.
 */
void pool_wait_idle(struct pool *p);
/* pool_free - finish every submitted job, stop the workers, free the pool. */
void pool_free(struct pool *p);

/* What `threads` shows of one pool (pool_stats_each). */
struct pool_stats {
	const char *name;		/* valid during the callback */
	size_t nthreads;
	size_t pending;			/* jobs waiting for a worker */
	size_t running;			/* jobs being run */
	unsigned long long done;	/* jobs finished */
	unsigned long long busy_ms;	/* wall time the workers spent in jobs */
	long long cpu_ms;		/* CPU time of the workers */
};
/*
 * pool_stats_each - fn for every pool that exists, oldest first, with a
 * registry lock held (fn must not create or free a pool). Any thread.
 */
void pool_stats_each(void (*fn)(void *arg, const struct pool_stats *st), void *arg);

#endif
