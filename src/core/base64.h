/*
 * base64.h - base64 (RFC 4648 4) for MIME bodies: encode with line
 * breaks, decode untrusted text that may carry line breaks
 *
 * Pure functions over caller-owned bytes, any thread; they append to a
 * struct str (growth aborts on exhaustion, core/mem.h). The SMTP AUTH
 * codec (src/smtp/smtp_auth.c) is stricter on purpose (no blanks,
 * canonical padding) and stays its own.
 */
#ifndef IMPETUS_CORE_BASE64_H
#define IMPETUS_CORE_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* The MIME line length of base64 bodies (RFC 2045 6.8). */
#define BASE64_MIME_LINE 76

/*
 * base64_encode - p[0..n) as base64 appended to out, with CRLF after
 * every line octets of output when line > 0 (none after the last line),
 * on one line when line is 0. line is rounded down to a multiple of 4.
 */
void base64_encode(const void *p, size_t n, size_t line, struct str *out);

/*
 * base64_decode - the bytes of in[0..len) appended to out. Blanks (SP,
 * HT, CR, LF) anywhere are skipped; every other byte must be of the
 * standard alphabet, "=" only as the last one or two of the final group;
 * a final group without its padding is accepted (2 or 3 characters).
 * On failure returns false, leaves out as it was and sets *bad to the
 * offset of the offending byte (len for a truncated last group).
 */
bool base64_decode(const char *in, size_t len, struct str *out, size_t *bad);

/*
 * base64_decode_strict - the bytes of in[0..len) appended to out, for
 * protocols where two decoders must never disagree (SMTP AUTH, HTTP
 * Basic): the standard alphabet only, no blanks, padding required and
 * only at the end ("x=y=" is not padding), bits left over in a padded
 * group zero (RFC 4648 3.5). Empty input is refused. On failure returns
 * false and leaves out as it was.
 */
bool base64_decode_strict(const char *in, size_t len, struct str *out);

#endif
