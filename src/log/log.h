/*
 * log.h - the daemon's log files: mainlog, bouncelog, rejectlog, paniclog
 *
 * Formats follow Momentum (docs/logs.md): `@`-delimited event lines in the
 * mainlog and bouncelog, one line per rejected command in the rejectlog,
 * and daemon events in the paniclog ("<id-or-subsystem> key=value ...").
 *
 * Every thread logs, so each file is the one shared structure that is not
 * owned by a single thread: a mutex guards an in-memory buffer that is
 * written out when it passes a threshold, when log_flush() runs (the
 * scheduler calls it every second and at shutdown) and, for the paniclog,
 * at once. Writes are appends to files opened with O_APPEND. A failed write
 * is reported on stderr and the buffered lines are dropped rather than
 * blocking mail: logs never hold up delivery.
 */
#ifndef IMPETUS_LOG_LOG_H
#define IMPETUS_LOG_LOG_H

#include <stdbool.h>

#include "core/str.h"

enum log_file {
	LOG_MAIN,
	LOG_BOUNCE,
	LOG_REJECT,
	LOG_PANIC,
	LOG__COUNT
};

/*
 * log_open - create dir if needed and open the four files in it.
 * Returns 0, or -errno with err set. Before log_open (and with
 * log_open_stderr) everything goes to stderr.
 */
int log_open(const char *dir, struct str *err);
/* log_reopen - reopen every file by name (after rotation; SIGHUP). */
void log_reopen(void);
/* log_file_path - append the path of file f to out; false before log_open (stderr). */
bool log_file_path(enum log_file f, struct str *out);
/* log_flush - write out every buffer. */
void log_flush(void);
void log_close(void);
/* log_set_stderr_echo - also copy paniclog lines to stderr. */
void log_set_stderr_echo(bool on);

/* log_line - append one line (newline added) to a file. Any thread. */
void log_line(enum log_file f, const char *line, size_t len);
/* log_panic - a daemon event line in the paniclog, prefixed with the time. */
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * log_reject - a rejectlog line, and its X event for the log hook of
 * conf's generation (log_event.h; conf may be NULL: the line only).
 */
struct conf;
void log_reject(const struct conf *conf, const char *remote, const char *local,
		const char *conn_id, const char *phase, const char *reply);

#endif
