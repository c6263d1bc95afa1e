/*
 * spool_bench.c - how many messages per second the spool makes durable
 *
 * C concurrent submitters, like C SMTP sessions waiting for their 250:
 * each has one message in flight and submits the next from its reply
 * callback, on one of L reply loops (the I/O loops of the daemon). Every
 * message is acknowledged only after its group commit's fdatasync, so the
 * rate measures the real durable throughput of this disk.
 *
 * Not built by CMake. Build by hand from the repository root, against the
 * library of a Release build (the message table in src/msgs links every
 * component's handlers, so the spool files alone no longer link):
 *   gcc -std=c17 -D_GNU_SOURCE -O2 -DNDEBUG -Isrc bench/spool_bench.c build/libimpetus_lib.a \
 *       -o /tmp/spool_bench \
 *       $(pkg-config --cflags --libs libevent libevent_pthreads libevent_openssl libcares \
 *         openssl libpcre2-8 jansson) -lpthread
 * Run: /tmp/spool_bench [-c CONCURRENCY] [-n MESSAGES] [-s BODYSIZE]
 *      [-l REPLYLOOPS] [-d DIR] [-S (no fsync)] [-D (mark done: reclaim runs)]
 *      [-k (keep the spool directory)]
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "msgs/msgs.h"
#include "spool/spool.h"

struct bench {
	struct spool *sp;
	struct loop **loops;
	int nloops;
	size_t body;
	long total;
	bool mark_done;
	_Atomic long issued;
	_Atomic long acked;
	_Atomic long failed;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

struct submitter {
	struct bench *b;
	struct loop *loop;
};

static struct envelope *make_msg(size_t body)
{
	struct envelope *m = envelope_new();

	m->id = id_next();
	m->received = time(NULL);
	m->sender = xstrdup("bench@example.org");
	m->client_ip = xstrdup("127.0.0.1");
	m->helo = xstrdup("bench.example");
	m->protocol = xstrdup("esmtp");
	m->binding_group = xstrdup("");
	m->binding = xstrdup("");
	m->nrcpt = 1;
	m->rcpts = xcalloc(1, sizeof(*m->rcpts));
	m->rcpts[0].addr = xstrdup("sink@example.net");
	str_reserve(&m->body, body);
	memset(m->body.s, 'x', body);
	m->body.len = body;
	m->body.s[body] = '\0';
	return m;
}

static void on_done(void *ctx, int err, struct envelope *msg);

/* next - submit another message unless the total is reached. */
static void next(struct submitter *s)
{
	struct bench *b = s->b;

	if (atomic_fetch_add(&b->issued, 1) >= b->total)
		return;
	spool_submit(b->sp, make_msg(b->body), s->loop, on_done, s);
}

static void on_done(void *ctx, int err, struct envelope *msg)
{
	struct submitter *s = ctx;
	struct bench *b = s->b;

	if (err)
		atomic_fetch_add(&b->failed, 1);
	else if (b->mark_done)
		spool_message_done(b->sp, msg->id);
	envelope_free(msg);
	if (atomic_fetch_add(&b->acked, 1) + 1 == b->total) {
		pthread_mutex_lock(&b->mu);
		pthread_cond_signal(&b->cv);
		pthread_mutex_unlock(&b->mu);
	}
	next(s);
}

static void kick(void *arg)
{
	next(arg);
}

/* The bench's one message: a submitter loop (an I/O loop in the daemon) starts sending. */
static const struct loop_kind kind_kick = { "bench.kick", "main", MSGS_IO, kick };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct bench b = { .body = 4096, .total = 20000, .nloops = 2 };
	struct spool_options o = { 0 };
	struct spool_stats st;
	struct submitter *subs;
	struct str err = STR_INIT;
	char tmpl[] = "/tmp/impetus-spool-bench-XXXXXX";
	const char *dir = NULL;
	bool keep = false;
	int conc = 64, opt;
	double t0, t1;

	while ((opt = getopt(argc, argv, "c:n:s:l:d:SDk")) != -1) {
		switch (opt) {
		case 'c': conc = atoi(optarg); break;
		case 'n': b.total = atol(optarg); break;
		case 's': b.body = (size_t)atol(optarg); break;
		case 'l': b.nloops = atoi(optarg); break;
		case 'd': dir = optarg; break;
		case 'S': o.no_sync = true; break;
		case 'D': b.mark_done = true; break;
		case 'k': keep = true; break;
		default:
			fprintf(stderr, "usage: spool_bench [-c conc] [-n msgs] [-s size] [-l loops]"
				" [-d dir] [-S] [-D] [-k]\n");
			return 2;
		}
	}
	if (dir == NULL) {
		if (mkdtemp(tmpl) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		dir = tmpl;
	}
	b.sp = spool_open(dir, &o, NULL, NULL, &err);
	if (b.sp == NULL) {
		fprintf(stderr, "spool_open: %s\n", str_cstr(&err));
		return 1;
	}
	spool_start(b.sp);
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.loops = xcalloc((size_t)b.nloops, sizeof(*b.loops));
	for (int i = 0; i < b.nloops; i++) {
		b.loops[i] = loop_new("bench", MSGS_IO);
		loop_start(b.loops[i]);
	}
	subs = xcalloc((size_t)conc, sizeof(*subs));
	t0 = now();
	for (int i = 0; i < conc; i++) {
		subs[i].b = &b;
		subs[i].loop = b.loops[i % b.nloops];
		loop_post(subs[i].loop, &kind_kick, &subs[i]);
	}
	pthread_mutex_lock(&b.mu);
	while (atomic_load(&b.acked) < b.total)
		pthread_cond_wait(&b.cv, &b.mu);
	pthread_mutex_unlock(&b.mu);
	t1 = now();
	spool_get_stats(b.sp, &st);
	printf("%ld messages of %zu bytes, concurrency %d, %s: %.2f s, %.0f msg/s, %.1f MB/s,"
	       " %" PRIu64 " group commits (%.1f msg/commit), %ld failed\n",
	       b.total, b.body, conc, o.no_sync ? "no fsync" : "fdatasync", t1 - t0,
	       (double)b.total / (t1 - t0), (double)b.total * (double)b.body / (t1 - t0) / 1e6,
	       st.batches, st.batches ? (double)st.records / (double)st.batches : 0.0,
	       atomic_load(&b.failed));
	for (int i = 0; i < b.nloops; i++) {
		loop_stop(b.loops[i]);
		loop_join(b.loops[i]);
	}
	spool_stop(b.sp);
	for (int i = 0; i < b.nloops; i++)
		loop_free(b.loops[i]);
	if (!keep) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	free(subs);
	free(b.loops);
	str_free(&err);
	return 0;
}
