/* lepton broker: a store-and-forward AMQP 1.0 message broker as a library.
 *
 * Queues (anycast: competing consumers), topics (multicast with wildcard
 * subscriptions, durable subscriptions), dynamic temporary queues, the
 * anonymous relay, dead-lettering, priorities, flow control toward
 * producers, a journal with group commit that loses no accepted durable
 * message, SASL and TLS listeners with per-user access rules, AMQP
 * management on "$management" and Prometheus metrics over HTTP.
 *
 *   lep_broker_config_t cfg;
 *   lep_broker_config_init(&cfg);
 *   lep_broker_config_load(&cfg, "broker.json");    // optional
 *   lep_broker_t *b;
 *   lep_broker_new(&b, &cfg);                      // opens the store, recovers
 *   lep_broker_run(b);                             // until lep_broker_stop()
 *   lep_broker_free(b);
 *   lep_broker_config_fini(&cfg);
 *
 * tools/lepton-broker.c is the program around it; docs/broker.md documents
 * the configuration file. */
#ifndef LEPTON_BROKER_H
#define LEPTON_BROKER_H

#include <lepton/common.h>
#include <lepton/tls.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

/* What a full queue does with more messages. */
typedef enum lep_overflow {
    LEP_OVERFLOW_BLOCK = 0, /* producers get no more credit until it drains (default) */
    LEP_OVERFLOW_REJECT,    /* messages are rejected with amqp:resource-limit-exceeded */
    LEP_OVERFLOW_DROP_HEAD, /* the oldest message is dead-lettered to make room */
} lep_overflow_t;

/* Limits and behaviour of one queue (or subscription). */
typedef struct lep_queue_policy {
    uint64_t max_depth;          /* messages; 0: unlimited */
    uint64_t max_bytes;          /* message bytes; 0: unlimited */
    lep_overflow_t overflow;
    uint32_t max_delivery_count; /* deliveries before dead-lettering; 0: unlimited */
    char *dead_letter_address;   /* NULL: the broker's default; "": none (dropped) */
    bool durable;                /* durable messages are journalled */
} lep_queue_policy_t;

/* A queue made at start (config "queues"), with its own policy. */
typedef struct lep_queue_config {
    char *name;                  /* the full address, e.g. "queue.orders" */
    lep_queue_policy_t policy;
} lep_queue_config_t;

/* Access rights, a bit set. */
enum {
    LEP_ACL_SEND = 1,    /* attach a sender to the address (and route to it via the relay) */
    LEP_ACL_RECEIVE = 2, /* attach a receiver (consume, browse, subscribe) */
    LEP_ACL_CREATE = 4,  /* auto-create the address, create durable subscriptions */
    LEP_ACL_MANAGE = 8,  /* use $management */
    LEP_ACL_ALL = 15,
};

/* One access rule.  Rules are read in order, right by right: for each
 * LEP_ACL_* right, the first rule whose user and address match and that
 * names the right (in deny or allow; deny is checked first) decides it.  A
 * right no matching rule names is refused, so with any rules at all the
 * default is deny (with none at all, everything is allowed).
 * Patterns: "*" alone matches everything; otherwise a trailing '*' matches
 * any suffix ("queue.orders*"); anything else must match exactly ('*'
 * elsewhere is refused by lep_broker_config_check).  user "*" is every
 * user, "anonymous" included; "anonymous" is the ANONYMOUS login (and a
 * connection that skipped SASL). */
typedef struct lep_acl_rule {
    char *user;
    char *address;
    unsigned allow;              /* LEP_ACL_* bits granted */
    unsigned deny;               /* LEP_ACL_* bits refused (checked first) */
} lep_acl_rule_t;

typedef struct lep_broker_config {
    /* Listeners: amqp[s]://host:port URLs.  Default one:
     * amqp://127.0.0.1:5672. */
    char **listen;
    size_t nlisten;
    /* The next lep_broker_config_add_listen() replaces the list instead of
     * adding to it: true after init and after a file's "listen", so
     * --listen flags given after the file is loaded override it. */
    bool listen_replace;
    char *data_dir;              /* journal directory; default "./lepton-data" */
    bool fsync;                  /* default true; false only for tests and benchmarks */
    char *container_id;          /* default "lepton-broker" */
    int threads;                 /* proactor threads; 0: the number of CPUs */
    /* Logging: "error", "warn", "info" (default), "debug", "trace". */
    char *log_level;
    /* TLS for amqps listeners. */
    char *tls_cert, *tls_key, *tls_key_password, *tls_ca;
    bool tls_require_client_cert;
    int tls_min_version;         /* LEP_TLS_1_2 (default) or LEP_TLS_1_3: "1.2", "1.3" */
    char *tls_ciphers;           /* OpenSSL cipher list for TLS 1.2; NULL: OpenSSL's default */
    char *tls_ciphersuites;      /* TLS 1.3 cipher suites ("A:B"); NULL: OpenSSL's default;
                                  * "": no TLS 1.3 */
    /* SASL. */
    char *users_file;            /* lep_sasl_users file; NULL: no users */
    char *sasl_mechanisms;       /* NULL: the library's choice */
    bool allow_anonymous;        /* default: true when no users file, else false */
    bool allow_anonymous_set;    /* allow_anonymous was given; unset, the parse and
                                  * lep_broker_config_check() derive it from users_file */
    bool allow_plain_without_tls; /* default false */
    /* Limits.  init fills in the defaults; 0 means the default too, and
     * lep_broker_config_check() puts the default in its place. */
    uint32_t max_connections;          /* default 10000 */
    uint32_t max_connections_per_user; /* default (0): unlimited */
    uint32_t max_frame_size;           /* default 65536; at least 512 */
    uint64_t max_message_size;         /* default 100 MiB */
    uint32_t max_sessions, max_links;  /* per connection / per session; 0: the
                                        * engine's defaults (256, 1024) */
    /* Addresses. */
    char *queue_prefix;          /* default "queue." */
    char *topic_prefix;          /* default "topic." */
    bool auto_create;            /* other names become queues on attach; default true */
    char *dead_letter_address;   /* default "queue.DLQ"; "" disables */
    lep_queue_policy_t queue_defaults;        /* defaults: 1,000,000 messages, 1 GiB, block, 10 deliveries, durable */
    lep_queue_policy_t subscription_defaults; /* topic subscriptions: 100,000, 256 MiB, drop-head,
                                               * 10 deliveries, durable */
    lep_queue_config_t *queues;  /* made at start */
    size_t nqueues;
    lep_acl_rule_t *acl;         /* none: everything allowed to everyone logged in */
    size_t nacl;
    /* Observability. */
    char *metrics_listen;        /* "127.0.0.1:9100": Prometheus /metrics over HTTP; NULL: off */
    /* The file it came from, and why loading failed ("FILE:LINE:COL: ..."). */
    char *path;
    char error[512];
} lep_broker_config_t;

/* Fills in the defaults; 0 or LEP_ERR_NOMEM.  Call lep_broker_config_fini
 * afterwards in every case. */
LEP_EXPORT int lep_broker_config_init(lep_broker_config_t *c);
LEP_EXPORT void lep_broker_config_fini(lep_broker_config_t *c);
/* Reads a configuration file (JSON with comments, docs/broker.md) over the
 * values already in c: keys present replace, keys absent keep, null puts
 * the built-in default back.  Relative paths in the file (data_dir,
 * users_file, tls_cert, tls_key, tls_ca) are taken relative to the file's
 * directory.  Unknown keys, wrong types and bad values are errors,
 * "FILE:LINE:COL: message" in c->error; c may then be partly updated.
 * Returns 0, LEP_ERR_IO (unreadable), LEP_ERR_LIMIT (over 1 MiB, or nested
 * too deep), LEP_ERR_DECODE (syntax), LEP_ERR_INVALID, LEP_ERR_NOMEM.
 * Sets c->path. */
LEP_EXPORT int lep_broker_config_load(lep_broker_config_t *c, const char *path);
/* The same from text (len bytes); name (may be NULL) is the FILE of the
 * messages.  Relative paths are kept as written. */
LEP_EXPORT int lep_broker_config_parse(lep_broker_config_t *c, const char *text, size_t len,
                                       const char *name);
/* Checks the whole configuration (URLs valid, certificate and key loadable,
 * the users file parses, ACL rules well formed, limits coherent) and
 * settles what depends on other settings: 0 limits become their defaults,
 * allow_anonymous follows users_file unless set.  Call it after the last
 * setter and before lep_broker_new().  0, LEP_ERR_INVALID with c->error
 * set ("listen[1] \"amqps://...\": ..."), LEP_ERR_NOMEM. */
LEP_EXPORT int lep_broker_config_check(lep_broker_config_t *c);
/* The server TLS configuration the amqps listeners use, made from c's
 * tls_* settings: certificate and key, CAs (file or hashed directory),
 * client certificates asked for with tls_ca and required with
 * tls_require_client_cert, minimum version, ciphers.  *out gets a new
 * config (one reference: lep_tls_config_free).  0, LEP_ERR_INVALID with
 * c->error naming the setting ("tls_ciphers \"X\": ..."), LEP_ERR_NOMEM.
 * lep_broker_config_check() and lep_broker_new() use it, so a setting
 * OpenSSL refuses stops the start, not each client. */
LEP_EXPORT int lep_broker_config_tls(lep_broker_config_t *c, lep_tls_config_t **out);
/* Setters for command-line flags (strings copied).  add_listen checks the
 * URL (LEP_ERR_INVALID, c->error says why); its first call after init or
 * a file's "listen" replaces the list, later calls add to it.  set_str
 * sets any string field of c (value NULL: unset); 0 or LEP_ERR_NOMEM. */
LEP_EXPORT int lep_broker_config_add_listen(lep_broker_config_t *c, const char *url);
LEP_EXPORT int lep_broker_config_set_str(char **field, const char *value);
/* A byte size as the file writes it, for flags too: digits with an
 * optional unit, "B", "K"/"KiB", "M"/"MiB", "G"/"GiB", "T"/"TiB" (powers
 * of 1024) or "kB", "MB", "GB", "TB" (powers of 1000), case-insensitive,
 * blanks allowed before the unit.  0 or LEP_ERR_INVALID (syntax,
 * overflow). */
LEP_EXPORT int lep_broker_parse_size(const char *s, uint64_t *out);

/* What rule set grants user on address: the LEP_ACL_* bits allowed.
 * No rules at all: LEP_ACL_ALL for everyone. */
LEP_EXPORT unsigned lep_acl_check(const lep_acl_rule_t *rules, size_t n, const char *user,
                                  const char *address);

/* ------------------------------------------------------------------ */
/* The broker                                                          */

typedef struct lep_broker lep_broker_t;

/* Makes the broker from cfg (borrowed for the call; everything needed is
 * copied): opens and recovers the store, makes the configured queues,
 * starts listening.  On failure err (may be NULL) says why. */
LEP_EXPORT int lep_broker_new(lep_broker_t **out, const lep_broker_config_t *cfg, char *err,
                              size_t errlen);
/* Serves until lep_broker_stop(): runs cfg->threads proactor threads
 * (the calling thread is one of them).  0 or a negative LEP_ERR_*. */
LEP_EXPORT int lep_broker_run(lep_broker_t *b);
/* Any thread, also a signal handler: closes listeners and connections
 * gracefully, flushes the journal; run() then returns. */
LEP_EXPORT void lep_broker_stop(lep_broker_t *b);
/* After run() returned (or instead of it). */
LEP_EXPORT void lep_broker_free(lep_broker_t *b);
/* The port listener i (in configuration order) is bound to (for port 0). */
LEP_EXPORT uint16_t lep_broker_port(const lep_broker_t *b, size_t i);
/* The metrics HTTP port, 0 when off. */
LEP_EXPORT uint16_t lep_broker_metrics_port(const lep_broker_t *b);

#ifdef __cplusplus
}
#endif
#endif
