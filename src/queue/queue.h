/*
 * queue.h - the queue manager (scheduler thread)
 *
 * For now the queue holds every accepted or recovered message and writes
 * its reception (R) lines; delivery, retries and per-domain queues come
 * with the delivery milestone. Owned by the scheduler thread.
 */
#ifndef IMPETUS_QUEUE_QUEUE_H
#define IMPETUS_QUEUE_QUEUE_H

#include <stddef.h>

struct spool_msg;
struct queue;

struct queue *queue_new(void);
/* queue_accept - take a newly received, durable message; logs R lines. */
void queue_accept(struct queue *q, struct spool_msg *msg);
/* queue_recovered - take a message found by spool recovery (no R line). */
void queue_recovered(struct queue *q, struct spool_msg *msg);
size_t queue_message_count(const struct queue *q);
size_t queue_recipient_count(const struct queue *q);
void queue_free(struct queue *q);

#endif
