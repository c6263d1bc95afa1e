/*
 * dsn.c - rendering delivery status notifications (see dsn.h)
 *
 * The parts are rendered first, each into its own buffer, so the MIME
 * boundary can be checked against everything it will enclose (remote
 * replies and the original message are attacker-controlled; a boundary
 * that occurs in them would let them forge parts of our report). Then the
 * header and the parts are assembled. No state, no failure paths other
 * than memory exhaustion (abort).
 */
#include "message/dsn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "message/rfc5322.h"

/* Width of the human-readable part's lines (RFC 5322 asks for < 78). */
#define DSN_TEXT_WIDTH 72
/* RFC 2046 5.1.1: a boundary is 1 to 70 characters. */
#define DSN_BOUNDARY_MAX 70

/* What kind of report this is, from its recipients' actions. */
enum dsn_kind { DSN_KIND_SUCCESS, DSN_KIND_DELAY, DSN_KIND_FAILURE };

/* What part 3 holds. */
enum dsn_orig_part { ORIG_NONE, ORIG_HEADERS, ORIG_FULL };

/* ============================================================ cleaning */

/*
 * clean_addr - append an address for a report field or the text part:
 * printable US-ASCII as is, anything else (control bytes, 8-bit bytes of
 * an SMTPUTF8 address) as xtext "+HH" (RFC 3461 4), so the report stays
 * 7-bit and one line.
 */
static void clean_addr(const char *s, struct str *out)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 32 && c < 127)
			str_appendc(out, (char)c);
		else
			str_appendf(out, "+%02X", c);
	}
}

/*
 * utf8_seq - length of the well-formed UTF-8 sequence (RFC 3629) at p,
 * 2 to 4 bytes, or 0: no overlong forms, no surrogates, nothing past
 * U+10FFFF. p is NUL-terminated, so reading stops at the NUL.
 */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	unsigned min, cp;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* embedded_len - length of an EmbeddedUnicodeChar "\x{1-6 hex}" at s, else 0. */
static size_t embedded_len(const char *s)
{
	size_t i = 3;

	if (s[0] != '\\' || s[1] != 'x' || s[2] != '{')
		return 0;
	while (isxdigit((unsigned char)s[i]) && i < 9)
		i++;
	return i > 3 && s[i] == '}' ? i + 1 : 0;
}

/*
 * utf8_addr - an address as RFC 6533 utf-8-addr-unitext or, with xtext,
 * utf-8-addr-xtext: the two differ only in how a UTF-8 character goes
 * out (as it is, or as \x{code point}).
 */
static void utf8_addr(const char *s, bool xtext, struct str *out)
{
	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t n;

		if (c == '\\' && (n = embedded_len(s)) > 0) {
			str_append(out, s, n);
			s += n;
		} else if (c > 32 && c < 127 && c != '\\' && c != '+' && c != '=') {
			str_appendc(out, (char)c);
			s++;
		} else if (c >= 0x80 && (n = utf8_seq((const unsigned char *)s)) > 0) {
			if (xtext) {
				unsigned cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
				for (size_t i = 1; i < n; i++)
					cp = (cp << 6) | ((unsigned char)s[i] & 0x3f);
				str_appendf(out, "\\x{%X}", cp);
			} else {
				str_append(out, s, n);
			}
			s += n;
		} else {
			str_appendf(out, "\\x{%02X}", c);
			s++;
		}
	}
}

/* dsn_utf8_addr - an address as RFC 6533 utf-8-addr-unitext (see dsn.h). */
void dsn_utf8_addr(const char *s, struct str *out)
{
	utf8_addr(s, false, out);
}

/* dsn_utf8_addr_xtext - an address as RFC 6533 utf-8-addr-xtext (see dsn.h). */
void dsn_utf8_addr_xtext(const char *s, struct str *out)
{
	utf8_addr(s, true, out);
}

/* dsn_is_ascii - no byte >= 0x80 in s. */
bool dsn_is_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* put_addr - an address for a report field: "utf-8; " unitext in a global report when it needs it. */
static void put_addr(const struct dsn_info *info, const char *addr, struct str *out)
{
	if (info->utf8 && !dsn_is_ascii(addr)) {
		str_appends(out, "utf-8; ");
		dsn_utf8_addr(addr, out);
	} else {
		str_appends(out, "rfc822; ");
		clean_addr(addr, out);
	}
}

/* put_text_addr - an address for the text part or the To: field: UTF-8 as is in a global report. */
static void put_text_addr(const struct dsn_info *info, const char *addr, struct str *out)
{
	if (info->utf8)
		dsn_utf8_addr(addr, out);
	else
		clean_addr(addr, out);
}

/* is_reply_code - does s start with a three-digit reply code 2xx..5xx? */
static bool is_reply_code(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) &&
	       (s[3] == ' ' || s[3] == '-' || s[3] == '\0' || s[3] == '\r' ||
		s[3] == '\n');
}

/*
 * enhanced_len - length of an RFC 3463 enhanced code at s ("5.1.1",
 * class 2, 4 or 5, subject and detail of 1-3 digits) followed by white
 * space or the end, else 0.
 */
static size_t enhanced_len(const char *s)
{
	size_t i = 0;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;
		while (isdigit((unsigned char)s[i]) && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	if (s[i] != '\0' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' &&
	    s[i] != '\n')
		return 0;
	return i;
}

/*
 * clean_diag - append a remote reply (or local error text) as one line of
 * printable US-ASCII: a multi-line reply is joined with single spaces and
 * the repeated "550-5.1.1 " prefixes of its continuation lines dropped;
 * control bytes become spaces, 8-bit bytes "?", runs of white space one
 * space, and the ends are trimmed.
 */
static void clean_diag(const char *s, struct str *out)
{
	char code[4] = "";
	char ext[16] = "";
	size_t start = out->len;
	bool first = true;

	while (*s) {
		size_t n = strcspn(s, "\r\n");
		const char *line = s, *end = s + n;

		if (first) {
			if (is_reply_code(line)) {
				memcpy(code, line, 3);
				size_t el = line[3] == ' ' || line[3] == '-' ?
					    enhanced_len(line + 4) : 0;
				if (el > 0 && el < sizeof(ext)) {
					memcpy(ext, line + 4, el);
					ext[el] = '\0';
				}
			}
		} else {
			/* drop the prefix the first line already showed */
			if (code[0] && end - line >= 3 &&
			    memcmp(line, code, 3) == 0 &&
			    (line + 3 == end || line[3] == '-' || line[3] == ' ')) {
				line += line + 3 == end ? 3 : 4;
				size_t el = strlen(ext);
				if (el && (size_t)(end - line) >= el &&
				    memcmp(line, ext, el) == 0 &&
				    (line + el == end || line[el] == ' '))
					line += el;
			}
			str_appendc(out, ' ');
		}
		for (; line < end; line++) {
			unsigned char c = (unsigned char)*line;
			if (c >= 0x80)
				str_appendc(out, '?');
			else if (c < 32 || c == 127)
				str_appendc(out, ' ');
			else
				str_appendc(out, (char)c);
		}
		first = false;
		s = end;
		while (*s == '\r' || *s == '\n')
			s++;
	}

	/* collapse white space runs and trim, in place */
	size_t w = start;
	for (size_t r = start; r < out->len; r++) {
		if (out->s[r] == ' ' && (w == start || out->s[w - 1] == ' '))
			continue;
		out->s[w++] = out->s[r];
	}
	while (w > start && out->s[w - 1] == ' ')
		w--;
	str_truncate(out, w);
}

/* clean_line - append free text (a host name, an id) with nothing but printable ASCII. */
static void clean_line(const char *s, struct str *out)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		str_appendc(out, c >= 32 && c < 127 ? (char)c : '?');
	}
}

/* ========================================================== statuses */

/* dsn_status_from_reply - "x.y.z" for a reply (see dsn.h). */
const char *dsn_status_from_reply(int code, const char *text, bool permanent,
				  char buf[DSN_STATUS_SIZE])
{
	int cls = code / 100;

	if (code < 200 || code > 599 || (cls != 2 && cls != 4 && cls != 5))
		cls = permanent ? 5 : 4;
	if (text) {
		const char *p = text;
		while (*p == ' ' || *p == '\t')
			p++;
		if (is_reply_code(p)) {
			p += 3;
			if (*p == ' ' || *p == '-')
				p++;
			while (*p == ' ' || *p == '\t')
				p++;
		}
		size_t n = enhanced_len(p);
		if (n > 0 && n < DSN_STATUS_SIZE && p[0] - '0' == cls) {
			memcpy(buf, p, n);
			buf[n] = '\0';
			return buf;
		}
	}
	snprintf(buf, DSN_STATUS_SIZE, "%d.0.0", cls);
	return buf;
}

/* status_for - the Status: of a recipient, valid whatever the caller gave. */
static const char *status_for(const struct dsn_rcpt *r)
{
	if (r->status && enhanced_len(r->status) == strlen(r->status) &&
	    strlen(r->status) < DSN_STATUS_SIZE)
		return r->status;
	if (r->action && strcasecmp(r->action, "failed") == 0)
		return "5.0.0";
	if (r->action && strcasecmp(r->action, "delayed") == 0)
		return "4.0.0";
	return "2.0.0";
}

/* action_of - the recipient's action, "failed" when the caller left it out. */
static const char *action_of(const struct dsn_rcpt *r)
{
	static const char *const known[] = {
		"failed", "delayed", "delivered", "relayed", "expanded",
	};

	if (r->action)
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcasecmp(r->action, known[i]) == 0)
				return known[i];
	return "failed";
}

/* dsn_needs_utf8 - must this report be an RFC 6533 global one? (see dsn.h) */
bool dsn_needs_utf8(const struct dsn_info *info, bool orig_smtputf8)
{
	if (!dsn_is_ascii(info->to))
		return true;
	for (size_t i = 0; i < info->nrcpt; i++)
		if (!dsn_is_ascii(info->rcpts[i].addr) || !dsn_is_ascii(info->rcpts[i].orcpt))
			return true;
	if (orig_smtputf8 && info->orig && info->orig_len) {
		size_t n = rfc5322_header_end(info->orig, info->orig_len);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)info->orig[i] >= 0x80)
				return true;
	}
	return false;
}

/* dsn_wanted - does this recipient's NOTIFY ask for this DSN? (see dsn.h) */
bool dsn_wanted(const char *sender, uint8_t notify, const char *action)
{
	if (sender == NULL || sender[0] == '\0' || action == NULL)
		return false;
	if (notify & ENVELOPE_NOTIFY_NEVER)
		return false;
	/* RFC 3461 4.1: without NOTIFY, FAILURE (and DELAY at our choice). */
	if (strcasecmp(action, "failed") == 0)
		return notify == 0 || (notify & ENVELOPE_NOTIFY_FAILURE);
	if (strcasecmp(action, "delayed") == 0)
		return notify == 0 || (notify & ENVELOPE_NOTIFY_DELAY);
	if (strcasecmp(action, "delivered") == 0 ||
	    strcasecmp(action, "relayed") == 0 ||
	    strcasecmp(action, "expanded") == 0)
		return (notify & ENVELOPE_NOTIFY_SUCCESS) != 0;
	return false;
}

/* ====================================================== text wrapping */

/*
 * wrap - append text as lines of at most width characters, the first
 * starting with first_indent spaces and the others with indent; breaks at
 * spaces, and inside a word only when the word alone is too long.
 */
static void wrap(struct str *out, const char *text, size_t first_indent,
		 size_t indent, size_t width)
{
	size_t col = first_indent;
	bool empty = true;

	for (size_t i = 0; i < first_indent; i++)
		str_appendc(out, ' ');
	while (*text) {
		while (*text == ' ')
			text++;
		size_t n = strcspn(text, " ");
		if (n == 0)
			break;
		if (!empty && col + 1 + n > width) {
			str_appends(out, "\r\n");
			for (size_t i = 0; i < indent; i++)
				str_appendc(out, ' ');
			col = indent;
			empty = true;
		}
		if (!empty) {
			str_appendc(out, ' ');
			col++;
		}
		while (col + n > width) {
			size_t room = width > col ? width - col : 1;
			/* never split a UTF-8 sequence (global reports) */
			while (room > 1 && ((unsigned char)text[room] & 0xc0) == 0x80)
				room--;
			str_append(out, text, room);
			str_appends(out, "\r\n");
			for (size_t i = 0; i < indent; i++)
				str_appendc(out, ' ');
			col = indent;
			text += room;
			n -= room;
		}
		str_append(out, text, n);
		col += n;
		text += n;
		empty = false;
	}
	str_appends(out, "\r\n");
}

/* wrapf - wrap() a printf-formatted paragraph with no indent. */
static void wrapf(struct str *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void wrapf(struct str *out, const char *fmt, ...)
{
	struct str t = STR_INIT;
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(&t, fmt, ap);
	va_end(ap);
	wrap(out, str_cstr(&t), 0, 0, DSN_TEXT_WIDTH);
	str_free(&t);
}

/* ============================================================= parts */

/* report_kind - failure if any recipient failed, else delay if any is delayed. */
static enum dsn_kind report_kind(const struct dsn_info *info)
{
	enum dsn_kind k = DSN_KIND_SUCCESS;

	for (size_t i = 0; i < info->nrcpt; i++) {
		const char *a = action_of(&info->rcpts[i]);
		if (strcmp(a, "failed") == 0)
			return DSN_KIND_FAILURE;
		if (strcmp(a, "delayed") == 0)
			k = DSN_KIND_DELAY;
	}
	return k;
}

/*
 * orig_part - what to return of the original. RET (RFC 3461 4.3) wins;
 * without it Bounces_Inline_Original decides. The whole message goes only
 * into reports of failure: RFC 3461 4.3 asks for the full content "in any
 * failed DSN", and a delay or success notice does not need the body, so
 * those get the header at most.
 */
static enum dsn_orig_part orig_part(const struct dsn_info *info, enum dsn_kind kind)
{
	enum dsn_orig_part p;

	if (info->orig == NULL || info->orig_len == 0)
		return ORIG_NONE;
	if (info->ret == ENVELOPE_RET_FULL)
		p = ORIG_FULL;
	else if (info->ret == ENVELOPE_RET_HDRS)
		p = ORIG_HEADERS;
	else if (info->inline_mode == DSN_INLINE_ALL)
		p = ORIG_FULL;
	else if (info->inline_mode == DSN_INLINE_NONE)
		p = ORIG_NONE;
	else
		p = ORIG_HEADERS;
	if (p == ORIG_FULL && kind != DSN_KIND_FAILURE)
		p = ORIG_HEADERS;
	return p;
}

/* reporting_host - our host name for the report, never empty. */
static const char *reporting_host(const struct dsn_info *info)
{
	return info->reporting_mta && info->reporting_mta[0] ?
	       info->reporting_mta : "localhost";
}

/* render_text - part 1: the explanation a person reads. */
static void render_text(const struct dsn_info *info, enum dsn_kind kind,
			enum dsn_orig_part op, struct str *out)
{
	struct str host = STR_INIT, line = STR_INIT;
	char date[RFC5322_DATE_SIZE];

	clean_line(reporting_host(info), &host);
	str_appends(out, "Content-Description: Notification\r\n");
	if (info->utf8)
		str_appends(out, "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Transfer-Encoding: 8bit\r\n\r\n");
	else
		str_appends(out, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	wrapf(out, "This is the mail delivery system at %s.", str_cstr(&host));
	str_appends(out, "\r\n");
	switch (kind) {
	case DSN_KIND_FAILURE:
		wrapf(out, "Your message could not be delivered to one or more "
			   "of its recipients. Delivery to them has been given up "
			   "for good; the message will not be retried for them.");
		break;
	case DSN_KIND_DELAY:
		wrapf(out, "Your message has not yet been delivered to one or "
			   "more of its recipients. This is only a warning: "
			   "delivery is still being retried, and you do not need "
			   "to send the message again.");
		break;
	case DSN_KIND_SUCCESS:
		wrapf(out, "This is the delivery report you asked for: your "
			   "message has reached the recipients listed below.");
		break;
	}
	if (info->orig_msg_id || info->arrival) {
		str_appends(out, "\r\n");
		str_clear(&line);
		str_appends(&line, "The message");
		if (info->orig_msg_id) {
			str_appends(&line, " (queue id ");
			clean_line(info->orig_msg_id, &line);
			str_appends(&line, ")");
		}
		if (info->arrival)
			str_appendf(&line, " was received on %s",
				    rfc5322_format_date(info->arrival, false, date));
		str_appends(&line, ".");
		wrap(out, str_cstr(&line), 0, 0, DSN_TEXT_WIDTH);
	}

	for (size_t i = 0; i < info->nrcpt; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];
		const char *a = action_of(r);

		str_appends(out, "\r\n");
		str_clear(&line);
		str_appendc(&line, '<');
		put_text_addr(info, r->addr ? r->addr : "", &line);
		str_appends(&line, ">: ");
		if (strcmp(a, "failed") == 0)
			str_appends(&line, "delivery failed permanently");
		else if (strcmp(a, "delayed") == 0)
			str_appends(&line, "delivery delayed, still trying");
		else if (strcmp(a, "delivered") == 0)
			str_appends(&line, "delivered");
		else if (strcmp(a, "relayed") == 0)
			str_appends(&line, "relayed to a system that sends no "
					   "delivery reports");
		else
			str_appends(&line, "delivered to a list or alias, "
					   "which was expanded");
		wrap(out, str_cstr(&line), 0, 4, DSN_TEXT_WIDTH);
		if (r->remote_mta) {
			str_clear(&line);
			str_appends(&line, "Remote host: ");
			clean_line(r->remote_mta, &line);
			wrap(out, str_cstr(&line), 4, 8, DSN_TEXT_WIDTH);
		}
		if (r->diagnostic) {
			str_clear(&line);
			str_appends(&line, "Reason: ");
			clean_diag(r->diagnostic, &line);
			wrap(out, str_cstr(&line), 4, 8, DSN_TEXT_WIDTH);
		}
		if (strcmp(a, "delayed") == 0 && r->will_retry_until) {
			str_clear(&line);
			str_appendf(&line, "Will be retried until %s",
				    rfc5322_format_date(r->will_retry_until,
							false, date));
			wrap(out, str_cstr(&line), 4, 8, DSN_TEXT_WIDTH);
		}
	}

	str_appends(out, "\r\n");
	if (op == ORIG_FULL)
		wrapf(out, "The delivery report and your original message are "
			   "attached.");
	else if (op == ORIG_HEADERS)
		wrapf(out, "The delivery report and the header of your original "
			   "message are attached.");
	else
		wrapf(out, "The delivery report is attached.");
	str_free(&host);
	str_free(&line);
}

/* field - append "Name: value" (value already clean), folded. */
static void field(struct str *out, const char *name, const char *value)
{
	rfc5322_fold_field(out, name, value);
}

/* render_status - part 2: the message/delivery-status report (RFC 3464). */
static void render_status(const struct dsn_info *info, struct str *out)
{
	struct str v = STR_INIT;
	char date[RFC5322_DATE_SIZE];

	str_appends(out, "Content-Description: Delivery report\r\n");
	if (info->utf8)
		str_appends(out, "Content-Type: message/global-delivery-status\r\n"
				 "Content-Transfer-Encoding: 8bit\r\n\r\n");
	else
		str_appends(out, "Content-Type: message/delivery-status\r\n\r\n");

	/* per-message fields (RFC 3464 2.2), in the grammar's order */
	if (info->envid) {
		clean_addr(info->envid, &v);
		field(out, "Original-Envelope-Id", str_cstr(&v));
	}
	str_clear(&v);
	str_appends(&v, "dns; ");
	clean_line(reporting_host(info), &v);
	field(out, "Reporting-MTA", str_cstr(&v));
	if (info->arrival)
		field(out, "Arrival-Date",
		      rfc5322_format_date(info->arrival, false, date));
	if (info->orig_msg_id) {
		/* an extension field, like Postfix's X-Postfix-Queue-ID */
		str_clear(&v);
		clean_line(info->orig_msg_id, &v);
		field(out, "X-Impetus-Queue-ID", str_cstr(&v));
	}

	/* one block per recipient (RFC 3464 2.3), each after a blank line */
	for (size_t i = 0; i < info->nrcpt; i++) {
		const struct dsn_rcpt *r = &info->rcpts[i];
		const char *a = action_of(r);

		str_appends(out, "\r\n");
		if (r->orcpt && r->orcpt[0]) {
			/* stored as "addr-type;addr"; a bare address is rfc822 */
			const char *semi = strchr(r->orcpt, ';');
			const char *oaddr = semi ? semi + 1 : r->orcpt;
			str_clear(&v);
			if (info->utf8 && (!dsn_is_ascii(oaddr) ||
					   (semi && semi - r->orcpt == 5 &&
					    strncasecmp(r->orcpt, "utf-8", 5) == 0))) {
				/* RFC 6533 3: the utf-8 type, unitext form */
				while (*oaddr == ' ')
					oaddr++;
				str_appends(&v, "utf-8; ");
				dsn_utf8_addr(oaddr, &v);
			} else {
				if (semi == NULL)
					str_appends(&v, "rfc822;");
				clean_addr(r->orcpt, &v);
			}
			field(out, "Original-Recipient", str_cstr(&v));
		}
		str_clear(&v);
		put_addr(info, r->addr ? r->addr : "", &v);
		field(out, "Final-Recipient", str_cstr(&v));
		field(out, "Action", a);
		field(out, "Status", status_for(r));
		if (r->remote_mta && r->remote_mta[0]) {
			str_clear(&v);
			str_appends(&v, "dns; ");
			clean_line(r->remote_mta, &v);
			field(out, "Remote-MTA", str_cstr(&v));
		}
		if (r->diagnostic) {
			struct str d = STR_INIT;
			clean_diag(r->diagnostic, &d);
			if (d.len) {
				/* an SMTP reply is "smtp"; our own words are not */
				str_clear(&v);
				str_appends(&v, is_reply_code(d.s) ?
					    "smtp; " : "X-Impetus; ");
				str_append(&v, d.s, d.len);
				field(out, "Diagnostic-Code", str_cstr(&v));
			}
			str_free(&d);
		}
		if (r->last_attempt)
			field(out, "Last-Attempt-Date",
			      rfc5322_format_date(r->last_attempt, false, date));
		if (strcmp(a, "delayed") == 0 && r->will_retry_until)
			field(out, "Will-Retry-Until",
			      rfc5322_format_date(r->will_retry_until, false, date));
	}
	str_free(&v);
}

/* has_8bit - any byte a 7-bit transfer encoding cannot carry? */
static bool has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80 || p[i] == '\0')
			return true;
	return false;
}

/*
 * append_crlf - append bytes with every line ending made CRLF (a bare LF
 * or a bare CR becomes CRLF) and a final CRLF if the bytes lack one.
 */
static void append_crlf(struct str *out, const char *p, size_t n)
{
	size_t i = 0, run = 0;

	str_reserve(out, n + 2);
	while (i < n) {
		if (p[i] != '\r' && p[i] != '\n') {
			i++;
			run++;
			continue;
		}
		str_append(out, p + i - run, run);
		run = 0;
		str_appends(out, "\r\n");
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		i++;
	}
	str_append(out, p + i - run, run);
	if (out->len < 2 || out->s[out->len - 2] != '\r' || out->s[out->len - 1] != '\n')
		str_appends(out, "\r\n");
}

/* render_orig - part 3: the original message or its header section. */
static void render_orig(const struct dsn_info *info, enum dsn_orig_part op,
			struct str *out)
{
	size_t n = info->orig_len;

	if (op == ORIG_HEADERS) {
		n = rfc5322_header_end(info->orig, info->orig_len);
		str_appends(out, "Content-Description: Undelivered Message Headers\r\n");
		str_appends(out, info->utf8 ? "Content-Type: message/global-headers\r\n" :
				 "Content-Type: text/rfc822-headers\r\n");
	} else {
		str_appends(out, "Content-Description: Undelivered Message\r\n");
		str_appends(out, info->utf8 ? "Content-Type: message/global\r\n" :
				 "Content-Type: message/rfc822\r\n");
	}
	/*
	 * 8-bit content (8BITMIME or SMTPUTF8 originals) is returned as it
	 * came, declared 8bit; a bounce of such a message goes back along
	 * the path it came, which carried 8-bit.
	 */
	if (has_8bit(info->orig, n))
		str_appends(out, "Content-Transfer-Encoding: 8bit\r\n");
	str_appends(out, "\r\n");
	if (n > 0)
		append_crlf(out, info->orig, n);
}

/* ========================================================= assembling */

/* boundary_ok - does no enclosed part contain "--boundary"? */
static bool boundary_ok(const char *b, struct str *parts, size_t nparts)
{
	char delim[DSN_BOUNDARY_MAX + 3];
	size_t n = (size_t)snprintf(delim, sizeof(delim), "--%s", b);

	for (size_t i = 0; i < nparts; i++)
		if (parts[i].len && memmem(parts[i].s, parts[i].len, delim, n))
			return false;
	return true;
}

/*
 * make_boundary - the caller's boundary or one derived from the
 * Message-ID (the bchars of it, so it is unique per bounce), made longer
 * with "." and a counter until no part contains it.
 */
static void make_boundary(const struct dsn_info *info, struct str *parts,
			  size_t nparts, struct str *b)
{
	if (info->boundary && info->boundary[0]) {
		for (const char *s = info->boundary;
		     *s && b->len < DSN_BOUNDARY_MAX - 8; s++)
			if (isalnum((unsigned char)*s) || strchr("'()+_,-./:=?", *s))
				str_appendc(b, *s);
	} else {
		str_appends(b, "impetus-dsn=");
		if (info->message_id)
			for (const char *s = info->message_id;
			     *s && b->len < DSN_BOUNDARY_MAX - 8; s++)
				if (isalnum((unsigned char)*s) || strchr("._-", *s))
					str_appendc(b, *s);
		if (b->len == strlen("impetus-dsn="))
			str_appendf(b, "%lld", (long long)info->now);
	}
	if (b->len == 0)
		str_appends(b, "impetus-dsn");
	size_t base = b->len;
	for (unsigned i = 1; !boundary_ok(str_cstr(b), parts, nparts); i++) {
		str_truncate(b, base);
		str_appendf(b, ".%u", i % 10000000u);
	}
}

/* dsn_render - the complete bounce message (see dsn.h). */
void dsn_render(const struct dsn_info *info, struct str *out)
{
	struct str parts[3] = { STR_INIT, STR_INIT, STR_INIT };
	struct str b = STR_INIT, v = STR_INIT;
	char date[RFC5322_DATE_SIZE];
	enum dsn_kind kind = report_kind(info);
	enum dsn_orig_part op = orig_part(info, kind);
	size_t nparts = op == ORIG_NONE ? 2 : 3;

	render_text(info, kind, op, &parts[0]);
	render_status(info, &parts[1]);
	if (op != ORIG_NONE)
		render_orig(info, op, &parts[2]);
	make_boundary(info, parts, nparts, &b);

	/* the header section */
	if (info->from && strchr(info->from, '<')) {
		clean_line(info->from, &v);
	} else {
		str_appends(&v, "Mail Delivery System <");
		if (info->from && info->from[0])
			clean_addr(info->from, &v);
		else {
			str_appends(&v, "MAILER-DAEMON@");
			clean_line(reporting_host(info), &v);
		}
		str_appendc(&v, '>');
	}
	field(out, "From", str_cstr(&v));
	str_clear(&v);
	if (info->to && info->to[0]) {
		str_appendc(&v, '<');
		put_text_addr(info, info->to, &v);
		str_appendc(&v, '>');
	} else {
		str_appends(&v, "undisclosed-recipients:;");
	}
	field(out, "To", str_cstr(&v));
	field(out, "Subject",
	      kind == DSN_KIND_FAILURE ? "Undelivered Mail Returned to Sender" :
	      kind == DSN_KIND_DELAY ? "Delayed Mail (still being retried)" :
	      "Successful Mail Delivery Report");
	field(out, "Date", rfc5322_format_date(info->now, false, date));
	if (info->message_id && info->message_id[0]) {
		str_clear(&v);
		clean_line(info->message_id, &v);
		field(out, "Message-ID", str_cstr(&v));
	}
	field(out, "Auto-Submitted", "auto-replied");
	field(out, "MIME-Version", "1.0");
	str_appendf(out, "Content-Type: multipart/report; "
			 "report-type=%sdelivery-status;\r\n\tboundary=\"%s\"\r\n",
		    info->utf8 ? "global-" : "", str_cstr(&b));
	str_appends(out, "\r\n");

	/*
	 * The body. Every part ends in CRLF and every delimiter is written
	 * as CRLF "--boundary", so the CRLF the delimiter owns (RFC 2046
	 * 5.1.1) never eats a part's last line ending.
	 */
	str_appends(out, "This is a MIME-encapsulated message.\r\n");
	for (size_t i = 0; i < nparts; i++) {
		str_appendf(out, "\r\n--%s\r\n", str_cstr(&b));
		str_append(out, parts[i].s, parts[i].len);
	}
	str_appendf(out, "\r\n--%s--\r\n", str_cstr(&b));

	for (size_t i = 0; i < 3; i++)
		str_free(&parts[i]);
	str_free(&b);
	str_free(&v);
}
