/*
 * dsn.h - rendering delivery status notifications (bounces, RFC 3464)
 *
 * dsn_render turns the facts about one original message and some of its
 * recipients into a complete bounce message: RFC 5322 headers and a
 * multipart/report (RFC 6522) with a human-readable part, the
 * message/delivery-status part (RFC 3464) and, as RFC 3461 RET and the
 * Bounces_Inline_Original option ask, the original message or its header.
 * The caller injects the result like any other message, with the null
 * reverse-path, to info->to.
 *
 * Everything is a pure function of its arguments (no clock, no hostname
 * lookup, no globals), so any thread may call it and tests can compare
 * bytes. Nothing fails except memory exhaustion, which aborts
 * (core/mem.h). Untrusted strings (remote replies, addresses) are cleaned:
 * no control character or bare CR/LF ever reaches the output, and the
 * report parts stay 7-bit (see docs/bounces.md for each rule).
 *
 * SMTPUTF8 (RFC 6533): with info->utf8 set the report is a "global"
 * one: report-type=global-delivery-status, part 2 is
 * message/global-delivery-status, the original is message/global (or
 * message/global-headers), and an address that is not all ASCII is
 * written with the "utf-8" address type as raw UTF-8 (dsn_utf8_addr);
 * the header and the text part may then carry UTF-8 (RFC 6532). Without
 * it 8-bit bytes in addresses are written as xtext "+HH", as before, and
 * the report stays 7-bit. Diagnostic text is always cleaned to ASCII ("?"
 * for 8-bit bytes).
 */
#ifndef IMPETUS_MESSAGE_DSN_H
#define IMPETUS_MESSAGE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "message/envelope.h"

/* One recipient's block of the report. All strings are borrowed. */
struct dsn_rcpt {
	const char *addr;		/* final recipient (envelope) */
	const char *orcpt;		/* ORCPT as stored "rfc822;a@b", or NULL */
	const char *action;		/* "failed", "delayed", "delivered", "relayed", "expanded" */
	const char *status;		/* "5.1.1" (dsn_status_from_reply); NULL: x.0.0 from action */
	const char *remote_mta;		/* MX host name or IP, or NULL */
	const char *diagnostic;		/* remote reply text ("550 5.1.1 user unknown") or NULL */
	int64_t last_attempt;		/* unix time, 0 = none */
	int64_t will_retry_until;	/* for "delayed", 0 = none */
};

/* Bounces_Inline_Original, in the option's enum order headers|none|all. */
enum dsn_inline { DSN_INLINE_HEADERS = 0, DSN_INLINE_NONE = 1, DSN_INLINE_ALL = 2 };

/* The whole report. All strings are borrowed; NULL means absent. */
struct dsn_info {
	const char *reporting_mta;	/* our Hostname */
	const char *from;		/* MailerDaemon address (NULL: MAILER-DAEMON@reporting_mta) */
	const char *to;			/* the original envelope sender (bounce recipient) */
	const char *envid;		/* original ENVID (xtext decoded) or NULL */
	const char *orig_msg_id;	/* our queue id of the original, for the text part */
	int64_t arrival;		/* unix time the original was received, 0 = unknown */
	uint8_t ret;			/* enum envelope_ret of the original */
	int inline_mode;		/* enum dsn_inline, used when ret is ENVELOPE_RET_NONE */
	const char *orig;		/* original message bytes (headers + body) or NULL */
	size_t orig_len;
	size_t nrcpt;
	const struct dsn_rcpt *rcpts;
	int64_t now;			/* for Date: (tests pass a fixed value) */
	const char *message_id;		/* Message-ID value, e.g. "<id@host>" */
	const char *boundary;		/* MIME boundary, or NULL to derive one from message_id */
	bool utf8;			/* RFC 6533 global report (dsn_needs_utf8) */
};

/* The buffer size dsn_status_from_reply needs. */
#define DSN_STATUS_SIZE 16

/*
 * dsn_render - append the complete bounce message (RFC 5322 header +
 * multipart/report body, every line ending in CRLF) to out.
 */
void dsn_render(const struct dsn_info *info, struct str *out);

/*
 * dsn_status_from_reply - the "x.y.z" status for a reply: the enhanced
 * code the text carries ("550 5.1.1 ..." or "5.1.1 ...") when it has one
 * of the reply's class, else "2.0.0"/"4.0.0"/"5.0.0" by the reply code's
 * class. For code 0 (a local error, no reply) the class comes from
 * permanent (5 or 4) and an enhanced code in text is used when it agrees.
 * buf is at least DSN_STATUS_SIZE bytes; returns buf.
 */
const char *dsn_status_from_reply(int code, const char *text, bool permanent,
				  char buf[DSN_STATUS_SIZE]);

/*
 * dsn_utf8_addr - append addr as RFC 6533 utf-8-addr-unitext: printable
 * ASCII and well-formed UTF-8 as they are; "\", "+", "=", SP, control
 * bytes and bytes that are not well-formed UTF-8 as EmbeddedUnicodeChar
 * "\x{HH}" (an ill-formed byte is written as the code point of its
 * value, so the field stays one line of valid UTF-8). An embedded
 * "\x{HEX}" already in addr (an ORCPT given in that form) is kept.
 */
void dsn_utf8_addr(const char *addr, struct str *out);

/*
 * dsn_utf8_addr_xtext - append addr as RFC 6533 utf-8-addr-xtext, the
 * 7-bit form of a "utf-8" ORCPT for a transaction without SMTPUTF8:
 * QCHARs (printable ASCII but "+" and "=") as they are, every other
 * character as "\x{HEX}" of its code point (an ill-formed byte as its
 * value); an embedded "\x{HEX}" already in addr is kept.
 */
void dsn_utf8_addr_xtext(const char *addr, struct str *out);

/* dsn_is_ascii - is s (NUL-terminated, NULL allowed) all 7-bit? */
bool dsn_is_ascii(const char *s);

/*
 * dsn_needs_utf8 - must the report about these recipients to sender be
 * an RFC 6533 global one? When any address (the sender, a recipient, the
 * address of an ORCPT) is not all ASCII, or the original was an SMTPUTF8
 * message (orig_smtputf8) whose header section (in info->orig) carries
 * 8-bit bytes.
 */
bool dsn_needs_utf8(const struct dsn_info *info, bool orig_smtputf8);

/*
 * dsn_wanted - must a DSN with this action ("failed", "delayed",
 * "delivered", "relayed", "expanded") be sent for a recipient with these
 * NOTIFY bits (ENVELOPE_NOTIFY_*, 0 = not given: failure and delay) to this
 * envelope sender? Never to the null sender "" (RFC 5321 4.5.5).
 */
bool dsn_wanted(const char *sender, uint8_t notify, const char *action);

#endif
