/* The metrics HTTP server over real loopback sockets: answers and their
 * headers, request limits (size, time, slots), clients that misbehave,
 * start and stop; and the Prometheus text helpers (exact output,
 * escaping, numbers, failures leaving the buffer as it was).  When
 * /usr/bin/python3 has prometheus_client (not installed by the project),
 * a rendered sample is also read back by its parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the broker's side ---- */

typedef struct render_ctx {
    atomic_int calls;
    size_t big; /* extra body bytes */
} render_ctx_t;

static void
render(void *arg, lep_buf_t *out)
{
    render_ctx_t *r = arg;
    int n = atomic_fetch_add(&r->calls, 1) + 1;
    if (out->len != 0) /* on the server's thread: no cmocka asserts here */
        abort();
    lepi_prom_metric(out, "lepton_scrapes_total", "Scrapes served", LEPI_PROM_COUNTER);
    lepi_prom_sample_u64(out, "lepton_scrapes_total", NULL, (uint64_t)n);
    if (r->big) {
        lepi_prom_metric(out, "lepton_filler", NULL, LEPI_PROM_GAUGE);
        while (out->len < r->big) {
            char q[32];
            snprintf(q, sizeof q, "q%zu", out->len);
            lepi_prom_sample(out, "lepton_filler", (const char *[]){"queue", q, NULL}, 1.5);
        }
    }
}

/* ---- a plain client ---- */

static int
dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until EOF (or a reset) within timeout_ms; returns the bytes read,
 * -1 on timeout.  *reset tells whether the end was a reset. */
static ssize_t
read_all(int fd, char *buf, size_t cap, int timeout_ms, bool *reset)
{
    size_t n = 0;
    int64_t end = now_ms() + timeout_ms;
    if (reset)
        *reset = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == ECONNRESET) {
            if (reset)
                *reset = true;
            break;
        }
        assert_true(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
        assert_true(n < cap - 1);
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

typedef struct resp {
    int status;
    char head[1024];
    const char *body;
    size_t body_len;
    char *raw;
} resp_t;

static char rawbuf[8 << 20];

/* Sends req on a new connection and parses the answer. */
static void
request(uint16_t port, const char *req, size_t len, resp_t *r)
{
    int fd = dial(port);
    send_all(fd, req, len);
    ssize_t n = read_all(fd, rawbuf, sizeof rawbuf, 5000, NULL);
    close(fd);
    assert_true(n > 0);
    r->raw = rawbuf;
    char *end = strstr(rawbuf, "\r\n\r\n");
    assert_non_null(end);
    size_t hl = (size_t)(end - rawbuf);
    assert_true(hl < sizeof r->head);
    memcpy(r->head, rawbuf, hl);
    r->head[hl] = '\0';
    r->body = end + 4;
    r->body_len = (size_t)n - hl - 4;
    assert_int_equal(sscanf(rawbuf, "HTTP/1.1 %d ", &r->status), 1);
    /* every answer: its length, and the connection closes */
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n", r->body_len);
    if (!strstr(r->head, cl))
        fail_msg("no \"%s\" in\n%s", cl + 2, r->head);
    assert_non_null(strstr(r->head, "\r\nConnection: close"));
}

static void
get(uint16_t port, const char *req, resp_t *r)
{
    request(port, req, strlen(req), r);
}

static lepi_metrics_http_t *
start(render_ctx_t *rc)
{
    lepi_metrics_http_t *m;
    char err[200];
    int e = lepi_metrics_http_start(&m, "127.0.0.1:0", render, rc, err, sizeof err);
    if (e)
        fail_msg("start: %s", err);
    assert_true(lepi_metrics_http_port(m) != 0);
    return m;
}

/* ---- tests ---- */

static void
test_parse_listen(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(lepi_metrics_parse_listen("127.0.0.1:9100", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9100);
    assert_int_equal(lepi_metrics_parse_listen("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(lepi_metrics_parse_listen("localhost:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);
    static const char *const bad[] = {
        "", "9100", ":9100", "h:", "h:65536", "h:-1", "h:1x", "h:000001", "::1:9100", "[::1]",
        "[::1]9100", "[]:1", "a b:1", "h/x:1", "[::1:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (lepi_metrics_parse_listen(bad[i], host, sizeof host, &port) != LEP_ERR_INVALID)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(lepi_metrics_parse_listen(NULL, host, sizeof host, &port), LEP_ERR_INVALID);
    /* the host must fit */
    assert_int_equal(lepi_metrics_parse_listen("abcdef:1", host, 6, &port), LEP_ERR_INVALID);
    assert_int_equal(lepi_metrics_parse_listen("abcde:1", host, 6, &port), 0);
}

static void
test_answers(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    uint16_t port = lepi_metrics_http_port(m);
    resp_t r;

    get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.raw, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(r.head, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_string_equal(r.body, "# HELP lepton_scrapes_total Scrapes served\n"
                                "# TYPE lepton_scrapes_total counter\n"
                                "lepton_scrapes_total 1\n");
    /* a query string, HTTP/1.0, bare LFs */
    get(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "lepton_scrapes_total 2\n"));
    get(port, "GET /metrics HTTP/1.1\nHost: x\n\n", &r);
    assert_int_equal(r.status, 200);
    /* other paths and methods */
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", 404},
        {"GET /metricsx HTTP/1.1\r\n\r\n", 404},
        {"GET /metrics/ HTTP/1.1\r\n\r\n", 404},
        {"GET /Metrics HTTP/1.1\r\n\r\n", 404},
        {"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405},
        {"HEAD /metrics HTTP/1.1\r\n\r\n", 405},
        {"DELETE / HTTP/1.1\r\n\r\n", 405},
        {"hello\r\n\r\n", 400},
        {"GET /metrics\r\n\r\n", 400},
        {"GET /metrics HTTP/2.0\r\n\r\n", 400},
        {"GET  /metrics HTTP/1.1\r\n\r\n", 400},
        {"GET /metrics HTTP/1.1 x\r\n\r\n", 400},
        {"get /metrics HTTP/1.1\r\n\r\n", 400},
        {"GET metrics HTTP/1.1\r\n\r\n", 400},
        {"\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        get(port, cases[i].req, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: %d, want %d", cases[i].req, r.status, cases[i].status);
        assert_null(strstr(r.head, "version=0.0.4"));
    }
    get(port, "PUT /metrics HTTP/1.1\r\n\r\n", &r);
    assert_non_null(strstr(r.head, "\r\nAllow: GET\r\n"));
    assert_string_equal(r.body, "Method Not Allowed\n");
    /* a NUL in the request line */
    request(port, "GET /me\0rics HTTP/1.1\r\n\r\n", 25, &r);
    assert_int_equal(r.status, 400);
    /* render ran for the 200s only */
    assert_int_equal(atomic_load(&rc.calls), 3);
    lepi_metrics_http_stop(m);
}

static void
test_request_size(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    uint16_t port = lepi_metrics_http_port(m);
    static char req[LEPI_METRICS_MAX_REQUEST + 64];
    const char *line = "GET /metrics HTTP/1.1\r\nX-Pad: ";
    size_t ll = strlen(line);

    /* exactly the limit, the empty line included: answered */
    memcpy(req, line, ll);
    memset(req + ll, 'a', LEPI_METRICS_MAX_REQUEST - ll - 4);
    memcpy(req + LEPI_METRICS_MAX_REQUEST - 4, "\r\n\r\n", 4);
    resp_t r;
    request(port, req, LEPI_METRICS_MAX_REQUEST, &r);
    assert_int_equal(r.status, 200);

    /* one byte more: dropped without an answer */
    memset(req + ll, 'a', LEPI_METRICS_MAX_REQUEST - ll - 3);
    memcpy(req + LEPI_METRICS_MAX_REQUEST - 3, "\r\n\r\n", 4);
    int fd = dial(port);
    send(fd, req, LEPI_METRICS_MAX_REQUEST + 1, MSG_NOSIGNAL);
    char buf[256];
    ssize_t n = read_all(fd, buf, sizeof buf, 3000, NULL);
    assert_int_equal(n, 0);
    close(fd);

    /* a huge request: dropped too, the server survives it */
    fd = dial(port);
    memset(req, 'x', sizeof req);
    for (int i = 0; i < 100; i++)
        if (send(fd, req, sizeof req, MSG_NOSIGNAL) < 0)
            break; /* reset by the server */
    assert_true(read_all(fd, buf, sizeof buf, 3000, NULL) <= 0);
    close(fd);
    get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    lepi_metrics_http_stop(m);
}

static void
test_slow_clients(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    uint16_t port = lepi_metrics_http_port(m);
    resp_t r;
    char buf[256];

    /* a request trickling in within the time limit is answered */
    const char *req = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = dial(port);
    for (const char *p = req; *p; p++) {
        send_all(fd, p, 1);
        sleep_ms(20);
    }
    ssize_t n = read_all(fd, rawbuf, sizeof rawbuf, 3000, NULL);
    assert_true(n > 0);
    assert_memory_equal(rawbuf, "HTTP/1.1 200 OK\r\n", 17);
    close(fd);

    /* one that never ends is dropped after about 2 s; meanwhile others
     * are served at once */
    int slow = dial(port);
    send_all(slow, "GET /metrics HTTP/1.1\r\n", 23);
    int64_t t0 = now_ms();
    get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(now_ms() - t0 < 1000);
    n = read_all(slow, buf, sizeof buf, 5000, NULL);
    int64_t took = now_ms() - t0;
    assert_int_equal(n, 0);
    if (took < LEPI_METRICS_REQUEST_MS - 100 || took > LEPI_METRICS_REQUEST_MS + 1500)
        fail_msg("dropped after %lld ms", (long long)took);
    close(slow);

    /* every slot taken by silent clients: the next waits in the backlog
     * until they time out, then is served */
    int idle[LEPI_METRICS_MAX_CLIENTS];
    for (int i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++)
        idle[i] = dial(port);
    sleep_ms(100);
    t0 = now_ms();
    get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    took = now_ms() - t0;
    if (took < LEPI_METRICS_REQUEST_MS - 300)
        fail_msg("served after %lld ms while every slot was taken", (long long)took);
    for (int i = 0; i < LEPI_METRICS_MAX_CLIENTS; i++) {
        assert_int_equal(read_all(idle[i], buf, sizeof buf, 3000, NULL), 0);
        close(idle[i]);
    }
    lepi_metrics_http_stop(m);
}

static void
test_big_answer(void **state)
{
    (void)state;
    render_ctx_t rc = {.big = 4 << 20};
    lepi_metrics_http_t *m = start(&rc);
    uint16_t port = lepi_metrics_http_port(m);

    /* a client that reads late: the answer is written in pieces */
    int fd = dial(port);
    send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
    sleep_ms(300);
    ssize_t n = read_all(fd, rawbuf, sizeof rawbuf, 10000, NULL);
    close(fd);
    assert_true(n > (ssize_t)(4 << 20));
    char *body = strstr(rawbuf, "\r\n\r\n") + 4;
    size_t blen = (size_t)n - (size_t)(body - rawbuf);
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", blen);
    assert_non_null(strstr(rawbuf, cl));
    assert_memory_equal(rawbuf + n - 2, "5\n", 2);

    /* clients that go away without reading, or mid-answer: no SIGPIPE */
    for (int i = 0; i < 5; i++) {
        fd = dial(port);
        send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
        if (i % 2) {
            char buf[1000];
            assert_true(recv(fd, buf, sizeof buf, 0) > 0);
        }
        struct linger lg = {1, 0}; /* close with a reset */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    rc.big = 0;
    resp_t r;
    get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    lepi_metrics_http_stop(m);
}

/* Extra bytes after the request (a body with a GET, pipelined requests)
 * must not turn our close into a reset that loses the answer. */
static void
test_extra_input(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    uint16_t port = lepi_metrics_http_port(m);
    static char req[6000];
    int len = snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    memset(req + len, 'z', sizeof req - (size_t)len);
    for (int i = 0; i < 20; i++) {
        int fd = dial(port);
        send_all(fd, req, sizeof req);
        sleep_ms(5);
        bool reset;
        ssize_t n = read_all(fd, rawbuf, sizeof rawbuf, 3000, &reset);
        close(fd);
        assert_true(n > 0);
        assert_memory_equal(rawbuf, "HTTP/1.1 200 OK\r\n", 17);
        assert_non_null(strstr(rawbuf, "lepton_scrapes_total"));
        assert_null(strstr(rawbuf, "404")); /* one request per connection */
    }
    lepi_metrics_http_stop(m);
}

static void
test_start_stop(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m;
    char err[200];

    /* stop at once, many times; with clients connected, reading, idle */
    for (int i = 0; i < 20; i++) {
        m = start(&rc);
        int a = -1, b = -1;
        if (i % 2) {
            a = dial(lepi_metrics_http_port(m));
            b = dial(lepi_metrics_http_port(m));
            send_all(b, "GET /met", 8);
            sleep_ms(5);
        }
        int64_t t0 = now_ms();
        lepi_metrics_http_stop(m);
        assert_true(now_ms() - t0 < 500);
        if (a >= 0) {
            char buf[16];
            assert_true(read_all(a, buf, sizeof buf, 1000, NULL) <= 0);
            close(a);
            close(b);
        }
    }
    lepi_metrics_http_stop(NULL);

    /* the port is taken */
    m = start(&rc);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)lepi_metrics_http_port(m));
    lepi_metrics_http_t *m2 = (lepi_metrics_http_t *)1;
    assert_int_equal(lepi_metrics_http_start(&m2, addr, render, &rc, err, sizeof err),
                     LEP_ERR_IO);
    assert_null(m2);
    char want[200];
    snprintf(want, sizeof want, "metrics: cannot listen on %s: Address already in use", addr);
    assert_string_equal(err, want);
    lepi_metrics_http_stop(m);
    /* bad arguments */
    assert_int_equal(lepi_metrics_http_start(&m2, "9100", render, &rc, err, sizeof err),
                     LEP_ERR_INVALID);
    assert_string_equal(err, "metrics: bad address \"9100\" (host:port)");
    assert_int_equal(lepi_metrics_http_start(&m2, "127.0.0.1:0", NULL, &rc, NULL, 0),
                     LEP_ERR_INVALID);
    /* IPv6 loopback, where the machine has it */
    if (lepi_metrics_http_start(&m2, "[::1]:0", render, &rc, err, sizeof err) == 0) {
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons(lepi_metrics_http_port(m2)),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        assert_int_equal(connect(fd, (struct sockaddr *)&a6, sizeof a6), 0);
        send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
        assert_true(read_all(fd, rawbuf, sizeof rawbuf, 3000, NULL) > 0);
        assert_memory_equal(rawbuf, "HTTP/1.1 200 OK\r\n", 17);
        close(fd);
        lepi_metrics_http_stop(m2);
    }
}

/* Out of descriptors: the connection waits in the backlog, the server
 * pauses instead of spinning on a listener that stays readable, and
 * serves it once descriptors are back. */
static void
test_out_of_fds(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(lepi_metrics_http_port(m))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int e = connect(fd, (struct sockaddr *)&a, sizeof a);
    send(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25, MSG_NOSIGNAL);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    sleep_ms(500);
    getrusage(RUSAGE_SELF, &r1);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(e, 0);
    long cpu_us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L +
                  (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                  (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L +
                  (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    if (cpu_us > 150000)
        fail_msg("%ld us of CPU in 500 ms without descriptors", cpu_us);
    ssize_t n = read_all(fd, rawbuf, sizeof rawbuf, 3000, NULL);
    close(fd);
    assert_true(n > 0);
    assert_memory_equal(rawbuf, "HTTP/1.1 200 OK\r\n", 17);
    lepi_metrics_http_stop(m);
}

/* Several scrapers at once, from several threads (no cmocka asserts
 * off the main thread). */
static uint16_t conc_port;

static void *
scraper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 25; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(conc_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            send(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25, MSG_NOSIGNAL) != 25)
            return (void *)1;
        char buf[4096];
        size_t n = 0;
        ssize_t r;
        while ((r = recv(fd, buf + n, sizeof buf - n, 0)) > 0)
            n += (size_t)r;
        close(fd);
        if (r < 0 || n < 17 || memcmp(buf, "HTTP/1.1 200 OK\r\n", 17) != 0)
            return (void *)1;
    }
    return NULL;
}

static void
test_concurrent(void **state)
{
    (void)state;
    render_ctx_t rc = {0};
    lepi_metrics_http_t *m = start(&rc);
    conc_port = lepi_metrics_http_port(m);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, scraper, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(atomic_load(&rc.calls), 200);
    lepi_metrics_http_stop(m);
}

/* ---- exposition helpers ---- */

static void
test_prom_text(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lepi_prom_metric(&b, "lepton_queue_depth", "Messages on a queue\\now",
                                      LEPI_PROM_GAUGE),
                     0);
    assert_int_equal(lepi_prom_metric(&b, "a:b_c", NULL, LEPI_PROM_UNTYPED), 0);
    assert_int_equal(lepi_prom_metric(&b, "x", "two\nlines \"quoted\"", LEPI_PROM_COUNTER), 0);
    assert_int_equal(lepi_prom_sample_u64(&b, "lepton_queue_depth",
                                          (const char *[]){"queue", "a\"b\\c\nd", "vhost", "",
                                                           NULL},
                                          UINT64_MAX),
                     0);
    assert_int_equal(lepi_prom_sample(&b, "x", (const char *[]){NULL}, 0.1), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, 3), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, -2.5e-300), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, 1e21), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, NAN), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, INFINITY), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, -INFINITY), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", NULL, 1.0 / 3), 0);
    assert_int_equal(lepi_prom_sample(&b, "x", (const char *[]){"_l1", "\xc3\xa9", NULL},
                                      9007199254740993.0),
                     0);
    assert_int_equal(lep_buf_append(&b, "", 1), 0);
    assert_string_equal((char *)b.data,
                        "# HELP lepton_queue_depth Messages on a queue\\\\now\n"
                        "# TYPE lepton_queue_depth gauge\n"
                        "# TYPE a:b_c untyped\n"
                        "# HELP x two\\nlines \"quoted\"\n"
                        "# TYPE x counter\n"
                        "lepton_queue_depth{queue=\"a\\\"b\\\\c\\nd\",vhost=\"\"} "
                        "18446744073709551615\n"
                        "x 0.1\n"
                        "x 3\n"
                        "x -2.5e-300\n"
                        "x 1e+21\n"
                        "x NaN\n"
                        "x +Inf\n"
                        "x -Inf\n"
                        "x 0.33333333333333331\n"
                        "x{_l1=\"\xc3\xa9\"} 9007199254740992\n");
    lep_buf_fini(&b);

    /* bad names and labels: refused, the buffer as it was */
    lep_buf_init(&b);
    assert_int_equal(lep_buf_append(&b, "keep", 4), 0);
    static const char *const bad_names[] = {"", "1x", "a-b", "a b", "é", NULL};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lepi_prom_metric(&b, bad_names[i], "h", LEPI_PROM_GAUGE),
                         LEP_ERR_INVALID);
        assert_int_equal(lepi_prom_sample(&b, bad_names[i], NULL, 1), LEP_ERR_INVALID);
    }
    assert_int_equal(lepi_prom_metric(&b, NULL, "h", LEPI_PROM_GAUGE), LEP_ERR_INVALID);
    assert_int_equal(lepi_prom_metric(&b, "x", "h", (lepi_prom_type_t)7), LEP_ERR_INVALID);
    assert_int_equal(lepi_prom_sample(&b, "x", (const char *[]){"a:b", "v", NULL}, 1),
                     LEP_ERR_INVALID); /* no colon in label names */
    assert_int_equal(lepi_prom_sample_u64(&b, "x", (const char *[]){"ok", "v", "k", NULL}, 1),
                     LEP_ERR_INVALID); /* a key without a value */
    assert_int_equal(lepi_prom_sample(&b, "x", (const char *[]){"1k", "v", NULL}, 1),
                     LEP_ERR_INVALID);
    assert_int_equal(b.len, 4);
    lep_buf_fini(&b);

    /* a full buffer: the line is not half-written */
    char mem[40];
    lep_buf_init_fixed(&b, mem, sizeof mem);
    assert_int_equal(lepi_prom_sample_u64(&b, "short", NULL, 1), 0);
    size_t keep = b.len;
    assert_int_equal(lepi_prom_sample_u64(&b, "a_rather_long_metric_name",
                                          (const char *[]){"queue", "q", NULL}, 1),
                     LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, keep);
    assert_int_equal(lepi_prom_sample(&b, "x",
                                      (const char *[]){"queue", "a much longer label value", NULL},
                                      1.25),
                     LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, keep);
    assert_int_equal(lepi_prom_metric(&b, "m", "a help text much too long to fit", LEPI_PROM_GAUGE),
                     LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, keep);
    assert_memory_equal(mem, "short 1\n", 8);
}

/* prometheus_client's own parser (Debian python3-prometheus-client,
 * installed by scripts/setup.sh). */
static void
test_prom_parser(void **state)
{
    (void)state;
    if (system("/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1") != 0)
        fail_msg("/usr/bin/python3 has no prometheus_client: run scripts/setup.sh "
                 "(Debian python3-prometheus-client)");
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lepi_prom_metric(&b, "lepton_messages_total", "Messages \\ in\nall",
                                      LEPI_PROM_COUNTER),
                     0);
    assert_int_equal(lepi_prom_sample_u64(&b, "lepton_messages_total",
                                          (const char *[]){"queue", "q\"1\\\n", NULL}, 42),
                     0);
    assert_int_equal(lepi_prom_metric(&b, "lepton_ratio", NULL, LEPI_PROM_GAUGE), 0);
    assert_int_equal(lepi_prom_sample(&b, "lepton_ratio", NULL, 0.1), 0);
    assert_int_equal(
        lepi_prom_sample(&b, "lepton_ratio", (const char *[]){"k", "+Inf", NULL}, INFINITY), 0);
    static const char script[] =
        "import sys, math\n"
        "from prometheus_client.parser import text_string_to_metric_families as parse\n"
        "fams = {m.name: m for m in parse(open(sys.argv[1]).read())}\n"
        "m = fams['lepton_messages']\n"
        "assert m.type == 'counter', m.type\n"
        "assert m.documentation == 'Messages \\\\ in\\nall', repr(m.documentation)\n"
        "s = m.samples[0]\n"
        "assert s.labels == {'queue': 'q\"1\\\\\\n'} and s.value == 42, s\n"
        "r = fams['lepton_ratio'].samples\n"
        "assert r[0].value == 0.1 and math.isinf(r[1].value), r\n"
        "assert r[1].labels == {'k': '+Inf'}, r\n";
    char sample[] = "/tmp/lepton-prom-XXXXXX", py[] = "/tmp/lepton-prom-py-XXXXXX";
    int fd = mkstemp(sample), fd2 = mkstemp(py);
    assert_true(fd >= 0 && fd2 >= 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    assert_int_equal(write(fd2, script, sizeof script - 1), (ssize_t)sizeof script - 1);
    close(fd);
    close(fd2);
    lep_buf_fini(&b);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", py, sample);
    int rc = system(cmd);
    unlink(sample);
    unlink(py);
    assert_int_equal(rc, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_listen), cmocka_unit_test(test_answers),
        cmocka_unit_test(test_request_size), cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_big_answer),   cmocka_unit_test(test_extra_input),
        cmocka_unit_test(test_start_stop),   cmocka_unit_test(test_out_of_fds),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_prom_text),    cmocka_unit_test(test_prom_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
