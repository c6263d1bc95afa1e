/*
 * fuzz_rfc5322_fold.c - libFuzzer target for rfc5322_fold_field
 *
 * The fold writes header fields whose values come from the outside (a
 * remote server's reply in a bounce's Diagnostic-Code, a client's HELO);
 * a broken fold ends the header section early and turns the rest of a
 * message into body, or injects fields. Whatever the value, the output
 * must be one well-formed field; this target checks it property by
 * property and abort()s on the first violation:
 *   - it starts with "name:" and ends with CRLF; no other CR or LF;
 *   - no line is empty or only white space;
 *   - every line after the first starts with SP or HT;
 *   - no line passes 998 bytes (RFC 5322 2.1.1) except the first when it
 *     is "name:" alone and the name itself is that long;
 *   - a line past 78 bytes holds one word only (after "name:" on the
 *     first), plus the field's trailing blanks on the last line;
 *   - unfolding gives the value's words back in order (blanks are SP, HT,
 *     CR, LF); a word is cut in pieces only when it is longer than a line
 *     can hold (997 bytes after the indent);
 *   - for an ordinary value (no CR/LF, no blank run or word too long for
 *     a line, no trailing blank) unfolding gives " " + value exactly.
 *
 * Input: byte 0 picks the name: high bit set, a name of (b & 0x7f) * 16
 * bytes (up to 2032, past the hard limit); else the next (b % 64) bytes
 * mapped onto field-name characters ("X" when 0). The rest is the value,
 * where 0x01 n stands for n*8 spaces and 0x02 n for n*8 'w' bytes (long
 * runs are hard to reach by mutation otherwise) and NUL becomes SP; the
 * value stops growing at VALUE_MAX bytes.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_rfc5322_fold -runs=100000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "message/rfc5322.h"

#include "fuzz.h"

/* Values are cut here: several lines' worth, and fast to check. */
#define VALUE_MAX 8192

/* Longest word that fits a continuation line after its one-byte indent. */
#define WORD_FITS (RFC5322_LINE_HARD - 1)

static bool wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool blank(char c)
{
	return wsp(c) || c == '\r' || c == '\n';
}

/* next_word - the next word of s[*i..n) split on is_blank; false at the end. */
static bool next_word(const char *s, size_t n, size_t *i, bool (*is_blank)(char),
		      const char **w, size_t *wn)
{
	while (*i < n && is_blank(s[*i]))
		(*i)++;
	if (*i >= n)
		return false;
	*w = s + *i;
	while (*i < n && !is_blank(s[*i]))
		(*i)++;
	*wn = (size_t)(s + *i - *w);
	return true;
}

/* check_lines - the line structure properties; returns the unfolded text after the colon. */
static void check_lines(const struct str *out, const char *name, struct str *unfolded)
{
	size_t nl = strlen(name);
	const char *s = out->s;
	size_t n = out->len, pos = 0, lineno = 0;

	MUST(n >= nl + 3 && memcmp(s, name, nl) == 0 && s[nl] == ':');
	MUST(s[n - 2] == '\r' && s[n - 1] == '\n');
	while (pos < n) {
		const char *cr = memchr(s + pos, '\r', n - pos);
		MUST(cr != NULL && cr + 1 < s + n && cr[1] == '\n');
		size_t e = (size_t)(cr - s), len = e - pos;
		const char *l = s + pos;
		bool last = e + 2 == n;

		MUST(memchr(l, '\n', len) == NULL);
		MUST(len > 0);
		size_t k = 0;
		while (k < len && wsp(l[k]))
			k++;
		MUST(k < len);				/* not white space only */
		if (lineno > 0)
			MUST(wsp(l[0]));		/* a continuation */
		if (len > RFC5322_LINE_HARD)
			MUST(lineno == 0 && len == nl + 1);
		/* the field's trailing blanks do not count for the soft limit */
		size_t end = len;
		if (last)
			while (end > 0 && wsp(l[end - 1]))
				end--;
		if (end > RFC5322_LINE_SOFT) {
			/* one word, after "name:" on the first line */
			size_t i = lineno == 0 ? nl + 1 : 0, words = 0;
			const char *w;
			size_t wn;
			while (next_word(l, end, &i, blank, &w, &wn))
				words++;
			MUST(words <= 1);
		}
		str_append(unfolded, lineno == 0 ? l + nl + 1 : l, lineno == 0 ? len - nl - 1 : len);
		pos = e + 2;
		lineno++;
	}
}

/* check_words - unfolding gives value's words in order, cut only when too long. */
static void check_words(const struct str *unfolded, const char *value)
{
	size_t vn = strlen(value), vi = 0, ui = 0;
	const char *vw, *uw;
	size_t vwn, uwn;

	while (next_word(value, vn, &vi, blank, &vw, &vwn)) {
		size_t got = 0, pieces = 0;
		while (got < vwn) {
			MUST(next_word(unfolded->s, unfolded->len, &ui, wsp, &uw, &uwn));
			MUST(uwn <= vwn - got && memcmp(uw, vw + got, uwn) == 0);
			got += uwn;
			pieces++;
		}
		MUST(pieces == 1 || vwn > WORD_FITS);
	}
	MUST(!next_word(unfolded->s, unfolded->len, &ui, wsp, &uw, &uwn));
}

/*
 * ordinary - a value the fold must give back byte for byte: no CR/LF, no
 * trailing blank, and every (blank run, word) unit fits one line (the
 * first unit's run counts the SP the fold puts after the colon); for an
 * empty value, "name: " must fit a line.
 */
static bool ordinary(const char *name, const char *value)
{
	size_t n = strlen(value), i = 0;

	if (n == 0)
		return strlen(name) + 2 <= RFC5322_LINE_HARD;
	if (n > 0 && wsp(value[n - 1]))
		return false;
	if (memchr(value, '\r', n) || memchr(value, '\n', n))
		return false;
	for (bool first = true; i < n; first = false) {
		size_t run = first ? 1 : 0, word = 0;
		while (i < n && wsp(value[i]))
			i++, run++;
		while (i < n && !wsp(value[i]))
			i++, word++;
		if (run + word > RFC5322_LINE_HARD)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char name_chars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+/=?^`{|}~\"(),;<>@[\\]";
	struct str name = STR_INIT, value = STR_INIT, out = STR_INIT, unfolded = STR_INIT;
	size_t i = 1;

	if (size == 0)
		return 0;
	if (data[0] & 0x80) {
		size_t nl = (size_t)(data[0] & 0x7f) * 16;
		for (size_t k = 0; k < nl; k++)
			str_appendc(&name, name_chars[k % (sizeof(name_chars) - 1)]);
	} else {
		size_t nl = data[0] % 64;
		for (; i < size && nl > 0; i++, nl--)
			str_appendc(&name, name_chars[data[i] % (sizeof(name_chars) - 1)]);
	}
	if (name.len == 0)
		str_appendc(&name, 'X');
	for (; i < size && value.len < VALUE_MAX; i++) {
		if ((data[i] == 1 || data[i] == 2) && i + 1 < size) {
			for (size_t k = 0; k < (size_t)data[i + 1] * 8; k++)
				str_appendc(&value, data[i] == 1 ? ' ' : 'w');
			i++;
		} else {
			str_appendc(&value, data[i] ? (char)data[i] : ' ');
		}
	}

	const char *v = str_cstr(&value);
	rfc5322_fold_field(&out, str_cstr(&name), v);
	check_lines(&out, str_cstr(&name), &unfolded);
	check_words(&unfolded, v);
	if (ordinary(str_cstr(&name), v)) {
		MUST(unfolded.len == value.len + 1 && unfolded.s[0] == ' ' &&
		     memcmp(unfolded.s + 1, v, value.len) == 0);
	}
	str_free(&name);
	str_free(&value);
	str_free(&out);
	str_free(&unfolded);
	return 0;
}
