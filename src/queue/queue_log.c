/*
 * queue_log.c - mainlog R/D/T/P and bouncelog B lines (Momentum formats)
 *
 *   R  time@id@batch@conn@R@rcpt-local@rcpt-domain@sender-local@sender-domain@
 *      client-ip@size@protocol@binding-group@binding[@auth-user]
 *      (auth-user, impetus: only when the client authenticated with SMTP
 *      AUTH, so lines of other messages keep Momentum's field count; "@"
 *      in it is written \x40, like every other byte that is not
 *      printable ASCII)
 *   D  time@id@batch@conn@D@domain@size@binding-group@binding@retries@
 *      seconds-since-reception@remote-ip
 *   T  time@id@batch@conn@T@domain@bytes-sent@binding-group@binding@stage@
 *      retries@seconds-since-reception@remote-ip@response
 *   P  as T
 *   B  time@id@batch@conn@B@rcpt-local@rcpt-domain@sender-local@sender-domain@
 *      binding-group@binding@stage@class@size@remote-ip@response
 *
 * "@" and line breaks inside free text (responses) are replaced so every
 * event stays one line with a fixed number of fields; control bytes, 8-bit
 * bytes and '\\' in it are escaped as \xHH (append_text).
 *
 * Each line is also a log event (impetus/hooks.h): the line is formatted
 * once, the event points at it and at the fields it came from, and
 * log_event_emit runs the log hook, whose built-in subscriber writes the
 * line. A events (a batch handed to a connection) have no line and are
 * built only when someone subscribed. Scheduler thread.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <impetus/session.h>

#include "core/str.h"
#include "log/log.h"
#include "log/log_event.h"
#include "message/dsn.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "message/vctx.h"
#include "policy/bounce_class.h"
#include "queue/queue_out.h"

static const char *or_default(const char *s)
{
	return s && *s ? s : "default";
}

/*
 * append_text - free text (a remote reply) made safe for one log line.
 * '@' would shift the fields: it becomes '_'. CR and LF become a space, as
 * between the lines of a multi-line reply. Every other control byte, DEL,
 * every byte with the high bit set (a remote server's raw 8-bit or broken
 * UTF-8) and the backslash itself are written as \xHH, so the log stays
 * 7-bit printable ASCII, a terminal showing it cannot be driven by escape
 * sequences, and the original bytes can be recovered exactly.
 */
static void append_text(struct str *line, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '@')
			str_appendc(line, '_');
		else if (c == '\r' || c == '\n')
			str_appendc(line, ' ');
		else if (c < 0x20 || c >= 0x7f || c == '\\')
			str_appendf(line, "\\x%02X", c);
		else
			str_appendc(line, (char)c);
	}
}

/* append_field - a free-text field that must stay one field: "@" too is escaped (\x40). */
static void append_field(struct str *line, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '@')
			str_appendf(line, "\\x%02X", c);
		else
			str_appendc(line, (char)c);
	}
}

/* append_addr - local part and domain of an address as two fields. */
static void append_addr(struct str *line, const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at) {
		str_append(line, addr, (size_t)(at - addr));
		str_appendc(line, '@');
		str_appends(line, at + 1);
	} else {
		str_appends(line, addr);
		str_appendc(line, '@');
	}
}

static void append_id(struct str *line, impetus_id id)
{
	char buf[ID_BUF_SIZE];

	if (id)
		str_appends(line, id_format(id, buf));
}

static void prefix(struct str *line, int64_t now, impetus_id msg, impetus_id batch,
		   impetus_id conn, char type)
{
	char t[3] = { '@', type, '@' };

	str_append_i64(line, now);
	str_appendc(line, '@');
	append_id(line, msg);
	str_appendc(line, '@');
	append_id(line, batch);
	str_appendc(line, '@');
	append_id(line, conn);
	str_append(line, t, 3);
}

/* at_field / at_number - "@" and a field: the lines are built without printf (per recipient). */
static void at_field(struct str *line, const char *s)
{
	str_appendc(line, '@');
	if (s)
		str_appends(line, s);
}

static void at_number(struct str *line, unsigned long long v)
{
	str_appendc(line, '@');
	str_append_u64(line, v);
}

/* id_text - the text form of an id, "" for none. */
static const char *id_text(impetus_id id, char buf[ID_BUF_SIZE])
{
	if (id == 0) {
		buf[0] = '\0';
		return buf;
	}
	return id_format(id, buf);
}

void queue_log_reception(struct queue *q, const struct envelope *msg)
{
	struct str line = STR_INIT;
	int64_t now = (int64_t)time(NULL);
	char mid[ID_BUF_SIZE], cid[ID_BUF_SIZE];
	struct imp_log_event ev = {
		.type = IMP_LOG_RECEPTION, .time = now,
		.message_id = id_text(msg->id, mid), .conn_id = id_text(msg->conn_id, cid),
		.sender = msg->sender ? msg->sender : "",
		.nrecipients = msg->nrcpt, .size = msg->loc.length,
		.binding_group = msg->binding_group ? msg->binding_group : "",
		.binding = msg->binding ? msg->binding : "",
		.peer = msg->client_ip ? msg->client_ip : "", .peer_host = "",
		.protocol = msg->protocol ? msg->protocol : "", .phase = "", .reply = "",
	};
	const char *auth_user = msg->vctx ? vctx_get(msg->vctx, IMP_VCTX_AUTH_USER) : NULL;
	struct imp_message view;

	/* A read-only view on the stack: no allocation unless a subscriber reads headers. */
	message_view_init(&view, (struct envelope *)msg, false);
	ev.message = &view;
	for (size_t i = 0; i < msg->nrcpt; i++) {
		str_clear(&line);
		prefix(&line, now, msg->id, 0, msg->conn_id, 'R');
		append_addr(&line, msg->rcpts[i].addr);
		str_appendc(&line, '@');
		append_addr(&line, msg->sender);
		at_field(&line, msg->client_ip);
		at_number(&line, msg->loc.length);
		at_field(&line, msg->protocol);
		at_field(&line, or_default(msg->binding_group));
		at_field(&line, or_default(msg->binding));
		if (auth_user && *auth_user) {
			str_appendc(&line, '@');
			append_field(&line, auth_user);
		}
		char *domain = queue_route_domain(msg->rcpts[i].addr);
		ev.recipient = msg->rcpts[i].addr;
		ev.domain = domain;
		ev.line = line.s;
		log_event_emit(queue_conf(q), &ev);
		free(domain);
	}
	message_view_done(&view);
	str_free(&line);
}

void queue_log_outcome(struct queue *q, const struct queue_dest *dq, const struct qentry *e,
		       const struct queue_outcome *o, char type)
{
	const struct envelope *sm = e->m->sm;
	struct str line = STR_INIT;
	int64_t now = (int64_t)time(NULL);
	long long age = (long long)(queue_now_us() / 1000000 - sm->received);
	const char *resp = o->response ? o->response : "";
	char mid[ID_BUF_SIZE], cid[ID_BUF_SIZE];
	int cls = 0;

	if (type == 'P') {
		/* Classified once: the P event and the B line carry the same class. */
		char status[16];
		cls = bounce_classify_conf(queue_conf(q), o->code,
					   dsn_status_from_reply(o->code, resp, true, status), resp,
					   dq->domain);
	}
	prefix(&line, now, sm->id, o->batch_id, o->conn_id, type);
	str_appends(&line, dq->domain);
	at_number(&line, type == 'D' ? sm->loc.length : o->bytes);
	at_field(&line, or_default(sm->binding_group));
	at_field(&line, or_default(sm->binding));
	if (type != 'D')
		at_number(&line, o->stage);
	at_number(&line, e->retries);
	str_appendc(&line, '@');
	str_append_i64(&line, age);
	at_field(&line, o->remote);
	if (type != 'D') {
		str_appendc(&line, '@');
		append_text(&line, o->response);
	}
	struct imp_log_event ev = {
		.type = (enum imp_log_type)type, .time = now,
		.message_id = id_text(sm->id, mid), .conn_id = id_text(o->conn_id, cid),
		.sender = sm->sender ? sm->sender : "", .recipient = sm->rcpts[e->rcpt].addr,
		.nrecipients = 1, .size = sm->loc.length,
		.binding_group = sm->binding_group ? sm->binding_group : "",
		.binding = sm->binding ? sm->binding : "", .domain = dq->domain,
		.peer = o->remote ? o->remote : "", .peer_host = o->remote_host ? o->remote_host : "",
		.protocol = "", .phase = "",
		.code = o->code, .reply = resp, .bounce_class = cls,
		/* T counted this failure in retries already; P and D did not. */
		.attempts = type == 'T' ? e->retries : e->retries + 1,
		.line = line.s,
		.flags = o->expired ? IMP_LOG_F_EXPIRED : 0,
	};
	struct imp_message view;
	message_view_init(&view, (struct envelope *)sm, false);
	ev.message = &view;
	log_event_emit(queue_conf(q), &ev);

	if (type == 'P') {
		str_clear(&line);
		prefix(&line, now, sm->id, o->batch_id, o->conn_id, 'B');
		append_addr(&line, sm->rcpts[e->rcpt].addr);
		str_appendc(&line, '@');
		append_addr(&line, sm->sender);
		str_appendf(&line, "@%s@%s@%u@%d@%llu@%s@", or_default(sm->binding_group),
			    or_default(sm->binding), o->stage, cls,
			    (unsigned long long)sm->loc.length, o->remote ? o->remote : "");
		append_text(&line, resp);
		ev.type = IMP_LOG_BOUNCE;
		ev.line = line.s;
		log_event_emit(queue_conf(q), &ev);
	}
	message_view_done(&view);
	str_free(&line);
}

void queue_log_attempt(struct queue *q, const struct qbatch *qb, impetus_id conn)
{
	if (qb->n == 0 || !log_event_wanted(queue_conf(q), IMP_LOG_ATTEMPT))
		return;
	const struct envelope *sm = qb->entries[0]->m->sm;
	char mid[ID_BUF_SIZE], cid[ID_BUF_SIZE];
	struct imp_log_event ev = {
		.type = IMP_LOG_ATTEMPT, .time = (int64_t)time(NULL),
		.message_id = id_text(sm->id, mid), .conn_id = id_text(conn, cid),
		.sender = sm->sender ? sm->sender : "", .nrecipients = qb->n,
		.size = sm->loc.length,
		.binding_group = sm->binding_group ? sm->binding_group : "",
		.binding = sm->binding ? sm->binding : "", .domain = qb->dq->domain,
		.peer = "", .peer_host = "", .protocol = "", .phase = "", .reply = "", .line = "",
	};
	struct imp_message view;

	message_view_init(&view, (struct envelope *)sm, false);
	ev.message = &view;
	for (size_t i = 0; i < qb->n; i++) {
		ev.recipient = sm->rcpts[qb->entries[i]->rcpt].addr;
		ev.attempts = qb->entries[i]->retries;
		ev.domain = qbatch_dq(qb, i)->domain;
		log_event_emit(queue_conf(q), &ev);
	}
	message_view_done(&view);
}
