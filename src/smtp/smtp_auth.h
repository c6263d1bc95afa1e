/*
 * smtp_auth.h - pure parsers of the SMTP AUTH exchange (RFC 4954, RFC 4616)
 *
 * Base64 of the client's responses, the PLAIN message
 * ([authzid] NUL authcid NUL passwd), the mechanism names and the
 * masking of AUTH lines for traces. No I/O, no state: safe on any thread,
 * and the fuzz target (tests/fuzz/fuzz_smtp_auth.c) drives them directly.
 *
 * Credentials pass through caller-owned buffers only; nothing here logs
 * or keeps a copy.
 */
#ifndef IMPETUS_SMTP_SMTP_AUTH_H
#define IMPETUS_SMTP_SMTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

/* Caps on what a client may send (RFC 4954 4: at least 12288 octets per line are allowed). */
#define SMTP_AUTH_USER_MAX 255		/* authentication identity, octets */
#define SMTP_AUTH_PASS_MAX 1024		/* password, octets */
#define SMTP_AUTH_LINE_MAX 12288	/* one base64 response line, CRLF excluded */

/*
 * smtp_auth_b64_decode - strict base64 (RFC 4648 4: the standard alphabet,
 * "=" padding to a multiple of 4, no blanks) appended to out. "=" alone is
 * the empty response of RFC 4954 4. False for anything else, and out is
 * then left as it was.
 */
bool smtp_auth_b64_decode(const char *in, size_t len, struct str *out);

/* smtp_auth_b64_encode - base64 of p appended to out (the 334 challenges). */
void smtp_auth_b64_encode(const void *p, size_t n, struct str *out);

/* The outcome of reading credentials. */
enum smtp_auth_parse {
	SMTP_AUTH_PARSE_OK = 0,
	SMTP_AUTH_PARSE_MALFORMED = -1,	/* not [authzid] NUL authcid NUL passwd, or empty parts */
	SMTP_AUTH_PARSE_TOO_LONG = -2,	/* a part over its cap */
	SMTP_AUTH_PARSE_AUTHZID = -3,	/* acting for someone else: not supported (535) */
};

/*
 * smtp_auth_plain_split - the decoded PLAIN message (RFC 4616 2) of len
 * octets. On success *user and *pass point into buf (NUL-terminated by
 * the separators and by buf's own terminator, which str keeps); the
 * authzid must be empty or equal to the authcid.
 */
enum smtp_auth_parse smtp_auth_plain_split(const char *buf, size_t len, const char **user,
					   const char **pass);

/* smtp_auth_check_part - a LOGIN user name or password: no NUL, within cap, user not empty. */
enum smtp_auth_parse smtp_auth_check_part(const char *p, size_t len, size_t cap);

/* Mechanisms, as bits (SMTP_Extensions = ( "AUTH LOGIN PLAIN" )). */
#define SMTP_AUTH_MECH_PLAIN 0x1u
#define SMTP_AUTH_MECH_LOGIN 0x2u

/* smtp_auth_mech - the bit of a mechanism name (case-insensitive), 0 when unknown. */
unsigned smtp_auth_mech(const char *name, size_t len);

/*
 * smtp_auth_mask_line - a command line as a trace may show it: "AUTH
 * <mech>" and nothing of a response after it ("AUTH PLAIN ****"); the
 * line itself when it is not an AUTH command.
 */
void smtp_auth_mask_line(const char *line, size_t len, struct str *out);

/*
 * smtp_auth_log_user - a user name as log lines show it: printable ASCII
 * but '"' and '\\' as is, every other byte \xHH, cut after 64 bytes ("...").
 */
void smtp_auth_log_user(struct str *out, const char *user);

#endif
