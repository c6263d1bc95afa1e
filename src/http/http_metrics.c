/*
 * http_metrics.c - GET /metrics: the daemon's counters in the Prometheus text format
 *
 * One answer in the text exposition format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4"), built from the same numbers the console's
 * `summary` reads, but never reset: `summary reset` restarts summary's
 * counts, not these (the queue keeps a second set, queue_stats'
 * *_total fields), because a Prometheus counter only grows. The metric
 * names are listed in docs/http-api.md, "Metrics".
 *
 * Owner and safety: the handler runs on the scheduler thread, which owns
 * the queue, the resolver (read through the queue) and the SMTP server's
 * session count; the rejection count is an atomic, the spool's counters
 * are readable from any thread (approximate). Nothing walks the messages:
 * one pass over the (binding, domain) queues.
 *
 * Failures: without a running queue (no daemon) the route answers 503
 * like the admin routes; a part that is not running (no SMTP server, no
 * spool) is left out rather than reported as zero.
 */
#include <inttypes.h>
#include <string.h>

#include "api/api_runtime.h"
#include "core/str.h"
#include "events/events.h"
#include "http/http_int.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"
#include "spool/spool.h"

/* head - a metric's # HELP and # TYPE lines. */
static void head(struct str *o, const char *name, const char *type, const char *help)
{
	str_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* one - a metric without labels: its head and its sample. */
static void one(struct str *o, const char *name, const char *type, const char *help,
		uint64_t v)
{
	head(o, name, type, help);
	str_appendf(o, "%s %" PRIu64 "\n", name, v);
}

/* http_metrics_label_value - v escaped for a label value: backslash, double quote and newline. */
void http_metrics_label_value(struct str *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			str_appends(o, "\\\\");
		else if (*v == '"')
			str_appends(o, "\\\"");
		else if (*v == '\n')
			str_appends(o, "\\n");
		else
			str_appendc(o, *v);
	}
}

/* What per_binding collects: the active and the delayed samples, in two buffers. */
struct binding_samples {
	struct str active, delayed;
	size_t n;
};

/* per_binding - one binding's two queue-size samples. */
static void per_binding(void *ctx, const char *binding, uint64_t active, uint64_t delayed)
{
	struct binding_samples *b = ctx;
	const char *name = *binding ? binding : "default";

	str_appends(&b->active, "impetus_queue_active{binding=\"");
	http_metrics_label_value(&b->active, name);
	str_appendf(&b->active, "\"} %" PRIu64 "\n", active);
	str_appends(&b->delayed, "impetus_queue_delayed{binding=\"");
	http_metrics_label_value(&b->delayed, name);
	str_appendf(&b->delayed, "\"} %" PRIu64 "\n", delayed);
	b->n++;
}

/* per_webhook - one webhook's backlog sample (events.h). */
static void per_webhook(void *ctx, const char *name, uint64_t events, uint64_t bytes)
{
	struct str *o = ctx;

	(void)bytes;
	str_appends(o, "impetus_webhook_backlog_events{webhook=\"");
	http_metrics_label_value(o, name);
	str_appendf(o, "\"} %" PRIu64 "\n", events);
}

/* http_metrics - GET /metrics. */
void http_metrics(struct http_req *r, const struct http_route *route, const struct http_match *m)
{
	const struct api_runtime *rt = api_runtime();
	struct queue_stats q;
	struct smtp_server_stats in = { 0, 0 };
	struct binding_samples b = { STR_INIT, STR_INIT, 0 };
	struct str o = STR_INIT;

	(void)route;
	(void)m;
	if (rt->queue == NULL) {
		http_reply_error(r, 503, "the queue is not running");
		return;
	}
	queue_get_stats(rt->queue, &q);
	one(&o, "impetus_messages_received_total", "counter",
	    "Messages accepted into the queue since start.", q.received_total);
	one(&o, "impetus_messages_delivered_total", "counter",
	    "Recipients delivered since start.", q.delivered_total);
	one(&o, "impetus_messages_failed_total", "counter",
	    "Recipients failed permanently (bounced or expired) since start.", q.failed_total);
	if (rt->smtp) {
		smtp_server_get_stats(rt->smtp, &in);
		one(&o, "impetus_rejections_total", "counter",
		    "SMTP rejections (connections, commands, recipients) since start.", in.rejected);
	}
	one(&o, "impetus_dns_queries_total", "counter", "DNS queries sent since start.",
	    q.dns_queries_total);

	/* Queue sizes per binding; an empty queue still shows its two families. */
	queue_binding_sizes(rt->queue, per_binding, &b);
	head(&o, "impetus_queue_active", "gauge", "Recipients due for delivery now, per binding.");
	if (b.n)
		str_append(&o, b.active.s, b.active.len);
	else
		str_appends(&o, "impetus_queue_active{binding=\"default\"} 0\n");
	head(&o, "impetus_queue_delayed", "gauge",
	     "Recipients waiting for a later attempt, per binding.");
	if (b.n)
		str_append(&o, b.delayed.s, b.delayed.len);
	else
		str_appends(&o, "impetus_queue_delayed{binding=\"default\"} 0\n");
	str_free(&b.active);
	str_free(&b.delayed);
	one(&o, "impetus_queue_messages", "gauge", "Messages in the queue.", q.messages);

	if (rt->smtp)
		one(&o, "impetus_connections_in", "gauge", "Open inbound SMTP sessions.",
		    in.sessions);
	one(&o, "impetus_connections_out", "gauge", "Open outbound delivery connections.",
	    q.conns);
	if (rt->spool) {
		struct spool_stats sp;

		spool_get_stats(rt->spool, &sp);
		one(&o, "impetus_spool_bytes", "gauge", "Bytes in the spool's segment files.",
		    sp.bytes);
		one(&o, "impetus_spool_segments", "gauge", "Spool segment files.", sp.segments);
		one(&o, "impetus_spool_messages", "gauge", "Live messages in the spool.",
		    sp.live_messages);
	}
	one(&o, "impetus_uptime_seconds", "gauge", "Seconds since the daemon started.",
	    q.uptime > 0 ? (uint64_t)q.uptime : 0);
	struct str wh = STR_INIT;
	events_webhook_backlog_each(per_webhook, &wh);
	if (wh.len) {
		head(&o, "impetus_webhook_backlog_events", "gauge",
		     "Events waiting in a webhook's durable backlog (docs/events.md).");
		str_append(&o, wh.s, wh.len);
	}
	str_free(&wh);
	http_reply(r, 200, "text/plain; version=0.0.4", o.s ? o.s : "", o.len);
	str_free(&o);
}
