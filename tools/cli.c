/* Shared parts of the lepton command-line clients (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

void
cli_common_init(cli_common_t *o, const char *prog)
{
    memset(o, 0, sizeof *o);
    o->prog = prog;
    o->mode = LEP_AT_LEAST_ONCE;
    o->max_reconnect = 10;
}

const char cli_common_help[] =
    "      --settle MODE       delivery guarantee: at-most-once, at-least-once\n"
    "                          (default) or exactly-once\n"
    "      --timeout SECONDS   give up after SECONDS and exit with status 1\n"
    "      --sasl-mechanisms LIST\n"
    "                          SASL mechanisms allowed, space or comma separated\n"
    "                          (default: the strongest both sides have; PLAIN is\n"
    "                          used without TLS only when named here)\n"
    "      --tls-ca FILE       trusted CA certificates (PEM) for amqps:// URLs\n"
    "      --tls-cert FILE     our certificate (PEM), for servers or client auth\n"
    "      --tls-key FILE      the private key of --tls-cert (PEM)\n"
    "      --max-reconnect N   consecutive failed connection attempts before\n"
    "                          giving up (default 10; 0: never reconnect)\n"
    "  -v, --verbose           trace every AMQP frame on stderr\n"
    "  -h, --help              show this help and exit\n";

void
cli_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    exit(CLI_USAGE);
}

uint64_t
cli_parse_u64(const char *prog, const char *opt, const char *s, uint64_t max)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+')
        cli_usage_error(prog, "%s: '%s' is not a number", opt, s ? s : "");
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        cli_usage_error(prog, "%s: '%s' is not a number", opt, s);
    if (errno == ERANGE || v > max)
        cli_usage_error(prog, "%s: %s is too large (at most %llu)", opt, s,
                        (unsigned long long)max);
    return v;
}

double
cli_parse_seconds(const char *prog, const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 1e7)
        cli_usage_error(prog, "%s: '%s' is not a positive number of seconds", opt, s);
    return v;
}

static lep_delivery_mode_t
parse_mode(const char *prog, const char *s)
{
    if (!strcmp(s, "at-most-once"))
        return LEP_AT_MOST_ONCE;
    if (!strcmp(s, "at-least-once"))
        return LEP_AT_LEAST_ONCE;
    if (!strcmp(s, "exactly-once"))
        return LEP_EXACTLY_ONCE;
    cli_usage_error(prog, "--settle: unknown mode '%s' (at-most-once, at-least-once, "
                          "exactly-once)", s);
}

/* "PLAIN,SCRAM-SHA-256" and "PLAIN SCRAM-SHA-256" both work; names are
 * checked when the connection is made. */
static const char *
normalize_mechs(const char *prog, const char *s)
{
    static char buf[256];
    size_t n = strlen(s);
    if (n >= sizeof buf || !n)
        cli_usage_error(prog, "--sasl-mechanisms: bad list '%s'", s);
    for (size_t i = 0; i <= n; i++)
        buf[i] = s[i] == ',' ? ' ' : s[i];
    return buf;
}

int
cli_common_option(cli_common_t *o, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_BASE + 0: o->mode = parse_mode(o->prog, arg); return 1;
    case CLI_OPT_BASE + 1: o->timeout_s = cli_parse_seconds(o->prog, "--timeout", arg); return 1;
    case CLI_OPT_BASE + 2: o->sasl_mechanisms = normalize_mechs(o->prog, arg); return 1;
    case CLI_OPT_BASE + 3: o->tls_ca = arg; return 1;
    case CLI_OPT_BASE + 4: o->tls_cert = arg; return 1;
    case CLI_OPT_BASE + 5: o->tls_key = arg; return 1;
    case CLI_OPT_BASE + 6:
        o->max_reconnect = (int)cli_parse_u64(o->prog, "--max-reconnect", arg, 1000000);
        return 1;
    case 'v': o->verbose++; return 1;
    default: return 0;
    }
}

static bool
mech_listed(const char *list, const char *mech)
{
    size_t n = strlen(mech);
    for (const char *p = list; p && *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && !strncasecmp(p, mech, n))
            return true;
        p = e;
    }
    return false;
}

void
cli_connection_opts(const cli_common_t *o, lep_connection_opts_t *co)
{
    lep_connection_opts_init(co);
    co->sasl_mechanisms = o->sasl_mechanisms;
    /* Naming PLAIN is the permission to send a password in the clear. */
    co->sasl_allow_insecure = o->sasl_mechanisms && mech_listed(o->sasl_mechanisms, "PLAIN");
    co->tls_ca = o->tls_ca;
    co->tls_cert = o->tls_cert;
    co->tls_key = o->tls_key;
    co->reconnect.enabled = o->max_reconnect > 0;
    co->reconnect.max_attempts = (uint32_t)o->max_reconnect;
}

static void
trace_line(void *ctx, lep_conn_t *c, bool sent, const char *line)
{
    /* line already says which way the frame went */
    fprintf(stderr, "[%p] %s\n", (void *)c, line);
}

void
cli_container_opts(const cli_common_t *o, lep_container_opts_t *copt)
{
    lep_container_opts_init(copt);
    if (o->verbose) {
        copt->trace = trace_line;
        copt->trace_ctx = NULL;
    }
}

static lep_container_t *signal_target;
static volatile sig_atomic_t signalled;

static void
on_signal(int sig)
{
    if (signalled) {
        /* A second ^C: the user means it. */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    signalled = 1;
    if (signal_target)
        lep_container_stop(signal_target);
}

void
cli_stop_on_signals(lep_container_t *c)
{
    signal_target = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool
cli_interrupted(void)
{
    return signalled != 0;
}

typedef struct timeout_ctx {
    lep_container_t *c;
    volatile bool *flag;
} timeout_ctx_t;

static timeout_ctx_t timeout_ctx;

static void
on_timeout(void *ctx)
{
    timeout_ctx_t *t = ctx;
    *t->flag = true;
    lep_container_stop(t->c);
}

void
cli_arm_timeout(lep_container_t *c, double seconds, volatile bool *timed_out)
{
    if (seconds <= 0)
        return;
    timeout_ctx.c = c;
    timeout_ctx.flag = timed_out;
    lep_container_schedule(c, (uint64_t)(seconds * 1000.0 + 0.5), on_timeout, &timeout_ctx);
}

double
cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ */
/* Printing messages                                                   */

static void
print_encoded(FILE *f, lep_bytes_t enc)
{
    lep_buf_t out;
    lep_buf_init(&out);
    lep_reader_t r;
    lep_reader_init(&r, enc.ptr, enc.len);
    if (lep_print_encoded(&r, &out, LEP_PRINT_DEFAULT) == 0)
        fwrite(out.data, 1, out.len, f);
    else
        fputs("<undecodable>", f);
    lep_buf_fini(&out);
}

void
cli_print_body(FILE *f, const lep_message_t *m)
{
    lep_bytes_t s;
    switch (lep_message_body_kind(m)) {
    case LEP_BODY_DATA:
        for (size_t i = 0; i < lep_message_body_count(m); i++) {
            lep_bytes_t b = lep_message_body_section(m, i);
            fwrite(b.ptr, 1, b.len, f);
        }
        break;
    case LEP_BODY_VALUE:
        if (lep_message_body_string(m, &s) == 0)
            fwrite(s.ptr, 1, s.len, f);
        else
            print_encoded(f, lep_message_body_section(m, 0));
        break;
    case LEP_BODY_SEQUENCE:
        for (size_t i = 0; i < lep_message_body_count(m); i++) {
            if (i)
                fputc(' ', f);
            print_encoded(f, lep_message_body_section(m, i));
        }
        break;
    default:
        break;
    }
    fputc('\n', f);
}

static void
json_string(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void
json_base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputs("{\"base64\":\"", f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        fputc(tab[v >> 18 & 63], f);
        fputc(tab[v >> 12 & 63], f);
        fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? tab[v & 63] : '=', f);
    }
    fputs("\"}", f);
}

static void
json_bytes(FILE *f, lep_bytes_t b)
{
    if (lep_utf8_valid(b.ptr, b.len))
        json_string(f, b.ptr, b.len);
    else
        json_base64(f, b.ptr, b.len);
}

static void
json_atom(FILE *f, const lep_atom_t *a)
{
    char buf[64];
    switch (a->type) {
    case LEP_TYPE_NULL: fputs("null", f); break;
    case LEP_TYPE_BOOL: fputs(a->u.b ? "true" : "false", f); break;
    case LEP_TYPE_UBYTE:
    case LEP_TYPE_USHORT:
    case LEP_TYPE_UINT:
    case LEP_TYPE_ULONG:
    case LEP_TYPE_CHAR:
        fprintf(f, "%llu", (unsigned long long)a->u.u);
        break;
    case LEP_TYPE_BYTE:
    case LEP_TYPE_SHORT:
    case LEP_TYPE_INT:
    case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        fprintf(f, "%lld", (long long)a->u.i);
        break;
    case LEP_TYPE_FLOAT:
    case LEP_TYPE_DOUBLE: {
        double d = a->type == LEP_TYPE_FLOAT ? a->u.f : a->u.d;
        if (isfinite(d))
            fprintf(f, "%.17g", d);
        else
            fputs("null", f);
        break;
    }
    case LEP_TYPE_UUID: {
        const uint8_t *u = a->u.uuid;
        snprintf(buf, sizeof buf,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
                 u[13], u[14], u[15]);
        json_string(f, (const uint8_t *)buf, strlen(buf));
        break;
    }
    case LEP_TYPE_STRING:
    case LEP_TYPE_SYMBOL:
        json_string(f, a->u.bytes.ptr, a->u.bytes.len);
        break;
    case LEP_TYPE_BINARY:
        json_bytes(f, a->u.bytes);
        break;
    default: {
        /* compound and exotic values: their readable form, as a string */
        lep_buf_t out;
        lep_buf_init(&out);
        lep_reader_t r;
        lep_reader_init(&r, a->raw.ptr, a->raw.len);
        if (lep_print_encoded(&r, &out, LEP_PRINT_DEFAULT) == 0)
            json_string(f, out.data, out.len);
        else
            fputs("null", f);
        lep_buf_fini(&out);
        break;
    }
    }
}

typedef struct json_obj {
    FILE *f;
    int n;
} json_obj_t;

static void
key(json_obj_t *o, const char *k)
{
    fputs(o->n++ ? ", " : "", o->f);
    json_string(o->f, (const uint8_t *)k, strlen(k));
    fputs(": ", o->f);
}

static void
str_field(json_obj_t *o, const lep_message_t *m, lep_msg_field_t fld, const char *k,
          lep_bytes_t v)
{
    if (!lep_message_has(m, fld))
        return;
    key(o, k);
    json_bytes(o->f, v);
}

static void
num_field(json_obj_t *o, const lep_message_t *m, lep_msg_field_t fld, const char *k,
          long long v)
{
    if (!lep_message_has(m, fld))
        return;
    key(o, k);
    fprintf(o->f, "%lld", v);
}

static void
annotations(FILE *f, json_obj_t *top, const lep_message_t *m, lep_msg_annotations_t which,
            const char *name)
{
    size_t n = lep_message_annotation_count(m, which);
    if (!n)
        return;
    key(top, name);
    json_obj_t o = {f, 0};
    fputc('{', f);
    for (size_t i = 0; i < n; i++) {
        const lep_atom_t *k, *v;
        if (lep_message_annotation_at(m, which, i, &k, &v) != 0)
            continue;
        char kb[32];
        if (k->type == LEP_TYPE_ULONG) {
            snprintf(kb, sizeof kb, "%llu", (unsigned long long)k->u.u);
            key(&o, kb);
        } else {
            fputs(o.n++ ? ", " : "", f);
            json_string(f, k->u.bytes.ptr, k->u.bytes.len);
            fputs(": ", f);
        }
        json_atom(f, v);
    }
    fputc('}', f);
}

void
cli_print_json(FILE *f, const lep_message_t *m)
{
    json_obj_t top = {f, 0};
    fputc('{', f);
    /* header */
    json_obj_t h = {f, 0};
    bool any = false;
    for (int fld = LEP_MSG_DURABLE; fld <= LEP_MSG_DELIVERY_COUNT; fld++)
        any |= lep_message_has(m, (lep_msg_field_t)fld);
    if (any) {
        key(&top, "header");
        fputc('{', f);
        if (lep_message_has(m, LEP_MSG_DURABLE)) {
            key(&h, "durable");
            fputs(lep_message_durable(m) ? "true" : "false", f);
        }
        num_field(&h, m, LEP_MSG_PRIORITY, "priority", lep_message_priority(m));
        num_field(&h, m, LEP_MSG_TTL, "ttl", lep_message_ttl(m));
        if (lep_message_has(m, LEP_MSG_FIRST_ACQUIRER)) {
            key(&h, "first_acquirer");
            fputs(lep_message_first_acquirer(m) ? "true" : "false", f);
        }
        num_field(&h, m, LEP_MSG_DELIVERY_COUNT, "delivery_count", lep_message_delivery_count(m));
        fputc('}', f);
    }
    /* properties */
    any = false;
    for (int fld = LEP_MSG_MESSAGE_ID; fld < LEP_MSG_FIELD_COUNT_; fld++)
        any |= lep_message_has(m, (lep_msg_field_t)fld);
    if (any) {
        json_obj_t p = {f, 0};
        key(&top, "properties");
        fputc('{', f);
        if (lep_message_id(m)) {
            key(&p, "message_id");
            json_atom(f, lep_message_id(m));
        }
        str_field(&p, m, LEP_MSG_USER_ID, "user_id", lep_message_user_id(m));
        str_field(&p, m, LEP_MSG_TO, "to", lep_message_to(m));
        str_field(&p, m, LEP_MSG_SUBJECT, "subject", lep_message_subject(m));
        str_field(&p, m, LEP_MSG_REPLY_TO, "reply_to", lep_message_reply_to(m));
        if (lep_message_correlation_id(m)) {
            key(&p, "correlation_id");
            json_atom(f, lep_message_correlation_id(m));
        }
        str_field(&p, m, LEP_MSG_CONTENT_TYPE, "content_type", lep_message_content_type(m));
        str_field(&p, m, LEP_MSG_CONTENT_ENCODING, "content_encoding",
                  lep_message_content_encoding(m));
        num_field(&p, m, LEP_MSG_ABSOLUTE_EXPIRY_TIME, "absolute_expiry_time",
                  lep_message_absolute_expiry_time(m));
        num_field(&p, m, LEP_MSG_CREATION_TIME, "creation_time", lep_message_creation_time(m));
        str_field(&p, m, LEP_MSG_GROUP_ID, "group_id", lep_message_group_id(m));
        num_field(&p, m, LEP_MSG_GROUP_SEQUENCE, "group_sequence", lep_message_group_sequence(m));
        str_field(&p, m, LEP_MSG_REPLY_TO_GROUP_ID, "reply_to_group_id",
                  lep_message_reply_to_group_id(m));
        fputc('}', f);
    }
    annotations(f, &top, m, LEP_MSG_MESSAGE_ANNOTATIONS, "message_annotations");
    size_t np = lep_message_property_count(m);
    if (np) {
        json_obj_t a = {f, 0};
        key(&top, "application_properties");
        fputc('{', f);
        for (size_t i = 0; i < np; i++) {
            lep_bytes_t k;
            const lep_atom_t *v;
            if (lep_message_property_at(m, i, &k, &v) != 0)
                continue;
            fputs(a.n++ ? ", " : "", f);
            json_string(f, k.ptr, k.len);
            fputs(": ", f);
            json_atom(f, v);
        }
        fputc('}', f);
    }
    key(&top, "body");
    lep_atom_t v;
    switch (lep_message_body_kind(m)) {
    case LEP_BODY_DATA:
        if (lep_message_body_count(m) == 1) {
            json_bytes(f, lep_message_body_section(m, 0));
        } else {
            fputc('[', f);
            for (size_t i = 0; i < lep_message_body_count(m); i++) {
                fputs(i ? ", " : "", f);
                json_bytes(f, lep_message_body_section(m, i));
            }
            fputc(']', f);
        }
        break;
    case LEP_BODY_VALUE:
        if (lep_message_body_value(m, &v) == 0)
            json_atom(f, &v);
        else
            fputs("null", f);
        break;
    case LEP_BODY_SEQUENCE: {
        fputc('[', f);
        for (size_t i = 0; i < lep_message_body_count(m); i++) {
            lep_bytes_t sec = lep_message_body_section(m, i);
            lep_reader_t r;
            lep_atom_t a;
            lep_reader_init(&r, sec.ptr, sec.len);
            fputs(i ? ", " : "", f);
            if (lep_reader_next(&r, &a) == 0)
                json_atom(f, &a);
            else
                fputs("null", f);
        }
        fputc(']', f);
        break;
    }
    default:
        fputs("null", f);
        break;
    }
    fputs("}\n", f);
}
