/* Links: attach and detach, handles both ways, termini, settle modes,
 * and link credit (spec 2.6.7). */
#include "engine/engine_internal.h"

int lepi_map_fit(void ***map, uint32_t *n, uint32_t i);

void
lep_link_opts_init(lep_link_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->snd_settle_mode = LEP_SND_SETTLE_MIXED;
    o->rcv_settle_mode = LEP_RCV_SETTLE_FIRST;
}

/* Our termini live encoded in terms_buf; the structs are views of it. */
static int
set_termini(lep_link_t *l, bool has_src, const lep_source_t *src, bool has_tgt,
            const lep_target_t *tgt)
{
    lep_buf_t b;
    lep_buf_init(&b);
    lep_encoder_t e;
    lep_encoder_init(&e, &b);
    if (has_src)
        lep_source_encode(&e, src);
    size_t split = b.len;
    if (has_tgt)
        lep_target_encode(&e, tgt);
    int rc = lep_encoder_finish(&e);
    lep_source_t s2;
    lep_target_t t2;
    lep_source_init(&s2);
    lep_target_init(&t2);
    if (rc == 0 && has_src) {
        lep_reader_t r;
        lep_reader_init(&r, b.data, split);
        rc = lep_source_decode(&r, &s2);
    }
    if (rc == 0 && has_tgt) {
        lep_reader_t r;
        lep_reader_init(&r, b.data + split, b.len - split);
        rc = lep_target_decode(&r, &t2);
    }
    if (rc != 0) {
        lep_buf_fini(&b);
        return rc == LEP_ERR_NOMEM ? rc : LEP_ERR_INVALID;
    }
    lep_buf_fini(&l->terms_buf);
    l->terms_buf = b;
    l->has_source = has_src;
    l->has_target = has_tgt;
    l->terms_set = true;
    l->source = s2;
    l->target = t2;
    return 0;
}

static lep_bytes_t
src_raw(const lep_link_t *l)
{
    if (!l->has_source)
        return (lep_bytes_t){NULL, 0};
    size_t n = l->terms_buf.len;
    if (l->has_target) {
        /* The source is first; re-measure it with a reader. */
        lep_reader_t r;
        lep_reader_init(&r, l->terms_buf.data, n);
        if (lep_reader_skip(&r) == 0)
            n = (size_t)(r.p - l->terms_buf.data);
    }
    return LEP_BYTES(l->terms_buf.data, n);
}

static lep_bytes_t
tgt_raw(const lep_link_t *l)
{
    if (!l->has_target)
        return (lep_bytes_t){NULL, 0};
    size_t off = l->has_source ? src_raw(l).len : 0;
    return LEP_BYTES(l->terms_buf.data + off, l->terms_buf.len - off);
}

static lep_link_t *
link_alloc(lep_session_t *s, const char *name, size_t namelen, bool receiver)
{
    lep_link_t *l = lep_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->name = lepi_memdup(name, namelen);
    if (!l->name) {
        lep_free(l);
        return NULL;
    }
    l->namelen = namelen;
    l->session = s;
    l->receiver = receiver;
    l->snd_settle_mode = LEP_SND_SETTLE_MIXED;
    l->rcv_settle_mode = LEP_RCV_SETTLE_FIRST;
    l->max_message_size = s->conn->max_message_size;
    l->next = s->links;
    s->links = l;
    s->nlinks++;
    return l;
}

int
lep_link_new(lep_session_t *s, const lep_link_opts_t *o, lep_link_t **out)
{
    if (!s || !o || !out || !o->name || !*o->name)
        return LEP_ERR_INVALID;
    *out = NULL;
    if (o->snd_settle_mode > LEP_SND_SETTLE_MIXED || o->rcv_settle_mode > LEP_RCV_SETTLE_SECOND)
        return LEP_ERR_INVALID;
    if (s->local_state == LEP_STATE_CLOSED)
        return LEP_ERR_STATE;
    lep_link_t *l = link_alloc(s, o->name, strlen(o->name), o->receiver);
    if (!l)
        return LEP_ERR_NOMEM;
    l->snd_settle_mode = o->snd_settle_mode;
    l->rcv_settle_mode = o->rcv_settle_mode;
    if (o->max_message_size)
        l->max_message_size = o->max_message_size;
    int rc = set_termini(l, o->source != NULL, o->source, o->target != NULL, o->target);
    size_t a = o->offered_capabilities.len, d = o->desired_capabilities.len,
           p = o->properties.len, u = o->unsettled.len;
    if (rc == 0 && a + d + p + u) {
        rc = lep_buf_reserve(&l->caps_buf, a + d + p + u);
        if (rc == 0) {
            lep_buf_append(&l->caps_buf, o->offered_capabilities.ptr, a);
            lep_buf_append(&l->caps_buf, o->desired_capabilities.ptr, d);
            lep_buf_append(&l->caps_buf, o->properties.ptr, p);
            lep_buf_append(&l->caps_buf, o->unsettled.ptr, u);
            l->offered_caps = LEP_BYTES(l->caps_buf.data, a);
            l->desired_caps = LEP_BYTES(l->caps_buf.data + a, d);
            l->properties = LEP_BYTES(l->caps_buf.data + a + d, p);
            l->unsettled_map = LEP_BYTES(l->caps_buf.data + a + d + p, u);
        }
    }
    l->incomplete_unsettled = o->incomplete_unsettled;
    if (rc != 0) {
        lepi_link_destroy(l);
        return rc;
    }
    *out = l;
    return 0;
}

int
lep_link_set_source(lep_link_t *l, const lep_source_t *src)
{
    if (l->attach_sent)
        return LEP_ERR_STATE;
    lep_target_t t = l->target;
    return set_termini(l, src != NULL, src, l->has_target, &t);
}

int
lep_link_set_target(lep_link_t *l, const lep_target_t *tgt)
{
    if (l->attach_sent)
        return LEP_ERR_STATE;
    lep_source_t s = l->source;
    return set_termini(l, l->has_source, &s, tgt != NULL, tgt);
}

static void
unmap_handle(lep_link_t *l)
{
    lep_session_t *s = l->session;
    if (l->attach_sent && l->handle < s->nhandles && s->handles[l->handle] == l)
        s->handles[l->handle] = NULL;
}

static void
unmap_rhandle(lep_link_t *l)
{
    lep_session_t *s = l->session;
    if (l->has_remote_handle && l->remote_handle < s->nrhandles &&
        s->rhandles[l->remote_handle] == l)
        s->rhandles[l->remote_handle] = NULL;
    l->has_remote_handle = false;
}

void
lepi_link_destroy(lep_link_t *l)
{
    lep_session_t *s = l->session;
    lepi_link_drop_deliveries(l);
    unmap_handle(l);
    unmap_rhandle(l);
    for (lep_link_t **pp = &s->links; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    s->nlinks--;
    lepi_event_purge(s->conn, l);
    lepi_cond_fini(&l->local_cond);
    lepi_cond_fini(&l->remote_cond);
    lep_buf_fini(&l->terms_buf);
    lep_buf_fini(&l->caps_buf);
    lep_buf_fini(&l->remote_attach_buf);
    lep_free(l->name);
    lep_free(l);
}

int
lep_link_free(lep_link_t *l)
{
    if (!l)
        return 0;
    lep_session_t *s = l->session;
    lep_conn_t *c = s->conn;
    bool done = (l->local_state != LEP_STATE_ACTIVE && l->remote_state != LEP_STATE_ACTIVE) ||
                s->local_state == LEP_STATE_CLOSED || s->remote_state == LEP_STATE_CLOSED ||
                c->local_state == LEP_STATE_CLOSED || c->input_done;
    if (!done)
        return LEP_ERR_STATE;
    lepi_link_destroy(l);
    return 0;
}

lep_link_t *
lepi_link_by_rhandle(lep_session_t *s, uint32_t h)
{
    return h < s->nrhandles ? s->rhandles[h] : NULL;
}

static int
send_attach(lep_link_t *l)
{
    lep_session_t *s = l->session;
    lep_performative_t p;
    p.code = LEP_DESC_ATTACH;
    lep_attach_t *a = &p.u.attach;
    lep_attach_init(a);
    a->present = LEP_ATTACH_HAS_NAME | LEP_ATTACH_HAS_HANDLE | LEP_ATTACH_HAS_ROLE |
                 LEP_ATTACH_HAS_SND_SETTLE_MODE | LEP_ATTACH_HAS_RCV_SETTLE_MODE;
    a->name = LEP_BYTES(l->name, l->namelen);
    a->handle = l->handle;
    a->role = l->receiver;
    a->snd_settle_mode = l->snd_settle_mode;
    a->rcv_settle_mode = l->rcv_settle_mode;
    if (l->has_source) {
        a->present |= LEP_ATTACH_HAS_SOURCE;
        a->source = src_raw(l);
    }
    if (l->has_target) {
        a->present |= LEP_ATTACH_HAS_TARGET;
        a->target = tgt_raw(l);
    }
    if (!l->receiver) {
        a->present |= LEP_ATTACH_HAS_INITIAL_DELIVERY_COUNT;
        a->initial_delivery_count = l->delivery_count;
    }
    if (l->max_message_size) {
        a->present |= LEP_ATTACH_HAS_MAX_MESSAGE_SIZE;
        a->max_message_size = l->max_message_size;
    }
    if (l->offered_caps.len) {
        a->present |= LEP_ATTACH_HAS_OFFERED_CAPABILITIES;
        a->offered_capabilities = l->offered_caps;
    }
    if (l->desired_caps.len) {
        a->present |= LEP_ATTACH_HAS_DESIRED_CAPABILITIES;
        a->desired_capabilities = l->desired_caps;
    }
    if (l->properties.len) {
        a->present |= LEP_ATTACH_HAS_PROPERTIES;
        a->properties = l->properties;
    }
    if (l->unsettled_map.len) {
        a->present |= LEP_ATTACH_HAS_UNSETTLED;
        a->unsettled = l->unsettled_map;
    }
    if (l->incomplete_unsettled) {
        a->present |= LEP_ATTACH_HAS_INCOMPLETE_UNSETTLED;
        a->incomplete_unsettled = true;
    }
    return lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
}

static int
alloc_handle(lep_link_t *l)
{
    lep_session_t *s = l->session;
    uint32_t h = 0;
    while (h < s->nhandles && s->handles[h])
        h++;
    if (h > s->remote_handle_max || h >= s->conn->max_links)
        return LEP_ERR_LIMIT;
    if (lepi_map_fit((void ***)&s->handles, &s->nhandles, h) != 0)
        return LEP_ERR_NOMEM;
    l->handle = h;
    return 0;
}

int
lep_link_attach(lep_link_t *l)
{
    lep_session_t *s = l->session;
    if (l->local_state != LEP_STATE_UNINIT || s->local_state != LEP_STATE_ACTIVE ||
        !lepi_conn_can_send(s->conn))
        return LEP_ERR_STATE;
    int rc;
    if (!l->terms_set && (rc = set_termini(l, l->has_remote_source, &l->remote_source,
                                            l->has_remote_target, &l->remote_target)) != 0)
        return rc;
    if ((rc = alloc_handle(l)) != 0)
        return rc;
    if ((rc = send_attach(l)) != 0)
        return rc;
    s->handles[l->handle] = l;
    l->attach_sent = true;
    l->local_state = LEP_STATE_ACTIVE;
    if (!l->internal)
        lepi_event(s->conn, LEP_EVENT_LINK_LOCAL_ATTACH, s, l, NULL);
    return 0;
}

static int
send_detach(lep_link_t *l, bool closed)
{
    lep_session_t *s = l->session;
    lep_performative_t p;
    p.code = LEP_DESC_DETACH;
    lep_detach_t *d = &p.u.detach;
    lep_detach_init(d);
    d->present = LEP_DETACH_HAS_HANDLE;
    d->handle = l->handle;
    if (closed) {
        d->present |= LEP_DETACH_HAS_CLOSED;
        d->closed = true;
    }
    lep_buf_t eb;
    lep_buf_init(&eb);
    if (lep_condition_set(&l->local_cond.view)) {
        lep_encoder_t e;
        lep_encoder_init(&e, &eb);
        lepi_cond_encode(&e, &l->local_cond.view);
        if (lep_encoder_finish(&e) != 0) {
            lep_buf_fini(&eb);
            return LEP_ERR_NOMEM;
        }
        d->present |= LEP_DETACH_HAS_ERROR;
        d->error = lep_buf_bytes(&eb);
    }
    int rc = lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
    lep_buf_fini(&eb);
    return rc;
}

static int
do_detach(lep_link_t *l, bool closed)
{
    lep_session_t *s = l->session;
    l->local_state = LEP_STATE_CLOSED;
    l->local_closed_flag = closed;
    if (!l->internal)
        lepi_event(s->conn, LEP_EVENT_LINK_LOCAL_DETACH, s, l, NULL);
    if (l->attach_sent && !l->detach_sent && !s->end_sent && lepi_conn_can_send(s->conn)) {
        /* Dispositions first: the peer must see outcomes before the
         * link goes. */
        lepi_flush_dispositions(s);
        int rc = send_detach(l, closed);
        if (rc != 0)
            return rc;
    }
    l->detach_sent = true;
    if (l->remote_state == LEP_STATE_CLOSED)
        unmap_handle(l);
    return 0;
}

int
lep_link_detach(lep_link_t *l, bool closed, const lep_condition_t *cond)
{
    if (l->local_state == LEP_STATE_CLOSED)
        return LEP_ERR_STATE;
    int crc = lepi_cond_check(cond);
    if (crc != 0)
        return crc;
    if (cond && lepi_cond_set(&l->local_cond, cond) != 0)
        return LEP_ERR_NOMEM;
    return do_detach(l, closed);
}

void
lepi_link_fail(lep_link_t *l, const char *cond, const char *desc)
{
    if (l->local_state == LEP_STATE_CLOSED)
        return;
    lepi_cond_set_str(&l->local_cond, cond, desc);
    if (l->local_state == LEP_STATE_UNINIT) {
        /* Spec 2.6.3: a refused attach is answered with an attach
         * (no termini) followed by the detach. */
        l->has_source = l->has_target = false;
        l->terms_set = true;
        if (lep_link_attach(l) != 0) {
            lepi_session_fail(l->session, cond, desc);
            return;
        }
    }
    if (do_detach(l, true) != 0)
        lepi_conn_fail(l->session->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "cannot detach");
}

void
lepi_on_attach(lep_session_t *s, const lep_attach_t *a0, lep_bytes_t body)
{
    lep_conn_t *c = s->conn;
    if (a0->handle > s->handle_max) {
        lepi_conn_fail(c, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                       "attach handle %u above handle-max %u", a0->handle, s->handle_max);
        return;
    }
    if (lepi_link_by_rhandle(s, a0->handle)) {
        lepi_session_fail(s, LEP_AMQP_ERR_SESSION_HANDLE_IN_USE, "attach on a handle in use");
        return;
    }
    if (lepi_map_fit((void ***)&s->rhandles, &s->nrhandles, a0->handle) != 0) {
        lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
        return;
    }
    bool receiver = !a0->role;
    lep_link_t *l = NULL;
    for (lep_link_t *x = s->links; x; x = x->next)
        if (x->receiver == receiver && x->attach_sent && !x->has_remote_handle &&
            x->remote_state == LEP_STATE_UNINIT && x->namelen == a0->name.len &&
            memcmp(x->name, a0->name.ptr, x->namelen) == 0) {
            l = x;
            break;
        }
    bool fresh = l == NULL;
    if (fresh) {
        /* No count check: handle-max (max_links - 1, checked above)
         * already bounds the links the peer can have attached. */
        l = link_alloc(s, (const char *)a0->name.ptr, a0->name.len, receiver);
        if (!l) {
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
            return;
        }
    }
    /* Keep the whole body: the attach's views point into it. */
    lep_buf_clear(&l->remote_attach_buf);
    int rc = lep_buf_append(&l->remote_attach_buf, body.ptr, body.len);
    lep_performative_t p;
    if (rc == 0) {
        lep_reader_t r;
        lep_reader_init(&r, l->remote_attach_buf.data, l->remote_attach_buf.len);
        rc = lep_performative_decode(&r, &p);
    }
    lep_source_init(&l->remote_source);
    lep_target_init(&l->remote_target);
    l->has_remote_source = l->has_remote_target = false;
    if (rc == 0) {
        l->remote_attach = p.u.attach;
        const lep_attach_t *a = &l->remote_attach;
        if (a->present & LEP_ATTACH_HAS_SOURCE) {
            lep_reader_t r;
            lep_reader_init(&r, a->source.ptr, a->source.len);
            rc = lep_source_decode(&r, &l->remote_source);
            l->has_remote_source = rc == 0;
        }
        if (rc == 0 && (a->present & LEP_ATTACH_HAS_TARGET)) {
            lep_reader_t r;
            lep_reader_init(&r, a->target.ptr, a->target.len);
            /* A coordinator target (transactions) is not a target: keep
             * it raw in the attach and report no target. */
            int trc = lep_target_decode(&r, &l->remote_target);
            l->has_remote_target = trc == 0;
            if (trc != 0 && trc != LEP_ERR_TYPE)
                rc = trc;
        }
    }
    if (rc != 0) {
        if (fresh)
            lepi_link_destroy(l);
        lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "malformed attach");
        return;
    }
    const lep_attach_t *a = &l->remote_attach;
    l->has_remote_handle = true;
    l->remote_handle = a->handle;
    s->rhandles[a->handle] = l;
    l->remote_state = LEP_STATE_ACTIVE;
    l->remote_max_message_size = a->max_message_size;
    if (fresh) {
        l->snd_settle_mode = a->snd_settle_mode;
        l->rcv_settle_mode = a->rcv_settle_mode;
    } else if (l->receiver) {
        l->snd_settle_mode = a->snd_settle_mode;
    } else {
        l->rcv_settle_mode = a->rcv_settle_mode;
    }
    if (l->receiver)
        l->delivery_count = a->initial_delivery_count;
    lepi_event(c, LEP_EVENT_LINK_REMOTE_ATTACH, s, l, NULL);
}

void
lepi_on_detach(lep_session_t *s, const lep_detach_t *d)
{
    lep_link_t *l = lepi_link_by_rhandle(s, d->handle);
    if (!l) {
        lepi_session_fail(s, LEP_AMQP_ERR_SESSION_UNATTACHED_HANDLE,
                          "detach of a handle that is not attached");
        return;
    }
    if ((d->present & LEP_DETACH_HAS_ERROR) && lepi_cond_decode(&l->remote_cond, d->error) != 0)
        lepi_cond_set_str(&l->remote_cond, LEP_AMQP_ERR_INTERNAL_ERROR,
                          "undecodable error in detach");
    l->remote_state = LEP_STATE_CLOSED;
    /* RabbitMQ answers a closing detach without closed=true: an answer
     * to our close is a close. */
    l->remote_closed = d->closed || (l->detach_sent && l->local_closed_flag);
    unmap_rhandle(l);
    if (l->local_state == LEP_STATE_CLOSED)
        unmap_handle(l);
    lepi_event(s->conn, LEP_EVENT_LINK_REMOTE_DETACH, s, l, NULL);
}

/* ------------------------------------------------------------------ */
/* Credit                                                              */

static void
want_flow(lep_link_t *l)
{
    l->flow_pending = true;
    l->session->links_flow_pending = true;
}

void
lepi_link_on_flow(lep_link_t *l, const lep_flow_t *f)
{
    if (!l->receiver) {
        uint32_t dc = (f->present & LEP_FLOW_HAS_DELIVERY_COUNT) ? f->delivery_count
                                                                : l->delivery_count;
        int64_t credit = (int64_t)(int32_t)(dc + f->link_credit - l->delivery_count);
        l->credit = credit > 0 ? (uint32_t)credit : 0;
        l->drain = f->drain;
    } else {
        if (f->present & LEP_FLOW_HAS_DELIVERY_COUNT) {
            uint32_t limit = l->delivery_count + l->credit;
            int32_t left = (int32_t)(limit - f->delivery_count);
            l->delivery_count = f->delivery_count;
            l->credit = left > 0 ? (uint32_t)left : 0;
        }
        l->available = f->available;
        if (l->credit == 0)
            l->drain = false;
    }
    if (f->echo && l->local_state == LEP_STATE_ACTIVE)
        want_flow(l);
    lepi_event(l->session->conn, LEP_EVENT_LINK_FLOW, l->session, l, NULL);
}

int
lep_link_flow(lep_link_t *l, uint32_t n)
{
    if (!l->receiver || l->local_state != LEP_STATE_ACTIVE)
        return LEP_ERR_STATE;
    l->credit += n;
    want_flow(l);
    return 0;
}

int
lep_link_drain(lep_link_t *l)
{
    if (!l->receiver || l->local_state != LEP_STATE_ACTIVE)
        return LEP_ERR_STATE;
    l->drain = true;
    want_flow(l);
    return 0;
}

int
lep_link_drained(lep_link_t *l)
{
    if (l->receiver || l->local_state != LEP_STATE_ACTIVE)
        return LEP_ERR_STATE;
    if (!l->drain)
        return 0;
    l->delivery_count += l->credit;
    l->credit = 0;
    want_flow(l);
    return 0;
}

/* As Proton: a sender stops draining once its credit is used or given
 * up; a receiver once the sender's flow shows the credit gone. */
bool lep_link_draining(const lep_link_t *l) { return l->drain && (l->receiver || l->credit > 0); }
uint32_t lep_link_credit(const lep_link_t *l) { return l->credit; }
uint32_t lep_link_unsettled(const lep_link_t *l) { return l->unsettled; }
uint32_t lep_link_queued(const lep_link_t *l) { return l->queued; }

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

lep_session_t *lep_link_session(const lep_link_t *l) { return l->session; }
lep_bytes_t lep_link_name(const lep_link_t *l) { return LEP_BYTES(l->name, l->namelen); }
bool lep_link_is_receiver(const lep_link_t *l) { return l->receiver; }
lep_state_t lep_link_local_state(const lep_link_t *l) { return l->local_state; }
lep_state_t lep_link_remote_state(const lep_link_t *l) { return l->remote_state; }
bool lep_link_remote_closed(const lep_link_t *l) { return l->remote_closed; }
const lep_condition_t *lep_link_remote_condition(const lep_link_t *l) { return &l->remote_cond.view; }
uint8_t lep_link_snd_settle_mode(const lep_link_t *l) { return l->snd_settle_mode; }
uint8_t lep_link_rcv_settle_mode(const lep_link_t *l) { return l->rcv_settle_mode; }
void lep_link_set_context(lep_link_t *l, void *ctx) { l->ctx = ctx; }
void *lep_link_context(const lep_link_t *l) { return l->ctx; }

const lep_attach_t *
lep_link_remote_attach(const lep_link_t *l)
{
    return l->remote_state == LEP_STATE_UNINIT && !l->remote_attach_buf.len ? NULL
                                                                            : &l->remote_attach;
}

const lep_source_t *lep_link_remote_source(const lep_link_t *l) { return l->has_remote_source ? &l->remote_source : NULL; }
const lep_target_t *lep_link_remote_target(const lep_link_t *l) { return l->has_remote_target ? &l->remote_target : NULL; }
const lep_source_t *lep_link_source(const lep_link_t *l) { return l->has_source ? &l->source : NULL; }
const lep_target_t *lep_link_target(const lep_link_t *l) { return l->has_target ? &l->target : NULL; }
