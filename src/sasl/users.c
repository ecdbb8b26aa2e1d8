/* The users file: salted SCRAM credentials and (test) clear passwords.
 * Format in include/lepton/sasl.h. */
#include "sasl/sasl_internal.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lepi_user {
    char *name;
    size_t name_len;
    char *password;        /* clear password, or NULL */
    size_t password_len;
    uint8_t has_scram;     /* bit per lepi_hash_t */
    lepi_scram_cred_t scram[3];
};

struct lep_sasl_users {
    lepi_user_t *v;
    size_t n, cap;
};

static void
user_clear(lepi_user_t *e)
{
    lep_free(e->name);
    if (e->password) {
        OPENSSL_cleanse(e->password, e->password_len);
        lep_free(e->password);
    }
    OPENSSL_cleanse(e->scram, sizeof e->scram);
}

void
lep_sasl_users_free(lep_sasl_users_t *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        user_clear(&u->v[i]);
    lep_free(u->v);
    lep_free(u);
}

size_t
lep_sasl_users_count(const lep_sasl_users_t *u)
{
    return u ? u->n : 0;
}

const lepi_user_t *
lepi_users_find(const lep_sasl_users_t *u, lep_bytes_t user)
{
    if (!u)
        return NULL;
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i].name_len == user.len && memcmp(u->v[i].name, user.ptr, user.len) == 0)
            return &u->v[i];
    return NULL;
}

int
lepi_users_scram_cred(const lepi_user_t *e, lepi_hash_t h, uint32_t iterations,
                      lepi_scram_cred_t *out)
{
    if (!e)
        return LEP_ERR_NOT_FOUND;
    if (e->has_scram & (1u << h)) {
        *out = e->scram[h];
        return 0;
    }
    if (!e->password)
        return LEP_ERR_NOT_FOUND;
    uint8_t salt[16];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return LEP_ERR_NOMEM;
    return lepi_scram_derive(out, h, LEP_BYTES(e->password, e->password_len), salt, sizeof salt,
                             iterations ? iterations : LEPI_SCRAM_DEFAULT_ITER);
}

bool
lep_sasl_users_has(const lep_sasl_users_t *u, lep_bytes_t user, const char *mechanism)
{
    const lepi_user_t *e = lepi_users_find(u, user);
    if (!e || !mechanism)
        return false;
    if (strcmp(mechanism, "PLAIN") == 0)
        return true; /* clear or salted: either can check a password */
    int h = lepi_scram_hash_of(mechanism, strlen(mechanism));
    return h >= 0 && (e->password || (e->has_scram & (1u << h)));
}

int
lep_sasl_users_check(const lep_sasl_users_t *u, lep_bytes_t user, lep_bytes_t password)
{
    const lepi_user_t *e = lepi_users_find(u, user);
    if (!e)
        return LEP_ERR_NOT_FOUND;
    if (e->password) {
        /* Compare in time independent of where the first difference is. */
        if (e->password_len == password.len &&
            CRYPTO_memcmp(e->password, password.ptr ? password.ptr : (const uint8_t *)"",
                          password.len) == 0)
            return 0;
        return LEP_ERR_INVALID;
    }
    /* Salted only: salt the candidate with the strongest stored set. */
    for (int h = LEPI_HASH_SHA512; h >= LEPI_HASH_SHA1; h--) {
        if (!(e->has_scram & (1u << h)))
            continue;
        const lepi_scram_cred_t *cr = &e->scram[h];
        lepi_scram_cred_t t;
        int rc = lepi_scram_derive(&t, (lepi_hash_t)h, password, cr->salt, cr->salt_len,
                                   cr->iterations);
        if (rc)
            return rc;
        bool ok = CRYPTO_memcmp(t.stored_key, cr->stored_key, lepi_hash_len((lepi_hash_t)h)) == 0;
        OPENSSL_cleanse(&t, sizeof t);
        return ok ? 0 : LEP_ERR_INVALID;
    }
    return LEP_ERR_INVALID;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

typedef struct perr {
    char *buf;
    size_t len;
    const char *name;
} perr_t;

__attribute__((format(printf, 3, 4))) static int
fail(const perr_t *pe, size_t line, const char *fmt, ...)
{
    if (pe->buf && pe->len) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(pe->buf, pe->len, "%s:%zu: %s", pe->name ? pe->name : "users", line, msg);
    }
    return LEP_ERR_DECODE;
}

static char *
dup_n(const char *p, size_t n)
{
    char *s = lep_malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static lepi_user_t *
get_user(lep_sasl_users_t *u, const char *name, size_t len, int *rc)
{
    lepi_user_t *e = (lepi_user_t *)lepi_users_find(u, LEP_BYTES(name, len));
    if (e)
        return e;
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 8;
        lepi_user_t *v = lep_realloc(u->v, cap * sizeof *v);
        if (!v) {
            *rc = LEP_ERR_NOMEM;
            return NULL;
        }
        u->v = v;
        u->cap = cap;
    }
    e = &u->v[u->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = dup_n(name, len))) {
        *rc = LEP_ERR_NOMEM;
        return NULL;
    }
    e->name_len = len;
    u->n++;
    return e;
}

/* Splits off the field up to the next ':' (or the end). */
static bool
field(const char **p, const char *end, const char **f, size_t *n)
{
    if (*p > end)
        return false;
    const char *c = memchr(*p, ':', (size_t)(end - *p));
    *f = *p;
    *n = (size_t)((c ? c : end) - *p);
    *p = c ? c + 1 : end + 1;
    return true;
}

static int
parse_line(lep_sasl_users_t *u, const char *p, const char *end, size_t ln, const perr_t *pe)
{
    const char *user, *mech, *f;
    size_t ul, ml, fl;
    int rc = 0;

    if (!field(&p, end, &user, &ul) || p > end || ul == 0)
        return fail(pe, ln, "expected user:mechanism:...");
    if (!field(&p, end, &mech, &ml) || p > end)
        return fail(pe, ln, "expected user:mechanism:...");
    for (size_t i = 0; i < ul; i++)
        if ((unsigned char)user[i] < 0x20)
            return fail(pe, ln, "control character in user name");

    if (ml == 5 && memcmp(mech, "PLAIN", 5) == 0) {
        lepi_user_t *e = (lepi_user_t *)lepi_users_find(u, LEP_BYTES(user, ul));
        if (e && e->password)
            return fail(pe, ln, "second PLAIN entry for user '%.*s'", (int)ul, user);
        if (!(e = get_user(u, user, ul, &rc)))
            return rc;
        if (!(e->password = dup_n(p, (size_t)(end - p))))
            return LEP_ERR_NOMEM;
        e->password_len = (size_t)(end - p);
        return 0;
    }
    int h = lepi_scram_hash_of(mech, ml);
    if (h < 0)
        return fail(pe, ln, "unknown mechanism '%.*s'", (int)(ml > 40 ? 40 : ml), mech);

    lepi_scram_cred_t cr;
    memset(&cr, 0, sizeof cr);
    cr.hash = (lepi_hash_t)h;
    size_t hl = lepi_hash_len(cr.hash), n;

    if (!field(&p, end, &f, &fl) || p > end)
        return fail(pe, ln, "expected iterations:salt:stored-key:server-key");
    uint64_t it = 0;
    for (size_t i = 0; i < fl; i++) {
        if (f[i] < '0' || f[i] > '9' || it > 100000000)
            return fail(pe, ln, "bad iteration count");
        it = it * 10 + (uint64_t)(f[i] - '0');
    }
    if (fl == 0 || it == 0 || it > LEPI_SCRAM_MAX_ITER)
        return fail(pe, ln, "bad iteration count");
    cr.iterations = (uint32_t)it;
    if (!field(&p, end, &f, &fl) || p > end ||
        lepi_b64_decode(f, fl, cr.salt, sizeof cr.salt, &cr.salt_len) || cr.salt_len == 0)
        return fail(pe, ln, "bad salt (base64)");
    if (!field(&p, end, &f, &fl) || p > end ||
        lepi_b64_decode(f, fl, cr.stored_key, sizeof cr.stored_key, &n) || n != hl)
        return fail(pe, ln, "bad stored key (base64 of %zu bytes)", hl);
    if (!field(&p, end, &f, &fl) || p != end + 1 ||
        lepi_b64_decode(f, fl, cr.server_key, sizeof cr.server_key, &n) || n != hl)
        return fail(pe, ln, "bad server key (base64 of %zu bytes, last field)", hl);

    lepi_user_t *e = (lepi_user_t *)lepi_users_find(u, LEP_BYTES(user, ul));
    if (e && (e->has_scram & (1u << h)))
        return fail(pe, ln, "second %.*s entry for user '%.*s'", (int)ml, mech, (int)ul, user);
    if (!(e = get_user(u, user, ul, &rc)))
        return rc;
    e->scram[h] = cr;
    e->has_scram |= (uint8_t)(1u << h);
    OPENSSL_cleanse(&cr, sizeof cr);
    return 0;
}

static bool
blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int
lep_sasl_users_parse(lep_sasl_users_t **out, const char *text, size_t len, const char *name,
                     char *err, size_t errlen)
{
    perr_t pe = {err, errlen, name};
    lep_sasl_users_t *u;
    int rc = 0;

    if (!out || (!text && len))
        return LEP_ERR_INVALID;
    if (!(u = lep_calloc(1, sizeof *u)))
        return LEP_ERR_NOMEM;
    const char *p = text, *end = text + len;
    for (size_t ln = 1; p < end && rc == 0; ln++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *s = p;
        while (s < le && blank(*s))
            s++;
        while (le > s && blank(le[-1]))
            le--;
        if (s < le && *s != '#') {
            if (memchr(s, 0, (size_t)(le - s)))
                rc = fail(&pe, ln, "NUL byte");
            else
                rc = parse_line(u, s, le, ln, &pe);
        }
        p = nl ? nl + 1 : end;
    }
    if (rc) {
        lep_sasl_users_free(u);
        if (rc == LEP_ERR_NOMEM && err && errlen)
            snprintf(err, errlen, "%s: out of memory", name ? name : "users");
        return rc;
    }
    *out = u;
    return 0;
}

int
lep_sasl_users_load(lep_sasl_users_t **out, const char *path, char *err, size_t errlen)
{
    FILE *f;
    lep_buf_t b;
    int rc = 0;

    if (!out || !path)
        return LEP_ERR_INVALID;
    if (!(f = fopen(path, "rb"))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return LEP_ERR_IO;
    }
    lep_buf_init(&b);
    for (;;) {
        if ((rc = lep_buf_reserve(&b, 4096)))
            break;
        size_t n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
        if (n == 0) {
            if (ferror(f)) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: read error", path);
                rc = LEP_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = lep_sasl_users_parse(out, (const char *)b.data, b.len, path, err, errlen);
    if (b.data)
        OPENSSL_cleanse(b.data, b.cap);
    lep_buf_fini(&b);
    return rc;
}

int
lep_sasl_users_entry(lep_buf_t *out, const char *user, const char *mechanism,
                     const char *password, uint32_t iterations)
{
    int rc;
    if (!out || !user || !*user || !mechanism || !password || strpbrk(user, ":\n\r") ||
        strpbrk(password, "\n\r"))
        return LEP_ERR_INVALID;
    size_t mark = out->len;
    if (strcmp(mechanism, "PLAIN") == 0) {
        if ((rc = lep_buf_printf(out, "%s:PLAIN:%s\n", user, password)))
            out->len = mark;
        return rc;
    }
    int h = lepi_scram_hash_of(mechanism, strlen(mechanism));
    if (h < 0)
        return LEP_ERR_INVALID;
    if (iterations == 0)
        iterations = LEPI_SCRAM_DEFAULT_ITER;
    if (iterations > LEPI_SCRAM_MAX_ITER)
        return LEP_ERR_INVALID;
    uint8_t salt[16];
    lepi_scram_cred_t cr;
    if (RAND_bytes(salt, sizeof salt) != 1)
        return LEP_ERR_NOMEM;
    if ((rc = lepi_scram_derive(&cr, (lepi_hash_t)h, lep_bytes_str(password), salt, sizeof salt,
                                iterations)))
        return rc;
    size_t hl = lepi_hash_len((lepi_hash_t)h);
    if ((rc = lep_buf_printf(out, "%s:%s:%u:", user, mechanism, (unsigned)iterations)) ||
        (rc = lepi_b64_encode(out, salt, sizeof salt)) || (rc = lep_buf_append(out, ":", 1)) ||
        (rc = lepi_b64_encode(out, cr.stored_key, hl)) || (rc = lep_buf_append(out, ":", 1)) ||
        (rc = lepi_b64_encode(out, cr.server_key, hl)) || (rc = lep_buf_append(out, "\n", 1)))
        out->len = mark;
    OPENSSL_cleanse(&cr, sizeof cr);
    return rc;
}
