/*
 * mime_fix.h - break over-long lines of a message the way its MIME
 * structure allows (RFC2822_Max_Line_Length = fix)
 *
 * A streaming filter: feed it the message text as it arrives (CRLF line
 * ends; only CRLF ends a line here) and it appends the same text to out,
 * with every line longer than MIME_FIX_LIMIT octets broken so that what
 * the line means survives where the encoding allows it:
 *
 *   quoted-printable body   soft line breaks ("=" CRLF), lines of at most
 *                           76 octets, never inside an "=XX" escape: the
 *                           decoded content is unchanged;
 *   base64 body             CRLF every 76 octets: decoders skip line
 *                           breaks, the decoded content is unchanged;
 *   anything else           (header fields, 7bit/8bit/binary bodies,
 *                           preambles, epilogues) CRLF SPACE after octet
 *                           998, as Postfix's smtp_line_length_limit: in a
 *                           header field that is folding, in text it adds
 *                           a line break and a space.
 *
 * The walker follows the top-level header section, multipart boundaries
 * (nested up to MIME_FIX_DEPTH) and each part's header section for
 * Content-Type (boundary) and Content-Transfer-Encoding. Lines of at most
 * MIME_FIX_LIMIT octets are copied unchanged. Memory is bounded whatever
 * the input: one line of MIME_FIX_LIMIT + 1 octets, one header field of
 * MIME_FIX_FIELD octets (longer fields are not interpreted), the
 * boundaries. Malformed MIME is never an error: what cannot be understood
 * is treated as text. Owned by one thread; no allocation except into out
 * and the fixer's own buffers.
 */
#ifndef IMPETUS_MESSAGE_MIME_FIX_H
#define IMPETUS_MESSAGE_MIME_FIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* The longest line kept as is (RFC 5322 2.1.1, CRLF excluded). */
#define MIME_FIX_LIMIT 998
/* Encoded lines written by the re-wrapping (RFC 2045 6.7 and 6.8). */
#define MIME_FIX_WRAP 76
/* Multipart nesting followed; deeper boundaries are not recognised. */
#define MIME_FIX_DEPTH 16
/* Longest header field (unfolded source octets) interpreted. */
#define MIME_FIX_FIELD 8192
/* Longest boundary kept (RFC 2046 5.1.1 allows 70). */
#define MIME_FIX_BOUNDARY 200

enum mime_fix_cte { MIME_CTE_TEXT, MIME_CTE_QP, MIME_CTE_BASE64 };

struct mime_fix {
	/* the line in progress */
	struct str line;		/* its first octets, up to MIME_FIX_LIMIT + 1 */
	bool cr;			/* a CR was the last octet fed (maybe a CRLF) */
	bool long_line;			/* the line passed MIME_FIX_LIMIT: now streaming */
	enum mime_fix_cte mode;		/* how the long line is broken */
	size_t out_len;			/* octets on the current output line */
	int qp_esc;			/* octets of an "=XX" still to come */

	/* the entity being read */
	bool in_headers;		/* in a header section */
	enum mime_fix_cte cte;		/* the entity's Content-Transfer-Encoding */
	bool multipart;			/* its Content-Type is multipart/ with a boundary */
	char boundary[MIME_FIX_BOUNDARY + 1];
	struct str field;		/* the header field being gathered */
	bool field_over;		/* it passed MIME_FIX_FIELD: not interpreted */

	/* the open multiparts, outermost first */
	char *bounds[MIME_FIX_DEPTH];
	int depth;

	uint64_t broken;		/* long lines broken so far (for logs and tests) */
};

/* mime_fix_init - a fixer at the start of a message's header section. */
void mime_fix_init(struct mime_fix *f);

/* mime_fix_feed - take n octets of message text, append the fixed text to out. */
void mime_fix_feed(struct mime_fix *f, const char *p, size_t n, struct str *out);

/* mime_fix_finish - the message ended: append what is held back (a last line without CRLF). */
void mime_fix_finish(struct mime_fix *f, struct str *out);

/* mime_fix_free - release the fixer's buffers (it may be initialised again). */
void mime_fix_free(struct mime_fix *f);

/*
 * mime_fix_boundary - the boundary parameter of a Content-Type field value
 * (quoted or a token, RFC 2045 5.1) into out (NUL-terminated, at most
 * MIME_FIX_BOUNDARY octets) when the type is multipart/...; false when it
 * is not multipart or has no usable boundary.
 */
bool mime_fix_boundary(const char *value, size_t len, char out[MIME_FIX_BOUNDARY + 1]);

/* mime_fix_cte_of - a Content-Transfer-Encoding field value as a mode. */
enum mime_fix_cte mime_fix_cte_of(const char *value, size_t len);

#endif
