/*
 * queue.h - the queue manager (scheduler thread)
 *
 * Every queued recipient is one entry in the queue of its (binding,
 * routing domain) pair: an active FIFO of entries ready now and a delayed
 * min-heap ordered by next attempt. The message itself (envelope, no body)
 * is held once and shared by its entries; the body stays in the spool.
 *
 * The manager resolves where a domain's mail goes (DNS, Routes, Gateway),
 * decides how many connections each queue should have (queue_goal.c),
 * respects Max_Outbound_Connections, Server_Max_Outbound_Connections and
 * the throttles, hands batches of recipients to outbound connections on
 * the I/O loops, and applies their outcomes: D/T/P log lines, spool
 * records, retries with exponential back-off, expiry, bounces.
 *
 * Ownership: struct queue and everything in it belong to the scheduler
 * thread. Connections report back by posting to it.
 */
#ifndef IMPETUS_QUEUE_QUEUE_H
#define IMPETUS_QUEUE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct dns;
struct loop;
struct spool;
struct envelope_loc;
struct envelope;
struct queue;

struct queue_deps {
	struct loop *scheduler;
	struct loop **io;
	size_t nio;
	struct spool *spool;
	struct dns *dns;
	struct pool *io_pool;		/* renders bounces; the daemon's IO pool */
};

/* queue_new - an empty queue manager; recovered mail may be added before start. */
struct queue *queue_new(struct conf *conf);
/* queue_set_conf - a new configuration generation (SIGHUP). */
void queue_set_conf(struct queue *q, struct conf *conf);
/* queue_start - begin delivering: timers, DNS, connections. */
void queue_start(struct queue *q, const struct queue_deps *deps);
/* queue_accept - a newly received, durable message; logs R lines. */
void queue_accept(struct queue *q, struct envelope *msg);
/* queue_recovered - a message found by spool recovery (no R line). */
void queue_recovered(struct queue *q, struct envelope *msg);
/*
 * queue_moved - spool compaction relocated message id to loc (durable).
 * Its entries read the body from there from now on; the spool is told
 * (spool_moved_ack) once no batch still out holds the old location.
 */
void queue_moved(struct queue *q, uint64_t id, const struct envelope_loc *loc);
/*
 * queue_shutdown - open no more connections, close idle ones, and call
 * done(arg) once no connection is left or after grace_seconds.
 */
void queue_shutdown(struct queue *q, int grace_seconds, void (*done)(void *), void *arg);
/*
 * Operations on one queued message, by id (queue_ops.c; the module API's
 * include/impetus/queue.h). Scheduler thread. 0, or -ENOENT when the
 * message is not queued (or, for requeue, none of ids is).
 *
 * queue_op_requeue - the waiting recipients of ids are due now.
 * queue_op_fail - every queued recipient fails: a P line with "code
 *   text", stage 21; a bounce unless quiet; recipients out in a batch
 *   fail the same way when they come back undelivered.
 * queue_op_rebind - the queued recipients move to binding's queues ("" =
 *   default), due now; a BINDING spool record keeps it over a restart.
 *   -ENOENT also when no Binding has that name.
 * queue_set_retention - the message expires seconds after its reception
 *   instead of after Message_Expiration (0: back to that); not stored.
 */
int queue_op_requeue(struct queue *q, const uint64_t *ids, size_t n);
int queue_op_fail(struct queue *q, uint64_t id, int code, const char *text, bool quiet);
int queue_op_rebind(struct queue *q, uint64_t id, const char *binding);
int queue_set_retention(struct queue *q, uint64_t id, uint32_t seconds);

/*
 * The one injection path (queue_inject.c): a message made inside the
 * daemon (imp_inject, bounces) goes to the spool and then to the queue.
 *
 * queue_inject - env holds the envelope (sender, recipients, binding,
 * protocol; id and received are set when 0) and the whole message in
 * env->body with CRLF line ends. flags are IMP_INJECT_* of
 * include/impetus/inject.h: unless NO_TRACE a Received: field is put on
 * top; a Message-ID: is added when there is none (NEW_ID: any there is
 * replaced); with SIGN and sign subscribers in conf's generation, they run
 * on the CPU pool before spooling; with LOG the queue writes the R lines.
 * retention: see queue_set_retention (0 = Message_Expiration).
 *
 * Any thread; never blocks. Takes env. r names the spool and the
 * scheduler (and the CPU pool for signing, may be NULL) because a module
 * may inject before the queue has started. When the call does not sign, the
 * message is handed to the spool before queue_inject returns, so a
 * record the caller posts to the spool afterwards from the same thread
 * is written in the same or a later group commit (the bounce relies on
 * it). done(arg, err, id) runs on the scheduler thread once the message
 * is durable and queued (err 0) or could not be spooled (-errno).
 * r->conf (may be NULL: no hostname for the trace, no signing) is
 * referenced for as long as the injection needs it.
 */
typedef void (*queue_inject_done_fn)(void *arg, int err, uint64_t id);
struct queue_inject_req {
	struct queue *q;
	struct spool *spool;
	struct loop *scheduler;
	struct pool *cpu_pool;		/* NULL: no signing */
	struct conf *conf;		/* NULL: "localhost", no signing */
	unsigned flags;			/* IMP_INJECT_* */
	uint32_t retention;		/* seconds; 0 = Message_Expiration */
	queue_inject_done_fn done;	/* may be NULL */
	void *arg;
};
void queue_inject(const struct queue_inject_req *r, struct envelope *env);
/* queue_inject_crlf - append data[0..len) to out with every bare LF (and bare CR) made CRLF. */
struct str;
void queue_inject_crlf(struct str *out, const char *data, size_t len);

/*
 * What `summary` reports of the queue (queue_admin.c). Counts are
 * recipients except received (messages accepted) and messages.
 * delivered/failed/received count since the start or the last
 * queue_stats_reset; rates are per second over the last 10 and 60 whole
 * seconds. Scheduler thread; one pass over the queues, none over messages.
 */
struct queue_stats {
	uint64_t active, delayed, total;	/* recipients: due now, waiting, all queued */
	uint64_t messages;
	uint64_t destinations;			/* (binding, domain) queues in memory */
	uint64_t conns;				/* outbound connections */
	uint64_t delivered, failed, received;
	double delivery_rate_10, delivery_rate_60, reception_rate_10, reception_rate_60;
	int64_t since_reset, uptime;		/* seconds */
	uint64_t held;				/* domains and bindings suspended */
	uint64_t reroutes;			/* reroute rules */
	uint64_t dns_queries;			/* DNS queries sent since start or reset */
	uint64_t dns_pending;			/* lookups in flight */
	uint64_t dns_cached;			/* names in the DNS cache */
	double dns_rate;			/* queries per second since start or reset */
	/* Since start, never reset (GET /metrics: Prometheus counters only grow). */
	uint64_t delivered_total, failed_total, received_total, dns_queries_total;
	/* The resolver's, since start: requests, answered from the cache, lookups started, failed. */
	uint64_t dns_requests_total, dns_cache_hits_total, dns_lookups_total;
	uint64_t dns_tempfails_total, dns_permfails_total;
	bool has_dns;				/* a resolver runs: the dns_* fields mean something */
};
void queue_get_stats(struct queue *q, struct queue_stats *st);
/*
 * queue_binding_sizes - fn once per binding with queued mail ("" = the
 * default binding), with its recipients due now and waiting. Scheduler
 * thread; one pass over the (binding, domain) queues.
 */
void queue_binding_sizes(struct queue *q,
			 void (*fn)(void *ctx, const char *binding, uint64_t active, uint64_t delayed),
			 void *ctx);
struct queue_metrics;
/*
 * queue_get_metrics - the labelled lifetime counters (queue_metrics.h),
 * after ranking the domains for their series: a scrape. Scheduler thread;
 * valid until the next event.
 */
struct queue_metrics *queue_get_metrics(struct queue *q);
/* queue_stats_reset - `summary reset`: the counts and rates start again from zero. */
void queue_stats_reset(struct queue *q);

size_t queue_message_count(const struct queue *q);
size_t queue_recipient_count(const struct queue *q);
/*
 * queue_destination_count - (binding, domain) queues in memory: those
 * with entries, connections or a lookup in flight (an unused one is freed).
 */
size_t queue_destination_count(const struct queue *q);
void queue_free(struct queue *q);

/*
 * The connection goal: how many connections a queue should have now. It
 * is the connection_goal hook (impetus/hooks.h): its subscribers run in
 * order from the built-in one, queue_default_connection_goal at
 * IMP_ORDER_FIRST (queue_goal.c); a conf without a generation (tests,
 * tools) uses the built-in one alone. The manager caps the answer at
 * Max_Outbound_Connections either way.
 */
struct imp_goal_input;
struct api_gen;
uint32_t queue_default_connection_goal(const struct imp_goal_input *in);

/*
 * queue_builtins_register - the queue's built-in subscribers into g: the
 * default connection goal (IMP_ORDER_FIRST) and the round-robin binding
 * choice (IMP_ORDER_LAST).
 */
void queue_builtins_register(struct api_gen *g);
/*
 * queue_console_register - the queue and message console commands (mailq,
 * domain, showqueue, message, flush, fail, reroute, rebind, suspend,
 * resume; queue_console.c) into a building generation. Called by
 * queue_builtins_register.
 */
void queue_console_register(struct api_gen *g);

#endif
