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
    opterr = 0; /* cli_bad_option says it in one line */
}

const char cli_common_help[] =
    "      --settle MODE       delivery guarantee: at-most-once, at-least-once\n"
    "                          (default) or exactly-once\n"
    "      --timeout SECONDS   give up after SECONDS and exit with status 1\n"
    "      --sasl-mechanisms LIST\n"
    "                          SASL mechanisms allowed, space or comma separated\n"
    "                          (default: the strongest both sides have; PLAIN is\n"
    "                          used without TLS, and ANONYMOUS despite a user in\n"
    "                          the URL, only when named here; with --listen: the\n"
    "                          mechanisms offered)\n"
    "      --tls-ca FILE       trusted CA certificates (PEM) for amqps:// URLs\n"
    "                          (default: the system's); the server's name must\n"
    "                          match the URL's host\n"
    "      --tls-cert FILE     our certificate (PEM), for servers or client auth\n"
    "      --tls-key FILE      the private key of --tls-cert (PEM)\n"
    "      --max-reconnect N   connection attempts in a row before giving up\n"
    "                          (default 10; 0 or 1: a single attempt)\n"
    "  -v, --verbose           trace every AMQP frame on stderr\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show the version and exit\n";

void
cli_print_version(const char *prog)
{
    printf("%s (lepton) %s\n", prog, LEP_VERSION_STRING);
}

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

/* The long option named by "--name[=value]": exact, or the one option
 * the prefix abbreviates (as getopt_long allows); NULL when none or
 * ambiguous (*ambiguous set). */
static const struct option *
find_long(const struct option *longopts, const char *arg, bool *ambiguous)
{
    size_t n = strcspn(arg, "=");
    const struct option *hit = NULL;
    int hits = 0;
    *ambiguous = false;
    for (const struct option *lo = longopts; lo->name; lo++) {
        if (strncmp(lo->name, arg, n))
            continue;
        if (strlen(lo->name) == n)
            return lo;
        hit = lo;
        hits++;
    }
    if (hits > 1)
        *ambiguous = true;
    return hits == 1 ? hit : NULL;
}

void
cli_bad_option(const char *prog, char **argv, const struct option *longopts, int opt)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    bool is_long = arg && !strncmp(arg, "--", 2) && arg[2];
    if (is_long) {
        bool ambiguous;
        const struct option *lo = find_long(longopts, arg + 2, &ambiguous);
        int n = (int)strcspn(arg + 2, "=");
        if (ambiguous)
            cli_usage_error(prog, "option '--%.*s' is ambiguous", n, arg + 2);
        if (!lo)
            cli_usage_error(prog, "unknown option '--%.*s'", n, arg + 2);
        if (opt == ':')
            cli_usage_error(prog, "option '--%s' needs a value", lo->name);
        if (lo->has_arg == no_argument && arg[2 + n] == '=')
            cli_usage_error(prog, "option '--%s' takes no value", lo->name);
        cli_usage_error(prog, "bad option '%s'", arg);
    }
    if (opt == ':')
        cli_usage_error(prog, "option '-%c' needs a value", optopt);
    if (optopt > 32 && optopt < 127)
        cli_usage_error(prog, "unknown option '-%c'", optopt);
    cli_usage_error(prog, "unknown option '%s'", arg);
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

double
cli_parse_rate(const char *prog, const char *opt, const char *s, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < 0 || v > max)
        cli_usage_error(prog, "%s: '%s' is not a number from 0 to %g", opt, s, max);
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

/* "PLAIN,SCRAM-SHA-256" and "plain scram-sha-256" both work; every name
 * must be one the library knows (it would otherwise refuse each connection
 * attempt later, with a less clear message). */
static const char *
normalize_mechs(const char *prog, const char *s)
{
    static const char *const known[] = {"ANONYMOUS",     "PLAIN",         "EXTERNAL",
                                        "SCRAM-SHA-1",   "SCRAM-SHA-256", "SCRAM-SHA-512",
                                        NULL};
    static char buf[256];
    size_t n = strlen(s), len = 0;
    if (n >= sizeof buf)
        cli_usage_error(prog, "--sasl-mechanisms: list too long");
    for (const char *p = s; *p;) {
        p += strspn(p, " ,");
        size_t k = strcspn(p, " ,");
        if (!k)
            break;
        int i;
        for (i = 0; known[i]; i++)
            if (strlen(known[i]) == k && !strncasecmp(known[i], p, k))
                break;
        if (!known[i])
            cli_usage_error(prog,
                            "--sasl-mechanisms: unknown mechanism '%.*s' (known: ANONYMOUS, "
                            "PLAIN, EXTERNAL, SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512)",
                            (int)k, p);
        if (len)
            buf[len++] = ' ';
        memcpy(buf + len, known[i], strlen(known[i]));
        len += strlen(known[i]);
        p += k;
    }
    if (!len)
        cli_usage_error(prog, "--sasl-mechanisms: empty list");
    buf[len] = '\0';
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
    case 'V': cli_print_version(o->prog); exit(CLI_OK);
    default: return 0;
    }
}

static void
check_file(const cli_common_t *o, const char *opt, const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!path)
        return;
    if (!f) {
        cli_error(o->prog, "cannot read %s file %s: %s", opt, path, strerror(errno));
        exit(CLI_FAILED);
    }
    fclose(f);
}

void
cli_check_url(const cli_common_t *o, bool need_address, bool listen)
{
    lep_url_t u;
    int rc = lep_url_parse(o->url, &u);
    if (rc == LEP_ERR_NOMEM) {
        cli_error(o->prog, "out of memory");
        exit(CLI_FAILED);
    }
    if (rc) {
        char why[sizeof u.error];
        snprintf(why, sizeof why, "%s", u.error);
        lep_url_fini(&u);
        cli_usage_error(o->prog, "bad URL '%s': %s", o->url, why);
    }
    bool tls = u.tls, no_address = !u.address || !u.address[0];
    lep_url_fini(&u);
    if (need_address && no_address)
        cli_usage_error(o->prog, "URL '%s' has no address: amqp://HOST:PORT/ADDRESS", o->url);
    if (tls && listen && (!o->tls_cert || !o->tls_key))
        cli_usage_error(o->prog, "an amqps:// listener needs --tls-cert and --tls-key");
    if (o->tls_key && !o->tls_cert)
        cli_usage_error(o->prog, "--tls-key needs --tls-cert");
    if (!tls && (o->tls_ca || o->tls_cert || o->tls_key))
        cli_error(o->prog, "warning: the --tls-* options apply to amqps:// URLs only; "
                           "'%s' does not use TLS", o->url);
    if (tls) {
        check_file(o, "--tls-ca", o->tls_ca);
        check_file(o, "--tls-cert", o->tls_cert);
        check_file(o, "--tls-key", o->tls_key);
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
    copt->id = o->container_id;
    if (o->verbose) {
        copt->trace = trace_line;
        copt->trace_ctx = NULL;
    }
}

static void (*volatile signal_stop)(void *);
static void *volatile signal_arg;
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
    void (*stop)(void *) = signal_stop;
    if (stop)
        stop(signal_arg);
}

static void
stop_container(void *c)
{
    lep_container_stop(c);
}

void
cli_stop_on_signals(lep_container_t *c)
{
    cli_on_signals(stop_container, c);
}

void
cli_on_signals(void (*stop)(void *), void *arg)
{
    signal_stop = NULL; /* a signal meanwhile finds nothing half set */
    signal_arg = arg;
    signal_stop = stop;
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

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t
utf8_seq(const uint8_t *p, size_t n)
{
    size_t k = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    return k && k <= n && lep_utf8_valid(p, k) ? k : 0;
}

/* A JSON string.  Text that is not valid UTF-8 (a symbol or key from a
 * careless peer) still gives valid JSON: each stray byte becomes the
 * code point of the same value (\u00XX). */
static void
json_string(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            fwrite(p + i, 1, run - i, f);
            i = run;
            continue;
        }
        uint8_t c = p[i];
        switch (c) {
        case '"': fputs("\\\"", f); i++; continue;
        case '\\': fputs("\\\\", f); i++; continue;
        case '\n': fputs("\\n", f); i++; continue;
        case '\r': fputs("\\r", f); i++; continue;
        case '\t': fputs("\\t", f); i++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (!k) {
            fprintf(f, "\\u%04x", c);
            i++;
            continue;
        }
        fwrite(p + i, 1, k, f);
        i += k;
    }
    fputc('"', f);
}

static void
json_base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputs("{\"base64\": \"", f);
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
json_scalar(FILE *f, const lep_atom_t *a)
{
    char buf[64];
    switch (a->type) {
    case LEP_TYPE_NULL: fputs("null", f); break;
    case LEP_TYPE_BOOL: fputs(a->u.b ? "true" : "false", f); break;
    case LEP_TYPE_UBYTE:
    case LEP_TYPE_USHORT:
    case LEP_TYPE_UINT:
    case LEP_TYPE_ULONG:
        fprintf(f, "%llu", (unsigned long long)a->u.u);
        break;
    case LEP_TYPE_CHAR: {
        /* a Unicode code point: the one-character string (UTF-8) */
        uint64_t cp = a->u.u;
        uint8_t u[4];
        size_t k = 0;
        if (cp < 0x80) {
            u[k++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            u[k++] = (uint8_t)(0xc0 | cp >> 6);
            u[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            u[k++] = (uint8_t)(0xe0 | cp >> 12);
            u[k++] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            u[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else if (cp < 0x110000) {
            u[k++] = (uint8_t)(0xf0 | cp >> 18);
            u[k++] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
            u[k++] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
            u[k++] = (uint8_t)(0x80 | (cp & 0x3f));
        }
        if (k && lep_utf8_valid(u, k))
            json_string(f, u, k);
        else
            fprintf(f, "%llu", (unsigned long long)cp); /* a surrogate or out of range */
        break;
    }
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
    case LEP_TYPE_DECIMAL32:
    case LEP_TYPE_DECIMAL64:
    case LEP_TYPE_DECIMAL128: {
        /* opaque IEEE 754 decimal bytes, as lepton-dump shows them */
        size_t n = a->type == LEP_TYPE_DECIMAL32 ? 4 : a->type == LEP_TYPE_DECIMAL64 ? 8 : 16;
        int k = snprintf(buf, sizeof buf, "%s:0x", lep_type_name(a->type));
        for (size_t i = 0; i < n; i++)
            k += snprintf(buf + k, sizeof buf - (size_t)k, "%02x", a->u.dec[i]);
        json_string(f, (const uint8_t *)buf, (size_t)k);
        break;
    }
    default:
        fputs("null", f);
        break;
    }
}

static bool
is_compound(const lep_atom_t *a)
{
    return a->type == LEP_TYPE_LIST || a->type == LEP_TYPE_MAP || a->type == LEP_TYPE_ARRAY ||
           a->type == LEP_TYPE_DESCRIBED;
}

static void json_value(FILE *f, const lep_reader_t *parent, const lep_atom_t *a);

/* A map key: JSON keys are strings, so numbers and other values are
 * written as text. */
static void
json_key(FILE *f, const lep_atom_t *k)
{
    char kb[32];
    switch (k->type) {
    case LEP_TYPE_SYMBOL:
    case LEP_TYPE_STRING:
    case LEP_TYPE_BINARY: json_string(f, k->u.bytes.ptr, k->u.bytes.len); return;
    case LEP_TYPE_ULONG:
    case LEP_TYPE_UINT:
    case LEP_TYPE_USHORT:
    case LEP_TYPE_UBYTE:
        snprintf(kb, sizeof kb, "%llu", (unsigned long long)k->u.u);
        json_string(f, (const uint8_t *)kb, strlen(kb));
        return;
    case LEP_TYPE_LONG:
    case LEP_TYPE_INT:
    case LEP_TYPE_SHORT:
    case LEP_TYPE_BYTE:
        snprintf(kb, sizeof kb, "%lld", (long long)k->u.i);
        json_string(f, (const uint8_t *)kb, strlen(kb));
        return;
    default:
        break;
    }
    /* anything else: its readable form */
    lep_buf_t out;
    lep_buf_init(&out);
    lep_reader_t r;
    lep_reader_init(&r, k->raw.ptr, k->raw.len);
    if (!(k->flags & LEP_ATOM_ARRAY_ELEM) && lep_print_encoded(&r, &out, LEP_PRINT_DEFAULT) == 0)
        json_string(f, out.data, out.len);
    else
        json_string(f, (const uint8_t *)lep_type_name(k->type), strlen(lep_type_name(k->type)));
    lep_buf_fini(&out);
}

/* Lists and arrays become JSON arrays, maps objects, described values
 * {"descriptor": D, "value": V}.  A malformed element ends its container
 * early (as null), so the output stays valid JSON. */
static void
json_compound(FILE *f, const lep_reader_t *parent, const lep_atom_t *a)
{
    lep_reader_t child;
    lep_atom_t e, v;
    if (lep_reader_enter(parent, a, &child) != 0) {
        fputs("null", f);
        return;
    }
    int n = 0;
    switch (a->type) {
    case LEP_TYPE_LIST:
    case LEP_TYPE_ARRAY:
        fputc('[', f);
        while (!lep_reader_done(&child)) {
            fputs(n++ ? ", " : "", f);
            if (lep_reader_next(&child, &e) != 0) {
                fputs("null", f);
                break;
            }
            json_value(f, &child, &e);
        }
        fputc(']', f);
        break;
    case LEP_TYPE_MAP:
        fputc('{', f);
        while (!lep_reader_done(&child)) {
            if (lep_reader_next(&child, &e) != 0)
                break;
            fputs(n++ ? ", " : "", f);
            json_key(f, &e);
            fputs(": ", f);
            if (lep_reader_next(&child, &v) != 0) {
                fputs("null", f);
                break;
            }
            json_value(f, &child, &v);
        }
        fputc('}', f);
        break;
    default: { /* described */
        lep_reader_t dr;
        lep_atom_t d;
        fputs("{\"descriptor\": ", f);
        lep_reader_init(&dr, a->ctor.ptr, a->ctor.len);
        if (lep_reader_next(&dr, &d) == 0 && !is_compound(&d))
            json_scalar(f, &d);
        else
            fputs("null", f);
        fputs(", \"value\": ", f);
        if (lep_reader_next(&child, &v) == 0)
            json_value(f, &child, &v);
        else
            fputs("null", f);
        fputc('}', f);
        break;
    }
    }
}

static void
json_value(FILE *f, const lep_reader_t *parent, const lep_atom_t *a)
{
    if (is_compound(a))
        json_compound(f, parent, a);
    else
        json_scalar(f, a);
}

/* A value decoded on its own (raw holds its whole encoding). */
static void
json_atom(FILE *f, const lep_atom_t *a)
{
    if (!is_compound(a)) {
        json_scalar(f, a);
        return;
    }
    lep_reader_t r;
    lep_atom_t b;
    lep_reader_init(&r, a->raw.ptr, a->raw.len);
    if (lep_reader_next(&r, &b) == 0)
        json_compound(f, &r, &b);
    else
        fputs("null", f);
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
        /* keys are symbols or ulongs (spec); anything else a peer sends
         * becomes a string too, as JSON keys must be */
        fputs(o.n++ ? ", " : "", f);
        json_key(f, k);
        fputs(": ", f);
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
        /* each section is a list: one section gives its array, several an
         * array of them (as data sections do) */
        size_t ns = lep_message_body_count(m);
        if (ns != 1)
            fputc('[', f);
        for (size_t i = 0; i < ns; i++) {
            lep_bytes_t sec = lep_message_body_section(m, i);
            lep_reader_t r;
            lep_atom_t a;
            lep_reader_init(&r, sec.ptr, sec.len);
            fputs(i ? ", " : "", f);
            if (lep_reader_next(&r, &a) == 0)
                json_value(f, &r, &a);
            else
                fputs("null", f);
        }
        if (ns != 1)
            fputc(']', f);
        break;
    }
    default:
        fputs("null", f);
        break;
    }
    fputs("}\n", f);
}

void
cli_take_url(cli_common_t *o, int argc, char **argv, bool need_address, bool listen)
{
    if (optind >= argc)
        cli_usage_error(o->prog, "missing URL (amqp://HOST:PORT/ADDRESS)");
    if (optind + 1 < argc)
        cli_usage_error(o->prog, "unexpected argument '%s'", argv[optind + 1]);
    o->url = argv[optind];
    cli_check_url(o, need_address, listen);
}

lep_container_t *
cli_container_new(const cli_common_t *o, const lep_handler_t *h, void *ctx)
{
    lep_container_opts_t copt;
    cli_container_opts(o, &copt);
    copt.handler = h;
    copt.ctx = ctx;
    lep_container_t *c;
    if (lep_container_new(&c, &copt) != 0) {
        cli_error(o->prog, "cannot start: out of memory");
        exit(CLI_FAILED);
    }
    return c;
}
