/*
 * addrlist.c - the addresses of RFC 5322 address lists, for `sendmail -t`
 * and `impetus inject -t`
 *
 * A small tokenizer, not a validator: quoted strings and (nested)
 * comments are skipped, "<...>" is the address when present, a group's
 * "name:" and its closing ';' are dropped. What it returns is checked
 * again by the daemon's SMTP server, which refuses a malformed address
 * with a reply the tool prints.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "message/rfc5322.h"
#include "tools/tools.h"

void strlist_add(struct strlist *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = xstrndup(s, len);
}

void strlist_add_unique(struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return;
	strlist_add(l, s, strlen(s));
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* flush - the address collected for one list element, trimmed, if any. */
static void flush(struct str *plain, struct str *angle, bool had_angle, struct strlist *out)
{
	struct str *a = had_angle ? angle : plain;
	size_t b = 0, e = a->len;

	while (b < e && (a->s[b] == ' ' || a->s[b] == '\t'))
		b++;
	while (e > b && (a->s[e - 1] == ' ' || a->s[e - 1] == '\t'))
		e--;
	if (e > b)
		strlist_add(out, a->s + b, e - b);
	str_clear(plain);
	str_clear(angle);
}

bool addrlist_parse(const char *s, size_t len, struct strlist *out)
{
	struct str plain = STR_INIT, angle = STR_INIT;
	bool in_angle = false, had_angle = false, ok = true;
	size_t i = 0;

	while (i < len) {
		char c = s[i];

		if (c == '"') {
			/* A quoted string: part of a display name or a local part. */
			size_t j = i + 1;

			while (j < len && s[j] != '"')
				j += (s[j] == '\\' && j + 1 < len) ? 2 : 1;
			if (j >= len) {
				ok = false;
				break;
			}
			str_append(in_angle ? &angle : &plain, s + i, j + 1 - i);
			i = j + 1;
		} else if (c == '(' && !in_angle) {
			int depth = 0;

			do {
				if (s[i] == '\\')
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')')
					depth--;
				i++;
			} while (i < len && depth > 0);
			if (depth > 0)
				ok = false;
		} else if (c == '<' && !in_angle) {
			in_angle = had_angle = true;
			str_clear(&angle);
			i++;
		} else if (c == '>' && in_angle) {
			in_angle = false;
			i++;
		} else if (c == ':' && !in_angle) {
			str_clear(&plain);	/* a group's display name */
			i++;
		} else if ((c == ',' || c == ';') && !in_angle) {
			flush(&plain, &angle, had_angle, out);
			had_angle = false;
			i++;
		} else if (c == '\r' || c == '\n') {
			i++;
		} else {
			str_appendc(in_angle ? &angle : &plain, c);
			i++;
		}
	}
	if (in_angle)
		ok = false;
	flush(&plain, &angle, had_angle, out);
	str_free(&plain);
	str_free(&angle);
	return ok;
}

/* field_is - whether f is named name (any case). */
static bool field_is(const struct rfc5322_field *f, const char *name)
{
	return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

void header_rcpts(const char *msg, size_t len, struct strlist *out)
{
	size_t hdrs = rfc5322_header_end(msg, len), pos = 0;
	struct rfc5322_field f;
	bool resent = false;

	while (rfc5322_field_next(msg, hdrs, &pos, &f))
		if (field_is(&f, "Resent-To") || field_is(&f, "Resent-Cc") || field_is(&f, "Resent-Bcc"))
			resent = true;
	pos = 0;
	while (rfc5322_field_next(msg, hdrs, &pos, &f)) {
		bool want = resent ? (field_is(&f, "Resent-To") || field_is(&f, "Resent-Cc") ||
				      field_is(&f, "Resent-Bcc"))
				   : (field_is(&f, "To") || field_is(&f, "Cc") || field_is(&f, "Bcc"));

		if (want)
			addrlist_parse(f.value, f.value_len, out);
	}
}
