/* lepton TLS: OpenSSL 3 as a transport layer of the engine (sans-IO).
 *
 * The layer sits between the socket bytes and whatever is above it (SASL,
 * AMQP).  It never touches a socket: ciphertext comes in through the
 * engine's lep_conn_feed() and goes out through lep_conn_output(); OpenSSL
 * works over memory BIOs.
 *
 *   lep_tls_config_t *cfg;
 *   lep_tls_config_new(&cfg, false);                 // client
 *   lep_tls_config_set_ca(cfg, "ca.pem", NULL);
 *   lep_conn_new(&c, &opts);
 *   lep_tls_add(c, cfg, "broker.example", NULL);     // after lep_sasl_add
 *   lep_tls_config_free(cfg);                        // the layer keeps a reference
 *
 * Two framings (OASIS AMQP 1.0 part 5):
 *   - LEP_TLS_MODE_PURE: TLS from the first byte (amqps, port 5671);
 *   - LEP_TLS_MODE_AMQP_HEADER: the TLS protocol header "AMQP" 2 1 0 0 is
 *     exchanged in clear (5.2.1), then TLS starts.  The client waits for
 *     the server's header before it sends its ClientHello;
 *   - LEP_TLS_MODE_DETECT (servers): either of the two, told apart by the
 *     first byte (0x16, a TLS handshake record, or 'A').
 *
 * Ending.  Once AMQP is closed both ways and our close frame has passed,
 * the layer writes close_notify.  A peer's EOF is a clean end after its
 * close_notify, or after its AMQP close frame (authenticated by TLS, so
 * nothing can have been cut off); any other EOF is an error.
 *
 * Errors reach the connection through lep_conn_transport_error():
 * certificate problems (verification failed, no client certificate when
 * one is required, host-name mismatch, the peer rejecting ours) as
 * LEP_TLS_COND_UNAUTHORIZED; everything else (malformed records, protocol
 * version or cipher mismatch, an EOF that may be a truncation, a wrong
 * protocol header) as LEP_TLS_COND_ERROR.  The description carries
 * OpenSSL's reason.  These are local conditions: a TLS failure leaves no
 * channel to send an AMQP close on (OpenSSL's alert tells the peer).
 *
 * Threads: a config may be shared by connections on different threads once
 * it is complete (reference count is atomic); setters are not thread-safe
 * and fail with LEP_ERR_STATE once a layer uses the config. */
#ifndef LEPTON_TLS_H
#define LEPTON_TLS_H

#include <lepton/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEP_TLS_COND_UNAUTHORIZED "amqp:unauthorized-access"
#define LEP_TLS_COND_ERROR "lepton:tls"

typedef struct lep_tls_config lep_tls_config_t;
typedef struct lep_tls lep_tls_t;

typedef enum lep_tls_mode {
    LEP_TLS_MODE_PURE = 0,       /* default: TLS from the first byte */
    LEP_TLS_MODE_AMQP_HEADER,    /* "AMQP" 2 1 0 0 in clear, then TLS */
    LEP_TLS_MODE_DETECT,         /* servers: accept either of the above */
} lep_tls_mode_t;

typedef enum lep_tls_verify {
    /* Client: accept any server certificate (tests only!).  Server: do
     * not ask for a client certificate (server default). */
    LEP_TLS_VERIFY_NONE = 0,
    /* Server: ask for a client certificate, verify it if one is sent, go
     * on without one.  Client: same as LEP_TLS_VERIFY_PEER. */
    LEP_TLS_VERIFY_OPTIONAL,
    /* Verify the peer's chain against the CAs.  Server: a client
     * certificate is required. */
    LEP_TLS_VERIFY_PEER,
    /* Client: the chain and the host name given to lep_tls_add (client
     * default).  Server: same as LEP_TLS_VERIFY_PEER. */
    LEP_TLS_VERIFY_PEER_NAME,
} lep_tls_verify_t;

/* Protocol versions, as OpenSSL numbers them. */
#define LEP_TLS_1_2 0x0303
#define LEP_TLS_1_3 0x0304

/* ------------------------------------------------------------------ */
/* Configuration, shared by many connections                           */

/* A new config with the defaults: minimum TLS 1.2, OpenSSL's ciphers,
 * pure TLS, clients verify the server and its name against the system's
 * CAs until lep_tls_config_set_ca() names others; servers ask for no
 * client certificate.  The caller holds one reference. */
LEP_EXPORT int lep_tls_config_new(lep_tls_config_t **out, bool server);
/* Drops the caller's reference; layers using the config keep theirs. */
LEP_EXPORT void lep_tls_config_free(lep_tls_config_t *cfg);

/* Our certificate chain (PEM: leaf first) and private key (PEM), the key
 * optionally encrypted with password (NULL: none; never prompts).  Files
 * are read now and the password is not kept.
 * LEP_ERR_IO: unreadable, LEP_ERR_INVALID: bad file, wrong password, or a
 * key that does not match the certificate. lep_tls_config_error() says
 * which. */
LEP_EXPORT int lep_tls_config_set_cert(lep_tls_config_t *cfg, const char *chain_file,
                                       const char *key_file, const char *password);
/* Trusted CAs for verifying the peer: a PEM file and/or a hashed
 * directory (c_rehash), either may be NULL. */
LEP_EXPORT int lep_tls_config_set_ca(lep_tls_config_t *cfg, const char *ca_file,
                                     const char *ca_dir);
LEP_EXPORT int lep_tls_config_set_verify(lep_tls_config_t *cfg, lep_tls_verify_t mode);
LEP_EXPORT int lep_tls_config_set_mode(lep_tls_config_t *cfg, lep_tls_mode_t mode);
/* Servers: also accept a peer that does not do TLS at all (its first
 * bytes are the AMQP or SASL header); the layer then passes bytes through
 * and the connection is not marked encrypted.  Off by default. */
LEP_EXPORT int lep_tls_config_set_allow_plain(lep_tls_config_t *cfg, bool allow);
/* LEP_TLS_1_2 (default) or LEP_TLS_1_3. */
LEP_EXPORT int lep_tls_config_set_min_version(lep_tls_config_t *cfg, int version);
/* OpenSSL cipher strings; NULL leaves OpenSSL's default.  tls12: the
 * TLS 1.2 cipher list, tls13: the TLS 1.3 cipher suites. */
LEP_EXPORT int lep_tls_config_set_ciphers(lep_tls_config_t *cfg, const char *tls12,
                                          const char *tls13);
/* The reason for the last failed setter, or "" (valid until the next
 * call on cfg). */
LEP_EXPORT const char *lep_tls_config_error(const lep_tls_config_t *cfg);

/* ------------------------------------------------------------------ */
/* The layer                                                           */

/* Adds a TLS layer to c nearest the network (add it after SASL).  The
 * layer takes a reference to cfg (the caller may free its own at once).
 * peer_hostname (copied; may be NULL): for clients, the name sent as SNI
 * (not for IP literals) and checked against the certificate under
 * LEP_TLS_VERIFY_PEER_NAME, which then requires it; ignored by servers.
 * out (may be NULL) gets the layer for the accessors below; it is owned by
 * the connection and valid until lep_conn_free().  LEP_ERR_INVALID: a
 * client config on a server connection or the reverse, or host-name
 * checking without a host name; LEP_ERR_STATE: a server config without a
 * certificate, or the connection has started (lep_conn_add_layer). */
LEP_EXPORT int lep_tls_add(lep_conn_t *c, lep_tls_config_t *cfg, const char *peer_hostname,
                           lep_tls_t **out);

/* True once the handshake has completed. */
LEP_EXPORT bool lep_tls_established(const lep_tls_t *t);
/* True when the layer passes plain bytes (a server with allow_plain whose
 * peer did not start TLS). */
LEP_EXPORT bool lep_tls_plain(const lep_tls_t *t);
/* Negotiated protocol ("TLSv1.3") and cipher ("TLS_AES_256_GCM_SHA384"),
 * NULL before the handshake.  Static strings. */
LEP_EXPORT const char *lep_tls_protocol(const lep_tls_t *t);
LEP_EXPORT const char *lep_tls_cipher(const lep_tls_t *t);
/* The peer certificate's subject in RFC 2253 form ("CN=x,O=y"), NULL if
 * the peer sent none.  Valid while the layer lives.  On a server with a
 * verified client certificate this is also the connection's user
 * (lep_conn_user(), for SASL EXTERNAL). */
LEP_EXPORT const char *lep_tls_peer_subject(const lep_tls_t *t);
/* True when the peer sent a certificate and it verified. */
LEP_EXPORT bool lep_tls_peer_verified(const lep_tls_t *t);
/* Servers: the host name the client sent in SNI, NULL if none. */
LEP_EXPORT const char *lep_tls_sni(const lep_tls_t *t);

#ifdef __cplusplus
}
#endif
#endif
