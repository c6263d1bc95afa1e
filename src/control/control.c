/*
 * control.c - the Control_Listener's sockets and connections (control.h)
 *
 * Owner: the scheduler thread, for everything in this file: the
 * listeners (evconnlistener), each connection's bufferevent, the count
 * of connections. A request line is parsed, its command run
 * synchronously (api_console_start) and the whole reply queued before the
 * next line is looked at, so replies come back in request order. A
 * command that answers later (imp_cli_defer: dig) holds its connection:
 * the requests behind it wait in the input buffer (at most CTL_INPUT_HIGH,
 * then the socket is not read) until its answer is queued, then run. A
 * client that is gone meanwhile (an error, Timeout) abandons the command,
 * which then finishes into the void (api_console_abandon). EOF alone is
 * taken as a half-close (`printf 'dig x\n' | nc -N`): every request sent
 * before it is answered, then the connection closes.
 *
 * Failure handling, so one bad client never hurts the others or the
 * daemon: a malformed request gets "ERR" and the connection stays
 * usable; a line longer than CTL_REQUEST_MAX gets "ERR" and the
 * connection is closed once that is written (there is no way to find the
 * next request in it); a client idle for Timeout, or that stops reading
 * its replies for Timeout, is closed; past Max_Connections a new client
 * gets "ERR" and is closed; accept errors (EMFILE) pause accepting for a
 * second instead of spinning.
 *
 * A Listen is a Unix socket (a path) or a TCP address ("127.0.0.1:2025",
 * "[::1]:2025"; loopback unless Allow_Remote, checked by the parser).
 * control_reload applies a new generation (docs/console.md, "Reloading
 * listeners"): sockets are matched by their Listen name; one removed is
 * closed (and its file unlinked) while its connections go on; one kept
 * gets File_Mode again; one added is bound, and one that cannot be is a
 * paniclog error, the rest of the reload still applying. Timeout and
 * Max_Connections apply at once, Timeout to open connections too.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "control/control.h"
#include "control/control_proto.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mem.h"
#include "log/log.h"

/* Stop reading requests while this much reply is waiting for a slow client. */
#define CTL_OUTPUT_HIGH (1u << 20)
/*
 * Requests held behind a command that answers later stay in the input
 * buffer; past this much the socket is not read until it is answered.
 */
#define CTL_INPUT_HIGH (64u << 10)

struct ctl_conn;

struct ctl_listener {
	struct control *ctl;
	struct evconnlistener *evl;
	struct event *resume;		/* re-enables accepting after an accept error */
	char *path;			/* the Listen name: a path, or "ip:port" */
	bool tcp;
	bool bound;			/* we created the file: unlink it at the end */
	unsigned mode;			/* File_Mode in force (Unix) */
};

struct control {
	struct loop *sched;
	struct ctl_listener **ls;	/* heap, one per socket */
	size_t nls;
	struct ctl_conn *conns;		/* doubly linked */
	size_t nconns;
	int64_t max_conns;
	struct timeval timeout;
};

struct ctl_conn {
	struct control *ctl;
	struct bufferevent *bev;
	struct ctl_conn *prev, *next;
	bool closing;			/* close once the output is written */
	bool paused;			/* reading stopped until the output drains */
	bool eof;			/* the client half-closed: answer what it asked, then close */
	struct imp_cli *pending;	/* a command answering later (imp_cli_defer) */
};

static void conn_free(struct ctl_conn *c)
{
	struct control *ctl = c->ctl;

	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nconns--;
	/* A command still answering finishes into the void (ASan-safe: it never sees c). */
	api_console_abandon(c->pending);
	bufferevent_free(c->bev);
	free(c);
}

/* conn_reply - queue one reply. */
static void conn_reply(struct ctl_conn *c, bool ok, const char *body, size_t len)
{
	struct str out = STR_INIT;

	ctl_reply_format(&out, ok, body, len);
	bufferevent_write(c->bev, out.s, out.len);
	str_free(&out);
}

/* conn_fail_close - an error reply, then close the connection once it is written. */
static void conn_fail_close(struct ctl_conn *c, const char *msg)
{
	conn_reply(c, false, msg, strlen(msg));
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg);

/*
 * on_done - the answer of a command that deferred: queued in its place,
 * then the requests that waited behind it run.
 */
static void on_done(void *arg, bool ok, const char *body, size_t len)
{
	struct ctl_conn *c = arg;

	c->pending = NULL;
	conn_reply(c, ok, body, len);
	if (c->closing)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CTL_OUTPUT_HIGH) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
		return;		/* on_write resumes reading once the client caught up */
	}
	on_read(c->bev, c);	/* the requests that waited */
}

/* run_request - parse one request line and answer it, now or (deferred) later. */
static void run_request(struct ctl_conn *c, char *line, size_t len)
{
	struct ctl_request req;
	struct str out = STR_INIT;
	int rc = -1;

	if (len && line[len - 1] == '\r')
		len--;
	if (ctl_request_parse(line, len, &req, &out) == 0) {
		struct conf *conf = api_runtime_conf();
		struct api_gen *g = api_gen_of(conf);

		if (g == NULL)
			str_appends(&out, "no configuration is running");
		else
			rc = api_console_start(g, conf, req.argc, req.argv, req.json, &out, on_done,
					       c, &c->pending);
		conf_unref(conf);
	}
	if (rc == 1) {
		/*
		 * Answered later: the next requests wait in the input buffer
		 * (on_read leaves them while c->pending); reading goes on, so a
		 * client that leaves is noticed and abandons the command.
		 */
	} else {
		conn_reply(c, rc == 0, out.s ? out.s : "", out.len);
	}
	str_free(&out);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[CTL_REQUEST_MAX + 1];

	while (!c->closing && !c->paused && c->pending == NULL) {
		struct evbuffer_ptr nl = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);

		if (nl.pos < 0) {
			if (evbuffer_get_length(in) >= CTL_REQUEST_MAX) {
				evbuffer_drain(in, evbuffer_get_length(in));
				conn_fail_close(c, "request longer than 4096 bytes; closing");
			}
			break;
		}
		size_t len = (size_t)nl.pos;
		if (len + 1 > CTL_REQUEST_MAX) {
			evbuffer_drain(in, evbuffer_get_length(in));
			conn_fail_close(c, "request longer than 4096 bytes; closing");
			break;
		}
		evbuffer_remove(in, line, len + 1);	/* the line and its LF */
		run_request(c, line, len);
		if (evbuffer_get_length(bufferevent_get_output(bev)) > CTL_OUTPUT_HIGH) {
			c->paused = true;
			bufferevent_disable(bev, EV_READ);
		}
	}
	/* Half-closed, and every whole request answered: close once the replies are out. */
	if (c->eof && !c->closing && !c->paused && c->pending == NULL) {
		c->closing = true;
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->closing) {
		conn_free(c);
		return;
	}
	if (c->paused && c->pending == NULL) {
		c->paused = false;
		if (!c->eof)
			bufferevent_enable(bev, EV_READ);
		on_read(bev, c);	/* requests that arrived while paused */
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	/*
	 * EOF alone may be a half-close (printf 'dig x\n' | nc -N): the client
	 * still reads, so what it sent is answered, then the connection closes
	 * (on_read). A client that closed altogether is found when a reply
	 * cannot be written. An error or Timeout (idle, or not reading its
	 * replies): the client is gone.
	 */
	if ((what & BEV_EVENT_EOF) && !(what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) &&
	    !c->closing) {
		c->eof = true;
		bufferevent_disable(bev, EV_READ);
		on_read(bev, c);
		return;
	}
	conn_free(c);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct ctl_listener *l = arg;
	struct control *ctl = l->ctl;
	struct ctl_conn *c = xcalloc(1, sizeof(*c));

	c->ctl = ctl;
	c->bev = bufferevent_socket_new(loop_base(ctl->sched), fd, BEV_OPT_CLOSE_ON_FREE);
	c->next = ctl->conns;
	if (ctl->conns)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CTL_INPUT_HIGH);
	bufferevent_set_timeouts(c->bev, &ctl->timeout, &ctl->timeout);
	if ((int64_t)ctl->nconns > ctl->max_conns) {
		char msg[96];

		snprintf(msg, sizeof(msg), "too many console connections (Max_Connections %lld)",
			 (long long)ctl->max_conns);
		conn_fail_close(c, msg);
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_listener *l = arg;

	evconnlistener_enable(l->evl);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct ctl_listener *l = arg;
	struct timeval tv = { 1, 0 };

	log_panic("control accept path=%s error=\"%s\"; pausing 1s", l->path, strerror(errno));
	evconnlistener_disable(evl);
	evtimer_add(l->resume, &tv);
}

/*
 * bind_unix - a listening Unix socket at path with mode. A socket file
 * nobody answers on is left over from a daemon that died: replaced.
 */
static int bind_unix(const char *path, unsigned mode, struct str *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	char dir[sizeof(sun.sun_path)];
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int rc = fs_mkdir_p(dir, 0755);
		if (rc < 0) {
			str_appendf(err, "Control_Listener: cannot create %s: %s", dir, strerror(-rc));
			return -1;
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			str_appendf(err, "Control_Listener: %s exists and is not a socket", path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			str_appendf(err, "Control_Listener: %s is in use (another impetusd?)", path);
			return -1;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		str_appendf(err, "Control_Listener: socket: %s", strerror(errno));
		return -1;
	}
	/* Created with no permissions at all, then opened up: never briefly too open. */
	mode_t old = umask(0777);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || chmod(path, (mode_t)mode) < 0 || listen(fd, 64) < 0) {
		str_appendf(err, "Control_Listener: cannot listen on %s: %s", path, strerror(errno));
		if (rc == 0)
			unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

/* bind_tcp - a listening TCP socket on "ip:port" (the parser checked the address). */
static int bind_tcp(const char *addr, struct str *err)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss), one = 1;

	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
		str_appendf(err, "Control_Listener: bad address %s", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		str_appendf(err, "Control_Listener: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 || listen(fd, 64) < 0) {
		str_appendf(err, "Control_Listener: cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* listener_free - close a socket (its connections stay) and unlink its file. */
static void listener_free(struct ctl_listener *l)
{
	evconnlistener_free(l->evl);
	event_free(l->resume);
	if (l->bound)
		unlink(l->path);
	free(l->path);
	free(l);
}

/* listener_open - bind Listen i of conf; NULL with err. */
static struct ctl_listener *listener_open(struct control *ctl, const struct conf *conf, size_t i,
					  struct str *err)
{
	const char *path = conf_control_path(conf, i);
	bool tcp = conf_control_is_tcp(conf, i);
	unsigned mode = conf_control_mode(conf, i);
	int fd = tcp ? bind_tcp(path, err) : bind_unix(path, mode, err);

	if (fd < 0)
		return NULL;
	struct ctl_listener *l = xcalloc(1, sizeof(*l));
	l->ctl = ctl;
	l->path = xstrdup(path);
	l->tcp = tcp;
	l->bound = !tcp;
	l->mode = mode;
	l->evl = evconnlistener_new(loop_base(ctl->sched), on_accept, l,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	l->resume = evtimer_new(loop_base(ctl->sched), on_resume, l);
	evconnlistener_set_error_cb(l->evl, on_accept_error);
	if (tcp)
		log_panic("control listen address=%s", path);
	else
		log_panic("control listen path=%s mode=%04o", path, mode);
	return l;
}

/* control_limits - Timeout and Max_Connections of conf. */
static void control_limits(struct control *ctl, const struct conf *conf)
{
	ctl->max_conns = conf_control_get(conf, SIZE_MAX, CONF_OPT_CONTROL_MAX_CONNECTIONS)->u.i;
	ctl->timeout.tv_sec = conf_control_get(conf, SIZE_MAX, CONF_OPT_CONTROL_TIMEOUT)->u.i;
	ctl->timeout.tv_usec = 0;
}

struct control *control_new(struct loop *sched, const struct conf *conf, struct str *err)
{
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	size_t n = conf_control_count(conf);

	ctl->sched = sched;
	control_limits(ctl, conf);
	ctl->ls = xcalloc(n ? n : 1, sizeof(*ctl->ls));
	for (size_t i = 0; i < n; i++) {
		struct ctl_listener *l = listener_open(ctl, conf, i, err);

		if (l == NULL) {
			control_free(ctl);
			return NULL;
		}
		ctl->ls[ctl->nls++] = l;
	}
	return ctl;
}

/* conf_index - where Listen name is in conf, or SIZE_MAX. */
static size_t conf_index(const struct conf *conf, const char *name)
{
	for (size_t i = 0; i < conf_control_count(conf); i++)
		if (strcmp(conf_control_path(conf, i), name) == 0)
			return i;
	return SIZE_MAX;
}

void control_reload(struct control *ctl, const struct conf *conf)
{
	size_t n = conf_control_count(conf);
	struct ctl_listener **next = xcalloc(n ? n : 1, sizeof(*next));
	size_t nnext = 0;
	struct str err = STR_INIT;

	control_limits(ctl, conf);
	for (struct ctl_conn *c = ctl->conns; c; c = c->next)
		bufferevent_set_timeouts(c->bev, &ctl->timeout, &ctl->timeout);
	/* Closed first, so a name that moves is free to bind below. */
	for (size_t j = 0; j < ctl->nls; j++) {
		struct ctl_listener *l = ctl->ls[j];
		size_t i = conf_index(conf, l->path);

		if (i == SIZE_MAX || conf_control_is_tcp(conf, i) != l->tcp) {
			log_panic("control listen %s=%s removed", l->tcp ? "address" : "path", l->path);
			listener_free(l);
			continue;
		}
		unsigned mode = conf_control_mode(conf, i);
		if (!l->tcp && mode != l->mode) {
			if (chmod(l->path, (mode_t)mode) < 0)
				log_panic("control listen path=%s chmod mode=%04o error=\"%s\"", l->path,
					  mode, strerror(errno));
			else
				log_panic("control listen path=%s mode=%04o changed", l->path, mode);
			l->mode = mode;
		}
		next[nnext++] = l;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = conf_control_path(conf, i);
		bool have = false;

		for (size_t j = 0; j < nnext && !have; j++)
			have = strcmp(next[j]->path, name) == 0;
		if (have)
			continue;
		str_clear(&err);
		struct ctl_listener *l = listener_open(ctl, conf, i, &err);
		if (l == NULL) {
			log_panic("control listen %s error=\"%s\"; not listening on it", name,
				  str_cstr(&err));
			continue;
		}
		next[nnext++] = l;
	}
	free(ctl->ls);
	ctl->ls = next;
	ctl->nls = nnext;
	str_free(&err);
}

void control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	/*
	 * Replies already queued (the `shutdown` command's own) are written
	 * once, without waiting: a local socket takes them at once, and a
	 * client that does not read loses them rather than holding the exit.
	 */
	for (struct ctl_conn *c = ctl->conns; c; c = c->next)
		evbuffer_write(bufferevent_get_output(c->bev), bufferevent_getfd(c->bev));
	while (ctl->conns)
		conn_free(ctl->conns);
	for (size_t i = 0; i < ctl->nls; i++)
		listener_free(ctl->ls[i]);
	free(ctl->ls);
	free(ctl);
}
