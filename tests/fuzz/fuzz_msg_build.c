/*
 * fuzz_msg_build.c - libFuzzer target for the transmission message builder
 *
 * msg_build (src/message/msg_build.c) turns JSON from HTTP clients into
 * the bytes of a message that goes to the spool and on to other MTAs; a
 * mistake there crashes the listener or sends a malformed message.
 * Properties, abort() on the first violation:
 *   - a refusal names a field under "content" or "address", says why,
 *     and leaves the output as it was;
 *   - an accepted message is CRLF-only (no bare CR or LF), no line passes
 *     998 octets, it ends with CRLF, and it parses back as a header
 *     section of fields (rfc5322_field_next covers it exactly) followed
 *     by an empty line; a built (not email_rfc822) message starts with
 *     From: and has exactly one MIME-Version;
 *   - building twice gives the same bytes.
 *
 * Input: byte 0 picks the mode and the recipient's address. Even: the
 * rest is the content as JSON. Odd: the rest is raw bytes (not UTF-8
 * checked) cut at the first two NULs into subject, display name and
 * text/html, to reach the encoders with any byte.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_msg_build -runs=100000
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "core/str.h"
#include "message/msg_build.h"
#include "message/rfc5322.h"

#include "fuzz.h"

/* check_message - the properties of an accepted message. */
static void check_message(const struct str *m, bool built)
{
	size_t line = 0, pos = 0, he, bs, last = 0;
	struct rfc5322_field f;
	int mime = 0;

	MUST(m->len >= 2 && memcmp(m->s + m->len - 2, "\r\n", 2) == 0);
	for (size_t i = 0; i < m->len; i++) {
		if (m->s[i] == '\r') {
			MUST(i + 1 < m->len && m->s[i + 1] == '\n');
			i++;
			line = 0;
		} else {
			MUST(m->s[i] != '\n');
			MUST(++line <= RFC5322_LINE_HARD);
		}
	}
	he = rfc5322_header_end(m->s, m->len);
	bs = rfc5322_body_start(m->s, m->len);
	MUST(he > 0 && bs == he + 2 && memcmp(m->s + he, "\r\n", 2) == 0);
	while (rfc5322_field_next(m->s, he, &pos, &f)) {
		MUST(f.name == m->s + last);
		if (f.name_len == 12 && strncasecmp(f.name, "MIME-Version", 12) == 0)
			mime++;
		last = pos;
	}
	MUST(last == he);
	if (built) {
		MUST(strncmp(m->s, "From: ", 6) == 0);
		MUST(mime == 1);
	}
}

/* address - the recipient's address variant k. */
static json_t *address(unsigned k)
{
	switch (k % 4) {
	case 0:
		return json_string("rcpt@example.org");
	case 1:
		return json_pack("{s:s}", "email", "rcpt@example.org");
	case 2:
		return json_pack("{s:s,s:s}", "email", "rcpt@example.org", "name", "J\xc3\xb6rg \"x\"");
	default:
		return json_pack("{s:s,s:s}", "email", "r@example.org", "header_to",
				 "Team <team@example.org>, r@example.org");
	}
}

/* raw_content - {from, subject, text, html} from raw bytes (see the file header). */
static json_t *raw_content(const uint8_t *d, size_t n)
{
	const uint8_t *z1 = memchr(d, 0, n), *z2 = NULL;
	size_t a = z1 ? (size_t)(z1 - d) : n, b0 = z1 ? a + 1 : n, b1;

	if (z1)
		z2 = memchr(d + b0, 0, n - b0);
	b1 = z2 ? (size_t)(z2 - d) : n;
	size_t c0 = z2 ? b1 + 1 : n;
	json_t *from = json_object();
	json_object_set_new(from, "email", json_string("a@example.com"));
	json_object_set_new(from, "name", json_stringn_nocheck((const char *)d + b0, b1 - b0));
	json_t *c = json_object();
	json_object_set_new(c, "from", from);
	json_object_set_new(c, "subject", json_stringn_nocheck((const char *)d, a));
	json_object_set_new(c, "text", json_stringn_nocheck((const char *)d + c0, n - c0));
	json_object_set_new(c, "html", json_stringn_nocheck((const char *)d + c0, n - c0));
	json_object_set_new(c, "headers", json_pack("{s:o}", "X-Raw",
						   json_stringn_nocheck((const char *)d, a)));
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_build_opts o = { .hostname = "mx.example.net", .unique = "F1", .now = 1700000000 };
	struct msg_build_err err;
	struct str a = STR_INIT, b = STR_INIT;
	json_t *content, *addr;
	int r;

	if (size < 1 || size > 256 * 1024)
		return 0;
	if (data[0] & 1) {
		content = raw_content(data + 1, size - 1);
	} else {
		content = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
		if (content == NULL)
			return 0;
	}
	addr = address(data[0] >> 1);
	str_appends(&a, "pre");
	r = msg_build(content, addr, &o, &a, &err);
	if (r < 0) {
		MUST(r == -EINVAL);
		MUST(a.len == 3);
		MUST(strncmp(err.field, "content", 7) == 0 || strncmp(err.field, "address", 7) == 0);
		MUST(err.text[0] != '\0');
	} else {
		struct str m = STR_INIT;

		MUST(r == 0);
		str_append(&m, a.s + 3, a.len - 3);
		check_message(&m, json_object_get(content, "email_rfc822") == NULL);
		MUST(msg_build(content, addr, &o, &b, &err) == 0);
		MUST(b.len == m.len && memcmp(b.s, m.s, m.len) == 0);
		str_free(&m);
	}
	json_decref(content);
	json_decref(addr);
	str_free(&a);
	str_free(&b);
	return 0;
}
