/*
 * smtp_server_int.h - what the server manager and its sessions share
 *
 * Private to src/smtp/smtp_server*.c. The manager (scheduler thread)
 * creates one smtp_io per I/O loop and one smtp_listener per bound
 * Listen stanza (re-made on reload). Sessions read their smtp_io and
 * change only its session list, which its own loop owns; they never read
 * an smtp_listener (struct smtp_accept carries what they need of it).
 */
#ifndef IMPETUS_SMTP_SMTP_SERVER_INT_H
#define IMPETUS_SMTP_SMTP_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct conf;
struct conf_listener;
struct loop;
struct pool;
struct spool;
struct smtp_server;
struct smtp_session;
struct imp_session;
struct imp_resume;
struct envelope;

/*
 * One Listen stanza's socket. Owned by the scheduler thread, which binds
 * it, swaps its certificate and closes it on a reload (smtp_server.c,
 * "reloading listeners"). Sessions never point at it: a session gets its
 * own copy of the address and index and its own reference to the TLS
 * context when it is accepted, so a listener can go while its sessions
 * finish.
 */
struct smtp_listener {
	struct smtp_server *srv;
	size_t index;			/* position in the configuration */
	char address[80];		/* as configured, "ip:port" */
	struct evconnlistener *evl;	/* scheduler thread */
	struct event *resume;		/* re-enables evl after an accept back-off */
	SSL_CTX *tls;			/* NULL when no certificate */
	/* The bound address when it is one (not a wildcard): every accepted socket's local address. */
	struct sockaddr_storage local;
	socklen_t local_len;		/* 0: a wildcard, ask each socket (getsockname) */
};

/* Per-I/O-loop state, owned by that loop's thread. */
struct smtp_io {
	struct smtp_server *srv;
	struct loop *loop;
	struct smtp_session *sessions;	/* doubly linked, this loop's sessions */
	struct imp_resume *tokens;	/* suspensions not resumed yet (imp_session_suspend) */
	bool shutting_down;
};

/* Handed from the scheduler to an I/O loop for a new connection. */
struct smtp_accept {
	struct smtp_io *io;
	size_t listener_index;		/* the listener's, at accept time */
	char listener_address[80];
	SSL_CTX *tls;			/* a reference (SSL_CTX_up_ref) or NULL; the session's now */
	struct conf *conf;		/* a reference for the session */
	int fd;
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	socklen_t peer_len;
	socklen_t local_len;
};

/*
 * One AUTH verification on its way (docs/smtp-server.md "Authentication").
 * The session fills it and posts it to the scheduler (SMTP_AUTH_CHECK):
 * an address over its failure limit is answered at once, else the job
 * goes to the CPU pool, where crypt runs, then back to the scheduler
 * (SMTP_AUTH_VERIFIED), which counts a failure in the tarpit and sets
 * the delay, then to the session's loop (SMTP_AUTH_DONE). Each hop hands
 * the whole job over: only the thread holding it touches it, except s,
 * which only the session's loop reads or writes (NULL once the session
 * is gone: the job is then only freed). pass is wiped when it is freed.
 */
enum smtp_auth_outcome {
	SMTP_AUTH_OUT_OK,		/* 235 */
	SMTP_AUTH_OUT_FAIL,		/* 535 after delay_ms */
	SMTP_AUTH_OUT_BLOCKED,		/* 421 and close: the address used up Auth_Failure_Limit */
};

struct smtp_auth_job {
	struct smtp_session *s;		/* the session's loop only */
	struct loop *loop;		/* the session's */
	struct smtp_server *srv;
	struct conf *conf;		/* a reference: keeps db alive */
	const struct passwd_db *db;
	struct sockaddr_storage peer;
	char remote[80], local[80];	/* "ip:port" for the rejectlog */
	char conn_id[40];
	unsigned mech;			/* SMTP_AUTH_MECH_* */
	char *user;			/* heap */
	char *pass;			/* heap, wiped on free */
	size_t pass_len;
	/* answers */
	enum smtp_auth_outcome outcome;
	bool no_user;			/* FAIL: the user does not exist (not told to the client) */
	int64_t delay_ms;
};

/* smtp_auth_job_free - wipe the password, drop the reference. Any thread. */
void smtp_auth_job_free(struct smtp_auth_job *j);

/* Manager functions the sessions call (any thread: they post). */
struct spool *smtp_server_spool(struct smtp_server *srv);
struct pool *smtp_server_io_pool(struct smtp_server *srv);
void smtp_server_session_closed(struct smtp_server *srv, const struct sockaddr_storage *peer);
void smtp_server_deliver(struct smtp_server *srv, struct envelope *msg);
/*
 * smtp_server_log_reject - a rejectlog line, subject to the per-client-IP
 * budget (Rejectlog_Throttle_Per_IP) kept on the scheduler. Any thread:
 * the line is copied and posted; the per-connection limit is the caller's.
 */
void smtp_server_log_reject(struct smtp_server *srv, const struct sockaddr_storage *peer,
			    const char *remote, const char *local, const char *conn_id,
			    const char *phase, const char *text);
/*
 * smtp_server_count_reject - one more rejection for the summary's count,
 * and for GET /metrics by protocol (esmtp: the client said EHLO). Any
 * thread (atomic).
 */
void smtp_server_count_reject(struct smtp_server *srv, bool esmtp);
/*
 * smtp_server_observe_250 - a message's time from the end of its data to
 * its 250 queued for sending, in microseconds. Any I/O loop: lock-free.
 */
void smtp_server_observe_250(struct smtp_server *srv, int64_t us);
/* smtp_server_auth_check - hand an AUTH job to the scheduler (SMTP_AUTH_CHECK). Any thread. */
void smtp_server_auth_check(struct smtp_server *srv, struct smtp_auth_job *j);
/* smtp_listener_conf - the Listen stanza of address (index: where it was) in conf; NULL when gone. */
const struct conf_listener *smtp_listener_conf(const struct conf *conf, size_t index,
					       const char *address);

/* smtp_session_trace_init - read IMPETUS_TRACE; before any loop runs. */
void smtp_session_trace_init(void);

/*
 * smtp_session_tokens_free - free the suspension tokens never resumed
 * (a module that did not answer before the daemon stopped). Only after
 * io's loop has ended: a resume posted later would find freed memory,
 * which the API forbids (fini cancels what the instance started).
 */
void smtp_session_tokens_free(struct smtp_io *io);

/* What the built-in subscribers (smtp_policy.c) read of a session, on its loop. */
const struct conf *smtp_session_conf_of(const struct imp_session *is);
const struct conf_listener *smtp_session_listener_conf_of(const struct imp_session *is);

/* Session functions the manager calls, on the session's loop. */
void smtp_session_start(void *accept);		/* MSGS_SMTP_SESSION_START: struct smtp_accept * */
void smtp_session_shutdown_io(void *io);	/* MSGS_SMTP_SHUTDOWN_IO: struct smtp_io * */
void smtp_session_close_all(void *io);		/* MSGS_SMTP_CLOSE_ALL: struct smtp_io * */
void smtp_session_on_resume(void *token);	/* MSGS_SMTP_RESUME: struct imp_resume * */
void smtp_session_on_signed(void *job);		/* MSGS_SMTP_SIGNED: struct sign_job * */
void smtp_session_on_auth_done(void *job);	/* MSGS_SMTP_AUTH_DONE: struct smtp_auth_job * */

#endif
