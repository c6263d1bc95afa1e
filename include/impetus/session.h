/*
 * impetus/session.h - the inbound session as the validation hooks see it
 *
 * A struct imp_session is one inbound SMTP connection (later also an HTTP
 * injection), owned by the I/O loop that runs it. Validation hooks
 * (impetus/hooks.h) get it as their argument; every function here must be
 * called on that loop's thread, during a hook or between a suspend and
 * its resume. Strings returned stay valid until the hook returns (or the
 * session resumes), no longer: copy what you keep.
 *
 * The validation context (Momentum's "vctx") is two string dictionaries:
 * IMP_VCTX_CONN lives as long as the connection; IMP_VCTX_MESS as long as
 * the message transaction, and is stored with the message in the spool,
 * so delivery-side code (imp_message_vctx_get) and a restarted daemon
 * see it. Keys are case-sensitive; keys starting with "impetus." are the
 * daemon's own (auth_user, can_relay, ...).
 */
#ifndef IMPETUS_SESSION_H
#define IMPETUS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_session;
struct imp_message;

enum imp_vctx_scope { IMP_VCTX_CONN = 0, IMP_VCTX_MESS = 1 };

/* Keys the daemon sets (read them; writing them changes the daemon's view). */
#define IMP_VCTX_CAN_RELAY "impetus.can_relay"	/* "1" when the client may relay */
#define IMP_VCTX_AUTH_USER "impetus.auth_user"	/* the SMTP AUTH identity, when any */

/* The limits of the context: longer keys or values are refused (-EINVAL), more entries -E2BIG. */
#define IMP_VCTX_KEY_MAX 128
#define IMP_VCTX_VALUE_MAX 4096
#define IMP_VCTX_ENTRIES_MAX 256

/*
 * imp_vctx_set - set key to value in scope (value NULL deletes key).
 * Returns 0, -EINVAL (bad key, value too long, message scope outside a
 * transaction) or -E2BIG (too many entries).
 */
int imp_vctx_set(struct imp_session *s, enum imp_vctx_scope scope, const char *key,
		 const char *value);
/* imp_vctx_get - the value of key in scope, or NULL. */
const char *imp_vctx_get(const struct imp_session *s, enum imp_vctx_scope scope,
			 const char *key);

/* Who is talking. */
uint64_t imp_session_id(const struct imp_session *s);	/* the connection id of the logs */
const struct sockaddr *imp_session_peer(const struct imp_session *s, socklen_t *len);
const struct sockaddr *imp_session_local(const struct imp_session *s, socklen_t *len);
const char *imp_session_peer_ip(const struct imp_session *s);	/* "192.0.2.1", "2001:db8::1" */
const char *imp_session_helo(const struct imp_session *s);	/* "" before EHLO/HELO */
bool imp_session_tls(const struct imp_session *s);		/* after STARTTLS or on a TLS listener */
const char *imp_session_listener(const struct imp_session *s);	/* "127.0.0.1:25" */

/*
 * The transaction. imp_session_mailfrom is the envelope sender without <>
 * ("" for the null sender; NULL before MAIL). imp_session_rcpt is the
 * recipient being validated in the rcptto and data_spool_each_rcpt
 * phases (NULL elsewhere); imp_session_rcpt_count/at the recipients
 * accepted so far.
 */
const char *imp_session_mailfrom(const struct imp_session *s);
const char *imp_session_rcpt(const struct imp_session *s);
size_t imp_session_rcpt_count(const struct imp_session *s);
const char *imp_session_rcpt_at(const struct imp_session *s, size_t i);

/*
 * imp_session_message - the message being received, in the data_spool,
 * data_spool_each_rcpt and set_binding phases (NULL elsewhere): headers
 * can be read and changed through impetus/message.h until the phase
 * ends. The session owns it.
 */
struct imp_message *imp_session_message(struct imp_session *s);

/*
 * imp_session_set_binding - in the set_binding phase, send the message
 * from this binding (a Binding stanza's name; "" for the default).
 * Returns 0 or -ENOENT when the configuration has no such binding.
 */
int imp_session_set_binding(struct imp_session *s, const char *binding);

#ifdef __cplusplus
}
#endif

#endif
