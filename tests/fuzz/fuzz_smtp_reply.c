/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP client's reply parser
 *
 * smtpc_reply_add_line (src/smtp/smtp_client.c) assembles what a remote
 * server answers into one struct smtpc_reply; the client session frames
 * the lines with libevent (evbuffer_search_eol, EVBUFFER_EOL_CRLF: CRLF
 * or a bare LF) and gives up on the first malformed line. This target
 * frames the input the same way, with the same limits, and feeds it three
 * times: whole, split in two where the first byte says (its low 7 bits,
 * in 128ths of the input), and byte by byte; with bit 7 of the first byte
 * set, FF n in the rest stands for 32n 'x' bytes (long lines; expansion
 * stops at EXPANDED_MAX bytes, as byte-by-byte feeding is the slow part).
 * Besides memory safety and UB it checks:
 *   - the three feeds give the same sequence of events (line accepted,
 *     reply complete with its code, enhanced code, text and lines, or
 *     malformed) - chunk boundaries never change what the client sees;
 *   - every accepted line agrees with a plain reference parser: a code of
 *     three digits (2-5, 0-5, 0-9), then nothing, SP or '-'; the same code
 *     on every line of a reply; the reply is complete exactly at the line
 *     without '-'; a line longer than SMTPC_LINE_MAX or the line after
 *     SMTPC_REPLY_LINES_MAX is refused;
 *   - a complete reply: code 200..559; ext empty or an RFC 3463 code
 *     "c.s.d" whose class is the code's first digit; text starts with the
 *     code, holds no control byte and is at most SMTPC_RESPONSE_MAX bytes;
 *     lines[] holds each line's text after "ddd-"/"ddd ".
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_smtp_reply -runs=1000000
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/str.h"
#include "smtp/smtp_client_int.h"

#include "fuzz.h"

/* The record of one feed: what the parser said, line by line. */
struct trace {
	struct str ev;		/* one entry per event, comparable with memcmp */
	bool malformed;
};

/* ref_line - the reference verdict on one line: -1 bad, else its code. */
static int ref_line(const char *l, size_t n)
{
	if (n < 3 || n > SMTPC_LINE_MAX)
		return -1;
	if (l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '5' || l[2] < '0' || l[2] > '9')
		return -1;
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return -1;
	return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
}

/* ext_ok - is e "c.s.d" (1-3 digits each part) with class cls? */
static bool ext_ok(const char *e, char cls)
{
	size_t i = 0;

	if (e[0] != cls || e[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (isdigit((unsigned char)e[i])) {
			i++;
			d++;
		}
		if (d < 1 || d > 3)
			return false;
		if (part == 0) {
			if (e[i] != '.')
				return false;
			i++;
		}
	}
	return e[i] == '\0';
}

/* check_complete - what a complete reply must look like. */
static void check_complete(const struct smtpc_reply *r, char **texts, size_t ntexts)
{
	char code[8];

	MUST(r->complete);
	MUST(r->code >= 200 && r->code <= 559);
	MUST(r->ext[0] == '\0' || ext_ok(r->ext, (char)('0' + r->code / 100)));
	snprintf(code, sizeof(code), "%d", r->code);
	MUST(r->text.len >= 3 && memcmp(r->text.s, code, 3) == 0);
	MUST(r->text.len <= SMTPC_RESPONSE_MAX);
	for (size_t i = 0; i < r->text.len; i++)
		MUST((unsigned char)r->text.s[i] >= 0x20 && r->text.s[i] != 0x7f);
	MUST(r->nlines == ntexts && r->nlines >= 1 && r->nlines <= SMTPC_REPLY_LINES_MAX);
	for (size_t i = 0; i < r->nlines; i++)
		MUST(strcmp(r->lines[i], texts[i]) == 0);
}

/*
 * feed - frame buf the way the client session does (on_read) and parse,
 * delivering it in chunks of `chunk` bytes (0: the first `split` bytes,
 * then the rest).
 */
static void feed(const uint8_t *buf, size_t len, size_t chunk, size_t split, struct trace *t)
{
	struct evbuffer *in = evbuffer_new();
	struct smtpc_reply r;
	char line[SMTPC_LINE_MAX + 1];
	char *texts[SMTPC_REPLY_LINES_MAX + 1];
	size_t ntexts = 0, off = 0;
	int first_code = 0;

	MUST(in != NULL);
	smtpc_reply_init(&r);
	str_init(&t->ev);
	t->malformed = false;
	while (off < len && !t->malformed) {
		size_t n = chunk ? chunk : (off == 0 && split > 0 ? split : len - off);

		if (n > len - off)
			n = len - off;
		bool lf = memchr(buf + off, '\n', n) != NULL;

		evbuffer_add(in, buf + off, n);
		off += n;
		for (;;) {
			size_t eol_len = 0;
			struct evbuffer_ptr p;

			/*
			 * Every line end seen so far was taken: without a new LF
			 * the search (which the session repeats on every read)
			 * cannot succeed, and skipping it keeps byte-by-byte
			 * feeding of long lines linear.
			 */
			if (lf)
				p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
			else
				p.pos = -1;
			lf = true;	/* after a line is taken, look again */

			if (p.pos < 0) {
				/* the session's rule: room for the CR of a full line */
				if (evbuffer_get_length(in) > SMTPC_LINE_MAX + 1) {
					str_append(&t->ev, "M;", 2);
					t->malformed = true;
				}
				break;
			}
			size_t l = (size_t)p.pos;
			if (l > SMTPC_LINE_MAX) {
				str_append(&t->ev, "M;", 2);
				t->malformed = true;
				break;
			}
			evbuffer_remove(in, line, l);
			evbuffer_drain(in, eol_len);
			line[l] = '\0';

			/* the reference verdict, before the parser's */
			int ref = ref_line(line, l);
			if (ntexts == 0)
				first_code = ref;
			if (ref >= 0 && (ref != first_code || ntexts >= SMTPC_REPLY_LINES_MAX))
				ref = -1;

			int rc = smtpc_reply_add_line(&r, line, l);
			if (rc < 0) {
				MUST(ref < 0);
				str_append(&t->ev, "M;", 2);
				t->malformed = true;
				break;
			}
			MUST(ref >= 0 && r.code == ref);
			MUST(rc == (l == 3 || line[3] == ' ' ? 1 : 0));
			texts[ntexts] = fuzz_strndup(l > 4 ? line + 4 : "", l > 4 ? l - 4 : 0);
			MUST(texts[ntexts] != NULL);
			ntexts++;
			MUST(r.nlines == ntexts && !r.complete == (rc == 0));
			if (rc == 1) {
				check_complete(&r, texts, ntexts);
				str_appendf(&t->ev, "R%d|%s|%zu|", r.code, r.ext, r.nlines);
				str_append(&t->ev, r.text.s, r.text.len);
				str_append(&t->ev, ";", 1);
				for (size_t i = 0; i < ntexts; i++)
					free(texts[i]);
				ntexts = 0;
			} else {
				str_append(&t->ev, "L;", 2);
			}
		}
	}
	for (size_t i = 0; i < ntexts; i++)
		free(texts[i]);
	smtpc_reply_free(&r);
	evbuffer_free(in);
}

/* Expansion stops here: four lines of the longest length are enough. */
#define EXPANDED_MAX	(4 * (SMTPC_LINE_MAX + 2))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole, split, bytes;
	uint8_t *buf = NULL;
	size_t at, n = 0;

	if (size < 1)
		return 0;
	/*
	 * Lines near SMTPC_LINE_MAX are out of reach of byte mutations (and of
	 * -max_len=4096), so with bit 7 of byte 0 set, FF n stands for 32n 'x'.
	 */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && (buf = malloc(n + 1)) == NULL)
			abort();
		n = 0;
		for (size_t i = 1; i < size; i++) {
			if ((data[0] & 0x80) && data[i] == 0xff && i + 1 < size && data[i + 1] > 0 &&
			    n + 32u * data[i + 1] <= EXPANDED_MAX) {
				if (pass == 1)
					memset(buf + n, 'x', 32u * data[i + 1]);
				n += 32u * data[i + 1];
				i++;
			} else {
				if (pass == 1)
					buf[n] = data[i];
				n++;
			}
		}
	}
	at = (size_t)(data[0] & 0x7f) * n / 128;
	feed(buf, n, n ? n : 1, 0, &whole);
	feed(buf, n, 0, at, &split);
	feed(buf, n, 1, 0, &bytes);
	free(buf);
	MUST(whole.malformed == split.malformed && whole.malformed == bytes.malformed);
	MUST(whole.ev.len == split.ev.len && whole.ev.len == bytes.ev.len);
	MUST(whole.ev.len == 0 || memcmp(whole.ev.s, split.ev.s, whole.ev.len) == 0);
	MUST(whole.ev.len == 0 || memcmp(whole.ev.s, bytes.ev.s, whole.ev.len) == 0);
	str_free(&whole.ev);
	str_free(&split.ev);
	str_free(&bytes.ev);
	return 0;
}
