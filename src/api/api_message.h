/*
 * api_message.h - struct imp_message, until src/message/message_view.h lands
 *
 * The module API's view of a message (include/impetus/message.h) is
 * being written on another branch as src/message/message_view.{h,c}. The
 * services here need the struct now, for two things only: a sign
 * subscriber's view of an injected message (queue_inject.c) and
 * imp_message_read (api_message.c). This is the same layout (an
 * envelope someone else owns, whether it is still being received, a
 * scratch buffer); when message_view.h is on main this header becomes an
 * include of it.
 *
 * Ownership: the view belongs to the thread holding the envelope, for
 * the duration of the hook it is passed to.
 */
#ifndef IMPETUS_API_API_MESSAGE_H
#define IMPETUS_API_API_MESSAGE_H

#include <stdbool.h>

#include <impetus/message.h>

#include "core/str.h"
#include "message/envelope.h"

struct imp_message {
	struct envelope *env;
	bool receiving;		/* before spooling: headers writable */
	struct str scratch;
};

#endif
