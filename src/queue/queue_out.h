/*
 * queue_out.h - what the queue manager's files share (private to src/queue/)
 *
 * queue.c owns the queues; queue_log.c writes the mainlog/bouncelog lines
 * of outcomes; queue_bounce.c builds and injects bounces. All run on the
 * scheduler thread.
 */
#ifndef IMPETUS_QUEUE_QUEUE_OUT_H
#define IMPETUS_QUEUE_QUEUE_OUT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/id.h"
#include "queue/queue_int.h"

struct conf;
struct loop;
struct pool;
struct spool;
struct spool_msg;

/* The result of one attempt for one recipient. */
struct queue_outcome {
	int code;		/* SMTP reply code, 0 when none */
	uint8_t stage;		/* enum smtp_stage */
	const char *response;	/* reply text or reason */
	const char *remote;	/* remote IP, "" when none */
	impetus_id batch_id;
	impetus_id conn_id;
	uint64_t bytes;
};

int64_t queue_now_us(void);
struct conf *queue_conf(struct queue *q);
struct spool *queue_spool(struct queue *q);
struct loop *queue_scheduler(struct queue *q);
/* queue_io_pool - the pool that renders bounces (reads the spool). */
struct pool *queue_io_pool(struct queue *q);
const char *queue_hostname(const struct conf *conf);

void queue_enqueue(struct queue *q, struct dq *dq, struct qentry *e);
void queue_entry_fail(struct queue *q, struct dq *dq, struct qentry *e,
		      const struct queue_outcome *o);
void queue_entry_defer(struct queue *q, struct dq *dq, struct qentry *e,
		       const struct queue_outcome *o);
void queue_message_final(struct queue *q, struct qmsg *m);

/* queue_log.c */
void queue_log_reception(const struct spool_msg *msg);
/* type: 'D', 'T' or 'P' (P also writes the bouncelog B line). */
void queue_log_outcome(struct queue *q, const struct dq *dq, const struct qentry *e,
		       const struct queue_outcome *o, char type);

/*
 * queue_bounce.c: m has permanent failures; send the DSN if one is due.
 * Returns true when a bounce job took over writing m's MESSAGE_DONE (after
 * the bounce is submitted, so the original's space is not reclaimed before
 * the bounce has read it, and "done" is never durable before the bounce).
 */
bool queue_bounce(struct queue *q, struct qmsg *m);

#endif
