/* Engine scenarios, protocol violations: raw bytes injected into the
 * server side (garbage, bad header, oversized frame, wrong performative,
 * unknown channel or handle, window overruns).  Each must end with the
 * AMQP condition the spec names reaching the peer, and both engines
 * finishing cleanly.  A credit overrun is the exception: it is taken. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pair.h"

/* What a wrote: its session channel, ids and link handle. */
typedef struct ids {
    uint16_t channel;
    uint32_t next_outgoing_id;
    uint32_t handle;
    uint32_t transfers;
} ids_t;

static void
ids_cb(void *ctx, const lep_frame_t *f, int rc, const lep_performative_t *perf, lep_bytes_t pl)
{
    (void)pl;
    ids_t *x = (ids_t *)ctx;
    if (rc != 0)
        return;
    if (perf->code == LEP_DESC_BEGIN) {
        x->channel = f->channel;
        x->next_outgoing_id = perf->u.begin.next_outgoing_id;
    } else if (perf->code == LEP_DESC_ATTACH) {
        x->handle = perf->u.attach.handle;
    } else if (perf->code == LEP_DESC_TRANSFER) {
        x->transfers++;
    }
}

/* Opens a, b; a session and a sending link from a (b grants credit). */
static lep_link_t *
setup(pair_t *p, const lep_conn_opts_t *ob, uint32_t credit, ids_t *ids)
{
    assert_int_equal(pair_init(p, NULL, ob), 0);
    p->b.auto_credit = credit;
    pair_open(p);
    lep_session_t *s = pair_session(p);
    lep_link_t *l = pair_link(p, s, "l", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_link_remote_state(l), LEP_STATE_ACTIVE);
    memset(ids, 0, sizeof *ids);
    pair_frames(&p->a, ids_cb, ids);
    return l;
}

/* After b failed the connection: a heard why, both end cleanly. */
static void
expect_conn_error(pair_t *p, const char *const *conds, size_t n)
{
    pair_pump(p);
    assert_int_equal(pair_count(&p->b, LEP_EVENT_TRANSPORT_ERROR), 1);
    const lep_condition_t *lc = lep_conn_local_condition(p->b.c);
    bool match = false;
    for (size_t i = 0; i < n; i++)
        match |= pair_cond_is(lc, conds[i]);
    if (!match)
        fail_msg("b closed with '%.*s'", (int)lc->name.len, (const char *)lc->name.ptr);
    assert_int_equal(pair_count(&p->a, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    assert_true(lep_bytes_eq(lep_conn_remote_condition(p->a.c)->name, lc->name));
    assert_true(lep_conn_finished(p->a.c));
    assert_true(lep_conn_finished(p->b.c));
    assert_int_equal(p->b.ev[p->b.nev - 1].type, LEP_EVENT_TRANSPORT_CLOSED);
    assert_int_equal(p->a.ev[p->a.nev - 1].type, LEP_EVENT_TRANSPORT_CLOSED);
}

static const char *const framing[] = {"amqp:connection:framing-error"};
static const char *const framing_or_decode[] = {"amqp:connection:framing-error",
                                                "amqp:decode-error"};

static void
test_garbage_frame(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    /* a frame header claiming 5 bytes: smaller than a header */
    static const uint8_t bad[] = {0, 0, 0, 5, 2, 0, 0, 0, 0xde, 0xad};
    pair_inject(&p, &p.b, bad, sizeof bad);
    expect_conn_error(&p, framing, 1);
    pair_fini(&p);
}

static void
test_garbage_body(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    /* a well-framed body that is not an AMQP value */
    static const uint8_t bad[] = {0, 0, 0, 12, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    pair_inject(&p, &p.b, bad, sizeof bad);
    expect_conn_error(&p, framing_or_decode, 2);
    pair_fini(&p);
}

static void
test_bad_doff(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    static const uint8_t bad[] = {0, 0, 0, 12, 1, 0, 0, 0, 0x40, 0x40, 0x40, 0x40};
    pair_inject(&p, &p.b, bad, sizeof bad);
    expect_conn_error(&p, framing, 1);
    pair_fini(&p);
}

static void
test_bad_protocol_header(void **state)
{
    (void)state;
    /* a server hearing HTTP answers with its own header and closes */
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = true;
    lep_conn_t *c;
    assert_int_equal(lep_conn_new(&c, &o), 0);
    size_t used = 0;
    lep_conn_feed(c, (const uint8_t *)"GET / HTTP/1.1\r\n", 16, &used);
    bool err = false, closed = false;
    const lep_event_t *ev;
    lep_bytes_t out = lep_conn_output(c);
    assert_true(out.len >= 8);
    assert_memory_equal(out.ptr, LEP_PROTO_HEADER_AMQP, 8);
    lep_conn_consumed(c, out.len);
    while ((ev = lep_conn_next_event(c)) != NULL) {
        if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
            err = true;
        if (ev->type == LEP_EVENT_TRANSPORT_CLOSED)
            closed = true;
    }
    lep_conn_input_closed(c);
    while ((ev = lep_conn_next_event(c)) != NULL) {
        if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
            err = true;
        if (ev->type == LEP_EVENT_TRANSPORT_CLOSED)
            closed = true;
    }
    assert_true(err);
    assert_true(closed);
    assert_true(lep_conn_finished(c));
    assert_true(lep_condition_set(lep_conn_local_condition(c)));
    lep_conn_free(c);

    /* AMQP 0-10's header: the same */
    assert_int_equal(lep_conn_new(&c, &o), 0);
    lep_conn_feed(c, (const uint8_t *)"AMQP\1\1\0\12", 8, &used);
    out = lep_conn_output(c);
    assert_true(out.len >= 8);
    assert_memory_equal(out.ptr, LEP_PROTO_HEADER_AMQP, 8);
    lep_conn_consumed(c, out.len);
    lep_conn_input_closed(c);
    while (lep_conn_next_event(c))
        ;
    assert_true(lep_conn_finished(c));
    lep_conn_free(c);
}

static void
test_sasl_header_without_layer(void **state)
{
    (void)state;
    /* the client engine hears a SASL header it did not ask for */
    lep_conn_t *c;
    assert_int_equal(lep_conn_new(&c, NULL), 0);
    lep_conn_open(c);
    lep_conn_consumed(c, lep_conn_output(c).len);
    size_t used = 0;
    lep_conn_feed(c, (const uint8_t *)LEP_PROTO_HEADER_SASL, 8, &used);
    bool err = false;
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(c)) != NULL)
        err |= ev->type == LEP_EVENT_TRANSPORT_ERROR;
    assert_true(err);
    lep_conn_free(c);
}

static void
test_oversized_frame(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.max_frame_size = 512;
    setup(&p, &ob, 10, &ids);
    /* header of a 100000-byte frame: refused before the body arrives */
    static const uint8_t big[] = {0, 1, 0x86, 0xa0, 2, 0, 0, 0};
    pair_inject(&p, &p.b, big, sizeof big);
    expect_conn_error(&p, framing, 1);
    pair_fini(&p);
}

static void
test_unknown_performative(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    /* a source terminus (0x28) where a performative belongs */
    static const uint8_t bad[] = {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x28, 0x45};
    pair_inject(&p, &p.b, bad, sizeof bad);
    static const char *const ok[] = {"amqp:connection:framing-error", "amqp:decode-error",
                                     "amqp:not-implemented", "amqp:invalid-field"};
    expect_conn_error(&p, ok, 4);
    pair_fini(&p);
}

static void
test_second_open(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    lep_performative_t perf;
    memset(&perf, 0, sizeof perf);
    perf.code = LEP_DESC_OPEN;
    lep_open_init(&perf.u.open);
    perf.u.open.present = LEP_OPEN_HAS_CONTAINER_ID;
    perf.u.open.container_id = lep_bytes_str("again");
    pair_inject_perf(&p, &p.b, 0, &perf, NULL, 0);
    static const char *const ok[] = {"amqp:illegal-state", "amqp:connection:framing-error"};
    expect_conn_error(&p, ok, 2);
    pair_fini(&p);
}

static void
test_missing_mandatory_field(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    /* an attach with an empty list: name, handle, role are mandatory */
    static const uint8_t bad[] = {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x12, 0x45};
    uint8_t f[12];
    memcpy(f, bad, sizeof f);
    f[6] = (uint8_t)(ids.channel >> 8);
    f[7] = (uint8_t)ids.channel;
    pair_inject(&p, &p.b, f, sizeof f);
    static const char *const ok[] = {"amqp:decode-error", "amqp:invalid-field"};
    expect_conn_error(&p, ok, 2);
    pair_fini(&p);
}

static void
test_unknown_channel(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    lep_performative_t perf;
    memset(&perf, 0, sizeof perf);
    perf.code = LEP_DESC_END;
    lep_end_init(&perf.u.end);
    pair_inject_perf(&p, &p.b, (uint16_t)(ids.channel + 7), &perf, NULL, 0);
    static const char *const ok[] = {"amqp:connection:framing-error", "amqp:illegal-state",
                                     "amqp:not-found", "amqp:invalid-field"};
    expect_conn_error(&p, ok, 4);
    pair_fini(&p);
}

static lep_performative_t
transfer(const ids_t *ids, uint32_t handle, uint32_t delivery_id)
{
    lep_performative_t perf;
    memset(&perf, 0, sizeof perf);
    perf.code = LEP_DESC_TRANSFER;
    lep_transfer_init(&perf.u.transfer);
    perf.u.transfer.present = LEP_TRANSFER_HAS_HANDLE | LEP_TRANSFER_HAS_DELIVERY_ID |
                              LEP_TRANSFER_HAS_DELIVERY_TAG | LEP_TRANSFER_HAS_MESSAGE_FORMAT;
    perf.u.transfer.handle = handle;
    perf.u.transfer.delivery_id = delivery_id;
    perf.u.transfer.delivery_tag = LEP_BYTES("tag", 3);
    (void)ids;
    return perf;
}

static void
test_message_size_exceeded(void **state)
{
    (void)state;
    /* a's engine would refuse to send it: forge the transfer */
    pair_t p;
    ids_t ids;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.max_message_size = 1000;
    lep_link_t *l = setup(&p, &ob, 10, &ids);
    assert_int_equal(lep_link_remote_attach(l)->max_message_size, 1000);
    static uint8_t big[1500];
    lep_performative_t perf = transfer(&ids, ids.handle, ids.next_outgoing_id);
    pair_inject_perf(&p, &p.b, ids.channel, &perf, big, sizeof big);
    pair_pump(&p);
    assert_true(pair_cond_is(lep_link_remote_condition(l), "amqp:link:message-size-exceeded"));
    /* the application never sees it whole (the engine reports it aborted) */
    for (size_t i = 0; i < p.b.nrx; i++) {
        assert_false(p.b.rx[i].complete);
        assert_true(p.b.rx[i].aborted);
    }
    /* the connection is fine */
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

static void
test_unsettled_limit(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.max_unsettled = 4;
    lep_link_t *l = setup(&p, &ob, 100, &ids);
    p.b.auto_accept = false; /* b holds everything unsettled */
    for (int i = 0; i < 4; i++)
        assert_int_equal(lep_link_send(l, LEP_BYTES(NULL, 0), "m", 1, false, NULL), 0);
    pair_pump(&p);
    assert_int_equal(p.b.nrx, 4);
    assert_int_equal(lep_link_remote_state(l), LEP_STATE_ACTIVE);
    /* the fifth is one too many */
    assert_int_equal(lep_link_send(l, LEP_BYTES(NULL, 0), "m", 1, false, NULL), 0);
    pair_pump(&p);
    assert_true(pair_cond_is(lep_link_remote_condition(l), "amqp:resource-limit-exceeded"));
    assert_true(lep_link_unsettled(pair_last_link(&p.b)) <= 4);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

static void
test_unknown_handle(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    lep_link_t *l = setup(&p, NULL, 10, &ids);
    lep_performative_t perf = transfer(&ids, ids.handle + 40, ids.next_outgoing_id);
    pair_inject_perf(&p, &p.b, ids.channel, &perf, "x", 1);
    pair_pump(&p);
    /* a session error (end with unattached-handle) or the connection */
    lep_session_t *s = lep_link_session(l);
    const lep_condition_t *sc = lep_session_remote_condition(s);
    const lep_condition_t *cc = lep_conn_remote_condition(p.a.c);
    assert_true(pair_cond_is(sc, "amqp:session:unattached-handle") ||
                pair_cond_is(cc, "amqp:session:unattached-handle"));
    if (!lep_condition_set(cc)) {
        assert_int_equal(lep_session_remote_state(s), LEP_STATE_CLOSED);
        assert_int_equal(lep_session_local_state(s), LEP_STATE_CLOSED); /* a answered */
        /* the connection survives */
        assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
        lep_session_t *s2 = pair_session(&p);
        assert_int_equal(lep_session_remote_state(s2), LEP_STATE_ACTIVE);
        lep_conn_close(p.a.c, NULL);
        pair_pump(&p);
    }
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

/* Transfers beyond the credit are taken, not refused (RabbitMQ 3.x sends
 * a few more than granted, rabbitmq-server#2597; Proton takes them too):
 * both arrive, the link stays up. */
static void
test_credit_overrun(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    lep_link_t *l = setup(&p, NULL, 1, &ids);
    /* two transfers on one credit, forged as a's */
    lep_buf_t b;
    lep_buf_init(&b);
    for (uint32_t i = 0; i < 2; i++) {
        lep_performative_t perf = transfer(&ids, ids.handle, ids.next_outgoing_id + i);
        perf.u.transfer.present |= LEP_TRANSFER_HAS_SETTLED;
        perf.u.transfer.settled = true;
        assert_int_equal(pair_frame_encode(&b, ids.channel, &perf, "x", 1), 0);
    }
    pair_inject(&p, &p.b, b.data, b.len);
    lep_buf_fini(&b);
    pair_pump(&p);
    assert_int_equal(p.b.nrx, 2);
    assert_true(p.b.rx[0].complete && p.b.rx[1].complete);
    assert_int_equal(lep_link_remote_state(l), LEP_STATE_ACTIVE);
    assert_false(lep_condition_set(lep_link_remote_condition(l)));
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

/* spec 2.5.6: the window the peer knows is the one we last sent */
static void
test_window_overrun(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.session_window = 2;
    lep_link_t *l = setup(&p, &ob, 100, &ids);
    lep_buf_t b;
    lep_buf_init(&b);
    for (uint32_t i = 0; i < 10; i++) {
        lep_performative_t perf = transfer(&ids, ids.handle, ids.next_outgoing_id + i);
        perf.u.transfer.present |= LEP_TRANSFER_HAS_SETTLED;
        perf.u.transfer.settled = true;
        assert_int_equal(pair_frame_encode(&b, ids.channel, &perf, "x", 1), 0);
    }
    pair_inject(&p, &p.b, b.data, b.len);
    lep_buf_fini(&b);
    pair_pump(&p);
    const lep_condition_t *sc = lep_session_remote_condition(lep_link_session(l));
    const lep_condition_t *cc = lep_conn_remote_condition(p.a.c);
    assert_true(pair_cond_is(sc, "amqp:session:window-violation") ||
                pair_cond_is(cc, "amqp:session:window-violation"));
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

static void
test_transfer_on_unbegun_session_frame_after_close(void **state)
{
    (void)state;
    /* bytes after the peer's close are ignored; no crash, clean finish */
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.b.c));
    static const uint8_t junk[] = {0, 0, 0, 8, 2, 0, 0, 0};
    size_t used = 0;
    int rc = lep_conn_feed(p.b.c, junk, sizeof junk, &used);
    assert_int_equal(rc, LEP_ERR_STATE);
    pair_fini(&p);
}

static void
test_eof_mid_stream(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    /* the socket drops with no close */
    lep_conn_input_closed(p.b.c);
    pair_drain_events(&p, &p.b);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_ERROR), 1);
    /* output drains, then the engine is done */
    for (int i = 0; i < 10 && !lep_conn_finished(p.b.c); i++) {
        lep_conn_consumed(p.b.c, lep_conn_output(p.b.c).len);
        pair_drain_events(&p, &p.b);
    }
    assert_true(lep_conn_finished(p.b.c));
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_CLOSED), 1);
    pair_fini(&p);
}

static void
test_output_closed(void **state)
{
    (void)state;
    pair_t p;
    ids_t ids;
    setup(&p, NULL, 10, &ids);
    lep_conn_output_closed(p.a.c);
    lep_conn_input_closed(p.a.c);
    pair_drain_events(&p, &p.a);
    assert_true(lep_conn_finished(p.a.c));
    assert_int_equal(lep_conn_output_pending(p.a.c), 0);
    pair_fini(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_frame),
        cmocka_unit_test(test_garbage_body),
        cmocka_unit_test(test_bad_doff),
        cmocka_unit_test(test_bad_protocol_header),
        cmocka_unit_test(test_sasl_header_without_layer),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_unknown_performative),
        cmocka_unit_test(test_second_open),
        cmocka_unit_test(test_missing_mandatory_field),
        cmocka_unit_test(test_unknown_channel),
        cmocka_unit_test(test_unknown_handle),
        cmocka_unit_test(test_credit_overrun),
        cmocka_unit_test(test_message_size_exceeded),
        cmocka_unit_test(test_unsettled_limit),
        cmocka_unit_test(test_window_overrun),
        cmocka_unit_test(test_transfer_on_unbegun_session_frame_after_close),
        cmocka_unit_test(test_eof_mid_stream),
        cmocka_unit_test(test_output_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
