/* Sessions: begin and end, channel maps both ways, and the session
 * windows of spec 2.5.6. */
#include "engine/engine_internal.h"

/* Grows a pointer map so index i fits (zero-filled). */
static int
map_fit(void ***map, uint32_t *n, uint32_t i)
{
    if (i < *n)
        return 0;
    uint32_t nn = *n ? *n : 8;
    while (nn <= i)
        nn *= 2;
    void **m = lep_realloc(*map, nn * sizeof *m);
    if (!m)
        return LEP_ERR_NOMEM;
    memset(m + *n, 0, (nn - *n) * sizeof *m);
    *map = m;
    *n = nn;
    return 0;
}

int
lep_session_new(lep_conn_t *c, lep_session_t **out)
{
    if (!c || !out)
        return LEP_ERR_INVALID;
    *out = NULL;
    if (c->local_state == LEP_STATE_CLOSED)
        return LEP_ERR_STATE;
    lep_session_t *s = lep_calloc(1, sizeof *s);
    if (!s)
        return LEP_ERR_NOMEM;
    s->conn = c;
    s->incoming_window_max = c->session_window;
    s->incoming_window = c->session_window;
    s->handle_max = c->max_links - 1;
    s->remote_handle_max = UINT32_MAX;
    s->next = c->sessions;
    c->sessions = s;
    *out = s;
    return 0;
}

static void
unmap_local(lep_session_t *s)
{
    lep_conn_t *c = s->conn;
    if (s->has_channel && s->channel < c->nchannels && c->channels[s->channel] == s) {
        c->channels[s->channel] = NULL;
        if (c->nsessions)
            c->nsessions--;
    }
    s->has_channel = false;
}

static void
unmap_remote(lep_session_t *s)
{
    lep_conn_t *c = s->conn;
    if (s->has_remote_channel && s->remote_channel < c->nrchannels &&
        c->rchannels[s->remote_channel] == s)
        c->rchannels[s->remote_channel] = NULL;
}

void
lepi_session_destroy(lep_session_t *s)
{
    lep_conn_t *c = s->conn;
    while (s->links)
        lepi_link_destroy(s->links);
    unmap_local(s);
    unmap_remote(s);
    for (lep_session_t **pp = &c->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    lepi_event_purge(c, s);
    lepi_cond_fini(&s->local_cond);
    lepi_cond_fini(&s->remote_cond);
    lep_free(s->handles);
    lep_free(s->rhandles);
    lep_free(s->dsort);
    lep_free(s);
}

int
lep_session_free(lep_session_t *s)
{
    if (!s)
        return 0;
    lep_conn_t *c = s->conn;
    bool done = (s->local_state != LEP_STATE_ACTIVE && s->remote_state != LEP_STATE_ACTIVE) ||
                c->local_state == LEP_STATE_CLOSED || lep_conn_finished(c) || c->input_done;
    if (!done)
        return LEP_ERR_STATE;
    lepi_session_destroy(s);
    return 0;
}

lep_session_t *
lepi_session_by_rchannel(lep_conn_t *c, uint16_t ch)
{
    return ch < c->nrchannels ? c->rchannels[ch] : NULL;
}

static int
send_begin(lep_session_t *s)
{
    lep_performative_t p;
    p.code = LEP_DESC_BEGIN;
    lep_begin_t *b = &p.u.begin;
    lep_begin_init(b);
    b->present = LEP_BEGIN_HAS_NEXT_OUTGOING_ID | LEP_BEGIN_HAS_INCOMING_WINDOW |
                 LEP_BEGIN_HAS_OUTGOING_WINDOW | LEP_BEGIN_HAS_HANDLE_MAX;
    if (s->has_remote_channel) {
        b->present |= LEP_BEGIN_HAS_REMOTE_CHANNEL;
        b->remote_channel = s->remote_channel;
    }
    b->next_outgoing_id = s->next_outgoing_id;
    b->incoming_window = s->incoming_window;
    b->outgoing_window = LEPI_OUTGOING_WINDOW;
    b->handle_max = s->handle_max;
    return lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
}

int
lep_session_begin(lep_session_t *s)
{
    lep_conn_t *c = s->conn;
    if (s->local_state != LEP_STATE_UNINIT || c->local_state != LEP_STATE_ACTIVE)
        return LEP_ERR_STATE;
    if (!lepi_conn_can_send(c))
        return LEP_ERR_STATE;
    uint32_t max = lep_conn_channel_max(c);
    uint32_t ch = 0;
    while (ch < c->nchannels && c->channels[ch])
        ch++;
    if (ch > max || (!s->internal && c->nsessions >= c->max_sessions))
        return LEP_ERR_LIMIT;
    if (map_fit((void ***)&c->channels, &c->nchannels, ch) != 0)
        return LEP_ERR_NOMEM;
    s->channel = (uint16_t)ch;
    int rc = send_begin(s);
    if (rc != 0)
        return rc;
    c->channels[ch] = s;
    c->nsessions++;
    s->has_channel = true;
    s->begin_sent = true;
    s->local_state = LEP_STATE_ACTIVE;
    if (!s->internal)
        lepi_event(c, LEP_EVENT_SESSION_LOCAL_BEGIN, s, NULL, NULL);
    return 0;
}

static int
send_end(lep_session_t *s)
{
    lep_performative_t p;
    p.code = LEP_DESC_END;
    lep_end_init(&p.u.end);
    lep_buf_t eb;
    lep_buf_init(&eb);
    if (lep_condition_set(&s->local_cond.view)) {
        lep_encoder_t e;
        lep_encoder_init(&e, &eb);
        lepi_cond_encode(&e, &s->local_cond.view);
        if (lep_encoder_finish(&e) != 0) {
            lep_buf_fini(&eb);
            return LEP_ERR_NOMEM;
        }
        p.u.end.present = LEP_END_HAS_ERROR;
        p.u.end.error = lep_buf_bytes(&eb);
    }
    int rc = lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
    lep_buf_fini(&eb);
    return rc;
}

static int
do_end(lep_session_t *s)
{
    lep_conn_t *c = s->conn;
    s->local_state = LEP_STATE_CLOSED;
    if (!s->internal)
        lepi_event(c, LEP_EVENT_SESSION_LOCAL_END, s, NULL, NULL);
    if (s->begin_sent && !s->end_sent && lepi_conn_can_send(c)) {
        lepi_flush_dispositions(s);
        int rc = send_end(s);
        if (rc != 0)
            return rc;
    }
    s->end_sent = true;
    for (lep_link_t *l = s->links; l; l = l->next)
        l->local_state = LEP_STATE_CLOSED;
    if (s->remote_state == LEP_STATE_CLOSED)
        unmap_local(s);
    return 0;
}

int
lep_session_end(lep_session_t *s, const lep_condition_t *cond)
{
    if (s->local_state == LEP_STATE_CLOSED)
        return LEP_ERR_STATE;
    int crc = lepi_cond_check(cond);
    if (crc != 0)
        return crc;
    if (cond && lepi_cond_set(&s->local_cond, cond) != 0)
        return LEP_ERR_NOMEM;
    return do_end(s);
}

void
lepi_session_fail(lep_session_t *s, const char *cond, const char *desc)
{
    if (s->local_state == LEP_STATE_CLOSED)
        return;
    lepi_cond_set_str(&s->local_cond, cond, desc);
    if (do_end(s) != 0)
        lepi_conn_fail(s->conn, LEP_AMQP_ERR_INTERNAL_ERROR, "cannot end session");
}

void
lepi_on_begin(lep_conn_t *c, uint16_t ch, const lep_begin_t *b)
{
    if (ch > c->channel_max) {
        lepi_conn_fail(c, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                       "begin on channel %u above channel-max %u", ch, c->channel_max);
        return;
    }
    if (lepi_session_by_rchannel(c, ch)) {
        lepi_conn_fail(c, LEP_AMQP_ERR_NOT_ALLOWED, "begin on channel %u, already in use", ch);
        return;
    }
    if (map_fit((void ***)&c->rchannels, &c->nrchannels, ch) != 0) {
        lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
        return;
    }
    lep_session_t *s;
    if (b->present & LEP_BEGIN_HAS_REMOTE_CHANNEL) {
        uint16_t rc = b->remote_channel;
        s = rc < c->nchannels ? c->channels[rc] : NULL;
        if (!s || s->has_remote_channel || s->remote_state != LEP_STATE_UNINIT) {
            lepi_conn_fail(c, LEP_AMQP_ERR_NOT_ALLOWED,
                           "begin answers channel %u, where no session waits", rc);
            return;
        }
    } else {
        uint32_t live = 0;
        for (lep_session_t *x = c->sessions; x; x = x->next)
            if (x->remote_state == LEP_STATE_ACTIVE)
                live++;
        if (live >= c->max_sessions) {
            /* Refuse this session only: begin and end it at once with
             * the reason, out of the application's sight. */
            if (c->local_state == LEP_STATE_ACTIVE && lep_session_new(c, &s) == 0) {
                s->internal = true;
                s->has_remote_channel = true;
                s->remote_channel = ch;
                c->rchannels[ch] = s;
                s->remote_state = LEP_STATE_ACTIVE;
                s->next_incoming_id = b->next_outgoing_id;
                if (lep_session_begin(s) == 0) {
                    lepi_session_fail(s, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED,
                                      "too many sessions");
                    return;
                }
                lepi_session_destroy(s);
            }
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED,
                           "more than %u sessions", c->max_sessions);
            return;
        }
        if (lep_session_new(c, &s) != 0) {
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
            return;
        }
    }
    s->has_remote_channel = true;
    s->remote_channel = ch;
    c->rchannels[ch] = s;
    s->remote_state = LEP_STATE_ACTIVE;
    s->next_incoming_id = b->next_outgoing_id;
    s->remote_incoming_window = b->incoming_window;
    s->remote_outgoing_window = b->outgoing_window;
    s->remote_handle_max = b->handle_max;
    lepi_event(c, LEP_EVENT_SESSION_REMOTE_BEGIN, s, NULL, NULL);
}

void
lepi_on_end(lep_conn_t *c, lep_session_t *s, const lep_end_t *e)
{
    if ((e->present & LEP_END_HAS_ERROR) && lepi_cond_decode(&s->remote_cond, e->error) != 0)
        lepi_cond_set_str(&s->remote_cond, LEP_AMQP_ERR_INTERNAL_ERROR,
                          "undecodable error in end");
    s->remote_state = LEP_STATE_CLOSED;
    /* has_remote_channel stays: a begin we still owe answers it. */
    unmap_remote(s);
    for (lep_link_t *l = s->links; l; l = l->next) {
        l->remote_state = LEP_STATE_CLOSED;
        l->has_remote_handle = false;
    }
    if (s->rhandles)
        memset(s->rhandles, 0, s->nrhandles * sizeof *s->rhandles);
    if (s->local_state == LEP_STATE_CLOSED)
        unmap_local(s);
    if (s->internal) {
        lepi_session_destroy(s);
        return;
    }
    lepi_event(c, LEP_EVENT_SESSION_REMOTE_END, s, NULL, NULL);
}

int
lepi_session_send_flow(lep_session_t *s, lep_link_t *l, bool echo)
{
    lep_performative_t p;
    p.code = LEP_DESC_FLOW;
    lep_flow_t *f = &p.u.flow;
    lep_flow_init(f);
    f->present = LEP_FLOW_HAS_INCOMING_WINDOW | LEP_FLOW_HAS_NEXT_OUTGOING_ID |
                 LEP_FLOW_HAS_OUTGOING_WINDOW;
    if (s->remote_state != LEP_STATE_UNINIT) {
        f->present |= LEP_FLOW_HAS_NEXT_INCOMING_ID;
        f->next_incoming_id = s->next_incoming_id;
    }
    f->incoming_window = s->incoming_window;
    f->next_outgoing_id = s->next_outgoing_id;
    f->outgoing_window = LEPI_OUTGOING_WINDOW;
    if (l) {
        f->present |= LEP_FLOW_HAS_HANDLE | LEP_FLOW_HAS_DELIVERY_COUNT |
                      LEP_FLOW_HAS_LINK_CREDIT;
        f->handle = l->handle;
        f->delivery_count = l->delivery_count;
        f->link_credit = l->credit;
        if (!l->receiver) {
            f->present |= LEP_FLOW_HAS_AVAILABLE;
            f->available = l->queued;
        }
        if (l->drain) {
            f->present |= LEP_FLOW_HAS_DRAIN;
            f->drain = true;
        }
        l->flow_pending = false;
    }
    if (echo) {
        f->present |= LEP_FLOW_HAS_ECHO;
        f->echo = true;
    }
    s->flow_pending = false;
    return lepi_write_perf(s->conn, s->channel, &p, (lep_bytes_t){NULL, 0});
}

void
lepi_on_flow(lep_conn_t *c, lep_session_t *s, const lep_flow_t *f)
{
    (void)c;
    uint32_t nii = (f->present & LEP_FLOW_HAS_NEXT_INCOMING_ID) ? f->next_incoming_id : 0;
    s->remote_incoming_window = nii + f->incoming_window - s->next_outgoing_id;
    s->remote_outgoing_window = f->outgoing_window;
    if (f->present & LEP_FLOW_HAS_HANDLE) {
        lep_link_t *l = lepi_link_by_rhandle(s, f->handle);
        if (!l) {
            lepi_session_fail(s, LEP_AMQP_ERR_SESSION_UNATTACHED_HANDLE,
                              "flow for a handle that is not attached");
            return;
        }
        lepi_link_on_flow(l, f);
    } else if (f->echo && s->local_state == LEP_STATE_ACTIVE) {
        s->flow_pending = true;
    }
    lepi_session_pump(s);
}

void
lepi_session_flush(lep_session_t *s)
{
    if (!s->begin_sent || s->end_sent)
        return;
    lepi_flush_dispositions(s);
    if (s->links_flow_pending) {
        s->links_flow_pending = false;
        for (lep_link_t *l = s->links; l; l = l->next)
            if (l->flow_pending && l->attach_sent && !l->detach_sent)
                lepi_session_send_flow(s, l, false);
    }
    if (s->incoming_window <= s->incoming_window_max / 2) {
        s->incoming_window = s->incoming_window_max;
        s->flow_pending = true;
    }
    if (s->flow_pending)
        lepi_session_send_flow(s, NULL, false);
}

void
lepi_sessions_flush(lep_conn_t *c)
{
    for (lep_session_t *s = c->sessions; s; s = s->next)
        lepi_session_flush(s);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

lep_conn_t *lep_session_conn(const lep_session_t *s) { return s->conn; }
lep_state_t lep_session_local_state(const lep_session_t *s) { return s->local_state; }
lep_state_t lep_session_remote_state(const lep_session_t *s) { return s->remote_state; }
const lep_condition_t *lep_session_remote_condition(const lep_session_t *s) { return &s->remote_cond.view; }
void lep_session_set_context(lep_session_t *s, void *ctx) { s->ctx = ctx; }
void *lep_session_context(const lep_session_t *s) { return s->ctx; }

int
lep_session_set_incoming_window(lep_session_t *s, uint32_t frames)
{
    if (s->begin_sent || frames == 0)
        return s->begin_sent ? LEP_ERR_STATE : LEP_ERR_INVALID;
    s->incoming_window = s->incoming_window_max = frames;
    return 0;
}

/* Exposed for link.c: map helpers. */
int lepi_map_fit(void ***map, uint32_t *n, uint32_t i);
int
lepi_map_fit(void ***map, uint32_t *n, uint32_t i)
{
    return map_fit(map, n, i);
}
