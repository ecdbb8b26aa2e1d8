/* proton_peer: the Proton-C side of the messaging benchmark.  It does
 * what lepton-bench does, with Qpid Proton-C's proactor (pn_proactor_*)
 * instead of lepton's container, so that bench/compare can run both on
 * the same work.  Options, counting, timing, percentiles and output come
 * from bench_common.h, shared with tools/lepton-bench.c; only the
 * messaging code below differs.
 *
 * Topology (the same as lepton-bench's): one process, one proactor served
 * by --threads threads.  Peer-to-peer (no URL), it listens on 127.0.0.1
 * (ephemeral port) and opens --connections client connections to itself;
 * each carries one sender link, and the accepted end of each is the
 * receiver.  With a URL, each pair is two client connections to that
 * address, one sending, one receiving.
 *
 * Per message, as a careful Proton application does it:
 *   sender    patch the send time into the pre-encoded message (or, with
 *             --encode-each, set the body and pn_message_encode), then
 *             pn_delivery + pn_link_send + pn_link_advance while the link
 *             has credit; at-most-once settles at once; otherwise it
 *             settles each delivery when the receiver's outcome arrives;
 *   receiver  pn_link_recv the whole message into a reused buffer,
 *             pn_message_decode into a reused pn_message_t (lepton's
 *             container decodes each message before on_message, so this
 *             one does too), read the time from the body, accept and
 *             settle (exactly-once: settle when the sender has), and top
 *             the credit window up once half of it is used.
 * Nothing is printed per message.
 *
 * Usage: proton_peer [options] [URL]    (proton_peer --help) */
#include "bench_common.h"

#ifndef HAVE_PROTON
int
main(void)
{
    fprintf(stderr, "proton_peer: built without Qpid Proton-C (libqpid-proton11-dev)\n");
    return BENCH_EXIT_FAIL;
}
#else

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/message.h>
#include <proton/netaddr.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <proton/version.h>

#include <netdb.h>

#define PROG "proton_peer"

static bench_opts_t opts;
static bench_pair_t *pairs;
static bench_global_t global;
static pn_proactor_t *proactor;
static _Atomic unsigned next_receiver; /* peer-to-peer: pair of the next accepted connection */
static _Atomic bool failed;
static _Atomic unsigned serving; /* threads in serve() */
static _Thread_local bool leaving; /* this thread is done serving */
static char version[32];

/* One per connection end we serve: a sender, or a receiver. */
typedef struct side {
    bench_pair_t *pair;
    bool sender;
    bool server;        /* accepted by our listener */
    pn_link_t *link;
    uint64_t tag;
    /* sender: the encoded message, patched per send */
    char *out;
    size_t out_len, body_off;
    pn_message_t *msg;  /* --encode-each only */
    uint8_t *body;      /* --encode-each: the body bytes */
    /* receiver */
    char *in;
    size_t in_cap;
    pn_message_t *rmsg;
} side_t;

static side_t *sides; /* 2 per pair: [2i] sender, [2i+1] receiver */

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTIONS] [URL]\n"
            "The Proton-C peer of lepton-bench: sends messages from senders to receivers\n"
            "with Qpid Proton-C's proactor and reports throughput and latency, exactly as\n"
            "lepton-bench does with lepton (see lepton-bench --help and bench/README.md).\n"
            "\n"
            "Without URL: peer-to-peer, listening on 127.0.0.1 and connecting to itself.\n"
            "With URL (amqp://[user[:password]@]host[:port]/address): through a broker.\n"
            "\n"
            "Options:\n%s"
            "\n"
            "Exit status: 0 when every message arrived (and was accepted, unless\n"
            "at-most-once), 1 on failure, 2 on a usage error, 3 on timeout.\n",
            bench_options_help);
}

static void
report_condition(const char *what, pn_condition_t *cond)
{
    if (cond && pn_condition_is_set(cond)) {
        fprintf(stderr, PROG ": %s: %s: %s\n", what, pn_condition_get_name(cond),
                pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
        atomic_store(&failed, true);
    }
}

/* ------------------------------------------------------------------ */
/* Sender                                                              */

static int
encode_message(side_t *s)
{
    pn_data_t *body = pn_message_body(s->msg);
    size_t cap = opts.size + 256;
    pn_data_clear(body);
    pn_data_put_binary(body, pn_bytes(opts.size, (const char *)s->body));
    for (;;) {
        size_t len = cap;
        int rc = pn_message_encode(s->msg, s->out, &len);
        if (rc == 0) {
            s->out_len = len;
            return 0;
        }
        if (rc != PN_OVERFLOW)
            return -1;
        cap *= 2;
        char *n = realloc(s->out, cap);
        if (!n)
            return -1;
        s->out = n;
    }
}

static int
sender_init(side_t *s)
{
    s->msg = pn_message();
    s->body = calloc(1, opts.size + 1);
    s->out = malloc(opts.size + 256);
    if (!s->msg || !s->body || !s->out)
        return -1;
    /* a binary body goes in a data section (not an amqp-value), as lepton's */
    pn_message_set_inferred(s->msg, true);
    for (size_t i = BENCH_TS_LEN; i < opts.size; i++)
        s->body[i] = (uint8_t)('a' + i % 26);
    if (encode_message(s) != 0)
        return -1;
    /* the body is the encoding's last bytes */
    s->body_off = s->out_len - opts.size;
    return 0;
}

static void
sender_finish(side_t *s, pn_connection_t *c, uint64_t now)
{
    bench_pair_t *p = s->pair;
    p->t_sender_done = now;
    if (opts.url) {
        atomic_fetch_add(&global.total_sent, bench_count(&p->sent));
        atomic_fetch_add(&global.senders_done, 1);
        if (bench_global_check(&global, opts.connections))
            pn_proactor_disconnect(proactor, NULL);
    }
    pn_connection_close(c);
}

static void
send_some(side_t *s, pn_link_t *l)
{
    bench_pair_t *p = s->pair;
    uint64_t now = 0;

    while (pn_link_credit(l) > 0) {
        now = bench_now_ns();
        if (!p->t_first_send)
            bench_first_send(p, &opts, now);
        if (!bench_may_send(p, now))
            break;
        const char *bytes = s->out;
        if (opts.encode_each) {
            if (opts.size >= BENCH_TS_LEN)
                bench_put_ts(s->body, now);
            if (encode_message(s) != 0) {
                fprintf(stderr, PROG ": pn_message_encode failed\n");
                atomic_store(&failed, true);
                p->sending_done = true;
                break;
            }
        } else if (opts.size >= BENCH_TS_LEN) {
            bench_put_ts((uint8_t *)s->out + s->body_off, now);
        }
        /* the shortest tag that holds the counter, as lepton's container does */
        uint64_t t = s->tag++;
        char tag[8];
        size_t tl = 0;
        do {
            tag[tl++] = (char)(t & 0xff);
            t >>= 8;
        } while (t);
        pn_delivery_t *d = pn_delivery(l, pn_dtag(tag, tl));
        pn_link_send(l, bytes, s->out_len);
        pn_link_advance(l);
        if (opts.settle == BENCH_AT_MOST_ONCE)
            pn_delivery_settle(d);
        bench_count_inc(&p->sent);
    }
    if (opts.settle == BENCH_AT_MOST_ONCE && p->sending_done && !p->t_sender_done)
        sender_finish(s, pn_session_connection(pn_link_session(l)), now ? now : bench_now_ns());
}

static void
sender_outcome(side_t *s, pn_delivery_t *d)
{
    bench_pair_t *p = s->pair;
    uint64_t state = pn_delivery_remote_state(d);
    if (!state && !pn_delivery_settled(d))
        return;
    if (state == PN_ACCEPTED)
        p->accepted++;
    else
        p->not_accepted++;
    pn_delivery_settle(d);
    p->settled++;
    if (p->sending_done && !p->t_sender_done && bench_sender_finished(p, &opts))
        sender_finish(s, pn_session_connection(pn_link_session(s->link)), bench_now_ns());
}

/* ------------------------------------------------------------------ */
/* Receiver                                                            */

static void
receiver_message(side_t *s, pn_link_t *l, pn_delivery_t *d)
{
    bench_pair_t *p = s->pair;
    size_t n = pn_delivery_pending(d);

    if (n > s->in_cap) {
        char *b = realloc(s->in, n);
        if (!b) {
            fprintf(stderr, PROG ": out of memory\n");
            atomic_store(&failed, true);
            pn_connection_close(pn_session_connection(pn_link_session(l)));
            return;
        }
        s->in = b;
        s->in_cap = n;
    }
    ssize_t got = pn_link_recv(l, s->in, n);
    pn_link_advance(l);
    uint64_t now = bench_now_ns();
    if (got < 0 || pn_message_decode(s->rmsg, s->in, (size_t)got) != 0) {
        pn_delivery_update(d, PN_REJECTED);
        pn_delivery_settle(d);
        fprintf(stderr, PROG ": a message could not be decoded\n");
        atomic_store(&failed, true);
    } else {
        if (opts.size >= BENCH_TS_LEN) {
            pn_data_t *body = pn_message_body(s->rmsg);
            pn_data_rewind(body);
            if (pn_data_next(body) && pn_data_type(body) == PN_BINARY) {
                pn_bytes_t b = pn_data_get_binary(body);
                if (b.size >= BENCH_TS_LEN)
                    bench_lat_add(&p->lat, bench_get_ts((const uint8_t *)b.start), now);
            }
        }
        if (pn_delivery_settled(d)) {
            pn_delivery_settle(d); /* pre-settled: at-most-once */
        } else {
            pn_delivery_update(d, PN_ACCEPTED);
            if (pn_link_rcv_settle_mode(l) != PN_RCV_SECOND)
                pn_delivery_settle(d);
        }
    }
    p->t_last_arrival = now;
    bench_count_inc(&p->received);
    int credit = pn_link_credit(l);
    if (credit <= (int)(opts.credit / 2))
        pn_link_flow(l, (int)opts.credit - credit);
    if (opts.url) {
        atomic_fetch_add(&global.total_received, 1);
        if (bench_global_check(&global, opts.connections))
            pn_proactor_disconnect(proactor, NULL);
    }
}

static void
receiver_delivery(side_t *s, pn_link_t *l, pn_delivery_t *d)
{
    if (pn_delivery_readable(d) && !pn_delivery_partial(d) && pn_link_current(l) == d)
        receiver_message(s, l, d);
    else if (!pn_delivery_readable(d) && pn_delivery_settled(d))
        pn_delivery_settle(d); /* exactly-once: the sender settled */
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static void
open_client(side_t *s, pn_connection_t *c)
{
    pn_connection_set_container(c, s->sender ? "proton-peer-sender" : "proton-peer-receiver");
    pn_connection_set_hostname(c, opts.host);
    if (opts.user[0]) {
        pn_connection_set_user(c, opts.user);
        if (opts.password[0])
            pn_connection_set_password(c, opts.password);
    }
    pn_connection_open(c);
    pn_session_t *ssn = pn_session(c);
    pn_session_open(ssn);
    char name[64];
    snprintf(name, sizeof name, "proton-peer-%s-%u", s->sender ? "sender" : "receiver",
             (unsigned)(s->pair - pairs));
    pn_link_t *l = s->sender ? pn_sender(ssn, name) : pn_receiver(ssn, name);
    s->link = l;
    pn_link_set_context(l, s);
    if (s->sender)
        pn_terminus_set_address(pn_link_target(l), opts.address);
    else
        pn_terminus_set_address(pn_link_source(l), opts.address);
    switch (opts.settle) {
    case BENCH_AT_MOST_ONCE:
        pn_link_set_snd_settle_mode(l, PN_SND_SETTLED);
        break;
    case BENCH_EXACTLY_ONCE:
        pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
        pn_link_set_rcv_settle_mode(l, PN_RCV_SECOND);
        break;
    default:
        pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
        pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    }
    pn_link_open(l);
    if (!s->sender)
        pn_link_flow(l, (int)opts.credit);
}

static int
start_client(side_t *s)
{
    char addr[PN_MAX_ADDR];
    pn_connection_t *c = pn_connection();
    pn_transport_t *t = pn_transport();
    if (!c || !t)
        return -1;
    pn_connection_set_context(c, s);
    /* Through a broker both programs use SASL (ANONYMOUS, or PLAIN with a
     * user in the URL); peer-to-peer only with --sasl (the listener's
     * transports detect it). */
    if (opts.sasl) {
        pn_sasl_t *sasl = pn_sasl(t);
        if (opts.user[0])
            pn_sasl_set_allow_insecure_mechs(sasl, true);
    }
    pn_proactor_addr(addr, sizeof addr, opts.host, opts.port);
    pn_proactor_connect2(proactor, c, t, addr);
    return 0;
}

/* The peer opened a link on an accepted connection: it is our receiver. */
static void
accept_link(pn_link_t *l)
{
    pn_connection_t *c = pn_session_connection(pn_link_session(l));
    side_t *s = pn_connection_get_context(c);
    if (!s || !pn_link_is_receiver(l)) {
        pn_condition_set_name(pn_link_condition(l), "amqp:not-implemented");
        pn_link_close(l);
        return;
    }
    s->link = l;
    pn_link_set_context(l, s);
    pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
    pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
    pn_link_set_snd_settle_mode(l, pn_link_remote_snd_settle_mode(l));
    pn_link_set_rcv_settle_mode(l, pn_link_remote_rcv_settle_mode(l));
    pn_link_open(l);
    pn_link_flow(l, (int)opts.credit);
}

static void
listener_open(pn_listener_t *l)
{
    char host[NI_MAXHOST], port[16];
    if (pn_netaddr_host_port(pn_listener_addr(l), host, sizeof host, port, sizeof port) != 0) {
        fprintf(stderr, PROG ": cannot read the listening port\n");
        atomic_store(&failed, true);
        pn_listener_close(l);
        return;
    }
    snprintf(opts.port, sizeof opts.port, "%s", port);
    for (unsigned i = 0; i < opts.connections; i++)
        if (start_client(&sides[2 * i]) != 0) {
            fprintf(stderr, PROG ": out of memory\n");
            atomic_store(&failed, true);
            pn_proactor_disconnect(proactor, NULL);
            return;
        }
}

static void
listener_accept(pn_listener_t *l)
{
    unsigned i = atomic_fetch_add(&next_receiver, 1);
    pn_connection_t *c = pn_connection();
    if (i < opts.connections)
        pn_connection_set_context(c, &sides[2 * i + 1]);
    pn_listener_accept2(l, c, NULL);
    if (i + 1 >= opts.connections)
        pn_listener_close(l);
}

/* Returns false when this thread should stop serving. */
static bool
handle(pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_LISTENER_OPEN:
        listener_open(pn_event_listener(e));
        break;
    case PN_LISTENER_ACCEPT:
        listener_accept(pn_event_listener(e));
        break;
    case PN_LISTENER_CLOSE:
        report_condition("listener", pn_listener_condition(pn_event_listener(e)));
        break;

    case PN_CONNECTION_INIT: {
        pn_connection_t *c = pn_event_connection(e);
        side_t *s = pn_connection_get_context(c);
        if (s && !s->server)
            open_client(s, c);
        break;
    }
    case PN_CONNECTION_REMOTE_OPEN: {
        pn_connection_t *c = pn_event_connection(e);
        if (pn_connection_state(c) & PN_LOCAL_UNINIT) {
            pn_connection_set_container(c, "proton-peer-receiver");
            pn_connection_open(c);
        }
        break;
    }
    case PN_SESSION_REMOTE_OPEN: {
        pn_session_t *ssn = pn_event_session(e);
        if (pn_session_state(ssn) & PN_LOCAL_UNINIT)
            pn_session_open(ssn);
        break;
    }
    case PN_LINK_REMOTE_OPEN: {
        pn_link_t *l = pn_event_link(e);
        if (pn_link_state(l) & PN_LOCAL_UNINIT)
            accept_link(l);
        break;
    }
    case PN_LINK_FLOW: {
        pn_link_t *l = pn_event_link(e);
        side_t *s = pn_link_get_context(l);
        if (s && s->sender)
            send_some(s, l);
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        pn_link_t *l = pn_delivery_link(d);
        side_t *s = pn_link_get_context(l);
        if (!s)
            break;
        if (s->sender)
            sender_outcome(s, d);
        else
            receiver_delivery(s, l, d);
        break;
    }
    case PN_LINK_REMOTE_CLOSE: {
        pn_link_t *l = pn_event_link(e);
        report_condition("link", pn_link_remote_condition(l));
        if (!(pn_link_state(l) & PN_LOCAL_CLOSED))
            pn_link_close(l);
        break;
    }
    case PN_CONNECTION_REMOTE_CLOSE: {
        pn_connection_t *c = pn_event_connection(e);
        side_t *s = pn_connection_get_context(c);
        report_condition("connection", pn_connection_remote_condition(c));
        if (s && !s->sender)
            s->pair->receiver_done = true;
        if (!(pn_connection_state(c) & PN_LOCAL_CLOSED))
            pn_connection_close(c);
        break;
    }
    case PN_TRANSPORT_ERROR: {
        pn_transport_t *t = pn_event_transport(e);
        pn_connection_t *c = pn_transport_connection(t);
        side_t *s = c ? pn_connection_get_context(c) : NULL;
        /* a transport that ends after both closes is not an error */
        if (!(c && (pn_connection_state(c) & PN_LOCAL_CLOSED) &&
              (pn_connection_state(c) & PN_REMOTE_CLOSED)) &&
            !(s && s->sender && s->pair->t_sender_done) &&
            !atomic_load(&global.all_received))
            report_condition("transport", pn_transport_condition(t));
        break;
    }
    case PN_PROACTOR_INACTIVE:
    case PN_PROACTOR_INTERRUPT:
        /* Everything closed: this thread leaves, and wakes the next one.
         * Interrupts close together may coalesce into one event, so each
         * leaving thread passes the interrupt on instead of the first
         * sending one per thread. */
        if (!leaving) {
            leaving = true; /* once per thread, even if a batch has both events */
            if (atomic_fetch_sub(&serving, 1) > 1)
                pn_proactor_interrupt(proactor);
        }
        return false;
    default:
        break;
    }
    return true;
}

static void *
serve(void *arg)
{
    (void)arg;
    bool run = true;
    while (run) {
        pn_event_batch_t *b = pn_proactor_wait(proactor);
        pn_event_t *e;
        while ((e = pn_event_batch_next(b)))
            if (!handle(e))
                run = false;
        pn_proactor_done(proactor, b);
    }
    bench_thread_exit();
    return NULL;
}

int
main(int argc, char **argv)
{
    int rc = bench_parse_args(&opts, argc, argv, PROG, usage);
    if (rc == -1)
        return BENCH_EXIT_OK;
    if (rc != 0)
        return BENCH_EXIT_USAGE;
    snprintf(version, sizeof version, "%d.%d.%d", PN_VERSION_MAJOR, PN_VERSION_MINOR,
             PN_VERSION_POINT);

    pairs = bench_pairs_new(&opts);
    sides = calloc(2 * (size_t)opts.connections, sizeof *sides);
    proactor = pn_proactor();
    if (!pairs || !sides || !proactor) {
        fprintf(stderr, PROG ": out of memory\n");
        return BENCH_EXIT_FAIL;
    }
    for (unsigned i = 0; i < opts.connections; i++) {
        side_t *snd = &sides[2 * i], *rcv = &sides[2 * i + 1];
        snd->pair = rcv->pair = &pairs[i];
        snd->sender = true;
        rcv->server = !opts.url;
        rcv->rmsg = pn_message();
        rcv->in_cap = opts.size + 256;
        rcv->in = malloc(rcv->in_cap);
        if (sender_init(snd) != 0 || !rcv->rmsg || !rcv->in) {
            fprintf(stderr, PROG ": cannot prepare the message\n");
            return BENCH_EXIT_FAIL;
        }
    }

    if (opts.url) {
        for (unsigned i = 0; i < opts.connections; i++)
            if (start_client(&sides[2 * i + 1]) != 0 || start_client(&sides[2 * i]) != 0) {
                fprintf(stderr, PROG ": out of memory\n");
                return BENCH_EXIT_FAIL;
            }
    } else {
        char addr[PN_MAX_ADDR];
        pn_proactor_addr(addr, sizeof addr, opts.host, "0");
        pn_proactor_listen(proactor, pn_listener(), addr, 16);
    }

    pthread_t *th = calloc(opts.threads, sizeof *th);
    if (!th)
        return BENCH_EXIT_FAIL;
    bench_super.running = opts.threads;
    atomic_store(&serving, opts.threads);
    for (unsigned i = 0; i < opts.threads; i++)
        if (pthread_create(&th[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, PROG ": cannot start a thread\n");
            return BENCH_EXIT_FAIL;
        }
    rc = bench_supervise(&opts, pairs, PROG);
    if (rc == BENCH_EXIT_TIMEOUT) {
        fflush(stdout);
        _exit(BENCH_EXIT_TIMEOUT);
    }
    for (unsigned i = 0; i < opts.threads; i++)
        pthread_join(th[i], NULL);

    bench_result_t r;
    if (bench_collect(&opts, pairs, &r) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return BENCH_EXIT_FAIL;
    }
    bench_print(&opts, &r, "proton", version, NULL, 0);
    bool ok = bench_result_ok(&opts, &r, PROG) && !atomic_load(&failed);

    for (unsigned i = 0; i < 2 * opts.connections; i++) {
        pn_message_free(sides[i].msg);
        pn_message_free(sides[i].rmsg);
        free(sides[i].out);
        free(sides[i].body);
        free(sides[i].in);
    }
    free(sides);
    free(th);
    pn_proactor_free(proactor);
    bench_pairs_free(pairs, opts.connections);
    return ok ? BENCH_EXIT_OK : BENCH_EXIT_FAIL;
}
#endif
