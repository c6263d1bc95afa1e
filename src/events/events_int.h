/*
 * events_int.h - what events.c and webhook.c share (see events.h)
 *
 * struct events: the lock guards pending, limit, dropped and the stats
 * snapshot; `active` is atomic; the rest belongs to the events thread.
 */
#ifndef IMPETUS_EVENTS_EVENTS_INT_H
#define IMPETUS_EVENTS_EVENTS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/str.h"

/* The type letters of the pending buffer (the first byte of each line). */
#define EV_RECEPTION 'R'
#define EV_DELIVERY 'D'
#define EV_TRANSIENT 'T'
#define EV_BOUNCE 'P'
#define EV_EXPIRATION 'E'
#define EV_REJECTION 'X'
#define EV_ADMIN 'M'
#define EV_MASK_ALL 0x7Fu

/* The message context keys of an HTTP transmission (docs/events.md). */
#define EVENTS_KEY_TRANSMISSION "impetus.http.transmission_id"
#define EVENTS_KEY_CAMPAIGN "impetus.http.campaign_id"
#define EVENTS_KEY_METADATA "impetus.http.metadata"
#define EVENTS_KEY_TAGS "impetus.http.tags"

struct webhook;
struct evhttp_connection;
struct conf;

/* One webhook as the metrics and the console see it (a copy, under the lock). */
struct wh_stat {
	char name[72];
	uint64_t events, bytes, dropped;
	unsigned failures;
	char state[16];			/* "idle", "waiting", "posting", "backoff", "broken" */
	char last_error[160];
};

struct events {
	struct loop *loop;		/* the events thread */
	struct event *tick;
	struct str dir;			/* <Spoolbase>/webhooks */
	atomic_bool active;		/* something consumes events (scheduler writes) */

	pthread_mutex_t lock;
	struct str pending;		/* lock: lines "<letter><json>\n" */
	size_t limit;			/* lock: Event_Buffer_Limit */
	uint64_t dropped;		/* lock: events refused since the last report */
	struct wh_stat *stats;		/* lock: snapshot for events_webhook_backlog_each */
	size_t nstats;

	/* Events thread: */
	bool stopping;			/* events_free: write, do not post */
	int log_fd;
	char *log_path;
	int log_errno;
	uint64_t log_lost;
	struct webhook **wh;
	size_t nwh;
	struct evhttp_connection **dead;	/* finished connections, freed by the tick */
	size_t ndead;
};

struct events_conf {
	struct events *E;
	struct conf *conf;
};

/* events_type_bit - the mask bit of a type letter (0 for none). */
unsigned events_type_bit(char t);
/* events_type_mask - the mask of an Events word ("Delivery", "all"); 0 for an unknown one. */
unsigned events_type_mask(const char *name);

/* webhook.c, events thread: */
void webhooks_append(struct events *E, char t, const char *json, size_t len);
void webhooks_flush(struct events *E);
void webhooks_tick(struct events *E);
void webhooks_configure(struct events *E, const struct conf *c);
void webhooks_free_all(struct events *E);

#endif
