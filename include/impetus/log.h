/*
 * impetus/log.h - a module's lines in the paniclog
 *
 * Lines go to the paniclog (Log_Directory/paniclog) prefixed with the
 * module and instance ("header_stamp[stamp1]: ...", "json_log: ..." for
 * a singleton), one line each; CR, LF, other control bytes and the
 * backslash are escaped as \xHH. Any thread; never blocks on
 * the disk (the log writer owns the file).
 */
#ifndef IMPETUS_LOG_H
#define IMPETUS_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

struct imp_instance;

void imp_log_panic(const struct imp_instance *inst, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* imp_log_debug - a paniclog line only when the instance's debug_level >= level. */
void imp_log_debug(const struct imp_instance *inst, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
