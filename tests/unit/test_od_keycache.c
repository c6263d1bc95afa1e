/*
 * test_od_keycache.c - the opendkim module's key cache (modules/opendkim/od_keycache.c)
 *
 * Real PEM files made here with OpenSSL (RSA 1024 and Ed25519): a key is
 * read once and then served from memory; a key replaced on disk is seen
 * once pos_ttl has passed and not before; a missing file is reported
 * once per neg_ttl and served from the negative entry meanwhile; the
 * size bound evicts the least recently used entry; a key handed out
 * survives its eviction (its own reference). The last case hammers one
 * cache from several threads, for the sanitizer build.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "check.h"
#include "od_keycache.h"

static char dir[] = "/tmp/impetus-kc-XXXXXX";

/* write_key - a new key of type ("RSA" 1024 bits or "ED25519") at dir/name. */
static void write_key(const char *name, const char *type)
{
	char path[512];
	EVP_PKEY *k = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024)
					     : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.tmp", dir, name);
	f = fopen(path, "w");
	CHECK(k != NULL && f != NULL);
	if (k && f)
		CHECK(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
	if (f)
		fclose(f);
	EVP_PKEY_free(k);
	char final[512];
	snprintf(final, sizeof(final), "%s/%s", dir, name);
	CHECK(rename(path, final) == 0);
}

static char *path_of(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static void test_hit_miss_and_types(void)
{
	struct od_keycache *c = od_keycache_new(16, 300, 3600);
	EVP_PKEY *a = NULL, *b = NULL;
	enum dkim_alg alg = DKIM_ALG_ED25519_SHA256;
	char err[256];
	bool report = true;

	write_key("rsa.pem", "RSA");
	write_key("ed.pem", "ED25519");
	CHECK_INTEQ(od_keycache_get(c, path_of("rsa.pem"), &a, &alg, err, sizeof(err), &report), 0);
	CHECK(a != NULL && alg == DKIM_ALG_RSA_SHA256 && !report);
	/* the second look-up is the same key, from memory */
	CHECK_INTEQ(od_keycache_get(c, path_of("rsa.pem"), &b, &alg, err, sizeof(err), &report), 0);
	CHECK(a == b);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	CHECK_INTEQ(od_keycache_get(c, path_of("ed.pem"), &a, &alg, err, sizeof(err), &report), 0);
	CHECK(alg == DKIM_ALG_ED25519_SHA256);
	EVP_PKEY_free(a);
	CHECK_INTEQ(od_keycache_count(c), 2);

	/* a missing key: reported by the call that found it, not by the next */
	CHECK_INTEQ(od_keycache_get(c, path_of("none.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(a == NULL && report);
	CHECK(strstr(err, "none.pem") != NULL || strstr(err, "No such file") != NULL);
	CHECK_INTEQ(od_keycache_get(c, path_of("none.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(!report);
	/* and it stays missing while neg_ttl lasts, even once the file exists */
	write_key("none.pem", "RSA");
	CHECK_INTEQ(od_keycache_get(c, path_of("none.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(!report);

	/* garbage in a file is a failure with a reason, not a crash */
	FILE *f = fopen(path_of("junk.pem"), "w");
	CHECK(f != NULL);
	if (f) {
		fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", f);
		fclose(f);
	}
	CHECK_INTEQ(od_keycache_get(c, path_of("junk.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(report && err[0] != '\0');
	od_keycache_free(c);
}

static void test_ttls(void)
{
	/* pos_ttl 0: every look-up reads the file again, so a replaced key is seen */
	struct od_keycache *c = od_keycache_new(16, 0, 0);
	EVP_PKEY *a = NULL, *b = NULL;
	enum dkim_alg alg;
	char err[256];
	bool report;

	write_key("ttl.pem", "RSA");
	CHECK_INTEQ(od_keycache_get(c, path_of("ttl.pem"), &a, &alg, err, sizeof(err), &report), 0);
	write_key("ttl.pem", "ED25519");
	CHECK_INTEQ(od_keycache_get(c, path_of("ttl.pem"), &b, &alg, err, sizeof(err), &report), 0);
	CHECK(alg == DKIM_ALG_ED25519_SHA256);
	CHECK(a != NULL && b != NULL && EVP_PKEY_eq(a, b) != 1);
	/* a (the replaced entry's key) is still ours to use */
	CHECK(EVP_PKEY_get_bits(a) == 1024);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	/* neg_ttl 0: a missing key is reported each time it is looked for */
	CHECK_INTEQ(od_keycache_get(c, path_of("gone.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(report);
	CHECK_INTEQ(od_keycache_get(c, path_of("gone.pem"), &a, &alg, err, sizeof(err), &report), -1);
	CHECK(report);
	od_keycache_free(c);

	/* pos_ttl 300: the replaced file is not read again */
	c = od_keycache_new(16, 300, 300);
	write_key("keep.pem", "RSA");
	CHECK_INTEQ(od_keycache_get(c, path_of("keep.pem"), &a, &alg, err, sizeof(err), &report), 0);
	write_key("keep.pem", "ED25519");
	CHECK_INTEQ(od_keycache_get(c, path_of("keep.pem"), &b, &alg, err, sizeof(err), &report), 0);
	CHECK(a == b && alg == DKIM_ALG_RSA_SHA256);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	od_keycache_free(c);
}

static void test_bound(void)
{
	struct od_keycache *c = od_keycache_new(2, 300, 300);
	EVP_PKEY *k1 = NULL, *k;
	enum dkim_alg alg;
	char err[256];
	bool report;

	write_key("b1.pem", "RSA");
	write_key("b2.pem", "RSA");
	write_key("b3.pem", "RSA");
	CHECK_INTEQ(od_keycache_get(c, path_of("b1.pem"), &k1, &alg, err, sizeof(err), &report), 0);
	CHECK_INTEQ(od_keycache_get(c, path_of("b2.pem"), &k, &alg, err, sizeof(err), &report), 0);
	EVP_PKEY_free(k);
	/* b1 used last: b2 is the least recently used and goes */
	CHECK_INTEQ(od_keycache_get(c, path_of("b1.pem"), &k, &alg, err, sizeof(err), &report), 0);
	CHECK(k == k1);
	EVP_PKEY_free(k);
	CHECK_INTEQ(od_keycache_get(c, path_of("b3.pem"), &k, &alg, err, sizeof(err), &report), 0);
	EVP_PKEY_free(k);
	CHECK_INTEQ(od_keycache_count(c), 2);
	CHECK_INTEQ(od_keycache_get(c, path_of("b1.pem"), &k, &alg, err, sizeof(err), &report), 0);
	CHECK(k == k1);		/* still cached */
	EVP_PKEY_free(k);
	/* evict b1 while k1 is held: the key stays usable */
	CHECK_INTEQ(od_keycache_get(c, path_of("b2.pem"), &k, &alg, err, sizeof(err), &report), 0);
	EVP_PKEY_free(k);
	CHECK_INTEQ(od_keycache_get(c, path_of("b3.pem"), &k, &alg, err, sizeof(err), &report), 0);
	EVP_PKEY_free(k);
	CHECK_INTEQ(od_keycache_count(c), 2);
	CHECK(EVP_PKEY_get_bits(k1) == 1024);
	EVP_PKEY_free(k1);
	od_keycache_free(c);
}

struct worker {
	struct od_keycache *c;
	int ok, fail;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	const char *names[] = { "t1.pem", "t2.pem", "t3.pem", "missing.pem" };

	for (int i = 0; i < 400; i++) {
		EVP_PKEY *k = NULL;
		enum dkim_alg alg;
		char err[256], path[512];
		bool report;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i % 4]);
		if (od_keycache_get(w->c, path, &k, &alg, err, sizeof(err), &report) == 0) {
			w->ok++;
			EVP_PKEY_free(k);
		} else {
			w->fail++;
		}
	}
	return NULL;
}

static void test_threads(void)
{
	/* a bound of 2 for 4 paths: constant eviction while others hold keys */
	struct od_keycache *c = od_keycache_new(2, 0, 0);
	pthread_t t[4];
	struct worker w[4];

	write_key("t1.pem", "RSA");
	write_key("t2.pem", "ED25519");
	write_key("t3.pem", "RSA");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ c, 0, 0 };
		CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INTEQ(w[i].ok, 300);
		CHECK_INTEQ(w[i].fail, 100);
	}
	CHECK(od_keycache_count(c) <= 2);
	od_keycache_free(c);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_hit_miss_and_types();
	test_ttls();
	test_bound();
	test_threads();
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_done();
}
