/*
 * rcpt_filter.c - refuse or defer recipients listed in a file
 *
 *     rcpt_filter "blocklist" {
 *       file = "/etc/impetus/rcpt_filter.txt"
 *       reject_text = "no such user here"          # optional
 *       tempfail_text = "mailbox busy, try later"  # optional
 *       check_interval = 1s                        # optional
 *     }
 *
 * The file holds one entry a line: an address or an @domain, an action,
 * and optionally the reply text for that entry:
 *
 *     # comments and blank lines are ignored
 *     bad@example.com        reject
 *     @spamtrap.example      reject   this domain takes no mail
 *     full@example.com       tempfail
 *
 * In the rcptto phase the recipient is looked up, first as the whole
 * address, then as @domain (both without regard to case): "reject"
 * answers 550 5.1.1, "tempfail" 451 4.7.1, no entry lets the next
 * subscriber decide (relay control, other modules).
 *
 * The file's syntax, its parser and the lookup are rcpt_list.c.
 *
 * Answers from memory, checks on the IO pool. The list in force is an
 * immutable, refcounted snapshot (struct rcpt_list): looking an address
 * up in it does not block, so the subscriber answers on the session's
 * loop at once while the file was checked less than `check_interval`
 * ago. When the check is due (and always with check_interval = 0) the
 * subscriber suspends the session instead: it takes a resume token
 * (imp_session_suspend), submits a job to the IO pool and returns
 * IMP_SUSPEND; the loop goes on serving other sessions, and the job
 * stat()s the file, re-reads it when it changed (mtime, size or inode),
 * records the check time, looks the recipient up and ends with
 * imp_session_resume(token, verdict, reply) from the pool thread. A
 * client that disconnects meanwhile costs nothing: the resume only frees
 * the token. Why not a job for every recipient: two thread hops per RCPT
 * (the pool submit, the resume posted back to the loop) cost about 10%
 * of relay throughput (bench/relay.sh), for a file that rarely changes.
 *
 * One check job at a time per filter (`checking`): RCPTs that arrive
 * while it is in flight are answered from the snapshot in force, i.e.
 * the list as it was until the new version is read; an edit is seen
 * within about check_interval (plus delay_ms) of being made. With
 * check_interval = 0 every lookup is a job, as a lookup in a remote
 * database would be, and several may run at once (`reload_lock` lets one
 * of them read the file). `delay_ms` makes every job sleep first, to
 * stand for a slow lookup in tests and demonstrations.
 *
 * Ownership. Jobs can outlive the instance (a client gone, a reload), so
 * everything a job reads is in a struct filter of its own, refcounted:
 * init holds one reference and every job in flight one. Its fields are
 * fixed after init except `table`, `sig`, `bad_sig`, `last_check`,
 * `checking` and `inst`, which are guarded by `lock`; a snapshot is
 * referenced by `table` and by each lookup reading it (its `refs`, under
 * `lock`), and the last reference frees it. fini clears `inst` under
 * `lock`, so a job logs only while the instance lives.
 *
 * Failure. At start-up a missing, unreadable or malformed file refuses the
 * instance with file:line and the reason. At run time a file that cannot
 * be read or parsed keeps the previous list in force and logs once per
 * change of the file; a job that cannot be submitted answers 451.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* getline, st_mtim; the tree's build defines it already */
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <impetus/impetus.h>

#include "rcpt_list.h"

static const struct imp_option options[] = {
	{ "file", IMP_OPT_STRING, NULL, 0, 0, true,
	  "recipient list: one \"address-or-@domain reject|tempfail [text]\" a line" },
	{ "reject_text", IMP_OPT_STRING, "recipient rejected", 0, 0, false,
	  "reply text of a reject entry that gives none (550 5.1.1)" },
	{ "tempfail_text", IMP_OPT_STRING, "recipient temporarily unavailable, try again later",
	  0, 0, false, "reply text of a tempfail entry that gives none (451 4.7.1)" },
	{ "delay_ms", IMP_OPT_INT, "0", 0, 60000, false,
	  "sleep this long in every lookup job (simulates a slow lookup; tests)" },
	{ "check_interval", IMP_OPT_INTERVAL, "1", 0, 86400, false,
	  "answer from memory this long after the file was last checked; 0: every lookup on the IO pool" },
};

/* What identifies one version of the file on disk. */
struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct filter {
	pthread_mutex_t lock;
	pthread_mutex_t reload_lock;
	int refs;			/* under lock */
	struct imp_instance *inst;	/* under lock; NULL once fini ran */
	struct imp_instance *self;	/* fixed: for the subscriber, which runs while inst lives */
	struct rcpt_list *table;	/* under lock */
	struct file_sig sig;		/* under lock: the version `table` came from */
	struct file_sig bad_sig;	/* under lock: a version already reported as bad */
	bool have_bad_sig;
	struct timespec last_check;	/* under lock: CLOCK_MONOTONIC of the last stat() */
	bool checking;			/* under lock: a check job is in flight (check_interval > 0) */
	char *path;
	char *reject_text;
	char *tempfail_text;
	int64_t delay_ms;
	int64_t check_interval;		/* seconds; 0: every lookup is a job */
};

/* One lookup in flight. */
struct job {
	struct filter *f;
	struct imp_resume *token;
	char *rcpt;			/* lower-cased copy */
	uint64_t session_id;
	bool check;			/* the filter's one check job: clears `checking` */
};

/* ------------------------------------------------------------------ */
/* versions of the file                                                */

/*
 * table_load - read path into a new list and its signature; NULL with err
 * (one line) on failure. Blocks on the disk: init (scheduler, once) or an
 * IO pool job, never a loop.
 */
static struct rcpt_list *table_load(const char *path, struct file_sig *sig, char *err,
				    size_t errsize)
{
	FILE *fp = fopen(path, "re");
	struct stat st;

	if (fp == NULL) {
		snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) < 0) {
		snprintf(err, errsize, "cannot stat %s: %s", path, strerror(errno));
		fclose(fp);
		return NULL;
	}
	struct rcpt_list *l = rcpt_list_read(fp, path, err, errsize);
	fclose(fp);
	if (l != NULL) {
		sig->dev = st.st_dev;
		sig->ino = st.st_ino;
		sig->size = st.st_size;
		sig->mtime = st.st_mtim;
	}
	return l;
}

/* sig_equal - whether two signatures name the same version of the file. */
static bool sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* the shared filter                                                   */

/* filter_log - a paniclog line, if the instance still lives (takes lock). */
static void filter_log(struct filter *f, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void filter_log(struct filter *f, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&f->lock);
	if (f->inst != NULL) {
		if (level == 0)
			imp_log_panic(f->inst, "%s", buf);
		else
			imp_log_debug(f->inst, level, "%s", buf);
	}
	pthread_mutex_unlock(&f->lock);
}

/* filter_unref - drop a reference; the last one frees the filter. */
static void filter_unref(struct filter *f)
{
	pthread_mutex_lock(&f->lock);
	bool last = --f->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (!last)
		return;
	rcpt_list_free(f->table);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->reload_lock);
	free(f->path);
	free(f->reject_text);
	free(f->tempfail_text);
	free(f);
}

/* check_due - whether the file was last checked check_interval or more before now (under lock). */
static bool check_due(const struct filter *f, const struct timespec *now)
{
	time_t secs = now->tv_sec - f->last_check.tv_sec;

	return secs > f->check_interval ||
	       (secs == f->check_interval && now->tv_nsec >= f->last_check.tv_nsec);
}

/*
 * filter_refresh - stat the file and re-read it if it changed since the
 * table in force was read (IO pool); record the check time. One job
 * reads at a time; the others go on with the table in force. A bad
 * version is reported once and the old table stays.
 */
static void filter_refresh(struct filter *f)
{
	struct stat st;
	struct file_sig now;
	struct timespec when;

	clock_gettime(CLOCK_MONOTONIC, &when);
	if (stat(f->path, &st) < 0) {
		now = (struct file_sig){ 0 };	/* "missing" is a version too: report once */
	} else {
		now.dev = st.st_dev;
		now.ino = st.st_ino;
		now.size = st.st_size;
		now.mtime = st.st_mtim;
	}
	pthread_mutex_lock(&f->lock);
	/* An edit made after `when` is seen by the next check: time it from before the stat(). */
	f->last_check = when;
	bool same = sig_equal(&now, &f->sig) || (f->have_bad_sig && sig_equal(&now, &f->bad_sig));
	pthread_mutex_unlock(&f->lock);
	if (same)
		return;
	if (pthread_mutex_trylock(&f->reload_lock) != 0)
		return;		/* another job is reading it (check_interval = 0) */

	char err[512];
	struct file_sig sig;
	struct rcpt_list *t = table_load(f->path, &sig, err, sizeof(err));
	struct rcpt_list *old = NULL;
	pthread_mutex_lock(&f->lock);
	if (t != NULL) {
		old = f->table;
		f->table = t;
		f->sig = sig;
		f->have_bad_sig = false;
		if (old != NULL && --old->refs > 0)
			old = NULL;	/* a lookup still reads it: the last one frees it */
		t->refs = 1;
	} else {
		f->bad_sig = now;
		f->have_bad_sig = true;
	}
	size_t n = t ? t->n : 0;
	pthread_mutex_unlock(&f->lock);
	rcpt_list_free(old);
	pthread_mutex_unlock(&f->reload_lock);
	if (t != NULL)
		filter_log(f, 1, "reloaded %s: %zu entries", f->path, n);
	else
		filter_log(f, 0, "%s; keeping the list read before", err);
}

/* table_ref - the snapshot in force, with a reference for the caller (takes lock). */
static struct rcpt_list *table_ref(struct filter *f)
{
	pthread_mutex_lock(&f->lock);
	struct rcpt_list *t = f->table;
	t->refs++;
	pthread_mutex_unlock(&f->lock);
	return t;
}

/* table_unref - drop a lookup's reference on a snapshot; the last one frees it. */
static void table_unref(struct filter *f, struct rcpt_list *t)
{
	pthread_mutex_lock(&f->lock);
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (last)
		rcpt_list_free(t);
}

/*
 * filter_answer - look rcpt (lower-cased) up in snapshot t: the verdict,
 * the reply for a hit, and the entry that matched (valid while t is
 * referenced) or NULL. Never blocks: any thread.
 */
static enum imp_verdict filter_answer(const struct filter *f, const struct rcpt_list *t,
				      const char *rcpt, struct imp_reply *reply,
				      const struct rcpt_entry **hitp)
{
	const struct rcpt_entry *hit = rcpt_list_lookup(t, rcpt);

	*hitp = hit;
	if (hit == NULL)
		return IMP_CONTINUE;
	if (hit->action == RCPT_REJECT) {
		imp_reply_set(reply, 550, "5.1.1", "%s", hit->text ? hit->text : f->reject_text);
		return IMP_REJECT;
	}
	imp_reply_set(reply, 451, "4.7.1", "%s", hit->text ? hit->text : f->tempfail_text);
	return IMP_TEMPFAIL;
}

/* ------------------------------------------------------------------ */
/* the rcptto subscriber and its job                                   */

/* check_end - the check job is over (done or never submitted): the next due RCPT may start one. */
static void check_end(struct filter *f)
{
	pthread_mutex_lock(&f->lock);
	f->checking = false;
	pthread_mutex_unlock(&f->lock);
}

/* job_free - release a job and its reference on the filter (ending its check if it had not run). */
static void job_free(struct job *j)
{
	if (j->check)
		check_end(j->f);
	filter_unref(j->f);
	free(j->rcpt);
	free(j);
}

/* job_run - on an IO pool thread: wait (delay_ms), check the file, look up, resume the session. */
static void job_run(void *arg)
{
	struct job *j = arg;
	struct filter *f = j->f;
	struct imp_reply reply = { 0 };
	const struct rcpt_entry *hit;

	if (f->delay_ms > 0) {
		struct timespec ts = { f->delay_ms / 1000, (f->delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	filter_refresh(f);
	if (j->check) {
		check_end(f);
		j->check = false;
	}
	struct rcpt_list *t = table_ref(f);
	enum imp_verdict verdict = filter_answer(f, t, j->rcpt, &reply, &hit);
	if (hit != NULL)
		filter_log(f, 1, "conn=%" PRIu64 " rcpt=%s entry=%s action=%s", j->session_id,
			   j->rcpt, hit->key, hit->action == RCPT_REJECT ? "reject" : "tempfail");
	else
		filter_log(f, 2, "conn=%" PRIu64 " rcpt=%s not listed", j->session_id, j->rcpt);
	table_unref(f, t);
	imp_session_resume(j->token, verdict, verdict == IMP_CONTINUE ? NULL : &reply);
	job_free(j);
}

/*
 * filter_rcptto - the rcptto subscriber: answer from the snapshot in
 * force while the file's check is not due (or is in flight), else
 * suspend the session and check and look up on the IO pool.
 */
static enum imp_verdict filter_rcptto(void *closure, struct imp_session *s,
				      struct imp_reply *reply)
{
	struct filter *f = closure;
	const char *rcpt = imp_session_rcpt(s);
	struct rcpt_list *t = NULL;
	bool check = false;
	struct timespec now;

	if (rcpt == NULL)
		return IMP_CONTINUE;
	char *copy = strdup(rcpt);
	if (copy == NULL) {
		imp_reply_set(reply, 451, "4.3.0", "temporary local problem");
		return IMP_TEMPFAIL;
	}
	rcpt_list_lower(copy);

	if (f->check_interval > 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		pthread_mutex_lock(&f->lock);
		if (f->checking || !check_due(f, &now)) {
			t = f->table;
			t->refs++;
		} else {
			f->checking = true;
			check = true;
		}
		pthread_mutex_unlock(&f->lock);
	}
	if (t != NULL) {
		/* The steady state: an in-memory answer on the loop, no thread hop. */
		const struct rcpt_entry *hit;
		enum imp_verdict v = filter_answer(f, t, copy, reply, &hit);
		if (hit != NULL)
			imp_log_debug(f->self, 1, "conn=%" PRIu64 " rcpt=%s entry=%s action=%s",
				      imp_session_id(s), copy, hit->key,
				      hit->action == RCPT_REJECT ? "reject" : "tempfail");
		else
			imp_log_debug(f->self, 2, "conn=%" PRIu64 " rcpt=%s not listed",
				      imp_session_id(s), copy);
		table_unref(f, t);
		free(copy);
		return v;
	}

	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		free(copy);
		if (check)
			check_end(f);
		imp_reply_set(reply, 451, "4.3.0", "temporary local problem");
		return IMP_TEMPFAIL;
	}
	j->rcpt = copy;
	j->session_id = imp_session_id(s);
	j->check = check;
	pthread_mutex_lock(&f->lock);
	f->refs++;
	pthread_mutex_unlock(&f->lock);
	j->f = f;

	j->token = imp_session_suspend(s);
	if (j->token == NULL) {
		job_free(j);
		imp_reply_set(reply, 451, "4.3.0", "temporary local problem");
		return IMP_TEMPFAIL;
	}
	int rc = imp_pool_submit(IMP_POOL_IO, job_run, NULL, j);
	if (rc < 0) {
		/* The token is taken: it must be resumed, exactly once. */
		struct imp_reply r;
		imp_reply_set(&r, 451, "4.3.0", "temporary local problem");
		filter_log(f, 0, "conn=%" PRIu64 " rcpt=%s: cannot submit the lookup: %s",
			   j->session_id, j->rcpt, strerror(-rc));
		imp_session_resume(j->token, IMP_TEMPFAIL, &r);
		job_free(j);
		return IMP_SUSPEND;
	}
	/* j may be gone already (the job ran): log from what is still ours. */
	imp_log_debug(f->self, 2, "conn=%" PRIu64 " rcpt=%s suspended for the lookup",
		      imp_session_id(s), rcpt);
	return IMP_SUSPEND;
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

/* filter_init - read the list (refusing a bad one), subscribe to rcptto. */
static int filter_init(struct imp_instance *inst, struct imp_error *err)
{
	const char *path = imp_option_string(inst, "file");
	const char *texts[2] = { imp_option_string(inst, "reject_text"),
				 imp_option_string(inst, "tempfail_text") };
	char why[512];

	for (size_t i = 0; i < 2; i++)
		if (!rcpt_list_text_ok(texts[i])) {
			imp_error_set(err, "%s: at most %d bytes, no control characters",
				      i ? "tempfail_text" : "reject_text", RCPT_LIST_TEXT_MAX);
			return -1;
		}
	struct filter *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		imp_error_set(err, "out of memory");
		return -1;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->reload_lock, NULL);
	f->refs = 1;
	f->path = strdup(path);
	f->reject_text = strdup(texts[0]);
	f->tempfail_text = strdup(texts[1]);
	f->delay_ms = imp_option_int(inst, "delay_ms");
	f->check_interval = imp_option_int(inst, "check_interval");
	f->self = inst;
	if (f->path == NULL || f->reject_text == NULL || f->tempfail_text == NULL) {
		imp_error_set(err, "out of memory");
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &f->last_check);	/* reading the file is its first check */
	f->table = table_load(path, &f->sig, why, sizeof(why));
	if (f->table == NULL) {
		imp_error_set(err, "%s", why);
		goto fail;
	}
	f->table->refs = 1;
	int rc = imp_hook_validate(inst, IMP_PHASE_RCPTTO, filter_rcptto, f, IMP_ORDER_DEFAULT);
	if (rc < 0) {
		imp_error_set(err, "cannot subscribe to rcptto: %s", strerror(-rc));
		goto fail;
	}
	f->inst = inst;
	imp_instance_set_data(inst, f);
	imp_log_debug(inst, 1, "loaded %s: %zu entries", path, f->table->n);
	return 0;

fail:
	filter_unref(f);
	return -1;
}

/* filter_fini - stop logging through the instance; jobs in flight keep the filter. */
static void filter_fini(struct imp_instance *inst)
{
	struct filter *f = imp_instance_data(inst);

	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->inst = NULL;
	pthread_mutex_unlock(&f->lock);
	filter_unref(f);
}

IMP_MODULE_DEFINE(.name = "rcpt_filter", .version = "1.0",
		  .description = "reject or tempfail recipients listed in a file (IO pool checks)",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = filter_init, .fini = filter_fini);
