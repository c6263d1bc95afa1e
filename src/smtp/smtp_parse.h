/*
 * smtp_parse.h - pure parsers of the SMTP protocol (RFC 5321 and extensions)
 *
 * No I/O and no state beyond what the caller passes in: command lines,
 * MAIL/RCPT paths and parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY,
 * ORCPT), xtext, and the incremental DATA-stream scanner that finds the
 * one true end of data (CRLF . CRLF), removes dot-stuffing, reports bare
 * CR / bare LF per section and, when asked, repairs them and folds long
 * lines (the RFC2822_* conformance settings). Shared by the
 * server and (later) the client. Safe on any thread.
 *
 * Errors come back as an SMTP reply (code, enhanced code, text) ready to
 * send, so every malformed input gets a precise answer.
 */
#ifndef IMPETUS_SMTP_SMTP_PARSE_H
#define IMPETUS_SMTP_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* RFC 5321 4.5.3.1: limits the parsers enforce. */
#define SMTP_PATH_MAX      256	/* forward/reverse path, without <> */
#define SMTP_LOCALPART_MAX 64
#define SMTP_DOMAIN_MAX    255

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP,
	SMTP_VERB_QUIT, SMTP_VERB_HELP, SMTP_VERB_VRFY, SMTP_VERB_EXPN,
	SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
};

const char *smtp_verb_name(enum smtp_verb v);

/* A reply to send: "code ext text". ext may be "" (no enhanced code). */
struct smtp_reply {
	int code;		/* 0 = no error */
	char ext[16];		/* e.g. "5.5.4" */
	char text[200];
};

/*
 * smtp_parse_command - split one command line (CRLF already removed) into
 * its verb and the argument text after the verb and one space. Verbs are
 * case-insensitive. "MAIL FROM:" and "RCPT TO:" keep their "FROM:"/"TO:"
 * in args. Unknown verbs give SMTP_VERB_UNKNOWN with args at the line start.
 */
enum smtp_verb smtp_parse_command(const char *line, size_t len, const char **args);

/*
 * smtp_line_is_clean - true when a command line (CRLF removed) holds no
 * byte a command may not carry: no NUL, no CR or LF (bare line ends are a
 * smuggling vector), no other C0 control except HT, no DEL. Bytes >= 0x80
 * pass only as well-formed UTF-8, because SMTPUTF8 (RFC 6531) may allow
 * them in a path; the MAIL/RCPT parsers then decide whether it does (553
 * 5.6.7 when it does not). Call it before smtp_parse_command; a dirty line
 * is best answered "500 5.5.2 Syntax error" by the caller.
 */
bool smtp_line_is_clean(const char *line, size_t len);

/*
 * smtp_with_protocol - the "with" word of our Received: field, from the
 * IANA Mail Transmission Types registry (RFC 3848, RFC 6531 3.7.3):
 * SMTP or ESMTP, "UTF8SMTP" instead of "ESMTP" for an SMTPUTF8
 * transaction, then "S" with TLS and "A" when authenticated (ESMTPSA,
 * UTF8SMTPSA). A HELO session (esmtp false) is never SMTPUTF8 or
 * authenticated: "SMTP" or "SMTPS".
 */
const char *smtp_with_protocol(bool esmtp, bool tls, bool smtputf8, bool auth);

/* smtp_utf8_valid - true when buf is well-formed UTF-8 (RFC 3629). */
bool smtp_utf8_valid(const char *buf, size_t len);

struct smtp_mail_args {
	char *path;		/* reverse-path without <>, "" for null sender; heap */
	int64_t size;		/* SIZE=, -1 when absent */
	uint8_t body;		/* 0 none/7BIT, 1 8BITMIME, 2 BINARYMIME */
	bool smtputf8;
	uint8_t ret;		/* 0 none, 1 FULL, 2 HDRS */
	char *envid;		/* ENVID xtext-decoded, heap, or NULL */
	char *auth;		/* AUTH= (RFC 4954) xtext-decoded, "<>" kept, heap, or NULL */
};

struct smtp_rcpt_args {
	char *path;		/* forward-path without <>; heap */
	uint8_t notify;		/* ENVELOPE_NOTIFY_* bits, 0 when absent */
	char *orcpt;		/* "addr-type;addr" xtext-decoded, heap, or NULL */
};

/* Which extensions the server offered; parameters of others are errors. */
struct smtp_ext_allowed {
	bool size, eightbitmime, smtputf8, dsn, binarymime;
	bool auth;		/* AUTH offered: MAIL may carry AUTH= */
};

/*
 * smtp_parse_mail / smtp_parse_rcpt - parse the args of MAIL ("FROM:<...> params")
 * or RCPT ("TO:<...> params"). Return true on success; on failure fill
 * reply and free partial results (out's pointers are then NULL). args is a
 * NUL-terminated string (the command line after smtp_parse_command).
 * Accepts the common "FROM: <a@b>" space after the colon. Quoted local
 * parts, address literals and source routes (RFC 5321 4.1.2, the route is
 * discarded) are understood; UTF-8 in paths only with SMTPUTF8 given (for
 * RCPT: the smtputf8 of the transaction's MAIL). RCPT TO:<postmaster> (no
 * domain) is allowed; other paths need local@domain; <> only for MAIL.
 * One trailing dot after the domain ("a@example.com.") is accepted and
 * removed from the path handed out (as Postfix normalises it).
 * The replies:
 *   501 5.5.4 Syntax: MAIL FROM:<address>   (or RCPT TO:<address>): no
 *             "FROM:"/"TO:", no brackets, junk after ">"
 *   501 5.1.7 Bad sender address syntax     (5.1.3 ... recipient ...)
 *   501 5.1.7 Bad sender address syntax: address too long   (path over
 *             SMTP_PATH_MAX, local part over 64, domain over 255; 5.1.3 for RCPT)
 *   553 5.6.7 Non-ASCII sender address requires SMTPUTF8    (RFC 6531 3.5)
 *   555 5.5.4 Unsupported parameter: KEY    (unknown, or extension not in ext)
 *   501 5.5.4 Bad KEY parameter             (bad value: SIZE, BODY, RET, ...)
 *   501 5.5.4 Duplicate parameter: KEY
 *   501 5.5.4 Bad parameter syntax          (keyword not an esmtp-keyword)
 * The address is judged before the parameters.
 */
bool smtp_parse_mail(const char *args, const struct smtp_ext_allowed *ext,
		     struct smtp_mail_args *out, struct smtp_reply *reply);
bool smtp_parse_rcpt(const char *args, const struct smtp_ext_allowed *ext,
		     bool smtputf8, struct smtp_rcpt_args *out, struct smtp_reply *reply);
void smtp_mail_args_free(struct smtp_mail_args *a);
void smtp_rcpt_args_free(struct smtp_rcpt_args *a);

/* smtp_path_domain - the domain part of a path ("" when none). */
const char *smtp_path_domain(const char *path);

/*
 * xtext (RFC 3461 4): decode, appending to out; false when malformed, and
 * out is then left as it was. Lower-case hex after "+" is tolerated; "+00"
 * is refused (a NUL would cut C-string consumers short).
 */
bool smtp_xtext_decode(const char *in, size_t len, struct str *out);
/* xtext encode, for passing ENVID/ORCPT on to the next hop. */
void smtp_xtext_encode(const char *in, size_t len, struct str *out);

/*
 * The DATA scanner. Feed it the bytes that follow "354" as they arrive;
 * it appends the unstuffed message to out and stops at CRLF.CRLF, which is
 * the only terminator: bare LF, bare CR, LF.LF, CR.CR and the like are
 * data and are flagged. longest_line (unstuffed, without CRLF, counting
 * the line still in progress) lets the caller refuse over-long lines; a
 * line ends at CRLF and, for counting only, at a bare CR or LF (the SMTP
 * client sends those as CRLF); a dot is a stuffing dot only after a real
 * CRLF. The caller may set, after init, the repairs: fix_bare_headers /
 * fix_bare_body turn a bare CR or LF of that section into CRLF in out,
 * fold_at > 0 breaks lines longer than fold_at octets with CRLF SPACE
 * (RFC 5322 folding, as Postfix's smtp_line_length_limit). The header
 * section ends at the first empty line. A dot right after CRLF (or at the very start)
 * is always a stuffing dot and removed, whatever follows it. The CRLF
 * before the final "." belongs to the message and is appended. Once done,
 * the scanner consumed exactly the terminator and nothing after it
 * (pipelined commands stay with the caller); further calls consume 0.
 */
struct smtp_data_scanner {
	int state;		/* internal */
	bool done;
	bool bare_lf;		/* an LF not preceded by CR was seen */
	bool bare_cr;		/* a CR not followed by LF was seen */
	bool nul;		/* a NUL byte was seen */
	bool bare_headers;	/* a bare CR or LF was in the header section */
	bool bare_body;		/* a bare CR or LF was in the body */
	bool in_body;		/* the empty line after the headers was seen */
	bool folded;		/* a line was broken at fold_at */
	bool fix_bare_headers;	/* set by the caller: repair bare CR/LF to CRLF */
	bool fix_bare_body;
	size_t fold_at;		/* set by the caller: 0, or the longest line kept */
	size_t line_len;	/* internal: current line length */
	size_t longest_line;	/* excluding CRLF */
	uint64_t bytes;		/* message bytes so far, kept or dropped by limit */
};

void smtp_data_scanner_init(struct smtp_data_scanner *sc);
/*
 * smtp_data_scan - consume up to len bytes of buf; returns how many were
 * consumed. When sc->done is set the terminator was consumed and the
 * return value points just past it. At most limit bytes (0 = unlimited)
 * of the message, counted from init, are appended to out; the rest is
 * counted in sc->bytes but dropped so an oversized message costs no memory.
 */
size_t smtp_data_scan(struct smtp_data_scanner *sc, const char *buf, size_t len,
		      struct str *out, uint64_t limit);

/*
 * smtp_scan_chunk - a BDAT chunk's bytes: the same line rules and repairs
 * (bare CR/LF, line length) without unstuffing, appended to out under
 * limit as smtp_data_scan does; state carries across chunks.
 */
void smtp_scan_chunk(struct smtp_data_scanner *sc, const char *buf, size_t len,
		     struct str *out, uint64_t limit);

#endif
