/*
 * test_api_services.c - the module services of include/impetus/event.h,
 * log.h, and the request checks of inject.h, without a daemon
 *
 * A scheduler loop runs on the main thread and one I/O loop on its own
 * thread, with a CPU and an IO pool, as main.c sets them up (no spool,
 * no queue). The tests drive themselves from the scheduler: each step
 * starts the next when its answer arrives, and the last stops the loop;
 * results observed on other threads are recorded and checked on the
 * scheduler (check.h is single-threaded). A watchdog timer stops the
 * loop if an answer never comes, and the missing steps then fail.
 *
 * The paniclog lines are checked by opening the logs in a temporary
 * directory and reading the file back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <impetus/event.h>
#include <impetus/inject.h>
#include <impetus/log.h>
#include <impetus/queue.h>

#include "api/api.h"
#include "message/message_view.h"
#include "api/api_runtime.h"
#include "api/api_services.h"
#include "check.h"
#include "core/loop.h"
#include "core/pool.h"
#include "core/str.h"
#include "log/log.h"
#include "msgs/msgs.h"
#include "queue/queue.h"
#include "spool/spool.h"

static struct loop *sched, *io;

/* What the steps saw (written on the thread named, read on the scheduler). */
static struct {
	int posts_in_order;		/* io: posts ran in the order made */
	bool post_on_io;		/* io: imp_post ran on the I/O loop */
	int dispatch_inline;		/* imp_dispatch to its own loop ran before returning (1) */
	bool dispatch_on_io;		/* imp_dispatch to another loop ran there, later */
	bool back_on_sched;
	int oneshot_fired;
	uint64_t oneshot_at, oneshot_start;
	int periodic_fired;
	bool periodic_cancelled;
	int cancelled_fired;
	bool job_off_loop;		/* pool thread: imp_loop_current() is NULL */
	_Atomic int job_ran;
	bool done_on_io;		/* io: done ran on the submitting loop */
	int submit_off_loop_rc;
	bool queue_answer_notconn;
	bool finished;
} seen;

static struct imp_timer *cancelled_timer, *watchdog_timer;

static void finish(void)
{
	seen.finished = true;
	imp_timer_cancel(watchdog_timer);
	loop_stop(sched);
}

/* ---- pool: submitted from the I/O loop, done back on it ---- */

static void pool_job(void *arg)
{
	seen.job_off_loop = imp_loop_current() == NULL;
	atomic_fetch_add(&seen.job_ran, 1);
}

static void queue_answer(void *arg, int err)
{
	seen.queue_answer_notconn = err == -ENOTCONN;
}

static void pool_done_on_sched(void *arg)
{
	/* Without a runtime queue, the queue services answer -ENOTCONN at once. */
	imp_queue_requeue(1, queue_answer, NULL);
	finish();
}

static void pool_done(void *arg)
{
	seen.done_on_io = imp_loop_current() == (struct imp_loop *)io;
	imp_post(imp_loop_scheduler(), pool_done_on_sched, NULL);
}

static void submit_on_io(void *arg)
{
	if (imp_pool_submit(IMP_POOL_CPU, pool_job, pool_done, NULL) != 0)
		imp_post(imp_loop_scheduler(), pool_done_on_sched, NULL);
}

/* ---- timers on the scheduler ---- */

static void cancelled_fn(void *arg)
{
	seen.cancelled_fired++;
}

static void periodic_fn(void *arg)
{
	struct imp_timer **self = arg;

	if (++seen.periodic_fired == 3) {
		/* A periodic timer may cancel itself from its own fn. */
		imp_timer_cancel(*self);
		seen.periodic_cancelled = true;
		/* Later than the cancelled timer's time: it would have fired by now. */
		imp_post(imp_loop_io(0), submit_on_io, NULL);
	}
}

static struct imp_timer *periodic;

static void oneshot_fn(void *arg)
{
	seen.oneshot_fired++;
	seen.oneshot_at = imp_now_ms();
	periodic = imp_timer_add(10, true, periodic_fn, &periodic);
}

static void start_timers(void)
{
	seen.oneshot_start = imp_now_ms();
	CHECK(imp_timer_add(30, false, oneshot_fn, NULL) != NULL);
	cancelled_timer = imp_timer_add(20, false, cancelled_fn, NULL);
	CHECK(cancelled_timer != NULL);
	imp_timer_cancel(cancelled_timer);
}

/* ---- posts: scheduler -> io (three, in order) -> scheduler ---- */

static void back_on_sched(void *arg)
{
	seen.back_on_sched = loop_is_current(sched);
	start_timers();
}

static void ordered_post(void *arg)
{
	int n = (int)(intptr_t)arg;

	seen.post_on_io = imp_loop_current() == (struct imp_loop *)io;
	if (seen.posts_in_order == n - 1)
		seen.posts_in_order = n;
	if (n == 3)
		imp_post(imp_loop_scheduler(), back_on_sched, NULL);
}

static void dispatched(void *arg)
{
	int *flag = arg;

	*flag = 1;
}

static void dispatched_io(void *arg)
{
	seen.dispatch_on_io = imp_loop_current() == (struct imp_loop *)io;
}

static void first_step(void *arg)
{
	int ran = 0;

	/* On its own loop imp_dispatch runs at once; to another, it posts. */
	imp_dispatch(imp_loop_scheduler(), dispatched, &ran);
	seen.dispatch_inline = ran;
	imp_dispatch(imp_loop_io(0), dispatched_io, NULL);
	for (intptr_t i = 1; i <= 3; i++)
		imp_post(imp_loop_io(0), ordered_post, (void *)i);
}

static void watchdog(void *arg)
{
	fprintf(stderr, "watchdog: the steps did not finish\n");
	loop_stop(sched);
}

static void add_watchdog(void *arg)
{
	watchdog_timer = imp_timer_add(20000, false, watchdog, NULL);
}

static void test_event_services(void)
{
	struct pool *cpu = pool_new("CPU", 2), *iop = pool_new("IO", 1);
	struct loop *ios[1];

	sched = loop_new("scheduler", MSGS_SCHEDULER);
	io = loop_new("io0", MSGS_IO);
	ios[0] = io;
	struct api_runtime rt = { .scheduler = sched, .io = ios, .nio = 1, .cpu_pool = cpu,
				  .io_pool = iop };
	api_runtime_set(&rt);
	CHECK(loop_start(io) == 0);

	CHECK(imp_loop_scheduler() == (struct imp_loop *)sched);
	CHECK(imp_loop_io(0) == (struct imp_loop *)io);
	CHECK(imp_loop_io(1) == NULL);
	CHECK_INTEQ(imp_loop_io_count(), 1);
	/* This thread runs no loop (yet): no timers, no pool jobs. */
	CHECK(imp_loop_current() == NULL);
	CHECK(imp_timer_add(10, false, cancelled_fn, NULL) == NULL);
	CHECK_INTEQ(imp_pool_submit(IMP_POOL_CPU, pool_job, NULL, NULL), -EINVAL);

	imp_post(imp_loop_scheduler(), first_step, NULL);
	/* The watchdog is added as the scheduler, before the loop runs. */
	loop_call_as(sched, add_watchdog, NULL);
	loop_run(sched);
	loop_stop(io);
	loop_join(io);

	CHECK(seen.finished);
	CHECK_INTEQ(seen.posts_in_order, 3);
	CHECK(seen.post_on_io);
	CHECK_INTEQ(seen.dispatch_inline, 1);
	CHECK(seen.dispatch_on_io);
	CHECK(seen.back_on_sched);
	CHECK_INTEQ(seen.oneshot_fired, 1);
	CHECK(seen.oneshot_at >= seen.oneshot_start + 30);
	CHECK_INTEQ(seen.periodic_fired, 3);
	CHECK(seen.periodic_cancelled);
	CHECK_INTEQ(seen.cancelled_fired, 0);
	CHECK(seen.job_off_loop);
	CHECK_INTEQ(atomic_load(&seen.job_ran), 1);
	CHECK(seen.done_on_io);
	CHECK(seen.queue_answer_notconn);

	pool_free(cpu);
	pool_free(iop);
	loop_free(io);
	loop_free(sched);
	api_post_drop_all();
	struct api_runtime none = { 0 };
	api_runtime_set(&none);
}

/* ---- log lines ---- */

static void fmt(struct str *out, const struct imp_instance *inst, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	api_log_vformat(out, inst, f, ap);
	va_end(ap);
}

static void test_log_format(void)
{
	struct imp_instance inst = { .module_name = "header_stamp", .name = "stamp1" };
	struct imp_instance single = { .module_name = "json_log", .name = "" };
	struct str s = STR_INIT;

	fmt(&s, &inst, "x=%d %s", 5, "ok");
	CHECK_STREQ(s.s, "header_stamp[stamp1]: x=5 ok");
	str_clear(&s);
	fmt(&s, &single, "hello");
	CHECK_STREQ(s.s, "json_log: hello");
	str_clear(&s);
	/* CR, LF, other controls, DEL and the backslash itself are escaped; UTF-8 stays. */
	fmt(&s, &inst, "a\r\nb\tc\x7f\\d\x1b[31m \xc3\xa9");
	CHECK_STREQ(s.s, "header_stamp[stamp1]: a\\x0D\\x0Ab\\x09c\\x7F\\x5Cd\\x1B[31m \xc3\xa9");
	str_clear(&s);
	/* An instance name cannot break the line either. */
	struct imp_instance odd = { .module_name = "m", .name = "a\nb" };
	fmt(&s, &odd, "t");
	CHECK_STREQ(s.s, "m[a\\x0Ab]: t");
	str_free(&s);
}

/* read_file - the whole file, malloc()ed ("" when missing). */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct str s = STR_INIT;
	char buf[4096];
	size_t n;

	if (f) {
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			str_append(&s, buf, n);
		fclose(f);
	}
	str_appends(&s, "");
	return str_steal(&s);
}

static void test_log_paniclog(void)
{
	char dir[] = "/tmp/test_api_services.XXXXXX";
	struct str err = STR_INIT, path = STR_INIT;
	struct imp_instance inst = { .module_name = "mod", .name = "i1", .debug_level = 2 };

	CHECK(mkdtemp(dir) != NULL);
	CHECK(log_open(dir, &err) == 0);
	imp_log_panic(&inst, "panic line %d\nsecond", 1);
	imp_log_debug(&inst, 2, "debug at level 2");
	imp_log_debug(&inst, 3, "debug at level 3");
	log_flush();
	str_appendf(&path, "%s/paniclog", dir);
	char *text = read_file(path.s);
	CHECK(strstr(text, "mod[i1]: panic line 1\\x0Asecond\n") != NULL);
	CHECK(strstr(text, "mod[i1]: debug at level 2\n") != NULL);
	/* The level-3 line came after the level-2 one, which is there: it was dropped. */
	CHECK(strstr(text, "level 3") == NULL);
	free(text);
	log_close();
	unlink(path.s);
	static const char *const others[] = { "mainlog", "bouncelog", "rejectlog" };
	for (size_t i = 0; i < 3; i++) {
		str_clear(&path);
		str_appendf(&path, "%s/%s", dir, others[i]);
		unlink(path.s);
	}
	rmdir(dir);
	str_free(&path);
	str_free(&err);
}

/* ---- inject: checks and line ends ---- */

static void test_inject_checks(void)
{
	static const char *const one[] = { "rcpt@example.com" };
	static const char *const bad_cr[] = { "rcpt@example.com\r" };
	static const char *const bad_angle[] = { "<rcpt@example.com>" };
	static const char *const empty[] = { "" };
	static const char *const kv[] = { "key", "value" };
	static const char *const nokey[] = { "", "value" };
	const char *msg = "Subject: t\n\nbody\n";
	struct imp_inject r = { .sender = "s@example.com", .rcpts = one, .nrcpts = 1,
				.data = msg, .len = strlen(msg) };

	CHECK_INTEQ(api_inject_check(&r), 0);
	r.sender = "";
	CHECK_INTEQ(api_inject_check(&r), 0);	/* the null sender */
	r.sender = NULL;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.sender = "s@example.com\n";
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.sender = "s@example.com";
	r.nrcpts = 0;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.nrcpts = 1;
	r.rcpts = bad_cr;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.rcpts = bad_angle;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.rcpts = empty;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.rcpts = one;
	r.data = "no header block, just a body line\n";
	r.len = strlen(r.data);
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.data = "\r\nbody after an empty line\r\n";
	r.len = strlen(r.data);
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.data = "Subject: a\0b\r\n\r\n";
	r.len = 17;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);	/* NUL in the message */
	r.data = msg;
	r.len = 0;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.len = strlen(msg);
	r.flags = 0x100;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.flags = IMP_INJECT_LOG | IMP_INJECT_NO_TRACE | IMP_INJECT_NEW_ID | IMP_INJECT_SIGN;
	CHECK_INTEQ(api_inject_check(&r), 0);
	r.vctx = kv;
	r.nvctx = 1;
	CHECK_INTEQ(api_inject_check(&r), 0);
	r.vctx = nokey;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.vctx = NULL;
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.nvctx = 0;
	r.protocol = "has space";
	CHECK_INTEQ(api_inject_check(&r), -EINVAL);
	r.protocol = "http";
	CHECK_INTEQ(api_inject_check(&r), 0);
	CHECK_INTEQ(api_inject_check(NULL), -EINVAL);

	/* A valid request without a daemon: nothing to submit to. */
	CHECK_INTEQ(imp_inject(&r, NULL, NULL), -ENOTCONN);
}

static void crlf(const char *in, size_t len, const char *want)
{
	struct str out = STR_INIT;

	queue_inject_crlf(&out, in, len);
	str_appends(&out, "");
	CHECK_STREQ(out.s, want);
	str_free(&out);
}

static void test_inject_crlf(void)
{
	crlf("a\nb\n", 4, "a\r\nb\r\n");
	crlf("a\r\nb\r\n", 6, "a\r\nb\r\n");
	crlf("a\rb", 3, "a\r\nb");
	crlf("a\n\r\nb\r", 6, "a\r\n\r\nb\r\n");
	crlf("no end", 6, "no end");
	crlf("", 0, "");
	crlf("\n\n", 2, "\r\n\r\n");
}

/* ---- imp_message_read: a spooled message on the IO pool, an in-memory one ---- */

static const char read_body[] = "Subject: read me\r\n\r\nline one\r\nline two\r\n";

static struct {
	struct envelope *env;		/* spooled, loc set */
	int spool_err;
	int read_err, mem_err;
	bool read_ok, mem_ok, read_on_sched, mem_on_sched;
	int rc_off_loop;
} rd;

static void mem_done(void *arg, int err, const char *bytes, size_t len)
{
	rd.mem_err = err;
	rd.mem_on_sched = loop_is_current(sched);
	rd.mem_ok = err == 0 && len == 5 && memcmp(bytes, "abcde", 5) == 0;
	loop_stop(sched);
}

static void read_done(void *arg, int err, const char *bytes, size_t len)
{
	static struct envelope mem_env;
	static struct imp_message mem_view;

	rd.read_err = err;
	rd.read_on_sched = loop_is_current(sched);
	rd.read_ok = err == 0 && len == strlen(read_body) && memcmp(bytes, read_body, len) == 0;
	/* A message still being received: its bytes come from memory, later, on this loop. */
	mem_env.file.fd = -1;
	str_init(&mem_env.body);
	str_appends(&mem_env.body, "abcde");
	mem_view.env = &mem_env;
	if (imp_message_read(&mem_view, mem_done, NULL) != 0)
		loop_stop(sched);
	str_free(&mem_env.body);	/* copied by imp_message_read */
}

static void on_spooled(void *ctx, int err, struct envelope *env)
{
	static struct imp_message view;

	rd.spool_err = err;
	rd.env = env;
	view.env = env;
	if (err != 0 || imp_message_read(&view, read_done, NULL) != 0)
		loop_stop(sched);
}

static void test_message_read(void)
{
	char dir[] = "/tmp/test_api_read.XXXXXX";
	struct str err = STR_INIT;
	struct pool *iop = pool_new("IO", 1);

	CHECK(mkdtemp(dir) != NULL);
	sched = loop_new("scheduler", MSGS_SCHEDULER);
	struct spool *sp = spool_open(dir, &(struct spool_options){ .no_sync = true }, NULL, NULL,
				      &err);
	CHECK(sp != NULL);
	if (sp == NULL)
		return;
	struct api_runtime rt = { .scheduler = sched, .io_pool = iop, .spool = sp };
	api_runtime_set(&rt);
	CHECK_INTEQ(spool_start(sp), 0);

	struct envelope *env = envelope_new();
	env->id = 0x1234;
	env->received = 1;
	env->sender = strdup("s@example.com");
	env->client_ip = strdup("");
	env->helo = strdup("");
	env->protocol = strdup("internal");
	env->binding = strdup("");
	env->binding_group = strdup("");
	env->nrcpt = 1;
	env->rcpts = calloc(1, sizeof(*env->rcpts));
	env->rcpts[0].addr = strdup("r@example.com");
	str_appends(&env->body, read_body);
	/* Off a loop thread: refused at once. */
	struct imp_message off = { .env = env };
	rd.rc_off_loop = imp_message_read(&off, read_done, NULL);
	spool_submit(sp, env, sched, on_spooled, NULL);
	loop_run(sched);

	CHECK_INTEQ(rd.rc_off_loop, -EINVAL);
	CHECK_INTEQ(rd.spool_err, 0);
	CHECK_INTEQ(rd.read_err, 0);
	CHECK(rd.read_ok);
	CHECK(rd.read_on_sched);
	CHECK_INTEQ(rd.mem_err, 0);
	CHECK(rd.mem_ok);
	CHECK(rd.mem_on_sched);

	pool_free(iop);
	spool_stop(sp);
	loop_drain_now(sched);
	envelope_free(rd.env);
	loop_free(sched);
	api_post_drop_all();
	struct api_runtime none = { 0 };
	api_runtime_set(&none);
	str_free(&err);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_INTEQ(system(cmd), 0);
}

/* ---- after the loops stop: pool jobs are refused, not queued on freed pools ---- */

static int stopped_rc;

static void submit_when_stopped(void *arg)
{
	stopped_rc = imp_pool_submit(IMP_POOL_IO, pool_job, NULL, NULL);
}

/* Last: api_runtime_stop cannot be undone. */
static void test_pool_after_stop(void)
{
	struct pool *iop = pool_new("IO", 1);
	struct loop *lp = loop_new("scheduler", MSGS_SCHEDULER);
	struct api_runtime rt = { .scheduler = lp, .io_pool = iop };

	api_runtime_set(&rt);
	api_runtime_stop();
	loop_call_as(lp, submit_when_stopped, NULL);
	CHECK_INTEQ(stopped_rc, -ESHUTDOWN);
	pool_free(iop);
	loop_free(lp);
	struct api_runtime none = { 0 };
	api_runtime_set(&none);
}

int main(void)
{
	test_log_format();
	test_log_paniclog();
	test_inject_checks();
	test_inject_crlf();
	test_event_services();
	test_message_read();
	test_pool_after_stop();
	return check_done();
}
