/*
 * test_services.c - a module for tests/integration/test_api_services.py
 *
 * Uses the services of include/impetus/ the way a real module would:
 *
 *   - injection: with inject_to set, init starts a periodic timer
 *     (inject_every ms) that injects inject_count messages with
 *     imp_inject (flags from inject_flags: "no_trace", "log", "new_id"),
 *     and journals "injected <id> err=<n>" from the done callback;
 *     inject_retention and inject_vctx go into the request as given;
 *   - signing: with sign_header = "Name: value", a sign subscriber
 *     prepends that field (messages injected with the "sign" flag, and
 *     received ones, pass through it before they are spooled), and
 *     journals "signing date=N message-id=N return-path=N", the counts
 *     of those fields in what it signs;
 *   - queue operations: with control set, a periodic timer reads that
 *     file on the IO pool (imp_pool_submit) and, back on the scheduler,
 *     runs each new line once: "requeue <id>", "fail <id>",
 *     "fail_quiet <id>", "rebind <id> <binding>", "requeue_batch <id>...",
 *     journaling "<command> <id> err=<n>" when done answers.
 *
 * Ids are the 16 hex digits of the logs. The journal is appended to with
 * one line per event. fini cancels the timers. A test module: a reload
 * while a control read is on the IO pool would leave its done with a
 * freed state (the tests do not reload it; a real module would count
 * jobs in flight and free in the last done).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "journal", IMP_OPT_STRING, NULL, 0, 0, true, "file the module appends its events to" },
	{ "inject_to", IMP_OPT_STRING, NULL, 0, 0, false, "recipient of the injected messages" },
	{ "inject_sender", IMP_OPT_STRING, "module@services.test", 0, 0, false, "their sender" },
	{ "inject_every", IMP_OPT_INT, "100", 1, 60000, false, "milliseconds between injections" },
	{ "inject_count", IMP_OPT_INT, "1", 0, 1000, false, "how many to inject" },
	{ "inject_flags", IMP_OPT_LIST, "( )", 0, 0, false, "no_trace, log, new_id, sign" },
	{ "control", IMP_OPT_STRING, NULL, 0, 0, false, "file of queue commands to run" },
	{ "sign_header", IMP_OPT_STRING, NULL, 0, 0, false, "a sign subscriber prepends this field (name: value)" },
	{ "inject_retention", IMP_OPT_INT, "0", 0, 86400, false, "retention of the injected messages (s)" },
	{ "inject_vctx", IMP_OPT_LIST, "( )", 0, 0, false, "message context of the injected messages: key value ..." },
};

struct state {
	struct imp_instance *inst;
	const char *journal;
	struct imp_timer *inject_timer, *control_timer;
	int64_t injected, to_inject;
	unsigned flags;
	size_t lines_done;		/* control lines already run */
	bool reading;			/* a control read is on the IO pool */
};

struct read_job {
	struct state *st;
	char *text;
};

struct op {
	struct state *st;
	char what[32];
	char id[24];
};

static void journal(struct state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void journal(struct state *st, const char *fmt, ...)
{
	FILE *f = fopen(st->journal, "a");
	va_list ap;

	if (f == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

/* ---- injection ---- */

static void on_injected(void *arg, int err, uint64_t id)
{
	struct state *st = arg;

	journal(st, "injected %016" PRIX64 " err=%d on_scheduler=%d", id, err,
		imp_loop_current() == imp_loop_scheduler());
}

static void inject_tick(void *arg)
{
	struct state *st = arg;
	char body[512];
	const char *to = imp_option_string(st->inst, "inject_to");
	const char *rcpts[1] = { to };

	if (st->injected >= st->to_inject) {
		imp_timer_cancel(st->inject_timer);
		st->inject_timer = NULL;
		return;
	}
	st->injected++;
	/* LF line ends on purpose: imp_inject makes them CRLF. */
	int n = snprintf(body, sizeof(body),
			 "From: <%s>\nTo: <%s>\nSubject: injected %" PRId64 " by %s\n"
			 "Message-ID: <fixed-%" PRId64 "@module.test>\n\n"
			 "Injected by the test_services module, number %" PRId64 ".\n",
			 imp_option_string(st->inst, "inject_sender"), to, st->injected,
			 imp_instance_name(st->inst), st->injected, st->injected);
	size_t nv;
	const char *const *vctx = imp_option_list(st->inst, "inject_vctx", &nv);
	struct imp_inject req = {
		.sender = imp_option_string(st->inst, "inject_sender"),
		.rcpts = rcpts,
		.nrcpts = 1,
		.data = body,
		.len = (size_t)n,
		.flags = st->flags,
		.retention = (uint32_t)imp_option_int(st->inst, "inject_retention"),
		.vctx = vctx, .nvctx = nv / 2,
	};
	int rc = imp_inject(&req, on_injected, st);
	if (rc != 0)
		journal(st, "inject refused err=%d", rc);
}

/* ---- queue commands ---- */

static void on_op(void *arg, int err)
{
	struct op *op = arg;

	journal(op->st, "%s %s err=%d", op->what, op->id, err);
	free(op);
}

static void run_line(struct state *st, char *line)
{
	char what[32], id[24], extra[128] = "";
	int n = sscanf(line, "%31s %23s %127s", what, id, extra);

	if (n < 2)
		return;
	struct op *op = calloc(1, sizeof(*op));
	op->st = st;
	snprintf(op->what, sizeof(op->what), "%s", what);
	snprintf(op->id, sizeof(op->id), "%s", id);
	uint64_t v = strtoull(id, NULL, 16);
	if (strcmp(what, "requeue") == 0) {
		imp_queue_requeue(v, on_op, op);
	} else if (strcmp(what, "fail") == 0) {
		imp_queue_fail(v, 554, "5.7.1 removed by test_services", false, on_op, op);
	} else if (strcmp(what, "fail_quiet") == 0) {
		imp_queue_fail(v, 554, "5.7.1 removed quietly", true, on_op, op);
	} else if (strcmp(what, "rebind") == 0) {
		imp_queue_rebind(v, extra, on_op, op);
	} else if (strcmp(what, "requeue_batch") == 0) {
		uint64_t ids[2] = { v, n == 3 ? strtoull(extra, NULL, 16) : v };
		imp_queue_requeue_batch(ids, n == 3 ? 2 : 1, on_op, op);
	} else {
		journal(st, "unknown command %s", what);
		free(op);
	}
}

/* control_read - IO pool: the whole control file (blocking is fine here). */
static void control_read(void *arg)
{
	struct read_job *j = arg;
	FILE *f = fopen(imp_option_string(j->st->inst, "control"), "r");
	char buf[4096];
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	j->text = strdup(buf);
}

/* control_done - scheduler again: run the lines not run yet. */
static void control_done(void *arg)
{
	struct read_job *j = arg;
	struct state *st = j->st;
	size_t i = 0;
	char *save = NULL;

	st->reading = false;
	for (char *line = strtok_r(j->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (i++ < st->lines_done)
			continue;
		st->lines_done++;
		run_line(st, line);
	}
	free(j->text);
	free(j);
}

static void control_tick(void *arg)
{
	struct state *st = arg;

	if (st->reading)
		return;
	struct read_job *j = calloc(1, sizeof(*j));
	j->st = st;
	st->reading = true;
	if (imp_pool_submit(IMP_POOL_IO, control_read, control_done, j) != 0) {
		st->reading = false;
		free(j);
		journal(st, "pool refused");
	}
}

/* ---- signing ---- */

/* sign_stamp - on a CPU pool thread, before spooling: prepend sign_header. */
static void sign_stamp(void *closure, struct imp_message *msg)
{
	struct state *st = closure;
	const char *h = imp_option_string(st->inst, "sign_header");
	const char *colon = strchr(h, ':');
	char name[64];

	if (colon == NULL || (size_t)(colon - h) >= sizeof(name))
		return;
	snprintf(name, sizeof(name), "%.*s", (int)(colon - h), h);
	/* What a signer finds: the fields reception added must already be there. */
	if (st->journal)
		journal(st, "signing date=%zu message-id=%zu return-path=%zu",
			imp_header_count(msg, "Date"), imp_header_count(msg, "Message-ID"),
			imp_header_count(msg, "Return-Path"));
	if (imp_header_prepend(msg, name, colon[1] == ' ' ? colon + 2 : colon + 1) < 0)
		imp_log_panic(st->inst, "sign: cannot prepend %s", name);
}

/* ---- life cycle ---- */

static int services_init(struct imp_instance *inst, struct imp_error *err)
{
	struct state *st = calloc(1, sizeof(*st));
	size_t n;
	const char *const *fl = imp_option_list(inst, "inject_flags", &n);

	st->inst = inst;
	st->journal = imp_option_string(inst, "journal");
	for (size_t i = 0; i < n; i++) {
		if (strcmp(fl[i], "no_trace") == 0)
			st->flags |= IMP_INJECT_NO_TRACE;
		else if (strcmp(fl[i], "log") == 0)
			st->flags |= IMP_INJECT_LOG;
		else if (strcmp(fl[i], "new_id") == 0)
			st->flags |= IMP_INJECT_NEW_ID;
		else if (strcmp(fl[i], "sign") == 0)
			st->flags |= IMP_INJECT_SIGN;
		else {
			imp_error_set(err, "unknown inject flag \"%s\"", fl[i]);
			free(st);
			return -1;
		}
	}
	imp_instance_set_data(inst, st);
	if (imp_option_string(inst, "sign_header") &&
	    imp_hook_sign(inst, sign_stamp, st, IMP_ORDER_DEFAULT) < 0) {
		imp_error_set(err, "cannot subscribe to the sign hook");
		free(st);
		return -1;
	}
	if (imp_option_string(inst, "inject_to")) {
		st->to_inject = imp_option_int(inst, "inject_count");
		st->inject_timer = imp_timer_add((uint64_t)imp_option_int(inst, "inject_every"), true,
						 inject_tick, st);
	}
	if (imp_option_string(inst, "control"))
		st->control_timer = imp_timer_add(50, true, control_tick, st);
	imp_log_panic(inst, "started\ttimers=%d", (st->inject_timer != NULL) + (st->control_timer != NULL));
	return 0;
}

static void services_fini(struct imp_instance *inst)
{
	struct state *st = imp_instance_data(inst);

	if (st == NULL)
		return;
	imp_timer_cancel(st->inject_timer);
	imp_timer_cancel(st->control_timer);
	free(st);
}

IMP_MODULE_DEFINE(.name = "test_services", .version = "1",
		  .description = "exercises imp_inject, timers, pools and queue operations",
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = services_init, .fini = services_fini);
