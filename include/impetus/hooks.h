/*
 * impetus/hooks.h - the points where a module changes what impetusd does
 *
 * A hook is an ordered list of subscribers. imp_hook_* registers fn with
 * its closure at an order (lower runs first; equal orders run in the
 * order they registered, modules in the order the configuration declares
 * them). The built-in behaviour is a subscriber too, at IMP_ORDER_BUILTIN
 * unless a hook says otherwise, so a module runs before it by default and
 * can take the decision away from it. Registration is only allowed in a
 * module's init (scheduler thread); the subscriber belongs to the
 * instance's generation. A hook nobody subscribed to costs one load and
 * one compare.
 *
 * Unless a hook says otherwise its subscribers run on the thread doing
 * the work (an I/O loop for sessions, the scheduler for queues and logs),
 * must not block, and see only the data passed to them.
 */
#ifndef IMPETUS_HOOKS_H
#define IMPETUS_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_instance;
struct imp_session;
struct imp_message;

#define IMP_ORDER_FIRST 0
#define IMP_ORDER_DEFAULT 500
#define IMP_ORDER_BUILTIN 900
#define IMP_ORDER_LAST 1000

/* ---- validation phases ------------------------------------------------ */

enum imp_phase {
	IMP_PHASE_CONNECT,		/* before the banner */
	IMP_PHASE_EHLO,			/* EHLO or HELO */
	IMP_PHASE_MAILFROM,
	IMP_PHASE_RCPTTO,		/* once per RCPT TO */
	IMP_PHASE_DATA,			/* at DATA (or the first BDAT), before 354 */
	IMP_PHASE_DATA_SPOOL,		/* whole message received, before it is spooled */
	IMP_PHASE_DATA_SPOOL_EACH_RCPT,	/* then once per recipient */
	IMP_PHASE_SET_BINDING,		/* then: choose the binding */
	IMP_PHASE__COUNT
};

/* imp_phase_name - "connect", "ehlo", ... "set_binding". */
const char *imp_phase_name(enum imp_phase phase);

/*
 * What a subscriber answers. CONTINUE passes to the next subscriber; the
 * others end the phase: ACCEPT accepts (later subscribers, built-ins
 * included, are skipped), REJECT answers 5xx, TEMPFAIL 4xx, DISCONNECT
 * answers 421 and closes. In data_spool_each_rcpt a REJECT or TEMPFAIL
 * drops that recipient only; in data_spool and set_binding it refuses the
 * message. SUSPEND: see imp_session_suspend.
 */
enum imp_verdict {
	IMP_CONTINUE = 0,
	IMP_ACCEPT,
	IMP_REJECT,
	IMP_TEMPFAIL,
	IMP_DISCONNECT,
	IMP_SUSPEND,
};

/*
 * The reply a REJECT, TEMPFAIL or DISCONNECT sends. Unset fields get the
 * phase's default ("550 5.7.1 rejected by policy" (554 in the connect
 * phase, RFC 5321 3.1), "451 4.7.1 try again later", "421 4.7.0
 * closing"). code must match the verdict's class (5xx
 * for REJECT, 4xx otherwise) or the default is used and a paniclog line
 * names the instance. text is one line, at most 400 bytes, no CR/LF.
 */
struct imp_reply {
	int code;		/* 0 = default */
	char status[16];	/* enhanced status "5.7.1"; "" = default */
	char text[401];		/* "" = default */
};

/* imp_reply_set - fill r (code, status may be NULL, text printf-style); truncates long text. */
void imp_reply_set(struct imp_reply *r, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

typedef enum imp_verdict (*imp_validate_fn)(void *closure, struct imp_session *s,
					     struct imp_reply *reply);

/* imp_hook_validate - subscribe fn to phase. Returns 0 or -EINVAL (outside init, bad phase). */
int imp_hook_validate(struct imp_instance *inst, enum imp_phase phase, imp_validate_fn fn,
		      void *closure, int order);

/*
 * Suspend and resume. A subscriber that must wait (a lookup on the IO
 * pool, a timer, another daemon) takes a token with imp_session_suspend,
 * starts its work, and returns IMP_SUSPEND; the session stops reading
 * commands, its loop goes on serving everyone else, and its timeouts are
 * paused. imp_session_resume(token, verdict, reply), called exactly once
 * from any thread, continues the phase as if the subscriber had returned
 * verdict then (CONTINUE runs the next subscriber; SUSPEND is not
 * allowed). reply may be NULL; it is copied. If the client went away in
 * the meantime the resume only frees the token. Never call
 * imp_session_suspend outside a validation subscriber, nor twice in one.
 */
struct imp_resume;
struct imp_resume *imp_session_suspend(struct imp_session *s);
void imp_session_resume(struct imp_resume *token, enum imp_verdict verdict,
			const struct imp_reply *reply);

/* ---- signing ----------------------------------------------------------- */

/*
 * Called once per message before it is spooled: on reception after the
 * data_spool phases, and on internal injection when the IMP_INJECT_SIGN
 * flag is set. Runs on a CPU pool thread (never an I/O loop); the message
 * is not shared while it runs. Add headers with imp_header_prepend. A
 * signer that fails logs and returns: the message is spooled unsigned.
 */
typedef void (*imp_sign_fn)(void *closure, struct imp_message *msg);
int imp_hook_sign(struct imp_instance *inst, imp_sign_fn fn, void *closure, int order);

/* ---- delivery --------------------------------------------------------- */

/*
 * What a connection goal is computed from: one (binding, domain) queue,
 * or, when next_hop is set, the next hop its domain rolls up to
 * (MX_Rollup): then the counts are the totals of the domains behind it
 * (runs: the largest among them, as one transaction carries a message's
 * recipients of every domain), connections are the hop's,
 * max_connections is Next_Hop_Max_Outbound_Connections, batch_size
 * Next_Hop_Max_Recipients_Per_Transaction, and domain the one whose mail
 * asked.
 */
struct imp_goal_input {
	const char *binding;		/* "" for the default binding */
	const char *domain;		/* the routing domain */
	uint64_t active;		/* recipients ready now */
	uint64_t runs;			/* different messages among them, at least */
	uint64_t delayed;		/* recipients waiting for a retry */
	uint32_t connections;		/* open now */
	uint32_t max_connections;	/* Max_Outbound_Connections (0 = no limit) */
	uint32_t batch_size;		/* Max_Recipients_Per_Batch */
	uint32_t recent_failures;	/* failed connection attempts since the last success */
	const char *next_hop;		/* the next hop's name (console `domain`), NULL for a queue's own */
};

/*
 * connection_goal: how many connections the queue should have now.
 * Subscribers run in order, each given the goal so far (the built-in
 * goal, at IMP_ORDER_FIRST, starts from 0) and returning the new one.
 * The manager never exceeds max_connections, whatever the answer.
 * Scheduler thread.
 */
typedef uint32_t (*imp_goal_fn)(void *closure, const struct imp_goal_input *in,
				uint32_t goal);
int imp_hook_connection_goal(struct imp_instance *inst, imp_goal_fn fn, void *closure,
			     int order);

/*
 * binding_group_choose_binding: a message assigned to a Binding_Group
 * needs one of its bindings. The first subscriber that returns a name
 * from bindings[] decides; NULL passes. The built-in choice (round robin)
 * runs last. Scheduler thread.
 */
typedef const char *(*imp_choose_binding_fn)(void *closure, const struct imp_message *msg,
					     const char *group, const char *const *bindings,
					     size_t nbindings);
int imp_hook_choose_binding(struct imp_instance *inst, imp_choose_binding_fn fn,
			    void *closure, int order);

/*
 * SMTP client parameters: the ESMTP arguments of MAIL FROM (rcpt_index
 * SIZE_MAX) and of each RCPT TO, after impetusd has added its own (SIZE,
 * BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT). Change them with
 * imp_params_*. Runs on the connection's I/O loop.
 */
struct imp_params;
/* imp_params_set - add KEY=value (value NULL: a bare KEY), replacing a KEY already there. */
int imp_params_set(struct imp_params *p, const char *key, const char *value);
/* imp_params_remove - remove KEY (case-insensitive); 0 or -ENOENT. */
int imp_params_remove(struct imp_params *p, const char *key);
/* imp_params_get - the value of KEY ("" for a bare KEY), or NULL. */
const char *imp_params_get(const struct imp_params *p, const char *key);
/* The peer's EHLO capabilities are known: imp_params_peer_has("SMTPUTF8"). */
bool imp_params_peer_has(const struct imp_params *p, const char *capability);

typedef void (*imp_client_params_fn)(void *closure, const struct imp_message *msg,
				     size_t rcpt_index, struct imp_params *params);
int imp_hook_client_params(struct imp_instance *inst, imp_client_params_fn fn,
			   void *closure, int order);

/*
 * Response classification: the class of a failed delivery's reply
 * (impetus's bounce classes, Momentum's codes: 10 Invalid Recipient, 51
 * Spam Block...). The first subscriber that returns a code > 0 decides;
 * 0 passes. The built-in rules run at IMP_ORDER_BUILTIN. code is the SMTP
 * reply code (0 for a local failure), status the enhanced code ("5.1.1",
 * maybe ""), text the reply text. Any thread.
 */
typedef int (*imp_classify_fn)(void *closure, int code, const char *status,
			       const char *text, const char *domain);
int imp_hook_classify(struct imp_instance *inst, imp_classify_fn fn, void *closure, int order);

/*
 * imp_bounce_class_register - add a classification code (> 0, not a
 * built-in one) with its name and one-line description. Registering the
 * same class again is fine; a different class on a taken code is
 * -EEXIST. Scheduler thread, in init.
 */
int imp_bounce_class_register(int code, const char *name, const char *description);
/* imp_bounce_class_name - name of a class, or NULL. Any thread. */
const char *imp_bounce_class_name(int code);

/* ---- log events -------------------------------------------------------- */

/*
 * One per line impetusd writes to the mainlog, bouncelog or rejectlog,
 * with the same fields. Strings are "" when the event has none; times are
 * unix seconds. Subscribers run on the thread that writes the line (the
 * scheduler for R/D/T/P/B/A, the session's I/O loop for rejections) and
 * must copy what they keep.
 */
enum imp_log_type {
	IMP_LOG_RECEPTION = 'R',
	IMP_LOG_DELIVERY = 'D',
	IMP_LOG_TRANSIENT = 'T',
	IMP_LOG_PERMANENT = 'P',
	IMP_LOG_BOUNCE = 'B',		/* the bouncelog line of a permanent failure */
	IMP_LOG_REJECTION = 'X',	/* an SMTP command refused (rejectlog) */
	IMP_LOG_ATTEMPT = 'A',		/* a delivery attempt starts (no line by default) */
};

struct imp_log_event {
	enum imp_log_type type;
	int64_t time;
	const char *message_id;		/* "" for rejections before a message exists */
	const char *conn_id;		/* inbound connection, or the outbound batch's connection */
	const char *sender;
	const char *recipient;		/* one recipient (D, T, P, B, A) */
	size_t nrecipients;		/* R: how many */
	uint64_t size;			/* message bytes */
	const char *binding_group;
	const char *binding;
	const char *domain;		/* routing domain */
	const char *peer;		/* remote IP: the client (R, X) or the MX (D, T, P) */
	const char *peer_host;		/* the MX host name (D, T, P) */
	const char *protocol;		/* R: "esmtp", "smtp", "internal", ... */
	const char *phase;		/* X: the refused phase ("rcptto") */
	int code;			/* SMTP reply code (D, T, P, B, X) */
	const char *reply;		/* reply text */
	int bounce_class;		/* P, B */
	uint32_t attempts;		/* T, P: delivery attempts so far */
	const char *line;		/* the formatted log line, without newline, or "" */
	/* API 1.4: */
	const struct imp_message *message;	/* R D T P B A: the message, read-only (imp_message_vctx_get,
						 * imp_message_received ...), valid during the call; NULL for X */
	uint32_t flags;			/* IMP_LOG_F_* */
};

/* flags: P, B: the failure is the message's expiry (Message_Expiration), not a reply. */
#define IMP_LOG_F_EXPIRED 0x1u

typedef void (*imp_log_fn)(void *closure, const struct imp_log_event *ev);
/* imp_hook_log - subscribe to the events whose types are in types ("RDTPBXA" or a subset). */
int imp_hook_log(struct imp_instance *inst, const char *types, imp_log_fn fn, void *closure,
		 int order);

#ifdef __cplusplus
}
#endif

#endif
