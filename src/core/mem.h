/*
 * mem.h - allocation that cannot fail silently
 *
 * impetus treats running out of memory as a broken environment: the
 * x-allocators abort with a message instead of returning NULL, so callers
 * never carry half-handled allocation failures. Any thread may call these.
 */
#ifndef IMPETUS_CORE_MEM_H
#define IMPETUS_CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

/* XNEW - allocate one zeroed object of a type. */
#define XNEW(type) ((type *)xcalloc(1, sizeof(type)))

#endif
