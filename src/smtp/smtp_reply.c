/*
 * smtp_reply.c - building and formatting SMTP replies (see smtp_reply.h)
 *
 * Pure functions on caller-owned values; safe on any thread.
 */
#include "smtp/smtp_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void smtp_reply_clear(struct smtp_reply *r)
{
	r->code = 0;
	r->ext[0] = '\0';
	r->text[0] = '\0';
}

void smtp_reply_set(struct smtp_reply *r, int code, const char *ext,
		    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->ext, sizeof(r->ext), "%s", ext ? ext : "");
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* append_text - copy text, replacing control bytes so no line can be forged. */
static void append_text(struct str *out, const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	const unsigned char *run = p;

	for (; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f)
			continue;
		str_append(out, run, (size_t)(p - run));
		str_appendc(out, '?');
		run = p + 1;
	}
	str_append(out, run, (size_t)(p - run));
}

void smtp_reply_append_line(struct str *out, int code, const char *ext,
			    bool last, const char *text)
{
	str_appendf(out, "%03d%c", code, last ? ' ' : '-');
	if (ext && ext[0]) {
		append_text(out, ext);
		if (text && text[0])
			str_appendc(out, ' ');
	}
	if (text)
		append_text(out, text);
	str_append(out, "\r\n", 2);
}

void smtp_reply_format(const struct smtp_reply *r, struct str *out)
{
	smtp_reply_append_line(out, r->code, r->ext, true, r->text);
}
