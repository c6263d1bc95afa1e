/*
 * throttle.h - token buckets for Outbound_Throttle_Messages/_Connections
 *
 * "N/secs" allows N events per secs seconds on average: tokens refill at
 * N/secs per second up to a bucket of N. A bucket starts with one token,
 * not N, so a fresh queue does not open with a burst the operator did not
 * ask for. Owned by whoever embeds it (the scheduler's queues).
 */
#ifndef IMPETUS_QUEUE_THROTTLE_H
#define IMPETUS_QUEUE_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

struct conf_throttle;

struct throttle {
	bool enabled;
	double rate;		/* tokens per microsecond */
	double burst;		/* bucket size */
	double tokens;
	int64_t last_us;
	uint32_t count, period;	/* as configured, to notice changes */
};

/* throttle_configure - (re)set from a configured value; count 0 = unlimited. */
void throttle_configure(struct throttle *t, const struct conf_throttle *ct, int64_t now_us);
/* throttle_take - consume a token if one is there. */
bool throttle_take(struct throttle *t, int64_t now_us);
/* throttle_wait_us - microseconds until a token is available (0 = now). */
int64_t throttle_wait_us(struct throttle *t, int64_t now_us);

#endif
