/*
 * od_from.h - which domain a From: field names, for the opendkim module
 *
 * Pure function, any thread. Failures: false, nothing written but out.
 */
#ifndef IMPETUS_MODULES_OD_FROM_H
#define IMPETUS_MODULES_OD_FROM_H

#include <stdbool.h>
#include <stddef.h>

/*
 * od_from_domain - the domain of the first address of the From: value v
 * (folding included), lower case, without a trailing dot, into out
 * (outlen bytes with the NUL). false when there is none that looks like
 * a domain, or it does not fit.
 */
bool od_from_domain(const char *v, char *out, size_t outlen);

#endif
