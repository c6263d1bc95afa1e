/*
 * queue_outcome.c - what happens to a recipient after an attempt
 *
 *   delivered  D line, RCPT_STATE delivered in the spool, final;
 *              remembered (and RCPT_FAILURE, action relayed, written
 *              first) for a "relayed" DSN when the recipient asked for
 *              NOTIFY=SUCCESS and the server did not offer DSN
 *   deferred   T line, retry after Retry_Interval doubled per earlier
 *              failure (capped by Max_Retry_Interval), never past the
 *              message's expiry; RCPT_RETRY in the spool. Past
 *              Max_Retries or Message_Expiration: failed instead
 *   failed     P and B lines, RCPT_FAILURE (the details the bounce needs)
 *              then RCPT_STATE failed, remembered for the bounce
 *
 * When a message's last recipient is final the message is finished: its
 * bounce (queue_bounce.c) or its MESSAGE_DONE record, then it is freed.
 *
 * Compaction: the spool may move a message's body while batches are out
 * reading it from the old place. Each batch carries a copy of the
 * location and counts in qmsg.inflight; the spool is told the old copy is
 * no longer read (spool_moved_ack) once none is out, or at once when
 * nothing of ours reads it.
 *
 * Ownership: scheduler thread. Failures: none; the spool records ride
 * the next group commit (delivery is at least once).
 */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "message/dsn.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "spool/spool.h"

/* move_ack - tell the spool the old location of m is no longer read. */
static void move_ack(struct queue *q, struct qmsg *m)
{
	if (m->ack_pending && q->deps.spool)
		spool_moved_ack(q->deps.spool, m->sm->id);
	m->ack_pending = false;
}

void queue_outcome_moved(struct queue *q, uint64_t id, const struct envelope_loc *loc)
{
	struct qmsg *m = spool_idmap_get(&q->msgs, id);

	if (m == NULL) {
		/* Finished meanwhile: nothing of ours reads it any more. */
		if (q->deps.spool)
			spool_moved_ack(q->deps.spool, id);
		return;
	}
	/* Batches taken from now on read the new copy; those out still read the old one. */
	m->sm->loc = *loc;
	m->ack_pending = true;
	if (m->inflight == 0)
		move_ack(q, m);
}

void queue_outcome_batch_back(struct queue *q, struct qmsg *m)
{
	if (--m->inflight == 0)
		move_ack(q, m);
}

void queue_outcome_message_final(struct queue *q, struct qmsg *m)
{
	if (--m->pending > 0)
		return;
	move_ack(q, m);
	spool_idmap_del(&q->msgs, m->sm->id);
	queue_outcome_finish(q, m);
	q->nmsgs--;
}

void queue_outcome_finish(struct queue *q, struct qmsg *m)
{
	if (m->sm->nfailures == 0 || !queue_bounce(q, m))
		spool_message_done(q->deps.spool, m->sm->id);
	else
		q->metrics.bounces++;
	queue_outcome_msg_free(m);
}

/*
 * add_fail - remember what recipient rcpt's DSN says (on the envelope:
 * the report is rendered from it), and write it to the spool
 * (RCPT_FAILURE) ahead of the state record the caller posts next, so a
 * restart before the message's report keeps it (docs/spool.md).
 */
static void add_fail(struct queue *q, struct qmsg *m, uint32_t rcpt, uint8_t action,
		     int code, uint8_t stage, const char *response, const char *remote)
{
	/* Borrowed strings: envelope_failure_put keeps copies. */
	struct envelope_failure ef = {
		.rcpt = rcpt,
		.action = action,
		.stage = stage,
		.code = code >= 0 && code <= 999 ? (uint16_t)code : 0,
		.when = queue_now_us() / 1000000,
		.response = (char *)response,
		.remote = (char *)remote,
	};

	spool_rcpt_failure(q->deps.spool, m->sm->id, envelope_failure_put(m->sm, &ef));
}

void queue_outcome_msg_free(struct qmsg *m)
{
	free(m->op_fail_text);
	envelope_free(m->sm);
	free(m);
}

void queue_outcome_fail(struct queue *q, struct queue_dest *dq, struct qentry *e,
			const struct queue_outcome *o)
{
	struct qmsg *m = e->m;

	queue_log_outcome(q, dq, e, o, 'P');
	queue_admin_count(q, dq, 'P');
	if (!o->quiet)
		add_fail(q, m, e->rcpt, ENVELOPE_FAILURE_FAILED, o->code, o->stage, o->response, o->remote);
	spool_rcpt_state(q->deps.spool, m->sm->id, e->rcpt, ENVELOPE_RCPT_FAILED);
	m->sm->rcpts[e->rcpt].state = ENVELOPE_RCPT_FAILED;
	if (o->quiet) {
		/* Failed on purpose without a bounce (imp_queue_fail quiet). */
		q->nrcpts--;
		queue_entry_free(q, e);
		queue_outcome_message_final(q, m);
		/*
		 * An operator's change, and nothing else will commit it soon:
		 * commit now (after the MESSAGE_DONE final may have posted). A
		 * failure that bounces is not flushed: the bounce's MESSAGE
		 * commit carries its records, and flushing them ahead of it
		 * would open a window where a crash keeps the failure and loses
		 * the bounce.
		 */
		spool_flush(q->deps.spool);
		return;
	}
	q->nrcpts--;
	queue_entry_free(q, e);
	queue_outcome_message_final(q, m);
}

/* retry_delay - Retry_Interval doubled per earlier failure, capped. */
static int64_t retry_delay(const struct queue_dest_settings *s, uint32_t retries)
{
	int64_t cap = s->max_retry_interval;
	int64_t d = s->retry_interval;

	for (uint32_t i = 1; i < retries && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

int64_t queue_outcome_expiry(struct queue_dest *dq, const struct qmsg *m)
{
	if (m->expires)
		return m->expires;
	return m->sm->received + queue_dest_settings(dq)->expiration;
}

bool queue_outcome_expired(struct queue *q, struct queue_dest *dq, const struct qmsg *m,
			   int64_t now_s)
{
	return now_s >= queue_outcome_expiry(dq, m);
}

void queue_outcome_defer(struct queue *q, struct queue_dest *dq, struct qentry *e,
			 const struct queue_outcome *o)
{
	struct qmsg *m = e->m;

	if (m->op_fail_text) {
		/* imp_queue_fail came while this recipient was out: it fails now. */
		struct queue_outcome f = *o;
		f.code = m->op_fail_code;
		f.stage = 21;
		f.response = m->op_fail_text;
		f.quiet = m->op_fail_quiet;
		queue_outcome_fail(q, dq, e, &f);
		return;
	}
	/* imp_queue_rebind came while it was out: it waits in the new binding's queue. */
	dq = queue_ops_home(q, dq, e);

	const struct queue_dest_settings *s = queue_dest_settings(dq);
	int64_t now_s = queue_now_us() / 1000000;
	int64_t max = s->max_retries;

	e->retries++;
	int64_t next = now_s + retry_delay(s, e->retries);
	int64_t expiry = queue_outcome_expiry(dq, m);
	int64_t life = expiry - m->sm->received;
	if ((max >= 0 && e->retries > (uint64_t)max) || now_s >= expiry) {
		struct queue_outcome final = *o;
		struct str why = STR_INIT;
		if (max >= 0 && e->retries > (uint64_t)max)
			str_appendf(&why, "Max_Retries (%lld) reached; last error: %s", (long long)max,
				    o->response ? o->response : "");
		else {
			str_appendf(&why, "message expired after %lld seconds; last error: %s",
				    (long long)life, o->response ? o->response : "");
			final.expired = true;
		}
		final.response = why.s;
		queue_outcome_fail(q, dq, e, &final);
		str_free(&why);
		return;
	}
	/* Never wait past expiry: the entry then fails as expired (stage 21). */
	if (next > expiry)
		next = expiry;
	queue_log_outcome(q, dq, e, o, 'T');
	queue_admin_count(q, dq, 'T');
	queue_bounce_delay(q, dq, e, o, expiry);
	e->next_attempt = next;
	spool_rcpt_retry(q->deps.spool, e->m->sm->id, e->rcpt, e->retries, next);
	queue_dest_enqueue(dq, e);
}

void queue_outcome_delivered(struct queue *q, struct queue_dest *dq, struct qentry *e,
			     const struct queue_outcome *o)
{
	struct qmsg *m = e->m;

	queue_log_outcome(q, dq, e, o, 'D');
	queue_admin_count(q, dq, 'D');
	/*
	 * NOTIFY=SUCCESS (RFC 3461 4.1, 5.2.2.1): a next hop that offered DSN
	 * got NOTIFY/ORCPT with the RCPT and reports delivery itself; one
	 * that did not cannot, so ours says "relayed". Reported with the
	 * message's DSN when its last recipient is final; written to the
	 * spool before the state, like a failure, so a restart keeps it.
	 */
	if (!o->peer_dsn && dsn_wanted(m->sm->sender, m->sm->rcpts[e->rcpt].notify, "relayed"))
		add_fail(q, m, e->rcpt, ENVELOPE_FAILURE_RELAYED, o->code, o->stage, o->response,
			 o->remote_host && *o->remote_host ? o->remote_host : o->remote);
	spool_rcpt_state(q->deps.spool, m->sm->id, e->rcpt, ENVELOPE_RCPT_DELIVERED);
	m->sm->rcpts[e->rcpt].state = ENVELOPE_RCPT_DELIVERED;
	q->nrcpts--;
	queue_entry_free(q, e);
	queue_outcome_message_final(q, m);
}

void queue_outcome_fail_all(struct queue *q, struct queue_dest *dq, bool permanent, const char *why)
{
	struct qentry *e;
	uint64_t n = dq->nactive;
	struct queue_outcome o = { 0 };

	o.stage = 0;	/* not connected */
	o.response = why;
	while (n-- > 0 && (e = queue_dest_pop(dq)) != NULL) {
		if (permanent)
			queue_outcome_fail(q, dq, e, &o);
		else
			queue_outcome_defer(q, dq, e, &o);
	}
}

void queue_outcome_expire(struct queue *q, struct queue_dest *dq, struct qentry *e,
			  const char *why)
{
	struct queue_outcome o = { 0 };

	o.stage = 21;
	o.response = why;
	o.expired = true;
	queue_outcome_fail(q, dq, e, &o);
}
