/*
 * fuzz_spool_replay.c - libFuzzer target: a whole damaged segment file
 * replayed by recovery
 *
 * fuzz_spool_record.c feeds single records to the decoder; this target
 * feeds whole segment files to the code that reads a spool directory after
 * a crash (src/spool/spool_replay.c): the windowed reader, resync after
 * damage, tail cutting, removal of empty segments, and the application of
 * state records to messages. The input becomes one segment file in a
 * directory on tmpfs ($IMPETUS_FUZZ_TMPDIR, default /dev/shm; reused
 * between runs, emptied before each, removed at exit), and the
 * directory is replayed the two ways the program does it: read-only with
 * spool_scan_ex (`impetus spool ls`) and, when asked, in repair mode with
 * spool_open + spool_stop (impetusd starting; the spool thread is never
 * started). Besides ASan/UBSan/leak findings it checks:
 *   - a replay fails only for a segment version it does not know
 *     (-EPROTO), and then says why; every report line starts "spool:";
 *   - every recovered message's body lies inside a segment file that
 *     exists, with its recipients' states in range;
 *   - repair does not change what is recovered: the live messages (ids,
 *     recipient states, number of failure details) seen by the read-only
 *     scan, by spool_open, and by a scan of the repaired directory are the
 *     same; failure details are in range and within their bounds.
 *
 * Input layout: byte 0 is a set of flags, the rest the segment's bytes.
 *   bits 0-1  0 raw bytes (header included, if any)
 *             1 a valid segment header, then the raw bytes
 *             2 a valid header, then the bytes cut into records with valid
 *               CRCs (type byte, 16-bit length, payload), so the payload
 *               decoders and the replay's state machine see them
 *             3 as 2, after a valid MESSAGE record (id BUILTIN_ID, three
 *               recipients) the framed records can refer to
 *   bit 2     also repair (spool_open + spool_stop) and compare
 *   bit 3     an older valid segment (seq 1, the built-in message) first
 *   bits 4-5  the fuzzed segment's sequence number: 2, 1, 0, UINT64_MAX
 *   bit 6     scan with include_done
 *   bit 7     the fuzzed segment ends in a preallocated tail, as the
 *             daemon's current segment does: 100 written zeros, then a
 *             hole to 8 KiB past the bytes (recovery takes a run of zeros
 *             to the end of the file as the end of the data)
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_spool_replay -runs=100000
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/str.h"
#include "spool/spool.h"
#include "spool/spool_record.h"

#include "fuzz.h"

#define BUILTIN_ID ((impetus_id)0x0123456789abcdefULL)
#define MAX_LIVE 64		/* live messages compared; more are counted only */
#define MAX_SEGS 4

/* One recovered message, reduced to what repair must not change. */
struct seen {
	impetus_id id;
	uint64_t states;	/* recipient states, 4 bits each (first 16) */
	size_t nrcpt;
	size_t nfailures;	/* RCPT_FAILURE details kept */
};

struct collect {
	struct seen live[MAX_LIVE];
	size_t n, total;
	/* the segment files as written: seq and size, to check body locations */
	uint64_t seg_seq[MAX_SEGS];
	uint64_t seg_size[MAX_SEGS];
	size_t nseg;
	bool check_loc;
};

static char dir[256];

/* ==================== building the directory ==================== */

/* empty_dir - remove every file the previous run (or the spool) left. */
static void empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	MUST(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static void remove_dir(void)
{
	empty_dir();
	rmdir(dir);
}

/* add_builtin - a MESSAGE record for BUILTIN_ID with three recipients. */
static void add_builtin(struct str *seg)
{
	static const char body[] = "Subject: fuzz\r\n\r\nhello\r\n";
	struct envelope *m = envelope_new();

	m->id = BUILTIN_ID;
	m->conn_id = 7;
	m->received = 1700000000;
	m->sender = xstrdup("s@example.com");
	m->client_ip = xstrdup("192.0.2.1");
	m->helo = xstrdup("client.example");
	m->protocol = xstrdup("esmtp");
	m->binding_group = xstrdup("");
	m->binding = xstrdup("");
	m->nrcpt = 3;
	m->rcpts = xcalloc(3, sizeof(m->rcpts[0]));
	for (size_t i = 0; i < 3; i++) {
		char a[32];
		snprintf(a, sizeof(a), "r%zu@example.net", i);
		m->rcpts[i].addr = xstrdup(a);
	}
	str_append(&m->body, body, sizeof(body) - 1);
	MUST(spool_rec_encode_message(seg, m) > 0);
	str_append(seg, body, sizeof(body) - 1);
	envelope_free(m);
}

/* add_framed - p[0..n) cut into records with valid headers and CRCs. */
static void add_framed(struct str *seg, const uint8_t *p, size_t n)
{
	while (n >= 3) {
		uint8_t type = p[0];
		size_t len = (size_t)p[1] | (size_t)p[2] << 8;
		uint8_t hdr[SPOOL_REC_HDR_SIZE] = {
			SPOOL_REC_MAGIC0, SPOOL_REC_MAGIC1, SPOOL_REC_MAGIC2, SPOOL_REC_MAGIC3,
			type, 0, 0, 0,
		};

		p += 3;
		n -= 3;
		if (len > n)
			len = n;
		hdr[8] = (uint8_t)len;
		hdr[9] = (uint8_t)(len >> 8);
		size_t at = seg->len;
		str_append(seg, (const char *)hdr, sizeof(hdr));
		str_append(seg, (const char *)p, len);
		spool_rec_reseal((uint8_t *)seg->s + at, SPOOL_REC_HDR_SIZE + len);
		p += len;
		n -= len;
	}
	str_append(seg, (const char *)p, n);
}

/* write_seg - segment file seq with the given bytes. */
static void write_seg(struct collect *c, uint64_t seq, const struct str *seg)
{
	char name[SPOOL_SEG_NAME_SIZE];
	char path[320];

	snprintf(path, sizeof(path), "%s/%s", dir, spool_seg_name(seq, name));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	MUST(fd >= 0);
	MUST(seg->len == 0 || write(fd, seg->s, seg->len) == (ssize_t)seg->len);
	close(fd);
	if (c->nseg < MAX_SEGS) {
		c->seg_seq[c->nseg] = seq;
		c->seg_size[c->nseg] = seg->len;
		c->nseg++;
	}
}

/* ==================== collecting what replay hands over ==================== */

static void on_report(void *ctx, const char *line)
{
	MUST(strncmp(line, "spool:", 6) == 0);
}

/* on_msg - check one recovered message and remember its identity. */
static void on_msg(void *ctx, struct envelope *m)
{
	struct collect *c = ctx;

	MUST(m != NULL);
	for (size_t i = 0; i < m->nrcpt; i++)
		MUST(m->rcpts[i].state <= 15);
	/* Failure details: one per recipient at most, in range, within their bounds. */
	for (size_t i = 0; i < m->nfailures; i++) {
		const struct envelope_failure *f = &m->failures[i];

		MUST(f->rcpt < m->nrcpt);
		MUST(f->action == ENVELOPE_FAILURE_FAILED || f->action == ENVELOPE_FAILURE_RELAYED);
		MUST(f->code <= 999);
		MUST(f->response && strlen(f->response) <= ENVELOPE_FAILURE_RESPONSE_MAX);
		MUST(f->remote == NULL || strlen(f->remote) <= ENVELOPE_FAILURE_REMOTE_MAX);
		for (size_t k = 0; k < i; k++)
			MUST(m->failures[k].rcpt != f->rcpt);
	}
	if (c->check_loc) {
		bool found = false;
		for (size_t i = 0; i < c->nseg; i++) {
			if (c->seg_seq[i] != m->loc.segment)
				continue;
			found = true;
			MUST(m->loc.offset <= c->seg_size[i] &&
			     m->loc.length <= c->seg_size[i] - m->loc.offset);
		}
		MUST(found);
	}
	if (c->n < MAX_LIVE) {
		struct seen *s = &c->live[c->n++];
		s->id = m->id;
		s->nrcpt = m->nrcpt;
		s->nfailures = m->nfailures;
		s->states = 0;
		for (size_t i = 0; i < m->nrcpt && i < 16; i++)
			s->states |= (uint64_t)(m->rcpts[i].state & 15) << (4 * i);
	}
	c->total++;
	envelope_free(m);
}

/* same_live - the two replays handed over the same messages, in the same order. */
static bool same_live(const struct collect *a, const struct collect *b)
{
	if (a->total != b->total || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->live[i].id != b->live[i].id || a->live[i].nrcpt != b->live[i].nrcpt ||
		    a->live[i].states != b->live[i].states ||
		    a->live[i].nfailures != b->live[i].nfailures)
			return false;
	return true;
}

/* scan - the read-only replay; returns its result. */
static int scan(struct collect *c, bool include_done)
{
	struct str err = STR_INIT;
	int rc = spool_scan_ex(dir, include_done, on_msg, c, on_report, NULL, &err);

	MUST(rc == 0 || rc == -EPROTO);
	MUST((rc < 0) == (err.len > 0));
	str_free(&err);
	return rc;
}

/* ==================== the target ==================== */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t seqs[4] = { 2, 1, 0, UINT64_MAX };
	struct collect before = { .check_loc = true }, opened = { 0 }, after = { 0 };
	struct str seg = STR_INIT;

	if (dir[0] == '\0') {
		const char *parent = getenv("IMPETUS_FUZZ_TMPDIR");
		if (parent == NULL || parent[0] == '\0' || strlen(parent) > 200)
			parent = "/dev/shm";
		snprintf(dir, sizeof(dir), "%s/impetus-fuzz-replay.%d", parent, (int)getpid());
		MUST(mkdir(dir, 0700) == 0 || errno == EEXIST);
		atexit(remove_dir);
	}
	if (size == 0)
		return 0;
	uint8_t flags = data[0];
	unsigned mode = flags & 3;
	bool repair = flags & 4, older = flags & 8, include_done = flags & 64;
	uint64_t seq = seqs[(flags >> 4) & 3];
	data++;
	size--;

	empty_dir();
	if (older && seq != 1) {
		uint8_t h[SPOOL_SEG_HDR_SIZE];
		spool_seg_header(1, h);
		str_append(&seg, (const char *)h, sizeof(h));
		add_builtin(&seg);
		write_seg(&before, 1, &seg);
		str_clear(&seg);
	}
	if (mode != 0) {
		uint8_t h[SPOOL_SEG_HDR_SIZE];
		spool_seg_header(seq, h);
		str_append(&seg, (const char *)h, sizeof(h));
	}
	if (mode == 3)
		add_builtin(&seg);
	if (mode >= 2)
		add_framed(&seg, data, size);
	else
		str_append(&seg, (const char *)data, size);
	write_seg(&before, seq, &seg);
	if (flags & 128) {
		static const char zeros[100];
		char name[SPOOL_SEG_NAME_SIZE], path[320];

		snprintf(path, sizeof(path), "%s/%s", dir, spool_seg_name(seq, name));
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		MUST(fd >= 0);
		MUST(pwrite(fd, zeros, sizeof(zeros), (off_t)seg.len) == (ssize_t)sizeof(zeros));
		MUST(ftruncate(fd, (off_t)seg.len + 8192) == 0);
		close(fd);
		/* a record may reach into the zeros: they are part of the file */
		before.seg_size[before.nseg - 1] = seg.len + 8192;
	}
	str_free(&seg);

	int rc = scan(&before, include_done);
	if (repair && rc == 0 && !include_done) {
		/*
		 * Repair mode: the newest segment's torn tail is cut, empty
		 * segments go, a fresh segment is created; the spool thread is
		 * never started, as when impetusd fails right after recovery.
		 */
		/*
		 * A small segment size: the fresh segment is preallocated to it
		 * (fallocate, then cut back by spool_stop), and at the default
		 * 64 MiB zeroing those tmpfs pages cost ~10 ms per run, 30
		 * times the replay itself.
		 */
		struct spool_options o = { .no_sync = true, .report = on_report,
					   .segment_size = 64 << 10 };
		struct str err = STR_INIT;
		struct spool *sp = spool_open(dir, &o, on_msg, &opened, &err);

		if (sp == NULL) {
			/* only the new segment's name can be refused: UINT64_MAX + 1 */
			MUST(err.len > 0);
		} else {
			spool_stop(sp);
			MUST(same_live(&before, &opened));
			MUST(scan(&after, false) == 0);
			MUST(same_live(&before, &after));
		}
		str_free(&err);
	}
	return 0;
}
