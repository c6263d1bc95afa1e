/*
 * dns.c - the delivery resolver: c-ares on a libevent loop, cache, coalescing
 *
 * c-ares does the DNS protocol; this file gives it the scheduler's event
 * loop. c-ares reports each socket it wants watched through the
 * socket-state callback, and we keep one libevent event per socket plus
 * one timer set from ares_timeout(); both call ares_process_fd(), which
 * reads answers, retries and times out queries. Nothing blocks: not the
 * queries, not the TCP fallback c-ares does for truncated answers.
 *
 * On top of that: a cache of answers keyed by "mx:<domain>" or
 * "host:<name>" (lower case), and a table of lookups in flight under the
 * same keys, so a second request for a domain that is being looked up
 * waits for the same answer instead of sending its own queries. The
 * lookups themselves are in dns_lookup.c.
 *
 * Ownership: struct dns, its channel, cache and lookups belong to the
 * thread that runs base (the scheduler). Answers are reference-counted so
 * that a callback may flush the cache while it looks at its result.
 * Failure modes: dns_new fails with a message for a bad server list or an
 * unreadable resolv.conf; lookups never fail other than through their
 * result; allocation failure aborts (core/mem.h).
 */
#include "dns/dns.h"
#include "dns/dns_int.h"

#include <arpa/nameser.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/mem.h"
#include "core/strmap.h"

/* One socket c-ares asked us to watch. */
struct dns_sock {
	struct dns_sock *next;
	struct dns *dns;
	ares_socket_t fd;
	struct event *ev;
};

#define DNS_MAX_NAME	253

/* ==== small helpers ================================================== */

uint64_t dns_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t dns_random(struct dns *dns)
{
	uint64_t x = dns->rng;

	/* xorshift64*: plenty for spreading load over equal MX hosts. */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	dns->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

const char *dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:		return "ok";
	case DNS_TEMPFAIL:	return "tempfail";
	case DNS_PERMFAIL:	return "permfail";
	}
	return "?";
}

/*
 * normalise_name - the lookup form of a domain or host name: lower case,
 * without the trailing dot. False for names DNS cannot carry or that are
 * not LDH-style (letters, digits, '-', '_'; internationalised names must
 * arrive as A-labels).
 */
static bool normalise_name(const char *in, char *out, size_t outsz)
{
	size_t len = strlen(in), i, label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_MAX_NAME || len >= outsz)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return true;
}

/* ==== c-ares on libevent ============================================= */

/* rearm - point the timer at c-ares's next deadline, if it has one. */
static void rearm(struct dns *dns)
{
	struct timeval tv, *tvp;

	tvp = ares_timeout(dns->channel, NULL, &tv);
	if (tvp)
		evtimer_add(dns->timer, tvp);
	else
		evtimer_del(dns->timer);
}

/* on_sock_event - a c-ares socket is readable or writable. */
static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct dns *dns = s->dns;

	/* c-ares may close this socket inside, freeing s: use dns only. */
	ares_process_fd(dns->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	rearm(dns);
}

/* on_timer - a c-ares deadline passed: retry or time out queries. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	rearm(dns);
}

/* on_sock_state - c-ares opened, changed or closed a socket. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	struct dns_sock **pp, *s;

	for (pp = &dns->socks; (s = *pp) != NULL; pp = &s->next)
		if (s->fd == fd)
			break;
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = XNEW(struct dns_sock);
		s->dns = dns;
		s->fd = fd;
		s->ev = event_new(dns->base, fd, 0, on_sock_event, s);
		if (s->ev == NULL)
			abort();
		s->next = dns->socks;
		dns->socks = s;
	} else {
		event_del(s->ev);
	}
	event_assign(s->ev, dns->base, fd,
		     EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0),
		     on_sock_event, s);
	event_add(s->ev, NULL);
}

void dns_query(struct dns *dns, const char *name, int type, ares_callback cb, void *arg)
{
	dns->stats.queries++;
	ares_query(dns->channel, name, ns_c_in, type, cb, arg);
	rearm(dns);
}

/* ==== answers to callers ============================================= */

/* shuffle_equal - RFC 5321 5.1: a random order among hosts of equal preference. */
static void shuffle_equal(struct dns *dns, struct dns_host *h, size_t n)
{
	size_t i = 0, j, k;

	while (i < n) {
		for (j = i + 1; j < n && h[j].pref == h[i].pref; j++)
			;
		for (k = j - 1; k > i; k--) {
			size_t r = i + (size_t)(dns_random(dns) % (k - i + 1));
			struct dns_host t = h[k];

			h[k] = h[r];
			h[r] = t;
		}
		i = j;
	}
}

/* has_ties - whether any two hosts share a preference (the list is sorted). */
static bool has_ties(const struct dns_host *h, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (h[i].pref == h[i - 1].pref)
			return true;
	return false;
}

/*
 * deliver - show an answer to one caller.
 *
 * Every caller gets its own shuffle of equal preferences, cache hits
 * included, so a popular domain's load spreads over its MX hosts even
 * while one answer is cached. The TTL shown is what is left of it.
 */
static void deliver(struct dns *dns, struct dns_answer *ans, dns_mx_fn fn, void *ctx)
{
	struct dns_mx_result r = ans->res;
	struct dns_host *copy = NULL;

	ans->refs++;
	if (ans->expires_ms) {
		uint64_t now = dns_now_ms();

		r.ttl = ans->expires_ms > now ? (uint32_t)((ans->expires_ms - now + 999) / 1000) : 0;
	}
	if (r.status == DNS_OK && has_ties(r.hosts, r.nhosts)) {
		copy = xmemdup(r.hosts, r.nhosts * sizeof(*r.hosts));
		shuffle_equal(dns, copy, r.nhosts);
		r.hosts = copy;
	}
	fn(ctx, &r);
	free(copy);
	dns_answer_unref(ans);
}

/* deliver_now - an answer decided without DNS (bad name, shutting down). */
static void deliver_now(enum dns_status st, const char *error, dns_mx_fn fn, void *ctx)
{
	struct dns_mx_result r;

	memset(&r, 0, sizeof(r));
	r.status = st;
	r.error = error;
	fn(ctx, &r);
}

void dns_lookup_done(struct dns_lookup *lk, struct dns_answer *ans, bool cacheable)
{
	struct dns *dns = lk->dns;
	struct dns_waiter *w;

	/* Out of the table first: a waiter that asks again must not join us. */
	strmap_del(dns->inflight, lk->key);
	dns->stats.inflight--;
	if (ans->res.status == DNS_TEMPFAIL)
		dns->stats.tempfails++;
	else if (ans->res.status == DNS_PERMFAIL)
		dns->stats.permfails++;
	if (cacheable && !dns->closing) {
		struct dns_answer *old;

		ans->expires_ms = dns_now_ms() + (uint64_t)ans->res.ttl * 1000u;
		ans->refs++;
		old = strmap_put(dns->cache, lk->key, ans);
		if (old)
			dns_answer_unref(old);
		else
			dns->stats.cached++;
	}
	w = lk->waiters;
	lk->waiters = NULL;
	while (w) {
		struct dns_waiter *next = w->next;

		deliver(dns, ans, w->fn, w->ctx);
		free(w);
		w = next;
	}
	dns_lookup_free(lk);
	dns_answer_unref(ans);
}

/* ==== requests ======================================================= */

/* resolve - answer from the cache, join a lookup in flight, or start one. */
static void resolve(struct dns *dns, enum dns_lookup_kind kind, const char *name,
		    dns_mx_fn fn, void *ctx)
{
	struct dns_answer *ans;
	struct dns_lookup *lk;
	struct dns_waiter *w;
	struct str key = STR_INIT;

	str_appendf(&key, "%s:%s", kind == DNS_LOOKUP_MX ? "mx" : "host", name);
	ans = strmap_get(dns->cache, key.s);
	if (ans && ans->expires_ms > dns_now_ms()) {
		str_free(&key);
		dns->stats.cache_hits++;
		deliver(dns, ans, fn, ctx);
		return;
	}
	if (ans) {
		strmap_del(dns->cache, key.s);
		dns->stats.cached--;
		dns_answer_unref(ans);
	}

	w = XNEW(struct dns_waiter);
	w->fn = fn;
	w->ctx = ctx;
	lk = strmap_get(dns->inflight, key.s);
	if (lk) {
		str_free(&key);
		*lk->waiters_tail = w;
		lk->waiters_tail = &w->next;
		dns->stats.coalesced++;
		return;
	}
	lk = XNEW(struct dns_lookup);
	lk->dns = dns;
	lk->kind = kind;
	lk->key = str_steal(&key);
	lk->name = xstrdup(name);
	lk->waiters = w;
	lk->waiters_tail = &w->next;
	strmap_put(dns->inflight, lk->key, lk);
	dns->stats.lookups++;
	dns->stats.inflight++;
	dns_lookup_start(lk);	/* may finish, and free lk, before returning */
}

/* resolve_literal - an IP literal needs no DNS: a one-host answer, now. */
static bool resolve_literal(struct dns *dns, const char *name, dns_mx_fn fn, void *ctx)
{
	struct sockaddr_storage ss;
	struct dns_answer *ans;

	if (!dns_parse_literal(name, &ss))
		return false;
	ans = dns_literal_answer(name, &ss, dns->max_ttl);
	deliver(dns, ans, fn, ctx);
	dns_answer_unref(ans);
	return true;
}

void dns_resolve_mx(struct dns *dns, const char *domain, dns_mx_fn fn, void *ctx)
{
	char name[DNS_MAX_NAME + 2];

	dns->stats.requests++;
	if (dns->closing) {
		deliver_now(DNS_TEMPFAIL, "cancelled", fn, ctx);
		return;
	}
	/* A domain literal (user@[192.0.2.1]) names its one host itself. */
	if (resolve_literal(dns, domain, fn, ctx))
		return;
	if (!normalise_name(domain, name, sizeof(name))) {
		deliver_now(DNS_PERMFAIL, "bad domain name", fn, ctx);
		return;
	}
	resolve(dns, DNS_LOOKUP_MX, name, fn, ctx);
}

void dns_resolve_host(struct dns *dns, const char *host, dns_mx_fn fn, void *ctx)
{
	char name[DNS_MAX_NAME + 2];

	dns->stats.requests++;
	if (dns->closing) {
		deliver_now(DNS_TEMPFAIL, "cancelled", fn, ctx);
		return;
	}
	if (resolve_literal(dns, host, fn, ctx))
		return;
	/*
	 * The name comes from the configuration (Routes, Gateway): a mistake
	 * there should hold mail until it is fixed, not bounce it.
	 */
	if (!normalise_name(host, name, sizeof(name))) {
		deliver_now(DNS_TEMPFAIL, "bad host name", fn, ctx);
		return;
	}
	resolve(dns, DNS_LOOKUP_HOST, name, fn, ctx);
}

/* ==== the cache ====================================================== */

/* unref_entry - drop the cache's reference to one answer. */
static void unref_entry(void *ctx, const char *key, void *value)
{
	dns_answer_unref(value);
}

void dns_flush(struct dns *dns)
{
	strmap_each(dns->cache, unref_entry, NULL);
	strmap_free(dns->cache);
	dns->cache = strmap_new();
	dns->stats.cached = 0;
}

/* The keys of expired entries, gathered before deleting (strmap_each must not). */
struct expired {
	uint64_t now;
	char **keys;
	size_t n, cap;
};

/* collect_expired - note one entry's key if its time is up. */
static void collect_expired(void *ctx, const char *key, void *value)
{
	struct expired *ex = ctx;
	const struct dns_answer *ans = value;

	if (ans->expires_ms > ex->now)
		return;
	if (ex->n == ex->cap) {
		ex->cap = ex->cap ? ex->cap * 2 : 16;
		ex->keys = xrealloc(ex->keys, ex->cap * sizeof(*ex->keys));
	}
	ex->keys[ex->n++] = xstrdup(key);
}

/* on_purge - drop expired entries, so domains never asked for again do not pile up. */
static void on_purge(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	struct expired ex = { dns_now_ms(), NULL, 0, 0 };
	size_t i;

	strmap_each(dns->cache, collect_expired, &ex);
	for (i = 0; i < ex.n; i++) {
		dns_answer_unref(strmap_del(dns->cache, ex.keys[i]));
		dns->stats.cached--;
		free(ex.keys[i]);
	}
	free(ex.keys);
}

/* ==== life cycle ===================================================== */

struct dns *dns_new(struct event_base *base, const struct dns_options *opts, struct str *err)
{
	static const struct dns_options none;
	struct ares_options ao;
	struct timeval purge = { DNS_PURGE_INTERVAL, 0 };
	struct dns *dns;
	int rc, mask;

	if (opts == NULL)
		opts = &none;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		str_appendf(err, "c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	dns = XNEW(struct dns);
	dns->base = base;
	dns->min_ttl = opts->min_ttl ? opts->min_ttl : DNS_DEFAULT_MIN_TTL;
	dns->max_ttl = opts->max_ttl ? opts->max_ttl : DNS_DEFAULT_MAX_TTL;
	if (dns->min_ttl > dns->max_ttl) {
		str_appendf(err, "DNS minimum TTL %u is above the maximum %u",
			    dns->min_ttl, dns->max_ttl);
		goto fail;
	}
	if (opts->resolv_conf && access(opts->resolv_conf, R_OK) != 0) {
		/* c-ares would quietly fall back to its defaults: say it instead. */
		str_appendf(err, "cannot read %s: %s", opts->resolv_conf, strerror(errno));
		goto fail;
	}

	memset(&ao, 0, sizeof(ao));
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	ao.sock_state_cb = on_sock_state;
	ao.sock_state_cb_data = dns;
	ao.timeout = (int)(opts->timeout_ms ? opts->timeout_ms : DNS_DEFAULT_TIMEOUT_MS);
	ao.tries = (int)(opts->tries ? opts->tries : DNS_DEFAULT_TRIES);
	if (opts->resolv_conf) {
		ao.resolvconf_path = (char *)opts->resolv_conf;
		mask |= ARES_OPT_RESOLVCONF;
	}
	rc = ares_init_options(&dns->channel, &ao, mask);
	if (rc != ARES_SUCCESS) {
		str_appendf(err, "c-ares: %s", ares_strerror(rc));
		dns->channel = NULL;
		goto fail;
	}
	if (opts->servers && opts->servers[0]) {
		rc = ares_set_servers_ports_csv(dns->channel, opts->servers);
		if (rc != ARES_SUCCESS) {
			str_appendf(err, "bad DNS server list \"%s\" (want \"ip[:port],...\"): %s",
				    opts->servers, ares_strerror(rc));
			goto fail;
		}
	}

	dns->timer = evtimer_new(base, on_timer, dns);
	dns->purge = event_new(base, -1, EV_PERSIST, on_purge, dns);
	if (dns->timer == NULL || dns->purge == NULL)
		abort();
	event_add(dns->purge, &purge);
	dns->cache = strmap_new();
	dns->inflight = strmap_new();
	if (getrandom(&dns->rng, sizeof(dns->rng), GRND_NONBLOCK) != sizeof(dns->rng))
		dns->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ dns_now_ms();
	if (dns->rng == 0)
		dns->rng = 0x9E3779B97F4A7C15ULL;
	return dns;

fail:
	if (dns->channel)
		ares_destroy(dns->channel);
	free(dns);
	ares_library_cleanup();
	return NULL;
}

void dns_free(struct dns *dns)
{
	if (dns == NULL)
		return;
	/*
	 * Cancelling calls every query's callback with ARES_ECANCELLED; each
	 * lookup then ends with TEMPFAIL "cancelled" for its waiters, and
	 * `closing` keeps those waiters from starting anything new.
	 */
	dns->closing = true;
	ares_cancel(dns->channel);
	assert(strmap_count(dns->inflight) == 0);
	ares_destroy(dns->channel);	/* closes its sockets through on_sock_state */
	while (dns->socks) {
		struct dns_sock *s = dns->socks;

		dns->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(dns->timer);
	event_free(dns->purge);
	dns_flush(dns);
	strmap_free(dns->cache);
	strmap_free(dns->inflight);
	free(dns);
	ares_library_cleanup();
}

void dns_get_stats(const struct dns *dns, struct dns_stats *out)
{
	*out = dns->stats;
}

struct cache_walk {
	uint64_t now;
	dns_cache_fn fn;
	void *ctx;
};

/* walk_entry - one cache entry as the console sees it; expired ones are skipped. */
static void walk_entry(void *ctx, const char *key, void *value)
{
	struct cache_walk *w = ctx;
	const struct dns_answer *ans = value;
	struct dns_cache_entry e;

	if (ans->expires_ms <= w->now)
		return;
	e.kind = strncmp(key, "mx:", 3) == 0 ? "MX" : "host";
	e.name = strchr(key, ':') ? strchr(key, ':') + 1 : key;
	e.ttl = (uint32_t)((ans->expires_ms - w->now + 999) / 1000);
	e.res = &ans->res;
	w->fn(w->ctx, &e);
}

void dns_cache_each(const struct dns *dns, dns_cache_fn fn, void *ctx)
{
	struct cache_walk w = { dns_now_ms(), fn, ctx };

	strmap_each(dns->cache, walk_entry, &w);
}
