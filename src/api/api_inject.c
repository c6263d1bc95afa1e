/*
 * api_inject.c - submitting a message from inside the daemon
 * (include/impetus/inject.h)
 *
 * imp_inject checks the request on the calling thread (any thread),
 * copies it into an envelope with the message made CRLF, and hands it to
 * the queue's one injection path (src/queue/queue_inject.c), which bounces
 * take too: trace and Message-ID, signing on the CPU pool, the spool's
 * group commit, the queue. The answer comes on the scheduler and is
 * posted ("api.post") to the loop the caller was on, or stays on the
 * scheduler for a pool or foreign thread.
 *
 * What is checked at once, so a bad request never reaches the spool:
 * at least one recipient; addresses without CR, LF, '<' or '>' (a
 * recipient is not empty); a header block at the start of the message;
 * the size against the global Max_Message_Size; a named binding that
 * exists; the message-scope context (vctx pairs) within the limits of
 * impetus/session.h. The context is stored with the message like a
 * received message's.
 *
 * Retention is stored in the message context (VCTX_KEY_RETENTION), so
 * the spool keeps it and the queue applies it after a restart too.
 *
 * Ownership: the request is the caller's and is copied before
 * imp_inject returns; the answer's struct belongs to the post carrying
 * it. Failures: see imp_inject.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/inject.h>
#include <impetus/session.h>

#include "api/api_runtime.h"
#include "api/api_services.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/mem.h"
#include "message/envelope.h"
#include "message/rfc5322.h"
#include "message/vctx.h"
#include "queue/queue.h"

#define INJECT_FLAGS (IMP_INJECT_SIGN | IMP_INJECT_LOG | IMP_INJECT_NO_TRACE | IMP_INJECT_NEW_ID)

struct inject_answer {
	imp_inject_done_fn done;
	void *arg;
	struct loop *lp;		/* the caller's */
	int err;
	uint64_t id;
};

/* addr_ok - an envelope address a line-oriented protocol can carry. */
static bool addr_ok(const char *a, bool may_be_empty)
{
	if (a == NULL || (!may_be_empty && *a == '\0'))
		return false;
	return strpbrk(a, "\r\n<>") == NULL;
}

int api_inject_check(const struct imp_inject *req)
{
	if (req == NULL || req->nrcpts == 0 || req->rcpts == NULL || req->data == NULL)
		return -EINVAL;
	if (!addr_ok(req->sender, true))
		return -EINVAL;
	for (size_t i = 0; i < req->nrcpts; i++)
		if (!addr_ok(req->rcpts[i], false))
			return -EINVAL;
	if (req->flags & ~(unsigned)INJECT_FLAGS)
		return -EINVAL;
	if (req->nvctx && req->vctx == NULL)
		return -EINVAL;
	if (req->nvctx > IMP_VCTX_ENTRIES_MAX)
		return -EINVAL;
	for (size_t i = 0; i < req->nvctx; i++)
		if (req->vctx[2 * i] == NULL || !vctx_key_ok(req->vctx[2 * i]) ||
		    req->vctx[2 * i + 1] == NULL || strlen(req->vctx[2 * i + 1]) > IMP_VCTX_VALUE_MAX)
			return -EINVAL;
	if (req->protocol && (*req->protocol == '\0' || strpbrk(req->protocol, " \t\r\n@")))
		return -EINVAL;
	if (req->binding && strpbrk(req->binding, "\r\n@"))
		return -EINVAL;
	/* A header block: the message starts with a field, not with the body. */
	if (req->len == 0 || rfc5322_header_end(req->data, req->len) == 0)
		return -EINVAL;
	if (memchr(req->data, '\0', req->len))
		return -EINVAL;
	return 0;
}

/* answer_run - on the caller's loop: its done. */
static void answer_run(void *arg)
{
	struct inject_answer *a = arg;

	a->done(a->arg, a->err, a->id);
	free(a);
}

/* on_injected - scheduler: the message is queued (or not): answer on the caller's loop. */
static void on_injected(void *arg, int err, uint64_t id)
{
	struct inject_answer *a = arg;

	a->err = err;
	a->id = id;
	api_post(a->lp, answer_run, a);
}

int imp_inject(const struct imp_inject *req, imp_inject_done_fn done, void *arg)
{
	const struct api_runtime *rt = api_runtime();
	int rc = api_inject_check(req);

	if (rc < 0)
		return rc;
	if (rt->queue == NULL || rt->spool == NULL)
		return -ENOTCONN;
	if (api_runtime_stopped())
		return -ESHUTDOWN;
	struct conf *conf = api_runtime_conf();
	if (conf == NULL)
		return -ENOTCONN;
	int64_t max = conf_int(conf, CONF_OPT_MAX_MESSAGE_SIZE);
	if (max > 0 && req->len > (uint64_t)max) {
		conf_unref(conf);
		return -EFBIG;
	}
	const char *binding = req->binding ? req->binding : "";
	if (*binding && !conf_binding_exists(conf, binding)) {
		conf_unref(conf);
		return -EINVAL;
	}

	struct envelope *env = envelope_new();
	env->sender = xstrdup(req->sender);
	env->client_ip = xstrdup("");
	env->helo = xstrdup("");
	env->protocol = xstrdup(req->protocol ? req->protocol : "internal");
	env->binding = xstrdup(binding);
	const char *group = *binding ? conf_binding_group_of(conf, binding) : NULL;
	env->binding_group = xstrdup(group ? group : "");
	env->nrcpt = req->nrcpts;
	env->rcpts = xcalloc(req->nrcpts, sizeof(*env->rcpts));
	for (size_t i = 0; i < req->nrcpts; i++)
		env->rcpts[i].addr = xstrdup(req->rcpts[i]);
	queue_inject_crlf(&env->body, req->data, req->len);
	if (req->nvctx || req->retention) {
		env->vctx = vctx_new();
		for (size_t i = 0; i < req->nvctx; i++)
			vctx_set(env->vctx, req->vctx[2 * i], req->vctx[2 * i + 1]);
	}
	if (req->retention) {
		char secs[16];

		snprintf(secs, sizeof(secs), "%u", (unsigned)req->retention);
		vctx_set(env->vctx, VCTX_KEY_RETENTION, secs);
	}

	struct inject_answer *a = NULL;
	if (done) {
		a = XNEW(struct inject_answer);
		a->done = done;
		a->arg = arg;
		a->lp = api_reply_loop();
	}
	struct queue_inject_req r = {
		.q = rt->queue, .spool = rt->spool, .scheduler = rt->scheduler,
		.cpu_pool = rt->cpu_pool, .conf = conf, .flags = req->flags,
		.retention = req->retention, .done = done ? on_injected : NULL, .arg = a,
	};
	queue_inject(&r, env);
	conf_unref(conf);
	return 0;
}
