/* SCRAM (RFC 5802, RFC 7677) for both ends, on OpenSSL's primitives, and
 * the base64 it needs.  No channel binding: the client always sends the
 * gs2 header "n,," (or "n,a=authzid,"), the server refuses "p=". */
#include "sasl/sasl_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* base64                                                              */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
lepi_b64_encode(lep_buf_t *out, const uint8_t *p, size_t n)
{
    int rc = lep_buf_reserve(out, (n + 2) / 3 * 4);
    if (rc)
        return rc;
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    out->len = (size_t)((uint8_t *)o - out->data);
    return 0;
}

static int
b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int
lepi_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    if (n % 4)
        return LEP_ERR_DECODE;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad) {
                return LEP_ERR_DECODE; /* data after padding */
            } else if ((v[k] = b64_val(s[i + k])) < 0) {
                return LEP_ERR_DECODE;
            }
        }
        /* canonical only: the bits padding cuts off must be zero */
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
            return LEP_ERR_DECODE;
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t nb = 3 - (size_t)pad;
        if (o + nb > cap)
            return LEP_ERR_OVERFLOW;
        out[o++] = (uint8_t)(w >> 16);
        if (nb > 1) out[o++] = (uint8_t)(w >> 8);
        if (nb > 2) out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Primitives                                                          */

static const EVP_MD *
md_of(lepi_hash_t h)
{
    switch (h) {
    case LEPI_HASH_SHA1: return EVP_sha1();
    case LEPI_HASH_SHA256: return EVP_sha256();
    default: return EVP_sha512();
    }
}

size_t
lepi_hash_len(lepi_hash_t h)
{
    return h == LEPI_HASH_SHA1 ? 20 : h == LEPI_HASH_SHA256 ? 32 : 64;
}

int
lepi_scram_hash_of(const char *mech, size_t len)
{
    static const struct { const char *name; lepi_hash_t h; } tab[] = {
        {"SCRAM-SHA-1", LEPI_HASH_SHA1},
        {"SCRAM-SHA-256", LEPI_HASH_SHA256},
        {"SCRAM-SHA-512", LEPI_HASH_SHA512},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, mech, len) == 0)
            return (int)tab[i].h;
    return -1;
}

static int
hmac(lepi_hash_t h, const uint8_t *key, size_t klen, const void *data, size_t dlen,
     uint8_t *out)
{
    unsigned int n = 0;
    if (!HMAC(md_of(h), key, (int)klen, data, dlen, out, &n))
        return LEP_ERR_NOMEM;
    return 0;
}

static int
digest(lepi_hash_t h, const uint8_t *p, size_t n, uint8_t *out)
{
    unsigned int len = 0;
    return EVP_Digest(p, n, out, &len, md_of(h), NULL) == 1 ? 0 : LEP_ERR_NOMEM;
}

/* SaltedPassword, then ClientKey -> StoredKey and ServerKey. */
static int
salt_password(lepi_hash_t h, lep_bytes_t password, const uint8_t *salt, size_t salt_len,
              uint32_t iterations, uint8_t *salted)
{
    if (iterations == 0 || iterations > INT32_MAX || password.len > INT32_MAX)
        return LEP_ERR_INVALID;
    /* An empty password must still pass a non-NULL pointer. */
    const char *pw = password.len ? (const char *)password.ptr : "";
    if (PKCS5_PBKDF2_HMAC(pw, (int)password.len, salt, (int)salt_len, (int)iterations,
                          md_of(h), (int)lepi_hash_len(h), salted) != 1)
        return LEP_ERR_NOMEM;
    return 0;
}

int
lepi_scram_derive(lepi_scram_cred_t *cr, lepi_hash_t h, lep_bytes_t password,
                  const uint8_t *salt, size_t salt_len, uint32_t iterations)
{
    uint8_t salted[LEPI_SCRAM_MAX_HASH], ck[LEPI_SCRAM_MAX_HASH];
    size_t hl = lepi_hash_len(h);
    int rc;

    if (salt_len > LEPI_SCRAM_MAX_SALT)
        return LEP_ERR_INVALID;
    memset(cr, 0, sizeof *cr);
    cr->hash = h;
    cr->iterations = iterations;
    cr->salt_len = salt_len;
    memcpy(cr->salt, salt, salt_len);
    if ((rc = salt_password(h, password, salt, salt_len, iterations, salted)) == 0 &&
        (rc = hmac(h, salted, hl, "Client Key", 10, ck)) == 0 &&
        (rc = digest(h, ck, hl, cr->stored_key)) == 0)
        rc = hmac(h, salted, hl, "Server Key", 10, cr->server_key);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ck, sizeof ck);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Message helpers                                                     */

void
lepi_scram_init(lepi_scram_t *s, lepi_hash_t h)
{
    memset(s, 0, sizeof *s);
    s->hash = h;
    lep_buf_init(&s->client_first_bare);
    lep_buf_init(&s->server_first);
    lep_buf_init(&s->nonce);
    lep_buf_init(&s->gs2);
    lep_buf_init(&s->user);
    lep_buf_init(&s->authzid);
}

void
lepi_scram_fini(lepi_scram_t *s)
{
    lep_buf_fini(&s->client_first_bare);
    lep_buf_fini(&s->server_first);
    lep_buf_fini(&s->nonce);
    lep_buf_fini(&s->gs2);
    lep_buf_fini(&s->user);
    lep_buf_fini(&s->authzid);
    OPENSSL_cleanse(&s->cred, sizeof s->cred);
    OPENSSL_cleanse(s->server_sig, sizeof s->server_sig);
}

static void
set_error(lepi_scram_t *s, const char *msg)
{
    snprintf(s->error, sizeof s->error, "%s", msg);
}

/* saslname escaping (RFC 5802 5.1): ',' -> "=2C", '=' -> "=3D". */
static int
append_escaped(lep_buf_t *out, const char *p, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (p[i] == ',')
            rc = lep_buf_append(out, "=2C", 3);
        else if (p[i] == '=')
            rc = lep_buf_append(out, "=3D", 3);
        else
            rc = lep_buf_append(out, &p[i], 1);
    }
    return rc;
}

static int
append_unescaped(lep_buf_t *out, lep_bytes_t v)
{
    int rc = 0;
    for (size_t i = 0; i < v.len && rc == 0; i++) {
        if (v.ptr[i] == '=') {
            if (i + 2 >= v.len)
                return LEP_ERR_DECODE;
            if (v.ptr[i + 1] == '2' && v.ptr[i + 2] == 'C')
                rc = lep_buf_append(out, ",", 1);
            else if (v.ptr[i + 1] == '3' && v.ptr[i + 2] == 'D')
                rc = lep_buf_append(out, "=", 1);
            else
                return LEP_ERR_DECODE;
            i += 2;
        } else if (v.ptr[i] == 0) {
            return LEP_ERR_DECODE;
        } else {
            rc = lep_buf_append(out, &v.ptr[i], 1);
        }
    }
    return rc;
}

/* Splits the next "k=value" off *rest (comma separated).  Returns the key
 * letter, or 0 when the attribute is malformed or *rest is empty. */
static char
next_attr(lep_bytes_t *rest, lep_bytes_t *val)
{
    const uint8_t *p = rest->ptr, *end = p + rest->len;
    if (rest->len < 2 || p[1] != '=')
        return 0;
    char key = (char)p[0];
    if (!((key >= 'a' && key <= 'z') || (key >= 'A' && key <= 'Z')))
        return 0;
    const uint8_t *v = p + 2, *c = v;
    while (c < end && *c != ',')
        c++;
    *val = LEP_BYTES(v, (size_t)(c - v));
    if (c < end) {
        c++;
        if (c == end)
            return 0; /* trailing comma */
    }
    *rest = LEP_BYTES(c, (size_t)(end - c));
    return key;
}

/* Printable ASCII except ',' (RFC 5802 "printable"). */
static bool
nonce_ok(lep_bytes_t n)
{
    if (n.len == 0)
        return false;
    for (size_t i = 0; i < n.len; i++)
        if (n.ptr[i] < 0x21 || n.ptr[i] > 0x7e || n.ptr[i] == ',')
            return false;
    return true;
}

static int
random_nonce(lep_buf_t *out)
{
    uint8_t raw[18];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return LEP_ERR_NOMEM;
    return lepi_b64_encode(out, raw, sizeof raw);
}

static int
parse_u32(lep_bytes_t v, uint32_t *out)
{
    uint64_t n = 0;
    if (v.len == 0 || v.len > 10)
        return LEP_ERR_DECODE;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return LEP_ERR_DECODE;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    if (n > UINT32_MAX)
        return LEP_ERR_DECODE;
    *out = (uint32_t)n;
    return 0;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static int
auth_message(const lepi_scram_t *s, lep_bytes_t final_wo, lep_buf_t *am)
{
    int rc;
    if ((rc = lep_buf_append(am, s->client_first_bare.data, s->client_first_bare.len)) ||
        (rc = lep_buf_append(am, ",", 1)) ||
        (rc = lep_buf_append(am, s->server_first.data, s->server_first.len)) ||
        (rc = lep_buf_append(am, ",", 1)) ||
        (rc = lep_buf_append(am, final_wo.ptr, final_wo.len)))
        return rc;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Client                                                              */

int
lepi_scram_client_first(lepi_scram_t *s, const char *user, const char *authzid,
                        const char *nonce, lep_buf_t *out)
{
    int rc;
    if (s->state != 0)
        return LEP_ERR_STATE;
    rc = nonce ? lep_buf_append(&s->nonce, nonce, strlen(nonce)) : random_nonce(&s->nonce);
    if (rc)
        return rc;
    if ((rc = lep_buf_append(&s->gs2, "n,", 2)))
        return rc;
    if (authzid && *authzid) {
        if ((rc = lep_buf_append(&s->gs2, "a=", 2)) ||
            (rc = append_escaped(&s->gs2, authzid, strlen(authzid))))
            return rc;
    }
    if ((rc = lep_buf_append(&s->gs2, ",", 1)))
        return rc;
    lep_buf_t *b = &s->client_first_bare;
    if ((rc = lep_buf_append(b, "n=", 2)) ||
        (rc = append_escaped(b, user ? user : "", user ? strlen(user) : 0)) ||
        (rc = lep_buf_append(b, ",r=", 3)) ||
        (rc = lep_buf_append(b, s->nonce.data, s->nonce.len)))
        return rc;
    if ((rc = lep_buf_append(out, s->gs2.data, s->gs2.len)) ||
        (rc = lep_buf_append(out, b->data, b->len)))
        return rc;
    s->state = 1;
    return 0;
}

int
lepi_scram_client_final(lepi_scram_t *s, lep_bytes_t password, lep_bytes_t server_first,
                        lep_buf_t *out)
{
    lep_bytes_t rest = server_first, r = {0}, salt64 = {0}, iv = {0};
    uint8_t salt[LEPI_SCRAM_MAX_SALT];
    size_t salt_len = 0;
    uint32_t iter = 0;
    char k;
    int rc;

    if (s->state != 1)
        return LEP_ERR_STATE;
    if (server_first.len && server_first.ptr[0] == 'm') {
        set_error(s, "server-first-message: mandatory extension not supported");
        return LEP_ERR_DECODE;
    }
    if ((k = next_attr(&rest, &r)) != 'r' || (k = next_attr(&rest, &salt64)) != 's' ||
        (k = next_attr(&rest, &iv)) != 'i') {
        set_error(s, "server-first-message malformed");
        return LEP_ERR_DECODE;
    }
    if (!nonce_ok(r) || r.len <= s->nonce.len || memcmp(r.ptr, s->nonce.data, s->nonce.len)) {
        set_error(s, "server nonce does not extend the client nonce");
        return LEP_ERR_DECODE;
    }
    if (lepi_b64_decode((const char *)salt64.ptr, salt64.len, salt, sizeof salt, &salt_len) ||
        salt_len == 0) {
        set_error(s, "bad salt in server-first-message");
        return LEP_ERR_DECODE;
    }
    if (parse_u32(iv, &iter) || iter == 0 || iter > LEPI_SCRAM_MAX_ITER) {
        set_error(s, "bad iteration count in server-first-message");
        return LEP_ERR_DECODE;
    }
    if ((rc = lep_buf_append(&s->server_first, server_first.ptr, server_first.len)))
        return rc;

    lep_buf_t fin, am;
    lep_buf_init(&fin);
    lep_buf_init(&am);
    lepi_scram_cred_t cr;
    uint8_t ck[LEPI_SCRAM_MAX_HASH], sig[LEPI_SCRAM_MAX_HASH], salted[LEPI_SCRAM_MAX_HASH];
    size_t hl = lepi_hash_len(s->hash);

    if ((rc = lep_buf_append(&fin, "c=", 2)) ||
        (rc = lepi_b64_encode(&fin, s->gs2.data, s->gs2.len)) ||
        (rc = lep_buf_append(&fin, ",r=", 3)) ||
        (rc = lep_buf_append(&fin, r.ptr, r.len)) ||
        (rc = auth_message(s, lep_buf_bytes(&fin), &am)))
        goto out;
    if ((rc = salt_password(s->hash, password, salt, salt_len, iter, salted)) ||
        (rc = hmac(s->hash, salted, hl, "Client Key", 10, ck)) ||
        (rc = digest(s->hash, ck, hl, cr.stored_key)) ||
        (rc = hmac(s->hash, salted, hl, "Server Key", 10, cr.server_key)) ||
        (rc = hmac(s->hash, cr.stored_key, hl, am.data, am.len, sig)) ||
        (rc = hmac(s->hash, cr.server_key, hl, am.data, am.len, s->server_sig)))
        goto out;
    for (size_t i = 0; i < hl; i++)
        ck[i] ^= sig[i]; /* ClientProof */
    if ((rc = lep_buf_append(&fin, ",p=", 3)) || (rc = lepi_b64_encode(&fin, ck, hl)) ||
        (rc = lep_buf_append(out, fin.data, fin.len)))
        goto out;
    s->state = 2;
out:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ck, sizeof ck);
    OPENSSL_cleanse(&cr, sizeof cr);
    lep_buf_fini(&fin);
    lep_buf_fini(&am);
    return rc;
}

int
lepi_scram_client_verify(lepi_scram_t *s, lep_bytes_t server_final)
{
    lep_bytes_t rest = server_final, v;
    uint8_t sig[LEPI_SCRAM_MAX_HASH];
    size_t n = 0;
    char k;

    if (s->state != 2)
        return LEP_ERR_STATE;
    k = next_attr(&rest, &v);
    if (k == 'e') {
        snprintf(s->error, sizeof s->error, "server error: %.*s",
                 (int)(v.len > 80 ? 80 : v.len), (const char *)v.ptr);
        return LEP_ERR_INVALID;
    }
    if (k != 'v' || lepi_b64_decode((const char *)v.ptr, v.len, sig, sizeof sig, &n)) {
        set_error(s, "server-final-message malformed");
        return LEP_ERR_DECODE;
    }
    if (n != lepi_hash_len(s->hash) || CRYPTO_memcmp(sig, s->server_sig, n) != 0) {
        set_error(s, "server signature wrong: the server does not know the password");
        return LEP_ERR_INVALID;
    }
    s->state = 3;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Server                                                              */

int
lepi_scram_server_parse_first(lepi_scram_t *s, lep_bytes_t msg)
{
    const uint8_t *p = msg.ptr, *end = p + msg.len;
    lep_bytes_t rest, v;
    int rc = 0;

    if (s->state != 0)
        return LEP_ERR_STATE;
    /* gs2-header: cbind-flag "," [authzid] "," */
    if (msg.len < 2 || p[1] != ',' || (p[0] != 'n' && p[0] != 'y')) {
        set_error(s, msg.len && p[0] == 'p' ? "channel binding not supported"
                                            : "client-first-message: bad gs2 header");
        return LEP_ERR_DECODE;
    }
    const uint8_t *q = p + 2;
    if (q < end && *q == 'a') {
        if (end - q < 2 || q[1] != '=') {
            set_error(s, "client-first-message: bad authzid");
            return LEP_ERR_DECODE;
        }
        const uint8_t *a = q + 2;
        q = a;
        while (q < end && *q != ',')
            q++;
        if (q == end || (rc = append_unescaped(&s->authzid, LEP_BYTES(a, (size_t)(q - a))))) {
            if (rc == LEP_ERR_NOMEM)
                return rc;
            set_error(s, "client-first-message: bad authzid");
            return LEP_ERR_DECODE;
        }
    }
    if (q >= end || *q != ',') {
        set_error(s, "client-first-message: bad gs2 header");
        return LEP_ERR_DECODE;
    }
    q++;
    if ((rc = lep_buf_append(&s->gs2, p, (size_t)(q - p))))
        return rc;
    rest = LEP_BYTES(q, (size_t)(end - q));
    if ((rc = lep_buf_append(&s->client_first_bare, rest.ptr, rest.len)))
        return rc;
    if (rest.len && rest.ptr[0] == 'm') {
        set_error(s, "client-first-message: mandatory extension not supported");
        return LEP_ERR_DECODE;
    }
    if (next_attr(&rest, &v) != 'n' || v.len == 0 ||
        (rc = append_unescaped(&s->user, v)) != 0) {
        if (rc == LEP_ERR_NOMEM)
            return rc;
        set_error(s, "client-first-message: bad user name");
        return LEP_ERR_DECODE;
    }
    if (next_attr(&rest, &v) != 'r' || !nonce_ok(v)) {
        set_error(s, "client-first-message: bad nonce");
        return LEP_ERR_DECODE;
    }
    if ((rc = lep_buf_append(&s->nonce, v.ptr, v.len)))
        return rc;
    s->state = 1;
    return 0;
}

int
lepi_scram_server_first(lepi_scram_t *s, const lepi_scram_cred_t *cred, const char *nonce,
                        lep_buf_t *out)
{
    int rc;
    char num[16];

    if (s->state != 1)
        return LEP_ERR_STATE;
    if (cred && cred->hash == s->hash) {
        s->cred = *cred;
        s->known_user = true;
    } else {
        /* A made-up salt that is the same on every attempt for this name,
         * so probing cannot tell unknown users from known ones. */
        uint8_t d[LEPI_SCRAM_MAX_HASH];
        if ((rc = digest(LEPI_HASH_SHA256, s->user.data ? s->user.data : (const uint8_t *)"",
                         s->user.len, d)))
            return rc;
        memset(&s->cred, 0, sizeof s->cred);
        s->cred.hash = s->hash;
        s->cred.iterations = LEPI_SCRAM_DEFAULT_ITER;
        s->cred.salt_len = 16;
        memcpy(s->cred.salt, d, 16);
        s->known_user = false;
    }
    rc = nonce ? lep_buf_append(&s->nonce, nonce, strlen(nonce)) : random_nonce(&s->nonce);
    if (rc)
        return rc;
    snprintf(num, sizeof num, "%u", (unsigned)s->cred.iterations);
    lep_buf_t *b = &s->server_first;
    if ((rc = lep_buf_append(b, "r=", 2)) ||
        (rc = lep_buf_append(b, s->nonce.data, s->nonce.len)) ||
        (rc = lep_buf_append(b, ",s=", 3)) ||
        (rc = lepi_b64_encode(b, s->cred.salt, s->cred.salt_len)) ||
        (rc = lep_buf_append(b, ",i=", 3)) ||
        (rc = lep_buf_append(b, num, strlen(num))) ||
        (rc = lep_buf_append(out, b->data, b->len)))
        return rc;
    s->state = 2;
    return 0;
}

int
lepi_scram_server_final(lepi_scram_t *s, lep_bytes_t msg, lep_buf_t *out)
{
    lep_bytes_t rest = msg, v, proof64 = {0};
    uint8_t cb[LEPI_SCRAM_MAX_SALT], proof[LEPI_SCRAM_MAX_HASH], sig[LEPI_SCRAM_MAX_HASH],
        ck[LEPI_SCRAM_MAX_HASH], sk[LEPI_SCRAM_MAX_HASH];
    size_t n = 0, hl = lepi_hash_len(s->hash), wo_len = 0;
    lep_buf_t am;
    int rc;

    if (s->state != 2)
        return LEP_ERR_STATE;
    if (next_attr(&rest, &v) != 'c' ||
        lepi_b64_decode((const char *)v.ptr, v.len, cb, sizeof cb, &n) ||
        n != s->gs2.len || memcmp(cb, s->gs2.data, n) != 0) {
        set_error(s, "client-final-message: bad channel binding");
        return LEP_ERR_DECODE;
    }
    if (next_attr(&rest, &v) != 'r' || v.len != s->nonce.len ||
        memcmp(v.ptr, s->nonce.data, v.len) != 0) {
        set_error(s, "client-final-message: nonce mismatch");
        return LEP_ERR_DECODE;
    }
    /* extensions, then the proof, which must come last */
    for (;;) {
        const uint8_t *at = rest.ptr;
        char k = next_attr(&rest, &v);
        if (k == 0) {
            set_error(s, "client-final-message: no proof");
            return LEP_ERR_DECODE;
        }
        if (k == 'p') {
            if (rest.len != 0) {
                set_error(s, "client-final-message: proof not last");
                return LEP_ERR_DECODE;
            }
            proof64 = v;
            wo_len = (size_t)(at - msg.ptr) - 1; /* without the ',' */
            break;
        }
    }
    if (lepi_b64_decode((const char *)proof64.ptr, proof64.len, proof, sizeof proof, &n) ||
        n != hl) {
        set_error(s, "client-final-message: bad proof");
        return LEP_ERR_DECODE;
    }
    lep_buf_init(&am);
    if ((rc = auth_message(s, LEP_BYTES(msg.ptr, wo_len), &am)) ||
        (rc = hmac(s->hash, s->cred.stored_key, hl, am.data, am.len, sig)))
        goto out;
    for (size_t i = 0; i < hl; i++)
        ck[i] = proof[i] ^ sig[i];
    if ((rc = digest(s->hash, ck, hl, sk)))
        goto out;
    if (!s->known_user || CRYPTO_memcmp(sk, s->cred.stored_key, hl) != 0) {
        set_error(s, "invalid credentials");
        rc = LEP_ERR_INVALID;
        goto out;
    }
    if ((rc = hmac(s->hash, s->cred.server_key, hl, am.data, am.len, sig)) ||
        (rc = lep_buf_append(out, "v=", 2)) || (rc = lepi_b64_encode(out, sig, hl)))
        goto out;
    s->state = 3;
out:
    OPENSSL_cleanse(ck, sizeof ck);
    lep_buf_fini(&am);
    return rc;
}
