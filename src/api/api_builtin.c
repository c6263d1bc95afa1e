/*
 * api_builtin.c - the daemon's own subscribers
 *
 * Built-in behaviour that modules may precede, override or extend is
 * registered here, into every generation, through the core instance, the
 * same way a module registers (DESIGN.md: no private side doors). One
 * call per component; each registers its subscribers at the orders its
 * hooks document (the connection goal at IMP_ORDER_FIRST, the binding
 * round robin at IMP_ORDER_LAST, the classification rules and the log
 * writers at IMP_ORDER_BUILTIN). A refused registration is a programming
 * error and aborts.
 */
#include "api/api.h"
#include "api/api_console.h"
#include "api/api_history.h"
#include "api/api_module.h"
#include "events/events.h"
#include "log/log_event.h"
#include "policy/bounce_class.h"
#include "policy/macro.h"
#include "queue/queue.h"
#include "smtp/smtp_policy.h"

void api_builtins_register(struct api_gen *g)
{
	smtp_policy_register(g);
	queue_builtins_register(g);
	bounce_class_builtins_register(g);
	log_builtins_register(g);
	events_register(g);
	macro_builtins_register(g);
	api_console_builtins_register(g);
	api_summary_register(g);
	api_console_ops_register(g);
	api_history_register(g);
}
