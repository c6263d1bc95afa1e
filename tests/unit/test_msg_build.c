/*
 * test_msg_build.c - the transmission message builder (src/message/msg_build.c)
 * and the MIME base64 codec (src/core/base64.c)
 *
 * Structure and edge cases here: which header fields and parts come out,
 * the transfer encoding picked for each kind of text, line lengths,
 * folding and RFC 2047 words, and every refusal with its field path.
 * Decoding by an independent parser is tests/integration/test_msg_build.py,
 * which runs this binary as a tool: "test_msg_build --build" reads
 * {"content", "address", "hostname", "unique", "now"} on stdin and writes
 * the message to stdout, or "field: text" to stderr and exits 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "core/base64.h"
#include "core/str.h"
#include "message/msg_build.h"

/* longest - the longest CRLF-delimited line of s; bare CR or LF counts against it (huge). */
static size_t longest(const struct str *s)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < s->len; i++) {
		if (s->s[i] == '\r' && i + 1 < s->len && s->s[i + 1] == '\n') {
			best = cur > best ? cur : best;
			cur = 0;
			i++;
		} else if (s->s[i] == '\r' || s->s[i] == '\n') {
			return (size_t)-1;
		} else {
			cur++;
		}
	}
	return cur > best ? cur : best;
}

/* build - msg_build of two JSON texts into out; the result code. */
static int build(const char *content, const char *address, struct str *out,
		 struct msg_build_err *err)
{
	json_error_t je;
	json_t *c = json_loads(content, 0, &je), *a = json_loads(address, JSON_DECODE_ANY, &je);
	struct msg_build_opts o = { .hostname = "mx.example.net", .unique = "ABC123", .now = 0 };
	int r;

	if (c == NULL || a == NULL) {
		fprintf(stderr, "bad test JSON: %s\n", je.text);
		abort();
	}
	r = msg_build(c, a, &o, out, err);
	json_decref(c);
	json_decref(a);
	return r;
}

/* has - does the message contain needle? */
static bool has(const struct str *s, const char *needle)
{
	return memmem(s->s, s->len, needle, strlen(needle)) != NULL;
}

#define TO "{\"email\":\"rcpt@example.org\",\"name\":\"R. Cpt\"}"

static void test_text_only(void)
{
	struct str out = STR_INIT;
	struct msg_build_err err;

	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"Hi\",\"text\":\"Hello\\nworld\"}",
			  TO, &out, &err), 0);
	CHECK(strncmp(out.s, "From: a@example.com\r\nTo: \"R. Cpt\" <rcpt@example.org>\r\n"
		      "Subject: Hi\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\n"
		      "Message-ID: <ABC123@mx.example.net>\r\nMIME-Version: 1.0\r\n", 140) == 0);
	CHECK(has(&out, "Content-Type: text/plain; charset=utf-8\r\n"
		  "Content-Transfer-Encoding: 7bit\r\n\r\nHello\r\nworld\r\n"));
	CHECK(out.len >= 2 && memcmp(out.s + out.len - 2, "\r\n", 2) == 0);
	CHECK(!has(&out, "multipart"));
	CHECK(longest(&out) <= 78);
	str_free(&out);
}

static void test_alternative_related_mixed(void)
{
	struct str out = STR_INIT;
	struct msg_build_err err;

	CHECK_INTEQ(build("{\"from\":{\"email\":\"a@example.com\",\"name\":\"Ann\"},\"subject\":\"S\","
			  "\"text\":\"t\",\"html\":\"<img src=\\\"cid:logo\\\">\","
			  "\"inline_images\":[{\"name\":\"logo\",\"type\":\"image/png\",\"data\":\"iVBORw==\"}],"
			  "\"attachments\":[{\"name\":\"a.txt\",\"type\":\"text/plain\",\"data\":\"aGVsbG8=\"}]}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "From: Ann <a@example.com>\r\n"));
	CHECK(has(&out, "Content-Type: multipart/mixed;\r\n boundary=\"=_imp_m_ABC123\"\r\n"));
	CHECK(has(&out, "Content-Type: multipart/alternative;\r\n boundary=\"=_imp_a_ABC123\"\r\n"));
	CHECK(has(&out, "Content-Type: multipart/related;\r\n boundary=\"=_imp_r_ABC123\"\r\n"));
	CHECK(has(&out, "Content-ID: <logo>\r\n"));
	CHECK(has(&out, "Content-Disposition: inline;\r\n filename=\"logo\"\r\n"));
	CHECK(has(&out, "Content-Disposition: attachment;\r\n filename=\"a.txt\"\r\n"));
	CHECK(has(&out, "\r\n\r\naGVsbG8=\r\n--=_imp_m_ABC123--\r\n"));
	/* nesting order: mixed opens before alternative, which opens before related */
	const char *m = memmem(out.s, out.len, "--=_imp_m_", 10), *a = memmem(out.s, out.len, "--=_imp_a_", 10),
		   *r = memmem(out.s, out.len, "--=_imp_r_", 10);
	CHECK(m && a && r && m < a && a < r);
	CHECK(memcmp(out.s + out.len - 19, "--=_imp_m_ABC123--\r\n", 19) == 0 ||
	      has(&out, "--=_imp_m_ABC123--\r\n"));
	str_free(&out);

	/* html only: text/html leaf, no multipart */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\",\"html\":\"<b>x</b>\"}",
			  "\"r@example.org\"", &out, &err), 0);
	CHECK(has(&out, "To: <r@example.org>\r\n"));
	CHECK(has(&out, "Content-Type: text/html; charset=utf-8\r\n"));
	CHECK(!has(&out, "multipart"));
	str_free(&out);
}

static void test_encodings(void)
{
	struct str out = STR_INIT, c = STR_INIT;
	struct msg_build_err err;

	/* mostly ASCII with accents: quoted-printable */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\",\"text\":\"caf\\u00e9 au lait\"}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 au lait=\r\n"));
	str_free(&out);

	/* mostly non-ASCII (Japanese): base64 */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\","
			  "\"text\":\"\\u65e5\\u672c\\u8a9e\\u306e\\u30c6\\u30ad\\u30b9\\u30c8\"}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "Content-Transfer-Encoding: base64\r\n"));
	str_free(&out);

	/* "=_" in ASCII text: quoted-printable, so no boundary can appear */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\",\"text\":\"--=_imp_a_ABC123\","
			  "\"html\":\"x\"}", TO, &out, &err), 0);
	CHECK(has(&out, "--=3D_imp_a_ABC123"));
	CHECK(has(&out, "Content-Transfer-Encoding: 7bit\r\n\r\nx\r\n--=_imp_a_ABC123--"));
	str_free(&out);

	/* a 3000-octet line: quoted-printable, every line within 76 */
	str_appends(&c, "{\"from\":\"a@example.com\",\"subject\":\"S\",\"text\":\"");
	for (int i = 0; i < 3000; i++)
		str_appendc(&c, 'x');
	str_appends(&c, "\"}");
	CHECK_INTEQ(build(c.s, TO, &out, &err), 0);
	CHECK(has(&out, "quoted-printable"));
	CHECK(longest(&out) <= 78);
	str_free(&out);
	str_free(&c);

	/* non-ASCII subject and names: encoded-words, folded within 78 */
	CHECK_INTEQ(build("{\"from\":{\"email\":\"a@example.com\",\"name\":\"J\\u00f6rg M\\u00fcller\"},"
			  "\"subject\":\"R\\u00e9sum\\u00e9 of the quarterly r\\u00e9sultats and a long tail "
			  "of plain words that must fold somewhere sensible ok\",\"text\":\"t\"}",
			  "{\"email\":\"r@example.org\",\"name\":\"\\u5c71\\u7530\"}", &out, &err), 0);
	CHECK(has(&out, "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <a@example.com>\r\n"));
	CHECK(has(&out, "Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9?= of the quarterly\r\n =?UTF-8?Q?r=C3=A9sultats?= and"));
	CHECK(has(&out, "To: =?UTF-8?B?5bGx55Sw?= <r@example.org>\r\n"));
	CHECK(longest(&out) <= 78);
	str_free(&out);

	/* a display name with a word too long for a line: encoded (and cut), not broken */
	str_appends(&c, "{\"from\":{\"email\":\"a@example.com\",\"name\":\"");
	for (int i = 0; i < 300; i++)
		str_appendc(&c, 'n');
	str_appends(&c, "\"},\"subject\":\"S\",\"text\":\"t\"}");
	CHECK_INTEQ(build(c.s, TO, &out, &err), 0);
	CHECK(has(&out, "From: =?UTF-8?Q?nnnn"));
	CHECK(longest(&out) <= 78);
	str_free(&out);
	str_free(&c);

	/* an ASCII subject that looks like an encoded-word is encoded, so it reads back as typed */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"=?UTF-8?Q?x?=\",\"text\":\"t\"}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "Subject: =?UTF-8?"));
	CHECK(!has(&out, "Subject: =?UTF-8?Q?x?=\r\n"));
	str_free(&out);

	/* RFC 2231 file names */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":"
			  "[{\"name\":\"r\\u00e9sum\\u00e9.pdf\",\"type\":\"application/pdf\",\"data\":\"\"}]}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "filename*0*=UTF-8''r%C3%A9sum%C3%A9.pdf"));
	str_free(&out);

	/* user headers: kept, non-ASCII encoded, Cc as an address list */
	CHECK_INTEQ(build("{\"from\":\"a@example.com\",\"subject\":\"S\",\"text\":\"t\",\"headers\":"
			  "{\"X-Tag\":\"caf\\u00e9\",\"CC\":\"Z\\u00f6e <z@example.org>, y@example.org\"}}",
			  TO, &out, &err), 0);
	CHECK(has(&out, "X-Tag: =?UTF-8?Q?caf=C3=A9?=\r\n"));
	CHECK(has(&out, "CC: =?UTF-8?Q?Z=C3=B6e?= <z@example.org>, y@example.org\r\n"));
	str_free(&out);
}

/* refused - the content is refused with exactly this field, and out is untouched. */
static void refused(const char *content, const char *address, const char *field, const char *text)
{
	struct str out = STR_INIT;
	struct msg_build_err err;

	str_appends(&out, "keep");
	int r = build(content, address, &out, &err);
	CHECK_INTEQ(r, -EINVAL);
	CHECK_STREQ(err.field, field);
	if (text != NULL && strstr(err.text, text) == NULL) {
		fprintf(stderr, "error text \"%s\" lacks \"%s\"\n", err.text, text);
		check_failures++;
	}
	CHECK_INTEQ(out.len, 4);
	str_free(&out);
}

static void test_refusals(void)
{
	refused("[]", TO, "content", "object");
	refused("{\"subject\":\"S\",\"text\":\"t\"}", TO, "content.from", "required");
	refused("{\"from\":\"nobody\",\"subject\":\"S\",\"text\":\"t\"}", TO, "content.from", "address");
	refused("{\"from\":{\"name\":\"x\"},\"subject\":\"S\",\"text\":\"t\"}", TO, "content.from.email", NULL);
	refused("{\"from\":\"a@b\",\"subject\":\"S\\r\\nBcc: x@y\",\"text\":\"t\"}", TO, "content.subject",
		"CR or LF");
	refused("{\"from\":\"a@b\",\"text\":\"t\"}", TO, "content.subject", "required");
	refused("{\"from\":\"a@b\",\"subject\":\"S\"}", TO, "content", "text, html");
	refused("{\"from\":\"a@b\",\"subject\":5,\"text\":\"t\"}", TO, "content.subject", "string");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"headers\":{\"from\":\"x@y\"}}", TO,
		"content.headers.from", "may not be set");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"headers\":{\"Message-Id\":\"<x@y>\"}}",
		TO, "content.headers.Message-Id", NULL);
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"headers\":{\"X-A\":\"v\\nX-B: w\"}}",
		TO, "content.headers.X-A", "CR or LF");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"headers\":{\"X A\":\"v\"}}", TO,
		"content.headers.X A", "field name");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"headers\":{\"X-A\":1}}", TO,
		"content.headers.X-A", "string");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":[{\"name\":\"a\","
		"\"type\":\"text/plain\",\"data\":\"aGVsbG8=\"},{\"name\":\"b\",\"type\":\"text/plain\","
		"\"data\":\"a$Vs\"}]}", TO, "content.attachments[1].data", "offset 1");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":[{\"name\":\"a\","
		"\"type\":\"text/plain\",\"data\":\"aGVsb\"}]}", TO, "content.attachments[0].data", "base64");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":[{\"name\":\"a\","
		"\"type\":\"textplain\",\"data\":\"\"}]}", TO, "content.attachments[0].type", "MIME type");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":[{\"name\":\"a\","
		"\"type\":\"multipart/mixed\",\"data\":\"\"}]}", TO, "content.attachments[0].type", NULL);
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":[{\"type\":\"a/b\","
		"\"data\":\"\"}]}", TO, "content.attachments[0].name", "required");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"attachments\":{}}", TO,
		"content.attachments", "array");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\",\"inline_images\":[{\"name\":\"l\","
		"\"type\":\"image/png\",\"data\":\"\"}]}", TO, "content.inline_images", "html");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"html\":\"h\",\"inline_images\":[{\"name\":\"a b\","
		"\"type\":\"image/png\",\"data\":\"\"}]}", TO, "content.inline_images[0].name", "Content-ID");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\"}", "{\"name\":\"x\"}", "address.email",
		"required");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\"}", "{\"email\":\"a b@c\"}", "address.email",
		"not an address");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\"}",
		"{\"email\":\"r@c\",\"header_to\":\"x@y\\r\\nBcc: z@w\"}", "address.header_to", "CR or LF");
	refused("{\"from\":\"a@b\",\"subject\":\"S\",\"text\":\"t\"}", "7", "address", NULL);
	refused("{\"template_id\":\"t\"}", TO, "content.template_id", "not supported");
	refused("{\"email_rfc822\":\"no header here\"}", TO, "content.email_rfc822", "header");
	refused("{\"email_rfc822\":\"Subject: x\\nbody? no blank\"}", TO, "content.email_rfc822", NULL);
	refused("{\"email_rfc822\":\"Subject: x\\n\\nb\",\"text\":\"t\"}", TO, "content.text", "email_rfc822");
}

static void test_rfc822(void)
{
	struct str out = STR_INIT;
	struct msg_build_err err;

	CHECK_INTEQ(build("{\"email_rfc822\":\"Subject: x\\nFrom: a@b\\n\\nline\\rtwo\"}", TO, &out, &err), 0);
	CHECK_STREQ(out.s, "Subject: x\r\nFrom: a@b\r\n\r\nline\r\ntwo\r\n");
	str_free(&out);
}

static void test_base64(void)
{
	struct str out = STR_INIT;
	size_t bad = 0;

	base64_encode("hello world, this is a fairly long line of text to wrap at 16", 61, 16, &out);
	CHECK(strncmp(out.s, "aGVsbG8gd29ybGQs\r\nIHRoaXMgaXMgYSBm", 34) == 0);
	struct str dec = STR_INIT;
	CHECK(base64_decode(out.s, out.len, &dec, &bad));
	CHECK_INTEQ(dec.len, 61);
	CHECK(memcmp(dec.s, "hello world", 11) == 0);
	str_clear(&dec);
	CHECK(base64_decode("aGk", 3, &dec, &bad));	/* unpadded */
	CHECK_STREQ(dec.s, "hi");
	str_clear(&dec);
	CHECK(!base64_decode("aGk=x", 5, &dec, &bad));
	CHECK_INTEQ(bad, 4);
	CHECK(!base64_decode("a", 1, &dec, &bad));
	CHECK_INTEQ(bad, 1);
	CHECK(!base64_decode("a===", 4, &dec, &bad));
	CHECK(!base64_decode("aG=", 3, &dec, &bad));
	CHECK_INTEQ(dec.len, 0);
	str_free(&dec);
	str_free(&out);
}

/* tool - the --build mode for tests/integration/test_msg_build.py. */
static int tool(void)
{
	json_error_t je;
	json_t *in = json_loadf(stdin, 0, &je);
	struct msg_build_err err;
	struct str out = STR_INIT;

	if (in == NULL) {
		fprintf(stderr, "input: %s\n", je.text);
		return 1;
	}
	struct msg_build_opts o = {
		.hostname = json_string_value(json_object_get(in, "hostname")),
		.unique = json_string_value(json_object_get(in, "unique")),
		.now = json_integer_value(json_object_get(in, "now")),
	};
	if (o.hostname == NULL)
		o.hostname = "localhost";
	if (msg_build(json_object_get(in, "content"), json_object_get(in, "address"), &o, &out,
		      &err) < 0) {
		fprintf(stderr, "%s: %s\n", err.field, err.text);
		str_free(&out);	/* truncated back, but it may hold a buffer */
		json_decref(in);
		return 2;
	}
	fwrite(out.s, 1, out.len, stdout);
	str_free(&out);
	json_decref(in);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--build") == 0)
		return tool();
	test_text_only();
	test_alternative_related_mixed();
	test_encodings();
	test_refusals();
	test_rfc822();
	test_base64();
	return check_done();
}
