/*
 * http_auth.h - API keys of the HTTP listener: who a request is
 *
 * Keys are configured hashed (API_Key "name" { Hash = ... Role = ... },
 * docs/http-api.md): a crypt(3) hash checked with crypt_rn, or the
 * SHA-256 of the key in hex compared in constant time. Neither the key
 * nor its hash is ever logged.
 *
 * Cost. SHA-256 costs microseconds; a crypt(3) hash (yescrypt, SHA-512
 * crypt) costs milliseconds on the scheduler thread, which is why a key
 * that matched once is remembered (by its SHA-256 and the configured
 * hash it matched, so a reload that changes the hash forgets it) and
 * why docs/http-api.md recommends SHA-256 for random keys.
 *
 * Owner: the scheduler thread (the cache).
 */
#ifndef IMPETUS_HTTP_HTTP_AUTH_H
#define IMPETUS_HTTP_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct conf;

/*
 * http_auth_key - the index of the first API_Key of c that key opens,
 * or -1 (no key matches: then every configured hash was tried). Each
 * comparison is constant-time, so the time taken says nothing about how
 * close a wrong key came.
 */
long http_auth_key(const struct conf *c, const char *key);
/* http_auth_cache_clear - forget the keys that matched (shutdown; tests). */
void http_auth_cache_clear(void);

#endif
