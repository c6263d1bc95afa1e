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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MUST(cond) do {							\
	if (!(cond)) {							\
		fprintf(stderr, "fuzz property failed: %s (line %d)\n",	\
			#cond, __LINE__);				\
		abort();						\
	}								\
} while (0)

#endif
