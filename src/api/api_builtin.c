/*
 * api_builtin.c - the daemon's own subscribers
 *
 * Built-in behaviour that modules may precede, override or extend is
 * registered here, into every generation, through the core instance, the
 * same way a module registers (DESIGN.md: no private side doors). One
 * call per component; each registers its subscribers at the orders its
 * hooks document.
 */
#include "api/api.h"
#include "api/api_module.h"
#include "smtp/smtp_policy.h"

void api_builtins_register(struct api_gen *g)
{
	smtp_policy_register(g);
}
