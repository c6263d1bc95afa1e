/*
 * od_stats.h - the opendkim module's signing counters, per signing domain
 *
 * Momentum's `signing_stats`: for each d= domain, how many signatures
 * were made, how many failed (the key did not fit the digest, the
 * message could not be read, OpenSSL refused) and how many were skipped
 * because the key was missing or unreadable. One table per instance, so
 * per configuration generation (a reload starts from zero; the fini of
 * the old instance writes its counts to the paniclog first).
 *
 * Threads: the sign hook adds from the CPU pool threads, at once; the
 * console's signing_stats command reads from the scheduler. A mutex
 * guards the table; it is held for a lookup and three additions.
 * At most OD_STATS_DOMAINS_MAX domains are told apart; the rest are
 * counted under "(other)" so a flood of From domains cannot grow it.
 */
#ifndef IMPETUS_MODULES_OD_STATS_H
#define IMPETUS_MODULES_OD_STATS_H

#include <stddef.h>
#include <stdint.h>

#define OD_STATS_DOMAINS_MAX 10000
#define OD_STATS_OTHER "(other)"

struct od_stats;

struct od_counts {
	uint64_t signed_ok;	/* signatures added */
	uint64_t failed;	/* signatures that could not be made */
	uint64_t no_key;	/* signatures skipped: key missing or unreadable */
};

enum od_stat { OD_STAT_SIGNED, OD_STAT_FAILED, OD_STAT_NO_KEY };

struct od_stats *od_stats_new(void);
void od_stats_free(struct od_stats *st);
/* od_stats_add - count one event for domain (lower-cased by the caller). */
void od_stats_add(struct od_stats *st, const char *domain, enum od_stat what);
/* od_stats_reset - every count back to zero (Momentum's `signing_stats reset`). */
void od_stats_reset(struct od_stats *st);
/*
 * od_stats_each - call fn for every domain in first-seen order, with a
 * snapshot of its counts (taken under the lock, fn called without it).
 * Returns the number of domains.
 */
size_t od_stats_each(struct od_stats *st,
		     void (*fn)(void *arg, const char *domain, const struct od_counts *c),
		     void *arg);

#endif
