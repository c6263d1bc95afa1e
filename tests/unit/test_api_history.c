/*
 * test_api_history.c - tests of src/api/api_history.c and the `bounces` / `rates` commands
 *
 * The rings: points and bounces kept in order across several wrap-arounds,
 * the "last N" views at every size; bounded copies cut on a UTF-8
 * boundary and always terminated. The log subscriber, called through a
 * generation's log hook as the queue would call it: T and B are counted,
 * P is kept, X and A are not taken; `bounces recent` lists the kept
 * ones newest first, with long fields cut, as valid JSON; `rates`
 * without a sampler answers "not available"; bad counts are usage errors.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include <impetus/hooks.h>

#include "api/api.h"
#include "api/api_console.h"
#include "api/api_history.h"
#include "check.h"

static struct history_rates rr;
static struct history_bounces bb;

static void test_copy(void)
{
	char buf[8];

	CHECK(!history_copy(buf, sizeof(buf), "abc"));
	CHECK_STREQ(buf, "abc");
	CHECK(!history_copy(buf, sizeof(buf), "1234567"));	/* exactly fits */
	CHECK_STREQ(buf, "1234567");
	CHECK(history_copy(buf, sizeof(buf), "12345678"));
	CHECK_STREQ(buf, "1234567");
	CHECK(!history_copy(buf, sizeof(buf), NULL));
	CHECK_STREQ(buf, "");
	/* "12345" then "é" (C3 A9) then "x": a cut at 7 would split nothing; at 6 it would. */
	CHECK(history_copy(buf, 7, "12345\xC3\xA9x"));
	CHECK_STREQ(buf, "12345");
	/* A 4-byte character straddling the end goes whole. */
	CHECK(history_copy(buf, sizeof(buf), "abcde\xF0\x9F\x98\x80"));
	CHECK_STREQ(buf, "abcde");
	CHECK(history_copy(buf, 1, "x"));
	CHECK_STREQ(buf, "");
}

static void test_rates_ring(void)
{
	struct history_point p;

	memset(&rr, 0, sizeof(rr));
	CHECK_INTEQ(rr.n, 0);
	/* Fill two and a half times: the last HISTORY_RATE_POINTS remain, in order. */
	size_t total = HISTORY_RATE_POINTS * 2 + HISTORY_RATE_POINTS / 2;
	for (size_t i = 1; i <= total; i++) {
		memset(&p, 0, sizeof(p));
		p.t = (int64_t)i;
		p.received = i * 10;
		history_rates_push(&rr, &p);
		CHECK_INTEQ(rr.n, i < HISTORY_RATE_POINTS ? i : HISTORY_RATE_POINTS);
		/* The newest is always the last of any view. */
		CHECK_INTEQ(history_rates_at(&rr, 1, 0)->t, (int64_t)i);
		size_t k = rr.n < 3 ? rr.n : 3;
		CHECK_INTEQ(history_rates_at(&rr, k, 0)->t, (int64_t)(i - k + 1));
	}
	for (size_t i = 0; i < HISTORY_RATE_POINTS; i++) {
		const struct history_point *q = history_rates_at(&rr, HISTORY_RATE_POINTS, i);
		CHECK_INTEQ(q->t, (int64_t)(total - HISTORY_RATE_POINTS + 1 + i));
		CHECK_INTEQ(q->received, q->t * 10);
	}
	/* The last 60, oldest first. */
	for (size_t i = 0; i < 60; i++)
		CHECK_INTEQ(history_rates_at(&rr, 60, i)->t, (int64_t)(total - 59 + i));
}

static void test_bounces_ring(void)
{
	memset(&bb, 0, sizeof(bb));
	for (int i = 1; i <= HISTORY_BOUNCES * 3 + 7; i++) {
		struct history_bounce *b = history_bounces_next(&bb);
		CHECK_INTEQ(b->code, 0);	/* a reused slot comes back cleared */
		b->code = i;
		b->time = i;
		CHECK_INTEQ(bb.total, i);
		CHECK_INTEQ(bb.n, i < HISTORY_BOUNCES ? i : HISTORY_BOUNCES);
		CHECK_INTEQ(history_bounces_at(&bb, 1, 0)->code, i);
	}
	int newest = HISTORY_BOUNCES * 3 + 7;
	for (int i = 0; i < HISTORY_BOUNCES; i++)
		CHECK_INTEQ(history_bounces_at(&bb, HISTORY_BOUNCES, (size_t)i)->code, newest - i);
	CHECK_INTEQ(history_bounces_at(&bb, 5, 4)->code, newest - 4);
}

/* emit - an event through g's log hook, as log_event_emit does. */
static void emit(struct api_gen *g, const struct imp_log_event *ev)
{
	const struct api_hook *h = &g->hooks[API_HOOK_LOG];
	uint32_t bit = api_log_type_bit(ev->type);

	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].log_types & bit)
			((imp_log_fn)h->v[i].fn)(h->v[i].closure, ev);
}

/* run - a command's answer; returns api_console_run's code. */
static int run(struct api_gen *g, struct str *out, bool json, int argc, const char **argv)
{
	str_clear(out);
	return api_console_run(g, argc, argv, json, out);
}

static void test_commands(void)
{
	struct api_gen *g = api_gen_new();
	struct str out = STR_INIT;
	char longrcpt[1000], longreply[2000];

	api_history_register(g);
	api_gen_freeze(g);

	/* Nothing yet: an empty list. */
	const char *recent[] = { "bounces", "recent" };
	CHECK_INTEQ(run(g, &out, true, 2, recent), 0);
	json_t *doc = json_loads(str_cstr(&out), 0, NULL);
	CHECK(doc != NULL && json_array_size(json_object_get(doc, "bounces")) == 0);
	json_decref(doc);

	memset(longrcpt, 'r', sizeof(longrcpt) - 1);
	longrcpt[sizeof(longrcpt) - 1] = '\0';
	/* A reply of two-byte characters: the cut must keep it valid UTF-8. */
	for (size_t i = 0; i + 2 < sizeof(longreply); i += 2)
		memcpy(longreply + i, "\xC3\xA9", 2);
	longreply[sizeof(longreply) - 2] = '\0';
	for (int i = 0; i < 30; i++) {
		char mid[32], rcpt[64];
		snprintf(mid, sizeof(mid), "00000000000000%02d", i);
		snprintf(rcpt, sizeof(rcpt), "user%d@example.com", i);
		struct imp_log_event ev = {
			.type = IMP_LOG_PERMANENT, .time = 1000 + i, .message_id = mid,
			.conn_id = "", .sender = "s@example.org",
			.recipient = i == 29 ? longrcpt : rcpt, .domain = "example.com",
			.binding = i % 2 ? "b1" : "", .binding_group = "", .peer = "127.0.0.1",
			.peer_host = "", .protocol = "", .phase = "", .code = 550,
			.reply = i == 29 ? longreply : "5.1.1 no such user", .bounce_class = 10,
			.attempts = 1, .line = "",
		};
		emit(g, &ev);
		ev.type = IMP_LOG_BOUNCE;	/* its bouncelog line: counted, not kept twice */
		emit(g, &ev);
		ev.type = IMP_LOG_TRANSIENT;
		emit(g, &ev);
		ev.type = IMP_LOG_REJECTION;	/* not subscribed: an I/O loop's event */
		emit(g, &ev);
	}
	const char *five[] = { "bounces", "recent", "5" };
	CHECK_INTEQ(run(g, &out, true, 3, five), 0);
	doc = json_loads(str_cstr(&out), 0, NULL);
	CHECK(doc != NULL);
	json_t *arr = json_object_get(doc, "bounces");
	CHECK_INTEQ(json_array_size(arr), 5);
	CHECK_INTEQ(json_integer_value(json_object_get(doc, "total")), 30);
	/* Newest first; the long fields cut, still valid JSON (json_loads checked the UTF-8). */
	json_t *b0 = json_array_get(arr, 0), *b1 = json_array_get(arr, 1);
	CHECK_INTEQ(json_integer_value(json_object_get(b0, "time")), 1029);
	CHECK_INTEQ(strlen(json_string_value(json_object_get(b0, "recipient"))),
		    HISTORY_ADDR_MAX - 1);
	CHECK(strlen(json_string_value(json_object_get(b0, "reply"))) <= HISTORY_REPLY_MAX - 1);
	CHECK(strlen(json_string_value(json_object_get(b0, "reply"))) >= HISTORY_REPLY_MAX - 2);
	CHECK_STREQ(json_string_value(json_object_get(b1, "recipient")), "user28@example.com");
	CHECK_STREQ(json_string_value(json_object_get(b1, "reply")), "5.1.1 no such user");
	CHECK_STREQ(json_string_value(json_object_get(b1, "message_id")), "0000000000000028");
	CHECK_STREQ(json_string_value(json_object_get(b1, "binding")), "default");
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(arr, 2), "binding")), "b1");
	CHECK_INTEQ(json_integer_value(json_object_get(b1, "code")), 550);
	CHECK_INTEQ(json_integer_value(json_object_get(b1, "bounce_class")), 10);
	json_decref(doc);

	/* Default 20; text form lists them too. */
	CHECK_INTEQ(run(g, &out, true, 2, recent), 0);
	doc = json_loads(str_cstr(&out), 0, NULL);
	CHECK_INTEQ(json_array_size(json_object_get(doc, "bounces")), HISTORY_BOUNCES_DEFAULT);
	json_decref(doc);
	CHECK_INTEQ(run(g, &out, false, 3, five), 0);
	CHECK(strstr(str_cstr(&out), "user28@example.com") != NULL);
	CHECK(strstr(str_cstr(&out), "user24@example.com") == NULL);

	/* Bad input. */
	const char *bad1[] = { "bounces" };
	const char *bad2[] = { "bounces", "recent", "0" };
	const char *bad3[] = { "bounces", "recent", "101" };
	const char *bad4[] = { "bounces", "recent", "5x" };
	const char *bad5[] = { "bounces", "old" };
	const char *bad6[] = { "rates", "-1" };
	CHECK_INTEQ(run(g, &out, false, 1, bad1), -1);
	CHECK(strstr(str_cstr(&out), "usage: bounces recent") != NULL);
	CHECK_INTEQ(run(g, &out, false, 3, bad2), -1);
	CHECK_INTEQ(run(g, &out, false, 3, bad3), -1);
	CHECK_INTEQ(run(g, &out, false, 3, bad4), -1);
	CHECK_INTEQ(run(g, &out, false, 2, bad5), -1);
	CHECK_INTEQ(run(g, &out, false, 2, bad6), -1);
	CHECK(strstr(str_cstr(&out), "usage: rates") != NULL);
	/* No sampler without a daemon: "not available" (HTTP 503). */
	const char *rates[] = { "rates" };
	CHECK_INTEQ(run(g, &out, true, 1, rates), -1);
	CHECK(strstr(str_cstr(&out), "not available") != NULL);

	str_free(&out);
	api_gen_release(g);
}

int main(void)
{
	test_copy();
	test_rates_ring();
	test_bounces_ring();
	test_commands();
	return check_done();
}
