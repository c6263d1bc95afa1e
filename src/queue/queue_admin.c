/*
 * queue_admin.c - the operator's controls over whole queues, and the counters
 *
 * What the console (queue_console.c) asks of the queue beyond one message:
 *
 *   suspend / resume   a domain or a binding is held: its queues keep
 *                      their mail and open no connection (queue_kick
 *                      asks queue_admin_held); resume kicks them again
 *   reroute            the mail of domain D1 goes to D2's queue (D2's
 *                      Routes, Gateway or MX) from now on: queued entries
 *                      move, new ones and ones coming back from a batch
 *                      follow the rule (queue_admin_route)
 *   flush              the delayed entries of a domain are due now
 *   fail               the queued entries of a domain fail (P lines,
 *                      bounces unless quiet)
 *   rebind             a domain's (or every) message gets the binding
 *                      Assign_Binding and its Binding_Group choose now
 *   counters           delivered / failed / received and their rates for
 *                      `summary`, per queue for `domain`
 *
 * Durability: flush writes each entry's new retry time, fail the
 * RCPT_STATE records of a P outcome, rebind a BINDING record per message
 * moved (the same records as the per-message operations of queue_ops.c),
 * so what they changed survives a crash. The held and reroute maps are
 * run-time controls and live in memory only: after a restart the mail is
 * delivered the configured way again (none of it is lost).
 *
 * Entries out in a batch cannot be taken back; an operation acts on the
 * queued ones and says how many it touched. Those out finish their
 * attempt; if they come back deferred they land where the rules say
 * (rerouted or rebound queue; queue_ops_home).
 *
 * Ownership: scheduler thread, like everything of struct queue. Costs:
 * the counters are a few additions per outcome; the operations walk the
 * queues of one domain (or all for `rebind all`).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"
#include "dns/dns.h"
#include "message/envelope.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "spool/spool.h"

/* Reroute rules followed at most this deep (they are kept flat; this is a guard). */
#define REROUTE_MAX_DEPTH 8

/* ------------------------------------------------------------------ */
/* counters                                                            */

void queue_rate_add(struct queue_rate *r, int64_t now_s)
{
	size_t i = (size_t)(now_s % QUEUE_RATE_SLOTS);

	if (r->sec[i] != now_s) {
		r->sec[i] = now_s;
		r->n[i] = 0;
	}
	r->n[i]++;
}

double queue_rate_get(const struct queue_rate *r, int64_t now_s, int span)
{
	uint64_t sum = 0;

	/* Whole seconds only: the current one is still filling. */
	for (size_t i = 0; i < QUEUE_RATE_SLOTS; i++)
		if (r->sec[i] < now_s && r->sec[i] >= now_s - span)
			sum += r->n[i];
	return span > 0 ? (double)sum / span : 0.0;
}

void queue_admin_count(struct queue *q, struct queue_dest *dq, char what)
{
	int64_t now_s = queue_now_us() / 1000000;

	switch (what) {
	case 'D':
		q->st.delivered++;
		q->life.delivered++;
		queue_rate_add(&q->st.delivery, now_s);
		break;
	case 'P':
		q->st.failed++;
		q->life.failed++;
		queue_rate_add(&q->st.delivery, now_s);
		break;
	case 'R':
		q->st.received++;
		q->life.received++;
		queue_rate_add(&q->st.reception, now_s);
		break;
	default:
		break;
	}
	if (what == 'D' || what == 'T' || what == 'P')
		queue_metrics_outcome(&q->metrics, dq ? dq->binding : "", dq ? dq->domain : NULL,
				      what);
	if (dq == NULL)
		return;
	if (what == 'D')
		dq->delivered++;
	else if (what == 'P')
		dq->failed++;
	else if (what == 'T')
		dq->deferred++;
	if (what == 'D' || what == 'P')
		queue_rate_add(&dq->delivery, now_s);
}

/* sum_dest - add one queue's sizes to the totals. */
static void sum_dest(void *ctx, const char *key, void *value)
{
	struct queue_stats *st = ctx;
	const struct queue_dest *dq = value;

	st->active += dq->nactive;
	st->delayed += dq->nheap;
}

void queue_get_stats(struct queue *q, struct queue_stats *st)
{
	int64_t now_us = queue_now_us();
	int64_t now_s = now_us / 1000000;

	memset(st, 0, sizeof(*st));
	/* One pass over the queues (not the messages): cheap even under load. */
	strmap_each(q->queues, sum_dest, st);
	st->total = q->nrcpts;
	st->messages = q->nmsgs;
	st->destinations = strmap_count(q->queues);
	st->conns = q->conns;
	st->delivered = q->st.delivered;
	st->failed = q->st.failed;
	st->received = q->st.received;
	st->delivered_total = q->life.delivered;
	st->failed_total = q->life.failed;
	st->received_total = q->life.received;
	st->delivery_rate_10 = queue_rate_get(&q->st.delivery, now_s, 10);
	st->delivery_rate_60 = queue_rate_get(&q->st.delivery, now_s, 60);
	st->reception_rate_10 = queue_rate_get(&q->st.reception, now_s, 10);
	st->reception_rate_60 = queue_rate_get(&q->st.reception, now_s, 60);
	st->since_reset = (now_us - q->st.reset_us) / 1000000;
	st->uptime = (now_us - q->started_us) / 1000000;
	st->held = q->nheld;
	st->reroutes = q->reroutes ? strmap_count(q->reroutes) : 0;
	if (q->deps.dns) {
		struct dns_stats ds;
		dns_get_stats(q->deps.dns, &ds);	/* the resolver is the scheduler's too */
		st->dns_queries = ds.queries - q->st.dns_base;
		st->dns_queries_total = ds.queries;
		st->dns_requests_total = ds.requests;
		st->dns_cache_hits_total = ds.cache_hits;
		st->dns_lookups_total = ds.lookups;
		st->dns_tempfails_total = ds.tempfails;
		st->dns_permfails_total = ds.permfails;
		st->has_dns = true;
		st->dns_pending = ds.inflight;
		st->dns_cached = ds.cached;
		if (st->since_reset > 0)
			st->dns_rate = (double)st->dns_queries / (double)st->since_reset;
	}
}

struct queue_metrics *queue_get_metrics(struct queue *q)
{
	queue_metrics_assign(&q->metrics);	/* a scrape is when domains are ranked */
	return &q->metrics;
}

void queue_binding_sizes(struct queue *q,
			 void (*fn)(void *ctx, const char *binding, uint64_t active, uint64_t delayed),
			 void *ctx)
{
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, NULL, NULL, &v);	/* sorted by binding */

	for (size_t i = 0; i < n;) {
		const char *b = v[i]->binding;
		uint64_t a = 0, d = 0;
		size_t j = i;

		for (; j < n && strcmp(v[j]->binding, b) == 0; j++) {
			a += v[j]->nactive;
			d += v[j]->nheap;
		}
		fn(ctx, b, a, d);
		i = j;
	}
	free(v);
}

void queue_stats_reset(struct queue *q)
{
	memset(&q->st, 0, sizeof(q->st));
	q->st.reset_us = queue_now_us();
	if (q->deps.dns) {
		struct dns_stats ds;
		dns_get_stats(q->deps.dns, &ds);
		q->st.dns_base = ds.queries;
	}
}

/* ------------------------------------------------------------------ */
/* queues of a domain or binding                                       */

struct dest_filter {
	const char *binding;	/* NULL = any */
	const char *domain;	/* NULL = any */
	struct queue_dest **v;
	size_t n, cap;
};

/* filter_one - keep dq if it is of the binding and domain asked. */
static void filter_one(void *ctx, const char *key, void *value)
{
	struct dest_filter *f = ctx;
	struct queue_dest *dq = value;

	if (f->binding && strcmp(dq->binding, f->binding) != 0)
		return;
	if (f->domain && strcmp(dq->domain, f->domain) != 0)
		return;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
	}
	f->v[f->n++] = dq;
}

/* by_binding_domain - the order of every listing: binding, then domain. */
static int by_binding_domain(const void *a, const void *b)
{
	const struct queue_dest *x = *(struct queue_dest *const *)a;
	const struct queue_dest *y = *(struct queue_dest *const *)b;
	int c = strcmp(x->binding, y->binding);

	return c ? c : strcmp(x->domain, y->domain);
}

size_t queue_admin_dests(struct queue *q, const char *binding, const char *domain,
			 struct queue_dest ***out)
{
	struct dest_filter f = { binding, domain, NULL, 0, 0 };

	strmap_each(q->queues, filter_one, &f);
	if (f.n > 1)
		qsort(f.v, f.n, sizeof(*f.v), by_binding_domain);
	*out = f.v;
	return f.n;
}

/* kick_release - kick each queue, then free those nothing holds (top of an event only). */
static void kick_release(struct queue *q, struct queue_dest **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_kick(q, v[i]);
	for (size_t i = 0; i < n; i++)
		queue_dest_release(v[i]);
}

/* ------------------------------------------------------------------ */
/* suspend, resume                                                     */

bool queue_admin_held(const struct queue *q, const struct queue_dest *dq)
{
	return (q->held_domains && strmap_get(q->held_domains, dq->domain)) ||
	       (q->held_bindings && strmap_get(q->held_bindings, dq->binding));
}

bool queue_admin_is_held(const struct queue *q, const char *binding, const char *domain)
{
	return (domain && q->held_domains && strmap_get(q->held_domains, domain)) ||
	       (binding && q->held_bindings && strmap_get(q->held_bindings, binding));
}

int queue_admin_suspend(struct queue *q, bool binding, const char *name, bool on)
{
	struct strmap **map = binding ? &q->held_bindings : &q->held_domains;

	if (*map == NULL)
		*map = strmap_new();
	bool was = strmap_get(*map, name) != NULL;
	if (on == was)
		return 0;
	if (on) {
		strmap_put(*map, name, (void *)1);
		q->nheld++;
		/* Connections already open finish their batch; no new batch is handed out. */
		return 1;
	}
	strmap_del(*map, name);
	q->nheld--;
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, binding ? name : NULL, binding ? NULL : name, &v);
	kick_release(q, v, n);
	free(v);
	return 1;
}

/* ------------------------------------------------------------------ */
/* reroute                                                             */

const char *queue_admin_route(const struct queue *q, const char *domain)
{
	const char *to;

	if (q->reroutes == NULL)
		return domain;
	for (int depth = 0; depth < REROUTE_MAX_DEPTH; depth++) {
		to = strmap_get(q->reroutes, domain);
		if (to == NULL)
			break;
		domain = to;
	}
	return domain;
}

/* retarget - a rule X -> from becomes X -> to (rules stay one step deep). */
struct retarget {
	struct strmap *m;
	const char *from, *to;
	char **keys;
	size_t n, cap;
};

/* retarget_one - note a rule that leads to r->from. */
static void retarget_one(void *ctx, const char *key, void *value)
{
	struct retarget *r = ctx;

	if (strcmp(value, r->from) != 0)
		return;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->keys = xrealloc(r->keys, r->cap * sizeof(*r->keys));
	}
	r->keys[r->n++] = xstrdup(key);
}

/* mark_all - mark the message of every entry of dq (the delayed ones only if heap_only). */
static void mark_all(struct queue_dest *dq, bool heap_only, bool on)
{
	if (!heap_only)
		for (struct qentry *e = dq->head; e; e = e->next)
			e->m->op_mark = on;
	for (uint32_t i = 0; i < dq->nheap; i++)
		dq->heap[i]->m->op_mark = on;
}

/* take_dest - every entry of dq (delayed ones only if heap_only) into *v; one pass. */
static size_t take_dest(struct queue_dest *dq, bool heap_only, struct qentry ***v, size_t *n,
			size_t *cap)
{
	size_t before = *n;

	mark_all(dq, heap_only, true);
	queue_dest_take(dq, heap_only, v, n, cap);
	/* Unmark through what was taken: the other marked messages' entries were all taken. */
	for (size_t i = before; i < *n; i++)
		(*v)[i]->m->op_mark = false;
	mark_all(dq, heap_only, false);
	return *n - before;
}

long queue_admin_reroute(struct queue *q, const char *from, const char *to)
{
	/* A copy: the map's strings may be replaced below (reroute D1 D1 when D1 -> X). */
	char *final = xstrdup(queue_admin_route(q, to));

	if (strcmp(final, from) == 0) {
		free(final);
		return -ELOOP;		/* to already goes to from, or is from */
	}
	if (q->reroutes == NULL)
		q->reroutes = strmap_new();
	free(strmap_put(q->reroutes, from, xstrdup(final)));
	/* Rules that led to from lead to final now: the map stays one step deep. */
	struct retarget r = { q->reroutes, from, final, NULL, 0, 0 };
	strmap_each(q->reroutes, retarget_one, &r);
	for (size_t i = 0; i < r.n; i++) {
		free(strmap_put(q->reroutes, r.keys[i], xstrdup(final)));
		free(r.keys[i]);
	}
	free(r.keys);

	/* The queued entries of from (each binding) move to final's queue of that binding. */
	struct queue_dest **v, **touched;
	size_t n = queue_admin_dests(q, NULL, from, &v);
	size_t moved = 0;
	touched = xcalloc(2 * n + 1, sizeof(*touched));
	for (size_t i = 0; i < n; i++) {
		struct qentry **ev = NULL;
		size_t en = 0, ecap = 0;
		take_dest(v[i], false, &ev, &en, &ecap);
		struct queue_dest *dst = queue_dest_get(q, v[i]->binding, final);
		/* Active ones stay due; delayed ones keep their retry time. */
		for (size_t k = 0; k < en; k++)
			queue_dest_enqueue(dst, ev[k]);
		moved += en;
		free(ev);
		touched[2 * i] = v[i];
		touched[2 * i + 1] = dst;
	}
	kick_release(q, touched, 2 * n);
	free(touched);
	free(v);
	free(final);
	return (long)moved;
}

/* ------------------------------------------------------------------ */
/* flush, fail                                                         */

long queue_admin_flush(struct queue *q, const char *domain)
{
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, NULL, domain, &v);
	int64_t now_s = queue_now_us() / 1000000;
	size_t moved = 0;

	if (n == 0) {
		free(v);
		return -ENOENT;
	}
	for (size_t i = 0; i < n; i++) {
		struct qentry **ev = NULL;
		size_t en = 0, ecap = 0;
		take_dest(v[i], true, &ev, &en, &ecap);
		/* Due now, written down so a restart does not put them back to their old time. */
		for (size_t k = 0; k < en; k++) {
			struct qentry *e = ev[k];
			e->next_attempt = now_s;
			spool_rcpt_retry(q->deps.spool, e->m->sm->id, e->rcpt, e->retries, now_s);
			queue_dest_append(v[i], e);
		}
		moved += en;
		free(ev);
	}
	kick_release(q, v, n);
	free(v);
	if (moved > 0)
		spool_flush(q->deps.spool);	/* an operator's change: durable now, not in a second */
	return (long)moved;
}

long queue_admin_fail(struct queue *q, const char *domain, int code, const char *text, bool quiet)
{
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, NULL, domain, &v);
	struct str response = STR_INIT;
	size_t failed = 0;

	if (n == 0) {
		free(v);
		return -ENOENT;
	}
	str_appendf(&response, "%d %s", code, text);
	for (size_t i = 0; i < n; i++) {
		struct qentry **ev = NULL;
		size_t en = 0, ecap = 0;
		take_dest(v[i], false, &ev, &en, &ecap);
		/* A failure may finish and free its message: nothing of it is used after. */
		for (size_t k = 0; k < en; k++) {
			struct queue_outcome o = { 0 };
			o.code = code;
			o.stage = 21;	/* out of band */
			o.response = response.s;
			o.quiet = quiet;
			queue_outcome_fail(q, v[i], ev[k], &o);
		}
		failed += en;
		free(ev);
	}
	kick_release(q, v, n);
	free(v);
	str_free(&response);
	return (long)failed;
}

/* ------------------------------------------------------------------ */
/* rebind                                                              */

/* chosen_binding - the binding Assign_Binding and the Binding_Group choose for sm now; caller frees. */
static char *chosen_binding(struct queue *q, struct envelope *sm)
{
	char *old_b = sm->binding, *old_g = sm->binding_group;
	char *b;

	sm->binding = NULL;
	sm->binding_group = NULL;
	queue_route_assign_binding(q, sm);
	queue_binding_choose(q, sm);
	b = sm->binding ? sm->binding : xstrdup("");
	free(sm->binding_group);
	sm->binding = old_b;
	sm->binding_group = old_g;
	return b;
}

long queue_admin_rebind(struct queue *q, const char *domain, size_t *examined)
{
	struct queue_dest **v;
	size_t n = queue_admin_dests(q, NULL, domain, &v);
	uint64_t *ids = NULL;
	size_t nids = 0, cap = 0;
	long moved = 0;

	*examined = 0;
	if (domain && n == 0) {
		free(v);
		return -ENOENT;
	}
	/* The messages first (once each): rebinding moves entries between the queues walked. */
	for (size_t i = 0; i < n; i++) {
		struct queue_dest *dq = v[i];
		for (int pass = 0; pass < 2; pass++) {
			size_t cnt = pass == 0 ? dq->nheap : 0;
			struct qentry *e = pass == 1 ? dq->head : NULL;
			for (size_t k = 0; pass == 0 ? k < cnt : e != NULL; k++) {
				struct qentry *x = pass == 0 ? dq->heap[k] : e;
				if (pass == 1)
					e = e->next;
				if (x->m->op_mark)
					continue;
				x->m->op_mark = true;
				if (nids == cap) {
					cap = cap ? cap * 2 : 64;
					ids = xrealloc(ids, cap * sizeof(*ids));
				}
				ids[nids++] = x->m->sm->id;
			}
		}
	}
	for (size_t i = 0; i < nids; i++) {
		struct qmsg *m = spool_idmap_get(&q->msgs, ids[i]);
		m->op_mark = false;
	}
	free(v);
	*examined = nids;
	for (size_t i = 0; i < nids; i++) {
		struct qmsg *m = spool_idmap_get(&q->msgs, ids[i]);
		if (m == NULL)
			continue;
		char *b = chosen_binding(q, m->sm);
		if (strcmp(b, m->sm->binding) != 0 && queue_op_rebind(q, ids[i], b) == 0)
			moved++;
		free(b);
	}
	free(ids);
	return moved;
}

/* ------------------------------------------------------------------ */
/* end                                                                 */

/* free_value - a reroute rule's target string. */
static void free_value(void *ctx, const char *key, void *value)
{
	free(value);
}

void queue_admin_free(struct queue *q)
{
	if (q->reroutes) {
		strmap_each(q->reroutes, free_value, NULL);
		strmap_free(q->reroutes);
	}
	if (q->held_domains)
		strmap_free(q->held_domains);
	if (q->held_bindings)
		strmap_free(q->held_bindings);
	q->reroutes = q->held_domains = q->held_bindings = NULL;
	q->nheld = 0;
}
