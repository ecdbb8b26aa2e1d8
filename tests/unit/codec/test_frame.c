/* Protocol headers and frames: parse, emit, limits, every truncation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <lepton/frame.h>

/* ---- protocol headers ---- */

static void
test_proto_header_constants(void **state)
{
    (void)state;
    static const uint8_t amqp[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0};
    static const uint8_t tls[] = {'A', 'M', 'Q', 'P', 2, 1, 0, 0};
    static const uint8_t sasl[] = {'A', 'M', 'Q', 'P', 3, 1, 0, 0};
    assert_memory_equal(LEP_PROTO_HEADER_AMQP, amqp, 8);
    assert_memory_equal(LEP_PROTO_HEADER_TLS, tls, 8);
    assert_memory_equal(LEP_PROTO_HEADER_SASL, sasl, 8);
    assert_int_equal(sizeof LEP_PROTO_HEADER_AMQP, LEP_PROTO_HEADER_SIZE + 1);
}

static void
test_proto_header_parse_valid(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        int id;
        const char *name;
    } cases[] = {
        {LEP_PROTO_HEADER_AMQP, LEP_PROTO_AMQP, "AMQP"},
        {LEP_PROTO_HEADER_TLS, LEP_PROTO_TLS, "TLS"},
        {LEP_PROTO_HEADER_SASL, LEP_PROTO_SASL, "SASL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Followed by more data (the first frame): only 8 bytes count. */
        uint8_t in[12];
        memcpy(in, cases[i].bytes, 8);
        memset(in + 8, 0xee, 4);
        lep_proto_header_t h;
        assert_int_equal(lep_proto_header_parse(in, sizeof in, &h), cases[i].id);
        assert_int_equal(h.id, cases[i].id);
        assert_int_equal(h.major, 1);
        assert_int_equal(h.minor, 0);
        assert_int_equal(h.revision, 0);
        assert_int_equal(h.nraw, 8);
        assert_memory_equal(h.raw, in, 8);
        assert_string_equal(lep_proto_name(cases[i].id), cases[i].name);
        /* out may be NULL */
        assert_int_equal(lep_proto_header_parse(in, 8, NULL), cases[i].id);
    }
    assert_null(lep_proto_name(1));
    assert_null(lep_proto_name(-1));
}

static void
test_proto_header_incomplete(void **state)
{
    (void)state;
    const uint8_t *hdrs[] = {(const uint8_t *)LEP_PROTO_HEADER_AMQP,
                             (const uint8_t *)LEP_PROTO_HEADER_TLS,
                             (const uint8_t *)LEP_PROTO_HEADER_SASL};
    for (size_t k = 0; k < 3; k++) {
        for (size_t n = 0; n < 8; n++) {
            lep_proto_header_t h;
            memset(&h, 0x55, sizeof h);
            assert_int_equal(lep_proto_header_parse(hdrs[k], n, &h), LEP_ERR_INCOMPLETE);
            assert_int_equal(h.nraw, n);
            if (n)
                assert_memory_equal(h.raw, hdrs[k], n);
        }
    }
}

static void
test_proto_header_bad(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[8];
        size_t len;
    } cases[] = {
        {{'A', 'M', 'Q', 'P', 1, 1, 0, 10}, 8},   /* AMQP 0-10 */
        {{'A', 'M', 'Q', 'P', 0, 0, 9, 1}, 8},    /* AMQP 0-9-1 */
        {{'A', 'M', 'Q', 'P', 0, 1, 0, 1}, 8},    /* revision */
        {{'A', 'M', 'Q', 'P', 0, 1, 1, 0}, 8},    /* minor */
        {{'A', 'M', 'Q', 'P', 0, 2, 0, 0}, 8},    /* major */
        {{'A', 'M', 'Q', 'P', 4, 1, 0, 0}, 8},    /* unknown id */
        {{'a', 'm', 'q', 'p', 0, 1, 0, 0}, 8},    /* case matters */
        {{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'}, 8}, /* HTTP */
        {{0, 0, 0, 8, 2, 0, 0, 0}, 8},            /* a frame, no header */
        /* Refused early, before 8 bytes. */
        {{'G'}, 1},
        {{'A', 'M', 'X'}, 3},
        {{'A', 'M', 'Q', 'P', 7}, 5},
        {{'A', 'M', 'Q', 'P', 0, 9}, 6},
        {{'A', 'M', 'Q', 'P', 3, 1, 1}, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lep_proto_header_t h;
        assert_int_equal(lep_proto_header_parse(cases[i].bytes, cases[i].len, &h),
                         LEP_ERR_FRAMING);
        /* The bytes seen are kept for the error report. */
        assert_int_equal(h.nraw, cases[i].len);
        assert_memory_equal(h.raw, cases[i].bytes, cases[i].len);
        if (cases[i].len == 8) {
            assert_int_equal(h.id, cases[i].bytes[4]);
            assert_int_equal(h.major, cases[i].bytes[5]);
            assert_int_equal(h.minor, cases[i].bytes[6]);
            assert_int_equal(h.revision, cases[i].bytes[7]);
        }
    }
}

static void
test_proto_header_write(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(lep_proto_header_write(out, LEP_PROTO_AMQP), 0);
    assert_memory_equal(out, LEP_PROTO_HEADER_AMQP, 8);
    assert_int_equal(lep_proto_header_write(out, LEP_PROTO_TLS), 0);
    assert_memory_equal(out, LEP_PROTO_HEADER_TLS, 8);
    assert_int_equal(lep_proto_header_write(out, LEP_PROTO_SASL), 0);
    assert_memory_equal(out, LEP_PROTO_HEADER_SASL, 8);
    assert_int_equal(lep_proto_header_write(out, (lep_proto_id_t)1), LEP_ERR_INVALID);
    assert_int_equal(lep_proto_header_write(out, (lep_proto_id_t)258), LEP_ERR_INVALID);
    /* Round trip. */
    assert_int_equal(lep_proto_header_write(out, LEP_PROTO_SASL), 0);
    assert_int_equal(lep_proto_header_parse(out, 8, NULL), LEP_PROTO_SASL);
}

/* ---- frame parsing ---- */

/* A frame as the spec draws it: 8-byte header, optional extended header,
 * body.  Returns its length. */
static size_t
make_frame(uint8_t *out, uint8_t doff, uint8_t type, uint16_t channel,
           const void *ext, size_t ext_len, const void *body, size_t body_len)
{
    size_t size = 8 + ext_len + body_len;
    out[0] = (uint8_t)(size >> 24);
    out[1] = (uint8_t)(size >> 16);
    out[2] = (uint8_t)(size >> 8);
    out[3] = (uint8_t)size;
    out[4] = doff;
    out[5] = type;
    out[6] = (uint8_t)(channel >> 8);
    out[7] = (uint8_t)channel;
    if (ext_len)
        memcpy(out + 8, ext, ext_len);
    if (body_len)
        memcpy(out + 8 + ext_len, body, body_len);
    return size;
}

/* An @open with container-id "c": 00 53 10 c0 04 01 a1 01 63 */
static const uint8_t open_body[] = {0x00, 0x53, 0x10, 0xc0, 0x04, 0x01, 0xa1, 0x01, 'c'};

static void
test_frame_parse_basic(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = make_frame(buf, 2, LEP_FRAME_AMQP, 0, NULL, 0, open_body, sizeof open_body);
    assert_int_equal(n, 17);
    lep_frame_t f;
    size_t used = 0;
    assert_int_equal(lep_frame_parse(buf, n, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used), 0);
    assert_int_equal(used, 17);
    assert_int_equal(f.size, 17);
    assert_int_equal(f.doff, 2);
    assert_int_equal(f.type, LEP_FRAME_AMQP);
    assert_int_equal(f.channel, 0);
    assert_int_equal(f.ext.len, 0);
    assert_ptr_equal(f.body.ptr, buf + 8); /* zero-copy */
    assert_int_equal(f.body.len, sizeof open_body);
    assert_false(lep_frame_is_empty(&f));
    assert_string_equal(lep_frame_type_name(f.type), "amqp");
    assert_string_equal(lep_frame_type_name(LEP_FRAME_SASL), "sasl");
    assert_null(lep_frame_type_name(2));

    /* Trailing bytes (the next frame) are not consumed. */
    memset(buf + n, 0xab, 10);
    assert_int_equal(lep_frame_parse(buf, n + 10, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used), 0);
    assert_int_equal(used, 17);
    assert_int_equal(f.body.len, sizeof open_body);

    /* used may be NULL */
    assert_int_equal(lep_frame_parse(buf, n, 512, &f, NULL), 0);
}

static void
test_frame_parse_channel_and_type(void **state)
{
    (void)state;
    static const uint16_t channels[] = {0, 1, 0x00ff, 0x0100, 0x1234, 0xfffe, 0xffff};
    uint8_t buf[32];
    for (size_t i = 0; i < sizeof channels / sizeof channels[0]; i++) {
        for (unsigned type = 0; type < 3; type++) {
            size_t n = make_frame(buf, 2, (uint8_t)type, channels[i], NULL, 0, "xy", 2);
            lep_frame_t f;
            assert_int_equal(lep_frame_parse(buf, n, 512, &f, NULL), 0);
            assert_int_equal(f.channel, channels[i]);
            /* Unknown types pass the frame layer; the engine refuses them. */
            assert_int_equal(f.type, type);
            assert_memory_equal(f.body.ptr, "xy", 2);
        }
    }
}

static void
test_frame_parse_empty(void **state)
{
    (void)state;
    /* A heartbeat: size 8, doff 2, no body. */
    static const uint8_t hb[] = {0, 0, 0, 8, 2, 0, 0, 0};
    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(hb, sizeof hb, 512, &f, &used), 0);
    assert_int_equal(used, 8);
    assert_int_equal(f.size, 8);
    assert_int_equal(f.body.len, 0);
    assert_int_equal(f.ext.len, 0);
    assert_true(lep_frame_is_empty(&f));

    /* An empty frame with an extended header is still empty. */
    uint8_t buf[32];
    size_t n = make_frame(buf, 4, LEP_FRAME_AMQP, 3, "EXTENDED", 8, NULL, 0);
    assert_int_equal(lep_frame_parse(buf, n, 512, &f, &used), 0);
    assert_int_equal(used, 16);
    assert_true(lep_frame_is_empty(&f));
    assert_int_equal(f.ext.len, 8);
    assert_int_equal(f.channel, 3);
}

static void
test_frame_parse_extended_header(void **state)
{
    (void)state;
    uint8_t buf[64];
    static const uint8_t ext[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t n = make_frame(buf, 5, LEP_FRAME_AMQP, 7, ext, sizeof ext, open_body,
                          sizeof open_body);
    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(buf, n, 512, &f, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(f.doff, 5);
    assert_ptr_equal(f.ext.ptr, buf + 8);
    assert_int_equal(f.ext.len, 12);
    assert_memory_equal(f.ext.ptr, ext, 12);
    assert_ptr_equal(f.body.ptr, buf + 20);
    assert_int_equal(f.body.len, sizeof open_body);
    assert_memory_equal(f.body.ptr, open_body, sizeof open_body);

    /* doff*4 == size: all extended header, no body. */
    n = make_frame(buf, 5, LEP_FRAME_AMQP, 0, ext, sizeof ext, NULL, 0);
    assert_int_equal(lep_frame_parse(buf, n, 512, &f, NULL), 0);
    assert_int_equal(f.ext.len, 12);
    assert_int_equal(f.body.len, 0);

    /* The largest doff: 255 words, a 1020-byte header. */
    static uint8_t big[1100];
    static uint8_t bigext[1012];
    memset(bigext, 0x5a, sizeof bigext);
    n = make_frame(big, 255, LEP_FRAME_AMQP, 0, bigext, sizeof bigext, "b", 1);
    assert_int_equal(lep_frame_parse(big, n, LEP_MAX_FRAME_SIZE_DEFAULT, &f, NULL), 0);
    assert_int_equal(f.ext.len, 1012);
    assert_int_equal(f.body.len, 1);
    assert_int_equal(f.body.ptr[0], 'b');
}

static void
test_frame_parse_bad_header(void **state)
{
    (void)state;
    static const struct {
        uint8_t h[8];
        const char *why;
    } cases[] = {
        {{0, 0, 0, 0, 2, 0, 0, 0}, "size 0"},
        {{0, 0, 0, 7, 2, 0, 0, 0}, "size 7"},
        {{0, 0, 0, 8, 0, 0, 0, 0}, "doff 0"},
        {{0, 0, 0, 8, 1, 0, 0, 0}, "doff 1"},
        {{0, 0, 0, 8, 3, 0, 0, 0}, "doff*4 = 12 > size 8"},
        {{0, 0, 0, 15, 4, 0, 0, 0}, "doff*4 = 16 > size 15"},
        {{0, 0, 0, 100, 255, 0, 0, 0}, "doff*4 = 1020 > size 100"},
        {{0, 0, 0, 4, 1, 0, 0, 0}, "size and doff both bad"},
    };
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(buf, 0, sizeof buf);
        memcpy(buf, cases[i].h, 8);
        lep_frame_t f;
        memset(&f, 0x77, sizeof f);
        lep_frame_t before = f;
        size_t used = 12345;
        int rc = lep_frame_parse(buf, sizeof buf, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used);
        if (rc != LEP_ERR_FRAMING)
            fail_msg("%s: got %d", cases[i].why, rc);
        /* Framing errors are found from the header alone. */
        assert_int_equal(lep_frame_parse(buf, 8, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used),
                         LEP_ERR_FRAMING);
        assert_memory_equal(&f, &before, sizeof f);
        assert_int_equal(used, 12345);
    }
}

static void
test_frame_parse_every_truncation(void **state)
{
    (void)state;
    uint8_t buf[64];
    static const uint8_t ext[4] = {9, 9, 9, 9};
    size_t n = make_frame(buf, 3, LEP_FRAME_SASL, 0, ext, 4, open_body, sizeof open_body);
    for (size_t len = 0; len < n; len++) {
        /* Copy to an exact-size heap-like buffer so a read past len shows
         * up under ASan. */
        uint8_t *cut = test_malloc(len ? len : 1);
        memcpy(cut, buf, len);
        lep_frame_t f;
        memset(&f, 0, sizeof f);
        size_t used = 0;
        assert_int_equal(lep_frame_parse(cut, len, 512, &f, &used), LEP_ERR_INCOMPLETE);
        /* What is needed: the header first, then the whole frame. */
        assert_int_equal(used, len < 8 ? 8 : n);
        assert_int_equal(f.size, 0);
        test_free(cut);
    }
    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(buf, n, 512, &f, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(f.type, LEP_FRAME_SASL);
}

static void
test_frame_parse_stream(void **state)
{
    (void)state;
    /* Several frames back to back, parsed by advancing with used. */
    uint8_t buf[128];
    size_t off = 0;
    off += make_frame(buf + off, 2, LEP_FRAME_AMQP, 0, NULL, 0, open_body, sizeof open_body);
    off += make_frame(buf + off, 2, LEP_FRAME_AMQP, 0, NULL, 0, NULL, 0);
    off += make_frame(buf + off, 2, LEP_FRAME_AMQP, 9, NULL, 0, "abc", 3);
    size_t pos = 0, count = 0;
    static const size_t want_len[] = {sizeof open_body, 0, 3};
    static const uint16_t want_ch[] = {0, 0, 9};
    while (pos < off) {
        lep_frame_t f;
        size_t used;
        assert_int_equal(lep_frame_parse(buf + pos, off - pos, 512, &f, &used), 0);
        assert_true(count < 3);
        assert_int_equal(f.body.len, want_len[count]);
        assert_int_equal(f.channel, want_ch[count]);
        pos += used;
        count++;
    }
    assert_int_equal(pos, off);
    assert_int_equal(count, 3);
}

static void
test_frame_parse_max_frame_size(void **state)
{
    (void)state;
    static uint8_t buf[1024];
    static uint8_t body[1016];
    memset(body, 'x', sizeof body);
    size_t n = make_frame(buf, 2, LEP_FRAME_AMQP, 0, NULL, 0, body, 504); /* 512 */
    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(buf, n, LEP_MIN_MAX_FRAME_SIZE, &f, &used), 0);
    assert_int_equal(used, 512);

    n = make_frame(buf, 2, LEP_FRAME_AMQP, 0, NULL, 0, body, 505); /* 513 */
    assert_int_equal(lep_frame_parse(buf, n, LEP_MIN_MAX_FRAME_SIZE, &f, &used),
                     LEP_ERR_FRAME_SIZE);
    assert_int_equal(lep_frame_parse(buf, n, 513, &f, &used), 0);

    /* Refused from the header alone: we never wait for an oversized body. */
    assert_int_equal(lep_frame_parse(buf, 8, LEP_MIN_MAX_FRAME_SIZE, &f, &used),
                     LEP_ERR_FRAME_SIZE);
    /* The largest size the field can hold. */
    static const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0};
    assert_int_equal(lep_frame_parse(huge, 8, 1u << 20, &f, &used), LEP_ERR_FRAME_SIZE);
    used = 0;
    assert_int_equal(lep_frame_parse(huge, 8, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used),
                     LEP_ERR_INCOMPLETE);
    assert_int_equal(used, UINT32_MAX);
    /* A framing error wins over size when both apply: a size under 8 is
     * not a size. */
    static const uint8_t tiny[8] = {0, 0, 0, 4, 2, 0, 0, 0};
    assert_int_equal(lep_frame_parse(tiny, 8, LEP_MIN_MAX_FRAME_SIZE, &f, &used),
                     LEP_ERR_FRAMING);
}

/* ---- emitting ---- */

static void
test_frame_header_write(void **state)
{
    (void)state;
    uint8_t h[8];
    assert_int_equal(lep_frame_header_write(h, LEP_FRAME_AMQP, 0x0102, 9), 0);
    static const uint8_t want[8] = {0, 0, 0, 17, 2, 0, 1, 2};
    assert_memory_equal(h, want, 8);

    /* Header + body written separately parse as one frame. */
    uint8_t buf[32];
    memcpy(buf, h, 8);
    memcpy(buf + 8, open_body, sizeof open_body);
    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(buf, 17, 512, &f, &used), 0);
    assert_int_equal(f.channel, 0x0102);
    assert_memory_equal(f.body.ptr, open_body, sizeof open_body);

    /* Heartbeat. */
    assert_int_equal(lep_frame_header_write(h, LEP_FRAME_AMQP, 0, 0), 0);
    static const uint8_t hb[8] = {0, 0, 0, 8, 2, 0, 0, 0};
    assert_memory_equal(h, hb, 8);

    assert_int_equal(lep_frame_header_write(h, LEP_FRAME_SASL, 0, 0x12345678), 0);
    static const uint8_t big[8] = {0x12, 0x34, 0x56, 0x80, 2, 1, 0, 0};
    assert_memory_equal(h, big, 8);
    assert_int_equal(lep_frame_header_write(h, LEP_FRAME_AMQP, 0, UINT32_MAX - 8), 0);
    assert_int_equal(h[0] & h[1] & h[2] & h[3], 0xff);
    memset(h, 0, 8);
    assert_int_equal(lep_frame_header_write(h, LEP_FRAME_AMQP, 0, (size_t)UINT32_MAX - 7),
                     LEP_ERR_FRAME_SIZE);
}

static void
test_frame_begin_end(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_buf_append(&b, "prefix", 6), 0);
    size_t mark;
    assert_int_equal(lep_frame_begin(&b, LEP_FRAME_AMQP, 5, &mark), 0);
    assert_int_equal(mark, 6);
    assert_int_equal(lep_buf_append(&b, open_body, sizeof open_body), 0);
    assert_int_equal(lep_buf_append(&b, "payload", 7), 0);
    assert_int_equal(lep_frame_end(&b, mark, 512), 0);
    assert_int_equal(b.len, 6 + 8 + sizeof open_body + 7);

    lep_frame_t f;
    size_t used;
    assert_int_equal(lep_frame_parse(b.data + 6, b.len - 6, 512, &f, &used), 0);
    assert_int_equal(used, b.len - 6);
    assert_int_equal(f.channel, 5);
    assert_int_equal(f.type, LEP_FRAME_AMQP);
    assert_int_equal(f.body.len, sizeof open_body + 7);
    assert_memory_equal(f.body.ptr + sizeof open_body, "payload", 7);

    /* An unfinished frame does not parse. */
    size_t len_before = b.len;
    assert_int_equal(lep_frame_begin(&b, LEP_FRAME_AMQP, 0, &mark), 0);
    assert_int_equal(lep_frame_parse(b.data + mark, b.len - mark, 512, &f, NULL),
                     LEP_ERR_FRAMING);
    /* Too big for the limit: dropped, earlier content kept. */
    static uint8_t body[600];
    assert_int_equal(lep_buf_append(&b, body, sizeof body), 0);
    assert_int_equal(lep_frame_end(&b, mark, 512), LEP_ERR_FRAME_SIZE);
    assert_int_equal(b.len, len_before);
    assert_memory_equal(b.data, "prefix", 6);

    /* An empty frame built with begin/end. */
    assert_int_equal(lep_frame_begin(&b, LEP_FRAME_AMQP, 0, &mark), 0);
    assert_int_equal(lep_frame_end(&b, mark, 512), 0);
    assert_int_equal(lep_frame_parse(b.data + mark, b.len - mark, 512, &f, NULL), 0);
    assert_true(lep_frame_is_empty(&f));

    /* A mark that is not a frame start. */
    assert_int_equal(lep_frame_end(&b, b.len - 4, 512), LEP_ERR_INVALID);
    assert_int_equal(lep_frame_end(&b, b.len + 1, 512), LEP_ERR_INVALID);
    lep_buf_fini(&b);
}

static void
test_frame_begin_fixed_overflow(void **state)
{
    (void)state;
    uint8_t mem[12];
    lep_buf_t b;
    lep_buf_init_fixed(&b, mem, sizeof mem);
    assert_int_equal(lep_buf_append(&b, "12345", 5), 0);
    size_t mark = 99;
    assert_int_equal(lep_frame_begin(&b, LEP_FRAME_AMQP, 0, &mark), LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, 5);
    assert_int_equal(mark, 99);
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES(NULL, 0),
                                      LEP_BYTES(NULL, 0), 512),
                     LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, 5);
    lep_buf_fini(&b);
}

static void
test_frame_append(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 1,
                                      LEP_BYTES(open_body, sizeof open_body),
                                      LEP_BYTES("hello", 5), 512),
                     0);
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES(NULL, 0),
                                      LEP_BYTES(NULL, 0), 512),
                     0);
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_SASL, 0,
                                      LEP_BYTES(open_body, sizeof open_body),
                                      LEP_BYTES(NULL, 0), 512),
                     0);
    assert_int_equal(b.len, (8 + 9 + 5) + 8 + (8 + 9));

    lep_frame_t f;
    size_t used, pos = 0;
    assert_int_equal(lep_frame_parse(b.data, b.len, 512, &f, &used), 0);
    assert_int_equal(f.channel, 1);
    assert_int_equal(f.body.len, 14);
    assert_memory_equal(f.body.ptr, open_body, 9);
    assert_memory_equal(f.body.ptr + 9, "hello", 5);
    pos += used;
    assert_int_equal(lep_frame_parse(b.data + pos, b.len - pos, 512, &f, &used), 0);
    assert_true(lep_frame_is_empty(&f));
    pos += used;
    assert_int_equal(lep_frame_parse(b.data + pos, b.len - pos, 512, &f, &used), 0);
    assert_int_equal(f.type, LEP_FRAME_SASL);
    assert_int_equal(f.body.len, 9);
    pos += used;
    assert_int_equal(pos, b.len);

    /* Exactly at the limit, and one over: nothing written. */
    static uint8_t body[600];
    size_t before = b.len;
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES(body, 500),
                                      LEP_BYTES(body, 4), 512),
                     0);
    assert_int_equal(b.len, before + 512);
    before = b.len;
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES(body, 500),
                                      LEP_BYTES(body, 5), 512),
                     LEP_ERR_FRAME_SIZE);
    assert_int_equal(b.len, before);
    /* A limit below the header size admits nothing. */
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES(NULL, 0),
                                      LEP_BYTES(NULL, 0), 4),
                     LEP_ERR_FRAME_SIZE);
    assert_int_equal(b.len, before);
    lep_buf_fini(&b);
}

/* Allocation failure leaves the buffer as it was. */
static int fail_allocs;

static void *
failing_malloc(size_t n, void *ctx)
{
    (void)ctx;
    return fail_allocs ? NULL : test_malloc(n);
}

static void *
failing_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    return fail_allocs ? NULL : test_realloc(p, n);
}

static void
failing_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        test_free(p);
}

static void
test_frame_append_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {failing_malloc, failing_realloc, failing_free, NULL};
    lep_set_allocator(&a);
    lep_buf_t b;
    lep_buf_init(&b);
    fail_allocs = 1;
    size_t mark = 7;
    assert_int_equal(lep_frame_begin(&b, LEP_FRAME_AMQP, 0, &mark), LEP_ERR_NOMEM);
    assert_int_equal(mark, 7);
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES("x", 1),
                                      LEP_BYTES(NULL, 0), 512),
                     LEP_ERR_NOMEM);
    assert_int_equal(b.len, 0);
    fail_allocs = 0;
    assert_int_equal(lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES("x", 1),
                                      LEP_BYTES(NULL, 0), 512),
                     0);
    assert_int_equal(b.len, 9);
    lep_buf_fini(&b);
    lep_set_allocator(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_header_constants),
        cmocka_unit_test(test_proto_header_parse_valid),
        cmocka_unit_test(test_proto_header_incomplete),
        cmocka_unit_test(test_proto_header_bad),
        cmocka_unit_test(test_proto_header_write),
        cmocka_unit_test(test_frame_parse_basic),
        cmocka_unit_test(test_frame_parse_channel_and_type),
        cmocka_unit_test(test_frame_parse_empty),
        cmocka_unit_test(test_frame_parse_extended_header),
        cmocka_unit_test(test_frame_parse_bad_header),
        cmocka_unit_test(test_frame_parse_every_truncation),
        cmocka_unit_test(test_frame_parse_stream),
        cmocka_unit_test(test_frame_parse_max_frame_size),
        cmocka_unit_test(test_frame_header_write),
        cmocka_unit_test(test_frame_begin_end),
        cmocka_unit_test(test_frame_begin_fixed_overflow),
        cmocka_unit_test(test_frame_append),
        cmocka_unit_test(test_frame_append_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
