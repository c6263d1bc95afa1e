/*
 * smtp_parse.c - pure parsers of the SMTP protocol (see smtp_parse.h)
 *
 * Everything here is a function of its arguments: no globals, no I/O, safe
 * on any thread. Input comes from the network, so every parser is bounded
 * by the length it is given (or the NUL of a C string the caller built from
 * a length-checked line) and answers malformed input with the precise SMTP
 * reply to send. Allocation failures abort (core/mem.h); nothing else can
 * fail outside the documented replies.
 *
 * Strictness: paths follow the RFC 5321 4.1.2 grammar (with the RFC 6531
 * UTF-8 additions when SMTPUTF8 is in force) with two tolerated deviations
 * that real clients need: one space after "FROM:"/"TO:", and several spaces
 * between parameters. Everything else that is not in the grammar is refused,
 * since a lenient parser is where address smuggling starts.
 */
#include "smtp/smtp_parse.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "message/envelope.h"
#include "smtp/smtp_reply.h"

/* ------------------------------------------------------------------ */
/* Character classes                                                   */
/* ------------------------------------------------------------------ */

static bool is_alpha(unsigned char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* is_atext - RFC 5322 atext: ALPHA / DIGIT / the listed specials. */
static bool is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int hex_val(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool smtp_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t l = utf8_seq_len(p + i, len - i);
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Command lines                                                       */
/* ------------------------------------------------------------------ */

static const char *const verb_names[] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",
	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL",
	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",
	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",
	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_STARTTLS] = "STARTTLS",
	[SMTP_VERB_AUTH] = "AUTH",
};

#define N_VERBS (sizeof(verb_names) / sizeof(verb_names[0]))

const char *smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= N_VERBS)
		return "UNKNOWN";
	return verb_names[v];
}

/*
 * smtp_parse_command - the verb is the text up to the first space or the
 * end of the line; it must be one of the known words in full ("MAILX" and
 * "MAIL\t" are unknown). args then points just past that one space, so
 * "MAIL  FROM:" leaves a leading space that smtp_parse_mail refuses.
 */
enum smtp_verb smtp_parse_command(const char *line, size_t len, const char **args)
{
	size_t wl = 0;

	while (wl < len && line[wl] != ' ')
		wl++;
	*args = line;
	if (wl < 4 || wl > 8)
		return SMTP_VERB_UNKNOWN;
	for (size_t v = 1; v < N_VERBS; v++) {
		const char *name = verb_names[v];
		if (strlen(name) == wl && strncasecmp(line, name, wl) == 0) {
			*args = line + (wl < len ? wl + 1 : wl);
			return (enum smtp_verb)v;
		}
	}
	return SMTP_VERB_UNKNOWN;
}

bool smtp_line_is_clean(const char *line, size_t len)
{
	const unsigned char *p = (const unsigned char *)line;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x7f) {
			i++;
		} else if (c == '\t') {
			i++;
		} else if (c >= 0x80) {
			size_t l = utf8_seq_len(p + i, len - i);
			if (l == 0)
				return false;
			i += l;
		} else {
			return false;	/* NUL, CR, LF, other C0, DEL */
		}
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

enum addr_err { ADDR_OK, ADDR_SYNTAX, ADDR_TOOLONG, ADDR_8BIT };

/* ipv4_literal - "Snum 3("." Snum)" with each Snum 1-3 digits and <= 255. */
static bool ipv4_literal(const char *p, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned val = 0;
		size_t digits = 0;

		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		while (i < n && is_digit((unsigned char)p[i]) && digits < 4) {
			val = val * 10 + (unsigned)(p[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3 || val > 255)
			return false;
	}
	return i == n;
}

/*
 * address_literal - the text between "[" and "]": IPv4, "IPv6:" + an
 * address inet_pton accepts, or a General-address-literal (tag ":"
 * 1*dcontent), which is syntax only: nothing routes to it.
 */
static bool address_literal(const char *p, size_t n)
{
	if (n >= 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		char buf[64];
		unsigned char addr[16];

		if (n - 5 >= sizeof(buf))
			return false;
		memcpy(buf, p + 5, n - 5);
		buf[n - 5] = '\0';
		return inet_pton(AF_INET6, buf, addr) == 1;
	}
	if (n > 0 && is_digit((unsigned char)p[0]))
		return ipv4_literal(p, n);

	/* Standardized-tag = Ldh-str, then ":" and dcontent (%d33-90 / %d94-126). */
	size_t i = 0;
	while (i < n && (is_alpha((unsigned char)p[i]) || is_digit((unsigned char)p[i]) ||
			 p[i] == '-'))
		i++;
	if (i == 0 || i >= n || p[i] != ':' || p[i - 1] == '-')
		return false;
	i++;
	if (i == n)
		return false;
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

/*
 * check_domain - Domain = sub-domain *("." sub-domain), each label a
 * letter or digit, then letters, digits and hyphens, not ending in a
 * hyphen, at most 63 octets (RFC 1035). With utf8, bytes >= 0x80 count
 * as letters (U-labels, RFC 6531; the caller has already checked the
 * UTF-8 is well formed) and the 63-octet cap is left to the A-label form.
 * An address literal is accepted only when literal_ok.
 */
static enum addr_err check_domain(const char *p, size_t n, bool utf8, bool literal_ok)
{
	if (n == 0)
		return ADDR_SYNTAX;
	if (n > SMTP_DOMAIN_MAX)
		return ADDR_TOOLONG;
	if (p[0] == '[') {
		if (!literal_ok || n < 3 || p[n - 1] != ']')
			return ADDR_SYNTAX;
		return address_literal(p + 1, n - 2) ? ADDR_OK : ADDR_SYNTAX;
	}

	size_t label = 0;
	bool label_8bit = false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)p[i] : '.';

		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return ADDR_SYNTAX;
			if (label > 63 && !label_8bit)
				return ADDR_SYNTAX;
			label = 0;
			label_8bit = false;
			continue;
		}
		if (c >= 0x80) {
			if (!utf8)
				return ADDR_8BIT;
			label_8bit = true;
		} else if (c == '-') {
			if (label == 0)
				return ADDR_SYNTAX;
		} else if (!is_alpha(c) && !is_digit(c)) {
			return ADDR_SYNTAX;
		}
		label++;
	}
	return ADDR_OK;
}

/*
 * local_part_len - length of the Local-part at p (Dot-string or
 * Quoted-string, RFC 5321 4.1.2; RFC 6531 adds UTF-8 to atext and
 * qtextSMTP), or 0 when it is malformed. Stops before the "@" or the end.
 */
static size_t local_part_len(const char *p, size_t n, bool utf8)
{
	size_t i = 0;

	if (n > 0 && p[0] == '"') {
		for (i = 1; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				/* quoted-pairSMTP = "\" %d32-126 */
				if (i + 1 >= n || p[i + 1] < 32 || p[i + 1] > 126)
					return 0;
				i++;
			} else if (c >= 0x80) {
				if (!utf8)
					return 0;
			} else if (c < 32 || c > 126) {
				return 0;
			}
		}
		return 0;	/* no closing quote */
	}

	bool atom_empty = true;
	for (i = 0; i < n && p[i] != '@'; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (atom_empty)
				return 0;
			atom_empty = true;
		} else if (is_atext(c) || (c >= 0x80 && utf8)) {
			atom_empty = false;
		} else {
			return 0;
		}
	}
	return atom_empty ? 0 : i;
}

/*
 * check_path - validate the text between "<" and ">". On success *mbox is
 * the offset of the Mailbox (past any source route, which RFC 5321 4.1.2
 * says to accept and ignore) and *trim the octets to drop at its end (1
 * for a domain's trailing dot, else 0). Lengths are checked on the raw text as it
 * came on the wire; non-ASCII is ADDR_8BIT unless utf8 allows it.
 *
 * Length replies: RFC 5321 4.5.3.1.10 suggests "501 Path too long" while
 * 553 ("mailbox name not allowed") is also seen; we use 501 with the
 * address status code (5.1.7 sender / 5.1.3 recipient) so the client
 * learns it is the address, not the command, that is wrong.
 */
static enum addr_err check_path(const char *p, size_t n, bool utf8, bool is_rcpt,
				size_t *mbox, size_t *trim)
{
	size_t i = 0;
	bool has_8bit = false;

	*mbox = 0;
	*trim = 0;
	if (n > SMTP_PATH_MAX)
		return ADDR_TOOLONG;
	for (size_t k = 0; k < n; k++)
		if ((unsigned char)p[k] >= 0x80)
			has_8bit = true;
	if (has_8bit) {
		if (!utf8)
			return ADDR_8BIT;
		if (!smtp_utf8_valid(p, n))
			return ADDR_SYNTAX;
	}

	/* A-d-l = At-domain *( "," At-domain ) ":" */
	if (n > 0 && p[0] == '@') {
		for (;;) {
			size_t start = ++i;
			while (i < n && p[i] != ',' && p[i] != ':')
				i++;
			if (i >= n)
				return ADDR_SYNTAX;
			enum addr_err e = check_domain(p + start, i - start, utf8, false);
			if (e != ADDR_OK)
				return e == ADDR_TOOLONG ? ADDR_TOOLONG : ADDR_SYNTAX;
			if (p[i] == ':') {
				i++;
				break;
			}
			i++;	/* past ","; the loop's ++i steps over the "@" */
			if (i >= n || p[i] != '@')
				return ADDR_SYNTAX;
		}
		*mbox = i;
	}

	const char *m = p + i;
	size_t mn = n - i;
	size_t ll = local_part_len(m, mn, utf8);

	if (ll == 0)
		return ADDR_SYNTAX;
	if (ll > SMTP_LOCALPART_MAX)
		return ADDR_TOOLONG;
	if (ll == mn) {
		/* RFC 5321 4.1.1.3: "Postmaster" without a domain, RCPT only. */
		if (is_rcpt && i == 0 && ll == 10 && strncasecmp(m, "postmaster", 10) == 0)
			return ADDR_OK;
		return ADDR_SYNTAX;
	}
	if (m[ll] != '@')
		return ADDR_SYNTAX;

	/*
	 * "user@example.com." names the same domain as "user@example.com"
	 * (the root label made explicit): one trailing dot is accepted and
	 * dropped, as Postfix's rewriting does; "a@b..", "a@." and a dot
	 * after an address literal stay errors.
	 */
	const char *d = m + ll + 1;
	size_t dn = mn - ll - 1;
	if (dn > 1 && d[dn - 1] == '.' && d[dn - 2] != '.' && d[0] != '[') {
		dn--;
		*trim = 1;
	}
	return check_domain(d, dn, utf8, true);
}

/*
 * smtp_path_domain - paths handed out by the parsers carry no route, so
 * the domain starts after the "@" that ends the local part; a quoted local
 * part may itself contain "@" and is skipped as a whole.
 */
const char *smtp_path_domain(const char *path)
{
	const char *p = path;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (*p == '\\' && p[1])
				p++;
		if (*p == '"')
			p++;
	}
	p = strchr(p, '@');
	return p ? p + 1 : path + strlen(path);
}

/* ------------------------------------------------------------------ */
/* xtext (RFC 3461 4)                                                  */
/* ------------------------------------------------------------------ */

/*
 * xtext_decode - xchar is "!".."~" except "+" and "="; "+" must be
 * followed by two hex digits. RFC 3461 asks for upper case; lower case is
 * unambiguous, so we accept it. "+00" is refused: a NUL would silently cut
 * every C-string consumer short. With utf8, raw well-formed UTF-8 is
 * accepted too (RFC 6533 utf-8-addr-unitext in ORCPT under SMTPUTF8). On
 * failure out is left as it was.
 */
static bool xtext_decode(const char *in, size_t len, struct str *out, bool utf8)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t old = out->len;
	size_t i = 0, run = 0;

	str_reserve(out, len);
	while (i < len) {
		unsigned char c = p[i];

		if (c == '+') {
			int hi, lo;
			if (len - i < 3)
				goto bad;
			hi = hex_val(p[i + 1]);
			lo = hex_val(p[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			str_append(out, p + run, i - run);
			str_appendc(out, (char)(hi << 4 | lo));
			i += 3;
			run = i;
		} else if (c >= 33 && c <= 126 && c != '=') {
			i++;
		} else if (c >= 0x80 && utf8) {
			size_t l = utf8_seq_len(p + i, len - i);
			if (l == 0)
				goto bad;
			i += l;
		} else {
			goto bad;
		}
	}
	str_append(out, p + run, i - run);
	return true;
bad:
	str_truncate(out, old);
	return false;
}

bool smtp_xtext_decode(const char *in, size_t len, struct str *out)
{
	return xtext_decode(in, len, out, false);
}

void smtp_xtext_encode(const char *in, size_t len, struct str *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)in;
	size_t run = 0;

	str_reserve(out, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c >= 33 && c <= 126 && c != '+' && c != '=')
			continue;
		char esc[3] = { '+', hex[c >> 4], hex[c & 15] };
		str_append(out, p + run, i - run);
		str_append(out, esc, 3);
		run = i + 1;
	}
	str_append(out, p + run, len - run);
}

/* ------------------------------------------------------------------ */
/* MAIL / RCPT                                                         */
/* ------------------------------------------------------------------ */

/* RFC 3461 4.2 and 4.4: the longest ORCPT and ENVID values to expect. */
#define ORCPT_MAX 500
#define ENVID_MAX 100

enum param_id {
	P_SIZE, P_BODY, P_SMTPUTF8, P_RET, P_ENVID, P_AUTH,	/* MAIL */
	P_NOTIFY, P_ORCPT,					/* RCPT */
	P_UNKNOWN,
};

static const struct {
	const char *name;
	bool rcpt;		/* belongs to RCPT, else to MAIL */
} param_table[] = {
	[P_SIZE] = { "SIZE", false },
	[P_BODY] = { "BODY", false },
	[P_SMTPUTF8] = { "SMTPUTF8", false },
	[P_RET] = { "RET", false },
	[P_ENVID] = { "ENVID", false },
	[P_AUTH] = { "AUTH", false },
	[P_NOTIFY] = { "NOTIFY", true },
	[P_ORCPT] = { "ORCPT", true },
};

/* param_offered - is the extension owning this parameter in ext? */
static bool param_offered(enum param_id id, const struct smtp_ext_allowed *ext)
{
	switch (id) {
	case P_SIZE: return ext->size;
	case P_BODY: return ext->eightbitmime || ext->binarymime;
	case P_SMTPUTF8: return ext->smtputf8;
	case P_RET: case P_ENVID: case P_NOTIFY: case P_ORCPT: return ext->dsn;
	case P_AUTH: return ext->auth;
	default: return false;
	}
}

/* One "KEY[=VALUE]" token of the parameter list. */
struct param {
	const char *key;
	size_t key_len;
	const char *val;	/* NULL when there is no "=" */
	size_t val_len;
};

/* param_next - split the next space-separated token; false at the end. */
static bool param_next(const char **sp, struct param *pm)
{
	const char *s = *sp;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return false;
	pm->key = s;
	while (*s && *s != ' ' && *s != '=')
		s++;
	pm->key_len = (size_t)(s - pm->key);
	pm->val = NULL;
	pm->val_len = 0;
	if (*s == '=') {
		pm->val = ++s;
		while (*s && *s != ' ')
			s++;
		pm->val_len = (size_t)(s - pm->val);
	}
	*sp = s;
	return true;
}

/* keyword_ok - esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool keyword_ok(const char *k, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];
		if (!is_alpha(c) && !is_digit(c) && !(c == '-' && i > 0))
			return false;
	}
	return true;
}

static enum param_id param_lookup(const struct param *pm, bool rcpt)
{
	for (size_t i = 0; i < P_UNKNOWN; i++) {
		const char *name = param_table[i].name;
		if (param_table[i].rcpt == rcpt && strlen(name) == pm->key_len &&
		    strncasecmp(pm->key, name, pm->key_len) == 0)
			return (enum param_id)i;
	}
	return P_UNKNOWN;
}

static bool val_is(const struct param *pm, const char *word)
{
	return strlen(word) == pm->val_len && strncasecmp(pm->val, word, pm->val_len) == 0;
}

/* printable_ok - decoded DSN text must be printable US-ASCII (RFC 3461 4). */
static bool printable_ok(const char *s, size_t n, bool utf8)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 32 || c == 127) || (c >= 0x80 && !utf8))
			return false;
	}
	return true;
}

/* decode_dsn_text - xtext-decode a DSN value and insist it is printable. */
static char *decode_dsn_text(const char *v, size_t n, bool utf8)
{
	struct str s = STR_INIT;

	if (!xtext_decode(v, n, &s, utf8) || !printable_ok(str_cstr(&s), s.len, utf8)) {
		str_free(&s);
		return NULL;
	}
	return str_steal(&s);
}

/* has_smtputf8 - is there a SMTPUTF8 keyword among the parameters? */
static bool has_smtputf8(const char *params)
{
	struct param pm;

	while (param_next(&params, &pm))
		if (pm.key_len == 8 && strncasecmp(pm.key, "SMTPUTF8", 8) == 0)
			return true;
	return false;
}

/*
 * split_path - common front of MAIL and RCPT: skip the "FROM:"/"TO:"
 * keyword and the one tolerated space, find the bracketed path, and check
 * that only spaces separate it from the parameters. The ">" is searched
 * outside quoted strings, so "<\"a>b\"@x>" is one path.
 */
static bool split_path(const char *args, const char *kw, const char **path,
		       size_t *path_len, const char **params)
{
	size_t kl = strlen(kw);
	const char *p = args;

	if (strncasecmp(p, kw, kl) != 0)
		return false;
	p += kl;
	if (*p == ' ')
		p++;
	if (*p != '<')
		return false;
	const char *q = ++p;
	bool quoted = false;
	for (; *q; q++) {
		if (quoted && *q == '\\' && q[1])
			q++;
		else if (*q == '"')
			quoted = !quoted;
		else if (*q == '>' && !quoted)
			break;
	}
	if (*q != '>')
		return false;
	if (q[1] != '\0' && q[1] != ' ')
		return false;
	*path = p;
	*path_len = (size_t)(q - p);
	*params = q + 1;
	return true;
}

/* param_error - the reply for a malformed or misplaced parameter. */
static bool param_error(struct smtp_reply *reply, const struct param *pm, enum param_id id,
			const struct smtp_ext_allowed *ext)
{
	if (!keyword_ok(pm->key, pm->key_len)) {
		smtp_reply_set(reply, 501, "5.5.4", "Bad parameter syntax");
		return true;
	}
	if (id == P_UNKNOWN || !param_offered(id, ext)) {
		smtp_reply_set(reply, 555, "5.5.4", "Unsupported parameter: %.*s",
			       (int)pm->key_len, pm->key);
		return true;
	}
	return false;
}

static void bad_param(struct smtp_reply *reply, const char *what)
{
	smtp_reply_set(reply, 501, "5.5.4", "Bad %s parameter", what);
}

/* parse_size - SIZE=1*20DIGIT (RFC 1870); huge values clamp to INT64_MAX. */
static bool parse_size(const struct param *pm, int64_t *out)
{
	uint64_t v = 0;

	if (pm->val == NULL || pm->val_len == 0 || pm->val_len > 20)
		return false;
	for (size_t i = 0; i < pm->val_len; i++) {
		unsigned char c = (unsigned char)pm->val[i];
		if (!is_digit(c))
			return false;
		if (v > ((uint64_t)INT64_MAX - 9) / 10)
			v = (uint64_t)INT64_MAX;	/* saturate */
		else
			v = v * 10 + (uint64_t)(c - '0');
	}
	*out = v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
	return true;
}

/* parse_mail_param - one MAIL parameter into out; false with reply set. */
static bool parse_mail_param(const struct param *pm, const struct smtp_ext_allowed *ext,
			     bool utf8, unsigned *seen, struct smtp_mail_args *out,
			     struct smtp_reply *reply)
{
	enum param_id id = param_lookup(pm, false);

	if (param_error(reply, pm, id, ext))
		return false;
	if (*seen & (1u << id)) {
		smtp_reply_set(reply, 501, "5.5.4", "Duplicate parameter: %s",
			       param_table[id].name);
		return false;
	}
	*seen |= 1u << id;

	switch (id) {
	case P_SIZE:
		if (!parse_size(pm, &out->size))
			goto bad;
		return true;
	case P_BODY:
		if (pm->val == NULL)
			goto bad;
		if (val_is(pm, "7BIT"))
			out->body = ENVELOPE_BODY_7BIT;
		else if (val_is(pm, "8BITMIME") && ext->eightbitmime)
			out->body = ENVELOPE_BODY_8BITMIME;
		else if (val_is(pm, "BINARYMIME") && ext->binarymime)
			out->body = ENVELOPE_BODY_BINARYMIME;
		else
			goto bad;
		return true;
	case P_SMTPUTF8:
		if (pm->val != NULL)
			goto bad;
		out->smtputf8 = true;
		return true;
	case P_RET:
		if (pm->val && val_is(pm, "FULL"))
			out->ret = ENVELOPE_RET_FULL;
		else if (pm->val && val_is(pm, "HDRS"))
			out->ret = ENVELOPE_RET_HDRS;
		else
			goto bad;
		return true;
	case P_ENVID:
		if (pm->val == NULL || pm->val_len == 0 || pm->val_len > ENVID_MAX)
			goto bad;
		out->envid = decode_dsn_text(pm->val, pm->val_len, false);
		if (out->envid == NULL)
			goto bad;
		return true;
	case P_AUTH:
		/* RFC 4954 5: AUTH=<> or an xtext-encoded mailbox. */
		if (pm->val == NULL || pm->val_len == 0 || pm->val_len > 500)
			goto bad;
		out->auth = decode_dsn_text(pm->val, pm->val_len, utf8);
		if (out->auth == NULL)
			goto bad;
		return true;
	default:
		break;
	}
bad:
	bad_param(reply, param_table[id].name);
	return false;
}

/* addr_reply - the reply for a path check_path refused. */
static void addr_reply(struct smtp_reply *reply, enum addr_err e, bool rcpt)
{
	const char *ext = rcpt ? "5.1.3" : "5.1.7";
	const char *who = rcpt ? "recipient" : "sender";

	switch (e) {
	case ADDR_TOOLONG:
		smtp_reply_set(reply, 501, ext, "Bad %s address syntax: address too long", who);
		break;
	case ADDR_8BIT:
		/* RFC 6531 3.5: non-ASCII address without SMTPUTF8. */
		smtp_reply_set(reply, 553, "5.6.7",
			       "Non-ASCII %s address requires SMTPUTF8", who);
		break;
	default:
		smtp_reply_set(reply, 501, ext, "Bad %s address syntax", who);
		break;
	}
}

void smtp_mail_args_free(struct smtp_mail_args *a)
{
	free(a->path);
	free(a->envid);
	free(a->auth);
	a->path = a->envid = a->auth = NULL;
}

void smtp_rcpt_args_free(struct smtp_rcpt_args *a)
{
	free(a->path);
	free(a->orcpt);
	a->path = a->orcpt = NULL;
}

/*
 * smtp_parse_mail - the order of checks decides which error a client with
 * several faults hears: command syntax first, then the address (so a bad
 * address is reported even when a parameter is also wrong), then the
 * parameters left to right. SMTPUTF8 is looked for ahead of the address
 * check because it changes what the address may contain.
 */
bool smtp_parse_mail(const char *args, const struct smtp_ext_allowed *ext,
		     struct smtp_mail_args *out, struct smtp_reply *reply)
{
	const char *path, *params;
	size_t path_len, mbox, trim = 0;
	struct param pm;
	unsigned seen = 0;

	memset(out, 0, sizeof(*out));
	out->size = -1;
	smtp_reply_clear(reply);

	if (!split_path(args, "FROM:", &path, &path_len, &params)) {
		smtp_reply_set(reply, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return false;
	}
	bool utf8 = ext->smtputf8 && has_smtputf8(params);
	if (path_len > 0) {
		enum addr_err e = check_path(path, path_len, utf8, false, &mbox, &trim);
		if (e != ADDR_OK) {
			addr_reply(reply, e, false);
			return false;
		}
	} else {
		mbox = 0;
	}
	while (param_next(&params, &pm)) {
		if (!parse_mail_param(&pm, ext, utf8, &seen, out, reply)) {
			smtp_mail_args_free(out);
			return false;
		}
	}
	out->path = xstrndup(path + mbox, path_len - mbox - trim);
	return true;
}

/* parse_notify - "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY. */
static bool parse_notify(const struct param *pm, uint8_t *out)
{
	const char *p = pm->val, *end;
	uint8_t bits = 0;

	if (pm->val == NULL || pm->val_len == 0)
		return false;
	end = p + pm->val_len;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		size_t n = (size_t)(e - p);

		if (n == 5 && strncasecmp(p, "NEVER", 5) == 0)
			bits |= ENVELOPE_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			bits |= ENVELOPE_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			bits |= ENVELOPE_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(p, "DELAY", 5) == 0)
			bits |= ENVELOPE_NOTIFY_DELAY;
		else
			return false;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if ((bits & ENVELOPE_NOTIFY_NEVER) && bits != ENVELOPE_NOTIFY_NEVER)
		return false;
	*out = bits;
	return true;
}

/*
 * parse_orcpt - "addr-type ; xtext" (RFC 3461 4.2); kept as
 * "addr-type;decoded-address". addr-type is an atom.
 */
static char *parse_orcpt(const struct param *pm, bool utf8)
{
	const char *semi;
	size_t tl;

	if (pm->val == NULL || pm->val_len == 0 || pm->val_len > ORCPT_MAX)
		return NULL;
	semi = memchr(pm->val, ';', pm->val_len);
	if (semi == NULL || semi == pm->val)
		return NULL;
	tl = (size_t)(semi - pm->val);
	for (size_t i = 0; i < tl; i++)
		if (!is_atext((unsigned char)pm->val[i]))
			return NULL;

	struct str s = STR_INIT;
	str_append(&s, pm->val, tl + 1);
	if (!xtext_decode(semi + 1, pm->val_len - tl - 1, &s, utf8) ||
	    !printable_ok(s.s + tl + 1, s.len - tl - 1, utf8)) {
		str_free(&s);
		return NULL;
	}
	return str_steal(&s);
}

bool smtp_parse_rcpt(const char *args, const struct smtp_ext_allowed *ext,
		     bool smtputf8, struct smtp_rcpt_args *out, struct smtp_reply *reply)
{
	const char *path, *params;
	size_t path_len, mbox, trim = 0;
	struct param pm;
	unsigned seen = 0;
	bool utf8 = smtputf8 && ext->smtputf8;

	memset(out, 0, sizeof(*out));
	smtp_reply_clear(reply);

	if (!split_path(args, "TO:", &path, &path_len, &params)) {
		smtp_reply_set(reply, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return false;
	}
	enum addr_err e = path_len == 0 ? ADDR_SYNTAX :
			  check_path(path, path_len, utf8, true, &mbox, &trim);
	if (e != ADDR_OK) {
		addr_reply(reply, e, true);
		return false;
	}
	while (param_next(&params, &pm)) {
		enum param_id id = param_lookup(&pm, true);

		if (param_error(reply, &pm, id, ext))
			goto fail;
		if (seen & (1u << id)) {
			smtp_reply_set(reply, 501, "5.5.4", "Duplicate parameter: %s",
				       param_table[id].name);
			goto fail;
		}
		seen |= 1u << id;
		if (id == P_NOTIFY) {
			if (!parse_notify(&pm, &out->notify))
				goto bad;
		} else {
			out->orcpt = parse_orcpt(&pm, utf8);
			if (out->orcpt == NULL)
				goto bad;
		}
		continue;
bad:
		bad_param(reply, param_table[id].name);
		goto fail;
	}
	out->path = xstrndup(path + mbox, path_len - mbox - trim);
	return true;
fail:
	smtp_rcpt_args_free(out);
	return false;
}

/* ------------------------------------------------------------------ */
/* DATA and BDAT scanning                                              */
/* ------------------------------------------------------------------ */

/*
 * Scanner states. A line ends only at CRLF; BOL means "a CRLF was just
 * seen" (also the state at the start, so ".\r\n" right after the 354 ends
 * an empty message). DOT and DOTCR are the two steps of a possible
 * terminator; the dot that got us there is a stuffing dot and never part
 * of the message, the CR of DOTCR is held back until we know it is not
 * the terminator's.
 */
enum { DS_BOL, DS_MID, DS_CR, DS_DOT, DS_DOTCR };

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* has_zero_byte - nonzero when some byte of w is 0 (exact as a test). */
static inline uint64_t has_zero_byte(uint64_t w)
{
	return (w - ONES) & ~w & HIGHS;
}

/*
 * find_special - the first CR, LF or NUL in [p, end), or end. Tests eight
 * bytes at a time: mail lines are long runs of ordinary bytes, and this
 * is the loop every byte of every message goes through. The lowest flag
 * of has_zero_byte is exact (only bytes above a real zero can be flagged
 * falsely), so on little-endian machines the first special byte is found
 * by counting trailing zeros.
 */
static const char *find_special(const char *p, const char *end)
{
	while (end - p >= 8) {
		uint64_t w, m;

		memcpy(&w, p, 8);
		m = has_zero_byte(w) | has_zero_byte(w ^ (ONES * '\r')) |
		    has_zero_byte(w ^ (ONES * '\n'));
		if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			return p + (__builtin_ctzll(m) >> 3);
#else
			break;
#endif
		}
		p += 8;
	}
	for (; p < end; p++)
		if (*p == '\r' || *p == '\n' || *p == '\0')
			return p;
	return end;
}

/* data_emit - count n message bytes and keep those that fit under limit. */
static inline void data_emit(struct smtp_data_scanner *sc, struct str *out, uint64_t limit,
			     const char *p, size_t n)
{
	if (n == 0)
		return;
	if (out) {
		if (limit == 0) {
			str_append(out, p, n);
		} else if (sc->bytes < limit) {
			uint64_t room = limit - sc->bytes;
			str_append(out, p, n < room ? n : (size_t)room);
		}
	}
	sc->bytes += n;
}

/*
 * line_end - a line ended (at CRLF, or at a bare CR or LF, which count as
 * line ends for the length and for finding the header/body boundary: the
 * SMTP client sends each of them as CRLF). An empty line ends the header
 * section.
 */
static inline void line_end(struct smtp_data_scanner *sc)
{
	if (sc->line_len > sc->longest_line)
		sc->longest_line = sc->line_len;
	if (sc->line_len == 0)
		sc->in_body = true;
	sc->line_len = 0;
}

/*
 * bare_seen - a bare CR or LF at the current point: flag it in the section
 * it is in, and say whether this section's setting wants it made CRLF.
 */
static inline bool bare_seen(struct smtp_data_scanner *sc)
{
	if (sc->in_body) {
		sc->bare_body = true;
		return sc->fix_bare_body;
	}
	sc->bare_headers = true;
	return sc->fix_bare_headers;
}

/*
 * line_scan - the engine behind smtp_data_scan (unstuff = true: dot
 * handling and the terminator) and smtp_scan_chunk (unstuff = false).
 * Bytes are copied to out in runs: a run is broken only by a dropped
 * stuffing dot, a held CR, a repair (CRLF for a bare CR or LF, CRLF SPACE
 * to fold a long line), or the end of the buffer.
 *
 * A bare CR or LF ends a line for counting but never puts the scanner at
 * the beginning of a line in the SMTP sense (DS_BOL): only CRLF does. So
 * "\n.\r\n", "\r.\r\n", "\n.\n" and the like are data, repaired or not,
 * and the only end of data stays CRLF "." CRLF (the SMTP smuggling
 * defence: the next hop, which gets CRLF everywhere, must see the same
 * message boundaries we saw).
 */
static size_t line_scan(struct smtp_data_scanner *sc, const char *buf, size_t len,
			struct str *out, uint64_t limit, bool unstuff)
{
	const char *p = buf, *end = buf + len, *run = buf;

	while (p < end) {
		switch (sc->state) {
		case DS_MID: {
			const char *q = find_special(p, end);
			size_t fold = sc->fold_at;

			if (fold && q > p && sc->line_len + (size_t)(q - p) > fold) {
				/* Break before the octet that would be number fold + 1. */
				const char *cut = sc->line_len >= fold ? p : p + (fold - sc->line_len);

				data_emit(sc, out, limit, run, (size_t)(cut - run));
				data_emit(sc, out, limit, "\r\n ", 3);
				sc->folded = true;
				if (sc->line_len + (size_t)(cut - p) > sc->longest_line)
					sc->longest_line = sc->line_len + (size_t)(cut - p);
				sc->line_len = 1;
				run = p = cut;
				continue;
			}
			sc->line_len += (size_t)(q - p);
			p = q;
			if (p == end)
				break;
			if (*p == '\r') {
				/*
				 * Fast path for the usual CRLF followed by a
				 * line that does not start with a dot.
				 */
				if (end - p >= 3 && p[1] == '\n' && (!unstuff || p[2] != '.')) {
					p += 2;
					line_end(sc);
					continue;
				}
				sc->state = DS_CR;
				p++;
			} else if (*p == '\n') {
				/* bare LF: a line end, but not a BOL */
				if (bare_seen(sc)) {
					data_emit(sc, out, limit, run, (size_t)(p - run));
					data_emit(sc, out, limit, "\r\n", 2);
					run = p + 1;
				}
				sc->bare_lf = true;
				line_end(sc);
				p++;
			} else {
				sc->nul = true;
				if (fold && sc->line_len >= fold) {
					data_emit(sc, out, limit, run, (size_t)(p - run));
					data_emit(sc, out, limit, "\r\n ", 3);
					sc->folded = true;
					line_end(sc);
					sc->line_len = 1;
					run = p;
				}
				sc->line_len++;
				p++;
			}
			break;
		}
		case DS_CR:
			if (*p == '\n') {
				p++;
				line_end(sc);
				sc->state = DS_BOL;
			} else {
				/* The CR (already in the run, or sent) was bare. */
				if (bare_seen(sc)) {
					data_emit(sc, out, limit, run, (size_t)(p - run));
					data_emit(sc, out, limit, "\n", 1);
					run = p;
				}
				sc->bare_cr = true;
				line_end(sc);
				sc->state = DS_MID;
			}
			break;
		case DS_BOL:
			if (unstuff && *p == '.') {
				data_emit(sc, out, limit, run, (size_t)(p - run));
				run = ++p;
				sc->state = DS_DOT;
			} else {
				sc->state = DS_MID;
			}
			break;
		case DS_DOT:
			if (*p == '\r') {
				run = ++p;	/* hold the CR back */
				sc->state = DS_DOTCR;
			} else {
				sc->state = DS_MID;
			}
			break;
		case DS_DOTCR:
			if (*p == '\n') {
				run = ++p;
				sc->done = true;
				sc->state = DS_BOL;
				goto out;
			}
			/* not the terminator: the held CR is bare data */
			if (bare_seen(sc))
				data_emit(sc, out, limit, "\r\n", 2);
			else
				data_emit(sc, out, limit, "\r", 1);
			sc->bare_cr = true;
			line_end(sc);
			sc->state = DS_MID;
			break;
		}
	}
out:
	data_emit(sc, out, limit, run, (size_t)(p - run));
	if (sc->line_len > sc->longest_line)
		sc->longest_line = sc->line_len;
	return (size_t)(p - buf);
}

void smtp_data_scanner_init(struct smtp_data_scanner *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->state = DS_BOL;
}

size_t smtp_data_scan(struct smtp_data_scanner *sc, const char *buf, size_t len,
		      struct str *out, uint64_t limit)
{
	if (sc->done)
		return 0;
	return line_scan(sc, buf, len, out, limit, true);
}

void smtp_scan_chunk(struct smtp_data_scanner *sc, const char *buf, size_t len,
		     struct str *out, uint64_t limit)
{
	line_scan(sc, buf, len, out, limit, false);
}

/* smtp_with_protocol - the Received: "with" keyword (see smtp_parse.h). */
const char *smtp_with_protocol(bool esmtp, bool tls, bool smtputf8, bool auth)
{
	/* indexed [utf8][tls][auth] */
	static const char *const with[2][2][2] = {
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!esmtp)
		return tls ? "SMTPS" : "SMTP";
	return with[smtputf8][tls][auth];
}
