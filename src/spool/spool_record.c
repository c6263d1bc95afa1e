/*
 * spool_record.c - segment names and headers, record encoding and
 * bounds-checked decoding (see spool_record.h and docs/spool.md)
 *
 * All integers are little-endian regardless of the host. Strings are a
 * u32 length then the bytes (no NUL); an optional string uses length
 * 0xFFFFFFFF for "absent". The decoder walks a cursor that refuses any
 * read past its end, so the worst a hostile file can do is be rejected.
 */
#include "spool/spool_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>

#include <impetus/session.h>

#include "core/crc32c.h"
#include "core/mem.h"

#define STR_ABSENT 0xffffffffu
/* smallest encoded recipient: addr len, orcpt len, notify, state, retries, next */
#define RCPT_MIN_SIZE (4 + 4 + 1 + 1 + 4 + 8)
#define MSG_FLAG_SMTPUTF8 0x01
/*
 * The envelope ends with the message's validation context (a u32 count,
 * then key and value strings). Written only when the context has
 * entries, so a record without it is byte for byte what older versions
 * wrote and read.
 */
#define MSG_FLAG_VCTX 0x02
#define MSG_FLAGS_KNOWN (MSG_FLAG_SMTPUTF8 | MSG_FLAG_VCTX)
/* smallest encoded vctx entry: two string lengths and a one-byte key */
#define VCTX_ENTRY_MIN_SIZE (4 + 1 + 4)

/* ==================== segment names and header ==================== */

char *spool_seg_name(uint64_t seq, char buf[SPOOL_SEG_NAME_SIZE])
{
	snprintf(buf, SPOOL_SEG_NAME_SIZE, SPOOL_SEG_PREFIX "%016" PRIx64 SPOOL_SEG_SUFFIX, seq);
	return buf;
}

bool spool_seg_parse_name(const char *name, const char *suffix, uint64_t *seq)
{
	size_t plen = strlen(SPOOL_SEG_PREFIX);
	size_t slen = strlen(SPOOL_SEG_SUFFIX);
	uint64_t v = 0;
	const char *rest;

	if (strncmp(name, SPOOL_SEG_PREFIX, plen) != 0)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = name[plen + i];
		int d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	rest = name + plen + 16;
	if (strncmp(rest, SPOOL_SEG_SUFFIX, slen) != 0)
		return false;
	rest += slen;
	if (*rest != '\0' && (suffix == NULL || strcmp(rest, suffix) != 0))
		return false;
	*seq = v;
	return true;
}

/* store_le32 .. load_le64 - little-endian integers at any alignment. */
static void store_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_le64(const uint8_t *p)
{
	return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}

/* Header: magic(8) version(4) header size(4) seq(8) reserved(4) crc(4). */
void spool_seg_header(uint64_t seq, uint8_t out[SPOOL_SEG_HDR_SIZE])
{
	memcpy(out, SPOOL_SEG_MAGIC, 8);
	store_le32(out + 8, SPOOL_SEG_VERSION);
	store_le32(out + 12, SPOOL_SEG_HDR_SIZE);
	store_le64(out + 16, seq);
	store_le32(out + 24, 0);
	store_le32(out + 28, crc32c(0, out, 28));
}

int spool_seg_check_header(const uint8_t *p, size_t n, uint64_t *seq,
			   uint32_t *version, const char **why)
{
	if (n < SPOOL_SEG_HDR_SIZE) {
		*why = "short segment header";
		return -1;
	}
	if (memcmp(p, SPOOL_SEG_MAGIC, 8) != 0) {
		*why = "bad segment magic";
		return -1;
	}
	if (load_le32(p + 28) != crc32c(0, p, 28)) {
		*why = "bad segment header crc";
		return -1;
	}
	if (load_le32(p + 12) != SPOOL_SEG_HDR_SIZE) {
		*why = "bad segment header size";
		return -1;
	}
	*version = load_le32(p + 8);
	*seq = load_le64(p + 16);
	return 0;
}

/* ==================== encoding ==================== */

/* put_* - append little-endian integers and (optional) strings. */
static void put_u8(struct str *out, uint8_t v)
{
	str_appendc(out, (char)v);
}

static void put_u16(struct str *out, uint16_t v)
{
	put_u8(out, (uint8_t)v);
	put_u8(out, (uint8_t)(v >> 8));
}

static void put_u32(struct str *out, uint32_t v)
{
	uint8_t b[4];

	store_le32(b, v);
	str_append(out, b, 4);
}

static void put_u64(struct str *out, uint64_t v)
{
	uint8_t b[8];

	store_le64(b, v);
	str_append(out, b, 8);
}

static void put_str(struct str *out, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put_u32(out, (uint32_t)n);
	str_append(out, s ? s : "", n);
}

static void put_optstr(struct str *out, const char *s)
{
	if (s == NULL)
		put_u32(out, STR_ABSENT);
	else
		put_str(out, s);
}

/* rec_begin - append a record header with length and crc left zero; returns its offset. */
static size_t rec_begin(struct str *out, uint8_t type, uint8_t flags)
{
	size_t start = out->len;
	uint8_t h[SPOOL_REC_HDR_SIZE] = {
		SPOOL_REC_MAGIC0, SPOOL_REC_MAGIC1, SPOOL_REC_MAGIC2, SPOOL_REC_MAGIC3,
		type, flags, 0, 0,
	};

	str_append(out, h, sizeof(h));
	return start;
}

/*
 * rec_seal_file - fill in length and crc of the record starting at start;
 * extra (n bytes) is payload that follows outside out (a body in memory),
 * then file_len bytes whose own crc is file_crc (a body part in a file).
 */
static void rec_seal_file(struct str *out, size_t start, const void *extra, size_t n,
			  uint32_t file_crc, uint64_t file_len)
{
	uint8_t *h = (uint8_t *)out->s + start;
	size_t inline_len = out->len - start - SPOOL_REC_HDR_SIZE;
	uint32_t crc;

	store_le32(h + 8, (uint32_t)(inline_len + n + file_len));
	crc = crc32c(0, h, 12);
	crc = crc32c(crc, h + SPOOL_REC_HDR_SIZE, inline_len);
	if (n)
		crc = crc32c(crc, extra, n);
	if (file_len)
		crc = crc32c_combine(crc, file_crc, file_len);
	store_le32(h + 12, crc);
}

/* rec_seal - rec_seal_file without a file part. */
static void rec_seal(struct str *out, size_t start, const void *extra, size_t n)
{
	rec_seal_file(out, start, extra, n, 0, 0);
}

/*
 * encode_envelope - a MESSAGE record's header and envelope for a body of
 * body_len bytes; returns the record start, or SIZE_MAX when too large
 * (out unchanged then). Length and CRC are left for the caller.
 */
static size_t encode_envelope(struct str *out, const struct envelope *msg, uint8_t rflags,
			      uint64_t body_len)
{
	size_t start, envlen_at, envlen;
	uint8_t flags = msg->smtputf8 ? MSG_FLAG_SMTPUTF8 : 0;

	if (vctx_count(msg->vctx) > 0)
		flags |= MSG_FLAG_VCTX;
	start = rec_begin(out, SPOOL_REC_MESSAGE, rflags);
	envlen_at = out->len;
	put_u32(out, 0);
	put_u64(out, msg->id);
	put_u64(out, (uint64_t)msg->received);
	put_str(out, msg->sender);
	put_optstr(out, msg->envid);
	put_u8(out, msg->ret);
	put_u8(out, msg->body_type);
	put_u8(out, flags);
	put_str(out, msg->client_ip);
	put_str(out, msg->helo);
	put_str(out, msg->protocol);
	put_str(out, msg->binding_group);
	put_str(out, msg->binding);
	put_u32(out, (uint32_t)msg->nrcpt);
	for (size_t i = 0; i < msg->nrcpt; i++) {
		const struct envelope_rcpt *r = &msg->rcpts[i];

		put_str(out, r->addr);
		put_optstr(out, r->orcpt);
		put_u8(out, r->notify);
		put_u8(out, r->state);
		put_u32(out, r->retries);
		put_u64(out, (uint64_t)r->next_attempt);
	}
	if (flags & MSG_FLAG_VCTX) {
		put_u32(out, (uint32_t)msg->vctx->n);
		for (size_t i = 0; i < msg->vctx->n; i++) {
			put_str(out, msg->vctx->v[i].key);
			put_str(out, msg->vctx->v[i].value);
		}
	}
	envlen = out->len - envlen_at - 4;
	if (envlen + 4 + body_len > SPOOL_REC_MAX_PAYLOAD || msg->nrcpt > UINT32_MAX) {
		str_truncate(out, start);
		return SIZE_MAX;
	}
	store_le32((uint8_t *)out->s + envlen_at, (uint32_t)envlen);
	return start;
}

size_t spool_rec_encode_message(struct str *out, const struct envelope *msg)
{
	uint64_t file_len = msg->file.fd >= 0 ? msg->file.len : 0;
	size_t start = encode_envelope(out, msg, 0, msg->body.len + file_len);

	if (start == SIZE_MAX)
		return 0;
	rec_seal_file(out, start, msg->body.s, msg->body.len, msg->file.crc, file_len);
	return out->len - start;
}

size_t spool_rec_encode_relocated(struct str *out, const struct envelope *msg,
				  uint64_t body_len, uint32_t *crc)
{
	size_t start = encode_envelope(out, msg, SPOOL_REC_FLAG_RELOCATED, body_len);
	uint8_t *h;
	size_t inline_len;

	if (start == SIZE_MAX)
		return 0;
	h = (uint8_t *)out->s + start;
	inline_len = out->len - start - SPOOL_REC_HDR_SIZE;
	store_le32(h + 8, (uint32_t)(inline_len + body_len));
	*crc = crc32c(crc32c(0, h, 12), h + SPOOL_REC_HDR_SIZE, inline_len);
	return out->len - start;
}

void spool_rec_store_crc(void *rec, uint32_t crc)
{
	store_le32((uint8_t *)rec + 12, crc);
}

uint32_t spool_rec_header_crc(const void *rec)
{
	return load_le32((const uint8_t *)rec + 12);
}

uint32_t spool_rec_header_len(const void *rec)
{
	return load_le32((const uint8_t *)rec + 8);
}

void spool_rec_encode_rcpt_state(struct str *out, impetus_id id, uint32_t rcpt_index,
				 uint8_t state)
{
	size_t start = rec_begin(out, SPOOL_REC_RCPT_STATE, 0);

	put_u64(out, id);
	put_u32(out, rcpt_index);
	put_u8(out, state);
	rec_seal(out, start, NULL, 0);
}

void spool_rec_encode_rcpt_retry(struct str *out, impetus_id id, uint32_t rcpt_index,
				 uint32_t retries, int64_t next_attempt)
{
	size_t start = rec_begin(out, SPOOL_REC_RCPT_RETRY, 0);

	put_u64(out, id);
	put_u32(out, rcpt_index);
	put_u32(out, retries);
	put_u64(out, (uint64_t)next_attempt);
	rec_seal(out, start, NULL, 0);
}

void spool_rec_encode_done(struct str *out, impetus_id id)
{
	size_t start = rec_begin(out, SPOOL_REC_MESSAGE_DONE, 0);

	put_u64(out, id);
	rec_seal(out, start, NULL, 0);
}

void spool_rec_encode_binding(struct str *out, impetus_id id, const char *binding,
			      const char *binding_group)
{
	size_t start = rec_begin(out, SPOOL_REC_BINDING, 0);

	put_u64(out, id);
	put_str(out, binding);
	put_str(out, binding_group);
	rec_seal(out, start, NULL, 0);
}

/*
 * put_text - a string of at most max bytes: longer text is cut, backing
 * off over UTF-8 continuation bytes so the cut never splits a character.
 */
static void put_text(struct str *out, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	put_u32(out, (uint32_t)n);
	str_append(out, s ? s : "", n);
}

void spool_rec_encode_rcpt_failure(struct str *out, impetus_id id,
				   const struct envelope_failure *f)
{
	size_t start = rec_begin(out, SPOOL_REC_RCPT_FAILURE, 0);

	put_u64(out, id);
	put_u32(out, f->rcpt);
	put_u8(out, f->action);
	put_u8(out, f->stage);
	put_u16(out, f->code <= 999 ? f->code : 0);
	put_u64(out, (uint64_t)f->when);
	put_text(out, f->response, ENVELOPE_FAILURE_RESPONSE_MAX);
	put_text(out, f->remote, ENVELOPE_FAILURE_REMOTE_MAX);
	rec_seal(out, start, NULL, 0);
}

void spool_rec_failure(const struct spool_rec *rec, struct envelope_failure *f)
{
	f->rcpt = rec->rcpt_index;
	f->action = rec->action;
	f->stage = rec->stage;
	f->code = rec->code;
	f->when = rec->when;
	f->response = xstrndup(rec->response ? rec->response : "", rec->response_len);
	f->remote = rec->remote_len ? xstrndup(rec->remote, rec->remote_len) : NULL;
}

void spool_rec_reseal(uint8_t *rec, size_t n)
{
	uint32_t len, crc;

	if (n < SPOOL_REC_HDR_SIZE)
		return;
	len = load_le32(rec + 8);
	if (len > n - SPOOL_REC_HDR_SIZE)
		len = (uint32_t)(n - SPOOL_REC_HDR_SIZE);
	crc = crc32c(0, rec, 12);
	crc = crc32c(crc, rec + SPOOL_REC_HDR_SIZE, len);
	store_le32(rec + 12, crc);
}

/* ==================== decoding ==================== */

/*
 * struct cur - a read cursor over n bytes. Every getter checks the
 * remaining length first and records the first failure in why; later
 * getters then fail too, so a decoder can check once at the end of a group.
 */
struct cur {
	const uint8_t *p;
	size_t n;
	size_t off;
	const char *why;
};

/* need - are k more bytes there? Records the first shortfall as why. */
static bool need(struct cur *c, size_t k, const char *what)
{
	if (c->why)
		return false;
	if (c->n - c->off < k) {
		c->why = what;
		return false;
	}
	return true;
}

/* get_* - read an integer, 0 after any failure (why says which). */
static uint8_t get_u8(struct cur *c)
{
	if (!need(c, 1, "truncated payload"))
		return 0;
	return c->p[c->off++];
}

static uint16_t get_u16(struct cur *c)
{
	uint16_t v;

	if (!need(c, 2, "truncated payload"))
		return 0;
	v = (uint16_t)(c->p[c->off] | c->p[c->off + 1] << 8);
	c->off += 2;
	return v;
}

static uint32_t get_u32(struct cur *c)
{
	uint32_t v;

	if (!need(c, 4, "truncated payload"))
		return 0;
	v = load_le32(c->p + c->off);
	c->off += 4;
	return v;
}

static uint64_t get_u64(struct cur *c)
{
	uint64_t v;

	if (!need(c, 8, "truncated payload"))
		return 0;
	v = load_le64(c->p + c->off);
	c->off += 8;
	return v;
}

/*
 * get_str - a length-prefixed string. With keep, returns a heap copy
 * (absent -> NULL when optional); without, returns NULL and only checks.
 * *ok is cleared on failure so callers can tell NULL-absent from error.
 */
static char *get_str(struct cur *c, bool optional, bool keep, bool *ok)
{
	uint32_t len = get_u32(c);
	const uint8_t *s;

	if (c->why) {
		*ok = false;
		return NULL;
	}
	if (len == STR_ABSENT) {
		if (!optional) {
			c->why = "absent mandatory string";
			*ok = false;
			return NULL;
		}
		return NULL;
	}
	if (!need(c, len, "string length past end of payload")) {
		*ok = false;
		return NULL;
	}
	s = c->p + c->off;
	if (len && memchr(s, '\0', len)) {
		c->why = "NUL byte in string";
		*ok = false;
		return NULL;
	}
	c->off += len;
	return keep ? xstrndup((const char *)s, len) : NULL;
}

/*
 * get_span - a length-prefixed mandatory string, in place: *s points into
 * the payload (no copy, not NUL-terminated), *len its length.
 */
static void get_span(struct cur *c, const char **s, uint32_t *len)
{
	uint32_t n = get_u32(c);

	*s = NULL;
	*len = 0;
	if (c->why)
		return;
	if (n == STR_ABSENT) {
		c->why = "absent mandatory string";
		return;
	}
	if (!need(c, n, "string length past end of payload"))
		return;
	if (n && memchr(c->p + c->off, '\0', n)) {
		c->why = "NUL byte in string";
		return;
	}
	*s = (const char *)c->p + c->off;
	*len = n;
	c->off += n;
}

/*
 * decode_vctx - the validation context at the end of an envelope: the
 * vctx limits apply (a record a real session could not have written is
 * corrupt), and the count must fit the bytes left.
 */
static int decode_vctx(struct cur *c, bool keep, struct envelope *msg)
{
	uint32_t n = get_u32(c);
	bool ok = true;

	if (c->why)
		return -1;
	if (n == 0 || n > IMP_VCTX_ENTRIES_MAX || n > (c->n - c->off) / VCTX_ENTRY_MIN_SIZE) {
		c->why = "bad validation context count";
		return -1;
	}
	if (keep)
		msg->vctx = vctx_new();
	for (uint32_t i = 0; i < n; i++) {
		/* Read both strings as copies to check them; dropped when !keep. */
		char *k = get_str(c, false, true, &ok);
		char *v = ok ? get_str(c, false, true, &ok) : NULL;
		int rc = ok ? (keep ? vctx_set(msg->vctx, k, v) : (vctx_key_ok(k) ? 0 : -EINVAL)) : -1;

		if (rc == 0 && !keep && strlen(v) > IMP_VCTX_VALUE_MAX)
			rc = -EINVAL;
		free(k);
		free(v);
		if (rc < 0) {
			if (!c->why)
				c->why = "bad validation context entry";
			return -1;
		}
	}
	/* A repeated key (no writer makes one) keeps the last value, checked or not. */
	return 0;
}

/* decode_envelope - the envelope of a MESSAGE; must use all n bytes. */
static int decode_envelope(struct cur *c, bool keep, struct spool_rec *out)
{
	struct envelope *msg = keep ? envelope_new() : NULL;
	struct envelope scratch;
	bool ok = true;
	uint8_t flags;
	uint32_t nrcpt;

	if (!keep) {
		memset(&scratch, 0, sizeof(scratch));
		msg = &scratch;
	}
	msg->id = get_u64(c);
	msg->received = (int64_t)get_u64(c);
	msg->sender = get_str(c, false, keep, &ok);
	msg->envid = get_str(c, true, keep, &ok);
	msg->ret = get_u8(c);
	msg->body_type = get_u8(c);
	flags = get_u8(c);
	msg->smtputf8 = flags & MSG_FLAG_SMTPUTF8;
	msg->client_ip = get_str(c, false, keep, &ok);
	msg->helo = get_str(c, false, keep, &ok);
	msg->protocol = get_str(c, false, keep, &ok);
	msg->binding_group = get_str(c, false, keep, &ok);
	msg->binding = get_str(c, false, keep, &ok);
	nrcpt = get_u32(c);
	if (c->why || !ok)
		goto fail;
	if (msg->id == 0) {
		c->why = "message id 0";
		goto fail;
	}
	if (msg->ret > ENVELOPE_RET_HDRS) {
		c->why = "bad RET value";
		goto fail;
	}
	if (msg->body_type > ENVELOPE_BODY_BINARYMIME) {
		c->why = "bad body type";
		goto fail;
	}
	if (flags & ~MSG_FLAGS_KNOWN) {
		c->why = "unknown message flags";
		goto fail;
	}
	/* The count must fit the bytes left, so it cannot make us allocate wildly. */
	if (nrcpt > (c->n - c->off) / RCPT_MIN_SIZE) {
		c->why = "recipient count past end of payload";
		goto fail;
	}
	if (keep) {
		msg->rcpts = xcalloc(nrcpt ? nrcpt : 1, sizeof(*msg->rcpts));
		msg->nrcpt = nrcpt;
	}
	for (uint32_t i = 0; i < nrcpt; i++) {
		struct envelope_rcpt tmp = { 0 };
		struct envelope_rcpt *r = keep ? &msg->rcpts[i] : &tmp;

		r->addr = get_str(c, false, keep, &ok);
		r->orcpt = get_str(c, true, keep, &ok);
		r->notify = get_u8(c);
		r->state = get_u8(c);
		r->retries = get_u32(c);
		r->next_attempt = (int64_t)get_u64(c);
		if (c->why || !ok)
			goto fail;
		if (r->notify & ~0x0f) {
			c->why = "bad NOTIFY bits";
			goto fail;
		}
		if (r->state > ENVELOPE_RCPT_FAILED) {
			c->why = "bad recipient state";
			goto fail;
		}
	}
	if ((flags & MSG_FLAG_VCTX) && decode_vctx(c, keep, msg) < 0)
		goto fail;
	if (c->off != c->n) {
		c->why = "trailing bytes after envelope";
		goto fail;
	}
	out->id = msg->id;
	out->msg = keep ? msg : NULL;
	return 0;
fail:
	if (!c->why)
		c->why = "malformed envelope";
	if (keep)
		envelope_free(msg);
	return -1;
}

int spool_rec_decode_payload(unsigned type, const uint8_t *p, size_t n, bool with_msg,
			     struct spool_rec *out, const char **why)
{
	struct cur c = { p, n, 0, NULL };

	memset(out, 0, sizeof(*out));
	out->type = (uint8_t)type;
	switch (type) {
	case SPOOL_REC_MESSAGE: {
		uint32_t envlen = get_u32(&c);
		struct cur env;

		if (c.why)
			break;
		if (envlen > n - 4) {
			c.why = "envelope length past end of payload";
			break;
		}
		env = (struct cur){ p + 4, envlen, 0, NULL };
		if (decode_envelope(&env, with_msg, out) < 0) {
			c.why = env.why;
			break;
		}
		out->body_offset = 4 + (uint64_t)envlen;
		out->body_length = n - 4 - (uint64_t)envlen;
		return 0;
	}
	case SPOOL_REC_RCPT_STATE:
		out->id = get_u64(&c);
		out->rcpt_index = get_u32(&c);
		out->state = get_u8(&c);
		if (!c.why && out->state > ENVELOPE_RCPT_FAILED)
			c.why = "bad recipient state";
		break;
	case SPOOL_REC_RCPT_RETRY:
		out->id = get_u64(&c);
		out->rcpt_index = get_u32(&c);
		out->retries = get_u32(&c);
		out->next_attempt = (int64_t)get_u64(&c);
		break;
	case SPOOL_REC_MESSAGE_DONE:
		out->id = get_u64(&c);
		break;
	case SPOOL_REC_BINDING:
		out->id = get_u64(&c);
		get_span(&c, &out->binding, &out->binding_len);
		get_span(&c, &out->binding_group, &out->binding_group_len);
		break;
	case SPOOL_REC_RCPT_FAILURE:
		out->id = get_u64(&c);
		out->rcpt_index = get_u32(&c);
		out->action = get_u8(&c);
		out->stage = get_u8(&c);
		out->code = get_u16(&c);
		out->when = (int64_t)get_u64(&c);
		get_span(&c, &out->response, &out->response_len);
		get_span(&c, &out->remote, &out->remote_len);
		if (c.why)
			break;
		if (out->action != ENVELOPE_FAILURE_FAILED && out->action != ENVELOPE_FAILURE_RELAYED)
			c.why = "bad failure action";
		else if (out->code > 999)
			c.why = "bad reply code";
		else if (out->response_len > ENVELOPE_FAILURE_RESPONSE_MAX)
			c.why = "failure response too long";
		else if (out->remote_len > ENVELOPE_FAILURE_REMOTE_MAX)
			c.why = "remote MTA name too long";
		break;
	default:
		c.why = "unknown record type";
		break;
	}
	if (!c.why && c.off != n)
		c.why = "trailing bytes in record";
	if (!c.why && out->id == 0)
		c.why = "message id 0";
	if (c.why) {
		*why = c.why;
		return -1;
	}
	return 0;
}

long long spool_rec_decode(const void *buf, size_t n, bool with_msg, struct spool_rec *out,
			   uint64_t *need_out, const char **why)
{
	const uint8_t *p = buf;
	uint32_t len, crc;

	*need_out = 0;
	if (n < SPOOL_REC_HDR_SIZE) {
		*why = "truncated record header";
		return SPOOL_REC_SHORT;
	}
	if (p[0] != SPOOL_REC_MAGIC0 || p[1] != SPOOL_REC_MAGIC1 ||
	    p[2] != SPOOL_REC_MAGIC2 || p[3] != SPOOL_REC_MAGIC3) {
		*why = "bad record magic";
		return SPOOL_REC_BAD;
	}
	if (p[4] < SPOOL_REC_MESSAGE || p[4] > SPOOL_REC_TYPE_MAX) {
		*why = "unknown record type";
		return SPOOL_REC_BAD;
	}
	if ((p[5] & ~SPOOL_REC_FLAG_RELOCATED) != 0 || p[6] != 0 || p[7] != 0 ||
	    (p[5] != 0 && p[4] != SPOOL_REC_MESSAGE)) {
		*why = "unknown record flags";
		return SPOOL_REC_BAD;
	}
	len = load_le32(p + 8);
	if (len > SPOOL_REC_MAX_PAYLOAD) {
		*why = "record length too large";
		return SPOOL_REC_BAD;
	}
	if (len > n - SPOOL_REC_HDR_SIZE) {
		*need_out = (uint64_t)SPOOL_REC_HDR_SIZE + len;
		*why = "record extends past end of data";
		return SPOOL_REC_SHORT;
	}
	crc = crc32c(0, p, 12);
	crc = crc32c(crc, p + SPOOL_REC_HDR_SIZE, len);
	if (crc != load_le32(p + 12)) {
		*why = "bad record crc";
		return SPOOL_REC_BAD;
	}
	if (spool_rec_decode_payload(p[4], p + SPOOL_REC_HDR_SIZE, len, with_msg, out, why) < 0)
		return SPOOL_REC_BAD;
	out->flags = p[5];
	if (out->type == SPOOL_REC_MESSAGE)
		out->body_offset += SPOOL_REC_HDR_SIZE;
	return (long long)SPOOL_REC_HDR_SIZE + len;
}

const char *spool_rec_type_name(unsigned type)
{
	switch (type) {
	case SPOOL_REC_MESSAGE:
		return "MESSAGE";
	case SPOOL_REC_RCPT_STATE:
		return "RCPT_STATE";
	case SPOOL_REC_RCPT_RETRY:
		return "RCPT_RETRY";
	case SPOOL_REC_MESSAGE_DONE:
		return "MESSAGE_DONE";
	case SPOOL_REC_BINDING:
		return "BINDING";
	case SPOOL_REC_RCPT_FAILURE:
		return "RCPT_FAILURE";
	}
	return "unknown";
}
