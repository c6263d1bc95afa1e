/*
 * dns.h - MX and address resolution for delivery (c-ares on the scheduler loop)
 *
 * dns_resolve_mx answers "where does mail for this domain go": the MX
 * hosts in preference order (a random order among equal preferences, as
 * RFC 5321 5.1 asks), each with its IPv4 and IPv6 addresses. A domain with
 * no MX record gets its own A/AAAA as an implicit MX of preference 0. A
 * null MX (RFC 7505: one MX "." of preference 0) and NXDOMAIN are permanent
 * failures; SERVFAIL, REFUSED, timeouts and a host list with no address at
 * all are transient.
 *
 * Answers are cached, honouring record TTLs clamped to [min_ttl, max_ttl];
 * negative answers are cached for min_ttl. Concurrent lookups of the same
 * domain share one query.
 *
 * Ownership: struct dns belongs to the scheduler thread; callbacks run on
 * it. Nothing here blocks. The full behaviour (address order, TTLs of
 * partial answers, what is cached) is described in docs/dns.md.
 *
 * Callbacks: fn may run before dns_resolve_mx/dns_resolve_host returns (a
 * cache hit, an IP literal, a bad name, a resolver being freed); callers
 * must be ready for that. A callback may start new lookups and may call
 * dns_flush, but must not call dns_free.
 */
#ifndef IMPETUS_DNS_DNS_H
#define IMPETUS_DNS_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/str.h"

struct event_base;
struct dns;

enum dns_status {
	DNS_OK = 0,
	DNS_TEMPFAIL,		/* try again later: SERVFAIL, timeout, no address */
	DNS_PERMFAIL,		/* NXDOMAIN, null MX, bad name */
};

struct dns_host {
	char *name;			/* MX target host name */
	uint16_t pref;			/* MX preference; 0 for an implicit MX */
	size_t naddr;
	struct sockaddr_storage *addrs;	/* port 0: the caller sets it */
};

struct dns_mx_result {
	enum dns_status status;
	const char *error;		/* why, for logs and bounces; NULL when OK */
	size_t nhosts;
	struct dns_host *hosts;		/* preference order */
	uint32_t ttl;			/* seconds this answer may be used */
};

/* dns_mx_fn - the answer; res is valid only during the call. */
typedef void (*dns_mx_fn)(void *ctx, const struct dns_mx_result *res);

/* Zero in a numeric field means its default. */
struct dns_options {
	const char *servers;	/* "ip[:port],ip[:port]" ("[v6]:port"); NULL = resolv.conf */
	uint32_t min_ttl;	/* default 60 */
	uint32_t max_ttl;	/* default 86400 */
	uint32_t timeout_ms;	/* per try; default 5000 */
	uint32_t tries;		/* default 3 */
	const char *resolv_conf; /* read instead of /etc/resolv.conf (Resolv_Conf); NULL = system's */
};

#define DNS_DEFAULT_MIN_TTL	60
#define DNS_DEFAULT_MAX_TTL	86400
#define DNS_DEFAULT_TIMEOUT_MS	5000
#define DNS_DEFAULT_TRIES	3

/* Counters since dns_new, for the console and the tests. */
struct dns_stats {
	uint64_t requests;	/* dns_resolve_mx + dns_resolve_host calls */
	uint64_t cache_hits;	/* answered from the cache */
	uint64_t coalesced;	/* joined a lookup already in flight */
	uint64_t lookups;	/* lookups started (each one or more queries) */
	uint64_t queries;	/* DNS queries sent (MX, A, AAAA; c-ares retries not counted) */
	uint64_t inflight;	/* lookups running now */
	uint64_t cached;	/* entries in the cache now (expired ones until purged) */
	uint64_t tempfails;	/* lookups that ended in a temporary failure (SERVFAIL, timeout, ...) */
	uint64_t permfails;	/* lookups that ended in a permanent failure (NXDOMAIN, no address) */
};

/* dns_new - a resolver on base (the scheduler's). NULL + err on failure. */
struct dns *dns_new(struct event_base *base, const struct dns_options *opts, struct str *err);
/* dns_resolve_mx - look up domain; fn may run before this returns (cache hit). */
void dns_resolve_mx(struct dns *dns, const char *domain, dns_mx_fn fn, void *ctx);
/* dns_resolve_host - A/AAAA of one host name, as a one-host result (for Routes/Gateway). */
void dns_resolve_host(struct dns *dns, const char *host, dns_mx_fn fn, void *ctx);
/* dns_flush - forget the cache (console "dns flush", tests). */
void dns_flush(struct dns *dns);
/* dns_free - cancel queries (their callbacks run with DNS_TEMPFAIL "cancelled") and free. */
void dns_free(struct dns *dns);
/* dns_get_stats - a copy of the counters. */
void dns_get_stats(const struct dns *dns, struct dns_stats *out);
/* One live cache entry (dns_cache_each); valid during the callback. */
struct dns_cache_entry {
	const char *kind;		/* "MX" (dns_resolve_mx) or "host" (dns_resolve_host) */
	const char *name;		/* the domain or host name, normalised */
	uint32_t ttl;			/* seconds it is still used for */
	const struct dns_mx_result *res;	/* the answer, hosts in stored order */
};
typedef void (*dns_cache_fn)(void *ctx, const struct dns_cache_entry *e);
/* dns_cache_each - fn for each unexpired cache entry, in no order; fn must not call into dns. */
void dns_cache_each(const struct dns *dns, dns_cache_fn fn, void *ctx);
/* dns_status_name - "ok", "tempfail" or "permfail", for logs. */
const char *dns_status_name(enum dns_status st);

#endif
