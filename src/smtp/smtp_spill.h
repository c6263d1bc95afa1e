/*
 * smtp_spill.h - stream a large inbound message to disk while it arrives
 *
 * An SMTP session keeps the first part of a message in memory (our
 * Received header and, normally, the whole header section) and, past a
 * threshold, hands the rest to a spill: chunks of bounded size written to
 * an anonymous file in the spool directory by a job on the IO pool, one
 * write at a time, each answered on the session's loop. The running
 * length and CRC32C of what was written become the message's file part
 * (struct envelope_body_file), which the spool copies into its segment at
 * commit. So a session's memory does not depend on the message's size.
 *
 * Ownership: the spill belongs to the session's I/O loop. While a write
 * is in flight (smtp_spill_busy) the job owns the file, the counters and
 * the chunk, and the loop reads none of them; the job's answer, posted to
 * the loop, hands them back. A session that ends while a write is in
 * flight abandons the spill, which then frees itself when the answer
 * comes.
 *
 * Failure: the first write error (ENOSPC, EIO, EFBIG) is kept; later
 * writes are skipped, and the session answers 452 at the end of data.
 */
#ifndef IMPETUS_SMTP_SMTP_SPILL_H
#define IMPETUS_SMTP_SMTP_SPILL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"

struct loop;
struct pool;
struct spool;
struct envelope_body_file;
struct smtp_spill;

/* smtp_spill_wake_fn - a write finished; called on the owner's loop. */
typedef void (*smtp_spill_wake_fn)(void *ctx);

/* smtp_spill_new - a spill whose writes run on pool and answer on loop. */
struct smtp_spill *smtp_spill_new(struct spool *sp, struct pool *pool, struct loop *loop,
				  smtp_spill_wake_fn wake, void *ctx);
/* smtp_spill_busy - a write is in flight: wait for the wake call. */
bool smtp_spill_busy(const struct smtp_spill *sp);
/*
 * smtp_spill_write - start writing the bytes of chunk (taken; chunk comes
 * back empty, with a buffer to reuse). Only when not busy.
 */
void smtp_spill_write(struct smtp_spill *sp, struct str *chunk);
/* smtp_spill_error - the first write error (negative errno), or 0. Only when not busy. */
int smtp_spill_error(const struct smtp_spill *sp);
/* smtp_spill_length - bytes written so far. Only when not busy. */
uint64_t smtp_spill_length(const struct smtp_spill *sp);
/*
 * smtp_spill_finish - hand the written file to a message (out owns the fd
 * afterwards) and free the spill. Only when not busy and without error.
 */
void smtp_spill_finish(struct smtp_spill *sp, struct envelope_body_file *out);
/* smtp_spill_abandon - the session is done with it: free now, or when the write answers. */
void smtp_spill_abandon(struct smtp_spill *sp);

#endif
