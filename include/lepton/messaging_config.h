/* lepton messaging: connection addresses and connect.json configuration.
 *
 * Two pieces the container uses before it opens a socket:
 *   - lep_url_t: an AMQP URL  amqp[s]://[user[:password]@]host[:port][/address]
 *   - lep_connect_config_t: Proton-compatible connect.json, used when the
 *     application connects without a URL.
 * Both are caller-embedded structs (_init / _fini) whose string fields are
 * owned by the struct.  Failures return a negative LEP_ERR_* code and leave
 * a human-readable message in the struct's `error` field. */
#ifndef LEPTON_MESSAGING_CONFIG_H
#define LEPTON_MESSAGING_CONFIG_H

#include <lepton/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LEP_AMQP_PORT 5672
#define LEP_AMQPS_PORT 5671

/* A parsed AMQP URL.  All strings point into one buffer owned by the struct
 * and stay valid until lep_url_fini().  user, password and address are
 * percent-decoded; an absent part is NULL (an empty one is "").  host has no
 * IPv6 brackets; inside brackets it is decoded too, for RFC 6874 zone ids
 * ("[fe80::1%25eth0]" gives "fe80::1%eth0", as getaddrinfo wants). */
typedef struct lep_url {
    const char *scheme;   /* "amqp" or "amqps"; "amqp" when the URL has none */
    const char *user;
    const char *password;
    const char *host;
    const char *port_str; /* as written, or the scheme's default ("5672") */
    uint16_t port;        /* numeric port; 0 is allowed (listen on any port) */
    const char *address;  /* after the first '/' following the authority */
    bool tls;             /* scheme is amqps */
    char error[160];      /* set when lep_url_parse fails */
    char *buf_;           /* private: the owned storage */
} lep_url_t;

/* Parses s.  Accepts "amqp://..." and "amqps://...", and like Proton a bare
 * "[user[:pass]@]host[:port][/address]" (scheme amqp).  The port may be a
 * number 0-65535 or the service names "amqp" / "amqps".  Returns 0, or
 * LEP_ERR_INVALID (message in out->error) for an unknown scheme, an empty
 * host or one with spaces/control characters, a bad or out-of-range port, an unterminated IPv6 bracket or a bad
 * percent escape; LEP_ERR_NOMEM.  out needs no prior init; call
 * lep_url_fini() afterwards in every case. */
LEP_EXPORT int lep_url_parse(const char *s, lep_url_t *out);
LEP_EXPORT void lep_url_fini(lep_url_t *u);

/* connect.json, with Proton's keys and defaults:
 *   scheme "amqps", host "localhost", port = the scheme's port (a number or
 *   a string such as "amqp" / "5672"), user / password none,
 *   sasl.enabled true (Proton spells it "enable"; both are accepted),
 *   sasl.mechanisms none (library default; a string of space-separated
 *   names or a list of strings), sasl.allow_insecure false,
 *   tls.ca / tls.cert / tls.key none, tls.verify true.
 * As in Proton, null means "the default", JavaScript comments are allowed,
 * and a "tls" object is an error unless the scheme is "amqps".
 * Unknown keys and wrong types are errors ("FILE:LINE:COL: message").
 * String fields are owned by the struct (NULL when absent). */
typedef struct lep_connect_config {
    char *scheme;
    char *host;
    uint16_t port;
    char *user;
    char *password;
    bool sasl_enabled;
    char *sasl_mechanisms;   /* space-separated, NULL = library default */
    bool sasl_allow_insecure;
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
    bool tls_verify;
    char *path;              /* the file it came from, NULL for defaults */
    char error[512];
} lep_connect_config_t;

/* Fills in the defaults; 0 or LEP_ERR_NOMEM.  Call lep_connect_config_fini
 * afterwards in every case. */
LEP_EXPORT int lep_connect_config_init(lep_connect_config_t *c);
LEP_EXPORT void lep_connect_config_fini(lep_connect_config_t *c);

/* Parses JSON text (name is used in error messages) over the values already
 * in c (normally the defaults).  On failure error holds the message and c
 * may be partly updated.
 * Returns LEP_ERR_DECODE (syntax), LEP_ERR_INVALID (unknown key, wrong type,
 * bad value), LEP_ERR_LIMIT, LEP_ERR_NOMEM. */
LEP_EXPORT int lep_connect_config_parse(lep_connect_config_t *c, const char *text,
                                        size_t len, const char *name);
/* Reads and parses the file at path; LEP_ERR_IO if it cannot be read. */
LEP_EXPORT int lep_connect_config_load(lep_connect_config_t *c, const char *path);

/* Where lep_connect_config_find looks; each NULL field is skipped.  Lets
 * tests replace the process environment. */
typedef struct lep_config_env {
    const char *connect_file; /* $MESSAGING_CONNECT_FILE */
    const char *cwd;          /* directory for ./connect.json */
    const char *home;         /* $HOME: HOME/.config/messaging/connect.json */
    const char *sysconf_dir;  /* "/etc": DIR/messaging/connect.json */
} lep_config_env_t;

/* Proton's search order: connect_file if set (it must exist), else
 * cwd/connect.json, home/.config/messaging/connect.json,
 * sysconf_dir/messaging/connect.json; the first that exists is loaded.
 * env NULL means the real environment (getenv, ".", $HOME, "/etc").
 * Returns 0 when a file was loaded (c->path names it), LEP_ERR_NOT_FOUND
 * when none exists (c keeps its defaults), or a load error. */
LEP_EXPORT int lep_connect_config_find(lep_connect_config_t *c, const lep_config_env_t *env);

#ifdef __cplusplus
}
#endif
#endif
