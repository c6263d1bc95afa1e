/*
 * impetus/macro.h - %{namespace:name} expansion
 *
 * Configuration strings and modules say "%{d}", "%{msg:id}" or
 * "%{vctx_mess:campaign}" and an expander fills it in. Expanders are
 * registered by name: "msg:id" exactly, or "vctx_mess:*" for every name
 * of a namespace (the wildcard needs a non-empty rest: it matches
 * "%{vctx_mess:x}", never "%{vctx_mess:}"). An exact registration wins
 * over a wildcard. Names without a colon ("d", "s") are plain macros.
 *
 * An expander that is recursive has its output expanded again, up to
 * IMP_MACRO_DEPTH_MAX levels; deeper references are left as written.
 * "%%" is a literal "%". An unknown macro expands to "" (and counts in
 * the result's unknown count, so callers may refuse it).
 *
 * Each expander declares what it needs: a connection (IMP_MACRO_NEEDS_CONN)
 * or a message (IMP_MACRO_NEEDS_MESSAGE); imp_macro_needs tells what a
 * string needs, so configuration can be checked for "a message macro in a
 * connect-time setting" before mail arrives.
 */
#ifndef IMPETUS_MACRO_H
#define IMPETUS_MACRO_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_instance;
struct imp_session;
struct imp_message;

#define IMP_MACRO_DEPTH_MAX 8
#define IMP_MACRO_NAME_MAX 128
#define IMP_MACRO_NEEDS_CONN    0x01
#define IMP_MACRO_NEEDS_MESSAGE 0x02
#define IMP_MACRO_RECURSIVE     0x100	/* flag: expand this expander's output again */

/* What an expansion may draw on; fields may be NULL. */
struct imp_macro_ctx {
	struct imp_session *session;
	const struct imp_message *message;
	const char *const *vars;	/* extra plain macros: name, value, name, value, ... */
	size_t nvars;			/* number of pairs */
};

/* An output buffer for expanders: append with imp_macro_out_append. */
struct imp_macro_out;
void imp_macro_out_append(struct imp_macro_out *out, const char *s, size_t len);

/*
 * An expander: append the value of name ("msg:id", or for a wildcard the
 * whole name "vctx_mess:campaign") to out. Returns 0, or -ENOENT when it
 * has no value (the macro expands to "" and counts as unknown). Called on
 * the expanding thread; must not block.
 */
typedef int (*imp_macro_fn)(void *closure, const char *name, const struct imp_macro_ctx *ctx,
			    struct imp_macro_out *out);

/*
 * imp_macro_register - register an expander for name ("ns:name", "ns:*",
 * or "name"), with IMP_MACRO_NEEDS_* and IMP_MACRO_RECURSIVE flags. In a
 * module's init (the generation's table); -EEXIST when the name is taken.
 */
int imp_macro_register(struct imp_instance *inst, const char *name, unsigned flags,
		       imp_macro_fn fn, void *closure);

/*
 * imp_macro_expand - expand in into a malloc()ed string (*out, freed by
 * the caller). Returns the number of unknown macros (>= 0), or -EINVAL for
 * a syntax error ("%{" without "}", a name longer than
 * IMP_MACRO_NAME_MAX), with *out NULL. Any thread that holds the current
 * generation (hooks, jobs of an instance).
 */
int imp_macro_expand(const char *in, const struct imp_macro_ctx *ctx, char **out);

/* imp_macro_needs - IMP_MACRO_NEEDS_* bits the macros of in need; -EINVAL on a syntax error. */
int imp_macro_needs(const char *in);

#ifdef __cplusplus
}
#endif

#endif
