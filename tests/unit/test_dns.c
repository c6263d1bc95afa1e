/*
 * test_dns.c - the delivery resolver against a real DNS server
 *
 * Starts dnsmasq through tests/integration/dnsfixture.py (command-line
 * mode) with the zone below, runs the resolver on a real event_base and
 * checks MX ordering and shuffling, address collection, implicit MX, the
 * permanent and transient failures, the cache, coalescing, host lookups
 * and cancellation. A missing dnsmasq or Python is a failure with a
 * message, never a skip.
 *
 * Runs in a few seconds: the timeouts are short (500 ms, one try) and the
 * TTL test sleeps 1.5 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "core/str.h"
#include "dns/dns.h"

/* ==== the zone ======================================================= */

static const char zone_json[] =
"{\n"
"  \"ttl\": 300,\n"
"  \"mx\": [\n"
"    [\"pref.test\", \"mx20.pref.test\", 20],\n"
"    [\"pref.test\", \"mx10.pref.test\", 10],\n"
"    [\"pref.test\", \"mx30.pref.test\", 30],\n"
"    [\"equal.test\", \"a.equal.test\", 10],\n"
"    [\"equal.test\", \"b.equal.test\", 10],\n"
"    [\"both.test\", \"mx.both.test\", 10],\n"
"    [\"null.test\", \".\", 0],\n"
"    [\"noaddr.test\", \"gone.noaddr.test\", 10],\n"
"    [\"skip.test\", \"gone.skip.test\", 5],\n"
"    [\"skip.test\", \"ok.skip.test\", 10],\n"
"    [\"lit.test\", \"192.0.2.77\", 10],\n"
"    [\"dup.test\", \"mx.dup.test\", 10],\n"
"    [\"dup.test\", \"mx.dup.test\", 20],\n"
"    [\"coalesce.test\", \"mx.coalesce.test\", 10],\n"
"    [\"slowmx.test\", \"mx.timeout.test\", 10],\n"
"    [\"ttl.test\", \"long.ttl.test\", 10],\n"
"    [\"ttl.test\", \"short.ttl.test\", 20]\n"
"  ],\n"
"  \"hosts\": {\n"
"    \"mx10.pref.test\": [\"192.0.2.10\"],\n"
"    \"mx20.pref.test\": [\"192.0.2.20\"],\n"
"    \"mx30.pref.test\": [\"2001:db8::30\"],\n"
"    \"a.equal.test\": [\"192.0.2.41\"],\n"
"    \"b.equal.test\": [\"192.0.2.42\"],\n"
"    \"mx.both.test\": [\"192.0.2.51\", \"192.0.2.52\", \"2001:db8::51\"],\n"
"    \"implicit.test\": [\"192.0.2.60\", \"2001:db8::60\"],\n"
"    \"ok.skip.test\": [\"192.0.2.70\"],\n"
"    \"mx.dup.test\": [\"192.0.2.75\"],\n"
"    \"mx.coalesce.test\": [\"192.0.2.80\"],\n"
"    \"relay.test\": [\"192.0.2.90\", \"2001:db8::90\"],\n"
"    \"long.ttl.test\": [\"192.0.2.95\"],\n"
"    \"short.ttl.test\": [\"192.0.2.96\"]\n"
"  },\n"
"  \"ttls\": { \"short.ttl.test\": 30 },\n"
"  \"cnames\": { \"alias.test\": \"implicit.test\" },\n"
"  \"txt\": { \"empty.test\": \"v=spf1 -all\" },\n"
"  \"servfail\": [\"servfail.test\"],\n"
"  \"timeout\": [\"timeout.test\"]\n"
"}\n";

/* ==== the DNS server ================================================= */

struct fixture {
	pid_t pid;
	int in_fd;		/* its stdin: closing it stops the fixture */
	int out_fd;
	int port;
};

static char tmpdir[] = "/tmp/impetus-test-dns-XXXXXX";
static char zone_path[sizeof(tmpdir) + 16];

/* remove_tmp - remove the zone file and its directory (atexit, so fatal exits too). */
static void remove_tmp(void)
{
	unlink(zone_path);
	rmdir(tmpdir);
}

/* fixture_script - where dnsfixture.py is: next to the tests, or from __FILE__. */
static const char *fixture_script(void)
{
	static char path[4096];
	char here[4096];

	if (access("../integration/dnsfixture.py", R_OK) == 0)
		return "../integration/dnsfixture.py";
	snprintf(here, sizeof(here), "%s", __FILE__);
	snprintf(path, sizeof(path), "%s/../integration/dnsfixture.py", dirname(here));
	if (access(path, R_OK) == 0)
		return path;
	return NULL;
}

/* fixture_start - run dnsfixture.py on the zone and read its port. Fatal on failure. */
static void fixture_start(struct fixture *fx)
{
	const char *script = fixture_script();
	const char *python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
	int in[2], out[2];
	char line[64];
	size_t len = 0;
	struct pollfd pfd;

	if (script == NULL) {
		fprintf(stderr, "FATAL: tests/integration/dnsfixture.py not found (run from tests/unit)\n");
		exit(1);
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		perror("pipe2");
		exit(1);
	}
	fx->pid = fork();
	if (fx->pid < 0) {
		perror("fork");
		exit(1);
	}
	if (fx->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execlp(python, python, "-B", script, "--zone", zone_path, "--exit-on-eof", (char *)NULL);
		fprintf(stderr, "FATAL: cannot run %s: %s\n", python, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fx->in_fd = in[1];
	fx->out_fd = out[0];

	pfd.fd = fx->out_fd;
	pfd.events = POLLIN;
	while (len < sizeof(line) - 1) {
		ssize_t n;

		if (poll(&pfd, 1, 20000) <= 0)
			break;
		n = read(fx->out_fd, line + len, 1);
		if (n <= 0 || line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	fx->port = atoi(line);
	if (fx->port <= 0) {
		fprintf(stderr, "FATAL: the DNS fixture (dnsmasq) did not start; see its message "
			"above. dnsmasq must be installed: these tests need a real DNS server\n");
		kill(fx->pid, SIGTERM);
		waitpid(fx->pid, NULL, 0);
		exit(1);
	}
}

/* fixture_stop - stop dnsmasq and its fixture. */
static void fixture_stop(struct fixture *fx)
{
	if (fx->pid <= 0)
		return;
	close(fx->in_fd);
	kill(fx->pid, SIGTERM);
	waitpid(fx->pid, NULL, 0);
	close(fx->out_fd);
	fx->pid = 0;
}

/* closed_port - a UDP port on 127.0.0.1 with nobody behind it. */
static int closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ==== collecting answers ============================================= */

#define MAXH 8
#define MAXA 8

struct got {
	int calls;
	enum dns_status status;
	char error[256];
	uint32_t ttl;
	size_t nhosts;
	char name[MAXH][64];
	unsigned pref[MAXH];
	size_t naddr[MAXH];
	char addr[MAXH][MAXA][64];
	bool port_zero;
};

/* on_answer - copy the answer (it is only valid during the call). */
static void on_answer(void *ctx, const struct dns_mx_result *res)
{
	struct got *g = ctx;
	size_t i, j;

	memset(g->name, 0, sizeof(g->name));
	g->calls++;
	g->status = res->status;
	snprintf(g->error, sizeof(g->error), "%s", res->error ? res->error : "");
	g->ttl = res->ttl;
	g->nhosts = res->nhosts;
	g->port_zero = true;
	for (i = 0; i < res->nhosts && i < MAXH; i++) {
		const struct dns_host *h = &res->hosts[i];

		snprintf(g->name[i], sizeof(g->name[i]), "%s", h->name);
		g->pref[i] = h->pref;
		g->naddr[i] = h->naddr;
		for (j = 0; j < h->naddr && j < MAXA; j++) {
			const struct sockaddr_storage *ss = &h->addrs[j];

			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

				inet_ntop(AF_INET, &sin->sin_addr, g->addr[i][j], sizeof(g->addr[i][j]));
				g->port_zero &= sin->sin_port == 0;
			} else {
				const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

				inet_ntop(AF_INET6, &sin6->sin6_addr, g->addr[i][j], sizeof(g->addr[i][j]));
				g->port_zero &= sin6->sin6_port == 0;
			}
		}
	}
}

static struct event_base *base;

/* on_guard - the safety timer of run_until went off. */
static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* run_until - run the loop until *calls reaches want (10 s at most). */
static void run_until(const int *calls, int want)
{
	bool expired = false;
	struct timeval tv = { 10, 0 };
	struct event *guard = evtimer_new(base, on_guard, &expired);

	evtimer_add(guard, &tv);
	while (*calls < want && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	if (expired)
		fprintf(stderr, "run_until: gave up waiting for a callback\n");
}

/* mx - one MX lookup, waited for. */
static void mx(struct dns *dns, const char *domain, struct got *g)
{
	memset(g, 0, sizeof(*g));
	dns_resolve_mx(dns, domain, on_answer, g);
	run_until(&g->calls, 1);
}

/* host - one host lookup, waited for. */
static void host(struct dns *dns, const char *name, struct got *g)
{
	memset(g, 0, sizeof(*g));
	dns_resolve_host(dns, name, on_answer, g);
	run_until(&g->calls, 1);
}

/* new_dns - a resolver on the test's base with short timeouts (500 ms, one try). */
static struct dns *new_dns(const char *servers, uint32_t min_ttl, uint32_t max_ttl)
{
	struct dns_options o = { 0 };
	struct str err = STR_INIT;
	struct dns *dns;

	o.servers = servers;
	o.min_ttl = min_ttl;
	o.max_ttl = max_ttl;
	o.timeout_ms = 500;
	o.tries = 1;
	dns = dns_new(base, &o, &err);
	if (dns == NULL) {
		fprintf(stderr, "FATAL: dns_new: %s\n", str_cstr(&err));
		exit(1);
	}
	str_free(&err);
	return dns;
}

/* ==== the cases ====================================================== */

/* test_preference_order - MX hosts come lowest preference first, with their addresses. */
static void test_preference_order(struct dns *dns)
{
	struct got g;

	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 3);
	CHECK_STREQ(g.name[0], "mx10.pref.test");
	CHECK_STREQ(g.name[1], "mx20.pref.test");
	CHECK_STREQ(g.name[2], "mx30.pref.test");
	CHECK_INTEQ(g.pref[0], 10);
	CHECK_INTEQ(g.pref[1], 20);
	CHECK_INTEQ(g.pref[2], 30);
	CHECK_STREQ(g.addr[0][0], "192.0.2.10");
	CHECK_STREQ(g.addr[1][0], "192.0.2.20");
	CHECK_STREQ(g.addr[2][0], "2001:db8::30");
	CHECK_INTEQ(g.naddr[2], 1);
	CHECK(g.port_zero);
	CHECK_INTEQ(g.ttl, 300);		/* the zone's TTL, inside [1, 3600] */
	CHECK(g.error[0] == '\0');
}

/* test_equal_shuffle - both orders of two equal hosts appear, on fresh lookups and on cache hits. */
static void test_equal_shuffle(struct dns *dns)
{
	int first_a = 0, first_b = 0, hit_a = 0, hit_b = 0, i;
	struct dns_stats before, after;
	struct got g;

	dns_get_stats(dns, &before);
	for (i = 0; i < 50; i++) {
		dns_flush(dns);
		mx(dns, "equal.test", &g);
		CHECK_INTEQ(g.status, DNS_OK);
		CHECK_INTEQ(g.nhosts, 2);
		if (strcmp(g.name[0], "a.equal.test") == 0)
			first_a++;
		else if (strcmp(g.name[0], "b.equal.test") == 0)
			first_b++;
		CHECK(strcmp(g.name[0], g.name[1]) != 0);
	}
	dns_get_stats(dns, &after);
	CHECK_INTEQ(after.lookups - before.lookups, 50);
	CHECK_INTEQ(after.queries - before.queries, 50 * 5);	/* MX + 2 x (A + AAAA) */
	CHECK(first_a > 0);
	CHECK(first_b > 0);

	for (i = 0; i < 50; i++) {
		mx(dns, "equal.test", &g);
		if (strcmp(g.name[0], "a.equal.test") == 0)
			hit_a++;
		else
			hit_b++;
	}
	dns_get_stats(dns, &before);
	CHECK_INTEQ(before.queries, after.queries);		/* all from the cache */
	CHECK(hit_a > 0);
	CHECK(hit_b > 0);
}

/* test_addresses - IPv4 then IPv6, hosts without address left out, literals, duplicates. */
static void test_addresses(struct dns *dns)
{
	struct got g;

	/* IPv4 first (in the server's order), then IPv6. */
	mx(dns, "both.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_STREQ(g.name[0], "mx.both.test");
	CHECK_INTEQ(g.naddr[0], 3);
	CHECK(strcmp(g.addr[0][0], "192.0.2.51") == 0 || strcmp(g.addr[0][0], "192.0.2.52") == 0);
	CHECK(strcmp(g.addr[0][1], "192.0.2.51") == 0 || strcmp(g.addr[0][1], "192.0.2.52") == 0);
	CHECK(strcmp(g.addr[0][0], g.addr[0][1]) != 0);
	CHECK_STREQ(g.addr[0][2], "2001:db8::51");

	/* An MX host without any address is left out. */
	mx(dns, "skip.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_STREQ(g.name[0], "ok.skip.test");
	CHECK_INTEQ(g.pref[0], 10);

	/* No MX host with an address: transient. */
	mx(dns, "noaddr.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK_STREQ(g.error, "no address for any MX host");
	CHECK_INTEQ(g.nhosts, 0);

	/* An MX naming an IP address is tolerated. */
	mx(dns, "lit.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_STREQ(g.addr[0][0], "192.0.2.77");

	/* The same host twice is listed once, with its best preference. */
	mx(dns, "dup.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_INTEQ(g.pref[0], 10);
}

/* test_implicit_and_failures - implicit MX and every kind of failure. */
static void test_implicit_and_failures(struct dns *dns)
{
	struct got g;

	mx(dns, "implicit.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_STREQ(g.name[0], "implicit.test");
	CHECK_INTEQ(g.pref[0], 0);
	CHECK_INTEQ(g.naddr[0], 2);
	CHECK_STREQ(g.addr[0][0], "192.0.2.60");
	CHECK_STREQ(g.addr[0][1], "2001:db8::60");

	/* A CNAME and no MX: the implicit MX follows the CNAME. */
	mx(dns, "alias.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_STREQ(g.name[0], "alias.test");
	CHECK_STREQ(g.addr[0][0], "192.0.2.60");

	mx(dns, "empty.test", &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	CHECK_STREQ(g.error, "no MX and no A/AAAA");

	mx(dns, "nx.test", &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	CHECK_STREQ(g.error, "domain does not exist");
	CHECK_INTEQ(g.ttl, 1);			/* negative: min_ttl */

	mx(dns, "null.test", &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	CHECK_STREQ(g.error, "domain accepts no mail (null MX, RFC 7505)");

	mx(dns, "servfail.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK(strstr(g.error, "SERVFAIL") != NULL);	/* c-ares 1.18 cannot say which one */

	mx(dns, "timeout.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK_STREQ(g.error, "MX lookup failed: timed out");

	/* Outside the server's zones and no upstream: REFUSED. */
	mx(dns, "example.com", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK(strstr(g.error, "REFUSED") != NULL);

	/* Transient answers are not cached: asking again sends a query. */
	{
		struct dns_stats a, b;

		dns_get_stats(dns, &a);
		mx(dns, "servfail.test", &g);
		dns_get_stats(dns, &b);
		CHECK_INTEQ(b.queries - a.queries, 1);
		CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	}

	/* Bad names never reach DNS and are answered at once. */
	memset(&g, 0, sizeof(g));
	dns_resolve_mx(dns, "exa mple.test", on_answer, &g);
	CHECK_INTEQ(g.calls, 1);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	CHECK_STREQ(g.error, "bad domain name");
	memset(&g, 0, sizeof(g));
	dns_resolve_mx(dns, "", on_answer, &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	memset(&g, 0, sizeof(g));
	dns_resolve_mx(dns, "a..test", on_answer, &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);

	/* A domain literal is its own host. */
	memset(&g, 0, sizeof(g));
	dns_resolve_mx(dns, "[192.0.2.5]", on_answer, &g);
	CHECK_INTEQ(g.calls, 1);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_STREQ(g.addr[0][0], "192.0.2.5");
}

/* test_case_and_cache - the cache is keyed by the lower-case name; negatives are cached. */
static void test_case_and_cache(struct dns *dns)
{
	struct dns_stats a, b;
	struct got g;

	mx(dns, "pref.test", &g);		/* cached by now */
	dns_get_stats(dns, &a);
	memset(&g, 0, sizeof(g));
	dns_resolve_mx(dns, "PREF.Test.", on_answer, &g);
	CHECK_INTEQ(g.calls, 1);		/* synchronous: a cache hit */
	dns_get_stats(dns, &b);
	CHECK_INTEQ(b.cache_hits - a.cache_hits, 1);
	CHECK_INTEQ(b.queries, a.queries);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_STREQ(g.name[0], "mx10.pref.test");
	CHECK(g.ttl > 0 && g.ttl <= 300);

	/* Negative answers are cached too. */
	mx(dns, "nx.test", &g);
	dns_get_stats(dns, &b);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);
	CHECK_INTEQ(b.cache_hits - a.cache_hits, 2);
}

/* test_coalescing - two requests for one domain in flight share one lookup. */
static void test_coalescing(struct dns *dns)
{
	struct dns_stats a, b;
	struct got g1, g2, g3;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	dns_get_stats(dns, &a);
	dns_resolve_mx(dns, "coalesce.test", on_answer, &g1);
	dns_resolve_mx(dns, "Coalesce.test", on_answer, &g2);
	dns_get_stats(dns, &b);
	CHECK_INTEQ(b.inflight, 1);
	CHECK_INTEQ(b.coalesced - a.coalesced, 1);
	CHECK_INTEQ(g1.calls + g2.calls, 0);
	run_until(&g2.calls, 1);
	run_until(&g1.calls, 1);
	dns_get_stats(dns, &b);
	CHECK_INTEQ(g1.calls, 1);
	CHECK_INTEQ(g2.calls, 1);
	CHECK_INTEQ(b.lookups - a.lookups, 1);
	CHECK_INTEQ(b.queries - a.queries, 3);	/* one MX, one A, one AAAA */
	CHECK_INTEQ(b.inflight, 0);
	CHECK_INTEQ(g1.status, DNS_OK);
	CHECK_INTEQ(g2.status, DNS_OK);
	CHECK_STREQ(g1.addr[0][0], "192.0.2.80");
	CHECK_STREQ(g2.addr[0][0], "192.0.2.80");

	mx(dns, "coalesce.test", &g3);
	dns_get_stats(dns, &a);
	CHECK_INTEQ(a.queries, b.queries);
	CHECK_INTEQ(g3.status, DNS_OK);
}

/* test_hosts - dns_resolve_host with names and IP literals. */
static void test_hosts(struct dns *dns)
{
	struct dns_stats a, b;
	struct got g;

	host(dns, "relay.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_STREQ(g.name[0], "relay.test");
	CHECK_INTEQ(g.pref[0], 0);
	CHECK_INTEQ(g.naddr[0], 2);
	CHECK_STREQ(g.addr[0][0], "192.0.2.90");
	CHECK_STREQ(g.addr[0][1], "2001:db8::90");

	host(dns, "mx10.pref.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_STREQ(g.addr[0][0], "192.0.2.10");

	/* pref.test's MX answer is cached; its host entry is another one (no A). */
	host(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK_STREQ(g.error, "host pref.test has no address");

	dns_get_stats(dns, &a);
	memset(&g, 0, sizeof(g));
	dns_resolve_host(dns, "192.0.2.5", on_answer, &g);
	CHECK_INTEQ(g.calls, 1);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 1);
	CHECK_INTEQ(g.naddr[0], 1);
	CHECK_STREQ(g.addr[0][0], "192.0.2.5");
	memset(&g, 0, sizeof(g));
	dns_resolve_host(dns, "[IPv6:2001:db8::7]", on_answer, &g);
	CHECK_INTEQ(g.calls, 1);
	CHECK_STREQ(g.addr[0][0], "2001:db8::7");
	memset(&g, 0, sizeof(g));
	dns_resolve_host(dns, "::1", on_answer, &g);
	CHECK_STREQ(g.addr[0][0], "::1");
	dns_get_stats(dns, &b);
	CHECK_INTEQ(b.queries, a.queries);

	/* A route to a name without an address holds mail: transient. */
	host(dns, "gone.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK_STREQ(g.error, "host gone.test has no address");
}

/* test_ttl_bounds - the lowest TTL of the records used, clamped to [min_ttl, max_ttl]. */
static void test_ttl_bounds(const char *servers)
{
	struct dns *dns;
	struct got g;

	dns = new_dns(servers, 1, 3600);
	mx(dns, "ttl.test", &g);		/* MX 300, hosts 300 and 30 */
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.nhosts, 2);
	CHECK_INTEQ(g.ttl, 30);
	dns_free(dns);

	dns = new_dns(servers, 1, 100);
	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.ttl, 100);
	dns_free(dns);

	dns = new_dns(servers, 600, 3600);
	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.ttl, 600);
	mx(dns, "nx.test", &g);
	CHECK_INTEQ(g.ttl, 600);
	dns_free(dns);
}

/* ---- cancellation ---- */

struct reentry {
	struct dns *dns;
	struct got inner;
	int calls;
	enum dns_status status;
	char error[64];
};

/* on_cancel_reenter - a callback that asks again while the resolver is being freed. */
static void on_cancel_reenter(void *ctx, const struct dns_mx_result *res)
{
	struct reentry *r = ctx;

	r->calls++;
	r->status = res->status;
	snprintf(r->error, sizeof(r->error), "%s", res->error ? res->error : "");
	dns_resolve_mx(r->dns, "pref.test", on_answer, &r->inner);
}

/* test_free_in_flight - dns_free answers every waiter "cancelled", in each phase. */
static void test_free_in_flight(const char *servers)
{
	struct dns *dns = new_dns(servers, 1, 3600);
	struct dns_stats st;
	struct got g1, g2, g3;
	struct reentry r;
	int spins = 0;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	memset(&g3, 0, sizeof(g3));
	memset(&r, 0, sizeof(r));
	r.dns = dns;
	dns_resolve_mx(dns, "timeout.test", on_answer, &g1);		/* MX query unanswered */
	dns_resolve_mx(dns, "timeout.test", on_cancel_reenter, &r);	/* waits on the same */
	dns_resolve_mx(dns, "slowmx.test", on_answer, &g2);		/* MX host unanswered */
	dns_resolve_host(dns, "h.timeout.test", on_answer, &g3);	/* A/AAAA unanswered */
	/*
	 * Run until slowmx.test's MX answer has come back and its address
	 * queries are out: 1 + 1 + 2 queries at once, then 2 more. The
	 * server never answers anything under timeout.test, and the 500 ms
	 * timeout is far off.
	 */
	do {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		dns_get_stats(dns, &st);
		if (st.queries < 6)
			usleep(1000);
	} while (st.queries < 6 && ++spins < 400);
	CHECK_INTEQ(st.queries, 6);
	CHECK_INTEQ(st.inflight, 3);
	CHECK_INTEQ(g1.calls + g2.calls + g3.calls + r.calls, 0);

	dns_free(dns);
	CHECK_INTEQ(g1.calls, 1);
	CHECK_INTEQ(g1.status, DNS_TEMPFAIL);
	CHECK_STREQ(g1.error, "cancelled");
	CHECK_INTEQ(r.calls, 1);
	CHECK_INTEQ(r.status, DNS_TEMPFAIL);
	CHECK_STREQ(r.error, "cancelled");
	CHECK_INTEQ(r.inner.calls, 1);		/* asked again while closing: answered at once */
	CHECK_INTEQ(r.inner.status, DNS_TEMPFAIL);
	CHECK_INTEQ(g2.calls, 1);
	CHECK_INTEQ(g2.status, DNS_TEMPFAIL);
	CHECK_STREQ(g2.error, "cancelled");
	CHECK_INTEQ(g3.calls, 1);
	CHECK_INTEQ(g3.status, DNS_TEMPFAIL);
	CHECK_STREQ(g3.error, "cancelled");
}

/* ---- a callback that flushes the cache it is being answered from ---- */

/* on_answer_flush - flush the cache, then read the answer that came from it. */
static void on_answer_flush(void *ctx, const struct dns_mx_result *res)
{
	struct reentry *r = ctx;

	dns_flush(r->dns);
	on_answer(&r->inner, res);	/* res must still be readable */
}

/* test_flush_in_callback - a result stays valid while its callback flushes the cache. */
static void test_flush_in_callback(struct dns *dns)
{
	struct reentry r;
	struct got g;

	mx(dns, "pref.test", &g);
	memset(&r, 0, sizeof(r));
	r.dns = dns;
	dns_resolve_mx(dns, "pref.test", on_answer_flush, &r);
	CHECK_INTEQ(r.inner.calls, 1);
	CHECK_STREQ(r.inner.name[0], "mx10.pref.test");
}

/* test_bad_options - dns_new refuses bad server lists, unreadable files, min > max. */
static void test_bad_options(void)
{
	struct dns_options o = { 0 };
	struct str err = STR_INIT;

	o.servers = "not an address";
	CHECK(dns_new(base, &o, &err) == NULL);
	CHECK(strstr(str_cstr(&err), "bad DNS server list") != NULL);
	str_clear(&err);
	o.servers = NULL;
	o.resolv_conf = "/nonexistent/resolv.conf";
	CHECK(dns_new(base, &o, &err) == NULL);
	CHECK(strstr(str_cstr(&err), "/nonexistent/resolv.conf") != NULL);
	str_clear(&err);
	o.resolv_conf = NULL;
	o.min_ttl = 100;
	o.max_ttl = 10;
	CHECK(dns_new(base, &o, &err) == NULL);
	str_free(&err);
	CHECK_STREQ(dns_status_name(DNS_PERMFAIL), "permfail");
}

/* test_unreachable - nobody at the server's port: transient, and quick. */
static void test_unreachable(void)
{
	char servers[64];
	struct dns *dns;
	struct got g;

	snprintf(servers, sizeof(servers), "127.0.0.1:%d", closed_port());
	dns = new_dns(servers, 1, 3600);
	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	CHECK_STREQ(g.error, "MX lookup failed: no DNS server answered (SERVFAIL, REFUSED or unreachable)");
	host(dns, "relay.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	dns_free(dns);
}

/*
 * test_cache_outlives_server - with the server gone, cached answers are
 * still given until their TTL (here 1 s) passes; then lookups fail
 * transiently.
 */
static void test_cache_outlives_server(struct fixture *fx, const char *servers)
{
	struct dns *dns = new_dns(servers, 1, 1);
	struct timespec nap = { 1, 500000000 };
	struct got g;

	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_INTEQ(g.ttl, 1);
	mx(dns, "nx.test", &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);

	fixture_stop(fx);
	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_OK);
	CHECK_STREQ(g.name[0], "mx10.pref.test");
	mx(dns, "nx.test", &g);
	CHECK_INTEQ(g.status, DNS_PERMFAIL);

	nanosleep(&nap, NULL);
	mx(dns, "pref.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	mx(dns, "nx.test", &g);
	CHECK_INTEQ(g.status, DNS_TEMPFAIL);
	dns_free(dns);
}

int main(void)
{
	struct fixture fx;
	char servers[64];
	struct dns *dns;
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(zone_path, sizeof(zone_path), "%s/zone.json", tmpdir);
	atexit(remove_tmp);
	f = fopen(zone_path, "w");
	if (f == NULL || fputs(zone_json, f) < 0 || fclose(f) != 0) {
		perror(zone_path);
		return 1;
	}
	base = event_base_new();
	fixture_start(&fx);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", fx.port);

	dns = new_dns(servers, 1, 3600);
	test_preference_order(dns);
	test_equal_shuffle(dns);
	test_addresses(dns);
	test_implicit_and_failures(dns);
	test_case_and_cache(dns);
	test_coalescing(dns);
	test_hosts(dns);
	test_flush_in_callback(dns);
	dns_free(dns);

	test_ttl_bounds(servers);
	test_free_in_flight(servers);
	test_bad_options();
	test_unreachable();
	test_cache_outlives_server(&fx, servers);

	fixture_stop(&fx);
	event_base_free(base);
	return check_done();
}
