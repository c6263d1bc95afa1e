/*
 * opendkim.h - what the opendkim module offers the rest of impetus
 *
 * The console (issue 8) is not there yet. When it is, its
 * `signing_stats` command (Momentum's) reads the counters of each
 * opendkim instance with opendkim_signing_stats, and `signing_stats
 * reset` clears them with opendkim_signing_stats_reset: either the
 * module's init registers the command through the console API to come,
 * or the console finds both with dlsym() on opendkim.so (they are the
 * module's only exported symbols besides impetus_module). Until then the
 * counters are written to the paniclog when the instance ends (reload,
 * shutdown): one "signing_stats domain=..." line per domain and a total.
 */
#ifndef IMPETUS_MODULES_OPENDKIM_H
#define IMPETUS_MODULES_OPENDKIM_H

#include <stddef.h>

#include "od_stats.h"

struct imp_instance;

/*
 * opendkim_signing_stats - call fn for each signing domain of an opendkim
 * instance with its counts (signatures made, failed, skipped for want of
 * a key); returns the number of domains. Any thread holding the
 * instance's generation; fn runs without the counters' lock.
 */
__attribute__((visibility("default")))
size_t opendkim_signing_stats(const struct imp_instance *inst,
			      void (*fn)(void *arg, const char *domain, const struct od_counts *c),
			      void *arg);
/* opendkim_signing_stats_reset - every count of the instance back to zero; any thread. */
__attribute__((visibility("default")))
void opendkim_signing_stats_reset(const struct imp_instance *inst);

#endif
