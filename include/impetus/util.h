/*
 * impetus/util.h - addresses, URLs, character sets
 *
 * Pure functions: any thread, no state, no blocking.
 */
#ifndef IMPETUS_UTIL_H
#define IMPETUS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Socket addresses as text: "192.0.2.1:25", "[2001:db8::1]:25",
 * "unix:/path". IMP_SOCKADDR_TEXT_MAX bytes hold any of them with NUL.
 * imp_sockaddr_format returns the length written, or -EAFNOSUPPORT (a
 * family other than AF_INET, AF_INET6 and AF_UNIX, a len too short for
 * the family, an abstract or unnamed unix socket) / -ENOSPC (buf too
 * small; "" or the text cut, always NUL-terminated). imp_sockaddr_parse
 * accepts what format writes (and an IPv4 or bracketed IPv6 address
 * without a port, giving port 0; IPv6 without brackets is refused, its
 * last group could be a port); 0 or -EINVAL. Names are not resolved.
 */
#define IMP_SOCKADDR_TEXT_MAX 128
int imp_sockaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
int imp_sockaddr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);

/*
 * A parsed URL (RFC 3986 generic syntax, authority form):
 * scheme://user:password@host:port/path?query#fragment. Fields point
 * into url->buf (owned by the struct; release with imp_url_free) and are
 * NULL when absent; user and password are percent-decoded, the rest as
 * written; port is 0 when absent. host is without brackets for IPv6.
 *
 * Every part is checked against its RFC 3986 grammar: no space, control
 * or non-ASCII byte reaches a field, every "%" starts a %XX escape, an
 * IPv6 host is a valid literal (no IPvFuture, no zone id), a port is
 * 1..65535 ("host:" with an empty port is no port). userinfo ends at the
 * last "@" of the authority, so a password may hold a raw "@"; a decoded
 * %00 is refused. An empty authority ("file:///etc/x") gives host NULL.
 */
struct imp_url {
	char *scheme;		/* lower-cased */
	char *user;
	char *password;
	char *host;
	uint16_t port;
	char *path;		/* "/x/y", "" when none */
	char *query;
	char *fragment;
	char *buf;
};
/*
 * imp_url_parse - 0, or -EINVAL for a string that is not such a URL (no
 * scheme or "//", bad port, bad escape, a byte a part may not hold);
 * on failure *url is all NULL and needs no imp_url_free.
 */
int imp_url_parse(const char *text, struct imp_url *url);
/* imp_url_free - release url->buf and clear the fields (NULL or twice: harmless). */
void imp_url_free(struct imp_url *url);

/*
 * imp_charset_convert - convert len bytes of in from charset from to
 * charset to (iconv names: "ISO-8859-1", "UTF-8", "windows-1252"), into
 * a malloc()ed, NUL-terminated *out of *outlen bytes (outlen may be NULL;
 * the output may hold NUL bytes, as UTF-16 does). Returns 0, -EINVAL for
 * an unknown or empty charset name, -EILSEQ for input not valid in from
 * (an invalid or truncated sequence) or a character to cannot represent
 * (unless to ends in "//TRANSLIT" or "//IGNORE", as iconv allows), -E2BIG
 * for an input over SIZE_MAX / 8 bytes; *out NULL on failure.
 */
int imp_charset_convert(const char *from, const char *to, const char *in, size_t len,
			char **out, size_t *outlen);

#ifdef __cplusplus
}
#endif

#endif
