/*
 * od_profile.h - the opendkim module's signing profiles, read from its stanza
 *
 * A profile says how mail of one From: domain is signed: the settings of
 * a `dkim_domain "d" { }` stanza, each unset option taken from the
 * instance's stanza; the instance's own settings are a profile too (used
 * for any other domain when it has a selector). Built by init on the
 * scheduler thread, read-only afterwards, so the CPU pool threads read
 * them without a lock; freed by fini.
 *
 * Failures: od_profiles_build returns -1 after imp_error_set with the
 * stanza it is about ("dkim_domain \"x\": selector is required"); what
 * it made is freed by od_profiles_free.
 */
#ifndef IMPETUS_MODULES_OD_PROFILE_H
#define IMPETUS_MODULES_OD_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim_sign.h"

struct imp_instance;
struct imp_error;

/* The most signatures one message gets from one instance: one per digest. */
#define OD_DIGESTS_MAX 2

/* One signature of a profile. */
struct od_sig {
	enum dkim_alg alg;
	char *selector;
};

/* How mail of one From: domain (or of any, for the instance's own) is signed. */
struct od_profile {
	char *name;			/* the dkim_domain argument, lower case; NULL: the instance's */
	char *base_domain;		/* d= override; NULL: name (or the From domain) */
	enum dkim_canon hc, bc;
	char **headers, **oversign;
	size_t nheaders, noversign;
	struct od_sig sigs[OD_DIGESTS_MAX];
	size_t nsigs;
	char *key;			/* path template */
	uint32_t lifetime;		/* seconds */
	bool body_length_limit;
	char *sign_condition;
	char *identity;
	struct od_profile *hnext;	/* in the name table */
};

/* All the profiles of an instance. */
struct od_profiles {
	struct od_profile *def;		/* the instance's own settings; signs only with a selector */
	struct od_profile *profiles;	/* the dkim_domain stanzas, file order */
	size_t nprofiles;
	struct od_profile **table;	/* by name; ntable a power of two */
	size_t ntable;
	char **conditions;		/* the distinct sign_condition keys of all profiles */
	size_t nconditions;
};

/* od_profiles_build - read the instance's stanza and its dkim_domain stanzas (init). */
int od_profiles_build(struct od_profiles *ps, struct imp_instance *inst, struct imp_error *err);
void od_profiles_free(struct od_profiles *ps);

/*
 * od_profiles_for - the profile of a From: domain (lower case) and the d=
 * it signs with, in dbuf: the domain's dkim_domain stanza, else its
 * nearest parent domain's, else the instance's own when it has a
 * selector; NULL: the domain is not signed.
 */
const struct od_profile *od_profiles_for(const struct od_profiles *ps, const char *from,
					 char *dbuf, size_t dlen);

#endif
