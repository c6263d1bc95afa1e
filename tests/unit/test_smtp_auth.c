/*
 * test_smtp_auth.c - SMTP AUTH's pure parts: src/smtp/smtp_auth.c (base64,
 * PLAIN, trace masking), src/core/passwd.c (the password file) and
 * src/smtp/smtp_tarpit.c (failed attempts per address)
 *
 * Base64 against RFC 4648 10's vectors, both ways, and the malformed forms
 * a strict decoder must refuse; PLAIN splits from RFC 4616 4's examples
 * and every malformed shape; the password file with yescrypt and SHA-512
 * hashes made here by libcrypt itself, and each kind of bad line with its
 * line number; the tarpit's doubling, cap, limit, window and IPv6 /64.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config/config.h"
#include "core/passwd.h"
#include "smtp/smtp_auth.h"
#include "smtp/smtp_tarpit.h"

/* b64 - decode text; the result (or "FAIL") as a C string with NULs shown as '|'. */
static const char *b64(const char *text, char *buf, size_t len)
{
	struct str out = STR_INIT;

	str_appends(&out, "x");	/* decoding appends: the prefix must survive a failure */
	if (!smtp_auth_b64_decode(text, strlen(text), &out)) {
		CHECK_STREQ(str_cstr(&out), "x");
		snprintf(buf, len, "FAIL");
	} else {
		for (size_t i = 0; i < out.len; i++)
			if (out.s[i] == '\0')
				out.s[i] = '|';
		snprintf(buf, len, "%s", out.s + 1);
	}
	str_free(&out);
	return buf;
}

static void test_base64(void)
{
	static const struct { const char *in, *want; } v[] = {
		/* RFC 4648 10 */
		{ "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" }, { "Zm9vYg==", "foob" },
		{ "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		/* RFC 4954 4: "=" is the empty response */
		{ "=", "" },
		/* RFC 4616 4: "\0tim\0tanstaaftanstaaf" */
		{ "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "|tim|tanstaaftanstaaf" },
		/* malformed */
		{ "", "FAIL" }, { "Zg", "FAIL" }, { "Zg=", "FAIL" }, { "Z===", "FAIL" },
		{ "Zg=a", "FAIL" }, { "Zm9v Yg==", "FAIL" }, { "Zm9vYg==Zg==", "FAIL" },
		{ "Zh==", "FAIL" },	/* non-zero bits left over: not canonical */
		{ "Zm9=", "FAIL" }, { "Zm9v\r\n", "FAIL" }, { "Zm-v", "FAIL" }, { "====", "FAIL" },
		{ "*", "FAIL" },
	};
	char buf[128];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		CHECK_STREQ(b64(v[i].in, buf, sizeof(buf)), v[i].want);

	/* Encode then decode every length 0..64 of every byte pattern we care about. */
	for (size_t n = 0; n <= 64; n++) {
		unsigned char raw[64];
		struct str enc = STR_INIT, dec = STR_INIT;

		for (size_t k = 0; k < n; k++)
			raw[k] = (unsigned char)(k * 37 + n);
		smtp_auth_b64_encode(raw, n, &enc);
		CHECK(enc.len % 4 == 0);
		if (n > 0) {
			CHECK(smtp_auth_b64_decode(enc.s, enc.len, &dec));
			CHECK(dec.len == n && memcmp(dec.s, raw, n) == 0);
		}
		str_free(&enc);
		str_free(&dec);
	}
}

static void test_plain(void)
{
	const char *u, *p;

	CHECK_INTEQ(smtp_auth_plain_split("\0tim\0tanstaaf", 13, &u, &p), SMTP_AUTH_PARSE_OK);
	CHECK_STREQ(u, "tim");
	CHECK_STREQ(p, "tanstaaf");
	CHECK_INTEQ(smtp_auth_plain_split("tim\0tim\0pw", 10, &u, &p), SMTP_AUTH_PARSE_OK);
	CHECK_STREQ(u, "tim");
	CHECK_INTEQ(smtp_auth_plain_split("Ursel\0Kurt\0xipj3plmq", 20, &u, &p),
		    SMTP_AUTH_PARSE_AUTHZID);
	CHECK(u == NULL && p == NULL);
	CHECK_INTEQ(smtp_auth_plain_split("tim", 3, &u, &p), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_plain_split("\0tim", 4, &u, &p), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_plain_split("\0tim\0", 5, &u, &p), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_plain_split("\0\0pw", 4, &u, &p), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_plain_split("\0tim\0p\0w", 8, &u, &p), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_plain_split("", 0, &u, &p), SMTP_AUTH_PARSE_MALFORMED);

	char big[2 + SMTP_AUTH_USER_MAX + 1 + 3];
	memset(big, 'u', sizeof(big));
	big[0] = '\0';
	big[1 + SMTP_AUTH_USER_MAX + 1] = '\0';
	CHECK_INTEQ(smtp_auth_plain_split(big, sizeof(big), &u, &p), SMTP_AUTH_PARSE_TOO_LONG);

	CHECK_INTEQ(smtp_auth_check_part("abc", 3, 10), SMTP_AUTH_PARSE_OK);
	CHECK_INTEQ(smtp_auth_check_part("a\0c", 3, 10), SMTP_AUTH_PARSE_MALFORMED);
	CHECK_INTEQ(smtp_auth_check_part("abc", 3, 2), SMTP_AUTH_PARSE_TOO_LONG);

	CHECK(smtp_auth_mech("plain", 5) == SMTP_AUTH_MECH_PLAIN);
	CHECK(smtp_auth_mech("LOGIN", 5) == SMTP_AUTH_MECH_LOGIN);
	CHECK(smtp_auth_mech("CRAM-MD5", 8) == 0);
	CHECK(smtp_auth_mech("PLAINX", 6) == 0);
}

/* mask - smtp_auth_mask_line as a C string. */
static void check_mask(const char *line, const char *want)
{
	struct str out = STR_INIT;

	smtp_auth_mask_line(line, strlen(line), &out);
	CHECK_STREQ(str_cstr(&out), want);
	str_free(&out);
}

static void test_mask(void)
{
	check_mask("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN ****");
	check_mask("auth login YWxpY2U=", "auth login ****");
	check_mask("AUTH LOGIN", "AUTH LOGIN");
	check_mask("AUTH", "AUTH");
	check_mask("MAIL FROM:<a@b>", "MAIL FROM:<a@b>");
	check_mask("AUTHX secret", "AUTHX secret");

	struct str u = STR_INIT;
	smtp_auth_log_user(&u, "al\"ice@ex\\ample \x01\xc3\xa9");
	CHECK_STREQ(str_cstr(&u), "al\\x22ice@ex\\x5Cample\\x20\\x01\\xC3\\xA9");
	str_clear(&u);
	smtp_auth_log_user(&u, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK_STREQ(str_cstr(&u), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
	str_free(&u);
}

static char tmpdir[64];

/* write_file - a file in tmpdir with text; its path in path. */
static void write_file(const char *name, const char *text, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* hash - crypt(3) of pw with a fresh salt of method prefix. */
static char *hash(const char *prefix, const char *pw)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;

	memset(&cd, 0, sizeof(cd));
	CHECK(crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof(salt)) != NULL);
	return strdup(crypt_r(pw, salt, &cd));
}

/* load_error - the error of loading text (NULL when it loads). */
static char *load_error(const char *text)
{
	char path[128];
	struct str err = STR_INIT;

	write_file("bad", text, path, sizeof(path));
	struct passwd_db *db = passwd_db_load(path, &err);
	if (db) {
		passwd_db_free(db);
		str_free(&err);
		return NULL;
	}
	char *e = strdup(str_cstr(&err));
	str_free(&err);
	return e;
}

static void check_error(const char *text, const char *want)
{
	char *e = load_error(text);

	CHECK(e != NULL);
	if (e && strstr(e, want) == NULL) {
		fprintf(stderr, "want \"%s\" in \"%s\"\n", want, e);
		CHECK(0);
	}
	free(e);
}

static void test_passwd(void)
{
	char *y = hash("$y$", "secret"), *six = hash("$6$", "p@ss w0rd");
	char text[1024], path[128];
	struct str err = STR_INIT;

	snprintf(text, sizeof(text), "# accounts\n\n  # indented comment\nalice:%s\r\nbob:%s  \n", y,
		 six);
	write_file("good", text, path, sizeof(path));
	struct passwd_db *db = passwd_db_load(path, &err);
	CHECK(db != NULL);
	if (db) {
		CHECK_INTEQ(passwd_db_count(db), 2);
		CHECK_INTEQ(passwd_db_verify(db, "alice", "secret", 6), PASSWD_OK);
		CHECK_INTEQ(passwd_db_verify(db, "alice", "Secret", 6), PASSWD_BAD);
		CHECK_INTEQ(passwd_db_verify(db, "alice", "", 0), PASSWD_BAD);
		CHECK_INTEQ(passwd_db_verify(db, "bob", "p@ss w0rd", 9), PASSWD_OK);
		CHECK_INTEQ(passwd_db_verify(db, "bob", "secret", 6), PASSWD_BAD);
		CHECK_INTEQ(passwd_db_verify(db, "Alice", "secret", 6), PASSWD_NO_USER);
		CHECK_INTEQ(passwd_db_verify(db, "carol", "secret", 6), PASSWD_NO_USER);
		/* A NUL inside the password: the part before it must not be enough. */
		CHECK_INTEQ(passwd_db_verify(db, "alice", "secret\0x", 8), PASSWD_BAD);
		passwd_db_free(db);
	}
	str_free(&err);

	snprintf(text, sizeof(text), "alice:%s\nnocolon\n", y);
	check_error(text, "bad:2: expected \"user:hash\"");
	check_error("alice:$1$abc$def\n", "bad:1: user \"alice\": the hash method is legacy");
	check_error("alice:secret\n", "bad:1: user \"alice\": the hash is not in crypt(3)");
	check_error("alice:\n", "bad:1: user \"alice\": empty hash");
	snprintf(text, sizeof(text), "alice:%s\nalice:%s\n", y, six);
	check_error(text, "bad:2: user \"alice\": duplicate user");
	snprintf(text, sizeof(text), "\n\nal ice:%s\n", y);
	check_error(text, "bad:3: bad user name");
	snprintf(text, sizeof(text), ":%s\n", y);
	check_error(text, "bad:1: bad user name");
	/* The hash never shows in a message. */
	char *e = load_error("alice:$y$j9T$notreallyahash:x\n");
	CHECK(e != NULL && strstr(e, "notreally") == NULL);
	free(e);

	err = (struct str)STR_INIT;
	CHECK(passwd_db_load("/nonexistent/impetus-passwd", &err) == NULL);
	CHECK(strstr(str_cstr(&err), "/nonexistent/impetus-passwd: cannot read") != NULL);
	str_free(&err);
	free(y);
	free(six);
}

/* test_conf - the AUTH options read back: mechanisms, the files' fallback, the array's text. */
static void test_conf(void)
{
	char *y = hash("$y$", "secret");
	char text[2048], lpath[128], ppath[128];
	struct str err = STR_INIT;

	snprintf(text, sizeof(text), "alice:%s\n", y);
	write_file("login", text, lpath, sizeof(lpath));
	write_file("plain", text, ppath, sizeof(ppath));
	snprintf(text, sizeof(text),
		 "SMTP_Extensions = ( \"ENHANCEDSTATUSCODES\" \"AUTH LOGIN\" \"auth plain\" )\n"
		 "AuthLoginParameters = [ uri = \"file://%s\" log_authentication = true ]\n"
		 "ESMTP_Listener {\n"
		 "  Listen \"127.0.0.1:25\" { Auth_Allow_Plaintext = true }\n"
		 "  Listen \"127.0.0.1:26\" { AuthPlainParameters = [ uri = \"file://%s\", ] }\n"
		 "  Listen \"127.0.0.1:27\" { SMTP_Extensions = ( \"AUTH LOGIN\" ) }\n"
		 "  Listen \"127.0.0.1:28\" { SMTP_Extensions = ( ) }\n"
		 "}\n", lpath, ppath);
	struct conf *c = conf_load_string(text, "t.conf", &err);
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", str_cstr(&err));
		str_free(&err);
		free(y);
		return;
	}
	struct conf_auth a[4];
	for (size_t i = 0; i < 4; i++)
		conf_listener_auth(c, conf_listener_at(c, i), &a[i]);
	CHECK(a[0].mechs == (CONF_AUTH_LOGIN | CONF_AUTH_PLAIN));
	CHECK(a[0].allow_plaintext && !a[1].allow_plaintext);
	CHECK(a[0].login_db != NULL && a[0].plain_db == a[0].login_db);	/* PLAIN falls back */
	CHECK(a[0].login_log && a[0].plain_log);
	CHECK(a[1].plain_db != NULL && a[1].plain_db != a[1].login_db && !a[1].plain_log);
	CHECK(a[2].mechs == CONF_AUTH_LOGIN && a[2].plain_db == NULL && a[2].login_db != NULL);
	CHECK(a[3].mechs == 0 && a[3].login_db == NULL);
	CHECK_INTEQ(passwd_db_verify(a[1].plain_db, "alice", "secret", 6), PASSWD_OK);

	struct str f = STR_INIT;
	conf_value_format(CONF_OPT_AUTHLOGINPARAMETERS,
			  conf_listener_get(c, NULL, CONF_OPT_AUTHLOGINPARAMETERS), &f);
	snprintf(text, sizeof(text), "[ uri = \"file://%s\" log_authentication = \"true\" ]", lpath);
	CHECK_STREQ(str_cstr(&f), text);
	str_free(&f);
	conf_unref(c);
	str_free(&err);
	free(y);
}

/* v4 / v6 - a client address. */
static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

static void test_tarpit(void)
{
	struct smtp_tarpit *t = smtp_tarpit_new();
	struct smtp_tarpit_conf tc = { .limit = 5, .window_ms = 600000, .delay_ms = 1000,
				       .max_delay_ms = 4000 };
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	struct sockaddr_storage x1 = v6("2001:db8:1:2::1"), x2 = v6("2001:db8:1:2:ffff::9"),
				y = v6("2001:db8:1:3::1");
	bool block;
	int64_t now = 1000000;

	smtp_tarpit_configure(t, &tc);
	CHECK(!smtp_tarpit_blocked(t, &a, now));
	CHECK_INTEQ(smtp_tarpit_failed(t, &a, now, &block), 1000);
	CHECK(!block);
	CHECK_INTEQ(smtp_tarpit_failed(t, &a, now + 1, &block), 2000);
	CHECK_INTEQ(smtp_tarpit_failed(t, &a, now + 2, &block), 4000);
	CHECK_INTEQ(smtp_tarpit_failed(t, &a, now + 3, &block), 4000);	/* capped */
	CHECK(!block && !smtp_tarpit_blocked(t, &a, now + 3));
	smtp_tarpit_failed(t, &a, now + 4, &block);
	CHECK(block);
	CHECK(smtp_tarpit_blocked(t, &a, now + 5));
	CHECK(!smtp_tarpit_blocked(t, &b, now + 5));		/* another address */
	/* The window counts from the last failure. */
	CHECK(smtp_tarpit_blocked(t, &a, now + 4 + 600000));
	CHECK(!smtp_tarpit_blocked(t, &a, now + 4 + 600001));
	CHECK_INTEQ(smtp_tarpit_failed(t, &a, now + 700000, &block), 1000);	/* a fresh start */

	/* IPv6: one /64 is one client. */
	CHECK_INTEQ(smtp_tarpit_failed(t, &x1, now, &block), 1000);
	CHECK_INTEQ(smtp_tarpit_failed(t, &x2, now, &block), 2000);
	CHECK_INTEQ(smtp_tarpit_failed(t, &y, now, &block), 1000);

	/* The sweep forgets quiet addresses only. */
	CHECK_INTEQ(smtp_tarpit_count(t), 3);	/* a, the /64 of x1 and x2, y */
	smtp_tarpit_sweep(t, now + 650000);
	CHECK_INTEQ(smtp_tarpit_count(t), 1);	/* a's fresh start at now + 700000 stays */

	/* Limit 0: never blocked; delay 0: no delay. */
	tc.limit = 0;
	tc.delay_ms = 0;
	smtp_tarpit_configure(t, &tc);
	for (int i = 0; i < 50; i++) {
		CHECK_INTEQ(smtp_tarpit_failed(t, &b, now, &block), 0);
		CHECK(!block);
	}
	CHECK(!smtp_tarpit_blocked(t, &b, now));
	smtp_tarpit_free(t);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_smtp_auth.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	test_base64();
	test_plain();
	test_mask();
	test_passwd();
	test_conf();
	test_tarpit();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return check_done();
}
