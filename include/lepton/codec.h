/* lepton codec: the AMQP 1.0 type system (OASIS AMQP 1.0 part 1).
 *
 * Three levels, fastest first:
 *   - lep_reader_t / lep_encoder_t: streaming, zero-copy, no allocation.
 *   - lep_atom_t: one decoded value; scalars by value, strings and compound
 *     payloads as views into the input.
 *   - lep_value_t: a tree of values for generic use, printable.
 *
 * Decoded views point into the caller's input buffer and stay valid as long
 * as that buffer does.  The reader is bounds-checked on every byte and never
 * reads outside [ptr, ptr+len). */
#ifndef LEPTON_CODEC_H
#define LEPTON_CODEC_H

#include <lepton/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Format codes (spec part 1, section 1.6). */
enum {
    LEP_FC_DESCRIBED = 0x00,
    LEP_FC_NULL = 0x40,
    LEP_FC_TRUE = 0x41,
    LEP_FC_FALSE = 0x42,
    LEP_FC_UINT0 = 0x43,
    LEP_FC_ULONG0 = 0x44,
    LEP_FC_LIST0 = 0x45,
    LEP_FC_UBYTE = 0x50,
    LEP_FC_BYTE = 0x51,
    LEP_FC_SMALLUINT = 0x52,
    LEP_FC_SMALLULONG = 0x53,
    LEP_FC_SMALLINT = 0x54,
    LEP_FC_SMALLLONG = 0x55,
    LEP_FC_BOOLEAN = 0x56,
    LEP_FC_USHORT = 0x60,
    LEP_FC_SHORT = 0x61,
    LEP_FC_UINT = 0x70,
    LEP_FC_INT = 0x71,
    LEP_FC_FLOAT = 0x72,
    LEP_FC_CHAR = 0x73,
    LEP_FC_DECIMAL32 = 0x74,
    LEP_FC_ULONG = 0x80,
    LEP_FC_LONG = 0x81,
    LEP_FC_DOUBLE = 0x82,
    LEP_FC_TIMESTAMP = 0x83,
    LEP_FC_DECIMAL64 = 0x84,
    LEP_FC_DECIMAL128 = 0x94,
    LEP_FC_UUID = 0x98,
    LEP_FC_VBIN8 = 0xa0,
    LEP_FC_STR8 = 0xa1,
    LEP_FC_SYM8 = 0xa3,
    LEP_FC_VBIN32 = 0xb0,
    LEP_FC_STR32 = 0xb1,
    LEP_FC_SYM32 = 0xb3,
    LEP_FC_LIST8 = 0xc0,
    LEP_FC_MAP8 = 0xc1,
    LEP_FC_LIST32 = 0xd0,
    LEP_FC_MAP32 = 0xd1,
    LEP_FC_ARRAY8 = 0xe0,
    LEP_FC_ARRAY32 = 0xf0,
};

/* The AMQP types, independent of encoding. */
typedef enum lep_type {
    LEP_TYPE_NULL = 0,
    LEP_TYPE_BOOL,
    LEP_TYPE_UBYTE,
    LEP_TYPE_USHORT,
    LEP_TYPE_UINT,
    LEP_TYPE_ULONG,
    LEP_TYPE_BYTE,
    LEP_TYPE_SHORT,
    LEP_TYPE_INT,
    LEP_TYPE_LONG,
    LEP_TYPE_FLOAT,
    LEP_TYPE_DOUBLE,
    LEP_TYPE_DECIMAL32,
    LEP_TYPE_DECIMAL64,
    LEP_TYPE_DECIMAL128,
    LEP_TYPE_CHAR,
    LEP_TYPE_TIMESTAMP,
    LEP_TYPE_UUID,
    LEP_TYPE_BINARY,
    LEP_TYPE_STRING,
    LEP_TYPE_SYMBOL,
    LEP_TYPE_LIST,
    LEP_TYPE_MAP,
    LEP_TYPE_ARRAY,
    LEP_TYPE_DESCRIBED,
    LEP_TYPE_COUNT_
} lep_type_t;

/* Spec name of a type ("ubyte", "list", ...); "?" for out-of-range. */
LEP_EXPORT const char *lep_type_name(lep_type_t t);
/* Type of a primitive format code; returns -1 (as int) for an unknown code
 * and LEP_TYPE_DESCRIBED for 0x00. */
LEP_EXPORT int lep_type_of_code(uint8_t code);

/* Nesting limit for compound and described values, in both directions. */
#define LEP_CODEC_MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* Atoms: one value, decoded shallowly.                                */

/* lep_atom_t.flags */
#define LEP_ATOM_ARRAY_ELEM 0x01 /* element of an array: raw has no constructor */

typedef struct lep_atom {
    lep_type_t type;
    uint8_t code;          /* format code on the wire (for arrays: the element code) */
    uint8_t flags;         /* LEP_ATOM_* */
    uint8_t fc;            /* this value's own constructor code (arrays: 0xe0/0xf0; array
                              elements: the array's element code) */
    uint32_t count;        /* list/map/array: number of elements (map: keys + values) */
    union {
        bool b;
        uint64_t u;        /* ubyte, ushort, uint, ulong, char (code point) */
        int64_t i;         /* byte, short, int, long, timestamp (ms since epoch) */
        float f;
        double d;
        uint8_t uuid[16];
        uint8_t dec[16];   /* decimal32/64/128: the big-endian bytes as on the wire */
        lep_bytes_t bytes; /* binary, string, symbol: the payload */
    } u;
    /* list, map, array: the element bytes (arrays: after the element
     * constructor).  described: the encoding of the described value.  */
    lep_bytes_t content;
    /* array: the element constructor (format code, preceded by a
     * descriptor when elements are described).  described: the encoding of
     * the descriptor. */
    lep_bytes_t ctor;
    /* The whole encoding of this value, constructor included. */
    lep_bytes_t raw;
} lep_atom_t;

/* ------------------------------------------------------------------ */
/* Streaming reader.                                                  */

typedef struct lep_reader {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t remaining;    /* values left in the enclosing compound (UINT32_MAX: unbounded) */
    uint8_t depth;
    uint8_t array_code;    /* non-zero: reading array elements of this code */
    lep_bytes_t array_desc; /* array of described elements: the descriptor's encoding */
} lep_reader_t;

/* Reads a sequence of values from [p, p+len).  Borrows the bytes. */
LEP_EXPORT void lep_reader_init(lep_reader_t *r, const void *p, size_t len);
/* True when no value is left (end of input or of the compound). */
LEP_EXPORT bool lep_reader_done(const lep_reader_t *r);
/* Decodes the next value into *out and steps past it.  Compound values are
 * not descended into: use lep_reader_enter.  Strings are checked for valid
 * UTF-8 and symbols for ASCII.
 * Errors: LEP_ERR_INCOMPLETE (input ends inside the value), LEP_ERR_DECODE
 * (unknown code, inconsistent size/count), LEP_ERR_UTF8, LEP_ERR_SYMBOL,
 * LEP_ERR_LIMIT (nesting too deep). */
LEP_EXPORT int lep_reader_next(lep_reader_t *r, lep_atom_t *out);
/* Looks at the next value without consuming it. */
LEP_EXPORT int lep_reader_peek(const lep_reader_t *r, lep_atom_t *out);
/* Opens a reader over the elements of a list, map or array atom (maps give
 * keys and values alternately), or over the single described value of a
 * described atom.  The child borrows the same input. */
LEP_EXPORT int lep_reader_enter(const lep_reader_t *parent, const lep_atom_t *a,
                                lep_reader_t *child);
/* Like lep_reader_next, and checks the whole value: every nested compound,
 * descriptor and array element is decoded and must fill its container
 * exactly.  Costs a walk of the value; allocates nothing. */
LEP_EXPORT int lep_reader_next_checked(lep_reader_t *r, lep_atom_t *out);
/* Skips one value. */
LEP_EXPORT int lep_reader_skip(lep_reader_t *r);
/* Bytes consumed so far relative to base. */
static inline size_t lep_reader_offset(const lep_reader_t *r, const void *base)
{
    return (size_t)(r->p - (const uint8_t *)base);
}

/* Typed reads.  Each accepts every legal encoding of its type (uint0,
 * smalluint and uint for uint; and so on) and returns LEP_ERR_TYPE for a
 * well-formed value of another type, without consuming it. */
LEP_EXPORT int lep_read_bool(lep_reader_t *r, bool *out);
LEP_EXPORT int lep_read_ubyte(lep_reader_t *r, uint8_t *out);
LEP_EXPORT int lep_read_ushort(lep_reader_t *r, uint16_t *out);
LEP_EXPORT int lep_read_uint(lep_reader_t *r, uint32_t *out);
LEP_EXPORT int lep_read_ulong(lep_reader_t *r, uint64_t *out);
LEP_EXPORT int lep_read_byte(lep_reader_t *r, int8_t *out);
LEP_EXPORT int lep_read_short(lep_reader_t *r, int16_t *out);
LEP_EXPORT int lep_read_int(lep_reader_t *r, int32_t *out);
LEP_EXPORT int lep_read_long(lep_reader_t *r, int64_t *out);
LEP_EXPORT int lep_read_float(lep_reader_t *r, float *out);
LEP_EXPORT int lep_read_double(lep_reader_t *r, double *out);
LEP_EXPORT int lep_read_char(lep_reader_t *r, uint32_t *out);
LEP_EXPORT int lep_read_timestamp(lep_reader_t *r, int64_t *out);
LEP_EXPORT int lep_read_uuid(lep_reader_t *r, uint8_t out[16]);
/* View into the input, valid while the input is. */
LEP_EXPORT int lep_read_binary(lep_reader_t *r, lep_bytes_t *out);
LEP_EXPORT int lep_read_string(lep_reader_t *r, lep_bytes_t *out);
LEP_EXPORT int lep_read_symbol(lep_reader_t *r, lep_bytes_t *out);
/* Reads a descriptor (the 0x00 constructor and the descriptor value) and
 * leaves the reader at the described value.  *code is set for a ulong
 * descriptor, *name (view) for a symbol one; the other is zeroed. */
LEP_EXPORT int lep_read_descriptor(lep_reader_t *r, uint64_t *code, lep_bytes_t *name);
/* Reads a list, map or array header and opens a child reader over its
 * elements; *count is the element count (maps: keys + values). */
LEP_EXPORT int lep_read_list(lep_reader_t *r, lep_reader_t *child, uint32_t *count);
LEP_EXPORT int lep_read_map(lep_reader_t *r, lep_reader_t *child, uint32_t *count);
LEP_EXPORT int lep_read_array(lep_reader_t *r, lep_reader_t *child, uint32_t *count,
                              lep_type_t *elem_type);
/* True (and consumes it) when the next value is null; false otherwise. */
LEP_EXPORT bool lep_read_null(lep_reader_t *r);

/* ------------------------------------------------------------------ */
/* Streaming encoder.                                                 */

typedef struct lep_enc_frame {
    size_t start;       /* offset of the compound's constructor */
    uint32_t count;     /* elements written so far */
    uint32_t elems;     /* offset of the first element */
    uint8_t kind;       /* LEP_FC_LIST32, LEP_FC_MAP32, LEP_FC_ARRAY32 */
    uint8_t elem_type;  /* arrays: lep_type_t of the elements */
    bool in_array;      /* this compound is itself an array element */
    uint8_t dbase;      /* described-stack height when this compound began */
} lep_enc_frame_t;

/* Writes values into a lep_buf_t it borrows.  Errors are sticky: after the
 * first failure every call is a no-op and lep_encoder_error() reports it,
 * so a run of encode calls needs one check at the end. */
typedef struct lep_encoder {
    lep_buf_t *out;
    int err;
    uint8_t depth;
    uint8_t dtop;       /* described values still open (each nests a level) */
    uint8_t dslots[LEP_CODEC_MAX_DEPTH]; /* per open described: parts to come */
    lep_enc_frame_t stack[LEP_CODEC_MAX_DEPTH];
} lep_encoder_t;

/* Appends to out (borrowed until the encoder is no longer used). */
LEP_EXPORT void lep_encoder_init(lep_encoder_t *e, lep_buf_t *out);
/* 0, or the first error: LEP_ERR_NOMEM, LEP_ERR_OVERFLOW (fixed buffer),
 * LEP_ERR_UTF8, LEP_ERR_SYMBOL, LEP_ERR_LIMIT (depth), LEP_ERR_STATE
 * (unbalanced begin/end, mixed types in an array). */
static inline int lep_encoder_error(const lep_encoder_t *e) { return e->err; }
/* Like lep_encoder_error, and LEP_ERR_STATE when a compound or a described
 * value is still open: call when the value should be complete. */
static inline int
lep_encoder_finish(const lep_encoder_t *e)
{
    return e->err ? e->err : (e->depth || e->dtop) ? LEP_ERR_STATE : 0;
}

/* Every scalar is written in its smallest legal encoding. */
LEP_EXPORT void lep_encode_null(lep_encoder_t *e);
LEP_EXPORT void lep_encode_bool(lep_encoder_t *e, bool v);
LEP_EXPORT void lep_encode_ubyte(lep_encoder_t *e, uint8_t v);
LEP_EXPORT void lep_encode_ushort(lep_encoder_t *e, uint16_t v);
LEP_EXPORT void lep_encode_uint(lep_encoder_t *e, uint32_t v);
LEP_EXPORT void lep_encode_ulong(lep_encoder_t *e, uint64_t v);
LEP_EXPORT void lep_encode_byte(lep_encoder_t *e, int8_t v);
LEP_EXPORT void lep_encode_short(lep_encoder_t *e, int16_t v);
LEP_EXPORT void lep_encode_int(lep_encoder_t *e, int32_t v);
LEP_EXPORT void lep_encode_long(lep_encoder_t *e, int64_t v);
LEP_EXPORT void lep_encode_float(lep_encoder_t *e, float v);
LEP_EXPORT void lep_encode_double(lep_encoder_t *e, double v);
/* Decimals are opaque IEEE 754 decimal bytes, big-endian as on the wire. */
LEP_EXPORT void lep_encode_decimal32(lep_encoder_t *e, const uint8_t v[4]);
LEP_EXPORT void lep_encode_decimal64(lep_encoder_t *e, const uint8_t v[8]);
LEP_EXPORT void lep_encode_decimal128(lep_encoder_t *e, const uint8_t v[16]);
LEP_EXPORT void lep_encode_char(lep_encoder_t *e, uint32_t codepoint);
LEP_EXPORT void lep_encode_timestamp(lep_encoder_t *e, int64_t ms);
LEP_EXPORT void lep_encode_uuid(lep_encoder_t *e, const uint8_t v[16]);
LEP_EXPORT void lep_encode_binary(lep_encoder_t *e, const void *p, size_t n);
/* string must be valid UTF-8, symbol 7-bit ASCII (checked). */
LEP_EXPORT void lep_encode_string(lep_encoder_t *e, const void *p, size_t n);
LEP_EXPORT void lep_encode_symbol(lep_encoder_t *e, const void *p, size_t n);
LEP_EXPORT void lep_encode_cstring(lep_encoder_t *e, const char *s);
LEP_EXPORT void lep_encode_csymbol(lep_encoder_t *e, const char *s);
/* A descriptor: the next value written is the described value. */
LEP_EXPORT void lep_encode_descriptor(lep_encoder_t *e, uint64_t code);
LEP_EXPORT void lep_encode_descriptor_symbol(lep_encoder_t *e, const char *name);
/* Compounds: begin, write the elements (maps: key, value, key, value...),
 * end.  end picks list0/list8/map8/array8 when the result fits. */
LEP_EXPORT void lep_encode_list_begin(lep_encoder_t *e);
LEP_EXPORT void lep_encode_list_end(lep_encoder_t *e);
LEP_EXPORT void lep_encode_map_begin(lep_encoder_t *e);
LEP_EXPORT void lep_encode_map_end(lep_encoder_t *e);
/* Array of elem_type (any type but LEP_TYPE_DESCRIBED; LEP_TYPE_NULL gives
 * the zero-width null constructor, as empty arrays of no type use).
 * Every element written until lep_encode_array_end must be of that type;
 * end narrows the element encoding to the smallest that fits them all. */
LEP_EXPORT void lep_encode_array_begin(lep_encoder_t *e, lep_type_t elem_type);
/* Array whose elements are described by descriptor `code` and have
 * underlying elem_type. */
LEP_EXPORT void lep_encode_array_begin_described(lep_encoder_t *e, uint64_t code,
                                                 lep_type_t elem_type);
LEP_EXPORT void lep_encode_array_end(lep_encoder_t *e);
/* Same, with the descriptor given as its encoding (e.g. a symbol). */
LEP_EXPORT void lep_encode_array_begin_described_raw(lep_encoder_t *e, lep_bytes_t descriptor,
                                                     lep_type_t elem_type);
/* Copies an already-encoded value (e.g. atom.raw) verbatim.  Not allowed
 * inside an array. */
LEP_EXPORT void lep_encode_raw(lep_encoder_t *e, const void *p, size_t n);
/* Encodes an atom: scalars by value, compound and described atoms by
 * copying their raw bytes. */
LEP_EXPORT void lep_encode_atom(lep_encoder_t *e, const lep_atom_t *a);

/* ------------------------------------------------------------------ */
/* Validation helpers.                                                */

LEP_EXPORT bool lep_utf8_valid(const uint8_t *p, size_t n);
LEP_EXPORT bool lep_ascii_valid(const uint8_t *p, size_t n);

/* ------------------------------------------------------------------ */
/* Value trees.                                                       */

typedef struct lep_value lep_value_t;
struct lep_value {
    lep_atom_t atom;          /* type and scalar payload; views for strings */
    uint32_t nchildren;
    lep_value_t *children;    /* list/array: elements; map: k,v,k,v...;
                                 described: [descriptor, value] */
    uint8_t *owned;           /* bytes this node owns (copied strings) */
};

/* Decodes one value from [p, p+len) into a new tree.  With copy false the
 * tree's strings are views into the input and the input must outlive it;
 * with copy true the tree owns copies.  *used (may be NULL) gets the
 * bytes consumed.  Returns 0 or an error; on error *out is NULL. */
LEP_EXPORT int lep_value_decode(const void *p, size_t len, bool copy,
                                lep_value_t **out, size_t *used);
LEP_EXPORT void lep_value_free(lep_value_t *v);
LEP_EXPORT void lep_value_encode(lep_encoder_t *e, const lep_value_t *v);
/* Same type and value (encoding width is ignored; floats compared by bits). */
LEP_EXPORT bool lep_value_equal(const lep_value_t *a, const lep_value_t *b);

/* Builders: each returns a new node or NULL when out of memory.  Strings
 * are copied.  Compound builders take ownership of the children array
 * elements (moved in; the array itself is copied). */
LEP_EXPORT lep_value_t *lep_value_new(lep_type_t t);
LEP_EXPORT lep_value_t *lep_value_new_uint64(lep_type_t t, uint64_t v);  /* ubyte..ulong, char, bool */
LEP_EXPORT lep_value_t *lep_value_new_int64(lep_type_t t, int64_t v);    /* byte..long, timestamp */
LEP_EXPORT lep_value_t *lep_value_new_double(lep_type_t t, double v);    /* float, double */
LEP_EXPORT lep_value_t *lep_value_new_bytes(lep_type_t t, const void *p, size_t n); /* binary, string, symbol, uuid, decimal */
/* An empty array whose elements will be of elem_type. */
LEP_EXPORT lep_value_t *lep_value_new_array(lep_type_t elem_type);
/* Appends a child to a list/map/array/described node; takes ownership of
 * child on success only (the node is moved into the parent's children and
 * the child pointer itself is freed). */
LEP_EXPORT int lep_value_append(lep_value_t *parent, lep_value_t *child);

/* Printing. */
typedef enum lep_print_flags {
    LEP_PRINT_DEFAULT = 0,
    LEP_PRINT_TYPED = 1,   /* every scalar tagged with its type: ubyte:1 */
    LEP_PRINT_INDENT = 2,  /* one element per line, indented */
} lep_print_flags_t;

/* Names a descriptor for printing: returns the spec name for a known
 * code ("transfer") and the field names, or NULL.  The codec installs
 * the spec's names; callers can pass NULL to use them. */
typedef struct lep_descriptor_info {
    const char *name;
    uint64_t code;
    const char *const *fields;
    uint32_t nfields;
} lep_descriptor_info_t;
LEP_EXPORT const lep_descriptor_info_t *lep_descriptor_lookup(uint64_t code);
LEP_EXPORT const lep_descriptor_info_t *lep_descriptor_lookup_name(lep_bytes_t name);

/* Appends a readable form of the tree to out. */
LEP_EXPORT int lep_value_print(const lep_value_t *v, lep_buf_t *out, int flags);
/* Prints encoded bytes directly (one value), without building a tree. */
LEP_EXPORT int lep_print_encoded(lep_reader_t *r, lep_buf_t *out, int flags);

#ifdef __cplusplus
}
#endif
#endif
