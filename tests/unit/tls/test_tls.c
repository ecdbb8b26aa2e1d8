/* TLS layer: a client layer and a server layer on real connections,
 * driven against each other through the layer operations.  Credentials
 * are made at run time by tests/tls/make-certs.sh into a temp dir. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/tls.h>
#include "tls/tls_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs.h"

/* ------------------------------------------------------------------ */
/* Harness: one side is a connection with its TLS layer, what the
 * application wants to send, what it received, and its wire output. */

typedef struct side {
    lep_conn_t *c;
    lep_tls_t *t;
    lep_buf_t app_out; /* plaintext to send */
    lep_buf_t app_in;  /* plaintext received */
    lep_buf_t wire;    /* ciphertext for the peer */
    int in_rc, out_rc;
} side_t;

static void
side_init(side_t *s, bool server)
{
    lep_conn_opts_t o;
    memset(s, 0, sizeof *s);
    lep_conn_opts_init(&o);
    o.server = server;
    assert_int_equal(lep_conn_new(&s->c, &o), 0);
    lep_buf_init(&s->app_out);
    lep_buf_init(&s->app_in);
    lep_buf_init(&s->wire);
}

static void
side_fini(side_t *s)
{
    lep_conn_free(s->c);
    lep_buf_fini(&s->app_out);
    lep_buf_fini(&s->app_in);
    lep_buf_fini(&s->wire);
}

static void
drop(lep_buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* Output of s: the engine calls it even with nothing to pass. */
static bool
side_output(side_t *s)
{
    size_t used = 0, before = s->wire.len;
    int rc = lepi_tls_ops.output(s->t, s->c, s->app_out.data, s->app_out.len, &used, &s->wire);
    if (rc && !s->out_rc)
        s->out_rc = rc;
    if (used)
        drop(&s->app_out, used);
    return used || s->wire.len != before;
}

/* Moves from's wire bytes into to's input, in chunks of at most `chunk`. */
static bool
transfer(side_t *from, side_t *to, size_t chunk)
{
    bool moved = false;
    while (from->wire.len && !to->in_rc) {
        size_t n = from->wire.len < chunk ? from->wire.len : chunk, used = 0;
        int rc = lepi_tls_ops.input(to->t, to->c, from->wire.data, n, &used, &to->app_in,
                                    &to->wire);
        assert_true(used <= n);
        if (rc)
            to->in_rc = rc;
        drop(&from->wire, used);
        moved = true;
        if (!used)
            break;
    }
    return moved;
}

static void
run(side_t *a, side_t *b, size_t chunk)
{
    for (int i = 0; i < 10000; i++) {
        bool p = false;
        p |= side_output(a);
        p |= side_output(b);
        p |= transfer(a, b, chunk);
        p |= transfer(b, a, chunk);
        if (!p)
            return;
    }
    fail_msg("no quiescence");
}

static lep_tls_config_t *
server_cfg(const char *name, lep_tls_verify_t verify, lep_tls_mode_t mode)
{
    lep_tls_config_t *cfg;
    char pem[64], key[64];
    assert_int_equal(lep_tls_config_new(&cfg, true), 0);
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    assert_int_equal(lep_tls_config_set_cert(cfg, cert(pem), cert(key), NULL), 0);
    assert_int_equal(lep_tls_config_set_ca(cfg, cert("ca.pem"), NULL), 0);
    assert_int_equal(lep_tls_config_set_verify(cfg, verify), 0);
    assert_int_equal(lep_tls_config_set_mode(cfg, mode), 0);
    return cfg;
}

static lep_tls_config_t *
client_cfg(const char *ca, const char *client_cert, lep_tls_mode_t mode)
{
    lep_tls_config_t *cfg;
    assert_int_equal(lep_tls_config_new(&cfg, false), 0);
    if (ca)
        assert_int_equal(lep_tls_config_set_ca(cfg, cert(ca), NULL), 0);
    if (client_cert) {
        char pem[64], key[64];
        snprintf(pem, sizeof pem, "%s.pem", client_cert);
        snprintf(key, sizeof key, "%s.key", client_cert);
        assert_int_equal(lep_tls_config_set_cert(cfg, cert(pem), cert(key), NULL), 0);
    }
    assert_int_equal(lep_tls_config_set_mode(cfg, mode), 0);
    return cfg;
}

/* Both sides with their layers; the configs are released at once (the
 * layers hold references). */
static void
pair(side_t *cl, side_t *sv, lep_tls_config_t *ccfg, lep_tls_config_t *scfg, const char *host)
{
    side_init(cl, false);
    side_init(sv, true);
    assert_int_equal(lep_tls_add(cl->c, ccfg, host, &cl->t), 0);
    assert_int_equal(lep_tls_add(sv->c, scfg, NULL, &sv->t), 0);
    lep_tls_config_free(ccfg);
    lep_tls_config_free(scfg);
}

static void
assert_condition(lep_conn_t *c, const char *name, const char *in_desc)
{
    const lep_condition_t *cond = lep_conn_local_condition(c);
    assert_non_null(cond);
    if (!lep_bytes_eq_str(cond->name, name) ||
        (in_desc && !memmem(cond->description.ptr, cond->description.len, in_desc,
                            strlen(in_desc))))
        fail_msg("condition %.*s \"%.*s\", wanted %s with \"%s\"", (int)cond->name.len,
                 (const char *)cond->name.ptr, (int)cond->description.len,
                 (const char *)cond->description.ptr, name, in_desc ? in_desc : "");
}

static void
assert_no_error(side_t *s)
{
    const lep_condition_t *cond = lep_conn_local_condition(s->c);
    if (cond && cond->name.len)
        fail_msg("unexpected %.*s: %.*s", (int)cond->name.len, (const char *)cond->name.ptr,
                 (int)cond->description.len, (const char *)cond->description.ptr);
    assert_int_equal(s->in_rc, 0);
    assert_int_equal(s->out_rc, 0);
}

/* Data both ways, in sizes that span many records. */
static void
exchange(side_t *cl, side_t *sv, size_t size, size_t chunk)
{
    uint8_t *a = malloc(size), *b = malloc(size);
    for (size_t i = 0; i < size; i++) {
        a[i] = (uint8_t)(i * 7 + 1);
        b[i] = (uint8_t)(i * 13 + 5);
    }
    lep_buf_clear(&cl->app_in);
    lep_buf_clear(&sv->app_in);
    assert_int_equal(lep_buf_append(&cl->app_out, a, size), 0);
    assert_int_equal(lep_buf_append(&sv->app_out, b, size), 0);
    run(cl, sv, chunk);
    assert_no_error(cl);
    assert_no_error(sv);
    assert_int_equal(sv->app_in.len, size);
    assert_int_equal(cl->app_in.len, size);
    assert_memory_equal(sv->app_in.data, a, size);
    assert_memory_equal(cl->app_in.data, b, size);
    free(a);
    free(b);
}

static void
handshake_ok(side_t *cl, side_t *sv)
{
    run(cl, sv, 1 << 20);
    assert_no_error(cl);
    assert_no_error(sv);
    assert_true(lep_tls_established(cl->t));
    assert_true(lep_tls_established(sv->t));
    assert_true(lep_conn_encrypted(cl->c));
    assert_true(lep_conn_encrypted(sv->c));
}

/* ------------------------------------------------------------------ */
/* Handshakes that work                                                 */

static void
test_pure(void **state)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), "localhost");
    /* AMQP's header waits in the client until TLS is up. */
    assert_int_equal(lep_buf_append(&cl.app_out, "AMQP\0\1\0\0", 8), 0);
    assert_false(lep_tls_established(cl.t));
    assert_null(lep_tls_protocol(cl.t));
    run(&cl, &sv, 1 << 20);
    assert_no_error(&cl);
    assert_no_error(&sv);
    assert_int_equal(sv.app_in.len, 8);
    assert_memory_equal(sv.app_in.data, "AMQP\0\1\0\0", 8);
    assert_true(lep_conn_encrypted(cl.c));
    assert_true(lep_conn_encrypted(sv.c));
    assert_string_equal(lep_tls_protocol(cl.t), "TLSv1.3");
    assert_string_equal(lep_tls_protocol(sv.t), "TLSv1.3");
    assert_non_null(lep_tls_cipher(cl.t));
    assert_string_equal(lep_tls_cipher(cl.t), lep_tls_cipher(sv.t));
    assert_string_equal(lep_tls_peer_subject(cl.t), "CN=localhost,O=lepton test");
    assert_true(lep_tls_peer_verified(cl.t));
    assert_null(lep_tls_peer_subject(sv.t));
    assert_false(lep_tls_peer_verified(sv.t));
    assert_int_equal(lep_conn_user(sv.c).len, 0);
    assert_string_equal(lep_tls_sni(sv.t), "localhost");
    assert_false(lep_tls_plain(sv.t));
    exchange(&cl, &sv, 100, 1 << 20);
    exchange(&cl, &sv, 300000, 4096);
    exchange(&cl, &sv, 5000, 1); /* byte by byte */
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_amqp_header(void **state)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_AMQP_HEADER),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_AMQP_HEADER), "localhost");
    /* The client writes the TLS header alone and waits for the answer. */
    side_output(&cl);
    assert_int_equal(cl.wire.len, 8);
    assert_memory_equal(cl.wire.data, "AMQP\2\1\0\0", 8);
    side_output(&cl);
    assert_int_equal(cl.wire.len, 8);
    /* The server answers with the same header, then waits for TLS. */
    transfer(&cl, &sv, 3);
    assert_int_equal(sv.wire.len, 8);
    assert_memory_equal(sv.wire.data, "AMQP\2\1\0\0", 8);
    assert_int_equal(sv.app_in.len, 0);
    /* The answer starts the ClientHello (a handshake record). */
    transfer(&sv, &cl, 1 << 20);
    assert_true(cl.wire.len > 8);
    assert_int_equal(cl.wire.data[0], 0x16);
    handshake_ok(&cl, &sv);
    exchange(&cl, &sv, 70000, 1000);
    side_fini(&cl);
    side_fini(&sv);
}

/* A client that sends its ClientHello right behind the TLS header,
 * without waiting for the server's: the server takes both from one read. */
static void
test_amqp_header_pipelined(void **state)
{
    side_t cl, sv, probe;
    size_t used;

    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT), "localhost");
    side_output(&cl); /* ClientHello */
    side_init(&probe, false);
    assert_int_equal(lep_buf_append(&probe.wire, "AMQP\2\1\0\0", 8), 0);
    assert_int_equal(lep_buf_append(&probe.wire, cl.wire.data, cl.wire.len), 0);
    assert_int_equal(lepi_tls_ops.input(sv.t, sv.c, probe.wire.data, probe.wire.len, &used,
                                        &sv.app_in, &sv.wire),
                     0);
    assert_int_equal(used, probe.wire.len);
    cl.wire.len = 0;
    /* The server's header, then its ServerHello. */
    assert_true(sv.wire.len > 8);
    assert_memory_equal(sv.wire.data, "AMQP\2\1\0\0", 8);
    drop(&sv.wire, 8);
    handshake_ok(&cl, &sv);
    exchange(&cl, &sv, 3000, 1 << 20);
    side_fini(&probe);
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_detect(void **state)
{
    for (int header = 0; header < 2; header++) {
        side_t cl, sv;
        pair(&cl, &sv,
             client_cfg("ca.pem", NULL, header ? LEP_TLS_MODE_AMQP_HEADER : LEP_TLS_MODE_PURE),
             server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT), "127.0.0.1");
        handshake_ok(&cl, &sv);
        /* No SNI for an IP address; the IP SAN verifies. */
        assert_null(lep_tls_sni(sv.t));
        assert_true(lep_tls_peer_verified(cl.t));
        exchange(&cl, &sv, 2000, 7);
        side_fini(&cl);
        side_fini(&sv);
    }
}

static void
test_allow_plain(void **state)
{
    static const uint8_t sasl[] = "AMQP\3\1\0\0more";
    lep_tls_config_t *scfg = server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT);
    side_t sv;

    assert_int_equal(lep_tls_config_set_allow_plain(scfg, true), 0);
    /* Plain: every byte passes up, header included, even split. */
    side_init(&sv, true);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.t), 0);
    for (size_t i = 0; i < sizeof sasl - 1; i += 3) {
        size_t used, n = sizeof sasl - 1 - i < 3 ? sizeof sasl - 1 - i : 3;
        assert_int_equal(lepi_tls_ops.input(sv.t, sv.c, sasl + i, n, &used, &sv.app_in, &sv.wire), 0);
        assert_int_equal(used, n);
    }
    assert_true(lep_tls_plain(sv.t));
    assert_int_equal(sv.app_in.len, sizeof sasl - 1);
    assert_memory_equal(sv.app_in.data, sasl, sizeof sasl - 1);
    assert_int_equal(lep_buf_append(&sv.app_out, "reply", 5), 0);
    side_output(&sv);
    assert_int_equal(sv.wire.len, 5);
    assert_false(lep_conn_encrypted(sv.c));
    assert_true(lepi_tls_ops.input_closed(sv.t, sv.c));
    side_fini(&sv);

    /* The same config still does TLS for TLS clients. */
    {
        side_t cl, sv2;
        lepi_tls_config_ref(scfg);
        pair(&cl, &sv2, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE), scfg, "localhost");
        handshake_ok(&cl, &sv2);
        assert_false(lep_tls_plain(sv2.t));
        side_fini(&cl);
        side_fini(&sv2);
    }
    lep_tls_config_free(scfg);

    /* Without allow_plain a plain header is refused. */
    side_init(&sv, true);
    scfg = server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_DETECT);
    assert_int_equal(lep_tls_add(sv.c, scfg, NULL, &sv.t), 0);
    lep_tls_config_free(scfg);
    {
        size_t used;
        assert_int_not_equal(lepi_tls_ops.input(sv.t, sv.c, sasl, 8, &used, &sv.app_in, &sv.wire), 0);
    }
    assert_condition(sv.c, LEP_TLS_COND_ERROR, "TLS required");
    assert_int_equal(sv.app_in.len, 0);
    /* Spec 5.2.1: the server says which header it wants. */
    assert_int_equal(sv.wire.len, 8);
    assert_memory_equal(sv.wire.data, "AMQP\2\1\0\0", 8);
    side_fini(&sv);
}

/* ------------------------------------------------------------------ */
/* Client certificates                                                  */

static void
test_client_cert_required(void **state)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg("ca.pem", "client", LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_PEER, LEP_TLS_MODE_PURE), "localhost");
    handshake_ok(&cl, &sv);
    assert_true(lep_tls_peer_verified(sv.t));
    assert_string_equal(lep_tls_peer_subject(sv.t), "CN=lepton-client,O=lepton test");
    /* The identity SASL EXTERNAL uses. */
    assert_true(lep_bytes_eq_str(lep_conn_user(sv.c), "CN=lepton-client,O=lepton test"));
    exchange(&cl, &sv, 1000, 100);
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_client_cert_missing(void **state)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_PEER, LEP_TLS_MODE_PURE), "localhost");
    assert_int_equal(lep_buf_append(&cl.app_out, "AMQP\0\1\0\0", 8), 0);
    run(&cl, &sv, 1 << 20);
    assert_int_not_equal(sv.in_rc, 0);
    assert_condition(sv.c, LEP_TLS_COND_UNAUTHORIZED, "certificate");
    /* The client learns it from the server's alert. */
    assert_int_not_equal(cl.in_rc, 0);
    assert_condition(cl.c, LEP_TLS_COND_UNAUTHORIZED, "certificate");
    assert_int_equal(sv.app_in.len, 0);
    assert_int_equal(lep_conn_user(sv.c).len, 0);
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_client_cert_optional(void **state)
{
    for (int with = 0; with < 2; with++) {
        side_t cl, sv;
        pair(&cl, &sv, client_cfg("ca.pem", with ? "client" : NULL, LEP_TLS_MODE_PURE),
             server_cfg("server", LEP_TLS_VERIFY_OPTIONAL, LEP_TLS_MODE_PURE), "localhost");
        handshake_ok(&cl, &sv);
        assert_int_equal(lep_tls_peer_verified(sv.t), with);
        assert_int_equal(lep_conn_user(sv.c).len != 0, with);
        side_fini(&cl);
        side_fini(&sv);
    }
}

static void
test_client_cert_untrusted(void **state)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg("ca.pem", "other-client", LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_PEER, LEP_TLS_MODE_PURE), "localhost");
    run(&cl, &sv, 1 << 20);
    assert_condition(sv.c, LEP_TLS_COND_UNAUTHORIZED, "unable to get local issuer certificate");
    assert_condition(cl.c, LEP_TLS_COND_UNAUTHORIZED, NULL);
    assert_int_equal(lep_conn_user(sv.c).len, 0);
    side_fini(&cl);
    side_fini(&sv);
}

/* ------------------------------------------------------------------ */
/* Server certificates the client must refuse                           */

static void
refused(const char *ca, const char *server, const char *host, const char *why)
{
    side_t cl, sv;
    pair(&cl, &sv, client_cfg(ca, NULL, LEP_TLS_MODE_PURE),
         server_cfg(server, LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), host);
    assert_int_equal(lep_buf_append(&cl.app_out, "secret", 6), 0);
    run(&cl, &sv, 1 << 20);
    assert_int_not_equal(cl.in_rc, 0);
    assert_condition(cl.c, LEP_TLS_COND_UNAUTHORIZED, why);
    assert_false(lep_tls_established(cl.t));
    assert_false(lep_conn_encrypted(cl.c));
    /* The server gets the client's alert. */
    assert_condition(sv.c, LEP_TLS_COND_UNAUTHORIZED, NULL);
    assert_int_equal(sv.app_in.len, 0);
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_wrong_ca(void **state)
{
    refused("other-ca.pem", "server", "localhost", "peer certificate: ");
}

static void
test_host_mismatch(void **state)
{
    refused("ca.pem", "wronghost", "localhost", "hostname mismatch");
    refused("ca.pem", "server", "other.example", "hostname mismatch");
    refused("ca.pem", "server", "127.0.0.2", "IP address mismatch");
}

static void
test_expired(void **state)
{
    refused("ca.pem", "expired", "localhost", "certificate has expired");
}

static void
test_ca_dir(void **state)
{
    side_t cl, sv;
    lep_tls_config_t *ccfg;
    assert_int_equal(lep_tls_config_new(&ccfg, false), 0);
    assert_int_equal(lep_tls_config_set_ca(ccfg, NULL, cert("cadir")), 0);
    pair(&cl, &sv, ccfg, server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), "localhost");
    handshake_ok(&cl, &sv);
    assert_true(lep_tls_peer_verified(cl.t));
    side_fini(&cl);
    side_fini(&sv);
}

/* amqps:// against a plain AMQP port: the answer is an AMQP header. */
static void
test_plain_server(void **state)
{
    side_t cl;
    size_t used;
    side_init(&cl, false);
    lep_tls_config_t *ccfg = client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "localhost", &cl.t), 0);
    lep_tls_config_free(ccfg);
    side_output(&cl);
    assert_int_not_equal(lepi_tls_ops.input(cl.t, cl.c, (const uint8_t *)"AMQP\0\1\0\0", 8, &used,
                                            &cl.app_in, &cl.wire),
                         0);
    assert_condition(cl.c, LEP_TLS_COND_ERROR, "AMQP header, not TLS");
    side_fini(&cl);
}

static void
test_verify_none(void **state)
{
    side_t cl, sv;
    lep_tls_config_t *ccfg = client_cfg("other-ca.pem", NULL, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_config_set_verify(ccfg, LEP_TLS_VERIFY_NONE), 0);
    pair(&cl, &sv, ccfg, server_cfg("wronghost", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), NULL);
    handshake_ok(&cl, &sv);
    assert_false(lep_tls_peer_verified(cl.t));
    assert_string_equal(lep_tls_peer_subject(cl.t), "CN=wrong.example,O=lepton test");
    side_fini(&cl);
    side_fini(&sv);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                        */

static void
test_encrypted_key(void **state)
{
    lep_tls_config_t *cfg;
    side_t cl, sv;

    assert_int_equal(lep_tls_config_new(&cfg, true), 0);
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("server-enc.key"), "wrong"),
                     LEP_ERR_INVALID);
    assert_non_null(strstr(lep_tls_config_error(cfg), "private key"));
    /* No password: refused, never a terminal prompt. */
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("server-enc.key"), NULL),
                     LEP_ERR_INVALID);
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("nonexistent.key"), NULL),
                     LEP_ERR_IO);
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("client.key"), NULL),
                     LEP_ERR_INVALID);
    assert_non_null(strstr(lep_tls_config_error(cfg), "private key"));
    assert_int_equal(lep_tls_config_set_cert(cfg, cert("server.pem"), cert("server-enc.key"), "secret"),
                     0);
    assert_string_equal(lep_tls_config_error(cfg), "");
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE), cfg, "localhost");
    handshake_ok(&cl, &sv);
    side_fini(&cl);
    side_fini(&sv);
}

static void
test_config_rules(void **state)
{
    lep_tls_config_t *cfg, *scfg;
    lep_conn_t *c, *s;
    lep_conn_opts_t o;
    lep_tls_t *t = (lep_tls_t *)1;

    lep_conn_opts_init(&o);
    assert_int_equal(lep_conn_new(&c, &o), 0);
    o.server = true;
    assert_int_equal(lep_conn_new(&s, &o), 0);

    assert_int_equal(lep_tls_config_new(&cfg, false), 0);
    assert_int_equal(lep_tls_config_set_mode(cfg, LEP_TLS_MODE_DETECT), LEP_ERR_INVALID);
    assert_int_equal(lep_tls_config_set_allow_plain(cfg, true), LEP_ERR_INVALID);
    assert_int_equal(lep_tls_config_set_ca(cfg, cert("missing.pem"), NULL), LEP_ERR_IO);
    assert_int_equal(lep_tls_config_set_ciphers(cfg, "NO-SUCH-CIPHER", NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_tls_config_set_min_version(cfg, 0x0301), LEP_ERR_INVALID);
    assert_int_equal(lep_tls_config_set_min_version(cfg, LEP_TLS_1_3), 0);
    /* Host-name checking (the default) needs a host name. */
    assert_int_equal(lep_tls_add(c, cfg, NULL, &t), LEP_ERR_INVALID);
    assert_null(t);
    /* A client config on a server connection. */
    assert_int_equal(lep_tls_add(s, cfg, "localhost", NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_tls_add(c, cfg, "localhost", &t), 0);
    assert_non_null(t);
    /* Shared now: frozen. */
    assert_int_equal(lep_tls_config_set_verify(cfg, LEP_TLS_VERIFY_NONE), LEP_ERR_STATE);
    lep_tls_config_free(cfg);

    /* A server needs a certificate. */
    assert_int_equal(lep_tls_config_new(&scfg, true), 0);
    assert_int_equal(lep_tls_add(s, scfg, NULL, NULL), LEP_ERR_STATE);
    lep_tls_config_free(scfg);

    lep_conn_free(c); /* frees the layer and the last config reference */
    lep_conn_free(s);
}

static void
test_tls13_only_vs_tls12_only(void **state)
{
    side_t cl, sv;
    lep_tls_config_t *ccfg = client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE);
    lep_tls_config_t *scfg = server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE);
    /* A TLS 1.2 server: its one cipher decides what is agreed. */
    assert_int_equal(SSL_CTX_set_max_proto_version(scfg->ctx, TLS1_2_VERSION), 1);
    assert_int_equal(lep_tls_config_set_ciphers(scfg, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL), 0);
    pair(&cl, &sv, ccfg, scfg, "localhost");
    handshake_ok(&cl, &sv);
    assert_string_equal(lep_tls_protocol(cl.t), "TLSv1.2");
    assert_string_equal(lep_tls_cipher(sv.t), "ECDHE-ECDSA-AES128-GCM-SHA256");
    exchange(&cl, &sv, 40000, 999);
    side_fini(&cl);
    side_fini(&sv);

    /* A client that wants 1.3 against that server: no common version. */
    ccfg = client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE);
    assert_int_equal(lep_tls_config_set_min_version(ccfg, LEP_TLS_1_3), 0);
    scfg = server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE);
    assert_int_equal(SSL_CTX_set_max_proto_version(scfg->ctx, TLS1_2_VERSION), 1);
    pair(&cl, &sv, ccfg, scfg, "localhost");
    run(&cl, &sv, 1 << 20);
    assert_condition(sv.c, LEP_TLS_COND_ERROR, "unsupported protocol");
    assert_condition(cl.c, LEP_TLS_COND_ERROR, NULL);
    side_fini(&cl);
    side_fini(&sv);
}

/* ------------------------------------------------------------------ */
/* Hostile and broken input                                             */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint8_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)rng;
}

static void
test_garbage(void **state)
{
    static const lep_tls_mode_t modes[] = {LEP_TLS_MODE_PURE, LEP_TLS_MODE_AMQP_HEADER,
                                           LEP_TLS_MODE_DETECT};
    lep_tls_config_t *cfgs[3];
    uint8_t buf[600];

    for (int m = 0; m < 3; m++) {
        cfgs[m] = server_cfg("server", LEP_TLS_VERIFY_PEER, modes[m]);
        assert_int_equal(lep_tls_config_set_allow_plain(cfgs[m], m == 2), 0);
    }
    for (int i = 0; i < 300; i++) {
        lep_tls_config_t *cfg = cfgs[i % 3];
        side_t sv;
        size_t len = 1 + rnd() % sizeof buf, used;
        bool failed = false;
        for (size_t k = 0; k < len; k++)
            buf[k] = rnd();
        /* Some look like the start of a TLS record or a header. */
        if (i % 5 == 1)
            buf[0] = 0x16, buf[1] = 3, buf[2] = rnd() % 5;
        if (i % 5 == 2 && len > 8)
            memcpy(buf, "AMQP\2\1\0\0\x16\3\1", len > 11 ? 11 : 8);
        side_init(&sv, true);
        assert_int_equal(lep_tls_add(sv.c, cfg, NULL, &sv.t), 0);
        for (size_t off = 0; off < len && !failed;) {
            size_t n = 1 + rnd() % 64;
            if (n > len - off)
                n = len - off;
            failed = lepi_tls_ops.input(sv.t, sv.c, buf + off, n, &used, &sv.app_in, &sv.wire) != 0;
            assert_true(used <= n);
            off += used;
            side_output(&sv);
        }
        /* Random bytes never make a client: no plaintext, no encryption. */
        assert_false(lep_conn_encrypted(sv.c));
        if (!lep_tls_plain(sv.t))
            assert_int_equal(sv.app_in.len, 0);
        if (failed)
            assert_true(lep_condition_set(lep_conn_local_condition(sv.c)));
        /* After a failure it stays failed and quiet. */
        if (failed)
            assert_int_not_equal(
                lepi_tls_ops.input(sv.t, sv.c, buf, len, &used, &sv.app_in, &sv.wire), 0);
        lepi_tls_ops.input_closed(sv.t, sv.c);
        side_fini(&sv);
    }
    for (int m = 0; m < 3; m++)
        lep_tls_config_free(cfgs[m]);
}

static void
test_garbage_after_handshake(void **state)
{
    side_t cl, sv;
    uint8_t junk[300];
    size_t used;

    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), "localhost");
    handshake_ok(&cl, &sv);
    for (size_t k = 0; k < sizeof junk; k++)
        junk[k] = rnd();
    junk[0] = 0x17, junk[1] = 3, junk[2] = 3, junk[3] = 0, junk[4] = 100; /* application data */
    assert_int_not_equal(
        lepi_tls_ops.input(sv.t, sv.c, junk, sizeof junk, &used, &sv.app_in, &sv.wire), 0);
    assert_condition(sv.c, LEP_TLS_COND_ERROR, "TLS connection failed");
    assert_int_equal(sv.app_in.len, 0);
    /* The server told the client with an alert. */
    assert_true(sv.wire.len > 0);
    transfer(&sv, &cl, 1 << 20);
    assert_condition(cl.c, LEP_TLS_COND_ERROR, NULL);
    side_fini(&cl);
    side_fini(&sv);
}

/* One byte flipped somewhere in a live handshake plus data, in either
 * direction: the layers fail cleanly (or, rarely, shrug off a byte TLS
 * does not protect) and never hand up corrupted plaintext. */
static void
test_corrupted_stream(void **state)
{
    for (int i = 0; i < 30; i++) {
        side_t cl, sv;
        size_t target = 1 + (size_t)(rnd() | rnd() << 8) % 3000, seen = 0;
        bool to_server = i % 2;
        pair(&cl, &sv, client_cfg("ca.pem", i % 3 ? NULL : "client", LEP_TLS_MODE_PURE),
             server_cfg("server", LEP_TLS_VERIFY_OPTIONAL, LEP_TLS_MODE_PURE), "localhost");
        assert_int_equal(lep_buf_append(&cl.app_out, "client says hello", 17), 0);
        assert_int_equal(lep_buf_append(&sv.app_out, "server says hello", 17), 0);
        for (int round = 0; round < 100; round++) {
            side_t *from = to_server ? &cl : &sv;
            bool p = side_output(&cl) | side_output(&sv);
            if (seen < target && seen + from->wire.len >= target)
                from->wire.data[target - seen - 1] ^= (uint8_t)(1 + rnd() % 255);
            seen += from->wire.len;
            p |= transfer(&cl, &sv, 1 << 20);
            p |= transfer(&sv, &cl, 1 << 20);
            if (!p)
                break;
        }
        /* Whatever arrived is exactly what was sent. */
        if (sv.app_in.len)
            assert_memory_equal(sv.app_in.data, "client says hello", sv.app_in.len);
        if (cl.app_in.len)
            assert_memory_equal(cl.app_in.data, "server says hello", cl.app_in.len);
        if (seen >= target && (cl.in_rc || sv.in_rc))
            assert_true(lep_condition_set(lep_conn_local_condition(cl.in_rc ? cl.c : sv.c)));
        side_fini(&cl);
        side_fini(&sv);
    }
}

static void
test_truncation(void **state)
{
    side_t cl, sv;

    /* EOF mid-handshake. */
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), "localhost");
    side_output(&cl);
    transfer(&cl, &sv, 1 << 20);
    assert_false(lepi_tls_ops.input_closed(cl.t, cl.c));
    assert_condition(cl.c, LEP_TLS_COND_ERROR, "during the handshake");
    side_fini(&cl);
    side_fini(&sv);

    /* EOF after data with no close_notify: a possible truncation attack. */
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_PURE), "localhost");
    handshake_ok(&cl, &sv);
    exchange(&cl, &sv, 100, 1 << 20);
    /* A record cut in half delivers nothing. */
    assert_int_equal(lep_buf_append(&sv.app_out, "0123456789", 10), 0);
    side_output(&sv);
    sv.wire.len -= 5;
    transfer(&sv, &cl, 1 << 20);
    assert_no_error(&cl);
    lep_buf_clear(&cl.app_in);
    transfer(&sv, &cl, 1 << 20);
    assert_int_equal(cl.app_in.len, 0);
    assert_false(lepi_tls_ops.input_closed(cl.t, cl.c));
    assert_condition(cl.c, LEP_TLS_COND_ERROR, "close_notify");
    side_fini(&cl);
    side_fini(&sv);
    /* The close_notify exchange is tested under whole engines
     * (test_tls_engine.c), which know when AMQP has closed. */
}

static void
test_header_refused(void **state)
{
    side_t cl, sv;
    size_t used;

    /* A server that answers with the plain AMQP header does not do TLS. */
    side_init(&cl, false);
    lep_tls_config_t *ccfg = client_cfg("ca.pem", NULL, LEP_TLS_MODE_AMQP_HEADER);
    assert_int_equal(lep_tls_add(cl.c, ccfg, "localhost", &cl.t), 0);
    lep_tls_config_free(ccfg);
    side_output(&cl);
    assert_int_not_equal(
        lepi_tls_ops.input(cl.t, cl.c, (const uint8_t *)"AMQP\0\1\0\0", 8, &used, &cl.app_in, &cl.wire),
        0);
    assert_condition(cl.c, LEP_TLS_COND_ERROR, "refused the TLS header");
    side_fini(&cl);

    /* A pure-TLS client meeting a header-mode server. */
    pair(&cl, &sv, client_cfg("ca.pem", NULL, LEP_TLS_MODE_PURE),
         server_cfg("server", LEP_TLS_VERIFY_NONE, LEP_TLS_MODE_AMQP_HEADER), "localhost");
    run(&cl, &sv, 1 << 20);
    assert_condition(sv.c, LEP_TLS_COND_ERROR, "TLS required");
    assert_condition(cl.c, LEP_TLS_COND_ERROR, NULL);
    side_fini(&cl);
    side_fini(&sv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pure),
        cmocka_unit_test(test_amqp_header),
        cmocka_unit_test(test_amqp_header_pipelined),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_allow_plain),
        cmocka_unit_test(test_client_cert_required),
        cmocka_unit_test(test_client_cert_missing),
        cmocka_unit_test(test_client_cert_optional),
        cmocka_unit_test(test_client_cert_untrusted),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_host_mismatch),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_ca_dir),
        cmocka_unit_test(test_plain_server),
        cmocka_unit_test(test_verify_none),
        cmocka_unit_test(test_encrypted_key),
        cmocka_unit_test(test_config_rules),
        cmocka_unit_test(test_tls13_only_vs_tls12_only),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_garbage_after_handshake),
        cmocka_unit_test(test_corrupted_stream),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_header_refused),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
