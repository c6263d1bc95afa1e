/*
 * msg_build.c - the message of one recipient of a transmission
 *
 * See msg_build.h for the contract and docs/message-build.md for the
 * rules as users see them. The order of work: check and write the header
 * fields (From, To, Subject, Reply-To, Date, Message-ID, MIME-Version,
 * then the user's), then the body tree:
 *
 *   multipart/mixed            only with attachments
 *     multipart/alternative    only with both text and html
 *       text/plain
 *       multipart/related      only with inline images (cid: = name)
 *         text/html
 *         image/...
 *     attachment ...
 *
 * Why the boundaries cannot collide with content: they are
 * "=_imp_<letter>_<token>", and "=_" never occurs in quoted-printable
 * ("=" is always followed by two hex digits or a line end) nor in base64
 * ("=" only pads at the end). A text is sent 7bit only when it holds no
 * "=_" at all; otherwise it goes quoted-printable. The three boundaries
 * of a message differ in one letter at the same place, so none is a
 * prefix of another.
 *
 * Owns nothing beyond a call; fails only by refusing input (-EINVAL and
 * a named field); memory exhaustion aborts (core/mem.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/id.h"
#include "message/mime_downgrade.h"
#include "message/msg_build.h"
#include "message/rfc5322.h"

/* The longest encoded-word we write: "Subject: " plus one still fits in 78. */
#define EW_MAX 66
/* A plain word longer than this in unstructured text is encoded (and so cut). */
#define WORD_MAX 76
/* An address-list word longer than this cannot be folded safely. */
#define ADDR_WORD_MAX 900
/* Attachment and file names, and the type, in octets. */
#define NAME_MAX_LEN 255
#define TYPE_MAX_LEN 127

/* One build: where it writes and how it reports. */
struct build {
	struct str *out;
	struct msg_build_err *err;
	struct str tmp;		/* scratch: normalised text, decoded data */
	struct str val;		/* scratch: a header value being prepared */
	char token[40];		/* boundary token */
	bool last_qp;		/* the last text part written is quoted-printable */
};

/* fail - record the refusal (field path, then the message); -EINVAL. */
static int fail(struct build *b, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct build *b, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(b->err->field, sizeof(b->err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(b->err->text, sizeof(b->err->text), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Checks of input strings                                             */
/* ------------------------------------------------------------------ */

/* get_string - the string at key of obj: 1 found, 0 absent or null, <0 refused. */
static int get_string(struct build *b, const json_t *obj, const char *key, const char *path,
		      const char **s, size_t *n)
{
	json_t *v = json_object_get(obj, key);

	*s = "";
	*n = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(b, path, "must be a string");
	*s = json_string_value(v);
	*n = json_string_length(v);
	if (memchr(*s, '\0', *n) != NULL)
		return fail(b, path, "must not contain NUL");
	return 1;
}

/* check_header_text - header-bound text: no CR/LF (injection), no other controls but HT. */
static int check_header_text(struct build *b, const char *path, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			return fail(b, path, "must not contain CR or LF (offset %zu)", i);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(b, path, "must not contain control character 0x%02x (offset %zu)",
				    c, i);
	}
	return 0;
}

/* check_email - an addr-spec we can put in <>: local@domain, no blanks or specials. */
static int check_email(struct build *b, const char *path, const char *s, size_t n)
{
	const char *at = NULL;

	if (n == 0)
		return fail(b, path, "must not be empty");
	if (n > 254)
		return fail(b, path, "longer than 254 octets");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' ||
		    c == '(' || c == ')' || c == '\\' || c == '[' || c == ']')
			return fail(b, path, "is not an address: bad character at offset %zu", i);
		if (c == '@')
			at = s + i;
	}
	if (at == NULL || at == s || at == s + n - 1)
		return fail(b, path, "is not an address (local@domain)");
	return 0;
}

/* ------------------------------------------------------------------ */
/* RFC 2047 encoded-words and header values                            */
/* ------------------------------------------------------------------ */

/* q_safe - may c stand for itself in a Q encoded-word anywhere (RFC 2047 5 (3))? */
static bool q_safe(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

/* utf8_len - the length of the character whose lead byte is c (1 for a stray byte). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return c < 0xf0 ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

/*
 * encode_words - s[0..n) as encoded-words of at most EW_MAX octets each,
 * separated by one SP, appended to out. Q or B for the whole run (Q
 * unless it is over a third longer); cut only between UTF-8 characters, since
 * RFC 2047 5 forbids splitting one across words.
 */
static void encode_words(struct str *out, const char *s, size_t n)
{
	size_t qlen = 0;
	bool q;
	const size_t room = EW_MAX - 12;	/* "=?UTF-8?X?" and "?=" */

	for (size_t i = 0; i < n; i++)
		qlen += q_safe((unsigned char)s[i]) || s[i] == ' ' ? 1 : 3;
	/* Q reads better for mostly-Latin text: take it unless a third longer than B. */
	q = qlen * 3 <= (n + 2) / 3 * 4 * 4;
	for (size_t i = 0; i < n;) {
		size_t j = i, cost = 0;

		/* Take whole characters while the encoded text fits. */
		while (j < n) {
			size_t cl = utf8_len((unsigned char)s[j]);
			size_t c = 0;

			if (j + cl > n)
				cl = n - j;
			if (q) {
				for (size_t k = 0; k < cl; k++)
					c += q_safe((unsigned char)s[j + k]) || s[j + k] == ' ' ? 1 : 3;
				if (cost + c > room)
					break;
				cost += c;
			} else {
				if ((j + cl - i + 2) / 3 * 4 > room)
					break;
			}
			j += cl;
		}
		if (j == i)
			j = i + 1;	/* cannot happen with room >= 12; progress regardless */
		if (i > 0)
			str_appendc(out, ' ');
		str_appends(out, q ? "=?UTF-8?Q?" : "=?UTF-8?B?");
		if (q) {
			for (size_t k = i; k < j; k++) {
				unsigned char c = (unsigned char)s[k];

				if (c == ' ')
					str_appendc(out, '_');
				else if (q_safe(c))
					str_appendc(out, (char)c);
				else
					str_appendf(out, "=%02X", c);
			}
		} else {
			base64_encode(s + i, j - i, 0, out);
		}
		str_appends(out, "?=");
		i = j;
	}
}

/* has_8bit - any byte >= 0x80 in s[0..n)? */
static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* blank - SP or HT? */
static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * needs_ew - must this word of a header value be encoded? In
 * unstructured text: non-ASCII, "=?" (a decoder would take it for an
 * encoded-word) or too long for a line. In an address list only words
 * of a display name can be: non-ASCII and none of the characters that
 * belong to addresses, quoted strings or lists (those stay raw UTF-8,
 * RFC 6532).
 */
static bool needs_ew(const char *w, size_t n, bool address)
{
	if (!address)
		return has_8bit(w, n) || n > WORD_MAX ||
		       (n >= 2 && memmem(w, n, "=?", 2) != NULL);
	if (!has_8bit(w, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strchr("@<>\",;:()\\[]", w[i]) != NULL)
			return false;
	return true;
}

/*
 * prepare_value - v[0..n) with its words to encode replaced by
 * encoded-words, into val. Neighbouring words to encode become one run,
 * blanks between them inside it, because blanks between two
 * encoded-words vanish when decoded (RFC 2047 6.2). Leading and
 * trailing blanks are dropped.
 */
static void prepare_value(struct str *val, const char *v, size_t n, bool address)
{
	size_t i = 0;

	str_clear(val);
	while (i < n && blank(v[i]))
		i++;
	while (n > i && blank(v[n - 1]))
		n--;
	while (i < n) {
		size_t ws = i, we, e;

		while (i < n && !blank(v[i]))
			i++;
		we = i;
		if (!needs_ew(v + ws, we - ws, address)) {
			str_append(val, v + ws, we - ws);
		} else {
			/* Extend the run over following words that need it too. */
			e = we;
			for (;;) {
				size_t k = e, s2;

				while (k < n && blank(v[k]))
					k++;
				s2 = k;
				while (k < n && !blank(v[k]))
					k++;
				if (k == s2 || !needs_ew(v + s2, k - s2, address))
					break;
				e = k;
			}
			encode_words(val, v + ws, e - ws);
			i = e;
		}
		/* the blanks up to the next word, as they were */
		ws = i;
		while (i < n && blank(v[i]))
			i++;
		str_append(val, v + ws, i - ws);
	}
}

void msg_build_header(struct str *out, const char *name, const char *value, size_t len)
{
	struct str val = STR_INIT;

	prepare_value(&val, value, len, false);
	rfc5322_fold_field(out, name, str_cstr(&val));
	str_free(&val);
}

/* header_addr - "name: value" for an address list given as text, checked. */
static int header_addr(struct build *b, const char *name, const char *path, const char *v,
		       size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		run = blank(v[i]) ? 0 : run + 1;
		if (run > ADDR_WORD_MAX)
			return fail(b, path, "has a word longer than %d octets", ADDR_WORD_MAX);
	}
	prepare_value(&b->val, v, n, true);
	rfc5322_fold_field(b->out, name, str_cstr(&b->val));
	return 0;
}

/*
 * mailbox - "name: Display Name <email>" from an {email, name} pair: an
 * ASCII name as an atom sequence or a quoted string, a non-ASCII one (or
 * one with a word too long for a line) as encoded-words (the whole name:
 * it is one phrase).
 */
static void mailbox(struct build *b, const char *hname, const char *name, size_t nlen,
		    const char *email, size_t elen)
{
	struct str *val = &b->val;

	str_clear(val);
	if (nlen > 0) {
		bool atoms = true;

		for (size_t i = 0; i < nlen; i++)
			if (strchr("()<>[]:;@\\,.\"", name[i]) != NULL)
				atoms = false;
		size_t run = 0, longest = 0;

		for (size_t i = 0; i < nlen; i++) {
			run = blank(name[i]) ? 0 : run + 1;
			longest = run > longest ? run : longest;
		}
		/* A word too long for a line is encoded too: encoded-words can be cut. */
		if (has_8bit(name, nlen) || longest > WORD_MAX ||
		    (nlen >= 2 && memmem(name, nlen, "=?", 2))) {
			encode_words(val, name, nlen);
		} else if (atoms) {
			str_append(val, name, nlen);
		} else {
			str_appendc(val, '"');
			for (size_t i = 0; i < nlen; i++) {
				if (name[i] == '"' || name[i] == '\\')
					str_appendc(val, '\\');
				str_appendc(val, name[i]);
			}
			str_appendc(val, '"');
		}
		str_appendc(val, ' ');
	}
	str_appendc(val, '<');
	str_append(val, email, elen);
	str_appendc(val, '>');
	rfc5322_fold_field(b->out, hname, str_cstr(val));
}

/* ------------------------------------------------------------------ */
/* Header section                                                      */
/* ------------------------------------------------------------------ */

/* Fields the user may not set in content.headers: we write them. */
static const char *const reserved[] = {
	"From", "To", "Subject", "Reply-To", "Date", "Message-ID", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
	"Return-Path",
};

/* write_from - From: from a string or an {email, name} object. */
static int write_from(struct build *b, const json_t *content)
{
	json_t *f = json_object_get(content, "from");
	const char *s, *name = "";
	size_t n, nlen = 0;
	int r;

	if (f == NULL || json_is_null(f))
		return fail(b, "content.from", "is required");
	if (json_is_string(f)) {
		r = get_string(b, content, "from", "content.from", &s, &n);
		if (r < 0)
			return r;
		if ((r = check_header_text(b, "content.from", s, n)) < 0)
			return r;
		if (memchr(s, '@', n) == NULL)
			return fail(b, "content.from", "is not an address (local@domain)");
		return header_addr(b, "From", "content.from", s, n);
	}
	if (!json_is_object(f))
		return fail(b, "content.from", "must be a string or an object {email, name}");
	r = get_string(b, f, "email", "content.from.email", &s, &n);
	if (r < 0)
		return r;
	if (r == 0)
		return fail(b, "content.from.email", "is required");
	if ((r = check_email(b, "content.from.email", s, n)) < 0)
		return r;
	r = get_string(b, f, "name", "content.from.name", &name, &nlen);
	if (r < 0)
		return r;
	if (r > 0 && (r = check_header_text(b, "content.from.name", name, nlen)) < 0)
		return r;
	mailbox(b, "From", name, nlen, s, n);
	return 0;
}

/* write_to - To: header_to when given, else the recipient's own mailbox. */
static int write_to(struct build *b, const json_t *address)
{
	const char *email, *name = "", *hto;
	size_t elen, nlen = 0, hlen;
	int r;

	if (json_is_string(address)) {
		email = json_string_value(address);
		elen = json_string_length(address);
		if (memchr(email, '\0', elen) != NULL)
			return fail(b, "address", "must not contain NUL");
		if ((r = check_email(b, "address", email, elen)) < 0)
			return r;
		mailbox(b, "To", "", 0, email, elen);
		return 0;
	}
	if (!json_is_object(address))
		return fail(b, "address", "must be a string or an object {email, name, header_to}");
	r = get_string(b, address, "email", "address.email", &email, &elen);
	if (r < 0)
		return r;
	if (r == 0)
		return fail(b, "address.email", "is required");
	if ((r = check_email(b, "address.email", email, elen)) < 0)
		return r;
	r = get_string(b, address, "name", "address.name", &name, &nlen);
	if (r < 0)
		return r;
	if (r > 0 && (r = check_header_text(b, "address.name", name, nlen)) < 0)
		return r;
	r = get_string(b, address, "header_to", "address.header_to", &hto, &hlen);
	if (r < 0)
		return r;
	if (r > 0 && hlen > 0) {
		if ((r = check_header_text(b, "address.header_to", hto, hlen)) < 0)
			return r;
		return header_addr(b, "To", "address.header_to", hto, hlen);
	}
	mailbox(b, "To", name, nlen, email, elen);
	return 0;
}

/* field_name_ok - a field name (RFC 5322 3.6.8): printable ASCII but ':', 1..76 octets. */
static bool field_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 76)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == ':')
			return false;
	return true;
}

/* addr_field - is this user field an address list (folded and encoded as one)? */
static bool addr_field(const char *name)
{
	static const char *const names[] = { "Cc", "Bcc", "Sender", "Resent-From", "Resent-To",
					     "Resent-Cc", "Resent-Sender", "List-Post" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* write_user_headers - content.headers: checked names and values, none of ours. */
static int write_user_headers(struct build *b, const json_t *content)
{
	json_t *h = json_object_get(content, "headers");
	const char *key;
	json_t *v;
	char path[MSG_BUILD_FIELD_MAX];
	int r;

	if (h == NULL || json_is_null(h))
		return 0;
	if (!json_is_object(h))
		return fail(b, "content.headers", "must be an object of strings");
	json_object_foreach(h, key, v) {
		size_t klen = strlen(key), n;
		const char *s;

		snprintf(path, sizeof(path), "content.headers.%s", key);
		if (!field_name_ok(key, klen))
			return fail(b, path, "is not a header field name (1-76 printable ASCII, no ':')");
		for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
			if (strcasecmp(key, reserved[i]) == 0)
				return fail(b, path, "may not be set in headers: use the content's own "
					    "fields or leave it to impetus");
		if (!json_is_string(v))
			return fail(b, path, "must be a string");
		s = json_string_value(v);
		n = json_string_length(v);
		if (memchr(s, '\0', n) != NULL)
			return fail(b, path, "must not contain NUL");
		if ((r = check_header_text(b, path, s, n)) < 0)
			return r;
		if (klen + n > 64 * 1024)
			return fail(b, path, "longer than 64 KiB");
		if (addr_field(key)) {
			if ((r = header_addr(b, key, path, s, n)) < 0)
				return r;
		} else {
			prepare_value(&b->val, s, n, false);
			rfc5322_fold_field(b->out, key, str_cstr(&b->val));
		}
	}
	return 0;
}

/* write_headers - the header section but the Content-* fields of the root part. */
static int write_headers(struct build *b, const json_t *content, const json_t *address,
			 const struct msg_build_opts *o, bool need_subject)
{
	const char *s;
	size_t n;
	int r;
	char date[RFC5322_DATE_SIZE];

	if ((r = write_from(b, content)) < 0)
		return r;
	if ((r = write_to(b, address)) < 0)
		return r;
	r = get_string(b, content, "subject", "content.subject", &s, &n);
	if (r < 0)
		return r;
	if (r == 0 && need_subject)
		return fail(b, "content.subject", "is required");
	if (r > 0) {
		if ((r = check_header_text(b, "content.subject", s, n)) < 0)
			return r;
		msg_build_header(b->out, "Subject", s, n);
	}
	r = get_string(b, content, "reply_to", "content.reply_to", &s, &n);
	if (r < 0)
		return r;
	if (r > 0 && n > 0) {
		if ((r = check_header_text(b, "content.reply_to", s, n)) < 0)
			return r;
		if (memchr(s, '@', n) == NULL)
			return fail(b, "content.reply_to", "is not an address (local@domain)");
		if ((r = header_addr(b, "Reply-To", "content.reply_to", s, n)) < 0)
			return r;
	}
	str_appendf(b->out, "Date: %s\r\n", rfc5322_format_date(o->now, false, date));
	str_appendf(b->out, "Message-ID: <%s@%s>\r\n", b->token, o->hostname);
	str_appends(b->out, "MIME-Version: 1.0\r\n");
	return write_user_headers(b, content);
}

/* ------------------------------------------------------------------ */
/* Body parts                                                          */
/* ------------------------------------------------------------------ */

/* A leaf written in a multipart ends without a line end: the delimiter brings it. */

/* boundary - the boundary of the multipart of kind letter. */
static void boundary(struct build *b, char letter, struct str *out)
{
	str_appendf(out, "=_imp_%c_%s", letter, b->token);
}

/* multipart_open - Content-Type of a multipart, blank line, first delimiter. */
static void multipart_open(struct build *b, const char *subtype, char letter)
{
	str_appendf(b->out, "Content-Type: multipart/%s;\r\n boundary=\"", subtype);
	boundary(b, letter, b->out);
	str_appends(b->out, "\"\r\n\r\n--");
	boundary(b, letter, b->out);
	str_appends(b->out, "\r\n");
}

/* multipart_next - the delimiter between two parts. */
static void multipart_next(struct build *b, char letter)
{
	str_appends(b->out, "\r\n--");
	boundary(b, letter, b->out);
	str_appends(b->out, "\r\n");
}

/* multipart_close - the close delimiter (its line end only at the top). */
static void multipart_close(struct build *b, char letter)
{
	str_appends(b->out, "\r\n--");
	boundary(b, letter, b->out);
	str_appends(b->out, "--");
}

/*
 * text_part - a text/<subtype> leaf: line ends made CRLF (the canonical
 * form of text, RFC 2046 4.1.1), then 7bit when every byte is ASCII,
 * every line at most 998 octets and no "=_" occurs (see the file
 * header), else base64 when more than a third of the bytes are 8-bit
 * (shorter then), else quoted-printable.
 */
static void text_part(struct build *b, const char *subtype, const char *s, size_t n)
{
	struct str *t = &b->tmp;
	size_t eightbit = 0, line = 0, longest = 0;
	bool seq = false;

	str_clear(t);
	str_reserve(t, n + n / 32 + 2);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		/* One line at a time, copied whole: the bytes are only looked at here. */
		while (j < n && s[j] != '\r' && s[j] != '\n') {
			unsigned char c = (unsigned char)s[j];

			eightbit += c >= 0x80;
			if (c == '_' && j > 0 && s[j - 1] == '=')
				seq = true;
			j++;
		}
		str_append(t, s + i, j - i);
		line = j - i;
		if (line > longest)
			longest = line;
		if (j < n) {
			if (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')
				j++;
			str_append(t, "\r\n", 2);
			j++;
		}
		i = j;
	}
	str_appendf(b->out, "Content-Type: text/%s; charset=utf-8\r\n", subtype);
	if (eightbit == 0 && longest <= RFC5322_LINE_HARD && !seq) {
		str_appends(b->out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
		str_append(b->out, t->s, t->len);
	} else if (eightbit * 3 > t->len) {
		str_appends(b->out, "Content-Transfer-Encoding: base64\r\n\r\n");
		base64_encode(t->s, t->len, BASE64_MIME_LINE, b->out);
	} else {
		str_appends(b->out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		mime_qp_encode(t->s, t->len, b->out);
		b->last_qp = true;
		return;
	}
	b->last_qp = false;
}

/* param - append "; key=value" for a file name (blanks at its ends dropped): quoted ASCII or RFC 2231 UTF-8. */
static void param(struct str *out, const char *key, const char *s, size_t n)
{
	/* Readers strip blanks at the ends of a file name: do it here, visibly. */
	while (n > 1 && blank(s[0])) {
		s++;
		n--;
	}
	while (n > 1 && blank(s[n - 1]))
		n--;
	bool plain = !has_8bit(s, n) && n <= 60;

	if (plain) {
		str_appendf(out, ";\r\n %s=\"", key);
		for (size_t i = 0; i < n; i++) {
			if (s[i] == '"' || s[i] == '\\')
				str_appendc(out, '\\');
			str_appendc(out, s[i]);
		}
		str_appendc(out, '"');
		return;
	}
	/* RFC 2231 3-4: key*0*=UTF-8''..., key*1*=... so each line stays short. */
	size_t i = 0;
	for (unsigned sect = 0; i < n; sect++) {
		size_t used = 0;

		str_appendf(out, ";\r\n %s*%u*=%s", key, sect, sect == 0 ? "UTF-8''" : "");
		while (i < n && used < 45) {
			unsigned char c = (unsigned char)s[i++];

			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("!#$&+-.^_`|~", c) != NULL) {
				str_appendc(out, (char)c);
				used++;
			} else {
				str_appendf(out, "%%%02X", c);
				used += 3;
			}
		}
	}
}

/*
 * file_part - one attachment or inline image: {name, type, data} checked
 * (data must be base64), decoded, written back as base64 in 76-octet
 * lines. Inline images get Content-ID: <name> for the html's cid:name.
 */
static int file_part(struct build *b, const json_t *f, const char *list, size_t idx, bool inline_)
{
	char path[MSG_BUILD_FIELD_MAX], base[64];
	const char *name, *type, *data;
	size_t nlen, tlen, dlen, bad, slash = 0;
	int r;

	snprintf(base, sizeof(base), "content.%s[%zu]", list, idx);
	if (!json_is_object(f))
		return fail(b, base, "must be an object {name, type, data}");
	snprintf(path, sizeof(path), "%s.name", base);
	r = get_string(b, f, "name", path, &name, &nlen);
	if (r < 0)
		return r;
	if (r == 0 || nlen == 0)
		return fail(b, path, "is required");
	if (nlen > NAME_MAX_LEN)
		return fail(b, path, "longer than %d octets", NAME_MAX_LEN);
	if ((r = check_header_text(b, path, name, nlen)) < 0)
		return r;
	if (inline_) {
		for (size_t i = 0; i < nlen; i++)
			if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f ||
			    strchr("<>\"\\", name[i]) != NULL)
				return fail(b, path, "is a Content-ID: printable ASCII without blanks, "
					    "<, >, \" or \\ (offset %zu)", i);
	}
	snprintf(path, sizeof(path), "%s.type", base);
	r = get_string(b, f, "type", path, &type, &tlen);
	if (r < 0)
		return r;
	if (r == 0 || tlen == 0)
		return fail(b, path, "is required");
	if (tlen > TYPE_MAX_LEN)
		return fail(b, path, "longer than %d octets", TYPE_MAX_LEN);
	/* type/subtype, tokens of RFC 2045 5.1 */
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)type[i];

		if (c == '/' && slash == 0 && i > 0) {
			slash = i;
			continue;
		}
		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL)
			return fail(b, path, "is not a MIME type (type/subtype)");
	}
	if (slash == 0 || slash == tlen - 1)
		return fail(b, path, "is not a MIME type (type/subtype)");
	if (strncasecmp(type, "multipart/", 10) == 0 || strncasecmp(type, "message/", 8) == 0)
		return fail(b, path, "may not be multipart/* or message/* (sent as base64)");
	snprintf(path, sizeof(path), "%s.data", base);
	r = get_string(b, f, "data", path, &data, &dlen);
	if (r < 0)
		return r;
	if (r == 0)
		return fail(b, path, "is required");
	str_clear(&b->tmp);
	if (!base64_decode(data, dlen, &b->tmp, &bad))
		return fail(b, path, "is not base64 (at offset %zu)", bad);

	str_appends(b->out, "Content-Type: ");
	str_append(b->out, type, tlen);
	param(b->out, "name", name, nlen);
	str_appends(b->out, "\r\nContent-Transfer-Encoding: base64\r\n");
	str_appends(b->out, inline_ ? "Content-Disposition: inline" : "Content-Disposition: attachment");
	param(b->out, "filename", name, nlen);
	str_appends(b->out, "\r\n");
	if (inline_) {
		str_appends(b->out, "Content-ID: <");
		str_append(b->out, name, nlen);
		str_appends(b->out, ">\r\n");
	}
	str_appends(b->out, "\r\n");
	base64_encode(b->tmp.s, b->tmp.len, BASE64_MIME_LINE, b->out);
	return 0;
}

/* The bodies of one content, found and type-checked. */
struct bodies {
	const char *text, *html;
	size_t tlen, hlen;
	bool has_text, has_html;
	const json_t *atts, *imgs;
	size_t natts, nimgs;
};

/* html_node - the html, in multipart/related with its inline images when there are some. */
static int html_node(struct build *b, const struct bodies *d)
{
	int r;

	if (d->nimgs == 0) {
		text_part(b, "html", d->html, d->hlen);
		return 0;
	}
	multipart_open(b, "related", 'r');
	text_part(b, "html", d->html, d->hlen);
	for (size_t i = 0; i < d->nimgs; i++) {
		multipart_next(b, 'r');
		if ((r = file_part(b, json_array_get(d->imgs, i), "inline_images", i, true)) < 0)
			return r;
	}
	multipart_close(b, 'r');
	return 0;
}

/* body_node - text, html, or both as multipart/alternative (plainest first, RFC 2046 5.1.4). */
static int body_node(struct build *b, const struct bodies *d)
{
	int r;

	if (d->has_text && d->has_html) {
		multipart_open(b, "alternative", 'a');
		text_part(b, "plain", d->text, d->tlen);
		multipart_next(b, 'a');
		if ((r = html_node(b, d)) < 0)
			return r;
		multipart_close(b, 'a');
		return 0;
	}
	if (d->has_html)
		return html_node(b, d);
	text_part(b, "plain", d->text, d->tlen);
	return 0;
}

/* get_array - the array at key: its size, 0 when absent; <0 refused. */
static int get_array(struct build *b, const json_t *content, const char *key, const char *path,
		     const json_t **a, size_t *n)
{
	json_t *v = json_object_get(content, key);

	*a = NULL;
	*n = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return fail(b, path, "must be an array");
	*a = v;
	*n = json_array_size(v);
	return 0;
}

/* ------------------------------------------------------------------ */
/* email_rfc822                                                        */
/* ------------------------------------------------------------------ */

/*
 * rfc822 - a ready message: CRLF line ends everywhere, a header section
 * of fields followed by an empty line, no line over 998 octets. It is
 * passed through otherwise (its own From, Message-ID...: it is ready).
 */
static int rfc822(struct build *b, const char *s, size_t n)
{
	struct str *t = &b->tmp;
	size_t line = 0, lineno = 1, he, bs;

	str_clear(t);
	str_reserve(t, n + n / 32 + 2);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			str_append(t, "\r\n", 2);
			line = 0;
			lineno++;
			continue;
		}
		if (++line > RFC5322_LINE_HARD)
			return fail(b, "content.email_rfc822", "line %zu is longer than %d octets",
				    lineno, RFC5322_LINE_HARD);
		str_appendc(t, c);
	}
	he = rfc5322_header_end(t->s, t->len);
	bs = rfc5322_body_start(t->s, t->len);
	if (he == 0)
		return fail(b, "content.email_rfc822", "does not start with a header field");
	if (bs == he || bs > t->len || memcmp(t->s + he, "\r\n", 2) != 0)
		return fail(b, "content.email_rfc822",
			    "has no empty line between the header section and the body");
	str_append(b->out, t->s, t->len);
	if (t->len < 2 || memcmp(t->s + t->len - 2, "\r\n", 2) != 0)
		str_appends(b->out, "\r\n");
	return 0;
}

/* ------------------------------------------------------------------ */
/* The message                                                         */
/* ------------------------------------------------------------------ */

/* make_token - the Message-ID left side and boundary token: [A-Za-z0-9.-] only. */
static void make_token(struct build *b, const char *unique)
{
	char idb[ID_BUF_SIZE];
	size_t k = 0;

	if (unique == NULL || *unique == '\0')
		unique = id_format(id_next(), idb);
	for (size_t i = 0; unique[i] != '\0' && k + 1 < sizeof(b->token); i++) {
		char c = unique[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-')
			b->token[k++] = c;
	}
	if (k == 0)
		b->token[k++] = '0';
	b->token[k] = '\0';
}

/* build - the message into b->out; <0 refused. */
static int build(struct build *b, const json_t *content, const json_t *address,
		 const struct msg_build_opts *o)
{
	struct bodies d = { 0 };
	const char *s;
	size_t n;
	int r;

	if (!json_is_object(content))
		return fail(b, "content", "must be an object");
	if (json_object_get(content, "template_id") != NULL)
		return fail(b, "content.template_id", "stored templates are not supported: "
			    "give the content inline");
	r = get_string(b, content, "email_rfc822", "content.email_rfc822", &s, &n);
	if (r < 0)
		return r;
	if (r > 0) {
		static const char *const others[] = { "text", "html", "attachments",
						      "inline_images", "subject" };

		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
			if (json_object_get(content, others[i]) != NULL) {
				char path[MSG_BUILD_FIELD_MAX];

				snprintf(path, sizeof(path), "content.%s", others[i]);
				return fail(b, path, "may not be given with email_rfc822");
			}
		return rfc822(b, s, n);
	}

	r = get_string(b, content, "text", "content.text", &d.text, &d.tlen);
	if (r < 0)
		return r;
	d.has_text = r > 0;
	r = get_string(b, content, "html", "content.html", &d.html, &d.hlen);
	if (r < 0)
		return r;
	d.has_html = r > 0;
	if (!d.has_text && !d.has_html)
		return fail(b, "content", "needs text, html or email_rfc822");
	if ((r = get_array(b, content, "attachments", "content.attachments", &d.atts, &d.natts)) < 0)
		return r;
	if ((r = get_array(b, content, "inline_images", "content.inline_images", &d.imgs,
			   &d.nimgs)) < 0)
		return r;
	if (d.nimgs > 0 && !d.has_html)
		return fail(b, "content.inline_images", "need html content to refer to them (cid:)");

	if ((r = write_headers(b, content, address, o, true)) < 0)
		return r;
	if (d.natts == 0) {
		bool leaf = !(d.has_text && d.has_html) && d.nimgs == 0;

		if ((r = body_node(b, &d)) < 0)
			return r;
		if (!leaf) {
			str_appends(b->out, "\r\n");
		} else if (memcmp(b->out->s + b->out->len - 2, "\r\n", 2) != 0) {
			/* The message ends with a line end: a soft one keeps a q-p text as it was. */
			str_appends(b->out, b->last_qp ? "=\r\n" : "\r\n");
		}
		return 0;
	} else {
		multipart_open(b, "mixed", 'm');
		if ((r = body_node(b, &d)) < 0)
			return r;
		for (size_t i = 0; i < d.natts; i++) {
			multipart_next(b, 'm');
			if ((r = file_part(b, json_array_get(d.atts, i), "attachments", i, false)) < 0)
				return r;
		}
		multipart_close(b, 'm');
	}
	str_appends(b->out, "\r\n");
	return 0;
}

int msg_build(const json_t *content, const json_t *address, const struct msg_build_opts *o,
	      struct str *out, struct msg_build_err *err)
{
	struct build b = { .out = out, .err = err, .tmp = STR_INIT, .val = STR_INIT };
	size_t start = out->len;
	int r;

	err->field[0] = '\0';
	err->text[0] = '\0';
	make_token(&b, o->unique);
	assert(o->hostname != NULL && *o->hostname != '\0');	/* the caller's Hostname */
	r = build(&b, content, address, o);
	if (r < 0)
		str_truncate(out, start);
	str_free(&b.tmp);
	str_free(&b.val);
	return r;
}
