/* connect.json: Proton's file-based connection configuration.  Keys,
 * defaults and search order follow Proton's documentation so one file
 * serves both toolkits. */
#include "common/common_internal.h"
#include <lepton/messaging_config.h>

#include "messaging/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A connect.json is a few hundred bytes; anything huge is a mistake. */
#define MAX_CONFIG_FILE (1u << 20)

static int __attribute__((format(printf, 4, 5)))
cfg_fail(lep_connect_config_t *c, const char *name, int rc, const char *fmt, ...)
{
    int n = snprintf(c->error, sizeof c->error, "%s: ", name ? name : "connect.json");
    if (n >= 0 && (size_t)n < sizeof c->error) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error + n, sizeof c->error - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void
free_fields(lep_connect_config_t *c)
{
    char **f[] = {&c->scheme, &c->host, &c->user, &c->password, &c->sasl_mechanisms,
                  &c->tls_ca, &c->tls_cert, &c->tls_key, &c->path};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lep_free(*f[i]);
        *f[i] = NULL;
    }
}

int
lep_connect_config_init(lep_connect_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->port = LEP_AMQPS_PORT;
    c->sasl_enabled = true;
    c->tls_verify = true;
    c->scheme = lepi_strdup("amqps");
    c->host = lepi_strdup("localhost");
    if (!c->scheme || !c->host)
        return LEP_ERR_NOMEM;
    return 0;
}

void
lep_connect_config_fini(lep_connect_config_t *c)
{
    if (c)
        free_fields(c);
}

typedef struct ctx {
    lep_connect_config_t *c;
    const char *name;
} ctx_t;

static int
type_error(ctx_t *x, const lepi_json_t *v, const char *key, const char *want)
{
    return cfg_fail(x->c, x->name, LEP_ERR_INVALID, "%d:%d: \"%s\" must be %s, not %s",
                    v->line, v->col, key, want, lepi_json_type_name(v->type));
}

static int
set_string(ctx_t *x, const lepi_json_t *v, const char *key, char **dst)
{
    if (v->type != LEPI_JSON_STRING)
        return type_error(x, v, key, "a string");
    if (strlen(v->u.str.ptr) != v->u.str.len)
        return cfg_fail(x->c, x->name, LEP_ERR_INVALID, "%d:%d: \"%s\" contains a NUL character",
                        v->line, v->col, key);
    char *s = lepi_strdup(v->u.str.ptr);
    if (!s)
        return LEP_ERR_NOMEM;
    lep_free(*dst);
    *dst = s;
    return 0;
}

static int
set_bool(ctx_t *x, const lepi_json_t *v, const char *key, bool *dst)
{
    if (v->type != LEPI_JSON_BOOL)
        return type_error(x, v, key, "a boolean");
    *dst = v->u.boolean;
    return 0;
}

static int
set_port(ctx_t *x, const lepi_json_t *v)
{
    if (v->type == LEPI_JSON_NUMBER) {
        if (!v->u.num.is_int || v->u.num.i < 0 || v->u.num.i > 65535)
            return cfg_fail(x->c, x->name, LEP_ERR_INVALID,
                            "%d:%d: \"port\" must be an integer from 0 to 65535", v->line, v->col);
        x->c->port = (uint16_t)v->u.num.i;
        return 0;
    }
    if (v->type != LEPI_JSON_STRING)
        return type_error(x, v, "port", "a number or a string");
    const char *s = v->u.str.ptr;
    if (strcmp(s, "amqp") == 0) {
        x->c->port = LEP_AMQP_PORT;
        return 0;
    }
    if (strcmp(s, "amqps") == 0) {
        x->c->port = LEP_AMQPS_PORT;
        return 0;
    }
    unsigned long p = 0;
    size_t n = v->u.str.len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (p = p * 10 + (unsigned long)(s[i] - '0')) > 65535)
            n = 0; /* flags the error below */
    }
    if (n == 0)
        return cfg_fail(x->c, x->name, LEP_ERR_INVALID,
                        "%d:%d: bad port \"%s\" (a number 0-65535, \"amqp\" or \"amqps\")",
                        v->line, v->col, s);
    x->c->port = (uint16_t)p;
    return 0;
}

static int
unknown_key(ctx_t *x, const lepi_json_member_t *m, const char *where)
{
    return cfg_fail(x->c, x->name, LEP_ERR_INVALID, "%d:%d: unknown key \"%s%s\"", m->line, m->col,
                    where, m->key);
}

static int
set_mechanisms(ctx_t *x, const lepi_json_t *v)
{
    if (v->type == LEPI_JSON_STRING)
        return set_string(x, v, "sasl.mechanisms", &x->c->sasl_mechanisms);
    if (v->type != LEPI_JSON_ARRAY)
        return type_error(x, v, "sasl.mechanisms", "a string or a list of strings");
    lep_buf_t b;
    int rc = 0;
    lep_buf_init(&b);
    for (size_t i = 0; i < v->u.arr.n && rc == 0; i++) {
        const lepi_json_t *it = &v->u.arr.items[i];
        if (it->type != LEPI_JSON_STRING || it->u.str.len == 0 ||
            strlen(it->u.str.ptr) != it->u.str.len || strchr(it->u.str.ptr, ' ')) {
            rc = cfg_fail(x->c, x->name, LEP_ERR_INVALID,
                          "%d:%d: \"sasl.mechanisms\" items must be mechanism names", it->line,
                          it->col);
            break;
        }
        if (b.len)
            rc = lep_buf_append(&b, " ", 1);
        if (rc == 0)
            rc = lep_buf_append(&b, it->u.str.ptr, it->u.str.len);
    }
    if (rc == 0)
        rc = lep_buf_append(&b, "", 1);
    if (rc) {
        lep_buf_fini(&b);
        return rc;
    }
    lep_free(x->c->sasl_mechanisms);
    x->c->sasl_mechanisms = (char *)b.data;
    return 0;
}

static bool
in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

static bool
is_sasl_key(const char *k)
{
    static const char *const keys[] = {"enabled", "enable", "allow_insecure", "mechanisms", NULL};
    return in_list(k, keys);
}

static bool
is_tls_key(const char *k)
{
    static const char *const keys[] = {"ca", "cert", "key", "verify", NULL};
    return in_list(k, keys);
}

static bool
is_top_key(const char *k)
{
    static const char *const keys[] = {"scheme", "host", "port", "user", "password", "sasl", "tls", NULL};
    return in_list(k, keys);
}

static int
parse_sasl(ctx_t *x, const lepi_json_t *v)
{
    if (v->type != LEPI_JSON_OBJECT)
        return type_error(x, v, "sasl", "an object");
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const lepi_json_member_t *m = &v->u.obj.members[i];
        int rc = 0;
        if (m->value.type == LEPI_JSON_NULL && is_sasl_key(m->key))
            continue;
        /* Proton's code and docs spell it "enable"; the issue "enabled". */
        if (strcmp(m->key, "enabled") == 0 || strcmp(m->key, "enable") == 0)
            rc = set_bool(x, &m->value, m->key[6] ? "sasl.enabled" : "sasl.enable",
                          &x->c->sasl_enabled);
        else if (strcmp(m->key, "allow_insecure") == 0)
            rc = set_bool(x, &m->value, "sasl.allow_insecure", &x->c->sasl_allow_insecure);
        else if (strcmp(m->key, "mechanisms") == 0)
            rc = set_mechanisms(x, &m->value);
        else
            rc = unknown_key(x, m, "sasl.");
        if (rc)
            return rc;
    }
    return 0;
}

static int
parse_tls(ctx_t *x, const lepi_json_t *v)
{
    if (v->type != LEPI_JSON_OBJECT)
        return type_error(x, v, "tls", "an object");
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const lepi_json_member_t *m = &v->u.obj.members[i];
        int rc;
        if (m->value.type == LEPI_JSON_NULL && is_tls_key(m->key))
            continue;
        if (strcmp(m->key, "ca") == 0)
            rc = set_string(x, &m->value, "tls.ca", &x->c->tls_ca);
        else if (strcmp(m->key, "cert") == 0)
            rc = set_string(x, &m->value, "tls.cert", &x->c->tls_cert);
        else if (strcmp(m->key, "key") == 0)
            rc = set_string(x, &m->value, "tls.key", &x->c->tls_key);
        else if (strcmp(m->key, "verify") == 0)
            rc = set_bool(x, &m->value, "tls.verify", &x->c->tls_verify);
        else
            rc = unknown_key(x, m, "tls.");
        if (rc)
            return rc;
    }
    return 0;
}

static int
apply(ctx_t *x, const lepi_json_t *root)
{
    bool port_set = false;
    const lepi_json_t *tls = NULL;
    int rc;
    if (root->type != LEPI_JSON_OBJECT)
        return cfg_fail(x->c, x->name, LEP_ERR_INVALID, "%d:%d: the top level must be an object, not %s",
                        root->line, root->col, lepi_json_type_name(root->type));
    for (size_t i = 0; i < root->u.obj.n; i++) {
        const lepi_json_member_t *m = &root->u.obj.members[i];
        const lepi_json_t *v = &m->value;
        const char *k = m->key;
        /* Proton reads null as "the default" (its documented template
         * lists "user": null and so on). */
        if (v->type == LEPI_JSON_NULL && is_top_key(k))
            continue;
        if (strcmp(k, "scheme") == 0) {
            if (v->type == LEPI_JSON_STRING && strcmp(v->u.str.ptr, "amqp") != 0 &&
                strcmp(v->u.str.ptr, "amqps") != 0)
                return cfg_fail(x->c, x->name, LEP_ERR_INVALID,
                                "%d:%d: \"scheme\" must be \"amqp\" or \"amqps\"", v->line, v->col);
            rc = set_string(x, v, k, &x->c->scheme);
        } else if (strcmp(k, "host") == 0) {
            if (v->type == LEPI_JSON_STRING && v->u.str.len == 0)
                return cfg_fail(x->c, x->name, LEP_ERR_INVALID, "%d:%d: \"host\" is empty",
                                v->line, v->col);
            rc = set_string(x, v, k, &x->c->host);
        } else if (strcmp(k, "port") == 0) {
            rc = set_port(x, v);
            port_set = true;
        } else if (strcmp(k, "user") == 0) {
            rc = set_string(x, v, k, &x->c->user);
        } else if (strcmp(k, "password") == 0) {
            rc = set_string(x, v, k, &x->c->password);
        } else if (strcmp(k, "sasl") == 0) {
            rc = parse_sasl(x, v);
        } else if (strcmp(k, "tls") == 0) {
            rc = parse_tls(x, v);
            tls = v;
        } else {
            rc = unknown_key(x, m, "");
        }
        if (rc)
            return rc;
    }
    /* As in Proton: TLS settings on a plain connection are a mistake the
     * user should hear about rather than a silent no-op. */
    if (tls && strcmp(x->c->scheme, "amqps") != 0)
        return cfg_fail(x->c, x->name, LEP_ERR_INVALID,
                        "%d:%d: \"tls\" is not allowed unless \"scheme\" is \"amqps\"", tls->line,
                        tls->col);
    /* Proton's default port is the scheme's service name. */
    if (!port_set)
        x->c->port = strcmp(x->c->scheme, "amqp") == 0 ? LEP_AMQP_PORT : LEP_AMQPS_PORT;
    return 0;
}

int
lep_connect_config_parse(lep_connect_config_t *c, const char *text, size_t len, const char *name)
{
    lepi_json_opts_t opts = {.max_depth = 16, .comments = true};
    lepi_json_t *root;
    char err[256];
    ctx_t x = {c, name ? name : "connect.json"};
    c->error[0] = '\0';
    int rc = lepi_json_parse(text, len, &opts, &root, err, sizeof err);
    if (rc == LEP_ERR_NOMEM)
        return cfg_fail(c, x.name, rc, "out of memory");
    if (rc)
        return cfg_fail(c, x.name, rc, "%s", err);
    rc = apply(&x, root);
    lepi_json_free(root);
    if (rc == LEP_ERR_NOMEM)
        cfg_fail(c, x.name, rc, "out of memory");
    return rc;
}

int
lep_connect_config_load(lep_connect_config_t *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(c, path, LEP_ERR_IO, "cannot open: %s", strerror(errno));
    lep_buf_t b;
    lep_buf_init(&b);
    int rc = 0;
    for (;;) {
        if ((rc = lep_buf_reserve(&b, 4096)) != 0)
            break;
        size_t n = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += n;
        if (b.len > MAX_CONFIG_FILE) {
            rc = cfg_fail(c, path, LEP_ERR_LIMIT, "file larger than %u bytes", MAX_CONFIG_FILE);
            break;
        }
        if (n == 0) {
            if (ferror(f))
                rc = cfg_fail(c, path, LEP_ERR_IO, "read error");
            break;
        }
    }
    fclose(f);
    if (rc == LEP_ERR_NOMEM)
        cfg_fail(c, path, rc, "out of memory");
    if (rc == 0)
        rc = lep_connect_config_parse(c, (const char *)b.data, b.len, path);
    lep_buf_fini(&b);
    if (rc)
        return rc;
    char *p = lepi_strdup(path);
    if (!p)
        return cfg_fail(c, path, LEP_ERR_NOMEM, "out of memory");
    lep_free(c->path);
    c->path = p;
    return 0;
}

static bool
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int
lep_connect_config_find(lep_connect_config_t *c, const lep_config_env_t *env)
{
    lep_config_env_t real;
    if (!env) {
        real.connect_file = getenv("MESSAGING_CONNECT_FILE");
        real.cwd = ".";
        real.home = getenv("HOME");
        real.sysconf_dir = "/etc";
        env = &real;
    }
    if (env->connect_file && *env->connect_file)
        return lep_connect_config_load(c, env->connect_file);
    const struct {
        const char *dir, *suffix;
    } cand[] = {
        {env->cwd, "/connect.json"},
        {env->home, "/.config/messaging/connect.json"},
        {env->sysconf_dir, "/messaging/connect.json"},
    };
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        if (!cand[i].dir || !*cand[i].dir)
            continue;
        size_t n = strlen(cand[i].dir) + strlen(cand[i].suffix) + 1;
        char *p = lep_malloc(n);
        if (!p)
            return cfg_fail(c, "connect.json", LEP_ERR_NOMEM, "out of memory");
        snprintf(p, n, "%s%s", cand[i].dir, cand[i].suffix);
        int rc = LEP_ERR_NOT_FOUND;
        if (exists(p))
            rc = lep_connect_config_load(c, p);
        lep_free(p);
        if (rc != LEP_ERR_NOT_FOUND)
            return rc;
    }
    snprintf(c->error, sizeof c->error, "no connect.json found");
    return LEP_ERR_NOT_FOUND;
}
