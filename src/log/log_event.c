/*
 * log_event.c - dispatching log events to the log hook (see log_event.h)
 *
 * The built-in writer is one subscriber for R, D, T, P, B and X at
 * IMP_ORDER_BUILTIN: modules at the default order see each event before
 * the line is written, and modules may subscribe after it. Events are
 * read-only to subscribers, which run on the thread that writes the line
 * (the scheduler for queue events, an I/O loop or the scheduler for
 * rejections) and must copy what they keep. Nothing here fails.
 */
#include "log/log_event.h"

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "log/log.h"

int log_event_file(enum imp_log_type type)
{
	switch (type) {
	case IMP_LOG_RECEPTION:
	case IMP_LOG_DELIVERY:
	case IMP_LOG_TRANSIENT:
	case IMP_LOG_PERMANENT:
		return LOG_MAIN;
	case IMP_LOG_BOUNCE:
		return LOG_BOUNCE;
	case IMP_LOG_REJECTION:
		return LOG_REJECT;
	default:
		return -1;
	}
}

/* write_line - the built-in writer: the event's line into its file. */
static void write_line(void *closure, const struct imp_log_event *ev)
{
	int f = log_event_file(ev->type);

	(void)closure;
	if (f >= 0 && ev->line && ev->line[0])
		log_line((enum log_file)f, ev->line, strlen(ev->line));
}

void log_event_emit(const struct conf *conf, const struct imp_log_event *ev)
{
	const struct api_hook *h = api_hook_of(conf, API_HOOK_LOG);
	uint32_t bit = api_log_type_bit(ev->type);

	if (h == NULL) {
		write_line(NULL, ev);
		return;
	}
	for (size_t i = 0; i < h->n; i++) {
		if (h->v[i].log_types & bit)
			((imp_log_fn)h->v[i].fn)(h->v[i].closure, ev);
	}
}

bool log_event_wanted(const struct conf *conf, enum imp_log_type type)
{
	const struct api_hook *h = api_hook_of(conf, API_HOOK_LOG);
	uint32_t bit = api_log_type_bit(type);

	for (size_t i = 0; h && i < h->n; i++)
		if (h->v[i].log_types & bit)
			return true;
	return false;
}

void log_builtins_register(struct api_gen *g)
{
	if (imp_hook_log(api_core_instance(g), "RDTPBX", write_line, NULL, IMP_ORDER_BUILTIN) < 0)
		abort();
}
