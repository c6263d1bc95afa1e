/*
 * mime_downgrade.c - 8-bit MIME content made 7-bit (see mime_downgrade.h)
 *
 * One recursive walk over a message's entities. Each entity is a header
 * section and a body; the header section is read only for the two fields
 * that decide what happens (Content-Type with its boundary, and
 * Content-Transfer-Encoding) and otherwise copied as it is. No state, no
 * failure paths other than memory exhaustion (abort).
 */
#include "message/mime_downgrade.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "message/rfc5322.h"

/* RFC 2046 5.1.1: a boundary is 1 to 70 characters. */
#define MIME_BOUNDARY_MAX 70
/* Room for "type/subtype" as we compare it; longer ones are not ours to know. */
#define MIME_TYPE_MAX 64

enum cte { CTE_NONE, CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_BASE64, CTE_OTHER };

/* What the header section of one entity says. */
struct entity {
	char type[MIME_TYPE_MAX];	/* lower-case "type/subtype", "" when absent */
	char boundary[MIME_BOUNDARY_MAX + 1];	/* "" when none or invalid */
	enum cte cte;
	bool mime_version;		/* a MIME-Version field is present */
};

/* ============================================================ encoding */

/* mime_has_8bit - any byte a 7-bit transfer cannot carry? */
bool mime_has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80 || p[i] == '\0')
			return true;
	return false;
}

/*
 * mime_qp_encode - quoted-printable, CRLF lines (see mime_downgrade.h).
 * Each output line is built in a local buffer and appended whole: one
 * str_append per line, not per byte, since bodies of every message an
 * HTTP injection builds pass through here.
 */
void mime_qp_encode(const char *p, size_t n, struct str *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[MIME_QP_LINE_MAX + 4];
	size_t col = 0;

	str_reserve(out, n + n / 8 + 16);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n' || (c == '\r' && i + 1 < n && p[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			str_append(out, line, col);
			str_appends(out, "\r\n");
			col = 0;
			continue;
		}
		/* a blank is literal unless a line break or the end follows it */
		bool eol = i + 1 == n || p[i + 1] == '\n' ||
			   (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
		bool literal = (c >= 33 && c <= 126 && c != '=') ||
			       ((c == ' ' || c == '\t') && !eol);
		size_t len = literal ? 1 : 3;

		/* keep room for the "=" of a soft break after this token */
		if (col + len > MIME_QP_LINE_MAX - 1) {
			str_append(out, line, col);
			str_appends(out, "=\r\n");
			col = 0;
		}
		if (literal) {
			line[col++] = (char)c;
		} else {
			line[col++] = '=';
			line[col++] = hex[c >> 4];
			line[col++] = hex[c & 15];
		}
	}
	str_append(out, line, col);
}

/* ============================================================ headers */

/* cte_of - the encoding a Content-Transfer-Encoding value names. */
static enum cte cte_of(const char *v)
{
	static const struct {
		const char *name;
		enum cte cte;
	} names[] = {
		{ "7bit", CTE_7BIT }, { "8bit", CTE_8BIT }, { "binary", CTE_BINARY },
		{ "quoted-printable", CTE_QP }, { "base64", CTE_BASE64 },
	};
	size_t n = strcspn(v, " \t;(");

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n && strncasecmp(v, names[i].name, n) == 0)
			return names[i].cte;
	return CTE_OTHER;
}

/*
 * parse_boundary - the boundary parameter of a Content-Type value (after
 * its type/subtype): a token or a quoted string, 1 to 70 characters; ""
 * when absent or not valid.
 */
static void parse_boundary(const char *v, char out[MIME_BOUNDARY_MAX + 1])
{
	out[0] = '\0';
	while ((v = strchr(v, ';')) != NULL) {
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		if (strncasecmp(v, "boundary", 8) != 0)
			continue;
		const char *q = v + 8;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		size_t n = 0;
		if (*q == '"') {
			for (q++; *q && *q != '"' && n <= MIME_BOUNDARY_MAX; q++) {
				if (*q == '\\' && q[1])
					q++;
				out[n++] = *q;
			}
			if (*q != '"')
				n = 0;
		} else {
			for (; *q && !strchr(" \t;()<>@,:\\\"/[]?=", *q) &&
			       n <= MIME_BOUNDARY_MAX; q++)
				out[n++] = *q;
		}
		if (n == 0 || n > MIME_BOUNDARY_MAX)
			n = 0;
		out[n] = '\0';
		return;
	}
}

/* entity_read - what the header section hdrs[0..h) says about its entity. */
static void entity_read(const char *hdrs, size_t h, struct entity *e)
{
	struct rfc5322_field f;
	struct str v = STR_INIT;
	size_t pos = 0;
	bool have_type = false, have_cte = false;

	memset(e, 0, sizeof(*e));
	while (rfc5322_field_next(hdrs, h, &pos, &f)) {
		if (f.name_len == 12 && strncasecmp(f.name, "Content-Type", 12) == 0 &&
		    !have_type) {
			have_type = true;
			str_clear(&v);
			rfc5322_unfold(f.value, f.value_len, &v);
			const char *s = str_cstr(&v);
			size_t n = strcspn(s, " \t;(");
			if (n < sizeof(e->type) && memchr(s, '/', n)) {
				for (size_t i = 0; i < n; i++)
					e->type[i] = (char)tolower((unsigned char)s[i]);
				e->type[n] = '\0';
			}
			if (strncmp(e->type, "multipart/", 10) == 0)
				parse_boundary(s + n, e->boundary);
		} else if (f.name_len == 25 &&
			   strncasecmp(f.name, "Content-Transfer-Encoding", 25) == 0 &&
			   !have_cte) {
			have_cte = true;
			str_clear(&v);
			rfc5322_unfold(f.value, f.value_len, &v);
			e->cte = cte_of(str_cstr(&v));
		} else if (f.name_len == 12 && strncasecmp(f.name, "MIME-Version", 12) == 0) {
			e->mime_version = true;
		}
	}
	str_free(&v);
}

/*
 * copy_headers - append hdrs[0..h) without its Content-Transfer-Encoding
 * fields, then the fields in add (each a whole "Name: value\r\n").
 */
static void copy_headers(const char *hdrs, size_t h, const char *add, struct str *out)
{
	struct rfc5322_field f;
	size_t pos = 0, start = 0;

	while (start = pos, rfc5322_field_next(hdrs, h, &pos, &f))
		if (!(f.name_len == 25 &&
		      strncasecmp(f.name, "Content-Transfer-Encoding", 25) == 0))
			str_append(out, hdrs + start, pos - start);
	/* a section that does not end with a line end gets one before ours */
	if (out->len && out->s[out->len - 1] != '\n')
		str_appends(out, "\r\n");
	str_appends(out, add);
}

/* ============================================================ the walk */

static bool convert(const char *p, size_t n, int depth, const char *dflt, bool top,
		    struct str *out);

/* line_is_delim - is p[0..n) "--boundary" or "--boundary--", transport padding allowed? */
static bool line_is_delim(const char *p, size_t n, const char *b, size_t bl, bool *closing)
{
	if (n < bl + 2 || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b, bl) != 0)
		return false;
	size_t i = bl + 2;
	*closing = n >= i + 2 && p[i] == '-' && p[i + 1] == '-';
	if (*closing)
		i += 2;
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return false;
	return true;
}

/*
 * convert_multipart - the body p[0..n) of a multipart with boundary b:
 * preamble, delimiters and epilogue copied, each part converted. A
 * part's content ends before the line end that precedes the next
 * delimiter (RFC 2046 5.1.1: that line end belongs to the delimiter).
 */
static bool convert_multipart(const char *p, size_t n, const char *b, int depth,
			      const char *dflt, struct str *out)
{
	size_t bl = strlen(b), pos = 0, part = 0;
	bool in_part = false, changed = false;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		size_t next = nl ? (size_t)(nl - p) + 1 : n;
		size_t le = nl ? (size_t)(nl - p) : n;
		bool closing;

		if (le > pos && p[le - 1] == '\r')
			le--;
		if (!line_is_delim(p + pos, le - pos, b, bl, &closing)) {
			pos = next;
			continue;
		}
		if (in_part) {
			size_t end = pos;
			if (end > part && p[end - 1] == '\n')
				end--;
			if (end > part && p[end - 1] == '\r')
				end--;
			changed |= convert(p + part, end - part, depth + 1, dflt, false, out);
			str_append(out, p + end, pos - end);
		} else {
			str_append(out, p + part, pos - part);	/* the preamble */
		}
		str_append(out, p + pos, next - pos);	/* the delimiter line */
		part = next;
		in_part = !closing;
		pos = next;
		if (closing)
			break;
	}
	if (in_part)	/* no closing delimiter: the last part runs to the end */
		changed |= convert(p + part, n - part, depth + 1, dflt, false, out);
	else
		str_append(out, p + part, n - part);	/* epilogue, or all of it */
	return changed;
}

/*
 * convert - one entity p[0..n): a leaf with an 8-bit body re-encoded, a
 * multipart or enclosure walked, anything else copied. dflt is the type
 * of an entity without Content-Type ("text/plain", or "message/rfc822"
 * inside multipart/digest); top is true for the message itself.
 */
static bool convert(const char *p, size_t n, int depth, const char *dflt, bool top,
		    struct str *out)
{
	size_t h = rfc5322_header_end(p, n);
	size_t bs = rfc5322_body_start(p, n);
	struct entity e;
	bool changed;

	if (!mime_has_8bit(p + bs, n - bs)) {
		str_append(out, p, n);
		return false;
	}
	entity_read(p, h, &e);
	const char *type = e.type[0] ? e.type : dflt;
	bool labelled_8bit = e.cte == CTE_8BIT || e.cte == CTE_BINARY;

	if (depth < MIME_DOWNGRADE_DEPTH && strncmp(type, "multipart/", 10) == 0 &&
	    e.boundary[0] && (e.cte == CTE_NONE || e.cte == CTE_7BIT || labelled_8bit)) {
		size_t at = out->len;
		if (labelled_8bit)
			copy_headers(p, h, "Content-Transfer-Encoding: 7bit\r\n", out);
		else
			str_append(out, p, h);
		str_append(out, p + h, bs - h);
		changed = convert_multipart(p + bs, n - bs, e.boundary, depth,
					    strcmp(type, "multipart/digest") == 0 ?
					    "message/rfc822" : "text/plain", out);
		if (!changed) {	/* the 8-bit bytes were in the preamble or epilogue */
			str_truncate(out, at);
			str_append(out, p, n);
		}
		return changed;
	}
	/*
	 * message/rfc822 may only be 7bit, 8bit or binary (RFC 2046 5.2.1):
	 * walk into it. message/global (RFC 6532 3.7) and the RFC 6533
	 * report types may be quoted-printable: they are leaves below, so
	 * their UTF-8 header fields are encoded too.
	 */
	if (depth < MIME_DOWNGRADE_DEPTH && strcmp(type, "message/rfc822") == 0 &&
	    (e.cte == CTE_NONE || e.cte == CTE_7BIT || labelled_8bit)) {
		size_t at = out->len;
		if (labelled_8bit)
			copy_headers(p, h, "Content-Transfer-Encoding: 7bit\r\n", out);
		else
			str_append(out, p, h);
		str_append(out, p + h, bs - h);
		changed = convert(p + bs, n - bs, depth + 1, "text/plain", true, out);
		if (!changed) {	/* only the enclosed header is 8-bit: left as is */
			str_truncate(out, at);
			str_append(out, p, n);
		}
		return changed;
	}
	if (e.cte != CTE_NONE && e.cte != CTE_7BIT && !labelled_8bit) {
		/* base64, quoted-printable or unknown: not ours to re-encode */
		str_append(out, p, n);
		return false;
	}
	copy_headers(p, h, top && !e.mime_version ?
		     "MIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n" :
		     "Content-Transfer-Encoding: quoted-printable\r\n", out);
	/* the separator line, or one when the section had none */
	if (bs > h)
		str_append(out, p + h, bs - h);
	else
		str_appends(out, "\r\n");
	mime_qp_encode(p + bs, n - bs, out);
	return true;
}

/* mime_downgrade - the message with its 8-bit body parts quoted-printable (see mime_downgrade.h). */
bool mime_downgrade(const char *msg, size_t len, struct str *out)
{
	return convert(msg, len, 0, "text/plain", true, out);
}
