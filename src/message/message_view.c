/*
 * message_view.c - the envelope, vctx and header functions of
 * impetus/message.h over a struct imp_message (see message_view.h)
 *
 * The header section is found with rfc5322_header_end on the in-memory
 * bytes each time it is needed: a module touches a handful of fields, and
 * keeping no index means an edit can never leave one stale. New fields
 * are written with rfc5322_fold_field, so what a module adds is folded
 * like our own headers. imp_message_read (bytes from the spool) lives
 * with the spool reader, not here.
 */
#include "message/message_view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/id.h"
#include "core/mem.h"
#include "message/rfc5322.h"

void message_view_init(struct imp_message *m, struct envelope *env, bool receiving)
{
	m->env = env;
	m->receiving = receiving;
	str_init(&m->scratch);
}

void message_view_done(struct imp_message *m)
{
	str_free(&m->scratch);
}

struct imp_message *message_view_new(struct envelope *env, bool own)
{
	struct imp_message *m = xcalloc(1, sizeof(*m));

	message_view_init(m, env, false);
	m->owns_env = own;
	return m;
}

void message_view_free(struct imp_message *m)
{
	if (m == NULL)
		return;
	message_view_done(m);
	if (m->owns_env)
		envelope_free(m->env);
	free(m);
}

/* ---- envelope --------------------------------------------------------- */

void imp_message_id_text(const struct imp_message *m, char buf[IMP_ID_TEXT_MAX])
{
	char idbuf[ID_BUF_SIZE];

	_Static_assert(ID_BUF_SIZE <= IMP_ID_TEXT_MAX, "id text fits IMP_ID_TEXT_MAX");
	memcpy(buf, id_format(m->env->id, idbuf), ID_BUF_SIZE);
}

uint64_t imp_message_id(const struct imp_message *m)
{
	return m->env->id;
}

/* nz - a string field, "" for NULL. */
static const char *nz(const char *s)
{
	return s ? s : "";
}

const char *imp_message_sender(const struct imp_message *m)
{
	return nz(m->env->sender);
}

size_t imp_message_rcpt_count(const struct imp_message *m)
{
	return m->env->nrcpt;
}

const char *imp_message_rcpt(const struct imp_message *m, size_t i)
{
	return i < m->env->nrcpt ? m->env->rcpts[i].addr : NULL;
}

const char *imp_message_binding(const struct imp_message *m)
{
	return nz(m->env->binding);
}

const char *imp_message_binding_group(const struct imp_message *m)
{
	return nz(m->env->binding_group);
}

const char *imp_message_protocol(const struct imp_message *m)
{
	return nz(m->env->protocol);
}

const char *imp_message_client_ip(const struct imp_message *m)
{
	return nz(m->env->client_ip);
}

int64_t imp_message_received(const struct imp_message *m)
{
	return m->env->received;
}

uint64_t imp_message_size(const struct imp_message *m)
{
	/* Once the spool has it the bytes are gone from memory; loc says how many. */
	return m->receiving ? envelope_body_len(m->env) : m->env->loc.length;
}

/* ---- message vctx ---------------------------------------------------- */

const char *imp_message_vctx_get(const struct imp_message *m, const char *key)
{
	return vctx_get(m->env->vctx, key);
}

int imp_message_vctx_set(struct imp_message *m, const char *key, const char *value)
{
	if (!m->receiving)
		return -EPERM;
	if (m->env->vctx == NULL) {
		if (value == NULL)
			return vctx_key_ok(key) ? 0 : -EINVAL;
		m->env->vctx = vctx_new();
	}
	return vctx_set(m->env->vctx, key, value);
}

void imp_message_vctx_each(const struct imp_message *m,
			   void (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	const struct vctx *c = m->env->vctx;

	for (size_t i = 0; c && i < c->n; i++)
		fn(arg, c->v[i].key, c->v[i].value);
}

/* ---- headers ---------------------------------------------------------- */

/*
 * header_len - the length of the editable header section, or -E2BIG when
 * the message streamed to a file and the section does not end in the
 * in-memory prefix, -EPERM when the view cannot see the bytes.
 */
static long header_len(const struct imp_message *m)
{
	const struct envelope *env = m->env;

	if (!m->receiving)
		return -EPERM;
	size_t end = rfc5322_header_end(env->body.s, env->body.len);
	bool has_file = env->file.fd >= 0 && env->file.len > 0;

	/* Reaching the end of the prefix proves nothing when more bytes follow in the file. */
	if (has_file && end == env->body.len)
		return -E2BIG;
	return (long)end;
}

/* name_ok - an RFC 5322 field name: printable US-ASCII but ':', at least one. */
static bool name_ok(const char *name)
{
	if (name == NULL || *name == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 33 || *p > 126 || *p == ':')
			return false;
	return strlen(name) <= RFC5322_LINE_HARD - 2;
}

/* value_ok - no CR, LF (a module must not smuggle fields in) and not absurdly long. */
static bool value_ok(const char *value)
{
	return value != NULL && strpbrk(value, "\r\n") == NULL;
}

/*
 * value_prefolded - a value already folded (API 1.2): its only line
 * breaks are CRLF followed by SP or HTAB, no line is empty or blank or
 * longer than RFC5322_LINE_HARD, and it does not end in a break. Such a
 * value is kept byte for byte: a DKIM signature covers its own field as
 * written, so a fold moved afterwards would break it.
 */
static bool value_prefolded(const char *name, const char *value)
{
	size_t line = strlen(name) + 2;
	bool folded = false, word = true;

	for (const char *p = value; *p; p++) {
		if (*p == '\n')
			return false;
		if (*p == '\r') {
			if (p[1] != '\n' || (p[2] != ' ' && p[2] != '\t') || !word)
				return false;
			folded = true;
			word = false;
			line = 0;
			p++;
			continue;
		}
		if (*p != ' ' && *p != '\t')
			word = true;
		if (++line > RFC5322_LINE_HARD)
			return false;
	}
	return folded && word;
}

/* name_is - whether field f is named name (case-insensitive). */
static bool name_is(const struct rfc5322_field *f, const char *name)
{
	return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/*
 * find_field - the index-th field named name in the header section:
 * its start and end offsets (end past its line end). false when absent.
 */
static bool find_field(const struct imp_message *m, size_t hlen, const char *name, size_t index,
		       size_t *start, size_t *end, struct rfc5322_field *out)
{
	const char *b = m->env->body.s;
	size_t pos = 0, seen = 0;
	struct rfc5322_field f;

	for (;;) {
		size_t at = pos;

		if (!rfc5322_field_next(b, hlen, &pos, &f))
			return false;
		if (name_is(&f, name) && seen++ == index) {
			*start = at;
			*end = pos;
			if (out)
				*out = f;
			return true;
		}
	}
}

size_t imp_header_count(const struct imp_message *m, const char *name)
{
	long hlen = header_len(m);
	size_t pos = 0, n = 0;
	struct rfc5322_field f;

	if (hlen < 0 || name == NULL)
		return 0;
	while (rfc5322_field_next(m->env->body.s, (size_t)hlen, &pos, &f))
		n += name_is(&f, name);
	return n;
}

const char *imp_header_get(const struct imp_message *m, const char *name, size_t index)
{
	long hlen = header_len(m);
	size_t a, e;
	struct rfc5322_field f;

	if (hlen < 0 || name == NULL || !find_field(m, (size_t)hlen, name, index, &a, &e, &f))
		return NULL;
	/* The value as stored, without the white space that follows the colon. */
	while (f.value_len > 0 && (*f.value == ' ' || *f.value == '\t')) {
		f.value++;
		f.value_len--;
	}
	/* The view is the caller's; only its scratch buffer changes. */
	struct str *scratch = (struct str *)&m->scratch;

	str_clear(scratch);
	str_append(scratch, f.value, f.value_len);
	return str_cstr(scratch);
}

/* insert_field - write "name: value" folded at offset at of the body. */
static int insert_field(struct imp_message *m, size_t at, const char *name, const char *value)
{
	struct str *b = &m->env->body;
	struct str field = STR_INIT;

	if (strchr(value, '\r')) {
		/* checked by value_prefolded: kept as the module folded it */
		str_appends(&field, name);
		str_appends(&field, ": ");
		str_appends(&field, value);
		str_appends(&field, "\r\n");
	} else {
		rfc5322_fold_field(&field, name, value);
	}
	str_reserve(b, field.len);
	memmove(b->s + at + field.len, b->s + at, b->len - at);
	memcpy(b->s + at, field.s, field.len);
	b->len += field.len;
	b->s[b->len] = '\0';
	str_free(&field);
	return 0;
}

int imp_header_add(struct imp_message *m, const char *name, const char *value)
{
	long hlen = header_len(m);

	if (hlen < 0)
		return (int)hlen;
	if (!name_ok(name) || !(value_ok(value) || value_prefolded(name, value)))
		return -EINVAL;
	return insert_field(m, (size_t)hlen, name, value);
}

int imp_header_prepend(struct imp_message *m, const char *name, const char *value)
{
	long hlen = header_len(m);

	if (hlen < 0)
		return (int)hlen;
	if (!name_ok(name) || !(value_ok(value) || value_prefolded(name, value)))
		return -EINVAL;
	return insert_field(m, 0, name, value);
}

int imp_header_delete(struct imp_message *m, const char *name, size_t index)
{
	long hlen = header_len(m);
	size_t a, e;

	if (hlen < 0)
		return (int)hlen;
	if (name == NULL || !find_field(m, (size_t)hlen, name, index, &a, &e, NULL))
		return -ENOENT;
	struct str *b = &m->env->body;

	memmove(b->s + a, b->s + e, b->len - e);
	b->len -= e - a;
	b->s[b->len] = '\0';
	return 0;
}

char *imp_message_header_block(const struct imp_message *m, size_t *len)
{
	long hlen = header_len(m);

	if (hlen < 0)
		return NULL;
	char *copy = xmalloc((size_t)hlen + 1);

	memcpy(copy, m->env->body.s, (size_t)hlen);
	copy[hlen] = '\0';
	if (len)
		*len = (size_t)hlen;
	return copy;
}

const char *imp_message_bytes(const struct imp_message *m, size_t *len)
{
	const struct envelope *env = m->env;

	if (!m->receiving || (env->file.fd >= 0 && env->file.len > 0))
		return NULL;
	if (len)
		*len = env->body.len;
	return env->body.s ? env->body.s : "";
}

char *imp_message_copy(const struct imp_message *m, size_t *len)
{
	const struct envelope *env = m->env;
	uint64_t flen = env->file.fd >= 0 ? env->file.len : 0;
	size_t mem = env->body.len, got = 0;

	if (!m->receiving) {
		errno = EPERM;
		return NULL;
	}
	if (flen > SIZE_MAX - mem - 1) {
		errno = EFBIG;
		return NULL;
	}
	char *p = malloc(mem + (size_t)flen + 1);

	if (p == NULL)
		return NULL;
	if (mem)
		memcpy(p, env->body.s, mem);
	/* The file part is complete and nobody writes it once reception ends. */
	while (got < flen) {
		ssize_t r = pread(env->file.fd, p + mem + got, (size_t)flen - got,
				  (off_t)(env->file.off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;

			free(p);
			errno = e;
			return NULL;
		}
		got += (size_t)r;
	}
	p[mem + got] = '\0';
	if (len)
		*len = mem + got;
	return p;
}
