/*
 * ipmap.c - a hash map keyed by IP address (see ipmap.h)
 *
 * Chained buckets, a power of two of them, doubled when the load passes
 * one node per bucket and halved (down to IPMAP_MIN_BUCKETS) when it falls
 * under one in IPMAP_SHRINK_LOAD, so a burst of many addresses does not
 * keep its bucket array for ever. Chaining rather than open addressing
 * because entries are the caller's (intrusive): a node never moves, so
 * callers may hold pointers to their entries across inserts.
 *
 * Hashing: the keys come from the network, so the bucket must not be
 * predictable from the address alone (a client picking addresses in its
 * IPv6 /64 could otherwise pile them into one chain). FNV-1a starts from
 * a per-map random seed and is finished with the murmur3 mixer, so every
 * key bit reaches the low bits the bucket index uses. Not a keyed MAC,
 * but enough that chains stay short without the seed.
 */
#include "core/ipmap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/mem.h"

#define IPMAP_MIN_BUCKETS 64
#define IPMAP_SHRINK_LOAD 8	/* halve below one node per this many buckets */

/* key_hash - seeded FNV-1a over the 16 bytes, then murmur3's fmix32. */
static uint32_t key_hash(uint32_t seed, const uint8_t key[IPMAP_KEY_LEN])
{
	uint32_t h = 2166136261u ^ seed;

	for (int i = 0; i < IPMAP_KEY_LEN; i++)
		h = (h ^ key[i]) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

void ipmap_init(struct ipmap *m)
{
	memset(m, 0, sizeof(*m));
	if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != sizeof(m->seed)) {
		/* No entropy yet (early boot): the clock is better than a constant. */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		m->seed = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)m;
	}
}

void ipmap_destroy(struct ipmap *m)
{
	assert(m->count == 0);
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = 0;
}

/* resize - rehash every node into n buckets. */
static void resize(struct ipmap *m, size_t n)
{
	struct ipmap_node **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct ipmap_node *e = m->buckets[i];

		while (e) {
			struct ipmap_node *next = e->next;

			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

/* maybe_shrink - halve the buckets when few nodes are left. */
static void maybe_shrink(struct ipmap *m)
{
	size_t n = m->nbuckets;

	while (n > IPMAP_MIN_BUCKETS && m->count * IPMAP_SHRINK_LOAD < n)
		n /= 2;
	if (n != m->nbuckets)
		resize(m, n);
}

struct ipmap_node *ipmap_get(const struct ipmap *m, const uint8_t key[IPMAP_KEY_LEN])
{
	if (m->count == 0)
		return NULL;
	uint32_t h = key_hash(m->seed, key);

	for (struct ipmap_node *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && memcmp(e->addr, key, IPMAP_KEY_LEN) == 0)
			return e;
	return NULL;
}

void ipmap_insert(struct ipmap *m, struct ipmap_node *n)
{
	assert(ipmap_get(m, n->addr) == NULL);
	if (m->nbuckets == 0)
		resize(m, IPMAP_MIN_BUCKETS);
	else if (m->count + 1 > m->nbuckets)
		resize(m, m->nbuckets * 2);
	n->hash = key_hash(m->seed, n->addr);
	n->next = m->buckets[n->hash & (m->nbuckets - 1)];
	m->buckets[n->hash & (m->nbuckets - 1)] = n;
	m->count++;
}

void ipmap_remove(struct ipmap *m, struct ipmap_node *n)
{
	struct ipmap_node **pp = &m->buckets[n->hash & (m->nbuckets - 1)];

	while (*pp != n) {
		assert(*pp != NULL);	/* n must be in this map */
		pp = &(*pp)->next;
	}
	*pp = n->next;
	m->count--;
	maybe_shrink(m);
}

void ipmap_sweep(struct ipmap *m, bool (*fn)(void *ctx, struct ipmap_node *n), void *ctx)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct ipmap_node **pp = &m->buckets[i];

		while (*pp) {
			struct ipmap_node *e = *pp, *next = e->next;

			/* next is read first: fn may free e when it returns true. */
			if (fn(ctx, e)) {
				*pp = next;
				m->count--;
			} else {
				pp = &e->next;
			}
		}
	}
	maybe_shrink(m);
}
