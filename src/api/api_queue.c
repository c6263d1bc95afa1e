/*
 * api_queue.c - acting on queued messages (include/impetus/queue.h)
 *
 * The queues belong to the scheduler: each function copies its request
 * into a struct api_queue_op and posts it there ("api.queue_op",
 * src/msgs/msgs.def); the handler applies it with src/queue/queue_ops.c
 * and posts the result back ("api.post") to the loop the caller was on,
 * or leaves it on the scheduler for a pool or foreign thread.
 *
 * Without a runtime (a tool, a unit test) there is no queue: done gets
 * -ENOTCONN at once on the calling thread.
 *
 * Ownership: the op belongs to the post carrying it, then to the answer.
 * Failures: -ENOENT, -EINVAL (queue_ops.c), -ENOTCONN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/queue.h>

#include "api/api_runtime.h"
#include "api/api_services.h"
#include "core/mem.h"
#include "msgs/msgs.h"
#include "queue/queue.h"

enum op_kind { OP_REQUEUE, OP_FAIL, OP_REBIND };

struct api_queue_op {
	enum op_kind kind;
	uint64_t *ids;
	size_t n;
	int code;
	char *text;		/* OP_FAIL */
	bool quiet;
	char *binding;		/* OP_REBIND */
	imp_queue_done_fn done;
	void *arg;
	struct loop *lp;	/* the caller's */
	int err;
};

static void op_free(struct api_queue_op *op)
{
	free(op->ids);
	free(op->text);
	free(op->binding);
	free(op);
}

/* answer_run - on the caller's loop. */
static void answer_run(void *arg)
{
	struct api_queue_op *op = arg;

	op->done(op->arg, op->err);
	op_free(op);
}

/* api_queue_on_op - "api.queue_op" on the scheduler: apply, then answer. */
void api_queue_on_op(void *arg)
{
	struct api_queue_op *op = arg;
	struct queue *q = api_runtime()->queue;

	switch (op->kind) {
	case OP_REQUEUE:
		op->err = queue_op_requeue(q, op->ids, op->n);
		break;
	case OP_FAIL:
		op->err = queue_op_fail(q, op->ids[0], op->code, op->text, op->quiet);
		break;
	case OP_REBIND:
		op->err = queue_op_rebind(q, op->ids[0], op->binding);
		break;
	}
	if (op->done)
		api_post(op->lp, answer_run, op);
	else
		op_free(op);
}

/* post_op - send op to the scheduler, or answer -ENOTCONN without one. */
static void post_op(struct api_queue_op *op, imp_queue_done_fn done, void *arg)
{
	const struct api_runtime *rt = api_runtime();

	op->done = done;
	op->arg = arg;
	op->lp = api_reply_loop();
	if (rt->queue == NULL || rt->scheduler == NULL) {
		if (done)
			done(arg, -ENOTCONN);
		op_free(op);
		return;
	}
	msgs_post(rt->scheduler, MSGS_API_QUEUE_OP, op);
}

static struct api_queue_op *op_new(enum op_kind kind, const uint64_t *ids, size_t n)
{
	struct api_queue_op *op = XNEW(struct api_queue_op);

	op->kind = kind;
	op->n = n;
	op->ids = xcalloc(n ? n : 1, sizeof(*op->ids));
	if (n)
		memcpy(op->ids, ids, n * sizeof(*ids));
	return op;
}

void imp_queue_requeue(uint64_t id, imp_queue_done_fn done, void *arg)
{
	post_op(op_new(OP_REQUEUE, &id, 1), done, arg);
}

void imp_queue_requeue_batch(const uint64_t *ids, size_t n, imp_queue_done_fn done, void *arg)
{
	if (n == 0 || ids == NULL) {
		/* Nothing to find; answered like any other call, on the caller's loop. */
		post_op(op_new(OP_REQUEUE, NULL, 0), done, arg);
		return;
	}
	post_op(op_new(OP_REQUEUE, ids, n), done, arg);
}

void imp_queue_fail(uint64_t id, int code, const char *text, bool quiet,
		    imp_queue_done_fn done, void *arg)
{
	struct api_queue_op *op = op_new(OP_FAIL, &id, 1);

	/* A P line's reply: a 5xx code and one line of text. */
	if (code < 500 || code > 599 || (text && strpbrk(text, "\r\n"))) {
		op->err = -EINVAL;
		op->done = done;
		op->arg = arg;
		op->lp = api_reply_loop();
		if (done && op->lp) {
			api_post(op->lp, answer_run, op);
			return;
		}
		if (done)
			done(arg, -EINVAL);
		op_free(op);
		return;
	}
	op->code = code;
	op->text = xstrdup(text ? text : "");
	op->quiet = quiet;
	post_op(op, done, arg);
}

void imp_queue_rebind(uint64_t id, const char *binding, imp_queue_done_fn done, void *arg)
{
	struct api_queue_op *op = op_new(OP_REBIND, &id, 1);

	op->binding = xstrdup(binding ? binding : "");
	post_op(op, done, arg);
}
