/*
 * test_spool_replay.c - recovery of segment files that hold nothing
 *
 * A segment file of 0 bytes (created, then a crash before its header was
 * written) made the replay's reader compute NULL + 0, undefined behaviour
 * that aborts a clang UBSan build of `impetus spool ls` (issue 11, finding
 * 8). Here both ways the program replays a directory meet 0-byte and
 * short segments: the read-only scan must list nothing and leave the
 * files alone, repair (spool_open) must remove them. Under the sanitizer
 * suite this runs with UBSan; tests/fuzz/fuzz_spool_replay.c does the same
 * with arbitrary segment contents (its seed corpus has the 0-byte case,
 * which fails the clang build before the fix). The broader spool cases are
 * in test_spool.c.
 *
 * test_failure_details: RCPT_FAILURE records on segment files written here
 * record by record (what comes back, when a message is still owed its
 * report, a compaction copy with and without its trailing records).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/crc32c.h"
#include "core/str.h"
#include "spool/spool.h"
#include "spool/spool_record.h"

struct seen {
	int msgs;
	int reports;
	struct str last;
};

static void on_msg(void *ctx, struct envelope *m)
{
	struct seen *s = ctx;

	s->msgs++;
	envelope_free(m);
}

static void on_report(void *ctx, const char *line)
{
	struct seen *s = ctx;

	s->reports++;
	str_clear(&s->last);
	str_appends(&s->last, line);
}

/* write_file - dir/name with n bytes of p. */
static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
		close(fd);
	}
}

static bool exists(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* make_dir - a fresh directory from the mkdtemp template dir; false (a failed check) if not. */
static bool make_dir(char *dir)
{
	if (mkdtemp(dir) != NULL)
		return true;
	perror("mkdtemp");
	check_failures++;
	return false;
}

/* remove_dir - the directory and everything in it. */
static void remove_dir(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static void test_empty_segments(void)
{
	char dir[] = "/tmp/impetus-test-replay.XXXXXX";
	char n1[SPOOL_SEG_NAME_SIZE], n2[SPOOL_SEG_NAME_SIZE];
	struct seen s = { 0 };
	struct str err = STR_INIT;

	if (!make_dir(dir))
		return;
	spool_seg_name(1, n1);
	spool_seg_name(2, n2);
	write_file(dir, n1, "", 0);		/* 0 bytes */
	write_file(dir, n2, "IMPSP", 5);	/* a torn header */

	/* read-only, as `impetus spool ls` */
	CHECK_INTEQ(spool_scan_ex(dir, true, on_msg, &s, on_report, &s, &err), 0);
	CHECK_INTEQ(s.msgs, 0);
	CHECK_INTEQ(s.reports, 1);		/* the torn one is reported, the empty one is not */
	CHECK(strstr(str_cstr(&s.last), n2) != NULL);
	CHECK(exists(dir, n1) && exists(dir, n2));

	/* repair, as impetusd starting: both go */
	struct spool_options o = { .no_sync = true, .report = on_report, .report_ctx = &s };
	struct spool *sp = spool_open(dir, &o, on_msg, &s, &err);
	CHECK(sp != NULL);
	if (sp == NULL)
		fprintf(stderr, "spool_open: %s\n", str_cstr(&err));
	spool_stop(sp);
	CHECK_INTEQ(s.msgs, 0);
	CHECK(!exists(dir, n1) && !exists(dir, n2));

	/* and a directory with only a 0-byte segment, scanned again */
	write_file(dir, n1, "", 0);
	s.reports = 0;
	CHECK_INTEQ(spool_scan_ex(dir, false, on_msg, &s, on_report, &s, &err), 0);
	CHECK_INTEQ(s.reports, 0);
	CHECK_INTEQ(s.msgs, 0);

	remove_dir(dir);
	str_free(&err);
	str_free(&s.last);
}

/* ==================== failure details ==================== */

/* kept - the messages a scan hands over, kept for inspection. */
struct kept {
	struct envelope *v[8];
	int n;
};

static void on_keep(void *ctx, struct envelope *m)
{
	struct kept *k = ctx;

	if (k->n < 8)
		k->v[k->n++] = m;
	else
		envelope_free(m);
}

static void kept_free(struct kept *k)
{
	for (int i = 0; i < k->n; i++)
		envelope_free(k->v[i]);
	k->n = 0;
}

/* two_rcpt_msg - a message with recipients x@bad.test and y@slow.test. */
static struct envelope *two_rcpt_msg(void)
{
	struct envelope *m = envelope_new();

	m->id = 0x0005F00000001234ULL;
	m->received = 1795470000;
	m->sender = strdup("alice@snd.test");
	m->client_ip = strdup("127.0.0.1");
	m->helo = strdup("client.test");
	m->protocol = strdup("esmtp");
	m->binding_group = strdup("");
	m->binding = strdup("");
	m->nrcpt = 2;
	m->rcpts = calloc(2, sizeof(*m->rcpts));
	m->rcpts[0].addr = strdup("x@bad.test");
	m->rcpts[1].addr = strdup("y@slow.test");
	str_appends(&m->body, "Subject: t\r\n\r\nbody\r\n");
	return m;
}

/* scan_kept - a read-only scan of dir into k; returns the reports seen. */
static int scan_kept(const char *dir, bool include_done, struct kept *k)
{
	struct seen s = { 0 };
	struct str err = STR_INIT;

	CHECK_INTEQ(spool_scan_ex(dir, include_done, on_keep, k, on_report, &s, &err), 0);
	str_free(&err);
	str_free(&s.last);
	return s.reports;
}

/*
 * test_failure_details - what recovery does with RCPT_FAILURE records
 * (docs/spool.md), on segment files written here record by record:
 *   - x failed with its detail, y queued: the message is live and its
 *     detail comes back, field by field;
 *   - y delivered, no MESSAGE_DONE: still handed over (the report is
 *     owed), envelope_report_due says so;
 *   - then a MESSAGE_DONE: finished (listed only with include_done);
 *   - compaction's copy of the message (RELOCATED) with nothing after
 *     it, as if a torn write had cut its trailing records while the
 *     original was still there: the details met before stay;
 *   - a detail after the copy replaces the earlier one for that recipient.
 */
static void test_failure_details(void)
{
	char dir[] = "/tmp/impetus-test-replay.XXXXXX";
	char n1[SPOOL_SEG_NAME_SIZE], n2[SPOOL_SEG_NAME_SIZE];
	uint8_t hdr[SPOOL_SEG_HDR_SIZE];
	struct envelope *m = two_rcpt_msg();
	struct envelope_failure f = {
		.rcpt = 0, .action = ENVELOPE_FAILURE_FAILED, .stage = 4, .code = 550,
		.when = 1795470100, .response = "550 5.1.1 x is unknown here",
		.remote = "127.0.0.1",
	};
	struct str seg = STR_INIT, tail = STR_INIT;
	struct kept k = { 0 };
	uint32_t crc = 0;

	if (!make_dir(dir))
		return;
	spool_seg_name(1, n1);
	spool_seg_name(2, n2);
	spool_seg_header(1, hdr);
	str_append(&seg, hdr, sizeof(hdr));
	CHECK(spool_rec_encode_message(&seg, m) > 0);
	str_append(&seg, m->body.s, m->body.len);
	spool_rec_encode_rcpt_failure(&seg, m->id, &f);
	spool_rec_encode_rcpt_state(&seg, m->id, 0, ENVELOPE_RCPT_FAILED);
	write_file(dir, n1, seg.s, seg.len);

	CHECK_INTEQ(scan_kept(dir, false, &k), 0);
	CHECK_INTEQ(k.n, 1);
	if (k.n == 1) {
		struct envelope *r = k.v[0];

		CHECK_INTEQ(r->nfailures, 1);
		if (r->nfailures == 1) {
			CHECK_INTEQ(r->failures[0].rcpt, 0);
			CHECK_INTEQ(r->failures[0].action, ENVELOPE_FAILURE_FAILED);
			CHECK_INTEQ(r->failures[0].code, 550);
			CHECK_INTEQ(r->failures[0].stage, 4);
			CHECK_INTEQ(r->failures[0].when, 1795470100);
			CHECK_STREQ(r->failures[0].response, "550 5.1.1 x is unknown here");
			CHECK_STREQ(r->failures[0].remote, "127.0.0.1");
		}
		CHECK(!envelope_report_due(r));
	}
	kept_free(&k);

	spool_rec_encode_rcpt_state(&seg, m->id, 1, ENVELOPE_RCPT_DELIVERED);
	write_file(dir, n1, seg.s, seg.len);
	CHECK_INTEQ(scan_kept(dir, false, &k), 0);
	CHECK_INTEQ(k.n, 1);
	CHECK(k.n == 1 && envelope_report_due(k.v[0]));
	kept_free(&k);

	/* The copy, in a newer segment, alone: the details seen before stay. */
	m->rcpts[0].state = ENVELOPE_RCPT_FAILED;
	m->rcpts[1].state = ENVELOPE_RCPT_QUEUED;
	spool_seg_header(2, hdr);
	str_append(&tail, hdr, sizeof(hdr));
	CHECK(spool_rec_encode_relocated(&tail, m, m->body.len, &crc) > 0);
	crc = crc32c(crc, m->body.s, m->body.len);
	spool_rec_store_crc(tail.s + SPOOL_SEG_HDR_SIZE, crc);
	str_append(&tail, m->body.s, m->body.len);
	write_file(dir, n2, tail.s, tail.len);
	str_truncate(&seg, seg.len - 29);	/* y's delivered state: not there yet */
	write_file(dir, n1, seg.s, seg.len);
	CHECK_INTEQ(scan_kept(dir, false, &k), 0);
	CHECK_INTEQ(k.n, 1);
	CHECK(k.n == 1 && k.v[0]->loc.segment == 2 && k.v[0]->nfailures == 1 &&
	      strcmp(k.v[0]->failures[0].response, "550 5.1.1 x is unknown here") == 0);
	kept_free(&k);

	/* A detail after the copy replaces the earlier one. */
	f.response = "550 5.1.1 replaced";
	spool_rec_encode_rcpt_failure(&tail, m->id, &f);
	spool_rec_encode_rcpt_state(&tail, m->id, 1, ENVELOPE_RCPT_DELIVERED);
	write_file(dir, n2, tail.s, tail.len);
	CHECK_INTEQ(scan_kept(dir, false, &k), 0);
	CHECK_INTEQ(k.n, 1);
	CHECK(k.n == 1 && k.v[0]->nfailures == 1 &&
	      strcmp(k.v[0]->failures[0].response, "550 5.1.1 replaced") == 0 &&
	      envelope_report_due(k.v[0]));
	kept_free(&k);

	/* Its report sent: MESSAGE_DONE, and it is finished. */
	spool_rec_encode_done(&tail, m->id);
	write_file(dir, n2, tail.s, tail.len);
	CHECK_INTEQ(scan_kept(dir, false, &k), 0);
	CHECK_INTEQ(k.n, 0);
	kept_free(&k);
	CHECK_INTEQ(scan_kept(dir, true, &k), 0);
	CHECK_INTEQ(k.n, 1);
	kept_free(&k);

	remove_dir(dir);
	envelope_free(m);
	str_free(&seg);
	str_free(&tail);
}

int main(void)
{
	test_empty_segments();
	test_failure_details();
	return check_done();
}
