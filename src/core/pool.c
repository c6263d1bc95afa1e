/*
 * pool.c - worker thread pools (see pool.h)
 *
 * A mutex and a condition variable around a FIFO of jobs: simple, and the
 * jobs a pool runs are long next to a lock hand-off.
 */
#include "core/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"

struct job {
	struct job *next;
	pool_fn fn;
	void *arg;
};

struct pool {
	char name[16];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t idle_cv;		/* signalled when nothing is queued or running */
	struct job *head, **tail;
	size_t pending;
	size_t running;
	bool stopping;
	size_t nthreads;
	pthread_t *threads;
	/* For the console (pool_stats_each), under mu: */
	unsigned long long done;	/* jobs finished */
	unsigned long long busy_us;	/* wall time spent in jobs */
	struct pool *reg_prev, *reg_next;	/* every pool, guarded by reg_mu */
};

/* The registry of every pool, for the console's `threads`. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool *reg_head;

/* mono_us - the monotonic clock in microseconds. */
static unsigned long long mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000u + (unsigned long long)ts.tv_nsec / 1000u;
}

static void *worker(void *arg)
{
	struct pool *p = arg;

	pthread_setname_np(pthread_self(), p->name);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->head == NULL)
			break;		/* stopping and drained */
		struct job *j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = &p->head;
		p->pending--;
		p->running++;
		pthread_mutex_unlock(&p->mu);
		unsigned long long t0 = mono_us();
		j->fn(j->arg);
		free(j);
		unsigned long long t1 = mono_us();
		pthread_mutex_lock(&p->mu);
		p->done++;
		p->busy_us += t1 - t0;
		if (--p->running == 0 && p->head == NULL)
			pthread_cond_broadcast(&p->idle_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct pool *pool_new(const char *name, size_t nthreads)
{
	struct pool *p = XNEW(struct pool);

	snprintf(p->name, sizeof(p->name), "%s", name);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	p->tail = &p->head;
	p->nthreads = nthreads ? nthreads : 1;
	p->threads = xcalloc(p->nthreads, sizeof(*p->threads));
	for (size_t i = 0; i < p->nthreads; i++) {
		int rc = pthread_create(&p->threads[i], NULL, worker, p);
		if (rc != 0) {
			fprintf(stderr, "impetus: pool %s: cannot start thread: %s\n", name, strerror(rc));
			abort();
		}
	}
	pthread_mutex_lock(&reg_mu);
	p->reg_next = reg_head;
	if (reg_head)
		reg_head->reg_prev = p;
	reg_head = p;
	pthread_mutex_unlock(&reg_mu);
	return p;
}

void pool_submit(struct pool *p, pool_fn fn, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&p->mu);
	*p->tail = j;
	p->tail = &j->next;
	p->pending++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

size_t pool_pending(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	size_t n = p->pending;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void pool_wait_idle(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->head != NULL || p->running > 0)
		pthread_cond_wait(&p->idle_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

void pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	/* Out of the registry first: its threads are about to be joined. */
	pthread_mutex_lock(&reg_mu);
	if (p->reg_prev)
		p->reg_prev->reg_next = p->reg_next;
	else
		reg_head = p->reg_next;
	if (p->reg_next)
		p->reg_next->reg_prev = p->reg_prev;
	pthread_mutex_unlock(&reg_mu);
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->idle_cv);
	free(p->threads);
	free(p);
}

void pool_stats_each(void (*fn)(void *arg, const struct pool_stats *st), void *arg)
{
	pthread_mutex_lock(&reg_mu);
	struct pool *last = reg_head;
	while (last && last->reg_next)
		last = last->reg_next;
	for (struct pool *p = last; p; p = p->reg_prev) {
		struct pool_stats st = { 0 };
		long long cpu = 0;

		pthread_mutex_lock(&p->mu);
		st.name = p->name;
		st.nthreads = p->nthreads;
		st.pending = p->pending;
		st.running = p->running;
		st.done = p->done;
		st.busy_ms = p->busy_us / 1000u;
		pthread_mutex_unlock(&p->mu);
		/* The workers are joined only after the pool left the registry. */
		for (size_t i = 0; i < p->nthreads; i++) {
			clockid_t cid;
			struct timespec ts;

			if (pthread_getcpuclockid(p->threads[i], &cid) == 0 &&
			    clock_gettime(cid, &ts) == 0)
				cpu += (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		}
		st.cpu_ms = cpu;
		fn(arg, &st);
	}
	pthread_mutex_unlock(&reg_mu);
}
