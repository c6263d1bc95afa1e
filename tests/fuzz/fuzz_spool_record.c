/*
 * fuzz_spool_record.c - libFuzzer target for the spool record decoder
 *
 * Recovery reads whatever is on disk after a crash or a bad sector, so the
 * decoder gets arbitrary bytes twice: as a whole record (header, length,
 * CRC checks first) and, with a CRC made valid, as a payload of every
 * record type, which reaches the field decoders themselves. It must return
 * a size within the input, SHORT, or BAD with a reason - never crash or
 * read past the input.
 *
 * Built by tests/fuzz/build.sh with the other targets (clang, ASan+UBSan,
 * see docs/fuzzing.md); by hand:
 *   tests/fuzz/build.sh build/fuzz && build/fuzz/tests/fuzz/fuzz_spool_record -runs=1000000
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "spool/spool.h"
#include "spool/spool_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *p, size_t n)
{
	struct spool_rec rec;
	uint64_t need = 0;
	const char *why = NULL;

	memset(&rec, 0, sizeof(rec));
	long long r = spool_rec_decode(p, n, true, &rec, &need, &why);
	if (r > 0) {
		if ((unsigned long long)r > n)
			abort();
		envelope_free(rec.msg);
	} else if (r == SPOOL_REC_BAD && why == NULL) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size);
	if (size > 0) {
		/* The same bytes behind a valid CRC, so the payload decoder runs. */
		uint8_t *copy = xmemdup(data, size);
		spool_rec_reseal(copy, size);
		check(copy, size);
		for (unsigned type = 0; type < 8; type++) {
			struct spool_rec rec;
			const char *why = NULL;
			memset(&rec, 0, sizeof(rec));
			if (spool_rec_decode_payload(type, data, size, true, &rec, &why) == 0)
				envelope_free(rec.msg);
			else if (why == NULL)
				abort();
		}
		free(copy);
	}
	return 0;
}
