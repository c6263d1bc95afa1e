/*
 * api_util.c - impetus/util.h: socket addresses, URLs, character sets
 *
 * Pure functions for modules: no state, no lock, any thread. The inet
 * text forms are core/sockaddr.c's (one formatter in the daemon, so a
 * module's "[2001:db8::1]:25" is the log's); this file adds "unix:/path"
 * and the way back.
 *
 * The URL parser follows RFC 3986's generic syntax, authority form only
 * (scheme "://" authority path-abempty ["?" query] ["#" fragment]), and
 * checks every part against its grammar rather than splitting on
 * delimiters and hoping: a URL that later reaches a connect(), a log line
 * or a header must not carry a control byte, a space or a bad escape.
 * Two leniencies, both common practice: userinfo ends at the last "@" of
 * the authority (a password with a raw "@"), and an empty port ("host:")
 * is no port (RFC 3986 3.2.3 allows it).
 *
 * Failures are negative errno values; nothing is allocated on failure.
 * Memory exhaustion aborts (core/mem.h).
 */
#include <impetus/util.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "core/mem.h"
#include "core/sockaddr.h"

/* ---- socket addresses ------------------------------------------------------ */

#define UNIX_PREFIX "unix:"

int imp_sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	if (sa == NULL || buf == NULL)
		return -EAFNOSUPPORT;
	if ((sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) ||
	    (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))) {
		int rc = sockaddr_format(sa, NULL, 0, buf, size);
		return rc < 0 ? rc : (int)strlen(buf);
	}
	if (sa->sa_family != AF_UNIX || len <= (socklen_t)offsetof(struct sockaddr_un, sun_path))
		return -EAFNOSUPPORT;

	/* A pathname socket: sun_path up to its NUL or the end of len. Abstract and unnamed ones have no such text. */
	const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
	size_t max = (size_t)len - offsetof(struct sockaddr_un, sun_path);
	if (max > sizeof(un->sun_path))
		max = sizeof(un->sun_path);
	const char *end = memchr(un->sun_path, '\0', max);
	size_t plen = end ? (size_t)(end - un->sun_path) : max;
	if (plen == 0)
		return -EAFNOSUPPORT;
	size_t need = strlen(UNIX_PREFIX) + plen;
	if (need >= size) {
		if (size > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	memcpy(buf, UNIX_PREFIX, strlen(UNIX_PREFIX));
	memcpy(buf + strlen(UNIX_PREFIX), un->sun_path, plen);
	buf[need] = '\0';
	return (int)need;
}

/* parse_port - decimal 0..65535 of s[0..n), 1..5 digits; false otherwise. */
static bool parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

int imp_sockaddr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	if (text == NULL || ss == NULL || len == NULL)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));

	if (strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		const char *path = text + strlen(UNIX_PREFIX);
		size_t plen = strlen(path);

		if (plen == 0 || plen >= sizeof(un->sun_path))
			return -EINVAL;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, plen + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
		return 0;
	}

	char host[SOCKADDR_IP_TEXT_MAX];
	const char *port_at = NULL;
	size_t hlen;
	bool v6 = text[0] == '[';
	uint16_t port = 0;

	if (v6) {
		const char *close = strchr(text, ']');
		if (close == NULL)
			return -EINVAL;
		hlen = (size_t)(close - text - 1);
		if (close[1] == ':')
			port_at = close + 2;
		else if (close[1] != '\0')
			return -EINVAL;
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, hlen);
	} else {
		const char *colon = strchr(text, ':');
		hlen = colon ? (size_t)(colon - text) : strlen(text);
		if (colon != NULL)
			port_at = colon + 1;
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, hlen);
	}
	host[hlen] = '\0';
	if (port_at != NULL && !parse_port(port_at, strlen(port_at), &port))
		return -EINVAL;

	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		*len = sizeof(*a);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -EINVAL;
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	*len = sizeof(*a);
	return 0;
}

/* ---- URLs ------------------------------------------------------------------- */

/* RFC 3986 2.3 unreserved, 2.2 sub-delims. */
static bool is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * valid_part - whether s[0..n) is made of unreserved, sub-delims, the
 * bytes of extra, and well-formed %XX escapes.
 */
static bool valid_part(const char *s, size_t n, const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n)
				return false;
			if (hexval((unsigned char)s[i + 1]) < 0 || hexval((unsigned char)s[i + 2]) < 0)
				return false;
			i += 2;
			continue;
		}
		if (!is_unreserved(c) && !is_sub_delim(c) && (c == '\0' || strchr(extra, c) == NULL))
			return false;
	}
	return true;
}

/*
 * put_field - copy s[0..n) into the buffer at *w (percent-decoding when
 * decode), NUL-terminate, and return where it starts. A decoded NUL
 * (%00) is refused: the field is a C string. NULL on that.
 */
static char *put_field(char **w, const char *s, size_t n, bool decode)
{
	char *start = *w;
	char *p = start;

	for (size_t i = 0; i < n; i++) {
		if (decode && s[i] == '%') {
			int v = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
			if (v == 0)
				return NULL;
			*p++ = (char)v;
			i += 2;
		} else {
			*p++ = s[i];
		}
	}
	*p++ = '\0';
	*w = p;
	return start;
}

/* parse_host - check the host of an authority (h[0..n), brackets included) and write it. */
static char *parse_host(char **w, const char *h, size_t n)
{
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		char text[SOCKADDR_IP_TEXT_MAX];
		struct in6_addr a;

		/* IPv6 literals only: IPvFuture ("[v1.x]") and zone ids are refused. */
		if (n - 2 == 0 || n - 2 >= sizeof(text))
			return NULL;
		memcpy(text, h + 1, n - 2);
		text[n - 2] = '\0';
		if (inet_pton(AF_INET6, text, &a) != 1)
			return NULL;
		return put_field(w, h + 1, n - 2, false);
	}
	if (n == 0 || !valid_part(h, n, ""))
		return NULL;
	return put_field(w, h, n, false);
}

void imp_url_free(struct imp_url *url)
{
	if (url == NULL)
		return;
	free(url->buf);
	memset(url, 0, sizeof(*url));
}

int imp_url_parse(const char *text, struct imp_url *url)
{
	if (url == NULL)
		return -EINVAL;
	memset(url, 0, sizeof(*url));
	if (text == NULL)
		return -EINVAL;
	size_t len = strlen(text);

	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://" */
	size_t i = 0;
	if (!isalpha((unsigned char)text[0]))
		return -EINVAL;
	while (isalnum((unsigned char)text[i]) || text[i] == '+' || text[i] == '-' || text[i] == '.')
		i++;
	if (strncmp(text + i, "://", 3) != 0)
		return -EINVAL;
	size_t scheme_len = i;
	const char *auth = text + i + 3;
	size_t auth_len = strcspn(auth, "/?#");
	const char *rest = auth + auth_len;

	/* path-abempty, then query and fragment, each checked against its grammar. */
	size_t path_len = strcspn(rest, "?#");
	const char *query = NULL, *fragment = NULL;
	size_t query_len = 0, fragment_len = 0;
	if (!valid_part(rest, path_len, ":@/"))
		return -EINVAL;
	const char *p = rest + path_len;
	if (*p == '?') {
		query = p + 1;
		query_len = strcspn(query, "#");
		if (!valid_part(query, query_len, ":@/?"))
			return -EINVAL;
		p = query + query_len;
	}
	if (*p == '#') {
		fragment = p + 1;
		fragment_len = strlen(fragment);
		if (!valid_part(fragment, fragment_len, ":@/?"))
			return -EINVAL;
	}

	/* The fields, NUL-separated, in one buffer no longer than the text plus the NULs. */
	char *buf = xmalloc(len + 8);
	char *w = buf;
	int rc = -EINVAL;

	url->buf = buf;
	url->scheme = put_field(&w, text, scheme_len, false);
	for (char *s = url->scheme; *s; s++)
		*s = (char)tolower((unsigned char)*s);

	/* userinfo "@" host [":" port]; userinfo up to the last "@". */
	const char *at = NULL;
	for (size_t k = auth_len; k-- > 0;)
		if (auth[k] == '@') {
			at = auth + k;
			break;
		}
	const char *hostport = auth;
	size_t hp_len = auth_len;
	if (at != NULL) {
		size_t ui_len = (size_t)(at - auth);
		const char *colon = memchr(auth, ':', ui_len);
		size_t user_len = colon ? (size_t)(colon - auth) : ui_len;

		if (!valid_part(auth, ui_len, ":@"))
			goto fail;
		if ((url->user = put_field(&w, auth, user_len, true)) == NULL)
			goto fail;
		if (colon != NULL &&
		    (url->password = put_field(&w, colon + 1, ui_len - user_len - 1, true)) == NULL)
			goto fail;
		hostport = at + 1;
		hp_len = auth_len - ui_len - 1;
	}
	if (hp_len == 0) {
		/* "file:///x": an empty authority has no host; userinfo without one is no URL. */
		if (at != NULL)
			goto fail;
	} else {
		size_t host_len = hp_len;
		const char *port_at = NULL;
		if (hostport[0] == '[') {
			const char *close = memchr(hostport, ']', hp_len);
			if (close == NULL)
				goto fail;
			host_len = (size_t)(close - hostport) + 1;
			if (host_len < hp_len) {
				if (hostport[host_len] != ':')
					goto fail;
				port_at = hostport + host_len + 1;
			}
		} else {
			const char *colon = memchr(hostport, ':', hp_len);
			if (colon != NULL) {
				host_len = (size_t)(colon - hostport);
				port_at = colon + 1;
			}
		}
		if (port_at != NULL) {
			size_t port_len = hp_len - (size_t)(port_at - hostport);
			if (port_len > 0 && (!parse_port(port_at, port_len, &url->port) || url->port == 0))
				goto fail;
		}
		if ((url->host = parse_host(&w, hostport, host_len)) == NULL)
			goto fail;
	}
	url->path = put_field(&w, rest, path_len, false);
	if (query != NULL)
		url->query = put_field(&w, query, query_len, false);
	if (fragment != NULL)
		url->fragment = put_field(&w, fragment, fragment_len, false);
	return 0;
fail:
	imp_url_free(url);
	return rc;
}

/* ---- character sets -------------------------------------------------------------- */

int imp_charset_convert(const char *from, const char *to, const char *in, size_t len,
			char **out, size_t *outlen)
{
	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (outlen)
		*outlen = 0;
	/* "" is glibc's "the locale's charset": a missing name must not mean that. */
	if (from == NULL || to == NULL || from[0] == '\0' || to[0] == '\0' ||
	    (in == NULL && len > 0))
		return -EINVAL;
	/* The first guess (and any doubling) must not overflow size_t. */
	if (len > SIZE_MAX / 8)
		return -E2BIG;

	iconv_t cd = iconv_open(to, from);
	if (cd == (iconv_t)-1)
		return -EINVAL;

	/* Grow by doubling until it fits; one byte is kept back for the NUL. */
	size_t cap = len + len / 2 + 16;
	char *buf = xmalloc(cap);
	char *ip = (char *)in;
	size_t ileft = len;
	size_t used = 0;
	int rc = 0;
	bool flushing = false;

	for (;;) {
		char *op = buf + used;
		size_t oleft = cap - used - 1;
		size_t r = flushing ? iconv(cd, NULL, NULL, &op, &oleft)
				    : iconv(cd, &ip, &ileft, &op, &oleft);
		used = (size_t)(op - buf);
		if (r != (size_t)-1) {
			if (flushing)
				break;
			/* Stateful encodings (ISO-2022-JP) write their shift back to the initial state. */
			flushing = true;
			continue;
		}
		if (errno == E2BIG) {
			cap *= 2;
			buf = xrealloc(buf, cap);
			continue;
		}
		/* EILSEQ: an invalid sequence; EINVAL: one cut short by the end of the input. */
		rc = (errno == EILSEQ || errno == EINVAL) ? -EILSEQ : -errno;
		break;
	}
	iconv_close(cd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[used] = '\0';
	*out = buf;
	if (outlen)
		*outlen = used;
	return 0;
}
