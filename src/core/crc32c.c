/*
 * crc32c.c - CRC-32C with a slicing-by-8 table and an SSE4.2 path (see crc32c.h)
 *
 * State: eight 256-entry tables, built once under pthread_once, and the
 * pointer to the implementation chosen for this CPU. Both are written
 * once before any use and only read afterwards. Nothing here can fail.
 */
#include "core/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u	/* 0x1EDC6F41 bit-reversed */

typedef uint32_t (*crc_impl)(uint32_t c, const unsigned char *p, size_t n);

static uint32_t table[8][256];
static crc_impl impl;
static bool have_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* load_le64 - 8 bytes at p as a little-endian integer, any alignment. */
static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/*
 * crc_sw - slicing-by-8: one lookup per input byte, but eight independent
 * lookups per 8-byte word, which the CPU overlaps. table[k][b] is the CRC
 * of byte b followed by k zero bytes, so the eight partial results of a
 * word combine with XOR. c is the running, non-inverted register.
 */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		n--;
	}
	while (n >= 8) {
		uint64_t w = load_le64(p) ^ c;

		c = table[7][w & 0xff] ^
		    table[6][(w >> 8) & 0xff] ^
		    table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^
		    table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^
		    table[1][(w >> 48) & 0xff] ^
		    table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
/*
 * crc_hw - the SSE4.2 crc32 instruction, 8 bytes per step. Only this
 * function is compiled for SSE4.2; it is called only after the CPU said
 * it has it. Byte steps first to align the 8-byte loads.
 */
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
	uint64_t c64;

	while (n && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi(c, *p++);
		n--;
	}
	c64 = c;
	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

/* crc_init - build the tables and pick the implementation; runs once. */
static void crc_init(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		table[0][b] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int b = 0; b < 256; b++)
			table[k][b] = table[0][table[k - 1][b] & 0xff] ^ (table[k - 1][b] >> 8);

	impl = crc_sw;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		impl = crc_hw;
		have_hw = true;
	}
#endif
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&once, crc_init);
	return ~impl(~crc, p, n);
}

uint32_t crc32c_portable(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&once, crc_init);
	return ~crc_sw(~crc, p, n);
}

/*
 * Combining. A CRC register is a polynomial over GF(2) (bit 31 holds x^0
 * in this reflected order). Appending n zero bytes to a message multiplies
 * its raw register by x^(8n) modulo the CRC polynomial, and the CRC is
 * linear, so crc(a||b) = crc(a) * x^(8|b|) + crc(b): the pre- and
 * post-inversion terms cancel between the two sides. x^(8n) is built by
 * square-and-multiply from the table of x^(2^k).
 */

/* gf2_mulmod - a times b modulo the polynomial, both in register order. */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
	uint32_t bit = 1u << 31, prod = 0;

	while (a) {
		if (a & bit) {
			prod ^= b;
			a &= ~bit;
		}
		bit >>= 1;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY : b >> 1;
	}
	return prod;
}

/* x_pow_8n - x^(8n) modulo the polynomial. */
static uint32_t x_pow_8n(uint64_t n)
{
	uint32_t sq = 1u << 30;		/* x^1 */
	uint32_t acc = 1u << 31;	/* x^0 */

	/* x^(8n) = product of x^(2^k) over the set bits k of 8n. */
	for (int k = 0; k < 3; k++)
		sq = gf2_mulmod(sq, sq);
	for (; n; n >>= 1) {
		if (n & 1)
			acc = gf2_mulmod(acc, sq);
		sq = gf2_mulmod(sq, sq);
	}
	return acc;
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return gf2_mulmod(x_pow_8n(len_b), crc_a) ^ crc_b;
}

bool crc32c_hw(void)
{
	pthread_once(&once, crc_init);
	return have_hw;
}
