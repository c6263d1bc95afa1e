/*
 * log.c - buffered, mutex-guarded log files (see log.h)
 */
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/mem.h"
#include "log/log_event.h"

#define LOG_FLUSH_THRESHOLD (64 * 1024)

struct logfile {
	pthread_mutex_t mu;
	const char *name;
	char *path;		/* NULL: not opened, lines go to stderr */
	int fd;
	struct str buf;
};

static struct logfile logs[LOG__COUNT] = {
	[LOG_MAIN] = { PTHREAD_MUTEX_INITIALIZER, "mainlog", NULL, -1, STR_INIT },
	[LOG_BOUNCE] = { PTHREAD_MUTEX_INITIALIZER, "bouncelog", NULL, -1, STR_INIT },
	[LOG_REJECT] = { PTHREAD_MUTEX_INITIALIZER, "rejectlog", NULL, -1, STR_INIT },
	[LOG_PANIC] = { PTHREAD_MUTEX_INITIALIZER, "paniclog", NULL, -1, STR_INIT },
};

static bool stderr_echo = true;

/* write_all - write a whole buffer to fd, retrying short writes. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* flush_locked - write out lf's buffer; lf->mu held. */
static void flush_locked(struct logfile *lf)
{
	if (lf->buf.len == 0)
		return;
	int fd = lf->fd >= 0 ? lf->fd : STDERR_FILENO;
	int rc = write_all(fd, lf->buf.s, lf->buf.len);
	if (rc < 0 && fd != STDERR_FILENO)
		fprintf(stderr, "impetusd: cannot write %s: %s (%zu bytes dropped)\n",
			lf->path, strerror(-rc), lf->buf.len);
	str_clear(&lf->buf);
}

static int open_one(struct logfile *lf, struct str *err)
{
	int fd = open(lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0) {
		if (err)
			str_appendf(err, "cannot open %s: %s", lf->path, strerror(errno));
		return -errno;
	}
	lf->fd = fd;
	return 0;
}

int log_open(const char *dir, struct str *err)
{
	int rc = fs_mkdir_p(dir, 0750);

	if (rc < 0) {
		str_appendf(err, "cannot create log directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	for (int i = 0; i < LOG__COUNT; i++) {
		struct logfile *lf = &logs[i];
		struct str path = STR_INIT;

		str_appendf(&path, "%s/%s", dir, lf->name);
		pthread_mutex_lock(&lf->mu);
		flush_locked(lf);
		if (lf->fd >= 0)
			close(lf->fd);
		lf->fd = -1;
		free(lf->path);
		lf->path = str_steal(&path);
		rc = open_one(lf, err);
		pthread_mutex_unlock(&lf->mu);
		if (rc < 0)
			return rc;
	}
	return 0;
}

bool log_file_path(enum log_file f, struct str *out)
{
	bool ok = false;

	if ((unsigned)f >= LOG__COUNT)
		return false;
	pthread_mutex_lock(&logs[f].mu);
	if (logs[f].path) {
		str_appends(out, logs[f].path);
		ok = true;
	}
	pthread_mutex_unlock(&logs[f].mu);
	return ok;
}

void log_reopen(void)
{
	for (int i = 0; i < LOG__COUNT; i++) {
		struct logfile *lf = &logs[i];
		struct str err = STR_INIT;

		pthread_mutex_lock(&lf->mu);
		flush_locked(lf);
		if (lf->path) {
			int old = lf->fd;
			lf->fd = -1;
			if (open_one(lf, &err) < 0) {
				/* Keep writing to the old file rather than lose lines. */
				lf->fd = old;
				fprintf(stderr, "impetusd: %s\n", str_cstr(&err));
			} else if (old >= 0) {
				close(old);
			}
		}
		pthread_mutex_unlock(&lf->mu);
		str_free(&err);
	}
}

void log_flush(void)
{
	for (int i = 0; i < LOG__COUNT; i++) {
		pthread_mutex_lock(&logs[i].mu);
		flush_locked(&logs[i]);
		pthread_mutex_unlock(&logs[i].mu);
	}
}

void log_close(void)
{
	for (int i = 0; i < LOG__COUNT; i++) {
		struct logfile *lf = &logs[i];

		pthread_mutex_lock(&lf->mu);
		flush_locked(lf);
		if (lf->fd >= 0)
			close(lf->fd);
		lf->fd = -1;
		free(lf->path);
		lf->path = NULL;
		str_free(&lf->buf);
		pthread_mutex_unlock(&lf->mu);
	}
}

void log_set_stderr_echo(bool on)
{
	stderr_echo = on;
}

void log_line(enum log_file f, const char *line, size_t len)
{
	struct logfile *lf = &logs[f];

	pthread_mutex_lock(&lf->mu);
	str_append(&lf->buf, line, len);
	str_appendc(&lf->buf, '\n');
	if (lf->buf.len >= LOG_FLUSH_THRESHOLD || f == LOG_PANIC || lf->fd < 0)
		flush_locked(lf);
	pthread_mutex_unlock(&lf->mu);
}

void log_panic(const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	str_appendf(&line, "%s ", stamp);
	va_start(ap, fmt);
	str_vappendf(&line, fmt, ap);
	va_end(ap);
	log_line(LOG_PANIC, line.s, line.len);
	if (stderr_echo && logs[LOG_PANIC].fd >= 0)
		fprintf(stderr, "impetusd: %s\n", line.s);
	str_free(&line);
}

void log_reject(const struct conf *conf, const char *remote, const char *local,
		const char *conn_id, const char *phase, const char *reply)
{
	struct str line = STR_INIT;
	int64_t now = (int64_t)time(NULL);

	str_appendf(&line, "%lld: R=\"%s\" L=\"%s\" C=\"%s\" P=\"%s\" E=%s",
		    (long long)now, remote, local, conn_id, phase, reply);
	/* The reply code, when the text starts with one ("550 5.7.1 ..."). */
	int code = 0;
	if (reply[0] >= '2' && reply[0] <= '5' && reply[1] >= '0' && reply[1] <= '9' &&
	    reply[2] >= '0' && reply[2] <= '9' && (reply[3] == ' ' || reply[3] == '-' || !reply[3]))
		code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
	/* The event's peer is the IP, as in R events: "[v6]:port" and "v4:port" lose the port. */
	char ip[64];
	const char *from = remote, *end = NULL;
	if (from[0] == '[' && strchr(from, ']')) {
		from++;
		end = strchr(from, ']');
	} else if (strchr(from, ':') && strchr(from, ':') == strrchr(from, ':')) {
		end = strrchr(from, ':');
	}
	snprintf(ip, sizeof(ip), "%.*s", end ? (int)(end - from) : (int)strlen(from), from);
	struct imp_log_event ev = {
		.type = IMP_LOG_REJECTION, .time = now,
		.message_id = "", .conn_id = conn_id, .sender = "", .recipient = "",
		.binding_group = "", .binding = "", .domain = "",
		.peer = ip, .peer_host = "", .protocol = "", .phase = phase,
		.code = code, .reply = reply, .line = line.s,
	};
	log_event_emit(conf, &ev);
	str_free(&line);
}
