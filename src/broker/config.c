/* The broker's configuration: defaults, the JSON file (docs/broker.md),
 * command-line setters and the coherence check run before start.
 *
 * The file's keys are the struct's field names, so the header, the file
 * and the documentation read the same.  Parsing reports what it can
 * place in the file (types, ranges, names) with FILE:LINE:COL; what
 * depends on several settings or on other files is left to
 * lep_broker_config_check(), which also sees values set by flags. */
#include "common/common_internal.h"
#include <lepton/broker.h>
#include <lepton/messaging_config.h>
#include <lepton/sasl.h>
#include <lepton/tls.h>

#include "broker/metrics_http.h"
#include "messaging/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A broker configuration is a few kilobytes; anything huge is a mistake. */
#define MAX_CONFIG_FILE (1u << 20)
#define MAX_THREADS 1024
#define MIN_FRAME_SIZE 512 /* AMQP's MIN-MAX-FRAME-SIZE */
#define MIB (1024ull * 1024)

#define DEFAULT_LISTEN "amqp://127.0.0.1:5672"
#define DEFAULT_MAX_CONNECTIONS 10000u
#define DEFAULT_MAX_FRAME_SIZE 65536u
#define DEFAULT_MAX_MESSAGE_SIZE (100 * MIB)

static const lep_queue_policy_t queue_policy_default = {
    .max_depth = 1000000,
    .max_bytes = 1024 * MIB,
    .overflow = LEP_OVERFLOW_BLOCK,
    .max_delivery_count = 10,
    .dead_letter_address = NULL,
    .durable = true,
};

static const lep_queue_policy_t subscription_policy_default = {
    .max_depth = 100000,
    .max_bytes = 256 * MIB,
    .overflow = LEP_OVERFLOW_DROP_HEAD,
    .max_delivery_count = 10,
    .dead_letter_address = NULL,
    .durable = true,
};

static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const overflow_names[] = {"block", "reject", "drop-head", NULL};
static const char *const mechanism_names[] = {"ANONYMOUS",     "PLAIN",         "EXTERNAL",
                                              "SCRAM-SHA-1",   "SCRAM-SHA-256", "SCRAM-SHA-512",
                                              NULL};
static const struct {
    const char *name;
    unsigned bits;
} right_names[] = {
    {"send", LEP_ACL_SEND},     {"receive", LEP_ACL_RECEIVE}, {"create", LEP_ACL_CREATE},
    {"manage", LEP_ACL_MANAGE}, {"all", LEP_ACL_ALL},
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static int __attribute__((format(printf, 3, 4)))
fail(lep_broker_config_t *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
    return rc;
}

static int
list_index(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return i;
    return -1;
}

/* The next space-separated word at *p: its start (NULL when none is
 * left) and *len its length; *p moves past it. */
static const char *
next_word(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    *len = strcspn(s, " ");
    *p = s + *len;
    return s;
}

/* allow_anonymous unless given: only when there is no users_file. */
static void
derive_allow_anonymous(lep_broker_config_t *c)
{
    if (!c->allow_anonymous_set)
        c->allow_anonymous = c->users_file == NULL;
}

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lep_free(v[i]);
    lep_free(v);
}

static void
free_queues(void *v, size_t n)
{
    lep_queue_config_t *q = v;
    for (size_t i = 0; i < n; i++) {
        lep_free(q[i].name);
        lep_free(q[i].policy.dead_letter_address);
    }
    lep_free(q);
}

static void
free_acl(void *v, size_t n)
{
    lep_acl_rule_t *r = v;
    for (size_t i = 0; i < n; i++) {
        lep_free(r[i].user);
        lep_free(r[i].address);
    }
    lep_free(r);
}

/* Copies src's scalars and a new copy of its dead-letter address. */
static int
policy_copy(lep_queue_policy_t *dst, const lep_queue_policy_t *src)
{
    char *dla = NULL;
    if (src->dead_letter_address && !(dla = lepi_strdup(src->dead_letter_address)))
        return LEP_ERR_NOMEM;
    lep_free(dst->dead_letter_address);
    *dst = *src;
    dst->dead_letter_address = dla;
    return 0;
}

static int
set_listen_default(lep_broker_config_t *c)
{
    char **v = lep_malloc(sizeof *v);
    if (!v || !(v[0] = lepi_strdup(DEFAULT_LISTEN))) {
        lep_free(v);
        return LEP_ERR_NOMEM;
    }
    free_strv(c->listen, c->nlisten);
    c->listen = v;
    c->nlisten = 1;
    c->listen_replace = true;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Top-level keys                                                      */

typedef enum kind {
    K_STR,      /* any string, or null */
    K_NESTR,    /* a non-empty string */
    K_PATH,     /* a file name, relative to the configuration file */
    K_BOOL,
    K_INT,      /* int, min..max */
    K_U32,      /* uint32_t, min..max */
    K_SIZE32,   /* uint32_t bytes: a number or "64KiB" */
    K_SIZE64,   /* uint64_t bytes */
    K_LOGLEVEL, /* one of log_levels */
    K_MECHS,    /* SASL mechanism names: "A B" or ["A", "B"] */
    K_HOSTPORT, /* "host:port" */
    K_TLSVER,   /* int LEP_TLS_1_x, written "1.2" or "1.3" */
    K_ANON,     /* allow_anonymous and allow_anonymous_set */
    K_LISTEN,
    K_POLICY,
    K_QUEUES,
    K_ACL,
} kind_t;

typedef struct field {
    const char *key;
    kind_t kind;
    size_t off;
    const char *sdef; /* default of string kinds */
    uint64_t idef;    /* default of numbers and booleans */
    uint64_t min, max;
} field_t;

#define OFF(f) offsetof(lep_broker_config_t, f)

static const field_t fields[] = {
    {"listen", K_LISTEN, OFF(listen), NULL, 0, 0, 0},
    {"data_dir", K_PATH, OFF(data_dir), "./lepton-data", 0, 0, 0},
    {"fsync", K_BOOL, OFF(fsync), NULL, 1, 0, 0},
    {"container_id", K_NESTR, OFF(container_id), "lepton-broker", 0, 0, 0},
    {"threads", K_INT, OFF(threads), NULL, 0, 0, MAX_THREADS},
    {"log_level", K_LOGLEVEL, OFF(log_level), "info", 0, 0, 0},
    {"tls_cert", K_PATH, OFF(tls_cert), NULL, 0, 0, 0},
    {"tls_key", K_PATH, OFF(tls_key), NULL, 0, 0, 0},
    {"tls_key_password", K_STR, OFF(tls_key_password), NULL, 0, 0, 0},
    {"tls_ca", K_PATH, OFF(tls_ca), NULL, 0, 0, 0},
    {"tls_require_client_cert", K_BOOL, OFF(tls_require_client_cert), NULL, 0, 0, 0},
    {"tls_min_version", K_TLSVER, OFF(tls_min_version), NULL, LEP_TLS_1_2, 0, 0},
    {"tls_ciphers", K_STR, OFF(tls_ciphers), NULL, 0, 0, 0},
    {"tls_ciphersuites", K_STR, OFF(tls_ciphersuites), NULL, 0, 0, 0},
    {"users_file", K_PATH, OFF(users_file), NULL, 0, 0, 0},
    {"sasl_mechanisms", K_MECHS, OFF(sasl_mechanisms), NULL, 0, 0, 0},
    {"allow_anonymous", K_ANON, OFF(allow_anonymous), NULL, 0, 0, 0},
    {"allow_plain_without_tls", K_BOOL, OFF(allow_plain_without_tls), NULL, 0, 0, 0},
    {"max_connections", K_U32, OFF(max_connections), NULL, DEFAULT_MAX_CONNECTIONS, 0,
     UINT32_MAX},
    {"max_connections_per_user", K_U32, OFF(max_connections_per_user), NULL, 0, 0, UINT32_MAX},
    {"max_frame_size", K_SIZE32, OFF(max_frame_size), NULL, DEFAULT_MAX_FRAME_SIZE, 0,
     UINT32_MAX},
    {"max_message_size", K_SIZE64, OFF(max_message_size), NULL, DEFAULT_MAX_MESSAGE_SIZE, 0,
     UINT64_MAX},
    {"max_sessions", K_U32, OFF(max_sessions), NULL, 0, 0, 65536},
    {"max_links", K_U32, OFF(max_links), NULL, 0, 0, UINT32_MAX},
    {"queue_prefix", K_NESTR, OFF(queue_prefix), "queue.", 0, 0, 0},
    {"topic_prefix", K_NESTR, OFF(topic_prefix), "topic.", 0, 0, 0},
    {"auto_create", K_BOOL, OFF(auto_create), NULL, 1, 0, 0},
    {"dead_letter_address", K_STR, OFF(dead_letter_address), "queue.DLQ", 0, 0, 0},
    {"queue_defaults", K_POLICY, OFF(queue_defaults), NULL, 0, 0, 0},
    {"subscription_defaults", K_POLICY, OFF(subscription_defaults), NULL, 0, 0, 0},
    {"queues", K_QUEUES, OFF(queues), NULL, 0, 0, 0},
    {"acl", K_ACL, OFF(acl), NULL, 0, 0, 0},
    {"metrics_listen", K_HOSTPORT, OFF(metrics_listen), NULL, 0, 0, 0},
};

#define NFIELDS (sizeof fields / sizeof fields[0])

#define FIELD(c, f, type) ((type *)(void *)((char *)(c) + (f)->off))

static const lep_queue_policy_t *
policy_default_of(const lep_broker_config_t *c, const lep_queue_policy_t *p)
{
    return p == &c->subscription_defaults ? &subscription_policy_default : &queue_policy_default;
}

/* Puts field f of c back to its built-in default. */
static int
field_reset(lep_broker_config_t *c, const field_t *f)
{
    switch (f->kind) {
    case K_STR:
    case K_NESTR:
    case K_PATH:
    case K_LOGLEVEL:
    case K_MECHS:
    case K_HOSTPORT:
        return lep_broker_config_set_str(FIELD(c, f, char *), f->sdef);
    case K_BOOL:
        *FIELD(c, f, bool) = f->idef != 0;
        return 0;
    case K_ANON:
        c->allow_anonymous = true;
        c->allow_anonymous_set = false;
        return 0;
    case K_INT:
    case K_TLSVER:
        *FIELD(c, f, int) = (int)f->idef;
        return 0;
    case K_U32:
    case K_SIZE32:
        *FIELD(c, f, uint32_t) = (uint32_t)f->idef;
        return 0;
    case K_SIZE64:
        *FIELD(c, f, uint64_t) = f->idef;
        return 0;
    case K_LISTEN:
        return set_listen_default(c);
    case K_POLICY: {
        lep_queue_policy_t *p = FIELD(c, f, lep_queue_policy_t);
        return policy_copy(p, policy_default_of(c, p));
    }
    case K_QUEUES:
        free_queues(c->queues, c->nqueues);
        c->queues = NULL;
        c->nqueues = 0;
        return 0;
    case K_ACL:
        free_acl(c->acl, c->nacl);
        c->acl = NULL;
        c->nacl = 0;
        return 0;
    }
    return 0;
}

int
lep_broker_config_init(lep_broker_config_t *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NFIELDS; i++)
        if (field_reset(c, &fields[i]))
            return LEP_ERR_NOMEM;
    return 0;
}

void
lep_broker_config_fini(lep_broker_config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < NFIELDS; i++) {
        const field_t *f = &fields[i];
        switch (f->kind) {
        case K_STR:
        case K_NESTR:
        case K_PATH:
        case K_LOGLEVEL:
        case K_MECHS:
        case K_HOSTPORT:
            lep_free(*FIELD(c, f, char *));
            *FIELD(c, f, char *) = NULL;
            break;
        case K_POLICY:
            lep_free(FIELD(c, f, lep_queue_policy_t)->dead_letter_address);
            FIELD(c, f, lep_queue_policy_t)->dead_letter_address = NULL;
            break;
        default:
            break;
        }
    }
    free_strv(c->listen, c->nlisten);
    free_queues(c->queues, c->nqueues);
    free_acl(c->acl, c->nacl);
    c->listen = NULL;
    c->queues = NULL;
    c->acl = NULL;
    c->nlisten = c->nqueues = c->nacl = 0;
    lep_free(c->path);
    c->path = NULL;
}

int
lep_broker_config_set_str(char **field, const char *value)
{
    char *s = NULL;
    if (value && !(s = lepi_strdup(value)))
        return LEP_ERR_NOMEM;
    lep_free(*field);
    *field = s;
    return 0;
}

/* A listener URL: amqp or amqps (or a bare host:port, as lep_url_parse
 * takes it), a host, no credentials, no address. */
static int
listen_url_error(const char *url, char *why, size_t whylen)
{
    lep_url_t u;
    int rc = lep_url_parse(url, &u);
    if (rc == LEP_ERR_NOMEM) {
        lep_url_fini(&u);
        return rc;
    }
    if (rc)
        snprintf(why, whylen, "%s", u.error);
    else if (u.user || u.password)
        snprintf(why, whylen, "a listener URL takes no user or password (see users_file)");
    else if (u.address && *u.address)
        snprintf(why, whylen, "a listener URL takes no address");
    else
        why[0] = '\0';
    lep_url_fini(&u);
    return why[0] ? LEP_ERR_INVALID : 0;
}

int
lep_broker_config_add_listen(lep_broker_config_t *c, const char *url)
{
    char why[160];
    int rc = listen_url_error(url, why, sizeof why);
    if (rc == LEP_ERR_INVALID)
        return fail(c, rc, "listen \"%s\": %s", url, why);
    if (rc)
        return fail(c, rc, "out of memory");
    char *s = lepi_strdup(url);
    if (!s)
        return fail(c, LEP_ERR_NOMEM, "out of memory");
    size_t keep = c->listen_replace ? 0 : c->nlisten;
    char **v = lep_malloc((keep + 1) * sizeof *v);
    if (!v) {
        lep_free(s);
        return fail(c, LEP_ERR_NOMEM, "out of memory");
    }
    if (keep)
        memcpy(v, c->listen, keep * sizeof *v);
    else
        for (size_t i = 0; i < c->nlisten; i++)
            lep_free(c->listen[i]);
    v[keep] = s;
    lep_free(c->listen);
    c->listen = v;
    c->nlisten = keep + 1;
    c->listen_replace = false;
    return 0;
}

int
lep_broker_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"ki", 1ull << 10},
        {"kib", 1ull << 10},
        {"kb", 1000ull},
        {"m", 1ull << 20},
        {"mi", 1ull << 20},
        {"mib", 1ull << 20},
        {"mb", 1000000ull},
        {"g", 1ull << 30},
        {"gi", 1ull << 30},
        {"gib", 1ull << 30},
        {"gb", 1000000000ull},
        {"t", 1ull << 40},
        {"ti", 1ull << 40},
        {"tib", 1ull << 40},
        {"tb", 1000000000000ull},
    };
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return LEP_ERR_INVALID;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return LEP_ERR_INVALID;
        v = v * 10 + d;
    }
    while (*p == ' ')
        p++;
    char unit[4];
    size_t n = strlen(p);
    if (n >= sizeof unit)
        return LEP_ERR_INVALID;
    for (size_t i = 0; i <= n; i++)
        unit[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) != 0)
            continue;
        if (v > UINT64_MAX / units[i].mult)
            return LEP_ERR_INVALID;
        *out = v * units[i].mult;
        return 0;
    }
    return LEP_ERR_INVALID;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

typedef struct ctx {
    lep_broker_config_t *c;
    const char *name;    /* FILE in the messages */
    const char *basedir; /* relative paths are joined to it; NULL: as written */
} ctx_t;

static int __attribute__((format(printf, 3, 4)))
at(ctx_t *x, const lepi_json_t *v, const char *fmt, ...)
{
    lep_broker_config_t *c = x->c;
    int n = snprintf(c->error, sizeof c->error, "%s:%d:%d: ", x->name, v->line, v->col);
    if (n >= 0 && (size_t)n < sizeof c->error) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error + n, sizeof c->error - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return LEP_ERR_INVALID;
}

static const char *
a_type(lepi_json_type_t t)
{
    return t == LEPI_JSON_ARRAY ? "an array" : t == LEPI_JSON_OBJECT ? "an object"
         : t == LEPI_JSON_NUMBER ? "a number" : t == LEPI_JSON_STRING ? "a string"
         : t == LEPI_JSON_BOOL ? "a boolean" : "null";
}

static int
type_error(ctx_t *x, const lepi_json_t *v, const char *key, const char *want)
{
    return at(x, v, "\"%s\" must be %s, not %s", key, want, a_type(v->type));
}

/* A string or a list of them: *items and *n walk either the same way. */
static int
string_or_list(ctx_t *x, const lepi_json_t *v, const char *key, const char *want,
               const lepi_json_t **items, size_t *n)
{
    *items = v;
    *n = 1;
    if (v->type == LEPI_JSON_ARRAY) {
        *items = v->u.arr.items;
        *n = v->u.arr.n;
    } else if (v->type != LEPI_JSON_STRING) {
        return type_error(x, v, key, want);
    }
    return 0;
}

/* Member m is not a key of its object; known lists the keys that are. */
static int
unknown_key(ctx_t *x, const lepi_json_member_t *m, const char *key, const char *known)
{
    lepi_json_t where = {.line = m->line, .col = m->col};
    return at(x, &where, "unknown key \"%s\"%s", key, known);
}

/* Whether member m's key is k.  Keys are compared with their length:
 * "threads\u0000x" is a key of its own (unknown), not "threads". */
static bool
key_is(const lepi_json_member_t *m, const char *k)
{
    return m->key_len == strlen(k) && memcmp(m->key, k, m->key_len) == 0;
}

/* m's key for messages, a NUL written as \u0000 (truncated to fit). */
static const char *
key_text(const lepi_json_member_t *m, char *buf, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < m->key_len && o + 7 < n; i++) {
        if (m->key[i] == '\0') {
            memcpy(buf + o, "\\u0000", 6);
            o += 6;
        } else {
            buf[o++] = m->key[i];
        }
    }
    buf[o] = '\0';
    return buf;
}

/* A string without NUL characters; empty ones only when allow_empty. */
static int
get_string(ctx_t *x, const lepi_json_t *v, const char *key, bool allow_empty, const char **out)
{
    if (v->type != LEPI_JSON_STRING)
        return type_error(x, v, key, "a string");
    if (strlen(v->u.str.ptr) != v->u.str.len)
        return at(x, v, "\"%s\" contains a NUL character", key);
    if (!allow_empty && v->u.str.len == 0)
        return at(x, v, "\"%s\" must not be empty", key);
    *out = v->u.str.ptr;
    return 0;
}

static int
get_uint(ctx_t *x, const lepi_json_t *v, const char *key, uint64_t min, uint64_t max,
         uint64_t *out)
{
    if (v->type != LEPI_JSON_NUMBER)
        return type_error(x, v, key, "a number");
    if (!v->u.num.is_int || v->u.num.i < 0 || (uint64_t)v->u.num.i < min ||
        (uint64_t)v->u.num.i > max)
        return at(x, v, "\"%s\" must be an integer from %llu to %llu", key,
                  (unsigned long long)min, (unsigned long long)max);
    *out = (uint64_t)v->u.num.i;
    return 0;
}

static int
get_size(ctx_t *x, const lepi_json_t *v, const char *key, uint64_t max, uint64_t *out)
{
    uint64_t n;
    if (v->type == LEPI_JSON_NUMBER) {
        if (!v->u.num.is_int || v->u.num.i < 0)
            return at(x, v, "\"%s\" must be a whole number of bytes", key);
        n = (uint64_t)v->u.num.i;
    } else if (v->type == LEPI_JSON_STRING) {
        if (strlen(v->u.str.ptr) != v->u.str.len ||
            lep_broker_parse_size(v->u.str.ptr, &n) != 0)
            return at(x, v,
                      "\"%s\": bad size \"%s\" (bytes, or a number with a unit such as "
                      "\"64KiB\", \"10MiB\", \"1GiB\", \"500MB\")",
                      key, v->u.str.ptr);
    } else {
        return type_error(x, v, key, "a size (a number of bytes or a string such as \"10MiB\")");
    }
    if (n > max)
        return at(x, v, "\"%s\" is too large (at most %llu bytes)", key, (unsigned long long)max);
    *out = n;
    return 0;
}

static int
set_dup(char **dst, const char *s)
{
    return lep_broker_config_set_str(dst, s);
}

static int
set_path(ctx_t *x, char **dst, const char *s)
{
    if (!x->basedir || s[0] == '/')
        return set_dup(dst, s);
    size_t n = strlen(x->basedir) + 1 + strlen(s) + 1;
    char *p = lep_malloc(n);
    if (!p)
        return LEP_ERR_NOMEM;
    snprintf(p, n, "%s/%s", x->basedir, s);
    lep_free(*dst);
    *dst = p;
    return 0;
}

static int
set_enum(ctx_t *x, const lepi_json_t *v, const char *key, const char *const *names, int *out)
{
    const char *s;
    int rc = get_string(x, v, key, true, &s);
    if (rc)
        return rc;
    int i = list_index(s, names);
    if (i < 0) {
        char list[160] = "";
        for (int k = 0; names[k]; k++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s\"%s\"", k ? (names[k + 1] ? ", " : " or ") : "",
                     names[k]);
        }
        return at(x, v, "\"%s\": unknown value \"%s\" (%s)", key, s, list);
    }
    *out = i;
    return 0;
}

/* "1.2" or "1.3"; also as OpenSSL's MinProtocol and RabbitMQ's versions
 * write them, "TLSv1.2" / "tlsv1.3". */
static int
set_tls_version(ctx_t *x, const lepi_json_t *v, const char *key, int *out)
{
    const char *s;
    if (v->type != LEPI_JSON_STRING)
        return type_error(x, v, key, "a string (\"1.2\" or \"1.3\")");
    int rc = get_string(x, v, key, true, &s);
    if (rc)
        return rc;
    const char *n = strncasecmp(s, "TLSv", 4) == 0 ? s + 4 : s;
    if (strcmp(n, "1.2") == 0 || strcmp(n, "1.3") == 0) {
        *out = n[2] == '2' ? LEP_TLS_1_2 : LEP_TLS_1_3;
        return 0;
    }
    return at(x, v,
              "\"%s\": unknown value \"%s\" (\"1.2\" or \"1.3\"; TLS 1.0 and 1.1 are not offered)",
              key, s);
}

/* "A B" or ["A", "B"]: known names, at least one, stored space-separated. */
static int
set_mechanisms(ctx_t *x, const lepi_json_t *v, const char *key, char **dst)
{
    lep_buf_t b;
    const lepi_json_t *items;
    size_t n;
    int rc = string_or_list(x, v, key, "a string or a list of strings", &items, &n);
    if (rc)
        return rc;
    lep_buf_init(&b);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lepi_json_t *it = &items[i];
        const char *s, *w;
        size_t len;
        if ((rc = get_string(x, it, key, true, &s)) != 0)
            break;
        /* a string may hold several names, as Proton's sasl_allowed_mechs */
        while (rc == 0 && (w = next_word(&s, &len)) != NULL) {
            char name[32];
            if (len >= sizeof name) {
                rc = at(x, it, "\"%s\": unknown SASL mechanism \"%.*s\"", key, (int)len, w);
                break;
            }
            memcpy(name, w, len);
            name[len] = '\0';
            if (list_index(name, mechanism_names) < 0) {
                rc = at(x, it,
                        "\"%s\": unknown SASL mechanism \"%s\" (ANONYMOUS, PLAIN, EXTERNAL, "
                        "SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512)",
                        key, name);
                break;
            }
            if (b.len)
                rc = lep_buf_append(&b, " ", 1);
            if (rc == 0)
                rc = lep_buf_append(&b, name, len);
        }
    }
    if (rc == 0 && b.len == 0)
        rc = at(x, v, "\"%s\" names no mechanism", key);
    if (rc == 0)
        rc = lep_buf_append(&b, "", 1);
    if (rc) {
        lep_buf_fini(&b);
        return rc;
    }
    lep_free(*dst);
    *dst = (char *)b.data;
    return 0;
}

static int
check_hostport(ctx_t *x, const lepi_json_t *v, const char *key, const char *s)
{
    char host[256];
    uint16_t port;
    if (lepi_metrics_parse_listen(s, host, sizeof host, &port) != 0)
        return at(x, v, "\"%s\": bad address \"%s\" (host:port, e.g. \"127.0.0.1:9100\")", key, s);
    return 0;
}

static int
parse_listen(ctx_t *x, const lepi_json_t *v)
{
    const lepi_json_t *items;
    size_t n;
    int rc = string_or_list(x, v, "listen", "a URL or a list of URLs", &items, &n);
    if (rc)
        return rc;
    if (n == 0)
        return at(x, v, "\"listen\" must name at least one URL");
    char **list = lep_calloc(n, sizeof *list);
    if (!list)
        return LEP_ERR_NOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *s;
        char why[160];
        if ((rc = get_string(x, &items[i], "listen", false, &s)) != 0)
            break;
        rc = listen_url_error(s, why, sizeof why);
        if (rc == LEP_ERR_INVALID)
            rc = at(x, &items[i], "\"listen\": \"%s\": %s", s, why);
        if (rc == 0 && !(list[i] = lepi_strdup(s)))
            rc = LEP_ERR_NOMEM;
    }
    if (rc) {
        free_strv(list, n);
        return rc;
    }
    free_strv(x->c->listen, x->c->nlisten);
    x->c->listen = list;
    x->c->nlisten = n;
    x->c->listen_replace = true;
    return 0;
}

/* A key of a queue policy. */
typedef enum pkind { P_COUNT, P_SIZE, P_U32, P_OVERFLOW, P_DLA, P_BOOL } pkind_t;

static const struct pfield {
    const char *key;
    pkind_t kind;
    size_t off;
} policy_fields[] = {
    {"max_depth", P_COUNT, offsetof(lep_queue_policy_t, max_depth)},
    {"max_bytes", P_SIZE, offsetof(lep_queue_policy_t, max_bytes)},
    {"overflow", P_OVERFLOW, offsetof(lep_queue_policy_t, overflow)},
    {"max_delivery_count", P_U32, offsetof(lep_queue_policy_t, max_delivery_count)},
    {"dead_letter_address", P_DLA, offsetof(lep_queue_policy_t, dead_letter_address)},
    {"durable", P_BOOL, offsetof(lep_queue_policy_t, durable)},
};

#define PFIELD(p, f, type) ((type *)(void *)((char *)(p) + (f)->off))

/* Sets key f of p from v; null takes the value from base. */
static int
policy_set(ctx_t *x, const struct pfield *f, const lepi_json_t *v, const char *key,
           lep_queue_policy_t *p, const lep_queue_policy_t *base)
{
    int rc;
    uint64_t n;
    if (v->type == LEPI_JSON_NULL) {
        switch (f->kind) {
        case P_COUNT:
        case P_SIZE:
            *PFIELD(p, f, uint64_t) = *PFIELD(base, f, const uint64_t);
            break;
        case P_U32:
            *PFIELD(p, f, uint32_t) = *PFIELD(base, f, const uint32_t);
            break;
        case P_OVERFLOW:
            p->overflow = base->overflow;
            break;
        case P_DLA:
            return set_dup(&p->dead_letter_address, base->dead_letter_address);
        case P_BOOL:
            p->durable = base->durable;
            break;
        }
        return 0;
    }
    switch (f->kind) {
    case P_COUNT:
        if ((rc = get_uint(x, v, key, 0, INT64_MAX, &n)) == 0)
            *PFIELD(p, f, uint64_t) = n;
        return rc;
    case P_SIZE:
        if ((rc = get_size(x, v, key, UINT64_MAX, &n)) == 0)
            *PFIELD(p, f, uint64_t) = n;
        return rc;
    case P_U32:
        if ((rc = get_uint(x, v, key, 0, UINT32_MAX, &n)) == 0)
            *PFIELD(p, f, uint32_t) = (uint32_t)n;
        return rc;
    case P_OVERFLOW: {
        int i;
        if ((rc = set_enum(x, v, key, overflow_names, &i)) == 0)
            p->overflow = (lep_overflow_t)i;
        return rc;
    }
    case P_DLA: {
        const char *s;
        if ((rc = get_string(x, v, key, true, &s)) == 0)
            rc = set_dup(&p->dead_letter_address, s);
        return rc;
    }
    case P_BOOL:
        if (v->type != LEPI_JSON_BOOL)
            return type_error(x, v, key, "a boolean");
        p->durable = v->u.boolean;
        return 0;
    }
    return 0;
}

/* The keys of obj other than "name" (queues) go to p; null takes base's. */
static int
parse_policy(ctx_t *x, const lepi_json_t *obj, const char *path, lep_queue_policy_t *p,
             const lep_queue_policy_t *base, bool named)
{
    char key[96], kt[64];
    if (obj->type != LEPI_JSON_OBJECT)
        return type_error(x, obj, path, "an object");
    for (size_t i = 0; i < obj->u.obj.n; i++) {
        const lepi_json_member_t *m = &obj->u.obj.members[i];
        if (named && key_is(m, "name"))
            continue;
        const struct pfield *f = NULL;
        for (size_t k = 0; k < sizeof policy_fields / sizeof policy_fields[0]; k++)
            if (key_is(m, policy_fields[k].key))
                f = &policy_fields[k];
        snprintf(key, sizeof key, "%s.%s", path, key_text(m, kt, sizeof kt));
        if (!f)
            return unknown_key(x, m, key, "");
        int rc = policy_set(x, f, &m->value, key, p, base);
        if (rc)
            return rc;
    }
    return 0;
}

/* Item i of a list, parsed into element i of arr (elements 0..i-1 are
 * done); path ("queues[3]") names it in messages. */
typedef int (*item_fn)(ctx_t *x, const lepi_json_t *it, const char *path, void *arr, size_t i);

/* The list v under key: each item parsed by parse_item into a new array
 * of elements of size bytes, *out (freed with free_items on failure). */
static int
parse_list(ctx_t *x, const lepi_json_t *v, const char *key, const char *want, size_t size,
           item_fn parse_item, void (*free_items)(void *, size_t), void **out)
{
    if (v->type != LEPI_JSON_ARRAY)
        return type_error(x, v, key, want);
    size_t n = v->u.arr.n;
    void *arr = n ? lep_calloc(n, size) : NULL;
    if (n && !arr)
        return LEP_ERR_NOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char path[32];
        snprintf(path, sizeof path, "%s[%zu]", key, i);
        rc = parse_item(x, &v->u.arr.items[i], path, arr, i);
    }
    if (rc) {
        free_items(arr, n);
        return rc;
    }
    *out = arr;
    return 0;
}

static int
parse_queue(ctx_t *x, const lepi_json_t *it, const char *path, void *arr, size_t i)
{
    lep_queue_config_t *q = arr;
    const lep_queue_policy_t *base = &x->c->queue_defaults;
    if (it->type != LEPI_JSON_OBJECT)
        return type_error(x, it, path, "an object");
    const lepi_json_t *name = lepi_json_get(it, "name");
    const char *s;
    char key[48];
    int rc;
    snprintf(key, sizeof key, "%s.name", path);
    if (!name || name->type == LEPI_JSON_NULL)
        return at(x, it, "\"%s\" has no \"name\"", path);
    if ((rc = get_string(x, name, key, false, &s)) != 0)
        return rc;
    for (size_t k = 0; k < i; k++)
        if (strcmp(q[k].name, s) == 0)
            return at(x, name, "queue \"%s\" is defined twice", s);
    if (!(q[i].name = lepi_strdup(s)) || policy_copy(&q[i].policy, base) != 0)
        return LEP_ERR_NOMEM;
    return parse_policy(x, it, path, &q[i].policy, base, true);
}

static int
parse_queues(ctx_t *x, const lepi_json_t *v)
{
    lep_broker_config_t *c = x->c;
    void *q;
    int rc = parse_list(x, v, "queues", "a list of objects", sizeof *c->queues, parse_queue,
                        free_queues, &q);
    if (rc)
        return rc;
    free_queues(c->queues, c->nqueues);
    c->queues = q;
    c->nqueues = v->u.arr.n;
    return 0;
}

static int
parse_rights(ctx_t *x, const lepi_json_t *v, const char *key, unsigned *out)
{
    const lepi_json_t *items;
    size_t n;
    unsigned bits = 0;
    int rc = string_or_list(x, v, key, "a right or a list of rights", &items, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        if ((rc = get_string(x, &items[i], key, true, &s)) != 0)
            return rc;
        size_t k = 0;
        while (k < sizeof right_names / sizeof right_names[0] && strcmp(s, right_names[k].name))
            k++;
        if (k == sizeof right_names / sizeof right_names[0])
            return at(x, &items[i],
                      "\"%s\": unknown right \"%s\" (send, receive, create, manage, all)", key, s);
        bits |= right_names[k].bits;
    }
    *out = bits;
    return 0;
}

static const char *
pattern_problem(const char *p)
{
    if (!*p)
        return "is empty";
    const char *star = strchr(p, '*');
    if (star && star[1])
        return "may have '*' only at its end";
    return NULL;
}

static int
parse_rule(ctx_t *x, const lepi_json_t *it, const char *path, void *arr, size_t idx)
{
    lep_acl_rule_t *r = (lep_acl_rule_t *)arr + idx;
    char key[64], kt[40];
    bool have_rights = false;
    if (it->type != LEPI_JSON_OBJECT)
        return type_error(x, it, path, "an object");
    for (size_t i = 0; i < it->u.obj.n; i++) {
        const lepi_json_member_t *m = &it->u.obj.members[i];
        const lepi_json_t *v = &m->value;
        int rc;
        snprintf(key, sizeof key, "%s.%s", path, key_text(m, kt, sizeof kt));
        if (key_is(m, "user") || key_is(m, "address")) {
            const char *s, *why;
            if ((rc = get_string(x, v, key, true, &s)) != 0)
                return rc;
            if ((why = pattern_problem(s)) != NULL)
                return at(x, v, "\"%s\": pattern \"%s\" %s", key, s, why);
            if ((rc = set_dup(m->key[0] == 'u' ? &r->user : &r->address, s)) != 0)
                return rc;
        } else if (key_is(m, "allow") || key_is(m, "deny")) {
            if ((rc = parse_rights(x, v, key, m->key[0] == 'a' ? &r->allow : &r->deny)) != 0)
                return rc;
            have_rights = true;
        } else {
            return unknown_key(x, m, key, " (user, address, allow, deny)");
        }
    }
    if (!r->user)
        return at(x, it, "\"%s\" has no \"user\" (\"*\" for everyone)", path);
    if (!r->address)
        return at(x, it, "\"%s\" has no \"address\" (\"*\" for every address)", path);
    if (!have_rights)
        return at(x, it, "\"%s\" has neither \"allow\" nor \"deny\"", path);
    return 0;
}

static int
parse_acl(ctx_t *x, const lepi_json_t *v)
{
    lep_broker_config_t *c = x->c;
    void *r;
    int rc = parse_list(x, v, "acl", "a list of rules", sizeof *c->acl, parse_rule, free_acl, &r);
    if (rc)
        return rc;
    free_acl(c->acl, c->nacl);
    c->acl = r;
    c->nacl = v->u.arr.n;
    return 0;
}

static int
parse_field(ctx_t *x, const field_t *f, const lepi_json_t *v)
{
    lep_broker_config_t *c = x->c;
    const char *s;
    uint64_t n;
    int rc, i;
    if (v->type == LEPI_JSON_NULL)
        return field_reset(c, f);
    switch (f->kind) {
    case K_STR:
    case K_NESTR:
        if ((rc = get_string(x, v, f->key, f->kind == K_STR, &s)) == 0)
            rc = set_dup(FIELD(c, f, char *), s);
        return rc;
    case K_PATH:
        if ((rc = get_string(x, v, f->key, false, &s)) == 0)
            rc = set_path(x, FIELD(c, f, char *), s);
        return rc;
    case K_HOSTPORT:
        if ((rc = get_string(x, v, f->key, false, &s)) == 0 &&
            (rc = check_hostport(x, v, f->key, s)) == 0)
            rc = set_dup(FIELD(c, f, char *), s);
        return rc;
    case K_LOGLEVEL:
        if ((rc = set_enum(x, v, f->key, log_levels, &i)) == 0)
            rc = set_dup(FIELD(c, f, char *), log_levels[i]);
        return rc;
    case K_MECHS:
        return set_mechanisms(x, v, f->key, FIELD(c, f, char *));
    case K_TLSVER:
        return set_tls_version(x, v, f->key, FIELD(c, f, int));
    case K_BOOL:
    case K_ANON:
        if (v->type != LEPI_JSON_BOOL)
            return type_error(x, v, f->key, "a boolean");
        *FIELD(c, f, bool) = v->u.boolean;
        if (f->kind == K_ANON)
            c->allow_anonymous_set = true;
        return 0;
    case K_INT:
        if ((rc = get_uint(x, v, f->key, f->min, f->max, &n)) == 0)
            *FIELD(c, f, int) = (int)n;
        return rc;
    case K_U32:
        if ((rc = get_uint(x, v, f->key, f->min, f->max, &n)) == 0)
            *FIELD(c, f, uint32_t) = (uint32_t)n;
        return rc;
    case K_SIZE32:
    case K_SIZE64:
        if ((rc = get_size(x, v, f->key, f->kind == K_SIZE32 ? UINT32_MAX : UINT64_MAX, &n)))
            return rc;
        if (f->off == OFF(max_frame_size) && n != 0 && n < MIN_FRAME_SIZE)
            return at(x, v, "\"max_frame_size\" must be at least %u bytes", MIN_FRAME_SIZE);
        if (f->kind == K_SIZE32)
            *FIELD(c, f, uint32_t) = (uint32_t)n;
        else
            *FIELD(c, f, uint64_t) = n;
        return 0;
    case K_LISTEN:
        return parse_listen(x, v);
    case K_POLICY: {
        lep_queue_policy_t *p = FIELD(c, f, lep_queue_policy_t);
        return parse_policy(x, v, f->key, p, policy_default_of(c, p), false);
    }
    case K_QUEUES:
        return parse_queues(x, v);
    case K_ACL:
        return parse_acl(x, v);
    }
    return 0;
}

static int
apply(ctx_t *x, const lepi_json_t *root)
{
    if (root->type != LEPI_JSON_OBJECT)
        return at(x, root, "the top level must be an object, not %s", a_type(root->type));
    /* Two passes: "queues" start from "queue_defaults" wherever it is. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < root->u.obj.n; i++) {
            const lepi_json_member_t *m = &root->u.obj.members[i];
            const field_t *f = NULL;
            for (size_t k = 0; k < NFIELDS && !f; k++)
                if (key_is(m, fields[k].key))
                    f = &fields[k];
            char kt[400];
            if (!f)
                return unknown_key(x, m, key_text(m, kt, sizeof kt), "");
            if ((f->kind == K_QUEUES) != (pass == 1))
                continue;
            int rc = parse_field(x, f, &m->value);
            if (rc)
                return rc;
        }
    }
    derive_allow_anonymous(x->c);
    return 0;
}

static int
parse_impl(lep_broker_config_t *c, const char *text, size_t len, const char *name,
           const char *basedir)
{
    lepi_json_opts_t opts = {.max_depth = 16, .comments = true};
    lepi_json_t *root;
    char err[256];
    ctx_t x = {c, name ? name : "broker.json", basedir};
    c->error[0] = '\0';
    int rc = lepi_json_parse(text, len, &opts, &root, err, sizeof err);
    if (rc == LEP_ERR_NOMEM)
        return fail(c, rc, "%s: out of memory", x.name);
    if (rc)
        return fail(c, rc, "%s:%s", x.name, err);
    rc = apply(&x, root);
    lepi_json_free(root);
    if (rc == LEP_ERR_NOMEM)
        fail(c, rc, "%s: out of memory", x.name);
    return rc;
}

int
lep_broker_config_parse(lep_broker_config_t *c, const char *text, size_t len, const char *name)
{
    return parse_impl(c, text, len, name, NULL);
}

int
lep_broker_config_load(lep_broker_config_t *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(c, LEP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    lep_buf_t b;
    lep_buf_init(&b);
    int rc = 0;
    for (;;) {
        if ((rc = lep_buf_reserve(&b, 4096)) != 0) {
            fail(c, rc, "%s: out of memory", path);
            break;
        }
        size_t n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
        if (b.len > MAX_CONFIG_FILE) {
            rc = fail(c, LEP_ERR_LIMIT, "%s: larger than %u bytes", path, MAX_CONFIG_FILE);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                rc = fail(c, LEP_ERR_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    /* Relative paths in the file are relative to the file's directory. */
    char *dir = NULL;
    const char *slash = strrchr(path, '/');
    if (rc == 0 && slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (!(dir = lep_malloc(n + 1)))
            rc = fail(c, LEP_ERR_NOMEM, "%s: out of memory", path);
        else {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
    if (rc == 0)
        rc = parse_impl(c, (const char *)b.data, b.len, path,
                        dir && strcmp(dir, "/") == 0 ? "" : dir);
    lep_buf_fini(&b);
    lep_free(dir);
    if (rc == 0 && (rc = set_dup(&c->path, path)) != 0)
        fail(c, rc, "%s: out of memory", path);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The coherence check                                                 */

static bool
has_word(const char *list, const char *word)
{
    size_t n = strlen(word), len;
    for (const char *p = list, *w; p && (w = next_word(&p, &len)) != NULL;)
        if (len == n && memcmp(w, word, n) == 0)
            return true;
    return false;
}

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Dead letters go to a queue: a dead-letter address must not be a topic. */
static bool
is_topic_dla(const lep_broker_config_t *c, const char *dla)
{
    return dla && *dla && starts_with(dla, c->topic_prefix);
}

static int
check_file(lep_broker_config_t *c, const char *key, const char *path, bool dir_ok)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(c, LEP_ERR_INVALID, "%s \"%s\": %s", key, path, strerror(errno));
    if (S_ISDIR(st.st_mode) && dir_ok)
        return 0;
    if (!S_ISREG(st.st_mode))
        return fail(c, LEP_ERR_INVALID, "%s \"%s\": not a regular file", key, path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(c, LEP_ERR_INVALID, "%s \"%s\": %s", key, path, strerror(errno));
    fclose(f);
    return 0;
}

static int
check_tls(lep_broker_config_t *c, size_t n_amqps)
{
    int rc;
    if (!c->tls_cert != !c->tls_key)
        return fail(c, LEP_ERR_INVALID, "tls_cert and tls_key go together: %s is not set",
                    c->tls_cert ? "tls_key" : "tls_cert");
    if (c->tls_key_password && !c->tls_key)
        return fail(c, LEP_ERR_INVALID, "tls_key_password is set but tls_key is not");
    if (c->tls_require_client_cert && !c->tls_ca)
        return fail(c, LEP_ERR_INVALID,
                    "tls_require_client_cert needs tls_ca (the CAs client certificates are "
                    "checked against)");
    if (c->tls_require_client_cert && n_amqps == 0)
        return fail(c, LEP_ERR_INVALID, "tls_require_client_cert is set but no listener is amqps");
    if ((c->tls_cert && (rc = check_file(c, "tls_cert", c->tls_cert, false))) ||
        (c->tls_key && (rc = check_file(c, "tls_key", c->tls_key, false))) ||
        (c->tls_ca && (rc = check_file(c, "tls_ca", c->tls_ca, true))))
        return rc;
    if (c->tls_min_version != LEP_TLS_1_2 && c->tls_min_version != LEP_TLS_1_3)
        return fail(c, LEP_ERR_INVALID, "tls_min_version 0x%04x: LEP_TLS_1_2 or LEP_TLS_1_3",
                    (unsigned)c->tls_min_version);
    if (!c->tls_cert && !c->tls_ca && !c->tls_ciphers && !c->tls_ciphersuites)
        return 0;
    /* Make the listeners' TLS configuration now, so a wrong password, a
     * key that does not match the certificate or a cipher string OpenSSL
     * refuses stops the start, not each client. */
    lep_tls_config_t *t;
    if ((rc = lep_broker_config_tls(c, &t)) != 0)
        return rc;
    lep_tls_config_free(t);
    return 0;
}

int
lep_broker_config_tls(lep_broker_config_t *c, lep_tls_config_t **out)
{
    lep_tls_config_t *t;
    int rc;
    *out = NULL;
    if ((rc = lep_tls_config_new(&t, true)) != 0)
        return fail(c, rc, "TLS: %s", lep_strerror(rc));
    if (c->tls_cert &&
        (rc = lep_tls_config_set_cert(t, c->tls_cert, c->tls_key ? c->tls_key : c->tls_cert,
                                      c->tls_key_password)) != 0)
        fail(c, rc, "tls_cert \"%s\", tls_key \"%s\": %s", c->tls_cert,
             c->tls_key ? c->tls_key : c->tls_cert, lep_tls_config_error(t));
    if (rc == 0 && c->tls_ca) {
        struct stat st;
        bool dir = stat(c->tls_ca, &st) == 0 && S_ISDIR(st.st_mode);
        if ((rc = lep_tls_config_set_ca(t, dir ? NULL : c->tls_ca, dir ? c->tls_ca : NULL)))
            fail(c, rc, "tls_ca \"%s\": %s", c->tls_ca, lep_tls_config_error(t));
        /* With CAs, a client certificate is asked for (and checked when
         * sent: SASL EXTERNAL); required only on demand. */
        else if ((rc = lep_tls_config_set_verify(t, c->tls_require_client_cert
                                                        ? LEP_TLS_VERIFY_PEER
                                                        : LEP_TLS_VERIFY_OPTIONAL)) != 0)
            fail(c, rc, "tls_require_client_cert: %s", lep_tls_config_error(t));
    }
    if (rc == 0 && (rc = lep_tls_config_set_min_version(t, c->tls_min_version)) != 0)
        fail(c, rc, "tls_min_version 0x%04x: %s", (unsigned)c->tls_min_version,
             *lep_tls_config_error(t) ? lep_tls_config_error(t) : "LEP_TLS_1_2 or LEP_TLS_1_3");
    if (rc == 0 && c->tls_ciphers && (rc = lep_tls_config_set_ciphers(t, c->tls_ciphers, NULL)))
        fail(c, rc, "tls_ciphers \"%s\": OpenSSL refuses it: %s", c->tls_ciphers,
             lep_tls_config_error(t));
    if (rc == 0 && c->tls_ciphersuites &&
        (rc = lep_tls_config_set_ciphers(t, NULL, c->tls_ciphersuites)))
        fail(c, rc, "tls_ciphersuites \"%s\": OpenSSL refuses it: %s", c->tls_ciphersuites,
             lep_tls_config_error(t));
    /* "" is how OpenSSL turns TLS 1.3 off: with a 1.3 minimum nothing is
     * left. */
    if (rc == 0 && c->tls_ciphersuites && !*c->tls_ciphersuites &&
        c->tls_min_version == LEP_TLS_1_3)
        rc = fail(c, LEP_ERR_INVALID,
                  "tls_ciphersuites \"\" turns TLS 1.3 off, but tls_min_version is \"1.3\": no "
                  "client could connect");
    if (rc) {
        lep_tls_config_free(t);
        return rc == LEP_ERR_NOMEM ? rc : LEP_ERR_INVALID;
    }
    *out = t;
    return 0;
}

static int
check_sasl(lep_broker_config_t *c)
{
    const char *m = c->sasl_mechanisms;
    if (m) {
        bool any = false;
        size_t len;
        for (const char *p = m, *w; (w = next_word(&p, &len)) != NULL;) {
            char name[32];
            if (len >= sizeof name)
                len = sizeof name - 1;
            memcpy(name, w, len);
            name[len] = '\0';
            if (list_index(name, mechanism_names) < 0)
                return fail(c, LEP_ERR_INVALID, "sasl_mechanisms: unknown mechanism \"%s\"",
                            name);
            any = true;
        }
        if (!any)
            return fail(c, LEP_ERR_INVALID, "sasl_mechanisms names no mechanism");
        static const char *const need_users[] = {"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256",
                                                 "SCRAM-SHA-512"};
        for (size_t i = 0; i < sizeof need_users / sizeof need_users[0]; i++)
            if (has_word(m, need_users[i]) && !c->users_file)
                return fail(c, LEP_ERR_INVALID, "sasl_mechanisms lists %s but no users_file is set",
                            need_users[i]);
        if (has_word(m, "ANONYMOUS") && !c->allow_anonymous)
            return fail(c, LEP_ERR_INVALID,
                        "sasl_mechanisms lists ANONYMOUS but allow_anonymous is false");
        if (has_word(m, "EXTERNAL") && !c->tls_ca)
            return fail(c, LEP_ERR_INVALID,
                        "sasl_mechanisms lists EXTERNAL, which needs client certificates: set "
                        "tls_ca");
    }
    if (c->users_file) {
        lep_sasl_users_t *u;
        char err[300];
        int rc = check_file(c, "users_file", c->users_file, false);
        if (rc)
            return rc;
        rc = lep_sasl_users_load(&u, c->users_file, err, sizeof err);
        if (rc == LEP_ERR_NOMEM)
            return fail(c, rc, "users_file: out of memory");
        if (rc)
            return fail(c, LEP_ERR_INVALID, "users_file: %s", err);
        lep_sasl_users_free(u);
    }
    bool external = m ? has_word(m, "EXTERNAL") : c->tls_ca != NULL;
    if (!c->users_file && !c->allow_anonymous && !external)
        return fail(c, LEP_ERR_INVALID,
                    "nobody can log in: set users_file, or allow_anonymous, or client "
                    "certificates (tls_ca with EXTERNAL)");
    return 0;
}

static int
check_policy(lep_broker_config_t *c, const char *what, const lep_queue_policy_t *p)
{
    if ((unsigned)p->overflow > LEP_OVERFLOW_DROP_HEAD)
        return fail(c, LEP_ERR_INVALID, "%s: bad overflow %d", what, (int)p->overflow);
    const char *dla = p->dead_letter_address;
    if (is_topic_dla(c, dla))
        return fail(c, LEP_ERR_INVALID,
                    "%s: dead_letter_address \"%s\" is a topic (prefix \"%s\"); dead letters go "
                    "to a queue",
                    what, dla, c->topic_prefix);
    return 0;
}

static int
check_addresses(lep_broker_config_t *c)
{
    int rc;
    if (!c->queue_prefix || !*c->queue_prefix)
        return fail(c, LEP_ERR_INVALID, "queue_prefix must not be empty");
    if (!c->topic_prefix || !*c->topic_prefix)
        return fail(c, LEP_ERR_INVALID, "topic_prefix must not be empty");
    if (starts_with(c->queue_prefix, c->topic_prefix) ||
        starts_with(c->topic_prefix, c->queue_prefix))
        return fail(c, LEP_ERR_INVALID,
                    "queue_prefix \"%s\" and topic_prefix \"%s\" overlap: an address would be "
                    "both",
                    c->queue_prefix, c->topic_prefix);
    const char *dla = c->dead_letter_address;
    if (is_topic_dla(c, dla))
        return fail(c, LEP_ERR_INVALID,
                    "dead_letter_address \"%s\" is a topic (prefix \"%s\"); dead letters go to a "
                    "queue",
                    dla, c->topic_prefix);
    if ((rc = check_policy(c, "queue_defaults", &c->queue_defaults)) ||
        (rc = check_policy(c, "subscription_defaults", &c->subscription_defaults)))
        return rc;
    for (size_t i = 0; i < c->nqueues; i++) {
        const char *name = c->queues[i].name;
        char what[300];
        if (!name || !*name)
            return fail(c, LEP_ERR_INVALID, "queues[%zu]: the name is empty", i);
        snprintf(what, sizeof what, "queues[%zu] \"%s\"", i, name);
        if (starts_with(name, c->topic_prefix))
            return fail(c, LEP_ERR_INVALID,
                        "%s: a queue's name must not start with topic_prefix \"%s\"", what,
                        c->topic_prefix);
        if (name[0] == '$')
            return fail(c, LEP_ERR_INVALID, "%s: names starting with '$' are reserved", what);
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->queues[k].name, name) == 0)
                return fail(c, LEP_ERR_INVALID, "%s: defined twice", what);
        if ((rc = check_policy(c, what, &c->queues[i].policy)))
            return rc;
    }
    return 0;
}

static int
check_acl(lep_broker_config_t *c)
{
    for (size_t i = 0; i < c->nacl; i++) {
        const lep_acl_rule_t *r = &c->acl[i];
        const char *why;
        if (!r->user || (why = pattern_problem(r->user)) != NULL)
            return fail(c, LEP_ERR_INVALID, "acl[%zu]: user pattern \"%s\" %s", i,
                        r->user ? r->user : "", r->user ? why : "is missing");
        if (!r->address || (why = pattern_problem(r->address)) != NULL)
            return fail(c, LEP_ERR_INVALID, "acl[%zu]: address pattern \"%s\" %s", i,
                        r->address ? r->address : "", r->address ? why : "is missing");
        if ((r->allow | r->deny) & ~(unsigned)LEP_ACL_ALL)
            return fail(c, LEP_ERR_INVALID, "acl[%zu]: unknown rights 0x%x", i,
                        (r->allow | r->deny) & ~(unsigned)LEP_ACL_ALL);
        if (!(r->allow | r->deny))
            return fail(c, LEP_ERR_INVALID, "acl[%zu]: the rule allows and denies nothing", i);
    }
    return 0;
}

static int
check_listeners(lep_broker_config_t *c, size_t *n_amqps)
{
    *n_amqps = 0;
    if (c->nlisten == 0)
        return fail(c, LEP_ERR_INVALID, "no listener: give at least one listen URL");
    char mhost[256] = "";
    uint16_t mport = 0;
    if (c->metrics_listen &&
        lepi_metrics_parse_listen(c->metrics_listen, mhost, sizeof mhost, &mport) != 0)
        return fail(c, LEP_ERR_INVALID,
                    "metrics_listen \"%s\": bad address (host:port, e.g. \"127.0.0.1:9100\")",
                    c->metrics_listen);
    for (size_t i = 0; i < c->nlisten; i++) {
        const char *url = c->listen[i];
        char why[160];
        int rc = listen_url_error(url, why, sizeof why);
        if (rc == LEP_ERR_NOMEM)
            return fail(c, rc, "out of memory");
        if (rc)
            return fail(c, rc, "listen[%zu] \"%s\": %s", i, url, why);
        lep_url_t u;
        if ((rc = lep_url_parse(url, &u)) != 0) {
            lep_url_fini(&u);
            return fail(c, rc, "out of memory");
        }
        if (u.tls) {
            ++*n_amqps;
            if (!c->tls_cert || !c->tls_key)
                rc = fail(c, LEP_ERR_INVALID,
                          "listen[%zu] \"%s\": an amqps listener needs tls_cert and tls_key", i,
                          url);
        }
        if (rc == 0 && u.port != 0 && mport == u.port && strcmp(mhost, u.host) == 0)
            rc = fail(c, LEP_ERR_INVALID, "metrics_listen \"%s\" is also listen[%zu] \"%s\"",
                      c->metrics_listen, i, url);
        for (size_t k = 0; k < i && rc == 0; k++) {
            lep_url_t o;
            if (lep_url_parse(c->listen[k], &o) == 0 && o.port == u.port && u.port != 0 &&
                strcmp(o.host, u.host) == 0)
                rc = fail(c, LEP_ERR_INVALID,
                          "listen[%zu] \"%s\" and listen[%zu] \"%s\" are the same address", k,
                          c->listen[k], i, url);
            lep_url_fini(&o);
        }
        lep_url_fini(&u);
        if (rc)
            return rc;
    }
    return 0;
}

int
lep_broker_config_check(lep_broker_config_t *c)
{
    int rc;
    size_t n_amqps;
    c->error[0] = '\0';
    derive_allow_anonymous(c);
    if (c->max_connections == 0)
        c->max_connections = DEFAULT_MAX_CONNECTIONS;
    if (c->max_frame_size == 0)
        c->max_frame_size = DEFAULT_MAX_FRAME_SIZE;
    if (c->max_message_size == 0)
        c->max_message_size = DEFAULT_MAX_MESSAGE_SIZE;

    if ((rc = check_listeners(c, &n_amqps)) || (rc = check_tls(c, n_amqps)) ||
        (rc = check_sasl(c)) || (rc = check_addresses(c)) || (rc = check_acl(c)))
        return rc;
    if (!c->data_dir || !*c->data_dir)
        return fail(c, LEP_ERR_INVALID, "data_dir must not be empty");
    struct stat st;
    if (stat(c->data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return fail(c, LEP_ERR_INVALID, "data_dir \"%s\" exists and is not a directory",
                    c->data_dir);
    if (!c->container_id || !*c->container_id)
        return fail(c, LEP_ERR_INVALID, "container_id must not be empty");
    if (!c->log_level || list_index(c->log_level, log_levels) < 0)
        return fail(c, LEP_ERR_INVALID,
                    "log_level \"%s\": one of error, warn, info, debug, trace",
                    c->log_level ? c->log_level : "");
    if (c->threads < 0 || c->threads > MAX_THREADS)
        return fail(c, LEP_ERR_INVALID, "threads %d: from 0 (one per CPU) to %d", c->threads,
                    MAX_THREADS);
    if (c->max_frame_size < MIN_FRAME_SIZE)
        return fail(c, LEP_ERR_INVALID, "max_frame_size %u: at least %u bytes",
                    (unsigned)c->max_frame_size, MIN_FRAME_SIZE);
    if (c->max_sessions > 65536)
        return fail(c, LEP_ERR_INVALID, "max_sessions %u: at most 65536 (AMQP channels)",
                    (unsigned)c->max_sessions);
    if (c->max_connections_per_user > c->max_connections)
        return fail(c, LEP_ERR_INVALID,
                    "max_connections_per_user %u is more than max_connections %u",
                    (unsigned)c->max_connections_per_user, (unsigned)c->max_connections);
    return 0;
}
