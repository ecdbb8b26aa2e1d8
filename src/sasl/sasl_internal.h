/* SASL internals shared by sasl.c, scram.c and users.c (and the tests). */
#ifndef LEPTON_SASL_INTERNAL_H
#define LEPTON_SASL_INTERNAL_H

#include <lepton/sasl.h>

#define LEPI_SCRAM_MAX_HASH 64   /* SHA-512 */
#define LEPI_SCRAM_MAX_SALT 128
#define LEPI_SCRAM_DEFAULT_ITER 4096
/* A server may make the client iterate at most this often: a hostile
 * server must not be able to stall the client for minutes. */
#define LEPI_SCRAM_MAX_ITER 10000000u

typedef enum lepi_hash {
    LEPI_HASH_SHA1 = 0,
    LEPI_HASH_SHA256 = 1,
    LEPI_HASH_SHA512 = 2,
} lepi_hash_t;

/* base64 with padding (RFC 4648).  decode: strict (alphabet, padding,
 * length a multiple of 4); returns 0 or LEP_ERR_DECODE / LEP_ERR_OVERFLOW
 * when more than cap bytes would result. */
int lepi_b64_encode(lep_buf_t *out, const uint8_t *p, size_t n);
int lepi_b64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen);

size_t lepi_hash_len(lepi_hash_t h);
/* "SCRAM-SHA-1" etc. -> hash; -1 when not a SCRAM name. */
int lepi_scram_hash_of(const char *mech, size_t len);

/* Salted credentials of one user for one SCRAM hash. */
typedef struct lepi_scram_cred {
    lepi_hash_t hash;
    uint32_t iterations;
    size_t salt_len;
    uint8_t salt[LEPI_SCRAM_MAX_SALT];
    uint8_t stored_key[LEPI_SCRAM_MAX_HASH];
    uint8_t server_key[LEPI_SCRAM_MAX_HASH];
} lepi_scram_cred_t;

/* Derives StoredKey and ServerKey from a password, salt and count. */
int lepi_scram_derive(lepi_scram_cred_t *cr, lepi_hash_t h, lep_bytes_t password,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations);

/* One SCRAM exchange, either side. */
typedef struct lepi_scram {
    lepi_hash_t hash;
    int state;
    lep_buf_t client_first_bare;
    lep_buf_t server_first;
    lep_buf_t nonce;        /* client: its nonce; server: the combined nonce */
    lep_buf_t gs2;          /* the client's gs2 header */
    lep_buf_t user;         /* server: unescaped user name; authzid below */
    lep_buf_t authzid;
    lepi_scram_cred_t cred; /* server: the user's keys */
    bool known_user;        /* server: false runs a fake exchange to the end */
    uint8_t server_sig[LEPI_SCRAM_MAX_HASH]; /* client: what the server must prove */
    char error[128];
} lepi_scram_t;

void lepi_scram_init(lepi_scram_t *s, lepi_hash_t h);
void lepi_scram_fini(lepi_scram_t *s);

/* Client.  nonce NULL: a random one.  Appends client-first-message. */
int lepi_scram_client_first(lepi_scram_t *s, const char *user, const char *authzid,
                            const char *nonce, lep_buf_t *out);
/* Takes server-first, appends client-final-message.  Errors:
 * LEP_ERR_DECODE (malformed / nonce mismatch / bad iteration count),
 * LEP_ERR_NOMEM; s->error says why. */
int lepi_scram_client_final(lepi_scram_t *s, lep_bytes_t password, lep_bytes_t server_first,
                            lep_buf_t *out);
/* Checks server-final: 0 when the server proved itself; LEP_ERR_INVALID
 * (wrong signature or "e=" error), LEP_ERR_DECODE. */
int lepi_scram_client_verify(lepi_scram_t *s, lep_bytes_t server_final);

/* Server.  Parses client-first (LEP_ERR_DECODE when malformed, with
 * s->error set); then the caller looks the user (s->user) up and calls
 * lepi_scram_server_first with the credentials (NULL: unknown user; the
 * exchange goes on with made-up keys and fails at the proof, so a client
 * cannot tell unknown users from bad passwords).  nonce NULL: random. */
int lepi_scram_server_parse_first(lepi_scram_t *s, lep_bytes_t client_first);
int lepi_scram_server_first(lepi_scram_t *s, const lepi_scram_cred_t *cred, const char *nonce,
                            lep_buf_t *out);
/* Takes client-final: 0 and server-final appended when the proof is
 * right; LEP_ERR_INVALID for a wrong proof (or unknown user), LEP_ERR_DECODE
 * for a malformed message. */
int lepi_scram_server_final(lepi_scram_t *s, lep_bytes_t client_final, lep_buf_t *out);

/* Users set lookups for the server. */
typedef struct lepi_user lepi_user_t;
const lepi_user_t *lepi_users_find(const lep_sasl_users_t *u, lep_bytes_t user);
/* SCRAM credentials for hash: the stored ones, or derived from a clear
 * password with a fresh salt.  LEP_ERR_NOT_FOUND when the user has none. */
int lepi_users_scram_cred(const lepi_user_t *e, lepi_hash_t h, uint32_t iterations,
                          lepi_scram_cred_t *out);

#endif
