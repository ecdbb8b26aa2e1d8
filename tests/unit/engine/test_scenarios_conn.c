/* Engine scenarios, connection and session level: two engines wired in
 * memory (pair.h) through open/close both ways, negotiation, error
 * conditions, heartbeats and idle timeout on a fake clock, sessions and
 * their limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pair.h"

static lep_bytes_t
enc_symbols(lep_buf_t *b, const char *const *syms, size_t n)
{
    lep_encoder_t e;
    lep_buf_clear(b);
    lep_encoder_init(&e, b);
    lep_encode_array_begin(&e, LEP_TYPE_SYMBOL);
    for (size_t i = 0; i < n; i++)
        lep_encode_csymbol(&e, syms[i]);
    lep_encode_array_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    return lep_buf_bytes(b);
}

static lep_bytes_t
enc_props(lep_buf_t *b)
{
    lep_encoder_t e;
    lep_buf_clear(b);
    lep_encoder_init(&e, b);
    lep_encode_map_begin(&e);
    lep_encode_csymbol(&e, "product");
    lep_encode_cstring(&e, "lepton-test");
    lep_encode_csymbol(&e, "n");
    lep_encode_uint(&e, 42);
    lep_encode_map_end(&e);
    assert_int_equal(lep_encoder_error(&e), 0);
    return lep_buf_bytes(b);
}

static void
assert_finished(pair_t *p)
{
    assert_true(lep_conn_finished(p->a.c));
    assert_true(lep_conn_finished(p->b.c));
    assert_int_equal(pair_count(&p->a, LEP_EVENT_TRANSPORT_CLOSED), 1);
    assert_int_equal(pair_count(&p->b, LEP_EVENT_TRANSPORT_CLOSED), 1);
    /* TRANSPORT_CLOSED is the last event */
    assert_int_equal(p->a.ev[p->a.nev - 1].type, LEP_EVENT_TRANSPORT_CLOSED);
    assert_int_equal(p->b.ev[p->b.nev - 1].type, LEP_EVENT_TRANSPORT_CLOSED);
    assert_null(lep_conn_next_event(p->a.c));
    assert_null(lep_conn_next_event(p->b.c));
}

static void
test_open_close(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t oa;
    lep_conn_opts_init(&oa);
    oa.hostname = "vhost.example";
    assert_int_equal(pair_init(&p, &oa, NULL), 0);
    assert_false(lep_conn_is_server(p.a.c));
    assert_true(lep_conn_is_server(p.b.c));
    assert_int_equal(lep_conn_local_state(p.a.c), LEP_STATE_UNINIT);
    pair_open(&p);

    assert_int_equal(pair_count(&p.a, LEP_EVENT_CONN_LOCAL_OPEN), 1);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_CONN_REMOTE_OPEN), 1);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_CONN_REMOTE_OPEN), 1);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_CONN_LOCAL_OPEN), 1);
    assert_int_equal(lep_conn_local_state(p.a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_remote_state(p.b.c), LEP_STATE_ACTIVE);

    const lep_open_t *ra = lep_conn_remote_open(p.a.c);
    const lep_open_t *rb = lep_conn_remote_open(p.b.c);
    assert_non_null(ra);
    assert_non_null(rb);
    assert_true(lep_bytes_eq_str(ra->container_id, "server"));
    assert_true(lep_bytes_eq_str(rb->container_id, "client"));
    assert_true(rb->present & LEP_OPEN_HAS_HOSTNAME);
    assert_true(lep_bytes_eq_str(rb->hostname, "vhost.example"));
    /* the wire: each side wrote a header then exactly one open */
    assert_memory_equal(p.a.wire.data, LEP_PROTO_HEADER_AMQP, 8);
    assert_memory_equal(p.b.wire.data, LEP_PROTO_HEADER_AMQP, 8);
    assert_int_equal(pair_count_frames(&p.a, LEP_DESC_OPEN), 1);
    assert_int_equal(pair_count_frames(&p.b, LEP_DESC_OPEN), 1);

    assert_true(pair_close(&p));
    assert_int_equal(pair_count(&p.b, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    assert_false(lep_condition_set(lep_conn_remote_condition(p.b.c)));
    assert_false(lep_condition_set(lep_conn_remote_condition(p.a.c)));
    assert_int_equal(pair_count_frames(&p.a, LEP_DESC_CLOSE), 1);
    assert_int_equal(pair_count_frames(&p.b, LEP_DESC_CLOSE), 1);
    assert_finished(&p);
    /* nothing is accepted after the end */
    size_t used = 99;
    assert_int_equal(lep_conn_feed(p.a.c, (const uint8_t *)"x", 1, &used), LEP_ERR_STATE);
    pair_fini(&p);
}

static void
test_container_id_default(void **state)
{
    (void)state;
    lep_conn_t *c1, *c2;
    assert_int_equal(lep_conn_new(&c1, NULL), 0);
    assert_int_equal(lep_conn_new(&c2, NULL), 0);
    lep_conn_open(c1);
    lep_conn_open(c2);
    /* both say something: a header and an open */
    assert_true(lep_conn_output_pending(c1) > 8);
    lep_bytes_t o1 = lep_conn_output(c1);
    assert_true(o1.len > 8);
    assert_memory_equal(o1.ptr, LEP_PROTO_HEADER_AMQP, 8);
    struct iovec iov[16];
    int n = lep_conn_output_iov(c1, iov, 16);
    assert_true(n >= 1);
    size_t tot = 0;
    for (int i = 0; i < n; i++)
        tot += iov[i].iov_len;
    assert_int_equal(tot, lep_conn_output_pending(c1));
    /* buffered: the same bytes, and what is left of them once some are taken */
    assert_int_equal(lep_conn_output_buffered(c1), tot);
    lep_conn_consumed(c1, 3);
    assert_int_equal(lep_conn_output_buffered(c1), tot - 3);
    lep_conn_consumed(c1, tot - 3);
    assert_int_equal(lep_conn_output_buffered(c1), 0);
    lep_conn_free(c1);
    lep_conn_free(c2);
}

static void
test_server_opens_first(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    p.b.auto_answer = false;
    p.a.auto_answer = true;
    /* the server may open before it heard the client (pipelining) */
    lep_conn_open(p.b.c);
    pair_pump(&p);
    assert_int_equal(lep_conn_remote_state(p.b.c), LEP_STATE_UNINIT);
    lep_conn_open(p.a.c);
    pair_pump(&p);
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_remote_state(p.b.c), LEP_STATE_ACTIVE);
    /* the server closes */
    lep_conn_close(p.b.c, NULL);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    assert_finished(&p);
    pair_fini(&p);
}

static void
test_negotiation(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.max_frame_size = 4096;
    ob.max_frame_size = 1024;
    oa.channel_max = 10;
    ob.channel_max = 100;
    oa.idle_timeout_ms = 30000;
    lep_buf_t caps, dcaps, props;
    lep_buf_init(&caps);
    lep_buf_init(&dcaps);
    lep_buf_init(&props);
    static const char *const offered[] = {"ANONYMOUS-RELAY", "DELAYED_DELIVERY"};
    static const char *const desired[] = {"sole-connection-for-container"};
    oa.offered_capabilities = enc_symbols(&caps, offered, 2);
    oa.desired_capabilities = enc_symbols(&dcaps, desired, 1);
    oa.properties = enc_props(&props);
    assert_int_equal(pair_init(&p, &oa, &ob), 0);
    pair_open(&p);

    assert_int_equal(lep_conn_max_frame_size(p.a.c), 1024);
    assert_int_equal(lep_conn_max_frame_size(p.b.c), 4096);
    assert_int_equal(lep_conn_channel_max(p.a.c), 10);
    assert_int_equal(lep_conn_channel_max(p.b.c), 10);
    assert_int_equal(lep_conn_remote_idle_timeout(p.b.c), 30000);
    assert_int_equal(lep_conn_remote_idle_timeout(p.a.c), 0);

    const lep_open_t *rb = lep_conn_remote_open(p.b.c);
    assert_int_equal(rb->max_frame_size, 4096);
    assert_int_equal(rb->channel_max, 10);
    assert_true(rb->present & LEP_OPEN_HAS_OFFERED_CAPABILITIES);
    assert_true(lep_bytes_eq(rb->offered_capabilities, lep_buf_bytes(&caps)));
    assert_true(lep_bytes_eq(rb->desired_capabilities, lep_buf_bytes(&dcaps)));
    assert_true(lep_bytes_eq(rb->properties, lep_buf_bytes(&props)));
    assert_true(pair_close(&p));
    lep_buf_fini(&caps);
    lep_buf_fini(&dcaps);
    lep_buf_fini(&props);
    pair_fini(&p);
}

static void
check_close_with_error(bool from_client)
{
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    p.a.auto_answer = true;
    pair_open(&p);
    pair_side_t *closer = from_client ? &p.a : &p.b;
    pair_side_t *other = from_client ? &p.b : &p.a;

    uint8_t info[64];
    lep_buf_t ib;
    lep_buf_init_fixed(&ib, info, sizeof info);
    lep_encoder_t e;
    lep_encoder_init(&e, &ib);
    lep_encode_map_begin(&e);
    lep_encode_csymbol(&e, "why");
    lep_encode_cstring(&e, "testing");
    lep_encode_map_end(&e);
    lep_condition_t cond = {lep_bytes_str("amqp:internal-error"), lep_bytes_str("boom"),
                            lep_buf_bytes(&ib)};
    assert_int_equal(lep_conn_close(closer->c, &cond), 0);
    pair_pump(&p);

    assert_int_equal(pair_count(other, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    const lep_condition_t *rc = lep_conn_remote_condition(other->c);
    assert_true(pair_cond_is(rc, "amqp:internal-error"));
    assert_true(lep_bytes_eq_str(rc->description, "boom"));
    assert_true(lep_bytes_eq(rc->info, lep_buf_bytes(&ib)));
    assert_true(pair_cond_is(lep_conn_local_condition(closer->c), "amqp:internal-error"));
    /* the answer carries no error */
    assert_false(lep_condition_set(lep_conn_remote_condition(closer->c)));
    assert_finished(&p);
    pair_fini(&p);
}

static void
test_close_with_error_client(void **state)
{
    (void)state;
    check_close_with_error(true);
}

static void
test_close_with_error_server(void **state)
{
    (void)state;
    check_close_with_error(false);
}

static void
test_close_before_open_answered(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    lep_conn_open(p.a.c);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_finished(&p);
    pair_fini(&p);
}

/* ---- heartbeats and idle timeout ---------------------------------- */

static void
test_heartbeats_keep_alive(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.idle_timeout_ms = 1000; /* the server wants to hear from the client each second */
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_tick(&p, 0);
    pair_open(&p);
    assert_int_equal(lep_conn_remote_idle_timeout(p.a.c), 1000);
    /* a deadline exists on both sides: b watches for silence, a must beat */
    assert_true(lep_conn_tick(p.a.c, 0) >= 0);
    assert_true(lep_conn_tick(p.b.c, 0) >= 0);

    size_t before = pair_count_frames(&p.a, 0);
    for (int64_t t = 0; t <= 20000; t += 100) {
        pair_tick(&p, t);
        pair_pump(&p);
    }
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_local_state(p.b.c), LEP_STATE_ACTIVE);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_ERROR), 0);
    size_t beats = pair_count_frames(&p.a, 0) - before;
    /* roughly every half timeout: 20 s / 0.5 s = 40, allow slack */
    assert_true(beats >= 20);
    assert_true(beats <= 200);
    /* b has no reason to beat: a asked for nothing */
    assert_true(pair_count_frames(&p.b, 0) <= 1);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_idle_timeout_dead_peer(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.idle_timeout_ms = 1000;
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_tick(&p, 0);
    pair_open(&p);
    /* a goes silent: only b's clock moves */
    int64_t t;
    for (t = 0; t <= 10000 && !lep_conn_finished(p.b.c); t += 100) {
        lep_conn_tick(p.b.c, t);
        pair_pump(&p);
    }
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_ERROR), 1);
    assert_true(pair_cond_is(lep_conn_local_condition(p.b.c), "amqp:resource-limit-exceeded"));
    /* it took at least the timeout */
    assert_true(t > 1000);
    /* the dead peer (here alive after all) hears why */
    assert_int_equal(pair_count(&p.a, LEP_EVENT_CONN_REMOTE_CLOSE), 1);
    assert_true(pair_cond_is(lep_conn_remote_condition(p.a.c), "amqp:resource-limit-exceeded"));
    pair_pump(&p);
    assert_true(lep_conn_finished(p.b.c));
    assert_true(lep_conn_finished(p.a.c));
    pair_fini(&p);
}

/* Input stamps the idle clock when it arrives, not at the tick before:
 * a peer whose frame came after a long poll is alive. */
static void
test_idle_input_between_ticks(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.idle_timeout_ms = 1000;
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_tick(&p, 0);
    pair_open(&p);
    lep_conn_tick(p.b.c, 0);
    /* b sleeps in poll for 900 ms; then a's heartbeat arrives */
    lep_conn_tick(p.a.c, 900);
    pair_pump(&p);
    assert_true(pair_count_frames(&p.a, 0) >= 1);
    /* the next tick is 300 ms later: 1200 ms after b's last tick, but
     * only 300 ms after it heard from a */
    lep_conn_tick(p.b.c, 1200);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_ERROR), 0);
    assert_int_equal(lep_conn_local_state(p.b.c), LEP_STATE_ACTIVE);
    /* and b still fails a peer that really is silent */
    lep_conn_tick(p.b.c, 2300);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_TRANSPORT_ERROR), 1);
    pair_fini(&p);
}

static void
test_tick_no_timeout(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_tick(&p, 5);
    pair_open(&p);
    assert_int_equal(lep_conn_tick(p.a.c, 1000000), -1);
    assert_int_equal(lep_conn_tick(p.b.c, 1000000), -1);
    pair_pump(&p);
    assert_int_equal(pair_count_frames(&p.a, 0), 0);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_close),
        cmocka_unit_test(test_container_id_default),
        cmocka_unit_test(test_server_opens_first),
        cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_close_with_error_client),
        cmocka_unit_test(test_close_with_error_server),
        cmocka_unit_test(test_close_before_open_answered),
        cmocka_unit_test(test_heartbeats_keep_alive),
        cmocka_unit_test(test_idle_timeout_dead_peer),
        cmocka_unit_test(test_idle_input_between_ticks),
        cmocka_unit_test(test_tick_no_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
