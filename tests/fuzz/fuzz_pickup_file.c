/*
 * fuzz_pickup_file.c - libFuzzer target for the pickup file parser
 *
 * src/pickup/pickup_file.c reads files any local user may drop into
 * <Spoolbase>/pickup (docs/sendmail.md); the daemon parses them on an IO
 * pool thread, so a crash there takes the daemon down. The input is the
 * file's bytes. Besides memory safety and UB it checks, for a file that
 * parses:
 *   - at least one recipient; every address is printable ASCII without
 *     blank, '<' or '>', recipients non-empty; the message is non-empty,
 *     without NUL, and is exactly the tail of the input;
 *   - the envelope written back by pickup_file_format, followed by the
 *     message, parses to the same envelope and message (round trip);
 * and for a file that does not: the error names a line ("line N: ...").
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_pickup_file -runs=1000000
 */
#include "pickup/pickup_file.h"

#include "fuzz.h"

static void check_addr(struct pickup_span a, bool may_be_empty)
{
	MUST(may_be_empty || a.len > 0);
	for (size_t i = 0; i < a.len; i++) {
		unsigned char c = (unsigned char)a.s[i];

		MUST(c > ' ' && c < 0x7f && c != '<' && c != '>');
	}
}

static bool span_eq(struct pickup_span a, struct pickup_span b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.s, b.s, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pickup_file f, g;
	struct str err = STR_INIT, again = STR_INIT, err2 = STR_INIT;
	/* A private copy: the parser must not read past size. */
	char *buf = malloc(size ? size : 1);

	memcpy(buf, data, size);
	if (pickup_file_parse(buf, size, &f, &err) < 0) {
		MUST(err.len > 5 && memcmp(err.s, "line ", 5) == 0);
		pickup_file_free(&f);
		str_free(&err);
		free(buf);
		return 0;
	}
	MUST(f.nrcpts >= 1);
	check_addr(f.sender, true);
	for (size_t i = 0; i < f.nrcpts; i++)
		check_addr(f.rcpts[i], false);
	MUST(f.len > 0 && f.data + f.len == buf + size);
	MUST(memchr(f.data, '\0', f.len) == NULL);

	pickup_file_format(&again, &f);
	str_append(&again, f.data, f.len);
	MUST(pickup_file_parse(again.s, again.len, &g, &err2) == 0);
	MUST(span_eq(f.sender, g.sender) && f.nrcpts == g.nrcpts && f.uid == g.uid);
	for (size_t i = 0; i < f.nrcpts; i++)
		MUST(span_eq(f.rcpts[i], g.rcpts[i]));
	MUST(f.notify == g.notify && f.ret == g.ret && f.body_type == g.body_type);
	MUST(span_eq(f.envid, g.envid));
	MUST(g.len == f.len && memcmp(g.data, f.data, f.len) == 0);
	pickup_file_free(&f);
	pickup_file_free(&g);
	str_free(&err);
	str_free(&err2);
	str_free(&again);
	free(buf);
	return 0;
}
