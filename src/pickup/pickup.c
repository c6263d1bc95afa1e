/*
 * pickup.c - import the pickup directory: files `impetus sendmail` wrote
 * while the daemon was not answering
 *
 * Every second (and at once on start) the scheduler sends one scan job to
 * the IO pool, unless the previous batch is still being injected. The job
 * lists <spoolbase>/pickup (names starting with '.' are a writer's
 * temporary files and are skipped), reads and parses up to SCAN_BATCH
 * files, moves a malformed one to bad/ (rename, fsync both directories)
 * and posts the batch to the scheduler (MSGS_PICKUP_SCANNED). There each
 * message goes through the one injection path, queue_inject, with
 * protocol "sendmail" and an R line, and the file is unlinked once the
 * message is durable.
 *
 * Exactly once. The message carries the file's name in its context
 * (PICKUP_VCTX_FILE), so the spool knows where it came from. The file is
 * unlinked, and the directory fsynced, in the done callback on the
 * scheduler: the same thread that must take a delivery's outcome before
 * the spool records the message as done. So when the spool holds the
 * message finished, the unlink is already durable; a crash between the
 * spooling and the unlink leaves a live message that recovery reports
 * (pickup_note_recovered), and the file whose name it carries is then
 * removed instead of injected a second time. The cost is an unlink and a
 * directory fsync on the scheduler per picked-up message: this path only
 * runs after the daemon was down, never on the SMTP path.
 *
 * Failures: a file that cannot be read for a passing reason (no
 * descriptor, no memory, EIO) stays for the next scan, with a paniclog
 * line; one the daemon may not read (EACCES) or a malformed one goes to bad/ with a paniclog line and
 * never blocks the others; a spool failure (-ENOSPC) leaves the file for
 * the next scan. Ownership: struct pickup is the scheduler's; a scan job
 * belongs to the pool thread running it until it is posted back.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include <impetus/inject.h>

#include "config/config.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/strmap.h"
#include "api/api_runtime.h"
#include "log/log.h"
#include "message/envelope.h"
#include "msgs/msgs.h"
#include "pickup/pickup.h"
#include "pickup/pickup_file.h"
#include "queue/queue.h"

#define SCAN_BATCH 256
#define SCAN_SECONDS 1

struct pickup {
	char *dir;
	char *bad;
	struct loop *scheduler;
	struct pool *io_pool, *cpu_pool;
	struct spool *spool;
	struct queue *queue;
	struct strmap *recovered;	/* file name -> "" : spooled before a crash */
	struct event *timer;
	size_t busy;			/* a scan job, or injections, in flight */
	bool more;			/* the last scan stopped at SCAN_BATCH */
	bool stopping;
};

struct pickup_item {
	char *name;
	char *buf;			/* the whole file */
	size_t len;
	uid_t owner;
	struct pickup_file f;		/* points into buf */
	char *problem;			/* set: moved to bad/ (or unreadable), logged by the scheduler */
	bool moved;
	struct pickup *p;
};

struct scan_job {
	struct pickup *p;
	uint64_t max_size;
	struct pickup_item *items;
	size_t n;
	bool more;
};

/* ==================== helpers ==================== */

/* path_join - "dir/name", allocated. */
static char *path_join(const char *dir, const char *name)
{
	struct str s = STR_INIT;

	str_appendf(&s, "%s/%s", dir, name);
	return s.s;
}

/* item_free - what an item owns (not the item: it may sit in a scan job's array). */
static void item_free(struct pickup_item *it)
{
	pickup_file_free(&it->f);
	free(it->name);
	free(it->buf);
	free(it->problem);
}

/* ==================== the scan job (IO pool) ==================== */

/* read_file - the whole regular file at path, bounded by max bytes; -errno. */
static int read_file(const char *path, uint64_t max, char **out, size_t *outlen, uid_t *owner)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	rc = fs_pread_all(fd, buf, (size_t)st.st_size, 0);
	if (rc < 0)
		goto out;
	buf[st.st_size] = '\0';
	*out = buf;
	*outlen = (size_t)st.st_size;
	*owner = st.st_uid;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* move_bad - rename a malformed file into bad/, durably. */
static bool move_bad(struct pickup *p, const char *name)
{
	char *from = path_join(p->dir, name), *to = path_join(p->bad, name);
	bool ok = rename(from, to) == 0;

	/*
	 * A failed fsync only risks the file coming back to pickup/ after a
	 * crash, to be found malformed and moved again: not worth failing for.
	 */
	if (ok) {
		(void)fs_fsync_dir(p->bad);
		(void)fs_fsync_dir(p->dir);
	}
	free(from);
	free(to);
	return ok;
}

/* scan_one - read and parse one file into it; a bad one is moved aside. */
static void scan_one(struct scan_job *j, struct pickup_item *it)
{
	struct str err = STR_INIT;
	char *path = path_join(j->p->dir, it->name);
	int rc = read_file(path, j->max_size + PICKUP_HEADER_MAX, &it->buf, &it->len, &it->owner);

	free(path);
	if (rc == -ENOENT) {
		it->problem = xstrdup("vanished");	/* nothing to say: skipped quietly */
		it->moved = true;
	} else if (rc == -EFBIG || rc == -EINVAL || rc == -ELOOP || rc == -ENXIO) {
		str_appends(&err, rc == -EFBIG ? "larger than Max_Message_Size" :
			    "not a regular file");
	} else if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -EIO || rc == -EINTR) {
		str_appendf(&err, "cannot read: %s", strerror(-rc));
		it->problem = err.s;	/* passing trouble: stays for the next scan */
		return;
	} else if (rc < 0) {
		/* EACCES and the like do not pass: aside, where an operator sees it. */
		str_appendf(&err, "cannot read: %s", strerror(-rc));
	} else if (pickup_file_parse(it->buf, it->len, &it->f, &err) == 0) {
		if (it->f.len > j->max_size) {
			str_appends(&err, "larger than Max_Message_Size");
		} else {
			str_free(&err);
			return;
		}
	}
	if (it->moved) {
		str_free(&err);
		return;
	}
	it->moved = move_bad(j->p, it->name);
	if (!it->moved)
		str_appendf(&err, " (and cannot be moved to bad/: %s)", strerror(errno));
	it->problem = err.s ? err.s : xstrdup("malformed");
	it->moved = true;
}

/* scan_run - IO pool: list the directory, read up to SCAN_BATCH files. */
static void scan_run(void *arg)
{
	struct scan_job *j = arg;
	DIR *d = opendir(j->p->dir);
	struct dirent *de;
	size_t cap = 0;

	while (d && (de = readdir(d)) != NULL) {
		/* Writers' temporary files, and our own bad/: never read. */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "bad") == 0 || de->d_type == DT_DIR)
			continue;
		if (j->n == SCAN_BATCH) {
			j->more = true;
			break;
		}
		if (j->n == cap) {
			cap = cap ? 2 * cap : 16;
			j->items = xrealloc(j->items, cap * sizeof(*j->items));
		}
		struct pickup_item *it = &j->items[j->n++];

		memset(it, 0, sizeof(*it));
		it->name = xstrdup(de->d_name);
		it->p = j->p;
		scan_one(j, it);
	}
	if (d)
		closedir(d);
	msgs_post(j->p->scheduler, MSGS_PICKUP_SCANNED, j);
}

/* ==================== injection (scheduler) ==================== */

/* done_one - one file is finished with (injected, skipped, failed). */
static void done_one(struct pickup *p)
{
	if (--p->busy == 0 && p->more && !p->stopping) {
		p->more = false;
		event_active(p->timer, EV_TIMEOUT, 0);
	}
}

/* remove_file - the message is durable: the file goes, durably, before anything can finish it. */
static void remove_file(struct pickup *p, const char *name)
{
	char *path = path_join(p->dir, name);
	int rc;

	if (unlink(path) < 0 && errno != ENOENT)
		log_panic("pickup file=%s unlink failed: %s", name, strerror(errno));
	/*
	 * Said aloud: if the unlink is not durable, a crash after the message
	 * finished could bring the file back and send it a second time.
	 */
	rc = fs_fsync_dir(p->dir);
	if (rc < 0)
		log_panic("pickup file=%s directory fsync failed: %s", name, strerror(-rc));
	free(path);
}

/* on_injected - scheduler: the message is durable (err 0) and its file can go, or it stays. */
static void on_injected(void *arg, int err, uint64_t id)
{
	struct pickup_item *it = arg;
	struct pickup *p = it->p;

	if (err == 0)
		remove_file(p, it->name);
	else
		log_panic("pickup file=%s spool failed, kept for a retry: %s", it->name,
			  strerror(-err));
	item_free(it);
	free(it);
	done_one(p);
}

/* span_dup - a parsed field as a string of its own. */
static char *span_dup(struct pickup_span s)
{
	return xstrndup(s.s ? s.s : "", s.len);
}

/* inject_one - hand one parsed file to the injection path; takes it. */
static void inject_one(struct pickup *p, struct pickup_item *it, struct conf *conf)
{
	struct envelope *env = envelope_new();
	char uid[24];

	env->sender = span_dup(it->f.sender);
	env->client_ip = xstrdup("");
	env->helo = xstrdup("");
	env->protocol = xstrdup("sendmail");
	env->binding = xstrdup("");
	env->binding_group = xstrdup("");
	env->ret = it->f.ret;
	env->body_type = it->f.body_type;
	if (it->f.envid.len)
		env->envid = span_dup(it->f.envid);
	env->nrcpt = it->f.nrcpts;
	env->rcpts = xcalloc(env->nrcpt, sizeof(*env->rcpts));
	for (size_t i = 0; i < env->nrcpt; i++) {
		env->rcpts[i].addr = span_dup(it->f.rcpts[i]);
		env->rcpts[i].notify = it->f.notify;
	}
	env->vctx = vctx_new();
	vctx_set(env->vctx, PICKUP_VCTX_FILE, it->name);
	snprintf(uid, sizeof(uid), "%lu", (unsigned long)it->owner);
	vctx_set(env->vctx, PICKUP_VCTX_UID, uid);
	queue_inject_crlf(&env->body, it->f.data, it->f.len);
	/* The bytes are copied: the file's buffer can go now. */
	free(it->buf);
	it->buf = NULL;
	pickup_file_free(&it->f);

	struct queue_inject_req r = {
		.q = p->queue, .spool = p->spool, .scheduler = p->scheduler,
		.cpu_pool = p->cpu_pool, .conf = conf, .flags = IMP_INJECT_LOG | IMP_INJECT_SIGN,
		.done = on_injected, .arg = it,
	};
	queue_inject(&r, env);
}

/* pickup_on_scanned - scheduler (MSGS_PICKUP_SCANNED): log the bad files, inject the good. */
void pickup_on_scanned(void *arg)
{
	struct scan_job *j = arg;
	struct pickup *p = j->p;
	struct conf *conf = p->stopping ? NULL : api_runtime_conf();

	p->more = j->more;
	for (size_t i = 0; i < j->n; i++) {
		struct pickup_item *it = &j->items[i];

		if (it->problem) {
			if (strcmp(it->problem, "vanished") != 0)
				log_panic("pickup file=%s %s: %s", it->name,
					  it->moved ? "moved to bad/" : "skipped", it->problem);
			item_free(it);
			continue;
		}
		if (conf == NULL) {
			item_free(it);	/* stopping: the next start imports it */
			continue;
		}
		if (strmap_get(p->recovered, it->name)) {
			/* Spooled before a crash took the daemon ahead of the unlink. */
			log_panic("pickup file=%s already spooled before a restart: removed, not injected again",
				  it->name);
			remove_file(p, it->name);
			item_free(it);
			continue;
		}
		struct pickup_item *own = XNEW(struct pickup_item);

		*own = *it;
		p->busy++;
		inject_one(p, own, conf);
	}
	if (conf)
		conf_unref(conf);
	free(j->items);
	free(j);
	done_one(p);
}

/* tick - scheduler timer: one scan at a time, and none while a batch is injected. */
static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct pickup *p = arg;
	struct conf *conf;
	struct scan_job *j;

	if (p->busy || p->stopping)
		return;
	j = XNEW(struct scan_job);
	j->p = p;
	conf = api_runtime_conf();
	j->max_size = conf ? (uint64_t)conf_int(conf, CONF_OPT_MAX_MESSAGE_SIZE) : 0;
	if (j->max_size == 0)
		j->max_size = UINT64_C(1) << 32;
	conf_unref(conf);
	p->busy++;
	pool_submit(p->io_pool, scan_run, j);
}

/* ==================== life cycle ==================== */

struct pickup *pickup_new(const char *spoolbase, struct str *err)
{
	struct pickup *p = XNEW(struct pickup);
	struct stat st;
	int rc;

	p->dir = path_join(spoolbase, "pickup");
	p->bad = path_join(p->dir, "bad");
	p->recovered = strmap_new();
	rc = fs_mkdir_p(p->bad, 0700);
	/* The umask narrows mkdir's mode: set the drop box's own. */
	if (rc == 0 && chmod(p->dir, 01733) < 0)
		rc = -errno;
	if (rc == 0 && chmod(p->bad, 0700) < 0)
		rc = -errno;
	if (rc < 0) {
		str_appendf(err, "cannot create %s: %s", p->bad, strerror(-rc));
		pickup_free(p);
		return NULL;
	}
	/* Other users reach the drop box through the spool directory: search, not read. */
	if (stat(spoolbase, &st) == 0 && (st.st_mode & 0011) != 0011)
		chmod(spoolbase, (st.st_mode & 07777) | 0011);
	return p;
}

void pickup_note_recovered(struct pickup *p, const struct envelope *env)
{
	const char *name = vctx_get(env->vctx, PICKUP_VCTX_FILE);

	if (name && strmap_get(p->recovered, name) == NULL)
		strmap_put(p->recovered, name, xstrdup(""));
}

void pickup_start(struct pickup *p, struct loop *scheduler, struct pool *io_pool,
		  struct pool *cpu_pool, struct spool *spool, struct queue *queue)
{
	struct timeval tv = { SCAN_SECONDS, 0 };

	p->scheduler = scheduler;
	p->io_pool = io_pool;
	p->cpu_pool = cpu_pool;
	p->spool = spool;
	p->queue = queue;
	p->timer = event_new(loop_base(scheduler), -1, EV_PERSIST, tick, p);
	event_add(p->timer, &tv);
	tick(-1, 0, p);
}

void pickup_stop(struct pickup *p)
{
	p->stopping = true;
	if (p->timer)
		event_del(p->timer);
}

/* free_value - strmap_each callback: free one recovered-name entry's value. */
static void free_value(void *ctx, const char *key, void *value)
{
	free(value);
}

void pickup_free(struct pickup *p)
{
	if (p == NULL)
		return;
	if (p->timer)
		event_free(p->timer);
	strmap_each(p->recovered, free_value, NULL);
	strmap_free(p->recovered);
	free(p->dir);
	free(p->bad);
	free(p);
}
