/*
 * queue_hop.c - next hops: connections shared by the domains behind one MX set
 *
 * Thousands of domains are hosted on the same few MX hosts, which limit
 * and throttle per sending address, not per domain. With MX_Rollup (on by
 * default) a (binding, domain) queue keeps its entries, its policy and its
 * accounting, but sends over the connections of its next hop: struct
 * queue_hop, one per (binding, next hop). The next hop is the queue's
 * resolved route key (queue_route.c: the MX set as sorted preference and
 * name pairs with the port, or the Routes/Gateway host and port) plus
 * every setting that shapes a connection: TLS, the outbound AUTH
 * identity, Bind_Address and EHLO_Hostname. Domains that differ in any of
 * them get different hops and never share a connection. (KumoMTA keys its
 * ready queues the same way, by "site"; PowerMTA calls it mx-rollup.)
 *
 * A transaction on a hop's connection (queue_hop_take) is one message:
 * of the members that may send now, the one whose head message is the
 * oldest (round robin among equals) gives that message and up to
 * Max_Recipients_Per_Batch of its entries at its head; every other member
 * that may send and whose head is the same message adds its own, up to
 * Next_Hop_Max_Recipients_Per_Transaction in all. So a message to ten domains behind one MX goes in one transaction
 * (its body read and dot-stuffed once) instead of ten, and the ten
 * domains' mail shares the hop's connections.
 *
 * Limits. Per domain, as without rollup: Suspend_Delivery and console
 * holds, Outbound_Throttle_Messages (a token per transaction carrying the
 * domain's recipients), Outbound_Throttle_Connections (a token when a new
 * connection's first transaction carries them), and
 * Max_Outbound_Connections, which counts the hop's connections carrying a
 * transaction of the domain now (struct queue_dest.conns). Per hop:
 * Next_Hop_Max_Outbound_Connections and the recipient limit above, the
 * smallest value among the members (so no domain's setting is exceeded
 * whichever domain came first). Connection settings that are not part of
 * the key (timeouts, Max_Deliveries_Per_Connection) are those of the
 * domain whose transaction opened the connection.
 *
 * Outcomes stay per recipient and per domain: the batch remembers each
 * entry's queue (struct qbatch.doms, dom_of), and queue.c applies each
 * recipient's result to its own queue, as for a batch of one domain.
 *
 * Life: a hop is in the manager's map (struct queue.hops) while it has
 * members or connections. Attaching, detaching and taking never free a
 * hop, so a caller up the stack may always still use it; queue_hop_release
 * frees an unused one at the top of an event (a connection closing) and
 * the maintainer sweeps the rest.
 *
 * Ownership: scheduler thread. Failures: none but out of memory (aborts).
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include <openssl/evp.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"
#include "message/envelope.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "smtp/smtp_client.h"

/* ------------------------------------------------------------------ */
/* membership                                                          */

/* hex_append - the bytes of p as hex (a source address in the key). */
static void hex_append(struct str *out, const void *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		char two[2] = { digits[b[i] >> 4], digits[b[i] & 15] };
		str_append(out, two, 2);
	}
}

/*
 * hop_key - the map key of dq's next hop now: binding, route key, and the
 * connection settings that must be equal to share a connection. The AUTH
 * identity (user, password, mechanism, plain-text flag) goes in as its
 * SHA-256, so no copy of the password ends up in the key.
 */
static void hop_key(struct str *key, struct queue_dest *dq)
{
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	char *auth = queue_auth_id(s);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dn = 0;

	str_appendf(key, "%s\x01%s\x01%u\x01%s\x01", dq->binding, dq->route_key, (unsigned)s->tls_mode,
		    s->ehlo ? s->ehlo : "");
	if (s->has_bind)
		hex_append(key, &s->bind, s->bind.ss_family == AF_INET6 ?
			   sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	str_appends(key, "\x01");
	if (auth) {
		if (EVP_Digest(auth, strlen(auth), d, &dn, EVP_sha256(), NULL) != 1)
			abort();	/* libcrypto without SHA-256: a broken environment */
		hex_append(key, d, dn);
	}
	queue_auth_id_free(auth);
}

/* hop_new - an empty hop for key, in the map. */
static struct queue_hop *hop_new(struct queue *q, const char *key, const struct queue_dest *dq)
{
	struct queue_hop *hop = XNEW(struct queue_hop);

	hop->q = q;
	hop->key = xstrdup(key);
	hop->binding = xstrdup(dq->binding);
	hop->name = xstrdup(dq->route_key);
	strmap_put(q->hops, key, hop);
	return hop;
}

void queue_hop_detach(struct queue_dest *dq)
{
	struct queue_hop *hop = dq->hop;

	if (hop == NULL)
		return;
	/* The last member takes the leaver's place: O(1), order is only round robin. */
	size_t i = dq->hop_idx;
	hop->members[i] = hop->members[--hop->nmembers];
	hop->members[i]->hop_idx = i;
	if (hop->rr >= hop->nmembers)
		hop->rr = 0;
	hop->lim_gen = 0;
	dq->hop = NULL;
	dq->hop_gen = 0;
}

struct queue_hop *queue_hop_attach(struct queue *q, struct queue_dest *dq)
{
	if (dq->hop && dq->hop_gen == q->conf_gen)
		return dq->hop;

	struct str key = STR_INIT;
	hop_key(&key, dq);
	if (dq->hop && strcmp(dq->hop->key, key.s) == 0) {
		dq->hop_gen = q->conf_gen;
		dq->hop->lim_gen = 0;	/* the conf may have changed its limits */
		goto out;
	}
	queue_hop_detach(dq);
	struct queue_hop *hop = strmap_get(q->hops, key.s);
	if (hop == NULL)
		hop = hop_new(q, key.s, dq);
	if (hop->nmembers == hop->memberscap) {
		hop->memberscap = hop->memberscap ? hop->memberscap * 2 : 8;
		hop->members = xrealloc(hop->members, hop->memberscap * sizeof(*hop->members));
	}
	dq->hop_idx = hop->nmembers;
	hop->members[hop->nmembers++] = dq;
	hop->lim_gen = 0;
	dq->hop = hop;
	dq->hop_gen = q->conf_gen;
out:
	str_free(&key);
	return dq->hop;
}

void queue_hop_limits(struct queue_hop *hop)
{
	if (hop->lim_gen == hop->q->conf_gen)
		return;
	hop->max_conns = 0;
	hop->max_rcpts = 0;
	for (size_t i = 0; i < hop->nmembers; i++) {
		const struct queue_dest_settings *s = queue_dest_settings(hop->members[i]);
		if (s->hop_max_conns && (hop->max_conns == 0 || s->hop_max_conns < hop->max_conns))
			hop->max_conns = s->hop_max_conns;
		if (hop->max_rcpts == 0 || s->hop_max_rcpts < hop->max_rcpts)
			hop->max_rcpts = s->hop_max_rcpts;
	}
	if (hop->max_rcpts == 0)
		hop->max_rcpts = 1;
	hop->lim_gen = hop->q->conf_gen;
}

/* ------------------------------------------------------------------ */
/* transactions                                                        */

/*
 * can_send - whether member dq may put recipients in a transaction now.
 * A member whose throttle is empty gets its timer armed for the token; one
 * that must resolve again or follow a reload is armed for now, so its own
 * kick does that (never from here: a kick may move it to another hop).
 */
static bool can_send(struct queue *q, struct queue_hop *hop, struct queue_dest *dq, bool new_conn,
		     int64_t now_us)
{
	int64_t now_s = now_us / 1000000;

	if (dq->nactive == 0 || dq->resolving)
		return false;
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	if (s->suspend || (q->nheld && queue_admin_held(q, dq)))
		return false;
	if (!s->rollup || dq->hop_gen != q->conf_gen || dq->naddr == 0 ||
	    now_s >= dq->hosts_expiry) {
		queue_dest_arm(dq, now_us);
		return false;
	}
	if (s->max_conns && dq->conns >= s->max_conns)
		return false;	/* a batch coming back kicks the hop */
	throttle_configure(&dq->msg_tb, &s->throttle_msgs, now_us);
	throttle_configure(&dq->conn_tb, &s->throttle_conns, now_us);
	int64_t wait = throttle_wait_us(&dq->msg_tb, now_us);
	if (new_conn) {
		int64_t w2 = throttle_wait_us(&dq->conn_tb, now_us);
		if (w2 > wait)
			wait = w2;
	}
	if (wait > 0) {
		queue_dest_arm(dq, now_us + wait);
		return false;
	}
	(void)hop;
	return true;
}

/* Entries gathered for one transaction. */
struct gather {
	struct qentry **v;
	uint32_t *dom_of;
	size_t n, cap;
	struct queue_dest **doms;
	size_t ndoms;
};

/* gather_from - up to max of dq's head entries of m into g; dq counts the transaction. */
static void gather_from(struct gather *g, struct queue_dest *dq, struct qmsg *m, size_t max,
			bool new_conn, int64_t now_us)
{
	size_t before = g->n;

	while (dq->head && dq->head->m == m && g->n - before < max) {
		if (g->n == g->cap) {
			g->cap = g->cap ? g->cap * 2 : 16;
			g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
			g->dom_of = xrealloc(g->dom_of, g->cap * sizeof(*g->dom_of));
		}
		g->v[g->n] = queue_dest_pop(dq);
		g->dom_of[g->n] = (uint32_t)g->ndoms;
		g->n++;
	}
	g->doms = xrealloc(g->doms, (g->ndoms + 1) * sizeof(*g->doms));
	g->doms[g->ndoms++] = dq;
	throttle_take(&dq->msg_tb, now_us);
	if (new_conn)
		throttle_take(&dq->conn_tb, now_us);
	dq->conns++;
}

/*
 * oldest_head - the member that gives the next transaction: among those
 * that may send now (their hop_ok set, the others' cleared), the one
 * whose head message is the oldest (ids are time-ordered), the first in
 * round-robin order on a tie. Oldest first keeps the domains of one
 * message together: a domain that got ahead (its lookup answered first,
 * a throttle held the others) waits for the rest to catch up instead of
 * splitting every later message. Expired heads met on the way fail.
 */
static struct queue_dest *oldest_head(struct queue *q, struct queue_hop *hop, bool new_conn,
				      int64_t now_us, size_t *at)
{
	int64_t now_s = now_us / 1000000;
	size_t n = hop->nmembers;
	struct queue_dest *best = NULL;

	for (size_t k = 0; k < n; k++) {
		size_t i = (hop->rr + k) % n;
		struct queue_dest *dq = hop->members[i];
		struct qentry *e;

		dq->hop_ok = false;
		if (dq->head == NULL || !can_send(q, hop, dq, new_conn, now_us))
			continue;
		while ((e = dq->head) != NULL && queue_outcome_expired(q, dq, e->m, now_s)) {
			queue_dest_pop(dq);
			queue_outcome_expire(q, dq, e,
					     "message expired: Message_Expiration reached before it could be delivered");
		}
		if (e == NULL)
			continue;
		dq->hop_ok = true;
		if (best == NULL || e->m->sm->id < best->head->m->sm->id) {
			best = dq;
			*at = k;
		}
	}
	return best;
}

struct smtp_batch *queue_hop_take(struct queue *q, struct queue_hop *hop, bool new_conn)
{
	int64_t now_us = queue_now_us();
	int64_t now_s = now_us / 1000000;
	size_t n = hop->nmembers;
	size_t k = 0;

	queue_hop_limits(hop);
	struct queue_dest *dq = oldest_head(q, hop, new_conn, now_us, &k);
	if (dq == NULL)
		return NULL;

	struct qmsg *m = dq->head->m;
	struct gather g = { 0 };
	size_t room = hop->max_rcpts;
	size_t share = queue_dest_settings(dq)->batch_size;

	gather_from(&g, dq, m, share < room ? share : room, new_conn, now_us);
	/* The same message's recipients in the other domains behind the hop, in round-robin order. */
	for (size_t k2 = 1; k2 < n && g.n < room; k2++) {
		struct queue_dest *d2 = hop->members[(hop->rr + k + k2) % n];
		if (!d2->hop_ok || d2->head == NULL || d2->head->m != m ||
		    queue_outcome_expired(q, d2, m, now_s))
			continue;
		share = queue_dest_settings(d2)->batch_size;
		gather_from(&g, d2, m, share < room - g.n ? share : room - g.n, new_conn, now_us);
	}
	hop->rr = (hop->rr + k + 1) % n;

	struct smtp_batch *b = queue_batch_new(q, m, g.v, g.n);
	struct qbatch *qb = b->qctx;
	qb->hop = hop;
	qb->dq = g.doms[0];
	qb->ndoms = g.ndoms;
	if (g.ndoms > 1) {
		qb->doms = g.doms;
		qb->dom_of = g.dom_of;
		hop->multi++;
	} else {
		qb->doms = &qb->dq;
		free(g.doms);
		free(g.dom_of);
	}
	free(g.v);
	hop->transactions++;
	return b;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

/* hop_free - out of the map and gone. */
static void hop_free(struct queue_hop *hop)
{
	free(hop->key);
	free(hop->name);
	free(hop->binding);
	free(hop->members);
	free(hop);
}

void queue_hop_release(struct queue_hop *hop)
{
	if (hop->nmembers > 0 || hop->conns > 0)
		return;
	if (strmap_del(hop->q->hops, hop->key) != hop)
		abort();	/* the map and the hop disagree: a broken invariant */
	hop_free(hop);
}

struct hop_list {
	struct queue_hop **v;
	size_t n;
};

static void collect_hop(void *ctx, const char *key, void *value)
{
	struct hop_list *l = ctx;

	(void)key;
	l->v[l->n++] = value;
}

void queue_hop_release_all(struct queue *q)
{
	struct hop_list l = { xcalloc(strmap_count(q->hops) + 1, sizeof(*l.v)), 0 };

	strmap_each(q->hops, collect_hop, &l);
	for (size_t i = 0; i < l.n; i++)
		queue_hop_release(l.v[i]);
	free(l.v);
}

void queue_hop_free_all(struct queue *q)
{
	struct hop_list l = { xcalloc(strmap_count(q->hops) + 1, sizeof(*l.v)), 0 };

	strmap_each(q->hops, collect_hop, &l);
	for (size_t i = 0; i < l.n; i++) {
		strmap_del(q->hops, l.v[i]->key);
		hop_free(l.v[i]);
	}
	free(l.v);
}
