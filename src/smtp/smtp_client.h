/*
 * smtp_client.h - outbound SMTP connections (the I/O-loop side of delivery)
 *
 * The queue manager (scheduler thread) decides what to send where; an
 * outbound connection (one per TCP connection, owned by the I/O loop it was
 * opened on) only speaks SMTP. They talk through posted messages, never
 * shared state (the contract below). A connection:
 *
 *   1. tries the candidate addresses in order (connect timeout each; a
 *      refused/failed connect, a 4xx/5xx banner or a failed EHLO/HELO moves
 *      on to the next address), binding to the source address if one is
 *      given, until one greets with 220 and accepts EHLO (HELO fallback);
 *   2. does STARTTLS according to tls_mode (ifavailable: when offered; if
 *      the handshake fails, reconnect to the same address without TLS;
 *      required: no TLS = every recipient of the batch fails transiently;
 *      no: never);
 *   2a. when auth_user is set, authenticates (RFC 4954, PLAIN or LOGIN)
 *      after the last EHLO, only inside TLS unless auth_allow_plaintext:
 *      no TLS, or the mechanism not offered, gives the address up with a
 *      4.7.0 text (transient when no address is left); a 4xx to AUTH
 *      gives the address up too; a 5xx (535) fails the recipients on the
 *      connection permanently and the connection QUITs. The password is
 *      never logged nor put in any result text;
 *   3. for each batch: MAIL FROM (SIZE=, BODY=, SMTPUTF8, RET=, ENVID= when
 *      offered and known), RCPT TO for each recipient (NOTIFY=, ORCPT= with
 *      DSN), DATA (pipelined when PIPELINING is offered), the body read from
 *      the spool with dot-stuffing, bare LF/CR turned into CRLF and lines
 *      over 998 octets folded with CRLF SPACE, and
 *      reports the per-recipient outcome of the batch;
 *   4. after a batch, asks for the next one; it waits Idle_Timeout for one
 *      (RSET between transactions), then QUITs and reports it closed.
 *
 * Refusals it can decide alone: a message over the server's SIZE,
 * SMTPUTF8 needed (a non-ASCII envelope address or header) but not
 * offered (5.6.7), BINARYMIME: each a permanent failure of the batch with
 * a clear text. Not refusals: 8-bit content to a server without 8BITMIME
 * is sent with its 8-bit body parts made quoted-printable, and a message
 * flagged SMTPUTF8 that needs none goes without the parameter
 * (docs/smtp-client.md, "8-bit and SMTPUTF8 downgrade").
 */
#ifndef IMPETUS_SMTP_SMTP_CLIENT_H
#define IMPETUS_SMTP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/id.h"
#include "message/envelope.h"

struct loop;
struct spool;
struct smtp_client;
struct api_hook;
struct imp_message;
struct conf;

/* Connection stages, Momentum's numbering (shared/REFERENCE.md). */
enum smtp_stage {
	STAGE_NOT_CONNECTED = 0,
	STAGE_IDLE = 1,
	STAGE_MAIL_SENT = 2,
	STAGE_MAIL_ACCEPTED = 3,
	STAGE_RCPT_SENT = 4,
	STAGE_RCPT_ACCEPTED = 5,
	STAGE_DATA_SENT = 6,
	STAGE_DATA_ACCEPTED = 7,
	STAGE_BODY_SENT = 8,
	STAGE_BODY_ACCEPTED = 9,
	STAGE_EHLO_SENT = 10,
	STAGE_EHLO_ACCEPTED = 11,
	STAGE_AWAITING_BANNER = 12,
	STAGE_RSET_SENT = 13,
	STAGE_RSET_ACCEPTED = 14,
	STAGE_STARTTLS_SENT = 15,
	STAGE_STARTTLS_ACCEPTED = 16,
	STAGE_TLS_HANDSHAKE = 17,
	STAGE_TLS_ESTABLISHED = 18,
	STAGE_OUT_OF_BAND = 21,
	STAGE_UNKNOWN = 22,
};

enum smtp_tls_mode { SMTP_TLS_IFAVAILABLE = 0, SMTP_TLS_REQUIRED = 1, SMTP_TLS_NO = 2 };

/* Outbound AUTH mechanisms, in the order of Outbound_SMTP_AUTH_Type's words. */
enum smtp_auth_type { SMTP_AUTH_PLAIN = 0, SMTP_AUTH_LOGIN = 1 };

/* Room for the EHLO keywords a session remembers (struct smtp_caps.keywords). */
#define SMTP_CAPS_KEYWORDS_MAX 512

/* What the server offered in its EHLO reply. */
struct smtp_caps {
	bool esmtp;		/* EHLO worked (false: HELO fallback) */
	bool pipelining, eightbitmime, starttls, enhancedstatuscodes;
	bool smtputf8, chunking, dsn;
	bool size;		/* SIZE offered */
	bool auth_plain, auth_login;	/* AUTH (or the old AUTH=) offers PLAIN / LOGIN */
	uint64_t size_max;	/* its value; 0 = no limit given */
	/*
	 * Every EHLO keyword offered, upper-cased, each followed by one
	 * space ("PIPELINING SIZE X-FOO "), for imp_params_peer_has; keywords
	 * that do not fit are left out.
	 */
	char keywords[SMTP_CAPS_KEYWORDS_MAX];
};

/* The outcome of one recipient (or of a whole failed attempt). */
enum smtp_outcome {
	SMTP_OUT_NOT_TRIED = 0,	/* never attempted (connection lost before): requeue, no retry count */
	SMTP_OUT_DELIVERED,	/* 2xx after the body */
	SMTP_OUT_TRANSIENT,	/* 4xx, network error, timeout */
	SMTP_OUT_PERMANENT,	/* 5xx, or refused locally (size, 8BITMIME) */
};

struct smtp_rcpt_result {
	uint32_t index;		/* recipient index in the spooled message */
	char *addr;		/* owned */
	char *orcpt;		/* owned, may be NULL */
	uint8_t notify;
	/* filled by the connection: */
	uint8_t outcome;	/* enum smtp_outcome */
	uint8_t stage;		/* enum smtp_stage where it was decided */
	int code;		/* SMTP reply code; 0 when no reply (network) */
	char *response;		/* owned: the reply text ("421 4.4.2 ..."), or why */
};

/*
 * One transaction: one message to up to Max_Recipients_Per_Batch of its
 * recipients for one domain, or, on a next hop's connection (MX_Rollup,
 * src/queue/queue_hop.c), to the recipients of several domains behind
 * that hop, each domain's share within its Max_Recipients_Per_Batch. The
 * connection does not care which: the body is read and sent once per
 * batch. Created by the scheduler, owned by the connection while posted
 * to it, handed back in the result.
 */
struct smtp_batch {
	impetus_id msg_id;
	impetus_id batch_id;
	struct envelope_loc loc;	/* body in the spool */
	char *sender;		/* owned; "" for the null sender */
	char *envid;		/* owned or NULL */
	uint8_t ret, body_type;
	bool smtputf8;
	size_t nrcpt;
	struct smtp_rcpt_result *rcpts;	/* owned */
	void *qctx;		/* the scheduler's own pointer, untouched by the client */
	/*
	 * The client_params hook (impetus/hooks.h), NULL when nobody
	 * subscribed: set by the scheduler with view (a snapshot of the
	 * message with this batch's recipients, read-only on the I/O loop)
	 * and hook_conf (a reference that keeps the hook's generation). All
	 * three are released by smtp_batch_free.
	 */
	const struct api_hook *params_hook;
	struct imp_message *view;
	struct conf *hook_conf;
	/* filled by the connection: */
	impetus_id conn_id;	/* the connection's id (for log lines), 0 if none */
	char remote_ip[64];	/* the server it talked to, "" if none */
	char remote_host[256];	/* that server's MX (or route) host name, "" if unknown */
	uint64_t bytes_sent;
	bool peer_dsn;		/* the server offered DSN: NOTIFY and ORCPT went with the RCPTs */
	uint64_t wire_length;	/* the body as sent when it was converted (SIZE=), else 0 */
};

/* Everything a connection needs to open; owned by the request. */
struct smtp_client_params {
	size_t naddr;
	struct sockaddr_storage *addrs;	/* candidates in order, ports set */
	char **addr_names;		/* MX host name per address (for logs) */
	struct sockaddr_storage bind;	/* source address; ss_family 0 = any */
	char *ehlo_name;
	uint8_t tls_mode;		/* enum smtp_tls_mode */
	uint32_t connect_timeout;	/* seconds */
	uint32_t idle_timeout;		/* seconds to wait for the next batch */
	uint32_t reply_timeout;		/* seconds for any reply (default 300) */
	uint32_t data_timeout;		/* seconds for the reply after the body (default 600) */
	uint32_t max_deliveries;	/* batches per connection, 0 = no limit */
	/*
	 * Outbound SMTP AUTH: none when auth_user is NULL. auth_pass is wiped
	 * before it is freed; auth_key only labels log lines.
	 */
	char *auth_user;
	char *auth_pass;
	char *auth_key;
	uint8_t auth_type;		/* enum smtp_auth_type */
	bool auth_allow_plaintext;	/* AUTH without TLS is allowed */
};

/*
 * Callbacks to the scheduler. The connection posts them to the scheduler
 * loop given at smtp_client_open; they run there.
 *
 *   batch_done  a batch finished (every rcpt has an outcome); the batch is
 *               handed back. more == true: the connection is open and idle
 *               and will take another batch (smtp_client_send) or close
 *               itself after idle_timeout.
 *   closed      the connection is gone (after its last batch_done);
 *               connected == false when no address could be reached, with
 *               the reason (e.g. "connection refused", "421 ... banner").
 */
struct smtp_client_events {
	void (*batch_done)(void *ctx, struct smtp_client *c, struct smtp_batch *b, bool more);
	void (*closed)(void *ctx, struct smtp_client *c, bool connected, const char *reason);
	void *ctx;
};

/*
 * smtp_client_open - open a connection on io_loop (any thread may call;
 * it posts). first is the batch to send once connected (not NULL). The
 * handle is valid until `closed` has run on the scheduler.
 */
struct smtp_client *smtp_client_open(struct loop *io_loop, struct loop *scheduler,
				     struct spool *sp, struct smtp_client_params *params,
				     struct smtp_batch *first,
				     const struct smtp_client_events *ev);
/* smtp_client_send - hand an idle connection its next batch (posts). */
void smtp_client_send(struct smtp_client *c, struct smtp_batch *b);
/* smtp_client_id - the connection's id (fixed at open; any thread). */
impetus_id smtp_client_id(const struct smtp_client *c);
/* smtp_client_close - QUIT an idle connection now (posts). */
void smtp_client_close(struct smtp_client *c);

void smtp_batch_free(struct smtp_batch *b);
void smtp_client_params_free(struct smtp_client_params *p);

/* smtp_caps_parse - fill caps from the lines of an EHLO reply (after "250-"). */
void smtp_caps_parse(struct smtp_caps *caps, const char *const *lines, size_t nlines);

#endif
