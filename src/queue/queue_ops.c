/*
 * queue_ops.c - acting on one queued message by id: requeue, fail, rebind
 *
 * What include/impetus/queue.h asks of the queue (through src/api/
 * api_queue.c, which posts here) and what the console will ask the same
 * way. A message is found by id in the manager's index (struct
 * queue.msgs); its recipients are entries in the queues of (its binding,
 * each recipient's domain), in an active FIFO or a delayed heap, or out
 * in a batch on a connection. An operation marks the message and takes
 * its entries out of each queue it can be in with one pass over that
 * queue (queue_dest_take), so a batch of ids costs one pass per queue
 * touched, not one per id.
 *
 * Entries out in a batch cannot be taken back: they come home with an
 * outcome. A delivered one stays delivered. For one that comes back
 * deferred or not tried, queue_outcome.c asks this file where it goes:
 * after a fail, it fails with the same reply (op_fail_text); after a
 * rebind, into the new binding's queue (queue_ops_home).
 *
 * Durability: a fail writes the RCPT_STATE records of a P outcome; a
 * rebind writes a BINDING record (docs/spool.md); a requeue writes the
 * new retry time. Retention (imp_inject's per-message expiry) lives in
 * struct qmsg only: a restart forgets it and Message_Expiration applies.
 *
 * Ownership: scheduler thread. Failures: -ENOENT (no such message, or
 * none of its recipients is queued here, or no such binding).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "message/envelope.h"
#include "message/vctx.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "spool/spool.h"
#include "spool/spool_idmap.h"

/* The entries an operation took, and the queues it touched. */
struct taken {
	struct qentry **v;
	size_t n, cap;
	struct queue_dest **dq;		/* the queue each entry came from */
	size_t ndq_cap;
	struct queue_dest **touched;
	size_t ntouched, touched_cap;
};

static void taken_free(struct taken *t)
{
	free(t->v);
	free(t->dq);
	free(t->touched);
}

/* touch - remember a queue once (for the kicks and releases at the end). */
static void touch(struct taken *t, struct queue_dest *dq)
{
	for (size_t i = 0; i < t->ntouched; i++)
		if (t->touched[i] == dq)
			return;
	if (t->ntouched == t->touched_cap) {
		t->touched_cap = t->touched_cap ? t->touched_cap * 2 : 8;
		t->touched = xrealloc(t->touched, t->touched_cap * sizeof(*t->touched));
	}
	t->touched[t->ntouched++] = dq;
}

/*
 * collect - the queues the marked message m can have entries in: one per
 * domain of its queued recipients, under its binding. Only existing ones
 * (a queue that is gone holds nothing).
 */
static void collect(struct queue *q, struct qmsg *m, struct taken *t)
{
	const struct envelope *sm = m->sm;

	for (size_t i = 0; i < sm->nrcpt; i++) {
		if (sm->rcpts[i].state != ENVELOPE_RCPT_QUEUED)
			continue;
		char *domain = queue_route_domain(sm->rcpts[i].addr);
		struct queue_dest *dq = queue_dest_find(q, sm->binding, queue_admin_route(q, domain));
		free(domain);
		if (dq)
			touch(t, dq);
	}
}

/* take_all - take the marked messages' entries out of every touched queue. */
static void take_all(struct taken *t, bool heap_only)
{
	for (size_t i = 0; i < t->ntouched; i++) {
		size_t before = t->n;

		queue_dest_take(t->touched[i], heap_only, &t->v, &t->n, &t->cap);
		if (t->n > t->ndq_cap) {
			t->ndq_cap = t->cap;
			t->dq = xrealloc(t->dq, t->ndq_cap * sizeof(*t->dq));
		}
		for (size_t k = before; k < t->n; k++)
			t->dq[k] = t->touched[i];
	}
}

/* kick_release - every touched queue makes progress, then is freed if unused. */
static void kick_release(struct queue *q, struct taken *t)
{
	for (size_t i = 0; i < t->ntouched; i++)
		queue_kick(q, t->touched[i]);
	for (size_t i = 0; i < t->ntouched; i++)
		queue_dest_release(t->touched[i]);
}

/* ------------------------------------------------------------------ */
/* requeue                                                             */

int queue_op_requeue(struct queue *q, const uint64_t *ids, size_t n)
{
	struct taken t = { 0 };
	size_t found = 0;
	int64_t now_s = queue_now_us() / 1000000;

	for (size_t i = 0; i < n; i++) {
		struct qmsg *m = spool_idmap_get(&q->msgs, ids[i]);
		if (m == NULL || m->op_mark)
			continue;
		m->op_mark = true;
		found++;
		collect(q, m, &t);
	}
	if (found == 0) {
		taken_free(&t);
		return -ENOENT;
	}
	take_all(&t, true);
	for (size_t i = 0; i < n; i++) {
		struct qmsg *m = spool_idmap_get(&q->msgs, ids[i]);
		if (m)
			m->op_mark = false;
	}
	/* Delayed entries become due now; retry counts stay (the back-off goes on from them). */
	for (size_t i = 0; i < t.n; i++) {
		struct qentry *e = t.v[i];
		e->next_attempt = now_s;
		spool_rcpt_retry(q->deps.spool, e->m->sm->id, e->rcpt, e->retries, now_s);
		queue_dest_append(t.dq[i], e);
	}
	kick_release(q, &t);
	if (t.n > 0)
		spool_flush(q->deps.spool);	/* an operator's change: durable now, not in a second */
	taken_free(&t);
	return 0;
}

/* ------------------------------------------------------------------ */
/* fail                                                                */

int queue_op_fail(struct queue *q, uint64_t id, int code, const char *text, bool quiet)
{
	struct qmsg *m = spool_idmap_get(&q->msgs, id);
	struct taken t = { 0 };
	struct str response = STR_INIT;

	if (m == NULL)
		return -ENOENT;
	m->op_mark = true;
	collect(q, m, &t);
	take_all(&t, false);
	m->op_mark = false;
	str_appendf(&response, "%d %s", code, text ? text : "");
	if (m->pending > t.n) {
		/* Some are out in a batch: they fail too when they come back undelivered. */
		free(m->op_fail_text);
		m->op_fail_text = xstrdup(response.s);
		m->op_fail_code = code;
		m->op_fail_quiet = quiet;
	}
	/* The last failure may finish and free m: nothing of it is touched after. */
	for (size_t i = 0; i < t.n; i++) {
		struct queue_outcome o = { 0 };
		o.code = code;
		o.stage = 21;	/* out of band */
		o.response = response.s;
		o.quiet = quiet;
		queue_outcome_fail(q, t.dq[i], t.v[i], &o);
	}
	kick_release(q, &t);
	taken_free(&t);
	str_free(&response);
	return 0;
}

/* ------------------------------------------------------------------ */
/* rebind                                                              */

int queue_op_rebind(struct queue *q, uint64_t id, const char *binding)
{
	struct qmsg *m = spool_idmap_get(&q->msgs, id);
	struct taken t = { 0 };
	int64_t now_s = queue_now_us() / 1000000;

	if (binding == NULL)
		binding = "";
	if (*binding && !conf_binding_exists(q->conf, binding))
		return -ENOENT;	/* impetus/queue.h: no such binding is -ENOENT too */
	if (m == NULL)
		return -ENOENT;
	m->op_mark = true;
	collect(q, m, &t);
	take_all(&t, false);
	m->op_mark = false;

	struct envelope *sm = m->sm;
	const char *group = *binding ? conf_binding_group_of(q->conf, binding) : NULL;
	free(sm->binding);
	free(sm->binding_group);
	sm->binding = xstrdup(binding);
	sm->binding_group = xstrdup(group ? group : "");
	spool_binding(q->deps.spool, sm->id, sm->binding, sm->binding_group);
	for (size_t i = 0; i < t.n; i++) {
		struct qentry *e = t.v[i];
		struct queue_dest *to = queue_dest_get(q, sm->binding, t.dq[i]->domain);
		e->next_attempt = now_s;
		queue_dest_append(to, e);
		touch(&t, to);
	}
	kick_release(q, &t);
	taken_free(&t);
	return 0;
}

/* ------------------------------------------------------------------ */
/* entries coming back, retention                                      */

struct queue_dest *queue_ops_home(struct queue *q, struct queue_dest *dq, struct qentry *e)
{
	const char *b = e->m->sm->binding;
	const char *d = queue_admin_route(q, dq->domain);

	if (strcmp(dq->binding, b) == 0 && d == dq->domain)
		return dq;
	return queue_dest_get(q, b, d);	/* rebound, or rerouted, while it was out */
}

bool queue_ops_returned(struct queue *q, struct queue_dest *dq, struct qentry *e)
{
	struct qmsg *m = e->m;

	if (m->op_fail_text) {
		struct queue_outcome o = { 0 };
		o.code = m->op_fail_code;
		o.stage = 21;
		o.response = m->op_fail_text;
		o.quiet = m->op_fail_quiet;
		queue_outcome_fail(q, dq, e, &o);
		return true;
	}
	struct queue_dest *home = queue_ops_home(q, dq, e);
	if (home == dq)
		return false;
	queue_dest_append(home, e);
	queue_kick(q, home);
	return true;
}

int64_t queue_stored_expiry(const struct envelope *sm)
{
	const char *ret = sm->vctx ? vctx_get(sm->vctx, VCTX_KEY_RETENTION) : NULL;
	char *end;
	unsigned long secs;

	if (ret == NULL)
		return 0;
	secs = strtoul(ret, &end, 10);
	if (*end != '\0' || secs == 0 || secs > UINT32_MAX)
		return 0;
	return sm->received + (int64_t)secs;
}

int queue_set_retention(struct queue *q, uint64_t id, uint32_t seconds)
{
	struct qmsg *m = spool_idmap_get(&q->msgs, id);

	if (m == NULL)
		return -ENOENT;
	m->expires = seconds ? m->sm->received + (int64_t)seconds : 0;
	return 0;
}
