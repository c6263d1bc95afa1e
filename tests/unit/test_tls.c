/*
 * test_tls.c - src/core/tls.c: the common TLS policy of both sides
 *
 * Makes a throw-away P-256 key and self-signed certificate in a temporary
 * directory, then checks: the server context loads them; both contexts
 * carry the policy (floor, options, mode, session cache, verification);
 * each certificate/key error names the file; and a server and a client
 * context complete a handshake with each other over memory BIOs, on
 * TLS 1.2 or later.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "check.h"
#include "core/tls.h"

static char dir[] = "/tmp/impetus-test-tls-XXXXXX";
static char cert_path[256], key_path[256], other_key_path[256], junk_path[256];

/* write_key - a new P-256 key to path; the key (caller frees). */
static EVP_PKEY *write_key(const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f = fopen(path, "w");

	if (k == NULL || f == NULL || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	fclose(f);
	return k;
}

/* make_files - key, self-signed certificate, a second key, a junk file. */
static void make_files(void)
{
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	snprintf(other_key_path, sizeof(other_key_path), "%s/other.pem", dir);
	snprintf(junk_path, sizeof(junk_path), "%s/junk.pem", dir);

	EVP_PKEY *k = write_key(key_path);
	EVP_PKEY_free(write_key(other_key_path));
	X509 *x = X509_new();
	X509_NAME *n = X509_get_subject_name(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"mx.test.example",
				   -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_set_pubkey(x, k);
	if (X509_sign(x, k, EVP_sha256()) == 0)
		abort();
	FILE *f = fopen(cert_path, "w");
	if (f == NULL || PEM_write_X509(f, x) != 1)
		abort();
	fclose(f);
	f = fopen(junk_path, "w");
	if (f == NULL)
		abort();
	fputs("this is not PEM\n", f);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* remove_files - clean the temporary directory. */
static void remove_files(void)
{
	unlink(cert_path);
	unlink(key_path);
	unlink(other_key_path);
	unlink(junk_path);
	rmdir(dir);
}

/* test_policy - both contexts carry the common settings and their own. */
static void test_policy(void)
{
	struct str err = STR_INIT;
	SSL_CTX *srv = tls_server_ctx_new(cert_path, key_path, &err);
	SSL_CTX *cli = tls_client_ctx_new(&err);

	CHECK_STREQ(str_cstr(&err), "");
	CHECK(srv != NULL && cli != NULL);
	if (srv == NULL || cli == NULL)
		goto out;
	SSL_CTX *both[2] = { srv, cli };
	for (int i = 0; i < 2; i++) {
		CHECK_INTEQ(SSL_CTX_get_min_proto_version(both[i]), TLS1_2_VERSION);
		CHECK_INTEQ(SSL_CTX_get_max_proto_version(both[i]), 0);	/* no ceiling */
		CHECK(SSL_CTX_get_options(both[i]) & SSL_OP_NO_COMPRESSION);
		CHECK(SSL_CTX_get_options(both[i]) & SSL_OP_NO_RENEGOTIATION);
		CHECK(SSL_CTX_get_mode(both[i]) & SSL_MODE_RELEASE_BUFFERS);
	}
	CHECK_INTEQ(SSL_CTX_get_session_cache_mode(srv), SSL_SESS_CACHE_SERVER);
	CHECK_INTEQ(SSL_CTX_get_session_cache_mode(cli), SSL_SESS_CACHE_OFF);
	CHECK_INTEQ(SSL_CTX_get_verify_mode(srv), SSL_VERIFY_NONE);
	CHECK_INTEQ(SSL_CTX_get_verify_mode(cli), SSL_VERIFY_NONE);
	CHECK(SSL_CTX_get0_certificate(srv) != NULL);
out:
	SSL_CTX_free(srv);
	SSL_CTX_free(cli);
	str_free(&err);
}

/* expect_fail - a server context from cert/key fails with text starting msg. */
static void expect_fail(int line, const char *cert, const char *key, const char *msg)
{
	struct str err = STR_INIT;
	SSL_CTX *ctx = tls_server_ctx_new(cert, key, &err);

	if (ctx != NULL || strncmp(str_cstr(&err), msg, strlen(msg)) != 0) {
		fprintf(stderr, "%s:%d: got ctx=%p err \"%s\", expected \"%s...\"\n", __FILE__, line,
			(void *)ctx, str_cstr(&err), msg);
		check_failures++;
	}
	CHECK(strchr(str_cstr(&err), '\n') == NULL);
	SSL_CTX_free(ctx);
	str_free(&err);
}

/* test_errors - every failure names the file the operator has to fix. */
static void test_errors(void)
{
	char msg[700];

	snprintf(msg, sizeof(msg), "cannot load TLS_Certificate %s/missing.pem: ", dir);
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
	expect_fail(__LINE__, missing, key_path, msg);
	snprintf(msg, sizeof(msg), "cannot load TLS_Certificate %s: ", junk_path);
	expect_fail(__LINE__, junk_path, key_path, msg);
	snprintf(msg, sizeof(msg), "cannot load TLS_Key %s: ", missing);
	expect_fail(__LINE__, cert_path, missing, msg);
	snprintf(msg, sizeof(msg), "cannot load TLS_Key %s: ", junk_path);
	expect_fail(__LINE__, cert_path, junk_path, msg);
	/* A key that is fine but not the certificate's: OpenSSL 3 finds the
	 * mismatch while loading the key ("key values mismatch"). */
	snprintf(msg, sizeof(msg), "cannot load TLS_Key %s: ", other_key_path);
	expect_fail(__LINE__, cert_path, other_key_path, msg);
	CHECK(ERR_peek_error() == 0);	/* nothing left for the next caller */
}

/* step - one handshake step; false when it failed (not just waiting). */
static bool step(SSL *s)
{
	int rc = SSL_do_handshake(s);

	return rc == 1 || SSL_get_error(s, rc) == SSL_ERROR_WANT_READ;
}

/* test_handshake - a client and a server context agree on TLS >= 1.2. */
static void test_handshake(void)
{
	struct str err = STR_INIT;
	SSL_CTX *sctx = tls_server_ctx_new(cert_path, key_path, &err);
	SSL_CTX *cctx = tls_client_ctx_new(&err);

	if (sctx == NULL || cctx == NULL) {
		CHECK(!"contexts");
		goto out_ctx;
	}
	SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
	BIO *s_bio, *c_bio;
	CHECK(BIO_new_bio_pair(&s_bio, 0, &c_bio, 0) == 1);
	SSL_set_bio(srv, s_bio, s_bio);
	SSL_set_bio(cli, c_bio, c_bio);
	SSL_set_accept_state(srv);
	SSL_set_connect_state(cli);
	for (int i = 0; i < 20 && !(SSL_is_init_finished(srv) && SSL_is_init_finished(cli)); i++) {
		CHECK(step(cli));
		CHECK(step(srv));
	}
	CHECK(SSL_is_init_finished(srv) && SSL_is_init_finished(cli));
	CHECK(SSL_version(cli) >= TLS1_2_VERSION);
	/* A client limited to TLS 1.1 is refused by the server's floor. */
	SSL *old = SSL_new(cctx), *srv2 = SSL_new(sctx);
	SSL_set_min_proto_version(old, TLS1_VERSION);
	SSL_set_max_proto_version(old, TLS1_1_VERSION);
	CHECK(BIO_new_bio_pair(&s_bio, 0, &c_bio, 0) == 1);
	SSL_set_bio(srv2, s_bio, s_bio);
	SSL_set_bio(old, c_bio, c_bio);
	SSL_set_accept_state(srv2);
	SSL_set_connect_state(old);
	bool failed = false;
	for (int i = 0; i < 20 && !failed; i++)
		failed = !step(old) || !step(srv2);
	CHECK(failed);
	CHECK(!SSL_is_init_finished(srv2));
	ERR_clear_error();
	SSL_free(old);
	SSL_free(srv2);
	SSL_free(srv);
	SSL_free(cli);
out_ctx:
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	str_free(&err);
}

int main(void)
{
	make_files();
	test_policy();
	test_errors();
	test_handshake();
	remove_files();
	return check_done();
}
