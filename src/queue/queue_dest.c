/*
 * queue_dest.c - the queue of one (binding, routing domain) pair
 *
 * A passive container: an active FIFO of entries that may be tried now
 * and a delayed min-heap ordered by next attempt, plus one timer that
 * fires when the earliest delayed entry is due (or when a throttle has a
 * token again, armed by the manager). It decides nothing: the manager
 * (queue.c) takes batches from the FIFO, the outcomes (queue_outcome.c)
 * put deferred entries back, and the timer hands the queue to
 * queue_kick.
 *
 * The FIFO counts "runs" (maximal stretches of entries of one message),
 * which is how many batches its entries need at least: the connection
 * goal uses it.
 *
 * Freeing: a queue exists while something holds it and is freed by
 * queue_dest_release as soon as nothing does, so a million domains seen
 * once do not stay in memory or in the maintainer's scan. What holds a
 * queue:
 *
 *   - entries, active or delayed (the delayed ones own its timer);
 *   - connections, busy or idle (a batch out is on a connection, and
 *     holds the queue through qbatch.dq and qconn.dq); with MX_Rollup,
 *     a batch out on its next hop's connection (qbatch.doms; counted in
 *     conns while it is out), and an idle connection of its next hop
 *     (as its own idle connection would: `domain` still shows the queue);
 *   - a DNS lookup in flight (resolving: the request points at it);
 *   - a place in the manager's starved list (starving);
 *   - a throttle bucket that is empty: a new queue would start with a
 *     token, so freeing it early would let mail through faster than
 *     Outbound_Throttle_* allows; the maintainer frees it once the token
 *     is back.
 *
 * Release is called at the top of the event handlers that can leave a
 * queue unused (its timer, a DNS answer, a connection closing, a message
 * queued, the maintainer's scan), never from code a caller further up
 * the stack may still be using the queue in. A queue freed and needed
 * again is simply created again: what it cached is either in the DNS
 * cache (addresses) or in the configuration (settings).
 *
 * Settings: a queue caches what it needs of the configuration (struct
 * queue_dest_settings) and reads it again only when a reload gave the
 * manager a new generation, because the scoped lookup may run the
 * /regex/ Domain stanzas and the hot paths (every kick, batch and
 * outcome) need the same answer every time until the next reload.
 *
 * Ownership: scheduler thread; the queue is in the manager's map
 * (struct queue.queues) from queue_dest_get until it is freed.
 * Failures: none but out of memory (which aborts).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/util.h>

#include "config/config.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"
#include "message/envelope.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"

/* ------------------------------------------------------------------ */
/* the delayed heap                                                    */

static void heap_swap(struct queue_dest *dq, uint32_t a, uint32_t b)
{
	struct qentry *t = dq->heap[a];

	dq->heap[a] = dq->heap[b];
	dq->heap[b] = t;
	dq->heap[a]->heap_idx = a;
	dq->heap[b]->heap_idx = b;
}

static void heap_push(struct queue_dest *dq, struct qentry *e)
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

/* heap_sift_down - restore the heap order below i. */
static void heap_sift_down(struct queue_dest *dq, uint32_t i)
{
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
}

static struct qentry *heap_pop(struct queue_dest *dq)
{
	struct qentry *top = dq->heap[0];

	dq->heap[0] = dq->heap[--dq->nheap];
	if (dq->nheap > 0)
		dq->heap[0]->heap_idx = 0;
	heap_sift_down(dq, 0);
	return top;
}

/* ------------------------------------------------------------------ */
/* the active FIFO                                                     */

/* queue_dest_append - an entry at the end of the active FIFO. */
void queue_dest_append(struct queue_dest *dq, struct qentry *e)
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

/* queue_dest_prepend - an entry back at the front (not tried). */
void queue_dest_prepend(struct queue_dest *dq, struct qentry *e)
{
	if (dq->head == NULL || dq->head->m != e->m)
		dq->runs++;
	e->next = dq->head;
	dq->head = e;
	if (dq->tail == NULL)
		dq->tail = e;
	dq->nactive++;
}

/* queue_dest_pop - the head of the active FIFO, or NULL. */
struct qentry *queue_dest_pop(struct queue_dest *dq)
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

/* ------------------------------------------------------------------ */
/* the timer                                                           */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue_dest *dq = arg;

	dq->timer_at_us = 0;
	queue_dest_promote(dq, queue_now_us() / 1000000);
	queue_kick(dq->q, dq);
	queue_dest_release(dq);
}

void queue_dest_arm(struct queue_dest *dq, int64_t at_us)
{
	struct queue *q = dq->q;
	int64_t now = queue_now_us();

	if (!q->started)
		return;
	if (dq->timer_at_us && dq->timer_at_us <= at_us)
		return;
	if (dq->timer == NULL)
		dq->timer = evtimer_new(loop_base(q->deps.scheduler), on_timer, dq);
	int64_t delay = at_us > now ? at_us - now : 0;
	struct timeval tv = { (time_t)(delay / 1000000), (suseconds_t)(delay % 1000000) };
	evtimer_add(dq->timer, &tv);
	dq->timer_at_us = at_us;
}

void queue_dest_promote(struct queue_dest *dq, int64_t now_s)
{
	while (dq->nheap > 0 && dq->heap[0]->next_attempt <= now_s)
		queue_dest_append(dq, heap_pop(dq));
	if (dq->nheap > 0)
		queue_dest_arm(dq, dq->heap[0]->next_attempt * 1000000);
}

/* ------------------------------------------------------------------ */
/* settings                                                            */

/* read_settings - every option the queue uses, for its (binding, domain), from q->conf. */
static void read_settings(struct queue_dest *dq, struct queue_dest_settings *s)
{
	const struct conf *c = dq->q->conf;
	const char *b = dq->binding, *d = dq->domain;
#define GET(opt) conf_get(c, CONF_OPT_##opt, b, d)

	s->suspend = GET(SUSPEND_DELIVERY)->u.b;
	s->max_conns = (uint32_t)GET(MAX_OUTBOUND_CONNECTIONS)->u.i;
	s->batch_size = (uint32_t)GET(MAX_RECIPIENTS_PER_BATCH)->u.i;
	s->throttle_msgs = GET(OUTBOUND_THROTTLE_MESSAGES)->u.t;
	s->throttle_conns = GET(OUTBOUND_THROTTLE_CONNECTIONS)->u.t;
	s->retry_interval = GET(RETRY_INTERVAL)->u.i;
	s->max_retry_interval = GET(MAX_RETRY_INTERVAL)->u.i;
	s->max_retries = GET(MAX_RETRIES)->u.i;
	s->expiration = GET(MESSAGE_EXPIRATION)->u.i;
	s->delay_dsn = GET(GENERATE_DELAY_DSN)->u.b;
	s->delay_dsn_interval = GET(DELAY_DSN_RETRY_INTERVAL)->u.i;
	s->delay_dsn_max = GET(DELAY_DSN_MAX_RETRY_INTERVAL)->u.i;

	const struct conf_value *routes = GET(ROUTES);
	const char *gateway = GET(GATEWAY)->u.s;
	s->route = NULL;
	if (routes->u.list.n > 0 && strcasecmp(routes->u.list.v[0], "__mx__") != 0)
		s->route = routes->u.list.v[0];
	else if (gateway && *gateway)
		s->route = gateway;
	s->port = (uint16_t)GET(OUTBOUND_SMTP_PORT)->u.i;

	const char *bind = GET(BIND_ADDRESS)->u.s;
	memset(&s->bind, 0, sizeof(s->bind));
	s->has_bind = false;
	if (bind && *bind) {
		int len = sizeof(s->bind);
		s->has_bind = evutil_parse_sockaddr_port(bind, (struct sockaddr *)&s->bind, &len) == 0;
		if (!s->has_bind)
			memset(&s->bind, 0, sizeof(s->bind));
	}
	const char *ehlo = GET(EHLO_HOSTNAME)->u.s;
	s->ehlo = ehlo && *ehlo ? ehlo : queue_hostname(c);
	s->tls_mode = (uint8_t)GET(TLS)->u.i;
	s->connect_timeout = (uint32_t)GET(CONNECT_TIMEOUT)->u.i;
	s->idle_timeout = (uint32_t)GET(IDLE_TIMEOUT)->u.i;
	s->max_deliveries = (uint32_t)GET(MAX_DELIVERIES_PER_CONNECTION)->u.i;
	const char *auth_user = GET(OUTBOUND_SMTP_AUTH_USER)->u.s;
	s->auth_user = auth_user && *auth_user ? auth_user : NULL;
	s->auth_pass = GET(OUTBOUND_SMTP_AUTH_PASS)->u.s;
	s->auth_key = GET(OUTBOUND_SMTP_AUTH_KEY)->u.s;
	s->auth_type = (uint8_t)GET(OUTBOUND_SMTP_AUTH_TYPE)->u.i;
	s->auth_allow_plaintext = GET(OUTBOUND_SMTP_AUTH_ALLOW_PLAINTEXT)->u.b;
	s->rollup = GET(MX_ROLLUP)->u.b;
	s->hop_max_conns = (uint32_t)GET(NEXT_HOP_MAX_OUTBOUND_CONNECTIONS)->u.i;
	s->hop_max_rcpts = (uint32_t)GET(NEXT_HOP_MAX_RECIPIENTS_PER_TRANSACTION)->u.i;
#undef GET
}

const struct queue_dest_settings *queue_dest_settings(struct queue_dest *dq)
{
	if (dq->set.gen != dq->q->conf_gen) {
		read_settings(dq, &dq->set);
		dq->set.gen = dq->q->conf_gen;
		dq->set.reads++;
	}
	return &dq->set;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

/* dest_key - the manager's map key of (binding, domain). */
static void dest_key(struct str *key, const char *binding, const char *domain)
{
	str_appendf(key, "%s\x01%s", binding, domain);
}

struct queue_dest *queue_dest_find(struct queue *q, const char *binding, const char *domain)
{
	struct str key = STR_INIT;

	dest_key(&key, binding, domain);
	struct queue_dest *dq = strmap_get(q->queues, key.s);
	str_free(&key);
	return dq;
}

/* take_push - one more taken entry. */
static void take_push(struct qentry ***v, size_t *n, size_t *cap, struct qentry *e)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = e;
}

/*
 * queue_dest_take - the FIFO is rebuilt in one walk (runs recounted on
 * the way: removing entries may join two runs of one message); the heap
 * is filtered and re-heapified bottom-up, O(n) for any number removed.
 */
void queue_dest_take(struct queue_dest *dq, bool heap_only, struct qentry ***v, size_t *n,
		     size_t *cap)
{
	if (!heap_only) {
		struct qentry *e = dq->head, *tail = NULL;
		dq->head = dq->tail = NULL;
		dq->nactive = 0;
		dq->runs = 0;
		while (e) {
			struct qentry *next = e->next;
			if (e->m->op_mark) {
				e->next = NULL;
				take_push(v, n, cap, e);
			} else {
				e->next = NULL;
				if (tail == NULL || tail->m != e->m)
					dq->runs++;
				if (tail)
					tail->next = e;
				else
					dq->head = e;
				tail = e;
				dq->nactive++;
			}
			e = next;
		}
		dq->tail = tail;
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < dq->nheap; i++) {
		struct qentry *e = dq->heap[i];
		if (e->m->op_mark)
			take_push(v, n, cap, e);
		else
			dq->heap[kept++] = e;
	}
	if (kept == dq->nheap)
		return;
	dq->nheap = kept;
	for (uint32_t i = 0; i < kept; i++)
		dq->heap[i]->heap_idx = i;
	for (uint32_t i = kept / 2; i-- > 0;)
		heap_sift_down(dq, i);
}

struct queue_dest *queue_dest_get(struct queue *q, const char *binding, const char *domain)
{
	struct str key = STR_INIT;

	dest_key(&key, binding, domain);
	struct queue_dest *dq = strmap_get(q->queues, key.s);
	if (dq == NULL) {
		dq = XNEW(struct queue_dest);
		dq->q = q;
		dq->binding = xstrdup(binding);
		dq->domain = xstrdup(domain);
		strmap_put(q->queues, key.s, dq);
	}
	str_free(&key);
	return dq;
}

void queue_dest_enqueue(struct queue_dest *dq, struct qentry *e)
{
	int64_t now_s = queue_now_us() / 1000000;

	if (e->next_attempt <= now_s) {
		queue_dest_append(dq, e);
	} else {
		heap_push(dq, e);
		queue_dest_arm(dq, e->next_attempt * 1000000);
	}
}

/* collect_msgs - free the entries, remembering their messages (once each) in msgs. */
static void collect_msgs(struct queue_dest *dq, struct strmap *msgs)
{
	char key[ID_BUF_SIZE];
	struct qentry *e = dq->head;

	if (msgs == NULL)
		return;		/* released: it has no entries */
	while (e) {
		struct qentry *next = e->next;
		id_format(e->m->sm->id, key);
		strmap_put(msgs, key, e->m);
		queue_entry_free(dq->q, e);
		e = next;
	}
	for (uint32_t i = 0; i < dq->nheap; i++) {
		id_format(dq->heap[i]->m->sm->id, key);
		strmap_put(msgs, key, dq->heap[i]->m);
		queue_entry_free(dq->q, dq->heap[i]);
	}
}

/* unused - whether nothing holds dq (the list in the file header). */
static bool unused(struct queue_dest *dq, int64_t now_us)
{
	return dq->nactive == 0 && dq->nheap == 0 && dq->conns == 0 && dq->idle == NULL &&
	       (dq->hop == NULL || dq->hop->idle == NULL) && !dq->resolving && !dq->starving &&
	       throttle_wait_us(&dq->msg_tb, now_us) == 0 &&
	       throttle_wait_us(&dq->conn_tb, now_us) == 0;
}

void queue_dest_release(struct queue_dest *dq)
{
	struct queue *q = dq->q;
	struct str key = STR_INIT;

	if (!unused(dq, queue_now_us()))
		return;
	dest_key(&key, dq->binding, dq->domain);
	struct queue_dest *was = strmap_del(q->queues, key.s);
	str_free(&key);
	if (was != dq)
		abort();	/* the map and the queue disagree: a broken invariant */
	queue_dest_free(dq, NULL);
}

void queue_dest_free(struct queue_dest *dq, struct strmap *msgs)
{
	queue_hop_detach(dq);	/* the hop stays until released (queue_hop.c) */
	collect_msgs(dq, msgs);
	queue_route_clear(dq);
	if (dq->timer)
		event_free(dq->timer);
	free(dq->heap);
	free(dq->binding);
	free(dq->domain);
	free(dq);
}
