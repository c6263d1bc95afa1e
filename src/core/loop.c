/*
 * loop.c - event loop thread with a lock-free MPSC inbox (see loop.h)
 *
 * Ownership: the event_base and everything registered on it belong to the
 * loop's thread. The inbox head and the wake flag are the only fields other
 * threads touch, and only through atomics. That is also why libevent's
 * own locking (evthread_use_pthreads) is not turned on: no base is ever
 * touched by a thread other than its owner (before the loop starts and
 * after it was joined, the main thread is its only user), and the locks
 * cost a mutex pair on every event operation of every connection.
 *
 * Owner checks: LOOP_CHECK_OWNER is on in debug and sanitizer builds. A
 * mismatch is a broken invariant (a message sent to a thread that does not
 * own its state), so it prints one line naming the kind and the loops and
 * aborts, leaving a core to look at.
 */
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/mem.h"

/* Loops one loop can owe a wake-up at once; past that a lazy post wakes at once. */
#define LAZY_TARGETS 8
/* The eventfd's counter is read back (reset) once in this many wake-ups. */
#define WAKE_RESET_EVERY 4096
/* A lazy post waits at most this long for a wake-up it can ride with. */
#define LAZY_DELAY_US 10000

#if !defined(NDEBUG) || defined(IMPETUS_SANITIZE)
#define LOOP_CHECK_OWNER 1
#endif

struct post {
	struct post *next;
	const struct loop_kind *kind;
	void *arg;
};

struct loop {
	char name[32];
	unsigned role;			/* one bit; kinds name the roles that own them */
	struct event_base *base;
	struct event *wake_ev;
	uint64_t wakes;			/* on_wake calls; owner only */
	int wake_fd;
	_Atomic(struct post *) inbox;	/* pushed by any thread */
	atomic_bool wake_pending;	/* an eventfd write is outstanding */
	loop_fn drain_hook;
	void *drain_arg;
	pthread_t thread;
	bool started;
	/* For the console (loop_stats_each): */
	atomic_uint_fast64_t posted;	/* loop_post calls, any thread */
	atomic_uint_fast64_t handled;	/* posts run, written by the owner */
	pthread_t runner;		/* the thread in loop_run; valid while running */
	/* Batched posts this loop made (loop_post_batched); owner only: */
	struct event *batch_ev;		/* made active by the first: wakes the targets */
	struct loop *batch_to[LAZY_TARGETS];
	int nbatch;
	/* Lazy posts this loop made (loop_post_lazy); owner only: */
	struct event *lazy_ev;		/* the backstop: wake the targets when it fires */
	struct loop *lazy_to[LAZY_TARGETS];
	int nlazy;
	bool running;			/* guarded by reg_mu */
	struct loop *reg_prev, *reg_next;	/* every loop, guarded by reg_mu */
};

/* The registry of every loop, for the console's `threads`. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct loop *reg_head;

static _Thread_local struct loop *current_loop;

/* do_stop - loop_stop's message: break out of the event loop. */
static void do_stop(void *arg);
static void on_lazy(evutil_socket_t fd, short what, void *arg);
static void on_batch_end(evutil_socket_t fd, short what, void *arg);

/* Core's own kind: any loop owns its stop request. */
static const struct loop_kind loop_kind_stop = {
	.name = "loop.stop", .from = "any", .owners = ~0u, .handler = do_stop,
};

bool loop_owner_checks(void)
{
#ifdef LOOP_CHECK_OWNER
	return true;
#else
	return false;
#endif
}

#ifdef LOOP_CHECK_OWNER
/* owner_fail - a kind met a loop that does not own it: say which, then dump core. */
static void owner_fail(const struct loop_kind *kind, const char *what, const struct loop *lp)
{
	fprintf(stderr, "impetus: message %s (from %s, owners %#x) %s loop %s (role %#x): "
		"not its owner\n", kind->name, kind->from, kind->owners, what,
		lp ? lp->name : "(none)", lp ? lp->role : 0u);
	abort();
}
#endif

/* inbox_take - detach all posts, oldest first. Owner thread only. */
static struct post *inbox_take(struct loop *lp)
{
	struct post *p = atomic_exchange_explicit(&lp->inbox, NULL, memory_order_acquire);
	struct post *rev = NULL;

	while (p) {
		struct post *next = p->next;
		p->next = rev;
		rev = p;
		p = next;
	}
	return rev;
}

/* loop_drain - run everything posted so far, then the drain hook. */
static void loop_drain(struct loop *lp)
{
	struct post *p;
	bool ran = false;

	/*
	 * Clear the flag before taking the inbox: a producer that pushes after
	 * the exchange sees the flag clear and wakes us again, so no post can
	 * be stranded until an unrelated wake-up.
	 */
	atomic_store_explicit(&lp->wake_pending, false, memory_order_seq_cst);
	while ((p = inbox_take(lp)) != NULL) {
		while (p) {
			struct post *next = p->next;
#ifdef LOOP_CHECK_OWNER
			/* The handler is about to touch state only the owner may touch. */
			if (current_loop == NULL || !(current_loop->role & p->kind->owners))
				owner_fail(p->kind, "dispatched on", current_loop);
#endif
			p->kind->handler(p->arg);
			free(p);
			p = next;
			/* Only this thread writes it: a plain increment, published for readers. */
			atomic_store_explicit(&lp->handled,
					      atomic_load_explicit(&lp->handled, memory_order_relaxed) + 1,
					      memory_order_relaxed);
		}
		ran = true;
	}
	if (ran && lp->drain_hook)
		lp->drain_hook(lp->drain_arg);
}

/*
 * on_wake - the eventfd was written. It is watched edge-triggered, and
 * epoll reports an edge for every write, so its counter need not be read
 * back each time (one system call per wake-up saved); it is reset now and
 * then so it never nears its limit.
 */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct loop *lp = arg;
	uint64_t v;

	if (++lp->wakes % WAKE_RESET_EVERY == 0 && read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fprintf(stderr, "impetus: loop %s: eventfd read: %s\n", lp->name, strerror(errno));
	loop_drain(lp);
}

struct loop *loop_new(const char *name, unsigned role)
{
	struct loop *lp = XNEW(struct loop);

	snprintf(lp->name, sizeof(lp->name), "%s", name);
	lp->role = role;
	lp->base = event_base_new();
	if (lp->base == NULL) {
		fprintf(stderr, "impetus: loop %s: event_base_new failed\n", name);
		abort();
	}
	lp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lp->wake_fd < 0) {
		fprintf(stderr, "impetus: loop %s: eventfd: %s\n", name, strerror(errno));
		abort();
	}
	lp->wake_ev = event_new(lp->base, lp->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_wake, lp);
	event_add(lp->wake_ev, NULL);
	lp->lazy_ev = evtimer_new(lp->base, on_lazy, lp);
	lp->batch_ev = event_new(lp->base, -1, 0, on_batch_end, lp);
	atomic_init(&lp->inbox, NULL);
	atomic_init(&lp->wake_pending, false);
	atomic_init(&lp->posted, 0);
	atomic_init(&lp->handled, 0);
	pthread_mutex_lock(&reg_mu);
	lp->reg_next = reg_head;
	if (reg_head)
		reg_head->reg_prev = lp;
	reg_head = lp;
	pthread_mutex_unlock(&reg_mu);
	return lp;
}

/* push - put a post in lp's inbox (any thread). */
static void push(struct loop *lp, const struct loop_kind *kind, void *arg)
{
	struct post *p;
	struct post *head;

#ifdef LOOP_CHECK_OWNER
	/* Catch the mistake at the sender, where the stack still says who made it. */
	if (!(lp->role & kind->owners))
		owner_fail(kind, "posted to", lp);
#endif
	p = xmalloc(sizeof(*p));
	atomic_fetch_add_explicit(&lp->posted, 1, memory_order_relaxed);
	head = atomic_load_explicit(&lp->inbox, memory_order_relaxed);
	p->kind = kind;
	p->arg = arg;
	do {
		p->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&lp->inbox, &head, p,
							memory_order_release,
							memory_order_relaxed));
}

/* wake - make lp drain its inbox soon, unless a wake-up is already on its way. */
static void wake(struct loop *lp)
{
	if (!atomic_exchange_explicit(&lp->wake_pending, true, memory_order_seq_cst)) {
		uint64_t one = 1;
		if (write(lp->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			fprintf(stderr, "impetus: loop %s: eventfd write: %s\n", lp->name, strerror(errno));
	}
}

void loop_post(struct loop *lp, const struct loop_kind *kind, void *arg)
{
	push(lp, kind, arg);
	wake(lp);
}

/* on_lazy - the backstop of the lazy posts: wake every loop still owed one. */
static void on_lazy(evutil_socket_t fd, short what, void *arg)
{
	struct loop *me = arg;

	for (int i = 0; i < me->nlazy; i++) {
		struct loop *lp = me->lazy_to[i];

		/* Drained since (it woke for something else): nothing is owed. */
		if (atomic_load_explicit(&lp->inbox, memory_order_acquire) != NULL)
			wake(lp);
	}
	me->nlazy = 0;
}

/*
 * owe_wake - note that lp is owed a wake-up in the list to[0..*n) (once
 * each). False when the list is full: the caller wakes lp at once.
 */
static bool owe_wake(struct loop **to, int *n, struct loop *lp)
{
	for (int i = 0; i < *n; i++)
		if (to[i] == lp)
			return true;
	if (*n == LAZY_TARGETS)
		return false;
	to[(*n)++] = lp;
	return true;
}

/* on_batch_end - the callbacks that posted are over: wake each target once. */
static void on_batch_end(evutil_socket_t fd, short what, void *arg)
{
	struct loop *me = arg;

	for (int i = 0; i < me->nbatch; i++)
		wake(me->batch_to[i]);
	me->nbatch = 0;
}

void loop_flush_batched(void)
{
	if (current_loop && current_loop->nbatch > 0)
		on_batch_end(-1, 0, current_loop);
}

void loop_post_batched(struct loop *lp, const struct loop_kind *kind, void *arg)
{
	struct loop *me = current_loop;

	if (me == NULL || me == lp || me->batch_ev == NULL) {
		loop_post(lp, kind, arg);
		return;
	}
	push(lp, kind, arg);
	if (!owe_wake(me->batch_to, &me->nbatch, lp))
		wake(lp);
	else if (me->nbatch == 1)
		event_active(me->batch_ev, EV_TIMEOUT, 0);	/* the first: flush at the end */
}

void loop_post_lazy(struct loop *lp, const struct loop_kind *kind, void *arg)
{
	struct loop *me = current_loop;

	if (me == NULL || me == lp || me->lazy_ev == NULL) {
		loop_post(lp, kind, arg);
		return;
	}
	push(lp, kind, arg);
	if (!owe_wake(me->lazy_to, &me->nlazy, lp)) {
		wake(lp);
		return;
	}
	if (!evtimer_pending(me->lazy_ev, NULL)) {
		struct timeval tv = { 0, LAZY_DELAY_US };
		evtimer_add(me->lazy_ev, &tv);
	}
}

void loop_set_drain_hook(struct loop *lp, loop_fn fn, void *arg)
{
	lp->drain_hook = fn;
	lp->drain_arg = arg;
}

void loop_run(struct loop *lp)
{
	current_loop = lp;
	pthread_mutex_lock(&reg_mu);
	lp->runner = pthread_self();
	lp->running = true;
	pthread_mutex_unlock(&reg_mu);
	event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
	/* Run whatever was posted before the stop so no reply is lost. */
	loop_drain(lp);
	on_batch_end(-1, 0, lp);	/* the base no longer runs batch_ev */
	pthread_mutex_lock(&reg_mu);
	lp->running = false;
	pthread_mutex_unlock(&reg_mu);
	current_loop = NULL;
}

static void *loop_thread(void *arg)
{
	struct loop *lp = arg;

	pthread_setname_np(pthread_self(), lp->name);
	loop_run(lp);
	return NULL;
}

int loop_start(struct loop *lp)
{
	int rc = pthread_create(&lp->thread, NULL, loop_thread, lp);

	if (rc != 0)
		return -rc;
	lp->started = true;
	return 0;
}

static void do_stop(void *arg)
{
	struct loop *lp = arg;

	event_base_loopbreak(lp->base);
}

void loop_stop(struct loop *lp)
{
	/* Posting the break keeps it ordered after everything posted before. */
	loop_post(lp, &loop_kind_stop, lp);
}

void loop_join(struct loop *lp)
{
	if (lp->started) {
		pthread_join(lp->thread, NULL);
		lp->started = false;
	}
}

void loop_free(struct loop *lp)
{
	struct post *p;

	if (lp == NULL)
		return;
	pthread_mutex_lock(&reg_mu);
	if (lp->reg_prev)
		lp->reg_prev->reg_next = lp->reg_next;
	else
		reg_head = lp->reg_next;
	if (lp->reg_next)
		lp->reg_next->reg_prev = lp->reg_prev;
	pthread_mutex_unlock(&reg_mu);
	p = inbox_take(lp);
	while (p) {
		struct post *next = p->next;
		free(p);
		p = next;
	}
	event_free(lp->wake_ev);
	if (lp->lazy_ev)
		event_free(lp->lazy_ev);
	if (lp->batch_ev)
		event_free(lp->batch_ev);
	close(lp->wake_fd);
	event_base_free(lp->base);
	free(lp);
}

struct event_base *loop_base(struct loop *lp)
{
	return lp->base;
}

const char *loop_name(const struct loop *lp)
{
	return lp->name;
}

unsigned loop_role(const struct loop *lp)
{
	return lp->role;
}

struct loop *loop_current(void)
{
	return current_loop;
}

bool loop_is_current(const struct loop *lp)
{
	return current_loop == lp;
}

void loop_drain_now(struct loop *lp)
{
	struct loop *saved = current_loop;

	current_loop = lp;
	loop_drain(lp);
	on_batch_end(-1, 0, lp);
	current_loop = saved;
}

void loop_call_as(struct loop *lp, loop_fn fn, void *arg)
{
	struct loop *saved = current_loop;

	current_loop = lp;
	fn(arg);
	current_loop = saved;
}

/* thread_cpu_ms - CPU time a live thread has used, in milliseconds; -1 when unknown. */
static int64_t thread_cpu_ms(pthread_t t)
{
	clockid_t cid;
	struct timespec ts;

	if (pthread_getcpuclockid(t, &cid) != 0 || clock_gettime(cid, &ts) != 0)
		return -1;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void loop_stats_each(void (*fn)(void *arg, const struct loop_stats *st), void *arg)
{
	pthread_mutex_lock(&reg_mu);
	/* The registry is newest first: walk to the end and back, oldest first. */
	struct loop *last = reg_head;
	while (last && last->reg_next)
		last = last->reg_next;
	for (struct loop *lp = last; lp; lp = lp->reg_prev) {
		struct loop_stats st = { 0 };
		uint64_t posted = atomic_load_explicit(&lp->posted, memory_order_relaxed);
		uint64_t handled = atomic_load_explicit(&lp->handled, memory_order_relaxed);

		st.name = lp->name;
		st.running = lp->running;
		st.posted = posted;
		st.handled = handled;
		st.queued = posted > handled ? posted - handled : 0;
		st.cpu_ms = lp->running ? thread_cpu_ms(lp->runner) : -1;
		fn(arg, &st);
	}
	pthread_mutex_unlock(&reg_mu);
}
