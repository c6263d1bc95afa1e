/*
 * message_view.c - the envelope accessors of impetus/message.h
 *
 * Read-only views over struct envelope (message_view.h). Strings the
 * queue dropped (client IP, protocol: delivery does not need them) read
 * as "". Nothing here fails; a NULL envelope string reads as "".
 */
#include "message/message_view.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/id.h"
#include "core/mem.h"
#include "message/envelope.h"

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

struct imp_message *message_view_new(struct envelope *env, bool own)
{
	struct imp_message *m = XNEW(struct imp_message);

	m->env = env;
	m->owns_env = own;
	return m;
}

void message_view_free(struct imp_message *m)
{
	if (m == NULL)
		return;
	if (m->owns_env)
		envelope_free(m->env);
	free(m);
}

void imp_message_id_text(const struct imp_message *m, char buf[IMP_ID_TEXT_MAX])
{
	char id[ID_BUF_SIZE];

	snprintf(buf, IMP_ID_TEXT_MAX, "%s", id_format(m->env->id, id));
}

uint64_t imp_message_id(const struct imp_message *m)
{
	return m->env->id;
}

const char *imp_message_sender(const struct imp_message *m)
{
	return or_empty(m->env->sender);
}

size_t imp_message_rcpt_count(const struct imp_message *m)
{
	return m->env->nrcpt;
}

const char *imp_message_rcpt(const struct imp_message *m, size_t i)
{
	return i < m->env->nrcpt ? m->env->rcpts[i].addr : NULL;
}

const char *imp_message_binding(const struct imp_message *m)
{
	return or_empty(m->env->binding);
}

const char *imp_message_binding_group(const struct imp_message *m)
{
	return or_empty(m->env->binding_group);
}

const char *imp_message_protocol(const struct imp_message *m)
{
	return or_empty(m->env->protocol);
}

const char *imp_message_client_ip(const struct imp_message *m)
{
	return or_empty(m->env->client_ip);
}

int64_t imp_message_received(const struct imp_message *m)
{
	return m->env->received;
}

uint64_t imp_message_size(const struct imp_message *m)
{
	/* Durable: the spool's length; before that, what the record will hold. */
	return m->env->loc.length ? m->env->loc.length : envelope_body_len(m->env);
}
