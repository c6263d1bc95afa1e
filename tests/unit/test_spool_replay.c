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
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
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

static void test_empty_segments(void)
{
	char dir[] = "/tmp/impetus-test-replay.XXXXXX";
	char n1[SPOOL_SEG_NAME_SIZE], n2[SPOOL_SEG_NAME_SIZE];
	struct seen s = { 0 };
	struct str err = STR_INIT;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		check_failures++;
		return;
	}
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

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	str_free(&err);
	str_free(&s.last);
}

int main(void)
{
	test_empty_segments();
	return check_done();
}
