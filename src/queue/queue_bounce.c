/*
 * queue_bounce.c - RFC 3464 bounces for permanently failed recipients,
 * "relayed" notices for NOTIFY=SUCCESS, and delay notices
 *
 * When the last recipient of a message reaches a final state and some
 * failed, or were relayed to a server without DSN while asking for
 * NOTIFY=SUCCESS, the sender gets one delivery status notification
 * listing them (failed ones whose NOTIFY asks for it, by default all),
 * unless the sender is the null sender (bounces never bounce);
 * Generate_Bounces = false for the destination drops the failed ones.
 *
 * Rendering needs the original message's headers (or all of it), which
 * live in the spool: reading them is disk I/O, so the work runs on the IO
 * pool. The job owns copies of everything it needs because the message is
 * gone from the queue by the time it runs. The finished bounce takes the
 * one injection path (queue_inject.c, as a module's imp_inject does):
 * protocol "internal", no Received: field (IMP_INJECT_NO_TRACE), its own
 * Message-ID kept, spooled, and once durable queued on the scheduler with
 * its R line (IMP_INJECT_LOG).
 *
 * Ordering: the job, not the queue, writes the original's MESSAGE_DONE,
 * right after submitting the bounce, so the original's segment cannot be
 * reclaimed while the job still reads it, and a crash never finds the
 * original done without its bounce (it may find both: then the original
 * is done and the bounce is queued).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/inject.h>

#include "config/config.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/str.h"
#include "log/log.h"
#include "message/dsn.h"
#include "queue/queue_out.h"
#include "smtp/smtp_client.h"
#include "spool/spool.h"

struct bounce_job {
	struct queue *q;
	struct spool *sp;
	struct loop *scheduler;
	struct envelope_loc loc;
	impetus_id orig_id;
	char *hostname, *from, *to, *envid, *binding, *binding_group;
	int64_t arrival;
	uint8_t ret;
	bool smtputf8;		/* the original was an SMTPUTF8 message */
	int inline_mode;
	bool final;		/* the original is finished: write its MESSAGE_DONE */
	size_t nrcpt;
	struct dsn_rcpt *rcpts;
	char **owned;		/* strings the dsn_rcpts point to */
	size_t nowned;
};

static char *own(struct bounce_job *j, const char *s)
{
	if (s == NULL)
		return NULL;
	j->owned = xrealloc(j->owned, (j->nowned + 1) * sizeof(char *));
	return j->owned[j->nowned++] = xstrdup(s);
}

static void job_free(struct bounce_job *j)
{
	for (size_t i = 0; i < j->nowned; i++)
		free(j->owned[i]);
	free(j->owned);
	free(j->rcpts);
	free(j->hostname);
	free(j->from);
	free(j->to);
	free(j->envid);
	free(j->binding);
	free(j->binding_group);
	free(j);
}

/* on_bounce_injected - scheduler: the bounce is queued, or it could not be spooled. */
static void on_bounce_injected(void *arg, int err, uint64_t id)
{
	char idbuf[ID_BUF_SIZE];

	if (err < 0)
		log_panic("%s bounce could not be spooled error=%d; bounce lost",
			  id_format(id, idbuf), err);
}

/* bounce_render - IO pool: read the original, render, submit. */
static void bounce_render(void *arg)
{
	struct bounce_job *j = arg;
	struct str orig = STR_INIT;
	struct envelope *b = envelope_new();
	char idbuf[ID_BUF_SIZE], msgid[256];
	struct dsn_info info;

	/*
	 * A delay notice does not read the original: the message is still
	 * queued and compaction may move it meanwhile (RFC 3461 leaves the
	 * content out of a delay notice to us).
	 */
	if (!j->final || spool_read_body(j->sp, &j->loc, &orig) < 0)
		str_clear(&orig);	/* still bounce, without the original */
	b->id = id_next();
	snprintf(msgid, sizeof(msgid), "<%s@%s>", id_format(b->id, idbuf), j->hostname);
	memset(&info, 0, sizeof(info));
	info.reporting_mta = j->hostname;
	info.from = j->from;
	info.to = j->to;
	info.envid = j->envid;
	info.orig_msg_id = id_format(j->orig_id, idbuf);
	info.arrival = j->arrival;
	info.ret = j->ret;
	info.inline_mode = j->inline_mode;
	info.orig = orig.s ? orig.s : "";
	info.orig_len = orig.len;
	info.nrcpt = j->nrcpt;
	info.rcpts = j->rcpts;
	info.now = queue_now_us() / 1000000;
	info.message_id = msgid;
	info.utf8 = dsn_needs_utf8(&info, j->smtputf8);
	dsn_render(&info, &b->body);
	str_free(&orig);

	/*
	 * A global report (RFC 6533) to a UTF-8 address or carrying UTF-8
	 * headers needs SMTPUTF8 on the way back; any 8-bit byte in it
	 * (returned content, a UTF-8 text part) is declared BODY=8BITMIME,
	 * so the SMTP client downgrades it like any other message for a
	 * server without 8BITMIME (docs/smtp-client.md).
	 */
	b->smtputf8 = info.utf8;
	for (size_t i = 0; i < b->body.len; i++)
		if ((unsigned char)b->body.s[i] >= 0x80) {
			b->body_type = ENVELOPE_BODY_8BITMIME;
			break;
		}
	b->received = info.now;
	b->sender = xstrdup("");
	b->client_ip = xstrdup("");
	b->helo = xstrdup("");
	b->protocol = xstrdup("internal");
	b->binding = xstrdup(j->binding);
	b->binding_group = xstrdup(j->binding_group);
	b->nrcpt = 1;
	b->rcpts = xcalloc(1, sizeof(*b->rcpts));
	b->rcpts[0].addr = xstrdup(j->to);
	struct queue_inject_req r = {
		.q = j->q, .spool = j->sp, .scheduler = j->scheduler,
		.flags = IMP_INJECT_NO_TRACE | IMP_INJECT_LOG, .done = on_bounce_injected,
	};
	queue_inject(&r, b);
	/*
	 * Posted after the bounce from this same thread (queue_inject hands
	 * an unsigned message to the spool before it returns), so the spool
	 * writes it in the same or a later group commit: the original is
	 * never marked done before its bounce is on disk.
	 */
	if (j->final)
		spool_message_done(j->sp, j->orig_id);
	job_free(j);
}

/*
 * job_start - fill in what every notice of message sm shares (sender
 * MAILER-DAEMON, addressee, envelope facts) and render it on the IO pool.
 * final: an end-of-message report (failures, successes) rather than a
 * delay notice.
 */
static void job_start(struct queue *q, struct bounce_job *j, const struct envelope *sm,
		      bool final, int inline_mode)
{
	const struct conf *c = queue_conf(q);
	const char *host = queue_hostname(c);
	const char *md = conf_str(c, CONF_OPT_MAILERDAEMON);
	struct str from = STR_INIT;

	if (md && *md)
		str_appends(&from, md);
	else
		str_appendf(&from, "MAILER-DAEMON@%s", host);
	j->final = final;
	j->q = q;
	j->sp = queue_spool(q);
	j->scheduler = queue_scheduler(q);
	j->orig_id = sm->id;
	j->hostname = xstrdup(host);
	j->from = str_steal(&from);
	j->to = xstrdup(sm->sender);
	j->envid = sm->envid ? xstrdup(sm->envid) : NULL;
	j->binding = xstrdup(sm->binding ? sm->binding : "");
	j->binding_group = xstrdup(sm->binding_group ? sm->binding_group : "");
	j->arrival = sm->received;
	j->ret = sm->ret;
	j->smtputf8 = sm->smtputf8;
	j->inline_mode = inline_mode;
	pool_submit(queue_io_pool(q), bounce_render, j);
}

bool queue_bounce(struct queue *q, struct qmsg *m)
{
	const struct envelope *sm = m->sm;
	const struct conf *c = queue_conf(q);
	struct bounce_job *j;

	if (sm->sender == NULL || *sm->sender == '\0')
		return false;	/* never bounce a bounce */
	j = XNEW(struct bounce_job);
	j->rcpts = xcalloc(sm->nfailures, sizeof(*j->rcpts));
	for (size_t i = 0; i < sm->nfailures; i++) {
		const struct envelope_failure *f = &sm->failures[i];
		const struct envelope_rcpt *r = &sm->rcpts[f->rcpt];
		const char *at = strrchr(r->addr, '@');
		char status[16];
		bool failed = f->action == ENVELOPE_FAILURE_FAILED;
		const char *action = failed ? "failed" : "relayed";

		/* Generate_Bounces is about failures; success notices were asked for */
		if (failed &&
		    !conf_get(c, CONF_OPT_GENERATE_BOUNCES, sm->binding, at ? at + 1 : "")->u.b)
			continue;
		if (!dsn_wanted(sm->sender, r->notify, action))
			continue;
		struct dsn_rcpt *d = &j->rcpts[j->nrcpt++];
		d->addr = own(j, r->addr);
		d->orcpt = own(j, r->orcpt);
		d->action = action;
		d->status = failed ? own(j, dsn_status_from_reply(f->code, f->response, true, status)) :
			    "2.0.0";
		d->remote_mta = own(j, f->remote);
		d->diagnostic = f->response && *f->response ? own(j, f->response) : NULL;
		d->last_attempt = f->when;
	}
	if (j->nrcpt == 0) {
		job_free(j);
		return false;
	}
	j->loc = sm->loc;
	job_start(q, j, sm, true,
		  (int)conf_get(c, CONF_OPT_BOUNCES_INLINE_ORIGINAL, sm->binding, NULL)->u.i);
	return true;
}

/* ======================================================= delay notices */

/*
 * queue_bounce_delays_due - notices due by now: at received + interval,
 * then after gaps of 2, 4, 8 ... times interval, each gap capped at max
 * (Momentum's delay_dsn schedule: 1 h, then 3 h, 7 h, 15 h, then every
 * 12 h with the defaults).
 */
uint32_t queue_bounce_delays_due(int64_t received, int64_t now, int64_t interval, int64_t max)
{
	int64_t gap = interval > 0 ? interval : 1;
	uint64_t at, end;
	uint32_t k = 0;

	if (max < gap)
		max = gap;
	/* in unsigned time from 0, so no timestamp from the spool can overflow */
	at = received > 0 ? (uint64_t)received : 0;
	end = now > 0 ? (uint64_t)now : 0;
	while (gap < max) {		/* the doubling part: at most 63 rounds */
		at += (uint64_t)gap;
		if (at > end)
			return k;
		k++;
		gap = gap > max / 2 ? max : gap * 2;
	}
	/* then one every max seconds: counted, not looped */
	if (end < at + (uint64_t)max)
		return k;
	uint64_t more = (end - at) / (uint64_t)max;
	return more >= UINT32_MAX - 1 - k ? UINT32_MAX - 1 : k + (uint32_t)more;
}

/*
 * queue_bounce_delay - the timer of delay notices is the queue's own
 * retry schedule: the scheduler checks at each deferral whether a notice
 * fell due since the last one for this recipient, so a notice goes out
 * at the first retry on or after its time (at most one per deferral, and
 * one per due time: those that fell due while nothing was retried are
 * folded into one). Restarts: see QENTRY_DELAY_DSN_UNKNOWN.
 */
void queue_bounce_delay(struct queue *q, struct queue_dest *dq, struct qentry *e,
			const struct queue_outcome *o, int64_t retry_until)
{
	const struct queue_dest_settings *s = queue_dest_settings(dq);
	const struct envelope *sm = e->m->sm;
	const struct envelope_rcpt *r = &sm->rcpts[e->rcpt];
	char status[DSN_STATUS_SIZE];

	if (!s->delay_dsn)
		return;
	int64_t now = queue_now_us() / 1000000;
	uint32_t due = queue_bounce_delays_due(sm->received, now, s->delay_dsn_interval,
					       s->delay_dsn_max);
	if (e->delay_dsns == QENTRY_DELAY_DSN_UNKNOWN) {
		/* recovered: assume what fell due before was sent */
		e->delay_dsns = due;
		return;
	}
	if (due <= e->delay_dsns)
		return;
	e->delay_dsns = due;
	if (!dsn_wanted(sm->sender, r->notify, "delayed"))
		return;

	struct bounce_job *j = XNEW(struct bounce_job);
	j->rcpts = xcalloc(1, sizeof(*j->rcpts));
	struct dsn_rcpt *d = &j->rcpts[j->nrcpt++];
	d->addr = own(j, r->addr);
	d->orcpt = own(j, r->orcpt);
	d->action = "delayed";
	d->status = own(j, dsn_status_from_reply(o->code, o->response, false, status));
	d->remote_mta = o->remote_host && *o->remote_host ? own(j, o->remote_host) :
			o->remote && *o->remote ? own(j, o->remote) : NULL;
	d->diagnostic = o->response && *o->response ? own(j, o->response) : NULL;
	d->last_attempt = now;
	d->will_retry_until = retry_until;
	job_start(q, j, sm, false, DSN_INLINE_NONE);
}
