/* Not implemented yet: every call fails with LEP_ERR_STATE. */
#include "engine/engine_internal.h"

int
lep_session_new(lep_conn_t *c, lep_session_t **out)
{
    return LEP_ERR_STATE;
}

int
lep_session_free(lep_session_t *s)
{
    return LEP_ERR_STATE;
}

int
lep_session_begin(lep_session_t *s)
{
    return LEP_ERR_STATE;
}

int
lep_session_end(lep_session_t *s, const lep_condition_t *cond)
{
    return LEP_ERR_STATE;
}

lep_conn_t *
lep_session_conn(const lep_session_t *s)
{
    return NULL;
}

lep_state_t
lep_session_local_state(const lep_session_t *s)
{
    return LEP_STATE_UNINIT;
}

lep_state_t
lep_session_remote_state(const lep_session_t *s)
{
    return LEP_STATE_UNINIT;
}

const lep_condition_t *
lep_session_remote_condition(const lep_session_t *s)
{
    return NULL;
}

int
lep_session_set_incoming_window(lep_session_t *s, uint32_t frames)
{
    return LEP_ERR_STATE;
}

void
lep_session_set_context(lep_session_t *s, void *ctx)
{
    return;
}

void *
lep_session_context(const lep_session_t *s)
{
    return NULL;
}

void
lep_link_opts_init(lep_link_opts_t *o)
{
    return;
}

int
lep_link_new(lep_session_t *s, const lep_link_opts_t *o, lep_link_t **out)
{
    return LEP_ERR_STATE;
}

int
lep_link_set_source(lep_link_t *l, const lep_source_t *src)
{
    return LEP_ERR_STATE;
}

int
lep_link_set_target(lep_link_t *l, const lep_target_t *tgt)
{
    return LEP_ERR_STATE;
}

int
lep_link_attach(lep_link_t *l)
{
    return LEP_ERR_STATE;
}

int
lep_link_detach(lep_link_t *l, bool closed, const lep_condition_t *cond)
{
    return LEP_ERR_STATE;
}

int
lep_link_free(lep_link_t *l)
{
    return LEP_ERR_STATE;
}

lep_session_t *
lep_link_session(const lep_link_t *l)
{
    return NULL;
}

lep_bytes_t
lep_link_name(const lep_link_t *l)
{
    return (lep_bytes_t){NULL, 0};
}

bool
lep_link_is_receiver(const lep_link_t *l)
{
    return false;
}

lep_state_t
lep_link_local_state(const lep_link_t *l)
{
    return LEP_STATE_UNINIT;
}

lep_state_t
lep_link_remote_state(const lep_link_t *l)
{
    return LEP_STATE_UNINIT;
}

bool
lep_link_remote_closed(const lep_link_t *l)
{
    return false;
}

const lep_condition_t *
lep_link_remote_condition(const lep_link_t *l)
{
    return NULL;
}

const lep_attach_t *
lep_link_remote_attach(const lep_link_t *l)
{
    return NULL;
}

const lep_source_t *
lep_link_remote_source(const lep_link_t *l)
{
    return NULL;
}

const lep_target_t *
lep_link_remote_target(const lep_link_t *l)
{
    return NULL;
}

const lep_source_t *
lep_link_source(const lep_link_t *l)
{
    return NULL;
}

const lep_target_t *
lep_link_target(const lep_link_t *l)
{
    return NULL;
}

uint8_t
lep_link_snd_settle_mode(const lep_link_t *l)
{
    return 0;
}

uint8_t
lep_link_rcv_settle_mode(const lep_link_t *l)
{
    return 0;
}

void
lep_link_set_context(lep_link_t *l, void *ctx)
{
    return;
}

void *
lep_link_context(const lep_link_t *l)
{
    return NULL;
}

int
lep_link_flow(lep_link_t *l, uint32_t n)
{
    return LEP_ERR_STATE;
}

int
lep_link_drain(lep_link_t *l)
{
    return LEP_ERR_STATE;
}

bool
lep_link_draining(const lep_link_t *l)
{
    return false;
}

uint32_t
lep_link_credit(const lep_link_t *l)
{
    return 0;
}

int
lep_link_drained(lep_link_t *l)
{
    return LEP_ERR_STATE;
}

uint32_t
lep_link_unsettled(const lep_link_t *l)
{
    return 0;
}

uint32_t
lep_link_queued(const lep_link_t *l)
{
    return 0;
}

int
lep_link_send(lep_link_t *l, lep_bytes_t tag, const void *msg, size_t len, bool settled, lep_delivery_t **out)
{
    return LEP_ERR_STATE;
}

int
lep_link_delivery_new(lep_link_t *l, lep_bytes_t tag, lep_delivery_t **out)
{
    return LEP_ERR_STATE;
}

int
lep_delivery_write(lep_delivery_t *d, const void *p, size_t len, bool more)
{
    return LEP_ERR_STATE;
}

int
lep_delivery_abort(lep_delivery_t *d)
{
    return LEP_ERR_STATE;
}

lep_bytes_t
lep_delivery_data(const lep_delivery_t *d)
{
    return (lep_bytes_t){NULL, 0};
}

void
lep_delivery_consume(lep_delivery_t *d, size_t n)
{
    return;
}

bool
lep_delivery_partial(const lep_delivery_t *d)
{
    return false;
}

bool
lep_delivery_aborted(const lep_delivery_t *d)
{
    return false;
}

lep_bytes_t
lep_delivery_tag(const lep_delivery_t *d)
{
    return (lep_bytes_t){NULL, 0};
}

uint32_t
lep_delivery_message_format(const lep_delivery_t *d)
{
    return 0;
}

lep_link_t *
lep_delivery_link(const lep_delivery_t *d)
{
    return NULL;
}

int
lep_delivery_update(lep_delivery_t *d, const lep_outcome_t *o)
{
    return LEP_ERR_STATE;
}

int
lep_delivery_accept(lep_delivery_t *d)
{
    return LEP_ERR_STATE;
}

int
lep_delivery_release(lep_delivery_t *d)
{
    return LEP_ERR_STATE;
}

int
lep_delivery_settle(lep_delivery_t *d)
{
    return LEP_ERR_STATE;
}

bool
lep_delivery_readable(const lep_delivery_t *d)
{
    return false;
}

bool
lep_delivery_updated(const lep_delivery_t *d)
{
    return false;
}

bool
lep_delivery_remote_settled(const lep_delivery_t *d)
{
    return false;
}

const lep_outcome_t *
lep_delivery_remote_state(const lep_delivery_t *d)
{
    return NULL;
}

const lep_outcome_t *
lep_delivery_local_state(const lep_delivery_t *d)
{
    return NULL;
}

void
lep_delivery_set_context(lep_delivery_t *d, void *ctx)
{
    return;
}

void *
lep_delivery_context(const lep_delivery_t *d)
{
    return NULL;
}
void lepi_session_destroy(lep_session_t *s) { (void)s; }
void lepi_pool_free(lep_conn_t *c) { (void)c; }
void lepi_sessions_flush(lep_conn_t *c) { (void)c; }
void lepi_on_begin(lep_conn_t *c, uint16_t ch, const lep_begin_t *b)
{
    (void)ch; (void)b;
    lepi_conn_fail(c, LEP_AMQP_ERR_NOT_IMPLEMENTED, "sessions not implemented");
}
void lepi_on_end(lep_conn_t *c, lep_session_t *s, const lep_end_t *e) { (void)c; (void)s; (void)e; }
void lepi_on_flow(lep_conn_t *c, lep_session_t *s, const lep_flow_t *f) { (void)c; (void)s; (void)f; }
lep_session_t *lepi_session_by_rchannel(lep_conn_t *c, uint16_t ch) { (void)c; (void)ch; return NULL; }
void lepi_on_attach(lep_session_t *s, const lep_attach_t *a, lep_bytes_t raw) { (void)s; (void)a; (void)raw; }
void lepi_on_detach(lep_session_t *s, const lep_detach_t *d) { (void)s; (void)d; }
void lepi_on_transfer(lep_session_t *s, const lep_transfer_t *t, lep_bytes_t payload) { (void)s; (void)t; (void)payload; }
void lepi_on_disposition(lep_session_t *s, const lep_disposition_t *d) { (void)s; (void)d; }
