/*
 * fuzz_macro.c - libFuzzer target for %{ns:name} expansion
 *
 * macro_expand and macro_needs (src/policy/macro.c) read configuration
 * strings and, through recursive expanders, values that come from mail
 * (a vctx value set from a header). One generation with test expanders
 * of every kind (exact, wildcard, plain, failing, recursive, looping,
 * doubling, large) and two caller vars. Byte 0 chooses whether the vars
 * are given; the rest is the string. Besides memory safety and UB:
 *   - the result is an unknown count >= 0 with a string of at most
 *     IMP_MACRO_OUT_MAX bytes, -EINVAL with no string, or -E2BIG;
 *   - -EINVAL exactly when a plain reference scanner finds a syntax
 *     error, and then macro_needs says -EINVAL too; otherwise needs is
 *     the union of the named expanders' NEEDS bits;
 *   - for a string that names no recursive expander, the output and the
 *     unknown count equal a reference expander's, and -E2BIG exactly when
 *     the reference goes past the output or reference budget;
 *   - expanding twice gives the same.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/str.h"
#include "policy/macro.h"

#include "fuzz.h"

static int x_const(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		   struct imp_macro_out *out)
{
	imp_macro_out_append(out, closure, strlen(closure));
	return 0;
}

static int x_echo(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	const char *rest = strchr(name, ':') + 1;

	imp_macro_out_append(out, "<", 1);
	imp_macro_out_append(out, rest, strlen(rest));
	imp_macro_out_append(out, ">", 1);
	return 0;
}

static int x_fail(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	imp_macro_out_append(out, "junk", 4);
	return -ENOENT;
}

/* x_template - recursive: the rest, "(" written as "%{" and ")" as "}". */
static int x_template(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		      struct imp_macro_out *out)
{
	for (const char *p = strchr(name, ':') + 1; *p; p++) {
		if (*p == '(')
			imp_macro_out_append(out, "%{", 2);
		else if (*p == ')')
			imp_macro_out_append(out, "}", 1);
		else
			imp_macro_out_append(out, p, 1);
	}
	return 0;
}

static char big[20001];

/* The table the reference uses: name, value (NULL: fails), needs, kind. */
enum kind { K_CONST, K_FAIL, K_REC };
static const struct {
	const char *name;
	const char *value;
	unsigned flags;
	enum kind kind;
} exact[] = {
	{ "e:x", "EX", IMP_MACRO_NEEDS_MESSAGE, K_CONST },
	{ "p", "P", 0, K_CONST },
	{ "empty", "", IMP_MACRO_NEEDS_CONN, K_CONST },
	{ "big", big, 0, K_CONST },
	{ "f", NULL, IMP_MACRO_NEEDS_CONN, K_FAIL },
	{ "w:x", "WX", 0, K_CONST },
	{ "loop", "%{loop}", 0, K_REC },
	{ "dbl", "%{dbl}%{dbl}", 0, K_REC },
	{ "pct", "100%%", 0, K_REC },
};
/* Wildcards: "w:*" echoes (<rest>, needs CONN), "r:*" is the recursive template. */

static const char *const vars[] = { "d", "example.com", "s", "sel" };

static struct api_gen *gen(void)
{
	static struct api_gen *g;

	if (g != NULL)
		return g;
	memset(big, 'b', sizeof(big) - 1);
	g = api_gen_new();
	struct imp_instance *in = api_core_instance(g);
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		imp_macro_fn fn = exact[i].kind == K_FAIL ? x_fail : x_const;
		unsigned f = exact[i].flags | (exact[i].kind == K_REC ? IMP_MACRO_RECURSIVE : 0);
		MUST(imp_macro_register(in, exact[i].name, f, fn, (void *)exact[i].value) == 0);
	}
	MUST(imp_macro_register(in, "w:*", IMP_MACRO_NEEDS_CONN, x_echo, NULL) == 0);
	MUST(imp_macro_register(in, "r:*", IMP_MACRO_RECURSIVE | IMP_MACRO_NEEDS_MESSAGE, x_template,
				NULL) == 0);
	api_gen_freeze(g);
	return g;
}

/* ---- the reference -------------------------------------------------------------- */

struct ref {
	struct str out;
	int unknown;
	unsigned refs;
	bool recursive;		/* a recursive expander was named: no exact comparison */
	unsigned needs;
	bool syntax;		/* a syntax error */
};

static bool name_byte(unsigned char c)
{
	return c >= 0x20 && c != 0x7f && c != '{' && c != '}' && c != '%';
}

/* ref_one - one reference, as the rules of impetus/macro.h say. */
static void ref_one(struct ref *r, const char *name, bool with_vars)
{
	r->refs++;
	if (with_vars)
		for (size_t i = 0; i < 2; i++)
			if (strcmp(name, vars[2 * i]) == 0) {
				str_appends(&r->out, vars[2 * i + 1]);
				return;
			}
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
		if (strcmp(name, exact[i].name) != 0)
			continue;
		r->needs |= exact[i].flags;
		if (exact[i].kind == K_REC)
			r->recursive = true;
		else if (exact[i].kind == K_FAIL)
			r->unknown++;
		else
			str_appends(&r->out, exact[i].value);
		return;
	}
	if (strncmp(name, "w:", 2) == 0 && name[2] != '\0') {
		r->needs |= IMP_MACRO_NEEDS_CONN;
		str_appendf(&r->out, "<%s>", name + 2);
		return;
	}
	if (strncmp(name, "r:", 2) == 0 && name[2] != '\0') {
		r->needs |= IMP_MACRO_NEEDS_MESSAGE;
		r->recursive = true;
		return;
	}
	r->unknown++;
}

static void ref_expand(struct ref *r, const char *s, bool with_vars)
{
	while (*s) {
		if (s[0] != '%') {
			str_appendc(&r->out, *s++);
			continue;
		}
		if (s[1] == '%') {
			str_appendc(&r->out, '%');
			s += 2;
			continue;
		}
		if (s[1] != '{') {
			str_appendc(&r->out, '%');
			s++;
			continue;
		}
		size_t n = 0;
		while (s[2 + n] && s[2 + n] != '}' && name_byte((unsigned char)s[2 + n]))
			n++;
		if (s[2 + n] != '}' || n == 0 || n > IMP_MACRO_NAME_MAX) {
			r->syntax = true;
			return;
		}
		char name[IMP_MACRO_NAME_MAX + 1];
		memcpy(name, s + 2, n);
		name[n] = '\0';
		ref_one(r, name, with_vars);
		s += n + 3;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct api_gen *g = gen();
	bool with_vars = data[0] & 1;
	struct imp_macro_ctx ctx = { .vars = with_vars ? vars : NULL, .nvars = with_vars ? 2 : 0 };
	char *in = fuzz_strndup(data + 1, size - 1);
	char *out = (char *)"unset";
	int rc = macro_expand(g, in, &ctx, &out);

	MUST(rc >= 0 || rc == -EINVAL || rc == -E2BIG);
	MUST((rc < 0) == (out == NULL));
	if (out != NULL)
		MUST(strlen(out) <= IMP_MACRO_OUT_MAX);

	struct ref r = { .out = STR_INIT };
	ref_expand(&r, in, with_vars);
	MUST((rc == -EINVAL) == r.syntax);
	int needs = macro_needs(g, in);
	if (r.syntax)
		MUST(needs == -EINVAL);
	else
		MUST(needs == (int)r.needs);

	if (!r.syntax && !r.recursive) {
		if (r.out.len > IMP_MACRO_OUT_MAX || r.refs > IMP_MACRO_REFS_MAX) {
			MUST(rc == -E2BIG);
		} else {
			MUST(rc == r.unknown);
			MUST(strlen(out) == r.out.len && memcmp(out, str_cstr(&r.out), r.out.len) == 0);
		}
	}
	char *again;
	MUST(macro_expand(g, in, &ctx, &again) == rc);
	MUST((out == NULL && again == NULL) || strcmp(out, again) == 0);
	free(again);
	free(out);
	str_free(&r.out);
	free(in);
	return 0;
}
