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
 * Syntax: "%{name}" is a reference; "%%" is a literal "%"; a "%" followed
 * by anything else (or at the end) is kept as written, so "100%" and
 * "a%20b" need no escaping. A name is 1..IMP_MACRO_NAME_MAX bytes, none of
 * them a control character, "{", "}" or "%"; "%{" without its "}", an
 * empty or too long name, or a bad byte in it is a syntax error.
 *
 * Lookup: the caller's ctx->vars first (exact name), then an exact
 * registration, then the wildcard of the namespace (the part before the
 * first colon). An unknown macro expands to "" and counts in the result,
 * so callers may refuse it; so does a macro whose expander fails.
 *
 * An expander that is recursive has its output expanded again, up to
 * IMP_MACRO_DEPTH_MAX levels; deeper references are left as written (so a
 * loop ends, with its last output verbatim). A syntax error in an
 * expander's output is not the caller's: that output is kept as written.
 * One expansion is bounded: at most IMP_MACRO_OUT_MAX bytes of output and
 * IMP_MACRO_REFS_MAX references expanded, at every level together;
 * beyond either it fails with -E2BIG.
 *
 * Each expander declares what it needs: a connection (IMP_MACRO_NEEDS_CONN)
 * or a message (IMP_MACRO_NEEDS_MESSAGE); imp_macro_needs tells what a
 * string needs, so configuration can be checked for "a message macro in a
 * connect-time setting" before mail arrives.
 *
 * Generations. Expanders belong to the module generation that registered
 * them (module.h). imp_macro_expand and imp_macro_needs use the calling
 * thread's current generation, which the daemon sets while it runs code
 * of a generation: an instance's init and fini, its hook subscribers, its
 * timed events and pool jobs. Called with no current generation (a thread
 * of the module's own) only ctx->vars are known.
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
#define IMP_MACRO_OUT_MAX 65536		/* bytes of output of one expansion */
#define IMP_MACRO_REFS_MAX 4096		/* references expanded by one expansion, all levels */
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

/*
 * An output buffer for expanders: append with imp_macro_out_append. Past
 * IMP_MACRO_OUT_MAX bytes appends are dropped and the expansion fails
 * with -E2BIG.
 */
struct imp_macro_out;
void imp_macro_out_append(struct imp_macro_out *out, const char *s, size_t len);

/*
 * An expander: append the value of name ("msg:id", or for a wildcard the
 * whole name "vctx_mess:campaign") to out. Returns 0, or -ENOENT when it
 * has no value (or another negative errno when it fails): the macro then
 * expands to "" (what the expander appended is dropped) and counts as
 * unknown. Called on the expanding thread; must not block. ctx is never
 * NULL (an empty one when the caller gave none).
 */
typedef int (*imp_macro_fn)(void *closure, const char *name, const struct imp_macro_ctx *ctx,
			    struct imp_macro_out *out);

/*
 * imp_macro_register - register an expander for name ("ns:name", "ns:*",
 * or "name"), with IMP_MACRO_NEEDS_* and IMP_MACRO_RECURSIVE flags, in the
 * instance's generation. Only in a module's init (while the generation
 * is being built; -EINVAL afterwards, or for a bad name, unknown flags or
 * a NULL fn); -EEXIST when the name is taken in this generation.
 */
int imp_macro_register(struct imp_instance *inst, const char *name, unsigned flags,
		       imp_macro_fn fn, void *closure);

/*
 * imp_macro_expand - expand in into a malloc()ed string (*out, freed by
 * the caller). Returns the number of unknown macros (>= 0), -EINVAL for a
 * syntax error in in, or -E2BIG past the bounds above, with *out NULL.
 * Any thread, with the expanders of its current generation (above).
 */
int imp_macro_expand(const char *in, const struct imp_macro_ctx *ctx, char **out);

/*
 * imp_macro_needs - IMP_MACRO_NEEDS_* bits the registered macros of in
 * need (of the current generation; ctx->vars and unknown names need
 * nothing), or -EINVAL on a syntax error.
 */
int imp_macro_needs(const char *in);

#ifdef __cplusplus
}
#endif

#endif
