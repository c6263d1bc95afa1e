/*
 * whq.h - a webhook's durable backlog: segment files and a cursor
 *
 * One directory per webhook (<Spoolbase>/webhooks/<name>/). Events are
 * appended to numbered segment files ("0000000000000001.seg", ...); each
 * segment starts with the 8-byte magic WHQ_MAGIC and holds records
 *
 *     u32 length (little endian) | u32 CRC32C of the payload | payload
 *
 * whose payload is one event as a JSON object. The file "cursor" holds
 * "<segment> <offset>\n": the first record not yet acknowledged by a 2xx.
 * It is replaced (write, fsync, rename) after each acknowledgement, and
 * segments wholly before it are deleted. Appends are buffered
 * (whq_append) and made durable together (whq_flush: write, fdatasync),
 * so a batch of events costs one fdatasync.
 *
 * Crashes. A kill -9 or a power loss can leave a torn record at the end of
 * the last segment: whq_open cuts the segment back to its last whole
 * record (counted in `truncated`). A bad record elsewhere (a disk error)
 * ends that segment for the reader, which goes on with the next one
 * (counted in `skipped`); nothing crashes on any content. A cursor that
 * was not yet renamed into place when the process died points at records
 * already sent: they are sent again (at-least-once).
 *
 * Ownership: a struct whq belongs to the events thread; no lock. Errors
 * are negative errno values with the reason in err.
 */
#ifndef IMPETUS_EVENTS_WHQ_H
#define IMPETUS_EVENTS_WHQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define WHQ_MAGIC "IMPWHQ1\n"
#define WHQ_MAGIC_LEN 8
#define WHQ_HEADER 8			/* length + CRC */
#define WHQ_RECORD_MAX (1u << 20)	/* a larger payload is refused (and a larger length is damage) */
#define WHQ_SEGMENT_SIZE (8u << 20)	/* start a new segment past this size */

struct whq_pos {
	uint64_t seq;			/* segment number */
	uint64_t off;			/* byte offset in it */
};

struct whq {
	char *dir;
	uint64_t head_seq;		/* oldest segment on disk */
	struct whq_pos cursor;		/* first record not acknowledged */
	uint64_t tail_seq;		/* the segment appended to */
	uint64_t tail_size;		/* its durable size */
	int tail_fd;
	uint64_t events;		/* records after the cursor */
	uint64_t bytes;			/* their bytes, headers included */
	uint64_t truncated;		/* bytes of a torn tail cut at open */
	uint64_t skipped;		/* damaged records skipped (open and reads) */
	struct str wbuf;		/* appended, not yet written */
	size_t wcount;			/* records in wbuf */
};

/*
 * whq_parse - the valid records at the start of buf (after the magic,
 * which the caller has checked): fn(arg, payload, len) for each unless fn
 * is NULL, *count their number. Returns the length of the valid prefix:
 * parsing stops at the first record that is incomplete, too long or whose
 * CRC does not match.
 */
size_t whq_parse(const void *buf, size_t len, void (*fn)(void *arg, const char *p, size_t n),
		 void *arg, size_t *count);

/* whq_open - open or create dir's backlog (repairing a torn tail); 0 or -errno with err. */
int whq_open(struct whq *q, const char *dir, struct str *err);
/* whq_close - close the files; what is buffered and not flushed is lost. */
void whq_close(struct whq *q);
/* whq_append - buffer one record (payload <= WHQ_RECORD_MAX; longer is refused: false). */
bool whq_append(struct whq *q, const char *payload, size_t len);
/* whq_flush - write the buffered records and fdatasync; 0 or -errno (the records are lost). */
int whq_flush(struct whq *q, struct str *err);
/*
 * whq_read - up to max records from the cursor as a JSON array "[a,b]"
 * appended to out; *n the records, *end the position after them, *bytes
 * their size. Reads only flushed records. 0 or -errno.
 */
int whq_read(struct whq *q, size_t max, struct str *out, size_t *n, struct whq_pos *end,
	     uint64_t *bytes, struct str *err);
/* whq_ack - the records up to end (n of them, bytes) were delivered: move the cursor durably. */
int whq_ack(struct whq *q, struct whq_pos end, size_t n, uint64_t bytes, struct str *err);

#endif
