/* lepton SASL: authentication as a layer of the engine's transport
 * (OASIS AMQP 1.0 part 5, section 5.3).
 *
 * A connection with SASL speaks, in each direction,
 *
 *     "AMQP" 3 1 0 0, SASL frames (type 1), "AMQP" 0 1 0 0, AMQP frames
 *
 * The SASL layer sits between the network (or the TLS layer) and the AMQP
 * framing.  It handles the SASL header and frames itself and, once the
 * outcome is ok, passes every further byte through unchanged.  Until then
 * it holds the AMQP bytes the engine wants to send (the client's header
 * and open may be queued before authentication finishes; they leave only
 * after the outcome is ok, and are dropped when authentication fails).
 *
 * Mechanisms: ANONYMOUS, PLAIN, EXTERNAL, SCRAM-SHA-1, SCRAM-SHA-256 and
 * SCRAM-SHA-512 (RFC 5802 / RFC 7677; OpenSSL primitives; channel binding
 * is not supported: the client sends the gs2 header "n,,", the server
 * never offers -PLUS variants and refuses a "p=" header).
 *
 * SASLprep (RFC 4013) is limited: user names and passwords are used as the
 * UTF-8 bytes given, without normalisation or mapping.  For printable ASCII
 * (what interoperable deployments use) that is exactly what SASLprep gives;
 * for other text both ends must use the same normalisation form.
 *
 * Failures.  An authentication failure (no mechanism in common, a
 * mechanism not offered, bad credentials, a malformed PLAIN or SCRAM
 * message, a SCRAM server that cannot prove it knows the password) makes
 * the server send a sasl-outcome with code auth (1), and both ends fail the
 * transport with "amqp:unauthorized-access" and a description saying why
 * (lep_sasl_error, lep_conn_local_condition).  Malformed SASL frames or a
 * SASL frame out of order make the server answer sys-perm (3) and fail
 * with "amqp:decode-error" (an undecodable body) or
 * "amqp:connection:framing-error" (a bad protocol header or frame header,
 * a non-SASL frame, an unexpected SASL frame); a client fails the same way
 * without sending anything.  A server that requires SASL and gets the plain
 * AMQP header answers with the SASL header and fails with
 * "amqp:unauthorized-access" (spec 5.3).  After a failure nothing of the
 * AMQP layer reaches the peer.  The peer's input never crashes or aborts.
 *
 * Frame sizes: SASL frames precede the open, so the spec caps them at
 * 512 bytes (MIN-MAX-FRAME-SIZE).  Ours stay below that unless PLAIN
 * credentials or names are very long, in which case they are sent anyway
 * (refusing would be worse; lenient peers such as Proton accept them).  We
 * accept SASL frames up to 64 KiB from peers, and refuse larger ones.
 *
 * SCRAM on the wire: the server sends server-final in the sasl-outcome's
 * additional-data (RFC 4422 "additional data with success"); the client
 * accepts it there or as a last sasl-challenge (answered with an empty
 * sasl-response), and refuses an ok outcome without a valid one.
 *
 * Typical use:
 *
 *   lep_conn_new(&c, &copts);
 *   lep_sasl_client_opts_t so;
 *   lep_sasl_client_opts_init(&so);
 *   so.username = "guest"; so.password = "guest";
 *   lep_sasl_client_add(c, &so, &sasl);   // then the TLS layer, if any
 *   ...
 *   if (lep_sasl_outcome(sasl) == LEP_SASL_CODE_OK) ... lep_sasl_mechanism(sasl)
 */
#ifndef LEPTON_SASL_H
#define LEPTON_SASL_H

#include <lepton/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The SASL state of one connection.  Owned by the connection it was added
 * to (freed by lep_conn_free); the pointer stays valid until then. */
typedef struct lep_sasl lep_sasl_t;

/* A set of users with their credentials (see lep_sasl_users_parse).
 * Read-only once parsed: one set may serve connections on any threads. */
typedef struct lep_sasl_users lep_sasl_users_t;

/* ------------------------------------------------------------------ */
/* Client                                                              */

typedef struct lep_sasl_client_opts {
    /* Mechanisms we may use, space separated, like Proton's
     * sasl_allowed_mechs.  NULL: "SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1
     * PLAIN ANONYMOUS".  EXTERNAL is used only when listed here.  Of the
     * mechanisms the server offers, we pick the strongest we allow and have
     * credentials for: EXTERNAL > SCRAM-SHA-512 > SCRAM-SHA-256 >
     * SCRAM-SHA-1 > PLAIN > ANONYMOUS (SCRAM and PLAIN need a username and a
     * password; EXTERNAL needs an encrypted connection, whose TLS client
     * certificate is the identity).  With a username and password set,
     * ANONYMOUS is used only when listed here: a client given credentials
     * fails rather than silently connecting as nobody (e.g. when the
     * server offers PLAIN and ANONYMOUS without TLS). */
    const char *mechanisms;
    const char *username;       /* authentication identity; may be NULL */
    const char *password;       /* may be NULL */
    const char *authzid;        /* authorization identity; NULL: none */
    const char *hostname;       /* sasl-init hostname; NULL: none */
    /* PLAIN sends the password in the clear: it is used only when the
     * connection is encrypted (lep_conn_encrypted) unless this is set. */
    bool allow_insecure;
} lep_sasl_client_opts_t;

/* Fills o with the defaults (all NULL / false). */
LEP_EXPORT void lep_sasl_client_opts_init(lep_sasl_client_opts_t *o);

/* Adds the client SASL layer to c (before any TLS layer, and before any
 * byte is fed or output).  The options' strings are copied.  *out (may be
 * NULL) receives the SASL state, owned by c.
 * Returns 0, LEP_ERR_NOMEM, LEP_ERR_INVALID (o NULL or an unknown name in
 * o->mechanisms), or what lep_conn_add_layer returns. */
LEP_EXPORT int lep_sasl_client_add(lep_conn_t *c, const lep_sasl_client_opts_t *o,
                                   lep_sasl_t **out);

/* ------------------------------------------------------------------ */
/* Server                                                              */

/* Decides on credentials the server cannot check itself.  Called for
 *   PLAIN      user, password, authzid (may be empty) from the client;
 *   ANONYMOUS  user is the client's trace information (may be empty);
 *   EXTERNAL   user is lep_conn_user(c) (set by the TLS layer from the
 *              client certificate), authzid as the client asked.
 * Views valid for the call only.  Returns true to accept.  With a users
 * set and no callback, PLAIN is checked against the set, ANONYMOUS is
 * accepted when offered, EXTERNAL when the TLS layer set an identity.
 * When both are given, PLAIN tries the users set first, then the callback.
 * SCRAM is checked against the users set only (it needs the salted keys). */
typedef bool (*lep_sasl_authenticate_fn)(void *ctx, lep_conn_t *c, const char *mechanism,
                                         lep_bytes_t user, lep_bytes_t password,
                                         lep_bytes_t authzid);

typedef struct lep_sasl_server_opts {
    /* Mechanisms to offer, space separated.  NULL: SCRAM-SHA-512,
     * SCRAM-SHA-256 and SCRAM-SHA-1 when users is set; PLAIN when users or
     * authenticate is set; EXTERNAL when the connection has a TLS identity
     * when the client's header arrives; ANONYMOUS when nothing else is. */
    const char *mechanisms;
    /* Borrowed: must outlive every connection it is given to. */
    const lep_sasl_users_t *users;
    lep_sasl_authenticate_fn authenticate;
    void *auth_ctx;
    /* PLAIN is offered on an unencrypted connection only with this. */
    bool allow_insecure;
    /* A client sending the plain AMQP header (no SASL) is let through
     * unauthenticated instead of refused. */
    bool optional;
    /* PBKDF2 iterations for SCRAM with users whose password is stored in
     * the clear (test files).  0: 4096. */
    uint32_t scram_iterations;
} lep_sasl_server_opts_t;

LEP_EXPORT void lep_sasl_server_opts_init(lep_sasl_server_opts_t *o);

/* Adds the server SASL layer to c.  Strings are copied; users is
 * borrowed.  Returns as lep_sasl_client_add. */
LEP_EXPORT int lep_sasl_server_add(lep_conn_t *c, const lep_sasl_server_opts_t *o,
                                   lep_sasl_t **out);

/* ------------------------------------------------------------------ */
/* Outcome                                                             */

/* -1 while authentication is in progress; otherwise the sasl-code sent or
 * received (LEP_SASL_CODE_OK, _AUTH, _SYS, _SYS_PERM, _SYS_TEMP).  A
 * client that failed before any outcome (no mechanism in common, a
 * malformed frame, the server's credentials proof wrong) reports
 * LEP_SASL_CODE_AUTH or LEP_SASL_CODE_SYS_PERM as it would have sent. */
LEP_EXPORT int lep_sasl_outcome(const lep_sasl_t *s);
/* The mechanism chosen ("PLAIN", ...), or NULL before it is. */
LEP_EXPORT const char *lep_sasl_mechanism(const lep_sasl_t *s);
/* Server: the authenticated identity once the outcome is ok (also given to
 * lep_conn_set_user); "anonymous" for ANONYMOUS.  Client: the username.
 * NULL when none.  Valid while the connection lives. */
LEP_EXPORT const char *lep_sasl_user(const lep_sasl_t *s);
/* Why authentication failed (the transport error's description), or NULL. */
LEP_EXPORT const char *lep_sasl_error(const lep_sasl_t *s);
/* The hostname of sasl-init: the client's option, or on a server what
 * the client sent (the virtual host it wants; NULL when none).  Valid
 * while the connection lives. */
LEP_EXPORT const char *lep_sasl_hostname(const lep_sasl_t *s);
/* True when a server let a client through without SASL (opts.optional). */
LEP_EXPORT bool lep_sasl_skipped(const lep_sasl_t *s);

/* ------------------------------------------------------------------ */
/* Users files                                                         */

/* Text, one entry a line; '#' starts a comment line; blank lines and
 * leading/trailing blanks are ignored.  Fields are separated by ':'; user
 * names must not contain ':' and are used as given (no SASLprep).
 *
 *   user:SCRAM-SHA-256:iterations:salt-b64:stored-key-b64:server-key-b64
 *       salted SCRAM credentials (RFC 5802 StoredKey and ServerKey, base64
 *       with padding); also SCRAM-SHA-1 and SCRAM-SHA-512.  A user may have
 *       one line per SCRAM mechanism.  PLAIN logins are checked against
 *       them too (the password is salted and compared).
 *   user:PLAIN:password
 *       a password in the clear (test files only); everything after the
 *       second ':' is the password, ':' included.  Serves PLAIN and every
 *       SCRAM mechanism (salted on the fly with a fresh salt).
 *
 * A user with a clear password and salted lines uses the salted lines for
 * their mechanisms.  Two lines for the same user and mechanism are an
 * error.  A server offering SCRAM-SHA-512 by default makes clients that
 * can pick it: give every user salted lines for each SCRAM mechanism
 * offered (or a clear password), or restrict opts.mechanisms. */

/* Parses text (len bytes, need not be NUL-terminated).  name is used in
 * error messages (may be NULL).  On error, err (may be NULL) receives
 * "name:LINE: what is wrong" (truncated to errlen) and *out is untouched.
 * Returns 0, LEP_ERR_DECODE (syntax), LEP_ERR_NOMEM. */
LEP_EXPORT int lep_sasl_users_parse(lep_sasl_users_t **out, const char *text, size_t len,
                                    const char *name, char *err, size_t errlen);
/* Reads and parses a file.  LEP_ERR_IO when it cannot be read. */
LEP_EXPORT int lep_sasl_users_load(lep_sasl_users_t **out, const char *path, char *err,
                                   size_t errlen);
LEP_EXPORT void lep_sasl_users_free(lep_sasl_users_t *u);
LEP_EXPORT size_t lep_sasl_users_count(const lep_sasl_users_t *u); /* distinct users */
/* True when user has credentials usable with mechanism ("PLAIN",
 * "SCRAM-SHA-256", ...). */
LEP_EXPORT bool lep_sasl_users_has(const lep_sasl_users_t *u, lep_bytes_t user,
                                   const char *mechanism);
/* Checks a clear password: 0 when it matches, LEP_ERR_NOT_FOUND for an
 * unknown user, LEP_ERR_INVALID for a wrong password. */
LEP_EXPORT int lep_sasl_users_check(const lep_sasl_users_t *u, lep_bytes_t user,
                                    lep_bytes_t password);
/* Appends one users-file line (with '\n') for user and mechanism
 * ("SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512": salted with a fresh
 * random 16-byte salt and iterations, 0 meaning 4096; "PLAIN": the clear
 * password) to out.  Returns 0, LEP_ERR_INVALID (bad name, ':' or newline
 * in user, newline in password), LEP_ERR_NOMEM. */
LEP_EXPORT int lep_sasl_users_entry(lep_buf_t *out, const char *user, const char *mechanism,
                                    const char *password, uint32_t iterations);

#ifdef __cplusplus
}
#endif
#endif
