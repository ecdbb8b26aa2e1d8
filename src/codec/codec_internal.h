/* Helpers shared by the codec's source files. */
#ifndef LEPTON_CODEC_INTERNAL_H
#define LEPTON_CODEC_INTERNAL_H

#include <lepton/codec.h>
#include <string.h>

static inline uint16_t lepi_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t
lepi_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}
static inline uint64_t
lepi_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}
static inline void lepi_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void
lepi_put32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}
static inline void
lepi_put64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

/* Format code of the widest encoding of a type, used for array elements
 * before they are narrowed; 0 for LEP_TYPE_DESCRIBED, which cannot be an
 * array's element type. */
uint8_t lepi_wide_code(lep_type_t t);

/* Writes the 0x00 constructor of a described value; the caller then
 * writes the descriptor and the value, which count as one element.
 * False when the encoder has failed. */
bool lepi_encode_described_prefix(lep_encoder_t *e);

/* Checks the inside of a compound or described atom just read from r:
 * every nested value decodes and fills its container exactly (the deep
 * half of lep_reader_next_checked). */
int lepi_check_inside(const lep_reader_t *r, const lep_atom_t *a);

/* Most elements an array of zero-width elements (uint0, true, list0...) may
 * claim: without bytes to pay for them, a count would otherwise let a few
 * input bytes demand gigabytes of decoded tree. */
#define LEPI_MAX_ZERO_WIDTH_ELEMS 65536u

#endif
