/*
 * http_auth.c - API key checks (http_auth.h)
 *
 * Owner: the scheduler thread, for the cache of keys that matched.
 * Failure modes: a key that matches nothing gives -1; a crypt(3) hash
 * libcrypt cannot compute (an unsupported method) never matches, and
 * the parser already refused hashes that are neither crypt nor SHA-256.
 */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config/config.h"
#include "core/mem.h"
#include "http/http_auth.h"

#define AUTH_CACHE_MAX 16	/* keys remembered after a crypt(3) match */

struct auth_cached {
	unsigned char digest[32];	/* SHA-256 of the key as sent */
	char *hash;			/* the configured hash it matched */
};

static struct auth_cached auth_cache[AUTH_CACHE_MAX];
static size_t auth_cache_next;

/* sha256 - the digest of s. */
static void sha256(const char *s, unsigned char out[32])
{
	unsigned int n = 32;

	EVP_Digest(s, strlen(s), out, &n, EVP_sha256(), NULL);
}

/* hex_lower - 32 bytes as 64 lower-case hex digits. */
static void hex_lower(const unsigned char d[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

/* sha_matches - whether the configured hex hash is digest (case-insensitive, constant time). */
static bool sha_matches(const char *hash, const char hex[65])
{
	char low[65];

	for (int i = 0; i < 64; i++)
		low[i] = (char)(hash[i] >= 'A' && hash[i] <= 'F' ? hash[i] - 'A' + 'a' : hash[i]);
	low[64] = '\0';
	return CRYPTO_memcmp(low, hex, 64) == 0;
}

/* crypt_matches - crypt_rn(key, hash) == hash, compared in constant time over the length. */
static bool crypt_matches(const char *hash, const char *key)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	const char *out = crypt_rn(key, hash, cd, (int)sizeof(*cd));
	bool ok = out != NULL && out[0] != '*' && strlen(out) == strlen(hash) &&
		  CRYPTO_memcmp(out, hash, strlen(hash)) == 0;

	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* cache_hit - a remembered match of digest against hash. */
static bool cache_hit(const unsigned char digest[32], const char *hash)
{
	for (size_t i = 0; i < AUTH_CACHE_MAX; i++)
		if (auth_cache[i].hash && CRYPTO_memcmp(auth_cache[i].digest, digest, 32) == 0 &&
		    strcmp(auth_cache[i].hash, hash) == 0)
			return true;
	return false;
}

/* cache_put - remember that the key of digest matched hash (oldest entry replaced). */
static void cache_put(const unsigned char digest[32], const char *hash)
{
	struct auth_cached *e = &auth_cache[auth_cache_next];

	auth_cache_next = (auth_cache_next + 1) % AUTH_CACHE_MAX;
	free(e->hash);
	memcpy(e->digest, digest, 32);
	e->hash = xstrdup(hash);
}

long http_auth_key(const struct conf *c, const char *key)
{
	size_t nslow, n;
	long found = http_auth_quick(c, key, &nslow);

	if (found != HTTP_AUTH_SLOW)
		return found;
	char **hashes = http_auth_slow_hashes(c, key, &n);
	long match = http_auth_slow(key, hashes, n);

	found = -1;
	for (size_t i = 0; match >= 0 && i < conf_http_key_count(c) && found < 0; i++) {
		const char *hash = conf_http_key_hash(c, i);

		if (hash && strcmp(hash, hashes[match]) == 0)
			found = (long)i;
	}
	if (found >= 0)
		http_auth_remember(key, hashes[match]);
	for (size_t i = 0; i < n; i++)
		free(hashes[i]);
	free(hashes);
	return found;
}

long http_auth_quick(const struct conf *c, const char *key, size_t *nslow)
{
	unsigned char digest[32];
	char hex[65];
	long found = -1;

	*nslow = 0;
	if (key == NULL || *key == '\0')
		return -1;
	sha256(key, digest);
	hex_lower(digest, hex);
	for (size_t i = 0; i < conf_http_key_count(c) && found < 0; i++) {
		const char *hash = conf_http_key_hash(c, i);

		if (hash == NULL)
			continue;
		if (hash[0] != '$') {
			if (sha_matches(hash, hex))
				found = (long)i;
		} else if (cache_hit(digest, hash)) {
			found = (long)i;
		} else {
			(*nslow)++;
		}
	}
	explicit_bzero(hex, sizeof(hex));
	return found >= 0 ? found : *nslow ? HTTP_AUTH_SLOW : -1;
}

char **http_auth_slow_hashes(const struct conf *c, const char *key, size_t *n)
{
	unsigned char digest[32];
	char **out = NULL;

	*n = 0;
	sha256(key, digest);
	for (size_t i = 0; i < conf_http_key_count(c); i++) {
		const char *hash = conf_http_key_hash(c, i);

		if (hash == NULL || hash[0] != '$' || cache_hit(digest, hash))
			continue;
		out = xrealloc(out, (*n + 1) * sizeof(*out));
		out[(*n)++] = xstrdup(hash);
	}
	return out;
}

long http_auth_slow(const char *key, char *const *hashes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (crypt_matches(hashes[i], key))
			return (long)i;
	return -1;
}

void http_auth_remember(const char *key, const char *hash)
{
	unsigned char digest[32];

	sha256(key, digest);
	if (!cache_hit(digest, hash))
		cache_put(digest, hash);
}

void http_auth_cache_clear(void)
{
	for (size_t i = 0; i < AUTH_CACHE_MAX; i++) {
		free(auth_cache[i].hash);
		auth_cache[i].hash = NULL;
	}
	auth_cache_next = 0;
}
