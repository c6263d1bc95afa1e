/*
 * smtp_policy.h - the SMTP server's built-in policy, as hook subscribers
 *
 * Relay control and the binding assignment are subscribers of the
 * validation phases like any module's (impetus/hooks.h), registered at
 * IMP_ORDER_BUILTIN through the generation's core instance: a module
 * that answers before them takes the decision away from them.
 */
#ifndef IMPETUS_SMTP_SMTP_POLICY_H
#define IMPETUS_SMTP_SMTP_POLICY_H

struct api_gen;

/* smtp_policy_register - subscribe the built-ins to g (building; scheduler thread). */
void smtp_policy_register(struct api_gen *g);

#endif
