/*
 * throttle.c - token buckets (see throttle.h)
 */
#include "queue/throttle.h"

#include "config/config.h"

static void refill(struct throttle *t, int64_t now_us)
{
	if (now_us < t->last_us)
		t->last_us = now_us;	/* the clock stepped back: count no time */
	if (now_us > t->last_us) {
		t->tokens += (double)(now_us - t->last_us) * t->rate;
		if (t->tokens > t->burst)
			t->tokens = t->burst;
		t->last_us = now_us;
	}
}

void throttle_configure(struct throttle *t, const struct conf_throttle *ct, int64_t now_us)
{
	uint32_t count = ct ? ct->count : 0;
	uint32_t period = ct && ct->period ? ct->period : 1;

	if (t->enabled && t->count == count && t->period == period)
		return;
	t->count = count;
	t->period = period;
	t->enabled = count > 0;
	if (!t->enabled)
		return;
	t->rate = (double)count / ((double)period * 1e6);
	t->burst = (double)count;
	t->tokens = 1.0;
	t->last_us = now_us;
}

bool throttle_take(struct throttle *t, int64_t now_us)
{
	if (!t->enabled)
		return true;
	refill(t, now_us);
	if (t->tokens >= 1.0) {
		t->tokens -= 1.0;
		return true;
	}
	return false;
}

int64_t throttle_wait_us(struct throttle *t, int64_t now_us)
{
	if (!t->enabled)
		return 0;
	refill(t, now_us);
	if (t->tokens >= 1.0)
		return 0;
	return (int64_t)((1.0 - t->tokens) / t->rate) + 1;
}
