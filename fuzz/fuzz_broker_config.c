/* Fuzz target: arbitrary text as a broker configuration file
 * (lep_broker_config_parse, docs/broker.md).  Invariants, each abort()s
 * when broken:
 *
 * - every failure returns a negative code and explains itself in
 *   c->error, as "fuzz.json:LINE:COL: message" with LINE:COL inside the
 *   text for syntax and value errors;
 * - an accepted file names only documented keys (compared byte for byte,
 *   so a key with a \u0000 in it is not taken for another one);
 * - an accepted configuration, written back out as JSON by this target
 *   and parsed into a fresh configuration, gives the same configuration,
 *   and writing that one out gives the same text (a fixed point);
 * - parsing the same file again over its own result changes nothing (the
 *   file's keys replace, the others keep);
 * - lep_broker_config_check() on the result (without the file-reading
 *   keys) either accepts it or says why;
 * - with one allocation failed (which one is picked from the input), the
 *   parse fails with LEP_ERR_NOMEM and "fuzz.json: out of memory", or
 *   succeeds with the same configuration, and fini frees everything.
 *
 * Leaks are LeakSanitizer's to find. */
#include <lepton/broker.h>

#include "messaging/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.json"

/* ------------------------------------------------------------------ */
/* Comparing two configurations                                        */

static bool
str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool
policy_eq(const lep_queue_policy_t *a, const lep_queue_policy_t *b)
{
    return a->max_depth == b->max_depth && a->max_bytes == b->max_bytes &&
           a->overflow == b->overflow && a->max_delivery_count == b->max_delivery_count &&
           str_eq(a->dead_letter_address, b->dead_letter_address) && a->durable == b->durable;
}

static bool
config_eq(const lep_broker_config_t *a, const lep_broker_config_t *b)
{
    if (a->nlisten != b->nlisten || a->listen_replace != b->listen_replace)
        return false;
    for (size_t i = 0; i < a->nlisten; i++)
        if (!str_eq(a->listen[i], b->listen[i]))
            return false;
    if (!str_eq(a->data_dir, b->data_dir) || a->fsync != b->fsync ||
        !str_eq(a->container_id, b->container_id) || a->threads != b->threads ||
        !str_eq(a->log_level, b->log_level) || !str_eq(a->tls_cert, b->tls_cert) ||
        !str_eq(a->tls_key, b->tls_key) || !str_eq(a->tls_key_password, b->tls_key_password) ||
        !str_eq(a->tls_ca, b->tls_ca) || a->tls_require_client_cert != b->tls_require_client_cert ||
        a->tls_min_version != b->tls_min_version || !str_eq(a->tls_ciphers, b->tls_ciphers) ||
        !str_eq(a->tls_ciphersuites, b->tls_ciphersuites) ||
        !str_eq(a->users_file, b->users_file) || !str_eq(a->sasl_mechanisms, b->sasl_mechanisms) ||
        a->allow_anonymous != b->allow_anonymous ||
        a->allow_anonymous_set != b->allow_anonymous_set ||
        a->allow_plain_without_tls != b->allow_plain_without_tls)
        return false;
    if (a->max_connections != b->max_connections ||
        a->max_connections_per_user != b->max_connections_per_user ||
        a->max_frame_size != b->max_frame_size || a->max_message_size != b->max_message_size ||
        a->max_sessions != b->max_sessions || a->max_links != b->max_links)
        return false;
    if (!str_eq(a->queue_prefix, b->queue_prefix) || !str_eq(a->topic_prefix, b->topic_prefix) ||
        a->auto_create != b->auto_create ||
        !str_eq(a->dead_letter_address, b->dead_letter_address) ||
        !policy_eq(&a->queue_defaults, &b->queue_defaults) ||
        !policy_eq(&a->subscription_defaults, &b->subscription_defaults))
        return false;
    if (a->nqueues != b->nqueues || a->nacl != b->nacl)
        return false;
    for (size_t i = 0; i < a->nqueues; i++)
        if (!str_eq(a->queues[i].name, b->queues[i].name) ||
            !policy_eq(&a->queues[i].policy, &b->queues[i].policy))
            return false;
    for (size_t i = 0; i < a->nacl; i++)
        if (!str_eq(a->acl[i].user, b->acl[i].user) ||
            !str_eq(a->acl[i].address, b->acl[i].address) || a->acl[i].allow != b->acl[i].allow ||
            a->acl[i].deny != b->acl[i].deny)
            return false;
    return str_eq(a->metrics_listen, b->metrics_listen);
}

/* ------------------------------------------------------------------ */
/* Writing a configuration out as a file                               */

typedef struct out {
    char *p;
    size_t len, cap;
} out_t;

static void
put(out_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 1024;
        while (o->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p)
            abort();
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void
puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void
putf(out_t *o, const char *fmt, unsigned long long v)
{
    char b[128];
    if ((size_t)snprintf(b, sizeof b, fmt, v) >= sizeof b)
        abort(); /* the target's own mistake */
    puts_(o, b);
}

/* A JSON string; NULL as null.  Parsed strings are valid UTF-8 without
 * NUL, so only quotes, backslashes and control characters need escapes. */
static void
put_str(out_t *o, const char *s)
{
    if (!s) {
        puts_(o, "null");
        return;
    }
    puts_(o, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            put(o, e, 2);
        } else if (ch < 0x20) {
            putf(o, "\\u%04llx", ch);
        } else {
            put(o, (const char *)&ch, 1);
        }
    }
    puts_(o, "\"");
}

static void
key(out_t *o, const char *k)
{
    puts_(o, ",\n\"");
    puts_(o, k);
    puts_(o, "\": ");
}

static void
put_policy(out_t *o, const lep_queue_policy_t *p, const char *name)
{
    static const char *const overflows[] = {"block", "reject", "drop-head"};
    if ((unsigned)p->overflow > LEP_OVERFLOW_DROP_HEAD)
        abort(); /* the parser stores only names it knows */
    puts_(o, "{");
    if (name) {
        puts_(o, "\"name\": ");
        put_str(o, name);
        puts_(o, ", ");
    }
    putf(o, "\"max_depth\": %llu", p->max_depth);
    /* sizes as strings: a JSON number stops at INT64_MAX */
    putf(o, ", \"max_bytes\": \"%llu\"", p->max_bytes);
    puts_(o, ", \"overflow\": ");
    put_str(o, overflows[p->overflow]);
    putf(o, ", \"max_delivery_count\": %llu", p->max_delivery_count);
    /* null is the default's address, which a NULL one is */
    puts_(o, ", \"dead_letter_address\": ");
    put_str(o, p->dead_letter_address);
    puts_(o, p->durable ? ", \"durable\": true}" : ", \"durable\": false}");
}

static void
put_rights(out_t *o, unsigned bits)
{
    static const char *const names[] = {"send", "receive", "create", "manage"};
    if (bits & ~(unsigned)LEP_ACL_ALL)
        abort();
    puts_(o, "[");
    for (unsigned i = 0, first = 1; i < 4; i++)
        if (bits & (1u << i)) {
            puts_(o, first ? "" : ", ");
            put_str(o, names[i]);
            first = 0;
        }
    puts_(o, "]");
}

static void
put_bool(out_t *o, const char *k, bool v)
{
    key(o, k);
    puts_(o, v ? "true" : "false");
}

static void
put_skey(out_t *o, const char *k, const char *v)
{
    key(o, k);
    put_str(o, v);
}

static void
put_ukey(out_t *o, const char *k, unsigned long long v)
{
    key(o, k);
    putf(o, "%llu", v);
}

/* Every key, so the text sets the whole configuration whatever it is
 * parsed over. */
static char *
write_config(const lep_broker_config_t *c)
{
    out_t o = {0};
    puts_(&o, "{\"listen\": [");
    for (size_t i = 0; i < c->nlisten; i++) {
        puts_(&o, i ? ", " : "");
        put_str(&o, c->listen[i]);
    }
    puts_(&o, "]");
    put_skey(&o, "data_dir", c->data_dir);
    put_bool(&o, "fsync", c->fsync);
    put_skey(&o, "container_id", c->container_id);
    put_ukey(&o, "threads", (unsigned long long)c->threads);
    put_skey(&o, "log_level", c->log_level);
    put_skey(&o, "tls_cert", c->tls_cert);
    put_skey(&o, "tls_key", c->tls_key);
    put_skey(&o, "tls_key_password", c->tls_key_password);
    put_skey(&o, "tls_ca", c->tls_ca);
    put_bool(&o, "tls_require_client_cert", c->tls_require_client_cert);
    put_skey(&o, "tls_min_version", c->tls_min_version == LEP_TLS_1_3 ? "1.3" : "1.2");
    put_skey(&o, "tls_ciphers", c->tls_ciphers);
    put_skey(&o, "tls_ciphersuites", c->tls_ciphersuites);
    put_skey(&o, "users_file", c->users_file);
    put_skey(&o, "sasl_mechanisms", c->sasl_mechanisms);
    if (c->allow_anonymous_set)
        put_bool(&o, "allow_anonymous", c->allow_anonymous);
    else
        put_skey(&o, "allow_anonymous", NULL);
    put_bool(&o, "allow_plain_without_tls", c->allow_plain_without_tls);
    put_ukey(&o, "max_connections", c->max_connections);
    put_ukey(&o, "max_connections_per_user", c->max_connections_per_user);
    key(&o, "max_frame_size");
    putf(&o, "\"%llu\"", c->max_frame_size);
    key(&o, "max_message_size");
    putf(&o, "\"%llu\"", c->max_message_size);
    put_ukey(&o, "max_sessions", c->max_sessions);
    put_ukey(&o, "max_links", c->max_links);
    put_skey(&o, "queue_prefix", c->queue_prefix);
    put_skey(&o, "topic_prefix", c->topic_prefix);
    put_bool(&o, "auto_create", c->auto_create);
    put_skey(&o, "dead_letter_address", c->dead_letter_address);
    key(&o, "queue_defaults");
    put_policy(&o, &c->queue_defaults, NULL);
    key(&o, "subscription_defaults");
    put_policy(&o, &c->subscription_defaults, NULL);
    key(&o, "queues");
    puts_(&o, "[");
    for (size_t i = 0; i < c->nqueues; i++) {
        puts_(&o, i ? ",\n  " : "\n  ");
        put_policy(&o, &c->queues[i].policy, c->queues[i].name);
    }
    puts_(&o, "]");
    key(&o, "acl");
    puts_(&o, "[");
    for (size_t i = 0; i < c->nacl; i++) {
        puts_(&o, i ? ",\n  {\"user\": " : "\n  {\"user\": ");
        put_str(&o, c->acl[i].user);
        puts_(&o, ", \"address\": ");
        put_str(&o, c->acl[i].address);
        puts_(&o, ", \"allow\": ");
        put_rights(&o, c->acl[i].allow);
        puts_(&o, ", \"deny\": ");
        put_rights(&o, c->acl[i].deny);
        puts_(&o, "}");
    }
    puts_(&o, "]");
    put_skey(&o, "metrics_listen", c->metrics_listen);
    puts_(&o, "\n}\n");
    return o.p;
}

/* ------------------------------------------------------------------ */
/* The keys an accepted file may use (docs/broker.md)                  */

static const char *const top_keys[] = {
    "listen", "data_dir", "fsync", "container_id", "threads", "log_level", "tls_cert", "tls_key",
    "tls_key_password", "tls_ca", "tls_require_client_cert", "tls_min_version", "tls_ciphers",
    "tls_ciphersuites", "users_file", "sasl_mechanisms",
    "allow_anonymous", "allow_plain_without_tls", "max_connections", "max_connections_per_user",
    "max_frame_size", "max_message_size", "max_sessions", "max_links", "queue_prefix",
    "topic_prefix", "auto_create", "dead_letter_address", "queue_defaults",
    "subscription_defaults", "queues", "acl", "metrics_listen", NULL};
static const char *const policy_keys[] = {"max_depth", "max_delivery_count", "max_bytes",
                                          "overflow", "dead_letter_address", "durable", NULL};
static const char *const queue_keys[] = {"name", "max_depth", "max_delivery_count", "max_bytes",
                                         "overflow", "dead_letter_address", "durable", NULL};
static const char *const rule_keys[] = {"user", "address", "allow", "deny", NULL};

/* Every key of obj (skipped when not an object) is in keys, exactly. */
static void
keys_known(const lepi_json_t *obj, const char *const *keys)
{
    if (!obj || obj->type != LEPI_JSON_OBJECT)
        return;
    for (size_t i = 0; i < obj->u.obj.n; i++) {
        const lepi_json_member_t *m = &obj->u.obj.members[i];
        size_t k = 0;
        while (keys[k] &&
               !(m->key_len == strlen(keys[k]) && memcmp(m->key, keys[k], m->key_len) == 0))
            k++;
        if (!keys[k])
            abort(); /* an unknown key was accepted */
    }
}

static void
check_keys(const char *text, size_t len)
{
    lepi_json_opts_t o = {.max_depth = 16, .comments = true};
    lepi_json_t *root = NULL;
    if (lepi_json_parse(text, len, &o, &root, NULL, 0) != 0)
        abort(); /* the configuration parser accepted what JSON does not */
    keys_known(root, top_keys);
    keys_known(lepi_json_get(root, "queue_defaults"), policy_keys);
    keys_known(lepi_json_get(root, "subscription_defaults"), policy_keys);
    const lepi_json_t *q = lepi_json_get(root, "queues");
    for (size_t i = 0; q && q->type == LEPI_JSON_ARRAY && i < q->u.arr.n; i++)
        keys_known(&q->u.arr.items[i], queue_keys);
    const lepi_json_t *a = lepi_json_get(root, "acl");
    for (size_t i = 0; a && a->type == LEPI_JSON_ARRAY && i < a->u.arr.n; i++)
        keys_known(&a->u.arr.items[i], rule_keys);
    lepi_json_free(root);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

/* "fuzz.json:LINE:COL: message" with LINE:COL inside text (a position
 * one past the last character included), or for what has no place
 * "fuzz.json: message". */
static void
check_error(const lep_broker_config_t *c, int rc, const char *text, size_t len)
{
    const char *e = c->error;
    if (rc >= 0 || e[0] == '\0' || memchr(e, '\0', sizeof c->error) == NULL)
        abort();
    if (strncmp(e, NAME ":", strlen(NAME ":")) != 0)
        abort();
    e += strlen(NAME ":");
    if (rc == LEP_ERR_NOMEM) {
        if (strcmp(e, " out of memory") != 0)
            abort();
        return;
    }
    if (rc != LEP_ERR_DECODE && rc != LEP_ERR_LIMIT && rc != LEP_ERR_INVALID)
        abort(); /* parse from text: no LEP_ERR_IO */
    int line, col, n = 0;
    if (sscanf(e, "%d:%d: %n", &line, &col, &n) != 2 || n == 0 || e[n] == '\0')
        abort();
    /* the line's start and length */
    const char *p = text, *end = text + len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            abort(); /* past the last line */
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t linelen = (size_t)((nl ? nl : end) - p);
    if (line < 1 || col < 1 || (size_t)col > linelen + 1)
        abort();
}

/* ------------------------------------------------------------------ */
/* One allocation failed                                               */

typedef struct counter {
    long allocs;   /* live blocks */
    long calls;    /* allocation calls so far */
    long fail_at;  /* the call that fails; -1: none */
} counter_t;

static void *
c_malloc(size_t n, void *ctx)
{
    counter_t *k = ctx;
    if (k->calls++ == k->fail_at)
        return NULL;
    k->allocs++;
    return malloc(n);
}

static void *
c_realloc(void *p, size_t n, void *ctx)
{
    counter_t *k = ctx;
    if (k->calls++ == k->fail_at)
        return NULL;
    if (!p)
        k->allocs++;
    return realloc(p, n);
}

static void
c_free(void *p, void *ctx)
{
    counter_t *k = ctx;
    if (p)
        k->allocs--;
    free(p);
}

/* Parses text with allocation number fail_at failing (-1: none); returns
 * the calls made.  On success with ref given, the result equals it. */
static long
parse_counted(const char *text, size_t len, long fail_at, const lep_broker_config_t *ref)
{
    counter_t k = {0, 0, fail_at};
    lep_allocator_t a = {c_malloc, c_realloc, c_free, &k};
    lep_set_allocator(&a);
    lep_broker_config_t c;
    int rc = lep_broker_config_init(&c);
    if (rc == 0) {
        rc = lep_broker_config_parse(&c, text, len, NAME);
        if (rc == LEP_ERR_NOMEM)
            check_error(&c, rc, text, len);
        else if (rc != 0 || (ref && !config_eq(&c, ref)))
            abort(); /* a failed allocation is not another error */
    } else if (rc != LEP_ERR_NOMEM) {
        abort();
    }
    lep_broker_config_fini(&c);
    lep_set_allocator(NULL);
    if (k.allocs != 0)
        abort(); /* fini left something behind */
    return k.calls;
}

/* ------------------------------------------------------------------ */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) /* a configuration is a few KB */
        return 0;
    const char *text = (const char *)data;

    lep_broker_config_t c;
    if (lep_broker_config_init(&c) != 0)
        abort();
    int rc = lep_broker_config_parse(&c, text, size, NAME);
    if (rc != 0) {
        check_error(&c, rc, text, size);
        lep_broker_config_fini(&c); /* c may be partly updated: still all freed */
        return 0;
    }
    if (c.error[0] != '\0')
        abort(); /* success leaves no stale message */
    check_keys(text, size);

    /* written out and read back: the same configuration, the same text */
    char *t1 = write_config(&c);
    lep_broker_config_t d;
    if (lep_broker_config_init(&d) != 0)
        abort();
    if (lep_broker_config_parse(&d, t1, strlen(t1), NAME) != 0 || !config_eq(&c, &d))
        abort();
    char *t2 = write_config(&d);
    if (strcmp(t1, t2) != 0)
        abort();
    free(t2);

    /* the same file again over its own result: nothing changes */
    if (lep_broker_config_parse(&d, text, size, NAME) != 0 || !config_eq(&c, &d))
        abort();

    /* the coherence check, without the keys that make it read files */
    lep_broker_config_set_str(&d.tls_cert, NULL);
    lep_broker_config_set_str(&d.tls_key, NULL);
    lep_broker_config_set_str(&d.tls_ca, NULL);
    lep_broker_config_set_str(&d.users_file, NULL);
    rc = lep_broker_config_check(&d);
    if (rc != 0 && (rc != LEP_ERR_INVALID || d.error[0] == '\0'))
        abort();
    lep_broker_config_fini(&d);

    /* one allocation of the parse fails, picked by the input */
    long calls = parse_counted(text, size, -1, &c);
    if (calls > 0) {
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < size; i++)
            h = (h ^ data[i]) * 16777619u;
        parse_counted(text, size, (long)(h % (uint32_t)calls), &c);
    }

    free(t1);
    lep_broker_config_fini(&c);
    return 0;
}
