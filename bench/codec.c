/* Message codec benchmark: lepton against Qpid Proton-C, side by side.
 *
 * One typical message (properties with message-id, to, subject, reply-to
 * and correlation-id; three application properties; a 100-byte data body)
 * is encoded and decoded in a loop by both libraries, each doing the same
 * work with its objects reused the way a sender or receiver would reuse
 * them.  Before timing, each library decodes the other's encoding and the
 * fields are compared, so the figures are for correct work.
 *
 * Usage: codec [--iterations N] [--rounds R]
 * Prints a table (ns/op, best of R rounds) and one line of JSON. */
#include <lepton/message.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_PROTON
#include <proton/codec.h>
#include <proton/message.h>
#include <proton/version.h>
#endif

/* ---- the message ---- */

#define MSG_ID "ID:lepton-bench-0000000042"
#define MSG_TO "queue://orders.incoming"
#define MSG_SUBJECT "order-created"
#define MSG_REPLY_TO "queue://orders.replies"
#define MSG_CORR "corr-00000042"
#define P1_KEY "customer"
#define P1_VAL "acme-corporation"
#define P2_KEY "quantity"
#define P2_VAL 42
#define P3_KEY "urgent"
#define P3_VAL true
#define BODY_LEN 100

static uint8_t body[BODY_LEN];

static int failures;

#define CHECK(cond, what)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "codec: check failed: %s (%s)\n", what, #cond);   \
            failures++;                                                       \
        }                                                                     \
    } while (0)

static double
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* ---- allocation counting through lepton's hook ---- */

static unsigned long n_allocs;

static void *
count_malloc(size_t n, void *ctx)
{
    (void)ctx;
    n_allocs++;
    return malloc(n);
}

static void *
count_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    n_allocs++;
    return realloc(p, n);
}

static void
count_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

/* ---- lepton ---- */

static lep_atom_t
atom_str(const char *s)
{
    lep_atom_t a;
    memset(&a, 0, sizeof a);
    a.type = LEP_TYPE_STRING;
    a.u.bytes = lep_bytes_str(s);
    return a;
}

static int
lep_build(lep_message_t *m)
{
    lep_atom_t id = atom_str(MSG_ID), corr = atom_str(MSG_CORR);
    lep_atom_t v1 = atom_str(P1_VAL), v2, v3;
    memset(&v2, 0, sizeof v2);
    v2.type = LEP_TYPE_INT;
    v2.u.i = P2_VAL;
    memset(&v3, 0, sizeof v3);
    v3.type = LEP_TYPE_BOOL;
    v3.u.b = P3_VAL;
    int rc = 0;
    lep_message_clear(m);
    rc |= lep_message_set_id(m, &id);
    rc |= lep_message_set_to(m, lep_bytes_str(MSG_TO));
    rc |= lep_message_set_subject(m, lep_bytes_str(MSG_SUBJECT));
    rc |= lep_message_set_reply_to(m, lep_bytes_str(MSG_REPLY_TO));
    rc |= lep_message_set_correlation_id(m, &corr);
    rc |= lep_message_set_property(m, lep_bytes_str(P1_KEY), &v1);
    rc |= lep_message_set_property(m, lep_bytes_str(P2_KEY), &v2);
    rc |= lep_message_set_property(m, lep_bytes_str(P3_KEY), &v3);
    rc |= lep_message_set_body_data(m, LEP_BYTES(body, BODY_LEN));
    return rc;
}

static void
lep_verify(const lep_message_t *m, const char *who)
{
    char what[128];
    snprintf(what, sizeof what, "lepton decode of %s encoding", who);
    const lep_atom_t *id = lep_message_id(m), *corr = lep_message_correlation_id(m);
    CHECK(id && id->type == LEP_TYPE_STRING && lep_bytes_eq_str(id->u.bytes, MSG_ID), what);
    CHECK(corr && corr->type == LEP_TYPE_STRING && lep_bytes_eq_str(corr->u.bytes, MSG_CORR),
          what);
    CHECK(lep_bytes_eq_str(lep_message_to(m), MSG_TO), what);
    CHECK(lep_bytes_eq_str(lep_message_subject(m), MSG_SUBJECT), what);
    CHECK(lep_bytes_eq_str(lep_message_reply_to(m), MSG_REPLY_TO), what);
    CHECK(lep_message_property_count(m) == 3, what);
    const lep_atom_t *v = lep_message_property(m, lep_bytes_str(P1_KEY));
    CHECK(v && v->type == LEP_TYPE_STRING && lep_bytes_eq_str(v->u.bytes, P1_VAL), what);
    v = lep_message_property(m, lep_bytes_str(P2_KEY));
    CHECK(v && v->type == LEP_TYPE_INT && v->u.i == P2_VAL, what);
    v = lep_message_property(m, lep_bytes_str(P3_KEY));
    CHECK(v && v->type == LEP_TYPE_BOOL && v->u.b == P3_VAL, what);
    CHECK(lep_message_body_kind(m) == LEP_BODY_DATA && lep_message_body_count(m) == 1, what);
    CHECK(lep_bytes_eq(lep_message_body_section(m, 0), LEP_BYTES(body, BODY_LEN)), what);
}

/* ---- Proton-C ---- */

#ifdef HAVE_PROTON
static void
pn_build(pn_message_t *m)
{
    pn_message_clear(m);
    pn_message_set_inferred(m, true); /* binary body -> data section */
    pn_message_set_id(m, (pn_msgid_t){.type = PN_STRING,
                                      .u.as_bytes = pn_bytes(strlen(MSG_ID), MSG_ID)});
    pn_message_set_address(m, MSG_TO);
    pn_message_set_subject(m, MSG_SUBJECT);
    pn_message_set_reply_to(m, MSG_REPLY_TO);
    pn_message_set_correlation_id(m, (pn_msgid_t){.type = PN_STRING,
                                                  .u.as_bytes = pn_bytes(strlen(MSG_CORR), MSG_CORR)});
    pn_data_t *p = pn_message_properties(m);
    pn_data_put_map(p);
    pn_data_enter(p);
    pn_data_put_string(p, pn_bytes(strlen(P1_KEY), P1_KEY));
    pn_data_put_string(p, pn_bytes(strlen(P1_VAL), P1_VAL));
    pn_data_put_string(p, pn_bytes(strlen(P2_KEY), P2_KEY));
    pn_data_put_int(p, P2_VAL);
    pn_data_put_string(p, pn_bytes(strlen(P3_KEY), P3_KEY));
    pn_data_put_bool(p, P3_VAL);
    pn_data_exit(p);
    pn_data_put_binary(pn_message_body(m), pn_bytes(BODY_LEN, (const char *)body));
}

static bool
pn_bytes_is(pn_bytes_t b, const char *s)
{
    return b.size == strlen(s) && memcmp(b.start, s, b.size) == 0;
}

static bool
pn_str_is(const char *got, const char *s)
{
    return got && strcmp(got, s) == 0;
}

static void
pn_verify(pn_message_t *m)
{
    const char *what = "Proton decode of lepton encoding";
    pn_msgid_t id = pn_message_get_id(m), corr = pn_message_get_correlation_id(m);
    CHECK(id.type == PN_STRING && pn_bytes_is(id.u.as_bytes, MSG_ID), what);
    CHECK(corr.type == PN_STRING && pn_bytes_is(corr.u.as_bytes, MSG_CORR), what);
    CHECK(pn_str_is(pn_message_get_address(m), MSG_TO), what);
    CHECK(pn_str_is(pn_message_get_subject(m), MSG_SUBJECT), what);
    CHECK(pn_str_is(pn_message_get_reply_to(m), MSG_REPLY_TO), what);
    pn_data_t *p = pn_message_properties(m);
    pn_data_rewind(p);
    int n = 0;
    if (pn_data_next(p) && pn_data_type(p) == PN_MAP) {
        n = (int)pn_data_get_map(p);
        pn_data_enter(p);
        for (int i = 0; i < n / 2; i++) {
            pn_data_next(p);
            pn_bytes_t k = pn_data_get_string(p);
            pn_data_next(p);
            if (pn_bytes_is(k, P1_KEY))
                CHECK(pn_data_type(p) == PN_STRING && pn_bytes_is(pn_data_get_string(p), P1_VAL),
                      what);
            else if (pn_bytes_is(k, P2_KEY))
                CHECK(pn_data_type(p) == PN_INT && pn_data_get_int(p) == P2_VAL, what);
            else if (pn_bytes_is(k, P3_KEY))
                CHECK(pn_data_type(p) == PN_BOOL && pn_data_get_bool(p) == P3_VAL, what);
            else
                CHECK(false, what);
        }
        pn_data_exit(p);
    }
    CHECK(n == 6, what);
    pn_data_t *b = pn_message_body(m);
    pn_data_rewind(b);
    CHECK(pn_data_next(b) && pn_data_type(b) == PN_BINARY &&
              pn_data_get_binary(b).size == BODY_LEN &&
              memcmp(pn_data_get_binary(b).start, body, BODY_LEN) == 0,
          what);
    CHECK(pn_message_is_inferred(m), what);
}
#endif

/* ---- timing ---- */

typedef struct result {
    const char *name;
    double lep_ns;
    double pn_ns; /* 0 without Proton */
} result_t;

/* ns per iteration of stmt, over iters iterations. */
#define TIME_NS(iters, out, stmt)                                             \
    do {                                                                      \
        double t0_ = now_ns();                                                \
        for (long i_ = 0; i_ < (iters); i_++) {                               \
            stmt;                                                             \
        }                                                                     \
        out = (now_ns() - t0_) / (double)(iters);                             \
    } while (0)

static void
keep_min(double *best, double v)
{
    if (*best == 0 || v < *best)
        *best = v;
}

int
main(int argc, char **argv)
{
    long iters = 200000;
    int rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc) {
            iters = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--iterations N] [--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (iters < 1)
        iters = 1;
    if (rounds < 1)
        rounds = 1;
    for (int i = 0; i < BODY_LEN; i++)
        body[i] = (uint8_t)(i * 7 + 1);

    lep_allocator_t counting = {count_malloc, count_realloc, count_free, NULL};
    lep_set_allocator(&counting);

    lep_message_t *lm, *ld;
    lep_buf_t lbuf;
    lep_buf_init(&lbuf);
    if (lep_message_new(&lm) || lep_message_new(&ld) || lep_build(lm) ||
        lep_message_encode(lm, &lbuf)) {
        fprintf(stderr, "codec: lepton setup failed\n");
        return 1;
    }
    const size_t lep_len = lbuf.len;
    uint8_t *lep_bytes = malloc(lep_len);
    memcpy(lep_bytes, lbuf.data, lep_len);
    CHECK(lep_message_decode(ld, lep_bytes, lep_len) == 0, "lepton decode of own encoding");
    lep_verify(ld, "its own");

    size_t pn_len = 0;
#ifdef HAVE_PROTON
    pn_message_t *pm = pn_message(), *pd = pn_message();
    char pbuf[4096];
    pn_build(pm);
    pn_len = sizeof pbuf;
    if (pn_message_encode(pm, pbuf, &pn_len)) {
        fprintf(stderr, "codec: Proton encode failed\n");
        return 1;
    }
    uint8_t *pn_enc = malloc(pn_len);
    memcpy(pn_enc, pbuf, pn_len);
    CHECK(lep_message_decode(ld, pn_enc, pn_len) == 0, "lepton decode of Proton encoding");
    lep_verify(ld, "Proton's");
    CHECK(pn_message_decode(pd, (const char *)lep_bytes, lep_len) == 0,
          "Proton decode of lepton encoding");
    pn_verify(pd);
#endif
    if (failures) {
        fprintf(stderr, "codec: %d correctness checks failed; not timing\n", failures);
        return 1;
    }

    result_t res[4] = {
        {"encode", 0, 0},
        {"build+encode", 0, 0},
        {"decode", 0, 0},
        {"decode (Proton's bytes)", 0, 0},
    };
    int nres = 2 + (pn_len ? 2 : 1);
    int rc = 0;

    /* Rounds interleave the two libraries, so that a change in machine
     * load during the run hits both; each figure is the best round. */
    int prc = 0;
    unsigned long dec_allocs_total = 0, enc_allocs_total = 0;
    for (int r = 0; r < rounds; r++) {
        double t;
        n_allocs = 0;
        TIME_NS(iters, t, (lep_buf_clear(&lbuf), rc |= lep_message_encode(lm, &lbuf)));
        enc_allocs_total += n_allocs;
        keep_min(&res[0].lep_ns, t);
        TIME_NS(iters, t,
                (lep_buf_clear(&lbuf), rc |= lep_build(lm), rc |= lep_message_encode(lm, &lbuf)));
        keep_min(&res[1].lep_ns, t);
        n_allocs = 0;
        TIME_NS(iters, t, rc |= lep_message_decode(ld, lep_bytes, lep_len));
        dec_allocs_total += n_allocs;
        keep_min(&res[2].lep_ns, t);
#ifdef HAVE_PROTON
        n_allocs = 0;
        TIME_NS(iters, t, rc |= lep_message_decode(ld, pn_enc, pn_len));
        dec_allocs_total += n_allocs;
        keep_min(&res[3].lep_ns, t);
        size_t n;
        TIME_NS(iters, t, (n = sizeof pbuf, prc |= pn_message_encode(pm, pbuf, &n)));
        keep_min(&res[0].pn_ns, t);
        TIME_NS(iters, t, (pn_build(pm), n = sizeof pbuf, prc |= pn_message_encode(pm, pbuf, &n)));
        keep_min(&res[1].pn_ns, t);
        TIME_NS(iters, t, prc |= pn_message_decode(pd, (const char *)lep_bytes, lep_len));
        keep_min(&res[2].pn_ns, t);
        TIME_NS(iters, t, prc |= pn_message_decode(pd, (const char *)pn_enc, pn_len));
        keep_min(&res[3].pn_ns, t);
#endif
    }
    double dec_allocs = (double)dec_allocs_total / ((double)iters * rounds * (pn_len ? 2 : 1));
    double enc_allocs = (double)enc_allocs_total / ((double)iters * rounds);
    if (prc) {
        fprintf(stderr, "codec: Proton failed during timing\n");
        return 1;
    }
    if (rc) {
        fprintf(stderr, "codec: lepton failed during timing: %s\n", lep_strerror(rc));
        return 1;
    }

    printf("message codec, typical message: lepton %zu bytes", lep_len);
#ifdef HAVE_PROTON
    printf(", Proton-C %d.%d %zu bytes", PN_VERSION_MAJOR, PN_VERSION_MINOR, pn_len);
#endif
    printf("; best of %d rounds x %ld iterations\n\n", rounds, iters);
    printf("%-26s %12s %12s %10s\n", "operation", "lepton ns", "proton ns", "speedup");
    for (int i = 0; i < nres; i++) {
        if (res[i].pn_ns > 0)
            printf("%-26s %12.1f %12.1f %9.2fx\n", res[i].name, res[i].lep_ns, res[i].pn_ns,
                   res[i].pn_ns / res[i].lep_ns);
        else
            printf("%-26s %12.1f %12s %10s\n", res[i].name, res[i].lep_ns, "-", "-");
    }
    printf("\nlepton mallocs/op: decode %.3f, encode %.3f\n\n", dec_allocs, enc_allocs);

    printf("{\"bench\":\"codec\",\"iterations\":%ld,\"rounds\":%d,\"lepton_bytes\":%zu,"
           "\"proton_bytes\":%zu",
           iters, rounds, lep_len, pn_len);
    static const char *const keys[] = {"encode", "build_encode", "decode", "decode_proton_bytes"};
    for (int i = 0; i < nres; i++) {
        printf(",\"%s\":{\"lepton_ns\":%.1f", keys[i], res[i].lep_ns);
        if (res[i].pn_ns > 0)
            printf(",\"proton_ns\":%.1f,\"speedup\":%.2f", res[i].pn_ns,
                   res[i].pn_ns / res[i].lep_ns);
        printf("}");
    }
    printf(",\"lepton_decode_mallocs_per_op\":%.3f,\"lepton_encode_mallocs_per_op\":%.3f}\n",
           dec_allocs, enc_allocs);

    lep_message_free(lm);
    lep_message_free(ld);
    lep_buf_fini(&lbuf);
    free(lep_bytes);
#ifdef HAVE_PROTON
    pn_message_free(pm);
    pn_message_free(pd);
    free(pn_enc);
#endif
    lep_set_allocator(NULL);
    return 0;
}
