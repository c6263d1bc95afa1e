/*
 * override_rules.c - reading the bounce_override files (see override_rules.h)
 *
 * The regular expressions are POSIX extended (regcomp(3) with
 * REG_EXTENDED | REG_NOSUB), compiled once when the module's instance
 * starts; glibc's regexec may be called from several threads on one
 * compiled expression. Bounded repetitions make regcomp build a copy of
 * the repeated part per count, so a pattern like (a{255}){255} costs a lot
 * of memory: every {n,m} bound must be at most OVR_REPEAT_MAX and the
 * product of a pattern's bounds at most OVR_REPEAT_PRODUCT, refused with
 * a clear error otherwise (a file is configuration, but a mistyped one
 * must not take the daemon's memory).
 *
 * Nothing here keeps state; all memory is the caller's struct.
 */
#include "override_rules.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVR_REPEAT_PRODUCT 65536

/* fail - write why into err; returns -1. */
static int fail(char *err, size_t errsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
	return -1;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int ovr_lines(const char *text, size_t len, ovr_line_fn fn, void *arg, char *err, size_t errsize)
{
	char line[OVR_LINE_MAX + 1];
	size_t pos = 0;
	unsigned lineno = 0;

	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - start) : len - pos;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (memchr(start, '\0', n))
			return fail(err, errsize, "line %u: NUL byte", lineno);
		while (n > 0 && blank(start[0])) {
			start++;
			n--;
		}
		while (n > 0 && blank(start[n - 1]))
			n--;
		if (n == 0 || start[0] == '#')
			continue;
		if (n > OVR_LINE_MAX)
			return fail(err, errsize, "line %u: longer than %d bytes", lineno,
				    OVR_LINE_MAX);
		memcpy(line, start, n);
		line[n] = '\0';
		char why[512];
		why[0] = '\0';
		if (fn(arg, lineno, line, why, sizeof(why)) < 0)
			return fail(err, errsize, "line %u: %s", lineno, why);
	}
	return 0;
}

/* parse_code - the class code at *p (1..OVR_CODE_MAX), advancing past it; -1 if none. */
static int parse_code(const char **p)
{
	const char *s = *p;
	long v = 0;
	int digits = 0;

	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (*s++ - '0');
		if (++digits > 6)
			return -1;
	}
	if (digits == 0 || v < 1 || v > OVR_CODE_MAX)
		return -1;
	*p = s;
	return (int)v;
}

/*
 * check_repeats - refuse {n,m} bounds that would make regcomp huge (see
 * the file header). Escapes and bracket expressions are skipped, so a
 * literal brace in [{] is not read as a bound.
 */
static int check_repeats(const char *re, char *err, size_t errsize)
{
	uint64_t product = 1;
	bool after_quantifier = false;	/* the previous token was *, +, ? or {..} */

	for (const char *p = re; *p; p++) {
		bool quantifier = *p == '*' || *p == '+' || *p == '?' || *p == '{';
		if (quantifier && after_quantifier)
			return fail(err, errsize, "a quantifier right after another (\"%c\" at offset %zu): "
				    "undefined in POSIX, and glibc's matcher takes exponential time on it",
				    *p, (size_t)(p - re));
		after_quantifier = quantifier;
		if (*p == '\\') {
			if (p[1])
				p++;
			continue;
		}
		if (*p == '[') {
			/* ']' right after '[' or '[^' is a member, not the end. */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					char close = p[1];
					const char *q = p + 2;
					while (*q && !(q[0] == close && q[1] == ']'))
						q++;
					p = *q ? q + 1 : q;
					if (!*p)
						break;
				}
				p++;
			}
			if (!*p)
				break;
			continue;
		}
		if (*p != '{')
			continue;
		/* {n}, {n,} or {n,m}: the largest number given is the bound. */
		uint64_t bound = 0;
		for (const char *q = p + 1; *q && *q != '}'; q++) {
			if (!isdigit((unsigned char)*q))
				continue;
			uint64_t v = 0;
			while (isdigit((unsigned char)*q) && v <= OVR_REPEAT_MAX)
				v = v * 10 + (uint64_t)(*q++ - '0');
			if (v > OVR_REPEAT_MAX)
				return fail(err, errsize, "repetition bound above %d", OVR_REPEAT_MAX);
			if (v > bound)
				bound = v;
			q--;
		}
		while (*p && *p != '}')
			p++;
		if (!*p)
			break;
		if (bound > 1) {
			product *= bound;
			if (product > OVR_REPEAT_PRODUCT)
				return fail(err, errsize, "repetition bounds multiply to more than %d",
					    OVR_REPEAT_PRODUCT);
		}
	}
	return 0;
}

struct rules_ctx {
	struct ovr_rules *rules;
	int cflags;
};

/* rule_line - "<code> <regex>" into the next rule. */
static int rule_line(void *arg, unsigned lineno, char *line, char *err, size_t errsize)
{
	struct rules_ctx *ctx = arg;
	const char *p = line;
	int code = parse_code(&p);

	if (code < 0)
		return fail(err, errsize, "expected a class code (1 to %d) first", OVR_CODE_MAX);
	if (!blank(*p))
		return fail(err, errsize, "expected white space after the class code");
	while (blank(*p))
		p++;
	if (*p == '\0')
		return fail(err, errsize, "no regular expression after class %d", code);
	if (strlen(p) > OVR_PATTERN_MAX)
		return fail(err, errsize, "regular expression longer than %d bytes", OVR_PATTERN_MAX);
	if (check_repeats(p, err, errsize) < 0)
		return -1;

	struct ovr_rules *r = ctx->rules;
	struct ovr_rule *v = realloc(r->v, (r->n + 1) * sizeof(*v));
	if (v == NULL)
		return fail(err, errsize, "out of memory");
	r->v = v;
	int rc = regcomp(&v[r->n].re, p, ctx->cflags);
	if (rc != 0) {
		char msg[200];
		regerror(rc, &v[r->n].re, msg, sizeof(msg));
		/* regcomp leaves nothing to free when it fails. */
		return fail(err, errsize, "bad regular expression: %s", msg);
	}
	v[r->n].code = code;
	v[r->n].line = lineno;
	r->n++;
	return 0;
}

int ovr_rules_parse(struct ovr_rules *rules, const char *text, size_t len, bool icase,
		    char *err, size_t errsize)
{
	struct rules_ctx ctx = { rules, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0) };

	if (ovr_lines(text, len, rule_line, &ctx, err, errsize) < 0) {
		ovr_rules_free(rules);
		return -1;
	}
	return 0;
}

int ovr_rules_match(const struct ovr_rules *rules, const char *text, unsigned *line)
{
	for (size_t i = 0; i < rules->n; i++) {
		if (regexec(&rules->v[i].re, text, 0, NULL, 0) == 0) {
			if (line)
				*line = rules->v[i].line;
			return rules->v[i].code;
		}
	}
	return 0;
}

void ovr_rules_free(struct ovr_rules *rules)
{
	for (size_t i = 0; i < rules->n; i++)
		regfree(&rules->v[i].re);
	free(rules->v);
	rules->v = NULL;
	rules->n = 0;
}

/* printable_text - copy s (trimmed) into out; false for control bytes or overflow. */
static bool printable_text(const char *s, size_t n, char *out, size_t size)
{
	while (n > 0 && blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && blank(s[n - 1]))
		n--;
	if (n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
			return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

int ovr_class_parse(const char *spec, struct ovr_class *c, char *err, size_t errsize)
{
	const char *p = spec;

	while (blank(*p))
		p++;
	c->code = parse_code(&p);
	if (c->code < 0)
		return fail(err, errsize, "expected a class code (1 to %d) first", OVR_CODE_MAX);
	if (!blank(*p))
		return fail(err, errsize, "expected white space and a name after class %d", c->code);
	const char *colon = strchr(p, ':');
	size_t nlen = colon ? (size_t)(colon - p) : strlen(p);
	if (!printable_text(p, nlen, c->name, sizeof(c->name)))
		return fail(err, errsize, "class %d: the name must be printable and at most %d bytes",
			    c->code, OVR_NAME_MAX);
	if (c->name[0] == '\0')
		return fail(err, errsize, "class %d has no name", c->code);
	c->desc[0] = '\0';
	if (colon && !printable_text(colon + 1, strlen(colon + 1), c->desc, sizeof(c->desc)))
		return fail(err, errsize, "class %d: the description must be printable and at most "
			    "%d bytes", c->code, OVR_DESC_MAX);
	return 0;
}
