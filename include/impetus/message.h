/*
 * impetus/message.h - a message: envelope, validation context, headers, bytes
 *
 * A struct imp_message is a view of one message that the daemon owns.
 * Where a module gets one says what it may do with it:
 *
 *   - during reception (data_spool, data_spool_each_rcpt, set_binding,
 *     on the session's I/O loop) and in a sign subscriber (on a CPU pool
 *     thread): everything, headers included; the message is not spooled
 *     yet, so changes are what will be stored and delivered;
 *   - elsewhere (binding choice, client parameters, an inject callback):
 *     read the envelope and the message context; the bytes are in the
 *     spool, read them with imp_message_read, which never blocks a loop.
 *
 * Pointers returned stay valid until the hook returns; copy what you keep.
 * Header names match case-insensitively; values are returned as stored
 * (folding kept, without the trailing CRLF).
 */
#ifndef IMPETUS_MESSAGE_H
#define IMPETUS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct imp_message;

/* The text form of a message id, as in the logs ("0000018C2B3A4F5E-0001"): IMP_ID_TEXT_MAX bytes with NUL. */
#define IMP_ID_TEXT_MAX 40

/* ---- envelope (any holder, read-only) ---- */
void imp_message_id_text(const struct imp_message *m, char buf[IMP_ID_TEXT_MAX]);
uint64_t imp_message_id(const struct imp_message *m);
const char *imp_message_sender(const struct imp_message *m);	/* "" for <> */
size_t imp_message_rcpt_count(const struct imp_message *m);
const char *imp_message_rcpt(const struct imp_message *m, size_t i);	/* NULL past the end */
const char *imp_message_binding(const struct imp_message *m);		/* "" = default */
const char *imp_message_binding_group(const struct imp_message *m);
const char *imp_message_protocol(const struct imp_message *m);		/* "esmtp", "internal", ... */
const char *imp_message_client_ip(const struct imp_message *m);	/* "" for internal */
int64_t imp_message_received(const struct imp_message *m);		/* unix seconds */
uint64_t imp_message_size(const struct imp_message *m);		/* bytes, headers included */

/*
 * The message-scope validation context: what the reception's hooks set
 * with imp_vctx_set(IMP_VCTX_MESS), stored with the message in the
 * spool. imp_message_vctx_set works only before the message is spooled
 * (-EPERM afterwards), with the limits of impetus/session.h.
 */
const char *imp_message_vctx_get(const struct imp_message *m, const char *key);
int imp_message_vctx_set(struct imp_message *m, const char *key, const char *value);
/* imp_message_vctx_each - call fn for every entry, in insertion order. */
void imp_message_vctx_each(const struct imp_message *m,
			   void (*fn)(void *arg, const char *key, const char *value), void *arg);

/* ---- headers (before spooling only; -EPERM / NULL otherwise) ---- */

/* imp_header_count - how many fields are named name. */
size_t imp_header_count(const struct imp_message *m, const char *name);
/* imp_header_get - the index-th (0-based, top down) field named name, or NULL. */
const char *imp_header_get(const struct imp_message *m, const char *name, size_t index);
/*
 * imp_header_add / imp_header_prepend - append the field at the end of the
 * header block, or insert it at the top (traces, signatures). The value
 * is folded to 78 columns where it has white space. A value the module
 * folded itself (API 1.2: its only line breaks are CRLF followed by SP or
 * HTAB, no line empty, blank or over 998 octets) is kept byte for byte,
 * as a DKIM signature needs. Returns 0, or -EINVAL for a bad name (not
 * RFC 5322 ftext) or a value with any other CR or LF.
 */
int imp_header_add(struct imp_message *m, const char *name, const char *value);
int imp_header_prepend(struct imp_message *m, const char *name, const char *value);
/* imp_header_delete - remove the index-th field named name; 0 or -ENOENT. */
int imp_header_delete(struct imp_message *m, const char *name, size_t index);
/*
 * imp_message_header_block - a copy of the whole header block (the
 * fields with their CRLFs, without the empty line), malloc()ed; the
 * caller frees it. *len gets its length. NULL after spooling.
 */
char *imp_message_header_block(const struct imp_message *m, size_t *len);
/*
 * imp_message_bytes - the message as it would be spooled now (headers
 * and body, CRLF lines), when it is in memory; NULL when not (spooled, or
 * a large message partly in a file: use imp_message_read).
 */
const char *imp_message_bytes(const struct imp_message *m, size_t *len);
/*
 * imp_message_copy - the whole message as it would be spooled now, in
 * memory or not (API 1.2): a malloc()ed copy the caller frees, *len its
 * length; NULL after spooling, or with errno set when the part in a file
 * cannot be read. It reads that file, so it blocks: call it in a sign
 * subscriber (CPU pool), never on a loop. A signer uses it when
 * imp_message_bytes is NULL (a message larger than the in-memory part).
 */
char *imp_message_copy(const struct imp_message *m, size_t *len);

/* ---- bytes from the spool (any loop thread) ---- */

/*
 * imp_message_read - read the whole message (headers and body) on the
 * IO pool and call done(arg, err, bytes, len) on the calling loop's
 * thread: err 0 and the bytes (valid during the call only), or a
 * negative errno (-ENOENT / -EIO when the message finished meanwhile).
 * Returns 0, -EINVAL when called off a loop thread, or -ENOTCONN
 * without a daemon.
 */
typedef void (*imp_read_done_fn)(void *arg, int err, const char *bytes, size_t len);
int imp_message_read(const struct imp_message *m, imp_read_done_fn done, void *arg);

#ifdef __cplusplus
}
#endif

#endif
