/*
 * histo.h - a histogram that hot paths of any thread write without a lock
 *
 * Fixed buckets (upper bounds in integer units: microseconds, messages,
 * ...) chosen once at histo_init. An observation is two relaxed atomic
 * additions on the calling thread's shard: no lock, no allocation, and
 * threads on different shards never share a cache line's counters. A
 * reader (any thread, typically the scrape on the scheduler) sums the
 * shards with histo_read; the snapshot is approximate while writers run
 * (a sum may miss the bucket of an observation in progress) but each
 * bucket and the count only grow, which is what a Prometheus histogram
 * needs. The count is taken as the sum of the buckets, so it always
 * equals the +Inf bucket.
 *
 * Knows nothing about mail or about the exposition format.
 */
#ifndef IMPETUS_CORE_HISTO_H
#define IMPETUS_CORE_HISTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HISTO_MAX_BOUNDS 20	/* finite buckets; one more for +Inf */
#define HISTO_SHARDS 8		/* threads beyond this share shards (still correct) */

/* One shard's counters, padded so two shards never share a cache line. */
struct histo_shard {
	_Atomic uint64_t n[HISTO_MAX_BOUNDS + 1];	/* per bucket, not cumulative; last = +Inf */
	_Atomic uint64_t sum;				/* of the observed values, in units */
	char pad[64 - ((HISTO_MAX_BOUNDS + 2) * 8) % 64];
};

struct histo {
	uint64_t bounds[HISTO_MAX_BOUNDS];	/* increasing upper bounds (le), in units */
	size_t nbounds;
	struct histo_shard shard[HISTO_SHARDS];
};

/* A summed reading: cumulative counts, as the exposition format wants them. */
struct histo_snap {
	size_t nbounds;
	uint64_t bounds[HISTO_MAX_BOUNDS];
	uint64_t cum[HISTO_MAX_BOUNDS + 1];	/* observations <= bounds[i]; cum[nbounds] = all */
	uint64_t count;				/* == cum[nbounds] */
	uint64_t sum;
};

/*
 * histo_init - zero h with these bounds (strictly increasing, at most
 * HISTO_MAX_BOUNDS; more are cut off). Before any thread observes.
 */
void histo_init(struct histo *h, const uint64_t *bounds, size_t nbounds);
/* histo_observe - one observation of v units; any thread, lock-free. */
void histo_observe(struct histo *h, uint64_t v);
/* histo_read - the shards summed into out; any thread. */
void histo_read(const struct histo *h, struct histo_snap *out);
/* histo_now_us - a monotonic clock in microseconds, for latencies to observe. */
int64_t histo_now_us(void);

#endif
