/* Proactor over loopback, one run() thread: a listener and a client in
 * one proactor run a whole AMQP conversation, timers fire in order,
 * injection from another thread wakes the loop, a refused connect is
 * reported.  Threads, reconnect and connection timers have their own
 * files. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include <lepton/io.h>

#include "io/io_internal.h" /* white-box: lep_proactor_free with queued tasks */

/* Every test is bounded: a hung loop fails the run instead of the CI. */
static void
arm_alarm(unsigned s)
{
    signal(SIGALRM, SIG_DFL);
    alarm(s);
}

/* ------------------------------------------------------------------ */
/* A full conversation: open/begin/attach, 1000 messages at-least-once,
 * close at every level.                                               */

#define NMSG 1000

typedef struct convo {
    lep_proactor_t *p;
    lep_listener_t *l;
    /* client */
    lep_link_t *snd;
    int sent, accepted, client_disc;
    int client_err;
    bool client_closed_seen;
    /* server */
    int received, server_disc, server_err;
    bool server_remote_close;
    bool body_ok;
    int remote_opens, transport_closed;
} convo_t;

static const uint8_t TGT[] = {0xa1, 1, 'q'};

static void
make_body(uint8_t *buf, size_t *len, int n)
{
    /* amqp-value section: a string "message N" */
    char text[32];
    int tl = snprintf(text, sizeof text, "message %d", n);
    buf[0] = 0x00;
    buf[1] = 0x53;
    buf[2] = 0x77;
    buf[3] = 0xa1;
    buf[4] = (uint8_t)tl;
    memcpy(buf + 5, text, (size_t)tl);
    *len = 5 + (size_t)tl;
}

static int
client_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    convo_t *cv = ctx;
    (void)ic;
    assert_int_equal(lep_conn_open(c), 0);
    lep_session_t *s;
    assert_int_equal(lep_session_new(c, &s), 0);
    assert_int_equal(lep_session_begin(s), 0);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "sender-1";
    lep_target_t t;
    lep_target_init(&t);
    t.present = LEP_TARGET_HAS_ADDRESS;
    t.address = LEP_BYTES(TGT, sizeof TGT);
    lo.target = &t;
    assert_int_equal(lep_link_new(s, &lo, &cv->snd), 0);
    assert_int_equal(lep_link_attach(cv->snd), 0);
    return 0;
}

static void
client_send(convo_t *cv)
{
    while (cv->sent < NMSG && lep_link_credit(cv->snd) > 0) {
        uint8_t body[64];
        size_t len;
        make_body(body, &len, cv->sent);
        assert_int_equal(lep_link_send(cv->snd, LEP_BYTES(NULL, 0), body, len, false, NULL), 0);
        cv->sent++;
    }
}

static void
client_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    convo_t *cv = ctx;
    (void)ic;
    switch (ev->type) {
    case LEP_EVENT_LINK_FLOW:
        client_send(cv);
        break;
    case LEP_EVENT_DELIVERY:
        if (lep_delivery_updated(ev->delivery) || lep_delivery_remote_settled(ev->delivery)) {
            const lep_outcome_t *o = lep_delivery_remote_state(ev->delivery);
            assert_non_null(o);
            assert_int_equal(o->type, LEP_OUTCOME_ACCEPTED);
            assert_int_equal(lep_delivery_settle(ev->delivery), 0);
            if (++cv->accepted == NMSG)
                assert_int_equal(lep_link_detach(cv->snd, true, NULL), 0);
        }
        break;
    case LEP_EVENT_LINK_REMOTE_DETACH:
        assert_int_equal(lep_session_end(lep_link_session(ev->link), NULL), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        cv->client_closed_seen = true;
        break;
    case LEP_EVENT_TRANSPORT_CLOSED:
        cv->transport_closed++;
        break;
    default:
        break;
    }
}

static void
convo_disc_common(convo_t *cv)
{
    if (cv->client_disc && cv->server_disc)
        lep_proactor_interrupt(cv->p);
}

static void
client_disconnected(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    convo_t *cv = ctx;
    (void)ic;
    (void)reason;
    cv->client_disc++;
    cv->client_err = err;
    convo_disc_common(cv);
}

static void
server_connected(void *ctx, lep_io_conn_t *ic)
{
    convo_t *cv = ctx;
    (void)ic;
    /* One client is all this test wants. */
    lep_listener_close(cv->l);
    cv->l = NULL;
}

static void
server_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    convo_t *cv = ctx;
    (void)ic;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        cv->remote_opens++;
        assert_int_equal(lep_conn_open(ev->conn), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            assert_int_equal(lep_session_begin(ev->session), 0);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
            assert_true(lep_link_is_receiver(ev->link));
            assert_int_equal(lep_link_attach(ev->link), 0);
            assert_int_equal(lep_link_flow(ev->link, 100), 0);
        }
        break;
    case LEP_EVENT_DELIVERY: {
        lep_delivery_t *d = ev->delivery;
        if (lep_delivery_partial(d))
            break;
        uint8_t want[64];
        size_t wl;
        make_body(want, &wl, cv->received);
        lep_bytes_t got = lep_delivery_data(d);
        if (got.len != wl || memcmp(got.ptr, want, wl) != 0)
            cv->body_ok = false;
        cv->received++;
        assert_int_equal(lep_delivery_accept(d), 0);
        assert_int_equal(lep_delivery_settle(d), 0);
        assert_int_equal(lep_link_flow(ev->link, 1), 0);
        break;
    }
    case LEP_EVENT_LINK_REMOTE_DETACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_ACTIVE)
            assert_int_equal(lep_link_detach(ev->link, true, NULL), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        if (lep_session_local_state(ev->session) == LEP_STATE_ACTIVE)
            assert_int_equal(lep_session_end(ev->session, NULL), 0);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        cv->server_remote_close = true;
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
        break;
    case LEP_EVENT_TRANSPORT_CLOSED:
        cv->transport_closed++;
        break;
    default:
        break;
    }
}

static void
server_disconnected(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    convo_t *cv = ctx;
    (void)ic;
    (void)reason;
    cv->server_disc++;
    cv->server_err = err;
    convo_disc_common(cv);
}

static void
test_loopback_conversation(void **state)
{
    (void)state;
    arm_alarm(20);
    convo_t cv = {.body_ok = true};
    assert_int_equal(lep_proactor_new(&cv.p, NULL), 0);
    lep_io_handler_t sh = {.on_connected = server_connected,
                           .on_event = server_event,
                           .on_disconnected = server_disconnected};
    assert_int_equal(lep_proactor_listen(cv.p, "127.0.0.1", 0, NULL, &sh, &cv, &cv.l), 0);
    uint16_t port = lep_listener_port(cv.l);
    assert_true(port != 0);
    lep_io_handler_t ch = {.on_setup = client_setup,
                           .on_event = client_event,
                           .on_disconnected = client_disconnected};
    lep_io_conn_t *ic;
    assert_int_equal(lep_proactor_connect(cv.p, "127.0.0.1", port, NULL, &ch, &cv, &ic), 0);
    assert_non_null(lep_io_conn_engine(ic));
    assert_ptr_equal(lep_io_conn_context(ic), &cv);
    assert_int_equal(lep_proactor_run(cv.p), 0);

    assert_int_equal(cv.sent, NMSG);
    assert_int_equal(cv.received, NMSG);
    assert_int_equal(cv.accepted, NMSG);
    assert_true(cv.body_ok);
    assert_int_equal(cv.remote_opens, 1);
    assert_true(cv.server_remote_close);
    assert_true(cv.client_closed_seen);
    assert_int_equal(cv.transport_closed, 2);
    assert_int_equal(cv.client_disc, 1);
    assert_int_equal(cv.server_disc, 1);
    assert_int_equal(cv.client_err, 0);
    assert_int_equal(cv.server_err, 0);
    assert_null(cv.l);
    lep_proactor_free(cv.p);
    alarm(0);
}

/* The same conversation while a proactor function and a work item on
 * the client keep re-injecting themselves: tasks that always have more
 * to do must not keep the sockets from being served. */

typedef struct spin {
    convo_t *cv;
    lep_io_conn_t *client;
    long pspins, cspins;
} spin_t;

static void
proactor_spinner(void *ctx)
{
    spin_t *sp = ctx;
    sp->pspins++;
    if (!(sp->cv->client_disc && sp->cv->server_disc))
        assert_int_equal(lep_proactor_inject(sp->cv->p, proactor_spinner, sp), 0);
}

static void
conn_spinner(void *ctx)
{
    spin_t *sp = ctx;
    sp->cspins++;
    /* Re-injected until the connection ends (then LEP_ERR_STATE). */
    lep_io_conn_inject(sp->client, conn_spinner, sp);
}

static void
spin_connected(void *ctx, lep_io_conn_t *ic)
{
    spin_t *sp = lep_conn_context(lep_io_conn_engine(ic));
    (void)ctx;
    sp->client = ic;
    assert_int_equal(lep_io_conn_inject(ic, conn_spinner, sp), 0);
}

static void
test_busy_tasks_do_not_starve_sockets(void **state)
{
    (void)state;
    arm_alarm(20);
    convo_t cv = {.body_ok = true};
    spin_t sp = {.cv = &cv};
    assert_int_equal(lep_proactor_new(&cv.p, NULL), 0);
    lep_io_handler_t sh = {.on_connected = server_connected,
                           .on_event = server_event,
                           .on_disconnected = server_disconnected};
    assert_int_equal(lep_proactor_listen(cv.p, "127.0.0.1", 0, NULL, &sh, &cv, &cv.l), 0);
    lep_io_handler_t ch = {.on_setup = client_setup,
                           .on_connected = spin_connected,
                           .on_event = client_event,
                           .on_disconnected = client_disconnected};
    lep_io_conn_t *ic;
    assert_int_equal(
        lep_proactor_connect(cv.p, "127.0.0.1", lep_listener_port(cv.l), NULL, &ch, &cv, &ic), 0);
    lep_conn_set_context(lep_io_conn_engine(ic), &sp);
    assert_int_equal(lep_proactor_inject(cv.p, proactor_spinner, &sp), 0);
    assert_int_equal(lep_proactor_run(cv.p), 0);
    assert_int_equal(cv.received, NMSG);
    assert_int_equal(cv.accepted, NMSG);
    assert_int_equal(cv.client_err, 0);
    assert_int_equal(cv.server_err, 0);
    assert_true(sp.pspins > 0 && sp.cspins > 0);
    fprintf(stderr, "  spins meanwhile: %ld proactor, %ld connection\n", sp.pspins, sp.cspins);
    lep_proactor_free(cv.p); /* frees the last proactor spinner */
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

typedef struct timers {
    lep_proactor_t *p;
    int order[8];
    int n;
    int64_t t0;
    int64_t fired_at[8];
} timers_t;

typedef struct tctx {
    timers_t *t;
    int id;
} tctx_t;

static void
timer_fired(void *ctx)
{
    tctx_t *c = ctx;
    c->t->fired_at[c->t->n] = lep_proactor_now_ms() - c->t->t0;
    c->t->order[c->t->n++] = c->id;
}

static void
on_inactive_interrupt(void *ctx, lep_proactor_t *p)
{
    (void)ctx;
    lep_proactor_interrupt(p);
}

static void
test_timers_in_order(void **state)
{
    (void)state;
    arm_alarm(10);
    timers_t t = {0};
    lep_proactor_opts_t po = {.on_inactive = on_inactive_interrupt};
    assert_int_equal(lep_proactor_new(&t.p, &po), 0);
    t.t0 = lep_proactor_now_ms();
    /* ids by expected firing order; 2 and 3 share a deadline */
    tctx_t c[5] = {{&t, 4}, {&t, 2}, {&t, 0}, {&t, 3}, {&t, 1}};
    assert_int_equal(lep_proactor_schedule(t.p, 120, timer_fired, &c[0]), 0);
    assert_int_equal(lep_proactor_schedule(t.p, 60, timer_fired, &c[1]), 0);
    assert_int_equal(lep_proactor_schedule(t.p, 0, timer_fired, &c[2]), 0);
    assert_int_equal(lep_proactor_schedule(t.p, 60, timer_fired, &c[3]), 0);
    assert_int_equal(lep_proactor_schedule(t.p, 30, timer_fired, &c[4]), 0);
    int64_t start = t.t0; /* before scheduling: the deadlines count from there */
    assert_int_equal(lep_proactor_run(t.p), 0);
    int64_t took = lep_proactor_now_ms() - start;
    if (!(took >= 120 && took < 2000))
        fprintf(stderr, "timers: took %lld ms\n", (long long)took);
    assert_int_equal(t.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(t.order[i], i);
    assert_true(t.fired_at[1] >= 30);
    assert_true(t.fired_at[2] >= 60);
    assert_true(t.fired_at[4] >= 120);
    assert_true(took >= 120 && took < 2000);
    lep_proactor_free(t.p);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Inject from another thread                                          */

typedef struct inj {
    lep_proactor_t *p;
    int count;
    pthread_t loop_thread;
    bool ran_on_loop;
} inj_t;

static void
injected(void *ctx)
{
    inj_t *in = ctx;
    in->ran_on_loop = pthread_equal(pthread_self(), in->loop_thread);
    if (++in->count == 3)
        lep_proactor_interrupt(in->p);
}

static void *
injector(void *arg)
{
    inj_t *in = arg;
    for (int i = 0; i < 3; i++) {
        usleep(30000); /* the loop is asleep in epoll_wait, no timers */
        lep_proactor_inject(in->p, injected, in);
    }
    return NULL;
}

static void
noop_timer(void *ctx)
{
    (void)ctx;
}

static void
test_inject_wakes_loop(void **state)
{
    (void)state;
    arm_alarm(10);
    inj_t in = {0};
    assert_int_equal(lep_proactor_new(&in.p, NULL), 0);
    in.loop_thread = pthread_self();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, injector, &in), 0);
    int64_t start = lep_proactor_now_ms();
    assert_int_equal(lep_proactor_run(in.p), 0);
    int64_t took = lep_proactor_now_ms() - start;
    pthread_join(th, NULL);
    assert_int_equal(in.count, 3);
    assert_true(in.ran_on_loop);
    assert_true(took < 5000);
    /* A far timer does not keep an injection waiting either. */
    assert_int_equal(lep_proactor_schedule(in.p, 60000, noop_timer, NULL), 0);
    in.count = 2;
    assert_int_equal(lep_proactor_inject(in.p, injected, &in), 0);
    assert_int_equal(lep_proactor_run(in.p), 0);
    assert_int_equal(in.count, 3);
    /* An interrupt before run makes run return at once. */
    lep_proactor_interrupt(in.p);
    assert_int_equal(lep_proactor_run(in.p), 0);
    lep_proactor_free(in.p); /* frees the pending timer */
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Connect to a closed port                                            */

typedef struct refused {
    lep_proactor_t *p;
    int disc, err, connected, transport_error, closed;
    char reason[160];
} refused_t;

static void
refused_connected(void *ctx, lep_io_conn_t *ic)
{
    (void)ic;
    ((refused_t *)ctx)->connected++;
}

static void
refused_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    refused_t *r = ctx;
    (void)ic;
    if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
        r->transport_error++;
    if (ev->type == LEP_EVENT_TRANSPORT_CLOSED)
        r->closed++;
}

static void
refused_disconnected(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    refused_t *r = ctx;
    (void)ic;
    r->disc++;
    r->err = err;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static int
open_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    (void)ctx;
    (void)ic;
    return lep_conn_open(c);
}

static void
test_connect_refused(void **state)
{
    (void)state;
    arm_alarm(10);
    refused_t r = {0};
    lep_proactor_opts_t po = {.on_inactive = on_inactive_interrupt};
    assert_int_equal(lep_proactor_new(&r.p, &po), 0);
    /* A port that was just free: listen, note it, close. */
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(r.p, "127.0.0.1", 0, NULL, NULL, NULL, &l), 0);
    uint16_t port = lep_listener_port(l);
    lep_listener_close(l);
    lep_io_handler_t h = {.on_setup = open_setup,
                          .on_connected = refused_connected,
                          .on_event = refused_event,
                          .on_disconnected = refused_disconnected};
    assert_int_equal(lep_proactor_connect(r.p, "127.0.0.1", port, NULL, &h, &r, NULL), 0);
    assert_int_equal(lep_proactor_run(r.p), 0);
    assert_int_equal(r.disc, 1);
    assert_int_equal(r.connected, 0);
    assert_int_equal(r.err, ECONNREFUSED);
    assert_non_null(strstr(r.reason, "connect"));
    assert_int_equal(r.closed, 1);
    lep_proactor_free(r.p);
    alarm(0);
}

static void
test_bad_arguments(void **state)
{
    (void)state;
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    assert_int_equal(lep_proactor_connect(p, NULL, 1, NULL, NULL, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_proactor_connect(p, "no.such.host.invalid", 1, NULL, NULL, NULL, NULL),
                     LEP_ERR_IO);
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = true;
    assert_int_equal(lep_proactor_connect(p, "127.0.0.1", 1, &o, NULL, NULL, NULL),
                     LEP_ERR_INVALID);
    assert_int_equal(lep_proactor_inject(p, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_proactor_schedule(p, 1, NULL, NULL), LEP_ERR_INVALID);
    /* IPv6 loopback listens too (skipped where the host has no IPv6). */
    lep_listener_t *l;
    if (lep_proactor_listen(p, "::1", 0, NULL, NULL, NULL, &l) == 0) {
        assert_true(lep_listener_port(l) != 0);
        lep_listener_close(l);
    }
    lep_proactor_free(p);
}

/* ------------------------------------------------------------------ */
/* A message far larger than the socket buffers: partial writes wait
 * for EPOLLOUT, reads come in many chunks.                            */

#define BIG (4u << 20)

typedef struct big {
    lep_proactor_t *p;
    lep_link_t *snd;
    uint8_t *msg;
    bool sent, got_ok, accepted;
    int disc, errs;
} big_t;

static int
big_client_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    big_t *b = ctx;
    (void)ic;
    lep_session_t *s;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "big";
    assert_int_equal(lep_conn_open(c), 0);
    assert_int_equal(lep_session_new(c, &s), 0);
    assert_int_equal(lep_session_begin(s), 0);
    assert_int_equal(lep_link_new(s, &lo, &b->snd), 0);
    return lep_link_attach(b->snd);
}

static void
big_client_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    big_t *b = ctx;
    (void)ic;
    if (ev->type == LEP_EVENT_LINK_FLOW && !b->sent && lep_link_credit(b->snd)) {
        assert_int_equal(lep_link_send(b->snd, LEP_BYTES(NULL, 0), b->msg, BIG, false, NULL), 0);
        b->sent = true;
    } else if (ev->type == LEP_EVENT_DELIVERY && lep_delivery_updated(ev->delivery)) {
        b->accepted = lep_delivery_remote_state(ev->delivery)->type == LEP_OUTCOME_ACCEPTED;
        assert_int_equal(lep_delivery_settle(ev->delivery), 0);
    } else if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE) {
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
    }
}

static void
big_server_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    big_t *b = ctx;
    (void)ic;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        assert_int_equal(lep_conn_open(ev->conn), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        assert_int_equal(lep_session_begin(ev->session), 0);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        assert_int_equal(lep_link_attach(ev->link), 0);
        assert_int_equal(lep_link_flow(ev->link, 1), 0);
        break;
    case LEP_EVENT_DELIVERY:
        if (lep_delivery_partial(ev->delivery))
            break;
        b->got_ok = lep_delivery_data(ev->delivery).len == BIG &&
                    memcmp(lep_delivery_data(ev->delivery).ptr, b->msg, BIG) == 0;
        assert_int_equal(lep_delivery_accept(ev->delivery), 0);
        assert_int_equal(lep_delivery_settle(ev->delivery), 0);
        /* Closing the connection right away still lets the disposition
         * out first: output is written in order. */
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
        break;
    default:
        break;
    }
}

static void
big_disconnected(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    big_t *b = ctx;
    (void)ic;
    if (err)
        fprintf(stderr, "big: disconnected: %s\n", reason);
    b->errs += err != 0;
    if (++b->disc == 2)
        lep_proactor_interrupt(b->p);
}

static void
test_big_message(void **state)
{
    (void)state;
    arm_alarm(20);
    big_t b = {0};
    b.msg = malloc(BIG);
    assert_non_null(b.msg);
    for (size_t i = 0; i < BIG; i++)
        b.msg[i] = (uint8_t)(i * 7 + (i >> 13));
    /* Small reads: many chunks for one frame. */
    lep_proactor_opts_t po = {.read_chunk = 4096};
    assert_int_equal(lep_proactor_new(&b.p, &po), 0);
    lep_io_handler_t sh = {.on_event = big_server_event, .on_disconnected = big_disconnected};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(b.p, "127.0.0.1", 0, NULL, &sh, &b, &l), 0);
    lep_io_handler_t ch = {.on_setup = big_client_setup,
                           .on_event = big_client_event,
                           .on_disconnected = big_disconnected};
    assert_int_equal(
        lep_proactor_connect(b.p, "127.0.0.1", lep_listener_port(l), NULL, &ch, &b, NULL), 0);
    assert_int_equal(lep_proactor_run(b.p), 0);
    assert_true(b.sent);
    assert_true(b.got_ok);
    assert_true(b.accepted);
    assert_int_equal(b.disc, 2);
    assert_int_equal(b.errs, 0);
    lep_proactor_free(b.p); /* also frees the still-open listener */
    free(b.msg);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* The server drops the socket mid-handshake: the client hears of it.  */

typedef struct drop {
    lep_proactor_t *p;
    int disc, client_err, server_err, client_transport_error;
} drop_t;

static void
drop_server_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ctx;
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN)
        lep_io_conn_abort(ic);
}

static void
drop_client_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ic;
    if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
        ((drop_t *)ctx)->client_transport_error++;
}

static void
drop_server_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    drop_t *d = ctx;
    (void)ic;
    (void)reason;
    d->server_err = err;
    if (++d->disc == 2)
        lep_proactor_interrupt(d->p);
}

static void
drop_client_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    drop_t *d = ctx;
    (void)ic;
    (void)reason;
    d->client_err = err;
    if (++d->disc == 2)
        lep_proactor_interrupt(d->p);
}

static void
test_peer_drops(void **state)
{
    (void)state;
    arm_alarm(10);
    drop_t d = {0};
    assert_int_equal(lep_proactor_new(&d.p, NULL), 0);
    lep_io_handler_t sh = {.on_event = drop_server_event, .on_disconnected = drop_server_disc};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(d.p, "127.0.0.1", 0, NULL, &sh, &d, &l), 0);
    lep_io_handler_t ch = {.on_setup = open_setup,
                           .on_event = drop_client_event,
                           .on_disconnected = drop_client_disc};
    assert_int_equal(
        lep_proactor_connect(d.p, "127.0.0.1", lep_listener_port(l), NULL, &ch, &d, NULL), 0);
    assert_int_equal(lep_proactor_run(d.p), 0);
    assert_int_equal(d.disc, 2);
    assert_int_equal(d.server_err, ECONNABORTED);
    assert_true(d.client_err != 0);
    assert_int_equal(d.client_transport_error, 1);
    lep_proactor_free(d.p);
    alarm(0);
}

/* run() may run on several threads: two interrupts make both return;
 * run() from one of the proactor's own callbacks refuses. */
static void *
second_run(void *arg)
{
    lep_proactor_t *p = arg;
    return (void *)(intptr_t)lep_proactor_run(p);
}

static void
nested_run(void *ctx)
{
    void **a = ctx;
    a[1] = (void *)(intptr_t)lep_proactor_run(a[0]);
    lep_proactor_interrupt(a[0]);
    lep_proactor_interrupt(a[0]);
}

static void
test_concurrent_run(void **state)
{
    (void)state;
    arm_alarm(10);
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    void *a[2] = {p, NULL};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, second_run, p), 0);
    assert_int_equal(lep_proactor_inject(p, nested_run, a), 0);
    assert_int_equal(lep_proactor_run(p), 0);
    void *rc;
    pthread_join(th, &rc);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal((intptr_t)a[1], LEP_ERR_STATE);
    lep_proactor_free(p);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* Idle timeouts: both sides ask for 100 ms and stay silent for 600 ms.
 * Only heartbeats written on the merged tick deadlines keep the
 * connection up, and waiting for them costs next to no CPU.           */

typedef struct idle {
    lep_proactor_t *p;
    lep_io_conn_t *client;
    int disc, errs, transport_errors;
    uint32_t remote_idle;
    bool closed_by_timer;
} idle_t;

static int
idle_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    idle_t *d = ctx;
    if (!lep_conn_is_server(c))
        d->client = ic;
    return lep_conn_is_server(c) ? 0 : lep_conn_open(c);
}

static void
idle_close(void *ctx)
{
    idle_t *d = ctx;
    d->closed_by_timer = true;
    assert_int_equal(lep_conn_close(lep_io_conn_engine(d->client), NULL), 0);
    lep_io_conn_wake(d->client);
}

static void
idle_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    idle_t *d = ctx;
    if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
        d->transport_errors++;
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN) {
        if (lep_conn_is_server(ev->conn)) {
            assert_int_equal(lep_conn_open(ev->conn), 0);
        } else {
            assert_ptr_equal(ic, d->client);
            d->remote_idle = lep_conn_remote_idle_timeout(ev->conn);
            assert_int_equal(lep_proactor_schedule(d->p, 600, idle_close, d), 0);
        }
    }
    if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE && lep_conn_is_server(ev->conn))
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
}

static void
idle_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    idle_t *d = ctx;
    (void)ic;
    if (err)
        fprintf(stderr, "idle: disconnected: %s\n", reason);
    d->errs += err != 0;
    if (++d->disc == 2)
        lep_proactor_interrupt(d->p);
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
test_idle_heartbeats(void **state)
{
    (void)state;
    arm_alarm(10);
    idle_t d = {0};
    assert_int_equal(lep_proactor_new(&d.p, NULL), 0);
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.idle_timeout_ms = 100;
    lep_io_handler_t h = {.on_setup = idle_setup, .on_event = idle_event,
                          .on_disconnected = idle_disc};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(d.p, "127.0.0.1", 0, &o, &h, &d, &l), 0);
    assert_int_equal(
        lep_proactor_connect(d.p, "127.0.0.1", lep_listener_port(l), &o, &h, &d, NULL), 0);
    double cpu0 = cpu_seconds();
    int64_t t0 = lep_proactor_now_ms();
    assert_int_equal(lep_proactor_run(d.p), 0);
    int64_t took = lep_proactor_now_ms() - t0;
    double cpu = cpu_seconds() - cpu0;
    assert_int_equal(d.remote_idle, 100);
    assert_true(d.closed_by_timer);
    assert_int_equal(d.transport_errors, 0);
    assert_int_equal(d.errs, 0);
    assert_int_equal(d.disc, 2);
    assert_true(took >= 600);
    /* A busy loop would burn the whole 600 ms. */
    assert_true(cpu < 0.3);
    lep_proactor_free(d.p);
    alarm(0);
}

/* ------------------------------------------------------------------ */
/* A sender fed from another thread through the connection's work
 * queue: each item asks for one message; the loop sends when credit
 * allows.                                                             */

#define NWORK 300

typedef struct wq {
    lep_proactor_t *p;
    lep_io_conn_t *client;
    lep_link_t *snd;
    pthread_t loop_thread;
    int wanted, sent, received, accepted, disc, errs;
    bool off_thread, closing;
    bool connected;
    pthread_mutex_t m;
    pthread_cond_t cv;
} wq_t;

static void
wq_pump(wq_t *w)
{
    while (w->sent < w->wanted && lep_link_credit(w->snd) > 0) {
        uint8_t body[64];
        size_t len;
        make_body(body, &len, w->sent);
        assert_int_equal(lep_link_send(w->snd, LEP_BYTES(NULL, 0), body, len, false, NULL), 0);
        w->sent++;
    }
}

static void
wq_item(void *ctx)
{
    wq_t *w = ctx;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->off_thread = true;
    w->wanted++;
    wq_pump(w);
}

static int
wq_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    wq_t *w = ctx;
    if (lep_conn_is_server(c))
        return 0;
    w->client = ic;
    lep_session_t *s;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "wq";
    assert_int_equal(lep_conn_open(c), 0);
    assert_int_equal(lep_session_new(c, &s), 0);
    assert_int_equal(lep_session_begin(s), 0);
    assert_int_equal(lep_link_new(s, &lo, &w->snd), 0);
    return lep_link_attach(w->snd);
}

static void
wq_connected(void *ctx, lep_io_conn_t *ic)
{
    wq_t *w = ctx;
    if (ic != w->client)
        return;
    pthread_mutex_lock(&w->m);
    w->connected = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->m);
}

static void
wq_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    wq_t *w = ctx;
    if (ic == w->client) {
        if (ev->type == LEP_EVENT_LINK_FLOW)
            wq_pump(w);
        if (ev->type == LEP_EVENT_DELIVERY && lep_delivery_updated(ev->delivery)) {
            assert_int_equal(lep_delivery_remote_state(ev->delivery)->type, LEP_OUTCOME_ACCEPTED);
            assert_int_equal(lep_delivery_settle(ev->delivery), 0);
            if (++w->accepted == NWORK)
                assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
        }
        return;
    }
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        assert_int_equal(lep_conn_open(ev->conn), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        assert_int_equal(lep_session_begin(ev->session), 0);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        assert_int_equal(lep_link_attach(ev->link), 0);
        assert_int_equal(lep_link_flow(ev->link, 50), 0);
        break;
    case LEP_EVENT_DELIVERY:
        if (lep_delivery_partial(ev->delivery))
            break;
        w->received++;
        assert_int_equal(lep_delivery_accept(ev->delivery), 0);
        assert_int_equal(lep_delivery_settle(ev->delivery), 0);
        assert_int_equal(lep_link_flow(ev->link, 1), 0);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
        break;
    default:
        break;
    }
}

static void
wq_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    wq_t *w = ctx;
    (void)ic;
    if (err)
        fprintf(stderr, "wq: disconnected: %s\n", reason);
    w->errs += err != 0;
    if (ic == w->client)
        assert_int_equal(lep_io_conn_inject(ic, wq_item, w), LEP_ERR_STATE);
    if (++w->disc == 2)
        lep_proactor_interrupt(w->p);
}

static void *
wq_feeder(void *arg)
{
    wq_t *w = arg;
    pthread_mutex_lock(&w->m);
    while (!w->connected)
        pthread_cond_wait(&w->cv, &w->m);
    pthread_mutex_unlock(&w->m);
    for (int i = 0; i < NWORK; i++) {
        if (lep_io_conn_inject(w->client, wq_item, w) != 0)
            abort();
        if (i % 50 == 0)
            usleep(2000);
    }
    return NULL;
}

static void
test_conn_work_queue(void **state)
{
    (void)state;
    arm_alarm(20);
    wq_t w = {0};
    pthread_mutex_init(&w.m, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.loop_thread = pthread_self();
    assert_int_equal(lep_proactor_new(&w.p, NULL), 0);
    lep_io_handler_t h = {.on_setup = wq_setup, .on_connected = wq_connected,
                          .on_event = wq_event, .on_disconnected = wq_disc};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(w.p, "127.0.0.1", 0, NULL, &h, &w, &l), 0);
    assert_int_equal(
        lep_proactor_connect(w.p, "127.0.0.1", lep_listener_port(l), NULL, &h, &w, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wq_feeder, &w), 0);
    assert_int_equal(lep_proactor_run(w.p), 0);
    pthread_join(th, NULL);
    assert_false(w.off_thread);
    assert_int_equal(w.wanted, NWORK);
    assert_int_equal(w.sent, NWORK);
    assert_int_equal(w.received, NWORK);
    assert_int_equal(w.accepted, NWORK);
    assert_int_equal(w.disc, 2);
    assert_int_equal(w.errs, 0);
    lep_proactor_free(w.p);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.m);
    alarm(0);
}

/* Out of descriptors: accept fails with EMFILE; the listener pauses
 * instead of spinning, and accepts once descriptors are back. */

typedef struct emfile {
    lep_proactor_t *p;
    atomic_int accepted; /* read by the main thread while the loop runs */
    int disc, errs;
} emfile_t;

static void
emfile_connected(void *ctx, lep_io_conn_t *ic)
{
    emfile_t *e = ctx;
    if (!lep_conn_is_server(lep_io_conn_engine(ic)))
        return;
    atomic_fetch_add(&e->accepted, 1);
}

static void
emfile_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    (void)ctx;
    (void)ic;
    bool server = lep_conn_is_server(ev->conn);
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN)
        assert_int_equal(server ? lep_conn_open(ev->conn) : lep_conn_close(ev->conn, NULL), 0);
    if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE && server)
        assert_int_equal(lep_conn_close(ev->conn, NULL), 0);
}

static void
emfile_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    emfile_t *e = ctx;
    (void)ic;
    if (err)
        fprintf(stderr, "emfile: %s\n", reason);
    e->errs += err != 0;
    if (++e->disc == 2)
        lep_proactor_interrupt(e->p);
}

static void *
emfile_run(void *arg)
{
    return (void *)(intptr_t)lep_proactor_run(arg);
}

static void
test_accept_out_of_descriptors(void **state)
{
    (void)state;
    arm_alarm(20);
    emfile_t e;
    memset(&e, 0, sizeof e);
    assert_int_equal(lep_proactor_new(&e.p, NULL), 0);
    lep_io_handler_t h = {.on_setup = open_setup, .on_connected = emfile_connected,
                          .on_event = emfile_event, .on_disconnected = emfile_disc};
    lep_io_handler_t sh = {.on_connected = emfile_connected, .on_event = emfile_event,
                           .on_disconnected = emfile_disc};
    lep_listener_t *l;
    assert_int_equal(lep_proactor_listen(e.p, "127.0.0.1", 0, NULL, &sh, &e, &l), 0);
    assert_int_equal(
        lep_proactor_connect(e.p, "127.0.0.1", lep_listener_port(l), NULL, &h, &e, NULL), 0);
    /* No descriptor above the ones in use: the accept cannot get one. */
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, emfile_run, e.p), 0);
    usleep(50000);
    double cpu0 = cpu_seconds();
    usleep(300000);
    double cpu = cpu_seconds() - cpu0;
    int accepted = atomic_load(&e.accepted);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    void *rc;
    pthread_join(th, &rc);
    assert_int_equal((intptr_t)rc, 0);
    fprintf(stderr, "  out of descriptors for 300 ms: %.3f s CPU\n", cpu);
    assert_int_equal(accepted, 0);
    assert_true(cpu < 0.1); /* a spinning listener burns all of it */
    assert_int_equal(atomic_load(&e.accepted), 1);
    assert_int_equal(e.disc, 2);
    assert_int_equal(e.errs, 0);
    lep_proactor_free(e.p);
    alarm(0);
}

/* Listeners that wait on the ready list when the proactor is freed (a
 * run() left before serving them): a closed one is only there, an open
 * one is on both lists; each is freed once (ASan counts). */
static void
test_free_with_queued_listeners(void **state)
{
    (void)state;
    lep_proactor_t *p;
    assert_int_equal(lep_proactor_new(&p, NULL), 0);
    lep_listener_t *a, *b;
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &a), 0);
    assert_int_equal(lep_proactor_listen(p, "127.0.0.1", 0, NULL, NULL, NULL, &b), 0);
    pthread_mutex_lock(&p->lock);
    assert_true(lepi_sched_locked(p, &a->task, 0, 1));
    assert_true(lepi_sched_locked(p, &b->task, 0, 1));
    pthread_mutex_unlock(&p->lock);
    lep_listener_close(a); /* queued: its close is left to whoever serves it */
    lep_proactor_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_conversation),
        cmocka_unit_test(test_busy_tasks_do_not_starve_sockets),
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_inject_wakes_loop),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_big_message),
        cmocka_unit_test(test_peer_drops),
        cmocka_unit_test(test_concurrent_run),
        cmocka_unit_test(test_idle_heartbeats),
        cmocka_unit_test(test_conn_work_queue),
        cmocka_unit_test(test_accept_out_of_descriptors),
        cmocka_unit_test(test_free_with_queued_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
