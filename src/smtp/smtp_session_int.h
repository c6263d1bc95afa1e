/*
 * smtp_session_int.h - one inbound session's state, shared by the files
 * that run it
 *
 * Private to src/smtp/: smtp_server_session.c runs the state machine
 * (commands, phases, reception); smtp_session_auth.c its AUTH command;
 * smtp_session_api.c answers the module API's questions about a session
 * (impetus/session.h). Everything here
 * belongs to the session's I/O loop thread, except what struct
 * imp_resume says about itself.
 */
#ifndef IMPETUS_SMTP_SMTP_SESSION_INT_H
#define IMPETUS_SMTP_SMTP_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <impetus/hooks.h>
#include <impetus/session.h>

#include "config/config.h"
#include "core/id.h"
#include "core/str.h"
#include "message/mime_fix.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_server_int.h"

enum session_state {
	S_CMD,
	S_DATA,
	S_BDAT,
	S_SPOOL,
	S_STARTTLS,
	S_HOOK,
	S_AUTH,		/* AUTH: reading the client's response to a 334 */
	S_AUTH_WAIT,	/* AUTH: the password is being checked, or the 535 held back */
	S_CLOSING,
};

/* Settings resolved once per session from the listener's configuration. */
struct session_limits {
	int64_t max_size;		/* 0 = none */
	int64_t max_rcpts;
	int64_t max_cmd;		/* bytes incl. CRLF */
	int64_t max_line;		/* RFC2822_Max_Line_Length: 0 ignore, -1 fix, N refuse over N */
	int lone_lf_headers;		/* enum conf_rfc2822_mode */
	int lone_lf_body;		/* enum conf_rfc2822_mode */
	int64_t cmd_timeout;
	int64_t data_timeout;
	int64_t min_data_rate;		/* bytes/s; 0 = no DATA/BDAT phase deadline */
	int64_t error_limit;		/* 0 = none */
	int64_t reject_log_limit;	/* rejectlog lines per connection; 0 = none */
	bool reject_ip_budget;		/* Rejectlog_Throttle_Per_IP is set */
	int messageid;			/* enum conf_messageid_header */
	int date_header;		/* enum conf_date_header */
	int missing_headers;		/* enum conf_missing_headers */
	bool trace_headers;		/* RFC2822_Trace_Headers */
	struct conf_auth auth;		/* SMTP_Extensions AUTH, password files, Auth_Allow_Plaintext */
};

/*
 * A suspension (impetus/hooks.h imp_session_suspend). io and the reply
 * fields are written before the token is posted (the post orders them
 * for the loop); s and the list links belong to io's loop. s is NULL once
 * the session is gone or the subscriber answered without waiting.
 */
struct imp_resume {
	struct smtp_io *io;
	struct smtp_session *s;
	struct imp_resume *prev, *next;	/* io->tokens */
	enum imp_verdict verdict;
	struct imp_reply reply;
};

/* The validation phase in progress. */
struct phase_run {
	enum imp_phase phase;
	const struct api_hook *hook;	/* the generation's list; NULL: no subscriber */
	size_t next;			/* the next subscriber to call */
	const struct imp_instance *inst; /* the subscriber that answered last */
	bool in_sub;			/* a subscriber is running: suspend allowed */
	struct imp_resume *token;	/* the outstanding suspension */
	bool bdat;			/* the data phase is for a first BDAT, not DATA */
};

struct smtp_session {
	struct smtp_session *prev, *next;	/* smtp_io's list */
	struct smtp_io *io;
	char listener_address[80];	/* the listener it came in on, "ip:port" */
	SSL_CTX *tls_ctx;		/* that listener's certificate when accepted (a reference); NULL: no STARTTLS */
	const struct conf_listener *clistener;
	struct conf *conf;
	struct sockio *sock;		/* NULL for a zombie */
	int fd;
	enum session_state state;
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	socklen_t peer_len, local_len;
	char peer_ip[64];
	char peer_str[80];		/* "ip:port" / "[v6]:port" for logs */
	char local_str[80];
	impetus_id conn;
	char conn_id[ID_BUF_SIZE];
	const char *hostname;
	struct session_limits lim;
	bool tls;
	bool zombie;			/* client gone while the spool works */
	bool discarding;		/* skipping the rest of an over-long line */
	bool out_paused;		/* too much unsent output: not reading */

	/* the deadline of the current phase (command line, DATA, BDAT chunk) */
	struct event *deadline;
	int64_t phase_start_ms;
	uint64_t phase_bytes;		/* DATA/BDAT octets taken in this phase */

	/* Hard_Error_Limit and Rejectlog_Connection_Limit */
	uint32_t errors;		/* error replies since errors_mark messages */
	uint64_t errors_mark;
	uint32_t rejects_logged;
	uint64_t rejects_suppressed;

	/* what the client told us */
	char *helo;
	bool esmtp;

	/* SMTP AUTH (docs/smtp-server.md "Authentication") */
	char *auth_user;		/* the identity once 235 was sent; NULL before */
	unsigned auth_mech;		/* SMTP_AUTH_MECH_* of the exchange in progress */
	char *auth_login_user;		/* LOGIN: the user name, while the password is asked */
	struct smtp_auth_job *auth_job;	/* the verification in flight or held (auth_job_held) */
	bool auth_job_held;		/* the job is back and waits for auth_timer (the tarpit) */
	struct event *auth_timer;	/* holds back a 535; made on first use */

	/* the transaction */
	struct envelope *msg;		/* non-NULL between MAIL and the end */
	size_t nrcpt_alloc;
	uint32_t rcpt_refused;
	bool bdat_used;
	bool bdat_failed;		/* a BDAT in this transaction was refused */
	bool bdat_last;
	uint64_t bdat_remaining;
	uint64_t bdat_chunk_size;
	bool bdat_discard;		/* chunk read only to be thrown away */
	struct smtp_data_scanner scan;
	size_t header_len;		/* our Received header at the body start */
	struct smtp_spill *spill;	/* set once the message passed SPILL_AT */
	struct str stage;		/* bytes past the in-memory part, not yet spilled */
	int64_t data_end_us;		/* histo_now_us() at the end of DATA/BDAT LAST (time to 250) */
	bool completing;		/* data is all in; waiting for the last spill write */
	bool fixing;			/* RFC2822_Max_Line_Length = fix: fix is live */
	struct mime_fix fix;		/* breaks long lines as the MIME structure allows */
	struct str fixbuf;		/* scanner output on its way to the fixer */
	int64_t declared_size;
	uint64_t messages;		/* accepted on this connection */

	/* validation hooks */
	struct phase_run ph;
	struct vctx *conn_vctx;		/* IMP_VCTX_CONN */
	struct smtp_rcpt_args rcpt;	/* the RCPT being validated */
	const char *cur_rcpt;		/* imp_session_rcpt: rcptto, data_spool_each_rcpt */
	char *bdat_refusal;		/* the data phase refused a BDAT: answered at the chunk end */
	struct imp_message view;	/* imp_session_message during the reception phases */
	bool view_live;
	size_t rx_rcpt;			/* data_spool_each_rcpt: the recipient at hand */
	bool *rx_dropped;		/* per recipient: refused by data_spool_each_rcpt */
	struct str rx_refusal;		/* the last of those refusals' reply */
};

/*
 * What smtp_server_session.c lends the other session files (its own
 * reply, reject, state and close; the same rules as inside it).
 */
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* smtp_session_reject - reply text and write it to the rejectlog under phase. */
void smtp_session_reject(struct smtp_session *s, const char *phase, const char *text);
void smtp_session_set_state(struct smtp_session *s, enum session_state st);
/* smtp_session_wait - enter AUTH_WAIT: commands wait in the input, no deadlines. */
void smtp_session_wait(struct smtp_session *s);
/* smtp_session_wait_over - after a wait: fresh deadlines, take the waiting input. */
void smtp_session_wait_over(struct smtp_session *s);
/* smtp_session_close_now - forget the transaction, send what is queued, close. */
void smtp_session_close_now(struct smtp_session *s);

/* SMTP AUTH (smtp_session_auth.c); on the session's loop. */
/* smtp_session_auth_offered - whether EHLO lists AUTH now (TLS or Auth_Allow_Plaintext). */
bool smtp_session_auth_offered(const struct smtp_session *s);
/* smtp_session_cmd_auth - the AUTH command. */
void smtp_session_cmd_auth(struct smtp_session *s, const char *args);
/* smtp_session_auth_line - a line read in state AUTH: the client's response. */
void smtp_session_auth_line(struct smtp_session *s, const char *line, size_t len);
/* smtp_session_auth_end - end the exchange in progress (back to CMD from AUTH). */
void smtp_session_auth_end(struct smtp_session *s);
/* smtp_session_auth_forget - drop the identity (STARTTLS). */
void smtp_session_auth_forget(struct smtp_session *s);
/* smtp_session_auth_free - at session_free: detach or free the job, free the rest. */
void smtp_session_auth_free(struct smtp_session *s);
/* smtp_session_auth_trace - the trace line of a command line, credentials masked. */
void smtp_session_auth_trace(struct smtp_session *s, const char *line, size_t len);

#endif
