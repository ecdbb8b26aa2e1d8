/* Connection lifecycle, transport layers, bytes in and out, open and
 * close, time, events. */
#include "engine/engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Options and lifecycle                                               */

void
lep_conn_opts_init(lep_conn_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_frame_size = 65536;
    o->channel_max = 255;
    o->max_sessions = 256;
    o->max_links = 1024;
    o->max_unsettled = 65536;
    o->session_window = 2048;
}

static void
random_uuid(char out[37])
{
    uint8_t b[16] = {0};
    /* A container-id only has to be unique; without entropy the object's
     * address still tells two connections of one process apart. */
    if (getentropy(b, sizeof b) != 0) {
        uintptr_t a = (uintptr_t)out;
        memcpy(b, &a, sizeof a < sizeof b ? sizeof a : sizeof b);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
}

static lep_bytes_t
copy_view(lep_buf_t *buf, lep_bytes_t v, size_t *offs)
{
    *offs = buf->len;
    lep_buf_append(buf, v.ptr, v.len);
    return (lep_bytes_t){NULL, v.len};
}

int
lep_conn_new(lep_conn_t **out, const lep_conn_opts_t *opts)
{
    lep_conn_opts_t def;
    if (!out)
        return LEP_ERR_INVALID;
    *out = NULL;
    if (!opts) {
        lep_conn_opts_init(&def);
        opts = &def;
    }
    lep_conn_t *c = lep_calloc(1, sizeof *c);
    if (!c)
        return LEP_ERR_NOMEM;
    c->server = opts->server;
    c->max_frame_size = opts->max_frame_size ? opts->max_frame_size : 65536;
    if (c->max_frame_size < LEP_MIN_MAX_FRAME_SIZE)
        c->max_frame_size = LEP_MIN_MAX_FRAME_SIZE;
    c->channel_max = opts->channel_max;
    c->idle_timeout = opts->idle_timeout_ms;
    c->max_sessions = opts->max_sessions ? opts->max_sessions : 256;
    c->max_links = opts->max_links ? opts->max_links : 1024;
    c->max_unsettled = opts->max_unsettled ? opts->max_unsettled : 65536;
    c->session_window = opts->session_window ? opts->session_window : 2048;
    c->max_message_size = opts->max_message_size;
    c->remote_max_frame = LEP_MIN_MAX_FRAME_SIZE;
    c->remote_channel_max = 65535;
    c->last_in = c->last_out = -1;

    char uuid[37];
    const char *cid = opts->container_id;
    if (!cid) {
        random_uuid(uuid);
        cid = uuid;
    }
    c->container_id = lepi_strdup(cid);
    if (opts->hostname)
        c->hostname = lepi_strdup(opts->hostname);
    size_t o1, o2, o3;
    c->offered_caps = copy_view(&c->caps_buf, opts->offered_capabilities, &o1);
    c->desired_caps = copy_view(&c->caps_buf, opts->desired_capabilities, &o2);
    c->properties = copy_view(&c->caps_buf, opts->properties, &o3);
    size_t want = opts->offered_capabilities.len + opts->desired_capabilities.len +
                  opts->properties.len;
    if (!c->container_id || (opts->hostname && !c->hostname) || c->caps_buf.len != want) {
        lep_conn_free(c);
        return LEP_ERR_NOMEM;
    }
    c->offered_caps.ptr = lepi_at(&c->caps_buf, o1);
    c->desired_caps.ptr = lepi_at(&c->caps_buf, o2);
    c->properties.ptr = lepi_at(&c->caps_buf, o3);
    *out = c;
    return 0;
}

void
lep_conn_free(lep_conn_t *c)
{
    if (!c)
        return;
    while (c->sessions)
        lepi_session_destroy(c->sessions);
    for (int i = 0; i < c->nlayers; i++) {
        lepi_layer_t *L = &c->layers[i];
        if (L->ops->free)
            L->ops->free(L->ctx);
        lep_buf_fini(&L->pin);
        lep_buf_fini(&L->pout);
        lep_buf_fini(&L->up);
        lep_buf_fini(&L->down);
    }
    lepi_pool_free(c);
    lep_free(c->container_id);
    lep_free(c->hostname);
    lep_buf_fini(&c->caps_buf);
    lep_buf_fini(&c->wbuf);
    lep_buf_fini(&c->out);
    lep_buf_fini(&c->in);
    lep_buf_fini(&c->remote_open_buf);
    lep_buf_fini(&c->user);
    lep_buf_fini(&c->trace_buf);
    lepi_cond_fini(&c->local_cond);
    lepi_cond_fini(&c->remote_cond);
    lep_free(c->channels);
    lep_free(c->rchannels);
    lep_free(c->ev);
    lep_free(c);
}

void lep_conn_set_context(lep_conn_t *c, void *ctx) { c->ctx = ctx; }
void *lep_conn_context(const lep_conn_t *c) { return c->ctx; }
bool lep_conn_is_server(const lep_conn_t *c) { return c->server; }
void lep_conn_set_encrypted(lep_conn_t *c, bool e) { c->encrypted = e; }
bool lep_conn_encrypted(const lep_conn_t *c) { return c->encrypted; }

int
lep_conn_set_user(lep_conn_t *c, lep_bytes_t user)
{
    lep_buf_clear(&c->user);
    return lep_buf_append(&c->user, user.ptr, user.len);
}

lep_bytes_t
lep_conn_user(const lep_conn_t *c)
{
    return lep_buf_bytes(&c->user);
}

void
lep_conn_set_trace(lep_conn_t *c, lep_trace_fn fn, void *ctx)
{
    c->trace = fn;
    c->trace_ctx = ctx;
}

/* ------------------------------------------------------------------ */
/* Conditions                                                          */

void
lepi_cond_fini(lepi_cond_t *c)
{
    lep_buf_fini(&c->buf);
    memset(c, 0, sizeof *c);
}

int
lepi_cond_set(lepi_cond_t *c, const lep_condition_t *src)
{
    lepi_cond_t n;
    memset(&n, 0, sizeof n);
    if (src && src->name.len) {
        size_t need = src->name.len + src->description.len + src->info.len;
        if (lep_buf_reserve(&n.buf, need ? need : 1) != 0)
            return LEP_ERR_NOMEM;
        lep_buf_append(&n.buf, src->name.ptr, src->name.len);
        lep_buf_append(&n.buf, src->description.ptr, src->description.len);
        lep_buf_append(&n.buf, src->info.ptr, src->info.len);
        n.view.name = LEP_BYTES(n.buf.data, src->name.len);
        n.view.description = LEP_BYTES(n.buf.data + src->name.len, src->description.len);
        n.view.info = LEP_BYTES(n.buf.data + src->name.len + src->description.len,
                                src->info.len);
    }
    lepi_cond_fini(c);
    *c = n;
    return 0;
}

int
lepi_cond_set_str(lepi_cond_t *c, const char *name, const char *desc)
{
    lep_condition_t v = {lep_bytes_str(name), lep_bytes_str(desc), {NULL, 0}};
    return lepi_cond_set(c, &v);
}

/* Views into raw. */

int
lepi_cond_view(lep_bytes_t raw, lep_condition_t *v)
{
    memset(v, 0, sizeof *v);
    if (raw.len == 0)
        return 0;
    lep_reader_t r;
    lep_reader_init(&r, raw.ptr, raw.len);
    if (lep_read_null(&r))
        return 0;
    uint64_t code;
    lep_bytes_t name;
    int rc = lep_read_descriptor(&r, &code, &name);
    if (rc != 0)
        return rc;
    if (name.len ? !lep_bytes_eq_str(name, LEP_DESC_SYM_ERROR) : code != LEP_DESC_ERROR)
        return LEP_ERR_TYPE;
    lep_reader_t l;
    uint32_t n;
    if ((rc = lep_read_list(&r, &l, &n)) != 0)
        return rc;
    if (n < 1 || lep_read_symbol(&l, &v->name) != 0 || v->name.len == 0)
        return LEP_ERR_DECODE;
    if (n >= 2 && !lep_read_null(&l) && (rc = lep_read_string(&l, &v->description)) != 0)
        return rc;
    if (n >= 3 && !lep_read_null(&l)) {
        lep_atom_t a;
        if ((rc = lep_reader_next(&l, &a)) != 0)
            return rc;
        if (a.type != LEP_TYPE_MAP)
            return LEP_ERR_TYPE;
        v->info = a.raw;
    }
    return 0;
}

int
lepi_cond_decode(lepi_cond_t *c, lep_bytes_t raw)
{
    lep_condition_t v;
    int rc = lepi_cond_view(raw, &v);
    if (rc != 0)
        return rc;
    return lepi_cond_set(c, v.name.len ? &v : NULL);
}

void
lepi_cond_encode(lep_encoder_t *e, const lep_condition_t *c)
{
    if (!c || !c->name.len)
        return;
    lep_encode_descriptor(e, LEP_DESC_ERROR);
    lep_encode_list_begin(e);
    lep_encode_symbol(e, c->name.ptr, c->name.len);
    if (c->description.len || c->info.len) {
        if (c->description.len)
            lep_encode_string(e, c->description.ptr, c->description.len);
        else
            lep_encode_null(e);
    }
    if (c->info.len)
        lep_encode_raw(e, c->info.ptr, c->info.len);
    lep_encode_list_end(e);
}

int
lepi_cond_check(const lep_condition_t *c)
{
    if (!c || !c->name.len)
        return 0;
    lep_buf_t b;
    lep_buf_init(&b);
    lep_encoder_t e;
    lep_encoder_init(&e, &b);
    lepi_cond_encode(&e, c);
    int rc = lep_encoder_finish(&e);
    lep_buf_fini(&b);
    if (rc == 0 && c->info.len) {
        lep_atom_t a;
        lep_reader_t r;
        lep_reader_init(&r, c->info.ptr, c->info.len);
        if (lep_reader_next(&r, &a) != 0 || a.type != LEP_TYPE_MAP || !lep_reader_done(&r))
            rc = LEP_ERR_INVALID;
    }
    return rc == LEP_ERR_NOMEM ? rc : rc ? LEP_ERR_INVALID : 0;
}

const lep_condition_t *lep_conn_remote_condition(const lep_conn_t *c) { return &c->remote_cond.view; }
const lep_condition_t *lep_conn_local_condition(const lep_conn_t *c) { return &c->local_cond.view; }

/* ------------------------------------------------------------------ */
/* Events                                                              */

void
lepi_event(lep_conn_t *c, lep_event_type_t t, lep_session_t *s, lep_link_t *l,
           lep_delivery_t *d)
{
    if (c->ev_count == c->ev_cap) {
        uint32_t ncap = c->ev_cap ? c->ev_cap * 2 : 32;
        lep_event_t *n = lep_malloc(ncap * sizeof *n);
        if (!n) {
            /* Losing an event would desynchronise the application; a
             * connection that cannot queue one has no safe way on. */
            c->input_done = c->output_done = true;
            return;
        }
        for (uint32_t i = 0; i < c->ev_count; i++)
            n[i] = c->ev[(c->ev_head + i) & (c->ev_cap - 1)];
        lep_free(c->ev);
        c->ev = n;
        c->ev_cap = ncap;
        c->ev_head = 0;
    }
    lep_event_t *e = &c->ev[(c->ev_head + c->ev_count) & (c->ev_cap - 1)]; /* cap: a power of 2 */
    e->type = t;
    e->conn = c;
    e->session = s;
    e->link = l;
    e->delivery = d;
    c->ev_count++;
}

void
lepi_event_purge(lep_conn_t *c, const void *obj)
{
    for (uint32_t i = 0; i < c->ev_count; i++) {
        lep_event_t *e = &c->ev[(c->ev_head + i) & (c->ev_cap - 1)];
        if ((const void *)e->session == obj || (const void *)e->link == obj ||
            (const void *)e->delivery == obj)
            e->type = LEP_EVENT_NONE;
    }
}

bool
lep_conn_finished(const lep_conn_t *c)
{
    return c->input_done && c->output_done;
}

static void update_output_done(lep_conn_t *c);

const lep_event_t *
lep_conn_next_event(lep_conn_t *c)
{
    while (c->ev_count) {
        lep_event_t *e = &c->ev[c->ev_head];
        c->ev_head = (c->ev_head + 1) & (c->ev_cap - 1);
        c->ev_count--;
        if (e->type == LEP_EVENT_NONE)
            continue;
        c->ev_cur = *e;
        if (e->type == LEP_EVENT_DELIVERY && e->delivery) {
            lep_delivery_t *d = e->delivery;
            d->flags &= ~(uint32_t)LEPI_D_EVENT_QUEUED;
            d->seen = d->chg;
            d->chg = 0;
        }
        return &c->ev_cur;
    }
    update_output_done(c);
    if (lep_conn_finished(c) && !c->finished_reported) {
        c->finished_reported = true;
        memset(&c->ev_cur, 0, sizeof c->ev_cur);
        c->ev_cur.type = LEP_EVENT_TRANSPORT_CLOSED;
        c->ev_cur.conn = c;
        return &c->ev_cur;
    }
    return NULL;
}

const char *
lep_event_name(lep_event_type_t t)
{
    switch (t) {
    case LEP_EVENT_NONE:                 return "none";
    case LEP_EVENT_CONN_REMOTE_OPEN:     return "conn-remote-open";
    case LEP_EVENT_CONN_REMOTE_CLOSE:    return "conn-remote-close";
    case LEP_EVENT_CONN_LOCAL_OPEN:      return "conn-local-open";
    case LEP_EVENT_CONN_LOCAL_CLOSE:     return "conn-local-close";
    case LEP_EVENT_SESSION_REMOTE_BEGIN: return "session-remote-begin";
    case LEP_EVENT_SESSION_REMOTE_END:   return "session-remote-end";
    case LEP_EVENT_SESSION_LOCAL_BEGIN:  return "session-local-begin";
    case LEP_EVENT_SESSION_LOCAL_END:    return "session-local-end";
    case LEP_EVENT_LINK_REMOTE_ATTACH:   return "link-remote-attach";
    case LEP_EVENT_LINK_REMOTE_DETACH:   return "link-remote-detach";
    case LEP_EVENT_LINK_LOCAL_ATTACH:    return "link-local-attach";
    case LEP_EVENT_LINK_LOCAL_DETACH:    return "link-local-detach";
    case LEP_EVENT_LINK_FLOW:            return "link-flow";
    case LEP_EVENT_DELIVERY:             return "delivery";
    case LEP_EVENT_TRANSPORT_ERROR:      return "transport-error";
    case LEP_EVENT_TRANSPORT_CLOSED:     return "transport-closed";
    }
    return "?";
}

/* ------------------------------------------------------------------ */
/* Layers                                                              */

int
lep_conn_add_layer(lep_conn_t *c, const lep_layer_ops_t *ops, void *ctx)
{
    if (!c || !ops || !ops->input || !ops->output)
        return LEP_ERR_INVALID;
    /* After lep_conn_open is fine: the header and open wait in wbuf and
     * pass through every layer when output is first taken. */
    if (c->io_started || c->opos || c->wpos || c->nlayers == LEPI_MAX_LAYERS)
        return LEP_ERR_STATE;
    lepi_layer_t *L = &c->layers[c->nlayers++];
    memset(L, 0, sizeof *L);
    L->ops = ops;
    L->ctx = ctx;
    return 0;
}

/* Bytes going down from layer i-1 (or from the AMQP stream when i == 0)
 * are queued for layer i; past the last layer they are for the network. */
static int
queue_down(lep_conn_t *c, int i, const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    if (i >= c->nlayers)
        return lep_buf_append(&c->out, p, n);
    return lep_buf_append(&c->layers[i].pout, p, n);
}

static void
buf_drop(lep_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* Passes pending output down through every layer.  Layers are called
 * even with nothing to pass, so a TLS client can start its handshake. */
static void
flush_layers(lep_conn_t *c)
{
    for (int i = 0; i < c->nlayers; i++) {
        lepi_layer_t *L = &c->layers[i];
        const uint8_t *p;
        size_t n, used = 0;
        bool from_w = i == 0;
        if (from_w) {
            bool gate = !c->hdr_sent || c->close_after_flush;
            p = lepi_at(&c->wbuf, c->wpos);
            n = gate ? 0 : c->wbuf.len - c->wpos;
        } else {
            p = L->pout.data;
            n = L->pout.len;
        }
        lep_buf_clear(&L->down);
        int rc = L->ops->output(L->ctx, c, p, n, &used, &L->down);
        if (used > n)
            used = n;
        if (from_w) {
            c->wpos += used;
            if (c->wpos == c->wbuf.len)
                c->wpos = c->wbuf.len = 0;
        } else {
            buf_drop(&L->pout, used);
        }
        if (queue_down(c, i + 1, L->down.data, L->down.len) != 0 || rc != 0) {
            if (rc != 0 && !c->error_reported)
                lep_conn_transport_error(c, LEP_AMQP_ERR_INTERNAL_ERROR, "layer output failed");
            return;
        }
    }
}

static void amqp_input(lep_conn_t *c, const uint8_t *p, size_t n);

static void
layer_input(lep_conn_t *c, int i, const uint8_t *p, size_t n)
{
    lepi_layer_t *L = &c->layers[i];
    bool buffered = L->pin.len > 0;
    if (buffered) {
        if (lep_buf_append(&L->pin, p, n) != 0) {
            lep_conn_transport_error(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
            return;
        }
        p = L->pin.data;
        n = L->pin.len;
    }
    size_t used = 0;
    lep_buf_clear(&L->up);
    lep_buf_clear(&L->down);
    int rc = L->ops->input(L->ctx, c, p, n, &used, &L->up, &L->down);
    if (used > n)
        used = n;
    if (buffered)
        buf_drop(&L->pin, used);
    else if (used < n && lep_buf_append(&L->pin, p + used, n - used) != 0)
        rc = LEP_ERR_NOMEM;
    if (queue_down(c, i + 1, L->down.data, L->down.len) != 0)
        rc = LEP_ERR_NOMEM;
    if (rc != 0) {
        if (!c->error_reported)
            lep_conn_transport_error(c, LEP_AMQP_ERR_INTERNAL_ERROR, "layer input failed");
        return;
    }
    if (L->up.len) {
        /* The layer above may reenter this one's buffers only through
         * queue_down of output, which uses pout, not up. */
        lep_buf_t up = L->up;
        memset(&L->up, 0, sizeof L->up);
        if (i == 0)
            amqp_input(c, up.data, up.len);
        else
            layer_input(c, i - 1, up.data, up.len);
        up.len = 0;
        if (!L->up.data)
            L->up = up;
        else
            lep_buf_fini(&up);
    }
}

void
lep_conn_transport_error(lep_conn_t *c, const char *condition, const char *description)
{
    if (c->error_reported)
        return;
    c->error_reported = true;
    lepi_cond_set_str(&c->local_cond, condition ? condition : LEP_AMQP_ERR_INTERNAL_ERROR,
                      description ? description : "");
    lepi_event(c, LEP_EVENT_TRANSPORT_ERROR, NULL, NULL, NULL);
    c->input_done = true;
    /* The layer below AMQP failed: nothing more can pass at the AMQP
     * level; what the layers queued (an alert, a SASL outcome) still
     * goes out. */
    c->close_after_flush = true;
}

/* ------------------------------------------------------------------ */
/* Header and bytes in                                                 */

static int
insert_header(lep_conn_t *c)
{
    size_t at = c->nlayers ? c->wpos : c->opos;
    if (lep_buf_reserve(&c->wbuf, LEP_PROTO_HEADER_SIZE) != 0)
        return LEP_ERR_NOMEM;
    memmove(c->wbuf.data + at + LEP_PROTO_HEADER_SIZE, c->wbuf.data + at, c->wbuf.len - at);
    lep_proto_header_write(c->wbuf.data + at, LEP_PROTO_AMQP);
    c->wbuf.len += LEP_PROTO_HEADER_SIZE;
    c->hdr_sent = true;
    return 0;
}

static void
bad_header(lep_conn_t *c, const lep_proto_header_t *h)
{
    char desc[96];
    int n = snprintf(desc, sizeof desc, "bad protocol header:");
    for (int i = 0; i < h->nraw && n < (int)sizeof desc - 4; i++)
        n += snprintf(desc + n, sizeof desc - (size_t)n, " %02x", h->raw[i]);
    /* Spec 2.2: answer with the header we support, then close. */
    if (!c->hdr_sent) {
        c->wbuf.len = c->nlayers ? c->wpos : c->opos;
        insert_header(c);
    } else {
        c->wbuf.len = c->nlayers ? c->wpos : c->opos;
    }
    c->error_reported = true;
    lepi_cond_set_str(&c->local_cond, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR, desc);
    lepi_event(c, LEP_EVENT_TRANSPORT_ERROR, NULL, NULL, NULL);
    c->input_done = true;
    c->close_sent = true;
}

static void
amqp_input(lep_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->input_done || !n)
        return;
    if (!c->hdr_received) {
        size_t have = c->in.len;
        size_t take = LEP_PROTO_HEADER_SIZE - have;
        if (take > n)
            take = n;
        if (lep_buf_append(&c->in, p, take) != 0) {
            c->input_done = c->output_done = true;
            return;
        }
        p += take;
        n -= take;
        lep_proto_header_t h;
        int rc = lep_proto_header_parse(c->in.data, c->in.len, &h);
        if (rc == LEP_ERR_INCOMPLETE)
            return;
        c->in.len = 0;
        if (rc != LEP_PROTO_AMQP) {
            bad_header(c, &h);
            return;
        }
        c->hdr_received = true;
        if (!c->hdr_sent && insert_header(c) != 0) {
            c->input_done = c->output_done = true;
            return;
        }
        if (c->trace) {
            lep_buf_clear(&c->trace_buf);
            c->trace(c->trace_ctx, c, false, "AMQP 1.0.0 header");
        }
    }
    lepi_process_input(c, p, n);
}

int
lep_conn_feed(lep_conn_t *c, const uint8_t *in, size_t len, size_t *used)
{
    if (used)
        *used = 0;
    if (c->input_done)
        return LEP_ERR_STATE;
    c->io_started = true;
    /* Any byte from the peer, a layer's (SASL, TLS) included, shows it is
     * alive.  Stamped at the next tick: the time of the last tick is older
     * than these bytes, and a stale stamp would fail a live peer. */
    if (len)
        c->input_seen = true;
    if (c->nlayers)
        layer_input(c, c->nlayers - 1, in, len);
    else
        amqp_input(c, in, len);
    if (used)
        *used = len;
    return 0;
}

void
lep_conn_input_closed(lep_conn_t *c)
{
    if (c->input_done)
        return;
    bool clean = c->remote_state == LEP_STATE_CLOSED;
    for (int i = 0; i < c->nlayers && clean; i++)
        if (c->layers[i].ops->input_closed && !c->layers[i].ops->input_closed(c->layers[i].ctx, c))
            clean = false;
    c->input_done = true;
    if (!clean && !c->error_reported) {
        c->error_reported = true;
        lepi_cond_set_str(&c->local_cond, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                          "connection aborted");
        lepi_event(c, LEP_EVENT_TRANSPORT_ERROR, NULL, NULL, NULL);
    }
    if (!clean)
        c->output_done = true;
}

void
lep_conn_output_closed(lep_conn_t *c)
{
    if (c->output_done && c->input_done)
        return;
    bool clean = c->remote_state == LEP_STATE_CLOSED && c->close_sent;
    c->output_done = c->input_done = true;
    if (!clean && !c->error_reported) {
        c->error_reported = true;
        lepi_cond_set_str(&c->local_cond, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                          "connection aborted");
        lepi_event(c, LEP_EVENT_TRANSPORT_ERROR, NULL, NULL, NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Bytes out                                                           */

/* Work that is batched until the caller asks for output. */
static void
prepare_output(lep_conn_t *c)
{
    if (!c->output_done && c->hdr_sent && !c->close_after_flush)
        lepi_sessions_flush(c);
    if (c->nlayers)
        flush_layers(c);
}

static lep_buf_t *
netbuf(lep_conn_t *c)
{
    return c->nlayers ? &c->out : &c->wbuf;
}

static size_t
net_pending(const lep_conn_t *c)
{
    if (c->output_done)
        return 0;
    if (c->nlayers)
        return c->out.len - c->opos;
    if (!c->hdr_sent)
        return 0;
    return c->wbuf.len - c->opos;
}

static void
update_output_done(lep_conn_t *c)
{
    if (c->output_done)
        return;
    bool drained = net_pending(c) == 0;
    if (!drained)
        return;
    if (c->close_after_flush) {
        bool layers_empty = true;
        for (int i = 1; i < c->nlayers; i++)
            if (c->layers[i].pout.len)
                layers_empty = false;
        if (layers_empty || c->nlayers == 0)
            c->output_done = true;
        return;
    }
    if (c->close_sent) {
        /* Closing first through layers: until the peer's close arrives a
         * layer may still have a last word to send (TLS close_notify goes
         * out once AMQP is closed both ways), so output stays open. */
        if (c->nlayers && c->remote_state != LEP_STATE_CLOSED && !c->input_done)
            return;
        if (c->nlayers) {
            flush_layers(c);
            if (net_pending(c))
                return;
        }
        /* After a failure, AMQP bytes a layer still holds back (a close
         * queued behind an unfinished SASL exchange) will never pass. */
        bool all = c->nlayers ? (c->wpos == c->wbuf.len || c->error_reported) : true;
        for (int i = 1; i < c->nlayers; i++)
            if (c->layers[i].pout.len)
                all = false;
        if (all)
            c->output_done = true;
    }
}

lep_bytes_t
lep_conn_output(lep_conn_t *c)
{
    prepare_output(c);
    size_t n = net_pending(c);
    if (!n)
        return (lep_bytes_t){NULL, 0};
    return (lep_bytes_t){netbuf(c)->data + c->opos, n};
}

int
lep_conn_output_iov(lep_conn_t *c, struct iovec *iov, int max)
{
    lep_bytes_t b = lep_conn_output(c);
    if (!b.len || max < 1)
        return 0;
    iov[0].iov_base = (void *)b.ptr;
    iov[0].iov_len = b.len;
    return 1;
}

size_t
lep_conn_output_pending(const lep_conn_t *c)
{
    prepare_output((lep_conn_t *)c);
    return net_pending(c);
}

size_t
lep_conn_output_buffered(const lep_conn_t *c)
{
    if (c->output_done)
        return 0;
    if (!c->nlayers)
        return c->wbuf.len - c->opos;
    size_t n = (c->wbuf.len - c->wpos) + (c->out.len - c->opos);
    for (int i = 0; i < c->nlayers; i++)
        n += c->layers[i].pout.len;
    return n;
}

void
lep_conn_consumed(lep_conn_t *c, size_t n)
{
    c->io_started = true;
    size_t p = net_pending(c);
    if (n > p)
        n = p;
    c->opos += n;
    lep_buf_t *b = netbuf(c);
    if (c->opos == b->len) {
        b->len = 0;
        c->opos = 0;
    }
    update_output_done(c);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */

bool
lepi_conn_can_send(const lep_conn_t *c)
{
    return !c->close_sent && !c->output_done && !c->close_after_flush;
}

static int
send_open(lep_conn_t *c)
{
    lep_performative_t p;
    p.code = LEP_DESC_OPEN;
    lep_open_t *o = &p.u.open;
    lep_open_init(o);
    o->present = LEP_OPEN_HAS_CONTAINER_ID | LEP_OPEN_HAS_MAX_FRAME_SIZE |
                 LEP_OPEN_HAS_CHANNEL_MAX;
    o->container_id = lep_bytes_str(c->container_id);
    if (c->hostname) {
        o->present |= LEP_OPEN_HAS_HOSTNAME;
        o->hostname = lep_bytes_str(c->hostname);
    }
    o->max_frame_size = c->max_frame_size;
    o->channel_max = c->channel_max;
    if (c->idle_timeout) {
        o->present |= LEP_OPEN_HAS_IDLE_TIME_OUT;
        o->idle_time_out = c->idle_timeout;
    }
    if (c->offered_caps.len) {
        o->present |= LEP_OPEN_HAS_OFFERED_CAPABILITIES;
        o->offered_capabilities = c->offered_caps;
    }
    if (c->desired_caps.len) {
        o->present |= LEP_OPEN_HAS_DESIRED_CAPABILITIES;
        o->desired_capabilities = c->desired_caps;
    }
    if (c->properties.len) {
        o->present |= LEP_OPEN_HAS_PROPERTIES;
        o->properties = c->properties;
    }
    int rc = lepi_write_perf(c, 0, &p, (lep_bytes_t){NULL, 0});
    if (rc == 0)
        c->open_sent = true;
    return rc;
}

int
lep_conn_open(lep_conn_t *c)
{
    if (c->local_state != LEP_STATE_UNINIT)
        return LEP_ERR_STATE;
    if (!c->server && !c->hdr_sent && insert_header(c) != 0)
        return LEP_ERR_NOMEM;
    if (lepi_conn_can_send(c)) {
        int rc = send_open(c);
        if (rc != 0)
            return rc;
    }
    c->local_state = LEP_STATE_ACTIVE;
    lepi_event(c, LEP_EVENT_CONN_LOCAL_OPEN, NULL, NULL, NULL);
    return 0;
}

static int
send_close(lep_conn_t *c)
{
    if (!c->open_sent && send_open(c) != 0)
        return LEP_ERR_NOMEM;
    lep_performative_t p;
    p.code = LEP_DESC_CLOSE;
    lep_close_init(&p.u.close);
    lep_buf_t eb;
    lep_buf_init(&eb);
    if (lep_condition_set(&c->local_cond.view)) {
        lep_encoder_t e;
        lep_encoder_init(&e, &eb);
        lepi_cond_encode(&e, &c->local_cond.view);
        int erc = lep_encoder_finish(&e);
        if (erc != 0) {
            lep_buf_fini(&eb);
            return erc;
        }
        p.u.close.present = LEP_CLOSE_HAS_ERROR;
        p.u.close.error = lep_buf_bytes(&eb);
    }
    int rc = lepi_write_perf(c, 0, &p, (lep_bytes_t){NULL, 0});
    lep_buf_fini(&eb);
    if (rc == 0)
        c->close_sent = true;
    return rc;
}

int
lep_conn_close(lep_conn_t *c, const lep_condition_t *cond)
{
    if (c->local_state == LEP_STATE_CLOSED)
        return LEP_ERR_STATE;
    int crc = lepi_cond_check(cond);
    if (crc != 0)
        return crc;
    if (cond && lepi_cond_set(&c->local_cond, cond) != 0)
        return LEP_ERR_NOMEM;
    if (!c->server && !c->hdr_sent && insert_header(c) != 0)
        return LEP_ERR_NOMEM;
    c->local_state = LEP_STATE_CLOSED;
    lepi_event(c, LEP_EVENT_CONN_LOCAL_CLOSE, NULL, NULL, NULL);
    if (lepi_conn_can_send(c)) {
        if (c->hdr_sent || c->server) {
            lepi_sessions_flush(c);
            int rc = send_close(c);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

void
lepi_conn_fail(lep_conn_t *c, const char *cond, const char *fmt, ...)
{
    if (c->error_reported || c->input_done)
        return;
    char desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    c->error_reported = true;
    lepi_cond_set_str(&c->local_cond, cond, desc);
    lepi_event(c, LEP_EVENT_TRANSPORT_ERROR, NULL, NULL, NULL);
    c->input_done = true;
    if (c->local_state != LEP_STATE_CLOSED) {
        c->local_state = LEP_STATE_CLOSED;
        lepi_event(c, LEP_EVENT_CONN_LOCAL_CLOSE, NULL, NULL, NULL);
    }
    if (lepi_conn_can_send(c)) {
        if (!c->hdr_sent)
            insert_header(c);
        if (send_close(c) != 0)
            c->output_done = true;
    }
}

/* Called by the frame reader for the peer's open and close. */
void lepi_on_open(lep_conn_t *c, const lep_open_t *o, lep_bytes_t body);
void lepi_on_close(lep_conn_t *c, const lep_close_t *cl);

void
lepi_on_open(lep_conn_t *c, const lep_open_t *o, lep_bytes_t body)
{
    if (c->remote_state != LEP_STATE_UNINIT) {
        lepi_conn_fail(c, LEP_AMQP_ERR_ILLEGAL_STATE, "second open");
        return;
    }
    /* Keep the whole body: the open's views point into it. */
    lep_buf_clear(&c->remote_open_buf);
    if (lep_buf_append(&c->remote_open_buf, body.ptr, body.len) != 0) {
        lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
        return;
    }
    lep_reader_t r;
    lep_reader_init(&r, c->remote_open_buf.data, c->remote_open_buf.len);
    lep_performative_t p;
    if (lep_performative_decode(&r, &p) != 0 || p.code != LEP_DESC_OPEN) {
        lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "bad open");
        return;
    }
    c->remote_open = p.u.open;
    (void)o;
    c->remote_state = LEP_STATE_ACTIVE;
    uint32_t mfs = c->remote_open.max_frame_size;
    c->remote_max_frame = mfs < LEP_MIN_MAX_FRAME_SIZE ? LEP_MIN_MAX_FRAME_SIZE : mfs;
    c->remote_channel_max = c->remote_open.channel_max;
    c->remote_idle_timeout = (c->remote_open.present & LEP_OPEN_HAS_IDLE_TIME_OUT)
                                 ? c->remote_open.idle_time_out : 0;
    lepi_event(c, LEP_EVENT_CONN_REMOTE_OPEN, NULL, NULL, NULL);
}

void
lepi_on_close(lep_conn_t *c, const lep_close_t *cl)
{
    if (c->remote_state == LEP_STATE_CLOSED) {
        lepi_conn_fail(c, LEP_AMQP_ERR_ILLEGAL_STATE, "second close");
        return;
    }
    if (cl->present & LEP_CLOSE_HAS_ERROR) {
        if (lepi_cond_decode(&c->remote_cond, cl->error) != 0) {
            lepi_cond_set_str(&c->remote_cond, LEP_AMQP_ERR_INTERNAL_ERROR,
                              "undecodable error in close");
        }
    }
    c->remote_state = LEP_STATE_CLOSED;
    c->input_done = true;
    lepi_event(c, LEP_EVENT_CONN_REMOTE_CLOSE, NULL, NULL, NULL);
}

const lep_open_t *
lep_conn_remote_open(const lep_conn_t *c)
{
    return c->remote_state == LEP_STATE_UNINIT ? NULL : &c->remote_open;
}

uint32_t lep_conn_max_frame_size(const lep_conn_t *c) { return c->remote_max_frame; }
uint32_t lep_conn_remote_idle_timeout(const lep_conn_t *c) { return c->remote_idle_timeout; }
lep_state_t lep_conn_local_state(const lep_conn_t *c) { return c->local_state; }
lep_state_t lep_conn_remote_state(const lep_conn_t *c) { return c->remote_state; }

uint16_t
lep_conn_channel_max(const lep_conn_t *c)
{
    return c->channel_max < c->remote_channel_max ? c->channel_max : c->remote_channel_max;
}

/* ------------------------------------------------------------------ */
/* Time                                                                */

int64_t
lep_conn_tick(lep_conn_t *c, int64_t now)
{
    c->now = now;
    if (!c->time_known) {
        c->time_known = true;
        c->last_in = c->last_out = now;
    }
    if (c->input_seen) {
        c->input_seen = false;
        c->last_in = now;
    }
    int64_t deadline = -1;
    /* As Proton: the peer owes us traffic only once it has seen our open,
     * which we know when its open arrives; until then (a slow SASL or TLS
     * handshake) only the caller's own connect timeout applies. */
    if (c->idle_timeout && !c->input_done && c->open_sent && c->remote_state != LEP_STATE_UNINIT) {
        if (now - c->last_in >= (int64_t)c->idle_timeout) {
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED,
                           "local-idle-timeout expired: no frame for %u ms", c->idle_timeout);
        } else {
            deadline = c->last_in + c->idle_timeout;
        }
    }
    if (c->remote_idle_timeout && c->open_sent && lepi_conn_can_send(c)) {
        int64_t half = c->remote_idle_timeout / 2;
        if (half < 1)
            half = 1;
        if (now - c->last_out >= half) {
            uint8_t h[LEP_FRAME_HEADER_SIZE];
            lep_frame_header_write(h, LEP_FRAME_AMQP, 0, 0);
            if (lep_buf_append(&c->wbuf, h, sizeof h) == 0)
                c->last_out = now;
            if (c->trace)
                c->trace(c->trace_ctx, c, true, "[0] (empty frame)");
        }
        int64_t d = c->last_out + half;
        if (deadline < 0 || d < deadline)
            deadline = d;
    }
    return deadline;
}
