/* AMQP URL parsing: amqp[s]://[user[:password]@]host[:port][/address].
 * Everything is copied, decoded, into one buffer so the URL owns a single
 * allocation and the views stay valid together. */
#include <lepton/messaging_config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int __attribute__((format(printf, 2, 3)))
url_fail(lep_url_t *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->error, sizeof u->error, fmt, ap);
    va_end(ap);
    return LEP_ERR_INVALID;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends s[0..n) percent-decoded, NUL-terminated, at *w; returns the start
 * or NULL on a bad escape. */
static const char *
put_decoded(char **w, const char *s, size_t n)
{
    char *start = *w, *o = *w;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi, lo;
        if (i + 2 >= n)
            return NULL;
        if ((hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0))
            return NULL; /* %00 would truncate the C string */
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o++ = '\0';
    *w = o;
    return start;
}

static const char *
put_raw(char **w, const char *s, size_t n)
{
    char *start = *w;
    memcpy(start, s, n);
    start[n] = '\0';
    *w = start + n + 1;
    return start;
}

static int
parse_port(lep_url_t *u, const char *p, size_t n)
{
    if (n == 0)
        return url_fail(u, "empty port");
    if ((n == 4 && memcmp(p, "amqp", 4) == 0)) {
        u->port = LEP_AMQP_PORT;
        return 0;
    }
    if (n == 5 && memcmp(p, "amqps", 5) == 0) {
        u->port = LEP_AMQPS_PORT;
        return 0;
    }
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return url_fail(u, "bad port \"%.*s\"", (int)n, p);
        v = v * 10 + (unsigned long)(p[i] - '0');
        if (v > 65535)
            return url_fail(u, "port %.*s out of range (0-65535)", (int)n, p);
    }
    u->port = (uint16_t)v;
    return 0;
}

int
lep_url_parse(const char *s, lep_url_t *u)
{
    memset(u, 0, sizeof *u);
    if (!s || !*s)
        return url_fail(u, "empty URL");
    size_t len = strlen(s);
    const char *rest = s, *sep = strstr(s, "://");
    const char *scheme = "amqp";
    if (sep) {
        size_t n = (size_t)(sep - s);
        if (n == 4 && strncasecmp(s, "amqp", 4) == 0)
            scheme = "amqp";
        else if (n == 5 && strncasecmp(s, "amqps", 5) == 0)
            scheme = "amqps";
        else
            return url_fail(u, "unsupported scheme \"%.*s\" (expected amqp or amqps)", (int)n, s);
        rest = sep + 3;
    }
    const char *end = s + len;
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    const char *auth_end = slash ? slash : end;

    /* The last '@' ends the userinfo: an unencoded '@' in a password is a
     * common mistake that this keeps working. */
    const char *at = NULL;
    for (const char *q = rest; q < auth_end; q++)
        if (*q == '@')
            at = q;
    const char *hp = at ? at + 1 : rest;

    const char *host, *host_end, *port = NULL, *port_end = NULL;
    if (hp < auth_end && *hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(auth_end - hp));
        if (!rb)
            return url_fail(u, "unterminated '[' in IPv6 address");
        host = hp + 1;
        host_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return url_fail(u, "unexpected characters after ']'");
            port = rb + 2;
            port_end = auth_end;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        host = hp;
        host_end = colon ? colon : auth_end;
        if (colon) {
            if (memchr(colon + 1, ':', (size_t)(auth_end - colon - 1)))
                return url_fail(u, "IPv6 address must be in brackets");
            port = colon + 1;
            port_end = auth_end;
        }
    }
    if (host == host_end)
        return url_fail(u, "empty host");
    for (const char *q = host; q < host_end; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return url_fail(u, "space or control character in host");
    if (port) {
        int rc = parse_port(u, port, (size_t)(port_end - port));
        if (rc)
            return rc;
    } else {
        u->port = scheme[4] == 's' ? LEP_AMQPS_PORT : LEP_AMQP_PORT;
    }

    /* Decoded parts never grow; 6 NULs plus the longest scheme and default
     * port fit in the slack. */
    char *buf = lep_malloc(len + 32), *w = buf;
    if (!buf)
        return LEP_ERR_NOMEM;
    u->buf_ = buf;
    u->scheme = put_raw(&w, scheme, strlen(scheme));
    u->tls = scheme[4] == 's';
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *user_end = colon ? colon : at;
        if (!(u->user = put_decoded(&w, rest, (size_t)(user_end - rest))))
            return url_fail(u, "bad percent escape in user");
        if (colon && !(u->password = put_decoded(&w, colon + 1, (size_t)(at - colon - 1))))
            return url_fail(u, "bad percent escape in password");
    }
    /* Only a bracketed literal may hold an escape: RFC 6874's zone id,
     * "[fe80::1%25eth0]", which getaddrinfo wants as "fe80::1%eth0". */
    if (hp < auth_end && *hp == '[') {
        if (!(u->host = put_decoded(&w, host, (size_t)(host_end - host))))
            return url_fail(u, "bad percent escape in host");
    } else {
        u->host = put_raw(&w, host, (size_t)(host_end - host));
    }
    if (port) {
        u->port_str = put_raw(&w, port, (size_t)(port_end - port));
    } else {
        char tmp[8];
        int n = snprintf(tmp, sizeof tmp, "%u", (unsigned)u->port);
        u->port_str = put_raw(&w, tmp, (size_t)n);
    }
    if (slash && !(u->address = put_decoded(&w, slash + 1, (size_t)(end - slash - 1))))
        return url_fail(u, "bad percent escape in address");
    return 0;
}

void
lep_url_fini(lep_url_t *u)
{
    if (!u)
        return;
    lep_free(u->buf_);
    u->buf_ = NULL;
    u->scheme = u->user = u->password = u->host = u->port_str = u->address = NULL;
}
