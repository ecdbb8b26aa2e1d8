/* Byte-exact encodings of every AMQP 1.0 format code (spec part 1, section
 * 1.6), shared by the codec unit tests, plus small test helpers.
 *
 * Every vector says what a decoder must make of it (type, atom code, value)
 * and, through .form, what the encoder must produce for that value: the
 * very same bytes (TV_CANON), the smaller .canon bytes (TV_WIDE: a legal but
 * not smallest encoding), or nothing pinned (TV_DECODE_ONLY). */
#ifndef LEPTON_TEST_VECTORS_H
#define LEPTON_TEST_VECTORS_H

#include <lepton/codec.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tv_bytes {
    const uint8_t *p;
    size_t n;
} tv_bytes_t;

#define TVB(...) {(const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})}
#define TVS(s) {(const uint8_t *)(s), sizeof(s) - 1}
#define TV_NONE {(const uint8_t *)"", 0}

enum tv_form {
    TV_CANON = 0,
    TV_WIDE,
    TV_DECODE_ONLY,
};

typedef struct tv {
    const char *name;
    tv_bytes_t wire;
    lep_type_t type;
    uint8_t code;        /* expected atom.code */
    int form;
    tv_bytes_t canon;    /* TV_WIDE: the smallest encoding of the same value */
    uint64_t u;          /* bool, ubyte..ulong, char */
    int64_t i;           /* byte..long, timestamp */
    uint64_t bits;       /* float (low 32 bits) or double, as IEEE bits */
    tv_bytes_t payload;  /* binary/string/symbol/uuid/decimal bytes;
                            list/map/array: atom.content; described: the value's encoding */
    tv_bytes_t ctor;     /* array: element constructor; described: the descriptor */
    uint32_t count;      /* list/map/array element count */
    bool skip_code;      /* atom.code not pinned (arrays of described elements) */
} tv_t;

#define U8X16 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, \
              0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff

static const tv_t tv_all[] = {
    /* null */
    {"null", TVB(0x40), LEP_TYPE_NULL, 0x40, TV_CANON, .u = 0},

    /* boolean */
    {"true", TVB(0x41), LEP_TYPE_BOOL, 0x41, TV_CANON, .u = 1},
    {"false", TVB(0x42), LEP_TYPE_BOOL, 0x42, TV_CANON, .u = 0},
    {"boolean 0x56 00", TVB(0x56, 0x00), LEP_TYPE_BOOL, 0x56, TV_WIDE, TVB(0x42), .u = 0},
    {"boolean 0x56 01", TVB(0x56, 0x01), LEP_TYPE_BOOL, 0x56, TV_WIDE, TVB(0x41), .u = 1},

    /* ubyte, ushort */
    {"ubyte 0", TVB(0x50, 0x00), LEP_TYPE_UBYTE, 0x50, TV_CANON, .u = 0},
    {"ubyte 255", TVB(0x50, 0xff), LEP_TYPE_UBYTE, 0x50, TV_CANON, .u = 255},
    {"ushort 0", TVB(0x60, 0x00, 0x00), LEP_TYPE_USHORT, 0x60, TV_CANON, .u = 0},
    {"ushort 0x1234", TVB(0x60, 0x12, 0x34), LEP_TYPE_USHORT, 0x60, TV_CANON, .u = 0x1234},
    {"ushort 65535", TVB(0x60, 0xff, 0xff), LEP_TYPE_USHORT, 0x60, TV_CANON, .u = 65535},

    /* uint */
    {"uint0", TVB(0x43), LEP_TYPE_UINT, 0x43, TV_CANON, .u = 0},
    {"smalluint 5", TVB(0x52, 0x05), LEP_TYPE_UINT, 0x52, TV_CANON, .u = 5},
    {"smalluint 255", TVB(0x52, 0xff), LEP_TYPE_UINT, 0x52, TV_CANON, .u = 255},
    {"uint 256", TVB(0x70, 0x00, 0x00, 0x01, 0x00), LEP_TYPE_UINT, 0x70, TV_CANON, .u = 256},
    {"uint 300", TVB(0x70, 0x00, 0x00, 0x01, 0x2c), LEP_TYPE_UINT, 0x70, TV_CANON, .u = 300},
    {"uint max", TVB(0x70, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_UINT, 0x70, TV_CANON, .u = 0xffffffffu},
    {"uint 0x70 5", TVB(0x70, 0x00, 0x00, 0x00, 0x05), LEP_TYPE_UINT, 0x70, TV_WIDE, TVB(0x52, 0x05), .u = 5},
    {"uint 0x70 0", TVB(0x70, 0x00, 0x00, 0x00, 0x00), LEP_TYPE_UINT, 0x70, TV_WIDE, TVB(0x43), .u = 0},
    {"smalluint 0", TVB(0x52, 0x00), LEP_TYPE_UINT, 0x52, TV_WIDE, TVB(0x43), .u = 0},

    /* ulong */
    {"ulong0", TVB(0x44), LEP_TYPE_ULONG, 0x44, TV_CANON, .u = 0},
    {"smallulong 7", TVB(0x53, 0x07), LEP_TYPE_ULONG, 0x53, TV_CANON, .u = 7},
    {"smallulong 255", TVB(0x53, 0xff), LEP_TYPE_ULONG, 0x53, TV_CANON, .u = 255},
    {"ulong 256", TVB(0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x00), LEP_TYPE_ULONG, 0x80, TV_CANON, .u = 256},
    {"ulong max", TVB(0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_ULONG, 0x80,
     TV_CANON, .u = UINT64_MAX},
    {"ulong 0x0102030405060708", TVB(0x80, 1, 2, 3, 4, 5, 6, 7, 8), LEP_TYPE_ULONG, 0x80, TV_CANON,
     .u = 0x0102030405060708ull},
    {"ulong 0x80 5", TVB(0x80, 0, 0, 0, 0, 0, 0, 0, 0x05), LEP_TYPE_ULONG, 0x80, TV_WIDE, TVB(0x53, 0x05),
     .u = 5},
    {"ulong 0x80 0", TVB(0x80, 0, 0, 0, 0, 0, 0, 0, 0), LEP_TYPE_ULONG, 0x80, TV_WIDE, TVB(0x44), .u = 0},
    {"smallulong 0", TVB(0x53, 0x00), LEP_TYPE_ULONG, 0x53, TV_WIDE, TVB(0x44), .u = 0},

    /* byte, short */
    {"byte -128", TVB(0x51, 0x80), LEP_TYPE_BYTE, 0x51, TV_CANON, .i = -128},
    {"byte 127", TVB(0x51, 0x7f), LEP_TYPE_BYTE, 0x51, TV_CANON, .i = 127},
    {"byte 0", TVB(0x51, 0x00), LEP_TYPE_BYTE, 0x51, TV_CANON, .i = 0},
    {"short -32768", TVB(0x61, 0x80, 0x00), LEP_TYPE_SHORT, 0x61, TV_CANON, .i = -32768},
    {"short -1", TVB(0x61, 0xff, 0xff), LEP_TYPE_SHORT, 0x61, TV_CANON, .i = -1},
    {"short 32767", TVB(0x61, 0x7f, 0xff), LEP_TYPE_SHORT, 0x61, TV_CANON, .i = 32767},

    /* int */
    {"smallint -1", TVB(0x54, 0xff), LEP_TYPE_INT, 0x54, TV_CANON, .i = -1},
    {"smallint 0", TVB(0x54, 0x00), LEP_TYPE_INT, 0x54, TV_CANON, .i = 0},
    {"smallint 127", TVB(0x54, 0x7f), LEP_TYPE_INT, 0x54, TV_CANON, .i = 127},
    {"smallint -128", TVB(0x54, 0x80), LEP_TYPE_INT, 0x54, TV_CANON, .i = -128},
    {"int 128", TVB(0x71, 0x00, 0x00, 0x00, 0x80), LEP_TYPE_INT, 0x71, TV_CANON, .i = 128},
    {"int -129", TVB(0x71, 0xff, 0xff, 0xff, 0x7f), LEP_TYPE_INT, 0x71, TV_CANON, .i = -129},
    {"int min", TVB(0x71, 0x80, 0x00, 0x00, 0x00), LEP_TYPE_INT, 0x71, TV_CANON, .i = INT32_MIN},
    {"int max", TVB(0x71, 0x7f, 0xff, 0xff, 0xff), LEP_TYPE_INT, 0x71, TV_CANON, .i = INT32_MAX},
    {"int 0x71 -1", TVB(0x71, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_INT, 0x71, TV_WIDE, TVB(0x54, 0xff), .i = -1},
    {"int 0x71 0", TVB(0x71, 0, 0, 0, 0), LEP_TYPE_INT, 0x71, TV_WIDE, TVB(0x54, 0x00), .i = 0},

    /* long */
    {"smalllong 127", TVB(0x55, 0x7f), LEP_TYPE_LONG, 0x55, TV_CANON, .i = 127},
    {"smalllong -1", TVB(0x55, 0xff), LEP_TYPE_LONG, 0x55, TV_CANON, .i = -1},
    {"smalllong -128", TVB(0x55, 0x80), LEP_TYPE_LONG, 0x55, TV_CANON, .i = -128},
    {"smalllong 0", TVB(0x55, 0x00), LEP_TYPE_LONG, 0x55, TV_CANON, .i = 0},
    {"long 128", TVB(0x81, 0, 0, 0, 0, 0, 0, 0, 0x80), LEP_TYPE_LONG, 0x81, TV_CANON, .i = 128},
    {"long -129", TVB(0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), LEP_TYPE_LONG, 0x81, TV_CANON,
     .i = -129},
    {"long min", TVB(0x81, 0x80, 0, 0, 0, 0, 0, 0, 0), LEP_TYPE_LONG, 0x81, TV_CANON, .i = INT64_MIN},
    {"long max", TVB(0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_LONG, 0x81, TV_CANON,
     .i = INT64_MAX},
    {"long 0x81 127", TVB(0x81, 0, 0, 0, 0, 0, 0, 0, 0x7f), LEP_TYPE_LONG, 0x81, TV_WIDE, TVB(0x55, 0x7f),
     .i = 127},
    {"long 0x81 -1", TVB(0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_LONG, 0x81, TV_WIDE,
     TVB(0x55, 0xff), .i = -1},

    /* float, double */
    {"float 1.0", TVB(0x72, 0x3f, 0x80, 0x00, 0x00), LEP_TYPE_FLOAT, 0x72, TV_CANON, .bits = 0x3f800000},
    {"float 1.5", TVB(0x72, 0x3f, 0xc0, 0x00, 0x00), LEP_TYPE_FLOAT, 0x72, TV_CANON, .bits = 0x3fc00000},
    {"float -0.0", TVB(0x72, 0x80, 0x00, 0x00, 0x00), LEP_TYPE_FLOAT, 0x72, TV_CANON, .bits = 0x80000000},
    {"float NaN", TVB(0x72, 0x7f, 0xc0, 0x00, 0x01), LEP_TYPE_FLOAT, 0x72, TV_CANON, .bits = 0x7fc00001},
    {"double 1.0", TVB(0x82, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), LEP_TYPE_DOUBLE, 0x82, TV_CANON,
     .bits = 0x3ff0000000000000ull},
    {"double -2.5", TVB(0x82, 0xc0, 0x04, 0, 0, 0, 0, 0, 0), LEP_TYPE_DOUBLE, 0x82, TV_CANON,
     .bits = 0xc004000000000000ull},
    {"double -0.0", TVB(0x82, 0x80, 0, 0, 0, 0, 0, 0, 0), LEP_TYPE_DOUBLE, 0x82, TV_CANON,
     .bits = 0x8000000000000000ull},
    {"double inf", TVB(0x82, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), LEP_TYPE_DOUBLE, 0x82, TV_CANON,
     .bits = 0x7ff0000000000000ull},

    /* decimals: opaque bytes */
    {"decimal32", TVB(0x74, 0x22, 0x50, 0x00, 0x01), LEP_TYPE_DECIMAL32, 0x74, TV_CANON,
     .payload = TVB(0x22, 0x50, 0x00, 0x01)},
    {"decimal64", TVB(0x84, 0x22, 0x38, 0, 0, 0, 0, 0, 0x07), LEP_TYPE_DECIMAL64, 0x84, TV_CANON,
     .payload = TVB(0x22, 0x38, 0, 0, 0, 0, 0, 0x07)},
    {"decimal128", TVB(0x94, U8X16), LEP_TYPE_DECIMAL128, 0x94, TV_CANON, .payload = TVB(U8X16)},

    /* char: UTF-32BE */
    {"char A", TVB(0x73, 0x00, 0x00, 0x00, 0x41), LEP_TYPE_CHAR, 0x73, TV_CANON, .u = 0x41},
    {"char NUL", TVB(0x73, 0x00, 0x00, 0x00, 0x00), LEP_TYPE_CHAR, 0x73, TV_CANON, .u = 0},
    {"char U+1F600", TVB(0x73, 0x00, 0x01, 0xf6, 0x00), LEP_TYPE_CHAR, 0x73, TV_CANON, .u = 0x1f600},
    {"char U+10FFFF", TVB(0x73, 0x00, 0x10, 0xff, 0xff), LEP_TYPE_CHAR, 0x73, TV_CANON, .u = 0x10ffff},

    /* timestamp: ms since the epoch, signed */
    {"timestamp", TVB(0x83, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00), LEP_TYPE_TIMESTAMP, 0x83,
     TV_CANON, .i = 1700000000000},
    {"timestamp -1", TVB(0x83, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), LEP_TYPE_TIMESTAMP, 0x83,
     TV_CANON, .i = -1},
    {"timestamp 0", TVB(0x83, 0, 0, 0, 0, 0, 0, 0, 0), LEP_TYPE_TIMESTAMP, 0x83, TV_CANON, .i = 0},

    /* uuid */
    {"uuid", TVB(0x98, U8X16), LEP_TYPE_UUID, 0x98, TV_CANON, .payload = TVB(U8X16)},

    /* binary */
    {"vbin8 empty", TVB(0xa0, 0x00), LEP_TYPE_BINARY, 0xa0, TV_CANON, .payload = TV_NONE},
    {"vbin8", TVB(0xa0, 0x03, 0x01, 0x00, 0xff), LEP_TYPE_BINARY, 0xa0, TV_CANON,
     .payload = TVB(0x01, 0x00, 0xff)},
    {"vbin32", TVB(0xb0, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb), LEP_TYPE_BINARY, 0xb0, TV_WIDE,
     TVB(0xa0, 0x02, 0xaa, 0xbb), .payload = TVB(0xaa, 0xbb)},
    {"vbin32 empty", TVB(0xb0, 0x00, 0x00, 0x00, 0x00), LEP_TYPE_BINARY, 0xb0, TV_WIDE, TVB(0xa0, 0x00),
     .payload = TV_NONE},

    /* string */
    {"str8 empty", TVB(0xa1, 0x00), LEP_TYPE_STRING, 0xa1, TV_CANON, .payload = TV_NONE},
    {"str8 hello", TVB(0xa1, 0x05, 'h', 'e', 'l', 'l', 'o'), LEP_TYPE_STRING, 0xa1, TV_CANON,
     .payload = TVS("hello")},
    {"str8 utf8", TVB(0xa1, 0x0a, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x00),
     LEP_TYPE_STRING, 0xa1, TV_CANON, .payload = TVS("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0")},
    {"str8 edges", TVB(0xa1, 0x0d, 0xed, 0x9f, 0xbf, 0xee, 0x80, 0x80, 0xef, 0xbf, 0xbf, 0xf4, 0x8f, 0xbf, 0xbf),
     LEP_TYPE_STRING, 0xa1, TV_CANON,
     .payload = TVS("\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf")},
    {"str32", TVB(0xb1, 0x00, 0x00, 0x00, 0x02, 'h', 'i'), LEP_TYPE_STRING, 0xb1, TV_WIDE,
     TVB(0xa1, 0x02, 'h', 'i'), .payload = TVS("hi")},

    /* symbol */
    {"sym8 empty", TVB(0xa3, 0x00), LEP_TYPE_SYMBOL, 0xa3, TV_CANON, .payload = TV_NONE},
    {"sym8", TVB(0xa3, 0x03, 'f', 'o', 'o'), LEP_TYPE_SYMBOL, 0xa3, TV_CANON, .payload = TVS("foo")},
    {"sym32", TVB(0xb3, 0x00, 0x00, 0x00, 0x03, 'b', 'a', 'r'), LEP_TYPE_SYMBOL, 0xb3, TV_WIDE,
     TVB(0xa3, 0x03, 'b', 'a', 'r'), .payload = TVS("bar")},

    /* list: size counts the count field and the elements */
    {"list0", TVB(0x45), LEP_TYPE_LIST, 0x45, TV_CANON, .payload = TV_NONE, .count = 0},
    {"list8 empty", TVB(0xc0, 0x01, 0x00), LEP_TYPE_LIST, 0xc0, TV_WIDE, TVB(0x45), .payload = TV_NONE,
     .count = 0},
    {"list8", TVB(0xc0, 0x03, 0x02, 0x41, 0x42), LEP_TYPE_LIST, 0xc0, TV_CANON, .payload = TVB(0x41, 0x42),
     .count = 2},
    {"list8 nested", TVB(0xc0, 0x08, 0x03, 0x45, 0xc0, 0x02, 0x01, 0x40, 0x52, 0x09), LEP_TYPE_LIST, 0xc0,
     TV_CANON, .payload = TVB(0x45, 0xc0, 0x02, 0x01, 0x40, 0x52, 0x09), .count = 3},
    {"list32 empty", TVB(0xd0, 0, 0, 0, 0x04, 0, 0, 0, 0), LEP_TYPE_LIST, 0xd0, TV_WIDE, TVB(0x45),
     .payload = TV_NONE, .count = 0},
    {"list32 small", TVB(0xd0, 0, 0, 0, 0x06, 0, 0, 0, 0x02, 0x41, 0x42), LEP_TYPE_LIST, 0xd0, TV_WIDE,
     TVB(0xc0, 0x03, 0x02, 0x41, 0x42), .payload = TVB(0x41, 0x42), .count = 2},
    {"list32 of list32", TVB(0xd0, 0, 0, 0, 0x0e, 0, 0, 0, 0x01, 0xd0, 0, 0, 0, 0x05, 0, 0, 0, 0x01, 0x40),
     LEP_TYPE_LIST, 0xd0, TV_WIDE, TVB(0xc0, 0x05, 0x01, 0xc0, 0x02, 0x01, 0x40),
     .payload = TVB(0xd0, 0, 0, 0, 0x05, 0, 0, 0, 0x01, 0x40), .count = 1},

    /* map: keys and values alternate, count includes both */
    {"map8 empty", TVB(0xc1, 0x01, 0x00), LEP_TYPE_MAP, 0xc1, TV_CANON, .payload = TV_NONE, .count = 0},
    {"map8", TVB(0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05), LEP_TYPE_MAP, 0xc1, TV_CANON,
     .payload = TVB(0xa3, 0x01, 'k', 0x52, 0x05), .count = 2},
    {"map8 mixed keys", TVB(0xc1, 0x0b, 0x04, 0xa1, 0x01, 'a', 0x40, 0x52, 0x07, 0xc0, 0x02, 0x01, 0x41),
     LEP_TYPE_MAP, 0xc1, TV_CANON, .payload = TVB(0xa1, 0x01, 'a', 0x40, 0x52, 0x07, 0xc0, 0x02, 0x01, 0x41),
     .count = 4},
    {"map32 empty", TVB(0xd1, 0, 0, 0, 0x04, 0, 0, 0, 0), LEP_TYPE_MAP, 0xd1, TV_WIDE, TVB(0xc1, 0x01, 0x00),
     .payload = TV_NONE, .count = 0},
    {"map32", TVB(0xd1, 0, 0, 0, 0x09, 0, 0, 0, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05), LEP_TYPE_MAP, 0xd1,
     TV_WIDE, TVB(0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05), .payload = TVB(0xa3, 0x01, 'k', 0x52, 0x05),
     .count = 2},

    /* array: size counts the count field, the element constructor and the
     * elements; elements carry no constructor of their own */
    {"array8 ubyte empty", TVB(0xe0, 0x02, 0x00, 0x50), LEP_TYPE_ARRAY, 0x50, TV_CANON, .payload = TV_NONE,
     .ctor = TVB(0x50), .count = 0},
    {"array8 ubyte", TVB(0xe0, 0x04, 0x02, 0x50, 0x01, 0x02), LEP_TYPE_ARRAY, 0x50, TV_CANON,
     .payload = TVB(0x01, 0x02), .ctor = TVB(0x50), .count = 2},
    {"array8 sym8", TVB(0xe0, 0x09, 0x02, 0xa3, 0x03, 'a', 'b', 'c', 0x02, 'd', 'e'), LEP_TYPE_ARRAY, 0xa3,
     TV_CANON, .payload = TVB(0x03, 'a', 'b', 'c', 0x02, 'd', 'e'), .ctor = TVB(0xa3), .count = 2},
    {"array8 uint0", TVB(0xe0, 0x02, 0x03, 0x43), LEP_TYPE_ARRAY, 0x43, TV_CANON, .payload = TV_NONE,
     .ctor = TVB(0x43), .count = 3},
    {"array8 smalluint", TVB(0xe0, 0x05, 0x03, 0x52, 0x01, 0x00, 0xff), LEP_TYPE_ARRAY, 0x52, TV_CANON,
     .payload = TVB(0x01, 0x00, 0xff), .ctor = TVB(0x52), .count = 3},
    {"array8 uint", TVB(0xe0, 0x0a, 0x02, 0x70, 0, 0, 0, 0x01, 0, 0, 0x01, 0x00), LEP_TYPE_ARRAY, 0x70,
     TV_CANON, .payload = TVB(0, 0, 0, 0x01, 0, 0, 0x01, 0x00), .ctor = TVB(0x70), .count = 2},
    {"array8 ulong0", TVB(0xe0, 0x02, 0x02, 0x44), LEP_TYPE_ARRAY, 0x44, TV_CANON, .payload = TV_NONE,
     .ctor = TVB(0x44), .count = 2},
    {"array8 smallulong", TVB(0xe0, 0x04, 0x02, 0x53, 0x00, 0x10), LEP_TYPE_ARRAY, 0x53, TV_CANON,
     .payload = TVB(0x00, 0x10), .ctor = TVB(0x53), .count = 2},
    {"array8 smallint", TVB(0xe0, 0x04, 0x02, 0x54, 0x80, 0x7f), LEP_TYPE_ARRAY, 0x54, TV_CANON,
     .payload = TVB(0x80, 0x7f), .ctor = TVB(0x54), .count = 2},
    {"array8 smalllong", TVB(0xe0, 0x04, 0x02, 0x55, 0xff, 0x01), LEP_TYPE_ARRAY, 0x55, TV_CANON,
     .payload = TVB(0xff, 0x01), .ctor = TVB(0x55), .count = 2},
    {"array8 boolean", TVB(0xe0, 0x05, 0x03, 0x56, 0x01, 0x00, 0x01), LEP_TYPE_ARRAY, 0x56, TV_CANON,
     .payload = TVB(0x01, 0x00, 0x01), .ctor = TVB(0x56), .count = 3},
    {"array8 null", TVB(0xe0, 0x02, 0x03, 0x40), LEP_TYPE_ARRAY, 0x40, TV_CANON, .payload = TV_NONE,
     .ctor = TVB(0x40), .count = 3},
    {"array8 true", TVB(0xe0, 0x02, 0x03, 0x41), LEP_TYPE_ARRAY, 0x41, TV_DECODE_ONLY, .payload = TV_NONE,
     .ctor = TVB(0x41), .count = 3},
    {"array8 uint 0x70 small", TVB(0xe0, 0x06, 0x01, 0x70, 0, 0, 0, 0x05), LEP_TYPE_ARRAY, 0x70, TV_WIDE,
     TVB(0xe0, 0x03, 0x01, 0x52, 0x05), .payload = TVB(0, 0, 0, 0x05), .ctor = TVB(0x70), .count = 1},
    {"array8 of list8", TVB(0xe0, 0x07, 0x02, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00), LEP_TYPE_ARRAY, 0xc0,
     TV_CANON, .payload = TVB(0x02, 0x01, 0x41, 0x01, 0x00), .ctor = TVB(0xc0), .count = 2},
    {"array8 of map8", TVB(0xe0, 0x09, 0x01, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05), LEP_TYPE_ARRAY,
     0xc1, TV_CANON, .payload = TVB(0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05), .ctor = TVB(0xc1), .count = 1},
    {"array8 of array8", TVB(0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01, 0x52, 0x03),
     LEP_TYPE_ARRAY, 0xe0, TV_CANON, .payload = TVB(0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01, 0x52, 0x03),
     .ctor = TVB(0xe0), .count = 2},
    {"array8 of str8", TVB(0xe0, 0x07, 0x02, 0xa1, 0x01, 'x', 0x02, 'y', 'z'), LEP_TYPE_ARRAY, 0xa1, TV_CANON,
     .payload = TVB(0x01, 'x', 0x02, 'y', 'z'), .ctor = TVB(0xa1), .count = 2},
    {"array8 of double", TVB(0xe0, 0x0a, 0x01, 0x82, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), LEP_TYPE_ARRAY, 0x82,
     TV_CANON, .payload = TVB(0x3f, 0xf0, 0, 0, 0, 0, 0, 0), .ctor = TVB(0x82), .count = 1},
    {"array8 of uuid", TVB(0xe0, 0x12, 0x01, 0x98, U8X16), LEP_TYPE_ARRAY, 0x98, TV_CANON,
     .payload = TVB(U8X16), .ctor = TVB(0x98), .count = 1},
    {"array8 described sym8", TVB(0xe0, 0x09, 0x02, 0x00, 0x53, 0x11, 0xa3, 0x01, 'a', 0x01, 'b'),
     LEP_TYPE_ARRAY, 0xa3, TV_CANON, .payload = TVB(0x01, 'a', 0x01, 'b'),
     .ctor = TVB(0x00, 0x53, 0x11, 0xa3), .count = 2, .skip_code = true},
    {"array8 described arrays", TVB(0xe0, 0x0a, 0x01, 0x00, 0x53, 0x11, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02),
     LEP_TYPE_ARRAY, 0xe0, TV_CANON, .payload = TVB(0x04, 0x02, 0x52, 0x01, 0x02),
     .ctor = TVB(0x00, 0x53, 0x11, 0xe0), .count = 1, .skip_code = true},
    {"array8 described lists", TVB(0xe0, 0x0a, 0x02, 0x00, 0x53, 0x12, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00),
     LEP_TYPE_ARRAY, 0xc0, TV_CANON, .payload = TVB(0x02, 0x01, 0x41, 0x01, 0x00),
     .ctor = TVB(0x00, 0x53, 0x12, 0xc0), .count = 2, .skip_code = true},
    {"array32 smalluint", TVB(0xf0, 0, 0, 0, 0x07, 0, 0, 0, 0x02, 0x52, 0x01, 0x02), LEP_TYPE_ARRAY, 0x52,
     TV_WIDE, TVB(0xe0, 0x04, 0x02, 0x52, 0x01, 0x02), .payload = TVB(0x01, 0x02), .ctor = TVB(0x52),
     .count = 2},
    {"array32 sym32", TVB(0xf0, 0, 0, 0, 0x0e, 0, 0, 0, 0x02, 0xb3, 0, 0, 0, 0x01, 'a', 0, 0, 0, 0),
     LEP_TYPE_ARRAY, 0xb3, TV_WIDE, TVB(0xe0, 0x05, 0x02, 0xa3, 0x01, 'a', 0x00),
     .payload = TVB(0, 0, 0, 0x01, 'a', 0, 0, 0, 0), .ctor = TVB(0xb3), .count = 2},

    /* described: 0x00, descriptor, value */
    {"described ulong", TVB(0x00, 0x53, 0x14, 0x45), LEP_TYPE_DESCRIBED, 0x00, TV_CANON,
     .payload = TVB(0x45), .ctor = TVB(0x53, 0x14)},
    {"described ulong0", TVB(0x00, 0x44, 0x40), LEP_TYPE_DESCRIBED, 0x00, TV_CANON, .payload = TVB(0x40),
     .ctor = TVB(0x44)},
    {"described wide ulong", TVB(0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x14, 0x45), LEP_TYPE_DESCRIBED, 0x00,
     TV_WIDE, TVB(0x00, 0x53, 0x14, 0x45), .payload = TVB(0x45), .ctor = TVB(0x80, 0, 0, 0, 0, 0, 0, 0, 0x14)},
    {"described big ulong", TVB(0x00, 0x80, 0, 0, 0x01, 0x37, 0, 0, 0, 0x01, 0xa1, 0x01, 'v'),
     LEP_TYPE_DESCRIBED, 0x00, TV_CANON, .payload = TVB(0xa1, 0x01, 'v'),
     .ctor = TVB(0x80, 0, 0, 0x01, 0x37, 0, 0, 0, 0x01)},
    {"described sym8", TVB(0x00, 0xa3, 0x05, 'x', ':', 'f', 'o', 'o', 0x40), LEP_TYPE_DESCRIBED, 0x00,
     TV_CANON, .payload = TVB(0x40), .ctor = TVB(0xa3, 0x05, 'x', ':', 'f', 'o', 'o')},
    {"described sym32", TVB(0x00, 0xb3, 0, 0, 0, 0x05, 'x', ':', 'f', 'o', 'o', 0x40), LEP_TYPE_DESCRIBED,
     0x00, TV_WIDE, TVB(0x00, 0xa3, 0x05, 'x', ':', 'f', 'o', 'o', 0x40), .payload = TVB(0x40),
     .ctor = TVB(0xb3, 0, 0, 0, 0x05, 'x', ':', 'f', 'o', 'o')},
    {"described described", TVB(0x00, 0x53, 0x01, 0x00, 0x53, 0x02, 0x52, 0x03), LEP_TYPE_DESCRIBED, 0x00,
     TV_CANON, .payload = TVB(0x00, 0x53, 0x02, 0x52, 0x03), .ctor = TVB(0x53, 0x01)},
    {"described list", TVB(0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x41, 0x52, 0x02), LEP_TYPE_DESCRIBED, 0x00,
     TV_CANON, .payload = TVB(0xc0, 0x04, 0x02, 0x41, 0x52, 0x02), .ctor = TVB(0x53, 0x70)},
};

#define TV_COUNT (sizeof tv_all / sizeof tv_all[0])

/* Malformed encodings: the decoder must return .err (or, where .alt is
 * non-zero, that one) and never crash or read outside the input. */
typedef struct tv_bad {
    const char *name;
    tv_bytes_t wire;
    int err;
    int alt;
    bool walk_ok; /* a shallow reader walk may accept it (only the tree decoder must not) */
} tv_bad_t;

static const tv_bad_t tv_bad[] = {
    /* boolean must be 0 or 1 */
    {"boolean 0x56 02", TVB(0x56, 0x02), LEP_ERR_DECODE, .alt = 0},
    {"boolean 0x56 ff", TVB(0x56, 0xff), LEP_ERR_DECODE, .alt = 0},
    /* char beyond Unicode or a surrogate */
    {"char 0x110000", TVB(0x73, 0x00, 0x11, 0x00, 0x00), LEP_ERR_DECODE, LEP_ERR_UTF8, .walk_ok = false},
    {"char 0xffffffff", TVB(0x73, 0xff, 0xff, 0xff, 0xff), LEP_ERR_DECODE, LEP_ERR_UTF8, .walk_ok = false},
    {"char surrogate D800", TVB(0x73, 0x00, 0x00, 0xd8, 0x00), LEP_ERR_DECODE, LEP_ERR_UTF8, .walk_ok = false},
    {"char surrogate DFFF", TVB(0x73, 0x00, 0x00, 0xdf, 0xff), LEP_ERR_DECODE, LEP_ERR_UTF8, .walk_ok = false},
    /* invalid UTF-8 */
    {"str8 overlong NUL", TVB(0xa1, 0x02, 0xc0, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 overlong c1", TVB(0xa1, 0x02, 0xc1, 0xbf), LEP_ERR_UTF8, .alt = 0},
    {"str8 overlong 3", TVB(0xa1, 0x03, 0xe0, 0x80, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 overlong 3 max", TVB(0xa1, 0x03, 0xe0, 0x9f, 0xbf), LEP_ERR_UTF8, .alt = 0},
    {"str8 overlong 4", TVB(0xa1, 0x04, 0xf0, 0x80, 0x80, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 overlong 4 max", TVB(0xa1, 0x04, 0xf0, 0x8f, 0xbf, 0xbf), LEP_ERR_UTF8, .alt = 0},
    {"str8 surrogate D800", TVB(0xa1, 0x03, 0xed, 0xa0, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 surrogate DFFF", TVB(0xa1, 0x03, 0xed, 0xbf, 0xbf), LEP_ERR_UTF8, .alt = 0},
    {"str8 surrogate pair", TVB(0xa1, 0x06, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 above 10FFFF", TVB(0xa1, 0x04, 0xf4, 0x90, 0x80, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 f5", TVB(0xa1, 0x04, 0xf5, 0x80, 0x80, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 f8 5-byte", TVB(0xa1, 0x05, 0xf8, 0x88, 0x80, 0x80, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 ff", TVB(0xa1, 0x01, 0xff), LEP_ERR_UTF8, .alt = 0},
    {"str8 fe", TVB(0xa1, 0x01, 0xfe), LEP_ERR_UTF8, .alt = 0},
    {"str8 lone continuation", TVB(0xa1, 0x01, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str8 truncated 2", TVB(0xa1, 0x01, 0xc3), LEP_ERR_UTF8, .alt = 0},
    {"str8 truncated 3", TVB(0xa1, 0x02, 0xe2, 0x82), LEP_ERR_UTF8, .alt = 0},
    {"str8 truncated 4", TVB(0xa1, 0x03, 0xf0, 0x9f, 0x98), LEP_ERR_UTF8, .alt = 0},
    {"str8 truncated then ascii", TVB(0xa1, 0x03, 0xe2, 0x82, 'a'), LEP_ERR_UTF8, .alt = 0},
    {"str8 bad continuation", TVB(0xa1, 0x02, 0xc3, 0x28), LEP_ERR_UTF8, .alt = 0},
    {"str8 valid then bad", TVB(0xa1, 0x04, 'a', 'b', 'c', 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str32 surrogate", TVB(0xb1, 0, 0, 0, 0x03, 0xed, 0xa0, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"str32 overlong", TVB(0xb1, 0, 0, 0, 0x02, 0xc0, 0xaf), LEP_ERR_UTF8, .alt = 0},
    /* symbols are ASCII */
    {"sym8 0x80", TVB(0xa3, 0x01, 0x80), LEP_ERR_SYMBOL, .alt = 0},
    {"sym8 utf8", TVB(0xa3, 0x03, 'a', 0xc3, 0xa9), LEP_ERR_SYMBOL, .alt = 0},
    {"sym32 0xff", TVB(0xb3, 0, 0, 0, 0x02, 'a', 0xff), LEP_ERR_SYMBOL, .alt = 0},
    /* sizes below the count field, counts the size cannot hold */
    {"list8 size 0", TVB(0xc0, 0x00), LEP_ERR_DECODE, .alt = 0},
    {"list32 size 3", TVB(0xd0, 0, 0, 0, 0x03, 0, 0, 0), LEP_ERR_DECODE, .alt = 0},
    {"list8 count > size", TVB(0xc0, 0x01, 0x02, 0x41, 0x42), LEP_ERR_DECODE, .alt = 0},
    {"list8 count 255 in 2 bytes", TVB(0xc0, 0x03, 0xff, 0x41, 0x42), LEP_ERR_DECODE, .alt = 0},
    {"list32 count 2^32-1", TVB(0xd0, 0, 0, 0, 0x05, 0xff, 0xff, 0xff, 0xff, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"map8 size 0", TVB(0xc1, 0x00), LEP_ERR_DECODE, .alt = 0},
    {"map32 size 2", TVB(0xd1, 0, 0, 0, 0x02, 0, 0), LEP_ERR_DECODE, .alt = 0},
    {"map8 odd count", TVB(0xc1, 0x02, 0x01, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"map8 odd count 3", TVB(0xc1, 0x04, 0x03, 0x40, 0x40, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"map32 odd count", TVB(0xd1, 0, 0, 0, 0x05, 0, 0, 0, 0x01, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"map8 count > size", TVB(0xc1, 0x03, 0x04, 0x40, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"array8 size 0", TVB(0xe0, 0x00), LEP_ERR_DECODE, .alt = 0},
    {"array8 no ctor", TVB(0xe0, 0x01, 0x01), LEP_ERR_DECODE, .alt = 0},
    {"array32 no ctor", TVB(0xf0, 0, 0, 0, 0x04, 0, 0, 0, 0x01), LEP_ERR_DECODE, .alt = 0},
    {"array8 unknown ctor", TVB(0xe0, 0x02, 0x01, 0xff), LEP_ERR_DECODE, .alt = 0},
    {"array8 ctor 0x01", TVB(0xe0, 0x03, 0x01, 0x01, 0x00), LEP_ERR_DECODE, .alt = 0},
    {"array8 uint count > size", TVB(0xe0, 0x06, 0x02, 0x70, 0, 0, 0, 0x01), LEP_ERR_DECODE, .alt = 0},
    {"array8 ubyte count > size", TVB(0xe0, 0x03, 0x05, 0x50, 0x01), LEP_ERR_DECODE, .alt = 0},
    {"array8 ubyte payload > count", TVB(0xe0, 0x04, 0x01, 0x50, 0x01, 0x02), LEP_ERR_DECODE, .alt = 0},
    {"array8 uint0 with payload", TVB(0xe0, 0x03, 0x02, 0x43, 0x00), LEP_ERR_DECODE, .alt = 0},
    {"array8 uint payload not a multiple", TVB(0xe0, 0x07, 0x01, 0x70, 0, 0, 0, 0x01, 0x02), LEP_ERR_DECODE,
     .alt = 0},
    {"array8 str8 element overruns", TVB(0xe0, 0x04, 0x01, 0xa1, 0x05, 'a'), LEP_ERR_DECODE, .alt = 0},
    {"array8 truncated descriptor", TVB(0xe0, 0x03, 0x01, 0x00, 0x53), LEP_ERR_DECODE, .alt = 0},
    {"array8 bad utf8 element", TVB(0xe0, 0x05, 0x01, 0xa1, 0x02, 0xc0, 0x80), LEP_ERR_UTF8, .alt = 0},
    {"array8 bad symbol element", TVB(0xe0, 0x04, 0x01, 0xa3, 0x01, 0x80), LEP_ERR_SYMBOL, .alt = 0},
    {"array8 bad boolean element", TVB(0xe0, 0x04, 0x02, 0x56, 0x01, 0x07), LEP_ERR_DECODE, .alt = 0},
    {"array8 list8 element overruns", TVB(0xe0, 0x05, 0x01, 0xc0, 0x05, 0x01, 0x40), LEP_ERR_DECODE, .alt = 0},
    /* an element that overruns its enclosing compound, although the input
     * continues: the compound's size is what counts */
    {"list8 element overruns size", TVB(0xc0, 0x02, 0x01, 0xa1, 0x03, 'a', 'b', 'c'), LEP_ERR_DECODE, .alt = 0},
    {"list8 in list8 overruns", TVB(0xc0, 0x04, 0x01, 0xc0, 0x03, 0x01, 0x40, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"list8 trailing bytes inside", TVB(0xc0, 0x03, 0x01, 0x40, 0x40), LEP_ERR_DECODE, 0, true},
    {"list8 bad utf8 element", TVB(0xc0, 0x04, 0x01, 0xa1, 0x01, 0xff), LEP_ERR_UTF8, .alt = 0},
    {"list8 unknown element", TVB(0xc0, 0x02, 0x01, 0x01), LEP_ERR_DECODE, .alt = 0},
    {"map8 bad symbol key", TVB(0xc1, 0x05, 0x02, 0xa3, 0x01, 0x80, 0x40), LEP_ERR_SYMBOL, .alt = 0},
    /* described */
    {"described unknown descriptor code", TVB(0x00, 0x02, 0x40), LEP_ERR_DECODE, .alt = 0},
    {"described bad value", TVB(0x00, 0x53, 0x01, 0x56, 0x09), LEP_ERR_DECODE, .alt = 0},
    {"described bad symbol descriptor", TVB(0x00, 0xa3, 0x01, 0xff, 0x40), LEP_ERR_SYMBOL, .alt = 0},
};

#define TV_BAD_COUNT (sizeof tv_bad / sizeof tv_bad[0])

/* ---- helpers ---- */

static inline bool
tv_bytes_eq(lep_bytes_t a, tv_bytes_t b)
{
    return a.len == b.n && (b.n == 0 || memcmp(a.ptr, b.p, b.n) == 0);
}

static inline void
tv_hex(FILE *f, const char *label, const uint8_t *p, size_t n)
{
    fprintf(f, "%s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 96; i++)
        fprintf(f, " %02x", p[i]);
    if (n > 96)
        fprintf(f, " ...");
    fprintf(f, "\n");
}

/* An exact-size heap copy, so ASan flags any read past the end. */
static inline uint8_t *
tv_dup(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (!d)
        abort();
    if (n)
        memcpy(d, p, n);
    return d;
}

/* Failure helpers (cmocka's fail_msg is expanded where these are used). */
#define TV_RC(got, want, ...)                                                      \
    do {                                                                           \
        int got_ = (got), want_ = (want);                                          \
        if (got_ != want_) {                                                       \
            char ctx_[256];                                                        \
            snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                              \
            fail_msg("%s: got %d (%s), want %d (%s)", ctx_, got_, lep_strerror(got_), \
                     want_, lep_strerror(want_));                                  \
        }                                                                          \
    } while (0)

#define TV_CHECK(cond, ...)                                                        \
    do {                                                                           \
        if (!(cond)) {                                                             \
            char ctx_[256];                                                        \
            snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                              \
            fail_msg("%s: check failed: %s", ctx_, #cond);                         \
        }                                                                          \
    } while (0)

static inline bool
tv_is_compound(lep_type_t t)
{
    return t == LEP_TYPE_LIST || t == LEP_TYPE_MAP || t == LEP_TYPE_ARRAY || t == LEP_TYPE_DESCRIBED;
}

/* Compares a decoded atom with what the vector says; NULL when they agree,
 * else what differs.  raw must be the whole vector. */
static inline const char *
tv_check_atom(const tv_t *v, const lep_atom_t *a, bool check_raw)
{
    if (a->type != v->type)
        return "type";
    if (!v->skip_code && a->code != v->code)
        return "code";
    if (check_raw && !tv_bytes_eq(a->raw, v->wire))
        return "raw";
    switch (v->type) {
    case LEP_TYPE_NULL:
        return NULL;
    case LEP_TYPE_BOOL:
        return a->u.b == (v->u != 0) ? NULL : "bool value";
    case LEP_TYPE_UBYTE: case LEP_TYPE_USHORT: case LEP_TYPE_UINT: case LEP_TYPE_ULONG:
    case LEP_TYPE_CHAR:
        return a->u.u == v->u ? NULL : "unsigned value";
    case LEP_TYPE_BYTE: case LEP_TYPE_SHORT: case LEP_TYPE_INT: case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        return a->u.i == v->i ? NULL : "signed value";
    case LEP_TYPE_FLOAT: {
        uint32_t b;
        memcpy(&b, &a->u.f, 4);
        return b == (uint32_t)v->bits ? NULL : "float bits";
    }
    case LEP_TYPE_DOUBLE: {
        uint64_t b;
        memcpy(&b, &a->u.d, 8);
        return b == v->bits ? NULL : "double bits";
    }
    case LEP_TYPE_DECIMAL32: case LEP_TYPE_DECIMAL64: case LEP_TYPE_DECIMAL128:
        return memcmp(a->u.dec, v->payload.p, v->payload.n) == 0 ? NULL : "decimal bytes";
    case LEP_TYPE_UUID:
        return memcmp(a->u.uuid, v->payload.p, 16) == 0 ? NULL : "uuid bytes";
    case LEP_TYPE_BINARY: case LEP_TYPE_STRING: case LEP_TYPE_SYMBOL:
        return tv_bytes_eq(a->u.bytes, v->payload) ? NULL : "payload";
    case LEP_TYPE_LIST: case LEP_TYPE_MAP:
        if (a->count != v->count)
            return "count";
        return tv_bytes_eq(a->content, v->payload) ? NULL : "content";
    case LEP_TYPE_ARRAY:
        if (a->count != v->count)
            return "count";
        if (!tv_bytes_eq(a->ctor, v->ctor))
            return "array ctor";
        return tv_bytes_eq(a->content, v->payload) ? NULL : "content";
    case LEP_TYPE_DESCRIBED:
        if (!tv_bytes_eq(a->ctor, v->ctor))
            return "descriptor (ctor)";
        return tv_bytes_eq(a->content, v->payload) ? NULL : "described value (content)";
    default:
        return "unexpected type in vector";
    }
}

#endif
