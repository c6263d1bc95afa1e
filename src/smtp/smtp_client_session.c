/*
 * smtp_client_session.c - one outbound SMTP connection's state machine
 *
 * Owned by the I/O loop the connection was opened on; nothing here is
 * touched by another thread. The scheduler reaches a session only through
 * the posts of smtp_client.c, and learns results only through the posts
 * back (batch_done, closed). The session reads replies from its sockio
 * (core/sockio.h; a TLS bufferevent inside one after STARTTLS), writes
 * commands to it, and keeps one timer for whatever it
 * is waiting for (connect, a reply, the idle period, QUIT).
 *
 * States (set_state traces every change with IMPETUS_TRACE=smtpc):
 *
 *   CONNECTING  TCP connect to candidate address ai in progress
 *   BANNER      waiting for the 220 greeting
 *   EHLO, HELO  waiting for the reply (HELO only after EHLO got 5xx)
 *   STARTTLS    waiting for the 220 to STARTTLS
 *   TLS         TLS handshake on the same socket
 *   AUTH        waiting for the reply to AUTH or to a continuation line
 *   IDLE        between transactions, waiting for smtp_client_send
 *   RSET, MAIL, RCPT, DATA
 *               waiting for that reply; with PIPELINING everything from
 *               RSET to DATA went out in one write and the replies are
 *               read in order
 *   BODY        writing the message, then waiting for the final reply
 *   DOT         DATA got 354 but no recipient was accepted: "." was sent
 *   QUIT        waiting briefly for 221
 *   DONE        ended; freed from a zero-delay timer
 *
 * Failure handling, by where it happens:
 *   - before the session is ready (connect, banner, EHLO/HELO, STARTTLS):
 *     the address is given up and the next one tried; the first batch is
 *     only touched when every address failed (all TRANSIENT, or PERMANENT
 *     when every address answered its banner or EHLO+HELO with 5xx);
 *   - a failed TLS handshake with TLS=ifavailable: reconnect to the same
 *     address and go on in plain text;
 *   - outbound AUTH (after the last EHLO, before the first batch): no TLS
 *     while plain text is not allowed, the mechanism not offered, a 4xx
 *     or a broken exchange give the address up like a failed EHLO; a 5xx
 *     (535: bad credentials) fails the first batch and the queued ones
 *     permanently, then QUITs: another address would get the same
 *     credentials and the same answer;
 *   - inside a transaction (lost connection, timeout, malformed reply):
 *     every recipient without an outcome gets TRANSIENT at the current
 *     stage, the batch goes back with more=false and the session ends;
 *   - batches still queued when the session ends go back NOT_TRIED.
 *
 * Sessions are never freed synchronously: a callback deep in the stack
 * may still hold one. They end in DONE and a zero-delay timer frees them.
 *
 * 8-bit and UTF-8 mail to a server without 8BITMIME or SMTPUTF8
 * (prepare_body): the body is read before MAIL. 8-bit body parts are
 * made quoted-printable (message/mime_downgrade.h), whether the message
 * was declared BODY=8BITMIME or not, and bounces alike. A message that
 * carries the SMTPUTF8 flag but needs none (ASCII envelope addresses and
 * header section) goes without the SMTPUTF8 parameter (RFC 6531 3.3);
 * one that needs it fails permanently with 5.6.7.
 *
 * The body is read with spool_read_body (a pread) on the I/O loop; pages
 * are usually still in the page cache, but a cold read blocks the loop for
 * that time. Moving the read to the IO pool is a later improvement.
 *
 * See docs/smtp-client.md for the outcomes, stages and texts produced.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/loop.h"
#include "core/mem.h"
#include "core/sockaddr.h"
#include "core/sockio.h"
#include "core/str.h"
#include "log/log.h"
#include "message/mime_downgrade.h"
#include "message/rfc5322.h"
#include "smtp/smtp_trace.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"
#include "spool/spool.h"

/* The body goes out in slices so the output buffer holds at most ~HIGHWAT. */
#define BODY_CHUNK	(64 * 1024)
#define BODY_HIGHWAT	(128 * 1024)
#define BODY_LOWAT	(32 * 1024)

enum sc_state {
	SC_START,
	SC_CONNECTING,
	SC_BANNER,
	SC_EHLO,
	SC_HELO,
	SC_STARTTLS,
	SC_TLS,
	SC_AUTH,
	SC_IDLE,
	SC_RSET,
	SC_MAIL,
	SC_RCPT,
	SC_DATA,
	SC_BODY,
	SC_DOT,
	SC_QUIT,
	SC_DONE,
};

static const char *const state_names[] = {
	[SC_START] = "START", [SC_CONNECTING] = "CONNECTING", [SC_BANNER] = "BANNER",
	[SC_EHLO] = "EHLO", [SC_HELO] = "HELO", [SC_STARTTLS] = "STARTTLS", [SC_TLS] = "TLS",
	[SC_AUTH] = "AUTH",
	[SC_IDLE] = "IDLE", [SC_RSET] = "RSET", [SC_MAIL] = "MAIL", [SC_RCPT] = "RCPT",
	[SC_DATA] = "DATA", [SC_BODY] = "BODY", [SC_DOT] = "DOT", [SC_QUIT] = "QUIT",
	[SC_DONE] = "DONE",
};

/* A batch handed over while the session was busy. */
struct bq {
	struct bq *next;
	struct smtp_batch *b;
};

struct smtpc_session {
	struct smtp_client *c;
	const struct smtp_client_params *p;
	struct event_base *base;
	enum sc_state state;
	struct sockio *sock;		/* NULL between connections */
	unsigned sock_gen;		/* changes with sock: a freed one's address may come back */
	int fd;
	bool fd_in_bev;			/* the TLS bufferevent (in sock) closes fd */
	struct event *timer;
	struct smtpc_reply reply;
	struct smtp_caps caps;
	bool tls;			/* TLS is up on this connection */
	bool tls_failed;		/* TLS failed at this address: go on without */
	struct smtpc_auth auth;		/* the AUTH exchange in progress */
	struct str scratch;		/* command assembly */

	/* candidate addresses */
	size_t ai;
	unsigned attempts;		/* addresses tried */
	char peer_ip[64];
	char peer_str[80];		/* "ip:port" / "[v6]:port" for logs */
	char last_ip[64];		/* last address a TCP connection reached */
	bool all_5xx;			/* every address so far refused us with 5xx */
	int fail_code;
	uint8_t fail_stage;
	struct str fail_reason;

	/* batches */
	struct smtp_batch *first;	/* until the session is ready */
	struct bq *qhead, *qtail;
	struct smtp_batch *b;		/* the transaction in progress */
	size_t *order;			/* indexes of the recipients sent RCPT */
	size_t norder;
	size_t rcpt_reply;		/* position in order[] of the next RCPT reply */
	size_t naccepted;
	bool mail_failed;
	bool pipelining;		/* this transaction was pipelined */
	bool need_rset;			/* the last transaction did not end cleanly */
	struct str body;
	bool body_loaded;		/* body holds this batch's bytes, ready to send */
	size_t body_off;
	bool body_queued;		/* the terminator is in the output buffer */
	bool body_flushed;		/* ... and has left it */
	struct smtpc_body bw;
	uint32_t deliveries;
	bool close_requested;
	char close_reason[80];		/* why QUIT was sent */
	/* What `closed` will say; it is posted once the session is freed: */
	bool end_connected;
	char *end_reason;
};

static void on_read(struct sockio *sock, void *arg);
static void on_write(struct sockio *sock, void *arg);
static void on_event(struct sockio *sock, short what, void *arg);
static void try_address(struct smtpc_session *s);
static void session_end(struct smtpc_session *s, bool connected, const char *reason);
static void begin_batch(struct smtpc_session *s, struct smtp_batch *b);
static void finish_batch(struct smtpc_session *s, const char *broken);

/* ------------------------------------------------------------------ */
/* helpers                                                             */

/* smtpc_trace_init - read IMPETUS_TRACE once (smtp_client_open calls it; smtp_trace.h). */
void smtpc_trace_init(void)
{
	smtp_trace_init();
}

/* tracing - whether this session's state changes go to the paniclog (`trace smtp`). */
static bool tracing(const struct smtpc_session *s)
{
	return smtp_trace_out(s->peer_ip);
}

/* set_state - enter a state, tracing "old -> new" when asked. */
static void set_state(struct smtpc_session *s, enum sc_state st)
{
	if (s->state != st && tracing(s))
		log_panic("%s smtpc state %s -> %s server=%s", s->c->conn_id,
			  state_names[s->state], state_names[st], s->peer_str);
	s->state = st;
}

static uint32_t or_default(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

/* arm - (re)start the session timer. */
static void arm(struct smtpc_session *s, uint32_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(s->timer, &tv);
}

static void arm_reply(struct smtpc_session *s)
{
	arm(s, or_default(s->p->reply_timeout, SMTPC_DEFAULT_REPLY_TIMEOUT));
}

static void arm_data(struct smtpc_session *s)
{
	arm(s, or_default(s->p->data_timeout, SMTPC_DEFAULT_DATA_TIMEOUT));
}

/* send_str - queue bytes for the server. */
static void send_str(struct smtpc_session *s, const struct str *line)
{
	if (s->sock)
		sockio_write(s->sock, line->s, line->len);
}

static void send_line(struct smtpc_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* send_line - queue one command line (CRLF added). */
static void send_line(struct smtpc_session *s, const char *fmt, ...)
{
	va_list ap;

	str_clear(&s->scratch);
	va_start(ap, fmt);
	str_vappendf(&s->scratch, fmt, ap);
	va_end(ap);
	str_append(&s->scratch, "\r\n", 2);
	send_str(s, &s->scratch);
}

/* quit - say goodbye and wait briefly for the 221; reason goes to `closed`. */
static void quit(struct smtpc_session *s, const char *reason)
{
	uint32_t wait = or_default(s->p->reply_timeout, SMTPC_DEFAULT_REPLY_TIMEOUT);

	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	send_line(s, "QUIT");
	set_state(s, SC_QUIT);
	arm(s, wait < SMTPC_QUIT_WAIT ? wait : SMTPC_QUIT_WAIT);
}

static const char *ehlo_name(const struct smtpc_session *s)
{
	return s->p->ehlo_name && s->p->ehlo_name[0] ? s->p->ehlo_name : "localhost";
}

static const char *mx_name(const struct smtpc_session *s)
{
	if (s->p->addr_names && s->ai < s->p->naddr && s->p->addr_names[s->ai])
		return s->p->addr_names[s->ai];
	return "";
}

static socklen_t sockaddr_len(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return sizeof(struct sockaddr_in);
	if (ss->ss_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	return 0;
}

/* format_peer - the peer's "ip" and "ip:port" texts for logs (core/sockaddr.h). */
static void format_peer(struct smtpc_session *s, const struct sockaddr_storage *ss)
{
	sockaddr_format((const struct sockaddr *)ss, s->peer_ip, sizeof(s->peer_ip),
			s->peer_str, sizeof(s->peer_str));
}

/* stage - the Momentum connection stage of the current state. */
static uint8_t stage(const struct smtpc_session *s)
{
	switch (s->state) {
	case SC_START:
	case SC_CONNECTING:
		return STAGE_NOT_CONNECTED;
	case SC_BANNER:
		return STAGE_AWAITING_BANNER;
	case SC_EHLO:
	case SC_HELO:
		return STAGE_EHLO_SENT;
	case SC_STARTTLS:
		return STAGE_STARTTLS_SENT;
	case SC_TLS:
		return STAGE_TLS_HANDSHAKE;
	case SC_AUTH:
		return STAGE_EHLO_ACCEPTED;	/* Momentum has no AUTH stage: it follows EHLO */
	case SC_IDLE:
	case SC_QUIT:
		return STAGE_IDLE;
	case SC_RSET:
		return STAGE_RSET_SENT;
	case SC_MAIL:
		return STAGE_MAIL_SENT;
	case SC_RCPT:
		return STAGE_RCPT_SENT;
	case SC_DATA:
		return STAGE_DATA_SENT;
	case SC_BODY:
		return s->body_flushed ? STAGE_BODY_SENT : STAGE_DATA_ACCEPTED;
	case SC_DOT:
		return STAGE_DATA_ACCEPTED;
	case SC_DONE:
		break;
	}
	return STAGE_UNKNOWN;
}

/* waiting_for - what a timeout in the current state interrupted. */
static const char *waiting_for(const struct smtpc_session *s)
{
	switch (s->state) {
	case SC_BANNER:
		return "timeout waiting for the greeting";
	case SC_EHLO:
		return "timeout waiting for reply to EHLO";
	case SC_HELO:
		return "timeout waiting for reply to HELO";
	case SC_STARTTLS:
		return "timeout waiting for reply to STARTTLS";
	case SC_TLS:
		return "timeout in the TLS handshake";
	case SC_AUTH:
		return "timeout waiting for reply to AUTH";
	case SC_RSET:
		return "timeout waiting for reply to RSET";
	case SC_MAIL:
		return "timeout waiting for reply to MAIL FROM";
	case SC_RCPT:
		return "timeout waiting for reply to RCPT TO";
	case SC_DATA:
		return "timeout waiting for reply to DATA";
	case SC_BODY:
		return s->body_flushed ? "timeout waiting for reply to end of data"
				       : "timeout sending the message body";
	case SC_DOT:
		return "timeout waiting for reply to end of data";
	default:
		return "timeout";
	}
}

static bool is_2xx(int code)
{
	return code >= 200 && code < 300;
}

/* fail_outcome - a refusal: 5xx is permanent, anything else transient. */
static uint8_t fail_outcome(int code)
{
	return code >= 500 && code < 600 ? SMTP_OUT_PERMANENT : SMTP_OUT_TRANSIENT;
}

static void rcpt_set(struct smtp_rcpt_result *r, uint8_t outcome, uint8_t stg, int code,
		     const char *text)
{
	r->outcome = outcome;
	r->stage = stg;
	r->code = code;
	free(r->response);
	r->response = xstrdup(text ? text : "");
}

/* set_undecided - give every recipient of b without an outcome this one. */
static void set_undecided(struct smtp_batch *b, uint8_t outcome, uint8_t stg, int code,
			  const char *text)
{
	for (size_t i = 0; i < b->nrcpt; i++)
		if (b->rcpts[i].outcome == SMTP_OUT_NOT_TRIED)
			rcpt_set(&b->rcpts[i], outcome, stg, code, text);
}

/* not_tried - hand a batch back untouched (it was never started). */
static void not_tried(struct smtp_client *c, struct smtp_batch *b, uint8_t stg, const char *why)
{
	for (size_t i = 0; i < b->nrcpt; i++)
		rcpt_set(&b->rcpts[i], SMTP_OUT_NOT_TRIED, stg, 0, why);
	smtpc_post_batch_done(c, b, false);
}

/* log_line_text - a reply line made safe for a log line (quoted, capped). */
static void log_line_text(struct str *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n && i < 200; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			str_appendf(out, "\\x%02x", ch);
		else
			str_appendc(out, (char)ch);
	}
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

/* drop_conn - close the current connection, if any, and forget its state. */
static void drop_conn(struct smtpc_session *s)
{
	evtimer_del(s->timer);
	if (s->sock) {
		sockio_free(s->sock);
		s->sock = NULL;
		s->sock_gen++;
	}
	if (s->fd >= 0 && !s->fd_in_bev)
		close(s->fd);
	s->fd = -1;
	s->fd_in_bev = false;
	s->tls = false;
	smtpc_reply_reset(&s->reply);
	memset(&s->caps, 0, sizeof(s->caps));
}

/* record_failure - remember why this address did not work. */
static void record_failure(struct smtpc_session *s, int code, uint8_t stg, bool fivexx,
			   const char *reason)
{
	s->fail_code = code;
	s->fail_stage = stg;
	str_clear(&s->fail_reason);
	str_appends(&s->fail_reason, reason);
	if (!fivexx)
		s->all_5xx = false;
}

/* address_failed - give up the current address and try the next one. */
static void address_failed(struct smtpc_session *s, int code, uint8_t stg, bool fivexx,
			   const char *reason)
{
	record_failure(s, code, stg, fivexx, reason);
	drop_conn(s);
	s->ai++;
	s->tls_failed = false;
	try_address(s);
}

/*
 * connect_address - start a connection to address ai. Returns 0 when the
 * connect is under way, -1 when it failed at once (the reason recorded).
 */
static int connect_address(struct smtpc_session *s)
{
	const struct smtp_client_params *p = s->p;
	const struct sockaddr_storage *ss = &p->addrs[s->ai];
	socklen_t len = sockaddr_len(ss);
	char why[256];
	int one = 1;

	s->attempts++;
	format_peer(s, ss);
	set_state(s, SC_CONNECTING);
	if (len == 0) {
		record_failure(s, 0, STAGE_NOT_CONNECTED, false, "unsupported address family");
		return -1;
	}
	s->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		record_failure(s, 0, STAGE_NOT_CONNECTED, false, why);
		return -1;
	}
	if (p->bind.ss_family != 0) {
		if (p->bind.ss_family != ss->ss_family) {
			snprintf(why, sizeof(why), "connect to %s: no source address of its family",
				 s->peer_str);
			record_failure(s, 0, STAGE_NOT_CONNECTED, false, why);
			drop_conn(s);
			return -1;
		}
		/* Let connect() pick the port: many connections from one source IP. */
		(void)setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(s->fd, (const struct sockaddr *)&p->bind, sockaddr_len(&p->bind)) < 0) {
			snprintf(why, sizeof(why), "cannot bind the source address: %s",
				 strerror(errno));
			record_failure(s, 0, STAGE_NOT_CONNECTED, false, why);
			drop_conn(s);
			return -1;
		}
	}
	/* Commands go out whole; Nagle would only delay the end of the body. */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* No CLOSE_ON_FREE: STARTTLS puts a TLS bufferevent on the same fd. */
	s->sock = sockio_new(s->base, s->fd, 0);
	s->sock_gen++;
	if (s->sock == NULL) {
		record_failure(s, 0, STAGE_NOT_CONNECTED, false, "cannot create the connection's buffers");
		drop_conn(s);
		return -1;
	}
	sockio_setcb(s->sock, on_read, on_write, on_event, s);
	if (sockio_connect(s->sock, (const struct sockaddr *)ss, len) < 0) {
		snprintf(why, sizeof(why), "connect to %s: %s", s->peer_str, strerror(errno));
		record_failure(s, 0, STAGE_NOT_CONNECTED, false, why);
		drop_conn(s);
		return -1;
	}
	arm(s, or_default(p->connect_timeout, SMTPC_DEFAULT_CONNECT_TIMEOUT));
	return 0;
}

/*
 * all_failed - no address could be used: the first batch fails with the
 * last reason, permanently only if every address said 5xx to us.
 */
static void all_failed(struct smtpc_session *s)
{
	struct smtp_batch *b = s->first;
	const char *reason = s->fail_reason.len ? s->fail_reason.s : "no address to connect to";
	bool perm = s->attempts > 0 && s->all_5xx;

	s->first = NULL;
	set_state(s, SC_START);
	if (b) {
		snprintf(b->remote_ip, sizeof(b->remote_ip), "%s", s->last_ip);
		snprintf(b->remote_host, sizeof(b->remote_host), "%s", s->last_ip[0] ? mx_name(s) : "");
		b->conn_id = s->c->conn;
		for (size_t i = 0; i < b->nrcpt; i++)
			rcpt_set(&b->rcpts[i], perm ? SMTP_OUT_PERMANENT : SMTP_OUT_TRANSIENT,
				 s->attempts ? s->fail_stage : STAGE_NOT_CONNECTED,
				 s->fail_code, reason);
		smtpc_post_batch_done(s->c, b, false);
	}
	session_end(s, false, reason);
}

/* try_address - connect to the current candidate or a later one. */
static void try_address(struct smtpc_session *s)
{
	while (s->ai < s->p->naddr) {
		if (connect_address(s) == 0)
			return;
		s->ai++;
		s->tls_failed = false;
	}
	all_failed(s);
}

/* connected - TCP is up: wait for the greeting. */
static void connected(struct smtpc_session *s)
{
	snprintf(s->last_ip, sizeof(s->last_ip), "%s", s->peer_ip);
	set_state(s, SC_BANNER);
	arm_reply(s);
	sockio_enable(s->sock, EV_READ | EV_WRITE);
}

static void send_ehlo(struct smtpc_session *s)
{
	send_line(s, "EHLO %s", ehlo_name(s));
	set_state(s, SC_EHLO);
	arm_reply(s);
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */

/* tls_errors - OpenSSL's error queue (or the socket error) as text. */
static void tls_errors(struct bufferevent *bev, struct str *out)
{
	unsigned long e;

	while (bev && (e = bufferevent_get_openssl_error(bev)) != 0) {
		char buf[256];
		ERR_error_string_n(e, buf, sizeof(buf));
		if (out->len)
			str_appends(out, "; ");
		str_appends(out, buf);
	}
}

/*
 * tls_failed - STARTTLS was accepted but TLS did not come up. With
 * ifavailable, reconnect to the same address and skip STARTTLS there;
 * with required, this address is no good.
 */
static void tls_failed(struct smtpc_session *s, const char *why)
{
	char reason[512];

	log_panic("%s smtpc tls failed server=%s mx=%s mode=%s error=\"%s\"", s->c->conn_id,
		  s->peer_str, mx_name(s),
		  s->p->tls_mode == SMTP_TLS_REQUIRED ? "required" : "ifavailable", why);
	if (s->p->tls_mode == SMTP_TLS_REQUIRED) {
		snprintf(reason, sizeof(reason), "TLS required but the handshake failed: %s", why);
		address_failed(s, 0, STAGE_TLS_HANDSHAKE, false, reason);
		return;
	}
	drop_conn(s);
	s->tls_failed = true;
	if (connect_address(s) < 0) {
		s->ai++;
		s->tls_failed = false;
		try_address(s);
	}
}

/* start_tls - the 220 to STARTTLS arrived: run TLS over the same socket. */
static void start_tls(struct smtpc_session *s)
{
	SSL_CTX *ctx = smtpc_tls_ctx();
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	const char *name = mx_name(s);
	unsigned char tmp[sizeof(struct in6_addr)];

	if (ssl == NULL) {
		tls_failed(s, "cannot create TLS state");
		return;
	}
	/* SNI carries a host name, never an address literal (RFC 6066 3). */
	if (name[0] && inet_pton(AF_INET, name, tmp) != 1 && inet_pton(AF_INET6, name, tmp) != 1)
		SSL_set_tlsext_host_name(ssl, name);
	sockio_free(s->sock);	/* plain one, without CLOSE_ON_FREE: fd stays */
	struct bufferevent *bev = bufferevent_openssl_socket_new(s->base, s->fd, ssl,
								 BUFFEREVENT_SSL_CONNECTING,
								 BEV_OPT_CLOSE_ON_FREE |
								 BEV_OPT_DEFER_CALLBACKS);
	s->sock = NULL;
	s->sock_gen++;
	if (bev == NULL) {
		SSL_free(ssl);
		tls_failed(s, "cannot create TLS bufferevent");
		return;
	}
	s->fd_in_bev = true;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->sock = sockio_wrap(bev);
	sockio_setcb(s->sock, on_read, on_write, on_event, s);
	smtpc_reply_reset(&s->reply);
	set_state(s, SC_TLS);
	arm_reply(s);
	sockio_enable(s->sock, EV_READ | EV_WRITE);
}

/* tls_up - the handshake finished: forget the plain-text EHLO, ask again. */
static void tls_up(struct smtpc_session *s)
{
	s->tls = true;
	memset(&s->caps, 0, sizeof(s->caps));
	send_ehlo(s);
}

/* ------------------------------------------------------------------ */
/* greeting, EHLO/HELO, STARTTLS                                       */

/* session_ready - EHLO (and TLS) done: start the first batch. */
static void session_ready(struct smtpc_session *s)
{
	struct smtp_batch *b = s->first;

	s->first = NULL;
	if (b) {
		begin_batch(s, b);
		return;
	}
	set_state(s, SC_IDLE);
	arm(s, or_default(s->p->idle_timeout, SMTPC_DEFAULT_IDLE_TIMEOUT));
}

/* ------------------------------------------------------------------ */
/* outbound AUTH                                                       */

/* auth_log - a paniclog line about this connection's AUTH; never the password. */
static void auth_log(struct smtpc_session *s, const char *what, const char *reason)
{
	const struct smtp_client_params *p = s->p;
	struct str user = STR_INIT, key = STR_INIT, why = STR_INIT;

	/* Escaped: a quote or control byte in the configuration must not forge fields. */
	log_line_text(&user, p->auth_user, strlen(p->auth_user));
	if (p->auth_key)
		log_line_text(&key, p->auth_key, strlen(p->auth_key));
	log_line_text(&why, reason, strlen(reason));
	log_panic("%s smtpc auth %s server=%s mx=%s user=\"%s\" key=\"%s\" mechanism=%s tls=%s "
		  "reason=\"%s\"", s->c->conn_id, what, s->peer_str, mx_name(s), str_cstr(&user),
		  str_cstr(&key), smtpc_auth_name(p->auth_type), s->tls ? "yes" : "no",
		  str_cstr(&why));
	str_free(&user);
	str_free(&key);
	str_free(&why);
}

/* auth_give_up - this address cannot be used with AUTH: log, try the next one. */
static void auth_give_up(struct smtpc_session *s, int code, const char *reason)
{
	auth_log(s, "failed", reason);
	address_failed(s, code, STAGE_EHLO_ACCEPTED, false, reason);
}

/* fail_batch_auth - every recipient of b fails permanently with reason. */
static void fail_batch_auth(struct smtpc_session *s, struct smtp_batch *b, int code,
			    const char *reason)
{
	snprintf(b->remote_ip, sizeof(b->remote_ip), "%s", s->peer_ip);
	snprintf(b->remote_host, sizeof(b->remote_host), "%s", mx_name(s));
	b->conn_id = s->c->conn;
	for (size_t i = 0; i < b->nrcpt; i++)
		rcpt_set(&b->rcpts[i], SMTP_OUT_PERMANENT, STAGE_EHLO_ACCEPTED, code, reason);
	smtpc_post_batch_done(s->c, b, false);
}

/*
 * auth_rejected - a 5xx to AUTH: the credentials are wrong (535) or the
 * server will not take them this way. Every recipient on this connection
 * fails permanently (bounced like any 5xx) and the connection QUITs;
 * other addresses of the same host would give the same answer.
 */
static void auth_rejected(struct smtpc_session *s, const struct smtpc_reply *r)
{
	char reason[SMTPC_RESPONSE_MAX + 512];

	snprintf(reason, sizeof(reason), "%s (outbound AUTH as user %s rejected)", r->text.s,
		 s->p->auth_user);
	auth_log(s, "rejected", r->text.s);
	if (s->first) {
		fail_batch_auth(s, s->first, r->code, reason);
		s->first = NULL;
	}
	while (s->qhead) {
		struct bq *q = s->qhead;
		s->qhead = q->next;
		fail_batch_auth(s, q->b, r->code, reason);
		free(q);
	}
	s->qtail = NULL;
	quit(s, "outbound AUTH rejected");
}

/* send_auth_line - queue a line that carries credentials, then wipe our copy. */
static void send_auth_line(struct smtpc_session *s)
{
	send_str(s, &s->scratch);
	smtpc_wipe(&s->scratch);
	set_state(s, SC_AUTH);
	arm_reply(s);
}

/*
 * start_auth - the last EHLO is done and AUTH is configured: check that it
 * may and can be sent here, then send it. The checks give the address
 * up with a 4.7.0 text, so the mail is retried, not bounced.
 */
static void start_auth(struct smtpc_session *s)
{
	const struct smtp_client_params *p = s->p;
	char reason[512];

	if (p->auth_pass == NULL) {
		snprintf(reason, sizeof(reason),
			 "4.7.0 outbound AUTH as user %s not sent: Outbound_SMTP_AUTH_Pass is not set",
			 p->auth_user);
		auth_give_up(s, 0, reason);
		return;
	}
	if (!s->tls && !p->auth_allow_plaintext) {
		const char *why = p->tls_mode == SMTP_TLS_NO ? "TLS = no"
				  : s->tls_failed	     ? "STARTTLS refused or failed"
							     : "STARTTLS not offered";
		snprintf(reason, sizeof(reason),
			 "4.7.0 outbound AUTH as user %s not sent without TLS (%s; "
			 "Outbound_SMTP_AUTH_Allow_Plaintext is false)", p->auth_user, why);
		auth_give_up(s, 0, reason);
		return;
	}
	bool offered = p->auth_type == SMTP_AUTH_LOGIN ? s->caps.auth_login : s->caps.auth_plain;
	if (!offered) {
		snprintf(reason, sizeof(reason),
			 "4.7.0 outbound AUTH as user %s not possible: server does not offer AUTH %s%s",
			 p->auth_user, smtpc_auth_name(p->auth_type),
			 s->caps.auth_plain || s->caps.auth_login ? "" : " (no AUTH at all)");
		auth_give_up(s, 0, reason);
		return;
	}
	str_clear(&s->scratch);
	smtpc_auth_start(&s->auth, &s->scratch, p);
	send_auth_line(s);
}

/* on_auth - 334: answer; 2xx: authenticated; 4xx: next address; 5xx: permanent. */
static void on_auth(struct smtpc_session *s, const struct smtpc_reply *r)
{
	char reason[SMTPC_RESPONSE_MAX + 512];

	if (r->code == 334) {
		str_clear(&s->scratch);
		if (smtpc_auth_next(&s->auth, &s->scratch, s->p) < 0) {
			smtpc_wipe(&s->scratch);
			snprintf(reason, sizeof(reason),
				 "unexpected 334 to AUTH %s (outbound AUTH as user %s)",
				 smtpc_auth_name(s->auth.type), s->p->auth_user);
			auth_give_up(s, r->code, reason);
			return;
		}
		send_auth_line(s);
		return;
	}
	if (is_2xx(r->code)) {
		if (tracing(s))
			auth_log(s, "ok", r->text.s);
		session_ready(s);
		return;
	}
	if (r->code >= 500) {
		auth_rejected(s, r);
		return;
	}
	snprintf(reason, sizeof(reason), "%s (outbound AUTH as user %s failed temporarily)",
		 r->text.s, s->p->auth_user);
	auth_give_up(s, r->code, reason);
}

/* hello_done - EHLO (and TLS) settled: authenticate if configured, then go. */
static void hello_done(struct smtpc_session *s)
{
	if (s->p->auth_user) {
		start_auth(s);
		return;
	}
	session_ready(s);
}

/* after_hello - EHLO or HELO accepted: STARTTLS if wanted, else ready. */
static void after_hello(struct smtpc_session *s)
{
	uint8_t mode = s->p->tls_mode;

	if (!s->tls && mode != SMTP_TLS_NO && !s->tls_failed && s->caps.starttls) {
		send_line(s, "STARTTLS");
		set_state(s, SC_STARTTLS);
		arm_reply(s);
		return;
	}
	if (!s->tls && mode == SMTP_TLS_REQUIRED) {
		address_failed(s, 0, STAGE_EHLO_ACCEPTED, false, "TLS required but not available");
		return;
	}
	hello_done(s);
}

static void on_banner(struct smtpc_session *s, const struct smtpc_reply *r)
{
	if (r->code == 220) {
		send_ehlo(s);
		return;
	}
	address_failed(s, r->code, STAGE_AWAITING_BANNER, r->code >= 500, r->text.s);
}

static void on_ehlo(struct smtpc_session *s, const struct smtpc_reply *r)
{
	if (is_2xx(r->code)) {
		smtp_caps_parse(&s->caps, (const char *const *)r->lines, r->nlines);
		after_hello(s);
		return;
	}
	if (r->code >= 500) {
		/* RFC 5321 3.2: an old server; say HELO instead. */
		send_line(s, "HELO %s", ehlo_name(s));
		set_state(s, SC_HELO);
		arm_reply(s);
		return;
	}
	address_failed(s, r->code, STAGE_EHLO_SENT, false, r->text.s);
}

static void on_helo(struct smtpc_session *s, const struct smtpc_reply *r)
{
	if (is_2xx(r->code)) {
		memset(&s->caps, 0, sizeof(s->caps));
		after_hello(s);
		return;
	}
	address_failed(s, r->code, STAGE_EHLO_SENT, r->code >= 500, r->text.s);
}

/*
 * on_starttls - 220 starts the handshake. A refusal leaves the session in
 * its pre-STARTTLS state (RFC 3207 4), so with ifavailable we simply go on
 * in plain text on this connection; with required the address is no good.
 */
static void on_starttls(struct smtpc_session *s, const struct smtpc_reply *r)
{
	char reason[SMTPC_RESPONSE_MAX + 64];

	if (r->code == 220) {
		start_tls(s);
		return;
	}
	log_panic("%s smtpc starttls refused server=%s mx=%s reply=\"%s\"", s->c->conn_id,
		  s->peer_str, mx_name(s), r->text.s);
	if (s->p->tls_mode == SMTP_TLS_REQUIRED) {
		snprintf(reason, sizeof(reason), "TLS required but STARTTLS was refused: %s",
			 r->text.s);
		address_failed(s, r->code, STAGE_STARTTLS_SENT, false, reason);
		return;
	}
	s->tls_failed = true;
	hello_done(s);
}

/* ------------------------------------------------------------------ */
/* transactions                                                        */

/*
 * envelope_clean - no control bytes: a CR or LF in an address would let it
 * inject commands. Our parsers never let one in; other sources might.
 */
static bool envelope_clean(const char *p)
{
	for (; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* ascii - no 8-bit byte in s (NULL allowed). */
static bool ascii(const char *p)
{
	for (; p && *p; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	return true;
}

/*
 * needs_smtputf8 - does the batch need SMTPUTF8 (RFC 6531 3.3)? When an
 * envelope address it sends is not ASCII, or its header section carries
 * 8-bit bytes (UTF-8 header fields, RFC 6532). The body alone does not:
 * 8BITMIME or the downgrade covers it.
 */
static bool needs_smtputf8(const struct smtp_batch *b, const struct str *body)
{
	if (!ascii(b->sender))
		return true;
	for (size_t i = 0; i < b->nrcpt; i++)
		if (!ascii(b->rcpts[i].addr))
			return true;
	size_t h = rfc5322_header_end(body->s ? body->s : "", body->len);
	for (size_t i = 0; i < h; i++)
		if ((unsigned char)body->s[i] >= 0x80)
			return true;
	return false;
}

/*
 * prepare_body - for a server without SMTPUTF8 or without 8BITMIME, read
 * the body now, before MAIL, and decide: false when the batch can go
 * (body_loaded, 8-bit parts made quoted-printable when the server lacks
 * 8BITMIME); true with why set when it cannot: SMTPUTF8 needed (5.6.7),
 * or the spool could not be read (4.3.0, transient: the caller's text
 * starts with 4 so the outcome says so). Other servers read the body at
 * DATA as before.
 */
static bool prepare_body(struct smtpc_session *s, struct smtp_batch *b, char *why, size_t len)
{
	bool utf8_down = b->smtputf8 && !s->caps.smtputf8;
	int err;

	if (!utf8_down && s->caps.eightbitmime)
		return false;
	str_clear(&s->body);
	err = spool_read_body(s->c->sp, &b->loc, &s->body);
	if (err < 0) {
		char idbuf[ID_BUF_SIZE];

		log_panic("%s smtpc cannot read the message msg=%s segment=%llu offset=%llu error=\"%s\"",
			  s->c->conn_id, id_format(b->msg_id, idbuf),
			  (unsigned long long)b->loc.segment, (unsigned long long)b->loc.offset,
			  strerror(-err));
		snprintf(why, len, "4.3.0 cannot read the message from the spool: %s",
			 strerror(-err));
		return true;
	}
	if (utf8_down && needs_smtputf8(b, &s->body)) {
		snprintf(why, len, "5.6.7 the message needs SMTPUTF8 (non-ASCII address or "
			 "header) and the server does not support it");
		return true;
	}
	if (!s->caps.eightbitmime && mime_has_8bit(s->body.s ? s->body.s : "", s->body.len)) {
		struct str conv = STR_INIT;

		mime_downgrade(s->body.s, s->body.len, &conv);
		str_free(&s->body);
		s->body = conv;
		b->wire_length = s->body.len;
		/* quoted-printable is larger: the SIZE check again, on what is sent */
		if (s->caps.size && s->caps.size_max > 0 && b->wire_length > s->caps.size_max) {
			snprintf(why, len, "5.3.4 message size %llu (after conversion to 7bit) "
				 "exceeds the server's limit of %llu",
				 (unsigned long long)b->wire_length,
				 (unsigned long long)s->caps.size_max);
			return true;
		}
	}
	s->body_loaded = true;
	return false;
}

/*
 * local_refusal - what we can tell before MAIL: a bad envelope, a body
 * over the server's SIZE, BINARYMIME, SMTPUTF8 needed but not offered
 * (prepare_body, which also readies the downgrade). No reply was
 * received, so code is 0; the text starts with the RFC 3463 code so the
 * bounce classifier and the DSN can use it, and its class decides
 * permanent or transient. The connection stays clean.
 */
static bool local_refusal(struct smtpc_session *s, struct smtp_batch *b)
{
	char why[256];

	if (!envelope_clean(b->sender) || !envelope_clean(b->envid))
		snprintf(why, sizeof(why), "5.1.7 invalid characters in the envelope sender");
	else if (b->body_type == ENVELOPE_BODY_BINARYMIME)
		snprintf(why, sizeof(why), "5.6.3 BINARYMIME messages cannot be relayed");
	else if (s->caps.size && s->caps.size_max > 0 && b->loc.length > s->caps.size_max)
		snprintf(why, sizeof(why),
			 "5.3.4 message size %llu exceeds the server's limit of %llu",
			 (unsigned long long)b->loc.length, (unsigned long long)s->caps.size_max);
	else if (!prepare_body(s, b, why, sizeof(why)))
		return false;
	for (size_t i = 0; i < b->nrcpt; i++)
		rcpt_set(&b->rcpts[i], why[0] == '4' ? SMTP_OUT_TRANSIENT : SMTP_OUT_PERMANENT,
			 STAGE_IDLE, 0, why);
	finish_batch(s, NULL);
	return true;
}

static void send_mail(struct smtpc_session *s)
{
	str_clear(&s->scratch);
	smtpc_format_mail(&s->scratch, s->b, &s->caps);
	send_str(s, &s->scratch);
}

/* send_rcpt - RCPT for the k-th recipient of order[]. */
static void send_rcpt(struct smtpc_session *s, size_t k)
{
	size_t i = s->order[k];

	str_clear(&s->scratch);
	smtpc_format_rcpt(&s->scratch, s->b, i, &s->caps);
	send_str(s, &s->scratch);
}

/*
 * begin_batch - start a transaction. With PIPELINING, [RSET] MAIL, every
 * RCPT and DATA leave in one write (RFC 2920 3.1: DATA ends the group);
 * without it, one command per reply.
 */
static void begin_batch(struct smtpc_session *s, struct smtp_batch *b)
{
	s->b = b;
	for (size_t i = 0; i < b->nrcpt; i++)
		rcpt_set(&b->rcpts[i], SMTP_OUT_NOT_TRIED, STAGE_IDLE, 0, NULL);
	snprintf(b->remote_ip, sizeof(b->remote_ip), "%s", s->peer_ip);
	snprintf(b->remote_host, sizeof(b->remote_host), "%s", mx_name(s));
	b->conn_id = s->c->conn;
	b->bytes_sent = 0;
	b->peer_dsn = s->caps.dsn;
	b->wire_length = 0;
	s->rcpt_reply = 0;
	s->naccepted = 0;
	s->mail_failed = false;
	s->body_queued = s->body_flushed = false;
	s->body_loaded = false;
	if (local_refusal(s, b))
		return;
	s->order = xrealloc(s->order, (b->nrcpt ? b->nrcpt : 1) * sizeof(*s->order));
	s->norder = 0;
	for (size_t i = 0; i < b->nrcpt; i++) {
		if (envelope_clean(b->rcpts[i].addr) && envelope_clean(b->rcpts[i].orcpt))
			s->order[s->norder++] = i;
		else
			rcpt_set(&b->rcpts[i], SMTP_OUT_PERMANENT, STAGE_IDLE, 0,
				 "5.1.3 invalid characters in the recipient address");
	}
	if (s->norder == 0) {
		finish_batch(s, NULL);
		return;
	}
	s->pipelining = s->caps.pipelining;
	str_clear(&s->scratch);
	if (s->need_rset)
		str_appends(&s->scratch, "RSET\r\n");
	if (!s->need_rset || s->pipelining)
		smtpc_format_mail(&s->scratch, b, &s->caps);
	if (s->pipelining) {
		for (size_t k = 0; k < s->norder; k++)
			smtpc_format_rcpt(&s->scratch, b, s->order[k], &s->caps);
		str_appends(&s->scratch, "DATA\r\n");
	}
	send_str(s, &s->scratch);
	set_state(s, s->need_rset ? SC_RSET : SC_MAIL);
	arm_reply(s);
}

/*
 * finish_batch - every recipient has its outcome: hand the batch back and
 * decide what the connection does next. broken is NULL when the
 * connection can go on, else why it must end.
 */
static void finish_batch(struct smtpc_session *s, const char *broken)
{
	struct smtp_batch *b = s->b;
	const struct smtp_client_params *p = s->p;
	bool more;

	s->b = NULL;
	str_free(&s->body);
	s->body_loaded = false;
	if (s->sock)
		sockio_setwatermark(s->sock, EV_WRITE, 0, 0);
	/* Nothing should be left open here; never report a recipient as untried by accident. */
	set_undecided(b, SMTP_OUT_TRANSIENT, stage(s), 0, "no reply from server");
	s->deliveries++;
	more = broken == NULL && !s->close_requested &&
	       (p->max_deliveries == 0 || s->deliveries < p->max_deliveries);
	smtpc_post_batch_done(s->c, b, more);
	if (more) {
		if (s->qhead) {
			struct bq *q = s->qhead;
			s->qhead = q->next;
			if (s->qhead == NULL)
				s->qtail = NULL;
			b = q->b;
			free(q);
			begin_batch(s, b);
			return;
		}
		set_state(s, SC_IDLE);
		arm(s, or_default(p->idle_timeout, SMTPC_DEFAULT_IDLE_TIMEOUT));
		return;
	}
	if (broken) {
		session_end(s, true, broken);
		return;
	}
	quit(s, s->close_requested ? "closed on request" : "maximum deliveries per connection reached");
}

/* tx_fail - the connection broke inside a transaction. */
static void tx_fail(struct smtpc_session *s, int code, const char *reason)
{
	set_undecided(s->b, SMTP_OUT_TRANSIENT, stage(s), code, reason);
	finish_batch(s, reason);
}

static void on_rset(struct smtpc_session *s, const struct smtpc_reply *r)
{
	if (!is_2xx(r->code)) {
		/* A server that refuses RSET is in no state to take mail. */
		tx_fail(s, r->code, r->text.s);
		return;
	}
	s->need_rset = false;
	if (!s->pipelining)
		send_mail(s);
	set_state(s, SC_MAIL);
	arm_reply(s);
}

static void on_mail(struct smtpc_session *s, const struct smtpc_reply *r)
{
	struct smtp_batch *b = s->b;

	if (is_2xx(r->code)) {
		if (!s->pipelining)
			send_rcpt(s, 0);
		set_state(s, SC_RCPT);
		arm_reply(s);
		return;
	}
	set_undecided(b, fail_outcome(r->code), STAGE_MAIL_SENT, r->code, r->text.s);
	s->mail_failed = true;
	s->need_rset = true;
	if (r->code == 421) {
		finish_batch(s, r->text.s);
		return;
	}
	if (!s->pipelining) {
		finish_batch(s, NULL);
		return;
	}
	/* The RCPT and DATA replies are still on their way: read them (RFC 2920 3.2). */
	set_state(s, SC_RCPT);
	arm_reply(s);
}

static void on_rcpt(struct smtpc_session *s, const struct smtpc_reply *r)
{
	struct smtp_batch *b = s->b;
	size_t i = s->order[s->rcpt_reply++];

	if (!s->mail_failed) {
		struct smtp_rcpt_result *rr = &b->rcpts[i];

		if (is_2xx(r->code)) {
			/* Accepted: the reply after the body decides. */
			rr->stage = STAGE_RCPT_ACCEPTED;
			rr->code = r->code;
			s->naccepted++;
		} else {
			rcpt_set(rr, fail_outcome(r->code), STAGE_RCPT_SENT, r->code, r->text.s);
		}
		if (r->code == 421) {
			set_undecided(b, SMTP_OUT_TRANSIENT, STAGE_RCPT_SENT, r->code, r->text.s);
			finish_batch(s, r->text.s);
			return;
		}
	}
	if (s->rcpt_reply < s->norder) {
		if (!s->pipelining)
			send_rcpt(s, s->rcpt_reply);
		arm_reply(s);
		return;
	}
	if (s->pipelining) {
		set_state(s, SC_DATA);
		arm_reply(s);
		return;
	}
	if (s->naccepted == 0) {
		s->need_rset = true;
		finish_batch(s, NULL);
		return;
	}
	send_line(s, "DATA");
	set_state(s, SC_DATA);
	arm_reply(s);
}

/* feed_body - move the next slices of the body into the output buffer. */
static void feed_body(struct smtpc_session *s)
{
	struct evbuffer *out = sockio_output(s->sock);

	while (!s->body_queued && evbuffer_get_length(out) < BODY_HIGHWAT) {
		size_t n = s->body.len - s->body_off;

		if (n == 0) {
			smtpc_body_end(&s->bw, out);
			s->body_queued = true;
			str_free(&s->body);
			/* Called back once the output buffer is empty. */
			sockio_setwatermark(s->sock, EV_WRITE, 0, 0);
			break;
		}
		if (n > BODY_CHUNK)
			n = BODY_CHUNK;
		smtpc_body_write(&s->bw, out, s->body.s + s->body_off, n);
		s->body_off += n;
	}
	s->b->bytes_sent = s->bw.bytes;
	arm_data(s);
}

/* start_body - 354 with accepted recipients: read the message and send it. */
static void start_body(struct smtpc_session *s)
{
	struct smtp_batch *b = s->b;
	int err;

	err = 0;
	if (!s->body_loaded) {
		str_clear(&s->body);
		err = spool_read_body(s->c->sp, &b->loc, &s->body);
	}
	set_state(s, SC_BODY);
	if (err < 0) {
		char idbuf[ID_BUF_SIZE];
		char reason[128];

		log_panic("%s smtpc cannot read the message msg=%s segment=%llu offset=%llu error=\"%s\"",
			  s->c->conn_id, id_format(b->msg_id, idbuf),
			  (unsigned long long)b->loc.segment, (unsigned long long)b->loc.offset,
			  strerror(-err));
		snprintf(reason, sizeof(reason), "cannot read the message from the spool: %s",
			 strerror(-err));
		/* Inside DATA: only dropping the connection keeps a truncated message from being delivered. */
		tx_fail(s, 0, reason);
		return;
	}
	smtpc_body_init(&s->bw);
	s->body_off = 0;
	sockio_setwatermark(s->sock, EV_WRITE, BODY_LOWAT, 0);
	feed_body(s);
}

static void on_data(struct smtpc_session *s, const struct smtpc_reply *r)
{
	if (r->code == 354) {
		if (s->mail_failed || s->naccepted == 0) {
			/* RFC 2920 3.1: the pipelined DATA was accepted with nobody to deliver to. */
			send_line(s, ".");
			set_state(s, SC_DOT);
			arm_reply(s);
			return;
		}
		start_body(s);
		return;
	}
	if (!s->mail_failed)
		set_undecided(s->b, fail_outcome(r->code), STAGE_DATA_SENT, r->code, r->text.s);
	s->need_rset = true;
	finish_batch(s, r->code == 421 ? r->text.s : NULL);
}

static void on_body(struct smtpc_session *s, const struct smtpc_reply *r)
{
	bool early = !s->body_flushed;

	if (is_2xx(r->code))
		set_undecided(s->b, SMTP_OUT_DELIVERED, STAGE_BODY_ACCEPTED, r->code, r->text.s);
	else
		set_undecided(s->b, fail_outcome(r->code), stage(s), r->code, r->text.s);
	s->need_rset = false;
	if (early)
		finish_batch(s, "reply before the end of the message");
	else
		finish_batch(s, r->code == 421 ? r->text.s : NULL);
}

static void on_dot(struct smtpc_session *s, const struct smtpc_reply *r)
{
	s->need_rset = true;
	finish_batch(s, r->code == 421 ? r->text.s : NULL);
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

/*
 * conn_failed - the connection broke (EOF, error, timeout, malformed
 * reply): what that means depends on where we were.
 */
static void conn_failed(struct smtpc_session *s, const char *reason)
{
	switch (s->state) {
	case SC_CONNECTING:
	case SC_BANNER:
	case SC_STARTTLS:
	case SC_AUTH:
		address_failed(s, 0, stage(s), false, reason);
		break;
	case SC_EHLO:
	case SC_HELO:
		/* Broken right after the handshake: with ifavailable, retry in plain text. */
		if (s->tls && s->p->tls_mode == SMTP_TLS_IFAVAILABLE)
			tls_failed(s, reason);
		else
			address_failed(s, 0, stage(s), false, reason);
		break;
	case SC_TLS:
		tls_failed(s, reason);
		break;
	case SC_RSET:
	case SC_MAIL:
	case SC_RCPT:
	case SC_DATA:
	case SC_BODY:
	case SC_DOT:
		tx_fail(s, 0, reason);
		break;
	case SC_IDLE:
		session_end(s, true, reason);
		break;
	case SC_QUIT:
		session_end(s, true, s->close_reason);
		break;
	case SC_START:
	case SC_DONE:
		break;
	}
}

/* handle_reply - a complete reply arrived in the current state. */
static void handle_reply(struct smtpc_session *s)
{
	const struct smtpc_reply *r = &s->reply;
	char reason[SMTPC_RESPONSE_MAX + 64];

	evtimer_del(s->timer);
	switch (s->state) {
	case SC_BANNER:
		on_banner(s, r);
		break;
	case SC_EHLO:
		on_ehlo(s, r);
		break;
	case SC_HELO:
		on_helo(s, r);
		break;
	case SC_STARTTLS:
		on_starttls(s, r);
		break;
	case SC_AUTH:
		on_auth(s, r);
		break;
	case SC_RSET:
		on_rset(s, r);
		break;
	case SC_MAIL:
		on_mail(s, r);
		break;
	case SC_RCPT:
		on_rcpt(s, r);
		break;
	case SC_DATA:
		on_data(s, r);
		break;
	case SC_BODY:
		on_body(s, r);
		break;
	case SC_DOT:
		on_dot(s, r);
		break;
	case SC_QUIT:
		session_end(s, true, s->close_reason);
		break;
	case SC_IDLE:
		/* Typically "421 idle timeout" before the server hangs up. */
		snprintf(reason, sizeof(reason), "server said: %s", r->text.s);
		session_end(s, true, reason);
		break;
	case SC_START:
	case SC_CONNECTING:
	case SC_TLS:
	case SC_DONE:
		break;
	}
}

/* malformed - a reply line we cannot trust: log it and drop the connection. */
static void malformed(struct smtpc_session *s, const char *line, size_t len)
{
	struct str esc = STR_INIT;

	log_line_text(&esc, line, len);
	log_panic("%s smtpc malformed reply server=%s mx=%s state=%s line=\"%s\"", s->c->conn_id,
		  s->peer_str, mx_name(s), state_names[s->state], str_cstr(&esc));
	str_free(&esc);
	conn_failed(s, "malformed reply from server");
}

static void on_read(struct sockio *sock, void *arg)
{
	struct smtpc_session *s = arg;
	struct evbuffer *in = sockio_input(sock);
	unsigned gen = s->sock_gen;
	char line[SMTPC_LINE_MAX + 1];

	/* Stop when the handler replaced or dropped the connection (STARTTLS, failure). */
	while (s->sock_gen == gen && s->state != SC_DONE) {
		size_t eol_len;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

		if (p.pos < 0) {
			size_t avail = evbuffer_get_length(in);
			/* + 1: a line of SMTPC_LINE_MAX bytes whose CR came without its LF. */
			if (avail > SMTPC_LINE_MAX + 1) {
				evbuffer_copyout(in, line, 80);
				malformed(s, line, 80);
			}
			return;
		}
		size_t len = (size_t)p.pos;
		if (len > SMTPC_LINE_MAX) {
			evbuffer_copyout(in, line, 80);
			malformed(s, line, 80);
			return;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		int rc = smtpc_reply_add_line(&s->reply, line, len);
		if (rc < 0) {
			malformed(s, line, len);
			return;
		}
		if (rc == 1)
			handle_reply(s);
	}
}

static void on_write(struct sockio *sock, void *arg)
{
	struct smtpc_session *s = arg;

	if (s->state != SC_BODY || s->sock != sock)
		return;
	if (!s->body_queued) {
		feed_body(s);
	} else if (!s->body_flushed &&
		   evbuffer_get_length(sockio_output(sock)) == 0) {
		/* The whole message is out: the data timeout starts now. */
		s->body_flushed = true;
		arm_data(s);
	}
}

static void on_event(struct sockio *sock, short what, void *arg)
{
	struct smtpc_session *s = arg;
	struct str why = STR_INIT;

	if (s->sock != sock)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SC_CONNECTING)
			connected(s);
		else if (s->state == SC_TLS)
			tls_up(s);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;

	/* libevent keeps the socket error for deferred callbacks; SO_ERROR is already read. */
	int err = (what & BEV_EVENT_ERROR) ? EVUTIL_SOCKET_ERROR() : 0;
	socklen_t elen = sizeof(err);

	if (err == 0 && s->fd >= 0 && getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
		err = 0;
	if (s->state == SC_CONNECTING) {
		str_appendf(&why, "connect to %s: %s", s->peer_str,
			    err ? strerror(err) : "connection failed");
	} else if (s->state == SC_TLS) {
		tls_errors(sockio_bufferevent(sock), &why);
		if (why.len == 0)
			str_appends(&why, (what & BEV_EVENT_EOF) ? "connection closed during handshake"
								   : err ? strerror(err) : "handshake error");
	} else {
		if (s->tls)
			tls_errors(sockio_bufferevent(sock), &why);
		if (why.len == 0 && (what & BEV_EVENT_ERROR) && err)
			str_appendf(&why, "connection lost: %s", strerror(err));
		else if (why.len == 0)
			str_appends(&why, "connection closed by server");
	}
	conn_failed(s, why.s);
	str_free(&why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_session *s = arg;

	switch (s->state) {
	case SC_IDLE:
		quit(s, "idle timeout");
		break;
	case SC_QUIT:
		session_end(s, true, s->close_reason);
		break;
	case SC_CONNECTING: {
		char why[160];

		snprintf(why, sizeof(why), "connect to %s: timed out", s->peer_str);
		conn_failed(s, why);
		break;
	}
	default:
		conn_failed(s, waiting_for(s));
		break;
	}
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

static void session_free(struct smtpc_session *s)
{
	drop_conn(s);
	event_free(s->timer);
	smtpc_reply_free(&s->reply);
	str_free(&s->scratch);
	str_free(&s->fail_reason);
	str_free(&s->body);
	free(s->order);
	free(s);
}

/*
 * free_later - free the ended session, then post `closed`. In this order
 * because the daemon stops the I/O loops once every connection is closed:
 * a session still waiting for this timer then would never be freed.
 */
static void free_later(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc_session *s = arg;
	struct smtp_client *c = s->c;
	bool was_connected = s->end_connected;
	char *reason = s->end_reason;

	session_free(s);
	smtpc_post_closed(c, was_connected, reason);
	free(reason);
}

/*
 * session_end - close the connection, hand back whatever batches are still
 * here; `closed` follows when the session is freed. After that post the
 * handle may be freed by the scheduler at any moment, so the client is
 * marked done now.
 */
static void session_end(struct smtpc_session *s, bool connected_, const char *reason)
{
	struct smtp_client *c = s->c;
	struct timeval zero = { 0, 0 };
	uint8_t stg = connected_ ? STAGE_IDLE : STAGE_NOT_CONNECTED;
	char why[256];

	if (s->state == SC_DONE)
		return;
	set_state(s, SC_DONE);
	drop_conn(s);
	snprintf(why, sizeof(why), "not tried: %s", reason);
	if (s->b) {
		set_undecided(s->b, SMTP_OUT_TRANSIENT, STAGE_UNKNOWN, 0, reason);
		smtpc_post_batch_done(c, s->b, false);
		s->b = NULL;
	}
	if (s->first) {
		not_tried(c, s->first, stg, why);
		s->first = NULL;
	}
	while (s->qhead) {
		struct bq *q = s->qhead;
		s->qhead = q->next;
		not_tried(c, q->b, stg, why);
		free(q);
	}
	s->qtail = NULL;
	c->sess = NULL;
	c->io_done = true;
	s->end_connected = connected_;
	s->end_reason = xstrdup(reason ? reason : "");
	/*
	 * Without the timer (libevent out of memory) `closed` would never
	 * come and the shutdown would wait for it: post it now and leave the
	 * session allocated (callers up the stack may still hold it).
	 */
	if (event_base_once(s->base, -1, EV_TIMEOUT, free_later, s, &zero) < 0)
		smtpc_post_closed(c, connected_, s->end_reason);
}

void smtpc_session_start(struct smtp_client *c)
{
	struct smtpc_session *s = XNEW(struct smtpc_session);

	s->c = c;
	s->p = c->params;
	s->base = loop_base(c->io_loop);
	s->state = SC_START;
	s->fd = -1;
	s->all_5xx = true;
	s->timer = evtimer_new(s->base, on_timer, s);
	smtpc_reply_init(&s->reply);
	str_init(&s->scratch);
	str_init(&s->fail_reason);
	str_init(&s->body);
	s->first = c->first;
	c->first = NULL;
	c->sess = s;
	try_address(s);
}

void smtpc_session_send(struct smtp_client *c, struct smtp_batch *b)
{
	struct smtpc_session *s = c->sess;

	if (c->io_done || s == NULL || s->state == SC_QUIT || s->state == SC_DONE ||
	    s->close_requested) {
		not_tried(c, b, STAGE_IDLE, "not tried: connection closing");
		return;
	}
	if (s->state == SC_IDLE) {
		evtimer_del(s->timer);
		begin_batch(s, b);
		return;
	}
	/* Busy (still connecting, or a batch in flight): run it next. */
	struct bq *q = xmalloc(sizeof(*q));
	q->b = b;
	q->next = NULL;
	if (s->qtail)
		s->qtail->next = q;
	else
		s->qhead = q;
	s->qtail = q;
}

void smtpc_session_close(struct smtp_client *c)
{
	struct smtpc_session *s = c->sess;

	if (!c->io_done && s != NULL) {
		if (s->state == SC_IDLE)
			quit(s, "closed on request");
		else
			s->close_requested = true;	/* busy: QUIT after the batch in flight */
	}
	/*
	 * The ack goes last: it may be the scheduler's last reason to keep c
	 * (run_closed frees it), so c is not read once it is posted.
	 */
	smtpc_post_close_ack(c);
}
