/*
 * pickup_file.h - the pickup file: one message and its envelope, written
 * by `impetus sendmail` when the daemon does not answer, read by the
 * daemon's pickup importer (pickup.c)
 *
 * The format (docs/sendmail.md, "The pickup directory"): a first line
 * "IMPETUS-PICKUP 1", then "name: value" lines, then one empty line,
 * then the message exactly as submitted (LF or CRLF lines):
 *
 *   IMPETUS-PICKUP 1
 *   uid: 1000
 *   sender: alice@host.example        (empty for the null sender <>)
 *   rcpt: bob@example.com             (one line per recipient, >= 1)
 *   notify: success,failure           (optional: never | a list)
 *   ret: hdrs                         (optional: full | hdrs)
 *   envid: abc                        (optional)
 *   body: 8bitmime                    (optional: 7bit | 8bitmime)
 *
 *   From: ...
 *
 * Lines end with LF; values are printable ASCII without '<' or '>' in
 * addresses. Unknown names are an error (a newer writer's file is not
 * half-understood). Nothing here touches a file: pickup_file_format
 * appends to a string, pickup_file_parse reads a buffer, so the parser
 * is a pure function with a fuzz target (tests/fuzz/fuzz_pickup_file.c).
 *
 * Ownership: a struct pickup_file points into the buffer it was parsed
 * from, except rcpts (an array the struct owns): pickup_file_free.
 */
#ifndef IMPETUS_PICKUP_PICKUP_FILE_H
#define IMPETUS_PICKUP_PICKUP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define PICKUP_MAGIC "IMPETUS-PICKUP 1"
#define PICKUP_HEADER_MAX 262144	/* bytes before the message */
#define PICKUP_RCPTS_MAX 10000
#define PICKUP_VALUE_MAX 998		/* one header line's worth */

struct pickup_span {
	const char *s;
	size_t len;
};

struct pickup_file {
	int64_t uid;			/* -1 when absent */
	struct pickup_span sender;
	struct pickup_span *rcpts;	/* owned */
	size_t nrcpts;
	uint8_t notify;			/* ENVELOPE_NOTIFY_* bits, 0 = none given */
	uint8_t ret;			/* enum envelope_ret */
	uint8_t body_type;		/* enum envelope_body_type */
	struct pickup_span envid;	/* len 0 = none */
	const char *data;		/* the message */
	size_t len;
};

/* pickup_file_format - append the envelope lines and the empty line (not the message). */
void pickup_file_format(struct str *out, const struct pickup_file *f);

/*
 * pickup_file_parse - parse buf into f. 0, or -EINVAL with a reason in
 * err (the line number and what is wrong). f needs pickup_file_free in
 * both cases.
 */
int pickup_file_parse(const char *buf, size_t len, struct pickup_file *f, struct str *err);

void pickup_file_free(struct pickup_file *f);

/* pickup_notify_parse - "never" or a list of success,failure,delay: bits, or -1. */
int pickup_notify_parse(const char *s, size_t len);

#endif
