/*
 * dkim_sign_bench.c - DKIM signatures per second on one core
 *
 * Signs the same message over and over with modules/opendkim/dkim_sign.c,
 * the code the opendkim module runs on the CPU pool, on one thread, and
 * prints how many whole signatures (body hash, header hash and the
 * private-key operation) one core makes per second. bench/dkim.sh builds
 * and runs it next to the acceptance runs; by hand:
 *
 *   cc -std=c17 -O2 -D_GNU_SOURCE -Imodules/opendkim bench/dkim_sign_bench.c \
 *      modules/opendkim/dkim_sign.c -lcrypto -o /tmp/dkim_sign_bench
 *   /tmp/dkim_sign_bench KEY.pem SIZE SECONDS
 *
 * Output, one line: "alg=rsa-sha256 bits=2048 size=4096 signatures=N
 * seconds=S per_second=R". Exits 1 with a message on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkim_sign.h"

/* now - monotonic seconds. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* make_message - headers as smtp-source's plus a body of size bytes in 72-column lines. */
static char *make_message(size_t size, size_t *len)
{
	static const char head[] =
		"From: <bench@client.example>\r\nTo: <bench@dest.example>\r\n"
		"Date: Wed, 02 Dec 2026 17:00:00 +0000\r\nMessage-Id: <1.2.3@client.example>\r\n"
		"Subject: benchmark\r\n\r\n";
	size_t cap = sizeof(head) + size + size / 72 * 2 + 4, n = sizeof(head) - 1;
	char *m = malloc(cap);

	if (m == NULL)
		return NULL;
	memcpy(m, head, n);
	for (size_t body = 0; body < size;) {
		size_t line = size - body < 72 ? size - body : 72;

		memset(m + n, 'x', line);
		n += line;
		body += line;
		m[n++] = '\r';
		m[n++] = '\n';
	}
	*len = n;
	return m;
}

int main(int argc, char **argv)
{
	static const char *const headers[] = { "from", "to", "subject", "date", "message-id" };
	char err[256];
	EVP_PKEY *key;
	enum dkim_alg alg;
	size_t len, count = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: dkim_sign_bench KEY.pem SIZE SECONDS\n");
		return 1;
	}
	if (dkim_key_load_pem(argv[1], &key, &alg, err, sizeof(err)) != 0) {
		fprintf(stderr, "dkim_sign_bench: %s\n", err);
		return 1;
	}
	char *msg = make_message(strtoul(argv[2], NULL, 10), &len);
	double limit = strtod(argv[3], NULL);
	if (msg == NULL) {
		fprintf(stderr, "dkim_sign_bench: out of memory\n");
		return 1;
	}
	struct dkim_sign_params p = {
		.alg = alg, .header_canon = DKIM_CANON_RELAXED, .body_canon = DKIM_CANON_RELAXED,
		.domain = "client.example", .selector = "s1",
		.headers = headers, .nheaders = sizeof(headers) / sizeof(headers[0]), .key = key,
	};
	double start = now(), end;
	do {
		char *field;

		if (dkim_sign(&p, msg, len, &field, err, sizeof(err)) != 0) {
			fprintf(stderr, "dkim_sign_bench: %s\n", err);
			return 1;
		}
		free(field);
		count++;
		end = now();
	} while (end - start < limit);
	printf("alg=%s bits=%d size=%s signatures=%zu seconds=%.3f per_second=%.0f\n",
	       dkim_alg_name(alg), EVP_PKEY_get_bits(key), argv[2], count, end - start,
	       (double)count / (end - start));
	EVP_PKEY_free(key);
	free(msg);
	return 0;
}
