/*
 * api_message.c - reading a message's bytes without blocking a loop
 * (imp_message_read of include/impetus/message.h)
 *
 * A spooled message's bytes are in a segment file: they are read with
 * spool_read_body (pread) on the IO pool, and the answer is posted
 * ("api.post") back to the loop that asked. A message still being
 * received (its bytes in memory) is answered from a copy the same way,
 * so done always runs later on the caller's loop, never inside the call.
 *
 * Ownership: the read job owns its copy of the location and its buffer;
 * the bytes handed to done live until done returns. Failures: the
 * spool's read errors (-EIO, -ENOENT for a segment gone), -EINVAL off a
 * loop thread, -ENOTCONN without a runtime, -E2BIG for a message still
 * being received whose bytes are partly in a file.
 */
#include <errno.h>
#include <stdlib.h>

#include <impetus/message.h>

#include "api/api_message.h"
#include "api/api_runtime.h"
#include "api/api_services.h"
#include "core/loop.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/str.h"
#include "spool/spool.h"

struct read_job {
	struct spool *sp;
	struct envelope_loc loc;
	bool from_spool;
	imp_read_done_fn done;
	void *arg;
	struct loop *lp;
	struct str bytes;
	int err;
};

/* read_answer - on the caller's loop: the bytes, then the job is gone. */
static void read_answer(void *arg)
{
	struct read_job *j = arg;

	j->done(j->arg, j->err, j->err ? NULL : (j->bytes.s ? j->bytes.s : ""),
		j->err ? 0 : j->bytes.len);
	str_free(&j->bytes);
	free(j);
}

/* read_run - on the IO pool: pread the body from its segment. */
static void read_run(void *arg)
{
	struct read_job *j = arg;

	j->err = spool_read_body(j->sp, &j->loc, &j->bytes);
	api_post(j->lp, read_answer, j);
}

int imp_message_read(const struct imp_message *m, imp_read_done_fn done, void *arg)
{
	const struct api_runtime *rt = api_runtime();
	struct loop *lp = loop_current();

	if (lp == NULL || m == NULL || m->env == NULL || done == NULL)
		return -EINVAL;
	const struct envelope *env = m->env;
	struct read_job *j = XNEW(struct read_job);
	j->done = done;
	j->arg = arg;
	j->lp = lp;
	str_init(&j->bytes);
	if (env->loc.length > 0 || env->body.len == 0) {
		/* Durable: the spool has the bytes. */
		if (rt->spool == NULL || rt->io_pool == NULL) {
			free(j);
			return -ENOTCONN;
		}
		j->sp = rt->spool;
		j->loc = env->loc;
		pool_submit(rt->io_pool, read_run, j);
		return 0;
	}
	/* Still in memory (being received). */
	if (env->file.fd >= 0)
		j->err = -E2BIG;
	else
		str_append(&j->bytes, env->body.s, env->body.len);
	api_post(lp, read_answer, j);
	return 0;
}
