/*
 * smtp_client_auth.c - the lines of an outbound SMTP AUTH exchange
 *
 * Pure helpers for the session (smtp_client_session.c): they build the
 * AUTH command and the answers to the server's 334 continuations from
 * the connection's params (RFC 4954; PLAIN is RFC 4616, LOGIN the old
 * draft-murchison-sasl-login that every submission server still speaks).
 * No state beyond the struct smtpc_auth the caller owns; safe anywhere.
 *
 * Secrets: every line built here but the bare "AUTH LOGIN" carries the
 * user or the password in base64, which is no protection. Buffers are
 * reserved before the secret goes in (no realloc leaves a copy behind)
 * and temporaries are wiped; the caller wipes the output once it is
 * sent. Nothing here logs.
 */
#include <stdint.h>
#include <string.h>

#include "core/str.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_len - the length of the base64 of n bytes. */
static size_t b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void smtpc_base64(struct str *out, const void *p, size_t len)
{
	const unsigned char *in = p;
	size_t i = 0;

	str_reserve(out, b64_len(len) + 1);
	str_append(out, "", 0);	/* terminated even when len is 0 (str_reserve does not) */
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63] };
		str_append(out, q, 4);
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		char q[4] = { b64[v >> 18], b64[(v >> 12) & 63],
			      i + 1 < len ? b64[(v >> 6) & 63] : '=', '=' };
		str_append(out, q, 4);
	}
}

void smtpc_wipe(struct str *s)
{
	if (s->s && s->cap)
		explicit_bzero(s->s, s->cap);
	str_clear(s);
}

const char *smtpc_auth_name(uint8_t type)
{
	return type == SMTP_AUTH_LOGIN ? "LOGIN" : "PLAIN";
}

static const char *user_of(const struct smtp_client_params *p)
{
	return p->auth_user ? p->auth_user : "";
}

static const char *pass_of(const struct smtp_client_params *p)
{
	return p->auth_pass ? p->auth_pass : "";
}

/* b64_line - append base64(text) CRLF, the room reserved first. */
static void b64_line(struct str *out, const char *text)
{
	size_t n = strlen(text);

	str_reserve(out, b64_len(n) + 3);
	smtpc_base64(out, text, n);
	str_append(out, "\r\n", 2);
}

/* plain_response - append base64("" NUL user NUL pass): no authorisation identity. */
static void plain_response(struct str *out, const struct smtp_client_params *p)
{
	const char *u = user_of(p), *pw = pass_of(p);
	size_t ul = strlen(u), pl = strlen(pw);
	struct str raw = STR_INIT;

	str_reserve(&raw, ul + pl + 3);
	str_appendc(&raw, '\0');
	str_append(&raw, u, ul);
	str_appendc(&raw, '\0');
	str_append(&raw, pw, pl);
	str_reserve(out, b64_len(raw.len) + 3);
	smtpc_base64(out, raw.s, raw.len);
	smtpc_wipe(&raw);
	str_free(&raw);
}

void smtpc_auth_start(struct smtpc_auth *a, struct str *out, const struct smtp_client_params *p)
{
	a->type = p->auth_type == SMTP_AUTH_LOGIN ? SMTP_AUTH_LOGIN : SMTP_AUTH_PLAIN;
	a->answered = 0;
	a->initial = false;
	if (a->type == SMTP_AUTH_LOGIN) {
		str_appends(out, "AUTH LOGIN\r\n");
		return;
	}
	/* "AUTH PLAIN " + response + CRLF; RFC 4954 4: longer goes after a 334. */
	size_t need = 11 + b64_len(strlen(user_of(p)) + strlen(pass_of(p)) + 2) + 2;
	if (need > SMTPC_AUTH_LINE_MAX) {
		str_appends(out, "AUTH PLAIN\r\n");
		return;
	}
	str_reserve(out, need + 1);
	str_appends(out, "AUTH PLAIN ");
	plain_response(out, p);
	str_append(out, "\r\n", 2);
	a->initial = true;
}

int smtpc_auth_next(struct smtpc_auth *a, struct str *out, const struct smtp_client_params *p)
{
	unsigned k = a->answered++;

	if (a->type == SMTP_AUTH_LOGIN) {
		if (k == 0) {
			b64_line(out, user_of(p));
			return 0;
		}
		if (k == 1) {
			b64_line(out, pass_of(p));
			return 0;
		}
		return -1;
	}
	/* RFC 4954 4: after an initial response the server must not ask again. */
	if (a->initial || k > 0)
		return -1;
	plain_response(out, p);
	str_append(out, "\r\n", 2);
	return 0;
}
