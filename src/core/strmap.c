/*
 * strmap.c - string-keyed hash map (see strmap.h)
 *
 * FNV-1a hashing, power-of-two bucket array doubled when the load passes
 * one entry per bucket.
 */
#include "core/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

struct strmap_entry {
	struct strmap_entry *next;
	uint32_t hash;
	void *value;
	char key[];
};

struct strmap {
	struct strmap_entry **buckets;
	size_t nbuckets;
	size_t count;
};

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = XNEW(struct strmap);

	m->nbuckets = 64;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

static struct strmap_entry **find(const struct strmap *m, const char *key, uint32_t h)
{
	struct strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];

	while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry *e = *find(m, key, hash_str(key));

	return e ? e->value : NULL;
}

static void grow(struct strmap *m)
{
	size_t n = m->nbuckets * 2;
	struct strmap_entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_entry *e = m->buckets[i];
		while (e) {
			struct strmap_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

void *strmap_put(struct strmap *m, const char *key, void *value)
{
	uint32_t h = hash_str(key);
	struct strmap_entry **pp = find(m, key, h);

	if (*pp) {
		void *old = (*pp)->value;
		(*pp)->value = value;
		return old;
	}
	size_t klen = strlen(key);
	struct strmap_entry *e = xmalloc(sizeof(*e) + klen + 1);
	e->next = NULL;
	e->hash = h;
	e->value = value;
	memcpy(e->key, key, klen + 1);
	*pp = e;
	if (++m->count > m->nbuckets)
		grow(m);
	return NULL;
}

void *strmap_del(struct strmap *m, const char *key)
{
	struct strmap_entry **pp = find(m, key, hash_str(key));
	struct strmap_entry *e = *pp;

	if (e == NULL)
		return NULL;
	void *v = e->value;
	*pp = e->next;
	free(e);
	m->count--;
	return v;
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}

void strmap_each(const struct strmap *m, void (*fn)(void *ctx, const char *key, void *value),
		 void *ctx)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct strmap_entry *e = m->buckets[i]; e; e = e->next)
			fn(ctx, e->key, e->value);
}

void strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_entry *e = m->buckets[i];
		while (e) {
			struct strmap_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	free(m);
}
