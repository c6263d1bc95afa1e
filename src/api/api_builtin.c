/*
 * api_builtin.c - the built-in subscribers and macros of a generation
 *
 * impetus's own behaviour (relay control, binding choice, bounce classes,
 * the logs, the macros of the core) registers through the same API as a
 * module, as the pseudo-instance api_core_instance(g), before any
 * module's init, so modules see the built-ins in their hook lists and
 * can order themselves around them (DESIGN.md: no private side doors).
 * Each feature has one call here, into the file that owns it; that
 * file's function registers everything of its feature.
 *
 * Scheduler thread, while g is building. A built-in that cannot register
 * is a programming error: the calls abort rather than return.
 */
#include "api/api.h"
#include "api/api_module.h"
#include "policy/macro.h"
#include "smtp/smtp_policy.h"

void api_builtins_register(struct api_gen *g)
{
	smtp_policy_register(g);
	macro_builtins_register(g);
}
