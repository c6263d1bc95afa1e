/*
 * fuzz_mime_downgrade.c - libFuzzer target for the 8bit -> 7bit
 * downgrade (mime_downgrade, mime_qp_encode) and RFC 6533 address
 * formatting (dsn_utf8_addr)
 *
 * All three take bytes from the outside (a message as it arrived, an
 * address a client gave) and write what goes to the next hop or into a
 * bounce. Byte 0 picks the function (its value % 4), the rest is the
 * input. Properties, abort() on the first violation:
 *   - mime_qp_encode: no 8-bit or control byte but CR LF in pairs, no line
 *     over MIME_QP_LINE_MAX, and a strict decode gives the input back with
 *     each line break (CRLF or bare LF) as CRLF;
 *   - mime_downgrade: false means the output is the input exactly; either
 *     way the output never holds more 8-bit bytes than the input (bytes
 *     are copied or encoded, never made up);
 *   - dsn_utf8_addr: well-formed UTF-8, no control byte, SP, "+" or "=",
 *     and every "\" starts an EmbeddedUnicodeChar "\x{HEX}";
 *   - dsn_utf8_addr_xtext: the same, and all of it printable ASCII.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "message/dsn.h"
#include "message/mime_downgrade.h"

#include "fuzz.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* check_qp - the properties of mime_qp_encode on p[0..n). */
static void check_qp(const char *p, size_t n)
{
	struct str enc = STR_INIT, dec = STR_INIT, want = STR_INIT;
	size_t col = 0;

	mime_qp_encode(p, n, &enc);
	for (size_t i = 0; i < enc.len; i++) {
		unsigned char c = (unsigned char)enc.s[i];
		if (c == '\r') {
			MUST(i + 1 < enc.len && enc.s[i + 1] == '\n');
			MUST(i == 0 || (enc.s[i - 1] != ' ' && enc.s[i - 1] != '\t'));
			str_appends(&dec, "\r\n");
			i++;
			col = 0;
			continue;
		}
		MUST(c >= 32 ? c < 127 : c == '\t');
		MUST(++col <= MIME_QP_LINE_MAX);
		if (c == '=') {
			if (i + 2 < enc.len && enc.s[i + 1] == '\r') {
				MUST(enc.s[i + 2] == '\n');
				i += 2;
				col = 0;
				continue;
			}
			MUST(i + 2 < enc.len);
			int hi = hexval(enc.s[i + 1]), lo = hexval(enc.s[i + 2]);
			MUST(hi >= 0 && lo >= 0);
			str_appendc(&dec, (char)(hi * 16 + lo));
			i += 2;
			col += 2;
			MUST(col <= MIME_QP_LINE_MAX);
			continue;
		}
		str_appendc(&dec, (char)c);
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			str_appends(&want, "\r\n");
			i++;
		} else if (p[i] == '\n') {
			str_appends(&want, "\r\n");
		} else {
			str_appendc(&want, p[i]);
		}
	}
	MUST(dec.len == want.len);
	MUST(dec.len == 0 || memcmp(dec.s, want.s, dec.len) == 0);
	str_free(&enc);
	str_free(&dec);
	str_free(&want);
}

static size_t count_8bit(const char *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += (unsigned char)p[i] >= 0x80;
	return k;
}

/* check_down - the properties of mime_downgrade on p[0..n). */
static void check_down(const char *p, size_t n)
{
	struct str out = STR_INIT;
	bool changed = mime_downgrade(p, n, &out);

	if (!changed)
		MUST(out.len == n && (n == 0 || memcmp(out.s, p, n) == 0));
	MUST(count_8bit(out.s ? out.s : "", out.len) <= count_8bit(p, n));
	str_free(&out);
}

/* utf8_len - length of the well-formed UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0], cp;
	size_t k;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, cp = c & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

/* check_addr - the properties of dsn_utf8_addr (or the xtext form) on p[0..n) (cut at a NUL). */
static void check_addr(const char *p, size_t n, bool xtext)
{
	char *s = fuzz_strndup(p, n);
	struct str out = STR_INIT;

	if (xtext)
		dsn_utf8_addr_xtext(s, &out);
	else
		dsn_utf8_addr(s, &out);
	if (xtext)
		for (size_t i = 0; i < out.len; i++)
			MUST((unsigned char)out.s[i] < 127);
	for (size_t i = 0; i < out.len;) {
		const unsigned char *u = (const unsigned char *)out.s + i;
		size_t k = utf8_len(u, out.len - i);
		MUST(k > 0);
		MUST(u[0] > 32 && u[0] != 127 && u[0] != '+' && u[0] != '=');
		if (u[0] == '\\') {
			MUST(i + 3 < out.len && u[1] == 'x' && u[2] == '{');
			size_t j = 3;
			while (i + j < out.len && isxdigit(u[j]))
				j++;
			MUST(j > 3 && i + j < out.len && u[j] == '}');
		}
		i += k;
	}
	free(s);
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	switch (data[0] % 4) {
	case 0:
		check_down(p, n);
		break;
	case 1:
		check_qp(p, n);
		break;
	case 2:
		check_addr(p, n, false);
		break;
	default:
		check_addr(p, n, true);
		break;
	}
	return 0;
}
