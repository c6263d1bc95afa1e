/*
 * http_auth.h - API keys of the HTTP listener: who a request is
 *
 * Keys are configured hashed (API_Key "name" { Hash = ... Role = ... },
 * docs/http-api.md): a crypt(3) hash checked with crypt_rn, or the
 * SHA-256 of the key in hex compared in constant time. Neither the key
 * nor its hash is ever logged.
 *
 * Cost. SHA-256 costs microseconds; a crypt(3) hash (yescrypt, SHA-512
 * crypt) costs milliseconds, so it never runs on the scheduler: the
 * listener asks http_auth_quick first (SHA-256 keys, and crypt keys that
 * matched before: remembered by the key's SHA-256 and the configured
 * hash it matched, so a reload that changes the hash forgets it), and
 * only when a crypt hash is left to try runs http_auth_slow on the CPU
 * pool. docs/http-api.md recommends SHA-256 for random keys.
 *
 * Owner: the scheduler thread (the cache); http_auth_slow is pure.
 */
#ifndef IMPETUS_HTTP_HTTP_AUTH_H
#define IMPETUS_HTTP_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct conf;

/*
 * http_auth_key - the index of the API_Key of c that key opens (SHA-256
 * keys tried first), or -1 (no key matches: then every configured hash
 * was tried); crypt(3) on the calling thread (tools, tests). Each
 * comparison is constant-time, so the time taken says nothing about how
 * close a wrong key came.
 */
long http_auth_key(const struct conf *c, const char *key);
/*
 * http_auth_quick - http_auth_key without crypt(3): the index of the key
 * opened by a SHA-256 hash or a remembered crypt match; -1 when nothing
 * matches and no crypt hash is left; HTTP_AUTH_SLOW when only crypt
 * hashes not remembered are left (*nslow of them).
 */
#define HTTP_AUTH_SLOW (-2)
long http_auth_quick(const struct conf *c, const char *key, size_t *nslow);
/* http_auth_slow_hashes - the crypt hashes http_auth_quick left, copied (n of them; free each and the array). */
char **http_auth_slow_hashes(const struct conf *c, const char *key, size_t *n);
/* http_auth_slow - any thread: the index in hashes[] of the first crypt(3) hash key opens, or -1. */
long http_auth_slow(const char *key, char *const *hashes, size_t n);
/* http_auth_remember - key opened hash: the next request with it is quick. */
void http_auth_remember(const char *key, const char *hash);
/* http_auth_cache_clear - forget the keys that matched (shutdown; tests). */
void http_auth_cache_clear(void);

#endif
