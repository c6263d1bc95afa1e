/*
 * test_queue.c - the queue manager's pure parts: connection goal, token buckets
 */
#include "check.h"
#include <impetus/hooks.h>
#include "config/config.h"
#include "queue/queue.h"
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

int main(void)
{
	test_delay_schedule();
	test_goal();
	test_throttle();
	return check_done();
}
