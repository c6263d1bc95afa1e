/*
 * pickup_file.c - write and read the pickup file's envelope lines
 * (pickup_file.h has the format)
 *
 * The parser trusts nothing: a pickup file is written by any local user
 * (the directory is world-writable, like Postfix's maildrop), so every
 * length is bounded, every value is checked for the bytes a line-oriented
 * protocol cannot carry, and a bad file is reported with the line that
 * is wrong. Nothing here allocates but the recipients' array.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "message/envelope.h"
#include "pickup/pickup_file.h"

/* put_span - one "name: value" envelope line. */
static void put_span(struct str *out, const char *name, struct pickup_span v)
{
	str_appendf(out, "%s: %.*s\n", name, (int)v.len, v.s ? v.s : "");
}

void pickup_file_format(struct str *out, const struct pickup_file *f)
{
	str_appendf(out, "%s\n", PICKUP_MAGIC);
	if (f->uid >= 0)
		str_appendf(out, "uid: %lld\n", (long long)f->uid);
	put_span(out, "sender", f->sender);
	for (size_t i = 0; i < f->nrcpts; i++)
		put_span(out, "rcpt", f->rcpts[i]);
	if (f->notify & ENVELOPE_NOTIFY_NEVER) {
		str_appends(out, "notify: never\n");
	} else if (f->notify) {
		const char *sep = "";

		str_appends(out, "notify: ");
		if (f->notify & ENVELOPE_NOTIFY_SUCCESS) {
			str_appendf(out, "%ssuccess", sep);
			sep = ",";
		}
		if (f->notify & ENVELOPE_NOTIFY_FAILURE) {
			str_appendf(out, "%sfailure", sep);
			sep = ",";
		}
		if (f->notify & ENVELOPE_NOTIFY_DELAY)
			str_appendf(out, "%sdelay", sep);
		str_appendc(out, '\n');
	}
	if (f->ret == ENVELOPE_RET_FULL)
		str_appends(out, "ret: full\n");
	else if (f->ret == ENVELOPE_RET_HDRS)
		str_appends(out, "ret: hdrs\n");
	if (f->envid.len)
		put_span(out, "envid", f->envid);
	if (f->body_type == ENVELOPE_BODY_8BITMIME)
		str_appends(out, "body: 8bitmime\n");
	str_appendc(out, '\n');
}

int pickup_notify_parse(const char *s, size_t len)
{
	int bits = 0;
	size_t i = 0;

	if (len == 5 && strncasecmp(s, "never", 5) == 0)
		return ENVELOPE_NOTIFY_NEVER;
	while (i < len) {
		size_t j = i;

		while (j < len && s[j] != ',')
			j++;
		if (j - i == 7 && strncasecmp(s + i, "success", 7) == 0)
			bits |= ENVELOPE_NOTIFY_SUCCESS;
		else if (j - i == 7 && strncasecmp(s + i, "failure", 7) == 0)
			bits |= ENVELOPE_NOTIFY_FAILURE;
		else if (j - i == 5 && strncasecmp(s + i, "delay", 5) == 0)
			bits |= ENVELOPE_NOTIFY_DELAY;
		else
			return -1;
		i = j + 1;
		if (j + 1 == len)	/* a trailing comma */
			return -1;
	}
	return bits ? bits : -1;
}

/* value_ok - printable ASCII (and, for addresses, none of "<>" or blanks). */
static bool value_ok(const char *s, size_t len, bool address)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (address && (c == '<' || c == '>' || c == ' ' || c >= 0x80))
			return false;
	}
	return true;
}

/* fail - the one error shape: "line N: what". */
static int fail(struct str *err, size_t line, const char *what)
{
	str_appendf(err, "line %zu: %s", line, what);
	return -EINVAL;
}

int pickup_file_parse(const char *buf, size_t len, struct pickup_file *f, struct str *err)
{
	size_t pos = 0, line = 0, cap = 0;
	bool have_sender = false, ended = false;

	memset(f, 0, sizeof(*f));
	f->uid = -1;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		const char *s = buf + pos;
		size_t n;

		line++;
		if (nl == NULL)
			return fail(err, line, "the envelope does not end with an empty line");
		n = (size_t)(nl - s);
		pos += n + 1;
		if (pos > PICKUP_HEADER_MAX)
			return fail(err, line, "the envelope is too long");
		if (n && s[n - 1] == '\r')
			n--;
		if (line == 1) {
			if (n != strlen(PICKUP_MAGIC) || memcmp(s, PICKUP_MAGIC, n) != 0)
				return fail(err, line, "not a pickup file (no \"" PICKUP_MAGIC "\")");
			continue;
		}
		if (n == 0) {
			ended = true;
			break;
		}
		const char *colon = memchr(s, ':', n);
		if (colon == NULL)
			return fail(err, line, "no ':' in an envelope line");
		size_t nlen = (size_t)(colon - s);
		const char *v = colon + 1;
		size_t vlen = n - nlen - 1;

		while (vlen && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		if (vlen > PICKUP_VALUE_MAX)
			return fail(err, line, "value too long");
#define IS(name) (nlen == sizeof(name) - 1 && strncasecmp(s, name, nlen) == 0)
		if (IS("uid")) {
			int64_t u = 0;

			if (vlen == 0 || vlen > 10 || f->uid >= 0)
				return fail(err, line, "bad or repeated uid");
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return fail(err, line, "bad uid");
				u = u * 10 + (v[i] - '0');
			}
			f->uid = u;
		} else if (IS("sender")) {
			if (have_sender || !value_ok(v, vlen, true))
				return fail(err, line, "bad or repeated sender");
			f->sender = (struct pickup_span){ v, vlen };
			have_sender = true;
		} else if (IS("rcpt")) {
			if (vlen == 0 || !value_ok(v, vlen, true))
				return fail(err, line, "bad recipient");
			if (f->nrcpts >= PICKUP_RCPTS_MAX)
				return fail(err, line, "too many recipients");
			if (f->nrcpts == cap) {
				cap = cap ? 2 * cap : 8;
				f->rcpts = xrealloc(f->rcpts, cap * sizeof(*f->rcpts));
			}
			f->rcpts[f->nrcpts++] = (struct pickup_span){ v, vlen };
		} else if (IS("notify")) {
			int bits = pickup_notify_parse(v, vlen);

			if (bits < 0 || f->notify)
				return fail(err, line, "bad notify (never, or success,failure,delay)");
			f->notify = (uint8_t)bits;
		} else if (IS("ret")) {
			if (vlen == 4 && strncasecmp(v, "full", 4) == 0)
				f->ret = ENVELOPE_RET_FULL;
			else if (vlen == 4 && strncasecmp(v, "hdrs", 4) == 0)
				f->ret = ENVELOPE_RET_HDRS;
			else
				return fail(err, line, "bad ret (full or hdrs)");
		} else if (IS("envid")) {
			if (vlen == 0 || vlen > 100 || !value_ok(v, vlen, true))
				return fail(err, line, "bad envid");
			f->envid = (struct pickup_span){ v, vlen };
		} else if (IS("body")) {
			if (vlen == 4 && strncasecmp(v, "7bit", 4) == 0)
				f->body_type = ENVELOPE_BODY_7BIT;
			else if (vlen == 8 && strncasecmp(v, "8bitmime", 8) == 0)
				f->body_type = ENVELOPE_BODY_8BITMIME;
			else
				return fail(err, line, "bad body (7bit or 8bitmime)");
		} else {
			return fail(err, line, "unknown envelope field");
		}
#undef IS
	}
	if (line == 0)
		return fail(err, 1, "not a pickup file (empty)");
	if (!ended)	/* the empty line that is missing comes after the last one */
		return fail(err, line + 1, "the envelope does not end with an empty line");
	if (!have_sender)
		return fail(err, line, "no sender line");
	if (f->nrcpts == 0)
		return fail(err, line, "no recipient");
	f->data = buf + pos;
	f->len = len - pos;
	if (f->len == 0)
		return fail(err, line, "no message after the envelope");
	if (memchr(f->data, '\0', f->len))
		return fail(err, line, "the message holds a NUL byte");
	return 0;
}

void pickup_file_free(struct pickup_file *f)
{
	free(f->rcpts);
	f->rcpts = NULL;
	f->nrcpts = 0;
}
