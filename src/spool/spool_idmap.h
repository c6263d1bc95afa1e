/*
 * spool_idmap.h - a hash map from message id to a pointer
 *
 * The spool's indexes (live messages on the spool thread, messages being
 * replayed during recovery) are keyed by impetus_id. Open addressing with
 * linear probing and backward-shift deletion: no tombstones, so lookups
 * stay short after many deletions. Id 0 is never a key (the codec rejects
 * it). Owned by one thread; not thread-safe. Allocation aborts on OOM.
 */
#ifndef IMPETUS_SPOOL_SPOOL_IDMAP_H
#define IMPETUS_SPOOL_SPOOL_IDMAP_H

#include <stddef.h>

#include "core/id.h"

struct spool_idmap_slot {
	impetus_id key;		/* 0 = empty */
	void *val;
};

struct spool_idmap {
	struct spool_idmap_slot *slots;
	size_t cap;		/* power of two, or 0 */
	size_t count;
};

void spool_idmap_init(struct spool_idmap *m);
/* spool_idmap_free - release the table (not the values). */
void spool_idmap_free(struct spool_idmap *m);
void *spool_idmap_get(const struct spool_idmap *m, impetus_id key);
/* spool_idmap_put - insert or replace; returns the previous value or NULL. */
void *spool_idmap_put(struct spool_idmap *m, impetus_id key, void *val);
/* spool_idmap_del - remove; returns the value or NULL when absent. */
void *spool_idmap_del(struct spool_idmap *m, impetus_id key);

/* Iterate: for (i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
