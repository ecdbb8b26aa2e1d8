/* Tests of the generated AMQP 1.0 composite types (amqp_types.h): exact
 * encodings, the legal variants a decoder must take, and the errors.
 *
 * The expected encodings are written by hand from the spec (part 1 for the
 * encodings, parts 2-5 for the field lists), not produced by the code under
 * test.  test_amqp_roundtrip.c covers every type and field. */
#include <lepton/amqp_types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define B(...) ((const uint8_t[]){__VA_ARGS__})
#define BN(...) sizeof((const uint8_t[]){__VA_ARGS__})
#define BYTES(...) LEP_BYTES(B(__VA_ARGS__), BN(__VA_ARGS__))

/* ------------------------------------------------------------------ */
/* Hand-made encodings                                                */

/* open: container-id "c1" only */
#define OPEN_C1 0x00, 0x53, 0x10, 0xc0, 0x05, 0x01, 0xa1, 0x02, 0x63, 0x31
/* transfer: handle 0, delivery-id 5, delivery-tag "\0", message-format 0,
 * settled true */
#define TRANSFER_BODY 0x43, 0x52, 0x05, 0xa0, 0x01, 0x00, 0x43, 0x41
#define TRANSFER_T 0x00, 0x53, 0x14, 0xc0, 0x09, 0x05, TRANSFER_BODY
/* disposition: receiver, first 1, last 1, settled, state accepted */
#define ACCEPTED 0x00, 0x53, 0x24, 0x45
#define DISPOSITION_ACC \
    0x00, 0x53, 0x15, 0xc0, 0x0b, 0x05, 0x41, 0x52, 0x01, 0x52, 0x01, 0x41, ACCEPTED
/* flow: next-incoming-id 1, incoming-window 2^31-1, next-outgoing-id 1,
 * outgoing-window 2^31-1, handle 0, delivery-count 0, link-credit 10 */
#define FLOW_T                                                                  \
    0x00, 0x53, 0x13, 0xc0, 0x13, 0x07, 0x52, 0x01, 0x70, 0x7f, 0xff, 0xff, 0xff, \
        0x52, 0x01, 0x70, 0x7f, 0xff, 0xff, 0xff, 0x43, 0x43, 0x52, 0x0a
/* attach: name "l", handle 0, role sender */
#define ATTACH_MIN 0x00, 0x53, 0x12, 0xc0, 0x06, 0x03, 0xa1, 0x01, 0x6c, 0x43, 0x42
/* sasl-init: PLAIN, initial-response "\0user\0pw" */
#define SASL_INIT_PLAIN                                                         \
    0x00, 0x53, 0x41, 0xc0, 0x12, 0x02, 0xa3, 0x05, 'P', 'L', 'A', 'I', 'N',     \
        0xa0, 0x08, 0x00, 'u', 's', 'e', 'r', 0x00, 'p', 'w'
/* error: amqp:internal-error, "boom" (33 bytes) */
#define ERROR_BOOM                                                              \
    0x00, 0x53, 0x1d, 0xc0, 0x1c, 0x02, 0xa3, 0x13, 'a', 'm', 'q', 'p', ':',     \
        'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', '-', 'e', 'r', 'r', 'o', 'r',     \
        0xa1, 0x04, 'b', 'o', 'o', 'm'
#define CLOSE_BOOM 0x00, 0x53, 0x18, 0xc0, 0x22, 0x01, ERROR_BOOM

static void
expect_bytes(const lep_buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len != n || memcmp(b->data, p, n) != 0) {
        size_t i;

        fprintf(stderr, "got     ");
        for (i = 0; i < b->len; i++)
            fprintf(stderr, " %02x", b->data[i]);
        fprintf(stderr, "\nexpected");
        for (i = 0; i < n; i++)
            fprintf(stderr, " %02x", p[i]);
        fprintf(stderr, "\n");
        fail_msg("encoding differs");
    }
}

#define EXPECT_BYTES(buf, ...) expect_bytes(buf, B(__VA_ARGS__), BN(__VA_ARGS__))

/* Every proper prefix of a value must fail to decode, never crash or
 * succeed. */
typedef int (*decode_fn)(lep_reader_t *r, void *out);

static void
expect_truncation_fails(decode_fn dec, const uint8_t *p, size_t n, size_t size)
{
    void *out = malloc(size);
    size_t cut;

    assert_non_null(out);
    for (cut = 0; cut < n; cut++) {
        /* a copy of exactly cut bytes, so ASan sees any over-read */
        uint8_t *copy = malloc(cut ? cut : 1);
        lep_reader_t r;

        assert_non_null(copy);
        memcpy(copy, p, cut);
        lep_reader_init(&r, copy, cut);
        if (dec(&r, out) == 0)
            fail_msg("prefix of %zu of %zu bytes decoded", cut, n);
        free(copy);
    }
    free(out);
}

/* Decoders called through a pointer of their own type. */
static int dec_transfer(lep_reader_t *r, void *p) { return lep_transfer_decode(r, p); }
static int dec_performative(lep_reader_t *r, void *p) { return lep_performative_decode(r, p); }
static int dec_sasl_frame(lep_reader_t *r, void *p) { return lep_sasl_frame_decode(r, p); }

/* ------------------------------------------------------------------ */
/* Byte-exact encodings                                               */

static void
test_open_container_id_only(void **state)
{
    lep_buf_t buf;
    lep_encoder_t e;
    lep_open_t o;
    lep_reader_t r;
    (void)state;

    lep_open_init(&o);
    o.container_id = lep_bytes_str("c1");
    o.present = LEP_OPEN_HAS_CONTAINER_ID;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_open_encode(&e, &o), 0);
    EXPECT_BYTES(&buf, OPEN_C1);

    memset(&o, 0xa5, sizeof o);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_open_decode(&r, &o), 0);
    assert_true(lep_reader_done(&r));
    assert_int_equal(o.present, LEP_OPEN_HAS_CONTAINER_ID);
    assert_true(lep_bytes_eq_str(o.container_id, "c1"));
    /* absent fields hold the spec's defaults */
    assert_int_equal(o.max_frame_size, UINT32_MAX);
    assert_int_equal(o.channel_max, 65535);
    assert_int_equal(o.idle_time_out, 0);
    assert_int_equal(o.hostname.len, 0);
    assert_int_equal(o.properties.len, 0);
    lep_buf_fini(&buf);
}

static void
test_transfer_bytes(void **state)
{
    static const uint8_t tag[1] = {0};
    lep_buf_t buf;
    lep_encoder_t e;
    lep_transfer_t t;
    lep_reader_t r;
    (void)state;

    lep_transfer_init(&t);
    t.handle = 0;
    t.delivery_id = 5;
    t.delivery_tag = LEP_BYTES(tag, 1);
    t.message_format = 0;
    t.settled = true;
    t.present = LEP_TRANSFER_HAS_HANDLE | LEP_TRANSFER_HAS_DELIVERY_ID |
                LEP_TRANSFER_HAS_DELIVERY_TAG | LEP_TRANSFER_HAS_MESSAGE_FORMAT |
                LEP_TRANSFER_HAS_SETTLED;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_transfer_encode(&e, &t), 0);
    EXPECT_BYTES(&buf, TRANSFER_T);

    memset(&t, 0x5a, sizeof t);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_transfer_decode(&r, &t), 0);
    assert_int_equal(t.present, LEP_TRANSFER_HAS_HANDLE | LEP_TRANSFER_HAS_DELIVERY_ID |
                                    LEP_TRANSFER_HAS_DELIVERY_TAG |
                                    LEP_TRANSFER_HAS_MESSAGE_FORMAT | LEP_TRANSFER_HAS_SETTLED);
    assert_int_equal(t.handle, 0);
    assert_int_equal(t.delivery_id, 5);
    assert_int_equal(t.delivery_tag.len, 1);
    assert_int_equal(t.delivery_tag.ptr[0], 0);
    /* the tag is a view into the input */
    assert_ptr_equal(t.delivery_tag.ptr, buf.data + 11);
    assert_int_equal(t.message_format, 0);
    assert_true(t.settled);
    assert_false(t.more);
    assert_false(t.aborted);
    assert_int_equal(t.state.len, 0);
    lep_buf_fini(&buf);
}

static void
test_disposition_and_flow_bytes(void **state)
{
    lep_buf_t buf, st;
    lep_encoder_t e;
    lep_accepted_t acc;
    lep_disposition_t d;
    lep_flow_t f;
    lep_delivery_state_t ds;
    lep_reader_t r;
    (void)state;

    lep_buf_init(&st);
    lep_encoder_init(&e, &st);
    lep_accepted_init(&acc);
    assert_int_equal(lep_accepted_encode(&e, &acc), 0);
    EXPECT_BYTES(&st, ACCEPTED);

    lep_disposition_init(&d);
    d.role = LEP_ROLE_RECEIVER;
    d.first = 1;
    d.last = 1;
    d.settled = true;
    d.state = lep_buf_bytes(&st);
    d.present = LEP_DISPOSITION_HAS_ROLE | LEP_DISPOSITION_HAS_FIRST |
                LEP_DISPOSITION_HAS_LAST | LEP_DISPOSITION_HAS_SETTLED |
                LEP_DISPOSITION_HAS_STATE;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_disposition_encode(&e, &d), 0);
    EXPECT_BYTES(&buf, DISPOSITION_ACC);

    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_disposition_decode(&r, &d), 0);
    assert_true(d.role);
    assert_int_equal(d.first, 1);
    assert_int_equal(d.last, 1);
    assert_true(d.settled);
    assert_false(d.batchable);
    assert_int_equal(d.state.len, 4);
    lep_reader_init(&r, d.state.ptr, d.state.len);
    assert_int_equal(lep_delivery_state_decode(&r, &ds), 0);
    assert_int_equal(ds.code, LEP_DESC_ACCEPTED);

    lep_flow_init(&f);
    f.next_incoming_id = 1;
    f.incoming_window = 0x7fffffff;
    f.next_outgoing_id = 1;
    f.outgoing_window = 0x7fffffff;
    f.handle = 0;
    f.delivery_count = 0;
    f.link_credit = 10;
    f.present = LEP_FLOW_HAS_NEXT_INCOMING_ID | LEP_FLOW_HAS_INCOMING_WINDOW |
                LEP_FLOW_HAS_NEXT_OUTGOING_ID | LEP_FLOW_HAS_OUTGOING_WINDOW |
                LEP_FLOW_HAS_HANDLE | LEP_FLOW_HAS_DELIVERY_COUNT | LEP_FLOW_HAS_LINK_CREDIT;
    lep_buf_clear(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_flow_encode(&e, &f), 0);
    EXPECT_BYTES(&buf, FLOW_T);
    memset(&f, 0xff, sizeof f);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_flow_decode(&r, &f), 0);
    assert_int_equal(f.incoming_window, 0x7fffffff);
    assert_int_equal(f.link_credit, 10);
    assert_int_equal(f.available, 0);
    assert_false(f.drain);
    assert_false(f.echo);
    assert_int_equal(f.present & LEP_FLOW_HAS_AVAILABLE, 0);
    lep_buf_fini(&buf);
    lep_buf_fini(&st);
}

static void
test_close_with_error_bytes(void **state)
{
    lep_buf_t eb, buf;
    lep_encoder_t e;
    lep_error_t err;
    lep_close_t c;
    lep_reader_t r;
    (void)state;

    lep_error_init(&err);
    err.condition = lep_bytes_str(LEP_AMQP_ERR_INTERNAL_ERROR);
    err.description = lep_bytes_str("boom");
    err.present = LEP_ERROR_HAS_CONDITION | LEP_ERROR_HAS_DESCRIPTION;
    lep_buf_init(&eb);
    lep_encoder_init(&e, &eb);
    assert_int_equal(lep_error_encode(&e, &err), 0);
    EXPECT_BYTES(&eb, ERROR_BOOM);

    lep_close_init(&c);
    c.error = lep_buf_bytes(&eb);
    c.present = LEP_CLOSE_HAS_ERROR;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_close_encode(&e, &c), 0);
    EXPECT_BYTES(&buf, CLOSE_BOOM);

    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_close_decode(&r, &c), 0);
    assert_int_equal(c.present, LEP_CLOSE_HAS_ERROR);
    assert_int_equal(c.error.len, 33);
    lep_reader_init(&r, c.error.ptr, c.error.len);
    assert_int_equal(lep_error_decode(&r, &err), 0);
    assert_true(lep_bytes_eq_str(err.condition, "amqp:internal-error"));
    assert_true(lep_bytes_eq_str(err.description, "boom"));
    assert_int_equal(err.present & LEP_ERROR_HAS_INFO, 0);
    lep_buf_fini(&buf);
    lep_buf_fini(&eb);
}

static void
test_sasl_and_attach_bytes(void **state)
{
    static const uint8_t resp[] = {0, 'u', 's', 'e', 'r', 0, 'p', 'w'};
    lep_buf_t buf;
    lep_encoder_t e;
    lep_sasl_init_t si;
    lep_attach_t a;
    lep_reader_t r;
    lep_sasl_frame_t sf;
    (void)state;

    lep_sasl_init_init(&si);
    si.mechanism = lep_bytes_str("PLAIN");
    si.initial_response = LEP_BYTES(resp, sizeof resp);
    si.present = LEP_SASL_INIT_HAS_MECHANISM | LEP_SASL_INIT_HAS_INITIAL_RESPONSE;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_sasl_init_encode(&e, &si), 0);
    EXPECT_BYTES(&buf, SASL_INIT_PLAIN);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_sasl_frame_decode(&r, &sf), 0);
    assert_int_equal(sf.code, LEP_DESC_SASL_INIT);
    assert_true(lep_bytes_eq_str(sf.u.sasl_init.mechanism, "PLAIN"));
    assert_true(lep_bytes_eq(sf.u.sasl_init.initial_response, LEP_BYTES(resp, sizeof resp)));
    assert_int_equal(sf.u.sasl_init.hostname.len, 0);

    lep_attach_init(&a);
    a.name = lep_bytes_str("l");
    a.handle = 0;
    a.role = LEP_ROLE_SENDER;
    a.present = LEP_ATTACH_MANDATORY;
    lep_buf_clear(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_attach_encode(&e, &a), 0);
    EXPECT_BYTES(&buf, ATTACH_MIN);
    memset(&a, 0x11, sizeof a);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_attach_decode(&r, &a), 0);
    assert_int_equal(a.present, LEP_ATTACH_MANDATORY);
    assert_false(a.role);
    assert_int_equal(a.snd_settle_mode, LEP_SND_SETTLE_MIXED);
    assert_int_equal(a.rcv_settle_mode, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(a.source.len, 0);
    assert_false(a.incomplete_unsettled);
    lep_buf_fini(&buf);
}

/* A source nested in an attach, both ways, with the defaults of an absent
 * terminus field. */
static void
test_attach_with_source(void **state)
{
    lep_buf_t sb, buf;
    lep_encoder_t e;
    lep_source_t src;
    lep_target_t tgt;
    lep_attach_t a;
    lep_reader_t r;
    lep_reader_t it;
    uint32_t n;
    lep_bytes_t sym;
    (void)state;

    lep_source_init(&src);
    assert_true(lep_bytes_eq_str(src.expiry_policy, LEP_TERMINUS_EXPIRY_POLICY_SESSION_END));
    src.address = BYTES(0xa1, 0x01, 'q');
    src.durable = LEP_TERMINUS_DURABILITY_UNSETTLED_STATE;
    src.outcomes = BYTES(0xe0, 0x08, 0x02, 0xa3, 0x02, 'a', 'b', 0x02, 'c', 'd');
    src.present = LEP_SOURCE_HAS_ADDRESS | LEP_SOURCE_HAS_DURABLE | LEP_SOURCE_HAS_OUTCOMES;
    lep_buf_init(&sb);
    lep_encoder_init(&e, &sb);
    assert_int_equal(lep_source_encode(&e, &src), 0);
    /* address, durable, 7 nulls, outcomes */
    EXPECT_BYTES(&sb, 0x00, 0x53, 0x28, 0xc0, 0x17, 0x0a, 0xa1, 0x01, 'q', 0x52, 0x02,
                 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
                 0xe0, 0x08, 0x02, 0xa3, 0x02, 'a', 'b', 0x02, 'c', 'd');

    lep_attach_init(&a);
    a.name = lep_bytes_str("link");
    a.handle = 3;
    a.role = LEP_ROLE_RECEIVER;
    a.source = lep_buf_bytes(&sb);
    a.present = LEP_ATTACH_MANDATORY | LEP_ATTACH_HAS_SOURCE;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_attach_encode(&e, &a), 0);

    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_attach_decode(&r, &a), 0);
    assert_int_equal(a.handle, 3);
    assert_true(a.role);
    assert_true(lep_bytes_eq(a.source, lep_buf_bytes(&sb)));
    lep_reader_init(&r, a.source.ptr, a.source.len);
    memset(&src, 0, sizeof src);
    assert_int_equal(lep_source_decode(&r, &src), 0);
    assert_int_equal(src.durable, 2);
    assert_true(lep_bytes_eq_str(src.expiry_policy, "session-end"));
    assert_int_equal(src.present & LEP_SOURCE_HAS_EXPIRY_POLICY, 0);
    assert_int_equal(lep_multiple_open(src.outcomes, &it, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(lep_read_symbol(&it, &sym), 0);
    assert_true(lep_bytes_eq_str(sym, "ab"));
    assert_int_equal(lep_read_symbol(&it, &sym), 0);
    assert_true(lep_bytes_eq_str(sym, "cd"));
    assert_true(lep_reader_done(&it));

    /* a source where a target belongs is the wrong descriptor */
    lep_reader_init(&r, a.source.ptr, a.source.len);
    assert_int_equal(lep_target_decode(&r, &tgt), LEP_ERR_TYPE);
    lep_buf_fini(&buf);
    lep_buf_fini(&sb);
}

/* ------------------------------------------------------------------ */
/* Decoding the other legal forms                                     */

static void
test_symbolic_descriptor(void **state)
{
    static const uint8_t sym[] = {
        0x00, 0xa3, 0x12, 'a', 'm', 'q', 'p', ':', 't', 'r', 'a', 'n', 's', 'f', 'e', 'r',
        ':', 'l', 'i', 's', 't', 0xc0, 0x09, 0x05, TRANSFER_BODY};
    static const uint8_t sym32[] = {
        0x00, 0xb3, 0x00, 0x00, 0x00, 0x0e, 'a', 'm', 'q', 'p', ':', 'o', 'p', 'e', 'n',
        ':', 'l', 'i', 's', 't', 0xc0, 0x05, 0x01, 0xa1, 0x02, 'c', '1'};
    static const uint8_t unknown[] = {0x00, 0xa3, 0x03, 'f', 'o', 'o', 0x45};
    lep_transfer_t t;
    lep_open_t o;
    lep_performative_t p;
    lep_reader_t r;
    (void)state;

    lep_reader_init(&r, sym, sizeof sym);
    assert_int_equal(lep_transfer_decode(&r, &t), 0);
    assert_int_equal(t.delivery_id, 5);
    assert_true(t.settled);
    lep_reader_init(&r, sym, sizeof sym);
    assert_int_equal(lep_performative_decode(&r, &p), 0);
    assert_int_equal(p.code, LEP_DESC_TRANSFER);
    assert_int_equal(p.u.transfer.delivery_id, 5);
    lep_reader_init(&r, sym, sizeof sym);
    assert_int_equal(lep_open_decode(&r, &o), LEP_ERR_TYPE);

    lep_reader_init(&r, sym32, sizeof sym32);
    assert_int_equal(lep_open_decode(&r, &o), 0);
    assert_true(lep_bytes_eq_str(o.container_id, "c1"));

    lep_reader_init(&r, unknown, sizeof unknown);
    assert_int_equal(lep_performative_decode(&r, &p), LEP_ERR_TYPE);
    assert_true(p.code == UINT64_MAX);
    expect_truncation_fails(dec_transfer, sym, sizeof sym, sizeof t);
}

static void
test_list_forms(void **state)
{
    /* list32 with a 4-byte size and count */
    static const uint8_t l32[] = {0x00, 0x53, 0x14, 0xd0, 0x00, 0x00, 0x00, 0x0c,
                                  0x00, 0x00, 0x00, 0x05, TRANSFER_BODY};
    /* ulong descriptor in its 8-byte form */
    static const uint8_t ulong8[] = {0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x14,
                                     0xc0, 0x09, 0x05, TRANSFER_BODY};
    /* wide encodings of the fields: uint 0x70, vbin32, boolean 0x56 */
    static const uint8_t wide[] = {0x00, 0x53, 0x14, 0xc0, 0x14, 0x05,
                                   0x70, 0x00, 0x00, 0x00, 0x00,
                                   0x70, 0x00, 0x00, 0x00, 0x05,
                                   0xb0, 0x00, 0x00, 0x00, 0x01, 0x00, 0x43, 0x56, 0x01};
    static const uint8_t close0[] = {0x00, 0x53, 0x18, 0x45};
    static const uint8_t close8[] = {0x00, 0x53, 0x18, 0xc0, 0x01, 0x00};
    static const uint8_t close_null[] = {0x00, 0x53, 0x18, 0xc0, 0x02, 0x01, 0x40};
    static const uint8_t *const fwd[] = {l32, ulong8, wide};
    static const size_t fwdn[] = {sizeof l32, sizeof ulong8, sizeof wide};
    static const uint8_t *const closes[] = {close0, close8, close_null};
    static const size_t closen[] = {sizeof close0, sizeof close8, sizeof close_null};
    lep_transfer_t t;
    lep_close_t c;
    lep_reader_t r;
    size_t i;
    (void)state;

    for (i = 0; i < 3; i++) {
        lep_reader_init(&r, fwd[i], fwdn[i]);
        assert_int_equal(lep_transfer_decode(&r, &t), 0);
        assert_true(lep_reader_done(&r));
        assert_int_equal(t.handle, 0);
        assert_int_equal(t.delivery_id, 5);
        assert_int_equal(t.delivery_tag.len, 1);
        assert_true(t.settled);
        assert_int_equal(t.present, 0x1f);
        expect_truncation_fails(dec_transfer, fwd[i], fwdn[i], sizeof t);
    }
    for (i = 0; i < 3; i++) {
        memset(&c, 0xee, sizeof c);
        lep_reader_init(&r, closes[i], closen[i]);
        assert_int_equal(lep_close_decode(&r, &c), 0);
        assert_int_equal(c.present, 0);
        assert_int_equal(c.error.len, 0);
        assert_true(lep_reader_done(&r));
    }
}

/* The frame layer reads the descriptor itself, then the list. */
static void
test_decode_list_after_descriptor(void **state)
{
    static const uint8_t two[] = {OPEN_C1, TRANSFER_T};
    lep_reader_t r;
    uint64_t code;
    lep_bytes_t name;
    lep_open_t o;
    lep_transfer_t t;
    (void)state;

    lep_reader_init(&r, two, sizeof two);
    assert_int_equal(lep_read_descriptor(&r, &code, &name), 0);
    assert_int_equal(code, LEP_DESC_OPEN);
    assert_int_equal(lep_open_decode_list(&r, &o), 0);
    assert_true(lep_bytes_eq_str(o.container_id, "c1"));
    /* the reader stands after the open, at the transfer */
    assert_int_equal(lep_transfer_decode(&r, &t), 0);
    assert_int_equal(t.delivery_id, 5);
    assert_true(lep_reader_done(&r));
}

/* ------------------------------------------------------------------ */
/* Errors                                                             */

static void
test_wrong_descriptor(void **state)
{
    static const uint8_t open[] = {OPEN_C1};
    static const uint8_t plain_list[] = {0xc0, 0x02, 0x01, 0x43};
    static const uint8_t map_body[] = {0x00, 0x53, 0x14, 0xc1, 0x01, 0x00};
    static const uint8_t domain[] = {0x00, 0x80, 0, 0, 0, 1, 0, 0, 0, 0x14,
                                     0xc0, 0x02, 0x01, 0x43};
    static const uint8_t bad_desc_type[] = {0x00, 0xa1, 0x01, 'x', 0x45};
    static const uint8_t unknown_code[] = {0x00, 0x53, 0x19, 0x45};
    lep_transfer_t t;
    lep_performative_t p;
    lep_sasl_frame_t sf;
    lep_delivery_state_t ds;
    lep_reader_t r;
    (void)state;

    lep_reader_init(&r, open, sizeof open);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, plain_list, sizeof plain_list);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, map_body, sizeof map_body);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, domain, sizeof domain);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, bad_desc_type, sizeof bad_desc_type);
    assert_true(lep_transfer_decode(&r, &t) < 0);

    lep_reader_init(&r, unknown_code, sizeof unknown_code);
    assert_int_equal(lep_performative_decode(&r, &p), LEP_ERR_TYPE);
    assert_int_equal(p.code, 0x19);
    /* a performative is not a SASL frame nor a delivery state */
    lep_reader_init(&r, open, sizeof open);
    assert_int_equal(lep_sasl_frame_decode(&r, &sf), LEP_ERR_TYPE);
    assert_int_equal(sf.code, LEP_DESC_OPEN);
    lep_reader_init(&r, open, sizeof open);
    assert_int_equal(lep_delivery_state_decode(&r, &ds), LEP_ERR_TYPE);
}

static void
test_wrong_field_type(void **state)
{
    /* handle as a string */
    static const uint8_t handle_str[] = {0x00, 0x53, 0x14, 0xc0, 0x03, 0x01, 0xa1, 0x00};
    /* state as a uint where a described delivery-state belongs */
    static const uint8_t state_uint[] = {0x00, 0x53, 0x14, 0xc0, 0x0a, 0x08, 0x43,
                                         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x52, 0x01};
    /* open properties as a list instead of a map */
    static const uint8_t props_list[] = {0x00, 0x53, 0x10, 0xc0, 0x0d, 0x0a, 0xa1, 0x01, 'c',
                                         0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x45};
    /* offered-capabilities as a uint */
    static const uint8_t caps_uint[] = {0x00, 0x53, 0x10, 0xc0, 0x0c, 0x08, 0xa1, 0x01, 'c',
                                        0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x52, 0x01};
    /* flow drain as ubyte */
    static const uint8_t drain_ubyte[] = {0x00, 0x53, 0x13, 0xc0, 0x0b, 0x09, 0x40, 0x43, 0x43, 0x43,
                                          0x40, 0x40, 0x40, 0x40, 0x50, 0x01};
    /* handle as ulong (a wider type is still the wrong type) */
    static const uint8_t handle_ulong[] = {0x00, 0x53, 0x14, 0xc0, 0x03, 0x01, 0x53, 0x01};
    /* close error as a bare symbol instead of a described error */
    static const uint8_t error_sym[] = {0x00, 0x53, 0x18, 0xc0, 0x04, 0x01, 0xa3, 0x01, 'x'};
    lep_transfer_t t;
    lep_open_t o;
    lep_flow_t f;
    lep_close_t c;
    lep_reader_t r;
    (void)state;

    lep_reader_init(&r, handle_str, sizeof handle_str);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, state_uint, sizeof state_uint);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, handle_ulong, sizeof handle_ulong);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_TYPE);
    lep_reader_init(&r, props_list, sizeof props_list);
    assert_int_equal(lep_open_decode(&r, &o), LEP_ERR_TYPE);
    lep_reader_init(&r, caps_uint, sizeof caps_uint);
    assert_int_equal(lep_open_decode(&r, &o), LEP_ERR_TYPE);
    lep_reader_init(&r, drain_ubyte, sizeof drain_ubyte);
    assert_int_equal(lep_flow_decode(&r, &f), LEP_ERR_TYPE);
    lep_reader_init(&r, error_sym, sizeof error_sym);
    assert_int_equal(lep_close_decode(&r, &c), LEP_ERR_TYPE);
}

static void
test_single_value_for_multiple(void **state)
{
    /* offered-capabilities as one bare symbol, which the spec allows */
    static const uint8_t caps_sym[] = {0x00, 0x53, 0x10, 0xc0, 0x0d, 0x08, 0xa1, 0x01, 'c',
                                       0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0xa3, 0x01, 'x'};
    lep_open_t o;
    lep_reader_t r, it;
    lep_bytes_t sym;
    uint32_t n;
    (void)state;

    lep_reader_init(&r, caps_sym, sizeof caps_sym);
    assert_int_equal(lep_open_decode(&r, &o), 0);
    assert_int_equal(o.present, LEP_OPEN_HAS_CONTAINER_ID | LEP_OPEN_HAS_OFFERED_CAPABILITIES);
    assert_int_equal(o.offered_capabilities.len, 3);
    assert_int_equal(lep_multiple_open(o.offered_capabilities, &it, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(lep_read_symbol(&it, &sym), 0);
    assert_true(lep_bytes_eq_str(sym, "x"));
    assert_true(lep_reader_done(&it));

    assert_int_equal(lep_multiple_open(o.desired_capabilities, &it, &n), 0);
    assert_int_equal(n, 0);
    assert_true(lep_reader_done(&it));
    assert_int_equal(lep_multiple_open(BYTES(0x40), &it, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(lep_multiple_open(BYTES(0xe0, 0x02, 0x00, 0xa3), &it, &n), 0);
    assert_int_equal(n, 0);
    assert_true(lep_reader_done(&it));
    assert_true(lep_multiple_open(BYTES(0xe0, 0x09), &it, &n) < 0);
    assert_true(lep_multiple_open(BYTES(0xff), &it, &n) < 0);
}

static void
test_missing_mandatory(void **state)
{
    static const uint8_t handle_null[] = {0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x40};
    static const uint8_t transfer0[] = {0x00, 0x53, 0x14, 0x45};
    static const uint8_t flow_short[] = {0x00, 0x53, 0x13, 0xc0, 0x03, 0x01, 0x52, 0x01};
    static const uint8_t attach_norole[] = {0x00, 0x53, 0x12, 0xc0, 0x05, 0x02,
                                            0xa1, 0x01, 'l', 0x43};
    static const uint8_t received_half[] = {0x00, 0x53, 0x23, 0xc0, 0x02, 0x01, 0x43};
    static const uint8_t mechs0[] = {0x00, 0x53, 0x40, 0x45};
    lep_transfer_t t;
    lep_flow_t f;
    lep_attach_t a;
    lep_received_t rc;
    lep_sasl_mechanisms_t m;
    lep_reader_t r;
    (void)state;

    lep_reader_init(&r, handle_null, sizeof handle_null);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_DECODE);
    lep_reader_init(&r, transfer0, sizeof transfer0);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_DECODE);
    lep_reader_init(&r, flow_short, sizeof flow_short);
    assert_int_equal(lep_flow_decode(&r, &f), LEP_ERR_DECODE);
    lep_reader_init(&r, attach_norole, sizeof attach_norole);
    assert_int_equal(lep_attach_decode(&r, &a), LEP_ERR_DECODE);
    lep_reader_init(&r, received_half, sizeof received_half);
    assert_int_equal(lep_received_decode(&r, &rc), LEP_ERR_DECODE);
    lep_reader_init(&r, mechs0, sizeof mechs0);
    assert_int_equal(lep_sasl_mechanisms_decode(&r, &m), LEP_ERR_DECODE);
}

static void
test_extra_trailing_fields(void **state)
{
    /* close: error null, then two fields a later version might add */
    static const uint8_t close_extra[] = {0x00, 0x53, 0x18, 0xc0, 0x05, 0x03, 0x40, 0x52, 0x07, 0x45};
    /* transfer with 13 fields: the 5 of TRANSFER_T, 6 nulls, a string and
     * an empty list, followed by a second value in the same input */
    static const uint8_t transfer_extra[] = {
        0x00, 0x53, 0x14, 0xc0, 0x16, 0x0d, TRANSFER_BODY,
        0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0xa1, 0x02, 'h', 'i', 0xc0, 0x01, 0x00,
        0x41};
    /* a malformed extra field is still malformed */
    static const uint8_t bad_extra[] = {0x00, 0x53, 0x18, 0xc0, 0x03, 0x02, 0x40, 0xff};
    lep_close_t c;
    lep_transfer_t t;
    lep_reader_t r;
    bool b;
    (void)state;

    lep_reader_init(&r, close_extra, sizeof close_extra);
    assert_int_equal(lep_close_decode(&r, &c), 0);
    assert_int_equal(c.present, 0);
    assert_true(lep_reader_done(&r));

    lep_reader_init(&r, transfer_extra, sizeof transfer_extra);
    assert_int_equal(lep_transfer_decode(&r, &t), 0);
    assert_int_equal(t.present, 0x1f);
    assert_int_equal(t.delivery_id, 5);
    assert_true(t.settled);
    assert_false(t.batchable);
    assert_int_equal(lep_read_bool(&r, &b), 0);
    assert_true(b);
    assert_true(lep_reader_done(&r));
    expect_truncation_fails(dec_transfer, transfer_extra,
                            sizeof transfer_extra - 1, sizeof t);

    lep_reader_init(&r, bad_extra, sizeof bad_extra);
    assert_true(lep_close_decode(&r, &c) < 0);
}

static void
test_malformed_lists(void **state)
{
    /* count says 3, the bytes hold 2 */
    static const uint8_t short_count[] = {0x00, 0x53, 0x14, 0xc0, 0x03, 0x03, 0x43, 0x43};
    /* size says 9, the input has 3 */
    static const uint8_t short_size[] = {0x00, 0x53, 0x14, 0xc0, 0x09, 0x05, 0x43, 0x43};
    /* an element that overruns its list */
    static const uint8_t overrun[] = {0x00, 0x53, 0x14, 0xc0, 0x03, 0x01, 0xa1, 0x05, 0x43,
                                      0x43, 0x43, 0x43, 0x43};
    /* bytes left in the list after its last element */
    static const uint8_t slack[] = {0x00, 0x53, 0x14, 0xc0, 0x03, 0x01, 0x43, 0x43};
    static const uint8_t slack32[] = {0x00, 0x53, 0x18, 0xd0, 0x00, 0x00, 0x00, 0x05,
                                      0x00, 0x00, 0x00, 0x00, 0x40};
    /* string field that is not UTF-8 */
    static const uint8_t bad_utf8[] = {0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, 0xff};
    lep_transfer_t t;
    lep_open_t o;
    lep_close_t c;
    lep_reader_t r;
    (void)state;

    lep_reader_init(&r, short_count, sizeof short_count);
    assert_true(lep_transfer_decode(&r, &t) < 0);
    lep_reader_init(&r, short_size, sizeof short_size);
    assert_true(lep_transfer_decode(&r, &t) < 0);
    lep_reader_init(&r, overrun, sizeof overrun);
    assert_true(lep_transfer_decode(&r, &t) < 0);
    lep_reader_init(&r, slack, sizeof slack);
    assert_int_equal(lep_transfer_decode(&r, &t), LEP_ERR_DECODE);
    lep_reader_init(&r, slack32, sizeof slack32);
    assert_int_equal(lep_close_decode(&r, &c), LEP_ERR_DECODE);
    lep_reader_init(&r, bad_utf8, sizeof bad_utf8);
    assert_int_equal(lep_open_decode(&r, &o), LEP_ERR_UTF8);
}

static void
test_truncated_vectors(void **state)
{
    static const uint8_t open[] = {OPEN_C1};
    static const uint8_t transfer[] = {TRANSFER_T};
    static const uint8_t disp[] = {DISPOSITION_ACC};
    static const uint8_t flow[] = {FLOW_T};
    static const uint8_t attach[] = {ATTACH_MIN};
    static const uint8_t close[] = {CLOSE_BOOM};
    static const uint8_t sasl[] = {SASL_INIT_PLAIN};
    static const struct {
        const uint8_t *p;
        size_t n;
    } v[] = {{open, sizeof open}, {transfer, sizeof transfer}, {disp, sizeof disp},
             {flow, sizeof flow}, {attach, sizeof attach}, {close, sizeof close}};
    size_t i;
    lep_performative_t p;
    lep_reader_t r;
    (void)state;

    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        lep_reader_init(&r, v[i].p, v[i].n);
        assert_int_equal(lep_performative_decode(&r, &p), 0);
        assert_true(lep_reader_done(&r));
        expect_truncation_fails(dec_performative, v[i].p, v[i].n, sizeof p);
    }
    expect_truncation_fails(dec_sasl_frame, sasl, sizeof sasl,
                            sizeof(lep_sasl_frame_t));
}

/* ------------------------------------------------------------------ */
/* Encoder errors                                                     */

static void
test_encode_refusals(void **state)
{
    uint8_t mem[8];
    lep_buf_t buf;
    lep_encoder_t e;
    lep_transfer_t t;
    lep_disposition_t d;
    lep_performative_t p;
    lep_open_t o;
    (void)state;

    /* mandatory handle absent: nothing written, the error is sticky */
    lep_transfer_init(&t);
    t.present = LEP_TRANSFER_HAS_DELIVERY_ID;
    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_transfer_encode(&e, &t), LEP_ERR_INVALID);
    assert_int_equal(buf.len, 0);
    assert_int_equal(lep_encoder_error(&e), LEP_ERR_INVALID);
    lep_encode_uint(&e, 1);
    assert_int_equal(buf.len, 0);

    /* a present view of an encoding must not be empty */
    lep_disposition_init(&d);
    d.present = LEP_DISPOSITION_MANDATORY | LEP_DISPOSITION_HAS_STATE;
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_disposition_encode(&e, &d), LEP_ERR_INVALID);

    /* bits past the last field are ignored */
    lep_transfer_init(&t);
    t.present = LEP_TRANSFER_HAS_HANDLE | UINT32_C(0x80000000);
    lep_buf_clear(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_transfer_encode(&e, &t), 0);
    EXPECT_BYTES(&buf, 0x00, 0x53, 0x14, 0xc0, 0x02, 0x01, 0x43);

    /* a string that is not UTF-8 is the encoder's error */
    lep_open_init(&o);
    o.container_id = BYTES(0xc3);
    o.present = LEP_OPEN_HAS_CONTAINER_ID;
    lep_buf_clear(&buf);
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_open_encode(&e, &o), LEP_ERR_UTF8);

    /* unknown union tag */
    p.code = LEP_DESC_HEADER;
    lep_encoder_init(&e, &buf);
    assert_int_equal(lep_performative_encode(&e, &p), LEP_ERR_INVALID);

    /* fixed buffer too small */
    lep_buf_fini(&buf);
    lep_buf_init_fixed(&buf, mem, sizeof mem);
    lep_encoder_init(&e, &buf);
    o.container_id = lep_bytes_str("a-container-id");
    assert_int_equal(lep_open_encode(&e, &o), LEP_ERR_OVERFLOW);
    lep_buf_fini(&buf);
}

/* ------------------------------------------------------------------ */
/* Descriptor table and constants                                     */

static void
test_descriptor_lookup(void **state)
{
    static const struct {
        const char *name, *symbol;
        uint64_t code;
        uint32_t nfields;
        const char *first_field;
    } known[] = {
        {"open", "amqp:open:list", 0x10, 10, "container-id"},
        {"transfer", "amqp:transfer:list", 0x14, 11, "handle"},
        {"close", "amqp:close:list", 0x18, 1, "error"},
        {"error", "amqp:error:list", 0x1d, 3, "condition"},
        {"accepted", "amqp:accepted:list", 0x24, 0, NULL},
        {"source", "amqp:source:list", 0x28, 11, "address"},
        {"delete-on-no-links-or-messages", "amqp:delete-on-no-links-or-messages:list", 0x2e, 0, NULL},
        {"transactional-state", "amqp:transactional-state:list", 0x34, 2, "txn-id"},
        {"sasl-mechanisms", "amqp:sasl-mechanisms:list", 0x40, 1, "sasl-server-mechanisms"},
        {"sasl-outcome", "amqp:sasl-outcome:list", 0x44, 2, "code"},
        {"header", "amqp:header:list", 0x70, 5, "durable"},
        {"delivery-annotations", "amqp:delivery-annotations:map", 0x71, 0, NULL},
        {"message-annotations", "amqp:message-annotations:map", 0x72, 0, NULL},
        {"properties", "amqp:properties:list", 0x73, 13, "message-id"},
        {"application-properties", "amqp:application-properties:map", 0x74, 0, NULL},
        {"data", "amqp:data:binary", 0x75, 0, NULL},
        {"amqp-sequence", "amqp:amqp-sequence:list", 0x76, 0, NULL},
        {"amqp-value", "amqp:amqp-value:*", 0x77, 0, NULL},
        {"footer", "amqp:footer:map", 0x78, 0, NULL},
    };
    static const uint64_t unknown[] = {0, 0x0f, 0x19, 0x1c, 0x1e, 0x2a, 0x35, 0x45, 0x79,
                                       0x100, UINT64_C(0x100000014), UINT64_MAX};
    const lep_descriptor_info_t *d;
    size_t i;
    uint64_t code;
    unsigned count = 0;
    (void)state;

    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        d = lep_descriptor_lookup(known[i].code);
        assert_non_null(d);
        assert_string_equal(d->name, known[i].name);
        assert_int_equal(d->code, known[i].code);
        assert_int_equal(d->nfields, known[i].nfields);
        if (known[i].first_field)
            assert_string_equal(d->fields[0], known[i].first_field);
        assert_ptr_equal(lep_descriptor_lookup_name(lep_bytes_str(known[i].symbol)), d);
    }
    d = lep_descriptor_lookup(LEP_DESC_TRANSFER);
    assert_string_equal(d->fields[10], "batchable");
    assert_string_equal(d->fields[2], "delivery-tag");
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_null(lep_descriptor_lookup(unknown[i]));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("amqp:transfer:lis")));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("amqp:transfer:list ")));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("transfer")));
    assert_null(lep_descriptor_lookup_name(lep_bytes_str("")));
    assert_null(lep_descriptor_lookup_name((lep_bytes_t){NULL, 0}));

    /* every code the table knows maps back to itself by name */
    for (code = 0; code < 0x100; code++) {
        d = lep_descriptor_lookup(code);
        if (d == NULL)
            continue;
        count++;
        assert_int_equal(d->code, code);
    }
    assert_int_equal(count, 33 + 7);
}

static void
test_constants(void **state)
{
    (void)state;
    assert_string_equal(LEP_AMQP_ERR_DECODE_ERROR, "amqp:decode-error");
    assert_string_equal(LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR, "amqp:connection:framing-error");
    assert_string_equal(LEP_AMQP_ERR_LINK_REDIRECT, "amqp:link:redirect");
    assert_string_equal(LEP_AMQP_ERR_CONNECTION_REDIRECT, "amqp:connection:redirect");
    assert_string_equal(LEP_AMQP_ERR_SESSION_WINDOW_VIOLATION, "amqp:session:window-violation");
    assert_string_equal(LEP_AMQP_ERR_TRANSACTION_ROLLBACK, "amqp:transaction:rollback");
    assert_string_equal(LEP_TERMINUS_EXPIRY_POLICY_LINK_DETACH, "link-detach");
    assert_string_equal(LEP_STD_DIST_MODE_COPY, "copy");
    assert_string_equal(LEP_TXN_CAPABILITY_LOCAL_TRANSACTIONS, "amqp:local-transactions");
    assert_string_equal(LEP_DESC_SYM_TRANSFER, "amqp:transfer:list");
    assert_int_equal(LEP_ROLE_SENDER, 0);
    assert_int_equal(LEP_ROLE_RECEIVER, 1);
    assert_int_equal(LEP_SND_SETTLE_UNSETTLED, 0);
    assert_int_equal(LEP_SND_SETTLE_SETTLED, 1);
    assert_int_equal(LEP_SND_SETTLE_MIXED, 2);
    assert_int_equal(LEP_RCV_SETTLE_SECOND, 1);
    assert_int_equal(LEP_TERMINUS_DURABILITY_CONFIGURATION, 1);
    assert_int_equal(LEP_SASL_CODE_SYS_TEMP, 4);
    assert_int_equal(LEP_DESC_TRANSFER, 0x14);
    assert_int_equal(LEP_DESC_SASL_OUTCOME, 0x44);
    assert_int_equal(LEP_DESC_FOOTER, 0x78);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_container_id_only),
        cmocka_unit_test(test_transfer_bytes),
        cmocka_unit_test(test_disposition_and_flow_bytes),
        cmocka_unit_test(test_close_with_error_bytes),
        cmocka_unit_test(test_sasl_and_attach_bytes),
        cmocka_unit_test(test_attach_with_source),
        cmocka_unit_test(test_symbolic_descriptor),
        cmocka_unit_test(test_list_forms),
        cmocka_unit_test(test_decode_list_after_descriptor),
        cmocka_unit_test(test_wrong_descriptor),
        cmocka_unit_test(test_wrong_field_type),
        cmocka_unit_test(test_single_value_for_multiple),
        cmocka_unit_test(test_missing_mandatory),
        cmocka_unit_test(test_extra_trailing_fields),
        cmocka_unit_test(test_malformed_lists),
        cmocka_unit_test(test_truncated_vectors),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_descriptor_lookup),
        cmocka_unit_test(test_constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
