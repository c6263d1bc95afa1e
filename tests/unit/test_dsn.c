/*
 * test_dsn.c - RFC 5322 helpers and DSN (bounce) rendering
 *
 * Table-driven checks of the helpers, then bounces rendered for the cases
 * an MTA meets (failure, delay, success; RET=FULL/HDRS; each
 * Bounces_Inline_Original mode; hostile replies and originals). Each
 * rendered bounce is also handed to dsn_check.py, which parses it with
 * Python's email package and prints what it read, so the test proves a
 * real parser reads our bounces, not only that our bytes look right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/str.h"
#include "message/dsn.h"
#include "message/rfc5322.h"

#define T0 1700000000	/* Tue, 14 Nov 2023 22:13:20 +0000 */

/* ============================================================ helpers */

/* contains - does hay contain needle? Reports the miss with the caller's line. */
static bool contains_at(const char *hay, const char *needle, int line)
{
	if (hay && strstr(hay, needle))
		return true;
	fprintf(stderr, "%s:%d: missing \"%s\" in:\n%s\n", __FILE__, line, needle, hay);
	check_failures++;
	return false;
}
#define CONTAINS(hay, needle) contains_at((hay), (needle), __LINE__)

static bool lacks_at(const char *hay, const char *needle, int line)
{
	if (!hay || !strstr(hay, needle))
		return true;
	fprintf(stderr, "%s:%d: unexpected \"%s\" in:\n%s\n", __FILE__, line, needle, hay);
	check_failures++;
	return false;
}
#define LACKS(hay, needle) lacks_at((hay), (needle), __LINE__)

static char script[4096];

/*
 * find_script - dsn_check.py in the working directory (ctest runs in
 * tests/unit) or next to this source file. A missing script is a failure:
 * the Python reader is the point of these tests.
 */
static void find_script(void)
{
	if (access("dsn_check.py", R_OK) == 0) {
		snprintf(script, sizeof(script), "dsn_check.py");
		return;
	}
	const char *slash = strrchr(__FILE__, '/');
	int dir = slash ? (int)(slash - __FILE__) : 0;
	snprintf(script, sizeof(script), "%.*s%sdsn_check.py", dir, __FILE__,
		 slash ? "/" : "");
	if (access(script, R_OK) != 0) {
		fprintf(stderr, "%s: cannot find dsn_check.py (run in tests/unit)\n",
			__FILE__);
		check_failures++;
		script[0] = '\0';
	}
}

/*
 * py_check - write the bounce to a temporary file, run dsn_check.py on it
 * and append its output to result. Returns the script's exit status.
 */
static int py_check(const struct str *dsn, struct str *result, int line)
{
	char path[] = "/tmp/test_dsn.XXXXXX";

	if (script[0] == '\0')
		return -1;
	int fd = mkstemp(path);

	if (fd < 0) {
		perror("mkstemp");
		check_failures++;
		return -1;
	}
	if (write(fd, dsn->s, dsn->len) != (ssize_t)dsn->len) {
		perror("write");
		check_failures++;
	}
	close(fd);

	char cmd[8300];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -B '%s' '%s'", script, path);
	FILE *p = popen(cmd, "r");
	if (p == NULL) {
		perror("popen");
		check_failures++;
		unlink(path);
		return -1;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		str_append(result, buf, n);
	int rc = pclose(p);
	unlink(path);
	if (rc != 0) {
		fprintf(stderr, "%s:%d: dsn_check.py failed (status %d) on:\n%s\n",
			__FILE__, line, rc, str_cstr(dsn));
		check_failures++;
	}
	return rc;
}

/* ========================================================= rfc5322 */

static void test_dates(void)
{
	char buf[RFC5322_DATE_SIZE];

	CHECK_STREQ(rfc5322_format_date(0, false, buf), "Thu, 01 Jan 1970 00:00:00 +0000");
	CHECK_STREQ(rfc5322_format_date(T0, false, buf), "Tue, 14 Nov 2023 22:13:20 +0000");
	CHECK_STREQ(rfc5322_format_date(951782400, false, buf), "Tue, 29 Feb 2000 00:00:00 +0000");

	/* local time with a fixed zone, whatever the machine's zone is */
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	setenv("TZ", "EST5", 1);
	tzset();
	CHECK_STREQ(rfc5322_format_date(T0, true, buf), "Tue, 14 Nov 2023 17:13:20 -0500");
	setenv("TZ", "IST-5:30", 1);
	tzset();
	CHECK_STREQ(rfc5322_format_date(T0, true, buf), "Wed, 15 Nov 2023 03:43:20 +0530");
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

static void test_header_end(void)
{
	static const struct {
		const char *msg;
		size_t hdr_end, body;
	} t[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody\r\n", 12, 14 },
		{ "A: 1\nB: 2\n\nbody\n", 10, 11 },
		{ "Subject: x\r\n folded\r\n\tagain\r\nB: 2\r\n\r\n", 35, 37 },
		{ "\r\nbody only\r\n", 0, 2 },
		{ "A: 1\r\nB: 2\r\n", 12, 12 },		/* no body, no blank line */
		{ "A: 1\r\nB: 2", 10, 10 },		/* no final line end */
		{ "A: 1\r\nthis is body text\r\n", 6, 6 },	/* body without blank line */
		{ " leading continuation\r\n\r\n", 0, 0 },
		{ "Old : obsolete space\r\n\r\nx", 22, 24 },
		{ "From me Tue Nov 14\r\nA: 1\r\n\r\n", 0, 0 },	/* mbox line is not a field */
		{ "", 0, 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = strlen(t[i].msg);
		CHECK_INTEQ(rfc5322_header_end(t[i].msg, len), t[i].hdr_end);
		CHECK_INTEQ(rfc5322_body_start(t[i].msg, len), t[i].body);
	}
}

static void test_fields(void)
{
	const char *h = "Received: from a\r\n\tby b\r\n"
			"Subject: hello\r\n  world \r\n"
			"X-Empty:\r\n"
			"Message-ID: <1@x>\r\n"
			"received: second\r\n"
			"\r\nbody: not a field\r\n";
	size_t len = strlen(h);
	struct str v = STR_INIT;

	CHECK(rfc5322_header_get(h, len, "subject", &v));
	CHECK_STREQ(str_cstr(&v), "hello  world");
	str_clear(&v);
	CHECK(rfc5322_header_get(h, len, "RECEIVED", &v));
	CHECK_STREQ(str_cstr(&v), "from a\tby b");
	str_clear(&v);
	CHECK(rfc5322_header_get(h, len, "X-Empty", &v));
	CHECK_STREQ(str_cstr(&v), "");
	str_clear(&v);
	CHECK(!rfc5322_header_get(h, len, "body", &v));
	CHECK(!rfc5322_header_get(h, len, "Message", &v));
	CHECK(!rfc5322_header_get(h, len, "Message-ID:", &v));

	/* walking: five fields, in order, the walk stops at the blank line */
	size_t pos = 0, n = 0;
	struct rfc5322_field f;
	const char *names[] = { "Received", "Subject", "X-Empty", "Message-ID", "received" };
	while (rfc5322_field_next(h, len, &pos, &f)) {
		if (n < 5)
			CHECK(f.name_len == strlen(names[n]) &&
			      memcmp(f.name, names[n], f.name_len) == 0);
		n++;
	}
	CHECK_INTEQ(n, 5);

	/* unfolding keeps the white space, drops the line breaks */
	str_clear(&v);
	rfc5322_unfold(" a\r\n b\n\tc\r\n", 11, &v);
	CHECK_STREQ(str_cstr(&v), "a b\tc");
	str_free(&v);
}

/* fold_check - fold a value, check line lengths and that it unfolds back. */
static void fold_check(const char *value, bool exact, int line)
{
	struct str out = STR_INIT, back = STR_INIT;

	rfc5322_fold_field(&out, "Diagnostic-Code", value);
	const char *p = out.s;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		if (e == NULL) {
			fprintf(stderr, "%s:%d: no CRLF at end\n", __FILE__, line);
			check_failures++;
			break;
		}
		size_t ll = (size_t)(e - p);
		const char *sp = memchr(p + 1, ' ', ll > 0 ? ll - 1 : 0);
		/* a line may pass 78 only when it is one unbreakable word */
		if (ll > RFC5322_LINE_HARD || (ll > RFC5322_LINE_SOFT && sp && exact)) {
			fprintf(stderr, "%s:%d: line of %zu chars\n", __FILE__, line, ll);
			check_failures++;
		}
		p = e + 2;
	}
	size_t hl = strlen("Diagnostic-Code:");
	rfc5322_unfold(out.s + hl, out.len - hl, &back);
	if (exact && strcmp(str_cstr(&back), value) != 0) {
		fprintf(stderr, "%s:%d: unfolded \"%s\"\n%*s expected \"%s\"\n",
			__FILE__, line, str_cstr(&back), 0, "", value);
		check_failures++;
	}
	str_free(&out);
	str_free(&back);
}

static void test_fold(void)
{
	struct str out = STR_INIT;

	rfc5322_fold_field(&out, "Status", "5.1.1");
	CHECK_STREQ(str_cstr(&out), "Status: 5.1.1\r\n");
	str_free(&out);

	fold_check("smtp; 550 5.1.1 short", true, __LINE__);
	fold_check("smtp; 550-5.1.1 The email account that you tried to reach does "
		   "not exist. Please try double-checking the recipient's email "
		   "address for typos or unnecessary spaces. For more information, "
		   "go to https://support.example.com/mail/?p=NoSuchUser "
		   "a1b2c3d4e5f6.12 - gsmtp", true, __LINE__);

	/* one word longer than the hard limit is cut (value gains a space) */
	char big[2600];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "smtp; 550 ", 10);
	fold_check(big, false, __LINE__);
	rfc5322_fold_field(&out, "X", big);
	CHECK(out.len > sizeof(big));
	str_free(&out);
}

/* =========================================================== statuses */

static void test_status(void)
{
	static const struct {
		int code;
		const char *text;
		bool perm;
		const char *want;
	} t[] = {
		{ 550, "550 5.1.1 user unknown", true, "5.1.1" },
		{ 550, "5.1.1 user unknown", true, "5.1.1" },
		{ 550, "550-5.7.26 unauthenticated", true, "5.7.26" },
		{ 552, "552 5.3.4 Message size exceeds fixed limit", true, "5.3.4" },
		{ 550, "550 5.1.10 RESOLVER.ADR.RecipientNotFound", true, "5.1.10" },
		{ 550, "550 user unknown", true, "5.0.0" },
		{ 550, "550 4.2.2 wrong class", true, "5.0.0" },	/* class must agree */
		{ 451, "451 4.7.1 greylisted", false, "4.7.1" },
		{ 421, "421 Service not available", false, "4.0.0" },
		{ 250, "250 2.0.0 Ok: queued as ABC", false, "2.0.0" },
		{ 250, "250 ok", false, "2.0.0" },
		{ 550, "550 5.1.1234 too many digits", true, "5.0.0" },
		{ 550, "550 5.1.1user glued", true, "5.0.0" },
		{ 550, NULL, true, "5.0.0" },
		{ 0, "5.4.7 message expired", true, "5.4.7" },
		{ 0, "Host or domain name not found", true, "5.0.0" },
		{ 0, "connect to mx: Connection refused", false, "4.0.0" },
		{ 0, "4.4.1 no answer", true, "5.0.0" },		/* disagrees with permanent */
		{ 0, "", false, "4.0.0" },
		{ 999, "999 9.9.9 junk", true, "5.0.0" },
	};
	char buf[DSN_STATUS_SIZE];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *got = dsn_status_from_reply(t[i].code, t[i].text, t[i].perm, buf);
		if (strcmp(got, t[i].want) != 0) {
			fprintf(stderr, "%s:%d: case %zu (%d \"%s\"): \"%s\", expected \"%s\"\n",
				__FILE__, __LINE__, i, t[i].code,
				t[i].text ? t[i].text : "(null)", got, t[i].want);
			check_failures++;
		}
	}
}

static void test_wanted(void)
{
	static const struct {
		const char *sender;
		uint8_t notify;
		const char *action;
		bool want;
	} t[] = {
		{ "a@b", 0, "failed", true },
		{ "a@b", 0, "delayed", true },
		{ "a@b", 0, "delivered", false },
		{ "a@b", 0, "relayed", false },
		{ "", 0, "failed", false },			/* never to <> */
		{ NULL, 0, "failed", false },
		{ "a@b", ENVELOPE_NOTIFY_NEVER, "failed", false },
		{ "a@b", ENVELOPE_NOTIFY_NEVER, "delayed", false },
		{ "a@b", ENVELOPE_NOTIFY_SUCCESS, "failed", false },
		{ "a@b", ENVELOPE_NOTIFY_SUCCESS, "delivered", true },
		{ "a@b", ENVELOPE_NOTIFY_SUCCESS, "relayed", true },
		{ "a@b", ENVELOPE_NOTIFY_SUCCESS, "expanded", true },
		{ "a@b", ENVELOPE_NOTIFY_FAILURE, "failed", true },
		{ "a@b", ENVELOPE_NOTIFY_FAILURE, "delayed", false },
		{ "a@b", ENVELOPE_NOTIFY_DELAY, "delayed", true },
		{ "a@b", ENVELOPE_NOTIFY_DELAY, "failed", false },
		{ "a@b", ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY, "FAILED", true },
		{ "a@b", ENVELOPE_NOTIFY_FAILURE, "bogus", false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (dsn_wanted(t[i].sender, t[i].notify, t[i].action) != t[i].want) {
			fprintf(stderr, "%s:%d: dsn_wanted case %zu: got %d\n",
				__FILE__, __LINE__, i, !t[i].want);
			check_failures++;
		}
	}
}

/* ========================================================== rendering */

static const char orig_msg[] =
	"Return-Path: <alice@example.org>\r\n"
	"From: Alice <alice@example.org>\r\n"
	"To: bob@example.net\r\n"
	"Subject: Quarterly report\r\n"
	"Message-ID: <q3@example.org>\r\n"
	"\r\n"
	"Hello Bob,\r\n"
	"the numbers are attached.\r\n";

/* base_info - a one-recipient failure report the cases below vary. */
static void base_info(struct dsn_info *info, struct dsn_rcpt *r)
{
	memset(r, 0, sizeof(*r));
	r->addr = "bob@example.net";
	r->orcpt = "rfc822;bob@example.net";
	r->action = "failed";
	r->status = "5.1.1";
	r->remote_mta = "mx1.example.net";
	r->diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: "
			"User unknown in virtual mailbox table";
	r->last_attempt = T0 + 60;

	memset(info, 0, sizeof(*info));
	info->reporting_mta = "mail.example.com";
	info->from = "MAILER-DAEMON@mail.example.com";
	info->to = "alice@example.org";
	info->envid = "QQ314159";
	info->orig_msg_id = "0005F0A1B2C3D4E5";
	info->arrival = T0;
	info->ret = ENVELOPE_RET_NONE;
	info->inline_mode = DSN_INLINE_HEADERS;
	info->orig = orig_msg;
	info->orig_len = sizeof(orig_msg) - 1;
	info->nrcpt = 1;
	info->rcpts = r;
	info->now = T0 + 120;
	info->message_id = "<0005F0A1B2C3D4F0@mail.example.com>";
}

/* The whole bounce for base_info with Bounces_Inline_Original = none. */
static const char golden[] =
	"From: Mail Delivery System <MAILER-DAEMON@mail.example.com>\r\n"
	"To: <alice@example.org>\r\n"
	"Subject: Undelivered Mail Returned to Sender\r\n"
	"Date: Tue, 14 Nov 2023 22:15:20 +0000\r\n"
	"Message-ID: <0005F0A1B2C3D4F0@mail.example.com>\r\n"
	"Auto-Submitted: auto-replied\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/report; report-type=delivery-status;\r\n"
	"\tboundary=\"impetus-dsn=0005F0A1B2C3D4F0mail.example.com\"\r\n"
	"\r\n"
	"This is a MIME-encapsulated message.\r\n"
	"\r\n"
	"--impetus-dsn=0005F0A1B2C3D4F0mail.example.com\r\n"
	"Content-Description: Notification\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"This is the mail delivery system at mail.example.com.\r\n"
	"\r\n"
	"Your message could not be delivered to one or more of its recipients.\r\n"
	"Delivery to them has been given up for good; the message will not be\r\n"
	"retried for them.\r\n"
	"\r\n"
	"The message (queue id 0005F0A1B2C3D4E5) was received on Tue, 14 Nov 2023\r\n"
	"22:13:20 +0000.\r\n"
	"\r\n"
	"<bob@example.net>: delivery failed permanently\r\n"
	"    Remote host: mx1.example.net\r\n"
	"    Reason: 550 5.1.1 <bob@example.net>: Recipient address rejected:\r\n"
	"        User unknown in virtual mailbox table\r\n"
	"\r\n"
	"The delivery report is attached.\r\n"
	"\r\n"
	"--impetus-dsn=0005F0A1B2C3D4F0mail.example.com\r\n"
	"Content-Description: Delivery report\r\n"
	"Content-Type: message/delivery-status\r\n"
	"\r\n"
	"Original-Envelope-Id: QQ314159\r\n"
	"Reporting-MTA: dns; mail.example.com\r\n"
	"Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	"X-Impetus-Queue-ID: 0005F0A1B2C3D4E5\r\n"
	"\r\n"
	"Original-Recipient: rfc822;bob@example.net\r\n"
	"Final-Recipient: rfc822; bob@example.net\r\n"
	"Action: failed\r\n"
	"Status: 5.1.1\r\n"
	"Remote-MTA: dns; mx1.example.net\r\n"
	"Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address\r\n"
	" rejected: User unknown in virtual mailbox table\r\n"
	"Last-Attempt-Date: Tue, 14 Nov 2023 22:14:20 +0000\r\n"
	"\r\n"
	"--impetus-dsn=0005F0A1B2C3D4F0mail.example.com--\r\n";

static void test_render_golden(void)
{
	struct dsn_info info;
	struct dsn_rcpt r;
	struct str out = STR_INIT, res = STR_INIT;

	base_info(&info, &r);
	info.inline_mode = DSN_INLINE_NONE;
	dsn_render(&info, &out);
	if (strcmp(str_cstr(&out), golden) != 0) {
		fprintf(stderr, "%s:%d: golden mismatch, got:\n%s\n", __FILE__,
			__LINE__, str_cstr(&out));
		check_failures++;
	}
	py_check(&out, &res, __LINE__);
	const char *s = str_cstr(&res);
	CONTAINS(s, "content-type=multipart/report\n");
	CONTAINS(s, "report-type=delivery-status\n");
	CONTAINS(s, "subject=Undelivered Mail Returned to Sender\n");
	CONTAINS(s, "auto-submitted=auto-replied\n");
	CONTAINS(s, "part.0=text/plain\n");
	CONTAINS(s, "part.1=message/delivery-status\n");
	LACKS(s, "part.2=");
	CONTAINS(s, "msg.reporting-mta=dns; mail.example.com\n");
	CONTAINS(s, "msg.original-envelope-id=QQ314159\n");
	CONTAINS(s, "msg.arrival-date=Tue, 14 Nov 2023 22:13:20 +0000\n");
	CONTAINS(s, "rcpt.0.original-recipient=rfc822;bob@example.net\n");
	CONTAINS(s, "rcpt.0.final-recipient=rfc822; bob@example.net\n");
	CONTAINS(s, "rcpt.0.action=failed\n");
	CONTAINS(s, "rcpt.0.status=5.1.1\n");
	CONTAINS(s, "rcpt.0.remote-mta=dns; mx1.example.net\n");
	/* folded on the wire, one line again for the reader */
	CONTAINS(s, "rcpt.0.diagnostic-code=smtp; 550 5.1.1 <bob@example.net>: "
		    "Recipient address rejected: User unknown in virtual mailbox table\n");
	CONTAINS(s, "rcpt.0.last-attempt-date=Tue, 14 Nov 2023 22:14:20 +0000\n");
	LACKS(s, "rcpt.0.will-retry-until");
	str_free(&out);
	str_free(&res);
}

/* render_check - render, run the Python reader, return its output in res. */
static void render_check(const struct dsn_info *info, struct str *out,
			 struct str *res, int line)
{
	str_clear(out);
	str_clear(res);
	dsn_render(info, out);
	py_check(out, res, line);
}

static void test_render_orig_modes(void)
{
	struct dsn_info info;
	struct dsn_rcpt r;
	struct str out = STR_INIT, res = STR_INIT;

	/* default inline mode: the header only, as text/rfc822-headers */
	base_info(&info, &r);
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "part.2=text/rfc822-headers\n");
	CONTAINS(res.s, "orig.headers=5\n");
	CONTAINS(res.s, "orig.subject=Quarterly report\n");
	LACKS(out.s, "the numbers are attached");
	LACKS(out.s, "Content-Transfer-Encoding");

	/* inline all: the whole message */
	info.inline_mode = DSN_INLINE_ALL;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "part.2=message/rfc822\n");
	CONTAINS(res.s, "orig.subject=Quarterly report\n");
	CONTAINS(out.s, "the numbers are attached.\r\n");
	CONTAINS(out.s, "The delivery report and your original message are attached.\r\n");

	/* RET=HDRS beats inline all */
	info.ret = ENVELOPE_RET_HDRS;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "part.2=text/rfc822-headers\n");
	LACKS(out.s, "the numbers are attached");

	/* RET=FULL beats inline none */
	info.ret = ENVELOPE_RET_FULL;
	info.inline_mode = DSN_INLINE_NONE;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "part.2=message/rfc822\n");
	CONTAINS(out.s, "the numbers are attached.\r\n");

	/* no RET, inline none: two parts */
	info.ret = ENVELOPE_RET_NONE;
	render_check(&info, &out, &res, __LINE__);
	LACKS(res.s, "part.2=");
	CONTAINS(out.s, "The delivery report is attached.");

	/* no original bytes at all: two parts whatever is asked */
	info.ret = ENVELOPE_RET_FULL;
	info.orig = NULL;
	info.orig_len = 0;
	render_check(&info, &out, &res, __LINE__);
	LACKS(res.s, "part.2=");

	/* 8-bit original in full: declared 8bit; report parts stay 7-bit */
	static const char orig8[] = "From: J\xc3\xbcrgen <j@example.de>\r\n"
				    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
				    "\r\nGr\xc3\xbc\xc3\x9f" "e\r\n";
	info.orig = orig8;
	info.orig_len = sizeof(orig8) - 1;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "Content-Type: message/rfc822\r\n"
			"Content-Transfer-Encoding: 8bit\r\n\r\n");
	CONTAINS(res.s, "orig.subject=Gr\xc3\xbc\xc3\x9f" "e\n");

	/* bare LF and bare CR originals come out CRLF, final line end added */
	static const char lf[] = "Subject: lf\nX: 1\r\rbody line\nlast";
	info.orig = lf;
	info.orig_len = sizeof(lf) - 1;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "Subject: lf\r\nX: 1\r\n\r\nbody line\r\nlast\r\n");
	CONTAINS(res.s, "orig.subject=lf\n");

	/* an original that is all header and no blank line */
	static const char hdr_only[] = "Subject: only headers\r\nX-A: 1\r\n";
	info.orig = hdr_only;
	info.orig_len = sizeof(hdr_only) - 1;
	info.ret = ENVELOPE_RET_HDRS;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "orig.headers=2\n");

	str_free(&out);
	str_free(&res);
}

static void test_render_delay(void)
{
	struct dsn_info info;
	struct dsn_rcpt r;
	struct str out = STR_INIT, res = STR_INIT;

	base_info(&info, &r);
	r.action = "delayed";
	r.status = "4.4.1";
	r.diagnostic = "connect to mx1.example.net[192.0.2.25]:25: Connection timed out";
	r.will_retry_until = T0 + 5 * 86400;
	info.ret = ENVELOPE_RET_FULL;	/* a delay notice still gets the header only */
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "subject=Delayed Mail (still being retried)\n");
	CONTAINS(res.s, "rcpt.0.action=delayed\n");
	CONTAINS(res.s, "rcpt.0.status=4.4.1\n");
	CONTAINS(res.s, "rcpt.0.will-retry-until=Sun, 19 Nov 2023 22:13:20 +0000\n");
	/* not an SMTP reply: our own diagnostic type */
	CONTAINS(res.s, "rcpt.0.diagnostic-code=X-Impetus; connect to mx1.example.net");
	CONTAINS(res.s, "part.2=text/rfc822-headers\n");
	CONTAINS(out.s, "    Will be retried until Sun, 19 Nov 2023 22:13:20 +0000\r\n");
	CONTAINS(out.s, "This is only a warning");

	/* Will-Retry-Until belongs to delays only */
	r.action = "failed";
	r.status = NULL;
	render_check(&info, &out, &res, __LINE__);
	LACKS(res.s, "will-retry-until");
	CONTAINS(res.s, "rcpt.0.status=5.0.0\n");	/* derived from the action */
	CONTAINS(res.s, "part.2=message/rfc822\n");

	str_free(&out);
	str_free(&res);
}

static void test_render_success_and_many(void)
{
	struct dsn_info info;
	struct dsn_rcpt r[4];
	struct str out = STR_INIT, res = STR_INIT;

	base_info(&info, &r[0]);
	r[0].action = "delivered";
	r[0].status = "2.0.0";
	r[0].diagnostic = "250 2.0.0 Ok: queued as 4SZ1bX0abcz1";
	info.envid = NULL;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "subject=Successful Mail Delivery Report\n");
	CONTAINS(res.s, "rcpt.0.action=delivered\n");
	LACKS(res.s, "original-envelope-id");
	CONTAINS(res.s, "part.2=text/rfc822-headers\n");

	/* four recipients, mixed: a failure report listing all of them */
	r[1] = r[0];
	r[1].addr = "carol@example.net";
	r[1].orcpt = NULL;
	r[1].action = "delayed";
	r[1].status = "4.2.2";
	r[1].diagnostic = "452 4.2.2 Mailbox full";
	r[1].will_retry_until = T0 + 86400;
	r[2] = r[0];
	r[2].addr = "dave@example.net";
	r[2].orcpt = "dave@example.net";	/* no type: taken as rfc822 */
	r[2].action = "failed";
	r[2].status = "5.7.1";
	r[2].diagnostic = "554 5.7.1 Service unavailable; Client host [192.0.2.1] "
			  "blocked using zen.example.org";
	r[3] = r[0];
	r[3].addr = "eve@example.net";
	r[3].action = "relayed";
	r[3].status = NULL;
	r[3].remote_mta = NULL;
	r[3].diagnostic = NULL;
	r[3].last_attempt = 0;
	info.nrcpt = 4;
	info.rcpts = r;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "subject=Undelivered Mail Returned to Sender\n");
	CONTAINS(res.s, "rcpt.1.final-recipient=rfc822; carol@example.net\n");
	CONTAINS(res.s, "rcpt.1.will-retry-until=");
	LACKS(res.s, "rcpt.1.original-recipient");
	CONTAINS(res.s, "rcpt.2.original-recipient=rfc822;dave@example.net\n");
	CONTAINS(res.s, "rcpt.2.status=5.7.1\n");
	CONTAINS(res.s, "rcpt.3.action=relayed\n");
	CONTAINS(res.s, "rcpt.3.status=2.0.0\n");
	LACKS(res.s, "rcpt.3.remote-mta");
	LACKS(res.s, "rcpt.3.diagnostic-code");
	LACKS(res.s, "rcpt.3.last-attempt-date");
	LACKS(res.s, "rcpt.4.");
	CONTAINS(res.s, "text.has-recipients=4\n");

	str_free(&out);
	str_free(&res);
}

static void test_render_hostile(void)
{
	struct dsn_info info;
	struct dsn_rcpt r;
	struct str out = STR_INIT, res = STR_INIT;

	/*
	 * A multi-line Gmail-style reply, with control and 8-bit bytes
	 * mixed in: one clean line, the repeated prefixes dropped.
	 */
	base_info(&info, &r);
	r.diagnostic = "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
		       "550-5.1.1 Please try double-checking the recipient's email\r\n"
		       "550 5.1.1 address \x01\x1b[31mfor typos \xff\xfe.\r\n";
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "rcpt.0.diagnostic-code=smtp; 550-5.1.1 The email account that "
			"you tried to reach does not exist. Please try double-checking "
			"the recipient's email address [31mfor typos ??.\n");

	/* a boundary in the original or the reply is avoided */
	static const char evil[] =
		"Subject: evil\r\n\r\n"
		"--impetus-dsn=0005F0A1B2C3D4F0mail.example.com\r\n"
		"Content-Type: message/delivery-status\r\n\r\n"
		"Reporting-MTA: dns; forged\r\n"
		"--impetus-dsn=0005F0A1B2C3D4F0mail.example.com.1--\r\n";
	info.orig = evil;
	info.orig_len = sizeof(evil) - 1;
	info.inline_mode = DSN_INLINE_ALL;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "boundary=\"impetus-dsn=0005F0A1B2C3D4F0mail.example.com.2\"");
	CONTAINS(res.s, "msg.reporting-mta=dns; mail.example.com\n");
	CONTAINS(res.s, "part.2=message/rfc822\n");
	LACKS(res.s, "part.3=");

	/* a caller-given boundary is kept when it is safe */
	info.boundary = "fixed/boundary";
	info.orig = orig_msg;
	info.orig_len = sizeof(orig_msg) - 1;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "boundary=\"fixed/boundary\"");

	/* CR/LF and 8-bit in addresses, ids and host names never leak */
	info.boundary = NULL;
	info.to = "al\r\nBcc: x@evil\r\n@example.org";
	info.envid = "env\r\nid\xc3\xa9";
	r.addr = "j\xc3\xbcrgen@example.de";
	r.orcpt = "utf-8;j\xc3\xbcrgen@example.de";
	r.remote_mta = "mx\r\n.example.de";
	info.orig_msg_id = "ID\n1";
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "\r\nTo: <al+0D+0ABcc: x@evil+0D+0A@example.org>\r\n");
	CONTAINS(res.s, "msg.original-envelope-id=env+0D+0Aid+C3+A9\n");
	CONTAINS(res.s, "rcpt.0.final-recipient=rfc822; j+C3+BCrgen@example.de\n");
	CONTAINS(res.s, "rcpt.0.original-recipient=utf-8;j+C3+BCrgen@example.de\n");
	CONTAINS(res.s, "rcpt.0.remote-mta=dns; mx??.example.de\n");
	CONTAINS(res.s, "msg.x-impetus-queue-id=ID?1\n");
	CONTAINS(res.s, "header-names=From,To,Subject,Date,Message-ID,Auto-Submitted,"
			"MIME-Version,Content-Type\n");

	/* long unbreakable tokens: lines still within the limits */
	char longword[1500];
	memset(longword, 'a', sizeof(longword) - 1);
	longword[sizeof(longword) - 1] = '\0';
	memcpy(longword, "550 5.1.1 ", 10);
	r.diagnostic = longword;
	r.addr = "averyveryveryveryveryveryveryveryveryveryveryveryveryverylonglocalpart"
		 "@averyveryveryveryveryverylongdomain.example.com";
	info.to = "sender@example.org";
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "rcpt.0.status=5.1.1\n");

	/* an empty recipient list and missing optional strings still parse */
	memset(&info, 0, sizeof(info));
	info.to = "a@b.example";
	info.now = T0;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(out.s, "From: Mail Delivery System <MAILER-DAEMON@localhost>\r\n");
	CONTAINS(res.s, "msg.reporting-mta=dns; localhost\n");
	LACKS(out.s, "Message-ID:");

	str_free(&out);
	str_free(&res);
}

/* no_bare_crlf - every CR is followed by LF and every LF preceded by CR. */
static bool no_bare_crlf(const struct str *s)
{
	for (size_t i = 0; i < s->len; i++) {
		if (s->s[i] == '\r' && (i + 1 >= s->len || s->s[i + 1] != '\n'))
			return false;
		if (s->s[i] == '\n' && (i == 0 || s->s[i - 1] != '\r'))
			return false;
	}
	return true;
}

/*
 * test_random - random messages and replies built from the bytes that
 * matter to the parsers (line ends, colons, blanks, 8-bit, NUL): the
 * helpers stay in bounds (ASan watches) and every bounce is pure CRLF.
 */
static void test_random(void)
{
	static const char alphabet[] = "ab:- \t\r\n\r\n5.1\x80\xff";
	unsigned seed = 12345;
	char msg[300], diag[200];
	struct str out = STR_INIT;

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0, dl = 0;
		seed = seed * 1103515245u + 12345u;
		size_t want = (seed >> 16) % sizeof(msg);
		for (len = 0; len < want; len++) {
			seed = seed * 1103515245u + 12345u;
			msg[len] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
			if (((seed >> 8) & 0xff) == 0)
				msg[len] = '\0';
		}
		seed = seed * 1103515245u + 12345u;
		size_t dwant = (seed >> 16) % (sizeof(diag) - 1);
		for (dl = 0; dl < dwant; dl++) {
			seed = seed * 1103515245u + 12345u;
			diag[dl] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		diag[dl] = '\0';

		size_t h = rfc5322_header_end(msg, len);
		size_t b = rfc5322_body_start(msg, len);
		CHECK(h <= len && b >= h && b <= len);
		size_t pos = 0, nf = 0;
		struct rfc5322_field f;
		while (rfc5322_field_next(msg, h, &pos, &f)) {
			CHECK(pos <= h && f.value + f.value_len <= msg + h);
			if (++nf > len)
				break;
		}
		CHECK(nf <= len);

		struct dsn_info info;
		struct dsn_rcpt r;
		base_info(&info, &r);
		info.orig = msg;
		info.orig_len = len;
		info.inline_mode = (int)(seed % 3);
		info.ret = (uint8_t)((seed >> 3) % 3);
		r.diagnostic = diag;
		r.addr = diag;
		str_clear(&out);
		dsn_render(&info, &out);
		if (!no_bare_crlf(&out)) {
			fprintf(stderr, "%s:%d: iteration %d: bare CR or LF\n",
				__FILE__, __LINE__, iter);
			check_failures++;
			break;
		}
	}
	str_free(&out);
}

/* utf8_addr - dsn_utf8_addr of in, as a C string in buf. */
static const char *utf8_addr(const char *in, struct str *buf)
{
	str_clear(buf);
	dsn_utf8_addr(in, buf);
	return str_cstr(buf);
}

/* RFC 6533 unitext formatting, table-driven: what stays, what is escaped. */
static void test_utf8_addr(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "alice@example.com", "alice@example.com" },
		{ "\xc3\xa5lice@example.com", "\xc3\xa5lice@example.com" },
		{ "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
		  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a" },
		{ "\xf0\x9f\x98\x80@x.example", "\xf0\x9f\x98\x80@x.example" },
		{ "a+b=c@x", "a\\x{2B}b\\x{3D}c@x" },
		{ "a b@x", "a\\x{20}b@x" },
		{ "a\\b@x", "a\\x{5C}b@x" },
		{ "a\\x{E5}b@x", "a\\x{E5}b@x" },	/* embedded form kept */
		{ "a\\x{}b@x", "a\\x{5C}x{}b@x" },	/* not a valid one */
		{ "a\r\nb@x", "a\\x{0D}\\x{0A}b@x" },
		{ "\xc3@x", "\\x{C3}@x" },		/* truncated sequence */
		{ "\xc0\xaf@x", "\\x{C0}\\x{AF}@x" },	/* overlong */
		{ "\xed\xa0\x80@x", "\\x{ED}\\x{A0}\\x{80}@x" },	/* surrogate */
		{ "\xf4\x90\x80\x80@x", "\\x{F4}\\x{90}\\x{80}\\x{80}@x" },	/* > U+10FFFF */
		{ "\x7f@x", "\\x{7F}@x" },
		{ "", "" },
	};
	struct str buf = STR_INIT;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_STREQ(utf8_addr(cases[i].in, &buf), cases[i].want);
	static const struct {
		const char *in, *want;
	} xt[] = {
		{ "alice@example.com", "alice@example.com" },
		{ "\xc3\xa5lice@x", "\\x{E5}lice@x" },
		{ "\xe7\x94\xa8@x", "\\x{7528}@x" },
		{ "\xf0\x9f\x98\x80@x", "\\x{1F600}@x" },
		{ "a+b=c d@x", "a\\x{2B}b\\x{3D}c\\x{20}d@x" },
		{ "a\\x{E5}@x", "a\\x{E5}@x" },
		{ "\xc3@x", "\\x{C3}@x" },
	};
	for (size_t i = 0; i < sizeof(xt) / sizeof(xt[0]); i++) {
		str_clear(&buf);
		dsn_utf8_addr_xtext(xt[i].in, &buf);
		CHECK_STREQ(str_cstr(&buf), xt[i].want);
	}
	CHECK(dsn_is_ascii("abc"));
	CHECK(dsn_is_ascii(NULL));
	CHECK(!dsn_is_ascii("\xc3\xa5"));
	str_free(&buf);
}

/*
 * A bounce of an SMTPUTF8 message: RFC 6533's global report, utf-8
 * address types with raw UTF-8, read back by Python's email package.
 */
static void test_render_utf8(void)
{
	static const char orig_utf8[] =
		"From: \xc3\x85sa <\xc3\xa5sa@example.org>\r\n"
		"To: \xc3\xa5lice@example.com\r\n"
		"Subject: R\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s\r\n"
		"\r\n"
		"Hej!\r\n";
	struct dsn_info info;
	struct dsn_rcpt r[2];
	struct str out = STR_INIT, res = STR_INIT;

	base_info(&info, &r[0]);
	r[0].addr = "\xc3\xa5lice@example.com";
	r[0].orcpt = "utf-8;\xc3\xa5lice@example.com";
	r[1] = r[0];
	r[1].addr = "bob@example.net";
	r[1].orcpt = "rfc822;bob@example.net";
	info.nrcpt = 2;
	info.rcpts = r;
	info.to = "\xc3\xa5sa@example.org";
	info.orig = orig_utf8;
	info.orig_len = sizeof(orig_utf8) - 1;
	CHECK(dsn_needs_utf8(&info, true));
	info.utf8 = true;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "report-type=global-delivery-status\n");
	CONTAINS(res.s, "part.1=message/global-delivery-status\n");
	CONTAINS(res.s, "part.2=message/global-headers\n");
	CONTAINS(res.s, "rcpt.0.final-recipient=utf-8; \xc3\xa5lice@example.com\n");
	CONTAINS(res.s, "rcpt.0.original-recipient=utf-8; \xc3\xa5lice@example.com\n");
	CONTAINS(res.s, "rcpt.1.final-recipient=rfc822; bob@example.net\n");
	CONTAINS(res.s, "rcpt.0.action=failed\n");
	CONTAINS(res.s, "orig.subject=R\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s\n");
	CONTAINS(res.s, "to=\xc3\xa5sa@example.org\n");
	CONTAINS(out.s, "<\xc3\xa5lice@example.com>: delivery failed permanently");
	LACKS(out.s, "+C3+A5");

	/* the whole original: message/global */
	info.ret = ENVELOPE_RET_FULL;
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "part.2=message/global\n");

	/* the same report without utf8: 7-bit, xtext, as before */
	info.utf8 = false;
	info.ret = ENVELOPE_RET_NONE;
	info.to = "asa@example.org";
	render_check(&info, &out, &res, __LINE__);
	CONTAINS(res.s, "report-type=delivery-status\n");
	CONTAINS(res.s, "rcpt.0.final-recipient=rfc822; +C3+A5lice@example.com\n");

	/* ASCII addresses: global only for an SMTPUTF8 original with 8-bit headers */
	r[0].addr = "alice@example.com";
	r[0].orcpt = NULL;
	CHECK(dsn_needs_utf8(&info, true));
	CHECK(!dsn_needs_utf8(&info, false));
	info.orig = orig_msg;
	info.orig_len = sizeof(orig_msg) - 1;
	CHECK(!dsn_needs_utf8(&info, true));

	str_free(&out);
	str_free(&res);
}

int main(void)
{
	find_script();
	test_dates();
	test_header_end();
	test_fields();
	test_fold();
	test_status();
	test_wanted();
	test_render_golden();
	test_render_orig_modes();
	test_render_delay();
	test_render_success_and_many();
	test_render_hostile();
	test_random();
	test_utf8_addr();
	test_render_utf8();
	return check_done();
}
