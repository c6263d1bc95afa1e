/*
 * test_pickup_file.c - the pickup file's envelope (src/pickup/pickup_file.c)
 * and the address lists `sendmail -t` reads (src/tools/addrlist.c,
 * compiled in: the tools are not in impetus_lib)
 *
 * Table-driven: good files parse to the fields written; each kind of bad
 * file is refused with the line and the reason; format then parse is the
 * identity; NOTIFY lists; address lists with display names, quotes,
 * comments, groups, and Resent- fields.
 */
#include <errno.h>

#include "../../src/tools/addrlist.c"

#include "check.h"
#include "message/envelope.h"
#include "pickup/pickup_file.h"

static void test_good(void)
{
	static const char file[] =
		"IMPETUS-PICKUP 1\nuid: 1000\nsender: alice@host.example\n"
		"rcpt: bob@example.com\nrcpt: carol@example.com\nnotify: success,delay\n"
		"ret: hdrs\nenvid: e1\nbody: 8bitmime\n\nSubject: hi\n\nbody\n";
	struct pickup_file f;
	struct str err = STR_INIT, again = STR_INIT;

	CHECK_INTEQ(pickup_file_parse(file, sizeof(file) - 1, &f, &err), 0);
	CHECK_INTEQ(f.uid, 1000);
	CHECK(f.sender.len == 18 && memcmp(f.sender.s, "alice@host.example", 18) == 0);
	CHECK_INTEQ(f.nrcpts, 2);
	CHECK(f.rcpts[1].len == 17 && memcmp(f.rcpts[1].s, "carol@example.com", 17) == 0);
	CHECK_INTEQ(f.notify, ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_DELAY);
	CHECK_INTEQ(f.ret, ENVELOPE_RET_HDRS);
	CHECK_INTEQ(f.body_type, ENVELOPE_BODY_8BITMIME);
	CHECK(f.envid.len == 2);
	CHECK(f.len == 18 && memcmp(f.data, "Subject: hi\n\nbody\n", 18) == 0);

	/* Written back, it is the same file. */
	pickup_file_format(&again, &f);
	str_append(&again, f.data, f.len);
	CHECK_STREQ(again.s, file);
	pickup_file_free(&f);
	str_free(&err);
	str_free(&again);

	/* The null sender, CRLF lines, no optional field. */
	static const char crlf[] = "IMPETUS-PICKUP 1\r\nsender:\r\nrcpt: x@y\r\n\r\nA: b\r\n\r\nc\r\n";
	CHECK_INTEQ(pickup_file_parse(crlf, sizeof(crlf) - 1, &f, &err), 0);
	CHECK_INTEQ(f.sender.len, 0);
	CHECK_INTEQ(f.uid, -1);
	CHECK_INTEQ(f.notify, 0);
	pickup_file_free(&f);
	str_free(&err);
}

static void test_bad(void)
{
	static const struct {
		const char *in;
		const char *err;
	} cases[] = {
		{ "", "line 1: not a pickup file" },
		{ "IMPETUS-PICKUP 2\nsender: a@b\nrcpt: c@d\n\nx: y\n", "line 1: not a pickup file" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\n", "line 4: the envelope does not end" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d", "line 3: the envelope does not end" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\n\nx: y\n", "no recipient" },
		{ "IMPETUS-PICKUP 1\nrcpt: a@b\n\nx: y\n", "no sender line" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nsender: a@b\nrcpt: c@d\n\nx: y\n", "line 3: bad or repeated sender" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: <c@d>\n\nx: y\n", "line 3: bad recipient" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c d\n\nx: y\n", "line 3: bad recipient" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt:\n\nx: y\n", "line 3: bad recipient" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nnotify: maybe\n\nx: y\n", "line 4: bad notify" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nnotify: never,success\n\nx: y\n", "line 4: bad notify" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nret: some\n\nx: y\n", "line 4: bad ret" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nbody: binarymime\n\nx: y\n", "line 4: bad body" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nuid: -1\n\nx: y\n", "line 4: bad" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nuid: 12345678901\n\nx: y\n", "line 4: bad" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\nfrobnicate: 1\n\nx: y\n", "line 4: unknown envelope field" },
		{ "IMPETUS-PICKUP 1\nsender a@b\n\n", "line 2: no ':'" },
		{ "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\n\n", "no message after the envelope" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pickup_file f;
		struct str err = STR_INIT;
		int rc = pickup_file_parse(cases[i].in, strlen(cases[i].in), &f, &err);

		CHECK_INTEQ(rc, -EINVAL);
		if (err.s == NULL || strstr(err.s, cases[i].err) == NULL) {
			fprintf(stderr, "case %zu: error \"%s\", expected \"%s\"\n", i,
				err.s ? err.s : "", cases[i].err);
			check_failures++;
		}
		pickup_file_free(&f);
		str_free(&err);
	}

	/* A NUL in the message. */
	static const char nul[] = "IMPETUS-PICKUP 1\nsender: a@b\nrcpt: c@d\n\nx: y\n\0z";
	struct pickup_file f;
	struct str err = STR_INIT;
	CHECK_INTEQ(pickup_file_parse(nul, sizeof(nul) - 1, &f, &err), -EINVAL);
	CHECK(strstr(err.s, "NUL") != NULL);
	pickup_file_free(&f);
	str_free(&err);
}

static void test_notify(void)
{
	CHECK_INTEQ(pickup_notify_parse("never", 5), ENVELOPE_NOTIFY_NEVER);
	CHECK_INTEQ(pickup_notify_parse("NEVER", 5), ENVELOPE_NOTIFY_NEVER);
	CHECK_INTEQ(pickup_notify_parse("failure", 7), ENVELOPE_NOTIFY_FAILURE);
	CHECK_INTEQ(pickup_notify_parse("success,failure,delay", 21),
		    ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY);
	CHECK_INTEQ(pickup_notify_parse("success,", 8), -1);
	CHECK_INTEQ(pickup_notify_parse("", 0), -1);
	CHECK_INTEQ(pickup_notify_parse("sometimes", 9), -1);
}

/* addrs - the addresses of s joined by "|". */
static void addrs(const char *s, const char *want, bool ok)
{
	struct strlist l = { 0 };
	struct str got = STR_INIT;
	bool r = addrlist_parse(s, strlen(s), &l);

	for (size_t i = 0; i < l.n; i++)
		str_appendf(&got, "%s%s", i ? "|" : "", l.v[i]);
	if (strcmp(got.s ? got.s : "", want) != 0 || r != ok) {
		fprintf(stderr, "addrlist_parse(\"%s\") = \"%s\" (%d), expected \"%s\" (%d)\n", s,
			got.s ? got.s : "", r, want, ok);
		check_failures++;
	}
	str_free(&got);
	strlist_free(&l);
}

static void test_addrlist(void)
{
	addrs("a@b", "a@b", true);
	addrs("Alice <alice@example.com>, bob@example.com", "alice@example.com|bob@example.com", true);
	addrs("\"Bob, Jr\" <bob@example.com>", "bob@example.com", true);
	addrs("carol@example.com (Carol, the (nested) one)", "carol@example.com", true);
	addrs("team: a@x, b@y;, c@z", "a@x|b@y|c@z", true);
	addrs("undisclosed-recipients:;", "", true);
	addrs("root", "root", true);
	addrs("\"quoted local\"@example.com", "\"quoted local\"@example.com", true);
	addrs("A <a@b", "a@b", false);
	addrs("\"open", "", false);
	addrs(" , ,", "", true);

	static const char msg[] = "To: a@x\nCc: B <b@y>,\n c@z\nBcc: d@w\nSubject: s\n\nTo: not@body\n";
	struct strlist l = { 0 };
	header_rcpts(msg, sizeof(msg) - 1, &l);
	CHECK_INTEQ(l.n, 4);
	if (l.n == 4) {
		CHECK_STREQ(l.v[0], "a@x");
		CHECK_STREQ(l.v[2], "c@z");
		CHECK_STREQ(l.v[3], "d@w");
	}
	strlist_free(&l);
	static const char resent[] = "To: a@x\nResent-To: r@x\nSubject: s\n\nbody\n";
	header_rcpts(resent, sizeof(resent) - 1, &l);
	CHECK_INTEQ(l.n, 1);
	if (l.n == 1)
		CHECK_STREQ(l.v[0], "r@x");
	strlist_free(&l);
}

int main(void)
{
	test_good();
	test_bad();
	test_notify();
	test_addrlist();
	return check_done();
}
