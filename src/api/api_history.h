/*
 * api_history.h - the last hour of counts and the last bounces, for the status page
 *
 * Two fixed rings the daemon keeps on the scheduler thread (no
 * allocation once started, nothing on disk: a restart starts them
 * empty):
 *
 *   rates    one point per Rates_Step seconds (default 10), the last
 *            HISTORY_RATE_POINTS of them (an hour at the default step):
 *            the messages received, delivered, deferred (T), failed
 *            (P), bounced (B) and rejected during the step, and the
 *            queue sizes at its end. Counts, not rates per second.
 *   bounces  the last HISTORY_BOUNCES permanent failures, from the log
 *            hook's P events, their strings copied with bounded lengths.
 *
 * The console commands `rates [N]` and `bounces recent [N]`
 * (api_history_cmd.c) read them; the HTTP admin API serves the same
 * commands (GET /api/v1/rates, GET /api/v1/bounces/recent). The ring
 * functions below are plain data structure code, used by the unit test
 * without a daemon.
 *
 * Ownership: the scheduler thread, for the rings, the sampler timer and
 * the counts between two samples. Nothing here fails once started.
 */
#ifndef IMPETUS_API_API_HISTORY_H
#define IMPETUS_API_API_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct api_gen;
struct conf;
struct loop;

/* Points kept: an hour at the default Rates_Step of 10 seconds. */
#define HISTORY_RATE_POINTS 360
/* Permanent failures kept for `bounces recent`. */
#define HISTORY_BOUNCES 100
/* `bounces recent` without a count. */
#define HISTORY_BOUNCES_DEFAULT 20

/* Bounded copies (bytes, with the NUL): longer strings are cut on a UTF-8 boundary. */
#define HISTORY_ID_MAX 24
#define HISTORY_ADDR_MAX 320		/* 64-byte local part, @, 255-byte domain */
#define HISTORY_DOMAIN_MAX 256
#define HISTORY_NAME_MAX 64		/* binding, binding group */
#define HISTORY_PEER_MAX 64
#define HISTORY_REPLY_MAX 512

/* One step of the rates ring: counts during the step, queue sizes at its end. */
struct history_point {
	int64_t t;			/* unix time of the step's end */
	uint64_t received, delivered, transient, permanent, bounced, rejected;
	uint64_t active, delayed;	/* recipients due now / waiting, sampled at t */
};

struct history_rates {
	struct history_point v[HISTORY_RATE_POINTS];
	size_t next;			/* where the next point goes */
	size_t n;			/* points kept, at most HISTORY_RATE_POINTS */
};

/* One permanent failure, its strings copied. */
struct history_bounce {
	int64_t time;
	char type;			/* 'P' */
	char message_id[HISTORY_ID_MAX];
	char sender[HISTORY_ADDR_MAX];
	char recipient[HISTORY_ADDR_MAX];
	char domain[HISTORY_DOMAIN_MAX];
	char binding[HISTORY_NAME_MAX];
	char binding_group[HISTORY_NAME_MAX];
	char peer[HISTORY_PEER_MAX];
	int code;
	int bounce_class;
	uint32_t attempts;
	char reply[HISTORY_REPLY_MAX];
};

struct history_bounces {
	struct history_bounce v[HISTORY_BOUNCES];
	size_t next;
	size_t n;
	uint64_t total;			/* ever added (the ring keeps the last HISTORY_BOUNCES) */
};

/* history_copy - src into dst[cap] (cap >= 1), cut on a UTF-8 boundary; true when cut. */
bool history_copy(char *dst, size_t cap, const char *src);

/* history_rates_push - a point at the end (the oldest goes when full). */
void history_rates_push(struct history_rates *r, const struct history_point *p);
/* history_rates_at - point i of the last `last` points, oldest first (i < last <= n). */
const struct history_point *history_rates_at(const struct history_rates *r, size_t last, size_t i);

/* history_bounces_next - the slot for a new bounce (the oldest's when full), cleared. */
struct history_bounce *history_bounces_next(struct history_bounces *b);
/* history_bounces_at - bounce i of the last `last`, newest first (i < last <= n). */
const struct history_bounce *history_bounces_at(const struct history_bounces *b, size_t last,
						size_t i);

/*
 * api_history_register - `rates` and `bounces`, and the log subscriber
 * that counts T, P and B and keeps the P events (IMP_ORDER_BUILTIN + 1,
 * after the log writers), into a building generation.
 */
void api_history_register(struct api_gen *g);
/*
 * api_history_start - start sampling every Rates_Step of conf (read here,
 * at start-up) on the scheduler loop. Scheduler thread, after the queue
 * started.
 */
void api_history_start(struct loop *scheduler, const struct conf *conf);
/* api_history_stop - stop sampling (shutdown, before the scheduler's base goes). */
void api_history_stop(void);

#endif
