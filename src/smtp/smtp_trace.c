/*
 * smtp_trace.c - the switch of SMTP state-change tracing (smtp_trace.h)
 *
 * Owner: none; shared by every thread. `mode` is the only word the I/O
 * loops read on their fast path (relaxed: a session that sees a change
 * one state late loses or gains one trace line, nothing else). The
 * filter address is written and read under `mu`, and only looked at when
 * mode says a filter is on. Failure: a bad IP is refused before anything
 * changes.
 */
#include "smtp/smtp_trace.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/sockaddr.h"

#define TRACE_FILTER 0x4u	/* only the peer in filter */

static atomic_uint mode;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t filter[SOCKADDR_IP16_LEN];
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

/* read_env - IMPETUS_TRACE as it always meant: "smtp" inbound, "smtpc" both. */
static void read_env(void)
{
	const char *t = getenv("IMPETUS_TRACE");
	unsigned m = 0;

	if (t && strstr(t, "smtp"))
		m |= SMTP_TRACE_IN;
	if (t && strstr(t, "smtpc"))
		m |= SMTP_TRACE_OUT;
	atomic_store_explicit(&mode, m, memory_order_relaxed);
}

void smtp_trace_init(void)
{
	pthread_once(&env_once, read_env);
}

/* parse_ip16 - text IPv4 or IPv6 as 16 bytes (IPv4 mapped), as sockaddr_ip16 keys them. */
static bool parse_ip16(const char *ip, uint8_t out[SOCKADDR_IP16_LEN])
{
	struct in_addr a4;
	struct in6_addr a6;

	if (ip == NULL || *ip == '\0')
		return false;
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		return true;
	}
	if (inet_pton(AF_INET6, ip, &a6) == 1) {
		memcpy(out, &a6, 16);
		return true;
	}
	return false;
}

int smtp_trace_set(unsigned mask, const char *ip)
{
	uint8_t key[SOCKADDR_IP16_LEN];

	smtp_trace_init();
	mask &= SMTP_TRACE_IN | SMTP_TRACE_OUT;
	if (ip && !parse_ip16(ip, key))
		return -1;
	pthread_mutex_lock(&mu);
	if (ip)
		memcpy(filter, key, sizeof(filter));
	atomic_store_explicit(&mode, mask ? mask | (ip ? TRACE_FILTER : 0u) : 0u,
			      memory_order_release);
	pthread_mutex_unlock(&mu);
	return 0;
}

void smtp_trace_describe(unsigned *mask, struct str *ip)
{
	unsigned m;

	smtp_trace_init();
	pthread_mutex_lock(&mu);
	m = atomic_load_explicit(&mode, memory_order_relaxed);
	if (m & TRACE_FILTER) {
		char text[INET6_ADDRSTRLEN];
		static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(filter, v4mapped, 12) == 0)
			inet_ntop(AF_INET, filter + 12, text, sizeof(text));
		else
			inet_ntop(AF_INET6, filter, text, sizeof(text));
		str_appends(ip, text);
	}
	pthread_mutex_unlock(&mu);
	*mask = m & (SMTP_TRACE_IN | SMTP_TRACE_OUT);
}

/* filter_match - whether key is the filter address. */
static bool filter_match(const uint8_t key[SOCKADDR_IP16_LEN])
{
	pthread_mutex_lock(&mu);
	bool hit = memcmp(filter, key, SOCKADDR_IP16_LEN) == 0;
	pthread_mutex_unlock(&mu);
	return hit;
}

bool smtp_trace_in(const struct sockaddr *peer)
{
	unsigned m = atomic_load_explicit(&mode, memory_order_acquire);
	uint8_t key[SOCKADDR_IP16_LEN];

	if (!(m & SMTP_TRACE_IN))
		return false;
	if (!(m & TRACE_FILTER))
		return true;
	return sockaddr_ip16(peer, key) && filter_match(key);
}

bool smtp_trace_out(const char *ip)
{
	unsigned m = atomic_load_explicit(&mode, memory_order_acquire);
	uint8_t key[SOCKADDR_IP16_LEN];

	if (!(m & SMTP_TRACE_OUT))
		return false;
	if (!(m & TRACE_FILTER))
		return true;
	return parse_ip16(ip, key) && filter_match(key);
}
