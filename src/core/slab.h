/*
 * slab.h - fixed-size objects from big chunks, for the queue's per-recipient entries
 *
 * A million queued recipients were a million malloc calls and a million
 * malloc headers. A slab hands out objects of one size carved from chunks
 * of SLAB_CHUNK_OBJECTS, and keeps freed objects on a free list for the
 * next allocation: no system allocator call in the steady state, no
 * per-object header.
 *
 * Chunks are returned only by slab_destroy: after a peak, the memory stays
 * with the slab for the next one (as glibc's heap would mostly keep it).
 *
 * Ownership: a slab belongs to one thread (the queue's is the scheduler's)
 * and is never shared. Allocation aborts on out-of-memory like xmalloc.
 */
#ifndef IMPETUS_CORE_SLAB_H
#define IMPETUS_CORE_SLAB_H

#include <stddef.h>

#define SLAB_CHUNK_OBJECTS 1024

struct slab_chunk;

struct slab {
	size_t size;			/* object size, rounded up to a pointer's alignment */
	void *free;			/* free list, linked through the objects' first word */
	struct slab_chunk *chunks;	/* every chunk, for slab_destroy */
	size_t live;			/* objects handed out and not freed */
	size_t capacity;		/* objects in all chunks */
};

/* slab_init - a slab of objects of size bytes (at least a pointer's). */
void slab_init(struct slab *sl, size_t size);
/* slab_alloc - a zeroed object. Never NULL (aborts when memory is exhausted). */
void *slab_alloc(struct slab *sl);
/* slab_free - give obj (from this slab) back; NULL is ignored. */
void slab_free(struct slab *sl, void *obj);
/* slab_destroy - release every chunk; objects still out become invalid. */
void slab_destroy(struct slab *sl);

#endif
