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
 * it. Nothing here blocks.
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

struct dns_options {
	const char *servers;	/* "ip[:port],ip[:port]"; NULL = /etc/resolv.conf */
	uint32_t min_ttl;	/* default 60 */
	uint32_t max_ttl;	/* default 86400 */
	uint32_t timeout_ms;	/* per try; default 5000 */
	uint32_t tries;		/* default 3 */
};

/* dns_new - a resolver on base (the scheduler's). NULL + err on failure. */
struct dns *dns_new(struct event_base *base, const struct dns_options *opts, struct str *err);
/* dns_resolve_mx - look up domain; fn may run before this returns (cache hit). */
void dns_resolve_mx(struct dns *dns, const char *domain, dns_mx_fn fn, void *ctx);
/* dns_resolve_host - A/AAAA of one host name, as a one-host result (for Routes/Gateway). */
void dns_resolve_host(struct dns *dns, const char *host, dns_mx_fn fn, void *ctx);
/* dns_flush - forget the cache (console "dns flush", tests). */
void dns_flush(struct dns *dns);
/* dns_free - cancel queries (their callbacks run with DNS_TEMPFAIL) and free. */
void dns_free(struct dns *dns);

#endif
