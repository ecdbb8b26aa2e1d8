/* Value tree tests: builders, equality, decode/encode round trips of
 * randomised trees (seed printed; set LEPTON_SEED to replay one), trees that
 * outlive their input, and every allocation failing in turn. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/codec.h>

#include <time.h>

#include "vectors.h"

/* ------------------------------------------------------------------ */
/* Seeded PRNG (splitmix64).                                            */

static uint64_t rng_state;

static uint64_t
rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t
rndn(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

static uint64_t
seed_from_env(void)
{
    const char *s = getenv("LEPTON_SEED");
    if (s && *s)
        return strtoull(s, NULL, 0);
    return (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
}

/* Integers near the encoding boundaries more often than uniformly. */
static uint64_t
rnd_u(unsigned bits)
{
    uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
    switch (rndn(6)) {
    case 0: return 0;
    case 1: return rndn(256);
    case 2: return (255 + rndn(3)) & mask;
    case 3: return mask - rndn(2);
    default: return rnd() & mask;
    }
}

static int64_t
rnd_i(unsigned bits)
{
    int64_t min = bits == 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
    int64_t max = bits == 64 ? INT64_MAX : ((int64_t)1 << (bits - 1)) - 1;
    switch (rndn(7)) {
    case 0: return 0;
    case 1: return (int64_t)rndn(256) - 128;
    case 2:
        if (bits == 8)
            return rndn(2) ? max : min;
        return rndn(2) ? 127 + (int64_t)rndn(3) : -127 - (int64_t)rndn(3);
    case 3: return min;
    case 4: return max;
    default: {
        uint64_t u = rnd();
        int64_t v = (int64_t)u;
        if (bits < 64) {
            v = (int64_t)(u & (((uint64_t)1 << bits) - 1));
            if (v > max)
                v -= (int64_t)1 << bits;
        }
        return v;
    }
    }
}

static size_t
rnd_len(void)
{
    uint32_t k = rndn(20);
    if (k == 0)
        return 240 + rndn(40); /* across the 8/32-bit boundary */
    if (k == 1)
        return 0;
    return rndn(12);
}

static size_t
put_utf8(uint8_t *p, uint32_t c)
{
    if (c < 0x80) {
        p[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        p[0] = (uint8_t)(0xc0 | c >> 6), p[1] = (uint8_t)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        p[0] = (uint8_t)(0xe0 | c >> 12), p[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
        p[2] = (uint8_t)(0x80 | (c & 0x3f));
        return 3;
    }
    p[0] = (uint8_t)(0xf0 | c >> 18), p[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
    p[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)), p[3] = (uint8_t)(0x80 | (c & 0x3f));
    return 4;
}

static uint32_t
rnd_codepoint(void)
{
    for (;;) {
        uint32_t c;
        switch (rndn(5)) {
        case 0: c = 0x80 + rndn(0x800 - 0x80); break;
        case 1: c = 0x800 + rndn(0x10000 - 0x800); break;
        case 2: c = 0x10000 + rndn(0x110000 - 0x10000); break;
        default: c = rndn(0x80); break;
        }
        if (c < 0xd800 || c > 0xdfff)
            return c;
    }
}

/* Debugging knobs: build with -DEMPTY_ARRAYS=false or
 * -DNO_DESCRIBED_ARRAY_ARRAYS to keep a known failure from hiding others. */
#ifndef EMPTY_ARRAYS
#define EMPTY_ARRAYS true
#endif

/* ------------------------------------------------------------------ */
/* Random trees.                                                        */

typedef struct gen {
    int budget;          /* nodes left */
    int max_depth;
    bool empty_arrays;   /* allow empty arrays */
} gen_t;

static lep_value_t *gen_value(gen_t *g, int depth);
static lep_value_t *gen_of_type(gen_t *g, lep_type_t t, int depth);

static lep_value_t *
must(lep_value_t *v)
{
    assert_non_null(v);
    return v;
}

static void
add(lep_value_t *parent, lep_value_t *child)
{
    assert_int_equal(lep_value_append(parent, child), 0);
}

static const lep_type_t scalar_types[] = {
    LEP_TYPE_NULL, LEP_TYPE_BOOL, LEP_TYPE_UBYTE, LEP_TYPE_USHORT, LEP_TYPE_UINT, LEP_TYPE_ULONG,
    LEP_TYPE_BYTE, LEP_TYPE_SHORT, LEP_TYPE_INT, LEP_TYPE_LONG, LEP_TYPE_FLOAT, LEP_TYPE_DOUBLE,
    LEP_TYPE_DECIMAL32, LEP_TYPE_DECIMAL64, LEP_TYPE_DECIMAL128, LEP_TYPE_CHAR, LEP_TYPE_TIMESTAMP,
    LEP_TYPE_UUID, LEP_TYPE_BINARY, LEP_TYPE_STRING, LEP_TYPE_SYMBOL,
};
#define NSCALAR (sizeof scalar_types / sizeof scalar_types[0])

static lep_value_t *
gen_scalar(lep_type_t t)
{
    uint8_t buf[2048];
    switch (t) {
    case LEP_TYPE_NULL: return must(lep_value_new(t));
    case LEP_TYPE_BOOL: return must(lep_value_new_uint64(t, rnd() & 1));
    case LEP_TYPE_UBYTE: return must(lep_value_new_uint64(t, rnd_u(8)));
    case LEP_TYPE_USHORT: return must(lep_value_new_uint64(t, rnd_u(16)));
    case LEP_TYPE_UINT: return must(lep_value_new_uint64(t, rnd_u(32)));
    case LEP_TYPE_ULONG: return must(lep_value_new_uint64(t, rnd_u(64)));
    case LEP_TYPE_CHAR: return must(lep_value_new_uint64(t, rndn(4) ? rnd_codepoint() : 0x10ffff));
    case LEP_TYPE_BYTE: return must(lep_value_new_int64(t, rnd_i(8)));
    case LEP_TYPE_SHORT: return must(lep_value_new_int64(t, rnd_i(16)));
    case LEP_TYPE_INT: return must(lep_value_new_int64(t, rnd_i(32)));
    case LEP_TYPE_LONG: return must(lep_value_new_int64(t, rnd_i(64)));
    case LEP_TYPE_TIMESTAMP: return must(lep_value_new_int64(t, rnd_i(64)));
    case LEP_TYPE_FLOAT: {
        lep_value_t *v = must(lep_value_new_double(t, 0));
        uint32_t bits = (uint32_t)rnd();
        memcpy(&v->atom.u.f, &bits, 4); /* any bits, NaNs included */
        return v;
    }
    case LEP_TYPE_DOUBLE: {
        lep_value_t *v = must(lep_value_new_double(t, 0));
        uint64_t bits = rnd();
        memcpy(&v->atom.u.d, &bits, 8);
        return v;
    }
    case LEP_TYPE_DECIMAL32: case LEP_TYPE_DECIMAL64: case LEP_TYPE_DECIMAL128: case LEP_TYPE_UUID: {
        size_t n = t == LEP_TYPE_DECIMAL32 ? 4 : t == LEP_TYPE_DECIMAL64 ? 8 : 16;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        return must(lep_value_new_bytes(t, buf, n));
    }
    case LEP_TYPE_BINARY: {
        size_t n = rnd_len();
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        return must(lep_value_new_bytes(t, buf, n));
    }
    case LEP_TYPE_STRING: {
        size_t chars = rnd_len(), n = 0;
        bool ascii = rndn(3) == 0;
        for (size_t i = 0; i < chars; i++)
            n += put_utf8(buf + n, ascii ? rndn(0x80) : rnd_codepoint());
        return must(lep_value_new_bytes(t, buf, n));
    }
    case LEP_TYPE_SYMBOL: {
        size_t n = rnd_len();
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rndn(0x80);
        return must(lep_value_new_bytes(t, buf, n));
    }
    default:
        fail_msg("gen_scalar: type %d", (int)t);
        return NULL;
    }
}

static uint32_t
gen_count(gen_t *g, bool allow_empty)
{
    uint32_t n = rndn(6);
    if (rndn(25) == 0)
        n = 250 + rndn(10); /* counts across 255 */
    if (!allow_empty && n == 0)
        n = 1;
    return n;
}

static lep_value_t *
gen_descriptor(uint64_t code, const char *name)
{
    if (name)
        return must(lep_value_new_bytes(LEP_TYPE_SYMBOL, name, strlen(name)));
    return must(lep_value_new_uint64(LEP_TYPE_ULONG, code));
}

static lep_type_t
rnd_array_type(void)
{
    /* every type an array may hold */
    return (lep_type_t)rndn(LEP_TYPE_DESCRIBED);
}

static lep_value_t *
gen_array(gen_t *g, int depth)
{
    lep_type_t et = rnd_array_type();
    bool described = rndn(5) == 0;
#ifdef NO_DESCRIBED_ARRAY_ARRAYS
    if (et == LEP_TYPE_ARRAY)
        described = false;
#endif
    uint32_t n = gen_count(g, g->empty_arrays && !described);
    lep_value_t *a = must(lep_value_new_array(et));
    uint64_t code = rnd_u(64);
    const char *name = rndn(2) ? "x-opt:test" : NULL;
    for (uint32_t i = 0; i < n; i++) {
        lep_value_t *el = gen_of_type(g, et, depth + 1);
        if (described) {
            lep_value_t *d = must(lep_value_new(LEP_TYPE_DESCRIBED));
            add(d, gen_descriptor(code, name));
            add(d, el);
            el = d;
        }
        add(a, el);
    }
    return a;
}

static lep_value_t *
gen_of_type(gen_t *g, lep_type_t t, int depth)
{
    g->budget--;
    bool deep = depth >= g->max_depth || g->budget <= 0;
    switch (t) {
    case LEP_TYPE_LIST: {
        lep_value_t *l = must(lep_value_new(t));
        uint32_t n = deep ? 0 : gen_count(g, true);
        for (uint32_t i = 0; i < n; i++)
            add(l, gen_value(g, depth + 1));
        return l;
    }
    case LEP_TYPE_MAP: {
        lep_value_t *m = must(lep_value_new(t));
        uint32_t n = deep ? 0 : gen_count(g, true) / 2;
        for (uint32_t i = 0; i < n; i++) {
            /* keys of mixed types, mostly scalars */
            add(m, rndn(8) ? gen_scalar(scalar_types[rndn(NSCALAR)]) : gen_value(g, depth + 1));
            add(m, gen_value(g, depth + 1));
        }
        return m;
    }
    case LEP_TYPE_ARRAY:
        if (deep) {
            lep_value_t *a = must(lep_value_new_array(LEP_TYPE_UINT));
            add(a, must(lep_value_new_uint64(LEP_TYPE_UINT, rnd_u(32))));
            return a;
        }
        return gen_array(g, depth);
    case LEP_TYPE_DESCRIBED: {
        lep_value_t *d = must(lep_value_new(t));
        /* any value may be a descriptor: mostly ulong and symbol, sometimes
         * anything at all (compounds and described values included) */
        if (!deep && rndn(8) == 0)
            add(d, gen_value(g, depth + 1));
        else
            add(d, gen_descriptor(rnd_u(64), rndn(2) ? NULL : "com.example:thing"));
        add(d, deep ? gen_scalar(LEP_TYPE_NULL) : gen_value(g, depth + 1));
        return d;
    }
    default:
        return gen_scalar(t);
    }
}

static lep_value_t *
gen_value(gen_t *g, int depth)
{
    uint32_t k = rndn(10);
    if (depth >= g->max_depth || g->budget <= 0 || k < 6)
        return gen_of_type(g, scalar_types[rndn(NSCALAR)], depth);
    static const lep_type_t compound[] = {LEP_TYPE_LIST, LEP_TYPE_MAP, LEP_TYPE_ARRAY, LEP_TYPE_DESCRIBED};
    return gen_of_type(g, compound[k - 6], depth);
}

/* ------------------------------------------------------------------ */

static int
encode_value(const lep_value_t *v, lep_buf_t *out)
{
    lep_encoder_t e;
    lep_buf_init(out);
    lep_encoder_init(&e, out);
    lep_value_encode(&e, v);
    return lep_encoder_error(&e);
}

/* Prints the path to the first node where two trees differ. */
static bool
value_diff(const lep_value_t *a, const lep_value_t *b, char *path, size_t cap)
{
    if (a->atom.type != b->atom.type || a->nchildren != b->nchildren || !tv_is_compound(a->atom.type)) {
        if (lep_value_equal(a, b))
            return false;
        lep_buf_t pa, pb;
        lep_buf_init(&pa);
        lep_buf_init(&pb);
        lep_value_print(a, &pa, LEP_PRINT_TYPED);
        lep_value_print(b, &pb, LEP_PRINT_TYPED);
        fprintf(stderr, "differs at %s: %s (%u children, code 0x%02x) vs %s (%u children, code 0x%02x)\n  %.*s\n  %.*s\n",
                path, lep_type_name(a->atom.type), a->nchildren, a->atom.code, lep_type_name(b->atom.type),
                b->nchildren, b->atom.code, (int)(pa.len > 300 ? 300 : pa.len), (const char *)pa.data,
                (int)(pb.len > 300 ? 300 : pb.len), (const char *)pb.data);
        lep_buf_fini(&pa);
        lep_buf_fini(&pb);
        return true;
    }
    size_t n = strlen(path);
    for (uint32_t i = 0; i < a->nchildren; i++) {
        snprintf(path + n, cap - n, "/%u", i);
        if (value_diff(&a->children[i], &b->children[i], path, cap))
            return true;
    }
    path[n] = 0;
    if (!lep_value_equal(a, b)) {
        fprintf(stderr, "differs at %s: %s nodes with equal children\n", path, lep_type_name(a->atom.type));
        return true;
    }
    return false;
}

static void
report_diff(const lep_value_t *a, const lep_value_t *b)
{
    char path[512] = "";
    value_diff(a, b, path, sizeof path);
}

static void
dump_failure(uint64_t seed, int iter, const lep_value_t *v, const lep_buf_t *b)
{
    lep_buf_t p;
    lep_buf_init(&p);
    if (lep_value_print(v, &p, LEP_PRINT_TYPED) == 0)
        fprintf(stderr, "value: %.*s\n", (int)(p.len > 2000 ? 2000 : p.len), (const char *)p.data);
    lep_buf_fini(&p);
    if (b)
        tv_hex(stderr, "encoded", b->data, b->len);
    fprintf(stderr, "seed %llu, iteration %d (LEPTON_SEED=%llu to replay)\n", (unsigned long long)seed, iter,
            (unsigned long long)seed);
}

static void
round_trip_one(uint64_t seed, int iter, lep_value_t *v)
{
    lep_buf_t b1, b2, b3;
    lep_value_t *d1, *d2;
    size_t used = 0;
    int rc;

    if ((rc = encode_value(v, &b1)) != 0) {
        dump_failure(seed, iter, v, NULL);
        fail_msg("encode: %s", lep_strerror(rc));
    }
    if ((rc = lep_value_decode(b1.data, b1.len, false, &d1, &used)) != 0) {
        dump_failure(seed, iter, v, &b1);
        fail_msg("decode: %s", lep_strerror(rc));
    }
    if (used != b1.len || !lep_value_equal(v, d1)) {
        report_diff(v, d1);
        dump_failure(seed, iter, v, &b1);
        fail_msg("decoded tree differs (used %zu of %zu)", used, b1.len);
    }
    if ((rc = encode_value(d1, &b2)) != 0 || b2.len != b1.len || memcmp(b1.data, b2.data, b1.len) != 0) {
        dump_failure(seed, iter, v, &b1);
        tv_hex(stderr, "re-encoded", b2.data, b2.len);
        fail_msg("re-encoding differs (rc %d)", rc);
    }
    /* the streaming reader agrees on the extent */
    lep_reader_t r;
    lep_reader_init(&r, b1.data, b1.len);
    if ((rc = lep_reader_skip(&r)) != 0 || !lep_reader_done(&r)) {
        dump_failure(seed, iter, v, &b1);
        fail_msg("skip: %d", rc);
    }
    /* a copying decode outlives its input */
    uint8_t *in = tv_dup(b1.data, b1.len);
    if ((rc = lep_value_decode(in, b1.len, true, &d2, NULL)) != 0) {
        dump_failure(seed, iter, v, &b1);
        fail_msg("decode(copy): %s", lep_strerror(rc));
    }
    memset(in, 0xee, b1.len);
    free(in);
    if (!lep_value_equal(d2, v) || (rc = encode_value(d2, &b3)) != 0 || b3.len != b1.len ||
        memcmp(b3.data, b1.data, b1.len) != 0) {
        dump_failure(seed, iter, v, &b1);
        fail_msg("copied tree differs after its input was freed");
    }
    lep_buf_fini(&b3);
    /* every printed form prints */
    lep_buf_t p;
    lep_buf_init(&p);
    for (int flags = 0; flags < 4; flags++)
        if ((rc = lep_value_print(d2, &p, flags)) != 0) {
            dump_failure(seed, iter, v, &b1);
            fail_msg("print flags %d: %s", flags, lep_strerror(rc));
        }
    lep_buf_fini(&p);
    lep_value_free(d1);
    lep_value_free(d2);
    lep_buf_fini(&b1);
    lep_buf_fini(&b2);
}

static void
test_random_round_trips(void **state)
{
    (void)state;
    uint64_t seed = seed_from_env();
    print_message("random round trips: seed %llu (set LEPTON_SEED to replay)\n", (unsigned long long)seed);
    rng_state = seed;
    int iterations = 4000;
    for (int it = 0; it < iterations; it++) {
        gen_t g = {.budget = 40 + (int)rndn(200), .max_depth = 2 + (int)rndn(6), .empty_arrays = EMPTY_ARRAYS};
        lep_value_t *v = gen_value(&g, 0);
        round_trip_one(seed, it, v);
        lep_value_free(v);
    }
    /* every type at the top level, and inside a list and an array */
    for (int t = 0; t < LEP_TYPE_COUNT_; t++) {
        gen_t g = {.budget = 30, .max_depth = 3, .empty_arrays = EMPTY_ARRAYS};
        for (int k = 0; k < 50; k++) {
            lep_value_t *v = gen_of_type(&g, (lep_type_t)t, 0);
            round_trip_one(seed, -t, v);
            lep_value_free(v);
            if (t == LEP_TYPE_DESCRIBED)
                continue;
            lep_value_t *a = must(lep_value_new_array((lep_type_t)t));
            add(a, gen_of_type(&g, (lep_type_t)t, 1));
            add(a, gen_of_type(&g, (lep_type_t)t, 1));
            round_trip_one(seed, -100 - t, a);
            lep_value_free(a);
        }
    }
}

static char *
typed_string(const lep_value_t *v)
{
    lep_buf_t p;
    lep_buf_init(&p);
    assert_int_equal(lep_value_print(v, &p, LEP_PRINT_TYPED), 0);
    assert_int_equal(lep_buf_append(&p, "", 1), 0);
    return (char *)p.data;
}

/* The typed printed form is canonical: two trees print the same exactly
 * when they are equal (the interop tests compare these strings). */
static void
test_typed_print_canonical(void **state)
{
    (void)state;
    uint64_t seed = seed_from_env() + 2;
    print_message("typed print: seed %llu\n", (unsigned long long)seed);
    rng_state = seed;
    int same = 0;
    for (int it = 0; it < 3000; it++) {
        gen_t g1 = {.budget = 1 + (int)rndn(4), .max_depth = 2, .empty_arrays = EMPTY_ARRAYS};
        gen_t g2 = g1;
        lep_value_t *a = gen_value(&g1, 0), *b = gen_value(&g2, 0);
        char *pa = typed_string(a), *pb = typed_string(b);
        bool eq = lep_value_equal(a, b);
        if (eq != (strcmp(pa, pb) == 0))
            fail_msg("seed %llu iteration %d: equal=%d but printed\n  %s\n  %s", (unsigned long long)seed, it,
                     eq, pa, pb);
        same += eq;
        /* and a tree prints like its decoded copy */
        lep_buf_t enc;
        lep_value_t *d;
        assert_int_equal(encode_value(a, &enc), 0);
        assert_int_equal(lep_value_decode(enc.data, enc.len, false, &d, NULL), 0);
        char *pd = typed_string(d);
        if (strcmp(pa, pd) != 0)
            fail_msg("seed %llu iteration %d: decoded copy prints\n  %s\nnot\n  %s", (unsigned long long)seed, it,
                     pd, pa);
        lep_free(pd);
        lep_value_free(d);
        lep_buf_fini(&enc);
        lep_free(pa);
        lep_free(pb);
        lep_value_free(a);
        lep_value_free(b);
    }
    TV_CHECK(same > 10, "only %d equal pairs: the check is not exercised", same);
}

/* Random bytes and mutated encodings: decode either fails cleanly or gives
 * a tree that re-encodes and decodes to an equal tree. */
static void
test_random_bytes(void **state)
{
    (void)state;
    uint64_t seed = seed_from_env() + 1;
    print_message("random bytes: seed %llu\n", (unsigned long long)seed);
    rng_state = seed;
    for (int it = 0; it < 3000; it++) {
        uint8_t *in;
        size_t n;
        lep_buf_t b;
        if (rndn(2)) {
            gen_t g = {.budget = 30, .max_depth = 4, .empty_arrays = EMPTY_ARRAYS};
            lep_value_t *v = gen_value(&g, 0);
            assert_int_equal(encode_value(v, &b), 0);
            lep_value_free(v);
            n = b.len;
            in = tv_dup(b.data, n);
            lep_buf_fini(&b);
            for (uint32_t k = 1 + rndn(3); k > 0 && n; k--)
                in[rndn((uint32_t)n)] = (uint8_t)rnd();
            if (rndn(4) == 0)
                n = rndn((uint32_t)n + 1);
        } else {
            n = rndn(40);
            in = malloc(n ? n : 1);
            assert_non_null(in);
            for (size_t i = 0; i < n; i++)
                in[i] = (uint8_t)(rndn(3) ? rnd() : (uint64_t)"\x00\x40\x45\x52\xa1\xc0\xe0\xd0"[rndn(8)]);
        }
        uint8_t *exact = tv_dup(in, n);
        free(in);
        lep_value_t *v = NULL, *w;
        size_t used = 0;
        int rc = lep_value_decode(exact, n, false, &v, &used);
        if (rc == 0) {
            TV_CHECK(used <= n, "used %zu of %zu", used, n);
            if ((rc = encode_value(v, &b)) != 0) {
                tv_hex(stderr, "input", exact, used);
                fail_msg("seed %llu iteration %d: decoded tree does not encode: %s", (unsigned long long)seed, it,
                         lep_strerror(rc));
            }
            assert_int_equal(lep_value_decode(b.data, b.len, false, &w, NULL), 0);
            if (!lep_value_equal(v, w)) {
                report_diff(v, w);
                tv_hex(stderr, "input", exact, used);
                tv_hex(stderr, "re-encoded", b.data, b.len);
                fail_msg("seed %llu iteration %d: re-decoded tree differs", (unsigned long long)seed, it);
            }
            lep_value_free(w);
            lep_value_free(v);
            lep_buf_fini(&b);
        } else {
            TV_CHECK(v == NULL, "out set on error");
            TV_CHECK(rc == LEP_ERR_DECODE || rc == LEP_ERR_INCOMPLETE || rc == LEP_ERR_UTF8 ||
                         rc == LEP_ERR_SYMBOL || rc == LEP_ERR_LIMIT,
                     "decode gave %d", rc);
        }
        free(exact);
    }
}

/* ------------------------------------------------------------------ */

static void
test_builders(void **state)
{
    (void)state;
    lep_value_t *d = must(lep_value_new(LEP_TYPE_DESCRIBED));
    add(d, must(lep_value_new_uint64(LEP_TYPE_ULONG, 0x70)));
    lep_value_t *l = must(lep_value_new(LEP_TYPE_LIST));
    add(l, must(lep_value_new_uint64(LEP_TYPE_UINT, 5)));
    add(l, must(lep_value_new_bytes(LEP_TYPE_STRING, "x", 1)));
    lep_value_t *a = must(lep_value_new_array(LEP_TYPE_SYMBOL));
    add(a, must(lep_value_new_bytes(LEP_TYPE_SYMBOL, "a", 1)));
    add(l, a);
    add(l, must(lep_value_new_int64(LEP_TYPE_LONG, -2)));
    add(l, must(lep_value_new_double(LEP_TYPE_DOUBLE, 1.0)));
    add(l, must(lep_value_new_uint64(LEP_TYPE_BOOL, 7)));
    add(d, l); /* l is moved into d and freed */
    assert_int_equal(d->children[1].atom.count, 6);

    /* a described value takes two children, scalars none */
    lep_value_t *extra = must(lep_value_new(LEP_TYPE_NULL));
    assert_int_equal(lep_value_append(d, extra), LEP_ERR_STATE);
    lep_value_t *s = must(lep_value_new_uint64(LEP_TYPE_UINT, 1));
    assert_int_equal(lep_value_append(s, extra), LEP_ERR_TYPE);
    lep_value_free(s);
    lep_value_free(extra); /* still ours: both appends failed */

    lep_buf_t b;
    assert_int_equal(encode_value(d, &b), 0);
    static const uint8_t want[] = {0x00, 0x53, 0x70, 0xc0, 0x18, 0x06, 0x52, 0x05, 0xa1, 0x01, 'x', 0xe0,
                                   0x04, 0x01, 0xa3, 0x01, 'a', 0x55, 0xfe, 0x82, 0x3f, 0xf0, 0, 0,
                                   0, 0, 0, 0, 0x41};
    if (b.len != sizeof want || memcmp(b.data, want, sizeof want) != 0) {
        tv_hex(stderr, "got ", b.data, b.len);
        tv_hex(stderr, "want", want, sizeof want);
        fail_msg("built tree encodes differently");
    }
    lep_value_t *back;
    assert_int_equal(lep_value_decode(b.data, b.len, false, &back, NULL), 0);
    assert_true(lep_value_equal(back, d));
    /* decoded shape: described = [descriptor, value] */
    assert_int_equal(back->atom.type, LEP_TYPE_DESCRIBED);
    assert_int_equal(back->nchildren, 2);
    assert_int_equal(back->children[0].atom.u.u, 0x70);
    assert_int_equal(back->children[1].nchildren, 6);
    assert_int_equal(back->children[1].children[2].atom.type, LEP_TYPE_ARRAY);
    assert_true(back->children[1].children[5].atom.u.b);
    lep_value_free(back);
    lep_buf_fini(&b);
    lep_value_free(d);

    /* wrong sizes and types */
    assert_null(lep_value_new_bytes(LEP_TYPE_UUID, "short", 5));
    assert_null(lep_value_new_bytes(LEP_TYPE_DECIMAL32, "12345", 5));
    assert_null(lep_value_new_bytes(LEP_TYPE_DECIMAL64, "1234", 4));
    assert_null(lep_value_new_bytes(LEP_TYPE_UINT, "1234", 4));
    assert_null(lep_value_new(LEP_TYPE_COUNT_));
    /* strings are copied */
    char str[4] = "abc";
    lep_value_t *v = must(lep_value_new_bytes(LEP_TYPE_STRING, str, 3));
    str[0] = 'X';
    assert_true(lep_bytes_eq_str(v->atom.u.bytes, "abc"));
    lep_value_free(v);
    lep_value_free(NULL);
}

static bool
eq_bytes(const void *a, size_t an, const void *b, size_t bn)
{
    lep_value_t *x, *y;
    assert_int_equal(lep_value_decode(a, an, false, &x, NULL), 0);
    assert_int_equal(lep_value_decode(b, bn, false, &y, NULL), 0);
    bool r = lep_value_equal(x, y);
    assert_true(lep_value_equal(y, x) == r);
    assert_true(lep_value_equal(x, x));
    lep_value_free(x);
    lep_value_free(y);
    return r;
}

#define EQ(a, b) eq_bytes(a, sizeof(a) - 1, b, sizeof(b) - 1)

static void
test_equal(void **state)
{
    (void)state;
    /* encoding width is ignored */
    assert_true(EQ("\x70\x00\x00\x00\x05", "\x52\x05"));
    assert_true(EQ("\x43", "\x52\x00"));
    assert_true(EQ("\x56\x01", "\x41"));
    assert_true(EQ("\xb1\x00\x00\x00\x01x", "\xa1\x01x"));
    assert_true(EQ("\xd0\x00\x00\x00\x04\x00\x00\x00\x00", "\x45"));
    assert_true(EQ("\x00\x80\x00\x00\x00\x00\x00\x00\x00\x10\x45", "\x00\x53\x10\xc0\x01\x00"));
    assert_true(EQ("\xe0\x06\x01\x70\x00\x00\x00\x05", "\xe0\x03\x01\x52\x05"));
    /* but the type is not */
    assert_false(EQ("\x52\x05", "\x53\x05"));
    assert_false(EQ("\x52\x05", "\x54\x05"));
    assert_false(EQ("\xa1\x01x", "\xa3\x01x"));
    assert_false(EQ("\xa1\x01x", "\xa0\x01x"));
    assert_false(EQ("\x40", "\x45"));
    assert_false(EQ("\xc0\x02\x01\x40", "\xe0\x03\x01\x52\x05"));
    assert_false(EQ("\xe0\x02\x00\x52", "\xe0\x02\x00\x53")); /* empty arrays of uint and ulong */
    assert_false(EQ("\xe0\x03\x01\x52\x05", "\xe0\x03\x01\x53\x05"));
    /* values */
    assert_false(EQ("\x52\x05", "\x52\x06"));
    assert_false(EQ("\xa1\x01x", "\xa1\x01y"));
    assert_false(EQ("\xa1\x01x", "\xa1\x02xx"));
    assert_false(EQ("\xc0\x02\x01\x40", "\xc0\x03\x02\x40\x40"));
    assert_false(EQ("\xc0\x02\x01\x41", "\xc0\x02\x01\x42"));
    assert_false(EQ("\x00\x53\x10\x45", "\x00\x53\x11\x45"));
    assert_false(EQ("\x00\x53\x10\x45", "\x00\xa3\x01x\x45"));
    assert_false(EQ("\x00\x53\x10\x40", "\x00\x53\x10\x45"));
    assert_false(EQ("\x00\x53\x10\x40", "\x40"));
    assert_false(EQ("\xc1\x05\x02\xa3\x01k\x41", "\xc1\x05\x02\xa3\x01k\x42"));
    assert_false(EQ("\x98" "0123456789abcdef", "\x98" "0123456789abcdeF"));
    assert_false(EQ("\x74" "abcd", "\x74" "abcD"));
    assert_false(EQ("\x94" "0123456789abcdef", "\x94" "0123456789abcdeF"));
    /* floats by bits: NaN equals itself, -0 differs from +0 */
    assert_true(EQ("\x72\x7f\xc0\x00\x00", "\x72\x7f\xc0\x00\x00"));
    assert_false(EQ("\x72\x7f\xc0\x00\x00", "\x72\x7f\xc0\x00\x01"));
    assert_false(EQ("\x72\x00\x00\x00\x00", "\x72\x80\x00\x00\x00"));
    assert_false(EQ("\x82\x00\x00\x00\x00\x00\x00\x00\x00", "\x82\x80\x00\x00\x00\x00\x00\x00\x00"));
    assert_true(EQ("\x82\x7f\xf8\x00\x00\x00\x00\x00\x01", "\x82\x7f\xf8\x00\x00\x00\x00\x00\x01"));
    /* builder trees compare with decoded ones */
    lep_value_t *f = must(lep_value_new_double(LEP_TYPE_FLOAT, 1.5));
    lep_value_t *x;
    assert_int_equal(lep_value_decode("\x72\x3f\xc0\x00\x00", 5, false, &x, NULL), 0);
    assert_true(lep_value_equal(f, x));
    lep_value_free(x);
    lep_value_free(f);
}

/* A descriptor may be any value: compound and described descriptors must
 * round-trip too, at the top level and inside a compound. */
static void
test_compound_descriptors(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *in;
        size_t n;
    } cases[] = {
        {"list descriptor", "\x00\xc0\x03\x01\x52\x01\x40", 7},
        {"list descriptor in list", "\xc0\x09\x02\x00\xc0\x03\x01\x52\x01\x40\x41", 11},
        {"map descriptor in list", "\xc0\x09\x01\x00\xc1\x03\x02\x40\x40\x52\x07", 11},
        {"described descriptor", "\x00\x00\x53\x01\x40\x52\x05", 7},
        {"described descriptor in list", "\xc0\x08\x01\x00\x00\x53\x01\x40\x52\x05", 10},
        {"array descriptor in map", "\xc1\x09\x02\x40\x00\xe0\x03\x01\x52\x01\x40", 11},
        {"string descriptor", "\x00\xa1\x01x\x40", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lep_value_t *v;
        lep_buf_t b;
        TV_RC(lep_value_decode(cases[i].in, cases[i].n, false, &v, NULL), 0, "%s: decode", cases[i].what);
        TV_RC(encode_value(v, &b), 0, "%s: encode", cases[i].what);
        if (b.len != cases[i].n || memcmp(b.data, cases[i].in, b.len) != 0) {
            tv_hex(stderr, "got ", b.data, b.len);
            tv_hex(stderr, "want", (const uint8_t *)cases[i].in, cases[i].n);
            fail_msg("%s: re-encoding differs", cases[i].what);
        }
        lep_buf_fini(&b);
        lep_value_free(v);
    }
}

/* Whatever the decoder accepts, the encoder writes back, and the result
 * decodes to an equal tree that encodes to the same bytes again. */
static void
test_decode_encode_consistency(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *in;
        size_t n;
    } cases[] = {
        {"empty array8 without constructor", "\xe0\x01\x00", 3},
        {"empty array32 without constructor", "\xf0\x00\x00\x00\x04\x00\x00\x00\x00", 9},
        {"array of nulls", "\xe0\x02\x03\x40", 4},
        {"empty array of nulls", "\xe0\x02\x00\x40", 4},
        {"array of list0", "\xe0\x02\x02\x45", 4},
        {"array of true", "\xe0\x02\x02\x41", 4},
        {"array of false", "\xe0\x02\x01\x42", 4},
        {"empty array of true", "\xe0\x02\x00\x41", 4},
        {"array of uint0", "\xe0\x02\x02\x43", 4},
        {"array of wide uint", "\xe0\x06\x01\x70\x00\x00\x00\x00", 8},
        {"array32 of array32", "\xf0\x00\x00\x00\x0e\x00\x00\x00\x01\xf0\x00\x00\x00\x05\x00\x00\x00\x01\x43", 19},
        {"null descriptor", "\x00\x40\x40", 3},
        {"described descriptor", "\x00\x00\x53\x01\x40\x41", 6},
        {"list descriptor", "\x00\x45\x40", 3},
        {"map with compound keys", "\xc1\x07\x04\x45\x40\xc1\x01\x00\x41", 9},
        {"described array of described", "\xe0\x08\x01\x00\x53\x01\x00\x53\x02\x40", 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lep_value_t *v, *w;
        lep_buf_t b1, b2;
        int rc = lep_value_decode(cases[i].in, cases[i].n, false, &v, NULL);
        if (rc != 0)
            continue; /* refusing is consistent too */
        TV_RC(encode_value(v, &b1), 0, "%s: the decoded tree does not encode", cases[i].what);
        TV_RC(lep_value_decode(b1.data, b1.len, false, &w, NULL), 0, "%s: re-decode", cases[i].what);
        if (!lep_value_equal(v, w)) {
            report_diff(v, w);
            tv_hex(stderr, "re-encoded", b1.data, b1.len);
            fail_msg("%s: re-decoded tree differs", cases[i].what);
        }
        TV_RC(encode_value(w, &b2), 0, "%s: second encode", cases[i].what);
        TV_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0, "%s: encoding not stable",
                 cases[i].what);
        lep_buf_fini(&b1);
        lep_buf_fini(&b2);
        lep_value_free(v);
        lep_value_free(w);
    }
}

static void
test_decode_used_and_views(void **state)
{
    (void)state;
    static const uint8_t in[] = {0xa1, 0x02, 'h', 'i', 0x41, 0x52};
    lep_value_t *v;
    size_t used = 0;
    assert_int_equal(lep_value_decode(in, sizeof in, false, &v, &used), 0);
    assert_int_equal(used, 4);
    assert_ptr_equal(v->atom.u.bytes.ptr, in + 2); /* a view */
    lep_value_free(v);
    assert_int_equal(lep_value_decode(in, sizeof in, true, &v, &used), 0);
    assert_true(v->atom.u.bytes.ptr < in || v->atom.u.bytes.ptr >= in + sizeof in); /* a copy */
    assert_true(lep_bytes_eq_str(v->atom.u.bytes, "hi"));
    lep_value_free(v);
    assert_int_equal(lep_value_decode(in + 4, 1, false, &v, NULL), 0);
    assert_true(v->atom.u.b);
    lep_value_free(v);

    /* a copied tree of nested strings outlives a freed input */
    static const uint8_t nested[] = {0xc1, 0x0f, 0x02, 0xa3, 0x03, 'k', 'e', 'y', 0xc0, 0x07, 0x01,
                                     0xa1, 0x04, 'd', 'a', 't', 'a'};
    uint8_t *heap = tv_dup(nested, sizeof nested);
    assert_int_equal(lep_value_decode(heap, sizeof nested, true, &v, &used), 0);
    assert_int_equal(used, sizeof nested);
    memset(heap, 0, sizeof nested);
    free(heap);
    assert_true(lep_bytes_eq_str(v->children[0].atom.u.bytes, "key"));
    assert_true(lep_bytes_eq_str(v->children[1].children[0].atom.u.bytes, "data"));
    lep_buf_t p;
    lep_buf_init(&p);
    assert_int_equal(lep_value_print(v, &p, 0), 0);
    assert_true(lep_bytes_eq_str(lep_buf_bytes(&p), "{:key=[\"data\"]}"));
    lep_buf_fini(&p);
    lep_value_free(v);
}

/* ------------------------------------------------------------------ */
/* Allocation failures.                                                 */

typedef struct failing {
    long calls;     /* allocations so far */
    long fail_at;   /* 1-based; 0: never */
    long live;      /* blocks not yet freed */
    long failures;
} failing_t;

static failing_t fa;

static void *
fa_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (++fa.calls == fa.fail_at) {
        fa.failures++;
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        fa.live++;
    return p;
}

static void *
fa_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (++fa.calls == fa.fail_at) {
        fa.failures++;
        return NULL;
    }
    return realloc(p, n);
}

static void
fa_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        fa.live--;
    free(p);
}

static const lep_allocator_t fa_alloc = {fa_malloc, fa_realloc, fa_free, NULL};

static void
fa_arm(long fail_at)
{
    fa = (failing_t){.fail_at = fail_at};
    lep_set_allocator(&fa_alloc);
}

static void
fa_disarm(void)
{
    lep_set_allocator(NULL);
}

/* A value with every kind of node, encoded. */
static void
complex_sample(lep_buf_t *out)
{
    rng_state = 12345;
    lep_value_t *root = must(lep_value_new(LEP_TYPE_LIST));
    gen_t g = {.budget = 400, .max_depth = 5, .empty_arrays = EMPTY_ARRAYS};
    for (int t = 0; t < LEP_TYPE_COUNT_; t++)
        add(root, gen_of_type(&g, (lep_type_t)t, 1));
    for (int i = 0; i < 6; i++)
        add(root, gen_value(&g, 1));
    assert_int_equal(encode_value(root, out), 0);
    lep_value_free(root);
}

static void
test_alloc_failure_decode(void **state)
{
    (void)state;
    lep_buf_t b;
    complex_sample(&b);
    for (int copy = 0; copy < 2; copy++) {
        long n;
        for (n = 1;; n++) {
            lep_value_t *v = (lep_value_t *)1;
            fa_arm(n);
            int rc = lep_value_decode(b.data, b.len, copy, &v, NULL);
            long failures = fa.failures;
            if (rc == 0) {
                lep_value_free(v);
                long live = fa.live;
                fa_disarm();
                TV_CHECK(failures == 0, "copy %d: success although allocation %ld failed", copy, n);
                TV_CHECK(live == 0, "copy %d: %ld blocks leaked", copy, live);
                break;
            }
            long live = fa.live;
            fa_disarm();
            TV_RC(rc, LEP_ERR_NOMEM, "copy %d: failing allocation %ld", copy, n);
            TV_CHECK(v == NULL, "copy %d: out set on failure", copy);
            TV_CHECK(live == 0, "copy %d: allocation %ld failed, %ld blocks leaked", copy, n, live);
        }
        TV_CHECK(n > 2, "copy %d: only %ld allocations for a complex tree", copy, n);
    }
    lep_buf_fini(&b);
}

static void
test_alloc_failure_encode_print(void **state)
{
    (void)state;
    lep_buf_t b;
    complex_sample(&b);
    lep_value_t *v;
    assert_int_equal(lep_value_decode(b.data, b.len, false, &v, NULL), 0);
    lep_buf_t ref;
    assert_int_equal(encode_value(v, &ref), 0);

    /* encoding into a growable buffer */
    for (long n = 1;; n++) {
        lep_buf_t out;
        fa_arm(n);
        int rc = encode_value(v, &out);
        long failures = fa.failures;
        if (rc == 0) {
            TV_CHECK(failures == 0, "encode: success although allocation %ld failed", n);
            TV_CHECK(out.len == ref.len && memcmp(out.data, ref.data, ref.len) == 0, "encode output");
            lep_buf_fini(&out);
            TV_CHECK(fa.live == 0, "encode: leak");
            fa_disarm();
            break;
        }
        lep_buf_fini(&out);
        long live = fa.live;
        fa_disarm();
        TV_RC(rc, LEP_ERR_NOMEM, "encode: failing allocation %ld", n);
        TV_CHECK(live == 0, "encode: %ld blocks leaked", live);
    }

    /* printing, which allocates a scratch encoding and grows its output */
    for (int flags = 0; flags < 4; flags++) {
        lep_buf_t out;
        lep_buf_init(&out);
        TV_RC(lep_value_print(v, &out, flags), 0, "print %d without allocation failures", flags);
        lep_buf_fini(&out);
    }
    for (int flags = 0; flags < 4; flags++)
        for (long n = 1;; n++) {
            lep_buf_t out;
            lep_buf_init(&out);
            fa_arm(n);
            int rc = lep_value_print(v, &out, flags);
            long failures = fa.failures;
            lep_buf_fini(&out);
            long live = fa.live;
            fa_disarm();
            TV_CHECK(live == 0, "print %d: allocation %ld failed, %ld blocks leaked", flags, n, live);
            if (rc == 0) {
                TV_CHECK(failures == 0, "print %d: success although allocation %ld failed", flags, n);
                break;
            }
            TV_RC(rc, LEP_ERR_NOMEM, "print %d: failing allocation %ld", flags, n);
        }
    lep_value_free(v);
    lep_buf_fini(&ref);
    lep_buf_fini(&b);
}

/* Building a tree with builders, each allocation failing in turn: every
 * failure is reported and nothing leaks. */
static void
test_alloc_failure_builders(void **state)
{
    (void)state;
    for (long n = 1;; n++) {
        fa_arm(n);
        bool ok = true;
        lep_value_t *root = lep_value_new(LEP_TYPE_LIST);
        if (!root) {
            ok = false;
        } else {
            for (int i = 0; i < 12 && ok; i++) {
                lep_value_t *c;
                switch (i % 4) {
                case 0: c = lep_value_new_bytes(LEP_TYPE_STRING, "hello", 5); break;
                case 1: c = lep_value_new_uint64(LEP_TYPE_UINT, (uint64_t)i); break;
                case 2: c = lep_value_new_array(LEP_TYPE_SYMBOL); break;
                default: c = lep_value_new(LEP_TYPE_MAP); break;
                }
                if (!c) {
                    ok = false;
                    break;
                }
                if (i % 4 == 2) {
                    lep_value_t *s = lep_value_new_bytes(LEP_TYPE_SYMBOL, "s", 1);
                    if (!s || lep_value_append(c, s) != 0) {
                        lep_value_free(s);
                        ok = false;
                    }
                }
                if (lep_value_append(root, c) != 0) {
                    lep_value_free(c);
                    ok = false;
                }
            }
        }
        long failures = fa.failures;
        lep_value_free(root);
        long live = fa.live;
        fa_disarm();
        TV_CHECK(live == 0, "builders: allocation %ld failed, %ld blocks leaked", n, live);
        TV_CHECK(ok == (failures == 0), "builders: allocation %ld: ok %d, failures %ld", n, ok, failures);
        if (ok)
            break;
    }
}

/* Deep trees at and past the limit, through values. */
static void
test_value_depth(void **state)
{
    (void)state;
    for (int depth = LEP_CODEC_MAX_DEPTH - 1; depth <= LEP_CODEC_MAX_DEPTH + 1; depth++) {
        lep_value_t *root = must(lep_value_new(LEP_TYPE_LIST)), *cur = root;
        for (int i = 1; i < depth; i++) {
            add(cur, must(lep_value_new(LEP_TYPE_LIST)));
            cur = &cur->children[0];
        }
        add(cur, must(lep_value_new_uint64(LEP_TYPE_UINT, 1)));
        lep_buf_t b;
        int rc = encode_value(root, &b);
        TV_RC(rc, depth <= LEP_CODEC_MAX_DEPTH ? 0 : LEP_ERR_LIMIT, "encode depth %d", depth);
        if (rc == 0) {
            lep_value_t *v;
            TV_RC(lep_value_decode(b.data, b.len, false, &v, NULL), 0, "decode depth %d", depth);
            assert_true(lep_value_equal(v, root));
            lep_value_free(v);
        }
        lep_buf_fini(&b);
        lep_value_free(root);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_decode_used_and_views),
        cmocka_unit_test(test_compound_descriptors),
        cmocka_unit_test(test_decode_encode_consistency),
        cmocka_unit_test(test_value_depth),
        cmocka_unit_test(test_random_round_trips),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_typed_print_canonical),
        cmocka_unit_test(test_alloc_failure_decode),
        cmocka_unit_test(test_alloc_failure_encode_print),
        cmocka_unit_test(test_alloc_failure_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
