/* TLS under two whole engines in memory: AMQP open and close through TLS,
 * both framings, SASL on top (PLAIN needs the encryption, EXTERNAL the
 * client certificate), and a failed handshake reaching the application as
 * a transport error.  Credentials from tests/tls/make-certs.sh. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/sasl.h>
#include <lepton/tls.h>
#include "tls/tls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs.h"

/* ------------------------------------------------------------------ */

typedef struct peer {
    lep_conn_t *c;
    lep_tls_t *tls;
    lep_sasl_t *sasl;
    int seen[LEP_EVENT_TRANSPORT_CLOSED + 1];
} peer_t;

static void
peer_new(peer_t *p, bool server)
{
    lep_conn_opts_t o;
    memset(p, 0, sizeof *p);
    lep_conn_opts_init(&o);
    o.server = server;
    o.container_id = server ? "server" : "client";
    assert_int_equal(lep_conn_new(&p->c, &o), 0);
}

static void
events(peer_t *p)
{
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(p->c)) != NULL) {
        p->seen[ev->type]++;
        /* A server answers an open with its own. */
        if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN && lep_conn_is_server(p->c) &&
            lep_conn_local_state(p->c) == LEP_STATE_UNINIT)
            assert_int_equal(lep_conn_open(p->c), 0);
    }
}

/* Moves bytes in small pieces until neither side has more to say. */
static void
pump(peer_t *a, peer_t *b)
{
    for (int round = 0; round < 5000; round++) {
        bool moved = false;
        peer_t *from = a, *to = b;
        for (int dir = 0; dir < 2; dir++) {
            lep_bytes_t out = lep_conn_output(from->c);
            if (out.len) {
                size_t n = out.len > 1500 ? 1500 : out.len, used = 0;
                if (lep_conn_feed(to->c, out.ptr, n, &used) == 0)
                    assert_int_equal(used, n);
                lep_conn_consumed(from->c, n);
                moved = true;
            }
            events(from);
            events(to);
            from = b, to = a;
        }
        if (!moved)
            return;
    }
    fail_msg("no quiescence");
}

static void
assert_cond(const lep_condition_t *cond, const char *name, const char *in_desc)
{
    assert_non_null(cond);
    if (!lep_bytes_eq_str(cond->name, name) ||
        (in_desc && !memmem(cond->description.ptr, cond->description.len, in_desc,
                            strlen(in_desc))))
        fail_msg("condition %.*s \"%.*s\", wanted %s with \"%s\"", (int)cond->name.len,
                 (const char *)cond->name.ptr, (int)cond->description.len,
                 (const char *)cond->description.ptr, name, in_desc ? in_desc : "");
}

static void
assert_no_error(peer_t *p)
{
    const lep_condition_t *cond = lep_conn_local_condition(p->c);
    if (p->seen[LEP_EVENT_TRANSPORT_ERROR])
        fail_msg("%s: transport error %.*s: %.*s", lep_conn_is_server(p->c) ? "server" : "client",
                 (int)cond->name.len, (const char *)cond->name.ptr, (int)cond->description.len,
                 (const char *)cond->description.ptr);
}

static lep_tls_config_t *
server_cfg(lep_tls_verify_t verify, lep_tls_mode_t mode)
{
    lep_tls_config_t *cfg;
    assert_int_equal(lep_tls_config_new(&cfg, true), 0);
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("server.key"), NULL), 0);
    assert_int_equal(lep_tls_config_set_ca(cfg, cert("ca.pem"), NULL), 0);
    assert_int_equal(lep_tls_config_set_verify(cfg, verify), 0);
    assert_int_equal(lep_tls_config_set_mode(cfg, mode), 0);
    return cfg;
}

static lep_tls_config_t *
client_cfg(const char *ca, bool with_cert, lep_tls_mode_t mode)
{
    lep_tls_config_t *cfg;
    assert_int_equal(lep_tls_config_new(&cfg, false), 0);
    assert_int_equal(lep_tls_config_set_ca(cfg, cert(ca), NULL), 0);
    if (with_cert)
        assert_int_equal(lep_tls_config_set_cert(cfg, cert("client.pem"), cert("client.key"), NULL),
                         0);
    assert_int_equal(lep_tls_config_set_mode(cfg, mode), 0);
    return cfg;
}

/* Open, check, close, EOF both ways: a clean end. */
static void
open_close(peer_t *cl, peer_t *sv)
{
    assert_int_equal(lep_conn_open(cl->c), 0);
    pump(cl, sv);
    assert_no_error(cl);
    assert_no_error(sv);
    assert_int_equal(cl->seen[LEP_EVENT_CONN_REMOTE_OPEN], 1);
    assert_int_equal(sv->seen[LEP_EVENT_CONN_REMOTE_OPEN], 1);
    assert_true(lep_conn_encrypted(cl->c));
    assert_true(lep_conn_encrypted(sv->c));
    assert_true(lep_bytes_eq_str(lep_conn_remote_open(cl->c)->container_id, "server"));

    assert_int_equal(lep_conn_close(cl->c, NULL), 0);
    pump(cl, sv);
    if (lep_conn_local_state(sv->c) != LEP_STATE_CLOSED)
        assert_int_equal(lep_conn_close(sv->c, NULL), 0);
    pump(cl, sv);
    assert_int_equal(cl->seen[LEP_EVENT_CONN_REMOTE_CLOSE], 1);
    assert_int_equal(sv->seen[LEP_EVENT_CONN_REMOTE_CLOSE], 1);
    /* The side that closed second saw AMQP closed both ways and ended TLS
     * with close_notify; the first had marked its output done with its
     * close frame (see the report on an engine hook for that). */
    assert_true(lepi_tls_peer_closed(cl->tls));
    assert_true(lep_conn_finished(cl->c));
    assert_true(lep_conn_finished(sv->c));
    lep_conn_input_closed(cl->c);
    lep_conn_input_closed(sv->c);
    events(cl);
    events(sv);
    assert_no_error(cl);
    assert_no_error(sv);
}

static void
test_engine_pure(void **state)
{
    peer_t cl, sv;
    peer_new(&cl, false);
    peer_new(&sv, true);
    lep_tls_config_t *ccfg = client_cfg("ca.pem", false, LEP_TLS_MODE_PURE);
    lep_tls_config_t *scfg = server_cfg(LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "localhost", &cl.tls), 0);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.tls), 0);
    lep_tls_config_free(ccfg);
    lep_tls_config_free(scfg);
    open_close(&cl, &sv);
    assert_true(lep_tls_established(cl.tls));
    assert_string_equal(lep_tls_sni(sv.tls), "localhost");
    lep_conn_free(cl.c);
    lep_conn_free(sv.c);
}

static void
test_engine_header_sasl_plain(void **state)
{
    static const char users_text[] = "alice:PLAIN:wonderland\n";
    lep_sasl_users_t *users;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    peer_t cl, sv;

    assert_int_equal(lep_sasl_users_parse(&users, users_text, sizeof users_text - 1, "t", NULL, 0), 0);
    peer_new(&cl, false);
    peer_new(&sv, true);
    lep_sasl_client_opts_init(&co);
    co.mechanisms = "PLAIN";
    co.username = "alice";
    co.password = "wonderland";
    /* No allow_insecure: PLAIN goes only because TLS is underneath. */
    assert_int_equal(lep_sasl_client_add(cl.c, &co, &cl.sasl), 0);
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.mechanisms = "PLAIN";
    assert_int_equal(lep_sasl_server_add(sv.c, &so, &sv.sasl), 0);

    lep_tls_config_t *ccfg = client_cfg("ca.pem", false, LEP_TLS_MODE_AMQP_HEADER);
    lep_tls_config_t *scfg = server_cfg(LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "localhost", &cl.tls), 0);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.tls), 0);
    lep_tls_config_free(ccfg);
    lep_tls_config_free(scfg);

    open_close(&cl, &sv);
    assert_int_equal(lep_sasl_outcome(sv.sasl), LEP_SASL_CODE_OK);
    assert_string_equal(lep_sasl_user(sv.sasl), "alice");
    lep_conn_free(cl.c);
    lep_conn_free(sv.c);
    lep_sasl_users_free(users);
}

static void
test_engine_sasl_external(void **state)
{
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    peer_t cl, sv;

    peer_new(&cl, false);
    peer_new(&sv, true);
    lep_sasl_client_opts_init(&co);
    co.mechanisms = "EXTERNAL";
    assert_int_equal(lep_sasl_client_add(cl.c, &co, &cl.sasl), 0);
    lep_sasl_server_opts_init(&so);
    so.mechanisms = "EXTERNAL";
    assert_int_equal(lep_sasl_server_add(sv.c, &so, &sv.sasl), 0);

    lep_tls_config_t *ccfg = client_cfg("ca.pem", true, LEP_TLS_MODE_PURE);
    lep_tls_config_t *scfg = server_cfg(LEP_TLS_VERIFY_PEER, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "127.0.0.1", &cl.tls), 0);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.tls), 0);
    lep_tls_config_free(ccfg);
    lep_tls_config_free(scfg);

    open_close(&cl, &sv);
    assert_int_equal(lep_sasl_outcome(cl.sasl), LEP_SASL_CODE_OK);
    assert_string_equal(lep_sasl_mechanism(sv.sasl), "EXTERNAL");
    assert_string_equal(lep_sasl_user(sv.sasl), "CN=lepton-client,O=lepton test");
    lep_conn_free(cl.c);
    lep_conn_free(sv.c);
}

static void
test_engine_handshake_fails(void **state)
{
    peer_t cl, sv;
    peer_new(&cl, false);
    peer_new(&sv, true);
    lep_tls_config_t *ccfg = client_cfg("other-ca.pem", false, LEP_TLS_MODE_PURE);
    lep_tls_config_t *scfg = server_cfg(LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "localhost", &cl.tls), 0);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.tls), 0);
    lep_tls_config_free(ccfg);
    lep_tls_config_free(scfg);

    assert_int_equal(lep_conn_open(cl.c), 0);
    pump(&cl, &sv);
    assert_int_equal(cl.seen[LEP_EVENT_TRANSPORT_ERROR], 1);
    assert_cond(lep_conn_local_condition(cl.c), LEP_TLS_COND_UNAUTHORIZED, "peer certificate");
    /* The client's alert told the server. */
    assert_int_equal(sv.seen[LEP_EVENT_TRANSPORT_ERROR], 1);
    assert_cond(lep_conn_local_condition(sv.c), LEP_TLS_COND_UNAUTHORIZED, NULL);
    assert_int_equal(sv.seen[LEP_EVENT_CONN_REMOTE_OPEN], 0);
    assert_false(lep_conn_encrypted(cl.c));
    lep_conn_input_closed(cl.c);
    lep_conn_input_closed(sv.c);
    assert_true(lep_conn_finished(cl.c));
    assert_true(lep_conn_finished(sv.c));
    lep_conn_free(cl.c);
    lep_conn_free(sv.c);
}

static void
test_engine_garbage(void **state)
{
    /* Random bytes into a server engine with TLS: a transport error,
     * never a crash, whatever the chunking. */
    lep_tls_config_t *scfg = server_cfg(LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT);
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 100; i++) {
        peer_t sv;
        uint8_t buf[512];
        peer_new(&sv, true);
        assert_int_equal(lep_tls_add(sv.c, scfg, NULL, NULL), 0);
        for (size_t k = 0; k < sizeof buf; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        buf[0] = i % 2 ? 0x16 : 'A';
        for (size_t off = 0; off < sizeof buf; off += 37) {
            size_t used, n = sizeof buf - off < 37 ? sizeof buf - off : 37;
            if (lep_conn_feed(sv.c, buf + off, n, &used) != 0)
                break;
            lep_bytes_t out = lep_conn_output(sv.c);
            lep_conn_consumed(sv.c, out.len);
            events(&sv);
        }
        lep_conn_input_closed(sv.c);
        events(&sv);
        assert_int_equal(sv.seen[LEP_EVENT_TRANSPORT_ERROR], 1);
        assert_int_equal(sv.seen[LEP_EVENT_CONN_REMOTE_OPEN], 0);
        lep_conn_free(sv.c);
    }
    lep_tls_config_free(scfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_pure),
        cmocka_unit_test(test_engine_header_sasl_plain),
        cmocka_unit_test(test_engine_sasl_external),
        cmocka_unit_test(test_engine_handshake_fails),
        cmocka_unit_test(test_engine_garbage),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
