/*
 * queue_metrics.h - the queue's labelled lifetime counters for GET /metrics
 *
 * Receptions by protocol, and delivered / transient failure / permanent
 * failure outcomes by binding and by destination domain, counted since
 * start and never reset (Prometheus counters only grow). Every label has
 * bounded cardinality, however many distinct values the mail brings:
 *
 *   protocol  the envelope's protocol (esmtp, smtp, http, internal, ...):
 *             the first QM_MAX_LABELS values seen get their own series,
 *             later ones count as "other"
 *   binding   the same rule ("" is shown as "default")
 *   domain    the queue's (routing) domain. A bounded frequency sketch
 *             (Misra-Gries, 8 * limit + 16 candidates) follows which
 *             domains carry the most outcomes; at each scrape
 *             (queue_metrics_assign) the domains in the sketch's current
 *             top `limit` that carry at least 1/(4 * limit) of the
 *             outcomes seen so far are given their own series while
 *             fewer than `limit` have one (the share keeps a handful of
 *             domains seen once from taking slots at the first scrape
 *             after start). A domain keeps its series until restart
 *             (so no series ever goes backwards) and counts into it from
 *             the moment it was given; everything else, including what
 *             an assigned domain did before, is in domain="other". So at
 *             most limit + 1 domain series exist, after a million
 *             domains as after ten, and for every outcome the domain
 *             series add up to the binding series.
 *
 * Memory: O(QM_MAX_LABELS + limit); one or two hash lookups per outcome.
 *
 * Ownership: the scheduler thread, like struct queue that holds it (the
 * scrape runs there too). Failures: none (allocation failure aborts).
 */
#ifndef IMPETUS_QUEUE_QUEUE_METRICS_H
#define IMPETUS_QUEUE_QUEUE_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct strmap;

#define QM_MAX_LABELS 256	/* distinct protocols, distinct bindings */
#define QM_OTHER "other"

/* The three outcomes of a delivery attempt, per recipient. */
struct qm_counts {
	uint64_t delivered;	/* D lines */
	uint64_t transient;	/* T lines: deferred, tried again later */
	uint64_t permanent;	/* P lines: failed (5xx, expired, failed by the operator) */
};

/* One candidate of the domain sketch. */
struct qm_cand {
	char *domain;
	uint64_t n;		/* estimated outcomes (an undercount by at most the decrements) */
};

struct queue_metrics {
	struct strmap *protocols;	/* protocol -> uint64_t * */
	uint64_t protocol_other;
	struct strmap *bindings;	/* binding -> struct qm_counts * */
	struct qm_counts binding_other;
	struct strmap *domains;		/* assigned domain -> struct qm_counts * (until restart) */
	struct qm_counts domain_other;
	struct strmap *cand_index;	/* domain -> (void *)(index + 1) in cand */
	struct qm_cand *cand;
	size_t ncand, candcap;		/* candcap = 8 * limit + 16 (0 when limit is 0) */
	size_t limit;			/* Metrics_Domain_Limit */
	uint64_t seen;			/* outcomes the sketch saw */
	uint64_t bounces;		/* bounce messages generated */
};

/* queue_metrics_init - empty counters, with no domain series until a limit is set. */
void queue_metrics_init(struct queue_metrics *m);
/*
 * queue_metrics_set_limit - Metrics_Domain_Limit (each configuration
 * generation). Lowering it takes no series away; it stops new ones.
 */
void queue_metrics_set_limit(struct queue_metrics *m, size_t limit);
void queue_metrics_free(struct queue_metrics *m);
/* queue_metrics_received - one message received with this protocol (NULL: "unknown"). */
void queue_metrics_received(struct queue_metrics *m, const char *protocol);
/* queue_metrics_outcome - one recipient's outcome 'D', 'T' or 'P' in binding ("" = default) and domain. */
void queue_metrics_outcome(struct queue_metrics *m, const char *binding, const char *domain,
			   char what);
/*
 * queue_metrics_assign - give their own series to the domains of the
 * sketch's top limit with their share, while fewer than limit have one
 * (see above).
 * Returns how many were given one now.
 */
size_t queue_metrics_assign(struct queue_metrics *m);
/* queue_metrics_protocols - fn per protocol series, "other" last when it has counted. */
void queue_metrics_protocols(const struct queue_metrics *m,
			     void (*fn)(void *ctx, const char *protocol, uint64_t n), void *ctx);
/* queue_metrics_bindings - fn per binding series ("default" for ""), "other" last when used. */
void queue_metrics_bindings(const struct queue_metrics *m,
			    void (*fn)(void *ctx, const char *binding, const struct qm_counts *c),
			    void *ctx);
/* queue_metrics_domains - fn per assigned domain, then always "other". */
void queue_metrics_domains(const struct queue_metrics *m,
			   void (*fn)(void *ctx, const char *domain, const struct qm_counts *c),
			   void *ctx);

#endif
