/*
 * dkim_sign.h - DKIM canonicalisation and signing (RFC 6376, RFC 8463),
 * the pure part of the opendkim module
 *
 * No impetus API call in here: plain C over OpenSSL 3's EVP, so the unit
 * tests, the fuzz target and the test signing tool compile it in as is.
 * Everything is re-entrant; an EVP_PKEY may be shared by threads that
 * sign at once (OpenSSL 3 keys are read-only once loaded).
 *
 * Message bytes. The message is the header section, an empty line, the
 * body, in CRLF form as it will be sent. A lone LF is taken as a line end
 * (impetus normalises it to CRLF before the message leaves, so that is
 * what a verifier sees); a lone CR is an ordinary byte. A message without
 * an empty line is all header with an empty body.
 *
 * Failures: dkim_sign and dkim_key_load_pem return -1 with one line in
 * err ("selector: not a valid DNS label ..."); nothing is left allocated.
 */
#ifndef IMPETUS_MODULES_DKIM_SIGN_H
#define IMPETUS_MODULES_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

/* c= : one for the header, one for the body (RFC 6376 §3.4). */
enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

/* a= */
enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_ED25519_SHA256,	/* RFC 8463 */
};

/* The folding width of the DKIM-Signature field (RFC 5322 §2.1.1). */
#define DKIM_FOLD_COLUMNS 78
/* RSA moduli accepted for signing: RFC 8301 §3.2 floor, a sane ceiling. */
#define DKIM_RSA_MIN_BITS 1024
#define DKIM_RSA_MAX_BITS 8192
/* Longest d= and s= (a DNS name). */
#define DKIM_NAME_MAX 253

/* A growing byte buffer, NUL-terminated when not empty; oom sticks. */
struct dkim_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void dkim_buf_add(struct dkim_buf *b, const void *data, size_t n);
void dkim_buf_free(struct dkim_buf *b);

/*
 * What to sign and how. headers: the fields to sign, each instance the
 * message has (a name absent from the message is left out of h=).
 * oversign: fields signed once more than they occur, so a field added
 * later (a second From:, a Subject: where there was none) breaks the
 * signature; a name may be in both lists. From must be in one of them
 * (RFC 6376 §5.4). Names are matched case-insensitively and written to
 * h= in lower case, in the order given, headers first.
 */
struct dkim_sign_params {
	enum dkim_alg alg;
	enum dkim_canon header_canon, body_canon;
	const char *domain;		/* d= */
	const char *selector;		/* s= */
	const char *const *headers;
	size_t nheaders;
	const char *const *oversign;
	size_t noversign;
	time_t timestamp;		/* t=; 0: now */
	uint32_t lifetime;		/* x= t + lifetime; 0: no x= */
	bool body_length_limit_set;	/* l= */
	uint64_t body_length_limit;	/* hash at most this many canonical body octets */
	EVP_PKEY *key;			/* of the type alg names */
	const char *identity;		/* i=; NULL: none. "[local]@domain", domain d= or below it */
};

/*
 * dkim_sign - the DKIM-Signature field for msg: "DKIM-Signature: v=1; ...
 * b=...\r\n", folded at DKIM_FOLD_COLUMNS, to be put in front of the
 * message unchanged. *field_out is malloc'd, NUL-terminated.
 */
int dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len,
	      char **field_out, char *err, size_t errlen);

/*
 * dkim_key_load_pem - a private key from a PEM file (PKCS#8 or the
 * traditional RSA form, not encrypted): RSA of DKIM_RSA_MIN_BITS to
 * DKIM_RSA_MAX_BITS bits, or Ed25519. *alg_out (may be NULL) says which
 * algorithm it signs with. The caller frees it with EVP_PKEY_free.
 */
int dkim_key_load_pem(const char *path, EVP_PKEY **key_out, enum dkim_alg *alg_out,
		      char *err, size_t errlen);

/* dkim_alg_name / dkim_canon_name - the texts of a= and c=. */
const char *dkim_alg_name(enum dkim_alg alg);
const char *dkim_canon_name(enum dkim_canon c);

/* ---- the building blocks, for the tests ---- */

/*
 * dkim_canon_header - one header field (name, colon, value with its
 * folds, with or without the final line end) canonicalised, appended to
 * out; the result always ends with CRLF.
 */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct dkim_buf *out);

/* Where canonical body bytes go: called with consecutive pieces. */
typedef void dkim_sink_fn(void *ctx, const char *data, size_t n);

/*
 * dkim_canon_body - the body canonicalised, in pieces, to sink; returns
 * the length of the whole canonical body.
 */
uint64_t dkim_canon_body(enum dkim_canon c, const char *body, size_t len,
			 dkim_sink_fn *sink, void *ctx);

/*
 * dkim_body_offset - where the body starts (after the empty line), or
 * len when there is none; *hdr_len gets the header section's length
 * (without the empty line).
 */
size_t dkim_body_offset(const char *msg, size_t len, size_t *hdr_len);

/* One header field as it is in the message; p NULL: absent (oversigned). */
struct dkim_field {
	const char *p;
	size_t len;
};

/*
 * dkim_select - the fields named by an h= list, in its order: each name
 * takes the last instance of that field not yet taken, bottom-up (RFC
 * 6376 §5.4.2); none left gives an absent field. out has nnames slots.
 * Returns 0, or -1 out of memory.
 */
int dkim_select(const char *hdr, size_t hdr_len, const char *const *names, size_t nnames,
		struct dkim_field *out);

/*
 * dkim_sign_header_data - the b= signature over the header data (the
 * canonical selected fields and the DKIM-Signature field with an empty
 * b=, without its final CRLF): RSASSA-PKCS1-v1_5 over SHA-256, or
 * Ed25519 (PureEdDSA) over the 32 bytes of SHA-256(data) as RFC 8463 §3
 * says. *sig_out is malloc'd.
 */
int dkim_sign_header_data(enum dkim_alg alg, EVP_PKEY *key, const char *data, size_t len,
			  unsigned char **sig_out, size_t *siglen_out, char *err, size_t errlen);

#endif
