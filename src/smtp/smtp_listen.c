/*
 * smtp_listen.c - listening sockets, one per Listen stanza and I/O loop
 *
 * Every I/O loop accepts its own connections: a Listen stanza is bound
 * once per loop, each socket with SO_REUSEPORT, and the kernel spreads
 * new connections over them. A connection is then counted in (or
 * refused) by smtp_server_admit and its session starts on the loop that
 * accepted it, with no thread in between. Accepting on the scheduler
 * instead cost a wake-up of the scheduler and a hand-over post per
 * connection: about one context switch per message with a connection per
 * message (docs/PERFORMANCE.md, issue 10).
 *
 * Ownership: the scheduler binds the sockets (smtp_listen_bind) and hands
 * each to its loop. Before the loops run (start-up) it attaches them
 * itself; later (a reload) it posts MSGS_SMTP_LISTEN. From then on the
 * socket, its event and its back-off timer belong to that loop, which
 * closes the socket when told (MSGS_SMTP_UNLISTEN, or the shutdown) and
 * drops its reference to the struct smtp_listener.
 *
 * Only one connection is accepted per readiness: the socket stays
 * readable while more wait, so the loop comes back to it on its next
 * turn, after serving what else is ready, and never spends a call on
 * the EAGAIN that ends an accept-until-empty loop.
 *
 * Accept failures other than "nothing there" pause this loop's socket for
 * ACCEPT_BACKOFF_MS (the client that caused it is still in the backlog,
 * so the socket is readable at once again: without a pause the loop
 * spins). Out of descriptors (EMFILE/ENFILE) the loop first gives up its
 * spare descriptor, answers the waiting clients 421 4.3.2 one at a time
 * and takes the spare back. smtp_server_accept_failed counts and logs.
 *
 * Another daemon already on the address: sockets with SO_REUSEPORT of the
 * same user would share it silently, so a first bind without it (which
 * fails on any socket already bound there) proves the address free.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "core/loop.h"
#include "core/mem.h"
#include "core/str.h"
#include "msgs/msgs.h"
#include "smtp/smtp_server_int.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_BACKOFF_MS 250		/* socket pause after a failed accept */
#define ACCEPT_REFUSE_BATCH 32		/* waiting clients answered 421 per EMFILE */

/* One listening socket of one I/O loop; that loop owns it. */
struct smtp_io_listen {
	struct smtp_io *io;
	struct smtp_listener *l;	/* a reference */
	int fd;
	struct event *ev;		/* readable: a connection waits */
	struct event *resume;		/* the end of an accept back-off */
	struct smtp_io_listen *next;
};

/* The hand-over of a bound socket to its loop (MSGS_SMTP_LISTEN). */
struct listen_msg {
	struct smtp_io *io;
	struct smtp_listener *l;	/* a reference, now the loop's */
	int fd;
};

/* ------------------------------------------------------------------ */
/* binding (scheduler)                                                 */

/* bind_one - a listening socket on ss; -1 with errno. */
static int bind_one(const struct sockaddr_storage *ss, socklen_t len, bool reuseport)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    /* Replies go out whole; Linux copies the option to accepted sockets. */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    (reuseport && listen(fd, LISTEN_BACKLOG) < 0)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* is_wildcard - whether ss is 0.0.0.0 or ::, whose sockets each have their own local address. */
static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return true;
}

/* copy_port - set to's port to got's (same family): joining a port the kernel chose. */
static void copy_port(struct sockaddr_storage *to, const struct sockaddr_storage *got)
{
	if (to->ss_family == AF_INET)
		((struct sockaddr_in *)to)->sin_port = ((const struct sockaddr_in *)got)->sin_port;
	else if (to->ss_family == AF_INET6)
		((struct sockaddr_in6 *)to)->sin6_port = ((const struct sockaddr_in6 *)got)->sin6_port;
}

/* smtp_listen_bind - n sockets sharing l's address, one per loop (smtp_server_int.h). */
int smtp_listen_bind(struct smtp_listener *l, size_t n, int *fds, bool probe, struct str *err)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	size_t i;

	int e;

	if (evutil_parse_sockaddr_port(l->address, (struct sockaddr *)&ss, &sslen) < 0) {
		str_appendf(err, "bad listen address %s", l->address);
		return -EINVAL;
	}
	if (probe) {
		int fd = bind_one(&ss, (socklen_t)sslen, false);

		if (fd < 0) {
			e = errno;
			str_appendf(err, "cannot listen on %s: %s", l->address, strerror(e));
			return -e;
		}
		close(fd);
	}
	for (i = 0; i < n; i++) {
		fds[i] = bind_one(&ss, (socklen_t)sslen, true);
		if (fds[i] < 0) {
			e = errno;
			str_appendf(err, "cannot listen on %s: %s", l->address, strerror(e));
			goto fail;
		}
		if (i == 0) {
			/* Port 0: the rest must join the port the first one was given. */
			struct sockaddr_storage got;
			socklen_t len = sizeof(got);

			if (getsockname(fds[0], (struct sockaddr *)&got, &len) == 0 &&
			    got.ss_family == ss.ss_family)
				copy_port(&ss, &got);
		}
	}
	l->local_len = 0;
	if (!is_wildcard(&ss)) {
		socklen_t len = sizeof(l->local);

		if (getsockname(fds[0], (struct sockaddr *)&l->local, &len) == 0)
			l->local_len = len;
	}
	return 0;
fail:
	while (i > 0)
		close(fds[--i]);
	return -e;
}

/* ------------------------------------------------------------------ */
/* accepting (the socket's I/O loop)                                   */

/* smtp_listen_refuse - one 421 line on a fresh socket, then close it. */
void smtp_listen_refuse(int fd, const char *ext, const char *hostname, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "421 %s %s Error: %s\r\n", ext, hostname, why);

	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* The client went away already: nothing to tell it. */
	}
	close(fd);
}

/*
 * refuse_waiting - out of descriptors: free the loop's spare, answer the
 * clients waiting in this socket's backlog 421 one by one, and take the
 * spare back. Each is closed before the next accept, so one descriptor
 * is enough; another thread may grab the freed number first, and then
 * only the back-off applies. Returns how many were answered.
 */
static uint64_t refuse_waiting(struct smtp_io_listen *il)
{
	struct smtp_io *io = il->io;
	char host[256];
	uint64_t refused = 0;

	if (io->spare_fd < 0)
		return 0;
	smtp_server_hostname(io->srv, host, sizeof(host));
	close(io->spare_fd);
	io->spare_fd = -1;
	for (int i = 0; i < ACCEPT_REFUSE_BATCH; i++) {
		int fd = accept4(il->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			break;
		smtp_listen_refuse(fd, "4.3.2", host, "out of resources, try again later");
		refused++;
	}
	io->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return refused;
}

/* accept_failed - accept4 failed for real: pause this socket and report. */
static void accept_failed(struct smtp_io_listen *il, int e)
{
	struct timeval backoff = { 0, ACCEPT_BACKOFF_MS * 1000 };
	uint64_t refused = 0;

	if (e == EMFILE || e == ENFILE)
		refused = refuse_waiting(il);
	event_del(il->ev);
	evtimer_add(il->resume, &backoff);
	smtp_server_accept_failed(il->io->srv, il->l->address, e, refused, ACCEPT_BACKOFF_MS);
}

/* on_accept - a client waits: take it, count it in, start its session here. */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct smtp_io_listen *il = arg;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	memset(&peer, 0, sizeof(peer));
	int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		int e = errno;

		if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED)
			return;
		accept_failed(il, e);
		return;
	}
	if (len > sizeof(peer))
		len = sizeof(peer);
	struct smtp_accept *acc = smtp_server_admit(il->io->srv, il->l, il->io, fd, &peer, len);
	if (acc)
		smtp_session_start(acc);
}

/* on_resume - the back-off is over: listen again (a socket closed meanwhile took its timer with it). */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_io_listen *il = arg;

	if (il->io->spare_fd < 0)
		il->io->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	event_add(il->ev, NULL);
}

/* ------------------------------------------------------------------ */
/* attaching and detaching (the socket's I/O loop)                     */

/* smtp_listen_attach - io's loop starts accepting on fd (the caller counted io's reference to l). */
void smtp_listen_attach(struct smtp_io *io, struct smtp_listener *l, int fd)
{
	struct event_base *base = loop_base(io->loop);
	struct smtp_io_listen *il = XNEW(struct smtp_io_listen);

	il->io = io;
	il->l = l;
	il->fd = fd;
	il->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, il);
	il->resume = evtimer_new(base, on_resume, il);
	event_add(il->ev, NULL);
	il->next = io->listens;
	io->listens = il;
	if (io->spare_fd < 0)
		io->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* io_listen_free - close the socket; drop the listener reference. */
static void io_listen_free(struct smtp_io_listen *il)
{
	event_free(il->ev);
	event_free(il->resume);
	close(il->fd);
	smtp_listener_unref(il->l);
	free(il);
}

/* smtp_listen_post_attach - hand fd to io's loop from the scheduler (a reload). */
void smtp_listen_post_attach(struct smtp_io *io, struct smtp_listener *l, int fd)
{
	struct listen_msg *m = XNEW(struct listen_msg);

	m->io = io;
	m->l = l;
	m->fd = fd;
	msgs_post(io->loop, MSGS_SMTP_LISTEN, m);
}

/* smtp_listen_on_attach - io's loop (MSGS_SMTP_LISTEN): take the socket, unless shutting down. */
void smtp_listen_on_attach(void *arg)
{
	struct listen_msg *m = arg;

	if (m->io->shutting_down) {
		/* The shutdown came first: this socket would never be closed. */
		close(m->fd);
		smtp_listener_unref(m->l);
	} else {
		smtp_listen_attach(m->io, m->l, m->fd);
	}
	free(m);
}

/* smtp_listen_post_detach - tell io's loop to close its socket of l (a reload removed it). */
void smtp_listen_post_detach(struct smtp_io *io, struct smtp_listener *l)
{
	struct listen_msg *m = XNEW(struct listen_msg);

	/* The message's own reference: l cannot be freed and its address reused meanwhile. */
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	m->io = io;
	m->l = l;
	m->fd = -1;
	msgs_post(io->loop, MSGS_SMTP_UNLISTEN, m);
}

/* smtp_listen_on_detach - io's loop (MSGS_SMTP_UNLISTEN): close the socket, answer the scheduler. */
void smtp_listen_on_detach(void *arg)
{
	struct listen_msg *m = arg;

	for (struct smtp_io_listen **p = &m->io->listens; *p; p = &(*p)->next) {
		if ((*p)->l == m->l) {
			struct smtp_io_listen *il = *p;
			*p = il->next;
			io_listen_free(il);
			break;
		}
	}
	smtp_listener_unref(m->l);
	smtp_server_unlistened(m->io->srv);
	free(m);
}

/* smtp_listen_detach_all - close every socket of io's loop and its spare (shutdown, free). */
void smtp_listen_detach_all(struct smtp_io *io)
{
	while (io->listens) {
		struct smtp_io_listen *il = io->listens;
		io->listens = il->next;
		io_listen_free(il);
	}
	if (io->spare_fd >= 0) {
		close(io->spare_fd);
		io->spare_fd = -1;
	}
}
