/* Connection timers (lep_io_conn_schedule): they fire in deadline order
 * (ties in scheduling order) in the connection's serialized context,
 * from any thread, also from on_setup; the ones pending when the
 * connection ends are dropped and do not keep the proactor active. */
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

/* ------------------------------------------------------------------ */

#define NT 8

typedef struct tt tt_t;

typedef struct tctx {
    tt_t *t;
    int id;
} tctx_t;

struct tt {
    lep_proactor_t *p;
    lep_listener_t *l;
    lep_io_conn_t *client;
    atomic_int incb, overlaps;
    tctx_t tc[NT];
    int order[NT], n;
    int64_t t0, at[NT];
    int items; /* injected from a foreign thread, interleaved */
    int disc, errs;
    bool far_ran;
    atomic_bool connected;
};

static void
enter(tt_t *t)
{
    if (atomic_fetch_add(&t->incb, 1) != 0)
        atomic_fetch_add(&t->overlaps, 1);
}

static void
leave(tt_t *t)
{
    atomic_fetch_sub(&t->incb, 1);
}

static void
fired(void *ctx)
{
    tctx_t *c = ctx;
    tt_t *t = c->t;
    enter(t);
    CHECK(lep_io_conn_engine(t->client) != NULL);
    t->at[t->n] = lep_proactor_now_ms() - t->t0;
    t->order[t->n++] = c->id;
    /* The last one closes: timers run in the engine's context. */
    if (t->n == 6)
        CHECK(lep_conn_close(lep_io_conn_engine(t->client), NULL) == 0);
    leave(t);
}

static void
far_fired(void *ctx)
{
    ((tt_t *)ctx)->far_ran = true;
}

static void
item(void *ctx)
{
    tt_t *t = ctx;
    enter(t);
    t->items++;
    leave(t);
}

static int
t_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *c)
{
    tt_t *t = ctx;
    if (lep_conn_is_server(c))
        return 0;
    enter(t);
    t->client = ic;
    t->t0 = lep_proactor_now_ms();
    /* Before the connection is even registered. */
    CHECK(lep_io_conn_schedule(ic, 10, fired, &t->tc[1]) == 0);
    leave(t);
    return lep_conn_open(c);
}

static void
t_connected(void *ctx, lep_io_conn_t *ic)
{
    tt_t *t = ctx;
    if (ic != t->client)
        return;
    enter(t);
    /* ids by expected firing order; 3 and 4 share a deadline */
    CHECK(lep_io_conn_schedule(ic, 400, fired, &t->tc[5]) == 0);
    CHECK(lep_io_conn_schedule(ic, 60, fired, &t->tc[3]) == 0);
    CHECK(lep_io_conn_schedule(ic, 0, fired, &t->tc[0]) == 0);
    CHECK(lep_io_conn_schedule(ic, 60, fired, &t->tc[4]) == 0);
    CHECK(lep_io_conn_schedule(ic, 30, fired, &t->tc[2]) == 0);
    /* Dropped when the connection ends; must not keep p active. */
    CHECK(lep_io_conn_schedule(ic, 60000, far_fired, t) == 0);
    atomic_store(&t->connected, true);
    leave(t);
}

static void
t_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    tt_t *t = ctx;
    bool client = ic == t->client;
    if (client)
        enter(t);
    if (ev->type == LEP_EVENT_CONN_REMOTE_OPEN && lep_conn_is_server(ev->conn))
        CHECK(lep_conn_open(ev->conn) == 0);
    if (ev->type == LEP_EVENT_CONN_REMOTE_CLOSE && lep_conn_is_server(ev->conn))
        CHECK(lep_conn_close(ev->conn, NULL) == 0);
    if (client)
        leave(t);
}

static void
t_disc(void *ctx, lep_io_conn_t *ic, int err, const char *reason)
{
    tt_t *t = ctx;
    if (ic == t->client) {
        enter(t);
        t->disc++;
        t->errs += err != 0;
        if (err)
            fprintf(stderr, "timers: %s\n", reason);
        CHECK(lep_io_conn_schedule(ic, 1, far_fired, t) == LEP_ERR_STATE);
        leave(t);
        lep_listener_close(t->l);
    }
}

static void *
t_foreign(void *arg)
{
    tt_t *t = arg;
    while (!atomic_load(&t->connected))
        usleep(1000);
    /* A timer from a foreign thread, and items racing with the timers. */
    CHECK(lep_io_conn_schedule(t->client, 90, fired, &t->tc[6]) == 0);
    for (int i = 0; i < 200; i++) {
        CHECK(lep_io_conn_inject(t->client, item, t) == 0);
        if (i % 20 == 0)
            usleep(1000);
    }
    return NULL;
}

static void
test_conn_timers_order(void **state)
{
    (void)state;
    arm_alarm(20);
    atomic_store(&g_fail, 0);
    tt_t t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < NT; i++)
        t.tc[i] = (tctx_t){&t, i};
    /* tc[6] (90 ms, foreign thread) fires between 60 and 400: the
     * expected order is 0 1 2 3 4 6, and the 6th closes (5 is dropped). */
    lep_proactor_opts_t po = {.on_inactive = stop_when_inactive};
    assert_int_equal(lep_proactor_new(&t.p, &po), 0);
    lep_io_handler_t h = {.on_setup = t_setup, .on_connected = t_connected, .on_event = t_event,
                          .on_disconnected = t_disc};
    assert_int_equal(lep_proactor_listen(t.p, "127.0.0.1", 0, NULL, &h, &t, &t.l), 0);
    assert_int_equal(
        lep_proactor_connect(t.p, "127.0.0.1", lep_listener_port(t.l), NULL, &h, &t, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, t_foreign, &t), 0);
    int64_t start = lep_proactor_now_ms();
    run_on(t.p, 2);
    int64_t took = lep_proactor_now_ms() - start;
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(atomic_load(&t.overlaps), 0);
    assert_int_equal(t.disc, 1);
    assert_int_equal(t.errs, 0);
    assert_false(t.far_ran);
    assert_int_equal(t.items, 200);
    /* 6 fired (the 400 ms one was dropped: the 90 ms one closed) */
    assert_int_equal(t.n, 6);
    int want[6] = {0, 1, 2, 3, 4, 6};
    for (int i = 0; i < 6; i++)
        assert_int_equal(t.order[i], want[i]);
    assert_true(t.at[1] >= 10);
    assert_true(t.at[2] >= 30);
    assert_true(t.at[3] >= 60 && t.at[4] >= 60);
    assert_true(t.at[5] >= 90);
    /* The 60 s timer did not keep the proactor alive. */
    assert_true(took < 5000);
    lep_proactor_free(t.p);
    alarm(0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_timers_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
