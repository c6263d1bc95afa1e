/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every spool record
 *
 * The polynomial is 0x1EDC6F41 (reflected 0x82F63B78), as in iSCSI
 * (RFC 3720), ext4 and SCTP. On x86-64 CPUs with SSE4.2 the crc32
 * instruction computes it; elsewhere a slicing-by-8 table does. The choice
 * is made once, at the first call, from what the running CPU supports, so
 * the file builds without -msse4.2 and the binary runs on any x86-64.
 *
 * The running value is passed in and returned "finished" (already
 * inverted), so crc32c(crc32c(0, a, n), b, m) == crc32c(0, a||b, n + m):
 * start with 0 and feed the pieces in order. Any thread may call these;
 * there is no state besides the tables built on first use.
 */
#ifndef IMPETUS_CORE_CRC32C_H
#define IMPETUS_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* crc32c - extend crc (0 to start) over n bytes at p; fastest available code. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* crc32c_portable - the same with the table code only (tests compare the two). */
uint32_t crc32c_portable(uint32_t crc, const void *p, size_t n);
/*
 * crc32c_combine - the CRC of a||b from crc_a = crc32c(0, a, |a|),
 * crc_b = crc32c(0, b, len_b) and len_b alone, without the bytes. It lets a
 * record's checksum cover a body that was checksummed piece by piece while
 * it streamed to a file. O(log len_b).
 */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* crc32c_hw - true when crc32c() uses the CPU's crc32 instruction. */
bool crc32c_hw(void);

#endif
