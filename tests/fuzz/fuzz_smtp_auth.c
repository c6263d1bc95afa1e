/*
 * fuzz_smtp_auth.c - libFuzzer target for the SMTP AUTH exchange parsers
 * and the password file
 *
 * The AUTH responses a client sends (src/smtp/smtp_auth.c) are the first
 * network input that carries secrets, and the password file
 * (src/core/passwd.c) is read at every reload. Byte 0 picks:
 *   0: base64 then PLAIN - an accepted response re-encodes to exactly
 *      the input (strict decoding: one text per byte string), decodes
 *      to at most 3/4 of its length; a successful PLAIN split gives a
 *      non-empty user and password inside the buffer, without NUL,
 *      within their caps, the user equal to any authzid;
 *   1: a command line through the trace mask - the output is the input
 *      when it is not AUTH, else "AUTH <mech>" plus at most " ****", and
 *      never contains the text after the mechanism;
 *   2: a password file - a refusal names the file and a line that
 *      exists; an accepted file has as many users as lines that are
 *      neither blank nor comments.
 *
 * Built by tests/fuzz/build.sh (see docs/fuzzing.md).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/passwd.h"
#include "core/str.h"
#include "smtp/smtp_auth.h"

#include "fuzz.h"

static void check_base64_plain(const uint8_t *data, size_t size)
{
	struct str dec = STR_INIT, enc = STR_INIT;
	const char *user, *pass;

	if (!smtp_auth_b64_decode((const char *)data, size, &dec)) {
		MUST(dec.len == 0);
		str_free(&dec);
		return;
	}
	MUST(dec.len <= size * 3 / 4);
	if (size == 1) {
		MUST(data[0] == '=' && dec.len == 0);
	} else {
		smtp_auth_b64_encode(dec.s, dec.len, &enc);
		MUST(enc.len == size && memcmp(enc.s, data, size) == 0);
	}
	str_appendc(&dec, '\0');
	dec.len--;
	if (smtp_auth_plain_split(dec.s, dec.len, &user, &pass) == SMTP_AUTH_PARSE_OK) {
		size_t ul = strlen(user), pl = strlen(pass);
		const char *authzid = dec.s;

		MUST(user > dec.s && user + ul < dec.s + dec.len);
		MUST(pass > user && pass + pl == dec.s + dec.len);
		MUST(ul > 0 && ul <= SMTP_AUTH_USER_MAX && pl > 0 && pl <= SMTP_AUTH_PASS_MAX);
		MUST(authzid[0] == '\0' || strcmp(authzid, user) == 0);
	}
	str_free(&dec);
	str_free(&enc);
}

static void check_mask(const uint8_t *data, size_t size)
{
	struct str out = STR_INIT;
	const char *line = (const char *)data;

	smtp_auth_mask_line(line, size, &out);
	if (size < 4 || strncasecmp(line, "AUTH", 4) != 0 || (size > 4 && line[4] != ' ')) {
		MUST(out.len == size && memcmp(out.s, data, size) == 0);
	} else {
		size_t i = 4;

		while (i < size && line[i] == ' ')
			i++;
		while (i < size && line[i] != ' ')
			i++;
		MUST(out.len >= i && memcmp(out.s, data, i) == 0);
		MUST(out.len == i || (out.len == i + 5 && memcmp(out.s + i, " ****", 5) == 0));
		MUST(i == size || out.len == i + 5);
	}
	str_free(&out);
}

static char path[64];

static void check_passwd(const uint8_t *data, size_t size)
{
	struct str err = STR_INIT;
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/fuzz_smtp_auth.%d", (int)getpid());
	f = fopen(path, "w");
	MUST(f != NULL);
	MUST(fwrite(data, 1, size, f) == size);
	fclose(f);

	/* The reference count: lines neither blank nor comments. */
	size_t lines = 0, accounts = 0;
	for (size_t i = 0; i < size;) {
		size_t j = i;

		while (j < size && data[j] != '\n')
			j++;
		lines++;
		size_t k = i, end = j;
		if (end > i && data[end - 1] == '\r')
			end--;
		while (k < end && (data[k] == ' ' || data[k] == '\t'))
			k++;
		if (k < end && data[k] != '#')
			accounts++;
		i = j + 1;
	}

	struct passwd_db *db = passwd_db_load(path, &err);
	if (db == NULL) {
		unsigned n = 0;

		MUST(strncmp(err.s, path, strlen(path)) == 0);
		MUST(err.s[strlen(path)] == ':');
		if (sscanf(err.s + strlen(path), ":%u:", &n) == 1)
			MUST(n >= 1 && n <= lines);
	} else {
		MUST(passwd_db_count(db) == accounts);
		passwd_db_free(db);
	}
	str_free(&err);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_base64_plain(data + 1, size - 1);
		break;
	case 1:
		check_mask(data + 1, size - 1);
		break;
	default:
		check_passwd(data + 1, size - 1);
		break;
	}
	return 0;
}
