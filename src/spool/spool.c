/*
 * spool.c - the spool thread: group commit, segment rotation, liveness and
 * reclaiming, body reads (see spool.h; the format is docs/spool.md)
 *
 * Ownership:
 *   - Main thread: spool_open (recovery) and spool_stop, while the spool
 *     thread is not running.
 *   - Spool thread (a struct loop named "spool"): the segment list, the
 *     write fd, the pending batch, the live-message index. Other threads
 *     reach them only by typed posts (msgs_post: spool_submit and the state calls).
 *   - Any thread: spool_read_body, through spool_reader.c (cached
 *     read-only fds under a rwlock); spool_get_stats, relaxed atomics.
 *
 * Group commit: each post only appends a pre-encoded record (the submitter
 * encoded it and computed its CRC on its own thread) to the pending batch.
 * When the loop has run every post it found, its drain hook writes the
 * whole batch with pwritev at the end of the current segment and calls
 * fdatasync once. Posts that arrive meanwhile wait in the loop inbox and
 * become the next batch, so the number of syncs per second stays bounded
 * by the disk, not by the message rate.
 *
 * Syncs are earned by messages: a batch with no MESSAGE record (only
 * delivery-state records: RCPT_STATE, RCPT_RETRY, RCPT_FAILURE,
 * MESSAGE_DONE, which nobody waits on) is not committed by the drain
 * hook. It stays pending, rides with the next message batch, and a timer
 * (state_flush_ms, 1 s) commits it when no message comes. Losing such
 * records in a crash only means a recipient is tried again
 * (at-least-once); the live index, and with it reclaiming and
 * compaction, changes only when they are durable, so no segment goes
 * before the MESSAGE_DONE that frees it is on disk.
 * A BINDING record still commits at once: it is a module's policy
 * decision (where the message may go out), not an outcome that can
 * safely be redone, and it is rare.
 *
 * Batch wait: a commit that would hold exactly one message, while
 * messages have been arriving at least every batch_wait_us on average,
 * waits up to batch_wait_us (a timerfd) for a second one; the second
 * message, or any commit for another reason, ends the wait at once. The
 * answer still goes out only after the fdatasync.
 *
 * Preallocation: a segment is fallocated to its full size when it is
 * created, so its i_size never changes while records are appended, and
 * each commit that comes within ZERO_AHEAD / 2 of the end of what was
 * ever written also writes ZERO_AHEAD bytes of zeros after its records
 * (in the same pwritev, synced by the same fdatasync). Later commits then
 * overwrite blocks that are allocated *and written*: fdatasync has no
 * extent to convert and no size to log, only the data to flush. Recovery
 * takes a tail of zeros as the end of the data (spool_replay.c). A file
 * system without fallocate gets plain appends, as before.
 *
 * Failure: a write or sync error fails every MESSAGE of the batch with the
 * negative errno, cuts the file back to its last durable length and keeps
 * the (answer-less) state records for the next attempt, which a one-second
 * timer forces if nothing else arrives. If even the cut fails the segment
 * is abandoned and the next batch starts a new one.
 */
#include "spool/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/fsutil.h"
#include "core/histo.h"
#include "core/loop.h"
#include "core/mem.h"
#include "msgs/msgs.h"
#include "spool/spool_idmap.h"
#include "spool/spool_int.h"
#include "spool/spool_reader.h"
#include "spool/spool_record.h"

#define DEFAULT_SEGMENT_SIZE (64ull << 20)
#define BATCH_MAX_BYTES (8u << 20)	/* commit early past this much pending data */
#define BATCH_MAX_RECORDS 4096u		/* ... or this many records */
#define RETRY_SECONDS 1			/* retry kept state records after a failed batch */
#define STATE_FLUSH_MS 1000u		/* default bound on how long state records wait for a batch */
#define GAP_MAX_US 1000000		/* one idle pause moves the arrival average at most this */
#define LOCK_NAME "lock"
#define COPY_CHUNK (1u << 20)		/* bounce buffer when copy_file_range cannot copy */
#define ZERO_AHEAD (1u << 20)		/* zeros written ahead of the records in a preallocated segment */
#define ZERO_BUF (64u << 10)		/* one static buffer of zeros, referenced ZERO_AHEAD / ZERO_BUF times */

#define REPORT(sp, ...) SPOOL_REPORT(sp, __VA_ARGS__)

/* One record on its way to disk. Built by the submitter, owned by the spool thread. */
struct spool_req {
	struct spool_req *next;
	struct spool *sp;
	uint8_t type;			/* enum spool_rec_type */
	struct str rec;			/* encoded record; for MESSAGE without the body */
	struct envelope *msg;		/* MESSAGE: the submission */
	size_t body_off;		/* MESSAGE: body offset from the record start */
	struct loop *reply_loop;
	spool_done_fn done;
	void *ctx;
	int err;
	uint64_t at;			/* file offset of the record once written */
	impetus_id id;
	uint32_t rcpt_index;
	uint8_t state;
	uint32_t retries;		/* RCPT_RETRY */
	int64_t next_attempt;		/* RCPT_RETRY */
	char *binding, *binding_group;	/* BINDING */
};

void spool_stat_set(_Atomic uint64_t *a, uint64_t v)
{
	atomic_store_explicit(a, v, memory_order_relaxed);
}

void spool_stat_add(_Atomic uint64_t *a, uint64_t v)
{
	atomic_fetch_add_explicit(a, v, memory_order_relaxed);
}

/* ==================== segments ==================== */

/* cur_seg - the segment being written. */
static struct spool_seg *cur_seg(struct spool *sp)
{
	return &sp->segs[sp->nsegs - 1];
}

struct spool_seg *spool_seg_find(struct spool *sp, uint64_t seq)
{
	size_t lo = 0, hi = sp->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->segs[mid].seq == seq)
			return &sp->segs[mid];
		if (sp->segs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* sync_dir - make a file creation or removal in the spool directory durable. */
static int sync_dir(struct spool *sp)
{
	if (sp->opts.no_sync)
		return 0;
	return fsync(sp->dirfd) < 0 ? -errno : 0;
}

/*
 * seg_trim - the current segment is finished (rotation, stop): give back
 * its preallocated tail. Not synced: after a crash recovery finds the
 * zeros instead and takes them as the end of the data.
 */
static void seg_trim(struct spool *sp)
{
	if (sp->cur_fd < 0 || sp->cur_broken || sp->cur_alloc == 0 || sp->nsegs == 0)
		return;
	if (cur_seg(sp)->size < sp->cur_alloc || cur_seg(sp)->size < sp->cur_zeroed)
		(void)ftruncate(sp->cur_fd, (off_t)cur_seg(sp)->size);
	sp->cur_alloc = sp->cur_zeroed = 0;
}

/*
 * seg_prealloc - allocate the whole segment of a new file (fd, header
 * written) so appends never change its size. Returns the allocated size,
 * or 0 when the file system cannot (EOPNOTSUPP: plain appends, as before)
 * or has no room for all of it (the records may still fit; a write error
 * will say so when they do not).
 */
static uint64_t seg_prealloc(struct spool *sp, int fd)
{
	uint64_t len = sp->opts.segment_size;

	if (len <= SPOOL_SEG_HDR_SIZE || sp->opts.no_prealloc)
		return 0;
	if (fallocate(fd, 0, 0, (off_t)len) == 0)
		return len;
	/* A failed fallocate may have allocated part of it: back to the header. */
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		(void)ftruncate(fd, SPOOL_SEG_HDR_SIZE);
	return 0;
}

/*
 * seg_create - start a new segment and make it the one written to. The
 * directory is synced before any record goes in, so an acknowledged
 * record can never sit in a file whose name was lost.
 */
static int seg_create(struct spool *sp)
{
	char name[SPOOL_SEG_NAME_SIZE];
	uint8_t hdr[SPOOL_SEG_HDR_SIZE];
	uint64_t seq = sp->next_seq, alloc = 0;
	int fd, rc;

	spool_seg_name(seq, name);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	spool_seg_header(seq, hdr);
	rc = fs_pwrite_all(fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		alloc = seg_prealloc(sp, fd);
	if (rc == 0)
		rc = sync_dir(sp);
	if (rc < 0) {
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		return rc;
	}
	seg_trim(sp);
	sp->cur_alloc = alloc;
	sp->cur_zeroed = SPOOL_SEG_HDR_SIZE;
	sp->next_seq++;
	if (sp->nsegs == sp->capsegs) {
		sp->capsegs = sp->capsegs ? sp->capsegs * 2 : 16;
		sp->segs = xrealloc(sp->segs, sp->capsegs * sizeof(*sp->segs));
	}
	sp->segs[sp->nsegs++] = (struct spool_seg){ .seq = seq, .size = SPOOL_SEG_HDR_SIZE };
	if (sp->cur_fd >= 0)
		close(sp->cur_fd);
	sp->cur_fd = fd;
	sp->cur_broken = false;
	spool_stat_add(&sp->st_segments, 1);
	spool_stat_add(&sp->st_bytes, SPOOL_SEG_HDR_SIZE);
	return 0;
}

/*
 * reclaim - remove segments from the oldest end while they hold no live
 * message. Only the oldest may go: a newer segment can hold the
 * RCPT_STATE or MESSAGE_DONE records of messages in older ones, and
 * losing those before the messages would resurrect finished mail. The
 * directory is synced after each removal so that a crash can never keep
 * an older segment while a newer one is gone. A damaged segment is kept
 * as seg-N.log.corrupt for the operator instead of being unlinked.
 */
static void reclaim(struct spool *sp)
{
	while (sp->nsegs > 1 && sp->segs[0].live == 0 && sp->segs[0].pins == 0) {
		struct spool_seg *s = &sp->segs[0];
		char name[SPOOL_SEG_NAME_SIZE], kept[SPOOL_SEG_NAME_SIZE + 16];
		int rc;

		spool_seg_name(s->seq, name);
		if (s->damaged) {
			snprintf(kept, sizeof(kept), "%s.corrupt", name);
			rc = renameat(sp->dirfd, name, sp->dirfd, kept);
		} else {
			rc = unlinkat(sp->dirfd, name, 0);
		}
		if (rc < 0 && errno != ENOENT) {
			REPORT(sp, "spool: cannot remove segment=%s/%s: %s", sp->dir, name,
			       strerror(errno));
			return;
		}
		if (s->damaged)
			REPORT(sp, "spool: segment=%s/%s has no live message left; kept as %s"
			       " because recovery found damage in it", sp->dir, name, kept);
		rc = sync_dir(sp);
		if (rc < 0)
			REPORT(sp, "spool: fsync of directory %s: %s", sp->dir, strerror(-rc));
		spool_reader_forget(&sp->reader, s->seq);
		spool_stat_add(&sp->st_segments, (uint64_t)-1);
		spool_stat_add(&sp->st_bytes, (uint64_t)0 - s->size);
		memmove(&sp->segs[0], &sp->segs[1], (sp->nsegs - 1) * sizeof(*sp->segs));
		sp->nsegs--;
	}
}

/* ==================== live index ==================== */

/* seg_live - count a message record in (n = 1) or out of (n = -1) segment seq. */
static void seg_live(struct spool *sp, uint64_t seq, int n, uint64_t bytes)
{
	struct spool_seg *s = spool_seg_find(sp, seq);

	if (s == NULL)
		return;
	if (n > 0) {
		s->live++;
		s->live_bytes += bytes;
		spool_stat_add(&sp->st_live_bytes, bytes);
	} else if (s->live) {
		s->live--;
		s->live_bytes -= bytes <= s->live_bytes ? bytes : s->live_bytes;
		spool_stat_add(&sp->st_live_bytes, (uint64_t)0 - bytes);
	}
}

/* live_free - free an index entry and what it owns. */
static void live_free(struct live *l)
{
	for (uint32_t i = 0; i < l->nfails; i++)
		str_free(&l->fails[i].rec);
	free(l->fails);
	free(l->binding);
	free(l->binding_group);
	free(l);
}

/* live_forget - a message is finished: drop it and its segment's live count. */
static void live_forget(struct spool *sp, impetus_id id)
{
	struct live *l = spool_idmap_del(&sp->live, id);

	if (l) {
		seg_live(sp, l->loc.segment, -1, live_rec_len(l));
		live_free(l);
	}
}

/* live_failure - a durable RCPT_FAILURE record (encoded) for recipient idx of l. */
static void live_failure(struct live *l, uint32_t idx, const struct str *rec)
{
	struct live_failure *f = NULL;

	for (uint32_t i = 0; i < l->nfails && f == NULL; i++)
		if (l->fails[i].rcpt == idx)
			f = &l->fails[i];
	if (f == NULL) {
		l->fails = xrealloc(l->fails, (l->nfails + 1) * sizeof(*l->fails));
		f = &l->fails[l->nfails++];
		f->rcpt = idx;
		str_init(&f->rec);
	}
	str_clear(&f->rec);
	str_append(&f->rec, rec->s, rec->len);
}

/*
 * live_add - index a message whose record at rec_off is durable (or was
 * recovered), with its recipients' states, retries, next attempts and
 * failure details; those with nothing queued are born dead, unless
 * recovery found their report still owed (the queue sends it, then
 * writes the MESSAGE_DONE).
 */
static void live_add(struct spool *sp, const struct envelope *msg, uint64_t rec_off,
		     bool rebound)
{
	struct live *l;
	uint32_t nq = 0;

	for (size_t i = 0; i < msg->nrcpt; i++)
		nq += msg->rcpts[i].state == ENVELOPE_RCPT_QUEUED;
	live_forget(sp, msg->id);	/* a second copy of an id replaces the first */
	if (nq == 0 && !envelope_report_due(msg))
		return;
	l = xmalloc(sizeof(*l) + msg->nrcpt * sizeof(l->rcpts[0]));
	l->fails = NULL;
	l->nfails = 0;
	for (size_t i = 0; i < msg->nfailures; i++) {
		struct str rec = STR_INIT;

		spool_rec_encode_rcpt_failure(&rec, msg->id, &msg->failures[i]);
		live_failure(l, msg->failures[i].rcpt, &rec);
		str_free(&rec);
	}
	l->loc = msg->loc;
	l->rec_off = rec_off;
	l->nrcpt = (uint32_t)msg->nrcpt;
	l->nqueued = nq;
	l->binding = rebound ? xstrdup(msg->binding ? msg->binding : "") : NULL;
	l->binding_group = rebound ? xstrdup(msg->binding_group ? msg->binding_group : "") : NULL;
	for (size_t i = 0; i < msg->nrcpt; i++) {
		l->rcpts[i].state = msg->rcpts[i].state;
		l->rcpts[i].retries = msg->rcpts[i].retries;
		l->rcpts[i].next_attempt = msg->rcpts[i].next_attempt;
	}
	spool_idmap_put(&sp->live, msg->id, l);
	seg_live(sp, l->loc.segment, 1, live_rec_len(l));
}

/*
 * live_has_failed - whether a recipient of l failed for good, or has a
 * DSN detail (a bounce or a "relayed" notice is due).
 */
static bool live_has_failed(const struct live *l)
{
	if (l->nfails)
		return true;
	for (uint32_t i = 0; i < l->nrcpt; i++)
		if (l->rcpts[i].state == ENVELOPE_RCPT_FAILED)
			return true;
	return false;
}

/*
 * live_rcpt_state - a recipient's durable outcome. The last final one ends
 * the message when all were delivered. With a failed recipient the queue
 * still renders a bounce from this body on the IO pool: the message stays
 * live, so its segment is neither reclaimed nor compacted away under the
 * bounce job, until the MESSAGE_DONE the queue writes after it submitted
 * the bounce. (Recovery hands such a message back to the queue when it
 * has failure details, and counts it finished when it has none.)
 */
static void live_rcpt_state(struct spool *sp, impetus_id id, uint32_t idx, uint8_t state)
{
	struct live *l = spool_idmap_get(&sp->live, id);

	if (l == NULL || idx >= l->nrcpt)
		return;
	if (l->rcpts[idx].state == ENVELOPE_RCPT_QUEUED && state != ENVELOPE_RCPT_QUEUED)
		l->nqueued--;
	else if (l->rcpts[idx].state != ENVELOPE_RCPT_QUEUED && state == ENVELOPE_RCPT_QUEUED)
		l->nqueued++;
	l->rcpts[idx].state = state;
	if (l->nqueued == 0 && !live_has_failed(l))
		live_forget(sp, id);
}

/* live_rcpt_retry - a recipient's durable retry schedule (a relocated copy carries it). */
static void live_rcpt_retry(struct spool *sp, impetus_id id, uint32_t idx, uint32_t retries,
			    int64_t next_attempt)
{
	struct live *l = spool_idmap_get(&sp->live, id);

	if (l == NULL || idx >= l->nrcpt)
		return;
	l->rcpts[idx].retries = retries;
	l->rcpts[idx].next_attempt = next_attempt;
}

/* live_binding - a durable BINDING record: a relocated copy must carry the new binding. */
static void live_binding(struct spool *sp, impetus_id id, const char *binding,
			 const char *binding_group)
{
	struct live *l = spool_idmap_get(&sp->live, id);

	if (l == NULL)
		return;
	free(l->binding);
	free(l->binding_group);
	l->binding = xstrdup(binding);
	l->binding_group = xstrdup(binding_group);
}

/* ==================== group commit ==================== */

/* spool_on_reply - on the submitter's loop: the answer, then the request is gone. */
void spool_on_reply(void *arg)
{
	struct spool_req *req = arg;

	req->done(req->ctx, req->err, req->msg);
	free(req);
}

/* reply - hand a submission back on its reply loop (or right here without one). */
static void reply(struct spool_req *req)
{
	str_free(&req->rec);
	/* Batched: the answers of one commit cost each session's loop one wake-up. */
	if (req->reply_loop)
		msgs_post_batched(req->reply_loop, MSGS_SPOOL_REPLY, req);
	else
		spool_on_reply(req);
}

/* req_free - a state record after its commit. */
static void req_free(struct spool_req *req)
{
	str_free(&req->rec);
	free(req->binding);
	free(req->binding_group);
	free(req);
}

/* write_all - pwritev the iovecs at off, across partial writes and IOV_MAX. */
static int write_all(int fd, struct iovec *iov, size_t n, uint64_t off)
{
	while (n > 0) {
		int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
		ssize_t k = pwritev(fd, iov, cnt, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		off += (uint64_t)k;
		while (k > 0) {
			if ((size_t)k >= iov->iov_len) {
				k -= (ssize_t)iov->iov_len;
				iov++;
				n--;
			} else {
				iov->iov_base = (char *)iov->iov_base + k;
				iov->iov_len -= (size_t)k;
				k = 0;
			}
		}
	}
	return 0;
}

int spool_copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	static char buf[COPY_CHUNK];	/* spool thread only */
	bool kernel = true;

	while (len > 0) {
		size_t want = len > COPY_CHUNK ? COPY_CHUNK : (size_t)len;
		ssize_t k;

		if (kernel) {
			loff_t ri = (loff_t)in_off, wo = (loff_t)out_off;

			k = copy_file_range(in, &ri, out, &wo, len > SSIZE_MAX ? SSIZE_MAX : (size_t)len, 0);
			if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
				      errno == EOPNOTSUPP)) {
				kernel = false;
				continue;
			}
		} else {
			k = pread(in, buf, want, (off_t)in_off);
			if (k > 0) {
				int rc = fs_pwrite_all(out, buf, (size_t)k, out_off);

				if (rc < 0)
					return rc;
			}
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;	/* the file is shorter than it said */
		in_off += (uint64_t)k;
		out_off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

/* iov_push - one more iovec for this batch's pwritev. */
static void iov_push(struct spool *sp, size_t *n, void *p, size_t len)
{
	if (*n == sp->iovcap) {
		sp->iovcap = sp->iovcap ? sp->iovcap * 2 : 256;
		sp->iov = xrealloc(sp->iov, sp->iovcap * sizeof(*sp->iov));
	}
	sp->iov[*n].iov_base = p;
	sp->iov[*n].iov_len = len;
	(*n)++;
}

int spool_cut_back(struct spool *sp, uint64_t off)
{
	/*
	 * The cut also drops the preallocated space. Writing zeros back over
	 * the failed range instead would keep it, but the write that just
	 * failed (ENOSPC, EIO) would most likely fail again.
	 */
	sp->cur_alloc = 0;
	sp->cur_zeroed = 0;
	return ftruncate(sp->cur_fd, (off_t)off) < 0 ? -errno : 0;
}

/*
 * zero_ahead - in a preallocated segment, when the records of this commit
 * end within ZERO_AHEAD / 2 of what was ever written, append ZERO_AHEAD
 * bytes of zeros to the batch's iovecs (never past the preallocation).
 * Returns where the zeros end (off when none are added).
 */
static uint64_t zero_ahead(struct spool *sp, size_t *niov, uint64_t off)
{
	static const char zeros[ZERO_BUF];
	uint64_t end;

	if (sp->cur_alloc == 0 || off >= sp->cur_alloc || off + ZERO_AHEAD / 2 <= sp->cur_zeroed)
		return off;
	end = off + ZERO_AHEAD < sp->cur_alloc ? off + ZERO_AHEAD : sp->cur_alloc;
	for (uint64_t at = off; at < end; at += ZERO_BUF)
		iov_push(sp, niov, (void *)zeros, end - at < ZERO_BUF ? (size_t)(end - at) : ZERO_BUF);
	return end;
}

/*
 * batch_failed - the write or sync of a batch failed with rc: cut the file
 * back, fail the submissions, keep the state records for the next try.
 */
static void batch_failed(struct spool *sp, struct spool_req *batch, int rc, uint64_t durable)
{
	struct spool_seg *seg = cur_seg(sp);
	char name[SPOOL_SEG_NAME_SIZE];
	struct spool_req *req, *next;
	size_t nmsg = 0, nkept = 0;

	spool_stat_add(&sp->st_write_errors, 1);
	spool_seg_name(seg->seq, name);
	if (spool_cut_back(sp, durable) < 0) {
		REPORT(sp, "spool: segment=%s/%s cannot cut back to offset=%" PRIu64
		       " after a write error: %s; starting a new segment", sp->dir, name,
		       durable, strerror(errno));
		sp->cur_broken = true;
	}
	for (req = batch; req; req = next) {
		next = req->next;
		if (req->type == SPOOL_REC_MESSAGE) {
			req->err = rc;
			nmsg++;
			reply(req);
		} else {
			req->next = NULL;
			*sp->pend_tail = req;
			sp->pend_tail = &req->next;
			sp->pend_count++;
			sp->pend_bytes += req->rec.len;
			nkept++;
		}
	}
	REPORT(sp, "spool: write error segment=%s/%s offset=%" PRIu64 ": %s;"
	       " %zu messages refused, %zu state records kept for retry",
	       sp->dir, name, durable, strerror(-rc), nmsg, nkept);
	if (nkept && sp->retry_ev) {
		struct timeval tv = { RETRY_SECONDS, 0 };

		evtimer_add(sp->retry_ev, &tv);
	}
}

/*
 * commit - write the pending batch with one pwritev and one fdatasync,
 * then apply it to the live index, answer the submitters, reclaim and
 * rotate. Spool thread.
 */
static void commit(struct spool *sp)
{
	struct spool_req *batch = sp->pend, *req, *next;
	struct spool_seg *seg;
	uint64_t start, off;
	size_t niov = 0, nrec = sp->pend_count, nmsg = 0;
	int rc;

	if (batch == NULL && !spool_compact_due(sp))
		return;
	sp->pend = NULL;
	sp->pend_tail = &sp->pend;
	sp->pend_count = 0;
	sp->pend_msgs = 0;
	sp->pend_urgent = 0;
	sp->pend_bytes = 0;
	if (sp->flush_armed) {
		/* The state records it waited for are in this batch. */
		evtimer_del(sp->flush_ev);
		sp->flush_armed = false;
	}
	if (sp->waiting) {
		struct itimerspec disarm = { { 0, 0 }, { 0, 0 } };

		(void)timerfd_settime(sp->wait_fd, 0, &disarm, NULL);
		sp->waiting = false;
	}

	if (sp->cur_broken || sp->cur_fd < 0) {
		rc = seg_create(sp);
		if (rc < 0) {
			REPORT(sp, "spool: cannot start a new segment in %s: %s", sp->dir,
			       strerror(-rc));
			spool_stat_add(&sp->st_write_errors, 1);
			for (req = batch; req; req = next) {
				next = req->next;
				if (req->type == SPOOL_REC_MESSAGE) {
					req->err = rc;
					reply(req);
				} else {
					req->next = NULL;
					*sp->pend_tail = req;
					sp->pend_tail = &req->next;
					sp->pend_count++;
				}
			}
			if (sp->pend && sp->retry_ev) {
				struct timeval tv = { RETRY_SECONDS, 0 };

				evtimer_add(sp->retry_ev, &tv);
			}
			return;
		}
	}
	seg = cur_seg(sp);
	start = off = seg->size;
	/* Relocated copies first: the batch's state records then apply to them. */
	rc = spool_compact_write(sp, &off);
	if (rc < 0) {
		spool_compact_abort(sp);
		batch_failed(sp, batch, rc, start);
		return;
	}
	/*
	 * One pwritev for the whole batch, except that a body part in a file
	 * is copied in place: what was gathered before it is written first.
	 */
	uint64_t iov_at = off;
	for (req = batch; req && rc == 0; req = req->next) {
		req->at = off;
		iov_push(sp, &niov, req->rec.s, req->rec.len);
		off += req->rec.len;
		if (req->type != SPOOL_REC_MESSAGE)
			continue;
		struct envelope *msg = req->msg;
		if (msg->body.len) {
			iov_push(sp, &niov, msg->body.s, msg->body.len);
			off += msg->body.len;
		}
		if (msg->file.fd >= 0 && msg->file.len) {
			rc = write_all(sp->cur_fd, sp->iov, niov, iov_at);
			niov = 0;
			if (rc == 0)
				rc = spool_copy_range(msg->file.fd, msg->file.off, sp->cur_fd, off,
						msg->file.len);
			off += msg->file.len;
			iov_at = off;
		}
	}
	uint64_t zeroed = rc == 0 ? zero_ahead(sp, &niov, off) : off;
	if (rc == 0)
		rc = write_all(sp->cur_fd, sp->iov, niov, iov_at);
	if (rc == 0 && !sp->opts.no_sync) {
		int64_t t0 = histo_now_us();

		if (fdatasync(sp->cur_fd) < 0)
			rc = -errno;
		else
			histo_observe(&sp->h_fsync_us, (uint64_t)(histo_now_us() - t0));
	}
	if (rc < 0) {
		spool_compact_abort(sp);
		batch_failed(sp, batch, rc, start);
		return;
	}
	seg->size = off;
	if (zeroed > sp->cur_zeroed)
		sp->cur_zeroed = zeroed;
	if (off > sp->cur_zeroed)
		sp->cur_zeroed = off;
	spool_compact_applied(sp);

	/*
	 * Durable: now, and only now, the index changes and the answers go
	 * out (the index first, so a submitter that got its answer sees
	 * counters that include it).
	 */
	for (req = batch; req; req = req->next) {
		switch (req->type) {
		case SPOOL_REC_MESSAGE:
			nmsg++;
			req->msg->loc.segment = seg->seq;
			req->msg->loc.offset = req->at + req->body_off;
			req->msg->loc.length = envelope_body_len(req->msg);
			live_add(sp, req->msg, req->at, false);
			break;
		case SPOOL_REC_RCPT_STATE:
			live_rcpt_state(sp, req->id, req->rcpt_index, req->state);
			break;
		case SPOOL_REC_RCPT_RETRY:
			live_rcpt_retry(sp, req->id, req->rcpt_index, req->retries,
					req->next_attempt);
			break;
		case SPOOL_REC_MESSAGE_DONE:
			live_forget(sp, req->id);
			break;
		case SPOOL_REC_BINDING:
			live_binding(sp, req->id, req->binding, req->binding_group);
			break;
		case SPOOL_REC_RCPT_FAILURE: {
			struct live *l = spool_idmap_get(&sp->live, req->id);

			if (l && req->rcpt_index < l->nrcpt)
				live_failure(l, req->rcpt_index, &req->rec);
			break;
		}
		}
	}
	spool_stat_set(&sp->st_live, sp->live.count);
	spool_stat_add(&sp->st_bytes, off - start);
	spool_stat_add(&sp->st_records, nrec);
	spool_stat_add(&sp->st_batches, 1);
	if (nmsg)
		histo_observe(&sp->h_commit_messages, nmsg);
	for (req = batch; req; req = next) {
		next = req->next;
		if (req->type == SPOOL_REC_MESSAGE) {
			struct envelope *msg = req->msg;

			str_free(&msg->body);
			if (msg->file.fd >= 0 && msg->file.owned)
				close(msg->file.fd);
			msg->file.fd = -1;
			req->err = 0;
			reply(req);
		} else {
			req_free(req);
		}
	}
	/* The clients wait for these 250s: wake their loops before any more disk work. */
	loop_flush_batched();

	if (seg->size >= sp->opts.segment_size) {
		rc = seg_create(sp);
		if (rc < 0)
			REPORT(sp, "spool: cannot start a new segment in %s: %s; still writing"
			       " segment=%" PRIu64, sp->dir, strerror(-rc), cur_seg(sp)->seq);
	}
	reclaim(sp);
	spool_compact_plan(sp);
}

void spool_commit_now(struct spool *sp)
{
	if (sp->pend || spool_compact_due(sp)) {
		commit(sp);
		return;
	}
	reclaim(sp);
	spool_compact_plan(sp);
}

/*
 * wait_for_more - a lone message while messages keep coming: arm the
 * batch wait instead of committing. Returns false when it should commit
 * now (waiting off, arrivals too sparse, or the timer cannot be armed).
 */
static bool wait_for_more(struct spool *sp)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	uint32_t us = sp->opts.batch_wait_us;

	if (sp->waiting)
		return true;		/* armed already; more state records came */
	if (us == 0 || sp->wait_fd < 0 || sp->gap_us > (int64_t)us || spool_compact_due(sp))
		return false;
	its.it_value.tv_sec = us / 1000000;
	its.it_value.tv_nsec = (long)(us % 1000000) * 1000;
	if (timerfd_settime(sp->wait_fd, 0, &its, NULL) < 0)
		return false;
	sp->waiting = true;
	return true;
}

/*
 * on_drain - the loop ran every post it had: commit them as one batch,
 * unless it holds only delivery-state records: those are left for the
 * next message batch, with the flush timer as the bound. A lone message
 * may wait a bounded time for company (wait_for_more).
 */
static void on_drain(void *arg)
{
	struct spool *sp = arg;
	bool flush = sp->flush_due;	/* spool_flush: whatever this drain brought */

	sp->flush_due = false;
	if (sp->pend_msgs == 1 && wait_for_more(sp))
		return;
	if (sp->pend_urgent == 0 && !(flush && sp->pend) && !spool_compact_due(sp)) {
		if (sp->pend && !sp->flush_armed && sp->flush_ev) {
			uint32_t ms = sp->opts.state_flush_ms;
			struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

			evtimer_add(sp->flush_ev, &tv);
			sp->flush_armed = true;
		}
		return;
	}
	commit(sp);
}

/* on_wait - the batch wait ran out with one message: commit it. */
static void on_wait(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	if (!sp->waiting)
		return;		/* a commit already took the message */
	sp->waiting = false;
	commit(sp);
}

/* on_flush - state records waited state_flush_ms and no message came: commit them. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct spool *sp = arg;

	sp->flush_armed = false;
	commit(sp);
}

/* on_retry - kept state records after a failed batch, and nothing else came. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	commit(arg);
}

/* ==================== submission (any thread) ==================== */

/* spool_on_enqueue - a record arrives on the spool thread: queue it for the next commit. */
void spool_on_enqueue(void *arg)
{
	struct spool_req *req = arg;
	struct spool *sp = req->sp;

	req->next = NULL;
	*sp->pend_tail = req;
	sp->pend_tail = &req->next;
	sp->pend_count++;
	if (req->type == SPOOL_REC_MESSAGE && sp->opts.batch_wait_us) {
		/* How often messages come: the batch wait's "more are arriving". */
		int64_t now = histo_now_us(), gap = now - sp->last_msg_us;

		if (gap > GAP_MAX_US || gap < 0)
			gap = GAP_MAX_US;
		sp->gap_us += (gap - sp->gap_us) / 8;
		sp->last_msg_us = now;
	}
	sp->pend_msgs += req->type == SPOOL_REC_MESSAGE;
	sp->pend_urgent += req->type == SPOOL_REC_MESSAGE || req->type == SPOOL_REC_BINDING;
	sp->pend_bytes += req->rec.len + (req->msg ? envelope_body_len(req->msg) : 0);
	/* Bound a batch's memory and latency even if the inbox never runs dry. */
	if (sp->pend_bytes >= BATCH_MAX_BYTES || sp->pend_count >= BATCH_MAX_RECORDS)
		commit(sp);
}

/*
 * post_req - hand an encoded record to the spool thread. A MESSAGE wakes
 * it (a client waits for its 250), and so does a BINDING (it commits at
 * once, see spool_on_enqueue); a state record rides with the next
 * wake-up (loop_post_lazy): nobody waits for it, and waking the spool
 * thread for each one cost a context switch per delivery.
 */
static void post_req(struct spool *sp, struct spool_req *req)
{
	req->sp = sp;
	if (req->type == SPOOL_REC_MESSAGE || req->type == SPOOL_REC_BINDING)
		msgs_post(sp->loop, MSGS_SPOOL_ENQUEUE, req);
	else
		msgs_post_lazy(sp->loop, MSGS_SPOOL_ENQUEUE, req);
}

void spool_submit(struct spool *sp, struct envelope *msg,
		  struct loop *reply_loop, spool_done_fn done, void *ctx)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_MESSAGE;
	req->msg = msg;
	req->reply_loop = reply_loop;
	req->done = done;
	req->ctx = ctx;
	req->id = msg->id;
	str_init(&req->rec);
	/* Encode and checksum here, on the submitter's thread, not the spool's. */
	req->body_off = spool_rec_encode_message(&req->rec, msg);
	if (req->body_off == 0) {
		req->err = -EFBIG;
		reply(req);
		return;
	}
	post_req(sp, req);
}

void spool_rcpt_state(struct spool *sp, impetus_id id, uint32_t rcpt_index,
		      enum envelope_rcpt_state state)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_RCPT_STATE;
	req->id = id;
	req->rcpt_index = rcpt_index;
	req->state = (uint8_t)state;
	str_init(&req->rec);
	spool_rec_encode_rcpt_state(&req->rec, id, rcpt_index, (uint8_t)state);
	post_req(sp, req);
}

void spool_rcpt_retry(struct spool *sp, impetus_id id, uint32_t rcpt_index,
		      uint32_t retries, int64_t next_attempt)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_RCPT_RETRY;
	req->id = id;
	req->rcpt_index = rcpt_index;
	req->retries = retries;
	req->next_attempt = next_attempt;
	str_init(&req->rec);
	spool_rec_encode_rcpt_retry(&req->rec, id, rcpt_index, retries, next_attempt);
	post_req(sp, req);
}

void spool_binding(struct spool *sp, impetus_id id, const char *binding,
		   const char *binding_group)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_BINDING;
	req->id = id;
	req->binding = xstrdup(binding ? binding : "");
	req->binding_group = xstrdup(binding_group ? binding_group : "");
	str_init(&req->rec);
	spool_rec_encode_binding(&req->rec, id, req->binding, req->binding_group);
	post_req(sp, req);
}

void spool_rcpt_failure(struct spool *sp, impetus_id id, const struct envelope_failure *f)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_RCPT_FAILURE;
	req->id = id;
	req->rcpt_index = f->rcpt;
	str_init(&req->rec);
	spool_rec_encode_rcpt_failure(&req->rec, id, f);
	post_req(sp, req);
}

void spool_message_done(struct spool *sp, impetus_id id)
{
	struct spool_req *req = XNEW(struct spool_req);

	req->type = SPOOL_REC_MESSAGE_DONE;
	req->id = id;
	str_init(&req->rec);
	spool_rec_encode_done(&req->rec, id);
	post_req(sp, req);
}

void spool_flush(struct spool *sp)
{
	/*
	 * Posted like a message: after the caller's lazy state records, in
	 * one inbox. One request in flight serves every caller until it runs
	 * (a `fail domain` of many recipients asks once per recipient): a
	 * caller that finds one posted pushed its records before it runs, so
	 * they reach the same drain.
	 */
	if (!atomic_exchange_explicit(&sp->flush_posted, true, memory_order_acq_rel))
		msgs_post(sp->loop, MSGS_SPOOL_FLUSH, sp);
}

/* spool_on_flush - spool thread (MSGS_SPOOL_FLUSH): what is pending commits at this drain. */
void spool_on_flush(void *arg)
{
	struct spool *sp = arg;

	atomic_store_explicit(&sp->flush_posted, false, memory_order_release);
	sp->flush_due = true;
}

int spool_tmpfile(struct spool *sp)
{
	int fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	/* No O_TMPFILE here: a private name, unlinked at once. */
	struct str path = STR_INIT;
	str_appendf(&path, "%s/tmp-XXXXXX", sp->dir);
	fd = mkostemp(path.s, O_CLOEXEC);
	if (fd < 0) {
		fd = -errno;
	} else if (unlink(path.s) < 0) {
		int e = -errno;
		close(fd);
		fd = e;
	}
	str_free(&path);
	return fd;
}

/* ==================== reading bodies, counters (any thread) ==================== */

int spool_read_body(struct spool *sp, const struct envelope_loc *loc, struct str *out)
{
	return spool_reader_read(&sp->reader, loc, out);
}

void spool_get_histos(struct spool *sp, struct histo_snap *commit_messages,
		      struct histo_snap *fsync_us)
{
	if (commit_messages)
		histo_read(&sp->h_commit_messages, commit_messages);
	if (fsync_us)
		histo_read(&sp->h_fsync_us, fsync_us);
}

void spool_get_stats(struct spool *sp, struct spool_stats *out)
{
	out->segments = atomic_load_explicit(&sp->st_segments, memory_order_relaxed);
	out->live_messages = atomic_load_explicit(&sp->st_live, memory_order_relaxed);
	out->bytes = atomic_load_explicit(&sp->st_bytes, memory_order_relaxed);
	out->batches = atomic_load_explicit(&sp->st_batches, memory_order_relaxed);
	out->records = atomic_load_explicit(&sp->st_records, memory_order_relaxed);
	out->write_errors = atomic_load_explicit(&sp->st_write_errors, memory_order_relaxed);
	out->live_bytes = atomic_load_explicit(&sp->st_live_bytes, memory_order_relaxed);
	out->compacted_segments = atomic_load_explicit(&sp->st_compacted_segments,
						       memory_order_relaxed);
	out->moved_messages = atomic_load_explicit(&sp->st_moved_messages, memory_order_relaxed);
	out->moved_bytes = atomic_load_explicit(&sp->st_moved_bytes, memory_order_relaxed);
}

/* ==================== open, start, stop ==================== */

/* The histograms' buckets: powers of two messages; 100 us to 2.5 s of fdatasync. */
static const uint64_t commit_message_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
static const uint64_t fsync_us_bounds[] = { 100, 250, 500, 1000, 2500, 5000, 10000, 25000,
					    50000, 100000, 250000, 500000, 1000000, 2500000 };

/* spool_free - release everything; the thread is not running. */
static void spool_free(struct spool *sp)
{
	struct spool_req *req, *next;

	for (size_t i = 0; i < sp->live.cap; i++)
		if (sp->live.slots[i].key)
			live_free(sp->live.slots[i].val);
	spool_idmap_free(&sp->live);
	spool_compact_fini(sp);
	for (req = sp->pend; req; req = next) {
		next = req->next;
		req_free(req);
	}
	if (sp->retry_ev)
		event_free(sp->retry_ev);
	if (sp->flush_ev)
		event_free(sp->flush_ev);
	if (sp->wait_ev)
		event_free(sp->wait_ev);
	if (sp->wait_fd >= 0)
		close(sp->wait_fd);
	if (sp->loop)
		loop_free(sp->loop);
	spool_reader_fini(&sp->reader);
	if (sp->cur_fd >= 0)
		close(sp->cur_fd);
	if (sp->lockfd >= 0)
		close(sp->lockfd);	/* releases the flock */
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	free(sp->segs);
	free(sp->iov);
	free(sp->dir);
	free(sp);
}

/*
 * take_lock - hold an exclusive flock on DIR/lock for the spool's life,
 * with our pid in the file so a refused second daemon can name the first.
 */
static int take_lock(struct spool *sp, struct str *err)
{
	char buf[32];
	ssize_t n;
	int len;

	sp->lockfd = openat(sp->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lockfd < 0) {
		str_appendf(err, "cannot open lock file %s/" LOCK_NAME ": %s", sp->dir,
			    strerror(errno));
		return -1;
	}
	if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EWOULDBLOCK) {
			n = pread(sp->lockfd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			str_appendf(err, "spool directory %s is locked by another process%s%s%s;"
				    " is another impetusd running on it?", sp->dir,
				    buf[0] ? " (pid " : "", buf, buf[0] ? ")" : "");
		} else {
			str_appendf(err, "cannot lock %s/" LOCK_NAME ": %s", sp->dir, strerror(e));
		}
		return -1;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(sp->lockfd, 0) < 0 || fs_pwrite_all(sp->lockfd, buf, (size_t)len, 0) < 0) {
		str_appendf(err, "cannot write lock file %s/" LOCK_NAME ": %s", sp->dir,
			    strerror(errno));
		return -1;
	}
	return 0;
}

struct open_ctx {
	struct spool *sp;
	spool_recover_fn fn;
	void *ctx;
};

/* on_recovered - index a live message, then hand it to the caller. */
static void on_recovered(void *arg, struct envelope *msg, bool done, uint64_t rec_off,
			 bool rebound)
{
	struct open_ctx *oc = arg;

	live_add(oc->sp, msg, rec_off, rebound);
	if (oc->fn)
		oc->fn(oc->ctx, msg);
	else
		envelope_free(msg);
}

struct spool *spool_open(const char *dir, const struct spool_options *opts,
			 spool_recover_fn fn, void *ctx, struct str *err)
{
	struct spool *sp = XNEW(struct spool);
	struct spool_replay_opts ro = { .repair = true };
	struct open_ctx oc = { sp, fn, ctx };
	uint64_t max_seq = 0, bytes = 0;
	int rc;

	sp->dir = xstrdup(dir);
	sp->dirfd = sp->lockfd = sp->cur_fd = sp->wait_fd = -1;
	sp->gap_us = GAP_MAX_US;
	histo_init(&sp->h_commit_messages, commit_message_bounds,
		   sizeof(commit_message_bounds) / sizeof(commit_message_bounds[0]));
	histo_init(&sp->h_fsync_us, fsync_us_bounds,
		   sizeof(fsync_us_bounds) / sizeof(fsync_us_bounds[0]));
	if (opts)
		sp->opts = *opts;
	if (sp->opts.segment_size == 0)
		sp->opts.segment_size = DEFAULT_SEGMENT_SIZE;
	if (sp->opts.state_flush_ms == 0)
		sp->opts.state_flush_ms = STATE_FLUSH_MS;
	sp->pend_tail = &sp->pend;
	spool_idmap_init(&sp->live);
	spool_compact_init(sp);

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		str_appendf(err, "cannot create spool directory %s: %s", dir, strerror(errno));
		goto fail;
	}
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		str_appendf(err, "cannot open spool directory %s: %s", dir, strerror(errno));
		goto fail;
	}
	spool_reader_init(&sp->reader, sp->dirfd);
	if (take_lock(sp, err) < 0)
		goto fail;

	ro.report = sp->opts.report;
	ro.report_ctx = sp->opts.report_ctx;
	rc = spool_replay(sp->dirfd, dir, &ro, on_recovered, &oc, &sp->segs, &sp->nsegs,
			  &max_seq, err);
	if (rc < 0)
		goto fail;
	sp->capsegs = sp->nsegs;
	/* The index was built before the segment list existed: count per segment now. */
	for (size_t i = 0; i < sp->nsegs; i++) {
		bytes += sp->segs[i].size;
		sp->segs[i].live = sp->segs[i].live_bytes = 0;
	}
	for (size_t i = 0; i < sp->live.cap; i++)
		if (sp->live.slots[i].key) {
			struct live *l = sp->live.slots[i].val;

			seg_live(sp, l->loc.segment, 1, live_rec_len(l));
		}
	spool_stat_set(&sp->st_segments, sp->nsegs);
	spool_stat_set(&sp->st_bytes, bytes);
	spool_stat_set(&sp->st_live, sp->live.count);

	/* Never append to a recovered segment: a fresh one keeps recovery simple. */
	sp->next_seq = max_seq + 1;
	rc = seg_create(sp);
	if (rc < 0) {
		str_appendf(err, "cannot create a segment in %s: %s", dir, strerror(-rc));
		goto fail;
	}
	reclaim(sp);

	sp->loop = loop_new("spool", MSGS_SPOOL);
	loop_set_drain_hook(sp->loop, on_drain, sp);
	sp->retry_ev = evtimer_new(loop_base(sp->loop), on_retry, sp);
	sp->flush_ev = evtimer_new(loop_base(sp->loop), on_flush, sp);
	if (sp->opts.batch_wait_us) {
		/* No timerfd: no batch wait (every commit goes at once, as before). */
		sp->wait_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (sp->wait_fd >= 0) {
			sp->wait_ev = event_new(loop_base(sp->loop), sp->wait_fd,
						EV_READ | EV_PERSIST, on_wait, sp);
			event_add(sp->wait_ev, NULL);
		}
	}
	spool_compact_start(sp);
	return sp;
fail:
	spool_free(sp);
	return NULL;
}

/* spool_on_started - first turn of the spool thread: look for compaction work. */
void spool_on_started(void *arg)
{
	spool_compact_plan(arg);
}

int spool_start(struct spool *sp)
{
	int rc;

	msgs_post(sp->loop, MSGS_SPOOL_STARTED, sp);
	rc = loop_start(sp->loop);
	if (rc == 0)
		sp->started = true;
	return rc;
}

void spool_stop(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->started) {
		/* The stop is posted after everything before it; the drain hook commits those. */
		loop_stop(sp->loop);
		loop_join(sp->loop);
		sp->started = false;
	}
	sp->stopping = true;	/* the last commit below moves nothing */
	/*
	 * Now on this thread: whatever is still pending (never started, or
	 * state records kept after a failure) gets one last try.
	 */
	commit(sp);
	if (sp->pend)
		REPORT(sp, "spool: %zu state records could not be written before shutdown;"
		       " their messages may be delivered again", sp->pend_count);
	/* A segment that never got a record is not worth a file. */
	if (sp->nsegs && cur_seg(sp)->size == SPOOL_SEG_HDR_SIZE && !sp->cur_broken) {
		char name[SPOOL_SEG_NAME_SIZE];

		sp->cur_alloc = 0;
		close(sp->cur_fd);
		sp->cur_fd = -1;
		if (unlinkat(sp->dirfd, spool_seg_name(cur_seg(sp)->seq, name), 0) == 0)
			sync_dir(sp);
	}
	seg_trim(sp);	/* a clean stop leaves no preallocated tail */
	spool_free(sp);
}

/* ==================== offline scan ==================== */

struct scan_ctx {
	spool_recover_fn fn;
	void *ctx;
};

/* on_scanned - spool_scan hands every message to its caller. */
static void on_scanned(void *arg, struct envelope *msg, bool done, uint64_t rec_off,
		       bool rebound)
{
	struct scan_ctx *sc = arg;

	sc->fn(sc->ctx, msg);
}

int spool_scan_ex(const char *dir, bool include_done, spool_recover_fn fn, void *ctx,
		  spool_report_fn report, void *report_ctx, struct str *err)
{
	struct spool_replay_opts ro = {
		.include_done = include_done,
		.report = report,
		.report_ctx = report_ctx,
	};
	struct scan_ctx sc = { fn, ctx };
	int dirfd, rc;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		str_appendf(err, "cannot open spool directory %s: %s", dir, strerror(errno));
		return rc;
	}
	rc = spool_replay(dirfd, dir, &ro, on_scanned, &sc, NULL, NULL, NULL, err);
	close(dirfd);
	return rc;
}

int spool_scan(const char *dir, bool include_done, spool_recover_fn fn, void *ctx,
	       struct str *err)
{
	return spool_scan_ex(dir, include_done, fn, ctx, NULL, NULL, err);
}
