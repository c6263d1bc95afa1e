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
	str_free(&env->body);
	/* Still set when the spool never took the bytes (failed or no submission). */
	if (env->file.fd >= 0 && env->file.owned)
		close(env->file.fd);
	free(env);
}
