/*
 * spool_int.h - what spool.c and spool_replay.c share; not for other modules
 *
 * Replay reads the segment files of a spool directory in order and rebuilds
 * every message with its recipients' current states. spool_open runs it in
 * repair mode (cut a torn tail of the newest segment, remove empty segments)
 * before the spool thread exists; spool_scan runs it read-only, also while a
 * daemon is writing. All on the calling thread.
 */
#ifndef IMPETUS_SPOOL_SPOOL_INT_H
#define IMPETUS_SPOOL_SPOOL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "spool/spool.h"

/* One segment file. Owned by the spool thread once it runs. */
struct spool_seg {
	uint64_t seq;
	uint64_t size;		/* bytes; for the open segment, the durable length */
	uint64_t live;		/* live messages whose MESSAGE record is in this file */
	bool damaged;		/* replay found corruption: keep it as evidence */
};

struct spool_replay_opts {
	bool repair;		/* may truncate and unlink (spool_open) */
	bool include_done;	/* also hand over finished messages */
	spool_report_fn report;
	void *report_ctx;
};

/* spool_replay_fn - one message; the callee owns msg. done: finished. */
typedef void (*spool_replay_fn)(void *ctx, struct spool_msg *msg, bool done);

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
bool spool_msg_all_final(const struct spool_msg *msg);

#endif
