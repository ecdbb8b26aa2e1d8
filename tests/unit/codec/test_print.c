/* Printer tests: the readable, typed and indented forms of
 * docs/print-format.md, pinned byte for byte (lepton-dump and the interop
 * tests compare these strings), the spec names of known descriptors, and
 * error handling. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/codec.h>

#include "vectors.h"

typedef struct pcase {
    tv_bytes_t in;
    int flags;
    const char *want;
} pcase_t;

#define P(flags, want, ...) {TVB(__VA_ARGS__), (flags), (want)}
#define D LEP_PRINT_DEFAULT
#define T LEP_PRINT_TYPED
#define I LEP_PRINT_INDENT
#define TRANSFER_SYM 0xa3, 0x12, 'a', 'm', 'q', 'p', ':', 't', 'r', 'a', 'n', 's', 'f', 'e', 'r', ':', 'l', 'i', 's', 't'

static const pcase_t cases[] = {
    /* readable scalars */
    P(D, "null", 0x40),
    P(D, "true", 0x41),
    P(D, "false", 0x42),
    P(D, "false", 0x56, 0x00),
    P(D, "5", 0x50, 0x05),
    P(D, "65535", 0x60, 0xff, 0xff),
    P(D, "0", 0x43),
    P(D, "300", 0x70, 0, 0, 0x01, 0x2c),
    P(D, "18446744073709551615", 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    P(D, "-1", 0x54, 0xff),
    P(D, "-128", 0x51, 0x80),
    P(D, "-32768", 0x61, 0x80, 0x00),
    P(D, "-9223372036854775808", 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0),
    P(D, "1700000000000", 0x83, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00),
    P(D, "-1", 0x83, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    P(D, "1.5", 0x72, 0x3f, 0xc0, 0x00, 0x00),
    P(D, "0.1", 0x72, 0x3d, 0xcc, 0xcc, 0xcd),
    P(D, "0.1", 0x82, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a),
    P(D, "0.30000000000000004", 0x82, 0x3f, 0xd3, 0x33, 0x33, 0x33, 0x33, 0x33, 0x34),
    P(D, "1e+300", 0x82, 0x7e, 0x37, 0xe4, 0x3c, 0x88, 0x00, 0x75, 0x9c),
    P(D, "-0", 0x82, 0x80, 0, 0, 0, 0, 0, 0, 0),
    P(D, "nan", 0x82, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0),
    P(D, "nan", 0x72, 0x7f, 0xc0, 0x00, 0x00),
    P(D, "inf", 0x82, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0),
    P(D, "-inf", 0x82, 0xff, 0xf0, 0, 0, 0, 0, 0, 0),
    P(D, "decimal32:0x22500001", 0x74, 0x22, 0x50, 0x00, 0x01),
    P(D, "decimal64:0x2238000000000007", 0x84, 0x22, 0x38, 0, 0, 0, 0, 0, 0x07),
    P(D, "decimal128:0x00112233445566778899aabbccddeeff", 0x94, U8X16),
    P(D, "'A'", 0x73, 0, 0, 0, 0x41),
    P(D, "'\"'", 0x73, 0, 0, 0, 0x22),
    P(D, "U+0027", 0x73, 0, 0, 0, 0x27),
    P(D, "U+005C", 0x73, 0, 0, 0, 0x5c),
    P(D, "U+0000", 0x73, 0, 0, 0, 0x00),
    P(D, "U+00E9", 0x73, 0, 0, 0, 0xe9),
    P(D, "U+1F600", 0x73, 0x00, 0x01, 0xf6, 0x00),
    P(D, "U+10FFFF", 0x73, 0x00, 0x10, 0xff, 0xff),
    P(D, "00112233-4455-6677-8899-aabbccddeeff", 0x98, U8X16),
    P(D, "b\"\\x01\\x00\\xff\"", 0xa0, 0x03, 0x01, 0x00, 0xff),
    P(D, "b\"a\\\"b\\\\c\"", 0xa0, 0x05, 'a', '"', 'b', '\\', 'c'),
    P(D, "b\"\"", 0xa0, 0x00),
    P(D, "\"hello\"", 0xa1, 0x05, 'h', 'e', 'l', 'l', 'o'),
    P(D, "\"\\xc3\\xa9\"", 0xa1, 0x02, 0xc3, 0xa9),
    P(D, "\"\\x0a\\x7f\\x1f ~\"", 0xa1, 0x05, 0x0a, 0x7f, 0x1f, ' ', '~'),
    P(D, "\"\"", 0xa1, 0x00),
    P(D, "\"hi\"", 0xb1, 0, 0, 0, 0x02, 'h', 'i'),
    P(D, ":foo", 0xa3, 0x03, 'f', 'o', 'o'),
    P(D, ":amqp:accepted:list", 0xa3, 0x12, 'a', 'm', 'q', 'p', ':', 'a', 'c', 'c', 'e', 'p', 't', 'e', 'd', ':',
      'l', 'i', 's', 't'),
    P(D, ":A-Z_0.9", 0xa3, 0x07, 'A', '-', 'Z', '_', '0', '.', '9'),
    P(D, ":\"\"", 0xa3, 0x00),
    P(D, ":\"a b\"", 0xa3, 0x03, 'a', ' ', 'b'),
    P(D, ":\"x\\\"y\"", 0xa3, 0x03, 'x', '"', 'y'),
    P(D, ":\"a/b\"", 0xa3, 0x03, 'a', '/', 'b'),

    /* readable compounds */
    P(D, "[]", 0x45),
    P(D, "[]", 0xd0, 0, 0, 0, 0x04, 0, 0, 0, 0),
    P(D, "[1, \"x\"]", 0xc0, 0x06, 0x02, 0x52, 0x01, 0xa1, 0x01, 'x'),
    P(D, "[1, [2, 3], {}]", 0xc0, 0x0d, 0x03, 0x52, 0x01, 0xc0, 0x05, 0x02, 0x52, 0x02, 0x52, 0x03, 0xc1, 0x01,
      0x00),
    P(D, "[null, null]", 0xc0, 0x03, 0x02, 0x40, 0x40),
    P(D, "{}", 0xc1, 0x01, 0x00),
    P(D, "{:key=\"v\"}", 0xc1, 0x09, 0x02, 0xa3, 0x03, 'k', 'e', 'y', 0xa1, 0x01, 'v'),
    P(D, "{:a=[1, 2], :b=[]}", 0xc1, 0x0f, 0x04, 0xa3, 0x01, 'a', 0xc0, 0x05, 0x02, 0x52, 0x01, 0x52, 0x02, 0xa3,
      0x01, 'b', 0x45),
    P(D, "{1=true, \"k\"=null}", 0xc1, 0x08, 0x04, 0x52, 0x01, 0x41, 0xa1, 0x01, 'k', 0x40),
    P(D, "@<symbol>[:a, :b]", 0xe0, 0x06, 0x02, 0xa3, 0x01, 'a', 0x01, 'b'),
    P(D, "@<ubyte>[]", 0xe0, 0x02, 0x00, 0x50),
    P(D, "@<uint>[0, 0, 0]", 0xe0, 0x02, 0x03, 0x43),
    P(D, "@<uint>[1, 256]", 0xe0, 0x0a, 0x02, 0x70, 0, 0, 0, 0x01, 0, 0, 0x01, 0x00),
    P(D, "@<boolean>[true, false]", 0xe0, 0x04, 0x02, 0x56, 0x01, 0x00),
    P(D, "@<boolean>[true, true]", 0xe0, 0x02, 0x02, 0x41),
    P(D, "@<array>[@<uint>[1, 2], @<uint>[3]]", 0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01,
      0x52, 0x03),
    P(D, "@<list>[[true], []]", 0xe0, 0x07, 0x02, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00),
    P(D, "@<map>[{:k=5}]", 0xe0, 0x09, 0x01, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05),
    P(D, "@<string>[\"x\", \"\"]", 0xe0, 0x05, 0x02, 0xa1, 0x01, 'x', 0x00),
    P(D, "@<described>[@0x1234 :a, @0x1234 :b]", 0xe0, 0x10, 0x02, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0xa3,
      0x01, 'a', 0x01, 'b'),

    /* described: spec names for known codes, field names for composites */
    P(D, "@accepted(36) []", 0x00, 0x53, 0x24, 0x45),
    P(D, "@transfer(20) [handle=0, delivery-id=5, settled=true]", 0x00, 0x53, 0x14, 0xc0, 0x07, 0x05, 0x43, 0x52,
      0x05, 0x40, 0x40, 0x41),
    P(D, "@transfer(20) [handle=0, delivery-id=5, settled=true]", 0x00, TRANSFER_SYM, 0xc0, 0x07, 0x05, 0x43,
      0x52, 0x05, 0x40, 0x40, 0x41),
    P(D, "@transfer(20) [handle=0, delivery-id=5, settled=true]", 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x14, 0xd0, 0,
      0, 0, 0x0a, 0, 0, 0, 0x05, 0x43, 0x52, 0x05, 0x40, 0x40, 0x41),
    P(D, "@transfer(20) []", 0x00, 0x53, 0x14, 0xc0, 0x03, 0x02, 0x40, 0x40),
    P(D, "@transfer(20) [handle=0, 7]", 0x00, 0x53, 0x14, 0xc0, 0x0e, 0x0c, 0x43, 0x40, 0x40, 0x40, 0x40, 0x40,
      0x40, 0x40, 0x40, 0x40, 0x40, 0x52, 0x07),
    P(D, "@header(112) [durable=true, priority=2]", 0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x41, 0x52, 0x02),
    P(D, "@disposition(21) [role=true, first=1, settled=true, state=@accepted(36) []]", 0x00, 0x53, 0x15, 0xc0,
      0x0a, 0x05, 0x41, 0x52, 0x01, 0x40, 0x41, 0x00, 0x53, 0x24, 0x45),
    P(D, "@amqp-value(119) \"hi\"", 0x00, 0x53, 0x77, 0xa1, 0x02, 'h', 'i'),
    P(D, "@data(117) b\"\\x01\\x02\"", 0x00, 0x53, 0x75, 0xa0, 0x02, 0x01, 0x02),
    P(D, "@application-properties(116) {\"k\"=1}", 0x00, 0x53, 0x74, 0xc1, 0x06, 0x02, 0xa1, 0x01, 'k', 0x52,
      0x01),
    P(D, "@0x123 [1]", 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x23, 0xc0, 0x03, 0x01, 0x52, 0x01),
    P(D, "@0x0 null", 0x00, 0x44, 0x40),
    P(D, "@0x1 @0x2 3", 0x00, 0x53, 0x01, 0x00, 0x53, 0x02, 0x52, 0x03),
    P(D, "@:my:type \"x\"", 0x00, 0xa3, 0x07, 'm', 'y', ':', 't', 'y', 'p', 'e', 0xa1, 0x01, 'x'),
    P(D, "@:\"my type\" \"x\"", 0x00, 0xa3, 0x07, 'm', 'y', ' ', 't', 'y', 'p', 'e', 0xa1, 0x01, 'x'),
    P(D, "@\"x\" null", 0x00, 0xa1, 0x01, 'x', 0x40),
    P(D, "[@accepted(36) [], @0x99 1]", 0xc0, 0x0a, 0x02, 0x00, 0x53, 0x24, 0x45, 0x00, 0x53, 0x99, 0x52, 0x01),

    /* typed */
    P(T, "null", 0x40),
    P(T, "bool:true", 0x41),
    P(T, "bool:false", 0x56, 0x00),
    P(T, "ubyte:5", 0x50, 0x05),
    P(T, "ushort:65535", 0x60, 0xff, 0xff),
    P(T, "uint:0", 0x43),
    P(T, "uint:5", 0x70, 0, 0, 0, 0x05),
    P(T, "ulong:7", 0x53, 0x07),
    P(T, "byte:-128", 0x51, 0x80),
    P(T, "short:-1", 0x61, 0xff, 0xff),
    P(T, "int:-1", 0x54, 0xff),
    P(T, "long:-5", 0x55, 0xfb),
    P(T, "float:0x3fc00000", 0x72, 0x3f, 0xc0, 0x00, 0x00),
    P(T, "float:0x7fc00001", 0x72, 0x7f, 0xc0, 0x00, 0x01),
    P(T, "double:0x3ff8000000000000", 0x82, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0),
    P(T, "double:0x8000000000000000", 0x82, 0x80, 0, 0, 0, 0, 0, 0, 0),
    P(T, "decimal32:0x22500001", 0x74, 0x22, 0x50, 0x00, 0x01),
    P(T, "decimal64:0x2238000000000007", 0x84, 0x22, 0x38, 0, 0, 0, 0, 0, 0x07),
    P(T, "decimal128:0x00112233445566778899aabbccddeeff", 0x94, U8X16),
    P(T, "char:U+0041", 0x73, 0, 0, 0, 0x41),
    P(T, "char:U+1F600", 0x73, 0x00, 0x01, 0xf6, 0x00),
    P(T, "timestamp:1700000000000", 0x83, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00),
    P(T, "uuid:00112233-4455-6677-8899-aabbccddeeff", 0x98, U8X16),
    P(T, "binary:\"\\x01a\\\"\"", 0xa0, 0x03, 0x01, 'a', '"'),
    P(T, "string:\"h\\\\i\\xc3\\xa9\"", 0xa1, 0x05, 'h', '\\', 'i', 0xc3, 0xa9),
    P(T, "symbol:\"foo\"", 0xa3, 0x03, 'f', 'o', 'o'),
    P(T, "symbol:\"\"", 0xa3, 0x00),
    P(T, "list[]", 0x45),
    P(T, "list[uint:1, string:\"x\"]", 0xc0, 0x06, 0x02, 0x52, 0x01, 0xa1, 0x01, 'x'),
    P(T, "map{}", 0xc1, 0x01, 0x00),
    P(T, "map{symbol:\"key\"=string:\"v\"}", 0xc1, 0x09, 0x02, 0xa3, 0x03, 'k', 'e', 'y', 0xa1, 0x01, 'v'),
    P(T, "array<uint>[uint:0, uint:0, uint:0]", 0xe0, 0x02, 0x03, 0x43),
    P(T, "array<ubyte>[]", 0xe0, 0x02, 0x00, 0x50),
    P(T, "array<boolean>[bool:true, bool:false]", 0xe0, 0x04, 0x02, 0x56, 0x01, 0x00),
    P(T, "array<array>[array<uint>[uint:1, uint:2], array<uint>[uint:3]]", 0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02,
      0x52, 0x01, 0x02, 0x03, 0x01, 0x52, 0x03),
    P(T, "array<described>[described(ulong:4660, symbol:\"a\"), described(ulong:4660, symbol:\"b\")]", 0xe0,
      0x10, 0x02, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0xa3, 0x01, 'a', 0x01, 'b'),
    P(T, "described(ulong:36, list[])", 0x00, 0x53, 0x24, 0x45),
    P(T, "described(ulong:20, list[uint:0, uint:5, null, null, bool:true])", 0x00, 0x53, 0x14, 0xc0, 0x07, 0x05,
      0x43, 0x52, 0x05, 0x40, 0x40, 0x41),
    P(T, "described(symbol:\"amqp:transfer:list\", list[uint:0])", 0x00, TRANSFER_SYM, 0xc0, 0x02, 0x01, 0x43),
    P(T, "described(ulong:1, described(ulong:2, uint:3))", 0x00, 0x53, 0x01, 0x00, 0x53, 0x02, 0x52, 0x03),

    /* indented */
    P(I, "[]", 0x45),
    P(I, "{}", 0xc1, 0x01, 0x00),
    P(I, "[\n  1,\n  [\n    2,\n    3\n  ],\n  {}\n]", 0xc0, 0x0d, 0x03, 0x52, 0x01, 0xc0, 0x05, 0x02, 0x52, 0x02,
      0x52, 0x03, 0xc1, 0x01, 0x00),
    P(I, "{\n  :a=[\n    1,\n    2\n  ],\n  :b=[]\n}", 0xc1, 0x0f, 0x04, 0xa3, 0x01, 'a', 0xc0, 0x05, 0x02, 0x52,
      0x01, 0x52, 0x02, 0xa3, 0x01, 'b', 0x45),
    P(I, "@<uint>[\n  1,\n  2\n]", 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02),
    P(I, "@disposition(21) [\n  role=true,\n  first=1,\n  settled=true,\n  state=@accepted(36) []\n]", 0x00, 0x53,
      0x15, 0xc0, 0x0a, 0x05, 0x41, 0x52, 0x01, 0x40, 0x41, 0x00, 0x53, 0x24, 0x45),
    P(I, "[\n  @transfer(20) [\n    handle=0\n  ]\n]", 0xc0, 0x08, 0x01, 0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43),
    P(I, "@transfer(20) []", 0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x40),
    P(T | I, "list[\n  uint:1,\n  map{\n    null=list[]\n  }\n]", 0xc0, 0x08, 0x02, 0x52, 0x01, 0xc1, 0x03, 0x02,
      0x40, 0x45),
    P(T | I, "described(ulong:21, list[\n    bool:true,\n    uint:1\n  ])", 0x00, 0x53, 0x15, 0xc0, 0x04, 0x02, 0x41,
      0x52, 0x01),
};

#define NCASES (sizeof cases / sizeof cases[0])

static void
check_case(const pcase_t *c, size_t i)
{
    lep_reader_t r;
    lep_buf_t out;
    lep_buf_init(&out);
    lep_reader_init(&r, c->in.p, c->in.n);
    int rc = lep_print_encoded(&r, &out, c->flags);
    if (rc != 0)
        fail_msg("case %zu (%s): print_encoded: %s", i, c->want, lep_strerror(rc));
    if (out.len != strlen(c->want) || memcmp(out.data, c->want, out.len) != 0)
        fail_msg("case %zu, flags %d:\n  got  |%.*s|\n  want |%s|", i, c->flags, (int)out.len,
                 (const char *)out.data, c->want);
    TV_CHECK(lep_reader_offset(&r, c->in.p) == c->in.n, "case %zu: print consumed %zu of %zu", i,
             lep_reader_offset(&r, c->in.p), c->in.n);
    lep_buf_fini(&out);
}

static void
test_print_encoded(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++)
        check_case(&cases[i], i);
}

/* Printing a tree prints its encoding: the same strings. */
static void
test_value_print(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const pcase_t *c = &cases[i];
        lep_value_t *v;
        lep_buf_t out;
        TV_RC(lep_value_decode(c->in.p, c->in.n, false, &v, NULL), 0, "case %zu: decode", i);
        lep_buf_init(&out);
        TV_RC(lep_value_print(v, &out, c->flags), 0, "case %zu: value_print", i);
        if (out.len != strlen(c->want) || memcmp(out.data, c->want, out.len) != 0)
            fail_msg("case %zu, flags %d, lep_value_print:\n  got  |%.*s|\n  want |%s|", i, c->flags, (int)out.len,
                     (const char *)out.data, c->want);
        lep_buf_fini(&out);
        lep_value_free(v);
    }
}

/* Output is appended; on an error nothing is appended. */
static void
test_print_append_and_errors(void **state)
{
    (void)state;
    lep_buf_t out;
    lep_reader_t r;
    lep_buf_init(&out);
    assert_int_equal(lep_buf_append(&out, "x=", 2), 0);
    lep_reader_init(&r, "\x52\x05\x41", 3);
    assert_int_equal(lep_print_encoded(&r, &out, 0), 0);
    assert_int_equal(lep_print_encoded(&r, &out, LEP_PRINT_TYPED), 0);
    assert_true(lep_bytes_eq_str(lep_buf_bytes(&out), "x=5bool:true"));
    assert_true(lep_reader_done(&r));

    static const struct {
        const char *in;
        size_t n;
        int err;
    } bad[] = {
        {"\xc0\x05\x02\x52\x01", 5, LEP_ERR_INCOMPLETE},
        {"\xc0\x03\x02\x52\x01\xff", 6, LEP_ERR_DECODE},
        {"\xc0\x04\x02\x52\x01\x01", 6, LEP_ERR_DECODE},
        {"\xc0\x05\x02\x52\x01\xa1\x01", 7, LEP_ERR_DECODE},
        {"\xc0\x06\x02\x52\x01\xa1\x01\xff", 8, LEP_ERR_UTF8},
        {"\x00\x53\x14\xc0\x03\x02\x43\x56", 8, LEP_ERR_DECODE},
        {"\x00\x53", 2, LEP_ERR_INCOMPLETE},
        {"\x00\xa3\x01\x80\x40", 5, LEP_ERR_SYMBOL},
        {"", 0, LEP_ERR_INCOMPLETE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int flags = 0; flags < 4; flags++) {
            lep_buf_clear(&out);
            assert_int_equal(lep_buf_append(&out, "keep", 4), 0);
            uint8_t *in = tv_dup(bad[i].in, bad[i].n);
            lep_reader_init(&r, in, bad[i].n);
            TV_RC(lep_print_encoded(&r, &out, flags), bad[i].err, "bad %zu flags %d", i, flags);
            TV_CHECK(lep_bytes_eq_str(lep_buf_bytes(&out), "keep"), "bad %zu flags %d: output left behind", i,
                     flags);
            free(in);
        }

    /* a fixed buffer too small: overflow, and nothing left behind */
    uint8_t mem[10];
    lep_buf_t small;
    lep_buf_init_fixed(&small, mem, sizeof mem);
    assert_int_equal(lep_buf_append(&small, "ab", 2), 0);
    lep_reader_init(&r, "\xa1\x0a" "0123456789", 12);
    assert_int_equal(lep_print_encoded(&r, &small, 0), LEP_ERR_OVERFLOW);
    assert_int_equal(small.len, 2);
    for (size_t cap = 0; cap < 16; cap++) {
        uint8_t m[16];
        lep_buf_init_fixed(&small, m, cap);
        lep_reader_init(&r, "\xc0\x06\x02\x52\x01\xa1\x01x", 8); /* [1, "x"]: 8 chars */
        int rc = lep_print_encoded(&r, &small, 0);
        TV_RC(rc, cap < 8 ? LEP_ERR_OVERFLOW : 0, "capacity %zu", cap);
        TV_CHECK(small.len == (cap < 8 ? 0 : 8), "capacity %zu: len %zu", cap, small.len);
    }
    lep_buf_fini(&out);
}

/* Long strings and deep nesting print in full, and nesting past the limit
 * is refused rather than recursing without bound. */
static void
test_print_large_and_deep(void **state)
{
    (void)state;
    size_t n = 5000;
    uint8_t *in = malloc(n + 5);
    assert_non_null(in);
    in[0] = 0xb1, in[1] = 0, in[2] = 0, in[3] = (uint8_t)(n >> 8), in[4] = (uint8_t)n;
    memset(in + 5, 'z', n);
    lep_reader_t r;
    lep_buf_t out;
    lep_buf_init(&out);
    lep_reader_init(&r, in, n + 5);
    assert_int_equal(lep_print_encoded(&r, &out, 0), 0);
    assert_int_equal(out.len, n + 2);
    assert_int_equal(out.data[0], '"');
    assert_int_equal(out.data[n], 'z');
    free(in);

    for (int depth = LEP_CODEC_MAX_DEPTH; depth <= LEP_CODEC_MAX_DEPTH + 1; depth++) {
        size_t len = (size_t)depth * 9 + 1;
        in = malloc(len);
        assert_non_null(in);
        for (int i = 0; i < depth; i++) {
            size_t size = len - (size_t)i * 9 - 5;
            uint8_t *p = in + i * 9;
            p[0] = 0xd0, p[1] = 0, p[2] = 0, p[3] = (uint8_t)(size >> 8), p[4] = (uint8_t)size;
            p[5] = 0, p[6] = 0, p[7] = 0, p[8] = 1;
        }
        in[len - 1] = 0x40;
        lep_buf_clear(&out);
        lep_reader_init(&r, in, len);
        int rc = lep_print_encoded(&r, &out, 0);
        if (depth <= LEP_CODEC_MAX_DEPTH) {
            TV_RC(rc, 0, "depth %d", depth);
            TV_CHECK(out.len == (size_t)depth * 2 + 4, "depth %d: %zu chars", depth, out.len);
        } else {
            TV_RC(rc, LEP_ERR_LIMIT, "depth %d", depth);
        }
        free(in);
    }
    lep_buf_fini(&out);
}

/* The spec's descriptor table, as the printer sees it. */
static void
test_descriptor_lookup(void **state)
{
    (void)state;
    static const struct {
        uint64_t code;
        const char *name, *sym;
        uint32_t nfields;
        const char *first, *last;
    } known[] = {
        {0x10, "open", "amqp:open:list", 10, "container-id", "properties"},
        {0x11, "begin", "amqp:begin:list", 8, "remote-channel", "properties"},
        {0x12, "attach", "amqp:attach:list", 14, "name", "properties"},
        {0x13, "flow", "amqp:flow:list", 11, "next-incoming-id", "properties"},
        {0x14, "transfer", "amqp:transfer:list", 11, "handle", "batchable"},
        {0x15, "disposition", "amqp:disposition:list", 6, "role", "batchable"},
        {0x16, "detach", "amqp:detach:list", 3, "handle", "error"},
        {0x17, "end", "amqp:end:list", 1, "error", "error"},
        {0x18, "close", "amqp:close:list", 1, "error", "error"},
        {0x1d, "error", "amqp:error:list", 3, "condition", "info"},
        {0x23, "received", "amqp:received:list", 2, "section-number", "section-offset"},
        {0x25, "rejected", "amqp:rejected:list", 1, "error", "error"},
        {0x27, "modified", "amqp:modified:list", 3, "delivery-failed", "message-annotations"},
        {0x28, "source", "amqp:source:list", 11, "address", "capabilities"},
        {0x29, "target", "amqp:target:list", 7, "address", "capabilities"},
        {0x70, "header", "amqp:header:list", 5, "durable", "delivery-count"},
        {0x73, "properties", "amqp:properties:list", 13, "message-id", "reply-to-group-id"},
        {0x41, "sasl-init", "amqp:sasl-init:list", 3, "mechanism", "hostname"},
        {0x44, "sasl-outcome", "amqp:sasl-outcome:list", 2, "code", "additional-data"},
        {0x31, "declare", "amqp:declare:list", 1, "global-id", "global-id"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const lep_descriptor_info_t *d = lep_descriptor_lookup(known[i].code);
        TV_CHECK(d != NULL, "0x%llx not known", (unsigned long long)known[i].code);
        TV_CHECK(strcmp(d->name, known[i].name) == 0 && d->code == known[i].code, "0x%llx is %s",
                 (unsigned long long)known[i].code, d->name);
        TV_CHECK(d->nfields == known[i].nfields, "%s: %u fields", d->name, d->nfields);
        TV_CHECK(strcmp(d->fields[0], known[i].first) == 0, "%s: first field %s", d->name, d->fields[0]);
        TV_CHECK(strcmp(d->fields[d->nfields - 1], known[i].last) == 0, "%s: last field %s", d->name,
                 d->fields[d->nfields - 1]);
        TV_CHECK(lep_descriptor_lookup_name(lep_bytes_str(known[i].sym)) == d, "%s by name", known[i].sym);
    }
    static const struct {
        uint64_t code;
        const char *name, *sym;
    } plain[] = {
        {0x24, "accepted", "amqp:accepted:list"},
        {0x26, "released", "amqp:released:list"},
        {0x71, "delivery-annotations", "amqp:delivery-annotations:map"},
        {0x72, "message-annotations", "amqp:message-annotations:map"},
        {0x74, "application-properties", "amqp:application-properties:map"},
        {0x75, "data", "amqp:data:binary"},
        {0x76, "amqp-sequence", "amqp:amqp-sequence:list"},
        {0x77, "amqp-value", "amqp:amqp-value:*"},
        {0x78, "footer", "amqp:footer:map"},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        const lep_descriptor_info_t *d = lep_descriptor_lookup(plain[i].code);
        TV_CHECK(d != NULL && strcmp(d->name, plain[i].name) == 0, "0x%llx", (unsigned long long)plain[i].code);
        TV_CHECK(lep_descriptor_lookup_name(lep_bytes_str(plain[i].sym)) == d, "%s by name", plain[i].sym);
    }
    static const uint64_t unknown[] = {0, 1, 0x0f, 0x19, 0x1c, 0x79, 0x80, 0xff, 0x1234, 0x0000013700000014ull,
                                       0x0000000100000014ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        TV_CHECK(lep_descriptor_lookup(unknown[i]) == NULL, "0x%llx should be unknown",
                 (unsigned long long)unknown[i]);
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("amqp:transfer:lis")));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("amqp:transfer:listx")));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("")));
    assert_null(lep_descriptor_lookup_name(LEP_BYTES(NULL, 0)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_print_encoded),
        cmocka_unit_test(test_value_print),
        cmocka_unit_test(test_print_append_and_errors),
        cmocka_unit_test(test_print_large_and_deep),
        cmocka_unit_test(test_descriptor_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
