/*
 * impetus/queue.h - acting on queued messages
 *
 * A queued message is known by its id (imp_message_id, the logs). The
 * queues belong to the scheduler thread: every function here may be
 * called from any thread, posts the request there, and reports through
 * done(arg, err) on the calling loop's thread (the scheduler's for a
 * pool or foreign thread); done may be NULL. err is 0, -ENOENT (no such
 * message, or nothing of it is queued any more), -EINVAL (a bad
 * argument), or -ENOTCONN without a daemon (then done runs at once).
 * Recipients out on a connection finish their attempt; if it does not
 * deliver them, a fail or rebind applies to them when they come back.
 */
#ifndef IMPETUS_QUEUE_H
#define IMPETUS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*imp_queue_done_fn)(void *arg, int err);

/* imp_queue_requeue - make the message's waiting recipients due now (retry counts kept). */
void imp_queue_requeue(uint64_t id, imp_queue_done_fn done, void *arg);

/*
 * imp_queue_fail - fail the message's queued recipients permanently: a P
 * line with code and text (e.g. 554, "5.7.1 removed by policy"; code
 * 500..599 and text one line, else -EINVAL), then a bounce to the sender
 * unless quiet. The message leaves the spool.
 */
void imp_queue_fail(uint64_t id, int code, const char *text, bool quiet,
		    imp_queue_done_fn done, void *arg);

/*
 * imp_queue_rebind - send the message's queued recipients from another
 * binding ("" = default; -ENOENT also when no such binding): they move to
 * that binding's queues, due now. Stored in the spool.
 */
void imp_queue_rebind(uint64_t id, const char *binding, imp_queue_done_fn done, void *arg);

/*
 * imp_queue_requeue_batch - imp_queue_requeue for n ids at once, one post;
 * done gets 0 when at least one was found, else -ENOENT.
 */
void imp_queue_requeue_batch(const uint64_t *ids, size_t n, imp_queue_done_fn done, void *arg);

#ifdef __cplusplus
}
#endif

#endif
