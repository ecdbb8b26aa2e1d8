/* lep_message_t: accessors, encoding against the spec's bytes, decoding of
 * Proton-C's encoding, round trips (fixed and randomised), section order
 * and type checks, truncation, reuse without allocation, and failure of
 * every allocation in turn. */
#include <lepton/message.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* Allocation hook: counts, tracks live bytes, fails the Nth call.     */

typedef struct alloc_stats {
    long calls;        /* malloc + realloc calls */
    long fail_at;      /* fail this call (1-based); 0: never */
    long live;         /* blocks not yet freed */
    size_t live_bytes;
    size_t peak_bytes;
} alloc_stats_t;

static alloc_stats_t A;

/* A header in front of each block remembers its size. */
#define HDR 16

static void *
t_malloc(size_t n, void *ctx)
{
    (void)ctx;
    A.calls++;
    if (A.fail_at && A.calls == A.fail_at)
        return NULL;
    uint8_t *p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    A.live++;
    A.live_bytes += n;
    if (A.live_bytes > A.peak_bytes)
        A.peak_bytes = A.live_bytes;
    return p + HDR;
}

static void *
t_realloc(void *q, size_t n, void *ctx)
{
    (void)ctx;
    A.calls++;
    if (A.fail_at && A.calls == A.fail_at)
        return NULL;
    uint8_t *old = (uint8_t *)q - HDR;
    size_t was;
    memcpy(&was, old, sizeof was);
    uint8_t *p = realloc(old, n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    A.live_bytes = A.live_bytes - was + n;
    if (A.live_bytes > A.peak_bytes)
        A.peak_bytes = A.live_bytes;
    return p + HDR;
}

static void
t_free(void *q, void *ctx)
{
    (void)ctx;
    if (!q)
        return;
    uint8_t *p = (uint8_t *)q - HDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    A.live--;
    A.live_bytes -= n;
    free(p);
}

static int
hook_setup(void **state)
{
    (void)state;
    static const lep_allocator_t hook = {t_malloc, t_realloc, t_free, NULL};
    memset(&A, 0, sizeof A);
    lep_set_allocator(&hook);
    return 0;
}

static int
hook_teardown(void **state)
{
    (void)state;
    lep_set_allocator(NULL);
    if (A.live != 0)
        fail_msg("%ld allocations leaked", A.live);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Atoms and comparisons.                                             */

static lep_atom_t
atom(lep_type_t t)
{
    lep_atom_t a;
    memset(&a, 0, sizeof a);
    a.type = t;
    return a;
}

static lep_atom_t
a_bytes(lep_type_t t, const void *p, size_t n)
{
    lep_atom_t a = atom(t);
    a.u.bytes = LEP_BYTES(p, n);
    return a;
}

static lep_atom_t a_str(const char *s) { return a_bytes(LEP_TYPE_STRING, s, strlen(s)); }
static lep_atom_t a_sym(const char *s) { return a_bytes(LEP_TYPE_SYMBOL, s, strlen(s)); }

static lep_atom_t
a_u(lep_type_t t, uint64_t v)
{
    lep_atom_t a = atom(t);
    a.u.u = v;
    return a;
}

static lep_atom_t
a_i(lep_type_t t, int64_t v)
{
    lep_atom_t a = atom(t);
    a.u.i = v;
    return a;
}

static lep_atom_t
a_bool(bool v)
{
    lep_atom_t a = atom(LEP_TYPE_BOOL);
    a.u.b = v;
    return a;
}

/* An atom over an encoded value (compounds are given by their raw). */
static lep_atom_t
a_raw(const uint8_t *p, size_t n)
{
    lep_reader_t r;
    lep_atom_t a;
    lep_reader_init(&r, p, n);
    assert_int_equal(lep_reader_next(&r, &a), 0);
    return a;
}

static bool
atom_eq(const lep_atom_t *a, const lep_atom_t *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case LEP_TYPE_NULL:
        return true;
    case LEP_TYPE_BOOL:
        return a->u.b == b->u.b;
    case LEP_TYPE_UBYTE: case LEP_TYPE_USHORT: case LEP_TYPE_UINT: case LEP_TYPE_ULONG:
    case LEP_TYPE_CHAR:
        return a->u.u == b->u.u;
    case LEP_TYPE_BYTE: case LEP_TYPE_SHORT: case LEP_TYPE_INT: case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        return a->u.i == b->u.i;
    case LEP_TYPE_FLOAT:
        return memcmp(&a->u.f, &b->u.f, sizeof(float)) == 0;
    case LEP_TYPE_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case LEP_TYPE_DECIMAL32:
        return memcmp(a->u.dec, b->u.dec, 4) == 0;
    case LEP_TYPE_DECIMAL64:
        return memcmp(a->u.dec, b->u.dec, 8) == 0;
    case LEP_TYPE_DECIMAL128:
        return memcmp(a->u.dec, b->u.dec, 16) == 0;
    case LEP_TYPE_UUID:
        return memcmp(a->u.uuid, b->u.uuid, 16) == 0;
    case LEP_TYPE_BINARY: case LEP_TYPE_STRING: case LEP_TYPE_SYMBOL:
        return lep_bytes_eq(a->u.bytes, b->u.bytes);
    default:
        return lep_bytes_eq(a->raw, b->raw);
    }
}

static const lep_msg_field_t all_fields[] = {
    LEP_MSG_DURABLE, LEP_MSG_PRIORITY, LEP_MSG_TTL, LEP_MSG_FIRST_ACQUIRER,
    LEP_MSG_DELIVERY_COUNT, LEP_MSG_MESSAGE_ID, LEP_MSG_USER_ID, LEP_MSG_TO,
    LEP_MSG_SUBJECT, LEP_MSG_REPLY_TO, LEP_MSG_CORRELATION_ID, LEP_MSG_CONTENT_TYPE,
    LEP_MSG_CONTENT_ENCODING, LEP_MSG_ABSOLUTE_EXPIRY_TIME, LEP_MSG_CREATION_TIME,
    LEP_MSG_GROUP_ID, LEP_MSG_GROUP_SEQUENCE, LEP_MSG_REPLY_TO_GROUP_ID,
};
#define NFIELDS (sizeof all_fields / sizeof all_fields[0])

static bool
opt_atom_eq(const lep_atom_t *a, const lep_atom_t *b)
{
    if (!a || !b)
        return a == b;
    return atom_eq(a, b);
}

/* Same fields, maps (in order) and body; fails with the first difference. */
static void
assert_msg_equal(const lep_message_t *a, const lep_message_t *b)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (lep_message_has(a, all_fields[i]) != lep_message_has(b, all_fields[i]))
            fail_msg("presence of field %d differs", (int)all_fields[i]);
    assert_int_equal(lep_message_durable(a), lep_message_durable(b));
    assert_int_equal(lep_message_priority(a), lep_message_priority(b));
    assert_int_equal(lep_message_ttl(a), lep_message_ttl(b));
    assert_int_equal(lep_message_first_acquirer(a), lep_message_first_acquirer(b));
    assert_int_equal(lep_message_delivery_count(a), lep_message_delivery_count(b));
    assert_true(opt_atom_eq(lep_message_id(a), lep_message_id(b)));
    assert_true(opt_atom_eq(lep_message_correlation_id(a), lep_message_correlation_id(b)));
    assert_true(lep_bytes_eq(lep_message_user_id(a), lep_message_user_id(b)));
    assert_true(lep_bytes_eq(lep_message_to(a), lep_message_to(b)));
    assert_true(lep_bytes_eq(lep_message_subject(a), lep_message_subject(b)));
    assert_true(lep_bytes_eq(lep_message_reply_to(a), lep_message_reply_to(b)));
    assert_true(lep_bytes_eq(lep_message_content_type(a), lep_message_content_type(b)));
    assert_true(lep_bytes_eq(lep_message_content_encoding(a), lep_message_content_encoding(b)));
    assert_true(lep_bytes_eq(lep_message_group_id(a), lep_message_group_id(b)));
    assert_true(lep_bytes_eq(lep_message_reply_to_group_id(a), lep_message_reply_to_group_id(b)));
    assert_true(lep_message_absolute_expiry_time(a) == lep_message_absolute_expiry_time(b));
    assert_true(lep_message_creation_time(a) == lep_message_creation_time(b));
    assert_int_equal(lep_message_group_sequence(a), lep_message_group_sequence(b));

    assert_int_equal(lep_message_property_count(a), lep_message_property_count(b));
    for (size_t i = 0; i < lep_message_property_count(a); i++) {
        lep_bytes_t ka, kb;
        const lep_atom_t *va, *vb;
        assert_int_equal(lep_message_property_at(a, i, &ka, &va), 0);
        assert_int_equal(lep_message_property_at(b, i, &kb, &vb), 0);
        assert_true(lep_bytes_eq(ka, kb));
        if (!atom_eq(va, vb))
            fail_msg("property %zu differs (types %d, %d)", i, va->type, vb->type);
    }
    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++) {
        assert_int_equal(lep_message_annotation_count(a, w), lep_message_annotation_count(b, w));
        for (size_t i = 0; i < lep_message_annotation_count(a, w); i++) {
            const lep_atom_t *ka, *kb, *va, *vb;
            assert_int_equal(lep_message_annotation_at(a, w, i, &ka, &va), 0);
            assert_int_equal(lep_message_annotation_at(b, w, i, &kb, &vb), 0);
            assert_true(atom_eq(ka, kb));
            if (!atom_eq(va, vb))
                fail_msg("annotation %d/%zu differs", w, i);
        }
    }
    assert_int_equal(lep_message_body_kind(a), lep_message_body_kind(b));
    assert_int_equal(lep_message_body_count(a), lep_message_body_count(b));
    for (size_t i = 0; i < lep_message_body_count(a); i++)
        assert_true(lep_bytes_eq(lep_message_body_section(a, i), lep_message_body_section(b, i)));
}

static lep_message_t *
msg_new(void)
{
    lep_message_t *m = NULL;
    assert_int_equal(lep_message_new(&m), 0);
    assert_non_null(m);
    return m;
}

/* Encodes m into a fresh buffer (caller finis it). */
static lep_buf_t
encode(const lep_message_t *m)
{
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_message_encode(m, &b), 0);
    return b;
}

static void
expect_bytes(const lep_buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len != n || memcmp(b->data, p, n) != 0) {
        char got[1024] = "";
        for (size_t i = 0; i < b->len && i < 300; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%02x", b->data[i]);
        fail_msg("encoding differs (%zu bytes, expected %zu): %s", b->len, n, got);
    }
}

/* ------------------------------------------------------------------ */
/* Accessors.                                                         */

static void
test_empty(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    for (size_t i = 0; i < NFIELDS; i++)
        assert_false(lep_message_has(m, all_fields[i]));
    assert_false(lep_message_durable(m));
    assert_int_equal(lep_message_priority(m), 4);
    assert_int_equal(lep_message_ttl(m), 0);
    assert_null(lep_message_id(m));
    assert_null(lep_message_subject(m).ptr);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
    assert_int_equal(lep_message_body_count(m), 0);
    assert_null(lep_message_body_section(m, 0).ptr);
    assert_int_equal(lep_message_property_count(m), 0);
    assert_int_equal(lep_message_property_at(m, 0, NULL, NULL), LEP_ERR_NOT_FOUND);
    assert_int_equal(lep_message_body_value(m, &(lep_atom_t){0}), LEP_ERR_STATE);

    /* Nothing present encodes to nothing, and nothing decodes to it. */
    lep_buf_t b = encode(m);
    assert_int_equal(b.len, 0);
    lep_buf_fini(&b);
    assert_int_equal(lep_message_decode(m, "", 0), 0);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
    lep_message_free(m);
    lep_message_free(NULL);
}

static void
test_header_fields(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    lep_message_set_durable(m, true);
    lep_message_set_priority(m, 9);
    lep_message_set_ttl(m, 60000);
    lep_message_set_first_acquirer(m, true);
    lep_message_set_delivery_count(m, 300);
    assert_true(lep_message_durable(m));
    assert_int_equal(lep_message_priority(m), 9);
    assert_int_equal(lep_message_ttl(m), 60000);
    assert_true(lep_message_first_acquirer(m));
    assert_int_equal(lep_message_delivery_count(m), 300);
    for (int f = LEP_MSG_DURABLE; f <= LEP_MSG_DELIVERY_COUNT; f++)
        assert_true(lep_message_has(m, f));

    /* Unset brings back the default and absence. */
    lep_message_unset(m, LEP_MSG_PRIORITY);
    assert_false(lep_message_has(m, LEP_MSG_PRIORITY));
    assert_int_equal(lep_message_priority(m), 4);
    lep_message_unset(m, LEP_MSG_TTL);
    assert_int_equal(lep_message_ttl(m), 0);
    assert_false(lep_message_has(m, LEP_MSG_TTL));
    lep_message_unset(m, LEP_MSG_FIELD_COUNT_); /* ignored */
    assert_false(lep_message_has(m, LEP_MSG_FIELD_COUNT_));

    /* A field set to its default is still present and still encoded. */
    lep_message_clear(m);
    lep_message_set_priority(m, 4);
    assert_true(lep_message_has(m, LEP_MSG_PRIORITY));
    lep_buf_t b = encode(m);
    static const uint8_t want[] = {0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x40, 0x50, 0x04};
    expect_bytes(&b, want, sizeof want);
    lep_buf_fini(&b);
    lep_message_free(m);
}

static void
test_properties_fields(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    lep_atom_t id = a_u(LEP_TYPE_ULONG, 1234567890123ull);
    assert_int_equal(lep_message_set_id(m, &id), 0);
    const lep_atom_t *got = lep_message_id(m);
    assert_non_null(got);
    assert_int_equal(got->type, LEP_TYPE_ULONG);
    assert_true(got->u.u == 1234567890123ull);

    /* Each id type, and the ones the spec does not allow. */
    lep_atom_t uu = atom(LEP_TYPE_UUID);
    for (int i = 0; i < 16; i++)
        uu.u.uuid[i] = (uint8_t)i;
    assert_int_equal(lep_message_set_correlation_id(m, &uu), 0);
    assert_int_equal(memcmp(lep_message_correlation_id(m)->u.uuid, uu.u.uuid, 16), 0);
    lep_atom_t bin = a_bytes(LEP_TYPE_BINARY, "\x00\x01\x02", 3);
    assert_int_equal(lep_message_set_correlation_id(m, &bin), 0);
    assert_true(lep_bytes_eq(lep_message_correlation_id(m)->u.bytes, LEP_BYTES("\x00\x01\x02", 3)));
    lep_atom_t s = a_str("corr");
    assert_int_equal(lep_message_set_correlation_id(m, &s), 0);
    assert_true(lep_bytes_eq_str(lep_message_correlation_id(m)->u.bytes, "corr"));
    lep_atom_t bad = a_sym("sym");
    assert_int_equal(lep_message_set_id(m, &bad), LEP_ERR_TYPE);
    bad = a_i(LEP_TYPE_INT, 5);
    assert_int_equal(lep_message_set_id(m, &bad), LEP_ERR_TYPE);
    bad = a_bytes(LEP_TYPE_STRING, "\xff", 1);
    assert_int_equal(lep_message_set_id(m, &bad), LEP_ERR_UTF8);
    assert_int_equal(lep_message_id(m)->u.u, 1234567890123ull); /* unchanged */
    assert_int_equal(lep_message_set_id(m, NULL), 0);
    assert_null(lep_message_id(m));
    assert_false(lep_message_has(m, LEP_MSG_MESSAGE_ID));
    lep_atom_t nul = atom(LEP_TYPE_NULL);
    assert_int_equal(lep_message_set_correlation_id(m, &nul), 0);
    assert_null(lep_message_correlation_id(m));

    /* Byte-string fields. */
    struct {
        int (*set)(lep_message_t *, lep_bytes_t);
        lep_bytes_t (*get)(const lep_message_t *);
        lep_msg_field_t f;
        int kind; /* 0 binary, 1 string, 2 symbol */
    } sf[] = {
        {lep_message_set_user_id, lep_message_user_id, LEP_MSG_USER_ID, 0},
        {lep_message_set_to, lep_message_to, LEP_MSG_TO, 1},
        {lep_message_set_subject, lep_message_subject, LEP_MSG_SUBJECT, 1},
        {lep_message_set_reply_to, lep_message_reply_to, LEP_MSG_REPLY_TO, 1},
        {lep_message_set_content_type, lep_message_content_type, LEP_MSG_CONTENT_TYPE, 2},
        {lep_message_set_content_encoding, lep_message_content_encoding, LEP_MSG_CONTENT_ENCODING, 2},
        {lep_message_set_group_id, lep_message_group_id, LEP_MSG_GROUP_ID, 1},
        {lep_message_set_reply_to_group_id, lep_message_reply_to_group_id, LEP_MSG_REPLY_TO_GROUP_ID, 1},
    };
    for (size_t i = 0; i < sizeof sf / sizeof sf[0]; i++) {
        char val[32];
        snprintf(val, sizeof val, "value-%zu", i);
        assert_int_equal(sf[i].set(m, lep_bytes_str(val)), 0);
        assert_true(lep_message_has(m, sf[i].f));
        assert_true(lep_bytes_eq_str(sf[i].get(m), val));
        /* Non-ASCII: fine for binary and string, not for a symbol. */
        int rc = sf[i].set(m, lep_bytes_str("caf\xc3\xa9"));
        assert_int_equal(rc, sf[i].kind == 2 ? LEP_ERR_SYMBOL : 0);
        /* Invalid UTF-8: only binary takes it. */
        rc = sf[i].set(m, LEP_BYTES("\xc3\x28", 2));
        assert_int_equal(rc, sf[i].kind == 0 ? 0 : sf[i].kind == 1 ? LEP_ERR_UTF8 : LEP_ERR_SYMBOL);
        /* Present and empty is not absent. */
        assert_int_equal(sf[i].set(m, LEP_BYTES("", 0)), 0);
        assert_true(lep_message_has(m, sf[i].f));
        assert_non_null(sf[i].get(m).ptr);
        assert_int_equal(sf[i].get(m).len, 0);
        assert_int_equal(sf[i].set(m, (lep_bytes_t){NULL, 0}), 0);
        assert_false(lep_message_has(m, sf[i].f));
        assert_null(sf[i].get(m).ptr);
        assert_int_equal(sf[i].set(m, lep_bytes_str(val)), 0);
    }
    lep_message_set_absolute_expiry_time(m, -5);
    lep_message_set_creation_time(m, 1700000000123);
    lep_message_set_group_sequence(m, 4000000000u);
    assert_true(lep_message_absolute_expiry_time(m) == -5);
    assert_true(lep_message_creation_time(m) == 1700000000123);
    assert_true(lep_message_group_sequence(m) == 4000000000u);
    assert_true(lep_message_has(m, LEP_MSG_CREATION_TIME));
    lep_message_unset(m, LEP_MSG_CREATION_TIME);
    assert_true(lep_message_creation_time(m) == 0);
    lep_message_unset(m, LEP_MSG_SUBJECT);
    assert_null(lep_message_subject(m).ptr);

    /* A view of the message passed back into it. */
    assert_int_equal(lep_message_set_subject(m, lep_bytes_str("abcdef")), 0);
    lep_bytes_t v = lep_message_subject(m);
    assert_int_equal(lep_message_set_subject(m, LEP_BYTES(v.ptr + 2, 3)), 0);
    assert_true(lep_bytes_eq_str(lep_message_subject(m), "cde"));
    assert_int_equal(lep_message_set_to(m, lep_message_subject(m)), 0);
    assert_true(lep_bytes_eq_str(lep_message_to(m), "cde"));
    assert_int_equal(lep_message_set_id(m, lep_message_correlation_id(m)), 0);
    assert_null(lep_message_id(m)); /* correlation-id was absent */
    lep_message_free(m);
}

static void
test_application_properties(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    lep_atom_t vals[20];
    int n = 0;
    vals[n++] = atom(LEP_TYPE_NULL);
    vals[n++] = a_bool(true);
    vals[n++] = a_u(LEP_TYPE_UBYTE, 200);
    vals[n++] = a_u(LEP_TYPE_USHORT, 65000);
    vals[n++] = a_u(LEP_TYPE_UINT, 70000);
    vals[n++] = a_u(LEP_TYPE_ULONG, 1ull << 40);
    vals[n++] = a_i(LEP_TYPE_BYTE, -100);
    vals[n++] = a_i(LEP_TYPE_SHORT, -30000);
    vals[n++] = a_i(LEP_TYPE_INT, -2000000);
    vals[n++] = a_i(LEP_TYPE_LONG, -(1ll << 50));
    vals[n] = atom(LEP_TYPE_FLOAT);
    vals[n++].u.f = 1.5f;
    vals[n] = atom(LEP_TYPE_DOUBLE);
    vals[n++].u.d = -2.25;
    vals[n++] = a_u(LEP_TYPE_CHAR, 0x1F600);
    vals[n++] = a_i(LEP_TYPE_TIMESTAMP, 1600000000000);
    vals[n] = atom(LEP_TYPE_UUID);
    memset(vals[n++].u.uuid, 0xab, 16);
    vals[n++] = a_bytes(LEP_TYPE_BINARY, "\x00\xff", 2);
    vals[n++] = a_str("text");
    vals[n++] = a_sym("symbol");
    vals[n] = atom(LEP_TYPE_DECIMAL64);
    memset(vals[n++].u.dec, 0x22, 8);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(lep_message_set_property(m, lep_bytes_str(key), &vals[i]), 0);
    }
    assert_int_equal(lep_message_property_count(m), (size_t)n);
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        const lep_atom_t *v = lep_message_property(m, lep_bytes_str(key));
        assert_non_null(v);
        assert_true(atom_eq(v, &vals[i]));
        lep_bytes_t k;
        assert_int_equal(lep_message_property_at(m, (size_t)i, &k, &v), 0);
        assert_true(lep_bytes_eq_str(k, key));
        assert_true(atom_eq(v, &vals[i]));
    }
    assert_null(lep_message_property(m, lep_bytes_str("nope")));

    /* Through the wire and back. */
    lep_buf_t b = encode(m);
    lep_message_t *d = msg_new();
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    /* Replace keeps the position; remove shifts the rest down. */
    lep_atom_t x = a_str("replaced");
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("k3"), &x), 0);
    assert_int_equal(lep_message_property_count(m), (size_t)n);
    const lep_atom_t *v;
    lep_bytes_t k;
    assert_int_equal(lep_message_property_at(m, 3, &k, &v), 0);
    assert_true(lep_bytes_eq_str(k, "k3") && atom_eq(v, &x));
    assert_int_equal(lep_message_remove_property(m, lep_bytes_str("k0")), 0);
    assert_int_equal(lep_message_remove_property(m, lep_bytes_str("k0")), LEP_ERR_NOT_FOUND);
    assert_int_equal(lep_message_property_count(m), (size_t)n - 1);
    assert_int_equal(lep_message_property_at(m, 0, &k, NULL), 0);
    assert_true(lep_bytes_eq_str(k, "k1"));
    /* The map's encoding follows the edits. */
    b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    /* Compound values are not simple; keys must be UTF-8. */
    static const uint8_t list[] = {0xc0, 0x03, 0x01, 0x50, 0x07};
    lep_atom_t l = a_raw(list, sizeof list);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("l"), &l), LEP_ERR_TYPE);
    assert_int_equal(lep_message_set_property(m, LEP_BYTES("\xff", 1), &x), LEP_ERR_UTF8);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("k"), NULL), LEP_ERR_INVALID);
    lep_atom_t badsym = a_bytes(LEP_TYPE_SYMBOL, "\x80", 1);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("k"), &badsym), LEP_ERR_SYMBOL);
    lep_atom_t badchar = a_u(LEP_TYPE_CHAR, 0xd800);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("k"), &badchar), LEP_ERR_INVALID);
    assert_null(lep_message_property(m, lep_bytes_str("k")));

    /* A key and value taken from the message itself. */
    assert_int_equal(lep_message_property_at(m, 0, &k, &v), 0);
    assert_int_equal(lep_message_set_property(m, k, v), 0);
    assert_int_equal(lep_message_property_count(m), (size_t)n - 1);
    lep_message_free(m);
    lep_message_free(d);
}

static void
test_annotations(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    lep_buf_t enc;
    lep_encoder_t e;
    lep_buf_init(&enc);
    lep_encoder_init(&e, &enc);
    lep_encode_list_begin(&e);
    lep_encode_int(&e, 1);
    lep_encode_cstring(&e, "two");
    lep_encode_map_begin(&e);
    lep_encode_csymbol(&e, "k");
    lep_encode_null(&e);
    lep_encode_map_end(&e);
    lep_encode_list_end(&e);
    lep_encode_descriptor(&e, 0x1234);
    lep_encode_cstring(&e, "described");
    assert_int_equal(lep_encoder_error(&e), 0);
    lep_reader_t r;
    lep_atom_t list, desc;
    lep_reader_init(&r, enc.data, enc.len);
    assert_int_equal(lep_reader_next(&r, &list), 0);
    assert_int_equal(lep_reader_next(&r, &desc), 0);
    assert_int_equal(desc.type, LEP_TYPE_DESCRIBED);

    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++) {
        lep_atom_t k1 = a_sym("x-opt-one"), k2 = a_u(LEP_TYPE_ULONG, 77), k3 = a_sym("x-opt-d");
        lep_atom_t v1 = a_i(LEP_TYPE_LONG, -1);
        assert_int_equal(lep_message_set_annotation(m, w, &k1, &v1), 0);
        assert_int_equal(lep_message_set_annotation(m, w, &k2, &list), 0);
        assert_int_equal(lep_message_set_annotation(m, w, &k3, &desc), 0);
        assert_int_equal(lep_message_annotation_count(m, w), 3);
        assert_true(atom_eq(lep_message_annotation(m, w, &k1), &v1));
        const lep_atom_t *got = lep_message_annotation(m, w, &k2);
        assert_non_null(got);
        assert_int_equal(got->type, LEP_TYPE_LIST);
        assert_int_equal(got->count, 3);
        assert_true(lep_bytes_eq(got->raw, list.raw));
        assert_true(got->raw.ptr != list.raw.ptr); /* a copy */
        got = lep_message_annotation_sym(m, w, lep_bytes_str("x-opt-d"));
        assert_non_null(got);
        assert_int_equal(got->type, LEP_TYPE_DESCRIBED);
        assert_true(lep_bytes_eq(got->raw, desc.raw));
        /* ulong 77 is not symbol "77" and vice versa */
        assert_null(lep_message_annotation_sym(m, w, lep_bytes_str("77")));
        lep_atom_t k2s = a_u(LEP_TYPE_ULONG, 78);
        assert_null(lep_message_annotation(m, w, &k2s));

        const lep_atom_t *kk, *vv;
        assert_int_equal(lep_message_annotation_at(m, w, 1, &kk, &vv), 0);
        assert_true(atom_eq(kk, &k2));
        assert_int_equal(lep_message_annotation_at(m, w, 3, &kk, &vv), LEP_ERR_NOT_FOUND);

        /* Bad keys and values. */
        lep_atom_t sk = a_str("string-key");
        assert_int_equal(lep_message_set_annotation(m, w, &sk, &v1), LEP_ERR_TYPE);
        assert_int_equal(lep_message_set_annotation(m, w, NULL, &v1), LEP_ERR_INVALID);
        lep_atom_t broken = list;
        broken.raw.len -= 1; /* the list's size no longer fits */
        assert_true(lep_message_set_annotation(m, w, &k1, &broken) < 0);
        lep_atom_t noraw = list;
        noraw.raw = (lep_bytes_t){0};
        assert_int_equal(lep_message_set_annotation(m, w, &k1, &noraw), LEP_ERR_INVALID);
        assert_true(atom_eq(lep_message_annotation(m, w, &k1), &v1)); /* unchanged */
    }
    /* by symbol name */
    lep_atom_t byname = a_str("by name");
    assert_int_equal(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS,
                                                    lep_bytes_str("x-opt-one"), &byname),
                     0);
    assert_true(atom_eq(lep_message_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS,
                                                   lep_bytes_str("x-opt-one")),
                        &byname));
    assert_int_equal(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS,
                                                    lep_bytes_str("x-\xc3\xa9"), &byname),
                     LEP_ERR_SYMBOL);
    assert_int_equal(lep_message_annotation_count(m, LEP_MSG_MESSAGE_ANNOTATIONS), 3);
    assert_null(lep_message_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &byname)); /* string key */
    assert_int_equal(lep_message_annotation_count(m, (lep_msg_annotations_t)7), 0);
    assert_int_equal(lep_message_set_annotation(m, (lep_msg_annotations_t)7, &list, &list),
                     LEP_ERR_INVALID);

    lep_buf_t b = encode(m);
    lep_message_t *d = msg_new();
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    /* The decoded compound can be entered like any atom. */
    const lep_atom_t *got = lep_message_annotation_sym(d, LEP_MSG_FOOTER, lep_bytes_str("x-opt-d"));
    assert_non_null(got);
    lep_reader_t rr, child;
    lep_reader_init(&rr, got->raw.ptr, got->raw.len);
    lep_atom_t outer;
    assert_int_equal(lep_reader_next(&rr, &outer), 0);
    assert_int_equal(lep_reader_enter(&rr, &outer, &child), 0);
    lep_bytes_t sv;
    assert_int_equal(lep_read_string(&child, &sv), 0);
    assert_true(lep_bytes_eq_str(sv, "described"));

    lep_atom_t k2 = a_u(LEP_TYPE_ULONG, 77);
    assert_int_equal(lep_message_remove_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k2), 0);
    assert_int_equal(lep_message_remove_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k2),
                     LEP_ERR_NOT_FOUND);
    assert_int_equal(lep_message_annotation_count(m, LEP_MSG_MESSAGE_ANNOTATIONS), 2);
    lep_buf_fini(&b);
    b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);

    lep_buf_fini(&b);
    lep_buf_fini(&enc);
    lep_message_free(m);
    lep_message_free(d);
}

static void
test_body(void **state)
{
    (void)state;
    lep_message_t *m = msg_new(), *d = msg_new();
    lep_buf_t b;

    assert_int_equal(lep_message_set_body_data(m, lep_bytes_str("one")), 0);
    assert_int_equal(lep_message_add_body_data(m, lep_bytes_str("two")), 0);
    assert_int_equal(lep_message_add_body_data(m, LEP_BYTES("", 0)), 0);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_DATA);
    assert_int_equal(lep_message_body_count(m), 3);
    assert_true(lep_bytes_eq_str(lep_message_body_section(m, 1), "two"));
    assert_int_equal(lep_message_body_section(m, 2).len, 0);
    assert_int_equal(lep_message_body_string(m, &(lep_bytes_t){0}), LEP_ERR_STATE);
    static const uint8_t seq[] = {0xc0, 0x04, 0x02, 0x41, 0x50, 0x01};
    assert_int_equal(lep_message_add_body_sequence_raw(m, LEP_BYTES(seq, sizeof seq)),
                     LEP_ERR_STATE);
    b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    /* set replaces all data sections */
    assert_int_equal(lep_message_set_body_data(m, lep_message_body_section(m, 0)), 0);
    assert_int_equal(lep_message_body_count(m), 1);
    assert_true(lep_bytes_eq_str(lep_message_body_section(m, 0), "one"));

    assert_int_equal(lep_message_set_body_sequence_raw(m, LEP_BYTES(seq, sizeof seq)), 0);
    assert_int_equal(lep_message_add_body_sequence_raw(m, LEP_BYTES(seq, sizeof seq)), 0);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_SEQUENCE);
    assert_int_equal(lep_message_body_count(m), 2);
    assert_int_equal(lep_message_add_body_data(m, lep_bytes_str("x")), LEP_ERR_STATE);
    static const uint8_t notlist[] = {0xa1, 0x01, 'x'};
    assert_int_equal(lep_message_set_body_sequence_raw(m, LEP_BYTES(notlist, sizeof notlist)),
                     LEP_ERR_TYPE);
    static const uint8_t shortlist[] = {0xc0, 0x04, 0x02, 0x41};
    assert_true(lep_message_set_body_sequence_raw(m, LEP_BYTES(shortlist, sizeof shortlist)) < 0);
    assert_int_equal(lep_message_body_count(m), 2);
    b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    assert_int_equal(lep_message_set_body_string(m, lep_bytes_str("h\xc3\xa9llo")), 0);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_VALUE);
    lep_bytes_t s;
    assert_int_equal(lep_message_body_string(m, &s), 0);
    assert_true(lep_bytes_eq_str(s, "h\xc3\xa9llo"));
    assert_int_equal(lep_message_set_body_string(m, LEP_BYTES("\xc3", 1)), LEP_ERR_UTF8);
    assert_int_equal(lep_message_add_body_data(m, lep_bytes_str("x")), LEP_ERR_STATE);
    b = encode(m);
    static const uint8_t want[] = {0x00, 0x53, 0x77, 0xa1, 0x06, 'h', 0xc3, 0xa9, 'l', 'l', 'o'};
    expect_bytes(&b, want, sizeof want);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    static const uint8_t map[] = {0xc1, 0x05, 0x02, 0xa3, 0x01, 'k', 0x43};
    assert_int_equal(lep_message_set_body_value_raw(m, LEP_BYTES(map, sizeof map)), 0);
    lep_atom_t v;
    assert_int_equal(lep_message_body_value(m, &v), 0);
    assert_int_equal(v.type, LEP_TYPE_MAP);
    assert_int_equal(lep_message_body_string(m, &s), LEP_ERR_TYPE);
    assert_true(lep_message_set_body_value_raw(m, LEP_BYTES(map, sizeof map - 1)) < 0);
    static const uint8_t two[] = {0x41, 0x41};
    assert_int_equal(lep_message_set_body_value_raw(m, LEP_BYTES(two, 2)), LEP_ERR_DECODE);
    assert_true(lep_message_set_body_value_raw(m, LEP_BYTES(NULL, 0)) < 0);
    assert_int_equal(lep_message_body_value(m, &v), 0);
    assert_int_equal(v.type, LEP_TYPE_MAP);
    b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);

    /* A long data section takes vbin32. */
    static uint8_t big[300];
    memset(big, 'z', sizeof big);
    assert_int_equal(lep_message_set_body_data(m, LEP_BYTES(big, sizeof big)), 0);
    b = encode(m);
    assert_int_equal(b.len, 3 + 5 + sizeof big);
    assert_int_equal(b.data[3], 0xb0);
    lep_buf_fini(&b);

    lep_message_clear_body(m);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
    assert_int_equal(lep_message_body_count(m), 0);
    lep_message_free(m);
    lep_message_free(d);
}

/* ------------------------------------------------------------------ */
/* Exact encodings.                                                   */

static void
test_encode_exact(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    lep_message_set_durable(m, true);
    lep_atom_t id = a_u(LEP_TYPE_ULONG, 1);
    assert_int_equal(lep_message_set_id(m, &id), 0);
    assert_int_equal(lep_message_set_to(m, lep_bytes_str("q")), 0);
    lep_atom_t five = a_i(LEP_TYPE_INT, 5);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("k"), &five), 0);
    lep_atom_t ak = a_sym("x-a"), av = a_bool(false);
    assert_int_equal(lep_message_set_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &ak, &av), 0);
    assert_int_equal(lep_message_set_body_data(m, lep_bytes_str("hi")), 0);

    /* Spec part 3, 3.2: each section a described value with a ulong
     * descriptor (smallulong form); part 1: smallest encodings, list8/map8
     * sizes counting the count byte, trailing absent fields omitted and
     * inner absent ones null. */
    static const uint8_t want[] = {
        0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41,             /* header [true] */
        0x00, 0x53, 0x72, 0xc1, 0x07, 0x02,                   /* message-annotations */
        0xa3, 0x03, 'x', '-', 'a', 0x42,                      /*   {:x-a false} */
        0x00, 0x53, 0x73, 0xc0, 0x07, 0x03,                   /* properties */
        0x53, 0x01, 0x40, 0xa1, 0x01, 'q',                    /*   [1, null, "q"] */
        0x00, 0x53, 0x74, 0xc1, 0x06, 0x02,                   /* application-properties */
        0xa1, 0x01, 'k', 0x54, 0x05,                          /*   {"k" 5} */
        0x00, 0x53, 0x75, 0xa0, 0x02, 'h', 'i',               /* data */
    };
    lep_buf_t b = encode(m);
    expect_bytes(&b, want, sizeof want);

    /* Encoding appends. */
    assert_int_equal(lep_message_encode(m, &b), 0);
    assert_int_equal(b.len, 2 * sizeof want);
    assert_memory_equal(b.data + sizeof want, want, sizeof want);
    lep_buf_fini(&b);

    /* A fixed buffer too small: overflow, nothing written. */
    uint8_t small[sizeof want - 1];
    lep_buf_t fb;
    lep_buf_init_fixed(&fb, small, sizeof small);
    assert_int_equal(lep_message_encode(m, &fb), LEP_ERR_OVERFLOW);
    assert_int_equal(fb.len, 0);
    uint8_t exact[sizeof want];
    lep_buf_init_fixed(&fb, exact, sizeof exact);
    assert_int_equal(lep_message_encode(m, &fb), 0);
    assert_memory_equal(exact, want, sizeof want);

    /* Every header field and 32-bit forms. */
    lep_message_clear(m);
    lep_message_set_ttl(m, 1000);
    lep_message_set_delivery_count(m, 0);
    lep_message_set_group_sequence(m, 7);
    lep_message_set_creation_time(m, 0x0102030405);
    static const uint8_t want2[] = {
        0x00, 0x53, 0x70, 0xc0, 0x0a, 0x05,
        0x40, 0x40, 0x70, 0x00, 0x00, 0x03, 0xe8, 0x40, 0x43,
        0x00, 0x53, 0x73, 0xc0, 0x16, 0x0c,
        0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
        0x83, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
        0x40, 0x52, 0x07,
    };
    b = encode(m);
    expect_bytes(&b, want2, sizeof want2);
    lep_buf_fini(&b);

    /* Long strings and many entries: str32, map32, list32. */
    lep_message_clear(m);
    char longs[300];
    memset(longs, 's', sizeof longs);
    assert_int_equal(lep_message_set_subject(m, LEP_BYTES(longs, sizeof longs)), 0);
    b = encode(m);
    assert_int_equal(b.len, 3 + 9 + 3 + 5 + sizeof longs);
    static const uint8_t head32[] = {0x00, 0x53, 0x73, 0xd0, 0x00, 0x00, 0x01, 0x38,
                                     0x00, 0x00, 0x00, 0x04, 0x40, 0x40, 0x40, 0xb1,
                                     0x00, 0x00, 0x01, 0x2c};
    assert_memory_equal(b.data, head32, sizeof head32);
    lep_buf_fini(&b);
    lep_message_free(m);
}

/* Proton-C 0.37 (python binding), every field it can set:
 * Message(durable, priority=7, ttl=1.5, first_acquirer, delivery_count=3,
 * id=UUID(12345678-...), user_id=b'user', address, subject, reply_to,
 * correlation_id=ulong(99), content_type, content_encoding, expiry_time,
 * creation_time, group_id, group_sequence=17, reply_to_group_id,
 * instructions, annotations, properties, body='hello').encode() */
static const char proton_full_hex[] =
    "005370c00c0541500770000005dc415203005371d10000001200000002a308782d6f70742d6469a1026476"
    "005372d10000002200000004a308782d6f70742d6d61552a5307d00000000b000000025501a10374776f"
    "005373c0690d9812345678123456781234567812345678a00475736572a10e616d71703a2f2f746f2f6865"
    "7265a1047375626aa1057265706c795363a30a746578742f706c61696ea3057574662d38830000018bcfe5"
    "687b8300000174876e81f4a1036772705211a10472677270005374d10000002100000008a10173a1037374"
    "72a101695505a1016242a10164823ff4000000000000005377a10568656c6c6f";

static size_t
unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void
test_decode_proton(void **state)
{
    (void)state;
    uint8_t in[512];
    size_t n = unhex(proton_full_hex, in);
    lep_message_t *m = msg_new();
    assert_int_equal(lep_message_decode(m, in, n), 0);
    memset(in, 0xee, sizeof in); /* the message keeps its own copy */

    assert_true(lep_message_durable(m));
    assert_int_equal(lep_message_priority(m), 7);
    assert_int_equal(lep_message_ttl(m), 1500);
    assert_true(lep_message_first_acquirer(m));
    assert_int_equal(lep_message_delivery_count(m), 3);
    const lep_atom_t *id = lep_message_id(m);
    assert_non_null(id);
    assert_int_equal(id->type, LEP_TYPE_UUID);
    assert_memory_equal(id->u.uuid, "\x12\x34\x56\x78\x12\x34\x56\x78\x12\x34\x56\x78\x12\x34\x56\x78",
                        16);
    assert_true(lep_bytes_eq_str(lep_message_user_id(m), "user"));
    assert_true(lep_bytes_eq_str(lep_message_to(m), "amqp://to/here"));
    assert_true(lep_bytes_eq_str(lep_message_subject(m), "subj"));
    assert_true(lep_bytes_eq_str(lep_message_reply_to(m), "reply"));
    const lep_atom_t *corr = lep_message_correlation_id(m);
    assert_true(corr && corr->type == LEP_TYPE_ULONG && corr->u.u == 99);
    assert_true(lep_bytes_eq_str(lep_message_content_type(m), "text/plain"));
    assert_true(lep_bytes_eq_str(lep_message_content_encoding(m), "utf-8"));
    assert_true(lep_message_absolute_expiry_time(m) == 1700000000123);
    assert_true(lep_message_creation_time(m) == 1600000000500);
    assert_true(lep_bytes_eq_str(lep_message_group_id(m), "grp"));
    assert_int_equal(lep_message_group_sequence(m), 17);
    assert_true(lep_bytes_eq_str(lep_message_reply_to_group_id(m), "rgrp"));

    const lep_atom_t *v = lep_message_annotation_sym(m, LEP_MSG_DELIVERY_ANNOTATIONS,
                                                     lep_bytes_str("x-opt-di"));
    assert_true(v && v->type == LEP_TYPE_STRING && lep_bytes_eq_str(v->u.bytes, "dv"));
    v = lep_message_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("x-opt-ma"));
    assert_true(v && v->type == LEP_TYPE_LONG && v->u.i == 42);
    lep_atom_t k7 = a_u(LEP_TYPE_ULONG, 7);
    v = lep_message_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k7);
    assert_true(v && v->type == LEP_TYPE_LIST && v->count == 2);

    assert_int_equal(lep_message_property_count(m), 4);
    v = lep_message_property(m, lep_bytes_str("s"));
    assert_true(v && v->type == LEP_TYPE_STRING && lep_bytes_eq_str(v->u.bytes, "str"));
    v = lep_message_property(m, lep_bytes_str("i"));
    assert_true(v && v->type == LEP_TYPE_LONG && v->u.i == 5);
    v = lep_message_property(m, lep_bytes_str("b"));
    assert_true(v && v->type == LEP_TYPE_BOOL && !v->u.b);
    v = lep_message_property(m, lep_bytes_str("d"));
    assert_true(v && v->type == LEP_TYPE_DOUBLE && v->u.d == 1.25);
    lep_bytes_t s;
    assert_int_equal(lep_message_body_string(m, &s), 0);
    assert_true(lep_bytes_eq_str(s, "hello"));

    /* Re-encoded and decoded again: the same message. */
    lep_buf_t b = encode(m);
    lep_message_t *d = msg_new();
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);
    lep_message_free(m);
    lep_message_free(d);
}

/* ------------------------------------------------------------------ */
/* A fully populated message.                                         */

static void
populate_full(lep_message_t *m)
{
    lep_message_set_durable(m, true);
    lep_message_set_priority(m, 0);
    lep_message_set_ttl(m, 123456);
    lep_message_set_first_acquirer(m, false);
    lep_message_set_delivery_count(m, 2);
    lep_atom_t id = a_str("message-\xe2\x82\xac-1");
    assert_int_equal(lep_message_set_id(m, &id), 0);
    assert_int_equal(lep_message_set_user_id(m, LEP_BYTES("\x00\x01", 2)), 0);
    assert_int_equal(lep_message_set_to(m, lep_bytes_str("topic://a.b")), 0);
    assert_int_equal(lep_message_set_subject(m, lep_bytes_str("subject")), 0);
    assert_int_equal(lep_message_set_reply_to(m, lep_bytes_str("temp://reply")), 0);
    lep_atom_t corr = a_bytes(LEP_TYPE_BINARY, "\x09\x08", 2);
    assert_int_equal(lep_message_set_correlation_id(m, &corr), 0);
    assert_int_equal(lep_message_set_content_type(m, lep_bytes_str("application/json")), 0);
    assert_int_equal(lep_message_set_content_encoding(m, lep_bytes_str("gzip")), 0);
    lep_message_set_absolute_expiry_time(m, 1800000000000);
    lep_message_set_creation_time(m, 1700000000000);
    assert_int_equal(lep_message_set_group_id(m, lep_bytes_str("g")), 0);
    lep_message_set_group_sequence(m, 99999);
    assert_int_equal(lep_message_set_reply_to_group_id(m, lep_bytes_str("rg")), 0);
    lep_atom_t k = a_sym("x-opt-delivery"), v = a_u(LEP_TYPE_UINT, 5);
    assert_int_equal(lep_message_set_annotation(m, LEP_MSG_DELIVERY_ANNOTATIONS, &k, &v), 0);
    k = a_sym("x-opt-jms-dest");
    v = a_u(LEP_TYPE_BYTE, 1);
    v.type = LEP_TYPE_BYTE;
    v.u.i = 1;
    assert_int_equal(lep_message_set_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k, &v), 0);
    v = a_str("p");
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("prop"), &v), 0);
    v = a_i(LEP_TYPE_TIMESTAMP, 12345);
    assert_int_equal(lep_message_set_property(m, lep_bytes_str("when"), &v), 0);
    assert_int_equal(lep_message_set_body_data(m, lep_bytes_str("part one")), 0);
    assert_int_equal(lep_message_add_body_data(m, lep_bytes_str("part two")), 0);
    k = a_sym("x-hash");
    v = a_bytes(LEP_TYPE_BINARY, "\xde\xad", 2);
    assert_int_equal(lep_message_set_annotation(m, LEP_MSG_FOOTER, &k, &v), 0);
}

static void
test_roundtrip_full(void **state)
{
    (void)state;
    lep_message_t *m = msg_new(), *d = msg_new();
    populate_full(m);
    for (size_t i = 0; i < NFIELDS; i++)
        assert_true(lep_message_has(m, all_fields[i]));

    /* Each field unset alone: absent, and gone from the encoding. */
    for (size_t i = 0; i < NFIELDS; i++) {
        lep_message_clear(d);
        populate_full(d);
        lep_message_unset(d, all_fields[i]);
        assert_false(lep_message_has(d, all_fields[i]));
        lep_buf_t u = encode(d);
        lep_message_t *back = msg_new();
        assert_int_equal(lep_message_decode(back, u.data, u.len), 0);
        assert_msg_equal(d, back);
        assert_false(lep_message_has(back, all_fields[i]));
        lep_message_free(back);
        lep_buf_fini(&u);
    }
    /* Unset fields read as their defaults. */
    lep_message_clear(d);
    populate_full(d);
    lep_message_set_first_acquirer(d, true);
    for (size_t i = 0; i < NFIELDS; i++)
        lep_message_unset(d, all_fields[i]);
    assert_false(lep_message_durable(d));
    assert_int_equal(lep_message_priority(d), 4);
    assert_false(lep_message_first_acquirer(d));
    assert_int_equal(lep_message_delivery_count(d), 0);
    assert_true(lep_message_absolute_expiry_time(d) == 0);
    assert_int_equal(lep_message_group_sequence(d), 0);
    assert_null(lep_message_user_id(d).ptr);
    lep_buf_t u = encode(d); /* annotations, application-properties, body */
    assert_int_equal(u.data[2], 0x71);
    lep_buf_fini(&u);
    lep_buf_t b = encode(m);
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_t b2 = encode(d);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);

    /* The encoding is what a generic decoder sees: seven described
     * sections in order (two data sections). */
    static const uint64_t codes[] = {0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x75, 0x78};
    lep_reader_t r;
    lep_reader_init(&r, b.data, b.len);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        uint64_t code;
        lep_bytes_t name;
        assert_int_equal(lep_read_descriptor(&r, &code, &name), 0);
        assert_true(code == codes[i]);
        assert_int_equal(lep_reader_skip(&r), 0);
    }
    assert_true(lep_reader_done(&r));
    lep_buf_fini(&b);
    lep_buf_fini(&b2);
    lep_message_free(m);
    lep_message_free(d);
}

/* ------------------------------------------------------------------ */
/* Randomised round trips.                                            */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    /* xorshift64*: reproducible across platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static unsigned
rn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* Random valid UTF-8 (or ASCII when ascii), length up to max bytes. */
static size_t
rnd_text(char *out, size_t max, bool ascii)
{
    static const char *const pieces[] = {"a", "Z", "0", "-", ".", "/", ":", "\xc3\xa9",
                                         "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    size_t target = rn(5) == 0 ? rn((unsigned)max + 1) : rn(24);
    if (target > max)
        target = max;
    size_t n = 0;
    while (n < target) {
        const char *p = pieces[rn(ascii ? 6 : 10)];
        size_t l = strlen(p);
        if (n + l > target)
            break;
        memcpy(out + n, p, l);
        n += l;
    }
    return n;
}

typedef struct scratch {
    char text[64][400];
    uint8_t enc[16][64];
    int nt, ne;
} scratch_t;

static lep_bytes_t
rnd_bytes_field(scratch_t *s, int kind)
{
    char *t = s->text[s->nt++ % 64];
    size_t n;
    if (kind == 0) {
        n = rn(rn(4) ? 20 : 400);
        for (size_t i = 0; i < n; i++)
            t[i] = (char)rn(256);
    } else {
        n = rnd_text(t, 390, kind == 2);
    }
    return LEP_BYTES(t, n);
}

static lep_atom_t
rnd_simple(scratch_t *s)
{
    lep_atom_t a;
    switch (rn(19)) {
    case 0: return atom(LEP_TYPE_NULL);
    case 1: return a_bool(rn(2));
    case 2: return a_u(LEP_TYPE_UBYTE, rn(256));
    case 3: return a_u(LEP_TYPE_USHORT, rn(65536));
    case 4: return a_u(LEP_TYPE_UINT, rn(3) ? rn(300) : (uint32_t)rnd());
    case 5: return a_u(LEP_TYPE_ULONG, rn(3) ? rn(300) : rnd());
    case 6: return a_i(LEP_TYPE_BYTE, (int8_t)rn(256));
    case 7: return a_i(LEP_TYPE_SHORT, (int16_t)rn(65536));
    case 8: return a_i(LEP_TYPE_INT, rn(2) ? (int32_t)rn(256) - 128 : (int32_t)rnd());
    case 9: return a_i(LEP_TYPE_LONG, rn(2) ? (int64_t)rn(256) - 128 : (int64_t)rnd());
    case 10:
        a = atom(LEP_TYPE_FLOAT);
        a.u.f = (float)(int32_t)rnd() / 7.0f;
        return a;
    case 11:
        a = atom(LEP_TYPE_DOUBLE);
        a.u.d = (double)(int64_t)rnd() / 3.0;
        return a;
    case 12: return a_u(LEP_TYPE_CHAR, rn(0xd000));
    case 13: return a_i(LEP_TYPE_TIMESTAMP, (int64_t)rnd());
    case 14:
        a = atom(LEP_TYPE_UUID);
        for (int i = 0; i < 16; i++)
            a.u.uuid[i] = (uint8_t)rnd();
        return a;
    case 15: {
        lep_bytes_t t = rnd_bytes_field(s, 0);
        return a_bytes(LEP_TYPE_BINARY, t.ptr, t.len);
    }
    case 16: {
        lep_bytes_t t = rnd_bytes_field(s, 1);
        return a_bytes(LEP_TYPE_STRING, t.ptr, t.len);
    }
    case 17: {
        lep_bytes_t t = rnd_bytes_field(s, 2);
        return a_bytes(LEP_TYPE_SYMBOL, t.ptr, t.len);
    }
    default:
        a = atom(LEP_TYPE_DECIMAL128);
        for (int i = 0; i < 16; i++)
            a.u.dec[i] = (uint8_t)rnd();
        return a;
    }
}

/* A random encoded compound: list, map, array or described value. */
static lep_atom_t
rnd_compound(scratch_t *s)
{
    uint8_t *mem = s->enc[s->ne++ % 16];
    lep_buf_t b;
    lep_encoder_t e;
    lep_buf_init_fixed(&b, mem, 64);
    lep_encoder_init(&e, &b);
    switch (rn(4)) {
    case 0:
        lep_encode_list_begin(&e);
        for (unsigned i = rn(4); i > 0; i--)
            lep_encode_uint(&e, rn(1000));
        lep_encode_list_end(&e);
        break;
    case 1:
        lep_encode_map_begin(&e);
        lep_encode_csymbol(&e, "a");
        lep_encode_cstring(&e, "b");
        lep_encode_map_end(&e);
        break;
    case 2:
        lep_encode_array_begin(&e, LEP_TYPE_INT);
        for (unsigned i = rn(4); i > 0; i--)
            lep_encode_int(&e, (int32_t)rnd());
        lep_encode_array_end(&e);
        break;
    default:
        lep_encode_descriptor(&e, rn(100));
        lep_encode_long(&e, (int64_t)rnd());
        break;
    }
    assert_int_equal(lep_encoder_error(&e), 0);
    return a_raw(mem, b.len);
}

static void
rnd_message(lep_message_t *m, scratch_t *s)
{
    lep_message_clear(m);
    s->nt = s->ne = 0;
    if (rn(2)) lep_message_set_durable(m, rn(2));
    if (rn(2)) lep_message_set_priority(m, (uint8_t)rn(10));
    if (rn(2)) lep_message_set_ttl(m, (uint32_t)rnd());
    if (rn(2)) lep_message_set_first_acquirer(m, rn(2));
    if (rn(2)) lep_message_set_delivery_count(m, rn(2) ? rn(3) : (uint32_t)rnd());
    if (rn(2)) {
        lep_atom_t id;
        switch (rn(4)) {
        case 0: id = a_u(LEP_TYPE_ULONG, rnd()); break;
        case 1: id = atom(LEP_TYPE_UUID); memset(id.u.uuid, (int)rn(256), 16); break;
        case 2: { lep_bytes_t t = rnd_bytes_field(s, 0); id = a_bytes(LEP_TYPE_BINARY, t.ptr, t.len); break; }
        default: { lep_bytes_t t = rnd_bytes_field(s, 1); id = a_bytes(LEP_TYPE_STRING, t.ptr, t.len); break; }
        }
        assert_int_equal(rn(2) ? lep_message_set_id(m, &id) : lep_message_set_correlation_id(m, &id), 0);
    }
    if (rn(2)) assert_int_equal(lep_message_set_user_id(m, rnd_bytes_field(s, 0)), 0);
    if (rn(2)) assert_int_equal(lep_message_set_to(m, rnd_bytes_field(s, 1)), 0);
    if (rn(2)) assert_int_equal(lep_message_set_subject(m, rnd_bytes_field(s, 1)), 0);
    if (rn(2)) assert_int_equal(lep_message_set_reply_to(m, rnd_bytes_field(s, 1)), 0);
    if (rn(2)) assert_int_equal(lep_message_set_content_type(m, rnd_bytes_field(s, 2)), 0);
    if (rn(2)) assert_int_equal(lep_message_set_content_encoding(m, rnd_bytes_field(s, 2)), 0);
    if (rn(2)) lep_message_set_absolute_expiry_time(m, (int64_t)rnd());
    if (rn(2)) lep_message_set_creation_time(m, (int64_t)rnd());
    if (rn(2)) assert_int_equal(lep_message_set_group_id(m, rnd_bytes_field(s, 1)), 0);
    if (rn(2)) lep_message_set_group_sequence(m, (uint32_t)rnd());
    if (rn(2)) assert_int_equal(lep_message_set_reply_to_group_id(m, rnd_bytes_field(s, 1)), 0);
    for (unsigned i = rn(2) ? rn(rn(4) ? 5 : 60) : 0; i > 0; i--) {
        lep_bytes_t k = rnd_bytes_field(s, 1);
        lep_atom_t v = rnd_simple(s);
        assert_int_equal(lep_message_set_property(m, k, &v), 0);
    }
    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++) {
        for (unsigned i = rn(3) ? 0 : rn(5); i > 0; i--) {
            lep_atom_t k;
            if (rn(3)) {
                lep_bytes_t t = rnd_bytes_field(s, 2);
                k = a_bytes(LEP_TYPE_SYMBOL, t.ptr, t.len);
            } else {
                k = a_u(LEP_TYPE_ULONG, rn(20));
            }
            lep_atom_t v = rn(2) ? rnd_simple(s) : rnd_compound(s);
            assert_int_equal(lep_message_set_annotation(m, w, &k, &v), 0);
        }
    }
    switch (rn(4)) {
    case 0:
        break;
    case 1:
        for (unsigned i = 1 + rn(3); i > 0; i--)
            assert_int_equal(lep_message_add_body_data(m, rnd_bytes_field(s, 0)), 0);
        break;
    case 2:
        for (unsigned i = 1 + rn(2); i > 0; i--) {
            lep_atom_t l;
            do
                l = rnd_compound(s);
            while (l.type != LEP_TYPE_LIST);
            assert_int_equal(lep_message_add_body_sequence_raw(m, l.raw), 0);
        }
        break;
    default: {
        lep_atom_t v = rn(2) ? rnd_compound(s) : rnd_simple(s);
        if (v.type == LEP_TYPE_STRING && rn(2)) {
            assert_int_equal(lep_message_set_body_string(m, v.u.bytes), 0);
        } else {
            /* a scalar's encoding, through a throwaway message */
            lep_message_t *t = msg_new();
            lep_atom_t key = a_sym("k");
            assert_int_equal(lep_message_set_annotation(t, LEP_MSG_FOOTER, &key, &v), 0);
            const lep_atom_t *stored = lep_message_annotation(t, LEP_MSG_FOOTER, &key);
            assert_int_equal(lep_message_set_body_value_raw(m, stored->raw), 0);
            lep_message_free(t);
        }
        break;
    }
    }
}

static void
test_roundtrip_random(void **state)
{
    (void)state;
    lep_message_t *m = msg_new(), *d = msg_new(), *d2 = msg_new();
    static scratch_t s;
    lep_buf_t b, b2;
    lep_buf_init(&b);
    lep_buf_init(&b2);
    for (int iter = 0; iter < 3000; iter++) {
        rnd_message(m, &s);
        lep_buf_clear(&b);
        assert_int_equal(lep_message_encode(m, &b), 0);
        int rc = lep_message_decode(d, b.data, b.len);
        if (rc)
            fail_msg("iteration %d: decode failed: %s", iter, lep_strerror(rc));
        assert_msg_equal(m, d);
        /* Decoded messages re-encode to the same bytes. */
        lep_buf_clear(&b2);
        assert_int_equal(lep_message_encode(d, &b2), 0);
        assert_int_equal(b.len, b2.len);
        assert_memory_equal(b.data, b2.data, b.len);
        /* Every encoding is a sequence of well-formed described values. */
        lep_value_t *v;
        size_t used, off = 0;
        while (off < b.len) {
            assert_int_equal(lep_value_decode(b.data + off, b.len - off, false, &v, &used), 0);
            assert_int_equal(v->atom.type, LEP_TYPE_DESCRIBED);
            lep_value_free(v);
            off += used;
        }
        /* A decoded message edited and re-encoded. */
        if (lep_message_property_count(d) > 0) {
            lep_bytes_t k;
            assert_int_equal(lep_message_property_at(d, 0, &k, NULL), 0);
            lep_atom_t nv = a_str("edited");
            assert_int_equal(lep_message_set_property(d, k, &nv), 0);
            lep_buf_clear(&b2);
            assert_int_equal(lep_message_encode(d, &b2), 0);
            assert_int_equal(lep_message_decode(d2, b2.data, b2.len), 0);
            assert_msg_equal(d, d2);
        }
    }
    lep_buf_fini(&b);
    lep_buf_fini(&b2);
    lep_message_free(m);
    lep_message_free(d);
    lep_message_free(d2);
}

/* ------------------------------------------------------------------ */
/* Bad input.                                                         */

typedef struct bad_case {
    const char *what;
    const uint8_t *p;
    size_t n;
    int err; /* 0: any error */
} bad_case_t;

#define HDR_S 0x00, 0x53, 0x70, 0x45             /* header [] */
#define DA_S 0x00, 0x53, 0x71, 0xc1, 0x01, 0x00  /* delivery-annotations {} */
#define MA_S 0x00, 0x53, 0x72, 0xc1, 0x01, 0x00
#define PR_S 0x00, 0x53, 0x73, 0x45
#define AP_S 0x00, 0x53, 0x74, 0xc1, 0x01, 0x00
#define DATA_S 0x00, 0x53, 0x75, 0xa0, 0x01, 'x'
#define SEQ_S 0x00, 0x53, 0x76, 0x45
#define VAL_S 0x00, 0x53, 0x77, 0x40
#define FT_S 0x00, 0x53, 0x78, 0xc1, 0x01, 0x00

#define CASE(what, err, ...)                                                  \
    {what, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), err}

static const bad_case_t bad_cases[] = {
    CASE("properties before header", LEP_ERR_DECODE, PR_S, HDR_S),
    CASE("header twice", LEP_ERR_DECODE, HDR_S, HDR_S),
    CASE("message- before delivery-annotations", LEP_ERR_DECODE, MA_S, DA_S),
    CASE("application-properties before properties", LEP_ERR_DECODE, AP_S, PR_S),
    CASE("properties twice", LEP_ERR_DECODE, PR_S, PR_S),
    CASE("footer before body", LEP_ERR_DECODE, FT_S, DATA_S),
    CASE("footer twice", LEP_ERR_DECODE, DATA_S, FT_S, FT_S),
    CASE("header after body", LEP_ERR_DECODE, DATA_S, HDR_S),
    CASE("data then amqp-value", LEP_ERR_DECODE, DATA_S, VAL_S),
    CASE("data then amqp-sequence", LEP_ERR_DECODE, DATA_S, SEQ_S),
    CASE("amqp-sequence then data", LEP_ERR_DECODE, SEQ_S, DATA_S),
    CASE("amqp-value twice", LEP_ERR_DECODE, VAL_S, VAL_S),
    CASE("unknown section 0x79", LEP_ERR_DECODE, 0x00, 0x53, 0x79, 0x45),
    CASE("unknown section 0x10", LEP_ERR_DECODE, 0x00, 0x53, 0x10, 0x45),
    CASE("descriptor with a domain", LEP_ERR_DECODE, 0x00, 0x80, 0, 0, 0, 1, 0, 0, 0, 0x70, 0x45),
    CASE("unknown symbolic descriptor", LEP_ERR_DECODE, 0x00, 0xa3, 0x03, 'a', 'b', 'c', 0x45),
    CASE("not described", LEP_ERR_TYPE, 0x45),
    CASE("described by a string", LEP_ERR_TYPE, 0x00, 0xa1, 0x01, 'x', 0x45),
    CASE("trailing null", LEP_ERR_TYPE, DATA_S, 0x40),
    CASE("descriptor without value", LEP_ERR_INCOMPLETE, 0x00, 0x53, 0x70),
    CASE("header as a map", LEP_ERR_TYPE, 0x00, 0x53, 0x70, 0xc1, 0x01, 0x00),
    CASE("durable as uint", LEP_ERR_TYPE, 0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x43),
    CASE("priority as uint", LEP_ERR_TYPE, 0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x40, 0x52, 0x01),
    CASE("ttl as ulong", LEP_ERR_TYPE, 0x00, 0x53, 0x70, 0xc0, 0x04, 0x03, 0x40, 0x40, 0x44),
    CASE("delivery-count as string", LEP_ERR_TYPE, 0x00, 0x53, 0x70, 0xc0, 0x08, 0x05,
         0x40, 0x40, 0x40, 0x40, 0xa1, 0x01, '1'),
    CASE("properties as a string", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xa1, 0x01, 'x'),
    CASE("message-id as bool", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x02, 0x01, 0x41),
    CASE("message-id as symbol", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x04, 0x01, 0xa3, 0x01, 'x'),
    CASE("user-id as string", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x05, 0x02, 0x40, 0xa1, 0x01, 'x'),
    CASE("to as int", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x05, 0x03, 0x40, 0x40, 0x54, 0x01),
    CASE("subject as binary", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x07, 0x04, 0x40, 0x40, 0x40,
         0xa0, 0x01, 'x'),
    CASE("content-type as string", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x0a, 0x07,
         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0xa1, 0x01, 'x'),
    CASE("creation-time as long", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x0c, 0x0a,
         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x55, 0x01),
    CASE("group-sequence as ulong", LEP_ERR_TYPE, 0x00, 0x53, 0x73, 0xc0, 0x0d, 0x0c,
         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x44),
    CASE("subject not UTF-8", LEP_ERR_UTF8, 0x00, 0x53, 0x73, 0xc0, 0x07, 0x04, 0x40, 0x40, 0x40,
         0xa1, 0x01, 0xff),
    CASE("content-type not ASCII", LEP_ERR_SYMBOL, 0x00, 0x53, 0x73, 0xc0, 0x0a, 0x07,
         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0xa3, 0x01, 0x80),
    CASE("list count beyond its bytes", LEP_ERR_DECODE, 0x00, 0x53, 0x73, 0xc0, 0x02, 0x03, 0x40),
    CASE("list bytes beyond its count", LEP_ERR_DECODE, 0x00, 0x53, 0x70, 0xc0, 0x03, 0x01, 0x41, 0x41),
    CASE("list size beyond the input", LEP_ERR_INCOMPLETE, 0x00, 0x53, 0x70, 0xc0, 0x09, 0x01, 0x41),
    CASE("application-properties key symbol", LEP_ERR_TYPE, 0x00, 0x53, 0x74, 0xc1, 0x06, 0x02,
         0xa3, 0x01, 'k', 0x54, 0x05),
    CASE("application-properties key int", LEP_ERR_TYPE, 0x00, 0x53, 0x74, 0xc1, 0x04, 0x02,
         0x54, 0x01, 0x41),
    CASE("application-properties as a list", LEP_ERR_TYPE, 0x00, 0x53, 0x74, 0x45),
    CASE("annotations key string", LEP_ERR_TYPE, 0x00, 0x53, 0x72, 0xc1, 0x06, 0x02,
         0xa1, 0x01, 'k', 0x54, 0x05),
    CASE("annotations key uint", LEP_ERR_TYPE, 0x00, 0x53, 0x72, 0xc1, 0x04, 0x02, 0x52, 0x01, 0x41),
    CASE("map bytes beyond its count", LEP_ERR_DECODE, 0x00, 0x53, 0x74, 0xc1, 0x06, 0x02,
         0xa1, 0x01, 'k', 0x41, 0x41),
    CASE("map odd count", LEP_ERR_DECODE, 0x00, 0x53, 0x72, 0xc1, 0x04, 0x01, 0xa3, 0x01, 'k'),
    CASE("annotation value malformed list", LEP_ERR_DECODE, 0x00, 0x53, 0x72, 0xc1, 0x08, 0x02,
         0xa3, 0x01, 'k', 0xc0, 0x02, 0x02, 0x41),
    CASE("annotation value list with bytes beyond its count", LEP_ERR_DECODE, 0x00, 0x53, 0x72,
         0xc1, 0x09, 0x02, 0xa3, 0x01, 'k', 0xc0, 0x03, 0x01, 0x41, 0x41),
    CASE("annotation nested value not UTF-8", LEP_ERR_UTF8, 0x00, 0x53, 0x72, 0xc1, 0x0a, 0x02,
         0xa3, 0x01, 'k', 0xc0, 0x04, 0x01, 0xa1, 0x01, 0xff),
    CASE("data holding a string", LEP_ERR_TYPE, 0x00, 0x53, 0x75, 0xa1, 0x01, 'x'),
    CASE("data holding null", LEP_ERR_TYPE, 0x00, 0x53, 0x75, 0x40),
    CASE("amqp-sequence holding a map", LEP_ERR_TYPE, 0x00, 0x53, 0x76, 0xc1, 0x01, 0x00),
    CASE("amqp-value unknown code", LEP_ERR_DECODE, 0x00, 0x53, 0x77, 0x01),
    CASE("amqp-value list with a bad element", LEP_ERR_DECODE, 0x00, 0x53, 0x77, 0xc0, 0x02, 0x01, 0x02),
    CASE("data length beyond the input", LEP_ERR_INCOMPLETE, 0x00, 0x53, 0x75, 0xa0, 0x05, 'x'),
    CASE("footer values truncated inside", LEP_ERR_DECODE, DATA_S, 0x00, 0x53, 0x78, 0xc1, 0x03,
         0x02, 0xa3, 0x05),
};

static void
test_decode_errors(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case_t *c = &bad_cases[i];
        /* an exact-size copy, so that ASan sees any over-read */
        uint8_t *copy = malloc(c->n);
        memcpy(copy, c->p, c->n);
        populate_full(m); /* an error must leave the message empty */
        int rc = lep_message_decode(m, copy, c->n);
        if (rc >= 0 || (c->err && rc != c->err))
            fail_msg("%s: got %d (%s), expected %d", c->what, rc, lep_strerror(rc), c->err);
        assert_false(lep_message_has(m, LEP_MSG_SUBJECT));
        assert_int_equal(lep_message_property_count(m), 0);
        assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
        free(copy);
    }
    lep_message_free(m);
}

static void
test_decode_tolerated(void **state)
{
    (void)state;
    lep_message_t *m = msg_new();
    /* Every section once, in order, via symbolic descriptors. */
    static const uint8_t sym[] = {
        0x00, 0xa3, 0x10, 'a', 'm', 'q', 'p', ':', 'h', 'e', 'a', 'd', 'e', 'r', ':', 'l', 'i', 's', 't',
        0xc0, 0x02, 0x01, 0x41,
        0x00, 0xa3, 0x14, 'a', 'm', 'q', 'p', ':', 'p', 'r', 'o', 'p', 'e', 'r', 't', 'i', 'e', 's',
        ':', 'l', 'i', 's', 't', 0xc0, 0x05, 0x04, 0x40, 0x40, 0x40, 0x40,
        0x00, 0xa3, 0x10, 'a', 'm', 'q', 'p', ':', 'd', 'a', 't', 'a', ':', 'b', 'i', 'n', 'a', 'r', 'y',
        0xa0, 0x01, 'z',
    };
    assert_int_equal(lep_message_decode(m, sym, sizeof sym), 0);
    assert_true(lep_message_durable(m));
    assert_true(lep_bytes_eq_str(lep_message_body_section(m, 0), "z"));

    /* Wide encodings, a ulong descriptor, extra list fields from a newer
     * peer, a symbol as an address, compound application-properties
     * values, an empty message-annotations map. */
    static const uint8_t wide[] = {
        0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x70,
        0xd0, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x06,
        0x56, 0x01, 0x50, 0x02, 0x70, 0x00, 0x00, 0x00, 0x03, 0x40, 0x43, 0x41,
        0x00, 0x53, 0x72, 0xd1, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x53, 0x73, 0xc0, 0x0e, 0x03,
        0x80, 0, 0, 0, 0, 0, 0, 0, 9, 0x40, 0xa3, 0x01, 'q',
        0x00, 0x53, 0x74, 0xc1, 0x08, 0x02, 0xa1, 0x01, 'l', 0xc0, 0x02, 0x01, 0x45,
        0x00, 0x53, 0x76, 0xd0, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x53, 0x76, 0x45,
    };
    assert_int_equal(lep_message_decode(m, wide, sizeof wide), 0);
    assert_true(lep_message_durable(m));
    assert_int_equal(lep_message_priority(m), 2);
    assert_int_equal(lep_message_ttl(m), 3);
    assert_false(lep_message_has(m, LEP_MSG_FIRST_ACQUIRER));
    assert_true(lep_message_has(m, LEP_MSG_DELIVERY_COUNT));
    assert_int_equal(lep_message_id(m)->u.u, 9);
    assert_true(lep_bytes_eq_str(lep_message_to(m), "q"));
    assert_int_equal(lep_message_annotation_count(m, LEP_MSG_MESSAGE_ANNOTATIONS), 0);
    const lep_atom_t *l = lep_message_property(m, lep_bytes_str("l"));
    assert_true(l && l->type == LEP_TYPE_LIST && l->count == 1);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_SEQUENCE);
    assert_int_equal(lep_message_body_count(m), 2);
    /* Decoded values keep their encoding when re-encoded. */
    lep_buf_t b = encode(m);
    static const uint8_t id_wide[] = {0x80, 0, 0, 0, 0, 0, 0, 0, 9};
    bool found = false;
    for (size_t i = 0; i + sizeof id_wide <= b.len; i++)
        found |= memcmp(b.data + i, id_wide, sizeof id_wide) == 0;
    assert_true(found);
    lep_buf_fini(&b);
    lep_message_free(m);
}

/* Nesting far deeper than LEP_CODEC_MAX_DEPTH: a limit error, no stack
 * exhaustion; nesting within the limit is fine. */
static size_t
nested_lists(uint8_t *out, int depth)
{
    /* built inside out: list32 { count 1, inner } around list0 */
    size_t n = 1;
    out[0] = LEP_FC_LIST0;
    for (int i = 0; i < depth; i++) {
        memmove(out + 9, out, n);
        out[0] = LEP_FC_LIST32;
        uint32_t size = (uint32_t)n + 4;
        out[1] = (uint8_t)(size >> 24);
        out[2] = (uint8_t)(size >> 16);
        out[3] = (uint8_t)(size >> 8);
        out[4] = (uint8_t)size;
        out[5] = out[6] = out[7] = 0;
        out[8] = 1;
        n += 9;
    }
    return n;
}

static void
test_decode_deep_nesting(void **state)
{
    (void)state;
    static uint8_t buf[20000];
    lep_message_t *m = msg_new();
    for (int where = 0; where < 3; where++) {
        for (int depth = 8; depth <= 2000; depth *= 5) {
            size_t n = 0;
            if (where == 0) { /* amqp-value */
                buf[n++] = 0x00, buf[n++] = 0x53, buf[n++] = 0x77;
                n += nested_lists(buf + n, depth);
            } else if (where == 1) { /* an annotation's value */
                uint8_t *v = buf + 17;
                size_t vn = nested_lists(v, depth);
                uint32_t size = (uint32_t)(vn + 3 + 4);
                static const uint8_t head[] = {0x00, 0x53, 0x72, 0xd1};
                memcpy(buf, head, 4);
                buf[4] = (uint8_t)(size >> 24), buf[5] = (uint8_t)(size >> 16);
                buf[6] = (uint8_t)(size >> 8), buf[7] = (uint8_t)size;
                buf[8] = buf[9] = buf[10] = 0, buf[11] = 2;
                buf[12] = 0xa3, buf[13] = 0x01, buf[14] = 'k';
                memmove(buf + 15, v, vn);
                n = 15 + vn;
            } else { /* amqp-sequence */
                buf[n++] = 0x00, buf[n++] = 0x53, buf[n++] = 0x76;
                n += nested_lists(buf + n, depth);
            }
            assert_true(n <= sizeof buf);
            int rc = lep_message_decode(m, buf, n);
            if (depth < LEP_CODEC_MAX_DEPTH - 4) {
                if (rc != 0)
                    fail_msg("depth %d at %d: %s", depth, where, lep_strerror(rc));
                if (where == 1) {
                    /* the map is re-encoded in its small form; the value
                     * keeps its bytes */
                    const lep_atom_t *v = lep_message_annotation_sym(
                        m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("k"));
                    assert_non_null(v);
                    assert_int_equal(v->raw.len, n - 15);
                    assert_memory_equal(v->raw.ptr, buf + 15, n - 15);
                } else {
                    lep_buf_t b = encode(m);
                    assert_int_equal(b.len, n);
                    assert_memory_equal(b.data, buf, n);
                    lep_buf_fini(&b);
                }
            } else if (rc != LEP_ERR_LIMIT) {
                fail_msg("depth %d at %d: got %d", depth, where, rc);
            }
        }
    }
    lep_message_free(m);
}

static void
test_truncation(void **state)
{
    (void)state;
    lep_message_t *m = msg_new(), *d = msg_new();
    populate_full(m);
    lep_atom_t k = a_sym("x-list");
    static const uint8_t list[] = {0xc0, 0x06, 0x02, 0xa1, 0x01, 'a', 0x50, 0x01};
    lep_atom_t v = a_raw(list, sizeof list);
    assert_int_equal(lep_message_set_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k, &v), 0);
    lep_buf_t b = encode(m);

    /* Section boundaries: a prefix ending there is a smaller message. */
    bool boundary[1024] = {false};
    assert_true(b.len < sizeof boundary);
    lep_reader_t r;
    lep_reader_init(&r, b.data, b.len);
    boundary[0] = true;
    while (!lep_reader_done(&r)) {
        assert_int_equal(lep_reader_skip(&r), 0);
        boundary[lep_reader_offset(&r, b.data)] = true;
    }
    for (size_t cut = 0; cut < b.len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.data, cut);
        int rc = lep_message_decode(d, copy, cut);
        if (boundary[cut]) {
            if (rc != 0)
                fail_msg("prefix of %zu bytes (a section boundary): %s", cut, lep_strerror(rc));
            lep_buf_t p = encode(d);
            assert_int_equal(p.len, cut);
            assert_memory_equal(p.data, b.data, cut);
            lep_buf_fini(&p);
        } else if (rc >= 0) {
            fail_msg("prefix of %zu of %zu bytes decoded", cut, b.len);
        }
        free(copy);
    }
    /* Every single-byte corruption: an error or a message, never a crash
     * (run under ASan). */
    for (size_t i = 0; i < b.len; i++) {
        static const uint8_t xors[] = {0x01, 0x80, 0xff, 0x10};
        for (size_t x = 0; x < sizeof xors; x++) {
            uint8_t *copy = malloc(b.len);
            memcpy(copy, b.data, b.len);
            copy[i] ^= xors[x];
            if (lep_message_decode(d, copy, b.len) == 0) {
                lep_buf_t p = encode(d);
                lep_buf_fini(&p);
            }
            free(copy);
        }
    }
    lep_buf_fini(&b);
    lep_message_free(m);
    lep_message_free(d);
}

/* ------------------------------------------------------------------ */
/* Reuse, storage and allocation.                                     */

static void
test_clear_and_reuse(void **state)
{
    (void)state;
    lep_message_t *m = msg_new(), *d = msg_new();
    populate_full(m);
    lep_buf_t b = encode(m);

    lep_message_clear(m);
    for (size_t i = 0; i < NFIELDS; i++)
        assert_false(lep_message_has(m, all_fields[i]));
    assert_int_equal(lep_message_property_count(m), 0);
    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++)
        assert_int_equal(lep_message_annotation_count(m, w), 0);
    assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
    assert_int_equal(lep_message_priority(m), 4);
    lep_buf_t e = encode(m);
    assert_int_equal(e.len, 0);
    lep_buf_fini(&e);

    /* Warm: decoding the same message again allocates nothing, and nor
     * does building and encoding it into a buffer with room. */
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    populate_full(m);
    lep_buf_t out;
    lep_buf_init(&out);
    assert_int_equal(lep_message_encode(m, &out), 0);
    long before = A.calls;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
        lep_message_clear(m);
        populate_full(m);
        lep_buf_clear(&out);
        assert_int_equal(lep_message_encode(m, &out), 0);
    }
    assert_int_equal(A.calls - before, 0);
    assert_msg_equal(m, d);

    /* A decoded message can be edited: what was decoded stays. */
    assert_int_equal(lep_message_set_subject(d, lep_bytes_str("changed")), 0);
    lep_message_set_priority(d, 1);
    assert_true(lep_bytes_eq_str(lep_message_to(d), "topic://a.b"));
    lep_buf_fini(&e);
    e = encode(d);
    lep_message_t *d2 = msg_new();
    assert_int_equal(lep_message_decode(d2, e.data, e.len), 0);
    assert_msg_equal(d, d2);

    /* Messages of growing size: storage grows; then steady again. */
    static uint8_t big[20000];
    for (size_t n = 1; n <= sizeof big; n *= 3) {
        lep_message_clear(m);
        assert_int_equal(lep_message_set_body_data(m, LEP_BYTES(big, n)), 0);
        lep_buf_clear(&out);
        assert_int_equal(lep_message_encode(m, &out), 0);
        assert_int_equal(lep_message_decode(d, out.data, out.len), 0);
        assert_int_equal(lep_message_body_section(d, 0).len, n);
    }
    /* the first decode after a bigger one merges the storage */
    assert_int_equal(lep_message_decode(d, out.data, out.len), 0);
    before = A.calls;
    for (int i = 0; i < 10; i++)
        assert_int_equal(lep_message_decode(d, out.data, out.len), 0);
    assert_int_equal(A.calls - before, 0);

    /* A message carried in a data section of the same message object,
     * decoded from the view into that object (batching does this). */
    assert_int_equal(lep_message_set_body_data(d2, lep_buf_bytes(&b)), 0);
    lep_message_set_priority(d2, 3);
    assert_int_equal(lep_message_decode(d2, lep_message_body_section(d2, 0).ptr,
                                        lep_message_body_section(d2, 0).len),
                     0);
    lep_message_clear(m);
    populate_full(m);
    assert_msg_equal(m, d2);

    lep_buf_fini(&out);
    lep_buf_fini(&b);
    lep_buf_fini(&e);
    lep_message_free(m);
    lep_message_free(d);
    lep_message_free(d2);
}

static void
test_storage_bounded(void **state)
{
    (void)state;
    /* Setting fields over and over without clear must not grow the
     * message without bound: dead bytes are given back. */
    lep_message_t *m = msg_new();
    populate_full(m);
    static uint8_t payload[10000];
    for (int i = 0; i < 2000; i++) {
        payload[0] = (uint8_t)i;
        assert_int_equal(lep_message_set_body_data(m, LEP_BYTES(payload, sizeof payload - (size_t)(i % 7))), 0);
        char s[32];
        snprintf(s, sizeof s, "subject-%d", i);
        assert_int_equal(lep_message_set_subject(m, lep_bytes_str(s)), 0);
        lep_atom_t v = a_i(LEP_TYPE_INT, i);
        assert_int_equal(lep_message_set_property(m, lep_bytes_str("n"), &v), 0);
        assert_true(A.live_bytes < 200000);
    }
    assert_true(A.peak_bytes < 200000);
    /* Everything still reads right after the compactions. */
    assert_true(lep_bytes_eq_str(lep_message_subject(m), "subject-1999"));
    assert_int_equal(lep_message_property(m, lep_bytes_str("n"))->u.i, 1999);
    assert_int_equal(lep_message_body_section(m, 0).ptr[0], (uint8_t)1999);
    assert_true(lep_bytes_eq_str(lep_message_to(m), "topic://a.b"));
    lep_message_t *full = msg_new();
    populate_full(full);
    assert_true(lep_bytes_eq(lep_message_annotation_sym(m, LEP_MSG_FOOTER, lep_bytes_str("x-hash"))->raw,
                             lep_message_annotation_sym(full, LEP_MSG_FOOTER, lep_bytes_str("x-hash"))->raw));
    lep_buf_t b = encode(m);
    lep_message_t *d = msg_new();
    assert_int_equal(lep_message_decode(d, b.data, b.len), 0);
    assert_msg_equal(m, d);
    lep_buf_fini(&b);
    lep_message_free(m);
    lep_message_free(d);
    lep_message_free(full);
}

/* Everything the message does, start to finish; stops at the first error
 * and returns it. */
static int
alloc_scenario(const uint8_t *wire, size_t wire_len)
{
    lep_message_t *m = NULL, *d = NULL;
    lep_buf_t b;
    int rc;
    lep_buf_init(&b);
    if ((rc = lep_message_new(&m)) != 0) {
        assert_null(m);
        goto out;
    }
    lep_atom_t id = a_str("id-1"), v = a_i(LEP_TYPE_INT, 7), k = a_sym("x-opt-k");
    static const uint8_t list[] = {0xc0, 0x03, 0x01, 0x50, 0x07};
    lep_atom_t l = a_raw(list, sizeof list);
    if ((rc = lep_message_set_id(m, &id)) != 0) {
        assert_null(lep_message_id(m)); /* unchanged: absent */
        goto out;
    }
    if ((rc = lep_message_set_subject(m, lep_bytes_str("subject"))) != 0) {
        assert_false(lep_message_has(m, LEP_MSG_SUBJECT));
        goto out;
    }
    for (int i = 0; i < 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        if ((rc = lep_message_set_property(m, lep_bytes_str(key), &v)) != 0) {
            assert_int_equal(lep_message_property_count(m), (size_t)i);
            goto out;
        }
    }
    if ((rc = lep_message_set_annotation(m, LEP_MSG_MESSAGE_ANNOTATIONS, &k, &l)) != 0)
        goto out;
    if ((rc = lep_message_set_body_data(m, lep_bytes_str("body"))) != 0) {
        assert_int_equal(lep_message_body_kind(m), LEP_BODY_NONE);
        goto out;
    }
    for (int i = 0; i < 6; i++)
        if ((rc = lep_message_add_body_data(m, lep_bytes_str("more body"))) != 0) {
            assert_int_equal(lep_message_body_count(m), (size_t)i + 1);
            goto out;
        }
    if ((rc = lep_message_encode(m, &b)) != 0) {
        assert_int_equal(b.len, 0);
        goto out;
    }
    if ((rc = lep_message_new(&d)) != 0)
        goto out;
    if ((rc = lep_message_decode(d, b.data, b.len)) != 0) {
        assert_int_equal(lep_message_body_kind(d), LEP_BODY_NONE);
        goto out;
    }
    assert_msg_equal(m, d);
    if ((rc = lep_message_decode(d, wire, wire_len)) != 0) {
        assert_false(lep_message_has(d, LEP_MSG_SUBJECT));
        goto out;
    }
    /* Edits of a decoded message. */
    if ((rc = lep_message_set_subject(d, lep_bytes_str("a new subject, longer"))) != 0)
        goto out;
    if ((rc = lep_message_set_body_string(d, lep_bytes_str("text"))) != 0)
        goto out;
out:
    lep_message_free(m);
    lep_message_free(d);
    lep_buf_fini(&b);
    return rc;
}

static void
test_allocation_failures(void **state)
{
    (void)state;
    uint8_t wire[512];
    size_t wire_len = unhex(proton_full_hex, wire);
    long n;
    for (n = 1; n < 1000; n++) {
        memset(&A, 0, sizeof A);
        A.fail_at = n;
        int rc = alloc_scenario(wire, wire_len);
        if (A.live != 0)
            fail_msg("failing allocation %ld: %ld blocks leaked", n, A.live);
        if (A.calls < n) {
            assert_int_equal(rc, 0); /* no allocation failed: success */
            break;
        }
        /* A failed allocation is an error, or absorbed (storage that
         * could not be merged or compacted works as it was). */
        if (rc != LEP_ERR_NOMEM && rc != 0)
            fail_msg("failing allocation %ld: got %d (%s)", n, rc, lep_strerror(rc));
    }
    assert_true(n > 5); /* the scenario does allocate */
    assert_true(n < 1000);
    A.fail_at = 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_header_fields, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_properties_fields, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_application_properties, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_annotations, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_body, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_encode_exact, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_decode_proton, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_full, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_random, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_decode_errors, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_decode_tolerated, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_decode_deep_nesting, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_truncation, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_clear_and_reuse, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_storage_bounded, hook_setup, hook_teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, hook_setup, hook_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
