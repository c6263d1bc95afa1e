/*
 * test_core.c - the event core: loop inbox, drain hook, timers, pools, ids, str
 *
 * The loop tests run real threads: several producers post numbered items
 * to one loop while it runs, and the loop checks that each producer's
 * items arrive exactly once and in the order that producer posted them.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/pool.h"
#include "core/slab.h"
#include "core/str.h"

#define PRODUCERS 4
#define PER_PRODUCER 50000

/* This test's own loop role and message kinds: core knows nothing of impetus's. */
#define TEST_ROLE 1u

static void on_item(void *arg);
static void arm_timer(void *arg);
static void job_done(void *arg);

static const struct loop_kind kind_item = { "test.item", "producers", TEST_ROLE, on_item };
static const struct loop_kind kind_arm = { "test.arm_timer", "main", TEST_ROLE, arm_timer };
static const struct loop_kind kind_job_done = { "test.job_done", "pool", TEST_ROLE, job_done };

struct inbox_test {
	struct loop *lp;
	long next[PRODUCERS];	/* loop thread only */
	long received;
	long out_of_order;
	long drains;
	bool wrong_thread;
};

struct item {
	struct inbox_test *t;
	int producer;
	long seq;
};

static void on_item(void *arg)
{
	struct item *it = arg;
	struct inbox_test *t = it->t;

	if (!loop_is_current(t->lp))
		t->wrong_thread = true;
	if (it->seq != t->next[it->producer])
		t->out_of_order++;
	t->next[it->producer] = it->seq + 1;
	if (++t->received == (long)PRODUCERS * PER_PRODUCER)
		loop_stop(t->lp);
	free(it);
}

static void on_drain(void *arg)
{
	struct inbox_test *t = arg;

	t->drains++;
}

struct producer_arg {
	struct inbox_test *t;
	int index;
};

static void *producer(void *arg)
{
	struct producer_arg *pa = arg;

	for (long i = 0; i < PER_PRODUCER; i++) {
		struct item *it = malloc(sizeof(*it));
		it->t = pa->t;
		it->producer = pa->index;
		it->seq = i;
		loop_post(pa->t->lp, &kind_item, it);
	}
	return NULL;
}

/* test_inbox_many_producers - every post runs once, per-producer FIFO, on the loop thread. */
static void test_inbox_many_producers(void)
{
	struct inbox_test t = { 0 };
	pthread_t th[PRODUCERS];
	struct producer_arg pa[PRODUCERS];

	t.lp = loop_new("test", TEST_ROLE);
	loop_set_drain_hook(t.lp, on_drain, &t);
	CHECK_INTEQ(loop_start(t.lp), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		pa[i].t = &t;
		pa[i].index = i;
		pthread_create(&th[i], NULL, producer, &pa[i]);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	loop_join(t.lp);
	CHECK_INTEQ(t.received, (long)PRODUCERS * PER_PRODUCER);
	CHECK_INTEQ(t.out_of_order, 0);
	CHECK(!t.wrong_thread);
	CHECK(t.drains >= 1);
	/* Wake-ups are coalesced: far fewer drains than posts. */
	CHECK(t.drains < t.received);
	loop_free(t.lp);
}

struct timer_test {
	struct loop *lp;
	int fired;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timer_test *t = arg;

	t->fired++;
	loop_stop(t->lp);
}

static void arm_timer(void *arg)
{
	struct timer_test *t = arg;
	struct timeval tv = { 0, 20000 };

	event_base_once(loop_base(t->lp), -1, EV_TIMEOUT, on_timer, t, &tv);
}

/* test_timer_from_post - a timed event armed from another thread's post fires. */
static void test_timer_from_post(void)
{
	struct timer_test t = { 0 };

	t.lp = loop_new("timer", TEST_ROLE);
	CHECK_INTEQ(loop_start(t.lp), 0);
	loop_post(t.lp, &kind_arm, &t);
	loop_join(t.lp);
	CHECK_INTEQ(t.fired, 1);
	loop_free(t.lp);
}

/*
 * Lazy posts: from loop A to loop B. A lazy post alone still runs (the
 * backstop timer on A wakes B); a lazy post followed by an ordinary one
 * runs first, in the order A made them.
 */
struct lazy_test {
	struct loop *a, *b;
	int seen[8];		/* B's thread: the order the posts ran in */
	int nseen;
	atomic_int done;
};

static void lazy_mark(void *arg);
static void lazy_send(void *arg);
static const struct loop_kind kind_lazy_mark = { "test.lazy_mark", "a", TEST_ROLE, lazy_mark };
static const struct loop_kind kind_lazy_send = { "test.lazy_send", "main", TEST_ROLE, lazy_send };

static struct lazy_test *lazy_t;

static void lazy_mark(void *arg)
{
	struct lazy_test *t = lazy_t;

	if (t->nseen < 8)
		t->seen[t->nseen++] = (int)(intptr_t)arg;
	atomic_fetch_add(&t->done, 1);
}

static void lazy_send(void *arg)
{
	struct lazy_test *t = lazy_t;

	if ((intptr_t)arg == 0) {
		loop_post_lazy(t->b, &kind_lazy_mark, (void *)(intptr_t)1);
	} else if ((intptr_t)arg == 2) {
		/* Batched: B is woken once A's callback is over. */
		loop_post_batched(t->b, &kind_lazy_mark, (void *)(intptr_t)4);
		loop_post_batched(t->b, &kind_lazy_mark, (void *)(intptr_t)5);
	} else {
		loop_post_lazy(t->b, &kind_lazy_mark, (void *)(intptr_t)2);
		loop_post(t->b, &kind_lazy_mark, (void *)(intptr_t)3);
	}
}

static void test_lazy_post(void)
{
	struct lazy_test t = { 0 };

	lazy_t = &t;
	t.a = loop_new("lazy-a", TEST_ROLE);
	t.b = loop_new("lazy-b", TEST_ROLE);
	CHECK_INTEQ(loop_start(t.a), 0);
	CHECK_INTEQ(loop_start(t.b), 0);
	loop_post(t.a, &kind_lazy_send, (void *)(intptr_t)0);
	for (int i = 0; i < 2000 && atomic_load(&t.done) < 1; i++)
		usleep(1000);
	CHECK_INTEQ(atomic_load(&t.done), 1);	/* the backstop woke B */
	loop_post(t.a, &kind_lazy_send, (void *)(intptr_t)1);
	for (int i = 0; i < 2000 && atomic_load(&t.done) < 3; i++)
		usleep(1000);
	loop_post(t.a, &kind_lazy_send, (void *)(intptr_t)2);
	for (int i = 0; i < 2000 && atomic_load(&t.done) < 5; i++)
		usleep(1000);
	loop_stop(t.a);
	loop_join(t.a);
	loop_stop(t.b);
	loop_join(t.b);
	CHECK_INTEQ(t.nseen, 5);
	CHECK_INTEQ(t.seen[0], 1);
	CHECK_INTEQ(t.seen[1], 2);
	CHECK_INTEQ(t.seen[2], 3);
	CHECK_INTEQ(t.seen[3], 4);
	CHECK_INTEQ(t.seen[4], 5);
	loop_free(t.a);
	loop_free(t.b);
}

struct pool_test {
	struct loop *lp;
	atomic_int ran;
	int results;		/* loop thread only */
};

static void job_done(void *arg)
{
	struct pool_test *t = arg;

	if (++t->results == 1000)
		loop_stop(t->lp);
}

static void job(void *arg)
{
	struct pool_test *t = arg;

	atomic_fetch_add(&t->ran, 1);
	loop_post(t->lp, &kind_job_done, t);
}

/* test_pool_posts_back - jobs run on workers and report back to a loop. */
static void test_pool_posts_back(void)
{
	struct pool_test t = { 0 };
	struct pool *p = pool_new("CPU", 3);

	t.lp = loop_new("pooltest", TEST_ROLE);
	CHECK_INTEQ(loop_start(t.lp), 0);
	for (int i = 0; i < 1000; i++)
		pool_submit(p, job, &t);
	loop_join(t.lp);
	pool_free(p);
	CHECK_INTEQ(atomic_load(&t.ran), 1000);
	CHECK_INTEQ(t.results, 1000);
	loop_free(t.lp);
}

/* test_ids - strictly increasing, round-trip through text, observe raises the floor. */
static void test_ids(void)
{
	char buf[ID_BUF_SIZE];
	impetus_id prev = id_next(), back;

	for (int i = 0; i < 100000; i++) {
		impetus_id id = id_next();
		if (id <= prev) {
			CHECK(id > prev);
			break;
		}
		prev = id;
	}
	id_format(prev, buf);
	CHECK_INTEQ(strlen(buf), ID_TEXT_LEN);
	CHECK(id_parse(buf, &back));
	CHECK(back == prev);
	CHECK(!id_parse("0123", &back));
	CHECK(!id_parse("0123456789ABCDEG", &back));
	id_observe(prev + 1000000000ull);
	CHECK(id_next() > prev + 1000000000ull);
}

/* test_str - growth, formatting, binary bytes. */
static void test_str(void)
{
	struct str s = STR_INIT;

	CHECK_STREQ(str_cstr(&s), "");
	for (int i = 0; i < 1000; i++)
		str_appendf(&s, "%d,", i);
	CHECK(s.len > 2000);
	CHECK(strncmp(s.s, "0,1,2,", 6) == 0);
	str_truncate(&s, 2);
	CHECK_STREQ(s.s, "0,");
	str_append(&s, "a\0b", 3);
	CHECK_INTEQ(s.len, 5);
	CHECK(s.s[5] == '\0');
	char *p = str_steal(&s);
	CHECK(s.s == NULL && s.len == 0);
	free(p);
	/* Numbers without printf: the same text as printf's. */
	const long long nums[] = { 0, 7, -1, 10, 1234567890123LL, LLONG_MAX, LLONG_MIN };
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		char want[32];
		str_clear(&s);
		str_append_i64(&s, nums[i]);
		snprintf(want, sizeof(want), "%lld", nums[i]);
		CHECK_STREQ(str_cstr(&s), want);
	}
	str_clear(&s);
	str_append_u64(&s, ULLONG_MAX);
	CHECK_STREQ(str_cstr(&s), "18446744073709551615");
	str_free(&s);
}

/* slow_job - a job that takes a while, then counts itself done. */
static void slow_job(void *arg)
{
	_Atomic int *done = arg;

	usleep(20000);
	atomic_fetch_add(done, 1);
}

/* test_pool_wait_idle - returns only once every job, queued or running, is over. */
static void test_pool_wait_idle(void)
{
	_Atomic int done = 0;
	struct pool *p = pool_new("IO", 2);

	for (int i = 0; i < 9; i++)
		pool_submit(p, slow_job, &done);
	pool_wait_idle(p);
	CHECK_INTEQ(atomic_load(&done), 9);
	pool_wait_idle(p);	/* idle already: returns at once */
	pool_submit(p, slow_job, &done);	/* the pool still works afterwards */
	pool_wait_idle(p);
	CHECK_INTEQ(atomic_load(&done), 10);
	pool_free(p);
}

struct stats_seen {
	const char *want;
	int found;
	struct loop_stats loop;
	struct pool_stats pool;
};

static void see_loop(void *arg, const struct loop_stats *st)
{
	struct stats_seen *s = arg;

	if (strcmp(st->name, s->want) == 0) {
		s->found++;
		s->loop = *st;
	}
}

static void see_pool(void *arg, const struct pool_stats *st)
{
	struct stats_seen *s = arg;

	if (strcmp(st->name, s->want) == 0) {
		s->found++;
		s->pool = *st;
	}
}

static void count_item(void *arg)
{
	(*(int *)arg)++;
}

static const struct loop_kind kind_count = { "test.count", "main", TEST_ROLE, count_item };

/* test_stats - what the console's `threads` reads: queue depth, work done, gone when freed. */
static void test_stats(void)
{
	struct loop *lp = loop_new("statsloop", TEST_ROLE);
	struct stats_seen s = { .want = "statsloop" };
	int ran = 0;

	for (int i = 0; i < 5; i++)
		loop_post(lp, &kind_count, &ran);
	loop_stats_each(see_loop, &s);
	CHECK_INTEQ(s.found, 1);
	CHECK_INTEQ(s.loop.queued, 5);
	CHECK_INTEQ(s.loop.posted, 5);
	CHECK_INTEQ(s.loop.handled, 0);
	CHECK(!s.loop.running);
	CHECK_INTEQ(s.loop.cpu_ms, -1);	/* no thread runs it */
	loop_drain_now(lp);
	CHECK_INTEQ(ran, 5);
	s.found = 0;
	loop_stats_each(see_loop, &s);
	CHECK_INTEQ(s.loop.queued, 0);
	CHECK_INTEQ(s.loop.handled, 5);
	loop_free(lp);
	s.found = 0;
	loop_stats_each(see_loop, &s);
	CHECK_INTEQ(s.found, 0);

	_Atomic int done = 0;
	struct pool *p = pool_new("statspool", 2);
	struct stats_seen ps = { .want = "statspool" };

	for (int i = 0; i < 4; i++)
		pool_submit(p, slow_job, &done);
	pool_wait_idle(p);
	pool_stats_each(see_pool, &ps);
	CHECK_INTEQ(ps.found, 1);
	CHECK_INTEQ(ps.pool.nthreads, 2);
	CHECK_INTEQ(ps.pool.done, 4);
	CHECK_INTEQ(ps.pool.pending + ps.pool.running, 0);
	CHECK(ps.pool.busy_ms >= 60);	/* four 20 ms jobs */
	CHECK(ps.pool.cpu_ms >= 0);
	pool_free(p);
	ps.found = 0;
	pool_stats_each(see_pool, &ps);
	CHECK_INTEQ(ps.found, 0);
}

/* test_slab - objects are distinct, zeroed and aligned; freed ones are reused before a new chunk. */
static void test_slab(void)
{
	struct slab sl;
	enum { N = 3 * SLAB_CHUNK_OBJECTS + 5 };
	unsigned char **obj = calloc(N, sizeof(*obj));

	slab_init(&sl, 20);
	CHECK_INTEQ(sl.size % sizeof(void *), 0);
	for (int i = 0; i < N; i++) {
		obj[i] = slab_alloc(&sl);
		CHECK(((uintptr_t)obj[i] % sizeof(void *)) == 0);
		for (size_t k = 0; k < sl.size; k++)
			if (obj[i][k] != 0)
				check_failures++;
		memset(obj[i], 0xA5, sl.size);
	}
	CHECK_INTEQ(sl.live, N);
	CHECK_INTEQ(sl.capacity, 4 * SLAB_CHUNK_OBJECTS);
	/* No two objects overlap. */
	for (int i = 1; i < N; i++)
		if (obj[i] == obj[i - 1] || (obj[i] > obj[i - 1] && obj[i] < obj[i - 1] + sl.size))
			check_failures++;
	for (int i = 0; i < N; i += 2)
		slab_free(&sl, obj[i]);
	slab_free(&sl, NULL);
	CHECK_INTEQ(sl.live, N / 2);
	for (int i = 0; i < N; i += 2)
		obj[i] = slab_alloc(&sl);
	CHECK_INTEQ(sl.capacity, 4 * SLAB_CHUNK_OBJECTS);	/* reused, not grown */
	CHECK_INTEQ(sl.live, N);
	slab_destroy(&sl);
	CHECK_INTEQ(sl.capacity, 0);
	free(obj);
}

int main(void)
{
	test_slab();
	test_stats();
	test_inbox_many_producers();
	test_timer_from_post();
	test_lazy_post();
	test_pool_posts_back();
	test_pool_wait_idle();
	test_ids();
	test_str();
	return check_done();
}
