/*
 * fuzz_dns_answer.c - libFuzzer target for the DNS answer walker (src/dns/dns_lookup.c)
 *
 * The bytes a name server sends are walked by dns_lookup.c: the MX reply
 * (ares_parse_mx_reply plus its own walk of the answer section for the
 * TTLs, answer_min_ttl), then the A and AAAA replies of every MX host
 * (take_addrs), and build_answer turns them into the struct dns_mx_result
 * that delivery uses. This target plays the resolver: it defines
 * dns_query, dns_lookup_done, dns_random and dns_now_ms itself, so the
 * static impetus_lib gives it dns_lookup.o but never dns.o, and every query
 * the lookup sends is answered from the fuzzer's input (in FIFO order, or
 * inline inside dns_query, as c-ares may do).
 *
 * Input: byte 0 holds flags: bit 0 a host lookup (A/AAAA of one name)
 * instead of an MX lookup, bit 1 answer queries inline, bit 2 "built"
 * mode, bits 3-4 the resolver's TTL bounds. Then one reply per query:
 *   raw mode:   status byte, 16-bit length, that many bytes of DNS message
 *               (a real reply, as c-ares hands it over);
 *   built mode: the target writes a well-formed reply from a description
 *               (MX: count, then per record 16-bit preference, 32-bit TTL
 *               and a host byte picking one of 32 names in either case or
 *               the root; A/AAAA: count, key byte, 32-bit TTL), so the
 *               checks below know exactly what the answer must be.
 * A query with no input left times out.
 *
 * Properties, besides memory safety and UB (checked for every input):
 *   - exactly one answer per lookup; OK answers have 1..DNS_MAX_MX_HOSTS
 *     hosts, each with a non-empty lower-case name (MX), 1..2*DNS_MAX_HOST_ADDRS
 *     addresses, IPv4 before IPv6, preferences never decreasing, no name
 *     twice, a TTL within [min_ttl, max_ttl]; failed answers have a reason
 *     and no host;
 * and in built mode, against what the target sent:
 *   - each host's preference is the lowest the MX records gave its name;
 *     a null MX alone is a permanent failure, no MX an implicit MX;
 *   - each host's addresses are exactly those of its A then AAAA reply
 *     (at most DNS_MAX_HOST_ADDRS of each), in order;
 *   - the TTL is the lowest TTL used (MX records, addresses of the hosts
 *     kept; a TTL with the high bit set counts as 0), clamped, or min_ttl
 *     when an address query failed transiently.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_dns_answer -runs=1000000
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "dns/dns_int.h"

#include "fuzz.h"

#define F_HOST		0x01
#define F_INLINE	0x02
#define F_BUILT		0x04
#define MAX_QUERIES	(2 * DNS_MAX_MX_HOSTS + 4)
#define MAX_MSG		8192
#define MX_NAMES	32	/* distinct MX host names in built mode */
#define NULL_MX_BYTE	0x7f	/* host byte meaning the root (null MX) */

/* The statuses a reply byte chooses from (index 0: a reply message). */
static const int statuses[] = {
	ARES_SUCCESS, ARES_ENODATA, ARES_ENOTFOUND, ARES_ESERVFAIL, ARES_ETIMEOUT,
	ARES_ECONNREFUSED, ARES_EREFUSED, ARES_EBADRESP, ARES_SUCCESS, ARES_SUCCESS,
};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* What the target answered one address query with (built mode). */
struct sent_addr {
	char name[300];
	int type;
	int status;		/* as given to the callback */
	unsigned count;		/* records in the reply */
	uint8_t key;
	uint32_t ttl;
};

struct query {
	char name[300];
	int type;
	ares_callback cb;
	void *arg;
};

static struct {
	const uint8_t *in;
	size_t left;
	uint8_t flags;
	struct query q[MAX_QUERIES];
	size_t nq, next;
	bool answering;
	/* built mode, MX reply */
	bool mx_sent;
	int mx_status;
	unsigned mx_n, mx_nnull;
	uint16_t mx_pref[64];
	uint8_t mx_host[64];
	uint32_t mx_ttl;	/* lowest, high bit as 0 */
	struct sent_addr sent[MAX_QUERIES];
	size_t nsent;
	/* the result */
	struct dns_answer *ans;
	int ndone;
} fz;

static uint8_t take8(void)
{
	if (fz.left == 0)
		return 0;
	fz.left--;
	return *fz.in++;
}

static uint32_t take32(void)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | take8();
	return v;
}

/* ---- a tiny DNS message writer (built mode) ---- */

struct msg {
	unsigned char b[MAX_MSG];
	size_t n;
};

static void put8(struct msg *m, unsigned v)
{
	if (m->n < MAX_MSG)
		m->b[m->n++] = (unsigned char)v;
}

static void put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8 & 0xff);
	put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

/* put_name - a name in wire form, uncompressed ("" or "." is the root). */
static void put_name(struct msg *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		if (l > 0) {
			put8(m, (unsigned)l);
			for (size_t i = 0; i < l; i++)
				put8(m, (unsigned char)name[i]);
		}
		name += l + (dot ? 1 : 0);
	}
	put8(m, 0);
}

static void put_header(struct msg *m, const char *qname, int type, unsigned an)
{
	put16(m, 0x1234);
	put16(m, 0x8180);
	put16(m, 1);
	put16(m, an);
	put16(m, 0);
	put16(m, 0);
	put_name(m, qname);
	put16(m, (unsigned)type);
	put16(m, ns_c_in);
}

/* put_rr - an answer record owned by the question name (pointer to offset 12). */
static void put_rr(struct msg *m, int type, uint32_t ttl, const unsigned char *rdata, size_t rdlen)
{
	put16(m, 0xC00C);
	put16(m, (unsigned)type);
	put16(m, ns_c_in);
	put32(m, ttl);
	put16(m, (unsigned)rdlen);
	for (size_t i = 0; i < rdlen; i++)
		put8(m, rdata[i]);
}

/* mx_name - the host name a built MX record's host byte stands for. */
static void mx_name(uint8_t h, char *out, size_t size)
{
	if (h & 0x80)
		snprintf(out, size, "MX%u.Example.COM", h % MX_NAMES);
	else
		snprintf(out, size, "mx%u.example.com", h % MX_NAMES);
}

static uint32_t ttl_as_used(uint32_t ttl)
{
	return ttl & 0x80000000u ? 0 : ttl;
}

/* built_mx - write the MX reply from the input; its status in *st. */
static size_t built_mx(const char *qname, unsigned char *out, int *st)
{
	struct msg m = { .n = 0 };
	uint8_t s = take8();
	unsigned n = take8() % 40;

	fz.mx_sent = true;
	fz.mx_ttl = UINT32_MAX;
	*st = fz.mx_status = s % 4 == 0 ? statuses[(s >> 2) % NSTATUS] : ARES_SUCCESS;
	if (*st != ARES_SUCCESS)
		return 0;
	put_header(&m, qname, ns_t_mx, n);
	for (unsigned i = 0; i < n; i++) {
		struct msg rd = { .n = 0 };
		char name[64];
		uint16_t pref = (uint16_t)(take8() << 8);
		pref |= take8();
		uint32_t ttl = take32();
		uint8_t h = take8();

		put16(&rd, pref);
		if (h == NULL_MX_BYTE) {
			put8(&rd, 0);
			fz.mx_nnull++;
		} else {
			mx_name(h, name, sizeof(name));
			put_name(&rd, name);
			fz.mx_pref[fz.mx_n] = pref;
			fz.mx_host[fz.mx_n] = h;
			fz.mx_n++;
		}
		put_rr(&m, ns_t_mx, ttl, rd.b, rd.n);
		if (ttl_as_used(ttl) < fz.mx_ttl)
			fz.mx_ttl = ttl_as_used(ttl);
	}
	memcpy(out, m.b, m.n);
	return m.n;
}

/* built_addr - write an A or AAAA reply from the input; its status in *st. */
static size_t built_addr(const char *qname, int type, unsigned char *out, int *st)
{
	struct msg m = { .n = 0 };
	struct sent_addr *sa = &fz.sent[fz.nsent++];
	uint8_t s = take8();

	snprintf(sa->name, sizeof(sa->name), "%s", qname);
	sa->type = type;
	sa->count = take8() % 40;
	sa->key = take8();
	sa->ttl = take32();
	*st = sa->status = s % 4 == 0 ? statuses[(s >> 2) % NSTATUS] : ARES_SUCCESS;
	if (*st != ARES_SUCCESS)
		return 0;
	put_header(&m, qname, type, sa->count);
	for (unsigned i = 0; i < sa->count; i++) {
		unsigned char rd[16] = { 0 };

		if (type == ns_t_a) {
			rd[0] = 10, rd[1] = sa->key, rd[3] = (unsigned char)i;
			put_rr(&m, type, sa->ttl, rd, 4);
		} else {
			rd[0] = 0x20, rd[1] = 0x01, rd[2] = 0x0d, rd[3] = 0xb8;
			rd[14] = sa->key, rd[15] = (unsigned char)i;
			put_rr(&m, type, sa->ttl, rd, 16);
		}
	}
	memcpy(out, m.b, m.n);
	return m.n;
}

/* answer_one - give query q its reply from the input. */
static void answer_one(const struct query *q)
{
	static unsigned char buf[MAX_MSG];
	size_t len = 0;
	int st;

	if (fz.left == 0) {
		st = ARES_ETIMEOUT;
	} else if (fz.flags & F_BUILT) {
		len = q->type == ns_t_mx ? built_mx(q->name, buf, &st) :
					   built_addr(q->name, q->type, buf, &st);
	} else {
		uint8_t s = take8();
		len = (size_t)take8() << 8;
		len |= take8();
		if (len > fz.left)
			len = fz.left;
		memcpy(buf, fz.in, len);
		fz.in += len;
		fz.left -= len;
		st = s % 4 == 0 ? statuses[(s >> 2) % NSTATUS] : ARES_SUCCESS;
	}
	/* c-ares passes a reply only with ARES_SUCCESS. */
	if (st != ARES_SUCCESS)
		q->cb(q->arg, st, 0, NULL, 0);
	else
		q->cb(q->arg, st, 0, len ? buf : NULL, (int)len);
}

/* ---- the resolver side that dns.c would be ---- */

void dns_query(struct dns *dns, const char *name, int type, ares_callback cb, void *arg)
{
	struct query q;

	(void)dns;
	MUST(fz.nq < MAX_QUERIES);
	MUST(type == ns_t_mx || type == ns_t_a || type == ns_t_aaaa);
	MUST(name != NULL && name[0] != '\0');
	snprintf(q.name, sizeof(q.name), "%s", name);
	q.type = type;
	q.cb = cb;
	q.arg = arg;
	if (fz.flags & F_INLINE) {
		fz.nq++;
		answer_one(&q);
		return;
	}
	fz.q[fz.nq++] = q;
}

void dns_lookup_done(struct dns_lookup *lk, struct dns_answer *ans, bool cacheable)
{
	(void)lk;
	(void)cacheable;
	MUST(ans != NULL && ans->refs == 1);
	fz.ans = ans;
	fz.ndone++;
}

uint64_t dns_random(struct dns *dns)
{
	(void)dns;
	return 4;
}

uint64_t dns_now_ms(void)
{
	return 0;
}

/* ---- checks ---- */

static bool is_v4(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET;
}

/* sent_for - the address reply the target gave name for type, or NULL. */
static const struct sent_addr *sent_for(const char *name, int type)
{
	for (size_t i = 0; i < fz.nsent; i++)
		if (fz.sent[i].type == type && strcmp(fz.sent[i].name, name) == 0)
			return &fz.sent[i];
	return NULL;
}

static unsigned kept(const struct sent_addr *sa)
{
	if (sa == NULL || sa->status != ARES_SUCCESS)
		return 0;
	return sa->count < DNS_MAX_HOST_ADDRS ? sa->count : DNS_MAX_HOST_ADDRS;
}

/* check_built_host - one host's addresses are those the target sent, in order. */
static void check_built_host(const struct dns_host *h)
{
	const struct sent_addr *a = sent_for(h->name, ns_t_a);
	const struct sent_addr *aaaa = sent_for(h->name, ns_t_aaaa);
	unsigned n4 = kept(a), n6 = kept(aaaa);

	MUST(h->naddr == n4 + n6);
	for (unsigned i = 0; i < n4; i++) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&h->addrs[i];
		const unsigned char *b = (const unsigned char *)&sin->sin_addr;

		MUST(b[0] == 10 && b[1] == a->key && b[2] == 0 && b[3] == i);
	}
	for (unsigned i = 0; i < n6; i++) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&h->addrs[n4 + i];
		const unsigned char *b = s6->sin6_addr.s6_addr;

		MUST(b[0] == 0x20 && b[1] == 0x01 && b[14] == aaaa->key && b[15] == i);
	}
}

/* expected_pref - the lowest preference the built MX records gave name; -1 none. */
static int expected_pref(const char *name)
{
	int best = -1;

	for (unsigned i = 0; i < fz.mx_n; i++) {
		char n[64];

		mx_name(fz.mx_host[i], n, sizeof(n));
		for (char *p = n; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (strcmp(n, name) == 0 && (best < 0 || fz.mx_pref[i] < best))
			best = fz.mx_pref[i];
	}
	return best;
}

static bool transient_status(int st)
{
	return st != ARES_SUCCESS && st != ARES_ENODATA && st != ARES_ENOTFOUND;
}

/* check_built - the answer is what the replies the target built say. */
static void check_built(const struct dns *dns, const struct dns_mx_result *res, bool host,
			const char *qname)
{
	bool implicit = host;
	bool trans = false;
	size_t with_addrs = 0;
	uint32_t ttl = UINT32_MAX;

	if (!host) {
		if (!fz.mx_sent)
			return;		/* timed out before the MX reply */
		if (fz.mx_status == ARES_ENOTFOUND) {
			MUST(res->status == DNS_PERMFAIL);
			return;
		}
		if (fz.mx_status != ARES_SUCCESS && fz.mx_status != ARES_ENODATA) {
			MUST(res->status == DNS_TEMPFAIL);
			return;
		}
		if (fz.mx_status == ARES_SUCCESS && fz.mx_n == 0 && fz.mx_nnull > 0) {
			MUST(res->status == DNS_PERMFAIL);
			return;
		}
		implicit = fz.mx_n == 0;
		if (!implicit)
			ttl = fz.mx_ttl;
	}
	/* Every host that was asked for; a query never answered is a timeout. */
	for (size_t i = 0; i < fz.nsent; i++) {
		const struct sent_addr *sa = &fz.sent[i];

		if (transient_status(sa->status))
			trans = true;
	}
	if (fz.nsent < fz.nq - (host ? 0 : 1))
		trans = true;		/* input ran out: those queries timed out */
	for (size_t i = 0; i < fz.nsent; i++) {
		const struct sent_addr *sa = &fz.sent[i];
		const struct sent_addr *other = sent_for(sa->name, sa->type == ns_t_a ? ns_t_aaaa : ns_t_a);

		if (sa->type != ns_t_a)
			continue;
		if (kept(sa) + kept(other) == 0)
			continue;
		with_addrs++;
		if (kept(sa) && ttl_as_used(sa->ttl) < ttl)
			ttl = ttl_as_used(sa->ttl);
		if (kept(other) && ttl_as_used(other->ttl) < ttl)
			ttl = ttl_as_used(other->ttl);
	}
	/* AAAA only (the A query timed out with the input) */
	for (size_t i = 0; i < fz.nsent; i++) {
		const struct sent_addr *sa = &fz.sent[i];

		if (sa->type == ns_t_aaaa && sent_for(sa->name, ns_t_a) == NULL && kept(sa)) {
			with_addrs++;
			if (ttl_as_used(sa->ttl) < ttl)
				ttl = ttl_as_used(sa->ttl);
		}
	}
	if (with_addrs == 0) {
		if (implicit && !trans && !host)
			MUST(res->status == DNS_PERMFAIL);
		else
			MUST(res->status == DNS_TEMPFAIL);
		return;
	}
	MUST(res->status == DNS_OK);
	MUST(res->nhosts == with_addrs);
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];

		check_built_host(h);
		if (implicit)
			MUST(h->pref == 0 && strcmp(h->name, qname) == 0);
		else
			MUST(h->pref == expected_pref(h->name));
	}
	if (trans)
		MUST(res->ttl == dns->min_ttl);
	else
		MUST(res->ttl == (ttl < dns->min_ttl ? dns->min_ttl :
				  ttl > dns->max_ttl ? dns->max_ttl : ttl));
}

/* check_answer - what holds for every answer, whatever the replies were. */
static void check_answer(const struct dns *dns, const struct dns_mx_result *res, bool host,
			 const char *qname)
{
	MUST(res->status == DNS_OK || res->status == DNS_TEMPFAIL || res->status == DNS_PERMFAIL);
	if (res->status != DNS_OK) {
		MUST(res->error != NULL && res->error[0] != '\0');
		MUST(res->nhosts == 0 && res->hosts == NULL);
		if (res->status == DNS_PERMFAIL)
			MUST(res->ttl == dns->min_ttl);
		return;
	}
	MUST(res->error == NULL);
	MUST(res->nhosts >= 1 && res->nhosts <= (host ? 1 : DNS_MAX_MX_HOSTS));
	MUST(res->ttl >= dns->min_ttl && res->ttl <= dns->max_ttl);
	for (size_t i = 0; i < res->nhosts; i++) {
		const struct dns_host *h = &res->hosts[i];
		size_t j;

		MUST(h->name != NULL && h->name[0] != '\0');
		if (host)
			MUST(strcmp(h->name, qname) == 0 && h->pref == 0);
		for (const char *p = h->name; *p; p++)
			MUST(!isupper((unsigned char)*p));
		MUST(h->naddr >= 1 && h->naddr <= 2 * DNS_MAX_HOST_ADDRS);
		for (j = 0; j < h->naddr && is_v4(&h->addrs[j]); j++)
			;
		MUST(j <= DNS_MAX_HOST_ADDRS);
		for (size_t k = j; k < h->naddr; k++)
			MUST(h->addrs[k].ss_family == AF_INET6);
		MUST(h->naddr - j <= DNS_MAX_HOST_ADDRS);
		if (i > 0)
			MUST(res->hosts[i - 1].pref <= h->pref);
		for (j = 0; j < i; j++)
			MUST(strcmp(res->hosts[j].name, h->name) != 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t mins[] = { 60, 0, 1, 300 };
	static const uint32_t maxs[] = { 86400, UINT32_MAX, 1, 3600 };
	struct dns dns;
	struct dns_lookup *lk;
	bool host;
	const char *qname;

	if (size < 1)
		return 0;
	memset(&fz, 0, sizeof(fz));
	fz.flags = data[0];
	fz.in = data + 1;
	fz.left = size - 1;
	host = fz.flags & F_HOST;
	qname = host ? "host.example.com" : "example.com";

	memset(&dns, 0, sizeof(dns));
	dns.min_ttl = mins[fz.flags >> 3 & 3];
	dns.max_ttl = maxs[fz.flags >> 3 & 3];
	lk = XNEW(struct dns_lookup);
	lk->dns = &dns;
	lk->kind = host ? DNS_LOOKUP_HOST : DNS_LOOKUP_MX;
	lk->name = xstrdup(qname);
	lk->key = xstrdup(qname);
	lk->waiters_tail = &lk->waiters;

	dns_lookup_start(lk);
	while (fz.next < fz.nq && !(fz.flags & F_INLINE)) {
		struct query q = fz.q[fz.next++];

		answer_one(&q);
	}
	MUST(fz.ndone == 1);
	if (getenv("FUZZ_DNS_TRACE"))	/* see what a seed gives: status, hosts, TTL */
		fprintf(stderr, "answer: status=%d %s hosts=%zu ttl=%u\n", (int)fz.ans->res.status,
			fz.ans->res.error ? fz.ans->res.error : "", fz.ans->res.nhosts, fz.ans->res.ttl);
	check_answer(&dns, &fz.ans->res, host, qname);
	if (fz.flags & F_BUILT)
		check_built(&dns, &fz.ans->res, host, qname);
	dns_answer_unref(fz.ans);
	dns_lookup_free(lk);
	return 0;
}
