/*
 * msgs.h - the typed messages impetus threads post to each other
 *
 * Every cross-thread message is one kind in msgs.def, with its name, its
 * senders, the loop role that owns it and its handler; msgs_post is the
 * only way code above core posts. The list, what each message carries and
 * what answers it, is documented in docs/internals.md ("Messages between
 * threads").
 *
 * Roles: each struct loop is created with one role bit (loop_new). A kind's
 * owners say on which roles its handler may run; debug and sanitizer builds
 * abort on a post to (or a dispatch on) any other loop (see core/loop.h).
 *
 * Handlers are ordinary functions in their component's file, named after
 * it (file = prefix) and declared here, so the table in msgs.c can name
 * them; only the loop that owns a kind calls its handler.
 */
#ifndef IMPETUS_MSGS_MSGS_H
#define IMPETUS_MSGS_MSGS_H

#include "core/loop.h"

/* The roles a loop can have: one bit each, passed to loop_new. */
enum msgs_role {
	MSGS_SCHEDULER = 1u << 0,	/* the main thread: queue manager, listeners, logs */
	MSGS_IO = 1u << 1,		/* an I/O loop: SMTP server and client sessions */
	MSGS_SPOOL = 1u << 2,		/* the spool thread: group commit, compaction */
	MSGS_EVENTS = 1u << 3,		/* the events thread: event log, webhooks (src/events/) */
};
#define MSGS_ROLES_ALL (MSGS_SCHEDULER | MSGS_IO | MSGS_SPOOL | MSGS_EVENTS)

enum msgs_kind {
#define MSG(kind, name, from, owners, handler) kind,
#include "msgs/msgs.def"
	MSGS_COUNT
};

/* The handlers, one per kind (defined in their component's file). */
#define MSG(kind, name, from, owners, handler) void handler(void *arg);
#include "msgs/msgs.def"

/* The kind table, indexed by enum msgs_kind. */
extern const struct loop_kind msgs_kinds[MSGS_COUNT];

/* msgs_post - run kind's handler with arg on lp's thread soon. Any thread; never blocks. */
static inline void msgs_post(struct loop *lp, enum msgs_kind kind, void *arg)
{
	loop_post(lp, &msgs_kinds[kind], arg);
}

/* msgs_post_batched - msgs_post with the wake-up at the end of the caller's callbacks (loop_post_batched). */
static inline void msgs_post_batched(struct loop *lp, enum msgs_kind kind, void *arg)
{
	loop_post_batched(lp, &msgs_kinds[kind], arg);
}

/* msgs_post_lazy - msgs_post without an immediate wake-up (loop_post_lazy). */
static inline void msgs_post_lazy(struct loop *lp, enum msgs_kind kind, void *arg)
{
	loop_post_lazy(lp, &msgs_kinds[kind], arg);
}

#endif
