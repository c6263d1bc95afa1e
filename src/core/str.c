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

size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

char *utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), len;

	while (*p && (len = utf8_seq_len(p, n)) > 0) {
		p += len;
		n -= len;
	}
	*p = '\0';
	return s;
}

void str_append_u64(struct str *sb, unsigned long long v)
{
	char buf[24];
	size_t i = sizeof(buf);

	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	str_append(sb, buf + i, sizeof(buf) - i);
}

void str_append_i64(struct str *sb, long long v)
{
	if (v < 0) {
		str_appendc(sb, '-');
		/* -(v + 1) + 1: no overflow for LLONG_MIN. */
		str_append_u64(sb, (unsigned long long)(-(v + 1)) + 1);
	} else {
		str_append_u64(sb, (unsigned long long)v);
	}
}
