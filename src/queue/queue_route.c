/*
 * queue_route.c - where a destination's mail goes
 *
 * The routing domain of a recipient is its domain, lower-cased. A message
 * is sent from the binding it was given, else Assign_Binding of its first
 * recipient's domain, else the default binding "". A message given a
 * Binding_Group only (by policy, or Assign_Binding naming a group) gets
 * one of the group's bindings from queue_binding.c.
 *
 * The hosts of a (binding, domain) queue, in this order:
 *
 *   1. Routes = ( "smtp://host:port" ): the first route's host and port
 *      ("__mx__" means: use DNS);
 *   2. Gateway = "host:port": a smart host;
 *   3. DNS MX (or implicit MX) of the domain, on Outbound_SMTP_Port.
 *
 * The answer (addresses with their host names) is kept in the queue for
 * its TTL, with its route key: the next hop the queue rolls up to under
 * MX_Rollup (queue_hop.c), the MX set as sorted "preference name" pairs
 * and the port ("mx:10 a.example,20 b.example port 25"), or the route's
 * host and port ("host:smtp.example port 587"). Two domains with the
 * same MX hosts and preferences get the same key whatever order DNS
 * listed them in. A failed lookup fails (NXDOMAIN, null MX) or defers (SERVFAIL,
 * timeout) every ready entry of the queue.
 *
 * Ownership: scheduler thread; a lookup in flight holds the queue (its
 * `resolving` flag), so the queue is not freed under it. The DNS answer
 * may arrive before dns_resolve_* returns (cache hit).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <netinet/in.h>

#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "dns/dns.h"
#include "log/log.h"
#include "message/envelope.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"

/* The port when a route names none, and the default for MX hosts. */
#define ROUTE_DEFAULT_PORT 25
/* How long an answer without a TTL is kept (seconds). */
#define ROUTE_DEFAULT_TTL 60
/* How long a queue whose lookup answered waits for its message's other domains' (µs). */
#define ROUTE_SIBLING_WAIT_US 200000
/* Recipients of a message looked at for that wait. */
#define ROUTE_SIBLING_SCAN_MAX 1000

struct resolve_req {
	struct queue *q;
	struct queue_dest *dq;
	uint16_t port;
	bool route;		/* a Routes/Gateway host, not an MX lookup */
};

char *queue_route_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d = xstrdup(at ? at + 1 : "");

	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

void queue_route_assign_binding(struct queue *q, struct envelope *sm)
{
	if (sm->binding && *sm->binding)
		return;
	if (sm->binding_group && *sm->binding_group)
		return;		/* a group was chosen: queue_binding_choose picks in it */
	if (sm->nrcpt == 0)
		return;
	char *domain = queue_route_domain(sm->rcpts[0].addr);
	const char *b = conf_get(q->conf, CONF_OPT_ASSIGN_BINDING, NULL, domain)->u.s;
	const char *group;
	if (b && *b && conf_binding_exists(q->conf, b)) {
		free(sm->binding);
		sm->binding = xstrdup(b);
		free(sm->binding_group);
		const char *g = conf_binding_group_of(q->conf, b);
		sm->binding_group = xstrdup(g ? g : "");
	} else if (b && *b && (group = queue_binding_group_name(q, b)) != NULL) {
		/* A Binding_Group: one of its bindings is chosen next. */
		free(sm->binding_group);
		sm->binding_group = xstrdup(group);
	}
	free(domain);
}

/* parse_route - host and port of "smtp://host:port", "host:port", "[v6]:port", "host". */
static void parse_route(const char *route, struct str *host, uint16_t *port)
{
	const char *p = route;

	*port = ROUTE_DEFAULT_PORT;
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

void queue_route_clear(struct queue_dest *dq)
{
	for (size_t i = 0; i < dq->naddr; i++)
		free(dq->names[i]);
	free(dq->names);
	free(dq->addrs);
	dq->names = NULL;
	dq->addrs = NULL;
	dq->naddr = 0;
	free(dq->route_key);
	dq->route_key = NULL;
}

/* host_cmp - MX hosts by preference, then name (qsort). */
static int host_cmp(const void *a, const void *b)
{
	const struct dns_host *x = *(const struct dns_host *const *)a;
	const struct dns_host *y = *(const struct dns_host *const *)b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcasecmp(x->name ? x->name : "", y->name ? y->name : "");
}

char *queue_route_key(const struct dns_mx_result *res, bool route, uint16_t port)
{
	struct str key = STR_INIT;
	const struct dns_host **v = xcalloc(res->nhosts ? res->nhosts : 1, sizeof(*v));

	for (size_t h = 0; h < res->nhosts; h++)
		v[h] = &res->hosts[h];
	qsort(v, res->nhosts, sizeof(*v), host_cmp);
	str_appends(&key, route ? "host:" : "mx:");
	for (size_t h = 0; h < res->nhosts; h++) {
		if (h)
			str_appends(&key, ",");
		if (!route)
			str_appendf(&key, "%u ", (unsigned)v[h]->pref);
		str_appends(&key, v[h]->name ? v[h]->name : "");
	}
	str_appendf(&key, " port %u", (unsigned)port);
	free(v);
	for (size_t i = 0; i < key.len; i++)
		if (key.s[i] >= 'A' && key.s[i] <= 'Z')
			key.s[i] = (char)(key.s[i] - 'A' + 'a');
	return str_steal(&key);
}

/* on_resolved - the answer: keep the addresses and kick, or fail/defer the ready entries. */
static void on_resolved(void *ctx, const struct dns_mx_result *res);

/*
 * siblings_resolving - whether a queue of another domain of dq's next
 * message (same binding) still waits for its own lookup. A new message's
 * lookups go out together (queue_route_prefetch) but answer one by one;
 * the first queue to hear would otherwise send the message alone, and
 * each later one its own share, instead of one transaction for all.
 */
static bool siblings_resolving(struct queue *q, struct queue_dest *dq)
{
	const struct envelope *sm = dq->head ? dq->head->m->sm : NULL;
	bool waiting = false;

	for (size_t i = 0; sm && i < sm->nrcpt && i < ROUTE_SIBLING_SCAN_MAX && !waiting; i++) {
		if (sm->rcpts[i].state != ENVELOPE_RCPT_QUEUED)
			continue;
		char *domain = queue_route_domain(sm->rcpts[i].addr);
		const char *routed = queue_admin_route(q, domain);
		if (strcmp(routed, dq->domain) != 0) {
			struct queue_dest *d2 = queue_dest_find(q, sm->binding ? sm->binding : "", routed);
			waiting = d2 != NULL && d2->resolving;
		}
		free(domain);
	}
	return waiting;
}

/*
 * answered - what to do after the answer: an answer that came inside
 * dns_resolve_* (cache hit) returns to queue_kick, whose caller releases
 * the queue; one that came later is the top of an event, so release it
 * here (a failed lookup may have failed every entry).
 */
static void answered(struct queue_dest *dq)
{
	if (!dq->in_resolve_call)
		queue_dest_release(dq);
}

static void on_resolved(void *ctx, const struct dns_mx_result *res)
{
	struct resolve_req *rr = ctx;
	struct queue *q = rr->q;
	struct queue_dest *dq = rr->dq;
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
		queue_outcome_fail_all(q, dq, res->status == DNS_PERMFAIL, why.s);
		str_free(&why);
		free(rr);
		answered(dq);
		return;
	}
	queue_route_clear(dq);
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
	dq->hosts_expiry = now_s + (res->ttl ? res->ttl : ROUTE_DEFAULT_TTL);
	dq->route_key = queue_route_key(res, rr->route, rr->port);
	dq->hop_gen = 0;	/* the next hop may have changed: chosen again at the kick */
	free(rr);
	if (dq->naddr == 0) {
		queue_outcome_fail_all(q, dq, false, "no address for the destination");
		answered(dq);
		return;
	}
	/* A member of its next hop now, so another member's kick can take its mail too. */
	if (queue_dest_settings(dq)->rollup)
		queue_hop_attach(q, dq);
	if (dq->quiet_resolve) {
		/* queue_route_prefetch: the caller kicks */
	} else if (!dq->in_resolve_call && dq->hop && siblings_resolving(q, dq)) {
		/* The last of them to answer kicks the hop; the timer bounds the wait. */
		queue_dest_arm(dq, queue_now_us() + ROUTE_SIBLING_WAIT_US);
	} else {
		queue_kick(q, dq);
	}
	answered(dq);
}

/*
 * queue_route_prefetch - look dq's hosts up now if it needs them, without
 * the kick an immediate (cached) answer would give, or join its next hop
 * if it has them: a new message's queues all get their hosts and next
 * hops before the first of them is kicked, so that kick can put the
 * message's recipients of every domain behind one next hop in one
 * transaction.
 */
void queue_route_prefetch(struct queue *q, struct queue_dest *dq)
{
	int64_t now_s = queue_now_us() / 1000000;

	if (dq->resolving || dq->nactive == 0)
		return;
	/* Only what the kick would do: a held queue is not looked up (a failed lookup fails its mail). */
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	if (!s->rollup || s->suspend || (q->nheld && queue_admin_held(q, dq)))
		return;
	if (dq->hosts_expiry != 0 && now_s < dq->hosts_expiry && dq->naddr > 0) {
		queue_hop_attach(q, dq);	/* known hosts; a reload may have changed its hop */
		return;
	}
	dq->quiet_resolve = true;
	queue_route_resolve(q, dq);
	dq->quiet_resolve = false;
}

void queue_route_resolve(struct queue *q, struct queue_dest *dq)
{
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	struct resolve_req *rr = XNEW(struct resolve_req);
	const char *route = s->route;

	rr->q = q;
	rr->dq = dq;
	rr->port = s->port;
	dq->resolving = true;
	dq->in_resolve_call = true;
	if (route) {
		struct str host = STR_INIT;
		rr->route = true;
		parse_route(route, &host, &rr->port);
		dns_resolve_host(q->deps.dns, host.s, on_resolved, rr);
		str_free(&host);
	} else {
		dns_resolve_mx(q->deps.dns, dq->domain, on_resolved, rr);
	}
	dq->in_resolve_call = false;
}
