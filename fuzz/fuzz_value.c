/* Fuzz target: the generic value codec.
 *
 * For any input:
 *   - lep_value_decode with and without copying agree (result, bytes
 *     used, lep_value_equal, typed print);
 *   - a decoded tree prints in every flag combination, and its typed print
 *     equals lep_print_encoded's over the same bytes;
 *   - lep_value_encode of the tree succeeds, decodes back to an equal tree
 *     that prints the same, and encoding that tree again gives the same
 *     bytes (the smallest encoding is a fixed point);
 *   - the streaming reader walks the whole input (lep_reader_enter into
 *     every compound and described value) with peek, next, skip and the
 *     typed reads agreeing on every value.
 * A broken invariant aborts, which libFuzzer reports as a crash (and the
 * corpus replay test as a failure). */
#include <lepton/codec.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_value: %s:%d: check failed: %s\n",         \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)

static void
print_tree(const lep_value_t *v, int flags, lep_buf_t *out)
{
    lep_buf_clear(out);
    CHECK(lep_value_print(v, out, flags) == 0);
}

static bool
same_bytes(const lep_buf_t *a, const lep_buf_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* An empty array read without an element constructor (e0 01 00), which
 * the decoder tolerates and the encoder never writes. */
static bool
has_bare_array(const lep_value_t *v)
{
    if (v->atom.type == LEP_TYPE_ARRAY && v->atom.ctor.len == 0)
        return true;
    for (uint32_t i = 0; i < v->nchildren; i++)
        if (has_bare_array(&v->children[i]))
            return true;
    return false;
}

static void
check_tree(const uint8_t *data, size_t size)
{
    lep_value_t *view = NULL, *copy = NULL, *again = NULL;
    size_t used_view = 0, used_copy = 0, used_again = 0;
    int rc_view = lep_value_decode(data, size, false, &view, &used_view);
    int rc_copy = lep_value_decode(data, size, true, &copy, &used_copy);

    CHECK(rc_view == rc_copy);
    if (rc_view != 0) {
        CHECK(view == NULL && copy == NULL);
        return;
    }
    CHECK(used_view == used_copy && used_view <= size && used_view > 0);
    CHECK(lep_value_equal(view, copy));
    CHECK(lep_value_equal(copy, view));
    CHECK(lep_value_equal(view, view));

    lep_buf_t typed, other, enc, enc2;
    lep_buf_init(&typed);
    lep_buf_init(&other);
    lep_buf_init(&enc);
    lep_buf_init(&enc2);

    print_tree(view, LEP_PRINT_TYPED, &typed);
    print_tree(copy, LEP_PRINT_TYPED, &other);
    CHECK(same_bytes(&typed, &other));
    print_tree(view, LEP_PRINT_DEFAULT, &other);
    print_tree(view, LEP_PRINT_INDENT, &other);
    print_tree(view, LEP_PRINT_TYPED | LEP_PRINT_INDENT, &other);

    /* The streaming printer over the same bytes. */
    lep_reader_t r;
    lep_reader_init(&r, data, used_view);
    lep_buf_clear(&other);
    CHECK(lep_print_encoded(&r, &other, LEP_PRINT_TYPED) == 0);
    CHECK(same_bytes(&typed, &other));

    /* Re-encode, decode again, compare. */
    lep_encoder_t e;
    lep_encoder_init(&e, &enc);
    lep_value_encode(&e, view);
    CHECK(lep_encoder_error(&e) == 0);
    CHECK(lep_value_decode(enc.data, enc.len, false, &again, &used_again) == 0);
    CHECK(used_again == enc.len);
    CHECK(lep_value_equal(view, again));
    print_tree(again, LEP_PRINT_TYPED, &other);
    CHECK(same_bytes(&typed, &other));
    lep_encoder_init(&e, &enc2);
    lep_value_encode(&e, again);
    CHECK(lep_encoder_error(&e) == 0);
    CHECK(same_bytes(&enc, &enc2));
    /* Smallest encodings: never longer than what was read, but for the
     * tolerated empty array without an element constructor. */
    CHECK(enc.len <= used_view || has_bare_array(view));

    lep_buf_fini(&typed);
    lep_buf_fini(&other);
    lep_buf_fini(&enc);
    lep_buf_fini(&enc2);
    lep_value_free(view);
    lep_value_free(copy);
    lep_value_free(again);
}

/* The typed read for a's type, on a reader positioned at a, must return
 * the same value and leave the reader where lep_reader_next does. */
static void
check_typed_read(const lep_reader_t *at, const lep_atom_t *a, const lep_reader_t *after)
{
    lep_reader_t r = *at, child;
    int rc = 0;
    uint32_t count;
    lep_type_t et;

    switch (a->type) {
    case LEP_TYPE_NULL:
        CHECK(lep_read_null(&r));
        break;
    case LEP_TYPE_BOOL: {
        bool v;
        rc = lep_read_bool(&r, &v);
        CHECK(rc != 0 || v == a->u.b);
        break;
    }
    case LEP_TYPE_UBYTE: {
        uint8_t v;
        rc = lep_read_ubyte(&r, &v);
        CHECK(rc != 0 || v == a->u.u);
        break;
    }
    case LEP_TYPE_USHORT: {
        uint16_t v;
        rc = lep_read_ushort(&r, &v);
        CHECK(rc != 0 || v == a->u.u);
        break;
    }
    case LEP_TYPE_UINT: {
        uint32_t v;
        rc = lep_read_uint(&r, &v);
        CHECK(rc != 0 || v == a->u.u);
        break;
    }
    case LEP_TYPE_ULONG: {
        uint64_t v;
        rc = lep_read_ulong(&r, &v);
        CHECK(rc != 0 || v == a->u.u);
        break;
    }
    case LEP_TYPE_BYTE: {
        int8_t v;
        rc = lep_read_byte(&r, &v);
        CHECK(rc != 0 || v == a->u.i);
        break;
    }
    case LEP_TYPE_SHORT: {
        int16_t v;
        rc = lep_read_short(&r, &v);
        CHECK(rc != 0 || v == a->u.i);
        break;
    }
    case LEP_TYPE_INT: {
        int32_t v;
        rc = lep_read_int(&r, &v);
        CHECK(rc != 0 || v == a->u.i);
        break;
    }
    case LEP_TYPE_LONG: {
        int64_t v;
        rc = lep_read_long(&r, &v);
        CHECK(rc != 0 || v == a->u.i);
        break;
    }
    case LEP_TYPE_TIMESTAMP: {
        int64_t v;
        rc = lep_read_timestamp(&r, &v);
        CHECK(rc != 0 || v == a->u.i);
        break;
    }
    case LEP_TYPE_FLOAT: {
        float v;
        rc = lep_read_float(&r, &v);
        CHECK(rc != 0 || memcmp(&v, &a->u.f, sizeof v) == 0);
        break;
    }
    case LEP_TYPE_DOUBLE: {
        double v;
        rc = lep_read_double(&r, &v);
        CHECK(rc != 0 || memcmp(&v, &a->u.d, sizeof v) == 0);
        break;
    }
    case LEP_TYPE_CHAR: {
        uint32_t v;
        rc = lep_read_char(&r, &v);
        CHECK(rc != 0 || v == a->u.u);
        break;
    }
    case LEP_TYPE_UUID: {
        uint8_t v[16];
        rc = lep_read_uuid(&r, v);
        CHECK(rc != 0 || memcmp(v, a->u.uuid, 16) == 0);
        break;
    }
    case LEP_TYPE_BINARY:
    case LEP_TYPE_STRING:
    case LEP_TYPE_SYMBOL: {
        lep_bytes_t v;
        rc = a->type == LEP_TYPE_BINARY   ? lep_read_binary(&r, &v)
             : a->type == LEP_TYPE_STRING ? lep_read_string(&r, &v)
                                          : lep_read_symbol(&r, &v);
        CHECK(rc != 0 || lep_bytes_eq(v, a->u.bytes));
        break;
    }
    case LEP_TYPE_LIST:
        rc = lep_read_list(&r, &child, &count);
        CHECK(rc != 0 || count == a->count);
        break;
    case LEP_TYPE_MAP:
        rc = lep_read_map(&r, &child, &count);
        CHECK(rc != 0 || count == a->count);
        break;
    case LEP_TYPE_ARRAY:
        rc = lep_read_array(&r, &child, &count, &et);
        CHECK(rc != 0 || count == a->count);
        break;
    case LEP_TYPE_DESCRIBED: {
        uint64_t code;
        lep_bytes_t name;
        rc = lep_read_descriptor(&r, &code, &name);
        if (rc == LEP_ERR_TYPE) {
            /* lep_read_descriptor takes ulong and symbol descriptors only,
             * and not inside arrays (elements have no 0x00 of their own). */
            lep_reader_t dr;
            lep_atom_t d;
            lep_reader_init(&dr, a->ctor.ptr, a->ctor.len);
            CHECK((a->flags & LEP_ATOM_ARRAY_ELEM)
                  || lep_reader_next(&dr, &d) != 0
                  || (d.type != LEP_TYPE_ULONG && d.type != LEP_TYPE_SYMBOL));
            return;
        }
        if (rc == 0) {
            lep_reader_t dr;
            lep_atom_t d;
            lep_reader_init(&dr, a->ctor.ptr, a->ctor.len);
            CHECK(lep_reader_next(&dr, &d) == 0);
            if (d.type == LEP_TYPE_ULONG)
                CHECK(code == d.u.u && name.len == 0);
            else
                CHECK(d.type == LEP_TYPE_SYMBOL && lep_bytes_eq(name, d.u.bytes));
            /* The reader then stands at the described value: skip it. */
            rc = lep_reader_skip(&r);
        }
        break;
    }
    default:
        return; /* decimals have no typed read */
    }
    /* Typed reads may refuse what next accepted only for limits reached
     * while opening a compound; everything else must agree. */
    if (rc == 0)
        CHECK(r.p == after->p);
    else
        CHECK(rc == LEP_ERR_LIMIT || rc == LEP_ERR_DECODE);
}

/* Walks every value of r, entering compounds, to the reader's own depth
 * limit (each level is one lep_reader_enter, which refuses past
 * LEP_CODEC_MAX_DEPTH, so the recursion is bounded). */
static void
walk(lep_reader_t *r, unsigned *budget)
{
    while (!lep_reader_done(r)) {
        if (*budget == 0)
            return;
        (*budget)--;
        lep_atom_t peeked, a;
        lep_reader_t at = *r, skipper = *r;
        int rc_peek = lep_reader_peek(r, &peeked);
        int rc = lep_reader_next(r, &a);
        int rc_skip = lep_reader_skip(&skipper);
        CHECK(rc_peek == rc);
        CHECK((rc == 0) == (rc_skip == 0));
        if (rc != 0) {
            CHECK(r->p == at.p); /* a failed read consumes nothing */
            return;
        }
        CHECK(skipper.p == r->p);
        CHECK(peeked.type == a.type && peeked.raw.ptr == a.raw.ptr && peeked.raw.len == a.raw.len);
        CHECK(a.raw.ptr >= at.p && a.raw.ptr + a.raw.len <= r->p);
        check_typed_read(&at, &a, r);

        if (a.type == LEP_TYPE_LIST || a.type == LEP_TYPE_MAP || a.type == LEP_TYPE_ARRAY
            || a.type == LEP_TYPE_DESCRIBED) {
            lep_reader_t child;
            if (lep_reader_enter(r, &a, &child) == 0)
                walk(&child, budget);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_tree(data, size);

    /* Zero-width array elements let a few bytes stand for thousands of
     * values; the budget keeps each run fast without hiding anything the
     * first values do not already show. */
    unsigned budget = 100000;
    lep_reader_t r;
    lep_reader_init(&r, data, size);
    walk(&r, &budget);
    return 0;
}
