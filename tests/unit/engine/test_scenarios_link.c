/* Engine scenarios, link level: attach with full termini (dynamic nodes,
 * filters, outcomes, capabilities), settle modes, credit, drain and echo,
 * detach versus close, link errors and the per-session link limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pair.h"

typedef struct enc {
    lep_buf_t b;
    lep_encoder_t e;
} enc_t;

static lep_encoder_t *
enc_start(enc_t *x)
{
    lep_buf_init(&x->b);
    lep_encoder_init(&x->e, &x->b);
    return &x->e;
}

static lep_bytes_t
enc_done(enc_t *x)
{
    assert_int_equal(lep_encoder_error(&x->e), 0);
    return lep_buf_bytes(&x->b);
}

static void
enc_fini(enc_t *x)
{
    lep_buf_fini(&x->b);
}

static void
test_attach_full_termini(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);

    enc_t addr, filter, outcomes, caps, dout, tcaps, props, lcaps;
    lep_encode_cstring(enc_start(&addr), "queue/orders");
    lep_encoder_t *e = enc_start(&filter);
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "apache.org:selector-filter:string");
    lep_encode_descriptor_symbol(e, "apache.org:selector-filter:string");
    lep_encode_cstring(e, "colour = 'red'");
    lep_encode_map_end(e);
    e = enc_start(&outcomes);
    lep_encode_array_begin(e, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(e, "amqp:accepted:list");
    lep_encode_csymbol(e, "amqp:rejected:list");
    lep_encode_csymbol(e, "amqp:released:list");
    lep_encode_array_end(e);
    e = enc_start(&caps);
    lep_encode_array_begin(e, LEP_TYPE_SYMBOL);
    lep_encode_csymbol(e, "queue");
    lep_encode_csymbol(e, "shared");
    lep_encode_array_end(e);
    e = enc_start(&dout);
    lep_encode_descriptor(e, LEP_DESC_RELEASED);
    lep_encode_list_begin(e);
    lep_encode_list_end(e);
    lep_encode_csymbol(enc_start(&tcaps), "topic");
    e = enc_start(&props);
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "priority");
    lep_encode_int(e, 7);
    lep_encode_map_end(e);
    lep_encode_csymbol(enc_start(&lcaps), "SHARED-SUBS");

    lep_source_t src;
    lep_source_init(&src);
    src.present = LEP_SOURCE_ALL & ~(LEP_SOURCE_HAS_DYNAMIC | LEP_SOURCE_HAS_DYNAMIC_NODE_PROPERTIES);
    src.address = enc_done(&addr);
    src.durable = 2;
    src.expiry_policy = lep_bytes_str("never");
    src.timeout = 30;
    src.distribution_mode = lep_bytes_str("copy");
    src.filter = enc_done(&filter);
    src.default_outcome = enc_done(&dout);
    src.outcomes = enc_done(&outcomes);
    src.capabilities = enc_done(&caps);
    lep_target_t tgt;
    lep_target_init(&tgt);
    tgt.present = LEP_TARGET_HAS_ADDRESS | LEP_TARGET_HAS_DURABLE | LEP_TARGET_HAS_EXPIRY_POLICY |
                  LEP_TARGET_HAS_TIMEOUT | LEP_TARGET_HAS_CAPABILITIES;
    tgt.address = enc_done(&addr);
    tgt.durable = 1;
    tgt.expiry_policy = lep_bytes_str("link-detach");
    tgt.timeout = 5;
    tgt.capabilities = enc_done(&tcaps);

    lep_link_opts_t o;
    lep_link_opts_init(&o);
    o.name = "orders-in";
    o.receiver = true;
    o.source = &src;
    o.target = &tgt;
    o.max_message_size = 1 << 20;
    o.offered_capabilities = enc_done(&lcaps);
    o.desired_capabilities = enc_done(&lcaps);
    o.properties = enc_done(&props);
    lep_link_t *l;
    assert_int_equal(lep_link_new(s, &o, &l), 0);
    assert_true(lep_link_is_receiver(l));
    assert_true(lep_bytes_eq_str(lep_link_name(l), "orders-in"));
    assert_ptr_equal(lep_link_session(l), s);
    assert_int_equal(lep_link_local_state(l), LEP_STATE_UNINIT);
    assert_int_equal(lep_link_attach(l), 0);
    pair_pump(&p);

    lep_link_t *bl = pair_last_link(&p.b);
    assert_non_null(bl);
    assert_false(lep_link_is_receiver(bl)); /* the peer of a receiver sends */
    assert_true(lep_bytes_eq_str(lep_link_name(bl), "orders-in"));
    const lep_source_t *rs = lep_link_remote_source(bl);
    assert_non_null(rs);
    assert_true(lep_bytes_eq(rs->address, enc_done(&addr)));
    assert_int_equal(rs->durable, 2);
    assert_true(lep_bytes_eq_str(rs->expiry_policy, "never"));
    assert_int_equal(rs->timeout, 30);
    assert_false(rs->dynamic);
    assert_true(lep_bytes_eq_str(rs->distribution_mode, "copy"));
    assert_true(lep_bytes_eq(rs->filter, enc_done(&filter)));
    assert_true(lep_bytes_eq(rs->default_outcome, enc_done(&dout)));
    assert_true(lep_bytes_eq(rs->outcomes, enc_done(&outcomes)));
    assert_true(lep_bytes_eq(rs->capabilities, enc_done(&caps)));
    const lep_target_t *rt = lep_link_remote_target(bl);
    assert_non_null(rt);
    assert_true(lep_bytes_eq(rt->address, enc_done(&addr)));
    assert_int_equal(rt->durable, 1);
    assert_true(lep_bytes_eq_str(rt->expiry_policy, "link-detach"));
    assert_int_equal(rt->timeout, 5);
    assert_true(lep_bytes_eq(rt->capabilities, enc_done(&tcaps)));
    const lep_attach_t *ra = lep_link_remote_attach(bl);
    assert_non_null(ra);
    assert_true(ra->role); /* receiver */
    assert_int_equal(ra->max_message_size, 1 << 20);
    assert_true(lep_bytes_eq(ra->offered_capabilities, enc_done(&lcaps)));
    assert_true(lep_bytes_eq(ra->desired_capabilities, enc_done(&lcaps)));
    assert_true(lep_bytes_eq(ra->properties, enc_done(&props)));

    /* b echoed the termini (auto_answer attaches with NULL: echo) */
    assert_int_equal(pair_count(&p.a, LEP_EVENT_LINK_REMOTE_ATTACH), 1);
    assert_int_equal(lep_link_remote_state(l), LEP_STATE_ACTIVE);
    const lep_source_t *as = lep_link_remote_source(l);
    assert_non_null(as);
    assert_true(lep_bytes_eq(as->address, enc_done(&addr)));
    /* our own termini are kept */
    assert_true(lep_bytes_eq(lep_link_source(l)->filter, enc_done(&filter)));

    assert_true(pair_close(&p));
    pair_fini(&p);
    enc_fini(&addr);
    enc_fini(&filter);
    enc_fini(&outcomes);
    enc_fini(&caps);
    enc_fini(&dout);
    enc_fini(&tcaps);
    enc_fini(&props);
    enc_fini(&lcaps);
}

/* b's handler: a dynamic source gets an address made by the "broker". */
static lep_bytes_t dyn_addr;

static void
dynamic_handler(pair_t *p, pair_side_t *s, const lep_event_t *ev)
{
    (void)p;
    (void)s;
    if (ev->type != LEP_EVENT_LINK_REMOTE_ATTACH || lep_link_local_state(ev->link) != LEP_STATE_UNINIT)
        return;
    const lep_source_t *rs = lep_link_remote_source(ev->link);
    assert_non_null(rs);
    assert_true(rs->dynamic);
    lep_source_t src = *rs;
    src.address = dyn_addr;
    src.present |= LEP_SOURCE_HAS_ADDRESS;
    assert_int_equal(lep_link_set_source(ev->link, &src), 0);
}

static void
test_attach_dynamic(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    enc_t da, np;
    lep_encode_cstring(enc_start(&da), "temp-queue://0001");
    dyn_addr = enc_done(&da);
    lep_encoder_t *e = enc_start(&np);
    lep_encode_map_begin(e);
    lep_encode_csymbol(e, "lifetime-policy");
    lep_encode_descriptor(e, LEP_DESC_DELETE_ON_CLOSE);
    lep_encode_list_begin(e);
    lep_encode_list_end(e);
    lep_encode_map_end(e);
    p.b.handler = dynamic_handler;

    lep_source_t src;
    lep_source_init(&src);
    src.present = LEP_SOURCE_HAS_DYNAMIC | LEP_SOURCE_HAS_DYNAMIC_NODE_PROPERTIES;
    src.dynamic = true;
    src.dynamic_node_properties = enc_done(&np);
    lep_link_opts_t o;
    lep_link_opts_init(&o);
    o.name = "reply-to";
    o.receiver = true;
    o.source = &src;
    lep_link_t *l;
    assert_int_equal(lep_link_new(s, &o, &l), 0);
    assert_int_equal(lep_link_attach(l), 0);
    pair_pump(&p);

    lep_link_t *bl = pair_last_link(&p.b);
    assert_true(lep_bytes_eq(lep_link_remote_source(bl)->dynamic_node_properties, enc_done(&np)));
    assert_null(lep_link_remote_target(bl));
    const lep_source_t *as = lep_link_remote_source(l);
    assert_non_null(as);
    assert_true(as->present & LEP_SOURCE_HAS_ADDRESS);
    assert_true(lep_bytes_eq(as->address, enc_done(&da)));
    assert_true(pair_close(&p));
    pair_fini(&p);
    enc_fini(&da);
    enc_fini(&np);
}

static void
test_attach_unsettled_map(void **state)
{
    (void)state;
    /* resuming a link: the attach carries the sender's unsettled map */
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    enc_t m;
    lep_encoder_t *e = enc_start(&m);
    lep_encode_map_begin(e);
    lep_encode_binary(e, "tag-1", 5);
    lep_encode_descriptor(e, LEP_DESC_ACCEPTED);
    lep_encode_list_begin(e);
    lep_encode_list_end(e);
    lep_encode_binary(e, "tag-2", 5);
    lep_encode_null(e);
    lep_encode_map_end(e);
    lep_link_opts_t o;
    lep_link_opts_init(&o);
    o.name = "resumed";
    o.unsettled = enc_done(&m);
    o.incomplete_unsettled = true;
    lep_link_t *l;
    assert_int_equal(lep_link_new(s, &o, &l), 0);
    assert_int_equal(lep_link_attach(l), 0);
    pair_pump(&p);
    const lep_attach_t *ra = lep_link_remote_attach(pair_last_link(&p.b));
    assert_non_null(ra);
    assert_true(ra->present & LEP_ATTACH_HAS_UNSETTLED);
    assert_true(lep_bytes_eq(ra->unsettled, enc_done(&m)));
    assert_true(ra->incomplete_unsettled);
    assert_true(pair_close(&p));
    pair_fini(&p);
    enc_fini(&m);
}

static void
test_settle_modes_agreed(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *l1 = pair_link(&p, s, "presettled", false, "q", LEP_SND_SETTLE_SETTLED,
                               LEP_RCV_SETTLE_FIRST);
    lep_link_t *b1 = pair_last_link(&p.b);
    lep_link_t *l2 = pair_link(&p, s, "second", false, "q", LEP_SND_SETTLE_UNSETTLED,
                               LEP_RCV_SETTLE_SECOND);
    lep_link_t *b2 = pair_last_link(&p.b);
    assert_ptr_not_equal(b1, b2);
    assert_int_equal(lep_link_remote_attach(b1)->snd_settle_mode, LEP_SND_SETTLE_SETTLED);
    assert_int_equal(lep_link_snd_settle_mode(l1), LEP_SND_SETTLE_SETTLED);
    assert_int_equal(lep_link_snd_settle_mode(b1), LEP_SND_SETTLE_SETTLED);
    assert_int_equal(lep_link_remote_attach(b2)->rcv_settle_mode, LEP_RCV_SETTLE_SECOND);
    assert_int_equal(lep_link_rcv_settle_mode(l2), LEP_RCV_SETTLE_SECOND);
    assert_int_equal(lep_link_rcv_settle_mode(b2), LEP_RCV_SETTLE_SECOND);
    assert_int_equal(lep_link_snd_settle_mode(b2), LEP_SND_SETTLE_UNSETTLED);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_many_links(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    enum { N = 60 };
    lep_link_t *l[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "link-%d", i);
        lep_link_opts_t o;
        lep_link_opts_init(&o);
        o.name = name;
        o.receiver = i & 1;
        assert_int_equal(lep_link_new(s, &o, &l[i]), 0);
        lep_link_set_context(l[i], &l[i]);
        assert_int_equal(lep_link_attach(l[i]), 0);
    }
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_LINK_REMOTE_ATTACH), N);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_LINK_REMOTE_ATTACH), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(lep_link_remote_state(l[i]), LEP_STATE_ACTIVE);
        assert_ptr_equal(lep_link_context(l[i]), &l[i]);
    }
    /* every sender link of a's got credit from b */
    for (int i = 0; i < N; i += 2)
        assert_int_equal(lep_link_credit(l[i]), 100);
    /* detach all; handles can be reused by new links */
    for (int i = 0; i < N; i++)
        assert_int_equal(lep_link_detach(l[i], true, NULL), 0);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_LINK_REMOTE_DETACH), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(lep_link_free(l[i]), 0);
    lep_link_t *again = pair_link(&p, s, "again", false, "q", LEP_SND_SETTLE_MIXED,
                                  LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_link_remote_state(again), LEP_STATE_ACTIVE);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_credit_flow(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    p.b.auto_credit = 0;
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *snd = pair_link(&p, s, "s", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_t *rcv = pair_last_link(&p.b);
    assert_int_equal(lep_link_credit(snd), 0);
    assert_int_equal(lep_link_send(snd, LEP_BYTES(NULL, 0), "x", 1, false, NULL), LEP_ERR_STATE);

    size_t flows = pair_count(&p.a, LEP_EVENT_LINK_FLOW);
    assert_int_equal(lep_link_flow(rcv, 5), 0);
    pair_pump(&p);
    assert_true(pair_count(&p.a, LEP_EVENT_LINK_FLOW) > flows);
    assert_ptr_equal(pair_last(&p.a, LEP_EVENT_LINK_FLOW)->link, snd);
    assert_int_equal(lep_link_credit(snd), 5);
    for (int i = 0; i < 3; i++)
        assert_int_equal(lep_link_send(snd, LEP_BYTES("t", 1), "msg", 3, false, NULL), 0);
    assert_int_equal(lep_link_credit(snd), 2);
    pair_pump(&p);
    assert_int_equal(p.b.nrx, 3);
    /* more credit adds */
    assert_int_equal(lep_link_flow(rcv, 10), 0);
    pair_pump(&p);
    assert_int_equal(lep_link_credit(snd), 12);
    /* all credit used: the sender must stop */
    for (int i = 0; i < 12; i++)
        assert_int_equal(lep_link_send(snd, LEP_BYTES(NULL, 0), "m", 1, true, NULL), 0);
    assert_int_equal(lep_link_credit(snd), 0);
    assert_int_equal(lep_link_send(snd, LEP_BYTES(NULL, 0), "m", 1, true, NULL), LEP_ERR_STATE);
    pair_pump(&p);
    assert_int_equal(p.b.nrx, 15);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

typedef struct flow_seen {
    size_t n;
    lep_flow_t last;
    bool drain_seen;
} flow_seen_t;

static void
flow_cb(void *ctx, const lep_frame_t *f, int rc, const lep_performative_t *perf, lep_bytes_t pl)
{
    (void)f;
    (void)pl;
    flow_seen_t *x = (flow_seen_t *)ctx;
    if (rc == 0 && perf->code == LEP_DESC_FLOW && (perf->u.flow.present & LEP_FLOW_HAS_HANDLE)) {
        x->n++;
        x->last = perf->u.flow;
        if (perf->u.flow.drain)
            x->drain_seen = true;
    }
}

static void
test_drain(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    p.b.auto_credit = 0;
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *snd = pair_link(&p, s, "s", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_t *rcv = pair_last_link(&p.b);
    assert_int_equal(lep_link_flow(rcv, 10), 0);
    pair_pump(&p);
    assert_int_equal(lep_link_credit(snd), 10);
    assert_false(lep_link_draining(snd));
    assert_int_equal(lep_link_drain(rcv), 0);
    pair_pump(&p);
    assert_true(lep_link_draining(snd));
    flow_seen_t fb = {0};
    pair_frames(&p.b, flow_cb, &fb);
    assert_true(fb.drain_seen);

    /* the sender uses two credits and gives up the rest */
    assert_int_equal(lep_link_send(snd, LEP_BYTES(NULL, 0), "a", 1, true, NULL), 0);
    assert_int_equal(lep_link_send(snd, LEP_BYTES(NULL, 0), "b", 1, true, NULL), 0);
    size_t rflows = pair_count(&p.b, LEP_EVENT_LINK_FLOW);
    assert_int_equal(lep_link_drained(snd), 0);
    assert_int_equal(lep_link_credit(snd), 0);
    pair_pump(&p);
    assert_int_equal(p.b.nrx, 2);
    /* the receiver hears the drain is done: credit 0, delivery-count advanced */
    assert_true(pair_count(&p.b, LEP_EVENT_LINK_FLOW) > rflows);
    assert_int_equal(lep_link_credit(rcv), 0);
    flow_seen_t fa = {0};
    pair_frames(&p.a, flow_cb, &fa);
    assert_true(fa.n >= 1);
    assert_int_equal(fa.last.link_credit, 0);
    assert_true(fa.last.drain);
    const lep_attach_t *att = lep_link_remote_attach(rcv);
    assert_int_equal(fa.last.delivery_count, att->initial_delivery_count + 10);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_drain_no_credit_used(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    p.a.auto_answer = true;
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    /* a receives: b is the sender and must answer a drain */
    lep_link_t *rcv = pair_link(&p, s, "r", true, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_t *snd = pair_last_link(&p.b);
    assert_int_equal(lep_link_flow(rcv, 7), 0);
    assert_int_equal(lep_link_drain(rcv), 0);
    pair_pump(&p);
    assert_true(lep_link_draining(snd));
    assert_int_equal(lep_link_credit(snd), 7);
    assert_int_equal(lep_link_drained(snd), 0);
    pair_pump(&p);
    assert_int_equal(lep_link_credit(snd), 0);
    assert_int_equal(lep_link_credit(rcv), 0);
    assert_false(lep_link_draining(rcv));
    assert_true(pair_close(&p));
    pair_fini(&p);
}

/* Proton: pn_link_draining is drain && credit > queued */
static void
test_drained_clears_draining(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *rcv = pair_link(&p, s, "r", true, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_t *snd = pair_last_link(&p.b);
    lep_link_flow(rcv, 7);
    lep_link_drain(rcv);
    pair_pump(&p);
    assert_true(lep_link_draining(snd));
    lep_link_drained(snd);
    pair_pump(&p);
    assert_int_equal(lep_link_credit(snd), 0);
    assert_false(lep_link_draining(snd));
    assert_true(pair_close(&p));
    pair_fini(&p);
}

/* handles and channels as a wrote them, to forge frames that look like a's */
typedef struct ids {
    uint16_t channel;
    uint32_t next_outgoing_id;
    uint32_t handle;
    uint16_t b_channel;
    uint32_t b_handle;
} ids_t;

static void
ids_cb(void *ctx, const lep_frame_t *f, int rc, const lep_performative_t *perf, lep_bytes_t pl)
{
    (void)pl;
    ids_t *x = (ids_t *)ctx;
    if (rc != 0)
        return;
    if (perf->code == LEP_DESC_BEGIN) {
        x->channel = f->channel;
        x->next_outgoing_id = perf->u.begin.next_outgoing_id;
    } else if (perf->code == LEP_DESC_ATTACH) {
        x->handle = perf->u.attach.handle;
    }
}

static void
test_echo(void **state)
{
    (void)state;
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *snd = pair_link(&p, s, "s", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    (void)snd;
    ids_t bi = {0};
    pair_frames(&p.b, ids_cb, &bi);
    flow_seen_t before = {0};
    pair_frames(&p.a, flow_cb, &before);

    /* b (as its engine would) asks a for its link state with echo=true */
    lep_performative_t perf;
    memset(&perf, 0, sizeof perf);
    perf.code = LEP_DESC_FLOW;
    lep_flow_init(&perf.u.flow);
    perf.u.flow.present = LEP_FLOW_HAS_NEXT_INCOMING_ID | LEP_FLOW_HAS_INCOMING_WINDOW |
                          LEP_FLOW_HAS_NEXT_OUTGOING_ID | LEP_FLOW_HAS_OUTGOING_WINDOW |
                          LEP_FLOW_HAS_HANDLE | LEP_FLOW_HAS_DELIVERY_COUNT |
                          LEP_FLOW_HAS_LINK_CREDIT | LEP_FLOW_HAS_ECHO;
    ids_t ai = {0};
    pair_frames(&p.a, ids_cb, &ai);
    perf.u.flow.next_incoming_id = ai.next_outgoing_id;
    perf.u.flow.incoming_window = 100;
    perf.u.flow.next_outgoing_id = bi.next_outgoing_id;
    perf.u.flow.outgoing_window = 100;
    perf.u.flow.handle = bi.handle;
    perf.u.flow.delivery_count = 0;
    perf.u.flow.link_credit = 33;
    perf.u.flow.echo = true;
    pair_inject_perf(&p, &p.a, bi.channel, &perf, NULL, 0);
    pair_pump(&p);
    flow_seen_t after = {0};
    pair_frames(&p.a, flow_cb, &after);
    assert_true(after.n > before.n);
    assert_int_equal(after.last.handle, ai.handle);
    assert_int_equal(lep_link_credit(snd), 33);
    assert_int_equal(lep_conn_remote_state(p.a.c), LEP_STATE_ACTIVE);
    assert_int_equal(lep_conn_local_state(p.a.c), LEP_STATE_ACTIVE);
    pair_fini(&p);
}

static void
check_detach(bool closed)
{
    pair_t p;
    assert_int_equal(pair_init(&p, NULL, NULL), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *l = pair_link(&p, s, "d", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    lep_link_t *bl = pair_last_link(&p.b);
    lep_condition_t cond = {lep_bytes_str("amqp:link:detach-forced"), lep_bytes_str("bye"), {0}};
    assert_int_equal(lep_link_detach(l, closed, closed ? &cond : NULL), 0);
    pair_pump(&p);
    assert_int_equal(pair_count(&p.b, LEP_EVENT_LINK_REMOTE_DETACH), 1);
    assert_ptr_equal(pair_last(&p.b, LEP_EVENT_LINK_REMOTE_DETACH)->link, bl);
    assert_int_equal(lep_link_remote_closed(bl), closed);
    assert_int_equal(lep_link_remote_state(bl), LEP_STATE_CLOSED);
    if (closed) {
        assert_true(pair_cond_is(lep_link_remote_condition(bl), "amqp:link:detach-forced"));
        assert_true(lep_bytes_eq_str(lep_link_remote_condition(bl)->description, "bye"));
    } else {
        assert_false(lep_condition_set(lep_link_remote_condition(bl)));
    }
    assert_int_equal(pair_count(&p.a, LEP_EVENT_LINK_REMOTE_DETACH), 1);
    assert_int_equal(lep_link_remote_closed(l), closed);
    assert_int_equal(lep_link_local_state(l), LEP_STATE_CLOSED);
    assert_int_equal(pair_count(&p.a, LEP_EVENT_LINK_LOCAL_DETACH), 1);
    assert_int_equal(lep_link_free(l), 0);
    /* a link of the same name attaches again */
    lep_link_t *l2 = pair_link(&p, s, "d", false, "q", LEP_SND_SETTLE_MIXED, LEP_RCV_SETTLE_FIRST);
    assert_int_equal(lep_link_remote_state(l2), LEP_STATE_ACTIVE);
    assert_true(pair_close(&p));
    pair_fini(&p);
}

static void
test_detach_not_closed(void **state)
{
    (void)state;
    check_detach(false);
}

static void
test_close_link_with_error(void **state)
{
    (void)state;
    check_detach(true);
}

static void
test_max_links_enforced(void **state)
{
    (void)state;
    pair_t p;
    lep_conn_opts_t ob;
    lep_conn_opts_init(&ob);
    ob.max_links = 2;
    assert_int_equal(pair_init(&p, NULL, &ob), 0);
    pair_open(&p);
    lep_session_t *s = pair_session(&p);
    lep_link_t *l[4];
    int refused_locally = 0;
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "l%d", i);
        lep_link_opts_t o;
        lep_link_opts_init(&o);
        o.name = name;
        assert_int_equal(lep_link_new(s, &o, &l[i]), 0);
        /* the peer's handle-max may already tell a's engine to refuse */
        if (lep_link_attach(l[i]) != 0)
            refused_locally++;
    }
    pair_pump(&p);
    /* b holds at most two; the others are refused with a reason */
    size_t held = 0;
    for (int i = 0; i < 4; i++)
        if (lep_link_remote_state(l[i]) == LEP_STATE_ACTIVE && !lep_condition_set(lep_link_remote_condition(l[i])))
            held++;
    assert_true(held <= 2);
    bool refused = refused_locally == 2 || lep_condition_set(lep_session_remote_condition(s)) ||
                   lep_condition_set(lep_conn_remote_condition(p.a.c));
    for (int i = 0; i < 4; i++)
        if (lep_condition_set(lep_link_remote_condition(l[i])))
            refused = true;
    assert_true(refused);
    lep_conn_close(p.a.c, NULL);
    pair_pump(&p);
    assert_true(lep_conn_finished(p.a.c));
    assert_true(lep_conn_finished(p.b.c));
    pair_fini(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_full_termini),
        cmocka_unit_test(test_attach_dynamic),
        cmocka_unit_test(test_attach_unsettled_map),
        cmocka_unit_test(test_settle_modes_agreed),
        cmocka_unit_test(test_many_links),
        cmocka_unit_test(test_credit_flow),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_drain_no_credit_used),
        cmocka_unit_test(test_drained_clears_draining),
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_detach_not_closed),
        cmocka_unit_test(test_close_link_with_error),
        cmocka_unit_test(test_max_links_enforced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
