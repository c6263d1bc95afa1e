/*
 * smtp_client_int.h - what the outbound SMTP manager and its sessions share
 *
 * Private to src/smtp/smtp_client*.c (and the unit test). Three parts:
 *
 *   - the pure protocol helpers: the reply parser, the MAIL/RCPT command
 *     builders and the body writer (dot-stuffing, line-end repair). They
 *     keep no state beyond what the caller passes and are safe anywhere.
 *   - struct smtp_client, the handle the scheduler holds. Its fields are
 *     split by owner (see the comments): fixed at open, the one atomic
 *     counter any thread touches, the scheduler's part, the I/O loop's part.
 *   - the calls between the manager (smtp_client.c) and the session state
 *     machine (smtp_client_session.c).
 */
#ifndef IMPETUS_SMTP_SMTP_CLIENT_INT_H
#define IMPETUS_SMTP_SMTP_CLIENT_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/id.h"
#include "core/str.h"
#include "smtp/smtp_client.h"

struct evbuffer;
struct smtpc_session;

/* Limits on what a server may send us (RFC 5321 4.5.3.1.5 says 512; be lenient). */
#define SMTPC_LINE_MAX		4096	/* one reply line, without CRLF */
#define SMTPC_REPLY_LINES_MAX	128	/* lines in one multi-line reply */
#define SMTPC_RESPONSE_MAX	1024	/* joined reply text kept for the logs */

/* Defaults for params fields left 0. */
#define SMTPC_DEFAULT_CONNECT_TIMEOUT	300
#define SMTPC_DEFAULT_IDLE_TIMEOUT	5
#define SMTPC_DEFAULT_REPLY_TIMEOUT	300
#define SMTPC_DEFAULT_DATA_TIMEOUT	600
#define SMTPC_QUIT_WAIT			5	/* seconds to wait for 221 */

/* ------------------------------------------------------------------ */
/* replies                                                             */

/*
 * One (possibly multi-line) server reply being assembled. text is the
 * whole reply on one line for logs and bounces ("550 5.1.1 user unknown";
 * the text of later lines appended after a space, a repeated enhanced code
 * dropped; control bytes shown as '?'); lines[] holds each line's text
 * after "ddd-" / "ddd " (the EHLO keywords).
 */
struct smtpc_reply {
	int code;			/* 0 until the first line */
	char ext[16];			/* enhanced status code, "" when none */
	struct str text;
	char **lines;
	size_t nlines, linecap;
	bool complete;
};

void smtpc_reply_init(struct smtpc_reply *r);
/* smtpc_reply_reset - forget the reply, ready for the next (keeps memory). */
void smtpc_reply_reset(struct smtpc_reply *r);
void smtpc_reply_free(struct smtpc_reply *r);
/*
 * smtpc_reply_add_line - feed one line (CRLF removed). Returns 1 when the
 * reply is complete, 0 when more lines follow, -1 when the line is
 * malformed: not "ddd", "ddd text" or "ddd-text" with a valid code, a code
 * that differs from the first line's, a line over SMTPC_LINE_MAX, or more
 * than SMTPC_REPLY_LINES_MAX lines.
 */
int smtpc_reply_add_line(struct smtpc_reply *r, const char *line, size_t len);

/* ------------------------------------------------------------------ */
/* commands                                                            */

/*
 * smtpc_format_mail - append "MAIL FROM:<sender>" with the parameters the
 * server's capabilities allow (SIZE=, BODY=8BITMIME, SMTPUTF8, RET=,
 * ENVID=) and CRLF. smtpc_format_rcpt - the same for "RCPT TO:<addr>"
 * (NOTIFY=, ORCPT= with DSN).
 */
void smtpc_format_mail(struct str *out, const struct smtp_batch *b, const struct smtp_caps *caps);
void smtpc_format_rcpt(struct str *out, const struct smtp_batch *b, size_t i,
		       const struct smtp_caps *caps);

/*
 * smtpc_params_run - the client_params hook (smtp_params.c): out holds a
 * command whose ESMTP parameters start at offset at (" KEY=VALUE ...",
 * as the format functions wrote them, no CRLF yet). The subscribers of
 * b->params_hook change them through struct imp_params; the parameters
 * are written again in their new order. rcpt_index is SIZE_MAX for MAIL.
 * I/O loop.
 */
void smtpc_params_run(struct str *out, size_t at, const struct smtp_batch *b,
		      size_t rcpt_index, const struct smtp_caps *caps);

/* ------------------------------------------------------------------ */
/* outbound AUTH (smtp_client_auth.c)                                  */

/*
 * One AUTH exchange (RFC 4954) for the credentials of the params: the
 * command, then one line per 334 the server sends. PLAIN (RFC 4616)
 * sends "\0user\0pass" as the initial response when the command fits in
 * SMTPC_AUTH_LINE_MAX, else after an empty 334; LOGIN answers the first
 * 334 with the user and the second with the password, whatever the
 * challenge text says (servers word it differently). Lines written here
 * carry secrets: callers wipe them (smtpc_wipe) once sent and never log
 * them.
 */
#define SMTPC_AUTH_LINE_MAX 512	/* RFC 4954 4: a command line, CRLF included */

struct smtpc_auth {
	uint8_t type;		/* enum smtp_auth_type */
	unsigned answered;	/* 334s answered so far */
	bool initial;		/* the PLAIN response went with the command */
};

/* smtpc_base64 - append the base64 of p[0..len) (no line breaks). */
void smtpc_base64(struct str *out, const void *p, size_t len);
/* smtpc_auth_start - append the AUTH command line (CRLF included) to out. */
void smtpc_auth_start(struct smtpc_auth *a, struct str *out, const struct smtp_client_params *p);
/*
 * smtpc_auth_next - append the answer to a 334 (CRLF included). Returns
 * 0, or -1 when the mechanism has nothing more to send (a protocol error
 * of the server: the caller gives the connection up).
 */
int smtpc_auth_next(struct smtpc_auth *a, struct str *out, const struct smtp_client_params *p);
/* smtpc_auth_name - "PLAIN" or "LOGIN". */
const char *smtpc_auth_name(uint8_t type);
/* smtpc_wipe - zero a string's bytes (secrets) and empty it. */
void smtpc_wipe(struct str *s);

/* ------------------------------------------------------------------ */
/* the body writer                                                     */

/*
 * Streams message bytes into the DATA encoding: a line that starts with
 * "." gets another ".", a bare CR or bare LF becomes CRLF, a line longer
 * than SMTPC_BODY_LINE_MAX octets on the wire (a stuffing dot counts) is broken
 * with CRLF SPACE, and the end adds a missing final CRLF and the ".\r\n"
 * terminator. Feed any split. So no peer ever gets a bare CR or LF (no
 * smuggling through us) nor a line over RFC 5321's 1000 octets with CRLF.
 */
#define SMTPC_BODY_LINE_MAX 998	/* RFC 5321 4.5.3.1.6, CRLF excluded */

struct smtpc_body {
	bool at_bol;		/* the next byte starts a line */
	bool cr;		/* the last byte was a CR not yet matched */
	size_t col;		/* octets on the current wire line */
	uint64_t bytes;		/* bytes written to out so far */
};

void smtpc_body_init(struct smtpc_body *w);
void smtpc_body_write(struct smtpc_body *w, struct evbuffer *out, const char *p, size_t len);
/* smtpc_body_end - close the last line and add the terminator. */
void smtpc_body_end(struct smtpc_body *w, struct evbuffer *out);

/* ------------------------------------------------------------------ */
/* the handle                                                          */

struct smtp_client {
	/* fixed by smtp_client_open, read-only afterwards: any thread */
	struct loop *io_loop;
	struct loop *sched;
	struct spool *sp;
	struct smtp_client_params *params;	/* owned */
	struct smtp_client_events ev;
	impetus_id conn;
	char conn_id[ID_BUF_SIZE];

	/*
	 * Posts made to the I/O loop (the first batch, each send, each close)
	 * whose answer has not yet run on the scheduler. `closed` waits for
	 * zero, so every batch_done runs before it and no late post finds
	 * the handle freed. Any thread, atomically.
	 */
	atomic_uint inflight;

	/* scheduler thread */
	bool closed_pending;		/* closed arrived while inflight > 0 */
	bool closed_connected;
	char *closed_reason;

	/* I/O loop thread */
	struct smtp_batch *first;	/* until the session takes it */
	struct smtpc_session *sess;	/* NULL before start and after the end */
	bool io_done;			/* the session ended: answer posts directly */
};

/* Session side, on c->io_loop (smtp_client_session.c). */
void smtpc_session_start(struct smtp_client *c);
void smtpc_session_send(struct smtp_client *c, struct smtp_batch *b);
void smtpc_session_close(struct smtp_client *c);
void smtpc_trace_init(void);

/* Manager side: post results to the scheduler (smtp_client.c). I/O loop. */
void smtpc_post_batch_done(struct smtp_client *c, struct smtp_batch *b, bool more);
void smtpc_post_closed(struct smtp_client *c, bool connected, const char *reason);
void smtpc_post_close_ack(struct smtp_client *c);

/* smtpc_tls_ctx - the process's client SSL_CTX (made once), or NULL. */
struct ssl_ctx_st *smtpc_tls_ctx(void);

#endif
