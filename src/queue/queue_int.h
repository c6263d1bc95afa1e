/*
 * queue_int.h - the queue manager's structures (private to src/queue/)
 *
 * All of these belong to the scheduler thread. The files of src/queue/
 * and what each owns:
 *
 *   queue.c          struct queue: the manager that kicks (connection
 *                    goal, batches, client connections, throttles,
 *                    starvation, maintenance scan, shutdown, life cycle)
 *   queue_dest.c     struct queue_dest: one (binding, domain) queue, its
 *                    active FIFO, delayed heap and timer
 *   queue_route.c    where a destination's mail goes: routing domain,
 *                    binding assignment, Routes/Gateway, DNS resolution
 *   queue_hop.c      struct queue_hop: one (binding, next hop) whose
 *                    connections the domains behind it share (MX_Rollup)
 *   queue_outcome.c  delivered / deferred / failed, message finalisation,
 *                    the spool's moved/ack bookkeeping for compaction
 *   queue_goal.c     the connection_goal hook and its default
 *   queue_binding.c  choosing a binding within a Binding_Group
 *   queue_log.c      mainlog/bouncelog lines
 *   queue_bounce.c   RFC 3464 bounces
 *   queue_ops.c      requeue, fail, rebind of one message by id
 *                    (the module API's queue operations), retention
 *   queue_inject.c   the one injection path: internal messages (module
 *                    injection, bounces) to the spool, then the queue
 *   queue_admin.c    the operator's run-time controls (suspend/resume of a
 *                    domain or binding, reroute rules), operations on a
 *                    whole domain (flush, fail, reroute, rebind) and the
 *                    counters and rates of `summary`
 *   queue_console.c  the console's queue and message commands (mailq,
 *                    domain, showqueue, message, flush, fail, ...)
 *
 * Memory per queued recipient: one struct qentry (40 bytes) plus its share
 * of the struct qmsg and its struct envelope (the recipient's address
 * and ~40 bytes of struct envelope_rcpt). See docs/queue.md for measurements.
 */
#ifndef IMPETUS_QUEUE_QUEUE_INT_H
#define IMPETUS_QUEUE_QUEUE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/slab.h"
#include "queue/queue.h"
#include "queue/queue_metrics.h"
#include "queue/throttle.h"
#include "spool/spool_idmap.h"

struct event;
struct pool;
struct smtp_client;
struct smtp_batch;
struct envelope;
struct strmap;
struct queue_dest;
struct queue_hop;
struct queue_groups;
struct api_hook;
struct api_gen;

/* One message with recipients still to deliver. */
struct qmsg {
	struct envelope *sm;		/* envelope; no body */
	uint32_t pending;		/* recipients without a final state */
	uint32_t inflight;		/* batches out with a copy of sm->loc */
	bool ack_pending;		/* the spool moved it; ack once inflight is 0 */
	/* What its report will say: sm->failures (queue_outcome.c adds them). */
	int64_t expires;		/* unix seconds; 0 = received + Message_Expiration */
	/* queue_ops.c: operations asked through include/impetus/queue.h */
	bool op_mark;			/* selected by the operation being applied */
	int op_fail_code;		/* imp_queue_fail while batches were out: */
	char *op_fail_text;		/* recipients coming back undelivered fail with this */
	bool op_fail_quiet;
};

/*
 * Events per second over the last QUEUE_RATE_SLOTS seconds: one slot per
 * second, stamped with its second so a stale slot reads as empty. Enough
 * for a 10 s and a 60 s rate without a timer.
 */
#define QUEUE_RATE_SLOTS 64
struct queue_rate {
	int64_t sec[QUEUE_RATE_SLOTS];
	uint32_t n[QUEUE_RATE_SLOTS];
};

/* The counters `summary` reports (queue_admin.c); reset by `summary reset`. */
struct queue_counters {
	uint64_t delivered;		/* recipients delivered (D lines) */
	uint64_t failed;		/* recipients failed (P lines) */
	uint64_t received;		/* messages accepted (queue_accept) */
	struct queue_rate delivery;	/* D and P lines */
	struct queue_rate reception;
	int64_t reset_us;		/* when counting began: start or last reset */
	uint64_t dns_base;		/* the resolver's query count at the last reset */
};

/* One recipient in one queue. */
struct qentry {
	struct qmsg *m;
	struct qentry *next;		/* active FIFO */
	int64_t next_attempt;		/* unix seconds */
	uint32_t rcpt;			/* index in m->sm->rcpts */
	uint32_t retries;
	uint32_t heap_idx;
	/*
	 * Delay notices already due for this recipient (sent, or skipped
	 * because they fell due before a restart); QENTRY_DELAY_DSN_UNKNOWN
	 * for a recovered recipient that was retried before: worked out at
	 * its next deferral (queue_bounce_delay). Fits the struct's padding.
	 */
	uint32_t delay_dsns;
};

#define QENTRY_DELAY_DSN_UNKNOWN UINT32_MAX

/* queue_entry_new / queue_entry_free - a recipient's entry, from the queue's slab (no malloc each). */
struct qentry *queue_entry_new(struct queue *q);
void queue_entry_free(struct queue *q, struct qentry *e);

/*
 * An outbound connection as the scheduler sees it: a queue's own (dq,
 * hop NULL) or a next hop's, shared by the domains behind it (hop, dq
 * NULL).
 */
struct qconn {
	struct queue *q;
	struct queue_dest *dq;
	struct queue_hop *hop;
	struct smtp_client *c;		/* NULL until the first batch_done */
	struct qconn *next_idle;
	bool idle;
	/*
	 * The AUTH identity the connection logged in with (queue.c auth_id:
	 * mechanism, user, password, plain-text flag), NULL when none. A
	 * reload that changes the credentials makes idle connections that
	 * differ close instead of being reused; wiped when freed.
	 */
	char *auth_id;
};

/*
 * The batch's side record: which entries its recipients are, and from
 * which queues. A batch of one queue has ndoms 1 and dom_of NULL; a next
 * hop's batch may carry the entries of several domains of one message:
 * doms[] lists each queue once (doms[0] == dq), dom_of[i] is the index
 * in doms of entries[i]'s queue. Each queue in doms counts the batch in
 * its conns while it is out (queue_hop.c).
 */
struct qbatch {
	struct queue_dest *dq;
	struct queue_hop *hop;		/* NULL: a queue's own connection */
	size_t ndoms;
	struct queue_dest **doms;	/* owned unless ndoms == 1 (then &dq) */
	uint32_t *dom_of;		/* owned; NULL when ndoms == 1 */
	size_t n;
	struct qentry *entries[];
};

/* qbatch_dq - the queue of the batch's i-th entry. */
static inline struct queue_dest *qbatch_dq(const struct qbatch *qb, size_t i)
{
	return qb->dom_of ? qb->doms[qb->dom_of[i]] : qb->dq;
}

/*
 * The settings a queue needs, read from one configuration generation.
 * Reading them goes through the scoped lookup (binding::domain, group,
 * global Domain with its /regex/ stanzas, ...), so it is done once per
 * generation and queue, not on every event: queue_dest_settings()
 * refreshes them when the manager's generation (struct queue.conf_gen)
 * moved on. The strings point into that generation, which the manager
 * holds, and are never used after it changed without a refresh first.
 */
struct queue_dest_settings {
	uint64_t gen;			/* struct queue.conf_gen read from; 0 = never */
	uint64_t reads;			/* how many times they were read (for tests) */
	/* the manager */
	bool suspend;			/* Suspend_Delivery */
	uint32_t max_conns;		/* Max_Outbound_Connections (0 = no limit) */
	uint32_t batch_size;		/* Max_Recipients_Per_Batch */
	struct conf_throttle throttle_msgs, throttle_conns;
	/* outcomes */
	int64_t retry_interval, max_retry_interval;
	int64_t max_retries;		/* CONF_T_RETRIES: < 0 = no count limit */
	int64_t expiration;		/* Message_Expiration, seconds */
	bool delay_dsn;			/* Generate_Delay_DSN */
	int64_t delay_dsn_interval;	/* Delay_DSN_Retry_Interval */
	int64_t delay_dsn_max;		/* Delay_DSN_Max_Retry_Interval */
	/* routing */
	const char *route;		/* Routes' first (not __mx__), else Gateway, else NULL */
	uint16_t port;			/* Outbound_SMTP_Port */
	/* connections */
	bool has_bind;
	struct sockaddr_storage bind;	/* Bind_Address, parsed */
	const char *ehlo;		/* EHLO_Hostname, else the server's name */
	uint8_t tls_mode;		/* enum conf_tls */
	uint32_t connect_timeout, idle_timeout, max_deliveries;
	/* outbound AUTH: auth_user NULL = none (Outbound_SMTP_AUTH_*) */
	const char *auth_user, *auth_pass, *auth_key;
	uint8_t auth_type;		/* enum smtp_auth_type */
	bool auth_allow_plaintext;
	/* next hop (queue_hop.c) */
	bool rollup;			/* MX_Rollup */
	uint32_t hop_max_conns;		/* Next_Hop_Max_Outbound_Connections */
	uint32_t hop_max_rcpts;		/* Next_Hop_Max_Recipients_Per_Transaction */
};

/*
 * The queue of one (binding, routing domain) pair. Fields are grouped by
 * the file that writes them; all on the scheduler thread.
 */
struct queue_dest {
	char *binding;			/* "" = default */
	char *domain;
	struct queue *q;
	struct queue_dest_settings set;	/* through queue_dest_settings() only */
	/* queue_dest.c: the entries and the timer */
	struct qentry *head, *tail;	/* active */
	uint64_t nactive;
	uint64_t runs;			/* active entries starting a new message: batches at least */
	struct qentry **heap;		/* delayed, min-heap on next_attempt */
	uint32_t nheap, heapcap;
	struct event *timer;
	int64_t timer_at_us;		/* 0 when not armed */
	/*
	 * queue.c: connections and shaping. conns counts the queue's own
	 * connections and, with MX_Rollup, the next hop's connections
	 * carrying a transaction with its recipients now: both are what
	 * Max_Outbound_Connections limits.
	 */
	uint32_t conns;
	bool starving;			/* in the manager's starved list */
	struct qconn *idle;		/* idle connections, LIFO */
	struct throttle msg_tb, conn_tb;
	uint32_t recent_failures;	/* failed connection attempts since the last success */
	/* queue_admin.c: what `domain` reports, for the life of this queue */
	uint64_t delivered, failed, deferred;
	struct queue_rate delivery;
	/* queue_route.c: where the mail goes */
	bool resolving;			/* a lookup in flight holds the queue */
	bool in_resolve_call;		/* inside dns_resolve_*: an answer now is synchronous */
	bool quiet_resolve;		/* queue_route_prefetch: no kick on an answer inside the call */
	int64_t hosts_expiry;		/* unix seconds; 0 = never resolved */
	size_t naddr;
	struct sockaddr_storage *addrs;
	char **names;
	char *route_key;		/* the resolved next hop: "mx:10 a.example,20 b.example" or "host:h:port" */
	/* queue_hop.c: the next hop it rolls up to, NULL when none (yet) */
	struct queue_hop *hop;
	size_t hop_idx;			/* its index in hop->members */
	bool hop_ok;			/* may send in the transaction being built (queue_hop_take) */
	uint64_t hop_gen;		/* conf_gen the hop was chosen with */
};

/*
 * One (binding, next hop): the connections the domains behind one MX set
 * (or one Routes/Gateway host) share when MX_Rollup is on, and those
 * domains' queues (members). The key includes every setting that shapes
 * a connection (port, TLS, AUTH identity, source address, EHLO name), so
 * domains that differ in any of them never share one. Held by its members
 * and its connections; freed by queue_hop_release when neither is left.
 * Scheduler thread (queue_hop.c).
 */
struct queue_hop {
	struct queue *q;
	char *key;			/* map key (the AUTH identity as a digest only) */
	char *name;			/* what the console shows: the route key and the port */
	char *binding;
	struct queue_dest **members;
	size_t nmembers, memberscap;
	size_t rr;			/* next member to take a batch from (round robin) */
	uint32_t conns;			/* open: busy and idle */
	struct qconn *idle;		/* idle connections, LIFO */
	uint32_t recent_failures;	/* failed connection attempts since the last success */
	/* limits: the smallest among the members, read again when the members or the conf change */
	uint64_t lim_gen;		/* conf_gen they were read with; 0 = stale */
	uint32_t max_conns;		/* Next_Hop_Max_Outbound_Connections (0 = no limit) */
	uint32_t max_rcpts;		/* Next_Hop_Max_Recipients_Per_Transaction */
	uint64_t transactions;		/* batches sent (console) */
	uint64_t multi;			/* of which with more than one domain */
};

/* The queue manager (queue.c). */
struct queue {
	struct conf *conf;
	uint64_t conf_gen;		/* bumped by every queue_set_conf: queues re-read settings */
	int64_t server_max_conns;	/* Server_Max_Outbound_Connections of conf */
	struct queue_deps deps;
	bool started;
	bool stopping;
	struct strmap *queues;		/* "binding\x01domain" -> struct queue_dest */
	struct strmap *hops;		/* queue_hop.key -> struct queue_hop */
	struct spool_idmap msgs;	/* message id -> struct qmsg, to follow spool moves */
	size_t nmsgs;
	/*
	 * Recovered with every recipient final and its report still owed
	 * (docs/bounces.md, "Restarts"): finished by queue_start, when the
	 * spool and the IO pool the report needs exist.
	 */
	struct qmsg **due;
	size_t ndue;
	size_t nrcpts;			/* entries alive */
	struct slab entries;		/* every struct qentry (queue_entry_new / queue_entry_free) */
	uint32_t conns;			/* outbound connections, all queues */
	size_t next_io;
	/*
	 * The hooks of conf's generation the hot paths run, looked up again
	 * only when conf or its generation changed (hooks_refresh in
	 * queue.c): NULL when nobody subscribed or conf has no generation
	 * (the built-in behaviour).
	 */
	const struct api_gen *hooks_gen;
	const struct conf *hooks_conf;
	const struct api_hook *goal_hook;
	const struct api_hook *params_hook;
	struct queue_groups *groups;	/* Binding_Group members (queue_binding.c) */
	struct event *maintainer;
	struct event *shutdown_timer;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	/*
	 * queue_admin.c: the operator's run-time controls. In memory only: a
	 * restart forgets them (the messages they concern are safe in the
	 * spool and go back to their configured routing). nheld counts the
	 * entries of both held maps, so the kick's test costs nothing when
	 * nothing is suspended.
	 */
	struct strmap *held_domains;	/* suspend domain D: D -> (void *)1 */
	struct strmap *held_bindings;	/* suspend binding B: B ("" = default) -> (void *)1 */
	size_t nheld;
	struct strmap *reroutes;	/* reroute queue D1 D2: D1 -> D2 (owned string) */
	struct queue_counters st;
	struct queue_counters life;	/* the same counts, never reset (metrics) */
	struct queue_metrics metrics;	/* labelled lifetime counters (queue_metrics.h) */
	int64_t started_us;		/* queue_new: the daemon's uptime */
	/* queues waiting for the server-wide connection limit */
	struct queue_dest **starved;
	size_t nstarved, starvedcap;
};

/* queue.c */
/* queue_accept_quiet - queue_accept without the R lines (an injection without IMP_INJECT_LOG). */
void queue_accept_quiet(struct queue *q, struct envelope *msg);
/* queue_kick - make progress on a queue; cheap when there is nothing to do. */
void queue_kick(struct queue *q, struct queue_dest *dq);

/* queue_dest.c */
/* queue_dest_find - the queue of (binding, domain) if it exists, else NULL. */
struct queue_dest *queue_dest_find(struct queue *q, const char *binding, const char *domain);
/*
 * queue_dest_take - remove the entries whose message is marked (qmsg
 * op_mark) from the delayed heap and, unless heap_only, the active FIFO;
 * appends them to *v (*n entries, *cap allocated). One pass over dq.
 */
void queue_dest_take(struct queue_dest *dq, bool heap_only, struct qentry ***v, size_t *n,
		     size_t *cap);
/* queue_dest_get - the queue of (binding, domain), created empty on first use. */
struct queue_dest *queue_dest_get(struct queue *q, const char *binding, const char *domain);
/* queue_dest_settings - dq's settings, read again if the configuration changed. */
const struct queue_dest_settings *queue_dest_settings(struct queue_dest *dq);
/* queue_dest_enqueue - an entry into the active FIFO, or the delayed heap if not due. */
void queue_dest_enqueue(struct queue_dest *dq, struct qentry *e);
void queue_dest_append(struct queue_dest *dq, struct qentry *e);
void queue_dest_prepend(struct queue_dest *dq, struct qentry *e);
struct qentry *queue_dest_pop(struct queue_dest *dq);
/* queue_dest_arm - make sure the queue's timer fires no later than at_us. */
void queue_dest_arm(struct queue_dest *dq, int64_t at_us);
/* queue_dest_promote - move every delayed entry that is due to the active FIFO. */
void queue_dest_promote(struct queue_dest *dq, int64_t now_s);
/*
 * queue_dest_release - free dq if nothing holds it (see queue_dest.c for
 * what holds a queue). Only from the top of an event handler: no caller
 * up the stack may still use dq.
 */
void queue_dest_release(struct queue_dest *dq);
/*
 * queue_dest_free - release a queue; its entries go into msgs (id -> qmsg)
 * for the caller to free (msgs may be NULL when it has none: a release).
 */
void queue_dest_free(struct queue_dest *dq, struct strmap *msgs);

/* queue_hop.c */
/*
 * queue_hop_attach - the next hop of a resolved queue with MX_Rollup,
 * joined (or moved to) now if its route or the configuration changed.
 * Never frees a hop (one left without members waits for
 * queue_hop_release).
 */
struct queue_hop *queue_hop_attach(struct queue *q, struct queue_dest *dq);
/* queue_hop_detach - dq leaves its next hop (if any); never frees the hop. */
void queue_hop_detach(struct queue_dest *dq);
/*
 * queue_hop_take - the next transaction for a connection of hop: the
 * first eligible member's head message with up to Max_Recipients_Per_Batch
 * of its entries, joined by the entries of that message in the other
 * eligible members, up to the hop's recipient limit; each member's
 * throttles and Max_Outbound_Connections respected (new_conn: the
 * connection throttles too). NULL when no member can send now (members
 * held by a throttle have their timers armed).
 */
struct smtp_batch *queue_hop_take(struct queue *q, struct queue_hop *hop, bool new_conn);
/* queue_hop_limits - the hop's limits, read again if stale. */
void queue_hop_limits(struct queue_hop *hop);
/* queue_hop_release - free hop if it has neither members nor connections (top of an event only). */
void queue_hop_release(struct queue_hop *hop);
/* queue_hop_release_all - release every unused hop (the maintainer). */
void queue_hop_release_all(struct queue *q);
/* queue_hop_free_all - free every hop (queue_free, after the queues). */
void queue_hop_free_all(struct queue *q);

/* queue.c: what queue_hop.c shares with the manager */
/*
 * queue_batch_new - the transaction of m to the n entries (taken from
 * their queues): the smtp_batch with its qbatch (b->qctx), whose dq is
 * NULL and ndoms 0 for the caller to fill in.
 */
struct smtp_batch *queue_batch_new(struct queue *q, struct qmsg *m, struct qentry *const *entries,
				   size_t n);
/* queue_auth_id - the AUTH identity a connection with settings s logs in with (NULL: none); caller frees with queue_auth_id_free. */
char *queue_auth_id(const struct queue_dest_settings *s);
/* queue_auth_id_free - wipe and free an auth id. */
void queue_auth_id_free(char *id);

/* queue_ops.c */
/*
 * queue_ops_returned - an entry of a batch came back not tried: true when
 * an operation took it over meanwhile (failed it, or it belongs to a new
 * binding's queue now), false to put it back in dq.
 */
bool queue_ops_returned(struct queue *q, struct queue_dest *dq, struct qentry *e);
/* queue_ops_home - where a deferred entry of dq goes back: dq, or its message's new binding's queue. */
struct queue_dest *queue_ops_home(struct queue *q, struct queue_dest *dq, struct qentry *e);

/* queue_route.c */
/* queue_route_domain - the lower-cased domain of an address ("" for none); caller frees. */
char *queue_route_domain(const char *addr);
/* queue_route_assign_binding - Assign_Binding of the first recipient's domain, if unset. */
void queue_route_assign_binding(struct queue *q, struct envelope *sm);
/* queue_route_resolve - start finding where the queue's mail goes; kicks it when known. */
void queue_route_resolve(struct queue *q, struct queue_dest *dq);
/*
 * queue_route_key - the next hop of a DNS answer (queue_route.c's header):
 * "mx:PREF NAME,... port P" sorted by preference then name, or
 * "host:NAME port P" for a route; lower case. Caller frees. Pure;
 * exported for the unit test.
 */
struct dns_mx_result;
char *queue_route_key(const struct dns_mx_result *res, bool route, uint16_t port);
/* queue_route_prefetch - resolve dq now if it needs it, with no kick on a cached answer. */
void queue_route_prefetch(struct queue *q, struct queue_dest *dq);
/* queue_route_clear - forget the resolved hosts. */
void queue_route_clear(struct queue_dest *dq);

/* queue_admin.c */
/* queue_admin_held - whether dq was suspended from the console (its domain or its binding). */
bool queue_admin_held(const struct queue *q, const struct queue_dest *dq);
/* queue_admin_route - the domain whose queue gets domain's mail: a reroute rule's target, else domain. */
const char *queue_admin_route(const struct queue *q, const char *domain);
/* queue_rate_add - one event now. */
void queue_rate_add(struct queue_rate *r, int64_t now_s);
/* queue_rate_get - events per second over the last span whole seconds (span <= QUEUE_RATE_SLOTS). */
double queue_rate_get(const struct queue_rate *r, int64_t now_s, int span);
/* queue_admin_count - one outcome for summary and domain: 'D', 'P', 'T', or 'R' (a message received). */
void queue_admin_count(struct queue *q, struct queue_dest *dq, char what);
/*
 * queue_admin_dests - the queues of binding and domain (NULL: any), sorted
 * by binding then domain; *out is the caller's to free. Returns how many.
 */
size_t queue_admin_dests(struct queue *q, const char *binding, const char *domain,
			 struct queue_dest ***out);
/* queue_admin_is_held - whether the binding ("" = default) or the domain is suspended. */
bool queue_admin_is_held(const struct queue *q, const char *binding, const char *domain);
/*
 * queue_admin_suspend - hold (on) or release a binding (binding true) or a
 * domain by name. Returns 1 when that changed its state, 0 when it was so.
 */
int queue_admin_suspend(struct queue *q, bool binding, const char *name, bool on);
/*
 * queue_admin_reroute - the mail of domain from goes to to's queues from now
 * on; the queued entries move. Returns how many, or -ELOOP when to already
 * leads back to from.
 */
long queue_admin_reroute(struct queue *q, const char *from, const char *to);
/* queue_admin_flush - the delayed entries of domain are due now; how many, or -ENOENT (no queue). */
long queue_admin_flush(struct queue *q, const char *domain);
/*
 * queue_admin_fail - the queued entries of domain fail with "code text"
 * (P lines, stage 21; bounces unless quiet). How many, or -ENOENT.
 */
long queue_admin_fail(struct queue *q, const char *domain, int code, const char *text, bool quiet);
/*
 * queue_admin_rebind - the messages queued for domain (NULL: all) get the
 * binding Assign_Binding / their Binding_Group choose now. Returns how
 * many moved (*examined: how many were looked at), or -ENOENT.
 */
long queue_admin_rebind(struct queue *q, const char *domain, size_t *examined);
/* queue_admin_free - forget the run-time controls (queue_free). */
void queue_admin_free(struct queue *q);

/* queue_binding.c */
/*
 * queue_binding_choose - a message in a Binding_Group without a binding
 * gets one of the group's bindings (binding_group_choose_binding hook,
 * round robin built in). No-op when it has a binding or no group.
 */
void queue_binding_choose(struct queue *q, struct envelope *sm);
/* queue_binding_group_name - the configured name of the Binding_Group group (any case), or NULL. */
const char *queue_binding_group_name(struct queue *q, const char *group);
/* queue_binding_free - forget the group table (queue_free). */
void queue_binding_free(struct queue *q);

#endif
