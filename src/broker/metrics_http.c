/* The Prometheus endpoint: a poll() loop on its own thread serving
 * GET /metrics, and the text exposition format helpers.
 *
 * Deliberately small: no keep-alive, no chunking, no compression.  A
 * scrape every few seconds is the whole load; the limits (request size,
 * request time, write time, slots) only make sure a misbehaving client
 * cannot hold resources or stall shutdown. */
#define _GNU_SOURCE
#include "broker/metrics_http.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 500     /* reading what a client still sends after our answer */
#define LINGER_BYTES 65536

typedef enum cstate { C_FREE, C_READ, C_WRITE, C_LINGER } cstate_t;

typedef struct client {
    cstate_t state;
    int fd;
    int64_t deadline; /* monotonic ms */
    size_t rlen;
    size_t lingered;
    char req[LEPI_METRICS_MAX_REQUEST];
    char head[256];
    size_t hlen;
    lep_buf_t body;
    size_t off; /* bytes of head + body written */
} client_t;

struct lepi_metrics_http {
    int lfd;
    int wake[2];
    uint16_t port;
    pthread_t thread;
    int64_t accept_after; /* out of descriptors: accepting again from then on */
    lepi_metrics_render_fn render;
    void *ctx;
    client_t clients[LEPI_METRICS_MAX_CLIENTS];
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int
lepi_metrics_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *h = s, *hend, *p;
    if (!s)
        return LEP_ERR_INVALID;
    if (*s == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':')
            return LEP_ERR_INVALID;
        p = hend + 2;
    } else {
        hend = strrchr(s, ':');
        if (!hend || memchr(s, ':', (size_t)(hend - s)))
            return LEP_ERR_INVALID; /* no port, or an IPv6 address without brackets */
        p = hend + 1;
    }
    size_t n = (size_t)(hend - h);
    if (n == 0 || n >= hostlen)
        return LEP_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f || h[i] == '/' || h[i] == '[' ||
            h[i] == ']')
            return LEP_ERR_INVALID;
    unsigned long v = 0;
    size_t digits = 0;
    for (; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 5)
            return LEP_ERR_INVALID;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (digits == 0 || v > 65535)
        return LEP_ERR_INVALID;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (uint16_t)v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void
client_close(client_t *cl)
{
    close(cl->fd);
    lep_buf_fini(&cl->body);
    cl->state = C_FREE;
    cl->fd = -1;
}

/* After the answer: stop writing, read and discard what the client still
 * sends for a moment, so closing with unread input does not reset the
 * connection before the client has read the answer. */
static void
client_linger(client_t *cl)
{
    shutdown(cl->fd, SHUT_WR);
    cl->state = C_LINGER;
    cl->lingered = 0;
    cl->deadline = now_ms() + LINGER_MS;
}

static void
respond(lepi_metrics_http_t *m, client_t *cl, int status, const char *extra)
{
    static const char *const reason[] = {[200] = "OK",
                                         [400] = "Bad Request",
                                         [404] = "Not Found",
                                         [405] = "Method Not Allowed"};
    const char *type = "text/plain; charset=utf-8";
    lep_buf_init(&cl->body);
    if (status == 200) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        m->render(m->ctx, &cl->body);
    } else if (lep_buf_printf(&cl->body, "%s\n", reason[status]) != 0) {
        lep_buf_clear(&cl->body); /* out of memory: an empty body still answers */
    }
    int n = snprintf(cl->head, sizeof cl->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason[status], type, cl->body.len, extra ? extra : "");
    cl->hlen = (size_t)n < sizeof cl->head ? (size_t)n : sizeof cl->head - 1;
    cl->off = 0;
    cl->state = C_WRITE;
    cl->deadline = now_ms() + LEPI_METRICS_WRITE_MS;
}

/* The request line of a complete request: method, target, version. */
static void
handle_request(lepi_metrics_http_t *m, client_t *cl, size_t line_len)
{
    char *line = cl->req;
    line[line_len] = '\0';
    if (line_len && line[line_len - 1] == '\r')
        line[--line_len] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ') ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp1[1] != '/') {
        respond(m, cl, 400, NULL);
        return;
    }
    for (char *p = line; p < sp1; p++) {
        if (*p < 'A' || *p > 'Z') {
            respond(m, cl, 400, NULL);
            return;
        }
    }
    *sp1 = *sp2 = '\0';
    char *target = sp1 + 1;
    target[strcspn(target, "?")] = '\0';
    if (strcmp(line, "GET") != 0)
        respond(m, cl, 405, "Allow: GET\r\n");
    else if (strcmp(target, "/metrics") != 0)
        respond(m, cl, 404, NULL);
    else
        respond(m, cl, 200, NULL);
}

static void
client_read(lepi_metrics_http_t *m, client_t *cl)
{
    for (;;) {
        size_t room = sizeof cl->req - cl->rlen;
        if (room == 0) { /* the headers do not fit: drop */
            client_close(cl);
            return;
        }
        ssize_t r = recv(cl->fd, cl->req + cl->rlen, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) { /* closed or failed before a whole request */
            client_close(cl);
            return;
        }
        size_t from = cl->rlen >= 3 ? cl->rlen - 3 : 0;
        cl->rlen += (size_t)r;
        /* The end of the headers: an empty line (CRLF CRLF, or bare LFs). */
        for (size_t i = from; i < cl->rlen; i++) {
            if (cl->req[i] != '\n')
                continue;
            bool end = (i >= 1 && cl->req[i - 1] == '\n') ||
                       (i >= 2 && cl->req[i - 1] == '\r' && cl->req[i - 2] == '\n');
            if (end) {
                const char *nl = memchr(cl->req, '\n', cl->rlen);
                handle_request(m, cl, (size_t)(nl - cl->req));
                return;
            }
        }
    }
}

static void
client_write(client_t *cl)
{
    for (;;) {
        struct iovec iov[2];
        int n = 0;
        size_t total = cl->hlen + cl->body.len;
        if (cl->off >= total) {
            client_linger(cl);
            return;
        }
        if (cl->off < cl->hlen)
            iov[n++] = (struct iovec){cl->head + cl->off, cl->hlen - cl->off};
        size_t boff = cl->off > cl->hlen ? cl->off - cl->hlen : 0;
        if (cl->body.len > boff)
            iov[n++] = (struct iovec){cl->body.data + boff, cl->body.len - boff};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(cl->fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0) {
            client_close(cl);
            return;
        }
        cl->off += (size_t)w;
    }
}

static void
client_drain(client_t *cl)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(cl->fd, buf, sizeof buf, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0 || (cl->lingered += (size_t)r) > LINGER_BYTES) {
            client_close(cl);
            return;
        }
    }
}

static void
accept_clients(lepi_metrics_http_t *m)
{
    for (size_t i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++) {
        client_t *cl = &m->clients[i];
        if (cl->state != C_FREE)
            continue;
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* The connection stays in the backlog: pause rather than spin. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                m->accept_after = now_ms() + 100;
            return; /* else EAGAIN, or a connection that died in the backlog */
        }
        cl->fd = fd;
        cl->state = C_READ;
        cl->rlen = 0;
        cl->deadline = now_ms() + LEPI_METRICS_REQUEST_MS;
        lep_buf_init(&cl->body);
    }
}

static void *
serve(void *arg)
{
    lepi_metrics_http_t *m = arg;
    struct pollfd pfd[2 + LEPI_METRICS_MAX_CLIENTS];
    client_t *who[2 + LEPI_METRICS_MAX_CLIENTS];
    for (;;) {
        nfds_t n = 0;
        size_t busy = 0;
        int64_t now = now_ms(), next = -1;
        pfd[n++] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
        for (size_t i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++) {
            client_t *cl = &m->clients[i];
            if (cl->state == C_FREE)
                continue;
            if (cl->deadline <= now) { /* too slow: drop */
                client_close(cl);
                continue;
            }
            busy++;
            if (next < 0 || cl->deadline < next)
                next = cl->deadline;
            who[n] = cl;
            pfd[n++] = (struct pollfd){.fd = cl->fd,
                                       .events = cl->state == C_WRITE ? POLLOUT : POLLIN};
        }
        nfds_t lidx = n;
        if (busy < LEPI_METRICS_MAX_CLIENTS && now >= m->accept_after)
            pfd[n++] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
        else if (busy < LEPI_METRICS_MAX_CLIENTS && (next < 0 || m->accept_after < next))
            next = m->accept_after;
        int timeout = next < 0 ? -1 : (int)(next - now);
        int r = poll(pfd, n, timeout);
        if (r < 0 && errno != EINTR)
            break; /* cannot happen with valid descriptors */
        if (r <= 0)
            continue;
        if (pfd[0].revents)
            break; /* lepi_metrics_http_stop */
        for (nfds_t i = 1; i < lidx; i++) {
            client_t *cl = who[i];
            if (!pfd[i].revents)
                continue;
            if (cl->state == C_READ)
                client_read(m, cl);
            if (cl->state == C_WRITE) /* also at once after the request */
                client_write(cl);
            else if (cl->state == C_LINGER)
                client_drain(cl);
        }
        if (lidx < n && pfd[lidx].revents)
            accept_clients(m);
    }
    for (size_t i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++)
        if (m->clients[i].state != C_FREE)
            client_close(&m->clients[i]);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Start and stop                                                      */

static int
open_listener(lepi_metrics_http_t *m, const char *addr, char *err, size_t errlen)
{
    char host[256], port_str[8];
    uint16_t port;
    if (lepi_metrics_parse_listen(addr, host, sizeof host, &port) != 0) {
        set_err(err, errlen, "metrics: bad address \"%s\" (host:port)", addr ? addr : "");
        return LEP_ERR_INVALID;
    }
    snprintf(port_str, sizeof port_str, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res, *ai;
    int g = getaddrinfo(host, port_str, &hints, &res);
    if (g != 0) {
        set_err(err, errlen, "metrics: %s: %s", host,
                g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return g == EAI_MEMORY ? LEP_ERR_NOMEM : LEP_ERR_INVALID;
    }
    int fd = -1, e = 0;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        set_err(err, errlen, "metrics: cannot listen on %s: %s", addr, strerror(e));
        return LEP_ERR_IO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    m->lfd = fd;
    return 0;
}

int
lepi_metrics_http_start(lepi_metrics_http_t **out, const char *listen,
                        lepi_metrics_render_fn render, void *ctx, char *err, size_t errlen)
{
    *out = NULL;
    if (!render) {
        set_err(err, errlen, "metrics: no render function");
        return LEP_ERR_INVALID;
    }
    lepi_metrics_http_t *m = lep_calloc(1, sizeof *m);
    if (!m) {
        set_err(err, errlen, "metrics: out of memory");
        return LEP_ERR_NOMEM;
    }
    m->lfd = m->wake[0] = m->wake[1] = -1;
    m->render = render;
    m->ctx = ctx;
    for (size_t i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++)
        m->clients[i].fd = -1;
    int rc = open_listener(m, listen, err, errlen);
    if (rc == 0 && pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        set_err(err, errlen, "metrics: pipe: %s", strerror(errno));
        rc = LEP_ERR_IO;
    }
    if (rc == 0) {
        /* Signals go to the broker's threads, never to this one. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(&m->thread, NULL, serve, m);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
            set_err(err, errlen, "metrics: cannot start a thread: %s", strerror(e));
            rc = LEP_ERR_IO;
        }
    }
    if (rc) {
        if (m->lfd >= 0)
            close(m->lfd);
        if (m->wake[0] >= 0) {
            close(m->wake[0]);
            close(m->wake[1]);
        }
        lep_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

uint16_t
lepi_metrics_http_port(const lepi_metrics_http_t *m)
{
    return m ? m->port : 0;
}

void
lepi_metrics_http_stop(lepi_metrics_http_t *m)
{
    if (!m)
        return;
    ssize_t w;
    do
        w = write(m->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(m->thread, NULL);
    close(m->lfd);
    close(m->wake[0]);
    close(m->wake[1]);
    lep_free(m);
}

/* ------------------------------------------------------------------ */
/* Exposition format                                                   */

static bool
valid_name(const char *s, bool colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || (colon && ch == ':')))
            return false;
    }
    return true;
}

/* Escapes backslash and newline, and the double quote too in label values. */
static int
append_escaped(lep_buf_t *out, const char *s, bool quote)
{
    int rc = 0;
    while (*s && rc == 0) {
        size_t run = strcspn(s, quote ? "\\\n\"" : "\\\n");
        if (run)
            rc = lep_buf_append(out, s, run);
        s += run;
        if (*s && rc == 0) {
            rc = lep_buf_append(out, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
            s++;
        }
    }
    return rc;
}

int
lepi_prom_metric(lep_buf_t *out, const char *name, const char *help, lepi_prom_type_t type)
{
    static const char *const types[] = {"counter", "gauge", "untyped"};
    if (!valid_name(name, true) || (unsigned)type > LEPI_PROM_UNTYPED)
        return LEP_ERR_INVALID;
    size_t mark = out->len;
    int rc = 0;
    if (help && ((rc = lep_buf_printf(out, "# HELP %s ", name)) ||
                 (rc = append_escaped(out, help, false)) || (rc = lep_buf_append(out, "\n", 1))))
        goto fail;
    if ((rc = lep_buf_printf(out, "# TYPE %s %s\n", name, types[type])) == 0)
        return 0;
fail:
    out->len = mark;
    return rc;
}

static int
sample_start(lep_buf_t *out, const char *name, const char *const *labels)
{
    int rc;
    if (!valid_name(name, true))
        return LEP_ERR_INVALID;
    if ((rc = lep_buf_append(out, name, strlen(name))))
        return rc;
    if (!labels || !labels[0])
        return lep_buf_append(out, " ", 1);
    for (size_t i = 0; labels[i]; i += 2) {
        if (!valid_name(labels[i], false) || !labels[i + 1])
            return LEP_ERR_INVALID;
        if ((rc = lep_buf_printf(out, "%c%s=\"", i ? ',' : '{', labels[i])) ||
            (rc = append_escaped(out, labels[i + 1], true)) || (rc = lep_buf_append(out, "\"", 1)))
            return rc;
    }
    return lep_buf_append(out, "} ", 2);
}

/* A sample line with its value already in text; nothing of it on failure. */
static int
sample_line(lep_buf_t *out, const char *name, const char *const *labels, const char *num)
{
    size_t mark = out->len;
    int rc = sample_start(out, name, labels);
    if (rc == 0)
        rc = lep_buf_printf(out, "%s\n", num);
    if (rc)
        out->len = mark;
    return rc;
}

int
lepi_prom_sample(lep_buf_t *out, const char *name, const char *const *labels, double value)
{
    char num[40];
    if (isnan(value))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(value))
        snprintf(num, sizeof num, "%cInf", value > 0 ? '+' : '-');
    else {
        snprintf(num, sizeof num, "%.15g", value);
        if (strtod(num, NULL) != value)
            snprintf(num, sizeof num, "%.17g", value);
    }
    return sample_line(out, name, labels, num);
}

int
lepi_prom_sample_u64(lep_buf_t *out, const char *name, const char *const *labels, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)value);
    return sample_line(out, name, labels, num);
}
