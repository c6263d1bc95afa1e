/*
 * bounce_override.c - classify replies by regular expressions from a file
 * (module bounce_override, Momentum's bounce_classifier_override)
 *
 * Each instance reads `file`, lines of "<class code> <regex>" (format and
 * limits in override_rules.h), and subscribes to the classify hook before
 * the built-in rules: the first expression that matches the reply text
 * decides the class; when none matches the built-in rules (or a later
 * subscriber) do. Classes the files name may be new ones, declared with
 * the `classes` option or a `classes_file` ("<code> <name>[: <description>]")
 * and registered with imp_bounce_class_register. `domains` limits the
 * instance to some routing domains. docs/modules/bounce_override.md is
 * the user's page.
 *
 * Ownership. Everything an instance holds is built in init (scheduler
 * thread) and read-only afterwards; the hook runs on any thread that
 * classifies and only reads it (glibc's regexec is thread-safe on a
 * compiled expression). fini frees it. A reload reads the files again: a
 * new generation, a new instance, the old one ends with its generation.
 *
 * Failures. Everything that can be wrong is found in init and refuses the
 * generation with the file and line: an unreadable file, a bad line, a bad
 * expression, a class that is neither built in nor declared, a declared
 * class whose code is taken by another name. At run time nothing fails.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <impetus/impetus.h>

#include "override_rules.h"

/* Larger files are refused: rules are a few hundred lines, not a data set. */
#define BO_FILE_MAX (16u << 20)

static const struct imp_option options[] = {
	{ "file", IMP_OPT_STRING, NULL, 0, 0, true,
	  "file of \"<class code> <regex>\" lines, the first match decides" },
	{ "classes", IMP_OPT_LIST, NULL, 0, 0, false,
	  "new classes: ( \"<code> <name>[: <description>]\" ... )" },
	{ "classes_file", IMP_OPT_STRING, NULL, 0, 0, false,
	  "file of \"<code> <name>[: <description>]\" lines declaring new classes" },
	{ "domains", IMP_OPT_LIST, NULL, 0, 0, false,
	  "only replies for these routing domains (default: all)" },
	{ "case_sensitive", IMP_OPT_BOOL, "false", 0, 0, false,
	  "match the expressions case-sensitively" },
};

struct bo_state {
	struct imp_instance *inst;
	const char *file;		/* the option's string: lives as long as the instance */
	struct ovr_rules rules;
	const char *const *domains;	/* the option's list */
	size_t ndomains;
};

/* read_file - the whole file into a malloc()ed buffer; 0 or -1 after imp_error_set. */
static int read_file(const char *path, char **out, size_t *len, struct imp_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL) {
		imp_error_set(err, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			char *b = realloc(buf, cap);
			if (b == NULL) {
				imp_error_set(err, "%s: out of memory", path);
				goto fail;
			}
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n > BO_FILE_MAX) {
			imp_error_set(err, "%s: larger than %u bytes", path, BO_FILE_MAX);
			goto fail;
		}
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		imp_error_set(err, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

/* declare - register one class; 0 or -1 after imp_error_set (where names the source). */
static int declare(const struct ovr_class *c, const char *where, struct imp_error *err)
{
	int rc = imp_bounce_class_register(c->code, c->name, c->desc);

	if (rc == -EEXIST) {
		const char *now = imp_bounce_class_name(c->code);
		imp_error_set(err, "%s: class %d \"%s\": the code is taken by \"%s\"%s", where,
			      c->code, c->name, now ? now : "?",
			      now && strcmp(now, c->name) == 0 ? " with another description" : "");
		return -1;
	}
	if (rc < 0) {
		imp_error_set(err, "%s: class %d \"%s\" refused (error %d)", where, c->code, c->name,
			      rc);
		return -1;
	}
	return 0;
}

struct classes_ctx {
	const char *path;
	struct imp_error *err;
	bool registered_error;		/* the error is set already (not a parse error) */
};

/* class_line - one line of classes_file. */
static int class_line(void *arg, unsigned lineno, char *line, char *why, size_t whysize)
{
	struct classes_ctx *ctx = arg;
	struct ovr_class c;
	char where[512];

	if (ovr_class_parse(line, &c, why, whysize) < 0)
		return -1;
	snprintf(where, sizeof(where), "%s:%u", ctx->path, lineno);
	if (declare(&c, where, ctx->err) < 0) {
		ctx->registered_error = true;
		snprintf(why, whysize, "class %d refused", c.code);
		return -1;
	}
	return 0;
}

/* declare_classes - the `classes` option, then `classes_file`; 0 or -1 after imp_error_set. */
static int declare_classes(struct imp_instance *inst, struct imp_error *err)
{
	size_t n;
	const char *const *list = imp_option_list(inst, "classes", &n);
	char why[512];

	for (size_t i = 0; i < n; i++) {
		struct ovr_class c;
		if (ovr_class_parse(list[i], &c, why, sizeof(why)) < 0) {
			imp_error_set(err, "classes \"%s\": %s", list[i], why);
			return -1;
		}
		if (declare(&c, "classes", err) < 0)
			return -1;
	}
	const char *path = imp_option_string(inst, "classes_file");
	if (path == NULL)
		return 0;
	char *text;
	size_t len;
	if (read_file(path, &text, &len, err) < 0)
		return -1;
	struct classes_ctx ctx = { path, err, false };
	int rc = ovr_lines(text, len, class_line, &ctx, why, sizeof(why));
	free(text);
	if (rc < 0 && !ctx.registered_error)
		imp_error_set(err, "%s: %s", path, why);
	return rc;
}

/* bo_classify - the classify hook: the first matching expression's class, or 0. */
static int bo_classify(void *closure, int code, const char *status, const char *text,
		       const char *domain)
{
	const struct bo_state *st = closure;
	unsigned line = 0;

	(void)status;
	if (st->ndomains > 0) {
		size_t i;
		for (i = 0; i < st->ndomains; i++)
			if (strcasecmp(st->domains[i], domain) == 0)
				break;
		if (i == st->ndomains)
			return 0;
	}
	int cls = ovr_rules_match(&st->rules, text, &line);
	if (cls > 0)
		imp_log_debug(st->inst, 2, "class=%d rule=%s:%u domain=%s code=%d", cls, st->file,
			      line, domain, code);
	return cls;
}

static void bo_free(struct bo_state *st)
{
	ovr_rules_free(&st->rules);
	free(st);
}

static int bo_init(struct imp_instance *inst, struct imp_error *err)
{
	struct bo_state *st = calloc(1, sizeof(*st));
	char *text = NULL;
	size_t len;
	char why[600];

	if (st == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	st->inst = inst;
	st->file = imp_option_string(inst, "file");
	st->domains = imp_option_list(inst, "domains", &st->ndomains);
	if (declare_classes(inst, err) < 0)
		goto fail;
	if (read_file(st->file, &text, &len, err) < 0)
		goto fail;
	if (ovr_rules_parse(&st->rules, text, len, !imp_option_bool(inst, "case_sensitive"), why,
			    sizeof(why)) < 0) {
		imp_error_set(err, "%s: %s", st->file, why);
		goto fail;
	}
	for (size_t i = 0; i < st->rules.n; i++) {
		if (imp_bounce_class_name(st->rules.v[i].code) == NULL) {
			imp_error_set(err, "%s:%u: class %d is neither built in nor declared in "
				      "classes or classes_file", st->file, st->rules.v[i].line,
				      st->rules.v[i].code);
			goto fail;
		}
	}
	if (imp_hook_classify(inst, bo_classify, st, IMP_ORDER_DEFAULT) < 0) {
		imp_error_set(err, "cannot subscribe to the classify hook");
		goto fail;
	}
	free(text);
	imp_instance_set_data(inst, st);
	imp_log_debug(inst, 1, "file=%s rules=%zu domains=%zu", st->file, st->rules.n,
		      st->ndomains);
	return 0;
fail:
	free(text);
	bo_free(st);
	return -1;
}

static void bo_fini(struct imp_instance *inst)
{
	bo_free(imp_instance_data(inst));
}

IMP_MODULE_DEFINE(.name = "bounce_override", .version = "1.0",
		  .description = "classify bounce replies by regular expressions from a file",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = bo_init, .fini = bo_fini);
