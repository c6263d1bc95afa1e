/*
 * events.c - delivery events as JSON lines: formatting, the pending
 * buffer, the events thread, the event log, admin actions
 *
 * The schema is docs/events.md's; events_format is its only writer. The
 * flow (see events.h for the threads):
 *
 *   log hook / events_admin (scheduler, I/O loops)
 *     -> events_format into a local buffer
 *     -> push(): appended to E->pending under E->lock; the append that
 *        finds the buffer empty posts events.wake to the events thread
 *   events thread (events_on_wake)
 *     -> takes the whole buffer, writes the lines to the event log,
 *        appends each to the backlog of every webhook that wants its
 *        type (whq.c), one fdatasync per backlog, then lets the webhook
 *        senders (webhook.c) post what is due.
 *
 * Ownership. E->lock guards pending, dropped, limit and the statistics
 * snapshot the metrics read; `active` is atomic (written by the
 * scheduler, read by every logging thread). Everything else of struct
 * events (the log file, the webhooks) belongs to the events thread; after
 * the thread has stopped, events_free touches it as that thread
 * (loop_call_as).
 *
 * Failures. Past Event_Buffer_Limit pending bytes new events are dropped
 * and counted; the count goes to the paniclog once a second. A log write
 * error loses those lines and is reported the same way. A webhook's
 * problems are its own (webhook.c). Nothing here slows the mail.
 */
#include "events/events.h"
#include "events/events_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <impetus/console.h>
#include <impetus/message.h>

#include "api/api.h"
#include "config/config.h"
#include "core/id.h"
#include "core/mem.h"
#include "log/log.h"
#include "message/dsn.h"
#include "msgs/msgs.h"

static _Atomic(struct events *) the_events;

/* ------------------------------------------------------------------ */
/* JSON                                                                */

void events_json_string(struct str *out, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s), i = 0;

	str_appendc(out, '"');
	while (i < n) {
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' && s[run] != '\\')
			run++;
		if (run > i) {
			str_append(out, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			str_appendc(out, '\\');
			str_appendc(out, (char)c);
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			char esc[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
			str_append(out, esc, 6);
			i++;
		} else {
			size_t len = utf8_seq_len(s + i, n - i);
			if (len) {
				str_append(out, s + i, len);
				i += len;
			} else {
				/* Not UTF-8 (a remote server's raw bytes): U+FFFD keeps every parser happy. */
				str_appends(out, "\\ufffd");
				i++;
			}
		}
	}
	str_appendc(out, '"');
}

/* put_str - ,"name":"value", or null when value is NULL or "". */
static void put_str(struct str *out, const char *name, const char *v)
{
	str_appendf(out, ",\"%s\":", name);
	if (v && *v)
		events_json_string(out, v);
	else
		str_appends(out, "null");
}

/*
 * put_json - ,"name":<text> when text is JSON of the wanted kind (an
 * object for metadata, an array for tags), written again compactly so the
 * line stays one line; otherwise the empty value (and the raw text under
 * name_raw, so nothing is silently lost).
 */
static void put_json(struct str *out, const char *name, const char *text, bool object)
{
	json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	char *dump = NULL;

	if (j && (object ? json_is_object(j) : json_is_array(j)))
		dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	str_appendf(out, ",\"%s\":%s", name, dump ? dump : object ? "{}" : "[]");
	if (text && dump == NULL) {
		str_appendf(out, ",\"%s_raw\":", name);
		events_json_string(out, text);
	}
	free(dump);
	json_decref(j);
}

/* type_name - the schema's type for a pending-buffer letter. */
static const char *type_name(char t)
{
	switch (t) {
	case EV_RECEPTION: return "Reception";
	case EV_DELIVERY: return "Delivery";
	case EV_TRANSIENT: return "TransientFailure";
	case EV_BOUNCE: return "Bounce";
	case EV_EXPIRATION: return "Expiration";
	case EV_REJECTION: return "Rejection";
	case EV_ADMIN: return "AdminAction";
	default: return NULL;
	}
}

unsigned events_type_bit(char t)
{
	static const char order[] = { EV_RECEPTION, EV_DELIVERY, EV_TRANSIENT, EV_BOUNCE,
				      EV_EXPIRATION, EV_REJECTION, EV_ADMIN };
	for (unsigned i = 0; i < sizeof(order); i++)
		if (order[i] == t)
			return 1u << i;
	return 0;
}

unsigned events_type_mask(const char *name)
{
	if (strcmp(name, "all") == 0)
		return EV_MASK_ALL;
	for (const char *t = "RDTPEXM"; *t; t++)
		if (strcmp(type_name(*t), name) == 0)
			return events_type_bit(*t);
	return 0;
}

/* put_head - {"type":..,"event_id":..,"timestamp":.. */
static void put_head(struct str *out, char t, int64_t when)
{
	char id[ID_BUF_SIZE];

	str_appendf(out, "{\"type\":\"%s\",\"event_id\":\"%s\",\"timestamp\":%" PRId64, type_name(t),
		    id_format(id_next(), id), when);
}

char events_format(struct str *out, const struct imp_log_event *ev)
{
	char t;

	switch (ev->type) {
	case IMP_LOG_RECEPTION: t = EV_RECEPTION; break;
	case IMP_LOG_DELIVERY: t = EV_DELIVERY; break;
	case IMP_LOG_TRANSIENT: t = EV_TRANSIENT; break;
	case IMP_LOG_PERMANENT:
		t = ev->flags & IMP_LOG_F_EXPIRED ? EV_EXPIRATION : EV_BOUNCE;
		break;
	case IMP_LOG_REJECTION: t = EV_REJECTION; break;
	default: return 0;	/* A: no line; B: the P event again */
	}
	const struct imp_message *m = ev->message;
	const char *cname = ev->bounce_class > 0 ? imp_bounce_class_name(ev->bounce_class) : NULL;
	char status[DSN_STATUS_SIZE];
	const char *enh = NULL;

	/* The enhanced code of the reply, or the one its class implies (RFC 3463). */
	if (t != EV_RECEPTION && (ev->code > 0 || (ev->reply && *ev->reply)))
		enh = dsn_status_from_reply(ev->code, ev->reply ? ev->reply : "",
					    t == EV_BOUNCE || t == EV_EXPIRATION || ev->code >= 500,
					    status);
	put_head(out, t, ev->time);
	put_str(out, "id", ev->message_id);
	put_str(out, "sender", ev->sender);
	put_str(out, "recipient", ev->recipient);
	put_str(out, "queue", ev->domain);
	put_str(out, "site", ev->peer_host);
	put_str(out, "peer_address", ev->peer);
	str_appendf(out, ",\"size\":%" PRIu64, ev->size);
	if (m)
		str_appendf(out, ",\"created\":%" PRId64, imp_message_received(m));
	else
		str_appends(out, ",\"created\":null");
	str_appendf(out, ",\"num_attempts\":%" PRIu32, t == EV_RECEPTION ? 0 : ev->attempts);
	if (t == EV_RECEPTION) {
		str_appends(out, ",\"response\":null");
	} else {
		str_appendf(out, ",\"response\":{\"code\":%d", ev->code);
		put_str(out, "enhanced_code", enh);
		str_appends(out, ",\"content\":");
		events_json_string(out, ev->reply);
		str_appendc(out, '}');
	}
	put_str(out, "bounce_classification", cname);
	str_appendf(out, ",\"bounce_class\":%d", ev->bounce_class);
	put_str(out, "binding_group", ev->binding_group);
	put_str(out, "binding", ev->binding);
	put_str(out, "protocol", m ? imp_message_protocol(m) : ev->protocol);
	put_str(out, "conn_id", ev->conn_id);
	put_str(out, "phase", ev->phase);
	const char *tid = m ? imp_message_vctx_get(m, EVENTS_KEY_TRANSMISSION) : NULL;
	if (tid && *tid && strspn(tid, "0123456789") == strlen(tid) && strlen(tid) <= 19)
		str_appendf(out, ",\"transmission_id\":%s", tid);
	else
		put_str(out, "transmission_id", tid);
	put_str(out, "campaign_id", m ? imp_message_vctx_get(m, EVENTS_KEY_CAMPAIGN) : NULL);
	put_json(out, "metadata", m ? imp_message_vctx_get(m, EVENTS_KEY_METADATA) : NULL, true);
	put_json(out, "tags", m ? imp_message_vctx_get(m, EVENTS_KEY_TAGS) : NULL, false);
	str_appendc(out, '}');
	return t;
}

/* ------------------------------------------------------------------ */
/* the pending buffer                                                  */

/* push - one formatted event into the pending buffer (any thread); never blocks on I/O. */
static void push(struct events *E, char t, const char *json, size_t len)
{
	bool wake = false;

	pthread_mutex_lock(&E->lock);
	if (E->pending.len + len + 2 > E->limit) {
		E->dropped++;
	} else {
		wake = E->pending.len == 0;
		str_appendc(&E->pending, t);
		str_append(&E->pending, json, len);
		str_appendc(&E->pending, '\n');
	}
	pthread_mutex_unlock(&E->lock);
	if (wake)
		msgs_post(E->loop, MSGS_EVENTS_WAKE, E);
}

/* on_log - the log hook (scheduler for R D T P B, an I/O loop or the scheduler for X). */
static void on_log(void *closure, const struct imp_log_event *ev)
{
	struct events *E = atomic_load_explicit(&the_events, memory_order_acquire);
	struct str line = STR_INIT;

	(void)closure;
	if (E == NULL || !atomic_load_explicit(&E->active, memory_order_relaxed))
		return;
	char t = events_format(&line, ev);
	if (t)
		push(E, t, line.s, line.len);
	str_free(&line);
}

bool events_admin_changes(int argc, const char *const *argv)
{
	static const char *const cmds[] = { "suspend", "resume", "flush", "fail", "reroute",
					    "rebind", "shutdown", "reopen" };

	if (argc < 1)
		return false;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i]) == 0)
			return true;
	if (strcmp(argv[0], "message") == 0)
		return argc > 1 && (strcmp(argv[1], "retry") == 0 || strcmp(argv[1], "fail") == 0);
	if (strcmp(argv[0], "config") == 0)
		return argc > 1 && strcmp(argv[1], "reload") == 0;
	if (strcmp(argv[0], "trace") == 0)
		return argc > 2;
	return false;
}

void events_admin(const char *transport, const char *key, int argc, const char *const *argv,
		  int rc)
{
	struct events *E = atomic_load_explicit(&the_events, memory_order_acquire);
	const char *result = rc == 0 ? "ok" : rc > 0 ? "started" : "failed";
	struct str words = STR_INIT, ev = STR_INIT;

	/* The audit line: printable ASCII only, every word as it was given. */
	for (int i = 0; i < argc; i++) {
		if (i)
			str_appendc(&words, ' ');
		for (const unsigned char *p = (const unsigned char *)argv[i]; *p; p++) {
			if (*p < 0x20 || *p >= 0x7F || *p == '"' || *p == '\\')
				str_appendf(&words, "\\x%02X", *p);
			else
				str_appendc(&words, (char)*p);
		}
	}
	log_panic("admin transport=%s key=%s command=\"%s\" result=%s", transport,
		  key && *key ? key : "-", str_cstr(&words), result);
	if (E && atomic_load_explicit(&E->active, memory_order_relaxed) && argc > 0) {
		put_head(&ev, EV_ADMIN, (int64_t)time(NULL));
		put_str(&ev, "command", argv[0]);
		str_appends(&ev, ",\"arguments\":[");
		for (int i = 1; i < argc; i++) {
			if (i > 1)
				str_appendc(&ev, ',');
			events_json_string(&ev, argv[i]);
		}
		str_appendc(&ev, ']');
		put_str(&ev, "transport", transport);
		put_str(&ev, "api_key", key);
		put_str(&ev, "result", result);
		str_appendc(&ev, '}');
		push(E, EV_ADMIN, ev.s, ev.len);
	}
	str_free(&words);
	str_free(&ev);
}

/* ------------------------------------------------------------------ */
/* the events thread                                                   */

/* write_log - the lines to the event log (events thread); an error is reported by the tick. */
static void write_log(struct events *E, const char *p, size_t n)
{
	while (E->log_fd >= 0 && n > 0) {
		ssize_t w = write(E->log_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			E->log_errno = errno;
			E->log_lost += n;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* drain - everything pending to the event log and the backlogs (events thread). */
static void drain(struct events *E)
{
	pthread_mutex_lock(&E->lock);
	struct str chunk = E->pending;
	str_init(&E->pending);
	pthread_mutex_unlock(&E->lock);
	if (chunk.len == 0) {
		str_free(&chunk);
		return;
	}
	struct str lines = STR_INIT;
	for (size_t off = 0; off < chunk.len;) {
		char *nl = memchr(chunk.s + off, '\n', chunk.len - off);
		size_t end = nl ? (size_t)(nl - chunk.s) : chunk.len;
		char t = chunk.s[off];
		const char *json = chunk.s + off + 1;
		size_t len = end - off - 1;

		if (E->log_fd >= 0) {
			str_append(&lines, json, len);
			str_appendc(&lines, '\n');
		}
		webhooks_append(E, t, json, len);
		off = end + 1;
	}
	write_log(E, lines.s, lines.len);
	str_free(&lines);
	str_free(&chunk);
	webhooks_flush(E);
}

void events_on_wake(void *arg)
{
	drain(arg);
}

/* on_tick - once a second on the events thread: report drops and errors, retry due webhooks. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct events *E = arg;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&E->lock);
	uint64_t dropped = E->dropped;
	E->dropped = 0;
	pthread_mutex_unlock(&E->lock);
	if (dropped)
		log_panic("events dropped=%" PRIu64 ": more than Event_Buffer_Limit bytes waiting for "
			  "the events thread", dropped);
	if (E->log_errno) {
		log_panic("events cannot write Event_Log=%s: %s lost_bytes=%" PRIu64,
			  E->log_path ? E->log_path : "", strerror(E->log_errno), E->log_lost);
		E->log_errno = 0;
		E->log_lost = 0;
	}
	webhooks_tick(E);
}

/* log_path_of - Event_Log made absolute against Log_Directory (heap), or NULL when unset. */
static char *log_path_of(const struct conf *c)
{
	const char *p = conf_str(c, CONF_OPT_EVENT_LOG);
	struct str s = STR_INIT;

	if (p == NULL || *p == '\0')
		return NULL;
	if (p[0] != '/')
		str_appendf(&s, "%s/", conf_str(c, CONF_OPT_LOG_DIRECTORY));
	str_appends(&s, p);
	return str_steal(&s);
}

void events_on_conf(void *arg)
{
	struct events_conf *ec = arg;
	struct events *E = ec->E;
	struct conf *c = ec->conf;

	free(ec);
	/* The event log is reopened on every configuration: a reload follows a rotation. */
	if (E->log_fd >= 0)
		close(E->log_fd);
	E->log_fd = -1;
	free(E->log_path);
	E->log_path = log_path_of(c);
	if (E->log_path) {
		E->log_fd = open(E->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (E->log_fd < 0)
			log_panic("events cannot open Event_Log=%s: %s (no event log)", E->log_path,
				  strerror(errno));
	}
	webhooks_configure(E, c);
	conf_unref(c);
	/* Events waiting now go where the new configuration says. */
	drain(E);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

struct events *events_new(const char *spoolbase, struct str *err)
{
	struct events *E = xcalloc(1, sizeof(*E));

	pthread_mutex_init(&E->lock, NULL);
	str_init(&E->pending);
	E->limit = 16u << 20;
	E->log_fd = -1;
	str_init(&E->dir);
	str_appendf(&E->dir, "%s/webhooks", spoolbase);
	E->loop = loop_new("events", MSGS_EVENTS);
	E->tick = event_new(loop_base(E->loop), -1, EV_PERSIST, on_tick, E);
	struct timeval tv = { 1, 0 };
	event_add(E->tick, &tv);
	if (loop_start(E->loop) < 0) {
		str_appends(err, "cannot start the events thread");
		event_free(E->tick);
		loop_free(E->loop);
		str_free(&E->dir);
		pthread_mutex_destroy(&E->lock);
		free(E);
		return NULL;
	}
	atomic_store_explicit(&the_events, E, memory_order_release);
	return E;
}

void events_set_conf(struct events *E, struct conf *conf)
{
	struct events_conf *ec;
	const char *log = conf_str(conf, CONF_OPT_EVENT_LOG);

	if (E == NULL)
		return;
	pthread_mutex_lock(&E->lock);
	E->limit = (size_t)conf_int(conf, CONF_OPT_EVENT_BUFFER_LIMIT);
	pthread_mutex_unlock(&E->lock);
	atomic_store_explicit(&E->active, (log && *log) || conf_webhook_count(conf) > 0,
			      memory_order_relaxed);
	ec = xcalloc(1, sizeof(*ec));
	ec->E = E;
	ec->conf = conf_ref(conf);
	msgs_post(E->loop, MSGS_EVENTS_CONF, ec);
}

/* final - on the stopped events thread's behalf: write what is pending, close everything. */
static void final(void *arg)
{
	struct events *E = arg;

	E->stopping = true;	/* no new POST: what is pending goes to the backlogs only */
	drain(E);
	on_tick(-1, 0, E);
	webhooks_free_all(E);
	if (E->log_fd >= 0)
		close(E->log_fd);
	E->log_fd = -1;
	event_free(E->tick);
	E->tick = NULL;
}

void events_free(struct events *E)
{
	if (E == NULL)
		return;
	atomic_store_explicit(&the_events, NULL, memory_order_release);
	loop_stop(E->loop);
	loop_join(E->loop);
	loop_call_as(E->loop, final, E);
	loop_free(E->loop);
	free(E->log_path);
	free(E->stats);
	str_free(&E->pending);
	str_free(&E->dir);
	pthread_mutex_destroy(&E->lock);
	free(E);
}

/* ------------------------------------------------------------------ */
/* statistics: metrics and the console                                 */

void events_webhook_backlog_each(events_backlog_fn fn, void *arg)
{
	struct events *E = atomic_load_explicit(&the_events, memory_order_acquire);

	if (E == NULL)
		return;
	pthread_mutex_lock(&E->lock);
	for (size_t i = 0; i < E->nstats; i++)
		fn(arg, E->stats[i].name, E->stats[i].events, E->stats[i].bytes);
	pthread_mutex_unlock(&E->lock);
}

/* cmd_webhooks - `webhooks`: each webhook's backlog and state (scheduler). */
static int cmd_webhooks(struct imp_cli *cli, int argc, const char *const *argv, void *closure)
{
	struct events *E = atomic_load_explicit(&the_events, memory_order_acquire);
	bool json = imp_cli_json(cli);

	(void)closure;
	(void)argv;
	if (argc > 1)
		return imp_cli_error(cli, "usage: webhooks");
	if (json)
		imp_cli_printf(cli, "{\"webhooks\":[");
	else
		imp_cli_printf(cli, "%-20s %10s %12s %8s %-8s %s\n", "webhook", "events", "bytes",
			       "failures", "state", "last error");
	if (E) {
		pthread_mutex_lock(&E->lock);
		for (size_t i = 0; i < E->nstats; i++) {
			const struct wh_stat *s = &E->stats[i];
			if (json) {
				imp_cli_printf(cli, "%s{\"name\":", i ? "," : "");
				imp_cli_json_string(cli, s->name);
				imp_cli_printf(cli, ",\"backlog_events\":%" PRIu64 ",\"backlog_bytes\":%" PRIu64
					       ",\"failures\":%u,\"state\":\"%s\",\"dropped\":%" PRIu64
					       ",\"last_error\":", s->events, s->bytes, s->failures,
					       s->state, s->dropped);
				imp_cli_json_string(cli, s->last_error);
				imp_cli_printf(cli, "}");
			} else {
				imp_cli_printf(cli, "%-20s %10" PRIu64 " %12" PRIu64 " %8u %-8s %s\n",
					       s->name, s->events, s->bytes, s->failures, s->state,
					       s->last_error);
			}
		}
		pthread_mutex_unlock(&E->lock);
	}
	if (json)
		imp_cli_printf(cli, "]}");
	return 0;
}

void events_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	if (imp_hook_log(core, "RDTPX", on_log, NULL, IMP_ORDER_BUILTIN + 1) < 0 ||
	    imp_cli_register(core, "webhooks", "each webhook's backlog (events, bytes) and state",
			     cmd_webhooks, NULL) < 0)
		abort();
}
