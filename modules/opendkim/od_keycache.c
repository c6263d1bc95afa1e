/*
 * od_keycache.c - the opendkim module's key cache (see od_keycache.h)
 *
 * A chained hash table of paths with a least-recently-used list through
 * the same entries; both under one mutex. No impetus API call in here
 * (the clock is CLOCK_MONOTONIC read directly), so a unit test can drive
 * it with real key files.
 */
#include "od_keycache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bucket counts: a power of two, enough for max_keys at load <= 1, never absurd. */
#define OD_KC_BUCKETS_MIN 16
#define OD_KC_BUCKETS_MAX 65536
#define OD_KC_ERR_MAX 256

struct od_kc_entry {
	char *path;
	uint32_t hash;
	EVP_PKEY *key;			/* NULL: missing (negative entry) */
	enum dkim_alg alg;
	char err[OD_KC_ERR_MAX];	/* why it is missing */
	uint64_t expires_ms;
	struct od_kc_entry *hnext;	/* bucket chain */
	struct od_kc_entry *prev, *next;	/* LRU: head is the most recent */
};

struct od_keycache {
	pthread_mutex_t lock;
	struct od_kc_entry **buckets;
	size_t nbuckets, n, max;
	uint64_t pos_ms, neg_ms;
	struct od_kc_entry *head, *tail;
};

/* now_ms - the monotonic clock in milliseconds. */
static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* hash_path - FNV-1a. */
static uint32_t hash_path(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct od_keycache *od_keycache_new(size_t max_keys, uint64_t pos_ttl, uint64_t neg_ttl)
{
	struct od_keycache *c = calloc(1, sizeof(*c));
	size_t nb = OD_KC_BUCKETS_MIN;

	if (c == NULL)
		return NULL;
	while (nb < max_keys && nb < OD_KC_BUCKETS_MAX)
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->nbuckets = nb;
	c->max = max_keys ? max_keys : 1;
	c->pos_ms = pos_ttl * 1000u;
	c->neg_ms = neg_ttl * 1000u;
	return c;
}

/* lru_unlink / lru_push - move an entry out of, or to the head of, the LRU list. */
static void lru_unlink(struct od_keycache *c, struct od_kc_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push(struct od_keycache *c, struct od_kc_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void entry_free(struct od_kc_entry *e)
{
	EVP_PKEY_free(e->key);
	free(e->path);
	free(e);
}

/* find - the entry of path, or NULL (lock held). */
static struct od_kc_entry *find(struct od_keycache *c, const char *path, uint32_t h)
{
	for (struct od_kc_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

/* unlink_entry - take e out of its bucket and the LRU list (lock held). */
static void unlink_entry(struct od_keycache *c, struct od_kc_entry *e)
{
	struct od_kc_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->n--;
}

/*
 * store - put a fresh result for path in the table, replacing an older
 * one and evicting the least recently used past max (lock held). Takes
 * over e.
 */
static void store(struct od_keycache *c, struct od_kc_entry *e)
{
	struct od_kc_entry *old = find(c, e->path, e->hash);

	if (old) {
		unlink_entry(c, old);
		entry_free(old);
	}
	while (c->n >= c->max && c->tail) {
		struct od_kc_entry *victim = c->tail;

		unlink_entry(c, victim);
		entry_free(victim);
	}
	size_t b = e->hash & (c->nbuckets - 1);

	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	lru_push(c, e);
	c->n++;
}

int od_keycache_get(struct od_keycache *c, const char *path, EVP_PKEY **key,
		    enum dkim_alg *alg, char *err, size_t errlen, bool *report)
{
	uint32_t h = hash_path(path);
	uint64_t now = now_ms();
	struct od_kc_entry *e;

	*key = NULL;
	*report = false;
	pthread_mutex_lock(&c->lock);
	e = find(c, path, h);
	if (e && e->expires_ms > now) {
		lru_unlink(c, e);
		lru_push(c, e);
		if (e->key) {
			EVP_PKEY_up_ref(e->key);
			*key = e->key;
			*alg = e->alg;
		} else {
			snprintf(err, errlen, "%s", e->err);
		}
		pthread_mutex_unlock(&c->lock);
		return *key ? 0 : -1;
	}
	pthread_mutex_unlock(&c->lock);

	/* Not known, or stale: read the file without the lock. */
	struct od_kc_entry *fresh = calloc(1, sizeof(*fresh));
	char why[OD_KC_ERR_MAX] = "";
	EVP_PKEY *k = NULL;
	enum dkim_alg a = DKIM_ALG_RSA_SHA256;

	if (fresh == NULL || (fresh->path = strdup(path)) == NULL) {
		free(fresh);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (dkim_key_load_pem(path, &k, &a, why, sizeof(why)) < 0)
		k = NULL;
	fresh->hash = h;
	fresh->key = k;
	fresh->alg = a;
	snprintf(fresh->err, sizeof(fresh->err), "%s", k ? "" : why);
	fresh->expires_ms = now + (k ? c->pos_ms : c->neg_ms);
	if (k) {
		EVP_PKEY_up_ref(k);
		*key = k;
		*alg = a;
	} else {
		snprintf(err, errlen, "%s", why);
	}
	pthread_mutex_lock(&c->lock);
	/* Report a failure once: unless another thread stored one meanwhile. */
	e = find(c, path, h);
	*report = k == NULL && !(e && e->key == NULL && e->expires_ms > now);
	store(c, fresh);
	pthread_mutex_unlock(&c->lock);
	return k ? 0 : -1;
}

size_t od_keycache_count(struct od_keycache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void od_keycache_free(struct od_keycache *c)
{
	if (c == NULL)
		return;
	for (struct od_kc_entry *e = c->head, *next; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}
