/*
 * dns_lookup.c - one MX or host lookup: its c-ares queries and its answer
 *
 * An MX lookup asks for the domain's MX records, then, in parallel, for
 * the A and AAAA records of every MX host; a host lookup does only the
 * second step for one name. The lookup counts its outstanding queries in
 * `pending` and, when the last one has answered, builds a struct
 * dns_answer and hands it to dns_lookup_done() (dns.c), which caches it
 * and calls the waiters.
 *
 * The rules (RFC 5321 5.1, RFC 7505), in the order they are applied:
 *   - NXDOMAIN for the MX query: permanent, "domain does not exist".
 *   - An MX set whose only exchange is the root ("."): permanent, null MX.
 *   - No MX record (NODATA): the domain itself is the one host, preference
 *     0; no address for it either is permanent unless a query failed
 *     transiently.
 *   - Otherwise the MX hosts sorted by preference (dns.c shuffles equal
 *     preferences for each caller); a host without any address is left
 *     out; no host with an address is transient.
 *   - SERVFAIL, REFUSED, timeouts, unreachable servers: transient.
 * Each host lists its IPv4 addresses first, then its IPv6 ones, each in the
 * order the server gave them.
 *
 * Ownership: the lookup belongs to the scheduler thread and to itself while
 * queries are outstanding; dns.c frees it after delivering its answer.
 * Failure modes: none of its own; malformed answers become transient
 * failures, allocation failure aborts (core/mem.h).
 */
#include "dns/dns_int.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"

/* The context of one A or AAAA query. */
struct dns_addr_query {
	struct dns_lookup *lk;
	size_t host;
	int family;
};

static void lookup_finish(struct dns_lookup *lk);

/* ==== answers ======================================================== */

/* answer_new - an empty answer holding one reference. */
static struct dns_answer *answer_new(void)
{
	struct dns_answer *ans = XNEW(struct dns_answer);

	ans->refs = 1;
	return ans;
}

struct dns_answer *dns_answer_fail(enum dns_status st, const char *fmt, ...)
{
	struct dns_answer *ans = answer_new();
	struct str msg = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&msg, fmt, ap);
	va_end(ap);
	ans->res.status = st;
	ans->res.error = str_steal(&msg);
	return ans;
}

void dns_answer_unref(struct dns_answer *ans)
{
	size_t i;

	if (ans == NULL || --ans->refs > 0)
		return;
	for (i = 0; i < ans->res.nhosts; i++) {
		free(ans->res.hosts[i].name);
		free(ans->res.hosts[i].addrs);
	}
	free(ans->res.hosts);
	free((char *)ans->res.error);
	free(ans);
}

bool dns_parse_literal(const char *s, struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);

	memset(ss, 0, sizeof(*ss));
	/* "[192.0.2.1]", "[2001:db8::1]", "[IPv6:2001:db8::1]" as in an address literal. */
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
		}
	}
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

struct dns_answer *dns_literal_answer(const char *name, const struct sockaddr_storage *ss,
				      uint32_t ttl)
{
	struct dns_answer *ans = answer_new();
	struct dns_host *h = XNEW(struct dns_host);

	h->name = xstrdup(name);
	h->naddr = 1;
	h->addrs = xmemdup(ss, sizeof(*ss));
	ans->res.status = DNS_OK;
	ans->res.nhosts = 1;
	ans->res.hosts = h;
	ans->res.ttl = ttl;
	return ans;
}

/* ares_reason - why a query failed, in words for logs and bounces. */
static const char *ares_reason(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:	return "server failure (SERVFAIL)";
	case ARES_EREFUSED:	return "query refused (REFUSED)";
	case ARES_ETIMEOUT:	return "timed out";
	case ARES_ECONNREFUSED:
		/*
		 * c-ares 1.18 reports a SERVFAIL or REFUSED answer this way too
		 * (it tries the next server and keeps no rcode), so the words
		 * cover all three.
		 */
		return "no DNS server answered (SERVFAIL, REFUSED or unreachable)";
	case ARES_EFORMERR:	return "format error (FORMERR)";
	case ARES_ENOTIMP:	return "not implemented by the server (NOTIMP)";
	case ARES_EBADRESP:	return "malformed response";
	case ARES_ENOTFOUND:	return "no such domain (NXDOMAIN)";
	case ARES_ENODATA:	return "no records";
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:	return "cancelled";
	default:		return ares_strerror(status);
	}
}

/* transient - whether a query status says "ask again later" rather than "no". */
static bool transient(int status)
{
	return status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND;
}

/* ==== parsing ======================================================== */

/* skip_name - the offset after the name at off in a DNS message; 0 if malformed. */
static size_t skip_name(const unsigned char *buf, size_t len, size_t off)
{
	while (off < len) {
		unsigned c = buf[off];

		if (c == 0)
			return off + 1;
		if ((c & 0xC0) == 0xC0)
			return off + 2 <= len ? off + 2 : 0;
		if (c & 0xC0)
			return 0;
		off += 1 + c;
	}
	return 0;
}

/*
 * answer_min_ttl - the lowest TTL in a reply's answer section.
 *
 * ares_parse_mx_reply does not report TTLs, so the MX answer's records
 * (the MX records and any CNAME that led to them) are walked here. False
 * when the message is malformed or the section is empty.
 */
static bool answer_min_ttl(const unsigned char *buf, int alen, uint32_t *out)
{
	size_t len = alen > 0 ? (size_t)alen : 0, off = 12;
	unsigned qd, an, i;
	uint32_t min = UINT32_MAX;

	if (buf == NULL || len < 12)
		return false;
	qd = (unsigned)buf[4] << 8 | buf[5];
	an = (unsigned)buf[6] << 8 | buf[7];
	for (i = 0; i < qd; i++) {
		off = skip_name(buf, len, off);
		if (off == 0 || off + 4 > len)
			return false;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		uint32_t ttl;
		size_t rdlen;

		off = skip_name(buf, len, off);
		if (off == 0 || off + 10 > len)
			return false;
		ttl = (uint32_t)buf[off + 4] << 24 | (uint32_t)buf[off + 5] << 16 |
		      (uint32_t)buf[off + 6] << 8 | buf[off + 7];
		rdlen = (size_t)buf[off + 8] << 8 | buf[off + 9];
		off += 10 + rdlen;
		if (off > len)
			return false;
		if (ttl & 0x80000000u)		/* RFC 2181 8: treat as zero */
			ttl = 0;
		if (ttl < min)
			min = ttl;
	}
	if (an == 0)
		return false;
	*out = min;
	return true;
}

/* ==== the address phase ============================================== */

/* lookup_release - one query (or guard) less; the last one finishes the lookup. */
static void lookup_release(struct dns_lookup *lk)
{
	if (--lk->pending == 0)
		lookup_finish(lk);
}

/* ttl_of - a record TTL as c-ares reports it (an int), never negative. */
static uint32_t ttl_of(int ttl)
{
	return ttl > 0 ? (uint32_t)ttl : 0;
}

/* take_addrs - keep the addresses of a successful A or AAAA reply. */
static void take_addrs(struct dns_family *fam, int family, const unsigned char *abuf, int alen)
{
	int i, n = DNS_MAX_HOST_ADDRS, st;
	uint32_t ttl = UINT32_MAX;

	if (family == AF_INET) {
		struct ares_addrttl at[DNS_MAX_HOST_ADDRS];

		st = ares_parse_a_reply(abuf, alen, NULL, at, &n);
		if (st == ARES_SUCCESS && n > 0) {
			fam->addrs = xcalloc((size_t)n, sizeof(*fam->addrs));
			for (i = 0; i < n; i++) {
				struct sockaddr_in *sin = (struct sockaddr_in *)&fam->addrs[i];

				sin->sin_family = AF_INET;
				sin->sin_addr = at[i].ipaddr;
				if (ttl_of(at[i].ttl) < ttl)
					ttl = ttl_of(at[i].ttl);
			}
		}
	} else {
		struct ares_addr6ttl at[DNS_MAX_HOST_ADDRS];

		st = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);
		if (st == ARES_SUCCESS && n > 0) {
			fam->addrs = xcalloc((size_t)n, sizeof(*fam->addrs));
			for (i = 0; i < n; i++) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&fam->addrs[i];

				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, &at[i].ip6addr, sizeof(sin6->sin6_addr));
				if (ttl_of(at[i].ttl) < ttl)
					ttl = ttl_of(at[i].ttl);
			}
		}
	}
	if (st == ARES_SUCCESS && n == 0)
		st = ARES_ENODATA;	/* e.g. only a CNAME to a name without this type */
	fam->status = st;
	fam->n = st == ARES_SUCCESS ? (size_t)n : 0;
	fam->ttl = ttl;
}

/* on_addr - the answer to one A or AAAA query. */
static void on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_addr_query *q = arg;
	struct dns_lookup *lk = q->lk;
	struct dns_lookup_host *h = &lk->hosts[q->host];
	struct dns_family *fam = q->family == AF_INET ? &h->v4 : &h->v6;

	fam->status = status;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION)
		lk->cancelled = true;
	else if (status == ARES_SUCCESS)
		take_addrs(fam, q->family, abuf, alen);
	free(q);
	lookup_release(lk);
}

/* ask_addr - send the A or AAAA query of host i. */
static void ask_addr(struct dns_lookup *lk, size_t i, int family)
{
	struct dns_addr_query *q = XNEW(struct dns_addr_query);

	q->lk = lk;
	q->host = i;
	q->family = family;
	lk->pending++;
	dns_query(lk->dns, lk->hosts[i].name, family == AF_INET ? ns_t_a : ns_t_aaaa, on_addr, q);
}

/*
 * start_addresses - ask for A and AAAA of every host at once.
 *
 * A guard reference keeps the lookup alive while the queries are sent:
 * c-ares may call a callback before ares_query returns.
 */
static void start_addresses(struct dns_lookup *lk)
{
	size_t i, n = lk->nhosts;

	lk->pending++;
	for (i = 0; i < n; i++) {
		struct dns_lookup_host *h = &lk->hosts[i];
		struct sockaddr_storage ss;

		h->v4.status = h->v6.status = -1;
		if (dns_parse_literal(h->name, &ss)) {
			/* An MX naming an address is invalid, but harmless to honour. */
			struct dns_family *fam = ss.ss_family == AF_INET ? &h->v4 : &h->v6;
			struct dns_family *other = ss.ss_family == AF_INET ? &h->v6 : &h->v4;

			fam->status = ARES_SUCCESS;
			fam->n = 1;
			fam->addrs = xmemdup(&ss, sizeof(ss));
			fam->ttl = UINT32_MAX;
			other->status = ARES_ENODATA;
			continue;
		}
		if (lk->dns->closing) {
			lk->cancelled = true;
			break;
		}
		ask_addr(lk, i, AF_INET);
		ask_addr(lk, i, AF_INET6);
	}
	lookup_release(lk);
}

/* ==== the MX phase =================================================== */

/* verdict - end the lookup with a failure decided before the address phase. */
static void verdict(struct dns_lookup *lk, enum dns_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verdict(struct dns_lookup *lk, enum dns_status st, const char *fmt, ...)
{
	struct str msg = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&msg, fmt, ap);
	va_end(ap);
	lk->status = st;
	free(lk->error);
	lk->error = str_steal(&msg);
}

/* start_implicit - no MX: the domain is its own mail host (RFC 5321 5.1). */
static void start_implicit(struct dns_lookup *lk)
{
	lk->implicit = true;
	lk->nhosts = 1;
	lk->hosts = XNEW(struct dns_lookup_host);
	lk->hosts[0].name = xstrdup(lk->name);
	lk->hosts[0].pref = 0;
	start_addresses(lk);
}

/* cmp_pref - qsort order: lowest preference first. */
static int cmp_pref(const void *a, const void *b)
{
	const struct dns_lookup_host *x = a, *y = b;

	return (int)x->pref - (int)y->pref;
}

/* lower - lower-case ASCII in place; returns s. */
static char *lower(char *s)
{
	char *p;

	for (p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

/* take_mx - the MX records of a successful reply: null MX, or hosts to resolve. */
static void take_mx(struct dns_lookup *lk, struct ares_mx_reply *mx, const unsigned char *abuf,
		    int alen)
{
	struct ares_mx_reply *r;
	size_t n = 0, nnull = 0, i, j;

	for (r = mx; r; r = r->next) {
		if (r->host == NULL || r->host[0] == '\0' || strcmp(r->host, ".") == 0)
			nnull++;
		else
			n++;
	}
	/*
	 * RFC 7505: a null MX must be alone. One that is not is ignored in
	 * favour of the real hosts; several null MX records still mean "no mail".
	 */
	if (n == 0) {
		if (nnull)
			verdict(lk, DNS_PERMFAIL, "domain accepts no mail (null MX, RFC 7505)");
		else
			start_implicit(lk);
		return;
	}
	lk->hosts = xcalloc(n, sizeof(*lk->hosts));
	for (r = mx; r; r = r->next) {
		if (r->host == NULL || r->host[0] == '\0' || strcmp(r->host, ".") == 0)
			continue;
		lk->hosts[lk->nhosts].name = lower(xstrdup(r->host));
		lk->hosts[lk->nhosts].pref = r->priority;
		lk->nhosts++;
	}
	qsort(lk->hosts, lk->nhosts, sizeof(*lk->hosts), cmp_pref);

	/* The same host twice keeps its best preference only. */
	for (i = 0, n = 0; i < lk->nhosts; i++) {
		for (j = 0; j < n; j++)
			if (strcmp(lk->hosts[j].name, lk->hosts[i].name) == 0)
				break;
		if (j < n || n == DNS_MAX_MX_HOSTS) {
			free(lk->hosts[i].name);
			continue;
		}
		lk->hosts[n++] = lk->hosts[i];
	}
	lk->nhosts = n;
	if (!answer_min_ttl(abuf, alen, &lk->mx_ttl))
		lk->mx_ttl = lk->dns->min_ttl;
	start_addresses(lk);
}

/* on_mx - the answer to the MX query. */
static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *lk = arg;
	struct ares_mx_reply *mx = NULL;

	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &mx);
		if (status == ARES_SUCCESS && mx == NULL)
			status = ARES_ENODATA;
	}
	switch (status) {
	case ARES_SUCCESS:
		take_mx(lk, mx, abuf, alen);
		break;
	case ARES_ENODATA:		/* NOERROR, no MX (a CNAME alone counts too) */
		start_implicit(lk);
		break;
	case ARES_ENOTFOUND:
		verdict(lk, DNS_PERMFAIL, "domain does not exist");
		break;
	case ARES_EBADNAME:
		verdict(lk, DNS_PERMFAIL, "bad domain name");
		break;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		lk->cancelled = true;
		break;
	default:
		verdict(lk, DNS_TEMPFAIL, "MX lookup failed: %s", ares_reason(status));
		break;
	}
	if (mx)
		ares_free_data(mx);
	lookup_release(lk);
}

/* ==== the answer ===================================================== */

/* clamp_ttl - a TTL within the resolver's bounds. */
static uint32_t clamp_ttl(const struct dns *dns, uint32_t ttl)
{
	if (ttl < dns->min_ttl)
		return dns->min_ttl;
	if (ttl > dns->max_ttl)
		return dns->max_ttl;
	return ttl;
}

/* fold_family - count a family's addresses, its TTL and whether it failed transiently. */
static void fold_family(const struct dns_family *fam, uint32_t *ttl, int *trans)
{
	if (fam->n > 0 && fam->ttl < *ttl)
		*ttl = fam->ttl;
	if (fam->status != -1 && transient(fam->status) && *trans == ARES_SUCCESS)
		*trans = fam->status;
}

/*
 * build_answer - turn the address phase into the answer.
 *
 * The TTL is the lowest of the records used (the MX records and the
 * addresses of the hosts kept). If any address query failed transiently
 * the answer may be missing addresses, so it is kept only for min_ttl.
 */
static struct dns_answer *build_answer(struct dns_lookup *lk, bool *cacheable)
{
	struct dns *dns = lk->dns;
	uint32_t ttl = lk->kind == DNS_LOOKUP_MX && !lk->implicit ? lk->mx_ttl : UINT32_MAX;
	int trans = ARES_SUCCESS;
	size_t i, used = 0;
	struct dns_answer *ans;

	for (i = 0; i < lk->nhosts; i++) {
		struct dns_lookup_host *h = &lk->hosts[i];
		uint32_t hostttl = UINT32_MAX;

		fold_family(&h->v4, &hostttl, &trans);
		fold_family(&h->v6, &hostttl, &trans);
		if (h->v4.n + h->v6.n == 0)
			continue;
		used++;
		if (hostttl < ttl)
			ttl = hostttl;
	}

	*cacheable = false;
	if (used == 0) {
		if (lk->kind == DNS_LOOKUP_HOST)
			return trans != ARES_SUCCESS ?
				dns_answer_fail(DNS_TEMPFAIL, "address lookup of %s failed: %s",
						lk->name, ares_reason(trans)) :
				dns_answer_fail(DNS_TEMPFAIL, "host %s has no address", lk->name);
		if (!lk->implicit)
			return dns_answer_fail(DNS_TEMPFAIL, "no address for any MX host");
		if (trans != ARES_SUCCESS)
			return dns_answer_fail(DNS_TEMPFAIL, "no MX; address lookup failed: %s",
					       ares_reason(trans));
		ans = dns_answer_fail(DNS_PERMFAIL, "no MX and no A/AAAA");
		ans->res.ttl = dns->min_ttl;
		*cacheable = true;
		return ans;
	}

	ans = answer_new();
	ans->res.status = DNS_OK;
	ans->res.hosts = xcalloc(used, sizeof(*ans->res.hosts));
	for (i = 0; i < lk->nhosts; i++) {
		struct dns_lookup_host *h = &lk->hosts[i];
		struct dns_host *out;

		if (h->v4.n + h->v6.n == 0)
			continue;
		out = &ans->res.hosts[ans->res.nhosts++];
		out->name = xstrdup(h->name);
		out->pref = h->pref;
		out->naddr = h->v4.n + h->v6.n;
		out->addrs = xcalloc(out->naddr, sizeof(*out->addrs));
		if (h->v4.n)
			memcpy(out->addrs, h->v4.addrs, h->v4.n * sizeof(*out->addrs));
		if (h->v6.n)
			memcpy(out->addrs + h->v4.n, h->v6.addrs, h->v6.n * sizeof(*out->addrs));
	}
	ans->res.ttl = trans != ARES_SUCCESS ? dns->min_ttl : clamp_ttl(dns, ttl);
	*cacheable = true;
	return ans;
}

/* lookup_finish - every query has answered: the answer goes to dns.c. */
static void lookup_finish(struct dns_lookup *lk)
{
	struct dns_answer *ans;
	bool cacheable = false;

	if (lk->cancelled) {
		ans = dns_answer_fail(DNS_TEMPFAIL, "cancelled");
	} else if (lk->error) {
		ans = dns_answer_fail(lk->status, "%s", lk->error);
		if (lk->status == DNS_PERMFAIL) {
			ans->res.ttl = lk->dns->min_ttl;
			cacheable = true;
		}
	} else {
		ans = build_answer(lk, &cacheable);
	}
	dns_lookup_done(lk, ans, cacheable);
}

/* ==== life cycle ===================================================== */

void dns_lookup_start(struct dns_lookup *lk)
{
	if (lk->kind == DNS_LOOKUP_HOST) {
		lk->nhosts = 1;
		lk->hosts = XNEW(struct dns_lookup_host);
		lk->hosts[0].name = xstrdup(lk->name);
		start_addresses(lk);
		return;
	}
	lk->pending++;
	dns_query(lk->dns, lk->name, ns_t_mx, on_mx, lk);
}

void dns_lookup_free(struct dns_lookup *lk)
{
	size_t i;

	if (lk == NULL)
		return;
	while (lk->waiters) {
		struct dns_waiter *w = lk->waiters;

		lk->waiters = w->next;
		free(w);
	}
	for (i = 0; i < lk->nhosts; i++) {
		free(lk->hosts[i].name);
		free(lk->hosts[i].v4.addrs);
		free(lk->hosts[i].v6.addrs);
	}
	free(lk->hosts);
	free(lk->error);
	free(lk->key);
	free(lk->name);
	free(lk);
}
