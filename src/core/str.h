/*
 * str.h - the one growing, length-carrying string/buffer type
 *
 * A struct str holds arbitrary bytes (message bodies included) with an
 * explicit length, and is always NUL-terminated after len as a safety net
 * so text can be passed to C APIs. It is owned by whoever embeds it; it is
 * not thread-safe. Growth aborts on exhaustion (core/mem.h).
 */
#ifndef IMPETUS_CORE_STR_H
#define IMPETUS_CORE_STR_H

#include <stdarg.h>
#include <stddef.h>

struct str {
	char *s;	/* bytes, NUL after len; NULL until first growth */
	size_t len;
	size_t cap;
};

#define STR_INIT { NULL, 0, 0 }

void str_init(struct str *sb);
void str_free(struct str *sb);
void str_clear(struct str *sb);
void str_reserve(struct str *sb, size_t extra);
void str_append(struct str *sb, const void *p, size_t n);
void str_appends(struct str *sb, const char *s);
void str_appendc(struct str *sb, char c);
void str_appendf(struct str *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void str_vappendf(struct str *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* str_append_u64 / str_append_i64 - a number in decimal, without printf (hot log lines). */
void str_append_u64(struct str *sb, unsigned long long v);
void str_append_i64(struct str *sb, long long v);
void str_truncate(struct str *sb, size_t len);
/* str_cstr - the contents as a C string ("" when empty, never NULL). */
const char *str_cstr(const struct str *sb);
/*
 * utf8_seq_len - length of the well-formed UTF-8 sequence at p (at most
 * n >= 1 bytes available; 1 for ASCII), or 0 when it is malformed:
 * overlong forms, surrogates and code points above U+10FFFF are refused
 * (RFC 3629).
 */
size_t utf8_seq_len(const unsigned char *s, size_t n);
/*
 * utf8_trim - cut the C string s at its first byte that does not start a
 * complete, well-formed UTF-8 sequence (what a fixed-size snprintf may
 * leave at the end), so JSON encoders take it. Returns s.
 */
char *utf8_trim(char *s);
/* str_steal - hand the heap buffer to the caller and reset sb. */
char *str_steal(struct str *sb);

#endif
