/* The messaging container over loopback: one container listens and
 * connects to itself (or two containers talk), through every default and
 * option a Proton user relies on: the three delivery modes, outcomes by
 * hand, request-response with a dynamic reply-to, large messages, link
 * refusal, SASL, connect.json, reconnect with unsettled messages
 * reported, stop from another thread and from a signal, several run()
 * threads with serialized callbacks, and work injected from a foreign
 * thread. */
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

#include <lepton/messaging.h>

static void
arm_alarm(unsigned s)
{
    signal(SIGALRM, SIG_DFL);
    alarm(s);
}

/* ------------------------------------------------------------------ */
/* A world: one container, a listener on an ephemeral port, a client.  */

typedef struct world {
    lep_container_t *c;
    lep_listener_t *l;
    uint16_t port;
    char url[128];
    const char *address;
    lep_delivery_mode_t mode;
    int total;
    size_t body_size;
    /* client */
    lep_sender_t *snd;
    lep_receiver_t *rcv;
    lep_connection_t *client;
    int sent, accepted, rejected, released, settled;
    int disconnects, reconnecting, unsettled_reported;
    int transport_errors;
    char last_error[256];
    bool done;
    int finals;
    /* server */
    int received, delivery_settled;
    int next_expected;
    bool in_order;
    bool body_ok;
    lep_delivery_t *held[64];
    int nheld;
    bool server_manual;
    int server_opens;
    bool refuse_links;
    int link_errors;
    /* request-response */
    lep_sender_t *reply_snd[8];
    char reply_addr[8][128];
    int nreply;
    int replies;
    char got_reply[8][64];
    bool started, stopped;
    lep_sasl_users_t *users;
    int resend_from;
    bool abort_mid;
    bool aborted_once;
} world_t;

static void
make_body(world_t *w, int n, lep_message_t *m)
{
    char text[64];
    snprintf(text, sizeof text, "message %d", n);
    if (w->body_size) {
        uint8_t *b = malloc(w->body_size);
        for (size_t i = 0; i < w->body_size; i++)
            b[i] = (uint8_t)(i * 7 + (size_t)n);
        lep_message_set_body_data(m, LEP_BYTES(b, w->body_size));
        free(b);
    } else {
        lep_message_set_body_string(m, lep_bytes_str(text));
    }
    lep_atom_t v = {.type = LEP_TYPE_INT};
    v.u.i = n;
    lep_message_set_property(m, lep_bytes_str("n"), &v);
}

static bool
check_body(world_t *w, const lep_message_t *m, int *n_out)
{
    const lep_atom_t *v = lep_message_property(m, lep_bytes_str("n"));
    if (!v || v->type != LEP_TYPE_INT)
        return false;
    int n = (int)v->u.i;
    *n_out = n;
    if (w->body_size) {
        if (lep_message_body_kind(m) != LEP_BODY_DATA)
            return false;
        lep_bytes_t b = lep_message_body_section(m, 0);
        if (b.len != w->body_size)
            return false;
        for (size_t i = 0; i < b.len; i++)
            if (b.ptr[i] != (uint8_t)(i * 7 + (size_t)n))
                return false;
        return true;
    }
    lep_bytes_t s;
    char text[64];
    snprintf(text, sizeof text, "message %d", n);
    return lep_message_body_string(m, &s) == 0 && lep_bytes_eq_str(s, text);
}

/* ---- client side ---- */

static int *
tag_of(int n)
{
    int *p = malloc(sizeof *p);
    *p = n;
    return p;
}

static void
c_sendable(void *ctx, lep_sender_t *s)
{
    world_t *w = ctx;
    lep_message_t *m;
    assert_int_equal(lep_message_new(&m), 0);
    while (lep_sender_credit(s) > 0 && w->sent < w->total) {
        lep_message_clear(m);
        make_body(w, w->sent, m);
        lep_delivery_t *d;
        assert_int_equal(lep_sender_send(s, m, &d), 0);
        if (w->mode == LEP_AT_MOST_ONCE) {
            assert_null(d);
        } else {
            assert_non_null(d);
            lep_delivery_set_context(d, tag_of(w->sent));
        }
        w->sent++;
    }
    lep_message_free(m);
    if (w->mode == LEP_AT_MOST_ONCE && w->sent == w->total && !w->done) {
        w->done = true;
        lep_connection_close(lep_sender_connection(s), NULL);
    }
}

static void
maybe_done(world_t *w, lep_sender_t *s)
{
    if (!w->done && w->accepted + w->rejected + w->released == w->total) {
        w->done = true;
        lep_connection_close(lep_sender_connection(s), NULL);
    }
}

static void
c_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    world_t *w = ctx;
    w->accepted++;
    free(lep_delivery_context(d));
    maybe_done(w, s);
}

static void
c_rejected(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    world_t *w = ctx;
    w->rejected++;
    const lep_outcome_t *o = lep_delivery_remote_state(d);
    assert_int_equal(o->type, LEP_OUTCOME_REJECTED);
    assert_true(lep_bytes_eq_str(o->error.name, "test:rejected"));
    free(lep_delivery_context(d));
    maybe_done(w, s);
}

static void
c_released(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    world_t *w = ctx;
    w->released++;
    free(lep_delivery_context(d));
    maybe_done(w, s);
}

static void
c_settled(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    world_t *w = ctx;
    w->settled++;
}

static void
c_transport_error(void *ctx, lep_connection_t *c, const lep_condition_t *cond)
{
    world_t *w = ctx;
    if (lep_connection_is_server(c))
        return;
    w->transport_errors++;
    lep_condition_format(cond, w->last_error, sizeof w->last_error);
}

static void
c_disconnected(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n)
{
    world_t *w = ctx;
    if (lep_connection_is_server(c))
        return;
    w->disconnects++;
    if (lep_connection_reconnecting(c))
        w->reconnecting++;
    w->unsettled_reported += (int)n;
    /* at-least-once: what was not confirmed is sent again */
    int lowest = w->sent;
    for (size_t i = 0; i < n; i++) {
        int *t = unsettled[i];
        if (*t < lowest)
            lowest = *t;
        free(t);
    }
    if (n)
        w->sent = lowest;
}

static void
c_final(void *ctx, lep_connection_t *c)
{
    world_t *w = ctx;
    if (lep_connection_is_server(c))
        return; /* the accepted connection's end reaches this handler too */
    w->finals++;
    if (w->l) {
        lep_container_close_listener(w->c, w->l);
        w->l = NULL;
    }
}

/* ---- server side ---- */

static void
s_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    world_t *w = ctx;
    int n = -1;
    if (!check_body(w, m, &n))
        w->body_ok = false;
    if (n != w->next_expected && w->mode != LEP_AT_MOST_ONCE && !w->abort_mid)
        w->in_order = false;
    w->next_expected = n + 1;
    w->received++;
    if (w->abort_mid && !w->aborted_once && w->received == w->total / 2) {
        /* drop the connection with the messages after this one in flight
         * (this one is still accepted: the close waits for the callback's
         * end) */
        w->aborted_once = true;
        lep_connection_close(lep_receiver_connection(r), &(lep_condition_t){
            .name = lep_bytes_str("amqp:connection:forced")});
        return;
    }
    if (w->server_manual) {
        switch (n % 4) {
        case 0: {
            lep_condition_t cond = lep_condition_make("test:rejected", "number four");
            lep_delivery_reject(d, &cond);
            break;
        }
        case 1:
            lep_delivery_release(d);
            break;
        case 2:
            lep_delivery_modify(d, true, false);
            break;
        default:
            /* keep it, answer later */
            assert_true(w->nheld < 64);
            w->held[w->nheld++] = d;
            break;
        }
        if (w->received == w->total)
            for (int i = 0; i < w->nheld; i++)
                assert_int_equal(lep_delivery_finish(w->held[i], LEP_OUTCOME_ACCEPTED), 0);
    }
}

static void
s_delivery_settled(void *ctx, lep_receiver_t *r, lep_delivery_t *d)
{
    world_t *w = ctx;
    w->delivery_settled++;
}

static void
s_receiver_open(void *ctx, lep_receiver_t *r)
{
    world_t *w = ctx;
    w->server_opens++;
    if (w->refuse_links) {
        lep_condition_t cond = lep_condition_make("amqp:unauthorized-access", "no");
        lep_receiver_close(r, &cond);
        return;
    }
    if (w->server_manual) {
        lep_receiver_set_credit_window(r, 100);
        lep_receiver_set_auto_accept(r, false);
    }
    else
        lep_receiver_set_credit_window(r, 300);
}

static lep_handler_t server_h = {
    .on_message = s_message,
    .on_delivery_settled = s_delivery_settled,
    .on_receiver_open = s_receiver_open,
};

static void
start_listener(world_t *w)
{
    lep_connection_opts_t so;
    lep_connection_opts_init(&so);
    so.handler = &server_h;
    so.ctx = w;
    so.sasl_users = w->users;
    if (w->users)
        so.sasl_allow_insecure = true;
    char lurl[64];
    snprintf(lurl, sizeof lurl, "amqp://127.0.0.1:%u", (unsigned)w->port);
    assert_int_equal(lep_container_listen(w->c, lurl, &so, &w->l), 0);
    w->port = lep_listener_port(w->l);
    snprintf(w->url, sizeof w->url, "amqp://127.0.0.1:%u/%s", (unsigned)w->port,
             w->address ? w->address : "queue1");
}

static void
c_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    w->started = true;
    start_listener(w);
    lep_sender_opts_t so;
    lep_sender_opts_init(&so);
    so.mode = w->mode;
    assert_int_equal(lep_container_open_sender(c, w->url, &so, NULL, &w->snd), 0);
    w->client = lep_sender_connection(w->snd);
}

static void
c_stop(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    w->stopped = true;
}

static lep_handler_t client_h = {
    .on_container_start = c_start,
    .on_container_stop = c_stop,
    .on_sendable = c_sendable,
    .on_accepted = c_accepted,
    .on_rejected = c_rejected,
    .on_released = c_released,
    .on_settled = c_settled,
    .on_transport_error = c_transport_error,
    .on_disconnected = c_disconnected,
    .on_connection_final = c_final,
};

static void
world_init(world_t *w, lep_delivery_mode_t mode, int total)
{
    memset(w, 0, sizeof *w);
    w->mode = mode;
    w->total = total;
    w->body_ok = true;
    w->in_order = true;
}

static void
world_run(world_t *w, const lep_handler_t *h)
{
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = h;
    o.ctx = w;
    assert_int_equal(lep_container_new(&w->c, &o), 0);
    assert_int_equal(lep_container_run(w->c), 0);
    lep_container_free(w->c);
}

static void
run_mode(lep_delivery_mode_t mode, int total)
{
    world_t w;
    world_init(&w, mode, total);
    world_run(&w, &client_h);
    assert_true(w.started);
    assert_true(w.stopped);
    assert_int_equal(w.sent, total);
    assert_true(w.body_ok);
    assert_int_equal(w.finals, 1);
    assert_int_equal(w.transport_errors, 0);
    if (mode == LEP_AT_MOST_ONCE) {
        assert_int_equal(w.accepted, 0);
        assert_int_equal(w.received, total); /* loopback loses nothing */
    } else {
        assert_true(w.in_order);
        assert_int_equal(w.received, total);
        assert_int_equal(w.accepted, total);
        assert_int_equal(w.settled, total); /* the receiver settled (first) or ... */
    }
    if (mode == LEP_EXACTLY_ONCE)
        assert_int_equal(w.delivery_settled, total);
    else
        assert_int_equal(w.delivery_settled, 0);
}

static void
test_at_least_once(void **state)
{
    arm_alarm(30);
    run_mode(LEP_AT_LEAST_ONCE, 5000);
}

static void
test_at_most_once(void **state)
{
    arm_alarm(30);
    run_mode(LEP_AT_MOST_ONCE, 5000);
}

static void
test_exactly_once(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_EXACTLY_ONCE, 2000);
    world_run(&w, &client_h);
    assert_int_equal(w.received, 2000);
    assert_int_equal(w.accepted, 2000);
    /* the sender settles first; the receiver then settles its side */
    assert_int_equal(w.delivery_settled, 2000);
    assert_true(w.body_ok);
}

static void
test_large_messages(void **state)
{
    arm_alarm(60);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 6);
    w.body_size = 3 * 1024 * 1024 + 17;
    world_run(&w, &client_h);
    assert_int_equal(w.received, 6);
    assert_int_equal(w.accepted, 6);
    assert_true(w.body_ok);
}

static void
test_empty_body(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 3);
    w.body_size = 0;
    world_run(&w, &client_h);
    assert_int_equal(w.accepted, 3);
}

static void
test_outcomes_by_hand(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 40);
    w.server_manual = true;
    world_run(&w, &client_h);
    assert_int_equal(w.received, 40);
    assert_int_equal(w.rejected, 10);
    assert_int_equal(w.released, 20); /* released and modified */
    assert_int_equal(w.accepted, 10);
}

/* ------------------------------------------------------------------ */
/* Refused link                                                        */

static void
c_sender_error(void *ctx, lep_sender_t *s, const lep_condition_t *cond)
{
    world_t *w = ctx;
    w->link_errors++;
    assert_true(lep_bytes_eq_str(cond->name, "amqp:unauthorized-access"));
    lep_connection_close(lep_sender_connection(s), NULL);
}

static void
test_refused_link(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 5);
    w.refuse_links = true;
    lep_handler_t h = client_h;
    h.on_sender_error = c_sender_error;
    world_run(&w, &h);
    assert_int_equal(w.server_opens, 1);
    assert_int_equal(w.link_errors, 1);
    assert_int_equal(w.received, 0);
    assert_int_equal(w.accepted, 0);
}

/* ------------------------------------------------------------------ */
/* Request-response with a dynamic reply-to (server_direct pattern)     */

static const char *requests[] = {"Twas brillig, and the slithy toves",
                                 "Did gire and gymble in the wabe.",
                                 "All mimsy were the borogroves,",
                                 "And the mome raths outgrabe."};

static void
rr_server_sender_open(void *ctx, lep_sender_t *s)
{
    world_t *w = ctx;
    const lep_source_t *rs = lep_sender_remote_source(s);
    assert_non_null(rs);
    assert_true(rs->dynamic);
    /* the container made up an address; remember which sender it is */
    assert_true(strlen(lep_sender_source_address(s)) > 0);
    assert_true(w->nreply < 8);
    snprintf(w->reply_addr[w->nreply], sizeof w->reply_addr[0], "%s",
             lep_sender_source_address(s));
    w->reply_snd[w->nreply++] = s;
}

static void
rr_server_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    world_t *w = ctx;
    lep_bytes_t rt = lep_message_reply_to(m);
    lep_sender_t *s = NULL;
    for (int i = 0; i < w->nreply; i++)
        if (lep_bytes_eq_str(rt, w->reply_addr[i]))
            s = w->reply_snd[i];
    assert_non_null(s);
    lep_bytes_t body;
    assert_int_equal(lep_message_body_string(m, &body), 0);
    char up[128];
    size_t n = body.len < sizeof up ? body.len : sizeof up - 1;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)(body.ptr[i] >= 'a' && body.ptr[i] <= 'z' ? body.ptr[i] - 32 : body.ptr[i]);
    lep_message_t *reply;
    assert_int_equal(lep_message_new(&reply), 0);
    lep_message_set_to(reply, rt);
    lep_message_set_correlation_id(reply, lep_message_id(m));
    lep_message_set_body_string(reply, LEP_BYTES(up, n));
    assert_true(lep_sender_credit(s) > 0);
    assert_int_equal(lep_sender_send(s, reply, NULL), 0);
    lep_message_free(reply);
}

static lep_handler_t rr_server_h = {
    .on_sender_open = rr_server_sender_open,
    .on_message = rr_server_message,
};

static void
rr_send_requests(world_t *w, lep_sender_t *s)
{
    if (!lep_sender_credit(s) || !lep_receiver_address(w->rcv)[0] || w->sent)
        return;
    lep_message_t *m;
    lep_message_new(&m);
    for (int i = 0; i < 4; i++) {
        lep_message_clear(m);
        lep_atom_t id = {.type = LEP_TYPE_ULONG};
        id.u.u = (uint64_t)i + 100;
        lep_message_set_id(m, &id);
        lep_message_set_reply_to(m, lep_bytes_str(lep_receiver_address(w->rcv)));
        lep_message_set_body_string(m, lep_bytes_str(requests[i]));
        assert_int_equal(lep_sender_send(s, m, NULL), 0);
        w->sent++;
    }
    lep_message_free(m);
}

static void
rr_client_receiver_open(void *ctx, lep_receiver_t *r)
{
    world_t *w = ctx;
    if (lep_connection_is_server(lep_receiver_connection(r)))
        return; /* the server's end of the requests link */
    /* the peer assigned the address of our dynamic source */
    assert_true(strlen(lep_receiver_address(r)) > 0);
    rr_send_requests(w, w->snd);
}

static void
rr_client_sendable(void *ctx, lep_sender_t *s)
{
    rr_send_requests(ctx, s);
}

static void
rr_client_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    world_t *w = ctx;
    const lep_atom_t *cid = lep_message_correlation_id(m);
    assert_non_null(cid);
    assert_int_equal(cid->type, LEP_TYPE_ULONG);
    int i = (int)cid->u.u - 100;
    assert_true(i >= 0 && i < 4);
    lep_bytes_t body;
    assert_int_equal(lep_message_body_string(m, &body), 0);
    snprintf(w->got_reply[i], sizeof w->got_reply[i], "%.*s", (int)body.len,
             (const char *)body.ptr);
    if (++w->replies == 4)
        lep_connection_close(lep_receiver_connection(r), NULL);
}

static void
rr_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    lep_connection_opts_t so;
    lep_connection_opts_init(&so);
    so.handler = &rr_server_h;
    so.ctx = w;
    assert_int_equal(lep_container_listen(c, "amqp://127.0.0.1:0", &so, &w->l), 0);
    snprintf(w->url, sizeof w->url, "amqp://127.0.0.1:%u/requests",
             (unsigned)lep_listener_port(w->l));
    lep_connection_t *conn;
    assert_int_equal(lep_container_connect(c, w->url, NULL, &conn), 0);
    assert_int_equal(lep_connection_open_sender(conn, "requests", NULL, &w->snd), 0);
    lep_receiver_opts_t ro;
    lep_receiver_opts_init(&ro);
    ro.dynamic = true;
    assert_int_equal(lep_connection_open_receiver(conn, NULL, &ro, &w->rcv), 0);
}

static void
test_request_response(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 0);
    lep_handler_t h = {
        .on_container_start = rr_start,
        .on_receiver_open = rr_client_receiver_open,
        .on_sendable = rr_client_sendable,
        .on_message = rr_client_message,
        .on_connection_final = c_final,
    };
    world_run(&w, &h);
    assert_int_equal(w.replies, 4);
    assert_string_equal(w.got_reply[0], "TWAS BRILLIG, AND THE SLITHY TOVES");
    assert_string_equal(w.got_reply[3], "AND THE MOME RATHS OUTGRABE.");
    assert_int_equal(w.nreply, 1);
}

/* ------------------------------------------------------------------ */
/* Errors the caller sees at once                                       */

static void
test_bad_urls(void **state)
{
    lep_container_t *c;
    assert_int_equal(lep_container_new(&c, NULL), 0);
    lep_connection_t *conn = (lep_connection_t *)1;
    assert_int_equal(lep_container_connect(c, "http://example.com", NULL, &conn), LEP_ERR_INVALID);
    assert_null(conn);
    assert_non_null(strstr(lep_container_error(), "http://example.com"));
    assert_int_equal(lep_container_connect(c, "amqp://host:99999", NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lep_container_listen(c, "amqp://", NULL, NULL), LEP_ERR_INVALID);
    lep_connection_opts_t o;
    lep_connection_opts_init(&o);
    const char *bad[] = {"amqps://x:1"};
    o.failover_urls = bad;
    o.nfailover_urls = 1;
    assert_int_equal(lep_container_connect(c, "amqp://127.0.0.1:1", &o, NULL), LEP_ERR_INVALID);
    assert_non_null(strstr(lep_container_error(), "scheme"));
    /* amqps listener without a certificate */
    assert_int_equal(lep_container_listen(c, "amqps://127.0.0.1:0", NULL, NULL), LEP_ERR_INVALID);
    assert_non_null(strstr(lep_container_error(), "certificate"));
    lep_container_free(c);
}

/* ------------------------------------------------------------------ */
/* SASL PLAIN with a users file                                         */

static void
sasl_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    start_listener(w);
    lep_connection_opts_t co;
    lep_connection_opts_init(&co);
    co.sasl_allow_insecure = true;
    co.reconnect.initial_delay_ms = 10;
    char url[160];
    snprintf(url, sizeof url, "amqp://%s@127.0.0.1:%u/queue1", w->address, (unsigned)w->port);
    assert_int_equal(lep_container_open_sender(c, url, NULL, &co, &w->snd), 0);
}

static void
run_sasl(world_t *w, const char *userpass)
{
    world_init(w, LEP_AT_LEAST_ONCE, 10);
    char err[200];
    const char *users = "alice:PLAIN:wonderland\n";
    assert_int_equal(lep_sasl_users_parse(&w->users, users, strlen(users), "users", err,
                                          sizeof err), 0);
    w->address = userpass;
    lep_handler_t h = client_h;
    h.on_container_start = sasl_start;
    world_run(w, &h);
    lep_sasl_users_free(w->users);
}

static void
test_sasl_plain(void **state)
{
    arm_alarm(30);
    world_t w;
    run_sasl(&w, "alice:wonderland");
    assert_int_equal(w.accepted, 10);
    assert_int_equal(w.transport_errors, 0);
    /* a wrong password is final: no reconnect */
    run_sasl(&w, "alice:looking-glass");
    assert_int_equal(w.accepted, 0);
    assert_int_equal(w.transport_errors, 1);
    assert_non_null(strstr(w.last_error, "unauthorized"));
    assert_int_equal(w.disconnects, 1);
    assert_int_equal(w.reconnecting, 0);
    assert_int_equal(w.finals, 1);
}

/* ------------------------------------------------------------------ */
/* connect.json                                                          */

static void
json_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    start_listener(w);
    char path[] = "/tmp/lepton-connect-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    dprintf(fd, "{\"scheme\": \"amqp\", \"host\": \"127.0.0.1\", \"port\": %u,\n"
                " \"sasl\": {\"mechanisms\": \"ANONYMOUS\"}}\n", (unsigned)w->port);
    close(fd);
    setenv("MESSAGING_CONNECT_FILE", path, 1);
    lep_connection_t *conn;
    assert_int_equal(lep_container_connect(c, NULL, NULL, &conn), 0);
    unsetenv("MESSAGING_CONNECT_FILE");
    unlink(path);
    lep_sender_opts_t so;
    lep_sender_opts_init(&so);
    assert_int_equal(lep_connection_open_sender(conn, "queue1", &so, &w->snd), 0);
}

static void
test_connect_json(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 10);
    lep_handler_t h = client_h;
    h.on_container_start = json_start;
    world_run(&w, &h);
    assert_int_equal(w.accepted, 10);
    /* a broken file is an error at connect time */
    lep_container_t *c;
    assert_int_equal(lep_container_new(&c, NULL), 0);
    char path[] = "/tmp/lepton-connect-XXXXXX";
    int fd = mkstemp(path);
    dprintf(fd, "{\"port\": \"x\"}");
    close(fd);
    setenv("MESSAGING_CONNECT_FILE", path, 1);
    assert_int_equal(lep_container_connect(c, NULL, NULL, NULL), LEP_ERR_INVALID);
    assert_non_null(strstr(lep_container_error(), path));
    unsetenv("MESSAGING_CONNECT_FILE");
    unlink(path);
    lep_container_free(c);
}

/* ------------------------------------------------------------------ */
/* Reconnect                                                             */

static void
late_listen(void *ctx)
{
    world_t *w = ctx;
    start_listener(w);
}

static void
rc_disconnected(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n)
{
    world_t *w = ctx;
    c_disconnected(ctx, c, unsettled, n);
    /* after three refused attempts the server appears */
    if (w->disconnects == 3 && !w->l)
        lep_container_schedule(w->c, 0, late_listen, w);
}

static void
rc_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    /* a port nobody listens on yet */
    start_listener(w);
    lep_container_close_listener(c, w->l);
    w->l = NULL;
    lep_connection_opts_t co;
    lep_connection_opts_init(&co);
    co.reconnect.initial_delay_ms = 5;
    co.reconnect.max_delay_ms = 40;
    lep_sender_opts_t so;
    lep_sender_opts_init(&so);
    assert_int_equal(lep_container_open_sender(c, w->url, &so, &co, &w->snd), 0);
}

static void
test_reconnect_until_server_appears(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 100);
    lep_handler_t h = client_h;
    h.on_container_start = rc_start;
    h.on_disconnected = rc_disconnected;
    h.on_transport_error = c_transport_error;
    world_run(&w, &h);
    assert_int_equal(w.accepted, 100);
    assert_true(w.reconnecting >= 3);
    if (!strstr(w.last_error, "refused"))
        fail_msg("last error: %s", w.last_error);
    assert_int_equal(w.finals, 1);
}

static void
test_reconnect_resends_unsettled(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 2000);
    w.abort_mid = true;
    lep_handler_t h = client_h;
    h.on_transport_error = c_transport_error;
    world_run(&w, &h);
    assert_true(w.aborted_once);
    assert_int_equal(w.reconnecting, 1);
    assert_true(w.unsettled_reported > 0);
    /* at-least-once: every message accepted once; some arrived twice */
    assert_int_equal(w.accepted, 2000);
    assert_true(w.received >= 2000);
    assert_true(w.body_ok);
}

/* ------------------------------------------------------------------ */
/* Stop                                                                  */

static lep_container_t *stop_target;

static void *
stopper(void *arg)
{
    usleep(100 * 1000);
    lep_container_stop(arg);
    return NULL;
}

static void
idle_start(void *ctx, lep_container_t *c)
{
    world_t *w = ctx;
    start_listener(w);
    /* an idle connection: nothing would ever end it but stop */
    assert_int_equal(lep_container_connect(c, w->url, NULL, &w->client), 0);
}

static void
test_stop_from_thread(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 0);
    lep_handler_t h = client_h;
    h.on_container_start = idle_start;
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &w;
    assert_int_equal(lep_container_new(&w.c, &o), 0);
    pthread_t t;
    pthread_create(&t, NULL, stopper, w.c);
    assert_int_equal(lep_container_run(w.c), 0);
    pthread_join(t, NULL);
    assert_true(w.stopped);
    assert_int_equal(w.finals, 1);
    lep_container_free(w.c);
}

static void
on_sigusr1(int sig)
{
    lep_container_stop(stop_target);
}

static void *
signaller(void *arg)
{
    usleep(100 * 1000);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void
test_stop_from_signal(void **state)
{
    arm_alarm(30);
    world_t w;
    world_init(&w, LEP_AT_LEAST_ONCE, 0);
    lep_handler_t h = client_h;
    h.on_container_start = idle_start;
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &w;
    assert_int_equal(lep_container_new(&w.c, &o), 0);
    stop_target = w.c;
    signal(SIGUSR1, on_sigusr1);
    pthread_t t;
    pthread_create(&t, NULL, signaller, NULL);
    assert_int_equal(lep_container_run(w.c), 0);
    pthread_join(t, NULL);
    signal(SIGUSR1, SIG_DFL);
    assert_true(w.stopped);
    lep_container_free(w.c);
}

/* ------------------------------------------------------------------ */
/* Several threads                                                       */

typedef struct mt_conn {
    atomic_int in_cb;
    atomic_int overlaps;
    int sent, accepted, received;
    lep_sender_t *snd;
} mt_conn_t;

typedef struct mt {
    mt_conn_t conns[4];
    int nconns;
    int total;
    atomic_int done;
    char url[96];
    lep_listener_t *l;
    lep_container_t *c;
} mt_t;

static mt_conn_t *
mt_enter(mt_conn_t *m)
{
    if (atomic_fetch_add(&m->in_cb, 1) != 0)
        atomic_fetch_add(&m->overlaps, 1);
    return m;
}

static void
mt_leave(mt_conn_t *m)
{
    atomic_fetch_sub(&m->in_cb, 1);
}

static void
mt_sendable(void *ctx, lep_sender_t *s)
{
    mt_t *t = ctx;
    mt_conn_t *m = mt_enter(lep_sender_context(s));
    lep_message_t *msg;
    lep_message_new(&msg);
    lep_message_set_body_data(msg, lep_bytes_str("0123456789012345678901234567890123456789"));
    while (lep_sender_credit(s) && m->sent < t->total) {
        assert_int_equal(lep_sender_send(s, msg, NULL), 0);
        m->sent++;
    }
    lep_message_free(msg);
    mt_leave(m);
}

static void
mt_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    mt_t *t = ctx;
    mt_conn_t *m = mt_enter(lep_sender_context(s));
    if (++m->accepted == t->total) {
        lep_connection_close(lep_sender_connection(s), NULL);
        if (atomic_fetch_add(&t->done, 1) + 1 == t->nconns)
            lep_container_close_listener(t->c, t->l);
    }
    mt_leave(m);
}

static void
mt_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *msg)
{
    /* server side: one mt_conn per server connection is not known here;
     * the receiver context was set in on_receiver_open */
    mt_conn_t *m = lep_receiver_context(r);
    if (m) {
        mt_enter(m);
        m->received++;
        mt_leave(m);
    }
}

static void
mt_receiver_open(void *ctx, lep_receiver_t *r)
{
    mt_t *t = ctx;
    /* the link name carries the index of the client connection */
    lep_bytes_t name = lep_receiver_name(r);
    int i = name.ptr[name.len - 1] - '0';
    (void)t;
    lep_receiver_set_context(r, NULL);
    lep_receiver_set_credit_window(r, 500);
    (void)i;
}

static void
mt_start(void *ctx, lep_container_t *c)
{
    mt_t *t = ctx;
    lep_handler_t *sh = calloc(1, sizeof *sh);
    sh->on_message = mt_message;
    sh->on_receiver_open = mt_receiver_open;
    lep_connection_opts_t so;
    lep_connection_opts_init(&so);
    so.handler = sh;
    so.ctx = t;
    assert_int_equal(lep_container_listen(c, "amqp://127.0.0.1:0", &so, &t->l), 0);
    free(sh); /* copied */
    snprintf(t->url, sizeof t->url, "amqp://127.0.0.1:%u/q", (unsigned)lep_listener_port(t->l));
    for (int i = 0; i < t->nconns; i++) {
        lep_sender_opts_t o;
        lep_sender_opts_init(&o);
        char name[32];
        snprintf(name, sizeof name, "sender-%d", i);
        o.name = name;
        assert_int_equal(lep_container_open_sender(c, t->url, &o, NULL, &t->conns[i].snd), 0);
        lep_sender_set_context(t->conns[i].snd, &t->conns[i]);
    }
}

static void *
mt_runner(void *arg)
{
    lep_container_run(arg);
    return NULL;
}

static void
test_threads(void **state)
{
    arm_alarm(60);
    mt_t t;
    memset(&t, 0, sizeof t);
    t.nconns = 4;
    t.total = 20000;
    lep_handler_t h = {.on_container_start = mt_start, .on_sendable = mt_sendable,
                       .on_accepted = mt_accepted};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &t;
    assert_int_equal(lep_container_new(&t.c, &o), 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, mt_runner, t.c);
    assert_int_equal(lep_container_run(t.c), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < t.nconns; i++) {
        assert_int_equal(t.conns[i].accepted, t.total);
        assert_int_equal(atomic_load(&t.conns[i].overlaps), 0);
    }
    lep_container_free(t.c);
}

/* ------------------------------------------------------------------ */
/* Work injected from a foreign thread                                   */

typedef struct feeder {
    lep_connection_t *conn;
    lep_sender_t *snd;
    int queued, sent, accepted;
    int total;
    pthread_mutex_t lock;
    bool ready;
    pthread_t th;
    lep_listener_t *l;
    lep_container_t *c;
} feeder_t;

static void
feed_one(void *ctx)
{
    feeder_t *f = ctx;
    /* runs in the connection's context: the sender may be used */
    pthread_mutex_lock(&f->lock);
    f->queued++;
    pthread_mutex_unlock(&f->lock);
    lep_message_t *m;
    lep_message_new(&m);
    while (f->sent < f->queued && lep_sender_credit(f->snd)) {
        lep_message_set_body_string(m, lep_bytes_str("from a thread"));
        assert_int_equal(lep_sender_send(f->snd, m, NULL), 0);
        f->sent++;
    }
    lep_message_free(m);
}

static void *
feeder_thread(void *arg)
{
    feeder_t *f = arg;
    for (int i = 0; i < f->total; i++) {
        while (lep_connection_inject(f->conn, feed_one, f) != 0)
            usleep(1000);
        if (i % 50 == 0)
            usleep(1000);
    }
    return NULL;
}

static void
feed_sendable(void *ctx, lep_sender_t *s)
{
    feeder_t *f = ctx;
    if (!f->ready) {
        f->ready = true;
        pthread_create(&f->th, NULL, feeder_thread, f);
    }
    lep_message_t *m;
    lep_message_new(&m);
    pthread_mutex_lock(&f->lock);
    int q = f->queued;
    pthread_mutex_unlock(&f->lock);
    while (f->sent < q && lep_sender_credit(s)) {
        lep_message_set_body_string(m, lep_bytes_str("from a thread"));
        lep_sender_send(s, m, NULL);
        f->sent++;
    }
    lep_message_free(m);
}

static void
feed_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    feeder_t *f = ctx;
    if (++f->accepted == f->total) {
        lep_connection_close(lep_sender_connection(s), NULL);
        lep_container_close_listener(f->c, f->l);
    }
}

static void
feed_start(void *ctx, lep_container_t *c)
{
    feeder_t *f = ctx;
    assert_int_equal(lep_container_listen(c, "amqp://127.0.0.1:0", NULL, &f->l), 0);
    char url[96];
    snprintf(url, sizeof url, "amqp://127.0.0.1:%u/q", (unsigned)lep_listener_port(f->l));
    assert_int_equal(lep_container_open_sender(c, url, NULL, NULL, &f->snd), 0);
    f->conn = lep_sender_connection(f->snd);
    lep_connection_hold(f->conn);
}

static void
test_inject_from_thread(void **state)
{
    arm_alarm(30);
    feeder_t f;
    memset(&f, 0, sizeof f);
    f.total = 500;
    pthread_mutex_init(&f.lock, NULL);
    lep_handler_t h = {.on_container_start = feed_start, .on_sendable = feed_sendable,
                       .on_accepted = feed_accepted};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &f;
    assert_int_equal(lep_container_new(&f.c, &o), 0);
    assert_int_equal(lep_container_run(f.c), 0);
    pthread_join(f.th, NULL);
    assert_int_equal(f.accepted, 500);
    /* ended: held memory stays, inject refuses */
    assert_int_equal(lep_connection_inject(f.conn, feed_one, &f), LEP_ERR_STATE);
    lep_connection_release(f.conn);
    lep_container_free(f.c);
    pthread_mutex_destroy(&f.lock);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at_least_once),
        cmocka_unit_test(test_at_most_once),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_large_messages),
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_outcomes_by_hand),
        cmocka_unit_test(test_refused_link),
        cmocka_unit_test(test_request_response),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_sasl_plain),
        cmocka_unit_test(test_connect_json),
        cmocka_unit_test(test_reconnect_until_server_appears),
        cmocka_unit_test(test_reconnect_resends_unsettled),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_stop_from_signal),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_inject_from_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
