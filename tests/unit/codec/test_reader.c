/* Reader tests: every format code of spec part 1 section 1.6 decoded from
 * byte-exact vectors, typed reads, child readers, malformed and truncated
 * input, nesting limits, UTF-8 and ASCII validation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/codec.h>

#include "vectors.h"

/* Walks every value reachable through the streaming API (descending into
 * compounds, descriptors and described values); returns the first error.
 * *nvalues gets the number of values at the top level. */
static int
walk(lep_reader_t *r, uint32_t *nvalues)
{
    uint32_t n = 0;
    while (!lep_reader_done(r)) {
        lep_atom_t a;
        int rc = lep_reader_next(r, &a);
        if (rc)
            return rc;
        n++;
        if (a.type == LEP_TYPE_DESCRIBED) {
            lep_reader_t d;
            lep_reader_init(&d, a.ctor.ptr, a.ctor.len);
            if ((rc = walk(&d, NULL)) != 0)
                return rc;
        }
        if (tv_is_compound(a.type)) {
            lep_reader_t c;
            if ((rc = lep_reader_enter(r, &a, &c)) != 0)
                return rc;
            if ((rc = walk(&c, NULL)) != 0)
                return rc;
        }
    }
    if (nvalues)
        *nvalues = n;
    return 0;
}

static int
walk_bytes(const void *p, size_t n)
{
    lep_reader_t r;
    lep_reader_init(&r, p, n);
    return walk(&r, NULL);
}

/* ------------------------------------------------------------------ */

static void
test_vectors_next(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_COUNT; i++) {
        const tv_t *v = &tv_all[i];
        uint8_t *buf = tv_dup(v->wire.p, v->wire.n);
        lep_reader_t r;
        lep_atom_t a, pa;
        const char *why;

        lep_reader_init(&r, buf, v->wire.n);
        TV_CHECK(!lep_reader_done(&r), "%s: done before reading", v->name);
        TV_RC(lep_reader_peek(&r, &pa), 0, "%s: peek", v->name);
        TV_CHECK(lep_reader_offset(&r, buf) == 0, "%s: peek consumed", v->name);
        TV_RC(lep_reader_next(&r, &a), 0, "%s: next", v->name);
        /* the atom's views must point into our buffer */
        lep_bytes_t whole = {buf, v->wire.n};
        TV_CHECK(a.raw.ptr == whole.ptr, "%s: raw is not a view of the input", v->name);
        why = tv_check_atom(v, &a, true);
        TV_CHECK(why == NULL, "%s: atom %s differs", v->name, why ? why : "");
        why = tv_check_atom(v, &pa, true);
        TV_CHECK(why == NULL, "%s: peeked atom %s differs", v->name, why ? why : "");
        TV_CHECK(lep_reader_offset(&r, buf) == v->wire.n, "%s: consumed %zu of %zu", v->name,
                 lep_reader_offset(&r, buf), v->wire.n);
        TV_CHECK(lep_reader_done(&r), "%s: not done after the value", v->name);

        lep_reader_init(&r, buf, v->wire.n);
        TV_RC(lep_reader_skip(&r), 0, "%s: skip", v->name);
        TV_CHECK(lep_reader_offset(&r, buf) == v->wire.n, "%s: skip consumed %zu", v->name,
                 lep_reader_offset(&r, buf));

        uint32_t nv = 0;
        lep_reader_init(&r, buf, v->wire.n);
        TV_RC(walk(&r, &nv), 0, "%s: full walk", v->name);
        TV_CHECK(nv == 1, "%s: walk saw %u values", v->name, nv);
        free(buf);
    }
}

/* Values back to back in one input. */
static void
test_sequence(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x52, 0x05, 0xa1, 0x02, 'h', 'i', 0x45, 0x00, 0x53, 0x10, 0x40, 0x41};
    lep_reader_t r;
    lep_atom_t a;
    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_UINT);
    assert_int_equal(a.u.u, 5);
    assert_int_equal(lep_reader_offset(&r, in), 2);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_STRING);
    assert_true(lep_bytes_eq_str(a.u.bytes, "hi"));
    assert_int_equal(lep_reader_offset(&r, in), 6);
    assert_int_equal(lep_reader_skip(&r), 0);
    assert_int_equal(lep_reader_offset(&r, in), 7);
    assert_int_equal(lep_reader_skip(&r), 0); /* the described value, whole */
    assert_int_equal(lep_reader_offset(&r, in), 11);
    assert_false(lep_reader_done(&r));
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_BOOL);
    assert_true(a.u.b);
    assert_true(lep_reader_done(&r));
    assert_int_not_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(lep_reader_offset(&r, in), sizeof in);
}

/* ------------------------------------------------------------------ */

static const struct {
    uint8_t code;
    lep_type_t type;
} known_codes[] = {
    {0x00, LEP_TYPE_DESCRIBED}, {0x40, LEP_TYPE_NULL}, {0x41, LEP_TYPE_BOOL}, {0x42, LEP_TYPE_BOOL},
    {0x56, LEP_TYPE_BOOL}, {0x50, LEP_TYPE_UBYTE}, {0x60, LEP_TYPE_USHORT}, {0x70, LEP_TYPE_UINT},
    {0x52, LEP_TYPE_UINT}, {0x43, LEP_TYPE_UINT}, {0x80, LEP_TYPE_ULONG}, {0x53, LEP_TYPE_ULONG},
    {0x44, LEP_TYPE_ULONG}, {0x51, LEP_TYPE_BYTE}, {0x61, LEP_TYPE_SHORT}, {0x71, LEP_TYPE_INT},
    {0x54, LEP_TYPE_INT}, {0x81, LEP_TYPE_LONG}, {0x55, LEP_TYPE_LONG}, {0x72, LEP_TYPE_FLOAT},
    {0x82, LEP_TYPE_DOUBLE}, {0x74, LEP_TYPE_DECIMAL32}, {0x84, LEP_TYPE_DECIMAL64},
    {0x94, LEP_TYPE_DECIMAL128}, {0x73, LEP_TYPE_CHAR}, {0x83, LEP_TYPE_TIMESTAMP},
    {0x98, LEP_TYPE_UUID}, {0xa0, LEP_TYPE_BINARY}, {0xb0, LEP_TYPE_BINARY}, {0xa1, LEP_TYPE_STRING},
    {0xb1, LEP_TYPE_STRING}, {0xa3, LEP_TYPE_SYMBOL}, {0xb3, LEP_TYPE_SYMBOL}, {0x45, LEP_TYPE_LIST},
    {0xc0, LEP_TYPE_LIST}, {0xd0, LEP_TYPE_LIST}, {0xc1, LEP_TYPE_MAP}, {0xd1, LEP_TYPE_MAP},
    {0xe0, LEP_TYPE_ARRAY}, {0xf0, LEP_TYPE_ARRAY},
};

static int
known_type(uint8_t code)
{
    for (size_t i = 0; i < sizeof known_codes / sizeof known_codes[0]; i++)
        if (known_codes[i].code == code)
            return (int)known_codes[i].type;
    return -1;
}

static void
test_type_of_code(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++)
        TV_CHECK(lep_type_of_code((uint8_t)c) == known_type((uint8_t)c), "code 0x%02x: got %d want %d", c,
                 lep_type_of_code((uint8_t)c), known_type((uint8_t)c));
}

static void
test_type_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        [LEP_TYPE_NULL] = "null", [LEP_TYPE_BOOL] = "boolean", [LEP_TYPE_UBYTE] = "ubyte",
        [LEP_TYPE_USHORT] = "ushort", [LEP_TYPE_UINT] = "uint", [LEP_TYPE_ULONG] = "ulong",
        [LEP_TYPE_BYTE] = "byte", [LEP_TYPE_SHORT] = "short", [LEP_TYPE_INT] = "int",
        [LEP_TYPE_LONG] = "long", [LEP_TYPE_FLOAT] = "float", [LEP_TYPE_DOUBLE] = "double",
        [LEP_TYPE_DECIMAL32] = "decimal32", [LEP_TYPE_DECIMAL64] = "decimal64",
        [LEP_TYPE_DECIMAL128] = "decimal128", [LEP_TYPE_CHAR] = "char",
        [LEP_TYPE_TIMESTAMP] = "timestamp", [LEP_TYPE_UUID] = "uuid", [LEP_TYPE_BINARY] = "binary",
        [LEP_TYPE_STRING] = "string", [LEP_TYPE_SYMBOL] = "symbol", [LEP_TYPE_LIST] = "list",
        [LEP_TYPE_MAP] = "map", [LEP_TYPE_ARRAY] = "array",
    };
    for (int t = 0; t < LEP_TYPE_DESCRIBED; t++)
        TV_CHECK(strcmp(lep_type_name((lep_type_t)t), names[t]) == 0, "type %d named %s", t,
                 lep_type_name((lep_type_t)t));
    const char *d = lep_type_name(LEP_TYPE_DESCRIBED);
    assert_non_null(d);
    assert_string_not_equal(d, "?");
    assert_string_equal(lep_type_name(LEP_TYPE_COUNT_), "?");
    assert_string_equal(lep_type_name((lep_type_t)1000), "?");
    assert_string_equal(lep_type_name((lep_type_t)-1), "?");
}

/* Every code outside the spec's tables is refused, whatever follows. */
static void
test_unknown_codes(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        if (known_type((uint8_t)c) >= 0)
            continue;
        uint8_t in[40] = {(uint8_t)c};
        memset(in + 1, 0x01, sizeof in - 1);
        lep_reader_t r;
        lep_atom_t a;
        lep_value_t *v = (lep_value_t *)1;
        lep_reader_init(&r, in, sizeof in);
        TV_RC(lep_reader_next(&r, &a), LEP_ERR_DECODE, "code 0x%02x next", c);
        TV_CHECK(lep_reader_offset(&r, in) == 0, "code 0x%02x consumed input on error", c);
        lep_reader_init(&r, in, sizeof in);
        TV_RC(lep_reader_skip(&r), LEP_ERR_DECODE, "code 0x%02x skip", c);
        TV_RC(lep_value_decode(in, sizeof in, false, &v, NULL), LEP_ERR_DECODE, "code 0x%02x value", c);
        TV_CHECK(v == NULL, "code 0x%02x: *out not NULL on error", c);
        /* as a descriptor, as an array element constructor, inside a list */
        uint8_t d[4] = {0x00, (uint8_t)c, 0x40, 0x40};
        TV_RC(lep_value_decode(d, sizeof d, false, &v, NULL), LEP_ERR_DECODE, "code 0x%02x descriptor", c);
        uint8_t arr[6] = {0xe0, 0x04, 0x01, (uint8_t)c, 0x00, 0x00};
        if (c != 0x00)
            TV_RC(lep_value_decode(arr, sizeof arr, false, &v, NULL), LEP_ERR_DECODE,
                  "code 0x%02x array element", c);
        uint8_t lst[6] = {0xc0, 0x04, 0x01, (uint8_t)c, 0x00, 0x00};
        TV_RC(lep_value_decode(lst, sizeof lst, false, &v, NULL), LEP_ERR_DECODE, "code 0x%02x in list", c);
    }
}

/* Every proper prefix of every vector: incomplete, never a crash or a read
 * past the end (each prefix is an exact-size heap copy for ASan). */
static void
test_truncation(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_COUNT; i++) {
        const tv_t *v = &tv_all[i];
        for (size_t k = 0; k < v->wire.n; k++) {
            uint8_t *buf = tv_dup(v->wire.p, k);
            lep_reader_t r;
            lep_atom_t a;
            lep_value_t *val = (lep_value_t *)1;
            int rc;

            lep_reader_init(&r, buf, k);
            rc = lep_reader_next(&r, &a);
            if (k == 0)
                TV_CHECK(rc < 0, "%s: next on empty input returned %d", v->name, rc);
            else
                TV_RC(rc, LEP_ERR_INCOMPLETE, "%s: next on %zu of %zu bytes", v->name, k, v->wire.n);
            lep_reader_init(&r, buf, k);
            rc = lep_reader_peek(&r, &a);
            if (k > 0)
                TV_RC(rc, LEP_ERR_INCOMPLETE, "%s: peek on %zu of %zu bytes", v->name, k, v->wire.n);
            lep_reader_init(&r, buf, k);
            rc = lep_reader_skip(&r);
            if (k > 0)
                TV_RC(rc, LEP_ERR_INCOMPLETE, "%s: skip on %zu of %zu bytes", v->name, k, v->wire.n);
            rc = lep_value_decode(buf, k, false, &val, NULL);
            TV_RC(rc, LEP_ERR_INCOMPLETE, "%s: value_decode on %zu of %zu bytes", v->name, k, v->wire.n);
            TV_CHECK(val == NULL, "%s: *out set on error", v->name);
            rc = lep_value_decode(buf, k, true, &val, NULL);
            TV_RC(rc, LEP_ERR_INCOMPLETE, "%s: value_decode(copy) on %zu of %zu bytes", v->name, k,
                  v->wire.n);
            free(buf);
        }
    }
}

static void
test_bad_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_BAD_COUNT; i++) {
        const tv_bad_t *b = &tv_bad[i];
        uint8_t *buf = tv_dup(b->wire.p, b->wire.n);
        lep_value_t *v = (lep_value_t *)1;
        int rc = lep_value_decode(buf, b->wire.n, false, &v, NULL);
        if (b->alt && rc == b->alt)
            rc = b->err;
        TV_RC(rc, b->err, "%s: lep_value_decode", b->name);
        TV_CHECK(v == NULL, "%s: *out set on error", b->name);
        rc = lep_value_decode(buf, b->wire.n, true, &v, NULL);
        if (b->alt && rc == b->alt)
            rc = b->err;
        TV_RC(rc, b->err, "%s: lep_value_decode(copy)", b->name);

        rc = walk_bytes(buf, b->wire.n);
        if (b->alt && rc == b->alt)
            rc = b->err;
        if (!(b->walk_ok && rc == 0))
            TV_RC(rc, b->err, "%s: reader walk", b->name);

        /* and every prefix fails too, without reading past it */
        for (size_t k = 0; k < b->wire.n; k++) {
            uint8_t *pre = tv_dup(b->wire.p, k);
            rc = lep_value_decode(pre, k, false, &v, NULL);
            TV_CHECK(rc == LEP_ERR_INCOMPLETE || rc == LEP_ERR_DECODE || rc == b->err ||
                         (b->alt && rc == b->alt),
                     "%s: prefix %zu gave %d", b->name, k, rc);
            rc = walk_bytes(pre, k);
            TV_CHECK(rc <= 0, "%s: prefix walk", b->name);
            free(pre);
        }
        free(buf);
    }
}

/* Sizes and lengths near 2^32 must not wrap pointer arithmetic. */
static void
test_huge_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint8_t in[12];
        size_t n;
    } cases[] = {
        {"vbin32 4G", {0xb0, 0xff, 0xff, 0xff, 0xff, 0x00}, 6},
        {"str32 4G", {0xb1, 0xff, 0xff, 0xff, 0xff, 'a'}, 6},
        {"sym32 4G", {0xb3, 0xff, 0xff, 0xff, 0xff, 'a'}, 6},
        {"list32 4G", {0xd0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x40}, 10},
        {"map32 4G", {0xd1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0x40, 0x40}, 11},
        {"array32 4G", {0xf0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x50, 1}, 11},
        {"vbin32 2G", {0xb0, 0x80, 0x00, 0x00, 0x00, 0x00}, 6},
        {"list32 size-1", {0xd0, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x40}, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = tv_dup(cases[i].in, cases[i].n);
        lep_reader_t r;
        lep_atom_t a;
        lep_value_t *v;
        lep_reader_init(&r, buf, cases[i].n);
        TV_RC(lep_reader_next(&r, &a), LEP_ERR_INCOMPLETE, "%s: next", cases[i].name);
        TV_RC(lep_value_decode(buf, cases[i].n, false, &v, NULL), LEP_ERR_INCOMPLETE, "%s: value",
              cases[i].name);
        free(buf);
    }
}

/* Array of zero-width elements: a large count in few bytes is legal. */
static void
test_zero_width_array(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xe0, 0x02, 0xff, 0x43};
    lep_reader_t r, c;
    uint32_t count = 0, n = 0;
    lep_type_t et;
    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(count, 255);
    assert_int_equal(et, LEP_TYPE_UINT);
    while (!lep_reader_done(&c)) {
        uint32_t u = 1;
        assert_int_equal(lep_read_uint(&c, &u), 0);
        assert_int_equal(u, 0);
        n++;
        assert_true(n <= 255);
    }
    assert_int_equal(n, 255);
    lep_value_t *v;
    assert_int_equal(lep_value_decode(in, sizeof in, false, &v, NULL), 0);
    assert_int_equal(v->nchildren, 255);
    lep_value_free(v);
}

/* ------------------------------------------------------------------ */
/* Typed reads.                                                        */

enum rd {
    RD_BOOL, RD_UBYTE, RD_USHORT, RD_UINT, RD_ULONG, RD_BYTE, RD_SHORT, RD_INT, RD_LONG,
    RD_FLOAT, RD_DOUBLE, RD_CHAR, RD_TIMESTAMP, RD_UUID, RD_BINARY, RD_STRING, RD_SYMBOL,
    RD_DESCRIPTOR, RD_LIST, RD_MAP, RD_ARRAY, RD_NULL, RD_COUNT
};

static const lep_type_t rd_type[RD_COUNT] = {
    LEP_TYPE_BOOL, LEP_TYPE_UBYTE, LEP_TYPE_USHORT, LEP_TYPE_UINT, LEP_TYPE_ULONG, LEP_TYPE_BYTE,
    LEP_TYPE_SHORT, LEP_TYPE_INT, LEP_TYPE_LONG, LEP_TYPE_FLOAT, LEP_TYPE_DOUBLE, LEP_TYPE_CHAR,
    LEP_TYPE_TIMESTAMP, LEP_TYPE_UUID, LEP_TYPE_BINARY, LEP_TYPE_STRING, LEP_TYPE_SYMBOL,
    LEP_TYPE_DESCRIBED, LEP_TYPE_LIST, LEP_TYPE_MAP, LEP_TYPE_ARRAY, LEP_TYPE_NULL,
};

static const char *const rd_name[RD_COUNT] = {
    "bool", "ubyte", "ushort", "uint", "ulong", "byte", "short", "int", "long", "float", "double",
    "char", "timestamp", "uuid", "binary", "string", "symbol", "descriptor", "list", "map", "array",
    "null",
};

typedef struct rd_out {
    bool b;
    uint64_t u;
    int64_t i;
    uint64_t bits;
    uint8_t uuid[16];
    lep_bytes_t bytes;
    uint64_t code;
    lep_reader_t child;
    uint32_t count;
    lep_type_t et;
} rd_out_t;

static int
do_read(enum rd k, lep_reader_t *r, rd_out_t *o)
{
    int rc;
    memset(o, 0, sizeof *o);
    switch (k) {
    case RD_BOOL: return lep_read_bool(r, &o->b);
    case RD_UBYTE: { uint8_t x; rc = lep_read_ubyte(r, &x); o->u = x; return rc; }
    case RD_USHORT: { uint16_t x; rc = lep_read_ushort(r, &x); o->u = x; return rc; }
    case RD_UINT: { uint32_t x; rc = lep_read_uint(r, &x); o->u = x; return rc; }
    case RD_ULONG: return lep_read_ulong(r, &o->u);
    case RD_BYTE: { int8_t x; rc = lep_read_byte(r, &x); o->i = x; return rc; }
    case RD_SHORT: { int16_t x; rc = lep_read_short(r, &x); o->i = x; return rc; }
    case RD_INT: { int32_t x; rc = lep_read_int(r, &x); o->i = x; return rc; }
    case RD_LONG: return lep_read_long(r, &o->i);
    case RD_FLOAT: {
        float f;
        uint32_t b;
        rc = lep_read_float(r, &f);
        memcpy(&b, &f, 4);
        o->bits = b;
        return rc;
    }
    case RD_DOUBLE: {
        double d;
        rc = lep_read_double(r, &d);
        memcpy(&o->bits, &d, 8);
        return rc;
    }
    case RD_CHAR: { uint32_t x; rc = lep_read_char(r, &x); o->u = x; return rc; }
    case RD_TIMESTAMP: return lep_read_timestamp(r, &o->i);
    case RD_UUID: return lep_read_uuid(r, o->uuid);
    case RD_BINARY: return lep_read_binary(r, &o->bytes);
    case RD_STRING: return lep_read_string(r, &o->bytes);
    case RD_SYMBOL: return lep_read_symbol(r, &o->bytes);
    case RD_DESCRIPTOR:
        o->code = 0xdeadbeef;
        o->bytes = LEP_BYTES("junk", 4);
        return lep_read_descriptor(r, &o->code, &o->bytes);
    case RD_LIST: return lep_read_list(r, &o->child, &o->count);
    case RD_MAP: return lep_read_map(r, &o->child, &o->count);
    case RD_ARRAY: return lep_read_array(r, &o->child, &o->count, &o->et);
    case RD_NULL: return lep_read_null(r) ? 0 : LEP_ERR_TYPE;
    default: return LEP_ERR_INVALID;
    }
}

/* Checks a successful typed read against the vector. */
static void
check_read(const tv_t *v, enum rd k, const rd_out_t *o, const lep_reader_t *r, const uint8_t *buf)
{
    size_t off = lep_reader_offset(r, buf);
    switch (k) {
    case RD_BOOL:
        TV_CHECK(o->b == (v->u != 0), "%s: read_bool value", v->name);
        break;
    case RD_UBYTE: case RD_USHORT: case RD_UINT: case RD_ULONG: case RD_CHAR:
        TV_CHECK(o->u == v->u, "%s: read_%s gave %llu", v->name, rd_name[k], (unsigned long long)o->u);
        break;
    case RD_BYTE: case RD_SHORT: case RD_INT: case RD_LONG: case RD_TIMESTAMP:
        TV_CHECK(o->i == v->i, "%s: read_%s gave %lld", v->name, rd_name[k], (long long)o->i);
        break;
    case RD_FLOAT: case RD_DOUBLE:
        TV_CHECK(o->bits == v->bits, "%s: read_%s bits", v->name, rd_name[k]);
        break;
    case RD_UUID:
        TV_CHECK(memcmp(o->uuid, v->payload.p, 16) == 0, "%s: uuid", v->name);
        break;
    case RD_BINARY: case RD_STRING: case RD_SYMBOL:
        TV_CHECK(tv_bytes_eq(o->bytes, v->payload), "%s: read_%s payload", v->name, rd_name[k]);
        TV_CHECK(o->bytes.len == 0 || (o->bytes.ptr >= buf && o->bytes.ptr < buf + v->wire.n),
                 "%s: payload is not a view of the input", v->name);
        break;
    case RD_DESCRIPTOR: {
        lep_reader_t d;
        uint64_t code;
        lep_bytes_t name;
        lep_reader_init(&d, v->ctor.p, v->ctor.n);
        if (lep_read_ulong(&d, &code) == 0) {
            TV_CHECK(o->code == code, "%s: descriptor code %llu", v->name, (unsigned long long)o->code);
            TV_CHECK(o->bytes.ptr == NULL && o->bytes.len == 0, "%s: name not zeroed", v->name);
        } else {
            lep_reader_init(&d, v->ctor.p, v->ctor.n);
            assert_int_equal(lep_read_symbol(&d, &name), 0);
            TV_CHECK(lep_bytes_eq(o->bytes, name), "%s: descriptor name", v->name);
            TV_CHECK(o->code == 0, "%s: code not zeroed", v->name);
        }
        TV_CHECK(off == v->wire.n - v->payload.n, "%s: reader at %zu, not at the described value", v->name,
                 off);
        /* the described value follows */
        lep_atom_t a;
        lep_reader_t rest = *r;
        TV_RC(lep_reader_next(&rest, &a), 0, "%s: described value", v->name);
        TV_CHECK(tv_bytes_eq(a.raw, v->payload), "%s: described value raw", v->name);
        TV_CHECK(lep_reader_done(&rest), "%s: done after the described value", v->name);
        return;
    }
    case RD_LIST: case RD_MAP: case RD_ARRAY: {
        uint32_t n = 0;
        lep_reader_t c = o->child;
        TV_CHECK(o->count == v->count, "%s: count %u", v->name, o->count);
        TV_RC(walk(&c, &n), 0, "%s: child walk", v->name);
        TV_CHECK(n == v->count, "%s: child gave %u values, count %u", v->name, n, v->count);
        if (k == RD_ARRAY && !v->skip_code)
            TV_CHECK((int)o->et == lep_type_of_code(v->code), "%s: element type %d", v->name, (int)o->et);
        break;
    }
    case RD_NULL:
        break;
    default:
        fail();
    }
    TV_CHECK(off == v->wire.n, "%s: read_%s consumed %zu of %zu", v->name, rd_name[k], off, v->wire.n);
    TV_CHECK(lep_reader_done(r), "%s: not done after read_%s", v->name, rd_name[k]);
}

static void
test_typed_reads(void **state)
{
    (void)state;
    for (size_t i = 0; i < TV_COUNT; i++) {
        const tv_t *v = &tv_all[i];
        uint8_t *buf = tv_dup(v->wire.p, v->wire.n);
        for (int k = 0; k < RD_COUNT; k++) {
            lep_reader_t r, before;
            rd_out_t o;
            lep_reader_init(&r, buf, v->wire.n);
            before = r;
            int rc = do_read((enum rd)k, &r, &o);
            if (rd_type[k] == v->type) {
                TV_RC(rc, 0, "%s: read_%s", v->name, rd_name[k]);
                check_read(v, (enum rd)k, &o, &r, buf);
            } else {
                TV_RC(rc, LEP_ERR_TYPE, "%s: read_%s", v->name, rd_name[k]);
                TV_CHECK(r.p == before.p && r.end == before.end && r.remaining == before.remaining,
                         "%s: read_%s consumed on a type error", v->name, rd_name[k]);
            }
        }
        free(buf);
    }
}

/* Malformed input gives the decode error, not a type error, and a
 * truncated value gives INCOMPLETE, for the typed reads too. */
static void
test_typed_reads_errors(void **state)
{
    (void)state;
    static const struct {
        enum rd k;
        uint8_t in[8];
        size_t n;
        int err;
    } cases[] = {
        {RD_BOOL, {0x56, 0x02}, 2, LEP_ERR_DECODE},
        {RD_BOOL, {0x56}, 1, LEP_ERR_INCOMPLETE},
        {RD_UINT, {0x70, 0, 0}, 3, LEP_ERR_INCOMPLETE},
        {RD_UINT, {0x52}, 1, LEP_ERR_INCOMPLETE},
        {RD_ULONG, {0x80, 0, 0, 0, 0, 0, 0}, 7, LEP_ERR_INCOMPLETE},
        {RD_STRING, {0xa1, 0x02, 0xc0, 0x80}, 4, LEP_ERR_UTF8},
        {RD_STRING, {0xa1, 0x03, 'a'}, 3, LEP_ERR_INCOMPLETE},
        {RD_SYMBOL, {0xa3, 0x01, 0xe9}, 3, LEP_ERR_SYMBOL},
        {RD_CHAR, {0x73, 0x00, 0x00, 0xd8, 0x00}, 5, LEP_ERR_DECODE},
        {RD_LIST, {0xc0, 0x01, 0x02, 0x40}, 4, LEP_ERR_DECODE},
        {RD_MAP, {0xc1, 0x02, 0x01, 0x40}, 4, LEP_ERR_DECODE},
        {RD_ARRAY, {0xe0, 0x01, 0x01}, 3, LEP_ERR_DECODE},
        {RD_DESCRIPTOR, {0x00, 0x53}, 2, LEP_ERR_INCOMPLETE},
        {RD_DESCRIPTOR, {0x00, 0xa3, 0x01, 0x80, 0x40}, 5, LEP_ERR_SYMBOL},
        {RD_UINT, {0x01}, 1, LEP_ERR_DECODE},
        {RD_LIST, {0xff}, 1, LEP_ERR_DECODE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = tv_dup(cases[i].in, cases[i].n);
        lep_reader_t r;
        rd_out_t o;
        lep_reader_init(&r, buf, cases[i].n);
        int rc = do_read(cases[i].k, &r, &o);
        if (cases[i].k == RD_CHAR && rc == LEP_ERR_UTF8)
            rc = LEP_ERR_DECODE;
        TV_RC(rc, cases[i].err, "case %zu: read_%s", i, rd_name[cases[i].k]);
        free(buf);
    }
    /* an empty reader has nothing to read */
    for (int k = 0; k < RD_COUNT; k++) {
        lep_reader_t r;
        rd_out_t o;
        lep_reader_init(&r, "", 0);
        TV_CHECK(do_read((enum rd)k, &r, &o) < 0, "read_%s on empty input", rd_name[k]);
    }
}

/* ------------------------------------------------------------------ */
/* Child readers.                                                      */

static void
test_enter_list_map(void **state)
{
    (void)state;
    /* {"a": null, 7: [true]} followed by a smalluint */
    static const uint8_t in[] = {0xc1, 0x0b, 0x04, 0xa1, 0x01, 'a', 0x40, 0x52, 0x07,
                                 0xc0, 0x02, 0x01, 0x41, 0x52, 0x63};
    lep_reader_t r, m, l;
    lep_bytes_t s;
    uint32_t u, count;
    bool b;

    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_read_map(&r, &m, &count), 0);
    assert_int_equal(count, 4);
    assert_int_equal(lep_reader_offset(&r, in), 13);
    assert_int_equal(lep_read_string(&m, &s), 0);
    assert_true(lep_bytes_eq_str(s, "a"));
    assert_int_equal(lep_read_uint(&m, &u), LEP_ERR_TYPE);
    assert_true(lep_read_null(&m));
    assert_false(lep_read_null(&m));
    assert_int_equal(lep_read_uint(&m, &u), 0);
    assert_int_equal(u, 7);
    assert_false(lep_reader_done(&m));
    assert_int_equal(lep_read_list(&m, &l, &count), 0);
    assert_int_equal(count, 1);
    assert_true(lep_reader_done(&m));
    assert_int_equal(lep_read_bool(&l, &b), 0);
    assert_true(b);
    assert_true(lep_reader_done(&l));
    /* a done child refuses further reads; the parent goes on */
    assert_int_not_equal(lep_read_bool(&l, &b), 0);
    assert_int_not_equal(lep_read_uint(&m, &u), 0);
    assert_int_equal(lep_read_uint(&r, &u), 0);
    assert_int_equal(u, 0x63);
    assert_true(lep_reader_done(&r));

    /* lep_reader_enter from an atom gives the same child */
    lep_atom_t a;
    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(lep_reader_enter(&r, &a, &m), 0);
    assert_int_equal(lep_reader_next(&m, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_STRING);
    /* entering a scalar is refused */
    assert_int_not_equal(lep_reader_enter(&m, &a, &l), 0);
}

static void
test_enter_described(void **state)
{
    (void)state;
    /* @0x70 [true, 2] */
    static const uint8_t in[] = {0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x41, 0x52, 0x02};
    lep_reader_t r, c, l;
    lep_atom_t a;
    uint64_t code;
    lep_bytes_t name;
    uint32_t count, u;

    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_DESCRIBED);
    assert_int_equal(lep_reader_enter(&r, &a, &c), 0);
    assert_int_equal(lep_read_list(&c, &l, &count), 0);
    assert_true(lep_reader_done(&c));
    assert_int_equal(count, 2);

    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_read_descriptor(&r, &code, &name), 0);
    assert_int_equal(code, 0x70);
    assert_int_equal(lep_read_list(&r, &l, &count), 0);
    assert_true(lep_reader_done(&r));
    assert_true(lep_read_null(&l) == false);
    assert_int_equal(lep_reader_skip(&l), 0);
    assert_int_equal(lep_read_uint(&l, &u), 0);
    assert_int_equal(u, 2);
    assert_true(lep_reader_done(&l));
}

static void
test_enter_arrays(void **state)
{
    (void)state;
    lep_reader_t r, c, cc;
    uint32_t count, u;
    lep_type_t et;
    lep_bytes_t s;
    lep_atom_t a;

    /* uint0 elements */
    static const uint8_t zeros[] = {0xe0, 0x02, 0x03, 0x43};
    lep_reader_init(&r, zeros, sizeof zeros);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_UINT);
    for (int i = 0; i < 3; i++) {
        u = 99;
        assert_int_equal(lep_read_uint(&c, &u), 0);
        assert_int_equal(u, 0);
    }
    assert_true(lep_reader_done(&c));
    assert_int_not_equal(lep_read_uint(&c, &u), 0);

    /* uint elements, then a wrong-type read */
    static const uint8_t wide[] = {0xe0, 0x0a, 0x02, 0x70, 0, 0, 0, 0x01, 0, 0, 0x01, 0x00};
    lep_reader_init(&r, wide, sizeof wide);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    uint64_t ul;
    assert_int_equal(lep_read_ulong(&c, &ul), LEP_ERR_TYPE);
    assert_int_equal(lep_read_uint(&c, &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(lep_reader_peek(&c, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_UINT);
    assert_int_equal(a.u.u, 256);
    assert_int_equal(lep_read_uint(&c, &u), 0);
    assert_int_equal(u, 256);
    assert_true(lep_reader_done(&c));

    /* sym8 elements */
    static const uint8_t syms[] = {0xe0, 0x09, 0x02, 0xa3, 0x03, 'a', 'b', 'c', 0x02, 'd', 'e'};
    lep_reader_init(&r, syms, sizeof syms);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_SYMBOL);
    assert_int_equal(lep_read_string(&c, &s), LEP_ERR_TYPE);
    assert_int_equal(lep_read_symbol(&c, &s), 0);
    assert_true(lep_bytes_eq_str(s, "abc"));
    assert_int_equal(lep_reader_skip(&c), 0);
    assert_true(lep_reader_done(&c));

    /* array of arrays */
    static const uint8_t aa[] = {0xe0, 0x0b, 0x02, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02, 0x03, 0x01, 0x52, 0x03};
    lep_reader_init(&r, aa, sizeof aa);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_ARRAY);
    assert_int_equal(count, 2);
    assert_int_equal(lep_read_array(&c, &cc, &count, &et), 0);
    assert_int_equal(count, 2);
    assert_int_equal(et, LEP_TYPE_UINT);
    assert_int_equal(lep_read_uint(&cc, &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(lep_read_uint(&cc, &u), 0);
    assert_int_equal(u, 2);
    assert_true(lep_reader_done(&cc));
    assert_int_equal(lep_reader_next(&c, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_ARRAY);
    assert_int_equal(a.count, 1);
    assert_int_equal(lep_reader_enter(&c, &a, &cc), 0);
    assert_int_equal(lep_read_uint(&cc, &u), 0);
    assert_int_equal(u, 3);
    assert_true(lep_reader_done(&cc));
    assert_true(lep_reader_done(&c));

    /* array of lists: list8 elements without constructors */
    static const uint8_t al[] = {0xe0, 0x07, 0x02, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00};
    bool b;
    lep_reader_init(&r, al, sizeof al);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_LIST);
    assert_int_equal(lep_read_list(&c, &cc, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(lep_read_bool(&cc, &b), 0);
    assert_true(b);
    assert_int_equal(lep_read_list(&c, &cc, &count), 0);
    assert_int_equal(count, 0);
    assert_true(lep_reader_done(&cc));
    assert_true(lep_reader_done(&c));

    /* array of maps */
    static const uint8_t am[] = {0xe0, 0x09, 0x01, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x05};
    lep_reader_init(&r, am, sizeof am);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_MAP);
    assert_int_equal(lep_read_map(&c, &cc, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(lep_read_symbol(&cc, &s), 0);
    assert_true(lep_bytes_eq_str(s, "k"));
    assert_int_equal(lep_read_uint(&cc, &u), 0);
    assert_int_equal(u, 5);
    assert_true(lep_reader_done(&c));

    /* booleans: 0x56 elements and 0x41 (all true, zero width) */
    static const uint8_t ab[] = {0xe0, 0x05, 0x03, 0x56, 0x01, 0x00, 0x01};
    lep_reader_init(&r, ab, sizeof ab);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_BOOL);
    assert_int_equal(lep_read_bool(&c, &b), 0);
    assert_true(b);
    assert_int_equal(lep_read_bool(&c, &b), 0);
    assert_false(b);
    assert_int_equal(lep_read_bool(&c, &b), 0);
    assert_true(b);
    assert_true(lep_reader_done(&c));
    static const uint8_t at[] = {0xe0, 0x02, 0x02, 0x41};
    lep_reader_init(&r, at, sizeof at);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(lep_read_bool(&c, &b), 0);
    assert_true(b);
    assert_int_equal(lep_read_bool(&c, &b), 0);
    assert_true(b);
    assert_true(lep_reader_done(&c));

    /* array32 of str32 */
    static const uint8_t as[] = {0xf0, 0, 0, 0, 0x0e, 0, 0, 0, 0x02, 0xb1, 0, 0, 0, 0x01, 'a', 0, 0, 0, 0};
    lep_reader_init(&r, as, sizeof as);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(et, LEP_TYPE_STRING);
    assert_int_equal(lep_read_string(&c, &s), 0);
    assert_true(lep_bytes_eq_str(s, "a"));
    assert_int_equal(lep_read_string(&c, &s), 0);
    assert_int_equal(s.len, 0);
    assert_true(lep_reader_done(&c));
    assert_true(lep_reader_done(&r));
}

/* Described array elements: each element reads as a described atom whose
 * descriptor is the array's and whose value is entered like any other. */
static void
test_enter_described_array(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xe0, 0x09, 0x02, 0x00, 0x53, 0x11, 0xa3, 0x01, 'a', 0x01, 'b'};
    lep_reader_t r, c, v, d;
    lep_atom_t a;
    uint32_t count;
    lep_type_t et;
    uint64_t code;
    lep_bytes_t s;

    lep_reader_init(&r, in, sizeof in);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(count, 2);
    assert_int_equal(et, LEP_TYPE_DESCRIBED);
    assert_true(lep_reader_done(&r));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(lep_reader_next(&c, &a), 0);
        assert_int_equal(a.type, LEP_TYPE_DESCRIBED);
        lep_reader_init(&d, a.ctor.ptr, a.ctor.len);
        assert_int_equal(lep_read_ulong(&d, &code), 0);
        assert_int_equal(code, 0x11);
        assert_int_equal(lep_reader_enter(&c, &a, &v), 0);
        assert_int_equal(lep_read_symbol(&v, &s), 0);
        assert_true(lep_bytes_eq_str(s, i ? "b" : "a"));
        assert_true(lep_reader_done(&v));
    }
    assert_true(lep_reader_done(&c));
}

/* Described elements that are arrays or lists: the described value is
 * decoded with the array's element code, not with its own inner one. */
static void
test_enter_described_array_of_compounds(void **state)
{
    (void)state;
    static const uint8_t aa[] = {0xe0, 0x0a, 0x01, 0x00, 0x53, 0x11, 0xe0, 0x04, 0x02, 0x52, 0x01, 0x02};
    static const uint8_t al[] = {0xe0, 0x0a, 0x02, 0x00, 0x53, 0x12, 0xc0, 0x02, 0x01, 0x41, 0x01, 0x00};
    lep_reader_t r, c, v, w;
    lep_atom_t a;
    uint32_t count, u;
    lep_type_t et;
    bool b;

    lep_reader_init(&r, aa, sizeof aa);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(count, 1);
    assert_int_equal(lep_reader_next(&c, &a), 0);
    assert_int_equal(a.type, LEP_TYPE_DESCRIBED);
    assert_int_equal(lep_reader_enter(&c, &a, &v), 0);
    assert_int_equal(lep_read_array(&v, &w, &count, &et), 0);
    assert_int_equal(count, 2);
    assert_int_equal(et, LEP_TYPE_UINT);
    assert_int_equal(lep_read_uint(&w, &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(lep_read_uint(&w, &u), 0);
    assert_int_equal(u, 2);
    assert_true(lep_reader_done(&w));
    assert_true(lep_reader_done(&v));
    assert_true(lep_reader_done(&c));

    lep_reader_init(&r, al, sizeof al);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(count, 2);
    assert_int_equal(lep_reader_next(&c, &a), 0);
    assert_int_equal(lep_reader_enter(&c, &a, &v), 0);
    assert_int_equal(lep_read_list(&v, &w, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(lep_read_bool(&w, &b), 0);
    assert_true(b);
    assert_int_equal(lep_reader_next(&c, &a), 0);
    assert_int_equal(lep_reader_enter(&c, &a, &v), 0);
    assert_int_equal(lep_read_list(&v, &w, &count), 0);
    assert_int_equal(count, 0);
    assert_true(lep_reader_done(&c));
}

/* An empty array without an element constructor is tolerated (some
 * encoders write one); a non-empty one is not. */
static void
test_empty_array_without_ctor(void **state)
{
    (void)state;
    static const uint8_t in8[] = {0xe0, 0x01, 0x00};
    static const uint8_t in32[] = {0xf0, 0, 0, 0, 0x04, 0, 0, 0, 0};
    const uint8_t *ins[] = {in8, in32};
    size_t lens[] = {sizeof in8, sizeof in32};
    for (int i = 0; i < 2; i++) {
        lep_reader_t r, c;
        uint32_t count = 9;
        lep_type_t et;
        lep_reader_init(&r, ins[i], lens[i]);
        assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
        assert_int_equal(count, 0);
        assert_true(lep_reader_done(&c));
        assert_true(lep_reader_done(&r));
        lep_value_t *v;
        assert_int_equal(lep_value_decode(ins[i], lens[i], false, &v, NULL), 0);
        assert_int_equal(v->atom.type, LEP_TYPE_ARRAY);
        assert_int_equal(v->nchildren, 0);
        lep_value_free(v);
    }
}

/* ------------------------------------------------------------------ */
/* Nesting limits.                                                      */

/* depth nested list32s around a null. */
static uint8_t *
nested_lists(size_t depth, size_t *len)
{
    size_t n = depth * 9 + 1;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < depth; i++) {
        size_t size = n - (i * 9) - 5; /* count field + what follows */
        uint8_t *p = b + i * 9;
        p[0] = 0xd0;
        p[1] = (uint8_t)(size >> 24), p[2] = (uint8_t)(size >> 16), p[3] = (uint8_t)(size >> 8);
        p[4] = (uint8_t)size;
        p[5] = p[6] = p[7] = 0;
        p[8] = 1;
    }
    b[n - 1] = 0x40;
    *len = n;
    return b;
}

static uint8_t *
nested_described(size_t depth, size_t *len)
{
    size_t n = depth * 3 + 1;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < depth; i++)
        b[i * 3] = 0x00, b[i * 3 + 1] = 0x53, b[i * 3 + 2] = 0x01;
    b[n - 1] = 0x40;
    *len = n;
    return b;
}

/* depth nested array32s of arrays, the innermost an array of one ubyte */
static uint8_t *
nested_arrays(size_t depth, size_t *len)
{
    /* outermost has a constructor; inner arrays are elements without one */
    size_t n = 1 + 4 + 4 + 1 + (depth - 1) * (4 + 4 + 1) + 1;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    size_t o = 0;
    b[o++] = 0xf0;
    for (size_t i = 0; i < depth; i++) {
        size_t size = n - o - 4;
        b[o++] = (uint8_t)(size >> 24), b[o++] = (uint8_t)(size >> 16);
        b[o++] = (uint8_t)(size >> 8), b[o++] = (uint8_t)size;
        b[o++] = 0, b[o++] = 0, b[o++] = 0, b[o++] = 1;
        b[o++] = i + 1 < depth ? 0xf0 : 0x50;
    }
    b[o++] = 0x07;
    assert_int_equal(o, n);
    *len = n;
    return b;
}

static int
walk_depth(lep_reader_t *r, size_t *reached)
{
    for (;;) {
        lep_atom_t a;
        lep_reader_t c;
        int rc = lep_reader_next(r, &a);
        if (rc)
            return rc;
        if (!tv_is_compound(a.type))
            return 0;
        if ((rc = lep_reader_enter(r, &a, &c)) != 0)
            return rc;
        (*reached)++;
        *r = c;
    }
}

static void
check_depth(uint8_t *(*make)(size_t, size_t *), const char *what)
{
    size_t depths[] = {1, LEP_CODEC_MAX_DEPTH - 1, LEP_CODEC_MAX_DEPTH, LEP_CODEC_MAX_DEPTH + 1,
                       LEP_CODEC_MAX_DEPTH + 2, 300, 20000};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        size_t d = depths[i], n, reached = 0;
        uint8_t *b = make(d, &n);
        int want = d <= LEP_CODEC_MAX_DEPTH ? 0 : LEP_ERR_LIMIT;
        lep_value_t *v = NULL;
        TV_RC(lep_value_decode(b, n, false, &v, NULL), want, "%s depth %zu: value_decode", what, d);
        lep_value_free(v);
        lep_reader_t r;
        lep_reader_init(&r, b, n);
        TV_RC(walk_depth(&r, &reached), want, "%s depth %zu: reader walk", what, d);
        TV_CHECK(reached <= LEP_CODEC_MAX_DEPTH, "%s: entered %zu levels", what, reached);
        if (!want)
            TV_CHECK(reached == d, "%s: entered %zu of %zu levels", what, reached, d);
        /* skipping a deep value is bounded too, and never crashes */
        lep_reader_init(&r, b, n);
        int rc = lep_reader_skip(&r);
        TV_CHECK(rc == 0 || rc == LEP_ERR_LIMIT, "%s depth %zu: skip gave %d", what, d, rc);
        free(b);
    }
}

static void
test_depth_limit(void **state)
{
    (void)state;
    check_depth(nested_lists, "lists");
    check_depth(nested_described, "described");
    check_depth(nested_arrays, "arrays");
}

/* ------------------------------------------------------------------ */
/* Large values: 32-bit widths with real content.                       */

static void
test_large_values(void **state)
{
    (void)state;
    size_t n = 70000;
    uint8_t *b = malloc(n + 5);
    assert_non_null(b);
    b[0] = 0xb0;
    b[1] = 0, b[2] = (uint8_t)(n >> 16), b[3] = (uint8_t)(n >> 8), b[4] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        b[5 + i] = (uint8_t)(i * 7);
    lep_reader_t r;
    lep_bytes_t bin;
    lep_reader_init(&r, b, n + 5);
    assert_int_equal(lep_read_binary(&r, &bin), 0);
    assert_int_equal(bin.len, n);
    assert_ptr_equal(bin.ptr, b + 5);
    assert_true(lep_reader_done(&r));
    b[0] = 0xb1;
    for (size_t i = 0; i < n; i++)
        b[5 + i] = 'a' + (uint8_t)(i % 26);
    lep_reader_init(&r, b, n + 5);
    assert_int_equal(lep_read_string(&r, &bin), 0);
    assert_int_equal(bin.len, n);
    b[n + 4] = 0x80; /* the last byte invalidates the string */
    lep_reader_init(&r, b, n + 5);
    assert_int_equal(lep_read_string(&r, &bin), LEP_ERR_UTF8);
    free(b);

    /* list32 of 1000 smalluints, array32 of 1000 uints */
    size_t cnt = 1000;
    size_t ln = 9 + cnt * 2;
    b = malloc(ln);
    assert_non_null(b);
    size_t size = ln - 5;
    b[0] = 0xd0;
    b[1] = 0, b[2] = 0, b[3] = (uint8_t)(size >> 8), b[4] = (uint8_t)size;
    b[5] = 0, b[6] = 0, b[7] = (uint8_t)(cnt >> 8), b[8] = (uint8_t)cnt;
    for (size_t i = 0; i < cnt; i++)
        b[9 + 2 * i] = 0x52, b[10 + 2 * i] = (uint8_t)i;
    lep_reader_t c;
    uint32_t count, u;
    lep_reader_init(&r, b, ln);
    assert_int_equal(lep_read_list(&r, &c, &count), 0);
    assert_int_equal(count, cnt);
    for (size_t i = 0; i < cnt; i++) {
        assert_int_equal(lep_read_uint(&c, &u), 0);
        assert_int_equal(u, (uint8_t)i);
    }
    assert_true(lep_reader_done(&c));
    free(b);

    ln = 10 + cnt * 4;
    b = malloc(ln);
    assert_non_null(b);
    size = ln - 5;
    b[0] = 0xf0;
    b[1] = 0, b[2] = 0, b[3] = (uint8_t)(size >> 8), b[4] = (uint8_t)size;
    b[5] = 0, b[6] = 0, b[7] = (uint8_t)(cnt >> 8), b[8] = (uint8_t)cnt;
    b[9] = 0x70;
    for (size_t i = 0; i < cnt; i++) {
        uint32_t x = (uint32_t)i * 100000u;
        b[10 + 4 * i] = (uint8_t)(x >> 24), b[11 + 4 * i] = (uint8_t)(x >> 16);
        b[12 + 4 * i] = (uint8_t)(x >> 8), b[13 + 4 * i] = (uint8_t)x;
    }
    lep_type_t et;
    lep_reader_init(&r, b, ln);
    assert_int_equal(lep_read_array(&r, &c, &count, &et), 0);
    assert_int_equal(count, cnt);
    for (size_t i = 0; i < cnt; i++) {
        assert_int_equal(lep_read_uint(&c, &u), 0);
        assert_int_equal(u, (uint32_t)i * 100000u);
    }
    assert_true(lep_reader_done(&c));
    lep_value_t *v;
    assert_int_equal(lep_value_decode(b, ln, false, &v, NULL), 0);
    assert_int_equal(v->nchildren, cnt);
    assert_int_equal(v->children[999].atom.u.u, 99900000u);
    lep_value_free(v);
    free(b);
}

/* ------------------------------------------------------------------ */
/* UTF-8 and ASCII validation against a straightforward reference.      */

static bool
ref_utf8(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i];
        size_t len;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static void
test_utf8_exhaustive(void **state)
{
    (void)state;
    uint8_t b[6];
    for (unsigned x = 0; x < 0x100; x++) {
        b[0] = (uint8_t)x;
        TV_CHECK(lep_utf8_valid(b, 1) == ref_utf8(b, 1), "utf8 %02x", x);
        TV_CHECK(lep_ascii_valid(b, 1) == (x < 0x80), "ascii %02x", x);
    }
    for (unsigned x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8), b[1] = (uint8_t)x;
        TV_CHECK(lep_utf8_valid(b, 2) == ref_utf8(b, 2), "utf8 %02x %02x", b[0], b[1]);
    }
    /* three-byte sequences whose lead byte needs continuation bytes; the
     * rest is covered by the one- and two-byte loops */
    for (unsigned x = 0xe0; x < 0x100; x++)
        for (unsigned y = 0; y < 0x100; y++)
            for (unsigned z = 0; z < 0x100; z++) {
                b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z;
                if (lep_utf8_valid(b, 3) != ref_utf8(b, 3))
                    fail_msg("utf8 %02x %02x %02x: lepton %d", x, y, z, lep_utf8_valid(b, 3));
            }
    /* four-byte sequences: every lead byte and second byte, sampled tails */
    for (unsigned x = 0xf0; x < 0x100; x++)
        for (unsigned y = 0; y < 0x100; y++)
            for (unsigned z = 0x70; z < 0xd0; z += 0x0f)
                for (unsigned w = 0x70; w < 0xd0; w += 0x0f) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = (uint8_t)z, b[3] = (uint8_t)w;
                    if (lep_utf8_valid(b, 4) != ref_utf8(b, 4))
                        fail_msg("utf8 %02x %02x %02x %02x", x, y, z, w);
                }
    /* a valid sequence cut short at the end of the buffer */
    static const uint8_t smile[] = {'x', 0xf0, 0x9f, 0x98, 0x80};
    for (size_t k = 0; k <= sizeof smile; k++)
        TV_CHECK(lep_utf8_valid(smile, k) == (k == 0 || k == 1 || k == 5), "smile prefix %zu", k);
    assert_true(lep_utf8_valid(NULL, 0));
    assert_true(lep_ascii_valid(NULL, 0));
    /* long ASCII runs with one bad byte at every position (word-at-a-time
     * fast paths must not skip it) */
    uint8_t run[67];
    for (size_t pos = 0; pos < sizeof run; pos++) {
        memset(run, 'a', sizeof run);
        run[pos] = 0x80;
        TV_CHECK(!lep_utf8_valid(run, sizeof run), "run bad at %zu", pos);
        TV_CHECK(!lep_ascii_valid(run, sizeof run), "ascii run bad at %zu", pos);
        TV_CHECK(lep_ascii_valid(run, pos), "ascii prefix %zu", pos);
        TV_CHECK(lep_utf8_valid(run, pos), "utf8 prefix %zu", pos);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_next),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_type_of_code),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_unknown_codes),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bad_vectors),
        cmocka_unit_test(test_huge_sizes),
        cmocka_unit_test(test_zero_width_array),
        cmocka_unit_test(test_typed_reads),
        cmocka_unit_test(test_typed_reads_errors),
        cmocka_unit_test(test_enter_list_map),
        cmocka_unit_test(test_enter_described),
        cmocka_unit_test(test_enter_arrays),
        cmocka_unit_test(test_enter_described_array),
        cmocka_unit_test(test_enter_described_array_of_compounds),
        cmocka_unit_test(test_empty_array_without_ctor),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_large_values),
        cmocka_unit_test(test_utf8_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
