/*
 * fuzz_dkim_canon.c - the DKIM canonicalisers and header selection of
 * modules/opendkim/dkim_sign.c (compiled in here: modules are not in
 * impetus_lib)
 *
 * Byte 0 even: the input is a body; odd: a message (header fields, then
 * maybe a body). Properties:
 *   body, relaxed: no WSP run, no tab, no WSP before a CRLF (a lone CR
 *     is an ordinary byte, as in dkimpy: " \r" stays), ends with
 *     CRLF unless empty, no trailing empty line; canonicalising its own
 *     output gives it back; equal to relaxed of the simple canonical form;
 *   body, simple: ends with CRLF, no trailing empty line unless it is the
 *     lone CRLF of an empty body, every LF is part of a CRLF; its own
 *     output gives it back;
 *   both: the returned length is the length written;
 *   header fields (each field of the message), relaxed: one CRLF, at the
 *     end; no WSP run, no tab, no WSP before the CRLF or around the first
 *     colon; no upper-case letter before that colon; the same again when
 *     canonicalised twice; simple: the field itself plus a line end;
 *   selection: body offset within the input, after the header section;
 *     each selected field lies in the header section at a line start,
 *     carries the name asked, is taken once, and a name asked twice gets
 *     an earlier field the second time (bottom-up).
 */
#include "fuzz.h"

#include <ctype.h>
#include <strings.h>

#include "../../modules/opendkim/dkim_sign.c"

static void sink(void *ctx, const char *data, size_t n)
{
	dkim_buf_add(ctx, data, n);
}

/* canon - body c of (p, n) into b (emptied first); checks the returned length. */
static void canon(enum dkim_canon c, const char *p, size_t n, struct dkim_buf *b)
{
	dkim_buf_free(b);
	uint64_t total = dkim_canon_body(c, p, n, sink, b);
	MUST(!b->oom);
	MUST(total == b->len);
}

static bool same(const struct dkim_buf *a, const struct dkim_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static void check_body(const char *p, size_t n)
{
	struct dkim_buf r = { 0 }, s = { 0 }, again = { 0 };

	canon(DKIM_CANON_RELAXED, p, n, &r);
	for (size_t i = 0; i < r.len; i++) {
		MUST(r.p[i] != '\t');
		if (r.p[i] == ' ')
			MUST(i + 2 < r.len && r.p[i + 1] != ' ' &&
			     !(r.p[i + 1] == '\r' && r.p[i + 2] == '\n'));
		if (r.p[i] == '\n')
			MUST(i > 0 && r.p[i - 1] == '\r');
	}
	if (r.len > 0) {
		MUST(r.len >= 2 && r.p[r.len - 2] == '\r' && r.p[r.len - 1] == '\n');
		MUST(r.len < 4 || memcmp(r.p + r.len - 4, "\r\n\r\n", 4) != 0);
		MUST(r.len != 2);
	}
	canon(DKIM_CANON_RELAXED, r.p, r.len, &again);
	MUST(same(&r, &again));

	canon(DKIM_CANON_SIMPLE, p, n, &s);
	MUST(s.len >= 2 && s.p[s.len - 2] == '\r' && s.p[s.len - 1] == '\n');
	MUST(s.len < 4 || memcmp(s.p + s.len - 4, "\r\n\r\n", 4) != 0);
	for (size_t i = 0; i < s.len; i++)
		if (s.p[i] == '\n')
			MUST(i > 0 && s.p[i - 1] == '\r');
	canon(DKIM_CANON_SIMPLE, s.p, s.len, &again);
	MUST(same(&s, &again));
	canon(DKIM_CANON_RELAXED, s.p, s.len, &again);
	MUST(same(&r, &again));

	dkim_buf_free(&r);
	dkim_buf_free(&s);
	dkim_buf_free(&again);
}

static void check_field(const char *f, size_t n)
{
	struct dkim_buf r = { 0 }, again = { 0 }, s = { 0 };

	dkim_canon_header(DKIM_CANON_RELAXED, f, n, &r);
	MUST(!r.oom && r.len >= 2 && memcmp(r.p + r.len - 2, "\r\n", 2) == 0);
	const char *colon = memchr(r.p, ':', r.len);
	for (size_t i = 0; i + 2 < r.len; i++) {
		MUST(r.p[i] != '\t' && r.p[i] != '\n');
		if (r.p[i] == ' ')
			MUST(r.p[i + 1] != ' ' && !(r.p[i + 1] == '\r' && r.p[i + 2] == '\n') &&
			     !(colon && (r.p + i + 1 == colon || r.p + i == colon + 1)));
		if (colon && r.p + i < colon)
			MUST(!isupper((unsigned char)r.p[i]));
	}
	MUST(r.len < 3 || r.p[r.len - 3] != ' ');
	dkim_canon_header(DKIM_CANON_RELAXED, r.p, r.len, &again);
	MUST(same(&r, &again));

	dkim_canon_header(DKIM_CANON_SIMPLE, f, n, &s);
	MUST(s.len >= 2 && memcmp(s.p + s.len - 2, "\r\n", 2) == 0);
	struct dkim_buf want = { 0 };
	size_t keep = n >= 2 && f[n - 2] == '\r' && f[n - 1] == '\n' ? n - 2
		    : n >= 1 && f[n - 1] == '\n' ? n - 1 : n;
	dkim_buf_add(&want, f, keep);
	dkim_buf_add(&want, "\r\n", 2);
	MUST(same(&s, &want));
	dkim_buf_free(&want);
	dkim_buf_free(&r);
	dkim_buf_free(&again);
	dkim_buf_free(&s);
}

static void check_message(const char *m, size_t n)
{
	size_t hdr_len, off = dkim_body_offset(m, n, &hdr_len);

	MUST(hdr_len <= off && off <= n);
	MUST(off == hdr_len || off == hdr_len + 1 || off == hdr_len + 2);

	struct dkim_field *fields;
	size_t nfields;
	MUST(split_fields(m, hdr_len, &fields, &nfields) == 0);
	size_t covered = 0;
	for (size_t i = 0; i < nfields; i++) {
		MUST(fields[i].p == m + covered);
		covered += fields[i].len;
		check_field(fields[i].p, fields[i].len);
	}
	MUST(covered == hdr_len);
	free(fields);

	static const char *const names[] = { "from", "To", "subject", "FROM", "x", "from", "to" };
	const size_t nn = sizeof(names) / sizeof(names[0]);
	struct dkim_field sel[sizeof(names) / sizeof(names[0])];
	MUST(dkim_select(m, hdr_len, names, nn, sel) == 0);
	for (size_t i = 0; i < nn; i++) {
		if (sel[i].p == NULL)
			continue;
		MUST(sel[i].p >= m && sel[i].p + sel[i].len <= m + hdr_len);
		MUST(sel[i].p == m || sel[i].p[-1] == '\n');
		MUST(name_is(&sel[i], names[i]));
		for (size_t j = 0; j < i; j++) {
			MUST(sel[j].p != sel[i].p);
			if (strcasecmp(names[j], names[i]) == 0)
				MUST(sel[j].p != NULL && sel[j].p > sel[i].p);
		}
	}
	check_body(m + off, n - off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char *text = fuzz_strndup(data + 1, size - 1);
	if (data[0] % 2 == 0)
		check_body(text, size - 1);
	else
		check_message(text, size - 1);
	free(text);
	return 0;
}
