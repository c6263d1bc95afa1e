/*
 * mime_fix.c - break over-long lines as the MIME structure allows
 *
 * See mime_fix.h for the contract. The fixer holds back at most one line
 * of MIME_FIX_LIMIT + 1 octets: a line that ends before that is copied
 * unchanged; one that does not is, from then on, streamed through the
 * breaker chosen for where it stands (header, quoted-printable body,
 * base64 body, anything else). Every complete line, long or not, is also
 * given to the structure walker, which follows header sections and
 * multipart boundaries. Everything belongs to the caller's thread; the
 * only failure is running out of memory (xmalloc aborts).
 */
#include "message/mime_fix.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* ------------------------------------------------------------------ */
/* field values                                                        */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* skip_wsp - past blanks (the caller's value has no line ends left in it). */
static const char *skip_wsp(const char *p, const char *end)
{
	while (p < end && is_wsp(*p))
		p++;
	return p;
}

/* is_tspecial_end - where a token ends (RFC 2045 5.1 tspecials that matter here). */
static bool token_end(char c)
{
	return is_wsp(c) || c == ';' || c == '(' || c == '"' || c == '\r' || c == '\n';
}

/*
 * mime_fix_boundary - "multipart/<sub> *(; name=value)": the boundary
 * parameter's value, quoted-string unquoted (a backslash keeps the next
 * octet). A parameter is found by its name, case-insensitively; the first
 * boundary wins. Comments and RFC 2231 continuations are not understood
 * (then there is no boundary and the body is text to us).
 */
bool mime_fix_boundary(const char *value, size_t len, char out[MIME_FIX_BOUNDARY + 1])
{
	const char *p = value, *end = value + len;

	p = skip_wsp(p, end);
	if ((size_t)(end - p) < 10 || strncasecmp(p, "multipart/", 10) != 0)
		return false;
	for (;;) {
		/* to the next ";" outside quotes */
		bool q = false;
		while (p < end && (q || *p != ';')) {
			if (*p == '"')
				q = !q;
			else if (q && *p == '\\' && p + 1 < end)
				p++;
			p++;
		}
		if (p >= end)
			return false;
		p = skip_wsp(p + 1, end);
		const char *name = p;
		while (p < end && *p != '=' && !token_end(*p))
			p++;
		size_t nl = (size_t)(p - name);
		p = skip_wsp(p, end);
		if (p >= end || *p != '=')
			continue;
		p = skip_wsp(p + 1, end);
		if (nl != 8 || strncasecmp(name, "boundary", 8) != 0)
			continue;

		size_t n = 0;
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				if (n == MIME_FIX_BOUNDARY)
					return false;
				out[n++] = *p;
			}
			if (p >= end)
				return false;	/* no closing quote */
		} else {
			for (; p < end && !token_end(*p); p++) {
				if (n == MIME_FIX_BOUNDARY)
					return false;
				out[n++] = *p;
			}
		}
		out[n] = '\0';
		return n > 0;
	}
}

/* mime_fix_cte_of - the mechanism token, case-insensitively; unknown ones are text. */
enum mime_fix_cte mime_fix_cte_of(const char *value, size_t len)
{
	const char *p = value, *end = value + len, *t;

	p = skip_wsp(p, end);
	for (t = p; t < end && !token_end(*t); t++)
		;
	size_t n = (size_t)(t - p);
	if (n == 16 && strncasecmp(p, "quoted-printable", 16) == 0)
		return MIME_CTE_QP;
	if (n == 6 && strncasecmp(p, "base64", 6) == 0)
		return MIME_CTE_BASE64;
	return MIME_CTE_TEXT;
}

/* ------------------------------------------------------------------ */
/* the structure walker                                                */

/* entity_start - a part's header section begins (defaults of RFC 2045). */
static void entity_start(struct mime_fix *f)
{
	f->in_headers = true;
	f->cte = MIME_CTE_TEXT;
	f->multipart = false;
	f->boundary[0] = '\0';
	str_clear(&f->field);
	f->field_over = false;
}

/* field_end - interpret the gathered header field, if it is one we need. */
static void field_end(struct mime_fix *f)
{
	const char *s = f->field.s;
	size_t n = f->field.len;
	const char *colon = n ? memchr(s, ':', n) : NULL;

	if (colon && !f->field_over) {
		size_t nl = (size_t)(colon - s);
		const char *v = colon + 1;
		size_t vl = n - nl - 1;

		while (nl > 0 && is_wsp(s[nl - 1]))
			nl--;
		if (nl == 12 && strncasecmp(s, "Content-Type", 12) == 0)
			f->multipart = mime_fix_boundary(v, vl, f->boundary);
		else if (nl == 25 && strncasecmp(s, "Content-Transfer-Encoding", 25) == 0)
			f->cte = mime_fix_cte_of(v, vl);
	}
	str_clear(&f->field);
	f->field_over = false;
}

/* field_add - a header line (the field's first or a continuation) joins the field. */
static void field_add(struct mime_fix *f, const char *s, size_t n, bool was_long)
{
	if (was_long || f->field.len + n > MIME_FIX_FIELD)
		f->field_over = true;
	else
		str_append(&f->field, s, n);
}

/*
 * headers_end - the empty line after a header section: a multipart with
 * a boundary opens a level (its preamble is text); any other entity's
 * body is read with its own encoding.
 */
static void headers_end(struct mime_fix *f)
{
	f->in_headers = false;
	if (f->multipart && f->depth < MIME_FIX_DEPTH) {
		f->bounds[f->depth++] = xstrdup(f->boundary);
		f->cte = MIME_CTE_TEXT;
	}
}

/* only_wsp - whether s[0..n) is all blanks (transport padding after a delimiter). */
static bool only_wsp(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_wsp(s[i]))
			return false;
	return true;
}

/*
 * body_line - a body line: a delimiter of an open multipart (innermost
 * first; an outer one closes the inner ones, RFC 2046 5.1.2 asks for
 * robustness there) starts a part or, with "--", ends that multipart,
 * whose epilogue is text. Anything else leaves the state alone.
 */
static void body_line(struct mime_fix *f, const char *s, size_t n)
{
	if (f->depth == 0 || n < 3 || s[0] != '-' || s[1] != '-')
		return;
	for (int i = f->depth - 1; i >= 0; i--) {
		size_t bl = strlen(f->bounds[i]);

		if (n < 2 + bl || memcmp(s + 2, f->bounds[i], bl) != 0)
			continue;
		const char *r = s + 2 + bl;
		size_t rn = n - 2 - bl;
		bool close = rn >= 2 && r[0] == '-' && r[1] == '-';
		if (close) {
			r += 2;
			rn -= 2;
		}
		if (!only_wsp(r, rn))
			continue;
		while (f->depth > i + 1)
			free(f->bounds[--f->depth]);
		if (close) {
			free(f->bounds[--f->depth]);
			f->in_headers = false;
			f->cte = MIME_CTE_TEXT;
		} else {
			entity_start(f);
		}
		return;
	}
}

/* walk_line - one complete line (its first octets) through the walker. */
static void walk_line(struct mime_fix *f, const char *s, size_t n, bool was_long)
{
	if (!f->in_headers) {
		if (!was_long)
			body_line(f, s, n);
		return;
	}
	if (n == 0) {
		field_end(f);
		headers_end(f);
	} else if (is_wsp(s[0])) {
		field_add(f, s, n, was_long);
	} else {
		field_end(f);
		field_add(f, s, n, was_long);
	}
}

/* ------------------------------------------------------------------ */
/* the breakers                                                        */

/*
 * wrap_put - n octets written with brk (CRLF, or CRLF SPACE for a
 * folded line) before any octet that would pass column limit; the
 * octets of brk after its CRLF count towards the new line.
 */
static void wrap_put(struct mime_fix *f, const char *s, size_t n, size_t limit, const char *brk,
		     struct str *out)
{
	size_t brk_len = strlen(brk);

	while (n > 0) {
		if (f->out_len >= limit) {
			str_append(out, brk, brk_len);
			f->out_len = brk_len - 2;
		}
		size_t k = limit - f->out_len;
		if (k > n)
			k = n;
		str_append(out, s, k);
		f->out_len += k;
		s += k;
		n -= k;
	}
}

/*
 * long_put - octets of a line past MIME_FIX_LIMIT (and, first, the held
 * part of it), broken by mode. A break is written only when an octet
 * follows it, so no line ends in a break of ours.
 */
static void long_put(struct mime_fix *f, const char *s, size_t n, struct str *out)
{
	switch (f->mode) {
	case MIME_CTE_TEXT:
		/* CRLF SPACE after octet MIME_FIX_LIMIT of each output line */
		wrap_put(f, s, n, MIME_FIX_LIMIT, "\r\n ", out);
		break;
	case MIME_CTE_BASE64:
		wrap_put(f, s, n, MIME_FIX_WRAP, "\r\n", out);
		break;
	case MIME_CTE_QP:
		/*
		 * At most MIME_FIX_WRAP - 1 octets, then "=": an "=XX"
		 * escape (or what stands for one, well formed or not) is
		 * never cut, so decoding gives the same octets.
		 */
		for (size_t i = 0; i < n; i++) {
			char c = s[i];

			if (f->qp_esc > 0) {
				f->qp_esc--;
			} else {
				size_t unit = c == '=' ? 3 : 1;
				if (f->out_len + unit > MIME_FIX_WRAP - 1) {
					str_append(out, "=\r\n", 3);
					f->out_len = 0;
				}
				if (c == '=')
					f->qp_esc = 2;
			}
			str_appendc(out, c);
			f->out_len++;
		}
		break;
	}
}

/* put - content octets of the current line: held back, or streamed once it is long. */
static void put(struct mime_fix *f, const char *s, size_t n, struct str *out)
{
	if (f->long_line) {
		long_put(f, s, n, out);
		return;
	}
	size_t room = MIME_FIX_LIMIT + 1 - f->line.len;
	size_t k = n < room ? n : room;

	str_append(&f->line, s, k);
	if (f->line.len <= MIME_FIX_LIMIT)
		return;
	/* Past the limit: break it, as its place in the structure says. */
	f->long_line = true;
	f->broken++;
	f->mode = f->in_headers ? MIME_CTE_TEXT : f->cte;
	f->out_len = 0;
	f->qp_esc = 0;
	long_put(f, f->line.s, f->line.len, out);
	long_put(f, s + k, n - k, out);
}

/* line_done - CRLF: write the line out and give it to the walker. */
static void line_done(struct mime_fix *f, struct str *out)
{
	if (!f->long_line)
		str_append(out, f->line.s, f->line.len);
	str_append(out, "\r\n", 2);
	walk_line(f, f->line.s, f->line.len, f->long_line);
	str_clear(&f->line);
	f->long_line = false;
	f->out_len = 0;
	f->qp_esc = 0;
}

/* ------------------------------------------------------------------ */
/* the interface                                                       */

void mime_fix_init(struct mime_fix *f)
{
	memset(f, 0, sizeof(*f));
	str_init(&f->line);
	str_init(&f->field);
	entity_start(f);
}

void mime_fix_feed(struct mime_fix *f, const char *p, size_t n, struct str *out)
{
	const char *end = p + n;

	while (p < end) {
		if (f->cr) {
			f->cr = false;
			if (*p == '\n') {
				line_done(f, out);
				p++;
				continue;
			}
			put(f, "\r", 1, out);	/* a bare CR is content here */
		}
		const char *q = memchr(p, '\r', (size_t)(end - p));
		const char *stop = q ? q : end;

		put(f, p, (size_t)(stop - p), out);
		p = stop;
		if (q) {
			f->cr = true;
			p++;
		}
	}
}

void mime_fix_finish(struct mime_fix *f, struct str *out)
{
	if (f->cr) {
		f->cr = false;
		put(f, "\r", 1, out);
	}
	if (!f->long_line)
		str_append(out, f->line.s, f->line.len);
	str_clear(&f->line);
	f->long_line = false;
	f->out_len = 0;
	f->qp_esc = 0;
}

void mime_fix_free(struct mime_fix *f)
{
	while (f->depth > 0)
		free(f->bounds[--f->depth]);
	str_free(&f->line);
	str_free(&f->field);
}
