/*
 * spool.h - the crash-safe, log-structured message store
 *
 * The spool is a directory of append-only segment files. Every change is a
 * record (length + CRC32C + payload) appended to the newest segment; bodies
 * are written once and read back with pread. The spool thread owns the
 * files: it takes submissions from any thread through its loop inbox,
 * writes everything that arrived while the previous fdatasync ran with one
 * writev and one fdatasync (group commit), and only then answers each
 * submitter on the submitter's loop. A message is acknowledged to a client
 * only after that answer, so a crash never loses an acknowledged message.
 *
 * Failure modes: a write or sync error (ENOSPC, EIO, EFBIG) fails every
 * submission of that batch with the negative errno, the segment is cut
 * back to its last durable length, and later batches try again; nothing
 * already durable is touched. Recovery truncates a torn or corrupt tail of
 * the newest segment (it was never acknowledged) and reports, but skips
 * past, corruption anywhere else.
 *
 * What it stores is a struct envelope (message/envelope.h) with its
 * bytes; this header is the spool's own API, for code that submits,
 * records state changes, reads bodies or recovers.
 *
 * Ownership: struct spool is created on the main thread, then driven only
 * by its own thread (spool_start) except where a function says "any thread".
 */
#ifndef IMPETUS_SPOOL_SPOOL_H
#define IMPETUS_SPOOL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/id.h"
#include "core/str.h"
#include "message/envelope.h"

struct loop;
struct spool;

/* Result of a submission, delivered on the submitter's loop. */
typedef void (*spool_done_fn)(void *ctx, int err, struct envelope *msg);

/*
 * spool_report_fn - receives one line (no newline) about damage found by
 * recovery, space reclaimed with evidence kept, or a write error. Lines
 * start with "spool:" and carry key=value pairs (segment=, offset=).
 * Called on the thread running spool_open/spool_scan and on the spool
 * thread, never concurrently for one spool.
 */
typedef void (*spool_report_fn)(void *ctx, const char *line);

/*
 * spool_moved_fn - compaction copied message id to a new place and that
 * copy is durable: loc is where its body is now. Runs on moved_loop (the
 * thread that owns the holders of envelope_locs). The old location stays
 * readable until the owner calls spool_moved_ack(id): the owner acks once
 * nothing it handed out still reads the old location (a delivery in
 * flight), or right away when it does not know the id.
 */
typedef void (*spool_moved_fn)(void *ctx, impetus_id id, const struct envelope_loc *loc);

struct spool_options {
	uint64_t segment_size;	/* start a new segment past this many bytes (default 64 MiB) */
	bool no_sync;		/* benchmarks only: skip fdatasync (never in production) */
	bool no_prealloc;	/* tests: do as on a file system without fallocate */
	spool_report_fn report;	/* NULL: write the lines to stderr */
	void *report_ctx;
	/*
	 * Compaction (docs/spool.md): 0 = off. Otherwise the oldest segment
	 * with live messages is compacted when its live bytes (with those of
	 * the segments up to some later one) are at most this percentage of
	 * the bytes that moving them frees.
	 */
	uint32_t compact_threshold;
	/*
	 * Delivery-state records (RCPT_STATE, RCPT_RETRY, MESSAGE_DONE) wait
	 * at most this long for a message batch to ride with before they are
	 * committed on their own; 0 = the default, 1000 ms.
	 */
	uint32_t state_flush_ms;
	/*
	 * Spool_Batch_Wait: when a commit would hold exactly one message and
	 * messages have been arriving at least this often, wait up to this
	 * many microseconds for more to share its fdatasync. 0 = never wait.
	 */
	uint32_t batch_wait_us;
	spool_moved_fn moved;	/* NULL: nobody holds locations; moves need no ack */
	struct loop *moved_loop;
	void *moved_ctx;
};

/* spool_recover_fn - called once per live message found by recovery. */
typedef void (*spool_recover_fn)(void *ctx, struct envelope *msg);

/*
 * spool_open - open (creating if needed) the spool directory, take its
 * lock file, and replay every segment, calling fn for each message that is
 * not fully done (body not loaded; msg->loc set; recipient states applied).
 * The callee owns each msg. Returns NULL with a message in err on failure.
 * Main thread, before spool_start.
 */
struct spool *spool_open(const char *dir, const struct spool_options *opts,
			 spool_recover_fn fn, void *ctx, struct str *err);
/* spool_start - start the spool thread. Returns 0 or -errno. */
int spool_start(struct spool *sp);
/* spool_stop - flush pending writes, sync, stop the thread, close files. Main thread. */
void spool_stop(struct spool *sp);

/*
 * spool_submit - append a new message. Any thread. The spool takes msg;
 * once the batch holding it is durable (err == 0) or failed (err < 0),
 * done(ctx, err, msg) runs on reply_loop and hands msg back, with its body
 * released and loc set on success (the body is kept on failure). With
 * reply_loop NULL, done runs on the spool thread and must be quick.
 * The record is encoded and checksummed on the calling thread. Submissions
 * made before spool_start wait for it. Keep reply loops running until
 * spool_stop returns: answers to the last batch are posted during it.
 * A message with a file part (msg->file) keeps it until its answer: on
 * success the spool has copied it and closed an owned fd.
 */
void spool_submit(struct spool *sp, struct envelope *msg,
		  struct loop *reply_loop, spool_done_fn done, void *ctx);

/*
 * spool_tmpfile - an anonymous file in the spool directory (O_TMPFILE, or
 * a created and at once unlinked name where the file system lacks it), to
 * stream a large body into before it is submitted: same file system as the
 * segments, so commit copies it in the kernel, and nothing is left behind
 * by a crash. Any thread; it blocks on the file system, so call it from a
 * pool, not a loop. Returns the fd or -errno.
 */
int spool_tmpfile(struct spool *sp);

/*
 * Later state changes, any thread, fire-and-forget. They never force a
 * sync of their own: they ride the next commit of a message, or a timer
 * commits them after opts.state_flush_ms (1 s). A crash before that
 * loses them, which means at-least-once delivery (the recipient is tried
 * again), never loss. The spool's own index (liveness, reclaiming,
 * compaction) changes only once they are durable. In order:
 * a recipient reached a final state; the retry schedule of a recipient
 * changed; the whole message is finished (its space becomes reclaimable).
 */
void spool_rcpt_state(struct spool *sp, impetus_id id, uint32_t rcpt_index,
		      enum envelope_rcpt_state state);
void spool_rcpt_retry(struct spool *sp, impetus_id id, uint32_t rcpt_index,
		      uint32_t retries, int64_t next_attempt);
void spool_message_done(struct spool *sp, impetus_id id);
/*
 * spool_rcpt_failure - what recipient f->rcpt's DSN will say (an RCPT_FAILURE
 * record), posted like the state records and in the same order: post it
 * *before* the spool_rcpt_state that makes the recipient final, so the
 * state is never durable without it (the reverse costs nothing: a detail
 * whose recipient is not final is ignored by recovery). A message that
 * has one stays live until its MESSAGE_DONE, and recovery hands a message
 * with every recipient final, such a detail and no MESSAGE_DONE to the
 * queue, whose report is then still owed (envelope_report_due).
 */
void spool_rcpt_failure(struct spool *sp, impetus_id id, const struct envelope_failure *f);
/*
 * spool_binding - the message now goes out through binding (group
 * binding_group; "" for the default binding / no group): a BINDING
 * record, applied by recovery and carried by compaction. Any thread,
 * fire-and-forget like the records above, but committed at once like a
 * message: a rebind is a policy decision, not an outcome to redo.
 */
void spool_binding(struct spool *sp, impetus_id id, const char *binding,
		   const char *binding_group);

/*
 * spool_flush - commit the state records posted so far (by this thread)
 * at once rather than with the next message or after state_flush_ms:
 * for an operator's change (console, API), which a crash a moment after
 * the answer must not undo. Any thread; nothing answers it.
 */
void spool_flush(struct spool *sp);

/*
 * spool_moved_ack - the owner no longer reads the old location of a
 * message it was told had moved (spool_moved_fn). Any thread.
 */
void spool_moved_ack(struct spool *sp, impetus_id id);

/*
 * spool_read_body - read a durable message's bytes into out (appended).
 * Any thread; uses pread on the segment file. Returns 0 or -errno.
 */
int spool_read_body(struct spool *sp, const struct envelope_loc *loc, struct str *out);

/* Counters for the console and tests. Any thread (approximate). */
struct spool_stats {
	uint64_t segments;
	uint64_t live_messages;
	uint64_t bytes;
	uint64_t batches;	/* group commits done */
	uint64_t records;	/* records written */
	uint64_t write_errors;
	uint64_t live_bytes;		/* bytes of the live messages' records */
	uint64_t compacted_segments;	/* segments emptied by compaction */
	uint64_t moved_messages;	/* records relocated by compaction */
	uint64_t moved_bytes;
};
void spool_get_stats(struct spool *sp, struct spool_stats *out);
struct histo_snap;
/*
 * spool_get_histos - the group commit's histograms (any thread): new
 * messages per fdatasync, counted for commits that wrote at least one
 * message, and the fdatasync latency in microseconds (none under
 * IMPETUS_UNSAFE_NO_FSYNC). Either may be NULL.
 */
void spool_get_histos(struct spool *sp, struct histo_snap *commit_messages,
		      struct histo_snap *fsync_us);

/*
 * Offline reading, for `impetus spool ls` and tests: replay a spool
 * directory without locking or modifying it, calling fn for every message
 * with its recipients' current states (done messages included when
 * include_done is true). Returns 0 or -errno with err set.
 */
int spool_scan(const char *dir, bool include_done, spool_recover_fn fn, void *ctx,
	       struct str *err);
/* spool_scan_ex - spool_scan with damage reports sent to report (NULL: stderr). */
int spool_scan_ex(const char *dir, bool include_done, spool_recover_fn fn, void *ctx,
		  spool_report_fn report, void *report_ctx, struct str *err);

#endif
