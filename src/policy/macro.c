/*
 * macro.c - %{ns:name} interpolation: expander table and expansion
 *
 * One table per module generation (macro.h): exact names ("msg:id", "d")
 * in one map, wildcard namespaces ("vctx_mess" of "vctx_mess:*") in
 * another. Written on the scheduler thread while the generation builds,
 * read-only afterwards by any thread.
 *
 * An expansion is one walk over the input: literal runs are copied, "%%"
 * becomes "%", each "%{name}" is looked up (the caller's vars, then the
 * exact map, then the namespace's wildcard) and its expander appends to
 * the output. A recursive expander writes into a scratch buffer first,
 * which is then walked again one level deeper; at IMP_MACRO_DEPTH_MAX the
 * scratch is copied as written, which is what ends a loop. Two budgets
 * shared by every level bound the work of one call, whatever the
 * expanders do: IMP_MACRO_OUT_MAX bytes in any one buffer and
 * IMP_MACRO_REFS_MAX references looked up (an expander that writes 4,000
 * references to one that writes 4,000 more would otherwise be 16 million
 * calls producing nothing).
 *
 * Failures: a syntax error in the caller's string is -EINVAL; in an
 * expander's output it is data (kept as written, see macro.h). Either
 * budget exceeded is -E2BIG. An expander's own failure is an unknown
 * macro, never an error of the call.
 */
#include "policy/macro.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"

/* One registered expander. */
struct macro_entry {
	imp_macro_fn fn;
	void *closure;
	unsigned flags;
	struct imp_instance *inst;	/* who registered it (for logs and debugging) */
};

/* The expanders of one generation. */
struct macro_table {
	struct strmap *exact;		/* "msg:id", "d" -> entry */
	struct strmap *wild;		/* "vctx_mess" (of "vctx_mess:*") -> entry */
};

struct imp_macro_out {
	struct str s;
	bool over;			/* an append went past IMP_MACRO_OUT_MAX */
};

/* What one imp_macro_expand call carries through its levels. */
struct expansion {
	struct macro_table *t;
	const struct imp_macro_ctx *ctx;
	int unknown;
	unsigned refs;
};

#define MACRO_FLAGS_KNOWN (IMP_MACRO_NEEDS_CONN | IMP_MACRO_NEEDS_MESSAGE | IMP_MACRO_RECURSIVE)

/* ---- the table ------------------------------------------------------------ */

/* entry_free - strmap_each callback: free one entry. */
static void entry_free(void *arg, const char *key, void *value)
{
	free(value);
}

/* table_free - the generation's macros_free. */
static void table_free(void *p)
{
	struct macro_table *t = p;

	if (t == NULL)
		return;
	strmap_each(t->exact, entry_free, NULL);
	strmap_each(t->wild, entry_free, NULL);
	strmap_free(t->exact);
	strmap_free(t->wild);
	free(t);
}

/* name_byte_ok - whether c may appear in a macro name. */
static bool name_byte_ok(unsigned char c)
{
	return c >= 0x20 && c != 0x7f && c != '{' && c != '}' && c != '%';
}

int imp_macro_register(struct imp_instance *inst, const char *name, unsigned flags,
		       imp_macro_fn fn, void *closure)
{
	if (inst == NULL || inst->gen == NULL || !inst->gen->building || name == NULL ||
	    fn == NULL || (flags & ~MACRO_FLAGS_KNOWN) != 0)
		return -EINVAL;
	size_t len = strlen(name);
	if (len == 0 || len > IMP_MACRO_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!name_byte_ok((unsigned char)name[i]))
			return -EINVAL;

	/*
	 * "ns:name" needs both sides; "ns:*" is the namespace's wildcard;
	 * a name without a colon is plain, but not "*" alone (it would read
	 * as a wildcard of nothing).
	 */
	const char *colon = strchr(name, ':');
	bool wildcard = false;
	char key[IMP_MACRO_NAME_MAX + 1];

	memcpy(key, name, len + 1);
	if (colon != NULL) {
		if (colon == name || colon[1] == '\0')
			return -EINVAL;
		if (strcmp(colon + 1, "*") == 0) {
			wildcard = true;
			key[colon - name] = '\0';
		}
	} else if (strcmp(name, "*") == 0) {
		return -EINVAL;
	}

	struct api_gen *g = inst->gen;
	struct macro_table *t = g->macros;
	if (t == NULL) {
		t = XNEW(struct macro_table);
		t->exact = strmap_new();
		t->wild = strmap_new();
		g->macros = t;
		g->macros_free = table_free;
	}
	struct strmap *map = wildcard ? t->wild : t->exact;
	if (strmap_get(map, key) != NULL)
		return -EEXIST;
	struct macro_entry *e = XNEW(struct macro_entry);
	e->fn = fn;
	e->closure = closure;
	e->flags = flags;
	e->inst = inst;
	strmap_put(map, key, e);
	return 0;
}

/* lookup - the expander of name (NUL-terminated, writable scratch of its length), or NULL. */
static struct macro_entry *lookup(struct macro_table *t, char *name)
{
	if (t == NULL)
		return NULL;
	struct macro_entry *e = strmap_get(t->exact, name);
	if (e != NULL)
		return e;
	/* The wildcard needs a non-empty rest: "ns:" is no member of "ns:*". */
	char *colon = strchr(name, ':');
	if (colon == NULL || colon[1] == '\0')
		return NULL;
	*colon = '\0';
	e = strmap_get(t->wild, name);
	*colon = ':';
	return e;
}

/* var_lookup - the value the caller gave for name in ctx->vars, or NULL. */
static const char *var_lookup(const struct imp_macro_ctx *ctx, const char *name, bool *found)
{
	*found = false;
	for (size_t i = 0; ctx->vars != NULL && i < ctx->nvars; i++) {
		const char *k = ctx->vars[2 * i];

		if (k != NULL && strcmp(k, name) == 0) {
			*found = true;
			return ctx->vars[2 * i + 1];
		}
	}
	return NULL;
}

/* ---- output ---------------------------------------------------------------- */

void imp_macro_out_append(struct imp_macro_out *out, const char *s, size_t len)
{
	if (out == NULL || s == NULL || out->over || len == 0)
		return;
	if (len > IMP_MACRO_OUT_MAX - out->s.len) {
		out->over = true;
		return;
	}
	str_append(&out->s, s, len);
}

/* ---- scanning ---------------------------------------------------------------- */

/*
 * scan_ref - at in[i] == '%' with in[i+1] == '{': find the name. Sets
 * *name_at, *name_len and returns the index after '}', or -EINVAL.
 */
static long scan_ref(const char *in, size_t len, size_t i, size_t *name_at, size_t *name_len)
{
	size_t j = i + 2;

	while (j < len && in[j] != '}') {
		if (!name_byte_ok((unsigned char)in[j]))
			return -EINVAL;
		if (j - (i + 2) >= IMP_MACRO_NAME_MAX)
			return -EINVAL;
		j++;
	}
	if (j >= len || j == i + 2)
		return -EINVAL;
	*name_at = i + 2;
	*name_len = j - (i + 2);
	return (long)(j + 1);
}

/*
 * walk - call ref() for each reference of in[0..len), copy() for each
 * literal run; the shape both expansion and needs share. Returns 0, the
 * first negative value ref() returns, or -EINVAL on a syntax error.
 */
struct walker {
	int (*literal)(struct walker *w, const char *s, size_t n);
	int (*ref)(struct walker *w, char *name);
};

static int walk(struct walker *w, const char *in, size_t len)
{
	size_t i = 0;
	int rc;

	while (i < len) {
		const char *p = memchr(in + i, '%', len - i);
		size_t at = p ? (size_t)(p - in) : len;

		if (at > i && (rc = w->literal(w, in + i, at - i)) < 0)
			return rc;
		if (p == NULL)
			break;
		if (at + 1 < len && in[at + 1] == '%') {
			if ((rc = w->literal(w, "%", 1)) < 0)
				return rc;
			i = at + 2;
			continue;
		}
		if (at + 1 >= len || in[at + 1] != '{') {
			/* A lone "%": kept as written ("100%", "a%20b"). */
			if ((rc = w->literal(w, "%", 1)) < 0)
				return rc;
			i = at + 1;
			continue;
		}
		size_t name_at, name_len;
		long next = scan_ref(in, len, at, &name_at, &name_len);
		if (next < 0)
			return (int)next;
		char name[IMP_MACRO_NAME_MAX + 1];
		memcpy(name, in + name_at, name_len);
		name[name_len] = '\0';
		if ((rc = w->ref(w, name)) < 0)
			return rc;
		i = (size_t)next;
	}
	return 0;
}

/* ---- expansion ------------------------------------------------------------- */

struct expand_walker {
	struct walker w;
	struct expansion *x;
	struct imp_macro_out *out;
	int depth;
};

static int expand_level(struct expansion *x, const char *in, size_t len, int depth,
			struct imp_macro_out *out);

/* depth_ok - whether output produced at depth may be expanded again (one level down). */
static inline bool depth_ok(int depth)
{
	return depth < IMP_MACRO_DEPTH_MAX;
}

/* expand_literal - copy a literal run. */
static int expand_literal(struct walker *w, const char *s, size_t n)
{
	struct expand_walker *ew = (struct expand_walker *)w;

	imp_macro_out_append(ew->out, s, n);
	return ew->out->over ? -E2BIG : 0;
}

/* expand_ref - expand one reference into the walker's output. */
static int expand_ref(struct walker *w, char *name)
{
	struct expand_walker *ew = (struct expand_walker *)w;
	struct expansion *x = ew->x;
	struct imp_macro_out *out = ew->out;
	bool found;

	if (++x->refs > IMP_MACRO_REFS_MAX)
		return -E2BIG;
	const char *value = var_lookup(x->ctx, name, &found);
	if (found) {
		if (value == NULL)
			x->unknown++;
		else
			imp_macro_out_append(out, value, strlen(value));
		return out->over ? -E2BIG : 0;
	}
	struct macro_entry *e = lookup(x->t, name);
	if (e == NULL) {
		x->unknown++;
		return 0;
	}
	if (!(e->flags & IMP_MACRO_RECURSIVE)) {
		size_t mark = out->s.len;
		if (e->fn(e->closure, name, x->ctx, out) < 0) {
			if (out->over)
				return -E2BIG;
			str_truncate(&out->s, mark);
			x->unknown++;
			return 0;
		}
		return out->over ? -E2BIG : 0;
	}

	/* Recursive: the value goes to a scratch buffer, then is walked one level down. */
	struct imp_macro_out scratch = { STR_INIT, false };
	int rc = 0;
	if (e->fn(e->closure, name, x->ctx, &scratch) < 0) {
		if (scratch.over)
			rc = -E2BIG;
		else
			x->unknown++;
	} else if (scratch.over) {
		rc = -E2BIG;
	} else if (depth_ok(ew->depth)) {
		size_t mark = out->s.len;
		int unknown = x->unknown;

		rc = expand_level(x, str_cstr(&scratch.s), scratch.s.len, ew->depth + 1, out);
		if (rc == -EINVAL) {
			/* The expander's output is not well-formed: it is data, kept as written. */
			str_truncate(&out->s, mark);
			x->unknown = unknown;
			imp_macro_out_append(out, scratch.s.s, scratch.s.len);
			rc = out->over ? -E2BIG : 0;
		}
	} else {
		imp_macro_out_append(out, scratch.s.s, scratch.s.len);
		rc = out->over ? -E2BIG : 0;
	}
	str_free(&scratch.s);
	return rc;
}

/* expand_level - walk in[0..len) at depth, appending to out. */
static int expand_level(struct expansion *x, const char *in, size_t len, int depth,
			struct imp_macro_out *out)
{
	struct expand_walker ew = {
		.w = { .literal = expand_literal, .ref = expand_ref },
		.x = x, .out = out, .depth = depth,
	};

	return walk(&ew.w, in, len);
}

int macro_expand(struct api_gen *g, const char *in, const struct imp_macro_ctx *ctx, char **out)
{
	static const struct imp_macro_ctx empty;
	struct expansion x = { .t = g ? g->macros : NULL, .ctx = ctx ? ctx : &empty };
	struct imp_macro_out o = { STR_INIT, false };

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (in == NULL)
		return -EINVAL;
	/*
	 * The syntax first, alone: a syntax error is -EINVAL whatever the
	 * expanders would have done before the walk reached it (-E2BIG).
	 */
	int rc = macro_needs(NULL, in);
	if (rc < 0)
		return rc;
	rc = expand_level(&x, in, strlen(in), 0, &o);
	if (rc == 0 && o.over)
		rc = -E2BIG;
	if (rc < 0) {
		str_free(&o.s);
		return rc;
	}
	*out = str_steal(&o.s);
	return x.unknown;
}

int imp_macro_expand(const char *in, const struct imp_macro_ctx *ctx, char **out)
{
	return macro_expand(api_gen_current(), in, ctx, out);
}

/* ---- needs --------------------------------------------------------------------- */

struct needs_walker {
	struct walker w;
	struct macro_table *t;
	int bits;
};

/* needs_literal - literal runs need nothing. */
static int needs_literal(struct walker *w, const char *s, size_t n)
{
	return 0;
}

/* needs_ref - add what the reference's expander declares. */
static int needs_ref(struct walker *w, char *name)
{
	struct needs_walker *nw = (struct needs_walker *)w;
	struct macro_entry *e = lookup(nw->t, name);

	if (e != NULL)
		nw->bits |= (int)(e->flags & (IMP_MACRO_NEEDS_CONN | IMP_MACRO_NEEDS_MESSAGE));
	return 0;
}

int macro_needs(struct api_gen *g, const char *in)
{
	struct needs_walker nw = {
		.w = { .literal = needs_literal, .ref = needs_ref },
		.t = g ? g->macros : NULL,
	};

	if (in == NULL)
		return -EINVAL;
	int rc = walk(&nw.w, in, strlen(in));
	return rc < 0 ? rc : nw.bits;
}

int imp_macro_needs(const char *in)
{
	return macro_needs(api_gen_current(), in);
}
