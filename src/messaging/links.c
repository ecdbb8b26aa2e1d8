/* Senders and receivers: termini, (re)attach, credit, sending, received
 * messages, outcomes and settlement. */
#include "messaging/messaging_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SELECTOR_FILTER "apache.org:selector-filter:string"
#define SELECTOR_DESCRIPTOR UINT64_C(0x0000468C00000004)

lep_session_t *lepi_connection_session(lep_connection_t *c);
static void initial_flow(lepi_mlink_t *m);

void
lep_sender_opts_init(lep_sender_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->auto_settle = true;
}

void
lep_receiver_opts_init(lep_receiver_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->credit_window = 10;
    o->auto_accept = true;
}

const char *
lepi_address_str(lep_bytes_t enc, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!enc.len)
        return buf;
    lep_reader_t r;
    lep_atom_t a;
    lep_reader_init(&r, enc.ptr, enc.len);
    if (lep_reader_next(&r, &a) != 0 || (a.type != LEP_TYPE_STRING && a.type != LEP_TYPE_SYMBOL))
        return buf;
    snprintf(buf, len, "%.*s", (int)a.u.bytes.len, (const char *)a.u.bytes.ptr);
    return buf;
}

static int
set_str(char **dst, const char *s)
{
    char *d = s ? lepi_strdup(s) : NULL;
    if (s && !d)
        return LEP_ERR_NOMEM;
    lep_free(*dst);
    *dst = d;
    return 0;
}

static int
set_addr_from(char **dst, lep_bytes_t enc)
{
    char buf[1024];
    return set_str(dst, lepi_address_str(enc, buf, sizeof buf));
}

/* ------------------------------------------------------------------ */
/* Termini                                                             */

/* Our termini are kept encoded in m->terms and decoded for each attach:
 * the views then point into m->terms, which lives as long as m. */
static int
decode_terms(const lepi_mlink_t *m, lep_source_t *src, lep_target_t *tgt)
{
    lep_reader_t r;
    int rc = 0;
    lep_source_init(src);
    lep_target_init(tgt);
    if (m->has_source) {
        lep_reader_init(&r, m->terms.data, m->source_len);
        rc = lep_source_decode(&r, src);
    }
    if (!rc && m->has_target) {
        lep_reader_init(&r, m->terms.data + m->source_len, m->target_len);
        rc = lep_target_decode(&r, tgt);
    }
    return rc;
}

static void
put_address(lep_encoder_t *e, lep_buf_t *scratch, const char *address, lep_bytes_t *out)
{
    (void)e;
    size_t at = scratch->len;
    lep_encoder_t se;
    lep_encoder_init(&se, scratch);
    lep_encode_cstring(&se, address);
    *out = LEP_BYTES(scratch->data + at, scratch->len - at);
}

static void
encode_filter(lep_buf_t *b, const char *selector, lep_bytes_t *out)
{
    size_t at = b->len;
    lep_encoder_t e;
    lep_encoder_init(&e, b);
    lep_encode_map_begin(&e);
    lep_encode_csymbol(&e, SELECTOR_FILTER);
    lep_encode_descriptor(&e, SELECTOR_DESCRIPTOR);
    lep_encode_cstring(&e, selector);
    lep_encode_map_end(&e);
    *out = LEP_BYTES(b->data + at, b->len - at);
}

/* Builds and encodes the termini of a link we open. */
static int
build_terms(lepi_mlink_t *m, const char *address, const lep_source_t *usrc,
            const lep_target_t *utgt, const lep_receiver_opts_t *ro)
{
    lep_source_t src;
    lep_target_t tgt;
    lep_buf_t scratch;
    lep_buf_init(&scratch);
    /* Views below point into scratch: reserve once so it never moves. */
    size_t need = 64 + (address ? strlen(address) : 0) +
                  (ro && ro->selector ? strlen(ro->selector) + 64 : 0);
    if (lep_buf_reserve(&scratch, need) != 0)
        return LEP_ERR_NOMEM;
    if (usrc)
        src = *usrc;
    else
        lep_source_init(&src);
    if (utgt)
        tgt = *utgt;
    else
        lep_target_init(&tgt);
    if (!m->receiver) {
        if (address) {
            put_address(NULL, &scratch, address, &tgt.address);
            tgt.present |= LEP_TARGET_HAS_ADDRESS;
        }
    } else {
        if (address) {
            put_address(NULL, &scratch, address, &src.address);
            src.present |= LEP_SOURCE_HAS_ADDRESS;
        }
        if (ro && ro->dynamic) {
            src.dynamic = true;
            src.present |= LEP_SOURCE_HAS_DYNAMIC;
        }
        if (ro && ro->durable) {
            src.durable = LEP_TERMINUS_DURABILITY_UNSETTLED_STATE;
            src.expiry_policy = lep_bytes_str(LEP_TERMINUS_EXPIRY_POLICY_NEVER);
            src.present |= LEP_SOURCE_HAS_DURABLE | LEP_SOURCE_HAS_EXPIRY_POLICY;
        }
        if (ro && ro->distribution_mode) {
            src.distribution_mode = lep_bytes_str(ro->distribution_mode);
            src.present |= LEP_SOURCE_HAS_DISTRIBUTION_MODE;
        }
        if (ro && ro->filter.len) {
            src.filter = ro->filter;
            src.present |= LEP_SOURCE_HAS_FILTER;
        } else if (ro && ro->selector) {
            encode_filter(&scratch, ro->selector, &src.filter);
            src.present |= LEP_SOURCE_HAS_FILTER;
        }
    }
    int rc = 0;
    if (scratch.len > need)
        rc = LEP_ERR_STATE; /* cannot happen: reserved above */
    lep_encoder_t e;
    lep_encoder_init(&e, &m->terms);
    if (!rc && (rc = lep_source_encode(&e, &src)) == 0)
        rc = lep_encoder_finish(&e);
    m->source_len = m->terms.len;
    if (!rc && (rc = lep_target_encode(&e, &tgt)) == 0)
        rc = lep_encoder_finish(&e);
    m->target_len = m->terms.len - m->source_len;
    m->has_source = m->has_target = true;
    lep_buf_fini(&scratch);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Link objects                                                        */

static void
link_list_add(lep_connection_t *c, lepi_mlink_t *m)
{
    m->conn = c;
    m->prev = NULL;
    m->next = c->links;
    if (c->links)
        c->links->prev = m;
    c->links = m;
}

static void
mlink_free(lepi_mlink_t *m)
{
    lep_connection_t *c = m->conn;
    if (m->prev)
        m->prev->next = m->next;
    else if (c->links == m)
        c->links = m->next;
    if (m->next)
        m->next->prev = m->prev;
    if (m->link)
        lep_link_set_context(m->link, NULL);
    lep_buf_fini(&m->terms);
    lep_free(m->close_name);
    lep_free(m->close_desc);
    lep_free(m->name);
    lep_free(m->address);
    lep_free(m->local_address);
    lep_free(m);
}

void
lepi_links_free_all(lep_connection_t *c)
{
    while (c->links)
        mlink_free(c->links);
}

static lepi_mlink_t *
mlink_new(lep_connection_t *c, bool receiver, const char *name)
{
    /* struct lep_sender and struct lep_receiver are both just the mlink. */
    lepi_mlink_t *m = lep_calloc(1, sizeof(struct lep_sender));
    if (!m)
        return NULL;
    m->receiver = receiver;
    lep_buf_init(&m->terms);
    char gen[96];
    if (!name) {
        snprintf(gen, sizeof gen, "%s-%llu", c->cont->id,
                 (unsigned long long)lepi_container_next(c->cont));
        name = gen;
    }
    if (!(m->name = lepi_strdup(name))) {
        lep_free(m);
        return NULL;
    }
    link_list_add(c, m);
    return m;
}

static void
settle_modes(const lepi_mlink_t *m, lep_link_opts_t *lo)
{
    switch (m->mode) {
    case LEP_AT_MOST_ONCE:
        lo->snd_settle_mode = LEP_SND_SETTLE_SETTLED;
        lo->rcv_settle_mode = LEP_RCV_SETTLE_FIRST;
        break;
    case LEP_EXACTLY_ONCE:
        lo->snd_settle_mode = LEP_SND_SETTLE_UNSETTLED;
        lo->rcv_settle_mode = LEP_RCV_SETTLE_SECOND;
        break;
    default:
        lo->snd_settle_mode = LEP_SND_SETTLE_MIXED;
        lo->rcv_settle_mode = LEP_RCV_SETTLE_FIRST;
        break;
    }
}

/* Makes and attaches the engine link of m on the current transport. */
static int
attach(lepi_mlink_t *m)
{
    lep_connection_t *c = m->conn;
    lep_session_t *s = lepi_connection_session(c);
    if (!s)
        return LEP_ERR_STATE;
    lep_source_t src;
    lep_target_t tgt;
    int rc = decode_terms(m, &src, &tgt);
    if (rc)
        return rc;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = m->name;
    lo.receiver = m->receiver;
    settle_modes(m, &lo);
    lo.source = m->has_source ? &src : NULL;
    lo.target = m->has_target ? &tgt : NULL;
    lep_link_t *l;
    if ((rc = lep_link_new(s, &lo, &l)) != 0)
        return rc;
    lep_link_set_context(l, m);
    m->link = l;
    m->open_reported = false;
    if ((rc = lep_link_attach(l)) != 0)
        return rc;
    if (m->receiver)
        initial_flow(m);
    return 0;
}

void
lepi_links_attach_all(lep_connection_t *c)
{
    for (lepi_mlink_t *m = c->links; m; m = m->next)
        if (!m->gone && !m->app_closed && !m->incoming && !m->link)
            attach(m);
}

int lepi_open_link(lep_connection_t *c, bool receiver, const char *address, const void *opts,
                   lepi_mlink_t **out);
int
lepi_open_link(lep_connection_t *c, bool receiver, const char *address, const void *opts,
               lepi_mlink_t **out)
{
    *out = NULL;
    if (c->ended || c->app_closed) {
        lepi_set_error("the connection is closed");
        return LEP_ERR_STATE;
    }
    lep_sender_opts_t sdef;
    lep_receiver_opts_t rdef;
    const lep_sender_opts_t *so = NULL;
    const lep_receiver_opts_t *ro = NULL;
    if (receiver) {
        if (!opts)
            lep_receiver_opts_init(&rdef);
        ro = opts ? opts : &rdef;
        if (!address && !ro->dynamic) {
            lepi_set_error("a receiver needs an address or the dynamic option");
            return LEP_ERR_INVALID;
        }
    } else {
        if (!opts)
            lep_sender_opts_init(&sdef);
        so = opts ? opts : &sdef;
    }
    lepi_mlink_t *m = mlink_new(c, receiver, receiver ? ro->name : so->name);
    if (!m)
        return LEP_ERR_NOMEM;
    const lep_handler_t *h = receiver ? ro->handler : so->handler;
    if (h) {
        m->handler.h = *h;
        m->handler.set = true;
    }
    m->handler.ctx = receiver ? ro->ctx : so->ctx;
    int rc;
    if (receiver) {
        m->mode = ro->mode;
        m->window = ro->credit_window;
        m->auto_accept = ro->auto_accept;
        m->dynamic = ro->dynamic;
        rc = build_terms(m, ro->dynamic ? NULL : address, ro->source, ro->target, ro);
    } else {
        m->mode = so->mode;
        m->auto_settle = so->auto_settle;
        rc = build_terms(m, address, so->source, so->target, NULL);
    }
    if (!rc && !(receiver && ro->dynamic))
        rc = set_str(&m->address, address ? address : "");
    if (!rc && receiver && ro->dynamic)
        rc = set_str(&m->address, "");
    if (rc) {
        lepi_set_error("cannot make the link's terminus: %s", lep_strerror(rc));
        mlink_free(m);
        return rc;
    }
    if (c->engine)
        attach(m);
    *out = m;
    return 0;
}

int
lep_connection_open_sender(lep_connection_t *c, const char *address, const lep_sender_opts_t *o,
                           lep_sender_t **out)
{
    lepi_mlink_t *m = NULL;
    int rc = c ? lepi_open_link(c, false, address, o, &m) : LEP_ERR_INVALID;
    if (out)
        *out = (lep_sender_t *)m;
    return rc;
}

int
lep_connection_open_receiver(lep_connection_t *c, const char *address,
                             const lep_receiver_opts_t *o, lep_receiver_t **out)
{
    lepi_mlink_t *m = NULL;
    int rc = c ? lepi_open_link(c, true, address, o, &m) : LEP_ERR_INVALID;
    if (out)
        *out = (lep_receiver_t *)m;
    return rc;
}

static int
mlink_close(lepi_mlink_t *m, bool closed, const lep_condition_t *cond)
{
    if (m->app_closed || m->gone)
        return 0;
    m->app_closed = true;
    if (m->link && lep_link_local_state(m->link) == LEP_STATE_ACTIVE) {
        if (m->conn->in_event) {
            /* Inside a callback: after what the container does when it
             * returns (settling the message at hand), or that settlement
             * would come after the detach and be lost. */
            m->detach_pending = true;
            m->detach_closed = closed;
            if (lep_condition_set(cond)) {
                m->close_name = lepi_bytes_dup(cond->name);
                m->close_desc = lepi_bytes_dup(cond->description);
            }
            m->conn->links_pending = true;
            return 0;
        }
        return lep_link_detach(m->link, closed, cond);
    }
    if (m->link && lep_link_local_state(m->link) == LEP_STATE_UNINIT) {
        /* A link the peer opened, refused inside on_*_open: the container
         * answers the attach and detaches at once (2.6.3) with cond. */
        if (lep_condition_set(cond)) {
            m->close_name = lepi_bytes_dup(cond->name);
            m->close_desc = lepi_bytes_dup(cond->description);
        }
        return 0;
    }
    if (!m->link)
        m->gone = true; /* no transport: nothing to tell the peer */
    return 0;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

#define M(x) (&(x)->m)

int lep_sender_close(lep_sender_t *s, const lep_condition_t *cond) { return mlink_close(M(s), true, cond); }
int lep_sender_detach(lep_sender_t *s) { return mlink_close(M(s), false, NULL); }
int lep_receiver_close(lep_receiver_t *r, const lep_condition_t *cond) { return mlink_close(M(r), true, cond); }
int lep_receiver_detach(lep_receiver_t *r) { return mlink_close(M(r), false, NULL); }

const char *lep_sender_address(const lep_sender_t *s) { return s->m.address ? s->m.address : ""; }
const char *lep_sender_source_address(const lep_sender_t *s) { return s->m.local_address ? s->m.local_address : ""; }
const char *lep_receiver_address(const lep_receiver_t *r) { return r->m.address ? r->m.address : ""; }
const char *lep_receiver_target_address(const lep_receiver_t *r) { return r->m.local_address ? r->m.local_address : ""; }
lep_connection_t *lep_sender_connection(const lep_sender_t *s) { return s->m.conn; }
lep_connection_t *lep_receiver_connection(const lep_receiver_t *r) { return r->m.conn; }
lep_link_t *lep_sender_link(const lep_sender_t *s) { return s->m.link; }
lep_link_t *lep_receiver_link(const lep_receiver_t *r) { return r->m.link; }
lep_bytes_t lep_sender_name(const lep_sender_t *s) { return lep_bytes_str(s->m.name); }
lep_bytes_t lep_receiver_name(const lep_receiver_t *r) { return lep_bytes_str(r->m.name); }
lep_delivery_mode_t lep_sender_mode(const lep_sender_t *s) { return s->m.mode; }
lep_delivery_mode_t lep_receiver_mode(const lep_receiver_t *r) { return r->m.mode; }
void lep_sender_set_context(lep_sender_t *s, void *ctx) { s->m.ctx = ctx; }
void *lep_sender_context(const lep_sender_t *s) { return s->m.ctx; }
void lep_receiver_set_context(lep_receiver_t *r, void *ctx) { r->m.ctx = ctx; }
void *lep_receiver_context(const lep_receiver_t *r) { return r->m.ctx; }

uint32_t lep_sender_credit(const lep_sender_t *s) { return s->m.link ? lep_link_credit(s->m.link) : 0; }
uint32_t lep_sender_unsettled(const lep_sender_t *s) { return s->m.link ? lep_link_unsettled(s->m.link) : 0; }
uint32_t lep_receiver_credit(const lep_receiver_t *r) { return r->m.link ? lep_link_credit(r->m.link) : 0; }

const lep_source_t *lep_sender_remote_source(const lep_sender_t *s) { return s->m.link ? lep_link_remote_source(s->m.link) : NULL; }
const lep_target_t *lep_sender_remote_target(const lep_sender_t *s) { return s->m.link ? lep_link_remote_target(s->m.link) : NULL; }
const lep_source_t *lep_receiver_remote_source(const lep_receiver_t *r) { return r->m.link ? lep_link_remote_source(r->m.link) : NULL; }
const lep_target_t *lep_receiver_remote_target(const lep_receiver_t *r) { return r->m.link ? lep_link_remote_target(r->m.link) : NULL; }

int
lep_sender_set_source_address(lep_sender_t *s, const char *address)
{
    if (!s || !s->m.incoming || !s->m.link || lep_link_local_state(s->m.link) != LEP_STATE_UNINIT)
        return LEP_ERR_STATE;
    return set_str(&s->m.local_address, address);
}

int
lep_receiver_set_target_address(lep_receiver_t *r, const char *address)
{
    if (!r || !r->m.incoming || !r->m.link || lep_link_local_state(r->m.link) != LEP_STATE_UNINIT)
        return LEP_ERR_STATE;
    return set_str(&r->m.local_address, address);
}

int
lep_receiver_set_auto_accept(lep_receiver_t *r, bool on)
{
    if (!r)
        return LEP_ERR_INVALID;
    r->m.auto_accept = on;
    return 0;
}

int
lep_receiver_set_credit_window(lep_receiver_t *r, uint32_t window)
{
    if (!r)
        return LEP_ERR_INVALID;
    r->m.window = window;
    return 0;
}

int
lep_receiver_flow(lep_receiver_t *r, uint32_t n)
{
    if (!r)
        return LEP_ERR_INVALID;
    if (!r->m.link || lep_link_local_state(r->m.link) == LEP_STATE_UNINIT) {
        /* Not attached yet (on_receiver_open of a link the peer opened,
         * or no transport): given with the attach. */
        r->m.pending_credit += n;
        return 0;
    }
    return lep_link_flow(r->m.link, n);
}

/* The credit to give right after our attach. */
static void
initial_flow(lepi_mlink_t *m)
{
    uint32_t n = m->window + m->pending_credit;
    m->pending_credit = 0;
    if (n)
        lep_link_flow(m->link, n);
}

int
lep_receiver_drain(lep_receiver_t *r)
{
    if (!r || !r->m.link)
        return LEP_ERR_STATE;
    return lep_link_drain(r->m.link);
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */

int
lep_sender_send_encoded(lep_sender_t *s, const void *p, size_t len, lep_delivery_t **d)
{
    if (d)
        *d = NULL;
    if (!s || !p)
        return LEP_ERR_INVALID;
    lepi_mlink_t *m = M(s);
    if (!m->link || lep_link_credit(m->link) == 0)
        return LEP_ERR_STATE;
    bool settled = m->mode == LEP_AT_MOST_ONCE;
    return lep_link_send(m->link, (lep_bytes_t){NULL, 0}, p, len, settled, settled ? NULL : d);
}

int
lep_sender_send(lep_sender_t *s, const lep_message_t *msg, lep_delivery_t **d)
{
    if (d)
        *d = NULL;
    if (!s || !msg)
        return LEP_ERR_INVALID;
    lep_buf_t *b = &s->m.conn->enc;
    b->len = 0;
    int rc = lep_message_encode(msg, b);
    if (rc)
        return rc;
    return lep_sender_send_encoded(s, b->data, b->len, d);
}

/* ------------------------------------------------------------------ */
/* Received messages                                                   */

static bool
outcome_set(const lep_delivery_t *d)
{
    const lep_outcome_t *o = lep_delivery_local_state(d);
    return o && o->type != LEP_OUTCOME_NONE && o->type != LEP_OUTCOME_RECEIVED;
}

/* Settles d if its link's mode allows it now; true when it did. */
static bool
settle_received(lep_delivery_t *d)
{
    lep_link_t *l = lep_delivery_link(d);
    if (lep_delivery_remote_settled(d) || lep_link_rcv_settle_mode(l) == LEP_RCV_SETTLE_FIRST) {
        lep_delivery_settle(d);
        return true;
    }
    return false; /* exactly-once: settled when the sender settles */
}

static void
topup(lepi_mlink_t *m)
{
    if (!m->window || !m->link || lep_link_local_state(m->link) != LEP_STATE_ACTIVE)
        return;
    uint32_t credit = lep_link_credit(m->link);
    if (credit <= m->window / 2)
        lep_link_flow(m->link, m->window - credit);
}

int
lep_delivery_reject(lep_delivery_t *d, const lep_condition_t *cond)
{
    if (!d)
        return LEP_ERR_INVALID;
    lep_outcome_t o;
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_REJECTED;
    if (cond)
        o.error = *cond;
    return lep_delivery_update(d, &o);
}

int
lep_delivery_modify(lep_delivery_t *d, bool failed, bool undeliverable_here)
{
    if (!d)
        return LEP_ERR_INVALID;
    lep_outcome_t o;
    memset(&o, 0, sizeof o);
    o.type = LEP_OUTCOME_MODIFIED;
    o.delivery_failed = failed;
    o.undeliverable_here = undeliverable_here;
    return lep_delivery_update(d, &o);
}

/* The delivery on_message is being called for, per connection: finishing
 * it inside the callback leaves the settling to the container. */
static _Thread_local lep_delivery_t *in_message;

int
lep_delivery_finish(lep_delivery_t *d, lep_outcome_type_t outcome)
{
    if (!d)
        return LEP_ERR_INVALID;
    int rc;
    switch (outcome) {
    case LEP_OUTCOME_ACCEPTED: rc = lep_delivery_accept(d); break;
    case LEP_OUTCOME_RELEASED: rc = lep_delivery_release(d); break;
    case LEP_OUTCOME_REJECTED: rc = lep_delivery_reject(d, NULL); break;
    case LEP_OUTCOME_MODIFIED: rc = lep_delivery_modify(d, true, false); break;
    default: return LEP_ERR_INVALID;
    }
    if (rc || d == in_message)
        return rc;
    settle_received(d);
    return 0;
}

static void
incoming_message(lepi_mlink_t *m, lep_delivery_t *d)
{
    lep_connection_t *c = m->conn;
    lep_bytes_t b = lep_delivery_data(d);
    int rc = lep_message_decode(c->msg, b.ptr, b.len);
    if (rc) {
        char why[96];
        snprintf(why, sizeof why, "cannot decode the message: %s", lep_strerror(rc));
        lep_condition_t cond = lep_condition_make("amqp:decode-error", why);
        lep_delivery_reject(d, &cond);
        settle_received(d);
        return;
    }
    const lepi_hslot_t *s = LEPI_PICK(c, &m->handler, on_message);
    if (s) {
        lep_delivery_t *outer = in_message;
        in_message = d;
        s->h.on_message(s->ctx, (lep_receiver_t *)m, d, c->msg);
        in_message = outer;
    }
    if (outcome_set(d)) {
        settle_received(d);
    } else if (m->auto_accept || !s) {
        lep_delivery_accept(d);
        settle_received(d);
    }
}

static void
receiver_delivery(lepi_mlink_t *m, lep_delivery_t *d)
{
    if (lep_delivery_aborted(d)) {
        lep_delivery_settle(d);
        topup(m);
        return;
    }
    if (lep_delivery_readable(d) && !lep_delivery_partial(d)) {
        incoming_message(m, d);
        topup(m);
        return;
    }
    if (lep_delivery_remote_settled(d) && outcome_set(d)) {
        const lepi_hslot_t *s = LEPI_PICK(m->conn, &m->handler, on_delivery_settled);
        if (s)
            s->h.on_delivery_settled(s->ctx, (lep_receiver_t *)m, d);
        lep_delivery_settle(d);
    }
}

/* ------------------------------------------------------------------ */
/* Outcomes of sent messages                                           */

static void
sender_delivery(lepi_mlink_t *m, lep_delivery_t *d)
{
    lep_connection_t *c = m->conn;
    lep_sender_t *snd = (lep_sender_t *)m;
    const lepi_hslot_t *s;
    bool terminal = false;
    if (lep_delivery_updated(d)) {
        const lep_outcome_t *o = lep_delivery_remote_state(d);
        switch (o ? o->type : LEP_OUTCOME_NONE) {
        case LEP_OUTCOME_ACCEPTED:
            terminal = true;
            if ((s = LEPI_PICK(c, &m->handler, on_accepted)))
                s->h.on_accepted(s->ctx, snd, d);
            break;
        case LEP_OUTCOME_REJECTED:
            terminal = true;
            if ((s = LEPI_PICK(c, &m->handler, on_rejected)))
                s->h.on_rejected(s->ctx, snd, d);
            break;
        case LEP_OUTCOME_RELEASED:
        case LEP_OUTCOME_MODIFIED:
            terminal = true;
            if ((s = LEPI_PICK(c, &m->handler, on_released)))
                s->h.on_released(s->ctx, snd, d);
            break;
        default:
            break;
        }
    }
    bool rs = lep_delivery_remote_settled(d);
    if (rs && (s = LEPI_PICK(c, &m->handler, on_settled)))
        s->h.on_settled(s->ctx, snd, d);
    if (m->auto_settle && (terminal || rs))
        lep_delivery_settle(d);
}

/* ------------------------------------------------------------------ */
/* Link events                                                         */

static void
report_open(lepi_mlink_t *m)
{
    m->open_reported = true;
    const lepi_hslot_t *s;
    if (m->receiver) {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_receiver_open)))
            s->h.on_receiver_open(s->ctx, (lep_receiver_t *)m);
    } else {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_sender_open)))
            s->h.on_sender_open(s->ctx, (lep_sender_t *)m);
    }
}

static void
report_error(lepi_mlink_t *m, const lep_condition_t *cond)
{
    const lepi_hslot_t *s;
    char who[128];
    snprintf(who, sizeof who, "%s \"%s\"", m->receiver ? "receiver" : "sender",
             m->address ? m->address : "");
    if (m->receiver) {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_receiver_error)))
            s->h.on_receiver_error(s->ctx, (lep_receiver_t *)m, cond);
        else
            lepi_report(m->conn->peer, who, cond);
    } else {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_sender_error)))
            s->h.on_sender_error(s->ctx, (lep_sender_t *)m, cond);
        else
            lepi_report(m->conn->peer, who, cond);
    }
}

/* The link is over at both ends: tell the application, then free. */
static void
finish(lepi_mlink_t *m)
{
    const lepi_hslot_t *s;
    if (m->receiver) {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_receiver_close)))
            s->h.on_receiver_close(s->ctx, (lep_receiver_t *)m);
    } else {
        if ((s = LEPI_PICK(m->conn, &m->handler, on_sender_close)))
            s->h.on_sender_close(s->ctx, (lep_sender_t *)m);
    }
    lep_link_t *l = m->link;
    m->link = NULL;
    if (l) {
        lep_link_set_context(l, NULL);
        lep_link_free(l);
    }
    mlink_free(m);
}

static char *
dynamic_address(lep_connection_t *c)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s/dynamic/%llu", c->cont->id,
             (unsigned long long)lepi_container_next(c->cont));
    return lepi_strdup(buf);
}

/* The peer attached a link we did not open. */
static void
incoming_link(lep_connection_t *c, lep_link_t *l)
{
    bool receiver = lep_link_is_receiver(l);
    lep_bytes_t nb = lep_link_name(l);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)nb.len, (const char *)nb.ptr);
    lepi_mlink_t *m = mlink_new(c, receiver, name);
    if (!m) {
        lep_condition_t cond = lep_condition_make("amqp:internal-error", "out of memory");
        lep_link_attach(l);
        lep_link_detach(l, true, &cond);
        return;
    }
    m->incoming = true;
    m->link = l;
    lep_link_set_context(l, m);
    const lep_attach_t *a = lep_link_remote_attach(l);
    m->mode = a && a->snd_settle_mode == LEP_SND_SETTLE_SETTLED ? LEP_AT_MOST_ONCE
              : a && a->rcv_settle_mode == LEP_RCV_SETTLE_SECOND ? LEP_EXACTLY_ONCE
                                                                 : LEP_AT_LEAST_ONCE;
    m->auto_settle = true;
    m->auto_accept = true;
    m->window = 10;
    const lep_source_t *rs = lep_link_remote_source(l);
    const lep_target_t *rt = lep_link_remote_target(l);
    bool dynamic = receiver ? rt && rt->dynamic : rs && rs->dynamic;
    /* address: the peer's side; local_address: ours (the node the link
     * serves), echoing the peer's unless dynamic. */
    if (receiver) {
        set_addr_from(&m->address, rs ? rs->address : (lep_bytes_t){NULL, 0});
        if (dynamic)
            m->local_address = dynamic_address(c);
        else
            set_addr_from(&m->local_address, rt ? rt->address : (lep_bytes_t){NULL, 0});
    } else {
        set_addr_from(&m->address, rt ? rt->address : (lep_bytes_t){NULL, 0});
        if (dynamic)
            m->local_address = dynamic_address(c);
        else
            set_addr_from(&m->local_address, rs ? rs->address : (lep_bytes_t){NULL, 0});
    }
    report_open(m);
    if (lep_link_local_state(l) != LEP_STATE_UNINIT)
        return; /* the handler attached it itself */
    /* Our termini: the peer's, with our node's address. */
    lep_buf_t scratch;
    lep_buf_init(&scratch);
    if (lep_buf_reserve(&scratch, 16 + (m->local_address ? strlen(m->local_address) : 0)) == 0) {
        if (receiver && rt) {
            lep_target_t t = *rt;
            if (m->local_address && m->local_address[0]) {
                put_address(NULL, &scratch, m->local_address, &t.address);
                t.present |= LEP_TARGET_HAS_ADDRESS;
            }
            lep_link_set_target(l, &t);
        } else if (!receiver && rs) {
            lep_source_t s = *rs;
            if (m->local_address && m->local_address[0]) {
                put_address(NULL, &scratch, m->local_address, &s.address);
                s.present |= LEP_SOURCE_HAS_ADDRESS;
            }
            lep_link_set_source(l, &s);
        }
    }
    lep_buf_fini(&scratch);
    lep_link_attach(l);
    if (m->app_closed) {
        /* Refused in on_*_open: attach and detach at once (2.6.3). */
        lep_condition_t cond = m->close_name ? lep_condition_make(m->close_name, m->close_desc)
                                             : lep_condition_make("amqp:not-allowed",
                                                                  "link refused");
        lep_link_detach(l, true, &cond);
        return;
    }
    if (receiver)
        initial_flow(m);
}

static void
remote_attach(lep_connection_t *c, lep_link_t *l)
{
    lepi_mlink_t *m = lep_link_context(l);
    if (!m) {
        if (lep_link_local_state(l) == LEP_STATE_UNINIT)
            incoming_link(c, l);
        return;
    }
    if (m->receiver && m->dynamic) {
        const lep_source_t *rs = lep_link_remote_source(l);
        set_addr_from(&m->address, rs ? rs->address : (lep_bytes_t){NULL, 0});
    }
    /* A refusal (no terminus, a detach follows) is not an open; a sender's
     * missing target is tolerated (RabbitMQ answers that way). */
    if (m->receiver && !lep_link_remote_source(l))
        return;
    report_open(m);
    if (!m->receiver && lep_link_credit(l) > 0 && !m->app_closed) {
        const lepi_hslot_t *s = LEPI_PICK(c, &m->handler, on_sendable);
        if (s)
            s->h.on_sendable(s->ctx, (lep_sender_t *)m);
    }
}

static void
remote_detach(lep_connection_t *c, lep_link_t *l)
{
    lepi_mlink_t *m = lep_link_context(l);
    if (!m) {
        if (lep_link_local_state(l) == LEP_STATE_ACTIVE)
            lep_link_detach(l, lep_link_remote_closed(l), NULL);
        return;
    }
    const lep_condition_t *cond = lep_link_remote_condition(l);
    if (lep_condition_set(cond))
        report_error(m, cond);
    if (lep_link_local_state(l) == LEP_STATE_ACTIVE)
        lep_link_detach(l, lep_link_remote_closed(l), NULL);
    finish(m);
}

void
lepi_links_event(lep_connection_t *c, const lep_event_t *ev)
{
    lepi_mlink_t *m;
    switch (ev->type) {
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        remote_attach(c, ev->link);
        break;
    case LEP_EVENT_LINK_REMOTE_DETACH:
        remote_detach(c, ev->link);
        break;
    case LEP_EVENT_LINK_FLOW:
        m = lep_link_context(ev->link);
        if (m && !m->receiver && !m->app_closed && lep_link_credit(ev->link) > 0) {
            const lepi_hslot_t *s = LEPI_PICK(c, &m->handler, on_sendable);
            if (s)
                s->h.on_sendable(s->ctx, (lep_sender_t *)m);
        }
        break;
    case LEP_EVENT_DELIVERY:
        m = lep_link_context(ev->link);
        if (!m)
            break;
        if (m->receiver)
            receiver_delivery(m, ev->delivery);
        else
            sender_delivery(m, ev->delivery);
        break;
    default:
        break;
    }
}

void
lepi_links_session_end(lep_connection_t *c, lep_session_t *s, const lep_condition_t *cond)
{
    lepi_mlink_t *next;
    for (lepi_mlink_t *m = c->links; m; m = next) {
        next = m->next;
        if (!m->link || lep_link_session(m->link) != s)
            continue;
        if (lep_condition_set(cond) && !m->app_closed)
            report_error(m, cond);
        finish(m);
    }
    if (c->session == s)
        c->session = NULL;
}

static int
push_ctx(void ***v, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **nv = lep_realloc(*v, nc * sizeof *nv);
        if (!nv)
            return LEP_ERR_NOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = p;
    return 0;
}

void
lepi_links_transport_gone(lep_connection_t *c, bool final, void ***ctxs, size_t *n, size_t *cap)
{
    lepi_mlink_t *next;
    for (lepi_mlink_t *m = c->links; m; m = next) {
        next = m->next;
        if (m->link && !m->receiver)
            for (lep_delivery_t *d = lep_link_deliveries(m->link); d; d = lep_delivery_next(d))
                push_ctx(ctxs, n, cap, lep_delivery_context(d));
        if (m->link)
            lep_link_set_context(m->link, NULL);
        m->link = NULL;
        /* Links the peer opened, and links the application closed, do not
         * come back with a new transport.  At the end of the connection
         * they live on until its final event (lepi_links_free_all). */
        if (!final && (m->incoming || m->app_closed || m->gone))
            mlink_free(m);
    }
}

void
lepi_links_detach_pending(lep_connection_t *c)
{
    c->links_pending = false;
    for (lepi_mlink_t *m = c->links; m; m = m->next) {
        if (!m->detach_pending)
            continue;
        m->detach_pending = false;
        if (!m->link || lep_link_local_state(m->link) != LEP_STATE_ACTIVE)
            continue;
        lep_condition_t cond = lep_condition_make(m->close_name, m->close_desc);
        lep_link_detach(m->link, m->detach_closed, m->close_name ? &cond : NULL);
    }
}
