/*
 * smtp_policy.c - the SMTP server's built-in validation subscribers
 *
 *   rcptto, relay control: a recipient is accepted when the connection
 *       may relay (IMP_VCTX_CAN_RELAY is "1" in the connection scope: the
 *       session sets it when the client is in Relay_Hosts, and a module,
 *       say after authentication, may set it too), or its domain is in
 *       Relay_Domains, or it is the bare "postmaster"; otherwise
 *       "550 5.7.1 Relaying denied".
 *   set_binding, Assign_Binding: the binding configured for the first
 *       recipient's domain (docs/configuration.md), when the
 *       configuration has that binding; else the message keeps the
 *       default binding.
 *
 * Both run on the session's I/O loop with the session's configuration
 * (the generation that holds them belongs to it). They keep no state.
 */
#include "smtp/smtp_policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <impetus/hooks.h>
#include <impetus/message.h>
#include <impetus/session.h>

#include "api/api.h"
#include "config/config.h"
#include "core/mem.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_server_int.h"

/* relay_control - rcptto: deny recipients the client may not relay to. */
static enum imp_verdict relay_control(void *closure, struct imp_session *is,
				      struct imp_reply *reply)
{
	const char *rcpt = imp_session_rcpt(is);
	const char *can = imp_vctx_get(is, IMP_VCTX_CONN, IMP_VCTX_CAN_RELAY);

	if (rcpt == NULL || (can && strcmp(can, "1") == 0))
		return IMP_CONTINUE;
	const char *domain = smtp_path_domain(rcpt);

	if (*domain == '\0') {
		if (strcasecmp(rcpt, "postmaster") == 0)
			return IMP_CONTINUE;
	} else if (conf_relay_domain_match(smtp_session_conf_of(is),
					   smtp_session_listener_conf_of(is), domain)) {
		return IMP_CONTINUE;
	}
	imp_reply_set(reply, 550, "5.7.1", "Relaying denied");
	return IMP_REJECT;
}

/* assign_binding - set_binding: Assign_Binding of the first recipient's domain. */
static enum imp_verdict assign_binding(void *closure, struct imp_session *is,
				       struct imp_reply *reply)
{
	const char *first = imp_session_rcpt_at(is, 0);
	const struct imp_message *m = imp_session_message(is);

	/* A subscriber before this one (a module) chose: Assign_Binding is the fallback. */
	if (first == NULL || (m && *imp_message_binding(m)))
		return IMP_CONTINUE;
	const char *at = strrchr(first, '@');
	char *domain = xstrdup(at ? at + 1 : "");

	/* Domains are matched in lower case, as the queue routes them. */
	for (char *p = domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	const char *b = conf_get(smtp_session_conf_of(is), CONF_OPT_ASSIGN_BINDING, NULL, domain)->u.s;

	/* -ENOENT (no such Binding) keeps the default, as the queue always did. */
	if (b && *b)
		(void)imp_session_set_binding(is, b);
	free(domain);
	return IMP_CONTINUE;
}

void smtp_policy_register(struct api_gen *g)
{
	struct imp_instance *core = api_core_instance(g);

	/* Fails only for a generation that is not building: a start-up bug. */
	if (imp_hook_validate(core, IMP_PHASE_RCPTTO, relay_control, NULL, IMP_ORDER_BUILTIN) < 0 ||
	    imp_hook_validate(core, IMP_PHASE_SET_BINDING, assign_binding, NULL,
			      IMP_ORDER_BUILTIN) < 0)
		abort();
}
