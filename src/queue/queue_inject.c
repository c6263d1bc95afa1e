/*
 * queue_inject.c - the one injection path: internal messages to the
 * spool, then the queue
 *
 * Whatever the daemon makes itself - a module's imp_inject (src/api/
 * api_inject.c), a bounce (queue_bounce.c) - enters here with an
 * envelope and the whole message in CRLF form, and leaves as a durable,
 * queued message, like an SMTP reception without the socket:
 *
 *   1. trace and id (calling thread): a Received: field on top unless
 *      IMP_INJECT_NO_TRACE; a Message-ID: when the message has none, as
 *      the SMTP server adds one (IMP_INJECT_NEW_ID drops those there
 *      are first);
 *   2. signing (IMP_INJECT_SIGN, and only when the configuration's
 *      generation has sign subscribers): on the CPU pool, with a view of
 *      the message that may change its headers;
 *   3. spool_submit, from the thread of step 1 or 2; the answer comes on
 *      the scheduler;
 *   4. on the scheduler: the queue takes it (with R lines only with
 *      IMP_INJECT_LOG), its retention is set, done is called.
 *
 * Ownership: the job belongs to the thread running its current step;
 * the envelope goes from the caller to the job, to the spool, back, and
 * to the queue. Failures: the spool's (-ENOSPC, -EIO, -EFBIG) reach
 * done; nothing else fails but memory exhaustion (aborts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <impetus/hooks.h>
#include <impetus/inject.h>

#include "api/api.h"
#include "message/message_view.h"
#include "config/config.h"
#include "core/id.h"
#include "core/mem.h"
#include "core/pool.h"
#include "core/str.h"
#include "log/log.h"
#include "message/envelope.h"
#include "message/rfc5322.h"
#include "queue/queue_int.h"
#include "queue/queue_out.h"
#include "spool/spool.h"

struct inject_job {
	struct queue_inject_req r;	/* r.conf: a reference, or NULL */
	struct envelope *env;
};

void queue_inject_crlf(struct str *out, const char *data, size_t len)
{
	size_t i = 0, run = 0;

	str_reserve(out, len + len / 32 + 2);
	while (i < len) {
		char c = data[i];

		if (c != '\r' && c != '\n') {
			i++;
			run++;
			continue;
		}
		str_append(out, data + i - run, run);
		run = 0;
		str_append(out, "\r\n", 2);
		/* CRLF stays one line end; a bare LF or a bare CR becomes one. */
		i += (c == '\r' && i + 1 < len && data[i + 1] == '\n') ? 2 : 1;
	}
	str_append(out, data + len - run, run);
}

/* is_message_id - whether a field name is Message-ID (any case). */
static bool is_message_id(const struct rfc5322_field *f)
{
	return f->name_len == 10 && strncasecmp(f->name, "Message-ID", 10) == 0;
}

/*
 * add_trace - rebuild env->body with our Received: and Message-ID: on
 * top, in the order the SMTP server writes them, and without the old
 * Message-ID fields when new_id.
 */
static void add_trace(struct envelope *env, const char *host, unsigned flags)
{
	const char *p = env->body.s ? env->body.s : "";
	size_t len = env->body.len;
	size_t hdrs = rfc5322_header_end(p, len), pos = 0, kept = 0;
	bool new_id = flags & IMP_INJECT_NEW_ID, has_id = false;
	struct rfc5322_field f;
	struct str out = STR_INIT;
	char idbuf[ID_BUF_SIZE], date[RFC5322_DATE_SIZE];

	id_format(env->id, idbuf);
	if (!(flags & IMP_INJECT_NO_TRACE)) {
		rfc5322_format_date(env->received, true, date);
		str_appendf(&out, "Received: by %s (impetus) with %s id %s", host,
			    env->protocol && *env->protocol ? env->protocol : "internal", idbuf);
		if (env->nrcpt == 1)
			str_appendf(&out, "\r\n\tfor <%s>", env->rcpts[0].addr);
		str_appendf(&out, ";\r\n\t%s\r\n", date);
	}
	size_t id_at = out.len;
	/* Walk the fields: copy all (but Message-ID ones when replacing them). */
	while (rfc5322_field_next(p, hdrs, &pos, &f)) {
		size_t start = (size_t)(f.name - p);

		if (is_message_id(&f)) {
			if (new_id) {
				str_append(&out, p + kept, start - kept);
				kept = pos;
				continue;
			}
			has_id = true;
		}
	}
	str_append(&out, p + kept, len - kept);
	if (!has_id) {
		struct str hdr = STR_INIT;

		str_appendf(&hdr, "Message-ID: <%s@%s>\r\n", idbuf, host);
		str_reserve(&out, hdr.len);
		memmove(out.s + id_at + hdr.len, out.s + id_at, out.len - id_at);
		memcpy(out.s + id_at, hdr.s, hdr.len);
		out.len += hdr.len;
		out.s[out.len] = '\0';
		str_free(&hdr);
	}
	str_free(&env->body);
	env->body = out;
}

static void on_spooled(void *ctx, int err, struct envelope *env);

/* submit - step 3: to the spool, answered on the scheduler. */
static void submit(struct inject_job *j)
{
	struct envelope *env = j->env;

	j->env = NULL;
	spool_submit(j->r.spool, env, j->r.scheduler, on_spooled, j);
}

/* sign_job - step 2, on the CPU pool: every sign subscriber, in order, then the spool. */
static void sign_job(void *arg)
{
	struct inject_job *j = arg;
	const struct api_hook *h = api_hook_of(j->r.conf, API_HOOK_SIGN);
	struct imp_message view;

	message_view_init(&view, j->env, true);
	for (size_t i = 0; h && i < h->n; i++)
		((imp_sign_fn)h->v[i].fn)(h->v[i].closure, &view);
	message_view_done(&view);
	submit(j);
}

/* on_spooled - step 4, on the scheduler: into the queue, then done. */
static void on_spooled(void *ctx, int err, struct envelope *env)
{
	struct inject_job *j = ctx;
	struct queue *q = j->r.q;
	impetus_id id = env->id;

	if (err < 0) {
		envelope_free(env);
	} else {
		if (j->r.flags & IMP_INJECT_LOG)
			queue_accept(q, env);
		else
			queue_accept_quiet(q, env);
		/* The retention came in the message context: queue_add applied it. */
	}
	if (j->r.done)
		j->r.done(j->r.arg, err, id);
	if (j->r.conf)
		conf_unref(j->r.conf);
	free(j);
}

void queue_inject(const struct queue_inject_req *r, struct envelope *env)
{
	struct inject_job *j = XNEW(struct inject_job);

	if (env->id == 0)
		env->id = id_next();
	if (env->received == 0)
		env->received = (int64_t)time(NULL);
	add_trace(env, r->conf ? conf_hostname(r->conf) : "localhost", r->flags);
	j->r = *r;
	if (r->conf)
		conf_ref(r->conf);
	j->env = env;
	if ((r->flags & IMP_INJECT_SIGN) && r->conf && r->cpu_pool &&
	    api_hook_of(r->conf, API_HOOK_SIGN)) {
		pool_submit(r->cpu_pool, sign_job, j);
		return;
	}
	submit(j);
}
