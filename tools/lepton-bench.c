/* lepton-bench: messaging throughput and latency, in the manner of the
 * quiver tool.  Senders send N messages of S bytes to receivers, peer to
 * peer (this process listens on 127.0.0.1 and connects to itself) or
 * through a broker URL, and the program reports messages per second and
 * the latency percentiles, with a live progress line on a terminal and a
 * final line of JSON.  A thin main() over the messaging API
 * (include/lepton/messaging.h) only.
 *
 * The measuring half (options, counters, timing, percentiles, output) is
 * bench/bench_common.h, shared with bench/proton_peer.c, the Proton-C
 * program that does the same work for bench/compare.
 *
 * Per message:
 *   sender    patch the send time into the message encoded once before
 *             the run and lep_sender_send_encoded() it (with
 *             --encode-each: set the body of a reused lep_message_t and
 *             lep_sender_send() it), while the link has credit; the
 *             container settles each delivery when its outcome arrives;
 *   receiver  the container decodes the message into its reused
 *             lep_message_t and calls on_message, which reads the time
 *             from the body and stores one latency sample; the container
 *             accepts and settles it and tops the credit window up once
 *             half of it is used.
 * Nothing is allocated by this program per message.  The allocations
 * lepton makes during the run are counted through lep_set_allocator()
 * and reported per message (the design goal is 0). */
#include <lepton/messaging.h>

#include "../bench/bench_common.h"

#define PROG "lepton-bench"
#define VERSION LEP_VERSION_STRING

static bench_opts_t opts;
static bench_pair_t *pairs;
static bench_global_t global;
static lep_container_t *container;
static lep_listener_t *listener;
static _Atomic unsigned next_receiver; /* peer-to-peer: pair of the next accepted receiver */
static _Atomic bool failed;

/* Options of lepton-bench alone (bench/proton_peer has no use for them;
 * the shared ones are parsed by bench_common.h). */
static bool opt_durable;        /* --durable */
static bool opt_address_per_pair; /* --address-per-pair */

/* Broker mode: once every message is in, the container is stopped and
 * run() returns when the connections have closed.  A broker that never
 * answers a close (or a wake-up lost in the event loop) must not hold the
 * result back: after CLOSE_GRACE_S the watchdog reports and exits. */
#define CLOSE_GRACE_S 10
static _Atomic uint64_t run_over_ns; /* when the container was told to stop */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static bool joined;                  /* the serving threads returned */

/* Allocations through lepton's hook, from the first send to the end,
 * and in the steady state: while the first receiver goes from 50% to 90%
 * of its messages (or of --duration), once every pool and buffer has
 * grown to what the credit window needs. */
static _Atomic uint64_t allocs;
static _Atomic uint64_t allocs_at_start;
static _Atomic bool started;
static uint64_t steady_allocs[2], steady_msgs[2];
static int steady_phase; /* 0, 1 after the 50% mark, 2 after the 90% mark */

typedef struct side {
    bench_pair_t *pair;
    bool sender;
    lep_connection_t *conn;
    lep_sender_t *snd;
    lep_receiver_t *rcv;
    /* sender: the encoded message, patched per send */
    lep_buf_t out;
    size_t body_off;
    lep_message_t *msg; /* --encode-each */
    uint8_t *body;
} side_t;

static side_t *sides; /* [2i] sender, [2i+1] receiver of pair i */

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTIONS] [URL]\n"
            "Measure messaging throughput and latency with lepton.\n"
            "\n"
            "Senders send COUNT messages (or send for --duration seconds) with a body of\n"
            "SIZE bytes to receivers, as fast as the receivers' credit allows; the\n"
            "receivers accept each message.  The result is messages per second from the\n"
            "first send to the last arrival (and last settlement), and the percentiles\n"
            "of the latency from each send to its arrival at the receiver.\n"
            "\n"
            "Without URL: peer-to-peer.  " PROG " listens on 127.0.0.1 (a free port)\n"
            "and connects to itself: each connection carries one sender, whose\n"
            "accepted end is the receiver.  With URL\n"
            "(amqp://[USER[:PASSWORD]@]HOST[:PORT]/ADDRESS): through a broker, each pair\n"
            "is a sending and a receiving connection to HOST:PORT, both on ADDRESS.\n"
            "\n"
            "Options:\n%s"
            "      --durable          durable messages (header durable=true) and durable\n"
            "                         termini (configuration): a broker journals them,\n"
            "                         RabbitMQ declares /queue/NAME durable\n"
            "      --address-per-pair through a broker, pair i (from 0) uses ADDRESS.i,\n"
            "                         so N pairs use N queues (default: all share ADDRESS)\n"
            "\n"
            "Output: on a terminal, a progress line on stderr twice a second; then the\n"
            "result on stdout, ending with one line of JSON (the only output with\n"
            "--json): msgs_per_s, seconds, count, latency_us {p50, p99, p999, max,\n"
            "mean} and lepton's allocations per message.\n"
            "\n"
            "Exit status: 0 when every message arrived (and was accepted, unless\n"
            "at-most-once), 1 on failure, 2 on a usage error, 3 on timeout.\n"
            "\n"
            "Examples:\n"
            "  " PROG "                              1,000,000 messages of 100 bytes\n"
            "  " PROG " --threads 2 --connections 2  two threads, two connection pairs\n"
            "  " PROG " -s 1024 --duration 10 --settle at-most-once\n"
            "  " PROG " amqp://localhost:5672/bench  through a broker\n"
            "See bench/README.md and bench/compare for the comparison with Proton-C.\n",
            bench_options_help);
}

/* ------------------------------------------------------------------ */
/* Allocation counting                                                 */

static void *
count_malloc(size_t n, void *ctx)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return malloc(n);
}

static void *
count_realloc(void *p, size_t n, void *ctx)
{
    atomic_fetch_add_explicit(&allocs, 1, memory_order_relaxed);
    return realloc(p, n);
}

static void
count_free(void *p, void *ctx)
{
    free(p);
}

static void
fail(const char *what, const lep_condition_t *cond)
{
    char buf[512];
    if (cond)
        fprintf(stderr, PROG ": %s: %s\n", what, lep_condition_format(cond, buf, sizeof buf));
    else
        fprintf(stderr, PROG ": %s\n", what);
    atomic_store(&failed, true);
}

/* ------------------------------------------------------------------ */
/* Sender                                                              */

static int
sender_init(side_t *s)
{
    int rc;
    lep_buf_init(&s->out);
    s->body = calloc(1, opts.size + 1);
    if (!s->body || (rc = lep_message_new(&s->msg)) != 0)
        return -1;
    for (size_t i = BENCH_TS_LEN; i < opts.size; i++)
        s->body[i] = (uint8_t)('a' + i % 26);
    if (opt_durable) /* only then: setting false would add a header section */
        lep_message_set_durable(s->msg, true);
    if ((rc = lep_message_set_body_data(s->msg, (lep_bytes_t){s->body, opts.size})) != 0 ||
        (rc = lep_message_encode(s->msg, &s->out)) != 0)
        return -1;
    /* the body is the encoding's last bytes */
    s->body_off = s->out.len - opts.size;
    return 0;
}

static void
stop_at_end(void)
{
    atomic_store(&run_over_ns, bench_now_ns());
    lep_container_stop(container);
}

static void
sender_finish(side_t *s, uint64_t now)
{
    bench_pair_t *p = s->pair;
    p->t_sender_done = now;
    if (opts.url) {
        atomic_fetch_add(&global.total_sent, bench_count(&p->sent));
        atomic_fetch_add(&global.senders_done, 1);
        if (bench_global_check(&global, opts.connections))
            stop_at_end();
    }
    lep_connection_close(s->conn, NULL);
}

static void
on_sendable(void *ctx, lep_sender_t *snd)
{
    side_t *s = lep_sender_context(snd);
    if (!s)
        return;
    bench_pair_t *p = s->pair;
    uint64_t now = 0;

    while (lep_sender_credit(snd) > 0) {
        now = bench_now_ns();
        if (!p->t_first_send) {
            bench_first_send(p, &opts, now);
            bool f = false;
            if (atomic_compare_exchange_strong(&started, &f, true))
                atomic_store(&allocs_at_start, atomic_load(&allocs));
        }
        if (!bench_may_send(p, now))
            break;
        int rc;
        if (opts.encode_each) {
            if (opts.size >= BENCH_TS_LEN)
                bench_put_ts(s->body, now);
            rc = lep_message_set_body_data(s->msg, (lep_bytes_t){s->body, opts.size});
            if (rc == 0)
                rc = lep_sender_send(snd, s->msg, NULL);
        } else {
            if (opts.size >= BENCH_TS_LEN)
                bench_put_ts(s->out.data + s->body_off, now);
            rc = lep_sender_send_encoded(snd, s->out.data, s->out.len, NULL);
        }
        if (rc != 0) {
            fprintf(stderr, PROG ": send failed: %s\n", lep_strerror(rc));
            atomic_store(&failed, true);
            p->sending_done = true;
            break;
        }
        bench_count_inc(&p->sent);
    }
    if (p->sending_done && !p->t_sender_done && bench_sender_finished(p, &opts))
        sender_finish(s, now ? now : bench_now_ns());
}

static void
outcome(lep_sender_t *snd, bool accepted)
{
    side_t *s = lep_sender_context(snd);
    if (!s)
        return;
    bench_pair_t *p = s->pair;
    if (accepted)
        p->accepted++;
    else
        p->not_accepted++;
    p->settled++;
    if (p->sending_done && !p->t_sender_done && bench_sender_finished(p, &opts))
        sender_finish(s, bench_now_ns());
}

static void
on_accepted(void *ctx, lep_sender_t *snd, lep_delivery_t *d)
{
    outcome(snd, true);
}

static void
on_not_accepted(void *ctx, lep_sender_t *snd, lep_delivery_t *d)
{
    outcome(snd, false);
}

/* ------------------------------------------------------------------ */
/* Receiver                                                            */

static void
on_receiver_open(void *ctx, lep_receiver_t *r)
{
    if (lep_receiver_context(r))
        return; /* one of ours (broker mode), already set up */
    unsigned i = atomic_fetch_add(&next_receiver, 1);
    if (opts.url || i >= opts.connections) {
        lep_condition_t cond = lep_condition_make("amqp:not-allowed", "unexpected link");
        lep_receiver_close(r, &cond);
        return;
    }
    side_t *s = &sides[2 * i + 1];
    s->rcv = r;
    s->conn = lep_receiver_connection(r);
    lep_receiver_set_context(r, s);
    lep_connection_set_context(s->conn, s);
    lep_receiver_set_credit_window(r, opts.credit);
    if (i + 1 == opts.connections && listener) {
        lep_container_close_listener(container, listener);
        listener = NULL;
    }
}

/* Pair 0's receiver, per message until the 90% mark. */
static void
steady_mark(bench_pair_t *p, uint64_t now)
{
    double f;
    if (opts.duration > 0)
        f = p->t_first_send ? (double)(now - p->t_first_send) * 1e-9 / opts.duration : 0;
    else if (opts.url)
        f = (double)atomic_load_explicit(&global.total_received, memory_order_relaxed) /
            (double)opts.count;
    else
        f = (double)bench_count(&p->received) / (double)p->to_send;
    if (f < (steady_phase == 0 ? 0.5 : 0.9))
        return;
    uint64_t msgs = 0;
    for (unsigned i = 0; i < opts.connections; i++)
        msgs += bench_count(&pairs[i].received);
    steady_allocs[steady_phase] = atomic_load(&allocs);
    steady_msgs[steady_phase] = msgs;
    steady_phase++;
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    side_t *s = lep_receiver_context(r);
    uint64_t now = bench_now_ns();
    if (!s)
        return;
    bench_pair_t *p = s->pair;
    if (opts.size >= BENCH_TS_LEN) {
        lep_bytes_t b = lep_message_body_section(m, 0);
        if (b.len >= BENCH_TS_LEN)
            bench_lat_add(&p->lat, bench_get_ts(b.ptr), now);
    }
    p->t_last_arrival = now;
    bench_count_inc(&p->received);
    if (p == &pairs[0] && steady_phase < 2)
        steady_mark(p, now);
    if (opts.url) {
        atomic_fetch_add(&global.total_received, 1);
        if (bench_global_check(&global, opts.connections))
            stop_at_end();
    }
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

static bool
ended_cleanly(lep_connection_t *c)
{
    side_t *s = lep_connection_context(c);
    if (atomic_load(&global.all_received))
        return true;
    if (s && s->sender)
        return s->pair->t_sender_done != 0;
    return s && s->pair->receiver_done;
}

static void
on_connection_close(void *ctx, lep_connection_t *c)
{
    side_t *s = lep_connection_context(c);
    if (s && !s->sender)
        s->pair->receiver_done = true;
}

static void
on_connection_error(void *ctx, lep_connection_t *c, const lep_condition_t *cond)
{
    fail("connection closed with an error", cond);
}

static void
on_sender_error(void *ctx, lep_sender_t *snd, const lep_condition_t *cond)
{
    fail("sender closed with an error", cond);
}

static void
on_receiver_error(void *ctx, lep_receiver_t *r, const lep_condition_t *cond)
{
    fail("receiver closed with an error", cond);
}

static void
on_transport_error(void *ctx, lep_connection_t *c, const lep_condition_t *cond)
{
    if (!ended_cleanly(c))
        fail("transport failed", cond);
}

static void
on_disconnected(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n)
{
    if (!ended_cleanly(c))
        fail("disconnected before the end of the run", NULL);
}

static const lep_handler_t handler = {
    .on_sendable = on_sendable,
    .on_accepted = on_accepted,
    .on_rejected = on_not_accepted,
    .on_released = on_not_accepted,
    .on_receiver_open = on_receiver_open,
    .on_message = on_message,
    .on_connection_close = on_connection_close,
    .on_connection_error = on_connection_error,
    .on_sender_error = on_sender_error,
    .on_receiver_error = on_receiver_error,
    .on_transport_error = on_transport_error,
    .on_disconnected = on_disconnected,
};

static lep_delivery_mode_t
delivery_mode(void)
{
    switch (opts.settle) {
    case BENCH_AT_MOST_ONCE: return LEP_AT_MOST_ONCE;
    case BENCH_EXACTLY_ONCE: return LEP_EXACTLY_ONCE;
    default: return LEP_AT_LEAST_ONCE;
    }
}

static void
connection_opts(lep_connection_opts_t *co)
{
    lep_connection_opts_init(co);
    co->reconnect.enabled = false; /* a lost connection fails the run */
    /* Through a broker both programs use SASL (ANONYMOUS, or PLAIN with a
     * user in the URL); peer-to-peer only with --sasl, as Proton-C's
     * proactor client has no SASL layer by default (the listener accepts
     * either). */
    co->sasl_enabled = opts.sasl;
    if (opts.user[0] && opts.password[0])
        co->sasl_allow_insecure = true; /* PLAIN to a local test broker */
}

/* The link address of pair i: ADDRESS, or ADDRESS.i with --address-per-pair. */
static const char *
pair_address(const side_t *s, char *buf, size_t cap)
{
    if (!opt_address_per_pair || !opts.url)
        return opts.address;
    snprintf(buf, cap, "%s.%u", opts.address, (unsigned)(s->pair - pairs));
    return buf;
}

static int
start_sender(side_t *s, const char *url)
{
    lep_connection_opts_t co;
    lep_sender_opts_t so;
    lep_target_t tgt;
    char addr[300];
    connection_opts(&co);
    int rc = lep_container_connect(container, url, &co, &s->conn);
    if (rc)
        return rc;
    lep_connection_set_context(s->conn, s);
    lep_sender_opts_init(&so);
    so.mode = delivery_mode();
    if (opt_durable) {
        /* RabbitMQ declares /queue/NAME with the terminus' durability */
        lep_target_init(&tgt);
        tgt.durable = LEP_TERMINUS_DURABILITY_CONFIGURATION;
        tgt.present |= LEP_TARGET_HAS_DURABLE;
        so.target = &tgt;
    }
    if ((rc = lep_connection_open_sender(s->conn, pair_address(s, addr, sizeof addr), &so,
                                         &s->snd)) != 0)
        return rc;
    lep_sender_set_context(s->snd, s);
    return 0;
}

static int
start_receiver(side_t *s, const char *url)
{
    lep_connection_opts_t co;
    lep_receiver_opts_t ro;
    lep_source_t src;
    char addr[300];
    connection_opts(&co);
    int rc = lep_container_connect(container, url, &co, &s->conn);
    if (rc)
        return rc;
    lep_connection_set_context(s->conn, s);
    lep_receiver_opts_init(&ro);
    ro.mode = delivery_mode();
    ro.credit_window = opts.credit;
    if (opt_durable) {
        /* the same durability as the sender's target: RabbitMQ refuses to
         * redeclare a queue with another */
        lep_source_init(&src);
        src.durable = LEP_TERMINUS_DURABILITY_CONFIGURATION;
        src.present |= LEP_SOURCE_HAS_DURABLE;
        ro.source = &src;
    }
    if ((rc = lep_connection_open_receiver(s->conn, pair_address(s, addr, sizeof addr), &ro,
                                           &s->rcv)) != 0)
        return rc;
    lep_receiver_set_context(s->rcv, s);
    return 0;
}

static void *
serve(void *arg)
{
    int rc = lep_container_run(container);
    if (rc) {
        fprintf(stderr, PROG ": event loop failed: %s\n", lep_strerror(rc));
        atomic_store(&failed, true);
    }
    bench_thread_exit();
    return NULL;
}

/* Prints the result; the exit status, or -1 when out of memory. */
static int
report(void)
{
    uint64_t run_allocs = atomic_load(&allocs) - atomic_load(&allocs_at_start);
    bench_result_t r;
    if (bench_collect(&opts, pairs, &r) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    /* lepton's allocations per message, from the first send to the end */
    double apm = r.received ? (double)run_allocs / (double)r.received : 0;
    bench_extra_t extra[4] = {{"allocations/msg", "allocs_per_msg", apm}};
    size_t nextra = 1;
    if (steady_phase == 2 && steady_msgs[1] > steady_msgs[0])
        extra[nextra++] = (bench_extra_t){
            "  steady state", "allocs_per_msg_steady",
            (double)(steady_allocs[1] - steady_allocs[0]) /
                (double)(steady_msgs[1] - steady_msgs[0])};
    /* what the shared title line cannot say */
    if (opt_durable)
        extra[nextra++] = (bench_extra_t){"durable", "durable", 1};
    if (opt_address_per_pair && opts.url)
        extra[nextra++] = (bench_extra_t){"addresses", "addresses", opts.connections};
    bench_print(&opts, &r, "lepton", VERSION, extra, nextra);
    bool ok = bench_result_ok(&opts, &r, PROG) && !atomic_load(&failed);
    return ok ? BENCH_EXIT_OK : BENCH_EXIT_FAIL;
}

/* Broker mode: the run is over but the connections have not all closed
 * CLOSE_GRACE_S later: report anyway (every message is in and settled). */
static void *
close_watch(void *arg)
{
    for (;;) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t over = atomic_load(&run_over_ns);
        if (!over || bench_now_ns() - over < (uint64_t)CLOSE_GRACE_S * 1000000000u)
            continue;
        pthread_mutex_lock(&report_lock);
        if (joined) {
            pthread_mutex_unlock(&report_lock);
            return NULL;
        }
        fprintf(stderr,
                PROG ": connections still open %d s after the end of the run (a close "
                     "not answered); the result stands\n",
                CLOSE_GRACE_S);
        int status = report();
        fflush(stdout);
        _exit(status < 0 ? BENCH_EXIT_FAIL : status);
    }
}

/* Takes lepton-bench's own options out of argv (in place), leaving the
 * shared ones to bench_parse_args. */
static int
own_options(int argc, char **argv)
{
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                argv[n++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--durable") == 0)
            opt_durable = true;
        else if (strcmp(argv[i], "--address-per-pair") == 0)
            opt_address_per_pair = true;
        else
            argv[n++] = argv[i];
    }
    argv[n] = NULL;
    return n;
}

int
main(int argc, char **argv)
{
    argc = own_options(argc, argv);
    int rc = bench_parse_args(&opts, argc, argv, PROG, usage);
    if (rc == -1)
        return BENCH_EXIT_OK;
    if (rc != 0)
        return BENCH_EXIT_USAGE;
    lep_allocator_t alloc = {count_malloc, count_realloc, count_free, NULL};
    lep_set_allocator(&alloc);

    pairs = bench_pairs_new(&opts);
    sides = calloc(2 * (size_t)opts.connections, sizeof *sides);
    if (!pairs || !sides) {
        fprintf(stderr, PROG ": out of memory\n");
        return BENCH_EXIT_FAIL;
    }
    for (unsigned i = 0; i < opts.connections; i++) {
        sides[2 * i].pair = sides[2 * i + 1].pair = &pairs[i];
        sides[2 * i].sender = true;
        if (sender_init(&sides[2 * i]) != 0) {
            fprintf(stderr, PROG ": cannot prepare the message\n");
            return BENCH_EXIT_FAIL;
        }
    }

    lep_container_opts_t copt;
    lep_container_opts_init(&copt);
    copt.id = "lepton-bench";
    copt.handler = &handler;
    if (lep_container_new(&container, &copt) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return BENCH_EXIT_FAIL;
    }

    char url[600];
    if (opts.url) {
        for (unsigned i = 0; i < opts.connections && rc == 0; i++) {
            rc = start_receiver(&sides[2 * i + 1], opts.url);
            if (rc == 0)
                rc = start_sender(&sides[2 * i], opts.url);
        }
    } else {
        lep_connection_opts_t co;
        connection_opts(&co);
        rc = lep_container_listen(container, "amqp://127.0.0.1:0", &co, &listener);
        if (rc == 0) {
            snprintf(url, sizeof url, "amqp://127.0.0.1:%u", (unsigned)lep_listener_port(listener));
            for (unsigned i = 0; i < opts.connections && rc == 0; i++)
                rc = start_sender(&sides[2 * i], url);
        }
    }
    if (rc) {
        const char *why = lep_container_error();
        fprintf(stderr, PROG ": %s\n", why && *why ? why : lep_strerror(rc));
        return BENCH_EXIT_FAIL;
    }

    pthread_t *th = calloc(opts.threads, sizeof *th);
    if (!th)
        return BENCH_EXIT_FAIL;
    bench_super.running = opts.threads;
    for (unsigned i = 0; i < opts.threads; i++)
        if (pthread_create(&th[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, PROG ": cannot start a thread\n");
            return BENCH_EXIT_FAIL;
        }
    pthread_t watch;
    if (opts.url && pthread_create(&watch, NULL, close_watch, NULL) == 0)
        pthread_detach(watch);
    rc = bench_supervise(&opts, pairs, PROG);
    if (rc == BENCH_EXIT_TIMEOUT) {
        fflush(stdout);
        _exit(BENCH_EXIT_TIMEOUT);
    }
    for (unsigned i = 0; i < opts.threads; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_lock(&report_lock);
    joined = true;
    pthread_mutex_unlock(&report_lock);
    int status = report();
    if (status == -1)
        return BENCH_EXIT_FAIL;

    lep_container_free(container);
    for (unsigned i = 0; i < opts.connections; i++) {
        lep_message_free(sides[2 * i].msg);
        lep_buf_fini(&sides[2 * i].out);
        free(sides[2 * i].body);
    }
    free(sides);
    free(th);
    bench_pairs_free(pairs, opts.connections);
    return status;
}
