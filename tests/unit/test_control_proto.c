/*
 * test_control_proto.c - src/control/control_proto.c: the console's request and reply framing
 *
 * Requests: words and blanks, --json anywhere, CR before LF, every refusal
 * (empty, control byte, NUL, 64 words and one more, 4096 bytes); replies:
 * formatted then parsed back, partial status lines, malformed ones, the
 * length cap; the client's word check.
 */
#include <string.h>

#include "check.h"
#include "control/control_proto.h"

/* parse - ctl_request_parse on a copy of s; the words joined with '|' into out, or the error. */
static int parse(const char *s, size_t len, char *out, size_t outlen, bool *json)
{
	static char line[CTL_REQUEST_MAX + 64];
	struct ctl_request req;
	struct str err = STR_INIT;

	memcpy(line, s, len);
	int rc = ctl_request_parse(line, len, &req, &err);
	out[0] = '\0';
	if (rc == 0) {
		for (int i = 0; i < req.argc; i++) {
			if (i)
				strncat(out, "|", outlen - strlen(out) - 1);
			strncat(out, req.argv[i], outlen - strlen(out) - 1);
		}
		CHECK(req.argv[req.argc] == NULL);
		*json = req.json;
	} else {
		strncat(out, str_cstr(&err), outlen - 1);
	}
	str_free(&err);
	return rc;
}

static void test_requests(void)
{
	char out[8192];
	bool json = false;

	CHECK_INTEQ(parse("help", 4, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "help");
	CHECK(!json);
	CHECK_INTEQ(parse("  signing_stats\treset  ", 23, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "signing_stats|reset");
	CHECK_INTEQ(parse("--json pid", 10, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "pid");
	CHECK(json);
	CHECK_INTEQ(parse("help --json x", 13, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "help|x");
	CHECK(json);
	/* "--jsonx" is a word like any other. */
	CHECK_INTEQ(parse("help --jsonx", 12, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "help|--jsonx");
	CHECK(!json);
	/* UTF-8 passes through. */
	CHECK_INTEQ(parse("domain b\xc3\xa4r.test", 16, out, sizeof(out), &json), 0);
	CHECK_STREQ(out, "domain|b\xc3\xa4r.test");

	CHECK_INTEQ(parse("", 0, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "empty request (try \"help\")");
	CHECK_INTEQ(parse(" \t ", 3, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "empty request (try \"help\")");
	CHECK_INTEQ(parse("--json", 6, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "empty request (try \"help\")");
	CHECK_INTEQ(parse("pid\0x", 5, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "control byte 0x00 at offset 3 in the request");
	CHECK_INTEQ(parse("a\rb", 3, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "control byte 0x0d at offset 1 in the request");
	CHECK_INTEQ(parse("a\x7f", 2, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "control byte 0x7f at offset 1 in the request");

	/* 64 words are fine, 65 are not. */
	char words[200];
	size_t n = 0;
	for (int i = 0; i < 65; i++) {
		words[n++] = 'w';
		words[n++] = ' ';
	}
	CHECK_INTEQ(parse(words, 128, out, sizeof(out), &json), 0);
	CHECK_INTEQ(parse(words, 130, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "more than 64 words in the request");

	/* 4095 bytes and the newline fit, one more does not. */
	static char big[CTL_REQUEST_MAX + 8];
	memset(big, 'x', sizeof(big));
	CHECK_INTEQ(parse(big, CTL_REQUEST_MAX - 1, out, sizeof(out), &json), 0);
	CHECK_INTEQ(parse(big, CTL_REQUEST_MAX, out, sizeof(out), &json), -1);
	CHECK_STREQ(out, "request longer than 4096 bytes");
}

static void test_replies(void)
{
	struct str out = STR_INIT;
	bool ok = false;
	size_t body = 0, head = 0;

	ctl_reply_format(&out, true, "hello\n", 6);
	CHECK_INTEQ(out.len, 11);
	CHECK(memcmp(out.s, "OK 6\nhello\n", 11) == 0);
	CHECK_INTEQ(ctl_reply_header_parse(out.s, out.len, &ok, &body, &head), 1);
	CHECK(ok);
	CHECK_INTEQ(body, 6);
	CHECK_INTEQ(head, 5);
	/* Every prefix shorter than the status line asks for more. */
	for (size_t i = 0; i < 5; i++)
		CHECK_INTEQ(ctl_reply_header_parse(out.s, i, &ok, &body, &head), 0);
	str_clear(&out);
	ctl_reply_format(&out, false, "", 0);
	CHECK_INTEQ(ctl_reply_header_parse(out.s, out.len, &ok, &body, &head), 1);
	CHECK(!ok);
	CHECK_INTEQ(body, 0);
	str_free(&out);

	static const char *bad[] = { "OK\n", "OK \n", "ok 1\n", "OK -1\n", "OK 1 \n", "ERR x\n",
				     "OK 99999999999\n", "NO 1\n", " OK 1\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INTEQ(ctl_reply_header_parse(bad[i], strlen(bad[i]), &ok, &body, &head), -1);
	/* No newline within CTL_HEADER_MAX bytes: malformed, not "need more" forever. */
	char longhead[CTL_HEADER_MAX + 4];
	memset(longhead, '1', sizeof(longhead));
	memcpy(longhead, "OK ", 3);
	CHECK_INTEQ(ctl_reply_header_parse(longhead, sizeof(longhead), &ok, &body, &head), -1);
	CHECK_INTEQ(ctl_reply_header_parse(longhead, CTL_HEADER_MAX - 1, &ok, &body, &head), 0);
}

static void test_words(void)
{
	CHECK(ctl_word_ok("signing_stats"));
	CHECK(ctl_word_ok("b\xc3\xa4r"));
	CHECK(!ctl_word_ok(""));
	CHECK(!ctl_word_ok("a b"));
	CHECK(!ctl_word_ok("a\tb"));
	CHECK(!ctl_word_ok("a\nb"));
	CHECK(!ctl_word_ok(NULL));
}

int main(void)
{
	test_requests();
	test_replies();
	test_words();
	return check_done();
}
