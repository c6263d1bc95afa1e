/*
 * spool_int.h - what spool.c, spool_compact.c and spool_replay.c share;
 * not for other modules
 *
 * struct spool (the spool thread's state) is defined here so compaction
 * can live in its own file; spool.c's header says who owns which field.
 *
 * Replay reads the segment files of a spool directory in order and rebuilds
 * every message with its recipients' current states. spool_open runs it in
 * repair mode (cut a torn tail of the newest segment, remove empty segments)
 * before the spool thread exists; spool_scan runs it read-only, also while a
 * daemon is writing. All on the calling thread.
 */
#ifndef IMPETUS_SPOOL_SPOOL_INT_H
#define IMPETUS_SPOOL_SPOOL_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/histo.h"
#include "core/str.h"
#include "spool/spool.h"
#include "spool/spool_idmap.h"
#include "spool/spool_reader.h"

struct event;
struct iovec;
struct spool_req;

/* One segment file. Owned by the spool thread once it runs. */
struct spool_seg {
	uint64_t seq;
	uint64_t size;		/* bytes; for the open segment, the durable length */
	uint64_t live;		/* live messages whose MESSAGE record is in this file */
	uint64_t live_bytes;	/* the size of those MESSAGE records */
	uint64_t pins;		/* moves out of this file not yet acknowledged by their owner */
	bool damaged;		/* replay found corruption: keep it as evidence */
};

/*
 * A live message in the spool thread's index: where its current MESSAGE
 * record is and the durable state of every recipient (what a relocated
 * copy must carry). Spool thread only.
 */
struct live {
	struct envelope_loc loc;	/* body of the current record */
	uint64_t rec_off;	/* start of that record in loc.segment */
	uint32_t nrcpt;
	uint32_t nqueued;
	/*
	 * The binding and group a BINDING record set after the MESSAGE
	 * record (imp_queue_rebind), or NULL: a relocated copy carries them.
	 */
	char *binding, *binding_group;
	/*
	 * The durable RCPT_FAILURE records of its recipients, as encoded (one
	 * per recipient, the latest): a relocated copy is followed by them,
	 * so the DSN details outlive the old segment.
	 */
	struct live_failure {
		uint32_t rcpt;
		struct str rec;
	} *fails;
	uint32_t nfails;
	struct live_rcpt {
		int64_t next_attempt;
		uint32_t retries;
		uint8_t state;	/* enum envelope_rcpt_state */
	} rcpts[];
};

/* live_rec_len - the whole MESSAGE record of l, header to the end of its body. */
static inline uint64_t live_rec_len(const struct live *l)
{
	return l->loc.offset + l->loc.length - l->rec_off;
}

/* One relocated record written in the current batch, applied once durable. */
struct spool_moved {
	impetus_id id;
	uint64_t rec_off;	/* in the current segment */
	struct envelope_loc loc;	/* the new body location */
};

/*
 * Compaction state (spool_compact.c). Spool thread only. A victim is the
 * oldest segment holding live messages, chosen when moving its live bytes
 * frees enough space; its ids are sorted by record offset and moved a
 * bounded number of bytes per commit.
 */
struct spool_compact {
	uint32_t threshold;		/* percent; 0 = off */
	struct event *ev;		/* runs a commit when no batch is coming */
	bool scheduled;
	int64_t pause_until;		/* monotonic seconds: no step before (after a write error) */
	uint64_t victim;		/* segment being emptied, 0 = none */
	int vfd;			/* read fd of the victim, -1 */
	struct compact_item {
		uint64_t rec_off;
		impetus_id id;
	} *items;			/* the victim's live messages */
	size_t nitems, next;
	uint64_t v_size, v_live_bytes, v_live;	/* victim when chosen (for the log line) */
	uint64_t v_moved, v_moved_bytes;
	uint64_t stuck;			/* a segment whose messages could not all be moved */
	uint64_t waiting;		/* a victim left with messages whose last move is unacknowledged */
	struct spool_moved *batch;	/* written by this commit */
	size_t nbatch, capbatch;
	struct spool_idmap moves;	/* id -> struct spool_pin: moved, not yet acknowledged */
	uint8_t *buf;			/* body chunk buffer */
	int64_t last_stats;		/* monotonic seconds of the last periodic line */
	uint64_t last_stats_bytes, last_stats_live;
};

struct spool {
	char *dir;
	int dirfd;
	int lockfd;
	struct spool_options opts;
	struct loop *loop;
	struct event *retry_ev;
	bool started;
	bool stopping;			/* spool_stop: no more compaction */

	/* spool thread (main thread before start and after stop) */
	struct spool_seg *segs;		/* sorted by seq; the last is open for writing */
	size_t nsegs, capsegs;
	int cur_fd;			/* write fd of segs[nsegs - 1], or -1 */
	bool cur_broken;		/* cutting back failed: start a new segment first */
	/*
	 * Preallocation of the current segment (docs/spool.md, "Preallocated
	 * segments"): the file was fallocated to cur_alloc bytes (0: it was
	 * not, plain appends), and [0, cur_zeroed) holds records or zeros
	 * already written and synced, so a commit below cur_zeroed changes no
	 * metadata that fdatasync must write.
	 */
	uint64_t cur_alloc;
	uint64_t cur_zeroed;
	uint64_t next_seq;
	struct spool_req *pend, **pend_tail;
	size_t pend_count;
	size_t pend_msgs;		/* MESSAGE records in pend: someone waits for a 250 */
	size_t pend_urgent;		/* records in pend that commit at once (MESSAGE, BINDING) */
	uint64_t pend_bytes;
	/*
	 * State records alone do not commit (docs/spool.md, "Writing: the
	 * group commit"): they wait for the next message batch, or for this
	 * timer, armed when the first of them is left pending.
	 */
	struct event *flush_ev;
	bool flush_armed;
	/* spool_flush: a request is on its way (any thread); it is due at this drain (spool thread). */
	atomic_bool flush_posted;
	bool flush_due;
	/*
	 * Bounded batch wait (opts.batch_wait_us): a timerfd, because
	 * libevent's own timers on epoll wait in whole milliseconds. waiting:
	 * it is armed for a lone message. gap_us: moving average of the time
	 * between two messages arriving, to tell whether more are coming.
	 */
	int wait_fd;
	struct event *wait_ev;
	bool waiting;
	int64_t last_msg_us;
	int64_t gap_us;
	struct spool_idmap live;	/* id -> struct live */
	struct iovec *iov;
	size_t iovcap;
	struct spool_compact compact;

	struct spool_reader reader;	/* body reads, any thread */

	_Atomic uint64_t st_segments, st_live, st_bytes, st_batches, st_records, st_write_errors;
	_Atomic uint64_t st_live_bytes, st_compacted_segments, st_moved_messages, st_moved_bytes;
	/* written by the spool thread at each group commit, read by any (core/histo.h) */
	struct histo h_commit_messages;	/* new messages per fdatasync (commits with any) */
	struct histo h_fsync_us;	/* fdatasync latency, microseconds */
};

#define SPOOL_REPORT(sp, ...) spool_reportf((sp)->opts.report, (sp)->opts.report_ctx, __VA_ARGS__)

/* spool_stat_set, spool_stat_add - counters read by spool_get_stats on any thread. */
void spool_stat_set(_Atomic uint64_t *a, uint64_t v);
void spool_stat_add(_Atomic uint64_t *a, uint64_t v);
/* spool_seg_find - the segment with sequence number seq, or NULL once removed. */
struct spool_seg *spool_seg_find(struct spool *sp, uint64_t seq);

/*
 * spool_copy_range - copy len bytes at in_off of in to out_off of out: in
 * the kernel with copy_file_range (same file system), else through a
 * bounded buffer. Spool thread (the buffer is static). Returns 0 or -errno
 * (-EIO when in is shorter than len).
 */
int spool_copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len);

/*
 * spool_cut_back - cut the current segment back to off after a failed
 * write: ftruncate, which also ends its preallocation (the rest of that
 * segment is written by plain appends). Spool thread. Returns 0 or -errno.
 */
int spool_cut_back(struct spool *sp, uint64_t off);

/*
 * spool_commit_now - commit what is pending (and a compaction step); with
 * nothing to write, reclaim and plan. Spool thread.
 */
void spool_commit_now(struct spool *sp);

/* ---- spool_compact.c (spool thread) ---- */

/* spool_compact_init / _fini - set up and release the compaction state. */
void spool_compact_init(struct spool *sp);
void spool_compact_fini(struct spool *sp);
/* spool_compact_start - create the step event on the spool loop. */
void spool_compact_start(struct spool *sp);
/* spool_compact_due - a step is waiting to be written by the next commit. */
bool spool_compact_due(const struct spool *sp);
/*
 * spool_compact_write - commit(), before the batch: append relocated
 * copies at *off of the current segment (bounded bytes), advancing *off.
 * A problem with one message is reported and leaves it where it is;
 * returns -errno only when the segment could not be cut back after a
 * failed copy (the batch then fails like any write error).
 */
int spool_compact_write(struct spool *sp, uint64_t *off);
/* spool_compact_abort - the batch holding the copies failed: forget them. */
void spool_compact_abort(struct spool *sp);
/*
 * spool_compact_applied - the copies are durable: move them in the index
 * (before the batch's own records, which follow them in the file), pin
 * the old segments and tell the owner through opts.moved.
 */
void spool_compact_applied(struct spool *sp);
/* spool_compact_plan - after commit and reclaim: pick a victim, schedule a step, log. */
void spool_compact_plan(struct spool *sp);


struct spool_replay_opts {
	bool repair;		/* may truncate and unlink (spool_open) */
	bool include_done;	/* also hand over finished messages */
	spool_report_fn report;
	void *report_ctx;
};

/*
 * spool_replay_fn - one message; the callee owns msg. done: finished.
 * rec_off: where its (last) MESSAGE record starts in msg->loc.segment.
 * rebound: a BINDING record after it changed msg->binding (and group).
 */
typedef void (*spool_replay_fn)(void *ctx, struct envelope *msg, bool done, uint64_t rec_off,
				bool rebound);

/*
 * spool_replay - replay the segments under dirfd (dir is its name, for
 * messages). Calls fn for each live message (and done ones when asked), in
 * the order their MESSAGE records were written. On success returns 0 and,
 * when segs is not NULL, the surviving segment files sorted by seq with
 * their live counts (caller frees *segs), and *max_seq, the highest
 * sequence number any segment file name used (0 if none). Returns -errno
 * with err set when the directory cannot be read or a segment has a format
 * version this code does not know.
 */
int spool_replay(int dirfd, const char *dir, const struct spool_replay_opts *o,
		 spool_replay_fn fn, void *ctx, struct spool_seg **segs, size_t *nsegs,
		 uint64_t *max_seq, struct str *err);

/* spool_reportf - format one report line and hand it to fn (stderr when NULL). */
void spool_reportf(spool_report_fn fn, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* spool_msg_all_final - true when no recipient is still queued. */
bool spool_msg_all_final(const struct envelope *msg);

#endif
