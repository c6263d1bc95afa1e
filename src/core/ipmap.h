/*
 * ipmap.h - a hash map keyed by IP address (16 bytes), intrusive
 *
 * For per-client-address state: connection counts, rejectlog budgets,
 * and whatever per-IP limit comes next. The key is the 16-byte form of
 * core/sockaddr.h (sockaddr_ip16: IPv6 as is, IPv4 as ::ffff:a.b.c.d).
 *
 * Intrusive: the caller's entry embeds a struct ipmap_node, sets its
 * addr, and inserts it; the map links nodes and never allocates or frees
 * entries, so an entry costs one allocation, as it did before the map
 * was generic. IPMAP_ENTRY turns a node back into its entry.
 *
 * Ownership: one thread, like everything that uses it; not thread-safe.
 * Failures: none reported (allocation aborts, core/mem.h). Inserting a
 * key that is already present is a caller bug (assertion).
 */
#ifndef IMPETUS_CORE_IPMAP_H
#define IMPETUS_CORE_IPMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPMAP_KEY_LEN 16

/* What an entry embeds. addr is the caller's to set before insert, then read-only. */
struct ipmap_node {
	struct ipmap_node *next;	/* the map's */
	uint32_t hash;			/* the map's */
	uint8_t addr[IPMAP_KEY_LEN];
};

struct ipmap {
	struct ipmap_node **buckets;	/* NULL while empty */
	size_t nbuckets;		/* power of two, or 0 */
	size_t count;
	uint32_t seed;			/* per map, so bucket choice is not predictable */
};

/* IPMAP_ENTRY - the entry of type holding node as its member (unchecked: a macro). */
#define IPMAP_ENTRY(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

/* ipmap_init - an empty map (no allocation until the first insert). */
void ipmap_init(struct ipmap *m);
/* ipmap_destroy - free the buckets; the map must be empty (sweep it first). */
void ipmap_destroy(struct ipmap *m);
/* ipmap_get - the node with this key, or NULL. */
struct ipmap_node *ipmap_get(const struct ipmap *m, const uint8_t key[IPMAP_KEY_LEN]);
/* ipmap_insert - link n under n->addr, which must not be in the map yet. */
void ipmap_insert(struct ipmap *m, struct ipmap_node *n);
/* ipmap_remove - unlink n (in the map); the caller frees its entry. */
void ipmap_remove(struct ipmap *m, struct ipmap_node *n);
static inline size_t ipmap_count(const struct ipmap *m) { return m->count; }
/*
 * ipmap_sweep - call fn for every node, in no particular order; when fn
 * returns true the node is unlinked (fn may free its entry before it
 * returns). fn must not insert or remove otherwise.
 */
void ipmap_sweep(struct ipmap *m, bool (*fn)(void *ctx, struct ipmap_node *n), void *ctx);

#endif
