/*
 * fuzz_rfc5322_header.c - libFuzzer target for the RFC 5322 header reader
 *
 * rfc5322_header_end, rfc5322_body_start and rfc5322_field_next
 * (src/message/rfc5322.c) read the header section of every message a
 * client sends (the SMTP server looks for fields in it, bounces quote it).
 * The input is a message, raw. Besides memory safety and UB it checks:
 *   - header_end <= body_start <= len; the line at header_end (if any)
 *     really ends the section: it is empty, or it does not look like a
 *     field ("name:") and is not a continuation of one, or it is a
 *     continuation of nothing (header_end == 0); every line before it is
 *     a field or a continuation (checked with a separate, plain reader);
 *   - body_start skips exactly one empty line (CRLF, LF, or a final CR)
 *     after the section, or nothing;
 *   - walking the section with rfc5322_field_next always moves forward,
 *     ends, and cuts the section into consecutive fields that cover it
 *     exactly: each field starts where the last one ended, its name is
 *     non-empty printable US-ASCII without ':' at the start of its line,
 *     then optional blanks and the colon, the value runs from after the
 *     colon to the end of the field without its final line end, and no
 *     line after the first of a field is anything but a continuation;
 *   - walking the whole message instead of the section finds the same
 *     fields (the reader stops at the section's end by itself);
 *   - rfc5322_header_get finds the first field of each name, unfolded.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_rfc5322_header -runs=1000000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "message/rfc5322.h"

#include "fuzz.h"

/* eol - offset just past the line at p (past its LF, or len). */
static size_t eol(const char *m, size_t len, size_t p)
{
	while (p < len && m[p] != '\n')
		p++;
	return p < len ? p + 1 : len;
}

static bool empty_line(const char *m, size_t p, size_t e)
{
	return (e - p == 1 && (m[p] == '\n' || m[p] == '\r')) ||
	       (e - p == 2 && m[p] == '\r' && m[p + 1] == '\n');
}

static bool name_char(char c)
{
	return c > ' ' && c < 127 && c != ':';
}

/* field_line - does m[p..e) start "name" [blanks] ":"? */
static bool field_line(const char *m, size_t p, size_t e)
{
	size_t q = p;

	while (q < e && name_char(m[q]))
		q++;
	if (q == p)
		return false;
	while (q < e && (m[q] == ' ' || m[q] == '\t'))
		q++;
	return q < e && m[q] == ':';
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* check_fields - walk m[0..len) and check every field; returns the count. */
static size_t check_fields(const char *m, size_t len, size_t hend)
{
	size_t pos = 0, count = 0;
	struct rfc5322_field f;

	while (rfc5322_field_next(m, len, &pos, &f)) {
		size_t start = (size_t)(f.name - m);
		size_t q;

		MUST(++count <= hend);		/* each field takes a byte at least */
		MUST(pos > start && pos <= hend);
		MUST(f.name_len > 0);
		for (size_t i = 0; i < f.name_len; i++)
			MUST(name_char(f.name[i]));
		q = start + f.name_len;
		while (blank(m[q]))
			q++;
		MUST(m[q] == ':' && f.value == m + q + 1);
		MUST(f.value + f.value_len <= m + pos);
		/* the value is the field without its final line end */
		size_t tail = pos - (size_t)(f.value - m) - f.value_len;
		MUST(tail <= 2);
		if (tail == 2)
			MUST(m[pos - 2] == '\r' && m[pos - 1] == '\n');
		if (tail == 1)
			MUST(m[pos - 1] == '\n' || m[pos - 1] == '\r');
		/* every later line of the field is a continuation */
		for (size_t p = eol(m, len, start); p < pos; p = eol(m, len, p))
			MUST(blank(m[p]));
		/* and the next line is not one */
		MUST(pos == hend || !blank(m[pos]));
	}
	MUST(pos == hend);
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *m = (const char *)data;
	size_t hend = rfc5322_header_end(m, size);
	size_t bstart = rfc5322_body_start(m, size);

	MUST(hend <= bstart && bstart <= size);
	if (bstart > hend) {
		MUST(empty_line(m, hend, bstart));
		MUST(bstart == eol(m, size, hend));
	} else if (hend < size) {
		size_t e = eol(m, size, hend);
		MUST(!empty_line(m, hend, e));
	}
	/* the section: fields and continuations only, the first not a continuation */
	for (size_t p = 0; p < hend; p = eol(m, size, p)) {
		size_t e = eol(m, size, p);

		MUST(e <= hend);
		MUST(!empty_line(m, p, e));
		MUST(p == 0 ? field_line(m, p, e) : (blank(m[p]) || field_line(m, p, e)));
	}
	/* and the line at hend ends it */
	if (hend < size) {
		size_t e = eol(m, size, hend);

		MUST(empty_line(m, hend, e) || (hend == 0 && blank(m[0])) ||
		     (!blank(m[hend]) && !field_line(m, hend, e)));
	}

	size_t n = check_fields(m, hend, hend);
	/* The reader stops at the end of the section by itself. */
	size_t pos = 0, n2 = 0;
	struct rfc5322_field f;
	while (rfc5322_field_next(m, size, &pos, &f)) {
		MUST(++n2 <= n);
		MUST(pos <= hend);
	}
	MUST(n2 == n && pos == hend);

	/* header_get finds the first field of each name, unfolded. */
	pos = 0;
	while (rfc5322_field_next(m, hend, &pos, &f)) {
		char name[64];
		struct str got = STR_INIT, want = STR_INIT;
		size_t p2 = 0;
		struct rfc5322_field g;

		if (f.name_len >= sizeof(name))
			continue;
		memcpy(name, f.name, f.name_len);
		name[f.name_len] = '\0';
		MUST(rfc5322_header_get(m, hend, name, &got));
		while (rfc5322_field_next(m, hend, &p2, &g))
			if (g.name_len == f.name_len && strncasecmp(g.name, name, g.name_len) == 0)
				break;
		rfc5322_unfold(g.value, g.value_len, &want);
		MUST(got.len == want.len && memcmp(str_cstr(&got), str_cstr(&want), got.len) == 0);
		for (size_t i = 0; i < got.len; i++)
			MUST(got.s[i] != '\r' && got.s[i] != '\n');
		str_free(&got);
		str_free(&want);
	}
	return 0;
}
