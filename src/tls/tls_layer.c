/* The TLS layer: OpenSSL over two memory BIOs, driven by the engine.
 *
 * Network bytes go into rbio, OpenSSL's records come out of wbio.  The
 * layer never blocks: whatever OpenSSL cannot finish now it finishes on the
 * next input.  Before TLS starts the layer may handle the clear-text AMQP
 * TLS header (spec 5.2.1) or, on a server, tell TLS from plain AMQP. */
#include "common/common_internal.h"
#include "tls_internal.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const uint8_t TLS_HEADER[8] = {'A', 'M', 'Q', 'P', 2, 1, 0, 0};

/* What the bytes are before and around TLS. */
enum state {
    ST_DETECT,      /* server: nothing seen yet; first byte(s) decide */
    ST_HEADER_IN,   /* collecting the peer's 8-byte protocol header */
    ST_HEADER_OUT,  /* client, header mode: our header not yet written */
    ST_TLS,         /* OpenSSL owns the stream */
    ST_PLAIN,       /* server with allow_plain: pass-through */
    ST_FAILED,
};

struct lep_tls {
    lep_tls_config_t *cfg;
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    BIO *wbio; /* owned by ssl */
    enum state state;
    uint8_t hdr[8];
    uint8_t hdr_len;
    bool started;          /* handshake kicked off */
    bool established;
    bool verified;
    bool close_notify_in;  /* peer's close_notify seen */
    bool close_notify_out; /* ours sent */
    bool got_tls_bytes;    /* anything fed to OpenSSL yet */
    char *subject;
    char *sni;
};

/* ------------------------------------------------------------------ */
/* Failures                                                             */

/* Reasons that mean "a certificate was not acceptable", on either side
 * (ours failing verification, or the peer's alert about ours). */
static bool
cert_reason(int reason)
{
    switch (reason) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return true;
    default:
        return false;
    }
}

static void
fail(lep_tls_t *t, lep_conn_t *c, const char *cond, const char *desc)
{
    t->state = ST_FAILED;
    lep_conn_transport_error(c, cond, desc);
}

/* An OpenSSL call failed: pick the condition and describe it. */
static int
fail_ssl(lep_tls_t *t, lep_conn_t *c, int ssl_err)
{
    char head[160], desc[512];
    const char *cond = LEP_TLS_COND_ERROR;
    unsigned long first = ERR_peek_error();
    long vr = SSL_get_verify_result(t->ssl);
    size_t n;

    if (first && ERR_GET_LIB(first) == ERR_LIB_SSL && cert_reason(ERR_GET_REASON(first)))
        cond = LEP_TLS_COND_UNAUTHORIZED;
    n = (size_t)snprintf(head, sizeof head, "TLS %s failed",
                         t->established ? "connection" : "handshake");
    if (!t->established && vr != X509_V_OK && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER)) {
        /* OpenSSL's own message only says "certificate verify failed". */
        cond = LEP_TLS_COND_UNAUTHORIZED;
        n += (size_t)snprintf(head + n, sizeof head - n, ": peer certificate: %s",
                              X509_verify_cert_error_string(vr));
    }
    if (!first && n < sizeof head)
        snprintf(head + n, sizeof head - n, ": %s",
                 ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "protocol error");
    lepi_tls_errors(desc, sizeof desc, head);
    ERR_clear_error();
    fail(t, c, cond, desc);
    return LEP_ERR_FRAMING;
}

/* ------------------------------------------------------------------ */
/* OpenSSL pumping                                                      */

/* Moves OpenSSL's pending records to `down`. */
static int
flush(lep_tls_t *t, lep_buf_t *down)
{
    size_t pending;

    while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
        int rc = lep_buf_reserve(down, pending);
        int n;
        if (rc != 0)
            return rc;
        n = BIO_read(t->wbio, down->data + down->len, (int)(pending > INT32_MAX ? INT32_MAX : pending));
        if (n <= 0)
            break;
        down->len += (size_t)n;
    }
    return 0;
}

static int
on_established(lep_tls_t *t, lep_conn_t *c)
{
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    const char *sni;

    t->established = true;
    lep_conn_set_encrypted(c, true);
    if (peer) {
        BIO *mem = BIO_new(BIO_s_mem());
        char *p = NULL;
        long len = 0;
        if (mem) {
            X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
            len = BIO_get_mem_data(mem, &p);
        }
        t->subject = lep_malloc(len > 0 ? (size_t)len + 1 : 1);
        if (!t->subject || !mem) {
            BIO_free(mem);
            return LEP_ERR_NOMEM;
        }
        if (len > 0)
            memcpy(t->subject, p, (size_t)len);
        t->subject[len > 0 ? len : 0] = '\0';
        BIO_free(mem);
        /* With VERIFY_NONE OpenSSL still records the chain's result. */
        t->verified = SSL_get_verify_result(t->ssl) == X509_V_OK &&
                      (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER);
    }
    if (t->cfg->server) {
        if ((sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)) != NULL &&
            !(t->sni = lepi_strdup(sni)))
            return LEP_ERR_NOMEM;
        /* The identity SASL EXTERNAL offers. */
        if (t->verified && lep_conn_set_user(c, lep_bytes_str(t->subject)) != 0)
            return LEP_ERR_NOMEM;
    }
    ERR_clear_error();
    return 0;
}

static int
start_handshake(lep_tls_t *t)
{
    if (t->started)
        return 0;
    t->started = true;
    if (t->cfg->server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return 0;
}

/* Drives the handshake, then decrypts all that can be decrypted. */
static int
pump(lep_tls_t *t, lep_conn_t *c, lep_buf_t *up, lep_buf_t *down)
{
    int rc, err;

    start_handshake(t);
    ERR_clear_error();
    if (!t->established) {
        rc = SSL_do_handshake(t->ssl);
        if (rc != 1) {
            err = SSL_get_error(t->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return flush(t, down);
            flush(t, down); /* the alert, so the peer learns why */
            return fail_ssl(t, c, err);
        }
        if ((rc = on_established(t, c)) != 0) {
            fail(t, c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "TLS: out of memory");
            return rc;
        }
    }
    while (!t->close_notify_in) {
        size_t n = 0;
        if ((rc = lep_buf_reserve(up, 16384)) != 0)
            return rc;
        rc = SSL_read_ex(t->ssl, up->data + up->len, up->cap - up->len, &n);
        if (rc == 1) {
            up->len += n;
            continue;
        }
        err = SSL_get_error(t->ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) {
            /* The peer is done writing; ours follows when our side
             * closes (tls_output), after our AMQP close frame. */
            t->close_notify_in = true;
            break;
        }
        flush(t, down);
        return fail_ssl(t, c, err);
    }
    return flush(t, down);
}

/* ------------------------------------------------------------------ */
/* Before TLS: the protocol header                                      */

static bool
is_amqp_plain_header(const uint8_t *h)
{
    /* AMQP (0) or SASL (3); the layers above check the version. */
    return memcmp(h, "AMQP", 4) == 0 && (h[4] == 0 || h[4] == 3);
}

static void
header_text(char *out, size_t cap, const uint8_t *h, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, (h[i] >= 0x20 && h[i] < 0x7f) ? "%c" : "\\x%02x",
                              h[i]);
    out[k] = '\0';
}

static int
bad_header(lep_tls_t *t, lep_conn_t *c, const char *what)
{
    char desc[160], hex[64];

    header_text(hex, sizeof hex, t->hdr, t->hdr_len);
    snprintf(desc, sizeof desc, "%s: got \"%s\"", what, hex);
    fail(t, c, LEP_TLS_COND_ERROR, desc);
    return LEP_ERR_FRAMING;
}

/* The server has a whole header (or knows enough from its first byte). */
static int
server_header(lep_tls_t *t, lep_conn_t *c, lep_buf_t *up, lep_buf_t *down)
{
    lep_tls_mode_t mode = t->cfg->mode;
    int rc;

    if (memcmp(t->hdr, TLS_HEADER, 8) == 0 && mode != LEP_TLS_MODE_PURE) {
        if ((rc = lep_buf_append(down, TLS_HEADER, 8)) != 0)
            return rc;
        t->state = ST_TLS;
        return 0;
    }
    if (t->cfg->allow_plain && is_amqp_plain_header(t->hdr)) {
        /* Not ours: the layer above reads the header itself. */
        if ((rc = lep_buf_append(up, t->hdr, t->hdr_len)) != 0)
            return rc;
        t->state = ST_PLAIN;
        return 0;
    }
    if (mode != LEP_TLS_MODE_PURE) {
        /* Spec 5.2.1: answer with the header we do support, then close. */
        lep_buf_append(down, TLS_HEADER, 8);
    }
    return bad_header(t, c, "TLS required");
}

/* ------------------------------------------------------------------ */
/* Layer ops                                                            */

static int
tls_input(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used, lep_buf_t *up,
          lep_buf_t *down)
{
    lep_tls_t *t = ctx;
    size_t off = 0;
    int rc;

    *used = len; /* everything is taken: OpenSSL or the header buffer keeps it */
    if (t->state == ST_FAILED)
        return LEP_ERR_FRAMING;
    if (t->state == ST_HEADER_OUT && len > 0)
        return bad_header(t, c, "peer spoke before our TLS header");

    if (t->state == ST_DETECT && len > 0) {
        /* 0x16: a TLS handshake record; anything else must be a header. */
        if (in[0] == 0x16 && t->cfg->mode != LEP_TLS_MODE_AMQP_HEADER)
            t->state = ST_TLS;
        else
            t->state = ST_HEADER_IN;
    }
    if (t->state == ST_HEADER_IN) {
        size_t n = 8 - t->hdr_len;
        if (n > len)
            n = len;
        memcpy(t->hdr + t->hdr_len, in, n);
        t->hdr_len = (uint8_t)(t->hdr_len + n);
        off = n;
        /* Refuse early on what cannot become a header. */
        if (memcmp(t->hdr, "AMQP", t->hdr_len < 4 ? t->hdr_len : 4) != 0) {
            if (t->cfg->server)
                return server_header(t, c, up, down);
            return bad_header(t, c, "peer did not answer the TLS header");
        }
        if (t->hdr_len < 8)
            return 0;
        if (t->cfg->server) {
            if ((rc = server_header(t, c, up, down)) != 0)
                return rc;
        } else {
            if (memcmp(t->hdr, TLS_HEADER, 8) != 0)
                return bad_header(t, c, "peer refused the TLS header");
            t->state = ST_TLS;
        }
    }
    if (t->state == ST_PLAIN)
        return lep_buf_append(up, in + off, len - off);
    if (t->state != ST_TLS)
        return 0;
    if (!t->got_tls_bytes && off < len) {
        /* amqps:// pointed at a plain AMQP port: say so, not "wrong
         * version number". */
        t->got_tls_bytes = true;
        if (!t->cfg->server && len - off >= 4 && memcmp(in + off, "AMQP", 4) == 0) {
            fail(t, c, LEP_TLS_COND_ERROR,
                 "TLS handshake failed: the peer answered with an AMQP header, not TLS "
                 "(a port without TLS?)");
            return LEP_ERR_FRAMING;
        }
    }
    if (t->close_notify_in)
        return 0; /* nothing may follow close_notify; don't hoard it */
    while (off < len) {
        int n = len - off > (1u << 30) ? (1 << 30) : (int)(len - off);
        if (BIO_write(t->rbio, in + off, n) != n) {
            ERR_clear_error();
            return LEP_ERR_NOMEM;
        }
        off += (size_t)n;
    }
    return pump(t, c, up, down);
}

static int
tls_output(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used, lep_buf_t *down)
{
    lep_tls_t *t = ctx;
    int rc, err;

    *used = 0;
    switch (t->state) {
    case ST_FAILED:
        return 0; /* already reported; what was queued (an alert) still goes */
    case ST_PLAIN:
        *used = len;
        return lep_buf_append(down, in, len);
    case ST_HEADER_OUT:
        /* Our header first; TLS waits for the server's answer. */
        if ((rc = lep_buf_append(down, TLS_HEADER, 8)) != 0)
            return rc;
        t->state = ST_HEADER_IN;
        return 0;
    case ST_TLS:
        break;
    default:
        return 0; /* servers wait for the peer; so does a client's header */
    }
    if (t->close_notify_out) {
        /* Nobody will read it any more. */
        *used = len;
        return 0;
    }
    if (!t->established) {
        /* The client speaks first: output is the first call it gets. */
        if (!t->cfg->server && !t->started) {
            lep_buf_t none;
            lep_buf_init(&none);
            rc = pump(t, c, &none, down);
            lep_buf_fini(&none);
            if (rc != 0)
                return rc;
        }
        if (!t->established)
            return 0;
    }
    ERR_clear_error();
    while (*used < len) {
        size_t n = 0;
        rc = SSL_write_ex(t->ssl, in + *used, len - *used, &n);
        if (rc != 1) {
            err = SSL_get_error(t->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                break;
            flush(t, down);
            return fail_ssl(t, c, err);
        }
        *used += n;
    }
    /* All the engine wrote has passed and AMQP is closed both ways (our
     * close frame went out with this or an earlier call): end TLS
     * cleanly.  Not earlier: a peer like Proton stops writing when it
     * reads close_notify, and would never send its own close frame. */
    if (*used == len && lep_conn_local_state(c) == LEP_STATE_CLOSED &&
        lep_conn_remote_state(c) == LEP_STATE_CLOSED) {
        t->close_notify_out = true;
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    return flush(t, down);
}

static bool
tls_input_closed(void *ctx, lep_conn_t *c)
{
    lep_tls_t *t = ctx;

    if (t->state == ST_PLAIN || t->close_notify_in)
        return true;
    /* The peer's AMQP close frame arrived authenticated: nothing can have
     * been cut off, whatever the peer's TLS stack did at the end. */
    if (t->established && lep_conn_remote_state(c) == LEP_STATE_CLOSED)
        return true;
    if (t->state != ST_FAILED)
        fail(t, c, LEP_TLS_COND_ERROR,
             t->established ? "TLS: peer closed without close_notify (possible truncation)"
                            : "TLS: peer closed during the handshake");
    return false;
}

static void
tls_free(void *ctx)
{
    lep_tls_t *t = ctx;

    if (!t)
        return;
    SSL_free(t->ssl);
    lep_tls_config_free(t->cfg);
    lep_free(t->subject);
    lep_free(t->sni);
    lep_free(t);
}

const lep_layer_ops_t lepi_tls_ops = {
    .name = "tls",
    .input = tls_input,
    .output = tls_output,
    .input_closed = tls_input_closed,
    .free = tls_free,
};

/* ------------------------------------------------------------------ */
/* Construction                                                         */

static bool
is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int
setup_client(lep_tls_t *t, const char *host)
{
    lep_tls_verify_t v = t->cfg->verify;

    if (v == LEP_TLS_VERIFY_NONE) {
        SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
        if (v == LEP_TLS_VERIFY_PEER_NAME) {
            X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
            if (!host || !*host)
                return LEP_ERR_INVALID;
            if (is_ip_literal(host)) {
                if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
                    return LEP_ERR_INVALID;
            } else {
                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
                    return LEP_ERR_INVALID;
            }
        }
    }
    /* RFC 6066: SNI carries DNS names only. */
    if (host && *host && !is_ip_literal(host) && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return LEP_ERR_INVALID;
    t->state = t->cfg->mode == LEP_TLS_MODE_AMQP_HEADER ? ST_HEADER_OUT : ST_TLS;
    return 0;
}

static void
setup_server(lep_tls_t *t)
{
    int mode;

    switch (t->cfg->verify) {
    case LEP_TLS_VERIFY_NONE: mode = SSL_VERIFY_NONE; break;
    case LEP_TLS_VERIFY_OPTIONAL: mode = SSL_VERIFY_PEER; break;
    default: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; break;
    }
    SSL_set_verify(t->ssl, mode, NULL);
    if (t->cfg->mode == LEP_TLS_MODE_PURE && !t->cfg->allow_plain)
        t->state = ST_TLS;
    else if (t->cfg->mode == LEP_TLS_MODE_AMQP_HEADER)
        t->state = ST_HEADER_IN;
    else
        t->state = ST_DETECT;
}

int
lep_tls_add(lep_conn_t *c, lep_tls_config_t *cfg, const char *peer_hostname, lep_tls_t **out)
{
    lep_tls_t *t;
    int rc;

    if (out)
        *out = NULL;
    if (!c || !cfg || cfg->server != lep_conn_is_server(c))
        return LEP_ERR_INVALID;
    if (cfg->server && !cfg->has_cert)
        return LEP_ERR_STATE;
    t = lep_calloc(1, sizeof *t);
    if (!t)
        return LEP_ERR_NOMEM;
    lepi_tls_config_ref(cfg);
    t->cfg = cfg;
    rc = LEP_ERR_NOMEM;
    ERR_clear_error();
    t->ssl = SSL_new(cfg->ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        goto fail;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (cfg->server)
        setup_server(t);
    else if ((rc = setup_client(t, peer_hostname)) != 0)
        goto fail;
    if ((rc = lep_conn_add_layer(c, &lepi_tls_ops, t)) != 0)
        goto fail;
    if (out)
        *out = t;
    return 0;
fail:
    ERR_clear_error();
    tls_free(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

bool
lep_tls_established(const lep_tls_t *t)
{
    return t && t->established;
}

bool
lep_tls_plain(const lep_tls_t *t)
{
    return t && t->state == ST_PLAIN;
}

const char *
lep_tls_protocol(const lep_tls_t *t)
{
    return t && t->established ? SSL_get_version(t->ssl) : NULL;
}

const char *
lep_tls_cipher(const lep_tls_t *t)
{
    return t && t->established ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *
lep_tls_peer_subject(const lep_tls_t *t)
{
    return t ? t->subject : NULL;
}

bool
lep_tls_peer_verified(const lep_tls_t *t)
{
    return t && t->verified;
}

bool
lepi_tls_peer_closed(const lep_tls_t *t)
{
    return t->close_notify_in;
}

const char *
lep_tls_sni(const lep_tls_t *t)
{
    return t ? t->sni : NULL;
}
