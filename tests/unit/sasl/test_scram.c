/* SCRAM proofs against the RFC test vectors, base64, and the users file. */
#include "sasl/sasl_internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void
expect_buf(const lep_buf_t *b, const char *s)
{
    if (b->len != strlen(s) || (b->len && memcmp(b->data, s, b->len) != 0))
        fail_msg("got '%.*s', expected '%s'", (int)b->len, (const char *)b->data, s);
}

/* ------------------------------------------------------------------ */
/* base64                                                              */

static void
test_b64(void **state)
{
    static const struct { const char *raw, *enc; } v[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        lep_buf_t b;
        uint8_t out[16];
        size_t n = 99;
        lep_buf_init(&b);
        assert_int_equal(lepi_b64_encode(&b, (const uint8_t *)v[i].raw, strlen(v[i].raw)), 0);
        expect_buf(&b, v[i].enc);
        lep_buf_fini(&b);
        assert_int_equal(lepi_b64_decode(v[i].enc, strlen(v[i].enc), out, sizeof out, &n), 0);
        assert_int_equal(n, strlen(v[i].raw));
        assert_memory_equal(out, v[i].raw, n);
    }
    static const char *bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "=Zm9", "Zg==Zg=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[16];
        size_t n;
        assert_int_equal(lepi_b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n),
                         LEP_ERR_DECODE);
    }
    uint8_t small[2];
    size_t n;
    assert_int_equal(lepi_b64_decode("Zm9v", 4, small, sizeof small, &n), LEP_ERR_OVERFLOW);
}

/* ------------------------------------------------------------------ */
/* RFC vectors                                                         */

typedef struct vec {
    lepi_hash_t hash;
    const char *cnonce, *snonce, *salt64;
    const char *client_first, *server_first, *client_final, *server_final;
} vec_t;

/* RFC 5802 section 5 */
static const vec_t RFC5802 = {
    LEPI_HASH_SHA1,
    "fyko+d2lbbFgONRv9qkxdawL",
    "3rfcNHYJY1ZVvWVs7j",
    "QSXCR+Q6sek8bf92",
    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

/* RFC 7677 section 3 */
static const vec_t RFC7677 = {
    LEPI_HASH_SHA256,
    "rOprNGfwEbeRWgbNEkqO",
    "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/* No RFC gives SCRAM-SHA-512 vectors: RFC 7677's inputs with SHA-512,
 * computed independently with Python's hashlib / hmac. */
static const vec_t SHA512 = {
    LEPI_HASH_SHA512,
    "rOprNGfwEbeRWgbNEkqO",
    "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
    "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==",
};

static void
run_client_vector(const vec_t *v)
{
    lepi_scram_t s;
    lep_buf_t out;
    lepi_scram_init(&s, v->hash);
    lep_buf_init(&out);
    assert_int_equal(lepi_scram_client_first(&s, "user", NULL, v->cnonce, &out), 0);
    expect_buf(&out, v->client_first);
    lep_buf_clear(&out);
    assert_int_equal(lepi_scram_client_final(&s, lep_bytes_str("pencil"),
                                             lep_bytes_str(v->server_first), &out), 0);
    expect_buf(&out, v->client_final);
    assert_int_equal(lepi_scram_client_verify(&s, lep_bytes_str(v->server_final)), 0);
    lep_buf_fini(&out);
    lepi_scram_fini(&s);
}

static void
run_server_vector(const vec_t *v)
{
    lepi_scram_t s;
    lepi_scram_cred_t cr;
    lep_buf_t out;
    uint8_t salt[64];
    size_t n;
    assert_int_equal(lepi_b64_decode(v->salt64, strlen(v->salt64), salt, sizeof salt, &n), 0);
    assert_int_equal(lepi_scram_derive(&cr, v->hash, lep_bytes_str("pencil"), salt, n, 4096), 0);
    lepi_scram_init(&s, v->hash);
    lep_buf_init(&out);
    assert_int_equal(lepi_scram_server_parse_first(&s, lep_bytes_str(v->client_first)), 0);
    assert_int_equal(s.user.len, 4);
    assert_memory_equal(s.user.data, "user", 4);
    assert_int_equal(lepi_scram_server_first(&s, &cr, v->snonce, &out), 0);
    expect_buf(&out, v->server_first);
    lep_buf_clear(&out);
    assert_int_equal(lepi_scram_server_final(&s, lep_bytes_str(v->client_final), &out), 0);
    expect_buf(&out, v->server_final);
    lep_buf_fini(&out);
    lepi_scram_fini(&s);
}

static void test_rfc5802_client(void **state) { run_client_vector(&RFC5802); }
static void test_rfc5802_server(void **state) { run_server_vector(&RFC5802); }
static void test_rfc7677_client(void **state) { run_client_vector(&RFC7677); }
static void test_rfc7677_server(void **state) { run_server_vector(&RFC7677); }
static void test_sha512_client(void **state) { run_client_vector(&SHA512); }
static void test_sha512_server(void **state) { run_server_vector(&SHA512); }

/* A full exchange between our own client and server; returns the
 * server_final result. */
static int
exchange(lepi_hash_t h, const char *user, const char *authzid, const char *cpw,
         const char *spw, bool known, char *server_final, size_t sflen)
{
    lepi_scram_t c, s;
    lepi_scram_cred_t cr;
    lep_buf_t m1, m2, m3, m4;
    int rc;
    lepi_scram_init(&c, h);
    lepi_scram_init(&s, h);
    lep_buf_init(&m1);
    lep_buf_init(&m2);
    lep_buf_init(&m3);
    lep_buf_init(&m4);
    assert_int_equal(lepi_scram_derive(&cr, h, lep_bytes_str(spw), (const uint8_t *)"salty", 5, 64),
                     0);
    assert_int_equal(lepi_scram_client_first(&c, user, authzid, NULL, &m1), 0);
    assert_int_equal(lepi_scram_server_parse_first(&s, lep_buf_bytes(&m1)), 0);
    assert_int_equal(s.user.len, strlen(user));
    assert_memory_equal(s.user.data, user, s.user.len);
    if (authzid) {
        assert_int_equal(s.authzid.len, strlen(authzid));
        assert_memory_equal(s.authzid.data, authzid, s.authzid.len);
    }
    assert_int_equal(lepi_scram_server_first(&s, known ? &cr : NULL, NULL, &m2), 0);
    assert_int_equal(lepi_scram_client_final(&c, lep_bytes_str(cpw), lep_buf_bytes(&m2), &m3), 0);
    rc = lepi_scram_server_final(&s, lep_buf_bytes(&m3), &m4);
    if (rc == 0) {
        assert_int_equal(lepi_scram_client_verify(&c, lep_buf_bytes(&m4)), 0);
        snprintf(server_final, sflen, "%.*s", (int)m4.len, (const char *)m4.data);
    }
    lep_buf_fini(&m1);
    lep_buf_fini(&m2);
    lep_buf_fini(&m3);
    lep_buf_fini(&m4);
    lepi_scram_fini(&c);
    lepi_scram_fini(&s);
    return rc;
}

static void
test_exchange_all_hashes(void **state)
{
    char sf[200];
    for (int h = 0; h < 3; h++) {
        assert_int_equal(exchange((lepi_hash_t)h, "al,ice=", NULL, "pw", "pw", true, sf, sizeof sf), 0);
        assert_int_equal(exchange((lepi_hash_t)h, "bob", "admin", "pw", "pw", true, sf, sizeof sf), 0);
        assert_int_equal(exchange((lepi_hash_t)h, "bob", NULL, "wrong", "pw", true, sf, sizeof sf),
                         LEP_ERR_INVALID);
        assert_int_equal(exchange((lepi_hash_t)h, "bob", NULL, "pw", "pw", false, sf, sizeof sf),
                         LEP_ERR_INVALID);
    }
}

static void
test_client_rejects_bad_server(void **state)
{
    static const char *bad_first[] = {
        "",
        "m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
        "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",       /* nonce not extended */
        "r=other3rfc,s=QSXCR+Q6sek8bf92,i=4096",                       /* foreign nonce */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf9,i=4096",    /* bad base64 */
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=0",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=99999999999",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4x",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,",
        "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",
    };
    for (size_t i = 0; i < sizeof bad_first / sizeof bad_first[0]; i++) {
        lepi_scram_t s;
        lep_buf_t out;
        lepi_scram_init(&s, LEPI_HASH_SHA1);
        lep_buf_init(&out);
        assert_int_equal(lepi_scram_client_first(&s, "user", NULL, RFC5802.cnonce, &out), 0);
        lep_buf_clear(&out);
        if (lepi_scram_client_final(&s, lep_bytes_str("pencil"), lep_bytes_str(bad_first[i]),
                                    &out) != LEP_ERR_DECODE)
            fail_msg("accepted server-first '%s'", bad_first[i]);
        assert_true(s.error[0] != 0);
        lep_buf_fini(&out);
        lepi_scram_fini(&s);
    }
    /* wrong server signature, an e= error, garbage */
    static const char *bad_final[] = {"v=rmF9pqV8S7suAoZWja4dJRkFsKR=", "v=rmF9pqV8S7suAoZWja4dJRkFsKA=", "e=invalid-proof",
                                      "v=", "x", ""};
    static const int want[] = {LEP_ERR_DECODE, LEP_ERR_INVALID, LEP_ERR_INVALID, LEP_ERR_INVALID, LEP_ERR_DECODE,
                               LEP_ERR_DECODE};
    for (size_t i = 0; i < sizeof bad_final / sizeof bad_final[0]; i++) {
        lepi_scram_t s;
        lep_buf_t out;
        lepi_scram_init(&s, LEPI_HASH_SHA1);
        lep_buf_init(&out);
        assert_int_equal(lepi_scram_client_first(&s, "user", NULL, RFC5802.cnonce, &out), 0);
        assert_int_equal(lepi_scram_client_final(&s, lep_bytes_str("pencil"),
                                                 lep_bytes_str(RFC5802.server_first), &out), 0);
        int rc = lepi_scram_client_verify(&s, lep_bytes_str(bad_final[i]));
        if (rc != want[i])
            fail_msg("server-final '%s': %d", bad_final[i], rc);
        lep_buf_fini(&out);
        lepi_scram_fini(&s);
    }
}

static void
test_server_rejects_bad_client(void **state)
{
    static const char *bad_first[] = {
        "", "n", "n,", "p=tls-server-end-point,,n=user,r=abc", "x,,n=user,r=abc",
        "n,,m=ext,n=user,r=abc", "n,,n=,r=abc", "n,,n=us=er,r=abc", "n,,n=user",
        "n,,n=user,r=", "n,,r=abc,n=user", "n,a,n=user,r=abc", "n,a=x", "n,,n=user,r=a b",
    };
    for (size_t i = 0; i < sizeof bad_first / sizeof bad_first[0]; i++) {
        lepi_scram_t s;
        lepi_scram_init(&s, LEPI_HASH_SHA256);
        if (lepi_scram_server_parse_first(&s, lep_bytes_str(bad_first[i])) != LEP_ERR_DECODE)
            fail_msg("accepted client-first '%s'", bad_first[i]);
        lepi_scram_fini(&s);
    }
    static const char *bad_final[] = {
        "", "c=biws", "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
    };
    for (size_t i = 0; i < sizeof bad_final / sizeof bad_final[0]; i++) {
        lepi_scram_t s;
        lepi_scram_cred_t cr;
        lep_buf_t out;
        uint8_t salt[32];
        size_t n;
        lepi_b64_decode(RFC7677.salt64, strlen(RFC7677.salt64), salt, sizeof salt, &n);
        lepi_scram_derive(&cr, LEPI_HASH_SHA256, lep_bytes_str("pencil"), salt, n, 4096);
        lepi_scram_init(&s, LEPI_HASH_SHA256);
        lep_buf_init(&out);
        assert_int_equal(lepi_scram_server_parse_first(&s, lep_bytes_str(RFC7677.client_first)), 0);
        assert_int_equal(lepi_scram_server_first(&s, &cr, RFC7677.snonce, &out), 0);
        lep_buf_clear(&out);
        if (lepi_scram_server_final(&s, lep_bytes_str(bad_final[i]), &out) != LEP_ERR_DECODE)
            fail_msg("accepted client-final '%s'", bad_final[i]);
        lep_buf_fini(&out);
        lepi_scram_fini(&s);
    }
    /* a flipped proof bit is a wrong password, not a malformed message */
    lepi_scram_t s;
    lepi_scram_cred_t cr;
    lep_buf_t out;
    uint8_t salt[32];
    size_t n;
    lepi_b64_decode(RFC7677.salt64, strlen(RFC7677.salt64), salt, sizeof salt, &n);
    lepi_scram_derive(&cr, LEPI_HASH_SHA256, lep_bytes_str("pencil"), salt, n, 4096);
    lepi_scram_init(&s, LEPI_HASH_SHA256);
    lep_buf_init(&out);
    assert_int_equal(lepi_scram_server_parse_first(&s, lep_bytes_str(RFC7677.client_first)), 0);
    assert_int_equal(lepi_scram_server_first(&s, &cr, RFC7677.snonce, &out), 0);
    char fin[200];
    snprintf(fin, sizeof fin, "%s", RFC7677.client_final);
    fin[strlen(fin) - 6] = fin[strlen(fin) - 6] == 'B' ? 'C' : 'B';
    assert_int_equal(lepi_scram_server_final(&s, lep_bytes_str(fin), &out), LEP_ERR_INVALID);
    lep_buf_fini(&out);
    lepi_scram_fini(&s);
}

/* ------------------------------------------------------------------ */
/* Users file                                                          */

static lep_sasl_users_t *
parse_ok(const char *text)
{
    lep_sasl_users_t *u = NULL;
    char err[200] = "";
    int rc = lep_sasl_users_parse(&u, text, strlen(text), "t", err, sizeof err);
    if (rc)
        fail_msg("parse failed: %d %s", rc, err);
    return u;
}

static void
test_users_entries_roundtrip(void **state)
{
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_sasl_users_entry(&b, "alice", "SCRAM-SHA-256", "secret", 64), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "alice", "SCRAM-SHA-1", "secret", 0), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "bob", "SCRAM-SHA-512", "b:pw", 100), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "carol", "PLAIN", "c:pw:x", 0), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "x:y", "PLAIN", "p", 0), LEP_ERR_INVALID);
    assert_int_equal(lep_sasl_users_entry(&b, "x", "MD5", "p", 0), LEP_ERR_INVALID);
    assert_int_equal(lep_sasl_users_entry(&b, "x", "PLAIN", "p\nq", 0), LEP_ERR_INVALID);
    assert_int_equal(lep_sasl_users_entry(&b, "", "PLAIN", "p", 0), LEP_ERR_INVALID);
    assert_int_equal(lep_buf_append(&b, "\n# comment\n   \n", 15), 0);
    assert_int_equal(lep_buf_append(&b, "", 1), 0);
    lep_sasl_users_t *u = parse_ok((const char *)b.data);
    assert_int_equal(lep_sasl_users_count(u), 3);
    assert_true(lep_sasl_users_has(u, lep_bytes_str("alice"), "SCRAM-SHA-256"));
    assert_true(lep_sasl_users_has(u, lep_bytes_str("alice"), "SCRAM-SHA-1"));
    assert_false(lep_sasl_users_has(u, lep_bytes_str("alice"), "SCRAM-SHA-512"));
    assert_true(lep_sasl_users_has(u, lep_bytes_str("alice"), "PLAIN"));
    assert_true(lep_sasl_users_has(u, lep_bytes_str("carol"), "SCRAM-SHA-512"));
    assert_false(lep_sasl_users_has(u, lep_bytes_str("dave"), "PLAIN"));
    assert_false(lep_sasl_users_has(u, lep_bytes_str("alice"), "EXTERNAL"));
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("alice"), lep_bytes_str("secret")), 0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("alice"), lep_bytes_str("secreT")),
                     LEP_ERR_INVALID);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("bob"), lep_bytes_str("b:pw")), 0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("carol"), lep_bytes_str("c:pw:x")), 0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("carol"), lep_bytes_str("c:pw")),
                     LEP_ERR_INVALID);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("dave"), lep_bytes_str("x")),
                     LEP_ERR_NOT_FOUND);
    /* stored credentials give the server the same keys the client derives */
    const lepi_user_t *e = lepi_users_find(u, lep_bytes_str("alice"));
    lepi_scram_cred_t cr, d;
    assert_int_equal(lepi_users_scram_cred(e, LEPI_HASH_SHA256, 0, &cr), 0);
    assert_int_equal(cr.iterations, 64);
    assert_int_equal(lepi_scram_derive(&d, LEPI_HASH_SHA256, lep_bytes_str("secret"), cr.salt,
                                       cr.salt_len, 64), 0);
    assert_memory_equal(d.stored_key, cr.stored_key, 32);
    assert_memory_equal(d.server_key, cr.server_key, 32);
    assert_int_equal(lepi_users_scram_cred(e, LEPI_HASH_SHA512, 0, &cr), LEP_ERR_NOT_FOUND);
    lep_sasl_users_free(u);
    lep_buf_fini(&b);
}

static void
test_users_rfc_credentials(void **state)
{
    /* RFC 7677's user as a file line: the keys of "pencil" with its salt */
    lepi_scram_cred_t cr;
    uint8_t salt[32];
    size_t n;
    lep_buf_t b;
    lepi_b64_decode(RFC7677.salt64, strlen(RFC7677.salt64), salt, sizeof salt, &n);
    assert_int_equal(lepi_scram_derive(&cr, LEPI_HASH_SHA256, lep_bytes_str("pencil"), salt, n, 4096), 0);
    lep_buf_init(&b);
    lep_buf_printf(&b, "user:SCRAM-SHA-256:4096:%s:", RFC7677.salt64);
    lepi_b64_encode(&b, cr.stored_key, 32);
    lep_buf_append(&b, ":", 1);
    lepi_b64_encode(&b, cr.server_key, 32);
    lep_buf_append(&b, "", 1);
    lep_sasl_users_t *u = parse_ok((const char *)b.data);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("user"), lep_bytes_str("pencil")), 0);
    lep_sasl_users_free(u);
    lep_buf_fini(&b);
}

static void
expect_parse_error(const char *text, const char *want)
{
    lep_sasl_users_t *u = (lep_sasl_users_t *)0x1;
    char err[200] = "";
    int rc = lep_sasl_users_parse(&u, text, strlen(text), "users.txt", err, sizeof err);
    if (rc != LEP_ERR_DECODE)
        fail_msg("'%s' parsed (%d)", text, rc);
    assert_ptr_equal(u, (lep_sasl_users_t *)0x1);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error '%s', expected it to start '%s'", err, want);
}

#define K20 "AAAAAAAAAAAAAAAAAAAAAAAAAAA="  /* 20 bytes */
#define K32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  /* 32 bytes */

static void
test_users_parse_errors(void **state)
{
    expect_parse_error("# c\n\nalice\n", "users.txt:3: expected");
    expect_parse_error("a:PLAIN:x\nb:MD5:x\n", "users.txt:2: unknown mechanism 'MD5'");
    expect_parse_error("a:PLAIN\n", "users.txt:1: expected");
    expect_parse_error(":PLAIN:x\n", "users.txt:1: expected");
    expect_parse_error("a:PLAIN:x\na:PLAIN:y\n", "users.txt:2: second PLAIN");
    expect_parse_error("a:SCRAM-SHA-1:0:c2FsdA==:" K20 ":" K20 "\n", "users.txt:1: bad iteration");
    expect_parse_error("a:SCRAM-SHA-1::c2FsdA==:" K20 ":" K20 "\n", "users.txt:1: bad iteration");
    expect_parse_error("a:SCRAM-SHA-1:1x:c2FsdA==:" K20 ":" K20 "\n", "users.txt:1: bad iteration");
    expect_parse_error("a:SCRAM-SHA-1:4096\n", "users.txt:1: expected iterations");
    expect_parse_error("\n\na:SCRAM-SHA-1:4096:c2Fsd:" K20 ":" K20 "\n", "users.txt:3: bad salt");
    expect_parse_error("a:SCRAM-SHA-1:4096::" K20 ":" K20 "\n", "users.txt:1: bad salt");
    expect_parse_error("a:SCRAM-SHA-1:4096:c2FsdA==:" K32 ":" K20 "\n", "users.txt:1: bad stored key");
    expect_parse_error("a:SCRAM-SHA-256:4096:c2FsdA==:" K32 ":" K20 "\n", "users.txt:1: bad server key");
    expect_parse_error("a:SCRAM-SHA-256:4096:c2FsdA==:" K32 "\n", "users.txt:1: bad stored key");
    expect_parse_error("a:SCRAM-SHA-1:4096:c2FsdA==:" K20 ":" K20 ":extra\n", "users.txt:1: bad server key");
    expect_parse_error("a:SCRAM-SHA-1:4096:c2FsdA==:" K20 ":" K20 "\n"
                       "a:SCRAM-SHA-1:4096:c2FsdA==:" K20 ":" K20 "\n", "users.txt:2: second SCRAM-SHA-1");
    expect_parse_error("a\001b:PLAIN:x\n", "users.txt:1: control character");

    /* the good forms next to them parse */
    lep_sasl_users_t *u = parse_ok("  a:SCRAM-SHA-1:4096:c2FsdA==:" K20 ":" K20 "  \r\n"
                                   "a:SCRAM-SHA-256:1:c2FsdA==:" K32 ":" K32 "\n"
                                   "a:PLAIN:\n#x:BAD\nb:PLAIN:p w:d");
    assert_int_equal(lep_sasl_users_count(u), 2);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("a"), lep_bytes_str("")), 0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("b"), lep_bytes_str("p w:d")), 0);
    lep_sasl_users_free(u);
}

static void
test_users_load(void **state)
{
    char path[] = "/tmp/lepton-users-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# users\nalice:PLAIN:pw\nbob:BAD:x\n", f);
    fclose(f);
    lep_sasl_users_t *u = NULL;
    char err[300];
    assert_int_equal(lep_sasl_users_load(&u, path, err, sizeof err), LEP_ERR_DECODE);
    assert_non_null(strstr(err, ":3: unknown mechanism"));
    assert_non_null(strstr(err, path));
    f = fopen(path, "w");
    fputs("alice:PLAIN:pw\n", f);
    fclose(f);
    assert_int_equal(lep_sasl_users_load(&u, path, err, sizeof err), 0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("alice"), lep_bytes_str("pw")), 0);
    lep_sasl_users_free(u);
    unlink(path);
    assert_int_equal(lep_sasl_users_load(&u, path, err, sizeof err), LEP_ERR_IO);
}

/* ------------------------------------------------------------------ */
/* Allocation failure: each allocation in turn fails; no crash, no leak. */

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
    lep_set_allocator(&a);
    bool done_parse = false, done_entry = false, done_scram = false;
    for (long n = 0; n < 200 && !(done_parse && done_entry && done_scram); n++) {
        lep_sasl_users_t *u = NULL;
        const char *text = "a:PLAIN:x\nb:SCRAM-SHA-1:4096:c2FsdA==:" K20 ":" K20 "\nc:PLAIN:y\n"
                           "d:PLAIN:z\ne:PLAIN:z\nf:PLAIN:z\ng:PLAIN:z\nh:PLAIN:z\ni:PLAIN:z\n";
        alloc_left = n;
        int rc = lep_sasl_users_parse(&u, text, strlen(text), "t", NULL, 0);
        alloc_left = -1;
        assert_true(rc == 0 || rc == LEP_ERR_NOMEM);
        if (rc == 0) {
            assert_int_equal(lep_sasl_users_count(u), 9);
            done_parse = true;
        }
        lep_sasl_users_free(u);

        lep_buf_t b;
        lep_buf_init(&b);
        alloc_left = n;
        rc = lep_sasl_users_entry(&b, "user", "SCRAM-SHA-256", "pw", 16);
        alloc_left = -1;
        assert_true(rc == 0 || rc == LEP_ERR_NOMEM);
        if (rc == 0)
            done_entry = true;
        lep_buf_fini(&b);

        char sf[200];
        lepi_scram_t c, s;
        lepi_scram_cred_t cr;
        lep_buf_t m1, m2, m3, m4;
        lepi_scram_init(&c, LEPI_HASH_SHA256);
        lepi_scram_init(&s, LEPI_HASH_SHA256);
        lep_buf_init(&m1);
        lep_buf_init(&m2);
        lep_buf_init(&m3);
        lep_buf_init(&m4);
        lepi_scram_derive(&cr, LEPI_HASH_SHA256, lep_bytes_str("pw"), (const uint8_t *)"s", 1, 16);
        alloc_left = n;
        rc = lepi_scram_client_first(&c, "user", "az", NULL, &m1);
        if (!rc) rc = lepi_scram_server_parse_first(&s, lep_buf_bytes(&m1));
        if (!rc) rc = lepi_scram_server_first(&s, &cr, NULL, &m2);
        if (!rc) rc = lepi_scram_client_final(&c, lep_bytes_str("pw"), lep_buf_bytes(&m2), &m3);
        if (!rc) rc = lepi_scram_server_final(&s, lep_buf_bytes(&m3), &m4);
        if (!rc) rc = lepi_scram_client_verify(&c, lep_buf_bytes(&m4));
        alloc_left = -1;
        assert_true(rc == 0 || rc == LEP_ERR_NOMEM);
        if (rc == 0) {
            snprintf(sf, sizeof sf, "%.*s", (int)m4.len, (const char *)m4.data);
            done_scram = true;
        }
        lep_buf_fini(&m1);
        lep_buf_fini(&m2);
        lep_buf_fini(&m3);
        lep_buf_fini(&m4);
        lepi_scram_fini(&c);
        lepi_scram_fini(&s);
    }
    lep_set_allocator(NULL);
    assert_true(done_parse && done_entry && done_scram);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_rfc5802_client),
        cmocka_unit_test(test_rfc5802_server),
        cmocka_unit_test(test_rfc7677_client),
        cmocka_unit_test(test_rfc7677_server),
        cmocka_unit_test(test_sha512_client),
        cmocka_unit_test(test_sha512_server),
        cmocka_unit_test(test_exchange_all_hashes),
        cmocka_unit_test(test_client_rejects_bad_server),
        cmocka_unit_test(test_server_rejects_bad_client),
        cmocka_unit_test(test_users_entries_roundtrip),
        cmocka_unit_test(test_users_rfc_credentials),
        cmocka_unit_test(test_users_parse_errors),
        cmocka_unit_test(test_users_load),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
