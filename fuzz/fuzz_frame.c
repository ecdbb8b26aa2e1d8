/* Fuzz target: a connection's byte stream as a peer sends it -- protocol
 * headers and frames -- through the frame layer and the generated
 * performative, SASL, delivery-state, terminus and error decoders.
 *
 * Invariants checked for any input:
 *   - lep_proto_header_parse accepts exactly the three AMQP 1.0 headers,
 *     and lep_proto_header_write gives the same 8 bytes back;
 *   - lep_frame_parse returns views inside the input that add up to the
 *     frame size, and rebuilding the frame (lep_frame_append) gives its
 *     bytes back;
 *   - every frame body that decodes re-encodes, and the re-encoding
 *     decodes and encodes to the same bytes (fixed point), for the
 *     performative and for the composite values inside it;
 *   - the body prints in every form.
 * A broken invariant aborts (a crash for libFuzzer, a failure for the
 * corpus replay test). */
/* message.h before amqp_types.h: both name the section descriptors
 * (an enum there, macros here), which only compiles in this order. */
#include <lepton/message.h>
#include <lepton/amqp_types.h>
#include <lepton/codec.h>
#include <lepton/frame.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n",         \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* The limit lepton announces is configurable; 1 MiB keeps runs fast while
 * still exercising the frame-size check. */
#define MAX_FRAME (1u << 20)

static bool
same(const lep_buf_t *a, const lep_buf_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Decodes raw with decode(), and when it succeeds checks that encode()
 * round-trips to a fixed point.  T is the generated struct type. */
#define ROUND_TRIP(T, decode, encode, raw, ...)                              \
    do {                                                                     \
        lep_reader_t r_;                                                     \
        T v1_, v2_;                                                          \
        lep_reader_init(&r_, (raw).ptr, (raw).len);                          \
        if (decode(&r_, &v1_) == 0) {                                        \
            lep_buf_t e1_, e2_;                                              \
            lep_encoder_t enc_;                                              \
            lep_buf_init(&e1_);                                              \
            lep_buf_init(&e2_);                                              \
            lep_encoder_init(&enc_, &e1_);                                   \
            CHECK(encode(&enc_, &v1_) == 0);                                 \
            lep_reader_init(&r_, e1_.data, e1_.len);                         \
            CHECK(decode(&r_, &v2_) == 0);                                   \
            CHECK(lep_reader_offset(&r_, e1_.data) == e1_.len);              \
            lep_encoder_init(&enc_, &e2_);                                   \
            CHECK(encode(&enc_, &v2_) == 0);                                 \
            CHECK(same(&e1_, &e2_));                                         \
            __VA_ARGS__;                                                     \
            lep_buf_fini(&e1_);                                              \
            lep_buf_fini(&e2_);                                              \
        }                                                                    \
    } while (0)

/* symbol[] fields: an array of symbols or one symbol. */
static void
walk_symbols(lep_bytes_t raw)
{
    lep_reader_t it;
    uint32_t n;
    if (raw.len == 0 || lep_multiple_open(raw, &it, &n) != 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        lep_bytes_t s;
        if (lep_read_symbol(&it, &s) != 0)
            return;
        CHECK(s.ptr >= raw.ptr && s.ptr + s.len <= raw.ptr + raw.len);
    }
}

static void
check_error(lep_bytes_t raw)
{
    if (raw.len)
        ROUND_TRIP(lep_error_t, lep_error_decode, lep_error_encode, raw, (void)0);
}

static void
check_state(lep_bytes_t raw)
{
    if (raw.len == 0)
        return;
    ROUND_TRIP(lep_delivery_state_t, lep_delivery_state_decode, lep_delivery_state_encode,
               raw, {
                   if (v1_.code == LEP_DESC_REJECTED)
                       check_error(v1_.u.rejected.error);
               });
}

static void
check_source(lep_bytes_t raw)
{
    if (raw.len == 0)
        return;
    ROUND_TRIP(lep_source_t, lep_source_decode, lep_source_encode, raw, {
        walk_symbols(v1_.outcomes);
        walk_symbols(v1_.capabilities);
        check_state(v1_.default_outcome);
    });
}

static void
check_target(lep_bytes_t raw)
{
    if (raw.len == 0)
        return;
    ROUND_TRIP(lep_target_t, lep_target_decode, lep_target_encode, raw,
               walk_symbols(v1_.capabilities));
}

static void
check_fields(const lep_performative_t *p)
{
    switch (p->code) {
    case LEP_DESC_OPEN:
        walk_symbols(p->u.open.outgoing_locales);
        walk_symbols(p->u.open.incoming_locales);
        walk_symbols(p->u.open.offered_capabilities);
        walk_symbols(p->u.open.desired_capabilities);
        break;
    case LEP_DESC_BEGIN:
        walk_symbols(p->u.begin.offered_capabilities);
        walk_symbols(p->u.begin.desired_capabilities);
        break;
    case LEP_DESC_ATTACH:
        /* The role says which terminus is which; both are tried. */
        check_source(p->u.attach.source);
        check_target(p->u.attach.target);
        walk_symbols(p->u.attach.offered_capabilities);
        walk_symbols(p->u.attach.desired_capabilities);
        break;
    case LEP_DESC_TRANSFER:
        check_state(p->u.transfer.state);
        break;
    case LEP_DESC_DISPOSITION:
        check_state(p->u.disposition.state);
        break;
    case LEP_DESC_DETACH:
        check_error(p->u.detach.error);
        break;
    case LEP_DESC_END:
        check_error(p->u.end.error);
        break;
    case LEP_DESC_CLOSE:
        check_error(p->u.close.error);
        break;
    default:
        break;
    }
}

static void
check_amqp_body(lep_bytes_t body)
{
    lep_reader_t r;
    lep_performative_t p1, p2;
    lep_reader_init(&r, body.ptr, body.len);
    if (lep_performative_decode(&r, &p1) != 0)
        return;
    size_t used = lep_reader_offset(&r, body.ptr);
    CHECK(used <= body.len);

    lep_buf_t e1, e2;
    lep_encoder_t e;
    lep_buf_init(&e1);
    lep_buf_init(&e2);
    lep_encoder_init(&e, &e1);
    CHECK(lep_performative_encode(&e, &p1) == 0);
    lep_reader_init(&r, e1.data, e1.len);
    CHECK(lep_performative_decode(&r, &p2) == 0);
    CHECK(p2.code == p1.code);
    CHECK(lep_reader_offset(&r, e1.data) == e1.len);
    lep_encoder_init(&e, &e2);
    CHECK(lep_performative_encode(&e, &p2) == 0);
    CHECK(same(&e1, &e2));
    lep_buf_fini(&e1);
    lep_buf_fini(&e2);

    check_fields(&p1);

    /* A whole message in one transfer: the payload is a message. */
    if (p1.code == LEP_DESC_TRANSFER && !p1.u.transfer.more && used < body.len) {
        lep_message_t *m;
        CHECK(lep_message_new(&m) == 0);
        if (lep_message_decode(m, body.ptr + used, body.len - used) == 0) {
            lep_buf_t enc;
            lep_buf_init(&enc);
            CHECK(lep_message_encode(m, &enc) == 0);
            lep_buf_fini(&enc);
        }
        lep_message_free(m);
    }
}

static void
check_sasl_body(lep_bytes_t body)
{
    ROUND_TRIP(lep_sasl_frame_t, lep_sasl_frame_decode, lep_sasl_frame_encode, body, {
        if (v1_.code == LEP_DESC_SASL_MECHANISMS)
            walk_symbols(v1_.u.sasl_mechanisms.sasl_server_mechanisms);
    });
}

static void
print_body(lep_bytes_t body)
{
    static const int flags[] = {LEP_PRINT_DEFAULT, LEP_PRINT_INDENT, LEP_PRINT_TYPED};
    lep_buf_t out;
    lep_buf_init(&out);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        lep_reader_t r;
        lep_reader_init(&r, body.ptr, body.len);
        size_t before = out.len;
        if (lep_print_encoded(&r, &out, flags[i]) != 0)
            CHECK(out.len == before); /* a failed print leaves out as it was */
    }
    lep_buf_fini(&out);
}

static void
check_frame(const uint8_t *p, size_t avail, const lep_frame_t *f, size_t used)
{
    CHECK(used == f->size && used >= LEP_FRAME_HEADER_SIZE && used <= avail);
    CHECK(f->size <= MAX_FRAME);
    CHECK(f->doff >= 2 && (size_t)f->doff * 4 <= f->size);
    CHECK(f->ext.ptr == p + LEP_FRAME_HEADER_SIZE);
    CHECK(f->ext.len == (size_t)f->doff * 4 - LEP_FRAME_HEADER_SIZE);
    CHECK(f->body.ptr == p + (size_t)f->doff * 4);
    CHECK(f->body.len == f->size - (size_t)f->doff * 4);
    CHECK(lep_frame_is_empty(f) == (f->body.len == 0));

    if (f->doff == 2) {
        lep_buf_t b;
        lep_buf_init(&b);
        CHECK(lep_frame_append(&b, f->type, f->channel, f->body, LEP_BYTES(NULL, 0),
                               MAX_FRAME) == 0);
        CHECK(b.len == used);
        /* SASL frames ignore the channel field. */
        size_t hdr = f->type == LEP_FRAME_SASL ? 6 : LEP_FRAME_HEADER_SIZE;
        CHECK(memcmp(b.data, p, hdr) == 0);
        CHECK(memcmp(b.data + 8, p + 8, used - 8) == 0);
        lep_buf_fini(&b);

        uint8_t h[LEP_FRAME_HEADER_SIZE];
        CHECK(lep_frame_header_write(h, f->type, f->channel, f->body.len) == 0);
        CHECK(memcmp(h, p, hdr) == 0);
    }

    if (f->body.len == 0)
        return;
    print_body(f->body);
    if (f->type == LEP_FRAME_AMQP)
        check_amqp_body(f->body);
    else if (f->type == LEP_FRAME_SASL)
        check_sasl_body(f->body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        const uint8_t *p = data + off;
        size_t avail = size - off;

        /* A protocol header at the start, and again after SASL. */
        if (p[0] == 'A') {
            lep_proto_header_t h;
            int id = lep_proto_header_parse(p, avail, &h);
            CHECK(h.nraw <= LEP_PROTO_HEADER_SIZE && h.nraw <= avail);
            CHECK(memcmp(h.raw, p, h.nraw) == 0);
            if (id < 0) {
                CHECK(id == LEP_ERR_INCOMPLETE || id == LEP_ERR_FRAMING);
                CHECK(id != LEP_ERR_INCOMPLETE || avail < LEP_PROTO_HEADER_SIZE);
                return 0;
            }
            CHECK(id == LEP_PROTO_AMQP || id == LEP_PROTO_TLS || id == LEP_PROTO_SASL);
            uint8_t w[LEP_PROTO_HEADER_SIZE];
            CHECK(lep_proto_header_write(w, (lep_proto_id_t)id) == 0);
            CHECK(memcmp(w, p, LEP_PROTO_HEADER_SIZE) == 0);
            CHECK(lep_proto_name(id) != NULL);
            off += LEP_PROTO_HEADER_SIZE;
            continue;
        }

        lep_frame_t f;
        size_t used = 0;
        int rc = lep_frame_parse(p, avail, MAX_FRAME, &f, &used);
        if (rc == LEP_ERR_INCOMPLETE) {
            /* It says how much it needs, and that is more than there is. */
            CHECK(used > avail);
            return 0;
        }
        if (rc != 0) {
            CHECK(rc == LEP_ERR_FRAMING || rc == LEP_ERR_FRAME_SIZE);
            return 0;
        }
        check_frame(p, avail, &f, used);
        off += used;
    }
    return 0;
}
