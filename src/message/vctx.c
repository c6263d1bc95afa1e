/*
 * vctx.c - the validation context's dictionary (see vctx.h)
 *
 * No state of its own; the holder's thread owns each context.
 */
#include "message/vctx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/session.h>

#include "core/mem.h"

struct vctx *vctx_new(void)
{
	return XNEW(struct vctx);
}

void vctx_clear(struct vctx *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].value);
	}
	c->n = 0;
}

void vctx_free(struct vctx *c)
{
	if (c == NULL)
		return;
	vctx_clear(c);
	free(c->v);
	free(c);
}

struct vctx *vctx_dup(const struct vctx *c)
{
	if (c == NULL)
		return NULL;
	struct vctx *d = vctx_new();

	for (size_t i = 0; i < c->n; i++)
		vctx_set(d, c->v[i].key, c->v[i].value);
	return d;
}

bool vctx_key_ok(const char *key)
{
	size_t n = 0;

	if (key == NULL || *key == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++, n++)
		if (*p <= ' ' || *p >= 0x7f || n >= IMP_VCTX_KEY_MAX)
			return false;
	return true;
}

/* find - the index of key, or c->n. */
static size_t find(const struct vctx *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].key, key) == 0)
			break;
	return i;
}

int vctx_set(struct vctx *c, const char *key, const char *value)
{
	if (!vctx_key_ok(key))
		return -EINVAL;
	if (value && strnlen(value, IMP_VCTX_VALUE_MAX + 1) > IMP_VCTX_VALUE_MAX)
		return -EINVAL;
	size_t i = find(c, key);

	if (value == NULL) {
		if (i == c->n)
			return 0;
		free(c->v[i].key);
		free(c->v[i].value);
		/* Keep the insertion order of the rest. */
		memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof(*c->v));
		c->n--;
		return 0;
	}
	if (i < c->n) {
		char *nv = xstrdup(value);

		free(c->v[i].value);
		c->v[i].value = nv;
		return 0;
	}
	if (c->n >= IMP_VCTX_ENTRIES_MAX)
		return -E2BIG;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].key = xstrdup(key);
	c->v[c->n].value = xstrdup(value);
	c->n++;
	return 0;
}

const char *vctx_get(const struct vctx *c, const char *key)
{
	if (c == NULL || key == NULL)
		return NULL;
	size_t i = find(c, key);

	return i < c->n ? c->v[i].value : NULL;
}

size_t vctx_count(const struct vctx *c)
{
	return c ? c->n : 0;
}
