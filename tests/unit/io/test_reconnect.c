/* Reconnect and failover (lep_proactor_connect_opts): a client whose
 * listener goes away and comes back on the same port reconnects and
 * finishes its work; delays grow; failover to the second address;
 * max_attempts, cancel and abort end it with a final on_disconnected;
 * a local close does not reconnect, a remote close does; work items
 * and timers run between attempts; held connections stay valid after
 * the end.  Loop callbacks count failures in CHECK (no cmocka asserts
 * off the main thread). */
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

typedef struct runner {
    lep_proactor_t *p;
    pthread_t th;
    int rc;
} runner_t;

static void *
run_thread(void *arg)
{
    runner_t *r = arg;
    r->rc = lep_proactor_run(r->p);
    return NULL;
}

static void
run_on(lep_proactor_t *p, int n)
{
    runner_t r[4];
    for (int i = 0; i < n; i++) {
        r[i].p = p;
        assert_int_equal(pthread_create(&r[i].th, NULL, run_thread, &r[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(r[i].th, NULL);
        assert_int_equal(r[i].rc, 0);
    }
}

static void
stop_when_inactive(void *ctx, lep_proactor_t *p)
{
    (void)ctx;
    lep_proactor_stop(p);
}

/* A port nothing listens on (it listened a moment ago). */
static uint16_t
dead_port(void)
{
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    uint16_t port = lep_listener_port(l);
    lep_proactor_free(p);
    return port;
}

/* ------------------------------------------------------------------ */
/* The harness: one reconnecting client, maybe a server                */

#define MAXLOG 40

typedef struct disc_log {
    int64_t t;
    int err;
    bool again;
    uint32_t attempt;
    size_t idx;
    bool engine_null;
    char reason[128];
} disc_log_t;

typedef struct rt rt_t;
struct rt {
    lep_proactor_t *p;
    _Atomic(lep_listener_t *) l;
    uint16_t port;
    lep_io_conn_t *ic;
    atomic_int incb, overlaps;
    /* client, in its context */
    int setups;
    int64_t setup_t[MAXLOG];
    size_t setup_idx[MAXLOG];
    int discs;
    disc_log_t disc[MAXLOG];
    int connected;
    size_t connected_idx;
    uint16_t connected_port;
    int opens;
    uint32_t attempt_at_open;
    lep_link_t *snd;
    int sent, accepted, total_accepted;
    /* behaviour */
    int nmsg;               /* per successful attempt, then close; 0: close at the open */
    bool keep_open;         /* neither send nor close */
    int refuse_setup_at;    /* the n-th on_setup refuses (1-based) */
    int cancel_at_disc;     /* cancel_reconnect in the n-th on_disconnected */
    void (*disc_hook)(rt_t *, lep_io_conn_t *);
    /* server */
    atomic_int srv_opens;
    bool srv_drop_first;  /* abort the first server connection and close the listener */
    bool srv_close_first; /* close the first server connection with an error */
    int reopen_after_ms;
    void *user;
};

static void
enter(rt_t *r)
{
    if (atomic_fetch_add(&r->incb, 1) != 0)
        atomic_fetch_add(&r->overlaps, 1);
}

static void
leave(rt_t *r)
{
    atomic_fetch_sub(&r->incb, 1);
}

static const uint8_t TGT[] = {0xa1, 1, 'q'};

static int
c_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    rt_t *r = ctx;
    enter(r);
    CHECK(!lep_conn_is_server(c));
    r->ic = ic;
    int n = r->setups++;
    if (n < MAXLOG) {
        r->setup_t[n] = lep_proactor_now_ms();
        r->setup_idx[n] = lep_io_conn_addr_index(ic);
    }
    CHECK(lep_io_conn_engine(ic) == c);
    int rc = 0;
    if (r->refuse_setup_at == n + 1) {
        rc = LEP_ERR_INVALID;
    } else {
        r->sent = r->accepted = 0;
        CHECK(lep_conn_open(c) == 0);
        if (r->nmsg) {
            lep_session_t *s;
            CHECK(lep_session_new(c, &s) == 0);
            CHECK(lep_session_begin(s) == 0);
            lep_link_opts_t lo;
            lep_link_opts_init(&lo);
            lo.name = "rc";
            lep_target_t t;
            lep_target_init(&t);
            t.present = LEP_TARGET_HAS_ADDRESS;
            t.address = LEP_BYTES(TGT, sizeof TGT);
            lo.target = &t;
            CHECK(lep_link_new(s, &lo, &r->snd) == 0);
            CHECK(lep_link_attach(r->snd) == 0);
        }
    }
    leave(r);
    return rc;
}

static void
c_connected(void *ctx, lep_io_conn_t *ic)
{
    rt_t *r = ctx;
    enter(r);
    r->connected++;
    r->connected_idx = lep_io_conn_addr_index(ic);
    r->connected_port = lep_io_conn_addr(ic)->port;
    leave(r);
}

static void
c_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    rt_t *r = ctx;
    enter(r);
    CHECK(lep_io_conn_engine(ic) == ev->conn);
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        r->opens++;
        r->attempt_at_open = lep_io_conn_attempt(ic);
        /* Without messages to send the client closes at once, except
         * when the server is about to close the first connection. */
        if (!r->nmsg && !r->keep_open && !(r->srv_close_first && r->opens == 1))
            CHECK(lep_conn_close(ev->conn, NULL) == 0);
        break;
    case LEP_EVENT_LINK_FLOW:
        while (r->sent < r->nmsg && lep_link_credit(r->snd) > 0) {
            uint8_t body[] = {0x00, 0x53, 0x77, 0xa1, 2, 'h', 'i'};
            CHECK(lep_link_send(r->snd, LEP_BYTES(NULL, 0), body, sizeof body, false, NULL) == 0);
            r->sent++;
        }
        break;
    case LEP_EVENT_DELIVERY:
        if (lep_delivery_updated(ev->delivery)) {
            CHECK(lep_delivery_remote_state(ev->delivery)->type == LEP_OUTCOME_ACCEPTED);
            CHECK(lep_delivery_settle(ev->delivery) == 0);
            r->total_accepted++;
            if (++r->accepted == r->nmsg)
                CHECK(lep_conn_close(ev->conn, NULL) == 0);
        }
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        if (lep_conn_local_state(ev->conn) != LEP_STATE_CLOSED)
            CHECK(lep_conn_close(ev->conn, NULL) == 0);
        break;
    default:
        break;
    }
    leave(r);
}

static void
c_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    rt_t *r = ctx;
    enter(r);
    int n = r->discs++;
    if (n < MAXLOG) {
        disc_log_t *d = &r->disc[n];
        d->t = lep_proactor_now_ms();
        d->err = err;
        d->attempt = lep_io_conn_attempt(ic);
        d->idx = lep_io_conn_addr_index(ic);
        d->engine_null = lep_io_conn_engine(ic) == NULL;
        snprintf(d->reason, sizeof d->reason, "%s", reason);
        if (r->cancel_at_disc == n + 1)
            lep_io_conn_cancel_reconnect(ic);
        if (r->disc_hook)
            r->disc_hook(r, ic);
        d->again = lep_io_conn_reconnecting(ic);
        if (!d->again) {
            lep_listener_t *l = atomic_exchange(&r->l, NULL);
            if (l)
                lep_listener_close(l);
        }
    }
    leave(r);
}

static const lep_io_handler_t C_HANDLER = {.on_setup = c_setup,
                                           .on_connected = c_connected,
                                           .on_event = c_event,
                                           .on_disconnected = c_disc};

/* Server */

static void reopen(void *ctx);

static void
s_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    rt_t *r = ctx;
    /* An aborted connection still delivers what arrived with the open. */
    if (ev->type != LEP_EVENT_CONN_REMOTE_OPEN && lep_conn_local_state(ev->conn) == LEP_STATE_UNINIT)
        return;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN: {
        int n = atomic_fetch_add(&r->srv_opens, 1) + 1;
        if (n == 1 && r->srv_drop_first) {
            lep_listener_t *l = atomic_exchange(&r->l, NULL);
            if (l)
                lep_listener_close(l);
            CHECK(lep_proactor_schedule(r->p, (uint64_t)r->reopen_after_ms, reopen, r) == 0);
            lep_io_conn_abort(ic);
            break;
        }
        CHECK(lep_conn_open(ev->conn) == 0);
        if (n == 1 && r->srv_close_first) {
            lep_condition_t cond = {.name = lep_bytes_str("amqp:connection:forced")};
            CHECK(lep_conn_close(ev->conn, &cond) == 0);
        }
        break;
    }
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            CHECK(lep_session_begin(ev->session) == 0);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
            CHECK(lep_link_attach(ev->link) == 0);
            CHECK(lep_link_flow(ev->link, 100) == 0);
        }
        break;
    case LEP_EVENT_DELIVERY:
        if (!lep_delivery_partial(ev->delivery)) {
            CHECK(lep_delivery_accept(ev->delivery) == 0);
            CHECK(lep_delivery_settle(ev->delivery) == 0);
            CHECK(lep_link_flow(ev->link, 1) == 0);
        }
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        if (lep_conn_local_state(ev->conn) != LEP_STATE_CLOSED)
            CHECK(lep_conn_close(ev->conn, NULL) == 0);
        break;
    default:
        break;
    }
}

static const lep_io_handler_t S_HANDLER = {.on_event = s_event};

static void
listen_on(rt_t *r, uint16_t port)
{
    lep_listener_t *l = NULL;
    int rc = lep_proactor_listen(r->p, "127.0.0.1", port, NULL, &S_HANDLER, r, &l);
    CHECK(rc == 0);
    if (rc == 0) {
        r->port = lep_listener_port(l);
        atomic_store(&r->l, l);
    }
}

static void
reopen(void *ctx)
{
    rt_t *r = ctx;
    listen_on(r, r->port);
}

static void
rt_init(rt_t *r)
{
    memset(r, 0, sizeof *r);
    atomic_store(&g_fail, 0);
    lep_proactor_opts_t po = {.on_inactive = stop_when_inactive};
    assert_int_equal(lep_proactor_new(&r->p, &po), 0);
}

static void
connect_to(rt_t *r, const lep_io_addr_t *addrs, size_t n, uint32_t initial, uint32_t max,
           uint32_t max_attempts)
{
    lep_io_connect_opts_t o;
    lep_io_connect_opts_init(&o);
    assert_true(o.reconnect.enabled);
    assert_int_equal(o.reconnect.initial_delay_ms, 100);
    assert_int_equal(o.reconnect.max_delay_ms, 10000);
    assert_int_equal(o.reconnect.multiplier, 2);
    assert_int_equal(o.reconnect.max_attempts, 0);
    o.addrs = addrs;
    o.naddrs = n;
    o.reconnect.initial_delay_ms = initial;
    o.reconnect.max_delay_ms = max;
    o.reconnect.max_attempts = max_attempts;
    lep_io_conn_t *ic = NULL;
    assert_int_equal(lep_proactor_connect_opts(r->p, &o, &C_HANDLER, r, &ic), 0);
    assert_non_null(ic);
    /* Nothing ran yet: the first attempt starts from the loop. */
    assert_null(lep_io_conn_engine(ic));
    assert_int_equal(r->setups, 0);
}

static void
dump(const rt_t *r)
{
    for (int i = 0; i < r->discs && i < MAXLOG; i++)
        fprintf(stderr, "  disc %d: t=%lld err=%d again=%d attempt=%u idx=%zu %s\n", i,
                (long long)r->disc[i].t, r->disc[i].err, r->disc[i].again, r->disc[i].attempt,
                r->disc[i].idx, r->disc[i].reason);
}

/* ------------------------------------------------------------------ */

static void
test_listener_comes_back(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    r.nmsg = 10;
    r.srv_drop_first = true;
    r.reopen_after_ms = 300;
    listen_on(&r, 0);
    lep_io_addr_t a = {"127.0.0.1", r.port};
    connect_to(&r, &a, 1, 30, 200, 0);
    run_on(r.p, 2);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&r.overlaps), 0);
    /* lost, refused at least once while the listener was away, back */
    assert_true(r.discs >= 3);
    assert_int_equal(r.setups, r.discs);
    assert_true(r.disc[0].err != 0 && r.disc[0].again);
    assert_false(r.disc[0].engine_null);
    /* the lost connection never got the server's open: failure 1 */
    assert_int_equal(r.disc[0].attempt, 1);
    for (int i = 1; i < r.discs - 1; i++) {
        assert_int_equal(r.disc[i].err, ECONNREFUSED);
        assert_true(r.disc[i].again);
        assert_int_equal(r.disc[i].attempt, (uint32_t)i + 1);
    }
    disc_log_t *last = &r.disc[r.discs - 1];
    assert_int_equal(last->err, 0);
    assert_false(last->again);
    assert_int_equal(last->attempt, 0);
    assert_int_equal(r.opens, 1); /* the first server never answered the open */
    assert_int_equal(r.attempt_at_open, 0);
    assert_int_equal(r.total_accepted, 10);
    assert_int_equal(atomic_load(&r.srv_opens), 2);
    /* It waited for the listener: ~300 ms of attempts. */
    assert_true(last->t - r.disc[0].t >= 250);
    lep_proactor_free(r.p);
    alarm(0);
}

static void
test_backoff_grows_then_gives_up(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    lep_io_addr_t a = {"127.0.0.1", dead_port()};
    connect_to(&r, &a, 1, 20, 1000, 5);
    int64_t t0 = lep_proactor_now_ms();
    run_on(r.p, 1);
    int64_t took = lep_proactor_now_ms() - t0;
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.setups, 5);
    assert_int_equal(r.discs, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r.disc[i].err, ECONNREFUSED);
        assert_int_equal(r.disc[i].attempt, (uint32_t)i + 1);
        assert_true(r.disc[i].again == (i < 4));
        assert_false(r.disc[i].engine_null);
    }
    /* Delay after the n-th failure: 20 * 2^(n-1) jittered into [d/2, d]. */
    int64_t gap[4];
    for (int i = 0; i < 4; i++) {
        gap[i] = r.setup_t[i + 1] - r.disc[i].t;
        int64_t d = 20 << i;
        fprintf(stderr, "  delay after failure %d: %lld ms (expected %lld..%lld)\n", i + 1,
                (long long)gap[i], (long long)d / 2, (long long)d);
        assert_true(gap[i] >= d / 2 - 1);
        assert_true(gap[i] <= d + 250);
    }
    assert_true(gap[3] > gap[0]);
    assert_true(took < 5000);
    lep_proactor_free(r.p);
    alarm(0);
}

static void
test_failover_to_second_address(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    listen_on(&r, 0);
    lep_io_addr_t a[2] = {{"127.0.0.1", dead_port()}, {"127.0.0.1", r.port}};
    connect_to(&r, a, 2, 10, 100, 0);
    run_on(r.p, 2);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.setups, 2);
    assert_int_equal(r.setup_idx[0], 0);
    assert_int_equal(r.setup_idx[1], 1);
    assert_int_equal(r.discs, 2);
    assert_int_equal(r.disc[0].err, ECONNREFUSED);
    assert_true(r.disc[0].again);
    assert_int_equal(r.disc[0].idx, 0);
    assert_int_equal(r.disc[0].attempt, 1);
    assert_int_equal(r.connected, 1);
    assert_int_equal(r.connected_idx, 1);
    assert_int_equal(r.connected_port, r.port);
    assert_int_equal(r.attempt_at_open, 0); /* the open reset the count */
    assert_int_equal(r.disc[1].err, 0);
    assert_false(r.disc[1].again); /* closed by the client: no reconnect */
    assert_int_equal(r.disc[1].idx, 1);
    lep_proactor_free(r.p);
    alarm(0);
}

static void
test_cancel_from_on_disconnected(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    r.cancel_at_disc = 2;
    lep_io_addr_t a = {"127.0.0.1", dead_port()};
    connect_to(&r, &a, 1, 10, 100, 0);
    run_on(r.p, 1);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.discs, 2);
    assert_int_equal(r.setups, 2);
    assert_true(r.disc[0].again);
    assert_false(r.disc[1].again);
    lep_proactor_free(r.p);
    alarm(0);
}

/* Ending during the wait, from another context (a proactor timer). */

static void
cancel_later(void *ctx)
{
    rt_t *r = ctx;
    lep_io_conn_cancel_reconnect(r->ic);
}

static void
abort_later(void *ctx)
{
    rt_t *r = ctx;
    lep_io_conn_abort(r->ic);
}

static void
hook_end_later(rt_t *r, lep_io_conn_t *ic)
{
    (void)ic;
    if (r->discs == 1)
        CHECK(lep_proactor_schedule(r->p, 50, (lep_io_fn)r->user, r) == 0);
}

static void
end_during_wait(lep_io_fn how, int want_err)
{
    rt_t r;
    rt_init(&r);
    r.disc_hook = hook_end_later;
    r.user = (void *)how;
    lep_io_addr_t a = {"127.0.0.1", dead_port()};
    connect_to(&r, &a, 1, 5000, 10000, 0); /* a long wait */
    int64_t t0 = lep_proactor_now_ms();
    run_on(r.p, 2);
    int64_t took = lep_proactor_now_ms() - t0;
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.setups, 1);
    assert_int_equal(r.discs, 2);
    assert_true(r.disc[0].again);
    assert_int_equal(r.disc[1].err, want_err);
    assert_false(r.disc[1].again);
    assert_true(r.disc[1].engine_null);
    assert_true(took < 2500); /* ended, not waited out */
    lep_proactor_free(r.p);
}

static void
test_cancel_during_wait(void **state)
{
    (void)state;
    arm_alarm(30);
    end_during_wait(cancel_later, ECANCELED);
    alarm(0);
}

static void
test_abort_during_wait(void **state)
{
    (void)state;
    arm_alarm(30);
    end_during_wait(abort_later, ECONNABORTED);
    alarm(0);
}

static void
test_local_close_does_not_reconnect(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    listen_on(&r, 0);
    lep_io_addr_t a = {"127.0.0.1", r.port};
    connect_to(&r, &a, 1, 10, 100, 0);
    run_on(r.p, 2);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.setups, 1);
    assert_int_equal(r.discs, 1);
    assert_int_equal(r.disc[0].err, 0);
    assert_false(r.disc[0].again);
    lep_proactor_free(r.p);
    alarm(0);
}

static void
test_remote_close_reconnects(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    r.srv_close_first = true;
    listen_on(&r, 0);
    lep_io_addr_t a = {"127.0.0.1", r.port};
    connect_to(&r, &a, 1, 10, 100, 0);
    run_on(r.p, 2);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    /* the server closed the first: the client answered the close and
     * reconnected; it closed the second itself */
    assert_int_equal(r.setups, 2);
    assert_int_equal(r.discs, 2);
    assert_true(r.disc[0].again);
    assert_int_equal(r.disc[0].attempt, 0); /* it had succeeded */
    assert_int_equal(r.disc[0].idx, 0);
    assert_false(r.disc[1].again);
    assert_int_equal(r.disc[1].err, 0);
    lep_proactor_free(r.p);
    alarm(0);
}

/* A host that does not resolve and a refusing on_setup are failed
 * attempts, and failover moves past them. */
static void
test_resolve_failure_and_refused_setup(void **state)
{
    (void)state;
    arm_alarm(60);
    rt_t r;
    rt_init(&r);
    r.refuse_setup_at = 2;
    listen_on(&r, 0);
    lep_io_addr_t a[2] = {{"no.such.host.invalid", 5672}, {"127.0.0.1", r.port}};
    connect_to(&r, a, 2, 5, 20, 0);
    run_on(r.p, 1);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(r.discs, 4);
    assert_int_equal(r.disc[0].err, EHOSTUNREACH);
    assert_int_equal(r.disc[0].idx, 0);
    assert_false(r.disc[0].engine_null);
    assert_int_equal(r.disc[1].err, ECANCELED);
    assert_int_equal(r.disc[1].idx, 1);
    assert_true(r.disc[1].engine_null);
    assert_int_equal(r.disc[2].err, EHOSTUNREACH);
    assert_int_equal(r.disc[2].attempt, 3);
    assert_int_equal(r.disc[3].err, 0);
    assert_false(r.disc[3].again);
    assert_int_equal(r.connected, 1);
    lep_proactor_free(r.p);
    alarm(0);
}

/* Work items and connection timers between attempts: they run in the
 * connection's context, with no engine, before the next attempt. */

typedef struct waitwork {
    rt_t *r;
    int items, timers, engine_seen;
    int64_t last_run;
} waitwork_t;

static void
ww_item(void *ctx)
{
    waitwork_t *w = ctx;
    enter(w->r);
    w->items++;
    w->engine_seen += lep_io_conn_engine(w->r->ic) != NULL;
    w->last_run = lep_proactor_now_ms();
    leave(w->r);
}

static void
ww_timer(void *ctx)
{
    waitwork_t *w = ctx;
    enter(w->r);
    w->timers++;
    w->engine_seen += lep_io_conn_engine(w->r->ic) != NULL;
    w->last_run = lep_proactor_now_ms();
    leave(w->r);
}

static void *
ww_feeder(void *arg)
{
    waitwork_t *w = arg;
    for (int i = 0; i < 3; i++)
        CHECK(lep_io_conn_schedule(w->r->ic, (uint64_t)(10 + 10 * i), ww_timer, w) == 0);
    for (int i = 0; i < 50; i++)
        CHECK(lep_io_conn_inject(w->r->ic, ww_item, w) == 0);
    return NULL;
}

static pthread_t ww_thread;

static void
hook_feed(rt_t *r, lep_io_conn_t *ic)
{
    (void)ic;
    if (r->discs == 1) {
        lep_io_conn_hold(ic); /* the feeder uses it: released after the join */
        CHECK(pthread_create(&ww_thread, NULL, ww_feeder, r->user) == 0);
    }
}

static void
test_work_between_attempts(void **state)
{
    (void)state;
    arm_alarm(30);
    rt_t r;
    rt_init(&r);
    waitwork_t w = {.r = &r};
    r.user = &w;
    r.disc_hook = hook_feed;
    lep_io_addr_t a = {"127.0.0.1", dead_port()};
    connect_to(&r, &a, 1, 400, 400, 2);
    run_on(r.p, 2);
    pthread_join(ww_thread, NULL);
    dump(&r);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&r.overlaps), 0);
    assert_int_equal(r.discs, 2);
    assert_int_equal(w.items, 50);
    assert_int_equal(w.timers, 3);
    assert_int_equal(w.engine_seen, 0);
    assert_true(w.last_run < r.setup_t[1]); /* all during the wait */
    lep_io_conn_release(r.ic);
    lep_proactor_free(r.p);
    alarm(0);
}

/* A held connection stays valid after its end, also past the
 * proactor. */
static void
test_hold_after_end(void **state)
{
    (void)state;
    arm_alarm(30);
    for (int order = 0; order < 2; order++) {
        rt_t r;
        rt_init(&r);
        lep_io_addr_t a = {"127.0.0.1", dead_port()};
        lep_io_connect_opts_t o;
        lep_io_connect_opts_init(&o);
        o.addrs = &a;
        o.naddrs = 1;
        o.reconnect.max_attempts = 1;
        lep_io_conn_t *ic;
        assert_int_equal(lep_proactor_connect_opts(r.p, &o, &C_HANDLER, &r, &ic), 0);
        lep_io_conn_hold(ic);
        run_on(r.p, 1);
        assert_int_equal(r.discs, 1);
        assert_false(r.disc[0].again);
        assert_ptr_equal(lep_io_conn_context(ic), &r);
        assert_ptr_equal(lep_io_conn_proactor(ic), r.p);
        assert_null(lep_io_conn_engine(ic));
        assert_int_equal(lep_io_conn_attempt(ic), 1);
        assert_int_equal(lep_io_conn_inject(ic, ww_item, NULL), LEP_ERR_STATE);
        assert_int_equal(lep_io_conn_schedule(ic, 1, ww_item, NULL), LEP_ERR_STATE);
        lep_io_conn_wake(ic);
        lep_io_conn_abort(ic);
        lep_io_conn_cancel_reconnect(ic);
        if (order == 0) {
            lep_io_conn_release(ic);
            lep_proactor_free(r.p);
        } else {
            lep_proactor_free(r.p);
            lep_io_conn_release(ic);
        }
    }
    alarm(0);
}

static void
test_connect_opts_arguments(void **state)
{
    (void)state;
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_io_connect_opts_t o;
    lep_io_connect_opts_init(&o);
    assert_int_equal(lep_proactor_connect_opts(p, &o, NULL, NULL, NULL), LEP_ERR_INVALID);
    lep_io_addr_t a[2] = {{"127.0.0.1", 1}, {"", 2}};
    o.addrs = a;
    o.naddrs = 2;
    assert_int_equal(lep_proactor_connect_opts(p, &o, NULL, NULL, NULL), LEP_ERR_INVALID);
    a[1].host = NULL;
    assert_int_equal(lep_proactor_connect_opts(p, &o, NULL, NULL, NULL), LEP_ERR_INVALID);
    o.naddrs = 1;
    lep_conn_opts_t co;
    lep_conn_opts_init(&co);
    co.server = true;
    o.copts = &co;
    assert_int_equal(lep_proactor_connect_opts(p, &o, NULL, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_proactor_connect_opts(NULL, &o, NULL, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_proactor_connect_opts(p, NULL, NULL, NULL, NULL), LEP_ERR_INVALID);
    /* Valid, never run: freed by the proactor, copts copied. */
    co.server = false;
    co.container_id = "copied";
    lep_io_conn_t *ic;
    assert_int_equal(lep_proactor_connect_opts(p, &o, NULL, NULL, &ic), 0);
    assert_non_null(lep_io_conn_addr(ic));
    assert_string_equal(lep_io_conn_addr(ic)->host, "127.0.0.1");
    assert_int_equal(lep_io_conn_addr_index(ic), 0);
    assert_int_equal(lep_io_conn_attempt(ic), 0);
    lep_proactor_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_comes_back),
        cmocka_unit_test(test_backoff_grows_then_gives_up),
        cmocka_unit_test(test_failover_to_second_address),
        cmocka_unit_test(test_cancel_from_on_disconnected),
        cmocka_unit_test(test_cancel_during_wait),
        cmocka_unit_test(test_abort_during_wait),
        cmocka_unit_test(test_local_close_does_not_reconnect),
        cmocka_unit_test(test_remote_close_reconnects),
        cmocka_unit_test(test_resolve_failure_and_refused_setup),
        cmocka_unit_test(test_work_between_attempts),
        cmocka_unit_test(test_hold_after_end),
        cmocka_unit_test(test_connect_opts_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
