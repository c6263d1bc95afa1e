/*
 * test_smtp_parse.c - table-driven tests of src/smtp/smtp_parse.c
 *
 * One table row per case: command lines, MAIL and RCPT arguments (every
 * parameter and every error reply), boundary lengths, UTF-8 with and
 * without SMTPUTF8, xtext, and the DATA/BDAT scanners. Every DATA case is
 * fed whole, split at every point, split at every pair of points and one
 * byte at a time, and compared with a deliberately naive reference scanner
 * on random inputs. Exits non-zero on any failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../common/smtp_scan_ref.h"
#include "core/str.h"
#include "message/envelope.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_reply.h"

/* ------------------------------------------------------------------ */
/* Command lines                                                       */
/* ------------------------------------------------------------------ */

static const struct {
	int line;
	const char *in;
	enum smtp_verb verb;
	const char *args;
} cmd_cases[] = {
	{ __LINE__, "HELO mx.example", SMTP_VERB_HELO, "mx.example" },
	{ __LINE__, "helo mx.example", SMTP_VERB_HELO, "mx.example" },
	{ __LINE__, "EHLO mx.example", SMTP_VERB_EHLO, "mx.example" },
	{ __LINE__, "eHlO [1.2.3.4]", SMTP_VERB_EHLO, "[1.2.3.4]" },
	{ __LINE__, "EHLO", SMTP_VERB_EHLO, "" },
	{ __LINE__, "MAIL FROM:<a@b.example>", SMTP_VERB_MAIL, "FROM:<a@b.example>" },
	{ __LINE__, "mail from:<a@b.example>", SMTP_VERB_MAIL, "from:<a@b.example>" },
	{ __LINE__, "MAIL  FROM:<a@b>", SMTP_VERB_MAIL, " FROM:<a@b>" },
	{ __LINE__, "MAIL", SMTP_VERB_MAIL, "" },
	{ __LINE__, "MAIL ", SMTP_VERB_MAIL, "" },
	{ __LINE__, "MAILX FROM:<a@b>", SMTP_VERB_UNKNOWN, "MAILX FROM:<a@b>" },
	{ __LINE__, "MAIL\tFROM:<a@b>", SMTP_VERB_UNKNOWN, "MAIL\tFROM:<a@b>" },
	{ __LINE__, "MAI", SMTP_VERB_UNKNOWN, "MAI" },
	{ __LINE__, "RCPT TO:<a@b.example>", SMTP_VERB_RCPT, "TO:<a@b.example>" },
	{ __LINE__, "Rcpt To:<a@b.example>", SMTP_VERB_RCPT, "To:<a@b.example>" },
	{ __LINE__, "RCPTTO:<a@b>", SMTP_VERB_UNKNOWN, "RCPTTO:<a@b>" },
	{ __LINE__, "DATA", SMTP_VERB_DATA, "" },
	{ __LINE__, "data", SMTP_VERB_DATA, "" },
	{ __LINE__, "DATA x", SMTP_VERB_DATA, "x" },
	{ __LINE__, "DATAX", SMTP_VERB_UNKNOWN, "DATAX" },
	{ __LINE__, "BDAT 100 LAST", SMTP_VERB_BDAT, "100 LAST" },
	{ __LINE__, "bdat 0", SMTP_VERB_BDAT, "0" },
	{ __LINE__, "RSET", SMTP_VERB_RSET, "" },
	{ __LINE__, "rset", SMTP_VERB_RSET, "" },
	{ __LINE__, "NOOP", SMTP_VERB_NOOP, "" },
	{ __LINE__, "NOOP x y", SMTP_VERB_NOOP, "x y" },
	{ __LINE__, "QUIT", SMTP_VERB_QUIT, "" },
	{ __LINE__, "quit", SMTP_VERB_QUIT, "" },
	{ __LINE__, "HELP", SMTP_VERB_HELP, "" },
	{ __LINE__, "HELP DATA", SMTP_VERB_HELP, "DATA" },
	{ __LINE__, "VRFY postmaster", SMTP_VERB_VRFY, "postmaster" },
	{ __LINE__, "EXPN list", SMTP_VERB_EXPN, "list" },
	{ __LINE__, "STARTTLS", SMTP_VERB_STARTTLS, "" },
	{ __LINE__, "StartTLS", SMTP_VERB_STARTTLS, "" },
	{ __LINE__, "START", SMTP_VERB_UNKNOWN, "START" },
	{ __LINE__, "STARTTLSX", SMTP_VERB_UNKNOWN, "STARTTLSX" },
	{ __LINE__, "AUTH PLAIN AGZvbwBiYXI=", SMTP_VERB_AUTH, "PLAIN AGZvbwBiYXI=" },
	{ __LINE__, "auth login", SMTP_VERB_AUTH, "login" },
	{ __LINE__, "", SMTP_VERB_UNKNOWN, "" },
	{ __LINE__, " MAIL FROM:<a@b>", SMTP_VERB_UNKNOWN, " MAIL FROM:<a@b>" },
	{ __LINE__, "GET / HTTP/1.0", SMTP_VERB_UNKNOWN, "GET / HTTP/1.0" },
};

static void test_commands(void)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const char *args = NULL;
		enum smtp_verb v = smtp_parse_command(cmd_cases[i].in, strlen(cmd_cases[i].in), &args);

		if (v != cmd_cases[i].verb || args == NULL || strcmp(args, cmd_cases[i].args) != 0) {
			fprintf(stderr, "%s:%d: \"%s\": verb %s args \"%s\", expected %s \"%s\"\n",
				__FILE__, cmd_cases[i].line, cmd_cases[i].in, smtp_verb_name(v),
				args ? args : "(null)", smtp_verb_name(cmd_cases[i].verb),
				cmd_cases[i].args);
			check_failures++;
		}
	}
	CHECK_STREQ(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	CHECK_STREQ(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	CHECK_STREQ(smtp_verb_name((enum smtp_verb)99), "UNKNOWN");
}

#define L(s) s, sizeof(s) - 1

static const struct {
	int line;
	const char *in;
	size_t len;
	bool clean;
} clean_cases[] = {
	{ __LINE__, L("MAIL FROM:<a@b.example> SIZE=10"), true },
	{ __LINE__, L(""), true },
	{ __LINE__, L("HELO\tx"), true },
	{ __LINE__, L("MAIL FROM:<a\0@b>"), false },
	{ __LINE__, L("MAIL FROM:<a@b>\r"), false },
	{ __LINE__, L("MAIL FROM:<a@b>\rRCPT TO:<c@d>"), false },
	{ __LINE__, L("MAIL FROM:<a@b>\nRCPT TO:<c@d>"), false },
	{ __LINE__, L("NOOP \x01"), false },
	{ __LINE__, L("NOOP \x1b[0m"), false },
	{ __LINE__, L("NOOP \x7f"), false },
	{ __LINE__, L("MAIL FROM:<\xc3\xa9@b.example> SMTPUTF8"), true },
	{ __LINE__, L("NOOP \xe2\x82\xac"), true },
	{ __LINE__, L("NOOP \xf0\x9f\x98\x80"), true },
	{ __LINE__, L("NOOP \xff"), false },
	{ __LINE__, L("NOOP \xc0\x80"), false },		/* overlong NUL */
	{ __LINE__, L("NOOP \xc1\xbf"), false },		/* overlong */
	{ __LINE__, L("NOOP \xe0\x80\xaf"), false },		/* overlong */
	{ __LINE__, L("NOOP \xed\xa0\x80"), false },		/* surrogate */
	{ __LINE__, L("NOOP \xf4\x90\x80\x80"), false },	/* > U+10FFFF */
	{ __LINE__, L("NOOP \xe2\x82"), false },		/* truncated */
	{ __LINE__, L("NOOP \xe2\x82x"), false },
	{ __LINE__, L("NOOP \x80"), false },			/* lone continuation */
};

static void test_line_clean(void)
{
	for (size_t i = 0; i < sizeof(clean_cases) / sizeof(clean_cases[0]); i++) {
		bool got = smtp_line_is_clean(clean_cases[i].in, clean_cases[i].len);
		if (got != clean_cases[i].clean) {
			fprintf(stderr, "%s:%d: smtp_line_is_clean gave %d\n", __FILE__,
				clean_cases[i].line, got);
			check_failures++;
		}
	}
}

/* ------------------------------------------------------------------ */
/* MAIL and RCPT                                                       */
/* ------------------------------------------------------------------ */

enum {
	E_SIZE = 1, E_8BIT = 2, E_UTF8 = 4, E_DSN = 8, E_BIN = 16, E_AUTH = 32,
	E_ALL = 63,
};

static struct smtp_ext_allowed ext_of(unsigned bits)
{
	struct smtp_ext_allowed e = {
		.size = bits & E_SIZE, .eightbitmime = bits & E_8BIT,
		.smtputf8 = bits & E_UTF8, .dsn = bits & E_DSN,
		.binarymime = bits & E_BIN, .auth = bits & E_AUTH,
	};
	return e;
}

/*
 * One MAIL case. code 0 = success; then path and the parameters are
 * compared (size as text, NULL meaning "absent", i.e. -1). On failure
 * code, xcode and, when given, text are compared.
 */
struct mail_case {
	int line;
	const char *args;
	unsigned ext;
	int code;
	const char *xcode;
	const char *text;
	const char *path;
	const char *size;
	int body;
	bool utf8;
	int ret;
	const char *envid;
	const char *auth;
};

#define MSYNTAX .code = 501, .xcode = "5.5.4", .text = "Syntax: MAIL FROM:<address>"
#define MBADADDR .code = 501, .xcode = "5.1.7", .text = "Bad sender address syntax"
#define MTOOLONG .code = 501, .xcode = "5.1.7", .text = "Bad sender address syntax: address too long"
#define M8BIT .code = 553, .xcode = "5.6.7"
#define BADPARAM(what) .code = 501, .xcode = "5.5.4", .text = "Bad " what " parameter"
#define UNSUPP(what) .code = 555, .xcode = "5.5.4", .text = "Unsupported parameter: " what
#define DUP(what) .code = 501, .xcode = "5.5.4", .text = "Duplicate parameter: " what

static const struct mail_case mail_cases[] = {
	/* keyword, brackets, spaces */
	{ __LINE__, "FROM:<a@b.example>", E_ALL, .path = "a@b.example" },
	{ __LINE__, "from:<a@b.example>", E_ALL, .path = "a@b.example" },
	{ __LINE__, "FrOm:<A@B.Example>", E_ALL, .path = "A@B.Example" },
	{ __LINE__, "FROM: <a@b.example>", E_ALL, .path = "a@b.example" },
	{ __LINE__, "FROM:  <a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:\t<a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM :<a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM<a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:a@b.example", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:<a@b.example", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:<a@b.example>SIZE=1", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:<a@b.example>>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:", E_ALL, MSYNTAX },
	{ __LINE__, "", E_ALL, MSYNTAX },
	{ __LINE__, "TO:<a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, " FROM:<a@b.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:<a@b.example> ", E_ALL, .path = "a@b.example" },
	{ __LINE__, "FROM:<a@b.example>   SIZE=100    BODY=8BITMIME  ", E_ALL,
	  .path = "a@b.example", .size = "100", .body = ENVELOPE_BODY_8BITMIME },

	/* null sender */
	{ __LINE__, "FROM:<>", E_ALL, .path = "" },
	{ __LINE__, "FROM: <>", E_ALL, .path = "" },
	{ __LINE__, "FROM:<> SIZE=2048", E_ALL, .path = "", .size = "2048" },
	{ __LINE__, "FROM:<> RET=HDRS", E_ALL, .path = "", .ret = ENVELOPE_RET_HDRS },

	/* address syntax */
	{ __LINE__, "FROM:<a>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<postmaster>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@b.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@@b.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a..b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<.a@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a.@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a(b)@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a,b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a<b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a.b+tag@c.example>", E_ALL, .path = "a.b+tag@c.example" },
	{ __LINE__, "FROM:<!#$%&'*+-/=?^_`{|}~@c.example>", E_ALL,
	  .path = "!#$%&'*+-/=?^_`{|}~@c.example" },
	{ __LINE__, "FROM:<a@b.c-d.example>", E_ALL, .path = "a@b.c-d.example" },
	{ __LINE__, "FROM:<a@1.example>", E_ALL, .path = "a@1.example" },
	{ __LINE__, "FROM:<a@localhost>", E_ALL, .path = "a@localhost" },
	{ __LINE__, "FROM:<a@-b.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b-.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b..example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@.b.example>", E_ALL, MBADADDR },
	/* one trailing dot: the root label, accepted and dropped (as Postfix) */
	{ __LINE__, "FROM:<a@b.example.>", E_ALL, .path = "a@b.example" },
	{ __LINE__, "FROM:<a@b.example.>  ", E_ALL, .path = "a@b.example" },
	{ __LINE__, "FROM:<a@localhost.>", E_ALL, .path = "a@localhost" },
	{ __LINE__, "FROM:<a@b.example..>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@.>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[127.0.0.1].>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b-.>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b_c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b c.example>", E_ALL, MBADADDR },

	/* quoted local parts: kept as written */
	{ __LINE__, "FROM:<\"a b\"@c.example>", E_ALL, .path = "\"a b\"@c.example" },
	{ __LINE__, "FROM:<\"a>b\"@c.example>", E_ALL, .path = "\"a>b\"@c.example" },
	{ __LINE__, "FROM:<\"a@b\"@c.example>", E_ALL, .path = "\"a@b\"@c.example" },
	{ __LINE__, "FROM:<\"a\\\"b\"@c.example>", E_ALL, .path = "\"a\\\"b\"@c.example" },
	{ __LINE__, "FROM:<\"a\\\\\"@c.example>", E_ALL, .path = "\"a\\\\\"@c.example" },
	{ __LINE__, "FROM:<\"\"@c.example>", E_ALL, .path = "\"\"@c.example" },
	{ __LINE__, "FROM:<\"a\"b@c.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<\"a@c.example>", E_ALL, MSYNTAX },
	{ __LINE__, "FROM:<\"a\"@c.example> SIZE=1", E_ALL, .path = "\"a\"@c.example", .size = "1" },

	/* address literals */
	{ __LINE__, "FROM:<a@[192.0.2.1]>", E_ALL, .path = "a@[192.0.2.1]" },
	{ __LINE__, "FROM:<a@[0.0.0.0]>", E_ALL, .path = "a@[0.0.0.0]" },
	{ __LINE__, "FROM:<a@[255.255.255.255]>", E_ALL, .path = "a@[255.255.255.255]" },
	{ __LINE__, "FROM:<a@[192.0.2.256]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[192.0.2]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[192.0.2.1.5]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[0192.0.2.1]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[192..2.1]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[192.0.2.1>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@192.0.2.1]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[IPv6:2001:db8::1]>", E_ALL, .path = "a@[IPv6:2001:db8::1]" },
	{ __LINE__, "FROM:<a@[ipv6:::1]>", E_ALL, .path = "a@[ipv6:::1]" },
	{ __LINE__, "FROM:<a@[IPv6:::ffff:192.0.2.1]>", E_ALL,
	  .path = "a@[IPv6:::ffff:192.0.2.1]" },
	{ __LINE__, "FROM:<a@[IPv6:2001:db8::g]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[IPv6:]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[x-tag:any-thing]>", E_ALL, .path = "a@[x-tag:any-thing]" },
	{ __LINE__, "FROM:<a@[x-tag:]>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@[x-:y]>", E_ALL, MBADADDR },

	/* source routes: accepted, route discarded */
	{ __LINE__, "FROM:<@a.example,@b.example:u@h.example>", E_ALL, .path = "u@h.example" },
	{ __LINE__, "FROM:<@a.example:u@h.example>", E_ALL, .path = "u@h.example" },
	{ __LINE__, "FROM: <@a.example:u@h.example> SIZE=5", E_ALL, .path = "u@h.example",
	  .size = "5" },
	{ __LINE__, "FROM:<@a.example,b.example:u@h.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@a.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@a.example:>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@:u@h.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@a.example,:u@h.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@a..example:u@h.example>", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<@[192.0.2.1]:u@h.example>", E_ALL, MBADADDR },

	/* UTF-8 (RFC 6531) */
	{ __LINE__, "FROM:<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example> SMTPUTF8", E_ALL,
	  .path = "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example", .utf8 = true },
	{ __LINE__, "FROM:<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example> smtputf8", E_ALL,
	  .path = "\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example", .utf8 = true },
	{ __LINE__, "FROM:<\"\xc3\xa9 x\"@b.example> SMTPUTF8", E_ALL,
	  .path = "\"\xc3\xa9 x\"@b.example", .utf8 = true },
	{ __LINE__, "FROM:<\xce\xb4\xce\xbf\xce\xba@\xcf\x80\xce\xb1.example>", E_ALL, M8BIT },
	{ __LINE__, "FROM:<a@\xcf\x80\xce\xb1.example>", E_ALL, M8BIT },
	{ __LINE__, "FROM:<\xc3\xa9@b.example> SMTPUTF8", E_ALL & ~E_UTF8, M8BIT },
	{ __LINE__, "FROM:<\xff@b.example> SMTPUTF8", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<\xc3@b.example> SMTPUTF8", E_ALL, MBADADDR },
	{ __LINE__, "FROM:<a@b.example> SMTPUTF8", E_ALL, .path = "a@b.example", .utf8 = true },
	{ __LINE__, "FROM:<a@b.example> SMTPUTF8", E_ALL & ~E_UTF8, UNSUPP("SMTPUTF8") },
	{ __LINE__, "FROM:<a@b.example> SMTPUTF8=yes", E_ALL, BADPARAM("SMTPUTF8") },
	{ __LINE__, "FROM:<a@b.example> SMTPUTF8 SMTPUTF8", E_ALL, DUP("SMTPUTF8") },

	/* SIZE (RFC 1870) */
	{ __LINE__, "FROM:<a@b.example> SIZE=0", E_ALL, .path = "a@b.example", .size = "0" },
	{ __LINE__, "FROM:<a@b.example> size=12345", E_ALL, .path = "a@b.example", .size = "12345" },
	{ __LINE__, "FROM:<a@b.example> SIZE=9223372036854775807", E_ALL, .path = "a@b.example",
	  .size = "9223372036854775807" },
	{ __LINE__, "FROM:<a@b.example> SIZE=99999999999999999999", E_ALL, .path = "a@b.example",
	  .size = "9223372036854775807" },
	{ __LINE__, "FROM:<a@b.example> SIZE=999999999999999999999", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=12a", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=-1", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=+1", E_ALL, BADPARAM("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=1 SIZE=2", E_ALL, DUP("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=1 size=1", E_ALL, DUP("SIZE") },
	{ __LINE__, "FROM:<a@b.example> SIZE=1", E_ALL & ~E_SIZE, UNSUPP("SIZE") },

	/* BODY (RFC 6152, RFC 3030) */
	{ __LINE__, "FROM:<a@b.example> BODY=7BIT", E_ALL, .path = "a@b.example",
	  .body = ENVELOPE_BODY_7BIT },
	{ __LINE__, "FROM:<a@b.example> BODY=8BITMIME", E_ALL, .path = "a@b.example",
	  .body = ENVELOPE_BODY_8BITMIME },
	{ __LINE__, "FROM:<a@b.example> body=8bitmime", E_ALL, .path = "a@b.example",
	  .body = ENVELOPE_BODY_8BITMIME },
	{ __LINE__, "FROM:<a@b.example> BODY=BINARYMIME", E_ALL, .path = "a@b.example",
	  .body = ENVELOPE_BODY_BINARYMIME },
	{ __LINE__, "FROM:<a@b.example> BODY=BINARYMIME", E_ALL & ~E_BIN, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=8BITMIME", E_BIN, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=BINARYMIME", E_BIN, .path = "a@b.example",
	  .body = ENVELOPE_BODY_BINARYMIME },
	{ __LINE__, "FROM:<a@b.example> BODY=9BIT", E_ALL, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=8BITMIMEX", E_ALL, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=", E_ALL, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY", E_ALL, BADPARAM("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=7BIT", E_ALL & ~(E_8BIT | E_BIN), UNSUPP("BODY") },
	{ __LINE__, "FROM:<a@b.example> BODY=7BIT BODY=7BIT", E_ALL, DUP("BODY") },

	/* RET, ENVID (RFC 3461) */
	{ __LINE__, "FROM:<a@b.example> RET=FULL", E_ALL, .path = "a@b.example",
	  .ret = ENVELOPE_RET_FULL },
	{ __LINE__, "FROM:<a@b.example> ret=hdrs", E_ALL, .path = "a@b.example",
	  .ret = ENVELOPE_RET_HDRS },
	{ __LINE__, "FROM:<a@b.example> RET=NONE", E_ALL, BADPARAM("RET") },
	{ __LINE__, "FROM:<a@b.example> RET=", E_ALL, BADPARAM("RET") },
	{ __LINE__, "FROM:<a@b.example> RET", E_ALL, BADPARAM("RET") },
	{ __LINE__, "FROM:<a@b.example> RET=FULL RET=HDRS", E_ALL, DUP("RET") },
	{ __LINE__, "FROM:<a@b.example> RET=FULL", E_ALL & ~E_DSN, UNSUPP("RET") },
	{ __LINE__, "FROM:<a@b.example> ENVID=QQ314159", E_ALL, .path = "a@b.example",
	  .envid = "QQ314159" },
	{ __LINE__, "FROM:<a@b.example> ENVID=abc+2Bdef+3D+20x", E_ALL, .path = "a@b.example",
	  .envid = "abc+def= x" },
	{ __LINE__, "FROM:<a@b.example> ENVID=a+ZZ", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=a+2", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=a+00b", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=a+0Ab", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=a+C3+A9", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=a=b", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID", E_ALL, BADPARAM("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=x ENVID=y", E_ALL, DUP("ENVID") },
	{ __LINE__, "FROM:<a@b.example> ENVID=x", E_ALL & ~E_DSN, UNSUPP("ENVID") },
	{ __LINE__, "FROM:<a@b.example> RET=HDRS ENVID=id1 SIZE=10 BODY=8BITMIME SMTPUTF8",
	  E_ALL, .path = "a@b.example", .size = "10", .body = ENVELOPE_BODY_8BITMIME,
	  .utf8 = true, .ret = ENVELOPE_RET_HDRS, .envid = "id1" },

	/* AUTH (RFC 4954 5) */
	{ __LINE__, "FROM:<a@b.example> AUTH=<>", E_ALL, .path = "a@b.example", .auth = "<>" },
	{ __LINE__, "FROM:<a@b.example> AUTH=u+3Dx@b.example", E_ALL, .path = "a@b.example",
	  .auth = "u=x@b.example" },
	{ __LINE__, "FROM:<a@b.example> AUTH=", E_ALL, BADPARAM("AUTH") },
	{ __LINE__, "FROM:<a@b.example> AUTH=<>", E_ALL & ~E_AUTH, UNSUPP("AUTH") },

	/* unknown and malformed parameters */
	{ __LINE__, "FROM:<a@b.example> FOO=bar", E_ALL, UNSUPP("FOO") },
	{ __LINE__, "FROM:<a@b.example> XFOO", E_ALL, UNSUPP("XFOO") },
	{ __LINE__, "FROM:<a@b.example> X-Custom=1", E_ALL, UNSUPP("X-Custom") },
	{ __LINE__, "FROM:<a@b.example> NOTIFY=NEVER", E_ALL, UNSUPP("NOTIFY") },
	{ __LINE__, "FROM:<a@b.example> ORCPT=rfc822;a@b", E_ALL, UNSUPP("ORCPT") },
	{ __LINE__, "FROM:<a@b.example> =x", E_ALL, .code = 501, .xcode = "5.5.4", .text = "Bad parameter syntax" },
	{ __LINE__, "FROM:<a@b.example> -X=1", E_ALL, .code = 501, .xcode = "5.5.4", .text = "Bad parameter syntax" },
	{ __LINE__, "FROM:<a@b.example> S_Z=1", E_ALL, .code = 501, .xcode = "5.5.4", .text = "Bad parameter syntax" },
	{ __LINE__, "FROM:<a@b.example> SIZE=1 FOO", E_ALL, UNSUPP("FOO") },
	/* the address is judged before the parameters */
	{ __LINE__, "FROM:<a> FOO=1", E_ALL, MBADADDR },
};

static void check_reply(int line, const struct smtp_reply *r, int code, const char *xcode,
			const char *text)
{
	if (r->code != code || strcmp(r->ext, xcode) != 0 ||
	    (text && strcmp(r->text, text) != 0)) {
		fprintf(stderr, "%s:%d: reply \"%d %s %s\", expected \"%d %s %s\"\n", __FILE__,
			line, r->code, r->ext, r->text, code, xcode, text ? text : "...");
		check_failures++;
	}
}

/* same - NULL-tolerant string equality for the optional fields. */
static bool same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void run_mail_case(const struct mail_case *c)
{
	struct smtp_ext_allowed ext = ext_of(c->ext);
	struct smtp_mail_args a;
	struct smtp_reply r;
	bool ok = smtp_parse_mail(c->args, &ext, &a, &r);

	if (c->code != 0) {
		if (ok) {
			fprintf(stderr, "%s:%d: MAIL %s accepted, expected %d\n", __FILE__,
				c->line, c->args, c->code);
			check_failures++;
			smtp_mail_args_free(&a);
			return;
		}
		check_reply(c->line, &r, c->code, c->xcode, c->text);
		if (a.path || a.envid || a.auth) {
			fprintf(stderr, "%s:%d: partial results not freed\n", __FILE__, c->line);
			check_failures++;
		}
		return;
	}
	if (!ok) {
		fprintf(stderr, "%s:%d: MAIL %s refused: %d %s %s\n", __FILE__, c->line, c->args,
			r.code, r.ext, r.text);
		check_failures++;
		return;
	}
	char size[32];
	snprintf(size, sizeof(size), "%lld", (long long)a.size);
	if (!same(a.path, c->path) || strcmp(size, c->size ? c->size : "-1") != 0 ||
	    a.body != c->body || a.smtputf8 != c->utf8 || a.ret != c->ret ||
	    !same(a.envid, c->envid) || !same(a.auth, c->auth) || r.code != 0) {
		fprintf(stderr, "%s:%d: MAIL %s: path \"%s\" size %s body %d utf8 %d ret %d "
			"envid %s auth %s\n", __FILE__, c->line, c->args, a.path, size, a.body,
			a.smtputf8, a.ret, a.envid ? a.envid : "(null)",
			a.auth ? a.auth : "(null)");
		check_failures++;
	}
	smtp_mail_args_free(&a);
}

struct rcpt_case {
	int line;
	const char *args;
	unsigned ext;
	bool smtputf8;		/* the transaction's MAIL had SMTPUTF8 */
	int code;
	const char *xcode;
	const char *text;
	const char *path;
	int notify;
	const char *orcpt;
};

#define RSYNTAX .code = 501, .xcode = "5.5.4", .text = "Syntax: RCPT TO:<address>"
#define RBADADDR .code = 501, .xcode = "5.1.3", .text = "Bad recipient address syntax"
#define RTOOLONG .code = 501, .xcode = "5.1.3", .text = "Bad recipient address syntax: address too long"

static const struct rcpt_case rcpt_cases[] = {
	{ __LINE__, "TO:<a@b.example>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "to:<a@b.example>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "tO:<a@b.example>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "TO: <a@b.example>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "TO:  <a@b.example>", E_ALL, false, RSYNTAX },
	{ __LINE__, "TO:a@b.example", E_ALL, false, RSYNTAX },
	{ __LINE__, "TO:<a@b.example", E_ALL, false, RSYNTAX },
	{ __LINE__, "TO<a@b.example>", E_ALL, false, RSYNTAX },
	{ __LINE__, "FROM:<a@b.example>", E_ALL, false, RSYNTAX },
	{ __LINE__, "", E_ALL, false, RSYNTAX },
	{ __LINE__, "TO:<>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<postmaster>", E_ALL, false, .path = "postmaster" },
	{ __LINE__, "TO:<PostMaster>", E_ALL, false, .path = "PostMaster" },
	{ __LINE__, "TO:<postmaster@b.example>", E_ALL, false, .path = "postmaster@b.example" },
	{ __LINE__, "TO:<\"postmaster\">", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<@a.example:postmaster>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<postmasterx>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<abuse>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<a@b..example>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<a@b.example.>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "TO:<@r.example:a@b.example.>", E_ALL, false, .path = "a@b.example" },
	{ __LINE__, "TO:<\"a@b.\"@c.example.>", E_ALL, false, .path = "\"a@b.\"@c.example" },
	{ __LINE__, "TO:<a@b.example..>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<a@.>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<postmaster.>", E_ALL, false, RBADADDR },
	{ __LINE__, "TO:<@a.example,@b.example:u@h.example>", E_ALL, false, .path = "u@h.example" },
	{ __LINE__, "TO:<\"x y\"@h.example> NOTIFY=NEVER", E_ALL, false,
	  .path = "\"x y\"@h.example", .notify = ENVELOPE_NOTIFY_NEVER },
	{ __LINE__, "TO:<a@[IPv6:::1]>", E_ALL, false, .path = "a@[IPv6:::1]" },

	/* UTF-8: depends on the transaction's SMTPUTF8 */
	{ __LINE__, "TO:<\xc3\xa9@\xc3\xa9.example>", E_ALL, true,
	  .path = "\xc3\xa9@\xc3\xa9.example" },
	{ __LINE__, "TO:<\xc3\xa9@b.example>", E_ALL, false, .code = 553, .xcode = "5.6.7" },
	{ __LINE__, "TO:<a@\xc3\xa9.example>", E_ALL, false, .code = 553, .xcode = "5.6.7" },
	{ __LINE__, "TO:<\xc3\xa9@b.example>", E_ALL & ~E_UTF8, true, .code = 553, .xcode = "5.6.7" },
	{ __LINE__, "TO:<\xc3@b.example>", E_ALL, true, RBADADDR },

	/* NOTIFY */
	{ __LINE__, "TO:<a@b.example> NOTIFY=NEVER", E_ALL, false, .path = "a@b.example",
	  .notify = ENVELOPE_NOTIFY_NEVER },
	{ __LINE__, "TO:<a@b.example> NOTIFY=SUCCESS", E_ALL, false, .path = "a@b.example",
	  .notify = ENVELOPE_NOTIFY_SUCCESS },
	{ __LINE__, "TO:<a@b.example> NOTIFY=SUCCESS,FAILURE", E_ALL, false,
	  .path = "a@b.example", .notify = ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE },
	{ __LINE__, "TO:<a@b.example> notify=delay,failure,success", E_ALL, false,
	  .path = "a@b.example",
	  .notify = ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY },
	{ __LINE__, "TO:<a@b.example> NOTIFY=FAILURE,FAILURE", E_ALL, false,
	  .path = "a@b.example", .notify = ENVELOPE_NOTIFY_FAILURE },
	{ __LINE__, "TO:<a@b.example> NOTIFY=NEVER,SUCCESS", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=DELAY,NEVER", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=SUCCESS,", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=,SUCCESS", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=ALWAYS", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY", E_ALL, false, BADPARAM("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", E_ALL, false, DUP("NOTIFY") },
	{ __LINE__, "TO:<a@b.example> NOTIFY=NEVER", E_ALL & ~E_DSN, false, UNSUPP("NOTIFY") },

	/* ORCPT */
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;a@b.example", E_ALL, false,
	  .path = "a@b.example", .orcpt = "rfc822;a@b.example" },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;x+2By+3Dz@b.example", E_ALL, false,
	  .path = "a@b.example", .orcpt = "rfc822;x+y=z@b.example" },
	{ __LINE__, "TO:<a@b.example>  NOTIFY=FAILURE,DELAY  ORCPT=RFC822;a@b.example", E_ALL,
	  false, .path = "a@b.example", .notify = ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY,
	  .orcpt = "RFC822;a@b.example" },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=;a@b.example", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc 822;a@b", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc(822;a@b", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;a+ZZ", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;a+0D+0A", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=", E_ALL, false, BADPARAM("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b", E_ALL, false,
	  DUP("ORCPT") },
	{ __LINE__, "TO:<a@b.example> ORCPT=rfc822;a@b", E_ALL & ~E_DSN, false, UNSUPP("ORCPT") },
	{ __LINE__, "TO:<\xc3\xa9@b.example> ORCPT=utf-8;\xc3\xa9@b.example", E_ALL, true,
	  .path = "\xc3\xa9@b.example", .orcpt = "utf-8;\xc3\xa9@b.example" },
	{ __LINE__, "TO:<a@b.example> ORCPT=utf-8;\xc3\xa9@b.example", E_ALL, false,
	  BADPARAM("ORCPT") },

	/* MAIL parameters do not belong here */
	{ __LINE__, "TO:<a@b.example> SIZE=10", E_ALL, false, UNSUPP("SIZE") },
	{ __LINE__, "TO:<a@b.example> BODY=8BITMIME", E_ALL, false, UNSUPP("BODY") },
	{ __LINE__, "TO:<a@b.example> RET=FULL", E_ALL, false, UNSUPP("RET") },
	{ __LINE__, "TO:<a@b.example> FOO", E_ALL, false, UNSUPP("FOO") },
	{ __LINE__, "TO:<a@b.example>FOO", E_ALL, false, RSYNTAX },
};

static void run_rcpt_case(const struct rcpt_case *c)
{
	struct smtp_ext_allowed ext = ext_of(c->ext);
	struct smtp_rcpt_args a;
	struct smtp_reply r;
	bool ok = smtp_parse_rcpt(c->args, &ext, c->smtputf8, &a, &r);

	if (c->code != 0) {
		if (ok) {
			fprintf(stderr, "%s:%d: RCPT %s accepted, expected %d\n", __FILE__,
				c->line, c->args, c->code);
			check_failures++;
			smtp_rcpt_args_free(&a);
			return;
		}
		check_reply(c->line, &r, c->code, c->xcode, c->text);
		if (a.path || a.orcpt) {
			fprintf(stderr, "%s:%d: partial results not freed\n", __FILE__, c->line);
			check_failures++;
		}
		return;
	}
	if (!ok) {
		fprintf(stderr, "%s:%d: RCPT %s refused: %d %s %s\n", __FILE__, c->line, c->args,
			r.code, r.ext, r.text);
		check_failures++;
		return;
	}
	if (!same(a.path, c->path) || a.notify != c->notify || !same(a.orcpt, c->orcpt)) {
		fprintf(stderr, "%s:%d: RCPT %s: path \"%s\" notify %d orcpt %s\n", __FILE__,
			c->line, c->args, a.path, a.notify, a.orcpt ? a.orcpt : "(null)");
		check_failures++;
	}
	smtp_rcpt_args_free(&a);
}

/* rep - n copies of c (n < 1000), in a static buffer per slot. */
static const char *rep(int slot, char c, size_t n)
{
	static char bufs[4][1024];

	memset(bufs[slot], c, n);
	bufs[slot][n] = '\0';
	return bufs[slot];
}

/* label_domain - a dotted domain of exactly n bytes (labels of 63 and less). */
static const char *label_domain(int slot, size_t n)
{
	static char bufs[2][512];
	char *d = bufs[slot];
	size_t i = 0;

	while (i < n) {
		size_t take = n - i > 63 ? 63 : n - i;
		if (n - i - take == 1)	/* never leave a one-byte tail as ".": shorten */
			take--;
		memset(d + i, 'd', take);
		i += take;
		if (i < n)
			d[i++] = '.';
	}
	d[n] = '\0';
	return d;
}

/* Boundary lengths are built at run time and pushed through the tables' runners. */
static void test_lengths(void)
{
	char args[4096];
	struct mail_case mc;
	struct rcpt_case rc;

	/* local part: 64 is fine, 65 is too long */
	char path64[2048];
	snprintf(path64, sizeof(path64), "%s@b.example", rep(0, 'l', 64));
	snprintf(args, sizeof(args), "FROM:<%s>", path64);
	mc = (struct mail_case){ __LINE__, args, E_ALL, .path = path64 };
	run_mail_case(&mc);

	snprintf(args, sizeof(args), "FROM:<%s@b.example>", rep(0, 'l', 65));
	mc = (struct mail_case){ __LINE__, args, E_ALL, MTOOLONG };
	run_mail_case(&mc);
	snprintf(args, sizeof(args), "TO:<%s@b.example>", rep(0, 'l', 65));
	rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, RTOOLONG };
	run_rcpt_case(&rc);

	/* quoted local part: the quotes count */
	char q[2048];
	snprintf(q, sizeof(q), "\"%s\"@b.example", rep(0, 'q', 62));
	snprintf(args, sizeof(args), "FROM:<%s>", q);
	mc = (struct mail_case){ __LINE__, args, E_ALL, .path = q };
	run_mail_case(&mc);
	snprintf(args, sizeof(args), "FROM:<\"%s\"@b.example>", rep(0, 'q', 63));
	mc = (struct mail_case){ __LINE__, args, E_ALL, MTOOLONG };
	run_mail_case(&mc);

	/* the whole path: 255 and 256 fine, 257 too long */
	for (size_t n = 255; n <= 257; n++) {
		char path[2048];
		snprintf(path, sizeof(path), "%s@%s", rep(0, 'p', 60), label_domain(0, n - 61));
		CHECK_INTEQ(strlen(path), n);
		snprintf(args, sizeof(args), "FROM:<%s>", path);
		if (n <= SMTP_PATH_MAX)
			mc = (struct mail_case){ __LINE__, args, E_ALL, .path = path };
		else
			mc = (struct mail_case){ __LINE__, args, E_ALL, MTOOLONG };
		run_mail_case(&mc);
		snprintf(args, sizeof(args), "TO:<%s>", path);
		if (n <= SMTP_PATH_MAX)
			rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, .path = path };
		else
			rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, RTOOLONG };
		run_rcpt_case(&rc);
	}

	/* a source route counts toward the path length as sent */
	{
		char path[2048];
		snprintf(path, sizeof(path), "@%s:u@h.example", label_domain(0, 250));
		snprintf(args, sizeof(args), "TO:<%s>", path);
		rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, RTOOLONG };
		run_rcpt_case(&rc);
	}

	/* domain labels: 63 octets fine, 64 refused (RFC 1035) */
	snprintf(args, sizeof(args), "FROM:<a@%s.example>", rep(0, 'x', 63));
	char p63[2048];
	snprintf(p63, sizeof(p63), "a@%s.example", rep(0, 'x', 63));
	mc = (struct mail_case){ __LINE__, args, E_ALL, .path = p63 };
	run_mail_case(&mc);
	snprintf(args, sizeof(args), "FROM:<a@%s.example>", rep(0, 'x', 64));
	mc = (struct mail_case){ __LINE__, args, E_ALL, MBADADDR };
	run_mail_case(&mc);

	/* a UTF-8 label may exceed 63 octets: its A-label is shorter */
	{
		char u[100], p[2048];
		size_t n = 0;
		for (int i = 0; i < 30; i++) {		/* 30 x U+4E2D = 90 octets */
			u[n++] = (char)0xe4;
			u[n++] = (char)0xb8;
			u[n++] = (char)0xad;
		}
		u[n] = '\0';
		snprintf(p, sizeof(p), "a@%s.example", u);
		snprintf(args, sizeof(args), "TO:<%s>", p);
		rc = (struct rcpt_case){ __LINE__, args, E_ALL, true, .path = p };
		run_rcpt_case(&rc);
	}

	/* reply text never overflows: a 64-byte unknown keyword */
	snprintf(args, sizeof(args), "FROM:<a@b.example> %s=1", rep(0, 'K', 64));
	char want[2048];
	snprintf(want, sizeof(want), "Unsupported parameter: %s", rep(1, 'K', 64));
	mc = (struct mail_case){ __LINE__, args, E_ALL, .code = 555, .xcode = "5.5.4", .text = want };
	run_mail_case(&mc);
	snprintf(args, sizeof(args), "FROM:<a@b.example> %s=1", rep(0, 'K', 65));
	mc = (struct mail_case){ __LINE__, args, E_ALL, .code = 501, .xcode = "5.5.4", .text = "Bad parameter syntax" };
	run_mail_case(&mc);

	/* ENVID up to 100 characters, ORCPT up to 500 (RFC 3461) */
	snprintf(args, sizeof(args), "FROM:<a@b.example> ENVID=%s", rep(0, 'e', 100));
	mc = (struct mail_case){ __LINE__, args, E_ALL, .path = "a@b.example",
				 .envid = rep(1, 'e', 100) };
	run_mail_case(&mc);
	snprintf(args, sizeof(args), "FROM:<a@b.example> ENVID=%s", rep(0, 'e', 101));
	mc = (struct mail_case){ __LINE__, args, E_ALL, BADPARAM("ENVID") };
	run_mail_case(&mc);
	{
		char want_o[2048];
		snprintf(args, sizeof(args), "TO:<a@b.example> ORCPT=rfc822;%s", rep(0, 'o', 493));
		snprintf(want_o, sizeof(want_o), "rfc822;%s", rep(1, 'o', 493));
		rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, .path = "a@b.example",
					 .orcpt = want_o };
		run_rcpt_case(&rc);
		snprintf(args, sizeof(args), "TO:<a@b.example> ORCPT=rfc822;%s", rep(0, 'o', 494));
		rc = (struct rcpt_case){ __LINE__, args, E_ALL, false, BADPARAM("ORCPT") };
		run_rcpt_case(&rc);
	}
}

static void test_mail_rcpt(void)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++)
		run_mail_case(&mail_cases[i]);
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++)
		run_rcpt_case(&rcpt_cases[i]);
	test_lengths();
}

/* ------------------------------------------------------------------ */
/* Path domain, xtext, replies                                         */
/* ------------------------------------------------------------------ */

static void test_path_domain(void)
{
	static const struct { int line; const char *path, *dom; } t[] = {
		{ __LINE__, "a@b.example", "b.example" },
		{ __LINE__, "postmaster", "" },
		{ __LINE__, "", "" },
		{ __LINE__, "\"a@x\"@b.example", "b.example" },
		{ __LINE__, "\"a\\\"@x\"@b.example", "b.example" },
		{ __LINE__, "a@[192.0.2.1]", "[192.0.2.1]" },
		{ __LINE__, "a@[x-tag:a@b]", "[x-tag:a@b]" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *d = smtp_path_domain(t[i].path);
		if (strcmp(d, t[i].dom) != 0) {
			fprintf(stderr, "%s:%d: domain of %s is \"%s\"\n", __FILE__, t[i].line,
				t[i].path, d);
			check_failures++;
		}
	}
}

static const struct {
	int line;
	const char *in;
	size_t len;
	bool ok;
	const char *out;
	size_t out_len;
} xtext_cases[] = {
	{ __LINE__, L(""), true, L("") },
	{ __LINE__, L("abc"), true, L("abc") },
	{ __LINE__, L("+2B"), true, L("+") },
	{ __LINE__, L("a+2Bb+3Dc"), true, L("a+b=c") },
	{ __LINE__, L("+2b"), true, L("+") },		/* lower case tolerated */
	{ __LINE__, L("+20+7E+FF"), true, L(" ~\xff") },
	{ __LINE__, L("!~"), true, L("!~") },
	{ __LINE__, L("+ZZ"), false, L("") },
	{ __LINE__, L("+2Z"), false, L("") },
	{ __LINE__, L("+2"), false, L("") },
	{ __LINE__, L("+"), false, L("") },
	{ __LINE__, L("ab+"), false, L("") },
	{ __LINE__, L("+00"), false, L("") },
	{ __LINE__, L("a b"), false, L("") },
	{ __LINE__, L("a=b"), false, L("") },
	{ __LINE__, L("a\0b"), false, L("") },
	{ __LINE__, L("\x7f"), false, L("") },
	{ __LINE__, L("\xc3\xa9"), false, L("") },
};

static void test_xtext(void)
{
	for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
		struct str out = STR_INIT;
		str_appends(&out, "pre:");
		bool ok = smtp_xtext_decode(xtext_cases[i].in, xtext_cases[i].len, &out);
		bool good = ok == xtext_cases[i].ok;
		if (good && ok)
			good = out.len == 4 + xtext_cases[i].out_len &&
			       memcmp(out.s + 4, xtext_cases[i].out, xtext_cases[i].out_len) == 0;
		if (good && !ok)	/* out left as it was */
			good = out.len == 4 && strcmp(out.s, "pre:") == 0;
		if (!good) {
			fprintf(stderr, "%s:%d: xtext decode gave %d \"%s\"\n", __FILE__,
				xtext_cases[i].line, ok, str_cstr(&out));
			check_failures++;
		}
		str_free(&out);
	}

	struct str enc = STR_INIT;
	smtp_xtext_encode(L("a+b=c d\r\n"), &enc);
	CHECK_STREQ(str_cstr(&enc), "a+2Bb+3Dc+20d+0D+0A");
	str_clear(&enc);
	smtp_xtext_encode(L(""), &enc);
	CHECK_STREQ(str_cstr(&enc), "");

	/* round trip of every byte value but NUL */
	char all[255];
	for (int i = 0; i < 255; i++)
		all[i] = (char)(i + 1);
	str_clear(&enc);
	smtp_xtext_encode(all, sizeof(all), &enc);
	for (size_t i = 0; i < enc.len; i++)
		CHECK(enc.s[i] >= 33 && enc.s[i] <= 126 && enc.s[i] != '=');
	struct str dec = STR_INIT;
	CHECK(smtp_xtext_decode(enc.s, enc.len, &dec));
	CHECK(dec.len == sizeof(all) && memcmp(dec.s, all, sizeof(all)) == 0);
	str_free(&dec);
	str_free(&enc);
}

static void test_reply(void)
{
	struct smtp_reply r;
	struct str out = STR_INIT;

	smtp_reply_set(&r, 250, "2.1.0", "Sender <%s> OK", "a@b");
	smtp_reply_format(&r, &out);
	CHECK_STREQ(str_cstr(&out), "250 2.1.0 Sender <a@b> OK\r\n");
	str_clear(&out);
	smtp_reply_set(&r, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtp_reply_format(&r, &out);
	CHECK_STREQ(str_cstr(&out), "354 End data with <CR><LF>.<CR><LF>\r\n");
	str_clear(&out);
	smtp_reply_set(&r, 500, "5.5.2", "bad\r\n250 injected");
	smtp_reply_format(&r, &out);
	CHECK_STREQ(str_cstr(&out), "500 5.5.2 bad??250 injected\r\n");
	str_clear(&out);
	smtp_reply_append_line(&out, 250, "", false, "mx.example");
	smtp_reply_append_line(&out, 250, "", true, "PIPELINING");
	CHECK_STREQ(str_cstr(&out), "250-mx.example\r\n250 PIPELINING\r\n");
	smtp_reply_clear(&r);
	CHECK_INTEQ(r.code, 0);
	str_free(&out);
}

/* ------------------------------------------------------------------ */
/* DATA scanner                                                        */
/* ------------------------------------------------------------------ */

struct data_case {
	int line;
	const char *in;
	size_t len;
	const char *out;
	size_t out_len;
	size_t consumed;
	bool done, bare_lf, bare_cr, nul;
	size_t longest;
};

/* rows: input, expected out, consumed, done, bare_lf, bare_cr, nul, longest */
#define DONE true
#define OPEN false

static const struct data_case data_cases[] = {
	{ __LINE__, L("Hello\r\n.\r\n"), L("Hello\r\n"), 10, DONE, 0, 0, 0, 5 },
	{ __LINE__, L(".\r\n"), L(""), 3, DONE, 0, 0, 0, 0 },
	{ __LINE__, L(".\r\nQUIT\r\n"), L(""), 3, DONE, 0, 0, 0, 0 },
	{ __LINE__, L("a\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"), L("a\r\n"), 6,
	  DONE, 0, 0, 0, 1 },
	{ __LINE__, L("\r\n.\r\n"), L("\r\n"), 5, DONE, 0, 0, 0, 0 },
	{ __LINE__, L("a\r\n.\r\n\r\n.\r\n"), L("a\r\n"), 6, DONE, 0, 0, 0, 1 },
	{ __LINE__, L("Subject: x\r\n\r\nbody\r\n.\r\n"), L("Subject: x\r\n\r\nbody\r\n"),
	  23, DONE, 0, 0, 0, 10 },
	/* dot-unstuffing */
	{ __LINE__, L("..\r\n.\r\n"), L(".\r\n"), 7, DONE, 0, 0, 0, 1 },
	{ __LINE__, L("a\r\n..b\r\n.\r\n"), L("a\r\n.b\r\n"), 11, DONE, 0, 0, 0, 2 },
	{ __LINE__, L(".x\r\n.\r\n"), L("x\r\n"), 7, DONE, 0, 0, 0, 1 },
	{ __LINE__, L("a\r\n...\r\n.\r\n"), L("a\r\n..\r\n"), 11, DONE, 0, 0, 0, 2 },
	{ __LINE__, L("a.\r\nb.b\r\n.\r\n"), L("a.\r\nb.b\r\n"), 12, DONE, 0, 0, 0, 3 },
	{ __LINE__, L("a\r\n. \r\n.\r\n"), L("a\r\n \r\n"), 10, DONE, 0, 0, 0, 1 },
	/* the look-alikes: none of them ends the data */
	{ __LINE__, L("a\n.\nb\r\n.\r\n"), L("a\n.\nb\r\n"), 10, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("a\r.\rb\r\n.\r\n"), L("a\r.\rb\r\n"), 10, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\n.\r\nb\r\n.\r\n"), L("a\n.\r\nb\r\n"), 11, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n.\nb\r\n.\r\n"), L("a\r\n\nb\r\n"), 11, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n.\rb\r\n.\r\n"), L("a\r\n\rb\r\n"), 11, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\n\0.\r\n.\r\n"), L("a\r\n\0.\r\n"), 10, DONE, 0, 0, 1, 2 },
	{ __LINE__, L("\n.\n"), L("\n.\n"), 3, OPEN, 1, 0, 0, 1 },
	{ __LINE__, L("\r.\r"), L("\r.\r"), 3, OPEN, 0, 1, 0, 1 },
	{ __LINE__, L("\n.\r\n"), L("\n.\r\n"), 4, OPEN, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n.\n"), L("a\r\n\n"), 5, OPEN, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n.\r"), L("a\r\n"), 5, OPEN, 0, 0, 0, 1 },
	{ __LINE__, L("a\r\n\0.\r\n"), L("a\r\n\0.\r\n"), 7, OPEN, 0, 0, 1, 2 },
	{ __LINE__, L("\n.\r\n.\r\n"), L("\n.\r\n"), 7, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("\r.\r\n.\r\n"), L("\r.\r\n"), 7, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\r\n.\r\n"), L("a\r\r\n"), 7, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\n.\r\r\n.\r\n"), L("a\r\n\r\r\n"), 10, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\n.\r.\r\n.\r\n"), L("a\r\n\r.\r\n"), 11, DONE, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\n.\r\r.\r\n"), L("a\r\n\r\r.\r\n"), 9, OPEN, 0, 1, 0, 1 },
	{ __LINE__, L("a\r\n.\n.\r\n.\r\n"), L("a\r\n\n.\r\n"), 11, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n.\r\n.\r\n"), L("a\r\n"), 6, DONE, 0, 0, 0, 1 },
	{ __LINE__, L("a\n\r\n.\r\n"), L("a\n\r\n"), 7, DONE, 1, 0, 0, 1 },
	{ __LINE__, L("a\r\n\r\n.\r\n"), L("a\r\n\r\n"), 8, DONE, 0, 0, 0, 1 },
	{ __LINE__, L("\0"), L("\0"), 1, OPEN, 0, 0, 1, 1 },
	{ __LINE__, L(""), L(""), 0, OPEN, 0, 0, 0, 0 },
	{ __LINE__, L("."), L(""), 1, OPEN, 0, 0, 0, 0 },
	{ __LINE__, L("a\r\n.\r\n."), L("a\r\n"), 6, DONE, 0, 0, 0, 1 },
	/* long runs exercise the word-at-a-time scan on every alignment */
	{ __LINE__, L("0123456789abcdefghij\r\n0123456789abcdefghij\n0123456\r.\r\n.\r\n"),
	  L("0123456789abcdefghij\r\n0123456789abcdefghij\n0123456\r.\r\n"), 57, DONE, 1, 1, 0,
	  20 },
	{ __LINE__, L("0123456789abcdef\0\r\n.\r\n"), L("0123456789abcdef\0\r\n"), 22, DONE, 0,
	  0, 1, 17 },
};

/*
 * feed - run the scanner over in split at the given points (sorted, each
 * within [0, len]) and return what it consumed in all; the caller stops
 * feeding at done, as a session would.
 */
static size_t feed(struct smtp_data_scanner *sc, const char *in, size_t len,
		   const size_t *cuts, size_t ncuts, struct str *out, uint64_t limit)
{
	size_t pos = 0, total = 0;

	for (size_t k = 0; k <= ncuts && !sc->done; k++) {
		size_t stop = k < ncuts ? cuts[k] : len;
		size_t n = smtp_data_scan(sc, in + pos, stop - pos, out, limit);
		if (n != stop - pos && !sc->done) {
			fprintf(stderr, "%s:%d: scanner stopped early without done\n",
				__FILE__, __LINE__);
			check_failures++;
		}
		total += n;
		pos = stop;
	}
	return total;
}

static bool data_result_ok(const struct data_case *c, const struct smtp_data_scanner *sc,
			   const struct str *out, size_t consumed, const char *how)
{
	if (consumed == c->consumed && sc->done == c->done && sc->bare_lf == c->bare_lf &&
	    sc->bare_cr == c->bare_cr && sc->nul == c->nul && sc->longest_line == c->longest &&
	    out->len == c->out_len && sc->bytes == c->out_len &&
	    memcmp(str_cstr(out), c->out, c->out_len) == 0)
		return true;
	fprintf(stderr, "%s:%d: %s: consumed %zu done %d lf %d cr %d nul %d longest %zu "
		"out_len %zu bytes %llu\n", __FILE__, c->line, how, consumed, sc->done,
		sc->bare_lf, sc->bare_cr, sc->nul, sc->longest_line, out->len,
		(unsigned long long)sc->bytes);
	check_failures++;
	return false;
}

static void run_data_case(const struct data_case *c)
{
	struct smtp_data_scanner sc;
	struct str out = STR_INIT;
	size_t cuts[2];
	char how[64];

	/* whole */
	smtp_data_scanner_init(&sc);
	bool whole_ok = data_result_ok(c, &sc, &out, feed(&sc, c->in, c->len, NULL, 0, &out, 0),
				       "whole");
	str_free(&out);
	if (!whole_ok)
		return;

	/* every single split point */
	for (size_t i = 0; i <= c->len; i++) {
		smtp_data_scanner_init(&sc);
		cuts[0] = i;
		size_t n = feed(&sc, c->in, c->len, cuts, 1, &out, 0);
		snprintf(how, sizeof(how), "split at %zu", i);
		bool ok = data_result_ok(c, &sc, &out, n, how);
		str_free(&out);
		if (!ok)
			return;
	}
	/* every pair of split points */
	for (size_t i = 0; i <= c->len; i++) {
		for (size_t j = i; j <= c->len; j++) {
			smtp_data_scanner_init(&sc);
			cuts[0] = i;
			cuts[1] = j;
			size_t n = feed(&sc, c->in, c->len, cuts, 2, &out, 0);
			snprintf(how, sizeof(how), "split at %zu,%zu", i, j);
			bool ok = data_result_ok(c, &sc, &out, n, how);
			str_free(&out);
			if (!ok)
				return;
		}
	}
	/* one byte at a time */
	{
		size_t bytecuts[128];
		size_t nc = c->len < 128 ? c->len : 128;
		for (size_t i = 0; i < nc; i++)
			bytecuts[i] = i + 1;
		smtp_data_scanner_init(&sc);
		size_t n = feed(&sc, c->in, c->len, bytecuts, nc, &out, 0);
		data_result_ok(c, &sc, &out, n, "byte at a time");
		str_free(&out);
	}
	/* every limit: out is the message's prefix, bytes still counts all */
	for (uint64_t limit = 1; limit <= c->out_len; limit++) {
		for (size_t i = 0; i <= c->len; i++) {
			smtp_data_scanner_init(&sc);
			cuts[0] = i;
			size_t n = feed(&sc, c->in, c->len, cuts, 1, &out, limit);
			size_t want = c->out_len < limit ? c->out_len : (size_t)limit;
			if (n != c->consumed || sc.bytes != c->out_len || out.len != want ||
			    memcmp(str_cstr(&out), c->out, want) != 0) {
				fprintf(stderr, "%s:%d: limit %llu split %zu: out_len %zu bytes %llu\n",
					__FILE__, c->line, (unsigned long long)limit, i, out.len,
					(unsigned long long)sc.bytes);
				check_failures++;
				str_free(&out);
				return;
			}
			str_free(&out);
		}
	}
	/* after done, nothing more is consumed */
	if (c->done) {
		smtp_data_scanner_init(&sc);
		smtp_data_scan(&sc, c->in, c->len, &out, 0);
		CHECK_INTEQ(smtp_data_scan(&sc, "x\r\n.\r\n", 6, &out, 0), 0);
		CHECK_INTEQ(out.len, c->out_len);
		str_free(&out);
	}
}


static void test_data_random(void)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a', '\0', '\r', '\n', '.' };
	unsigned seed = 12345;

	for (int iter = 0; iter < 300000; iter++) {
		/* a third plain, a third repairing, a third repairing and folding at 4 */
		bool fix = iter % 3 != 0;
		size_t fold = iter % 3 == 2 ? 4 : 0;
		char in[24];
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 16) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		seed = seed * 1103515245u + 12345u;
		size_t cut = len ? (seed >> 16) % (len + 1) : 0;

		struct str rout = STR_INIT, sout = STR_INIT;
		struct smtp_data_scanner r, sc;
		r.bytes = ref_scan(in, len, &rout, &r, fix, fold);
		smtp_data_scanner_init(&sc);
		sc.fix_bare_headers = sc.fix_bare_body = fix;
		sc.fold_at = fold;
		size_t n = feed(&sc, in, len, &cut, 1, &sout, 0);
		if (n != r.bytes || sc.done != r.done || sc.bare_cr != r.bare_cr ||
		    sc.bare_lf != r.bare_lf || sc.nul != r.nul || sc.in_body != r.in_body ||
		    sc.bare_headers != r.bare_headers || sc.bare_body != r.bare_body ||
		    sc.folded != r.folded ||
		    sc.longest_line != r.longest_line || rout.len != sout.len ||
		    memcmp(str_cstr(&rout), str_cstr(&sout), rout.len) != 0) {
			fprintf(stderr, "%s:%d: random case %d (len %zu cut %zu) differs from "
				"reference (fix %d fold %zu): consumed %zu/%llu done %d/%d cr %d/%d lf %d/%d "
				"nul %d/%d longest %zu/%zu out %zu/%zu\n", __FILE__, __LINE__,
				iter, len, cut, (int)fix, fold, n, (unsigned long long)r.bytes, sc.done, r.done,
				sc.bare_cr, r.bare_cr, sc.bare_lf, r.bare_lf, sc.nul, r.nul,
				sc.longest_line, r.longest_line, sout.len, rout.len);
			check_failures++;
			str_free(&rout);
			str_free(&sout);
			return;
		}
		str_free(&rout);
		str_free(&sout);
	}
}

static void test_data_long(void)
{
	struct smtp_data_scanner sc;
	struct str out = STR_INIT, in = STR_INIT;

	/* a 2000-byte line, then a 998-byte one */
	for (int i = 0; i < 2000; i++)
		str_appendc(&in, 'x');
	str_appends(&in, "\r\n");
	for (int i = 0; i < 998; i++)
		str_appendc(&in, 'y');
	str_appends(&in, "\r\n.\r\n");
	smtp_data_scanner_init(&sc);
	CHECK_INTEQ(smtp_data_scan(&sc, in.s, in.len, &out, 0), in.len);
	CHECK(sc.done);
	CHECK_INTEQ(sc.longest_line, 2000);
	CHECK_INTEQ(out.len, in.len - 3);
	str_free(&out);

	/* the line in progress counts: the caller can refuse it before it ends */
	smtp_data_scanner_init(&sc);
	smtp_data_scan(&sc, in.s, 1500, &out, 0);
	CHECK_INTEQ(sc.longest_line, 1500);
	CHECK(!sc.done);
	str_free(&out);

	/* limit: nothing past it is kept, everything is counted */
	smtp_data_scanner_init(&sc);
	CHECK_INTEQ(smtp_data_scan(&sc, in.s, in.len, &out, 100), in.len);
	CHECK_INTEQ(out.len, 100);
	CHECK_INTEQ(sc.bytes, in.len - 3);
	str_free(&out);
	str_free(&in);
}

/*
 * The repairs, one by one: which section a bare CR/LF is counted in, what
 * it becomes, and that no repair ever makes a look-alike end the data.
 */
static const struct {
	int line;
	const char *in;
	size_t len;
	bool fix_h, fix_b;
	size_t fold;
	const char *out;
	size_t out_len;
	bool done, bare_h, bare_b;
} fix_cases[] = {
	{ __LINE__, L("A: 1\nB: 2\n\nbody\n.\r\n"), 1, 1, 0,
	  L("A: 1\r\nB: 2\r\n\r\nbody\r\n.\r\n"), 0, 1, 1 },
	{ __LINE__, L("A: 1\nB: 2\n\nbody\n.\r\n"), 1, 0, 0,
	  L("A: 1\r\nB: 2\r\n\r\nbody\n.\r\n"), 0, 1, 1 },
	{ __LINE__, L("A: 1\r\n\r\nx\ry\r\n.\r\n"), 0, 1, 0,
	  L("A: 1\r\n\r\nx\r\ny\r\n"), 1, 0, 1 },
	{ __LINE__, L("A: 1\rB: 2\r\n\r\nx\r\n.\r\n"), 0, 1, 0,
	  L("A: 1\rB: 2\r\n\r\nx\r\n"), 1, 1, 0 },
	/* smuggling look-alikes stay data when repaired */
	{ __LINE__, L("A: 1\r\n\r\nx\n.\nMAIL FROM:<a@b>\r\n.\r\n"), 1, 1, 0,
	  L("A: 1\r\n\r\nx\r\n.\r\nMAIL FROM:<a@b>\r\n"), 1, 0, 1 },
	{ __LINE__, L("A: 1\r\n\r\nx\r.\r\nMAIL FROM:<a@b>\r\n.\r\n"), 1, 1, 0,
	  L("A: 1\r\n\r\nx\r\n.\r\nMAIL FROM:<a@b>\r\n"), 1, 0, 1 },
	{ __LINE__, L("A: 1\r\n\r\nx\r\n.\rMAIL FROM:<a@b>\r\n.\r\n"), 1, 1, 0,
	  L("A: 1\r\n\r\nx\r\n\r\nMAIL FROM:<a@b>\r\n"), 1, 0, 1 },
	{ __LINE__, L("x\n.\n"), 1, 1, 0, L("x\r\n.\r\n"), 0, 1, 0 },
	/* folding at 4 */
	{ __LINE__, L("abcdefghij\r\n.\r\n"), 0, 0, 4, L("abcd\r\n efg\r\n hij\r\n"), 1, 0, 0 },
	{ __LINE__, L("abcd\r\n..cd\r\n.\r\n"), 0, 0, 4, L("abcd\r\n.cd\r\n"), 1, 0, 0 },
};

static void test_data_fix(void)
{
	for (size_t i = 0; i < sizeof(fix_cases) / sizeof(fix_cases[0]); i++) {
		for (size_t split = 0; split <= fix_cases[i].len; split++) {
			struct smtp_data_scanner sc;
			struct str out = STR_INIT;

			smtp_data_scanner_init(&sc);
			sc.fix_bare_headers = fix_cases[i].fix_h;
			sc.fix_bare_body = fix_cases[i].fix_b;
			sc.fold_at = fix_cases[i].fold;
			feed(&sc, fix_cases[i].in, fix_cases[i].len, &split, 1, &out, 0);
			if (sc.done != fix_cases[i].done || sc.bare_headers != fix_cases[i].bare_h ||
			    sc.bare_body != fix_cases[i].bare_b || out.len != fix_cases[i].out_len ||
			    memcmp(str_cstr(&out), fix_cases[i].out, out.len) != 0 ||
			    (fix_cases[i].fold && sc.longest_line > fix_cases[i].fold)) {
				fprintf(stderr, "%s:%d: split %zu: done %d bare_h %d bare_b %d "
					"longest %zu out \"%s\"\n", __FILE__, fix_cases[i].line, split,
					sc.done, sc.bare_headers, sc.bare_body, sc.longest_line,
					str_cstr(&out));
				check_failures++;
				str_free(&out);
				break;
			}
			str_free(&out);
		}
	}
}

/* ------------------------------------------------------------------ */
/* BDAT chunk scanner                                                  */
/* ------------------------------------------------------------------ */

static const struct {
	int line;
	const char *a;
	size_t alen;
	const char *b;
	size_t blen;
	bool bare_lf, bare_cr, nul;
	size_t longest;
} chunk_cases[] = {
	{ __LINE__, L("ab\r"), L("\ncd\r\n"), 0, 0, 0, 2 },
	{ __LINE__, L("ab\r"), L("x\r\n"), 0, 1, 0, 2 },
	{ __LINE__, L("ab"), L("\ncd"), 1, 0, 0, 2 },
	{ __LINE__, L(".\r\n"), L(".\r\n"), 0, 0, 0, 1 },	/* no terminator, no unstuffing */
	{ __LINE__, L("..x\r\n"), L(""), 0, 0, 0, 3 },
	{ __LINE__, L("a\0b\r\n"), L("c"), 0, 0, 1, 3 },
	{ __LINE__, L("abc"), L("defgh"), 0, 0, 0, 8 },		/* unterminated last line */
	{ __LINE__, L("\r"), L("\r\n"), 0, 1, 0, 0 },
};

static void test_chunks(void)
{
	for (size_t i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		struct smtp_data_scanner sc;
		smtp_data_scanner_init(&sc);
		smtp_scan_chunk(&sc, chunk_cases[i].a, chunk_cases[i].alen, NULL, 0);
		smtp_scan_chunk(&sc, chunk_cases[i].b, chunk_cases[i].blen, NULL, 0);
		if (sc.bare_lf != chunk_cases[i].bare_lf || sc.bare_cr != chunk_cases[i].bare_cr ||
		    sc.nul != chunk_cases[i].nul || sc.longest_line != chunk_cases[i].longest ||
		    sc.done || sc.bytes != chunk_cases[i].alen + chunk_cases[i].blen) {
			fprintf(stderr, "%s:%d: chunk: lf %d cr %d nul %d longest %zu done %d\n",
				__FILE__, chunk_cases[i].line, sc.bare_lf, sc.bare_cr, sc.nul,
				sc.longest_line, sc.done);
			check_failures++;
		}
	}
}

/* The Received: "with" keyword, every combination (IANA Mail Transmission Types). */
static void test_with_protocol(void)
{
	CHECK_STREQ(smtp_with_protocol(false, false, false, false), "SMTP");
	CHECK_STREQ(smtp_with_protocol(false, true, false, false), "SMTPS");
	CHECK_STREQ(smtp_with_protocol(false, true, true, true), "SMTPS");
	CHECK_STREQ(smtp_with_protocol(true, false, false, false), "ESMTP");
	CHECK_STREQ(smtp_with_protocol(true, true, false, false), "ESMTPS");
	CHECK_STREQ(smtp_with_protocol(true, false, false, true), "ESMTPA");
	CHECK_STREQ(smtp_with_protocol(true, true, false, true), "ESMTPSA");
	CHECK_STREQ(smtp_with_protocol(true, false, true, false), "UTF8SMTP");
	CHECK_STREQ(smtp_with_protocol(true, true, true, false), "UTF8SMTPS");
	CHECK_STREQ(smtp_with_protocol(true, false, true, true), "UTF8SMTPA");
	CHECK_STREQ(smtp_with_protocol(true, true, true, true), "UTF8SMTPSA");
}

int main(void)
{
	test_with_protocol();
	test_commands();
	test_line_clean();
	test_mail_rcpt();
	test_path_domain();
	test_xtext();
	test_reply();
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++)
		run_data_case(&data_cases[i]);
	test_data_random();
	test_data_long();
	test_data_fix();
	test_chunks();
	return check_done();
}
