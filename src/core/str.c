/*
 * str.c - growing string/buffer (see str.h)
 */
#include "core/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void str_init(struct str *sb)
{
	sb->s = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void str_free(struct str *sb)
{
	free(sb->s);
	str_init(sb);
}

void str_clear(struct str *sb)
{
	sb->len = 0;
	if (sb->s)
		sb->s[0] = '\0';
}

void str_reserve(struct str *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap *= 2;
	sb->s = xrealloc(sb->s, cap);
	sb->cap = cap;
	/* a fresh buffer is a valid empty string, whatever is appended next */
	sb->s[sb->len] = '\0';
}

void str_append(struct str *sb, const void *p, size_t n)
{
	str_reserve(sb, n);
	if (n)
		memcpy(sb->s + sb->len, p, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

void str_appends(struct str *sb, const char *s)
{
	str_append(sb, s, strlen(s));
}

void str_appendc(struct str *sb, char c)
{
	str_reserve(sb, 1);
	sb->s[sb->len++] = c;
	sb->s[sb->len] = '\0';
}

void str_vappendf(struct str *sb, const char *fmt, va_list ap)
{
	va_list ap2;

	va_copy(ap2, ap);
	str_reserve(sb, 64);
	int n = vsnprintf(sb->s + sb->len, sb->cap - sb->len, fmt, ap);
	if (n >= 0 && (size_t)n >= sb->cap - sb->len) {
		str_reserve(sb, (size_t)n);
		n = vsnprintf(sb->s + sb->len, sb->cap - sb->len, fmt, ap2);
	}
	va_end(ap2);
	if (n > 0)
		sb->len += (size_t)n;
}

void str_appendf(struct str *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(sb, fmt, ap);
	va_end(ap);
}

void str_truncate(struct str *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->s[len] = '\0';
	}
}

const char *str_cstr(const struct str *sb)
{
	return sb->s ? sb->s : "";
}

char *str_steal(struct str *sb)
{
	char *p = sb->s;

	if (p == NULL)
		p = xstrdup("");
	str_init(sb);
	return p;
}

char *utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 :
			   (*p & 0xf8) == 0xf0 ? 4 : 0;
		size_t k;

		if (n == 0 || (n == 2 && *p < 0xc2) || (n == 4 && *p > 0xf4))
			break;
		for (k = 1; k < n && (p[k] & 0xc0) == 0x80; k++)
			;
		if (k < n)
			break;
		/* Overlong 3- and 4-byte forms, surrogates, past U+10FFFF. */
		if ((n == 3 && ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0))) ||
		    (n == 4 && ((*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] >= 0x90))))
			break;
		p += n;
	}
	*p = '\0';
	return s;
}
