/* Messaging connections: settings, connect and listen, the io callbacks,
 * connection- and session-level events, reconnect bookkeeping. */
#include "messaging/messaging_internal.h"
#include "tls/tls_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Settings                                                            */

void
lep_connection_opts_init(lep_connection_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->sasl_enabled = true;
    o->tls_verify = true;
    o->idle_timeout_ms = UINT32_MAX; /* "the default": 60 s for clients, none for servers */
    lep_io_connect_opts_t io;
    lep_io_connect_opts_init(&io);
    o->reconnect = io.reconnect;
}

void
lepi_settings_fini(lepi_settings_t *s)
{
    lep_free(s->user);
    lep_free(s->password);
    lep_free(s->sasl_mechanisms);
    lep_free(s->hostname);
    if (s->tls)
        lep_tls_config_free(s->tls);
    lep_buf_fini(&s->caps);
    for (size_t i = 0; i < s->naddrs; i++)
        lep_free(s->hosts[i]);
    lep_free(s->hosts);
    lep_free(s->addrs);
    memset(s, 0, sizeof *s);
}

static int
tls_setup(lepi_settings_t *s, const lep_connection_opts_t *o, bool server, char *err,
          size_t errlen)
{
    if (o->tls_config) {
        /* One more reference for us: lep_tls_add takes its own too. */
        s->tls = o->tls_config;
        lepi_tls_config_ref(s->tls);
        return 0;
    }
    int rc = lep_tls_config_new(&s->tls, server);
    if (rc) {
        snprintf(err, errlen, "TLS: %s", lep_strerror(rc));
        return rc;
    }
    if (server && !o->tls_cert) {
        snprintf(err, errlen, "amqps listener needs a certificate (tls_cert, and tls_key "
                              "unless the key is in the certificate file)");
        return LEP_ERR_INVALID;
    }
    if ((o->tls_cert || o->tls_key) &&
        (rc = lep_tls_config_set_cert(s->tls, o->tls_cert, o->tls_key ? o->tls_key : o->tls_cert,
                                      o->tls_key_password)) != 0) {
        snprintf(err, errlen, "TLS certificate: %s", lep_tls_config_error(s->tls));
        return rc;
    }
    if (o->tls_ca && (rc = lep_tls_config_set_ca(s->tls, o->tls_ca, NULL)) != 0) {
        snprintf(err, errlen, "TLS CA file %s: %s", o->tls_ca, lep_tls_config_error(s->tls));
        return rc;
    }
    if (server)
        rc = o->tls_ca ? lep_tls_config_set_verify(s->tls, LEP_TLS_VERIFY_OPTIONAL) : 0;
    else
        rc = lep_tls_config_set_verify(s->tls, o->tls_verify ? LEP_TLS_VERIFY_PEER_NAME
                                                             : LEP_TLS_VERIFY_NONE);
    if (rc)
        snprintf(err, errlen, "TLS: %s", lep_tls_config_error(s->tls));
    return rc;
}

/* Names are checked where the SASL layer is made; a connection that
 * could never be set up is a bad option now, not a retry loop later. */
static int
check_mechanisms(const lepi_settings_t *s, bool server)
{
    lep_conn_opts_t eo;
    lep_conn_opts_init(&eo);
    eo.server = server;
    lep_conn_t *c;
    int rc = lep_conn_new(&c, &eo);
    if (rc)
        return rc;
    if (server) {
        lep_sasl_server_opts_t so;
        lep_sasl_server_opts_init(&so);
        so.mechanisms = s->sasl_mechanisms;
        rc = lep_sasl_server_add(c, &so, NULL);
    } else {
        lep_sasl_client_opts_t so;
        lep_sasl_client_opts_init(&so);
        so.mechanisms = s->sasl_mechanisms;
        rc = lep_sasl_client_add(c, &so, NULL);
    }
    lep_conn_free(c);
    return rc == LEP_ERR_INVALID ? LEP_ERR_INVALID : 0;
}

static int
add_addr(lepi_settings_t *s, const char *host, uint16_t port)
{
    lep_io_addr_t *a = lep_realloc(s->addrs, (s->naddrs + 1) * sizeof *a);
    if (!a)
        return LEP_ERR_NOMEM;
    s->addrs = a;
    char **h = lep_realloc(s->hosts, (s->naddrs + 1) * sizeof *h);
    if (!h)
        return LEP_ERR_NOMEM;
    s->hosts = h;
    if (!(h[s->naddrs] = lepi_strdup(host)))
        return LEP_ERR_NOMEM;
    a[s->naddrs].host = h[s->naddrs];
    a[s->naddrs].port = port;
    s->naddrs++;
    return 0;
}

int
lepi_settings_init(lepi_settings_t *s, const lep_connection_opts_t *o, bool server,
                   const lep_url_t *url, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    lep_connection_opts_t defaults;
    if (!o) {
        lep_connection_opts_init(&defaults);
        o = &defaults;
    }
    if (o->handler) {
        s->handler.h = *o->handler;
        s->handler.set = true;
    }
    s->handler.ctx = o->ctx;
    const char *user = url && url->user ? url->user : o->user;
    const char *password = url && url->password ? url->password : o->password;
    const char *host = o->hostname ? o->hostname : url && !server ? url->host : NULL;
    if ((user && !(s->user = lepi_strdup(user))) ||
        (password && !(s->password = lepi_strdup(password))) ||
        (o->sasl_mechanisms && !(s->sasl_mechanisms = lepi_strdup(o->sasl_mechanisms))) ||
        (host && !(s->hostname = lepi_strdup(host)))) {
        snprintf(err, errlen, "out of memory");
        return LEP_ERR_NOMEM;
    }
    s->sasl_enabled = o->sasl_enabled;
    s->sasl_required = o->sasl_required;
    s->sasl_allow_insecure = o->sasl_allow_insecure;
    s->sasl_users = o->sasl_users;
    s->sasl_authenticate = o->sasl_authenticate;
    s->sasl_auth_ctx = o->sasl_auth_ctx;
    s->idle_timeout_ms = o->idle_timeout_ms != UINT32_MAX ? o->idle_timeout_ms
                         : server                         ? 0
                                                          : 60000;
    s->max_frame_size = o->max_frame_size;
    s->channel_max = o->channel_max;
    s->max_message_size = o->max_message_size;
    s->reconnect = o->reconnect;
    lep_buf_init(&s->caps);
    size_t a = o->offered_capabilities.len, d = o->desired_capabilities.len,
           p = o->properties.len;
    if (a + d + p) {
        if (lep_buf_reserve(&s->caps, a + d + p) != 0) {
            snprintf(err, errlen, "out of memory");
            return LEP_ERR_NOMEM;
        }
        lep_buf_append(&s->caps, o->offered_capabilities.ptr, a);
        lep_buf_append(&s->caps, o->desired_capabilities.ptr, d);
        lep_buf_append(&s->caps, o->properties.ptr, p);
        s->offered = LEP_BYTES(s->caps.data, a);
        s->desired = LEP_BYTES(s->caps.data + a, d);
        s->properties = LEP_BYTES(s->caps.data + a + d, p);
    }
    int rc;
    if (s->sasl_enabled && s->sasl_mechanisms && (rc = check_mechanisms(s, server)) != 0) {
        snprintf(err, errlen, "SASL mechanisms \"%s\": unknown name (known: ANONYMOUS PLAIN "
                 "EXTERNAL SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-512)", s->sasl_mechanisms);
        return rc;
    }
    if (url && url->tls && (rc = tls_setup(s, o, server, err, errlen)) != 0)
        return rc;
    if (server || !url)
        return 0;
    if ((rc = add_addr(s, url->host, url->port)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    for (size_t i = 0; i < o->nfailover_urls; i++) {
        lep_url_t fu;
        rc = lep_url_parse(o->failover_urls[i], &fu);
        if (rc == 0 && fu.tls != url->tls) {
            snprintf(fu.error, sizeof fu.error, "failover URLs must use the scheme of the first");
            rc = LEP_ERR_INVALID;
        }
        if (rc == 0)
            rc = add_addr(s, fu.host, fu.port);
        if (rc)
            snprintf(err, errlen, "failover URL \"%s\": %s", o->failover_urls[i],
                     rc == LEP_ERR_NOMEM ? "out of memory" : fu.error);
        lep_url_fini(&fu);
        if (rc)
            return rc;
    }
    return 0;
}

static void
engine_opts(const lep_connection_t *c, lep_conn_opts_t *eo)
{
    const lepi_settings_t *s = c->set;
    lep_conn_opts_init(eo);
    eo->server = c->server;
    eo->container_id = c->cont->id;
    if (!c->server)
        eo->hostname = s->hostname;
    eo->idle_timeout_ms = s->idle_timeout_ms;
    if (s->max_frame_size)
        eo->max_frame_size = s->max_frame_size;
    if (s->channel_max)
        eo->channel_max = s->channel_max;
    eo->max_message_size = s->max_message_size;
    eo->offered_capabilities = s->offered;
    eo->desired_capabilities = s->desired;
    eo->properties = s->properties;
}

/* ------------------------------------------------------------------ */
/* Connection objects                                                  */

int
lepi_connection_new(lep_container_t *cont, const lepi_settings_t *set, bool server,
                    lep_connection_t **out)
{
    lep_connection_t *c = lep_calloc(1, sizeof *c);
    if (!c)
        return LEP_ERR_NOMEM;
    c->cont = cont;
    c->server = server;
    c->set = set ? set : &c->own;
    atomic_init(&c->refs, 1);
    lep_buf_init(&c->enc);
    int rc = lep_message_new(&c->msg);
    if (rc) {
        lep_free(c);
        return rc;
    }
    snprintf(c->peer, sizeof c->peer, "-");
    *out = c;
    return 0;
}

static void
connection_free(lep_connection_t *c)
{
    lepi_links_free_all(c);
    if (c->ic && atomic_load(&c->ic_held))
        lep_io_conn_release(c->ic);
    lep_message_free(c->msg);
    lep_buf_fini(&c->enc);
    if (c->set == &c->own)
        lepi_settings_fini(&c->own);
    lep_free(c->remote_container);
    lep_free(c->user);
    lep_free(c->close_name);
    lep_free(c->close_desc);
    lep_free(c);
}

void
lepi_connection_release(lep_connection_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        connection_free(c);
}

void lep_connection_hold(lep_connection_t *c) { atomic_fetch_add(&c->refs, 1); }
void lep_connection_release(lep_connection_t *c) { lepi_connection_release(c); }

lep_container_t *lep_connection_container(const lep_connection_t *c) { return c->cont; }
lep_conn_t *lep_connection_engine(const lep_connection_t *c) { return c->engine; }
lep_session_t *lep_connection_session(const lep_connection_t *c) { return c->session; }
void lep_connection_set_context(lep_connection_t *c, void *ctx) { c->ctx = ctx; }
void *lep_connection_context(const lep_connection_t *c) { return c->ctx; }
bool lep_connection_is_server(const lep_connection_t *c) { return c->server; }
bool lep_connection_reconnecting(const lep_connection_t *c) { return c->reconnecting; }
const char *lep_connection_user(const lep_connection_t *c) { return c->user; }
const char *lep_connection_peer(const lep_connection_t *c) { return c->peer; }

const char *
lep_connection_remote_container(const lep_connection_t *c)
{
    return c->remote_container ? c->remote_container : "";
}

bool
lep_connection_offers(const lep_connection_t *c, const char *capability)
{
    if (!c->engine)
        return false;
    const lep_open_t *o = lep_conn_remote_open(c->engine);
    if (!o || !(o->present & LEP_OPEN_HAS_OFFERED_CAPABILITIES))
        return false;
    /* A symbol or an array of symbols. */
    lep_reader_t r, child;
    lep_atom_t a;
    lep_reader_init(&r, o->offered_capabilities.ptr, o->offered_capabilities.len);
    if (lep_reader_next(&r, &a) != 0)
        return false;
    if (a.type == LEP_TYPE_SYMBOL)
        return lep_bytes_eq_str(a.u.bytes, capability);
    if (a.type != LEP_TYPE_ARRAY || lep_reader_enter(&r, &a, &child) != 0)
        return false;
    while (!lep_reader_done(&child)) {
        if (lep_reader_next(&child, &a) != 0)
            return false;
        if (a.type == LEP_TYPE_SYMBOL && lep_bytes_eq_str(a.u.bytes, capability))
            return true;
    }
    return false;
}

int
lep_connection_inject(lep_connection_t *c, lep_io_fn fn, void *ctx)
{
    if (!c || !fn)
        return LEP_ERR_INVALID;
    if (!c->ic)
        return LEP_ERR_STATE;
    return lep_io_conn_inject(c->ic, fn, ctx);
}

int
lep_connection_schedule(lep_connection_t *c, uint64_t delay_ms, lep_io_fn fn, void *ctx)
{
    if (!c || !fn)
        return LEP_ERR_INVALID;
    if (!c->ic)
        return LEP_ERR_STATE;
    return lep_io_conn_schedule(c->ic, delay_ms, fn, ctx);
}

static void
do_close(lep_connection_t *c, const lep_condition_t *cond)
{
    if (c->engine && lep_conn_local_state(c->engine) != LEP_STATE_CLOSED)
        lep_conn_close(c->engine, cond);
    else if (!c->engine && c->ic)
        lep_io_conn_abort(c->ic); /* waiting to reconnect: that ends it */
}

/* A close asked for inside a callback goes out once the container has
 * done what follows the callback (e.g. settling the delivery whose
 * outcome made the application close), so nothing is cut off. */
static void
close_if_pending(lep_connection_t *c)
{
    if (c->in_event)
        return;
    if (c->links_pending)
        lepi_links_detach_pending(c);
    if (!c->close_pending)
        return;
    c->close_pending = false;
    lep_condition_t cond = lep_condition_make(c->close_name, c->close_desc);
    do_close(c, c->close_name ? &cond : NULL);
    lep_free(c->close_name);
    lep_free(c->close_desc);
    c->close_name = c->close_desc = NULL;
}

int
lep_connection_close(lep_connection_t *c, const lep_condition_t *cond)
{
    if (!c)
        return LEP_ERR_INVALID;
    if (c->app_closed || c->ended)
        return 0;
    c->app_closed = true;
    if (c->ic)
        lep_io_conn_cancel_reconnect(c->ic);
    if (c->in_event) {
        c->close_pending = true;
        if (lep_condition_set(cond)) {
            c->close_name = lepi_bytes_dup(cond->name);
            c->close_desc = lepi_bytes_dup(cond->description);
        }
        return 0;
    }
    do_close(c, cond);
    return 0;
}

/* The default session: made on demand, again after the peer ended it. */
lep_session_t *lepi_connection_session(lep_connection_t *c);
lep_session_t *
lepi_connection_session(lep_connection_t *c)
{
    if (!c->engine)
        return NULL;
    if (c->session && lep_session_local_state(c->session) == LEP_STATE_ACTIVE &&
        lep_session_remote_state(c->session) != LEP_STATE_CLOSED)
        return c->session;
    lep_session_t *s;
    if (lep_session_new(c->engine, &s) != 0 || lep_session_begin(s) != 0)
        return NULL;
    c->session = s;
    return s;
}

/* host:port for messages, IPv6 literals in brackets. */
static void
set_peer(lep_connection_t *c, const char *host, uint16_t port)
{
    snprintf(c->peer, sizeof c->peer, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             (unsigned)port);
}

/* ------------------------------------------------------------------ */
/* io callbacks                                                        */

/* attempt: consecutive failures so far, this one included.  The default
 * report is quiet about the retries in between: it tells the first
 * failure and the last. */
static void
transport_error(lep_connection_t *c, const lep_condition_t *cond, uint32_t attempt)
{
    const lepi_hslot_t *s = LEPI_PICK(c, NULL, on_transport_error);
    if (s)
        s->h.on_transport_error(s->ctx, c, cond);
    else if (c->server)
        lepi_report(c->peer, "connection from peer failed", cond);
    else if (!c->reconnecting)
        lepi_report(c->peer, "connection failed", cond);
    else if (attempt <= 1)
        lepi_report(c->peer, "connection failed (reconnecting)", cond);
}

static void
set_remote_container(lep_connection_t *c)
{
    const lep_open_t *o = lep_conn_remote_open(c->engine);
    lep_free(c->remote_container);
    c->remote_container = o ? lepi_bytes_dup(o->container_id) : NULL;
}

static void
conn_event(lep_connection_t *c, const lep_event_t *ev)
{
    lep_conn_t *e = ev->conn;
    const lepi_hslot_t *s;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        set_remote_container(c);
        if (lep_conn_local_state(e) == LEP_STATE_UNINIT)
            lep_conn_open(e);
        if (c->server && !c->user && lep_conn_user(e).len)
            c->user = lepi_bytes_dup(lep_conn_user(e));
        if ((s = LEPI_PICK(c, NULL, on_connection_open)))
            s->h.on_connection_open(s->ctx, c);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE: {
        const lep_condition_t *cond = lep_conn_remote_condition(e);
        /* As Proton: a peer that closes with amqp:connection:forced (a
         * broker going down) is tried again; one that closes for any
         * other reason, or none, is done with us. */
        if (c->ic && !(lep_condition_set(cond) &&
                       lep_bytes_eq_str(cond->name, "amqp:connection:forced")))
            lep_io_conn_cancel_reconnect(c->ic);
        if (lep_condition_set(cond)) {
            if ((s = LEPI_PICK(c, NULL, on_connection_error)))
                s->h.on_connection_error(s->ctx, c, cond);
            else
                lepi_report(c->peer, "connection closed by peer", cond);
        } else if ((s = LEPI_PICK(c, NULL, on_connection_close))) {
            s->h.on_connection_close(s->ctx, c);
        }
        if (lep_conn_local_state(e) != LEP_STATE_CLOSED)
            lep_conn_close(e, NULL);
        break;
    }
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            lep_session_begin(ev->session);
        if ((s = LEPI_PICK(c, NULL, on_session_open)))
            s->h.on_session_open(s->ctx, c, ev->session);
        break;
    case LEP_EVENT_SESSION_REMOTE_END: {
        const lep_condition_t *cond = lep_session_remote_condition(ev->session);
        lepi_links_session_end(c, ev->session, cond);
        if (lep_session_local_state(ev->session) == LEP_STATE_ACTIVE)
            lep_session_end(ev->session, NULL);
        if (lep_condition_set(cond)) {
            if ((s = LEPI_PICK(c, NULL, on_session_error)))
                s->h.on_session_error(s->ctx, c, ev->session, cond);
            else
                lepi_report(c->peer, "session ended by peer", cond);
        } else if ((s = LEPI_PICK(c, NULL, on_session_close))) {
            s->h.on_session_close(s->ctx, c, ev->session);
        }
        break;
    }
    case LEP_EVENT_TRANSPORT_ERROR:
        /* Reported with the end of the transport, where the socket's own
         * error (refused, reset) can be told from a protocol error. */
        c->transport_failed = true;
        break;
    default:
        lepi_links_event(c, ev);
        break;
    }
}

static void
io_event(lep_connection_t *c, const lep_event_t *ev)
{
    if (!c)
        return;
    c->in_event++;
    conn_event(c, ev);
    c->in_event--;
    close_if_pending(c);
}

/* The connection keeps ic's memory for as long as it lives itself: the
 * hold is taken by the first to see ic (the connecting thread or a
 * callback), before the final on_disconnected can free it. */
static void
hold_ic(lep_connection_t *c, lep_io_conn_t *ic)
{
    c->ic = ic;
    if (!atomic_exchange(&c->ic_held, true))
        lep_io_conn_hold(ic);
}

static void
io_disconnected(lep_connection_t *c, lep_io_conn_t *ic, int os_error, const char *reason)
{
    hold_ic(c, ic);
    lep_conn_t *e = lep_io_conn_engine(ic);
    /* A refused login or an untrusted certificate does not get better by
     * trying again. */
    if (e) {
        const lep_condition_t *lc = lep_conn_local_condition(e);
        const lep_condition_t *rc = lep_conn_remote_condition(e);
        if ((lep_condition_set(lc) && lep_bytes_eq_str(lc->name, "amqp:unauthorized-access")) ||
            (lep_condition_set(rc) && lep_bytes_eq_str(rc->name, "amqp:unauthorized-access")))
            lep_io_conn_cancel_reconnect(ic);
    }
    if (c->app_closed)
        lep_io_conn_cancel_reconnect(ic);
    c->reconnecting = !c->server && lep_io_conn_reconnecting(ic);
    /* The socket's own error (refused, reset) says more than the
     * engine's view of it; a protocol error (EPROTO) is the engine's.
     * The end of a connection the application closed is no error. */
    bool ours = c->app_closed && (os_error == ECONNABORTED || os_error == ECANCELED);
    /* The engine's condition is the better one when a layer or the
     * protocol failed (TLS verification, SASL, a bad frame); when it only
     * saw the socket end ("connection aborted"), the socket's errno says
     * more. */
    const lep_condition_t *ec = c->transport_failed && e ? lep_conn_local_condition(e) : NULL;
    bool engine_says_more = ec && !(lep_bytes_eq_str(ec->name, "amqp:connection:framing-error") &&
                                    lep_bytes_eq_str(ec->description, "connection aborted"));
    if (engine_says_more) {
        transport_error(c, ec, lep_io_conn_attempt(ic));
    } else if (os_error && os_error != EPROTO && !ours) {
        lep_condition_t cond = lep_condition_make("lepton:io", reason);
        transport_error(c, &cond, lep_io_conn_attempt(ic));
    } else if (ec) {
        transport_error(c, ec, lep_io_conn_attempt(ic));
    }
    c->transport_failed = false;
    void **ctxs = NULL;
    size_t n = 0, cap = 0;
    lepi_links_transport_gone(c, !c->reconnecting, &ctxs, &n, &cap);
    c->engine = NULL;
    c->session = NULL;
    const lepi_hslot_t *s = LEPI_PICK(c, NULL, on_disconnected);
    if (s)
        s->h.on_disconnected(s->ctx, c, (void *const *)ctxs, n);
    lep_free(ctxs);
    bool final = !c->reconnecting;
    c->reconnecting = false;
    if (!final)
        return;
    c->ended = true;
    if ((s = LEPI_PICK(c, NULL, on_connection_final)))
        s->h.on_connection_final(s->ctx, c);
    lepi_links_free_all(c);
    lepi_container_conn_remove(c->cont, c);
    lepi_connection_release(c);
}

/* Client side: ctx is the connection. */

static int
client_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *e)
{
    lep_connection_t *c = ctx;
    const lepi_settings_t *s = c->set;
    hold_ic(c, ic);
    c->engine = e;
    c->session = NULL;
    lep_conn_set_context(e, c);
    if (c->cont->trace)
        lep_conn_set_trace(e, c->cont->trace, c->cont->trace_ctx);
    const lep_io_addr_t *a = lep_io_conn_addr(ic);
    if (a)
        set_peer(c, a->host, a->port);
    int rc;
    if (s->sasl_enabled) {
        lep_sasl_client_opts_t so;
        lep_sasl_client_opts_init(&so);
        so.mechanisms = s->sasl_mechanisms;
        so.username = s->user;
        so.password = s->password;
        so.allow_insecure = s->sasl_allow_insecure;
        so.hostname = s->hostname;
        if ((rc = lep_sasl_client_add(e, &so, NULL)) != 0)
            return rc;
    }
    if (s->tls && (rc = lep_tls_add(e, s->tls, a ? a->host : s->hostname, NULL)) != 0)
        return rc;
    if ((rc = lep_conn_open(e)) != 0)
        return rc;
    lepi_links_attach_all(c);
    return 0;
}

static void
client_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    io_event(ctx, ev);
}

static void
client_disconnected(void *ctx, lep_io_conn_t *ic, int os_error, const char *reason)
{
    io_disconnected(ctx, ic, os_error, reason);
}

static const lep_io_handler_t client_handler = {
    .on_setup = client_setup,
    .on_event = client_event,
    .on_disconnected = client_disconnected,
};

/* Server side: ctx is the listener; the connection is the engine's
 * context. */

static lep_connection_t *
server_conn(lep_io_conn_t *ic)
{
    lep_conn_t *e = lep_io_conn_engine(ic);
    return e ? lep_conn_context(e) : NULL;
}

static int
server_setup(void *ctx, lep_io_conn_t *ic, lep_conn_t *e)
{
    lepi_listener_t *l = ctx;
    const lepi_settings_t *s = &l->set;
    lep_connection_t *c;
    int rc = lepi_connection_new(l->cont, s, true, &c);
    if (rc)
        return rc;
    c->engine = e;
    lep_conn_set_context(e, c);
    if (l->cont->trace)
        lep_conn_set_trace(e, l->cont->trace, l->cont->trace_ctx);
    snprintf(c->peer, sizeof c->peer, "%s", *lep_io_conn_peer(ic) ? lep_io_conn_peer(ic) : "incoming");
    if (s->sasl_enabled) {
        lep_sasl_server_opts_t so;
        lep_sasl_server_opts_init(&so);
        so.mechanisms = s->sasl_mechanisms;
        so.users = s->sasl_users;
        so.authenticate = s->sasl_authenticate;
        so.auth_ctx = s->sasl_auth_ctx;
        so.allow_insecure = s->sasl_allow_insecure;
        /* Without credentials to check, anyone may come in, with SASL
         * ANONYMOUS or without SASL at all (as Proton's examples do). */
        so.optional = !s->sasl_required && !s->sasl_users && !s->sasl_authenticate;
        rc = lep_sasl_server_add(e, &so, NULL);
    }
    if (!rc && s->tls)
        rc = lep_tls_add(e, s->tls, NULL, NULL);
    if (rc) {
        lep_conn_set_context(e, NULL);
        lepi_connection_release(c);
        return rc;
    }
    hold_ic(c, ic);
    lepi_container_conn_add(l->cont, c);
    return 0;
}

static void
server_event(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev)
{
    io_event(server_conn(ic), ev);
}

static void
server_disconnected(void *ctx, lep_io_conn_t *ic, int os_error, const char *reason)
{
    lep_connection_t *c = server_conn(ic);
    if (c)
        io_disconnected(c, ic, os_error, reason);
}

static const lep_io_handler_t server_handler = {
    .on_setup = server_setup,
    .on_event = server_event,
    .on_disconnected = server_disconnected,
};

/* ------------------------------------------------------------------ */
/* connect, listen                                                     */

/* A URL, or connect.json when url is NULL, as a parsed URL plus the
 * options the file adds. */
static int
resolve_url(const char *url, lep_url_t *u, lep_connection_opts_t *o, lep_connect_config_t *cfg,
            bool *have_cfg)
{
    *have_cfg = false;
    if (url) {
        int rc = lep_url_parse(url, u);
        if (rc)
            lepi_set_error("bad URL \"%s\": %s", url, rc == LEP_ERR_NOMEM ? "out of memory"
                                                                          : u->error);
        return rc;
    }
    int rc = lep_connect_config_init(cfg);
    if (rc == 0)
        rc = lep_connect_config_find(cfg, NULL);
    if (rc == LEP_ERR_NOT_FOUND) {
        lep_connect_config_fini(cfg);
        rc = lep_url_parse("amqp://localhost", u);
        return rc;
    }
    if (rc) {
        lepi_set_error("%s", cfg->error[0] ? cfg->error : lep_strerror(rc));
        lep_connect_config_fini(cfg);
        memset(u, 0, sizeof *u);
        return rc;
    }
    *have_cfg = true;
    char buf[600];
    snprintf(buf, sizeof buf, "%s://%s:%u", cfg->scheme, cfg->host, (unsigned)cfg->port);
    if ((rc = lep_url_parse(buf, u)) != 0) {
        lepi_set_error("%s: bad host or scheme: %s", cfg->path, u->error);
        lep_connect_config_fini(cfg);
        return rc;
    }
    if (cfg->user)
        o->user = cfg->user;
    if (cfg->password)
        o->password = cfg->password;
    o->sasl_enabled = cfg->sasl_enabled;
    if (cfg->sasl_mechanisms)
        o->sasl_mechanisms = cfg->sasl_mechanisms;
    o->sasl_allow_insecure = cfg->sasl_allow_insecure;
    if (cfg->tls_ca)
        o->tls_ca = cfg->tls_ca;
    if (cfg->tls_cert)
        o->tls_cert = cfg->tls_cert;
    if (cfg->tls_key)
        o->tls_key = cfg->tls_key;
    o->tls_verify = cfg->tls_verify;
    return 0;
}

/* Makes a client connection, not started yet. */
static int
connection_prepare(lep_container_t *cont, const char *url, const lep_connection_opts_t *o,
                   lep_connection_t **out, char **address)
{
    lep_connection_opts_t opts;
    if (o)
        opts = *o;
    else
        lep_connection_opts_init(&opts);
    lep_url_t u;
    lep_connect_config_t cfg;
    bool have_cfg;
    int rc = resolve_url(url, &u, &opts, &cfg, &have_cfg);
    if (rc) {
        lep_url_fini(&u);
        return rc;
    }
    lep_connection_t *c;
    if ((rc = lepi_connection_new(cont, NULL, false, &c)) != 0) {
        lep_url_fini(&u);
        if (have_cfg)
            lep_connect_config_fini(&cfg);
        return rc;
    }
    char err[400] = "";
    rc = lepi_settings_init(&c->own, &opts, false, &u, err, sizeof err);
    if (rc == 0 && address && u.address && u.address[0] && !(*address = lepi_strdup(u.address)))
        rc = LEP_ERR_NOMEM;
    if (rc)
        lepi_set_error("%s", err[0] ? err : lep_strerror(rc));
    c->tls = u.tls;
    set_peer(c, u.host, u.port);
    lep_url_fini(&u);
    if (have_cfg)
        lep_connect_config_fini(&cfg);
    if (rc) {
        lepi_connection_release(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int
connection_start(lep_connection_t *c)
{
    lep_io_connect_opts_t io;
    lep_io_connect_opts_init(&io);
    lep_conn_opts_t eo;
    engine_opts(c, &eo);
    io.addrs = c->own.addrs;
    io.naddrs = c->own.naddrs;
    io.copts = &eo;
    io.reconnect = c->own.reconnect;
    lepi_container_conn_add(c->cont, c);
    lep_io_conn_t *ic;
    int rc = lep_proactor_connect_opts(c->cont->p, &io, &client_handler, c, &ic);
    if (rc) {
        lepi_set_error("cannot connect to %s: %s", c->peer, lep_strerror(rc));
        lepi_container_conn_remove(c->cont, c);
        c->ic = NULL;
        return rc;
    }
    hold_ic(c, ic);
    return 0;
}

int
lep_container_connect(lep_container_t *cont, const char *url, const lep_connection_opts_t *o,
                      lep_connection_t **out)
{
    if (out)
        *out = NULL;
    if (!cont)
        return LEP_ERR_INVALID;
    lepi_set_error("%s", "");
    lep_connection_t *c;
    int rc = connection_prepare(cont, url, o, &c, NULL);
    if (rc)
        return rc;
    if ((rc = connection_start(c)) != 0) {
        lepi_connection_release(c);
        return rc;
    }
    if (out)
        *out = c;
    return 0;
}

int lepi_open_link(lep_connection_t *c, bool receiver, const char *address, const void *opts,
                   lepi_mlink_t **out);

static int
open_on_url(lep_container_t *cont, const char *url, bool receiver, const void *lo,
            const lep_connection_opts_t *co, lepi_mlink_t **out)
{
    if (out)
        *out = NULL;
    if (!cont)
        return LEP_ERR_INVALID;
    lepi_set_error("%s", "");
    lep_connection_t *c;
    char *address = NULL;
    int rc = connection_prepare(cont, url, co, &c, &address);
    if (rc)
        return rc;
    lepi_mlink_t *m;
    rc = lepi_open_link(c, receiver, address, lo, &m);
    lep_free(address);
    if (rc == 0)
        rc = connection_start(c);
    if (rc) {
        lepi_connection_release(c);
        return rc;
    }
    if (out)
        *out = m;
    return 0;
}

int
lep_container_open_sender(lep_container_t *cont, const char *url, const lep_sender_opts_t *so,
                          const lep_connection_opts_t *co, lep_sender_t **out)
{
    lepi_mlink_t *m;
    int rc = open_on_url(cont, url, false, so, co, &m);
    if (out)
        *out = rc ? NULL : (lep_sender_t *)m;
    return rc;
}

int
lep_container_open_receiver(lep_container_t *cont, const char *url,
                            const lep_receiver_opts_t *ro, const lep_connection_opts_t *co,
                            lep_receiver_t **out)
{
    lepi_mlink_t *m;
    int rc = open_on_url(cont, url, true, ro, co, &m);
    if (out)
        *out = rc ? NULL : (lep_receiver_t *)m;
    return rc;
}

int
lep_container_listen(lep_container_t *cont, const char *url, const lep_connection_opts_t *o,
                     lep_listener_t **out)
{
    if (out)
        *out = NULL;
    if (!cont || !url)
        return LEP_ERR_INVALID;
    lepi_set_error("%s", "");
    lep_url_t u;
    int rc = lep_url_parse(url, &u);
    if (rc) {
        lepi_set_error("bad URL \"%s\": %s", url, u.error);
        lep_url_fini(&u);
        return rc;
    }
    lepi_listener_t *l = lep_calloc(1, sizeof *l);
    if (!l) {
        lep_url_fini(&u);
        return LEP_ERR_NOMEM;
    }
    l->cont = cont;
    l->tls = u.tls;
    char err[400] = "";
    rc = lepi_settings_init(&l->set, o, true, &u, err, sizeof err);
    if (rc) {
        lepi_set_error("%s", err);
    } else {
        lep_conn_opts_t eo;
        lep_connection_t tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.cont = cont;
        tmp.server = true;
        tmp.set = &l->set;
        engine_opts(&tmp, &eo);
        rc = lep_proactor_listen(cont->p, u.host, u.port, &eo, &server_handler, l, &l->l);
        if (rc)
            lepi_set_error("cannot listen on %s:%u: %s", u.host, (unsigned)u.port,
                           errno ? strerror(errno) : lep_strerror(rc));
    }
    lep_url_fini(&u);
    if (rc) {
        lepi_settings_fini(&l->set);
        lep_free(l);
        return rc;
    }
    pthread_mutex_lock(&cont->lock);
    l->next = cont->listeners;
    cont->listeners = l;
    pthread_mutex_unlock(&cont->lock);
    if (out)
        *out = l->l;
    return 0;
}

void
lep_container_close_listener(lep_container_t *cont, lep_listener_t *listener)
{
    if (!cont || !listener)
        return;
    pthread_mutex_lock(&cont->lock);
    for (lepi_listener_t *l = cont->listeners; l; l = l->next)
        if (l->l == listener) {
            lep_listener_close(l->l);
            l->l = NULL;
        }
    pthread_mutex_unlock(&cont->lock);
}
