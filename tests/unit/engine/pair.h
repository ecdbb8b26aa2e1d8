/* Two lepton engines wired together in memory, for scenario tests.
 *
 * A pair owns a client (a) and a server (b) connection.  pair_pump() moves
 * every output byte of one side into the other's input until both are
 * quiet, records each side's events (with the delivery flags as they were
 * at the event, since they change afterwards), copies what receivers read
 * (deliveries are consumed as they arrive, so lep_delivery_data() is
 * always fresh), and keeps every byte each side wrote so a test can decode
 * the frames that crossed the wire.  Time is a fake clock the test moves.
 *
 * Sides may answer the peer automatically (auto_answer: open, begin,
 * attach, end, detach and close are echoed; auto_credit: new receiving
 * links get that much credit; auto_accept: complete deliveries are
 * accepted and settled).  A handler may do more, per event.
 *
 * Header-only; static functions, so each test file gets its own copy. */
#ifndef LEPTON_TEST_PAIR_H
#define LEPTON_TEST_PAIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lepton/engine.h>

#define PAIR_MAX_EVENTS 65536
#define PAIR_MAX_ROUNDS 100000

typedef struct pair_event {
    lep_event_type_t type;
    lep_session_t *session;
    lep_link_t *link;
    lep_delivery_t *delivery;
    /* delivery events: flags as seen at the event */
    bool readable, updated, remote_settled, partial, aborted;
    lep_outcome_type_t remote_type;
} pair_event_t;

/* What a receiver read of one delivery. */
typedef struct pair_rx {
    lep_delivery_t *d; /* NULL once the pair settled it (auto_accept) */
    lep_link_t *link;
    lep_buf_t data;
    uint8_t tag[32];
    size_t tag_len;
    bool complete, aborted;
    int reads; /* readable events seen */
} pair_rx_t;

struct pair;
typedef struct pair_side pair_side_t;
typedef void (*pair_handler_fn)(struct pair *p, pair_side_t *s, const lep_event_t *ev);

struct pair_side {
    const char *name;
    lep_conn_t *c;
    pair_event_t *ev;
    size_t nev;
    lep_buf_t in;   /* bytes from the peer not yet consumed */
    lep_buf_t wire; /* everything this side wrote */
    pair_rx_t *rx;
    size_t nrx, caprx;
    bool auto_answer;
    uint32_t auto_credit;
    bool auto_accept;
    bool eof_sent; /* we told the peer's engine its input closed */
    size_t chunk;  /* feed this side at most this many bytes at a time; 0: all */
    pair_handler_fn handler;
    void *ctx;
    pair_side_t *peer;
};

typedef struct pair {
    pair_side_t a, b;
    int64_t now;
    bool auto_tick; /* tick both sides with now after each pump round */
} pair_t;

static inline bool
pair_cond_is(const lep_condition_t *c, const char *name)
{
    return c && lep_bytes_eq_str(c->name, name);
}

static inline void
pair_side_free(pair_side_t *s)
{
    if (s->c)
        lep_conn_free(s->c);
    s->c = NULL;
    free(s->ev);
    lep_buf_fini(&s->in);
    lep_buf_fini(&s->wire);
    for (size_t i = 0; i < s->nrx; i++)
        lep_buf_fini(&s->rx[i].data);
    free(s->rx);
    memset(s, 0, sizeof *s);
}

/* Either opts may be NULL; b is always a server. Returns 0 or an error. */
static inline int
pair_init(pair_t *p, const lep_conn_opts_t *oa, const lep_conn_opts_t *ob)
{
    lep_conn_opts_t a, b;
    int rc;

    memset(p, 0, sizeof *p);
    if (oa)
        a = *oa;
    else
        lep_conn_opts_init(&a);
    if (ob)
        b = *ob;
    else
        lep_conn_opts_init(&b);
    a.server = false;
    b.server = true;
    if (!a.container_id)
        a.container_id = "client";
    if (!b.container_id)
        b.container_id = "server";
    p->a.name = "a";
    p->b.name = "b";
    p->a.peer = &p->b;
    p->b.peer = &p->a;
    p->a.ev = (pair_event_t *)calloc(PAIR_MAX_EVENTS, sizeof(pair_event_t));
    p->b.ev = (pair_event_t *)calloc(PAIR_MAX_EVENTS, sizeof(pair_event_t));
    lep_buf_init(&p->a.in);
    lep_buf_init(&p->b.in);
    lep_buf_init(&p->a.wire);
    lep_buf_init(&p->b.wire);
    p->a.auto_answer = true; /* answers closes the peer starts */
    p->b.auto_answer = true;
    p->b.auto_accept = true;
    p->b.auto_credit = 100;
    if (!p->a.ev || !p->b.ev)
        return LEP_ERR_NOMEM;
    if ((rc = lep_conn_new(&p->a.c, &a)) != 0)
        return rc;
    if ((rc = lep_conn_new(&p->b.c, &b)) != 0)
        return rc;
    return 0;
}

static inline void
pair_fini(pair_t *p)
{
    pair_side_free(&p->a);
    pair_side_free(&p->b);
}

static inline pair_rx_t *
pair_rx_find(pair_side_t *s, const lep_delivery_t *d)
{
    for (size_t i = s->nrx; i-- > 0;)
        if (s->rx[i].d == d)
            return &s->rx[i];
    return NULL;
}

static inline pair_rx_t *
pair_rx_of(pair_side_t *s, lep_delivery_t *d)
{
    for (size_t i = s->nrx; i-- > 0;)
        if (s->rx[i].d == d)
            return &s->rx[i];
    if (s->nrx == s->caprx) {
        size_t cap = s->caprx ? s->caprx * 2 : 64;
        pair_rx_t *n = (pair_rx_t *)realloc(s->rx, cap * sizeof *n);
        if (!n)
            abort();
        s->rx = n;
        s->caprx = cap;
    }
    pair_rx_t *r = &s->rx[s->nrx++];
    memset(r, 0, sizeof *r);
    r->d = d;
    r->link = lep_delivery_link(d);
    lep_buf_init(&r->data);
    lep_bytes_t t = lep_delivery_tag(d);
    r->tag_len = t.len < sizeof r->tag ? t.len : sizeof r->tag;
    if (r->tag_len)
        memcpy(r->tag, t.ptr, r->tag_len);
    return r;
}

/* The i-th delivery a side received (in arrival order), or NULL. */
static inline pair_rx_t *
pair_rx(pair_side_t *s, size_t i)
{
    return i < s->nrx ? &s->rx[i] : NULL;
}

/* Copies (and consumes) what a receiving delivery made readable. */
static inline void
pair_capture(pair_side_t *s, lep_delivery_t *d)
{
    lep_link_t *l = lep_delivery_link(d);
    if (!l || !lep_link_is_receiver(l))
        return;
    pair_rx_t *r = pair_rx_of(s, d);
    if (lep_delivery_readable(d)) {
        lep_bytes_t b = lep_delivery_data(d);
        r->reads++;
        if (b.len) {
            lep_buf_append(&r->data, b.ptr, b.len);
            lep_delivery_consume(d, b.len);
        }
    }
    if (lep_delivery_aborted(d))
        r->aborted = true;
    if (!lep_delivery_partial(d) && !r->aborted)
        r->complete = true;
}

/* Settles a delivery a receiver captured (handlers use this so the pair
 * forgets the pointer). */
static inline void
pair_settle(pair_side_t *s, lep_delivery_t *d)
{
    for (size_t i = 0; i < s->nrx; i++)
        if (s->rx[i].d == d)
            s->rx[i].d = NULL;
    lep_delivery_settle(d);
}

static inline void
pair_auto(pair_t *p, pair_side_t *s, const lep_event_t *ev)
{
    (void)p;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        if (s->auto_answer && lep_conn_local_state(s->c) == LEP_STATE_UNINIT)
            lep_conn_open(s->c);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        if (s->auto_answer && lep_conn_local_state(s->c) == LEP_STATE_ACTIVE)
            lep_conn_close(s->c, NULL);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (s->auto_answer && lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            lep_session_begin(ev->session);
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        if (s->auto_answer && lep_session_local_state(ev->session) == LEP_STATE_ACTIVE)
            lep_session_end(ev->session, NULL);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (s->auto_answer && lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
            lep_link_attach(ev->link);
            if (s->auto_credit && lep_link_is_receiver(ev->link))
                lep_link_flow(ev->link, s->auto_credit);
        }
        break;
    case LEP_EVENT_LINK_REMOTE_DETACH:
        if (s->auto_answer && lep_link_local_state(ev->link) == LEP_STATE_ACTIVE)
            lep_link_detach(ev->link, lep_link_remote_closed(ev->link), NULL);
        break;
    case LEP_EVENT_DELIVERY: {
        lep_delivery_t *d = ev->delivery;
        lep_link_t *l = lep_delivery_link(d);
        if (!s->auto_accept || !l || !lep_link_is_receiver(l))
            break;
        pair_rx_t *r = pair_rx_find(s, d);
        if (r && (r->complete || r->aborted) && r->d) {
            if (r->complete && !lep_delivery_remote_settled(d))
                lep_delivery_accept(d);
            lep_delivery_settle(d);
            r->d = NULL;
        }
        break;
    }
    default:
        break;
    }
}

static inline void
pair_drain_events(struct pair *p, pair_side_t *s)
{
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(s->c)) != NULL) {
        if (s->nev < PAIR_MAX_EVENTS) {
            pair_event_t *e = &s->ev[s->nev++];
            memset(e, 0, sizeof *e);
            e->type = ev->type;
            e->session = ev->session;
            e->link = ev->link;
            e->delivery = ev->delivery;
            if (ev->type == LEP_EVENT_DELIVERY && ev->delivery) {
                e->readable = lep_delivery_readable(ev->delivery);
                e->updated = lep_delivery_updated(ev->delivery);
                e->remote_settled = lep_delivery_remote_settled(ev->delivery);
                e->partial = lep_delivery_partial(ev->delivery);
                e->aborted = lep_delivery_aborted(ev->delivery);
                const lep_outcome_t *o = lep_delivery_remote_state(ev->delivery);
                e->remote_type = o ? o->type : LEP_OUTCOME_NONE;
            }
        }
        if (ev->type == LEP_EVENT_DELIVERY && ev->delivery)
            pair_capture(s, ev->delivery);
        if (s->handler)
            s->handler(p, s, ev);
        pair_auto(p, s, ev);
    }
}

/* Feeds what s has pending from its peer, in pieces of s->chunk bytes
 * (0: all at once) with the events handled after each.  Returns bytes
 * consumed. */
static inline size_t
pair_feed(struct pair *p, pair_side_t *s)
{
    size_t total = 0;
    while (s->in.len) {
        size_t n = s->in.len;
        if (s->chunk && n > s->chunk)
            n = s->chunk;
        size_t used = 0;
        if (lep_conn_feed(s->c, s->in.data, n, &used) != 0) {
            s->in.len = 0; /* input closed: the bytes go nowhere */
            break;
        }
        if (used > n)
            used = n;
        memmove(s->in.data, s->in.data + used, s->in.len - used);
        s->in.len -= used;
        total += used;
        if (!s->chunk)
            break;
        pair_drain_events(p, s);
        if (!used && n == s->in.len)
            break; /* wants more than there is */
        if (!used)
            s->chunk = s->chunk * 2; /* wants a bigger piece at once */
    }
    return total;
}

static inline size_t
pair_move(struct pair *p, pair_side_t *from)
{
    pair_side_t *to = from->peer;
    size_t moved = 0;
    for (int i = 0; i < 64; i++) {
        lep_bytes_t out = lep_conn_output(from->c);
        if (!out.len)
            break;
        lep_buf_append(&from->wire, out.ptr, out.len);
        lep_buf_append(&to->in, out.ptr, out.len);
        lep_conn_consumed(from->c, out.len);
        moved += out.len;
    }
    moved += pair_feed(p, to);
    return moved;
}

/* Moves bytes both ways and handles events until nothing changes.
 * A side whose engine finished and has nothing left to write closes its
 * "socket": the peer's engine sees end of input.  Returns rounds used. */
static inline int
pair_pump(pair_t *p)
{
    int rounds = 0;
    for (; rounds < PAIR_MAX_ROUNDS; rounds++) {
        size_t before = p->a.nev + p->b.nev;
        size_t moved = pair_move(p, &p->a) + pair_move(p, &p->b);
        if (p->auto_tick) {
            lep_conn_tick(p->a.c, p->now);
            lep_conn_tick(p->b.c, p->now);
        }
        pair_drain_events(p, &p->a);
        pair_drain_events(p, &p->b);
        bool changed = moved || p->a.nev + p->b.nev != before;
        pair_side_t *sides[2] = {&p->a, &p->b};
        for (int i = 0; i < 2; i++) {
            pair_side_t *s = sides[i];
            if (!s->eof_sent && lep_conn_finished(s->c) && !lep_conn_output_pending(s->c) &&
                !s->peer->in.len) {
                s->eof_sent = true;
                lep_conn_input_closed(s->peer->c);
                changed = true;
            }
        }
        if (!changed && !lep_conn_output_pending(p->a.c) && !lep_conn_output_pending(p->b.c))
            break;
    }
    return rounds;
}

/* Moves the fake clock and ticks both engines; returns the earlier of the
 * two deadlines (-1: none).  Does not pump. */
static inline int64_t
pair_tick(pair_t *p, int64_t now)
{
    p->now = now;
    int64_t da = lep_conn_tick(p->a.c, now);
    int64_t db = lep_conn_tick(p->b.c, now);
    if (da < 0)
        return db;
    if (db < 0)
        return da;
    return da < db ? da : db;
}

/* Bytes from "the network" into s, as if its peer had sent them. */
static inline void
pair_inject(pair_t *p, pair_side_t *s, const void *bytes, size_t len)
{
    lep_buf_append(&s->in, bytes, len);
    pair_feed(p, s);
    pair_drain_events(p, s);
}

/* Events. */
static inline size_t
pair_count(const pair_side_t *s, lep_event_type_t t)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nev; i++)
        n += s->ev[i].type == t;
    return n;
}

/* Index of the first event of type t at or after from, or -1. */
static inline long
pair_find(const pair_side_t *s, lep_event_type_t t, size_t from)
{
    for (size_t i = from; i < s->nev; i++)
        if (s->ev[i].type == t)
            return (long)i;
    return -1;
}

static inline const pair_event_t *
pair_last(const pair_side_t *s, lep_event_type_t t)
{
    for (size_t i = s->nev; i-- > 0;)
        if (s->ev[i].type == t)
            return &s->ev[i];
    return NULL;
}

/* The session or link of the last remote begin / attach on s. */
static inline lep_session_t *
pair_last_session(const pair_side_t *s)
{
    const pair_event_t *e = pair_last(s, LEP_EVENT_SESSION_REMOTE_BEGIN);
    return e ? e->session : NULL;
}

static inline lep_link_t *
pair_last_link(const pair_side_t *s)
{
    const pair_event_t *e = pair_last(s, LEP_EVENT_LINK_REMOTE_ATTACH);
    return e ? e->link : NULL;
}

/* ---- frames on the wire ---------------------------------------------- */

typedef void (*pair_frame_fn)(void *ctx, const lep_frame_t *f, int rc,
                              const lep_performative_t *perf, lep_bytes_t payload);

/* Walks the frames a side wrote (after its 8-byte AMQP header).  rc is
 * lep_performative_decode's result (perf valid when 0); empty frames have
 * perf->code 0 and rc 1.  Returns the number of frames. */
static inline size_t
pair_frames(const pair_side_t *s, pair_frame_fn fn, void *ctx)
{
    const uint8_t *p = s->wire.data;
    size_t len = s->wire.len, off = LEP_PROTO_HEADER_SIZE, n = 0;
    if (len < off)
        return 0;
    while (off < len) {
        lep_frame_t f;
        size_t used = 0;
        if (lep_frame_parse(p + off, len - off, LEP_MAX_FRAME_SIZE_DEFAULT, &f, &used) != 0)
            break;
        off += used;
        n++;
        if (!fn)
            continue;
        lep_performative_t perf;
        memset(&perf, 0, sizeof perf);
        if (f.body.len == 0) {
            fn(ctx, &f, 1, &perf, LEP_BYTES(NULL, 0));
            continue;
        }
        lep_reader_t r;
        lep_reader_init(&r, f.body.ptr, f.body.len);
        int rc = lep_performative_decode(&r, &perf);
        lep_bytes_t payload = LEP_BYTES(NULL, 0);
        if (rc == 0)
            payload = LEP_BYTES(r.p, (size_t)(r.end - r.p));
        fn(ctx, &f, rc, &perf, payload);
    }
    return n;
}

typedef struct pair_frame_count {
    uint64_t code; /* 0: empty frames */
    size_t n;
} pair_frame_count_t;

static inline void
pair_count_cb(void *ctx, const lep_frame_t *f, int rc, const lep_performative_t *perf,
              lep_bytes_t payload)
{
    (void)f;
    (void)payload;
    pair_frame_count_t *c = (pair_frame_count_t *)ctx;
    if (c->code == 0 ? rc == 1 : (rc == 0 && perf->code == c->code))
        c->n++;
}

/* How many frames of a performative (LEP_DESC_*; 0: empty frames) s wrote. */
static inline size_t
pair_count_frames(const pair_side_t *s, uint64_t code)
{
    pair_frame_count_t c = {code, 0};
    pair_frames(s, pair_count_cb, &c);
    return c.n;
}

/* Appends one AMQP frame carrying a performative (and payload) to buf. */
static inline int
pair_frame_encode(lep_buf_t *buf, uint16_t channel, const lep_performative_t *perf,
                  const void *payload, size_t plen)
{
    size_t mark;
    int rc = lep_frame_begin(buf, LEP_FRAME_AMQP, channel, &mark);
    if (rc)
        return rc;
    lep_encoder_t e;
    lep_encoder_init(&e, buf);
    if ((rc = lep_performative_encode(&e, perf)) != 0)
        return rc;
    if (plen && (rc = lep_buf_append(buf, payload, plen)) != 0)
        return rc;
    return lep_frame_end(buf, mark, LEP_MAX_FRAME_SIZE_DEFAULT);
}

/* Encodes and injects one performative into s on a channel. */
static inline void
pair_inject_perf(pair_t *p, pair_side_t *s, uint16_t channel, const lep_performative_t *perf,
                 const void *payload, size_t plen)
{
    lep_buf_t b;
    lep_buf_init(&b);
    if (pair_frame_encode(&b, channel, perf, payload, plen) == 0)
        pair_inject(p, s, b.data, b.len);
    lep_buf_fini(&b);
}

/* ---- common set-ups -------------------------------------------------- */

/* Opens the connection both ways (b answers automatically). */
static inline void
pair_open(pair_t *p)
{
    lep_conn_open(p->a.c);
    pair_pump(p);
}

/* Begins a session on a (b answers). */
static inline lep_session_t *
pair_session(pair_t *p)
{
    lep_session_t *s = NULL;
    if (lep_session_new(p->a.c, &s) != 0)
        return NULL;
    lep_session_begin(s);
    pair_pump(p);
    return s;
}

/* Attaches a link on a's session; address goes in the target (sender) or
 * source (receiver). */
static inline lep_link_t *
pair_link(pair_t *p, lep_session_t *s, const char *name, bool receiver, const char *address,
          uint8_t snd_mode, uint8_t rcv_mode)
{
    lep_link_opts_t o;
    lep_link_opts_init(&o);
    o.name = name;
    o.receiver = receiver;
    o.snd_settle_mode = snd_mode;
    o.rcv_settle_mode = rcv_mode;
    lep_source_t src;
    lep_target_t tgt;
    lep_source_init(&src);
    lep_target_init(&tgt);
    uint8_t addr[256];
    lep_buf_t ab;
    lep_buf_init_fixed(&ab, addr, sizeof addr);
    lep_encoder_t e;
    lep_encoder_init(&e, &ab);
    lep_encode_cstring(&e, address);
    if (receiver) {
        src.present |= LEP_SOURCE_HAS_ADDRESS;
        src.address = lep_buf_bytes(&ab);
        o.source = &src;
        o.target = &tgt;
    } else {
        tgt.present |= LEP_TARGET_HAS_ADDRESS;
        tgt.address = lep_buf_bytes(&ab);
        o.source = &src;
        o.target = &tgt;
    }
    lep_link_t *l = NULL;
    if (lep_link_new(s, &o, &l) != 0)
        return NULL;
    lep_link_attach(l);
    pair_pump(p);
    return l;
}

/* Closes both ways from a, pumps, and reports whether both finished. */
static inline bool
pair_close(pair_t *p)
{
    lep_conn_close(p->a.c, NULL);
    pair_pump(p);
    return lep_conn_finished(p->a.c) && lep_conn_finished(p->b.c);
}

#endif
