/*
 * spool_record.h - the spool's on-disk format: segment names, segment
 * header, and the record codec
 *
 * This is the only code that knows the byte layout (docs/spool.md has the
 * tables). Encoding appends to a struct str; decoding works on a bounded
 * buffer and never reads outside it, whatever the bytes: a bad length, an
 * unknown type, a CRC mismatch or a malformed payload is answered with a
 * reason string, never with a crash. No state; any thread.
 */
#ifndef IMPETUS_SPOOL_SPOOL_RECORD_H
#define IMPETUS_SPOOL_SPOOL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "message/envelope.h"

/* ---- segment files ---- */

#define SPOOL_SEG_PREFIX "seg-"
#define SPOOL_SEG_SUFFIX ".log"
/* "seg-" + 16 hex digits + ".log" + NUL */
#define SPOOL_SEG_NAME_SIZE 25

#define SPOOL_SEG_MAGIC "IMPSPOOL"
#define SPOOL_SEG_VERSION 1u
#define SPOOL_SEG_HDR_SIZE 32u

/* spool_seg_name - the file name of segment seq; returns buf. */
char *spool_seg_name(uint64_t seq, char buf[SPOOL_SEG_NAME_SIZE]);
/*
 * spool_seg_parse_name - the sequence number of a segment file name, also
 * accepting the name followed by suffix (e.g. ".corrupt") when suffix is
 * not NULL. False for anything else.
 */
bool spool_seg_parse_name(const char *name, const char *suffix, uint64_t *seq);
/* spool_seg_header - the 32 header bytes of segment seq. */
void spool_seg_header(uint64_t seq, uint8_t out[SPOOL_SEG_HDR_SIZE]);
/*
 * spool_seg_check_header - validate a segment header. Returns 0 and sets
 * *seq and *version, or -1 with *why. A header that is intact but has a
 * version this code does not know returns 0: the caller decides.
 */
int spool_seg_check_header(const uint8_t *p, size_t n, uint64_t *seq,
			   uint32_t *version, const char **why);

/* ---- records ---- */

/* Record header: magic(4) type(1) flags(1) reserved(2) length(4) crc(4). */
#define SPOOL_REC_HDR_SIZE 16u
#define SPOOL_REC_MAGIC0 0xE5
#define SPOOL_REC_MAGIC1 'I'
#define SPOOL_REC_MAGIC2 'M'
#define SPOOL_REC_MAGIC3 'R'
/* Largest payload accepted; bounds a message body at just under 2 GiB. */
#define SPOOL_REC_MAX_PAYLOAD 0x7fffffffu

/*
 * Record header flag (byte 5). RELOCATED marks a MESSAGE record that
 * compaction copied from an older segment (docs/spool.md, "Compaction"):
 * recovery lets it replace the earlier copy without reporting a duplicate.
 * Any other bit, or this one on another type, is invalid.
 */
#define SPOOL_REC_FLAG_RELOCATED 0x01u

enum spool_rec_type {
	SPOOL_REC_MESSAGE = 1,
	SPOOL_REC_RCPT_STATE = 2,
	SPOOL_REC_RCPT_RETRY = 3,
	SPOOL_REC_MESSAGE_DONE = 4,
	SPOOL_REC_BINDING = 5,		/* the message's binding changed (imp_queue_rebind) */
	SPOOL_REC_RCPT_FAILURE = 6,	/* a recipient's DSN details (failed or relayed) */
};
#define SPOOL_REC_TYPE_MAX SPOOL_REC_RCPT_FAILURE

/* A decoded record. For MESSAGE, msg is allocated and owned by the caller. */
struct spool_rec {
	uint8_t type;			/* enum spool_rec_type */
	uint8_t flags;			/* SPOOL_REC_FLAG_* (header byte 5) */
	impetus_id id;
	uint32_t rcpt_index;		/* RCPT_STATE, RCPT_RETRY */
	uint8_t state;			/* RCPT_STATE */
	uint32_t retries;		/* RCPT_RETRY */
	int64_t next_attempt;		/* RCPT_RETRY */
	struct envelope *msg;		/* MESSAGE: envelope, no body, loc unset */
	uint64_t body_offset;		/* MESSAGE: body start, from the record start */
	uint64_t body_length;		/* MESSAGE */
	/*
	 * BINDING: the new binding and binding group, pointing into the
	 * decoded bytes (not NUL-terminated, no NUL inside): valid as long as
	 * the buffer given to the decoder. Copy them.
	 */
	const char *binding, *binding_group;
	uint32_t binding_len, binding_group_len;
	/*
	 * RCPT_FAILURE (with rcpt_index): what the recipient's DSN says. The
	 * texts point into the decoded bytes like the binding's (no NUL
	 * inside, at most ENVELOPE_FAILURE_*_MAX bytes); remote_len 0 = none.
	 */
	uint8_t action;			/* enum envelope_failure_action */
	uint8_t stage;
	uint16_t code;			/* 0..999 */
	int64_t when;
	const char *response, *remote;
	uint32_t response_len, remote_len;
};

const char *spool_rec_type_name(unsigned type);

/*
 * spool_rec_encode_message - append a MESSAGE record's header and envelope
 * to out; the body is NOT copied but is covered by the CRC and the length,
 * so the caller writes msg->body right after these bytes, then the file
 * part (msg->file) when there is one. Returns the body
 * offset from the start of the record, or 0 when the message is too large
 * to encode (out is unchanged then).
 */
size_t spool_rec_encode_message(struct str *out, const struct envelope *msg);
/*
 * spool_rec_encode_relocated - append the header and envelope of a
 * RELOCATED MESSAGE record whose body (body_len bytes) the caller copies
 * from the old record. The CRC field is left 0: *crc is the CRC32C over
 * the header's first 12 bytes and the envelope, which the caller extends
 * over the body bytes and stores with spool_rec_store_crc. Returns the
 * body offset from the record start, or 0 when too large (out unchanged).
 */
size_t spool_rec_encode_relocated(struct str *out, const struct envelope *msg,
				  uint64_t body_len, uint32_t *crc);
/* spool_rec_store_crc - set the CRC field of the record header at rec. */
void spool_rec_store_crc(void *rec, uint32_t crc);
/* spool_rec_header_crc - the CRC field of the record header at rec. */
uint32_t spool_rec_header_crc(const void *rec);
/* spool_rec_header_len - the payload length field of the record header at rec. */
uint32_t spool_rec_header_len(const void *rec);

void spool_rec_encode_rcpt_state(struct str *out, impetus_id id, uint32_t rcpt_index,
				 uint8_t state);
void spool_rec_encode_rcpt_retry(struct str *out, impetus_id id, uint32_t rcpt_index,
				 uint32_t retries, int64_t next_attempt);
void spool_rec_encode_done(struct str *out, impetus_id id);
/* spool_rec_encode_binding - a BINDING record: id, binding ("" default), binding group ("" none). */
void spool_rec_encode_binding(struct str *out, impetus_id id, const char *binding,
			      const char *binding_group);

/*
 * spool_rec_encode_rcpt_failure - an RCPT_FAILURE record for recipient
 * f->rcpt of message id. Texts longer than their bound are cut at a UTF-8
 * character boundary; a code outside 0..999 is stored as 0.
 */
void spool_rec_encode_rcpt_failure(struct str *out, impetus_id id,
				   const struct envelope_failure *f);
/*
 * spool_rec_failure - the envelope_failure of a decoded RCPT_FAILURE
 * record, with its texts copied (free response and remote).
 */
void spool_rec_failure(const struct spool_rec *rec, struct envelope_failure *f);

/* Results of spool_rec_decode. */
#define SPOOL_REC_BAD (-1)		/* corrupt: *why says how */
#define SPOOL_REC_SHORT 0		/* not enough bytes: a torn tail or a lying length */

/*
 * spool_rec_decode - decode the record at p (n bytes available). Checks the
 * header, the length against n, the CRC, then the payload. Returns the
 * record's total size (> 0) with *out filled, SPOOL_REC_SHORT when n is
 * too small for the header or the length the header claims (*need set to
 * that size when known, else 0), or SPOOL_REC_BAD with *why. With
 * with_msg false a MESSAGE's envelope is validated but not kept.
 */
long long spool_rec_decode(const void *p, size_t n, bool with_msg, struct spool_rec *out,
			   uint64_t *need, const char **why);
/*
 * spool_rec_decode_payload - decode a payload of the given type whose CRC
 * was already checked (exposed for the fuzz tests). Returns 0 or -1 with
 * *why. body offsets in *out are relative to the payload start.
 */
int spool_rec_decode_payload(unsigned type, const uint8_t *p, size_t n, bool with_msg,
			     struct spool_rec *out, const char **why);
/*
 * spool_rec_reseal - recompute the CRC of a record in place, after its
 * header said the payload is len bytes (for tests that corrupt payloads
 * on purpose and want the payload decoder to see them).
 */
void spool_rec_reseal(uint8_t *rec, size_t n);

#endif
