/*
 * dkim_sign.c - DKIM canonicalisation and signing (RFC 6376, RFC 8463)
 *
 * The pure part of the opendkim module (dkim_sign.h says what the bytes
 * are and how it fails). No state outside the call: each dkim_sign has
 * its own digest contexts and buffers, so any number of threads may sign
 * at once with the same key.
 *
 * The order of the work, as RFC 6376 §5 has it:
 *   1. split the header section into fields and select those the h= list
 *      names, each name taking the last instance not yet taken;
 *   2. canonicalise the body and hash it (bh=), at most l= octets;
 *   3. write the DKIM-Signature field up to an empty b=, folded;
 *   4. hash the selected fields canonicalised, then that field without
 *      its final CRLF, and sign: RSASSA-PKCS1-v1_5 with SHA-256, or
 *      PureEdDSA (Ed25519) over the SHA-256 of the same data (RFC 8463
 *      §3: the hash is what is signed, not the data);
 *   5. append the signature, base64, folded, after b=.
 */
#include "dkim_sign.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#define IS_WSP(c) ((c) == ' ' || (c) == '\t')

/* ================================================================ */
/* Buffer                                                           */
/* ================================================================ */

/* dkim_buf_add - append n bytes; on failure the buffer keeps oom set. */
void dkim_buf_add(struct dkim_buf *b, const void *data, size_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->oom = true;
				return;
			}
			cap *= 2;
		}
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* dkim_buf_free - release the bytes; the buffer is empty again. */
void dkim_buf_free(struct dkim_buf *b)
{
	free(b->p);
	*b = (struct dkim_buf){ 0 };
}

static void buf_str(struct dkim_buf *b, const char *s)
{
	dkim_buf_add(b, s, strlen(s));
}

/* errf - format the one-line error. */
static void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *dkim_canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

/* ================================================================ */
/* Canonicalisation (RFC 6376 §3.4)                                 */
/* ================================================================ */

/*
 * relaxed_run - a name or a value the relaxed way: line ends dropped
 * (unfolding), WSP at both ends dropped, each inner WSP run one SP;
 * lower case for a name.
 */
static void relaxed_run(const char *s, size_t len, bool lower, struct dkim_buf *out)
{
	bool wsp = false, any = false;
	size_t i = 0;

	while (i < len) {
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
			i += 2;		/* unfold: CRLF */
			continue;
		}
		if (s[i] == '\n') {
			i++;		/* unfold: a lone LF */
			continue;
		}
		if (IS_WSP(s[i])) {
			wsp = true;
			i++;
			continue;
		}
		if (wsp && any)
			dkim_buf_add(out, " ", 1);
		wsp = false;
		any = true;
		/* The bytes up to the next WSP or line end, in one go. */
		size_t k = i;
		while (k < len && !IS_WSP(s[k]) && s[k] != '\n' && s[k] != '\r')
			k++;
		if (k == i)
			k++;	/* a lone CR: an ordinary byte */
		if (lower) {
			for (size_t j = i; j < k; j++) {
				char ch = (char)tolower((unsigned char)s[j]);
				dkim_buf_add(out, &ch, 1);
			}
		} else {
			dkim_buf_add(out, s + i, k - i);
		}
		i = k;
	}
}

/*
 * dkim_canon_header - simple: the field as it is (§3.4.1). Relaxed
 * (§3.4.2): name in lower case; the line ends of folds dropped (unfold);
 * every WSP run one SP; no WSP at the end of the value, nor before or
 * after the colon.
 */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct dkim_buf *out)
{
	if (c == DKIM_CANON_SIMPLE) {
		dkim_buf_add(out, field, len);
		if (len < 2 || field[len - 2] != '\r' || field[len - 1] != '\n') {
			/* A lone LF at the end is the line end: replace it. */
			if (len > 0 && field[len - 1] == '\n' && !out->oom)
				out->len--;
			dkim_buf_add(out, "\r\n", 2);
		}
		return;
	}

	/* A field without a colon (not a field at all) is all value. */
	const char *colon = memchr(field, ':', len);
	size_t name_end = colon ? (size_t)(colon - field) : 0;
	relaxed_run(field, name_end, true, out);
	if (colon)
		dkim_buf_add(out, ":", 1);
	relaxed_run(colon ? field + name_end + 1 : field, colon ? len - name_end - 1 : len, false, out);
	dkim_buf_add(out, "\r\n", 2);
}

/*
 * dkim_canon_body - line by line. Empty lines are held back as a count
 * and written only when a line with content follows, so the trailing
 * ones vanish (§3.4.3, §3.4.4). Relaxed drops WSP at the end of each
 * line and makes each inner WSP run one SP. An empty result is CRLF in
 * simple and stays empty in relaxed (§3.4.3 and erratum 3609 / §3.4.4).
 * A last line without a line end gets one in both.
 */
uint64_t dkim_canon_body(enum dkim_canon c, const char *body, size_t len,
			 dkim_sink_fn *sink, void *ctx)
{
	uint64_t total = 0;
	uint64_t empty = 0;		/* empty lines held back */
	size_t i = 0;

	while (i < len) {
		/* The line [i, e), its end at [e, next). */
		const char *lf = memchr(body + i, '\n', len - i);
		size_t e = lf ? (size_t)(lf - body) : len;
		size_t next = lf ? e + 1 : len;
		if (lf && e > i && body[e - 1] == '\r')
			e--;

		bool started = false;	/* content written for this line */
		if (c == DKIM_CANON_SIMPLE) {
			if (e > i) {
				for (; empty > 0; empty--) {
					sink(ctx, "\r\n", 2);
					total += 2;
				}
				sink(ctx, body + i, e - i);
				total += e - i;
				started = true;
			}
		} else {
			bool wsp = false;
			size_t k = i;
			while (k < e) {
				if (IS_WSP(body[k])) {
					wsp = true;
					k++;
					continue;
				}
				size_t run = k;
				while (run < e && !IS_WSP(body[run]))
					run++;
				if (!started) {
					for (; empty > 0; empty--) {
						sink(ctx, "\r\n", 2);
						total += 2;
					}
					started = true;
				}
				if (wsp) {
					sink(ctx, " ", 1);
					total++;
				}
				wsp = false;
				sink(ctx, body + k, run - k);
				total += run - k;
				k = run;
			}
		}
		if (started) {
			sink(ctx, "\r\n", 2);
			total += 2;
		} else {
			empty++;
		}
		i = next;
	}
	if (total == 0 && c == DKIM_CANON_SIMPLE) {
		sink(ctx, "\r\n", 2);
		total = 2;
	}
	return total;
}

/* ================================================================ */
/* Header fields                                                    */
/* ================================================================ */

/* line_end - the index just past the line starting at i (LF included). */
static size_t line_end(const char *s, size_t len, size_t i)
{
	const char *lf = memchr(s + i, '\n', len - i);

	return lf ? (size_t)(lf - s) + 1 : len;
}

/* dkim_body_offset - the first line that is empty ends the header section. */
size_t dkim_body_offset(const char *msg, size_t len, size_t *hdr_len)
{
	size_t i = 0;

	while (i < len) {
		if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')) {
			*hdr_len = i;
			return msg[i] == '\n' ? i + 1 : i + 2;
		}
		i = line_end(msg, len, i);
	}
	*hdr_len = len;
	return len;
}

/* field_name_len - the length of the field's name: up to the colon, WSP before it dropped. */
static size_t field_name_len(const char *f, size_t len)
{
	const char *colon = memchr(f, ':', len);
	size_t n = colon ? (size_t)(colon - f) : 0;

	while (n > 0 && IS_WSP(f[n - 1]))
		n--;
	return n;
}

/* split_fields - the header section cut into fields (a line and its continuations). */
static int split_fields(const char *hdr, size_t hdr_len, struct dkim_field **out, size_t *n_out)
{
	struct dkim_field *v = NULL;
	size_t n = 0, cap = 0;
	size_t i = 0;

	while (i < hdr_len) {
		size_t start = i;
		i = line_end(hdr, hdr_len, i);
		while (i < hdr_len && IS_WSP(hdr[i]))
			i = line_end(hdr, hdr_len, i);
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			struct dkim_field *nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				return -1;
			}
			v = nv;
		}
		v[n++] = (struct dkim_field){ hdr + start, i - start };
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* name_is - does the field carry this name (case-insensitive)? */
static bool name_is(const struct dkim_field *f, const char *name)
{
	size_t n = field_name_len(f->p, f->len);

	return n == strlen(name) && n > 0 && strncasecmp(f->p, name, n) == 0;
}

/*
 * dkim_select - for each name, walk the fields from the bottom and take
 * the first one of that name not taken before (a field is taken once).
 */
int dkim_select(const char *hdr, size_t hdr_len, const char *const *names, size_t nnames,
		struct dkim_field *out)
{
	struct dkim_field *fields;
	size_t nfields;

	if (split_fields(hdr, hdr_len, &fields, &nfields) < 0)
		return -1;
	bool *taken = calloc(nfields ? nfields : 1, sizeof(*taken));
	if (taken == NULL) {
		free(fields);
		return -1;
	}
	for (size_t k = 0; k < nnames; k++) {
		out[k] = (struct dkim_field){ NULL, 0 };
		for (size_t j = nfields; j-- > 0;) {
			if (!taken[j] && name_is(&fields[j], names[k])) {
				taken[j] = true;
				out[k] = fields[j];
				break;
			}
		}
	}
	free(taken);
	free(fields);
	return 0;
}

/* ================================================================ */
/* Signing                                                          */
/* ================================================================ */

/* valid_dns_name - letters, digits, hyphens and dots, labels of 1..63, no hyphen at the ends. */
static bool valid_dns_name(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > DKIM_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)c) || c == '-' || c == '_') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* valid_field_name - RFC 5322 ftext, and no ';' (it would end the h= tag). */
static bool valid_field_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == ':' || *s == ';')
			return false;
	return true;
}

/* in_list - is name in v[0..n) (case-insensitive)? */
static bool in_list(const char *name, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(name, v[i]) == 0)
			return true;
	return false;
}

/* count_fields - how many fields of this name the header section has. */
static size_t count_fields(const struct dkim_field *f, size_t n, const char *name)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += name_is(&f[i], name);
	return c;
}

/*
 * build_hlist - the h= names: each name of headers as often as it occurs
 * (plus one when it is also in oversign), then each name only in
 * oversign once more than it occurs. Duplicates in a list count once.
 */
static int build_hlist(const struct dkim_sign_params *p, const char *hdr, size_t hdr_len,
		       const char ***out, size_t *n_out)
{
	struct dkim_field *fields;
	size_t nfields, n = 0, cap = 0;
	const char **v = NULL;

	if (split_fields(hdr, hdr_len, &fields, &nfields) < 0)
		return -1;
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? p->headers : p->oversign;
		size_t nlist = pass == 0 ? p->nheaders : p->noversign;
		for (size_t i = 0; i < nlist; i++) {
			const char *name = list[i];
			if (in_list(name, list, i))
				continue;			/* said twice */
			if (pass == 1 && in_list(name, p->headers, p->nheaders))
				continue;			/* done in pass 0 */
			size_t times = count_fields(fields, nfields, name);
			if (in_list(name, p->oversign, p->noversign))
				times++;
			for (size_t t = 0; t < times; t++) {
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					const char **nv = realloc(v, cap * sizeof(*v));
					if (nv == NULL) {
						free(v);
						free(fields);
						return -1;
					}
					v = nv;
				}
				v[n++] = name;
			}
		}
	}
	free(fields);
	*out = v;
	*n_out = n;
	return 0;
}

/* A body sink that hashes at most limit octets. */
struct body_hash {
	EVP_MD_CTX *md;
	uint64_t limit, hashed;
	bool failed;
};

static void body_hash_sink(void *ctx, const char *data, size_t n)
{
	struct body_hash *h = ctx;

	if (h->hashed >= h->limit)
		return;
	if (n > h->limit - h->hashed)
		n = (size_t)(h->limit - h->hashed);
	if (EVP_DigestUpdate(h->md, data, n) != 1)
		h->failed = true;
	h->hashed += n;
}

/* base64 - n bytes as base64 into a new string. */
static char *base64(const unsigned char *data, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s != NULL)
		EVP_EncodeBlock((unsigned char *)s, data, (int)n);
	return s;
}

/* The field being written, with its current column for folding. */
struct fold {
	struct dkim_buf b;
	size_t col;
};

/*
 * fold_add - append a piece that must not be split; fold before it
 * (CRLF TAB) when it would pass the width and the line has more than
 * its first piece. sp: a space goes before it when it stays on the line.
 */
static void fold_add(struct fold *f, const char *piece, size_t n, bool sp)
{
	if (f->col + (sp ? 1 : 0) + n > DKIM_FOLD_COLUMNS && f->col > 1) {
		dkim_buf_add(&f->b, "\r\n\t", 3);
		f->col = 1;
	} else if (sp) {
		dkim_buf_add(&f->b, " ", 1);
		f->col++;
	}
	dkim_buf_add(&f->b, piece, n);
	f->col += n;
}

/* fold_tag - "name=value;" as one piece. */
static void fold_tag(struct fold *f, const char *name, const char *value)
{
	struct dkim_buf t = { 0 };

	buf_str(&t, name);
	dkim_buf_add(&t, "=", 1);
	buf_str(&t, value);
	dkim_buf_add(&t, ";", 1);
	if (t.oom)
		f->b.oom = true;
	else
		fold_add(f, t.p, t.len, true);
	dkim_buf_free(&t);
}

/* dkim_sign_header_data - the signature over the header data, by algorithm (file header, step 4). */
int dkim_sign_header_data(enum dkim_alg alg, EVP_PKEY *key, const char *data, size_t len,
			  unsigned char **sig_out, size_t *siglen_out, char *err, size_t errlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned int hlen = 0;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;

	if (md == NULL) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	*sig_out = NULL;
	*siglen_out = 0;
	if (alg == DKIM_ALG_RSA_SHA256) {
		if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
		    EVP_DigestSignUpdate(md, data, len) != 1 ||
		    EVP_DigestSignFinal(md, NULL, &siglen) != 1)
			goto ssl_fail;
		sig = malloc(siglen);
		if (sig == NULL)
			goto oom;
		if (EVP_DigestSignFinal(md, sig, &siglen) != 1)
			goto ssl_fail;
	} else {
		/* RFC 8463 §3: PureEdDSA over SHA-256(data), so no digest in the init. */
		if (EVP_Digest(data, len, hash, &hlen, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
		    EVP_DigestSign(md, NULL, &siglen, hash, hlen) != 1)
			goto ssl_fail;
		sig = malloc(siglen);
		if (sig == NULL)
			goto oom;
		if (EVP_DigestSign(md, sig, &siglen, hash, hlen) != 1)
			goto ssl_fail;
	}
	*sig_out = sig;
	*siglen_out = siglen;
	sig = NULL;
	rc = 0;
	goto out;
ssl_fail:
	{
		const char *why = ERR_reason_error_string(ERR_peek_last_error());
		errf(err, errlen, "%s signing failed: %s", dkim_alg_name(alg),
		     why ? why : "unknown OpenSSL error");
	}
	ERR_clear_error();
	goto out;
oom:
	errf(err, errlen, "out of memory");
out:
	free(sig);
	EVP_MD_CTX_free(md);
	return rc;
}

/* key_matches - is the key of the type the algorithm needs? */
static bool key_matches(const struct dkim_sign_params *p, char *err, size_t errlen)
{
	int id = EVP_PKEY_get_base_id(p->key);

	if (p->alg == DKIM_ALG_RSA_SHA256 && id != EVP_PKEY_RSA) {
		errf(err, errlen, "rsa-sha256 needs an RSA key");
		return false;
	}
	if (p->alg == DKIM_ALG_ED25519_SHA256 && id != EVP_PKEY_ED25519) {
		errf(err, errlen, "ed25519-sha256 needs an Ed25519 key");
		return false;
	}
	return true;
}

/*
 * valid_identity - i= (RFC 6376 3.5): a local-part of plain visible
 * characters (none that a tag list or dkim-quoted-printable would need
 * escaped), "@", and d= itself or a subdomain of it.
 */
static bool valid_identity(const char *id, const char *domain)
{
	const char *at = strrchr(id, '@');
	size_t dl = strlen(domain), il;

	if (at == NULL)
		return false;
	for (const char *c = id; c < at; c++)
		if (*c <= ' ' || *c >= 127 || *c == ';' || *c == '=' || *c == '|')
			return false;
	at++;
	if (!valid_dns_name(at))
		return false;
	il = strlen(at);
	if (il == dl)
		return strcasecmp(at, domain) == 0;
	return il > dl && at[il - dl - 1] == '.' && strcasecmp(at + il - dl, domain) == 0;
}

/* check_params - refuse what would make a field that is not DKIM. */
static int check_params(const struct dkim_sign_params *p, char *err, size_t errlen)
{
	if (p->key == NULL) {
		errf(err, errlen, "no key");
		return -1;
	}
	if (!key_matches(p, err, errlen))
		return -1;
	if (p->domain == NULL || !valid_dns_name(p->domain)) {
		errf(err, errlen, "domain \"%s\": not a valid domain name", p->domain ? p->domain : "");
		return -1;
	}
	if (p->selector == NULL || !valid_dns_name(p->selector)) {
		errf(err, errlen, "selector \"%s\": not a valid DNS name",
		     p->selector ? p->selector : "");
		return -1;
	}
	if (p->identity && !valid_identity(p->identity, p->domain)) {
		errf(err, errlen, "identity \"%s\": not [local-part]@%s or a subdomain of it",
		     p->identity, p->domain);
		return -1;
	}
	bool from = false;
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? p->headers : p->oversign;
		size_t n = pass == 0 ? p->nheaders : p->noversign;
		for (size_t i = 0; i < n; i++) {
			if (!valid_field_name(list[i])) {
				errf(err, errlen, "header name \"%s\": not a field name", list[i]);
				return -1;
			}
			from |= strcasecmp(list[i], "from") == 0;
		}
	}
	if (!from) {
		errf(err, errlen, "the signed header list must include From (RFC 6376 5.4)");
		return -1;
	}
	return 0;
}

/* dkim_sign - the five steps of the file header. */
int dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len,
	      char **field_out, char *err, size_t errlen)
{
	struct fold f = { { 0 }, 0 };
	struct dkim_buf hdata = { 0 }, lower = { 0 };
	const char **hlist = NULL;
	size_t nh = 0;
	struct dkim_field *sel = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *b64 = NULL;
	EVP_MD_CTX *md = NULL;
	int rc = -1;
	char num[32];

	*field_out = NULL;
	if (check_params(p, err, errlen) < 0)
		return -1;

	/* 1. The header section and the fields h= names. */
	size_t hdr_len;
	size_t body_off = dkim_body_offset(msg, len, &hdr_len);
	if (build_hlist(p, msg, hdr_len, &hlist, &nh) < 0)
		goto oom;
	sel = calloc(nh ? nh : 1, sizeof(*sel));
	if (sel == NULL || dkim_select(msg, hdr_len, hlist, nh, sel) < 0)
		goto oom;

	/* 2. The body hash. */
	struct body_hash bh = { EVP_MD_CTX_new(), UINT64_MAX, 0, false };
	md = bh.md;
	if (md == NULL)
		goto oom;
	if (p->body_length_limit_set)
		bh.limit = p->body_length_limit;
	unsigned char bhash[EVP_MAX_MD_SIZE];
	unsigned int bhlen = 0;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto ssl_fail;
	dkim_canon_body(p->body_canon, msg + body_off, len - body_off, body_hash_sink, &bh);
	if (bh.failed || EVP_DigestFinal_ex(md, bhash, &bhlen) != 1)
		goto ssl_fail;
	b64 = base64(bhash, bhlen);
	if (b64 == NULL)
		goto oom;

	/* 3. The field up to b=. */
	buf_str(&f.b, "DKIM-Signature: v=1;");
	f.col = f.b.len;
	fold_tag(&f, "a", dkim_alg_name(p->alg));
	char canon[32];
	snprintf(canon, sizeof(canon), "%s/%s", dkim_canon_name(p->header_canon),
		 dkim_canon_name(p->body_canon));
	fold_tag(&f, "c", canon);
	fold_tag(&f, "d", p->domain);
	fold_tag(&f, "s", p->selector);
	if (p->identity)
		fold_tag(&f, "i", p->identity);
	time_t t = p->timestamp ? p->timestamp : time(NULL);
	snprintf(num, sizeof(num), "%lld", (long long)t);
	fold_tag(&f, "t", num);
	if (p->lifetime) {
		snprintf(num, sizeof(num), "%lld", (long long)t + p->lifetime);
		fold_tag(&f, "x", num);
	}
	if (p->body_length_limit_set) {
		snprintf(num, sizeof(num), "%" PRIu64, bh.hashed);
		fold_tag(&f, "l", num);
	}
	fold_tag(&f, "bh", b64);
	/* h=: one piece per name, so a fold comes after a colon. */
	for (size_t i = 0; i < nh; i++) {
		dkim_buf_free(&lower);
		if (i == 0)
			buf_str(&lower, "h=");
		for (const char *c = hlist[i]; *c; c++) {
			char ch = (char)tolower((unsigned char)*c);
			dkim_buf_add(&lower, &ch, 1);
		}
		dkim_buf_add(&lower, i + 1 < nh ? ":" : ";", 1);
		if (lower.oom)
			goto oom;
		fold_add(&f, lower.p, lower.len, i == 0);
	}
	/* b= with at least a few characters of its value on the same line. */
	if (f.col + 1 + 2 + 8 > DKIM_FOLD_COLUMNS) {
		dkim_buf_add(&f.b, "\r\n\tb=", 5);
		f.col = 3;
	} else {
		dkim_buf_add(&f.b, " b=", 3);
		f.col += 3;
	}
	if (f.b.oom)
		goto oom;

	/* 4. The header data: selected fields, then this field without its CRLF. */
	for (size_t i = 0; i < nh; i++)
		if (sel[i].p != NULL)
			dkim_canon_header(p->header_canon, sel[i].p, sel[i].len, &hdata);
	size_t before = hdata.len;
	dkim_canon_header(p->header_canon, f.b.p, f.b.len, &hdata);
	if (hdata.oom)
		goto oom;
	if (hdata.len >= before + 2)
		hdata.len -= 2;			/* the CRLF canon added */
	if (dkim_sign_header_data(p->alg, p->key, hdata.p, hdata.len, &sig, &siglen, err, errlen) < 0)
		goto out;

	/* 5. The signature, folded anywhere: FWS inside b= is ignored. */
	free(b64);
	b64 = base64(sig, siglen);
	if (b64 == NULL)
		goto oom;
	size_t blen = strlen(b64), at = 0;
	while (at < blen) {
		if (f.col >= DKIM_FOLD_COLUMNS) {
			dkim_buf_add(&f.b, "\r\n\t", 3);
			f.col = 1;
		}
		size_t n = DKIM_FOLD_COLUMNS - f.col;
		if (n > blen - at)
			n = blen - at;
		dkim_buf_add(&f.b, b64 + at, n);
		f.col += n;
		at += n;
	}
	dkim_buf_add(&f.b, "\r\n", 2);
	if (f.b.oom)
		goto oom;
	*field_out = f.b.p;
	f.b.p = NULL;
	rc = 0;
	goto out;
ssl_fail:
	errf(err, errlen, "body hash failed");
	goto out;
oom:
	errf(err, errlen, "out of memory");
out:
	EVP_MD_CTX_free(md);
	free(b64);
	free(sig);
	free(sel);
	free(hlist);
	dkim_buf_free(&f.b);
	dkim_buf_free(&hdata);
	dkim_buf_free(&lower);
	return rc;
}

/* ================================================================ */
/* Keys                                                             */
/* ================================================================ */

/* dkim_key_load_pem - read, then check the type and the size. */
int dkim_key_load_pem(const char *path, EVP_PKEY **key_out, enum dkim_alg *alg_out,
		      char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");

	*key_out = NULL;
	if (fp == NULL) {
		errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(fp, NULL, NULL, (void *)"");
	fclose(fp);
	if (key == NULL) {
		unsigned long e = ERR_peek_last_error();
		errf(err, errlen, "%s: not a PEM private key (%s)", path,
		     ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "no PEM block");
		ERR_clear_error();
		return -1;
	}
	enum dkim_alg alg;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA: {
		int bits = EVP_PKEY_get_bits(key);
		if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS) {
			errf(err, errlen, "%s: RSA key of %d bits: %d to %d needed", path, bits,
			     DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
			EVP_PKEY_free(key);
			return -1;
		}
		alg = DKIM_ALG_RSA_SHA256;
		break;
	}
	case EVP_PKEY_ED25519:
		alg = DKIM_ALG_ED25519_SHA256;
		break;
	default:
		errf(err, errlen, "%s: a %s key: DKIM signs with RSA or Ed25519", path,
		     OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
		EVP_PKEY_free(key);
		return -1;
	}
	if (alg_out)
		*alg_out = alg;
	*key_out = key;
	return 0;
}
