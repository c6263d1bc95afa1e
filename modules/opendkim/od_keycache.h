/*
 * od_keycache.h - the opendkim module's private keys, loaded once and kept
 *
 * One cache per opendkim instance (so per configuration generation: a
 * reload makes new instances with empty caches, and every key is read
 * again from disk). Keys are looked up by the expanded `key` path.
 *
 *   - A key read and parsed (dkim_key_load_pem) is kept pos_ttl seconds,
 *     then read again on the next use (a key replaced on disk is seen
 *     after at most pos_ttl, at once after a reload).
 *   - A key that could not be read or parsed is remembered as missing
 *     neg_ttl seconds: the disk is not tried again meanwhile, and the
 *     caller is told to report the failure only once per neg_ttl (one
 *     paniclog line, not one per message).
 *   - At most max_keys entries, missing ones included; past that the
 *     least recently used entry goes.
 *
 * Ownership and threads: the cache belongs to its instance (made in
 * init, freed in fini on the scheduler thread, when no sign subscriber
 * can run). Between the two it is used by the CPU pool threads that run
 * the sign hook, at once, so every access takes the cache's mutex. The
 * lock is held for the table work only: a key is read from disk, and a
 * message signed, with the lock released; an EVP_PKEY handed out carries
 * its own reference (EVP_PKEY_up_ref), so an entry evicted or replaced
 * meanwhile never frees a key in use. Two threads missing the same path
 * at once may both read it; the second result replaces the first.
 *
 * Failures: od_keycache_get answers -1 with one line in err; nothing to
 * free.
 */
#ifndef IMPETUS_MODULES_OD_KEYCACHE_H
#define IMPETUS_MODULES_OD_KEYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkim_sign.h"

struct od_keycache;

/* od_keycache_new - an empty cache; ttls in seconds. */
struct od_keycache *od_keycache_new(size_t max_keys, uint64_t pos_ttl, uint64_t neg_ttl);
/* od_keycache_free - release every key (no other thread may use the cache any more). */
void od_keycache_free(struct od_keycache *c);

/*
 * od_keycache_get - the key of path: 0 with *key (a reference the caller
 * drops with EVP_PKEY_free) and *alg, or -1 with err. *report is set
 * when this call found the failure (read the disk and failed), so the
 * caller logs it; false when the failure came from the negative cache.
 */
int od_keycache_get(struct od_keycache *c, const char *path, EVP_PKEY **key,
		    enum dkim_alg *alg, char *err, size_t errlen, bool *report);

/* od_keycache_count - entries now (found and missing); for tests and the console. */
size_t od_keycache_count(struct od_keycache *c);

#endif
