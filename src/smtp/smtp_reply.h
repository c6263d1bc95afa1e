/*
 * smtp_reply.h - building and formatting SMTP replies
 *
 * struct smtp_reply (declared in smtp_parse.h) is a plain value: whoever
 * holds it owns it, any thread. Formatting never fails (memory exhaustion
 * aborts, core/mem.h) and never lets a CR, LF or other control byte from
 * the text reach the wire, so text built from client input cannot inject
 * reply lines.
 */
#ifndef IMPETUS_SMTP_SMTP_REPLY_H
#define IMPETUS_SMTP_SMTP_REPLY_H

#include <stdbool.h>

#include "core/str.h"
#include "smtp/smtp_parse.h"

/* smtp_reply_clear - reset to "no error" (code 0, empty ext and text). */
void smtp_reply_clear(struct smtp_reply *r);

/*
 * smtp_reply_set - fill r with code, enhanced code (NULL or "" for none)
 * and printf-style text; text longer than r->text is truncated.
 */
void smtp_reply_set(struct smtp_reply *r, int code, const char *ext,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* smtp_reply_format - append "code ext text\r\n" (one line) to out. */
void smtp_reply_format(const struct smtp_reply *r, struct str *out);

/*
 * smtp_reply_append_line - append one line of a possibly multi-line reply:
 * "code-ext text" when more lines follow, "code ext text" on the last.
 */
void smtp_reply_append_line(struct str *out, int code, const char *ext,
			    bool last, const char *text);

#endif
