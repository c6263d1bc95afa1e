/*
 * rfc5322.h - small helpers for Internet Message Format (RFC 5322) text
 *
 * Dates in the RFC 5322 form, where the header section of a message ends,
 * walking and reading header fields (unfolded), and folding a field we
 * write so its lines stay short. Everything works on caller-owned bytes:
 * no state, no allocation except into a caller's struct str, any thread.
 * Input is treated as untrusted: a message with bare LF line ends, no
 * blank line, or a body that starts without one is read without faults.
 */
#ifndef IMPETUS_MESSAGE_RFC5322_H
#define IMPETUS_MESSAGE_RFC5322_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* "Thu, 01 Jan 1970 00:00:00 +0000" plus NUL fits; a little headroom. */
#define RFC5322_DATE_SIZE 40

/* The line length RFC 5322 2.1.1 asks writers to stay under (SHOULD). */
#define RFC5322_LINE_SOFT 78
/* The hard limit of 2.1.1, without the CRLF (MUST). */
#define RFC5322_LINE_HARD 998

/*
 * rfc5322_format_date - unix time t as an RFC 5322 date-time, in English
 * whatever the locale: UTC ("+0000") unless local is true, then the
 * process's local zone with its numeric offset. A time that has no such
 * date (gmtime fails, or the year is outside 1900..9999) is written as
 * the epoch. Returns buf.
 */
char *rfc5322_format_date(int64_t t, bool local, char buf[RFC5322_DATE_SIZE]);

/*
 * rfc5322_header_end - the length of the header section of msg[0..len):
 * the bytes up to and including the line end of the last header line. The
 * section ends at the first empty line, or at the first line that is
 * neither a field ("name:") nor a continuation (a body that was sent
 * without a blank line), or at len. 0 when msg starts with the body.
 */
size_t rfc5322_header_end(const char *msg, size_t len);

/*
 * rfc5322_body_start - the offset of the first body byte: past the empty
 * separator line when there is one, else rfc5322_header_end().
 */
size_t rfc5322_body_start(const char *msg, size_t len);

/* One header field as found in a header section (points into it). */
struct rfc5322_field {
	const char *name;	/* field name, not NUL-terminated */
	size_t name_len;
	const char *value;	/* after the colon, folded, without final line end */
	size_t value_len;
};

/*
 * rfc5322_field_next - the field starting at *pos in hdrs[0..len) (a header
 * section, see rfc5322_header_end); advances *pos past it. false at the end
 * of the section. Start with *pos = 0.
 */
bool rfc5322_field_next(const char *hdrs, size_t len, size_t *pos,
			struct rfc5322_field *f);

/*
 * rfc5322_unfold - append value with each line break (CRLF, LF or CR)
 * removed, as RFC 5322 2.2.3 unfolds, and leading/trailing white space
 * trimmed.
 */
void rfc5322_unfold(const char *value, size_t len, struct str *out);

/*
 * rfc5322_header_get - append the unfolded value of the first field named
 * name (case-insensitive) in the header section hdrs[0..len) to value.
 * false, value untouched, when there is none.
 */
bool rfc5322_header_get(const char *hdrs, size_t len, const char *name,
			struct str *value);

/*
 * rfc5322_fold_field - append "name: value" CRLF to out as one well-formed
 * field, folded (CRLF before existing white space) so lines stay within
 * RFC5322_LINE_SOFT where the value's words allow; unfolding gives the
 * value back exactly in the ordinary case. Whatever value holds, the
 * output has no empty or white-space-only line, every line after the
 * first starts with SP or HT, and no line passes RFC5322_LINE_HARD except
 * "name:" alone when the name itself is that long. Only abuse changes the
 * unfolded value: CR and LF are written as SP (callers should clean them
 * first), a run of blanks too long to share a line with its word is cut
 * to what fits (one blank at least), trailing blanks that do not fit are
 * dropped, and a word too long for a line of its own is cut with an
 * inserted fold. name must be a field name (a non-empty run of printable
 * US-ASCII without ':'), chosen by the program.
 */
void rfc5322_fold_field(struct str *out, const char *name, const char *value);

#endif
