/*
 * envelope.c - creating and releasing a message's envelope (see envelope.h)
 *
 * No state; any thread may call these on an envelope it owns.
 */
#include "message/envelope.h"

#include <stdlib.h>
#include <unistd.h>

#include "core/mem.h"

struct envelope *envelope_new(void)
{
	struct envelope *env = XNEW(struct envelope);

	str_init(&env->body);
	env->file.fd = -1;
	return env;
}

uint64_t envelope_body_len(const struct envelope *env)
{
	return env->body.len + (env->file.fd >= 0 ? env->file.len : 0);
}

void envelope_free(struct envelope *env)
{
	if (env == NULL)
		return;
	free(env->sender);
	free(env->envid);
	free(env->client_ip);
	free(env->helo);
	free(env->protocol);
	free(env->binding_group);
	free(env->binding);
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
	}
	free(env->rcpts);
	vctx_free(env->vctx);
	envelope_failures_clear(env);
	str_free(&env->body);
	/* Still set when the spool never took the bytes (failed or no submission). */
	if (env->file.fd >= 0 && env->file.owned)
		close(env->file.fd);
	free(env);
}

const struct envelope_failure *envelope_failure_put(struct envelope *env,
						    const struct envelope_failure *f)
{
	struct envelope_failure *slot = NULL;

	for (size_t i = 0; i < env->nfailures && slot == NULL; i++)
		if (env->failures[i].rcpt == f->rcpt)
			slot = &env->failures[i];
	if (slot) {
		free(slot->response);
		free(slot->remote);
	} else {
		env->failures = xrealloc(env->failures, (env->nfailures + 1) * sizeof(*env->failures));
		slot = &env->failures[env->nfailures++];
	}
	*slot = *f;
	slot->response = xstrdup(f->response ? f->response : "");
	slot->remote = f->remote && *f->remote ? xstrdup(f->remote) : NULL;
	return slot;
}

void envelope_failures_clear(struct envelope *env)
{
	for (size_t i = 0; i < env->nfailures; i++) {
		free(env->failures[i].response);
		free(env->failures[i].remote);
	}
	free(env->failures);
	env->failures = NULL;
	env->nfailures = 0;
}

bool envelope_failure_current(const struct envelope *env, const struct envelope_failure *f)
{
	if (f->rcpt >= env->nrcpt)
		return false;
	switch (f->action) {
	case ENVELOPE_FAILURE_FAILED:
		return env->rcpts[f->rcpt].state == ENVELOPE_RCPT_FAILED;
	case ENVELOPE_FAILURE_RELAYED:
		return env->rcpts[f->rcpt].state == ENVELOPE_RCPT_DELIVERED;
	}
	return false;
}

void envelope_failures_prune(struct envelope *env)
{
	size_t kept = 0;

	for (size_t i = 0; i < env->nfailures; i++) {
		struct envelope_failure *f = &env->failures[i];

		if (envelope_failure_current(env, f)) {
			env->failures[kept++] = *f;
			continue;
		}
		free(f->response);
		free(f->remote);
	}
	env->nfailures = kept;
}

bool envelope_report_due(const struct envelope *env)
{
	bool due = false;

	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state == ENVELOPE_RCPT_QUEUED)
			return false;
	for (size_t i = 0; i < env->nfailures && !due; i++)
		due = envelope_failure_current(env, &env->failures[i]);
	return due;
}
