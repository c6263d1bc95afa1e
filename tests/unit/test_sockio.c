/*
 * test_sockio.c - core/sockio.c over real sockets: reading, direct and
 * blocked writes, the read high-water mark, a paused reader, EOF, errors,
 * timeouts and connect
 *
 * Each case runs an event_base on this thread with one end of a
 * socketpair (or a TCP socket on loopback) in a sockio; the test plays
 * the peer with plain system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "check.h"
#include "core/sockio.h"

struct seen {
	struct event_base *base;
	int reads, writes, events;
	short what;
	int err;
	size_t consume;			/* readcb drains this much of the input (SIZE_MAX: all) */
	const char *answer;		/* readcb writes this */
	struct sockio *freed_in_cb;	/* eventcb frees this */
};

static void on_read(struct sockio *io, void *arg)
{
	struct seen *t = arg;
	struct evbuffer *in = sockio_input(io);
	size_t n = evbuffer_get_length(in);

	t->reads++;
	if (t->consume < n)
		n = t->consume;
	evbuffer_drain(in, n);
	if (t->answer) {
		/* Three pieces: they must leave together. */
		sockio_write(io, t->answer, 2);
		sockio_write(io, t->answer + 2, 2);
		evbuffer_add_printf(sockio_output(io), "%s", t->answer + 4);
	}
}

static void on_write(struct sockio *io, void *arg)
{
	struct seen *t = arg;

	t->writes++;
}

static void on_event(struct sockio *io, short what, void *arg)
{
	struct seen *t = arg;

	t->events++;
	t->what = what;
	t->err = errno;
	if (t->freed_in_cb == io)
		sockio_free(io);
	event_base_loopbreak(t->base);
}

/* run - run the loop for up to ms milliseconds. */
static void run(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
}

/* Commands in, answers out; the answer written in three calls arrives whole. */
static void test_read_and_answer(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX, .answer = "250 ok\r\n" };
	int sv[2];
	char buf[64];

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], SOCKIO_CLOSE_ON_FREE);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_enable(io, EV_READ | EV_WRITE);
	CHECK(write(sv[1], "NOOP\r\n", 6) == 6);
	run(base, 100);
	CHECK_INTEQ(t.reads, 1);
	CHECK_INTEQ(t.writes, 1);	/* drained to the low-water mark (0) */
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	CHECK_INTEQ(n, 8);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STREQ(buf, "250 ok\r\n");
	CHECK_INTEQ(evbuffer_get_length(sockio_input(io)), 0);
	sockio_free(io);
	CHECK(fcntl(sv[0], F_GETFD) < 0);	/* CLOSE_ON_FREE closed it */
	close(sv[1]);
	event_base_free(base);
}

/* A peer that does not read: the rest waits, the write callback comes at the low mark. */
static void test_blocked_write(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX };
	int sv[2];
	size_t total = 4u << 20, got = 0;
	char *data = malloc(total), *back = malloc(total);

	for (size_t i = 0; i < total; i++)
		data[i] = (char)(i * 7 + i / 251);
	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], 0);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_setwatermark(io, EV_WRITE, 1024, 0);
	sockio_write(io, data, total);
	run(base, 50);
	CHECK(evbuffer_get_length(sockio_output(io)) > 0);	/* the socket is full */
	CHECK_INTEQ(t.writes, 0);
	while (got < total) {
		ssize_t n = read(sv[1], back + got, total - got);
		if (n > 0)
			got += (size_t)n;
		else
			run(base, 5);
	}
	run(base, 20);
	CHECK(memcmp(data, back, total) == 0);
	CHECK_INTEQ(evbuffer_get_length(sockio_output(io)), 0);
	CHECK(t.writes >= 1);
	CHECK_INTEQ(t.events, 0);
	sockio_free(io);
	close(sv[0]);
	close(sv[1]);
	free(data);
	free(back);
	event_base_free(base);
}

/* The high-water mark stops reading until the input is consumed; nothing is lost. */
static void test_read_high_water(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = 0 };
	int sv[2];
	size_t total = 200 * 1024, sent = 0;
	char *data = calloc(1, total);

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], 0);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_setwatermark(io, EV_READ, 0, 32 * 1024);
	sockio_enable(io, EV_READ | EV_WRITE);
	while (sent < total) {
		ssize_t n = write(sv[1], data + sent, total - sent);
		if (n > 0)
			sent += (size_t)n;
		run(base, 5);
		if (n <= 0)
			break;
	}
	run(base, 50);
	size_t held = evbuffer_get_length(sockio_input(io));
	CHECK(held >= 32 * 1024 && held <= 32 * 1024 + SOCKIO_READ_MAX);
	/* Consume: reading resumes and takes the rest. */
	size_t taken = 0;
	for (int i = 0; i < 2000 && taken < total; i++) {
		size_t n = evbuffer_get_length(sockio_input(io));
		evbuffer_drain(sockio_input(io), n);
		taken += n;
		while (sent < total) {
			ssize_t w = write(sv[1], data + sent, total - sent);
			if (w <= 0)
				break;
			sent += (size_t)w;
		}
		run(base, 2);
	}
	taken += evbuffer_get_length(sockio_input(io));
	CHECK_INTEQ(taken, total);
	sockio_free(io);
	close(sv[0]);
	close(sv[1]);
	free(data);
	event_base_free(base);
}

/* Reading paused: input waits unread; enabled again, it is delivered. */
static void test_paused_reader(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX };
	int sv[2];

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], 0);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_enable(io, EV_READ);
	sockio_disable(io, EV_READ);
	CHECK(write(sv[1], "QUIT\r\n", 6) == 6);
	run(base, 50);
	CHECK_INTEQ(t.reads, 0);
	sockio_enable(io, EV_READ);
	run(base, 50);
	CHECK_INTEQ(t.reads, 1);
	sockio_free(io);
	close(sv[0]);
	close(sv[1]);
	event_base_free(base);
}

/* EOF is reported once, as EOF|READING; the callback may free the sockio. */
static void test_eof(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX };
	int sv[2];

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], SOCKIO_CLOSE_ON_FREE);
	t.freed_in_cb = io;
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_enable(io, EV_READ);
	close(sv[1]);
	run(base, 200);
	CHECK_INTEQ(t.events, 1);
	CHECK_INTEQ(t.what, BEV_EVENT_EOF | BEV_EVENT_READING);
	event_base_free(base);
}

/* Writing to a closed peer: ERROR|WRITING with errno EPIPE. */
static void test_write_error(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX };
	int sv[2];

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], 0);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	close(sv[1]);
	sockio_write(io, "hello\r\n", 7);
	run(base, 200);
	CHECK_INTEQ(t.events, 1);
	CHECK_INTEQ(t.what, BEV_EVENT_ERROR | BEV_EVENT_WRITING);
	CHECK_INTEQ(t.err, EPIPE);
	sockio_free(io);
	close(sv[0]);
	event_base_free(base);
}

/* No input within the read timeout: TIMEOUT|READING, and reading stops. */
static void test_read_timeout(void)
{
	struct event_base *base = event_base_new();
	struct seen t = { .base = base, .consume = SIZE_MAX };
	struct timeval tv = { 0, 50 * 1000 };
	int sv[2];

	pair(sv);
	struct sockio *io = sockio_new(base, sv[0], 0);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_set_timeouts(io, &tv, &tv);
	sockio_enable(io, EV_READ);
	run(base, 2000);
	CHECK_INTEQ(t.events, 1);
	CHECK_INTEQ(t.what, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
	/* Removing the timeout: no further report. */
	sockio_set_timeouts(io, NULL, NULL);
	sockio_enable(io, EV_READ);
	run(base, 150);
	CHECK_INTEQ(t.events, 1);
	sockio_free(io);
	close(sv[0]);
	close(sv[1]);
	event_base_free(base);
}

/* Connect: CONNECTED to a listener, ERROR with ECONNREFUSED where nobody listens. */
static void test_connect(void)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(l, 4) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&sa, &len) == 0);

	struct seen t = { .base = base, .consume = SIZE_MAX };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockio *io = sockio_new(base, fd, SOCKIO_CLOSE_ON_FREE);
	sockio_setcb(io, on_read, on_write, on_event, &t);
	sockio_write(io, "EHLO x\r\n", 8);	/* queued before the connect completes */
	CHECK_INTEQ(sockio_connect(io, (struct sockaddr *)&sa, sizeof(sa)), 0);
	run(base, 2000);
	CHECK_INTEQ(t.what, BEV_EVENT_CONNECTED);
	int c = accept(l, NULL, NULL);
	char buf[16] = "";
	run(base, 50);
	CHECK_INTEQ(read(c, buf, sizeof(buf)), 8);
	CHECK(memcmp(buf, "EHLO x\r\n", 8) == 0);
	close(c);
	sockio_free(io);

	close(l);	/* now nobody listens on that port */
	struct seen u = { .base = base, .consume = SIZE_MAX };
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	io = sockio_new(base, fd, SOCKIO_CLOSE_ON_FREE);
	sockio_setcb(io, on_read, on_write, on_event, &u);
	CHECK_INTEQ(sockio_connect(io, (struct sockaddr *)&sa, sizeof(sa)), 0);
	run(base, 2000);
	CHECK_INTEQ(u.what, BEV_EVENT_ERROR);
	CHECK_INTEQ(u.err, ECONNREFUSED);
	sockio_free(io);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_read_and_answer();
	test_blocked_write();
	test_read_high_water();
	test_paused_reader();
	test_eof();
	test_write_error();
	test_read_timeout();
	test_connect();
	return check_done();
}
