/*
 * msg_build.h - one RFC 5322 message from the "content" of a transmission
 *
 * The transmissions API (Momentum 4 / SparkPost shape, docs/message-build.md)
 * describes a message as JSON: from, subject, text, html, reply_to,
 * headers, attachments[], inline_images[] (or email_rfc822, a ready
 * message). msg_build turns that content, already substituted (plain
 * strings), plus one recipient's address into the bytes of one message:
 * CRLF line ends, no line over 998 octets, MIME with UTF-8 everywhere,
 * RFC 2047 for non-ASCII header text and RFC 2231 for non-ASCII file
 * names.
 *
 * Pure: no I/O, no threads, no state but core/id.h's counter when the
 * caller gives no unique token; any thread. Output is appended to a
 * caller's struct str, each byte written once (no quadratic copies).
 * Input is untrusted: every refusal is an error naming the field path
 * ("content.attachments[2].data", "address.email") and saying what is
 * wrong, for a 422; nothing is appended then.
 */
#ifndef IMPETUS_MESSAGE_MSG_BUILD_H
#define IMPETUS_MESSAGE_MSG_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/str.h"

#define MSG_BUILD_FIELD_MAX 96		/* the field path, NUL included */
#define MSG_BUILD_TEXT_MAX 160		/* the message, NUL included */

/* Why a content was refused: where, and what. */
struct msg_build_err {
	char field[MSG_BUILD_FIELD_MAX];	/* "content.headers.X-Foo" */
	char text[MSG_BUILD_TEXT_MAX];		/* "must not contain CR or LF" */
};

/* What the message takes from outside the content. */
struct msg_build_opts {
	const char *hostname;	/* right side of Message-ID (Hostname option); required */
	const char *unique;	/* left side of Message-ID; NULL: a fresh core/id.h id */
	int64_t now;		/* Date:, unix seconds (UTC) */
};

/*
 * msg_build - append the message for content (the transmission's
 * "content" object) and address (a recipient's "address": an object
 * {email, name?, header_to?} or a plain address string) to out.
 * 0 on success; -EINVAL with *err filled and out as it was when the
 * input is refused.
 */
int msg_build(const json_t *content, const json_t *address, const struct msg_build_opts *o,
	      struct str *out, struct msg_build_err *err);

/*
 * msg_build_header - append "name: value" CRLF, value unstructured text
 * (UTF-8 without CR, LF or NUL): words with non-ASCII bytes, words that
 * look like encoded-words and words too long for a line are written as
 * RFC 2047 encoded-words (UTF-8; Q unless a third longer than B), and the
 * field is folded within 78 octets where it can be, 998 always.
 */
void msg_build_header(struct str *out, const char *name, const char *value, size_t len);

#endif
