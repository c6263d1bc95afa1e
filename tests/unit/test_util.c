/*
 * test_util.c - src/api/api_util.c: impetus/util.h
 *
 * Table-driven: URLs with every field they must give (or -EINVAL), socket
 * address texts both ways, and character-set conversions with their
 * exact bytes. The URL table covers what a parser gets wrong: IPv6
 * literals and their ports, port ranges, percent escapes (decoded in
 * userinfo only, refused when malformed or NUL), the last "@" rule, and
 * bytes that must never reach a field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <impetus/util.h>

#include "check.h"
#include "core/str.h"

/* ---- URLs --------------------------------------------------------------- */

#define N NULL
static const struct {
	const char *in;
	int rc;
	const char *scheme, *user, *password, *host;
	unsigned port;
	const char *path, *query, *fragment;
} urls[] = {
	{ "http://example.com", 0, "http", N, N, "example.com", 0, "", N, N },
	{ "HTTP://Example.COM/", 0, "http", N, N, "Example.COM", 0, "/", N, N },
	{ "https://example.com:8443/a/b?x=1&y=2#frag", 0,
	  "https", N, N, "example.com", 8443, "/a/b", "x=1&y=2", "frag" },
	{ "smtp+tls://u:p@mx.example.net:587", 0, "smtp+tls", "u", "p", "mx.example.net", 587, "", N, N },
	{ "ldap://[2001:db8::1]:389/dc=example,dc=com?cn", 0,
	  "ldap", N, N, "2001:db8::1", 389, "/dc=example,dc=com", "cn", N },
	{ "http://[::1]/", 0, "http", N, N, "::1", 0, "/", N, N },
	{ "http://[::ffff:192.0.2.1]:80", 0, "http", N, N, "::ffff:192.0.2.1", 80, "", N, N },
	{ "http://192.0.2.1:65535", 0, "http", N, N, "192.0.2.1", 65535, "", N, N },
	{ "http://h:1", 0, "http", N, N, "h", 1, "", N, N },
	{ "http://h:00080", 0, "http", N, N, "h", 80, "", N, N },
	{ "http://h:/", 0, "http", N, N, "h", 0, "/", N, N },	/* empty port = none (RFC 3986 3.2.3) */
	/* Userinfo: percent-decoded; up to the last "@"; a password may be empty. */
	{ "imap://us%40er:p%3Ass%20w@h", 0, "imap", "us@er", "p:ss w", "h", 0, "", N, N },
	{ "imap://u:p@ss@h", 0, "imap", "u", "p@ss", "h", 0, "", N, N },
	{ "imap://u:@h", 0, "imap", "u", "", "h", 0, "", N, N },
	{ "imap://u@h", 0, "imap", "u", N, "h", 0, "", N, N },
	{ "imap://@h", 0, "imap", "", N, "h", 0, "", N, N },
	{ "imap://:pw@h", 0, "imap", "", "pw", "h", 0, "", N, N },
	{ "redis://u:p%C3%A9@h", 0, "redis", "u", "p\xc3\xa9", "h", 0, "", N, N },
	/* The rest stays as written, escapes included. */
	{ "http://h/a%20b?q=%2F#f%23", 0, "http", N, N, "h", 0, "/a%20b", "q=%2F", "f%23" },
	{ "http://h%2Dx/", 0, "http", N, N, "h%2Dx", 0, "/", N, N },
	{ "http://h?", 0, "http", N, N, "h", 0, "", "", N },
	{ "http://h#", 0, "http", N, N, "h", 0, "", N, "" },
	{ "http://h?a?b/c:d@e#x?y/z", 0, "http", N, N, "h", 0, "", "a?b/c:d@e", "x?y/z" },
	{ "http://h/p:a@b!$&'()*+,;=-._~", 0, "http", N, N, "h", 0, "/p:a@b!$&'()*+,;=-._~", N, N },
	{ "file:///etc/hosts", 0, "file", N, N, N, 0, "/etc/hosts", N, N },
	{ "x-y.z+1://h", 0, "x-y.z+1", N, N, "h", 0, "", N, N },
	/* Not URLs of this form. */
	{ "", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "example.com", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "mailto:a@b", -EINVAL, N, N, N, N, 0, N, N, N },		/* no authority */
	{ "http:/h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "://h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "1http://h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "ht tp://h", -EINVAL, N, N, N, N, 0, N, N, N },
	/* Ports. */
	{ "http://h:0", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:65536", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:99999999999999999999", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:-1", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:+80", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:8a", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h:80:80", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h: 80", -EINVAL, N, N, N, N, 0, N, N, N },
	/* IPv6 hosts. */
	{ "http://[::1", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[::1]x", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[::1]:", 0, "http", N, N, "::1", 0, "", N, N },
	{ "http://[::1]:0", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[::1]:70000", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[]/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[192.0.2.1]/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://[v1.fe]/", -EINVAL, N, N, N, N, 0, N, N, N },		/* IPvFuture */
	{ "http://[fe80::1%25eth0]/", -EINVAL, N, N, N, N, 0, N, N, N },	/* zone ids */
	{ "http://[1:2:3:4:5:6:7:8:9]/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://::1/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://a]b/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://a[b/", -EINVAL, N, N, N, N, 0, N, N, N },
	/* Escapes. */
	{ "http://u%zz@h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u%4@h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u%@h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u:p%00@h", -EINVAL, N, N, N, N, 0, N, N, N },		/* a NUL in a decoded field */
	{ "http://h/%", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/%2", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/%2g", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h?%x1", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h#%", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h%/", -EINVAL, N, N, N, N, 0, N, N, N },
	/* Bytes no field may hold; an empty host with userinfo or a port. */
	{ "http://h/a b", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/a\tb", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/a\r\nX: y", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/\x7f", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/\xc3\xa9", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/<x>", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/a\\b", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h/a\"b", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h?a b", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h#a#b", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://h h/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u v@h", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u@/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://:80/", -EINVAL, N, N, N, N, 0, N, N, N },
	{ "http://u@:80/", -EINVAL, N, N, N, N, 0, N, N, N },
};

/* field_eq - a field equals its expectation (both NULL, or the same text). */
static int field_eq(const char *got, const char *want)
{
	if (got == NULL || want == NULL)
		return got == want;
	return strcmp(got, want) == 0;
}

/* test_urls - each row parses to its fields, or is refused with nothing left allocated. */
static void test_urls(void)
{
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct imp_url u;
		int rc = imp_url_parse(urls[i].in, &u);

		if (rc != urls[i].rc) {
			fprintf(stderr, "url \"%s\": rc %d, expected %d\n", urls[i].in, rc, urls[i].rc);
			check_failures++;
			imp_url_free(&u);
			continue;
		}
		if (rc != 0) {
			CHECK(u.buf == NULL && u.scheme == NULL && u.host == NULL && u.path == NULL);
			continue;
		}
		if (!field_eq(u.scheme, urls[i].scheme) || !field_eq(u.user, urls[i].user) ||
		    !field_eq(u.password, urls[i].password) || !field_eq(u.host, urls[i].host) ||
		    u.port != urls[i].port || !field_eq(u.path, urls[i].path) ||
		    !field_eq(u.query, urls[i].query) || !field_eq(u.fragment, urls[i].fragment)) {
			fprintf(stderr,
				"url \"%s\": got scheme=%s user=%s password=%s host=%s port=%u path=%s "
				"query=%s fragment=%s\n",
				urls[i].in, u.scheme ? u.scheme : "NULL", u.user ? u.user : "NULL",
				u.password ? u.password : "NULL", u.host ? u.host : "NULL", u.port,
				u.path ? u.path : "NULL", u.query ? u.query : "NULL",
				u.fragment ? u.fragment : "NULL");
			check_failures++;
		}
		imp_url_free(&u);
		CHECK(u.buf == NULL && u.host == NULL);
		imp_url_free(&u);	/* twice is harmless */
	}
	struct imp_url u;
	CHECK_INTEQ(imp_url_parse(NULL, &u), -EINVAL);
	CHECK_INTEQ(imp_url_parse("http://h", NULL), -EINVAL);
	imp_url_free(NULL);
}

/* ---- socket addresses -------------------------------------------------------- */

static const struct {
	const char *in;
	int family;
	const char *ip;		/* inet_ntop text, or the unix path */
	unsigned port;
	const char *out;	/* what format writes back; NULL: refused */
} addrs[] = {
	{ "192.0.2.1:25", AF_INET, "192.0.2.1", 25, "192.0.2.1:25" },
	{ "192.0.2.1", AF_INET, "192.0.2.1", 0, "192.0.2.1:0" },
	{ "0.0.0.0:65535", AF_INET, "0.0.0.0", 65535, "0.0.0.0:65535" },
	{ "[2001:db8::1]:2525", AF_INET6, "2001:db8::1", 2525, "[2001:db8::1]:2525" },
	{ "[2001:DB8:0::1]:25", AF_INET6, "2001:db8::1", 25, "[2001:db8::1]:25" },
	{ "[::1]", AF_INET6, "::1", 0, "[::1]:0" },
	{ "[::ffff:192.0.2.1]:587", AF_INET6, "::ffff:192.0.2.1", 587, "[::ffff:192.0.2.1]:587" },
	{ "unix:/run/impetus/ctl.sock", AF_UNIX, "/run/impetus/ctl.sock", 0, "unix:/run/impetus/ctl.sock" },
	{ "unix:rel", AF_UNIX, "rel", 0, "unix:rel" },
	{ "", 0, N, 0, N },
	{ "unix:", 0, N, 0, N },
	{ "2001:db8::1", 0, N, 0, N },		/* IPv6 needs brackets */
	{ "[2001:db8::1]25", 0, N, 0, N },
	{ "[2001:db8::1", 0, N, 0, N },
	{ "[192.0.2.1]:25", 0, N, 0, N },
	{ "192.0.2.1:", 0, N, 0, N },
	{ "192.0.2.1:65536", 0, N, 0, N },
	{ "192.0.2.1:-1", 0, N, 0, N },
	{ "192.0.2.1:2 5", 0, N, 0, N },
	{ "192.0.2.256:25", 0, N, 0, N },
	{ "192.0.2:25", 0, N, 0, N },
	{ "mx.example.com:25", 0, N, 0, N },
	{ " 192.0.2.1:25", 0, N, 0, N },
	{ "[fe80::1%eth0]:25", 0, N, 0, N },
};

#undef N

/* test_sockaddrs - parse each text, check the address, format it back. */
static void test_sockaddrs(void)
{
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		int rc = imp_sockaddr_parse(addrs[i].in, &ss, &len);

		if (addrs[i].out == NULL) {
			if (rc != -EINVAL) {
				fprintf(stderr, "sockaddr \"%s\" accepted\n", addrs[i].in);
				check_failures++;
			}
			continue;
		}
		CHECK_INTEQ(rc, 0);
		CHECK_INTEQ(ss.ss_family, addrs[i].family);
		char ip[INET6_ADDRSTRLEN];
		if (addrs[i].family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			CHECK_INTEQ(len, sizeof(*a));
			CHECK_STREQ(inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)), addrs[i].ip);
			CHECK_INTEQ(ntohs(a->sin_port), addrs[i].port);
		} else if (addrs[i].family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			CHECK_INTEQ(len, sizeof(*a));
			CHECK_STREQ(inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)), addrs[i].ip);
			CHECK_INTEQ(ntohs(a->sin6_port), addrs[i].port);
		} else {
			struct sockaddr_un *a = (struct sockaddr_un *)&ss;
			CHECK_STREQ(a->sun_path, addrs[i].ip);
			CHECK_INTEQ(len, offsetof(struct sockaddr_un, sun_path) + strlen(addrs[i].ip) + 1);
		}
		char buf[IMP_SOCKADDR_TEXT_MAX];
		int n = imp_sockaddr_format((struct sockaddr *)&ss, len, buf, sizeof(buf));
		CHECK_INTEQ(n, strlen(addrs[i].out));
		CHECK_STREQ(buf, addrs[i].out);
	}

	/* The longest unix path fits IMP_SOCKADDR_TEXT_MAX; one byte more does not parse. */
	struct sockaddr_un un;
	char text[sizeof(un.sun_path) + 8];
	struct sockaddr_storage ss;
	socklen_t len;
	memcpy(text, "unix:/", 6);
	memset(text + 6, 'p', sizeof(un.sun_path) - 2);
	text[5 + sizeof(un.sun_path) - 1] = '\0';
	CHECK_INTEQ(imp_sockaddr_parse(text, &ss, &len), 0);
	char buf[IMP_SOCKADDR_TEXT_MAX];
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&ss, len, buf, sizeof(buf)), strlen(text));
	CHECK_STREQ(buf, text);
	/* A short buffer: -ENOSPC, terminated. */
	char small[8];
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&ss, len, small, sizeof(small)), -ENOSPC);
	CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	text[5 + sizeof(un.sun_path) - 1] = 'p';
	text[5 + sizeof(un.sun_path)] = '\0';
	CHECK_INTEQ(imp_sockaddr_parse(text, &ss, &len), -EINVAL);

	/* A sun_path without NUL that fills the struct; abstract and unnamed sockets. */
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	memset(un.sun_path, 'q', sizeof(un.sun_path));
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&un, sizeof(un), buf, sizeof(buf)),
		    5 + sizeof(un.sun_path));
	memset(un.sun_path, 0, sizeof(un.sun_path));
	memcpy(un.sun_path + 1, "abstract", 8);
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&un, sizeof(un), buf, sizeof(buf)),
		    -EAFNOSUPPORT);
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&un, sizeof(sa_family_t), buf, sizeof(buf)),
		    -EAFNOSUPPORT);
	/* Other families, short lengths, NULL. */
	struct sockaddr_in sin = { .sin_family = AF_INET };
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&sin, sizeof(sin) - 1, buf, sizeof(buf)),
		    -EAFNOSUPPORT);
	struct sockaddr_storage unspec = { .ss_family = AF_UNSPEC };
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&unspec, sizeof(unspec), buf, sizeof(buf)),
		    -EAFNOSUPPORT);
	CHECK_INTEQ(imp_sockaddr_format(NULL, 0, buf, sizeof(buf)), -EAFNOSUPPORT);
	CHECK_INTEQ(imp_sockaddr_format((struct sockaddr *)&sin, sizeof(sin), buf, 4), -ENOSPC);
	CHECK_INTEQ(imp_sockaddr_parse(NULL, &ss, &len), -EINVAL);
}

/* ---- character sets ------------------------------------------------------------ */

static const struct {
	const char *from, *to;
	const char *in;
	size_t len;
	int rc;
	const char *out;
	size_t outlen;
} convs[] = {
	{ "ISO-8859-1", "UTF-8", "caf\xe9", 4, 0, "caf\xc3\xa9", 5 },
	{ "ISO-8859-1", "UTF-8", "\xff\xa0", 2, 0, "\xc3\xbf\xc2\xa0", 4 },
	{ "latin1", "utf-8", "", 0, 0, "", 0 },
	{ "UTF-8", "ISO-8859-1", "caf\xc3\xa9", 5, 0, "caf\xe9", 4 },
	{ "windows-1252", "UTF-8", "\x80 \x93q\x94", 5, 0, "\xe2\x82\xac \xe2\x80\x9cq\xe2\x80\x9d", 11 },
	{ "UTF-8", "UTF-16BE", "A\xc3\xa9", 3, 0, "\x00" "A" "\x00\xe9", 4 },
	{ "UTF-8", "UTF-8", "a\0b", 3, 0, "a\0b", 3 },		/* NUL bytes pass, length tells */
	/* Invalid input. */
	{ "UTF-8", "UTF-16LE", "a\xff" "b", 3, -EILSEQ, NULL, 0 },
	{ "UTF-8", "ISO-8859-1", "\xc3", 1, -EILSEQ, NULL, 0 },		/* cut short */
	{ "UTF-8", "UTF-16LE", "\xc0\xaf", 2, -EILSEQ, NULL, 0 },		/* overlong "/" */
	{ "UTF-8", "UTF-16LE", "\xed\xa0\x80", 3, -EILSEQ, NULL, 0 },	/* a surrogate */
	{ "UTF-8", "ISO-8859-1", "\xe2\x82\xac", 3, -EILSEQ, NULL, 0 },	/* no euro sign in latin1 */
	{ "US-ASCII", "UTF-8", "\x80", 1, -EILSEQ, NULL, 0 },
	/* Unknown charsets. */
	{ "NO-SUCH-CHARSET", "UTF-8", "x", 1, -EINVAL, NULL, 0 },
	{ "UTF-8", "NO-SUCH-CHARSET", "x", 1, -EINVAL, NULL, 0 },
	{ "", "UTF-8", "x", 1, -EINVAL, NULL, 0 },		/* not the locale's */
	{ "UTF-8", "", "x", 1, -EINVAL, NULL, 0 },
};

/* test_charsets - each row converts to its bytes, or fails with *out NULL. */
static void test_charsets(void)
{
	for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++) {
		char *out = (char *)"unset";
		size_t outlen = 12345;
		int rc = imp_charset_convert(convs[i].from, convs[i].to, convs[i].in, convs[i].len,
					     &out, &outlen);

		if (rc != convs[i].rc)
			fprintf(stderr, "conversion %zu (%s -> %s)\n", i, convs[i].from, convs[i].to);
		CHECK_INTEQ(rc, convs[i].rc);
		if (convs[i].rc != 0) {
			CHECK(out == NULL);
			continue;
		}
		CHECK_INTEQ(outlen, convs[i].outlen);
		CHECK(out != NULL && memcmp(out, convs[i].out, convs[i].outlen) == 0);
		CHECK(out != NULL && out[outlen] == '\0');
		free(out);
	}

	/* Output much larger than the first guess: the buffer grows. */
	size_t n = 100000;
	char *in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)(0xa0 + i % 0x60);
	char *out;
	size_t outlen;
	CHECK_INTEQ(imp_charset_convert("ISO-8859-1", "UTF-32BE", in, n, &out, &outlen), 0);
	CHECK_INTEQ(outlen, 4 * n);
	int ok = out != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = out[4 * i] == 0 && out[4 * i + 1] == 0 && out[4 * i + 2] == 0 &&
		     (unsigned char)out[4 * i + 3] == (unsigned char)in[i];
	CHECK(ok);
	free(out);
	/* And back, without outlen. */
	CHECK_INTEQ(imp_charset_convert("ISO-8859-1", "UTF-8", in, n, &out, NULL), 0);
	char *back;
	CHECK_INTEQ(imp_charset_convert("UTF-8", "ISO-8859-1", out, strlen(out), &back, &outlen), 0);
	CHECK(outlen == n && memcmp(back, in, n) == 0);
	free(back);
	free(out);
	free(in);
	/* A stateful encoding writes its shift back at the end. */
	CHECK_INTEQ(imp_charset_convert("UTF-8", "ISO-2022-JP", "\xe3\x81\x82", 3, &out, &outlen), 0);
	CHECK(outlen == 8 && memcmp(out, "\x1b$B$\"\x1b(B", 8) == 0);
	free(out);
	CHECK_INTEQ(imp_charset_convert(NULL, "UTF-8", "x", 1, &out, NULL), -EINVAL);
	CHECK_INTEQ(imp_charset_convert("UTF-8", "UTF-8", NULL, 1, &out, NULL), -EINVAL);
	CHECK_INTEQ(imp_charset_convert("UTF-8", "UTF-8", "x", 1, NULL, NULL), -EINVAL);
}

/* utf8_trim: a string cut anywhere loses only its incomplete or invalid tail. */
static void test_utf8_trim(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain", "plain" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },		/* é whole */
		{ "caf\xc3", "caf" },				/* é cut after its first byte */
		{ "x\xe2\x82", "x" },				/* € cut */
		{ "x\xf0\x9f\x98\x80y", "x\xf0\x9f\x98\x80y" },	/* an emoji whole */
		{ "x\xf0\x9f\x98", "x" },
		{ "a\xc0\xaf" "b", "a" },				/* overlong '/' */
		{ "a\xed\xa0\x80" "b", "a" },			/* a surrogate */
		{ "a\xf4\x90\x80\x80", "a" },			/* past U+10FFFF */
		{ "a\x80" "b", "a" },				/* a stray continuation byte */
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];

		strcpy(buf, cases[i].in);
		CHECK_STREQ(utf8_trim(buf), cases[i].out);
	}
}

int main(void)
{
	test_utf8_trim();
	test_urls();
	test_sockaddrs();
	test_charsets();
	return check_done();
}
