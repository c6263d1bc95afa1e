/*
 * opendkim.c - DKIM signing (module opendkim): NOT FINISHED, refuses to load
 *
 * Issue 7, item 1 is built in steps. This step brings the pure part,
 * dkim_sign.c (canonicalisation, header selection, rsa-sha256 and
 * ed25519-sha256 signatures, verified by dkimpy in the tests); the
 * module itself — the Momentum-style `opendkim "name" { ... }` stanza,
 * the key cache, the signing hook on the CPU pool, `opendkim_sign` and
 * the console's signing_stats — comes with a later step of issue 7.
 *
 * Until then init refuses, so that a configuration naming opendkim stops
 * start-up (or is refused by a reload) with a clear message instead of
 * silently sending unsigned mail. (`impetusd -t` runs no init: it
 * accepts the stanza, which has no options yet.)
 */
#include <impetus/impetus.h>

/* od_init - refuse: the module is not finished (file header). */
static int od_init(struct imp_instance *inst, struct imp_error *err)
{
	(void)inst;
	imp_error_set(err, "the opendkim module is not finished: signing configuration "
		      "comes with issue 7");
	return -1;
}

IMP_MODULE_DEFINE(.name = "opendkim", .version = "0.1",
		  .description = "DKIM signing (not finished: refuses to load)",
		  .init = od_init);
