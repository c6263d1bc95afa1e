/*
 * tls.c - the one place TLS contexts are made (see tls.h)
 *
 * Before this file the SMTP server (per listener) and the SMTP client
 * (once per process) each built their own SSL_CTX with the same lines
 * copied; a policy change made in one would have missed the other. The
 * policy, for both sides unless said otherwise:
 *
 *   protocols   TLS 1.2 and later (TLS_MIN_VERSION); no upper bound, so
 *               TLS 1.3 is used whenever the peer has it.
 *   options     no compression (CRIME), no renegotiation (a CPU-burning
 *               lever for clients and a source of old bugs).
 *   mode        SSL_MODE_RELEASE_BUFFERS: an idle connection gives its
 *               read/write buffers back; at tens of thousands of idle
 *               sessions this is most of TLS's memory.
 *   ciphers     OpenSSL's defaults, as tightened by the system's
 *               openssl.cnf (Debian: SECLEVEL=2). No list is set here on
 *               purpose: mail between MTAs is opportunistic, and a list of
 *               our own would age worse than the distribution's. Change
 *               that here, for both sides, if a list is ever wanted.
 *   sessions    server: OpenSSL's built-in server cache
 *               (SSL_SESS_CACHE_SERVER, TLS_SERVER_SESSION_CACHE_SIZE
 *               entries) and its default TLS 1.3 tickets: a client that
 *               comes back resumes cheaply. client: no cache; resuming
 *               needs a cache per destination and has not been worth it.
 *   verify      server: no client certificates asked for. client: peer
 *               certificates are not verified: opportunistic TLS (RFC
 *               7435) protects against passive listeners only; verifying
 *               MX certificates needs DANE or MTA-STS, not implemented yet.
 *
 * Certificate errors name the option and the file, because the operator
 * fixes them in the configuration: the option names are those of every
 * impetus listener that takes a certificate (TLS_Certificate, TLS_Key,
 * as in Momentum).
 *
 * State: none; each call makes a new context for its caller.
 */
#include "core/tls.h"

#include <openssl/err.h>

/* OpenSSL's own default (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT), written down. */
#define TLS_SERVER_SESSION_CACHE_SIZE (1024 * 20)

/* reason - the first queued OpenSSL error as text, or a stand-in. */
static const char *reason(void)
{
	const char *r = ERR_reason_error_string(ERR_get_error());

	return r ? r : "unknown error";
}

/* ctx_base - a context of the given method with the common policy, or NULL. */
static SSL_CTX *ctx_base(const SSL_METHOD *method, struct str *err)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL) {
		str_appendf(err, "cannot create TLS context: %s", reason());
		ERR_clear_error();
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS_MIN_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

SSL_CTX *tls_server_ctx_new(const char *cert, const char *key, struct str *err)
{
	SSL_CTX *ctx = ctx_base(TLS_server_method(), err);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, TLS_SERVER_SESSION_CACHE_SIZE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		str_appendf(err, "cannot load TLS_Certificate %s: %s", cert, reason());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		str_appendf(err, "cannot load TLS_Key %s: %s", key, reason());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		str_appendf(err, "TLS_Key %s does not match TLS_Certificate %s", key, cert);
		goto fail;
	}
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_new(struct str *err)
{
	SSL_CTX *ctx = ctx_base(TLS_client_method(), err);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}
