/*
 * test_queue.c - the queue manager's pure parts: connection goal, token buckets
 */
#include "check.h"
#include <impetus/hooks.h>
#include "config/config.h"
#include <stdlib.h>

#include "dns/dns.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "queue/throttle.h"

/* test_goal - one connection per ready batch, bounded by the limit. */
static void test_goal(void)
{
	static const struct {
		uint64_t active, runs;
		uint32_t max, batch;
		uint32_t want;
	} cases[] = {
		{ 0, 0, 32, 100, 0 },		/* nothing to do */
		{ 10, 1, 32, 100, 1 },		/* one message, ten recipients */
		{ 40, 40, 32, 100, 32 },	/* 40 single-recipient messages */
		{ 40, 40, 2, 100, 2 },		/* limited */
		{ 40, 40, 0, 100, 40 },		/* 0 = no limit */
		{ 1000, 1, 32, 100, 10 },	/* one big message: ten batches */
		{ 250, 2, 32, 100, 3 },
		{ 5, 5, 32, 1, 5 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imp_goal_input in = {
			.active = cases[i].active, .runs = cases[i].runs,
			.max_connections = cases[i].max, .batch_size = cases[i].batch,
		};
		CHECK_INTEQ(queue_default_connection_goal(&in), cases[i].want);
	}
}

/* test_throttle - N/secs refills at N/secs per second, starts with one token. */
static void test_throttle(void)
{
	struct throttle t = { 0 };
	struct conf_throttle five = { 5, 1 };
	struct conf_throttle slow = { 10, 2 };
	int64_t now = 1000000000;

	throttle_configure(&t, NULL, now);
	for (int i = 0; i < 1000; i++)
		CHECK(throttle_take(&t, now));	/* unlimited */

	throttle_configure(&t, &five, now);
	CHECK(throttle_take(&t, now));
	CHECK(!throttle_take(&t, now));
	CHECK_INTEQ(throttle_wait_us(&t, now) > 199000 && throttle_wait_us(&t, now) <= 200001, 1);
	CHECK(throttle_take(&t, now + 200001));
	/* After a long pause no more than N are available at once. */
	int n = 0;
	while (throttle_take(&t, now + 60000000))
		n++;
	CHECK_INTEQ(n, 5);

	throttle_configure(&t, &slow, now);	/* 10 per 2 s = 5/s */
	CHECK(throttle_take(&t, now));
	CHECK(!throttle_take(&t, now + 100000));
	CHECK(throttle_take(&t, now + 200001));
}

/* The delay-notice schedule: Momentum's example (3 h, 9 h, 21 h, 45 h, then every 24 h). */
static void test_delay_schedule(void)
{
	const int64_t H = 3600, r = 1000000;
	static const struct {
		int64_t at;
		uint32_t due;
	} momentum[] = {
		{ 0, 0 }, { 3 * 3600 - 1, 0 }, { 3 * 3600, 1 }, { 9 * 3600 - 1, 1 },
		{ 9 * 3600, 2 }, { 21 * 3600, 3 }, { 45 * 3600 - 1, 3 }, { 45 * 3600, 4 },
		{ 69 * 3600, 5 }, { 93 * 3600, 6 },
	};

	for (size_t i = 0; i < sizeof(momentum) / sizeof(momentum[0]); i++)
		CHECK_INTEQ(queue_bounce_delays_due(r, r + momentum[i].at, 3 * H, 24 * H),
			    momentum[i].due);
	/* the defaults: 1 h, 3 h, 7 h, 15 h, 27 h, then every 12 h */
	CHECK_INTEQ(queue_bounce_delays_due(r, r + 27 * H, H, 12 * H), 5);
	CHECK_INTEQ(queue_bounce_delays_due(r, r + 39 * H - 1, H, 12 * H), 5);
	CHECK_INTEQ(queue_bounce_delays_due(r, r + 39 * H, H, 12 * H), 6);
	/* a max below the interval: every interval */
	CHECK_INTEQ(queue_bounce_delays_due(r, r + 10, 2, 1), 5);
	/* a clock before the reception: nothing due */
	CHECK_INTEQ(queue_bounce_delays_due(r, r - 100, 2, 4), 0);
	/* huge spans stay finite */
	CHECK(queue_bounce_delays_due(0, INT64_MAX / 2, 1, 1) > 1000);
}

/* key_of - queue_route_key of hosts given as (name, pref) pairs. */
static char *key_of(const char *const *names, const uint16_t *prefs, size_t n, bool route,
		    uint16_t port)
{
	struct dns_host hosts[8] = { 0 };
	struct dns_mx_result res = { .status = DNS_OK, .nhosts = n, .hosts = hosts };

	for (size_t i = 0; i < n; i++) {
		hosts[i].name = (char *)names[i];
		hosts[i].pref = prefs[i];
	}
	return queue_route_key(&res, route, port);
}

/* test_route_key - the same MX set gives the same next hop whatever DNS's order. */
static void test_route_key(void)
{
	static const char *const a[] = { "MX2.Example.NET", "mx1.example.net", "mx0.example.net" };
	static const uint16_t pa[] = { 20, 10, 20 };
	static const char *const b[] = { "mx0.example.net", "mx1.example.net", "mx2.example.net" };
	static const uint16_t pb[] = { 20, 10, 20 };
	static const char *const one[] = { "relay.example" };
	static const uint16_t p0[] = { 0 };
	char *ka = key_of(a, pa, 3, false, 25), *kb = key_of(b, pb, 3, false, 25);
	char *kc = key_of(b, pb, 3, false, 2525), *kr = key_of(one, p0, 1, true, 587);
	char *kd = key_of(b, pb, 2, false, 25);

	CHECK_STREQ(ka, "mx:10 mx1.example.net,20 mx0.example.net,20 mx2.example.net port 25");
	CHECK_STREQ(ka, kb);
	CHECK_STREQ(kc, "mx:10 mx1.example.net,20 mx0.example.net,20 mx2.example.net port 2525");
	CHECK_STREQ(kd, "mx:10 mx1.example.net,20 mx0.example.net port 25");	/* another set */
	CHECK_STREQ(kr, "host:relay.example port 587");
	free(ka);
	free(kb);
	free(kc);
	free(kd);
	free(kr);
}

int main(void)
{
	test_route_key();
	test_delay_schedule();
	test_goal();
	test_throttle();
	return check_done();
}
