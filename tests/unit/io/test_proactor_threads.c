/* The proactor's thread pool: run() on 2 and 4 threads with many
 * connections streaming messages (one connection's callbacks never
 * overlap, every thread works), injection from foreign threads,
 * interrupt/stop/notify from threads and signal handlers, and a
 * throughput measurement.
 *
 * Callbacks run on loop threads, where cmocka's assert_* (longjmp) must
 * not be used: they count failures in CHECK, asserted by the main
 * thread at the end. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include <lepton/io.h>

static void
arm_alarm(unsigned s)
{
    signal(SIGALRM, SIG_DFL);
    alarm(s);
}

static atomic_int g_fail;
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            atomic_fetch_add(&g_fail, 1);                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                 \
    } while (0)

/* ------------------------------------------------------------------ */
/* Running on n threads                                                */

#define MAXTHREADS 8

static _Thread_local int thread_idx = -1;

typedef struct runner {
    lep_proactor_t *p;
    int idx;
    int rc;
    pthread_t th;
    atomic_bool returned;
} runner_t;

static void *
run_thread(void *arg)
{
    runner_t *r = arg;
    thread_idx = r->idx;
    r->rc = lep_proactor_run(r->p);
    atomic_store(&r->returned, true);
    return NULL;
}

static void
start_runners(runner_t *r, int n, lep_proactor_t *p)
{
    for (int i = 0; i < n; i++) {
        r[i].p = p;
        r[i].idx = i;
        r[i].rc = -999;
        atomic_init(&r[i].returned, false);
        assert_int_equal(pthread_create(&r[i].th, NULL, run_thread, &r[i]), 0);
    }
}

static void
join_runners(runner_t *r, int n)
{
    for (int i = 0; i < n; i++) {
        pthread_join(r[i].th, NULL);
        assert_int_equal(r[i].rc, 0);
    }
}

/* ------------------------------------------------------------------ */
/* Streaming on many connections                                       */

static const uint8_t TGT[] = {0xa1, 1, 'q'};

static size_t
make_body(uint8_t *buf, int n)
{
    char text[32];
    int tl = snprintf(text, sizeof text, "message %d", n);
    buf[0] = 0x00;
    buf[1] = 0x53;
    buf[2] = 0x77;
    buf[3] = 0xa1;
    buf[4] = (uint8_t)tl;
    memcpy(buf + 5, text, (size_t)tl);
    return 5 + (size_t)tl;
}

typedef struct world world_t;

/* One per connection, client or server. */
typedef struct pconn {
    world_t *w;
    atomic_int incb;
    bool server;
    lep_io_conn_t *ic;
    lep_link_t *snd;
    int wanted; /* client: messages asked for (by nmsg or by injected items) */
    int sent, accepted, received, items;
    atomic_bool connected;
} pconn_t;

struct world {
    lep_proactor_t *p;
    int nmsg;      /* per client, unless driven by items */
    int nclients;
    bool by_items; /* clients send only what injected items ask for */
    atomic_int overlaps;
    atomic_int disc, errs;
    atomic_int received, accepted;
    atomic_int by_thread[MAXTHREADS];
    pconn_t *clients;
};

static void
enter(pconn_t *pc)
{
    if (atomic_fetch_add(&pc->incb, 1) != 0)
        atomic_fetch_add(&pc->w->overlaps, 1);
    if (thread_idx >= 0)
        atomic_fetch_add(&pc->w->by_thread[thread_idx], 1);
}

static void
leave(pconn_t *pc)
{
    atomic_fetch_sub(&pc->incb, 1);
}

static pconn_t *
pc_of(lep_io_conn_t *ic)
{
    lep_conn_t *c = lep_io_conn_engine(ic);
    return c ? lep_conn_context(c) : NULL;
}

static int
w_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    pconn_t *pc;
    if (lep_conn_is_server(c)) {
        pc = calloc(1, sizeof *pc);
        pc->w = ctx;
        pc->server = true;
    } else {
        pc = ctx;
    }
    pc->ic = ic;
    enter(pc);
    lep_conn_set_context(c, pc);
    if (!pc->server) {
        lep_io_conn_hold(ic); /* released by the test after the run */
        CHECK(lep_conn_open(c) == 0);
        lep_session_t *s;
        CHECK(lep_session_new(c, &s) == 0);
        CHECK(lep_session_begin(s) == 0);
        lep_link_opts_t lo;
        lep_link_opts_init(&lo);
        lo.name = "stream";
        lep_target_t t;
        lep_target_init(&t);
        t.present = LEP_TARGET_HAS_ADDRESS;
        t.address = LEP_BYTES(TGT, sizeof TGT);
        lo.target = &t;
        CHECK(lep_link_new(s, &lo, &pc->snd) == 0);
        CHECK(lep_link_attach(pc->snd) == 0);
    }
    leave(pc);
    return 0;
}

static void
pump(pconn_t *pc)
{
    while (pc->sent < pc->wanted && lep_link_credit(pc->snd) > 0) {
        uint8_t body[64];
        size_t len = make_body(body, pc->sent);
        CHECK(lep_link_send(pc->snd, LEP_BYTES(NULL, 0), body, len, false, NULL) == 0);
        pc->sent++;
    }
}

static void
w_connected(void *ctx, lep_io_conn_t *ic)
{
    (void)ctx;
    pconn_t *pc = pc_of(ic);
    enter(pc);
    atomic_store(&pc->connected, true);
    leave(pc);
}

static void
w_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ctx;
    pconn_t *pc = lep_conn_context(ev->conn);
    CHECK(pc->ic == ic);
    enter(pc);
    if (!pc->server) {
        if (ev->type == LEP_EVENT_LINK_FLOW) {
            pump(pc);
        } else if (ev->type == LEP_EVENT_DELIVERY && lep_delivery_updated(ev->delivery)) {
            CHECK(lep_delivery_remote_state(ev->delivery)->type == LEP_OUTCOME_ACCEPTED);
            CHECK(lep_delivery_settle(ev->delivery) == 0);
            atomic_fetch_add(&pc->w->accepted, 1);
            if (++pc->accepted == (pc->w->by_items ? pc->w->nmsg : pc->wanted))
                CHECK(lep_conn_close(ev->conn, NULL) == 0);
        }
        leave(pc);
        return;
    }
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        CHECK(lep_conn_open(ev->conn) == 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        CHECK(lep_session_begin(ev->session) == 0);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        CHECK(lep_link_attach(ev->link) == 0);
        CHECK(lep_link_flow(ev->link, 100) == 0);
        break;
    case LEP_EVENT_DELIVERY: {
        lep_delivery_t *d = ev->delivery;
        if (lep_delivery_partial(d))
            break;
        uint8_t want[64];
        size_t wl = make_body(want, pc->received);
        lep_bytes_t got = lep_delivery_data(d);
        CHECK(got.len == wl && memcmp(got.ptr, want, wl) == 0);
        pc->received++;
        atomic_fetch_add(&pc->w->received, 1);
        CHECK(lep_delivery_accept(d) == 0);
        CHECK(lep_delivery_settle(d) == 0);
        CHECK(lep_link_flow(ev->link, 1) == 0);
        break;
    }
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        CHECK(lep_conn_close(ev->conn, NULL) == 0);
        break;
    default:
        break;
    }
    leave(pc);
}

static void
w_disconnected(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    (void)ctx;
    pconn_t *pc = pc_of(ic);
    enter(pc);
    world_t *w = pc->w;
    if (err) {
        fprintf(stderr, "disconnected: %s\n", reason);
        atomic_fetch_add(&w->errs, 1);
    }
    CHECK(!lep_io_conn_reconnecting(ic));
    CHECK(lep_io_conn_inject(ic, (lep_io_fn)free, NULL) == LEP_ERR_STATE);
    leave(pc);
    if (pc->server)
        free(pc);
    if (atomic_fetch_add(&w->disc, 1) + 1 == 2 * w->nclients)
        lep_proactor_stop(w->p);
}

static const lep_io_handler_t W_HANDLER = {.on_setup = w_setup,
                                           .on_connected = w_connected,
                                           .on_event = w_event,
                                           .on_disconnected = w_disconnected};

static void
world_init(world_t *w, int nclients, int nmsg)
{
    memset(w, 0, sizeof *w);
    w->nclients = nclients;
    w->nmsg = nmsg;
    w->clients = calloc((size_t)nclients, sizeof *w->clients);
    assert_int_equal(lep_proactor_new(&w->p, NULL), 0);
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(w->p, "127.0.0.1", 0, NULL, &W_HANDLER, w, &l), 0);
    for (int i = 0; i < nclients; i++) {
        pconn_t *pc = &w->clients[i];
        pc->w = w;
        pc->wanted = w->by_items ? 0 : nmsg;
        assert_int_equal(lep_proactor_connect(w->p, "127.0.0.1", lep_listener_port(l), NULL,
                                              &W_HANDLER, pc, NULL),
                         0);
    }
}

static void
world_fini(world_t *w)
{
    for (int i = 0; i < w->nclients; i++)
        if (w->clients[i].ic)
            lep_io_conn_release(w->clients[i].ic);
    lep_proactor_free(w->p);
    free(w->clients);
}

static void
streaming(int nthreads, int nclients, int nmsg)
{
    atomic_store(&g_fail, 0);
    world_t w;
    world_init(&w, nclients, nmsg);
    runner_t r[MAXTHREADS];
    int64_t t0 = lep_proactor_now_ms();
    start_runners(r, nthreads, w.p);
    join_runners(r, nthreads);
    int64_t took = lep_proactor_now_ms() - t0;
    int busy = 0;
    for (int i = 0; i < nthreads; i++)
        busy += atomic_load(&w.by_thread[i]) > 0;
    fprintf(stderr, "  %d threads, %d clients x %d messages: %lld ms; callbacks per thread:",
            nthreads, nclients, nmsg, (long long)took);
    for (int i = 0; i < nthreads; i++)
        fprintf(stderr, " %d", atomic_load(&w.by_thread[i]));
    fprintf(stderr, "\n");
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&w.overlaps), 0);
    assert_int_equal(atomic_load(&w.errs), 0);
    assert_int_equal(atomic_load(&w.disc), 2 * nclients);
    assert_int_equal(atomic_load(&w.received), nclients * nmsg);
    assert_int_equal(atomic_load(&w.accepted), nclients * nmsg);
    for (int i = 0; i < nclients; i++) {
        assert_int_equal(w.clients[i].sent, nmsg);
        assert_int_equal(w.clients[i].accepted, nmsg);
    }
    /* With 2 threads both work; with 4 on a small machine at least 2. */
    assert_true(busy >= 2);
    world_fini(&w);
}

static void
test_two_threads(void **state)
{
    (void)state;
    arm_alarm(60);
    streaming(2, 8, 1500);
    alarm(0);
}

static void
test_four_threads(void **state)
{
    (void)state;
    arm_alarm(60);
    streaming(4, 16, 1000);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* A connection fed by injected items from 4 foreign threads while 4
 * threads run the loop.                                               */

#define FEEDERS 4
#define PER_FEEDER 250

static void
ask_one(void *ctx)
{
    pconn_t *pc = ctx;
    enter(pc);
    CHECK(thread_idx >= 0); /* on a loop thread */
    pc->items++;
    pc->wanted++;
    pump(pc);
    leave(pc);
}

static void *
feeder(void *arg)
{
    pconn_t *pc = arg;
    while (!atomic_load(&pc->connected))
        usleep(1000);
    for (int i = 0; i < PER_FEEDER; i++) {
        CHECK(lep_io_conn_inject(pc->ic, ask_one, pc) == 0);
        if (i % 64 == 0)
            usleep(500);
    }
    return NULL;
}

static void
test_inject_from_foreign_threads(void **state)
{
    (void)state;
    arm_alarm(60);
    atomic_store(&g_fail, 0);
    world_t w;
    memset(&w, 0, sizeof w);
    w.by_items = true;
    world_init(&w, 1, FEEDERS * PER_FEEDER);
    w.by_items = true;
    w.clients[0].wanted = 0;
    runner_t r[4];
    start_runners(r, 4, w.p);
    while (!atomic_load(&w.clients[0].connected))
        usleep(1000);
    pthread_t f[FEEDERS];
    for (int i = 0; i < FEEDERS; i++)
        assert_int_equal(pthread_create(&f[i], NULL, feeder, &w.clients[0]), 0);
    for (int i = 0; i < FEEDERS; i++)
        pthread_join(f[i], NULL);
    join_runners(r, 4);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&w.overlaps), 0);
    assert_int_equal(w.clients[0].items, FEEDERS * PER_FEEDER);
    assert_int_equal(w.clients[0].sent, FEEDERS * PER_FEEDER);
    assert_int_equal(atomic_load(&w.received), FEEDERS * PER_FEEDER);
    assert_int_equal(atomic_load(&w.errs), 0);
    world_fini(&w);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Proactor-level functions injected from foreign threads: one at a
 * time, each submitter's in order.                                    */

#define PSUBMIT 3
#define PITEMS 300

typedef struct pwork {
    lep_proactor_t *p;
    atomic_int incb;
    int last[PSUBMIT];
    int total;
    bool order_ok;
    atomic_int overlaps;
} pwork_t;

typedef struct pitem {
    pwork_t *pw;
    int who, seq;
} pitem_t;

static pitem_t pitems[PSUBMIT][PITEMS];

static void
pitem_run(void *ctx)
{
    pitem_t *it = ctx;
    pwork_t *pw = it->pw;
    if (atomic_fetch_add(&pw->incb, 1) != 0)
        atomic_fetch_add(&pw->overlaps, 1);
    if (it->seq != pw->last[it->who] + 1)
        pw->order_ok = false;
    pw->last[it->who] = it->seq;
    if (++pw->total == PSUBMIT * PITEMS)
        lep_proactor_stop(pw->p);
    atomic_fetch_sub(&pw->incb, 1);
}

static void *
psubmitter(void *arg)
{
    pitem_t *row = arg;
    for (int i = 0; i < PITEMS; i++) {
        CHECK(lep_proactor_inject(row[i].pw->p, pitem_run, &row[i]) == 0);
        if (i % 50 == 0)
            usleep(300);
    }
    return NULL;
}

static void
test_proactor_inject_serialized(void **state)
{
    (void)state;
    arm_alarm(30);
    atomic_store(&g_fail, 0);
    pwork_t pw = {.order_ok = true};
    for (int i = 0; i < PSUBMIT; i++)
        pw.last[i] = -1;
    assert_int_equal(lep_proactor_new(&pw.p, NULL), 0);
    /* A listener keeps the proactor active meanwhile. */
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(pw.p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    runner_t r[4];
    start_runners(r, 4, pw.p);
    pthread_t th[PSUBMIT];
    for (int i = 0; i < PSUBMIT; i++) {
        for (int k = 0; k < PITEMS; k++)
            pitems[i][k] = (pitem_t){&pw, i, k};
        assert_int_equal(pthread_create(&th[i], NULL, psubmitter, pitems[i]), 0);
    }
    for (int i = 0; i < PSUBMIT; i++)
        pthread_join(th[i], NULL);
    join_runners(r, 4);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(pw.total, PSUBMIT * PITEMS);
    assert_int_equal(atomic_load(&pw.overlaps), 0);
    assert_true(pw.order_ok);
    lep_proactor_free(pw.p);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* interrupt, stop, notify                                             */

static int
count_returned(runner_t *r, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += atomic_load(&r[i].returned);
    return k;
}

static void
test_interrupt_one_per_run(void **state)
{
    (void)state;
    arm_alarm(20);
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    runner_t r[3];
    start_runners(r, 3, p);
    usleep(50000);
    lep_proactor_interrupt(p);
    int64_t t0 = lep_proactor_now_ms();
    while (count_returned(r, 3) < 1 && lep_proactor_now_ms() - t0 < 5000)
        usleep(1000);
    usleep(100000);
    assert_int_equal(count_returned(r, 3), 1);
    lep_proactor_interrupt(p);
    lep_proactor_interrupt(p);
    join_runners(r, 3);
    lep_proactor_free(p);
    alarm(0);
}

static void *
stopper(void *arg)
{
    usleep(50000);
    lep_proactor_stop(arg);
    return NULL;
}

static void
test_stop_from_thread(void **state)
{
    (void)state;
    arm_alarm(20);
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    runner_t r[3];
    start_runners(r, 3, p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper, p), 0);
    join_runners(r, 3);
    pthread_join(th, NULL);
    /* Permanent: later runs return at once. */
    int64_t t0 = lep_proactor_now_ms();
    assert_int_equal(lep_proactor_run(p), 0);
    assert_true(lep_proactor_now_ms() - t0 < 1000);
    lep_proactor_free(p);
    alarm(0);
}

static lep_proactor_t *g_sig_p;

static void
on_usr1_stop(int sig)
{
    (void)sig;
    lep_proactor_stop(g_sig_p);
}

static void
test_stop_from_signal_handler(void **state)
{
    (void)state;
    arm_alarm(20);
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    g_sig_p = p;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_stop;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    runner_t r[2];
    start_runners(r, 2, p);
    usleep(50000);
    /* Delivered to a thread asleep in epoll_wait. */
    pthread_kill(r[0].th, SIGUSR1);
    join_runners(r, 2);
    sigaction(SIGUSR1, &old, NULL);
    lep_proactor_free(p);
    alarm(0);
}

/* SIGUSR1 -> notify -> on_notify closes the client gracefully through
 * its work queue and stops listening -> inactive -> stop. */

typedef struct graceful {
    lep_proactor_t *p;
    lep_listener_t *l;
    lep_io_conn_t *client;
    atomic_int notifies, disc, errs, inactive;
    bool closed_by_item;
} graceful_t;

static graceful_t *g_graceful;

static void
on_usr1_notify(int sig)
{
    (void)sig;
    lep_proactor_notify(g_graceful->p);
}

static void
g_close_item(void *ctx)
{
    graceful_t *g = ctx;
    lep_conn_t *c = lep_io_conn_engine(g->client);
    CHECK(c != NULL);
    if (c) {
        g->closed_by_item = true;
        CHECK(lep_conn_close(c, NULL) == 0);
    }
}

static void
g_on_notify(void *ctx, lep_proactor_t *p)
{
    graceful_t *g = ctx;
    CHECK(p == g->p);
    atomic_fetch_add(&g->notifies, 1);
    CHECK(lep_io_conn_inject(g->client, g_close_item, g) == 0);
    lep_listener_close(g->l);
}

static void
g_on_inactive(void *ctx, lep_proactor_t *p)
{
    graceful_t *g = ctx;
    atomic_fetch_add(&g->inactive, 1);
    lep_proactor_stop(p);
}

static int
g_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    graceful_t *g = ctx;
    if (!lep_conn_is_server(c))
        g->client = ic;
    return lep_conn_is_server(c) ? 0 : lep_conn_open(c);
}

static void
g_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ctx;
    (void)ic;
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN) {
        if (lep_conn_is_server(ev->conn))
            CHECK(lep_conn_open(ev->conn) == 0);
        else
            raise(SIGUSR1); /* the handler runs on this loop thread */
    }
    if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE && lep_conn_is_server(ev->conn))
        CHECK(lep_conn_close(ev->conn, NULL) == 0);
}

static void
g_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    graceful_t *g = ctx;
    (void)ic;
    if (err) {
        fprintf(stderr, "graceful: %s\n", reason);
        atomic_fetch_add(&g->errs, 1);
    }
    atomic_fetch_add(&g->disc, 1);
}

static void
test_notify_from_signal_handler(void **state)
{
    (void)state;
    arm_alarm(20);
    atomic_store(&g_fail, 0);
    graceful_t g;
    memset(&g, 0, sizeof g);
    g_graceful = &g;
    lep_proactor_opts_t po = {.ctx = &g, .on_notify = g_on_notify, .on_inactive = g_on_inactive};
    assert_int_equal(lep_proactor_new(&g.p, &po), 0);
    lep_io_handler_t h = {.on_setup = g_setup, .on_event = g_event, .on_disconnected = g_disc};
    assert_int_equal(lep_proactor_listen(g.p, "127.0.0.1", 0, NULL, &h, &g, &g.l), 0);
    assert_int_equal(
        lep_proactor_connect(g.p, "127.0.0.1", lep_listener_port(g.l), NULL, &h, &g, NULL), 0);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1_notify;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    runner_t r[2];
    start_runners(r, 2, g.p);
    join_runners(r, 2);
    sigaction(SIGUSR1, &old, NULL);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&g.notifies), 1);
    assert_true(g.closed_by_item);
    assert_int_equal(atomic_load(&g.disc), 2);
    assert_int_equal(atomic_load(&g.errs), 0);
    assert_int_equal(atomic_load(&g.inactive), 1);
    lep_proactor_free(g.p);
    alarm(0);
}

static void
count_notify(void *ctx, lep_proactor_t *p)
{
    (*(int *)ctx)++;
    lep_proactor_interrupt(p);
}

static void
test_notifies_coalesce(void **state)
{
    (void)state;
    arm_alarm(10);
    int calls = 0;
    lep_proactor_t *p;
    lep_proactor_opts_t po = {.ctx = &calls, .on_notify = count_notify};
    assert_int_equal(lep_proactor_new(&p, &po), 0);
    lep_proactor_notify(p);
    lep_proactor_notify(p);
    lep_proactor_notify(p);
    assert_int_equal(lep_proactor_run(p), 0);
    assert_int_equal(calls, 1);
    /* A later notify is a new call. */
    lep_proactor_notify(p);
    assert_int_equal(lep_proactor_run(p), 0);
    assert_int_equal(calls, 2);
    lep_proactor_free(p);
    alarm(0);
}

/* on_inactive: once per transition to inactive, with 3 threads. */

typedef struct inact {
    atomic_int calls, incb, overlaps;
    int timers_fired;
} inact_t;

static void
inact_timer(void *ctx)
{
    inact_t *in = ctx;
    in->timers_fired++;
}

static void
inact_cb(void *ctx, lep_proactor_t *p)
{
    inact_t *in = ctx;
    if (atomic_fetch_add(&in->incb, 1) != 0)
        atomic_fetch_add(&in->overlaps, 1);
    int n = atomic_fetch_add(&in->calls, 1) + 1;
    usleep(20000); /* a second report would overlap this one */
    if (n < 3)
        CHECK(lep_proactor_schedule(p, 10, inact_timer, in) == 0); /* active again */
    else
        lep_proactor_stop(p);
    atomic_fetch_sub(&in->incb, 1);
}

static void
test_inactive_once_per_transition(void **state)
{
    (void)state;
    arm_alarm(20);
    atomic_store(&g_fail, 0);
    inact_t in;
    memset(&in, 0, sizeof in);
    lep_proactor_t *p;
    lep_proactor_opts_t po = {.ctx = &in, .on_inactive = inact_cb};
    assert_int_equal(lep_proactor_new(&p, &po), 0);
    assert_int_equal(lep_proactor_schedule(p, 10, inact_timer, &in), 0);
    runner_t r[3];
    start_runners(r, 3, p);
    join_runners(r, 3);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&in.calls), 3);
    assert_int_equal(in.timers_fired, 3);
    assert_int_equal(atomic_load(&in.overlaps), 0);
    lep_proactor_free(p);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Throughput: a sender refilled on every flow, pre-settled, a wide
 * credit window.  Printed, not asserted (machines differ);
 * LEPTON_IO_PERF_MSGS sets the count.                                 */

typedef struct perf {
    lep_proactor_t *p;
    int nmsg;
    int npairs;
    atomic_int done;
    atomic_int fail;
} perf_t;

typedef struct perf_conn {
    perf_t *pf;
    lep_link_t *snd;
    int sent, received;
} perf_conn_t;

enum { PERF_WINDOW = 5000 };

static uint8_t perf_body[64];
static size_t perf_len;

static int
pf_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    (void)ic;
    perf_conn_t *pc = calloc(1, sizeof *pc);
    pc->pf = ctx;
    lep_conn_set_context(c, pc);
    if (lep_conn_is_server(c))
        return 0;
    lep_session_t *s;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "perf";
    lo.snd_settle_mode = LEP_SND_SETTLE_SETTLED;
    if (lep_conn_open(c) || lep_session_new(c, &s) || lep_session_begin(s) ||
        lep_link_new(s, &lo, &pc->snd))
        return LEP_ERR_STATE;
    return lep_link_attach(pc->snd);
}

static void
pf_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ctx;
    (void)ic;
    perf_conn_t *pc = lep_conn_context(ev->conn);
    perf_t *pf = pc->pf;
    if (!lep_conn_is_server(ev->conn)) {
        if (ev->type == LEP_EVENT_LINK_FLOW) {
            while (pc->sent < pf->nmsg && lep_link_credit(pc->snd) > 0) {
                if (lep_link_send(pc->snd, LEP_BYTES(NULL, 0), perf_body, perf_len, true, NULL))
                    atomic_fetch_add(&pf->fail, 1);
                pc->sent++;
            }
        } else if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE) {
            lep_conn_close(ev->conn, NULL);
        }
        return;
    }
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        lep_conn_open(ev->conn);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        lep_session_begin(ev->session);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        lep_link_attach(ev->link);
        lep_link_flow(ev->link, PERF_WINDOW);
        break;
    case LEP_EVENT_DELIVERY:
        if (lep_delivery_partial(ev->delivery))
            break;
        lep_delivery_settle(ev->delivery);
        if (++pc->received == pf->nmsg) {
            lep_conn_close(ev->conn, NULL);
        } else if (lep_link_credit(ev->link) < PERF_WINDOW / 2) {
            lep_link_flow(ev->link, PERF_WINDOW - lep_link_credit(ev->link));
        }
        break;
    default:
        break;
    }
}

static void
pf_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    perf_t *pf = ctx;
    if (err) {
        fprintf(stderr, "perf: %s\n", reason);
        atomic_fetch_add(&pf->fail, 1);
    }
    free(lep_conn_context(lep_io_conn_engine(ic)));
    if (atomic_fetch_add(&pf->done, 1) + 1 == 2 * pf->npairs)
        lep_proactor_stop(pf->p);
}

static double
perf_run(int nthreads, int npairs, int nmsg)
{
    perf_t pf;
    memset(&pf, 0, sizeof pf);
    pf.nmsg = nmsg;
    pf.npairs = npairs;
    assert_int_equal(lep_proactor_new(&pf.p, NULL), 0);
    lep_io_handler_t h = {.on_setup = pf_setup, .on_event = pf_event, .on_disconnected = pf_disc};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(pf.p, "127.0.0.1", 0, NULL, &h, &pf, &l), 0);
    for (int i = 0; i < npairs; i++)
        assert_int_equal(lep_proactor_connect(pf.p, "127.0.0.1", lep_listener_port(l), NULL, &h,
                                              &pf, NULL),
                         0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    runner_t r[MAXTHREADS];
    start_runners(r, nthreads, pf.p);
    join_runners(r, nthreads);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_int_equal(atomic_load(&pf.fail), 0);
    assert_int_equal(atomic_load(&pf.done), 2 * npairs);
    lep_proactor_free(pf.p);
    double rate = (double)npairs * nmsg / s;
    fprintf(stderr, "  perf: %d thread(s), %d connection pair(s) x %d messages: %.3f s, %.0f msg/s\n",
            nthreads, npairs, nmsg, s, rate);
    return rate;
}

static void
test_throughput(void **state)
{
    (void)state;
    arm_alarm(120);
    perf_len = make_body(perf_body, 42);
    const char *env = getenv("LEPTON_IO_PERF_MSGS");
    int n = env ? atoi(env) : 200000;
    if (n <= 0)
        n = 200000;
    perf_run(1, 1, n);
    perf_run(1, 2, n);
    perf_run(2, 2, n);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Many idle connections: each pair keeps itself alive with heartbeats
 * (idle timeout 400 ms: every connection ticks every 200 ms), all
 * deadlines in the proactor's heap and one timerfd; after a while a
 * timer closes every client through its work queue.  No connection may
 * time out, and the wait costs little CPU.  LEPTON_IO_IDLE_PAIRS sets
 * the count (5000 pairs: 10,000 connections).                         */

typedef struct idle_world {
    lep_proactor_t *p;
    lep_listener_t *l;
    int npairs;
    lep_io_conn_t **clients;
    atomic_int opened, disc, errs, timeouts;
} idle_world_t;

typedef struct idle_slot {
    idle_world_t *w;
    int i;
} idle_slot_t;

static int
iw_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    if (lep_conn_is_server(c))
        return 0;
    idle_slot_t *s = ctx;
    s->w->clients[s->i] = ic;
    lep_io_conn_hold(ic);
    return lep_conn_open(c);
}

static void
iw_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ic;
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN) {
        if (lep_conn_is_server(ev->conn)) {
            idle_world_t *w = ctx;
            CHECK(lep_conn_open(ev->conn) == 0);
            atomic_fetch_add(&w->opened, 1);
        }
    } else if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE) {
        if (lep_conn_local_state(ev->conn) != LEP_STATE_CLOSED)
            CHECK(lep_conn_close(ev->conn, NULL) == 0);
    }
}

static void
iw_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    (void)ic;
    idle_world_t *w = lep_conn_is_server(lep_io_conn_engine(ic)) ? ctx : ((idle_slot_t *)ctx)->w;
    if (err) {
        if (atomic_fetch_add(&w->errs, 1) < 5)
            fprintf(stderr, "idle: %s\n", reason);
        if (strstr(reason, "idle"))
            atomic_fetch_add(&w->timeouts, 1);
    }
    atomic_fetch_add(&w->disc, 1);
}

static void
iw_close_one(void *ctx)
{
    lep_io_conn_t *ic = ctx;
    CHECK(lep_conn_close(lep_io_conn_engine(ic), NULL) == 0);
}

static void
iw_close_all(void *ctx)
{
    idle_world_t *w = ctx;
    lep_listener_close(w->l);
    for (int i = 0; i < w->npairs; i++)
        CHECK(lep_io_conn_inject(w->clients[i], iw_close_one, w->clients[i]) == 0);
}

static double
cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
iw_stop(void *ctx, lep_proactor_t *p)
{
    (void)ctx;
    lep_proactor_stop(p);
}

static void
test_many_idle_connections(void **state)
{
    (void)state;
    arm_alarm(120);
    atomic_store(&g_fail, 0);
    const char *env = getenv("LEPTON_IO_IDLE_PAIRS");
    int npairs = env ? atoi(env) : 1000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)npairs * 2 + 64 > rl.rlim_cur)
        npairs = (int)((rl.rlim_cur - 64) / 2);
    idle_world_t w;
    memset(&w, 0, sizeof w);
    w.npairs = npairs;
    w.clients = calloc((size_t)npairs, sizeof *w.clients);
    idle_slot_t *slots = calloc((size_t)npairs, sizeof *slots);
    lep_proactor_opts_t po = {.on_inactive = iw_stop};
    assert_int_equal(lep_proactor_new(&w.p, &po), 0);
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.idle_timeout_ms = 400;
    lep_io_handler_t h = {.on_setup = iw_setup, .on_event = iw_event, .on_disconnected = iw_disc};
    assert_int_equal(lep_proactor_listen(w.p, "127.0.0.1", 0, &o, &h, &w, &w.l), 0);
    runner_t r[2];
    start_runners(r, 2, w.p);
    /* Connected from this thread while the loop runs, in batches the
     * listen backlog takes. */
    for (int i = 0; i < npairs; i++) {
        slots[i] = (idle_slot_t){&w, i};
        assert_int_equal(lep_proactor_connect(w.p, "127.0.0.1", lep_listener_port(w.l), &o, &h,
                                              &slots[i], NULL),
                         0);
        if (i % 500 == 499)
            while (atomic_load(&w.opened) < i - 200)
                usleep(1000);
    }
    int64_t t0 = lep_proactor_now_ms();
    while (atomic_load(&w.opened) < npairs && lep_proactor_now_ms() - t0 < 30000)
        usleep(1000);
    assert_int_equal(atomic_load(&w.opened), npairs);
    /* Idle for 1.2 s: three idle timeouts' worth of heartbeats. */
    double cpu0 = cpu_now();
    int64_t i0 = lep_proactor_now_ms();
    assert_int_equal(lep_proactor_schedule(w.p, 1200, iw_close_all, &w), 0);
    join_runners(r, 2);
    double cpu = cpu_now() - cpu0;
    int64_t took = lep_proactor_now_ms() - i0;
    fprintf(stderr, "  %d idle connections: %lld ms idle and closing, %.2f s CPU\n", 2 * npairs,
            (long long)took, cpu);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&w.timeouts), 0);
    assert_int_equal(atomic_load(&w.errs), 0);
    assert_int_equal(atomic_load(&w.disc), 2 * npairs);
    for (int i = 0; i < npairs; i++)
        lep_io_conn_release(w.clients[i]);
    lep_proactor_free(w.p);
    free(w.clients);
    free(slots);
    alarm(0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_four_threads),
        cmocka_unit_test(test_inject_from_foreign_threads),
        cmocka_unit_test(test_proactor_inject_serialized),
        cmocka_unit_test(test_interrupt_one_per_run),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_stop_from_signal_handler),
        cmocka_unit_test(test_notify_from_signal_handler),
        cmocka_unit_test(test_notifies_coalesce),
        cmocka_unit_test(test_inactive_once_per_transition),
        cmocka_unit_test(test_many_idle_connections),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
