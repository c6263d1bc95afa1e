/*
 * fuzz_template - libFuzzer target for the transmissions API's templates
 *
 * template_compile and template_render (src/message/template.c) read a
 * template and substitution data straight from an HTTP request body. The
 * input is a flag byte, then the template, then optionally a NUL and the
 * recipient's data as JSON, then a NUL and the global data. Data that is
 * not JSON is replaced by a fixed object with names a..e, strings that
 * need escaping, numbers, booleans, null, nested objects and arrays, so
 * a template alone still reaches every path of the renderer. Flag bits
 * 0-1: the mode (text, html, header, html); bit 2: tight render limits.
 * Besides memory safety and UB:
 *   - a refusal is -EINVAL with a non-empty message and a position inside
 *     the input (offset < length) whose line:col agrees with the offset;
 *   - a render is 0 or -E2BIG; -E2BIG leaves the output as it was and
 *     points at a "{{" of the input (or, for the output limit, at the
 *     text that crossed it); the output never passes out_max;
 *   - rendering twice gives the same result (the template keeps no state);
 *   - a template without a tag renders as itself;
 *   - in the html mode, a template with neither "{{{" nor '<' renders
 *     without '<': every substituted value was escaped;
 *   - in the header mode, the output has a CR or LF only when the
 *     template has one: values never start a new header line.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/str.h"
#include "message/template.h"

#include "fuzz.h"

static const char fallback[] =
	"{\"a\":\"x<y>&\\\"'z\",\"b\":40,\"c\":[1,\"two\",{\"a\":\"in\"},[3]],"
	"\"d\":{\"a\":{\"b\":\"deep\"},\"c\":[\"p\",\"q\"],\"e\":1.5},\"e\":true,"
	"\"f\":false,\"n\":null,\"crlf\":\"l1\\r\\nl2\\nl3\",\"s\":\"\",\"k\":\"a\"}";

/* data - the JSON in p[0..n) as an object, or the fixed object. */
static json_t *data(const uint8_t *p, size_t n)
{
	json_t *v = n ? json_loadb((const char *)p, n, JSON_DECODE_ANY, NULL) : NULL;

	if (v == NULL)
		v = json_loads(fallback, 0, NULL);
	return v;
}

/* check_pos - line:col of an error agrees with its offset in src. */
static void check_pos(const struct template_error *err, const char *src, size_t len)
{
	unsigned line = 1, col = 1;

	MUST(err->offset < len);
	for (size_t i = 0; i < err->offset; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '\n') {
			line++;
			col = 1;
		} else if ((c & 0xC0) != 0x80) {
			col++;
		}
	}
	MUST(err->line == line && err->col == col);
	MUST(err->msg[0] != '\0' && memchr(err->msg, '\0', sizeof err->msg) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	static const enum template_escape modes[4] = {
		TEMPLATE_TEXT, TEMPLATE_HTML, TEMPLATE_HEADER, TEMPLATE_HTML,
	};
	if (size < 1)
		return 0;
	enum template_escape mode = modes[in[0] & 3];
	struct template_limits lim = { 1 << 16, 200000, 1000 };
	if (in[0] & 4) {
		lim.out_max = 256;
		lim.steps_max = 500;
		lim.each_max = 3;
	}
	const uint8_t *p = in + 1, *end = in + size;
	const uint8_t *z1 = memchr(p, 0, (size_t)(end - p));
	size_t len = z1 ? (size_t)(z1 - p) : (size_t)(end - p);
	json_t *rcpt = NULL, *global = NULL;
	if (z1 != NULL) {
		const uint8_t *r = z1 + 1;
		const uint8_t *z2 = memchr(r, 0, (size_t)(end - r));
		rcpt = data(r, z2 ? (size_t)(z2 - r) : (size_t)(end - r));
		global = data(z2 ? z2 + 1 : end, z2 ? (size_t)(end - z2 - 1) : 0);
	} else {
		rcpt = json_object();
		global = data(NULL, 0);
	}
	char *src = fuzz_strndup(p, len);
	struct template *t = NULL;
	struct template_error err;
	int rc = template_compile(src, len, &t, &err);

	if (rc != 0) {
		MUST(rc == -EINVAL && t == NULL);
		check_pos(&err, src, len);
		goto out;
	}
	struct str o1 = STR_INIT, o2 = STR_INIT;
	struct template_error e2;
	int r1 = template_render_limited(t, rcpt, global, mode, &lim, &o1, &err);
	int r2 = template_render_limited(t, rcpt, global, mode, &lim, &o2, &e2);
	MUST(r1 == 0 || r1 == -E2BIG);
	MUST(r1 == r2 && o1.len == o2.len && memcmp(str_cstr(&o1), str_cstr(&o2), o1.len) == 0);
	MUST(o1.len <= lim.out_max);
	if (r1 != 0) {
		MUST(o1.len == 0);
		check_pos(&err, src, len);
		/* a tag, or a piece of text that crossed the output limit */
		MUST((err.offset + 1 < len && src[err.offset] == '{' && src[err.offset + 1] == '{') ||
		     strstr(err.msg, "output larger") != NULL);
		MUST(err.offset == e2.offset && strcmp(err.msg, e2.msg) == 0);
	} else {
		if (template_is_static(t))
			MUST(o1.len == len && memcmp(o1.s ? o1.s : "", src, len) == 0);
		if (mode == TEMPLATE_HTML && memmem(src, len, "{{{", 3) == NULL &&
		    memchr(src, '<', len) == NULL)
			MUST(memchr(str_cstr(&o1), '<', o1.len) == NULL);
		if (mode == TEMPLATE_HEADER && memchr(src, '\r', len) == NULL &&
		    memchr(src, '\n', len) == NULL)
			MUST(memchr(str_cstr(&o1), '\r', o1.len) == NULL &&
			     memchr(str_cstr(&o1), '\n', o1.len) == NULL);
	}
	str_free(&o1);
	str_free(&o2);
	template_free(t);
out:
	free(src);
	json_decref(rcpt);
	json_decref(global);
	return 0;
}
