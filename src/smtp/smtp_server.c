/*
 * smtp_server.c - ESMTP listeners, connection limits, graceful shutdown
 *
 * Runs on the scheduler thread, except admission. The I/O loops accept
 * (smtp_listen.c: a socket per listener and loop) and call
 * smtp_server_admit, which checks Concurrency and Max_Connections_Per_IP
 * and counts the connection in under the server's mutex (mu); a session
 * counts itself out the same way before its socket closes. The mutex
 * guards exactly: the connection counts (sessions, conns), shutting_down,
 * conf (the scheduler writes it under mu, and reads it freely), each
 * listener's index and TLS context, and the accept failure counters. It
 * is held for a few map operations and never across a system call; the
 * loops take it once per connection, not per command.
 *
 * A refused connection gets its 421 with one non-blocking send on the
 * fresh socket (the kernel buffer always has room for one line) and is
 * closed, so no session is ever built for it.
 *
 * Accept failures (smtp_listen.c pauses the socket and answers waiting
 * clients when out of descriptors) are counted here: the paniclog gets at
 * most one line per ACCEPT_LOG_INTERVAL_MS with the counts, and the tick
 * reports the recovery once accepts work again.
 *
 * The rejectlog budget per client IP (Rejectlog_Throttle_Per_IP) is a
 * token bucket per address, owned here on the scheduler: sessions on any
 * loop post their (already per-connection limited) lines through
 * smtp_server_log_reject. Lines over budget are counted; the tick writes
 * one summary line per address and forgets addresses whose bucket is full
 * again. The table is capped at REJECT_RATE_MAX_ENTRIES; past that, new
 * addresses share one bucket, so many addresses cannot buy many budgets.
 *
 * Both per-address tables, the connection counts (conns) and the
 * rejectlog budgets (rates), are maps of core/ipmap.h keyed by the
 * 16-byte address (sockaddr_ip16). Two maps of one implementation rather
 * than one entry holding both, because the entries live by different
 * rules: a count goes when the address's last session closes, a budget
 * when its bucket is full again at a tick, and only budgets are capped.
 *
 * Failed SMTP AUTH attempts per client address (the tarpit,
 * smtp_tarpit.h) are a third table owned here, for the same reason as
 * the connection counts: one owner sees every connection of an address.
 * An AUTH job passes through here twice (SMTP_AUTH_CHECK before crypt
 * runs on the CPU pool, SMTP_AUTH_VERIFIED after; smtp_server_int.h).
 *
 * A reload (smtp_server_set_conf after smtp_server_listen) binds the
 * Listen stanzas added, closes the removed ones and reads certificates
 * again ("Reloading listeners" below). A session takes a reference to
 * its listener's TLS context and copies its address when it is
 * accepted, so a listener is freed or given a new context at once,
 * whatever its sessions are doing.
 *
 * The tick (every SERVER_TICK_SECONDS on the scheduler): rejectlog
 * summaries and table sweep, the tarpit sweep, then the accept recovery
 * line.
 */
#include "smtp/smtp_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/histo.h"
#include "core/loop.h"
#include "core/ipmap.h"
#include "core/mem.h"
#include "core/sockaddr.h"
#include "core/passwd.h"
#include "core/pool.h"
#include "core/tls.h"
#include "api/api_runtime.h"
#include "log/log.h"
#include "msgs/msgs.h"
#include "smtp/smtp_auth.h"
#include "smtp/smtp_server_int.h"
#include "smtp/smtp_tarpit.h"

/* Per-client-address connection count (srv->conns), under srv->mu. */
struct ip_count {
	struct ipmap_node node;		/* key: the client address */
	uint32_t count;
};

/* Rejectlog budget of one client address (srv->rates, token bucket), on the scheduler. */
struct reject_rate {
	struct ipmap_node node;		/* key: the client address, or all 0xff for the rest */
	char ip[SOCKADDR_IP_TEXT_MAX];	/* for the summary line */
	double tokens;
	int64_t refill_ms;		/* when tokens was last brought up to date */
	uint64_t suppressed;		/* lines not written since the last summary */
};

#define REJECT_RATE_MAX_ENTRIES 65536
#define SERVER_TICK_SECONDS 10
#define ACCEPT_LOG_INTERVAL_MS 10000	/* at most one paniclog line per interval */

struct smtp_server {
	struct loop *scheduler;
	struct smtp_io *io;
	size_t nio;
	struct spool *spool;
	struct pool *io_pool;		/* large bodies stream to disk on it */
	smtp_message_fn on_message;
	void *ctx;
	pthread_mutex_t mu;		/* see the file header for what it guards */
	struct conf *conf;		/* generation for new sessions; written under mu */
	struct smtp_listener **listeners;	/* heap, one per bound Listen stanza */
	size_t nlisteners;
	bool listening;			/* smtp_server_listen ran: reloads rebind */
	unsigned unlisten_pending;	/* loops still to close a removed listener's socket */
	bool rebind_pending;		/* an address waits for them (listeners_bind_new) */
	uint32_t sessions;		/* open sessions, all loops; mu */
	/*
	 * Rejections counted by the sessions (smtp_server_count_reject), for
	 * the console's summary: the one field the I/O loops write, so an
	 * atomic (relaxed: a statistic orders nothing).
	 */
	atomic_uint_fast64_t rejected;
	atomic_uint_fast64_t rejected_esmtp;	/* of those, after EHLO (metrics' protocol label) */
	struct histo time_to_250;		/* microseconds; the I/O loops observe (core/histo.h) */
	struct ipmap conns;		/* struct ip_count by client address; mu */
	bool shutting_down;		/* mu */
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	struct event *grace_timer;
	struct event *tick;

	/* descriptor exhaustion and other accept failures; mu */
	bool accept_trouble;		/* accepts failed since the last recovery line */
	int64_t accept_error_ms;	/* last failed accept */
	int64_t accept_log_ms;		/* last paniclog line about it; 0 = none */
	uint64_t accept_errors;		/* failed accepts since that line */
	uint64_t accept_refused;	/* clients answered 421 since that line */

	/* rejectlog budget per client IP */
	struct ipmap rates;		/* struct reject_rate by client address */
	struct conf_throttle reject_throttle;	/* cached from the generation */

	struct smtp_tarpit *tarpit;	/* failed AUTH per client address */
};

/* now_ms - a monotonic clock in milliseconds. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * smtp_listener_conf - the Listen stanza of a socket in a configuration
 * generation, found by address: a reload may add, drop or reorder
 * stanzas. NULL when the stanza is gone (a session accepted before the
 * reload that closed its socket: ESMTP_Listener/global settings apply).
 */
const struct conf_listener *smtp_listener_conf(const struct conf *conf, size_t index,
					       const char *address)
{
	size_t n = conf_listener_count(conf);

	if (index < n && strcmp(conf_listener_address(conf_listener_at(conf, index)), address) == 0)
		return conf_listener_at(conf, index);
	for (size_t i = 0; i < n; i++)
		if (strcmp(conf_listener_address(conf_listener_at(conf, i)), address) == 0)
			return conf_listener_at(conf, i);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* per-IP counting                                                     */

/* ip_get - open sessions of the peer's address. */
static uint32_t ip_get(struct smtp_server *srv, const struct sockaddr_storage *ss)
{
	uint8_t key[IPMAP_KEY_LEN];

	sockaddr_ip16((const struct sockaddr *)ss, key);
	struct ipmap_node *n = ipmap_get(&srv->conns, key);
	return n ? IPMAP_ENTRY(n, struct ip_count, node)->count : 0;
}

/* ip_add - count a session of the peer's address in (+1) or out (-1). */
static void ip_add(struct smtp_server *srv, const struct sockaddr_storage *ss, int delta)
{
	uint8_t key[IPMAP_KEY_LEN];
	struct ip_count *e;

	sockaddr_ip16((const struct sockaddr *)ss, key);
	struct ipmap_node *n = ipmap_get(&srv->conns, key);
	if (n == NULL) {
		if (delta < 0)
			return;
		e = XNEW(struct ip_count);
		memcpy(e->node.addr, key, IPMAP_KEY_LEN);
		ipmap_insert(&srv->conns, &e->node);
	} else {
		e = IPMAP_ENTRY(n, struct ip_count, node);
	}
	e->count += delta;
	if (e->count == 0) {
		ipmap_remove(&srv->conns, &e->node);
		free(e);
	}
}

/* ------------------------------------------------------------------ */
/* rejectlog budget per client IP                                      */

/* rate_refill - bring a bucket's tokens up to now. */
static void rate_refill(const struct smtp_server *srv, struct reject_rate *r, int64_t now)
{
	const struct conf_throttle *t = &srv->reject_throttle;
	double cap = t->count;

	if (now > r->refill_ms && t->period > 0)
		r->tokens += (double)(now - r->refill_ms) * t->count / (1000.0 * t->period);
	if (r->tokens > cap)
		r->tokens = cap;
	r->refill_ms = now;
}

/* rate_entry - the bucket of an address, created full; the shared one past the cap. */
static struct reject_rate *rate_entry(struct smtp_server *srv, const struct sockaddr_storage *peer,
				      int64_t now)
{
	static const uint8_t overflow_key[IPMAP_KEY_LEN] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	uint8_t key[IPMAP_KEY_LEN];
	bool overflow = false;

	sockaddr_ip16((const struct sockaddr *)peer, key);
	for (;;) {
		struct ipmap_node *n = ipmap_get(&srv->rates, key);
		if (n)
			return IPMAP_ENTRY(n, struct reject_rate, node);
		if (ipmap_count(&srv->rates) >= REJECT_RATE_MAX_ENTRIES && !overflow) {
			memcpy(key, overflow_key, IPMAP_KEY_LEN);
			overflow = true;
			continue;
		}
		struct reject_rate *r = XNEW(struct reject_rate);
		memcpy(r->node.addr, key, IPMAP_KEY_LEN);
		if (overflow)
			snprintf(r->ip, sizeof(r->ip), "(other addresses)");
		else
			sockaddr_format((const struct sockaddr *)peer, r->ip, sizeof(r->ip), NULL, 0);
		r->tokens = srv->reject_throttle.count;
		r->refill_ms = now;
		ipmap_insert(&srv->rates, &r->node);
		return r;
	}
}

/* reject_log - write a rejectlog line if the client's address has budget left. Scheduler. */
static void reject_log(struct smtp_server *srv, const struct sockaddr_storage *peer,
		       const char *remote, const char *local, const char *conn_id,
		       const char *phase, const char *text)
{
	if (srv->reject_throttle.count > 0) {
		int64_t now = now_ms();
		struct reject_rate *r = rate_entry(srv, peer, now);

		rate_refill(srv, r, now);
		if (r->tokens < 1.0) {
			r->suppressed++;
			return;
		}
		r->tokens -= 1.0;
	}
	log_reject(srv->conf, remote, local, conn_id, phase, text);
}

struct rate_sweep_ctx {
	struct smtp_server *srv;
	int64_t now;
	bool all;
};

/* rate_sweep_one - one address: its summary line; true (freed) when forgotten. */
static bool rate_sweep_one(void *arg, struct ipmap_node *n)
{
	struct rate_sweep_ctx *c = arg;
	struct reject_rate *r = IPMAP_ENTRY(n, struct reject_rate, node);

	rate_refill(c->srv, r, c->now);
	if (r->suppressed > 0) {
		char text[96];
		snprintf(text, sizeof(text), "%llu further rejections from this address not logged",
			 (unsigned long long)r->suppressed);
		log_reject(c->srv->conf, r->ip, "", "", "throttle", text);
		r->suppressed = 0;
	}
	if (c->all || r->tokens >= c->srv->reject_throttle.count) {
		free(r);
		return true;
	}
	return false;
}

/* rate_sweep - summary lines for suppressed addresses; forget full buckets (all: every one). */
static void rate_sweep(struct smtp_server *srv, bool all)
{
	struct rate_sweep_ctx c = { srv, now_ms(), all };

	ipmap_sweep(&srv->rates, rate_sweep_one, &c);
}

struct reject_note {
	struct smtp_server *srv;
	struct sockaddr_storage peer;
	char remote[80];
	char local[80];
	char conn_id[40];
	char phase[24];
	char text[];
};

void smtp_server_count_reject(struct smtp_server *srv, bool esmtp)
{
	atomic_fetch_add_explicit(&srv->rejected, 1, memory_order_relaxed);
	if (esmtp)
		atomic_fetch_add_explicit(&srv->rejected_esmtp, 1, memory_order_relaxed);
}

void smtp_server_observe_250(struct smtp_server *srv, int64_t us)
{
	histo_observe(&srv->time_to_250, us > 0 ? (uint64_t)us : 0);
}

void smtp_server_get_metrics(const struct smtp_server *srv, struct smtp_server_metrics *out)
{
	uint64_t all = atomic_load_explicit(&srv->rejected, memory_order_relaxed);
	uint64_t esmtp = atomic_load_explicit(&srv->rejected_esmtp, memory_order_relaxed);

	/* esmtp is added after the total: read second, it may only lag, so clamp. */
	out->rejected_esmtp = esmtp < all ? esmtp : all;
	out->rejected_smtp = all - out->rejected_esmtp;
	histo_read(&srv->time_to_250, &out->time_to_250_us);
}

void smtp_server_get_stats(struct smtp_server *srv, struct smtp_server_stats *st)
{
	pthread_mutex_lock(&srv->mu);
	st->sessions = srv->sessions;
	pthread_mutex_unlock(&srv->mu);
	st->rejected = atomic_load_explicit(&srv->rejected, memory_order_relaxed);
}

/* smtp_server_on_reject_note - scheduler side of smtp_server_log_reject. */
void smtp_server_on_reject_note(void *arg)
{
	struct reject_note *n = arg;

	reject_log(n->srv, &n->peer, n->remote, n->local, n->conn_id, n->phase, n->text);
	free(n);
}

void smtp_server_log_reject(struct smtp_server *srv, const struct sockaddr_storage *peer,
			    const char *remote, const char *local, const char *conn_id,
			    const char *phase, const char *text)
{
	size_t tlen = strlen(text);
	struct reject_note *n = xmalloc(sizeof(*n) + tlen + 1);

	n->srv = srv;
	n->peer = *peer;
	snprintf(n->remote, sizeof(n->remote), "%s", remote);
	snprintf(n->local, sizeof(n->local), "%s", local);
	snprintf(n->conn_id, sizeof(n->conn_id), "%s", conn_id);
	snprintf(n->phase, sizeof(n->phase), "%s", phase);
	memcpy(n->text, text, tlen + 1);
	/* A log line: it rides the scheduler's next wake-up (no wake per refused connection). */
	msgs_post_lazy(srv->scheduler, MSGS_SMTP_REJECT_NOTE, n);
}

/* ------------------------------------------------------------------ */
/* AUTH: the tarpit's side of a verification                           */

void smtp_auth_job_free(struct smtp_auth_job *j)
{
	if (j == NULL)
		return;
	if (j->pass) {
		explicit_bzero(j->pass, j->pass_len);
		free(j->pass);
	}
	free(j->user);
	if (j->conf)
		conf_unref(j->conf);
	free(j);
}

/* auth_verify_run - CPU pool (or inline): crypt the password, then back to the scheduler. */
static void auth_verify_run(void *arg)
{
	struct smtp_auth_job *j = arg;
	enum passwd_result r = passwd_db_verify(j->db, j->user, j->pass, j->pass_len);

	/* The password is not needed any more: wipe it before the job travels on. */
	explicit_bzero(j->pass, j->pass_len);
	j->outcome = r == PASSWD_OK ? SMTP_AUTH_OUT_OK : SMTP_AUTH_OUT_FAIL;
	j->no_user = r == PASSWD_NO_USER;
	msgs_post(j->srv->scheduler, MSGS_SMTP_AUTH_VERIFIED, j);
}

void smtp_server_auth_check(struct smtp_server *srv, struct smtp_auth_job *j)
{
	msgs_post(srv->scheduler, MSGS_SMTP_AUTH_CHECK, j);
}

/*
 * auth_log - the rejectlog line of a failed or refused AUTH (scheduler,
 * through the per-IP budget): mechanism, user and why, never the password.
 * Written here, when the failure is counted, so a client that leaves
 * before its 535 is logged all the same.
 */
static void auth_log(struct smtp_auth_job *j)
{
	struct str text = STR_INIT;
	const char *mech = j->mech == SMTP_AUTH_MECH_PLAIN ? "PLAIN" : "LOGIN";

	if (j->outcome == SMTP_AUTH_OUT_FAIL)
		str_appendf(&text, "535 5.7.8 authentication failed mech=%s user=\"", mech);
	else
		str_appendf(&text, "421 4.7.0 too many failed authentication attempts mech=%s user=\"",
			    mech);
	smtp_auth_log_user(&text, j->user);
	str_appendc(&text, '"');
	if (j->outcome == SMTP_AUTH_OUT_FAIL)
		str_appendf(&text, " reason=%s delay_ms=%lld",
			    j->no_user ? "unknown_user" : "bad_password", (long long)j->delay_ms);
	reject_log(j->srv, &j->peer, j->remote, j->local, j->conn_id, "auth", text.s);
	str_free(&text);
}

/* smtp_server_on_auth_check - scheduler: refuse a blocked address, else verify on the CPU pool. */
void smtp_server_on_auth_check(void *arg)
{
	struct smtp_auth_job *j = arg;
	struct pool *cpu = api_runtime()->cpu_pool;

	if (smtp_tarpit_blocked(j->srv->tarpit, &j->peer, now_ms())) {
		j->outcome = SMTP_AUTH_OUT_BLOCKED;
		auth_log(j);
		msgs_post(j->loop, MSGS_SMTP_AUTH_DONE, j);
		return;
	}
	if (cpu != NULL)
		pool_submit(cpu, auth_verify_run, j);
	else
		auth_verify_run(j);	/* no pool (tools, unit tests): the post still orders it */
}

/* smtp_server_on_auth_verified - scheduler: count a failure, set its delay, answer the session. */
void smtp_server_on_auth_verified(void *arg)
{
	struct smtp_auth_job *j = arg;

	if (j->outcome == SMTP_AUTH_OUT_FAIL) {
		bool block = false;

		j->delay_ms = smtp_tarpit_failed(j->srv->tarpit, &j->peer, now_ms(), &block);
		if (block)
			j->outcome = SMTP_AUTH_OUT_BLOCKED;
		auth_log(j);
	}
	msgs_post(j->loop, MSGS_SMTP_AUTH_DONE, j);
}

/* ------------------------------------------------------------------ */
/* accepting                                                           */

/* refuse_logged - refuse a connection over a limit: count it, a rejectlog line, the 421. */
static void refuse_logged(struct smtp_server *srv, struct smtp_listener *l, int fd,
			  const struct sockaddr_storage *peer, const char *host, const char *why)
{
	char who[SOCKADDR_TEXT_MAX];
	char text[160];

	sockaddr_format((const struct sockaddr *)peer, NULL, 0, who, sizeof(who));
	snprintf(text, sizeof(text), "421 4.7.0 %s", why);
	smtp_server_count_reject(srv, false);
	smtp_server_log_reject(srv, peer, who, l->address, "", "connect", text);
	smtp_listen_refuse(fd, "4.7.0", host, why);
}

/* smtp_server_admit - count a connection in under mu, or refuse it (smtp_server_int.h). */
struct smtp_accept *smtp_server_admit(struct smtp_server *srv, struct smtp_listener *l,
				      struct smtp_io *io, int fd,
				      const struct sockaddr_storage *peer, socklen_t peer_len)
{
	char host[256];
	const char *why = NULL;

	pthread_mutex_lock(&srv->mu);
	const struct conf_listener *cl = smtp_listener_conf(srv->conf, l->index, l->address);
	int64_t max_total = conf_listener_get(srv->conf, cl, CONF_OPT_CONCURRENCY)->u.i;
	int64_t max_ip = conf_listener_get(srv->conf, cl, CONF_OPT_MAX_CONNECTIONS_PER_IP)->u.i;

	if (srv->shutting_down)
		why = "service shutting down";
	else if (l->removed)
		why = "no longer listening on this address";
	else if (max_total > 0 && srv->sessions >= (uint64_t)max_total)
		why = "too many connections";
	else if (max_ip > 0 && ip_get(srv, peer) >= (uint64_t)max_ip)
		why = "too many connections from your address";
	if (why) {
		/* Not over a limit: no rejectlog line, as when the socket was closed. */
		bool quiet = srv->shutting_down || l->removed;
		const char *ext = srv->shutting_down ? "4.7.0" : "4.3.2";

		snprintf(host, sizeof(host), "%s", conf_hostname(srv->conf));
		pthread_mutex_unlock(&srv->mu);
		if (quiet)
			smtp_listen_refuse(fd, ext, host, why);
		else
			refuse_logged(srv, l, fd, peer, host, why);
		return NULL;
	}
	struct smtp_accept *acc = XNEW(struct smtp_accept);
	acc->io = io;
	acc->listener_index = l->index;
	if (l->tls) {
		SSL_CTX_up_ref(l->tls);		/* the session's: a reload may replace ours */
		acc->tls = l->tls;
	}
	acc->conf = conf_ref(srv->conf);
	srv->sessions++;
	ip_add(srv, peer, 1);
	pthread_mutex_unlock(&srv->mu);

	memcpy(acc->listener_address, l->address, sizeof(acc->listener_address));
	acc->fd = fd;
	acc->peer = *peer;
	acc->peer_len = peer_len;
	if (l->local_len > 0) {
		memcpy(&acc->local, &l->local, l->local_len);
		acc->local_len = l->local_len;
	} else {
		acc->local_len = sizeof(acc->local);
		getsockname(fd, (struct sockaddr *)&acc->local, &acc->local_len);
	}
	return acc;
}

/* smtp_server_accept_failed - count a failed accept; a paniclog line at most every 10 s. */
void smtp_server_accept_failed(struct smtp_server *srv, const char *address, int err,
			       uint64_t refused, int paused_ms)
{
	int64_t now = now_ms();
	bool log = false;
	uint64_t errors, total_refused;

	pthread_mutex_lock(&srv->mu);
	srv->accept_errors++;
	srv->accept_refused += refused;
	srv->accept_trouble = true;
	srv->accept_error_ms = now;
	errors = srv->accept_errors;
	total_refused = srv->accept_refused;
	if (srv->accept_log_ms == 0 || now - srv->accept_log_ms >= ACCEPT_LOG_INTERVAL_MS) {
		log = true;
		srv->accept_log_ms = now;
		srv->accept_errors = 0;
		srv->accept_refused = 0;
	}
	pthread_mutex_unlock(&srv->mu);
	if (log)
		log_panic("listener address=%s accept error=\"%s\" failed_accepts=%llu refused=%llu "
			  "paused_ms=%d%s", address, strerror(err), (unsigned long long)errors,
			  (unsigned long long)total_refused, paused_ms,
			  (err == EMFILE || err == ENFILE) ?
			  " hint=\"out of file descriptors: see the fd_limit line at start-up\"" : "");
}

/* smtp_server_hostname - the generation's Hostname, copied under mu. */
void smtp_server_hostname(struct smtp_server *srv, char *buf, size_t size)
{
	pthread_mutex_lock(&srv->mu);
	snprintf(buf, size, "%s", conf_hostname(srv->conf));
	pthread_mutex_unlock(&srv->mu);
}

/* accept_recovery_check - tick: report once that accepts work again. */
static void accept_recovery_check(struct smtp_server *srv)
{
	uint64_t errors, refused;

	pthread_mutex_lock(&srv->mu);
	if (!srv->accept_trouble || now_ms() - srv->accept_error_ms < SERVER_TICK_SECONDS * 1000) {
		pthread_mutex_unlock(&srv->mu);
		return;
	}
	errors = srv->accept_errors;
	refused = srv->accept_refused;
	srv->accept_trouble = false;
	srv->accept_errors = 0;
	srv->accept_refused = 0;
	srv->accept_log_ms = 0;
	pthread_mutex_unlock(&srv->mu);
	log_panic("listener accepting again failed_accepts=%llu refused=%llu",
		  (unsigned long long)errors, (unsigned long long)refused);
}

/* on_tick - the server's periodic housekeeping (see the file header). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	rate_sweep(srv, false);
	smtp_tarpit_sweep(srv->tarpit, now_ms());
	accept_recovery_check(srv);
}

/* ------------------------------------------------------------------ */
/* listening                                                           */

/* listener_tls - the TLS context of stanza cl (NULL: none configured), or -1 with err. */
static int listener_tls(const struct conf *conf, const struct conf_listener *cl, const char *address,
			SSL_CTX **out, struct str *err)
{
	const char *cert = conf_listener_get(conf, cl, CONF_OPT_TLS_CERTIFICATE)->u.s;
	const char *key = conf_listener_get(conf, cl, CONF_OPT_TLS_KEY)->u.s;

	*out = NULL;
	if (!cert && !key)
		return 0;
	if (!cert || !key) {
		str_appendf(err, "listener %s: TLS_Certificate and TLS_Key go together", address);
		return -1;
	}
	*out = tls_server_ctx_new(cert, key, err);
	return *out ? 0 : -1;
}

/* smtp_listener_unref - drop one reference; the last frees l and its TLS context. */
void smtp_listener_unref(struct smtp_listener *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (l->tls)
		SSL_CTX_free(l->tls);
	free(l);
}

/*
 * listener_open - bind stanza i of conf once per I/O loop and load its
 * certificate; NULL with err. The sockets are attached to the loops by
 * the caller (listener_attach).
 */
static struct smtp_listener *listener_open(struct smtp_server *srv, const struct conf *conf,
					   size_t i, bool probe, int *fds, int *code, struct str *err)
{
	const struct conf_listener *cl = conf_listener_at(conf, i);
	struct smtp_listener *l = XNEW(struct smtp_listener);

	l->srv = srv;
	l->index = i;
	atomic_init(&l->refs, 1);
	snprintf(l->address, sizeof(l->address), "%s", conf_listener_address(cl));
	*code = -EINVAL;
	if (listener_tls(conf, cl, l->address, &l->tls, err) < 0)
		goto fail;
	*code = smtp_listen_bind(l, srv->nio, fds, probe, err);
	if (*code < 0)
		goto fail;
	return l;
fail:
	smtp_listener_unref(l);
	return NULL;
}

/*
 * listener_attach - give each loop its socket of l: directly before the
 * loops run (start-up), else posted (a reload).
 */
static void listener_attach(struct smtp_server *srv, struct smtp_listener *l, int *fds, bool posted)
{
	for (size_t k = 0; k < srv->nio; k++) {
		atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
		if (posted)
			smtp_listen_post_attach(&srv->io[k], l, fds[k]);
		else
			smtp_listen_attach(&srv->io[k], l, fds[k]);
	}
}

/*
 * listener_close - every loop closes its socket of l (each answers
 * MSGS_SMTP_UNLISTENED); the scheduler's reference goes. Marked removed
 * at once: a loop that accepts on it before it gets there refuses the
 * client, as the closed socket would have (the generation in force no
 * longer has its stanza, so its options are not there to apply).
 */
static void listener_close(struct smtp_server *srv, struct smtp_listener *l)
{
	pthread_mutex_lock(&srv->mu);
	l->removed = true;
	pthread_mutex_unlock(&srv->mu);
	for (size_t k = 0; k < srv->nio; k++)
		smtp_listen_post_detach(&srv->io[k], l);
	srv->unlisten_pending += srv->nio;
	smtp_listener_unref(l);
}

int smtp_server_listen(struct smtp_server *srv, struct conf *conf, struct str *err)
{
	size_t n = conf_listener_count(conf);

	int *fds = xcalloc(srv->nio, sizeof(*fds));

	smtp_server_set_conf(srv, conf);
	srv->listeners = xcalloc(n ? n : 1, sizeof(*srv->listeners));
	for (size_t i = 0; i < n; i++) {
		int code;
		struct smtp_listener *l = listener_open(srv, conf, i, true, fds, &code, err);

		if (l == NULL) {
			free(fds);
			return -1;
		}
		listener_attach(srv, l, fds, false);
		srv->listeners[srv->nlisteners++] = l;
		log_panic("listener address=%s tls=%s", l->address, l->tls ? "yes" : "no");
	}
	srv->listening = true;
	free(fds);
	return 0;
}

/*
 * listeners_bind_new - step 3 of a reload: bind each Listen stanza of conf
 * that has no listener yet. No probe: a socket of ours that step 1 is
 * closing on the loops may still hold the address (one moving between
 * stanzas); another daemon of the same user on it is caught at start-up.
 * Those closing sockets also make the bind fail when they belong to
 * another user (root, before the privilege drop: SO_REUSEPORT shares
 * only within one user), so an address in use while removed sockets are
 * still open is tried again once the loops have closed them
 * (smtp_server_on_unlistened).
 */
static void listeners_bind_new(struct smtp_server *srv, const struct conf *conf)
{
	size_t n = conf_listener_count(conf);
	struct str err = STR_INIT;
	int *fds = xcalloc(srv->nio, sizeof(*fds));

	for (size_t i = 0; i < n; i++) {
		const char *addr = conf_listener_address(conf_listener_at(conf, i));
		bool have = false;
		int code;

		for (size_t j = 0; j < srv->nlisteners && !have; j++)
			have = strcmp(srv->listeners[j]->address, addr) == 0;
		if (have)
			continue;
		str_clear(&err);
		struct smtp_listener *l = listener_open(srv, conf, i, false, fds, &code, &err);
		if (l == NULL && code == -EADDRINUSE && srv->unlisten_pending > 0) {
			log_panic("listener address=%s waiting for the removed listeners to close", addr);
			srv->rebind_pending = true;
			continue;
		}
		if (l == NULL) {
			log_panic("listener address=%s error=\"%s\"; not listening on it", addr,
				  str_cstr(&err));
			continue;
		}
		listener_attach(srv, l, fds, true);
		log_panic("listener address=%s tls=%s added", l->address, l->tls ? "yes" : "no");
		srv->listeners = xrealloc(srv->listeners,
					  (srv->nlisteners + 1) * sizeof(*srv->listeners));
		srv->listeners[srv->nlisteners++] = l;
	}
	str_free(&err);
	free(fds);
}

/*
 * Reloading listeners (docs/console.md "Reloading listeners"). A new
 * generation's Listen stanzas are matched to the open sockets by
 * address, as configured:
 *
 *   1. A socket whose address is no longer configured is closed first,
 *      so an address that moves from one stanza to another (0.0.0.0:25
 *      to 127.0.0.1:25) can be bound in step 3. Its sessions go on: each
 *      holds its own copy of what it needs of the listener.
 *   2. A socket still configured is kept (no connection in the backlog
 *      is lost); its certificate and key are read again from their
 *      paths, so a renewed certificate at the same path is served to the
 *      next session. If they cannot be read, the paniclog says so and
 *      the previous certificate stays in use.
 *   3. A new address is bound. If it cannot be (in use, a privileged
 *      port after the privilege drop, a bad certificate), the paniclog
 *      says so and that stanza alone is left out: the rest of the reload
 *      applies, and the next reload tries again.
 *
 * Every other per-listener option is read per session from the
 * generation the session starts with, so it needs nothing here.
 */
static void listeners_reload(struct smtp_server *srv, const struct conf *conf)
{
	size_t n = conf_listener_count(conf);
	struct smtp_listener **next = xcalloc(n ? n : 1, sizeof(*next));
	size_t nnext = 0;
	struct str err = STR_INIT;

	/* 1 and 2: keep what is still configured, close the rest. */
	for (size_t j = 0; j < srv->nlisteners; j++) {
		struct smtp_listener *l = srv->listeners[j];
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(conf_listener_address(conf_listener_at(conf, i)), l->address) == 0)
				break;
		if (i == n) {
			log_panic("listener address=%s removed", l->address);
			listener_close(srv, l);
			continue;
		}
		SSL_CTX *tls;
		bool keep_tls = false;

		str_clear(&err);
		if (listener_tls(conf, conf_listener_at(conf, i), l->address, &tls, &err) < 0) {
			log_panic("listener address=%s error=\"%s\"; keeping the previous certificate",
				  l->address, str_cstr(&err));
			keep_tls = true;
		}
		pthread_mutex_lock(&srv->mu);
		if (!keep_tls) {
			SSL_CTX *old = l->tls;	/* freed below, outside the lock */
			l->tls = tls;
			tls = old;
		}
		l->index = i;
		bool has_tls = l->tls != NULL;
		pthread_mutex_unlock(&srv->mu);
		if (!keep_tls && tls)
			SSL_CTX_free(tls);
		log_panic("listener address=%s kept tls=%s", l->address, has_tls ? "yes" : "no");
		next[nnext++] = l;
	}
	free(srv->listeners);
	srv->listeners = next;
	srv->nlisteners = nnext;
	str_free(&err);
	/* 3: bind what is new. */
	listeners_bind_new(srv, conf);
}

/* smtp_server_unlistened - a loop's answer to MSGS_SMTP_UNLISTEN, posted to the scheduler. */
void smtp_server_unlistened(struct smtp_server *srv)
{
	msgs_post(srv->scheduler, MSGS_SMTP_UNLISTENED, srv);
}

/*
 * smtp_server_on_unlistened - scheduler (MSGS_SMTP_UNLISTENED): a loop
 * closed its socket of a removed listener. When the last one is closed,
 * an address that could not be bound because of them is bound now.
 */
void smtp_server_on_unlistened(void *arg)
{
	struct smtp_server *srv = arg;

	if (--srv->unlisten_pending == 0 && srv->rebind_pending && !srv->shutting_down) {
		srv->rebind_pending = false;
		listeners_bind_new(srv, srv->conf);
	}
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

struct smtp_server *smtp_server_new(struct loop *scheduler, struct loop **io, size_t nio,
				    struct spool *sp, smtp_message_fn on_message, void *ctx)
{
	struct smtp_server *srv = XNEW(struct smtp_server);
	/* From 0.5 ms to 10 s: the group commit's fdatasync usually dominates. */
	static const uint64_t ttr_bounds[] = { 500, 1000, 2500, 5000, 10000, 25000, 50000,
					       100000, 250000, 500000, 1000000, 2500000,
					       5000000, 10000000 };

	histo_init(&srv->time_to_250, ttr_bounds, sizeof(ttr_bounds) / sizeof(ttr_bounds[0]));
	smtp_session_trace_init();
	srv->scheduler = scheduler;
	srv->nio = nio;
	srv->io = xcalloc(nio, sizeof(*srv->io));
	for (size_t i = 0; i < nio; i++) {
		srv->io[i].srv = srv;
		srv->io[i].loop = io[i];
		srv->io[i].spare_fd = -1;
	}
	pthread_mutex_init(&srv->mu, NULL);
	srv->spool = sp;
	srv->on_message = on_message;
	srv->ctx = ctx;
	ipmap_init(&srv->conns);
	ipmap_init(&srv->rates);
	srv->tarpit = smtp_tarpit_new();
	struct timeval tick = { SERVER_TICK_SECONDS, 0 };
	srv->tick = event_new(loop_base(scheduler), -1, EV_PERSIST, on_tick, srv);
	evtimer_add(srv->tick, &tick);
	return srv;
}

void smtp_server_set_conf(struct smtp_server *srv, struct conf *conf)
{
	struct conf *old = srv->conf;

	conf_ref(conf);
	pthread_mutex_lock(&srv->mu);
	srv->conf = conf;
	pthread_mutex_unlock(&srv->mu);
	srv->reject_throttle = conf_get(conf, CONF_OPT_REJECTLOG_THROTTLE_PER_IP, NULL, NULL)->u.t;
	smtp_tarpit_set_conf(srv->tarpit, conf);
	if (old)
		conf_unref(old);
	if (srv->listening && !srv->shutting_down)
		listeners_reload(srv, conf);
}

void smtp_server_set_spool(struct smtp_server *srv, struct spool *sp, struct pool *io_pool)
{
	srv->spool = sp;
	srv->io_pool = io_pool;
}

struct pool *smtp_server_io_pool(struct smtp_server *srv)
{
	return srv->io_pool;
}

struct spool *smtp_server_spool(struct smtp_server *srv)
{
	return srv->spool;
}

/* check_shutdown_done - shutting down and no session left: the next step may go. */
static void check_shutdown_done(struct smtp_server *srv)
{
	pthread_mutex_lock(&srv->mu);
	bool done_now = srv->shutting_down && srv->sessions == 0;
	pthread_mutex_unlock(&srv->mu);
	if (done_now && srv->shutdown_done) {
		void (*done)(void *) = srv->shutdown_done;
		srv->shutdown_done = NULL;
		if (srv->grace_timer) {
			event_free(srv->grace_timer);
			srv->grace_timer = NULL;
		}
		done(srv->shutdown_arg);
	}
}

/* smtp_server_on_sessions_done - scheduler (MSGS_SMTP_SESSIONS_DONE): the last session closed. */
void smtp_server_on_sessions_done(void *arg)
{
	check_shutdown_done(arg);
}

void smtp_server_session_closed(struct smtp_server *srv, const struct sockaddr_storage *peer)
{
	pthread_mutex_lock(&srv->mu);
	srv->sessions--;
	ip_add(srv, peer, -1);
	bool last = srv->shutting_down && srv->sessions == 0;
	pthread_mutex_unlock(&srv->mu);
	/* Only a shutdown waits for the count; no session can start after it. */
	if (last)
		msgs_post(srv->scheduler, MSGS_SMTP_SESSIONS_DONE, srv);
}

struct deliver_note {
	struct smtp_server *srv;
	struct envelope *msg;
};

/* smtp_server_on_deliver - scheduler side of smtp_server_deliver: the queue takes the message. */
void smtp_server_on_deliver(void *arg)
{
	struct deliver_note *note = arg;

	note->srv->on_message(note->srv->ctx, note->msg);
	free(note);
}

void smtp_server_deliver(struct smtp_server *srv, struct envelope *msg)
{
	struct deliver_note *note = XNEW(struct deliver_note);

	note->srv = srv;
	note->msg = msg;
	/* One wake-up of the scheduler for all the messages one spool answer made durable. */
	msgs_post_batched(srv->scheduler, MSGS_SMTP_DELIVER, note);
}

static void on_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	pthread_mutex_lock(&srv->mu);
	uint32_t left = srv->sessions;
	pthread_mutex_unlock(&srv->mu);
	log_panic("shutdown grace period over; closing sessions=%u", left);
	for (size_t i = 0; i < srv->nio; i++)
		msgs_post(srv->io[i].loop, MSGS_SMTP_CLOSE_ALL, &srv->io[i]);
}

void smtp_server_shutdown(struct smtp_server *srv, int grace_seconds,
			  void (*done)(void *arg), void *arg)
{
	struct timeval tv = { grace_seconds, 0 };

	pthread_mutex_lock(&srv->mu);
	srv->shutting_down = true;
	pthread_mutex_unlock(&srv->mu);
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	/* The loops close their sockets when told to shut down (smtp_session_shutdown_io). */
	for (size_t i = 0; i < srv->nlisteners; i++)
		smtp_listener_unref(srv->listeners[i]);
	srv->nlisteners = 0;
	for (size_t i = 0; i < srv->nio; i++)
		msgs_post(srv->io[i].loop, MSGS_SMTP_SHUTDOWN_IO, &srv->io[i]);
	srv->grace_timer = evtimer_new(loop_base(srv->scheduler), on_grace_expired, srv);
	evtimer_add(srv->grace_timer, &tv);
	check_shutdown_done(srv);
}

/* ip_count_free - ipmap_sweep callback: free every connection count. */
static bool ip_count_free(void *ctx, struct ipmap_node *n)
{
	free(IPMAP_ENTRY(n, struct ip_count, node));
	return true;
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	/* The loops have ended: their sockets (if a shutdown never came) close here. */
	for (size_t i = 0; i < srv->nio; i++)
		smtp_listen_detach_all(&srv->io[i]);
	for (size_t i = 0; i < srv->nlisteners; i++)
		smtp_listener_unref(srv->listeners[i]);
	for (size_t i = 0; i < srv->nio; i++)
		smtp_session_tokens_free(&srv->io[i]);
	ipmap_sweep(&srv->conns, ip_count_free, NULL);
	ipmap_destroy(&srv->conns);
	if (srv->grace_timer)
		event_free(srv->grace_timer);
	if (srv->tick)
		event_free(srv->tick);
	rate_sweep(srv, true);
	ipmap_destroy(&srv->rates);
	smtp_tarpit_free(srv->tarpit);
	free(srv->listeners);
	free(srv->io);
	if (srv->conf)
		conf_unref(srv->conf);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}
