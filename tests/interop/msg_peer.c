/* msg_peer: lepton's side of the message interop test against Qpid Proton
 * (tests/interop/test_codec_proton.sh drives it from msg_vectors.py).
 *
 *   msg_peer decode   stdin: one hex-encoded message per line.
 *                     stdout per line: "ok\t<canonical message>\t<hex of
 *                     lepton's re-encoding>" or "err\t<why>".
 *   msg_peer build    stdout: "<name>\t<canonical message>\t<hex>" for
 *                     messages built in C.
 *
 * The canonical message is one line of tab-separated name=value fields;
 * canon.py (canon_message) defines it and produces it from Proton's
 * decoder.  Values are lepton's typed prints (docs/print-format.md). */
#include <lepton/codec.h>
#include <lepton/message.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_hex.h"

/* The canonical line under construction; err keeps the first failure. */
typedef struct canon {
    lep_buf_t out;
    int err;
} canon_t;

static void
field(canon_t *c, const char *name)
{
    if (c->out.len)
        lep_buf_append(&c->out, "\t", 1);
    lep_buf_printf(&c->out, "%s=", name);
}

/* Prints the one value encoded in enc (typed). */
static void
print_encoded(canon_t *c, lep_bytes_t enc)
{
    lep_reader_t r;
    lep_reader_init(&r, enc.ptr, enc.len);
    int rc = lep_print_encoded(&r, &c->out, LEP_PRINT_TYPED);
    if (rc && !c->err)
        c->err = rc;
}

/* Runs the encoder calls of a field into a scratch buffer and prints them. */
#define PRINT_WITH(c, ...)                                            \
    do {                                                             \
        lep_buf_t tmp_;                                              \
        lep_encoder_t e_;                                            \
        lep_encoder_t *e = &e_;                                      \
        lep_buf_init(&tmp_);                                         \
        lep_encoder_init(&e_, &tmp_);                                \
        __VA_ARGS__;                                                 \
        if (lep_encoder_error(&e_) && !(c)->err)                     \
            (c)->err = lep_encoder_error(&e_);                       \
        else                                                         \
            print_encoded((c), lep_buf_bytes(&tmp_));                \
        lep_buf_fini(&tmp_);                                         \
    } while (0)

static void
opt_atom(canon_t *c, const char *name, const lep_atom_t *a)
{
    field(c, name);
    if (!a)
        lep_buf_printf(&c->out, "null");
    else
        PRINT_WITH(c, lep_encode_atom(e, a));
}

static void
opt_bytes(canon_t *c, const char *name, lep_bytes_t v, lep_type_t t)
{
    field(c, name);
    /* Proton cannot tell an absent user-id from an empty one. */
    if (!v.ptr || (t == LEP_TYPE_BINARY && v.len == 0)) {
        lep_buf_printf(&c->out, "null");
        return;
    }
    if (t == LEP_TYPE_BINARY)
        PRINT_WITH(c, lep_encode_binary(e, v.ptr, v.len));
    else if (t == LEP_TYPE_STRING)
        PRINT_WITH(c, lep_encode_string(e, v.ptr, v.len));
    else
        PRINT_WITH(c, lep_encode_symbol(e, v.ptr, v.len));
}

static void
timestamp(canon_t *c, const char *name, int64_t ms)
{
    field(c, name);
    if (ms == 0)
        lep_buf_printf(&c->out, "null");
    else
        lep_buf_printf(&c->out, "timestamp:%" PRId64, ms);
}

static void
annotations(canon_t *c, const char *name, const lep_message_t *m, lep_msg_annotations_t which)
{
    size_t n = lep_message_annotation_count(m, which);
    field(c, name);
    if (n == 0) {
        lep_buf_printf(&c->out, "null");
        return;
    }
    PRINT_WITH(c, {
        lep_encode_map_begin(e);
        for (size_t i = 0; i < n; i++) {
            const lep_atom_t *k = NULL, *v = NULL;
            if (lep_message_annotation_at(m, which, i, &k, &v) != 0 || !k || !v) {
                c->err = c->err ? c->err : LEP_ERR_STATE;
                break;
            }
            lep_encode_atom(e, k);
            lep_encode_atom(e, v);
        }
        lep_encode_map_end(e);
    });
}

static void
properties(canon_t *c, const lep_message_t *m)
{
    size_t n = lep_message_property_count(m);
    field(c, "application-properties");
    if (n == 0) {
        lep_buf_printf(&c->out, "null");
        return;
    }
    PRINT_WITH(c, {
        lep_encode_map_begin(e);
        for (size_t i = 0; i < n; i++) {
            lep_bytes_t k;
            const lep_atom_t *v = NULL;
            if (lep_message_property_at(m, i, &k, &v) != 0 || !v) {
                c->err = c->err ? c->err : LEP_ERR_STATE;
                break;
            }
            lep_encode_string(e, k.ptr, k.len);
            lep_encode_atom(e, v);
        }
        lep_encode_map_end(e);
    });
}

static void
body(canon_t *c, const lep_message_t *m)
{
    size_t n = lep_message_body_count(m);
    field(c, "body");
    switch (lep_message_body_kind(m)) {
    case LEP_BODY_NONE:
        lep_buf_printf(&c->out, "none");
        return;
    case LEP_BODY_DATA:
        lep_buf_printf(&c->out, "data:");
        break;
    case LEP_BODY_SEQUENCE:
        lep_buf_printf(&c->out, "sequence:");
        break;
    case LEP_BODY_VALUE:
        lep_buf_printf(&c->out, "value:");
        break;
    }
    for (size_t i = 0; i < n; i++) {
        lep_bytes_t s = lep_message_body_section(m, i);
        if (i)
            lep_buf_printf(&c->out, ", ");
        if (lep_message_body_kind(m) == LEP_BODY_DATA)
            PRINT_WITH(c, lep_encode_binary(e, s.ptr, s.len));
        else
            print_encoded(c, s);
    }
}

/* The canonical line of m (NUL-terminated, malloc'd), or NULL with *err. */
static char *
canon_message(const lep_message_t *m, int *err)
{
    canon_t c;
    lep_buf_init(&c.out);
    c.err = 0;

    field(&c, "durable");
    lep_buf_printf(&c.out, "bool:%s", lep_message_durable(m) ? "true" : "false");
    field(&c, "priority");
    lep_buf_printf(&c.out, "ubyte:%u", lep_message_priority(m));
    field(&c, "ttl");
    lep_buf_printf(&c.out, "uint:%" PRIu32, lep_message_ttl(m));
    field(&c, "first-acquirer");
    lep_buf_printf(&c.out, "bool:%s", lep_message_first_acquirer(m) ? "true" : "false");
    field(&c, "delivery-count");
    lep_buf_printf(&c.out, "uint:%" PRIu32, lep_message_delivery_count(m));
    opt_atom(&c, "message-id", lep_message_id(m));
    opt_bytes(&c, "user-id", lep_message_user_id(m), LEP_TYPE_BINARY);
    opt_bytes(&c, "to", lep_message_to(m), LEP_TYPE_STRING);
    opt_bytes(&c, "subject", lep_message_subject(m), LEP_TYPE_STRING);
    opt_bytes(&c, "reply-to", lep_message_reply_to(m), LEP_TYPE_STRING);
    opt_atom(&c, "correlation-id", lep_message_correlation_id(m));
    opt_bytes(&c, "content-type", lep_message_content_type(m), LEP_TYPE_SYMBOL);
    opt_bytes(&c, "content-encoding", lep_message_content_encoding(m), LEP_TYPE_SYMBOL);
    timestamp(&c, "absolute-expiry-time", lep_message_absolute_expiry_time(m));
    timestamp(&c, "creation-time", lep_message_creation_time(m));
    opt_bytes(&c, "group-id", lep_message_group_id(m), LEP_TYPE_STRING);
    field(&c, "group-sequence");
    lep_buf_printf(&c.out, "uint:%" PRIu32, lep_message_group_sequence(m));
    opt_bytes(&c, "reply-to-group-id", lep_message_reply_to_group_id(m), LEP_TYPE_STRING);
    annotations(&c, "delivery-annotations", m, LEP_MSG_DELIVERY_ANNOTATIONS);
    annotations(&c, "message-annotations", m, LEP_MSG_MESSAGE_ANNOTATIONS);
    properties(&c, m);
    body(&c, m);
    annotations(&c, "footer", m, LEP_MSG_FOOTER);

    if (!c.err && lep_buf_append(&c.out, "", 1) != 0)
        c.err = LEP_ERR_NOMEM;
    if (c.err) {
        *err = c.err;
        lep_buf_fini(&c.out);
        return NULL;
    }
    char *s = strdup((const char *)c.out.data);
    lep_buf_fini(&c.out);
    return s;
}

/* Canonical line and re-encoding of m, checked: the re-encoding must
 * decode (also into a reused message) to the same line.  Returns a
 * reason on failure. */
static const char *
check_message(lep_message_t *m, char **line, lep_buf_t *enc)
{
    static char why[160];
    int err = 0, rc;
    char *s = canon_message(m, &err);
    if (!s) {
        snprintf(why, sizeof why, "canonical print: %s", lep_strerror(err));
        return why;
    }
    if ((rc = lep_message_encode(m, enc)) != 0) {
        snprintf(why, sizeof why, "encode: %s", lep_strerror(rc));
        free(s);
        return why;
    }
    lep_message_t *again = NULL;
    if (lep_message_new(&again) != 0) {
        free(s);
        return "out of memory";
    }
    const char *fail = NULL;
    /* Twice into the same message: decode must replace, not merge. */
    for (int round = 0; round < 2 && !fail; round++) {
        if ((rc = lep_message_decode(again, enc->data, enc->len)) != 0) {
            snprintf(why, sizeof why, "re-decode (round %d): %s", round, lep_strerror(rc));
            fail = why;
            break;
        }
        char *s2 = canon_message(again, &err);
        if (!s2 || strcmp(s, s2) != 0)
            fail = "re-encoding decodes to a different message";
        free(s2);
    }
    lep_message_free(again);
    if (fail) {
        free(s);
        return fail;
    }
    *line = s;
    return NULL;
}

static void
decode_line(lep_message_t *m, const uint8_t *p, size_t n)
{
    int rc = lep_message_decode(m, p, n);
    if (rc != 0) {
        printf("err\tdecode: %s\n", lep_strerror(rc));
        return;
    }
    char *line = NULL;
    lep_buf_t enc;
    lep_buf_init(&enc);
    const char *why = check_message(m, &line, &enc);
    if (why) {
        printf("err\t%s\n", why);
    } else {
        printf("ok\t%s\t", line);
        hex_print(enc.data, enc.len);
        putchar('\n');
    }
    free(line);
    lep_buf_fini(&enc);
}

static int
decode_mode(void)
{
    lep_message_t *m;
    if (lep_message_new(&m) != 0)
        return 3;
    char *text = NULL;
    size_t cap = 0;
    ssize_t got;
    /* One message object for every line: decode must reset it fully. */
    while ((got = getline(&text, &cap, stdin)) >= 0) {
        while (got > 0 && (text[got - 1] == '\n' || text[got - 1] == '\r'))
            text[--got] = 0;
        uint8_t *bytes;
        size_t n;
        if (hex_decode(text, (size_t)got, &bytes, &n) != 0) {
            printf("err\tbad hex input\n");
            continue;
        }
        decode_line(m, bytes, n);
        free(bytes);
        fflush(stdout);
    }
    free(text);
    lep_message_free(m);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Messages built in C; msg_vectors.py builds the same ones with Proton  */
/* where Proton can.                                                   */

#define OK(call)                                                              \
    do {                                                                      \
        int rc_ = (call);                                                     \
        if (rc_ != 0) {                                                       \
            fprintf(stderr, "msg_peer: %s: %s\n", #call, lep_strerror(rc_));  \
            return rc_;                                                       \
        }                                                                     \
    } while (0)

static const uint8_t UUID1[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                  0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
static const char UNICODE[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9f\x98\x80";

static lep_atom_t
atom_u(lep_type_t t, uint64_t v)
{
    lep_atom_t a = {.type = t};
    if (t == LEP_TYPE_BOOL)
        a.u.b = v != 0;
    else
        a.u.u = v;
    return a;
}

static lep_atom_t
atom_i(lep_type_t t, int64_t v)
{
    lep_atom_t a = {.type = t};
    a.u.i = v;
    return a;
}

static lep_atom_t
atom_bytes(lep_type_t t, const void *p, size_t n)
{
    lep_atom_t a = {.type = t};
    if (t == LEP_TYPE_UUID)
        memcpy(a.u.uuid, p, 16);
    else
        a.u.bytes = LEP_BYTES(p, n);
    return a;
}

static lep_atom_t
atom_str(lep_type_t t, const char *s)
{
    return atom_bytes(t, s, strlen(s));
}

/* An atom of a compound value, given its encoding. */
static lep_atom_t
atom_raw(const uint8_t *p, size_t n)
{
    lep_atom_t a;
    lep_reader_t r;
    lep_reader_init(&r, p, n);
    if (lep_reader_next(&r, &a) != 0) {
        fprintf(stderr, "msg_peer: bad built encoding\n");
        exit(3);
    }
    return a;
}

static int
build_full(lep_message_t *m)
{
    lep_message_set_durable(m, true);
    lep_message_set_priority(m, 9);
    lep_message_set_ttl(m, 60000);
    lep_message_set_first_acquirer(m, true);
    lep_message_set_delivery_count(m, 3);
    lep_atom_t id = atom_u(LEP_TYPE_ULONG, UINT64_C(1) << 40);
    OK(lep_message_set_id(m, &id));
    OK(lep_message_set_user_id(m, LEP_BYTES("guest\x00\xff", 7)));
    OK(lep_message_set_to(m, lep_bytes_str("queue://orders")));
    OK(lep_message_set_subject(m, lep_bytes_str(UNICODE)));
    OK(lep_message_set_reply_to(m, lep_bytes_str("/temp/reply-1")));
    lep_atom_t corr = atom_bytes(LEP_TYPE_UUID, UUID1, 16);
    OK(lep_message_set_correlation_id(m, &corr));
    OK(lep_message_set_content_type(m, lep_bytes_str("application/json")));
    OK(lep_message_set_content_encoding(m, lep_bytes_str("gzip")));
    lep_message_set_absolute_expiry_time(m, INT64_C(1700000060000));
    lep_message_set_creation_time(m, INT64_C(1700000000123));
    OK(lep_message_set_group_id(m, lep_bytes_str("group-a")));
    lep_message_set_group_sequence(m, 0xfffffffeu);
    OK(lep_message_set_reply_to_group_id(m, lep_bytes_str("group-b")));

    lep_atom_t v = atom_i(LEP_TYPE_INT, -7);
    OK(lep_message_set_annotation_sym(m, LEP_MSG_DELIVERY_ANNOTATIONS, lep_bytes_str("x-opt-d"), &v));
    lep_atom_t k = atom_u(LEP_TYPE_ULONG, 42);
    v = atom_str(LEP_TYPE_STRING, "numeric key");
    OK(lep_message_set_annotation(m, LEP_MSG_DELIVERY_ANNOTATIONS, &k, &v));

    v = atom_str(LEP_TYPE_SYMBOL, "amqp:sym");
    OK(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("x-opt-sym"), &v));
    static const uint8_t list[] = {0xc0, 0x05, 0x03, 0x43, 0x41, 0xa1, 0x00}; /* [0, true, ""] */
    v = atom_raw(list, sizeof list);
    OK(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("x-opt-list"), &v));
    static const uint8_t map[] = {0xc1, 0x05, 0x02, 0xa3, 0x01, 0x6b, 0x40}; /* {:k=null} */
    v = atom_raw(map, sizeof map);
    OK(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("x-opt-map"), &v));
    v = atom_u(LEP_TYPE_BOOL, 1);
    OK(lep_message_set_annotation_sym(m, LEP_MSG_MESSAGE_ANNOTATIONS, lep_bytes_str("x-opt-bool"), &v));

    v = atom_str(LEP_TYPE_STRING, "text");
    OK(lep_message_set_property(m, lep_bytes_str("s"), &v));
    v = atom_i(LEP_TYPE_INT, -100000);
    OK(lep_message_set_property(m, lep_bytes_str("i"), &v));
    v = atom_i(LEP_TYPE_LONG, INT64_MIN);
    OK(lep_message_set_property(m, lep_bytes_str("l"), &v));
    v = atom_u(LEP_TYPE_UBYTE, 255);
    OK(lep_message_set_property(m, lep_bytes_str("ub"), &v));
    v = atom_u(LEP_TYPE_USHORT, 65535);
    OK(lep_message_set_property(m, lep_bytes_str("us"), &v));
    v = atom_u(LEP_TYPE_UINT, 0);
    OK(lep_message_set_property(m, lep_bytes_str("ui"), &v));
    v = atom_u(LEP_TYPE_ULONG, UINT64_MAX);
    OK(lep_message_set_property(m, lep_bytes_str("ul"), &v));
    v = atom_i(LEP_TYPE_BYTE, -1);
    OK(lep_message_set_property(m, lep_bytes_str("b"), &v));
    v = atom_i(LEP_TYPE_SHORT, -2);
    OK(lep_message_set_property(m, lep_bytes_str("sh"), &v));
    v = (lep_atom_t){.type = LEP_TYPE_DOUBLE, .u.d = 2.5};
    OK(lep_message_set_property(m, lep_bytes_str("d"), &v));
    v = (lep_atom_t){.type = LEP_TYPE_FLOAT, .u.f = -0.5f};
    OK(lep_message_set_property(m, lep_bytes_str("f"), &v));
    v = atom_u(LEP_TYPE_BOOL, 0);
    OK(lep_message_set_property(m, lep_bytes_str("bo"), &v));
    v = atom_bytes(LEP_TYPE_UUID, UUID1, 16);
    OK(lep_message_set_property(m, lep_bytes_str("u"), &v));
    v = atom_bytes(LEP_TYPE_BINARY, "\x00\x01", 2);
    OK(lep_message_set_property(m, lep_bytes_str("bin"), &v));
    v = atom_str(LEP_TYPE_SYMBOL, "sym");
    OK(lep_message_set_property(m, lep_bytes_str("sy"), &v));
    v = atom_u(LEP_TYPE_CHAR, 0x1f600);
    OK(lep_message_set_property(m, lep_bytes_str("c"), &v));
    v = atom_i(LEP_TYPE_TIMESTAMP, INT64_C(1700000000000));
    OK(lep_message_set_property(m, lep_bytes_str("ts"), &v));
    v = (lep_atom_t){.type = LEP_TYPE_NULL};
    OK(lep_message_set_property(m, lep_bytes_str("n"), &v));
    v = (lep_atom_t){.type = LEP_TYPE_DECIMAL64};
    memcpy(v.u.dec, "\x22\x34\0\0\0\0\0\x07", 8);
    OK(lep_message_set_property(m, lep_bytes_str("dec"), &v));
    v = atom_str(LEP_TYPE_STRING, "unicode key");
    OK(lep_message_set_property(m, lep_bytes_str(UNICODE), &v));

    OK(lep_message_set_body_data(m, LEP_BYTES("\x00\x01\x02payload\xff", 11)));
    return 0;
}

static int
build_minimal_body(lep_message_t *m)
{
    return lep_message_set_body_string(m, lep_bytes_str("hello"));
}

static int
build_id_uuid(lep_message_t *m)
{
    lep_atom_t id = atom_bytes(LEP_TYPE_UUID, UUID1, 16);
    OK(lep_message_set_id(m, &id));
    lep_atom_t corr = atom_bytes(LEP_TYPE_BINARY, "\x00\xffid", 4);
    OK(lep_message_set_correlation_id(m, &corr));
    return lep_message_set_body_string(m, lep_bytes_str(""));
}

static int
build_id_binary(lep_message_t *m)
{
    lep_atom_t id = atom_bytes(LEP_TYPE_BINARY, "\x01\x02\x03", 3);
    OK(lep_message_set_id(m, &id));
    lep_atom_t corr = atom_str(LEP_TYPE_STRING, "corr-1");
    OK(lep_message_set_correlation_id(m, &corr));
    return 0;
}

static int
build_id_string(lep_message_t *m)
{
    lep_atom_t id = atom_str(LEP_TYPE_STRING, "ID:lepton-1:0:1");
    OK(lep_message_set_id(m, &id));
    lep_atom_t corr = atom_u(LEP_TYPE_ULONG, 0);
    OK(lep_message_set_correlation_id(m, &corr));
    return 0;
}

static int
build_header_defaults(lep_message_t *m)
{
    /* Present with their default values: still the same message. */
    lep_message_set_durable(m, false);
    lep_message_set_priority(m, 4);
    lep_message_set_ttl(m, 0);
    lep_message_set_first_acquirer(m, false);
    lep_message_set_delivery_count(m, 0);
    return lep_message_set_body_data(m, LEP_BYTES("", 0));
}

static int
build_body_list(lep_message_t *m)
{
    /* amqp-value [uint 1, "two", [null], {:k=-1}] */
    static const uint8_t v[] = {0xc0, 0x14, 0x04, 0x52, 0x01, 0xa1, 0x03, 't', 'w', 'o',
                                0xc0, 0x02, 0x01, 0x40, 0xc1, 0x06, 0x02, 0xa3, 0x01, 'k', 0x54, 0xff};
    return lep_message_set_body_value_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_map(lep_message_t *m)
{
    /* {"a"=long 5, :b=uuid} */
    static const uint8_t v[] = {0xc1, 0x1a, 0x04, 0xa1, 0x01, 'a', 0x55, 0x05,
                                0xa3, 0x01, 'b', 0x98, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                10, 11, 12, 13, 14, 15};
    return lep_message_set_body_value_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_sequence(lep_message_t *m)
{
    static const uint8_t v[] = {0xc0, 0x06, 0x02, 0x41, 0xa1, 0x02, 'h', 'i'};
    return lep_message_set_body_sequence_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_value_binary(lep_message_t *m)
{
    static const uint8_t v[] = {0xa0, 0x03, 0x00, 0x01, 0x02};
    return lep_message_set_body_value_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_value_described(lep_message_t *m)
{
    static const uint8_t v[] = {0x00, 0xa3, 0x03, 'x', ':', 'y', 0xa1, 0x01, 'v'};
    return lep_message_set_body_value_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_value_null(lep_message_t *m)
{
    static const uint8_t v[] = {0x40};
    return lep_message_set_body_value_raw(m, LEP_BYTES(v, sizeof v));
}

static int
build_body_big(lep_message_t *m)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31);
    char s[600];
    for (size_t i = 0; i < sizeof s - 1; i++)
        s[i] = (char)('a' + i % 26);
    s[sizeof s - 1] = 0;
    OK(lep_message_set_to(m, lep_bytes_str(s)));
    return lep_message_set_body_data(m, LEP_BYTES(big, sizeof big));
}

static int
build_multi_data(lep_message_t *m)
{
    OK(lep_message_add_body_data(m, LEP_BYTES("one", 3)));
    OK(lep_message_add_body_data(m, LEP_BYTES("", 0)));
    return lep_message_add_body_data(m, LEP_BYTES("three", 5));
}

static int
build_multi_sequence(lep_message_t *m)
{
    static const uint8_t a[] = {0x45};
    static const uint8_t b[] = {0xc0, 0x03, 0x02, 0x43, 0x44};
    OK(lep_message_add_body_sequence_raw(m, LEP_BYTES(a, sizeof a)));
    return lep_message_add_body_sequence_raw(m, LEP_BYTES(b, sizeof b));
}

static int
build_footer(lep_message_t *m)
{
    OK(lep_message_set_body_string(m, lep_bytes_str("with footer")));
    lep_atom_t v = atom_bytes(LEP_TYPE_BINARY, "\xde\xad\xbe\xef", 4);
    OK(lep_message_set_annotation_sym(m, LEP_MSG_FOOTER, lep_bytes_str("x-opt-hmac"), &v));
    lep_atom_t k = atom_u(LEP_TYPE_ULONG, 7);
    v = atom_u(LEP_TYPE_UINT, 7);
    return lep_message_set_annotation(m, LEP_MSG_FOOTER, &k, &v);
}

static const struct {
    const char *name;
    int (*fn)(lep_message_t *m);
} builds[] = {
    {"full", build_full},
    {"minimal_body", build_minimal_body},
    {"id_uuid", build_id_uuid},
    {"id_binary", build_id_binary},
    {"id_string", build_id_string},
    {"header_defaults", build_header_defaults},
    {"body_list", build_body_list},
    {"body_map", build_body_map},
    {"body_sequence", build_body_sequence},
    {"body_value_binary", build_body_value_binary},
    {"body_value_described", build_body_value_described},
    {"body_value_null", build_body_value_null},
    {"body_big", build_body_big},
    {"multi_data", build_multi_data},
    {"multi_sequence", build_multi_sequence},
    {"footer", build_footer},
};

static int
build_mode(void)
{
    for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++) {
        lep_message_t *m;
        if (lep_message_new(&m) != 0)
            return 3;
        int rc = builds[i].fn(m);
        if (rc != 0) {
            printf("%s\terr\tbuilding: %s\n", builds[i].name, lep_strerror(rc));
            lep_message_free(m);
            continue;
        }
        char *line = NULL;
        lep_buf_t enc;
        lep_buf_init(&enc);
        const char *why = check_message(m, &line, &enc);
        if (why) {
            printf("%s\terr\t%s\n", builds[i].name, why);
        } else {
            printf("%s\t%s\t", builds[i].name, line);
            hex_print(enc.data, enc.len);
            putchar('\n');
        }
        free(line);
        lep_buf_fini(&enc);
        lep_message_free(m);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "decode") == 0)
        return decode_mode();
    if (argc == 2 && strcmp(argv[1], "build") == 0)
        return build_mode();
    fprintf(stderr, "usage: msg_peer decode|build\n");
    return 2;
}
