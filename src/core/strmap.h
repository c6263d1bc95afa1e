/*
 * strmap.h - a hash map from NUL-terminated strings to pointers
 *
 * Open hashing with chaining; keys are copied. Owned by one thread, like
 * everything that uses it. Iteration order is unspecified. Keys are exact
 * bytes; names in a configuration use conf_map, IP addresses core/ipmap.h
 * (docs/internals.md, "Hash tables", says which table is for which key).
 */
#ifndef IMPETUS_CORE_STRMAP_H
#define IMPETUS_CORE_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* strmap_get - the value of key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* strmap_put - set key to value (value must not be NULL); returns the old value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* strmap_del - remove key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* strmap_each - call fn for every entry; fn must not change the map. */
void strmap_each(const struct strmap *m, void (*fn)(void *ctx, const char *key, void *value),
		 void *ctx);
/* strmap_free - free the map and its keys (values are the caller's). */
void strmap_free(struct strmap *m);

#endif
