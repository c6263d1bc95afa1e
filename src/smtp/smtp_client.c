/*
 * smtp_client.c - outbound SMTP: the manager side and the protocol helpers
 *
 * The queue manager (scheduler thread) opens connections, hands them
 * batches and closes them through the three posting functions here; the
 * session state machine (smtp_client_session.c) runs each connection on
 * its I/O loop and answers through the trampolines here, which run the
 * scheduler's callbacks on the scheduler loop. Who owns what is written in
 * smtp_client_int.h: the handle's fixed part is read-only, the in-flight
 * counter is atomic, everything else belongs to one thread.
 *
 * Lifetime of a handle: created by smtp_client_open, freed on the
 * scheduler right after its `closed` callback returned. `closed` is held
 * back while any send/close post has not been answered yet, so a batch
 * sent to a connection that had just decided to close comes back
 * (SMTP_OUT_NOT_TRIED, more=false) before `closed`, and a late post never
 * touches freed memory. The session posts `closed` only after it freed
 * itself: once every connection is closed the daemon stops the I/O loops,
 * and nothing of the session may be left on them.
 *
 * Also here, because both sides and the tests use them and they keep no
 * state: the EHLO capability parser, the reply parser, the MAIL/RCPT
 * command builders and the body writer. None of them can fail except by
 * reporting malformed input (memory exhaustion aborts, core/mem.h).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "core/loop.h"
#include "core/mem.h"
#include "core/str.h"
#include "config/config.h"
#include "core/tls.h"
#include "message/dsn.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "msgs/msgs.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"
#include "smtp/smtp_parse.h"

/* ------------------------------------------------------------------ */
/* EHLO capabilities                                                   */

/* keyword_is - whether line starts with the keyword kw as a whole word. */
static bool keyword_is(const char *line, const char *kw, const char **rest)
{
	size_t n = strlen(kw);

	if (strncasecmp(line, kw, n) != 0)
		return false;
	if (line[n] != '\0' && line[n] != ' ' && line[n] != '\t')
		return false;
	*rest = line + n;
	return true;
}

/* keyword_remember - append line's keyword, upper-cased, to caps->keywords if it fits. */
static void keyword_remember(struct smtp_caps *caps, size_t *len, const char *line)
{
	size_t n = 0;

	while (line[n] && line[n] != ' ' && line[n] != '\t')
		n++;
	if (n == 0 || *len + n + 2 > sizeof(caps->keywords))
		return;
	for (size_t k = 0; k < n; k++)
		caps->keywords[*len + k] = (char)toupper((unsigned char)line[k]);
	*len += n;
	caps->keywords[(*len)++] = ' ';
	caps->keywords[*len] = '\0';
}

/*
 * auth_mechanisms - the mechanisms after "AUTH " or the pre-RFC 4954
 * "AUTH=" (still sent by some servers, often beside the standard line).
 */
static void auth_mechanisms(struct smtp_caps *caps, const char *p)
{
	while (*p) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
			caps->auth_plain = true;
		else if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
			caps->auth_login = true;
		p += n;
	}
}

/*
 * smtp_caps_parse - lines[0] is the greeting line ("mx.example says hi")
 * and is skipped; each later line is "KEYWORD [params]". Keywords are
 * case-insensitive; unknown ones are ignored. A SIZE value that is absent,
 * 0, not a number or out of range means "no limit announced".
 */
void smtp_caps_parse(struct smtp_caps *caps, const char *const *lines, size_t nlines)
{
	size_t kwlen = 0;

	memset(caps, 0, sizeof(*caps));
	caps->esmtp = true;
	for (size_t i = 1; i < nlines; i++) {
		const char *l = lines[i];
		const char *rest;

		while (*l == ' ' || *l == '\t')
			l++;
		keyword_remember(caps, &kwlen, l);
		if (keyword_is(l, "PIPELINING", &rest))
			caps->pipelining = true;
		else if (keyword_is(l, "8BITMIME", &rest))
			caps->eightbitmime = true;
		else if (keyword_is(l, "STARTTLS", &rest))
			caps->starttls = true;
		else if (keyword_is(l, "ENHANCEDSTATUSCODES", &rest))
			caps->enhancedstatuscodes = true;
		else if (keyword_is(l, "SMTPUTF8", &rest))
			caps->smtputf8 = true;
		else if (keyword_is(l, "CHUNKING", &rest))
			caps->chunking = true;
		else if (keyword_is(l, "DSN", &rest))
			caps->dsn = true;
		else if (keyword_is(l, "AUTH", &rest))
			auth_mechanisms(caps, rest);
		else if (strncasecmp(l, "AUTH=", 5) == 0)
			auth_mechanisms(caps, l + 5);
		else if (keyword_is(l, "SIZE", &rest)) {
			uint64_t v = 0;
			bool ok = true;

			caps->size = true;
			while (*rest == ' ' || *rest == '\t')
				rest++;
			if (!isdigit((unsigned char)*rest))
				ok = false;
			for (; ok && isdigit((unsigned char)*rest); rest++) {
				unsigned d = (unsigned)(*rest - '0');
				if (v > (UINT64_MAX - d) / 10)
					ok = false;
				else
					v = v * 10 + d;
			}
			while (*rest == ' ' || *rest == '\t')
				rest++;
			if (*rest != '\0')
				ok = false;
			caps->size_max = ok ? v : 0;
		}
	}
}

/* ------------------------------------------------------------------ */
/* replies                                                             */

void smtpc_reply_init(struct smtpc_reply *r)
{
	memset(r, 0, sizeof(*r));
	str_init(&r->text);
}

void smtpc_reply_reset(struct smtpc_reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	r->nlines = 0;
	r->code = 0;
	r->ext[0] = '\0';
	r->complete = false;
	str_clear(&r->text);
}

void smtpc_reply_free(struct smtpc_reply *r)
{
	smtpc_reply_reset(r);
	free(r->lines);
	str_free(&r->text);
	memset(r, 0, sizeof(*r));
}

/*
 * enhanced_code - length of an RFC 3463 code "c.sss.ddd" at the start of
 * p (n bytes) whose class matches the reply's first digit, followed by a
 * space or the end; 0 when there is none.
 */
static size_t enhanced_code(const char *p, size_t n, char cls)
{
	size_t i = 0, digits;

	if (n < 5 || p[0] != cls || p[1] != '.')
		return 0;
	i = 2;
	for (digits = 0; i < n && isdigit((unsigned char)p[i]); i++)
		digits++;
	if (digits < 1 || digits > 3 || i >= n || p[i] != '.')
		return 0;
	i++;
	for (digits = 0; i < n && isdigit((unsigned char)p[i]); i++)
		digits++;
	if (digits < 1 || digits > 3)
		return 0;
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

/* append_clean - append text for a log line: control bytes become '?', capped. */
static void append_clean(struct str *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n && out->len < SMTPC_RESPONSE_MAX; i++) {
		unsigned char c = (unsigned char)p[i];
		str_appendc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
}

int smtpc_reply_add_line(struct smtpc_reply *r, const char *line, size_t len)
{
	if (r->complete)
		smtpc_reply_reset(r);
	if (len > SMTPC_LINE_MAX || len < 3 || r->nlines >= SMTPC_REPLY_LINES_MAX)
		return -1;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;

	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	bool last = len == 3 || line[3] == ' ';
	const char *text = len > 4 ? line + 4 : "";
	size_t tlen = len > 4 ? len - 4 : 0;

	if (r->nlines == 0) {
		size_t e;

		r->code = code;
		e = enhanced_code(text, tlen, line[0]);
		if (e > 0 && e < sizeof(r->ext)) {
			memcpy(r->ext, text, e);
			r->ext[e] = '\0';
		}
		str_appendf(&r->text, "%d", code);
		if (tlen > 0) {
			str_appendc(&r->text, ' ');
			append_clean(&r->text, text, tlen);
		}
	} else {
		const char *t = text;
		size_t tl = tlen;
		size_t el = strlen(r->ext);

		if (code != r->code)
			return -1;
		/* "550-5.1.1 a" "550 5.1.1 b" reads better as "550 5.1.1 a b". */
		if (el > 0 && tl >= el && memcmp(t, r->ext, el) == 0 &&
		    (tl == el || t[el] == ' ')) {
			t += el;
			tl -= el;
			while (tl > 0 && *t == ' ') {
				t++;
				tl--;
			}
		}
		if (tl > 0 && r->text.len < SMTPC_RESPONSE_MAX) {
			str_appendc(&r->text, ' ');
			append_clean(&r->text, t, tl);
		}
	}
	if (r->nlines == r->linecap) {
		/* Kept across replies (smtpc_reply_reset): most replies are one line. */
		r->linecap = r->linecap ? r->linecap * 2 : 4;
		r->lines = xrealloc(r->lines, r->linecap * sizeof(*r->lines));
	}
	r->lines[r->nlines++] = xstrndup(text, tlen);
	r->complete = last;
	return last ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* MAIL and RCPT                                                       */

void smtpc_format_mail(struct str *out, const struct smtp_batch *b, const struct smtp_caps *caps)
{
	str_appendf(out, "MAIL FROM:<%s>", b->sender ? b->sender : "");
	size_t at = out->len;
	if (caps->size)
		str_appendf(out, " SIZE=%llu", (unsigned long long)(b->wire_length ?
								    b->wire_length :
								    b->loc.length));
	if (b->body_type == ENVELOPE_BODY_8BITMIME && caps->eightbitmime)
		str_appends(out, " BODY=8BITMIME");
	if (b->smtputf8 && caps->smtputf8)
		str_appends(out, " SMTPUTF8");
	if (caps->dsn) {
		if (b->ret == ENVELOPE_RET_FULL)
			str_appends(out, " RET=FULL");
		else if (b->ret == ENVELOPE_RET_HDRS)
			str_appends(out, " RET=HDRS");
		if (b->envid && b->envid[0]) {
			str_appends(out, " ENVID=");
			smtp_xtext_encode(b->envid, strlen(b->envid), out);
		}
	}
	if (b->params_hook)
		smtpc_params_run(out, at, b, SIZE_MAX, caps);
	str_append(out, "\r\n", 2);
}

void smtpc_format_rcpt(struct str *out, const struct smtp_batch *b, size_t i,
		       const struct smtp_caps *caps)
{
	const struct smtp_rcpt_result *r = &b->rcpts[i];

	str_appendf(out, "RCPT TO:<%s>", r->addr ? r->addr : "");
	size_t at = out->len;
	if (caps->dsn && r->notify) {
		if (r->notify & ENVELOPE_NOTIFY_NEVER) {
			str_appends(out, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			if (r->notify & ENVELOPE_NOTIFY_SUCCESS) {
				str_appendf(out, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & ENVELOPE_NOTIFY_FAILURE) {
				str_appendf(out, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & ENVELOPE_NOTIFY_DELAY)
				str_appendf(out, "%sDELAY", sep);
		}
	}
	if (caps->dsn && r->orcpt && r->orcpt[0]) {
		/* Stored decoded as "type;address": the type is an atom, the address xtext. */
		const char *semi = strchr(r->orcpt, ';');
		const char *addr = semi ? semi + 1 : r->orcpt;

		str_appends(out, " ORCPT=");
		if (semi)
			str_append(out, r->orcpt, (size_t)(semi - r->orcpt));
		else
			str_appends(out, "rfc822");
		str_appendc(out, ';');
		if (semi && semi - r->orcpt == 5 && strncasecmp(r->orcpt, "utf-8", 5) == 0) {
			/*
			 * RFC 6533 3: a utf-8 address is not xtext ("+" is no
			 * QCHAR there): raw UTF-8 under SMTPUTF8, else \x{HEX}.
			 */
			if (b->smtputf8 && caps->smtputf8)
				dsn_utf8_addr(addr, out);
			else
				dsn_utf8_addr_xtext(addr, out);
		} else {
			smtp_xtext_encode(addr, strlen(addr), out);
		}
	}
	if (b->params_hook)
		smtpc_params_run(out, at, b, i, caps);
	str_append(out, "\r\n", 2);
}

/* ------------------------------------------------------------------ */
/* the body writer                                                     */

void smtpc_body_init(struct smtpc_body *w)
{
	w->at_bol = true;
	w->cr = false;
	w->col = 0;
	w->bytes = 0;
}

static void body_out(struct smtpc_body *w, struct evbuffer *out, const char *p, size_t n)
{
	if (n) {
		evbuffer_add(out, p, n);
		w->bytes += n;
	}
}

/*
 * smtpc_body_write - copy runs of ordinary bytes as they are and act only
 * at line ends, at a "." that starts a line and at octet SMTPC_BODY_LINE_MAX + 1
 * of a line, so the common case is a few large evbuffer_add calls per
 * chunk. A long line is folded with CRLF SPACE, as Postfix's
 * smtp_line_length_limit does: in a header that is RFC 5322 folding, in a
 * base64 body the space is ignored by decoders, in text it adds a space.
 */
/*
 * plain_span - how many of the n bytes at p come before the first CR or
 * LF (n when none does); at least 1 when p[0] is neither. Two memchr
 * calls per line instead of a test per byte.
 */
static size_t plain_span(const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	size_t m = lf ? (size_t)(lf - p) : n;
	const char *cr = memchr(p, '\r', m);

	return cr ? (size_t)(cr - p) : m;
}

void smtpc_body_write(struct smtpc_body *w, struct evbuffer *out, const char *p, size_t len)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (w->cr) {
			/* CR LF, or a bare CR: either way the line ends with CRLF. */
			w->cr = false;
			body_out(w, out, "\r\n", 2);
			w->at_bol = true;
			w->col = 0;
			if (c == '\n') {
				run = i + 1;
				continue;
			}
			run = i;
		}
		if (c == '\r') {
			body_out(w, out, p + run, i - run);
			w->cr = true;
			run = i + 1;
		} else if (c == '\n') {
			/* bare LF */
			body_out(w, out, p + run, i - run);
			body_out(w, out, "\r\n", 2);
			w->at_bol = true;
			w->col = 0;
			run = i + 1;
		} else {
			if (w->at_bol && c == '.') {
				body_out(w, out, p + run, i - run);
				body_out(w, out, ".", 1);
				w->col++;
				run = i;
			}
			if (w->col >= SMTPC_BODY_LINE_MAX) {
				body_out(w, out, p + run, i - run);
				body_out(w, out, "\r\n ", 3);
				w->col = 1;
				run = i;
			}
			/* This byte and the plain ones after it, up to the column limit. */
			size_t room = SMTPC_BODY_LINE_MAX - w->col;
			size_t span = plain_span(p + i, len - i < room ? len - i : room);

			w->col += span;
			w->at_bol = false;
			i += span - 1;
		}
	}
	body_out(w, out, p + run, len - run);
}

void smtpc_body_end(struct smtpc_body *w, struct evbuffer *out)
{
	if (w->cr || !w->at_bol)
		body_out(w, out, "\r\n", 2);
	w->cr = false;
	w->at_bol = true;
	w->col = 0;
	body_out(w, out, ".\r\n", 3);
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */

static SSL_CTX *tls_ctx;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

/*
 * tls_ctx_make - the process's client context, policy in core/tls.c. On
 * failure tls_ctx stays NULL and each STARTTLS attempt fails with "cannot
 * create TLS state" (start_tls), handled as the TLS option says.
 */
static void tls_ctx_make(void)
{
	struct str err = STR_INIT;

	tls_ctx = tls_client_ctx_new(&err);
	str_free(&err);
}

SSL_CTX *smtpc_tls_ctx(void)
{
	pthread_once(&tls_once, tls_ctx_make);
	return tls_ctx;
}

/* ------------------------------------------------------------------ */
/* ownership helpers                                                   */

void smtp_batch_free(struct smtp_batch *b)
{
	if (b == NULL)
		return;
	free(b->sender);
	free(b->envid);
	for (size_t i = 0; i < b->nrcpt; i++) {
		free(b->rcpts[i].addr);
		free(b->rcpts[i].orcpt);
		free(b->rcpts[i].response);
	}
	free(b->rcpts);
	message_view_free(b->view);
	conf_unref(b->hook_conf);
	free(b);
}

impetus_id smtp_client_id(const struct smtp_client *c)
{
	return c->conn;
}

void smtp_client_params_free(struct smtp_client_params *p)
{
	if (p == NULL)
		return;
	if (p->addr_names) {
		for (size_t i = 0; i < p->naddr; i++)
			free(p->addr_names[i]);
		free(p->addr_names);
	}
	free(p->addrs);
	free(p->ehlo_name);
	free(p->auth_user);
	if (p->auth_pass) {
		/* Keep the secret out of freed heap memory (and core dumps). */
		explicit_bzero(p->auth_pass, strlen(p->auth_pass));
		free(p->auth_pass);
	}
	free(p->auth_key);
	free(p);
}

/* ------------------------------------------------------------------ */
/* posting to the I/O loop                                             */

struct send_req {
	struct smtp_client *c;
	struct smtp_batch *b;
};

/* smtp_client_on_start - I/O loop (MSGS_SMTPC_START): connect and send the first batch. */
void smtp_client_on_start(void *arg)
{
	smtpc_session_start(arg);
}

/* smtp_client_on_send - I/O loop (MSGS_SMTPC_SEND): hand one more batch to the session. */
void smtp_client_on_send(void *arg)
{
	struct send_req *r = arg;

	smtpc_session_send(r->c, r->b);
	free(r);
}

/* smtp_client_on_close - I/O loop (MSGS_SMTPC_CLOSE): QUIT and close the session. */
void smtp_client_on_close(void *arg)
{
	smtpc_session_close(arg);
}

struct smtp_client *smtp_client_open(struct loop *io_loop, struct loop *scheduler,
				     struct spool *sp, struct smtp_client_params *params,
				     struct smtp_batch *first,
				     const struct smtp_client_events *ev)
{
	struct smtp_client *c = XNEW(struct smtp_client);

	smtpc_trace_init();
	c->io_loop = io_loop;
	c->sched = scheduler;
	c->sp = sp;
	c->params = params;
	c->ev = *ev;
	c->conn = id_next();
	id_format(c->conn, c->conn_id);
	atomic_init(&c->inflight, 1);	/* the first batch */
	c->first = first;
	msgs_post_batched(io_loop, MSGS_SMTPC_START, c);
	return c;
}

void smtp_client_send(struct smtp_client *c, struct smtp_batch *b)
{
	struct send_req *r = xmalloc(sizeof(*r));

	r->c = c;
	r->b = b;
	atomic_fetch_add(&c->inflight, 1);
	msgs_post_batched(c->io_loop, MSGS_SMTPC_SEND, r);
}

void smtp_client_close(struct smtp_client *c)
{
	atomic_fetch_add(&c->inflight, 1);
	msgs_post(c->io_loop, MSGS_SMTPC_CLOSE, c);
}

/* ------------------------------------------------------------------ */
/* trampolines: run the scheduler's callbacks on the scheduler loop      */

struct done_msg {
	struct smtp_client *c;
	struct smtp_batch *b;
	bool more;
};

struct closed_msg {
	struct smtp_client *c;
	bool connected;
	char *reason;
};

static void client_free(struct smtp_client *c)
{
	smtp_client_params_free(c->params);
	free(c->closed_reason);
	free(c);
}

/* run_closed - the last callback for c; the handle dies with it. */
static void run_closed(struct smtp_client *c)
{
	if (c->ev.closed)
		c->ev.closed(c->ev.ctx, c, c->closed_connected,
			     c->closed_reason ? c->closed_reason : "");
	client_free(c);
}

/* answered - one post to the I/O loop got its answer; run a held-back closed. */
static void answered(struct smtp_client *c)
{
	unsigned before = atomic_fetch_sub(&c->inflight, 1);

	if (before == 1 && c->closed_pending)
		run_closed(c);
}

/* smtp_client_on_batch_done - scheduler (MSGS_SMTPC_BATCH_DONE): the batch's results to the queue. */
void smtp_client_on_batch_done(void *arg)
{
	struct done_msg *m = arg;
	struct smtp_client *c = m->c;

	if (c->ev.batch_done)
		c->ev.batch_done(c->ev.ctx, c, m->b, m->more);
	else
		smtp_batch_free(m->b);
	free(m);
	answered(c);
}

/* smtp_client_on_close_ack - scheduler (MSGS_SMTPC_CLOSE_ACK): the close request was seen. */
void smtp_client_on_close_ack(void *arg)
{
	answered(arg);
}

/* smtp_client_on_closed - scheduler (MSGS_SMTPC_CLOSED): the connection is gone; maybe the last callback. */
void smtp_client_on_closed(void *arg)
{
	struct closed_msg *m = arg;
	struct smtp_client *c = m->c;

	c->closed_connected = m->connected;
	c->closed_reason = m->reason;
	free(m);
	if (atomic_load(&c->inflight) > 0) {
		c->closed_pending = true;
		return;
	}
	run_closed(c);
}

void smtpc_post_batch_done(struct smtp_client *c, struct smtp_batch *b, bool more)
{
	struct done_msg *m = xmalloc(sizeof(*m));

	m->c = c;
	m->b = b;
	m->more = more;
	msgs_post_batched(c->sched, MSGS_SMTPC_BATCH_DONE, m);
}

void smtpc_post_closed(struct smtp_client *c, bool connected, const char *reason)
{
	struct closed_msg *m = xmalloc(sizeof(*m));

	m->c = c;
	m->connected = connected;
	m->reason = xstrdup(reason ? reason : "");
	msgs_post(c->sched, MSGS_SMTPC_CLOSED, m);
}

void smtpc_post_close_ack(struct smtp_client *c)
{
	msgs_post(c->sched, MSGS_SMTPC_CLOSE_ACK, c);
}
