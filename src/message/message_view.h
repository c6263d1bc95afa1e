/*
 * message_view.h - struct imp_message, the module API's view of a message
 *
 * A view wraps an envelope the daemon owns; it never owns it unless made
 * with message_view_new(env, true). The read accessors of
 * include/impetus/message.h (envelope part) are in message_view.c.
 *
 * Ownership: whoever holds the envelope holds the view; a view handed to
 * another thread (the SMTP client's batch) wraps a snapshot nobody
 * changes while it is out.
 */
#ifndef IMPETUS_MESSAGE_MESSAGE_VIEW_H
#define IMPETUS_MESSAGE_MESSAGE_VIEW_H

#include <stdbool.h>

#include <impetus/message.h>

struct envelope;

struct imp_message {
	struct envelope *env;
	bool owns_env;		/* message_view_free frees env too */
};

/* message_view_new - a heap view of env; own: env is freed with the view. */
struct imp_message *message_view_new(struct envelope *env, bool own);
/* message_view_free - free a view made by message_view_new (NULL is a no-op). */
void message_view_free(struct imp_message *m);

#endif
