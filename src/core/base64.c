/*
 * base64.c - base64 encode with MIME line breaks, tolerant and strict decode
 *
 * See base64.h. No state; the decoder never reads past len and reports
 * where the input went wrong, so a caller can name the bad byte.
 */
#include "core/base64.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* value - the 6-bit value of c, -1 when c is not in the alphabet. */
static int value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

void base64_encode(const void *p, size_t n, size_t line, struct str *out)
{
	const unsigned char *s = p;
	size_t col = 0;

	line -= line % 4;
	str_reserve(out, (n + 2) / 3 * 4 + (line ? (n / (line / 4 * 3) + 1) * 2 : 0));
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)s[i] << 16;
		size_t left = n - i;
		char q[4];

		if (left > 1)
			v |= (unsigned)s[i + 1] << 8;
		if (left > 2)
			v |= s[i + 2];
		q[0] = alphabet[v >> 18 & 63];
		q[1] = alphabet[v >> 12 & 63];
		q[2] = left > 1 ? alphabet[v >> 6 & 63] : '=';
		q[3] = left > 2 ? alphabet[v & 63] : '=';
		if (line && col == line) {
			str_append(out, "\r\n", 2);
			col = 0;
		}
		str_append(out, q, 4);
		col += 4;
	}
}

bool base64_decode(const char *in, size_t len, struct str *out, size_t *bad)
{
	size_t start = out->len;
	unsigned acc = 0;
	int have = 0, pad = 0;
	size_t i;

	str_reserve(out, len / 4 * 3 + 3);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			/* Padding: only at group positions 2 and 3, then nothing but blanks. */
			if (have + pad < 2)
				goto fail;
			pad++;
			if (have + pad > 4)
				goto fail;
			continue;
		}
		if (pad)
			goto fail;	/* data after padding */
		v = value(c);
		if (v < 0)
			goto fail;
		acc = acc << 6 | (unsigned)v;
		if (++have == 4) {
			char b[3] = { (char)(acc >> 16), (char)(acc >> 8), (char)acc };

			str_append(out, b, 3);
			acc = 0;
			have = 0;
		}
	}
	if (pad && have + pad != 4)
		goto truncated;
	if (have == 1)
		goto truncated;
	if (have == 2) {
		str_appendc(out, (char)(acc >> 4));
	} else if (have == 3) {
		char b[2] = { (char)(acc >> 10), (char)(acc >> 2) };

		str_append(out, b, 2);
	}
	return true;
truncated:
	i = len;
fail:
	str_truncate(out, start);
	*bad = i;
	return false;
}

bool base64_decode_strict(const char *in, size_t len, struct str *out)
{
	size_t start = out->len;

	if (len == 0 || len % 4 != 0)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;

		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == len && k >= 2) {
				/* Padding only at the end, and "x=y=" is not padding. */
				if (k == 2 && in[i + 3] != '=')
					goto bad;
				v[k] = 0;
				pad++;
				continue;
			}
			v[k] = value(c);
			if (v[k] < 0)
				goto bad;
		}
		/* Bits left over in a padded group must be zero (canonical form). */
		if ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf)))
			goto bad;
		unsigned char b[3] = {
			(unsigned char)(v[0] << 2 | v[1] >> 4),
			(unsigned char)((v[1] & 0xf) << 4 | v[2] >> 2),
			(unsigned char)((v[2] & 0x3) << 6 | v[3]),
		};
		str_append(out, b, (size_t)(3 - pad));
	}
	return true;
bad:
	str_truncate(out, start);
	return false;
}
