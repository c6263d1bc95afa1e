/*
 * rcpt_filter.c - refuse or defer recipients listed in a file
 *
 *     rcpt_filter "blocklist" {
 *       file = "/etc/impetus/rcpt_filter.txt"
 *       reject_text = "no such user here"          # optional
 *       tempfail_text = "mailbox busy, try later"  # optional
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
 * Suspend and resume. The lookup runs on the IO pool, never on the
 * session's loop: it stat()s the file and re-reads it when it changed
 * (mtime, size or inode), which may block on the disk. The subscriber
 * takes a resume token (imp_session_suspend), submits the job and
 * returns IMP_SUSPEND; the loop goes on serving other sessions, and the
 * job ends with imp_session_resume(token, verdict, reply) from the pool
 * thread. A client that disconnects meanwhile costs nothing: the resume
 * only frees the token. `delay_ms` makes each job sleep first, to stand
 * for a slow lookup (a remote database) in tests and demonstrations.
 *
 * Ownership. Jobs can outlive the instance (a client gone, a reload), so
 * everything a job reads is in a struct filter of its own, refcounted:
 * init holds one reference and every job in flight one. Its fields are
 * fixed after init except `table`, `sig`, `bad_sig` and `inst`, which are
 * guarded by `lock`; `reload_lock` lets one job at a time read the file.
 * fini clears `inst` under `lock`, so a job logs only while the instance
 * lives.
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
	struct rcpt_list *table;	/* under lock */
	struct file_sig sig;		/* under lock: the version `table` came from */
	struct file_sig bad_sig;	/* under lock: a version already reported as bad */
	bool have_bad_sig;
	char *path;
	char *reject_text;
	char *tempfail_text;
	int64_t delay_ms;
};

/* One lookup in flight. */
struct job {
	struct filter *f;
	struct imp_resume *token;
	char *rcpt;			/* lower-cased copy */
	uint64_t session_id;
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

/*
 * filter_refresh - re-read the file if it changed since the table in
 * force was read (IO pool). One job reads at a time; the others go on
 * with the table in force. A bad version is reported once and the old
 * table stays.
 */
static void filter_refresh(struct filter *f)
{
	struct stat st;
	struct file_sig now;

	if (stat(f->path, &st) < 0) {
		now = (struct file_sig){ 0 };	/* "missing" is a version too: report once */
	} else {
		now.dev = st.st_dev;
		now.ino = st.st_ino;
		now.size = st.st_size;
		now.mtime = st.st_mtim;
	}
	pthread_mutex_lock(&f->lock);
	bool same = sig_equal(&now, &f->sig) || (f->have_bad_sig && sig_equal(&now, &f->bad_sig));
	pthread_mutex_unlock(&f->lock);
	if (same)
		return;
	if (pthread_mutex_trylock(&f->reload_lock) != 0)
		return;		/* another job is reading it */

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

/*
 * filter_lookup - the action for rcpt (lower-cased), its reply text and the
 * key that matched, copied out; false when no entry matches.
 */
static bool filter_lookup(struct filter *f, const char *rcpt, enum rcpt_action *action,
			  char *text, size_t textsize, char *matched, size_t matchedsize)
{
	pthread_mutex_lock(&f->lock);
	struct rcpt_list *t = f->table;
	t->refs++;
	pthread_mutex_unlock(&f->lock);

	const struct rcpt_entry *hit = rcpt_list_lookup(t, rcpt);
	if (hit != NULL) {
		*action = hit->action;
		snprintf(text, textsize, "%s",
			 hit->text ? hit->text
				   : (hit->action == RCPT_REJECT ? f->reject_text : f->tempfail_text));
		snprintf(matched, matchedsize, "%s", hit->key);
	}

	pthread_mutex_lock(&f->lock);
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (last)
		rcpt_list_free(t);
	return hit != NULL;
}

/* ------------------------------------------------------------------ */
/* the rcptto subscriber and its job                                   */

/* job_free - release a job and its reference on the filter. */
static void job_free(struct job *j)
{
	filter_unref(j->f);
	free(j->rcpt);
	free(j);
}

/* job_run - on an IO pool thread: wait (delay_ms), refresh, look up, resume the session. */
static void job_run(void *arg)
{
	struct job *j = arg;
	struct filter *f = j->f;
	struct imp_reply reply = { 0 };
	enum imp_verdict verdict = IMP_CONTINUE;
	enum rcpt_action action;
	char text[RCPT_LIST_TEXT_MAX + 1];
	char matched[RCPT_LIST_LINE_MAX + 1];

	if (f->delay_ms > 0) {
		struct timespec ts = { f->delay_ms / 1000, (f->delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	filter_refresh(f);
	if (filter_lookup(f, j->rcpt, &action, text, sizeof(text), matched, sizeof(matched))) {
		if (action == RCPT_REJECT) {
			verdict = IMP_REJECT;
			imp_reply_set(&reply, 550, "5.1.1", "%s", text);
		} else {
			verdict = IMP_TEMPFAIL;
			imp_reply_set(&reply, 451, "4.7.1", "%s", text);
		}
		filter_log(f, 1, "conn=%" PRIu64 " rcpt=%s entry=%s action=%s", j->session_id,
			   j->rcpt, matched, action == RCPT_REJECT ? "reject" : "tempfail");
	} else {
		filter_log(f, 2, "conn=%" PRIu64 " rcpt=%s not listed", j->session_id, j->rcpt);
	}
	imp_session_resume(j->token, verdict, verdict == IMP_CONTINUE ? NULL : &reply);
	job_free(j);
}

/* filter_rcptto - the rcptto subscriber: suspend the session and look the recipient up on the IO pool. */
static enum imp_verdict filter_rcptto(void *closure, struct imp_session *s,
				      struct imp_reply *reply)
{
	struct filter *f = closure;
	const char *rcpt = imp_session_rcpt(s);

	if (rcpt == NULL)
		return IMP_CONTINUE;
	struct job *j = calloc(1, sizeof(*j));
	char *copy = strdup(rcpt);
	if (j == NULL || copy == NULL) {
		free(j);
		free(copy);
		imp_reply_set(reply, 451, "4.3.0", "temporary local problem");
		return IMP_TEMPFAIL;
	}
	rcpt_list_lower(copy);
	j->rcpt = copy;
	j->session_id = imp_session_id(s);
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
	imp_log_debug(f->inst, 2, "conn=%" PRIu64 " rcpt=%s suspended for the lookup",
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
	if (f->path == NULL || f->reject_text == NULL || f->tempfail_text == NULL) {
		imp_error_set(err, "out of memory");
		goto fail;
	}
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
		  .description = "reject or tempfail recipients listed in a file (IO pool lookup)",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = filter_init, .fini = filter_fini);
