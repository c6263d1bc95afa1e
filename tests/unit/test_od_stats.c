/*
 * test_od_stats.c - the opendkim module's per-domain counters (modules/opendkim/od_stats.c)
 *
 * Counts land on their domain and kind, domains come back in first-seen
 * order, reset zeroes without forgetting, the domain bound sends the
 * rest to "(other)", and four threads counting at once lose nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "od_stats.h"

struct seen {
	char names[4][32];
	struct od_counts c[4];
	size_t n;
	struct od_counts other;
	uint64_t total;
};

static void collect(void *arg, const char *domain, const struct od_counts *c)
{
	struct seen *s = arg;

	if (strcmp(domain, OD_STATS_OTHER) == 0)
		s->other = *c;
	if (s->n < 4) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", domain);
		s->c[s->n] = *c;
	}
	s->n++;
	s->total += c->signed_ok + c->failed + c->no_key;
}

static void test_counts(void)
{
	struct od_stats *st = od_stats_new();
	struct seen s = { 0 };

	od_stats_add(st, "b.test", OD_STAT_SIGNED);
	od_stats_add(st, "a.test", OD_STAT_NO_KEY);
	od_stats_add(st, "b.test", OD_STAT_SIGNED);
	od_stats_add(st, "b.test", OD_STAT_FAILED);
	CHECK_INTEQ(od_stats_each(st, collect, &s), 2);
	CHECK_STREQ(s.names[0], "b.test");
	CHECK_INTEQ(s.c[0].signed_ok, 2);
	CHECK_INTEQ(s.c[0].failed, 1);
	CHECK_INTEQ(s.c[0].no_key, 0);
	CHECK_STREQ(s.names[1], "a.test");
	CHECK_INTEQ(s.c[1].no_key, 1);
	od_stats_reset(st);
	memset(&s, 0, sizeof(s));
	CHECK_INTEQ(od_stats_each(st, collect, &s), 2);
	CHECK_INTEQ(s.total, 0);
	od_stats_free(st);
}

static void test_bound(void)
{
	struct od_stats *st = od_stats_new();
	struct seen s = { 0 };
	char name[32];

	for (int i = 0; i < OD_STATS_DOMAINS_MAX + 5; i++) {
		snprintf(name, sizeof(name), "d%d.test", i);
		od_stats_add(st, name, OD_STAT_SIGNED);
	}
	od_stats_add(st, "d0.test", OD_STAT_SIGNED);	/* a known one still counts as itself */
	CHECK_INTEQ(od_stats_each(st, collect, &s), OD_STATS_DOMAINS_MAX + 1);
	CHECK_INTEQ(s.c[0].signed_ok, 2);
	CHECK_INTEQ(s.other.signed_ok, 5);
	CHECK_INTEQ(s.total, OD_STATS_DOMAINS_MAX + 6);
	od_stats_free(st);
}

static void *count(void *arg)
{
	struct od_stats *st = arg;
	char name[32];

	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "t%d.test", i % 7);
		od_stats_add(st, name, (enum od_stat)(i % 3));
	}
	return NULL;
}

static void test_threads(void)
{
	struct od_stats *st = od_stats_new();
	pthread_t t[4];
	struct seen s = { 0 };

	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, count, st) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INTEQ(od_stats_each(st, collect, &s), 7);
	CHECK_INTEQ(s.total, 80000);
	od_stats_free(st);
}

int main(void)
{
	test_counts();
	test_bound();
	test_threads();
	return check_done();
}
