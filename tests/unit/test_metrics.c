/*
 * test_metrics.c - src/core/histo.c and src/queue/queue_metrics.c: what GET /metrics counts
 *
 * Histograms: values on, below and above each bound land in the right
 * bucket (a bound is inclusive, as Prometheus' le), cumulative counts,
 * +Inf == count, the sum; four threads observing at once lose nothing;
 * more bounds than HISTO_MAX_BOUNDS are cut off.
 *
 * The labelled counters: protocols and bindings capped at QM_MAX_LABELS
 * with the rest as "other"; the domain series: the busiest domains with
 * their share get one at a ranking, it starts from zero there (what came
 * before stays in "other"), no series ever goes down, the domain series
 * always add up to the binding series, the number of domain series stays
 * at the limit; and after a million distinct domains the sketch still
 * holds at most 8 * limit + 16 candidates and the heavy domains win.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/histo.h"
#include "core/strmap.h"
#include "queue/queue_metrics.h"

/* ---- histograms ---- */

static void test_histo_buckets(void)
{
	static const uint64_t b[] = { 1, 2, 4, 8 };
	static const uint64_t v[] = { 0, 1, 2, 3, 5, 8, 9, 100 };
	struct histo h;
	struct histo_snap s;

	histo_init(&h, b, 4);
	histo_read(&h, &s);
	CHECK_INTEQ(s.count, 0);
	CHECK_INTEQ(s.nbounds, 4);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		histo_observe(&h, v[i]);
	histo_read(&h, &s);
	CHECK_INTEQ(s.cum[0], 2);	/* 0, 1 */
	CHECK_INTEQ(s.cum[1], 3);	/* + 2 */
	CHECK_INTEQ(s.cum[2], 4);	/* + 3 */
	CHECK_INTEQ(s.cum[3], 6);	/* + 5, 8 */
	CHECK_INTEQ(s.cum[4], 8);	/* + 9, 100: +Inf */
	CHECK_INTEQ(s.count, 8);
	CHECK_INTEQ(s.sum, 128);
	CHECK_INTEQ(s.bounds[3], 8);
}

static void test_histo_too_many_bounds(void)
{
	uint64_t b[HISTO_MAX_BOUNDS + 5];
	struct histo h;
	struct histo_snap s;

	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		b[i] = i + 1;
	histo_init(&h, b, sizeof(b) / sizeof(b[0]));
	histo_observe(&h, HISTO_MAX_BOUNDS + 3);	/* past the last kept bound: +Inf */
	histo_read(&h, &s);
	CHECK_INTEQ(s.nbounds, HISTO_MAX_BOUNDS);
	CHECK_INTEQ(s.cum[HISTO_MAX_BOUNDS - 1], 0);
	CHECK_INTEQ(s.cum[HISTO_MAX_BOUNDS], 1);
}

#define THREADS 4
#define PER_THREAD 200000

static void *observer(void *arg)
{
	struct histo *h = arg;

	for (uint64_t i = 0; i < PER_THREAD; i++)
		histo_observe(h, i % 10);
	return NULL;
}

static void test_histo_threads(void)
{
	static const uint64_t b[] = { 0, 4, 9 };
	static struct histo h;	/* ~1.5 KiB per shard set: not on the stack */
	pthread_t t[THREADS];
	struct histo_snap s, mid;

	histo_init(&h, b, 3);
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, observer, &h) == 0);
	histo_read(&h, &mid);	/* while they run: cumulative all the same */
	for (size_t i = 0; i < mid.nbounds; i++)
		CHECK(mid.cum[i] <= mid.cum[i + 1]);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	histo_read(&h, &s);
	CHECK_INTEQ(s.count, (uint64_t)THREADS * PER_THREAD);
	CHECK_INTEQ(s.cum[0], (uint64_t)THREADS * PER_THREAD / 10);	/* value 0 */
	CHECK_INTEQ(s.cum[1], (uint64_t)THREADS * PER_THREAD / 2);	/* 0..4 */
	CHECK_INTEQ(s.cum[2], (uint64_t)THREADS * PER_THREAD);		/* 0..9 */
	CHECK_INTEQ(s.sum, (uint64_t)THREADS * (PER_THREAD / 10) * 45);
	CHECK(s.count >= mid.count);
}

/* ---- labelled counters ---- */

/* What the walks collect. */
struct seen {
	size_t n;
	char names[QM_MAX_LABELS + 8][64];
	uint64_t v[QM_MAX_LABELS + 8];
	struct qm_counts c[QM_MAX_LABELS + 8];
};

static void on_count(void *ctx, const char *name, uint64_t n)
{
	struct seen *s = ctx;

	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->v[s->n++] = n;
}

static void on_counts(void *ctx, const char *name, const struct qm_counts *c)
{
	struct seen *s = ctx;

	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->c[s->n++] = *c;
}

/* find - the index of name in s, or -1. */
static int find(const struct seen *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return (int)i;
	return -1;
}

static struct seen *walk_domains(const struct queue_metrics *m)
{
	struct seen *s = calloc(1, sizeof(*s));

	queue_metrics_domains(m, on_counts, s);
	return s;
}

static void test_protocols_and_bindings(void)
{
	struct queue_metrics m;
	struct seen *s = calloc(1, sizeof(*s));
	char name[32];

	queue_metrics_init(&m);
	queue_metrics_received(&m, "esmtp");
	queue_metrics_received(&m, "esmtp");
	queue_metrics_received(&m, NULL);
	queue_metrics_received(&m, "http");
	for (int i = 0; i < QM_MAX_LABELS + 10; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		queue_metrics_received(&m, name);
	}
	queue_metrics_protocols(&m, on_count, s);
	CHECK_INTEQ(s->n, QM_MAX_LABELS + 1);	/* capped, plus "other" */
	CHECK(find(s, "esmtp") >= 0 && s->v[find(s, "esmtp")] == 2);
	CHECK(find(s, "unknown") >= 0 && s->v[find(s, "unknown")] == 1);
	CHECK(find(s, "http") >= 0);
	CHECK(find(s, QM_OTHER) >= 0 && s->v[find(s, QM_OTHER)] == 13);

	/* Bindings: "" is "default"; the families are never empty. */
	memset(s, 0, sizeof(*s));
	queue_metrics_bindings(&m, on_counts, s);
	CHECK_INTEQ(s->n, 1);
	CHECK_STREQ(s->names[0], "default");
	queue_metrics_outcome(&m, "", "a.test", 'D');
	queue_metrics_outcome(&m, "", "a.test", 'T');
	queue_metrics_outcome(&m, "out1", "a.test", 'P');
	memset(s, 0, sizeof(*s));
	queue_metrics_bindings(&m, on_counts, s);
	CHECK_INTEQ(s->n, 2);
	CHECK(find(s, "default") >= 0 && s->c[find(s, "default")].delivered == 1 &&
	      s->c[find(s, "default")].transient == 1);
	CHECK(find(s, "out1") >= 0 && s->c[find(s, "out1")].permanent == 1);
	/* No limit set: no domain series, everything is "other". */
	free(s);
	s = walk_domains(&m);
	CHECK_INTEQ(s->n, 1);
	CHECK_STREQ(s->names[0], QM_OTHER);
	CHECK_INTEQ(s->c[0].delivered + s->c[0].transient + s->c[0].permanent, 3);
	free(s);
	queue_metrics_free(&m);
}

/* outcomes - n outcomes of what for domain in the default binding. */
static void outcomes(struct queue_metrics *m, const char *domain, int n, char what)
{
	for (int i = 0; i < n; i++)
		queue_metrics_outcome(m, "", domain, what);
}

/* check_sum - the domain series add up to the binding series; returns the domain walk. */
static struct seen *check_sum(const struct queue_metrics *m, int line)
{
	struct seen *s = walk_domains(m), b;
	struct qm_counts dsum = { 0, 0, 0 };

	memset(&b, 0, sizeof(b));
	queue_metrics_bindings(m, on_counts, &b);
	for (size_t i = 0; i < s->n; i++) {
		dsum.delivered += s->c[i].delivered;
		dsum.transient += s->c[i].transient;
		dsum.permanent += s->c[i].permanent;
	}
	if (dsum.delivered != b.c[0].delivered || dsum.transient != b.c[0].transient ||
	    dsum.permanent != b.c[0].permanent) {
		fprintf(stderr, "%s:%d: domain series do not add up to the binding's\n", __FILE__,
			line);
		check_failures++;
	}
	return s;
}

static void test_domain_top_n(void)
{
	struct queue_metrics m;
	struct seen *s;

	queue_metrics_init(&m);
	queue_metrics_set_limit(&m, 2);
	outcomes(&m, "a.test", 5, 'D');
	outcomes(&m, "b.test", 3, 'T');
	outcomes(&m, "c.test", 1, 'D');
	s = check_sum(&m, __LINE__);
	CHECK_INTEQ(s->n, 1);		/* nothing ranked yet */
	free(s);

	/* The ranking: a (5 of 9) and b (3 of 9) have their share; they start at zero. */
	CHECK_INTEQ(queue_metrics_assign(&m), 2);
	s = check_sum(&m, __LINE__);
	CHECK_INTEQ(s->n, 3);
	CHECK(find(s, "a.test") >= 0 && s->c[find(s, "a.test")].delivered == 0);
	CHECK(find(s, "b.test") >= 0 && s->c[find(s, "b.test")].transient == 0);
	CHECK(find(s, "c.test") < 0);
	CHECK_INTEQ(s->c[find(s, QM_OTHER)].delivered, 6);
	CHECK_INTEQ(s->c[find(s, QM_OTHER)].transient, 3);
	free(s);

	/* From now on a.test counts in its own series; c.test, however busy, in "other". */
	outcomes(&m, "a.test", 1, 'D');
	outcomes(&m, "c.test", 50, 'P');
	CHECK_INTEQ(queue_metrics_assign(&m), 0);	/* the slots are full until restart */
	s = check_sum(&m, __LINE__);
	CHECK_INTEQ(s->n, 3);
	CHECK_INTEQ(s->c[find(s, "a.test")].delivered, 1);
	CHECK_INTEQ(s->c[find(s, QM_OTHER)].permanent, 50);
	CHECK_INTEQ(s->c[find(s, QM_OTHER)].delivered, 6);	/* never went down */
	free(s);

	/* A higher limit gives c.test a slot; a lower one takes none away. */
	queue_metrics_set_limit(&m, 3);
	CHECK_INTEQ(queue_metrics_assign(&m), 1);
	queue_metrics_set_limit(&m, 1);
	CHECK_INTEQ(queue_metrics_assign(&m), 0);
	s = check_sum(&m, __LINE__);
	CHECK_INTEQ(s->n, 4);
	CHECK(find(s, "c.test") >= 0 && s->c[find(s, "c.test")].permanent == 0);
	free(s);
	queue_metrics_free(&m);
}

static void test_domain_share(void)
{
	struct queue_metrics m;

	/* Limit 4: a domain needs 1/16 of the outcomes; one of twenty small ones has 1/20. */
	queue_metrics_init(&m);
	queue_metrics_set_limit(&m, 4);
	for (int i = 0; i < 20; i++) {
		char d[32];

		snprintf(d, sizeof(d), "small%d.test", i);
		outcomes(&m, d, 1, 'D');
	}
	CHECK_INTEQ(queue_metrics_assign(&m), 0);
	outcomes(&m, "big.test", 10, 'D');
	CHECK_INTEQ(queue_metrics_assign(&m), 1);
	queue_metrics_free(&m);
}

static void test_million_domains(void)
{
	struct queue_metrics m;
	struct seen *s;
	char d[64];
	const int n = 1000000;
	uint64_t total = 0;

	queue_metrics_init(&m);
	queue_metrics_set_limit(&m, 20);
	for (int i = 0; i < n; i++) {
		/* Every other outcome goes to one of five heavy domains (10 % each). */
		if (i % 2 == 0)
			snprintf(d, sizeof(d), "heavy%d.test", (i / 2) % 5);
		else
			snprintf(d, sizeof(d), "d%d.example", i);
		queue_metrics_outcome(&m, "", d, 'D');
		total++;
		if (i % 100000 == 99999)
			queue_metrics_assign(&m);	/* a scrape now and then */
		CHECK(m.ncand <= 8 * 20 + 16);
	}
	s = check_sum(&m, __LINE__);
	CHECK(s->n <= 21);
	for (int h = 0; h < 5; h++) {
		snprintf(d, sizeof(d), "heavy%d.test", h);
		CHECK(find(s, d) >= 0);
	}
	uint64_t sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += s->c[i].delivered;
	CHECK_INTEQ(sum, total);
	CHECK_INTEQ(strmap_count(m.cand_index), m.ncand);
	free(s);
	queue_metrics_free(&m);
}

int main(void)
{
	test_histo_buckets();
	test_histo_too_many_bounds();
	test_histo_threads();
	test_protocols_and_bindings();
	test_domain_top_n();
	test_domain_share();
	test_million_domains();
	return check_done();
}
