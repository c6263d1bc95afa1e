/*
 * histo.c - lock-free sharded histograms (see histo.h)
 *
 * Each thread picks a shard the first time it observes anything (a
 * thread-local index handed out round robin), so the I/O loops, the spool
 * thread and the scheduler each add to their own counters with relaxed
 * atomics: nothing orders on them, they are statistics. More threads than
 * shards share some, which costs contention, never correctness.
 *
 * Failures: none. Bounds beyond HISTO_MAX_BOUNDS are ignored.
 */
#include <string.h>
#include <time.h>

#include "core/histo.h"

static _Atomic unsigned next_shard;
static _Thread_local unsigned my_shard = UINT32_MAX;

void histo_init(struct histo *h, const uint64_t *bounds, size_t nbounds)
{
	memset(h, 0, sizeof(*h));
	if (nbounds > HISTO_MAX_BOUNDS)
		nbounds = HISTO_MAX_BOUNDS;
	memcpy(h->bounds, bounds, nbounds * sizeof(*bounds));
	h->nbounds = nbounds;
}

/* shard_index - the calling thread's shard, chosen on its first observation. */
static unsigned shard_index(void)
{
	if (my_shard == UINT32_MAX)
		my_shard = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
			   HISTO_SHARDS;
	return my_shard;
}

void histo_observe(struct histo *h, uint64_t v)
{
	struct histo_shard *s = &h->shard[shard_index()];
	size_t i = 0;

	/* A linear scan: at most 20 compares, cheaper than the atomics that follow. */
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&s->n[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->sum, v, memory_order_relaxed);
}

void histo_read(const struct histo *h, struct histo_snap *out)
{
	uint64_t acc = 0;

	memset(out, 0, sizeof(*out));
	out->nbounds = h->nbounds;
	memcpy(out->bounds, h->bounds, sizeof(out->bounds));
	for (size_t i = 0; i <= h->nbounds; i++) {
		for (size_t k = 0; k < HISTO_SHARDS; k++)
			acc += atomic_load_explicit(&h->shard[k].n[i], memory_order_relaxed);
		out->cum[i] = acc;
	}
	out->count = acc;
	for (size_t k = 0; k < HISTO_SHARDS; k++)
		out->sum += atomic_load_explicit(&h->shard[k].sum, memory_order_relaxed);
}

int64_t histo_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
