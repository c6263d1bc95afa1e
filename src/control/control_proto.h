/*
 * control_proto.h - the console's wire protocol (docs/console.md, "Protocol")
 *
 * A request is one line: "COMMAND ARG ARG...\n", words separated by
 * blanks (space, tab), at most CTL_REQUEST_MAX bytes with the newline, at
 * most CTL_ARGS_MAX words; the word "--json" anywhere asks for a JSON
 * answer and is not passed to the command. A reply is a status line,
 * "OK <length>\n" or "ERR <length>\n", then exactly <length> bytes of
 * body: the answer, or the error line. Length-prefixed, so no body text
 * can be mistaken for the end of the reply.
 *
 * Pure functions, no I/O: the daemon (control.c) and the client
 * (src/tools/impetus.c) share them, and tests/fuzz exercises both parsers.
 */
#ifndef IMPETUS_CONTROL_CONTROL_PROTO_H
#define IMPETUS_CONTROL_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/str.h"

#define CTL_REQUEST_MAX 4096		/* bytes in a request line, newline included */
#define CTL_ARGS_MAX 64			/* words in a request */
#define CTL_REPLY_MAX ((size_t)64 << 20)	/* the largest body a client accepts */
#define CTL_HEADER_MAX 32		/* "ERR 18446744073709551615\n" fits */

struct ctl_request {
	int argc;
	const char *argv[CTL_ARGS_MAX + 1];	/* point into the parsed line; argv[argc] NULL */
	bool json;
};

/*
 * ctl_request_parse - split line (len bytes, the newline and an optional
 * CR before it already removed) into req, in place: blanks become NULs.
 * line must have room for len + 1 bytes. Returns 0, or -1 with a
 * one-line reason in err (empty request, control or NUL byte, too many
 * words, too long).
 */
int ctl_request_parse(char *line, size_t len, struct ctl_request *req, struct str *err);

/* ctl_reply_format - append the status line and body of a reply to out. */
void ctl_reply_format(struct str *out, bool ok, const char *body, size_t len);

/*
 * ctl_reply_header_parse - read a status line from the first len bytes
 * of buf. Returns 1 with *ok, *body_len and *header_len (bytes of the
 * status line, newline included) set; 0 when more bytes are needed; -1
 * when it is not a valid status line (or the length exceeds
 * CTL_REPLY_MAX).
 */
int ctl_reply_header_parse(const char *buf, size_t len, bool *ok, size_t *body_len,
			   size_t *header_len);

/* ctl_word_ok - whether s can be sent as one word of a request (non-empty, no blank or control byte). */
bool ctl_word_ok(const char *s);

#endif
