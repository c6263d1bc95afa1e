/*
 * tls.h - the one place TLS contexts (OpenSSL SSL_CTX) are made
 *
 * Every SSL_CTX in impetus comes from here, so the policy is written
 * once: protocol floor, options, cipher policy, session cache, and the
 * loading of certificate and key with an error that names the file.
 * The policy and the reasons for it are in tls.c's header.
 *
 * A context is immutable once made and OpenSSL lets any thread create
 * SSL objects from it; the caller owns it and frees it with SSL_CTX_free.
 * Failures: NULL, with one line appended to err (no newline) and the
 * OpenSSL error queue cleared.
 */
#ifndef IMPETUS_CORE_TLS_H
#define IMPETUS_CORE_TLS_H

#include <openssl/ssl.h>

#include "core/str.h"

/* The protocol floor of every context (TLS 1.0 and 1.1 are broken, RFC 8996). */
#define TLS_MIN_VERSION TLS1_2_VERSION

/*
 * tls_server_ctx_new - a server context with the certificate chain in
 * cert (PEM, leaf first) and the private key in key (PEM). Errors name
 * the file: "cannot load TLS_Certificate <file>: <reason>", "cannot load
 * TLS_Key <file>: <reason>", "TLS_Key <key> does not match
 * TLS_Certificate <cert>".
 */
SSL_CTX *tls_server_ctx_new(const char *cert, const char *key, struct str *err);

/*
 * tls_client_ctx_new - a client context for opportunistic TLS: the same
 * floor and options, no certificate verification (see tls.c).
 */
SSL_CTX *tls_client_ctx_new(struct str *err);

#endif
