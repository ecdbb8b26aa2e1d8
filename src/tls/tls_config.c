/* TLS configuration: one SSL_CTX shared by every connection that uses it. */
#include "tls_internal.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
lepi_tls_errors(char *out, size_t cap, const char *prefix)
{
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    unsigned long e;
    const char *data;
    int flags;

    /* Oldest first: the first error is usually the root cause. */
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *reason = ERR_reason_error_string(e);
        if (n >= cap)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ": " : "",
                              reason ? reason : "unknown error");
        if (n < cap && (flags & ERR_TXT_STRING) && data && *data)
            n += (size_t)snprintf(out + n, cap - n, " (%s)", data);
    }
}

static int
set_error(lep_tls_config_t *cfg, int rc, const char *what)
{
    lepi_tls_errors(cfg->error, sizeof cfg->error, what);
    return rc;
}

int
lep_tls_config_new(lep_tls_config_t **out, bool server)
{
    lep_tls_config_t *cfg;

    if (!out)
        return LEP_ERR_INVALID;
    *out = NULL;
    cfg = lep_calloc(1, sizeof *cfg);
    if (!cfg)
        return LEP_ERR_NOMEM;
    ERR_clear_error();
    cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!cfg->ctx) {
        ERR_clear_error();
        lep_free(cfg);
        return LEP_ERR_NOMEM;
    }
    atomic_init(&cfg->refs, 1);
    atomic_init(&cfg->frozen, 0);
    cfg->server = server;
    cfg->verify = server ? LEP_TLS_VERIFY_NONE : LEP_TLS_VERIFY_PEER_NAME;
    SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION);
    /* Renegotiation is a DoS lever and AMQP never needs it. */
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections hold no 34 KB of record buffers. */
    SSL_CTX_set_mode(cfg->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (server) {
        /* Needed for resumption when client certificates are verified. */
        static const unsigned char sid[] = "lepton";
        SSL_CTX_set_session_id_context(cfg->ctx, sid, sizeof sid - 1);
    } else {
        /* We keep no client session cache; nothing to resume. */
        SSL_CTX_set_session_cache_mode(cfg->ctx, SSL_SESS_CACHE_OFF);
    }
    *out = cfg;
    return 0;
}

void
lepi_tls_config_ref(lep_tls_config_t *cfg)
{
    int expected = 0;

    atomic_fetch_add(&cfg->refs, 1);
    /* The first layer completes the config; layers on other threads wait
     * for it rather than race on the SSL_CTX. */
    if (atomic_compare_exchange_strong(&cfg->frozen, &expected, 1)) {
        if (!cfg->has_ca && !cfg->server && cfg->verify != LEP_TLS_VERIFY_NONE) {
            /* No CA named: trust the system's, as a browser would. */
            SSL_CTX_set_default_verify_paths(cfg->ctx);
            ERR_clear_error();
        }
        atomic_store(&cfg->frozen, 2);
    } else {
        while (atomic_load(&cfg->frozen) != 2)
            sched_yield();
    }
}

void
lep_tls_config_free(lep_tls_config_t *cfg)
{
    if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
        return;
    SSL_CTX_free(cfg->ctx);
    lep_free(cfg);
}

const char *
lep_tls_config_error(const lep_tls_config_t *cfg)
{
    return cfg ? cfg->error : "";
}

static int
check_settable(lep_tls_config_t *cfg)
{
    if (!cfg)
        return LEP_ERR_INVALID;
    if (atomic_load(&cfg->frozen) != 0) {
        snprintf(cfg->error, sizeof cfg->error, "config is in use by a connection");
        return LEP_ERR_STATE;
    }
    cfg->error[0] = '\0';
    ERR_clear_error();
    return 0;
}

static int
readable(lep_tls_config_t *cfg, const char *path)
{
    if (access(path, R_OK) != 0) {
        snprintf(cfg->error, sizeof cfg->error, "cannot read %s", path);
        return LEP_ERR_IO;
    }
    return 0;
}

/* Never let OpenSSL fall back to prompting on the terminal. */
static int
password_cb(char *buf, int size, int rwflag, void *userdata)
{
    const char *pw = userdata;
    size_t n;

    if (!pw || size <= 0)
        return -1;
    n = strlen(pw);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, pw, n);
    return (int)n;
}

int
lep_tls_config_set_cert(lep_tls_config_t *cfg, const char *chain_file, const char *key_file,
                        const char *password)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (!chain_file || !key_file)
        return LEP_ERR_INVALID;
    if ((rc = readable(cfg, chain_file)) != 0 || (rc = readable(cfg, key_file)) != 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(cfg->ctx, chain_file) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "certificate chain");
    SSL_CTX_set_default_passwd_cb(cfg->ctx, password_cb);
    SSL_CTX_set_default_passwd_cb_userdata(cfg->ctx, (void *)password);
    rc = SSL_CTX_use_PrivateKey_file(cfg->ctx, key_file, SSL_FILETYPE_PEM);
    /* The password is not kept past this call. */
    SSL_CTX_set_default_passwd_cb_userdata(cfg->ctx, NULL);
    if (rc != 1)
        return set_error(cfg, LEP_ERR_INVALID, "private key");
    if (SSL_CTX_check_private_key(cfg->ctx) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "private key does not match the certificate");
    cfg->has_cert = true;
    return 0;
}

int
lep_tls_config_set_ca(lep_tls_config_t *cfg, const char *ca_file, const char *ca_dir)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (!ca_file && !ca_dir)
        return LEP_ERR_INVALID;
    if (ca_file && (rc = readable(cfg, ca_file)) != 0)
        return rc;
    if (SSL_CTX_load_verify_locations(cfg->ctx, ca_file, ca_dir) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "CA");
    if (cfg->server && ca_file) {
        /* Tells clients which issuers we accept, so they can pick. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(cfg->ctx, names);
        ERR_clear_error();
    }
    cfg->has_ca = true;
    return 0;
}

int
lep_tls_config_set_verify(lep_tls_config_t *cfg, lep_tls_verify_t mode)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (mode < LEP_TLS_VERIFY_NONE || mode > LEP_TLS_VERIFY_PEER_NAME)
        return LEP_ERR_INVALID;
    cfg->verify = mode;
    return 0;
}

int
lep_tls_config_set_mode(lep_tls_config_t *cfg, lep_tls_mode_t mode)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (mode < LEP_TLS_MODE_PURE || mode > LEP_TLS_MODE_DETECT ||
        (mode == LEP_TLS_MODE_DETECT && !cfg->server))
        return LEP_ERR_INVALID;
    cfg->mode = mode;
    return 0;
}

int
lep_tls_config_set_allow_plain(lep_tls_config_t *cfg, bool allow)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (!cfg->server)
        return LEP_ERR_INVALID;
    cfg->allow_plain = allow;
    return 0;
}

int
lep_tls_config_set_min_version(lep_tls_config_t *cfg, int version)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (version != LEP_TLS_1_2 && version != LEP_TLS_1_3)
        return LEP_ERR_INVALID;
    if (SSL_CTX_set_min_proto_version(cfg->ctx, version) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "protocol version");
    return 0;
}

int
lep_tls_config_set_ciphers(lep_tls_config_t *cfg, const char *tls12, const char *tls13)
{
    int rc;

    if ((rc = check_settable(cfg)) != 0)
        return rc;
    if (tls12 && SSL_CTX_set_cipher_list(cfg->ctx, tls12) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "TLS 1.2 cipher list");
    if (tls13 && SSL_CTX_set_ciphersuites(cfg->ctx, tls13) != 1)
        return set_error(cfg, LEP_ERR_INVALID, "TLS 1.3 cipher suites");
    return 0;
}
