/*
 * submit.c - the tools' blocking SMTP client (submit.h)
 *
 * Every read and write waits at most SUBMIT_TIMEOUT seconds (poll), so a
 * stuck daemon makes the tool fail with a message instead of hanging a
 * cron job forever. Replies are parsed strictly (three digits, then '-'
 * or ' '), bounded by SUBMIT_REPLY_MAX.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "core/mem.h"
#include "tools/submit.h"

struct conf *submit_conf_load(const char *path, struct str *err)
{
	const char *env = getenv("IMPETUS_CONFIG");

	if (path == NULL && env && *env)
		path = env;
	/* cron and PHP run sendmail with no option to say where: the system's file. */
	if (path == NULL && access(IMPETUS_SYSTEM_CONF, F_OK) == 0)
		path = IMPETUS_SYSTEM_CONF;
	return path ? conf_load_file(path, err) : conf_load_default(err);
}

char *submit_listener(const struct conf *c, struct str *err)
{
	struct str out = STR_INIT;
	const char *a;

	if (conf_listener_count(c) == 0) {
		str_appends(err, "the configuration has no ESMTP_Listener Listen");
		return NULL;
	}
	a = conf_listener_address(conf_listener_at(c, 0));
	/* A wildcard listener is reached on loopback. */
	if (strncmp(a, "0.0.0.0:", 8) == 0)
		str_appendf(&out, "127.0.0.1:%s", a + 8);
	else if (strncmp(a, "[::]:", 5) == 0)
		str_appendf(&out, "[::1]:%s", a + 5);
	else if (strncmp(a, "*:", 2) == 0 || strncmp(a, ":", 1) == 0)
		str_appendf(&out, "127.0.0.1:%s", strchr(a, ':') + 1);
	else
		str_appends(&out, a);
	return out.s;
}

/* wait_fd - poll for events; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, SUBMIT_TIMEOUT * 1000);
	} while (r < 0 && errno == EINTR);
	return r;
}

int submit_connect(struct submit *s, const char *addr, struct str *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST }, *ai = NULL;
	char host[256];
	const char *port;
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host)) {
			str_appendf(err, "bad listener address %s", addr);
			return -EINVAL;
		}
		memcpy(host, addr + 1, (size_t)(end - addr - 1));
		host[end - addr - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');

		if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
			str_appendf(err, "bad listener address %s", addr);
			return -EINVAL;
		}
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		port = colon + 1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		str_appendf(err, "bad listener address %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	s->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || connect(s->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = -errno;
		str_appendf(err, "cannot connect to %s: %s", addr, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	return 0;
}

int submit_write(struct submit *s, const char *p, size_t n)
{
	if (s->trace)
		fprintf(s->trace, ">>> %.*s", (int)(n > 200 ? 200 : n), p);
	if (s->trace && n > 200)
		fprintf(s->trace, "... (%zu bytes)\n", n);
	while (n > 0) {
		ssize_t w;

		if (wait_fd(s->fd, POLLOUT) <= 0)
			return -1;
		w = send(s->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* read_line - one line (without CRLF) from the connection into line; -1 at EOF/error. */
static int read_line(struct submit *s, struct str *line)
{
	for (;;) {
		char *nl = s->in.len ? memchr(s->in.s, '\n', s->in.len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - s->in.s);

			str_clear(line);
			str_append(line, s->in.s, n && nl[-1] == '\r' ? n - 1 : n);
			memmove(s->in.s, nl + 1, s->in.len - n - 1);
			s->in.len -= n + 1;
			s->in.s[s->in.len] = '\0';
			return 0;
		}
		if (s->in.len > SUBMIT_REPLY_MAX)
			return -1;
		char buf[4096];
		ssize_t r;

		if (wait_fd(s->fd, POLLIN) <= 0)
			return -1;
		r = recv(s->fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		str_append(&s->in, buf, (size_t)r);
	}
}

int submit_reply(struct submit *s, struct str *text)
{
	struct str line = STR_INIT;
	int code = -1;

	str_clear(text);
	for (;;) {
		if (read_line(s, &line) < 0 || line.len < 3 || line.s[0] < '1' || line.s[0] > '5' ||
		    line.s[1] < '0' || line.s[1] > '9' || line.s[2] < '0' || line.s[2] > '9' ||
		    (line.len > 3 && line.s[3] != ' ' && line.s[3] != '-')) {
			code = -1;
			break;
		}
		if (s->trace)
			fprintf(s->trace, "<<< %s\n", line.s);
		int c = atoi(line.s) /* three digits, checked */;

		if (code > 0 && c != code) {
			code = -1;
			break;
		}
		code = c;
		if (text->len)
			str_appendc(text, '\n');
		str_appends(text, line.s);
		if (line.len == 3 || line.s[3] == ' ')
			break;
		if (text->len > SUBMIT_REPLY_MAX) {
			code = -1;
			break;
		}
	}
	if (code < 0 && text->len == 0)
		str_appends(text, "connection lost or malformed reply");
	str_free(&line);
	return code;
}

int submit_cmd(struct submit *s, const char *line, struct str *text)
{
	struct str out = STR_INIT;
	int rc;

	str_appendf(&out, "%s\r\n", line);
	rc = submit_write(s, out.s, out.len);
	str_free(&out);
	if (rc < 0) {
		str_clear(text);
		str_appends(text, "connection lost");
		return -1;
	}
	return submit_reply(s, text);
}

/* has_ext - whether an EHLO reply line names the extension kw. */
static bool has_ext(const char *reply, const char *kw, const char **arg)
{
	size_t n = strlen(kw);

	for (const char *p = reply; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len >= 4 + n && strncasecmp(p + 4, kw, n) == 0 &&
		    (len == 4 + n || p[4 + n] == ' ')) {
			if (arg)
				*arg = p + 4 + n;
			return true;
		}
		p = e ? e + 1 : NULL;
	}
	return false;
}

int submit_hello(struct submit *s, const char *name, struct str *text)
{
	struct str line = STR_INIT;
	const char *arg = NULL;
	int code = submit_reply(s, text);

	if (code != 220)
		return -1;
	str_appendf(&line, "EHLO %s", name);
	code = submit_cmd(s, line.s, text);
	str_free(&line);
	if (code != 250)
		return -1;
	s->pipelining = has_ext(text->s, "PIPELINING", NULL);
	s->eightbit = has_ext(text->s, "8BITMIME", NULL);
	s->dsn = has_ext(text->s, "DSN", NULL);
	s->smtputf8 = has_ext(text->s, "SMTPUTF8", NULL);
	if (has_ext(text->s, "SIZE", &arg) && arg && *arg == ' ')
		s->max_size = (size_t)strtoull(arg + 1, NULL, 10);
	return 0;
}

void submit_data_encode(struct str *out, const char *msg, size_t len)
{
	size_t i = 0;

	str_reserve(out, len + len / 32 + 8);
	while (i < len) {
		const char *nl = memchr(msg + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (msg + i)) : len - i;
		size_t m = n && msg[i + n - 1] == '\r' ? n - 1 : n;

		if (m && msg[i] == '.')
			str_appendc(out, '.');
		str_append(out, msg + i, m);
		str_append(out, "\r\n", 2);
		i += n + (nl ? 1 : 0);
	}
	str_append(out, ".\r\n", 3);
}

void submit_close(struct submit *s)
{
	struct str text = STR_INIT;

	if (s->fd >= 0) {
		submit_cmd(s, "QUIT", &text);
		close(s->fd);
	}
	s->fd = -1;
	str_free(&text);
	str_free(&s->in);
}
