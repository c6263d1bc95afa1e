/*
 * api_history_cmd.c - the sampler, the log subscriber, and `rates` / `bounces recent`
 *
 * What the status page reads (docs/console.md, "History"; over HTTP GET
 * /api/v1/rates and GET /api/v1/bounces/recent):
 *
 *   rates [N]            the last N points (default all kept) of the
 *                        rates ring: per Rates_Step seconds, messages
 *                        received, delivered, T, P, B, rejected, and the
 *                        active / delayed queue sizes at the step's end
 *   bounces recent [N]   the last N (default 20, at most 100) permanent
 *                        failures, newest first, with their reply
 *
 * Where the numbers come from. received, delivered and rejected are
 * deltas of the lifetime counters /metrics reads (queue_stats' *_total,
 * never reset by `summary reset`, and the SMTP server's atomic
 * rejection count) between two ticks of a timer on the scheduler. T, P
 * and B are counted by a log subscriber: the queue keeps no lifetime
 * count of deferrals, and the log events are what the mainlog and
 * bouncelog say, one per recipient. Every P event is followed by its B
 * line (queue_log_outcome), so P and B counts match; the bounces ring
 * keeps the P events only, once per failed recipient.
 *
 * Threads: T, P and B events come from the queue, on the scheduler (the
 * I/O loops emit only X, rejections, which this subscriber does not
 * take); the timer and the commands run there too. So the rings, the
 * pending counts and the bases are plain statics owned by the scheduler
 * thread, shared by every generation (each one registers the same
 * subscriber; an event is emitted through exactly one generation). The
 * subscriber copies bounded strings into a fixed slot and never blocks
 * or allocates.
 *
 * Failures: `rates` without the sampler (a tool, a unit test, a daemon
 * whose queue is not running) answers "not available" (HTTP 503); a bad
 * count is a usage error.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include <impetus/console.h>
#include <impetus/hooks.h>

#include "api/api.h"
#include "api/api_history.h"
#include "api/api_runtime.h"
#include "config/config.h"
#include "core/loop.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"

/* ------------------------------------------------------------------ */
/* state (scheduler thread)                                            */

static struct history_rates rates;
static struct history_bounces bounces;

/* T, P, B seen since the last tick. */
static struct {
	uint64_t transient, permanent, bounced;
} pending;

/* The lifetime counters at the last tick. */
static struct {
	uint64_t received, delivered, rejected;
} base;

static struct event *sampler;		/* NULL: not sampling */
static int64_t step_s;

/* ------------------------------------------------------------------ */
/* the log subscriber                                                  */

/* on_log - count T, P, B; keep a copy of each P. */
static void on_log(void *closure, const struct imp_log_event *ev)
{
	const struct api_runtime *rt = api_runtime();

	(void)closure;
	/* Owner check: the queue's events, on the scheduler (see the file header). */
	assert(rt->scheduler == NULL || loop_is_current(rt->scheduler));
	(void)rt;
	switch (ev->type) {
	case IMP_LOG_TRANSIENT:
		pending.transient++;
		return;
	case IMP_LOG_BOUNCE:
		pending.bounced++;
		return;
	case IMP_LOG_PERMANENT:
		pending.permanent++;
		break;
	default:
		return;
	}
	struct history_bounce *b = history_bounces_next(&bounces);

	b->time = ev->time;
	b->type = (char)ev->type;
	history_copy(b->message_id, sizeof(b->message_id), ev->message_id);
	history_copy(b->sender, sizeof(b->sender), ev->sender);
	history_copy(b->recipient, sizeof(b->recipient), ev->recipient);
	history_copy(b->domain, sizeof(b->domain), ev->domain);
	history_copy(b->binding, sizeof(b->binding), ev->binding);
	history_copy(b->binding_group, sizeof(b->binding_group), ev->binding_group);
	history_copy(b->peer, sizeof(b->peer), ev->peer);
	history_copy(b->reply, sizeof(b->reply), ev->reply);
	b->code = ev->code;
	b->bounce_class = ev->bounce_class;
	b->attempts = ev->attempts;
}

/* ------------------------------------------------------------------ */
/* the sampler                                                         */

/* delta - now - *was, then *was = now (0 if the counter went back). */
static uint64_t delta(uint64_t now, uint64_t *was)
{
	uint64_t d = now >= *was ? now - *was : 0;

	*was = now;
	return d;
}

/* read_counters - the lifetime counters and queue sizes now. */
static void read_counters(struct queue_stats *q, uint64_t *rejected)
{
	const struct api_runtime *rt = api_runtime();
	struct smtp_server_stats in = { 0, 0 };

	queue_get_stats(rt->queue, q);
	if (rt->smtp)
		smtp_server_get_stats(rt->smtp, &in);
	*rejected = in.rejected;
}

/* on_tick - close a step: one point into the ring. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct queue_stats q;
	uint64_t rejected;
	struct history_point p;

	(void)fd;
	(void)what;
	(void)arg;
	read_counters(&q, &rejected);
	p.t = (int64_t)time(NULL);
	p.received = delta(q.received_total, &base.received);
	p.delivered = delta(q.delivered_total, &base.delivered);
	p.rejected = delta(rejected, &base.rejected);
	p.transient = pending.transient;
	p.permanent = pending.permanent;
	p.bounced = pending.bounced;
	p.active = q.active;
	p.delayed = q.delayed;
	memset(&pending, 0, sizeof(pending));
	history_rates_push(&rates, &p);
}

void api_history_start(struct loop *scheduler, const struct conf *conf)
{
	struct queue_stats q;
	struct timeval tv;

	if (sampler != NULL || api_runtime()->queue == NULL)
		return;
	step_s = conf_int(conf, CONF_OPT_RATES_STEP);
	/* The counts before the first step are not the first step's. */
	read_counters(&q, &base.rejected);
	base.received = q.received_total;
	base.delivered = q.delivered_total;
	memset(&pending, 0, sizeof(pending));
	tv.tv_sec = (time_t)step_s;
	tv.tv_usec = 0;
	sampler = event_new(loop_base(scheduler), -1, EV_PERSIST, on_tick, NULL);
	event_add(sampler, &tv);
}

void api_history_stop(void)
{
	if (sampler == NULL)
		return;
	event_free(sampler);
	sampler = NULL;
}

/* ------------------------------------------------------------------ */
/* commands                                                            */

/* parse_count - a count argument in 1..max; -1 when it is not one. */
static long parse_count(const char *s, long max)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 1 || v > max)
		return -1;
	return v;
}

/* utc - t as "YYYY-MM-DD HH:MM:SS" (UTC). */
static const char *utc(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, 32, "%" PRId64, t);
	return buf;
}

/* cmd_rates - rates [N]: the last N steps (default every one kept), oldest first. */
static int cmd_rates(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	long want = HISTORY_RATE_POINTS;
	char tbuf[32];

	(void)closure;
	if (argc > 2 || (argc == 2 && (want = parse_count(argv[1], HISTORY_RATE_POINTS)) < 0))
		return imp_cli_error(cli, "usage: rates [N] (N: 1 to %d points)",
				     HISTORY_RATE_POINTS);
	if (sampler == NULL)
		return imp_cli_error(cli, "rates: not available (the queue is not sampled here)");
	size_t n = (size_t)want < rates.n ? (size_t)want : rates.n;

	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"step\":%" PRId64 ",\"capacity\":%d,\"points\":[", step_s,
			       HISTORY_RATE_POINTS);
		for (size_t i = 0; i < n; i++) {
			const struct history_point *p = history_rates_at(&rates, n, i);

			imp_cli_printf(cli, "%s{\"t\":%" PRId64 ",\"received\":%" PRIu64
				       ",\"delivered\":%" PRIu64 ",\"transient\":%" PRIu64
				       ",\"permanent\":%" PRIu64 ",\"bounced\":%" PRIu64
				       ",\"rejected\":%" PRIu64 ",\"active\":%" PRIu64
				       ",\"delayed\":%" PRIu64 "}", i ? "," : "", p->t, p->received,
				       p->delivered, p->transient, p->permanent, p->bounced,
				       p->rejected, p->active, p->delayed);
		}
		imp_cli_printf(cli, "]}\n");
		return 0;
	}
	imp_cli_printf(cli, "Counts per %" PRId64 " s step, last %zu of %d (UTC)\n", step_s, n,
		       HISTORY_RATE_POINTS);
	imp_cli_printf(cli, "%-19s %9s %9s %6s %6s %6s %8s %8s %8s\n", "Time", "Received",
		       "Delivered", "T", "P", "B", "Rejected", "Active", "Delayed");
	for (size_t i = 0; i < n; i++) {
		const struct history_point *p = history_rates_at(&rates, n, i);

		imp_cli_printf(cli, "%-19s %9" PRIu64 " %9" PRIu64 " %6" PRIu64 " %6" PRIu64
			       " %6" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "\n",
			       utc(p->t, tbuf), p->received, p->delivered, p->transient,
			       p->permanent, p->bounced, p->rejected, p->active, p->delayed);
	}
	return 0;
}

/* bounce_json - one kept bounce as a JSON object. */
static void bounce_json(struct imp_cli *cli, const struct history_bounce *b)
{
	const char *cls = imp_bounce_class_name(b->bounce_class);

	imp_cli_printf(cli, "{\"time\":%" PRId64 ",\"type\":\"%c\",\"message_id\":", b->time,
		       b->type);
	imp_cli_json_string(cli, b->message_id);
	imp_cli_printf(cli, ",\"sender\":");
	imp_cli_json_string(cli, b->sender);
	imp_cli_printf(cli, ",\"recipient\":");
	imp_cli_json_string(cli, b->recipient);
	imp_cli_printf(cli, ",\"domain\":");
	imp_cli_json_string(cli, b->domain);
	imp_cli_printf(cli, ",\"code\":%d,\"reply\":", b->code);
	imp_cli_json_string(cli, b->reply);
	imp_cli_printf(cli, ",\"bounce_class\":%d,\"bounce_class_name\":", b->bounce_class);
	imp_cli_json_string(cli, cls ? cls : "");
	imp_cli_printf(cli, ",\"binding\":");
	imp_cli_json_string(cli, b->binding[0] ? b->binding : "default");
	imp_cli_printf(cli, ",\"binding_group\":");
	imp_cli_json_string(cli, b->binding_group[0] ? b->binding_group : "default");
	imp_cli_printf(cli, ",\"peer\":");
	imp_cli_json_string(cli, b->peer);
	imp_cli_printf(cli, ",\"attempts\":%" PRIu32 "}", b->attempts);
}

/* cmd_bounces - bounces recent [N]: the last N permanent failures, newest first. */
static int cmd_bounces(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	long want = HISTORY_BOUNCES_DEFAULT;
	char tbuf[32];

	(void)closure;
	if (argc < 2 || argc > 3 || strcmp(argv[1], "recent") != 0 ||
	    (argc == 3 && (want = parse_count(argv[2], HISTORY_BOUNCES)) < 0))
		return imp_cli_error(cli, "usage: bounces recent [N] (N: 1 to %d, default %d)",
				     HISTORY_BOUNCES, HISTORY_BOUNCES_DEFAULT);
	size_t n = (size_t)want < bounces.n ? (size_t)want : bounces.n;

	if (imp_cli_json(cli)) {
		imp_cli_printf(cli, "{\"bounces\":[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				imp_cli_printf(cli, ",");
			bounce_json(cli, history_bounces_at(&bounces, n, i));
		}
		imp_cli_printf(cli, "],\"count\":%zu,\"total\":%" PRIu64 ",\"capacity\":%d}\n", n,
			       bounces.total, HISTORY_BOUNCES);
		return 0;
	}
	imp_cli_printf(cli, "Last %zu permanent failures, newest first (%" PRIu64
		       " since start, UTC)\n", n, bounces.total);
	for (size_t i = 0; i < n; i++) {
		const struct history_bounce *b = history_bounces_at(&bounces, n, i);
		const char *cls = imp_bounce_class_name(b->bounce_class);
		char code[16];

		/* The reply usually starts with its code; show the code once. */
		snprintf(code, sizeof(code), "%d", b->code);
		bool has_code = strncmp(b->reply, code, strlen(code)) == 0;
		imp_cli_printf(cli, "%s %s %s -> %s %s%s%s [class %d%s%s] binding %s\n",
			       utc(b->time, tbuf), b->message_id, b->sender[0] ? b->sender : "<>",
			       b->recipient, has_code ? "" : code, has_code ? "" : " ", b->reply,
			       b->bounce_class, cls ? " " : "", cls ? cls : "",
			       b->binding[0] ? b->binding : "default");
	}
	return 0;
}

void api_history_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	/* After the log writers: the line is in its file before it is counted. */
	if (imp_hook_log(core, "TPB", on_log, NULL, IMP_ORDER_BUILTIN + 1) < 0 ||
	    imp_cli_register(core, "rates",
			     "the last hour's counts per step and queue sizes: rates [N]",
			     cmd_rates, NULL) < 0 ||
	    imp_cli_register(core, "bounces",
			     "the last permanent failures, newest first: bounces recent [N]",
			     cmd_bounces, NULL) < 0)
		abort();
}
