/* Deliveries: the pool, transfers out (split at max-frame-size,
 * streaming, abort) and in (reassembly, streaming reads, limits),
 * outcomes, settlement and dispositions batched into ranges (2.7.6). */
#include "engine/engine_internal.h"

#include <stdlib.h>

#define POOL_MAX 1024
#define POOL_BUF_MAX (64 * 1024)



/* ------------------------------------------------------------------ */
/* Pool and lists                                                      */

lep_delivery_t *
lepi_delivery_alloc(lep_conn_t *c)
{
    lep_delivery_t *d = c->pool;
    if (d) {
        /* Field by field: a memset of the whole struct (outcomes and
         * tag included) is a measurable share of a small message. */
        c->pool = d->next;
        c->pool_count--;
        d->link = NULL;
        d->next = d->prev = d->snext = d->dnext = d->lnext = d->lprev = NULL;
        d->id = d->flags = d->message_format = 0;
        d->chg = d->seen = d->taglen = 0;
        d->data.len = d->local_buf.len = d->remote_buf.len = 0;
        d->off = d->total = 0;
        d->ctx = NULL;
        if (d->local.type != LEP_OUTCOME_NONE)
            memset(&d->local, 0, sizeof d->local);
        if (d->remote.type != LEP_OUTCOME_NONE)
            memset(&d->remote, 0, sizeof d->remote);
        return d;
    }
    return lep_calloc(1, sizeof *d);
}

static void
delivery_free(lep_delivery_t *d)
{
    lep_buf_fini(&d->data);
    lep_buf_fini(&d->local_buf);
    lep_buf_fini(&d->remote_buf);
    lep_free(d);
}

static void
unsettled_remove(lep_delivery_t *d)
{
    if (!(d->flags & LEPI_D_UNSETTLED))
        return;
    lep_session_t *s = d->link->session;
    lep_delivery_t **head = d->link->receiver ? &s->in_head : &s->out_head;
    lep_delivery_t **tail = d->link->receiver ? &s->in_tail : &s->out_tail;
    if (d->prev)
        d->prev->next = d->next;
    else
        *head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        *tail = d->prev;
    d->next = d->prev = NULL;
    d->flags &= ~(uint32_t)LEPI_D_UNSETTLED;
}

static void
unsettled_append(lep_delivery_t *d)
{
    lep_session_t *s = d->link->session;
    lep_delivery_t **head = d->link->receiver ? &s->in_head : &s->out_head;
    lep_delivery_t **tail = d->link->receiver ? &s->in_tail : &s->out_tail;
    d->next = NULL;
    d->prev = *tail;
    if (*tail)
        (*tail)->next = d;
    else
        *head = d;
    *tail = d;
    d->flags |= LEPI_D_UNSETTLED;
}

/* The delivery stops counting as unsettled: settled by the application,
 * aborted (implicitly settled, 2.7.5), or released. */
static void
uncount(lep_delivery_t *d)
{
    if (d->flags & LEPI_D_UNCOUNTED)
        return;
    d->flags |= LEPI_D_UNCOUNTED;
    if (d->link->unsettled)
        d->link->unsettled--;
}

void
lepi_delivery_release(lep_conn_t *c, lep_delivery_t *d)
{
    lep_link_t *l = d->link;
    unsettled_remove(d);
    if (d->lprev)
        d->lprev->lnext = d->lnext;
    else if (l->all == d)
        l->all = d->lnext;
    if (d->lnext)
        d->lnext->lprev = d->lprev;
    if (l->current == d)
        l->current = NULL;
    uncount(d);
    if (d->flags & LEPI_D_EVENT_QUEUED)
        lepi_event_purge(c, d);
    if (c->pool_count < POOL_MAX && d->data.cap <= POOL_BUF_MAX &&
        d->local_buf.cap <= POOL_BUF_MAX && d->remote_buf.cap <= POOL_BUF_MAX) {
        d->next = c->pool;
        c->pool = d;
        c->pool_count++;
    } else {
        delivery_free(d);
    }
}

void
lepi_pool_free(lep_conn_t *c)
{
    while (c->pool) {
        lep_delivery_t *d = c->pool;
        c->pool = d->next;
        delivery_free(d);
    }
    c->pool_count = 0;
}

static lep_delivery_t *
delivery_new(lep_link_t *l)
{
    lep_delivery_t *d = lepi_delivery_alloc(l->session->conn);
    if (!d)
        return NULL;
    d->link = l;
    d->lnext = l->all;
    if (l->all)
        l->all->lprev = d;
    l->all = d;
    l->unsettled++;
    return d;
}

void
lepi_link_drop_deliveries(lep_link_t *l)
{
    lep_session_t *s = l->session;
    lep_delivery_t **pp = &s->dq_head;
    s->dq_tail = NULL;
    while (*pp) {
        if ((*pp)->link == l) {
            *pp = (*pp)->dnext;
        } else {
            s->dq_tail = *pp;
            pp = &(*pp)->dnext;
        }
    }
    l->sq_head = l->sq_tail = NULL;
    l->current = NULL;
    while (l->all)
        lepi_delivery_release(s->conn, l->all);
}

void
lepi_delivery_event(lep_delivery_t *d, uint8_t chg)
{
    d->chg |= chg;
    if (d->flags & LEPI_D_EVENT_QUEUED)
        return;
    d->flags |= LEPI_D_EVENT_QUEUED;
    lepi_event(d->link->session->conn, LEP_EVENT_DELIVERY, d->link->session, d->link, d);
}

/* Released once the application settled it and the engine has nothing
 * more to send or receive for it. */
static void
maybe_release(lep_delivery_t *d)
{
    if (!(d->flags & LEPI_D_SETTLED) || (d->flags & (LEPI_D_DISP_QUEUED | LEPI_D_ON_SEND)))
        return;
    if (d->link->current == d)
        return;
    lepi_delivery_release(d->link->session->conn, d);
}

/* ------------------------------------------------------------------ */
/* Outcomes                                                            */

static void
encode_outcome(lep_encoder_t *e, const lep_outcome_t *o)
{
    switch (o->type) {
    case LEP_OUTCOME_NONE:
        break;
    case LEP_OUTCOME_RECEIVED: {
        lep_received_t r;
        lep_received_init(&r);
        r.present = LEP_RECEIVED_ALL;
        r.section_number = o->section_number;
        r.section_offset = o->section_offset;
        lep_received_encode(e, &r);
        break;
    }
    case LEP_OUTCOME_ACCEPTED: {
        lep_accepted_t a;
        lep_accepted_init(&a);
        lep_accepted_encode(e, &a);
        break;
    }
    case LEP_OUTCOME_REJECTED:
        lep_encode_descriptor(e, LEP_DESC_REJECTED);
        lep_encode_list_begin(e);
        lepi_cond_encode(e, &o->error);
        lep_encode_list_end(e);
        break;
    case LEP_OUTCOME_RELEASED: {
        lep_released_t r;
        lep_released_init(&r);
        lep_released_encode(e, &r);
        break;
    }
    case LEP_OUTCOME_MODIFIED: {
        lep_modified_t m;
        lep_modified_init(&m);
        m.present = LEP_MODIFIED_HAS_DELIVERY_FAILED | LEP_MODIFIED_HAS_UNDELIVERABLE_HERE;
        m.delivery_failed = o->delivery_failed;
        m.undeliverable_here = o->undeliverable_here;
        if (o->annotations.len) {
            m.present |= LEP_MODIFIED_HAS_MESSAGE_ANNOTATIONS;
            m.message_annotations = o->annotations;
        }
        lep_modified_encode(e, &m);
        break;
    }
    case LEP_OUTCOME_OTHER:
        lep_encode_raw(e, o->raw.ptr, o->raw.len);
        break;
    }
}

/* Views into raw. */
static int
decode_outcome(lep_bytes_t raw, lep_outcome_t *o)
{
    memset(o, 0, sizeof *o);
    if (!raw.len)
        return 0;
    lep_reader_t r;
    lep_reader_init(&r, raw.ptr, raw.len);
    if (lep_read_null(&r))
        return 0;
    lep_delivery_state_t ds;
    int rc = lep_delivery_state_decode(&r, &ds);
    if (rc == LEP_ERR_TYPE) {
        /* Unknown states (and our own view of transactional ones) pass
         * through raw. */
        o->type = LEP_OUTCOME_OTHER;
        o->raw = raw;
        return 0;
    }
    if (rc != 0)
        return rc;
    switch (ds.code) {
    case LEP_DESC_RECEIVED:
        o->type = LEP_OUTCOME_RECEIVED;
        o->section_number = ds.u.received.section_number;
        o->section_offset = ds.u.received.section_offset;
        break;
    case LEP_DESC_ACCEPTED:
        o->type = LEP_OUTCOME_ACCEPTED;
        break;
    case LEP_DESC_REJECTED:
        o->type = LEP_OUTCOME_REJECTED;
        if ((ds.u.rejected.present & LEP_REJECTED_HAS_ERROR) &&
            (rc = lepi_cond_view(ds.u.rejected.error, &o->error)) != 0)
            return rc;
        break;
    case LEP_DESC_RELEASED:
        o->type = LEP_OUTCOME_RELEASED;
        break;
    case LEP_DESC_MODIFIED:
        o->type = LEP_OUTCOME_MODIFIED;
        o->delivery_failed = ds.u.modified.delivery_failed;
        o->undeliverable_here = ds.u.modified.undeliverable_here;
        o->annotations = ds.u.modified.message_annotations;
        break;
    default:
        o->type = LEP_OUTCOME_OTHER;
        o->raw = raw;
        break;
    }
    return 0;
}

/* Copies raw into buf and makes o, decoded from raw as `dec`, a view of
 * the copy: one decode serves every delivery of a disposition range. */
static int
store_decoded(lep_buf_t *buf, lep_outcome_t *o, lep_bytes_t raw, const lep_outcome_t *dec)
{
    lep_buf_clear(buf);
    int rc = lep_buf_append(buf, raw.ptr, raw.len);
    if (rc != 0)
        return rc;
    *o = *dec;
    const uint8_t *base = raw.ptr, *nb = buf->data;
    lep_bytes_t *views[] = {&o->error.name, &o->error.description, &o->error.info,
                            &o->annotations, &o->raw};
    for (size_t i = 0; i < sizeof views / sizeof *views; i++)
        if (views[i]->len)
            views[i]->ptr = nb + (views[i]->ptr - base);
    return 0;
}

static int
store_state(lep_buf_t *buf, lep_outcome_t *o, lep_bytes_t raw)
{
    lep_outcome_t tmp;
    int rc = decode_outcome(raw, &tmp);
    if (rc != 0)
        return rc;
    return store_decoded(buf, o, raw, &tmp);
}

/* ------------------------------------------------------------------ */
/* Transfers out                                                       */

static bool
can_transfer(const lep_session_t *s)
{
    return s->remote_incoming_window > 0 && !s->end_sent && lepi_conn_can_send(s->conn) &&
           s->conn->hdr_sent;
}

/* One transfer frame carrying up to what fits of p[0, rest).  `final`:
 * the application has written the last piece.  *chunk gets the bytes
 * taken; *more whether more frames follow. */
static int
write_transfer(lep_delivery_t *d, const uint8_t *p, size_t rest, bool final, size_t *chunk,
               bool *more)
{
    lep_link_t *l = d->link;
    lep_session_t *s = l->session;
    lep_conn_t *c = s->conn;
    lep_buf_t *w = &c->wbuf;
    bool first = !(d->flags & LEPI_D_STARTED);
    size_t mark;
    int rc = lep_frame_begin(w, LEP_FRAME_AMQP, s->channel, &mark);
    if (rc != 0)
        return rc;
    lep_transfer_t t;
    lep_transfer_init(&t);
    t.present = LEP_TRANSFER_HAS_HANDLE;
    t.handle = l->handle;
    if (first) {
        t.present |= LEP_TRANSFER_HAS_DELIVERY_ID | LEP_TRANSFER_HAS_DELIVERY_TAG |
                     LEP_TRANSFER_HAS_MESSAGE_FORMAT;
        t.delivery_id = s->next_delivery_id;
        t.delivery_tag = LEP_BYTES(d->tag, d->taglen);
        t.message_format = d->message_format;
        if (d->flags & LEPI_D_PRESETTLED) {
            t.present |= LEP_TRANSFER_HAS_SETTLED;
            t.settled = true;
        }
    }
    size_t max = c->remote_max_frame;
    size_t hdr = 0, budget = 0;
    for (int pass = 0; pass < 2; pass++) {
        w->len = mark + LEP_FRAME_HEADER_SIZE;
        lep_encoder_t e;
        lep_encoder_init(&e, w);
        lep_transfer_encode(&e, &t);
        if ((rc = lep_encoder_finish(&e)) != 0) {
            w->len = mark;
            return rc;
        }
        hdr = w->len - mark;
        budget = max > hdr ? max - hdr : 0;
        if (t.more || (final && rest <= budget))
            break;
        t.present |= LEP_TRANSFER_HAS_MORE;
        t.more = true;
    }
    size_t n = rest < budget ? rest : budget;
    if ((n == 0 && rest > 0) || (rc = lep_buf_append(w, p, n)) != 0) {
        w->len = mark;
        return rc ? rc : LEP_ERR_FRAME_SIZE;
    }
    lep_frame_end(w, mark, UINT32_MAX);
    if (first) {
        d->id = s->next_delivery_id++;
        d->flags |= LEPI_D_STARTED;
        if (!(d->flags & (LEPI_D_PRESETTLED | LEPI_D_SETTLED)))
            unsettled_append(d);
    }
    s->next_outgoing_id++;
    s->remote_incoming_window--;
    if (c->time_known)
        c->last_out = c->now;
    if (c->trace)
        lepi_trace_frame(c, true, s->channel,
                         LEP_BYTES(w->data + mark + LEP_FRAME_HEADER_SIZE,
                                   w->len - mark - LEP_FRAME_HEADER_SIZE));
    *chunk = n;
    *more = t.more;
    return 0;
}

static int
write_abort(lep_delivery_t *d)
{
    lep_link_t *l = d->link;
    lep_session_t *s = l->session;
    lep_performative_t p;
    p.code = LEP_DESC_TRANSFER;
    lep_transfer_init(&p.u.transfer);
    p.u.transfer.present = LEP_TRANSFER_HAS_HANDLE | LEP_TRANSFER_HAS_ABORTED;
    p.u.transfer.handle = l->handle;
    p.u.transfer.aborted = true;
    int rc = lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
    if (rc == 0) {
        s->next_outgoing_id++;
        s->remote_incoming_window--;
    }
    return rc;
}

/* Writes frames of d from p[0, n) while the window allows; returns the
 * bytes taken. */
static size_t
emit(lep_delivery_t *d, const uint8_t *p, size_t n)
{
    lep_session_t *s = d->link->session;
    bool final = (d->flags & LEPI_D_WRITE_DONE) != 0;
    size_t done = 0;
    while (!(d->flags & LEPI_D_SENT_ALL) && can_transfer(s)) {
        size_t rest = n - done;
        if (!rest && !final)
            break;
        size_t chunk;
        bool more;
        if (write_transfer(d, p + done, rest, final, &chunk, &more) != 0) {
            lepi_conn_fail(s->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "cannot write transfer");
            break;
        }
        done += chunk;
        if (!more)
            d->flags |= LEPI_D_SENT_ALL;
    }
    return done;
}

static void
sq_pop(lep_link_t *l)
{
    lep_delivery_t *d = l->sq_head;
    l->sq_head = d->snext;
    if (!l->sq_head)
        l->sq_tail = NULL;
    d->snext = NULL;
    d->flags &= ~(uint32_t)LEPI_D_ON_SEND;
    if (l->queued)
        l->queued--;
}

static void
sq_push(lep_link_t *l, lep_delivery_t *d)
{
    d->snext = NULL;
    if (l->sq_tail)
        l->sq_tail->snext = d;
    else
        l->sq_head = d;
    l->sq_tail = d;
    d->flags |= LEPI_D_ON_SEND;
    l->queued++;
}

void
lepi_link_pump(lep_link_t *l)
{
    lep_session_t *s = l->session;
    while (l->sq_head && can_transfer(s) && l->attach_sent && !l->detach_sent &&
           l->remote_state == LEP_STATE_ACTIVE) {
        lep_delivery_t *d = l->sq_head;
        if (d->flags & LEPI_D_ABORT_PENDING) {
            if ((d->flags & LEPI_D_STARTED) && write_abort(d) != 0) {
                lepi_conn_fail(s->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "cannot write transfer");
                return;
            }
            d->flags |= LEPI_D_SENT_ALL | LEPI_D_ABORTED;
            d->flags &= ~(uint32_t)LEPI_D_ABORT_PENDING;
            unsettled_remove(d);
        } else {
            size_t n = emit(d, lepi_at(&d->data, d->off), d->data.len - d->off);
            d->off += n;
            if (d->off == d->data.len)
                d->off = d->data.len = 0;
        }
        if (!(d->flags & LEPI_D_SENT_ALL))
            return;
        sq_pop(l);
        maybe_release(d);
    }
}

void
lepi_session_pump(lep_session_t *s)
{
    for (lep_link_t *l = s->links; l && can_transfer(s); l = l->next)
        if (l->sq_head)
            lepi_link_pump(l);
}

static int
check_send(lep_link_t *l, lep_bytes_t tag)
{
    if (l->receiver || l->local_state != LEP_STATE_ACTIVE || l->detach_sent ||
        l->remote_state != LEP_STATE_ACTIVE)
        return LEP_ERR_STATE;
    if (tag.len > LEPI_TAG_MAX)
        return LEP_ERR_INVALID;
    if (l->credit == 0)
        return LEP_ERR_STATE;
    return 0;
}

static lep_delivery_t *
out_new(lep_link_t *l, lep_bytes_t tag)
{
    lep_delivery_t *d = delivery_new(l);
    if (!d)
        return NULL;
    if (tag.len) {
        memcpy(d->tag, tag.ptr, tag.len);
        d->taglen = (uint8_t)tag.len;
    } else {
        uint64_t n = l->next_tag++;
        uint8_t k = 0;
        do {
            d->tag[k++] = (uint8_t)n;
            n >>= 8;
        } while (n);
        d->taglen = k;
    }
    /* Counted as sent now, so a flow arriving while the delivery waits
     * for window computes the credit left correctly. */
    l->delivery_count++;
    l->credit--;
    if (l->snd_settle_mode == LEP_SND_SETTLE_SETTLED)
        d->flags |= LEPI_D_PRESETTLED;
    return d;
}

int
lep_link_send(lep_link_t *l, lep_bytes_t tag, const void *msg, size_t len, bool settled,
              lep_delivery_t **out)
{
    if (out)
        *out = NULL;
    int rc = check_send(l, tag);
    if (rc != 0)
        return rc;
    if (len && !msg)
        return LEP_ERR_INVALID;
    if (l->remote_max_message_size && len > l->remote_max_message_size)
        return LEP_ERR_LIMIT; /* the peer would detach with message-size-exceeded */
    lep_delivery_t *d = out_new(l, tag);
    if (!d)
        return LEP_ERR_NOMEM;
    d->flags |= LEPI_D_WRITE_DONE;
    if (settled)
        d->flags |= LEPI_D_PRESETTLED;
    if (d->flags & LEPI_D_PRESETTLED) {
        d->flags |= LEPI_D_SETTLED;
        uncount(d);
    }
    size_t done = l->sq_head ? 0 : emit(d, msg, len);
    if (!(d->flags & LEPI_D_SENT_ALL)) {
        if (lep_buf_append(&d->data, (const uint8_t *)msg + done, len - done) != 0) {
            /* Nothing can be taken back once a frame left: fail hard. */
            if (d->flags & LEPI_D_STARTED) {
                lepi_conn_fail(l->session->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "out of memory");
            } else {
                l->delivery_count--;
                l->credit++;
                d->flags |= LEPI_D_SETTLED;
                lepi_delivery_release(l->session->conn, d);
            }
            return LEP_ERR_NOMEM;
        }
        sq_push(l, d);
    }
    if (d->flags & LEPI_D_PRESETTLED) {
        maybe_release(d);
        return 0;
    }
    if (out)
        *out = d;
    return 0;
}

int
lep_link_delivery_new(lep_link_t *l, lep_bytes_t tag, lep_delivery_t **out)
{
    if (!out)
        return LEP_ERR_INVALID;
    *out = NULL;
    int rc = check_send(l, tag);
    if (rc != 0)
        return rc;
    lep_delivery_t *d = out_new(l, tag);
    if (!d)
        return LEP_ERR_NOMEM;
    sq_push(l, d);
    *out = d;
    return 0;
}

int
lep_delivery_write(lep_delivery_t *d, const void *p, size_t len, bool more)
{
    lep_link_t *l = d->link;
    if (l->receiver || (d->flags & (LEPI_D_WRITE_DONE | LEPI_D_ABORT_PENDING | LEPI_D_ABORTED)))
        return LEP_ERR_STATE;
    if (len && !p)
        return LEP_ERR_INVALID;
    if (l->remote_max_message_size && d->total + len > l->remote_max_message_size)
        return LEP_ERR_LIMIT;
    if (lep_buf_append(&d->data, p, len) != 0)
        return LEP_ERR_NOMEM;
    d->total += len;
    if (!more)
        d->flags |= LEPI_D_WRITE_DONE;
    lepi_link_pump(l);
    return 0;
}

int
lep_delivery_abort(lep_delivery_t *d)
{
    lep_link_t *l = d->link;
    if (l->receiver || (d->flags & (LEPI_D_SENT_ALL | LEPI_D_ABORTED | LEPI_D_ABORT_PENDING)))
        return LEP_ERR_STATE;
    d->data.len = d->off = 0;
    uncount(d); /* an aborted delivery is settled (2.7.5) */
    if (!(d->flags & LEPI_D_STARTED)) {
        /* Never on the wire: the credit goes back. */
        l->delivery_count--;
        l->credit++;
        d->flags |= LEPI_D_ABORTED | LEPI_D_SENT_ALL;
        lep_delivery_t **pp = &l->sq_head;
        l->sq_tail = NULL;
        while (*pp) {
            if (*pp == d) {
                *pp = d->snext;
                d->flags &= ~(uint32_t)LEPI_D_ON_SEND;
                if (l->queued)
                    l->queued--;
            } else {
                l->sq_tail = *pp;
                pp = &(*pp)->snext;
            }
        }
        return 0;
    }
    d->flags |= LEPI_D_ABORT_PENDING;
    lepi_link_pump(l);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Transfers in                                                        */

void
lepi_on_transfer(lep_session_t *s, const lep_transfer_t *t, lep_bytes_t payload)
{
    lep_conn_t *c = s->conn;
    if (s->incoming_window == 0) {
        lepi_session_fail(s, LEP_AMQP_ERR_SESSION_WINDOW_VIOLATION,
                          "transfer beyond the incoming window");
        return;
    }
    s->next_incoming_id++;
    s->incoming_window--;
    /* The window reopens when output is next prepared, so a peer that
     * sends past it within one batch of input is caught. */
    if (s->incoming_window <= s->incoming_window_max / 2)
        s->flow_pending = true;
    lep_link_t *l = lepi_link_by_rhandle(s, t->handle);
    if (!l) {
        lepi_session_fail(s, LEP_AMQP_ERR_SESSION_UNATTACHED_HANDLE,
                          "transfer on a handle that is not attached");
        return;
    }
    if (l->local_state == LEP_STATE_CLOSED)
        return; /* detached by us: the peer has not seen it yet */
    if (!l->receiver) {
        lepi_link_fail(l, LEP_AMQP_ERR_NOT_ALLOWED, "transfer to a sending link");
        return;
    }
    lep_delivery_t *d = l->current;
    if (d) {
        if ((t->present & LEP_TRANSFER_HAS_DELIVERY_ID) && t->delivery_id != d->id) {
            lepi_link_fail(l, LEP_AMQP_ERR_INVALID_FIELD,
                           "delivery-id changed inside a multi-frame transfer");
            return;
        }
    } else {
        if (t->aborted && !(t->present & LEP_TRANSFER_HAS_DELIVERY_ID))
            return; /* abort of nothing we have */
        if (!(t->present & LEP_TRANSFER_HAS_DELIVERY_ID) ||
            !(t->present & LEP_TRANSFER_HAS_DELIVERY_TAG)) {
            lepi_link_fail(l, LEP_AMQP_ERR_INVALID_FIELD,
                           "first transfer of a delivery without delivery-id or tag");
            return;
        }
        if (t->delivery_tag.len > LEPI_TAG_MAX) {
            lepi_link_fail(l, LEP_AMQP_ERR_INVALID_FIELD, "delivery-tag longer than 32 bytes");
            return;
        }
        /* A transfer beyond the link credit is taken, not refused with
         * transfer-limit-exceeded (which the spec allows): RabbitMQ 3.x
         * sends a few more than granted when credit is topped up while
         * messages are on their way (rabbitmq-server#2597), and Proton
         * takes them too.  The session window and max_unsettled still
         * bound what a peer can push. */
        if (l->unsettled >= c->max_unsettled) {
            lepi_link_fail(l, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED,
                           "too many unsettled deliveries");
            return;
        }
        d = delivery_new(l);
        if (!d) {
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
            return;
        }
        if (l->credit)
            l->credit--;
        l->delivery_count++;
        d->id = t->delivery_id;
        if (t->delivery_tag.len)
            memcpy(d->tag, t->delivery_tag.ptr, t->delivery_tag.len);
        d->taglen = (uint8_t)t->delivery_tag.len;
        d->message_format = t->message_format;
        l->current = d;
        if (t->settled)
            d->flags |= LEPI_D_REMOTE_SETTLED | LEPI_D_PRESETTLED;
        else
            unsettled_append(d);
    }
    if (t->settled && !(d->flags & LEPI_D_REMOTE_SETTLED)) {
        d->flags |= LEPI_D_REMOTE_SETTLED;
        unsettled_remove(d);
    }
    uint8_t chg = 0;
    if (t->aborted) {
        uncount(d);
        d->flags |= LEPI_D_ABORTED | LEPI_D_REMOTE_SETTLED;
        d->flags &= ~(uint32_t)LEPI_D_PARTIAL;
        d->data.len = d->off = 0;
        l->current = NULL;
        unsettled_remove(d);
        chg |= LEPI_CHG_READABLE;
    } else {
        if (l->max_message_size && d->total + payload.len > l->max_message_size) {
            d->flags |= LEPI_D_ABORTED;
            d->flags &= ~(uint32_t)LEPI_D_PARTIAL;
            l->current = NULL;
            unsettled_remove(d);
            if (!(d->flags & LEPI_D_SETTLED))
                lepi_delivery_event(d, LEPI_CHG_READABLE);
            lepi_link_fail(l, LEP_AMQP_ERR_LINK_MESSAGE_SIZE_EXCEEDED,
                           "message larger than max-message-size");
            maybe_release(d);
            return;
        }
        d->total += payload.len;
        if (!(d->flags & LEPI_D_SETTLED) && payload.len) {
            if (d->off && d->off >= d->data.len / 2) {
                memmove(d->data.data, d->data.data + d->off, d->data.len - d->off);
                d->data.len -= d->off;
                d->off = 0;
            }
            if (lep_buf_append(&d->data, payload.ptr, payload.len) != 0) {
                lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
                return;
            }
        }
        if (t->more) {
            d->flags |= LEPI_D_PARTIAL;
        } else {
            d->flags &= ~(uint32_t)LEPI_D_PARTIAL;
            l->current = NULL;
        }
        chg |= LEPI_CHG_READABLE;
    }
    if (t->present & LEP_TRANSFER_HAS_STATE) {
        if (store_state(&d->remote_buf, &d->remote, t->state) != 0) {
            lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "malformed delivery state");
            return;
        }
        chg |= LEPI_CHG_UPDATED;
    }
    if (d->flags & LEPI_D_SETTLED) {
        maybe_release(d); /* the application already gave it up */
        return;
    }
    lepi_delivery_event(d, chg);
}

/* ------------------------------------------------------------------ */
/* Dispositions                                                        */

void
lepi_on_disposition(lep_session_t *s, const lep_disposition_t *disp)
{
    uint32_t first = disp->first;
    uint32_t last = (disp->present & LEP_DISPOSITION_HAS_LAST) ? disp->last : first;
    uint32_t span = last - first;
    if (span > 0x7fffffffu) {
        lepi_conn_fail(s->conn, LEP_AMQP_ERR_INVALID_FIELD, "disposition range inverted");
        return;
    }
    /* role is who sent it: the receiver's disposition is about our
     * outgoing deliveries. */
    lep_delivery_t *d = disp->role ? s->out_head : s->in_head;
    lep_outcome_t probe;
    if ((disp->present & LEP_DISPOSITION_HAS_STATE) && decode_outcome(disp->state, &probe) != 0) {
        lepi_conn_fail(s->conn, LEP_AMQP_ERR_DECODE_ERROR, "malformed delivery state");
        return;
    }
    while (d) {
        lep_delivery_t *next = d->next;
        uint32_t off = d->id - first;
        if ((int32_t)off >= 0) {
            if (off > span)
                break;
            uint8_t chg = 0;
            if (disp->present & LEP_DISPOSITION_HAS_STATE) {
                if (store_decoded(&d->remote_buf, &d->remote, disp->state, &probe) != 0) {
                    lepi_conn_fail(s->conn, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED,
                                   "out of memory");
                    return;
                }
                chg |= LEPI_CHG_UPDATED;
            }
            if (disp->settled) {
                d->flags |= LEPI_D_REMOTE_SETTLED;
                unsettled_remove(d);
                chg |= LEPI_CHG_SETTLED;
            }
            if (chg)
                lepi_delivery_event(d, chg);
        }
        d = next;
    }
}

static int
queue_disposition(lep_delivery_t *d)
{
    if (d->flags & LEPI_D_DISP_QUEUED)
        return 0;
    lep_session_t *s = d->link->session;
    d->flags |= LEPI_D_DISP_QUEUED;
    d->dnext = NULL;
    if (s->dq_tail)
        s->dq_tail->dnext = d;
    else
        s->dq_head = d;
    s->dq_tail = d;
    return 0;
}

static int
cmp_disp(const void *a, const void *b)
{
    const lep_delivery_t *x = *(lep_delivery_t *const *)a, *y = *(lep_delivery_t *const *)b;
    if (x->link->receiver != y->link->receiver)
        return x->link->receiver ? 1 : -1;
    int32_t d = (int32_t)(x->id - y->id);
    return d < 0 ? -1 : d > 0;
}

static bool
same_disp(const lep_delivery_t *a, const lep_delivery_t *b)
{
    return a->link->receiver == b->link->receiver && b->id == a->id + 1 &&
           ((a->flags ^ b->flags) & LEPI_D_SETTLED) == 0 &&
           a->local_buf.len == b->local_buf.len &&
           (a->local_buf.len == 0 ||
            memcmp(a->local_buf.data, b->local_buf.data, a->local_buf.len) == 0);
}

static int
write_disposition(lep_session_t *s, lep_delivery_t *a, lep_delivery_t *b)
{
    lep_performative_t p;
    p.code = LEP_DESC_DISPOSITION;
    lep_disposition_t *d = &p.u.disposition;
    lep_disposition_init(d);
    d->present = LEP_DISPOSITION_HAS_ROLE | LEP_DISPOSITION_HAS_FIRST;
    d->role = a->link->receiver;
    d->first = a->id;
    if (b != a) {
        d->present |= LEP_DISPOSITION_HAS_LAST;
        d->last = b->id;
    }
    if (a->flags & LEPI_D_SETTLED) {
        d->present |= LEP_DISPOSITION_HAS_SETTLED;
        d->settled = true;
    }
    if (a->local_buf.len) {
        d->present |= LEP_DISPOSITION_HAS_STATE;
        d->state = lep_buf_bytes(&a->local_buf);
    }
    return lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
}

void
lepi_flush_dispositions(lep_session_t *s)
{
    if (!s->dq_head)
        return;
    uint32_t n = 0;
    for (lep_delivery_t *d = s->dq_head; d; d = d->dnext)
        n++;
    bool ok = lepi_conn_can_send(s->conn) && !s->end_sent && s->begin_sent;
    if (ok && n > s->dsort_cap) {
        uint32_t cap = s->dsort_cap ? s->dsort_cap : 64;
        while (cap < n)
            cap *= 2;
        lep_delivery_t **a = lep_realloc(s->dsort, cap * sizeof *a);
        if (!a) {
            lepi_conn_fail(s->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "out of memory");
            ok = false;
        } else {
            s->dsort = a;
            s->dsort_cap = cap;
        }
    }
    lep_delivery_t *head = s->dq_head;
    s->dq_head = s->dq_tail = NULL;
    if (!ok) {
        while (head) {
            lep_delivery_t *d = head;
            head = d->dnext;
            d->flags &= ~(uint32_t)LEPI_D_DISP_QUEUED;
            maybe_release(d);
        }
        return;
    }
    n = 0;
    for (lep_delivery_t *d = head; d; d = d->dnext)
        s->dsort[n++] = d;
    bool sorted = true;
    for (uint32_t i = 1; i < n && sorted; i++)
        sorted = cmp_disp(&s->dsort[i - 1], &s->dsort[i]) <= 0;
    if (!sorted)
        qsort(s->dsort, n, sizeof *s->dsort, cmp_disp);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j + 1 < n && same_disp(s->dsort[j], s->dsort[j + 1]))
            j++;
        if (write_disposition(s, s->dsort[i], s->dsort[j]) != 0) {
            lepi_conn_fail(s->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "out of memory");
            j = n - 1;
        }
        i = j + 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        lep_delivery_t *d = s->dsort[i];
        d->flags &= ~(uint32_t)LEPI_D_DISP_QUEUED;
        maybe_release(d);
    }
}

/* ------------------------------------------------------------------ */
/* Application side                                                    */

int
lep_delivery_update(lep_delivery_t *d, const lep_outcome_t *o)
{
    if (!o)
        return LEP_ERR_INVALID;
    if (d->flags & LEPI_D_SETTLED)
        return LEP_ERR_STATE;
    int rc;
    if (o->type == LEP_OUTCOME_ACCEPTED || o->type == LEP_OUTCOME_RELEASED) {
        /* The hot outcomes: a constant encoding, nothing to decode. */
        static const uint8_t acc[] = {0x00, 0x53, 0x24, 0x45};
        static const uint8_t rel[] = {0x00, 0x53, 0x26, 0x45};
        lep_outcome_t dec;
        memset(&dec, 0, sizeof dec);
        dec.type = o->type;
        rc = store_decoded(&d->local_buf, &d->local,
                           LEP_BYTES(o->type == LEP_OUTCOME_ACCEPTED ? acc : rel, 4), &dec);
    } else {
        uint8_t mem[256];
        lep_buf_t tmp;
        lep_buf_init_fixed(&tmp, mem, sizeof mem);
        lep_encoder_t e;
        lep_encoder_init(&e, &tmp);
        encode_outcome(&e, o);
        rc = lep_encoder_finish(&e);
        if (rc == LEP_ERR_OVERFLOW) {
            lep_buf_init(&tmp);
            lep_encoder_init(&e, &tmp);
            encode_outcome(&e, o);
            rc = lep_encoder_finish(&e);
        }
        if (rc == 0)
            rc = store_state(&d->local_buf, &d->local, lep_buf_bytes(&tmp));
        lep_buf_fini(&tmp);
    }
    if (rc != 0)
        return rc == LEP_ERR_NOMEM ? rc : LEP_ERR_INVALID;
    bool on_wire = d->link->receiver || (d->flags & LEPI_D_STARTED);
    if (!(d->flags & LEPI_D_REMOTE_SETTLED) && on_wire)
        queue_disposition(d);
    return 0;
}

int
lep_delivery_accept(lep_delivery_t *d)
{
    lep_outcome_t o;
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_ACCEPTED;
    return lep_delivery_update(d, &o);
}

int
lep_delivery_release(lep_delivery_t *d)
{
    lep_outcome_t o;
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_RELEASED;
    return lep_delivery_update(d, &o);
}

int
lep_delivery_settle(lep_delivery_t *d)
{
    if (d->flags & LEPI_D_SETTLED)
        return LEP_ERR_STATE;
    lep_link_t *l = d->link;
    d->flags |= LEPI_D_SETTLED;
    uncount(d);
    if (d->flags & LEPI_D_EVENT_QUEUED) {
        /* The application is done with d: an event still queued for it
         * would hand it back. */
        lepi_event_purge(l->session->conn, d);
        d->flags &= ~(uint32_t)LEPI_D_EVENT_QUEUED;
    }
    bool need_frame = !(d->flags & (LEPI_D_REMOTE_SETTLED | LEPI_D_PRESETTLED | LEPI_D_ABORTED));
    unsettled_remove(d);
    if (!l->receiver && !(d->flags & LEPI_D_STARTED)) {
        /* Settled before any frame left: it goes out pre-settled. */
        d->flags |= LEPI_D_PRESETTLED;
        need_frame = false;
    }
    if (need_frame && l->local_state == LEP_STATE_ACTIVE && !l->detach_sent)
        queue_disposition(d);
    maybe_release(d);
    return 0;
}

lep_bytes_t
lep_delivery_data(const lep_delivery_t *d)
{
    if (!d->link->receiver)
        return (lep_bytes_t){NULL, 0};
    return LEP_BYTES(lepi_at(&d->data, d->off), d->data.len - d->off);
}

void
lep_delivery_consume(lep_delivery_t *d, size_t n)
{
    if (!d->link->receiver)
        return;
    size_t have = d->data.len - d->off;
    d->off += n < have ? n : have;
    if (d->off == d->data.len)
        d->off = d->data.len = 0;
}

bool lep_delivery_partial(const lep_delivery_t *d) { return (d->flags & LEPI_D_PARTIAL) != 0; }
bool lep_delivery_aborted(const lep_delivery_t *d) { return (d->flags & LEPI_D_ABORTED) != 0; }
lep_bytes_t lep_delivery_tag(const lep_delivery_t *d) { return LEP_BYTES(d->tag, d->taglen); }
uint32_t lep_delivery_message_format(const lep_delivery_t *d) { return d->message_format; }
lep_link_t *lep_delivery_link(const lep_delivery_t *d) { return d->link; }
bool lep_delivery_readable(const lep_delivery_t *d) { return (d->seen & LEPI_CHG_READABLE) != 0; }
bool lep_delivery_updated(const lep_delivery_t *d) { return (d->seen & LEPI_CHG_UPDATED) != 0; }
bool lep_delivery_remote_settled(const lep_delivery_t *d) { return (d->flags & LEPI_D_REMOTE_SETTLED) != 0; }
const lep_outcome_t *lep_delivery_remote_state(const lep_delivery_t *d) { return &d->remote; }
const lep_outcome_t *lep_delivery_local_state(const lep_delivery_t *d) { return &d->local; }
void lep_delivery_set_context(lep_delivery_t *d, void *ctx) { d->ctx = ctx; }
void *lep_delivery_context(const lep_delivery_t *d) { return d->ctx; }

static lep_delivery_t *
skip_settled(lep_delivery_t *d)
{
    while (d && (d->flags & LEPI_D_SETTLED))
        d = d->lnext;
    return d;
}

lep_delivery_t *lep_link_deliveries(const lep_link_t *l) { return skip_settled(l->all); }
lep_delivery_t *lep_delivery_next(const lep_delivery_t *d) { return skip_settled(d->lnext); }
