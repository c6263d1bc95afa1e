/*
 * macro_session.c - the core's expanders of a connection and a message
 *
 *   %{msg:id}          the message id as in the logs
 *   %{msg:sender}      the envelope sender ("" for <>)
 *   %{msg:rcpt}        the first recipient (during rcptto: the one being validated)
 *   %{msg:binding}     the message's binding ("" = default)
 *   %{conn:ip}         the client's address ("192.0.2.1", "2001:db8::1")
 *   %{conn:helo}       what the client said in EHLO/HELO
 *   %{vctx_conn:KEY}   the connection-scope validation context's KEY
 *   %{vctx_mess:KEY}   the message-scope validation context's KEY
 *
 * Each reads ctx->message when the caller gave one (delivery side, a
 * sign subscriber), else the session's view (reception); with neither it
 * has no value (-ENOENT: "" and counted unknown). They call only the
 * public accessors of impetus/session.h and message.h, on the thread the
 * expansion runs on, which is the one those accessors require (the
 * session's loop during a hook, the holder of the message).
 *
 * Built only when the tree defines those accessors (CMakeLists.txt checks;
 * IMPETUS_MACRO_SESSION is then defined and macro_builtin.c registers
 * these).
 */
#include "policy/macro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/message.h>
#include <impetus/session.h>

#include "api/api.h"

/* the_message - the message of ctx: the caller's, or the one the session is receiving. */
static const struct imp_message *the_message(const struct imp_macro_ctx *ctx)
{
	if (ctx->message != NULL)
		return ctx->message;
	return ctx->session ? imp_session_message(ctx->session) : NULL;
}

/* put - append s, or -ENOENT for NULL. */
static int put(struct imp_macro_out *out, const char *s)
{
	if (s == NULL)
		return -ENOENT;
	imp_macro_out_append(out, s, strlen(s));
	return 0;
}

/* x_msg - %{msg:id}, %{msg:sender}, %{msg:rcpt}, %{msg:binding}. */
static int x_msg(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		 struct imp_macro_out *out)
{
	const struct imp_message *m = the_message(ctx);
	const char *what = name + strlen("msg:");

	if (strcmp(what, "id") == 0) {
		char id[IMP_ID_TEXT_MAX];

		if (m == NULL)
			return -ENOENT;
		imp_message_id_text(m, id);
		return put(out, id);
	}
	if (strcmp(what, "sender") == 0)
		return put(out, m ? imp_message_sender(m)
				  : ctx->session ? imp_session_mailfrom(ctx->session) : NULL);
	if (strcmp(what, "rcpt") == 0) {
		if (m != NULL)
			return put(out, imp_message_rcpt(m, 0));
		if (ctx->session == NULL)
			return -ENOENT;
		const char *r = imp_session_rcpt(ctx->session);
		if (r == NULL && imp_session_rcpt_count(ctx->session) > 0)
			r = imp_session_rcpt_at(ctx->session, 0);
		return put(out, r);
	}
	if (strcmp(what, "binding") == 0)
		return put(out, m ? imp_message_binding(m) : NULL);
	return -ENOENT;
}

/* x_conn - %{conn:ip}, %{conn:helo}. */
static int x_conn(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		  struct imp_macro_out *out)
{
	const char *what = name + strlen("conn:");

	if (strcmp(what, "ip") == 0) {
		if (ctx->session != NULL)
			return put(out, imp_session_peer_ip(ctx->session));
		return put(out, ctx->message ? imp_message_client_ip(ctx->message) : NULL);
	}
	if (strcmp(what, "helo") == 0)
		return put(out, ctx->session ? imp_session_helo(ctx->session) : NULL);
	return -ENOENT;
}

/* x_vctx_conn - %{vctx_conn:KEY}. */
static int x_vctx_conn(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		       struct imp_macro_out *out)
{
	const char *key = name + strlen("vctx_conn:");

	return put(out, ctx->session ? imp_vctx_get(ctx->session, IMP_VCTX_CONN, key) : NULL);
}

/* x_vctx_mess - %{vctx_mess:KEY}: the message's context, or the transaction's. */
static int x_vctx_mess(void *closure, const char *name, const struct imp_macro_ctx *ctx,
		       struct imp_macro_out *out)
{
	const char *key = name + strlen("vctx_mess:");

	if (ctx->message != NULL)
		return put(out, imp_message_vctx_get(ctx->message, key));
	return put(out, ctx->session ? imp_vctx_get(ctx->session, IMP_VCTX_MESS, key) : NULL);
}

/* must - a built-in that cannot register is a programming error. */
static void must(int rc, const char *name)
{
	if (rc != 0) {
		fprintf(stderr, "impetusd: built-in macro %s: cannot register (%s)\n", name,
			strerror(-rc));
		abort();
	}
}

void macro_session_register(struct api_gen *g)
{
	static const struct {
		const char *name;
		unsigned flags;
		imp_macro_fn fn;
	} builtins[] = {
		{ "msg:id", IMP_MACRO_NEEDS_MESSAGE, x_msg },
		{ "msg:sender", IMP_MACRO_NEEDS_MESSAGE, x_msg },
		{ "msg:rcpt", IMP_MACRO_NEEDS_MESSAGE, x_msg },
		{ "msg:binding", IMP_MACRO_NEEDS_MESSAGE, x_msg },
		{ "conn:ip", IMP_MACRO_NEEDS_CONN, x_conn },
		{ "conn:helo", IMP_MACRO_NEEDS_CONN, x_conn },
		{ "vctx_conn:*", IMP_MACRO_NEEDS_CONN, x_vctx_conn },
		{ "vctx_mess:*", IMP_MACRO_NEEDS_MESSAGE, x_vctx_mess },
	};
	struct imp_instance *core = api_core_instance(g);

	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		must(imp_macro_register(core, builtins[i].name, builtins[i].flags, builtins[i].fn,
					NULL),
		     builtins[i].name);
}
