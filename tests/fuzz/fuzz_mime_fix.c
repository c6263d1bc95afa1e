/*
 * fuzz_mime_fix.c - libFuzzer target for the MIME long-line fixer
 *
 * mime_fix (src/message/mime_fix.c) walks the MIME structure of messages
 * from any client (RFC2822_Max_Line_Length = fix) and rewrites their long
 * lines; a mistake there changes mail or lets a line over 998 octets
 * through. Properties, abort() on the first violation:
 *   - the output is the same fed whole, byte by byte, and cut at two
 *     points chosen by the input;
 *   - no output line (CRLF-delimited) passes MIME_FIX_LIMIT octets;
 *   - an input without such a line comes out unchanged;
 *   - the output grows by at most 5 % (+16): breaks only, nothing else;
 *   - mime_fix_boundary gives 1..MIME_FIX_BOUNDARY octets or nothing, and
 *     only for a value starting (after blanks) with "multipart/".
 *
 * Input: bytes 0-1 pick the cut points; the rest is the message, where
 * 0x01 n stands for n*16 octets of 'Q' (long lines are hard to reach by
 * mutation otherwise); the message stops growing at MSG_MAX octets.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_mime_fix -runs=100000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "message/mime_fix.h"

#include "fuzz.h"

#define MSG_MAX (64 * 1024)

/* run - the fixer over msg in the pieces cuts[] says (sorted offsets, n of them). */
static void run(const char *msg, size_t len, const size_t *cuts, size_t ncuts, bool bytewise,
		struct str *out)
{
	struct mime_fix f;
	size_t at = 0;

	mime_fix_init(&f);
	if (bytewise) {
		for (size_t i = 0; i < len; i++)
			mime_fix_feed(&f, msg + i, 1, out);
	} else {
		for (size_t i = 0; i <= ncuts; i++) {
			size_t to = i < ncuts ? cuts[i] : len;
			mime_fix_feed(&f, msg + at, to - at, out);
			at = to;
		}
	}
	mime_fix_finish(&f, out);
	mime_fix_free(&f);
}

/* longest - the longest CRLF-delimited line of p[0..n). */
static size_t longest(const char *p, size_t n)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str msg = STR_INIT, a = STR_INIT, b = STR_INIT, c = STR_INIT;

	if (size < 2)
		return 0;
	for (size_t i = 2; i < size && msg.len < MSG_MAX; i++) {
		if (data[i] == 0x01 && i + 1 < size) {
			for (size_t k = 0; k < (size_t)data[i + 1] * 16; k++)
				str_appendc(&msg, 'Q');
			i++;
		} else {
			str_appendc(&msg, (char)data[i]);
		}
	}
	str_appendc(&msg, '\0');	/* a non-empty buffer; the NUL is not part of it */
	msg.len--;

	size_t cuts[2] = { 0, 0 };
	if (msg.len > 0) {
		cuts[0] = (size_t)data[0] * 257 % (msg.len + 1);
		cuts[1] = (size_t)data[1] * 263 % (msg.len + 1);
		if (cuts[0] > cuts[1]) {
			size_t t = cuts[0];
			cuts[0] = cuts[1];
			cuts[1] = t;
		}
	}
	run(msg.s, msg.len, NULL, 0, false, &a);
	run(msg.s, msg.len, NULL, 0, true, &b);
	run(msg.s, msg.len, cuts, 2, false, &c);
	MUST(a.len == b.len && memcmp(a.s, b.s, a.len) == 0);
	MUST(a.len == c.len && memcmp(a.s, c.s, a.len) == 0);
	MUST(longest(a.s, a.len) <= MIME_FIX_LIMIT);
	if (longest(msg.s, msg.len) <= MIME_FIX_LIMIT)
		MUST(a.len == msg.len && memcmp(a.s, msg.s, msg.len) == 0);
	MUST(a.len <= msg.len + msg.len / 20 + 16);

	/* the Content-Type parser on the same bytes (first 4 KB) */
	char bnd[MIME_FIX_BOUNDARY + 1];
	size_t vl = msg.len < 4096 ? msg.len : 4096;
	if (mime_fix_boundary(msg.s, vl, bnd)) {
		size_t bl = strnlen(bnd, sizeof(bnd));
		MUST(bl <= MIME_FIX_BOUNDARY);
		size_t i = 0;
		while (i < vl && (msg.s[i] == ' ' || msg.s[i] == '\t'))
			i++;
		MUST(vl - i >= 10 && strncasecmp(msg.s + i, "multipart/", 10) == 0);
	}
	(void)mime_fix_cte_of(msg.s, vl);

	str_free(&msg);
	str_free(&a);
	str_free(&b);
	str_free(&c);
	return 0;
}
