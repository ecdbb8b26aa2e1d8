/* Engine: connection open/close, negotiation, layers, header errors,
 * idle timeouts, framing errors.  Two engines wired in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <lepton/engine.h>

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_close),
        cmocka_unit_test(test_bad_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
