/*
 * spool_replay.c - rebuild the spool's contents from its segment files
 *
 * Segments are read in sequence order; within one, records in file order.
 * A MESSAGE record creates a message (a later copy with the same id
 * replaces an earlier one); RCPT_STATE, RCPT_RETRY, RCPT_FAILURE,
 * BINDING and MESSAGE_DONE apply to a message seen earlier, and are
 * ignored when the id is unknown, because the segment holding that
 * message was reclaimed after the message finished (docs/spool.md,
 * "Reclaiming space").
 *
 * Damage handling:
 *   - A record that fails its checks is reported with segment and offset,
 *     then we look for the next offset where a complete, CRC-valid record
 *     starts and carry on from there, reporting how many bytes were skipped.
 *   - When no valid record follows, the damage is the segment's tail. In
 *     the newest segment in repair mode that is a write that was never
 *     acknowledged: the file is cut back to the last good record, and the
 *     cut is reported. Anywhere else the tail is reported and left alone.
 *   - Zero-length and header-only segments are removed in repair mode.
 *   - Segments are preallocated (spool.c): the file is longer than its
 *     records and the rest reads as zeros. Where records stop and only
 *     zeros follow, the data ends; that is not damage and is not reported
 *     (repair mode gives the space back). A torn record followed by zeros
 *     is a torn tail like any other; its reports count the bytes up to the
 *     last non-zero one.
 * Nothing is dropped without a report line.
 *
 * State: everything lives in a struct replay on the caller's stack and is
 * freed before returning. Fails (returns -errno) only when the directory
 * cannot be listed or a segment has a format version we do not know;
 * unreadable segments are reported and skipped.
 */
#include "spool/spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "spool/spool_idmap.h"
#include "spool/spool_record.h"

#define READ_WINDOW (1u << 20)	/* bytes read ahead per refill */
#define RESYNC_CHUNK 65536u	/* bytes searched per step for a record magic */

/* ==================== reports ==================== */

void spool_reportf(spool_report_fn fn, void *ctx, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&line, fmt, ap);
	va_end(ap);
	if (fn)
		fn(ctx, str_cstr(&line));
	else
		fprintf(stderr, "impetus: %s\n", str_cstr(&line));
	str_free(&line);
}

bool spool_msg_all_final(const struct envelope *msg)
{
	for (size_t i = 0; i < msg->nrcpt; i++)
		if (msg->rcpts[i].state == ENVELOPE_RCPT_QUEUED)
			return false;
	return true;
}

/* ==================== windowed segment reader ==================== */

/*
 * struct reader - a read-ahead window over one segment file. size is what
 * fstat said; it shrinks if the file turns out shorter (a daemon cut a
 * failed batch while we were reading).
 */
struct reader {
	int fd;
	uint64_t size;
	uint8_t *buf;
	size_t cap;
	uint64_t base;		/* file offset of buf[0] */
	size_t len;		/* valid bytes in buf */
	int err;		/* first read error, as -errno */
};

/*
 * rd_get - n bytes at off, or NULL when they are not in the file (or a read failed).
 * Zero bytes are always there: a 0-byte file has no window (buf NULL), and
 * NULL + 0 is undefined behaviour.
 */
static const uint8_t *rd_get(struct reader *r, uint64_t off, size_t n)
{
	static const uint8_t nothing[1];
	size_t want, got = 0;

	if (off > r->size || n > r->size - off)
		return NULL;
	if (n == 0)
		return nothing;
	if (off >= r->base && off + n <= r->base + r->len)
		return r->buf + (off - r->base);
	want = n > READ_WINDOW ? n : READ_WINDOW;
	if (want > r->size - off)
		want = (size_t)(r->size - off);
	if (want > r->cap) {
		free(r->buf);
		r->buf = xmalloc(want);
		r->cap = want;
	}
	r->base = off;
	r->len = 0;
	while (got < want) {
		ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r->err = -errno;
			return NULL;
		}
		if (k == 0) {
			r->size = off + got;
			break;
		}
		got += (size_t)k;
	}
	r->len = got;
	return got >= n ? r->buf : NULL;
}

/* ==================== replay state ==================== */

/* One message being rebuilt; msg is NULL once it is known done and freed. */
struct rmsg {
	struct envelope *msg;
	uint64_t rec_off;	/* start of its last MESSAGE record */
	bool done;
	bool rebound;		/* a BINDING record after it changed the binding */
	struct rmsg *next;
};

struct replay {
	const struct spool_replay_opts *o;
	const char *dir;
	int dirfd;
	struct spool_idmap map;		/* id -> struct rmsg */
	struct rmsg *head, **tail;	/* in MESSAGE record order */
	struct spool_seg *segs;
	size_t nsegs;
};

#define REPORT(rp, ...) spool_reportf((rp)->o->report, (rp)->o->report_ctx, __VA_ARGS__)

/* apply - one valid record at off of segment seg. Takes rec->msg. */
static void apply(struct replay *rp, struct spool_seg *seg, const char *name, uint64_t off,
		  struct spool_rec *rec)
{
	struct rmsg *m = spool_idmap_get(&rp->map, rec->id);
	char idbuf[ID_BUF_SIZE];

	id_observe(rec->id);
	if (rec->type == SPOOL_REC_MESSAGE) {
		struct envelope *msg = rec->msg;

		msg->loc.segment = seg->seq;
		msg->loc.offset = off + rec->body_offset;
		msg->loc.length = rec->body_length;
		if (m && (rec->flags & SPOOL_REC_FLAG_RELOCATED)) {
			/*
			 * Compaction's copy: it carries every state that was
			 * durable when it was written, and the state records
			 * after it apply to it. A copy is only ever made of a
			 * live message, so one met after the message finished
			 * is older news than the finish: keep it finished.
			 */
			if (m->msg == NULL || m->done) {
				envelope_free(msg);
				return;
			}
			/*
			 * The copy's RCPT_FAILURE records follow it in the
			 * same commit; until those are met (and should a
			 * torn tail have cut them off while the original
			 * still exists) the details seen so far stand.
			 */
			msg->failures = m->msg->failures;
			msg->nfailures = m->msg->nfailures;
			m->msg->failures = NULL;
			m->msg->nfailures = 0;
			envelope_free(m->msg);
			m->msg = msg;
			m->rec_off = off;
			return;
		}
		if (m) {
			REPORT(rp, "spool: %s duplicate message record segment=%s offset=%" PRIu64
			       " (the later copy replaces the earlier)",
			       id_format(rec->id, idbuf), name, off);
			envelope_free(m->msg);
			m->msg = msg;
			m->rec_off = off;
			m->done = false;
			return;
		}
		m = XNEW(struct rmsg);
		m->msg = msg;
		m->rec_off = off;
		*rp->tail = m;
		rp->tail = &m->next;
		spool_idmap_put(&rp->map, rec->id, m);
		return;
	}
	if (m == NULL || m->msg == NULL)
		return;		/* its segment was reclaimed, or it is done */
	if (rec->type == SPOOL_REC_BINDING) {
		free(m->msg->binding);
		free(m->msg->binding_group);
		m->msg->binding = xstrndup(rec->binding, rec->binding_len);
		m->msg->binding_group = xstrndup(rec->binding_group, rec->binding_group_len);
		m->rebound = true;
		return;
	}
	if (rec->type == SPOOL_REC_MESSAGE_DONE) {
		m->done = true;
		if (!rp->o->include_done) {
			envelope_free(m->msg);
			m->msg = NULL;
		}
		return;
	}
	if (rec->rcpt_index >= m->msg->nrcpt) {
		REPORT(rp, "spool: %s %s for recipient %" PRIu32 " of a message with %zu"
		       " segment=%s offset=%" PRIu64 " ignored",
		       id_format(rec->id, idbuf), spool_rec_type_name(rec->type),
		       rec->rcpt_index, m->msg->nrcpt, name, off);
		return;
	}
	if (rec->type == SPOOL_REC_RCPT_STATE) {
		m->msg->rcpts[rec->rcpt_index].state = rec->state;
	} else if (rec->type == SPOOL_REC_RCPT_FAILURE) {
		struct envelope_failure f;

		spool_rec_failure(rec, &f);
		envelope_failure_put(m->msg, &f);
		free(f.response);
		free(f.remote);
	} else {
		m->msg->rcpts[rec->rcpt_index].retries = rec->retries;
		m->msg->rcpts[rec->rcpt_index].next_attempt = rec->next_attempt;
	}
}

/*
 * try_record - decode the record at off. Returns its length (> 0) with rec
 * filled, or 0 with *why. Reads exactly as much of the file as the header
 * asks for, so a lying length costs at most one bounded read.
 */
static uint64_t try_record(struct reader *r, uint64_t off, bool with_msg,
			   struct spool_rec *rec, const char **why, bool *is_short)
{
	uint64_t avail = r->size - off, need;
	size_t k = avail < SPOOL_REC_HDR_SIZE ? (size_t)avail : SPOOL_REC_HDR_SIZE;
	const uint8_t *p = rd_get(r, off, k);
	long long n;

	*is_short = false;
	if (p == NULL) {
		*why = r->err ? "read error" : "truncated record header";
		*is_short = !r->err;
		return 0;
	}
	n = spool_rec_decode(p, k, with_msg, rec, &need, why);
	if (n == SPOOL_REC_SHORT && need > k) {
		if (need > avail) {
			*why = "record extends past end of segment";
			*is_short = true;
			return 0;
		}
		p = rd_get(r, off, (size_t)need);
		if (p == NULL) {
			*why = r->err ? "read error" : "record extends past end of segment";
			*is_short = !r->err;
			return 0;
		}
		n = spool_rec_decode(p, (size_t)need, with_msg, rec, &need, why);
	}
	if (n == SPOOL_REC_SHORT)
		*is_short = true;
	return n > 0 ? (uint64_t)n : 0;
}

/* resync - the first offset after off where a valid record starts, or 0. */
static uint64_t resync(struct reader *r, uint64_t off)
{
	uint64_t pos = off + 1;

	while (r->size > pos && r->size - pos >= SPOOL_REC_HDR_SIZE) {
		uint64_t left = r->size - pos;
		size_t k = left < RESYNC_CHUNK ? (size_t)left : RESYNC_CHUNK;
		const uint8_t *p = rd_get(r, pos, k);
		const uint8_t *hit;

		if (p == NULL)
			return 0;
		hit = memchr(p, SPOOL_REC_MAGIC0, k);
		if (hit == NULL) {
			pos += k;
			continue;
		}
		pos += (uint64_t)(hit - p);
		{
			struct spool_rec rec;
			const char *why;
			bool is_short;

			if (try_record(r, pos, false, &rec, &why, &is_short) > 0)
				return pos;
		}
		pos++;
	}
	return 0;
}

/*
 * data_end - the end of the non-zero bytes of [off, r->size): off when
 * they are all zeros (a preallocated tail). Holes and unwritten extents
 * are skipped with SEEK_DATA / SEEK_HOLE where the file system has them;
 * a read error counts as data (never take what we could not read for the
 * end).
 */
static uint64_t data_end(struct reader *r, uint64_t off)
{
	uint64_t end = off, pos = off;

	while (pos < r->size) {
		off_t d = lseek(r->fd, (off_t)pos, SEEK_DATA), h;
		uint64_t stop;

		if (d < 0 && errno == ENXIO)
			break;		/* nothing but a hole after pos */
		if (d < 0)
			d = (off_t)pos;	/* no SEEK_DATA here: read everything */
		if ((uint64_t)d >= r->size)
			break;
		h = lseek(r->fd, d, SEEK_HOLE);
		stop = h < 0 || (uint64_t)h > r->size ? r->size : (uint64_t)h;
		for (pos = (uint64_t)d; pos < stop;) {
			size_t k = stop - pos < RESYNC_CHUNK ? (size_t)(stop - pos) : RESYNC_CHUNK;
			const uint8_t *p = rd_get(r, pos, k);

			if (p == NULL)
				return r->err ? r->size : end;	/* shrank under us: ends there */
			for (size_t i = k; i > 0; i--)
				if (p[i - 1]) {
					end = pos + i;
					break;
				}
			pos += k;
		}
		if (h < 0)
			break;
	}
	return end;
}

/* cut_tail - truncate the newest segment to len after an unacknowledged, torn write. */
static int cut_tail(struct replay *rp, const char *name, uint64_t len)
{
	int fd = openat(rp->dirfd, name, O_WRONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0 || fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* remove_seg - unlink an empty segment file (repair mode). */
static void remove_seg(struct replay *rp, const char *name, const char *what)
{
	if (unlinkat(rp->dirfd, name, 0) < 0 && errno != ENOENT)
		REPORT(rp, "spool: cannot remove %s segment=%s/%s: %s", what, rp->dir, name,
		       strerror(errno));
}

/*
 * replay_segment - read one segment file. newest: it is the last one, so a
 * damaged tail is an unacknowledged write. Returns 0, 1 when the segment
 * is gone (empty, removed), or -errno for a fatal format problem.
 */
static int replay_segment(struct replay *rp, struct spool_seg *seg, bool newest,
			  struct str *err)
{
	char name[SPOOL_SEG_NAME_SIZE];
	struct reader r = { .fd = -1 };
	struct stat st;
	uint64_t off, hseq;
	uint32_t version;
	const uint8_t *p;
	const char *why;
	int rc = 0;

	spool_seg_name(seg->seq, name);
	r.fd = openat(rp->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0) {
		if (errno == ENOENT)
			return 1;	/* reclaimed by a running daemon meanwhile */
		REPORT(rp, "spool: cannot open segment=%s/%s: %s; its messages are not recovered",
		       rp->dir, name, strerror(errno));
		seg->damaged = true;
		return 0;
	}
	if (fstat(r.fd, &st) < 0) {
		rc = -errno;
		str_appendf(err, "%s/%s: fstat: %s", rp->dir, name, strerror(errno));
		goto out;
	}
	r.size = (uint64_t)st.st_size;
	if (r.size <= SPOOL_SEG_HDR_SIZE) {
		p = rd_get(&r, 0, (size_t)r.size);
		/*
		 * Zero bytes or a header only: created, never written to. A
		 * shorter or invalid header holds no record either (the newest
		 * one is a crash while it was being created) but say so.
		 */
		if (r.size > 0 && !(r.size == SPOOL_SEG_HDR_SIZE && p &&
		    spool_seg_check_header(p, (size_t)r.size, &hseq, &version, &why) == 0))
			REPORT(rp, "spool: segment=%s/%s is only %" PRIu64 " bytes with no valid"
			       " header; it holds no records%s", rp->dir, name, r.size,
			       rp->o->repair ? ", removed" : "");
		if (rp->o->repair)
			remove_seg(rp, name, "empty");
		rc = 1;
		goto out;
	}
	p = rd_get(&r, 0, SPOOL_SEG_HDR_SIZE);
	if (p && spool_seg_check_header(p, SPOOL_SEG_HDR_SIZE, &hseq, &version, &why) < 0 &&
	    data_end(&r, 0) == 0) {
		/* Preallocated, and the header never reached the disk: never written to. */
		if (rp->o->repair)
			remove_seg(rp, name, "empty");
		rc = 1;
		goto out;
	}
	if (p == NULL || spool_seg_check_header(p, SPOOL_SEG_HDR_SIZE, &hseq, &version, &why) < 0) {
		REPORT(rp, "spool: segment=%s/%s offset=0 %s; reading its records anyway",
		       rp->dir, name, p ? why : "read error");
		seg->damaged = true;
	} else if (version != SPOOL_SEG_VERSION) {
		rc = -EPROTO;
		str_appendf(err, "%s/%s: segment format version %" PRIu32
			    " is not supported (this impetus reads version %u)",
			    rp->dir, name, version, SPOOL_SEG_VERSION);
		goto out;
	} else if (hseq != seg->seq) {
		REPORT(rp, "spool: segment=%s/%s header names sequence %" PRIu64
		       "; trusting the file name", rp->dir, name, hseq);
	}

	off = SPOOL_SEG_HDR_SIZE;
	while (off < r.size) {
		struct spool_rec rec;
		bool is_short;
		uint64_t n = try_record(&r, off, true, &rec, &why, &is_short);
		uint64_t next, dend;

		if (n > 0) {
			apply(rp, seg, name, off, &rec);
			off += n;
			continue;
		}
		if (r.err) {
			REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " read error: %s;"
			       " the rest of this segment is not recovered",
			       rp->dir, name, off, strerror(-r.err));
			seg->damaged = true;
			break;
		}
		dend = data_end(&r, off);
		if (r.err)
			continue;	/* reported above, next turn */
		if (dend == off) {
			/* Zeros to the end: the preallocated rest of the segment. */
			if (rp->o->repair && off < r.size)
				(void)cut_tail(rp, name, off);
			r.size = off;
			break;
		}
		next = resync(&r, off);
		if (next) {
			REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " corrupt record (%s);"
			       " skipped %" PRIu64 " bytes to the next valid record at offset %" PRIu64,
			       rp->dir, name, off, why, next - off, next);
			seg->damaged = true;
			off = next;
			continue;
		}
		/* Nothing valid follows: the damage is the tail of the file. */
		if (newest && rp->o->repair) {
			int trc = cut_tail(rp, name, off);

			if (trc == 0)
				REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " torn tail (%s):"
				       " truncated %" PRIu64 " unacknowledged bytes",
				       rp->dir, name, off, why, dend - off);
			else
				REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " torn tail (%s):"
				       " cannot truncate: %s", rp->dir, name, off, why,
				       strerror(-trc));
			r.size = off;
		} else if (newest) {
			/*
			 * Read-only: a record cut short is most likely one a
			 * running daemon is writing right now; say nothing about
			 * that. So is one followed by zeros (in a preallocated
			 * segment the bytes not yet copied read as zeros).
			 * Complete but bad bytes are worth a line.
			 */
			if (!is_short && dend == r.size)
				REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " bad tail of %"
				       PRIu64 " bytes ignored (%s; torn write, not acknowledged)",
				       rp->dir, name, off, r.size - off, why);
		} else {
			REPORT(rp, "spool: segment=%s/%s offset=%" PRIu64 " corrupt tail (%s):"
			       " %" PRIu64 " bytes not recovered",
			       rp->dir, name, off, why, dend - off);
			seg->damaged = true;
		}
		break;
	}
	seg->size = r.size;
	if (rp->o->repair && seg->size <= SPOOL_SEG_HDR_SIZE && !seg->damaged) {
		remove_seg(rp, name, "empty");
		rc = 1;
	}
out:
	free(r.buf);
	close(r.fd);
	return rc;
}

/* ==================== directory ==================== */

/* cmp_seq - qsort order of segments. */
static int cmp_seq(const void *a, const void *b)
{
	uint64_t x = ((const struct spool_seg *)a)->seq, y = ((const struct spool_seg *)b)->seq;

	return x < y ? -1 : x > y;
}

/* list_segments - the segment files of the directory, sorted; *max_seq over all seg names. */
static int list_segments(struct replay *rp, uint64_t *max_seq, struct str *err)
{
	int fd = dup(rp->dirfd);
	DIR *d;
	struct dirent *de;
	size_t cap = 0;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		str_appendf(err, "%s: %s", rp->dir, strerror(e));
		return -e;
	}
	rewinddir(d);
	*max_seq = 0;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;

		if (spool_seg_parse_name(de->d_name, ".corrupt", &seq) && seq > *max_seq)
			*max_seq = seq;
		if (!spool_seg_parse_name(de->d_name, NULL, &seq))
			continue;
		if (rp->nsegs == cap) {
			cap = cap ? cap * 2 : 16;
			rp->segs = xrealloc(rp->segs, cap * sizeof(*rp->segs));
		}
		rp->segs[rp->nsegs++] = (struct spool_seg){ .seq = seq };
		errno = 0;
	}
	if (errno) {
		int e = errno;

		str_appendf(err, "%s: readdir: %s", rp->dir, strerror(e));
		closedir(d);
		return -e;
	}
	closedir(d);
	if (rp->nsegs)
		qsort(rp->segs, rp->nsegs, sizeof(*rp->segs), cmp_seq);
	return 0;
}

/* find_seg - binary search of the sorted segment array. */
static struct spool_seg *find_seg(struct spool_seg *segs, size_t n, uint64_t seq)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (segs[mid].seq == seq)
			return &segs[mid];
		if (segs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int spool_replay(int dirfd, const char *dir, const struct spool_replay_opts *o,
		 spool_replay_fn fn, void *ctx, struct spool_seg **segs_out, size_t *nsegs_out,
		 uint64_t *max_seq, struct str *err)
{
	struct replay rp = { .o = o, .dir = dir, .dirfd = dirfd };
	struct rmsg *m, *next;
	size_t kept = 0;
	uint64_t maxs = 0;
	int rc;

	spool_idmap_init(&rp.map);
	rp.tail = &rp.head;
	rc = list_segments(&rp, &maxs, err);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < rp.nsegs; i++) {
		if (rp.segs[i].seq > maxs)
			maxs = rp.segs[i].seq;
		rc = replay_segment(&rp, &rp.segs[i], i + 1 == rp.nsegs, err);
		if (rc < 0)
			goto out;
		if (rc == 0)
			rp.segs[kept++] = rp.segs[i];
	}
	rp.nsegs = kept;
	rc = 0;

	/*
	 * Hand over in record order. A message counts as done when it has a
	 * MESSAGE_DONE or when no recipient is left queued (the done record
	 * may not have made it to disk before a crash), unless its DSN is
	 * still owed: a failure detail (RCPT_FAILURE) of a final recipient
	 * and no MESSAGE_DONE, which the queue writes only once the report
	 * is on disk. Such a message is live: the queue sends the report.
	 */
	for (m = rp.head; m; m = next) {
		next = m->next;
		if (m->msg) {
			bool done = m->done ||
				    (spool_msg_all_final(m->msg) && !envelope_report_due(m->msg));

			if (!done) {
				struct spool_seg *s = find_seg(rp.segs, rp.nsegs, m->msg->loc.segment);

				if (s)
					s->live++;
			}
			if (!done || o->include_done)
				fn(ctx, m->msg, done, m->rec_off, m->rebound);
			else
				envelope_free(m->msg);
		}
		free(m);
	}
	rp.head = NULL;
	if (segs_out) {
		*segs_out = rp.segs;
		*nsegs_out = rp.nsegs;
		rp.segs = NULL;
	}
	if (max_seq)
		*max_seq = maxs;
out:
	for (m = rp.head; m; m = next) {
		next = m->next;
		envelope_free(m->msg);
		free(m);
	}
	spool_idmap_free(&rp.map);
	free(rp.segs);
	return rc;
}
