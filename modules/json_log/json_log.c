/*
 * json_log.c - the log events as JSON lines (module json_log, a singleton)
 *
 * Subscribes to the log hook for the configured types (default all of
 * RDTPBXA) and writes one JSON object per event, with every field of
 * struct imp_log_event, to `path`. docs/modules/json_log.md is the user's
 * page; the JSON string rules are in json_string() below.
 *
 * Never blocking the thread that logs. The hook runs on the scheduler
 * (R D T P B A) and on the I/O loops (X). It formats the line on the
 * calling thread, into memory of its own, and appends it to the pending
 * buffer under a mutex held for one memcpy. A periodic timer on the
 * scheduler (flush_interval) hands the pending bytes to one drain job on
 * the IO pool, which writes them with write(2) outside the lock and
 * loops until nothing is pending. One drain job at most runs at a time
 * (`writing`), so lines reach the file in the order they were appended.
 *
 * Ownership. struct jl_out is the only structure shared between threads:
 * every field is guarded by its mutex except fd, which only the drain job
 * (while `writing`) or fini (when not `writing`) use. It is reference
 * counted, the instance holding one reference and a running drain job
 * another, so a job that outlives the instance (a reload ends the old
 * generation while its last lines are being written) finishes and frees
 * it. struct jl_state (the timer, the options) is the scheduler's.
 *
 * Failures. A path that cannot be opened refuses init (start-up stops,
 * a reload keeps the old generation). A write error loses the bytes of
 * that write; the next flush tick reports it in the paniclog with the
 * errno and the count, once per streak of failures. When more than
 * buffer_limit bytes are pending (the disk stalls), new events are
 * dropped and counted, and the count is reported the same way. fini
 * writes what is still pending synchronously: by then the pools may be
 * gone (shutdown), and the bytes are small (at most one flush interval).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <impetus/impetus.h>

static const struct imp_option options[] = {
	{ "path", IMP_OPT_STRING, NULL, 0, 0, true,
	  "file the JSON lines are appended to (created 0640 if missing)" },
	{ "types", IMP_OPT_STRING, "RDTPBXA", 0, 0, false,
	  "event types to write: letters of RDTPBXA" },
	{ "flush_interval", IMP_OPT_INTERVAL, "1", 1, 3600, false,
	  "how often pending lines are handed to the IO pool" },
	{ "buffer_limit", IMP_OPT_SIZE, "16M", 65536, 1073741824, false,
	  "pending bytes beyond which new events are dropped (and counted)" },
	{ "invalid_utf8", IMP_OPT_STRING, "escape", 0, 0, false,
	  "bytes that are not UTF-8: escape (\\u00XX), surrogate (\\uDCXX) or replace (\\uFFFD)" },
};

enum jl_invalid { JL_INVALID_ESCAPE, JL_INVALID_SURROGATE, JL_INVALID_REPLACE };

/* A growing byte buffer (the module sees no core string type). */
struct jl_buf {
	char *p;
	size_t len, cap;
	bool heap;		/* p is malloc()ed (else the caller's stack space) */
};

/* The pending lines and the file: shared, see the file header. */
struct jl_out {
	pthread_mutex_t lock;
	struct jl_buf pending;		/* whole lines; lock */
	bool writing;			/* a drain job runs; lock */
	int refs;			/* lock */
	uint64_t dropped;		/* events over buffer_limit, not reported yet; lock */
	uint64_t lost_bytes;		/* bytes a failed write lost, not reported yet; lock */
	int write_errno;		/* the last write error, not reported yet; lock */
	size_t limit;			/* buffer_limit; constant */
	int fd;				/* see the file header */
};

/* The instance's own state: scheduler thread. */
struct jl_state {
	struct imp_instance *inst;
	struct jl_out *out;
	struct imp_timer *timer;
	enum jl_invalid invalid;
	bool pool_warned;		/* reported once that the IO pool is missing */
};

/* ------------------------------------------------------------------ */
/* buffers                                                             */

/* buf_reserve - room for n more bytes; false when memory is exhausted. */
static bool buf_reserve(struct jl_buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
	if (p == NULL)
		return false;
	if (!b->heap && b->len)
		memcpy(p, b->p, b->len);
	b->p = p;
	b->cap = cap;
	b->heap = true;
	return true;
}

/* buf_put - append n bytes (silently truncating the line on memory exhaustion). */
static void buf_put(struct jl_buf *b, const void *s, size_t n)
{
	if (buf_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void buf_puts(struct jl_buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void buf_free(struct jl_buf *b)
{
	if (b->heap)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->heap = false;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

/*
 * utf8_seq - the length of the valid UTF-8 sequence at s (at most n
 * bytes), or 0 when s does not start one. Valid means RFC 3629: no
 * overlong forms, no surrogates (U+D800..DFFF), nothing past U+10FFFF.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF;	/* the second byte's range */

	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;	/* no overlong */
		else if (c == 0xED)
			hi = 0x9F;	/* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;	/* no overlong */
		else if (c == 0xF4)
			hi = 0x8F;	/* not past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/*
 * json_string - s as a JSON string (RFC 8259), quotes included. The
 * quote and the backslash are escaped; every byte below 0x20, and 0x7F,
 * is written \u00XX, so a line never holds a raw control byte (CR and LF
 * included); valid UTF-8 is kept as it is. A byte that is not part of a
 * valid UTF-8 sequence is written, by invalid_utf8: \u00XX (the byte's
 * value as a code point: any JSON parser accepts it, but it reads as the
 * Latin-1 character), \uDCXX (a lone low surrogate: Python's
 * surrogateescape gives the byte back exactly; strict parsers may refuse
 * it) or \uFFFD (the replacement character: valid everywhere, the byte
 * is lost).
 */
static void json_string(struct jl_buf *b, const char *str, enum jl_invalid invalid)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s);
	size_t i = 0;

	buf_put(b, "\"", 1);
	while (i < n) {
		size_t run = i;

		/* A run of plain printable ASCII goes in with one copy. */
		while (run < n && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' &&
		       s[run] != '\\')
			run++;
		if (run > i) {
			buf_put(b, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = s[i];
		char esc[6];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_put(b, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_put(b, esc, 6);
			i++;
		} else {
			size_t len = utf8_seq(s + i, n - i);
			if (len > 0) {
				buf_put(b, s + i, len);
				i += len;
				continue;
			}
			if (invalid == JL_INVALID_REPLACE) {
				buf_puts(b, "\\ufffd");
			} else {
				memcpy(esc, invalid == JL_INVALID_SURROGATE ? "\\udc" : "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				buf_put(b, esc, 6);
			}
			i++;
		}
	}
	buf_put(b, "\"", 1);
}

/* field_str - ,"name":"value" */
static void field_str(struct jl_buf *b, const char *name, const char *v, enum jl_invalid inv)
{
	buf_puts(b, ",\"");
	buf_puts(b, name);
	buf_puts(b, "\":");
	json_string(b, v, inv);
}

/* field_num - ,"name":number */
static void field_num(struct jl_buf *b, const char *name, const char *fmt_value)
{
	buf_puts(b, ",\"");
	buf_puts(b, name);
	buf_puts(b, "\":");
	buf_puts(b, fmt_value);
}

/*
 * format_event - the event as one JSON object and a newline. Every field
 * of struct imp_log_event is there, in the struct's order, strings as ""
 * when the event has none, plus bounce_class_name (the registered name of
 * bounce_class, "" for none) so a reader need not know the codes.
 */
static void format_event(struct jl_buf *b, const struct imp_log_event *ev, enum jl_invalid inv)
{
	char num[32];
	char type[2] = { (char)ev->type, '\0' };
	const char *cname = ev->bounce_class > 0 ? imp_bounce_class_name(ev->bounce_class) : NULL;

	buf_puts(b, "{\"type\":");
	json_string(b, type, inv);
	snprintf(num, sizeof(num), "%" PRId64, ev->time);
	field_num(b, "time", num);
	field_str(b, "message_id", ev->message_id, inv);
	field_str(b, "conn_id", ev->conn_id, inv);
	field_str(b, "sender", ev->sender, inv);
	field_str(b, "recipient", ev->recipient, inv);
	snprintf(num, sizeof(num), "%zu", ev->nrecipients);
	field_num(b, "nrecipients", num);
	snprintf(num, sizeof(num), "%" PRIu64, ev->size);
	field_num(b, "size", num);
	field_str(b, "binding_group", ev->binding_group, inv);
	field_str(b, "binding", ev->binding, inv);
	field_str(b, "domain", ev->domain, inv);
	field_str(b, "peer", ev->peer, inv);
	field_str(b, "peer_host", ev->peer_host, inv);
	field_str(b, "protocol", ev->protocol, inv);
	field_str(b, "phase", ev->phase, inv);
	snprintf(num, sizeof(num), "%d", ev->code);
	field_num(b, "code", num);
	field_str(b, "reply", ev->reply, inv);
	snprintf(num, sizeof(num), "%d", ev->bounce_class);
	field_num(b, "bounce_class", num);
	field_str(b, "bounce_class_name", cname ? cname : "", inv);
	snprintf(num, sizeof(num), "%" PRIu32, ev->attempts);
	field_num(b, "attempts", num);
	field_str(b, "line", ev->line, inv);
	buf_puts(b, "}\n");
}

/* ------------------------------------------------------------------ */
/* the shared output                                                   */

/* out_unref - drop one reference (any thread); the last closes the file. */
static void out_unref(struct jl_out *o)
{
	pthread_mutex_lock(&o->lock);
	bool last = --o->refs == 0;
	pthread_mutex_unlock(&o->lock);
	if (!last)
		return;
	if (o->fd >= 0)
		close(o->fd);
	buf_free(&o->pending);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

/* write_all - write the bytes, retrying short writes; 0 or an errno. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* write_chunk - write one taken chunk and note a failure (the writer's thread). */
static void write_chunk(struct jl_out *o, struct jl_buf *chunk)
{
	int err = write_all(o->fd, chunk->p, chunk->len);

	if (err != 0) {
		pthread_mutex_lock(&o->lock);
		o->write_errno = err;
		o->lost_bytes += chunk->len;
		pthread_mutex_unlock(&o->lock);
	}
	buf_free(chunk);
}

/*
 * drain_job - on an IO pool thread: write pending bytes until none are
 * left, then clear `writing` in the same critical section that saw the
 * buffer empty, so a line appended meanwhile is either taken here or
 * left for the next tick, never stranded.
 */
static void drain_job(void *arg)
{
	struct jl_out *o = arg;

	for (;;) {
		pthread_mutex_lock(&o->lock);
		struct jl_buf chunk = o->pending;
		o->pending = (struct jl_buf){ 0 };
		if (chunk.len == 0)
			o->writing = false;
		pthread_mutex_unlock(&o->lock);
		if (chunk.len == 0) {
			buf_free(&chunk);
			break;
		}
		write_chunk(o, &chunk);
	}
	out_unref(o);
}

/* ------------------------------------------------------------------ */
/* the hook and the timer                                              */

/* on_event - the log hook: format here, append under the lock (any loop thread). */
static void on_event(void *closure, const struct imp_log_event *ev)
{
	struct jl_state *st = closure;
	struct jl_out *o = st->out;
	char stack[2048];
	struct jl_buf line = { stack, 0, sizeof(stack), false };

	format_event(&line, ev, st->invalid);
	pthread_mutex_lock(&o->lock);
	if (o->pending.len + line.len > o->limit || !buf_reserve(&o->pending, line.len)) {
		o->dropped++;
	} else {
		memcpy(o->pending.p + o->pending.len, line.p, line.len);
		o->pending.len += line.len;
	}
	pthread_mutex_unlock(&o->lock);
	buf_free(&line);
}

/* report - paniclog lines for drops and write errors since the last report (scheduler). */
static void report(struct jl_state *st)
{
	struct jl_out *o = st->out;

	pthread_mutex_lock(&o->lock);
	uint64_t dropped = o->dropped, lost = o->lost_bytes;
	int err = o->write_errno;
	o->dropped = 0;
	o->lost_bytes = 0;
	o->write_errno = 0;
	pthread_mutex_unlock(&o->lock);
	if (dropped)
		imp_log_panic(st->inst, "dropped=%" PRIu64 " events: more than buffer_limit bytes "
			      "pending for path=%s", dropped, imp_option_string(st->inst, "path"));
	if (err)
		imp_log_panic(st->inst, "write failed path=%s error=\"%s\" lost_bytes=%" PRIu64,
			      imp_option_string(st->inst, "path"), strerror(err), lost);
}

/* on_tick - the flush timer (scheduler): start a drain job when bytes wait and none runs. */
/*
 * start_drain - hand what is pending to one drain job on the IO pool (none
 * when one already runs: it takes the new lines too). Only when there is
 * no pool any more (impetusd stopping: fini of the last generation) are
 * the lines written here, on the calling loop.
 */
static void start_drain(struct jl_state *st)
{
	struct jl_out *o = st->out;

	pthread_mutex_lock(&o->lock);
	bool start = !o->writing && o->pending.len > 0;
	if (start) {
		o->writing = true;
		o->refs++;
	}
	pthread_mutex_unlock(&o->lock);
	if (!start)
		return;
	int rc = imp_pool_submit(IMP_POOL_IO, drain_job, NULL, o);
	if (rc < 0) {
		if (rc != -ESHUTDOWN && !st->pool_warned)
			imp_log_panic(st->inst, "no IO pool (error %d): writing on the calling loop", rc);
		st->pool_warned = true;
		drain_job(o);
	}
}

static void on_tick(void *arg)
{
	struct jl_state *st = arg;

	report(st);
	start_drain(st);
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

/* parse_invalid - the invalid_utf8 option; -1 for an unknown word. */
static int parse_invalid(const char *s)
{
	if (strcmp(s, "escape") == 0)
		return JL_INVALID_ESCAPE;
	if (strcmp(s, "surrogate") == 0)
		return JL_INVALID_SURROGATE;
	if (strcmp(s, "replace") == 0)
		return JL_INVALID_REPLACE;
	return -1;
}

/* check_types - the types option: non-empty, letters of RDTPBXA, none twice. */
static bool check_types(const char *types)
{
	if (types[0] == '\0')
		return false;
	for (const char *p = types; *p; p++)
		if (strchr("RDTPBXA", *p) == NULL || strchr(p + 1, *p) != NULL)
			return false;
	return true;
}

static void jl_free_state(struct jl_state *st)
{
	if (st->out)
		out_unref(st->out);
	free(st);
}

static int jl_init(struct imp_instance *inst, struct imp_error *err)
{
	const char *path = imp_option_string(inst, "path");
	const char *types = imp_option_string(inst, "types");
	int invalid = parse_invalid(imp_option_string(inst, "invalid_utf8"));

	if (!check_types(types)) {
		imp_error_set(err, "types = \"%s\": give some of the letters RDTPBXA, each once",
			      types);
		return -1;
	}
	if (invalid < 0) {
		imp_error_set(err, "invalid_utf8 = \"%s\": expected escape, surrogate or replace",
			      imp_option_string(inst, "invalid_utf8"));
		return -1;
	}
	struct jl_state *st = calloc(1, sizeof(*st));
	struct jl_out *o = calloc(1, sizeof(*o));
	if (st == NULL || o == NULL) {
		free(st);
		free(o);
		imp_error_set(err, "out of memory");
		return -1;
	}
	pthread_mutex_init(&o->lock, NULL);
	o->refs = 1;
	o->limit = (size_t)imp_option_int(inst, "buffer_limit");
	o->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	st->inst = inst;
	st->out = o;
	st->invalid = (enum jl_invalid)invalid;
	if (o->fd < 0) {
		imp_error_set(err, "cannot open %s: %s", path, strerror(errno));
		jl_free_state(st);
		return -1;
	}
	st->timer = imp_timer_add((uint64_t)imp_option_int(inst, "flush_interval") * 1000, true,
				  on_tick, st);
	if (st->timer == NULL) {
		imp_error_set(err, "cannot start the flush timer (init not on a loop thread)");
		jl_free_state(st);
		return -1;
	}
	if (imp_hook_log(inst, types, on_event, st, IMP_ORDER_DEFAULT) < 0) {
		imp_error_set(err, "cannot subscribe to the log hook (types \"%s\")", types);
		imp_timer_cancel(st->timer);
		jl_free_state(st);
		return -1;
	}
	imp_instance_set_data(inst, st);
	imp_log_debug(inst, 1, "writing types=%s to path=%s", types, path);
	return 0;
}

/*
 * jl_fini - the generation is over: no hook of it runs any more. Stop the
 * timer and drain what is pending the usual way, on the IO pool (a reload
 * never writes on the scheduler); at shutdown, when the pools are gone,
 * start_drain writes it here.
 */
static void jl_fini(struct imp_instance *inst)
{
	struct jl_state *st = imp_instance_data(inst);

	imp_timer_cancel(st->timer);
	start_drain(st);
	report(st);
	jl_free_state(st);
}

IMP_MODULE_DEFINE(.name = "json_log", .version = "1.0",
		  .description = "log events as JSON lines, written off the logging threads",
		  .flags = IMP_MODULE_SINGLETON,
		  .options = options, .noptions = sizeof(options) / sizeof(options[0]),
		  .init = jl_init, .fini = jl_fini);
