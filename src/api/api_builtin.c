/*
 * api_builtin.c - the built-in features that are hook subscribers
 *
 * Every built-in behaviour that a module may precede or replace (relay
 * control, binding assignment, bounce classes, connection goal, logs,
 * DKIM...) registers here into each new generation, through the
 * generation's core instance, before the modules' init functions run.
 * Keep this a list of calls, one per component; each component's own
 * file says what it subscribes and at which order.
 */
#include "api/api.h"
#include "smtp/smtp_policy.h"

int api_builtins_register(struct api_gen *g)
{
	int rc;

	if ((rc = smtp_policy_register(g)) < 0)
		return rc;
	return 0;
}
