/* Fuzz target: the message codec.
 *
 * For any input that lep_message_decode accepts:
 *   - encoding the message succeeds, and the encoding decodes to a message
 *     with the same fields (getters compared one by one) whose encoding is
 *     byte for byte the first one (encode is a fixed point after one
 *     round);
 *   - decoding into a message that held another message first gives the
 *     same result as decoding into a fresh one (decode replaces);
 *   - every getter, lookup and the body accessors work on the result.
 * Rejected input must leave the message empty.  A broken invariant aborts,
 * which libFuzzer reports as a crash (and the corpus replay test as a
 * failure). */
#include <lepton/codec.h>
#include <lepton/message.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_message: %s:%d: check failed: %s\n",       \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)

static bool
same_buf(const lep_buf_t *a, const lep_buf_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool
bytes_same(lep_bytes_t a, lep_bytes_t b)
{
    if ((a.ptr == NULL) != (b.ptr == NULL))
        return false;
    return lep_bytes_eq(a, b);
}

/* Same type and value (as the codec compares them: floats by bits,
 * compound values by encoding). */
static bool
atoms_same(const lep_atom_t *a, const lep_atom_t *b)
{
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case LEP_TYPE_NULL: return true;
    case LEP_TYPE_BOOL: return a->u.b == b->u.b;
    case LEP_TYPE_UBYTE: case LEP_TYPE_USHORT: case LEP_TYPE_UINT: case LEP_TYPE_ULONG:
    case LEP_TYPE_CHAR:
        return a->u.u == b->u.u;
    case LEP_TYPE_BYTE: case LEP_TYPE_SHORT: case LEP_TYPE_INT: case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        return a->u.i == b->u.i;
    case LEP_TYPE_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0;
    case LEP_TYPE_DOUBLE: return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0;
    case LEP_TYPE_DECIMAL32: return memcmp(a->u.dec, b->u.dec, 4) == 0;
    case LEP_TYPE_DECIMAL64: return memcmp(a->u.dec, b->u.dec, 8) == 0;
    case LEP_TYPE_DECIMAL128: return memcmp(a->u.dec, b->u.dec, 16) == 0;
    case LEP_TYPE_UUID: return memcmp(a->u.uuid, b->u.uuid, 16) == 0;
    case LEP_TYPE_BINARY: case LEP_TYPE_STRING: case LEP_TYPE_SYMBOL:
        return lep_bytes_eq(a->u.bytes, b->u.bytes);
    default: {
        /* Compound and described values: equal as value trees. */
        lep_value_t *x = NULL, *y = NULL;
        bool same = lep_value_decode(a->raw.ptr, a->raw.len, false, &x, NULL) == 0
                    && lep_value_decode(b->raw.ptr, b->raw.len, false, &y, NULL) == 0
                    && lep_value_equal(x, y);
        lep_value_free(x);
        lep_value_free(y);
        return same;
    }
    }
}

static void
check_same(const lep_message_t *a, const lep_message_t *b)
{
    for (int f = 0; f < LEP_MSG_FIELD_COUNT_; f++)
        CHECK(lep_message_has(a, (lep_msg_field_t)f) == lep_message_has(b, (lep_msg_field_t)f));
    CHECK(lep_message_durable(a) == lep_message_durable(b));
    CHECK(lep_message_priority(a) == lep_message_priority(b));
    CHECK(lep_message_ttl(a) == lep_message_ttl(b));
    CHECK(lep_message_first_acquirer(a) == lep_message_first_acquirer(b));
    CHECK(lep_message_delivery_count(a) == lep_message_delivery_count(b));
    CHECK(atoms_same(lep_message_id(a), lep_message_id(b)));
    CHECK(atoms_same(lep_message_correlation_id(a), lep_message_correlation_id(b)));
    CHECK(bytes_same(lep_message_user_id(a), lep_message_user_id(b)));
    CHECK(bytes_same(lep_message_to(a), lep_message_to(b)));
    CHECK(bytes_same(lep_message_subject(a), lep_message_subject(b)));
    CHECK(bytes_same(lep_message_reply_to(a), lep_message_reply_to(b)));
    CHECK(bytes_same(lep_message_content_type(a), lep_message_content_type(b)));
    CHECK(bytes_same(lep_message_content_encoding(a), lep_message_content_encoding(b)));
    CHECK(bytes_same(lep_message_group_id(a), lep_message_group_id(b)));
    CHECK(bytes_same(lep_message_reply_to_group_id(a), lep_message_reply_to_group_id(b)));
    CHECK(lep_message_absolute_expiry_time(a) == lep_message_absolute_expiry_time(b));
    CHECK(lep_message_creation_time(a) == lep_message_creation_time(b));
    CHECK(lep_message_group_sequence(a) == lep_message_group_sequence(b));

    size_t n = lep_message_property_count(a);
    CHECK(n == lep_message_property_count(b));
    for (size_t i = 0; i < n; i++) {
        lep_bytes_t ka, kb;
        const lep_atom_t *va, *vb;
        CHECK(lep_message_property_at(a, i, &ka, &va) == 0);
        CHECK(lep_message_property_at(b, i, &kb, &vb) == 0);
        CHECK(lep_bytes_eq(ka, kb));
        CHECK(atoms_same(va, vb));
    }
    CHECK(lep_message_property_at(a, n, NULL, NULL) == LEP_ERR_NOT_FOUND);

    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++) {
        lep_msg_annotations_t which = (lep_msg_annotations_t)w;
        n = lep_message_annotation_count(a, which);
        CHECK(n == lep_message_annotation_count(b, which));
        for (size_t i = 0; i < n; i++) {
            const lep_atom_t *ka, *kb, *va, *vb;
            CHECK(lep_message_annotation_at(a, which, i, &ka, &va) == 0);
            CHECK(lep_message_annotation_at(b, which, i, &kb, &vb) == 0);
            CHECK(atoms_same(ka, kb));
            CHECK(atoms_same(va, vb));
        }
    }

    CHECK(lep_message_body_kind(a) == lep_message_body_kind(b));
    n = lep_message_body_count(a);
    CHECK(n == lep_message_body_count(b));
    for (size_t i = 0; i < n; i++) {
        lep_bytes_t sa = lep_message_body_section(a, i), sb = lep_message_body_section(b, i);
        if (lep_message_body_kind(a) == LEP_BODY_DATA) {
            CHECK(lep_bytes_eq(sa, sb));
        } else {
            lep_value_t *x = NULL, *y = NULL;
            CHECK(lep_value_decode(sa.ptr, sa.len, false, &x, NULL) == 0);
            CHECK(lep_value_decode(sb.ptr, sb.len, false, &y, NULL) == 0);
            CHECK(lep_value_equal(x, y));
            lep_value_free(x);
            lep_value_free(y);
        }
    }
    CHECK(lep_message_body_section(a, n).ptr == NULL);
}

/* Lookups by key find an entry equal to the one at the key's first index. */
static void
check_lookups(const lep_message_t *m)
{
    size_t n = lep_message_property_count(m);
    for (size_t i = 0; i < n; i++) {
        lep_bytes_t k;
        const lep_atom_t *v;
        CHECK(lep_message_property_at(m, i, &k, &v) == 0);
        const lep_atom_t *found = lep_message_property(m, k);
        CHECK(found != NULL);
        /* With repeated keys the first entry wins, so compare with it. */
        for (size_t j = 0; j < i; j++) {
            lep_bytes_t kj;
            const lep_atom_t *vj;
            CHECK(lep_message_property_at(m, j, &kj, &vj) == 0);
            if (lep_bytes_eq(kj, k)) {
                v = vj;
                break;
            }
        }
        CHECK(atoms_same(found, v));
    }
    for (int w = LEP_MSG_DELIVERY_ANNOTATIONS; w <= LEP_MSG_FOOTER; w++) {
        lep_msg_annotations_t which = (lep_msg_annotations_t)w;
        n = lep_message_annotation_count(m, which);
        for (size_t i = 0; i < n; i++) {
            const lep_atom_t *k, *v;
            CHECK(lep_message_annotation_at(m, which, i, &k, &v) == 0);
            CHECK(lep_message_annotation(m, which, k) != NULL);
            if (k->type == LEP_TYPE_SYMBOL)
                CHECK(lep_message_annotation_sym(m, which, k->u.bytes) != NULL);
        }
    }
    lep_atom_t value;
    lep_bytes_t s;
    int rc = lep_message_body_value(m, &value);
    CHECK((rc == 0) == (lep_message_body_kind(m) == LEP_BODY_VALUE));
    rc = lep_message_body_string(m, &s);
    if (rc == 0)
        CHECK(value.type == LEP_TYPE_STRING && lep_bytes_eq(s, value.u.bytes));
}

static bool
is_empty(const lep_message_t *m)
{
    for (int f = 0; f < LEP_MSG_FIELD_COUNT_; f++)
        if (lep_message_has(m, (lep_msg_field_t)f))
            return false;
    return lep_message_property_count(m) == 0
           && lep_message_annotation_count(m, LEP_MSG_DELIVERY_ANNOTATIONS) == 0
           && lep_message_annotation_count(m, LEP_MSG_MESSAGE_ANNOTATIONS) == 0
           && lep_message_annotation_count(m, LEP_MSG_FOOTER) == 0
           && lep_message_body_kind(m) == LEP_BODY_NONE;
}

/* A message with every section, to be overwritten by a decode. */
static const uint8_t PRELOAD[] = {
    0x00, 0x53, 0x70, 0xc0, 0x04, 0x02, 0x41, 0x50, 0x07,             /* header */
    0x00, 0x53, 0x71, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'd', 0x52, 0x01,  /* delivery-ann */
    0x00, 0x53, 0x72, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'm', 0x52, 0x02,  /* message-ann */
    0x00, 0x53, 0x73, 0xc0, 0x06, 0x03, 0x53, 0x05, 0x40, 0xa1, 0x00, /* properties */
    0x00, 0x53, 0x74, 0xc1, 0x06, 0x02, 0xa1, 0x01, 'p', 0x52, 0x03,  /* app-props */
    0x00, 0x53, 0x75, 0xa0, 0x02, 'h', 'i',                           /* data */
    0x00, 0x53, 0x78, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'f', 0x52, 0x04,  /* footer */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lep_message_t *m = NULL, *reused = NULL, *again = NULL;
    lep_buf_t enc, enc2, enc3;

    CHECK(lep_message_new(&m) == 0);
    CHECK(lep_message_new(&reused) == 0);
    CHECK(lep_message_new(&again) == 0);
    lep_buf_init(&enc);
    lep_buf_init(&enc2);
    lep_buf_init(&enc3);

    CHECK(lep_message_decode(reused, PRELOAD, sizeof PRELOAD) == 0);
    int rc = lep_message_decode(m, data, size);
    int rc_reused = lep_message_decode(reused, data, size);
    CHECK(rc == rc_reused);
    if (rc != 0) {
        CHECK(is_empty(m));
        CHECK(is_empty(reused));
        goto out;
    }
    check_same(m, reused);
    check_lookups(m);

    CHECK(lep_message_encode(m, &enc) == 0);
    CHECK(lep_message_encode(reused, &enc2) == 0);
    CHECK(same_buf(&enc, &enc2));

    CHECK(lep_message_decode(again, enc.data, enc.len) == 0);
    check_same(m, again);
    lep_buf_clear(&enc2);
    CHECK(lep_message_encode(again, &enc2) == 0);
    CHECK(same_buf(&enc, &enc2));

    /* Appending to a buffer that already holds bytes keeps them. */
    CHECK(lep_buf_append(&enc3, "xy", 2) == 0);
    CHECK(lep_message_encode(m, &enc3) == 0);
    CHECK(enc3.len == enc.len + 2 && (enc.len == 0 || memcmp(enc3.data + 2, enc.data, enc.len) == 0));

    /* A fixed buffer one byte short must refuse and stay unchanged. */
    if (enc.len > 0) {
        uint8_t *mem = malloc(enc.len);
        CHECK(mem != NULL);
        lep_buf_t fixed;
        lep_buf_init_fixed(&fixed, mem, enc.len - 1);
        CHECK(lep_message_encode(m, &fixed) == LEP_ERR_OVERFLOW);
        CHECK(fixed.len == 0);
        lep_buf_init_fixed(&fixed, mem, enc.len);
        CHECK(lep_message_encode(m, &fixed) == 0);
        CHECK(fixed.len == enc.len && memcmp(mem, enc.data, enc.len) == 0);
        free(mem);
    }

    lep_message_clear(m);
    CHECK(is_empty(m));

out:
    lep_buf_fini(&enc);
    lep_buf_fini(&enc2);
    lep_buf_fini(&enc3);
    lep_message_free(m);
    lep_message_free(reused);
    lep_message_free(again);
    return 0;
}
