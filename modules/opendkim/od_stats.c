/*
 * od_stats.c - per-domain signing counters (see od_stats.h)
 *
 * A chained hash table of domains plus a first-seen list for stable
 * output; one mutex. od_stats_each copies the table under the lock and
 * calls back without it, so a slow reader never stalls signing.
 */
#include "od_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OD_STATS_BUCKETS 1024

struct od_stat_entry {
	char *domain;
	uint32_t hash;
	struct od_counts c;
	struct od_stat_entry *hnext;
	struct od_stat_entry *next;	/* first-seen order */
};

struct od_stats {
	pthread_mutex_t lock;
	struct od_stat_entry *buckets[OD_STATS_BUCKETS];
	struct od_stat_entry *first, *last;
	size_t n;
};

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct od_stats *od_stats_new(void)
{
	struct od_stats *st = calloc(1, sizeof(*st));

	if (st)
		pthread_mutex_init(&st->lock, NULL);
	return st;
}

void od_stats_free(struct od_stats *st)
{
	if (st == NULL)
		return;
	for (struct od_stat_entry *e = st->first, *next; e; e = next) {
		next = e->next;
		free(e->domain);
		free(e);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* entry_of - the entry of domain, made when new; NULL out of memory (lock held). */
static struct od_stat_entry *entry_of(struct od_stats *st, const char *domain)
{
	uint32_t h = hash_str(domain);
	struct od_stat_entry *e;

	for (e = st->buckets[h % OD_STATS_BUCKETS]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->domain, domain) == 0)
			return e;
	if (st->n >= OD_STATS_DOMAINS_MAX && strcmp(domain, OD_STATS_OTHER) != 0)
		return entry_of(st, OD_STATS_OTHER);
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->domain = strdup(domain)) == NULL) {
		free(e);
		return NULL;
	}
	e->hash = h;
	e->hnext = st->buckets[h % OD_STATS_BUCKETS];
	st->buckets[h % OD_STATS_BUCKETS] = e;
	if (st->last)
		st->last->next = e;
	else
		st->first = e;
	st->last = e;
	st->n++;
	return e;
}

void od_stats_add(struct od_stats *st, const char *domain, enum od_stat what)
{
	pthread_mutex_lock(&st->lock);
	struct od_stat_entry *e = entry_of(st, domain);

	if (e) {
		switch (what) {
		case OD_STAT_SIGNED: e->c.signed_ok++; break;
		case OD_STAT_FAILED: e->c.failed++; break;
		case OD_STAT_NO_KEY: e->c.no_key++; break;
		}
	}
	pthread_mutex_unlock(&st->lock);
}

void od_stats_reset(struct od_stats *st)
{
	pthread_mutex_lock(&st->lock);
	for (struct od_stat_entry *e = st->first; e; e = e->next)
		memset(&e->c, 0, sizeof(e->c));
	pthread_mutex_unlock(&st->lock);
}

size_t od_stats_each(struct od_stats *st,
		     void (*fn)(void *arg, const char *domain, const struct od_counts *c),
		     void *arg)
{
	struct snap {
		char *domain;
		struct od_counts c;
	} *v;
	size_t n = 0;

	pthread_mutex_lock(&st->lock);
	v = calloc(st->n ? st->n : 1, sizeof(*v));
	if (v)
		for (struct od_stat_entry *e = st->first; e; e = e->next) {
			v[n].domain = strdup(e->domain);
			v[n].c = e->c;
			n++;
		}
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		if (v[i].domain)
			fn(arg, v[i].domain, &v[i].c);
		free(v[i].domain);
	}
	free(v);
	return n;
}
