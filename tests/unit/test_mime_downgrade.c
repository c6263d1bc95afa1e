/*
 * test_mime_downgrade.c - quoted-printable encoding and the 8bit -> 7bit
 * MIME downgrade of the SMTP client
 *
 * Table-driven checks of mime_qp_encode against hand-written encodings,
 * a round trip of random bytes through it and an independent decoder
 * written here from RFC 2045 6.7 (line lengths checked too), then whole
 * messages through mime_downgrade: plain, multipart (only the 8-bit part
 * changes), nested, digest, enclosures, parts that must stay as they
 * are, and hostile structure (no boundary, no closing delimiter, deep
 * nesting).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/str.h"
#include "message/mime_downgrade.h"

/* qp - mime_qp_encode of a C string, as a C string in buf. */
static const char *qp(const char *in, struct str *buf)
{
	str_clear(buf);
	mime_qp_encode(in, strlen(in), buf);
	return str_cstr(buf);
}

/* hexval - the value of a hex digit, -1 if it is not one. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * qp_decode - RFC 2045 6.7 decoding, strict: every line ends in CRLF or
 * the end, no line passes 76, "=" is followed by two upper-case hex
 * digits or ends the line (soft break), no 8-bit or control byte, no
 * blank at a line end. Returns false on any violation.
 */
static bool qp_decode(const char *p, size_t n, struct str *out)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				return false;
			if (i > 0 && (p[i - 1] == ' ' || p[i - 1] == '\t'))
				return false;
			str_appends(out, "\r\n");
			i++;
			col = 0;
			continue;
		}
		if (++col > MIME_QP_LINE_MAX)
			return false;
		if (c == '=') {
			if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				i += 2;	/* soft line break */
				col = 0;
				continue;
			}
			if (i + 2 >= n)
				return false;
			int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			str_appendc(out, (char)(hi * 16 + lo));
			i += 2;
			col += 2;
			if (col > MIME_QP_LINE_MAX)
				return false;
			continue;
		}
		if (c >= 0x7f || (c < 32 && c != '\t'))
			return false;
		str_appendc(out, (char)c);
	}
	if (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		return false;
	return true;
}

static void test_qp_table(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "", "" },
		{ "hello", "hello" },
		{ "caf\xc3\xa9", "caf=C3=A9" },
		{ "a=b", "a=3Db" },
		{ "trailing \r\nx", "trailing=20\r\nx" },
		{ "tab\t\r\n", "tab=09\r\n" },
		{ "end ", "end=20" },
		{ "mid space", "mid space" },
		{ "bare\nlf", "bare\r\nlf" },
		{ "bare\rcr", "bare=0Dcr" },
		{ "nul\x00", "nul" },	/* strlen stops: the NUL case is in the round trip */
		{ "\x7f", "=7F" },
		{ ".dot", ".dot" },
	};
	struct str buf = STR_INIT;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_STREQ(qp(cases[i].in, &buf), cases[i].want);

	/* a long line: soft breaks, no line over 76, decodes back */
	char line[300];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	qp(line, &buf);
	CHECK(strstr(buf.s, "=\r\n") != NULL);
	struct str dec = STR_INIT;
	CHECK(qp_decode(buf.s, buf.len, &dec));
	CHECK_STREQ(str_cstr(&dec), line);

	/* an encoded token is never split by a soft break */
	char utf[200] = "";
	for (int i = 0; i < 60; i++)
		strcat(utf, "\xc3\xa9");
	qp(utf, &buf);
	str_clear(&dec);
	CHECK(qp_decode(buf.s, buf.len, &dec));
	CHECK_STREQ(str_cstr(&dec), utf);
	str_free(&dec);
	str_free(&buf);
}

/* Random bytes (with line breaks) survive encode + strict decode. */
static void test_qp_random(void)
{
	struct str enc = STR_INIT, dec = STR_INIT, want = STR_INIT;
	unsigned seed = 12345;

	for (int round = 0; round < 2000; round++) {
		char in[400];
		size_t n = (size_t)(rand_r(&seed) % sizeof(in));
		for (size_t i = 0; i < n; i++) {
			int r = rand_r(&seed) % 16;
			in[i] = r == 0 ? '\n' : r == 1 ? ' ' : r == 2 ? '\r' :
				r < 8 ? (char)(rand_r(&seed) % 256) : (char)('a' + r);
		}
		str_clear(&enc);
		str_clear(&dec);
		str_clear(&want);
		mime_qp_encode(in, n, &enc);
		CHECK(!mime_has_8bit(enc.s ? enc.s : "", enc.len));
		if (!qp_decode(enc.s ? enc.s : "", enc.len, &dec)) {
			fprintf(stderr, "round %d: strict decoder refused:\n%s\n", round,
				str_cstr(&enc));
			check_failures++;
			break;
		}
		/* what decoding must give: the input with each line break as CRLF */
		for (size_t i = 0; i < n; i++) {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
				str_appends(&want, "\r\n");
				i++;
			} else if (in[i] == '\n') {
				str_appends(&want, "\r\n");
			} else {
				str_appendc(&want, in[i]);
			}
		}
		if (dec.len != want.len || (dec.len && memcmp(dec.s, want.s, dec.len) != 0)) {
			fprintf(stderr, "round %d: round trip differs\n", round);
			check_failures++;
			break;
		}
	}
	str_free(&enc);
	str_free(&dec);
	str_free(&want);
}

/* down - mime_downgrade of a C string; *changed set; the result as a C string in buf. */
static const char *down(const char *in, bool *changed, struct str *buf)
{
	str_clear(buf);
	*changed = mime_downgrade(in, strlen(in), buf);
	return str_cstr(buf);
}

static void test_downgrade(void)
{
	struct str buf = STR_INIT;
	bool ch;

	/* 7-bit: an exact copy, not changed */
	const char *plain = "Subject: hi\r\n\r\nhello\r\n";
	CHECK_STREQ(down(plain, &ch, &buf), plain);
	CHECK(!ch);

	/* 8-bit headers only: left as they are */
	const char *hdr8 = "Subject: R\xc3\xa4ksm\xc3\xb6rg\xc3\xa5s\r\n\r\nhello\r\n";
	CHECK_STREQ(down(hdr8, &ch, &buf), hdr8);
	CHECK(!ch);

	/* not MIME, 8-bit body: MIME-Version and the encoding added */
	CHECK_STREQ(down("Subject: x\r\n\r\ncaf\xc3\xa9\r\n", &ch, &buf),
		    "Subject: x\r\nMIME-Version: 1.0\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n");
	CHECK(ch);

	/* declared 8bit: the field replaced, where it was dropped */
	CHECK_STREQ(down("MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n\r\n\xc3\xa5\r\n", &ch, &buf),
		    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A5\r\n");
	CHECK(ch);

	/* base64 with a stray 8-bit byte: malformed, left alone */
	const char *b64 = "MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nAA\xff\r\n";
	CHECK_STREQ(down(b64, &ch, &buf), b64);
	CHECK(!ch);

	/* multipart: only the 8-bit part changes; delimiters and the base64 part stay */
	const char *mp =
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
		"\r\n"
		"preamble\r\n"
		"--b1\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n"
		"gr\xc3\xbc\xc3\x9f dich\r\n"
		"--b1\r\n"
		"Content-Type: application/octet-stream\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"AAEC\r\n"
		"--b1--\r\n"
		"epilogue\r\n";
	CHECK_STREQ(down(mp, &ch, &buf),
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
		"\r\n"
		"preamble\r\n"
		"--b1\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"gr=C3=BC=C3=9F dich\r\n"
		"--b1\r\n"
		"Content-Type: application/octet-stream\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"AAEC\r\n"
		"--b1--\r\n"
		"epilogue\r\n");
	CHECK(ch);

	/* nested multipart and an enclosed message declared 8bit */
	const char *nest =
		"Content-Type: multipart/mixed; boundary=outer\r\n"
		"\r\n"
		"--outer\r\n"
		"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
		"\r\n"
		"--inner\r\n"
		"\r\n"
		"\xc3\xa9t\xc3\xa9\r\n"
		"--inner--\r\n"
		"--outer\r\n"
		"Content-Type: message/rfc822\r\n"
		"Content-Transfer-Encoding: 8bit\r\n"
		"\r\n"
		"Subject: inside\r\n"
		"\r\n"
		"na\xc3\xafve\r\n"
		"--outer--\r\n";
	CHECK_STREQ(down(nest, &ch, &buf),
		"Content-Type: multipart/mixed; boundary=outer\r\n"
		"\r\n"
		"--outer\r\n"
		"Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
		"\r\n"
		"--inner\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"=C3=A9t=C3=A9\r\n"
		"--inner--\r\n"
		"--outer\r\n"
		"Content-Type: message/rfc822\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"\r\n"
		"Subject: inside\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"na=C3=AFve\r\n"
		"--outer--\r\n");
	CHECK(ch);

	/* message/global (RFC 6532) is a leaf: encoded whole, UTF-8 headers included */
	const char *glob =
		"Content-Type: multipart/report; report-type=global-delivery-status; boundary=r\r\n"
		"\r\n"
		"--r\r\n"
		"Content-Type: message/global-headers\r\n"
		"\r\n"
		"Subject: \xc3\xa5\r\n"
		"--r--\r\n";
	CHECK_STREQ(down(glob, &ch, &buf),
		"Content-Type: multipart/report; report-type=global-delivery-status; boundary=r\r\n"
		"\r\n"
		"--r\r\n"
		"Content-Type: message/global-headers\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"Subject: =C3=A5\r\n"
		"--r--\r\n");
	CHECK(ch);

	/* multipart/digest: a part without Content-Type is a message */
	const char *dig =
		"Content-Type: multipart/digest; boundary=d\r\n"
		"\r\n"
		"--d\r\n"
		"\r\n"
		"Subject: one\r\n"
		"\r\n"
		"\xe2\x82\xac\r\n"
		"--d--\r\n";
	down(dig, &ch, &buf);
	CHECK(ch);
	CHECK(strstr(buf.s, "Subject: one\r\nMIME-Version: 1.0\r\n"
			    "Content-Transfer-Encoding: quoted-printable\r\n\r\n=E2=82=AC\r\n") != NULL);

	/* multipart without a boundary: one leaf, encoded whole */
	down("Content-Type: multipart/mixed\r\n\r\n\xc3\xa5\r\n", &ch, &buf);
	CHECK(ch);
	CHECK(!mime_has_8bit(buf.s, buf.len));

	/* no closing delimiter: the last part runs to the end and is converted */
	down("Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\n\xc3\xa5\r\n",
	     &ch, &buf);
	CHECK(ch);
	CHECK(!mime_has_8bit(buf.s, buf.len));

	/* 8-bit only in the preamble: an exact copy */
	const char *pre = "Content-Type: multipart/mixed; boundary=z\r\n\r\n\xc3\xa5\r\n"
			  "--z\r\n\r\nx\r\n--z--\r\n";
	CHECK_STREQ(down(pre, &ch, &buf), pre);
	CHECK(!ch);

	/* nesting deeper than the limit: still no 8-bit body byte out, no crash */
	struct str deep = STR_INIT;
	for (int i = 0; i < MIME_DOWNGRADE_DEPTH + 10; i++)
		str_appendf(&deep, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n",
			    i, i);
	str_appends(&deep, "\r\n\xc3\xa5\r\n");
	str_clear(&buf);
	CHECK(mime_downgrade(deep.s, deep.len, &buf));
	CHECK(!mime_has_8bit(buf.s, buf.len));
	str_free(&deep);

	/* bare LF line ends in the input are understood */
	down("Subject: x\n\ncaf\xc3\xa9\n", &ch, &buf);
	CHECK(ch);
	CHECK(strstr(buf.s, "caf=C3=A9\r\n") != NULL);

	str_free(&buf);
}

int main(void)
{
	test_qp_table();
	test_qp_random();
	test_downgrade();
	return check_done();
}
