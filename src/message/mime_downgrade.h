/*
 * mime_downgrade.h - 8-bit MIME content made 7-bit for a server without
 * 8BITMIME (RFC 6152 3, RFC 2045), the way Postfix's smtp client does it
 *
 * mime_downgrade walks a message's MIME structure (multipart parts by
 * their boundary, message/rfc822 enclosures as messages of their own)
 * and re-encodes every leaf part (message/global and the other RFC 6532
 * and 6533 types included, which allow it) whose body
 * holds 8-bit bytes and whose Content-Transfer-Encoding is 7bit, 8bit,
 * binary or absent as quoted-printable (mime_qp_encode): its
 * Content-Transfer-Encoding field is replaced by "quoted-printable", and
 * a message without MIME-Version gets "MIME-Version: 1.0". Enclosures and
 * multiparts that were declared 8bit or binary are relabelled 7bit.
 * Everything else is copied byte for byte:
 *
 *   - header sections, 8-bit or not (RFC 2047 re-encoding of headers is
 *     not attempted, as Postfix does not; a message whose headers need
 *     UTF-8 needs SMTPUTF8, which the client checks on its own);
 *   - parts already base64 or quoted-printable (an 8-bit byte there is
 *     malformed input, sent as it came);
 *   - the preamble and epilogue of a multipart.
 *
 * Nesting deeper than MIME_DOWNGRADE_DEPTH is treated as one leaf.
 *
 * Pure functions of their arguments: any thread, nothing fails except
 * memory exhaustion (abort, core/mem.h). Input is untrusted message
 * bytes; the output is a function of them only, never reads past len.
 */
#ifndef IMPETUS_MESSAGE_MIME_DOWNGRADE_H
#define IMPETUS_MESSAGE_MIME_DOWNGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* How deep multiparts and enclosures are followed (RFC 2046 sets no limit). */
#define MIME_DOWNGRADE_DEPTH 32
/* Longest quoted-printable line, the soft line break "=" included (RFC 2045 6.7). */
#define MIME_QP_LINE_MAX 76

/* mime_has_8bit - does p[0..n) hold a byte >= 0x80 or a NUL? */
bool mime_has_8bit(const char *p, size_t n);

/*
 * mime_qp_encode - append p[0..n) as quoted-printable to out. A CRLF or
 * a bare LF in the input is a line break (written CRLF); every other
 * byte is data: printable ASCII but "=" as is, "=HH" for the rest, a
 * space or tab at the end of a line encoded too, lines cut with soft line
 * breaks so none passes MIME_QP_LINE_MAX. Decoding gives the input back
 * with each line break as CRLF.
 */
void mime_qp_encode(const char *p, size_t n, struct str *out);

/*
 * mime_downgrade - append to out the message msg[0..len) with its 8-bit
 * body parts made quoted-printable (see above). Returns true when
 * something was converted; false when nothing needed it (out then holds
 * an exact copy).
 */
bool mime_downgrade(const char *msg, size_t len, struct str *out);

#endif
