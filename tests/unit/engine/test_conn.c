/* Engine: connection open/close, negotiation, layers, header errors,
 * idle timeouts, framing errors, and random use of the whole API.  Two
 * engines wired in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <lepton/engine.h>
#include <lepton/sasl.h>

#define MAXEV 256

typedef struct peer {
    lep_conn_t *c;
    lep_event_type_t ev[MAXEV];
    int nev;
} peer_t;

static void
drain_events(peer_t *p)
{
    const lep_event_t *e;
    while ((e = lep_conn_next_event(p->c))) {
        if (p->nev < MAXEV)
            p->ev[p->nev++] = e->type;
    }
}

static bool
saw(const peer_t *p, lep_event_type_t t)
{
    for (int i = 0; i < p->nev; i++)
        if (p->ev[i] == t)
            return true;
    return false;
}

/* Moves bytes one way; returns how many. */
static size_t
move(lep_conn_t *from, lep_conn_t *to)
{
    lep_bytes_t b = lep_conn_output(from);
    if (!b.len)
        return 0;
    size_t used = 0;
    if (lep_conn_feed(to, b.ptr, b.len, &used) != 0)
        used = b.len; /* input closed: the bytes are dropped */
    lep_conn_consumed(from, b.len);
    return b.len;
}

static void
pump(peer_t *a, peer_t *b)
{
    for (int i = 0; i < 1000; i++) {
        size_t n = move(a->c, b->c) + move(b->c, a->c);
        drain_events(a);
        drain_events(b);
        if (!n)
            break;
    }
}

static void
setup_pair(peer_t *a, peer_t *b, lep_conn_opts_t *oa, lep_conn_opts_t *ob)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    lep_conn_opts_t da, db;
    if (!oa) {
        lep_conn_opts_init(&da);
        da.container_id = "client";
        oa = &da;
    }
    if (!ob) {
        lep_conn_opts_init(&db);
        db.container_id = "server";
        ob = &db;
    }
    ob->server = true;
    assert_int_equal(lep_conn_new(&a->c, oa), 0);
    assert_int_equal(lep_conn_new(&b->c, ob), 0);
}

static void
test_open_close(void **state)
{
    (void)state;
    peer_t a, b;
    setup_pair(&a, &b, NULL, NULL);
    assert_false(lep_conn_is_server(a.c));
    assert_true(lep_conn_is_server(b.c));
    assert_int_equal(lep_conn_open(a.c), 0);
    assert_int_equal(lep_conn_open(a.c), LEP_ERR_STATE);
    pump(&a, &b);
    assert_true(saw(&b, LEP_EVENT_CONN_REMOTE_OPEN));
    assert_int_equal(lep_conn_open(b.c), 0);
    pump(&a, &b);
    assert_true(saw(&a, LEP_EVENT_CONN_REMOTE_OPEN));
    const lep_open_t *o = lep_conn_remote_open(a.c);
    assert_non_null(o);
    assert_true(lep_bytes_eq_str(o->container_id, "server"));
    assert_int_equal(lep_conn_remote_state(a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_close(a.c, NULL), 0);
    pump(&a, &b);
    assert_true(saw(&b, LEP_EVENT_CONN_REMOTE_CLOSE));
    assert_false(lep_condition_set(lep_conn_remote_condition(b.c)));
    assert_int_equal(lep_conn_close(b.c, NULL), 0);
    pump(&a, &b);
    assert_true(lep_conn_finished(a.c));
    assert_true(lep_conn_finished(b.c));
    assert_true(saw(&a, LEP_EVENT_TRANSPORT_CLOSED));
    assert_true(saw(&b, LEP_EVENT_TRANSPORT_CLOSED));
    assert_false(saw(&a, LEP_EVENT_TRANSPORT_ERROR));
    assert_false(saw(&b, LEP_EVENT_TRANSPORT_ERROR));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
test_bad_header(void **state)
{
    (void)state;
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = true;
    lep_conn_t *c;
    assert_int_equal(lep_conn_new(&c, &o), 0);
    size_t used;
    assert_int_equal(lep_conn_feed(c, (const uint8_t *)"GET / HTTP/1.1\r\n", 16, &used), 0);
    lep_bytes_t out = lep_conn_output(c);
    assert_int_equal(out.len, 8);
    assert_memory_equal(out.ptr, LEP_PROTO_HEADER_AMQP, 8);
    lep_conn_consumed(c, out.len);
    assert_true(lep_conn_finished(c));
    const lep_event_t *e = lep_conn_next_event(c);
    assert_non_null(e);
    assert_int_equal(e->type, LEP_EVENT_TRANSPORT_ERROR);
    assert_true(lep_bytes_eq_str(lep_conn_local_condition(c)->name,
                                 LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR));
    e = lep_conn_next_event(c);
    assert_non_null(e);
    assert_int_equal(e->type, LEP_EVENT_TRANSPORT_CLOSED);
    assert_null(lep_conn_next_event(c));
    lep_conn_free(c);
}

static void
test_negotiation(void **state)
{
    (void)state;
    peer_t a, b;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.container_id = "client-x";
    oa.hostname = "vhost.example";
    oa.max_frame_size = 1024;
    oa.channel_max = 7;
    static const uint8_t caps[] = {0xa3, 0x03, 'f', 'o', 'o'};
    static const uint8_t props[] = {0xc1, 0x07, 0x02, 0xa3, 0x01, 'k', 0xa1, 0x01, 'v'};
    oa.offered_capabilities = LEP_BYTES(caps, sizeof caps);
    oa.properties = LEP_BYTES(props, sizeof props);
    ob.container_id = "server-x";
    ob.max_frame_size = 4096;
    ob.channel_max = 100;
    ob.desired_capabilities = LEP_BYTES(caps, sizeof caps);
    setup_pair(&a, &b, &oa, &ob);
    lep_conn_open(a.c);
    lep_conn_open(b.c); /* before the client's header: sent after it */
    pump(&a, &b);
    const lep_open_t *o = lep_conn_remote_open(b.c);
    assert_non_null(o);
    assert_true(lep_bytes_eq_str(o->container_id, "client-x"));
    assert_true(lep_bytes_eq_str(o->hostname, "vhost.example"));
    assert_int_equal(o->max_frame_size, 1024);
    assert_int_equal(o->channel_max, 7);
    assert_int_equal(o->offered_capabilities.len, sizeof caps);
    assert_memory_equal(o->offered_capabilities.ptr, caps, sizeof caps);
    assert_int_equal(o->properties.len, sizeof props);
    assert_memory_equal(o->properties.ptr, props, sizeof props);
    o = lep_conn_remote_open(a.c);
    assert_int_equal(o->desired_capabilities.len, sizeof caps);
    assert_false(o->present & LEP_OPEN_HAS_HOSTNAME);
    /* each may send what the other accepts */
    assert_int_equal(lep_conn_max_frame_size(a.c), 4096);
    assert_int_equal(lep_conn_max_frame_size(b.c), 1024);
    assert_int_equal(lep_conn_channel_max(a.c), 7);
    assert_int_equal(lep_conn_channel_max(b.c), 7);
    /* channels beyond the negotiated max are refused */
    lep_session_t *s[9];
    int ok = 0;
    for (int i = 0; i < 9; i++) {
        assert_int_equal(lep_session_new(a.c, &s[i]), 0);
        if (lep_session_begin(s[i]) == 0)
            ok++;
    }
    assert_int_equal(ok, 8);
    pump(&a, &b);
    lep_conn_close(a.c, NULL);
    pump(&a, &b);
    lep_conn_close(b.c, NULL);
    pump(&a, &b);
    assert_true(lep_conn_finished(a.c) && lep_conn_finished(b.c));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
open_pair(peer_t *a, peer_t *b, lep_conn_opts_t *oa, lep_conn_opts_t *ob)
{
    setup_pair(a, b, oa, ob);
    lep_conn_open(a->c);
    lep_conn_open(b->c);
    pump(a, b);
    assert_int_equal(lep_conn_remote_state(a->c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_remote_state(b->c), LEP_STATE_ACTIVE);
}

static void
test_close_with_error(void **state)
{
    (void)state;
    peer_t a, b;
    open_pair(&a, &b, NULL, NULL);
    static const uint8_t info[] = {0xc1, 0x05, 0x02, 0xa3, 0x01, 'x', 0x40};
    lep_condition_t bad = {lep_bytes_str("amqp:connection:forced"), lep_bytes_str("bye"),
                           LEP_BYTES(info, sizeof info - 1)};
    assert_int_equal(lep_conn_close(b.c, &bad), LEP_ERR_INVALID);
    lep_condition_t cond = {lep_bytes_str("amqp:connection:forced"), lep_bytes_str("bye"),
                            LEP_BYTES(info, sizeof info)};
    assert_int_equal(lep_conn_close(b.c, &cond), 0);
    pump(&a, &b);
    const lep_condition_t *rc = lep_conn_remote_condition(a.c);
    assert_true(lep_bytes_eq_str(rc->name, "amqp:connection:forced"));
    assert_true(lep_bytes_eq_str(rc->description, "bye"));
    assert_int_equal(rc->info.len, sizeof info);
    lep_conn_close(a.c, NULL);
    pump(&a, &b);
    assert_true(lep_conn_finished(a.c) && lep_conn_finished(b.c));
    assert_false(saw(&a, LEP_EVENT_TRANSPORT_ERROR));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

/* Feeds raw bytes to b after the open exchange; checks what a sees. */
static void
violation(const uint8_t *bytes, size_t n, const char *want_cond)
{
    peer_t a, b;
    open_pair(&a, &b, NULL, NULL);
    size_t used;
    assert_int_equal(lep_conn_feed(b.c, bytes, n, &used), 0);
    pump(&a, &b);
    assert_true(saw(&b, LEP_EVENT_TRANSPORT_ERROR));
    assert_true(saw(&a, LEP_EVENT_CONN_REMOTE_CLOSE));
    assert_true(lep_bytes_eq_str(lep_conn_remote_condition(a.c)->name, want_cond));
    assert_true(lep_bytes_eq_str(lep_conn_local_condition(b.c)->name, want_cond));
    /* b has closed; input after the close is refused, not parsed */
    assert_int_equal(lep_conn_feed(b.c, bytes, n, &used), LEP_ERR_STATE);
    lep_conn_close(a.c, NULL);
    pump(&a, &b);
    assert_true(lep_conn_finished(b.c));
    assert_true(lep_conn_finished(a.c));
    assert_true(saw(&b, LEP_EVENT_TRANSPORT_CLOSED));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
test_garbage_frame(void **state)
{
    (void)state;
    /* a frame whose body is not a performative */
    static const uint8_t f[] = {0, 0, 0, 12, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    violation(f, sizeof f, LEP_AMQP_ERR_DECODE_ERROR);
}

static void
test_unknown_performative(void **state)
{
    (void)state;
    static const uint8_t f[] = {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x7f, 0x45};
    violation(f, sizeof f, LEP_AMQP_ERR_DECODE_ERROR);
}

static void
test_bad_frame_header(void **state)
{
    (void)state;
    static const uint8_t f[] = {0, 0, 0, 8, 1, 0, 0, 0}; /* doff 1 */
    violation(f, sizeof f, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR);
}

static void
test_oversized_frame(void **state)
{
    (void)state;
    /* 1 MB announced, max-frame-size 65536: refused from the header */
    static const uint8_t f[] = {0, 0x10, 0, 0, 2, 0, 0, 0};
    violation(f, sizeof f, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR);
}

static void
test_sasl_frame_without_sasl(void **state)
{
    (void)state;
    static const uint8_t f[] = {0, 0, 0, 12, 2, 1, 0, 0, 0x00, 0x53, 0x40, 0x45};
    violation(f, sizeof f, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR);
}

static void
test_second_open(void **state)
{
    (void)state;
    /* open(container-id "x") */
    static const uint8_t f[] = {0, 0, 0, 17, 2, 0, 0, 0, 0x00, 0x53, 0x10,
                                0xc0, 0x04, 0x01, 0xa1, 0x01, 'x'};
    violation(f, sizeof f, LEP_AMQP_ERR_ILLEGAL_STATE);
}

static void
test_frame_on_unknown_channel(void **state)
{
    (void)state;
    /* end on channel 5 */
    static const uint8_t f[] = {0, 0, 0, 12, 2, 0, 0, 5, 0x00, 0x53, 0x17, 0x45};
    violation(f, sizeof f, LEP_AMQP_ERR_ILLEGAL_STATE);
}

static void
test_frame_before_open(void **state)
{
    (void)state;
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = true;
    lep_conn_t *c;
    assert_int_equal(lep_conn_new(&c, &o), 0);
    static const uint8_t in[] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0,
                                 0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x17, 0x45};
    size_t used;
    lep_conn_feed(c, in, sizeof in, &used);
    assert_true(lep_bytes_eq_str(lep_conn_local_condition(c)->name, LEP_AMQP_ERR_ILLEGAL_STATE));
    /* our answer: header, open, close */
    lep_bytes_t out = lep_conn_output(c);
    assert_true(out.len > 8);
    assert_memory_equal(out.ptr, LEP_PROTO_HEADER_AMQP, 8);
    lep_conn_consumed(c, out.len);
    assert_true(lep_conn_finished(c));
    lep_conn_free(c);
}

static void
test_eof_without_close(void **state)
{
    (void)state;
    peer_t a, b;
    open_pair(&a, &b, NULL, NULL);
    lep_conn_input_closed(b.c);
    drain_events(&b);
    assert_true(saw(&b, LEP_EVENT_TRANSPORT_ERROR));
    assert_true(lep_conn_finished(b.c));
    assert_true(saw(&b, LEP_EVENT_TRANSPORT_CLOSED));
    lep_conn_output_closed(a.c);
    drain_events(&a);
    assert_true(lep_conn_finished(a.c));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
test_heartbeats_and_idle_timeout(void **state)
{
    (void)state;
    peer_t a, b;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.idle_timeout_ms = 1000; /* a wants to hear from b every second */
    ob.idle_timeout_ms = 4000;
    setup_pair(&a, &b, &oa, &ob);
    int64_t t = 10000;
    lep_conn_tick(a.c, t);
    lep_conn_tick(b.c, t);
    lep_conn_open(a.c);
    lep_conn_open(b.c);
    pump(&a, &b);
    assert_int_equal(lep_conn_remote_idle_timeout(b.c), 1000);
    assert_int_equal(lep_conn_remote_idle_timeout(a.c), 4000);
    /* b keeps a alive with empty frames every 500 ms; a sends every 2 s */
    for (int i = 0; i < 40; i++) {
        t += 100;
        int64_t da = lep_conn_tick(a.c, t);
        int64_t db = lep_conn_tick(b.c, t);
        assert_true(da > t && da <= t + 1000);
        assert_true(db > t && db <= t + 2000);
        pump(&a, &b);
    }
    assert_false(saw(&a, LEP_EVENT_TRANSPORT_ERROR));
    assert_false(saw(&b, LEP_EVENT_TRANSPORT_ERROR));
    /* b goes silent: its output is dropped from now on */
    for (int i = 0; i < 12; i++) {
        t += 100;
        lep_conn_tick(b.c, t);
        lep_bytes_t o = lep_conn_output(b.c);
        lep_conn_consumed(b.c, o.len);
        lep_conn_tick(a.c, t);
        move(a.c, b.c);
        drain_events(&a);
        drain_events(&b);
    }
    assert_true(saw(&a, LEP_EVENT_TRANSPORT_ERROR));
    assert_true(lep_bytes_eq_str(lep_conn_local_condition(a.c)->name,
                                 LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED));
    /* a's close tells b why */
    pump(&a, &b);
    assert_true(saw(&b, LEP_EVENT_CONN_REMOTE_CLOSE));
    assert_true(lep_bytes_eq_str(lep_conn_remote_condition(b.c)->name,
                                 LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED));
    lep_conn_close(b.c, NULL);
    pump(&a, &b);
    assert_true(lep_conn_finished(a.c) && lep_conn_finished(b.c));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

/* Bytes fed between ticks count as heard at the next tick: a caller that
 * ticks only on its poll deadline must not fail a live peer. */
static void
test_idle_input_between_ticks(void **state)
{
    (void)state;
    peer_t a, b;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.idle_timeout_ms = 500;
    setup_pair(&a, &b, &oa, &ob);
    int64_t t = 1000;
    lep_conn_tick(a.c, t);
    lep_conn_tick(b.c, t);
    lep_conn_open(a.c);
    lep_conn_open(b.c);
    pump(&a, &b);
    for (int i = 0; i < 10; i++) {
        int64_t deadline = lep_conn_tick(a.c, t);
        assert_true(deadline > t);
        /* b sends something 400 ms after a's tick; a is not ticked then */
        t += 400;
        lep_conn_tick(b.c, t);
        uint8_t hb[8];
        lep_frame_header_write(hb, LEP_FRAME_AMQP, 0, 0);
        size_t used;
        assert_int_equal(lep_conn_feed(a.c, hb, sizeof hb, &used), 0);
        /* a wakes at its old deadline */
        t = deadline;
    }
    drain_events(&a);
    assert_false(saw(&a, LEP_EVENT_TRANSPORT_ERROR));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

/* A layer that XORs every byte, both ways, and delays its output until
 * it has seen one byte of input (like a handshake). */
typedef struct xor_layer {
    uint8_t key;
    bool records;
    bool ready;
    int *freed;
} xor_layer_t;

static int
xor_input(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used, lep_buf_t *up,
          lep_buf_t *down)
{
    (void)c;
    (void)down;
    xor_layer_t *x = ctx;
    x->ready = true;
    /* a record layer: takes whole 3-byte records only, unless the key
     * says the stream has no records (then everything) */
    size_t n = x->records ? len - len % 3 : len;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = in[i] ^ x->key;
        if (lep_buf_append(up, &v, 1) != 0)
            return LEP_ERR_NOMEM;
    }
    *used = n;
    return 0;
}

static int
xor_output(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used, lep_buf_t *down)
{
    xor_layer_t *x = ctx;
    if (!x->ready && lep_conn_is_server(c)) {
        *used = 0;
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t v = in[i] ^ x->key;
        if (lep_buf_append(down, &v, 1) != 0)
            return LEP_ERR_NOMEM;
    }
    *used = len;
    return 0;
}

static void
xor_free(void *ctx)
{
    xor_layer_t *x = ctx;
    (*x->freed)++;
    free(x);
}

static const lep_layer_ops_t xor_ops = {"xor", xor_input, xor_output, NULL, xor_free};

static void
test_layers(void **state)
{
    (void)state;
    peer_t a, b;
    setup_pair(&a, &b, NULL, NULL);
    int freed = 0;
    for (int i = 0; i < 2; i++) {
        xor_layer_t *x1 = calloc(1, sizeof *x1), *x2 = calloc(1, sizeof *x2);
        x1->key = 0x5a;
        x2->key = 0x33;
        x1->records = i == 0; /* a's upper layer holds partial records */
        x1->freed = x2->freed = &freed;
        lep_conn_t *c = i ? b.c : a.c;
        if (i == 0)
            lep_conn_open(c); /* layers may come after open, before any output */
        assert_int_equal(lep_conn_add_layer(c, &xor_ops, x1), 0);
        assert_int_equal(lep_conn_add_layer(c, &xor_ops, x2), 0);
    }
    lep_conn_set_user(b.c, lep_bytes_str("alice"));
    lep_conn_set_encrypted(b.c, true);
    assert_true(lep_bytes_eq_str(lep_conn_user(b.c), "alice"));
    assert_true(lep_conn_encrypted(b.c));
    lep_bytes_t first = lep_conn_output(a.c);
    assert_int_equal(first.ptr[0], 'A' ^ 0x5a ^ 0x33);
    pump(&a, &b);
    assert_true(saw(&b, LEP_EVENT_CONN_REMOTE_OPEN));
    lep_conn_open(b.c);
    pump(&a, &b);
    assert_true(saw(&a, LEP_EVENT_CONN_REMOTE_OPEN));
    lep_conn_close(a.c, NULL);
    pump(&a, &b);
    lep_conn_close(b.c, NULL);
    pump(&a, &b);
    assert_true(lep_conn_finished(a.c) && lep_conn_finished(b.c));
    assert_int_equal(lep_conn_add_layer(a.c, &xor_ops, NULL), LEP_ERR_STATE);
    lep_conn_free(a.c);
    lep_conn_free(b.c);
    assert_int_equal(freed, 4);
}

static int trace_lines;
static void
count_trace(void *ctx, lep_conn_t *c, bool sent, const char *line)
{
    (void)ctx;
    (void)c;
    (void)sent;
    assert_non_null(line);
    if (strstr(line, "open") || strstr(line, "close"))
        trace_lines++;
}

static void
test_trace(void **state)
{
    (void)state;
    peer_t a, b;
    setup_pair(&a, &b, NULL, NULL);
    lep_conn_set_trace(a.c, count_trace, NULL);
    trace_lines = 0;
    lep_conn_open(a.c);
    lep_conn_open(b.c);
    pump(&a, &b);
    lep_conn_close(a.c, NULL);
    lep_conn_close(b.c, NULL);
    pump(&a, &b);
    assert_int_equal(trace_lines, 4); /* open and close, both ways */
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static uint32_t
rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* ------------------------------------------------------------------ */
/* Random API use on both sides, with random cuts of the byte streams:
 * no crash, no leak, both engines finish. */

#define CH_MAX 64

typedef struct chaos_del {
    lep_delivery_t *d;
    lep_link_t *l;
    bool streaming; /* ours, still being written */
} chaos_del_t;

typedef struct chaos {
    lep_conn_t *c;
    lep_session_t *ss[CH_MAX];
    int nss;
    lep_link_t *ls[CH_MAX];
    int nls;
    chaos_del_t ds[512];
    int nds;
    uint32_t seed;
} chaos_t;

static uint32_t
crnd(chaos_t *x, uint32_t n)
{
    return rnd(&x->seed) % n;
}

static void
track_del(chaos_t *x, lep_delivery_t *d, lep_link_t *l, bool streaming)
{
    for (int i = 0; i < x->nds; i++)
        if (x->ds[i].d == d)
            return;
    if (x->nds < 512)
        x->ds[x->nds++] = (chaos_del_t){d, l, streaming};
    else
        lep_delivery_settle(d);
}

static void
untrack_del(chaos_t *x, int i)
{
    x->ds[i] = x->ds[--x->nds];
}

static void
track_link(chaos_t *x, lep_link_t *l)
{
    for (int i = 0; i < x->nls; i++)
        if (x->ls[i] == l)
            return;
    if (x->nls < CH_MAX)
        x->ls[x->nls++] = l;
}

static void
track_session(chaos_t *x, lep_session_t *s)
{
    for (int i = 0; i < x->nss; i++)
        if (x->ss[i] == s)
            return;
    if (x->nss < CH_MAX)
        x->ss[x->nss++] = s;
}

static void
forget_link(chaos_t *x, lep_link_t *l)
{
    for (int i = x->nds - 1; i >= 0; i--)
        if (x->ds[i].l == l)
            untrack_del(x, i);
    for (int i = 0; i < x->nls; i++)
        if (x->ls[i] == l) {
            x->ls[i] = x->ls[--x->nls];
            break;
        }
}

static long chaos_deliveries, chaos_attaches, chaos_errors;

static void
chaos_events(chaos_t *x)
{
    const lep_event_t *e;
    while ((e = lep_conn_next_event(x->c))) {
        switch (e->type) {
        case LEP_EVENT_CONN_REMOTE_OPEN:
            if (lep_conn_local_state(x->c) == LEP_STATE_UNINIT)
                lep_conn_open(x->c);
            break;
        case LEP_EVENT_CONN_REMOTE_CLOSE:
            if (lep_conn_local_state(x->c) != LEP_STATE_CLOSED)
                lep_conn_close(x->c, NULL);
            break;
        case LEP_EVENT_SESSION_REMOTE_BEGIN:
            track_session(x, e->session);
            if (lep_session_local_state(e->session) == LEP_STATE_UNINIT && crnd(x, 10))
                lep_session_begin(e->session);
            break;
        case LEP_EVENT_SESSION_REMOTE_END:
            if (lep_session_local_state(e->session) == LEP_STATE_ACTIVE)
                lep_session_end(e->session, NULL);
            break;
        case LEP_EVENT_LINK_REMOTE_ATTACH:
            track_link(x, e->link);
            if (lep_link_local_state(e->link) == LEP_STATE_UNINIT) {
                if (crnd(x, 10)) {
                    lep_link_attach(e->link);
                } else {
                    lep_condition_t c = {lep_bytes_str("amqp:not-found"), {NULL, 0}, {NULL, 0}};
                    if (lep_link_attach(e->link) == 0)
                        lep_link_detach(e->link, true, &c);
                }
            }
            break;
        case LEP_EVENT_LINK_REMOTE_DETACH:
            if (lep_link_local_state(e->link) == LEP_STATE_ACTIVE)
                lep_link_detach(e->link, lep_link_remote_closed(e->link), NULL);
            break;
        case LEP_EVENT_DELIVERY:
            chaos_deliveries++;
            track_del(x, e->delivery, e->link, false);
            break;
        case LEP_EVENT_TRANSPORT_ERROR:
            chaos_errors++;
            break;
        default:
            break;
        }
        if (e->type == LEP_EVENT_LINK_REMOTE_ATTACH)
            chaos_attaches++;
    }
}

static void
chaos_move(chaos_t *from, chaos_t *to, size_t max)
{
    lep_bytes_t o = lep_conn_output(from->c);
    size_t n = o.len < max ? o.len : max;
    if (!n)
        return;
    size_t used;
    lep_conn_feed(to->c, o.ptr, n, &used);
    lep_conn_consumed(from->c, n);
}

static void
chaos_step(chaos_t *x, chaos_t *y)
{
    static uint8_t body[4000];
    switch (crnd(x, 16)) {
    case 0:
        if (x->nss < CH_MAX && lep_conn_local_state(x->c) == LEP_STATE_ACTIVE) {
            lep_session_t *s;
            if (lep_session_new(x->c, &s) == 0) {
                track_session(x, s);
                lep_session_begin(s);
            }
        }
        break;
    case 1:
        if (x->nss && x->nls < CH_MAX) {
            lep_session_t *s = x->ss[crnd(x, (uint32_t)x->nss)];
            if (lep_session_local_state(s) != LEP_STATE_ACTIVE)
                break;
            char name[32];
            snprintf(name, sizeof name, "l%u", rnd(&x->seed));
            lep_link_opts_t lo;
            lep_link_opts_init(&lo);
            lo.name = name;
            lo.receiver = crnd(x, 2);
            lo.snd_settle_mode = (uint8_t)crnd(x, 3);
            lo.rcv_settle_mode = (uint8_t)crnd(x, 2);
            lo.max_message_size = crnd(x, 4) ? 0 : 2500;
            lep_link_t *l;
            if (lep_link_new(s, &lo, &l) == 0) {
                track_link(x, l);
                lep_link_attach(l);
            }
        }
        break;
    case 2:
    case 3:
        if (x->nls) {
            lep_link_t *l = x->ls[crnd(x, (uint32_t)x->nls)];
            if (lep_link_is_receiver(l)) {
                lep_link_flow(l, crnd(x, 20));
                if (!crnd(x, 8))
                    lep_link_drain(l);
            } else {
                for (uint32_t k = crnd(x, 5); k > 0; k--) {
                    lep_delivery_t *d = NULL;
                    size_t len = crnd(x, 4) ? crnd(x, 200) : crnd(x, sizeof body);
                    if (lep_link_send(l, lep_bytes_str(""), body, len, !crnd(x, 4), &d) == 0 && d)
                        track_del(x, d, l, false);
                }
                if (!crnd(x, 6))
                    lep_link_drained(l);
            }
        }
        break;
    case 4:
        if (x->nls) {
            lep_link_t *l = x->ls[crnd(x, (uint32_t)x->nls)];
            lep_delivery_t *d;
            if (!lep_link_is_receiver(l) && lep_link_delivery_new(l, lep_bytes_str(""), &d) == 0)
                track_del(x, d, l, true);
        }
        break;
    case 5:
    case 6:
        if (x->nds) {
            int i = (int)crnd(x, (uint32_t)x->nds);
            chaos_del_t *cd = &x->ds[i];
            if (cd->streaming) {
                uint32_t r = crnd(x, 6);
                if (r == 0) {
                    lep_delivery_abort(cd->d);
                    cd->streaming = false;
                } else if (lep_delivery_write(cd->d, body, crnd(x, 1500), r != 1) != 0 || r == 1) {
                    cd->streaming = false;
                }
            } else {
                uint32_t r = crnd(x, 4);
                if (r == 0)
                    lep_delivery_accept(cd->d);
                else if (r == 1)
                    lep_delivery_release(cd->d);
                if (r >= 1 || lep_delivery_remote_settled(cd->d)) {
                    lep_delivery_settle(cd->d);
                    untrack_del(x, i);
                }
            }
        }
        break;
    case 7:
        if (x->nls && !crnd(x, 4)) {
            lep_link_t *l = x->ls[crnd(x, (uint32_t)x->nls)];
            if (lep_link_local_state(l) == LEP_STATE_ACTIVE)
                lep_link_detach(l, crnd(x, 2), NULL);
        }
        break;
    case 8:
        if (x->nls) {
            lep_link_t *l = x->ls[crnd(x, (uint32_t)x->nls)];
            for (int i = x->nds - 1; i >= 0; i--)
                if (x->ds[i].l == l && lep_link_local_state(l) == LEP_STATE_CLOSED) {
                    lep_delivery_settle(x->ds[i].d);
                    untrack_del(x, i);
                }
            if (lep_link_free(l) == 0)
                forget_link(x, l);
        }
        break;
    case 9:
        if (x->nss && !crnd(x, 8)) {
            lep_session_t *s = x->ss[crnd(x, (uint32_t)x->nss)];
            if (lep_session_local_state(s) == LEP_STATE_ACTIVE)
                lep_session_end(s, NULL);
        }
        break;
    default:
        chaos_move(x, y, 1 + crnd(x, 3000));
        break;
    }
    chaos_events(x);
}

static void
test_chaos(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 600; seed++) {
        chaos_t a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        a.seed = seed;
        b.seed = seed * 7919u;
        lep_conn_opts_t oa, ob;
        lep_conn_opts_init(&oa);
        lep_conn_opts_init(&ob);
        ob.server = true;
        oa.max_frame_size = 512 + seed * 37;
        ob.session_window = 4 + seed;
        ob.max_unsettled = 30;
        assert_int_equal(lep_conn_new(&a.c, &oa), 0);
        assert_int_equal(lep_conn_new(&b.c, &ob), 0);
        int freed = 0;
        if (seed % 3 == 0) {
            /* the same through a transport layer on each side */
            for (int i = 0; i < 2; i++) {
                xor_layer_t *xl = calloc(1, sizeof *xl);
                xl->key = (uint8_t)seed;
                xl->freed = &freed;
                assert_int_equal(lep_conn_add_layer(i ? b.c : a.c, &xor_ops, xl), 0);
            }
        }
        lep_conn_open(a.c);
        for (int step = 0; step < 3000; step++) {
            if (crnd(&a, 2))
                chaos_step(&a, &b);
            else
                chaos_step(&b, &a);
            lep_conn_tick(a.c, step);
            lep_conn_tick(b.c, step);
        }
        if (lep_conn_local_state(a.c) != LEP_STATE_CLOSED)
            lep_conn_close(a.c, NULL);
        for (int i = 0; i < 200; i++) {
            chaos_move(&a, &b, SIZE_MAX);
            chaos_events(&b);
            chaos_move(&b, &a, SIZE_MAX);
            chaos_events(&a);
        }
        assert_true(lep_conn_finished(a.c));
        assert_true(lep_conn_finished(b.c));
        lep_conn_free(a.c);
        lep_conn_free(b.c);
    }
    print_message("chaos: %ld delivery events, %ld remote attaches, %ld transport errors\n",
                  chaos_deliveries, chaos_attaches, chaos_errors);
    assert_true(chaos_deliveries > 1000);
    assert_int_equal(chaos_errors, 0);
}

/* A client still in its SASL exchange: the idle timeout waits for the
 * peer's open (SASL traffic keeps it alive anyway), and a connection that
 * fails or is closed before SASL finishes still finishes once its input
 * closes, though its AMQP close can never pass the SASL layer. */
static void
sasl_client(lep_conn_t **c)
{
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.idle_timeout_ms = 1000;
    assert_int_equal(lep_conn_new(c, &o), 0);
    lep_sasl_client_opts_t co;
    lep_sasl_client_opts_init(&co);
    co.mechanisms = "ANONYMOUS";
    assert_int_equal(lep_sasl_client_add(*c, &co, NULL), 0);
    assert_int_equal(lep_conn_open(*c), 0);
    lep_conn_tick(*c, 0);
    lep_conn_consumed(*c, lep_conn_output(*c).len);
    size_t used;
    assert_int_equal(lep_conn_feed(*c, (const uint8_t *)LEP_PROTO_HEADER_SASL, 8, &used), 0);
}

static int
drain_errors(lep_conn_t *c)
{
    int n = 0;
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(c)) != NULL)
        n += ev->type == LEP_EVENT_TRANSPORT_ERROR;
    lep_conn_consumed(c, lep_conn_output(c).len);
    return n;
}

static void
test_sasl_pending_idle_and_finish(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) {
        lep_conn_t *c;
        sasl_client(&c);
        /* no open from the peer yet: no idle failure however long */
        for (int64_t t = 500; t <= 5000; t += 500)
            lep_conn_tick(c, t);
        assert_int_equal(drain_errors(c), 0);
        if (how == 0)
            assert_int_equal(lep_conn_close(c, NULL), 0);
        else if (how == 1)
            lep_conn_transport_error(c, "amqp:internal-error", "test failure");
        drain_errors(c);
        lep_conn_input_closed(c);
        for (int i = 0; i < 3; i++) {
            drain_errors(c);
            lep_conn_tick(c, 6000 + i * 1000);
        }
        assert_true(lep_conn_finished(c));
        lep_conn_free(c);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_close),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_close_with_error),
        cmocka_unit_test(test_garbage_frame),
        cmocka_unit_test(test_unknown_performative),
        cmocka_unit_test(test_bad_frame_header),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_sasl_frame_without_sasl),
        cmocka_unit_test(test_second_open),
        cmocka_unit_test(test_frame_on_unknown_channel),
        cmocka_unit_test(test_frame_before_open),
        cmocka_unit_test(test_eof_without_close),
        cmocka_unit_test(test_heartbeats_and_idle_timeout),
        cmocka_unit_test(test_idle_input_between_ticks),
        cmocka_unit_test(test_sasl_pending_idle_and_finish),
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_chaos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
