/* A small AMQP peer around the lepton engine, over a loopback socket, for
 * interop tests against other implementations (tests/interop/
 * test_engine_proton.sh).  poll() drives one connection; time comes from
 * CLOCK_MONOTONIC and goes to lep_conn_tick.
 *
 *   engine_peer client PORT ADDRESS N [options]
 *       connects to 127.0.0.1:PORT, attaches a sender to ADDRESS, sends N
 *       messages (amqp-value strings "message-<i>") unsettled and waits
 *       until the peer accepted each, then closes.  Exit 0 on success.
 *   engine_peer server PORT N [options]
 *       listens on 127.0.0.1:PORT (0: any free port; the port is printed
 *       as "listening on PORT"), accepts one connection, answers its
 *       open/begin/attach, grants credit, receives N messages and accepts
 *       them, and waits for the client to close.  Exit 0 on success.
 * Options:
 *   --timeout MS      give up after MS milliseconds (default 20000)
 *   --user U --password P   SASL PLAIN (client: offers it; server: checks
 *                     it), allowed over plain TCP for the test
 *   --mech M          with --user: the SASL mechanism instead of PLAIN
 *                     (server: offers only M, credentials from a users set
 *                     holding U's clear password; SCRAM salts it)
 *   --idle MS         our idle-timeout (heartbeats are checked as well)
 *   --tls-ca FILE     client: TLS (pure, amqps), verifying the server's
 *                     chain against FILE and its name (--tls-host, default
 *                     localhost)
 *   --tls-cert FILE --tls-key FILE   server: TLS with this certificate
 * Prints one line of outcome; diagnostics go to stderr. */
#include <lepton/engine.h>
#if defined(__has_include)
#if __has_include(<lepton/sasl.h>)
#include <lepton/sasl.h>
#define PEER_HAVE_SASL 1
#endif
#if __has_include(<lepton/tls.h>)
#include <lepton/tls.h>
#define PEER_HAVE_TLS 1
#endif
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct peer {
    bool server;
    const char *address;
    long n;
    long sent, accepted, received;
    int timeout_ms;
    const char *user, *password, *mech;
    uint32_t idle_ms;
    const char *tls_ca, *tls_cert, *tls_key, *tls_host;
    lep_link_t *sender;
    bool failed;
    bool done; /* our part finished: close sent */
} peer_t;

static int64_t
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void
print_cond(const char *what, const lep_condition_t *c)
{
    if (!lep_condition_set(c))
        return;
    fprintf(stderr, "engine_peer: %s: %.*s: %.*s\n", what, (int)c->name.len,
            (const char *)c->name.ptr, (int)c->description.len, (const char *)c->description.ptr);
}

static void
send_some(peer_t *p)
{
    lep_link_t *l = p->sender;
    while (l && lep_link_credit(l) > 0 && p->sent < p->n) {
        uint8_t buf[64];
        lep_buf_t b;
        lep_buf_init_fixed(&b, buf, sizeof buf);
        lep_encoder_t e;
        lep_encoder_init(&e, &b);
        char text[32];
        snprintf(text, sizeof text, "message-%ld", p->sent);
        lep_encode_descriptor(&e, LEP_DESC_AMQP_VALUE);
        lep_encode_cstring(&e, text);
        if (lep_encoder_error(&e) || lep_link_send(l, LEP_BYTES(NULL, 0), b.data, b.len, false, NULL)) {
            fprintf(stderr, "engine_peer: send failed\n");
            p->failed = true;
            return;
        }
        p->sent++;
    }
}

static void
handle(peer_t *p, lep_conn_t *c, const lep_event_t *ev)
{
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        if (lep_conn_local_state(c) == LEP_STATE_UNINIT)
            lep_conn_open(c);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        print_cond("peer closed", lep_conn_remote_condition(c));
        if (lep_condition_set(lep_conn_remote_condition(c)))
            p->failed = true;
        if (lep_conn_local_state(c) == LEP_STATE_ACTIVE)
            lep_conn_close(c, NULL);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            lep_session_begin(ev->session);
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        print_cond("peer ended session", lep_session_remote_condition(ev->session));
        if (lep_session_local_state(ev->session) == LEP_STATE_ACTIVE)
            lep_session_end(ev->session, NULL);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
            lep_link_attach(ev->link);
            if (lep_link_is_receiver(ev->link))
                lep_link_flow(ev->link, 100);
        }
        break;
    case LEP_EVENT_LINK_REMOTE_DETACH:
        print_cond("peer detached", lep_link_remote_condition(ev->link));
        if (lep_condition_set(lep_link_remote_condition(ev->link)))
            p->failed = true;
        if (lep_link_local_state(ev->link) == LEP_STATE_ACTIVE)
            lep_link_detach(ev->link, lep_link_remote_closed(ev->link), NULL);
        break;
    case LEP_EVENT_LINK_FLOW:
        if (!p->server)
            send_some(p);
        break;
    case LEP_EVENT_DELIVERY: {
        lep_delivery_t *d = ev->delivery;
        lep_link_t *l = lep_delivery_link(d);
        if (lep_link_is_receiver(l)) {
            if (lep_delivery_partial(d))
                break;
            if (lep_delivery_aborted(d)) {
                lep_delivery_settle(d);
                break;
            }
            lep_bytes_t b = lep_delivery_data(d);
            if (b.len < 3 || b.ptr[0] != 0x00) {
                fprintf(stderr, "engine_peer: unexpected message bytes\n");
                p->failed = true;
            }
            if (!lep_delivery_remote_settled(d))
                lep_delivery_accept(d);
            lep_delivery_settle(d);
            p->received++;
            lep_link_flow(l, 1);
        } else {
            const lep_outcome_t *o = lep_delivery_remote_state(d);
            if (!lep_delivery_remote_settled(d) && (!o || o->type == LEP_OUTCOME_NONE ||
                                                    o->type == LEP_OUTCOME_RECEIVED))
                break;
            if (o && o->type == LEP_OUTCOME_ACCEPTED)
                p->accepted++;
            else {
                fprintf(stderr, "engine_peer: delivery not accepted (%d)\n", o ? (int)o->type : -1);
                p->failed = true;
            }
            lep_delivery_settle(d);
            if (p->accepted == p->n && !p->done) {
                p->done = true;
                lep_conn_close(c, NULL);
            }
        }
        break;
    }
    case LEP_EVENT_TRANSPORT_ERROR:
        print_cond("transport error", lep_conn_local_condition(c));
        p->failed = true;
        break;
    default:
        break;
    }
}

static void
trace(void *ctx, lep_conn_t *c, bool sent, const char *line)
{
    (void)ctx;
    (void)c;
    static int64_t t0;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t ms = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    if (!t0)
        t0 = ms;
    fprintf(stderr, "%6lld %s %s\n", (long long)(ms - t0), sent ? "->" : "<-", line);
}

#ifdef PEER_HAVE_SASL
static bool
check_plain(void *ctx, lep_conn_t *c, const char *mechanism, lep_bytes_t user,
            lep_bytes_t password, lep_bytes_t authzid)
{
    (void)c;
    (void)authzid;
    peer_t *p = (peer_t *)ctx;
    return !strcmp(mechanism, "PLAIN") && lep_bytes_eq_str(user, p->user) &&
           lep_bytes_eq_str(password, p->password ? p->password : "");
}
#endif

static int
run(peer_t *p, int fd)
{
#ifdef PEER_HAVE_SASL
    lep_sasl_users_t *users = NULL;
#endif
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = p->server;
    o.container_id = p->server ? "lepton-engine-peer-server" : "lepton-engine-peer-client";
    o.hostname = p->server ? NULL : "127.0.0.1";
    o.idle_timeout_ms = p->idle_ms;
    lep_conn_t *c;
    if (lep_conn_new(&c, &o) != 0)
        return 1;
    if (getenv("ENGINE_PEER_TRACE"))
        lep_conn_set_trace(c, trace, NULL);
    if (p->user) {
#ifdef PEER_HAVE_SASL
        int rc;
        if (p->server) {
            lep_sasl_server_opts_t so;
            lep_sasl_server_opts_init(&so);
            so.mechanisms = p->mech;
            so.allow_insecure = true;
            if (!strcmp(p->mech, "PLAIN")) {
                so.authenticate = check_plain;
                so.auth_ctx = p;
                rc = 0;
            } else {
                char text[512];
                int len = snprintf(text, sizeof text, "%s:PLAIN:%s\n", p->user,
                                   p->password ? p->password : "");
                rc = lep_sasl_users_parse(&users, text, (size_t)len, "users", NULL, 0);
                so.users = users;
            }
            if (rc == 0)
                rc = lep_sasl_server_add(c, &so, NULL);
        } else {
            lep_sasl_client_opts_t co;
            lep_sasl_client_opts_init(&co);
            co.mechanisms = p->mech;
            co.username = p->user;
            co.password = p->password;
            co.allow_insecure = true;
            rc = lep_sasl_client_add(c, &co, NULL);
        }
        if (rc != 0) {
            lep_conn_free(c);
            lep_sasl_users_free(users);
            return 1;
        }
#else
        fprintf(stderr, "engine_peer: no SASL in this build\n");
        lep_conn_free(c);
        return 1;
#endif
    }
    if (p->tls_ca || p->tls_cert) {
#ifdef PEER_HAVE_TLS
        lep_tls_config_t *cfg;
        int rc = lep_tls_config_new(&cfg, p->server);
        if (rc == 0 && p->server)
            rc = lep_tls_config_set_cert(cfg, p->tls_cert, p->tls_key, NULL);
        if (rc == 0 && !p->server)
            rc = lep_tls_config_set_ca(cfg, p->tls_ca, NULL);
        if (rc != 0)
            fprintf(stderr, "engine_peer: TLS config: %s\n", lep_tls_config_error(cfg));
        if (rc == 0)
            rc = lep_tls_add(c, cfg, p->server ? NULL : p->tls_host, NULL);
        lep_tls_config_free(cfg);
        if (rc != 0) {
            lep_conn_free(c);
            return 1;
        }
#else
        fprintf(stderr, "engine_peer: no TLS in this build\n");
        lep_conn_free(c);
        return 1;
#endif
    }
    if (!p->server) {
        lep_session_t *s;
        lep_conn_open(c);
        if (lep_session_new(c, &s) || lep_session_begin(s))
            return 1;
        lep_link_opts_t lo;
        lep_link_opts_init(&lo);
        lo.name = "engine-peer-sender";
        lep_target_t tgt;
        lep_target_init(&tgt);
        uint8_t abuf[256];
        lep_buf_t ab;
        lep_buf_init_fixed(&ab, abuf, sizeof abuf);
        lep_encoder_t e;
        lep_encoder_init(&e, &ab);
        lep_encode_cstring(&e, p->address);
        tgt.present = LEP_TARGET_HAS_ADDRESS;
        tgt.address = lep_buf_bytes(&ab);
        lep_source_t src;
        lep_source_init(&src);
        lo.source = &src;
        lo.target = &tgt;
        if (lep_link_new(s, &lo, &p->sender) || lep_link_attach(p->sender))
            return 1;
    }

    int64_t end = now_ms() + p->timeout_ms;
    uint8_t in[65536];
    size_t inlen = 0;
    bool closed = false;
    while (!lep_conn_finished(c)) {
        int64_t t = now_ms();
        if (t >= end) {
            fprintf(stderr, "engine_peer: timed out\n");
            p->failed = true;
            break;
        }
        int64_t deadline = lep_conn_tick(c, t);
        const lep_event_t *ev;
        while ((ev = lep_conn_next_event(c)) != NULL)
            handle(p, c, ev);
        while (lep_conn_output_pending(c)) {
            struct iovec iov[16];
            int k = lep_conn_output_iov(c, iov, 16);
            ssize_t w = writev(fd, iov, k);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                lep_conn_output_closed(c);
                break;
            }
            lep_conn_consumed(c, (size_t)w);
        }
        while ((ev = lep_conn_next_event(c)) != NULL)
            handle(p, c, ev);
        if (lep_conn_finished(c))
            break;
        int wait = (int)(end - t);
        if (deadline >= 0 && deadline - t < wait)
            wait = deadline > t ? (int)(deadline - t) : 0;
        struct pollfd pfd = {fd, (short)((closed ? 0 : POLLIN) |
                                         (lep_conn_output_pending(c) ? POLLOUT : 0)), 0};
        if (poll(&pfd, 1, wait) < 0 && errno != EINTR)
            break;
        if (!closed && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(fd, in + inlen, sizeof in - inlen);
            if (r > 0) {
                inlen += (size_t)r;
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed = true;
                lep_conn_input_closed(c);
            }
        }
        if (inlen) {
            size_t used = 0;
            if (lep_conn_feed(c, in, inlen, &used) != 0)
                inlen = 0;
            else {
                memmove(in, in + used, inlen - used);
                inlen -= used;
            }
        }
    }
    /* what the engine still has to say (a TLS close_notify) goes out */
    for (int i = 0; i < 100 && lep_conn_output_pending(c); i++) {
        struct iovec iov[16];
        int k = lep_conn_output_iov(c, iov, 16);
        ssize_t w = writev(fd, iov, k);
        if (w > 0) {
            lep_conn_consumed(c, (size_t)w);
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        struct pollfd pfd = {fd, POLLOUT, 0};
        poll(&pfd, 1, 100);
    }
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(c)) != NULL)
        handle(p, c, ev);
    lep_conn_free(c);
#ifdef PEER_HAVE_SASL
    lep_sasl_users_free(users); /* borrowed by the connection until now */
#endif
    return 0;
}

int
main(int argc, char **argv)
{
    peer_t p;
    memset(&p, 0, sizeof p);
    p.timeout_ms = 20000;
    p.tls_host = "localhost";
    p.mech = "PLAIN";
    int port, argi;
    if (argc >= 5 && !strcmp(argv[1], "client")) {
        port = atoi(argv[2]);
        p.address = argv[3];
        p.n = atol(argv[4]);
        argi = 5;
    } else if (argc >= 4 && !strcmp(argv[1], "server")) {
        p.server = true;
        port = atoi(argv[2]);
        p.n = atol(argv[3]);
        argi = 4;
    } else {
        fprintf(stderr, "usage: engine_peer client PORT ADDRESS N | server PORT N [options]\n");
        return 2;
    }
    for (; argi + 1 < argc; argi += 2) {
        if (!strcmp(argv[argi], "--timeout"))
            p.timeout_ms = atoi(argv[argi + 1]);
        else if (!strcmp(argv[argi], "--user"))
            p.user = argv[argi + 1];
        else if (!strcmp(argv[argi], "--password"))
            p.password = argv[argi + 1];
        else if (!strcmp(argv[argi], "--idle"))
            p.idle_ms = (uint32_t)atoi(argv[argi + 1]);
        else if (!strcmp(argv[argi], "--mech"))
            p.mech = argv[argi + 1];
        else if (!strcmp(argv[argi], "--tls-ca"))
            p.tls_ca = argv[argi + 1];
        else if (!strcmp(argv[argi], "--tls-cert"))
            p.tls_cert = argv[argi + 1];
        else if (!strcmp(argv[argi], "--tls-key"))
            p.tls_key = argv[argi + 1];
        else if (!strcmp(argv[argi], "--tls-host"))
            p.tls_host = argv[argi + 1];
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    int fd;
    if (p.server) {
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 4)) {
            perror("engine_peer: listen");
            return 1;
        }
        socklen_t sl = sizeof sa;
        getsockname(ls, (struct sockaddr *)&sa, &sl);
        printf("listening on %d\n", ntohs(sa.sin_port));
        fflush(stdout);
        struct pollfd pfd = {ls, POLLIN, 0};
        if (poll(&pfd, 1, p.timeout_ms) <= 0) {
            fprintf(stderr, "engine_peer: nobody connected\n");
            return 1;
        }
        fd = accept(ls, NULL, NULL);
        close(ls);
        if (fd < 0) {
            perror("engine_peer: accept");
            return 1;
        }
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
            perror("engine_peer: connect");
            return 1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = run(&p, fd);
    close(fd);
    if (p.server) {
        printf("received %ld of %ld\n", p.received, p.n);
        return (rc || p.failed || p.received != p.n) ? 1 : 0;
    }
    printf("sent %ld, accepted %ld of %ld\n", p.sent, p.accepted, p.n);
    return (rc || p.failed || p.accepted != p.n) ? 1 : 0;
}
