/*
 * smtp_server_int.h - what the server manager and its sessions share
 *
 * Private to src/smtp/smtp_server*.c and smtp_listen.c. The manager
 * (scheduler thread) creates one smtp_io per I/O loop and one
 * smtp_listener per bound Listen stanza (re-made on reload); each loop
 * accepts on its own socket of every listener. Sessions read their
 * smtp_io and change only its session list, which its own loop owns;
 * they never read an smtp_listener (struct smtp_accept carries what they
 * need of it).
 */
#ifndef IMPETUS_SMTP_SMTP_SERVER_INT_H
#define IMPETUS_SMTP_SMTP_SERVER_INT_H

#include <stdatomic.h>
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
 * One Listen stanza. The scheduler binds it, swaps its certificate and
 * drops it on a reload (smtp_server.c, "Reloading listeners"); each I/O
 * loop owns one socket of it (smtp_listen.c), holds a reference, and
 * reads it when it accepts: the fixed fields freely, the others under
 * the server's mutex. Sessions never point at it: a session gets its own copy of
 * the address and index and its own reference to the TLS context when it
 * is accepted, so a listener can go while its sessions finish. Freed by
 * whoever drops the last reference (smtp_listener_unref).
 */
struct smtp_listener {
	struct smtp_server *srv;
	atomic_uint refs;		/* the scheduler's list, and each loop's socket */
	/* Under the server's mutex (a reload changes them while loops accept): */
	size_t index;			/* position in the configuration */
	SSL_CTX *tls;			/* NULL when no certificate */
	bool removed;			/* a reload dropped it; the loops are closing its sockets */
	/* Fixed once bound: */
	char address[80];		/* as configured, "ip:port" */
	/* The bound address when it is one (not a wildcard): every accepted socket's local address. */
	struct sockaddr_storage local;
	socklen_t local_len;		/* 0: a wildcard, ask each socket (getsockname) */
};

struct smtp_io_listen;

/* Per-I/O-loop state, owned by that loop's thread (before it runs: by the main thread). */
struct smtp_io {
	struct smtp_server *srv;
	struct loop *loop;
	struct smtp_session *sessions;	/* doubly linked, this loop's sessions */
	struct imp_resume *tokens;	/* suspensions not resumed yet (imp_session_suspend) */
	struct smtp_io_listen *listens;	/* this loop's listening sockets (smtp_listen.c) */
	int spare_fd;			/* reserve descriptor for EMFILE; -1 while given up */
	bool shutting_down;
};

/* What a new session needs of its listener and admission (smtp_server_admit). */
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
/* smtp_server_session_closed - a session's socket is about to close: count it out. Its loop. */
void smtp_server_session_closed(struct smtp_server *srv, const struct sockaddr_storage *peer);
/*
 * smtp_server_admit - on the loop that accepted fd: count the connection
 * in and return what its session starts from, or refuse it (421 on the
 * socket, closed, a rejectlog line) and return NULL. Concurrency and
 * Max_Connections_Per_IP are checked and counted under one lock, so the
 * loops never admit past a limit together.
 */
struct smtp_accept *smtp_server_admit(struct smtp_server *srv, struct smtp_listener *l,
				      struct smtp_io *io, int fd,
				      const struct sockaddr_storage *peer, socklen_t peer_len);
/* smtp_server_accept_failed - count an accept failure; a paniclog line now and then. Any loop. */
void smtp_server_accept_failed(struct smtp_server *srv, const char *address, int err,
			       uint64_t refused, int paused_ms);
/* smtp_server_hostname - the configured hostname, copied (any thread). */
void smtp_server_hostname(struct smtp_server *srv, char *buf, size_t size);
/* smtp_server_unlistened - a loop closed its socket of a removed listener (posts to the scheduler). */
void smtp_server_unlistened(struct smtp_server *srv);
/* smtp_listener_unref - drop a reference; the last one frees l. Any thread. */
void smtp_listener_unref(struct smtp_listener *l);

/* The listening sockets (smtp_listen.c). */
struct str;
/*
 * smtp_listen_bind - n sockets on l->address sharing the port
 * (SO_REUSEPORT), one per I/O loop; sets l->local. probe: first make
 * sure no other socket holds the address. 0, or -errno with err.
 */
int smtp_listen_bind(struct smtp_listener *l, size_t n, int *fds, bool probe, struct str *err);
/* smtp_listen_attach - io's loop (or the main thread before it runs) takes fd and a reference to l. */
void smtp_listen_attach(struct smtp_io *io, struct smtp_listener *l, int fd);
/* smtp_listen_post_attach / _detach - the same, and its undoing, posted from the scheduler. */
void smtp_listen_post_attach(struct smtp_io *io, struct smtp_listener *l, int fd);
void smtp_listen_post_detach(struct smtp_io *io, struct smtp_listener *l);
/* smtp_listen_detach_all - io's loop closes every socket it listens on (shutdown, free). */
void smtp_listen_detach_all(struct smtp_io *io);
/* smtp_listen_refuse - answer 421 on a fresh socket and close it. */
void smtp_listen_refuse(int fd, const char *ext, const char *hostname, const char *why);
void smtp_listen_on_attach(void *msg);		/* MSGS_SMTP_LISTEN */
void smtp_listen_on_detach(void *msg);		/* MSGS_SMTP_UNLISTEN; answered by MSGS_SMTP_UNLISTENED */
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
void smtp_session_start(struct smtp_accept *acc);	/* on the loop that accepted it */
void smtp_session_shutdown_io(void *io);	/* MSGS_SMTP_SHUTDOWN_IO: struct smtp_io * */
void smtp_session_close_all(void *io);		/* MSGS_SMTP_CLOSE_ALL: struct smtp_io * */
void smtp_session_on_resume(void *token);	/* MSGS_SMTP_RESUME: struct imp_resume * */
void smtp_session_on_signed(void *job);		/* MSGS_SMTP_SIGNED: struct sign_job * */
void smtp_session_on_auth_done(void *job);	/* MSGS_SMTP_AUTH_DONE: struct smtp_auth_job * */

#endif
