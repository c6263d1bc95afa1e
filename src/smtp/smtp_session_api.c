/*
 * smtp_session_api.c - what the module API sees of an inbound session
 *
 * The functions of impetus/session.h (who is talking, the transaction,
 * the validation context, the binding choice) over struct smtp_session.
 * A module's struct imp_session * is the session itself. Every function
 * runs on the session's I/O loop, inside a validation subscriber or
 * between its suspension and its resume (the header's contract); the
 * state machine that calls the subscribers is smtp_server_session.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/message.h>
#include <impetus/session.h>

#include "config/config.h"
#include "core/mem.h"
#include "message/envelope.h"
#include "message/message_view.h"
#include "message/vctx.h"
#include "smtp/smtp_session_int.h"


/* SESSION - the session behind a module's handle (the handle is the session). */
static struct smtp_session *SESSION(const struct imp_session *is)
{
	return (struct smtp_session *)is;
}

const struct conf *smtp_session_conf_of(const struct imp_session *is)
{
	return SESSION(is)->conf;
}

const struct conf_listener *smtp_session_listener_conf_of(const struct imp_session *is)
{
	return SESSION(is)->clistener;
}

int imp_vctx_set(struct imp_session *is, enum imp_vctx_scope scope, const char *key,
		 const char *value)
{
	struct smtp_session *s = SESSION(is);

	if (scope == IMP_VCTX_CONN)
		return vctx_set(s->conn_vctx, key, value);
	if (scope != IMP_VCTX_MESS || s->msg == NULL)
		return -EINVAL;
	if (s->msg->vctx == NULL) {
		if (value == NULL)
			return vctx_key_ok(key) ? 0 : -EINVAL;
		s->msg->vctx = vctx_new();
	}
	return vctx_set(s->msg->vctx, key, value);
}

const char *imp_vctx_get(const struct imp_session *is, enum imp_vctx_scope scope, const char *key)
{
	const struct smtp_session *s = SESSION(is);

	if (scope == IMP_VCTX_CONN)
		return vctx_get(s->conn_vctx, key);
	if (scope == IMP_VCTX_MESS && s->msg != NULL)
		return vctx_get(s->msg->vctx, key);
	return NULL;
}

uint64_t imp_session_id(const struct imp_session *is)
{
	return SESSION(is)->conn;
}

const struct sockaddr *imp_session_peer(const struct imp_session *is, socklen_t *len)
{
	if (len)
		*len = SESSION(is)->peer_len;
	return (const struct sockaddr *)&SESSION(is)->peer;
}

const struct sockaddr *imp_session_local(const struct imp_session *is, socklen_t *len)
{
	if (len)
		*len = SESSION(is)->local_len;
	return (const struct sockaddr *)&SESSION(is)->local;
}

const char *imp_session_peer_ip(const struct imp_session *is)
{
	return SESSION(is)->peer_ip;
}

const char *imp_session_helo(const struct imp_session *is)
{
	return SESSION(is)->helo ? SESSION(is)->helo : "";
}

bool imp_session_tls(const struct imp_session *is)
{
	return SESSION(is)->tls;
}

const char *imp_session_listener(const struct imp_session *is)
{
	return SESSION(is)->listener_address;
}

const char *imp_session_mailfrom(const struct imp_session *is)
{
	const struct smtp_session *s = SESSION(is);

	return s->msg ? s->msg->sender : NULL;
}

const char *imp_session_rcpt(const struct imp_session *is)
{
	return SESSION(is)->cur_rcpt;
}

size_t imp_session_rcpt_count(const struct imp_session *is)
{
	const struct smtp_session *s = SESSION(is);

	return s->msg ? s->msg->nrcpt : 0;
}

const char *imp_session_rcpt_at(const struct imp_session *is, size_t i)
{
	const struct smtp_session *s = SESSION(is);

	return s->msg && i < s->msg->nrcpt ? s->msg->rcpts[i].addr : NULL;
}

struct imp_message *imp_session_message(struct imp_session *is)
{
	struct smtp_session *s = SESSION(is);

	return s->view_live ? &s->view : NULL;
}

int imp_session_set_binding(struct imp_session *is, const char *binding)
{
	struct smtp_session *s = SESSION(is);

	if (s->msg == NULL || s->ph.phase != IMP_PHASE_SET_BINDING || !s->view_live ||
	    binding == NULL)
		return -EINVAL;
	if (*binding != '\0') {
		/* Stored as the configuration spells it: logs and queues name one binding one way. */
		binding = conf_binding_canonical(s->conf, binding);
		if (binding == NULL)
			return -ENOENT;
	}
	const char *group = *binding ? conf_binding_group_of(s->conf, binding) : NULL;

	free(s->msg->binding);
	s->msg->binding = xstrdup(binding);
	free(s->msg->binding_group);
	s->msg->binding_group = xstrdup(group ? group : "");
	return 0;
}
