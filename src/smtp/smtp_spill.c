/*
 * smtp_spill.c - a large inbound message streamed to a spool file (see smtp_spill.h)
 *
 * The loop side fills a chunk, swaps it into the spill and posts a job to
 * the IO pool; the job opens the file on first use (opening may block on
 * the file system, so it is not done on the loop), writes the chunk at the
 * end, extends the CRC and posts its answer back. One job at a time keeps
 * the writes in order without locks and bounds the memory to two chunks.
 */
#include "smtp/smtp_spill.h"

#include <stdlib.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/fsutil.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "msgs/msgs.h"
#include "spool/spool.h"

struct smtp_spill {
	/* fixed */
	struct spool *sp;
	struct pool *pool;
	struct loop *loop;
	smtp_spill_wake_fn wake;
	void *ctx;

	/* the loop's only */
	bool busy;
	bool abandoned;

	/* the job's while busy, the loop's otherwise */
	int fd;			/* -1 until the first write opened it */
	uint64_t len;		/* bytes written */
	uint32_t crc;		/* crc32c of those bytes */
	int err;		/* first error, negative errno */
	struct str chunk;	/* the bytes being written */
};

/* spill_free - close the file (unless handed over) and free. */
static void spill_free(struct smtp_spill *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	str_free(&sp->chunk);
	free(sp);
}

/* smtp_spill_on_done - on the loop: the write is over; resume the session or finish freeing. */
void smtp_spill_on_done(void *arg)
{
	struct smtp_spill *sp = arg;

	sp->busy = false;
	str_clear(&sp->chunk);
	if (sp->abandoned) {
		spill_free(sp);
		return;
	}
	sp->wake(sp->ctx);
}

/* spill_job - on the IO pool: append the chunk to the file. */
static void spill_job(void *arg)
{
	struct smtp_spill *sp = arg;

	if (sp->err == 0 && sp->fd < 0) {
		int fd = spool_tmpfile(sp->sp);

		if (fd < 0)
			sp->err = fd;
		else
			sp->fd = fd;
	}
	if (sp->err == 0) {
		int rc = fs_pwrite_all(sp->fd, sp->chunk.s, sp->chunk.len, sp->len);

		if (rc < 0) {
			sp->err = rc;
		} else {
			sp->crc = crc32c(sp->crc, sp->chunk.s, sp->chunk.len);
			sp->len += sp->chunk.len;
		}
	}
	msgs_post(sp->loop, MSGS_SMTP_SPILL_DONE, sp);
}

struct smtp_spill *smtp_spill_new(struct spool *spool, struct pool *pool, struct loop *loop,
				  smtp_spill_wake_fn wake, void *ctx)
{
	struct smtp_spill *sp = XNEW(struct smtp_spill);

	sp->sp = spool;
	sp->pool = pool;
	sp->loop = loop;
	sp->wake = wake;
	sp->ctx = ctx;
	sp->fd = -1;
	str_init(&sp->chunk);
	return sp;
}

bool smtp_spill_busy(const struct smtp_spill *sp)
{
	return sp->busy;
}

void smtp_spill_write(struct smtp_spill *sp, struct str *chunk)
{
	struct str t = sp->chunk;

	sp->chunk = *chunk;
	*chunk = t;
	sp->busy = true;
	pool_submit(sp->pool, spill_job, sp);
}

int smtp_spill_error(const struct smtp_spill *sp)
{
	return sp->err;
}

uint64_t smtp_spill_length(const struct smtp_spill *sp)
{
	return sp->len;
}

void smtp_spill_finish(struct smtp_spill *sp, struct envelope_body_file *out)
{
	out->fd = sp->fd;
	out->owned = sp->fd >= 0;
	out->off = 0;
	out->len = sp->len;
	out->crc = sp->crc;
	sp->fd = -1;
	spill_free(sp);
}

void smtp_spill_abandon(struct smtp_spill *sp)
{
	if (sp->busy)
		sp->abandoned = true;
	else
		spill_free(sp);
}
