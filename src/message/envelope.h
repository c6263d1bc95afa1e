/*
 * envelope.h - a message's envelope and its vocabulary, as every component
 * holds it in memory
 *
 * struct envelope is what the SMTP server builds from MAIL/RCPT (and the
 * bounce generator from a failure), what the spool writes and recovers,
 * what the queue keeps per message, and what the SMTP client turns back
 * into MAIL/RCPT parameters. The words they share live here too: the DSN
 * NOTIFY bits and RET values (RFC 3461), the BODY type (RFC 6152, RFC
 * 3030), and a recipient's delivery state. The values are those the spool
 * stores on disk (docs/spool.md): never renumber them.
 *
 * Until the spool has it, an envelope also carries the message's bytes
 * (body, and file for a large message streamed to a file); once durable
 * or recovered only loc, where the spool keeps those bytes, remains.
 *
 * struct envelope_loc lives here, not in spool/spool.h, because every
 * envelope embeds one by value (the queue keeps one per message and hands
 * it to the SMTP client with each batch); declaring it in the spool would
 * make this header include a component above it. Only the spool assigns
 * or interprets a location; everyone else copies it back to
 * spool_read_body.
 *
 * Ownership: an envelope has one owner at a time (the session, then the
 * spool during a submission, then the queue); it is handed over, never
 * shared, so it needs no lock. Strings and the rcpts array are heap
 * memory the envelope owns. Nothing here fails except memory exhaustion,
 * which aborts (core/mem.h).
 */
#ifndef IMPETUS_MESSAGE_ENVELOPE_H
#define IMPETUS_MESSAGE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/id.h"
#include "core/str.h"
#include "message/vctx.h"

/* DSN NOTIFY bits (RFC 3461); 0 means the client gave no NOTIFY. */
#define ENVELOPE_NOTIFY_NEVER   0x01
#define ENVELOPE_NOTIFY_SUCCESS 0x02
#define ENVELOPE_NOTIFY_FAILURE 0x04
#define ENVELOPE_NOTIFY_DELAY   0x08

/* DSN RET (RFC 3461): what a bounce returns of the original. */
enum envelope_ret { ENVELOPE_RET_NONE = 0, ENVELOPE_RET_FULL = 1, ENVELOPE_RET_HDRS = 2 };
/* MAIL FROM BODY= (RFC 6152 8BITMIME, RFC 3030 BINARYMIME). */
enum envelope_body_type {
	ENVELOPE_BODY_7BIT = 0,
	ENVELOPE_BODY_8BITMIME = 1,
	ENVELOPE_BODY_BINARYMIME = 2,
};

/* Per-recipient delivery state, as stored. */
enum envelope_rcpt_state {
	ENVELOPE_RCPT_QUEUED = 0,
	ENVELOPE_RCPT_DELIVERED = 1,
	ENVELOPE_RCPT_FAILED = 2,	/* permanent failure, bounced or not */
};

struct envelope_rcpt {
	char *addr;		/* envelope recipient without <> */
	char *orcpt;		/* DSN ORCPT as given ("rfc822;a@b", xtext decoded), or NULL */
	uint8_t notify;		/* ENVELOPE_NOTIFY_* bits */
	uint8_t state;		/* enum envelope_rcpt_state */
	uint32_t retries;	/* transient failures so far */
	int64_t next_attempt;	/* unix seconds; 0 = now */
};

/*
 * What a recipient's DSN says, kept until the message's report is sent
 * (docs/spool.md, RCPT_FAILURE): a permanent failure, or a delivery to a
 * next hop without DSN for a recipient that asked for NOTIFY=SUCCESS
 * (RFC 3461 5.2.2.1, "relayed"). The queue writes one to the spool with
 * the recipient's final state; recovery gives it back on the envelope so
 * the report survives a restart. Values are stored: never renumber.
 */
enum envelope_failure_action {
	ENVELOPE_FAILURE_FAILED = 1,	/* the recipient's state is FAILED */
	ENVELOPE_FAILURE_RELAYED = 2,	/* the recipient's state is DELIVERED */
};

/* Bounds of the stored texts; longer ones are cut (at a UTF-8 boundary). */
#define ENVELOPE_FAILURE_RESPONSE_MAX 8192
#define ENVELOPE_FAILURE_REMOTE_MAX 1024

struct envelope_failure {
	uint32_t rcpt;		/* index into rcpts */
	uint8_t action;		/* enum envelope_failure_action */
	uint8_t stage;		/* where it happened (the log's stage numbers) */
	uint16_t code;		/* SMTP reply code, 0 when there was none */
	int64_t when;		/* unix seconds of the outcome */
	char *response;		/* the reply or the reason, never NULL */
	char *remote;		/* remote MTA (IP or name), or NULL */
};

/* Where the spool keeps a message's bytes, for pread of the body. */
struct envelope_loc {
	uint64_t segment;	/* segment sequence number */
	uint64_t offset;	/* offset of the body bytes in the segment file */
	uint64_t length;	/* body length in bytes */
};

/*
 * envelope_body_file - the part of a message's bytes that is in a file,
 * not in memory: bytes [off, off + len) of fd come after the in-memory
 * body in the record. A large inbound message streams there while it
 * arrives, so its session never holds more than a bounded prefix; the
 * spool copies the range into the segment at commit (copy_file_range).
 * crc is crc32c(0, those bytes), computed as they were written. fd is -1
 * when the message has no such part; the envelope owns fd when owned is
 * true.
 */
struct envelope_body_file {
	int fd;
	bool owned;
	uint64_t off;
	uint64_t len;
	uint32_t crc;
};

/*
 * A message as submitted to and recovered from the spool. Strings are
 * heap-allocated and owned by the struct; envelope_free releases all.
 */
struct envelope {
	impetus_id id;
	impetus_id conn_id;	/* connection it arrived on; 0 for internal injection */
	int64_t received;	/* unix seconds of reception */
	char *sender;		/* envelope sender without <>; "" for the null sender */
	char *envid;		/* DSN ENVID (xtext decoded) or NULL */
	uint8_t ret;		/* enum envelope_ret */
	uint8_t body_type;	/* enum envelope_body_type */
	bool smtputf8;
	char *client_ip;	/* text form; "" for internal injection */
	char *helo;		/* what the client said in EHLO/HELO, or "" */
	char *protocol;		/* "esmtp", "smtp", "http", "internal" */
	char *binding_group;	/* may be "" */
	char *binding;		/* may be "" (default binding) */
	size_t nrcpt;
	struct envelope_rcpt *rcpts;
	struct str body;	/* the message bytes (headers + body, CRLF lines,
				   dot-unstuffed); empty once durable/recovered */
	struct envelope_body_file file;	/* the bytes after body, if any (see above) */
	struct envelope_loc loc;	/* set by the spool once durable */
	/*
	 * The message-scope validation context (impetus/session.h
	 * IMP_VCTX_MESS), set by the reception's hooks; NULL when empty.
	 * Stored in the MESSAGE record, so it survives restarts.
	 */
	struct vctx *vctx;
	/*
	 * In memory only: the set_binding phase of the reception chose the
	 * binding (or a module accepted without one), so the queue must not
	 * apply Assign_Binding again. Clear for bounces and recovered mail.
	 */
	bool binding_chosen;
	/*
	 * The DSN details of recipients that failed (or were relayed), one
	 * per recipient at most: what the message's report will say. The
	 * queue adds them as outcomes come; recovery gives back those of
	 * the spool's RCPT_FAILURE records.
	 */
	size_t nfailures;
	struct envelope_failure *failures;
};

/* envelope_new - an empty envelope: no recipients, empty body, no file part. */
struct envelope *envelope_new(void);
/* envelope_free - release env, its strings, body and owned body file; NULL is a no-op. */
void envelope_free(struct envelope *env);
/* envelope_body_len - the bytes the message's record will hold: body + file part. */
uint64_t envelope_body_len(const struct envelope *env);
/*
 * envelope_failure_put - remember a copy of f (strings copied), replacing
 * what was kept for the same recipient: the latest outcome is the one a
 * report must give. Returns the copy kept.
 */
const struct envelope_failure *envelope_failure_put(struct envelope *env,
						    const struct envelope_failure *f);
/* envelope_failures_clear - forget every failure detail of env. */
void envelope_failures_clear(struct envelope *env);
/*
 * envelope_failure_current - whether f still describes its recipient: the
 * recipient exists and its state is the final state f's action implies
 * (a detail written just before a crash that lost the state record is
 * not: that recipient is tried again).
 */
bool envelope_failure_current(const struct envelope *env, const struct envelope_failure *f);
/*
 * envelope_failures_prune - forget the details that are not current
 * (envelope_failure_current): their recipients are queued again, and
 * their next outcome decides what the report says.
 */
void envelope_failures_prune(struct envelope *env);
/*
 * envelope_report_due - every recipient is final and one of them has a
 * current failure detail: the message still owes its sender a report.
 */
bool envelope_report_due(const struct envelope *env);

#endif
