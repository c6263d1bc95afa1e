/*
 * fuzz_ehlo_caps.c - libFuzzer target for the EHLO capability parser
 *
 * smtp_caps_parse (src/smtp/smtp_client.c) reads what a remote server
 * offers in its EHLO reply (PIPELINING, SIZE n, STARTTLS, 8BITMIME,
 * SMTPUTF8, DSN, CHUNKING, ENHANCEDSTATUSCODES, the PLAIN and LOGIN
 * mechanisms of AUTH or the old AUTH=; others ignored) and the
 * client then decides what it may send: a wrong SIZE or a capability read
 * from garbage changes the mail it sends. The input is the text of the
 * reply's lines (split at LF, a CR before it dropped, each cut at a NUL as
 * the reply parser's copies are); line 0 is the greeting. Besides memory
 * safety and UB it checks:
 *   - the result equals a plain reference parser's (keywords whole and
 *     case-insensitive after leading blanks; SIZE's value a decimal number
 *     without overflow and nothing but blanks after it, else 0);
 *   - parsing is idempotent and does not depend on what the struct held
 *     before; esmtp is set; size_max != 0 only with size;
 *   - the greeting line does not count; upper- and lower-casing every
 *     line changes nothing;
 *   - keywords (the list imp_params_peer_has reads) is NUL-terminated
 *     inside its array, each keyword upper-case, non-empty and followed
 *     by exactly one space, and the same whatever the case of the input;
 *   - the same lines sent as a real reply ("250-" ... "250 ") through
 *     smtpc_reply_add_line, as the session does, give the same caps.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_ehlo_caps -runs=1000000
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"
#include "smtp/smtp_client.h"
#include "smtp/smtp_client_int.h"

#include "fuzz.h"

#define MAX_LINES (SMTPC_REPLY_LINES_MAX - 1)

/* ref_mechs - the blank-separated words of p that are PLAIN or LOGIN. */
static void ref_mechs(struct smtp_caps *c, const char *p)
{
	char word[16];
	size_t n = 0;

	for (;; p++) {
		if (*p == '\0' || *p == ' ' || *p == '\t') {
			if (n == 5 && strncasecmp(word, "PLAIN", 5) == 0)
				c->auth_plain = true;
			if (n == 5 && strncasecmp(word, "LOGIN", 5) == 0)
				c->auth_login = true;
			n = 0;
			if (*p == '\0')
				return;
		} else if (n < sizeof(word)) {
			word[n++] = *p;
		}
		/* else: a word of 16 or more, no mechanism we know; n stays 16 */
	}
}

/* ref_caps - the capability rules written plainly. */
static void ref_caps(struct smtp_caps *c, char **lines, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->esmtp = true;
	for (size_t i = 1; i < n; i++) {
		const char *l = lines[i];
		size_t k = 0;

		while (*l == ' ' || *l == '\t')
			l++;
		while (l[k] && l[k] != ' ' && l[k] != '\t')
			k++;
#define KW(s) (k == strlen(s) && strncasecmp(l, s, k) == 0)
		if (KW("PIPELINING"))
			c->pipelining = true;
		else if (KW("8BITMIME"))
			c->eightbitmime = true;
		else if (KW("STARTTLS"))
			c->starttls = true;
		else if (KW("ENHANCEDSTATUSCODES"))
			c->enhancedstatuscodes = true;
		else if (KW("SMTPUTF8"))
			c->smtputf8 = true;
		else if (KW("CHUNKING"))
			c->chunking = true;
		else if (KW("DSN"))
			c->dsn = true;
		else if (KW("AUTH"))
			ref_mechs(c, l + k);
		else if (strncasecmp(l, "AUTH=", 5) == 0)
			ref_mechs(c, l + 5);
		else if (KW("SIZE")) {
			const char *p = l + k;
			unsigned __int128 v = 0;
			size_t digits = 0;

			c->size = true;
			while (*p == ' ' || *p == '\t')
				p++;
			for (; *p >= '0' && *p <= '9'; p++, digits++)
				if (v <= UINT64_MAX)
					v = v * 10 + (unsigned)(*p - '0');
			while (*p == ' ' || *p == '\t')
				p++;
			c->size_max = digits > 0 && *p == '\0' && v <= UINT64_MAX ? (uint64_t)v : 0;
		}
#undef KW
	}
}

static bool caps_eq(const struct smtp_caps *a, const struct smtp_caps *b)
{
	return a->esmtp == b->esmtp && a->pipelining == b->pipelining &&
	       a->eightbitmime == b->eightbitmime && a->starttls == b->starttls &&
	       a->enhancedstatuscodes == b->enhancedstatuscodes && a->smtputf8 == b->smtputf8 &&
	       a->chunking == b->chunking && a->dsn == b->dsn && a->size == b->size &&
	       a->size_max == b->size_max && a->auth_plain == b->auth_plain &&
	       a->auth_login == b->auth_login;
}

static void map_case(char **lines, size_t n, int (*fn)(int))
{
	for (size_t i = 0; i < n; i++)
		for (char *p = lines[i]; *p; p++)
			*p = (char)fn((unsigned char)*p);
}

/* via_reply - the lines as a "250" reply through the client's reply parser. */
static void via_reply(char **lines, size_t n, struct smtp_caps *out)
{
	struct smtpc_reply r;
	struct str l = STR_INIT;
	int rc = 0;

	smtpc_reply_init(&r);
	for (size_t i = 0; i < n; i++) {
		str_clear(&l);
		str_appendf(&l, "250%c%s", i + 1 < n ? '-' : ' ', lines[i]);
		if (l.len > SMTPC_LINE_MAX)
			break;
		rc = smtpc_reply_add_line(&r, l.s, l.len);
		MUST(rc == (i + 1 < n ? 0 : 1));
	}
	if (rc == 1) {
		MUST(r.nlines == n);
		smtp_caps_parse(out, (const char *const *)r.lines, r.nlines);
	} else {
		memset(out, 0, sizeof(*out));
		smtp_caps_parse(out, (const char *const *)lines, n);	/* too long: skip */
	}
	str_free(&l);
	smtpc_reply_free(&r);
}

/* keywords_ok - the keyword list's shape (see the header). */
static bool keywords_ok(const struct smtp_caps *c)
{
	size_t len = strnlen(c->keywords, sizeof(c->keywords));

	if (len == sizeof(c->keywords))
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = c->keywords[i];
		if (ch == '\t' || (ch >= 'a' && ch <= 'z'))
			return false;
		if (ch == ' ' && (i == 0 || c->keywords[i - 1] == ' '))
			return false;
	}
	return len == 0 || c->keywords[len - 1] == ' ';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *lines[MAX_LINES];
	size_t n = 0, off = 0;
	struct smtp_caps got, again, ref, other;

	while (off <= size && n < MAX_LINES) {
		const uint8_t *lf = memchr(data + off, '\n', size - off);
		size_t e = lf ? (size_t)(lf - data) : size;
		size_t l = e - off;

		if (l > 0 && data[off + l - 1] == '\r')
			l--;
		lines[n] = fuzz_strndup((const char *)data + off, l);
		MUST(lines[n] != NULL);
		n++;
		off = e + 1;
	}

	memset(&got, 0, sizeof(got));
	smtp_caps_parse(&got, (const char *const *)lines, n);
	memset(&again, 0xa5, sizeof(again));
	smtp_caps_parse(&again, (const char *const *)lines, n);
	MUST(caps_eq(&got, &again));
	smtp_caps_parse(&again, (const char *const *)lines, n);
	MUST(caps_eq(&got, &again));
	MUST(got.esmtp);
	MUST(got.size || got.size_max == 0);
	ref_caps(&ref, lines, n);
	MUST(caps_eq(&got, &ref));

	via_reply(lines, n, &other);
	MUST(caps_eq(&got, &other));

	/* The greeting does not count. */
	char *greeting = lines[0];
	lines[0] = (char *)"SIZE 1 PIPELINING";
	smtp_caps_parse(&other, (const char *const *)lines, n);
	MUST(caps_eq(&got, &other));
	lines[0] = greeting;

	MUST(keywords_ok(&got));
	map_case(lines, n, toupper);
	smtp_caps_parse(&other, (const char *const *)lines, n);
	MUST(caps_eq(&got, &other));
	MUST(strcmp(got.keywords, other.keywords) == 0);
	map_case(lines, n, tolower);
	smtp_caps_parse(&other, (const char *const *)lines, n);
	MUST(caps_eq(&got, &other));
	MUST(strcmp(got.keywords, other.keywords) == 0);

	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	return 0;
}
