/*
 * fuzz_smtp_parse.c - libFuzzer target for src/smtp/smtp_parse.c
 *
 * Every parser that reads network input gets the fuzzer's bytes: command
 * lines, MAIL and RCPT arguments (with the extension set and SMTPUTF8 taken
 * from the first byte), xtext, and the DATA and BDAT scanners. Besides
 * memory errors (ASan) and undefined behaviour (UBSan) it checks the
 * properties the session relies on:
 *   - a parse either succeeds with a path within SMTP_PATH_MAX and no reply,
 *     or fails with a 5xx reply, a non-empty enhanced code, nothing left
 *     allocated, and no control byte in the reply text;
 *   - xtext decode -> encode -> decode is the identity;
 *   - the DATA scanner gives the same result whole, split anywhere, and
 *     byte by byte, and agrees with a plain reference scanner; it never
 *     consumes past the terminator; the limit only truncates out;
 *   - the BDAT scanner's flags do not depend on chunk boundaries.
 *
 * Built by tests/fuzz/build.sh with the other targets (clang, ASan+UBSan,
 * see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_smtp_parse -runs=1000000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "smtp/smtp_parse.h"

#include "fuzz.h"
#include "../common/smtp_scan_ref.h"

static void check_reply(const struct smtp_reply *r)
{
	MUST(r->code >= 500 && r->code <= 599);
	MUST(r->ext[0] == '5');
	for (const char *p = r->text; *p; p++)
		MUST((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void fuzz_mail_rcpt(const char *s, uint8_t flags)
{
	struct smtp_ext_allowed ext = {
		.size = flags & 1, .eightbitmime = flags & 2, .smtputf8 = flags & 4,
		.dsn = flags & 8, .binarymime = flags & 16, .auth = flags & 32,
	};
	struct smtp_reply r;
	struct smtp_mail_args m;
	struct smtp_rcpt_args rc;

	if (smtp_parse_mail(s, &ext, &m, &r)) {
		MUST(r.code == 0 && m.path != NULL);
		MUST(strlen(m.path) <= SMTP_PATH_MAX);
		(void)smtp_path_domain(m.path);
		smtp_mail_args_free(&m);
	} else {
		check_reply(&r);
		MUST(m.path == NULL && m.envid == NULL && m.auth == NULL);
	}
	if (smtp_parse_rcpt(s, &ext, flags & 64, &rc, &r)) {
		MUST(r.code == 0 && rc.path != NULL && rc.path[0] != '\0');
		MUST(strlen(rc.path) <= SMTP_PATH_MAX);
		const char *d = smtp_path_domain(rc.path);
		MUST(d >= rc.path && d <= rc.path + strlen(rc.path));
		smtp_rcpt_args_free(&rc);
	} else {
		check_reply(&r);
		MUST(rc.path == NULL && rc.orcpt == NULL);
	}
}

static void fuzz_xtext(const char *in, size_t len)
{
	struct str dec = STR_INIT, enc = STR_INIT, again = STR_INIT;

	if (smtp_xtext_decode(in, len, &dec)) {
		smtp_xtext_encode(dec.s ? dec.s : "", dec.len, &enc);
		MUST(smtp_xtext_decode(enc.s ? enc.s : "", enc.len, &again));
		MUST(again.len == dec.len && memcmp(str_cstr(&again), str_cstr(&dec), dec.len) == 0);
	} else {
		MUST(dec.len == 0);
	}
	str_free(&dec);
	str_free(&enc);
	str_free(&again);
}

static bool same_scan(const struct smtp_data_scanner *a, const struct smtp_data_scanner *b)
{
	return a->done == b->done && a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr &&
	       a->nul == b->nul && a->longest_line == b->longest_line &&
	       a->bare_headers == b->bare_headers && a->bare_body == b->bare_body &&
	       a->in_body == b->in_body && a->folded == b->folded;
}

/* scanner_start - a scanner with the repairs this input asks for. */
static void scanner_start(struct smtp_data_scanner *sc, bool fix, size_t fold)
{
	smtp_data_scanner_init(sc);
	sc->fix_bare_headers = sc->fix_bare_body = fix;
	sc->fold_at = fold;
}

/* scan_split - feed in two pieces, as a session would, stopping at done. */
static size_t scan_split(struct smtp_data_scanner *sc, const char *in, size_t len, size_t cut,
			 struct str *out, uint64_t limit, bool fix, size_t fold)
{
	size_t n;

	scanner_start(sc, fix, fold);
	n = smtp_data_scan(sc, in, cut, out, limit);
	if (!sc->done) {
		MUST(n == cut);
		n += smtp_data_scan(sc, in + cut, len - cut, out, limit);
	}
	return n;
}

static void fuzz_data(const char *in, size_t len, size_t cut, bool fix, size_t fold)
{
	struct smtp_data_scanner ref, sc;
	struct str rout = STR_INIT, out = STR_INIT;
	size_t rn = ref_scan(in, len, &rout, &ref, fix, fold);

	/* whole */
	scanner_start(&sc, fix, fold);
	size_t n = smtp_data_scan(&sc, in, len, &out, 0);
	MUST(n == rn && same_scan(&sc, &ref));
	MUST(out.len == rout.len && sc.bytes == out.len &&
	     memcmp(str_cstr(&out), str_cstr(&rout), out.len) == 0);
	MUST(sc.done || n == len);
	str_clear(&out);

	/* two pieces, and a limit */
	uint64_t limit = cut % 7 + 1;
	n = scan_split(&sc, in, len, cut, &out, limit, fix, fold);
	size_t keep = rout.len < limit ? rout.len : (size_t)limit;
	MUST(n == rn && same_scan(&sc, &ref) && sc.bytes == rout.len);
	MUST(out.len == keep && memcmp(str_cstr(&out), str_cstr(&rout), keep) == 0);
	str_clear(&out);

	/* byte by byte, for short inputs */
	if (len <= 256) {
		scanner_start(&sc, fix, fold);
		n = 0;
		for (size_t i = 0; i < len && !sc.done; i++)
			n += smtp_data_scan(&sc, in + i, 1, &out, 0);
		MUST(n == rn && same_scan(&sc, &ref) && out.len == rout.len &&
		     memcmp(str_cstr(&out), str_cstr(&rout), out.len) == 0);
	}
	str_free(&out);
	str_free(&rout);

	/* BDAT: chunk boundaries do not matter */
	struct smtp_data_scanner a, b;
	struct str ao = STR_INIT, bo = STR_INIT;
	scanner_start(&a, fix, fold);
	scanner_start(&b, fix, fold);
	smtp_scan_chunk(&a, in, len, &ao, 0);
	smtp_scan_chunk(&b, in, cut, &bo, 0);
	smtp_scan_chunk(&b, in + cut, len - cut, &bo, 0);
	MUST(same_scan(&a, &b) && !a.done && a.bytes == ao.len && b.bytes == bo.len);
	MUST(ao.len == bo.len && memcmp(str_cstr(&ao), str_cstr(&bo), ao.len) == 0);
	MUST(fix || fold || ao.len == len);
	str_free(&ao);
	str_free(&bo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;

	uint8_t flags = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	char *s = xmalloc(len + 1);

	memcpy(s, in, len);
	s[len] = '\0';

	/* command line */
	const char *args;
	bool clean = smtp_line_is_clean(in, len);
	enum smtp_verb v = smtp_parse_command(s, len, &args);
	MUST(args >= s && args <= s + len);
	(void)smtp_verb_name(v);
	if (clean)
		MUST(strlen(s) == len);
	if (clean && (v == SMTP_VERB_MAIL || v == SMTP_VERB_RCPT))
		fuzz_mail_rcpt(args, flags);
	/* the arguments alone, NUL-cut, whatever the verb */
	fuzz_mail_rcpt(s, flags);
	free(s);

	fuzz_xtext(in, len);
	/* the top bits choose the repairs: bare CR/LF to CRLF, folding at 7 */
	fuzz_data(in, len, len ? flags % (len + 1) : 0, flags & 0x40, (flags & 0x80) ? 7 : 0);
	return 0;
}
