/*
 * queue.c - the queue manager: the part that kicks
 *
 * Runs on the scheduler thread (see queue.h; queue_int.h maps the other
 * files of src/queue/). The cycle of a recipient:
 *
 *   accept     -> binding assigned (queue_route.c), then into the active
 *                 FIFO of its (binding, domain) queue, or its delayed heap
 *                 when the next attempt is in the future (queue_dest.c)
 *   queue_kick -> resolve the destination if needed (queue_route.c), then
 *                 give batches to idle connections and open new ones up
 *                 to the connection goal, within the connection limits
 *                 and throttles (here); with MX_Rollup the connections
 *                 are the next hop's, shared by the domains behind it,
 *                 and a batch may carry several of them (kick_hop here,
 *                 the batches in queue_hop.c)
 *   outcome    -> delivered / failed (final: spool record, log line,
 *                 bounce) or deferred (back-off, delayed heap)
 *                 (queue_outcome.c)
 *
 * A per-queue timer wakes the queue when its earliest delayed entry is
 * due or a throttle has a token again; the maintainer
 * (Delayed_Queue_Scan_Interval) sweeps every queue as a safety net and
 * expires entries of held (suspended) queues. Queues that hit
 * Server_Max_Outbound_Connections wait in the starved list and are kicked,
 * oldest first, when any connection closes.
 *
 * Ownership: struct queue and everything reachable from it belong to the
 * scheduler thread; connections report back by posting to it. Failures:
 * none of its own; a destination that cannot be reached defers or fails
 * its recipients (queue_outcome.c).
 */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/util.h>

#include "config/config.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/str.h"
#include "core/strmap.h"
#include "api/api.h"
#include "log/log.h"
#include "log/log_event.h"
#include "message/message_view.h"
#include "queue/queue_goal.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "smtp/smtp_client.h"
#include "spool/spool.h"
#include "spool/spool_idmap.h"

/* Reply and DATA timeouts of outbound connections (seconds; RFC 5321 4.5.3.2). */
#define CONN_REPLY_TIMEOUT 300
#define CONN_DATA_TIMEOUT 600

/* ------------------------------------------------------------------ */
/* what the other files of src/queue/ share                            */

/* queue_now_us - wall-clock microseconds (retry times are unix seconds in the spool). */
int64_t queue_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct conf *queue_conf(struct queue *q)
{
	return q->conf;
}

struct spool *queue_spool(struct queue *q)
{
	return q->deps.spool;
}

struct loop *queue_scheduler(struct queue *q)
{
	return q->deps.scheduler;
}

struct pool *queue_io_pool(struct queue *q)
{
	return q->deps.io_pool;
}

/* ------------------------------------------------------------------ */
/* messages in                                                         */

/*
 * queue_add - enqueue every unfinished recipient of a message, then kick
 * each queue it touched once, so recipients of one domain that are not
 * adjacent in the envelope still travel in one batch.
 */
static void queue_add(struct queue *q, struct envelope *sm, bool kick)
{
	struct qmsg *m = XNEW(struct qmsg);
	struct queue_dest **touched = xcalloc(sm->nrcpt ? sm->nrcpt : 1, sizeof(*touched));
	size_t ntouched = 0;

	m->sm = sm;
	m->expires = queue_stored_expiry(sm);
	/*
	 * Delivery needs neither where the message came from nor how: drop
	 * those strings (the spool keeps them) to keep a queued recipient
	 * small. The R line was written before this.
	 */
	free(sm->client_ip);
	free(sm->helo);
	free(sm->protocol);
	sm->client_ip = sm->helo = sm->protocol = NULL;
	if (sm->binding == NULL)
		sm->binding = xstrdup("");
	if (sm->binding_group == NULL)
		sm->binding_group = xstrdup("");
	for (size_t i = 0; i < sm->nrcpt; i++) {
		struct envelope_rcpt *r = &sm->rcpts[i];
		if (r->state != ENVELOPE_RCPT_QUEUED)
			continue;
		char *domain = queue_route_domain(r->addr);
		struct queue_dest *dq = queue_dest_get(q, sm->binding, queue_admin_route(q, domain));
		free(domain);
		struct qentry *e = queue_entry_new(q);
		e->m = m;
		e->rcpt = (uint32_t)i;
		e->retries = r->retries;
		e->next_attempt = r->next_attempt;
		/* retried before a restart: a delay notice may have gone out already */
		e->delay_dsns = r->retries > 0 ? QENTRY_DELAY_DSN_UNKNOWN : 0;
		m->pending++;
		q->nrcpts++;
		queue_dest_enqueue(dq, e);
		size_t t = 0;
		while (t < ntouched && touched[t] != dq)
			t++;
		if (t == ntouched)
			touched[ntouched++] = dq;
	}
	/*
	 * Failures and "relayed" notices from before a restart: the report
	 * still lists them, except those whose recipient is queued again.
	 */
	envelope_failures_prune(sm);
	if (m->pending == 0) {
		/*
		 * Recovered with every recipient final: only its report is
		 * owed (recovery hands over no other such message). During
		 * recovery nothing can send it yet: queue_start does.
		 */
		free(touched);
		if (!q->started) {
			q->due = xrealloc(q->due, (q->ndue + 1) * sizeof(*q->due));
			q->due[q->ndue++] = m;
			return;
		}
		queue_outcome_finish(q, m);
		return;
	}
	q->nmsgs++;
	spool_idmap_put(&q->msgs, sm->id, m);
	/* Every queue's hosts first (queue_route_prefetch), then the kicks. */
	for (size_t t = 0; kick && t < ntouched; t++)
		queue_route_prefetch(q, touched[t]);
	for (size_t t = 0; kick && t < ntouched; t++)
		queue_kick(q, touched[t]);
	for (size_t t = 0; kick && t < ntouched; t++)
		queue_dest_release(touched[t]);	/* all its entries may have expired */
	free(touched);
}

void queue_accept(struct queue *q, struct envelope *msg)
{
	/*
	 * Mail received by an SMTP session had its binding chosen by the
	 * set_binding phase (the built-in Assign_Binding subscriber in
	 * smtp/smtp_policy.c, or a module before it). This fallback is for
	 * messages that never went through a session: bounces and other
	 * internal messages.
	 */
	if (!msg->binding_chosen)
		queue_route_assign_binding(q, msg);
	queue_binding_choose(q, msg);
	queue_log_reception(q, msg);
	queue_admin_count(q, NULL, 'R');
	queue_metrics_received(&q->metrics, msg->protocol);
	queue_add(q, msg, q->started);
}

void queue_accept_quiet(struct queue *q, struct envelope *msg)
{
	if (!msg->binding_chosen)
		queue_route_assign_binding(q, msg);
	queue_binding_choose(q, msg);
	queue_add(q, msg, q->started);
}

void queue_recovered(struct queue *q, struct envelope *msg)
{
	/* The binding chosen in a group is not stored: choose again. */
	queue_binding_choose(q, msg);
	queue_add(q, msg, q->started);
}

/* ------------------------------------------------------------------ */
/* batches and connections                                             */

static void on_batch_done(void *ctx, struct smtp_client *c, struct smtp_batch *b, bool more);
static void on_closed(void *ctx, struct smtp_client *c, bool connected, const char *reason);

/*
 * hooks_refresh - look up the hooks the hot paths run, again only when
 * the conf's generation is not the one they came from: a reload gives a
 * new conf, and at start-up the generation is attached to the conf after
 * the queue got it (the modules' init runs once the loops exist). One
 * pointer compare per kick or batch.
 */
static void hooks_refresh(struct queue *q)
{
	struct api_gen *g = api_gen_of(q->conf);

	if (g == q->hooks_gen && q->hooks_conf == q->conf)
		return;
	q->hooks_gen = g;
	q->hooks_conf = q->conf;
	q->goal_hook = api_hook_of(q->conf, API_HOOK_CONNECTION_GOAL);
	q->params_hook = api_hook_of(q->conf, API_HOOK_CLIENT_PARAMS);
}

/*
 * batch_view - what the client_params subscribers see of the batch's
 * message, on the connection's I/O loop: a snapshot of the envelope with
 * the batch's recipients only (so rcpt_index is the batch's order), which
 * nobody changes while the batch is out, unlike the queue's envelope.
 * The batch holds a reference to the configuration, so the generation
 * (and its hook list) lives as long as the batch. Only made when someone
 * subscribed.
 */
static void batch_view(struct queue *q, struct smtp_batch *b, const struct envelope *sm)
{
	struct envelope *v = envelope_new();

	v->id = sm->id;
	v->conn_id = sm->conn_id;
	v->received = sm->received;
	v->sender = xstrdup(sm->sender ? sm->sender : "");
	v->envid = sm->envid ? xstrdup(sm->envid) : NULL;
	v->ret = sm->ret;
	v->body_type = sm->body_type;
	v->smtputf8 = sm->smtputf8;
	v->binding = xstrdup(sm->binding ? sm->binding : "");
	v->binding_group = xstrdup(sm->binding_group ? sm->binding_group : "");
	v->loc = sm->loc;
	v->nrcpt = b->nrcpt;
	v->rcpts = xcalloc(b->nrcpt ? b->nrcpt : 1, sizeof(*v->rcpts));
	for (size_t i = 0; i < b->nrcpt; i++) {
		v->rcpts[i].addr = xstrdup(b->rcpts[i].addr);
		v->rcpts[i].orcpt = b->rcpts[i].orcpt ? xstrdup(b->rcpts[i].orcpt) : NULL;
		v->rcpts[i].notify = b->rcpts[i].notify;
	}
	b->view = message_view_new(v, true);
	b->params_hook = q->params_hook;
	b->hook_conf = conf_ref(q->conf);
}

struct smtp_batch *queue_batch_new(struct queue *q, struct qmsg *m, struct qentry *const *entries,
				   size_t n)
{
	struct qbatch *qb = xmalloc(sizeof(*qb) + n * sizeof(qb->entries[0]));
	struct smtp_batch *b = XNEW(struct smtp_batch);

	qb->dq = NULL;
	qb->hop = NULL;
	qb->ndoms = 0;
	qb->doms = NULL;
	qb->dom_of = NULL;
	qb->n = n;
	b->msg_id = m->sm->id;
	b->batch_id = id_next();
	b->loc = m->sm->loc;
	m->inflight++;		/* b->loc is a copy: a move waits for it (queue_moved) */
	b->sender = xstrdup(m->sm->sender);
	b->envid = m->sm->envid ? xstrdup(m->sm->envid) : NULL;
	b->ret = m->sm->ret;
	b->body_type = m->sm->body_type;
	b->smtputf8 = m->sm->smtputf8;
	b->nrcpt = n;
	b->rcpts = xcalloc(n, sizeof(*b->rcpts));
	b->qctx = qb;
	for (size_t i = 0; i < n; i++) {
		struct qentry *x = entries[i];
		const struct envelope_rcpt *r = &m->sm->rcpts[x->rcpt];
		qb->entries[i] = x;
		b->rcpts[i].index = x->rcpt;
		b->rcpts[i].addr = xstrdup(r->addr);
		b->rcpts[i].orcpt = r->orcpt ? xstrdup(r->orcpt) : NULL;
		b->rcpts[i].notify = r->notify;
	}
	if (q->params_hook)
		batch_view(q, b, m->sm);
	return b;
}

/* qbatch_free - the side record and what it owns. */
static void qbatch_free(struct qbatch *qb)
{
	if (qb->ndoms > 1) {
		free(qb->doms);
		free(qb->dom_of);
	}
	free(qb);
}

/*
 * take_batch - the next transaction of a queue's own connection: the
 * head entry's message and up to Max_Recipients_Per_Batch of its
 * recipients that are next in line. Expired entries met on the way fail
 * here (stage 21, out of band).
 */
static struct smtp_batch *take_batch(struct queue *q, struct queue_dest *dq)
{
	int64_t now_s = queue_now_us() / 1000000;
	int64_t max = queue_dest_settings(dq)->batch_size;
	struct qentry *e;

	while ((e = dq->head) != NULL && queue_outcome_expired(q, dq, e->m, now_s)) {
		queue_dest_pop(dq);
		queue_outcome_expire(q, dq, e,
				     "message expired: Message_Expiration reached before it could be delivered");
	}
	if (e == NULL)
		return NULL;

	struct qmsg *m = e->m;
	size_t n = 0;
	for (struct qentry *x = dq->head; x && x->m == m && n < (size_t)max; x = x->next)
		n++;
	struct qentry **v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = queue_dest_pop(dq);
	struct smtp_batch *b = queue_batch_new(q, m, v, n);
	struct qbatch *qb = b->qctx;
	free(v);
	qb->dq = dq;
	qb->ndoms = 1;
	qb->doms = &qb->dq;
	return b;
}

/* pick_io - the I/O loop of the next connection, round robin. */
static size_t pick_io(struct queue *q)
{
	return q->next_io++ % q->deps.nio;
}

/* conn_params - everything an outbound connection of this queue needs. */
static struct smtp_client_params *conn_params(struct queue *q, struct queue_dest *dq)
{
	struct smtp_client_params *p = XNEW(struct smtp_client_params);
	const struct queue_dest_settings *s = queue_dest_settings(dq);

	p->naddr = dq->naddr;
	p->addrs = xmemdup(dq->addrs, dq->naddr * sizeof(*dq->addrs));
	p->addr_names = xcalloc(dq->naddr, sizeof(char *));
	for (size_t i = 0; i < dq->naddr; i++)
		p->addr_names[i] = xstrdup(dq->names[i]);
	if (s->has_bind)
		p->bind = s->bind;
	p->ehlo_name = xstrdup(s->ehlo);
	p->tls_mode = s->tls_mode;
	p->connect_timeout = s->connect_timeout;
	p->idle_timeout = s->idle_timeout;
	p->reply_timeout = CONN_REPLY_TIMEOUT;
	p->data_timeout = CONN_DATA_TIMEOUT;
	p->max_deliveries = s->max_deliveries;
	if (s->auth_user) {
		p->auth_user = xstrdup(s->auth_user);
		p->auth_pass = s->auth_pass ? xstrdup(s->auth_pass) : NULL;
		p->auth_key = s->auth_key ? xstrdup(s->auth_key) : NULL;
		p->auth_type = s->auth_type;	/* the option's words are in enum smtp_auth_type's order */
		p->auth_allow_plaintext = s->auth_allow_plaintext;
	}
	return p;
}

/*
 * queue_auth_id - the AUTH identity a connection of dq would log in with
 * now, as one string (NULL: no AUTH). A queue's own connections are per
 * (binding, domain), so two scopes never share one; there it catches a
 * reload that changed the credentials of a queue with idle connections.
 * A next hop's key includes it (queue_hop.c).
 */
char *queue_auth_id(const struct queue_dest_settings *s)
{
	struct str id = STR_INIT;

	if (s->auth_user == NULL)
		return NULL;
	/* Room first: no realloc leaves a copy of the password behind. */
	str_reserve(&id, strlen(s->auth_user) + (s->auth_pass ? strlen(s->auth_pass) : 0) + 16);
	str_appendf(&id, "%u\x01%d\x01%s\x01%s", (unsigned)s->auth_type,
		    s->auth_allow_plaintext, s->auth_user, s->auth_pass ? s->auth_pass : "\x02");
	return str_steal(&id);
}

void queue_auth_id_free(char *id)
{
	if (id) {
		explicit_bzero(id, strlen(id));
		free(id);
	}
}

/* auth_same - whether the idle connection qc logged in as dq would now. */
static bool auth_same(const struct qconn *qc, const struct queue_dest_settings *s)
{
	char *now = queue_auth_id(s);
	bool same = (now == NULL && qc->auth_id == NULL) ||
		    (now && qc->auth_id && strcmp(now, qc->auth_id) == 0);

	queue_auth_id_free(now);
	return same;
}

/* throttles_refresh - the token buckets follow the configuration (a reload may change them). */
static void throttles_refresh(struct queue_dest *dq, int64_t now_us)
{
	const struct queue_dest_settings *s = queue_dest_settings(dq);

	throttle_configure(&dq->msg_tb, &s->throttle_msgs, now_us);
	throttle_configure(&dq->conn_tb, &s->throttle_conns, now_us);
}

/* starve - dq waits for a slot under Server_Max_Outbound_Connections (once in the list). */
static void starve(struct queue *q, struct queue_dest *dq)
{
	if (dq->starving)
		return;
	dq->starving = true;
	if (q->nstarved == q->starvedcap) {
		q->starvedcap = q->starvedcap ? q->starvedcap * 2 : 16;
		q->starved = xrealloc(q->starved, q->starvedcap * sizeof(*q->starved));
	}
	q->starved[q->nstarved++] = dq;
}

/*
 * kick_hop - make progress on a next hop (queue_hop.c): feed its idle
 * connections, then open new ones up to its goal. The goal is the
 * connection_goal hook's, asked about the hop as a whole (the members'
 * totals, Next_Hop_Max_Outbound_Connections, the hop's recipient limit as
 * the batch size). via is the member that asked, the one that waits in
 * the starved list when the server-wide limit is reached (NULL: the first
 * member with ready entries).
 */
static void kick_hop(struct queue *q, struct queue_hop *hop, struct queue_dest *via)
{
	if (!q->started || q->stopping || hop->nmembers == 0)
		return;
	queue_hop_limits(hop);
	hooks_refresh(q);

	/* Idle connections first: no connect cost. */
	while (hop->idle) {
		struct smtp_batch *b = queue_hop_take(q, hop, false);
		if (b == NULL)
			return;		/* nothing may go now: no new connection either */
		struct qconn *qc = hop->idle;
		hop->idle = qc->next_idle;
		qc->idle = false;
		qc->next_idle = NULL;
		queue_log_attempt(q, b->qctx, smtp_client_id(qc->c));
		smtp_client_send(qc->c, b);
	}

	struct imp_goal_input in = {
		.binding = hop->binding,
		.domain = via ? via->domain : hop->members[0]->domain,
		.connections = hop->conns,
		.max_connections = hop->max_conns,
		.batch_size = hop->max_rcpts,
		.recent_failures = hop->recent_failures,
		.next_hop = hop->name,
	};
	for (size_t i = 0; i < hop->nmembers; i++) {
		const struct queue_dest *m = hop->members[i];
		in.active += m->nactive;
		in.delayed += m->nheap;
		/* A message's recipients in several domains go together: the busiest domain's runs. */
		if (m->runs > in.runs)
			in.runs = m->runs;
		if (via == NULL && m->nactive > 0)
			via = hop->members[i];
	}
	if (in.active == 0)
		return;
	uint32_t goal = queue_goal(q->goal_hook, &in);
	int64_t smax = q->server_max_conns;
	while (hop->conns < goal) {
		if (smax > 0 && q->conns >= (uint64_t)smax) {
			if (via)
				starve(q, via);
			return;
		}
		struct smtp_batch *b = queue_hop_take(q, hop, true);
		if (b == NULL)
			return;
		struct qbatch *qb = b->qctx;
		struct qconn *qc = XNEW(struct qconn);
		qc->q = q;
		qc->hop = hop;
		struct smtp_client_events ev = { on_batch_done, on_closed, qc };
		hop->conns++;
		q->conns++;
		/* Timeouts and the addresses: the first domain's (they share the route and the key). */
		qc->c = smtp_client_open(q->deps.io[pick_io(q)], q->deps.scheduler, q->deps.spool,
					 conn_params(q, qb->dq), b, &ev);
		queue_log_attempt(q, qb, smtp_client_id(qc->c));
	}
}

/*
 * queue_kick - make progress on a queue: resolve, feed idle connections,
 * open new ones up to the goal (the next hop's, with MX_Rollup). Cheap to
 * call when there is nothing to do.
 */
void queue_kick(struct queue *q, struct queue_dest *dq)
{
	int64_t now_us = queue_now_us();
	int64_t now_s = now_us / 1000000;

	if (!q->started || q->stopping || dq->nactive == 0)
		return;
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	if (s->suspend || (q->nheld && queue_admin_held(q, dq)))
		return;
	if (dq->resolving)
		return;
	if (dq->hosts_expiry == 0 || now_s >= dq->hosts_expiry || dq->naddr == 0) {
		queue_route_resolve(q, dq);
		return;
	}
	if (s->rollup) {
		kick_hop(q, queue_hop_attach(q, dq), dq);
		return;
	}
	if (dq->hop)
		queue_hop_detach(dq);	/* MX_Rollup turned off by a reload */
	throttles_refresh(dq, now_us);
	hooks_refresh(q);

	/* Idle connections first: no connect cost. */
	while (dq->idle && dq->nactive > 0) {
		if (!auth_same(dq->idle, s)) {
			/* Logged in with credentials a reload replaced: never reuse it. */
			struct qconn *old = dq->idle;
			dq->idle = old->next_idle;
			old->idle = false;
			old->next_idle = NULL;
			smtp_client_close(old->c);
			continue;
		}
		int64_t wait = throttle_wait_us(&dq->msg_tb, now_us);
		if (wait > 0) {
			queue_dest_arm(dq, now_us + wait);
			return;
		}
		struct smtp_batch *b = take_batch(q, dq);
		if (b == NULL)
			return;
		throttle_take(&dq->msg_tb, now_us);
		struct qconn *qc = dq->idle;
		dq->idle = qc->next_idle;
		qc->idle = false;
		qc->next_idle = NULL;
		/* Before the send: from then on the batch is the connection's. */
		queue_log_attempt(q, b->qctx, smtp_client_id(qc->c));
		smtp_client_send(qc->c, b);
	}

	int64_t smax = q->server_max_conns;
	struct imp_goal_input in = {
		.binding = dq->binding,
		.domain = dq->domain,
		.active = dq->nactive,
		.runs = dq->runs,
		.delayed = dq->nheap,
		.connections = dq->conns,
		.max_connections = s->max_conns,
		.batch_size = s->batch_size,
		.recent_failures = dq->recent_failures,
	};
	uint32_t goal = queue_goal(q->goal_hook, &in);
	while (dq->conns < goal && dq->nactive > 0) {
		if (smax > 0 && q->conns >= (uint64_t)smax) {
			starve(q, dq);
			return;
		}
		int64_t wait = throttle_wait_us(&dq->conn_tb, now_us);
		int64_t wait2 = throttle_wait_us(&dq->msg_tb, now_us);
		if (wait2 > wait)
			wait = wait2;
		if (wait > 0) {
			queue_dest_arm(dq, now_us + wait);
			return;
		}
		struct smtp_batch *b = take_batch(q, dq);
		if (b == NULL)
			return;
		throttle_take(&dq->conn_tb, now_us);
		throttle_take(&dq->msg_tb, now_us);
		struct qconn *qc = XNEW(struct qconn);
		qc->q = q;
		qc->dq = dq;
		qc->auth_id = queue_auth_id(s);
		struct smtp_client_events ev = { on_batch_done, on_closed, qc };
		dq->conns++;
		q->conns++;
		/* qb stays the scheduler's while b is out: the A events read it after the open. */
		struct qbatch *qb = b->qctx;
		qc->c = smtp_client_open(q->deps.io[pick_io(q)], q->deps.scheduler, q->deps.spool,
					 conn_params(q, dq), b, &ev);
		queue_log_attempt(q, qb, smtp_client_id(qc->c));
	}
}

/* outcome_of - the result of one recipient in the form the log/fail code takes. */
static void outcome_of(const struct smtp_batch *b, const struct smtp_rcpt_result *r,
		       struct queue_outcome *o)
{
	memset(o, 0, sizeof(*o));
	o->code = r->code;
	o->stage = r->stage;
	o->response = r->response;
	o->remote = b->remote_ip;
	o->remote_host = b->remote_host;
	o->batch_id = b->batch_id;
	o->conn_id = b->conn_id;
	o->bytes = b->bytes_sent;
	o->peer_dsn = b->peer_dsn;
}

/*
 * too_many - a RCPT refused for the transaction's size, not the
 * recipient: "452 4.5.3" or a 452 that says "too many recipients" (RFC
 * 5321 4.5.3.1.10: the client sends the rest in another transaction).
 */
static bool too_many(const struct smtp_rcpt_result *r)
{
	return r->outcome == SMTP_OUT_TRANSIENT && r->stage == STAGE_RCPT_SENT && r->code == 452 &&
	       r->response && (strstr(r->response, "4.5.3") != NULL ||
			       strcasestr(r->response, "too many recipients") != NULL);
}

/*
 * next_transaction - recipients a server refused only for the
 * transaction's size go back as not tried when others of the batch were
 * delivered: the next transaction (on this connection, right away) takes
 * them without a retry count or a T line. Without a delivery the 452
 * stays a deferral, so a server that takes none cannot loop us.
 */
static void next_transaction(struct smtp_batch *b)
{
	bool delivered = false;

	for (size_t i = 0; i < b->nrcpt && !delivered; i++)
		delivered = b->rcpts[i].outcome == SMTP_OUT_DELIVERED;
	for (size_t i = 0; delivered && i < b->nrcpt; i++)
		if (too_many(&b->rcpts[i]))
			b->rcpts[i].outcome = SMTP_OUT_NOT_TRIED;
}

/*
 * on_batch_done - a connection handed a batch back: apply the outcomes,
 * each to its recipient's own queue, then give it the next batch, keep it
 * idle, or close it for a starved queue.
 */
static void on_batch_done(void *ctx, struct smtp_client *c, struct smtp_batch *b, bool more)
{
	struct qconn *qc = ctx;
	struct queue *q = qc->q;
	struct qbatch *qb = b->qctx;
	struct queue_hop *hop = qc->hop;
	size_t ndoms = qb->ndoms;
	struct queue_dest *one = qb->dq;
	/* The queues outlive qb: released once the kick below is done. */
	struct queue_dest **doms = ndoms > 1 ? xmemdup(qb->doms, ndoms * sizeof(*doms)) : &one;

	qc->c = c;
	if (b->remote_ip[0]) {
		/* a server answered */
		for (size_t d = 0; d < ndoms; d++)
			doms[d]->recent_failures = 0;
		if (hop)
			hop->recent_failures = 0;
	}
	if (qb->n > 0) {
		struct qmsg *m = qb->entries[0]->m;

		queue_outcome_batch_back(q, m);
	}
	next_transaction(b);
	/* Entries not tried go back to the front, in their order. */
	for (size_t i = qb->n; i-- > 0;) {
		struct queue_dest *dq = qbatch_dq(qb, i);
		if (b->rcpts[i].outcome == SMTP_OUT_NOT_TRIED &&
		    !queue_ops_returned(q, dq, qb->entries[i]))
			queue_dest_prepend(dq, qb->entries[i]);
	}
	for (size_t i = 0; i < qb->n; i++) {
		struct queue_dest *dq = qbatch_dq(qb, i);
		struct qentry *e = qb->entries[i];
		struct queue_outcome o;
		outcome_of(b, &b->rcpts[i], &o);
		switch (b->rcpts[i].outcome) {
		case SMTP_OUT_DELIVERED:
			queue_outcome_delivered(q, dq, e, &o);
			break;
		case SMTP_OUT_TRANSIENT:
			queue_outcome_defer(q, dq, e, &o);
			break;
		case SMTP_OUT_PERMANENT:
			queue_outcome_fail(q, dq, e, &o);
			break;
		default:
			break;
		}
	}
	if (hop) {
		/* The transaction no longer counts against its domains' Max_Outbound_Connections. */
		for (size_t d = 0; d < ndoms; d++)
			doms[d]->conns--;
	}
	qbatch_free(qb);
	smtp_batch_free(b);

	if (more) {
		int64_t smax = q->server_max_conns;
		if ((q->nstarved > 0 && smax > 0 && q->conns >= (uint64_t)smax) || q->stopping) {
			/* Other queues wait for a connection slot: hand this one over. */
			smtp_client_close(c);
		} else if (hop) {
			qc->idle = true;
			qc->next_idle = hop->idle;
			hop->idle = qc;
			kick_hop(q, hop, NULL);
		} else {
			struct queue_dest *dq = qc->dq;
			qc->idle = true;
			qc->next_idle = dq->idle;
			dq->idle = qc;
			queue_kick(q, dq);
		}
	}
	if (hop) {
		/* Kicks never free: every queue of the batch is still here. */
		for (size_t d = 0; d < ndoms; d++)
			queue_dest_release(doms[d]);
	}
	if (doms != &one)
		free(doms);
}

static void check_shutdown(struct queue *q);

/* on_closed - a connection is gone: its slot goes to starved queues first. */
static void on_closed(void *ctx, struct smtp_client *c, bool connected, const char *reason)
{
	struct qconn *qc = ctx;
	struct queue *q = qc->q;
	struct queue_dest *dq = qc->dq;
	struct queue_hop *hop = qc->hop;
	struct qconn **idle = hop ? &hop->idle : &dq->idle;
	uint32_t *failures = hop ? &hop->recent_failures : &dq->recent_failures;

	if (qc->idle) {
		struct qconn **pp = idle;
		while (*pp && *pp != qc)
			pp = &(*pp)->next_idle;
		if (*pp)
			*pp = qc->next_idle;
	}
	if (connected)
		*failures = 0;
	else if (*failures < UINT32_MAX)
		(*failures)++;
	if (!connected && hop)
		log_panic("delivery next_hop=\"%s\" binding=%s connect failed: %s", hop->name,
			  *hop->binding ? hop->binding : "default", reason ? reason : "");
	else if (!connected)
		log_panic("delivery domain=%s binding=%s connect failed: %s", dq->domain,
			  *dq->binding ? dq->binding : "default", reason ? reason : "");
	if (hop)
		hop->conns--;
	else
		dq->conns--;
	q->conns--;
	queue_auth_id_free(qc->auth_id);
	free(qc);
	if (q->stopping) {
		check_shutdown(q);
		return;
	}
	/*
	 * A slot under Server_Max_Outbound_Connections opened: queues that
	 * waited for one go first, oldest first (each re-registers if it
	 * finds none left), the queue that just closed last.
	 */
	struct queue_dest **waiting = q->starved;
	size_t nwaiting = q->nstarved;
	q->starved = NULL;
	q->nstarved = q->starvedcap = 0;
	for (size_t i = 0; i < nwaiting; i++)
		waiting[i]->starving = false;
	for (size_t i = 0; i < nwaiting; i++)
		queue_kick(q, waiting[i]);
	if (hop)
		kick_hop(q, hop, NULL);
	else
		queue_kick(q, dq);
	/* Now, and not in between: a kick never frees, so every pointer above stayed valid. */
	for (size_t i = 0; i < nwaiting; i++)
		if (waiting[i] != dq)
			queue_dest_release(waiting[i]);
	if (hop && hop->idle == NULL && hop->nmembers > 0) {
		/* Its idle connections held the members (queue_dest.c): those left with nothing go. */
		struct queue_dest **v = xmemdup(hop->members, hop->nmembers * sizeof(*v));
		size_t n = hop->nmembers;
		for (size_t i = 0; i < n; i++)
			queue_dest_release(v[i]);
		free(v);
	}
	if (hop)
		queue_hop_release(hop);
	else
		queue_dest_release(dq);
	free(waiting);
}

/* ------------------------------------------------------------------ */
/* maintainer                                                          */

/*
 * expire_held - fail the expired entries of a queue that is not being
 * delivered (Suspend_Delivery), which would otherwise wait forever: batch
 * building is where expiry is noticed for moving queues.
 */
static void expire_held(struct queue *q, struct queue_dest *dq, int64_t now_s)
{
	uint64_t n = dq->nactive;

	while (n-- > 0) {
		struct qentry *e = queue_dest_pop(dq);
		if (!queue_outcome_expired(q, dq, e->m, now_s)) {
			queue_dest_append(dq, e);
			continue;
		}
		queue_outcome_expire(q, dq, e,
				     "message expired: Message_Expiration reached while delivery was suspended");
	}
}

/* maintain_one - the safety net for one queue: due entries, held expiry, a kick. */
static void maintain_one(struct queue *q, struct queue_dest *dq)
{
	int64_t now_s = queue_now_us() / 1000000;

	queue_dest_promote(dq, now_s);
	if (q->started && (queue_dest_settings(dq)->suspend || (q->nheld && queue_admin_held(q, dq))))
		expire_held(q, dq, now_s);
	queue_kick(q, dq);
}

struct dest_list {
	struct queue_dest **v;
	size_t n;
};

static void collect_dest(void *ctx, const char *key, void *value)
{
	struct dest_list *l = ctx;

	l->v[l->n++] = value;
}

/*
 * maintain_all - maintain every queue, then free those nothing holds any
 * more. The map may not change while it is walked, so the walk takes a
 * list first; kicks never free a queue, so the list stays valid until the
 * releases at the end.
 */
static void maintain_all(struct queue *q)
{
	struct dest_list l = { xcalloc(strmap_count(q->queues) + 1, sizeof(*l.v)), 0 };

	strmap_each(q->queues, collect_dest, &l);
	for (size_t i = 0; i < l.n; i++)
		maintain_one(q, l.v[i]);
	for (size_t i = 0; i < l.n; i++)
		queue_dest_release(l.v[i]);
	free(l.v);
	queue_hop_release_all(q);
}

/* on_maintain - every Delayed_Queue_Scan_Interval seconds. */
static void on_maintain(evutil_socket_t fd, short what, void *arg)
{
	maintain_all(arg);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

struct queue *queue_new(struct conf *conf)
{
	struct queue *q = XNEW(struct queue);

	q->conf = conf_ref(conf);
	q->conf_gen = 1;
	q->server_max_conns = conf_int(conf, CONF_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	queue_metrics_init(&q->metrics);
	queue_metrics_set_limit(&q->metrics, (size_t)conf_int(conf, CONF_OPT_METRICS_DOMAIN_LIMIT));
	q->queues = strmap_new();
	q->hops = strmap_new();
	spool_idmap_init(&q->msgs);
	slab_init(&q->entries, sizeof(struct qentry));
	q->started_us = queue_now_us();
	q->st.reset_us = q->started_us;
	hooks_refresh(q);
	return q;
}

void queue_set_conf(struct queue *q, struct conf *conf)
{
	struct conf *old = q->conf;

	q->conf = conf_ref(conf);
	/* Every queue reads its settings again on its next event (queue_dest_settings). */
	q->conf_gen++;
	q->server_max_conns = conf_int(conf, CONF_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	queue_metrics_set_limit(&q->metrics, (size_t)conf_int(conf, CONF_OPT_METRICS_DOMAIN_LIMIT));
	hooks_refresh(q);
	conf_unref(old);
	if (q->started)
		maintain_all(q);
	/* What the queue holds after the reload: a check for operators and tests. */
	log_panic("queue reload destinations=%zu messages=%zu recipients=%zu",
		  queue_destination_count(q), q->nmsgs, q->nrcpts);
}

void queue_start(struct queue *q, const struct queue_deps *deps)
{
	int64_t scan = conf_int(q->conf, CONF_OPT_DELAYED_QUEUE_SCAN_INTERVAL);
	struct timeval tv = { (time_t)scan, 0 };

	q->deps = *deps;
	q->started = true;
	q->maintainer = event_new(loop_base(deps->scheduler), -1, EV_PERSIST, on_maintain, q);
	event_add(q->maintainer, &tv);
	/* Recovered mail: arm the timers and start what is due. */
	maintain_all(q);
	/* Recovered reports: the spool keeps these messages live until their MESSAGE_DONE. */
	for (size_t i = 0; i < q->ndue; i++) {
		char idbuf[ID_BUF_SIZE];

		log_panic("%s recovered with every recipient final and its DSN not yet sent;"
			  " sending it now entries=%zu", id_format(q->due[i]->sm->id, idbuf),
			  q->due[i]->sm->nfailures);
		queue_outcome_finish(q, q->due[i]);
	}
	free(q->due);
	q->due = NULL;
	q->ndue = 0;
}

/* close_idle_list - QUIT every idle connection of a list. */
static void close_idle_list(struct qconn **idle)
{
	while (*idle) {
		struct qconn *qc = *idle;
		*idle = qc->next_idle;
		qc->idle = false;
		qc->next_idle = NULL;
		smtp_client_close(qc->c);
	}
}

static void close_idle(void *ctx, const char *key, void *value)
{
	struct queue_dest *dq = value;

	close_idle_list(&dq->idle);
}

static void close_idle_hop(void *ctx, const char *key, void *value)
{
	struct queue_hop *hop = value;

	close_idle_list(&hop->idle);
}

static void check_shutdown(struct queue *q)
{
	if (q->stopping && q->conns == 0 && q->shutdown_done) {
		void (*done)(void *) = q->shutdown_done;
		q->shutdown_done = NULL;
		if (q->shutdown_timer) {
			event_free(q->shutdown_timer);
			q->shutdown_timer = NULL;
		}
		done(q->shutdown_arg);
	}
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	log_panic("shutdown outbound connections still open=%u; leaving them", q->conns);
	void (*done)(void *) = q->shutdown_done;
	q->shutdown_done = NULL;
	if (done)
		done(q->shutdown_arg);
}

void queue_shutdown(struct queue *q, int grace_seconds, void (*done)(void *), void *arg)
{
	struct timeval tv = { grace_seconds, 0 };

	q->stopping = true;
	q->shutdown_done = done;
	q->shutdown_arg = arg;
	if (!q->started) {
		check_shutdown(q);
		return;
	}
	strmap_each(q->queues, close_idle, q);
	strmap_each(q->hops, close_idle_hop, q);
	q->shutdown_timer = evtimer_new(loop_base(q->deps.scheduler), on_shutdown_timeout, q);
	evtimer_add(q->shutdown_timer, &tv);
	check_shutdown(q);
}

size_t queue_message_count(const struct queue *q)
{
	return q->nmsgs;
}

size_t queue_recipient_count(const struct queue *q)
{
	return q->nrcpts;
}

size_t queue_destination_count(const struct queue *q)
{
	return strmap_count(q->queues);
}

static void free_dest(void *ctx, const char *key, void *value)
{
	queue_dest_free(value, ctx);
}

static void free_msg(void *ctx, const char *key, void *value)
{
	queue_outcome_msg_free(value);
}

void queue_moved(struct queue *q, uint64_t id, const struct envelope_loc *loc)
{
	queue_outcome_moved(q, id, loc);
}

struct qentry *queue_entry_new(struct queue *q)
{
	return slab_alloc(&q->entries);
}

void queue_entry_free(struct queue *q, struct qentry *e)
{
	slab_free(&q->entries, e);
}

void queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	struct strmap *msgs = strmap_new();
	strmap_each(q->queues, free_dest, msgs);
	strmap_each(msgs, free_msg, NULL);
	strmap_free(msgs);
	strmap_free(q->queues);
	queue_hop_free_all(q);
	strmap_free(q->hops);
	spool_idmap_free(&q->msgs);
	for (size_t i = 0; i < q->ndue; i++)
		queue_outcome_msg_free(q->due[i]);	/* never started: the next start sends them */
	free(q->due);
	slab_destroy(&q->entries);	/* entries still out in batches go with it */
	queue_admin_free(q);
	queue_metrics_free(&q->metrics);
	if (q->maintainer)
		event_free(q->maintainer);
	if (q->shutdown_timer)
		event_free(q->shutdown_timer);
	free(q->starved);
	queue_binding_free(q);
	conf_unref(q->conf);
	free(q);
}

const char *queue_hostname(const struct conf *conf)
{
	return conf_hostname(conf);
}
