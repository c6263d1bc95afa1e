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

#endif
