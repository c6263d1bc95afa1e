/*
 * log_event.h - log lines as events: the log hook (impetus/hooks.h)
 *
 * Every mainlog, bouncelog and rejectlog line is also a struct
 * imp_log_event. The component that writes a line formats it once,
 * fills the event (pointers to what it already has, `line` the
 * formatted line) and calls log_event_emit: the subscribers of its
 * configuration's log hook run in order, and the built-in writers are
 * subscribers too (IMP_ORDER_BUILTIN), so a module sees exactly the
 * fields and the line that the file gets. With no generation (tools,
 * tests) the line is written directly. A events (a delivery attempt)
 * have no line: build them only when log_event_wanted says someone
 * listens.
 */
#ifndef IMPETUS_LOG_LOG_EVENT_H
#define IMPETUS_LOG_LOG_EVENT_H

#include <stdbool.h>

#include <impetus/hooks.h>

struct conf;
struct api_gen;

/* log_event_emit - run conf's log subscribers for ev (its type); without a generation, write ev->line. */
void log_event_emit(const struct conf *conf, const struct imp_log_event *ev);
/* log_event_wanted - whether a subscriber of conf's generation takes events of type. */
bool log_event_wanted(const struct conf *conf, enum imp_log_type type);
/* log_event_file - the file a type's line goes to; -1 for none (A). */
int log_event_file(enum imp_log_type type);
/* log_builtins_register - the mainlog, bouncelog and rejectlog writers (IMP_ORDER_BUILTIN). */
void log_builtins_register(struct api_gen *g);

#endif
