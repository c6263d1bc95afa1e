/*
 * test_dkim.c - tests of modules/opendkim/dkim_sign.c (compiled in by
 * tests/CMakeLists.txt: modules are not in impetus_lib)
 *
 * Golden values from the RFCs: the canonicalisation example of RFC 6376
 * §3.4.5; the body hashes of an empty body (simple: SHA-256 of CRLF;
 * relaxed: of nothing); RFC 8463 Appendix A, whose Ed25519 key, body hash
 * and signature are reproduced exactly (Ed25519 is deterministic). Then
 * the rules one by one: empty lines, WSP, lone LF, the l= limit, header
 * selection bottom-up and oversigning, folding, and every refusal. That
 * the signatures verify is proved by dkimpy and OpenDKIM in
 * tests/integration/test_dkim_sign.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "check.h"
#include "dkim_sign.h"

/* ---- helpers ---- */

static void sink_buf(void *ctx, const char *data, size_t n)
{
	dkim_buf_add(ctx, data, n);
}

/* body - the canonical body as a string (static buffer replaced each call). */
static const char *body(enum dkim_canon c, const char *in)
{
	static struct dkim_buf b;

	dkim_buf_free(&b);
	uint64_t n = dkim_canon_body(c, in, strlen(in), sink_buf, &b);
	CHECK_INTEQ(n, b.len);
	return b.p ? b.p : "";
}

/* header - one field canonicalised. */
static const char *header(enum dkim_canon c, const char *in)
{
	static struct dkim_buf b;

	dkim_buf_free(&b);
	dkim_canon_header(c, in, strlen(in), &b);
	return b.p ? b.p : "";
}

/* pem_key - a key from PEM text. */
static EVP_PKEY *pem_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);

	BIO_free(bio);
	return k;
}

/* tag - the value of tag name in a field, unfolded ("" when absent). */
static const char *tag(const char *field, const char *name)
{
	static char out[4096];
	char pat[16];
	size_t o = 0;

	snprintf(pat, sizeof(pat), " %s=", name);
	/* Unfold first so a tag at the start of a line is found too. */
	char *flat = malloc(strlen(field) + 1);
	size_t f = 0;
	for (const char *s = field; *s; s++)
		if (*s != '\r' && *s != '\n')
			flat[f++] = *s == '\t' ? ' ' : *s;
	flat[f] = '\0';
	const char *at = strstr(flat, pat);
	out[0] = '\0';
	if (at) {
		for (at += strlen(pat); *at && *at != ';' && o + 1 < sizeof(out); at++)
			if (*at != ' ')
				out[o++] = *at;
		out[o] = '\0';
	}
	free(flat);
	return out;
}

/* RFC 8463 A.1: the Ed25519 private key. */
static const char rfc8463_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
	"-----END PRIVATE KEY-----\n";

/* RFC 8463 A.2: the message (its header fields and body). */
static const char rfc8463_msg[] =
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n"
	"\r\n"
	"We lost the game.  Are you hungry yet?\r\n"
	"\r\n"
	"Joe.\r\n"
	"\r\n";

/* ---- RFC golden values ---- */

/* RFC 6376 §3.4.5, both canonicalisations of header and body. */
static void test_rfc6376_example(void)
{
	static const char msg[] =
		"A: X\r\n"
		"B : Y\t\r\n"
		"\tZ  \r\n"
		"\r\n"
		" C \r\n"
		"D \t E\r\n"
		"\r\n"
		"\r\n";
	size_t hdr_len, off = dkim_body_offset(msg, strlen(msg), &hdr_len);
	const char *names[] = { "a", "b" };
	struct dkim_field sel[2];
	struct dkim_buf rh = { 0 }, sh = { 0 };

	CHECK_INTEQ(hdr_len, strlen("A: X\r\nB : Y\t\r\n\tZ  \r\n"));
	CHECK_INTEQ(off, hdr_len + 2);
	CHECK_INTEQ(dkim_select(msg, hdr_len, names, 2, sel), 0);
	for (int i = 0; i < 2; i++) {
		CHECK(sel[i].p != NULL);
		dkim_canon_header(DKIM_CANON_RELAXED, sel[i].p, sel[i].len, &rh);
		dkim_canon_header(DKIM_CANON_SIMPLE, sel[i].p, sel[i].len, &sh);
	}
	CHECK_STREQ(rh.p, "a:X\r\nb:Y Z\r\n");
	CHECK_STREQ(sh.p, "A: X\r\nB : Y\t\r\n\tZ  \r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, msg + off), " C\r\nD E\r\n");
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, msg + off), " C \r\nD \t E\r\n");
	dkim_buf_free(&rh);
	dkim_buf_free(&sh);
}

/* RFC 8463 Appendix A: the same body hash and, Ed25519 being deterministic, the same b=. */
static void test_rfc8463_vector(void)
{
	EVP_PKEY *key = pem_key(rfc8463_pem);
	size_t hdr_len, off;
	struct dkim_buf data = { 0 };
	char err[256];

	CHECK(key != NULL);
	if (key == NULL)
		return;
	off = dkim_body_offset(rfc8463_msg, strlen(rfc8463_msg), &hdr_len);

	/* The h= of the RFC: from, subject and date oversigned. */
	const char *names[] = { "from", "to", "subject", "date", "message-id",
				"from", "subject", "date" };
	struct dkim_field sel[8];
	CHECK_INTEQ(dkim_select(rfc8463_msg, hdr_len, names, 8, sel), 0);
	for (int i = 0; i < 8; i++) {
		CHECK((sel[i].p != NULL) == (i < 5));
		if (sel[i].p)
			dkim_canon_header(DKIM_CANON_RELAXED, sel[i].p, sel[i].len, &data);
	}
	static const char sigfield[] =
		"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
		" d=football.example.com; i=@football.example.com;\r\n"
		" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
		" subject : date : message-id : from : subject : date;\r\n"
		" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
		" b=";
	dkim_canon_header(DKIM_CANON_RELAXED, sigfield, strlen(sigfield), &data);
	data.len -= 2;
	CHECK(!data.oom);

	unsigned char *sig = NULL;
	size_t siglen = 0;
	CHECK_INTEQ(dkim_sign_header_data(DKIM_ALG_ED25519_SHA256, key, data.p, data.len,
					  &sig, &siglen, err, sizeof(err)), 0);
	CHECK_INTEQ(siglen, 64);
	char b64[100];
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	CHECK_STREQ(b64, "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
	free(sig);

	/* dkim_sign on the same message: the RFC's body hash, the key's algorithm. */
	const char *hv[] = { "from", "to", "subject", "date", "message-id" };
	const char *ov[] = { "from", "subject", "date" };
	struct dkim_sign_params p = {
		.alg = DKIM_ALG_ED25519_SHA256, .header_canon = DKIM_CANON_RELAXED,
		.body_canon = DKIM_CANON_RELAXED, .domain = "football.example.com",
		.selector = "brisbane", .headers = hv, .nheaders = 5, .oversign = ov,
		.noversign = 3, .timestamp = 1528637909, .key = key,
	};
	char *field = NULL;
	CHECK_INTEQ(dkim_sign(&p, rfc8463_msg, strlen(rfc8463_msg), &field, err, sizeof(err)), 0);
	CHECK_STREQ(tag(field, "bh"), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	CHECK_STREQ(tag(field, "a"), "ed25519-sha256");
	CHECK_STREQ(tag(field, "c"), "relaxed/relaxed");
	CHECK_STREQ(tag(field, "t"), "1528637909");
	CHECK_STREQ(tag(field, "h"), "from:from:to:subject:subject:date:date:message-id");
	CHECK_STREQ(tag(field, "x"), "");
	CHECK_STREQ(tag(field, "l"), "");
	CHECK_INTEQ(strlen(tag(field, "b")), 88);
	free(field);

	(void)off;
	dkim_buf_free(&data);
	EVP_PKEY_free(key);
}

/* ---- canonicalisation rules ---- */

static void test_body_rules(void)
{
	/* Empty bodies: simple is CRLF, relaxed is nothing (RFC 6376 §3.4.3, §3.4.4). */
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, ""), "\r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, ""), "");
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, "\r\n\r\n\r\n"), "\r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, "\r\n\r\n\r\n"), "");
	/* A line of WSP is empty in relaxed only. */
	CHECK_STREQ(body(DKIM_CANON_RELAXED, " \t \r\n\r\n"), "");
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, " \t \r\n\r\n"), " \t \r\n");
	/* No line end at the end: one is added. */
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, "abc"), "abc\r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, "abc  "), "abc\r\n");
	/* Inner empty lines stay, trailing ones go. */
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, "a\r\n\r\n\r\nb\r\n\r\n"), "a\r\n\r\n\r\nb\r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, "a\r\n \r\n\t\r\nb \r\n \r\n"), "a\r\n\r\n\r\nb\r\n");
	/* WSP runs, leading WSP kept as one SP; 8-bit bytes untouched. */
	CHECK_STREQ(body(DKIM_CANON_RELAXED, "\t\tx \t y\xc3\xa9  z\t\r\n"), " x y\xc3\xa9 z\r\n");
	/* A lone LF is a line end; a lone CR an ordinary byte. */
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, "a\nb\n\n"), "a\r\nb\r\n");
	CHECK_STREQ(body(DKIM_CANON_SIMPLE, "a\rb\r\n"), "a\rb\r\n");
	CHECK_STREQ(body(DKIM_CANON_RELAXED, "a \r \r\n"), "a \r\r\n");
	/* A long line goes through whole. */
	char big[5003];
	memset(big, 'x', 5000);
	memcpy(big + 5000, "\r\n", 3);
	CHECK_INTEQ(strlen(body(DKIM_CANON_RELAXED, big)), 5002);
}

static void test_header_rules(void)
{
	CHECK_STREQ(header(DKIM_CANON_RELAXED, "SUBJect \t:\t  Hello \r\n   World\t \r\n"),
		    "subject:Hello World\r\n");
	CHECK_STREQ(header(DKIM_CANON_SIMPLE, "SUBJect \t:\t  Hello \r\n   World\t \r\n"),
		    "SUBJect \t:\t  Hello \r\n   World\t \r\n");
	/* Without a line end (the DKIM-Signature field itself), one is added. */
	CHECK_STREQ(header(DKIM_CANON_SIMPLE, "X: y"), "X: y\r\n");
	CHECK_STREQ(header(DKIM_CANON_RELAXED, "X:y"), "x:y\r\n");
	CHECK_STREQ(header(DKIM_CANON_RELAXED, "X:"), "x:\r\n");
	CHECK_STREQ(header(DKIM_CANON_SIMPLE, "X: y\n"), "X: y\r\n");
	/* The value's case and 8-bit bytes are kept. */
	CHECK_STREQ(header(DKIM_CANON_RELAXED, "To: \xc3\x85sa <A@B>\r\n"), "to:\xc3\x85sa <A@B>\r\n");
}

/* Bottom-up selection, each field taken once, absent fields for oversigning. */
static void test_select(void)
{
	static const char hdr[] =
		"Received: r1\r\n"
		"To: first\r\n"
		"from: F\r\n"
		"TO: second\r\n"
		" continued\r\n"
		"Subject: s\r\n";
	const char *names[] = { "to", "To", "to", "from", "cc" };
	struct dkim_field sel[5];

	CHECK_INTEQ(dkim_select(hdr, strlen(hdr), names, 5, sel), 0);
	CHECK(sel[0].p && strncmp(sel[0].p, "TO: second\r\n continued\r\n", sel[0].len) == 0);
	CHECK_INTEQ(sel[0].len, strlen("TO: second\r\n continued\r\n"));
	CHECK(sel[1].p && strncmp(sel[1].p, "To: first\r\n", sel[1].len) == 0);
	CHECK(sel[2].p == NULL);
	CHECK(sel[3].p && strncmp(sel[3].p, "from: F\r\n", sel[3].len) == 0);
	CHECK(sel[4].p == NULL);
}

/* ---- dkim_sign ---- */

static EVP_PKEY *ed_key;

static char *sign(struct dkim_sign_params *p, const char *msg, char *err, size_t errlen)
{
	char *field = NULL;

	if (p->key == NULL)
		p->key = ed_key;
	if (dkim_sign(p, msg, strlen(msg), &field, err, errlen) < 0)
		return NULL;
	return field;
}

static const char *hv_default[] = { "From", "To", "Subject" };

/* PARAMS: the defaults, then a case's own fields, which win (as meant). */
#pragma GCC diagnostic ignored "-Woverride-init"
#define PARAMS(...) { .alg = DKIM_ALG_ED25519_SHA256, .domain = "example.com", \
		      .selector = "s1", .headers = hv_default, .nheaders = 3,   \
		      .timestamp = 1700000000, __VA_ARGS__ }

static void test_sign_fields(void)
{
	char err[256] = "";
	const char *msg = "From: a@example.com\r\nTo: b@example.net\r\nTo: c@example.net\r\n\r\nhi\r\n";

	/* Empty body hashes: SHA-256 of CRLF (simple) and of nothing (relaxed). */
	struct dkim_sign_params p = PARAMS(.body_canon = DKIM_CANON_SIMPLE);
	char *f = sign(&p, "From: a@example.com\r\n\r\n", err, sizeof(err));
	CHECK(f != NULL);
	CHECK_STREQ(tag(f, "bh"), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	CHECK_STREQ(tag(f, "c"), "simple/simple");
	free(f);
	p.body_canon = DKIM_CANON_RELAXED;
	f = sign(&p, "From: a@example.com\r\n", err, sizeof(err));
	CHECK(f != NULL);
	CHECK_STREQ(tag(f, "bh"), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	CHECK_STREQ(tag(f, "c"), "simple/relaxed");
	free(f);

	/* h=: every instance, none for an absent name, one more when oversigned. */
	const char *ov[] = { "subject", "FROM" };
	struct dkim_sign_params q = PARAMS(.oversign = ov, .noversign = 2, .lifetime = 3600);
	f = sign(&q, msg, err, sizeof(err));
	CHECK(f != NULL);
	CHECK_STREQ(tag(f, "h"), "from:from:to:to:subject");
	CHECK_STREQ(tag(f, "x"), "1700003600");
	CHECK_STREQ(tag(f, "d"), "example.com");
	CHECK_STREQ(tag(f, "s"), "s1");
	CHECK(strncmp(f, "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; d=example.com;", 70) == 0);

	/* Folded at 78 columns, continuation lines start with a tab, ends with CRLF. */
	size_t col = 0;
	for (const char *s = f; *s; s++) {
		if (*s == '\r') {
			CHECK(s[1] == '\n');
			CHECK(s[2] == '\0' || s[2] == '\t');
			CHECK(col <= DKIM_FOLD_COLUMNS);
			col = 0;
			s++;
			continue;
		}
		col++;
	}
	CHECK(strlen(f) > 2 && strcmp(f + strlen(f) - 2, "\r\n") == 0);
	free(f);

	/* l=: the hashed length, at most the canonical body. */
	struct dkim_sign_params l = PARAMS(.body_length_limit_set = true, .body_length_limit = 3);
	f = sign(&l, "From: a\r\n\r\nhello\r\n", err, sizeof(err));
	CHECK(f != NULL);
	CHECK_STREQ(tag(f, "l"), "3");
	char *g = sign(&l, "From: a\r\n\r\nhelXXXXXXXX\r\n", err, sizeof(err));
	CHECK(g != NULL);
	char bh1[64];
	snprintf(bh1, sizeof(bh1), "%s", tag(f, "bh"));
	CHECK_STREQ(bh1, tag(g, "bh"));
	free(f);
	free(g);
	l.body_length_limit = 1000;
	f = sign(&l, "From: a\r\n\r\nhello\r\n", err, sizeof(err));
	CHECK(f != NULL);
	CHECK_STREQ(tag(f, "l"), "7");
	free(f);

	/* A timestamp of 0 is now. */
	struct dkim_sign_params n = PARAMS(.timestamp = 0);
	f = sign(&n, msg, err, sizeof(err));
	CHECK(f != NULL);
	CHECK(atoll(tag(f, "t")) >= (long long)time(NULL) - 5);
	free(f);

	/* Long h= lists and long names fold too. */
	const char *many[] = { "from", "x-a-rather-long-header-name-one", "x-a-rather-long-header-name-two",
			       "x-a-rather-long-header-name-three", "x-a-rather-long-header-name-four" };
	struct dkim_sign_params m = PARAMS(.headers = many, .nheaders = 5, .oversign = many + 1,
					   .noversign = 4);
	f = sign(&m, msg, err, sizeof(err));
	CHECK(f != NULL);
	for (const char *s = f, *line = f; f && *s; s++)
		if (*s == '\r') {
			CHECK(s - line <= DKIM_FOLD_COLUMNS);
			line = s + 2;
		}
	free(f);
}

static void test_refusals(void)
{
	char err[256];
	const char *msg = "From: a\r\n\r\nx\r\n";
	const char *no_from[] = { "to", "subject" };
	const char *bad_name[] = { "from", "sub;ject" };

	struct dkim_sign_params a = PARAMS(.headers = no_from, .nheaders = 2);
	CHECK(sign(&a, msg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "must include From") != NULL);
	struct dkim_sign_params b = PARAMS(.headers = bad_name, .nheaders = 2);
	CHECK(sign(&b, msg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "sub;ject") != NULL);
	struct dkim_sign_params c = PARAMS(.domain = "exa mple.com");
	CHECK(sign(&c, msg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "domain") != NULL);
	struct dkim_sign_params d = PARAMS(.selector = "-bad");
	CHECK(sign(&d, msg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "selector") != NULL);
	struct dkim_sign_params e = PARAMS(.domain = "a..b");
	CHECK(sign(&e, msg, err, sizeof(err)) == NULL);
	struct dkim_sign_params f = PARAMS(.alg = DKIM_ALG_RSA_SHA256);
	CHECK(sign(&f, msg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "needs an RSA key") != NULL);

	/* Key files: missing, not PEM, too small an RSA key, a wrong type. */
	EVP_PKEY *k = NULL;
	enum dkim_alg alg;
	CHECK_INTEQ(dkim_key_load_pem("/nonexistent/k.pem", &k, &alg, err, sizeof(err)), -1);
	CHECK(strstr(err, "cannot open /nonexistent/k.pem") != NULL);
	char path[] = "/tmp/test_dkim_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, "hello\n", 6) == 6);
	close(fd);
	CHECK_INTEQ(dkim_key_load_pem(path, &k, &alg, err, sizeof(err)), -1);
	CHECK(strstr(err, "not a PEM private key") != NULL);

	struct {
		const char *alg;
		int bits;
		const char *want;	/* in the error; NULL: loads */
	} cases[] = {
		{ "RSA", 512, "RSA key of 512 bits" },
		{ "RSA", 1024, NULL },
		{ "EC", 0, "DKIM signs with RSA or Ed25519" },
		{ "ED25519", 0, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY *gen = cases[i].bits ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)cases[i].bits)
			      : strcmp(cases[i].alg, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
							      : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		CHECK(gen != NULL);
		FILE *fp = fopen(path, "w");
		CHECK(fp != NULL && PEM_write_PrivateKey(fp, gen, NULL, NULL, 0, NULL, NULL) == 1);
		if (fp)
			fclose(fp);
		err[0] = '\0';
		int rc = dkim_key_load_pem(path, &k, &alg, err, sizeof(err));
		if (cases[i].want) {
			CHECK_INTEQ(rc, -1);
			CHECK(k == NULL);
			CHECK(strstr(err, cases[i].want) != NULL);
		} else {
			CHECK_INTEQ(rc, 0);
			CHECK_INTEQ(alg, strcmp(cases[i].alg, "RSA") == 0 ? DKIM_ALG_RSA_SHA256
									  : DKIM_ALG_ED25519_SHA256);
			/* The loaded key signs. */
			struct dkim_sign_params s = PARAMS(.alg = alg, .key = k);
			char *field = sign(&s, msg, err, sizeof(err));
			CHECK(field != NULL);
			CHECK_INTEQ(strlen(tag(field, "b")), alg == DKIM_ALG_RSA_SHA256 ? 172 : 88);
			free(field);
			EVP_PKEY_free(k);
		}
		EVP_PKEY_free(gen);
	}
	unlink(path);
}

int main(void)
{
	ed_key = pem_key(rfc8463_pem);
	CHECK(ed_key != NULL);
	test_rfc6376_example();
	test_rfc8463_vector();
	test_body_rules();
	test_header_rules();
	test_select();
	test_sign_fields();
	test_refusals();
	EVP_PKEY_free(ed_key);
	return check_done();
}
