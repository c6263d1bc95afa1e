/*
 * test_mime_fix.c - the MIME-aware long-line fixer (RFC2822_Max_Line_Length = fix)
 *
 * Checked against decoders written here, not against the fixer's own
 * idea of itself: a quoted-printable part decodes to the same octets
 * before and after, a base64 part too (line breaks skipped), text and
 * headers unfold (CRLF SPACE removed) to the original; no output line
 * passes 998 octets; lines of 998 and less are never touched; the result
 * does not depend on how the input is cut into pieces. Plus the field
 * parsers (boundary, Content-Transfer-Encoding) at their edges.
 * tests/fuzz/fuzz_mime_fix.c checks the same properties on generated input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/str.h"
#include "message/mime_fix.h"

/* fix_all - the fixer over msg, fed in pieces of step octets (0: at once). */
static void fix_all(const char *msg, size_t len, size_t step, struct str *out)
{
	struct mime_fix f;

	mime_fix_init(&f);
	str_clear(out);
	if (step == 0) {
		mime_fix_feed(&f, msg, len, out);
	} else {
		for (size_t i = 0; i < len; i += step)
			mime_fix_feed(&f, msg + i, len - i < step ? len - i : step, out);
	}
	mime_fix_finish(&f, out);
	mime_fix_free(&f);
}

/* longest - the longest CRLF-separated line of s. */
static size_t longest(const struct str *s)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < s->len; i++) {
		if (s->s[i] == '\r' && i + 1 < s->len && s->s[i + 1] == '\n') {
			if (cur > best)
				best = cur;
			cur = 0;
			i++;
		} else {
			cur++;
		}
	}
	return cur > best ? cur : best;
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* qp_decode - RFC 2045 6.7: "=" CRLF vanishes, "=XX" is an octet, the rest is itself. */
static void qp_decode(const char *p, size_t n, struct str *out)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '=' && i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
			i += 2;
		} else if (p[i] == '=' && i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
			str_appendc(out, (char)(hexv(p[i + 1]) * 16 + hexv(p[i + 2])));
			i += 2;
		} else {
			str_appendc(out, p[i]);
		}
	}
}

/* strip - s without every occurrence of the pattern pat. */
static void strip(const char *p, size_t n, const char *pat, struct str *out)
{
	size_t pl = strlen(pat);

	for (size_t i = 0; i < n; i++) {
		if (i + pl <= n && memcmp(p + i, pat, pl) == 0) {
			i += pl - 1;
			continue;
		}
		str_appendc(out, p[i]);
	}
}

/* section - the text between marker lines "<tag>\r\n" ... "\r\n--" in s (a part's body). */
static void section(const struct str *s, const char *tag, struct str *out)
{
	const char *a = strstr(s->s, tag);

	str_clear(out);
	if (a == NULL)
		return;
	a += strlen(tag);
	const char *b = strstr(a, "\r\n--");
	str_append(out, a, b ? (size_t)(b - a) : strlen(a));
}

/* test_short_lines_untouched - nothing changes when no line passes 998. */
static void test_short_lines_untouched(void)
{
	struct str msg = STR_INIT, out = STR_INIT;

	str_appends(&msg, "Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	for (int i = 0; i < 998; i++)
		str_appendc(&msg, 'A');
	str_appends(&msg, "\r\nlast line no CRLF\rstill\n it");
	for (size_t step = 0; step < 4; step++) {
		fix_all(msg.s, msg.len, step, &out);
		CHECK_INTEQ(out.len, msg.len);
		CHECK(out.len == msg.len && memcmp(out.s, msg.s, msg.len) == 0);
	}
	str_free(&msg);
	str_free(&out);
}

/* long_of - n octets of a pattern that is easy to recognise after a fold. */
static void long_of(struct str *s, size_t n, const char *alphabet)
{
	size_t k = strlen(alphabet);

	for (size_t i = 0; i < n; i++)
		str_appendc(s, alphabet[(i * 7 + i / 13) % k]);
}

/* qp_of - well-formed quoted-printable text of about n octets (escapes, blanks, plain runs). */
static void qp_of(struct str *s, size_t n)
{
	static const char *const tok[] = { "abc", "=3D", "=C3=A9", " ", "xyz", "=20", ".", "\t", "Gr=C3=BC" };
	size_t i = 0;

	while (s->len < n) {
		str_appends(s, tok[(i * 5 + i / 7) % (sizeof(tok) / sizeof(tok[0]))]);
		i++;
	}
	if (s->s[s->len - 1] == ' ' || s->s[s->len - 1] == '\t')
		str_appendc(s, '.');	/* no blank at the end of an encoded line */
}

/* test_top_level - each encoding of a single-part message. */
static void test_top_level(void)
{
	struct str msg = STR_INIT, out = STR_INIT, a = STR_INIT, b = STR_INIT, line = STR_INIT;

	/* quoted-printable: escapes everywhere, decoding unchanged */
	qp_of(&line, 3000);
	str_appends(&msg, "Content-Transfer-Encoding: Quoted-Printable\r\n\r\n");
	str_append(&msg, line.s, line.len);
	str_appends(&msg, "\r\nshort=\r\nend\r\n");
	for (size_t step = 0; step < 5; step += 2) {
		fix_all(msg.s, msg.len, step * 37, &out);
		CHECK(longest(&out) <= MIME_FIX_WRAP);
		str_clear(&a);
		str_clear(&b);
		qp_decode(msg.s, msg.len, &a);
		qp_decode(out.s, out.len, &b);
		CHECK(a.len == b.len && memcmp(a.s, b.s, a.len) == 0);
	}

	/* base64: re-wrapped at 76, same octets once line breaks are skipped */
	str_clear(&msg);
	str_clear(&line);
	long_of(&line, 5001, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo+/w==");
	str_appends(&msg, "Content-Transfer-Encoding:  BASE64 (ok)\r\n\r\n");
	str_append(&msg, line.s, line.len);
	str_appends(&msg, "\r\n");
	fix_all(msg.s, msg.len, 0, &out);
	CHECK_INTEQ(longest(&out), MIME_FIX_WRAP);
	str_clear(&a);
	str_clear(&b);
	strip(msg.s, msg.len, "\r\n", &a);
	strip(out.s, out.len, "\r\n", &b);
	CHECK(a.len == b.len && memcmp(a.s, b.s, a.len) == 0);

	/* 8bit text and a long header: CRLF SPACE after octet 998 */
	str_clear(&msg);
	str_appends(&msg, "X-Long: ");
	str_append(&msg, line.s, line.len);
	str_appends(&msg, "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
	str_append(&msg, line.s, line.len);
	str_appends(&msg, "\r\n");
	fix_all(msg.s, msg.len, 1, &out);
	CHECK_INTEQ(longest(&out), MIME_FIX_LIMIT);
	str_clear(&b);
	strip(out.s, out.len, "\r\n ", &b);
	CHECK(msg.len == b.len && memcmp(msg.s, b.s, msg.len) == 0);
	/* the fold is right after octet 998 */
	CHECK(out.len > 1001 && memcmp(out.s + 998, "\r\n ", 3) == 0);

	str_free(&msg);
	str_free(&out);
	str_free(&a);
	str_free(&b);
	str_free(&line);
}

/* test_multipart - parts, nesting, preamble and epilogue each broken their own way. */
static void test_multipart(void)
{
	struct str msg = STR_INIT, out = STR_INIT, qp = STR_INIT, b64 = STR_INIT, txt = STR_INIT;
	struct str a = STR_INIT, b = STR_INIT, got = STR_INIT;

	qp_of(&qp, 2500);
	long_of(&b64, 2500, "SGVsbG8gV29ybGQh");
	long_of(&txt, 2500, "plain text, ");
	str_appends(&msg,
		    "From: a@b.example\r\nMIME-Version: 1.0\r\n"
		    "Content-Type: multipart/mixed;\r\n boundary=\"outer; \\\"b\\\"\"\r\n\r\n"
		    "preamble ");
	str_append(&msg, txt.s, txt.len);
	str_appends(&msg, "\r\n--outer; \"b\"\r\n"
			  "Content-Type: text/plain; charset=utf-8\r\n"
			  "Content-Transfer-Encoding: quoted-printable\r\n\r\nQP\r\n");
	str_append(&msg, qp.s, qp.len);
	str_appends(&msg, "\r\n--outer; \"b\"\r\n"
			  "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
			  "--inner\r\nContent-Transfer-Encoding: base64\r\n\r\nB64\r\n");
	str_append(&msg, b64.s, b64.len);
	str_appends(&msg, "\r\n--inner  \r\nContent-Type: text/html\r\n\r\nTXT\r\n");
	str_append(&msg, txt.s, txt.len);
	/* the outer delimiter closes the inner multipart too */
	str_appends(&msg, "\r\n--outer; \"b\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
			  "short\r\n--outer; \"b\"--\r\nepilogue ");
	str_append(&msg, qp.s, qp.len);
	str_appends(&msg, "\r\n");

	for (size_t step = 0; step < 3; step++) {
		fix_all(msg.s, msg.len, step == 0 ? 0 : step == 1 ? 1 : 333, &out);
		CHECK(longest(&out) <= MIME_FIX_LIMIT);

		section(&out, "QP\r\n", &got);
		CHECK(longest(&got) <= MIME_FIX_WRAP);
		str_clear(&a);
		str_clear(&b);
		qp_decode(qp.s, qp.len, &a);
		qp_decode(got.s, got.len, &b);
		CHECK(a.len == b.len && memcmp(a.s, b.s, a.len) == 0);

		section(&out, "B64\r\n", &got);
		str_clear(&b);
		strip(got.s, got.len, "\r\n", &b);
		CHECK(b64.len == b.len && memcmp(b64.s, b.s, b.len) == 0);
		CHECK_INTEQ(longest(&got), MIME_FIX_WRAP);

		section(&out, "TXT\r\n", &got);
		str_clear(&b);
		strip(got.s, got.len, "\r\n ", &b);
		CHECK(txt.len == b.len && memcmp(txt.s, b.s, b.len) == 0);

		/* preamble and epilogue are text: folded, not soft-broken */
		CHECK(strstr(out.s, "preamble ") != NULL);
		const char *ep = strstr(out.s, "epilogue ");
		CHECK(ep != NULL && strstr(ep, "=\r\n") == NULL && strstr(ep, "\r\n ") != NULL);
		/* everything else came through: unfold the text folds, the only other change */
		str_clear(&b);
		strip(out.s, out.len, "\r\n ", &b);
		CHECK(strstr(b.s, "--outer; \"b\"--\r\n") != NULL);
	}
	str_free(&msg);
	str_free(&out);
	str_free(&qp);
	str_free(&b64);
	str_free(&txt);
	str_free(&a);
	str_free(&b);
	str_free(&got);
}

/* test_qp_escape_at_the_edge - an "=XX" that would straddle a break moves whole. */
static void test_qp_escape_at_the_edge(void)
{
	struct str msg = STR_INIT, out = STR_INIT;

	str_appends(&msg, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	for (int i = 0; i < 74; i++)
		str_appendc(&msg, 'x');
	for (int i = 0; i < 400; i++)
		str_appends(&msg, "=C3");
	str_appends(&msg, "\r\n");
	fix_all(msg.s, msg.len, 0, &out);
	/* 74 x, then "=C3" does not fit before the "=": break first */
	const char *body = strstr(out.s, "\r\n\r\n") + 4;
	CHECK(strncmp(body + 74, "=\r\n=C3", 6) == 0);
	for (const char *p = body; (p = strstr(p, "=\r\n")) != NULL; p += 3)
		CHECK(p[3] == '=' || p[3] == 'x');
	str_free(&msg);
	str_free(&out);
}

/* test_fields - the boundary and encoding parsers. */
static void test_fields(void)
{
	static const struct {
		int line;
		const char *value;
		const char *boundary;	/* NULL: none */
	} cases[] = {
		{ __LINE__, "multipart/mixed; boundary=abc", "abc" },
		{ __LINE__, " Multipart/Alternative;boundary=\"a b;c\"", "a b;c" },
		{ __LINE__, "multipart/mixed; charset=\"x;boundary=no\"; BOUNDARY = yes", "yes" },
		{ __LINE__, "multipart/mixed; boundary=\"a\\\"b\"", "a\"b" },
		{ __LINE__, "multipart/mixed; boundary=\"\"", NULL },
		{ __LINE__, "multipart/mixed; boundary=\"open", NULL },
		{ __LINE__, "multipart/mixed; boundary=", NULL },
		{ __LINE__, "multipart/mixed", NULL },
		{ __LINE__, "text/plain; boundary=abc", NULL },
		{ __LINE__, "multipart", NULL },
		{ __LINE__, "", NULL },
	};
	char b[MIME_FIX_BOUNDARY + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = mime_fix_boundary(cases[i].value, strlen(cases[i].value), b);
		if (ok != (cases[i].boundary != NULL) || (ok && strcmp(b, cases[i].boundary) != 0)) {
			fprintf(stderr, "%s:%d: boundary of \"%s\": %s\n", __FILE__, cases[i].line,
				cases[i].value, ok ? b : "(none)");
			check_failures++;
		}
	}
	/* a boundary longer than we keep is no boundary */
	struct str v = STR_INIT;
	str_appends(&v, "multipart/mixed; boundary=");
	for (int i = 0; i <= MIME_FIX_BOUNDARY; i++)
		str_appendc(&v, 'b');
	CHECK(!mime_fix_boundary(v.s, v.len, b));
	str_truncate(&v, v.len - 1);
	CHECK(mime_fix_boundary(v.s, v.len, b));
	str_free(&v);

	CHECK_INTEQ(mime_fix_cte_of(" quoted-printable ", 18), MIME_CTE_QP);
	CHECK_INTEQ(mime_fix_cte_of("BASE64", 6), MIME_CTE_BASE64);
	CHECK_INTEQ(mime_fix_cte_of("base64x", 7), MIME_CTE_TEXT);
	CHECK_INTEQ(mime_fix_cte_of("7bit", 4), MIME_CTE_TEXT);
	CHECK_INTEQ(mime_fix_cte_of("", 0), MIME_CTE_TEXT);
}

int main(void)
{
	test_short_lines_untouched();
	test_top_level();
	test_multipart();
	test_qp_escape_at_the_edge();
	test_fields();
	return check_done();
}
