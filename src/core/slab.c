/*
 * slab.c - fixed-size objects from big chunks (see slab.h)
 *
 * A chunk is one allocation: a header, then SLAB_CHUNK_OBJECTS objects.
 * A new chunk's objects all go on the free list at once, so slab_alloc is
 * always "pop the free list": one pointer load and a memset of the object.
 */
#include "core/slab.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

struct slab_chunk {
	struct slab_chunk *next;
	alignas(max_align_t) unsigned char objects[];
};

void slab_init(struct slab *sl, size_t size)
{
	size_t a = alignof(void *);

	memset(sl, 0, sizeof(*sl));
	if (size < sizeof(void *))
		size = sizeof(void *);
	sl->size = (size + a - 1) / a * a;
}

/* grow - one more chunk, its objects pushed on the free list (last first, so they go out in order). */
static void grow(struct slab *sl)
{
	struct slab_chunk *c = xmalloc(sizeof(*c) + sl->size * SLAB_CHUNK_OBJECTS);

	c->next = sl->chunks;
	sl->chunks = c;
	for (size_t i = SLAB_CHUNK_OBJECTS; i-- > 0;) {
		void *obj = c->objects + i * sl->size;

		*(void **)obj = sl->free;
		sl->free = obj;
	}
	sl->capacity += SLAB_CHUNK_OBJECTS;
}

void *slab_alloc(struct slab *sl)
{
	void *obj;

	if (sl->free == NULL)
		grow(sl);
	obj = sl->free;
	sl->free = *(void **)obj;
	memset(obj, 0, sl->size);
	sl->live++;
	return obj;
}

void slab_free(struct slab *sl, void *obj)
{
	if (obj == NULL)
		return;
	*(void **)obj = sl->free;
	sl->free = obj;
	sl->live--;
}

void slab_destroy(struct slab *sl)
{
	struct slab_chunk *c = sl->chunks;

	while (c) {
		struct slab_chunk *next = c->next;
		free(c);
		c = next;
	}
	sl->chunks = NULL;
	sl->free = NULL;
	sl->live = sl->capacity = 0;
}
