/* Shared between the TLS config and layer files. */
#ifndef LEPTON_TLS_INTERNAL_H
#define LEPTON_TLS_INTERNAL_H

#include <lepton/tls.h>

#include <openssl/ssl.h>
#include <stdatomic.h>

struct lep_tls_config {
    atomic_int refs;
    bool server;
    /* 0 while being configured; 1 while the first layer finishes it;
     * 2 once shared (setters refuse from 1 on). */
    atomic_int frozen;
    bool has_cert;
    bool has_ca;
    bool allow_plain;
    lep_tls_mode_t mode;
    lep_tls_verify_t verify;
    SSL_CTX *ctx;
    char error[256];
};

/* Takes a reference for a layer and freezes the config. */
void lepi_tls_config_ref(lep_tls_config_t *cfg);
/* Formats OpenSSL's error queue (then clears it) after prefix into out. */
void lepi_tls_errors(char *out, size_t cap, const char *prefix);

/* The layer's operations (tests drive a layer through them directly). */
extern const lep_layer_ops_t lepi_tls_ops;
/* True once the peer's close_notify arrived (tests). */
bool lepi_tls_peer_closed(const lep_tls_t *t);

#endif
