/* The SASL layer between two real engines wired together in memory, and
 * against hand-made peers: every mechanism's success and failure,
 * negotiation, PLAIN without TLS, malformed frames, truncated input. */
#include "sasl/sasl_internal.h"

#include <lepton/engine.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct peer {
    lep_conn_t *c;
    lep_sasl_t *s;
    bool remote_open;
    bool error;
    bool closed;
} peer_t;

static void
drain(peer_t *p)
{
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(p->c))) {
        if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN)
            p->remote_open = true;
        else if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
            p->error = true;
        else if (ev->type == LEP_EVENT_TRANSPORT_CLOSED)
            p->closed = true;
    }
}

/* Moves bytes from a to b, at most chunk at a time; returns bytes moved. */
static size_t
move(peer_t *a, peer_t *b, size_t chunk)
{
    lep_bytes_t out = lep_conn_output(a->c);
    size_t n = out.len < chunk ? out.len : chunk, used = 0;
    if (!n)
        return 0;
    if (lep_conn_feed(b->c, out.ptr, n, &used) != 0)
        used = n; /* b no longer reads: the bytes are lost, as on a socket */
    lep_conn_consumed(a->c, used);
    drain(a);
    drain(b);
    return used;
}

static void
pump(peer_t *a, peer_t *b, size_t chunk)
{
    for (int i = 0; i < 100000; i++) {
        size_t n = move(a, b, chunk) + move(b, a, chunk);
        if (!n)
            return;
    }
    fail_msg("pump did not settle");
}

static void
new_client(peer_t *p, const lep_sasl_client_opts_t *o)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(lep_conn_new(&p->c, NULL), 0);
    assert_int_equal(lep_sasl_client_add(p->c, o, &p->s), 0);
    assert_int_equal(lep_conn_open(p->c), 0);
}

static void
new_server(peer_t *p, const lep_sasl_server_opts_t *o)
{
    lep_conn_opts_t co;
    lep_conn_opts_init(&co);
    co.server = true;
    memset(p, 0, sizeof *p);
    assert_int_equal(lep_conn_new(&p->c, &co), 0);
    if (o)
        assert_int_equal(lep_sasl_server_add(p->c, o, &p->s), 0);
    assert_int_equal(lep_conn_open(p->c), 0);
}

static void
free_peer(peer_t *p)
{
    lep_conn_free(p->c);
    p->c = NULL;
}

static void
expect_cond(const peer_t *p, const char *name, const char *desc_part)
{
    const lep_condition_t *cd = lep_conn_local_condition(p->c);
    assert_non_null(cd);
    if (!lep_bytes_eq_str(cd->name, name))
        fail_msg("condition '%.*s', expected '%s' (%.*s)", (int)cd->name.len,
                 (const char *)cd->name.ptr, name, (int)cd->description.len,
                 (const char *)cd->description.ptr);
    if (desc_part) {
        char d[300];
        snprintf(d, sizeof d, "%.*s", (int)cd->description.len, (const char *)cd->description.ptr);
        if (!strstr(d, desc_part))
            fail_msg("description '%s' lacks '%s'", d, desc_part);
    }
}

static void
expect_success(peer_t *cl, peer_t *sv, const char *mech, const char *user)
{
    if (cl->error || sv->error)
        fail_msg("failed: client '%s' server '%s'", lep_sasl_error(cl->s) ? lep_sasl_error(cl->s) : "",
                 sv->s && lep_sasl_error(sv->s) ? lep_sasl_error(sv->s) : "");
    assert_true(cl->remote_open);
    assert_true(sv->remote_open);
    assert_int_equal(lep_sasl_outcome(cl->s), LEP_SASL_CODE_OK);
    assert_string_equal(lep_sasl_mechanism(cl->s), mech);
    if (sv->s) {
        assert_int_equal(lep_sasl_outcome(sv->s), LEP_SASL_CODE_OK);
        assert_string_equal(lep_sasl_mechanism(sv->s), mech);
        assert_string_equal(lep_sasl_user(sv->s), user);
        assert_true(lep_bytes_eq_str(lep_conn_user(sv->c), user));
    }
}

static void
expect_auth_failure(peer_t *cl, peer_t *sv, const char *client_desc, const char *server_desc)
{
    assert_true(cl->error);
    assert_false(cl->remote_open);
    assert_false(sv->remote_open);
    expect_cond(cl, "amqp:unauthorized-access", client_desc);
    assert_int_equal(lep_sasl_outcome(cl->s), LEP_SASL_CODE_AUTH);
    if (server_desc) {
        assert_true(sv->error);
        expect_cond(sv, "amqp:unauthorized-access", server_desc);
        assert_int_equal(lep_sasl_outcome(sv->s), LEP_SASL_CODE_AUTH);
        assert_null(lep_sasl_user(sv->s));
        assert_int_equal(lep_conn_user(sv->c).len, 0);
    }
}

static lep_sasl_users_t *users;

static int
setup(void **state)
{
    lep_buf_t b;
    char err[200];
    lep_buf_init(&b);
    /* few iterations: the tests run the exchange many times */
    static const char *mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(lep_sasl_users_entry(&b, "alice", mechs[i], "alice-pw", 32), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "sam", "SCRAM-SHA-256", "sam-pw", 32), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "pat", "PLAIN", "pat:pw", 0), 0);
    if (lep_sasl_users_parse(&users, (const char *)b.data, b.len, "test", err, sizeof err))
        fail_msg("%s", err);
    lep_buf_fini(&b);
    return 0;
}

static int
teardown(void **state)
{
    lep_sasl_users_free(users);
    return 0;
}

/* One exchange: client options, server options; pumps with chunk size. */
static void
run(peer_t *cl, peer_t *sv, const lep_sasl_client_opts_t *co, const lep_sasl_server_opts_t *so,
    size_t chunk)
{
    new_client(cl, co);
    new_server(sv, so);
    pump(cl, sv, chunk);
}

/* ------------------------------------------------------------------ */

static void
test_anonymous(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "ANONYMOUS", "anonymous");
    assert_null(lep_sasl_error(cl.s));
    assert_false(lep_sasl_skipped(sv.s));
    free_peer(&cl);
    free_peer(&sv);

    /* offered explicitly next to PLAIN, with a users file */
    so.authenticate = NULL;
    so.mechanisms = "ANONYMOUS PLAIN";
    so.users = users;
    co.mechanisms = "ANONYMOUS";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "ANONYMOUS", "anonymous");
    free_peer(&cl);
    free_peer(&sv);
}

static bool
deny_all(void *ctx, lep_conn_t *c, const char *mech, lep_bytes_t user, lep_bytes_t pw,
         lep_bytes_t authzid)
{
    (*(int *)ctx)++;
    return false;
}

static void
test_anonymous_denied(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    int calls = 0;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.mechanisms = "ANONYMOUS";
    so.authenticate = deny_all;
    so.auth_ctx = &calls;
    run(&cl, &sv, &co, &so, SIZE_MAX);
    assert_int_equal(calls, 1);
    expect_auth_failure(&cl, &sv, "outcome auth (1)", "ANONYMOUS authentication failed");
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_plain(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.allow_insecure = true;
    co.mechanisms = "PLAIN";
    co.allow_insecure = true;
    /* a clear-password user and a salted-only one both work for PLAIN */
    static const char *who[][2] = {{"pat", "pat:pw"}, {"alice", "alice-pw"}};
    for (int i = 0; i < 2; i++) {
        co.username = who[i][0];
        co.password = who[i][1];
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_success(&cl, &sv, "PLAIN", who[i][0]);
        assert_string_equal(lep_sasl_user(cl.s), who[i][0]);
        free_peer(&cl);
        free_peer(&sv);
    }
    /* wrong password, unknown user */
    static const char *bad[][2] = {{"pat", "pat"}, {"alice", "x"}, {"nobody", "x"}};
    for (int i = 0; i < 3; i++) {
        co.username = bad[i][0];
        co.password = bad[i][1];
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_auth_failure(&cl, &sv, "SASL authentication failed", "invalid credentials");
        free_peer(&cl);
        free_peer(&sv);
    }
    /* authzid other than the user: refused by the users file */
    co.username = "pat";
    co.password = "pat:pw";
    co.authzid = "root";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "auth", "invalid credentials");
    free_peer(&cl);
    free_peer(&sv);
    co.authzid = "pat";
    co.hostname = "vhost.example";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "PLAIN", "pat");
    assert_string_equal(lep_sasl_hostname(sv.s), "vhost.example");
    assert_string_equal(lep_sasl_hostname(cl.s), "vhost.example");
    free_peer(&cl);
    free_peer(&sv);
}

typedef struct cbrec {
    int calls;
    char mech[32], user[64], pw[64], authzid[64];
} cbrec_t;

static bool
record_cb(void *ctx, lep_conn_t *c, const char *mech, lep_bytes_t user, lep_bytes_t pw,
          lep_bytes_t authzid)
{
    cbrec_t *r = ctx;
    r->calls++;
    snprintf(r->mech, sizeof r->mech, "%s", mech);
    snprintf(r->user, sizeof r->user, "%.*s", (int)user.len, (const char *)user.ptr);
    snprintf(r->pw, sizeof r->pw, "%.*s", (int)pw.len, (const char *)pw.ptr);
    snprintf(r->authzid, sizeof r->authzid, "%.*s", (int)authzid.len, (const char *)authzid.ptr);
    return strcmp(r->user, "cb") == 0 && strcmp(r->pw, "cb-pw") == 0;
}

static void
test_plain_callback(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    cbrec_t rec = {0};
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.authenticate = record_cb;
    so.auth_ctx = &rec;
    so.allow_insecure = true;
    co.allow_insecure = true;
    co.username = "cb";
    co.password = "cb-pw";
    co.authzid = "boss";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "PLAIN", "boss");
    assert_int_equal(rec.calls, 1);
    assert_string_equal(rec.mech, "PLAIN");
    assert_string_equal(rec.user, "cb");
    assert_string_equal(rec.pw, "cb-pw");
    assert_string_equal(rec.authzid, "boss");
    free_peer(&cl);
    free_peer(&sv);

    co.password = "nope";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "auth", "invalid credentials");
    assert_int_equal(rec.calls, 2);
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_plain_needs_tls(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.allow_insecure = true;
    co.mechanisms = "PLAIN";
    co.username = "pat";
    co.password = "pat:pw";
    /* the client refuses to send a password in the clear */
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "PLAIN refused on an unencrypted connection", NULL);
    assert_null(lep_sasl_mechanism(cl.s));
    free_peer(&cl);
    free_peer(&sv);

    /* the server does not offer PLAIN in the clear either */
    so.allow_insecure = false;
    co.allow_insecure = true;
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "server offers SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1;", NULL);
    free_peer(&cl);
    free_peer(&sv);

    /* given credentials, no silent fall-back to ANONYMOUS ... */
    so.mechanisms = "PLAIN ANONYMOUS";
    so.allow_insecure = true;
    co.mechanisms = NULL;
    co.allow_insecure = false;
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "PLAIN refused on an unencrypted connection", NULL);
    free_peer(&cl);
    free_peer(&sv);
    /* ... unless the application lists it */
    co.mechanisms = "PLAIN ANONYMOUS";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "ANONYMOUS", "anonymous");
    free_peer(&cl);
    free_peer(&sv);
    so.mechanisms = NULL;
    so.allow_insecure = false;
    co.mechanisms = "PLAIN";

    /* over "TLS" (as the TLS layer would mark it) both are content */
    co.allow_insecure = false;
    new_client(&cl, &co);
    new_server(&sv, &so);
    lep_conn_set_encrypted(cl.c, true);
    lep_conn_set_encrypted(sv.c, true);
    pump(&cl, &sv, SIZE_MAX);
    expect_success(&cl, &sv, "PLAIN", "pat");
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_scram_each(void **state)
{
    static const char *mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    for (int i = 0; i < 3; i++) {
        peer_t cl, sv;
        lep_sasl_client_opts_t co;
        lep_sasl_server_opts_t so;
        lep_sasl_client_opts_init(&co);
        lep_sasl_server_opts_init(&so);
        so.users = users;
        so.scram_iterations = 32;
        co.mechanisms = mechs[i];
        /* salted entries (alice) and a clear password salted on the fly (pat) */
        co.username = "alice";
        co.password = "alice-pw";
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_success(&cl, &sv, mechs[i], "alice");
        free_peer(&cl);
        free_peer(&sv);
        co.username = "pat";
        co.password = "pat:pw";
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_success(&cl, &sv, mechs[i], "pat");
        free_peer(&cl);
        free_peer(&sv);
        /* wrong password, unknown user: the same failure */
        co.username = "alice";
        co.password = "alice-pW";
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_auth_failure(&cl, &sv, "outcome auth (1)", "invalid credentials");
        free_peer(&cl);
        free_peer(&sv);
        co.username = "mallory";
        run(&cl, &sv, &co, &so, SIZE_MAX);
        expect_auth_failure(&cl, &sv, "outcome auth (1)", "invalid credentials");
        free_peer(&cl);
        free_peer(&sv);
    }
}

static void
test_scram_strongest_and_bytewise(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.allow_insecure = true;
    co.allow_insecure = true;
    co.username = "alice";
    co.password = "alice-pw";
    /* default: the strongest both allow, one byte at a time each way */
    run(&cl, &sv, &co, &so, 1);
    expect_success(&cl, &sv, "SCRAM-SHA-512", "alice");
    free_peer(&cl);
    free_peer(&sv);
    /* the server offers less: the client takes the best of what is there */
    so.mechanisms = "PLAIN SCRAM-SHA-256 ANONYMOUS";
    co.username = "sam";
    co.password = "sam-pw";
    run(&cl, &sv, &co, &so, 3);
    expect_success(&cl, &sv, "SCRAM-SHA-256", "sam");
    free_peer(&cl);
    free_peer(&sv);
    /* without credentials only ANONYMOUS is left */
    co.username = NULL;
    co.password = NULL;
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "ANONYMOUS", "anonymous");
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_external(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    co.mechanisms = "EXTERNAL PLAIN";
    /* the TLS layer has set the certificate's subject before SASL runs */
    new_client(&cl, &co);
    new_server(&sv, &so);
    lep_conn_set_encrypted(cl.c, true);
    lep_conn_set_encrypted(sv.c, true);
    assert_int_equal(lep_conn_set_user(sv.c, lep_bytes_str("CN=client,O=test")), 0);
    pump(&cl, &sv, SIZE_MAX);
    expect_success(&cl, &sv, "EXTERNAL", "CN=client,O=test");
    free_peer(&cl);
    free_peer(&sv);

    /* no TLS on the client: EXTERNAL is not used (PLAIN has no password) */
    new_client(&cl, &co);
    new_server(&sv, &so);
    assert_int_equal(lep_conn_set_user(sv.c, lep_bytes_str("CN=client")), 0);
    pump(&cl, &sv, SIZE_MAX);
    assert_true(cl.error);
    expect_cond(&cl, "amqp:unauthorized-access",
                "server offers EXTERNAL ANONYMOUS; allowed: EXTERNAL PLAIN (EXTERNAL needs TLS)");
    free_peer(&cl);
    free_peer(&sv);

    /* no certificate identity: not offered by default */
    new_client(&cl, &co);
    new_server(&sv, &so);
    lep_conn_set_encrypted(cl.c, true);
    pump(&cl, &sv, SIZE_MAX);
    assert_true(cl.error);
    expect_cond(&cl, "amqp:unauthorized-access", "server offers ANONYMOUS");
    free_peer(&cl);
    free_peer(&sv);

    /* listed but no identity to check: not offered either (a client
     * cannot pick a mechanism that could only fail) */
    so.mechanisms = "EXTERNAL";
    new_client(&cl, &co);
    new_server(&sv, &so);
    lep_conn_set_encrypted(cl.c, true);
    pump(&cl, &sv, SIZE_MAX);
    assert_true(cl.error);
    expect_cond(&cl, "amqp:unauthorized-access", "server offers none");
    free_peer(&cl);
    free_peer(&sv);

    /* an authzid other than the identity needs the authenticator */
    co.authzid = "admin";
    new_client(&cl, &co);
    new_server(&sv, &so);
    lep_conn_set_encrypted(cl.c, true);
    assert_int_equal(lep_conn_set_user(sv.c, lep_bytes_str("CN=client")), 0);
    pump(&cl, &sv, SIZE_MAX);
    assert_true(cl.error);
    assert_true(sv.error);
    expect_cond(&sv, "amqp:unauthorized-access", "authorization identity not allowed");
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_negotiation_failure(void **state)
{
    peer_t cl, sv;
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.mechanisms = "SCRAM-SHA-256";
    so.users = users;
    co.mechanisms = "SCRAM-SHA-1 ANONYMOUS";
    co.username = "alice";
    co.password = "alice-pw";
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv,
                        "no usable SASL mechanism: server offers SCRAM-SHA-256; allowed: "
                        "SCRAM-SHA-1 ANONYMOUS", NULL);
    assert_int_equal(lep_sasl_outcome(sv.s), -1);
    free_peer(&cl);
    free_peer(&sv);

    /* SCRAM offered but no credentials on the client */
    co.mechanisms = NULL;
    co.username = NULL;
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_auth_failure(&cl, &sv, "(no username/password)", NULL);
    free_peer(&cl);
    free_peer(&sv);

    /* bad option strings */
    lep_conn_t *c;
    lep_sasl_t *s = NULL;
    assert_int_equal(lep_conn_new(&c, NULL), 0);
    co.mechanisms = "PLAIN CRAM-MD5";
    assert_int_equal(lep_sasl_client_add(c, &co, &s), LEP_ERR_INVALID);
    so.mechanisms = "GSSAPI";
    assert_int_equal(lep_sasl_server_add(c, &so, &s), LEP_ERR_INVALID);
    so.mechanisms = "";
    assert_int_equal(lep_sasl_server_add(c, &so, &s), LEP_ERR_INVALID);
    assert_null(s);
    assert_int_equal(lep_sasl_client_add(c, NULL, &s), LEP_ERR_INVALID);
    lep_conn_free(c);
}

/* ------------------------------------------------------------------ */
/* Hand-made peers                                                     */

static void
append_sasl_frame(lep_buf_t *b, const lep_sasl_frame_t *f)
{
    lep_buf_t body;
    lep_encoder_t e;
    lep_buf_init(&body);
    lep_encoder_init(&e, &body);
    assert_int_equal(lep_sasl_frame_encode(&e, f), 0);
    assert_int_equal(lep_frame_append(b, LEP_FRAME_SASL, 0, lep_buf_bytes(&body),
                                      LEP_BYTES(NULL, 0), UINT32_MAX), 0);
    lep_buf_fini(&body);
}

static void
append_init(lep_buf_t *b, const char *mech, const void *resp, size_t n)
{
    lep_sasl_frame_t f;
    f.code = LEP_DESC_SASL_INIT;
    lep_sasl_init_init(&f.u.sasl_init);
    f.u.sasl_init.present = LEP_SASL_INIT_HAS_MECHANISM;
    f.u.sasl_init.mechanism = lep_bytes_str(mech);
    if (resp) {
        f.u.sasl_init.present |= LEP_SASL_INIT_HAS_INITIAL_RESPONSE;
        f.u.sasl_init.initial_response = LEP_BYTES(resp, n);
    }
    append_sasl_frame(b, &f);
}

/* Parses what a server wrote: the SASL header, then SASL frames; returns
 * the count of frames and the last outcome code (-1: none). */
static int
server_said(peer_t *sv, int *outcome, size_t *nframes)
{
    lep_bytes_t out = lep_conn_output(sv->c);
    *outcome = -1;
    *nframes = 0;
    if (out.len < 8 || memcmp(out.ptr, LEP_PROTO_HEADER_SASL, 8) != 0)
        return -1;
    size_t pos = 8;
    while (pos < out.len) {
        lep_frame_t fr;
        size_t n;
        if (lep_frame_parse(out.ptr + pos, out.len - pos, UINT32_MAX, &fr, &n))
            break;
        pos += n;
        if (fr.type != LEP_FRAME_SASL)
            break;
        lep_reader_t r;
        lep_sasl_frame_t sf;
        lep_reader_init(&r, fr.body.ptr, fr.body.len);
        assert_int_equal(lep_sasl_frame_decode(&r, &sf), 0);
        (*nframes)++;
        if (sf.code == LEP_DESC_SASL_OUTCOME)
            *outcome = sf.u.sasl_outcome.code;
    }
    lep_conn_consumed(sv->c, out.len);
    return 0;
}

static void
feed_server(peer_t *sv, const lep_buf_t *b)
{
    size_t used;
    lep_conn_feed(sv->c, b->data, b->len, &used);
    drain(sv);
}

static void
raw_client_case(const lep_sasl_server_opts_t *so, const lep_buf_t *in, int want_outcome,
                const char *cond, const char *desc)
{
    peer_t sv;
    int oc;
    size_t nf;
    new_server(&sv, so);
    feed_server(&sv, in);
    assert_int_equal(server_said(&sv, &oc, &nf), 0);
    assert_int_equal(oc, want_outcome);
    assert_true(sv.error);
    expect_cond(&sv, cond, desc);
    assert_int_equal(lep_conn_user(sv.c).len, 0);
    assert_false(sv.remote_open);
    free_peer(&sv);
}

static void
test_server_bad_client(void **state)
{
    lep_sasl_server_opts_t so;
    lep_buf_t b;
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.allow_insecure = true;
    lep_buf_init(&b);

    /* unknown mechanism */
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    append_init(&b, "CRAM-MD5", "x", 1);
    raw_client_case(&so, &b, LEP_SASL_CODE_AUTH, "amqp:unauthorized-access",
                    "mechanism 'CRAM-MD5' not offered");
    /* a known mechanism not offered */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    append_init(&b, "ANONYMOUS", "x", 1);
    raw_client_case(&so, &b, LEP_SASL_CODE_AUTH, "amqp:unauthorized-access", "not offered");
    /* malformed PLAIN messages */
    static const struct { const char *p; size_t n; } plain[] = {
        {"", 0}, {"pat", 3}, {"\0pat", 4}, {"\0\0pw", 4}, {"\0pat\0pat:pw\0", 12},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        lep_buf_clear(&b);
        lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
        append_init(&b, "PLAIN", plain[i].p, plain[i].n);
        raw_client_case(&so, &b, LEP_SASL_CODE_AUTH, "amqp:unauthorized-access",
                        "malformed PLAIN message");
    }
    /* a well-formed PLAIN with no initial response gets an empty challenge,
     * and the response is then accepted */
    {
        peer_t sv;
        int oc;
        size_t nf;
        new_server(&sv, &so);
        lep_buf_clear(&b);
        lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
        append_init(&b, "PLAIN", NULL, 0);
        feed_server(&sv, &b);
        assert_int_equal(server_said(&sv, &oc, &nf), 0);
        assert_int_equal(nf, 2); /* mechanisms, challenge */
        assert_int_equal(oc, -1);
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_RESPONSE;
        lep_sasl_response_init(&f.u.sasl_response);
        f.u.sasl_response.present = LEP_SASL_RESPONSE_HAS_RESPONSE;
        f.u.sasl_response.response = LEP_BYTES("\0pat\0pat:pw", 11);
        lep_buf_clear(&b);
        append_sasl_frame(&b, &f);
        feed_server(&sv, &b);
        lep_bytes_t out = lep_conn_output(sv.c);
        assert_true(out.len > 8);
        assert_false(sv.error);
        assert_int_equal(lep_sasl_outcome(sv.s), LEP_SASL_CODE_OK);
        assert_string_equal(lep_sasl_user(sv.s), "pat");
        free_peer(&sv);
    }
    /* frames out of order: a response first, a second init */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    {
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_RESPONSE;
        lep_sasl_response_init(&f.u.sasl_response);
        f.u.sasl_response.present = LEP_SASL_RESPONSE_HAS_RESPONSE;
        f.u.sasl_response.response = LEP_BYTES("x", 1);
        append_sasl_frame(&b, &f);
    }
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "unexpected SASL frame");
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    append_init(&b, "SCRAM-SHA-256", "n,,n=alice,r=abcdef", 19);
    append_init(&b, "SCRAM-SHA-256", "n,,n=alice,r=abcdef", 19);
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "unexpected SASL frame");
    /* a server-only frame from the client */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    {
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_OUTCOME;
        lep_sasl_outcome_init(&f.u.sasl_outcome);
        f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
        append_sasl_frame(&b, &f);
    }
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "unexpected SASL frame");
    /* malformed SCRAM client-first */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    append_init(&b, "SCRAM-SHA-256", "p=tls-unique,,n=alice,r=abc", 27);
    raw_client_case(&so, &b, LEP_SASL_CODE_AUTH, "amqp:unauthorized-access",
                    "channel binding not supported");
    /* undecodable body */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    lep_frame_append(&b, LEP_FRAME_SASL, 0, LEP_BYTES("\x00\x53\x41\xc0\x05\x01", 6),
                     LEP_BYTES(NULL, 0), UINT32_MAX);
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:decode-error", "malformed SASL frame");
    /* an AMQP frame during SASL */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    lep_frame_append(&b, LEP_FRAME_AMQP, 0, LEP_BYTES("\x00\x53\x10\x45", 4), LEP_BYTES(NULL, 0),
                     UINT32_MAX);
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "frame of type 0 during SASL");
    /* a bad frame header, an oversized frame */
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    lep_buf_append(&b, "\x00\x00\x00\x04\x02\x01\x00\x00", 8);
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "malformed SASL frame header");
    lep_buf_clear(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
    lep_buf_append(&b, "\x10\x00\x00\x00\x02\x01\x00\x00", 8);
    raw_client_case(&so, &b, LEP_SASL_CODE_SYS_PERM, "amqp:connection:framing-error",
                    "SASL frame too large");
    lep_buf_fini(&b);
}

static void
test_server_headers(void **state)
{
    lep_sasl_server_opts_t so;
    lep_sasl_server_opts_init(&so);
    peer_t sv;
    int oc;
    size_t nf;

    /* SASL required, plain AMQP header: our header, then close */
    new_server(&sv, &so);
    lep_buf_t b;
    lep_buf_init(&b);
    lep_buf_append(&b, LEP_PROTO_HEADER_AMQP, 8);
    feed_server(&sv, &b);
    assert_int_equal(server_said(&sv, &oc, &nf), 0);
    assert_int_equal(nf, 0);
    assert_true(sv.error);
    expect_cond(&sv, "amqp:unauthorized-access", "SASL required");
    free_peer(&sv);

    /* not AMQP at all */
    new_server(&sv, &so);
    lep_buf_clear(&b);
    lep_buf_append(&b, "HTTP/1.1", 8);
    feed_server(&sv, &b);
    assert_int_equal(server_said(&sv, &oc, &nf), 0);
    assert_true(sv.error);
    expect_cond(&sv, "amqp:connection:framing-error", "expected the SASL protocol header");
    free_peer(&sv);
    lep_buf_fini(&b);

    /* SASL optional: a client without SASL gets through, unauthenticated */
    so.optional = true;
    peer_t cl;
    memset(&cl, 0, sizeof cl);
    assert_int_equal(lep_conn_new(&cl.c, NULL), 0);
    assert_int_equal(lep_conn_open(cl.c), 0);
    new_server(&sv, &so);
    pump(&cl, &sv, SIZE_MAX);
    assert_false(sv.error);
    assert_false(cl.error);
    assert_true(sv.remote_open);
    assert_true(cl.remote_open);
    assert_true(lep_sasl_skipped(sv.s));
    assert_int_equal(lep_sasl_outcome(sv.s), -1);
    assert_int_equal(lep_conn_user(sv.c).len, 0);
    free_peer(&cl);
    free_peer(&sv);

    /* ... and one with SASL still authenticates */
    lep_sasl_client_opts_t co;
    lep_sasl_client_opts_init(&co);
    run(&cl, &sv, &co, &so, SIZE_MAX);
    expect_success(&cl, &sv, "ANONYMOUS", "anonymous");
    assert_false(lep_sasl_skipped(sv.s));
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_client_bad_server(void **state)
{
    lep_sasl_client_opts_t co;
    lep_sasl_client_opts_init(&co);
    co.username = "pat";
    co.password = "pat:pw";
    co.allow_insecure = true;
    lep_buf_t mechs;
    lep_buf_init(&mechs);
    {
        lep_buf_t arr;
        lep_encoder_t e;
        lep_buf_init(&arr);
        lep_encoder_init(&e, &arr);
        lep_encode_array_begin(&e, LEP_TYPE_SYMBOL);
        lep_encode_csymbol(&e, "PLAIN");
        lep_encode_array_end(&e);
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_MECHANISMS;
        f.u.sasl_mechanisms.present = LEP_SASL_MECHANISMS_HAS_SASL_SERVER_MECHANISMS;
        f.u.sasl_mechanisms.sasl_server_mechanisms = lep_buf_bytes(&arr);
        lep_buf_append(&mechs, LEP_PROTO_HEADER_SASL, 8);
        append_sasl_frame(&mechs, &f);
        lep_buf_fini(&arr);
    }
    struct { const char *what, *cond, *desc; } cases[] = {
        {"amqp-header", "amqp:connection:framing-error", "the server does not do SASL"},
        {"challenge", "amqp:connection:framing-error", "unexpected sasl-challenge for PLAIN"},
        {"outcome-auth", "amqp:unauthorized-access", "outcome auth (1) for PLAIN"},
        {"outcome-sys-temp", "amqp:unauthorized-access", "outcome sys-temp (4)"},
        {"mechanisms-twice", "amqp:connection:framing-error", "unexpected SASL frame"},
        {"garbage", "amqp:decode-error", "malformed SASL frame body"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        peer_t cl;
        lep_buf_t b;
        size_t used;
        lep_buf_init(&b);
        new_client(&cl, &co);
        if (strcmp(cases[i].what, "amqp-header") == 0) {
            lep_buf_append(&b, LEP_PROTO_HEADER_AMQP, 8);
        } else {
            lep_buf_append(&b, mechs.data, mechs.len);
            lep_sasl_frame_t f;
            if (strcmp(cases[i].what, "challenge") == 0) {
                f.code = LEP_DESC_SASL_CHALLENGE;
                f.u.sasl_challenge.present = LEP_SASL_CHALLENGE_HAS_CHALLENGE;
                f.u.sasl_challenge.challenge = LEP_BYTES("x", 1);
                append_sasl_frame(&b, &f);
            } else if (strncmp(cases[i].what, "outcome", 7) == 0) {
                f.code = LEP_DESC_SASL_OUTCOME;
                lep_sasl_outcome_init(&f.u.sasl_outcome);
                f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
                f.u.sasl_outcome.code = strstr(cases[i].what, "auth") ? 1 : 4;
                append_sasl_frame(&b, &f);
            } else if (strcmp(cases[i].what, "mechanisms-twice") == 0) {
                lep_buf_append(&b, mechs.data + 8, mechs.len - 8);
            } else {
                lep_frame_append(&b, LEP_FRAME_SASL, 0, LEP_BYTES("\x00\x53\x44\xc0", 4),
                                 LEP_BYTES(NULL, 0), UINT32_MAX);
            }
        }
        lep_conn_feed(cl.c, b.data, b.len, &used);
        drain(&cl);
        assert_true(cl.error);
        expect_cond(&cl, cases[i].cond, cases[i].desc);
        assert_false(cl.remote_open);
        assert_int_not_equal(lep_sasl_outcome(cl.s), LEP_SASL_CODE_OK);
        /* nothing of AMQP leaves an unauthenticated client */
        lep_bytes_t out = lep_conn_output(cl.c);
        for (size_t k = 0; k + 8 <= out.len; k++)
            assert_false(memcmp(out.ptr + k, LEP_PROTO_HEADER_AMQP, 8) == 0);
        free_peer(&cl);
        lep_buf_fini(&b);
    }
    /* an "ok" outcome for SCRAM without the server's proof is refused */
    {
        peer_t cl;
        lep_buf_t b;
        size_t used;
        lep_sasl_client_opts_t so2 = co;
        so2.mechanisms = "SCRAM-SHA-256";
        lep_buf_init(&b);
        new_client(&cl, &so2);
        lep_buf_t arr;
        lep_encoder_t e;
        lep_buf_init(&arr);
        lep_encoder_init(&e, &arr);
        lep_encode_csymbol(&e, "SCRAM-SHA-256"); /* a single symbol, not an array */
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_MECHANISMS;
        f.u.sasl_mechanisms.present = LEP_SASL_MECHANISMS_HAS_SASL_SERVER_MECHANISMS;
        f.u.sasl_mechanisms.sasl_server_mechanisms = lep_buf_bytes(&arr);
        lep_buf_append(&b, LEP_PROTO_HEADER_SASL, 8);
        append_sasl_frame(&b, &f);
        f.code = LEP_DESC_SASL_OUTCOME;
        lep_sasl_outcome_init(&f.u.sasl_outcome);
        f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
        append_sasl_frame(&b, &f);
        lep_conn_feed(cl.c, b.data, b.len, &used);
        drain(&cl);
        assert_true(cl.error);
        expect_cond(&cl, "amqp:unauthorized-access", "server sent no proof");
        assert_string_equal(lep_sasl_mechanism(cl.s), "SCRAM-SHA-256");
        free_peer(&cl);
        lep_buf_fini(&b);
        lep_buf_fini(&arr);
    }
    lep_buf_fini(&mechs);
}

/* The client's SASL frames after the header: the body of frame i. */
static bool
client_frame_body(peer_t *cl, lep_buf_t *seen, size_t i, lep_sasl_frame_t *out)
{
    lep_bytes_t o = lep_conn_output(cl->c);
    lep_buf_append(seen, o.ptr, o.len);
    lep_conn_consumed(cl->c, o.len);
    if (seen->len < 8 || memcmp(seen->data, LEP_PROTO_HEADER_SASL, 8) != 0)
        return false;
    size_t pos = 8;
    for (size_t k = 0;; k++) {
        lep_frame_t fr;
        size_t n;
        if (lep_frame_parse(seen->data + pos, seen->len - pos, UINT32_MAX, &fr, &n))
            return false;
        pos += n;
        if (k == i) {
            lep_reader_t r;
            lep_reader_init(&r, fr.body.ptr, fr.body.len);
            return lep_sasl_frame_decode(&r, out) == 0;
        }
    }
}

/* A server that sends server-final as a challenge (as some do) instead of
 * in the outcome: the client checks it, answers with an empty response. */
static void
scram_final_as_challenge(bool tamper)
{
    lep_sasl_client_opts_t co;
    lep_sasl_client_opts_init(&co);
    co.mechanisms = "SCRAM-SHA-256";
    co.username = "user";
    co.password = "pencil";
    peer_t cl;
    new_client(&cl, &co);
    lep_buf_t in, seen, msg, arr;
    lep_buf_init(&in);
    lep_buf_init(&seen);
    lep_buf_init(&msg);
    lep_buf_init(&arr);
    lep_encoder_t e;
    lep_encoder_init(&e, &arr);
    lep_encode_array_begin(&e, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(&e, "SCRAM-SHA-256");
    lep_encode_csymbol(&e, "PLAIN");
    lep_encode_array_end(&e);
    lep_sasl_frame_t f, got;
    f.code = LEP_DESC_SASL_MECHANISMS;
    f.u.sasl_mechanisms.present = LEP_SASL_MECHANISMS_HAS_SASL_SERVER_MECHANISMS;
    f.u.sasl_mechanisms.sasl_server_mechanisms = lep_buf_bytes(&arr);
    lep_buf_append(&in, LEP_PROTO_HEADER_SASL, 8);
    append_sasl_frame(&in, &f);
    size_t used;
    lep_conn_feed(cl.c, in.data, in.len, &used);
    drain(&cl);
    assert_true(client_frame_body(&cl, &seen, 0, &got));
    assert_int_equal(got.code, LEP_DESC_SASL_INIT);
    assert_true(lep_bytes_eq_str(got.u.sasl_init.mechanism, "SCRAM-SHA-256"));

    lepi_scram_t sv;
    lepi_scram_cred_t cr;
    lepi_scram_init(&sv, LEPI_HASH_SHA256);
    lepi_scram_derive(&cr, LEPI_HASH_SHA256, lep_bytes_str("pencil"), (const uint8_t *)"NaCl", 4, 64);
    assert_int_equal(lepi_scram_server_parse_first(&sv, got.u.sasl_init.initial_response), 0);
    assert_int_equal(lepi_scram_server_first(&sv, &cr, NULL, &msg), 0);
    lep_buf_clear(&in);
    f.code = LEP_DESC_SASL_CHALLENGE;
    f.u.sasl_challenge.present = LEP_SASL_CHALLENGE_HAS_CHALLENGE;
    f.u.sasl_challenge.challenge = lep_buf_bytes(&msg);
    append_sasl_frame(&in, &f);
    lep_conn_feed(cl.c, in.data, in.len, &used);
    drain(&cl);
    assert_false(cl.error);
    assert_true(client_frame_body(&cl, &seen, 1, &got));
    assert_int_equal(got.code, LEP_DESC_SASL_RESPONSE);
    lep_buf_clear(&msg);
    assert_int_equal(lepi_scram_server_final(&sv, got.u.sasl_response.response, &msg), 0);
    if (tamper)
        msg.data[3] = msg.data[3] == 'A' ? 'B' : 'A';
    lep_buf_clear(&in);
    f.u.sasl_challenge.challenge = lep_buf_bytes(&msg);
    append_sasl_frame(&in, &f);
    lep_conn_feed(cl.c, in.data, in.len, &used);
    drain(&cl);
    if (tamper) {
        assert_true(cl.error);
        expect_cond(&cl, "amqp:unauthorized-access", "server signature wrong");
    } else {
        assert_false(cl.error);
        assert_true(client_frame_body(&cl, &seen, 2, &got));
        assert_int_equal(got.code, LEP_DESC_SASL_RESPONSE);
        assert_int_equal(got.u.sasl_response.response.len, 0);
        lep_buf_clear(&in);
        f.code = LEP_DESC_SASL_OUTCOME;
        lep_sasl_outcome_init(&f.u.sasl_outcome);
        f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
        append_sasl_frame(&in, &f);
        lep_conn_feed(cl.c, in.data, in.len, &used);
        drain(&cl);
        assert_false(cl.error);
        assert_int_equal(lep_sasl_outcome(cl.s), LEP_SASL_CODE_OK);
        /* now the AMQP header the engine queued goes out */
        lep_bytes_t o = lep_conn_output(cl.c);
        assert_true(o.len >= 8);
        assert_memory_equal(o.ptr, LEP_PROTO_HEADER_AMQP, 8);
    }
    lepi_scram_fini(&sv);
    lep_buf_fini(&in);
    lep_buf_fini(&seen);
    lep_buf_fini(&msg);
    lep_buf_fini(&arr);
    free_peer(&cl);
}

static void
test_scram_final_as_challenge(void **state)
{
    scram_final_as_challenge(false);
    scram_final_as_challenge(true);
}

/* Records what one side sends in a successful exchange. */
static void
record_stream(const lep_sasl_client_opts_t *co, const lep_sasl_server_opts_t *so, bool to_server,
              lep_buf_t *rec)
{
    peer_t cl, sv;
    new_client(&cl, co);
    new_server(&sv, so);
    for (int i = 0; i < 1000; i++) {
        lep_bytes_t a = lep_conn_output(cl.c);
        lep_bytes_t b = lep_conn_output(sv.c);
        if (!a.len && !b.len)
            break;
        size_t used;
        if (a.len) {
            if (to_server)
                lep_buf_append(rec, a.ptr, a.len);
            lep_conn_feed(sv.c, a.ptr, a.len, &used);
            lep_conn_consumed(cl.c, a.len);
        }
        b = lep_conn_output(sv.c);
        if (b.len) {
            if (!to_server)
                lep_buf_append(rec, b.ptr, b.len);
            lep_conn_feed(cl.c, b.ptr, b.len, &used);
            lep_conn_consumed(sv.c, b.len);
        }
        drain(&cl);
        drain(&sv);
    }
    expect_success(&cl, &sv, lep_sasl_mechanism(cl.s), lep_sasl_user(sv.s));
    free_peer(&cl);
    free_peer(&sv);
}

static void
test_truncation_server(void **state)
{
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_buf_t rec;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    so.users = users;
    so.allow_insecure = true;
    co.allow_insecure = true;
    co.mechanisms = "PLAIN";
    co.username = "pat";
    co.password = "pat:pw";
    co.hostname = "example.org";
    lep_buf_init(&rec);
    record_stream(&co, &so, true, &rec);
    assert_true(rec.len > 30);
    for (size_t k = 0; k <= rec.len; k++) {
        peer_t sv;
        size_t used;
        /* the first k bytes, then EOF: never a crash, never success before
         * the whole SASL exchange arrived */
        new_server(&sv, &so);
        lep_conn_feed(sv.c, rec.data, k, &used);
        drain(&sv);
        (void)lep_conn_output(sv.c);
        lep_conn_input_closed(sv.c);
        drain(&sv);
        if (k < rec.len)
            assert_false(sv.remote_open);
        free_peer(&sv);
        /* split in two at k: the same success */
        new_server(&sv, &so);
        lep_conn_feed(sv.c, rec.data, k, &used);
        drain(&sv);
        lep_conn_feed(sv.c, rec.data + k, rec.len - k, &used);
        drain(&sv);
        assert_false(sv.error);
        assert_true(sv.remote_open);
        assert_int_equal(lep_sasl_outcome(sv.s), LEP_SASL_CODE_OK);
        free_peer(&sv);
        /* a corrupted byte at k: no crash */
        new_server(&sv, &so);
        uint8_t save = rec.data[k < rec.len ? k : 0];
        rec.data[k < rec.len ? k : 0] ^= 0xa5;
        lep_conn_feed(sv.c, rec.data, rec.len, &used);
        rec.data[k < rec.len ? k : 0] = save;
        drain(&sv);
        (void)lep_conn_output(sv.c);
        free_peer(&sv);
    }
    lep_buf_fini(&rec);
}

static void
test_truncation_client(void **state)
{
    lep_sasl_client_opts_t co;
    lep_sasl_server_opts_t so;
    lep_buf_t rec;
    lep_sasl_client_opts_init(&co);
    lep_sasl_server_opts_init(&so);
    lep_buf_init(&rec);
    record_stream(&co, &so, false, &rec); /* ANONYMOUS: the server's bytes replay */
    for (size_t k = 0; k <= rec.len; k++) {
        peer_t cl;
        size_t used;
        new_client(&cl, &co);
        (void)lep_conn_output(cl.c);
        lep_conn_feed(cl.c, rec.data, k, &used);
        drain(&cl);
        lep_conn_input_closed(cl.c);
        drain(&cl);
        free_peer(&cl);
        new_client(&cl, &co);
        lep_conn_feed(cl.c, rec.data, k, &used);
        drain(&cl);
        lep_conn_feed(cl.c, rec.data + k, rec.len - k, &used);
        drain(&cl);
        assert_false(cl.error);
        assert_true(cl.remote_open);
        assert_int_equal(lep_sasl_outcome(cl.s), LEP_SASL_CODE_OK);
        free_peer(&cl);
    }
    lep_buf_fini(&rec);
}

/* ------------------------------------------------------------------ */
/* Allocation failure during the exchange: each allocation in turn.    */

static long alloc_left = -1;

static void *
fail_malloc(size_t n, void *ctx)
{
    if (alloc_left == 0)
        return NULL;
    if (alloc_left > 0)
        alloc_left--;
    return malloc(n);
}

static void *
fail_realloc(void *p, size_t n, void *ctx)
{
    if (alloc_left == 0)
        return NULL;
    if (alloc_left > 0)
        alloc_left--;
    return realloc(p, n);
}

static void
plain_free(void *p, void *ctx)
{
    free(p);
}

static void
test_alloc_failures(void **state)
{
    const lep_allocator_t a = {fail_malloc, fail_realloc, plain_free, NULL};
    static const char *mechs[] = {"SCRAM-SHA-256", "PLAIN"};
    for (int m = 0; m < 2; m++) {
        bool ok = false;
        for (long n = 0; n < 400 && !ok; n++) {
            peer_t cl, sv;
            lep_sasl_client_opts_t co;
            lep_sasl_server_opts_t so;
            lep_sasl_client_opts_init(&co);
            lep_sasl_server_opts_init(&so);
            so.users = users;
            so.allow_insecure = true;
            so.scram_iterations = 16;
            co.allow_insecure = true;
            co.mechanisms = mechs[m];
            co.username = "pat";
            co.password = "pat:pw";
            lep_set_allocator(&a);
            alloc_left = n;
            memset(&cl, 0, sizeof cl);
            memset(&sv, 0, sizeof sv);
            lep_conn_opts_t sco;
            lep_conn_opts_init(&sco);
            sco.server = true;
            if (lep_conn_new(&cl.c, NULL) == 0 && lep_conn_new(&sv.c, &sco) == 0 &&
                lep_sasl_client_add(cl.c, &co, &cl.s) == 0 &&
                lep_sasl_server_add(sv.c, &so, &sv.s) == 0 && lep_conn_open(cl.c) == 0 &&
                lep_conn_open(sv.c) == 0) {
                pump(&cl, &sv, SIZE_MAX);
                ok = alloc_left != 0 && cl.remote_open && sv.remote_open &&
                     lep_sasl_outcome(cl.s) == LEP_SASL_CODE_OK;
            }
            alloc_left = -1;
            lep_set_allocator(NULL);
            lep_conn_free(cl.c);
            lep_conn_free(sv.c);
        }
        assert_true(ok);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anonymous),
        cmocka_unit_test(test_anonymous_denied),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_plain_callback),
        cmocka_unit_test(test_plain_needs_tls),
        cmocka_unit_test(test_scram_each),
        cmocka_unit_test(test_scram_strongest_and_bytewise),
        cmocka_unit_test(test_external),
        cmocka_unit_test(test_negotiation_failure),
        cmocka_unit_test(test_server_bad_client),
        cmocka_unit_test(test_server_headers),
        cmocka_unit_test(test_client_bad_server),
        cmocka_unit_test(test_scram_final_as_challenge),
        cmocka_unit_test(test_truncation_server),
        cmocka_unit_test(test_truncation_client),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
