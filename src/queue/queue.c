/*
 * queue.c - the queue manager: queues, routing, connections, outcomes
 *
 * Runs on the scheduler thread (see queue.h). The cycle of a recipient:
 *
 *   enqueue   -> active FIFO of its (binding, domain) queue, or the delayed
 *                heap when its next attempt is in the future
 *   dq_kick   -> resolve the destination if needed, then give batches to
 *                idle connections and open new ones up to the goal,
 *                within the connection limits and throttles
 *   outcome   -> delivered / failed (final: spool record, log line,
 *                bounce) or deferred (back-off, delayed heap)
 *
 * A per-queue timer wakes the queue when its earliest delayed entry is
 * due or a throttle has a token again; the maintainer
 * (Delayed_Queue_Scan_Interval) sweeps every queue as a safety net and
 * expires old entries.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#include "dns/dns.h"
#include "log/log.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "smtp/smtp_client.h"
#include "spool/spool.h"
#include "spool/spool_idmap.h"

struct queue {
	struct conf *conf;
	struct queue_deps deps;
	bool started;
	bool stopping;
	struct strmap *queues;		/* "binding\x01domain" -> struct dq */
	struct spool_idmap msgs;	/* message id -> struct qmsg, to follow spool moves */
	size_t nmsgs;
	size_t nrcpts;			/* entries alive */
	uint32_t conns;			/* outbound connections, all queues */
	size_t next_io;
	queue_goal_fn goal;
	struct pool *io_pool;		/* bounce rendering; created on first use */
	struct event *maintainer;
	struct event *shutdown_timer;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	/* entries waiting for the server-wide connection limit */
	struct dq **starved;
	size_t nstarved, starvedcap;
};

static void dq_kick(struct queue *q, struct dq *dq);

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
	if (q->io_pool == NULL)
		q->io_pool = pool_new("IO", 1);
	return q->io_pool;
}

void queue_bounce_shutdown(struct queue *q)
{
	pool_free(q->io_pool);
	q->io_pool = NULL;
}

/* ------------------------------------------------------------------ */
/* the delayed heap                                                    */

static void heap_swap(struct dq *dq, uint32_t a, uint32_t b)
{
	struct qentry *t = dq->heap[a];

	dq->heap[a] = dq->heap[b];
	dq->heap[b] = t;
	dq->heap[a]->heap_idx = a;
	dq->heap[b]->heap_idx = b;
}

static void heap_push(struct dq *dq, struct qentry *e)
{
	if (dq->nheap == dq->heapcap) {
		dq->heapcap = dq->heapcap ? dq->heapcap * 2 : 16;
		dq->heap = xrealloc(dq->heap, dq->heapcap * sizeof(*dq->heap));
	}
	uint32_t i = dq->nheap++;
	dq->heap[i] = e;
	e->heap_idx = i;
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (dq->heap[parent]->next_attempt <= dq->heap[i]->next_attempt)
			break;
		heap_swap(dq, i, parent);
		i = parent;
	}
}

static struct qentry *heap_pop(struct dq *dq)
{
	struct qentry *top = dq->heap[0];
	uint32_t i = 0;

	dq->heap[0] = dq->heap[--dq->nheap];
	dq->heap[0]->heap_idx = 0;
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < dq->nheap && dq->heap[l]->next_attempt < dq->heap[m]->next_attempt)
			m = l;
		if (r < dq->nheap && dq->heap[r]->next_attempt < dq->heap[m]->next_attempt)
			m = r;
		if (m == i)
			break;
		heap_swap(dq, i, m);
		i = m;
	}
	return top;
}

/* ------------------------------------------------------------------ */
/* queues                                                              */

static void active_append(struct dq *dq, struct qentry *e)
{
	e->next = NULL;
	if (dq->tail == NULL || dq->tail->m != e->m)
		dq->runs++;
	if (dq->tail)
		dq->tail->next = e;
	else
		dq->head = e;
	dq->tail = e;
	dq->nactive++;
}

static void active_prepend(struct dq *dq, struct qentry *e)
{
	if (dq->head == NULL || dq->head->m != e->m)
		dq->runs++;
	e->next = dq->head;
	dq->head = e;
	if (dq->tail == NULL)
		dq->tail = e;
	dq->nactive++;
}

static struct qentry *active_pop(struct dq *dq)
{
	struct qentry *e = dq->head;

	if (e) {
		dq->head = e->next;
		if (dq->head == NULL || dq->head->m != e->m)
			dq->runs--;
		if (dq->head == NULL)
			dq->tail = NULL;
		e->next = NULL;
		dq->nactive--;
	}
	return e;
}

static void on_dq_timer(evutil_socket_t fd, short what, void *arg);

/* dq_arm - make sure the queue's timer fires no later than at_us. */
static void dq_arm(struct dq *dq, int64_t at_us)
{
	struct queue *q = dq->q;
	int64_t now = queue_now_us();

	if (!q->started)
		return;
	if (dq->timer_at_us && dq->timer_at_us <= at_us)
		return;
	if (dq->timer == NULL)
		dq->timer = evtimer_new(loop_base(q->deps.scheduler), on_dq_timer, dq);
	int64_t delay = at_us > now ? at_us - now : 0;
	struct timeval tv = { (time_t)(delay / 1000000), (suseconds_t)(delay % 1000000) };
	evtimer_add(dq->timer, &tv);
	dq->timer_at_us = at_us;
}

/* dq_promote - move every delayed entry that is due to the active FIFO. */
static void dq_promote(struct dq *dq, int64_t now_s)
{
	while (dq->nheap > 0 && dq->heap[0]->next_attempt <= now_s)
		active_append(dq, heap_pop(dq));
	if (dq->nheap > 0)
		dq_arm(dq, dq->heap[0]->next_attempt * 1000000);
}

static void on_dq_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dq *dq = arg;

	dq->timer_at_us = 0;
	dq_promote(dq, queue_now_us() / 1000000);
	dq_kick(dq->q, dq);
}

static struct dq *dq_get(struct queue *q, const char *binding, const char *domain)
{
	struct str key = STR_INIT;

	str_appendf(&key, "%s\x01%s", binding, domain);
	struct dq *dq = strmap_get(q->queues, key.s);
	if (dq == NULL) {
		dq = XNEW(struct dq);
		dq->q = q;
		dq->binding = xstrdup(binding);
		dq->domain = xstrdup(domain);
		strmap_put(q->queues, key.s, dq);
	}
	str_free(&key);
	return dq;
}

/* queue_enqueue - put an entry into its queue (active or delayed). */
void queue_enqueue(struct queue *q, struct dq *dq, struct qentry *e)
{
	int64_t now_s = queue_now_us() / 1000000;

	if (e->next_attempt <= now_s) {
		active_append(dq, e);
	} else {
		heap_push(dq, e);
		dq_arm(dq, e->next_attempt * 1000000);
	}
}

/* routing_domain - the lower-cased domain of an address ("" for none). */
static char *routing_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d = xstrdup(at ? at + 1 : "");

	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/*
 * assign_binding - the binding a message is delivered from: the one it
 * was given (policy, later), else Assign_Binding of its first recipient's
 * domain, else the default binding "".
 */
static void assign_binding(struct queue *q, struct spool_msg *sm)
{
	if (sm->binding && *sm->binding)
		return;
	if (sm->nrcpt == 0)
		return;
	char *domain = routing_domain(sm->rcpts[0].addr);
	const char *b = conf_get(q->conf, CONF_OPT_ASSIGN_BINDING, NULL, domain)->u.s;
	if (b && *b && conf_binding_exists(q->conf, b)) {
		free(sm->binding);
		sm->binding = xstrdup(b);
		free(sm->binding_group);
		const char *g = conf_binding_group_of(q->conf, b);
		sm->binding_group = xstrdup(g ? g : "");
	}
	free(domain);
}

/*
 * queue_add - enqueue every unfinished recipient of a message, then kick
 * each queue it touched once, so recipients of one domain that are not
 * adjacent in the envelope still travel in one batch.
 */
static void queue_add(struct queue *q, struct spool_msg *sm, bool kick)
{
	struct qmsg *m = XNEW(struct qmsg);
	struct dq **touched = xcalloc(sm->nrcpt ? sm->nrcpt : 1, sizeof(*touched));
	size_t ntouched = 0;

	m->sm = sm;
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
		struct spool_rcpt *r = &sm->rcpts[i];
		if (r->state != SPOOL_RCPT_QUEUED)
			continue;
		char *domain = routing_domain(r->addr);
		struct dq *dq = dq_get(q, sm->binding, domain);
		free(domain);
		struct qentry *e = XNEW(struct qentry);
		e->m = m;
		e->rcpt = (uint32_t)i;
		e->retries = r->retries;
		e->next_attempt = r->next_attempt;
		m->pending++;
		q->nrcpts++;
		queue_enqueue(q, dq, e);
		size_t t = 0;
		while (t < ntouched && touched[t] != dq)
			t++;
		if (t == ntouched)
			touched[ntouched++] = dq;
	}
	if (m->pending == 0) {
		/* Nothing left to do (recovered with every recipient final). */
		spool_message_done(q->deps.spool, sm->id);
		spool_msg_free(sm);
		free(m);
		free(touched);
		return;
	}
	q->nmsgs++;
	spool_idmap_put(&q->msgs, sm->id, m);
	for (size_t t = 0; kick && t < ntouched; t++)
		dq_kick(q, touched[t]);
	free(touched);
}

void queue_accept(struct queue *q, struct spool_msg *msg)
{
	assign_binding(q, msg);
	queue_log_reception(msg);
	queue_add(q, msg, q->started);
}

void queue_recovered(struct queue *q, struct spool_msg *msg)
{
	queue_add(q, msg, q->started);
}

/* move_ack - tell the spool the old location of m is no longer read. */
static void move_ack(struct queue *q, struct qmsg *m)
{
	if (m->ack_pending && q->deps.spool)
		spool_moved_ack(q->deps.spool, m->sm->id);
	m->ack_pending = false;
}

void queue_moved(struct queue *q, uint64_t id, const struct spool_loc *loc)
{
	struct qmsg *m = spool_idmap_get(&q->msgs, id);

	if (m == NULL) {
		/* Finished meanwhile: nothing of ours reads it any more. */
		if (q->deps.spool)
			spool_moved_ack(q->deps.spool, id);
		return;
	}
	/* Batches taken from now on read the new copy; those out still read the old one. */
	m->sm->loc = *loc;
	m->ack_pending = true;
	if (m->inflight == 0)
		move_ack(q, m);
}

/* queue_message_final - one more recipient of m is final; finish m when none is left. */
void queue_message_final(struct queue *q, struct qmsg *m)
{
	if (--m->pending > 0)
		return;
	move_ack(q, m);
	spool_idmap_del(&q->msgs, m->sm->id);
	if (m->nfails == 0 || !queue_bounce(q, m))
		spool_message_done(q->deps.spool, m->sm->id);
	for (size_t i = 0; i < m->nfails; i++) {
		free(m->fails[i].response);
		free(m->fails[i].remote);
	}
	free(m->fails);
	spool_msg_free(m->sm);
	free(m);
	q->nmsgs--;
}

/* ------------------------------------------------------------------ */
/* outcomes                                                            */

/*
 * entry_fail - a recipient failed for good: spool record, P and B lines,
 * remembered for the bounce.
 */
void queue_entry_fail(struct queue *q, struct dq *dq, struct qentry *e,
		      const struct queue_outcome *o)
{
	struct qmsg *m = e->m;

	queue_log_outcome(q, dq, e, o, 'P');
	spool_rcpt_state(q->deps.spool, m->sm->id, e->rcpt, SPOOL_RCPT_FAILED);
	m->sm->rcpts[e->rcpt].state = SPOOL_RCPT_FAILED;
	m->fails = xrealloc(m->fails, (m->nfails + 1) * sizeof(*m->fails));
	struct qfail *f = &m->fails[m->nfails++];
	f->rcpt = e->rcpt;
	f->code = o->code;
	f->stage = o->stage;
	f->response = xstrdup(o->response ? o->response : "");
	f->remote = o->remote && *o->remote ? xstrdup(o->remote) : NULL;
	f->when = queue_now_us() / 1000000;
	q->nrcpts--;
	free(e);
	queue_message_final(q, m);
}

/* retry_delay - Retry_Interval doubled per earlier failure, capped. */
static int64_t retry_delay(struct queue *q, struct dq *dq, uint32_t retries)
{
	int64_t base = conf_get(q->conf, CONF_OPT_RETRY_INTERVAL, dq->binding, dq->domain)->u.i;
	int64_t cap = conf_get(q->conf, CONF_OPT_MAX_RETRY_INTERVAL, dq->binding, dq->domain)->u.i;
	int64_t d = base;

	for (uint32_t i = 1; i < retries && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

/* expired - whether a message is past Message_Expiration. */
static bool expired(struct queue *q, struct dq *dq, const struct qmsg *m, int64_t now_s)
{
	int64_t life = conf_get(q->conf, CONF_OPT_MESSAGE_EXPIRATION, dq->binding, dq->domain)->u.i;

	return now_s >= m->sm->received + life;
}

/*
 * queue_entry_defer - a transient failure: retry later, or fail for good
 * when Max_Retries is used up or the next attempt would come after the
 * message expires.
 */
void queue_entry_defer(struct queue *q, struct dq *dq, struct qentry *e,
		       const struct queue_outcome *o)
{
	int64_t now_s = queue_now_us() / 1000000;
	int64_t max = conf_get(q->conf, CONF_OPT_MAX_RETRIES, dq->binding, dq->domain)->u.i;

	e->retries++;
	int64_t next = now_s + retry_delay(q, dq, e->retries);
	int64_t life = conf_get(q->conf, CONF_OPT_MESSAGE_EXPIRATION, dq->binding, dq->domain)->u.i;
	int64_t expiry = e->m->sm->received + life;
	if ((max >= 0 && e->retries > (uint64_t)max) || now_s >= expiry) {
		struct queue_outcome final = *o;
		struct str why = STR_INIT;
		if (max >= 0 && e->retries > (uint64_t)max)
			str_appendf(&why, "Max_Retries (%lld) reached; last error: %s", (long long)max,
				    o->response ? o->response : "");
		else
			str_appendf(&why, "message expired after %lld seconds; last error: %s",
				    (long long)life, o->response ? o->response : "");
		final.response = why.s;
		queue_entry_fail(q, dq, e, &final);
		str_free(&why);
		return;
	}
	/* Never wait past expiry: the entry then fails as expired (stage 21). */
	if (next > expiry)
		next = expiry;
	queue_log_outcome(q, dq, e, o, 'T');
	e->next_attempt = next;
	spool_rcpt_retry(q->deps.spool, e->m->sm->id, e->rcpt, e->retries, next);
	queue_enqueue(q, dq, e);
}

/* entry_delivered - 2xx: spool record, D line, done. */
static void entry_delivered(struct queue *q, struct dq *dq, struct qentry *e,
			    const struct queue_outcome *o)
{
	struct qmsg *m = e->m;

	queue_log_outcome(q, dq, e, o, 'D');
	spool_rcpt_state(q->deps.spool, m->sm->id, e->rcpt, SPOOL_RCPT_DELIVERED);
	m->sm->rcpts[e->rcpt].state = SPOOL_RCPT_DELIVERED;
	q->nrcpts--;
	free(e);
	queue_message_final(q, m);
}

/*
 * dq_fail_all - fail (permanent) or defer (transient) every ready entry,
 * for problems that concern the whole destination (DNS).
 */
static void dq_fail_all(struct queue *q, struct dq *dq, bool permanent, const char *why)
{
	struct qentry *e;
	uint64_t n = dq->nactive;
	struct queue_outcome o = { 0 };

	o.stage = 0;	/* not connected */
	o.response = why;
	while (n-- > 0 && (e = active_pop(dq)) != NULL) {
		if (permanent)
			queue_entry_fail(q, dq, e, &o);
		else
			queue_entry_defer(q, dq, e, &o);
	}
}

/* ------------------------------------------------------------------ */
/* destinations                                                        */

struct resolve_req {
	struct queue *q;
	struct dq *dq;
	uint16_t port;
};

/* parse_route - host and port of "smtp://host:port", "host:port", "[v6]:port", "host". */
static void parse_route(const char *route, struct str *host, uint16_t *port)
{
	const char *p = route;

	*port = 25;
	if (strncasecmp(p, "smtp://", 7) == 0)
		p += 7;
	str_clear(host);
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (end) {
			str_append(host, p + 1, (size_t)(end - p - 1));
			if (end[1] == ':')
				*port = (uint16_t)atoi(end + 2);
			return;
		}
	}
	const char *colon = strrchr(p, ':');
	if (colon && strchr(p, ':') == colon) {
		str_append(host, p, (size_t)(colon - p));
		*port = (uint16_t)atoi(colon + 1);
	} else {
		str_appends(host, p);
	}
	/* A trailing "/" of a URL is not part of the host. */
	if (host->len && host->s[host->len - 1] == '/')
		str_truncate(host, host->len - 1);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void dq_clear_hosts(struct dq *dq)
{
	for (size_t i = 0; i < dq->naddr; i++)
		free(dq->names[i]);
	free(dq->names);
	free(dq->addrs);
	dq->names = NULL;
	dq->addrs = NULL;
	dq->naddr = 0;
}

static void on_resolved(void *ctx, const struct dns_mx_result *res)
{
	struct resolve_req *rr = ctx;
	struct queue *q = rr->q;
	struct dq *dq = rr->dq;
	int64_t now_s = queue_now_us() / 1000000;

	dq->resolving = false;
	if (q->stopping) {
		/* Shutdown cancelled the lookup: leave the entries as they are. */
		free(rr);
		return;
	}
	if (res->status != DNS_OK) {
		struct str why = STR_INIT;
		str_appendf(&why, "DNS lookup of %s failed: %s", dq->domain,
			    res->error ? res->error : "unknown error");
		log_panic("dns domain=%s status=%s error=\"%s\"", dq->domain,
			  res->status == DNS_PERMFAIL ? "permanent" : "transient",
			  res->error ? res->error : "");
		dq_fail_all(q, dq, res->status == DNS_PERMFAIL, why.s);
		str_free(&why);
		free(rr);
		return;
	}
	dq_clear_hosts(dq);
	for (size_t h = 0; h < res->nhosts; h++)
		dq->naddr += res->hosts[h].naddr;
	dq->addrs = xcalloc(dq->naddr ? dq->naddr : 1, sizeof(*dq->addrs));
	dq->names = xcalloc(dq->naddr ? dq->naddr : 1, sizeof(*dq->names));
	size_t k = 0;
	for (size_t h = 0; h < res->nhosts; h++) {
		for (size_t a = 0; a < res->hosts[h].naddr; a++, k++) {
			dq->addrs[k] = res->hosts[h].addrs[a];
			set_port(&dq->addrs[k], rr->port);
			dq->names[k] = xstrdup(res->hosts[h].name ? res->hosts[h].name : "");
		}
	}
	dq->hosts_expiry = now_s + (res->ttl ? res->ttl : 60);
	free(rr);
	if (dq->naddr == 0) {
		dq_fail_all(q, dq, false, "no address for the destination");
		return;
	}
	dq_kick(q, dq);
}

/* dq_resolve - start finding where the queue's mail goes. */
static void dq_resolve(struct queue *q, struct dq *dq)
{
	const struct conf_value *routes = conf_get(q->conf, CONF_OPT_ROUTES, dq->binding, dq->domain);
	const char *gateway = conf_get(q->conf, CONF_OPT_GATEWAY, dq->binding, dq->domain)->u.s;
	struct resolve_req *rr = XNEW(struct resolve_req);
	const char *route = NULL;

	rr->q = q;
	rr->dq = dq;
	rr->port = (uint16_t)conf_get(q->conf, CONF_OPT_OUTBOUND_SMTP_PORT, dq->binding, dq->domain)->u.i;
	if (routes->u.list.n > 0 && strcasecmp(routes->u.list.v[0], "__mx__") != 0)
		route = routes->u.list.v[0];
	else if (gateway && *gateway)
		route = gateway;
	dq->resolving = true;
	if (route) {
		struct str host = STR_INIT;
		parse_route(route, &host, &rr->port);
		dns_resolve_host(q->deps.dns, host.s, on_resolved, rr);
		str_free(&host);
	} else {
		dns_resolve_mx(q->deps.dns, dq->domain, on_resolved, rr);
	}
}

/* ------------------------------------------------------------------ */
/* batches and connections                                             */

static void on_batch_done(void *ctx, struct smtp_client *c, struct smtp_batch *b, bool more);
static void on_closed(void *ctx, struct smtp_client *c, bool connected, const char *reason);

/*
 * dq_take_batch - the next transaction: the head entry's message and up
 * to Max_Recipients_Per_Batch of its recipients that are next in line.
 * Expired entries met on the way fail here (stage 21, out of band).
 */
static struct smtp_batch *dq_take_batch(struct queue *q, struct dq *dq)
{
	int64_t now_s = queue_now_us() / 1000000;
	int64_t max = conf_get(q->conf, CONF_OPT_MAX_RECIPIENTS_PER_BATCH, dq->binding, dq->domain)->u.i;
	struct qentry *e;

	while ((e = dq->head) != NULL && expired(q, dq, e->m, now_s)) {
		struct queue_outcome o = { 0 };
		active_pop(dq);
		o.stage = 21;
		o.response = "message expired: Message_Expiration reached before it could be delivered";
		queue_entry_fail(q, dq, e, &o);
	}
	if (e == NULL)
		return NULL;

	struct qmsg *m = e->m;
	size_t n = 0;
	for (struct qentry *x = dq->head; x && x->m == m && n < (size_t)max; x = x->next)
		n++;
	struct qbatch *qb = xmalloc(sizeof(*qb) + n * sizeof(qb->entries[0]));
	struct smtp_batch *b = XNEW(struct smtp_batch);
	qb->dq = dq;
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
		struct qentry *x = active_pop(dq);
		const struct spool_rcpt *r = &m->sm->rcpts[x->rcpt];
		qb->entries[i] = x;
		b->rcpts[i].index = x->rcpt;
		b->rcpts[i].addr = xstrdup(r->addr);
		b->rcpts[i].orcpt = r->orcpt ? xstrdup(r->orcpt) : NULL;
		b->rcpts[i].notify = r->notify;
	}
	return b;
}

static size_t pick_io(struct queue *q)
{
	return q->next_io++ % q->deps.nio;
}

/* conn_params - everything an outbound connection of this queue needs. */
static struct smtp_client_params *conn_params(struct queue *q, struct dq *dq)
{
	struct smtp_client_params *p = XNEW(struct smtp_client_params);
	const char *b = dq->binding, *d = dq->domain;
	const char *bind = conf_get(q->conf, CONF_OPT_BIND_ADDRESS, b, d)->u.s;
	const char *ehlo = conf_get(q->conf, CONF_OPT_EHLO_HOSTNAME, b, d)->u.s;

	p->naddr = dq->naddr;
	p->addrs = xmemdup(dq->addrs, dq->naddr * sizeof(*dq->addrs));
	p->addr_names = xcalloc(dq->naddr, sizeof(char *));
	for (size_t i = 0; i < dq->naddr; i++)
		p->addr_names[i] = xstrdup(dq->names[i]);
	if (bind && *bind) {
		int len = sizeof(p->bind);
		if (evutil_parse_sockaddr_port(bind, (struct sockaddr *)&p->bind, &len) < 0)
			memset(&p->bind, 0, sizeof(p->bind));
	}
	p->ehlo_name = xstrdup(ehlo && *ehlo ? ehlo : queue_hostname(q->conf));
	p->tls_mode = (uint8_t)conf_get(q->conf, CONF_OPT_TLS, b, d)->u.i;
	p->connect_timeout = (uint32_t)conf_get(q->conf, CONF_OPT_CONNECT_TIMEOUT, b, d)->u.i;
	p->idle_timeout = (uint32_t)conf_get(q->conf, CONF_OPT_IDLE_TIMEOUT, b, d)->u.i;
	p->reply_timeout = 300;
	p->data_timeout = 600;
	p->max_deliveries = (uint32_t)conf_get(q->conf, CONF_OPT_MAX_DELIVERIES_PER_CONNECTION, b, d)->u.i;
	return p;
}

static void throttles_refresh(struct queue *q, struct dq *dq, int64_t now_us)
{
	throttle_configure(&dq->msg_tb,
			   &conf_get(q->conf, CONF_OPT_OUTBOUND_THROTTLE_MESSAGES, dq->binding, dq->domain)->u.t,
			   now_us);
	throttle_configure(&dq->conn_tb,
			   &conf_get(q->conf, CONF_OPT_OUTBOUND_THROTTLE_CONNECTIONS, dq->binding, dq->domain)->u.t,
			   now_us);
}

static void starve(struct queue *q, struct dq *dq)
{
	for (size_t i = 0; i < q->nstarved; i++)
		if (q->starved[i] == dq)
			return;
	if (q->nstarved == q->starvedcap) {
		q->starvedcap = q->starvedcap ? q->starvedcap * 2 : 16;
		q->starved = xrealloc(q->starved, q->starvedcap * sizeof(*q->starved));
	}
	q->starved[q->nstarved++] = dq;
}

/*
 * dq_kick - make progress on a queue: resolve, feed idle connections,
 * open new ones up to the goal. Cheap to call when there is nothing to do.
 */
static void dq_kick(struct queue *q, struct dq *dq)
{
	int64_t now_us = queue_now_us();
	int64_t now_s = now_us / 1000000;

	if (!q->started || q->stopping || dq->nactive == 0)
		return;
	if (conf_get(q->conf, CONF_OPT_SUSPEND_DELIVERY, dq->binding, dq->domain)->u.b)
		return;
	if (dq->resolving)
		return;
	if (dq->hosts_expiry == 0 || now_s >= dq->hosts_expiry || dq->naddr == 0) {
		dq_resolve(q, dq);
		return;
	}
	throttles_refresh(q, dq, now_us);

	/* Idle connections first: no connect cost. */
	while (dq->idle && dq->nactive > 0) {
		int64_t wait = throttle_wait_us(&dq->msg_tb, now_us);
		if (wait > 0) {
			dq_arm(dq, now_us + wait);
			return;
		}
		struct smtp_batch *b = dq_take_batch(q, dq);
		if (b == NULL)
			return;
		throttle_take(&dq->msg_tb, now_us);
		struct qconn *qc = dq->idle;
		dq->idle = qc->next_idle;
		qc->idle = false;
		qc->next_idle = NULL;
		smtp_client_send(qc->c, b);
	}

	int64_t smax = conf_int(q->conf, CONF_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	struct queue_goal_input in = {
		.active = dq->nactive,
		.runs = dq->runs,
		.connections = dq->conns,
		.max_connections = (uint32_t)conf_get(q->conf, CONF_OPT_MAX_OUTBOUND_CONNECTIONS,
						      dq->binding, dq->domain)->u.i,
		.batch_size = (uint32_t)conf_get(q->conf, CONF_OPT_MAX_RECIPIENTS_PER_BATCH,
						 dq->binding, dq->domain)->u.i,
	};
	uint32_t goal = q->goal(&in);
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
			dq_arm(dq, now_us + wait);
			return;
		}
		struct smtp_batch *b = dq_take_batch(q, dq);
		if (b == NULL)
			return;
		throttle_take(&dq->conn_tb, now_us);
		throttle_take(&dq->msg_tb, now_us);
		struct qconn *qc = XNEW(struct qconn);
		qc->q = q;
		qc->dq = dq;
		struct smtp_client_events ev = { on_batch_done, on_closed, qc };
		dq->conns++;
		q->conns++;
		qc->c = smtp_client_open(q->deps.io[pick_io(q)], q->deps.scheduler, q->deps.spool,
					 conn_params(q, dq), b, &ev);
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
	o->batch_id = b->batch_id;
	o->conn_id = b->conn_id;
	o->bytes = b->bytes_sent;
}

static void on_batch_done(void *ctx, struct smtp_client *c, struct smtp_batch *b, bool more)
{
	struct qconn *qc = ctx;
	struct queue *q = qc->q;
	struct qbatch *qb = b->qctx;
	struct dq *dq = qb->dq;

	qc->c = c;
	if (qb->n > 0) {
		struct qmsg *m = qb->entries[0]->m;

		if (--m->inflight == 0)
			move_ack(q, m);
	}
	/* Entries not tried go back to the front, in their order. */
	for (size_t i = qb->n; i-- > 0;) {
		if (b->rcpts[i].outcome == SMTP_OUT_NOT_TRIED)
			active_prepend(dq, qb->entries[i]);
	}
	for (size_t i = 0; i < qb->n; i++) {
		struct qentry *e = qb->entries[i];
		struct queue_outcome o;
		outcome_of(b, &b->rcpts[i], &o);
		switch (b->rcpts[i].outcome) {
		case SMTP_OUT_DELIVERED:
			entry_delivered(q, dq, e, &o);
			break;
		case SMTP_OUT_TRANSIENT:
			queue_entry_defer(q, dq, e, &o);
			break;
		case SMTP_OUT_PERMANENT:
			queue_entry_fail(q, dq, e, &o);
			break;
		default:
			break;
		}
	}
	free(qb);
	smtp_batch_free(b);

	if (!more)
		return;
	int64_t smax = conf_int(q->conf, CONF_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	if (q->nstarved > 0 && smax > 0 && q->conns >= (uint64_t)smax) {
		/* Other queues wait for a connection slot: hand this one over. */
		smtp_client_close(c);
		return;
	}
	if (!q->stopping) {
		qc->idle = true;
		qc->next_idle = dq->idle;
		dq->idle = qc;
		dq_kick(q, dq);
	} else {
		smtp_client_close(c);
	}
}

static void check_shutdown(struct queue *q);

static void on_closed(void *ctx, struct smtp_client *c, bool connected, const char *reason)
{
	struct qconn *qc = ctx;
	struct queue *q = qc->q;
	struct dq *dq = qc->dq;

	if (qc->idle) {
		struct qconn **pp = &dq->idle;
		while (*pp && *pp != qc)
			pp = &(*pp)->next_idle;
		if (*pp)
			*pp = qc->next_idle;
	}
	if (!connected)
		log_panic("delivery domain=%s binding=%s connect failed: %s", dq->domain,
			  *dq->binding ? dq->binding : "default", reason ? reason : "");
	dq->conns--;
	q->conns--;
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
	struct dq **waiting = q->starved;
	size_t nwaiting = q->nstarved;
	q->starved = NULL;
	q->nstarved = q->starvedcap = 0;
	for (size_t i = 0; i < nwaiting; i++)
		dq_kick(q, waiting[i]);
	free(waiting);
	dq_kick(q, dq);
}

/* ------------------------------------------------------------------ */
/* maintainer                                                          */

/*
 * dq_expire_held - fail the expired entries of a queue that is not being
 * delivered (Suspend_Delivery), which would otherwise wait forever: batch
 * building is where expiry is noticed for moving queues.
 */
static void dq_expire_held(struct queue *q, struct dq *dq, int64_t now_s)
{
	uint64_t n = dq->nactive;

	while (n-- > 0) {
		struct qentry *e = active_pop(dq);
		if (!expired(q, dq, e->m, now_s)) {
			active_append(dq, e);
			continue;
		}
		struct queue_outcome o = { 0 };
		o.stage = 21;
		o.response = "message expired: Message_Expiration reached while delivery was suspended";
		queue_entry_fail(q, dq, e, &o);
	}
}

static void maintain_one(void *ctx, const char *key, void *value)
{
	struct dq *dq = value;
	struct queue *q = ctx;
	int64_t now_s = queue_now_us() / 1000000;

	dq_promote(dq, now_s);
	if (q->started && conf_get(q->conf, CONF_OPT_SUSPEND_DELIVERY, dq->binding, dq->domain)->u.b)
		dq_expire_held(q, dq, now_s);
	dq_kick(q, dq);
}

static void on_maintain(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	strmap_each(q->queues, maintain_one, q);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

struct queue *queue_new(struct conf *conf)
{
	struct queue *q = XNEW(struct queue);

	q->conf = conf_ref(conf);
	q->queues = strmap_new();
	spool_idmap_init(&q->msgs);
	q->goal = queue_default_connection_goal;
	return q;
}

void queue_set_goal_fn(struct queue *q, queue_goal_fn fn)
{
	q->goal = fn ? fn : queue_default_connection_goal;
}

void queue_set_conf(struct queue *q, struct conf *conf)
{
	struct conf *old = q->conf;

	q->conf = conf_ref(conf);
	conf_unref(old);
	if (q->started)
		strmap_each(q->queues, maintain_one, q);
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
	strmap_each(q->queues, maintain_one, q);
}

static void close_idle(void *ctx, const char *key, void *value)
{
	struct dq *dq = value;

	while (dq->idle) {
		struct qconn *qc = dq->idle;
		dq->idle = qc->next_idle;
		qc->idle = false;
		qc->next_idle = NULL;
		smtp_client_close(qc->c);
	}
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

/* free_dq - release a queue and its entries; messages are freed by the caller's sweep. */
static void collect_msgs(struct dq *dq, struct strmap *msgs)
{
	char key[ID_BUF_SIZE];
	struct qentry *e = dq->head;

	while (e) {
		struct qentry *next = e->next;
		id_format(e->m->sm->id, key);
		strmap_put(msgs, key, e->m);
		free(e);
		e = next;
	}
	for (uint32_t i = 0; i < dq->nheap; i++) {
		id_format(dq->heap[i]->m->sm->id, key);
		strmap_put(msgs, key, dq->heap[i]->m);
		free(dq->heap[i]);
	}
}

static void free_dq(void *ctx, const char *key, void *value)
{
	struct dq *dq = value;

	collect_msgs(dq, ctx);
	dq_clear_hosts(dq);
	if (dq->timer)
		event_free(dq->timer);
	free(dq->heap);
	free(dq->binding);
	free(dq->domain);
	free(dq);
}

static void free_msg(void *ctx, const char *key, void *value)
{
	struct qmsg *m = value;

	for (size_t i = 0; i < m->nfails; i++) {
		free(m->fails[i].response);
		free(m->fails[i].remote);
	}
	free(m->fails);
	spool_msg_free(m->sm);
	free(m);
}

void queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	struct strmap *msgs = strmap_new();
	strmap_each(q->queues, free_dq, msgs);
	strmap_each(msgs, free_msg, NULL);
	strmap_free(msgs);
	strmap_free(q->queues);
	spool_idmap_free(&q->msgs);
	if (q->maintainer)
		event_free(q->maintainer);
	if (q->shutdown_timer)
		event_free(q->shutdown_timer);
	free(q->starved);
	pool_free(q->io_pool);
	conf_unref(q->conf);
	free(q);
}

const char *queue_hostname(const struct conf *conf)
{
	return conf_hostname(conf);
}
