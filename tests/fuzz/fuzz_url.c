/*
 * fuzz_url.c - libFuzzer target for the URL parser and socket address text
 *
 * imp_url_parse and imp_sockaddr_parse (src/api/api_util.c) read strings
 * a module takes from its configuration or from the network (a callback
 * URL in a header, an address in a message). What they return is used
 * to connect, to log and to build headers, so besides memory safety and
 * UB the target checks, for byte 0 even, a URL:
 *   - an accepted URL has a lower-case scheme [a-z][a-z0-9+.-]*; host,
 *     path, query and fragment hold only printable ASCII without space,
 *     host none of "[]@/?#", an IPv6 host (one with ":") is a valid
 *     literal; path is "" or starts with "/"; query has no "#";
 *   - an input with a space, control or non-ASCII byte is refused;
 *   - writing the fields back as a URL (user and password re-encoded)
 *     parses to the same fields, port and all;
 *   - the scheme's case does not matter;
 * and for byte 0 odd, a socket address text: an accepted one formats
 * (imp_sockaddr_format) to a text that parses to the same address, and
 * formats to itself.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <impetus/util.h>

#include "core/str.h"

#include "fuzz.h"

/* clean - only printable ASCII without space (and without the bytes of bad). */
static bool clean(const char *s, const char *bad)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || strchr(bad, *s))
			return false;
	return true;
}

/* encode - percent-encode s for userinfo (":" too when colon). */
static void encode(struct str *o, const char *s, bool colon)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("-._~!$&'()*+,;=", c) || (c == ':' && !colon))
			str_appendc(o, (char)c);
		else
			str_appendf(o, "%%%02X", c);
	}
}

/* same - two optional fields are equal. */
static bool same(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool same_url(const struct imp_url *a, const struct imp_url *b)
{
	return same(a->scheme, b->scheme) && same(a->user, b->user) &&
	       same(a->password, b->password) && same(a->host, b->host) && a->port == b->port &&
	       same(a->path, b->path) && same(a->query, b->query) && same(a->fragment, b->fragment);
}

static void url_case(const char *text)
{
	struct imp_url u;
	int rc = imp_url_parse(text, &u);

	MUST(rc == 0 || rc == -EINVAL);
	if (rc != 0) {
		MUST(u.buf == NULL && u.scheme == NULL);
		return;
	}
	MUST(clean(text, ""));
	MUST(u.scheme && islower((unsigned char)u.scheme[0]));
	for (const char *p = u.scheme; *p; p++)
		MUST(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr("+.-", *p));
	MUST(u.path != NULL && (u.path[0] == '\0' || u.path[0] == '/'));
	MUST(clean(u.path, "?#"));
	MUST(u.query == NULL || clean(u.query, "#"));
	MUST(u.fragment == NULL || clean(u.fragment, ""));
	if (u.host != NULL) {
		MUST(u.host[0] != '\0' && clean(u.host, "[]@/?#"));
		if (strchr(u.host, ':')) {
			struct in6_addr a;
			MUST(inet_pton(AF_INET6, u.host, &a) == 1);
		}
	} else {
		MUST(u.port == 0 && u.user == NULL);
	}
	MUST(u.password == NULL || u.user != NULL);

	/* Written back, it parses to the same fields. */
	struct str o = STR_INIT;
	str_appends(&o, u.scheme);
	str_appends(&o, "://");
	if (u.user) {
		encode(&o, u.user, true);
		if (u.password) {
			str_appendc(&o, ':');
			encode(&o, u.password, false);
		}
		str_appendc(&o, '@');
	}
	if (u.host)
		str_appendf(&o, strchr(u.host, ':') ? "[%s]" : "%s", u.host);
	if (u.port)
		str_appendf(&o, ":%u", u.port);
	str_appends(&o, u.path);
	if (u.query)
		str_appendf(&o, "?%s", u.query);
	if (u.fragment)
		str_appendf(&o, "#%s", u.fragment);
	struct imp_url v;
	MUST(imp_url_parse(str_cstr(&o), &v) == 0);
	MUST(same_url(&u, &v));
	imp_url_free(&v);

	/* The scheme's case does not matter. */
	char *upper = strdup(text);
	for (char *p = upper; *p && *p != ':'; p++)
		*p = (char)toupper((unsigned char)*p);
	MUST(imp_url_parse(upper, &v) == 0);
	MUST(same_url(&u, &v));
	imp_url_free(&v);
	free(upper);
	str_free(&o);
	imp_url_free(&u);
}

static void sockaddr_case(const char *text)
{
	struct sockaddr_storage ss, ss2;
	socklen_t len, len2;
	char buf[IMP_SOCKADDR_TEXT_MAX], buf2[IMP_SOCKADDR_TEXT_MAX];

	int rc = imp_sockaddr_parse(text, &ss, &len);
	MUST(rc == 0 || rc == -EINVAL);
	if (rc != 0)
		return;
	int n = imp_sockaddr_format((struct sockaddr *)&ss, len, buf, sizeof(buf));
	MUST(n > 0 && (size_t)n == strlen(buf));
	MUST(imp_sockaddr_parse(buf, &ss2, &len2) == 0);
	MUST(len == len2 && memcmp(&ss, &ss2, len) == 0);
	MUST(imp_sockaddr_format((struct sockaddr *)&ss2, len2, buf2, sizeof(buf2)) == n);
	MUST(strcmp(buf, buf2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_strndup(data + 1, size - 1);

	if (data[0] & 1)
		sockaddr_case(text);
	else
		url_case(text);
	free(text);
	return 0;
}
