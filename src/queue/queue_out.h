/*
 * queue_out.h - what the queue manager's files share (private to src/queue/)
 *
 * queue_outcome.c applies outcomes; queue_log.c writes the mainlog/bouncelog
 * lines of outcomes; queue_bounce.c builds and injects bounces. All run on
 * the scheduler thread (see queue_int.h for the map of the files).
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
struct envelope_loc;
struct envelope;

/* The result of one attempt for one recipient. */
struct queue_outcome {
	int code;		/* SMTP reply code, 0 when none */
	uint8_t stage;		/* enum smtp_stage */
	const char *response;	/* reply text or reason */
	const char *remote;	/* remote IP, "" when none */
	const char *remote_host;	/* its MX host name, "" when none or unknown */
	impetus_id batch_id;
	impetus_id conn_id;
	uint64_t bytes;
	bool quiet;		/* a failure not to bounce (imp_queue_fail quiet) */
	bool peer_dsn;		/* delivered to a server that offered DSN (it reports from now on) */
	bool expired;		/* the failure is Message_Expiration (events: Expiration) */
};

int64_t queue_now_us(void);
struct conf *queue_conf(struct queue *q);
struct spool *queue_spool(struct queue *q);
struct loop *queue_scheduler(struct queue *q);
/* queue_io_pool - the daemon's IO pool, where bounces are rendered (reads the spool). */
struct pool *queue_io_pool(struct queue *q);
const char *queue_hostname(const struct conf *conf);

/*
 * queue_outcome.c: the outcome of one recipient. fail and delivered free
 * e and may finish (and free) its message; defer puts e back in dq.
 */
void queue_outcome_delivered(struct queue *q, struct queue_dest *dq, struct qentry *e,
			     const struct queue_outcome *o);
void queue_outcome_defer(struct queue *q, struct queue_dest *dq, struct qentry *e,
			 const struct queue_outcome *o);
void queue_outcome_fail(struct queue *q, struct queue_dest *dq, struct qentry *e,
			const struct queue_outcome *o);
/* queue_outcome_expire - e (taken from dq) fails as expired: stage 21, out of band. */
void queue_outcome_expire(struct queue *q, struct queue_dest *dq, struct qentry *e,
			  const char *why);
/* queue_outcome_fail_all - fail or defer every ready entry (the whole destination failed). */
void queue_outcome_fail_all(struct queue *q, struct queue_dest *dq, bool permanent,
			    const char *why);
/*
 * queue_stored_expiry - when a message's stored retention (imp_inject's,
 * VCTX_KEY_RETENTION in its context) ends it (unix seconds), or 0 when it
 * has none: the queue applies it to new and recovered messages alike.
 */
int64_t queue_stored_expiry(const struct envelope *sm);

/* queue_outcome_expiry - when m expires (unix seconds): its retention, else Message_Expiration of dq. */
int64_t queue_outcome_expiry(struct queue_dest *dq, const struct qmsg *m);
/* queue_outcome_expired - whether m is past its expiry (queue_outcome_expiry). */
bool queue_outcome_expired(struct queue *q, struct queue_dest *dq, const struct qmsg *m,
			   int64_t now_s);
/* queue_outcome_message_final - one more recipient of m is final; finish m when none is left. */
void queue_outcome_message_final(struct queue *q, struct qmsg *m);
/*
 * queue_outcome_finish - m has no recipient left to try (and is out of
 * q->msgs): send its report (the bounce job writes its MESSAGE_DONE once
 * the report is spooled), or write the MESSAGE_DONE now; frees m.
 */
void queue_outcome_finish(struct queue *q, struct qmsg *m);
/* queue_outcome_msg_free - free a message and what it remembered. */
void queue_outcome_msg_free(struct qmsg *m);
/* queue_outcome_moved - compaction moved message id (queue_moved). */
void queue_outcome_moved(struct queue *q, uint64_t id, const struct envelope_loc *loc);
/* queue_outcome_batch_back - a batch of m came back: its copy of the location is no longer read. */
void queue_outcome_batch_back(struct queue *q, struct qmsg *m);

/* queue_log.c: each line is also a log event (impetus/hooks.h), built once. */
/* queue_log_reception - the R lines of a newly accepted message (one per recipient). */
void queue_log_reception(struct queue *q, const struct envelope *msg);
/* type: 'D', 'T' or 'P' (P also writes the bouncelog B line). */
void queue_log_outcome(struct queue *q, const struct queue_dest *dq, const struct qentry *e,
		       const struct queue_outcome *o, char type);
/*
 * queue_log_attempt - the A events of a batch handed to connection conn
 * (one per recipient, with its own queue's domain; no log line). Nothing is built unless someone
 * subscribed to A.
 */
void queue_log_attempt(struct queue *q, const struct qbatch *qb, impetus_id conn);

/*
 * queue_bounce.c: m has permanent failures; send the DSN if one is due.
 * Returns true when a bounce job took over writing m's MESSAGE_DONE (after
 * the bounce is submitted, so the original's space is not reclaimed before
 * the bounce has read it, and "done" is never durable before the bounce).
 */
bool queue_bounce(struct queue *q, struct qmsg *m);

/*
 * queue_bounce_delay - e of dq was just deferred (o): send its delay
 * notice if Generate_Delay_DSN is on and one fell due since the last
 * (see queue_bounce.c for the schedule). retry_until is the message's
 * expiry, for Will-Retry-Until.
 */
void queue_bounce_delay(struct queue *q, struct queue_dest *dq, struct qentry *e,
			const struct queue_outcome *o, int64_t retry_until);

/*
 * queue_bounce_delays_due - how many delay notices have fallen due by
 * now for a message received at received: the first interval after
 * reception, each later one after twice the previous gap, capped at max.
 * Pure; exported for the unit test.
 */
uint32_t queue_bounce_delays_due(int64_t received, int64_t now, int64_t interval, int64_t max);

#endif
