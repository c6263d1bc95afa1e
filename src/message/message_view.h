/*
 * message_view.h - struct imp_message: the module API's view of a message
 *
 * A view wraps an envelope someone else owns (message/envelope.h) and
 * gives the functions of include/impetus/message.h something to work on.
 * Two kinds of holder make one:
 *
 *   - the SMTP server session while a message is received (data_spool,
 *     data_spool_each_rcpt, set_binding) and the sign subscribers on the
 *     CPU pool: `receiving` is true, the envelope still holds the bytes
 *     (env->body, plus env->file for a large message streamed to a file),
 *     and headers and the message vctx may change;
 *   - the queue and the delivery side, with an envelope the spool has:
 *     `receiving` is false; only the envelope and the vctx can be read.
 *
 * Headers are edited in place in env->body. For a streamed message only
 * the in-memory prefix (the first 256 KiB, smtp_server_session.c
 * SPILL_AT) can be edited: when the header section does not end inside
 * it, the header functions answer -E2BIG / NULL.
 *
 * Ownership: the view belongs to the thread that holds the envelope and
 * lives as long as the hook it is passed to; strings returned point into
 * the envelope or into the view's scratch buffer (valid until the next
 * call on the same view or message_view_done). Nothing fails except
 * memory exhaustion (aborts) and the documented negative errno results.
 */
#ifndef IMPETUS_MESSAGE_MESSAGE_VIEW_H
#define IMPETUS_MESSAGE_MESSAGE_VIEW_H

#include <stdbool.h>

#include <impetus/message.h>

#include "core/str.h"
#include "message/envelope.h"

struct imp_message {
	struct envelope *env;
	bool receiving;		/* before spooling: headers and vctx writable */
	struct str scratch;	/* imp_header_get's NUL-terminated copy */
};

/* message_view_init - a view of env; receiving as above. */
void message_view_init(struct imp_message *m, struct envelope *env, bool receiving);
/* message_view_done - release the view's scratch memory (not the envelope). */
void message_view_done(struct imp_message *m);

#endif
