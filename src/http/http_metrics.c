/*
 * http_metrics.c - GET /metrics: the daemon's counters in the Prometheus text format
 *
 * One answer in the text exposition format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4"), built from the same numbers the console's
 * `summary` reads, but never reset: `summary reset` restarts summary's
 * counts, not these (the queue keeps a second set, queue_stats'
 * *_total fields and queue_metrics.h), because a Prometheus counter only
 * grows. The metric names are listed in docs/http-api.md, "Metrics".
 *
 * Labels and their cardinality: protocol and binding have one series per
 * value seen (capped, QM_MAX_LABELS); domain has at most
 * Metrics_Domain_Limit series plus "other", chosen at scrape time and
 * kept until restart (queue_metrics.h says why that keeps every counter
 * monotonic). The histograms (group commit size, fdatasync latency, time
 * to 250) are written lock-free by the spool thread and the I/O loops
 * (core/histo.h) and summed here.
 *
 * Owner and safety: the handler runs on the scheduler thread, which owns
 * the queue, the resolver (read through the queue) and the SMTP server's
 * session count; the rejection counts and histograms are atomics, the
 * spool's counters are readable from any thread (approximate). Nothing
 * walks the messages: one pass over the (binding, domain) queues.
 *
 * Failures: without a running queue (no daemon) the route answers 503
 * like the admin routes; a part that is not running (no SMTP server, no
 * spool, no resolver) is left out rather than reported as zero.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api/api_runtime.h"
#include "core/histo.h"
#include "core/str.h"
#include "events/events.h"
#include "http/http_int.h"
#include "queue/queue.h"
#include "queue/queue_metrics.h"
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

/* sample - one sample with one label: name{label="value"} v. */
static void sample(struct str *o, const char *name, const char *label, const char *value,
		   uint64_t v)
{
	str_appendf(o, "%s{%s=\"", name, label);
	http_metrics_label_value(o, value);
	str_appendf(o, "\"} %" PRIu64 "\n", v);
}

/* What the label walks collect: one buffer per family. */
struct families {
	const char *label;
	struct str f[3];	/* delivered, transient, permanent (one for protocols) */
	const char *name[3];
};

/* per_protocol - one protocol's received sample. */
static void per_protocol(void *ctx, const char *protocol, uint64_t n)
{
	struct families *fm = ctx;

	sample(&fm->f[0], fm->name[0], fm->label, protocol, n);
}

/* per_counts - one binding's or domain's three outcome samples. */
static void per_counts(void *ctx, const char *value, const struct qm_counts *c)
{
	struct families *fm = ctx;

	sample(&fm->f[0], fm->name[0], fm->label, value, c->delivered);
	sample(&fm->f[1], fm->name[1], fm->label, value, c->transient);
	sample(&fm->f[2], fm->name[2], fm->label, value, c->permanent);
}

/* outcome_families - the three outcome counters by label (binding or domain). */
static void outcome_families(struct str *o, struct queue_metrics *qm, bool by_domain)
{
	static const char *const help[3] = {
		"Recipients delivered since start",
		"Delivery attempts that failed temporarily (the recipient is tried again) since start",
		"Recipients failed permanently (5xx, expired, failed by the operator) since start",
	};
	struct families fm = { by_domain ? "domain" : "binding", { STR_INIT, STR_INIT, STR_INIT },
			       { NULL, NULL, NULL } };

	if (by_domain) {
		fm.name[0] = "impetus_domain_delivered_total";
		fm.name[1] = "impetus_domain_transient_failures_total";
		fm.name[2] = "impetus_domain_permanent_failures_total";
		queue_metrics_domains(qm, per_counts, &fm);
	} else {
		fm.name[0] = "impetus_messages_delivered_total";
		fm.name[1] = "impetus_messages_transient_failures_total";
		fm.name[2] = "impetus_messages_permanent_failures_total";
		queue_metrics_bindings(qm, per_counts, &fm);
	}
	for (int i = 0; i < 3; i++) {
		str_appendf(o, "# HELP %s %s, by %s%s.\n# TYPE %s counter\n", fm.name[i], help[i],
			    fm.label,
			    by_domain ? " (the busiest domains, the rest as \"other\")" : "",
			    fm.name[i]);
		str_append(o, fm.f[i].s, fm.f[i].len);
		str_free(&fm.f[i]);
	}
}

/*
 * histogram - a histogram family from a snapshot; values are divided by
 * scale (1e6: microseconds to seconds, 1: counts as they are).
 */
static void histogram(struct str *o, const char *name, const char *help,
		      const struct histo_snap *h, double scale)
{
	head(o, name, "histogram", help);
	for (size_t i = 0; i < h->nbounds; i++)
		str_appendf(o, "%s_bucket{le=\"%.9g\"} %" PRIu64 "\n", name,
			    (double)h->bounds[i] / scale, h->cum[i]);
	str_appendf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	if (scale == 1.0)
		str_appendf(o, "%s_sum %" PRIu64 "\n", name, h->sum);
	else
		str_appendf(o, "%s_sum %.6f\n", name, (double)h->sum / scale);
	str_appendf(o, "%s_count %" PRIu64 "\n", name, h->count);
}

/* counters - received by protocol, outcomes by binding and by domain, bounces, rejections. */
static void counters(struct str *o, const struct api_runtime *rt, struct queue_metrics *qm)
{
	struct families fm = { "protocol", { STR_INIT, STR_INIT, STR_INIT },
			       { "impetus_messages_received_total", NULL, NULL } };

	queue_metrics_protocols(qm, per_protocol, &fm);
	head(o, fm.name[0], "counter",
	     "Messages accepted into the queue since start, by the envelope's protocol.");
	if (fm.f[0].len)
		str_append(o, fm.f[0].s, fm.f[0].len);
	else
		str_appends(o, "impetus_messages_received_total{protocol=\"esmtp\"} 0\n");
	str_free(&fm.f[0]);
	outcome_families(o, qm, false);
	outcome_families(o, qm, true);
	one(o, "impetus_bounces_total", "counter",
	    "DSN messages generated for failed (or relayed) recipients since start.", qm->bounces);
	if (rt->smtp) {
		struct smtp_server_metrics sm;

		smtp_server_get_metrics(rt->smtp, &sm);
		head(o, "impetus_rejections_total", "counter",
		     "SMTP rejections (connections, commands, recipients, messages) since start, "
		     "by protocol (esmtp: after EHLO).");
		sample(o, "impetus_rejections_total", "protocol", "smtp", sm.rejected_smtp);
		sample(o, "impetus_rejections_total", "protocol", "esmtp", sm.rejected_esmtp);
		histogram(o, "impetus_smtp_time_to_250_seconds",
			  "Time from the end of a message's data to its 250 queued for sending.",
			  &sm.time_to_250_us, 1e6);
	}
}

/* dns - the resolver's counters, when one runs. */
static void dns(struct str *o, const struct queue_stats *q)
{
	if (!q->has_dns)
		return;
	one(o, "impetus_dns_queries_total", "counter", "DNS queries sent since start.",
	    q->dns_queries_total);
	one(o, "impetus_dns_lookups_total", "counter",
	    "MX and host lookups started since start (each sends one or more queries).",
	    q->dns_lookups_total);
	one(o, "impetus_dns_cache_hits_total", "counter",
	    "Resolutions answered from the DNS cache since start.", q->dns_cache_hits_total);
	head(o, "impetus_dns_failures_total", "counter",
	     "Lookups that ended in a failure since start, by kind (temporary: SERVFAIL, "
	     "timeout; permanent: NXDOMAIN, no address).");
	str_appendf(o, "impetus_dns_failures_total{kind=\"temporary\"} %" PRIu64 "\n",
		    q->dns_tempfails_total);
	str_appendf(o, "impetus_dns_failures_total{kind=\"permanent\"} %" PRIu64 "\n",
		    q->dns_permfails_total);
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

	sample(&b->active, "impetus_queue_active", "binding", name, active);
	sample(&b->delayed, "impetus_queue_delayed", "binding", name, delayed);
	b->n++;
}

/* injection - the HTTP injection routes' answers and recipients (http_inject.c). */
static void injection(struct str *o)
{
	static const char *const api[2] = { "transmissions", "inject" };
	struct http_inject_stats st;
	const int *statuses;
	char code[8];

	http_inject_get_stats(&st, &statuses);
	head(o, "impetus_http_injection_requests_total", "counter",
	     "Answers of the HTTP injection routes, by API and status.");
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < HTTP_INJECT_NSTATUS; i++) {
			snprintf(code, sizeof(code), "%d", statuses[i]);
			str_appendf(o, "impetus_http_injection_requests_total{api=\"%s\",status=\"%s\"} %"
				    PRIu64 "\n", api[a], code, st.answers[a][i]);
		}
	head(o, "impetus_http_injection_recipients_total", "counter",
	     "Recipients of answered HTTP injection requests: accepted (durable) or refused.");
	for (int a = 0; a < 2; a++)
		for (int k = 0; k < 2; k++)
			str_appendf(o, "impetus_http_injection_recipients_total{api=\"%s\",outcome=\"%s\"} %"
				    PRIu64 "\n", api[a], k ? "refused" : "accepted", st.recipients[a][k]);
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
	counters(&o, rt, queue_get_metrics(rt->queue));
	dns(&o, &q);

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

	if (rt->smtp) {
		smtp_server_get_stats(rt->smtp, &in);
		one(&o, "impetus_connections_in", "gauge", "Open inbound SMTP sessions.",
		    in.sessions);
	}
	one(&o, "impetus_connections_out", "gauge", "Open outbound delivery connections.",
	    q.conns);
	if (rt->spool) {
		struct spool_stats sp;
		struct histo_snap batch, fsync_us;

		spool_get_stats(rt->spool, &sp);
		one(&o, "impetus_spool_bytes", "gauge", "Bytes in the spool's segment files.",
		    sp.bytes);
		one(&o, "impetus_spool_segments", "gauge", "Spool segment files.", sp.segments);
		one(&o, "impetus_spool_messages", "gauge", "Live messages in the spool.",
		    sp.live_messages);
		spool_get_histos(rt->spool, &batch, &fsync_us);
		histogram(&o, "impetus_spool_commit_messages",
			  "New messages made durable per group commit (one fdatasync).", &batch, 1.0);
		histogram(&o, "impetus_spool_fsync_seconds",
			  "Latency of the group commit's fdatasync.", &fsync_us, 1e6);
	}
	injection(&o);
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
