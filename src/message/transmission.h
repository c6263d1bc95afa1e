/*
 * transmission.h - a JSON injection request: parsed, checked, and rendered per recipient
 *
 * Two request shapes describe the same thing, one message per recipient
 * from one content with substitutions:
 *   - Momentum 4 / SparkPost's POST /api/v1/transmissions (return_path,
 *     recipients[].address, content, substitution_data, metadata, tags,
 *     campaign_id, options);
 *   - KumoMTA's POST /api/inject/v1 (envelope_sender, content as a string
 *     or a builder object, recipients[].email/name/substitutions,
 *     substitutions), rewritten on parse into the first shape.
 * transmission_parse checks the request and compiles every template of
 * the content once (subject, from, reply_to, headers, text, html,
 * email_rfc822); transmission_render makes recipient i's message: the
 * templates rendered with that recipient's data over the global data,
 * then msg_build (msg_build.h). docs/http-api.md is the user's reference.
 *
 * Pure: no I/O, no threads, no global state. A parsed transmission is
 * not changed by rendering, but jansson's reference counts are touched,
 * so one thread at a time renders a given transmission.
 *
 * Errors name the field path, e.g. "recipients[3].address.email" or
 * "content.html:2:7", and carry the HTTP status they deserve: 400 for
 * a body that is not JSON, 422 for a field that is wrong.
 */
#ifndef IMPETUS_MESSAGE_TRANSMISSION_H
#define IMPETUS_MESSAGE_TRANSMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "message/msg_build.h"

struct transmission;

/* Which API the request came through. */
enum tx_shape {
	TX_SPARKPOST,		/* POST /api/v1/transmissions */
	TX_KUMO,		/* POST /api/inject/v1 */
};

#define TX_FIELD_MAX 128
#define TX_TEXT_MAX 256

/* Why a request or a recipient was refused. */
struct tx_err {
	int status;			/* 400 or 422 */
	char field[TX_FIELD_MAX];	/* "recipients[2].address.email"; "" for the body */
	char text[TX_TEXT_MAX];		/* what is wrong */
};

/*
 * The message context stored with each generated message, so events and
 * webhooks can give the sender's own data back (docs/events.md).
 */
#define TX_VCTX_ID "impetus.http.transmission_id"	/* decimal */
#define TX_VCTX_CAMPAIGN "impetus.http.campaign_id"
#define TX_VCTX_METADATA "impetus.http.metadata"	/* compact JSON object */
#define TX_VCTX_TAGS "impetus.http.tags"		/* compact JSON array of strings */
#define TX_VCTX_PAIRS 4

/* One recipient's message, made by transmission_render. */
struct tx_msg {
	struct str data;		/* the message, CRLF */
	char *rcpt;			/* envelope recipient */
	const char *vctx[2 * TX_VCTX_PAIRS];	/* key, value, ...: the message context */
	size_t nvctx;
	char *owned[TX_VCTX_PAIRS];	/* values the context points at */
};

/*
 * transmission_parse - check the request body (JSON) and compile its
 * templates. 0 with *out set, or -EINVAL with err filled.
 */
int transmission_parse(enum tx_shape shape, const char *body, size_t len,
		       struct transmission **out, struct tx_err *err);

/* transmission_free - release a parsed transmission (NULL is fine). */
void transmission_free(struct transmission *tx);

/* transmission_count - how many recipients, so how many messages. */
size_t transmission_count(const struct transmission *tx);
/* transmission_sender - the envelope sender (return_path, else the from address). */
const char *transmission_sender(const struct transmission *tx);
/* transmission_binding - the binding options.ip_pool names, or NULL. */
const char *transmission_binding(const struct transmission *tx);
/* transmission_sandbox - options.sandbox: check and build everything, inject nothing. */
bool transmission_sandbox(const struct transmission *tx);
/* transmission_rcpt - recipient i's envelope address as given ("" when missing). */
const char *transmission_rcpt(const struct transmission *tx, size_t i);

/*
 * transmission_render - recipient i's message into *m (initialised here;
 * tx_msg_free it either way). id is the transmission's id for the
 * message context. 0, or -EINVAL with err: err->field then starts with
 * "recipients[i]." for what is the recipient's, or "content" for what
 * the content gave once substituted.
 */
int transmission_render(const struct transmission *tx, size_t i, uint64_t id,
			const struct msg_build_opts *o, struct tx_msg *m, struct tx_err *err);

/* tx_msg_free - release what transmission_render made. */
void tx_msg_free(struct tx_msg *m);

#endif
