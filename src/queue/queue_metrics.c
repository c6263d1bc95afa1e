/*
 * queue_metrics.c - labelled lifetime counters with bounded cardinality (see queue_metrics.h)
 *
 * The domain sketch is Misra-Gries' "frequent items": candcap counters;
 * an outcome of a candidate adds one to it; of a newcomer, takes a free
 * counter, or when none is free subtracts one from every counter and
 * drops those that reach zero (the newcomer is not kept). Every domain
 * with more than 1/(candcap + 1) of the outcomes is guaranteed to be a
 * candidate, the memory is candcap entries whatever the traffic, and
 * the cost is O(1) amortised: a full pass of candcap subtractions removes
 * candcap units that candcap earlier additions put there.
 *
 * Ownership: scheduler thread. Failures: none.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/strmap.h"
#include "queue/queue_metrics.h"

void queue_metrics_init(struct queue_metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->protocols = strmap_new();
	m->bindings = strmap_new();
	m->domains = strmap_new();
	m->cand_index = strmap_new();
}

/* free_value - strmap_each: free one counter. */
static void free_value(void *ctx, const char *key, void *value)
{
	(void)ctx;
	(void)key;
	free(value);
}

void queue_metrics_free(struct queue_metrics *m)
{
	strmap_each(m->protocols, free_value, NULL);
	strmap_free(m->protocols);
	strmap_each(m->bindings, free_value, NULL);
	strmap_free(m->bindings);
	strmap_each(m->domains, free_value, NULL);
	strmap_free(m->domains);
	for (size_t i = 0; i < m->ncand; i++)
		free(m->cand[i].domain);
	free(m->cand);
	strmap_free(m->cand_index);
	memset(m, 0, sizeof(*m));
}

void queue_metrics_set_limit(struct queue_metrics *m, size_t limit)
{
	size_t cap = limit ? 8 * limit + 16 : 0;

	m->limit = limit;
	if (cap > m->candcap) {
		m->cand = xrealloc(m->cand, cap * sizeof(*m->cand));
		m->candcap = cap;
	}
	/* A smaller cap keeps the array; the sketch stops adding past it. */
	if (cap < m->candcap)
		m->candcap = cap > m->ncand ? cap : m->ncand;
}

void queue_metrics_received(struct queue_metrics *m, const char *protocol)
{
	const char *p = protocol && *protocol ? protocol : "unknown";
	uint64_t *n = strmap_get(m->protocols, p);

	if (n == NULL) {
		if (strmap_count(m->protocols) >= QM_MAX_LABELS) {
			m->protocol_other++;
			return;
		}
		n = xcalloc(1, sizeof(*n));
		strmap_put(m->protocols, p, n);
	}
	(*n)++;
}

/* bump - one outcome into c. */
static void bump(struct qm_counts *c, char what)
{
	if (what == 'D')
		c->delivered++;
	else if (what == 'T')
		c->transient++;
	else
		c->permanent++;
}

/* cand_drop - forget candidate i (swap with the last). */
static void cand_drop(struct queue_metrics *m, size_t i)
{
	strmap_del(m->cand_index, m->cand[i].domain);
	free(m->cand[i].domain);
	m->ncand--;
	if (i != m->ncand) {
		m->cand[i] = m->cand[m->ncand];
		strmap_put(m->cand_index, m->cand[i].domain, (void *)(uintptr_t)(i + 1));
	}
}

/* cand_add - the sketch sees one outcome of domain. */
static void cand_add(struct queue_metrics *m, const char *domain)
{
	uintptr_t at = (uintptr_t)strmap_get(m->cand_index, domain);

	m->seen++;
	if (at) {
		m->cand[at - 1].n++;
		return;
	}
	if (m->ncand < m->candcap) {
		m->cand[m->ncand].domain = xstrdup(domain);
		m->cand[m->ncand].n = 1;
		m->ncand++;
		strmap_put(m->cand_index, domain, (void *)(uintptr_t)m->ncand);
		return;
	}
	/* Full: every candidate loses one, the newcomer is not kept (Misra-Gries). */
	for (size_t i = m->ncand; i-- > 0;)
		if (--m->cand[i].n == 0)
			cand_drop(m, i);
}

void queue_metrics_outcome(struct queue_metrics *m, const char *binding, const char *domain,
			   char what)
{
	const char *b = binding && *binding ? binding : "default";
	struct qm_counts *c = strmap_get(m->bindings, b);

	if (c == NULL && strmap_count(m->bindings) < QM_MAX_LABELS) {
		c = xcalloc(1, sizeof(*c));
		strmap_put(m->bindings, b, c);
	}
	bump(c ? c : &m->binding_other, what);

	if (domain == NULL || *domain == '\0' || m->limit == 0) {
		bump(&m->domain_other, what);
		return;
	}
	c = strmap_get(m->domains, domain);
	bump(c ? c : &m->domain_other, what);
	if (m->candcap)
		cand_add(m, domain);
}

/* by_count - qsort: candidates by estimated outcomes, most first, then by name. */
static int by_count(const void *a, const void *b)
{
	const struct qm_cand *x = *(const struct qm_cand *const *)a;
	const struct qm_cand *y = *(const struct qm_cand *const *)b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

size_t queue_metrics_assign(struct queue_metrics *m)
{
	size_t given = 0, top;
	struct qm_cand **v;

	if (m->ncand == 0 || strmap_count(m->domains) >= m->limit)
		return 0;
	v = xmalloc(m->ncand * sizeof(*v));
	for (size_t i = 0; i < m->ncand; i++)
		v[i] = &m->cand[i];
	qsort(v, m->ncand, sizeof(*v), by_count);
	top = m->ncand < m->limit ? m->ncand : m->limit;
	for (size_t i = 0; i < top && strmap_count(m->domains) < m->limit; i++) {
		if (strmap_get(m->domains, v[i]->domain))
			continue;
		/*
		 * The share, 1/(4 limit): twice the sketch's worst undercount
		 * (seen / (candcap + 1)), so a domain that really has it is
		 * never refused for the estimate. Sorted: once one is below,
		 * so are the rest.
		 */
		if (v[i]->n * 4 * m->limit < m->seen)
			break;
		/* From now on: what it did before stays in "other", which never goes down. */
		strmap_put(m->domains, v[i]->domain, xcalloc(1, sizeof(struct qm_counts)));
		given++;
	}
	free(v);
	return given;
}

/* What the each-functions pass through strmap_each. */
struct each_ctx {
	void (*count_fn)(void *ctx, const char *name, uint64_t n);
	void (*counts_fn)(void *ctx, const char *name, const struct qm_counts *c);
	void *ctx;
};

/* each_count, each_counts - strmap_each adapters. */
static void each_count(void *ctx, const char *key, void *value)
{
	struct each_ctx *e = ctx;

	e->count_fn(e->ctx, key, *(const uint64_t *)value);
}

static void each_counts(void *ctx, const char *key, void *value)
{
	struct each_ctx *e = ctx;

	e->counts_fn(e->ctx, key, value);
}

void queue_metrics_protocols(const struct queue_metrics *m,
			     void (*fn)(void *ctx, const char *protocol, uint64_t n), void *ctx)
{
	struct each_ctx e = { fn, NULL, ctx };

	strmap_each(m->protocols, each_count, &e);
	if (m->protocol_other)
		fn(ctx, QM_OTHER, m->protocol_other);
}

void queue_metrics_bindings(const struct queue_metrics *m,
			    void (*fn)(void *ctx, const char *binding, const struct qm_counts *c),
			    void *ctx)
{
	struct each_ctx e = { NULL, fn, ctx };
	const struct qm_counts zero = { 0, 0, 0 };

	strmap_each(m->bindings, each_counts, &e);
	if (m->binding_other.delivered || m->binding_other.transient ||
	    m->binding_other.permanent)
		fn(ctx, QM_OTHER, &m->binding_other);
	if (strmap_count(m->bindings) == 0)
		fn(ctx, "default", &zero);	/* the families are never empty */
}

void queue_metrics_domains(const struct queue_metrics *m,
			   void (*fn)(void *ctx, const char *domain, const struct qm_counts *c),
			   void *ctx)
{
	struct each_ctx e = { NULL, fn, ctx };

	strmap_each(m->domains, each_counts, &e);
	fn(ctx, QM_OTHER, &m->domain_other);
}
