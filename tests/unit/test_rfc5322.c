/*
 * test_rfc5322.c - header folding and dates at their limits
 *
 * The everyday cases of the RFC 5322 helpers are in test_dsn.c, next to
 * the bounces that use them. These are the hostile ones the fuzzers found
 * (issue 11, findings 6 and 8): a fold that must stay one well-formed
 * field whatever the value and the name, and dates for times at the edge
 * of what gmtime can represent (run under UBSan by the sanitizer suite,
 * where the old tm_year + 1900 overflowed). tests/fuzz/fuzz_rfc5322_fold.c
 * checks the same properties on generated input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/str.h"
#include "message/rfc5322.h"

/*
 * well_formed - out is one field "name:..." CRLF: every line ends in CRLF,
 * no other CR or LF, no empty or blank-only line, continuations start
 * with SP/HT, no line past the hard limit unless it is "name:" alone.
 * Reports the first problem and returns false.
 */
static bool well_formed(const struct str *out, const char *name, int line)
{
	size_t nl = strlen(name), pos = 0, no = 0;
	const char *s = out->s;
	const char *why = NULL;

	if (out->len < nl + 3 || memcmp(s, name, nl) != 0 || s[nl] != ':')
		why = "does not start with name:";
	else if (s[out->len - 2] != '\r' || s[out->len - 1] != '\n')
		why = "does not end with CRLF";
	while (why == NULL && pos < out->len) {
		const char *cr = memchr(s + pos, '\r', out->len - pos);
		if (cr == NULL || cr[1] != '\n') {
			why = "bare CR";
			break;
		}
		size_t len = (size_t)(cr - s) - pos, k = 0;
		if (memchr(s + pos, '\n', len))
			why = "bare LF";
		while (k < len && (s[pos + k] == ' ' || s[pos + k] == '\t'))
			k++;
		if (k == len)
			why = "an empty or blank-only line";
		else if (no > 0 && k == 0)
			why = "a continuation line without leading white space";
		else if (len > RFC5322_LINE_HARD && !(no == 0 && len == nl + 1))
			why = "a line past 998 bytes";
		pos += len + 2;
		no++;
	}
	if (why) {
		fprintf(stderr, "%s:%d: folded field: %s (line %zu)\n", __FILE__, line, why, no);
		check_failures++;
	}
	return why == NULL;
}

/* unfolded - the field's value with the CRLFs removed (what a reader sees). */
static void unfolded(const struct str *out, const char *name, struct str *v)
{
	size_t start = strlen(name) + 1;

	for (size_t i = start; i < out->len; i++)
		if (out->s[i] != '\r' && out->s[i] != '\n')
			str_appendc(v, out->s[i]);
}

/* A word, more than 998 blanks, a word: the blanks must not become an empty line. */
static void test_fold_blank_run(void)
{
	struct str value = STR_INIT, out = STR_INIT, v = STR_INIT;

	for (size_t run = 990; run <= 2100; run += 37) {
		str_clear(&value);
		str_clear(&out);
		str_clear(&v);
		str_appends(&value, "first");
		for (size_t i = 0; i < run; i++)
			str_appendc(&value, i % 5 ? ' ' : '\t');
		str_appends(&value, "second");
		rfc5322_fold_field(&out, "Diagnostic-Code", str_cstr(&value));
		CHECK(well_formed(&out, "Diagnostic-Code", __LINE__));
		/* both words survive, in order, the run cut to what fits */
		unfolded(&out, "Diagnostic-Code", &v);
		const char *a = strstr(str_cstr(&v), "first");
		const char *b = strstr(str_cstr(&v), "second");
		CHECK(a != NULL && b != NULL && a < b);
		CHECK(v.len <= value.len + 1);
	}
	/* what a reader sees: one field, then the blank line, then body */
	str_clear(&value);
	str_appends(&value, "a");
	for (int i = 0; i < 1000; i++)
		str_appendc(&value, ' ');
	str_appends(&value, "b");
	str_clear(&out);
	rfc5322_fold_field(&out, "X-Test", str_cstr(&value));
	str_appends(&out, "\r\nbody\r\n");
	CHECK_INTEQ(rfc5322_header_end(out.s, out.len), out.len - 8);
	str_clear(&v);
	CHECK(rfc5322_header_get(out.s, out.len, "X-Test", &v));
	CHECK(v.len >= 3 && v.s[0] == 'a' && v.s[v.len - 1] == 'b');
	str_free(&value);
	str_free(&out);
	str_free(&v);
}

/* A field name near or past the hard limit: the value moves to a continuation. */
static void test_fold_long_name(void)
{
	static const size_t lens[] = { 900, 990, 995, 996, 997, 998, 999, 1200 };
	struct str name = STR_INIT, out = STR_INIT, v = STR_INIT;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		str_clear(&name);
		for (size_t k = 0; k < lens[i]; k++)
			str_appendc(&name, (char)('A' + k % 26));
		str_clear(&out);
		rfc5322_fold_field(&out, str_cstr(&name), "value and more words");
		CHECK(well_formed(&out, str_cstr(&name), __LINE__));
		str_clear(&v);
		unfolded(&out, str_cstr(&name), &v);
		/* the value exactly once, first byte not doubled */
		CHECK_STREQ(str_cstr(&v), " value and more words");
		/* a reader finds the field and its value */
		str_clear(&v);
		CHECK(rfc5322_header_get(out.s, out.len, str_cstr(&name), &v));
		CHECK_STREQ(str_cstr(&v), "value and more words");
	}
	str_free(&name);
	str_free(&out);
	str_free(&v);
}

/* Other hostile values: line breaks, blanks only, huge words, empty. */
static void test_fold_hostile(void)
{
	struct str out = STR_INIT, v = STR_INIT, big = STR_INIT;

	rfc5322_fold_field(&out, "X", "one\r\nInjected: yes\r\n\r\nbody");
	CHECK(well_formed(&out, "X", __LINE__));
	CHECK(rfc5322_header_end(out.s, out.len) == out.len);
	str_clear(&out);
	rfc5322_fold_field(&out, "X", "");
	CHECK_STREQ(str_cstr(&out), "X: \r\n");
	for (int i = 0; i < 3000; i++)
		str_appendc(&big, ' ');
	str_clear(&out);
	rfc5322_fold_field(&out, "X", str_cstr(&big));
	CHECK(well_formed(&out, "X", __LINE__));
	str_clear(&big);
	for (int i = 0; i < 3000; i++)
		str_appendc(&big, 'w');
	str_clear(&out);
	rfc5322_fold_field(&out, "X", str_cstr(&big));
	CHECK(well_formed(&out, "X", __LINE__));
	unfolded(&out, "X", &v);
	size_t ws = 0;
	for (size_t i = 0; i < v.len; i++)
		ws += v.s[i] == ' ';
	CHECK_INTEQ(v.len - ws, 3000);		/* every byte of the word kept */
	str_free(&out);
	str_free(&v);
	str_free(&big);
}

/* ---------------------------------------------------------------- dates */

static void test_date_limits(void)
{
	char buf[RFC5322_DATE_SIZE];
	static const int64_t epoch_cases[] = {
		INT64_MAX, INT64_MIN, INT64_MAX / 2, -INT64_MAX / 2,
		/* gmtime's last representable second (tm_year == INT_MAX) and around */
		67768036191676799LL, 67768036191676800LL, 67768036191676798LL,
		-67768040609740800LL,
		253402300800LL,		/* 10000-01-01: five digits */
		-2208988801LL,		/* 1899-12-31 23:59:59 */
	};

	for (size_t i = 0; i < sizeof(epoch_cases) / sizeof(epoch_cases[0]); i++) {
		CHECK_STREQ(rfc5322_format_date(epoch_cases[i], false, buf),
			    "Thu, 01 Jan 1970 00:00:00 +0000");
		/* local time takes the same path; the result is a real date either way */
		rfc5322_format_date(epoch_cases[i], true, buf);
		CHECK(strlen(buf) == 31);
	}
	CHECK_STREQ(rfc5322_format_date(253402300799LL, false, buf),
		    "Fri, 31 Dec 9999 23:59:59 +0000");
	CHECK_STREQ(rfc5322_format_date(-2208988800LL, false, buf),
		    "Mon, 01 Jan 1900 00:00:00 +0000");
	CHECK_STREQ(rfc5322_format_date(-1, false, buf), "Wed, 31 Dec 1969 23:59:59 +0000");
}

int main(void)
{
	test_fold_blank_run();
	test_fold_long_name();
	test_fold_hostile();
	test_date_limits();
	return check_done();
}
