/*
 * impetus/inject.h - submitting a message from inside the daemon
 *
 * What bounces, the HTTP API and modules use to create mail: an envelope
 * and the message bytes go through the same path as an SMTP reception
 * (signing when asked, the spool's group commit, the queue) without a
 * socket. The message is durable once done is called with a zero error.
 */
#ifndef IMPETUS_INJECT_H
#define IMPETUS_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMP_INJECT_SIGN        0x01	/* run the sign hook before spooling */
#define IMP_INJECT_LOG         0x02	/* write an R line (and the reception log hook) */
#define IMP_INJECT_NO_TRACE    0x04	/* do not prepend a Received: field */
#define IMP_INJECT_NEW_ID      0x08	/* replace a Message-ID: field with a fresh one */

struct imp_inject {
	const char *sender;			/* envelope sender, "" for <> */
	const char *const *rcpts;		/* envelope recipients */
	size_t nrcpts;				/* >= 1 */
	const char *data;			/* the message: headers, empty line, body */
	size_t len;				/* CRLF or LF line ends; LF is made CRLF */
	const char *binding;			/* NULL or "": chosen as for SMTP mail */
	const char *protocol;			/* NULL: "internal"; "http" for the HTTP API */
	unsigned flags;				/* IMP_INJECT_* */
	const char *const *vctx;		/* message context: key, value, key, value, ... */
	size_t nvctx;				/* number of pairs; stored with the message (session.h limits) */
	/*
	 * retention: how long the message may wait in the queues, in
	 * seconds after its injection, before it expires and bounces; 0 =
	 * Message_Expiration. Stored with the message (in its context, as
	 * "impetus.retention"), so a restart keeps it.
	 */
	uint32_t retention;
};

/*
 * done - called on the submitting loop's thread (the scheduler when the
 * caller was a pool or foreign thread) with err 0 and the new message's
 * id once it is durable, or a negative errno (-EINVAL bad request,
 * -ENOSPC, -EIO spool failure, -ESHUTDOWN the daemon is stopping).
 */
typedef void (*imp_inject_done_fn)(void *arg, int err, uint64_t id);

/*
 * imp_inject - submit a message. Any thread; never blocks. Everything in
 * req is copied before imp_inject returns. Returns 0 when submitted (done,
 * which may be NULL, will be called exactly once), or at once, without
 * calling done: -EINVAL for a malformed request (no recipient, an empty
 * recipient, an address with CR, LF, '<' or '>', a message that does not
 * start with a header block or holds a NUL byte, unknown flags, a binding
 * no Binding stanza names), -EFBIG for a message larger than the global
 * Max_Message_Size, -ENOTCONN without a daemon (tools, tests) and
 * -ESHUTDOWN once the daemon is stopping.
 */
int imp_inject(const struct imp_inject *req, imp_inject_done_fn done, void *arg);

#ifdef __cplusplus
}
#endif

#endif
