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
};

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
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->mu);
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
