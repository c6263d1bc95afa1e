/*
 * template.h - the substitution language of the transmissions API
 *
 * Momentum 4 / SparkPost's handlebars-style language for the subject,
 * headers, text and html of a transmission: {{expr}} (HTML-escaped in
 * the html part), {{{expr}}} (never escaped), dotted paths and brackets
 * (address.city, Airports[code].city), {{if}} / {{elseif}} / {{else}} /
 * {{end}} with comparisons, and, or, not, {{each array}} with loop_var
 * and loop_vars.<name>. docs/templates.md is the user's reference.
 *
 * A template is compiled once per part of a transmission and rendered
 * once per recipient, with the recipient's substitution data looked up
 * before the transmission's. Compiling checks everything that can be
 * checked without data, so a bad template is refused (422) before any
 * recipient is rendered; rendering can then only fail on a limit.
 *
 * Pure code: no I/O, no global state, no threads. A compiled template is
 * immutable, so any number of threads may render it at once; each render
 * uses only its own stack and the caller's output string.
 */
#ifndef IMPETUS_MESSAGE_TEMPLATE_H
#define IMPETUS_MESSAGE_TEMPLATE_H

#include <stddef.h>
#include <jansson.h>

#include "core/str.h"

struct template;

/* How a substituted value is written into the part being rendered. */
enum template_escape {
	TEMPLATE_TEXT,		/* as is (text/plain) */
	TEMPLATE_HTML,		/* {{ }} values HTML-escaped (& < > " '), {{{ }}} as is */
	TEMPLATE_HEADER,	/* as is, but CR and LF in values become SP */
};

/* Limits of the source, fixed: a template beyond them is refused. */
#define TEMPLATE_SRC_MAX	(4u << 20)	/* bytes of source */
#define TEMPLATE_NEST_MAX	32	/* nested if/each blocks */
#define TEMPLATE_EXPR_DEPTH_MAX	32	/* nested (), [], not inside one tag */
#define TEMPLATE_EXPR_HEIGHT_MAX 128	/* operators and selectors chained in one tag */
#define TEMPLATE_TAG_MAX	4096	/* bytes between {{ and }} */

/* Limits of one render; template_render uses the defaults. */
struct template_limits {
	size_t out_max;		/* bytes appended to the output */
	size_t steps_max;	/* instructions executed (loops included) */
	size_t each_max;	/* iterations of one {{each}} */
};

#define TEMPLATE_OUT_MAX_DEFAULT	(20u << 20)
#define TEMPLATE_STEPS_MAX_DEFAULT	4000000u
#define TEMPLATE_EACH_MAX_DEFAULT	100000u

/*
 * Where and why a template was refused. line and col are 1-based; col
 * counts characters (UTF-8 code points), not bytes; offset is the byte
 * offset in the source. Compile errors point at the tag or token at
 * fault (the opening {{ for a tag that never closes or a block never
 * ended); render errors at the tag that crossed the limit.
 */
struct template_error {
	unsigned line;
	unsigned col;
	size_t offset;
	char msg[128];
};

/*
 * template_compile - parse src[0..len) into *out. 0, or -EINVAL with err
 * filled (out untouched) when the template is malformed or over a
 * source limit. src need not be NUL-terminated; it is copied.
 */
int template_compile(const char *src, size_t len, struct template **out,
		     struct template_error *err);

/* template_free - release a compiled template (NULL is fine). */
void template_free(struct template *t);

/*
 * template_render - append the template rendered with the data to out.
 * A name is looked up in recipient_data, then in global_data (either may
 * be NULL; both are JSON objects or ignored). 0, or -E2BIG with err set
 * when a limit of the default template_limits is crossed; out is then
 * back at its length on entry.
 */
int template_render(const struct template *t, json_t *recipient_data,
		    json_t *global_data, enum template_escape mode,
		    struct str *out, struct template_error *err);

/* template_render_limited - template_render with the caller's limits. */
int template_render_limited(const struct template *t, json_t *recipient_data,
			    json_t *global_data, enum template_escape mode,
			    const struct template_limits *limits,
			    struct str *out, struct template_error *err);

/* template_is_static - 1 when the template has no tag (render = source). */
int template_is_static(const struct template *t);

/*
 * template_error_format - "<part>:<line>:<col>: <msg>" appended to out,
 * the text of a 422's error (part such as "content.html"; NULL: none).
 */
void template_error_format(const struct template_error *err, const char *part,
			   struct str *out);

#endif
