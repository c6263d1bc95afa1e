/*
 * test_events.c - tests of src/events/events.c (the JSON form of events)
 * and src/events/whq.c (a webhook's durable backlog)
 *
 * Formatting: every event type maps to its schema type (B and A to none),
 * the fields of docs/events.md are there with the values of the event,
 * the transmission's metadata and tags come back as JSON (and bad ones as
 * their raw text), strings with control bytes and broken UTF-8 stay valid
 * JSON; jansson parses every line. Backlog: records survive a reopen, the
 * cursor moves only with an ack, a torn tail is cut at open, a damaged
 * record is skipped, batches are bounded, and ack deletes whole segments.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "events/events.h"
#include "events/whq.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "message/vctx.h"

/* parse - the JSON object in s, or NULL (and a failed check). */
static json_t *parse(const struct str *s)
{
	json_error_t e;
	json_t *j = json_loadb(s->s ? s->s : "", s->len, 0, &e);

	if (j == NULL || !json_is_object(j)) {
		fprintf(stderr, "not a JSON object (%s): %.*s\n", e.text, (int)s->len, s->s);
		check_failures++;
	}
	if (s->len && memchr(s->s, '\n', s->len)) {
		fprintf(stderr, "a raw newline in the line\n");
		check_failures++;
	}
	return j;
}

static const char *jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static struct envelope *make_env(void)
{
	struct envelope *env = envelope_new();

	env->id = 0x1234;
	env->sender = strdup("s@example.org");
	env->protocol = strdup("esmtp");
	env->received = 1700000000;
	env->vctx = vctx_new();
	return env;
}

static void test_delivery_with_metadata(void)
{
	struct envelope *env = make_env();
	struct imp_message m;
	struct str out = STR_INIT;

	vctx_set(env->vctx, "impetus.http.transmission_id", "123456789");
	vctx_set(env->vctx, "impetus.http.campaign_id", "spring");
	vctx_set(env->vctx, "impetus.http.metadata", "{\"user\":\"u1\",\"n\":[1,2]}");
	vctx_set(env->vctx, "impetus.http.tags", "[\"a\",\"b\"]");
	message_view_init(&m, env, false);
	struct imp_log_event ev = {
		.type = IMP_LOG_DELIVERY, .time = 1700000100, .message_id = "0000000000001234",
		.conn_id = "00000000000000AA", .sender = "s@example.org",
		.recipient = "r@example.com", .nrecipients = 1, .size = 321, .binding_group = "",
		.binding = "b1", .domain = "example.com", .peer = "192.0.2.7",
		.peer_host = "mx.example.com", .protocol = "", .phase = "", .code = 250,
		.reply = "2.0.0 queued as X", .attempts = 1, .line = "x", .message = &m,
	};
	CHECK_INTEQ(events_format(&out, &ev), 'D');
	json_t *j = parse(&out);
	CHECK_STREQ(jstr(j, "type"), "Delivery");
	CHECK_STREQ(jstr(j, "id"), "0000000000001234");
	CHECK_STREQ(jstr(j, "sender"), "s@example.org");
	CHECK_STREQ(jstr(j, "recipient"), "r@example.com");
	CHECK_STREQ(jstr(j, "queue"), "example.com");
	CHECK_STREQ(jstr(j, "site"), "mx.example.com");
	CHECK_STREQ(jstr(j, "peer_address"), "192.0.2.7");
	CHECK_STREQ(jstr(j, "binding"), "b1");
	CHECK(json_is_null(json_object_get(j, "binding_group")));
	CHECK_INTEQ(jint(j, "size"), 321);
	CHECK_INTEQ(jint(j, "timestamp"), 1700000100);
	CHECK_INTEQ(jint(j, "created"), 1700000000);
	CHECK_INTEQ(jint(j, "num_attempts"), 1);
	CHECK_INTEQ(jint(j, "transmission_id"), 123456789);
	CHECK_STREQ(jstr(j, "campaign_id"), "spring");
	json_t *resp = json_object_get(j, "response");
	CHECK_INTEQ(jint(resp, "code"), 250);
	CHECK_STREQ(jstr(resp, "enhanced_code"), "2.0.0");
	CHECK_STREQ(jstr(resp, "content"), "2.0.0 queued as X");
	json_t *md = json_object_get(j, "metadata");
	CHECK(json_is_object(md));
	CHECK_STREQ(jstr(md, "user"), "u1");
	CHECK_INTEQ(json_array_size(json_object_get(md, "n")), 2);
	CHECK_INTEQ(json_array_size(json_object_get(j, "tags")), 2);
	CHECK(jstr(j, "event_id") && strlen(jstr(j, "event_id")) == 16);
	json_decref(j);

	/* Bad metadata: {} and the raw text, never a broken line. */
	vctx_set(env->vctx, "impetus.http.metadata", "{\"user\":");
	vctx_set(env->vctx, "impetus.http.tags", "{\"not\":\"an array\"}");
	str_clear(&out);
	events_format(&out, &ev);
	j = parse(&out);
	CHECK_INTEQ(json_object_size(json_object_get(j, "metadata")), 0);
	CHECK_STREQ(jstr(j, "metadata_raw"), "{\"user\":");
	CHECK_INTEQ(json_array_size(json_object_get(j, "tags")), 0);
	CHECK_STREQ(jstr(j, "tags_raw"), "{\"not\":\"an array\"}");
	json_decref(j);
	message_view_done(&m);
	envelope_free(env);
	str_free(&out);
}

static void test_types_and_strings(void)
{
	struct str out = STR_INIT;
	struct imp_log_event ev = {
		.type = IMP_LOG_PERMANENT, .time = 5, .message_id = "", .conn_id = "",
		.sender = "", .recipient = "x@y", .domain = "y", .peer = "", .peer_host = "",
		.binding_group = "", .binding = "", .protocol = "", .phase = "",
		.code = 550, .reply = "5.1.1 caf\xc3\xa9 \xff\xfe \x1b[31m \"q\" \\ end",
		.bounce_class = 10, .attempts = 2, .line = "",
	};

	CHECK_INTEQ(events_format(&out, &ev), 'P');
	json_t *j = parse(&out);
	CHECK_STREQ(jstr(j, "type"), "Bounce");
	CHECK(json_is_null(json_object_get(j, "id")));
	CHECK(json_is_null(json_object_get(j, "created")));
	json_t *resp = json_object_get(j, "response");
	CHECK_STREQ(jstr(resp, "enhanced_code"), "5.1.1");
	CHECK_STREQ(jstr(resp, "content"),
		    "5.1.1 caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \x1b[31m \"q\" \\ end");
	CHECK_INTEQ(jint(j, "bounce_class"), 10);
	json_decref(j);

	ev.flags = IMP_LOG_F_EXPIRED;
	str_clear(&out);
	CHECK_INTEQ(events_format(&out, &ev), 'E');
	j = parse(&out);
	CHECK_STREQ(jstr(j, "type"), "Expiration");
	json_decref(j);

	ev.type = IMP_LOG_BOUNCE;
	CHECK_INTEQ(events_format(&out, &ev), 0);
	ev.type = IMP_LOG_ATTEMPT;
	CHECK_INTEQ(events_format(&out, &ev), 0);
	ev.type = IMP_LOG_TRANSIENT;
	ev.code = 451;
	ev.reply = "try later";
	str_clear(&out);
	CHECK_INTEQ(events_format(&out, &ev), 'T');
	j = parse(&out);
	CHECK_STREQ(jstr(j, "type"), "TransientFailure");
	CHECK_STREQ(jstr(json_object_get(j, "response"), "enhanced_code"), "4.0.0");
	json_decref(j);
	ev.type = IMP_LOG_REJECTION;
	ev.phase = "rcptto";
	str_clear(&out);
	CHECK_INTEQ(events_format(&out, &ev), 'X');
	j = parse(&out);
	CHECK_STREQ(jstr(j, "type"), "Rejection");
	CHECK_STREQ(jstr(j, "phase"), "rcptto");
	json_decref(j);
	str_free(&out);
}

static void test_admin_changes(void)
{
	const char *a[] = { "suspend", "domain", "x" };
	const char *b[] = { "message", "details", "1" };
	const char *c[] = { "message", "retry", "1" };
	const char *d[] = { "config", "show", "X" };
	const char *e[] = { "config", "reload" };
	const char *f[] = { "summary" };

	CHECK(events_admin_changes(3, a));
	CHECK(!events_admin_changes(3, b));
	CHECK(events_admin_changes(3, c));
	CHECK(!events_admin_changes(3, d));
	CHECK(events_admin_changes(2, e));
	CHECK(!events_admin_changes(1, f));
	CHECK(!events_admin_changes(0, f));
}

/* seg_file - the path of segment seq in dir. */
static void seg_file(const char *dir, unsigned seq, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016x.seg", dir, seq);
}

static void test_whq(void)
{
	char dir[] = "/tmp/impetus-whq-XXXXXX";
	struct whq q;
	struct str err = STR_INIT, body = STR_INIT;
	size_t n;
	struct whq_pos end;
	uint64_t bytes;
	char path[512];

	CHECK(mkdtemp(dir) != NULL);
	CHECK_INTEQ(whq_open(&q, dir, &err), 0);
	CHECK_INTEQ(q.events, 0);
	for (int i = 0; i < 5; i++) {
		char rec[32];
		int len = snprintf(rec, sizeof(rec), "{\"n\":%d}", i);
		CHECK(whq_append(&q, rec, (size_t)len));
	}
	CHECK_INTEQ(whq_read(&q, 10, &body, &n, &end, &bytes, &err), 0);
	CHECK_INTEQ(n, 0);	/* not flushed: not readable */
	CHECK_INTEQ(whq_flush(&q, &err), 0);
	CHECK_INTEQ(q.events, 5);
	str_clear(&body);
	CHECK_INTEQ(whq_read(&q, 2, &body, &n, &end, &bytes, &err), 0);
	CHECK_INTEQ(n, 2);
	CHECK_STREQ(str_cstr(&body), "[{\"n\":0},{\"n\":1}]");
	CHECK_INTEQ(whq_ack(&q, end, n, bytes, &err), 0);
	CHECK_INTEQ(q.events, 3);
	whq_close(&q);

	/* Reopen: the cursor held; a torn record at the tail is cut. */
	seg_file(dir, 1, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, "\x10\x00\x00\x00\x01\x02", 6) == 6);
	close(fd);
	struct stat st;
	stat(path, &st);
	off_t torn = st.st_size;
	CHECK_INTEQ(whq_open(&q, dir, &err), 0);
	CHECK_INTEQ(q.events, 3);
	CHECK_INTEQ(q.truncated, 6);
	stat(path, &st);
	CHECK_INTEQ(st.st_size, torn - 6);
	CHECK(whq_append(&q, "{\"n\":5}", 7));
	CHECK_INTEQ(whq_flush(&q, &err), 0);
	str_clear(&body);
	CHECK_INTEQ(whq_read(&q, 100, &body, &n, &end, &bytes, &err), 0);
	CHECK_STREQ(str_cstr(&body), "[{\"n\":2},{\"n\":3},{\"n\":4},{\"n\":5}]");
	/* Not acknowledged: read again after a reopen (at-least-once). */
	whq_close(&q);
	CHECK_INTEQ(whq_open(&q, dir, &err), 0);
	CHECK_INTEQ(q.events, 4);

	/* A damaged record (a flipped byte) ends its segment for the reader. */
	fd = open(path, O_RDWR);
	unsigned char c;
	CHECK(pread(fd, &c, 1, st.st_size - 2) == 1);
	c ^= 0xFF;
	CHECK(pwrite(fd, &c, 1, st.st_size - 2) == 1);
	close(fd);
	whq_close(&q);
	CHECK_INTEQ(whq_open(&q, dir, &err), 0);
	CHECK_INTEQ(q.events, 2);	/* n:2, n:3; n:4 damaged and n:5 after it, cut as a torn tail */
	str_clear(&body);
	CHECK_INTEQ(whq_read(&q, 100, &body, &n, &end, &bytes, &err), 0);
	CHECK_STREQ(str_cstr(&body), "[{\"n\":2},{\"n\":3}]");
	CHECK_INTEQ(whq_ack(&q, end, n, bytes, &err), 0);
	CHECK_INTEQ(q.events, 0);
	CHECK(!whq_append(&q, "x", WHQ_RECORD_MAX + 1));

	/* Segment rotation and deletion by ack. */
	char *big = malloc(WHQ_RECORD_MAX);
	memset(big, 'a', WHQ_RECORD_MAX);
	for (int i = 0; i < 10; i++) {
		CHECK(whq_append(&q, big, WHQ_RECORD_MAX));
		CHECK_INTEQ(whq_flush(&q, &err), 0);
	}
	CHECK(q.tail_seq >= 2);
	size_t total = 0;
	while (q.events) {
		str_clear(&body);
		CHECK_INTEQ(whq_read(&q, 3, &body, &n, &end, &bytes, &err), 0);
		CHECK(n > 0 && n <= 3);
		if (n == 0)
			break;
		total += n;
		CHECK_INTEQ(whq_ack(&q, end, n, bytes, &err), 0);
	}
	CHECK_INTEQ(total, 10);
	seg_file(dir, 1, path, sizeof(path));
	CHECK(access(path, F_OK) != 0);		/* acknowledged segments are gone */
	free(big);
	whq_close(&q);

	/* whq_parse on its own: a valid prefix, never past the input. */
	unsigned char rec[64] = { 3, 0, 0, 0 };
	size_t cnt;
	CHECK_INTEQ(whq_parse(rec, 5, NULL, NULL, &cnt), 0);
	CHECK_INTEQ(cnt, 0);
	str_free(&body);
	str_free(&err);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	test_delivery_with_metadata();
	test_types_and_strings();
	test_admin_changes();
	test_whq();
	return check_done();
}
