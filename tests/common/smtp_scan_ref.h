/*
 * smtp_scan_ref.h - the DATA scanner's rules written as plainly as
 * possible, as a model to compare src/smtp/smtp_parse.c's scanner with
 *
 * Shared by tests/unit/test_smtp_parse.c (random inputs, every split) and
 * tests/fuzz/fuzz_smtp_parse.c (fuzzed inputs): one model, so the two
 * cannot drift apart. Whole input at once, with the bare CR/LF repairs
 * (fix) and line folding (fold, 0 = none) of RFC2822_Lone_LF_* and
 * RFC2822_Max_Line_Length = fix. Fills r's flags and returns the bytes
 * consumed.
 */
#ifndef IMPETUS_TESTS_COMMON_SMTP_SCAN_REF_H
#define IMPETUS_TESTS_COMMON_SMTP_SCAN_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"
#include "smtp/smtp_parse.h"

static inline size_t ref_scan(const char *in, size_t len, struct str *out, struct smtp_data_scanner *r,
		     bool fix, size_t fold)
{
	size_t i = 0, line = 0;
	bool bol = true, body = false;

	smtp_data_scanner_init(r);
	while (i < len) {
		if (bol && in[i] == '.') {
			if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
				i += 3;
				r->done = true;
				break;
			}
			if (i + 1 == len || (i + 2 == len && in[i + 1] == '\r')) {
				i = len;	/* a possible terminator still open */
				break;
			}
			i++;		/* stuffing dot */
		}
		bol = false;
		char c = in[i];
		if (c == '\r' && i + 1 < len && in[i + 1] == '\n') {
			str_append(out, "\r\n", 2);
			bol = true;
			i += 2;
		} else if (c == '\r' && i + 1 == len) {
			str_appendc(out, c);	/* CR at the very end: undecided */
			i++;
			break;
		} else if (c == '\r' || c == '\n') {
			/* bare: a line end (never a BOL), repaired when asked */
			if (fix)
				str_append(out, "\r\n", 2);
			else
				str_appendc(out, c);
			if (c == '\r')
				r->bare_cr = true;
			else
				r->bare_lf = true;
			if (body)
				r->bare_body = true;
			else
				r->bare_headers = true;
			i++;
		} else {
			if (fold && line >= fold) {
				str_append(out, "\r\n ", 3);
				if (line > r->longest_line)
					r->longest_line = line;
				r->folded = true;
				line = 1;	/* the folding space */
			}
			str_appendc(out, c);
			if (c == '\0')
				r->nul = true;
			line++;
			i++;
			continue;
		}
		/* a line ended */
		if (line > r->longest_line)
			r->longest_line = line;
		if (line == 0)
			body = true;
		line = 0;
	}
	if (line > r->longest_line)
		r->longest_line = line;
	r->in_body = body;
	return i;
}

#endif
