/*
 * test_crc32c.c - tests of src/core/crc32c.c
 *
 * The RFC 3720 (iSCSI) check values, the classic "123456789" check, and
 * agreement of the hardware and table paths on random data at every
 * length and alignment, fed whole and in pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/crc32c.h"

static void test_vectors(void)
{
	unsigned char buf[48];
	static const unsigned char iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};

	/* RFC 3720 B.4: 32 bytes of zeros, of ones, incrementing, decrementing. */
	memset(buf, 0, 32);
	CHECK_INTEQ(crc32c(0, buf, 32), 0x8A9136AA);
	CHECK_INTEQ(crc32c_portable(0, buf, 32), 0x8A9136AA);
	memset(buf, 0xff, 32);
	CHECK_INTEQ(crc32c(0, buf, 32), 0x62A8AB43);
	CHECK_INTEQ(crc32c_portable(0, buf, 32), 0x62A8AB43);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	CHECK_INTEQ(crc32c(0, buf, 32), 0x46DD794E);
	CHECK_INTEQ(crc32c_portable(0, buf, 32), 0x46DD794E);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	CHECK_INTEQ(crc32c(0, buf, 32), 0x113FDB5C);
	CHECK_INTEQ(crc32c_portable(0, buf, 32), 0x113FDB5C);
	CHECK_INTEQ(crc32c(0, iscsi_read, 48), 0xD9963A56);
	CHECK_INTEQ(crc32c_portable(0, iscsi_read, 48), 0xD9963A56);

	CHECK_INTEQ(crc32c(0, "123456789", 9), 0xE3069283);
	CHECK_INTEQ(crc32c_portable(0, "123456789", 9), 0xE3069283);
	CHECK_INTEQ(crc32c(0, "", 0), 0);
	/* Pieces chain: crc(a||b) == crc(crc(a), b). */
	CHECK_INTEQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283);
	printf("crc32c: hardware path %s\n", crc32c_hw() ? "in use" : "not available");
}

/* test_random - both paths agree at every length, alignment and split. */
static void test_random(void)
{
	enum { N = 1100 };
	unsigned char *buf = malloc(N + 8);
	int bad = 0;

	srand(3720);
	for (int i = 0; i < N + 8; i++)
		buf[i] = (unsigned char)rand();
	for (int align = 0; align < 8; align++) {
		for (int len = 0; len <= N; len += (len < 80 ? 1 : 37)) {
			const unsigned char *p = buf + align;
			uint32_t a = crc32c(0, p, (size_t)len);
			uint32_t b = crc32c_portable(0, p, (size_t)len);
			int cut = len ? rand() % (len + 1) : 0;
			uint32_t c = crc32c(crc32c(0, p, (size_t)cut), p + cut, (size_t)(len - cut));

			if (a != b || a != c) {
				if (bad++ < 5)
					fprintf(stderr, "%s:%d: align %d len %d: hw %08x sw %08x split %08x\n",
						__FILE__, __LINE__, align, len, a, b, c);
			}
		}
	}
	CHECK_INTEQ(bad, 0);
	free(buf);
}

/* test_combine - crc32c_combine agrees with one pass over a||b, small and large. */
static void test_combine(void)
{
	enum { N = 3 << 20 };
	unsigned char *buf = malloc(N);
	static const size_t cuts[] = { 0, 1, 7, 8, 4095, 65536, 1 << 20, (3 << 20) - 1, 3 << 20 };

	srand(6376);
	for (size_t i = 0; i < N; i++)
		buf[i] = (unsigned char)rand();
	uint32_t whole = crc32c(0, buf, N);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t cut = cuts[i];
		uint32_t a = crc32c(0, buf, cut), b = crc32c(0, buf + cut, N - cut);

		CHECK_INTEQ(crc32c_combine(a, b, N - cut), whole);
	}
	/* Three pieces, as a streamed body is checksummed: combine is associative. */
	uint32_t p1 = crc32c(0, buf, 1000), p2 = crc32c(0, buf + 1000, 200000);
	uint32_t p3 = crc32c(0, buf + 201000, N - 201000);
	CHECK_INTEQ(crc32c_combine(crc32c_combine(p1, p2, 200000), p3, N - 201000), whole);
	CHECK_INTEQ(crc32c_combine(p1, crc32c_combine(p2, p3, N - 201000), N - 1000), whole);
	CHECK_INTEQ(crc32c_combine(0x12345678, 0, 0), 0x12345678);
	free(buf);
}

int main(void)
{
	test_vectors();
	test_random();
	test_combine();
	return check_done();
}
