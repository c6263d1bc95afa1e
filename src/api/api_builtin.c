/*
 * api_builtin.c - the built-in subscribers of a generation
 *
 * Built-in features are hook subscribers like any module (DESIGN.md,
 * "Extension API"): each component registers its own through the core
 * instance (api_core_instance) when a generation is built, before the
 * modules' init, so the order numbers alone decide who runs first. This
 * file is only the list of those registrations; what each one does is
 * in its component.
 *
 * Scheduler thread, while the generation is building. Fails only on a
 * programming error (a hook refusing a registration), which aborts.
 */
#include <stdlib.h>

#include "api/api.h"
#include "log/log_event.h"
#include "policy/bounce_class.h"
#include "queue/queue.h"

/* api_builtins_register - register every built-in subscriber into g (building). */
void api_builtins_register(struct api_gen *g)
{
	queue_builtins_register(g);
	bounce_class_builtins_register(g);
	log_builtins_register(g);
}
