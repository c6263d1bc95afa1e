/*
 * smtp_server.c - ESMTP listeners, connection limits, graceful shutdown
 *
 * Runs on the scheduler thread. Accepting here (rather than in every I/O
 * loop) keeps the connection counters single-owner: Concurrency and
 * Max_Connections_Per_IP are checked before a socket is handed to a loop,
 * and a loop posts back when a session ends. One accept thread is far from
 * the bottleneck of a mail server: sessions, TLS and the spool are.
 *
 * A refused connection gets its 421 with one non-blocking send on the
 * fresh socket (the kernel buffer always has room for one line) and is
 * closed, so no session is ever built for it.
 */
#include "smtp/smtp_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "log/log.h"
#include "smtp/smtp_server_int.h"
#include "spool/spool.h"

/* Per-client-address connection count, chained hash on the scheduler. */
struct ip_count {
	struct ip_count *next;
	uint8_t addr[16];
	uint32_t count;
};

#define IP_BUCKETS 4096

struct smtp_server {
	struct loop *scheduler;
	struct smtp_io *io;
	size_t nio;
	size_t next_io;
	struct spool *spool;
	struct pool *io_pool;		/* large bodies stream to disk on it */
	smtp_message_fn on_message;
	void *ctx;
	struct conf *conf;		/* generation for new sessions */
	struct smtp_listener *listeners;
	size_t nlisteners;
	uint32_t sessions;		/* open sessions, all loops */
	struct ip_count *ip_table[IP_BUCKETS];
	bool shutting_down;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	struct event *grace_timer;
};

/* ------------------------------------------------------------------ */
/* hostname                                                            */

const char *smtp_server_hostname(const struct conf *conf)
{
	static char sysname[256];
	const char *h = conf_str(conf, CONF_OPT_HOSTNAME);

	if (h && *h)
		return h;
	if (sysname[0] == '\0') {
		/* First call happens on the main thread before loops start. */
		if (gethostname(sysname, sizeof(sysname) - 1) < 0 || sysname[0] == '\0')
			snprintf(sysname, sizeof(sysname), "localhost");
	}
	return sysname;
}

/*
 * smtp_listener_conf - the Listen stanza of this socket in a configuration
 * generation, found by address: a reload may add, drop or reorder stanzas.
 * NULL when the stanza is gone (ESMTP_Listener/global settings then apply;
 * its socket stays open until restart).
 */
const struct conf_listener *smtp_listener_conf(const struct conf *conf,
					       const struct smtp_listener *l)
{
	size_t n = conf_listener_count(conf);

	if (l->index < n && strcmp(conf_listener_address(conf_listener_at(conf, l->index)),
				   l->address) == 0)
		return conf_listener_at(conf, l->index);
	for (size_t i = 0; i < n; i++)
		if (strcmp(conf_listener_address(conf_listener_at(conf, i)), l->address) == 0)
			return conf_listener_at(conf, i);
	return NULL;
}

/* smtp_format_sockaddr - "ip" into ip (may be NULL) and "ip:port" into full (may be NULL). */
void smtp_format_sockaddr(const struct sockaddr_storage *ss, char *ip, size_t iplen,
			    char *full, size_t fulllen)
{
	char tmp[64];
	int port = 0;

	if (ip == NULL) {
		ip = tmp;
		iplen = sizeof(tmp);
	}
	snprintf(ip, iplen, "?");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		evutil_inet_ntop(AF_INET, &sin->sin_addr, ip, iplen);
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		evutil_inet_ntop(AF_INET6, &sin6->sin6_addr, ip, iplen);
		port = ntohs(sin6->sin6_port);
	}
	/* An IPv6 text and a port always fit callers' 80 bytes; cut if not. */
	if (full && snprintf(full, fulllen, "%s:%d", ip, port) >= (int)fulllen)
		full[fulllen - 1] = '\0';
}

/* ------------------------------------------------------------------ */
/* per-IP counting                                                     */

/* ip_key - the 16-byte key of an address (IPv4 as v4-mapped v6). */
static void ip_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		memcpy(key, &sin6->sin6_addr, 16);
	}
}

static struct ip_count **ip_slot(struct smtp_server *srv, const uint8_t key[16])
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	struct ip_count **pp = &srv->ip_table[h % IP_BUCKETS];
	while (*pp && memcmp((*pp)->addr, key, 16) != 0)
		pp = &(*pp)->next;
	return pp;
}

static uint32_t ip_get(struct smtp_server *srv, const struct sockaddr_storage *ss)
{
	uint8_t key[16];

	ip_key(ss, key);
	struct ip_count *e = *ip_slot(srv, key);
	return e ? e->count : 0;
}

static void ip_add(struct smtp_server *srv, const struct sockaddr_storage *ss, int delta)
{
	uint8_t key[16];

	ip_key(ss, key);
	struct ip_count **pp = ip_slot(srv, key);
	if (*pp == NULL) {
		if (delta < 0)
			return;
		*pp = XNEW(struct ip_count);
		memcpy((*pp)->addr, key, 16);
	}
	(*pp)->count += delta;
	if ((*pp)->count == 0) {
		struct ip_count *dead = *pp;
		*pp = dead->next;
		free(dead);
	}
}

/* ------------------------------------------------------------------ */
/* accepting                                                           */

/* refuse - answer 421 on a fresh socket and close it. */
static void refuse(int fd, const char *hostname, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n", hostname, why);

	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* The client went away already: nothing to tell it. */
	}
	close(fd);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct conf_listener *cl = smtp_listener_conf(srv->conf, l);
	const char *host = smtp_server_hostname(srv->conf);
	struct sockaddr_storage peer;
	int one = 1;

	memset(&peer, 0, sizeof(peer));
	memcpy(&peer, sa, (size_t)salen < sizeof(peer) ? (size_t)salen : sizeof(peer));

	if (srv->shutting_down) {
		refuse(fd, host, "service shutting down");
		return;
	}
	int64_t max_total = conf_listener_get(srv->conf, cl, CONF_OPT_CONCURRENCY)->u.i;
	int64_t max_ip = conf_listener_get(srv->conf, cl, CONF_OPT_MAX_CONNECTIONS_PER_IP)->u.i;
	if (max_total > 0 && srv->sessions >= (uint64_t)max_total) {
		char who[64];
		smtp_format_sockaddr(&peer, NULL, 0, who, sizeof(who));
		log_reject(who, l->address, "", "connect", "421 4.7.0 too many connections");
		refuse(fd, host, "too many connections");
		return;
	}
	if (max_ip > 0 && ip_get(srv, &peer) >= (uint64_t)max_ip) {
		char who[64];
		smtp_format_sockaddr(&peer, NULL, 0, who, sizeof(who));
		log_reject(who, l->address, "", "connect", "421 4.7.0 too many connections from your address");
		refuse(fd, host, "too many connections from your address");
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct smtp_accept *acc = XNEW(struct smtp_accept);
	acc->io = &srv->io[srv->next_io++ % srv->nio];
	acc->listener = l;
	acc->conf = conf_ref(srv->conf);
	acc->fd = fd;
	acc->peer = peer;
	acc->peer_len = (socklen_t)salen;
	acc->local_len = sizeof(acc->local);
	getsockname(fd, (struct sockaddr *)&acc->local, &acc->local_len);
	srv->sessions++;
	ip_add(srv, &peer, 1);
	loop_post(acc->io->loop, smtp_session_start, acc);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct smtp_listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();

	/*
	 * EMFILE/ENFILE: out of descriptors. libevent keeps the listener
	 * enabled and retries on the next readiness, which is what we want;
	 * say so once per occurrence.
	 */
	log_panic("listener address=%s accept error=\"%s\"", l->address, strerror(e));
}

/* ------------------------------------------------------------------ */
/* listening                                                           */

/* tls_context - a server SSL_CTX for a listener, or NULL with err set. */
static SSL_CTX *tls_context(const char *cert, const char *key, struct str *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		str_appendf(err, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		str_appendf(err, "cannot load TLS_Certificate %s: %s", cert,
			    ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		str_appendf(err, "cannot load TLS_Key %s: %s", key,
			    ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		str_appendf(err, "TLS_Key %s does not match TLS_Certificate %s", key, cert);
		goto fail;
	}
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int smtp_server_listen(struct smtp_server *srv, struct conf *conf, struct str *err)
{
	size_t n = conf_listener_count(conf);

	smtp_server_set_conf(srv, conf);
	srv->listeners = xcalloc(n, sizeof(*srv->listeners));
	srv->nlisteners = n;
	for (size_t i = 0; i < n; i++) {
		const struct conf_listener *cl = conf_listener_at(conf, i);
		struct smtp_listener *l = &srv->listeners[i];
		struct sockaddr_storage ss;
		int sslen = sizeof(ss);

		l->srv = srv;
		l->index = i;
		snprintf(l->address, sizeof(l->address), "%s", conf_listener_address(cl));
		if (evutil_parse_sockaddr_port(l->address, (struct sockaddr *)&ss, &sslen) < 0) {
			str_appendf(err, "bad listen address %s", l->address);
			return -1;
		}
		const char *cert = conf_listener_get(conf, cl, CONF_OPT_TLS_CERTIFICATE)->u.s;
		const char *key = conf_listener_get(conf, cl, CONF_OPT_TLS_KEY)->u.s;
		if (cert || key) {
			if (!cert || !key) {
				str_appendf(err, "listener %s: TLS_Certificate and TLS_Key go together",
					    l->address);
				return -1;
			}
			l->tls = tls_context(cert, key, err);
			if (l->tls == NULL)
				return -1;
		}
		l->evl = evconnlistener_new_bind(loop_base(srv->scheduler), on_accept, l,
						 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						 LEV_OPT_CLOSE_ON_EXEC,
						 1024, (struct sockaddr *)&ss, sslen);
		if (l->evl == NULL) {
			str_appendf(err, "cannot listen on %s: %s", l->address, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(l->evl, on_accept_error);
		log_panic("listener address=%s tls=%s", l->address, l->tls ? "yes" : "no");
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

struct smtp_server *smtp_server_new(struct loop *scheduler, struct loop **io, size_t nio,
				    struct spool *sp, smtp_message_fn on_message, void *ctx)
{
	struct smtp_server *srv = XNEW(struct smtp_server);

	smtp_session_trace_init();
	srv->scheduler = scheduler;
	srv->nio = nio;
	srv->io = xcalloc(nio, sizeof(*srv->io));
	for (size_t i = 0; i < nio; i++) {
		srv->io[i].srv = srv;
		srv->io[i].loop = io[i];
	}
	srv->spool = sp;
	srv->on_message = on_message;
	srv->ctx = ctx;
	return srv;
}

void smtp_server_set_conf(struct smtp_server *srv, struct conf *conf)
{
	struct conf *old = srv->conf;

	srv->conf = conf_ref(conf);
	if (old)
		conf_unref(old);
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

struct closed_note {
	struct smtp_server *srv;
	struct sockaddr_storage peer;
};

static void check_shutdown_done(struct smtp_server *srv)
{
	if (srv->shutting_down && srv->sessions == 0 && srv->shutdown_done) {
		void (*done)(void *) = srv->shutdown_done;
		srv->shutdown_done = NULL;
		if (srv->grace_timer) {
			event_free(srv->grace_timer);
			srv->grace_timer = NULL;
		}
		done(srv->shutdown_arg);
	}
}

/* on_session_closed - scheduler side of smtp_server_session_closed. */
static void on_session_closed(void *arg)
{
	struct closed_note *note = arg;
	struct smtp_server *srv = note->srv;

	srv->sessions--;
	ip_add(srv, &note->peer, -1);
	free(note);
	check_shutdown_done(srv);
}

void smtp_server_session_closed(struct smtp_server *srv, const struct sockaddr_storage *peer)
{
	struct closed_note *note = XNEW(struct closed_note);

	note->srv = srv;
	note->peer = *peer;
	loop_post(srv->scheduler, on_session_closed, note);
}

struct deliver_note {
	struct smtp_server *srv;
	struct spool_msg *msg;
};

static void on_deliver(void *arg)
{
	struct deliver_note *note = arg;

	note->srv->on_message(note->srv->ctx, note->msg);
	free(note);
}

void smtp_server_deliver(struct smtp_server *srv, struct spool_msg *msg)
{
	struct deliver_note *note = XNEW(struct deliver_note);

	note->srv = srv;
	note->msg = msg;
	loop_post(srv->scheduler, on_deliver, note);
}

static void on_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	log_panic("shutdown grace period over; closing sessions=%u", srv->sessions);
	for (size_t i = 0; i < srv->nio; i++)
		loop_post(srv->io[i].loop, smtp_session_close_all, &srv->io[i]);
}

void smtp_server_shutdown(struct smtp_server *srv, int grace_seconds,
			  void (*done)(void *arg), void *arg)
{
	struct timeval tv = { grace_seconds, 0 };

	srv->shutting_down = true;
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].evl) {
			evconnlistener_free(srv->listeners[i].evl);
			srv->listeners[i].evl = NULL;
		}
	}
	for (size_t i = 0; i < srv->nio; i++)
		loop_post(srv->io[i].loop, smtp_session_shutdown_io, &srv->io[i]);
	srv->grace_timer = evtimer_new(loop_base(srv->scheduler), on_grace_expired, srv);
	evtimer_add(srv->grace_timer, &tv);
	check_shutdown_done(srv);
}

void smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].evl)
			evconnlistener_free(srv->listeners[i].evl);
		if (srv->listeners[i].tls)
			SSL_CTX_free(srv->listeners[i].tls);
	}
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (srv->ip_table[i]) {
			struct ip_count *e = srv->ip_table[i];
			srv->ip_table[i] = e->next;
			free(e);
		}
	}
	if (srv->grace_timer)
		event_free(srv->grace_timer);
	free(srv->listeners);
	free(srv->io);
	if (srv->conf)
		conf_unref(srv->conf);
	free(srv);
}
