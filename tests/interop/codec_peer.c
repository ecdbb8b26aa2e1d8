/* codec_peer: lepton's side of the codec interop test against Qpid Proton
 * (tests/interop/test_codec_proton.sh drives it from proton_vectors.py).
 *
 *   codec_peer decode       stdin: one hex-encoded AMQP value per line.
 *                           stdout per line: "ok\t<typed print>\t<hex of
 *                           lepton's re-encoding>" or "err\t<why>".
 *   codec_peer build        stdout: "<name>\t<typed print>\t<hex>" for
 *                           values built in C (streaming encoder and
 *                           value builders).
 *
 * Every result is checked for internal consistency here too (copy and
 * view decodes agree, the re-encoding decodes to an equal tree, the
 * streaming printer agrees with the tree printer); a disagreement becomes
 * an "err" line so the driver counts it as a failure. */
#include <lepton/codec.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_hex.h"

static int peer_build_values(void);

/* Typed print of a tree into a NUL-terminated malloc'd string, or NULL. */
static char *
peer_typed(const lep_value_t *v)
{
    lep_buf_t b;
    lep_buf_init(&b);
    if (lep_value_print(v, &b, LEP_PRINT_TYPED) != 0 || lep_buf_append(&b, "", 1) != 0) {
        lep_buf_fini(&b);
        return NULL;
    }
    char *s = strdup((const char *)b.data);
    lep_buf_fini(&b);
    return s;
}

/* Decodes p with both copy modes, prints, re-encodes and checks the
 * round trip.  On success *typed and *reenc (lep_buf, caller finis) are
 * set; on failure returns a static reason. */
static const char *
check_value(const uint8_t *p, size_t n, char **typed, lep_buf_t *reenc)
{
    static char why[128];
    lep_value_t *view = NULL, *copy = NULL, *again = NULL;
    char *s_view = NULL, *s_copy = NULL, *s_again = NULL;
    const char *fail = NULL;
    size_t used = 0;
    int rc;

    if ((rc = lep_value_decode(p, n, false, &view, &used)) != 0) {
        snprintf(why, sizeof why, "decode: %s", lep_strerror(rc));
        return why;
    }
    if (used != n) {
        snprintf(why, sizeof why, "decode used %zu of %zu bytes", used, n);
        fail = why;
        goto out;
    }
    if ((rc = lep_value_decode(p, n, true, &copy, NULL)) != 0) {
        snprintf(why, sizeof why, "copy decode: %s", lep_strerror(rc));
        fail = why;
        goto out;
    }
    if (!lep_value_equal(view, copy)) {
        fail = "copy and view decodes differ";
        goto out;
    }
    s_view = peer_typed(view);
    s_copy = peer_typed(copy);
    if (!s_view || !s_copy) {
        fail = "print failed";
        goto out;
    }
    if (strcmp(s_view, s_copy) != 0) {
        fail = "copy and view print differently";
        goto out;
    }

    /* The streaming printer must agree with the tree printer. */
    lep_reader_t r;
    lep_buf_t sb;
    lep_reader_init(&r, p, n);
    lep_buf_init(&sb);
    rc = lep_print_encoded(&r, &sb, LEP_PRINT_TYPED);
    if (rc == 0)
        rc = lep_buf_append(&sb, "", 1);
    if (rc != 0 || strcmp((const char *)sb.data, s_view) != 0) {
        snprintf(why, sizeof why, "lep_print_encoded differs (rc %d): %.60s",
                 rc, sb.data ? (const char *)sb.data : "");
        lep_buf_fini(&sb);
        fail = why;
        goto out;
    }
    lep_buf_fini(&sb);

    lep_encoder_t e;
    lep_encoder_init(&e, reenc);
    lep_value_encode(&e, view);
    if ((rc = lep_encoder_error(&e)) != 0) {
        snprintf(why, sizeof why, "encode: %s", lep_strerror(rc));
        fail = why;
        goto out;
    }
    if ((rc = lep_value_decode(reenc->data, reenc->len, false, &again, &used)) != 0
        || used != reenc->len) {
        snprintf(why, sizeof why, "re-decode: %s (used %zu of %zu)",
                 lep_strerror(rc), used, reenc->len);
        fail = why;
        goto out;
    }
    if (!lep_value_equal(view, again)) {
        fail = "re-encoding decodes to a different value";
        goto out;
    }
    s_again = peer_typed(again);
    if (!s_again || strcmp(s_again, s_view) != 0) {
        fail = "re-encoding prints differently";
        goto out;
    }
    *typed = s_view;
    s_view = NULL;
out:
    free(s_view);
    free(s_copy);
    free(s_again);
    lep_value_free(view);
    lep_value_free(copy);
    lep_value_free(again);
    return fail;
}

/* Calls fn for each hex line of stdin. */
static int
each_line(void (*fn)(const uint8_t *p, size_t n))
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        uint8_t *bytes;
        size_t n;
        if (hex_decode(line, (size_t)got, &bytes, &n) != 0) {
            printf("err\tbad hex input\n");
            continue;
        }
        fn(bytes, n);
        free(bytes);
        fflush(stdout);
    }
    free(line);
    return 0;
}

static void
decode_one(const uint8_t *p, size_t n)
{
    char *typed = NULL;
    lep_buf_t re;
    lep_buf_init(&re);
    const char *why = check_value(p, n, &typed, &re);
    if (why) {
        printf("err\t%s\n", why);
    } else {
        printf("ok\t%s\t", typed);
        hex_print(re.data, re.len);
        putchar('\n');
    }
    free(typed);
    lep_buf_fini(&re);
}

/* Emits one C-built value: checks that lepton reads back what it wrote
 * (the tree print of the built value, when there is one, must equal the
 * print of the decoded encoding). */
static void
peer_emit_value(const char *name, const lep_buf_t *enc, int enc_err, const lep_value_t *built)
{
    if (enc_err != 0) {
        printf("%s\terr\tencoder: %s\n", name, lep_strerror(enc_err));
        return;
    }
    char *typed = NULL;
    lep_buf_t re;
    lep_buf_init(&re);
    const char *why = check_value(enc->data, enc->len, &typed, &re);
    if (!why && built) {
        char *s = peer_typed(built);
        if (!s || strcmp(s, typed) != 0)
            why = "built tree and its encoding print differently";
        free(s);
    }
    if (!why && (re.len != enc->len || memcmp(re.data, enc->data, re.len) != 0))
        why = "re-encoding of lepton's own encoding differs";
    if (why) {
        printf("%s\terr\t%s\n", name, why);
    } else {
        printf("%s\t%s\t", name, typed);
        hex_print(enc->data, enc->len);
        putchar('\n');
    }
    free(typed);
    lep_buf_fini(&re);
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: codec_peer decode|build\n");
        return 2;
    }
    if (strcmp(argv[1], "decode") == 0)
        return each_line(decode_one);
    if (strcmp(argv[1], "build") == 0)
        return peer_build_values();
    fprintf(stderr, "codec_peer: unknown mode %s\n", argv[1]);
    return 2;
}

/* ------------------------------------------------------------------ */
/* Values built in C.  proton_vectors.py holds the expected value of   */
/* each name, built independently with Proton.                         */

typedef void (*enc_fn)(lep_encoder_t *e);

static const uint8_t UUID1[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                  0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
static const uint8_t DEC32[4] = {0x22, 0x00, 0x00, 0x01};
static const uint8_t DEC64[8] = {0x22, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07};
static const uint8_t DEC128[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const char UNICODE[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9f\x98\x80";

static float
float_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static double
double_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static void
enc_pattern_bytes(lep_encoder_t *e, lep_type_t t, size_t n, unsigned mul)
{
    uint8_t buf[512];
    for (size_t i = 0; i < n; i++)
        buf[i] = t == LEP_TYPE_BINARY ? (uint8_t)(i * mul) : (uint8_t)('a' + i % 26);
    if (t == LEP_TYPE_BINARY)
        lep_encode_binary(e, buf, n);
    else if (t == LEP_TYPE_STRING)
        lep_encode_string(e, buf, n);
    else
        lep_encode_symbol(e, buf, n);
}

static void
enc_deep(lep_encoder_t *e, int levels)
{
    for (int i = 0; i < levels; i++)
        lep_encode_list_begin(e);
    lep_encode_uint(e, 7);
    for (int i = 0; i < levels; i++)
        lep_encode_list_end(e);
}

#define ENC(name, body) static void enc_##name(lep_encoder_t *e) { body; }

ENC(null, lep_encode_null(e))
ENC(true, lep_encode_bool(e, true))
ENC(false, lep_encode_bool(e, false))
ENC(ubyte_0, lep_encode_ubyte(e, 0))
ENC(ubyte_255, lep_encode_ubyte(e, 255))
ENC(ushort_0, lep_encode_ushort(e, 0))
ENC(ushort_65535, lep_encode_ushort(e, 65535))
ENC(uint_0, lep_encode_uint(e, 0))
ENC(uint_255, lep_encode_uint(e, 255))
ENC(uint_256, lep_encode_uint(e, 256))
ENC(uint_max, lep_encode_uint(e, UINT32_MAX))
ENC(ulong_0, lep_encode_ulong(e, 0))
ENC(ulong_255, lep_encode_ulong(e, 255))
ENC(ulong_256, lep_encode_ulong(e, 256))
ENC(ulong_max, lep_encode_ulong(e, UINT64_MAX))
ENC(byte_min, lep_encode_byte(e, INT8_MIN))
ENC(byte_m1, lep_encode_byte(e, -1))
ENC(byte_max, lep_encode_byte(e, INT8_MAX))
ENC(short_min, lep_encode_short(e, INT16_MIN))
ENC(short_max, lep_encode_short(e, INT16_MAX))
ENC(int_min, lep_encode_int(e, INT32_MIN))
ENC(int_m129, lep_encode_int(e, -129))
ENC(int_m128, lep_encode_int(e, -128))
ENC(int_m1, lep_encode_int(e, -1))
ENC(int_0, lep_encode_int(e, 0))
ENC(int_127, lep_encode_int(e, 127))
ENC(int_128, lep_encode_int(e, 128))
ENC(int_max, lep_encode_int(e, INT32_MAX))
ENC(long_min, lep_encode_long(e, INT64_MIN))
ENC(long_m129, lep_encode_long(e, -129))
ENC(long_m128, lep_encode_long(e, -128))
ENC(long_0, lep_encode_long(e, 0))
ENC(long_127, lep_encode_long(e, 127))
ENC(long_128, lep_encode_long(e, 128))
ENC(long_max, lep_encode_long(e, INT64_MAX))
ENC(float_1_5, lep_encode_float(e, 1.5f))
ENC(float_neg0, lep_encode_float(e, float_bits(0x80000000u)))
ENC(float_inf, lep_encode_float(e, float_bits(0x7f800000u)))
ENC(float_nan, lep_encode_float(e, float_bits(0x7fc00123u)))
ENC(float_denorm, lep_encode_float(e, float_bits(1)))
ENC(double_pi, lep_encode_double(e, 3.141592653589793))
ENC(double_neg_inf, lep_encode_double(e, double_bits(0xfff0000000000000u)))
ENC(double_nan, lep_encode_double(e, double_bits(0x7ff8000000000123u)))
ENC(double_denorm, lep_encode_double(e, double_bits(1)))
ENC(double_max, lep_encode_double(e, double_bits(0x7fefffffffffffffu)))
ENC(decimal32, lep_encode_decimal32(e, DEC32))
ENC(decimal64, lep_encode_decimal64(e, DEC64))
ENC(decimal128, lep_encode_decimal128(e, DEC128))
ENC(char_A, lep_encode_char(e, 'A'))
ENC(char_0, lep_encode_char(e, 0))
ENC(char_e9, lep_encode_char(e, 0xe9))
ENC(char_1f600, lep_encode_char(e, 0x1f600))
ENC(char_10ffff, lep_encode_char(e, 0x10ffff))
ENC(timestamp_0, lep_encode_timestamp(e, 0))
ENC(timestamp_now, lep_encode_timestamp(e, INT64_C(1700000000123)))
ENC(timestamp_neg, lep_encode_timestamp(e, -1000))
ENC(uuid, lep_encode_uuid(e, UUID1))
ENC(binary_empty, lep_encode_binary(e, "", 0))
ENC(binary_all, enc_pattern_bytes(e, LEP_TYPE_BINARY, 256, 1))
ENC(binary_255, enc_pattern_bytes(e, LEP_TYPE_BINARY, 255, 7))
ENC(binary_300, enc_pattern_bytes(e, LEP_TYPE_BINARY, 300, 7))
ENC(string_empty, lep_encode_cstring(e, ""))
ENC(string_hello, lep_encode_cstring(e, "hello"))
ENC(string_escape, lep_encode_cstring(e, "q\"b\\s\tn\n\x7f"))
ENC(string_unicode, lep_encode_cstring(e, UNICODE))
ENC(string_255, enc_pattern_bytes(e, LEP_TYPE_STRING, 255, 0))
ENC(string_300, enc_pattern_bytes(e, LEP_TYPE_STRING, 300, 0))
ENC(symbol_empty, lep_encode_csymbol(e, ""))
ENC(symbol_plain, lep_encode_csymbol(e, "amqp:accepted:list"))
ENC(symbol_odd, lep_encode_csymbol(e, "a b\"c\\"))
ENC(symbol_300, enc_pattern_bytes(e, LEP_TYPE_SYMBOL, 300, 0))
ENC(list_empty, lep_encode_list_begin(e); lep_encode_list_end(e))
ENC(list_mixed,
    lep_encode_list_begin(e); lep_encode_uint(e, 1); lep_encode_cstring(e, "a");
    lep_encode_null(e); lep_encode_bool(e, true); lep_encode_csymbol(e, "x");
    lep_encode_list_end(e))
ENC(list_nested,
    lep_encode_list_begin(e);
    lep_encode_list_begin(e); lep_encode_list_end(e);
    lep_encode_list_begin(e); lep_encode_list_begin(e); lep_encode_list_end(e); lep_encode_list_end(e);
    lep_encode_list_begin(e); lep_encode_uint(e, 1);
    lep_encode_list_begin(e); lep_encode_long(e, -1); lep_encode_list_end(e);
    lep_encode_list_end(e);
    lep_encode_list_end(e))
ENC(list_300,
    lep_encode_list_begin(e);
    for (uint32_t i = 0; i < 300; i++) lep_encode_uint(e, i);
    lep_encode_list_end(e))
ENC(list_deep, enc_deep(e, 40))
ENC(map_empty, lep_encode_map_begin(e); lep_encode_map_end(e))
ENC(map_mixed,
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "a"); lep_encode_int(e, 1);
    lep_encode_cstring(e, "b"); lep_encode_null(e);
    lep_encode_ulong(e, 7); lep_encode_list_begin(e); lep_encode_list_end(e);
    lep_encode_int(e, -1); lep_encode_map_begin(e); lep_encode_map_end(e);
    lep_encode_binary(e, "k", 1); lep_encode_bool(e, false);
    lep_encode_null(e); lep_encode_cstring(e, "n");
    lep_encode_map_end(e))
ENC(map_nested,
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "outer");
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "inner"); lep_encode_list_begin(e); lep_encode_double(e, 0.5);
    lep_encode_list_end(e);
    lep_encode_map_end(e);
    lep_encode_map_end(e))
ENC(map_300,
    lep_encode_map_begin(e);
    for (uint32_t i = 0; i < 300; i++) { lep_encode_uint(e, i); lep_encode_bool(e, i & 1); }
    lep_encode_map_end(e))
ENC(array_int_empty, lep_encode_array_begin(e, LEP_TYPE_INT); lep_encode_array_end(e))
ENC(array_int,
    lep_encode_array_begin(e, LEP_TYPE_INT);
    lep_encode_int(e, 1); lep_encode_int(e, -1); lep_encode_int(e, 1000000);
    lep_encode_array_end(e))
ENC(array_int_small,
    lep_encode_array_begin(e, LEP_TYPE_INT);
    lep_encode_int(e, 1); lep_encode_int(e, -1); lep_encode_int(e, 127);
    lep_encode_array_end(e))
ENC(array_uint_small,
    lep_encode_array_begin(e, LEP_TYPE_UINT);
    lep_encode_uint(e, 0); lep_encode_uint(e, 1); lep_encode_uint(e, 255);
    lep_encode_array_end(e))
ENC(array_uint_zero,
    lep_encode_array_begin(e, LEP_TYPE_UINT);
    lep_encode_uint(e, 0); lep_encode_uint(e, 0);
    lep_encode_array_end(e))
ENC(array_uint_big,
    lep_encode_array_begin(e, LEP_TYPE_UINT);
    lep_encode_uint(e, 0); lep_encode_uint(e, UINT32_MAX);
    lep_encode_array_end(e))
ENC(array_ulong,
    lep_encode_array_begin(e, LEP_TYPE_ULONG);
    lep_encode_ulong(e, 0); lep_encode_ulong(e, 1); lep_encode_ulong(e, UINT64_MAX);
    lep_encode_array_end(e))
ENC(array_long,
    lep_encode_array_begin(e, LEP_TYPE_LONG);
    lep_encode_long(e, -1); lep_encode_long(e, INT64_C(1) << 40);
    lep_encode_array_end(e))
ENC(array_symbol,
    lep_encode_array_begin(e, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(e, "a"); lep_encode_csymbol(e, "amqp:x");
    lep_encode_array_end(e))
ENC(array_string_long,
    lep_encode_array_begin(e, LEP_TYPE_STRING);
    enc_pattern_bytes(e, LEP_TYPE_STRING, 300, 0); lep_encode_cstring(e, "b");
    lep_encode_array_end(e))
ENC(array_bool,
    lep_encode_array_begin(e, LEP_TYPE_BOOL);
    lep_encode_bool(e, true); lep_encode_bool(e, false); lep_encode_bool(e, true);
    lep_encode_array_end(e))
ENC(array_uuid,
    lep_encode_array_begin(e, LEP_TYPE_UUID);
    lep_encode_uuid(e, UUID1); lep_encode_uuid(e, DEC128);
    lep_encode_array_end(e))
ENC(array_double,
    lep_encode_array_begin(e, LEP_TYPE_DOUBLE);
    lep_encode_double(e, 1.5); lep_encode_double(e, -0.0);
    lep_encode_array_end(e))
ENC(array_float,
    lep_encode_array_begin(e, LEP_TYPE_FLOAT);
    lep_encode_float(e, 1.5f); lep_encode_float(e, float_bits(0xff800000u));
    lep_encode_array_end(e))
ENC(array_timestamp,
    lep_encode_array_begin(e, LEP_TYPE_TIMESTAMP);
    lep_encode_timestamp(e, 0); lep_encode_timestamp(e, INT64_C(1700000000123));
    lep_encode_array_end(e))
ENC(array_char,
    lep_encode_array_begin(e, LEP_TYPE_CHAR);
    lep_encode_char(e, 'x'); lep_encode_char(e, 0x1f600);
    lep_encode_array_end(e))
ENC(array_binary,
    lep_encode_array_begin(e, LEP_TYPE_BINARY);
    lep_encode_binary(e, "", 0); lep_encode_binary(e, "\x00\xff", 2);
    lep_encode_array_end(e))
ENC(array_ubyte,
    lep_encode_array_begin(e, LEP_TYPE_UBYTE);
    lep_encode_ubyte(e, 0); lep_encode_ubyte(e, 255);
    lep_encode_array_end(e))
ENC(array_byte,
    lep_encode_array_begin(e, LEP_TYPE_BYTE);
    lep_encode_byte(e, -128); lep_encode_byte(e, 127);
    lep_encode_array_end(e))
ENC(array_ushort,
    lep_encode_array_begin(e, LEP_TYPE_USHORT);
    lep_encode_ushort(e, 1); lep_encode_ushort(e, 65535);
    lep_encode_array_end(e))
ENC(array_short,
    lep_encode_array_begin(e, LEP_TYPE_SHORT);
    lep_encode_short(e, -32768); lep_encode_short(e, 2);
    lep_encode_array_end(e))
ENC(array_decimal,
    lep_encode_list_begin(e);
    lep_encode_array_begin(e, LEP_TYPE_DECIMAL32); lep_encode_decimal32(e, DEC32); lep_encode_array_end(e);
    lep_encode_array_begin(e, LEP_TYPE_DECIMAL64); lep_encode_decimal64(e, DEC64); lep_encode_array_end(e);
    lep_encode_array_begin(e, LEP_TYPE_DECIMAL128); lep_encode_decimal128(e, DEC128); lep_encode_array_end(e);
    lep_encode_list_end(e))
ENC(array_list,
    lep_encode_array_begin(e, LEP_TYPE_LIST);
    lep_encode_list_begin(e); lep_encode_list_end(e);
    lep_encode_list_begin(e); lep_encode_uint(e, 1); lep_encode_list_end(e);
    lep_encode_array_end(e))
ENC(array_map,
    lep_encode_array_begin(e, LEP_TYPE_MAP);
    lep_encode_map_begin(e); lep_encode_map_end(e);
    lep_encode_map_begin(e); lep_encode_csymbol(e, "a"); lep_encode_int(e, 1); lep_encode_map_end(e);
    lep_encode_array_end(e))
ENC(array_array,
    lep_encode_array_begin(e, LEP_TYPE_ARRAY);
    lep_encode_array_begin(e, LEP_TYPE_INT); lep_encode_int(e, 1); lep_encode_array_end(e);
    lep_encode_array_begin(e, LEP_TYPE_INT); lep_encode_array_end(e);
    lep_encode_array_end(e))
ENC(array_described_ulong,
    lep_encode_array_begin_described(e, 0x77, LEP_TYPE_STRING);
    lep_encode_cstring(e, "a"); lep_encode_cstring(e, "b");
    lep_encode_array_end(e))
ENC(array_described_symbol,
    lep_encode_array_begin_described_raw(e, LEP_BYTES("\xa3\x03x:y", 5), LEP_TYPE_UINT);
    lep_encode_uint(e, 1); lep_encode_uint(e, 2);
    lep_encode_array_end(e))
ENC(array_described_empty,
    lep_encode_array_begin_described(e, 0x14, LEP_TYPE_LIST);
    lep_encode_array_end(e))
ENC(described_ulong_list,
    lep_encode_descriptor(e, 0x14);
    lep_encode_list_begin(e); lep_encode_uint(e, 0); lep_encode_uint(e, 5); lep_encode_list_end(e))
ENC(described_symbol_string,
    lep_encode_descriptor_symbol(e, "my:type"); lep_encode_cstring(e, "x"))
ENC(described_nested,
    lep_encode_descriptor(e, 1);
    lep_encode_descriptor_symbol(e, "a"); lep_encode_null(e))
ENC(described_big_code,
    lep_encode_descriptor(e, UINT64_MAX); lep_encode_map_begin(e); lep_encode_map_end(e))
ENC(described_array,
    lep_encode_descriptor(e, 0x70);
    lep_encode_array_begin(e, LEP_TYPE_INT); lep_encode_int(e, 1); lep_encode_array_end(e))
ENC(described_in_list,
    lep_encode_list_begin(e);
    lep_encode_descriptor(e, 0x24); lep_encode_list_begin(e); lep_encode_list_end(e);
    lep_encode_descriptor_symbol(e, "amqp:rejected:list"); lep_encode_list_begin(e);
    lep_encode_null(e); lep_encode_list_end(e);
    lep_encode_list_end(e))

#define E(name) {#name, enc_##name}
static const struct {
    const char *name;
    enc_fn fn;
} enc_vectors[] = {
    E(null), E(true), E(false), E(ubyte_0), E(ubyte_255), E(ushort_0), E(ushort_65535),
    E(uint_0), E(uint_255), E(uint_256), E(uint_max), E(ulong_0), E(ulong_255),
    E(ulong_256), E(ulong_max), E(byte_min), E(byte_m1), E(byte_max), E(short_min),
    E(short_max), E(int_min), E(int_m129), E(int_m128), E(int_m1), E(int_0), E(int_127),
    E(int_128), E(int_max), E(long_min), E(long_m129), E(long_m128), E(long_0),
    E(long_127), E(long_128), E(long_max), E(float_1_5), E(float_neg0), E(float_inf),
    E(float_nan), E(float_denorm), E(double_pi), E(double_neg_inf), E(double_nan),
    E(double_denorm), E(double_max), E(decimal32), E(decimal64), E(decimal128),
    E(char_A), E(char_0), E(char_e9), E(char_1f600), E(char_10ffff), E(timestamp_0),
    E(timestamp_now), E(timestamp_neg), E(uuid), E(binary_empty), E(binary_all),
    E(binary_255), E(binary_300), E(string_empty), E(string_hello), E(string_escape),
    E(string_unicode), E(string_255), E(string_300), E(symbol_empty), E(symbol_plain),
    E(symbol_odd), E(symbol_300), E(list_empty), E(list_mixed), E(list_nested),
    E(list_300), E(list_deep), E(map_empty), E(map_mixed), E(map_nested), E(map_300),
    E(array_int_empty), E(array_int), E(array_int_small), E(array_uint_small),
    E(array_uint_zero), E(array_uint_big), E(array_ulong), E(array_long),
    E(array_symbol), E(array_string_long), E(array_bool), E(array_uuid),
    E(array_double), E(array_float), E(array_timestamp), E(array_char),
    E(array_binary), E(array_ubyte), E(array_byte), E(array_ushort), E(array_short),
    E(array_decimal), E(array_list), E(array_map), E(array_array),
    E(array_described_ulong), E(array_described_symbol), E(array_described_empty),
    E(described_ulong_list), E(described_symbol_string), E(described_nested),
    E(described_big_code), E(described_array), E(described_in_list),
};

/* Value builders: a test helper, so running out of memory just stops. */
static lep_value_t *
must(lep_value_t *v)
{
    if (!v) {
        fprintf(stderr, "codec_peer: out of memory\n");
        exit(3);
    }
    return v;
}

static void
add(lep_value_t *parent, lep_value_t *child)
{
    if (lep_value_append(parent, must(child)) != 0) {
        fprintf(stderr, "codec_peer: lep_value_append failed\n");
        exit(3);
    }
}

static lep_value_t *
val_scalars(void)
{
    lep_value_t *l = must(lep_value_new(LEP_TYPE_LIST));
    add(l, lep_value_new(LEP_TYPE_NULL));
    add(l, lep_value_new_uint64(LEP_TYPE_BOOL, 1));
    add(l, lep_value_new_uint64(LEP_TYPE_BOOL, 0));
    add(l, lep_value_new_uint64(LEP_TYPE_UBYTE, 200));
    add(l, lep_value_new_uint64(LEP_TYPE_USHORT, 60000));
    add(l, lep_value_new_uint64(LEP_TYPE_UINT, 0));
    add(l, lep_value_new_uint64(LEP_TYPE_UINT, 100000));
    add(l, lep_value_new_uint64(LEP_TYPE_ULONG, 0));
    add(l, lep_value_new_uint64(LEP_TYPE_ULONG, 7));
    add(l, lep_value_new_uint64(LEP_TYPE_ULONG, UINT64_C(1) << 63));
    add(l, lep_value_new_int64(LEP_TYPE_BYTE, -5));
    add(l, lep_value_new_int64(LEP_TYPE_SHORT, -300));
    add(l, lep_value_new_int64(LEP_TYPE_INT, -70000));
    add(l, lep_value_new_int64(LEP_TYPE_INT, 5));
    add(l, lep_value_new_int64(LEP_TYPE_LONG, -5));
    add(l, lep_value_new_int64(LEP_TYPE_LONG, INT64_MIN));
    add(l, lep_value_new_double(LEP_TYPE_FLOAT, 0.25));
    add(l, lep_value_new_double(LEP_TYPE_DOUBLE, -2.5));
    add(l, lep_value_new_bytes(LEP_TYPE_DECIMAL32, DEC32, 4));
    add(l, lep_value_new_bytes(LEP_TYPE_DECIMAL64, DEC64, 8));
    add(l, lep_value_new_bytes(LEP_TYPE_DECIMAL128, DEC128, 16));
    add(l, lep_value_new_uint64(LEP_TYPE_CHAR, 0x263a));
    add(l, lep_value_new_int64(LEP_TYPE_TIMESTAMP, INT64_C(1700000000000)));
    add(l, lep_value_new_bytes(LEP_TYPE_UUID, UUID1, 16));
    add(l, lep_value_new_bytes(LEP_TYPE_BINARY, "\x00\x01\xff", 3));
    add(l, lep_value_new_bytes(LEP_TYPE_STRING, UNICODE, strlen(UNICODE)));
    add(l, lep_value_new_bytes(LEP_TYPE_SYMBOL, "sym", 3));
    return l;
}

static lep_value_t *
val_map(void)
{
    lep_value_t *m = must(lep_value_new(LEP_TYPE_MAP));
    add(m, lep_value_new_bytes(LEP_TYPE_SYMBOL, "k1", 2));
    add(m, lep_value_new_uint64(LEP_TYPE_UINT, 1));
    add(m, lep_value_new_bytes(LEP_TYPE_STRING, "k2", 2));
    add(m, lep_value_new(LEP_TYPE_NULL));
    add(m, lep_value_new_uint64(LEP_TYPE_ULONG, 3));
    lep_value_t *inner = must(lep_value_new(LEP_TYPE_MAP));
    add(inner, lep_value_new_int64(LEP_TYPE_INT, -1));
    add(inner, lep_value_new(LEP_TYPE_LIST));
    add(m, inner);
    return m;
}

static lep_value_t *
val_array_int(void)
{
    lep_value_t *a = must(lep_value_new_array(LEP_TYPE_INT));
    add(a, lep_value_new_int64(LEP_TYPE_INT, 1));
    add(a, lep_value_new_int64(LEP_TYPE_INT, -100000));
    return a;
}

static lep_value_t *
val_array_empty(void)
{
    return must(lep_value_new_array(LEP_TYPE_SYMBOL));
}

static lep_value_t *
val_array_string(void)
{
    lep_value_t *a = must(lep_value_new_array(LEP_TYPE_STRING));
    add(a, lep_value_new_bytes(LEP_TYPE_STRING, "x", 1));
    add(a, lep_value_new_bytes(LEP_TYPE_STRING, "", 0));
    return a;
}

static lep_value_t *
val_described(void)
{
    lep_value_t *d = must(lep_value_new(LEP_TYPE_DESCRIBED));
    add(d, lep_value_new_uint64(LEP_TYPE_ULONG, 0x12));
    lep_value_t *l = must(lep_value_new(LEP_TYPE_LIST));
    add(l, lep_value_new_bytes(LEP_TYPE_STRING, "link", 4));
    add(l, lep_value_new_uint64(LEP_TYPE_UINT, 0));
    add(l, lep_value_new_uint64(LEP_TYPE_BOOL, 0));
    add(d, l);
    return d;
}

static lep_value_t *
val_described_symbol(void)
{
    lep_value_t *d = must(lep_value_new(LEP_TYPE_DESCRIBED));
    add(d, lep_value_new_bytes(LEP_TYPE_SYMBOL, "com.example:thing", 17));
    add(d, val_map());
    return d;
}

static const struct {
    const char *name;
    lep_value_t *(*fn)(void);
} val_vectors[] = {
    {"val_scalars", val_scalars},
    {"val_map", val_map},
    {"val_array_int", val_array_int},
    {"val_array_empty", val_array_empty},
    {"val_array_string", val_array_string},
    {"val_described", val_described},
    {"val_described_symbol", val_described_symbol},
};

static int
peer_build_values(void)
{
    for (size_t i = 0; i < sizeof enc_vectors / sizeof enc_vectors[0]; i++) {
        lep_buf_t b;
        lep_encoder_t e;
        lep_buf_init(&b);
        lep_encoder_init(&e, &b);
        enc_vectors[i].fn(&e);
        peer_emit_value(enc_vectors[i].name, &b, lep_encoder_error(&e), NULL);
        lep_buf_fini(&b);
    }
    for (size_t i = 0; i < sizeof val_vectors / sizeof val_vectors[0]; i++) {
        lep_value_t *v = val_vectors[i].fn();
        lep_buf_t b;
        lep_encoder_t e;
        lep_buf_init(&b);
        lep_encoder_init(&e, &b);
        lep_value_encode(&e, v);
        peer_emit_value(val_vectors[i].name, &b, lep_encoder_error(&e), v);
        lep_buf_fini(&b);
        lep_value_free(v);
    }
    return 0;
}
