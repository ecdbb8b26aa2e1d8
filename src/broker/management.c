/* AMQP management on "$management" (requests with the operation in their
 * application properties, answers to their reply-to) and the Prometheus
 * metrics. */
#include "broker/broker_internal.h"
#include "broker/metrics_http.h"

#include <stdio.h>
#include <string.h>

/* A queue's figures: each is a key of the $management map and a
 * Prometheus family (read under the queue's lock). */
enum { ST_DEPTH, ST_BYTES, ST_CONSUMERS, ST_GROUPS, ST_ENQUEUED, ST_DELIVERED, ST_ACKED,
       ST_DEAD_LETTERED, ST_EXPIRED, ST_COUNT };

static const struct {
    const char *key, *family, *help;
    lepi_prom_type_t type;
} stat_names[ST_COUNT] = {
    {"depth", "lepton_queue_depth", "Messages on the queue (waiting, being sent or unacknowledged)", LEPI_PROM_GAUGE},
    {"bytes", "lepton_queue_bytes", "Bytes of the messages on the queue", LEPI_PROM_GAUGE},
    {"consumers", "lepton_queue_consumers", "Consumers and browsers attached", LEPI_PROM_GAUGE},
    {"groups", "lepton_queue_groups", "Message groups held by a consumer", LEPI_PROM_GAUGE},
    {"enqueued", "lepton_queue_enqueued_total", "Messages put on the queue", LEPI_PROM_COUNTER},
    {"delivered", "lepton_queue_delivered_total", "Messages handed to consumers", LEPI_PROM_COUNTER},
    {"acked", "lepton_queue_acked_total", "Messages consumers accepted", LEPI_PROM_COUNTER},
    {"dead_lettered", "lepton_queue_dead_lettered_total", "Messages dead-lettered or dropped", LEPI_PROM_COUNTER},
    {"expired", "lepton_queue_expired_total", "Messages that expired", LEPI_PROM_COUNTER},
};

typedef struct qstats {
    uint64_t v[ST_COUNT];
    bool durable;
    bqueue_kind_t kind;
} qstats_t;

static void
read_stats(bqueue_t *q, qstats_t *s)
{
    pthread_mutex_lock(&q->lock);
    s->v[ST_DEPTH] = q->depth;
    s->v[ST_BYTES] = q->bytes;
    s->v[ST_CONSUMERS] = q->nconsumers;
    for (bconsumer_t *c = q->browsers; c; c = c->bnext)
        s->v[ST_CONSUMERS]++;
    s->v[ST_GROUPS] = q->ngroups;
    s->v[ST_ENQUEUED] = q->enqueued;
    s->v[ST_DELIVERED] = q->delivered;
    s->v[ST_ACKED] = q->acked;
    s->v[ST_DEAD_LETTERED] = q->dead_lettered;
    s->v[ST_EXPIRED] = q->expired;
    s->durable = q->id != 0;
    s->kind = q->kind;
    pthread_mutex_unlock(&q->lock);
}

static const char *
kind_name(bqueue_kind_t k)
{
    return k == BQ_SUBSCRIPTION ? "subscription" : k == BQ_TEMPORARY ? "temporary" : "queue";
}

static void
encode_queue(lep_encoder_t *e, bqueue_t *q)
{
    qstats_t s;
    read_stats(q, &s);
    lep_encode_map_begin(e);
    lep_encode_cstring(e, "name");
    lep_encode_cstring(e, q->name);
    lep_encode_cstring(e, "type");
    lep_encode_cstring(e, kind_name(s.kind));
    if (q->pattern) {
        lep_encode_cstring(e, "pattern");
        lep_encode_cstring(e, q->pattern);
    }
    lep_encode_cstring(e, "durable");
    lep_encode_bool(e, s.durable);
    for (int i = 0; i < ST_COUNT; i++) {
        lep_encode_cstring(e, stat_names[i].key);
        lep_encode_ulong(e, s.v[i]);
    }
    lep_encode_map_end(e);
}

typedef struct list_ctx {
    lep_encoder_t *e;
} list_ctx_t;

static void
list_one(void *ctx, bqueue_t *q)
{
    list_ctx_t *l = ctx;
    encode_queue(l->e, q);
}

static bool
prop_str(const lep_message_t *m, const char *key, char *out, size_t len)
{
    const lep_atom_t *v = lep_message_property(m, lep_bytes_str(key));
    if (!v || (v->type != LEP_TYPE_STRING && v->type != LEP_TYPE_SYMBOL) ||
        v->u.bytes.len >= len)
        return false;
    memcpy(out, v->u.bytes.ptr, v->u.bytes.len);
    out[v->u.bytes.len] = '\0';
    return true;
}

/* Builds the answer and puts it on the reply-to queue. */
static void
answer(broker_t *b, const lep_message_t *req, int status, const char *desc,
       const lep_buf_t *body)
{
    lep_bytes_t rt = lep_message_reply_to(req);
    char addr[512];
    if (!rt.len || rt.len >= sizeof addr)
        return;
    memcpy(addr, rt.ptr, rt.len);
    addr[rt.len] = '\0';
    lep_message_t *m;
    if (lep_message_new(&m) != 0)
        return;
    lep_message_set_to(m, rt);
    const lep_atom_t *cid = lep_message_id(req);
    lep_message_set_correlation_id(m, cid ? cid : lep_message_correlation_id(req));
    lep_atom_t v = {.type = LEP_TYPE_INT};
    v.u.i = status;
    lep_message_set_property(m, lep_bytes_str("statusCode"), &v);
    lep_atom_t d = {.type = LEP_TYPE_STRING};
    d.u.bytes = lep_bytes_str(desc);
    lep_message_set_property(m, lep_bytes_str("statusDescription"), &d);
    if (body && body->len)
        lep_message_set_body_value_raw(m, LEP_BYTES(body->data, body->len));
    lep_buf_t wire;
    lep_buf_init(&wire);
    bmsg_t *msg;
    int err;
    bqueue_t *q = lepi_address_queue(b, addr, false, &err);
    if (q && lep_message_encode(m, &wire) == 0 &&
        lepi_bmsg_new(&msg, wire.data, wire.len, m, NULL, lepi_now_ms()) == 0) {
        lepi_queue_put(q, msg, false);
        lepi_bmsg_unref(msg);
    }
    lepi_queue_unref(q);
    lep_buf_fini(&wire);
    lep_message_free(m);
}

void
lepi_management_request(bconn_t *bc, bproducer_t *p, lep_delivery_t *d, lep_message_t *m)
{
    broker_t *b = bc->b;
    char op[64], type[64], name[512];
    lep_buf_t body;
    lep_buf_init(&body);
    lep_bytes_t rt = lep_message_reply_to(m);
    if (!rt.len || rt.len >= sizeof name) {
        lep_condition_t cond = lep_condition_make("amqp:invalid-field",
                                                  rt.len ? "the reply-to address is too long"
                                                         : "a management request needs a reply-to");
        lep_delivery_reject(d, &cond);
        return;
    }
    /* the answer is a message sent to the reply-to: the user's to send */
    memcpy(name, rt.ptr, rt.len);
    name[rt.len] = '\0';
    if (!(lep_acl_check(b->cfg.acl, b->cfg.nacl, bc->user, name) & LEP_ACL_SEND)) {
        lep_condition_t cond = lep_condition_make("amqp:unauthorized-access",
                                                  "not allowed to send to the reply-to address");
        lep_delivery_reject(d, &cond);
        return;
    }
    if (!prop_str(m, "operation", op, sizeof op)) {
        answer(b, m, 400, "the application property \"operation\" is missing", NULL);
        goto done;
    }
    if (!prop_str(m, "type", type, sizeof type))
        snprintf(type, sizeof type, "queue");
    if (strcmp(type, "queue") != 0) {
        answer(b, m, 400, "unknown type (only \"queue\")", NULL);
        goto done;
    }
    bool has_name = prop_str(m, "name", name, sizeof name);
    lep_encoder_t e;
    lep_encoder_init(&e, &body);
    if (strcmp(op, "QUERY") == 0) {
        list_ctx_t l = {&e};
        lep_encode_list_begin(&e);
        lepi_address_each(b, list_one, &l);
        lep_encode_list_end(&e);
        answer(b, m, 200, "OK", &body);
    } else if (!has_name) {
        answer(b, m, 400, "the application property \"name\" is missing", NULL);
    } else if (strcmp(op, "READ") == 0 || strcmp(op, "CREATE") == 0) {
        int err;
        bool create = strcmp(op, "CREATE") == 0;
        if (create && !((lep_acl_check(b->cfg.acl, b->cfg.nacl, bc->user, name) & LEP_ACL_CREATE))) {
            answer(b, m, 403, "not allowed to create this queue", NULL);
            goto done;
        }
        bqueue_t *q = lepi_address_queue(b, name, false, &err);
        bool made = false;
        if (!q && create) {
            baddr_kind_t k = lepi_address_kind(b, name);
            if (k == BA_TOPIC || k == BA_MANAGEMENT) {
                answer(b, m, 400, "not a queue address", NULL);
                goto done;
            }
            q = lepi_address_queue(b, name, LEPI_CREATE_ALWAYS, &err);
            made = q != NULL;
        }
        if (!q) {
            answer(b, m, 404, "no such queue", NULL);
        } else {
            encode_queue(&e, q);
            answer(b, m, made ? 201 : 200, made ? "Created" : "OK", &body);
            lepi_queue_unref(q);
        }
    } else if (strcmp(op, "DELETE") == 0 || strcmp(op, "PURGE") == 0) {
        int err;
        if (!(lep_acl_check(b->cfg.acl, b->cfg.nacl, bc->user, name) & LEP_ACL_MANAGE)) {
            answer(b, m, 403, "not allowed", NULL);
            goto done;
        }
        bqueue_t *q = lepi_address_queue(b, name, false, &err);
        if (!q) {
            answer(b, m, 404, "no such queue", NULL);
        } else if (strcmp(op, "PURGE") == 0) {
            size_t n = lepi_queue_purge(q);
            lep_encode_ulong(&e, n);
            answer(b, m, 200, "OK", &body);
            lepi_queue_unref(q);
        } else {
            lepi_address_remove(b, q);
            lepi_queue_unref(q);
            answer(b, m, 204, "No Content", NULL);
        }
    } else {
        answer(b, m, 501, "unknown operation (QUERY, READ, CREATE, DELETE, PURGE)", NULL);
    }
done:
    lep_buf_fini(&body);
    lep_delivery_accept(d);
}

/* ------------------------------------------------------------------ */
/* Prometheus                                                           */

/* Each queue's figures are read once, their samples going to one buffer
 * per family; the families follow each other in the output. */
typedef struct render_ctx {
    lep_buf_t fam[ST_COUNT];
} render_ctx_t;

static void
render_queue(void *ctx, bqueue_t *q)
{
    render_ctx_t *r = ctx;
    qstats_t s;
    read_stats(q, &s);
    const char *labels[] = {"queue", q->name, "type", kind_name(s.kind), NULL};
    for (int i = 0; i < ST_COUNT; i++)
        lepi_prom_sample_u64(&r->fam[i], stat_names[i].family, labels, s.v[i]);
}

/* A family with one sample and no labels. */
static void
one(lep_buf_t *out, const char *name, const char *help, lepi_prom_type_t type, uint64_t v)
{
    lepi_prom_metric(out, name, help, type);
    lepi_prom_sample_u64(out, name, NULL, v);
}

void
lepi_metrics_render(void *ctx, lep_buf_t *out)
{
    broker_t *b = ctx;
    render_ctx_t r;
    for (int i = 0; i < ST_COUNT; i++)
        lep_buf_init(&r.fam[i]);
    lepi_address_each(b, render_queue, &r);
    for (int i = 0; i < ST_COUNT; i++) {
        lepi_prom_metric(out, stat_names[i].family, stat_names[i].help, stat_names[i].type);
        lep_buf_append(out, r.fam[i].data, r.fam[i].len);
        lep_buf_fini(&r.fam[i]);
    }
    pthread_mutex_lock(&b->conn_lock);
    size_t conns = b->nconns;
    pthread_mutex_unlock(&b->conn_lock);
    one(out, "lepton_connections", "Open client connections", LEPI_PROM_GAUGE, conns);
    one(out, "lepton_connections_total", "Connections accepted", LEPI_PROM_COUNTER,
        atomic_load(&b->connections_total));
    one(out, "lepton_messages_in_total", "Messages received from producers", LEPI_PROM_COUNTER,
        atomic_load(&b->messages_in));
    one(out, "lepton_messages_out_total", "Messages sent to consumers", LEPI_PROM_COUNTER,
        atomic_load(&b->messages_out));
    if (b->store) {
        lepi_store_stats_t st;
        lepi_store_stats(b->store, &st);
        one(out, "lepton_store_syncs_total", "Journal syncs (group commits)", LEPI_PROM_COUNTER,
            st.syncs);
        one(out, "lepton_store_appends_total", "Journal records appended", LEPI_PROM_COUNTER,
            st.appends);
        one(out, "lepton_store_disk_bytes", "Bytes of journal files", LEPI_PROM_GAUGE, st.disk_bytes);
        one(out, "lepton_store_live_messages", "Messages the journal holds", LEPI_PROM_GAUGE,
            st.live_messages);
    }
}
