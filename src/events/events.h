/*
 * events.h - delivery events as JSON: the event log and webhooks
 *
 * The events component turns the log events (impetus/hooks.h: R D T P X)
 * and the admin commands into JSON objects of one documented schema
 * (docs/events.md), appends them to the event log (Event_Log) and to the
 * durable backlog of every Webhook that wants them, and POSTs batches of
 * the backlog to the webhooks' targets.
 *
 * Threads. Formatting happens on the thread that logs (the scheduler, an
 * I/O loop for rejections) into a bounded buffer under a mutex held for
 * one memcpy; everything else (files, fsync, HTTP) happens on the events
 * thread, a loop of its own (role MSGS_EVENTS) that serves no mail. No
 * mail path ever waits for it: when it falls behind by more than
 * Event_Buffer_Limit bytes new events are dropped and counted.
 *
 * Life: events_new at start-up (after the logs are open), events_set_conf
 * with each configuration (start-up, reload), events_free after the mail
 * has stopped (it writes what is pending). Without events_new (tools,
 * unit tests) the hook does nothing.
 */
#ifndef IMPETUS_EVENTS_EVENTS_H
#define IMPETUS_EVENTS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <impetus/hooks.h>

#include "core/str.h"

struct api_gen;
struct conf;
struct events;

/* events_new - start the events thread; backlogs under <spoolbase>/webhooks. NULL + err. */
struct events *events_new(const char *spoolbase, struct str *err);
/* events_set_conf - apply conf's Event_Log and Webhook stanzas (scheduler; posted to the events thread). */
void events_set_conf(struct events *E, struct conf *conf);
/* events_free - stop the thread, write what is pending, close everything (NULL is a no-op). */
void events_free(struct events *E);

/* events_register - the log hook subscriber and the `webhooks` command, into a building generation. */
void events_register(struct api_gen *g);

/*
 * events_admin - an admin command that changes state ran (scheduler):
 * an AdminAction event and an "admin" paniclog line. transport is
 * "console" or "http", key the API key's name or NULL, rc the command's
 * result (0 done, 1 answered later, -1 failed).
 */
void events_admin(const char *transport, const char *key, int argc, const char *const *argv,
		  int rc);
/* events_admin_changes - whether argv is a command that changes state (and gets an AdminAction). */
bool events_admin_changes(int argc, const char *const *argv);

/* The backlog of each configured webhook: fn(arg, name, events, bytes). Any thread. */
typedef void (*events_backlog_fn)(void *arg, const char *webhook, uint64_t events, uint64_t bytes);
void events_webhook_backlog_each(events_backlog_fn fn, void *arg);

/*
 * events_format - ev as one JSON object (no newline) appended to out;
 * returns the event type letter of the pending buffer (docs/events.md
 * "Types"), or 0 for an event that has no JSON form (A, and B, which
 * repeats its P). Exposed for the unit test.
 */
char events_format(struct str *out, const struct imp_log_event *ev);

/* events_json_string - s as a JSON string (quotes included); invalid UTF-8 becomes U+FFFD. */
void events_json_string(struct str *out, const char *s);

#endif
