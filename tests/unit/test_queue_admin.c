/*
 * test_queue_admin.c - the console's controls over whole queues (queue_admin.c)
 *
 * Rates over one-second slots (stale slots never count), suspend/resume
 * of a domain and of a binding (which queues are held, the count that
 * keeps the kick's test free), reroute rules (kept one step deep, loops
 * refused, queued entries moved, new mail following the rule), and the
 * summary's sizes and counters. The manager is not started: no loop, no
 * spool, so nothing is delivered and the entries stay where they are put.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config/config.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/strmap.h"
#include "message/envelope.h"
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

/* add_msg - a recovered message with one recipient per address (due now). */
static void add_msg(struct queue *q, uint64_t id, const char *const *rcpts, size_t n)
{
	struct envelope *e = envelope_new();

	e->id = id;
	e->received = 1;
	e->sender = xstrdup("s@src.test");
	e->rcpts = xcalloc(n, sizeof(*e->rcpts));
	e->nrcpt = n;
	for (size_t i = 0; i < n; i++)
		e->rcpts[i].addr = xstrdup(rcpts[i]);
	queue_recovered(q, e);
}

static uint64_t queued(struct queue *q, const char *binding, const char *domain)
{
	struct queue_dest *dq = queue_dest_find(q, binding, domain);

	return dq ? dq->nactive + dq->nheap : 0;
}

/* test_rates - whole seconds only; slots older than the span, or reused, do not count. */
static void test_rates(void)
{
	struct queue_rate r;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 30; i++)
		queue_rate_add(&r, 1000);	/* 30 in second 1000 */
	for (int i = 0; i < 10; i++)
		queue_rate_add(&r, 1005);	/* 10 in second 1005 */
	queue_rate_add(&r, 1010);		/* the current second: not yet */
	CHECK(queue_rate_get(&r, 1010, 10) == 4.0);	/* (30 + 10) / 10 */
	CHECK(queue_rate_get(&r, 1010, 5) == 2.0);	/* 1005 only */
	CHECK(queue_rate_get(&r, 1011, 60) == 41.0 / 60);
	/* Second 1000 + QUEUE_RATE_SLOTS reuses 1000's slot: it starts from zero. */
	queue_rate_add(&r, 1000 + QUEUE_RATE_SLOTS);
	CHECK(queue_rate_get(&r, 1001 + QUEUE_RATE_SLOTS, 1) == 1.0);
	CHECK(queue_rate_get(&r, 5000, 60) == 0.0);
}

/* test_suspend - domains and bindings held and released; the count follows. */
static void test_suspend(void)
{
	struct conf *c = load("Binding \"b1\" { }\n");
	struct queue *q = queue_new(c);
	struct queue_dest *a = queue_dest_get(q, "", "a.test");
	struct queue_dest *ab1 = queue_dest_get(q, "b1", "a.test");
	struct queue_dest *bb1 = queue_dest_get(q, "b1", "b.test");

	CHECK(!queue_admin_held(q, a) && !queue_admin_held(q, bb1));
	CHECK_INTEQ(queue_admin_suspend(q, false, "a.test", true), 1);
	CHECK_INTEQ(queue_admin_suspend(q, false, "a.test", true), 0);	/* already */
	CHECK_INTEQ(q->nheld, 1);
	CHECK(queue_admin_held(q, a) && queue_admin_held(q, ab1) && !queue_admin_held(q, bb1));
	CHECK(queue_admin_is_held(q, NULL, "a.test") && !queue_admin_is_held(q, NULL, "b.test"));
	CHECK_INTEQ(queue_admin_suspend(q, true, "b1", true), 1);
	CHECK_INTEQ(q->nheld, 2);
	CHECK(queue_admin_held(q, bb1) && queue_admin_is_held(q, "b1", NULL));
	CHECK(!queue_admin_is_held(q, "", NULL));
	/* A resume kicks the queues and frees the empty ones: by name from here on. */
	CHECK_INTEQ(queue_admin_suspend(q, false, "a.test", false), 1);
	CHECK_INTEQ(queue_destination_count(q), 1);	/* bb1 is held, not freed */
	CHECK(!queue_admin_is_held(q, "", "a.test") && queue_admin_is_held(q, "b1", "a.test"));
	CHECK_INTEQ(queue_admin_suspend(q, true, "b1", false), 1);
	CHECK_INTEQ(queue_admin_suspend(q, true, "b1", false), 0);
	CHECK_INTEQ(q->nheld, 0);
	CHECK(!queue_admin_is_held(q, "b1", "a.test") && !queue_admin_is_held(q, "b1", "b.test"));
	queue_free(q);
	conf_unref(c);
}

/* test_reroute - rules, loops, moved entries, new mail, and the summary's view. */
static void test_reroute(void)
{
	struct conf *c = load("Binding \"b1\" { }\n");
	struct queue *q = queue_new(c);
	const char *r1[] = { "x@a.test", "y@a.test", "z@c.test" };
	const char *r2[] = { "w@a.test" };
	struct queue_stats st;

	add_msg(q, 1, r1, 3);
	CHECK_INTEQ(queued(q, "", "a.test"), 2);
	CHECK_STREQ(queue_admin_route(q, "a.test"), "a.test");

	/* The two recipients of a.test move to b.test's queue. */
	CHECK_INTEQ(queue_admin_reroute(q, "a.test", "b.test"), 2);
	CHECK_INTEQ(queued(q, "", "a.test"), 0);
	CHECK_INTEQ(queued(q, "", "b.test"), 2);
	CHECK_INTEQ(queued(q, "", "c.test"), 1);
	CHECK_STREQ(queue_admin_route(q, "a.test"), "b.test");

	/* New mail for a.test follows the rule. */
	add_msg(q, 2, r2, 1);
	CHECK_INTEQ(queued(q, "", "b.test"), 3);

	/* A rule back to a.test, or to itself, is refused; nothing moves. */
	CHECK_INTEQ(queue_admin_reroute(q, "b.test", "a.test"), -ELOOP);
	CHECK_INTEQ(queue_admin_reroute(q, "c.test", "c.test"), -ELOOP);
	/* a.test onto itself while rerouted: the rule stays (its target is re-read safely). */
	CHECK_INTEQ(queue_admin_reroute(q, "a.test", "a.test"), 0);
	CHECK_STREQ(queue_admin_route(q, "a.test"), "b.test");
	CHECK_INTEQ(queued(q, "", "b.test"), 3);

	/* b.test -> d.test: the rule a.test -> b.test becomes a.test -> d.test (one step deep). */
	CHECK_INTEQ(queue_admin_reroute(q, "b.test", "d.test"), 3);
	CHECK_STREQ(strmap_get(q->reroutes, "a.test"), "d.test");
	CHECK_STREQ(queue_admin_route(q, "a.test"), "d.test");
	CHECK_INTEQ(queued(q, "", "d.test"), 3);

	queue_get_stats(q, &st);
	CHECK_INTEQ(st.active, 4);
	CHECK_INTEQ(st.delayed, 0);
	CHECK_INTEQ(st.total, 4);
	CHECK_INTEQ(st.messages, 2);
	CHECK_INTEQ(st.reroutes, 2);
	CHECK_INTEQ(st.held, 0);

	/* Counters: outcomes and receptions; reset zeroes them. */
	queue_admin_count(q, NULL, 'R');
	queue_admin_count(q, queue_dest_find(q, "", "d.test"), 'D');
	queue_admin_count(q, queue_dest_find(q, "", "d.test"), 'P');
	queue_admin_count(q, queue_dest_find(q, "", "d.test"), 'T');
	queue_get_stats(q, &st);
	CHECK_INTEQ(st.received, 1);
	CHECK_INTEQ(st.delivered, 1);
	CHECK_INTEQ(st.failed, 1);
	struct queue_dest *dd = queue_dest_find(q, "", "d.test");
	CHECK_INTEQ(dd->delivered, 1);
	CHECK_INTEQ(dd->failed, 1);
	CHECK_INTEQ(dd->deferred, 1);
	queue_stats_reset(q);
	queue_get_stats(q, &st);
	CHECK_INTEQ(st.received + st.delivered + st.failed, 0);

	/* The queues of a domain, sorted by binding. */
	struct queue_dest **v;
	queue_dest_get(q, "b1", "d.test");
	size_t n = queue_admin_dests(q, NULL, "d.test", &v);
	CHECK_INTEQ(n, 2);
	CHECK_STREQ(v[0]->binding, "");
	CHECK_STREQ(v[1]->binding, "b1");
	free(v);
	queue_free(q);
	conf_unref(c);
}

int main(void)
{
	test_rates();
	test_suspend();
	test_reroute();
	return check_done();
}
