/* Streaming AMQP encoder.
 *
 * Compounds are written with 32-bit size and count placeholders and
 * narrowed when they end, so the caller never has to know sizes up front.
 * Array elements are written in their type's widest form and narrowed at
 * the array's end to the smallest form that fits every element. */
#include "codec_internal.h"

void
lep_encoder_init(lep_encoder_t *e, lep_buf_t *out)
{
    e->out = out;
    e->err = 0;
    e->depth = 0;
    e->dtop = 0;
}

static inline void
fail(lep_encoder_t *e, int err)
{
    if (!e->err)
        e->err = err;
}

/* Space for n more bytes; NULL (and a sticky error) when there is none. */
static inline uint8_t *
put(lep_encoder_t *e, size_t n)
{
    lep_buf_t *b = e->out;
    if (b->cap - b->len < n) {
        int rc = lep_buf_reserve(b, n);
        if (rc) {
            fail(e, rc);
            return NULL;
        }
    }
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

enum { PLAIN = 0, ELEMENT = 1, BAD = -1 };

/* Accounts for a value about to be written: PLAIN (write a constructor),
 * ELEMENT (array element: payload only, in the wide form) or BAD. */
/* Described values: a descriptor and the value it describes count as one
 * element of their compound, and each open described value nests one
 * level, as the decoder counts it.  dslots holds, for every described
 * value still open, how many of its two parts are to come; the entries of
 * one compound sit above its frame's dbase. */
static inline uint8_t
dbase(const lep_encoder_t *e)
{
    return e->depth ? e->stack[e->depth - 1].dbase : 0;
}

/* A complete value was written at the current level: it fills a part of
 * the innermost open described value, whose completion may in turn
 * complete the one around it. */
static inline void
value_done(lep_encoder_t *e)
{
    uint8_t base = dbase(e);
    while (e->dtop > base) {
        if (--e->dslots[e->dtop - 1] > 0)
            return;
        e->dtop--;
    }
}

/* Accounts for a value about to be written: PLAIN (write a constructor),
 * ELEMENT (array element: payload only, in the wide form) or BAD.
 * complete: the value is whole once written (not a compound's start). */
static inline int
value_start(lep_encoder_t *e, lep_type_t t, bool complete)
{
    if (e->err)
        return BAD;
    if (e->depth) {
        lep_enc_frame_t *f = &e->stack[e->depth - 1];
        if (f->kind == LEP_FC_ARRAY32) {
            if (f->elem_type != t) {
                fail(e, LEP_ERR_STATE);
                return BAD;
            }
            f->count++;
            return ELEMENT;
        }
        if (e->dtop == f->dbase)
            f->count++; /* a new element, not part of a described one */
    }
    if (complete)
        value_done(e);
    return PLAIN;
}

static inline int
begin_value(lep_encoder_t *e, lep_type_t t)
{
    return value_start(e, t, t < LEP_TYPE_LIST);
}

static void
fixed(lep_encoder_t *e, lep_type_t t, uint8_t code, const uint8_t *payload, size_t n)
{
    int m = begin_value(e, t);
    if (m == BAD)
        return;
    uint8_t *p = put(e, n + (m == PLAIN));
    if (!p)
        return;
    if (m == PLAIN)
        *p++ = code;
    memcpy(p, payload, n);
}

void
lep_encode_null(lep_encoder_t *e)
{
    if (begin_value(e, LEP_TYPE_NULL) == PLAIN) {
        uint8_t *p = put(e, 1);
        if (p)
            *p = LEP_FC_NULL;
    }
}

void
lep_encode_bool(lep_encoder_t *e, bool v)
{
    int m = begin_value(e, LEP_TYPE_BOOL);
    uint8_t *p;
    if (m == BAD || !(p = put(e, 1)))
        return;
    *p = m == ELEMENT ? (uint8_t)v : (v ? LEP_FC_TRUE : LEP_FC_FALSE);
}

/* Unsigned integers: zero-width, one-byte or full-width forms. */
static void
unsigned_int(lep_encoder_t *e, lep_type_t t, uint64_t v, uint8_t zero, uint8_t small,
             uint8_t full, unsigned width)
{
    int m = begin_value(e, t);
    uint8_t *p;
    if (m == BAD)
        return;
    if (m == PLAIN && zero && v == 0) {
        if ((p = put(e, 1)))
            *p = zero;
        return;
    }
    if (m == PLAIN && small && v <= 0xff) {
        if ((p = put(e, 2))) {
            p[0] = small;
            p[1] = (uint8_t)v;
        }
        return;
    }
    if (!(p = put(e, width + (m == PLAIN))))
        return;
    if (m == PLAIN)
        *p++ = full;
    switch (width) {
    case 1: p[0] = (uint8_t)v; break;
    case 2: lepi_put16(p, (uint16_t)v); break;
    case 4: lepi_put32(p, (uint32_t)v); break;
    default: lepi_put64(p, v); break;
    }
}

void lep_encode_ubyte(lep_encoder_t *e, uint8_t v) { unsigned_int(e, LEP_TYPE_UBYTE, v, 0, 0, LEP_FC_UBYTE, 1); }
void lep_encode_ushort(lep_encoder_t *e, uint16_t v) { unsigned_int(e, LEP_TYPE_USHORT, v, 0, 0, LEP_FC_USHORT, 2); }
void lep_encode_uint(lep_encoder_t *e, uint32_t v) { unsigned_int(e, LEP_TYPE_UINT, v, LEP_FC_UINT0, LEP_FC_SMALLUINT, LEP_FC_UINT, 4); }
void lep_encode_ulong(lep_encoder_t *e, uint64_t v) { unsigned_int(e, LEP_TYPE_ULONG, v, LEP_FC_ULONG0, LEP_FC_SMALLULONG, LEP_FC_ULONG, 8); }
void lep_encode_char(lep_encoder_t *e, uint32_t v)
{
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        fail(e, LEP_ERR_INVALID);
        return;
    }
    unsigned_int(e, LEP_TYPE_CHAR, v, 0, 0, LEP_FC_CHAR, 4);
}

/* Signed integers: one-byte form when the value fits in int8. */
static void
signed_int(lep_encoder_t *e, lep_type_t t, int64_t v, uint8_t small, uint8_t full, unsigned width)
{
    int m = begin_value(e, t);
    uint8_t *p;
    if (m == BAD)
        return;
    if (m == PLAIN && small && v >= -128 && v <= 127) {
        if ((p = put(e, 2))) {
            p[0] = small;
            p[1] = (uint8_t)(int8_t)v;
        }
        return;
    }
    if (!(p = put(e, width + (m == PLAIN))))
        return;
    if (m == PLAIN)
        *p++ = full;
    switch (width) {
    case 1: p[0] = (uint8_t)(int8_t)v; break;
    case 2: lepi_put16(p, (uint16_t)(int16_t)v); break;
    case 4: lepi_put32(p, (uint32_t)(int32_t)v); break;
    default: lepi_put64(p, (uint64_t)v); break;
    }
}

void lep_encode_byte(lep_encoder_t *e, int8_t v) { signed_int(e, LEP_TYPE_BYTE, v, 0, LEP_FC_BYTE, 1); }
void lep_encode_short(lep_encoder_t *e, int16_t v) { signed_int(e, LEP_TYPE_SHORT, v, 0, LEP_FC_SHORT, 2); }
void lep_encode_int(lep_encoder_t *e, int32_t v) { signed_int(e, LEP_TYPE_INT, v, LEP_FC_SMALLINT, LEP_FC_INT, 4); }
void lep_encode_long(lep_encoder_t *e, int64_t v) { signed_int(e, LEP_TYPE_LONG, v, LEP_FC_SMALLLONG, LEP_FC_LONG, 8); }
void lep_encode_timestamp(lep_encoder_t *e, int64_t v) { signed_int(e, LEP_TYPE_TIMESTAMP, v, 0, LEP_FC_TIMESTAMP, 8); }

void
lep_encode_float(lep_encoder_t *e, float v)
{
    uint32_t bits;
    uint8_t b[4];
    memcpy(&bits, &v, 4);
    lepi_put32(b, bits);
    fixed(e, LEP_TYPE_FLOAT, LEP_FC_FLOAT, b, 4);
}

void
lep_encode_double(lep_encoder_t *e, double v)
{
    uint64_t bits;
    uint8_t b[8];
    memcpy(&bits, &v, 8);
    lepi_put64(b, bits);
    fixed(e, LEP_TYPE_DOUBLE, LEP_FC_DOUBLE, b, 8);
}

void lep_encode_decimal32(lep_encoder_t *e, const uint8_t v[4]) { fixed(e, LEP_TYPE_DECIMAL32, LEP_FC_DECIMAL32, v, 4); }
void lep_encode_decimal64(lep_encoder_t *e, const uint8_t v[8]) { fixed(e, LEP_TYPE_DECIMAL64, LEP_FC_DECIMAL64, v, 8); }
void lep_encode_decimal128(lep_encoder_t *e, const uint8_t v[16]) { fixed(e, LEP_TYPE_DECIMAL128, LEP_FC_DECIMAL128, v, 16); }
void lep_encode_uuid(lep_encoder_t *e, const uint8_t v[16]) { fixed(e, LEP_TYPE_UUID, LEP_FC_UUID, v, 16); }

static void
variable(lep_encoder_t *e, lep_type_t t, uint8_t code8, uint8_t code32, const void *data, size_t n)
{
    if (n > UINT32_MAX) {
        fail(e, LEP_ERR_LIMIT);
        return;
    }
    int m = begin_value(e, t);
    uint8_t *p;
    if (m == BAD)
        return;
    if (m == PLAIN && n <= 0xff) {
        if (!(p = put(e, 2 + n)))
            return;
        p[0] = code8;
        p[1] = (uint8_t)n;
        p += 2;
    } else {
        if (!(p = put(e, 4 + n + (m == PLAIN))))
            return;
        if (m == PLAIN)
            *p++ = code32;
        lepi_put32(p, (uint32_t)n);
        p += 4;
    }
    if (n)
        memcpy(p, data, n);
}

void
lep_encode_binary(lep_encoder_t *e, const void *p, size_t n)
{
    variable(e, LEP_TYPE_BINARY, LEP_FC_VBIN8, LEP_FC_VBIN32, p, n);
}

void
lep_encode_string(lep_encoder_t *e, const void *p, size_t n)
{
    if (!lep_utf8_valid(p, n)) {
        fail(e, LEP_ERR_UTF8);
        return;
    }
    variable(e, LEP_TYPE_STRING, LEP_FC_STR8, LEP_FC_STR32, p, n);
}

void
lep_encode_symbol(lep_encoder_t *e, const void *p, size_t n)
{
    if (!lep_ascii_valid(p, n)) {
        fail(e, LEP_ERR_SYMBOL);
        return;
    }
    variable(e, LEP_TYPE_SYMBOL, LEP_FC_SYM8, LEP_FC_SYM32, p, n);
}

void lep_encode_cstring(lep_encoder_t *e, const char *s) { lep_encode_string(e, s, strlen(s)); }
void lep_encode_csymbol(lep_encoder_t *e, const char *s) { lep_encode_symbol(e, s, strlen(s)); }

/* The 0x00 constructor, after which the descriptor value and then the
 * described value follow; the pair counts as one element. */
bool
lepi_encode_described_prefix(lep_encoder_t *e)
{
    if (e->err)
        return false;
    if (e->depth && e->stack[e->depth - 1].kind == LEP_FC_ARRAY32) {
        fail(e, LEP_ERR_STATE); /* array elements share one constructor */
        return false;
    }
    if ((unsigned)e->depth + e->dtop + 1 > LEP_CODEC_MAX_DEPTH) {
        fail(e, LEP_ERR_LIMIT);
        return false;
    }
    if (e->depth && e->dtop == dbase(e))
        e->stack[e->depth - 1].count++;
    uint8_t *p = put(e, 1);
    if (!p)
        return false;
    *p = LEP_FC_DESCRIBED;
    e->dslots[e->dtop++] = 2; /* the descriptor, then the value */
    return true;
}

void
lep_encode_descriptor(lep_encoder_t *e, uint64_t code)
{
    if (lepi_encode_described_prefix(e))
        lep_encode_ulong(e, code);
}

void
lep_encode_descriptor_symbol(lep_encoder_t *e, const char *name)
{
    if (lepi_encode_described_prefix(e))
        lep_encode_csymbol(e, name);
}

static void
compound_begin(lep_encoder_t *e, lep_type_t t, uint8_t kind)
{
    if (!e->err && (unsigned)e->depth + e->dtop >= LEP_CODEC_MAX_DEPTH) {
        fail(e, LEP_ERR_LIMIT);
        return;
    }
    int m = value_start(e, t, false);
    if (m == BAD)
        return;
    size_t start = e->out->len;
    uint8_t *p = put(e, 8 + (m == PLAIN));
    if (!p)
        return;
    if (m == PLAIN)
        *p = kind;
    lep_enc_frame_t *f = &e->stack[e->depth++];
    f->start = start;
    f->count = 0;
    f->elems = (uint32_t)(e->out->len - start);
    f->kind = kind;
    f->elem_type = 0;
    f->in_array = m == ELEMENT;
    f->dbase = e->dtop;
}

static lep_enc_frame_t *
compound_top(lep_encoder_t *e, uint8_t kind)
{
    if (e->err)
        return NULL;
    if (e->depth == 0 || e->stack[e->depth - 1].kind != kind ||
        e->dtop != e->stack[e->depth - 1].dbase) {
        fail(e, LEP_ERR_STATE); /* unbalanced, or a described value unfinished */
        return NULL;
    }
    lep_enc_frame_t *f = &e->stack[--e->depth];
    value_done(e); /* the compound is whole: it may finish a described value */
    return f;
}

void lep_encode_list_begin(lep_encoder_t *e) { compound_begin(e, LEP_TYPE_LIST, LEP_FC_LIST32); }
void lep_encode_map_begin(lep_encoder_t *e) { compound_begin(e, LEP_TYPE_MAP, LEP_FC_MAP32); }

/* Closes a list or map: list0 when empty, the 8-bit form when it fits,
 * else fills in the 32-bit size and count. */
static void
list_or_map_end(lep_encoder_t *e, uint8_t kind)
{
    lep_enc_frame_t *f = compound_top(e, kind);
    if (!f)
        return;
    uint8_t *base = e->out->data + f->start;
    size_t content = e->out->len - f->start - f->elems;
    if (kind == LEP_FC_MAP32 && (f->count & 1)) {
        fail(e, LEP_ERR_STATE); /* a key without its value */
        return;
    }
    if (content + 4 > UINT32_MAX) {
        fail(e, LEP_ERR_LIMIT);
        return;
    }
    if (f->in_array) {
        lepi_put32(base, (uint32_t)(content + 4));
        lepi_put32(base + 4, f->count);
        return;
    }
    if (f->count == 0 && kind == LEP_FC_LIST32) {
        base[0] = LEP_FC_LIST0;
        e->out->len = f->start + 1;
    } else if (content + 1 <= 0xff && f->count <= 0xff) {
        base[0] = (uint8_t)(kind - 0x10); /* list8 / map8 */
        base[1] = (uint8_t)(content + 1);
        base[2] = (uint8_t)f->count;
        memmove(base + 3, base + 9, content);
        e->out->len = f->start + 3 + content;
    } else {
        lepi_put32(base + 1, (uint32_t)(content + 4));
        lepi_put32(base + 5, f->count);
    }
}

void lep_encode_list_end(lep_encoder_t *e) { list_or_map_end(e, LEP_FC_LIST32); }
void lep_encode_map_end(lep_encoder_t *e) { list_or_map_end(e, LEP_FC_MAP32); }

static void
array_begin(lep_encoder_t *e, lep_type_t elem_type, const uint8_t *desc, size_t desc_len)
{
    uint8_t wide = lepi_wide_code(elem_type);
    if (e->err)
        return;
    if (!wide) {
        fail(e, LEP_ERR_INVALID);
        return;
    }
    compound_begin(e, LEP_TYPE_ARRAY, LEP_FC_ARRAY32);
    if (e->err)
        return;
    uint8_t *p = put(e, 1 + (desc_len ? desc_len + 1 : 0));
    if (!p)
        return;
    if (desc_len) {
        *p++ = LEP_FC_DESCRIBED;
        memcpy(p, desc, desc_len);
        p += desc_len;
    }
    *p = wide;
    lep_enc_frame_t *f = &e->stack[e->depth - 1];
    f->elem_type = (uint8_t)elem_type;
    f->elems = (uint32_t)(e->out->len - f->start);
}

void
lep_encode_array_begin(lep_encoder_t *e, lep_type_t elem_type)
{
    array_begin(e, elem_type, NULL, 0);
}

void
lep_encode_array_begin_described_raw(lep_encoder_t *e, lep_bytes_t descriptor, lep_type_t elem_type)
{
    lep_reader_t r;
    lep_atom_t a;
    lep_reader_init(&r, descriptor.ptr, descriptor.len);
    if (e->err)
        return;
    if (descriptor.len == 0 || lep_reader_next(&r, &a) != 0 || !lep_reader_done(&r)) {
        fail(e, LEP_ERR_INVALID);
        return;
    }
    array_begin(e, elem_type, descriptor.ptr, descriptor.len);
}

void
lep_encode_array_begin_described(lep_encoder_t *e, uint64_t code, lep_type_t elem_type)
{
    uint8_t d[9];
    size_t n;
    if (code == 0) {
        d[0] = LEP_FC_ULONG0;
        n = 1;
    } else if (code <= 0xff) {
        d[0] = LEP_FC_SMALLULONG;
        d[1] = (uint8_t)code;
        n = 2;
    } else {
        d[0] = LEP_FC_ULONG;
        lepi_put64(d + 1, code);
        n = 9;
    }
    array_begin(e, elem_type, d, n);
}

/* The narrowest element code able to hold every (wide) element of an
 * array, and the wide elements' total size for the checks. */
static uint8_t
narrowest(uint8_t wide, const uint8_t *p, uint32_t count)
{
    uint64_t maxu = 0;
    bool fits8 = true;
    bool all_true = true, all_false = true, all_empty = true;

    for (uint32_t i = 0; i < count; i++) {
        switch (wide) {
        case LEP_FC_UINT: {
            uint32_t v = lepi_be32(p);
            maxu = v > maxu ? v : maxu;
            p += 4;
            break;
        }
        case LEP_FC_ULONG: {
            uint64_t v = lepi_be64(p);
            maxu = v > maxu ? v : maxu;
            p += 8;
            break;
        }
        case LEP_FC_INT: {
            int32_t v = (int32_t)lepi_be32(p);
            fits8 &= v >= -128 && v <= 127;
            p += 4;
            break;
        }
        case LEP_FC_LONG: {
            int64_t v = (int64_t)lepi_be64(p);
            fits8 &= v >= -128 && v <= 127;
            p += 8;
            break;
        }
        case LEP_FC_BOOLEAN:
            all_true &= *p == 1;
            all_false &= *p == 0;
            p++;
            break;
        case LEP_FC_VBIN32: case LEP_FC_STR32: case LEP_FC_SYM32: {
            uint32_t n = lepi_be32(p);
            fits8 &= n <= 0xff;
            p += 4 + n;
            break;
        }
        case LEP_FC_LIST32: case LEP_FC_MAP32: case LEP_FC_ARRAY32: {
            uint32_t size = lepi_be32(p), n = lepi_be32(p + 4);
            /* 8-bit form: size = 1 + (size - 4) */
            fits8 &= size - 3 <= 0xff && n <= 0xff;
            all_empty &= n == 0;
            p += 4 + size;
            break;
        }
        default:
            return wide;
        }
    }
    /* Zero-width forms only for counts the decoder accepts. */
    bool zw = count <= LEPI_MAX_ZERO_WIDTH_ELEMS;
    switch (wide) {
    case LEP_FC_UINT: return maxu == 0 && zw ? LEP_FC_UINT0 : maxu <= 0xff ? LEP_FC_SMALLUINT : wide;
    case LEP_FC_ULONG: return maxu == 0 && zw ? LEP_FC_ULONG0 : maxu <= 0xff ? LEP_FC_SMALLULONG : wide;
    case LEP_FC_INT: return fits8 ? LEP_FC_SMALLINT : wide;
    case LEP_FC_LONG: return fits8 ? LEP_FC_SMALLLONG : wide;
    case LEP_FC_BOOLEAN: return !zw ? wide : all_true ? LEP_FC_TRUE : all_false ? LEP_FC_FALSE : wide;
    case LEP_FC_LIST32: return all_empty && zw ? LEP_FC_LIST0 : fits8 ? LEP_FC_LIST8 : wide;
    case LEP_FC_VBIN32: case LEP_FC_STR32: case LEP_FC_SYM32: case LEP_FC_MAP32: case LEP_FC_ARRAY32:
        return fits8 ? (uint8_t)(wide - 0x10) : wide; /* vbin8, str8, sym8, map8, array8 */
    default: return wide;
    }
}

/* Rewrites count wide elements at p into the narrow code, in place (the
 * narrow form is never longer, so writing trails reading); returns the new
 * length of the elements. */
static size_t
narrow(uint8_t wide, uint8_t code, uint8_t *p, uint32_t count)
{
    const uint8_t *rd = p;
    uint8_t *wr = p;
    for (uint32_t i = 0; i < count; i++) {
        switch (wide) {
        case LEP_FC_UINT: if (code == LEP_FC_SMALLUINT) *wr++ = rd[3]; rd += 4; break;
        case LEP_FC_ULONG: if (code == LEP_FC_SMALLULONG) *wr++ = rd[7]; rd += 8; break;
        case LEP_FC_INT: *wr++ = rd[3]; rd += 4; break;
        case LEP_FC_LONG: *wr++ = rd[7]; rd += 8; break;
        case LEP_FC_BOOLEAN: rd++; break;
        case LEP_FC_VBIN32: case LEP_FC_STR32: case LEP_FC_SYM32: {
            uint32_t n = lepi_be32(rd);
            *wr++ = (uint8_t)n;
            memmove(wr, rd + 4, n);
            wr += n;
            rd += 4 + n;
            break;
        }
        default: { /* list32, map32, array32 */
            uint32_t size = lepi_be32(rd), n = lepi_be32(rd + 4);
            if (code != LEP_FC_LIST0) {
                *wr++ = (uint8_t)(size - 3);
                *wr++ = (uint8_t)n;
                memmove(wr, rd + 8, size - 4);
                wr += size - 4;
            }
            rd += 4 + size;
            break;
        }
        }
    }
    return (size_t)(wr - p);
}

void
lep_encode_array_end(lep_encoder_t *e)
{
    lep_enc_frame_t *f = compound_top(e, LEP_FC_ARRAY32);
    if (!f)
        return;
    uint8_t *base = e->out->data + f->start;
    size_t hdr = f->in_array ? 8 : 9; /* [code] size32 count32 */
    uint8_t *ctor = base + hdr;
    uint8_t *elems = base + f->elems;
    size_t ctor_len = (size_t)(elems - ctor);
    uint8_t wide = elems[-1];
    size_t content = e->out->len - f->start - f->elems;

    if (wide == LEP_FC_NULL && f->count > LEPI_MAX_ZERO_WIDTH_ELEMS) {
        fail(e, LEP_ERR_LIMIT); /* nulls have no wider form */
        return;
    }
    uint8_t code = narrowest(wide, elems, f->count);
    if (code != wide) {
        content = narrow(wide, code, elems, f->count);
        elems[-1] = code;
        e->out->len = f->start + f->elems + content;
    }
    size_t body = ctor_len + content; /* after the count field */
    if (body + 4 > UINT32_MAX) {
        fail(e, LEP_ERR_LIMIT);
        return;
    }
    if (f->in_array) {
        lepi_put32(base, (uint32_t)(body + 4));
        lepi_put32(base + 4, f->count);
    } else if (body + 1 <= 0xff && f->count <= 0xff) {
        base[0] = LEP_FC_ARRAY8;
        base[1] = (uint8_t)(body + 1);
        base[2] = (uint8_t)f->count;
        memmove(base + 3, ctor, body);
        e->out->len = f->start + 3 + body;
    } else {
        lepi_put32(base + 1, (uint32_t)(body + 4));
        lepi_put32(base + 5, f->count);
    }
}

void
lep_encode_raw(lep_encoder_t *e, const void *data, size_t n)
{
    lep_reader_t r;
    lep_atom_t a;
    lep_reader_init(&r, data, n);
    if (e->err)
        return;
    /* exactly one whole value */
    if (n == 0 || lep_reader_next(&r, &a) != 0 || r.p != r.end) {
        fail(e, LEP_ERR_INVALID);
        return;
    }
    /* raw bytes of a whole value count as one element of any compound */
    int m = value_start(e, a.type, true);
    if (m == BAD)
        return;
    if (m == ELEMENT) {
        fail(e, LEP_ERR_STATE);
        return;
    }
    uint8_t *p = put(e, n);
    if (p)
        memcpy(p, data, n);
}

/* Writes a value given as constructor code fc and payload, re-encoding
 * the payload into the wide form when it becomes an array element.  t is
 * the value's type, or LEP_TYPE_COUNT_ to take it from fc. */
static void
compound_atom(lep_encoder_t *e, lep_type_t t, uint8_t fc, lep_bytes_t payload)
{
    if (t == LEP_TYPE_COUNT_) {
        int tt = lep_type_of_code(fc);
        if (tt < 0 || fc == LEP_FC_DESCRIBED) {
            fail(e, LEP_ERR_INVALID);
            return;
        }
        t = (lep_type_t)tt;
    }
    int m = value_start(e, t, true);
    uint8_t *p;
    if (m == BAD)
        return;
    if (m == PLAIN || fc == lepi_wide_code(t)) {
        if ((p = put(e, payload.len + (m == PLAIN)))) {
            if (m == PLAIN)
                *p++ = fc;
            memcpy(p, payload.ptr, payload.len);
        }
        return;
    }
    /* Array element in a narrower form than the array's: widen. */
    switch (fc) {
    case LEP_FC_LIST0:
        if ((p = put(e, 8))) {
            lepi_put32(p, 4);
            lepi_put32(p + 4, 0);
        }
        return;
    case LEP_FC_LIST8: case LEP_FC_MAP8: case LEP_FC_ARRAY8:
        if (payload.len < 2) {
            fail(e, LEP_ERR_INVALID);
            return;
        }
        if ((p = put(e, payload.len + 6))) {
            lepi_put32(p, (uint32_t)payload.ptr[0] + 3);
            lepi_put32(p + 4, payload.ptr[1]);
            memcpy(p + 8, payload.ptr + 2, payload.len - 2);
        }
        return;
    case LEP_FC_VBIN8: case LEP_FC_STR8: case LEP_FC_SYM8:
        if (payload.len < 1) {
            fail(e, LEP_ERR_INVALID);
            return;
        }
        if ((p = put(e, payload.len + 3))) {
            lepi_put32(p, payload.ptr[0]);
            memcpy(p + 4, payload.ptr + 1, payload.len - 1);
        }
        return;
    default:
        fail(e, LEP_ERR_INVALID);
        return;
    }
}

void
lep_encode_atom(lep_encoder_t *e, const lep_atom_t *a)
{
    switch (a->type) {
    case LEP_TYPE_NULL: lep_encode_null(e); break;
    case LEP_TYPE_BOOL: lep_encode_bool(e, a->u.b); break;
    case LEP_TYPE_UBYTE: lep_encode_ubyte(e, (uint8_t)a->u.u); break;
    case LEP_TYPE_USHORT: lep_encode_ushort(e, (uint16_t)a->u.u); break;
    case LEP_TYPE_UINT: lep_encode_uint(e, (uint32_t)a->u.u); break;
    case LEP_TYPE_ULONG: lep_encode_ulong(e, a->u.u); break;
    case LEP_TYPE_BYTE: lep_encode_byte(e, (int8_t)a->u.i); break;
    case LEP_TYPE_SHORT: lep_encode_short(e, (int16_t)a->u.i); break;
    case LEP_TYPE_INT: lep_encode_int(e, (int32_t)a->u.i); break;
    case LEP_TYPE_LONG: lep_encode_long(e, a->u.i); break;
    case LEP_TYPE_FLOAT: lep_encode_float(e, a->u.f); break;
    case LEP_TYPE_DOUBLE: lep_encode_double(e, a->u.d); break;
    case LEP_TYPE_DECIMAL32: lep_encode_decimal32(e, a->u.dec); break;
    case LEP_TYPE_DECIMAL64: lep_encode_decimal64(e, a->u.dec); break;
    case LEP_TYPE_DECIMAL128: lep_encode_decimal128(e, a->u.dec); break;
    case LEP_TYPE_CHAR: lep_encode_char(e, (uint32_t)a->u.u); break;
    case LEP_TYPE_TIMESTAMP: lep_encode_timestamp(e, a->u.i); break;
    case LEP_TYPE_UUID: lep_encode_uuid(e, a->u.uuid); break;
    case LEP_TYPE_BINARY: lep_encode_binary(e, a->u.bytes.ptr, a->u.bytes.len); break;
    case LEP_TYPE_STRING: lep_encode_string(e, a->u.bytes.ptr, a->u.bytes.len); break;
    case LEP_TYPE_SYMBOL: lep_encode_symbol(e, a->u.bytes.ptr, a->u.bytes.len); break;
    case LEP_TYPE_DESCRIBED:
        if (!(a->flags & LEP_ATOM_ARRAY_ELEM)) {
            lep_encode_raw(e, a->raw.ptr, a->raw.len);
            return;
        }
        /* An element of a described array: its descriptor and code are
         * the array's, so rebuild the whole value. */
        if (lepi_encode_described_prefix(e)) {
            lep_encode_raw(e, a->ctor.ptr, a->ctor.len);
            compound_atom(e, LEP_TYPE_COUNT_, a->code, a->content);
        }
        return;
    default: {
        /* Lists, maps, arrays travel as their encoding. */
        bool elem = a->flags & LEP_ATOM_ARRAY_ELEM;
        if (!elem && a->raw.len == 0) {
            fail(e, LEP_ERR_INVALID);
            return;
        }
        compound_atom(e, a->type, elem ? a->fc : a->raw.ptr[0],
                      elem ? a->raw : (lep_bytes_t){a->raw.ptr + 1, a->raw.len - 1});
        return;
    }
    }
}
