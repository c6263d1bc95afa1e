/*
 * fuzz_json_log_string - the JSON string writer of the json_log module
 * (json_string in modules/json_log/json_log.c, compiled in here: the
 * module is not part of impetus_lib)
 *
 * Properties, for each of the three invalid_utf8 modes: the output is a
 * quoted JSON string without a raw control byte, valid UTF-8 throughout;
 * decoding its escapes (a small decoder here, RFC 8259) gives back the
 * input (up to its first NUL) with each byte that is not valid UTF-8
 * replaced as the mode says: U+00XX (escape), U+DCXX (surrogate, which is
 * Python's surrogateescape and so lossless) or U+FFFD (replace); valid
 * UTF-8 sequences come back unchanged.
 */
#include "fuzz.h"

#include <ctype.h>

#include "../../modules/json_log/json_log.c"

/* put_cp - a code point as UTF-8 (surrogates too: this is the comparison form). */
static void put_cp(struct jl_buf *b, unsigned cp)
{
	char u[4];

	if (cp < 0x80) {
		u[0] = (char)cp;
		buf_put(b, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		buf_put(b, u, 2);
	} else {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		buf_put(b, u, 3);
	}
}

/* decode - the JSON string at s (quotes included) into out; 0 or -1. */
static int decode(const char *s, size_t n, struct jl_buf *out)
{
	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return -1;
	for (size_t i = 1; i < n - 1; i++) {
		if (s[i] != '\\') {
			if (s[i] == '"')
				return -1;
			buf_put(out, s + i, 1);
			continue;
		}
		if (++i >= n - 1)
			return -1;
		if (s[i] == '"' || s[i] == '\\') {
			buf_put(out, s + i, 1);
		} else if (s[i] == 'u') {
			if (i + 4 >= n - 1)
				return -1;
			unsigned cp = 0;
			for (int k = 1; k <= 4; k++) {
				char c = s[i + k];
				cp = cp * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
			}
			put_cp(out, cp);
			i += 4;
		} else {
			return -1;	/* the writer uses no other escape */
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_strndup(data, size);
	size_t n = strlen(in);

	for (int mode = JL_INVALID_ESCAPE; mode <= JL_INVALID_REPLACE; mode++) {
		struct jl_buf out = { 0 }, got = { 0 }, want = { 0 };

		json_string(&out, in, (enum jl_invalid)mode);
		for (size_t i = 0; i < out.len; i++)
			MUST((unsigned char)out.p[i] >= 0x20 && out.p[i] != 0x7F);
		for (size_t i = 0; i < out.len;) {
			if ((unsigned char)out.p[i] < 0x80) {
				i++;
				continue;
			}
			size_t l = utf8_seq((const unsigned char *)out.p + i, out.len - i);
			MUST(l > 0);
			i += l;
		}
		MUST(decode(out.p, out.len, &got) == 0);
		/* The expected text: valid sequences as they are, other bytes by the mode. */
		for (size_t i = 0; i < n;) {
			unsigned char c = (unsigned char)in[i];
			size_t l = c < 0x80 ? 1 : utf8_seq((const unsigned char *)in + i, n - i);
			if (l > 0) {
				buf_put(&want, in + i, l);
				i += l;
				continue;
			}
			put_cp(&want, mode == JL_INVALID_ESCAPE ? c :
				      mode == JL_INVALID_SURROGATE ? 0xDC00u + c : 0xFFFDu);
			i++;
		}
		MUST(got.len == want.len && (got.len == 0 || memcmp(got.p, want.p, got.len) == 0));
		buf_free(&out);
		buf_free(&got);
		buf_free(&want);
	}
	free(in);
	return 0;
}
