/*
 * dkim_sign_tool.c - sign one message with modules/opendkim/dkim_sign.c
 * (a test program, not installed)
 *
 *     dkim_sign_tool -k key.pem -d example.com -s sel [-c relaxed/simple]
 *                    [-h from:to:subject] [-o from:subject] [-t time]
 *                    [-x lifetime] [-l body_length_limit] < msg > signed
 *
 * The message is read whole from standard input; the DKIM-Signature
 * field and then the message, unchanged, go to standard output. The
 * algorithm is the key's (RSA: rsa-sha256, Ed25519: ed25519-sha256).
 * tests/integration/test_dkim_sign.py verifies the output with dkimpy and
 * OpenDKIM. Errors: the signer's one line on stderr, exit status 1;
 * usage errors exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim_sign.h"

#define LIST_MAX 64

/* split_list - "a:b:c" into at most LIST_MAX names, in place. */
static size_t split_list(char *s, const char **v)
{
	size_t n = 0;

	for (char *tok = strtok(s, ":"); tok != NULL && n < LIST_MAX; tok = strtok(NULL, ":"))
		v[n++] = tok;
	return n;
}

/* parse_canon - "h/b" or "h" (the body then simple, as c= says). */
static int parse_canon(const char *s, enum dkim_canon *h, enum dkim_canon *b)
{
	char hs[16] = "", bs[16] = "simple";
	const char *slash = strchr(s, '/');

	if (slash) {
		snprintf(hs, sizeof(hs), "%.*s", (int)(slash - s), s);
		snprintf(bs, sizeof(bs), "%s", slash + 1);
	} else {
		snprintf(hs, sizeof(hs), "%s", s);
	}
	if (strcmp(hs, "simple") && strcmp(hs, "relaxed"))
		return -1;
	if (strcmp(bs, "simple") && strcmp(bs, "relaxed"))
		return -1;
	*h = strcmp(hs, "relaxed") == 0 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	*b = strcmp(bs, "relaxed") == 0 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	return 0;
}

int main(int argc, char **argv)
{
	struct dkim_sign_params p = { .header_canon = DKIM_CANON_RELAXED,
				      .body_canon = DKIM_CANON_RELAXED };
	const char *keyfile = NULL, *hv[LIST_MAX], *ov[LIST_MAX];
	char hdefault[] = "from:to:subject:date:message-id";
	char err[512];
	int opt;

	p.headers = hv;
	p.oversign = ov;
	p.nheaders = split_list(hdefault, hv);
	while ((opt = getopt(argc, argv, "k:d:s:c:h:o:t:x:l:")) != -1) {
		switch (opt) {
		case 'k': keyfile = optarg; break;
		case 'd': p.domain = optarg; break;
		case 's': p.selector = optarg; break;
		case 'c':
			if (parse_canon(optarg, &p.header_canon, &p.body_canon) < 0) {
				fprintf(stderr, "dkim_sign_tool: bad -c %s\n", optarg);
				return 2;
			}
			break;
		case 'h': p.nheaders = split_list(optarg, hv); break;
		case 'o': p.noversign = split_list(optarg, ov); break;
		case 't': p.timestamp = (time_t)strtoll(optarg, NULL, 10); break;
		case 'x': p.lifetime = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'l':
			p.body_length_limit_set = true;
			p.body_length_limit = strtoull(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: dkim_sign_tool -k key -d domain -s selector "
				"[-c h/b] [-h list] [-o list] [-t time] [-x secs] [-l octets]\n");
			return 2;
		}
	}
	if (keyfile == NULL) {
		fprintf(stderr, "dkim_sign_tool: -k is required\n");
		return 2;
	}
	if (dkim_key_load_pem(keyfile, &p.key, &p.alg, err, sizeof(err)) < 0) {
		fprintf(stderr, "dkim_sign_tool: %s\n", err);
		return 1;
	}

	struct dkim_buf msg = { 0 };
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		dkim_buf_add(&msg, chunk, n);
	if (msg.oom) {
		fprintf(stderr, "dkim_sign_tool: out of memory\n");
		return 1;
	}

	char *field = NULL;
	int rc = dkim_sign(&p, msg.p ? msg.p : "", msg.len, &field, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "dkim_sign_tool: %s\n", err);
	} else {
		fwrite(field, 1, strlen(field), stdout);
		fwrite(msg.p ? msg.p : "", 1, msg.len, stdout);
	}
	free(field);
	dkim_buf_free(&msg);
	EVP_PKEY_free(p.key);
	return rc < 0 ? 1 : 0;
}
