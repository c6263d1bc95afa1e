/*
 * sockio.c - a connection's buffered I/O (see sockio.h for why and what)
 *
 * A plain sockio keeps two persistent events on its descriptor, one per
 * direction, and one descriptor-less event, `flush`, that it makes active
 * (no system call) whenever bytes are added to the output. The loop runs
 * `flush` after the callbacks of the current iteration, so the replies to
 * a pipelined group, written by several calls, leave in one writev.
 *
 * Interest in epoll, and what each change costs:
 *
 *   read   added when reading is first enabled and kept while the
 *          connection lives. sockio_disable(EV_READ) only clears
 *          rd_enabled; if input arrives while it is clear, the event is
 *          removed then (one epoll_ctl) and added back on enable. A
 *          paused reader whose peer stays quiet, the usual case (a
 *          session waiting for the spool), costs nothing.
 *   write  added only when a write would block (or a connect is under
 *          way) and removed once the output has drained.
 *
 * Errors: a failed read or write disables that direction and reports
 * BEV_EVENT_ERROR with errno set, as bufferevent does; EOF is reported
 * once, with reading disabled. A callback is always the last thing a
 * handler does, so a callback may free the sockio.
 */
#include "core/sockio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/mem.h"

struct sockio {
	struct bufferevent *bev;	/* wrapped (TLS): everything forwards to it */
	struct event_base *base;
	int fd;
	unsigned flags;
	struct evbuffer *in, *out;
	struct event *rd, *wr, *flush;
	struct evbuffer_cb_entry *in_cb;	/* enabled while the high-water mark holds reading */
	sockio_data_cb readcb, writecb;
	sockio_event_cb eventcb;
	void *arg;
	struct timeval rd_tv, wr_tv;
	bool has_rd_tv, has_wr_tv;
	bool rd_enabled, wr_enabled;
	bool rd_added;			/* rd is in epoll */
	bool wr_added;			/* wr is in epoll: output would block, or connecting */
	bool connecting;
	bool full;			/* reading held by the high-water mark */
	size_t rd_high, wr_low;
};

/*
 * arm - add ev (or, when it is in epoll already, only move its timer: no
 * system call). event_add(ev, NULL) would keep an old timeout, so none
 * means removing the timer.
 */
static void arm(struct event *ev, bool has_tv, const struct timeval *tv)
{
	if (has_tv) {
		event_add(ev, tv);
	} else {
		event_add(ev, NULL);
		event_remove_timer(ev);
	}
}

static void rd_add(struct sockio *io)
{
	arm(io->rd, io->has_rd_tv, &io->rd_tv);
	io->rd_added = true;
}

static void rd_remove(struct sockio *io)
{
	if (io->rd_added) {
		event_del(io->rd);
		io->rd_added = false;
	}
}

static void wr_add(struct sockio *io)
{
	arm(io->wr, io->has_wr_tv && !io->connecting, &io->wr_tv);
	io->wr_added = true;
}

static void wr_remove(struct sockio *io)
{
	if (io->wr_added) {
		event_del(io->wr);
		io->wr_added = false;
	}
}

/* report - the event callback, with errno as the failed call left it. */
static void report(struct sockio *io, short what, int err)
{
	if (io->eventcb) {
		errno = err;
		io->eventcb(io, what, io->arg);
	}
}

/* flush_soon - write the output at the end of this loop iteration (no system call now). */
static void flush_soon(struct sockio *io)
{
	if (io->wr_enabled && !io->wr_added && !io->connecting && evbuffer_get_length(io->out) > 0)
		event_active(io->flush, EV_WRITE, 0);
}

/* resume_reading - the high-water mark no longer holds reading. */
static void resume_reading(struct sockio *io)
{
	io->full = false;
	evbuffer_cb_clear_flags(io->in, io->in_cb, EVBUFFER_CB_ENABLED);
	if (io->rd_enabled && !io->rd_added)
		rd_add(io);
}

/*
 * flush_now - write what the output holds; arm write interest if the
 * socket is full, drop it once drained; then the write callback when the
 * low-water mark is reached.
 */
static void flush_now(struct sockio *io)
{
	size_t before = evbuffer_get_length(io->out);
	size_t left = before;

	if (!io->wr_enabled || io->connecting)
		return;
	if (before > 0) {
		int n = evbuffer_write(io->out, io->fd);

		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			int err = errno;

			io->wr_enabled = false;
			wr_remove(io);
			report(io, BEV_EVENT_ERROR | BEV_EVENT_WRITING, err);
			return;
		}
		left = evbuffer_get_length(io->out);
	}
	if (left > 0) {
		if (!io->wr_added)
			wr_add(io);
	} else {
		wr_remove(io);
	}
	if (left < before && left <= io->wr_low && io->writecb)
		io->writecb(io, io->arg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	flush_now(arg);
}

/* on_output - bytes were added to the output: write them at the end of this iteration. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct sockio *io = arg;

	if (info->n_added > 0)
		flush_soon(io);
}

/* on_input - input was consumed while the high-water mark held reading: resume below it. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct sockio *io = arg;

	if (io->full && evbuffer_get_length(buf) < io->rd_high)
		resume_reading(io);
}

/* connect_done - the pending connect finished (writable): CONNECTED or ERROR. */
static void connect_done(struct sockio *io)
{
	int err = 0;
	socklen_t len = sizeof(err);

	io->connecting = false;
	wr_remove(io);
	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		io->wr_enabled = false;
		io->rd_enabled = false;
		rd_remove(io);
		report(io, BEV_EVENT_ERROR, err);
		return;
	}
	flush_soon(io);
	report(io, BEV_EVENT_CONNECTED, 0);
}

static void on_write_ready(evutil_socket_t fd, short what, void *arg)
{
	struct sockio *io = arg;

	if (io->connecting) {
		if (what & EV_TIMEOUT)
			return;	/* the caller keeps its own connect timer */
		connect_done(io);
		return;
	}
	if (what & EV_TIMEOUT) {
		io->wr_enabled = false;
		wr_remove(io);
		report(io, BEV_EVENT_TIMEOUT | BEV_EVENT_WRITING, ETIMEDOUT);
		return;
	}
	flush_now(io);
}

/*
 * The bytes of one read land here first, then are copied into the input
 * buffer. Reading into the input buffer's own free space would look
 * cheaper, but a session drains its input after every command, the
 * buffer then frees its last chain, and the next readv needs a fresh one:
 * libevent rounds a SOCKIO_READ_MAX reservation up to a 32 KiB malloc,
 * freed again a moment later, six times per relayed message (issue 10's
 * allocation census). A copy of what actually arrived costs less: a
 * command fits a 1 KiB chain that malloc's per-thread cache hands back.
 * One buffer per thread: a sockio is used only on its loop's thread, and
 * nothing is left in it between calls.
 */
static _Thread_local char read_scratch[SOCKIO_READ_MAX];

/* read_once - one read of up to want bytes into the input: bytes read, 0 at EOF, -1 with errno. */
static ssize_t read_once(struct sockio *io, size_t want)
{
	ssize_t n;

	if (want > sizeof(read_scratch))
		want = sizeof(read_scratch);
	n = read(io->fd, read_scratch, want);
	if (n <= 0)
		return n;
	if (evbuffer_add(io->in, read_scratch, (size_t)n) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}

static void on_read_ready(evutil_socket_t fd, short what, void *arg)
{
	struct sockio *io = arg;
	size_t want = SOCKIO_READ_MAX;
	ssize_t n;

	if (!io->rd_enabled) {
		/* Input (or the old timer) while paused: now leave epoll until enabled. */
		rd_remove(io);
		return;
	}
	if (what & EV_TIMEOUT) {
		io->rd_enabled = false;
		rd_remove(io);
		report(io, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, ETIMEDOUT);
		return;
	}
	if (io->rd_high > 0) {
		size_t have = evbuffer_get_length(io->in);

		if (have >= io->rd_high) {
			io->full = true;
			evbuffer_cb_set_flags(io->in, io->in_cb, EVBUFFER_CB_ENABLED);
			rd_remove(io);
			return;
		}
		if (io->rd_high - have < want)
			want = io->rd_high - have;
	}
	n = read_once(io, want);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		int err = n < 0 ? errno : 0;

		io->rd_enabled = false;
		rd_remove(io);
		report(io, (n < 0 ? BEV_EVENT_ERROR : BEV_EVENT_EOF) | BEV_EVENT_READING, err);
		return;
	}
	if (io->readcb)
		io->readcb(io, io->arg);
}

struct sockio *sockio_new(struct event_base *base, int fd, unsigned flags)
{
	struct sockio *io = XNEW(struct sockio);

	io->base = base;
	io->fd = fd;
	io->flags = flags;
	io->in = evbuffer_new();
	io->out = evbuffer_new();
	io->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_read_ready, io);
	io->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write_ready, io);
	io->flush = event_new(base, -1, 0, on_flush, io);
	if (!io->in || !io->out || !io->rd || !io->wr || !io->flush ||
	    evbuffer_add_cb(io->out, on_output, io) == NULL ||
	    (io->in_cb = evbuffer_add_cb(io->in, on_input, io)) == NULL) {
		io->flags &= ~SOCKIO_CLOSE_ON_FREE;
		sockio_free(io);
		return NULL;
	}
	evbuffer_cb_clear_flags(io->in, io->in_cb, EVBUFFER_CB_ENABLED);
	io->wr_enabled = true;
	return io;
}

/* Trampolines from a wrapped bufferevent's callbacks to the sockio's. */
static void bev_read(struct bufferevent *bev, void *arg)
{
	struct sockio *io = arg;

	if (io->readcb)
		io->readcb(io, io->arg);
}

static void bev_write(struct bufferevent *bev, void *arg)
{
	struct sockio *io = arg;

	if (io->writecb)
		io->writecb(io, io->arg);
}

static void bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct sockio *io = arg;

	if (io->eventcb)
		io->eventcb(io, what, io->arg);
}

struct sockio *sockio_wrap(struct bufferevent *bev)
{
	struct sockio *io = XNEW(struct sockio);

	io->bev = bev;
	io->fd = -1;
	bufferevent_setcb(bev, bev_read, bev_write, bev_event, io);
	return io;
}

void sockio_free(struct sockio *io)
{
	if (io == NULL)
		return;
	if (io->bev) {
		bufferevent_free(io->bev);
		free(io);
		return;
	}
	if (io->rd)
		event_free(io->rd);
	if (io->wr)
		event_free(io->wr);
	if (io->flush)
		event_free(io->flush);
	if (io->in)
		evbuffer_free(io->in);
	if (io->out)
		evbuffer_free(io->out);
	if ((io->flags & SOCKIO_CLOSE_ON_FREE) && io->fd >= 0)
		close(io->fd);
	free(io);
}

void sockio_setcb(struct sockio *io, sockio_data_cb readcb, sockio_data_cb writecb,
		  sockio_event_cb eventcb, void *arg)
{
	io->readcb = readcb;
	io->writecb = writecb;
	io->eventcb = eventcb;
	io->arg = arg;
}

int sockio_connect(struct sockio *io, const struct sockaddr *sa, socklen_t len)
{
	if (io->bev)
		return bufferevent_socket_connect(io->bev, sa, (int)len);
	if (connect(io->fd, sa, len) == 0 || errno == EINPROGRESS) {
		/* Writable means connected (or failed), whatever connect() said. */
		io->connecting = true;
		wr_add(io);
		return 0;
	}
	return -1;
}

struct evbuffer *sockio_input(struct sockio *io)
{
	return io->bev ? bufferevent_get_input(io->bev) : io->in;
}

struct evbuffer *sockio_output(struct sockio *io)
{
	return io->bev ? bufferevent_get_output(io->bev) : io->out;
}

int sockio_write(struct sockio *io, const void *data, size_t len)
{
	return evbuffer_add(sockio_output(io), data, len);
}

void sockio_enable(struct sockio *io, short what)
{
	if (io->bev) {
		bufferevent_enable(io->bev, what);
		return;
	}
	if (what & EV_READ) {
		io->rd_enabled = true;
		/* Added again even when in epoll: that restarts the idle timeout, as a bufferevent does. */
		if (!io->full && (!io->rd_added || io->has_rd_tv))
			rd_add(io);
	}
	if ((what & EV_WRITE) && !io->wr_enabled) {
		io->wr_enabled = true;
		flush_soon(io);
	}
}

void sockio_disable(struct sockio *io, short what)
{
	if (io->bev) {
		bufferevent_disable(io->bev, what);
		return;
	}
	if (what & EV_READ)
		io->rd_enabled = false;	/* rd leaves epoll only if input comes meanwhile */
	if ((what & EV_WRITE) && io->wr_enabled) {
		io->wr_enabled = false;
		if (!io->connecting)
			wr_remove(io);
	}
}

void sockio_set_timeouts(struct sockio *io, const struct timeval *rd, const struct timeval *wr)
{
	if (io->bev) {
		bufferevent_set_timeouts(io->bev, rd, wr);
		return;
	}
	io->has_rd_tv = rd != NULL;
	if (rd)
		io->rd_tv = *rd;
	io->has_wr_tv = wr != NULL;
	if (wr)
		io->wr_tv = *wr;
	if (io->rd_added)
		rd_add(io);
	if (io->wr_added && !io->connecting)
		wr_add(io);
}

void sockio_setwatermark(struct sockio *io, short what, size_t low, size_t high)
{
	if (io->bev) {
		bufferevent_setwatermark(io->bev, what, low, high);
		return;
	}
	if (what & EV_READ) {
		io->rd_high = high;
		if (io->full && (high == 0 || evbuffer_get_length(io->in) < high))
			resume_reading(io);
	}
	if (what & EV_WRITE)
		io->wr_low = low;
}

struct bufferevent *sockio_bufferevent(struct sockio *io)
{
	return io->bev;
}
