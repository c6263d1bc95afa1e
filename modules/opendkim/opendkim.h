/*
 * opendkim.h - what the opendkim module offers the rest of impetus
 *
 * The console's `signing_stats` command (Momentum's; `signing_stats
 * reset` clears the counts) is registered by the first instance's init
 * through include/impetus/console.h and sums the counters of every
 * instance of its generation. These two functions read and clear one
 * instance's counters for other code that holds the instance. The
 * counters are also written to the paniclog when the instance ends
 * (reload, shutdown): one "signing_stats domain=..." line per domain and
 * a total.
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
