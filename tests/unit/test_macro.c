/*
 * test_macro.c - src/policy/macro.c: %{ns:name} registration and expansion
 *
 * One generation with test expanders (exact, wildcard, plain, failing,
 * recursive, looping, doubling, oversized) and caller vars; a table of
 * inputs with the exact output and result each must give. Then the
 * edges: registration rules, the budgets (depth, output, references),
 * imp_macro_needs, the calling thread's current generation, and the
 * core's built-ins in a generation attached to a real configuration.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "api/api.h"
#include "config/config.h"
#include "core/str.h"
#include "policy/macro.h"

/* ---- test expanders -------------------------------------------------------- */

/* x_const - append the closure's string. */
static int x_const(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		   struct imp_macro_out *out)
{
	imp_macro_out_append(out, closure, strlen(closure));
	return 0;
}

/* x_echo - "W(" + the rest after the namespace + ")". */
static int x_echo(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	const char *rest = strchr(name, ':') + 1;

	imp_macro_out_append(out, "W(", 2);
	imp_macro_out_append(out, rest, strlen(rest));
	imp_macro_out_append(out, ")", 1);
	return 0;
}

/* x_fail - append something, then say there is no value. */
static int x_fail(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	imp_macro_out_append(out, "junk", 4);
	return -ENOENT;
}

/* x_template - recursive: the rest, with "(" written as "%{" and ")" as "}". */
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

/* x_repeat - append the closure's string n times (n in the name after "big"/"fan"). */
struct repeat {
	const char *s;
	int n;
};

static int x_repeat(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		    struct imp_macro_out *out)
{
	const struct repeat *r = closure;

	for (int i = 0; i < r->n; i++)
		imp_macro_out_append(out, r->s, strlen(r->s));
	return 0;
}

/* x_ctx - records that ctx was never NULL and which session it carried. */
static const struct imp_macro_ctx *seen_ctx;
static int x_ctx(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		 struct imp_macro_out *out)
{
	seen_ctx = ctx;
	return ctx != NULL ? 0 : -EINVAL;
}

static struct repeat big = { "0123456789", 4000 };		/* 40,000 bytes */
static struct repeat huge = { "0123456789", 7000 };		/* 70,000 bytes */
static struct repeat fan = { "%{fan}", 100 };
static struct repeat dbl = { "%{dbl}", 2 };

/* test_gen - the generation every table row runs against. */
static struct api_gen *test_gen(void)
{
	struct api_gen *g = api_gen_new();
	struct imp_instance *in = api_core_instance(g);

	CHECK_INTEQ(imp_macro_register(in, "msg:id", IMP_MACRO_NEEDS_MESSAGE, x_const, "ID1"), 0);
	CHECK_INTEQ(imp_macro_register(in, "w:*", IMP_MACRO_NEEDS_CONN, x_echo, NULL), 0);
	CHECK_INTEQ(imp_macro_register(in, "w:special", 0, x_const, "EXACT"), 0);
	CHECK_INTEQ(imp_macro_register(in, "plain", 0, x_const, "P"), 0);
	CHECK_INTEQ(imp_macro_register(in, "zero", 0, x_const, ""), 0);
	CHECK_INTEQ(imp_macro_register(in, "fail:*", 0, x_fail, NULL), 0);
	CHECK_INTEQ(imp_macro_register(in, "rfail", IMP_MACRO_RECURSIVE, x_fail, NULL), 0);
	CHECK_INTEQ(imp_macro_register(in, "r:*", IMP_MACRO_RECURSIVE, x_template, NULL), 0);
	CHECK_INTEQ(imp_macro_register(in, "loop", IMP_MACRO_RECURSIVE, x_const, "[%{loop}]"), 0);
	CHECK_INTEQ(imp_macro_register(in, "dbl", IMP_MACRO_RECURSIVE, x_repeat, &dbl), 0);
	CHECK_INTEQ(imp_macro_register(in, "fan", IMP_MACRO_RECURSIVE, x_repeat, &fan), 0);
	CHECK_INTEQ(imp_macro_register(in, "big", 0, x_repeat, &big), 0);
	CHECK_INTEQ(imp_macro_register(in, "huge", 0, x_repeat, &huge), 0);
	CHECK_INTEQ(imp_macro_register(in, "rhuge", IMP_MACRO_RECURSIVE, x_repeat, &huge), 0);
	CHECK_INTEQ(imp_macro_register(in, "ctx", 0, x_ctx, NULL), 0);
	api_gen_freeze(g);
	return g;
}

static const char *const vars[] = {
	"d", "example.com",
	"s", "sel",
	"nullv", NULL,
	"w:special", "VAR",	/* vars come before registrations */
};
static const struct imp_macro_ctx vctx = { .vars = vars, .nvars = 4 };

static const struct {
	const char *in;
	const char *out;	/* NULL: an error */
	int rc;
} rows[] = {
	{ "", "", 0 },
	{ "abc", "abc", 0 },
	/* Literal percent signs. */
	{ "%%", "%", 0 },
	{ "100%", "100%", 0 },
	{ "a%20b", "a%20b", 0 },
	{ "%", "%", 0 },
	{ "%x%", "%x%", 0 },
	{ "%%{d}", "%{d}", 0 },
	{ "%%%{d}", "%example.com", 0 },
	{ "%%%%", "%%", 0 },
	{ "{d}", "{d}", 0 },
	{ "}", "}", 0 },
	/* Caller vars, the DKIM key path. */
	{ "/etc/dkim/%{d}/%{s}.key", "/etc/dkim/example.com/sel.key", 0 },
	{ "%{nullv}", "", 1 },
	{ "%{w:special}", "VAR", 0 },
	/* Exact, wildcard, plain. */
	{ "%{msg:id}", "ID1", 0 },
	{ "<%{msg:id}>", "<ID1>", 0 },
	{ "%{w:abc}", "W(abc)", 0 },
	{ "%{w:a:b}", "W(a:b)", 0 },
	{ "%{w:*}", "W(*)", 0 },
	{ "%{w: x }", "W( x )", 0 },
	{ "%{w:}", "", 1 },		/* the wildcard needs a non-empty rest */
	{ "%{w}", "", 1 },
	{ "%{W:abc}", "", 1 },		/* names are case-sensitive */
	{ "%{plain}", "P", 0 },
	{ "%{plain:x}", "", 1 },
	{ "%{zero}", "", 0 },		/* an empty value is a value */
	{ "%{msg:idx}", "", 1 },
	{ "x%{nope}y%{nope:z}z", "xyz", 2 },
	{ "%{fail:x}", "", 1 },		/* what a failing expander appended is dropped */
	{ "a%{fail:x}b%{msg:id}", "abID1", 1 },
	/* Recursive expanders. */
	{ "%{r:x(plain)y}", "xPy", 0 },
	{ "%{r:(d).(msg:id)}", "example.com.ID1", 0 },
	{ "%{r:a(nope)b}", "ab", 1 },
	{ "%{r:((}", "%{%{", 0 },		/* a syntax error in an expander's output is data */
	{ "%{r:(d}", "%{d", 0 },
	{ "%{r:(d)(}", "%{d}%{", 0 },		/* all of that output, as written */
	{ "%{rfail}", "", 1 },
	/* Syntax errors of the caller's string. */
	{ "%{", NULL, -EINVAL },
	{ "%{d", NULL, -EINVAL },
	{ "abc%{", NULL, -EINVAL },
	{ "%{d}%{s", NULL, -EINVAL },
	{ "%{}", NULL, -EINVAL },
	{ "%{a{b}", NULL, -EINVAL },
	{ "%{a%b}", NULL, -EINVAL },
	{ "%{a%%b}", NULL, -EINVAL },
	{ "%{a\tb}", NULL, -EINVAL },
	{ "%{a\nb}", NULL, -EINVAL },
	{ "%{a\x7f" "b}", NULL, -EINVAL },
	{ "%{%{d}}", NULL, -EINVAL },		/* no nesting in the caller's string */
	/* Budgets. */
	{ "%{big}", NULL, 40000 },		/* (rc: the length, checked below) */
	{ "%{big}%{big}", NULL, -E2BIG },
	{ "%{big}%{big}%{", NULL, -EINVAL },	/* the syntax is checked first */
	{ "%{huge}", NULL, -E2BIG },
	{ "%{rhuge}", NULL, -E2BIG },
	{ "%{fan}", NULL, -E2BIG },
};

/* test_table - every row gives its output and result, with the generation current. */
static void test_table(struct api_gen *g)
{
	struct api_gen *prev = api_gen_enter(g);

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *out = (char *)"unset";
		int rc = imp_macro_expand(rows[i].in, &vctx, &out);

		if (rows[i].rc == 40000) {
			CHECK_INTEQ(rc, 0);
			CHECK(out != NULL && strlen(out) == 40000);
		} else {
			if (rc != rows[i].rc)
				fprintf(stderr, "row %zu: \"%s\"\n", i, rows[i].in);
			CHECK_INTEQ(rc, rows[i].rc);
			if (rows[i].out == NULL)
				CHECK(out == NULL);
			else
				CHECK_STREQ(out, rows[i].out);
		}
		free(out);
	}
	api_gen_leave(prev);
}

/* test_names - the longest name is accepted, one byte more is a syntax error. */
static void test_names(struct api_gen *g)
{
	char in[IMP_MACRO_NAME_MAX + 8];
	char *out;

	memset(in, 'n', sizeof(in));
	memcpy(in, "%{", 2);
	in[2 + IMP_MACRO_NAME_MAX] = '}';
	in[3 + IMP_MACRO_NAME_MAX] = '\0';
	CHECK_INTEQ(macro_expand(g, in, NULL, &out), 1);
	CHECK_STREQ(out, "");
	free(out);
	in[2 + IMP_MACRO_NAME_MAX] = 'n';
	in[3 + IMP_MACRO_NAME_MAX] = '}';
	in[4 + IMP_MACRO_NAME_MAX] = '\0';
	CHECK_INTEQ(macro_expand(g, in, NULL, &out), -EINVAL);
	CHECK(out == NULL);
	CHECK_INTEQ(macro_needs(g, in), -EINVAL);
}

/* test_depth - a loop stops after IMP_MACRO_DEPTH_MAX re-expansions, its last output verbatim. */
static void test_depth(struct api_gen *g)
{
	struct str want = STR_INIT;
	char *out;

	/* Called at depths 0..DEPTH_MAX: DEPTH_MAX + 1 outputs, the last one not expanded. */
	for (int i = 0; i <= IMP_MACRO_DEPTH_MAX; i++)
		str_appendc(&want, '[');
	str_appends(&want, "%{loop}");
	for (int i = 0; i <= IMP_MACRO_DEPTH_MAX; i++)
		str_appendc(&want, ']');
	CHECK_INTEQ(macro_expand(g, "%{loop}", NULL, &out), 0);
	CHECK_STREQ(out, str_cstr(&want));
	free(out);

	/* A doubling expander: 2^DEPTH_MAX leaves, each its output as written. */
	str_clear(&want);
	for (int i = 0; i < 1 << IMP_MACRO_DEPTH_MAX; i++)
		str_appends(&want, "%{dbl}%{dbl}");
	CHECK_INTEQ(macro_expand(g, "%{dbl}", NULL, &out), 0);
	CHECK_STREQ(out, str_cstr(&want));
	free(out);
	str_free(&want);
}

/* test_refs - IMP_MACRO_REFS_MAX references pass, one more is -E2BIG. */
static void test_refs(struct api_gen *g)
{
	struct str in = STR_INIT;
	char *out;

	for (int i = 0; i < IMP_MACRO_REFS_MAX; i++)
		str_appends(&in, "%{zero}");
	CHECK_INTEQ(macro_expand(g, str_cstr(&in), NULL, &out), 0);
	CHECK_STREQ(out, "");
	free(out);
	str_appends(&in, "%{zero}");
	CHECK_INTEQ(macro_expand(g, str_cstr(&in), NULL, &out), -E2BIG);
	CHECK(out == NULL);
	/* The output budget: exactly IMP_MACRO_OUT_MAX bytes pass. */
	str_clear(&in);
	for (int i = 0; i < IMP_MACRO_OUT_MAX; i++)
		str_appendc(&in, 'x');
	CHECK_INTEQ(macro_expand(g, str_cstr(&in), NULL, &out), 0);
	CHECK(out != NULL && strlen(out) == IMP_MACRO_OUT_MAX);
	free(out);
	str_appendc(&in, 'x');
	CHECK_INTEQ(macro_expand(g, str_cstr(&in), NULL, &out), -E2BIG);
	CHECK(out == NULL);
	str_free(&in);
}

/* test_register - the naming rules, duplicates, flags, building only. */
static void test_register(void)
{
	struct api_gen *g = api_gen_new();
	struct imp_instance *in = api_core_instance(g);
	char name[IMP_MACRO_NAME_MAX + 2];

	CHECK_INTEQ(imp_macro_register(in, "ns:x", 0, x_const, "a"), 0);
	CHECK_INTEQ(imp_macro_register(in, "ns:x", 0, x_const, "b"), -EEXIST);
	CHECK_INTEQ(imp_macro_register(in, "ns:*", 0, x_const, "c"), 0);	/* exact and wildcard coexist */
	CHECK_INTEQ(imp_macro_register(in, "ns:*", 0, x_const, "d"), -EEXIST);
	CHECK_INTEQ(imp_macro_register(in, "ns", 0, x_const, "e"), 0);	/* a plain name of the same word */
	CHECK_INTEQ(imp_macro_register(in, "ns:a:b", 0, x_const, "f"), 0);
	CHECK_INTEQ(imp_macro_register(in, "ns:a*", 0, x_const, "g"), 0);	/* only ":*" is a wildcard */
	static const char *const bad[] = {
		"", ":x", "x:", ":", ":*", "*", "a}b", "a{b", "a%b", "a\tb", "a\x7f",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imp_macro_register(in, bad[i], 0, x_const, "x") != -EINVAL) {
			fprintf(stderr, "bad name \"%s\" accepted\n", bad[i]);
			check_failures++;
		}
	}
	memset(name, 'a', sizeof(name));
	name[IMP_MACRO_NAME_MAX] = '\0';
	CHECK_INTEQ(imp_macro_register(in, name, 0, x_const, "x"), 0);
	name[IMP_MACRO_NAME_MAX] = 'a';
	name[IMP_MACRO_NAME_MAX + 1] = '\0';
	CHECK_INTEQ(imp_macro_register(in, name, 0, x_const, "x"), -EINVAL);
	CHECK_INTEQ(imp_macro_register(in, "f1", 0x1000, x_const, "x"), -EINVAL);
	CHECK_INTEQ(imp_macro_register(in, "f2", 0, NULL, NULL), -EINVAL);
	CHECK_INTEQ(imp_macro_register(NULL, "f3", 0, x_const, "x"), -EINVAL);
	CHECK_INTEQ(imp_macro_register(in, NULL, 0, x_const, "x"), -EINVAL);

	/* Exact wins over the wildcard; the wildcard takes the rest; lookups after freeze. */
	api_gen_freeze(g);
	CHECK_INTEQ(imp_macro_register(in, "late", 0, x_const, "x"), -EINVAL);
	char *out;
	CHECK_INTEQ(macro_expand(g, "%{ns:x}%{ns:y}%{ns}%{ns:a:b}%{ns:a*}%{ns:a}%{ns:}", NULL, &out), 1);
	CHECK_STREQ(out, "acefgc");
	free(out);
	api_gen_release(g);
}

/* test_needs - what a string needs, from the expanders it names. */
static void test_needs(struct api_gen *g)
{
	CHECK_INTEQ(macro_needs(g, ""), 0);
	CHECK_INTEQ(macro_needs(g, "%{msg:id}"), IMP_MACRO_NEEDS_MESSAGE);
	CHECK_INTEQ(macro_needs(g, "%{w:x}"), IMP_MACRO_NEEDS_CONN);
	CHECK_INTEQ(macro_needs(g, "%{w:x} %{msg:id}"), IMP_MACRO_NEEDS_CONN | IMP_MACRO_NEEDS_MESSAGE);
	CHECK_INTEQ(macro_needs(g, "%{w:special}"), 0);	/* the exact one needs nothing */
	CHECK_INTEQ(macro_needs(g, "%{w:}"), 0);
	CHECK_INTEQ(macro_needs(g, "%%{msg:id}"), 0);
	CHECK_INTEQ(macro_needs(g, "%{d} %{nope}"), 0);
	CHECK_INTEQ(macro_needs(g, "%{msg:id"), -EINVAL);
	CHECK_INTEQ(macro_needs(g, NULL), -EINVAL);
	CHECK_INTEQ(macro_needs(NULL, "%{msg:id}"), 0);
	/* The public call uses the current generation. */
	CHECK_INTEQ(imp_macro_needs("%{msg:id}"), 0);
	struct api_gen *prev = api_gen_enter(g);
	CHECK_INTEQ(imp_macro_needs("%{msg:id}"), IMP_MACRO_NEEDS_MESSAGE);
	api_gen_leave(prev);
}

/* test_current - no current generation: vars only; enter/leave nest. */
static void test_current(struct api_gen *g)
{
	char *out;

	CHECK(api_gen_current() == NULL);
	CHECK_INTEQ(imp_macro_expand("%{msg:id}/%{d}", &vctx, &out), 1);
	CHECK_STREQ(out, "/example.com");
	free(out);
	struct api_gen *p0 = api_gen_enter(g);
	CHECK(p0 == NULL);
	struct api_gen *p1 = api_gen_enter(NULL);
	CHECK(p1 == g);
	CHECK_INTEQ(imp_macro_expand("%{msg:id}", NULL, &out), 1);
	free(out);
	api_gen_leave(p1);
	CHECK(api_gen_current() == g);
	CHECK_INTEQ(imp_macro_expand("%{msg:id}", NULL, &out), 0);
	CHECK_STREQ(out, "ID1");
	free(out);
	/* An expander always gets a ctx, the caller's or an empty one. */
	seen_ctx = NULL;
	CHECK_INTEQ(imp_macro_expand("%{ctx}", NULL, &out), 0);
	CHECK(seen_ctx != NULL && seen_ctx->session == NULL && seen_ctx->nvars == 0);
	free(out);
	CHECK_INTEQ(imp_macro_expand("%{ctx}", &vctx, &out), 0);
	CHECK(seen_ctx == &vctx);
	free(out);
	api_gen_leave(p0);
	CHECK(api_gen_current() == NULL);
	CHECK_INTEQ(imp_macro_expand(NULL, NULL, &out), -EINVAL);
	CHECK(out == NULL);
	CHECK_INTEQ(imp_macro_expand("x", NULL, NULL), -EINVAL);
}

/* test_builtins - the core's expanders, in a generation attached to a configuration. */
static void test_builtins(void)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_string("Hostname = \"mx.example.net\"\n", "t.conf", &err);
	char *out;

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		str_free(&err);
		return;
	}
	struct api_gen *g = api_gen_new();
	api_builtins_register(g);
	/* A module cannot take a built-in's name. */
	CHECK_INTEQ(imp_macro_register(api_core_instance(g), "hostname", 0, x_const, "x"), -EEXIST);
	api_gen_freeze(g);
	api_gen_attach(g, c);

	struct api_gen *prev = api_gen_enter(g);
	CHECK_INTEQ(imp_macro_expand("mail.%{hostname}", NULL, &out), 0);
	CHECK_STREQ(out, "mail.mx.example.net");
	free(out);

	time_t before = time(NULL);
	CHECK_INTEQ(imp_macro_expand("%{time:unix}", NULL, &out), 0);
	time_t after = time(NULL);
	char *end;
	long long t = strtoll(out, &end, 10);
	CHECK(*end == '\0' && t >= before && t <= after);
	free(out);

	CHECK_INTEQ(imp_macro_expand("%{time:rfc2822}", NULL, &out), 0);
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	char *rest = strptime(out, "%a, %d %b %Y %H:%M:%S", &tm);
	CHECK(rest != NULL && (rest[0] == ' ' && (rest[1] == '+' || rest[1] == '-')));
	free(out);
	CHECK_INTEQ(imp_macro_needs("%{hostname}%{time:unix}"), 0);
	CHECK_INTEQ(imp_macro_expand("%{time:}", NULL, &out), 1);
	free(out);
	api_gen_leave(prev);
	conf_unref(c);		/* releases g */
	str_free(&err);
}

int main(void)
{
	struct api_gen *g = test_gen();

	test_table(g);
	test_names(g);
	test_depth(g);
	test_refs(g);
	test_register();
	test_needs(g);
	test_current(g);
	test_builtins();
	api_gen_release(g);
	return check_done();
}
