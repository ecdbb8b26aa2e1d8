/* SASL (AMQP 1.0 part 5, 5.3) as an engine layer, client and server.
 *
 * Each side writes "AMQP" 3 1 0 0 and SASL frames (type 1) below the AMQP
 * layer.  The client sends its header as soon as the engine first gives
 * the layer anything to write; the server answers the client's header
 * with its own and sasl-mechanisms.  Once the outcome is ok the layer is
 * transparent both ways: the rest of the input (the server's AMQP header,
 * possibly in the same read as the outcome) goes up unchanged, and the
 * AMQP bytes held back until then go down. */
#include "sasl/sasl_internal.h"

#include <lepton/amqp_types.h>
#include <lepton/frame.h>

#include <openssl/crypto.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Our SASL frames are tiny (the spec caps them at 512 bytes until the
 * open exchange); we accept larger ones from peers that send long
 * credentials, but not unbounded ones. */
#define SASL_MAX_FRAME_IN 65536u
#define SASL_MAX_FRAME_OUT 65536u

/* In order of preference (strongest first). */
enum mech {
    M_EXTERNAL,
    M_SCRAM_SHA_512,
    M_SCRAM_SHA_256,
    M_SCRAM_SHA_1,
    M_PLAIN,
    M_ANONYMOUS,
    M_COUNT,
    M_NONE = -1,
};

static const char *const MECH_NAME[M_COUNT] = {
    "EXTERNAL", "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", "ANONYMOUS",
};

#define BIT(m) (1u << (m))
#define SCRAM_BITS (BIT(M_SCRAM_SHA_512) | BIT(M_SCRAM_SHA_256) | BIT(M_SCRAM_SHA_1))

enum phase {
    P_HEADER, /* waiting for the peer's protocol header */
    P_FRAMES, /* SASL frames */
    P_DONE,   /* outcome ok (or SASL skipped): transparent */
    P_FAILED, /* transport failed: input and output are dropped */
};

enum step {
    S_MECHS,    /* client: waiting for sasl-mechanisms; server: for sasl-init */
    S_EXCHANGE, /* client: challenges / outcome; server: responses */
};

struct lep_sasl {
    bool server;
    enum phase phase;
    enum step step;
    bool hdr_sent;
    bool skipped;
    int outcome;          /* -1: pending */
    int mech;             /* enum mech, M_NONE until chosen */
    unsigned mechs;       /* client: allowed; server: configured (0: default) */
    char *username, *password, *authzid, *hostname; /* client */
    bool allow_insecure;
    bool mechs_explicit;  /* client: the application listed mechanisms */
    bool optional;
    const lep_sasl_users_t *users;
    lep_sasl_authenticate_fn authenticate;
    void *auth_ctx;
    uint32_t iterations;
    unsigned offered;     /* server: what we sent */
    bool scram_on;
    lepi_scram_t scram;
    char *user;           /* authenticated identity */
    char error[256];
    int fail_rc;
    lep_buf_t tmp;
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static char *
dup_str(const char *s, int *rc)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *d = lep_malloc(n + 1);
    if (!d)
        *rc = LEP_ERR_NOMEM;
    else
        memcpy(d, s, n + 1);
    return d;
}

static char *
dup_bytes(lep_bytes_t b)
{
    char *d = lep_malloc(b.len + 1);
    if (d) {
        if (b.len)
            memcpy(d, b.ptr, b.len);
        d[b.len] = 0;
    }
    return d;
}

static void
free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        lep_free(s);
    }
}

static int
mech_of(const uint8_t *p, size_t n)
{
    for (int m = 0; m < M_COUNT; m++)
        if (strlen(MECH_NAME[m]) == n && memcmp(MECH_NAME[m], p, n) == 0)
            return m;
    return M_NONE;
}

/* "PLAIN SCRAM-SHA-1" -> bits; LEP_ERR_INVALID for an unknown name. */
static int
parse_mech_list(const char *list, unsigned *out)
{
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *w = p;
        while (*p && *p != ' ' && *p != ',' && *p != '\t')
            p++;
        if (p == w)
            break;
        int m = mech_of((const uint8_t *)w, (size_t)(p - w));
        if (m == M_NONE)
            return LEP_ERR_INVALID;
        bits |= BIT(m);
    }
    *out = bits;
    return 0;
}

static void
mech_list_str(unsigned bits, char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    for (int m = 0; m < M_COUNT; m++)
        if (bits & BIT(m))
            o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s", o ? " " : "",
                                  MECH_NAME[m]);
    if (!bits)
        snprintf(out, len, "none");
}

static bool
bytes_eq(lep_bytes_t a, lep_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Appends one SASL frame holding f to down. */
static int
send_frame(lep_sasl_t *s, lep_buf_t *down, const lep_sasl_frame_t *f)
{
    size_t mark;
    lep_encoder_t e;
    int rc;

    if ((rc = lep_frame_begin(down, LEP_FRAME_SASL, 0, &mark)))
        return rc;
    lep_encoder_init(&e, down);
    if ((rc = lep_sasl_frame_encode(&e, f)) == 0 && (rc = lep_encoder_finish(&e)) == 0)
        rc = lep_frame_end(down, mark, SASL_MAX_FRAME_OUT);
    if (rc)
        down->len = mark;
    return rc;
}

static int
send_header(lep_sasl_t *s, lep_buf_t *down)
{
    if (s->hdr_sent)
        return 0;
    int rc = lep_buf_append(down, LEP_PROTO_HEADER_SASL, LEP_PROTO_HEADER_SIZE);
    if (rc == 0)
        s->hdr_sent = true;
    return rc;
}

/* Fails the transport.  A server still exchanging frames tells the client
 * with a sasl-outcome of code first (when code is not OK). */
__attribute__((format(printf, 6, 7))) static int
sasl_fail(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, int code, const char *cond,
          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    if (s->server && down && s->phase == P_FRAMES && code != LEP_SASL_CODE_OK) {
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_OUTCOME;
        lep_sasl_outcome_init(&f.u.sasl_outcome);
        f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
        f.u.sasl_outcome.code = (uint8_t)code;
        (void)send_frame(s, down, &f); /* best effort: we are failing anyway */
    }
    s->outcome = code;
    s->phase = P_FAILED;
    if (!s->fail_rc)
        s->fail_rc = strcmp(cond, "amqp:unauthorized-access") == 0 ? LEP_ERR_INVALID
                     : strcmp(cond, "amqp:decode-error") == 0    ? LEP_ERR_DECODE
                                                                 : LEP_ERR_FRAMING;
    lep_conn_transport_error(c, cond, s->error);
    return s->fail_rc;
}

#define UNAUTHORIZED "amqp:unauthorized-access"
#define FRAMING "amqp:connection:framing-error"
#define DECODE "amqp:decode-error"

/* ------------------------------------------------------------------ */
/* Client                                                              */

static bool
client_can(const lep_sasl_t *s, lep_conn_t *c, int m)
{
    switch (m) {
    case M_EXTERNAL:
        return lep_conn_encrypted(c); /* the identity is the TLS client certificate */
    case M_ANONYMOUS:
        /* Given credentials, the application wants to be that user: no
         * silent fall-back to anonymous unless it listed ANONYMOUS. */
        return s->mechs_explicit || !(s->username && s->password);
    case M_PLAIN:
        return s->username && s->password && (lep_conn_encrypted(c) || s->allow_insecure);
    default:
        return s->username && s->password;
    }
}

static int
client_mechanisms(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, const lep_sasl_mechanisms_t *mm)
{
    lep_reader_t it;
    uint32_t count = 0;
    unsigned offered = 0;
    int rc;

    if (lep_multiple_open(mm->sasl_server_mechanisms, &it, &count))
        return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, DECODE,
                         "malformed sasl-mechanisms frame");
    for (uint32_t i = 0; i < count; i++) {
        lep_bytes_t sym;
        if (lep_read_symbol(&it, &sym))
            return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, DECODE,
                             "malformed sasl-mechanisms frame");
        int m = mech_of(sym.ptr, sym.len);
        if (m != M_NONE)
            offered |= BIT(m);
    }
    for (int m = 0; m < M_COUNT; m++) {
        if ((offered & s->mechs & BIT(m)) && client_can(s, c, m)) {
            s->mech = m;
            break;
        }
    }
    if (s->mech == M_NONE) {
        char a[96], b[96];
        mech_list_str(offered, a, sizeof a);
        mech_list_str(s->mechs, b, sizeof b);
        bool plain_refused = (offered & s->mechs & BIT(M_PLAIN)) && s->username && s->password &&
                             !lep_conn_encrypted(c) && !s->allow_insecure;
        bool external_refused = (offered & s->mechs & BIT(M_EXTERNAL)) && !lep_conn_encrypted(c);
        return sasl_fail(s, c, NULL, LEP_SASL_CODE_AUTH, UNAUTHORIZED,
                         "no usable SASL mechanism: server offers %s; allowed: %s%s%s", a, b,
                         plain_refused ? " (PLAIN refused on an unencrypted connection)"
                         : (offered & s->mechs & ~(BIT(M_ANONYMOUS) | BIT(M_EXTERNAL)))
                             ? " (no username/password)"
                             : "",
                         external_refused ? " (EXTERNAL needs TLS)" : "");
    }

    lep_sasl_frame_t f;
    f.code = LEP_DESC_SASL_INIT;
    lep_sasl_init_t *in = &f.u.sasl_init;
    lep_sasl_init_init(in);
    in->present = LEP_SASL_INIT_HAS_MECHANISM | LEP_SASL_INIT_HAS_INITIAL_RESPONSE;
    in->mechanism = lep_bytes_str(MECH_NAME[s->mech]);
    if (s->hostname) {
        in->present |= LEP_SASL_INIT_HAS_HOSTNAME;
        in->hostname = lep_bytes_str(s->hostname);
    }
    lep_buf_clear(&s->tmp);
    switch (s->mech) {
    case M_EXTERNAL:
        rc = s->authzid ? lep_buf_append(&s->tmp, s->authzid, strlen(s->authzid)) : 0;
        break;
    case M_ANONYMOUS: {
        const char *t = s->username ? s->username : "anonymous";
        rc = lep_buf_append(&s->tmp, t, strlen(t));
        break;
    }
    case M_PLAIN: {
        const char *z = s->authzid ? s->authzid : "";
        rc = lep_buf_append(&s->tmp, z, strlen(z) + 1);
        if (!rc)
            rc = lep_buf_append(&s->tmp, s->username, strlen(s->username) + 1);
        if (!rc)
            rc = lep_buf_append(&s->tmp, s->password, strlen(s->password));
        break;
    }
    default: {
        int h = lepi_scram_hash_of(MECH_NAME[s->mech], strlen(MECH_NAME[s->mech]));
        lepi_scram_init(&s->scram, (lepi_hash_t)h);
        s->scram_on = true;
        rc = lepi_scram_client_first(&s->scram, s->username, s->authzid, NULL, &s->tmp);
        break;
    }
    }
    if (rc)
        return rc;
    in->initial_response = lep_buf_bytes(&s->tmp);
    if (!in->initial_response.ptr)
        in->initial_response.ptr = (const uint8_t *)"";
    rc = send_frame(s, down, &f);
    if (s->tmp.data)
        OPENSSL_cleanse(s->tmp.data, s->tmp.len);
    if (rc)
        return rc;
    s->step = S_EXCHANGE;
    return 0;
}

static int
client_challenge(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, lep_bytes_t ch)
{
    int rc;
    if (!s->scram_on || s->scram.state < 1 || s->scram.state > 2)
        return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, FRAMING,
                         "unexpected sasl-challenge for %s",
                         s->mech >= 0 ? MECH_NAME[s->mech] : "no mechanism");
    lep_buf_clear(&s->tmp);
    if (s->scram.state == 1) {
        rc = lepi_scram_client_final(&s->scram, lep_bytes_str(s->password), ch, &s->tmp);
        if (rc == LEP_ERR_DECODE)
            return sasl_fail(s, c, NULL, LEP_SASL_CODE_AUTH, UNAUTHORIZED, "%s: %s",
                             MECH_NAME[s->mech], s->scram.error);
    } else {
        /* server-final as a challenge: check it, answer with nothing */
        rc = lepi_scram_client_verify(&s->scram, ch);
        if (rc == LEP_ERR_DECODE || rc == LEP_ERR_INVALID)
            return sasl_fail(s, c, NULL, LEP_SASL_CODE_AUTH, UNAUTHORIZED, "%s: %s",
                             MECH_NAME[s->mech], s->scram.error);
    }
    if (rc)
        return rc;
    lep_sasl_frame_t f;
    f.code = LEP_DESC_SASL_RESPONSE;
    lep_sasl_response_init(&f.u.sasl_response);
    f.u.sasl_response.present = LEP_SASL_RESPONSE_HAS_RESPONSE;
    f.u.sasl_response.response = lep_buf_bytes(&s->tmp);
    if (!f.u.sasl_response.response.ptr)
        f.u.sasl_response.response.ptr = (const uint8_t *)"";
    return send_frame(s, down, &f);
}

static const char *
code_name(int code)
{
    switch (code) {
    case LEP_SASL_CODE_OK: return "ok";
    case LEP_SASL_CODE_AUTH: return "auth";
    case LEP_SASL_CODE_SYS: return "sys";
    case LEP_SASL_CODE_SYS_PERM: return "sys-perm";
    case LEP_SASL_CODE_SYS_TEMP: return "sys-temp";
    default: return "unknown";
    }
}

static int
client_outcome(lep_sasl_t *s, lep_conn_t *c, const lep_sasl_outcome_t *o)
{
    if (o->code != LEP_SASL_CODE_OK) {
        int code = o->code <= LEP_SASL_CODE_SYS_TEMP ? o->code : LEP_SASL_CODE_SYS_PERM;
        return sasl_fail(s, c, NULL, code, UNAUTHORIZED,
                         "SASL authentication failed: outcome %s (%u)%s%s", code_name(o->code),
                         (unsigned)o->code, s->mech >= 0 ? " for " : "",
                         s->mech >= 0 ? MECH_NAME[s->mech] : "");
    }
    if (s->step != S_EXCHANGE)
        return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, FRAMING,
                         "sasl-outcome ok before any sasl-init");
    if (s->scram_on) {
        if (s->scram.state == 2 && (o->present & LEP_SASL_OUTCOME_HAS_ADDITIONAL_DATA)) {
            int rc = lepi_scram_client_verify(&s->scram, o->additional_data);
            if (rc == LEP_ERR_NOMEM)
                return rc;
        }
        if (s->scram.state != 3)
            return sasl_fail(s, c, NULL, LEP_SASL_CODE_AUTH, UNAUTHORIZED,
                             "%s: %s", MECH_NAME[s->mech],
                             s->scram.error[0] ? s->scram.error
                                               : "server sent no proof that it knows the password");
    }
    s->outcome = LEP_SASL_CODE_OK;
    s->phase = P_DONE;
    return 0;
}

static int
client_frame(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, const lep_sasl_frame_t *f)
{
    switch (f->code) {
    case LEP_DESC_SASL_MECHANISMS:
        if (s->step == S_MECHS)
            return client_mechanisms(s, c, down, &f->u.sasl_mechanisms);
        break;
    case LEP_DESC_SASL_CHALLENGE:
        if (s->step == S_EXCHANGE)
            return client_challenge(s, c, down, f->u.sasl_challenge.challenge);
        break;
    case LEP_DESC_SASL_OUTCOME:
        return client_outcome(s, c, &f->u.sasl_outcome);
    default:
        break;
    }
    return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, FRAMING,
                     "unexpected SASL frame (descriptor 0x%llx) from the server",
                     (unsigned long long)f->code);
}

/* ------------------------------------------------------------------ */
/* Server                                                              */

static unsigned
server_offer(const lep_sasl_t *s, lep_conn_t *c)
{
    unsigned bits = s->mechs;
    if (!bits) {
        if (s->users)
            bits |= SCRAM_BITS;
        if (s->users || s->authenticate)
            bits |= BIT(M_PLAIN);
        if (lep_conn_user(c).len)
            bits |= BIT(M_EXTERNAL);
        if (!s->users && !s->authenticate)
            bits |= BIT(M_ANONYMOUS);
    }
    if (!lep_conn_encrypted(c) && !s->allow_insecure)
        bits &= ~BIT(M_PLAIN);
    /* Listed or not, EXTERNAL is offered only with an identity to check. */
    if (!lep_conn_user(c).len)
        bits &= ~BIT(M_EXTERNAL);
    return bits;
}

static int
send_mechanisms(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down)
{
    lep_buf_t arr;
    lep_encoder_t e;
    int rc;

    s->offered = server_offer(s, c);
    lep_buf_init(&arr);
    lep_encoder_init(&e, &arr);
    lep_encode_array_begin(&e, LEP_TYPE_SYMBOL);
    for (int m = 0; m < M_COUNT; m++)
        if (s->offered & BIT(m))
            lep_encode_csymbol(&e, MECH_NAME[m]);
    lep_encode_array_end(&e);
    if ((rc = lep_encoder_finish(&e)) == 0) {
        lep_sasl_frame_t f;
        f.code = LEP_DESC_SASL_MECHANISMS;
        lep_sasl_mechanisms_init(&f.u.sasl_mechanisms);
        f.u.sasl_mechanisms.present = LEP_SASL_MECHANISMS_HAS_SASL_SERVER_MECHANISMS;
        f.u.sasl_mechanisms.sasl_server_mechanisms = lep_buf_bytes(&arr);
        rc = send_frame(s, down, &f);
    }
    lep_buf_fini(&arr);
    return rc;
}

/* Authentication succeeded as user: outcome ok (with SCRAM's server-final
 * as additional data), identity to the connection, transparent from now. */
static int
server_succeed(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, lep_bytes_t user,
               lep_bytes_t additional)
{
    int rc;
    lep_free(s->user);
    if (!(s->user = dup_bytes(user)))
        return LEP_ERR_NOMEM;
    if ((rc = lep_conn_set_user(c, user)))
        return rc;
    lep_sasl_frame_t f;
    f.code = LEP_DESC_SASL_OUTCOME;
    lep_sasl_outcome_init(&f.u.sasl_outcome);
    f.u.sasl_outcome.present = LEP_SASL_OUTCOME_HAS_CODE;
    f.u.sasl_outcome.code = LEP_SASL_CODE_OK;
    if (additional.len) {
        f.u.sasl_outcome.present |= LEP_SASL_OUTCOME_HAS_ADDITIONAL_DATA;
        f.u.sasl_outcome.additional_data = additional;
    }
    if ((rc = send_frame(s, down, &f)))
        return rc;
    s->outcome = LEP_SASL_CODE_OK;
    s->phase = P_DONE;
    return 0;
}

static int
server_deny(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, const char *why)
{
    return sasl_fail(s, c, down, LEP_SASL_CODE_AUTH, UNAUTHORIZED,
                     "SASL %s authentication failed: %s", MECH_NAME[s->mech], why);
}

static bool
callback(lep_sasl_t *s, lep_conn_t *c, lep_bytes_t user, lep_bytes_t pw, lep_bytes_t authzid)
{
    return s->authenticate &&
           s->authenticate(s->auth_ctx, c, MECH_NAME[s->mech], user, pw, authzid);
}

static int
server_plain(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, lep_bytes_t msg)
{
    /* authzid NUL authcid NUL passwd (RFC 4616) */
    const uint8_t *p = msg.ptr, *end = p + msg.len;
    const uint8_t *n1 = msg.len ? memchr(p, 0, msg.len) : NULL;
    const uint8_t *n2 = n1 ? memchr(n1 + 1, 0, (size_t)(end - n1 - 1)) : NULL;
    if (!n1 || !n2 || memchr(n2 + 1, 0, (size_t)(end - n2 - 1)) || n2 == n1 + 1)
        return server_deny(s, c, down, "malformed PLAIN message");
    lep_bytes_t authzid = LEP_BYTES(p, (size_t)(n1 - p));
    lep_bytes_t user = LEP_BYTES(n1 + 1, (size_t)(n2 - n1 - 1));
    lep_bytes_t pw = LEP_BYTES(n2 + 1, (size_t)(end - n2 - 1));
    bool ok = false;
    if (s->users && (authzid.len == 0 || bytes_eq(authzid, user))) {
        int rc = lep_sasl_users_check(s->users, user, pw);
        if (rc == LEP_ERR_NOT_FOUND) {
            /* as much work as for a salted user: the time taken does not
             * tell which user names exist */
            lepi_scram_cred_t dummy;
            rc = lepi_scram_derive(&dummy, LEPI_HASH_SHA256, pw, (const uint8_t *)"lepton", 6,
                                   LEPI_SCRAM_DEFAULT_ITER);
            if (rc == 0)
                rc = LEP_ERR_NOT_FOUND;
        }
        if (rc == LEP_ERR_NOMEM)
            return rc;
        ok = rc == 0;
    }
    if (!ok)
        ok = callback(s, c, user, pw, authzid);
    if (!ok)
        return server_deny(s, c, down, "invalid credentials");
    return server_succeed(s, c, down, authzid.len ? authzid : user, LEP_BYTES(NULL, 0));
}

static int
send_challenge(lep_sasl_t *s, lep_buf_t *down, lep_bytes_t ch)
{
    lep_sasl_frame_t f;
    f.code = LEP_DESC_SASL_CHALLENGE;
    lep_sasl_challenge_init(&f.u.sasl_challenge);
    f.u.sasl_challenge.present = LEP_SASL_CHALLENGE_HAS_CHALLENGE;
    f.u.sasl_challenge.challenge = ch.ptr ? ch : LEP_BYTES("", 0);
    return send_frame(s, down, &f);
}

static int
server_scram(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, lep_bytes_t msg)
{
    int rc;
    lep_buf_clear(&s->tmp);
    if (s->scram.state == 0) {
        if ((rc = lepi_scram_server_parse_first(&s->scram, msg)) == LEP_ERR_DECODE)
            return server_deny(s, c, down, s->scram.error);
        if (rc)
            return rc;
        lepi_scram_cred_t cr;
        const lepi_user_t *e = lepi_users_find(s->users, lep_buf_bytes(&s->scram.user));
        rc = lepi_users_scram_cred(e, s->scram.hash, s->iterations, &cr);
        if (rc && rc != LEP_ERR_NOT_FOUND)
            return rc;
        rc = lepi_scram_server_first(&s->scram, rc ? NULL : &cr, NULL, &s->tmp);
        OPENSSL_cleanse(&cr, sizeof cr);
        if (rc)
            return rc;
        return send_challenge(s, down, lep_buf_bytes(&s->tmp));
    }
    if (s->scram.state == 2) {
        rc = lepi_scram_server_final(&s->scram, msg, &s->tmp);
        if (rc == LEP_ERR_DECODE || rc == LEP_ERR_INVALID)
            return server_deny(s, c, down, s->scram.error);
        if (rc)
            return rc;
        lep_bytes_t user = lep_buf_bytes(&s->scram.user);
        lep_bytes_t az = lep_buf_bytes(&s->scram.authzid);
        if (az.len && !bytes_eq(az, user)) {
            if (!callback(s, c, user, LEP_BYTES(NULL, 0), az))
                return server_deny(s, c, down, "authorization identity not allowed");
            user = az;
        }
        return server_succeed(s, c, down, user, lep_buf_bytes(&s->tmp));
    }
    return server_deny(s, c, down, "unexpected sasl-response");
}

/* One client message for the chosen mechanism (the initial response or a
 * response).  present: false when sasl-init carried no initial response. */
static int
server_step(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, bool present, lep_bytes_t msg)
{
    switch (s->mech) {
    case M_ANONYMOUS:
        if (s->authenticate && !callback(s, c, msg, LEP_BYTES(NULL, 0), LEP_BYTES(NULL, 0)))
            return server_deny(s, c, down, "refused");
        return server_succeed(s, c, down, lep_bytes_str("anonymous"), LEP_BYTES(NULL, 0));
    case M_EXTERNAL: {
        lep_bytes_t id = lep_conn_user(c);
        if (!id.len)
            return server_deny(s, c, down, "no identity from a TLS client certificate");
        if (s->authenticate) {
            if (!callback(s, c, id, LEP_BYTES(NULL, 0), msg))
                return server_deny(s, c, down, "refused");
        } else if (msg.len && !bytes_eq(msg, id)) {
            return server_deny(s, c, down, "authorization identity not allowed");
        }
        return server_succeed(s, c, down, msg.len ? msg : id, LEP_BYTES(NULL, 0));
    }
    case M_PLAIN:
        /* RFC 4422: no initial response -> an empty challenge asks for it */
        if (!present)
            return send_challenge(s, down, LEP_BYTES(NULL, 0));
        return server_plain(s, c, down, msg);
    default:
        if (!present && s->scram.state == 0)
            return send_challenge(s, down, LEP_BYTES(NULL, 0));
        return server_scram(s, c, down, msg);
    }
}

static int
server_frame(lep_sasl_t *s, lep_conn_t *c, lep_buf_t *down, const lep_sasl_frame_t *f)
{
    if (f->code == LEP_DESC_SASL_INIT && s->step == S_MECHS) {
        const lep_sasl_init_t *in = &f->u.sasl_init;
        int m = mech_of(in->mechanism.ptr, in->mechanism.len);
        if (m == M_NONE || !(s->offered & BIT(m))) {
            char a[96];
            mech_list_str(s->offered, a, sizeof a);
            return sasl_fail(s, c, down, LEP_SASL_CODE_AUTH, UNAUTHORIZED,
                             "SASL mechanism '%.*s' not offered (offered: %s)",
                             (int)(in->mechanism.len > 40 ? 40 : in->mechanism.len),
                             (const char *)in->mechanism.ptr, a);
        }
        s->mech = m;
        s->step = S_EXCHANGE;
        if ((in->present & LEP_SASL_INIT_HAS_HOSTNAME) && in->hostname.len &&
            !(s->hostname = dup_bytes(in->hostname)))
            return LEP_ERR_NOMEM;
        if (m >= M_SCRAM_SHA_512 && m <= M_SCRAM_SHA_1) {
            lepi_scram_init(&s->scram,
                            (lepi_hash_t)lepi_scram_hash_of(MECH_NAME[m], strlen(MECH_NAME[m])));
            s->scram_on = true;
        }
        return server_step(s, c, down, (in->present & LEP_SASL_INIT_HAS_INITIAL_RESPONSE) != 0,
                           in->initial_response);
    }
    if (f->code == LEP_DESC_SASL_RESPONSE && s->step == S_EXCHANGE)
        return server_step(s, c, down, true, f->u.sasl_response.response);
    return sasl_fail(s, c, down, LEP_SASL_CODE_SYS_PERM, FRAMING,
                     "unexpected SASL frame (descriptor 0x%llx) from the client",
                     (unsigned long long)f->code);
}

/* ------------------------------------------------------------------ */
/* Layer                                                               */

static int
on_header(lep_sasl_t *s, lep_conn_t *c, const uint8_t *in, size_t len, size_t *pos,
          lep_buf_t *down)
{
    lep_proto_header_t h;
    int id = lep_proto_header_parse(in + *pos, len - *pos, &h);
    int rc;

    if (id == LEP_ERR_INCOMPLETE)
        return 1;
    if (id == LEP_PROTO_SASL) {
        *pos += LEP_PROTO_HEADER_SIZE;
        s->phase = P_FRAMES;
        if (s->server) {
            if ((rc = send_header(s, down)) || (rc = send_mechanisms(s, c, down)))
                return rc;
        }
        return 0;
    }
    if (s->server && id == LEP_PROTO_AMQP && s->optional) {
        s->skipped = true;
        s->phase = P_DONE; /* the header goes up with the rest */
        return 0;
    }
    if (s->server)
        (void)send_header(s, down); /* spec 5.3: answer with our header, then close */
    if (s->server && id == LEP_PROTO_AMQP)
        return sasl_fail(s, c, NULL, LEP_SASL_CODE_AUTH, UNAUTHORIZED,
                         "SASL required: the client sent the AMQP header without authenticating");
    char seen[40];
    size_t o = 0;
    for (unsigned i = 0; i < h.nraw && o + 4 < sizeof seen; i++)
        o += (size_t)snprintf(seen + o, sizeof seen - o, "%s%02x", i ? " " : "", h.raw[i]);
    seen[o] = 0;
    return sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS_PERM, FRAMING,
                     "expected the SASL protocol header, got %s%s%s", seen,
                     id == LEP_PROTO_AMQP ? " (AMQP: the server does not do SASL)" : "",
                     id == LEP_PROTO_TLS ? " (TLS)" : "");
}

static int
layer_input(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used,
            lep_buf_t *up, lep_buf_t *down)
{
    lep_sasl_t *s = ctx;
    size_t pos = 0;
    int rc = 0;

    if (s->phase == P_FAILED) {
        *used = len;
        return 0;
    }
    if (!s->server && (rc = send_header(s, down)))
        return rc;
    while (pos < len && (s->phase == P_HEADER || s->phase == P_FRAMES)) {
        if (s->phase == P_HEADER) {
            rc = on_header(s, c, in, len, &pos, down);
            if (rc == 1) {
                rc = 0;
                break;
            }
            if (rc)
                break;
            continue;
        }
        lep_frame_t f;
        size_t n = 0;
        rc = lep_frame_parse(in + pos, len - pos, SASL_MAX_FRAME_IN, &f, &n);
        if (rc == LEP_ERR_INCOMPLETE) {
            rc = 0;
            break;
        }
        if (rc) {
            rc = sasl_fail(s, c, down, LEP_SASL_CODE_SYS_PERM, FRAMING,
                           rc == LEP_ERR_FRAME_SIZE ? "SASL frame too large"
                                                    : "malformed SASL frame header");
            break;
        }
        pos += n;
        if (f.type != LEP_FRAME_SASL) {
            rc = sasl_fail(s, c, down, LEP_SASL_CODE_SYS_PERM, FRAMING,
                           "frame of type %u during SASL", (unsigned)f.type);
            break;
        }
        if (lep_frame_is_empty(&f))
            continue; /* not in the spec for SASL, but harmless */
        lep_reader_t r;
        lep_sasl_frame_t sf;
        lep_reader_init(&r, f.body.ptr, f.body.len);
        if (lep_sasl_frame_decode(&r, &sf)) {
            rc = sasl_fail(s, c, down, LEP_SASL_CODE_SYS_PERM, DECODE,
                           "malformed SASL frame body");
            break;
        }
        rc = s->server ? server_frame(s, c, down, &sf) : client_frame(s, c, down, &sf);
        if (rc)
            break;
    }
    if (rc && s->phase != P_FAILED) {
        /* our own failure (out of memory): still end cleanly */
        sasl_fail(s, c, NULL, LEP_SASL_CODE_SYS, "amqp:internal-error", "SASL: %s",
                  lep_strerror(rc));
    }
    if (s->phase == P_DONE && pos < len) {
        if ((rc = lep_buf_append(up, in + pos, len - pos))) {
            *used = pos;
            return rc;
        }
        pos = len;
    }
    if (s->phase == P_FAILED)
        pos = len;
    *used = pos;
    return rc;
}

static int
layer_output(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used,
             lep_buf_t *down)
{
    lep_sasl_t *s = ctx;
    int rc;

    *used = 0;
    if (!s->server && s->phase != P_FAILED && (rc = send_header(s, down)))
        return rc;
    if (s->phase == P_DONE) {
        if (len && (rc = lep_buf_append(down, in, len)))
            return rc;
        *used = len;
    } else if (s->phase == P_FAILED) {
        *used = len; /* never let AMQP out unauthenticated */
    }
    return 0;
}

static bool
layer_input_closed(void *ctx, lep_conn_t *c)
{
    lep_sasl_t *s = ctx;
    if (s->phase == P_HEADER || s->phase == P_FRAMES) {
        snprintf(s->error, sizeof s->error, "connection closed during SASL authentication");
        if (s->outcome < 0)
            s->outcome = LEP_SASL_CODE_SYS;
        return false;
    }
    return true;
}

static void
sasl_free(void *ctx)
{
    lep_sasl_t *s = ctx;
    if (!s)
        return;
    lep_free(s->username);
    free_secret(s->password);
    lep_free(s->authzid);
    lep_free(s->hostname);
    lep_free(s->user);
    if (s->scram_on)
        lepi_scram_fini(&s->scram);
    if (s->tmp.data)
        OPENSSL_cleanse(s->tmp.data, s->tmp.cap);
    lep_buf_fini(&s->tmp);
    lep_free(s);
}

static const lep_layer_ops_t SASL_OPS = {
    .name = "sasl",
    .input = layer_input,
    .output = layer_output,
    .input_closed = layer_input_closed,
    .free = sasl_free,
};

/* ------------------------------------------------------------------ */
/* Public API                                                          */

void
lep_sasl_client_opts_init(lep_sasl_client_opts_t *o)
{
    memset(o, 0, sizeof *o);
}

void
lep_sasl_server_opts_init(lep_sasl_server_opts_t *o)
{
    memset(o, 0, sizeof *o);
}

static lep_sasl_t *
sasl_new(bool server)
{
    lep_sasl_t *s = lep_calloc(1, sizeof *s);
    if (s) {
        s->server = server;
        s->outcome = -1;
        s->mech = M_NONE;
        lep_buf_init(&s->tmp);
    }
    return s;
}

static int
attach(lep_conn_t *c, lep_sasl_t *s, lep_sasl_t **out)
{
    int rc = lep_conn_add_layer(c, &SASL_OPS, s);
    if (rc) {
        sasl_free(s);
        return rc;
    }
    if (out)
        *out = s;
    return 0;
}

int
lep_sasl_client_add(lep_conn_t *c, const lep_sasl_client_opts_t *o, lep_sasl_t **out)
{
    lep_sasl_t *s;
    int rc = 0;

    if (!c || !o)
        return LEP_ERR_INVALID;
    if (!(s = sasl_new(false)))
        return LEP_ERR_NOMEM;
    if (o->mechanisms) {
        if ((rc = parse_mech_list(o->mechanisms, &s->mechs))) {
            sasl_free(s);
            return rc;
        }
        s->mechs_explicit = true;
    } else {
        s->mechs = SCRAM_BITS | BIT(M_PLAIN) | BIT(M_ANONYMOUS);
    }
    s->username = dup_str(o->username, &rc);
    s->password = dup_str(o->password, &rc);
    s->authzid = dup_str(o->authzid, &rc);
    s->hostname = dup_str(o->hostname, &rc);
    s->allow_insecure = o->allow_insecure;
    if (rc) {
        sasl_free(s);
        return rc;
    }
    if (s->username)
        s->user = dup_str(s->username, &rc);
    if (rc) {
        sasl_free(s);
        return rc;
    }
    return attach(c, s, out);
}

int
lep_sasl_server_add(lep_conn_t *c, const lep_sasl_server_opts_t *o, lep_sasl_t **out)
{
    lep_sasl_t *s;
    int rc = 0;

    if (!c || !o)
        return LEP_ERR_INVALID;
    if (!(s = sasl_new(true)))
        return LEP_ERR_NOMEM;
    if (o->mechanisms && ((rc = parse_mech_list(o->mechanisms, &s->mechs)) || !s->mechs)) {
        sasl_free(s);
        return rc ? rc : LEP_ERR_INVALID;
    }
    s->users = o->users;
    s->authenticate = o->authenticate;
    s->auth_ctx = o->auth_ctx;
    s->allow_insecure = o->allow_insecure;
    s->optional = o->optional;
    s->iterations = o->scram_iterations ? o->scram_iterations : LEPI_SCRAM_DEFAULT_ITER;
    if (s->iterations > LEPI_SCRAM_MAX_ITER) {
        sasl_free(s);
        return LEP_ERR_INVALID;
    }
    return attach(c, s, out);
}

int
lep_sasl_outcome(const lep_sasl_t *s)
{
    return s ? s->outcome : -1;
}

const char *
lep_sasl_mechanism(const lep_sasl_t *s)
{
    return s && s->mech >= 0 ? MECH_NAME[s->mech] : NULL;
}

const char *
lep_sasl_user(const lep_sasl_t *s)
{
    if (!s)
        return NULL;
    if (s->server && s->outcome != LEP_SASL_CODE_OK)
        return NULL;
    return s->user;
}

const char *
lep_sasl_error(const lep_sasl_t *s)
{
    return s && s->error[0] ? s->error : NULL;
}

const char *
lep_sasl_hostname(const lep_sasl_t *s)
{
    return s ? s->hostname : NULL;
}

bool
lep_sasl_skipped(const lep_sasl_t *s)
{
    return s && s->skipped;
}
