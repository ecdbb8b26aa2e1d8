/* Engine: sessions, links, credit, deliveries and the three guarantees,
 * multi-frame and streaming transfers, abort, drain, link and session
 * errors.  Two engines wired in memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <lepton/engine.h>

#include "engine/engine_internal.h" /* to make a peer forget a limit */

#define MAXEV 4096

static uint32_t
rnd(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

typedef struct peer {
    lep_conn_t *c;
    lep_event_t ev[MAXEV];
    int nev;
    lep_session_t *ssn;
    lep_link_t *link;
    int dispositions; /* disposition frames sent */
    int transfers;    /* transfer frames sent */
    /* auto-answer the peer's open/begin/attach */
    bool autorespond;
} peer_t;

static void
trace(void *ctx, lep_conn_t *c, bool sent, const char *line)
{
    (void)c;
    peer_t *p = ctx;
    if (sent && strstr(line, "disposition"))
        p->dispositions++;
    if (sent && strstr(line, "transfer"))
        p->transfers++;
    if (getenv("LEP_TRACE"))
        fprintf(stderr, "%s %s\n", p->c && lep_conn_is_server(p->c) ? "S" : "C", line);
}

static void
handle(peer_t *p, const lep_event_t *e)
{
    if (!p->autorespond)
        return;
    switch (e->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        if (lep_conn_local_state(p->c) == LEP_STATE_UNINIT)
            assert_int_equal(lep_conn_open(p->c), 0);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(e->session) == LEP_STATE_UNINIT) {
            assert_int_equal(lep_session_begin(e->session), 0);
            p->ssn = e->session;
        }
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (lep_link_local_state(e->link) == LEP_STATE_UNINIT) {
            assert_int_equal(lep_link_attach(e->link), 0);
            p->link = e->link;
        }
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        if (lep_session_local_state(e->session) == LEP_STATE_ACTIVE && e->session != p->ssn)
            lep_session_end(e->session, NULL);
        break;
    default:
        break;
    }
}

static void
drain_events(peer_t *p)
{
    const lep_event_t *e;
    while ((e = lep_conn_next_event(p->c))) {
        if (p->nev < MAXEV)
            p->ev[p->nev++] = *e;
        handle(p, e);
    }
}

static int
count(const peer_t *p, lep_event_type_t t)
{
    int n = 0;
    for (int i = 0; i < p->nev; i++)
        if (p->ev[i].type == t)
            n++;
    return n;
}

static size_t
move(lep_conn_t *from, lep_conn_t *to)
{
    lep_bytes_t b = lep_conn_output(from);
    if (!b.len)
        return 0;
    size_t used = 0;
    lep_conn_feed(to, b.ptr, b.len, &used);
    lep_conn_consumed(from, b.len);
    return b.len;
}

static void
pump(peer_t *a, peer_t *b)
{
    for (int i = 0; i < 100000; i++) {
        drain_events(a);
        drain_events(b);
        size_t n = move(a->c, b->c) + move(b->c, a->c);
        if (!n)
            break;
    }
    drain_events(a);
    drain_events(b);
}

/* Client a, server b, opened, one session, a's link attached. */
static void
setup(peer_t *a, peer_t *b, uint32_t frame, bool a_receiver, uint8_t snd, uint8_t rcv)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.container_id = "client";
    ob.container_id = "server";
    ob.server = true;
    if (frame)
        oa.max_frame_size = ob.max_frame_size = frame;
    assert_int_equal(lep_conn_new(&a->c, &oa), 0);
    assert_int_equal(lep_conn_new(&b->c, &ob), 0);
    lep_conn_set_trace(a->c, trace, a);
    lep_conn_set_trace(b->c, trace, b);
    b->autorespond = true;
    assert_int_equal(lep_conn_open(a->c), 0);
    assert_int_equal(lep_session_new(a->c, &a->ssn), 0);
    assert_int_equal(lep_session_begin(a->ssn), 0);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "link-1";
    lo.receiver = a_receiver;
    lo.snd_settle_mode = snd;
    lo.rcv_settle_mode = rcv;
    lep_source_t src;
    lep_source_init(&src);
    src.present = LEP_SOURCE_HAS_ADDRESS | LEP_SOURCE_HAS_DURABLE | LEP_SOURCE_HAS_TIMEOUT;
    /* address is an encoded string: 0xa1 len bytes */
    static const uint8_t addr_src[] = {0xa1, 3, 's', 'r', 'c'};
    static const uint8_t addr_tgt[] = {0xa1, 6, 'q', 'u', 'e', 'u', 'e', '1'};
    src.address = LEP_BYTES(addr_src, sizeof addr_src);
    src.durable = LEP_TERMINUS_DURABILITY_UNSETTLED_STATE;
    src.timeout = 30;
    lep_target_t tgt;
    lep_target_init(&tgt);
    tgt.present = LEP_TARGET_HAS_ADDRESS;
    tgt.address = LEP_BYTES(addr_tgt, sizeof addr_tgt);
    lo.source = &src;
    lo.target = &tgt;
    /* unsettled map {binary "t1": accepted} */
    static const uint8_t unsettled[] = {0xc1, 0x09, 0x02, 0xa0, 0x02, 't', '1',
                                        0x00, 0x53, 0x24, 0x45};
    lo.unsettled = LEP_BYTES(unsettled, sizeof unsettled);
    static const uint8_t props[] = {0xc1, 0x05, 0x02, 0xa3, 0x01, 'p', 0x41};
    lo.properties = LEP_BYTES(props, sizeof props);
    assert_int_equal(lep_link_new(a->ssn, &lo, &a->link), 0);
    assert_int_equal(lep_link_attach(a->link), 0);
    pump(a, b);
    assert_non_null(b->link);
    assert_int_equal(lep_link_remote_state(a->link), LEP_STATE_ACTIVE);
    assert_int_equal(lep_link_local_state(b->link), LEP_STATE_ACTIVE);
}

static void
teardown_pair(peer_t *a, peer_t *b)
{
    if (lep_conn_local_state(a->c) != LEP_STATE_CLOSED)
        lep_conn_close(a->c, NULL);
    pump(a, b);
    if (lep_conn_local_state(b->c) != LEP_STATE_CLOSED)
        lep_conn_close(b->c, NULL);
    pump(a, b);
    assert_true(lep_conn_finished(a->c));
    assert_true(lep_conn_finished(b->c));
    lep_conn_free(a->c);
    lep_conn_free(b->c);
}

static bool
saw_error(const peer_t *p)
{
    return count(p, LEP_EVENT_TRANSPORT_ERROR) > 0;
}

static lep_delivery_t *
last_delivery(peer_t *p)
{
    for (int i = p->nev - 1; i >= 0; i--)
        if (p->ev[i].type == LEP_EVENT_DELIVERY)
            return p->ev[i].delivery;
    return NULL;
}

/* ------------------------------------------------------------------ */

static void
test_attach_termini(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    assert_true(lep_link_is_receiver(b.link));
    assert_true(lep_bytes_eq_str(lep_link_name(b.link), "link-1"));
    const lep_source_t *s = lep_link_remote_source(b.link);
    const lep_target_t *t = lep_link_remote_target(b.link);
    assert_non_null(s);
    assert_non_null(t);
    assert_int_equal(s->durable, LEP_TERMINUS_DURABILITY_UNSETTLED_STATE);
    assert_int_equal(s->timeout, 30);
    assert_int_equal(t->address.len, 8);
    assert_memory_equal(t->address.ptr + 2, "queue1", 6);
    /* b echoed the termini */
    const lep_target_t *t2 = lep_link_remote_target(a.link);
    assert_non_null(t2);
    assert_memory_equal(t2->address.ptr + 2, "queue1", 6);
    assert_non_null(lep_link_target(a.link));
    const lep_attach_t *ra = lep_link_remote_attach(b.link);
    assert_non_null(ra);
    assert_true(ra->present & LEP_ATTACH_HAS_UNSETTLED);
    assert_int_equal(ra->unsettled.len, 11);
    assert_int_equal(ra->properties.len, 7);
    assert_int_equal(count(&a, LEP_EVENT_SESSION_REMOTE_BEGIN), 1);
    assert_int_equal(count(&a, LEP_EVENT_LINK_REMOTE_ATTACH), 1);
    /* detach with close and a condition */
    lep_condition_t cond = {lep_bytes_str("amqp:not-found"), lep_bytes_str("gone"), {NULL, 0}};
    assert_int_equal(lep_link_detach(a.link, true, &cond), 0);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_LINK_REMOTE_DETACH), 1);
    assert_true(lep_link_remote_closed(b.link));
    assert_true(lep_bytes_eq_str(lep_link_remote_condition(b.link)->name, "amqp:not-found"));
    assert_true(lep_bytes_eq_str(lep_link_remote_condition(b.link)->description, "gone"));
    assert_int_equal(lep_link_detach(b.link, true, NULL), 0);
    pump(&a, &b);
    assert_true(lep_link_remote_closed(a.link));
    assert_int_equal(lep_link_free(a.link), 0);
    assert_int_equal(lep_link_free(b.link), 0);
    /* end the session */
    assert_int_equal(lep_session_end(a.ssn, NULL), 0);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_int_equal(lep_session_end(b.ssn, NULL), 0);
    pump(&a, &b);
    assert_int_equal(lep_session_remote_state(a.ssn), LEP_STATE_CLOSED);
    assert_int_equal(lep_session_free(a.ssn), 0);
    teardown_pair(&a, &b);
}

/* Every source field through attach, and a dynamic source answered with
 * an address the receiving side makes up. */
static void
test_full_termini_dynamic(void **state)
{
    (void)state;
    peer_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    ob.server = true;
    assert_int_equal(lep_conn_new(&a.c, &oa), 0);
    assert_int_equal(lep_conn_new(&b.c, &ob), 0);
    lep_conn_open(a.c);
    lep_session_new(a.c, &a.ssn);
    lep_session_begin(a.ssn);
    lep_source_t src;
    lep_source_init(&src);
    static const uint8_t dnp[] = {0xc1, 0x07, 0x02, 0xa3, 0x01, 'x', 0xa1, 0x01, 'y'};
    static const uint8_t filter[] = {0xc1, 0x0c, 0x02, 0xa3, 0x01, 'f', 0x00, 0x53, 0x46,
                                     0xa1, 0x03, 'a', '=', '1'};
    static const uint8_t released[] = {0x00, 0x53, 0x26, 0x45};
    static const uint8_t outcomes[] = {0xe0, 0x1e, 0x02, 0xa3, 0x0d, 'a', 'm', 'q', 'p', ':',
                                       'a', 'c', 'c', 'e', 'p', 't', 'e', 'd',
                                       0x0d, 'a', 'm', 'q', 'p', ':', 'r', 'e', 'l', 'e', 'a',
                                       's', 'e', 'd'};
    static const uint8_t caps[] = {0xa3, 0x05, 'q', 'u', 'e', 'u', 'e'};
    src.present = LEP_SOURCE_ALL & ~LEP_SOURCE_HAS_ADDRESS;
    src.durable = LEP_TERMINUS_DURABILITY_CONFIGURATION;
    src.expiry_policy = lep_bytes_str(LEP_TERMINUS_EXPIRY_POLICY_NEVER);
    src.timeout = 60;
    src.dynamic = true;
    src.dynamic_node_properties = LEP_BYTES(dnp, sizeof dnp);
    src.distribution_mode = lep_bytes_str(LEP_STD_DIST_MODE_COPY);
    src.filter = LEP_BYTES(filter, sizeof filter);
    src.default_outcome = LEP_BYTES(released, sizeof released);
    src.outcomes = LEP_BYTES(outcomes, sizeof outcomes);
    src.capabilities = LEP_BYTES(caps, sizeof caps);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "dyn";
    lo.receiver = true;
    lo.source = &src;
    assert_int_equal(lep_link_new(a.ssn, &lo, &a.link), 0);
    lep_link_attach(a.link);
    for (int i = 0; i < 20; i++) {
        move(a.c, b.c);
        const lep_event_t *e;
        while ((e = lep_conn_next_event(b.c))) {
            if (e->type == LEP_EVENT_CONN_REMOTE_OPEN)
                lep_conn_open(b.c);
            else if (e->type == LEP_EVENT_SESSION_REMOTE_BEGIN)
                lep_session_begin(e->session);
            else if (e->type == LEP_EVENT_LINK_REMOTE_ATTACH) {
                b.link = e->link;
                const lep_source_t *rs = lep_link_remote_source(e->link);
                assert_non_null(rs);
                assert_true(rs->dynamic);
                assert_int_equal(rs->durable, LEP_TERMINUS_DURABILITY_CONFIGURATION);
                assert_true(lep_bytes_eq_str(rs->expiry_policy, "never"));
                assert_int_equal(rs->timeout, 60);
                assert_true(lep_bytes_eq_str(rs->distribution_mode, "copy"));
                assert_int_equal(rs->dynamic_node_properties.len, sizeof dnp);
                assert_int_equal(rs->filter.len, sizeof filter);
                assert_memory_equal(rs->filter.ptr, filter, sizeof filter);
                assert_int_equal(rs->default_outcome.len, sizeof released);
                assert_int_equal(rs->capabilities.len, sizeof caps);
                assert_int_equal(rs->outcomes.len, sizeof outcomes);
                /* answer with a made-up address */
                lep_source_t mine = *rs;
                static const uint8_t addr[] = {0xa1, 0x04, 't', 'm', 'p', '1'};
                mine.present |= LEP_SOURCE_HAS_ADDRESS;
                mine.address = LEP_BYTES(addr, sizeof addr);
                assert_int_equal(lep_link_set_source(e->link, &mine), 0);
                assert_int_equal(lep_link_attach(e->link), 0);
                assert_int_equal(lep_link_set_source(e->link, &mine), LEP_ERR_STATE);
            }
        }
        move(b.c, a.c);
        drain_events(&a);
    }
    assert_non_null(b.link);
    const lep_source_t *got = lep_link_remote_source(a.link);
    assert_non_null(got);
    assert_int_equal(got->address.len, 6);
    assert_memory_equal(got->address.ptr + 2, "tmp1", 4);
    assert_true(got->dynamic);
    assert_null(lep_link_remote_target(a.link));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
test_at_least_once(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_link_credit(a.link), 0);
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "x", 1, false, NULL), LEP_ERR_STATE);
    assert_int_equal(lep_link_flow(b.link, 10), 0);
    pump(&a, &b);
    assert_true(count(&a, LEP_EVENT_LINK_FLOW) >= 1);
    assert_int_equal(lep_link_credit(a.link), 10);
    lep_delivery_t *sd[5];
    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d", i);
        assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), msg, (size_t)n, false, &sd[i]), 0);
        assert_non_null(sd[i]);
    }
    assert_int_equal(lep_link_credit(a.link), 5);
    assert_int_equal(lep_link_unsettled(a.link), 5);
    pump(&a, &b);
    int got = 0;
    for (int i = 0; i < b.nev; i++) {
        if (b.ev[i].type != LEP_EVENT_DELIVERY)
            continue;
        lep_delivery_t *d = b.ev[i].delivery;
        char want[32];
        int n = snprintf(want, sizeof want, "message %d", got);
        lep_bytes_t data = lep_delivery_data(d);
        assert_int_equal(data.len, n);
        assert_memory_equal(data.ptr, want, (size_t)n);
        assert_false(lep_delivery_partial(d));
        assert_false(lep_delivery_remote_settled(d));
        assert_int_equal(lep_delivery_accept(d), 0);
        assert_int_equal(lep_delivery_settle(d), 0);
        got++;
    }
    assert_int_equal(got, 5);
    assert_int_equal(lep_link_credit(b.link), 5);
    b.dispositions = 0;
    a.nev = 0;
    pump(&a, &b);
    assert_int_equal(b.dispositions, 1); /* one range for all five */
    for (int i = 0; i < 5; i++) {
        assert_true(lep_delivery_remote_settled(sd[i]));
        assert_int_equal(lep_delivery_remote_state(sd[i])->type, LEP_OUTCOME_ACCEPTED);
        assert_int_equal(lep_delivery_settle(sd[i]), 0);
    }
    assert_int_equal(count(&a, LEP_EVENT_DELIVERY), 5);
    assert_int_equal(lep_link_unsettled(a.link), 0);
    a.dispositions = 0;
    pump(&a, &b);
    assert_int_equal(a.dispositions, 0); /* nothing to say: the receiver settled first */
    teardown_pair(&a, &b);
}

static void
test_at_most_once(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_SETTLED, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_link_snd_settle_mode(b.link), LEP_SND_SETTLE_SETTLED);
    lep_link_flow(b.link, 3);
    pump(&a, &b);
    lep_delivery_t *d = (lep_delivery_t *)1;
    assert_int_equal(lep_link_send(a.link, lep_bytes_str("t1"), "hello", 5, true, &d), 0);
    assert_null(d);
    assert_int_equal(lep_link_unsettled(a.link), 0);
    pump(&a, &b);
    lep_delivery_t *r = last_delivery(&b);
    assert_non_null(r);
    assert_true(lep_delivery_remote_settled(r));
    assert_true(lep_bytes_eq_str(lep_delivery_tag(r), "t1"));
    assert_int_equal(lep_delivery_settle(r), 0);
    b.dispositions = 0;
    pump(&a, &b);
    assert_int_equal(b.dispositions, 0);
    assert_int_equal(lep_link_unsettled(b.link), 0);
    teardown_pair(&a, &b);
}

static void
test_exactly_once(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_SECOND);
    assert_int_equal(lep_link_rcv_settle_mode(a.link), LEP_RCV_SETTLE_SECOND);
    assert_int_equal(lep_link_rcv_settle_mode(b.link), LEP_RCV_SETTLE_SECOND);
    lep_link_flow(b.link, 1);
    pump(&a, &b);
    lep_delivery_t *sd;
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "once", 4, false, &sd), 0);
    pump(&a, &b);
    lep_delivery_t *rd = last_delivery(&b);
    assert_non_null(rd);
    /* receiver: accept, do not settle */
    assert_int_equal(lep_delivery_accept(rd), 0);
    pump(&a, &b);
    assert_true(lep_delivery_updated(sd) || lep_delivery_remote_state(sd)->type == LEP_OUTCOME_ACCEPTED);
    assert_int_equal(lep_delivery_remote_state(sd)->type, LEP_OUTCOME_ACCEPTED);
    assert_false(lep_delivery_remote_settled(sd));
    /* sender settles */
    b.nev = 0;
    assert_int_equal(lep_delivery_settle(sd), 0);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_DELIVERY), 1);
    assert_true(lep_delivery_remote_settled(rd));
    /* receiver settles last: nothing more on the wire */
    b.dispositions = 0;
    assert_int_equal(lep_delivery_settle(rd), 0);
    pump(&a, &b);
    assert_int_equal(b.dispositions, 0);
    assert_int_equal(lep_link_unsettled(a.link), 0);
    assert_int_equal(lep_link_unsettled(b.link), 0);
    teardown_pair(&a, &b);
}

static void
test_outcomes(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_FIRST);
    lep_link_flow(b.link, 4);
    pump(&a, &b);
    lep_delivery_t *sd[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "m", 1, false, &sd[i]), 0);
    pump(&a, &b);
    lep_delivery_t *rd[4];
    int n = 0;
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_DELIVERY)
            rd[n++] = b.ev[i].delivery;
    assert_int_equal(n, 4);
    lep_outcome_t o;
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_REJECTED;
    o.error.name = lep_bytes_str("amqp:invalid-field");
    o.error.description = lep_bytes_str("bad body");
    assert_int_equal(lep_delivery_update(rd[0], &o), 0);
    assert_int_equal(lep_delivery_release(rd[1]), 0);
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_MODIFIED;
    o.delivery_failed = true;
    o.undeliverable_here = true;
    static const uint8_t ann[] = {0xc1, 0x05, 0x02, 0xa3, 0x01, 'k', 0x41};
    o.annotations = LEP_BYTES(ann, sizeof ann);
    assert_int_equal(lep_delivery_update(rd[2], &o), 0);
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_RECEIVED;
    o.section_number = 2;
    o.section_offset = 77;
    assert_int_equal(lep_delivery_update(rd[3], &o), 0);
    for (int i = 0; i < 3; i++)
        lep_delivery_settle(rd[i]);
    pump(&a, &b);
    const lep_outcome_t *r = lep_delivery_remote_state(sd[0]);
    assert_int_equal(r->type, LEP_OUTCOME_REJECTED);
    assert_true(lep_bytes_eq_str(r->error.name, "amqp:invalid-field"));
    assert_true(lep_bytes_eq_str(r->error.description, "bad body"));
    assert_int_equal(lep_delivery_remote_state(sd[1])->type, LEP_OUTCOME_RELEASED);
    r = lep_delivery_remote_state(sd[2]);
    assert_int_equal(r->type, LEP_OUTCOME_MODIFIED);
    assert_true(r->delivery_failed);
    assert_true(r->undeliverable_here);
    assert_int_equal(r->annotations.len, sizeof ann);
    r = lep_delivery_remote_state(sd[3]);
    assert_int_equal(r->type, LEP_OUTCOME_RECEIVED);
    assert_int_equal(r->section_number, 2);
    assert_int_equal(r->section_offset, 77);
    assert_false(lep_delivery_remote_settled(sd[3]));
    assert_true(lep_delivery_remote_settled(sd[0]));
    lep_delivery_settle(rd[3]);
    for (int i = 0; i < 4; i++)
        lep_delivery_settle(sd[i]);
    pump(&a, &b);
    teardown_pair(&a, &b);
}

static void
test_multiframe_streaming(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 512, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_conn_max_frame_size(a.c), 512);
    lep_link_flow(b.link, 1);
    pump(&a, &b);
    size_t len = 100 * 1024;
    uint8_t *msg = malloc(len);
    for (size_t i = 0; i < len; i++)
        msg[i] = (uint8_t)(i * 7 + (i >> 9));
    lep_delivery_t *sd;
    assert_int_equal(lep_link_send(a.link, lep_bytes_str("big"), msg, len, false, &sd), 0);
    /* stream: move a few KB at a time and read as it arrives */
    size_t got = 0;
    int partial_events = 0;
    lep_delivery_t *rd = NULL;
    for (int guard = 0; guard < 100000; guard++) {
        lep_bytes_t out = lep_conn_output(a.c);
        size_t n = out.len > 3000 ? 3000 : out.len;
        if (n) {
            size_t used;
            lep_conn_feed(b.c, out.ptr, n, &used);
            lep_conn_consumed(a.c, n);
        }
        const lep_event_t *e;
        while ((e = lep_conn_next_event(b.c))) {
            if (e->type != LEP_EVENT_DELIVERY)
                continue;
            rd = e->delivery;
            lep_bytes_t data = lep_delivery_data(rd);
            assert_true(got + data.len <= len);
            assert_memory_equal(data.ptr, msg + got, data.len);
            got += data.len;
            lep_delivery_consume(rd, data.len);
            if (lep_delivery_partial(rd))
                partial_events++;
        }
        move(b.c, a.c);
        if (!n && got == len)
            break;
    }
    assert_int_equal(got, len);
    assert_true(partial_events > 10);
    assert_true(a.transfers >= 200);
    assert_false(lep_delivery_partial(rd));
    assert_true(lep_bytes_eq_str(lep_delivery_tag(rd), "big"));
    lep_delivery_accept(rd);
    lep_delivery_settle(rd);
    pump(&a, &b);
    assert_true(lep_delivery_remote_settled(sd));
    lep_delivery_settle(sd);
    free(msg);
    teardown_pair(&a, &b);
}

static void
test_streaming_write_abort(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 512, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_FIRST);
    lep_link_flow(b.link, 2);
    pump(&a, &b);
    lep_delivery_t *sd;
    assert_int_equal(lep_link_delivery_new(a.link, lep_bytes_str("s1"), &sd), 0);
    assert_int_equal(lep_link_queued(a.link), 1);
    char piece[300];
    memset(piece, 'a', sizeof piece);
    assert_int_equal(lep_delivery_write(sd, piece, sizeof piece, true), 0);
    assert_int_equal(lep_delivery_write(sd, piece, sizeof piece, true), 0);
    pump(&a, &b);
    lep_delivery_t *rd = last_delivery(&b);
    assert_non_null(rd);
    assert_true(lep_delivery_partial(rd));
    assert_int_equal(lep_delivery_data(rd).len, 600);
    assert_int_equal(lep_delivery_abort(sd), 0);
    pump(&a, &b);
    assert_true(lep_delivery_aborted(rd));
    assert_false(lep_delivery_partial(rd));
    lep_delivery_settle(rd);
    lep_delivery_settle(sd);
    /* second delivery written in pieces and finished */
    assert_int_equal(lep_link_credit(a.link), 1);
    assert_int_equal(lep_link_delivery_new(a.link, lep_bytes_str("s2"), &sd), 0);
    assert_int_equal(lep_delivery_write(sd, "abc", 3, true), 0);
    assert_int_equal(lep_delivery_write(sd, "def", 3, false), 0);
    assert_int_equal(lep_delivery_write(sd, "x", 1, false), LEP_ERR_STATE);
    pump(&a, &b);
    rd = last_delivery(&b);
    assert_false(lep_delivery_partial(rd));
    assert_false(lep_delivery_aborted(rd));
    assert_int_equal(lep_delivery_data(rd).len, 6);
    assert_memory_equal(lep_delivery_data(rd).ptr, "abcdef", 6);
    lep_delivery_accept(rd);
    lep_delivery_settle(rd);
    pump(&a, &b);
    lep_delivery_settle(sd);
    teardown_pair(&a, &b);
}

static void
test_drain(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_SETTLED, LEP_RCV_SETTLE_FIRST);
    lep_link_flow(b.link, 5);
    lep_link_drain(b.link);
    assert_true(lep_link_draining(b.link));
    pump(&a, &b);
    assert_true(lep_link_draining(a.link));
    assert_int_equal(lep_link_credit(a.link), 5);
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "1", 1, true, NULL), 0);
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "2", 1, true, NULL), 0);
    assert_int_equal(lep_link_drained(a.link), 0);
    assert_int_equal(lep_link_credit(a.link), 0);
    b.nev = 0;
    pump(&a, &b);
    assert_true(count(&b, LEP_EVENT_LINK_FLOW) >= 1);
    assert_int_equal(lep_link_credit(b.link), 0);
    assert_false(lep_link_draining(b.link));
    assert_int_equal(count(&b, LEP_EVENT_DELIVERY), 2);
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_DELIVERY)
            lep_delivery_settle(b.ev[i].delivery);
    /* new credit after the drain */
    lep_link_flow(b.link, 2);
    pump(&a, &b);
    assert_int_equal(lep_link_credit(a.link), 2);
    teardown_pair(&a, &b);
}

static void
test_receiver_initiated(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, true, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    assert_false(lep_link_is_receiver(b.link));
    lep_link_flow(a.link, 100);
    pump(&a, &b);
    assert_int_equal(lep_link_credit(b.link), 100);
    for (int i = 0; i < 50; i++)
        assert_int_equal(lep_link_send(b.link, lep_bytes_str(""), "pp", 2, false, NULL), 0);
    pump(&a, &b);
    assert_int_equal(count(&a, LEP_EVENT_DELIVERY), 50);
    for (int i = 0; i < a.nev; i++)
        if (a.ev[i].type == LEP_EVENT_DELIVERY) {
            lep_delivery_accept(a.ev[i].delivery);
            lep_delivery_settle(a.ev[i].delivery);
        }
    a.dispositions = 0;
    pump(&a, &b);
    assert_int_equal(a.dispositions, 1);
    /* the sender learns and releases its deliveries when it settles */
    int settled = 0;
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_DELIVERY && lep_delivery_remote_settled(b.ev[i].delivery)) {
            lep_delivery_settle(b.ev[i].delivery);
            settled++;
        }
    assert_int_equal(settled, 50);
    assert_int_equal(lep_link_unsettled(b.link), 0);
    teardown_pair(&a, &b);
}

static void
test_many_sessions_links(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_session_t *ss[5];
    lep_link_t *ls[5][3];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lep_session_new(a.c, &ss[i]), 0);
        assert_int_equal(lep_session_begin(ss[i]), 0);
        for (int j = 0; j < 3; j++) {
            char name[32];
            snprintf(name, sizeof name, "l-%d-%d", i, j);
            lep_link_opts_t lo;
            lep_link_opts_init(&lo);
            lo.name = name;
            lo.receiver = j == 1;
            assert_int_equal(lep_link_new(ss[i], &lo, &ls[i][j]), 0);
            assert_int_equal(lep_link_attach(ls[i][j]), 0);
        }
    }
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_SESSION_REMOTE_BEGIN), 6);
    assert_int_equal(count(&b, LEP_EVENT_LINK_REMOTE_ATTACH), 16);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            assert_int_equal(lep_link_remote_state(ls[i][j]), LEP_STATE_ACTIVE);
    assert_int_equal(lep_session_end(ss[2], NULL), 0);
    pump(&a, &b);
    teardown_pair(&a, &b);
}

/* ------------------------------------------------------------------ */
/* Protocol violations: hand-made frames fed to b.                    */

static void
inject(peer_t *to, uint16_t ch, const lep_performative_t *p, lep_bytes_t payload)
{
    lep_buf_t body, frame;
    lep_buf_init(&body);
    lep_buf_init(&frame);
    lep_encoder_t e;
    lep_encoder_init(&e, &body);
    lep_performative_encode(&e, p);
    assert_int_equal(lep_encoder_finish(&e), 0);
    assert_int_equal(lep_frame_append(&frame, LEP_FRAME_AMQP, ch, lep_buf_bytes(&body), payload,
                                      UINT32_MAX),
                     0);
    size_t used;
    lep_conn_feed(to->c, frame.data, frame.len, &used);
    lep_buf_fini(&body);
    lep_buf_fini(&frame);
}

static void
transfer_perf(lep_performative_t *p, uint32_t handle, uint32_t id)
{
    p->code = LEP_DESC_TRANSFER;
    lep_transfer_init(&p->u.transfer);
    p->u.transfer.present = LEP_TRANSFER_HAS_HANDLE | LEP_TRANSFER_HAS_DELIVERY_ID |
                            LEP_TRANSFER_HAS_DELIVERY_TAG;
    p->u.transfer.handle = handle;
    p->u.transfer.delivery_id = id;
    p->u.transfer.delivery_tag = lep_bytes_str("x");
}

static void
test_transfer_without_credit(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_performative_t p;
    transfer_perf(&p, 0, 0);
    inject(&b, 0, &p, lep_bytes_str("payload"));
    pump(&a, &b);
    /* taken, not refused with transfer-limit-exceeded: RabbitMQ 3.x sends
     * a few transfers beyond the credit (rabbitmq-server#2597) */
    assert_int_equal(count(&a, LEP_EVENT_LINK_REMOTE_DETACH), 0);
    assert_int_equal(count(&b, LEP_EVENT_DELIVERY), 1);
    assert_int_equal(lep_link_credit(b.link), 0);
    teardown_pair(&a, &b);
}

static void
test_transfer_unknown_handle(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_performative_t p;
    transfer_perf(&p, 7, 0);
    inject(&b, 0, &p, lep_bytes_str("payload"));
    pump(&a, &b);
    assert_int_equal(count(&a, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_true(lep_bytes_eq_str(lep_session_remote_condition(a.ssn)->name,
                                 LEP_AMQP_ERR_SESSION_UNATTACHED_HANDLE));
    teardown_pair(&a, &b);
}

static void
test_window_violation(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_flow(b.link, 100000);
    pump(&a, &b);
    /* b's incoming window is 2048 frames; 2100 in one batch of input,
     * before b could reopen it, violate it. */
    lep_buf_t all, body;
    lep_buf_init(&all);
    lep_buf_init(&body);
    for (uint32_t i = 0; i < 2100; i++) {
        lep_performative_t p;
        transfer_perf(&p, 0, i);
        p.u.transfer.present |= LEP_TRANSFER_HAS_SETTLED;
        p.u.transfer.settled = true;
        lep_buf_clear(&body);
        lep_encoder_t e;
        lep_encoder_init(&e, &body);
        lep_performative_encode(&e, &p);
        assert_int_equal(lep_frame_append(&all, LEP_FRAME_AMQP, 0, lep_buf_bytes(&body),
                                          lep_bytes_str("m"), UINT32_MAX), 0);
    }
    size_t used;
    lep_conn_feed(b.c, all.data, all.len, &used);
    lep_buf_fini(&all);
    lep_buf_fini(&body);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_DELIVERY), 2048);
    assert_int_equal(count(&a, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_true(lep_bytes_eq_str(lep_session_remote_condition(a.ssn)->name,
                                 LEP_AMQP_ERR_SESSION_WINDOW_VIOLATION));
    teardown_pair(&a, &b);
}

static void
test_message_size_exceeded(void **state)
{
    (void)state;
    peer_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    ob.server = true;
    ob.max_message_size = 1000;
    assert_int_equal(lep_conn_new(&a.c, &oa), 0);
    assert_int_equal(lep_conn_new(&b.c, &ob), 0);
    b.autorespond = true;
    lep_conn_open(a.c);
    lep_session_new(a.c, &a.ssn);
    lep_session_begin(a.ssn);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "big";
    lep_link_new(a.ssn, &lo, &a.link);
    lep_link_attach(a.link);
    pump(&a, &b);
    assert_int_equal(lep_link_remote_attach(a.link)->max_message_size, 1000);
    lep_link_flow(b.link, 2);
    pump(&a, &b);
    static uint8_t big[5000];
    /* a knows b's limit and refuses itself... */
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), big, sizeof big, false, NULL),
                     LEP_ERR_LIMIT);
    lep_delivery_t *sd;
    assert_int_equal(lep_link_delivery_new(a.link, lep_bytes_str("s"), &sd), 0);
    assert_int_equal(lep_delivery_write(sd, big, 800, true), 0);
    assert_int_equal(lep_delivery_write(sd, big, 800, true), LEP_ERR_LIMIT);
    assert_int_equal(lep_delivery_abort(sd), 0);
    assert_int_equal(lep_delivery_settle(sd), 0);
    pump(&a, &b);
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_DELIVERY && lep_delivery_aborted(b.ev[i].delivery))
            lep_delivery_settle(b.ev[i].delivery);
    b.nev = 0;
    /* ...and b enforces it on a peer that does not know it */
    a.link->remote_max_message_size = 0;
    assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), big, sizeof big, false, NULL), 0);
    pump(&a, &b);
    assert_int_equal(count(&a, LEP_EVENT_LINK_REMOTE_DETACH), 1);
    assert_true(lep_bytes_eq_str(lep_link_remote_condition(a.link)->name,
                                 LEP_AMQP_ERR_LINK_MESSAGE_SIZE_EXCEEDED));
    lep_delivery_t *rd = last_delivery(&b);
    if (rd) {
        assert_true(lep_delivery_aborted(rd));
        lep_delivery_settle(rd);
    }
    teardown_pair(&a, &b);
}

/* RabbitMQ's quirks, played by hand-made frames from b's side. */
static void
test_rabbitmq_quirks(void **state)
{
    (void)state;
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    /* its first flow to a sender has no delivery-count */
    lep_performative_t p;
    p.code = LEP_DESC_FLOW;
    lep_flow_init(&p.u.flow);
    p.u.flow.present = LEP_FLOW_HAS_INCOMING_WINDOW | LEP_FLOW_HAS_NEXT_OUTGOING_ID |
                       LEP_FLOW_HAS_OUTGOING_WINDOW | LEP_FLOW_HAS_HANDLE |
                       LEP_FLOW_HAS_LINK_CREDIT;
    p.u.flow.incoming_window = 100;
    p.u.flow.outgoing_window = 100;
    p.u.flow.handle = 0;
    p.u.flow.link_credit = 7;
    inject(&a, 0, &p, (lep_bytes_t){NULL, 0});
    drain_events(&a);
    assert_int_equal(lep_link_credit(a.link), 7);
    /* its answer to a closing detach lacks closed=true */
    assert_int_equal(lep_link_detach(a.link, true, NULL), 0);
    move(a.c, b.c); /* b's engine sees the detach; its answer is ours to fake */
    p.code = LEP_DESC_DETACH;
    lep_detach_init(&p.u.detach);
    p.u.detach.present = LEP_DETACH_HAS_HANDLE;
    p.u.detach.handle = 0;
    inject(&a, 0, &p, (lep_bytes_t){NULL, 0});
    drain_events(&a);
    assert_int_equal(lep_link_remote_state(a.link), LEP_STATE_CLOSED);
    assert_true(lep_link_remote_closed(a.link));
    assert_false(saw_error(&a));
    lep_conn_free(a.c);
    lep_conn_free(b.c);
}

static void
limits_pair(peer_t *a, peer_t *b, uint32_t sessions, uint32_t links, uint32_t unsettled)
{
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    ob.server = true;
    ob.max_sessions = sessions;
    ob.max_links = links;
    ob.max_unsettled = unsettled;
    assert_int_equal(lep_conn_new(&a->c, &oa), 0);
    assert_int_equal(lep_conn_new(&b->c, &ob), 0);
    b->autorespond = true;
    lep_conn_open(a->c);
    assert_int_equal(lep_session_new(a->c, &a->ssn), 0);
    assert_int_equal(lep_session_begin(a->ssn), 0);
    pump(a, b);
}

static void
test_limit_sessions(void **state)
{
    (void)state;
    peer_t a, b;
    limits_pair(&a, &b, 2, 0, 0);
    lep_session_t *s2, *s3;
    lep_session_new(a.c, &s2);
    lep_session_begin(s2);
    pump(&a, &b);
    assert_int_equal(lep_session_remote_state(s2), LEP_STATE_ACTIVE);
    lep_session_new(a.c, &s3);
    lep_session_begin(s3);
    pump(&a, &b);
    /* the third is begun and ended at once; the connection stays */
    assert_int_equal(lep_session_remote_state(s3), LEP_STATE_CLOSED);
    assert_true(lep_bytes_eq_str(lep_session_remote_condition(s3)->name,
                                 LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED));
    assert_int_equal(lep_conn_remote_state(a.c), LEP_STATE_ACTIVE);
    assert_int_equal(count(&b, LEP_EVENT_SESSION_REMOTE_BEGIN), 2);
    assert_int_equal(lep_session_end(s3, NULL), 0);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_SESSION_REMOTE_END), 0);
    /* a session ends, another may begin */
    assert_int_equal(lep_session_end(s2, NULL), 0);
    pump(&a, &b);
    assert_int_equal(count(&b, LEP_EVENT_SESSION_REMOTE_END), 1);
    assert_int_equal(lep_session_end(b.ssn, NULL), 0); /* b's side of s2 */
    pump(&a, &b);
    lep_session_t *s4;
    lep_session_new(a.c, &s4);
    lep_session_begin(s4);
    pump(&a, &b);
    assert_int_equal(lep_session_remote_state(s4), LEP_STATE_ACTIVE);
    teardown_pair(&a, &b);
}

static void
test_limit_links(void **state)
{
    (void)state;
    peer_t a, b;
    limits_pair(&a, &b, 0, 2, 0);
    lep_link_t *l[3];
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "l%d", i);
        lep_link_opts_t lo;
        lep_link_opts_init(&lo);
        lo.name = name;
        assert_int_equal(lep_link_new(a.ssn, &lo, &l[i]), 0);
    }
    /* b's begin said handle-max 1: a keeps to it */
    assert_int_equal(lep_link_attach(l[0]), 0);
    assert_int_equal(lep_link_attach(l[1]), 0);
    assert_int_equal(lep_link_attach(l[2]), LEP_ERR_LIMIT);
    pump(&a, &b);
    assert_int_equal(lep_link_remote_state(l[1]), LEP_STATE_ACTIVE);
    teardown_pair(&a, &b);
}

static void
test_limit_unsettled(void **state)
{
    (void)state;
    peer_t a, b;
    limits_pair(&a, &b, 0, 0, 4);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "u";
    assert_int_equal(lep_link_new(a.ssn, &lo, &a.link), 0);
    assert_int_equal(lep_link_attach(a.link), 0);
    pump(&a, &b);
    lep_link_flow(b.link, 10);
    pump(&a, &b);
    for (int i = 0; i < 6; i++)
        assert_int_equal(lep_link_send(a.link, lep_bytes_str(""), "m", 1, false, NULL), 0);
    pump(&a, &b); /* b never settles */
    assert_int_equal(count(&b, LEP_EVENT_DELIVERY), 4);
    assert_int_equal(lep_link_remote_state(a.link), LEP_STATE_CLOSED);
    assert_true(lep_bytes_eq_str(lep_link_remote_condition(a.link)->name,
                                 LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED));
    teardown_pair(&a, &b);
}

/* ------------------------------------------------------------------ */
/* Allocation failures: fail the n-th allocation, for every n, through a
 * whole open/attach/send/settle/close exchange.  Nothing may crash or
 * leak; calls may fail. */

static long alloc_countdown = -1;
static long live_allocs;
static bool alloc_failed;

static void *
t_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (alloc_countdown == 0) {
        alloc_failed = true;
        return NULL;
    }
    if (alloc_countdown > 0)
        alloc_countdown--;
    void *p = malloc(n);
    if (p)
        live_allocs++;
    return p;
}

static void *
t_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (alloc_countdown == 0) {
        alloc_failed = true;
        return NULL;
    }
    if (alloc_countdown > 0)
        alloc_countdown--;
    void *q = realloc(p, n);
    if (q && !p)
        live_allocs++;
    return q;
}

static void
t_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        live_allocs--;
    free(p);
}

static void
quiet_pump(lep_conn_t *a, lep_conn_t *b)
{
    for (int i = 0; i < 200; i++) {
        const lep_event_t *e;
        while ((e = lep_conn_next_event(a)))
            ;
        while ((e = lep_conn_next_event(b))) {
            switch (e->type) {
            case LEP_EVENT_CONN_REMOTE_OPEN:
                if (lep_conn_local_state(b) == LEP_STATE_UNINIT)
                    lep_conn_open(b);
                break;
            case LEP_EVENT_SESSION_REMOTE_BEGIN:
                if (lep_session_local_state(e->session) == LEP_STATE_UNINIT)
                    lep_session_begin(e->session);
                break;
            case LEP_EVENT_LINK_REMOTE_ATTACH:
                if (lep_link_local_state(e->link) == LEP_STATE_UNINIT) {
                    lep_link_attach(e->link);
                    lep_link_flow(e->link, 10);
                }
                break;
            case LEP_EVENT_DELIVERY:
                if (lep_delivery_link(e->delivery) && lep_link_is_receiver(e->link) &&
                    !lep_delivery_partial(e->delivery)) {
                    lep_delivery_accept(e->delivery);
                    lep_delivery_settle(e->delivery);
                }
                break;
            case LEP_EVENT_CONN_REMOTE_CLOSE:
                if (lep_conn_local_state(b) != LEP_STATE_CLOSED)
                    lep_conn_close(b, NULL);
                break;
            default:
                break;
            }
        }
        if (!move(a, b) + !move(b, a) == 2)
            break;
    }
}

/* Returns true when it ran to the end. */
static bool
alloc_scenario(void)
{
    lep_conn_t *a = NULL, *b = NULL;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.container_id = "a";
    ob.container_id = "b";
    ob.server = true;
    oa.max_frame_size = ob.max_frame_size = 512;
    bool ok = false;
    if (lep_conn_new(&a, &oa) != 0 || lep_conn_new(&b, &ob) != 0)
        goto out;
    lep_session_t *s;
    lep_link_t *l;
    if (lep_conn_open(a) != 0 || lep_session_new(a, &s) != 0 || lep_session_begin(s) != 0)
        goto out;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "l";
    lep_target_t t;
    lep_target_init(&t);
    static const uint8_t addr[] = {0xa1, 1, 'q'};
    t.present = LEP_TARGET_HAS_ADDRESS;
    t.address = LEP_BYTES(addr, sizeof addr);
    lo.target = &t;
    if (lep_link_new(s, &lo, &l) != 0 || lep_link_attach(l) != 0)
        goto out;
    quiet_pump(a, b);
    static uint8_t big[2000];
    lep_delivery_t *d[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (lep_link_send(l, LEP_BYTES(NULL, 0), big, i == 1 ? sizeof big : 10, false, &d[i]) != 0)
            goto out;
    quiet_pump(a, b);
    for (int i = 0; i < 3; i++)
        if (d[i] && lep_delivery_remote_settled(d[i]))
            lep_delivery_settle(d[i]);
    if (lep_conn_close(a, NULL) != 0)
        goto out;
    quiet_pump(a, b);
    ok = lep_conn_finished(a) && lep_conn_finished(b);
out:
    lep_conn_free(a);
    lep_conn_free(b);
    return ok;
}

static void
test_alloc_failures(void **state)
{
    (void)state;
    lep_allocator_t al = {t_malloc, t_realloc, t_free, NULL};
    lep_set_allocator(&al);
    alloc_countdown = -1;
    live_allocs = 0;
    assert_true(alloc_scenario());
    assert_int_equal(live_allocs, 0);
    long n;
    for (n = 0; n < 100000; n++) {
        alloc_countdown = n;
        alloc_failed = false;
        live_allocs = 0;
        bool ok = alloc_scenario();
        assert_int_equal(live_allocs, 0);
        if (!alloc_failed) {
            assert_true(ok);
            break;
        }
    }
    lep_set_allocator(NULL);
    print_message("allocation failures tried: %ld\n", n);
    assert_true(n > 10);
    assert_true(n < 100000);
}

/* The hot path allocates nothing: once buffers and the delivery pool are
 * warm, at-least-once messaging with batched dispositions runs without a
 * single call to the allocator. */
static long hot_allocs;
static void *
h_malloc(size_t n, void *ctx)
{
    (void)ctx;
    hot_allocs++;
    return malloc(n);
}
static void *
h_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    hot_allocs++;
    return realloc(p, n);
}
static void
h_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void
hot_round(peer_t *a, peer_t *b, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(lep_link_send(a->link, lep_bytes_str(""), "0123456789", 10, false, NULL), 0);
    for (int r = 0; r < 10; r++) {
        move(a->c, b->c);
        const lep_event_t *e;
        while ((e = lep_conn_next_event(b->c)))
            if (e->type == LEP_EVENT_DELIVERY) {
                lep_delivery_accept(e->delivery);
                lep_delivery_settle(e->delivery);
            }
        lep_link_flow(b->link, (uint32_t)n - lep_link_credit(b->link));
        move(b->c, a->c);
        while ((e = lep_conn_next_event(a->c)))
            if (e->type == LEP_EVENT_DELIVERY && lep_delivery_remote_settled(e->delivery))
                lep_delivery_settle(e->delivery);
    }
    assert_int_equal(lep_link_unsettled(a->link), 0);
    assert_int_equal(lep_link_credit(a->link), (uint32_t)n);
}

static void
test_no_allocation_per_message(void **state)
{
    (void)state;
    lep_allocator_t al = {h_malloc, h_realloc, h_free, NULL};
    lep_set_allocator(&al);
    peer_t a, b;
    setup(&a, &b, 0, false, LEP_SND_SETTLE_UNSETTLED, LEP_RCV_SETTLE_FIRST);
    lep_conn_set_trace(a.c, NULL, NULL);
    lep_conn_set_trace(b.c, NULL, NULL);
    lep_link_flow(b.link, 200);
    pump(&a, &b);
    a.nev = b.nev = 0;
    for (int i = 0; i < 5; i++)
        hot_round(&a, &b, 200); /* warm up */
    hot_allocs = 0;
    for (int i = 0; i < 20; i++)
        hot_round(&a, &b, 200);
    long n = hot_allocs;
    lep_set_allocator(NULL);
    assert_int_equal(n, 0);
    teardown_pair(&a, &b);
}

/* ------------------------------------------------------------------ */
/* Client side under damaged input: record what a server says in a full
 * exchange, then replay it to fresh clients with a few bytes changed and
 * cut into random pieces.  Nothing may crash, leak or hang. */

typedef struct recorder {
    lep_buf_t bytes;
} recorder_t;

static void
client_actions(lep_conn_t *c, lep_link_t **snd, lep_link_t **rcv)
{
    lep_session_t *s;
    lep_conn_open(c);
    if (lep_session_new(c, &s) != 0 || lep_session_begin(s) != 0)
        return;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "out";
    if (lep_link_new(s, &lo, snd) == 0)
        lep_link_attach(*snd);
    lo.name = "in";
    lo.receiver = true;
    if (lep_link_new(s, &lo, rcv) == 0) {
        lep_link_attach(*rcv);
        lep_link_flow(*rcv, 20);
    }
}

static void
client_events(lep_conn_t *c, lep_link_t *snd)
{
    const lep_event_t *e;
    while ((e = lep_conn_next_event(c))) {
        switch (e->type) {
        case LEP_EVENT_LINK_FLOW:
            if (e->link == snd)
                while (lep_link_credit(snd) > 2 && lep_link_unsettled(snd) < 3)
                    if (lep_link_send(snd, lep_bytes_str(""), "abc", 3, false, NULL) != 0)
                        break;
            break;
        case LEP_EVENT_DELIVERY:
            if (lep_delivery_remote_settled(e->delivery) || lep_link_is_receiver(e->link)) {
                if (lep_link_is_receiver(e->link))
                    lep_delivery_accept(e->delivery);
                lep_delivery_settle(e->delivery);
            }
            break;
        case LEP_EVENT_LINK_REMOTE_DETACH:
            if (lep_link_local_state(e->link) == LEP_STATE_ACTIVE)
                lep_link_detach(e->link, true, NULL);
            break;
        case LEP_EVENT_SESSION_REMOTE_END:
            if (lep_session_local_state(e->session) == LEP_STATE_ACTIVE)
                lep_session_end(e->session, NULL);
            break;
        case LEP_EVENT_CONN_REMOTE_CLOSE:
            if (lep_conn_local_state(c) != LEP_STATE_CLOSED)
                lep_conn_close(c, NULL);
            break;
        default:
            break;
        }
    }
}

/* One pass of the exchange from both sides: a's bytes to b, b's to a,
 * b's recorded. */
static void
record_step(peer_t *a, peer_t *b, lep_buf_t *rec)
{
    move(a->c, b->c);
    drain_events(b);
    const lep_event_t *e;
    lep_bytes_t o = lep_conn_output(b->c);
    lep_buf_append(rec, o.ptr, o.len);
    size_t used;
    lep_conn_feed(a->c, o.ptr, o.len, &used);
    lep_conn_consumed(b->c, o.len);
    while ((e = lep_conn_next_event(a->c)))
        ;
}

static void
test_damaged_server_stream(void **state)
{
    (void)state;
    /* record: a real exchange, all of b's output captured */
    peer_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    ob.server = true;
    oa.max_frame_size = ob.max_frame_size = 512;
    assert_int_equal(lep_conn_new(&a.c, &oa), 0);
    assert_int_equal(lep_conn_new(&b.c, &ob), 0);
    b.autorespond = true;
    lep_buf_t rec;
    lep_buf_init(&rec);
    lep_link_t *snd = NULL, *rcv = NULL;
    client_actions(a.c, &snd, &rcv);
    for (int i = 0; i < 10; i++)
        record_step(&a, &b, &rec);
    assert_non_null(b.link);
    lep_link_t *bsnd = NULL;
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_LINK_REMOTE_ATTACH && !lep_link_is_receiver(b.ev[i].link))
            bsnd = b.ev[i].link;
    assert_non_null(bsnd);
    for (int i = 0; i < b.nev; i++)
        if (b.ev[i].type == LEP_EVENT_LINK_REMOTE_ATTACH && lep_link_is_receiver(b.ev[i].link))
            lep_link_flow(b.ev[i].link, 5);
    record_step(&a, &b, &rec);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lep_link_send(snd, lep_bytes_str(""), "abc", 3, false, NULL), 0);
    static uint8_t big[1500];
    lep_link_send(bsnd, lep_bytes_str("b1"), big, sizeof big, false, NULL);
    for (int i = 0; i < 10; i++) {
        record_step(&a, &b, &rec);
        for (int j = 0; j < b.nev; j++)
            if (b.ev[j].type == LEP_EVENT_DELIVERY && lep_link_is_receiver(b.ev[j].link) &&
                !lep_delivery_remote_settled(b.ev[j].delivery)) {
                lep_delivery_accept(b.ev[j].delivery);
                lep_delivery_settle(b.ev[j].delivery);
            }
        b.nev = 0;
    }
    lep_link_detach(bsnd, true, NULL);
    lep_session_end(b.ssn, NULL);
    lep_conn_close(b.c, NULL);
    record_step(&a, &b, &rec);
    lep_conn_free(a.c);
    lep_conn_free(b.c);
    assert_true(rec.len > 500);

    uint32_t seed = 12345;
    uint8_t *m = malloc(rec.len);
    for (int it = 0; it < 3000; it++) {
        memcpy(m, rec.data, rec.len);
        int flips = it == 0 ? 0 : 1 + (int)(rnd(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = 8 + rnd(&seed) % (rec.len - 8);
            m[at] = (uint8_t)rnd(&seed);
        }
        lep_conn_t *c;
        lep_conn_opts_t oc;
        lep_conn_opts_init(&oc);
        oc.max_frame_size = 512;
        assert_int_equal(lep_conn_new(&c, &oc), 0);
        snd = rcv = NULL;
        client_actions(c, &snd, &rcv);
        size_t off = 0;
        while (off < rec.len) {
            size_t n = 1 + rnd(&seed) % 200;
            if (n > rec.len - off)
                n = rec.len - off;
            size_t used;
            if (lep_conn_feed(c, m + off, n, &used) != 0)
                break;
            off += n;
            client_events(c, snd);
            lep_bytes_t out = lep_conn_output(c);
            lep_conn_consumed(c, out.len);
        }
        if (it == 0) {
            /* the undamaged stream plays the whole exchange */
            assert_int_equal(lep_conn_remote_state(c), LEP_STATE_CLOSED);
            assert_false(lep_condition_set(lep_conn_local_condition(c)));
            assert_int_equal(lep_link_unsettled(snd), 0);
            assert_int_equal(lep_link_credit(snd), 2);
        }
        lep_conn_input_closed(c);
        client_events(c, snd);
        lep_bytes_t out = lep_conn_output(c);
        lep_conn_consumed(c, out.len);
        lep_conn_output_closed(c);
        client_events(c, snd);
        assert_true(lep_conn_finished(c));
        lep_conn_free(c);
    }
    free(m);
    lep_buf_fini(&rec);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_termini),
        cmocka_unit_test(test_full_termini_dynamic),
        cmocka_unit_test(test_at_least_once),
        cmocka_unit_test(test_at_most_once),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_multiframe_streaming),
        cmocka_unit_test(test_streaming_write_abort),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_receiver_initiated),
        cmocka_unit_test(test_many_sessions_links),
        cmocka_unit_test(test_transfer_without_credit),
        cmocka_unit_test(test_transfer_unknown_handle),
        cmocka_unit_test(test_window_violation),
        cmocka_unit_test(test_message_size_exceeded),
        cmocka_unit_test(test_rabbitmq_quirks),
        cmocka_unit_test(test_limit_sessions),
        cmocka_unit_test(test_limit_links),
        cmocka_unit_test(test_limit_unsettled),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_damaged_server_stream),
        cmocka_unit_test(test_no_allocation_per_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
