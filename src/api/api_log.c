/*
 * api_log.c - a module's lines in the paniclog (include/impetus/log.h)
 *
 * A line is "module[instance]: text" ("module: text" for a singleton),
 * written with log_panic, which adds the time and hands it to the log
 * writer (any thread, never blocks on the disk). The text is the
 * module's, so it is made one safe line: CR, LF, every other control
 * byte, DEL and the backslash itself become \xHH; bytes >= 0x80 (UTF-8)
 * are kept. No state; any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <impetus/log.h>

#include "api/api.h"
#include "api/api_services.h"
#include "core/str.h"
#include "log/log.h"

void api_log_escape(struct str *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '\\')
			str_appendf(out, "\\x%02X", c);
		else
			str_appendc(out, (char)c);
	}
}

void api_log_vformat(struct str *out, const struct imp_instance *inst, const char *fmt,
		     va_list ap)
{
	struct str text = STR_INIT;
	const char *mod = inst && inst->module_name ? inst->module_name : "(unknown)";
	const char *name = inst && inst->name ? inst->name : "";

	str_vappendf(&text, fmt, ap);
	str_appends(out, mod);
	if (*name) {
		str_appendc(out, '[');
		api_log_escape(out, name, strlen(name));
		str_appendc(out, ']');
	}
	str_appends(out, ": ");
	api_log_escape(out, text.s ? text.s : "", text.len);
	str_free(&text);
}

/* vlog - one paniclog line for inst. */
static void vlog(const struct imp_instance *inst, const char *fmt, va_list ap)
{
	struct str line = STR_INIT;

	api_log_vformat(&line, inst, fmt, ap);
	log_panic("%s", str_cstr(&line));
	str_free(&line);
}

void imp_log_panic(const struct imp_instance *inst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(inst, fmt, ap);
	va_end(ap);
}

void imp_log_debug(const struct imp_instance *inst, int level, const char *fmt, ...)
{
	va_list ap;

	if (inst == NULL || inst->debug_level < level)
		return;
	va_start(ap, fmt);
	vlog(inst, fmt, ap);
	va_end(ap);
}
