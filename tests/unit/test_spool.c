/*
 * test_spool.c - tests of src/spool/: the record codec, the spool thread
 * with group commit, recovery and its damage handling, reclaiming, the
 * write-error path and the lock
 *
 * Every case works in its own directory under /tmp (mkdtemp) against the
 * real files, the real spool thread and a real reply loop on its own
 * thread. Damage is made by editing segment files between a stop and the
 * next open, the way a crash or a bad disk would leave them. The write
 * error case runs in a forked child with RLIMIT_FSIZE lowered, so the
 * kernel itself refuses the write with EFBIG. Exits non-zero on failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/crc32c.h"
#include "core/histo.h"
#include "core/id.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/str.h"
#include "msgs/msgs.h"
#include "spool/spool.h"
#include "spool/spool_record.h"

/* ==================== helpers ==================== */

/* make_body - deterministic bytes for message number i. */
static void make_body(struct str *b, unsigned i, size_t len)
{
	str_clear(b);
	str_appendf(b, "Subject: message %u\r\n\r\n", i);
	while (b->len < len)
		str_appendc(b, (char)('a' + (b->len * 7 + i) % 26));
	str_truncate(b, len);
}

static struct envelope *make_msg(unsigned i, size_t nrcpt, size_t bodylen)
{
	struct envelope *m = envelope_new();
	struct str s = STR_INIT;

	m->id = id_next();
	m->received = 1795473001 + i;
	str_appendf(&s, "sender%u@example.org", i);
	m->sender = str_steal(&s);
	m->envid = i % 2 ? xstrdup("ENV-ID+2B1") : NULL;
	m->ret = i % 3;
	m->body_type = i % 3;
	m->smtputf8 = i % 2;
	m->client_ip = xstrdup("192.0.2.7");
	m->helo = xstrdup("client.example");
	m->protocol = xstrdup("esmtp");
	m->binding_group = xstrdup(i % 2 ? "group" : "");
	m->binding = xstrdup("default");
	m->nrcpt = nrcpt;
	m->rcpts = xcalloc(nrcpt ? nrcpt : 1, sizeof(*m->rcpts));
	for (size_t j = 0; j < nrcpt; j++) {
		str_appendf(&s, "rcpt%zu@dom%u.test", j, i);
		m->rcpts[j].addr = str_steal(&s);
		m->rcpts[j].orcpt = j % 2 ? xstrdup("rfc822;orig@example.net") : NULL;
		m->rcpts[j].notify = (uint8_t)(j % 16);
	}
	make_body(&m->body, i, bodylen);
	return m;
}

static bool str_eq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* same_envelope - every envelope field of a and b is equal. */
static bool same_envelope(const struct envelope *a, const struct envelope *b)
{
	if (a->id != b->id || a->received != b->received || a->ret != b->ret ||
	    a->body_type != b->body_type || a->smtputf8 != b->smtputf8 || a->nrcpt != b->nrcpt)
		return false;
	if (!str_eq_null(a->sender, b->sender) || !str_eq_null(a->envid, b->envid) ||
	    !str_eq_null(a->client_ip, b->client_ip) || !str_eq_null(a->helo, b->helo) ||
	    !str_eq_null(a->protocol, b->protocol) ||
	    !str_eq_null(a->binding_group, b->binding_group) ||
	    !str_eq_null(a->binding, b->binding))
		return false;
	for (size_t j = 0; j < a->nrcpt; j++) {
		const struct envelope_rcpt *x = &a->rcpts[j], *y = &b->rcpts[j];

		if (!str_eq_null(x->addr, y->addr) || !str_eq_null(x->orcpt, y->orcpt) ||
		    x->notify != y->notify || x->state != y->state || x->retries != y->retries ||
		    x->next_attempt != y->next_attempt)
			return false;
	}
	return true;
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/impetus-test-spool-XXXXXX";

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	return xstrdup(tmpl);
}

static void remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

/* seg_files_range - how many seg-*.log files the directory holds, and the lowest/highest seq. */
static int seg_files_range(const char *dir, uint64_t *first, uint64_t *last)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (first)
		*first = UINT64_MAX;
	if (last)
		*last = 0;
	while (d && (de = readdir(d)) != NULL) {
		uint64_t seq;

		if (spool_seg_parse_name(de->d_name, NULL, &seq)) {
			n++;
			if (first && seq < *first)
				*first = seq;
			if (last && seq > *last)
				*last = seq;
		}
	}
	if (d)
		closedir(d);
	return n;
}

static int seg_files(const char *dir, uint64_t *last)
{
	return seg_files_range(dir, NULL, last);
}

static void seg_path(char *buf, size_t n, const char *dir, uint64_t seq)
{
	char name[SPOOL_SEG_NAME_SIZE];

	snprintf(buf, n, "%s/%s", dir, spool_seg_name(seq, name));
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	if (fd < 0 || pread(fd, &c, 1, (off_t)off) != 1) {
		perror(path);
		exit(2);
	}
	c ^= (unsigned char)(1u << bit);
	if (pwrite(fd, &c, 1, (off_t)off) != 1) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* ---- collecting reports ---- */

struct reports {
	struct str all;
	int n;
};

/*
 * Reports come from the spool thread (compaction, write errors) while a
 * test may poll them: appends and polls hold reports_mu, or a poll could
 * read the buffer the append just reallocated.
 */
static pthread_mutex_t reports_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_report(void *ctx, const char *line)
{
	struct reports *r = ctx;

	pthread_mutex_lock(&reports_mu);
	str_appends(&r->all, line);
	str_appendc(&r->all, '\n');
	r->n++;
	pthread_mutex_unlock(&reports_mu);
}

/* reports_have - whether a report so far contains needle (safe while the spool runs). */
static bool reports_have(struct reports *r, const char *needle)
{
	bool found;

	pthread_mutex_lock(&reports_mu);
	found = strstr(str_cstr(&r->all), needle) != NULL;
	pthread_mutex_unlock(&reports_mu);
	return found;
}

/* ---- the reply side: a loop on a thread, results collected under a mutex ---- */

struct result {
	int err;
	struct envelope *msg;
};

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct result *res;
	size_t n, cap;
	struct loop *loop;
};

static void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->res = NULL;
	w->n = w->cap = 0;
	/* Stands in for the scheduler: it gets the spool replies and the moved notes. */
	w->loop = loop_new("replies", MSGS_SCHEDULER);
	if (loop_start(w->loop) != 0)
		exit(2);
}

static void waiter_fini(struct waiter *w)
{
	loop_stop(w->loop);
	loop_join(w->loop);
	loop_free(w->loop);
	for (size_t i = 0; i < w->n; i++)
		envelope_free(w->res[i].msg);
	free(w->res);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static void on_done(void *ctx, int err, struct envelope *msg)
{
	struct waiter *w = ctx;

	pthread_mutex_lock(&w->mu);
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->res = xrealloc(w->res, w->cap * sizeof(*w->res));
	}
	w->res[w->n].err = err;
	w->res[w->n].msg = msg;
	w->n++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* waiter_wait - until n results arrived (or 20 s passed). */
static void waiter_wait(struct waiter *w, size_t n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&w->mu);
	while (w->n < n) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
			break;
	}
	pthread_mutex_unlock(&w->mu);
	if (w->n < n)
		fprintf(stderr, "%s:%d: timed out waiting for %zu replies, have %zu\n",
			__FILE__, __LINE__, n, w->n);
	CHECK(w->n >= n);
}

/* find_result - the reply for id. */
static struct result *find_result(struct waiter *w, impetus_id id)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->res[i].msg && w->res[i].msg->id == id)
			return &w->res[i];
	return NULL;
}

/* ---- recovery collection ---- */

struct recovered {
	struct envelope **v;
	size_t n;
};

static void on_recover(void *ctx, struct envelope *msg)
{
	struct recovered *r = ctx;

	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	r->v[r->n++] = msg;
}

static struct envelope *rec_find(struct recovered *r, impetus_id id)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i]->id == id)
			return r->v[i];
	return NULL;
}

static void rec_free(struct recovered *r)
{
	for (size_t i = 0; i < r->n; i++)
		envelope_free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

static struct spool *open_spool_opts(const char *dir, struct spool_options o,
				     struct recovered *rec, struct reports *rep)
{
	struct str err = STR_INIT;
	struct spool *sp;

	if (rep) {
		o.report = on_report;
		o.report_ctx = rep;
	}
	sp = spool_open(dir, &o, rec ? on_recover : NULL, rec, &err);
	if (sp == NULL)
		fprintf(stderr, "%s:%d: spool_open: %s\n", __FILE__, __LINE__, str_cstr(&err));
	CHECK(sp != NULL);
	str_free(&err);
	return sp;
}

static struct spool *open_spool(const char *dir, uint64_t segsize, struct recovered *rec,
				struct reports *rep)
{
	return open_spool_opts(dir, (struct spool_options){ .segment_size = segsize }, rec, rep);
}

/*
 * submit_n - submit n messages (body i*37 + 100 bytes, 3 recipients) and
 * wait for them; ids and locs land in out[] in submission order.
 */
static void submit_n(struct spool *sp, struct waiter *w, unsigned first, unsigned n,
		     size_t bodylen, struct envelope **out)
{
	size_t before = w->n;

	for (unsigned i = 0; i < n; i++) {
		struct envelope *m = make_msg(first + i, 3, bodylen ? bodylen : 100 + (first + i) * 37);

		out[i] = m;
		spool_submit(sp, m, w->loop, on_done, w);
	}
	waiter_wait(w, before + n);
}

/*
 * submit_seq - like submit_n but one at a time, each waited for, so every
 * message is its own commit (segment rotation happens between commits).
 */
static void submit_seq(struct spool *sp, struct waiter *w, unsigned first, unsigned n,
		       size_t bodylen, struct envelope **out)
{
	for (unsigned i = 0; i < n; i++)
		submit_n(sp, w, first + i, 1, bodylen, &out[i]);
}

/* ==================== codec ==================== */

static void test_codec_roundtrip(void)
{
	for (unsigned i = 0; i < 6; i++) {
		struct envelope *m = make_msg(i, i, i * 1000);
		struct str rec = STR_INIT;
		struct spool_rec out;
		uint64_t need;
		const char *why = NULL;
		size_t boff;
		long long n;

		if (i > 1) {
			m->rcpts[1].state = ENVELOPE_RCPT_FAILED;
			m->rcpts[1].retries = 7;
			m->rcpts[1].next_attempt = -5;
		}
		boff = spool_rec_encode_message(&rec, m);
		CHECK(boff > SPOOL_REC_HDR_SIZE);
		CHECK_INTEQ(boff, rec.len);
		str_append(&rec, m->body.s, m->body.len);
		n = spool_rec_decode(rec.s, rec.len, true, &out, &need, &why);
		CHECK_INTEQ(n, (long long)rec.len);
		if (n > 0) {
			CHECK_INTEQ(out.type, SPOOL_REC_MESSAGE);
			CHECK(out.id == m->id);
			CHECK_INTEQ(out.body_offset, boff);
			CHECK_INTEQ(out.body_length, m->body.len);
			CHECK(same_envelope(out.msg, m));
			CHECK(memcmp(rec.s + out.body_offset, m->body.s, m->body.len) == 0);
			envelope_free(out.msg);
		} else {
			fprintf(stderr, "decode: %s\n", why);
		}
		/* Every proper prefix is "short", never bad and never a crash. */
		for (size_t cut = 0; cut < rec.len; cut += 1 + cut / 3) {
			n = spool_rec_decode(rec.s, cut, true, &out, &need, &why);
			CHECK_INTEQ(n, SPOOL_REC_SHORT);
		}
		str_free(&rec);
		envelope_free(m);
	}

	/* The small records. */
	{
		struct str rec = STR_INIT;
		struct spool_rec out;
		uint64_t need;
		const char *why;
		long long n;
		size_t off = 0;

		spool_rec_encode_rcpt_state(&rec, 0x1234, 7, ENVELOPE_RCPT_DELIVERED);
		spool_rec_encode_rcpt_retry(&rec, 0x1235, 3, 4, 1795473001);
		spool_rec_encode_done(&rec, 0x1236);
		spool_rec_encode_binding(&rec, 0x1237, "out2", "group1");
		n = spool_rec_decode(rec.s + off, rec.len - off, true, &out, &need, &why);
		CHECK(n > 0);
		CHECK_INTEQ(out.type, SPOOL_REC_RCPT_STATE);
		CHECK_INTEQ(out.id, 0x1234);
		CHECK_INTEQ(out.rcpt_index, 7);
		CHECK_INTEQ(out.state, ENVELOPE_RCPT_DELIVERED);
		off += (size_t)n;
		n = spool_rec_decode(rec.s + off, rec.len - off, true, &out, &need, &why);
		CHECK(n > 0);
		CHECK_INTEQ(out.type, SPOOL_REC_RCPT_RETRY);
		CHECK_INTEQ(out.id, 0x1235);
		CHECK_INTEQ(out.rcpt_index, 3);
		CHECK_INTEQ(out.retries, 4);
		CHECK_INTEQ(out.next_attempt, 1795473001);
		off += (size_t)n;
		n = spool_rec_decode(rec.s + off, rec.len - off, true, &out, &need, &why);
		CHECK(n > 0);
		CHECK_INTEQ(out.type, SPOOL_REC_MESSAGE_DONE);
		CHECK_INTEQ(out.id, 0x1236);
		off += (size_t)n;
		size_t binding_at = off;
		n = spool_rec_decode(rec.s + off, rec.len - off, true, &out, &need, &why);
		CHECK(n > 0);
		CHECK_INTEQ(out.type, SPOOL_REC_BINDING);
		CHECK_INTEQ(out.id, 0x1237);
		CHECK(out.binding_len == 4 && memcmp(out.binding, "out2", 4) == 0);
		CHECK(out.binding_group_len == 6 && memcmp(out.binding_group, "group1", 6) == 0);
		CHECK_STREQ(spool_rec_type_name(SPOOL_REC_BINDING), "BINDING");
		off += (size_t)n;
		CHECK_INTEQ(off, rec.len);
		/* A NUL inside the binding, resealed so only the payload check can catch it. */
		{
			uint8_t *b = (uint8_t *)rec.s + binding_at;
			b[SPOOL_REC_HDR_SIZE + 8 + 4 + 1] = 0;
			spool_rec_reseal(b, rec.len - binding_at);
			CHECK_INTEQ(spool_rec_decode(b, rec.len - binding_at, true, &out, &need, &why),
				    SPOOL_REC_BAD);
			CHECK_STREQ(why, "NUL byte in string");
		}
		str_free(&rec);
		/* The empty binding (the default) is a valid record. */
		spool_rec_encode_binding(&rec, 0x1238, "", "");
		CHECK(spool_rec_decode(rec.s, rec.len, true, &out, &need, &why) > 0);
		CHECK(out.binding_len == 0 && out.binding_group_len == 0);
		str_free(&rec);
	}

	/* Segment names and headers. */
	{
		char name[SPOOL_SEG_NAME_SIZE];
		uint8_t hdr[SPOOL_SEG_HDR_SIZE];
		uint64_t seq = 0;
		uint32_t version = 0;
		const char *why;

		CHECK_STREQ(spool_seg_name(1, name), "seg-0000000000000001.log");
		CHECK(spool_seg_parse_name("seg-00000000000000ab.log", NULL, &seq) && seq == 0xab);
		CHECK(!spool_seg_parse_name("seg-00000000000000ab.log.corrupt", NULL, &seq));
		CHECK(spool_seg_parse_name("seg-00000000000000ac.log.corrupt", ".corrupt", &seq) &&
		      seq == 0xac);
		CHECK(!spool_seg_parse_name("seg-00000000000000AB.log", NULL, &seq));
		CHECK(!spool_seg_parse_name("seg-0001.log", NULL, &seq));
		CHECK(!spool_seg_parse_name("lock", NULL, &seq));
		spool_seg_header(42, hdr);
		CHECK_INTEQ(spool_seg_check_header(hdr, sizeof(hdr), &seq, &version, &why), 0);
		CHECK_INTEQ(seq, 42);
		CHECK_INTEQ(version, SPOOL_SEG_VERSION);
		hdr[17] ^= 1;
		CHECK_INTEQ(spool_seg_check_header(hdr, sizeof(hdr), &seq, &version, &why), -1);
	}
}

/*
 * test_codec_fuzz - random damage to a stream of records. The decoder
 * must stay inside its buffer (ASan watches), and every result must be
 * one of: a record, short, bad. Two flavours: raw damage (the CRC catches
 * it) and damage followed by a fresh CRC, so the payload decoder itself
 * sees hostile input. Also pure garbage.
 */
static void test_codec_fuzz(void)
{
	struct str good = STR_INIT;
	size_t nbad = 0, nshort = 0, nok = 0;

	srand(20261123);
	for (unsigned i = 0; i < 4; i++) {
		struct envelope *m = make_msg(i, 1 + i, 40 + i * 10);

		spool_rec_encode_message(&good, m);
		str_append(&good, m->body.s, m->body.len);
		envelope_free(m);
	}
	spool_rec_encode_rcpt_state(&good, 99, 1, ENVELOPE_RCPT_FAILED);
	spool_rec_encode_rcpt_retry(&good, 99, 1, 2, 3);
	spool_rec_encode_done(&good, 99);
	{
		struct envelope_failure f = {
			.rcpt = 1, .action = ENVELOPE_FAILURE_FAILED, .stage = 4, .code = 550,
			.when = 1795473001, .response = "550 5.1.1 no", .remote = "192.0.2.9",
		};

		spool_rec_encode_rcpt_failure(&good, 99, &f);
	}

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = good.len;
		uint8_t *buf = xmalloc(len);
		size_t off = 0;
		int flips = 1 + rand() % 4;
		bool reseal = iter % 2;

		memcpy(buf, good.s, len);
		for (int f = 0; f < flips; f++) {
			size_t at = (size_t)rand() % len;

			if (rand() % 2)
				buf[at] ^= (uint8_t)(1u << (rand() % 8));
			else
				buf[at] = (uint8_t)rand();
		}
		if (rand() % 3 == 0)
			len = (size_t)rand() % len;
		/* Walk the stream like replay does; a failure skips one byte. */
		while (off < len) {
			struct spool_rec out;
			uint64_t need;
			const char *why = NULL;
			uint8_t *copy;
			long long n;
			size_t avail = len - off;

			/* Exact-size copy so ASan sees any read past the end. */
			copy = xmalloc(avail);
			memcpy(copy, buf + off, avail);
			if (reseal)
				spool_rec_reseal(copy, avail);
			n = spool_rec_decode(copy, avail, true, &out, &need, &why);
			if (n > 0) {
				CHECK((size_t)n <= avail);
				if (out.type == SPOOL_REC_MESSAGE) {
					CHECK(out.msg != NULL);
					CHECK(out.body_offset + out.body_length == (uint64_t)n);
					envelope_free(out.msg);
				}
				nok++;
				off += (size_t)n;
			} else {
				CHECK(n == SPOOL_REC_SHORT || n == SPOOL_REC_BAD);
				CHECK(why != NULL);
				if (n == SPOOL_REC_SHORT)
					nshort++;
				else
					nbad++;
				off++;
			}
			free(copy);
		}
		free(buf);
	}
	/* Pure garbage, with and without a valid-looking header. */
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rand() % 200);
		uint8_t *buf = xmalloc(len ? len : 1);
		struct spool_rec out;
		uint64_t need;
		const char *why;
		long long n;

		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)rand();
		if (len >= SPOOL_REC_HDR_SIZE && iter % 2) {
			buf[0] = SPOOL_REC_MAGIC0;
			buf[1] = SPOOL_REC_MAGIC1;
			buf[2] = SPOOL_REC_MAGIC2;
			buf[3] = SPOOL_REC_MAGIC3;
			buf[4] = (uint8_t)(1 + rand() % 4);
			buf[5] = buf[6] = buf[7] = 0;
			buf[8] = (uint8_t)(len - SPOOL_REC_HDR_SIZE);
			buf[9] = buf[10] = buf[11] = 0;
			spool_rec_reseal(buf, len);
		}
		n = spool_rec_decode(buf, len, true, &out, &need, &why);
		if (n > 0 && out.type == SPOOL_REC_MESSAGE)
			envelope_free(out.msg);
		/* The payload decoder directly, on every type. */
		for (unsigned t = 0; t < 6; t++) {
			if (spool_rec_decode_payload(t, buf, len, true, &out, &why) == 0 &&
			    out.type == SPOOL_REC_MESSAGE)
				envelope_free(out.msg);
		}
		free(buf);
	}
	printf("codec fuzz: %zu records, %zu short, %zu bad\n", nok, nshort, nbad);
	CHECK(nbad > 0 && nok > 0);
	str_free(&good);
}

/* ==================== the spool thread ==================== */

/*
 * test_submit_reopen - messages go through the real thread, come back with
 * err 0 and a location, and after a restart come back again with their
 * bodies byte for byte; state changes survive too.
 */
static void test_submit_reopen(void)
{
	enum { N = 120 };
	char *dir = make_dir();
	struct envelope *sent[N];
	struct waiter w;
	struct recovered rec = { 0 };
	struct spool *sp;
	struct spool_stats st;
	struct str body = STR_INIT;
	impetus_id ids[N];
	size_t lens[N];

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	CHECK_INTEQ(spool_start(sp), 0);
	submit_n(sp, &w, 0, N, 0, sent);
	for (unsigned i = 0; i < N; i++) {
		struct result *r = find_result(&w, sent[i]->id);

		ids[i] = sent[i]->id;
		lens[i] = 100 + i * 37;
		CHECK(r != NULL);
		if (r == NULL)
			continue;
		CHECK_INTEQ(r->err, 0);
		CHECK_INTEQ(r->msg->loc.segment, 1);
		CHECK_INTEQ(r->msg->loc.length, lens[i]);
		CHECK(r->msg->loc.offset >= SPOOL_SEG_HDR_SIZE);
		CHECK_INTEQ(r->msg->body.len, 0);
		/* The body reads back while the spool runs, from any thread. */
		str_clear(&body);
		CHECK_INTEQ(spool_read_body(sp, &r->msg->loc, &body), 0);
		make_body(&r->msg->body, i, lens[i]);
		CHECK(body.len == lens[i] && memcmp(body.s, r->msg->body.s, lens[i]) == 0);
		str_free(&r->msg->body);
	}
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.records, N);
	CHECK_INTEQ(st.live_messages, N);
	CHECK_INTEQ(st.segments, 1);
	CHECK(st.batches >= 1 && st.batches <= N);
	printf("submit: %d messages in %" PRIu64 " group commits\n", N, st.batches);

	/* State changes: 0 delivered to all, 1 one rcpt failed + retry, 2 done. */
	for (uint32_t j = 0; j < 3; j++)
		spool_rcpt_state(sp, ids[0], j, ENVELOPE_RCPT_DELIVERED);
	spool_rcpt_state(sp, ids[1], 2, ENVELOPE_RCPT_FAILED);
	spool_rcpt_retry(sp, ids[1], 0, 3, 1795480000);
	spool_message_done(sp, ids[2]);
	spool_stop(sp);

	sp = open_spool(dir, 0, &rec, NULL);
	if (sp == NULL)
		goto out;
	CHECK_INTEQ(rec.n, N - 2);
	CHECK(rec_find(&rec, ids[0]) == NULL);	/* all recipients final */
	CHECK(rec_find(&rec, ids[2]) == NULL);	/* done */
	{
		struct envelope *m1 = rec_find(&rec, ids[1]);

		CHECK(m1 != NULL);
		if (m1) {
			CHECK_INTEQ(m1->rcpts[2].state, ENVELOPE_RCPT_FAILED);
			CHECK_INTEQ(m1->rcpts[0].state, ENVELOPE_RCPT_QUEUED);
			CHECK_INTEQ(m1->rcpts[0].retries, 3);
			CHECK_INTEQ(m1->rcpts[0].next_attempt, 1795480000);
		}
	}
	for (unsigned i = 0; i < N; i++) {
		struct envelope *m = rec_find(&rec, ids[i]);
		struct result *r = find_result(&w, ids[i]);

		if (i == 0 || i == 2)
			continue;
		CHECK(m != NULL);
		if (m == NULL || r == NULL)
			continue;
		if (i != 1)
			CHECK(same_envelope(m, r->msg));
		CHECK(m->loc.segment == r->msg->loc.segment && m->loc.offset == r->msg->loc.offset &&
		      m->loc.length == r->msg->loc.length);
		CHECK_INTEQ(m->body.len, 0);
		str_clear(&body);
		CHECK_INTEQ(spool_read_body(sp, &m->loc, &body), 0);
		make_body(&m->body, i, lens[i]);
		CHECK(body.len == lens[i] && memcmp(body.s, m->body.s, lens[i]) == 0);
	}
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.live_messages, N - 2);
	CHECK_INTEQ(st.segments, 2);	/* the old one (still live) and the new current one */
	/* Ids issued now are above everything recovered. */
	CHECK(id_next() > ids[N - 1]);

	/* Offline scan sees the same, also while the spool is open. */
	{
		struct recovered all = { 0 }, live = { 0 };
		struct str err = STR_INIT;

		CHECK_INTEQ(spool_scan(dir, false, on_recover, &live, &err), 0);
		CHECK_INTEQ(live.n, N - 2);
		CHECK_INTEQ(spool_scan(dir, true, on_recover, &all, &err), 0);
		CHECK_INTEQ(all.n, N);
		CHECK(spool_scan("/nonexistent/spool", false, on_recover, &all, &err) < 0);
		CHECK(strstr(str_cstr(&err), "/nonexistent/spool") != NULL);
		rec_free(&all);
		rec_free(&live);
		str_free(&err);
	}
	spool_stop(sp);
out:
	rec_free(&rec);
	waiter_fini(&w);
	str_free(&body);
	remove_dir(dir);
}

/* submitter threads for the concurrency test */
struct submitter {
	struct spool *sp;
	struct waiter *w;
	unsigned first, n;
};

static void *submit_thread(void *arg)
{
	struct submitter *s = arg;

	for (unsigned i = 0; i < s->n; i++)
		spool_submit(s->sp, make_msg(s->first + i, 1, 512), s->w->loop, on_done, s->w);
	return NULL;
}

/* test_concurrent - many threads submit at once; all land, in few commits. */
static void test_concurrent(void)
{
	enum { T = 4, PER = 100 };
	char *dir = make_dir();
	struct waiter w;
	struct spool *sp;
	struct submitter subs[T];
	pthread_t th[T];
	struct spool_stats st;
	struct recovered rec = { 0 };
	int errs = 0;

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	spool_start(sp);
	for (int t = 0; t < T; t++) {
		subs[t] = (struct submitter){ sp, &w, (unsigned)t * PER, PER };
		pthread_create(&th[t], NULL, submit_thread, &subs[t]);
	}
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	waiter_wait(&w, T * PER);
	for (size_t i = 0; i < w.n; i++)
		errs += w.res[i].err != 0;
	CHECK_INTEQ(errs, 0);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.records, T * PER);
	printf("concurrent: %d messages in %" PRIu64 " group commits\n", T * PER, st.batches);
	spool_stop(sp);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, T * PER);
	spool_stop(sp);
	rec_free(&rec);
	waiter_fini(&w);
	remove_dir(dir);
}

/*
 * test_big_batch - posts made before spool_start pile up and become one
 * batch of 3000 iovecs, more than IOV_MAX: the write is split, and every
 * body still reads back intact after a restart.
 */
static void test_big_batch(void)
{
	enum { N = 1500 };
	char *dir = make_dir();
	struct waiter w;
	struct spool *sp;
	struct spool_stats st;
	struct recovered rec = { 0 };
	struct str body = STR_INIT, want = STR_INIT;
	int bad = 0;

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	for (unsigned i = 0; i < N; i++)
		spool_submit(sp, make_msg(i, 1, 64 + i % 50), w.loop, on_done, &w);
	spool_start(sp);
	waiter_wait(&w, N);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.batches, 1);
	CHECK_INTEQ(st.records, N);
	spool_stop(sp);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, N);
	for (size_t k = 0; sp && k < rec.n; k++) {
		struct envelope *m = rec.v[k];
		unsigned i;

		/* Recovery hands messages over in write order, which was submission order. */
		i = (unsigned)k;
		str_clear(&body);
		make_body(&want, i, 64 + i % 50);
		if (spool_read_body(sp, &m->loc, &body) != 0 || body.len != want.len ||
		    memcmp(body.s, want.s, want.len) != 0)
			bad++;
	}
	CHECK_INTEQ(bad, 0);
	if (sp)
		spool_stop(sp);
	rec_free(&rec);
	str_free(&body);
	str_free(&want);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== liveness while a bounce is due ==================== */

/* wait_records - until the spool has committed n records in all (or 10 s passed). */
static void wait_records(struct spool *sp, uint64_t n)
{
	struct spool_stats st;

	for (int i = 0; i < 3000; i++) {
		spool_get_stats(sp, &st);
		if (st.records >= n)
			return;
		usleep(10000);
	}
	CHECK(st.records >= n);
}

/*
 * test_failed_stays_live - a message with a failed recipient stays live
 * (its segment is not reclaimed under the bounce job that reads its body)
 * until MESSAGE_DONE; one whose recipients were all delivered ends with
 * its last state record.
 */
static void test_failed_stays_live(void)
{
	char *dir = make_dir();
	struct envelope *sent[2];
	struct spool_stats st;
	struct waiter w;
	struct spool *sp;

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	CHECK_INTEQ(spool_start(sp), 0);
	submit_n(sp, &w, 0, 2, 200, sent);
	spool_rcpt_state(sp, sent[0]->id, 0, ENVELOPE_RCPT_FAILED);
	for (uint32_t j = 1; j < 3; j++)
		spool_rcpt_state(sp, sent[0]->id, j, ENVELOPE_RCPT_DELIVERED);
	for (uint32_t j = 0; j < 3; j++)
		spool_rcpt_state(sp, sent[1]->id, j, ENVELOPE_RCPT_DELIVERED);
	wait_records(sp, 8);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.live_messages, 1);	/* the one with a bounce due */
	spool_message_done(sp, sent[0]->id);
	wait_records(sp, 9);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.live_messages, 0);
	spool_stop(sp);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== failure details (RCPT_FAILURE) ==================== */

/* decode_one - decode rec (n bytes) as one whole record; the result or SPOOL_REC_BAD. */
static long long decode_one(const void *rec, size_t n, struct spool_rec *out, const char **why)
{
	uint64_t need;

	*why = NULL;
	return spool_rec_decode(rec, n, true, out, &need, why);
}

/*
 * test_codec_failure - an RCPT_FAILURE record round-trips every field;
 * over-long texts are cut at their bound, never inside a UTF-8
 * character; every proper prefix is SHORT; a bad action, a reply code
 * past 999, an over-long text, a NUL in a text and trailing bytes are
 * refused with their reason (resealed, so the payload decoder sees them).
 */
static void test_codec_failure(void)
{
	struct envelope_failure f = {
		.rcpt = 2, .action = ENVELOPE_FAILURE_FAILED, .stage = 5, .code = 550,
		.when = 1795473001, .response = "550 5.1.1 <x@bad.test>: no such user",
		.remote = "192.0.2.7",
	}, back;
	struct str rec = STR_INIT, big = STR_INIT;
	struct spool_rec out;
	const char *why;
	long long n;

	spool_rec_encode_rcpt_failure(&rec, 0x4242, &f);
	CHECK_INTEQ(rec.len, 48 + strlen(f.response) + strlen(f.remote));
	n = decode_one(rec.s, rec.len, &out, &why);
	CHECK_INTEQ(n, (long long)rec.len);
	CHECK_INTEQ(out.type, SPOOL_REC_RCPT_FAILURE);
	CHECK_STREQ(spool_rec_type_name(SPOOL_REC_RCPT_FAILURE), "RCPT_FAILURE");
	CHECK_INTEQ(out.id, 0x4242);
	spool_rec_failure(&out, &back);
	CHECK_INTEQ(back.rcpt, 2);
	CHECK_INTEQ(back.action, ENVELOPE_FAILURE_FAILED);
	CHECK_INTEQ(back.stage, 5);
	CHECK_INTEQ(back.code, 550);
	CHECK_INTEQ(back.when, 1795473001);
	CHECK_STREQ(back.response, f.response);
	CHECK_STREQ(back.remote, "192.0.2.7");
	free(back.response);
	free(back.remote);
	for (size_t cut = 0; cut < rec.len; cut++)
		CHECK_INTEQ(decode_one(rec.s, cut, &out, &why), SPOOL_REC_SHORT);

	/* Relayed, no remote, no code: remote comes back NULL, response "". */
	str_clear(&rec);
	f = (struct envelope_failure){ .rcpt = 0, .action = ENVELOPE_FAILURE_RELAYED };
	spool_rec_encode_rcpt_failure(&rec, 7, &f);
	CHECK(decode_one(rec.s, rec.len, &out, &why) > 0);
	spool_rec_failure(&out, &back);
	CHECK_INTEQ(back.action, ENVELOPE_FAILURE_RELAYED);
	CHECK(back.remote == NULL);
	CHECK_STREQ(back.response, "");
	free(back.response);

	/* Over-long: cut at the bound, backing off over a 3-byte UTF-8 character. */
	while (big.len < ENVELOPE_FAILURE_RESPONSE_MAX - 1)
		str_appendc(&big, 'a');
	str_appends(&big, "\xe2\x82\xac and more");	/* the euro sign straddles the bound */
	str_clear(&rec);
	f = (struct envelope_failure){ .rcpt = 1, .action = ENVELOPE_FAILURE_FAILED, .code = 1234,
				       .response = big.s, .remote = big.s };
	spool_rec_encode_rcpt_failure(&rec, 8, &f);
	CHECK(decode_one(rec.s, rec.len, &out, &why) > 0);
	CHECK_INTEQ(out.response_len, ENVELOPE_FAILURE_RESPONSE_MAX - 1);
	CHECK_INTEQ(out.remote_len, ENVELOPE_FAILURE_REMOTE_MAX);
	CHECK_INTEQ(out.code, 0);	/* no such reply code: stored as "none" */

	/* Bad payloads, each behind a valid CRC. */
	{
		struct { size_t at; uint8_t v; const char *why; } bad[] = {
			{ 12, 0, "bad failure action" },
			{ 12, 3, "bad failure action" },
			{ 15, 0xe8, "bad reply code" },	/* with byte 14: 0xe8xx > 999 */
			{ 28, 'x', "NUL byte in string" },	/* set below: a NUL in the text */
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint8_t *b;

			str_clear(&rec);
			f = (struct envelope_failure){ .rcpt = 1, .action = ENVELOPE_FAILURE_FAILED,
						       .code = 550, .response = "5xx", .remote = "" };
			spool_rec_encode_rcpt_failure(&rec, 9, &f);
			b = (uint8_t *)rec.s;
			if (i == 3)
				b[SPOOL_REC_HDR_SIZE + 28 + 1] = 0;
			else
				b[SPOOL_REC_HDR_SIZE + bad[i].at] = bad[i].v;
			spool_rec_reseal(b, rec.len);
			CHECK_INTEQ(decode_one(b, rec.len, &out, &why), SPOOL_REC_BAD);
			CHECK_STREQ(why, bad[i].why);
		}
	}
	/* A text length past the bound (the bytes are there): refused, not cut. */
	{
		struct str p = STR_INIT;
		uint8_t hdr[SPOOL_REC_HDR_SIZE] = { SPOOL_REC_MAGIC0, SPOOL_REC_MAGIC1,
						    SPOOL_REC_MAGIC2, SPOOL_REC_MAGIC3,
						    SPOOL_REC_RCPT_FAILURE };
		uint32_t len = ENVELOPE_FAILURE_REMOTE_MAX + 1;

		str_append(&p, hdr, sizeof(hdr));
		str_append(&p, "\x09\0\0\0\0\0\0\0" "\1\0\0\0" "\1\4" "\x26\x02"
			   "\0\0\0\0\0\0\0\0" "\0\0\0\0", 28);
		str_append(&p, &len, 4);	/* little-endian host assumed, as the CI is */
		while (p.len < SPOOL_REC_HDR_SIZE + 32 + len)
			str_appendc(&p, 'r');
		len = (uint32_t)(p.len - SPOOL_REC_HDR_SIZE);
		memcpy(p.s + 8, &len, 4);
		spool_rec_reseal((uint8_t *)p.s, p.len);
		CHECK_INTEQ(decode_one(p.s, p.len, &out, &why), SPOOL_REC_BAD);
		CHECK_STREQ(why, "remote MTA name too long");
		str_free(&p);
	}
	/* Trailing bytes after the last text. */
	str_clear(&rec);
	f = (struct envelope_failure){ .rcpt = 1, .action = ENVELOPE_FAILURE_FAILED };
	spool_rec_encode_rcpt_failure(&rec, 10, &f);
	str_appendc(&rec, 'z');
	{
		uint32_t len = (uint32_t)(rec.len - SPOOL_REC_HDR_SIZE);

		memcpy(rec.s + 8, &len, 4);
	}
	spool_rec_reseal((uint8_t *)rec.s, rec.len);
	CHECK_INTEQ(decode_one(rec.s, rec.len, &out, &why), SPOOL_REC_BAD);
	CHECK_STREQ(why, "trailing bytes in record");
	str_free(&rec);
	str_free(&big);
}

/* failure - an envelope_failure for the tests (static strings). */
static struct envelope_failure failure(uint32_t rcpt, uint8_t action, const char *response)
{
	return (struct envelope_failure){
		.rcpt = rcpt, .action = action, .stage = 5, .code = 550, .when = 1795470123,
		.response = (char *)response, .remote = (char *)"mx.bad.test",
	};
}

/* find_failure - the failure detail of recipient rcpt of m, or NULL. */
static const struct envelope_failure *find_failure(const struct envelope *m, uint32_t rcpt)
{
	for (size_t i = 0; m && i < m->nfailures; i++)
		if (m->failures[i].rcpt == rcpt)
			return &m->failures[i];
	return NULL;
}

/*
 * test_failure_recovered - failure details come back with the message
 * after a restart: on a message with a recipient still queued; on one
 * whose recipients are all final and has no MESSAGE_DONE (its report is
 * owed: handed over, and live); a later detail for the same recipient
 * replaces the earlier. Not handed over: the same once its MESSAGE_DONE
 * is written; one all final with a failed recipient but no detail (a
 * quiet fail, or a spool from before RCPT_FAILURE); one whose only detail
 * is for a recipient the state record never made final (lost in a crash:
 * it is tried again, there is no report yet).
 */
static void test_failure_recovered(void)
{
	char *dir = make_dir();
	struct envelope *sent[4];
	struct envelope_failure f;
	struct recovered rec = { 0 };
	struct spool_stats st;
	const struct envelope_failure *got;
	struct envelope *m;
	struct waiter w;
	struct spool *sp;

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	CHECK_INTEQ(spool_start(sp), 0);
	submit_n(sp, &w, 0, 4, 200, sent);
	/* 0: one failed (detail written twice, the second wins), one queued, one delivered */
	f = failure(0, ENVELOPE_FAILURE_FAILED, "550 first");
	spool_rcpt_failure(sp, sent[0]->id, &f);
	f = failure(0, ENVELOPE_FAILURE_FAILED, "550 5.1.1 second");
	spool_rcpt_failure(sp, sent[0]->id, &f);
	spool_rcpt_state(sp, sent[0]->id, 0, ENVELOPE_RCPT_FAILED);
	spool_rcpt_state(sp, sent[0]->id, 2, ENVELOPE_RCPT_DELIVERED);
	/* 1: all final, one relayed with its detail, no MESSAGE_DONE */
	f = failure(1, ENVELOPE_FAILURE_RELAYED, "250 ok");
	spool_rcpt_failure(sp, sent[1]->id, &f);
	for (uint32_t j = 0; j < 3; j++)
		spool_rcpt_state(sp, sent[1]->id, j, ENVELOPE_RCPT_DELIVERED);
	/* 2: all final, a failed recipient without a detail */
	spool_rcpt_state(sp, sent[2]->id, 0, ENVELOPE_RCPT_FAILED);
	spool_rcpt_state(sp, sent[2]->id, 1, ENVELOPE_RCPT_DELIVERED);
	spool_rcpt_state(sp, sent[2]->id, 2, ENVELOPE_RCPT_DELIVERED);
	/* 3: a detail whose state record never came; the others delivered */
	f = failure(0, ENVELOPE_FAILURE_FAILED, "550 lost state");
	spool_rcpt_failure(sp, sent[3]->id, &f);
	spool_rcpt_state(sp, sent[3]->id, 1, ENVELOPE_RCPT_DELIVERED);
	spool_rcpt_state(sp, sent[3]->id, 2, ENVELOPE_RCPT_DELIVERED);
	wait_records(sp, 4 + 14);
	spool_get_stats(sp, &st);
	/* 0 (queued), 1 (its report is owed), 2 (a failed recipient), 3 (queued) */
	CHECK_INTEQ(st.live_messages, 4);
	spool_stop(sp);

	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 3);
	m = rec_find(&rec, sent[0]->id);
	got = find_failure(m, 0);
	CHECK(got != NULL && m->nfailures == 1);
	if (got) {
		CHECK_INTEQ(got->action, ENVELOPE_FAILURE_FAILED);
		CHECK_STREQ(got->response, "550 5.1.1 second");
		CHECK_STREQ(got->remote, "mx.bad.test");
		CHECK_INTEQ(got->code, 550);
		CHECK_INTEQ(got->stage, 5);
		CHECK_INTEQ(got->when, 1795470123);
		CHECK(envelope_failure_current(m, got));
		CHECK(!envelope_report_due(m));		/* recipient 1 still queued */
	}
	m = rec_find(&rec, sent[1]->id);
	CHECK(m != NULL && envelope_report_due(m));
	got = find_failure(m, 1);
	CHECK(got != NULL && got->action == ENVELOPE_FAILURE_RELAYED);
	CHECK(rec_find(&rec, sent[2]->id) == NULL);
	m = rec_find(&rec, sent[3]->id);
	CHECK(m != NULL && m->rcpts[0].state == ENVELOPE_RCPT_QUEUED);
	CHECK(m && m->nfailures == 1 && !envelope_failure_current(m, &m->failures[0]));
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.live_messages, 3);
	/* The owed report is sent: MESSAGE_DONE, and it is gone after the next restart. */
	CHECK_INTEQ(spool_start(sp), 0);
	spool_message_done(sp, sent[1]->id);
	spool_stop(sp);
	rec_free(&rec);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 2);
	CHECK(rec_find(&rec, sent[1]->id) == NULL);
	spool_stop(sp);
	rec_free(&rec);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== state records earn no sync ==================== */

/*
 * test_state_rides - delivery-state records alone do not make a group
 * commit: posted before a message, they go to disk in the message's batch;
 * posted alone, the flush timer commits them, not earlier than its bound.
 * Either way they are durable and recovered.
 */
static void test_state_rides(void)
{
	char *dir = make_dir();
	struct spool_options o = { .state_flush_ms = 300 };
	struct envelope *sent[2];
	struct recovered rec = { 0 };
	struct spool_stats st0, st;
	struct str err = STR_INIT;
	struct waiter w;
	struct spool *sp;
	int64_t t0, waited;

	waiter_init(&w);
	sp = spool_open(dir, &o, NULL, NULL, &err);
	CHECK(sp != NULL);
	if (sp == NULL)
		goto out;
	CHECK_INTEQ(spool_start(sp), 0);
	submit_n(sp, &w, 0, 1, 200, &sent[0]);
	spool_get_stats(sp, &st0);
	/* A state record, time for the spool thread to see it alone, then a message. */
	spool_rcpt_state(sp, sent[0]->id, 0, ENVELOPE_RCPT_DELIVERED);
	usleep(50000);
	submit_n(sp, &w, 1, 1, 200, &sent[1]);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.records, st0.records + 2);
	CHECK_INTEQ(st.batches, st0.batches + 1);	/* one sync for both */

	/* Alone: the timer commits it, after its bound. */
	t0 = histo_now_us();
	spool_rcpt_state(sp, sent[0]->id, 1, ENVELOPE_RCPT_DELIVERED);
	wait_records(sp, st.records + 1);
	waited = histo_now_us() - t0;
	CHECK(waited >= 290000);
	spool_get_stats(sp, &st0);
	CHECK_INTEQ(st0.batches, st.batches + 1);

	/* Kept across a stop: the stop commits what waits, and recovery applies it. */
	spool_rcpt_state(sp, sent[0]->id, 2, ENVELOPE_RCPT_DELIVERED);
	spool_stop(sp);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 1);
	CHECK(rec_find(&rec, sent[0]->id) == NULL);	/* all three recipients delivered */
	CHECK(rec_find(&rec, sent[1]->id) != NULL);
	spool_stop(sp);
out:
	rec_free(&rec);
	str_free(&err);
	waiter_fini(&w);
	remove_dir(dir);
}

/*
 * test_binding_commits - a BINDING record (a module's rebind) does not
 * wait for a message batch: with the flush timer a minute away it is
 * committed at once, and the state record pending before it rides along.
 */
static void test_binding_commits(void)
{
	char *dir = make_dir();
	struct spool_options o = { .state_flush_ms = 60000 };
	struct envelope *sent[1];
	struct recovered rec = { 0 };
	struct spool_stats st;
	struct str err = STR_INIT;
	struct waiter w;
	struct spool *sp;

	waiter_init(&w);
	sp = spool_open(dir, &o, NULL, NULL, &err);
	CHECK(sp != NULL);
	if (sp == NULL)
		goto out;
	CHECK_INTEQ(spool_start(sp), 0);
	submit_n(sp, &w, 0, 1, 200, sent);
	spool_get_stats(sp, &st);
	spool_rcpt_retry(sp, sent[0]->id, 1, 2, 1795480000);
	spool_binding(sp, sent[0]->id, "moved", "grp");
	wait_records(sp, st.records + 2);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.records, 3);
	spool_stop(sp);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 1);
	if (rec.n == 1) {
		CHECK(str_eq_null(rec.v[0]->binding, "moved"));
		CHECK_INTEQ(rec.v[0]->rcpts[1].retries, 2);
	}
	spool_stop(sp);
out:
	rec_free(&rec);
	str_free(&err);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== bounded batch wait ==================== */

/*
 * test_batch_wait - with messages arriving often, a lone message waits
 * (up to batch_wait_us) for a second one to share its fdatasync, and the
 * second ends the wait: two messages, one commit. A lone message with
 * nobody following is still answered, once the wait ran out.
 */
static void test_batch_wait(void)
{
	enum { PRIME = 60 };
	char *dir = make_dir();
	struct spool_options o = { .batch_wait_us = 50000 };
	struct envelope *sent[PRIME], *m[2];
	struct spool_stats st0, st;
	struct str err = STR_INIT;
	struct waiter w;
	struct spool *sp;
	int64_t t0;

	waiter_init(&w);
	sp = spool_open(dir, &o, NULL, NULL, &err);
	CHECK(sp != NULL);
	if (sp == NULL)
		goto out;
	CHECK_INTEQ(spool_start(sp), 0);
	/* Many at once: the arrival average drops far below the wait. */
	submit_n(sp, &w, 0, PRIME, 300, sent);
	spool_get_stats(sp, &st0);

	/* One, then another 2 ms later: both ride one commit. */
	m[0] = make_msg(100, 1, 300);
	m[1] = make_msg(101, 1, 300);
	spool_submit(sp, m[0], w.loop, on_done, &w);
	usleep(2000);
	spool_submit(sp, m[1], w.loop, on_done, &w);
	waiter_wait(&w, PRIME + 2);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.records, st0.records + 2);
	CHECK_INTEQ(st.batches, st0.batches + 1);
	CHECK(find_result(&w, m[0]->id) && find_result(&w, m[0]->id)->err == 0);

	/* Alone: answered after the wait ran out, durable like any other. */
	t0 = histo_now_us();
	submit_n(sp, &w, 102, 1, 300, m);
	CHECK(histo_now_us() - t0 >= 45000);
	spool_get_stats(sp, &st0);
	CHECK_INTEQ(st0.batches, st.batches + 1);
	CHECK_INTEQ(st0.records, st.records + 1);
	spool_stop(sp);
out:
	str_free(&err);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== body parts in a file ==================== */

/*
 * test_file_body - a message whose bytes are partly in memory and partly in
 * a file (as a large inbound message streams) is stored as one record: the
 * CRC combines both, it reads back whole, and it survives a reopen (which
 * checks every CRC). A second message with only a file part and one that
 * needs the bounce-buffer path (file offset not 0) ride in the same batch.
 */
static void test_file_body(void)
{
	enum { HEAD = 5000, TAIL = 3 << 20, SKIP = 12345 };	/* SKIP: junk at the file's start */
	char *dir = make_dir();
	struct waiter w;
	struct recovered rec = { 0 };
	struct str whole = STR_INIT, back = STR_INIT;
	struct spool *sp;
	impetus_id ids[3];

	waiter_init(&w);
	sp = open_spool(dir, 0, NULL, NULL);
	if (sp == NULL)
		return;
	CHECK_INTEQ(spool_start(sp), 0);
	make_body(&whole, 7, HEAD + TAIL + SKIP);
	for (int k = 0; k < 3; k++) {
		struct envelope *m = make_msg(700 + k, 2, 1);
		int fd = spool_tmpfile(sp);
		size_t head = k == 1 ? 0 : HEAD, skip = k == 2 ? SKIP : 0;

		CHECK(fd >= 0);
		str_clear(&m->body);
		str_append(&m->body, whole.s, head);
		/* k == 2: the file starts with bytes that are not part of the body. */
		CHECK_INTEQ(pwrite(fd, whole.s + HEAD + TAIL, skip, 0), skip);
		CHECK_INTEQ(pwrite(fd, whole.s + head, TAIL, (off_t)skip), TAIL);
		m->file = (struct envelope_body_file){ .fd = fd, .owned = true, .off = skip,
						    .len = TAIL,
						    .crc = crc32c(0, whole.s + head, TAIL) };
		ids[k] = m->id;
		spool_submit(sp, m, w.loop, on_done, &w);
	}
	waiter_wait(&w, 3);
	for (int k = 0; k < 3; k++) {
		struct result *r = find_result(&w, ids[k]);
		size_t head = k == 1 ? 0 : HEAD;

		CHECK(r != NULL && r->err == 0);
		if (r == NULL)
			continue;
		CHECK_INTEQ(r->msg->loc.length, head + TAIL);
		CHECK_INTEQ(r->msg->file.fd, -1);	/* copied and closed */
		str_clear(&back);
		CHECK_INTEQ(spool_read_body(sp, &r->msg->loc, &back), 0);
		CHECK(back.len == head + TAIL && memcmp(back.s, whole.s, back.len) == 0);
	}
	spool_stop(sp);

	/* Recovery verifies each record's CRC: all three come back. */
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 3);
	for (int k = 0; k < 3; k++) {
		struct envelope *m = rec_find(&rec, ids[k]);

		CHECK(m != NULL);
		if (m)
			CHECK_INTEQ(m->loc.length, (k == 1 ? 0 : HEAD) + TAIL);
	}
	if (sp)
		spool_stop(sp);
	rec_free(&rec);
	waiter_fini(&w);
	str_free(&whole);
	str_free(&back);
	remove_dir(dir);
}

/* ==================== damage ==================== */

/*
 * damage_case - write 5 messages into one segment, stop, let edit() damage
 * the file, reopen. Returns the recovered set and reports.
 */
struct damage {
	char *dir;
	char path[512];
	struct envelope_loc loc[5];
	impetus_id id[5];
	struct recovered rec;
	struct reports rep;
	struct spool *sp;
};

static void damage_setup(struct damage *d, uint64_t segsize)
{
	struct waiter w;
	struct envelope *sent[5];
	struct spool *sp;

	memset(d, 0, sizeof(*d));
	d->dir = make_dir();
	waiter_init(&w);
	sp = open_spool(d->dir, segsize, NULL, NULL);
	spool_start(sp);
	submit_seq(sp, &w, 0, 5, 300, sent);
	for (int i = 0; i < 5; i++) {
		struct result *r = find_result(&w, sent[i]->id);

		d->id[i] = sent[i]->id;
		if (r)
			d->loc[i] = r->msg->loc;
	}
	spool_stop(sp);
	waiter_fini(&w);
	seg_path(d->path, sizeof(d->path), d->dir, d->loc[4].segment);
}

static void damage_reopen(struct damage *d)
{
	d->sp = open_spool(d->dir, 0, &d->rec, &d->rep);
}

static void damage_fini(struct damage *d)
{
	if (d->sp)
		spool_stop(d->sp);
	rec_free(&d->rec);
	str_free(&d->rep.all);
	remove_dir(d->dir);
}

/* The record of message i starts where message i-1's body ends. */
static uint64_t rec_start(struct damage *d, int i)
{
	return d->loc[i - 1].offset + d->loc[i - 1].length;
}

static void check_first_four(struct damage *d)
{
	struct str body = STR_INIT, want = STR_INIT;

	for (int i = 0; i < 4; i++) {
		struct envelope *m = rec_find(&d->rec, d->id[i]);

		CHECK(m != NULL);
		if (m == NULL || d->sp == NULL)
			continue;
		str_clear(&body);
		CHECK_INTEQ(spool_read_body(d->sp, &m->loc, &body), 0);
		make_body(&want, (unsigned)i, 300);
		CHECK(body.len == want.len && memcmp(body.s, want.s, want.len) == 0);
	}
	str_free(&body);
	str_free(&want);
}

static void test_torn_tail(void)
{
	struct damage d;
	uint64_t cut;

	damage_setup(&d, 0);
	cut = d.loc[4].offset + d.loc[4].length / 2;
	CHECK_INTEQ(truncate(d.path, (off_t)cut), 0);
	damage_reopen(&d);
	CHECK_INTEQ(d.rec.n, 4);
	CHECK(rec_find(&d.rec, d.id[4]) == NULL);
	check_first_four(&d);
	CHECK_INTEQ(file_size(d.path), (off_t)rec_start(&d, 4));
	CHECK(strstr(str_cstr(&d.rep.all), "torn tail") != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "seg-0000000000000001.log") != NULL);
	damage_fini(&d);
}

static void test_flipped_last(void)
{
	struct damage d;

	damage_setup(&d, 0);
	flip_bit(d.path, d.loc[4].offset + 10, 3);
	damage_reopen(&d);
	CHECK_INTEQ(d.rec.n, 4);
	CHECK(rec_find(&d.rec, d.id[4]) == NULL);
	check_first_four(&d);
	CHECK_INTEQ(file_size(d.path), (off_t)rec_start(&d, 4));
	CHECK(strstr(str_cstr(&d.rep.all), "bad record crc") != NULL);
	damage_fini(&d);
}

/* test_flipped_middle - damage inside an older segment: reported, rest kept. */
static void test_flipped_middle(void)
{
	struct damage d;
	char path1[512];
	off_t size1;
	uint64_t bad;

	/* 300-byte bodies, ~400-byte records, 900-byte segments: 2-3 per segment. */
	damage_setup(&d, 900);
	CHECK(d.loc[4].segment > d.loc[0].segment);
	CHECK(d.loc[1].segment == d.loc[0].segment);
	seg_path(path1, sizeof(path1), d.dir, d.loc[0].segment);
	size1 = file_size(path1);
	/* Damage message 0's header (its length field), then reopen. */
	bad = SPOOL_SEG_HDR_SIZE;
	flip_bit(path1, bad + 9, 6);
	damage_reopen(&d);
	CHECK_INTEQ(d.rec.n, 4);
	CHECK(rec_find(&d.rec, d.id[0]) == NULL);
	for (int i = 1; i < 5; i++)
		CHECK(rec_find(&d.rec, d.id[i]) != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "corrupt record") != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "seg-0000000000000001.log offset=32") != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "skipped") != NULL);
	CHECK_INTEQ(file_size(path1), size1);	/* never truncated */
	if (d.rep.n)
		printf("report (expected): %s", str_cstr(&d.rep.all));
	damage_fini(&d);
}

/* test_flipped_body_middle - a body bit in the middle of the newest segment. */
static void test_flipped_body_middle(void)
{
	struct damage d;

	damage_setup(&d, 0);
	flip_bit(d.path, d.loc[2].offset + 100, 0);
	damage_reopen(&d);
	CHECK_INTEQ(d.rec.n, 4);
	CHECK(rec_find(&d.rec, d.id[2]) == NULL);
	CHECK(rec_find(&d.rec, d.id[3]) != NULL && rec_find(&d.rec, d.id[4]) != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "corrupt record (bad record crc)") != NULL);
	CHECK(strstr(str_cstr(&d.rep.all), "torn tail") == NULL);
	damage_fini(&d);
}

static void test_empty_segments(void)
{
	char *dir = make_dir();
	char p1[512], p2[512], p3[512];
	uint8_t hdr[SPOOL_SEG_HDR_SIZE];
	struct recovered rec = { 0 };
	struct reports rep = { STR_INIT, 0 };
	struct spool *sp;
	uint64_t last;
	FILE *f;

	seg_path(p1, sizeof(p1), dir, 5);
	seg_path(p2, sizeof(p2), dir, 6);
	seg_path(p3, sizeof(p3), dir, 7);
	f = fopen(p1, "w");
	fclose(f);
	spool_seg_header(6, hdr);
	f = fopen(p2, "w");
	fwrite(hdr, 1, sizeof(hdr), f);
	fclose(f);
	f = fopen(p3, "w");
	fwrite(hdr, 1, 10, f);		/* torn while being created */
	fclose(f);
	sp = open_spool(dir, 0, &rec, &rep);
	CHECK_INTEQ(rec.n, 0);
	CHECK(access(p1, F_OK) != 0);
	CHECK(access(p2, F_OK) != 0);
	CHECK(access(p3, F_OK) != 0);
	CHECK_INTEQ(seg_files(dir, &last), 1);	/* just the new current one */
	CHECK_INTEQ(last, 8);
	spool_stop(sp);
	str_free(&rep.all);
	remove_dir(dir);
}

/* ==================== preallocated segments ==================== */

#define PREALLOC_SEG (1u << 20)

/* write_zeros - n zero bytes at off of path: written (true) or a hole left by a longer size. */
static void write_zeros(const char *path, uint64_t off, uint64_t n, bool written)
{
	static const char z[4096];
	int fd = open(path, O_RDWR);

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	if (written) {
		for (uint64_t at = off; at < off + n; at += sizeof(z)) {
			size_t k = off + n - at < sizeof(z) ? (size_t)(off + n - at) : sizeof(z);

			if (pwrite(fd, z, k, (off_t)at) != (ssize_t)k) {
				perror(path);
				exit(2);
			}
		}
	}
	if ((uint64_t)file_size(path) < off + n && ftruncate(fd, (off_t)(off + n)) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/*
 * test_prealloc_running - while the spool runs its segment is as long as
 * Spool_Segment_Size (the records are written in place), the counters and
 * an offline scan see only the records, and a scan says nothing about the
 * zeros; a clean stop gives the unwritten tail back.
 */
static void test_prealloc_running(void)
{
	char *dir = make_dir();
	struct envelope *sent[3];
	struct recovered live = { 0 };
	struct reports rep = { STR_INIT, 0 };
	struct spool_stats st;
	struct str err = STR_INIT;
	struct waiter w;
	struct spool *sp;
	char path[512];
	uint64_t end;

	waiter_init(&w);
	sp = open_spool(dir, PREALLOC_SEG, NULL, NULL);
	if (sp == NULL)
		goto out;
	spool_start(sp);
	submit_seq(sp, &w, 0, 3, 3000, sent);
	seg_path(path, sizeof(path), dir, sent[2]->loc.segment);
	end = sent[2]->loc.offset + sent[2]->loc.length;
	CHECK_INTEQ(file_size(path), PREALLOC_SEG);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.bytes, end);
	CHECK_INTEQ(spool_scan_ex(dir, false, on_recover, &live, on_report, &rep, &err), 0);
	CHECK_INTEQ(live.n, 3);
	CHECK_INTEQ(rep.n, 0);
	if (rep.n)
		printf("unexpected: %s", str_cstr(&rep.all));
	spool_stop(sp);
	CHECK_INTEQ(file_size(path), (off_t)end);
out:
	rec_free(&live);
	str_free(&rep.all);
	str_free(&err);
	waiter_fini(&w);
	remove_dir(dir);
}

/*
 * test_zero_tail - a segment that ends in zeros (the preallocated rest, as
 * a crash leaves it), written or a hole: recovery takes the zeros as the
 * end of the data, reports nothing, recovers every message and gives the
 * space back.
 */
static void test_zero_tail(void)
{
	for (int written = 0; written < 2; written++) {
		struct damage d;
		uint64_t end;

		damage_setup(&d, 0);
		end = rec_start(&d, 4) + (d.loc[4].offset + d.loc[4].length - rec_start(&d, 4));
		CHECK_INTEQ(file_size(d.path), (off_t)end);
		write_zeros(d.path, end, PREALLOC_SEG, written);
		damage_reopen(&d);
		CHECK_INTEQ(d.rec.n, 5);
		check_first_four(&d);
		CHECK_INTEQ(d.rep.n, 0);
		if (d.rep.n)
			printf("unexpected: %s", str_cstr(&d.rep.all));
		CHECK_INTEQ(file_size(d.path), (off_t)end);
		damage_fini(&d);
	}
}

/*
 * test_torn_then_zeros - the last record was being written when the
 * machine died: its first bytes are there, the rest of the preallocated
 * file is zeros. That is a torn tail (reported, cut), counted up to the
 * last non-zero byte; the four before it are recovered. An offline scan
 * before the repair says nothing (it looks like a record being written).
 */
static void test_torn_then_zeros(void)
{
	struct damage d;
	struct recovered live = { 0 };
	struct reports scan = { STR_INIT, 0 };
	struct str err = STR_INIT, want = STR_INIT;
	uint64_t start, half;

	damage_setup(&d, 0);
	start = rec_start(&d, 4);
	half = d.loc[4].offset + 100;	/* header, envelope and 100 body bytes survive */
	write_zeros(d.path, half, PREALLOC_SEG, true);
	CHECK_INTEQ(spool_scan_ex(d.dir, false, on_recover, &live, on_report, &scan, &err), 0);
	CHECK_INTEQ(live.n, 4);
	CHECK_INTEQ(scan.n, 0);
	damage_reopen(&d);
	CHECK_INTEQ(d.rec.n, 4);
	CHECK(rec_find(&d.rec, d.id[4]) == NULL);
	check_first_four(&d);
	CHECK_INTEQ(file_size(d.path), (off_t)start);
	CHECK(strstr(str_cstr(&d.rep.all), "torn tail") != NULL);
	/* The body bytes that survived end in a letter: the count stops there. */
	str_appendf(&want, "truncated %" PRIu64 " unacknowledged bytes", half - start);
	CHECK(strstr(str_cstr(&d.rep.all), str_cstr(&want)) != NULL);
	if (strstr(str_cstr(&d.rep.all), str_cstr(&want)) == NULL)
		printf("report: %s", str_cstr(&d.rep.all));
	rec_free(&live);
	str_free(&scan.all);
	str_free(&err);
	str_free(&want);
	damage_fini(&d);
}

/*
 * test_prealloc_unwritten_header - a preallocated segment whose header
 * never reached the disk (all zeros) is a segment created and never
 * written to: removed without a report, like an empty file.
 */
static void test_prealloc_unwritten_header(void)
{
	char *dir = make_dir();
	struct recovered rec = { 0 };
	struct reports rep = { STR_INIT, 0 };
	struct spool *sp;
	char path[512];
	uint64_t last;

	seg_path(path, sizeof(path), dir, 3);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	write_zeros(path, 0, PREALLOC_SEG, false);
	sp = open_spool(dir, 0, &rec, &rep);
	CHECK_INTEQ(rec.n, 0);
	CHECK(access(path, F_OK) != 0);
	CHECK_INTEQ(rep.n, 0);
	CHECK_INTEQ(seg_files(dir, &last), 1);
	CHECK_INTEQ(last, 4);
	spool_stop(sp);
	str_free(&rep.all);
	remove_dir(dir);
}

/*
 * crash_child - in a forked child: a preallocated spool takes n messages
 * (answered: durable) and a delivery state for the first, then the child
 * dies without spool_stop, leaving the zeros of the preallocated tail.
 * The ids go to the pipe.
 */
static void crash_child(const char *dir, unsigned first, unsigned n, int out)
{
	struct envelope *sent[8];
	impetus_id ids[8];
	struct waiter w;
	struct spool *sp;

	waiter_init(&w);
	sp = open_spool(dir, PREALLOC_SEG, NULL, NULL);
	if (sp == NULL)
		_exit(2);
	spool_start(sp);
	submit_n(sp, &w, first, n, 2500, sent);
	for (unsigned i = 0; i < n; i++)
		ids[i] = sent[i]->id;
	/* Rides with the next message, which is never written: at-least-once. */
	spool_rcpt_state(sp, ids[0], 0, ENVELOPE_RCPT_DELIVERED);
	if (write(out, ids, n * sizeof(ids[0])) != (ssize_t)(n * sizeof(ids[0])))
		_exit(3);
	_exit(0);
}

/* crash_run - crash_child in a child; its ids in ids[]. */
static void crash_run(const char *dir, unsigned first, unsigned n, impetus_id *ids)
{
	int pfd[2], status = 0;
	pid_t pid;

	CHECK_INTEQ(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		crash_child(dir, first, n, pfd[1]);
	}
	close(pfd[1]);
	CHECK(read(pfd[0], ids, n * sizeof(*ids)) == (ssize_t)(n * sizeof(*ids)));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * test_crash_prealloc - a process dies with a preallocated, partly
 * written segment; recovery finds every answered message, intact; the
 * next run writes a new segment, which a second crash leaves preallocated
 * too; a third start reads both, and a clean stop leaves no zeros.
 */
static void test_crash_prealloc(void)
{
	char *dir = make_dir();
	impetus_id a[5], b[5];
	struct recovered rec = { 0 };
	struct reports rep = { STR_INIT, 0 };
	struct str body = STR_INIT, want = STR_INIT;
	struct spool *sp;
	char path[512];
	uint64_t last;

	crash_run(dir, 0, 5, a);
	seg_path(path, sizeof(path), dir, 1);
	CHECK_INTEQ(file_size(path), PREALLOC_SEG);
	crash_run(dir, 10, 5, b);	/* recovers the first, then dies again */
	CHECK(file_size(path) < 20000);	/* the first segment was cut to its records */
	seg_path(path, sizeof(path), dir, 2);
	CHECK_INTEQ(file_size(path), PREALLOC_SEG);

	sp = open_spool(dir, PREALLOC_SEG, &rec, &rep);
	if (sp == NULL)
		goto out;
	CHECK_INTEQ(rec.n, 10);
	CHECK_INTEQ(rep.n, 0);
	if (rep.n)
		printf("unexpected: %s", str_cstr(&rep.all));
	for (unsigned i = 0; i < 10; i++) {
		impetus_id id = i < 5 ? a[i] : b[i - 5];
		struct envelope *m = rec_find(&rec, id);

		CHECK(m != NULL);
		if (m == NULL)
			continue;
		str_clear(&body);
		CHECK_INTEQ(spool_read_body(sp, &m->loc, &body), 0);
		make_body(&want, i < 5 ? i : 10 + i - 5, 2500);
		CHECK(body.len == want.len && memcmp(body.s, want.s, want.len) == 0);
	}
	CHECK_INTEQ(file_size(path), (off_t)(rec_find(&rec, b[4]) ?
		    rec_find(&rec, b[4])->loc.offset + 2500 : 0));
	spool_stop(sp);
	CHECK_INTEQ(seg_files(dir, &last), 2);
	seg_path(path, sizeof(path), dir, last);
	CHECK(file_size(path) < 20000);
out:
	rec_free(&rec);
	str_free(&rep.all);
	str_free(&body);
	str_free(&want);
	remove_dir(dir);
}

/*
 * test_prealloc_write_error - a write error in a preallocated segment (a
 * batch that runs past the preallocation into RLIMIT_FSIZE): the batch is
 * refused, the segment is cut back to its durable length, and the next
 * batch goes on from there by plain appends. In a child, for the limit.
 */
static int prealloc_write_error_child(const char *dir, impetus_id *ids)
{
	enum { SEG = 262144 };
	struct envelope *m[1];
	struct waiter w;
	struct spool *sp;
	struct rlimit rl;
	struct result *r;
	char path[512];
	uint64_t durable;
	int failures_before = check_failures;

	signal(SIGXFSZ, SIG_IGN);
	waiter_init(&w);
	sp = open_spool(dir, SEG, NULL, NULL);
	spool_start(sp);
	submit_n(sp, &w, 0, 1, 2000, m);
	ids[0] = m[0]->id;
	seg_path(path, sizeof(path), dir, m[0]->loc.segment);
	durable = m[0]->loc.offset + m[0]->loc.length;
	CHECK_INTEQ(file_size(path), SEG);
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = SEG;
	CHECK_INTEQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	submit_n(sp, &w, 1, 1, SEG, m);		/* past the preallocation: EFBIG */
	ids[1] = m[0]->id;
	r = find_result(&w, ids[1]);
	CHECK(r != NULL && r->err == -EFBIG);
	CHECK_INTEQ(file_size(path), (off_t)durable);
	rl.rlim_cur = rl.rlim_max;
	CHECK_INTEQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	submit_n(sp, &w, 2, 1, 2000, m);
	ids[2] = m[0]->id;
	r = find_result(&w, ids[2]);
	CHECK(r != NULL && r->err == 0);
	CHECK(r != NULL && r->msg->loc.segment == 1 && r->msg->loc.offset > durable &&
	      r->msg->loc.offset < durable + 1000);
	spool_stop(sp);
	waiter_fini(&w);
	return check_failures - failures_before;
}

static void test_prealloc_write_error(void)
{
	char *dir = make_dir();
	impetus_id ids[3];
	struct recovered rec = { 0 };
	struct spool *sp;
	int pfd[2], status = 0;
	pid_t pid;

	CHECK_INTEQ(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int fails;

		close(pfd[0]);
		fails = prealloc_write_error_child(dir, ids);
		if (write(pfd[1], ids, sizeof(ids)) != sizeof(ids))
			fails++;
		_exit(fails ? 1 : 0);
	}
	close(pfd[1]);
	CHECK(read(pfd[0], ids, sizeof(ids)) == sizeof(ids));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sp = open_spool(dir, 0, &rec, NULL);
	CHECK_INTEQ(rec.n, 2);
	CHECK(rec_find(&rec, ids[0]) != NULL && rec_find(&rec, ids[2]) != NULL);
	CHECK(rec_find(&rec, ids[1]) == NULL);
	spool_stop(sp);
	rec_free(&rec);
	remove_dir(dir);
}

/* ==================== rotation and reclaiming ==================== */

/*
 * wait_segments - rotation and reclaiming run after the answers of a
 * commit: poll until the oldest segment file is oldest and the counters
 * agree with the directory on a count between lo and hi (2 s at most;
 * under sanitizers every fsync is slow). Returns the number of files.
 */
static int wait_segments(struct spool *sp, const char *dir, uint64_t oldest, uint64_t lo,
			 uint64_t hi, struct spool_stats *st)
{
	int n = 0;

	for (int tries = 0; tries < 3000; tries++) {
		uint64_t first;

		spool_get_stats(sp, st);
		n = seg_files_range(dir, &first, NULL);
		if ((uint64_t)n == st->segments && st->segments >= lo && st->segments <= hi &&
		    first == oldest)
			break;
		usleep(10000);
	}
	return n;
}

static void test_rotation_reclaim(void)
{
	enum { N = 40 };
	char *dir = make_dir();
	struct envelope *sent[N], *sync_msg[1];
	struct waiter w;
	struct spool *sp;
	struct spool_stats st;
	struct recovered rec = { 0 };
	uint64_t last;
	int nseg;

	waiter_init(&w);
	sp = open_spool(dir, 4096, NULL, NULL);
	spool_start(sp);
	submit_seq(sp, &w, 0, N, 1000, sent);
	/* Answers go out before the rotation that follows them: let it settle. */
	nseg = wait_segments(sp, dir, 1, 5, 1000, &st);
	CHECK(st.segments >= 5);
	CHECK_INTEQ(nseg, (int)st.segments);
	CHECK_INTEQ(st.live_messages, N);

	/* Finish all but the last 5: exactly the segments holding those must stay. */
	for (int i = 0; i < N - 5; i++)
		spool_message_done(sp, w.res[i].msg->id);
	submit_n(sp, &w, 100, 1, 10, sync_msg);
	{
		uint64_t oldest_live = UINT64_MAX, want;

		for (int i = N - 5; i < N; i++)
			if (w.res[i].msg->loc.segment < oldest_live)
				oldest_live = w.res[i].msg->loc.segment;
		/* Everything below the oldest live segment goes; the rest stays. */
		want = w.res[N].msg->loc.segment - oldest_live + 1;
		/* +1: the commit of the sync message may have started a new segment. */
		nseg = wait_segments(sp, dir, oldest_live, want, want + 1, &st);
		CHECK_INTEQ(st.live_messages, 6);
		CHECK(nseg == (int)want || nseg == (int)want + 1);
		CHECK_INTEQ(st.segments, nseg);
	}
	/* Now all of them: only the current segment remains. */
	for (int i = N - 5; i <= N; i++)
		spool_message_done(sp, w.res[i].msg->id);
	submit_n(sp, &w, 101, 1, 10, sync_msg);
	nseg = wait_segments(sp, dir, w.res[N + 1].msg->loc.segment, 1, 2, &st);
	CHECK(nseg == 1 || nseg == 2);
	CHECK_INTEQ(st.segments, nseg);
	CHECK_INTEQ(st.live_messages, 1);
	CHECK_INTEQ(seg_files(dir, &last), nseg);
	CHECK(last - w.res[N + 1].msg->loc.segment == (uint64_t)nseg - 1);
	spool_stop(sp);
	/* After a restart only the sync message is left. */
	sp = open_spool(dir, 4096, &rec, NULL);
	CHECK_INTEQ(rec.n, 1);
	spool_stop(sp);
	rec_free(&rec);
	waiter_fini(&w);
	remove_dir(dir);
}

/* ==================== compaction ==================== */

/*
 * struct mover - the owner side of compaction for the tests: collects
 * moved notices (on the waiter's loop) and acknowledges them when told.
 */
struct mover {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct spool *sp;
	bool auto_ack;
	size_t n;
	impetus_id ids[64];
	struct envelope_loc locs[64];
};

static void on_moved(void *ctx, impetus_id id, const struct envelope_loc *loc)
{
	struct mover *mv = ctx;

	pthread_mutex_lock(&mv->mu);
	if (mv->n < 64) {
		mv->ids[mv->n] = id;
		mv->locs[mv->n] = *loc;
		mv->n++;
	}
	pthread_cond_broadcast(&mv->cv);
	pthread_mutex_unlock(&mv->mu);
	if (mv->auto_ack)
		spool_moved_ack(mv->sp, id);
}

/* mover_wait - until n notices arrived (20 s at most). */
static void mover_wait(struct mover *mv, size_t n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	pthread_mutex_lock(&mv->mu);
	while (mv->n < n && pthread_cond_timedwait(&mv->cv, &mv->mu, &ts) == 0)
		;
	pthread_mutex_unlock(&mv->mu);
	CHECK(mv->n >= n);
}

static struct spool *open_compacting(const char *dir, struct mover *mv, struct waiter *w,
				     struct recovered *rec, struct reports *rep)
{
	struct spool_options o = {
		.segment_size = 4096,
		.compact_threshold = 50,
		.moved = on_moved,
		.moved_loop = w->loop,
		.moved_ctx = mv,
	};
	struct str err = STR_INIT;
	struct spool *sp;

	if (rep) {
		o.report = on_report;
		o.report_ctx = rep;
	}
	sp = spool_open(dir, &o, rec ? on_recover : NULL, rec, &err);
	if (sp == NULL)
		fprintf(stderr, "%s:%d: spool_open: %s\n", __FILE__, __LINE__, str_cstr(&err));
	CHECK(sp != NULL);
	str_free(&err);
	mv->sp = sp;
	return sp;
}

/*
 * compact_setup - 20 messages over several 4 KiB segments; the first
 * keeps one recipient queued with a retry schedule (written before any
 * copy exists) and one delivered; everything else is finished.
 */
static void compact_setup(struct spool *sp, struct waiter *w, struct envelope **sent)
{
	submit_seq(sp, w, 0, 20, 1000, sent);
	spool_rcpt_retry(sp, w->res[0].msg->id, 0, 3, 1795479999);
	spool_rcpt_state(sp, w->res[0].msg->id, 1, ENVELOPE_RCPT_DELIVERED);
	for (int i = 1; i < 20; i++)
		spool_message_done(sp, w->res[i].msg->id);
}

/* check_moved_msg - the recovered first message: one copy, its states and retries, its body. */
static void check_moved_msg(struct spool *sp, struct recovered *rec, impetus_id id,
			    uint32_t retries2)
{
	struct envelope *m = rec_find(rec, id);
	struct str body = STR_INIT, want = STR_INIT;
	size_t copies = 0;

	for (size_t i = 0; i < rec->n; i++)
		copies += rec->v[i]->id == id;
	CHECK_INTEQ(copies, 1);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	CHECK_INTEQ(m->nrcpt, 3);
	CHECK_INTEQ(m->rcpts[0].state, ENVELOPE_RCPT_QUEUED);
	CHECK_INTEQ(m->rcpts[0].retries, 3);
	CHECK_INTEQ(m->rcpts[0].next_attempt, 1795479999);
	CHECK_INTEQ(m->rcpts[1].state, ENVELOPE_RCPT_DELIVERED);
	CHECK_INTEQ(m->rcpts[2].state, ENVELOPE_RCPT_QUEUED);
	CHECK_INTEQ(m->rcpts[2].retries, retries2);
	CHECK(m->loc.segment > 1);
	CHECK_INTEQ(spool_read_body(sp, &m->loc, &body), 0);
	make_body(&want, 0, 1000);
	CHECK(body.len == want.len && memcmp(body.s, want.s, want.len) == 0);
	str_free(&body);
	str_free(&want);
}

/*
 * test_codec_relocated - a RELOCATED MESSAGE record (CRC extended over a
 * body that is not in the buffer) decodes with its flag; the flag on any
 * other record type is refused.
 */
static void test_codec_relocated(void)
{
	struct envelope *m = make_msg(5, 2, 300);
	struct str rec = STR_INIT;
	struct spool_rec r;
	uint64_t need;
	const char *why = NULL;
	uint32_t crc = 0;
	size_t body_off;
	long long n;

	m->rcpts[1].state = ENVELOPE_RCPT_DELIVERED;
	m->rcpts[0].retries = 4;
	body_off = spool_rec_encode_relocated(&rec, m, m->body.len, &crc);
	CHECK(body_off > SPOOL_REC_HDR_SIZE);
	crc = crc32c(crc, m->body.s, m->body.len);
	spool_rec_store_crc(rec.s, crc);
	str_append(&rec, m->body.s, m->body.len);
	n = spool_rec_decode(rec.s, rec.len, true, &r, &need, &why);
	CHECK_INTEQ(n, (long long)rec.len);
	CHECK_INTEQ(r.flags, SPOOL_REC_FLAG_RELOCATED);
	CHECK(r.msg && same_envelope(r.msg, m));
	CHECK_INTEQ(r.body_offset, body_off);
	envelope_free(r.msg);

	str_clear(&rec);
	spool_rec_encode_done(&rec, m->id);
	rec.s[5] = (char)SPOOL_REC_FLAG_RELOCATED;
	spool_rec_reseal((uint8_t *)rec.s, rec.len);
	CHECK_INTEQ(spool_rec_decode(rec.s, rec.len, true, &r, &need, &why), SPOOL_REC_BAD);
	CHECK(why && strcmp(why, "unknown record flags") == 0);
	str_free(&rec);
	envelope_free(m);
}

/*
 * test_compact_relocate - the oldest segment's one live message moves to
 * the head with its states; the old segment stays while the move is not
 * acknowledged, goes once it is; after a restart the message is there
 * once, silently (no duplicate report), with everything it had.
 */
static void test_compact_relocate(void)
{
	char *dir = make_dir();
	struct envelope *sent[20], *sync_msg[1];
	struct mover mv = { .auto_ack = false };
	struct reports rep = { STR_INIT, 0 };
	struct recovered rec = { 0 };
	struct spool_stats st;
	struct str body = STR_INIT, want = STR_INIT;
	struct waiter w;
	struct spool *sp;
	impetus_id id;
	uint64_t first = 0;
	int n;

	pthread_mutex_init(&mv.mu, NULL);
	pthread_cond_init(&mv.cv, NULL);
	waiter_init(&w);
	sp = open_compacting(dir, &mv, &w, NULL, NULL);
	spool_start(sp);
	compact_setup(sp, &w, sent);
	id = w.res[0].msg->id;
	CHECK_INTEQ(w.res[0].msg->loc.segment, 1);
	submit_n(sp, &w, 100, 1, 10, sync_msg);	/* a commit after the state records */
	mover_wait(&mv, 1);
	CHECK(mv.ids[0] == id);
	CHECK(mv.locs[0].segment > 1);
	CHECK_INTEQ(mv.locs[0].length, 1000);
	/* Not acknowledged: the old copy must still be readable. */
	usleep(50000);
	seg_files_range(dir, &first, NULL);
	CHECK_INTEQ(first, 1);
	CHECK_INTEQ(spool_read_body(sp, &w.res[0].msg->loc, &body), 0);
	CHECK_INTEQ(spool_read_body(sp, &mv.locs[0], &want), 0);
	CHECK(body.len == 1000 && want.len == 1000 && memcmp(body.s, want.s, 1000) == 0);
	spool_moved_ack(sp, id);
	for (int tries = 0; tries < 3000; tries++) {
		seg_files_range(dir, &first, NULL);
		if (first >= mv.locs[0].segment)
			break;
		usleep(10000);
	}
	CHECK(first >= mv.locs[0].segment);
	spool_get_stats(sp, &st);
	CHECK(st.moved_messages >= 1);
	CHECK(st.compacted_segments >= 1);
	CHECK(st.live_bytes > 0 && st.live_bytes < st.bytes);
	spool_message_done(sp, w.res[20].msg->id);
	spool_stop(sp);
	n = seg_files(dir, NULL);
	CHECK(n <= 2);

	sp = open_spool(dir, 4096, &rec, &rep);
	CHECK_INTEQ(rec.n, 1);
	check_moved_msg(sp, &rec, id, 0);
	CHECK(strstr(str_cstr(&rep.all), "duplicate") == NULL);
	spool_stop(sp);
	rec_free(&rec);
	str_free(&rep.all);
	str_free(&body);
	str_free(&want);
	waiter_fini(&w);
	pthread_mutex_destroy(&mv.mu);
	pthread_cond_destroy(&mv.cv);
	remove_dir(dir);
}

/*
 * test_compact_failure - a live message with a recipient's failure detail
 * (relayed, for the report still to come) is moved by compaction; once
 * the move is acknowledged every older segment, the one holding the
 * original RCPT_FAILURE record included, is removed. After a restart the
 * detail is still there: the copy carried it.
 */
static void test_compact_failure(void)
{
	char *dir = make_dir();
	struct envelope *sent[20], *sync_msg[1];
	struct mover mv = { .auto_ack = true };
	struct recovered rec = { 0 };
	struct envelope_failure f = failure(1, ENVELOPE_FAILURE_RELAYED, "250 2.0.0 relayed");
	const struct envelope_failure *got;
	struct waiter w;
	struct spool *sp;
	impetus_id id;
	uint64_t first = 0, fail_seg;
	int n;

	pthread_mutex_init(&mv.mu, NULL);
	pthread_cond_init(&mv.cv, NULL);
	waiter_init(&w);
	sp = open_compacting(dir, &mv, &w, NULL, NULL);
	spool_start(sp);
	submit_seq(sp, &w, 0, 20, 1000, sent);
	id = w.res[0].msg->id;
	fail_seg = w.res[19].msg->loc.segment;	/* the detail lands here or later */
	spool_rcpt_failure(sp, id, &f);
	spool_rcpt_retry(sp, id, 0, 3, 1795479999);
	spool_rcpt_state(sp, id, 1, ENVELOPE_RCPT_DELIVERED);
	for (int i = 1; i < 20; i++)
		spool_message_done(sp, w.res[i].msg->id);
	submit_n(sp, &w, 100, 1, 10, sync_msg);
	mover_wait(&mv, 1);
	CHECK(mv.ids[0] == id);
	for (int tries = 0; tries < 3000; tries++) {
		seg_files_range(dir, &first, NULL);
		if (first >= mv.locs[0].segment)
			break;
		usleep(10000);
	}
	CHECK(first >= mv.locs[0].segment);
	CHECK(first > fail_seg);	/* the original detail is gone with its segment */
	spool_message_done(sp, w.res[20].msg->id);
	spool_stop(sp);
	n = seg_files(dir, NULL);
	CHECK(n <= 2);

	sp = open_spool(dir, 4096, &rec, NULL);
	CHECK_INTEQ(rec.n, 1);
	check_moved_msg(sp, &rec, id, 0);
	got = find_failure(rec_find(&rec, id), 1);
	CHECK(got != NULL);
	if (got) {
		CHECK_INTEQ(got->action, ENVELOPE_FAILURE_RELAYED);
		CHECK_STREQ(got->response, "250 2.0.0 relayed");
		CHECK_STREQ(got->remote, "mx.bad.test");
	}
	spool_stop(sp);
	rec_free(&rec);
	waiter_fini(&w);
	pthread_mutex_destroy(&mv.mu);
	pthread_cond_destroy(&mv.cv);
	remove_dir(dir);
}

/*
 * test_compact_crash_between - a crash after the copy is durable but
 * before the old segment went (the move is never acknowledged), with a
 * state record written after the copy: recovery keeps one message, the
 * copy's states plus the later record, reports nothing, and then removes
 * the old segment itself.
 */
static void test_compact_crash_between(void)
{
	char *dir = make_dir();
	struct envelope *sent[20], *sync_msg[1];
	struct mover mv = { .auto_ack = false };
	struct reports rep = { STR_INIT, 0 };
	struct recovered rec = { 0 };
	struct waiter w;
	struct spool *sp;
	impetus_id id;
	uint64_t first = 0;

	pthread_mutex_init(&mv.mu, NULL);
	pthread_cond_init(&mv.cv, NULL);
	waiter_init(&w);
	sp = open_compacting(dir, &mv, &w, NULL, NULL);
	spool_start(sp);
	compact_setup(sp, &w, sent);
	id = w.res[0].msg->id;
	submit_n(sp, &w, 100, 1, 10, sync_msg);
	mover_wait(&mv, 1);
	spool_rcpt_retry(sp, id, 2, 1, 1795470000);	/* after the copy: applies to it */
	spool_message_done(sp, w.res[20].msg->id);
	spool_stop(sp);		/* never acknowledged: the old segment is still there */
	seg_files_range(dir, &first, NULL);
	CHECK_INTEQ(first, 1);

	sp = open_spool(dir, 4096, &rec, &rep);
	CHECK_INTEQ(rec.n, 1);
	check_moved_msg(sp, &rec, id, 1);
	CHECK_INTEQ(rec_find(&rec, id) ? rec_find(&rec, id)->rcpts[2].next_attempt : 0,
		    1795470000);
	CHECK_INTEQ(rep.n, 0);
	seg_files_range(dir, &first, NULL);
	CHECK(first > 1);		/* no live message left in it: reclaimed at open */
	spool_stop(sp);
	rec_free(&rec);
	str_free(&rep.all);
	waiter_fini(&w);
	pthread_mutex_destroy(&mv.mu);
	pthread_cond_destroy(&mv.cv);
	remove_dir(dir);
}

/*
 * test_compact_bad_source - a flipped bit in the body of the message to
 * be moved: compaction must not copy damage under a fresh CRC. The move
 * is refused with a report and the segment stays.
 */
static void test_compact_bad_source(void)
{
	char *dir = make_dir();
	struct envelope *sent[20], *sync_msg[1];
	struct mover mv = { .auto_ack = true };
	struct reports rep = { STR_INIT, 0 };
	struct waiter w;
	struct spool *sp;
	char path[512];
	uint64_t first = 0;

	pthread_mutex_init(&mv.mu, NULL);
	pthread_cond_init(&mv.cv, NULL);
	waiter_init(&w);
	/*
	 * Fill with compaction off; reopen with it on (recovery sees a sound
	 * record), and damage the body before the spool thread starts moving.
	 */
	sp = open_spool(dir, 4096, NULL, NULL);
	spool_start(sp);
	compact_setup(sp, &w, sent);
	spool_stop(sp);
	sp = open_compacting(dir, &mv, &w, NULL, &rep);
	seg_path(path, sizeof(path), dir, 1);
	flip_bit(path, w.res[0].msg->loc.offset + 500, 3);
	spool_start(sp);
	submit_n(sp, &w, 100, 1, 10, sync_msg);
	for (int tries = 0; tries < 3000 && !reports_have(&rep, "cannot be relocated");
	     tries++)
		usleep(10000);
	CHECK(reports_have(&rep, "bad record crc"));
	CHECK_INTEQ(mv.n, 0);
	seg_files_range(dir, &first, NULL);
	CHECK_INTEQ(first, 1);
	spool_stop(sp);
	str_free(&rep.all);
	waiter_fini(&w);
	pthread_mutex_destroy(&mv.mu);
	pthread_cond_destroy(&mv.cv);
	remove_dir(dir);
}

/* ==================== write errors ==================== */

/*
 * write_error_child - in a forked child: lower RLIMIT_FSIZE below the
 * segment's end so the kernel refuses the next write with EFBIG (after
 * writing what fits), check the failure and the cut-back, raise the
 * limit, check that the spool works again. Returns the failure count.
 */
static int write_error_child(const char *dir, impetus_id *ok_ids, impetus_id *bad_ids)
{
	struct waiter w;
	struct spool *sp;
	struct envelope *m[3];
	struct spool_stats st;
	struct rlimit rl;
	char path[512];
	off_t before;
	struct result *r;
	int failures_before = check_failures;
	struct reports rep = { STR_INIT, 0 };

	signal(SIGXFSZ, SIG_IGN);
	waiter_init(&w);
	/*
	 * Without preallocation, as on a file system without fallocate: the
	 * file size is the data length, which the limits below are set from.
	 * (test_prealloc_write_error has the preallocated case.)
	 */
	sp = open_spool_opts(dir, (struct spool_options){ .no_prealloc = true }, NULL, &rep);
	spool_start(sp);
	submit_n(sp, &w, 0, 1, 2000, m);
	ok_ids[0] = m[0]->id;
	seg_path(path, sizeof(path), dir, w.res[0].msg->loc.segment);
	before = file_size(path);

	/* A: room for part of the batch: a partial write, then EFBIG. */
	getrlimit(RLIMIT_FSIZE, &rl);
	rl.rlim_cur = (rlim_t)before + 1000;
	CHECK_INTEQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	submit_n(sp, &w, 1, 1, 4000, m);
	bad_ids[0] = m[0]->id;
	r = find_result(&w, bad_ids[0]);
	CHECK(r != NULL && r->err == -EFBIG);
	CHECK(r != NULL && r->msg->body.len == 4000);	/* body handed back for a retry */
	CHECK_INTEQ(file_size(path), before);
	spool_get_stats(sp, &st);
	CHECK_INTEQ(st.write_errors, 1);

	/* B: no room at all; a state record in a failing batch is kept for later. */
	rl.rlim_cur = (rlim_t)before;
	CHECK_INTEQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	spool_rcpt_state(sp, ok_ids[0], 1, ENVELOPE_RCPT_DELIVERED);
	submit_n(sp, &w, 1, 1, 100, m);
	bad_ids[1] = m[0]->id;
	r = find_result(&w, bad_ids[1]);
	CHECK(r != NULL && r->err == -EFBIG);
	CHECK_INTEQ(file_size(path), before);
	spool_get_stats(sp, &st);
	CHECK(st.write_errors >= 2);

	rl.rlim_cur = rl.rlim_max;
	CHECK_INTEQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
	submit_n(sp, &w, 2, 1, 4000, m);
	ok_ids[1] = m[0]->id;
	r = find_result(&w, ok_ids[1]);
	CHECK(r != NULL && r->err == 0);
	spool_stop(sp);
	waiter_fini(&w);
	CHECK(strstr(str_cstr(&rep.all), "write error") != NULL);
	CHECK(strstr(str_cstr(&rep.all), "File too large") != NULL);
	str_free(&rep.all);
	return check_failures - failures_before;
}

static void test_write_error(void)
{
	char *dir = make_dir();
	int pfd[2];
	impetus_id ids[4];
	struct recovered rec = { 0 };
	struct reports rep = { STR_INIT, 0 };
	struct spool *sp;
	pid_t pid;
	int status = 0;

	CHECK_INTEQ(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int fails;

		close(pfd[0]);
		fails = write_error_child(dir, ids, &ids[2]);
		if (write(pfd[1], ids, sizeof(ids)) != sizeof(ids))
			fails++;
		_exit(fails ? 1 : 0);
	}
	close(pfd[1]);
	CHECK(read(pfd[0], ids, sizeof(ids)) == sizeof(ids));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	sp = open_spool(dir, 0, &rec, &rep);
	CHECK_INTEQ(rec.n, 2);
	CHECK(rec_find(&rec, ids[2]) == NULL);		/* the refused ones are not there */
	CHECK(rec_find(&rec, ids[3]) == NULL);
	{
		struct envelope *a = rec_find(&rec, ids[0]);
		struct envelope *b = rec_find(&rec, ids[1]);
		struct str body = STR_INIT, want = STR_INIT;

		CHECK(a != NULL && b != NULL);
		if (a)
			CHECK_INTEQ(a->rcpts[1].state, ENVELOPE_RCPT_DELIVERED);
		if (b && sp) {
			CHECK_INTEQ(spool_read_body(sp, &b->loc, &body), 0);
			make_body(&want, 2, 4000);
			CHECK(body.len == want.len && memcmp(body.s, want.s, want.len) == 0);
		}
		str_free(&body);
		str_free(&want);
	}
	CHECK_INTEQ(rep.n, 0);	/* the cut-back left nothing for recovery to repair */
	if (rep.n)
		fprintf(stderr, "unexpected reports:\n%s", str_cstr(&rep.all));
	spool_stop(sp);
	rec_free(&rec);
	str_free(&rep.all);
	remove_dir(dir);
}

/* ==================== the lock ==================== */

static void test_lock(void)
{
	char *dir = make_dir();
	struct str err = STR_INIT;
	struct spool *sp = open_spool(dir, 0, NULL, NULL), *sp2;

	sp2 = spool_open(dir, NULL, NULL, NULL, &err);
	CHECK(sp2 == NULL);
	CHECK(strstr(str_cstr(&err), "locked by another process") != NULL);
	if (sp2)
		spool_stop(sp2);
	spool_stop(sp);
	/* Released on stop. */
	str_clear(&err);
	sp2 = spool_open(dir, NULL, NULL, NULL, &err);
	CHECK(sp2 != NULL);
	spool_stop(sp2);
	str_free(&err);
	remove_dir(dir);
}

int main(void)
{
	test_codec_roundtrip();
	test_codec_fuzz();
	test_submit_reopen();
	test_concurrent();
	test_big_batch();
	test_file_body();
	test_failed_stays_live();
	test_codec_failure();
	test_failure_recovered();
	test_state_rides();
	test_binding_commits();
	test_batch_wait();
	test_torn_tail();
	test_flipped_last();
	test_flipped_middle();
	test_flipped_body_middle();
	test_empty_segments();
	test_prealloc_running();
	test_zero_tail();
	test_torn_then_zeros();
	test_prealloc_unwritten_header();
	test_crash_prealloc();
	test_prealloc_write_error();
	test_rotation_reclaim();
	test_codec_relocated();
	test_compact_relocate();
	test_compact_crash_between();
	test_compact_failure();
	test_compact_bad_source();
	test_write_error();
	test_lock();
	return check_done();
}
