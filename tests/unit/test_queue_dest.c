/*
 * test_queue_dest.c - a destination queue's cached settings
 *
 * A queue reads its settings (scoped lookups, /regex/ Domain stanzas
 * included) once per configuration generation: many events read them
 * once; a reload (queue_set_conf) makes the next event read them again,
 * with the new values. The manager is not started: no loop, no spool.
 */
#include <stdlib.h>

#include "check.h"
#include "config/config.h"
#include "core/str.h"
#include "queue/queue.h"
#include "queue/queue_int.h"

static struct conf *load(const char *text)
{
	struct str err = STR_INIT;
	struct conf *c = conf_load_string(text, "t.conf", &err);

	if (c == NULL) {
		fprintf(stderr, "config: %s\n", str_cstr(&err));
		abort();
	}
	str_free(&err);
	return c;
}

/* test_settings_cached_per_generation - one read per generation, values follow the reload. */
static void test_settings_cached_per_generation(void)
{
	struct conf *c1 = load(
		"Max_Recipients_Per_Batch = 10\n"
		"Retry_Interval = 30\n"
		"Domain \"/\\.regex\\.test$/\" { Max_Recipients_Per_Batch = 7 Suspend_Delivery = true\n"
		"  Outbound_Throttle_Messages = \"5/2\" Routes = ( \"smtp://192.0.2.1:2525\" ) }\n"
		"Domain \"plain.test\" { EHLO_Hostname = \"out.plain.test\" Max_Retries = 3 }\n");
	struct conf *c2 = load(
		"Max_Recipients_Per_Batch = 10\n"
		"Retry_Interval = 60\n"
		"Domain \"/\\.regex\\.test$/\" { Max_Recipients_Per_Batch = 3 }\n");
	struct queue *q = queue_new(c1);
	struct queue_dest *rx = queue_dest_get(q, "", "a.regex.test");
	struct queue_dest *plain = queue_dest_get(q, "", "plain.test");
	const struct queue_dest_settings *s;

	CHECK(queue_dest_get(q, "", "a.regex.test") == rx);
	CHECK_INTEQ(queue_destination_count(q), 2);

	for (int i = 0; i < 1000; i++)
		s = queue_dest_settings(rx);
	CHECK_INTEQ(s->reads, 1);
	CHECK_INTEQ(s->batch_size, 7);
	CHECK(s->suspend);
	CHECK_INTEQ(s->throttle_msgs.count, 5);
	CHECK_INTEQ(s->throttle_msgs.period, 2);
	CHECK_INTEQ(s->retry_interval, 30);
	CHECK(s->route != NULL);
	CHECK_STREQ(s->route, "smtp://192.0.2.1:2525");

	s = queue_dest_settings(plain);
	CHECK_INTEQ(s->reads, 1);
	CHECK_INTEQ(s->batch_size, 10);
	CHECK(!s->suspend);
	CHECK(s->route == NULL);
	CHECK_STREQ(s->ehlo, "out.plain.test");
	CHECK_INTEQ(s->max_retries, 3);

	/* A reload: each queue reads again, once, on its next event. */
	queue_set_conf(q, c2);
	conf_unref(c1);
	for (int i = 0; i < 1000; i++)
		s = queue_dest_settings(rx);
	CHECK_INTEQ(s->reads, 2);
	CHECK_INTEQ(s->batch_size, 3);
	CHECK(!s->suspend);
	CHECK(!s->throttle_msgs.count);
	CHECK_INTEQ(s->retry_interval, 60);
	CHECK(s->route == NULL);
	s = queue_dest_settings(plain);
	CHECK_INTEQ(s->reads, 2);
	CHECK_STREQ(s->ehlo, conf_hostname(c2));

	queue_free(q);
	conf_unref(c2);
}

int main(void)
{
	test_settings_cached_per_generation();
	return check_done();
}
