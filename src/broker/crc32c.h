/* CRC32C (Castagnoli, the iSCSI / ext4 / LevelDB checksum): the journal's
 * record checksum.  Uses the SSE4.2 crc32 instruction when the CPU has it,
 * a slicing-by-8 table otherwise.  Pure functions, any thread. */
#ifndef LEPTON_BROKER_CRC32C_H
#define LEPTON_BROKER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over p[0..n): crc32c(crc32c(0, a), b) equals the
 * CRC of a followed by b.  crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t lepi_crc32c(uint32_t crc, const void *p, size_t n);
/* The same with the table, whatever the CPU (for tests). */
uint32_t lepi_crc32c_sw(uint32_t crc, const void *p, size_t n);
/* Whether lepi_crc32c uses the crc32 instruction on this CPU. */
int lepi_crc32c_hw(void);

#endif
