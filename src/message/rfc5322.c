/*
 * rfc5322.c - dates, header sections and header fields (see rfc5322.h)
 *
 * Pure functions over caller-owned bytes; nothing here can fail except by
 * memory exhaustion inside struct str, which aborts (core/mem.h).
 */
#include "message/rfc5322.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const wdays[7] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};
static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* The years a date-time is written for (RFC 5322 3.3: 4DIGIT, 1900 or later). */
#define DATE_YEAR_MIN 1900
#define DATE_YEAR_MAX 9999

/* rfc5322_format_date - RFC 5322 date-time of t (see rfc5322.h). */
char *rfc5322_format_date(int64_t t, bool local, char buf[RFC5322_DATE_SIZE])
{
	time_t tt = (time_t)t;
	struct tm tm;
	long off = 0;

	/*
	 * strftime would follow LC_TIME; RFC 5322 wants the English names,
	 * so the fields are written by hand. A time gmtime cannot represent,
	 * or whose year is outside the four digits RFC 5322 3.3 writes (1900
	 * to 9999), falls back to the epoch rather than producing garbage.
	 * The year is checked on tm_year itself: tm_year + 1900 overflows int
	 * near gmtime's limit.
	 */
	if ((local ? localtime_r(&tt, &tm) == NULL : gmtime_r(&tt, &tm) == NULL) ||
	    tm.tm_year < DATE_YEAR_MIN - 1900 || tm.tm_year > DATE_YEAR_MAX - 1900) {
		tt = 0;
		gmtime_r(&tt, &tm);
		local = false;
	}
	if (local)
		off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	unsigned long aoff = (unsigned long)(off < 0 ? -off : off);
	unsigned year = (unsigned)tm.tm_year + 1900u;

	snprintf(buf, RFC5322_DATE_SIZE, "%s, %02u %s %04u %02u:%02u:%02u %c%02lu%02lu",
		 wdays[(unsigned)tm.tm_wday % 7u], (unsigned)tm.tm_mday % 100u,
		 months[(unsigned)tm.tm_mon % 12u], year,
		 (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
		 (unsigned)tm.tm_sec % 100u, sign, (aoff / 60) % 100u, aoff % 60);
	return buf;
}

/* ---------------------------------------------------------------- lines */

/* line_end - offset just past the line starting at p (past its LF, or len). */
static size_t line_end(const char *msg, size_t len, size_t p)
{
	const char *lf = memchr(msg + p, '\n', len - p);

	return lf ? (size_t)(lf - msg) + 1 : len;
}

/* line_is_empty - is the line msg[p..e) only a line ending? */
static bool line_is_empty(const char *msg, size_t p, size_t e)
{
	size_t n = e - p;

	return (n == 1 && msg[p] == '\n') ||
	       (n == 2 && msg[p] == '\r' && msg[p + 1] == '\n') ||
	       (n == 1 && msg[p] == '\r');
}

/*
 * field_name_len - length of the field name when msg[p..e) starts a header
 * field ("name:" with optional obsolete white space before the colon),
 * else 0. Field names are printable US-ASCII without the colon.
 */
static size_t field_name_len(const char *msg, size_t p, size_t e, size_t *colon)
{
	size_t q = p;

	while (q < e && msg[q] > 32 && msg[q] < 127 && msg[q] != ':')
		q++;
	size_t n = q - p;
	if (n == 0)
		return 0;
	while (q < e && (msg[q] == ' ' || msg[q] == '\t'))
		q++;
	if (q >= e || msg[q] != ':')
		return 0;
	*colon = q;
	return n;
}

/* rfc5322_header_end - length of the header section (see rfc5322.h). */
size_t rfc5322_header_end(const char *msg, size_t len)
{
	size_t p = 0;

	while (p < len) {
		size_t e = line_end(msg, len, p);
		size_t colon;

		if (line_is_empty(msg, p, e))
			return p;
		if (msg[p] == ' ' || msg[p] == '\t') {
			if (p == 0)
				return 0;	/* a continuation of nothing: body */
		} else if (field_name_len(msg, p, e, &colon) == 0) {
			return p;
		}
		p = e;
	}
	return len;
}

/* rfc5322_body_start - offset of the first body byte (see rfc5322.h). */
size_t rfc5322_body_start(const char *msg, size_t len)
{
	size_t h = rfc5322_header_end(msg, len);

	if (h < len) {
		size_t e = line_end(msg, len, h);
		if (line_is_empty(msg, h, e))
			return e;
	}
	return h;
}

/* --------------------------------------------------------------- fields */

/* rfc5322_field_next - the next field of a header section (see rfc5322.h). */
bool rfc5322_field_next(const char *hdrs, size_t len, size_t *pos,
			struct rfc5322_field *f)
{
	size_t p = *pos;
	size_t colon;

	if (p >= len)
		return false;
	size_t e = line_end(hdrs, len, p);
	if (line_is_empty(hdrs, p, e))
		return false;
	size_t n = field_name_len(hdrs, p, e, &colon);
	if (n == 0)
		return false;
	while (e < len && (hdrs[e] == ' ' || hdrs[e] == '\t'))
		e = line_end(hdrs, len, e);
	size_t v_end = e;
	if (v_end > colon + 1 && hdrs[v_end - 1] == '\n')
		v_end--;
	if (v_end > colon + 1 && hdrs[v_end - 1] == '\r')
		v_end--;
	f->name = hdrs + p;
	f->name_len = n;
	f->value = hdrs + colon + 1;
	f->value_len = v_end - (colon + 1);
	*pos = e;
	return true;
}

/* rfc5322_unfold - append value without line breaks, trimmed. */
void rfc5322_unfold(const char *value, size_t len, struct str *out)
{
	size_t a = 0, b = len;

	while (a < b && (value[a] == ' ' || value[a] == '\t' ||
			 value[a] == '\r' || value[a] == '\n'))
		a++;
	while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t' ||
			 value[b - 1] == '\r' || value[b - 1] == '\n'))
		b--;
	str_reserve(out, b - a);
	for (size_t i = a; i < b; i++)
		if (value[i] != '\r' && value[i] != '\n')
			str_appendc(out, value[i]);
}

/* rfc5322_header_get - unfolded value of the first field named name. */
bool rfc5322_header_get(const char *hdrs, size_t len, const char *name,
			struct str *value)
{
	size_t nl = strlen(name);
	size_t pos = 0;
	struct rfc5322_field f;

	while (rfc5322_field_next(hdrs, len, &pos, &f)) {
		if (f.name_len == nl && strncasecmp(f.name, name, nl) == 0) {
			rfc5322_unfold(f.value, f.value_len, value);
			return true;
		}
	}
	return false;
}

/*
 * rfc5322_fold_field - append a folded "name: value" line (see rfc5322.h).
 *
 * The text after the colon is " " + value, taken as units of (white space
 * run, word); the inserted SP makes the first unit like every other one,
 * so it too can move to a continuation line when the name is long. A unit
 * that would push the line past RFC5322_LINE_SOFT starts a new line
 * instead (not the first unit: folding right after "name:" gains nothing
 * unless the hard limit forces it), its white space becoming the
 * continuation's indent, so unfolding (which only deletes the CRLF)
 * restores the value byte for byte.
 *
 * Invariants that keep the output one well-formed field, whatever value
 * holds: a fold is only ever made in front of a unit that has a word, so
 * no line is empty or only white space; every continuation starts with
 * the unit's white space (at least one blank) or an inserted SP; CR and
 * LF in the value count as blanks, so no line break is ever copied. Three
 * cases change the unfolded value: a blank run too long to share a line
 * with its word is cut to what fits (one blank at least), trailing blanks
 * that do not fit are dropped, and a word that cannot fit on a line of its
 * own is cut with an inserted CRLF SP. Only "name:" itself can pass
 * RFC5322_LINE_HARD, when the name is that long.
 */
/* is_blank - white space between words; line breaks count as blanks. */
static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* append_blanks - n blanks of ws; CR and LF written as SP. */
static void append_blanks(struct str *out, const char *ws, size_t n)
{
	for (size_t i = 0; i < n; i++)
		str_appendc(out, ws[i] == '\t' ? '\t' : ' ');
}

void rfc5322_fold_field(struct str *out, const char *name, const char *value)
{
	size_t line = strlen(name) + 1;
	const char *p = value;
	bool first = true;

	str_appends(out, name);
	str_appendc(out, ':');
	do {
		/* The first unit's white space is the SP after the colon. */
		size_t lead = first ? 1 : 0;
		const char *ws = p;
		while (is_blank(*p))
			p++;
		const char *w = p;
		while (*p && !is_blank(*p))
			p++;
		size_t wsn = (size_t)(w - ws) + lead, wn = (size_t)(p - w);

		if (wn == 0) {
			/* Trailing blanks: keep what fits, never fold for them. */
			size_t room = line < RFC5322_LINE_HARD ? RFC5322_LINE_HARD - line : 0;
			if (wsn > room)
				wsn = room;
			if (lead && wsn > 0) {
				str_appendc(out, ' ');
				wsn--;
				lead = 0;
			}
			append_blanks(out, ws, wsn);
			break;
		}
		if (wsn + wn > RFC5322_LINE_HARD)
			/* an absurd run of blanks: keep what fits with the word, one at least */
			wsn = wn < RFC5322_LINE_HARD - 1 ? RFC5322_LINE_HARD - wn : 1;
		if (line + wsn + wn > RFC5322_LINE_HARD ||
		    (!first && line + wsn + wn > RFC5322_LINE_SOFT)) {
			str_appends(out, "\r\n");
			line = 0;
		}
		if (lead) {
			str_appendc(out, ' ');
			append_blanks(out, ws, wsn - 1);
		} else {
			append_blanks(out, ws, wsn);
		}
		line += wsn;
		/*
		 * A word longer than the rest of the line: only possible on a
		 * fresh continuation (we folded above) after a single blank,
		 * so every piece has at least one byte.
		 */
		while (line + wn > RFC5322_LINE_HARD) {
			size_t room = RFC5322_LINE_HARD - line;
			str_append(out, w, room);
			str_appends(out, "\r\n ");
			w += room;
			wn -= room;
			line = 1;
		}
		str_append(out, w, wn);
		line += wn;
		first = false;
	} while (*p);
	str_appends(out, "\r\n");
}
