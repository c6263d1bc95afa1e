/*
 * smtp_server_session.c - one inbound ESMTP connection's state machine
 *
 * Owned by the I/O loop the connection was handed to; nothing here is
 * touched by another thread. The session reads commands from its sockio
 * (core/sockio.h), answers through its output buffer (replies to pipelined
 * commands go out together when the input runs dry), and at the end of
 * DATA or the last BDAT chunk hands the message to the spool and stops
 * reading until the spool says the message is durable. Only then does the
 * client get its 250, so an acknowledged message is never lost.
 *
 * States (session_set_state logs every change when tracing is on):
 *
 *   CMD      reading command lines
 *   DATA     reading the DATA stream up to CRLF.CRLF
 *   BDAT     reading the octets of one BDAT chunk
 *   SPOOL    waiting for the spool; reading is paused
 *   STARTTLS the 220 is being flushed before the TLS handshake
 *   HOOK     a validation subscriber suspended (imp_session_suspend):
 *            commands are not processed (pipelined ones wait in the
 *            input, in order), the deadlines are off; the socket is still
 *            read so a client that leaves is noticed
 *   AUTH     AUTH sent a 334: the next line is the client's response
 *   AUTH_WAIT the credentials are being checked (scheduler, CPU pool) or
 *            the 535 is held back (the tarpit): as HOOK
 *   CLOSING  flushing the last reply, then the session is freed
 *
 * Validation hooks (include/impetus/hooks.h; docs/api.md "Inbound
 * validation"): each phase runs the subscribers of the session's
 * configuration generation (api_hook_of(conf, ...), NULL when nobody
 * subscribed: then the command goes on as it always did). A phase is
 * started by phase_run and ended by the phase's finisher (phase_finish
 * dispatches), either at once or, after a suspension, from the posted
 * resume (smtp_session_on_resume). A token outlives its session when the
 * client leaves first: session_free detaches it, and the resume then only
 * frees it. The end of a message runs data_spool, data_spool_each_rcpt
 * per recipient and set_binding (reception_run), then the sign
 * subscribers on the CPU pool when there are any, then the spool.
 *
 * Abuse limits (issue 11; docs/smtp-server.md "Limits against abuse"):
 *
 *   output   command processing stops while more than OUTPUT_PAUSE_BYTES
 *            of replies are unsent (reading stops with it) and resumes when
 *            the output has drained, so a client that never reads costs a
 *            bounded buffer; input is capped by the sockio's read
 *            high-water mark (INPUT_HIGH_WATER).
 *   deadline one timer per session: a command line must be complete within
 *            Idle_Time of the previous reply (bytes trickling in do not
 *            extend it); DATA and each BDAT chunk must end within
 *            Data_Timeout + bytes received / Min_Data_Rate. The per-read
 *            sockio timeouts stay as the idle limit inside DATA.
 *   errors   after Hard_Error_Limit 4xx/5xx replies without an accepted
 *            message: 421 4.7.0 and close.
 *   logging  at most Rejectlog_Connection_Limit rejectlog lines per
 *            connection, one summary line at close; the per-IP budget is
 *            the manager's (smtp_server_log_reject).
 *
 * If the client disappears while the spool is busy, the session is kept
 * (as a zombie without a socket) until the spool answers, because the
 * spool's answer names it. A message that became durable is queued even
 * when its client never saw the 250: delivery is at-least-once.
 *
 * See docs/smtp-server.md for every reply this file sends.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <impetus/hooks.h>
#include <impetus/message.h>
#include <impetus/session.h>

#include "api/api.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/histo.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/sockaddr.h"
#include "core/sockio.h"
#include "core/str.h"
#include "log/log.h"
#include "message/message_view.h"
#include "message/rfc5322.h"
#include "message/vctx.h"
#include "msgs/msgs.h"
#include "smtp/smtp_trace.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_server_int.h"
#include "smtp/smtp_session_int.h"
#include "smtp/smtp_spill.h"
#include "spool/spool.h"


/* Unsent replies above this stop command processing until the client reads. */
#define OUTPUT_PAUSE_BYTES (32 * 1024)
/*
 * Read high-water mark: libevent stops reading while this much input
 * waits. Above the largest Max_Command_Length (65536), so a whole command
 * line always fits.
 */
#define INPUT_HIGH_WATER (128 * 1024)
/* Longest reply line we format; RFC 5321 4.5.3.1.5 allows 512. */
#define REPLY_LINE_MAX 1024

static const char *const state_names[] = {
	[S_CMD] = "CMD", [S_DATA] = "DATA", [S_BDAT] = "BDAT",
	[S_SPOOL] = "SPOOL", [S_STARTTLS] = "STARTTLS", [S_HOOK] = "HOOK",
	[S_AUTH] = "AUTH", [S_AUTH_WAIT] = "AUTH_WAIT", [S_CLOSING] = "CLOSING",
};

/*
 * A message stays in memory up to SPILL_AT bytes (our Received header and,
 * for all but absurd messages, the whole header section, where the
 * Message-ID check looks); past that its bytes go to a spill file in
 * chunks of SPILL_CHUNK, and at most SCAN_PIECE bytes of input are taken
 * between two looks at the chunk. A session's memory for a message is
 * thus about SPILL_AT + 2 * (SPILL_CHUNK + SCAN_PIECE) at most, whatever
 * the message's size. Below SPILL_AT nothing changes: one buffer, one
 * write by the spool.
 */
#define SPILL_AT (256u << 10)
#define SPILL_CHUNK (256u << 10)
#define SCAN_PIECE (64u << 10)





static void session_process(struct smtp_session *s);
static void message_complete(struct smtp_session *s);
static void session_close(struct smtp_session *s);
static void session_free(struct smtp_session *s);
static void on_read(struct sockio *sock, void *arg);
static void on_write(struct sockio *sock, void *arg);
static void on_event(struct sockio *sock, short what, void *arg);

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/*
 * Tracing (smtp_trace.h): IMPETUS_TRACE=smtp at start, `trace smtp` on the
 * console at run time, for every client or one IP.
 */
static bool tracing(const struct smtp_session *s)
{
	return smtp_trace_in((const struct sockaddr *)&s->peer);
}

/* now_ms - a monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms_timeval - milliseconds as a struct timeval. */
static struct timeval ms_timeval(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	return tv;
}

/*
 * deadline_start - start the deadline of the phase the session is in:
 * Idle_Time for a command line, Data_Timeout (extended by the bytes that
 * arrive, see on_deadline) for DATA and a BDAT chunk, none while we wait
 * for the spool, for TLS or to close.
 */
static void deadline_start(struct smtp_session *s)
{
	struct timeval tv;

	if (s->deadline == NULL)
		return;
	s->phase_start_ms = now_ms();
	s->phase_bytes = 0;
	switch (s->state) {
	case S_CMD:
	case S_AUTH:
		tv = ms_timeval(s->lim.cmd_timeout * 1000);
		break;
	case S_DATA:
	case S_BDAT:
		if (s->lim.min_data_rate == 0) {
			/* No phase deadline: only the per-read Data_Timeout. */
			evtimer_del(s->deadline);
			return;
		}
		tv = ms_timeval(s->lim.data_timeout * 1000);
		break;
	default:
		evtimer_del(s->deadline);
		return;
	}
	evtimer_add(s->deadline, &tv);
}

/* session_set_state - enter a state, tracing "old -> new" when asked. */
static void session_set_state(struct smtp_session *s, enum session_state st)
{
	enum session_state old = s->state;

	if (old != st && tracing(s))
		log_panic("%s smtp state %s -> %s", s->conn_id, state_names[old], state_names[st]);
	s->state = st;
	if (old != st)
		deadline_start(s);
}

/*
 * count_error - Hard_Error_Limit bookkeeping for one reply line. 4xx and
 * 5xx count, except 421 (the session ends anyway) and 4.3.x (our own
 * trouble, such as a full disk, is not the client's fault). Like Postfix,
 * errors count "without delivering mail": since the last accepted message.
 */
static void count_error(struct smtp_session *s, const char *line)
{
	if ((line[0] != '4' && line[0] != '5') || strncmp(line, "421", 3) == 0)
		return;
	if (strncmp(line + 3, " 4.3.", 5) == 0)
		return;
	if (s->errors_mark != s->messages) {
		s->errors = 0;
		s->errors_mark = s->messages;
	}
	s->errors++;
}

static void reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* reply - queue one reply line (CRLF added; cut at REPLY_LINE_MAX). */
static void reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[REPLY_LINE_MAX];
	va_list ap;
	int n;

	if (s->sock == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)(sizeof(line) - 3);
	count_error(s, line);
	memcpy(line + n, "\r\n", 2);
	evbuffer_add(sockio_output(s->sock), line, (size_t)n + 2);
}

/*
 * session_log_reject - a rejectlog line, at most Rejectlog_Connection_Limit
 * per connection (the rest are counted for the summary at close); always
 * is for the one line that says why we closed. Lines go through the
 * manager's per-IP budget when one is configured.
 */
static void session_log_reject(struct smtp_session *s, const char *phase, const char *text,
			       bool always)
{
	smtp_server_count_reject(s->io->srv, s->esmtp);
	if (!always && s->lim.reject_log_limit > 0 &&
	    s->rejects_logged >= (uint64_t)s->lim.reject_log_limit) {
		s->rejects_suppressed++;
		return;
	}
	s->rejects_logged++;
	if (s->lim.reject_ip_budget)
		smtp_server_log_reject(s->io->srv, &s->peer, s->peer_str, s->local_str, s->conn_id,
				       phase, text);
	else
		log_reject(s->conf, s->peer_str, s->local_str, s->conn_id, phase, text);
}

/* reply_parsed - send a parser's error reply. */
static void reply_parsed(struct smtp_session *s, const struct smtp_reply *r)
{
	if (r->ext[0])
		reply(s, "%d %s %s", r->code, r->ext, r->text);
	else
		reply(s, "%d %s", r->code, r->text);
}

/* reject - reply and log the refusal in the rejectlog. */
static void reject(struct smtp_session *s, const char *phase, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reject(struct smtp_session *s, const char *phase, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&line, fmt, ap);
	va_end(ap);
	reply(s, "%s", line.s);
	session_log_reject(s, phase, line.s, false);
	str_free(&line);
}

static void set_timeout(struct smtp_session *s, int64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	if (s->sock)
		sockio_set_timeouts(s->sock, &tv, &tv);
}

/* transaction_reset - forget MAIL, RCPTs and any message data. */
static void transaction_reset(struct smtp_session *s)
{
	if (s->msg) {
		envelope_free(s->msg);
		s->msg = NULL;
	}
	if (s->spill) {
		smtp_spill_abandon(s->spill);
		s->spill = NULL;
	}
	str_clear(&s->stage);
	if (s->fixing) {
		mime_fix_free(&s->fix);
		s->fixing = false;
	}
	str_clear(&s->fixbuf);
	s->completing = false;
	s->nrcpt_alloc = 0;
	s->rcpt_refused = 0;
	s->bdat_used = false;
	s->bdat_failed = false;
	s->bdat_last = false;
	s->bdat_remaining = 0;
	s->bdat_discard = false;
	s->header_len = 0;
	s->declared_size = -1;
	smtp_rcpt_args_free(&s->rcpt);
	memset(&s->rcpt, 0, sizeof(s->rcpt));
	s->cur_rcpt = NULL;
	free(s->bdat_refusal);
	s->bdat_refusal = NULL;
	if (s->view_live) {
		message_view_done(&s->view);
		s->view_live = false;
	}
	free(s->rx_dropped);
	s->rx_dropped = NULL;
	str_clear(&s->rx_refusal);
}

/* ------------------------------------------------------------------ */
/* message assembly                                                    */

/*
 * start_body - begin the message with our trace header fields (RFC 5321
 * 4.4, RFC2822_Trace_Headers): Return-Path with the MAIL FROM, then our
 * Received. They are written before the client's data so the data can be
 * appended in place without moving it again; with the option off nothing
 * is written and header_len is 0.
 */
static void start_body(struct smtp_session *s)
{
	struct str *b = &s->msg->body;
	char date[RFC5322_DATE_SIZE];
	char idbuf[ID_BUF_SIZE];
	/* ESMTPA, ESMTPSA, UTF8SMTPA ... once the client has authenticated (RFC 3848) */
	const char *proto = smtp_with_protocol(s->esmtp, s->tls, s->msg->smtputf8,
					       s->auth_user != NULL);

	str_clear(b);
	s->header_len = 0;
	if (!s->lim.trace_headers)
		return;
	rfc5322_format_date((int64_t)time(NULL), true, date);
	str_appendf(b, "Return-Path: <%s>\r\n", s->msg->sender);
	str_appendf(b, "Received: from %s (%s [%s])\r\n\tby %s (impetus) with %s id %s",
		    s->helo ? s->helo : "unknown", s->peer_ip, s->peer_ip, s->hostname, proto,
		    id_format(s->msg->id, idbuf));
	if (s->msg->nrcpt == 1)
		str_appendf(b, "\r\n\tfor <%s>", s->msg->rcpts[0].addr);
	str_appendf(b, ";\r\n\t%s\r\n", date);
	s->header_len = b->len;
}

/* has_field - whether the header section hdrs[0..len) holds a field named name. */
static bool has_field(const char *hdrs, size_t len, const char *name)
{
	size_t pos = 0, n = strlen(name);
	struct rfc5322_field f;

	while (rfc5322_field_next(hdrs, len, &pos, &f))
		if (f.name_len == n && strncasecmp(f.name, name, n) == 0)
			return true;
	return false;
}

/*
 * drop_fields - remove every field named name from the client's header
 * section (hend octets at header_len in the in-memory body); returns the
 * section's new length.
 */
static size_t drop_fields(struct smtp_session *s, size_t hend, const char *name)
{
	struct str *b = &s->msg->body;
	size_t pos = 0, start, n = strlen(name);
	struct rfc5322_field f;

	for (;;) {
		char *hdrs = b->s + s->header_len;

		start = pos;
		if (!rfc5322_field_next(hdrs, hend, &pos, &f))
			break;
		if (f.name_len != n || strncasecmp(f.name, name, n) != 0)
			continue;
		size_t cut = pos - start;
		memmove(hdrs + start, hdrs + pos, b->len - s->header_len - pos);
		b->len -= cut;
		b->s[b->len] = '\0';
		hend -= cut;
		pos = start;
	}
	return hend;
}

/*
 * conformance_refusal - the RFC2822_Missing_Headers and _Date_Header
 * checks on the client's header section (in memory, see SPILL_AT): the
 * refusal's reply line, or NULL to accept.
 */
static const char *conformance_refusal(const struct smtp_session *s)
{
	const char *client = s->msg->body.s + s->header_len;
	size_t clen = s->msg->body.len - s->header_len;
	size_t hend = rfc5322_header_end(client, clen);

	if (hend == 0 && s->lim.missing_headers == CONF_MISSING_REJECT)
		return "554 5.6.0 Message rejected: no header section (RFC 5322 2.1)";
	if (s->lim.date_header == CONF_DATE_PEDANTIC && !has_field(client, hend, "Date"))
		return "554 5.6.0 Message rejected: no Date header field (RFC 5322 3.6)";
	return NULL;
}

/*
 * add_headers - the fields the conformance options add, after our trace
 * fields and before the client's (RFC2822_Messageid_Header,
 * RFC2822_Date_Header), and the client's Return-Path fields dropped when
 * we set our own. A message sent without a header section gets an empty
 * line after what we added, so its first line stays body. Runs before the
 * reception phases and the sign hook: modules see, and signatures cover,
 * the fields as they will be spooled.
 */
static void add_headers(struct smtp_session *s)
{
	struct str *b = &s->msg->body;
	struct str add = STR_INIT;
	char idbuf[ID_BUF_SIZE];
	char date[RFC5322_DATE_SIZE];
	size_t clen = b->len - s->header_len;
	size_t hend = rfc5322_header_end(b->s + s->header_len, clen);
	bool headerless = clen > 0 && rfc5322_body_start(b->s + s->header_len, clen) == 0;

	if (s->lim.trace_headers) {
		hend = drop_fields(s, hend, "Return-Path");
		clen = b->len - s->header_len;
	}
	const char *hdrs = b->s + s->header_len;
	if (s->lim.messageid == CONF_MESSAGEID_ALWAYS ||
	    (s->lim.messageid == CONF_MESSAGEID_IFNEEDED && !has_field(hdrs, hend, "Message-ID")))
		str_appendf(&add, "Message-ID: <%s@%s>\r\n", id_format(s->msg->id, idbuf),
			    s->hostname);
	if (s->lim.date_header == CONF_DATE_IFNEEDED && !has_field(hdrs, hend, "Date"))
		str_appendf(&add, "Date: %s\r\n",
			    rfc5322_format_date((int64_t)time(NULL), true, date));
	if (headerless && (add.len > 0 || s->header_len > 0))
		str_append(&add, "\r\n", 2);
	if (add.len > 0) {
		str_reserve(b, add.len);
		memmove(b->s + s->header_len + add.len, b->s + s->header_len, clen);
		memcpy(b->s + s->header_len, add.s, add.len);
		b->len += add.len;
		b->s[b->len] = '\0';
	}
	str_free(&add);
}

/* body_out - where the data scanner appends: memory, or the stage once spilling. */
static struct str *body_out(struct smtp_session *s)
{
	return s->spill ? &s->stage : &s->msg->body;
}

/* on_spill_wake - a spill write finished: go on reading, or finish the message. */
static void on_spill_wake(void *ctx)
{
	struct smtp_session *s = ctx;

	if (!s->completing) {
		session_process(s);
		return;
	}
	s->completing = false;
	session_set_state(s, S_CMD);
	message_complete(s);
	if (s->state != S_CMD)
		return;		/* waiting again, or handed to the spool */
	/* Refused (an error was answered): the session goes on, or ends. */
	if (s->zombie) {
		session_free(s);
		return;
	}
	set_timeout(s, s->lim.cmd_timeout);
	sockio_enable(s->sock, EV_READ | EV_WRITE);
	session_process(s);
}

/*
 * body_spill - after data was added: start spilling once the message is
 * past SPILL_AT, and hand a full stage to the spill when it is free. A
 * spill that failed gets no more bytes (the message is refused at its
 * end).
 */
static void body_spill(struct smtp_session *s)
{
	struct pool *pool = smtp_server_io_pool(s->io->srv);

	if (s->spill == NULL) {
		if (s->msg->body.len < SPILL_AT || pool == NULL)
			return;
		s->spill = smtp_spill_new(smtp_server_spool(s->io->srv), pool, s->io->loop,
					  on_spill_wake, s);
	}
	if (s->stage.len < SPILL_CHUNK || smtp_spill_busy(s->spill))
		return;
	if (smtp_spill_error(s->spill))
		str_clear(&s->stage);
	else
		smtp_spill_write(s->spill, &s->stage);
}

/* body_blocked - the stage is full and the spill busy: take no more input now. */
static bool body_blocked(const struct smtp_session *s)
{
	return s->spill && s->stage.len >= SPILL_CHUNK && smtp_spill_busy(s->spill);
}

/*
 * spill_drained - every byte of the message is in the spill file; else
 * start the last write (if it is not running yet) and say to wait.
 */
static bool spill_drained(struct smtp_session *s)
{
	if (smtp_spill_busy(s->spill))
		return false;
	if (s->stage.len == 0 || smtp_spill_error(s->spill)) {
		str_clear(&s->stage);
		return true;
	}
	smtp_spill_write(s->spill, &s->stage);
	return false;
}

static void on_spooled(void *ctx, int err, struct envelope *msg);
static void reception_begin(struct smtp_session *s);

/*
 * message_complete - the data has all arrived: check it and hand it to the
 * spool. Every refusal here happens after the whole message was read, so
 * the client is in sync and the session goes on.
 */
static void message_complete(struct smtp_session *s)
{
	struct envelope *msg = s->msg;
	uint64_t size = s->scan.bytes;

	/* A last line without CRLF (BDAT) leaves the fixer; again, it adds nothing. */
	if (s->fixing)
		mime_fix_finish(&s->fix, body_out(s));
	if (s->lim.max_size > 0 && size > (uint64_t)s->lim.max_size) {
		reject(s, "data", "552 5.3.4 Message size exceeds fixed limit");
		transaction_reset(s);
		return;
	}
	if ((s->scan.bare_headers && s->lim.lone_lf_headers == CONF_RFC2822_PEDANTIC) ||
	    (s->scan.bare_body && s->lim.lone_lf_body == CONF_RFC2822_PEDANTIC)) {
		reject(s, "data", "554 5.6.0 Message rejected: bare CR or LF (RFC 5321 2.3.8)");
		transaction_reset(s);
		return;
	}
	if (s->lim.max_line > 0 && s->scan.longest_line > (size_t)s->lim.max_line) {
		reject(s, "data", "554 5.6.0 Message rejected: line too long");
		transaction_reset(s);
		return;
	}
	const char *refusal = conformance_refusal(s);
	if (refusal) {
		reject(s, "data", "%s", refusal);
		transaction_reset(s);
		return;
	}
	if (s->spill) {
		if (!spill_drained(s)) {
			/* on_spill_wake comes back here; nothing is read meanwhile. */
			s->completing = true;
			session_set_state(s, S_SPOOL);
			if (s->sock) {
				sockio_disable(s->sock, EV_READ);
				sockio_set_timeouts(s->sock, NULL, NULL);
			}
			return;
		}
		int err = smtp_spill_error(s->spill);
		if (err) {
			char idbuf[ID_BUF_SIZE];

			log_panic("%s spool write failed error=\"%s\" client=%s (streaming the body)",
				  id_format(msg->id, idbuf), strerror(-err), s->peer_str);
			reject(s, "data", "452 4.3.1 Insufficient system storage");
			transaction_reset(s);
			return;
		}
		smtp_spill_finish(s->spill, &msg->file);
		s->spill = NULL;
	}
	/* The header section is in the in-memory part (see SPILL_AT). */
	add_headers(s);

	msg->received = (int64_t)time(NULL);
	reception_begin(s);
}

/* on_spooled - the spool's answer, on this session's loop. */
static void on_spooled(void *ctx, int err, struct envelope *msg)
{
	struct smtp_session *s = ctx;
	char idbuf[ID_BUF_SIZE];

	id_format(msg->id, idbuf);
	if (err == 0) {
		s->messages++;
		reply(s, "250 2.0.0 OK %s", idbuf);
		if (s->data_end_us) {
			smtp_server_observe_250(s->io->srv, histo_now_us() - s->data_end_us);
			s->data_end_us = 0;
		}
		smtp_server_deliver(s->io->srv, msg);
	} else {
		log_panic("%s spool write failed error=\"%s\" client=%s", idbuf, strerror(-err),
			  s->peer_str);
		reject(s, "data", "452 4.3.1 Insufficient system storage");
		envelope_free(msg);
	}
	if (s->zombie) {
		session_free(s);
		return;
	}
	if (s->io->shutting_down) {
		/* The grace period may be over: do not wait for the next command. */
		reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
		session_close(s);
		return;
	}
	session_set_state(s, S_CMD);
	set_timeout(s, s->lim.cmd_timeout);
	sockio_enable(s->sock, EV_READ | EV_WRITE);
	session_process(s);
}

/* ------------------------------------------------------------------ */
/* validation hooks: running a phase, verdicts, suspension             */

/* The finishers: what a phase's end does to the command that started it. */
static void connect_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r);
static void ehlo_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r);
static void mail_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r);
static void rcpt_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r);
static void data_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r);
static void reception_run(struct smtp_session *s, bool have, enum imp_verdict v,
			  const struct imp_reply *r);

/* refused - whether a verdict ends the phase with a refusal. */
static bool refused(enum imp_verdict v)
{
	return v == IMP_REJECT || v == IMP_TEMPFAIL || v == IMP_DISCONNECT;
}

/* status_ok - an enhanced status code "c.x.y" whose class is the reply code's. */
static bool status_ok(const char *st, int code)
{
	int cls, a, b, n = 0;

	if (sscanf(st, "%d.%3d.%3d%n", &cls, &a, &b, &n) != 3 || st[n] != '\0')
		return false;
	return cls == code / 100 && a >= 0 && b >= 0;
}

/*
 * verdict_line - the reply line of a refusal: the subscriber's code,
 * status and text where it gave them, the phase's default where not. A
 * code of the wrong class (5xx for REJECT, 4xx for TEMPFAIL and
 * DISCONNECT) is a module bug: the whole default is used, and the
 * paniclog names the instance. The connect phase answers 554 by default
 * (RFC 5321 3.1); DISCONNECT always means 421 to the client.
 */
static void verdict_line(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r,
			 struct str *out)
{
	int code;
	const char *status, *text;

	switch (v) {
	case IMP_REJECT:
		code = s->ph.phase == IMP_PHASE_CONNECT ? 554 : 550;
		status = "5.7.1";
		text = "rejected by policy";
		break;
	case IMP_TEMPFAIL:
		code = 451;
		status = "4.7.1";
		text = "try again later";
		break;
	default:
		code = 421;
		status = "4.7.0";
		text = "closing";
		break;
	}
	bool use = r != NULL;
	if (use && r->code != 0) {
		bool good = v == IMP_REJECT ? (r->code >= 500 && r->code <= 599)
					    : (r->code >= 400 && r->code <= 499);
		if (!good) {
			const struct imp_instance *i = s->ph.inst;

			log_panic("%s api bad reply module=%s instance=\"%s\" phase=%s verdict=%s code=%d: using the default",
				  s->conn_id, i ? imp_instance_module(i) : "?",
				  i ? imp_instance_name(i) : "", imp_phase_name(s->ph.phase),
				  v == IMP_REJECT ? "reject" : v == IMP_TEMPFAIL ? "tempfail" : "disconnect",
				  r->code);
			use = false;
		} else {
			code = r->code;
			if (r->status[0] == '\0')
				status = code / 100 == 5 ? "5.7.1" : "4.7.1";
		}
	}
	if (use && r->status[0] != '\0')
		status = status_ok(r->status, code) ? r->status
						     : (code / 100 == 5 ? "5.7.1" : "4.7.1");
	if (use && r->text[0] != '\0')
		text = r->text;
	str_clear(out);
	str_appendf(out, "%d %s ", code, status);
	/* One line of printable text: a module's CR, LF or NUL never reaches the client. */
	for (const unsigned char *p = (const unsigned char *)text; *p && out->len < 460; p++)
		str_appendc(out, (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p);
}

/*
 * refuse - answer a refusal and log it in the rejectlog with the phase's
 * name. DISCONNECT also closes (the 421 goes out first).
 */
static void refuse(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	struct str line = STR_INIT;

	verdict_line(s, v, r, &line);
	reply(s, "%s", line.s);
	session_log_reject(s, imp_phase_name(s->ph.phase), line.s, v == IMP_DISCONNECT);
	str_free(&line);
	if (v == IMP_DISCONNECT) {
		transaction_reset(s);
		session_close(s);
	}
}

/*
 * phase_step - call the subscribers from ph.next on until one ends the
 * phase; CONTINUE when all passed, SUSPEND when one waits (its token is
 * ph.token). A verdict outside the enum, or SUSPEND without a token, is
 * a module bug answered as TEMPFAIL with the default reply.
 */
static enum imp_verdict phase_step(struct smtp_session *s, struct imp_reply *reply)
{
	const struct api_hook *h = s->ph.hook;

	while (h != NULL && s->ph.next < h->n) {
		const struct api_sub *sub = &h->v[s->ph.next++];
		imp_validate_fn fn = (imp_validate_fn)sub->fn;
		enum imp_verdict v;

		memset(reply, 0, sizeof(*reply));
		s->ph.inst = sub->inst;
		s->ph.in_sub = true;
		/* The subscriber's services (macros) see the session's own generation. */
		struct api_gen *prev = api_gen_enter(api_gen_of(s->conf));
		v = fn(sub->closure, (struct imp_session *)s, reply);
		api_gen_leave(prev);
		s->ph.in_sub = false;
		if (v == IMP_SUSPEND && s->ph.token != NULL)
			return IMP_SUSPEND;
		if (s->ph.token != NULL) {
			/* Suspended, then answered anyway: the later resume finds nobody. */
			s->ph.token->s = NULL;
			s->ph.token = NULL;
		}
		if ((unsigned)v > IMP_SUSPEND || v == IMP_SUSPEND) {
			log_panic("%s api bad verdict module=%s instance=\"%s\" phase=%s verdict=%d: tempfail",
				  s->conn_id, imp_instance_module(sub->inst), imp_instance_name(sub->inst),
				  imp_phase_name(s->ph.phase), (int)v);
			memset(reply, 0, sizeof(*reply));
			return IMP_TEMPFAIL;
		}
		if (v != IMP_CONTINUE)
			return v;
	}
	return IMP_CONTINUE;
}

/*
 * phase_run - start phase: CONTINUE at once when nobody subscribed (one
 * load and compare), else the subscribers' verdict, or SUSPEND after
 * entering S_HOOK (the resume calls the phase's finisher).
 */
static enum imp_verdict phase_run(struct smtp_session *s, enum imp_phase phase,
				  struct imp_reply *reply)
{
	const struct api_hook *h = api_hook_of(s->conf, (enum api_hook_id)(API_HOOK_VALIDATE_FIRST + phase));

	s->ph.phase = phase;
	if (h == NULL)
		return IMP_CONTINUE;
	s->ph.hook = h;
	s->ph.next = 0;
	enum imp_verdict v = phase_step(s, reply);

	if (v == IMP_SUSPEND) {
		/* Input stays buffered in order; reading goes on only to notice a departure. */
		session_set_state(s, S_HOOK);
		if (s->sock)
			sockio_set_timeouts(s->sock, NULL, NULL);
	}
	return v;
}

/* phase_finish - hand a phase's verdict to the finisher of the phase. */
static void phase_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	switch (s->ph.phase) {
	case IMP_PHASE_CONNECT:
		connect_finish(s, v, r);
		break;
	case IMP_PHASE_EHLO:
		ehlo_finish(s, v, r);
		break;
	case IMP_PHASE_MAILFROM:
		mail_finish(s, v, r);
		break;
	case IMP_PHASE_RCPTTO:
		rcpt_finish(s, v, r);
		break;
	case IMP_PHASE_DATA:
		data_finish(s, v, r);
		break;
	default:
		reception_run(s, true, v, r);
		break;
	}
}

/* token_unlink - take t off its loop's list of outstanding tokens. */
static void token_unlink(struct imp_resume *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (t->io->tokens == t)
		t->io->tokens = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

struct imp_resume *imp_session_suspend(struct imp_session *is)
{
	struct smtp_session *s = (struct smtp_session *)is;

	if (s == NULL || !s->ph.in_sub || s->ph.token != NULL) {
		log_panic("%s api imp_session_suspend outside a validation subscriber or twice",
			  s ? s->conn_id : "-");
		return NULL;
	}
	struct imp_resume *t = XNEW(struct imp_resume);

	t->io = s->io;
	t->s = s;
	t->next = s->io->tokens;
	if (t->next)
		t->next->prev = t;
	s->io->tokens = t;
	s->ph.token = t;
	return t;
}

void imp_session_resume(struct imp_resume *t, enum imp_verdict verdict,
			const struct imp_reply *reply)
{
	if (t == NULL)
		return;
	t->verdict = verdict;
	if (reply)
		t->reply = *reply;
	else
		memset(&t->reply, 0, sizeof(t->reply));
	msgs_post(t->io->loop, MSGS_SMTP_RESUME, t);
}

/*
 * session_after_phase - a resumed phase has ended: unless the finisher
 * closed the session or handed the message on, take the waiting input
 * again with fresh deadlines.
 */
static void session_after_phase(struct smtp_session *s)
{
	if (s->sock == NULL)
		return;
	switch (s->state) {
	case S_CMD:
		set_timeout(s, s->lim.cmd_timeout);
		break;
	case S_DATA:
	case S_BDAT:
		break;		/* the finisher set the data timeouts */
	default:
		return;
	}
	sockio_enable(s->sock, EV_READ | EV_WRITE);
	session_process(s);
}

void smtp_session_on_resume(void *arg)
{
	struct imp_resume *t = arg;
	struct smtp_session *s = t->s;
	enum imp_verdict v = t->verdict;
	struct imp_reply r = t->reply;

	token_unlink(t);
	free(t);
	if (s == NULL)
		return;		/* the client left, or the subscriber answered already */
	s->ph.token = NULL;
	if (v == IMP_SUSPEND || (unsigned)v > IMP_SUSPEND) {
		log_panic("%s api bad resume verdict=%d phase=%s: tempfail", s->conn_id, (int)v,
			  imp_phase_name(s->ph.phase));
		v = IMP_TEMPFAIL;
		memset(&r, 0, sizeof(r));
	}
	/* Back to where the phase started; the finisher moves on from there. */
	session_set_state(s, S_CMD);
	if (v == IMP_CONTINUE) {
		v = phase_step(s, &r);
		if (v == IMP_SUSPEND) {
			session_set_state(s, S_HOOK);
			if (s->sock)
				sockio_set_timeouts(s->sock, NULL, NULL);
			return;
		}
	}
	phase_finish(s, v, &r);
	if (s->state == S_HOOK)
		return;		/* a later phase of the same step suspended */
	session_after_phase(s);
}

void smtp_session_tokens_free(struct smtp_io *io)
{
	while (io->tokens) {
		struct imp_resume *t = io->tokens;

		token_unlink(t);
		free(t);
	}
}

/* ------------------------------------------------------------------ */
/* the end of a message: reception phases, signing, spool              */

static void reception_spool(struct smtp_session *s);

/*
 * reception_refuse - the message is refused by a reception phase: answer
 * (the client is in sync, the data is all read) and forget it.
 */
static void reception_refuse(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	refuse(s, v, r);
	if (v != IMP_DISCONNECT)
		transaction_reset(s);
}

/*
 * reception_drop_refused - remove the recipients data_spool_each_rcpt
 * refused; false when none is left (the last refusal was answered).
 */
static bool reception_drop_refused(struct smtp_session *s)
{
	struct envelope *msg = s->msg;
	size_t kept = 0;

	if (s->rx_dropped == NULL)
		return true;
	for (size_t i = 0; i < msg->nrcpt; i++) {
		if (s->rx_dropped[i]) {
			free(msg->rcpts[i].addr);
			free(msg->rcpts[i].orcpt);
			continue;
		}
		msg->rcpts[kept++] = msg->rcpts[i];
	}
	msg->nrcpt = kept;
	if (kept > 0)
		return true;
	reply(s, "%s", s->rx_refusal.s);
	transaction_reset(s);
	return false;
}

/*
 * reception_run - data_spool, then data_spool_each_rcpt once per
 * recipient, then set_binding, then the spool. Called first with have
 * false; a resumed phase comes back with have and its verdict. Iterative,
 * so a thousand recipients do not make a thousand stack frames.
 */
static void reception_run(struct smtp_session *s, bool have, enum imp_verdict v,
			  const struct imp_reply *r)
{
	struct imp_reply rep;

	for (;;) {
		if (!have) {
			enum imp_phase ph = s->ph.phase;

			if (ph == IMP_PHASE_DATA_SPOOL_EACH_RCPT) {
				if (s->rx_rcpt >= s->msg->nrcpt) {
					s->cur_rcpt = NULL;
					s->ph.phase = IMP_PHASE_SET_BINDING;
					continue;
				}
				s->cur_rcpt = s->msg->rcpts[s->rx_rcpt].addr;
			}
			v = phase_run(s, ph, &rep);
			r = &rep;
			if (v == IMP_SUSPEND)
				return;
		}
		have = false;
		switch (s->ph.phase) {
		case IMP_PHASE_DATA_SPOOL:
			if (refused(v)) {
				reception_refuse(s, v, r);
				return;
			}
			s->ph.phase = IMP_PHASE_DATA_SPOOL_EACH_RCPT;
			s->rx_rcpt = 0;
			continue;
		case IMP_PHASE_DATA_SPOOL_EACH_RCPT:
			if (v == IMP_DISCONNECT) {
				reception_refuse(s, v, r);
				return;
			}
			if (refused(v)) {
				/* This recipient only: logged now, answered only if none is left. */
				if (s->rx_dropped == NULL)
					s->rx_dropped = xcalloc(s->msg->nrcpt, sizeof(bool));
				s->rx_dropped[s->rx_rcpt] = true;
				verdict_line(s, v, r, &s->rx_refusal);
				struct str why = STR_INIT;
				str_appendf(&why, "%s (recipient <%s>)", s->rx_refusal.s, s->cur_rcpt);
				session_log_reject(s, imp_phase_name(s->ph.phase), why.s, false);
				str_free(&why);
			}
			s->rx_rcpt++;
			continue;
		case IMP_PHASE_SET_BINDING:
			s->cur_rcpt = NULL;
			if (refused(v)) {
				reception_refuse(s, v, r);
				return;
			}
			if (!reception_drop_refused(s))
				return;
			reception_spool(s);
			return;
		default:
			return;
		}
	}
}

/* reception_begin - the message is complete and checked: run its phases. */
static void reception_begin(struct smtp_session *s)
{
	message_view_init(&s->view, s->msg, true);
	s->view_live = true;
	/* With no generation (tools, tests) the queue applies Assign_Binding. */
	s->msg->binding_chosen = api_gen_of(s->conf) != NULL;
	s->ph.phase = IMP_PHASE_DATA_SPOOL;
	reception_run(s, false, IMP_CONTINUE, NULL);
}

/* A message on its way through the sign subscribers (CPU pool). */
struct sign_job {
	struct smtp_session *s;
	struct envelope *msg;
	const struct api_hook *hook;	/* in the session's generation, which the session holds */
	struct loop *loop;
};

/* sign_run - CPU pool thread: the sign subscribers, in order, on the unshared message. */
static void sign_run(void *arg)
{
	struct sign_job *j = arg;
	struct imp_message m;

	message_view_init(&m, j->msg, true);
	for (size_t i = 0; i < j->hook->n; i++) {
		imp_sign_fn fn = (imp_sign_fn)j->hook->v[i].fn;

		fn(j->hook->v[i].closure, &m);
	}
	message_view_done(&m);
	msgs_post(j->loop, MSGS_SMTP_SIGNED, j);
}

void smtp_session_on_signed(void *arg)
{
	struct sign_job *j = arg;
	struct smtp_session *s = j->s;

	spool_submit(smtp_server_spool(s->io->srv), j->msg, s->io->loop, on_spooled, s);
	free(j);
}

/*
 * reception_spool - hand the message to the spool, through the sign
 * subscribers on the CPU pool when there are any (without subscribers,
 * or without a pool, no hop). The session waits in SPOOL either way:
 * the answer names it, so a client that leaves makes it a zombie.
 */
static void reception_spool(struct smtp_session *s)
{
	struct envelope *msg = s->msg;
	const struct api_hook *sign = api_hook_of(s->conf, API_HOOK_SIGN);
	struct pool *cpu = sign ? api_runtime()->cpu_pool : NULL;

	s->msg = NULL;
	transaction_reset(s);
	session_set_state(s, S_SPOOL);
	if (s->sock) {
		sockio_disable(s->sock, EV_READ);
		/* No timeout while the spool works: its answer names this session. */
		sockio_set_timeouts(s->sock, NULL, NULL);
	}
	if (cpu != NULL) {
		struct sign_job *j = XNEW(struct sign_job);

		j->s = s;
		j->msg = msg;
		j->hook = sign;
		j->loop = s->io->loop;
		pool_submit(cpu, sign_run, j);
		return;
	}
	spool_submit(smtp_server_spool(s->io->srv), msg, s->io->loop, on_spooled, s);
}

/* ------------------------------------------------------------------ */
/* commands                                                            */

static bool check_helo_arg(struct smtp_session *s, const char *args, const char *verb)
{
	while (*args == ' ')
		args++;
	if (*args == '\0') {
		reject(s, "ehlo", "501 5.5.4 Syntax: %s hostname", verb);
		return false;
	}
	return true;
}

static void cmd_helo(struct smtp_session *s, const char *args, bool esmtp)
{
	if (!check_helo_arg(s, args, esmtp ? "EHLO" : "HELO"))
		return;
	while (*args == ' ')
		args++;
	transaction_reset(s);
	free(s->helo);
	s->helo = xstrndup(args, 255);
	s->esmtp = esmtp;

	struct imp_reply r;
	enum imp_verdict v = phase_run(s, IMP_PHASE_EHLO, &r);

	if (v != IMP_SUSPEND)
		ehlo_finish(s, v, &r);
}

/* ehlo_finish - the ehlo phase ended: the greeting, or the refusal (no HELO/EHLO then). */
static void ehlo_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	if (refused(v)) {
		free(s->helo);
		s->helo = NULL;
		s->esmtp = false;
		refuse(s, v, r);
		return;
	}
	if (!s->esmtp) {
		reply(s, "250 %s", s->hostname);
		return;
	}
	reply(s, "250-%s", s->hostname);
	reply(s, "250-PIPELINING");
	if (s->lim.max_size > 0)
		reply(s, "250-SIZE %lld", (long long)s->lim.max_size);
	else
		reply(s, "250-SIZE");
	reply(s, "250-8BITMIME");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-SMTPUTF8");
	reply(s, "250-DSN");
	reply(s, "250-CHUNKING");
	if (s->tls_ctx && !s->tls)
		reply(s, "250-STARTTLS");
	if (smtp_session_auth_offered(s))
		reply(s, "250-AUTH%s%s", (s->lim.auth.mechs & CONF_AUTH_PLAIN) ? " PLAIN" : "",
		      (s->lim.auth.mechs & CONF_AUTH_LOGIN) ? " LOGIN" : "");
	reply(s, "250 HELP");
}

static void cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_ext_allowed ext = { .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true };
	struct smtp_mail_args m;
	struct smtp_reply r;

	if (s->helo == NULL) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->msg) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	ext.auth = smtp_session_auth_offered(s);
	if (!s->esmtp)
		memset(&ext, 0, sizeof(ext));
	memset(&m, 0, sizeof(m));
	if (!smtp_parse_mail(args, &ext, &m, &r)) {
		reply_parsed(s, &r);
		session_log_reject(s, "mailfrom", r.text, false);
		return;
	}
	if (s->lim.max_size > 0 && m.size > s->lim.max_size) {
		reject(s, "mailfrom", "552 5.3.4 Message size exceeds fixed limit");
		smtp_mail_args_free(&m);
		return;
	}

	struct envelope *msg = envelope_new();
	msg->id = id_next();
	msg->conn_id = s->conn;
	msg->sender = m.path;
	m.path = NULL;
	msg->envid = m.envid;
	m.envid = NULL;
	msg->ret = m.ret;
	msg->body_type = m.body;
	msg->smtputf8 = m.smtputf8;
	msg->client_ip = xstrdup(s->peer_ip);
	msg->helo = xstrdup(s->helo);
	msg->protocol = xstrdup(s->esmtp ? "esmtp" : "smtp");
	msg->binding_group = xstrdup("");
	msg->binding = xstrdup("");
	if (s->auth_user) {
		/*
		 * The identity travels with the message (spooled): the R line,
		 * sign_condition and delivery-side modules read it. AUTH= of
		 * MAIL (RFC 4954 5) is accepted and not trusted: we know who
		 * submitted, and that is what is recorded.
		 */
		msg->vctx = vctx_new();
		vctx_set(msg->vctx, IMP_VCTX_AUTH_USER, s->auth_user);
		vctx_set(msg->vctx, "auth_user", s->auth_user);
	}
	s->msg = msg;
	s->declared_size = m.size;
	smtp_mail_args_free(&m);

	struct imp_reply ir;
	enum imp_verdict v = phase_run(s, IMP_PHASE_MAILFROM, &ir);

	if (v != IMP_SUSPEND)
		mail_finish(s, v, &ir);
}

/* mail_finish - the mailfrom phase ended: the transaction starts, or is forgotten. */
static void mail_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	if (refused(v)) {
		transaction_reset(s);
		refuse(s, v, r);
		return;
	}
	reply(s, "250 2.1.0 Sender OK");
}

/* relay_allowed - Relay_Domains for the recipient, or Relay_Hosts for the client. */
static bool relay_allowed(struct smtp_session *s, const char *path)
{
	const char *domain = smtp_path_domain(path);

	if (*domain == '\0')
		return strcasecmp(path, "postmaster") == 0;
	if (conf_relay_domain_match(s->conf, s->clistener, domain) || s->auth_user != NULL)
		return true;
	return conf_relay_host_match(s->conf, s->clistener, (const struct sockaddr *)&s->peer);
}

static void cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_ext_allowed ext = { .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true };
	struct smtp_rcpt_args a;
	struct smtp_reply r;

	if (s->msg == NULL) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!s->esmtp)
		memset(&ext, 0, sizeof(ext));
	memset(&a, 0, sizeof(a));
	if (!smtp_parse_rcpt(args, &ext, s->msg->smtputf8, &a, &r)) {
		reply_parsed(s, &r);
		session_log_reject(s, "rcptto", r.text, false);
		s->rcpt_refused++;
		return;
	}
	if ((int64_t)s->msg->nrcpt >= s->lim.max_rcpts) {
		reject(s, "rcptto", "452 4.5.3 Error: too many recipients");
		smtp_rcpt_args_free(&a);
		return;
	}
	/*
	 * Relay control is the built-in rcptto subscriber (smtp_policy.c), so
	 * a module that accepts before it lets the recipient through. A
	 * configuration without a generation (no daemon start-up: tools,
	 * tests) still gets it, inline.
	 */
	if (api_gen_of(s->conf) == NULL && !relay_allowed(s, a.path)) {
		reject(s, "rcptto", "550 5.7.1 Relaying denied");
		smtp_rcpt_args_free(&a);
		s->rcpt_refused++;
		return;
	}
	s->rcpt = a;
	s->cur_rcpt = s->rcpt.path;

	struct imp_reply ir;
	enum imp_verdict v = phase_run(s, IMP_PHASE_RCPTTO, &ir);

	if (v != IMP_SUSPEND)
		rcpt_finish(s, v, &ir);
}

/* rcpt_finish - the rcptto phase ended: add the recipient, or refuse it. */
static void rcpt_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	struct smtp_rcpt_args a = s->rcpt;

	memset(&s->rcpt, 0, sizeof(s->rcpt));
	s->cur_rcpt = NULL;
	if (refused(v)) {
		smtp_rcpt_args_free(&a);
		s->rcpt_refused++;
		refuse(s, v, r);
		return;
	}
	struct envelope *msg = s->msg;
	if (msg->nrcpt == s->nrcpt_alloc) {
		s->nrcpt_alloc = s->nrcpt_alloc ? s->nrcpt_alloc * 2 : 4;
		msg->rcpts = xrealloc(msg->rcpts, s->nrcpt_alloc * sizeof(*msg->rcpts));
	}
	struct envelope_rcpt *rc = &msg->rcpts[msg->nrcpt++];
	memset(rc, 0, sizeof(*rc));
	rc->addr = a.path;
	rc->orcpt = a.orcpt;
	rc->notify = a.notify;
	reply(s, "250 2.1.5 Recipient OK");
}

static bool transaction_ready(struct smtp_session *s)
{
	if (s->msg == NULL) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return false;
	}
	if (s->msg->nrcpt == 0) {
		if (s->rcpt_refused > 0)
			reply(s, "554 5.5.1 Error: no valid recipients");
		else
			reply(s, "503 5.5.1 Error: need RCPT command");
		return false;
	}
	return true;
}

static uint64_t scan_limit(struct smtp_session *s)
{
	/* Keep one byte past the limit so "too big" is detectable, no more. */
	return s->lim.max_size > 0 ? (uint64_t)s->lim.max_size + 1 : 0;
}

/*
 * scan_begin - a fresh DATA/BDAT scanner with this listener's repairs
 * (RFC2822_Lone_LF_In_Headers/_Body = fix, RFC2822_Max_Line_Length = fix).
 */
static void scan_begin(struct smtp_session *s)
{
	smtp_data_scanner_init(&s->scan);
	s->scan.fix_bare_headers = s->lim.lone_lf_headers == CONF_RFC2822_FIX;
	s->scan.fix_bare_body = s->lim.lone_lf_body == CONF_RFC2822_FIX;
	/* fix: the scanner keeps long lines, the MIME line fixer breaks them. */
	if (s->fixing)
		mime_fix_free(&s->fix);
	s->fixing = s->lim.max_line == CONF_LINE_LIMIT_FIX;
	if (s->fixing)
		mime_fix_init(&s->fix);
	str_clear(&s->fixbuf);
}

/*
 * scan_out - where the scanner writes: the body, or with
 * RFC2822_Max_Line_Length = fix the buffer scan_fixed passes through the
 * MIME line fixer (the one extra copy only that setting pays for).
 */
static struct str *scan_out(struct smtp_session *s)
{
	return s->fixing ? &s->fixbuf : body_out(s);
}

/* scan_fixed - hand what the scanner wrote to the fixer, which writes the body. */
static void scan_fixed(struct smtp_session *s)
{
	if (!s->fixing || s->fixbuf.len == 0)
		return;
	mime_fix_feed(&s->fix, s->fixbuf.s, s->fixbuf.len, body_out(s));
	str_clear(&s->fixbuf);
}

static void cmd_data(struct smtp_session *s, const char *args)
{
	if (s->bdat_used) {
		reply(s, "503 5.5.1 Error: DATA not allowed after BDAT");
		return;
	}
	if (!transaction_ready(s))
		return;
	s->ph.bdat = false;

	struct imp_reply r;
	enum imp_verdict v = phase_run(s, IMP_PHASE_DATA, &r);

	if (v != IMP_SUSPEND)
		data_finish(s, v, &r);
}

/*
 * data_finish - the data phase ended. For DATA: 354, or the refusal (the
 * transaction is forgotten). For the first BDAT: its chunk is read
 * either way (RFC 3030), kept or, after a refusal, dropped and answered
 * with the refusal at its end.
 */
static void data_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	if (v == IMP_DISCONNECT) {
		refuse(s, v, r);
		return;
	}
	if (!s->ph.bdat) {
		if (refused(v)) {
			transaction_reset(s);
			refuse(s, v, r);
			return;
		}
		start_body(s);
		scan_begin(s);
		reply(s, "354 End data with <CR><LF>.<CR><LF>");
		session_set_state(s, S_DATA);
		set_timeout(s, s->lim.data_timeout);
		return;
	}
	if (refused(v)) {
		struct str line = STR_INIT;

		verdict_line(s, v, r, &line);
		s->bdat_refusal = str_steal(&line);
		s->bdat_discard = true;
	} else {
		s->bdat_used = true;
		start_body(s);
		scan_begin(s);
	}
	session_set_state(s, S_BDAT);
	set_timeout(s, s->lim.data_timeout);
}

static void cmd_bdat(struct smtp_session *s, const char *args)
{
	char *end;
	unsigned long long n;
	bool last = false;

	while (*args == ' ')
		args++;
	if (*args < '0' || *args > '9') {
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	errno = 0;
	n = strtoull(args, &end, 10);
	if (errno) {
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	while (*end == ' ')
		end++;
	if (strcasecmp(end, "LAST") == 0)
		last = true;
	else if (*end != '\0') {
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}

	/*
	 * RFC 3030: the chunk follows the command no matter what we answer, so
	 * a refused BDAT still reads (and drops) its octets to stay in sync.
	 */
	s->bdat_remaining = n;
	s->bdat_chunk_size = n;
	s->bdat_last = last;
	s->bdat_discard = false;
	if (s->msg == NULL || s->msg->nrcpt == 0 || s->bdat_failed) {
		s->bdat_discard = true;
	} else if (!s->bdat_used) {
		/* The first chunk: the data phase decides before its octets are taken. */
		s->ph.bdat = true;

		struct imp_reply r;
		enum imp_verdict v = phase_run(s, IMP_PHASE_DATA, &r);

		if (v != IMP_SUSPEND)
			data_finish(s, v, &r);
		return;
	}
	session_set_state(s, S_BDAT);
	set_timeout(s, s->lim.data_timeout);
}

/* bdat_chunk_done - all octets of a chunk are in: answer it. */
static void bdat_chunk_done(struct smtp_session *s, uint64_t size)
{
	session_set_state(s, S_CMD);
	set_timeout(s, s->lim.cmd_timeout);
	if (s->bdat_discard && s->bdat_refusal) {
		/* The data phase refused this transaction at its first BDAT. */
		char *line = s->bdat_refusal;

		s->bdat_refusal = NULL;
		reply(s, "%s", line);
		session_log_reject(s, "data", line, false);
		free(line);
		transaction_reset(s);
		return;
	}
	if (s->bdat_discard) {
		if (s->msg && s->msg->nrcpt == 0 && s->rcpt_refused > 0)
			reply(s, "554 5.5.1 Error: no valid recipients");
		else if (s->msg && s->bdat_failed)
			reply(s, "503 5.5.1 Error: transaction failed, send RSET");
		else if (s->msg)
			reply(s, "503 5.5.1 Error: need RCPT command");
		else
			reply(s, "503 5.5.1 Error: need MAIL command");
		if (s->msg)
			s->bdat_failed = true;
		return;
	}
	if (s->lim.max_size > 0 && s->scan.bytes > (uint64_t)s->lim.max_size) {
		reject(s, "data", "552 5.3.4 Message size exceeds fixed limit");
		/* The rest of the chunks will be refused until RSET/MAIL. */
		s->bdat_failed = true;
		if (s->bdat_last)
			transaction_reset(s);
		return;
	}
	if (s->bdat_last) {
		s->data_end_us = histo_now_us();
		message_complete(s);
		return;
	}
	reply(s, "250 2.0.0 %llu octets received", (unsigned long long)size);
}

static void cmd_starttls(struct smtp_session *s, const char *args)
{
	if (s->tls) {
		reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->tls_ctx == NULL) {
		reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (*args) {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	session_set_state(s, S_STARTTLS);
	sockio_disable(s->sock, EV_READ);
	/* Anything pipelined after STARTTLS in clear text is dropped (RFC 3207 4.2). */
	struct evbuffer *in = sockio_input(s->sock);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (evbuffer_get_length(sockio_output(s->sock)) == 0)
		on_write(s->sock, s);
}

/* start_tls - the 220 is out: replace the plain sockio by a TLS bufferevent in one. */
static void start_tls(struct smtp_session *s)
{
	SSL *ssl = SSL_new(s->tls_ctx);
	struct event_base *base = loop_base(s->io->loop);

	sockio_free(s->sock);	/* created without CLOSE_ON_FREE: fd stays */
	s->sock = NULL;
	if (ssl == NULL) {
		close(s->fd);
		s->fd = -1;
		session_free(s);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(base, s->fd, ssl,
								 BUFFEREVENT_SSL_ACCEPTING,
								 BEV_OPT_CLOSE_ON_FREE |
								 BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		close(s->fd);
		s->fd = -1;
		session_free(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->sock = sockio_wrap(bev);
	sockio_setcb(s->sock, on_read, on_write, on_event, s);
	sockio_setwatermark(s->sock, EV_READ, 0, INPUT_HIGH_WATER);
	s->tls = true;
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	transaction_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	smtp_session_auth_forget(s);
	session_set_state(s, S_CMD);
	set_timeout(s, s->lim.cmd_timeout);
	sockio_enable(s->sock, EV_READ | EV_WRITE);
}

/*
 * known_unimplemented - verbs of RFC 821/5321 and its extensions that we
 * recognise but do not offer: they get 502, not 500 (RFC 5321 4.2.4).
 */
static bool known_unimplemented(const char *line, size_t len)
{
	static const char *const verbs[] = { "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML" };
	size_t word = 0;

	while (word < len && line[word] != ' ')
		word++;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (word == strlen(verbs[i]) && strncasecmp(line, verbs[i], word) == 0)
			return true;
	return false;
}

static void do_command(struct smtp_session *s, const char *line, size_t len)
{
	const char *args;
	enum smtp_verb verb;

	if (!smtp_line_is_clean(line, len)) {
		reject(s, "connect", "500 5.5.2 Error: bad characters in command");
		return;
	}
	if (s->io->shutting_down && s->msg == NULL) {
		reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
		session_close(s);
		return;
	}
	verb = smtp_parse_command(line, len, &args);
	switch (verb) {
	case SMTP_VERB_EHLO:
		cmd_helo(s, args, true);
		break;
	case SMTP_VERB_HELO:
		cmd_helo(s, args, false);
		break;
	case SMTP_VERB_MAIL:
		cmd_mail(s, args);
		break;
	case SMTP_VERB_RCPT:
		cmd_rcpt(s, args);
		break;
	case SMTP_VERB_DATA:
		cmd_data(s, args);
		break;
	case SMTP_VERB_BDAT:
		cmd_bdat(s, args);
		break;
	case SMTP_VERB_RSET:
		transaction_reset(s);
		reply(s, "250 2.0.0 OK");
		break;
	case SMTP_VERB_NOOP:
		reply(s, "250 2.0.0 OK");
		break;
	case SMTP_VERB_QUIT:
		reply(s, "221 2.0.0 Bye");
		session_close(s);
		break;
	case SMTP_VERB_HELP:
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS");
		break;
	case SMTP_VERB_VRFY:
		reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case SMTP_VERB_STARTTLS:
		cmd_starttls(s, args);
		break;
	case SMTP_VERB_AUTH:
		smtp_session_cmd_auth(s, args);
		break;
	case SMTP_VERB_EXPN:
		reply(s, "502 5.5.1 Error: command not implemented");
		break;
	case SMTP_VERB_UNKNOWN:
	default:
		if (known_unimplemented(line, len))
			reply(s, "502 5.5.1 Error: command not implemented");
		else
			reject(s, "connect", "500 5.5.2 Error: command not recognized");
		break;
	}
}

/* ------------------------------------------------------------------ */
/* input                                                               */

/* process_commands - handle complete command lines; false to stop. */
static bool process_commands(struct smtp_session *s, struct evbuffer *in)
{
	size_t eol_len;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

	if (p.pos < 0) {
		size_t avail = evbuffer_get_length(in);
		if (avail > (size_t)s->lim.max_cmd) {
			/* No end in sight: answer now, drop the rest of the line as it comes. */
			evbuffer_drain(in, avail);
			if (!s->discarding) {
				/* An AUTH response too long ends the exchange. */
				if (s->state == S_AUTH)
					smtp_session_auth_end(s);
				reject(s, "connect", "500 5.5.2 Error: line too long");
			}
			s->discarding = true;
		}
		return false;
	}
	size_t len = (size_t)p.pos;
	if (s->discarding) {
		evbuffer_drain(in, len + eol_len);
		s->discarding = false;
		return true;
	}
	if (len + eol_len > (size_t)s->lim.max_cmd) {
		evbuffer_drain(in, len + eol_len);
		if (s->state == S_AUTH)
			smtp_session_auth_end(s);
		reject(s, "connect", "500 5.5.2 Error: line too long");
		return true;
	}
	char stackbuf[1024];
	char *line = len < sizeof(stackbuf) ? stackbuf : xmalloc(len + 1);
	evbuffer_remove(in, line, len);
	line[len] = '\0';
	evbuffer_drain(in, eol_len);
	if (tracing(s))
		smtp_session_auth_trace(s, line, len);	/* AUTH lines masked */
	/* Lines that may carry credentials are wiped once handled. */
	bool secret = s->state == S_AUTH || (len >= 4 && strncasecmp(line, "AUTH", 4) == 0);
	/* A CR left before a bare LF belongs to no command. */
	if (s->state == S_AUTH)
		smtp_session_auth_line(s, line, len);
	else
		do_command(s, line, len);
	if (secret)
		explicit_bzero(line, len);
	if (line != stackbuf)
		free(line);
	return true;
}

/* process_data - feed the DATA scanner from the input buffer. */
static bool process_data(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec[8];
	size_t consumed = 0;

	if (body_blocked(s))
		return false;	/* on_spill_wake resumes */
	int n = evbuffer_peek(in, SCAN_PIECE, NULL, vec, 8);
	if (n <= 0)
		return false;
	for (int i = 0; i < n && i < 8 && !s->scan.done && consumed < SCAN_PIECE; i++) {
		size_t len = vec[i].iov_len;

		if (len > SCAN_PIECE - consumed)
			len = SCAN_PIECE - consumed;
		consumed += smtp_data_scan(&s->scan, vec[i].iov_base, len, scan_out(s),
					   scan_limit(s));
		scan_fixed(s);
	}
	evbuffer_drain(in, consumed);
	body_spill(s);
	if (!s->scan.done)
		return evbuffer_get_length(in) > 0;
	session_set_state(s, S_CMD);
	set_timeout(s, s->lim.cmd_timeout);
	s->data_end_us = histo_now_us();
	message_complete(s);
	return true;
}

/* process_bdat - take up to the remaining chunk octets from the input. */
static bool process_bdat(struct smtp_session *s, struct evbuffer *in)
{
	while (s->bdat_remaining > 0) {
		struct evbuffer_iovec vec[1];
		if (body_blocked(s))
			return false;	/* on_spill_wake resumes */
		if (evbuffer_peek(in, -1, NULL, vec, 1) < 1)
			return false;
		size_t take = vec[0].iov_len;
		if (take > s->bdat_remaining)
			take = (size_t)s->bdat_remaining;
		if (take > SCAN_PIECE)
			take = SCAN_PIECE;
		if (take == 0)
			return false;
		if (!s->bdat_discard) {
			/* smtp_scan_chunk counts the bytes; it keeps only what fits. */
			smtp_scan_chunk(&s->scan, vec[0].iov_base, take, scan_out(s),
					scan_limit(s));
			scan_fixed(s);
			body_spill(s);
		}
		evbuffer_drain(in, take);
		s->bdat_remaining -= take;
	}
	return true;
}

/* too_many_errors - Hard_Error_Limit reached: 421 4.7.0 and close. */
static void too_many_errors(struct smtp_session *s)
{
	reply(s, "421 4.7.0 %s Error: too many errors", s->hostname);
	session_log_reject(s, "command", "421 4.7.0 too many errors", true);
	transaction_reset(s);
	session_close(s);
}

/* error_limit_reached - whether this session has used up Hard_Error_Limit. */
static bool error_limit_reached(const struct smtp_session *s)
{
	return s->lim.error_limit > 0 && s->errors_mark == s->messages &&
	       s->errors >= (uint64_t)s->lim.error_limit;
}

/*
 * session_process - take what the input holds, step by step, until it is
 * used up or a step waits. Before each step: stop (and stop reading) when
 * too much output waits for a client that does not read; after each step:
 * enforce Hard_Error_Limit and count DATA/BDAT octets for the deadline.
 * A command line consumed restarts the command deadline once per batch.
 */
static void session_process(struct smtp_session *s)
{
	if (s->sock == NULL)
		return;
	struct evbuffer *in = sockio_input(s->sock);
	struct evbuffer *out = sockio_output(s->sock);
	bool commands = false;

	for (;;) {
		enum session_state st = s->state;
		size_t before = evbuffer_get_length(in);
		bool more = false;

		if (st != S_SPOOL && st != S_STARTTLS && st != S_CLOSING && st != S_HOOK &&
		    st != S_AUTH_WAIT && evbuffer_get_length(out) > OUTPUT_PAUSE_BYTES) {
			/* on_write resumes once the client has read it all. */
			s->out_paused = true;
			sockio_disable(s->sock, EV_READ);
			break;
		}
		switch (st) {
		case S_CMD:
		case S_AUTH:
			more = process_commands(s, in);
			commands |= more;
			break;
		case S_DATA:
			more = process_data(s, in);
			break;
		case S_BDAT:
			more = process_bdat(s, in);
			if (s->bdat_remaining == 0) {
				bdat_chunk_done(s, s->bdat_chunk_size);
				more = true;
			}
			break;
		case S_SPOOL:
		case S_STARTTLS:
		case S_HOOK:
		case S_AUTH_WAIT:
		case S_CLOSING:
			return;
		}
		if ((st == S_DATA || st == S_BDAT) && s->state == st)
			s->phase_bytes += before - evbuffer_get_length(in);
		if (s->state != S_CLOSING && error_limit_reached(s)) {
			too_many_errors(s);
			return;
		}
		if (!more || s->sock == NULL)
			break;
	}
	if (commands && (s->state == S_CMD || s->state == S_AUTH))
		deadline_start(s);
}

/* ------------------------------------------------------------------ */
/* connection callbacks (core/sockio.h)                                */

static void on_read(struct sockio *sock, void *arg)
{
	session_process(arg);
}

static void on_write(struct sockio *sock, void *arg)
{
	struct smtp_session *s = arg;

	/* Called when the output buffer has drained completely. */
	if (s->state == S_CLOSING) {
		session_free(s);
	} else if (s->state == S_STARTTLS) {
		start_tls(s);
	} else if (s->out_paused) {
		/* The client read its replies: take its input again. */
		s->out_paused = false;
		sockio_enable(sock, EV_READ);
		session_process(s);
	}
}

/* session_timeout - 421 4.4.2 and close: an idle limit or a deadline passed. */
static void session_timeout(struct smtp_session *s)
{
	const char *phase = s->state == S_CMD || s->state == S_AUTH ? "command" : "data";

	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->hostname);
	session_log_reject(s, phase, "421 4.4.2 timeout exceeded", true);
	transaction_reset(s);
	session_close(s);
}

/*
 * on_deadline - the phase's deadline timer. In DATA and BDAT the deadline
 * is Data_Timeout + bytes / Min_Data_Rate from the phase start; the timer
 * is set for Data_Timeout and, when it fires, moved to the deadline the
 * bytes received so far have earned (no per-read work).
 */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == S_DATA || s->state == S_BDAT) {
		int64_t allowed = s->lim.data_timeout * 1000 +
				  (int64_t)(s->phase_bytes * 1000 / (uint64_t)s->lim.min_data_rate);
		int64_t elapsed = now_ms() - s->phase_start_ms;
		if (elapsed < allowed) {
			struct timeval tv = ms_timeval(allowed - elapsed);
			evtimer_add(s->deadline, &tv);
			return;
		}
	} else if (s->state != S_CMD && s->state != S_AUTH) {
		return;
	}
	session_timeout(s);
}

/*
 * log_tls_failure - one paniclog line for a failed TLS session. Before
 * OpenSSL's own codes libevent queues its SSL_get_error() result as a
 * fake code of library 0 ("error:00000001:lib(0)::reason(1)"), which
 * only says "see the others": it is named only when nothing else is there.
 */
static void log_tls_failure(struct smtp_session *s, struct bufferevent *bev)
{
	struct str why = STR_INIT;
	unsigned long e, pseudo = 0;

	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		char buf[256];

		if (ERR_GET_LIB(e) == 0) {
			pseudo = e;
			continue;
		}
		ERR_error_string_n(e, buf, sizeof(buf));
		if (why.len)
			str_append(&why, "; ", 2);
		str_appendf(&why, "%s", buf);
	}
	if (why.len == 0 && pseudo == 0) {
		str_free(&why);
		return;		/* a plain socket error: the client went away */
	}
	if (why.len == 0) {
		if (pseudo == SSL_ERROR_SYSCALL)
			str_appendf(&why, "connection lost (SSL_ERROR_SYSCALL)");
		else if (pseudo == SSL_ERROR_SSL)
			str_appendf(&why, "protocol error (SSL_ERROR_SSL)");
		else
			str_appendf(&why, "ssl_error=%lu", pseudo);
	}
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	bool established = ssl != NULL && SSL_is_init_finished(ssl);
	log_panic("%s tls %s client=%s error=\"%s\"", s->conn_id,
		  established ? "error" : "handshake failed", s->peer_str, why.s);
	str_free(&why);
}

static void on_event(struct sockio *sock, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_SPOOL || s->state == S_HOOK || s->state == S_AUTH_WAIT)
			return;		/* on_spooled / the resume re-arm the timeouts */
		if (s->state == S_CLOSING) {
			session_free(s);
			return;
		}
		session_timeout(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if ((what & BEV_EVENT_ERROR) && sockio_bufferevent(sock))
			log_tls_failure(s, sockio_bufferevent(sock));
		if (s->state == S_SPOOL) {
			/* Keep the session until the spool answers; drop the socket. */
			sockio_free(s->sock);
			s->sock = NULL;
			if (!s->tls)
				close(s->fd);
			s->fd = -1;
			s->zombie = true;
			return;
		}
		session_free(s);
	}
}

/* ------------------------------------------------------------------ */
/* for the other session files (smtp_session_int.h)                    */

void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&line, fmt, ap);
	va_end(ap);
	reply(s, "%s", line.s);
	str_free(&line);
}

void smtp_session_reject(struct smtp_session *s, const char *phase, const char *text)
{
	reject(s, phase, "%s", text);
}

void smtp_session_set_state(struct smtp_session *s, enum session_state st)
{
	session_set_state(s, st);
}

void smtp_session_wait(struct smtp_session *s)
{
	session_set_state(s, S_AUTH_WAIT);
	/* No timeouts while we wait: the answer names this session. */
	if (s->sock)
		sockio_set_timeouts(s->sock, NULL, NULL);
}

void smtp_session_wait_over(struct smtp_session *s)
{
	if (s->state != S_CLOSING)
		session_after_phase(s);
}

void smtp_session_close_now(struct smtp_session *s)
{
	transaction_reset(s);
	session_close(s);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

static void load_limits(struct smtp_session *s)
{
	const struct conf *c = s->conf;
	const struct conf_listener *l = s->clistener;

	s->lim.max_size = conf_listener_get(c, l, CONF_OPT_MAX_MESSAGE_SIZE)->u.i;
	s->lim.max_rcpts = conf_listener_get(c, l, CONF_OPT_MAX_RECIPIENTS_PER_MESSAGE)->u.i;
	s->lim.max_cmd = conf_listener_get(c, l, CONF_OPT_MAX_COMMAND_LENGTH)->u.i;
	s->lim.max_line = conf_listener_get(c, l, CONF_OPT_MAX_LINE_LENGTH)->u.i;
	s->lim.lone_lf_headers = (int)conf_listener_get(c, l, CONF_OPT_RFC2822_LONE_LF_IN_HEADERS)->u.i;
	s->lim.lone_lf_body = (int)conf_listener_get(c, l, CONF_OPT_RFC2822_LONE_LF_IN_BODY)->u.i;
	s->lim.cmd_timeout = conf_listener_get(c, l, CONF_OPT_SERVER_TIMEOUT)->u.i;
	s->lim.data_timeout = conf_listener_get(c, l, CONF_OPT_DATA_TIMEOUT)->u.i;
	s->lim.messageid = (int)conf_listener_get(c, l, CONF_OPT_RFC2822_MESSAGEID_HEADER)->u.i;
	s->lim.date_header = (int)conf_listener_get(c, l, CONF_OPT_RFC2822_DATE_HEADER)->u.i;
	s->lim.missing_headers = (int)conf_listener_get(c, l, CONF_OPT_RFC2822_MISSING_HEADERS)->u.i;
	s->lim.trace_headers = conf_listener_get(c, l, CONF_OPT_RFC2822_TRACE_HEADERS)->u.b;
	s->lim.min_data_rate = conf_listener_get(c, l, CONF_OPT_MIN_DATA_RATE)->u.i;
	s->lim.error_limit = conf_listener_get(c, l, CONF_OPT_HARD_ERROR_LIMIT)->u.i;
	s->lim.reject_log_limit = conf_listener_get(c, l, CONF_OPT_REJECTLOG_CONNECTION_LIMIT)->u.i;
	s->lim.reject_ip_budget =
		conf_get(c, CONF_OPT_REJECTLOG_THROTTLE_PER_IP, NULL, NULL)->u.t.count > 0;
	conf_listener_auth(c, l, &s->lim.auth);
}

void smtp_session_trace_init(void)
{
	smtp_trace_init();
}

void smtp_session_start(struct smtp_accept *acc)
{
	struct smtp_io *io = acc->io;
	struct smtp_session *s = XNEW(struct smtp_session);

	s->io = io;
	memcpy(s->listener_address, acc->listener_address, sizeof(s->listener_address));
	s->tls_ctx = acc->tls;
	s->conf = acc->conf;
	s->clistener = smtp_listener_conf(s->conf, acc->listener_index, acc->listener_address);
	s->fd = acc->fd;
	s->peer = acc->peer;
	s->local = acc->local;
	s->peer_len = acc->peer_len;
	s->local_len = acc->local_len;
	sockaddr_format((const struct sockaddr *)&acc->peer, s->peer_ip, sizeof(s->peer_ip),
			s->peer_str, sizeof(s->peer_str));
	sockaddr_format((const struct sockaddr *)&acc->local, NULL, 0, s->local_str, sizeof(s->local_str));
	s->conn = id_next();
	id_format(s->conn, s->conn_id);
	s->hostname = conf_hostname(s->conf);
	s->declared_size = -1;
	load_limits(s);
	free(acc);
	s->conn_vctx = vctx_new();
	/* Relay_Hosts is a property of the connection; modules may read or change it. */
	if (conf_relay_host_match(s->conf, s->clistener, (const struct sockaddr *)&s->peer))
		vctx_set(s->conn_vctx, IMP_VCTX_CAN_RELAY, "1");

	/* The listener accepted it non-blocking. No CLOSE_ON_FREE: STARTTLS keeps the fd. */
	s->sock = sockio_new(loop_base(io->loop), s->fd, 0);
	if (s->sock == NULL) {
		log_panic("%s cannot create the connection's buffers client=%s", s->conn_id,
			  s->peer_str);
		close(s->fd);
		s->fd = -1;
		session_free(s);
		return;
	}
	sockio_setcb(s->sock, on_read, on_write, on_event, s);
	sockio_setwatermark(s->sock, EV_READ, 0, INPUT_HIGH_WATER);
	s->deadline = evtimer_new(loop_base(io->loop), on_deadline, s);
	s->next = io->sessions;
	if (io->sessions)
		io->sessions->prev = s;
	io->sessions = s;

	session_set_state(s, S_CMD);
	deadline_start(s);	/* the state was CMD already: start it by hand */
	set_timeout(s, s->lim.cmd_timeout);
	if (io->shutting_down) {
		reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
		session_close(s);
		return;
	}
	struct imp_reply r;
	enum imp_verdict v = phase_run(s, IMP_PHASE_CONNECT, &r);

	if (v != IMP_SUSPEND)
		connect_finish(s, v, &r);
	if (s->state != S_CLOSING)
		sockio_enable(s->sock, EV_READ | EV_WRITE);
}

/* connect_finish - the connect phase ended: the banner, or the refusal and the close. */
static void connect_finish(struct smtp_session *s, enum imp_verdict v, const struct imp_reply *r)
{
	if (refused(v)) {
		refuse(s, v, r);
		if (v != IMP_DISCONNECT)
			session_close(s);
		return;
	}
	reply(s, "220 %s ESMTP impetus", s->hostname);
}

static void free_later(evutil_socket_t fd, short what, void *arg)
{
	session_free(arg);
}

/*
 * session_close - send what is queued, then free (CLOSING state). Never
 * frees synchronously: callers up the stack may still hold the session.
 */
static void session_close(struct smtp_session *s)
{
	struct timeval zero = { 0, 0 };

	session_set_state(s, S_CLOSING);
	if (s->sock == NULL ||
	    evbuffer_get_length(sockio_output(s->sock)) == 0) {
		if (s->sock) {
			sockio_setcb(s->sock, NULL, NULL, NULL, NULL);
			sockio_disable(s->sock, EV_READ | EV_WRITE);
		}
		event_base_once(loop_base(s->io->loop), -1, EV_TIMEOUT, free_later, s, &zero);
		return;
	}
	sockio_disable(s->sock, EV_READ);
	struct timeval tv = { 10, 0 };
	sockio_set_timeouts(s->sock, NULL, &tv);
	sockio_enable(s->sock, EV_WRITE);
}

static void session_free(struct smtp_session *s)
{
	struct smtp_io *io = s->io;

	/* Before the socket goes: a client that saw the close finds the line. */
	if (s->rejects_suppressed > 0) {
		char text[80];
		snprintf(text, sizeof(text), "%llu further rejections not logged",
			 (unsigned long long)s->rejects_suppressed);
		s->rejects_suppressed = 0;
		session_log_reject(s, "close", text, true);
	}

	if (s->prev)
		s->prev->next = s->next;
	else if (io->sessions == s)
		io->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	/*
	 * The connection counts drop before the socket closes: a client that
	 * saw the close and connects again always finds its slot free.
	 */
	smtp_server_session_closed(io->srv, &s->peer);
	if (s->sock) {
		sockio_free(s->sock);
		s->sock = NULL;
	}
	if (s->fd >= 0 && !s->tls)
		close(s->fd);
	if (s->deadline)
		event_free(s->deadline);
	/* A suspension outlives us: its resume only frees the token. */
	if (s->ph.token)
		s->ph.token->s = NULL;
	smtp_session_auth_free(s);	/* and so does an AUTH check in flight */
	transaction_reset(s);
	str_free(&s->stage);
	str_free(&s->fixbuf);
	str_free(&s->rx_refusal);
	vctx_free(s->conn_vctx);
	free(s->helo);
	if (s->tls_ctx)
		SSL_CTX_free(s->tls_ctx);	/* the listener may be gone or have a new one */
	conf_unref(s->conf);
	free(s);
}

/* session_in_transaction - whether shutdown should let this session finish. */
static bool session_in_transaction(const struct smtp_session *s)
{
	return s->msg != NULL || s->state == S_SPOOL || s->state == S_DATA || s->state == S_BDAT;
}

void smtp_session_shutdown_io(void *arg)
{
	struct smtp_io *io = arg;
	struct smtp_session *s = io->sessions;

	io->shutting_down = true;
	smtp_listen_detach_all(io);	/* new clients find the port closed */
	while (s) {
		struct smtp_session *next = s->next;
		if (!session_in_transaction(s) && s->state == S_CMD) {
			reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
			session_close(s);
		}
		s = next;
	}
}

void smtp_session_close_all(void *arg)
{
	struct smtp_io *io = arg;
	struct smtp_session *s = io->sessions;

	while (s) {
		struct smtp_session *next = s->next;
		if (s->state != S_SPOOL && s->state != S_CLOSING) {
			reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
			transaction_reset(s);
			session_close(s);
		}
		s = next;
	}
}
