/*
 * dns_int.h - what dns.c (resolver, cache) and dns_lookup.c (one lookup) share
 *
 * Not for use outside src/dns/. Everything here belongs to the scheduler
 * thread that owns the struct dns.
 *
 * A lookup is one question in flight ("mx:example.com" or "host:mx1.example.com"):
 * it holds the waiters that asked for it, runs the c-ares queries, and
 * when the last of them has answered turns what it learned into a
 * struct dns_answer, an immutable reference-counted result that the cache
 * keeps and every waiter is shown.
 */
#ifndef IMPETUS_DNS_DNS_INT_H
#define IMPETUS_DNS_DNS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <ares.h>

#include "dns/dns.h"

struct strmap;
struct event;

/* Caps that keep one answer from growing without bound. */
#define DNS_MAX_MX_HOSTS	32	/* MX hosts kept, best preferences first */
#define DNS_MAX_HOST_ADDRS	32	/* addresses kept per host and family */
#define DNS_PURGE_INTERVAL	60	/* seconds between sweeps of expired cache entries */

/* An immutable answer; the cache and each delivery hold a reference. */
struct dns_answer {
	unsigned refs;
	struct dns_mx_result res;	/* hosts, names, addrs and error owned here */
	uint64_t expires_ms;		/* monotonic; when the cache must drop it */
};

struct dns_waiter {
	struct dns_waiter *next;
	dns_mx_fn fn;
	void *ctx;
};

enum dns_lookup_kind {
	DNS_LOOKUP_MX,		/* MX, then A/AAAA of each MX host */
	DNS_LOOKUP_HOST,	/* A/AAAA of one host */
};

/* What one address query (A or AAAA of one host) came back with. */
struct dns_family {
	int status;			/* ARES_* of the query; -1 until it answers */
	size_t n;
	struct sockaddr_storage *addrs;
	uint32_t ttl;
};

struct dns_lookup_host {
	char *name;
	uint16_t pref;
	struct dns_family v4, v6;
};

struct dns_lookup {
	struct dns *dns;
	enum dns_lookup_kind kind;
	char *key;			/* in-flight and cache key */
	char *name;			/* normalised domain or host name */
	struct dns_waiter *waiters, **waiters_tail;
	unsigned pending;		/* queries outstanding, plus guards held while issuing */
	bool implicit;			/* MX said NODATA: the domain is its own MX */
	bool cancelled;			/* the resolver is being freed */
	uint32_t mx_ttl;		/* lowest TTL of the MX answer's records */
	enum dns_status status;		/* a verdict reached before the address phase */
	char *error;			/* its reason */
	size_t nhosts;
	struct dns_lookup_host *hosts;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;		/* c-ares's next timeout */
	struct event *purge;		/* periodic sweep of expired cache entries */
	struct dns_sock *socks;		/* c-ares's sockets and their events */
	struct strmap *cache;		/* key -> struct dns_answer */
	struct strmap *inflight;	/* key -> struct dns_lookup */
	uint32_t min_ttl, max_ttl;
	uint64_t rng;			/* xorshift state for the MX shuffle */
	struct dns_stats stats;
	bool closing;			/* in dns_free: start nothing new */
};

/* ---- dns.c --------------------------------------------------------- */

/* dns_query - send one question for a lookup (counted, timer re-armed). */
void dns_query(struct dns *dns, const char *name, int type, ares_callback cb, void *arg);
/* dns_lookup_done - called by the lookup with its answer (one reference given). */
void dns_lookup_done(struct dns_lookup *lk, struct dns_answer *ans, bool cacheable);
/* dns_random - a pseudo-random number (not for secrets). */
uint64_t dns_random(struct dns *dns);
/* dns_now_ms - the monotonic clock in milliseconds. */
uint64_t dns_now_ms(void);

/* ---- dns_lookup.c -------------------------------------------------- */

/* dns_lookup_start - run a new lookup; it ends in dns_lookup_done(). */
void dns_lookup_start(struct dns_lookup *lk);
/* dns_lookup_free - release a finished lookup. */
void dns_lookup_free(struct dns_lookup *lk);
/* dns_answer_fail - a new failed answer (one reference). */
struct dns_answer *dns_answer_fail(enum dns_status st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* dns_answer_unref - drop a reference; the last one frees. */
void dns_answer_unref(struct dns_answer *ans);
/* dns_parse_literal - an IP literal ("192.0.2.1", "[2001:db8::1]", "[IPv6:...]") to ss. */
bool dns_parse_literal(const char *s, struct sockaddr_storage *ss);
/* dns_literal_answer - a one-host answer for an IP literal. */
struct dns_answer *dns_literal_answer(const char *name, const struct sockaddr_storage *ss,
				      uint32_t ttl);

#endif
