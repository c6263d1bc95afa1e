/*
 * spool_idmap.c - id -> pointer hash map (see spool_idmap.h)
 */
#include "spool/spool_idmap.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/mem.h"

/* mix - ids are consecutive microseconds: scramble them so low bits spread. */
static size_t mix(impetus_id k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

void spool_idmap_init(struct spool_idmap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->count = 0;
}

void spool_idmap_free(struct spool_idmap *m)
{
	free(m->slots);
	spool_idmap_init(m);
}

/* find - the slot holding key, or the empty slot where it would go. */
static size_t find(const struct spool_idmap *m, impetus_id key)
{
	size_t mask = m->cap - 1;
	size_t i = mix(key) & mask;

	while (m->slots[i].key != 0 && m->slots[i].key != key)
		i = (i + 1) & mask;
	return i;
}

/* grow - double the table (or create it) and re-insert everything. */
static void grow(struct spool_idmap *m)
{
	struct spool_idmap_slot *old = m->slots;
	size_t oldcap = m->cap;

	m->cap = oldcap ? oldcap * 2 : 64;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].key)
			m->slots[find(m, old[i].key)] = old[i];
	}
	free(old);
}

void *spool_idmap_get(const struct spool_idmap *m, impetus_id key)
{
	size_t i;

	if (m->cap == 0 || key == 0)
		return NULL;
	i = find(m, key);
	return m->slots[i].key ? m->slots[i].val : NULL;
}

void *spool_idmap_put(struct spool_idmap *m, impetus_id key, void *val)
{
	size_t i;
	void *prev;

	/* Keep the load under 3/4 so probe runs stay short. */
	if ((m->count + 1) * 4 > m->cap * 3)
		grow(m);
	i = find(m, key);
	if (m->slots[i].key) {
		prev = m->slots[i].val;
		m->slots[i].val = val;
		return prev;
	}
	m->slots[i].key = key;
	m->slots[i].val = val;
	m->count++;
	return NULL;
}

void *spool_idmap_del(struct spool_idmap *m, impetus_id key)
{
	size_t mask, i, j;
	void *val;

	if (m->cap == 0 || key == 0)
		return NULL;
	mask = m->cap - 1;
	i = find(m, key);
	if (m->slots[i].key == 0)
		return NULL;
	val = m->slots[i].val;
	/*
	 * Backward-shift: pull later members of the probe run into the hole
	 * when their home slot does not lie (cyclically) between the hole and
	 * their current slot, so every key stays reachable from its home.
	 */
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (m->slots[j].key == 0)
			break;
		home = mix(m->slots[j].key) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->count--;
	return val;
}
