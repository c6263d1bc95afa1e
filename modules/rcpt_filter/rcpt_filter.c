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
#include <ctype.h>
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

/* An entry line longer than this is an error (a mail address is at most 254 bytes). */
#define FILTER_LINE_MAX 1024
/* A reply text longer than struct imp_reply holds is an error, not a silent cut. */
#define FILTER_TEXT_MAX 400

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

enum action { ACT_REJECT, ACT_TEMPFAIL };

struct entry {
	char *key;		/* lower-cased "user@domain" or "@domain" */
	enum action action;
	char *text;		/* NULL: the instance's default text */
};

/* One version of the file, sorted by key; immutable once built. */
struct table {
	struct entry *v;
	size_t n;
	int refs;		/* under filter.lock: the filter's + lookups in progress */
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
	struct table *table;		/* under lock */
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
/* the list file                                                       */

/* table_free - free a table and its entries. */
static void table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].key);
		free(t->v[i].text);
	}
	free(t->v);
	free(t);
}

/* entry_cmp - qsort/bsearch order of entries: by key. */
static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

/* lower - lower-case s in place (ASCII: domains and the usual local parts). */
static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* key_ok - whether key is "x@y" or "@y" with printable bytes, one '@' at least, no trailing '@'. */
static bool key_ok(const char *key)
{
	const char *at = strrchr(key, '@');

	if (at == NULL || at[1] == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		if (*p <= 32 || *p >= 127)
			return false;
	return true;
}

/*
 * table_parse_line - parse one line into e (owning key and text), or set
 * why. Returns 1 for an entry, 0 for a blank or comment line, -1 on error.
 */
static int table_parse_line(char *line, struct entry *e, const char **why)
{
	char *p = line;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	char *key = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	char *act = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	char *text = p;
	size_t tl = strlen(text);
	while (tl > 0 && (text[tl - 1] == ' ' || text[tl - 1] == '\t'))
		text[--tl] = '\0';

	if (!key_ok(key)) {
		*why = "expected an address or @domain first";
		return -1;
	}
	if (strcasecmp(act, "reject") == 0) {
		e->action = ACT_REJECT;
	} else if (strcasecmp(act, "tempfail") == 0) {
		e->action = ACT_TEMPFAIL;
	} else {
		*why = *act ? "the action must be reject or tempfail" : "missing action (reject or tempfail)";
		return -1;
	}
	if (tl > FILTER_TEXT_MAX) {
		*why = "reply text over 400 bytes";
		return -1;
	}
	for (const unsigned char *q = (const unsigned char *)text; *q; q++)
		if (*q < 32 && *q != '\t') {
			*why = "control character in the reply text";
			return -1;
		}
	e->key = strdup(key);
	e->text = tl ? strdup(text) : NULL;
	if (e->key == NULL || (tl && e->text == NULL)) {
		free(e->key);
		free(e->text);
		*why = "out of memory";
		return -1;
	}
	lower(e->key);
	return 1;
}

/*
 * table_load - read path into a new sorted table and its signature.
 * Returns NULL with err (one line, "path:line: why") on failure. Blocks
 * on the disk: init (scheduler, once) or an IO pool job.
 */
static struct table *table_load(const char *path, struct file_sig *sig, char *err,
				size_t errsize)
{
	FILE *fp = fopen(path, "re");
	struct table *t = NULL;
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	unsigned lineno = 0;
	struct stat st;

	if (fp == NULL) {
		snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) < 0) {
		snprintf(err, errsize, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto nomem;
	ssize_t len;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if ((size_t)len > FILTER_LINE_MAX) {
			snprintf(err, errsize, "%s:%u: line over %d bytes", path, lineno,
				 FILTER_LINE_MAX);
			goto fail;
		}
		if (strlen(line) != (size_t)len) {
			snprintf(err, errsize, "%s:%u: NUL byte in the line", path, lineno);
			goto fail;
		}
		struct entry e = { 0 };
		const char *why = NULL;
		int rc = table_parse_line(line, &e, &why);
		if (rc < 0) {
			snprintf(err, errsize, "%s:%u: %s", path, lineno, why);
			goto fail;
		}
		if (rc == 0)
			continue;
		if (t->n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct entry *nv = realloc(t->v, na * sizeof(*nv));
			if (nv == NULL) {
				free(e.key);
				free(e.text);
				goto nomem;
			}
			t->v = nv;
			alloc = na;
		}
		t->v[t->n++] = e;
	}
	if (ferror(fp)) {
		snprintf(err, errsize, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), entry_cmp);
	/* A key listed twice: the later line wins would need a stable sort; refuse instead. */
	for (size_t i = 1; i < t->n; i++)
		if (strcmp(t->v[i - 1].key, t->v[i].key) == 0) {
			snprintf(err, errsize, "%s: %s is listed twice", path, t->v[i].key);
			goto fail;
		}
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
	free(line);
	fclose(fp);
	return t;

nomem:
	snprintf(err, errsize, "%s: out of memory", path);
fail:
	free(line);
	fclose(fp);
	table_free(t);
	return NULL;
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
	table_free(f->table);
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
	struct table *t = table_load(f->path, &sig, err, sizeof(err));
	struct table *old = NULL;
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
	table_free(old);
	pthread_mutex_unlock(&f->reload_lock);
	if (t != NULL)
		filter_log(f, 1, "reloaded %s: %zu entries", f->path, n);
	else
		filter_log(f, 0, "%s; keeping the list read before", err);
}

/*
 * filter_lookup - the action for rcpt (lower-cased), with its text; false
 * when no entry matches. text is copied into buf.
 */
static bool filter_lookup(struct filter *f, const char *rcpt, enum action *action,
			  char *text, size_t textsize, char *matched, size_t matchedsize)
{
	pthread_mutex_lock(&f->lock);
	struct table *t = f->table;
	t->refs++;
	pthread_mutex_unlock(&f->lock);

	const char *at = strrchr(rcpt, '@');
	const char *keys[2] = { rcpt, at };
	const struct entry *hit = NULL;
	for (size_t i = 0; i < 2 && hit == NULL; i++) {
		if (keys[i] == NULL)
			continue;
		struct entry probe = { .key = (char *)keys[i] };
		hit = bsearch(&probe, t->v, t->n, sizeof(*t->v), entry_cmp);
	}
	if (hit != NULL) {
		*action = hit->action;
		snprintf(text, textsize, "%s",
			 hit->text ? hit->text
				   : (hit->action == ACT_REJECT ? f->reject_text : f->tempfail_text));
		snprintf(matched, matchedsize, "%s", hit->key);
	}

	pthread_mutex_lock(&f->lock);
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (last)
		table_free(t);
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
	enum action action;
	char text[FILTER_TEXT_MAX + 1];
	char matched[FILTER_LINE_MAX + 1];

	if (f->delay_ms > 0) {
		struct timespec ts = { f->delay_ms / 1000, (f->delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	filter_refresh(f);
	if (filter_lookup(f, j->rcpt, &action, text, sizeof(text), matched, sizeof(matched))) {
		if (action == ACT_REJECT) {
			verdict = IMP_REJECT;
			imp_reply_set(&reply, 550, "5.1.1", "%s", text);
		} else {
			verdict = IMP_TEMPFAIL;
			imp_reply_set(&reply, 451, "4.7.1", "%s", text);
		}
		filter_log(f, 1, "conn=%" PRIu64 " rcpt=%s entry=%s action=%s", j->session_id,
			   j->rcpt, matched, action == ACT_REJECT ? "reject" : "tempfail");
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
	lower(copy);
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

	for (size_t i = 0; i < 2; i++) {
		if (strlen(texts[i]) > FILTER_TEXT_MAX) {
			imp_error_set(err, "%s is over %d bytes", i ? "tempfail_text" : "reject_text",
				      FILTER_TEXT_MAX);
			return -1;
		}
		for (const unsigned char *q = (const unsigned char *)texts[i]; *q; q++)
			if (*q < 32 && *q != '\t') {
				imp_error_set(err, "%s holds a control character",
					      i ? "tempfail_text" : "reject_text");
				return -1;
			}
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
