/* Encoder tests: the smallest legal encoding of every type, byte for byte;
 * compounds and their narrowing (list0/list8/map8/array8, element codes of
 * arrays of every type, nested arrays), sticky errors, fixed buffers at
 * every capacity, state errors, depth limits, raw and atom copies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/codec.h>

#include "vectors.h"

/* Compares the encoder's output with the expected bytes, hex-dumping both
 * on a mismatch. */
static void
expect_out(const lep_buf_t *b, const uint8_t *want, size_t n, const char *what)
{
    if (b->len == n && memcmp(b->data, want, n) == 0)
        return;
    tv_hex(stderr, "got ", b->data, b->len);
    tv_hex(stderr, "want", want, n);
    fail_msg("%s: encoding differs", what);
}

#define EXPECT_OUT(b, what, ...)                                                  \
    do {                                                                          \
        static const uint8_t want_[] = {__VA_ARGS__};                            \
        expect_out((b), want_, sizeof want_, (what));                             \
    } while (0)

/* Encodes the scalar value a vector describes with the typed encoder;
 * false for compound and described vectors. */
static bool
encode_tv(lep_encoder_t *e, const tv_t *v)
{
    switch (v->type) {
    case LEP_TYPE_NULL: lep_encode_null(e); return true;
    case LEP_TYPE_BOOL: lep_encode_bool(e, v->u != 0); return true;
    case LEP_TYPE_UBYTE: lep_encode_ubyte(e, (uint8_t)v->u); return true;
    case LEP_TYPE_USHORT: lep_encode_ushort(e, (uint16_t)v->u); return true;
    case LEP_TYPE_UINT: lep_encode_uint(e, (uint32_t)v->u); return true;
    case LEP_TYPE_ULONG: lep_encode_ulong(e, v->u); return true;
    case LEP_TYPE_BYTE: lep_encode_byte(e, (int8_t)v->i); return true;
    case LEP_TYPE_SHORT: lep_encode_short(e, (int16_t)v->i); return true;
    case LEP_TYPE_INT: lep_encode_int(e, (int32_t)v->i); return true;
    case LEP_TYPE_LONG: lep_encode_long(e, v->i); return true;
    case LEP_TYPE_FLOAT: {
        uint32_t bits = (uint32_t)v->bits;
        float f;
        memcpy(&f, &bits, 4);
        lep_encode_float(e, f);
        return true;
    }
    case LEP_TYPE_DOUBLE: {
        double d;
        memcpy(&d, &v->bits, 8);
        lep_encode_double(e, d);
        return true;
    }
    case LEP_TYPE_DECIMAL32: lep_encode_decimal32(e, v->payload.p); return true;
    case LEP_TYPE_DECIMAL64: lep_encode_decimal64(e, v->payload.p); return true;
    case LEP_TYPE_DECIMAL128: lep_encode_decimal128(e, v->payload.p); return true;
    case LEP_TYPE_CHAR: lep_encode_char(e, (uint32_t)v->u); return true;
    case LEP_TYPE_TIMESTAMP: lep_encode_timestamp(e, v->i); return true;
    case LEP_TYPE_UUID: lep_encode_uuid(e, v->payload.p); return true;
    case LEP_TYPE_BINARY: lep_encode_binary(e, v->payload.p, v->payload.n); return true;
    case LEP_TYPE_STRING: lep_encode_string(e, v->payload.p, v->payload.n); return true;
    case LEP_TYPE_SYMBOL: lep_encode_symbol(e, v->payload.p, v->payload.n); return true;
    default: return false;
    }
}

static tv_bytes_t
smallest(const tv_t *v)
{
    return v->form == TV_WIDE ? v->canon : v->wire;
}

/* Every scalar vector: the typed encoder writes the smallest encoding. */
static void
test_scalar_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_COUNT; i++) {
        const tv_t *v = &tv_all[i];
        if (v->form == TV_DECODE_ONLY)
            continue;
        lep_buf_t b;
        lep_encoder_t e;
        lep_buf_init(&b);
        lep_encoder_init(&e, &b);
        if (encode_tv(&e, v)) {
            TV_RC(lep_encoder_error(&e), 0, "%s: encode", v->name);
            tv_bytes_t want = smallest(v);
            expect_out(&b, want.p, want.n, v->name);
        }
        lep_buf_fini(&b);
    }
}

/* Every vector through the tree: decode, encode, compare with the smallest
 * form; and every atom through lep_encode_atom. */
static void
test_value_and_atom_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_COUNT; i++) {
        const tv_t *v = &tv_all[i];
        lep_value_t *val;
        lep_buf_t b;
        lep_encoder_t e;

        TV_RC(lep_value_decode(v->wire.p, v->wire.n, false, &val, NULL), 0, "%s: decode", v->name);
        lep_buf_init(&b);
        lep_encoder_init(&e, &b);
        lep_value_encode(&e, val);
        TV_RC(lep_encoder_error(&e), 0, "%s: value encode", v->name);
        if (v->form != TV_DECODE_ONLY) {
            tv_bytes_t want = smallest(v);
            expect_out(&b, want.p, want.n, v->name);
        } else {
            lep_value_t *back;
            TV_RC(lep_value_decode(b.data, b.len, false, &back, NULL), 0, "%s: re-decode", v->name);
            TV_CHECK(lep_value_equal(val, back), "%s: re-decoded value differs", v->name);
            lep_value_free(back);
        }
        lep_value_free(val);

        /* atoms: scalars re-encoded smallest, the rest copied verbatim */
        lep_reader_t r;
        lep_atom_t a;
        lep_reader_init(&r, v->wire.p, v->wire.n);
        TV_RC(lep_reader_next(&r, &a), 0, "%s: next", v->name);
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_atom(&e, &a);
        TV_RC(lep_encoder_error(&e), 0, "%s: encode_atom", v->name);
        if (tv_is_compound(v->type))
            expect_out(&b, v->wire.p, v->wire.n, v->name);
        else if (v->form != TV_DECODE_ONLY)
            expect_out(&b, smallest(v).p, smallest(v).n, v->name);
        lep_buf_fini(&b);
    }
}

/* ------------------------------------------------------------------ */

static void
test_scalar_boundaries(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

#define ENC(call, what, ...)                                                      \
    do {                                                                          \
        lep_buf_clear(&b);                                                        \
        lep_encoder_init(&e, &b);                                                 \
        call;                                                                     \
        TV_RC(lep_encoder_error(&e), 0, "%s", what);                              \
        EXPECT_OUT(&b, what, __VA_ARGS__);                                        \
    } while (0)

    ENC(lep_encode_uint(&e, 0), "uint 0", 0x43);
    ENC(lep_encode_uint(&e, 1), "uint 1", 0x52, 0x01);
    ENC(lep_encode_uint(&e, 255), "uint 255", 0x52, 0xff);
    ENC(lep_encode_uint(&e, 256), "uint 256", 0x70, 0, 0, 0x01, 0x00);
    ENC(lep_encode_uint(&e, 300), "uint 300", 0x70, 0, 0, 0x01, 0x2c);
    ENC(lep_encode_ulong(&e, 0), "ulong 0", 0x44);
    ENC(lep_encode_ulong(&e, 255), "ulong 255", 0x53, 0xff);
    ENC(lep_encode_ulong(&e, 256), "ulong 256", 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x00);
    ENC(lep_encode_int(&e, -1), "int -1", 0x54, 0xff);
    ENC(lep_encode_int(&e, 127), "int 127", 0x54, 0x7f);
    ENC(lep_encode_int(&e, 128), "int 128", 0x71, 0, 0, 0, 0x80);
    ENC(lep_encode_int(&e, -128), "int -128", 0x54, 0x80);
    ENC(lep_encode_int(&e, -129), "int -129", 0x71, 0xff, 0xff, 0xff, 0x7f);
    ENC(lep_encode_long(&e, 127), "long 127", 0x55, 0x7f);
    ENC(lep_encode_long(&e, 128), "long 128", 0x81, 0, 0, 0, 0, 0, 0, 0, 0x80);
    ENC(lep_encode_long(&e, -128), "long -128", 0x55, 0x80);
    ENC(lep_encode_long(&e, -129), "long -129", 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    ENC(lep_encode_long(&e, INT64_MIN), "long min", 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0);
    ENC(lep_encode_bool(&e, true), "bool true", 0x41);
    ENC(lep_encode_bool(&e, false), "bool false", 0x42);
    ENC(lep_encode_ubyte(&e, 0), "ubyte 0", 0x50, 0x00);
    ENC(lep_encode_ushort(&e, 0), "ushort 0", 0x60, 0x00, 0x00);
    ENC(lep_encode_byte(&e, -1), "byte -1", 0x51, 0xff);
    ENC(lep_encode_short(&e, 0), "short 0", 0x61, 0x00, 0x00);
    ENC(lep_encode_timestamp(&e, 0), "timestamp 0", 0x83, 0, 0, 0, 0, 0, 0, 0, 0);
    ENC(lep_encode_char(&e, 0xe9), "char e9", 0x73, 0, 0, 0, 0xe9);
    ENC(lep_encode_cstring(&e, "hi"), "cstring", 0xa1, 0x02, 'h', 'i');
    ENC(lep_encode_csymbol(&e, "hi"), "csymbol", 0xa3, 0x02, 'h', 'i');
    ENC(lep_encode_cstring(&e, ""), "empty cstring", 0xa1, 0x00);
    ENC(lep_encode_binary(&e, NULL, 0), "empty binary", 0xa0, 0x00);
    ENC(lep_encode_descriptor(&e, 0x10); lep_encode_list_begin(&e); lep_encode_list_end(&e),
        "described list0", 0x00, 0x53, 0x10, 0x45);
    ENC(lep_encode_descriptor(&e, 0); lep_encode_null(&e), "descriptor 0", 0x00, 0x44, 0x40);
    ENC(lep_encode_descriptor(&e, 0x0000013700000001ull); lep_encode_null(&e), "descriptor domain",
        0x00, 0x80, 0, 0, 0x01, 0x37, 0, 0, 0, 0x01, 0x40);
    ENC(lep_encode_descriptor_symbol(&e, "x:foo"); lep_encode_uint(&e, 7), "descriptor symbol",
        0x00, 0xa3, 0x05, 'x', ':', 'f', 'o', 'o', 0x52, 0x07);
    ENC(lep_encode_descriptor(&e, 1); lep_encode_descriptor(&e, 2); lep_encode_uint(&e, 3),
        "described described", 0x00, 0x53, 0x01, 0x00, 0x53, 0x02, 0x52, 0x03);
    ENC(lep_encode_list_begin(&e); lep_encode_list_end(&e), "empty list", 0x45);
    ENC(lep_encode_map_begin(&e); lep_encode_map_end(&e), "empty map", 0xc1, 0x01, 0x00);
    ENC(lep_encode_list_begin(&e); lep_encode_bool(&e, true); lep_encode_bool(&e, false);
        lep_encode_list_end(&e), "list8", 0xc0, 0x03, 0x02, 0x41, 0x42);
    ENC(lep_encode_list_begin(&e); lep_encode_list_begin(&e); lep_encode_list_end(&e);
        lep_encode_list_begin(&e); lep_encode_null(&e); lep_encode_list_end(&e); lep_encode_uint(&e, 9);
        lep_encode_list_end(&e), "nested list", 0xc0, 0x08, 0x03, 0x45, 0xc0, 0x02, 0x01, 0x40, 0x52, 0x09);
    ENC(lep_encode_map_begin(&e); lep_encode_csymbol(&e, "k"); lep_encode_uint(&e, 5); lep_encode_map_end(&e),
        "map8", 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05);
    ENC(lep_encode_list_begin(&e); lep_encode_descriptor(&e, 0x24); lep_encode_list_begin(&e);
        lep_encode_list_end(&e); lep_encode_null(&e); lep_encode_list_end(&e),
        "described in list", 0xc0, 0x06, 0x02, 0x00, 0x53, 0x24, 0x45, 0x40);
    ENC(lep_encode_list_begin(&e); lep_encode_descriptor(&e, 1); lep_encode_descriptor(&e, 2);
        lep_encode_null(&e); lep_encode_uint(&e, 1); lep_encode_list_end(&e),
        "nested described in list", 0xc0, 0x0a, 0x02, 0x00, 0x53, 0x01, 0x00, 0x53, 0x02, 0x40, 0x52, 0x01);
#undef ENC
    lep_buf_fini(&b);
}

/* Variable-width values switch to the 32-bit form at 256 bytes; lists and
 * maps when size or count exceed 255. */
static void
test_width_boundaries(void **state)
{
    (void)state;
    static uint8_t data[70000];
    memset(data, 'a', sizeof data);
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

    typedef void (*encfn)(lep_encoder_t *, const void *, size_t);
    static const struct {
        encfn fn;
        uint8_t c8, c32;
    } kinds[] = {
        {lep_encode_binary, 0xa0, 0xb0},
        {lep_encode_string, 0xa1, 0xb1},
        {lep_encode_symbol, 0xa3, 0xb3},
    };
    static const size_t sizes[] = {0, 1, 254, 255, 256, 257, 65535, 65536, 70000};
    for (size_t k = 0; k < 3; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            lep_buf_clear(&b);
            lep_encoder_init(&e, &b);
            kinds[k].fn(&e, data, n);
            assert_int_equal(lep_encoder_error(&e), 0);
            if (n <= 255) {
                TV_CHECK(b.len == 2 + n && b.data[0] == kinds[k].c8 && b.data[1] == n, "kind %zu size %zu", k,
                         n);
            } else {
                TV_CHECK(b.len == 5 + n && b.data[0] == kinds[k].c32 && b.data[1] == (uint8_t)(n >> 24) &&
                             b.data[2] == (uint8_t)(n >> 16) && b.data[3] == (uint8_t)(n >> 8) &&
                             b.data[4] == (uint8_t)n,
                         "kind %zu size %zu", k, n);
            }
            TV_CHECK(memcmp(b.data + b.len - n, data, n) == 0, "payload kind %zu size %zu", k, n);
        }

    /* list of n nulls: size = 1 + n; list8 up to n = 254 */
    for (size_t n = 250; n <= 260; n++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_list_begin(&e);
        for (size_t i = 0; i < n; i++)
            lep_encode_null(&e);
        lep_encode_list_end(&e);
        assert_int_equal(lep_encoder_error(&e), 0);
        if (n <= 254) {
            TV_CHECK(b.len == 3 + n && b.data[0] == 0xc0 && b.data[1] == n + 1 && b.data[2] == n, "list of %zu",
                     n);
        } else {
            TV_CHECK(b.len == 9 + n && b.data[0] == 0xd0 && b.data[4] == (uint8_t)(n + 4) &&
                         b.data[3] == (uint8_t)((n + 4) >> 8) && b.data[8] == (uint8_t)n &&
                         b.data[7] == (uint8_t)(n >> 8),
                     "list of %zu", n);
        }
        lep_value_t *v;
        assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
        assert_int_equal(v->nchildren, n);
        lep_value_free(v);
    }
    /* list of one binary of n bytes: content 2 + n, size 3 + n */
    for (size_t n = 250; n <= 255; n++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_list_begin(&e);
        lep_encode_binary(&e, data, n);
        lep_encode_list_end(&e);
        assert_int_equal(lep_encoder_error(&e), 0);
        if (n <= 252)
            TV_CHECK(b.len == 5 + n && b.data[0] == 0xc0 && b.data[1] == n + 3 && b.data[2] == 1, "list bin %zu",
                     n);
        else
            TV_CHECK(b.len == 11 + n && b.data[0] == 0xd0 && b.data[8] == 1, "list bin %zu", n);
    }
    /* map of n/2 null=null pairs */
    for (size_t n = 252; n <= 258; n += 2) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_map_begin(&e);
        for (size_t i = 0; i < n; i++)
            lep_encode_null(&e);
        lep_encode_map_end(&e);
        assert_int_equal(lep_encoder_error(&e), 0);
        TV_CHECK(b.data[0] == (n <= 254 ? 0xc1 : 0xd1), "map of %zu", n);
        lep_value_t *v;
        assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
        assert_int_equal(v->nchildren, n);
        lep_value_free(v);
    }
    /* array of n ubytes: size = 1 (count) + 1 (ctor) + n; array8 up to 253 */
    for (size_t n = 250; n <= 258; n++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_array_begin(&e, LEP_TYPE_UBYTE);
        for (size_t i = 0; i < n; i++)
            lep_encode_ubyte(&e, (uint8_t)i);
        lep_encode_array_end(&e);
        assert_int_equal(lep_encoder_error(&e), 0);
        if (n <= 253)
            TV_CHECK(b.len == 4 + n && b.data[0] == 0xe0 && b.data[1] == n + 2 && b.data[2] == n &&
                         b.data[3] == 0x50 && b.data[4] == 0 && b.data[3 + n] == (uint8_t)(n - 1),
                     "array of %zu", n);
        else
            TV_CHECK(b.len == 10 + n && b.data[0] == 0xf0 && b.data[9] == 0x50 && b.data[8] == (uint8_t)n,
                     "array of %zu", n);
    }
    /* zero-width elements: the count alone decides */
    for (size_t n = 254; n <= 257; n++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_array_begin(&e, LEP_TYPE_UINT);
        for (size_t i = 0; i < n; i++)
            lep_encode_uint(&e, 0);
        lep_encode_array_end(&e);
        assert_int_equal(lep_encoder_error(&e), 0);
        if (n <= 255)
            TV_CHECK(b.len == 4 && b.data[0] == 0xe0 && b.data[1] == 2 && b.data[2] == n && b.data[3] == 0x43,
                     "uint0 array of %zu", n);
        else
            TV_CHECK(b.len == 10 && b.data[0] == 0xf0 && b.data[4] == 5 && b.data[7] == (uint8_t)(n >> 8) &&
                         b.data[8] == (uint8_t)n && b.data[9] == 0x43,
                     "uint0 array of %zu", n);
    }
    lep_buf_fini(&b);
}

/* ------------------------------------------------------------------ */
/* Arrays of every element type.                                        */

static lep_buf_t ab;
static lep_encoder_t ae;

static void
arr_begin(lep_type_t t)
{
    lep_buf_clear(&ab);
    lep_encoder_init(&ae, &ab);
    lep_encode_array_begin(&ae, t);
}

/* Ends the array, checks the bytes and that it decodes to count elements
 * of type t. */
static void
arr_check(const char *what, lep_type_t t, const uint8_t *want, size_t n)
{
    lep_encode_array_end(&ae);
    TV_RC(lep_encoder_error(&ae), 0, "%s", what);
    expect_out(&ab, want, n, what);
    lep_value_t *v;
    lep_reader_t r, c;
    uint32_t count;
    lep_type_t et;
    TV_RC(lep_value_decode(ab.data, ab.len, false, &v, NULL), 0, "%s: decode", what);
    lep_reader_init(&r, ab.data, ab.len);
    TV_RC(lep_read_array(&r, &c, &count, &et), 0, "%s: read_array", what);
    TV_CHECK(et == t, "%s: element type %d", what, (int)et);
    TV_CHECK(count == v->nchildren, "%s: count", what);
    for (uint32_t i = 0; i < v->nchildren; i++)
        TV_CHECK(v->children[i].atom.type == t, "%s: element %u type", what, i);
    lep_value_free(v);
}

#define ARR(what, t, ...)                                                         \
    do {                                                                          \
        static const uint8_t want_[] = {__VA_ARGS__};                            \
        arr_check((what), (t), want_, sizeof want_);                              \
    } while (0)

static void
test_arrays_every_type(void **state)
{
    (void)state;
    static const uint8_t u16[16] = {U8X16};
    lep_buf_init(&ab);

    arr_begin(LEP_TYPE_BOOL);
    lep_encode_bool(&ae, true), lep_encode_bool(&ae, false), lep_encode_bool(&ae, true);
    ARR("bool mixed", LEP_TYPE_BOOL, 0xe0, 0x05, 0x03, 0x56, 0x01, 0x00, 0x01);
    arr_begin(LEP_TYPE_BOOL);
    lep_encode_bool(&ae, true), lep_encode_bool(&ae, true);
    ARR("bool all true", LEP_TYPE_BOOL, 0xe0, 0x02, 0x02, 0x41);
    arr_begin(LEP_TYPE_BOOL);
    lep_encode_bool(&ae, false);
    ARR("bool all false", LEP_TYPE_BOOL, 0xe0, 0x02, 0x01, 0x42);
    arr_begin(LEP_TYPE_NULL);
    lep_encode_null(&ae), lep_encode_null(&ae);
    ARR("null", LEP_TYPE_NULL, 0xe0, 0x02, 0x02, 0x40);
    arr_begin(LEP_TYPE_UBYTE);
    lep_encode_ubyte(&ae, 1), lep_encode_ubyte(&ae, 255);
    ARR("ubyte", LEP_TYPE_UBYTE, 0xe0, 0x04, 0x02, 0x50, 0x01, 0xff);
    arr_begin(LEP_TYPE_USHORT);
    lep_encode_ushort(&ae, 0x1234);
    ARR("ushort", LEP_TYPE_USHORT, 0xe0, 0x04, 0x01, 0x60, 0x12, 0x34);
    arr_begin(LEP_TYPE_UINT);
    lep_encode_uint(&ae, 0), lep_encode_uint(&ae, 0), lep_encode_uint(&ae, 0);
    ARR("uint zeros", LEP_TYPE_UINT, 0xe0, 0x02, 0x03, 0x43);
    arr_begin(LEP_TYPE_UINT);
    lep_encode_uint(&ae, 1), lep_encode_uint(&ae, 0), lep_encode_uint(&ae, 255);
    ARR("uint small", LEP_TYPE_UINT, 0xe0, 0x05, 0x03, 0x52, 0x01, 0x00, 0xff);
    arr_begin(LEP_TYPE_UINT);
    lep_encode_uint(&ae, 1), lep_encode_uint(&ae, 256);
    ARR("uint mixed", LEP_TYPE_UINT, 0xe0, 0x0a, 0x02, 0x70, 0, 0, 0, 0x01, 0, 0, 0x01, 0x00);
    arr_begin(LEP_TYPE_ULONG);
    lep_encode_ulong(&ae, 0), lep_encode_ulong(&ae, 0);
    ARR("ulong zeros", LEP_TYPE_ULONG, 0xe0, 0x02, 0x02, 0x44);
    arr_begin(LEP_TYPE_ULONG);
    lep_encode_ulong(&ae, 0), lep_encode_ulong(&ae, 16);
    ARR("ulong small", LEP_TYPE_ULONG, 0xe0, 0x04, 0x02, 0x53, 0x00, 0x10);
    arr_begin(LEP_TYPE_ULONG);
    lep_encode_ulong(&ae, 0x100);
    ARR("ulong", LEP_TYPE_ULONG, 0xe0, 0x0a, 0x01, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x00);
    arr_begin(LEP_TYPE_BYTE);
    lep_encode_byte(&ae, -1);
    ARR("byte", LEP_TYPE_BYTE, 0xe0, 0x03, 0x01, 0x51, 0xff);
    arr_begin(LEP_TYPE_SHORT);
    lep_encode_short(&ae, -2);
    ARR("short", LEP_TYPE_SHORT, 0xe0, 0x04, 0x01, 0x61, 0xff, 0xfe);
    arr_begin(LEP_TYPE_INT);
    lep_encode_int(&ae, -128), lep_encode_int(&ae, 127);
    ARR("int small", LEP_TYPE_INT, 0xe0, 0x04, 0x02, 0x54, 0x80, 0x7f);
    arr_begin(LEP_TYPE_INT);
    lep_encode_int(&ae, -1), lep_encode_int(&ae, 128);
    ARR("int", LEP_TYPE_INT, 0xe0, 0x0a, 0x02, 0x71, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80);
    arr_begin(LEP_TYPE_LONG);
    lep_encode_long(&ae, -1), lep_encode_long(&ae, 1);
    ARR("long small", LEP_TYPE_LONG, 0xe0, 0x04, 0x02, 0x55, 0xff, 0x01);
    arr_begin(LEP_TYPE_LONG);
    lep_encode_long(&ae, -129);
    ARR("long", LEP_TYPE_LONG, 0xe0, 0x0a, 0x01, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f);
    arr_begin(LEP_TYPE_FLOAT);
    lep_encode_float(&ae, 1.5f);
    ARR("float", LEP_TYPE_FLOAT, 0xe0, 0x06, 0x01, 0x72, 0x3f, 0xc0, 0, 0);
    arr_begin(LEP_TYPE_DOUBLE);
    lep_encode_double(&ae, 1.0);
    ARR("double", LEP_TYPE_DOUBLE, 0xe0, 0x0a, 0x01, 0x82, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);
    arr_begin(LEP_TYPE_DECIMAL32);
    lep_encode_decimal32(&ae, u16);
    ARR("decimal32", LEP_TYPE_DECIMAL32, 0xe0, 0x06, 0x01, 0x74, 0x00, 0x11, 0x22, 0x33);
    arr_begin(LEP_TYPE_DECIMAL64);
    lep_encode_decimal64(&ae, u16);
    ARR("decimal64", LEP_TYPE_DECIMAL64, 0xe0, 0x0a, 0x01, 0x84, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
        0x77);
    arr_begin(LEP_TYPE_DECIMAL128);
    lep_encode_decimal128(&ae, u16);
    ARR("decimal128", LEP_TYPE_DECIMAL128, 0xe0, 0x12, 0x01, 0x94, U8X16);
    arr_begin(LEP_TYPE_CHAR);
    lep_encode_char(&ae, 'A'), lep_encode_char(&ae, 0x1f600);
    ARR("char", LEP_TYPE_CHAR, 0xe0, 0x0a, 0x02, 0x73, 0, 0, 0, 0x41, 0, 0x01, 0xf6, 0x00);
    arr_begin(LEP_TYPE_TIMESTAMP);
    lep_encode_timestamp(&ae, 1);
    ARR("timestamp", LEP_TYPE_TIMESTAMP, 0xe0, 0x0a, 0x01, 0x83, 0, 0, 0, 0, 0, 0, 0, 0x01);
    arr_begin(LEP_TYPE_UUID);
    lep_encode_uuid(&ae, u16);
    ARR("uuid", LEP_TYPE_UUID, 0xe0, 0x12, 0x01, 0x98, U8X16);
    arr_begin(LEP_TYPE_BINARY);
    lep_encode_binary(&ae, "\x01\x02", 2), lep_encode_binary(&ae, "", 0);
    ARR("binary", LEP_TYPE_BINARY, 0xe0, 0x06, 0x02, 0xa0, 0x02, 0x01, 0x02, 0x00);
    arr_begin(LEP_TYPE_STRING);
    lep_encode_cstring(&ae, "x"), lep_encode_cstring(&ae, "yz");
    ARR("string", LEP_TYPE_STRING, 0xe0, 0x07, 0x02, 0xa1, 0x01, 'x', 0x02, 'y', 'z');
    arr_begin(LEP_TYPE_SYMBOL);
    lep_encode_csymbol(&ae, "abc"), lep_encode_csymbol(&ae, "de");
    ARR("symbol", LEP_TYPE_SYMBOL, 0xe0, 0x09, 0x02, 0xa3, 0x03, 'a', 'b', 'c', 0x02, 'd', 'e');
    arr_begin(LEP_TYPE_LIST);
    lep_encode_list_begin(&ae), lep_encode_bool(&ae, true), lep_encode_list_end(&ae);
    lep_encode_list_begin(&ae), lep_encode_list_end(&ae);
    ARR("list", LEP_TYPE_LIST, 0xe0, 0x07, 0x02, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00);
    arr_begin(LEP_TYPE_LIST);
    lep_encode_list_begin(&ae), lep_encode_list_end(&ae);
    lep_encode_list_begin(&ae), lep_encode_list_end(&ae);
    ARR("list all empty", LEP_TYPE_LIST, 0xe0, 0x02, 0x02, 0x45);
    arr_begin(LEP_TYPE_MAP);
    lep_encode_map_begin(&ae), lep_encode_csymbol(&ae, "k"), lep_encode_uint(&ae, 5), lep_encode_map_end(&ae);
    ARR("map", LEP_TYPE_MAP, 0xe0, 0x09, 0x01, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05);
    arr_begin(LEP_TYPE_MAP);
    lep_encode_map_begin(&ae), lep_encode_map_end(&ae);
    ARR("empty map", LEP_TYPE_MAP, 0xe0, 0x04, 0x01, 0xc1, 0x01, 0x00);
    arr_begin(LEP_TYPE_ARRAY);
    lep_encode_array_begin(&ae, LEP_TYPE_UINT), lep_encode_uint(&ae, 1), lep_encode_uint(&ae, 2);
    lep_encode_array_end(&ae);
    lep_encode_array_begin(&ae, LEP_TYPE_UINT), lep_encode_uint(&ae, 3), lep_encode_array_end(&ae);
    ARR("array of arrays", LEP_TYPE_ARRAY, 0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01,
        0x52, 0x03);
    /* inner arrays each narrow on their own */
    arr_begin(LEP_TYPE_ARRAY);
    lep_encode_array_begin(&ae, LEP_TYPE_UINT), lep_encode_uint(&ae, 0), lep_encode_array_end(&ae);
    lep_encode_array_begin(&ae, LEP_TYPE_UINT), lep_encode_uint(&ae, 1000), lep_encode_array_end(&ae);
    lep_encode_array_begin(&ae, LEP_TYPE_SYMBOL), lep_encode_csymbol(&ae, "s"), lep_encode_array_end(&ae);
    ARR("array of mixed arrays", LEP_TYPE_ARRAY, 0xe0, 0x11, 0x03, 0xe0, 0x02, 0x01, 0x43, 0x06, 0x01, 0x70, 0,
        0, 0x03, 0xe8, 0x04, 0x01, 0xa3, 0x01, 's');
    /* array of lists whose elements are arrays and maps */
    arr_begin(LEP_TYPE_LIST);
    lep_encode_list_begin(&ae);
    lep_encode_array_begin(&ae, LEP_TYPE_ULONG), lep_encode_ulong(&ae, 7), lep_encode_array_end(&ae);
    lep_encode_map_begin(&ae), lep_encode_null(&ae), lep_encode_list_begin(&ae), lep_encode_list_end(&ae);
    lep_encode_map_end(&ae);
    lep_encode_list_end(&ae);
    ARR("list of array and map", LEP_TYPE_LIST, 0xe0, 0x0e, 0x01, 0xc0, 0x0b, 0x02, 0xe0, 0x03, 0x01, 0x53,
        0x07, 0xc1, 0x03, 0x02, 0x40, 0x45);
    lep_buf_fini(&ab);
}

/* An empty array keeps its element type: the element code is the type's
 * (narrowing has nothing to go by), never another type's code. */
static void
test_empty_arrays(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);
    for (int t = LEP_TYPE_NULL; t < LEP_TYPE_DESCRIBED; t++) {
        lep_reader_t r, c;
        uint32_t count = 99;
        lep_type_t et;
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_array_begin(&e, (lep_type_t)t);
        lep_encode_array_end(&e);
        TV_RC(lep_encoder_error(&e), 0, "empty array of %s", lep_type_name((lep_type_t)t));
        TV_CHECK(b.len == 4 && b.data[0] == 0xe0 && b.data[1] == 0x02 && b.data[2] == 0,
                 "empty array of %s: %zu bytes", lep_type_name((lep_type_t)t), b.len);
        TV_CHECK(lep_type_of_code(b.data[3]) == t, "empty array of %s: element code 0x%02x is a %s",
                 lep_type_name((lep_type_t)t), b.data[3],
                 lep_type_of_code(b.data[3]) >= 0 ? lep_type_name((lep_type_t)lep_type_of_code(b.data[3])) : "?");
        lep_reader_init(&r, b.data, b.len);
        TV_RC(lep_read_array(&r, &c, &count, &et), 0, "empty array of %s: read", lep_type_name((lep_type_t)t));
        TV_CHECK(count == 0 && et == (lep_type_t)t, "empty array of %s: read back", lep_type_name((lep_type_t)t));
    }
    lep_buf_fini(&b);
}

/* Zero-width element codes (uint0, ulong0, true, false, list0) let a few
 * bytes claim many elements; whatever the encoder writes, the decoder
 * must read back. */
static void
test_zero_width_arrays_read_back(void **state)
{
    (void)state;
    static const uint32_t counts[] = {255, 256, 65535, 65536, 65537, 100000};
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++)
        for (int kind = 0; kind < 5; kind++) {
            static const lep_type_t types[] = {LEP_TYPE_UINT, LEP_TYPE_ULONG, LEP_TYPE_BOOL, LEP_TYPE_BOOL,
                                               LEP_TYPE_LIST};
            lep_buf_clear(&b);
            lep_encoder_init(&e, &b);
            lep_encode_array_begin(&e, types[kind]);
            for (uint32_t i = 0; i < counts[k]; i++) {
                switch (kind) {
                case 0: lep_encode_uint(&e, 0); break;
                case 1: lep_encode_ulong(&e, 0); break;
                case 2: lep_encode_bool(&e, true); break;
                case 3: lep_encode_bool(&e, false); break;
                default: lep_encode_list_begin(&e), lep_encode_list_end(&e); break;
                }
            }
            lep_encode_array_end(&e);
            TV_RC(lep_encoder_error(&e), 0, "%u zero-width %s", counts[k], lep_type_name(types[kind]));
            lep_value_t *v = NULL;
            TV_RC(lep_value_decode(b.data, b.len, false, &v, NULL), 0, "%u elements of %s (code 0x%02x) read back",
                  counts[k], lep_type_name(types[kind]), b.data[b.data[0] == 0xe0 ? 3 : 9]);
            TV_CHECK(v->nchildren == counts[k], "%u elements", counts[k]);
            lep_value_free(v);
        }
    lep_buf_fini(&b);
}

/* One big element forces the 32-bit form on all its siblings. */
static void
test_arrays_wide_elements(void **state)
{
    (void)state;
    static char big[300];
    memset(big, 'b', sizeof big);
    lep_buf_t b;
    lep_encoder_t e;
    lep_value_t *v;
    lep_buf_init(&b);

    /* strings: one of 300 bytes, all str32 */
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_STRING);
    lep_encode_cstring(&e, "a");
    lep_encode_string(&e, big, sizeof big);
    lep_encode_cstring(&e, "");
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    assert_int_equal(b.data[0], 0xe0 + 0x10);
    assert_int_equal(b.data[9], 0xb1);
    assert_int_equal(b.len, 10 + 5 + 304 + 4);
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    assert_int_equal(v->nchildren, 3);
    assert_true(lep_bytes_eq_str(v->children[0].atom.u.bytes, "a"));
    assert_int_equal(v->children[1].atom.u.bytes.len, 300);
    assert_int_equal(v->children[2].atom.u.bytes.len, 0);
    lep_value_free(v);

    /* lists: one big list, all list32 */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_LIST);
    lep_encode_list_begin(&e), lep_encode_uint(&e, 1), lep_encode_list_end(&e);
    lep_encode_list_begin(&e), lep_encode_string(&e, big, sizeof big), lep_encode_list_end(&e);
    lep_encode_list_begin(&e), lep_encode_list_end(&e);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    assert_int_equal(b.data[0], 0xf0);
    assert_int_equal(b.data[9], 0xd0);
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    assert_int_equal(v->nchildren, 3);
    assert_int_equal(v->children[0].nchildren, 1);
    assert_int_equal(v->children[0].children[0].atom.u.u, 1);
    assert_int_equal(v->children[1].children[0].atom.u.bytes.len, 300);
    assert_int_equal(v->children[2].nchildren, 0);
    lep_value_free(v);

    /* arrays: one big inner array, all array32 */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_ARRAY);
    lep_encode_array_begin(&e, LEP_TYPE_UBYTE), lep_encode_ubyte(&e, 9), lep_encode_array_end(&e);
    lep_encode_array_begin(&e, LEP_TYPE_UINT);
    for (int i = 0; i < 100; i++)
        lep_encode_uint(&e, 100000u + (uint32_t)i);
    lep_encode_array_end(&e);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    assert_int_equal(b.data[0], 0xf0);
    assert_int_equal(b.data[9], 0xf0);
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    assert_int_equal(v->nchildren, 2);
    assert_int_equal(v->children[0].nchildren, 1);
    assert_int_equal(v->children[0].children[0].atom.u.u, 9);
    assert_int_equal(v->children[1].nchildren, 100);
    assert_int_equal(v->children[1].children[99].atom.u.u, 100099);
    lep_value_free(v);

    /* maps: a big one */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_MAP);
    lep_encode_map_begin(&e), lep_encode_map_end(&e);
    lep_encode_map_begin(&e), lep_encode_csymbol(&e, "k"), lep_encode_binary(&e, big, 260),
        lep_encode_map_end(&e);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    assert_int_equal(b.data[0], 0xf0);
    assert_int_equal(b.data[9], 0xd1);
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    assert_int_equal(v->children[1].children[1].atom.u.bytes.len, 260);
    lep_value_free(v);
    lep_buf_fini(&b);
}

static void
test_arrays_described(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

    lep_encoder_init(&e, &b);
    lep_encode_array_begin_described(&e, 0x11, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(&e, "a"), lep_encode_csymbol(&e, "b");
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "described symbols", 0xe0, 0x09, 0x02, 0x00, 0x53, 0x11, 0xa3, 0x01, 'a', 0x01, 'b');

    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin_described(&e, 0, LEP_TYPE_UINT);
    lep_encode_uint(&e, 0);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "described uint0", 0xe0, 0x04, 0x01, 0x00, 0x44, 0x43);

    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin_described(&e, 0x0000013700000001ull, LEP_TYPE_LIST);
    lep_encode_list_begin(&e), lep_encode_null(&e), lep_encode_list_end(&e);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "described lists", 0xe0, 0x0f, 0x01, 0x00, 0x80, 0, 0, 0x01, 0x37, 0, 0, 0, 0x01, 0xc0,
               0x02, 0x01, 0x40);

    static const uint8_t symdesc[] = {0xa3, 0x03, 'x', ':', 'y'};
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin_described_raw(&e, LEP_BYTES(symdesc, sizeof symdesc), LEP_TYPE_INT);
    lep_encode_int(&e, 1), lep_encode_int(&e, -1);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "symbol-described ints", 0xe0, 0x0a, 0x02, 0x00, 0xa3, 0x03, 'x', ':', 'y', 0x54, 0x01,
               0xff);

    /* the decoded tree: an array of described values */
    lep_value_t *v;
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    assert_int_equal(v->atom.type, LEP_TYPE_ARRAY);
    assert_int_equal(v->nchildren, 2);
    for (int i = 0; i < 2; i++) {
        const lep_value_t *d = &v->children[i];
        assert_int_equal(d->atom.type, LEP_TYPE_DESCRIBED);
        assert_int_equal(d->nchildren, 2);
        assert_int_equal(d->children[0].atom.type, LEP_TYPE_SYMBOL);
        assert_true(lep_bytes_eq_str(d->children[0].atom.u.bytes, "x:y"));
        assert_int_equal(d->children[1].atom.type, LEP_TYPE_INT);
        assert_int_equal(d->children[1].atom.u.i, i ? -1 : 1);
    }
    /* and it re-encodes to the same bytes */
    lep_buf_t b2;
    lep_buf_init(&b2);
    lep_encoder_init(&e, &b2);
    lep_value_encode(&e, v);
    assert_int_equal(lep_encoder_error(&e), 0);
    expect_out(&b2, b.data, b.len, "described array re-encoded");
    lep_value_free(v);
    lep_buf_fini(&b2);

    /* a descriptor that is not one value is refused */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin_described_raw(&e, LEP_BYTES("\x53", 1), LEP_TYPE_INT);
    assert_int_not_equal(lep_encoder_error(&e), 0);
    lep_buf_fini(&b);
}

/* ------------------------------------------------------------------ */
/* Errors.                                                              */

static void
test_sticky_errors(void **state)
{
    (void)state;
    uint8_t mem[8];
    lep_buf_t b;
    lep_encoder_t e;

    lep_buf_init_fixed(&b, mem, sizeof mem);
    lep_encoder_init(&e, &b);
    lep_encode_uint(&e, 300);         /* 5 bytes */
    lep_encode_cstring(&e, "hello"); /* 7: overflows */
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_OVERFLOW);
    size_t len = b.len;
    assert_true(len <= sizeof mem);
    lep_encode_null(&e); /* would fit, but the encoder has failed */
    lep_encode_uint(&e, 1);
    lep_encode_list_begin(&e);
    lep_encode_list_end(&e);
    lep_encode_cstring(&e, "\xff"); /* a different error later is not reported */
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, len);

    /* a state error first, then an overflow: the first one stays */
    uint8_t mem2[4];
    lep_buf_init_fixed(&b, mem2, sizeof mem2);
    lep_encoder_init(&e, &b);
    lep_encode_list_end(&e);
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_STATE);
    lep_encode_cstring(&e, "too long for four bytes");
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_STATE);
    assert_int_equal(b.len, 0);

    /* invalid UTF-8 and non-ASCII symbols write nothing */
    lep_buf_t g;
    lep_buf_init(&g);
    lep_encoder_init(&e, &g);
    lep_encode_string(&e, "\xed\xa0\x80", 3);
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_UTF8);
    assert_int_equal(g.len, 0);
    lep_encoder_init(&e, &g);
    lep_encode_symbol(&e, "caf\xc3\xa9", 5);
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_SYMBOL);
    assert_int_equal(g.len, 0);
    lep_encoder_init(&e, &g);
    lep_encode_descriptor_symbol(&e, "\x80");
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_SYMBOL);
    /* chars beyond Unicode and surrogates are refused */
    lep_buf_clear(&g);
    lep_encoder_init(&e, &g);
    lep_encode_char(&e, 0x110000);
    assert_int_not_equal(lep_encoder_error(&e), 0);
    assert_int_equal(g.len, 0);
    lep_encoder_init(&e, &g);
    lep_encode_char(&e, 0xdc00);
    assert_int_not_equal(lep_encoder_error(&e), 0);
    assert_int_equal(g.len, 0);
    lep_buf_fini(&g);
}

static void
test_state_errors(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

#define STATE_CASE(what, want, ...)                                               \
    do {                                                                          \
        lep_buf_clear(&b);                                                        \
        lep_encoder_init(&e, &b);                                                 \
        __VA_ARGS__;                                                              \
        TV_RC(lep_encoder_error(&e), want, "%s", what);                           \
    } while (0)

    STATE_CASE("list_end without begin", LEP_ERR_STATE, lep_encode_list_end(&e));
    STATE_CASE("map_end without begin", LEP_ERR_STATE, lep_encode_map_end(&e));
    STATE_CASE("array_end without begin", LEP_ERR_STATE, lep_encode_array_end(&e));
    STATE_CASE("list closed by map_end", LEP_ERR_STATE, lep_encode_list_begin(&e); lep_encode_map_end(&e));
    STATE_CASE("map closed by list_end", LEP_ERR_STATE, lep_encode_map_begin(&e); lep_encode_list_end(&e));
    STATE_CASE("array closed by list_end", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_UINT);
               lep_encode_list_end(&e));
    STATE_CASE("list closed by array_end", LEP_ERR_STATE, lep_encode_list_begin(&e); lep_encode_array_end(&e));
    STATE_CASE("one end too many", LEP_ERR_STATE, lep_encode_list_begin(&e); lep_encode_list_end(&e);
               lep_encode_list_end(&e));
    STATE_CASE("map with a key and no value", LEP_ERR_STATE, lep_encode_map_begin(&e); lep_encode_null(&e);
               lep_encode_map_end(&e));
    STATE_CASE("descriptor without value at list end", LEP_ERR_STATE, lep_encode_list_begin(&e);
               lep_encode_descriptor(&e, 1); lep_encode_list_end(&e));
    STATE_CASE("wrong element type", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_UINT);
               lep_encode_cstring(&e, "x"));
    STATE_CASE("ulong in uint array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_UINT);
               lep_encode_uint(&e, 1); lep_encode_ulong(&e, 1));
    STATE_CASE("null in array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_STRING);
               lep_encode_null(&e));
    STATE_CASE("list in map array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_MAP);
               lep_encode_list_begin(&e));
    STATE_CASE("array in list array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_LIST);
               lep_encode_array_begin(&e, LEP_TYPE_UINT));
    STATE_CASE("descriptor in array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_UINT);
               lep_encode_descriptor(&e, 1));
    STATE_CASE("descriptor in described array", LEP_ERR_STATE,
               lep_encode_array_begin_described(&e, 1, LEP_TYPE_UINT); lep_encode_descriptor(&e, 1));
    STATE_CASE("raw in array", LEP_ERR_STATE, lep_encode_array_begin(&e, LEP_TYPE_UINT);
               lep_encode_raw(&e, "\x52\x01", 2));
    STATE_CASE("array of described", LEP_ERR_INVALID, lep_encode_array_begin(&e, LEP_TYPE_DESCRIBED));
    /* inside an array element, elements of the element's own kind are fine */
    STATE_CASE("map inside list array", 0, lep_encode_array_begin(&e, LEP_TYPE_LIST);
               lep_encode_list_begin(&e); lep_encode_map_begin(&e); lep_encode_null(&e); lep_encode_null(&e);
               lep_encode_map_end(&e); lep_encode_descriptor(&e, 3); lep_encode_null(&e);
               lep_encode_list_end(&e); lep_encode_array_end(&e));
#undef STATE_CASE
    lep_buf_fini(&b);
}

static void
test_depth_limit(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

    for (int kind = 0; kind < 3; kind++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        for (int i = 0; i < LEP_CODEC_MAX_DEPTH; i++) {
            if (kind == 0)
                lep_encode_list_begin(&e);
            else if (kind == 1)
                lep_encode_map_begin(&e), lep_encode_null(&e);
            else
                lep_encode_array_begin(&e, LEP_TYPE_ARRAY);
        }
        TV_RC(lep_encoder_error(&e), 0, "kind %d at the limit", kind);
        lep_encoder_t deeper = e;
        lep_buf_t bcopy;
        lep_buf_init(&bcopy);
        assert_int_equal(lep_buf_append(&bcopy, b.data, b.len), 0);
        deeper.out = &bcopy;
        if (kind == 1)
            lep_encode_null(&e); /* the innermost map's value */
        for (int i = 0; i < LEP_CODEC_MAX_DEPTH; i++) {
            if (kind == 0)
                lep_encode_list_end(&e);
            else if (kind == 1)
                lep_encode_map_end(&e);
            else
                lep_encode_array_end(&e);
        }
        TV_RC(lep_encoder_error(&e), 0, "kind %d closing", kind);
        lep_value_t *v;
        TV_RC(lep_value_decode(b.data, b.len, false, &v, NULL), 0, "kind %d decode at the limit", kind);
        lep_value_free(v);

        /* one more level */
        if (kind == 0)
            lep_encode_list_begin(&deeper);
        else if (kind == 1)
            lep_encode_map_begin(&deeper);
        else
            lep_encode_array_begin(&deeper, LEP_TYPE_UINT);
        TV_RC(lep_encoder_error(&deeper), LEP_ERR_LIMIT, "kind %d beyond the limit", kind);
        lep_buf_fini(&bcopy);
    }
    lep_buf_fini(&b);
}

/* Described values nest too: the encoder refuses what the decoder would
 * refuse, chains of descriptors alone or mixed with compounds. */
static void
test_described_depth_limit(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);
    for (int lists = 0; lists <= 32; lists += 32)
        for (int n = LEP_CODEC_MAX_DEPTH - lists - 1; n <= LEP_CODEC_MAX_DEPTH - lists + 1; n++) {
            lep_buf_clear(&b);
            lep_encoder_init(&e, &b);
            for (int i = 0; i < lists; i++)
                lep_encode_list_begin(&e);
            for (int i = 0; i < n; i++)
                lep_encode_descriptor(&e, 1);
            lep_encode_null(&e);
            for (int i = 0; i < lists; i++)
                lep_encode_list_end(&e);
            bool within = lists + n <= LEP_CODEC_MAX_DEPTH;
            int rc = lep_encoder_error(&e);
            lep_value_t *v = NULL;
            int drc = rc ? rc : lep_value_decode(b.data, b.len, false, &v, NULL);
            lep_value_free(v);
            TV_RC(drc, within ? 0 : LEP_ERR_LIMIT, "%d lists and %d descriptors: decode", lists, n);
            TV_RC(rc, within ? 0 : LEP_ERR_LIMIT, "%d lists and %d descriptors: encode", lists, n);
        }
    lep_buf_fini(&b);
}

/* ------------------------------------------------------------------ */
/* Fixed buffers at every capacity.                                     */

static void
encode_sample(lep_encoder_t *e)
{
    static uint8_t blob[300];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)i;
    lep_encode_descriptor(e, 0x14);
    lep_encode_list_begin(e);
    lep_encode_uint(e, 300);
    lep_encode_cstring(e, "hello");
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "k");
    lep_encode_array_begin(e, LEP_TYPE_UINT);
    lep_encode_uint(e, 1), lep_encode_uint(e, 2), lep_encode_uint(e, 300);
    lep_encode_array_end(e);
    lep_encode_ulong(e, 7);
    lep_encode_list_begin(e);
    lep_encode_list_end(e);
    lep_encode_map_end(e);
    lep_encode_descriptor(e, 0x70);
    lep_encode_list_begin(e);
    lep_encode_bool(e, true), lep_encode_null(e);
    lep_encode_list_end(e);
    lep_encode_array_begin(e, LEP_TYPE_LIST);
    lep_encode_list_begin(e), lep_encode_uint(e, 1), lep_encode_list_end(e);
    lep_encode_list_begin(e), lep_encode_uint(e, 2), lep_encode_uint(e, 3), lep_encode_list_end(e);
    lep_encode_array_end(e);
    lep_encode_array_begin(e, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(e, "x"), lep_encode_csymbol(e, "yy");
    lep_encode_array_end(e);
    lep_encode_binary(e, blob, sizeof blob);
    lep_encode_list_end(e);
    lep_encode_null(e);
    lep_encode_list_begin(e);
    lep_encode_cstring(e, "short");
    lep_encode_list_end(e);
}

static void
test_fixed_every_capacity(void **state)
{
    (void)state;
    lep_buf_t g;
    lep_encoder_t e;
    lep_buf_init(&g);
    lep_encoder_init(&e, &g);
    encode_sample(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    size_t n = g.len;

    enum { SLACK = 64 };
    uint8_t *mem = malloc(n + 2 * SLACK);
    assert_non_null(mem);
    size_t threshold = 0;
    for (size_t cap = 0; cap <= n + SLACK; cap++) {
        lep_buf_t b;
        memset(mem, 0xaa, n + 2 * SLACK);
        lep_buf_init_fixed(&b, mem, cap);
        lep_encoder_init(&e, &b);
        encode_sample(&e);
        int rc = lep_encoder_error(&e);
        for (size_t i = cap; i < n + 2 * SLACK; i++)
            TV_CHECK(mem[i] == 0xaa, "capacity %zu: byte %zu written", cap, i);
        TV_CHECK(b.len <= cap, "capacity %zu: len %zu", cap, b.len);
        TV_CHECK(b.data == mem && b.cap == cap, "capacity %zu: fixed buffer replaced", cap);
        if (cap < n) {
            TV_RC(rc, LEP_ERR_OVERFLOW, "capacity %zu of %zu", cap, n);
        } else if (rc == 0) {
            if (!threshold)
                threshold = cap;
            expect_out(&b, g.data, n, "fixed buffer output");
        } else {
            TV_RC(rc, LEP_ERR_OVERFLOW, "capacity %zu of %zu", cap, n);
            TV_CHECK(threshold == 0, "capacity %zu fails after %zu succeeded", cap, threshold);
        }
    }
    /* The encoder writes compounds wide and narrows them at the end, so a
     * buffer that holds the result exactly may be refused; it must need no
     * more than the wide headers of the deepest nesting. */
    TV_CHECK(threshold != 0 && threshold <= n + 8 * 4, "fixed buffer needs %zu bytes for %zu", threshold, n);
    if (threshold != n)
        print_message("note: a fixed buffer needs %zu bytes for a %zu-byte encoding\n", threshold, n);
    free(mem);
    lep_buf_fini(&g);
}

/* ------------------------------------------------------------------ */
/* raw and atom copies                                                  */

static void
test_raw(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);

    lep_encoder_init(&e, &b);
    lep_encode_list_begin(&e);
    lep_encode_raw(&e, "\x52\x05", 2);
    lep_encode_raw(&e, "\xc0\x02\x01\x40", 4);
    lep_encode_raw(&e, "\x00\x53\x01\x45", 4);
    lep_encode_list_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "raw in list", 0xc0, 0x0b, 0x03, 0x52, 0x05, 0xc0, 0x02, 0x01, 0x40, 0x00, 0x53, 0x01, 0x45);

    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_map_begin(&e);
    lep_encode_raw(&e, "\xa3\x01k", 3);
    lep_encode_raw(&e, "\x41", 1);
    lep_encode_map_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "raw in map", 0xc1, 0x05, 0x02, 0xa3, 0x01, 'k', 0x41);

    /* the descriptor and value of a described value may come raw */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_list_begin(&e);
    lep_encode_descriptor(&e, 0x24);
    lep_encode_raw(&e, "\x45", 1);
    lep_encode_list_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    EXPECT_OUT(&b, "raw described value", 0xc0, 0x05, 0x01, 0x00, 0x53, 0x24, 0x45);

    /* not one complete value */
    static const struct {
        const char *what;
        const char *p;
        size_t n;
    } bad[] = {
        {"empty", "", 0},
        {"truncated", "\x70\x00", 2},
        {"unknown code", "\x01", 1},
        {"two values", "\x52\x05\x41", 3},
        {"value and junk", "\x40\xff", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lep_buf_clear(&b);
        lep_encoder_init(&e, &b);
        lep_encode_raw(&e, bad[i].p, bad[i].n);
        TV_RC(lep_encoder_error(&e), LEP_ERR_INVALID, "raw %s", bad[i].what);
        TV_CHECK(b.len == 0, "raw %s wrote %zu bytes", bad[i].what, b.len);
    }
    lep_buf_fini(&b);
}

/* Atoms read from arrays lack their constructor: lep_encode_atom restores
 * it outside an array, and inside an array of the same type the result
 * must be the same array again (or a clean refusal), never garbage. */
static void
test_atoms_from_arrays(void **state)
{
    (void)state;
    const uint8_t *const arrays[] = {
        (const uint8_t[]){0xe0, 0x07, 0x02, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00},
        (const uint8_t[]){0xe0, 0x09, 0x01, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05},
        (const uint8_t[]){0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01, 0x52, 0x03},
        (const uint8_t[]){0xe0, 0x09, 0x02, 0xa3, 0x03, 'a', 'b', 'c', 0x02, 'd', 'e'},
        (const uint8_t[]){0xe0, 0x05, 0x03, 0x52, 0x01, 0x00, 0xff},
        (const uint8_t[]){0xe0, 0x09, 0x02, 0x00, 0x53, 0x11, 0xa3, 0x01, 'a', 0x01, 'b'},
        (const uint8_t[]){0xf0, 0, 0, 0, 0x0e, 0, 0, 0, 0x01, 0xd0, 0, 0, 0, 0x05, 0, 0, 0, 0x01, 0x40},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        const uint8_t *in = arrays[i];
        size_t n = in[0] == 0xe0 ? (size_t)in[1] + 2 : (size_t)in[4] + 5;
        lep_reader_t r, c;
        lep_atom_t arr, a;
        lep_buf_t b;
        lep_encoder_t e;
        lep_value_t *orig, *v;

        assert_int_equal(lep_value_decode(in, n, false, &orig, NULL), 0);
        lep_reader_init(&r, in, n);
        assert_int_equal(lep_reader_next(&r, &arr), 0);

        /* each element alone, then all of them in a list */
        lep_buf_init(&b);
        lep_encoder_init(&e, &b);
        lep_encode_list_begin(&e);
        assert_int_equal(lep_reader_enter(&r, &arr, &c), 0);
        while (!lep_reader_done(&c)) {
            assert_int_equal(lep_reader_next(&c, &a), 0);
            lep_encode_atom(&e, &a);
        }
        lep_encode_list_end(&e);
        TV_RC(lep_encoder_error(&e), 0, "array %zu: elements into a list", i);
        TV_RC(lep_value_decode(b.data, b.len, false, &v, NULL), 0, "array %zu: list of elements", i);
        TV_CHECK(v->nchildren == orig->nchildren, "array %zu: element count", i);
        for (uint32_t k = 0; k < v->nchildren; k++)
            TV_CHECK(lep_value_equal(&v->children[k], &orig->children[k]), "array %zu: element %u", i, k);
        lep_value_free(v);

        /* into a new array of the element type */
        lep_type_t et = (lep_type_t)lep_type_of_code(arr.code);
        if (arr.ctor.ptr[0] != LEP_FC_DESCRIBED) {
            lep_buf_clear(&b);
            lep_encoder_init(&e, &b);
            lep_encode_array_begin(&e, et);
            assert_int_equal(lep_reader_enter(&r, &arr, &c), 0);
            while (!lep_reader_done(&c)) {
                assert_int_equal(lep_reader_next(&c, &a), 0);
                lep_encode_atom(&e, &a);
            }
            lep_encode_array_end(&e);
            int rc = lep_encoder_error(&e);
            TV_CHECK(rc == 0 || rc == LEP_ERR_STATE, "array %zu: elements into an array gave %d", i, rc);
            if (rc == 0) {
                TV_RC(lep_value_decode(b.data, b.len, false, &v, NULL), 0, "array %zu: array copy", i);
                TV_CHECK(lep_value_equal(v, orig), "array %zu: array copy differs", i);
                lep_value_free(v);
            }
        }
        lep_buf_fini(&b);
        lep_value_free(orig);
    }

    /* compound atoms of a list (list0, list8, list32) into an array of
     * lists are widened to the array's element form */
    static const uint8_t lists[] = {0xc0, 0x15, 0x04, 0xc0, 0x03, 0x01, 0x52, 0x01, 0x45, 0xd0, 0, 0, 0, 0x06,
                                    0, 0, 0, 0x02, 0x41, 0x42, 0xc0, 0x01, 0x00};
    static const uint8_t want[] = {0xe0, 0x0e, 0x04, 0xc0, 0x03, 0x01, 0x52, 0x01, 0x01, 0x00, 0x03, 0x02,
                                   0x41, 0x42, 0x01, 0x00};
    lep_reader_t r, c;
    lep_atom_t a;
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_LIST);
    lep_reader_init(&r, lists, sizeof lists);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(lep_reader_enter(&r, &a, &c), 0);
    while (!lep_reader_done(&c)) {
        assert_int_equal(lep_reader_next(&c, &a), 0);
        lep_encode_atom(&e, &a);
    }
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    expect_out(&b, want, sizeof want, "list atoms into an array of lists");
    /* and an atom of another type is refused */
    lep_buf_clear(&b);
    lep_encoder_init(&e, &b);
    lep_encode_array_begin(&e, LEP_TYPE_MAP);
    lep_reader_init(&r, lists, sizeof lists);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    lep_encode_atom(&e, &a);
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_STATE);
    lep_buf_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_vectors),
        cmocka_unit_test(test_value_and_atom_vectors),
        cmocka_unit_test(test_scalar_boundaries),
        cmocka_unit_test(test_width_boundaries),
        cmocka_unit_test(test_arrays_every_type),
        cmocka_unit_test(test_empty_arrays),
        cmocka_unit_test(test_zero_width_arrays_read_back),
        cmocka_unit_test(test_arrays_wide_elements),
        cmocka_unit_test(test_arrays_described),
        cmocka_unit_test(test_sticky_errors),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_described_depth_limit),
        cmocka_unit_test(test_fixed_every_capacity),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_atoms_from_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
