/*
 * fuzz_control_proto.c - libFuzzer target for the console protocol (src/control/control_proto.c)
 *
 * Byte 0 picks the parser. Even: ctl_request_parse, fed what the daemon
 * feeds it (control.c): the input up to its first LF, a CR before it
 * removed, in a buffer with one byte to spare. Odd: ctl_reply_header_parse
 * on the input, whole and cut at every length, as the client reads it.
 * Besides memory safety and UB it checks:
 *   - a request either fails with a one-line reason, or gives 1..64 words,
 *     each non-empty, without blank or control byte, none "--json", all
 *     inside the line, in order; json set exactly when a "--json" word
 *     was there; a reference splitter agrees on the words;
 *   - a refusal happens exactly when the reference says so (too long,
 *     control byte, too many words, no word);
 *   - formatting a reply and parsing its status line gives back the
 *     status and the length; a status line accepted from a prefix is the
 *     same for every longer prefix (reading more never changes it), and
 *     "need more" is never answered once CTL_HEADER_MAX bytes are there.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_proto.h"
#include "core/str.h"

#include "fuzz.h"

static bool blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* ref_words - the reference: words of line (len bytes) into ref; -1 when it must be refused. */
static int ref_words(const char *line, size_t len, char ref[][CTL_REQUEST_MAX + 1], int *n,
		     bool *json)
{
	*n = 0;
	*json = false;
	if (len + 1 > CTL_REQUEST_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	size_t i = 0;
	while (i < len) {
		while (i < len && blank((unsigned char)line[i]))
			i++;
		if (i >= len)
			break;
		size_t s = i;
		while (i < len && !blank((unsigned char)line[i]))
			i++;
		if (i - s == 6 && memcmp(line + s, "--json", 6) == 0) {
			*json = true;
			continue;
		}
		if (*n == CTL_ARGS_MAX)
			return -1;
		memcpy(ref[*n], line + s, i - s);
		ref[*n][i - s] = '\0';
		(*n)++;
	}
	return *n ? 0 : -1;
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	static char ref[CTL_ARGS_MAX][CTL_REQUEST_MAX + 1];
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl ? (size_t)(nl - data) : size;
	struct ctl_request req;
	struct str err = STR_INIT;
	int nref;
	bool jref;

	if (len && data[len - 1] == '\r')
		len--;
	char *line = fuzz_strndup(data, len);
	int want = ref_words(line, len, ref, &nref, &jref);
	int rc = ctl_request_parse(line, len, &req, &err);

	MUST(rc == want);
	if (rc < 0) {
		MUST(err.len > 0 && memchr(err.s, '\n', err.len) == NULL);
	} else {
		MUST(err.len == 0);
		MUST(req.argc == nref && req.json == jref && req.argv[req.argc] == NULL);
		for (int i = 0; i < req.argc; i++) {
			MUST(req.argv[i] >= line && req.argv[i] < line + len);
			MUST(i == 0 || req.argv[i] > req.argv[i - 1]);
			MUST(strcmp(req.argv[i], ref[i]) == 0);
			MUST(ctl_word_ok(req.argv[i]));	/* non-empty, no blank or control byte */
		}
	}
	free(line);
	str_free(&err);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	bool ok = false, ok2 = false;
	size_t body = 0, head = 0, body2 = 0, head2 = 0;
	int first = 0;

	for (size_t n = 0; n <= size; n++) {
		int rc = ctl_reply_header_parse(buf, n, &ok2, &body2, &head2);

		MUST(rc >= -1 && rc <= 1);
		MUST(!(rc == 0 && n >= CTL_HEADER_MAX));
		if (first == 0 && rc != 0) {
			first = rc;
			ok = ok2;
			body = body2;
			head = head2;
		} else if (first != 0) {
			/* More bytes never change the verdict. */
			MUST(rc == first);
			if (rc == 1)
				MUST(ok2 == ok && body2 == body && head2 == head);
		}
		if (rc == 1)
			MUST(head2 <= n && buf[head2 - 1] == '\n' && body2 <= CTL_REPLY_MAX);
	}
	/* Round trip: a formatted reply's status line parses back. */
	struct str out = STR_INIT;
	ctl_reply_format(&out, size & 1, buf, size);
	MUST(ctl_reply_header_parse(out.s, out.len, &ok2, &body2, &head2) == 1);
	MUST(ok2 == (size & 1) && body2 == size && head2 + size == out.len);
	MUST(memcmp(out.s + head2, buf, size) == 0 || size == 0);
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_reply(data + 1, size - 1);
	else
		fuzz_request(data + 1, size - 1);
	return 0;
}
