/*
 * fuzz.h - what every libFuzzer target here shares
 *
 * MUST states a property the rest of impetus relies on; when it does not
 * hold the target prints which and aborts, so libFuzzer keeps the input
 * as a finding (docs/fuzzing.md).
 */
#ifndef IMPETUS_TESTS_FUZZ_H
#define IMPETUS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUST(cond) do {							\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz property failed: %s (line %d)\n",	\
			#cond, __LINE__);				\
		abort();						\
	}								\
} while (0)

/*
 * fuzz_strndup - n bytes of p as a C string. Not strndup: the input is not
 * NUL-terminated, and strndup may read past n to find a NUL (ASan's
 * strict_string_checks, which the suite sets, reports exactly that).
 */
static inline char *fuzz_strndup(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

#endif
