/*
 * api_event.c - threads, posted events, timers and pools for modules
 * (include/impetus/event.h)
 *
 * A module sees the daemon's loops as struct imp_loop, which is a core
 * struct loop (src/core/loop.h) under another name. imp_post is the
 * typed message "api.post" (src/msgs/msgs.def), owned by every loop
 * role, carrying the module's function and argument; the other services
 * answer their callers through the same post (api_post).
 *
 * Timers are libevent timers on the calling loop's event base; a timer
 * belongs to that loop's thread, which is why imp_timer_add refuses a
 * caller that is not on a loop. A cancel from another thread is posted
 * to the owner rather than touching its event base.
 *
 * Pools: the CPU and IO pools main.c creates (CPU_Threads, IO_Threads).
 * A job runs on a worker; its done function is posted back to the loop
 * that submitted it.
 *
 * Ownership: a struct api_post belongs to whoever holds it: the poster,
 * then the loop running it. The list of posts not yet run is guarded by
 * a mutex (one lock per post; the module API is not on the per-message
 * hot path of the core). Failures: none but memory exhaustion (aborts).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include <impetus/event.h>

#include "api/api_runtime.h"
#include "api/api_services.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "log/log.h"
#include "msgs/msgs.h"

/* ------------------------------------------------------------------ */
/* posts                                                               */

struct api_post {
	void (*fn)(void *arg);
	void *arg;
	struct api_post *prev, *next;	/* pending list, under pending_lock */
};

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static struct api_post *pending;

void api_post(struct loop *lp, void (*fn)(void *arg), void *arg)
{
	struct api_post *p = XNEW(struct api_post);

	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&pending_lock);
	p->next = pending;
	if (pending)
		pending->prev = p;
	pending = p;
	pthread_mutex_unlock(&pending_lock);
	msgs_post(lp, MSGS_API_POST, p);
}

/* api_post_on_run - "api.post" on the loop it was posted to: unlist, run, free. */
void api_post_on_run(void *arg)
{
	struct api_post *p = arg;

	pthread_mutex_lock(&pending_lock);
	if (p->prev)
		p->prev->next = p->next;
	else
		pending = p->next;
	if (p->next)
		p->next->prev = p->prev;
	pthread_mutex_unlock(&pending_lock);
	p->fn(p->arg);
	free(p);
}

void api_post_drop_all(void)
{
	pthread_mutex_lock(&pending_lock);
	struct api_post *p = pending;
	pending = NULL;
	pthread_mutex_unlock(&pending_lock);
	while (p) {
		struct api_post *next = p->next;
		free(p);
		p = next;
	}
}

struct loop *api_reply_loop(void)
{
	struct loop *lp = loop_current();

	return lp ? lp : api_runtime()->scheduler;
}

/* ------------------------------------------------------------------ */
/* loops                                                               */

struct imp_loop *imp_loop_scheduler(void)
{
	return (struct imp_loop *)api_runtime()->scheduler;
}

struct imp_loop *imp_loop_io(size_t i)
{
	const struct api_runtime *rt = api_runtime();

	return i < rt->nio ? (struct imp_loop *)rt->io[i] : NULL;
}

size_t imp_loop_io_count(void)
{
	return api_runtime()->nio;
}

struct imp_loop *imp_loop_current(void)
{
	return (struct imp_loop *)loop_current();
}

void imp_post(struct imp_loop *loop, imp_event_fn fn, void *arg)
{
	if (loop == NULL || fn == NULL) {
		/* A programming error in a module; the daemon goes on. */
		log_panic("imp_post: %s; event dropped", loop ? "no function" : "no loop");
		return;
	}
	api_post((struct loop *)loop, fn, arg);
}

void imp_dispatch(struct imp_loop *loop, imp_event_fn fn, void *arg)
{
	if (loop != NULL && fn != NULL && loop_current() == (struct loop *)loop) {
		fn(arg);
		return;
	}
	imp_post(loop, fn, arg);
}

/* ------------------------------------------------------------------ */
/* timers                                                              */

struct imp_timer {
	struct event *ev;
	struct loop *lp;		/* the owner: the loop that added it */
	imp_event_fn fn;
	void *arg;
	bool periodic;
	bool firing;			/* a one-shot timer inside its own fn */
};

/* on_timer - libevent callback on the owner loop. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct imp_timer *t = arg;

	if (t->periodic) {
		/* fn may cancel (free) t: nothing of t is touched after it. */
		t->fn(t->arg);
		return;
	}
	t->firing = true;
	t->fn(t->arg);
	event_free(t->ev);
	free(t);
}

struct imp_timer *imp_timer_add(uint64_t ms, bool periodic, imp_event_fn fn, void *arg)
{
	struct loop *lp = loop_current();

	if (lp == NULL || fn == NULL)
		return NULL;
	struct imp_timer *t = XNEW(struct imp_timer);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	t->lp = lp;
	t->fn = fn;
	t->arg = arg;
	t->periodic = periodic;
	if (periodic && ms == 0)
		tv.tv_usec = 1000;	/* not a busy loop */
	t->ev = event_new(loop_base(lp), -1, periodic ? EV_PERSIST : 0, on_timer, t);
	event_add(t->ev, &tv);
	return t;
}

/* timer_free - stop and free t (its owner's thread). */
static void timer_free(void *arg)
{
	struct imp_timer *t = arg;

	if (t->firing) {
		/* One-shot, inside its own fn: on_timer frees it when fn returns. */
		return;
	}
	event_free(t->ev);
	free(t);
}

void imp_timer_cancel(struct imp_timer *t)
{
	if (t == NULL)
		return;
	if (loop_is_current(t->lp))
		timer_free(t);
	else
		api_post(t->lp, timer_free, t);	/* the event base is the owner's */
}

/* ------------------------------------------------------------------ */
/* pools                                                               */

struct api_job {
	imp_event_fn job, done;
	void *arg;
	struct loop *lp;		/* the submitter's loop */
};

/* job_run - on a pool worker: the job, then its done posted back. */
static void job_run(void *arg)
{
	struct api_job *j = arg;

	j->job(j->arg);
	if (j->done)
		api_post(j->lp, j->done, j->arg);
	free(j);
}

int imp_pool_submit(enum imp_pool pool, imp_event_fn job, imp_event_fn done, void *arg)
{
	const struct api_runtime *rt = api_runtime();
	struct loop *lp = loop_current();
	struct pool *p;

	if (lp == NULL || job == NULL)
		return -EINVAL;
	/* After the loops stopped (fini of the last generation) the pools are gone. */
	if (api_runtime_stopped())
		return -ESHUTDOWN;
	if (pool == IMP_POOL_CPU)
		p = rt->cpu_pool;
	else if (pool == IMP_POOL_IO)
		p = rt->io_pool;
	else
		return -EINVAL;
	if (p == NULL)
		return -ENOTCONN;
	struct api_job *j = XNEW(struct api_job);
	j->job = job;
	j->done = done;
	j->arg = arg;
	j->lp = lp;
	pool_submit(p, job_run, j);
	return 0;
}

uint64_t imp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
