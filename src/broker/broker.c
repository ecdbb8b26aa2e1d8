/* The broker: a container whose handler turns links into producers and
 * consumers of queues and topics; the store's recovery; life cycle. */
#include "broker/broker_internal.h"
#include "broker/metrics_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ------------------------------------------------------------------ */
/* Connections and their limits                                         */

typedef struct buser_count {
    struct buser_count *next;
    char *user;
    uint32_t n;
} buser_count_t;

/* Counts the connection in; false when a limit refuses it. */
static bool
admit(broker_t *b, bconn_t *bc, char *why, size_t len)
{
    uint32_t max = b->cfg.max_connections ? b->cfg.max_connections : 10000;
    bool ok = true;
    pthread_mutex_lock(&b->conn_lock);
    buser_count_t *u = b->user_counts;
    while (u && strcmp(u->user, bc->user) != 0)
        u = u->next;
    if (b->nconns >= max) {
        snprintf(why, len, "too many connections (limit %u)", max);
        ok = false;
    } else if (b->cfg.max_connections_per_user && u && u->n >= b->cfg.max_connections_per_user) {
        snprintf(why, len, "too many connections for user %s (limit %u)", bc->user,
                 b->cfg.max_connections_per_user);
        ok = false;
    } else {
        if (!u && (u = lep_calloc(1, sizeof *u)) && !(u->user = lepi_strdup(bc->user))) {
            lep_free(u);
            u = NULL;
        }
        if (u && !u->n) {
            u->next = b->user_counts;
            b->user_counts = u;
        }
        if (u)
            u->n++;
        b->nconns++;
        bc->counted = true;
    }
    pthread_mutex_unlock(&b->conn_lock);
    return ok;
}

static void
leave(broker_t *b, bconn_t *bc)
{
    if (!bc->counted)
        return;
    pthread_mutex_lock(&b->conn_lock);
    b->nconns--;
    for (buser_count_t **pp = &b->user_counts; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->user, bc->user) == 0) {
            if (--(*pp)->n == 0) {
                buser_count_t *u = *pp;
                *pp = u->next;
                lep_free(u->user);
                lep_free(u);
            }
            break;
        }
    pthread_mutex_unlock(&b->conn_lock);
    bc->counted = false;
}

static void
on_connection_open(void *ctx, lep_connection_t *c)
{
    broker_t *b = ctx;
    if (!lep_connection_is_server(c) || lep_connection_context(c))
        return;
    bconn_t *bc = lepi_bconn_new(b, c);
    if (!bc) {
        lep_condition_t cond = lep_condition_make("amqp:resource-limit-exceeded", "out of memory");
        lep_connection_close(c, &cond);
        return;
    }
    atomic_fetch_add(&b->connections_total, 1);
    char why[200];
    if (!admit(b, bc, why, sizeof why)) {
        /* no context: whatever the client sent after its open (attaches)
         * is refused, not served */
        lepi_log(b, LEPI_LOG_WARN, "connection from %s (container %s, user %s) refused: %s",
                 lep_connection_peer(c), lep_connection_remote_container(c), bc->user, why);
        lep_condition_t cond = lep_condition_make("amqp:resource-limit-exceeded", why);
        lep_connection_close(c, &cond);
        lepi_bconn_end(bc);
        lepi_bconn_unref(bc);
        return;
    }
    lep_connection_set_context(c, bc);
    lepi_log(b, LEPI_LOG_DEBUG, "connection open from %s: container %s, user %s",
             lep_connection_peer(c), lep_connection_remote_container(c), bc->user);
}

/* Takes the broker's state of a connection apart (its final event). */
static void
release_consumer(broker_t *b, bconsumer_t *cons, bool keep_durable)
{
    bqueue_t *q = cons->q;
    bool temp = cons->owns_temp, sub = cons->is_sub;
    lepi_consumer_close(cons);
    if (temp)
        lepi_address_remove(b, q);
    else if (sub)
        lepi_topic_unsubscribe(b, q, keep_durable);
    lepi_queue_unref(q);
}

static void
on_connection_final(void *ctx, lep_connection_t *c)
{
    broker_t *b = ctx;
    bconn_t *bc = lep_connection_context(c);
    if (!bc)
        return;
    lep_connection_set_context(c, NULL);
    while (bc->consumers)
        release_consumer(b, bc->consumers, true); /* a lost connection detaches */
    while (bc->producers)
        lepi_producer_close(bc->producers);
    lepi_bconn_end(bc);
    leave(b, bc);
    lepi_log(b, LEPI_LOG_DEBUG, "connection closed: user %s", bc->user);
    lepi_bconn_unref(bc);
}

static void
on_connection_error(void *ctx, lep_connection_t *c, const lep_condition_t *cond)
{
    char buf[300];
    lepi_log(ctx, LEPI_LOG_INFO, "connection from %s closed with an error: %s",
             lep_connection_peer(c), lep_condition_format(cond, buf, sizeof buf));
}

static void
on_transport_error(void *ctx, lep_connection_t *c, const lep_condition_t *cond)
{
    char buf[300];
    lepi_log(ctx, LEPI_LOG_INFO, "connection from %s failed: %s", lep_connection_peer(c),
             lep_condition_format(cond, buf, sizeof buf));
}

/* ------------------------------------------------------------------ */
/* Links                                                               */

static bool
allowed(bconn_t *bc, const char *address, unsigned need)
{
    broker_t *b = bc->b;
    return (lep_acl_check(b->cfg.acl, b->cfg.nacl, bc->user, address) & need) == need;
}

/* Terminus symbol fields (distribution-mode, expiry-policy) are views of
 * the symbol's characters. */
static bool
symbol_is(lep_bytes_t sym, const char *s)
{
    return lep_bytes_eq_str(sym, s);
}

static void
refuse_sender(bconn_t *bc, lep_sender_t *s, const char *name, const char *desc)
{
    lepi_log(bc->b, LEPI_LOG_INFO, "user %s: receiver from %s refused: %s", bc->user,
             lep_sender_source_address(s), desc);
    lep_condition_t cond = lep_condition_make(name, desc);
    lep_sender_close(s, &cond);
}

/* The peer's receiver: our sender, a consumer of a queue or a topic. */
static void
on_sender_open(void *ctx, lep_sender_t *s)
{
    broker_t *b = ctx;
    bconn_t *bc = lep_connection_context(lep_sender_connection(s));
    if (!bc) {
        lep_sender_close(s, NULL);
        return;
    }
    if (lep_sender_context(s))
        return;
    const lep_source_t *src = lep_sender_remote_source(s);
    bqueue_t *q = NULL;
    bool browse = false, temp = false, sub = false;
    char why[400];
    if (src && src->dynamic) {
        if (!(q = lepi_address_temporary(b, true))) {
            refuse_sender(bc, s, "amqp:resource-limit-exceeded", "out of memory");
            return;
        }
        lep_sender_set_source_address(s, q->name);
        temp = true;
    } else {
        const char *addr = lep_sender_source_address(s);
        if (!*addr) {
            refuse_sender(bc, s, "amqp:invalid-field", "a receiver needs a source address");
            return;
        }
        switch (lepi_address_kind(b, addr)) {
        case BA_TOPIC: {
            bool durable = src && src->durable > 0 &&
                           (src->present & LEP_SOURCE_HAS_EXPIRY_POLICY) &&
                           symbol_is(src->expiry_policy, "never");
            unsigned need = LEP_ACL_RECEIVE | (durable ? LEP_ACL_CREATE : 0);
            if (!allowed(bc, addr, need)) {
                refuse_sender(bc, s, "amqp:unauthorized-access", "not allowed to subscribe");
                return;
            }
            char name[600];
            lep_bytes_t ln = lep_sender_name(s);
            snprintf(name, sizeof name, "%s:%.*s", lep_connection_remote_container(bc->conn),
                     (int)ln.len, (const char *)ln.ptr);
            int err;
            q = lepi_topic_subscribe(b, addr + strlen(b->cfg.topic_prefix),
                                     durable ? name : NULL, &err);
            if (!q) {
                refuse_sender(bc, s, err == LEP_ERR_STATE ? "amqp:resource-locked"
                                                          : "amqp:resource-limit-exceeded",
                              err == LEP_ERR_STATE ? "the durable subscription is in use"
                                                   : "out of memory");
                return;
            }
            sub = true;
            break;
        }
        case BA_QUEUE: {
            int err;
            q = lepi_address_queue(b, addr, false, &err);
            unsigned need = LEP_ACL_RECEIVE | (q ? 0 : LEP_ACL_CREATE);
            if (!allowed(bc, addr, need)) {
                lepi_queue_unref(q);
                refuse_sender(bc, s, "amqp:unauthorized-access",
                              q ? "not allowed to receive from this address"
                                : "not allowed to create this address");
                return;
            }
            if (q && q->exclusive) {
                /* a dynamic node's messages are for the link that made it
                 * (its replies); anyone may send to it */
                lepi_queue_unref(q);
                refuse_sender(bc, s, "amqp:resource-locked",
                              "a temporary queue is received from only by the link that made it");
                return;
            }
            if (!q && !(q = lepi_address_queue(b, addr, true, &err))) {
                snprintf(why, sizeof why, "no such address: %s", addr);
                refuse_sender(bc, s, "amqp:not-found", why);
                return;
            }
            browse = src && (src->present & LEP_SOURCE_HAS_DISTRIBUTION_MODE) &&
                     symbol_is(src->distribution_mode, "copy");
            break;
        }
        case BA_MANAGEMENT:
            refuse_sender(bc, s, "amqp:not-allowed",
                          "$management takes requests: send them there, with a reply-to");
            return;
        default:
            snprintf(why, sizeof why, "no such address: %s", addr);
            refuse_sender(bc, s, "amqp:not-found", why);
            return;
        }
    }
    bconsumer_t *cons;
    if (lepi_consumer_open(bc, s, q, browse, &cons) != 0) {
        if (temp)
            lepi_address_remove(b, q);
        else if (sub)
            lepi_topic_unsubscribe(b, q, true);
        lepi_queue_unref(q);
        refuse_sender(bc, s, "amqp:resource-limit-exceeded", "out of memory");
        return;
    }
    cons->owns_temp = temp;
    cons->is_sub = sub;
    lepi_log(b, LEPI_LOG_DEBUG, "user %s: %s on %s", bc->user, browse ? "browser" : "consumer",
             q->name);
}

static void
refuse_receiver(bconn_t *bc, lep_receiver_t *r, const char *name, const char *desc)
{
    lepi_log(bc->b, LEPI_LOG_INFO, "user %s: sender to %s refused: %s", bc->user,
             lep_receiver_target_address(r), desc);
    lep_condition_t cond = lep_condition_make(name, desc);
    lep_receiver_close(r, &cond);
}

/* The peer's sender: our receiver, a producer. */
static void
on_receiver_open(void *ctx, lep_receiver_t *r)
{
    broker_t *b = ctx;
    bconn_t *bc = lep_connection_context(lep_receiver_connection(r));
    if (!bc) {
        lep_receiver_close(r, NULL);
        return;
    }
    if (lep_receiver_context(r))
        return;
    const lep_target_t *tgt = lep_receiver_remote_target(r);
    char addr[512];
    snprintf(addr, sizeof addr, "%s", lep_receiver_target_address(r));
    if (tgt && tgt->dynamic) {
        bqueue_t *q = lepi_address_temporary(b, false);
        if (!q) {
            refuse_receiver(bc, r, "amqp:resource-limit-exceeded", "out of memory");
            return;
        }
        lep_receiver_set_target_address(r, q->name);
        snprintf(addr, sizeof addr, "%s", q->name);
        lepi_queue_unref(q); /* the table keeps it until the producer goes */
    }
    if (*addr) {
        baddr_kind_t kind = lepi_address_kind(b, addr);
        unsigned need = kind == BA_MANAGEMENT ? LEP_ACL_MANAGE : LEP_ACL_SEND;
        if (kind == BA_QUEUE) {
            int err;
            bqueue_t *q = lepi_address_queue(b, addr, false, &err);
            if (!q)
                need |= LEP_ACL_CREATE;
            lepi_queue_unref(q);
        }
        if (!allowed(bc, addr, need)) {
            refuse_receiver(bc, r, "amqp:unauthorized-access",
                            need & LEP_ACL_CREATE ? "not allowed to create this address"
                                                  : "not allowed to send to this address");
            return;
        }
    }
    bproducer_t *p;
    lep_condition_t why;
    char whybuf[600];
    int rc = lepi_producer_open(bc, r, addr, &p, &why, whybuf, sizeof whybuf);
    if (rc) {
        if (rc == LEP_ERR_NOMEM)
            why = lep_condition_make("amqp:resource-limit-exceeded", "out of memory");
        refuse_receiver(bc, r, (const char *)why.name.ptr, (const char *)why.description.ptr);
        return;
    }
    p->owns_temp = tgt && tgt->dynamic;
    lepi_log(b, LEPI_LOG_DEBUG, "user %s: producer to %s", bc->user,
             *addr ? addr : "(anonymous relay)");
}

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    bconsumer_t *c = lep_sender_context(s);
    if (c)
        lepi_consumer_credit(c);
}

static void
outcome(lep_sender_t *s, lep_delivery_t *d)
{
    bconsumer_t *c = lep_sender_context(s);
    const lep_outcome_t *o = lep_delivery_remote_state(d);
    if (c)
        lepi_consumer_outcome(c, d, o ? o->type : LEP_OUTCOME_NONE, o);
}

static void on_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d) { outcome(s, d); }
static void on_rejected(void *ctx, lep_sender_t *s, lep_delivery_t *d) { outcome(s, d); }
static void on_released(void *ctx, lep_sender_t *s, lep_delivery_t *d) { outcome(s, d); }
/* Settled with no outcome: as good as accepted (the entry is gone once
 * an outcome was seen). */
static void on_settled(void *ctx, lep_sender_t *s, lep_delivery_t *d) { outcome(s, d); }

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    bproducer_t *p = lep_receiver_context(r);
    if (p) {
        lepi_producer_message(p, d, m);
    } else {
        lep_condition_t cond = lep_condition_make("amqp:not-allowed", "link not attached");
        lep_delivery_reject(d, &cond);
    }
}

static void
on_sender_close(void *ctx, lep_sender_t *s)
{
    bconsumer_t *c = lep_sender_context(s);
    if (!c)
        return;
    lep_link_t *l = lep_sender_link(s);
    /* detach (not close) keeps a durable subscription */
    bool keep = l && !lep_link_remote_closed(l);
    release_consumer(ctx, c, keep);
}

static void
on_receiver_close(void *ctx, lep_receiver_t *r)
{
    bproducer_t *p = lep_receiver_context(r);
    if (p)
        lepi_producer_close(p);
}

static void
on_link_error(void *ctx, const char *what, const lep_condition_t *cond)
{
    char buf[300];
    lepi_log(ctx, LEPI_LOG_DEBUG, "%s closed by peer: %s", what,
             lep_condition_format(cond, buf, sizeof buf));
}
static void on_sender_error(void *ctx, lep_sender_t *s, const lep_condition_t *c) { on_link_error(ctx, "consumer", c); }
static void on_receiver_error(void *ctx, lep_receiver_t *r, const lep_condition_t *c) { on_link_error(ctx, "producer", c); }
static void on_session_error(void *ctx, lep_connection_t *c, lep_session_t *s, const lep_condition_t *cond) { on_link_error(ctx, "session", cond); }

static const lep_handler_t broker_handler = {
    .on_connection_open = on_connection_open,
    .on_connection_error = on_connection_error,
    .on_connection_final = on_connection_final,
    .on_transport_error = on_transport_error,
    .on_session_error = on_session_error,
    .on_sender_open = on_sender_open,
    .on_receiver_open = on_receiver_open,
    .on_sender_close = on_sender_close,
    .on_receiver_close = on_receiver_close,
    .on_sender_error = on_sender_error,
    .on_receiver_error = on_receiver_error,
    .on_sendable = on_sendable,
    .on_accepted = on_accepted,
    .on_rejected = on_rejected,
    .on_released = on_released,
    .on_settled = on_settled,
    .on_message = on_message,
};

/* ------------------------------------------------------------------ */
/* Recovery                                                             */

typedef struct recovery {
    broker_t *b;
    bqueue_t **byid;  /* queues by store id: ids grow, so sorted */
    uint64_t *ids;
    size_t n, cap;
    bmsg_t *last;     /* the message of the previous enqueue (fan-out shares it) */
} recovery_t;

static int
recover_queue(void *ctx, uint64_t id, const char *name, const void *props, size_t len)
{
    recovery_t *r = ctx;
    const char *p = props;
    bqueue_kind_t kind = len ? (bqueue_kind_t)(p[0] - '0') : BQ_QUEUE;
    char pattern[512];
    snprintf(pattern, sizeof pattern, "%.*s", len > 1 ? (int)(len - 1) : 0, len > 1 ? p + 1 : "");
    if (kind != BQ_QUEUE && kind != BQ_SUBSCRIPTION)
        return 0; /* temporary queues are not stored; anything else is not ours */
    bqueue_t *q = lepi_address_add(r->b, name, kind, id, kind == BQ_SUBSCRIPTION ? pattern : NULL);
    if (!q)
        return LEP_ERR_NOMEM;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        bqueue_t **nq = lep_realloc(r->byid, nc * sizeof *nq);
        uint64_t *ni = nq ? lep_realloc(r->ids, nc * sizeof *ni) : NULL;
        if (nq)
            r->byid = nq;
        if (!ni)
            return LEP_ERR_NOMEM;
        r->ids = ni;
        r->cap = nc;
    }
    r->byid[r->n] = q;
    r->ids[r->n++] = id;
    return 0;
}

static bqueue_t *
recovered(recovery_t *r, uint64_t id)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && r->ids[lo] == id ? r->byid[lo] : NULL;
}

static int
recover_message(void *ctx, uint64_t queue_id, uint64_t msg_id, const void *data, size_t len)
{
    recovery_t *r = ctx;
    bqueue_t *q = recovered(r, queue_id);
    if (!q)
        return 0;
    bmsg_t *msg = r->last;
    if (!msg || msg->id != msg_id) {
        int64_t expires;
        lep_bytes_t m = lepi_bmsg_unwrap(data, len, &expires);
        if (lepi_bmsg_new(&msg, m.ptr, m.len, NULL, r->b->recovery_scratch, lepi_now_ms()) != 0)
            return 0; /* undecodable: dropped, as it could never be delivered */
        if (expires == LEPI_ENV_NEVER) {
            msg->expires = 0; /* a dead letter */
            msg->never_expires = true;
        } else if (expires) {
            msg->expires = expires; /* a TTL counts from the arrival */
        }
        msg->id = msg_id;
        msg->recovered = true;
        lepi_bmsg_unref(r->last);
        r->last = msg;
    }
    lepi_queue_put(q, msg, true);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

static void
sweep(void *ctx, bqueue_t *q)
{
    lepi_queue_expire(q, lepi_now_ms());
}

static void
sweep_timer(void *ctx)
{
    broker_t *b = ctx;
    lepi_address_each(b, sweep, b);
    lep_container_schedule(b->c, 1000, sweep_timer, b);
}

static int
fail(char *err, size_t errlen, int rc, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
    return rc;
}

static int
start_listeners(broker_t *b, char *err, size_t errlen)
{
    const lep_broker_config_t *cfg = &b->cfg;
    static const uint8_t relay_cap[] = {0xa3, 15, 'A', 'N', 'O', 'N', 'Y', 'M', 'O',
                                        'U',  'S', '-', 'R', 'E', 'L', 'A', 'Y'};
    char mechs[160];
    lep_connection_opts_t o;
    lep_connection_opts_init(&o);
    o.sasl_users = b->users;
    o.sasl_allow_insecure = cfg->allow_plain_without_tls;
    o.sasl_mechanisms = cfg->sasl_mechanisms;
    /* Without ANONYMOUS, every client authenticates: with a password
     * (users file) or a client certificate (EXTERNAL, offered only to a
     * TLS client that presented one). */
    o.sasl_required = !cfg->allow_anonymous;
    if (!o.sasl_mechanisms && (b->users || !cfg->allow_anonymous)) {
        snprintf(mechs, sizeof mechs, "%s%s%s",
                 b->users ? "SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 PLAIN " : "",
                 cfg->tls_ca ? "EXTERNAL " : "", cfg->allow_anonymous ? "ANONYMOUS" : "");
        size_t n = strlen(mechs);
        while (n && mechs[n - 1] == ' ')
            mechs[--n] = '\0';
        o.sasl_mechanisms = n ? mechs : "EXTERNAL";
    }
    /* One TLS configuration for every amqps listener (each takes its own
     * reference), made as lep_broker_config_check() tried it: minimum
     * version, ciphers and client certificates are not in
     * lep_connection_opts_t.  Without a certificate an amqps listener
     * fails below with the container's reason. */
    lep_tls_config_t *tls = NULL;
    if (cfg->tls_cert) {
        int rc = lep_broker_config_tls(&b->cfg, &tls);
        if (rc)
            return fail(err, errlen, rc, "%s", b->cfg.error);
        o.tls_config = tls;
    }
    o.max_frame_size = cfg->max_frame_size;
    o.max_message_size = cfg->max_message_size;
    o.offered_capabilities = LEP_BYTES(relay_cap, sizeof relay_cap);
    int rc = 0;
    b->listeners = lep_calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof *b->listeners);
    b->ports = lep_calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof *b->ports);
    if (!b->listeners || !b->ports)
        rc = fail(err, errlen, LEP_ERR_NOMEM, "%s", "out of memory");
    for (size_t i = 0; i < cfg->nlisten && rc == 0; i++) {
        rc = lep_container_listen(b->c, cfg->listen[i], &o, &b->listeners[i]);
        if (rc) {
            fail(err, errlen, rc, "%s", lep_container_error());
            break;
        }
        b->ports[i] = lep_listener_port(b->listeners[i]);
        b->nlisteners++;
        lepi_log(b, LEPI_LOG_INFO, "listening on %s (port %u)", cfg->listen[i],
                 (unsigned)b->ports[i]);
    }
    if (tls)
        lep_tls_config_free(tls);
    return rc;
}

int
lep_broker_new(lep_broker_t **out, const lep_broker_config_t *cfg, char *err, size_t errlen)
{
    if (!out || !cfg)
        return LEP_ERR_INVALID;
    *out = NULL;
    broker_t *b = lep_calloc(1, sizeof *b);
    if (!b)
        return fail(err, errlen, LEP_ERR_NOMEM, "%s", "out of memory");
    b->cfg = *cfg;
    b->log_level = lepi_log_level_parse(cfg->log_level ? cfg->log_level : "info");
    if (b->log_level < 0)
        b->log_level = LEPI_LOG_INFO;
    pthread_mutex_init(&b->log_lock, NULL);
    pthread_mutex_init(&b->conn_lock, NULL);
    pthread_rwlock_init(&b->table_lock, NULL);
    atomic_init(&b->next_msg_id, 1);
    atomic_init(&b->next_queue_id, 1);
    atomic_init(&b->next_temp, 1);
    int rc = lep_message_new(&b->recovery_scratch);
    if (rc) {
        lep_broker_free(b);
        return fail(err, errlen, rc, "%s", "out of memory");
    }
    if (cfg->users_file) {
        char why[400];
        if ((rc = lep_sasl_users_load(&b->users, cfg->users_file, why, sizeof why)) != 0) {
            lep_broker_free(b);
            return fail(err, errlen, rc, "%s", why);
        }
    }
    if (cfg->data_dir && *cfg->data_dir) {
        lepi_store_opts_t so;
        lepi_store_opts_init(&so);
        so.dir = cfg->data_dir;
        so.fsync = cfg->fsync;
        recovery_t r = {.b = b};
        lepi_store_recovery_t rec = {.ctx = &r, .queue = recover_queue, .message = recover_message};
        lepi_store_info_t info;
        char why[600];
        rc = lepi_store_open(&b->store, &so, &rec, &info, why, sizeof why);
        lepi_bmsg_unref(r.last);
        lep_free(r.byid);
        lep_free(r.ids);
        if (rc) {
            lep_broker_free(b);
            return fail(err, errlen, rc, "%s", why);
        }
        atomic_store(&b->next_msg_id, info.max_msg_id + 1);
        atomic_store(&b->next_queue_id, info.max_queue_id + 1);
        lepi_log(b, LEPI_LOG_INFO,
                 "store %s: %llu queues, %llu messages recovered%s", cfg->data_dir,
                 (unsigned long long)info.queues, (unsigned long long)info.enqueues,
                 info.truncated_bytes ? " (a torn record at the end was cut off)" : "");
    }
    for (size_t i = 0; i < cfg->nqueues; i++) {
        int e;
        bqueue_t *q = lepi_address_queue(b, cfg->queues[i].name, false, &e);
        if (!q && !lepi_address_add(b, cfg->queues[i].name, BQ_QUEUE, 0, NULL)) {
            lep_broker_free(b);
            return fail(err, errlen, LEP_ERR_NOMEM, "cannot make queue %s", cfg->queues[i].name);
        }
        lepi_queue_unref(q);
    }
    lep_container_opts_t co;
    lep_container_opts_init(&co);
    co.id = cfg->container_id ? cfg->container_id : "lepton-broker";
    co.handler = &broker_handler;
    co.ctx = b;
    co.auto_stop = false;
    if ((rc = lep_container_new(&b->c, &co)) != 0) {
        lep_broker_free(b);
        return fail(err, errlen, rc, "%s", "out of memory");
    }
    if ((rc = start_listeners(b, err, errlen)) != 0) {
        lep_broker_free(b);
        return rc;
    }
    if (cfg->metrics_listen) {
        char why[300];
        rc = lepi_metrics_http_start(&b->metrics, cfg->metrics_listen, lepi_metrics_render, b,
                                     why, sizeof why);
        if (rc) {
            lep_broker_free(b);
            return fail(err, errlen, rc, "%s", why);
        }
        b->metrics_port = lepi_metrics_http_port(b->metrics);
        char host[256];
        uint16_t unused;
        if (lepi_metrics_parse_listen(cfg->metrics_listen, host, sizeof host, &unused) != 0)
            snprintf(host, sizeof host, "?");
        lepi_log(b, LEPI_LOG_INFO, strchr(host, ':') ? "metrics on http://[%s]:%u/metrics"
                                                     : "metrics on http://%s:%u/metrics",
                 host, (unsigned)b->metrics_port);
    }
    lep_container_schedule(b->c, 1000, sweep_timer, b);
    *out = b;
    return 0;
}

static void *
run_thread(void *arg)
{
    lep_container_run(arg);
    return NULL;
}

int
lep_broker_run(lep_broker_t *b)
{
    if (!b)
        return LEP_ERR_INVALID;
    int n = b->cfg.threads;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    if (n > 64)
        n = 64;
    pthread_t th[64];
    int started = 0;
    for (int i = 1; i < n; i++)
        if (pthread_create(&th[started], NULL, run_thread, b->c) == 0)
            started++;
    int rc = lep_container_run(b->c);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (b->store)
        lepi_store_sync(b->store);
    lepi_log(b, LEPI_LOG_INFO, "stopped");
    return rc;
}

void
lep_broker_stop(lep_broker_t *b)
{
    if (b && b->c)
        lep_container_stop(b->c);
}

void
lep_broker_free(lep_broker_t *b)
{
    if (!b)
        return;
    if (b->metrics)
        lepi_metrics_http_stop(b->metrics);
    lep_container_free(b->c);
    lepi_address_free_all(b);
    if (b->store)
        lepi_store_close(b->store);
    if (b->users)
        lep_sasl_users_free(b->users);
    while (b->user_counts) {
        buser_count_t *u = b->user_counts;
        b->user_counts = u->next;
        lep_free(u->user);
        lep_free(u);
    }
    lep_message_free(b->recovery_scratch);
    lep_free(b->listeners);
    lep_free(b->ports);
    pthread_rwlock_destroy(&b->table_lock);
    pthread_mutex_destroy(&b->conn_lock);
    pthread_mutex_destroy(&b->log_lock);
    lep_free(b);
}

uint16_t
lep_broker_port(const lep_broker_t *b, size_t i)
{
    return b && i < b->nlisteners ? b->ports[i] : 0;
}

uint16_t
lep_broker_metrics_port(const lep_broker_t *b)
{
    return b ? b->metrics_port : 0;
}
