/*
 * sockio.h - a connection's buffered I/O with as few system calls as the
 * kernel allows
 *
 * The SMTP sessions (server and client) used libevent bufferevents. A
 * socket bufferevent asks ioctl(FIONREAD) before every read, reads at
 * most 4 KiB at a time, and arms write interest (epoll_ctl) for every
 * reply, then disarms it once the reply is out: about 30 system calls
 * per relayed message that do no work (issue 10's profile). A sockio on a
 * plain socket instead:
 *
 *   reads    with one read of up to SOCKIO_READ_MAX bytes, without
 *            asking how much is there, and copies what came into the
 *            input buffer (sockio.c says why not into its free space);
 *   writes   the output buffer straight away, once per loop iteration
 *            (everything added during the iteration goes out in one
 *            writev), and arms write interest only when the socket
 *            would block;
 *   pauses   reading lazily: disabling EV_READ only sets a flag, and the
 *            descriptor leaves epoll only if data arrives meanwhile, so
 *            the pause while a message is spooled costs nothing.
 *
 * The interface is the subset of bufferevent's that the sessions use,
 * with the same meaning, so either kind of connection reads the same in
 * the callers. A TLS connection is still a bufferevent (OpenSSL's reads
 * and writes go through it); sockio_wrap makes it a sockio, and every call
 * then forwards to it.
 *
 * Callbacks run from the loop, never from inside a sockio call (as
 * libevent's BEV_OPT_DEFER_CALLBACKS): read after new input arrived;
 * write when, after a write, at most the low-water mark is left unsent;
 * event with BEV_EVENT_{EOF,ERROR,TIMEOUT} | BEV_EVENT_{READING,WRITING},
 * or BEV_EVENT_CONNECTED. On BEV_EVENT_ERROR errno holds the cause. A
 * callback may free its sockio.
 *
 * Ownership: a sockio belongs to the thread of its event_base; it is never
 * touched from another.
 */
#ifndef IMPETUS_CORE_SOCKIO_H
#define IMPETUS_CORE_SOCKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>

struct bufferevent;
struct event_base;
struct evbuffer;
struct sockio;

/* At most this much is read from a plain socket at once. */
#define SOCKIO_READ_MAX (16u * 1024)

/* Free closes the descriptor (always so for a wrapped bufferevent's own). */
#define SOCKIO_CLOSE_ON_FREE 1u

typedef void (*sockio_data_cb)(struct sockio *io, void *arg);
typedef void (*sockio_event_cb)(struct sockio *io, short what, void *arg);

/*
 * sockio_new - buffered I/O on the non-blocking socket fd. Writing is
 * enabled, reading is not (as bufferevent_socket_new). NULL on ENOMEM.
 */
struct sockio *sockio_new(struct event_base *base, int fd, unsigned flags);
/* sockio_wrap - a sockio that forwards to bev (a TLS bufferevent); frees it on free. */
struct sockio *sockio_wrap(struct bufferevent *bev);
/* sockio_free - release io (and close its descriptor when asked). Pending output is dropped. */
void sockio_free(struct sockio *io);

void sockio_setcb(struct sockio *io, sockio_data_cb readcb, sockio_data_cb writecb,
		  sockio_event_cb eventcb, void *arg);
/*
 * sockio_connect - start a non-blocking connect of io's socket to sa;
 * BEV_EVENT_CONNECTED (or ERROR) follows. Returns 0 or -1 with errno.
 */
int sockio_connect(struct sockio *io, const struct sockaddr *sa, socklen_t len);

struct evbuffer *sockio_input(struct sockio *io);
struct evbuffer *sockio_output(struct sockio *io);
/* sockio_write - append len bytes to the output. 0 or -1. */
int sockio_write(struct sockio *io, const void *data, size_t len);

/* sockio_enable / sockio_disable - EV_READ and/or EV_WRITE. */
void sockio_enable(struct sockio *io, short what);
void sockio_disable(struct sockio *io, short what);
/*
 * sockio_set_timeouts - idle limits for reading (no input for that long
 * while reading is enabled) and writing (output stuck that long); NULL
 * for none. A timeout disables the direction and reports it.
 */
void sockio_set_timeouts(struct sockio *io, const struct timeval *rd, const struct timeval *wr);
/*
 * sockio_setwatermark - EV_READ: stop reading while high (0: no limit)
 * bytes of input wait. EV_WRITE: call the write callback when at most low
 * bytes are left unsent.
 */
void sockio_setwatermark(struct sockio *io, short what, size_t low, size_t high);

/* sockio_bufferevent - the wrapped bufferevent (TLS errors, SSL), or NULL for a plain socket. */
struct bufferevent *sockio_bufferevent(struct sockio *io);

#endif
