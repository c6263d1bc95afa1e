/*
 * api_summary.c - the console's `summary` and `summary reset`
 *
 * Momentum's global metrics in one answer: concurrency in and out, queue
 * sizes, DNS, delivered / failed / rejected / received counts and rates,
 * uptime (docs/console.md, "Queue and message commands").
 *
 * Where each number comes from, and why reading it here is safe: the
 * command runs on the scheduler thread, which owns the queue (its sizes,
 * counters and rate slots: queue_get_stats), the resolver (queried
 * through the queue). The SMTP server's numbers are written by the I/O
 * loops: the session count under the server's mutex, the rejections as
 * an atomic (smtp_server_get_stats). Nothing walks the
 * messages: summary answers in the time of one pass over the (binding,
 * domain) queues, however much mail is queued.
 *
 * `summary reset` restarts the counts and rates; the queue keeps its own
 * base, and the rejection count's base is kept here (scheduler thread
 * only, so a plain static).
 *
 * Failures: a bad argument is an error; without a running queue (tools,
 * unit tests) the command says so.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/console.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_runtime.h"
#include "queue/queue.h"
#include "smtp/smtp_server.h"

/* The rejection count at the last `summary reset` (scheduler thread only). */
static uint64_t rejected_base;

/* cmd_summary - summary [reset]. */
static int cmd_summary(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	const struct api_runtime *rt = api_runtime();
	struct queue_stats q;
	struct smtp_server_stats in = { 0, 0 };

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "reset") != 0))
		return imp_cli_error(cli, "usage: summary [reset]");
	if (rt->queue == NULL)
		return imp_cli_error(cli, "the queue is not running");
	if (rt->smtp)
		smtp_server_get_stats(rt->smtp, &in);
	if (argc == 2) {
		queue_stats_reset(rt->queue);
		rejected_base = in.rejected;
		if (imp_cli_json(cli))
			imp_cli_printf(cli, "{\"reset\":true}\n");
		else
			imp_cli_printf(cli, "Statistics reset\n");
		return 0;
	}
	queue_get_stats(rt->queue, &q);
	uint64_t rejected = in.rejected - (in.rejected >= rejected_base ? rejected_base : 0);

	if (imp_cli_json(cli)) {
		imp_cli_printf(cli,
			       "{\"outbound_concurrency\":%" PRIu64 ",\"inbound_concurrency\":%" PRIu32
			       ",\"active_domains\":%" PRIu64 ",\"active_queue\":%" PRIu64
			       ",\"delayed_queue\":%" PRIu64 ",\"total_queue\":%" PRIu64
			       ",\"queued_messages\":%" PRIu64 ",\"dns_queries\":%" PRIu64
			       ",\"dns_pending\":%" PRIu64 ",\"dns_cached\":%" PRIu64
			       ",\"dns_query_rate\":%.2f,\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64
			       ",\"rejected\":%" PRIu64 ",\"received\":%" PRIu64
			       ",\"delivery_rate_10s\":%.2f,\"delivery_rate_60s\":%.2f"
			       ",\"reception_rate_10s\":%.2f,\"reception_rate_60s\":%.2f"
			       ",\"suspended\":%" PRIu64 ",\"reroutes\":%" PRIu64
			       ",\"since_reset\":%" PRId64 ",\"uptime\":%" PRId64 "}\n",
			       q.conns, in.sessions, q.destinations, q.active, q.delayed, q.total,
			       q.messages, q.dns_queries, q.dns_pending, q.dns_cached, q.dns_rate,
			       q.delivered, q.failed, rejected, q.received, q.delivery_rate_10,
			       q.delivery_rate_60, q.reception_rate_10, q.reception_rate_60, q.held,
			       q.reroutes, q.since_reset, q.uptime);
		return 0;
	}
	imp_cli_printf(cli, "Summary Statistics\n");
	imp_cli_printf(cli, "        Outbound Concurrency: %8" PRIu64 "\n", q.conns);
	imp_cli_printf(cli, "        Inbound Concurrency: %9" PRIu32 "\n", in.sessions);
	imp_cli_printf(cli, "        Active Domains: %14" PRIu64 "\n", q.destinations);
	imp_cli_printf(cli, "        Active Queue Size: %11" PRIu64 "\n", q.active);
	imp_cli_printf(cli, "        Delayed Queue Size: %10" PRIu64 "\n", q.delayed);
	imp_cli_printf(cli, "        Total Queue Size: %12" PRIu64 "\n", q.total);
	imp_cli_printf(cli, "        Queued Messages: %13" PRIu64 "\n", q.messages);
	imp_cli_printf(cli, "        DNS Queries: %17" PRIu64 "\n", q.dns_queries);
	imp_cli_printf(cli, "        Pending DNS Queries: %9" PRIu64 "\n", q.dns_pending);
	imp_cli_printf(cli, "        Query Rate: %8.2f queries/second\n", q.dns_rate);
	imp_cli_printf(cli, "        Successfully Delivered Messages: %" PRIu64 "\n", q.delivered);
	imp_cli_printf(cli, "        Failed Messages: %" PRIu64 "\n", q.failed);
	imp_cli_printf(cli, "        Rejected Messages: %" PRIu64 "\n", rejected);
	imp_cli_printf(cli, "        Received Messages: %" PRIu64 "\n", q.received);
	imp_cli_printf(cli, "        Delivery Rate: %8.2f messages/second (10 s), %.2f (60 s)\n",
		       q.delivery_rate_10, q.delivery_rate_60);
	imp_cli_printf(cli, "        Reception Rate: %7.2f messages/second (10 s), %.2f (60 s)\n",
		       q.reception_rate_10, q.reception_rate_60);
	if (q.held || q.reroutes)
		imp_cli_printf(cli, "        Suspended: %" PRIu64 "  Reroutes: %" PRIu64 "\n", q.held,
			       q.reroutes);
	imp_cli_printf(cli, "        Statistics Last Reset: %" PRId64 " seconds\n", q.since_reset);
	imp_cli_printf(cli, "        Uptime: %" PRId64 " seconds\n", q.uptime);
	return 0;
}

void api_summary_register(struct api_gen *g)
{
	if (imp_cli_register(api_core_instance(g), "summary",
			     "global metrics: queues, counts, rates, uptime: summary [reset]",
			     cmd_summary, NULL) < 0)
		abort();
}
