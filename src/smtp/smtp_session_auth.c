/*
 * smtp_session_auth.c - SMTP AUTH in an inbound session (RFC 4954; PLAIN,
 * RFC 4616; LOGIN)
 *
 * The AUTH command and its exchange, split out of smtp_server_session.c,
 * whose state machine it is part of: the session is in state AUTH while
 * it reads the client's response to a 334, and AUTH_WAIT while the
 * credentials are checked. Everything here runs on the session's I/O
 * loop and touches only that session (smtp_session_int.h); the other
 * threads see the credentials only inside a struct smtp_auth_job
 * (smtp_server_int.h), handed over whole at each hop.
 *
 * The exchange: AUTH <mech> [initial-response], then 334 challenges and
 * one response line each, then the check, which never runs here: crypt
 * is slow on purpose, so the credentials travel to the CPU pool by way
 * of the scheduler (the tarpit's owner, smtp_tarpit.h) and come back as
 * smtp.auth_done. A failure's 535 is held back on a timer of this loop
 * for the delay the tarpit set; the limit-th failure is a 421 and the
 * connection closes.
 *
 * Credentials are never logged: the rejectlog line of a failure, which
 * the scheduler writes when it counts the failure (so a client that
 * leaves during the delay is logged too), names the mechanism and the
 * user; the trace shows "AUTH PLAIN ****" and "****" for response lines;
 * the buffers that held a password are wiped before they are freed.
 *
 * Failure modes: a client that leaves while its check runs detaches the
 * job (smtp_session_auth_free), which is then only freed; a session
 * closed by shutdown's grace timer drops the answer; one still open when
 * shutdown began gets its answer, then 421 4.3.2 and the close.
 *
 * docs/smtp-server.md, "Authentication", lists every reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <impetus/message.h>
#include <impetus/session.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/str.h"
#include "log/log.h"
#include "message/message_view.h"
#include "message/vctx.h"
#include "smtp/smtp_auth.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_server_int.h"
#include "smtp/smtp_session_int.h"

/* ms_timeval - milliseconds as a struct timeval. */
static struct timeval ms_timeval(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	return tv;
}

/*
 * smtp_session_auth_offered - whether EHLO lists AUTH now: the listener
 * offers it, and the connection is under TLS or the listener allows plain
 * text (RFC 4954 4: no plain-text mechanism in clear by default).
 */
bool smtp_session_auth_offered(const struct smtp_session *s)
{
	return s->lim.auth.mechs != 0 && (s->tls || s->lim.auth.allow_plaintext);
}

/* auth_mech_name - the mechanism as logs name it. */
static const char *auth_mech_name(unsigned mech)
{
	return mech == SMTP_AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN";
}

/* auth_clear - wipe and forget the exchange's state (not the session's). */
static void auth_clear(struct smtp_session *s)
{
	if (s->auth_login_user) {
		explicit_bzero(s->auth_login_user, strlen(s->auth_login_user));
		free(s->auth_login_user);
		s->auth_login_user = NULL;
	}
	s->auth_mech = 0;
}

/* smtp_session_auth_end - forget the exchange in progress (not the identity of a past success). */
void smtp_session_auth_end(struct smtp_session *s)
{
	auth_clear(s);
	if (s->state == S_AUTH)
		smtp_session_set_state(s, S_CMD);
}

/* smtp_session_auth_forget - drop the identity: STARTTLS starts over (RFC 3207 4.2). */
void smtp_session_auth_forget(struct smtp_session *s)
{
	if (s->auth_user == NULL)
		return;
	free(s->auth_user);
	s->auth_user = NULL;
	vctx_set(s->conn_vctx, IMP_VCTX_AUTH_USER, NULL);
	vctx_set(s->conn_vctx, "auth_user", NULL);
	vctx_set(s->conn_vctx, "auth_name", NULL);
	vctx_set(s->conn_vctx, IMP_VCTX_CAN_RELAY,
		 conf_relay_host_match(s->conf, s->clistener, (const struct sockaddr *)&s->peer) ?
		 "1" : NULL);
}

/* auth_verify - hand user and pass to the check; the session waits in AUTH_WAIT. */
static void auth_verify(struct smtp_session *s, char *user, const char *pass, size_t pass_len)
{
	struct smtp_auth_job *j = XNEW(struct smtp_auth_job);

	j->s = s;
	j->loop = s->io->loop;
	j->srv = s->io->srv;
	j->conf = conf_ref(s->conf);
	j->db = s->auth_mech == SMTP_AUTH_MECH_PLAIN ? s->lim.auth.plain_db : s->lim.auth.login_db;
	j->peer = s->peer;
	snprintf(j->remote, sizeof(j->remote), "%s", s->peer_str);
	snprintf(j->local, sizeof(j->local), "%s", s->local_str);
	snprintf(j->conn_id, sizeof(j->conn_id), "%s", s->conn_id);
	j->mech = s->auth_mech;
	j->user = user;
	j->pass = xmalloc(pass_len + 1);
	memcpy(j->pass, pass, pass_len);
	j->pass[pass_len] = '\0';
	j->pass_len = pass_len;
	s->auth_job = j;
	s->auth_job_held = false;
	smtp_session_auth_end(s);
	smtp_session_wait(s);
	smtp_server_auth_check(s->io->srv, j);
}

/* auth_refuse - a response we cannot use: the exchange ends with reply (logged). */
static void auth_refuse(struct smtp_session *s, const char *line)
{
	smtp_session_auth_end(s);
	smtp_session_reject(s, "auth", line);
}

/*
 * auth_response - one response of the client (the initial response of
 * AUTH, or a line read in state AUTH): "*" cancels (501), bad base64 is
 * 501 5.5.2; PLAIN is checked at once, LOGIN asks for the password first.
 */
static void auth_response(struct smtp_session *s, const char *line, size_t len)
{
	struct str dec = STR_INIT;
	const char *user, *pass;

	if (len == 1 && line[0] == '*') {
		auth_refuse(s, "501 5.7.0 Authentication aborted");
		return;
	}
	if (len > SMTP_AUTH_LINE_MAX || !smtp_auth_b64_decode(line, len, &dec)) {
		auth_refuse(s, "501 5.5.2 Cannot decode response");
		goto out;
	}
	str_appendc(&dec, '\0');	/* a C string even when empty; len excludes it */
	dec.len--;
	if (s->auth_mech == SMTP_AUTH_MECH_PLAIN) {
		switch (smtp_auth_plain_split(dec.s, dec.len, &user, &pass)) {
		case SMTP_AUTH_PARSE_OK:
			auth_verify(s, xstrdup(user), pass, strlen(pass));
			break;
		case SMTP_AUTH_PARSE_AUTHZID:
			auth_refuse(s, "535 5.7.8 Authentication credentials invalid "
				    "(acting for another identity is not supported)");
			break;
		default:
			auth_refuse(s, "501 5.5.2 Malformed PLAIN response");
			break;
		}
		goto out;
	}
	if (s->auth_login_user == NULL) {
		if (dec.len == 0 ||
		    smtp_auth_check_part(dec.s, dec.len, SMTP_AUTH_USER_MAX) != SMTP_AUTH_PARSE_OK) {
			auth_refuse(s, "501 5.5.2 Malformed user name");
			goto out;
		}
		s->auth_login_user = xstrndup(dec.s, dec.len);
		smtp_session_reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		smtp_session_set_state(s, S_AUTH);
		goto out;
	}
	if (smtp_auth_check_part(dec.s, dec.len, SMTP_AUTH_PASS_MAX) != SMTP_AUTH_PARSE_OK) {
		auth_refuse(s, "501 5.5.2 Malformed password");
		goto out;
	}
	user = s->auth_login_user;
	s->auth_login_user = NULL;
	auth_verify(s, (char *)user, dec.s, dec.len);
out:
	if (dec.s)
		explicit_bzero(dec.s, dec.cap);
	str_free(&dec);
}

/* smtp_session_cmd_auth - AUTH <mechanism> [initial-response] (RFC 4954 4). */
void smtp_session_cmd_auth(struct smtp_session *s, const char *args)
{
	const char *mech = args, *p;
	unsigned bit;

	if (s->lim.auth.mechs == 0) {
		smtp_session_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->helo == NULL || !s->esmtp) {
		smtp_session_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user) {
		smtp_session_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->msg) {
		smtp_session_reply(s, "503 5.5.1 Error: AUTH not permitted during a mail transaction");
		return;
	}
	if (!s->tls && !s->lim.auth.allow_plaintext) {
		/* RFC 4954 6: the mechanisms need a TLS layer here (and EHLO did not offer them). */
		smtp_session_reject(s, "auth",
				    "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	while (*mech == ' ')
		mech++;
	for (p = mech; *p && *p != ' '; p++)
		;
	bit = smtp_auth_mech(mech, (size_t)(p - mech));
	if (p == mech) {
		smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (bit == 0 || !(s->lim.auth.mechs & bit)) {
		smtp_session_reject(s, "auth", "504 5.5.4 Unrecognized authentication type");
		return;
	}
	while (*p == ' ')
		p++;
	if (strchr(p, ' ') != NULL) {
		smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	s->auth_mech = bit;
	if (*p) {
		auth_response(s, p, strlen(p));
		return;
	}
	/* PLAIN's challenge is empty; LOGIN asks "Username:". */
	smtp_session_reply(s, bit == SMTP_AUTH_MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
	smtp_session_set_state(s, S_AUTH);
}

/* auth_finish - the check is over (and the tarpit's delay, if any): answer the client. */
static void auth_finish(struct smtp_session *s)
{
	struct smtp_auth_job *j = s->auth_job;
	const char *mech = auth_mech_name(j->mech);
	struct str text = STR_INIT;
	bool log = j->mech == SMTP_AUTH_MECH_PLAIN ? s->lim.auth.plain_log : s->lim.auth.login_log;

	s->auth_job = NULL;
	s->auth_job_held = false;
	smtp_session_set_state(s, S_CMD);
	switch (j->outcome) {
	case SMTP_AUTH_OUT_OK:
		s->auth_user = xstrdup(j->user);
		/* Momentum's names and the daemon's own; an authenticated client may relay. */
		vctx_set(s->conn_vctx, IMP_VCTX_AUTH_USER, s->auth_user);
		vctx_set(s->conn_vctx, "auth_user", s->auth_user);
		vctx_set(s->conn_vctx, "auth_name", mech);
		vctx_set(s->conn_vctx, IMP_VCTX_CAN_RELAY, "1");
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
		if (log) {
			smtp_auth_log_user(&text, j->user);
			log_panic("%s auth ok mech=%s user=\"%s\" client=%s", s->conn_id, mech, text.s,
				  s->peer_str);
		}
		break;
	case SMTP_AUTH_OUT_FAIL:
		/* The scheduler wrote the rejectlog line when it counted the failure. */
		smtp_session_reply(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case SMTP_AUTH_OUT_BLOCKED:
		smtp_session_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
				   s->hostname);
		smtp_session_close_now(s);
		break;
	}
	str_free(&text);
	smtp_auth_job_free(j);
	if (s->io->shutting_down && s->state != S_CLOSING) {
		/* Shutdown began while we checked: the session is idle now, like the others it closed. */
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
		smtp_session_close_now(s);
	}
	smtp_session_wait_over(s);
}

/*
 * auth_drop - the session left AUTH_WAIT without us (shutdown closed it):
 * the answer has nobody to go to.
 */
static void auth_drop(struct smtp_session *s)
{
	smtp_auth_job_free(s->auth_job);
	s->auth_job = NULL;
	s->auth_job_held = false;
}

/* on_auth_timer - the tarpit's delay is over. */
static void on_auth_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state != S_AUTH_WAIT)
		auth_drop(s);
	else
		auth_finish(s);
}

void smtp_session_on_auth_done(void *arg)
{
	struct smtp_auth_job *j = arg;
	struct smtp_session *s = j->s;

	if (s == NULL) {
		smtp_auth_job_free(j);	/* the client left while we checked */
		return;
	}
	if (s->state != S_AUTH_WAIT) {
		auth_drop(s);		/* closing (shutdown): no answer any more */
		return;
	}
	if (j->outcome == SMTP_AUTH_OUT_FAIL && j->delay_ms > 0) {
		struct timeval tv = ms_timeval(j->delay_ms);

		if (s->auth_timer == NULL)
			s->auth_timer = evtimer_new(loop_base(s->io->loop), on_auth_timer, s);
		s->auth_job_held = true;
		evtimer_add(s->auth_timer, &tv);
		return;
	}
	auth_finish(s);
}

/*
 * smtp_session_auth_trace - with IMPETUS_TRACE=smtp, each command line in the
 * paniclog, AUTH's credentials masked and response lines not shown.
 */
void smtp_session_auth_trace(struct smtp_session *s, const char *line, size_t len)
{
	struct str t = STR_INIT;

	if (s->state == S_AUTH)
		str_appends(&t, "****");
	else
		smtp_auth_mask_line(line, len > 200 ? 200 : len, &t);
	log_panic("%s smtp < %s", s->conn_id, t.s);
	str_free(&t);
}

void smtp_session_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	if (smtp_line_is_clean(line, len))
		auth_response(s, line, len);
	else
		auth_refuse(s, "501 5.5.2 Cannot decode response");
}

void smtp_session_auth_free(struct smtp_session *s)
{
	/* A check in flight outlives the session; one held for the tarpit is ours. */
	if (s->auth_job && s->auth_job_held)
		smtp_auth_job_free(s->auth_job);
	else if (s->auth_job)
		s->auth_job->s = NULL;
	s->auth_job = NULL;
	if (s->auth_timer)
		event_free(s->auth_timer);
	s->auth_timer = NULL;
	auth_clear(s);		/* not auth_end: the session is going, its state with it */
	free(s->auth_user);
	s->auth_user = NULL;
}
