/*
 * smtp_auth.c - pure parsers of the SMTP AUTH exchange (see smtp_auth.h)
 *
 * Strict on purpose: a base64 response with blanks, bad padding or bits
 * left over is a syntax error (501 5.5.2), never "decoded as far as it
 * goes", so two decoders cannot disagree about what a client sent.
 */
#include "smtp/smtp_auth.h"

#include <string.h>
#include <strings.h>

#include "core/base64.h"

bool smtp_auth_b64_decode(const char *in, size_t len, struct str *out)
{
	if (len == 1 && in[0] == '=')
		return true;	/* RFC 4954 4: "=" is an empty response */
	return base64_decode_strict(in, len, out);
}

void smtp_auth_b64_encode(const void *p, size_t n, struct str *out)
{
	base64_encode(p, n, 0, out);
}

enum smtp_auth_parse smtp_auth_check_part(const char *p, size_t len, size_t cap)
{
	if (memchr(p, '\0', len) != NULL)
		return SMTP_AUTH_PARSE_MALFORMED;
	if (len > cap)
		return SMTP_AUTH_PARSE_TOO_LONG;
	return SMTP_AUTH_PARSE_OK;
}

enum smtp_auth_parse smtp_auth_plain_split(const char *buf, size_t len, const char **user,
					   const char **pass)
{
	const char *nul1 = memchr(buf, '\0', len);

	*user = *pass = NULL;
	if (nul1 == NULL)
		return SMTP_AUTH_PARSE_MALFORMED;
	const char *authcid = nul1 + 1;
	const char *end = buf + len;
	const char *nul2 = memchr(authcid, '\0', (size_t)(end - authcid));

	if (nul2 == NULL)
		return SMTP_AUTH_PARSE_MALFORMED;
	const char *pw = nul2 + 1;
	size_t zlen = (size_t)(nul1 - buf);
	size_t ulen = (size_t)(nul2 - authcid);
	size_t plen = (size_t)(end - pw);

	/* RFC 4616 2: authcid and passwd are non-empty and hold no NUL. */
	if (ulen == 0 || plen == 0 || memchr(pw, '\0', plen) != NULL)
		return SMTP_AUTH_PARSE_MALFORMED;
	if (ulen > SMTP_AUTH_USER_MAX || plen > SMTP_AUTH_PASS_MAX || zlen > SMTP_AUTH_USER_MAX)
		return SMTP_AUTH_PARSE_TOO_LONG;
	if (zlen != 0 && (zlen != ulen || memcmp(buf, authcid, ulen) != 0))
		return SMTP_AUTH_PARSE_AUTHZID;
	*user = authcid;
	*pass = pw;
	return SMTP_AUTH_PARSE_OK;
}

unsigned smtp_auth_mech(const char *name, size_t len)
{
	if (len == 5 && strncasecmp(name, "PLAIN", 5) == 0)
		return SMTP_AUTH_MECH_PLAIN;
	if (len == 5 && strncasecmp(name, "LOGIN", 5) == 0)
		return SMTP_AUTH_MECH_LOGIN;
	return 0;
}

void smtp_auth_mask_line(const char *line, size_t len, struct str *out)
{
	size_t i = 0;

	if (len < 4 || strncasecmp(line, "AUTH", 4) != 0 || (len > 4 && line[4] != ' ')) {
		str_append(out, line, len);
		return;
	}
	/* Keep "AUTH <mechanism>", hide whatever follows it. */
	i = 4;
	while (i < len && line[i] == ' ')
		i++;
	while (i < len && line[i] != ' ')
		i++;
	str_append(out, line, i);
	if (i < len)
		str_appends(out, " ****");
}

void smtp_auth_log_user(struct str *out, const char *user)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)user; *p && n < 64; p++, n++) {
		if (*p < 0x21 || *p >= 0x7f || *p == '"' || *p == '\\')
			str_appendf(out, "\\x%02X", *p);
		else
			str_appendc(out, (char)*p);
	}
	if (strlen(user) > 64)
		str_appends(out, "...");
}
