/* Engine scenarios, sessions: many per connection, channel allocation
 * and reuse, channel-max, end with an error, the session limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pair.h"

/* ---- sessions ---------------------------------------------------------- */

typedef struct begin_seen {
    uint16_t channels[512];
    size_t n;
} begin_seen_t;

static void
begin_cb(void *ctx, const lep_frame_t *f, int rc, const lep_performative_t *perf, lep_bytes_t pl)
{
    (void)pl;
    begin_seen_t *b = (begin_seen_t *)ctx;
    if (rc == 0 && perf->code == LEP_DESC_BEGIN && b->n < 512)
        b->channels[b->n++] = f->channel;
}

static void
test_many_sessions(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    enum { N = 40 };
    lep_session_t *s[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(lep_session_new(p.a.c, &s[i]), 0);
        lep_session_set_context(s[i], &s[i]);
        assert_int_equal(lep_session_begin(s[i]), 0);
    }
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_SESSION_REMOTE_BEGIN), N);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_SESSION_REMOTE_BEGIN), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(lep_session_local_state(s[i]), LEP_STATE_ACTIVE);
        assert_int_equal(lep_session_remote_state(s[i]), LEP_STATE_ACTIVE);
        assert_ptr_equal(lep_session_context(s[i]), &s[i]);
        assert_ptr_equal(lep_session_conn(s[i]), p.a.c);
    }
    /* distinct channels on each side */
    begin_seen_t ba = {{0}, 0};
    pair_frames(&p.a, begin_cb, &ba);
    assert_int_equal(ba.n, N);
    for (size_t i = 0; i < ba.n; i++)
        for (size_t j = i + 1; j < ba.n; j++)
            assert_int_not_equal(ba.channels[i], ba.channels[j]);

    /* end half of them; the channels are free again */
    for (int i = 0; i < N; i += 2)
        assert_int_equal(lep_session_end(s[i], NULL), 0);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_SESSION_REMOTE_END), N / 2);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_SESSION_REMOTE_END), N / 2);
    for (int i = 0; i < N; i += 2) {
        assert_int_equal(lep_session_remote_state(s[i]), LEP_STATE_CLOSED);
        assert_int_equal(lep_session_free(s[i]), 0);
    }
    for (int i = 0; i < N; i += 2) {
        assert_int_equal(lep_session_new(p.a.c, &s[i]), 0);
        assert_int_equal(lep_session_begin(s[i]), 0);
    }
    pair_pump(&p);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_SESSION_REMOTE_BEGIN), N + N / 2);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_channel_max_enforced_locally(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.channel_max = 2; /* channels 0, 1, 2 */
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_open(&p);
    assert_int_equal(lep_conn_channel_max(p.a.c), 2);
    int ok = 0;
    for (int i = 0; i < 5; i++) {
        lep_session_t *s;
        if (lep_session_new(p.a.c, &s) != 0)
            continue;
        if (lep_session_begin(s) == 0)
            ok++;
    }
    assert_int_equal(ok, 3);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_SESSION_REMOTE_BEGIN), 3);
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_session_end_with_error(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    p.a.auto_answer = false; /* a answers the end itself below */
    lep_session_t *s = pair_session(&p);
    assert_non_null(s);
    lep_session_t *bs = pair_last_session(&p.b);
    assert_non_null(bs);
    lep_condition_t cond = {lep_bytes_str("amqp:not-allowed"), lep_bytes_str("go away"), {0}};
    /* the server ends it */
    assert_int_equal(lep_session_end(bs, &cond), 0);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_ptr_equal(pair_last(&p.a, LEP_EVENT_SESSION_REMOTE_END)->session, s);
    const lep_condition_t *rc = lep_session_remote_condition(s);
    assert_true(pair_cond_is(rc, "amqp:not-allowed"));
    assert_true(lep_bytes_eq_str(rc->description, "go away"));
    assert_int_equal(lep_session_remote_state(s), LEP_STATE_CLOSED);
    /* a answers */
    assert_int_equal(lep_session_end(s, NULL), 0);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_int_equal(lep_session_remote_state(bs), LEP_STATE_CLOSED);
    assert_false(lep_condition_set(lep_session_remote_condition(bs)));
    /* the connection is fine */
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    lep_session_t *s2 = pair_session(&p);
    assert_int_equal(lep_session_remote_state(s2), LEP_STATE_ACTIVE);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_max_sessions_enforced(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.max_sessions = 2;
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_open(&p);
    int began = 0;
    for (int i = 0; i < 4; i++) {
        lep_session_t *s;
        if (lep_session_new(p.a.c, &s) == 0 && lep_session_begin(s) == 0)
            began++;
    }
    pair_pump(&p);
    /* the server never holds more than two sessions */
    size_t ok = 0;
    for (size_t i = 0; i < p.b.nev; i++)
        if (p.b.ev[i].type == LEP_EVENT_SESSION_REMOTE_BEGIN)
            ok++;
    assert_true(ok <= 2);
    if (began > 2) {
        /* refused on the wire: ended or the connection closed, with a reason */
        bool refused = false;
        for (size_t i = 0; i < p.a.nev; i++) {
            if (p.a.ev[i].type == LEP_EVENT_SESSION_REMOTE_END &&
                lep_condition_set(lep_session_remote_condition(p.a.ev[i].session)))
                refused = true;
            if (p.a.ev[i].type == LEP_EVENT_CONN_REMOTE_CLOSE &&
                lep_condition_set(lep_conn_remote_condition(p.a.c)))
                refused = true;
        }
        assert_true(refused);
    }
    pair_pump(&p);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

static void
test_free_with_open_objects(void **state)
{
    (void)state;
    /* freeing a busy connection releases everything (ASan checks leaks) */
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *l = pair_link(&p, s, "l", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    assert_non_null(l);
    for (int i = 0; i < 5; i++)
        lep_link_send(l, LEP_BYTES(NULL, 0), "hello", 5, false, NULL);
    pair_pump(&p);
    pair_fini(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_sessions),
        cmocka_unit_test(test_channel_max_enforced_locally),
        cmocka_unit_test(test_session_end_with_error),
        cmocka_unit_test(test_max_sessions_enforced),
        cmocka_unit_test(test_free_with_open_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
