/* Round trip of every generated AMQP 1.0 composite type, field by field,
 * and a differential check of the decoders against the generic codec.
 *
 * Every field of every composite is described here once more,
 * independently of the generator: its member, its position (through its
 * HAS bit) and its AMQP type.  Encodings are compared element by element
 * with values built by the generic value codec (lep_value_t), so a field
 * written at the wrong position, with the wrong type or a wrong value
 * fails. */
#include <lepton/amqp_types.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* error: amqp:internal-error, "boom" */
#define ERROR_BOOM                                                              \
    0x00, 0x53, 0x1d, 0xc0, 0x1c, 0x02, 0xa3, 0x13, 'a', 'm', 'q', 'p', ':',     \
        'i', 'n', 't', 'e', 'r', 'n', 'a', 'l', '-', 'e', 'r', 'r', 'o', 'r',     \
        0xa1, 0x04, 'b', 'o', 'o', 'm'

static void
expect_bytes(const lep_buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len != n || memcmp(b->data, p, n) != 0)
        fail_msg("encoding differs (%zu bytes, expected %zu)", b->len, n);
}

/* Every proper prefix of a value must fail to decode, never crash or
 * succeed. */
static void
expect_truncation_fails(int (*dec)(lep_reader_t *, void *), const uint8_t *p, size_t n,
                        size_t size)
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

/* ------------------------------------------------------------------ */
/* Round trip of every composite type                                 */

/* Encodings used for fields that are views of an encoded value. */
static const uint8_t raw_syms[] = {0xe0, 0x08, 0x02, 0xa3, 0x02, 'a', 'b', 0x02, 'c', 'd'};
static const uint8_t raw_map[] = {0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x52, 0x01};
static const uint8_t raw_desc[] = {0x00, 0x53, 0x24, 0x45};
static const uint8_t raw_err[] = {ERROR_BOOM};
static const uint8_t raw_any[] = {0xa1, 0x02, 'i', 'd'};
static const uint8_t raw_txn[] = {0xa0, 0x02, 0x01, 0x02};
#define RAW(a) LEP_BYTES(a, sizeof a)

/* Typed wrappers, so that tests call each decoder through a pointer of
 * its own type. */
#define WRAP(n)                                                                   \
    static void init_##n(void *p) { lep_##n##_init(p); }                          \
    static int enc_##n(lep_encoder_t *e, const void *p) { return lep_##n##_encode(e, p); } \
    static int dec_##n(lep_reader_t *r, void *p) { return lep_##n##_decode(r, p); } \
    static int decl_##n(lep_reader_t *r, void *p) { return lep_##n##_decode_list(r, p); }

WRAP(open) WRAP(begin) WRAP(attach) WRAP(flow) WRAP(transfer) WRAP(disposition)
WRAP(detach) WRAP(end) WRAP(close) WRAP(error) WRAP(header) WRAP(properties)
WRAP(received) WRAP(accepted) WRAP(rejected) WRAP(released) WRAP(modified)
WRAP(source) WRAP(target) WRAP(delete_on_close) WRAP(delete_on_no_links)
WRAP(delete_on_no_messages) WRAP(delete_on_no_links_or_messages)
WRAP(sasl_mechanisms) WRAP(sasl_init) WRAP(sasl_challenge) WRAP(sasl_response)
WRAP(sasl_outcome) WRAP(coordinator) WRAP(declare) WRAP(discharge) WRAP(declared)
WRAP(transactional_state)

static const char *const texts[32] = {
    "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10",
    "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19", "v20",
    "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31"};

/* A value that tells the field position apart, of each width. */
static uint64_t
uval(lep_type_t t, int i)
{
    switch (t) {
    case LEP_TYPE_UBYTE:  return 0x10 + (uint64_t)i;
    case LEP_TYPE_USHORT: return 0x1000 + (uint64_t)i;
    case LEP_TYPE_UINT:   return 0x100000 + (uint64_t)i;
    default:              return (UINT64_C(1) << 40) + (uint64_t)i;
    }
}

static lep_value_t *
raw_tree(lep_bytes_t raw)
{
    lep_value_t *v = NULL;

    assert_int_equal(lep_value_decode(raw.ptr, raw.len, false, &v, NULL), 0);
    return v;
}

typedef struct fill {
    uint32_t mask;
    lep_value_t *exp[32]; /* expected list element for each set field */
} fill_t;

/* Sets member m (field F of type T) when its bit is in the mask and
 * records what the encoder must write at that position. */
#define SETF(T, F, assign, expv)                 \
    do {                                         \
        uint32_t bit_ = LEP_##T##_HAS_##F;       \
        if (fc->mask & bit_) {                   \
            int i_ = __builtin_ctz(bit_);        \
            (void)i_;                            \
            assign;                              \
            s->present |= bit_;                  \
            fc->exp[i_] = (expv);                \
            assert_non_null(fc->exp[i_]);        \
        }                                        \
    } while (0)

#define FU(T, F, m, lt) \
    SETF(T, F, s->m = (__typeof__(s->m))uval(lt, i_), lep_value_new_uint64(lt, uval(lt, i_)))
/* booleans alternate with the position so that neighbours differ */
#define FBOOL(T, F, m) \
    SETF(T, F, s->m = (i_ % 2 == 0), lep_value_new_uint64(LEP_TYPE_BOOL, i_ % 2 == 0))
#define FTS(T, F, m) \
    SETF(T, F, s->m = 1700000000000 + i_, lep_value_new_int64(LEP_TYPE_TIMESTAMP, 1700000000000 + i_))
#define FBY(T, F, m, lt)                      \
    SETF(T, F, s->m = lep_bytes_str(texts[i_]), \
         lep_value_new_bytes(lt, texts[i_], strlen(texts[i_])))
#define FRAW(T, F, m, r) SETF(T, F, s->m = RAW(r), raw_tree(RAW(r)))

static void
fill_open(void *p, fill_t *fc)
{
    lep_open_t *s = p;
    FBY(OPEN, CONTAINER_ID, container_id, LEP_TYPE_STRING);
    FBY(OPEN, HOSTNAME, hostname, LEP_TYPE_STRING);
    FU(OPEN, MAX_FRAME_SIZE, max_frame_size, LEP_TYPE_UINT);
    FU(OPEN, CHANNEL_MAX, channel_max, LEP_TYPE_USHORT);
    FU(OPEN, IDLE_TIME_OUT, idle_time_out, LEP_TYPE_UINT);
    FRAW(OPEN, OUTGOING_LOCALES, outgoing_locales, raw_syms);
    FRAW(OPEN, INCOMING_LOCALES, incoming_locales, raw_syms);
    FRAW(OPEN, OFFERED_CAPABILITIES, offered_capabilities, raw_syms);
    FRAW(OPEN, DESIRED_CAPABILITIES, desired_capabilities, raw_syms);
    FRAW(OPEN, PROPERTIES, properties, raw_map);
}

static void
fill_begin(void *p, fill_t *fc)
{
    lep_begin_t *s = p;
    FU(BEGIN, REMOTE_CHANNEL, remote_channel, LEP_TYPE_USHORT);
    FU(BEGIN, NEXT_OUTGOING_ID, next_outgoing_id, LEP_TYPE_UINT);
    FU(BEGIN, INCOMING_WINDOW, incoming_window, LEP_TYPE_UINT);
    FU(BEGIN, OUTGOING_WINDOW, outgoing_window, LEP_TYPE_UINT);
    FU(BEGIN, HANDLE_MAX, handle_max, LEP_TYPE_UINT);
    FRAW(BEGIN, OFFERED_CAPABILITIES, offered_capabilities, raw_syms);
    FRAW(BEGIN, DESIRED_CAPABILITIES, desired_capabilities, raw_syms);
    FRAW(BEGIN, PROPERTIES, properties, raw_map);
}

static void
fill_attach(void *p, fill_t *fc)
{
    lep_attach_t *s = p;
    FBY(ATTACH, NAME, name, LEP_TYPE_STRING);
    FU(ATTACH, HANDLE, handle, LEP_TYPE_UINT);
    FBOOL(ATTACH, ROLE, role);
    FU(ATTACH, SND_SETTLE_MODE, snd_settle_mode, LEP_TYPE_UBYTE);
    FU(ATTACH, RCV_SETTLE_MODE, rcv_settle_mode, LEP_TYPE_UBYTE);
    FRAW(ATTACH, SOURCE, source, raw_desc);
    FRAW(ATTACH, TARGET, target, raw_desc);
    FRAW(ATTACH, UNSETTLED, unsettled, raw_map);
    FBOOL(ATTACH, INCOMPLETE_UNSETTLED, incomplete_unsettled);
    FU(ATTACH, INITIAL_DELIVERY_COUNT, initial_delivery_count, LEP_TYPE_UINT);
    FU(ATTACH, MAX_MESSAGE_SIZE, max_message_size, LEP_TYPE_ULONG);
    FRAW(ATTACH, OFFERED_CAPABILITIES, offered_capabilities, raw_syms);
    FRAW(ATTACH, DESIRED_CAPABILITIES, desired_capabilities, raw_syms);
    FRAW(ATTACH, PROPERTIES, properties, raw_map);
}

static void
fill_flow(void *p, fill_t *fc)
{
    lep_flow_t *s = p;
    FU(FLOW, NEXT_INCOMING_ID, next_incoming_id, LEP_TYPE_UINT);
    FU(FLOW, INCOMING_WINDOW, incoming_window, LEP_TYPE_UINT);
    FU(FLOW, NEXT_OUTGOING_ID, next_outgoing_id, LEP_TYPE_UINT);
    FU(FLOW, OUTGOING_WINDOW, outgoing_window, LEP_TYPE_UINT);
    FU(FLOW, HANDLE, handle, LEP_TYPE_UINT);
    FU(FLOW, DELIVERY_COUNT, delivery_count, LEP_TYPE_UINT);
    FU(FLOW, LINK_CREDIT, link_credit, LEP_TYPE_UINT);
    FU(FLOW, AVAILABLE, available, LEP_TYPE_UINT);
    FBOOL(FLOW, DRAIN, drain);
    FBOOL(FLOW, ECHO, echo);
    FRAW(FLOW, PROPERTIES, properties, raw_map);
}

static void
fill_transfer(void *p, fill_t *fc)
{
    lep_transfer_t *s = p;
    FU(TRANSFER, HANDLE, handle, LEP_TYPE_UINT);
    FU(TRANSFER, DELIVERY_ID, delivery_id, LEP_TYPE_UINT);
    FBY(TRANSFER, DELIVERY_TAG, delivery_tag, LEP_TYPE_BINARY);
    FU(TRANSFER, MESSAGE_FORMAT, message_format, LEP_TYPE_UINT);
    FBOOL(TRANSFER, SETTLED, settled);
    FBOOL(TRANSFER, MORE, more);
    FU(TRANSFER, RCV_SETTLE_MODE, rcv_settle_mode, LEP_TYPE_UBYTE);
    FRAW(TRANSFER, STATE, state, raw_desc);
    FBOOL(TRANSFER, RESUME, resume);
    FBOOL(TRANSFER, ABORTED, aborted);
    FBOOL(TRANSFER, BATCHABLE, batchable);
}

static void
fill_disposition(void *p, fill_t *fc)
{
    lep_disposition_t *s = p;
    FBOOL(DISPOSITION, ROLE, role);
    FU(DISPOSITION, FIRST, first, LEP_TYPE_UINT);
    FU(DISPOSITION, LAST, last, LEP_TYPE_UINT);
    FBOOL(DISPOSITION, SETTLED, settled);
    FRAW(DISPOSITION, STATE, state, raw_desc);
    FBOOL(DISPOSITION, BATCHABLE, batchable);
}

static void
fill_detach(void *p, fill_t *fc)
{
    lep_detach_t *s = p;
    FU(DETACH, HANDLE, handle, LEP_TYPE_UINT);
    FBOOL(DETACH, CLOSED, closed);
    FRAW(DETACH, ERROR, error, raw_err);
}

static void
fill_end(void *p, fill_t *fc)
{
    lep_end_t *s = p;
    FRAW(END, ERROR, error, raw_err);
}

static void
fill_close(void *p, fill_t *fc)
{
    lep_close_t *s = p;
    FRAW(CLOSE, ERROR, error, raw_err);
}

static void
fill_error(void *p, fill_t *fc)
{
    lep_error_t *s = p;
    FBY(ERROR, CONDITION, condition, LEP_TYPE_SYMBOL);
    FBY(ERROR, DESCRIPTION, description, LEP_TYPE_STRING);
    FRAW(ERROR, INFO, info, raw_map);
}

static void
fill_header(void *p, fill_t *fc)
{
    lep_header_t *s = p;
    FBOOL(HEADER, DURABLE, durable);
    FU(HEADER, PRIORITY, priority, LEP_TYPE_UBYTE);
    FU(HEADER, TTL, ttl, LEP_TYPE_UINT);
    FBOOL(HEADER, FIRST_ACQUIRER, first_acquirer);
    FU(HEADER, DELIVERY_COUNT, delivery_count, LEP_TYPE_UINT);
}

static void
fill_properties(void *p, fill_t *fc)
{
    lep_properties_t *s = p;
    FRAW(PROPERTIES, MESSAGE_ID, message_id, raw_any);
    FBY(PROPERTIES, USER_ID, user_id, LEP_TYPE_BINARY);
    FRAW(PROPERTIES, TO, to, raw_any);
    FBY(PROPERTIES, SUBJECT, subject, LEP_TYPE_STRING);
    FRAW(PROPERTIES, REPLY_TO, reply_to, raw_any);
    FRAW(PROPERTIES, CORRELATION_ID, correlation_id, raw_txn);
    FBY(PROPERTIES, CONTENT_TYPE, content_type, LEP_TYPE_SYMBOL);
    FBY(PROPERTIES, CONTENT_ENCODING, content_encoding, LEP_TYPE_SYMBOL);
    FTS(PROPERTIES, ABSOLUTE_EXPIRY_TIME, absolute_expiry_time);
    FTS(PROPERTIES, CREATION_TIME, creation_time);
    FBY(PROPERTIES, GROUP_ID, group_id, LEP_TYPE_STRING);
    FU(PROPERTIES, GROUP_SEQUENCE, group_sequence, LEP_TYPE_UINT);
    FBY(PROPERTIES, REPLY_TO_GROUP_ID, reply_to_group_id, LEP_TYPE_STRING);
}

static void
fill_received(void *p, fill_t *fc)
{
    lep_received_t *s = p;
    FU(RECEIVED, SECTION_NUMBER, section_number, LEP_TYPE_UINT);
    FU(RECEIVED, SECTION_OFFSET, section_offset, LEP_TYPE_ULONG);
}

static void
fill_rejected(void *p, fill_t *fc)
{
    lep_rejected_t *s = p;
    FRAW(REJECTED, ERROR, error, raw_err);
}

static void
fill_modified(void *p, fill_t *fc)
{
    lep_modified_t *s = p;
    FBOOL(MODIFIED, DELIVERY_FAILED, delivery_failed);
    FBOOL(MODIFIED, UNDELIVERABLE_HERE, undeliverable_here);
    FRAW(MODIFIED, MESSAGE_ANNOTATIONS, message_annotations, raw_map);
}

static void
fill_source(void *p, fill_t *fc)
{
    lep_source_t *s = p;
    FRAW(SOURCE, ADDRESS, address, raw_any);
    FU(SOURCE, DURABLE, durable, LEP_TYPE_UINT);
    FBY(SOURCE, EXPIRY_POLICY, expiry_policy, LEP_TYPE_SYMBOL);
    FU(SOURCE, TIMEOUT, timeout, LEP_TYPE_UINT);
    FBOOL(SOURCE, DYNAMIC, dynamic);
    FRAW(SOURCE, DYNAMIC_NODE_PROPERTIES, dynamic_node_properties, raw_map);
    FBY(SOURCE, DISTRIBUTION_MODE, distribution_mode, LEP_TYPE_SYMBOL);
    FRAW(SOURCE, FILTER, filter, raw_map);
    FRAW(SOURCE, DEFAULT_OUTCOME, default_outcome, raw_desc);
    FRAW(SOURCE, OUTCOMES, outcomes, raw_syms);
    FRAW(SOURCE, CAPABILITIES, capabilities, raw_syms);
}

static void
fill_target(void *p, fill_t *fc)
{
    lep_target_t *s = p;
    FRAW(TARGET, ADDRESS, address, raw_any);
    FU(TARGET, DURABLE, durable, LEP_TYPE_UINT);
    FBY(TARGET, EXPIRY_POLICY, expiry_policy, LEP_TYPE_SYMBOL);
    FU(TARGET, TIMEOUT, timeout, LEP_TYPE_UINT);
    FBOOL(TARGET, DYNAMIC, dynamic);
    FRAW(TARGET, DYNAMIC_NODE_PROPERTIES, dynamic_node_properties, raw_map);
    FRAW(TARGET, CAPABILITIES, capabilities, raw_syms);
}

static void
fill_none(void *p, fill_t *fc)
{
    (void)p;
    (void)fc;
}

static void
fill_sasl_mechanisms(void *p, fill_t *fc)
{
    lep_sasl_mechanisms_t *s = p;
    FRAW(SASL_MECHANISMS, SASL_SERVER_MECHANISMS, sasl_server_mechanisms, raw_syms);
}

static void
fill_sasl_init(void *p, fill_t *fc)
{
    lep_sasl_init_t *s = p;
    FBY(SASL_INIT, MECHANISM, mechanism, LEP_TYPE_SYMBOL);
    FBY(SASL_INIT, INITIAL_RESPONSE, initial_response, LEP_TYPE_BINARY);
    FBY(SASL_INIT, HOSTNAME, hostname, LEP_TYPE_STRING);
}

static void
fill_sasl_challenge(void *p, fill_t *fc)
{
    lep_sasl_challenge_t *s = p;
    FBY(SASL_CHALLENGE, CHALLENGE, challenge, LEP_TYPE_BINARY);
}

static void
fill_sasl_response(void *p, fill_t *fc)
{
    lep_sasl_response_t *s = p;
    FBY(SASL_RESPONSE, RESPONSE, response, LEP_TYPE_BINARY);
}

static void
fill_sasl_outcome(void *p, fill_t *fc)
{
    lep_sasl_outcome_t *s = p;
    FU(SASL_OUTCOME, CODE, code, LEP_TYPE_UBYTE);
    FBY(SASL_OUTCOME, ADDITIONAL_DATA, additional_data, LEP_TYPE_BINARY);
}

static void
fill_coordinator(void *p, fill_t *fc)
{
    lep_coordinator_t *s = p;
    FRAW(COORDINATOR, CAPABILITIES, capabilities, raw_syms);
}

static void
fill_declare(void *p, fill_t *fc)
{
    lep_declare_t *s = p;
    FRAW(DECLARE, GLOBAL_ID, global_id, raw_any);
}

static void
fill_discharge(void *p, fill_t *fc)
{
    lep_discharge_t *s = p;
    FRAW(DISCHARGE, TXN_ID, txn_id, raw_txn);
    FBOOL(DISCHARGE, FAIL, fail);
}

static void
fill_declared(void *p, fill_t *fc)
{
    lep_declared_t *s = p;
    FRAW(DECLARED, TXN_ID, txn_id, raw_txn);
}

static void
fill_transactional_state(void *p, fill_t *fc)
{
    lep_transactional_state_t *s = p;
    FRAW(TRANSACTIONAL_STATE, TXN_ID, txn_id, raw_txn);
    FRAW(TRANSACTIONAL_STATE, OUTCOME, outcome, raw_desc);
}

enum { U_NONE, U_PERF, U_SASL, U_STATE };

typedef struct ty {
    const char *name;
    uint64_t code;
    size_t size;
    uint32_t all, mandatory;
    int un;
    void (*init)(void *);
    void (*fill)(void *, fill_t *);
    int (*enc)(lep_encoder_t *, const void *);
    int (*dec)(lep_reader_t *, void *);
    int (*decl)(lep_reader_t *, void *);
} ty_t;

#define TY(n, N, fillfn, un)                                                     \
    {#n, LEP_DESC_##N, sizeof(lep_##n##_t), LEP_##N##_ALL, LEP_##N##_MANDATORY,   \
     un, init_##n, fillfn, enc_##n, dec_##n, decl_##n}

static const ty_t types[] = {
    TY(open, OPEN, fill_open, U_PERF),
    TY(begin, BEGIN, fill_begin, U_PERF),
    TY(attach, ATTACH, fill_attach, U_PERF),
    TY(flow, FLOW, fill_flow, U_PERF),
    TY(transfer, TRANSFER, fill_transfer, U_PERF),
    TY(disposition, DISPOSITION, fill_disposition, U_PERF),
    TY(detach, DETACH, fill_detach, U_PERF),
    TY(end, END, fill_end, U_PERF),
    TY(close, CLOSE, fill_close, U_PERF),
    TY(error, ERROR, fill_error, U_NONE),
    TY(header, HEADER, fill_header, U_NONE),
    TY(properties, PROPERTIES, fill_properties, U_NONE),
    TY(received, RECEIVED, fill_received, U_STATE),
    TY(accepted, ACCEPTED, fill_none, U_STATE),
    TY(rejected, REJECTED, fill_rejected, U_STATE),
    TY(released, RELEASED, fill_none, U_STATE),
    TY(modified, MODIFIED, fill_modified, U_STATE),
    TY(source, SOURCE, fill_source, U_NONE),
    TY(target, TARGET, fill_target, U_NONE),
    TY(delete_on_close, DELETE_ON_CLOSE, fill_none, U_NONE),
    TY(delete_on_no_links, DELETE_ON_NO_LINKS, fill_none, U_NONE),
    TY(delete_on_no_messages, DELETE_ON_NO_MESSAGES, fill_none, U_NONE),
    TY(delete_on_no_links_or_messages, DELETE_ON_NO_LINKS_OR_MESSAGES, fill_none, U_NONE),
    TY(sasl_mechanisms, SASL_MECHANISMS, fill_sasl_mechanisms, U_SASL),
    TY(sasl_init, SASL_INIT, fill_sasl_init, U_SASL),
    TY(sasl_challenge, SASL_CHALLENGE, fill_sasl_challenge, U_SASL),
    TY(sasl_response, SASL_RESPONSE, fill_sasl_response, U_SASL),
    TY(sasl_outcome, SASL_OUTCOME, fill_sasl_outcome, U_SASL),
    TY(coordinator, COORDINATOR, fill_coordinator, U_NONE),
    TY(declare, DECLARE, fill_declare, U_NONE),
    TY(discharge, DISCHARGE, fill_discharge, U_NONE),
    TY(declared, DECLARED, fill_declared, U_STATE),
    TY(transactional_state, TRANSACTIONAL_STATE, fill_transactional_state, U_STATE),
};

static int
popcount32(uint32_t v)
{
    return __builtin_popcount(v);
}

/* Decodes via the type's union, returns the union member's present bits. */
static int
decode_union(const ty_t *t, lep_reader_t *r, uint32_t *present)
{
    static lep_performative_t perf;
    static lep_sasl_frame_t sasl;
    static lep_delivery_state_t ds;
    int rc;

    switch (t->un) {
    case U_PERF:
        rc = lep_performative_decode(r, &perf);
        assert_int_equal(perf.code, t->code);
        *present = *(const uint32_t *)&perf.u; /* present is every type's first member */
        return rc;
    case U_SASL:
        rc = lep_sasl_frame_decode(r, &sasl);
        assert_int_equal(sasl.code, t->code);
        *present = *(const uint32_t *)&sasl.u;
        return rc;
    default:
        rc = lep_delivery_state_decode(r, &ds);
        assert_int_equal(ds.code, t->code);
        *present = *(const uint32_t *)&ds.u;
        return rc;
    }
}

static void
roundtrip(const ty_t *t, uint32_t mask)
{
    fill_t fc;
    void *s = malloc(t->size), *s2 = malloc(t->size);
    lep_buf_t buf, buf2;
    lep_encoder_t e;
    lep_reader_t r;
    lep_value_t *tree = NULL;
    const lep_value_t *list;
    uint32_t i, nexp, present;
    int rc;

    assert_non_null(s);
    assert_non_null(s2);
    memset(&fc, 0, sizeof fc);
    fc.mask = mask;
    t->init(s);
    assert_int_equal(*(uint32_t *)s, 0);
    t->fill(s, &fc);
    assert_int_equal(*(uint32_t *)s, mask & t->all);
    mask &= t->all;

    lep_buf_init(&buf);
    lep_encoder_init(&e, &buf);
    rc = t->enc(&e, s);
    if ((mask & t->mandatory) != t->mandatory) {
        assert_int_equal(rc, LEP_ERR_INVALID);
        assert_int_equal(buf.len, 0);
        goto out;
    }
    if (rc != 0)
        fail_msg("%s mask %#x: encode %d", t->name, mask, rc);

    /* the encoding, seen by the generic codec: descriptor as smallulong,
     * then a list up to the last set field, nulls where fields are unset */
    assert_true(buf.len >= 4);
    assert_int_equal(buf.data[0], 0x00);
    assert_int_equal(buf.data[1], 0x53);
    assert_int_equal(buf.data[2], t->code);
    assert_int_equal(lep_value_decode(buf.data, buf.len, false, &tree, NULL), 0);
    assert_int_equal(tree->atom.type, LEP_TYPE_DESCRIBED);
    list = &tree->children[1];
    assert_int_equal(list->atom.type, LEP_TYPE_LIST);
    nexp = mask ? 32 - (uint32_t)__builtin_clz(mask) : 0;
    if (nexp == 0)
        assert_int_equal(buf.data[3], LEP_FC_LIST0);
    if (list->nchildren != nexp)
        fail_msg("%s mask %#x: %u elements, expected %u", t->name, mask, list->nchildren, nexp);
    for (i = 0; i < nexp; i++) {
        if (mask & (UINT32_C(1) << i)) {
            if (!lep_value_equal(&list->children[i], fc.exp[i]))
                fail_msg("%s mask %#x: field %u differs", t->name, mask, i);
        } else {
            assert_int_equal(list->children[i].atom.type, LEP_TYPE_NULL);
        }
    }

    /* decode gives the same fields back: re-encoding is byte-identical */
    memset(s2, 0xcc, t->size);
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(t->dec(&r, s2), 0);
    assert_true(lep_reader_done(&r));
    assert_int_equal(*(uint32_t *)s2, mask);
    lep_buf_init(&buf2);
    lep_encoder_init(&e, &buf2);
    assert_int_equal(t->enc(&e, s2), 0);
    expect_bytes(&buf2, buf.data, buf.len);
    lep_buf_fini(&buf2);

    /* after the descriptor, decode_list */
    lep_reader_init(&r, buf.data, buf.len);
    assert_int_equal(lep_read_descriptor(&r, NULL, NULL), 0);
    assert_int_equal(t->decl(&r, s2), 0);
    assert_int_equal(*(uint32_t *)s2, mask);

    if (t->un != U_NONE) {
        lep_reader_init(&r, buf.data, buf.len);
        assert_int_equal(decode_union(t, &r, &present), 0);
        assert_int_equal(present, mask);
    }

    /* the same list behind the symbolic descriptor */
    {
        const lep_descriptor_info_t *d = lep_descriptor_lookup(t->code);
        char name[64];
        lep_buf_t sym;

        assert_non_null(d);
        assert_int_equal(d->nfields, popcount32(t->all));
        snprintf(name, sizeof name, "amqp:%s:list", d->name);
        lep_buf_init(&sym);
        lep_encoder_init(&e, &sym);
        lep_encode_descriptor_symbol(&e, name);
        lep_encode_raw(&e, buf.data + 3, buf.len - 3);
        assert_int_equal(lep_encoder_error(&e), 0);
        memset(s2, 0xcc, t->size);
        lep_reader_init(&r, sym.data, sym.len);
        assert_int_equal(t->dec(&r, s2), 0);
        assert_int_equal(*(uint32_t *)s2, mask);
        lep_buf_fini(&sym);
    }

    expect_truncation_fails(t->dec, buf.data, buf.len, t->size);
out:
    for (i = 0; i < 32; i++)
        lep_value_free(fc.exp[i]);
    lep_value_free(tree);
    lep_buf_fini(&buf);
    free(s);
    free(s2);
}

static void
test_roundtrip_every_type(void **state)
{
    size_t k;
    (void)state;

    assert_int_equal(sizeof types / sizeof types[0], 33);
    for (k = 0; k < sizeof types / sizeof types[0]; k++) {
        const ty_t *t = &types[k];
        uint32_t bit;

        roundtrip(t, t->all);                            /* every field */
        roundtrip(t, 0);                                 /* none */
        roundtrip(t, t->mandatory);                      /* the least legal */
        roundtrip(t, t->mandatory | (t->all & 0x55555555)); /* holes */
        roundtrip(t, t->mandatory | (t->all & 0xaaaaaaaa));
        for (bit = 1; bit & t->all; bit <<= 1) {
            roundtrip(t, t->mandatory | bit);            /* each field alone */
            roundtrip(t, t->all & ~bit);                 /* each field missing */
        }
    }
}

/* ------------------------------------------------------------------ */
/* Differential check against the generic codec                       */

static uint32_t rng = 0x9e3779b9u;

static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A list's elements with those past the spec's fields and the trailing
 * nulls left out: what a re-encoding of the decoded struct must hold. */
static uint32_t
meaningful(const lep_value_t *list, uint32_t nfields)
{
    uint32_t n = list->nchildren < nfields ? list->nchildren : nfields;

    while (n > 0 && list->children[n - 1].atom.type == LEP_TYPE_NULL)
        n--;
    return n;
}

/* True when a list element of the composite at p is a compound or
 * described value with a malformed inside. */
static bool
bad_inside_view(const uint8_t *p, size_t n)
{
    lep_reader_t r, l;
    lep_atom_t a;
    uint32_t count;

    lep_reader_init(&r, p, n);
    if (lep_read_descriptor(&r, NULL, NULL) != 0 || lep_read_list(&r, &l, &count) != 0)
        return false;
    while (!lep_reader_done(&l)) {
        lep_value_t *v = NULL;

        if (lep_reader_next(&l, &a) != 0)
            return false;
        if (lep_value_decode(a.raw.ptr, a.raw.len, false, &v, NULL) != 0)
            return a.type == LEP_TYPE_LIST || a.type == LEP_TYPE_MAP ||
                   a.type == LEP_TYPE_ARRAY || a.type == LEP_TYPE_DESCRIBED;
        lep_value_free(v);
    }
    return false;
}

/* Decodes p with the type's decoder and with lep_value_decode.  The typed
 * decoder must never take what the generic one refuses (but for the inside
 * of views of encodings, which are decoded on demand); on well-formed
 * input it may only refuse with LEP_ERR_TYPE or LEP_ERR_DECODE (mandatory
 * field); and what it takes must re-encode to the same field values. */
static void
check_one(const ty_t *t, const uint8_t *p, size_t n)
{
    void *s = malloc(t->size);
    lep_reader_t r;
    lep_value_t *orig = NULL, *again = NULL;
    lep_buf_t b;
    lep_encoder_t e;
    size_t used = 0;
    uint32_t i, k, nfields = (uint32_t)__builtin_popcount(t->all);
    int rc, vrc;

    assert_non_null(s);
    lep_reader_init(&r, p, n);
    rc = t->dec(&r, s);
    vrc = lep_value_decode(p, n, false, &orig, &used);
    if (rc != 0) {
        if (vrc == 0 && rc != LEP_ERR_TYPE && rc != LEP_ERR_DECODE)
            fail_msg("%s: well-formed input refused with %d", t->name, rc);
        goto out;
    }
    if (vrc != 0) {
        /* views of encodings are checked shallowly (the caller decodes
         * them on demand), so the generic codec may refuse what is inside
         * one -- but nothing else */
        if (!bad_inside_view(p, n)) {
            for (i = 0; i < n; i++)
                fprintf(stderr, "%02x ", p[i]);
            fprintf(stderr, "\n");
            fail_msg("%s: decoded what the generic codec refuses (%d)", t->name, vrc);
        }
        goto out;
    }
    assert_int_equal(lep_reader_offset(&r, p), used);
    assert_int_equal(orig->atom.type, LEP_TYPE_DESCRIBED);
    assert_int_equal(orig->children[1].atom.type, LEP_TYPE_LIST);

    lep_buf_init(&b);
    lep_encoder_init(&e, &b);
    assert_int_equal(t->enc(&e, s), 0);
    assert_int_equal(lep_value_decode(b.data, b.len, false, &again, NULL), 0);
    k = meaningful(&orig->children[1], nfields);
    assert_int_equal(again->children[1].nchildren, k);
    for (i = 0; i < k; i++)
        if (!lep_value_equal(&orig->children[1].children[i], &again->children[1].children[i]))
            fail_msg("%s: field %u changed in the round trip", t->name, i);
    lep_buf_fini(&b);
out:
    lep_value_free(orig);
    lep_value_free(again);
    free(s);
}

static void
mutate_and_check(const ty_t *t, const uint8_t *seed, size_t n, unsigned iters)
{
    static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45,
                                    0x50, 0x52, 0x53, 0x56, 0x60, 0x70, 0x80, 0x83, 0xa0,
                                    0xa1, 0xa3, 0xb0, 0xc0, 0xc1, 0xd0, 0xe0, 0x7f, 0xff};
    unsigned it;

    for (it = 0; it < iters; it++) {
        uint8_t *p = malloc(n);
        size_t len = n;
        unsigned m, muts = 1 + rnd() % 3;

        assert_non_null(p);
        memcpy(p, seed, n);
        for (m = 0; m < muts && len > 0; m++) {
            size_t pos = rnd() % len;

            switch (rnd() % 4) {
            case 0: case 1: p[pos] = codes[rnd() % sizeof codes]; break;
            case 2: p[pos] = (uint8_t)rnd(); break;
            default: len = pos; break; /* p stays allocated at n: ASan sees reads past n */
            }
        }
        check_one(t, p, len);
        free(p);
    }
}

static void
test_differential(void **state)
{
    size_t k;
    (void)state;

    for (k = 0; k < sizeof types / sizeof types[0]; k++) {
        const ty_t *t = &types[k];
        uint32_t masks[2] = {t->all, t->mandatory};
        int j;

        for (j = 0; j < 2; j++) {
            fill_t fc;
            void *s = malloc(t->size);
            lep_buf_t b;
            lep_encoder_t e;
            uint32_t i;

            assert_non_null(s);
            memset(&fc, 0, sizeof fc);
            fc.mask = masks[j];
            t->init(s);
            t->fill(s, &fc);
            lep_buf_init(&b);
            lep_encoder_init(&e, &b);
            assert_int_equal(t->enc(&e, s), 0);
            check_one(t, b.data, b.len);
            mutate_and_check(t, b.data, b.len, 5000);
            lep_buf_fini(&b);
            for (i = 0; i < 32; i++)
                lep_value_free(fc.exp[i]);
            free(s);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
