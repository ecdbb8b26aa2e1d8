/* Producers: links the peer sends on.  Each message is routed (queue,
 * topic, the anonymous relay, management), journalled when durable, and
 * accepted only once it is on its queues and, if durable, on disk.
 * Credit follows the target queue's room. */
#include "broker/broker_internal.h"

#include <stdio.h>
#include <string.h>


enum { PRODUCER_WINDOW = 1000 };

static void
refuse(lep_delivery_t *d, const char *name, const char *desc)
{
    lep_condition_t cond = lep_condition_make(name, desc);
    lep_delivery_reject(d, &cond);
}

int
lepi_producer_open(bconn_t *bc, lep_receiver_t *r, const char *address, bproducer_t **out,
                   lep_condition_t *why, char *whybuf, size_t whylen)
{
    broker_t *b = bc->b;
    bproducer_t *p = lep_calloc(1, sizeof *p);
    if (!p)
        return LEP_ERR_NOMEM;
    p->bc = bc;
    p->rcv = r;
    p->window = PRODUCER_WINDOW;
    if (!address || !*address) {
        p->relay = true;
    } else {
        switch (lepi_address_kind(b, address)) {
        case BA_MANAGEMENT:
            p->management = true;
            break;
        case BA_TOPIC:
            if (!(p->topic = lepi_strdup(address + strlen(b->cfg.topic_prefix)))) {
                lep_free(p);
                return LEP_ERR_NOMEM;
            }
            break;
        case BA_QUEUE: {
            int err;
            p->q = lepi_address_queue(b, address, true, &err);
            if (p->q)
                break;
        } /* fall through */
        default:
            snprintf(whybuf, whylen, "no such address: %s", address);
            *why = lep_condition_make("amqp:not-found", whybuf);
            lep_free(p);
            return LEP_ERR_NOT_FOUND;
        }
    }
    lep_receiver_set_auto_accept(r, false);
    lep_receiver_set_credit_window(r, 0);
    lep_receiver_set_context(r, p);
    p->pnext = bc->producers;
    bc->producers = p;
    lepi_producer_credit(p);
    *out = p;
    return 0;
}

void
lepi_producer_credit(bproducer_t *p)
{
    uint32_t have = lep_receiver_credit(p->rcv);
    if (have > p->window / 2 || p->blocked)
        return;
    /* Messages already received but not handled yet (a whole window can
     * arrive in one read) count as used credit, or a full queue would be
     * granted a second window. */
    lep_link_t *l = lep_receiver_link(p->rcv);
    size_t used = (size_t)have + (l ? lep_link_unsettled(l) : 0);
    size_t want = p->window;
    bqueue_t *q = p->q;
    if (q && (q->policy.max_depth || q->policy.max_bytes) &&
        q->policy.overflow == LEP_OVERFLOW_BLOCK) {
        pthread_mutex_lock(&q->lock);
        size_t room = lepi_queue_room_locked(q);
        if (room < want) {
            want = room;
            if (want <= used) {
                /* nothing to give until the queue drains: it wakes us then */
                p->blocked = true;
                p->blnext = q->blocked;
                q->blocked = p;
            }
        }
        /* Otherwise the window is in flight (durable messages waiting for
         * the journal): each accept calls us again.  Blocking here would
         * wait for a drain that a queue with room never signals. */
        pthread_mutex_unlock(&q->lock);
    }
    if (want > used)
        lep_receiver_flow(p->rcv, (uint32_t)(want - used));
}

/* Checks the relay's target with the access rules; caches the last one. */
static bool
relay_allowed(bproducer_t *p, const char *to, unsigned need)
{
    if (strcmp(p->last_to, to) != 0) {
        snprintf(p->last_to, sizeof p->last_to, "%s", to);
        p->last_allow = lep_acl_check(p->bc->b->cfg.acl, p->bc->b->cfg.nacl, p->bc->user, to);
    }
    return (p->last_allow & need) == need;
}

/* Routes msg to the queue q; returns whether the accept waits for the
 * journal.  A durable message goes into the journal first and onto the
 * queue second: once on the queue a consumer (on another thread) may take
 * and ack it at once, and an ack journalled before its enqueue cancels
 * nothing, so the message, acknowledged long ago, would come back after
 * any later crash (and pin its segment until then). */
static bool
to_queue(bproducer_t *p, bqueue_t *q, bmsg_t *msg, lep_delivery_t *d)
{
    broker_t *b = p->bc->b;
    bool store = msg->durable && q->id && b->store;
    void *pa = NULL;
    if (store) {
        if (!msg->id)
            msg->id = atomic_fetch_add(&b->next_msg_id, 1);
        if (!(pa = lepi_pending_new(p, d))) {
            refuse(d, "amqp:resource-limit-exceeded", "out of memory");
            return false;
        }
        lep_bytes_t stored = lepi_bmsg_stored(msg);
        if (lepi_store_enqueue(b->store, msg->id, stored.ptr, stored.len, &q->id, 1,
                               lepi_pending_done, pa) != 0) {
            lepi_pending_done(pa, LEP_ERR_IO); /* rejected in the connection's context */
            return true;
        }
    }
    int rc = lepi_queue_put(q, msg, store);
    if (rc) {
        if (pa) {
            /* journalled, then refused: cancel the record; the journal's
             * completion finds no delivery to settle */
            lepi_store_ack(b->store, q->id, msg->id, NULL, NULL);
            lepi_pending_drop(pa);
        }
        refuse(d, rc == LEP_ERR_LIMIT ? "amqp:resource-limit-exceeded" : "amqp:not-found",
               rc == LEP_ERR_LIMIT ? "queue full" : "the queue was deleted");
        return false;
    }
    return store;
}

/* Publishes msg to topic (after the prefix); returns whether the accept
 * waits for the journal. */
static bool
to_topic(bproducer_t *p, const char *topic, bmsg_t *msg, lep_delivery_t *d)
{
    broker_t *b = p->bc->b;
    bool pending = false;
    void *pa = msg->durable && b->store ? lepi_pending_new(p, d) : NULL;
    lepi_topic_publish(b, topic, msg, pa ? lepi_pending_done : NULL, pa, &pending);
    if (pa && !pending)
        lepi_pending_forget_one(p, pa);
    return pending;
}

void
lepi_producer_message(bproducer_t *p, lep_delivery_t *d, lep_message_t *m)
{
    bconn_t *bc = p->bc;
    broker_t *b = bc->b;
    atomic_fetch_add_explicit(&b->messages_in, 1, memory_order_relaxed);
    if (p->management) {
        lepi_management_request(bc, p, d, m);
        lepi_producer_credit(p);
        return;
    }
    lep_bytes_t bytes = lep_delivery_data(d);
    bmsg_t *msg;
    int rc = lepi_bmsg_new(&msg, bytes.ptr, bytes.len, m, NULL, -1);
    if (rc) {
        refuse(d, "amqp:resource-limit-exceeded", "out of memory");
        lepi_producer_credit(p);
        return;
    }
    bool wait = false;
    if (p->q) {
        wait = to_queue(p, p->q, msg, d);
    } else if (p->topic) {
        wait = to_topic(p, p->topic, msg, d);
    } else {
        /* the anonymous relay: the message names its address */
        lep_bytes_t to = lep_message_to(m);
        char addr[256];
        if (!to.len || to.len >= sizeof addr) {
            refuse(d, "amqp:not-found", to.len ? "\"to\" too long" : "no \"to\" address");
        } else {
            memcpy(addr, to.ptr, to.len);
            addr[to.len] = '\0';
            baddr_kind_t kind = lepi_address_kind(b, addr);
            if (kind == BA_TOPIC) {
                if (!relay_allowed(p, addr, LEP_ACL_SEND)) {
                    refuse(d, "amqp:unauthorized-access", "not allowed to send there");
                } else {
                    wait = to_topic(p, addr + strlen(b->cfg.topic_prefix), msg, d);
                }
            } else if (kind == BA_QUEUE) {
                int err;
                bqueue_t *q = lepi_address_queue(b, addr, false, &err);
                unsigned need = LEP_ACL_SEND | (q ? 0 : LEP_ACL_CREATE);
                if (!relay_allowed(p, addr, need)) {
                    refuse(d, "amqp:unauthorized-access", "not allowed to send there");
                } else if (!q && !(q = lepi_address_queue(b, addr, true, &err))) {
                    refuse(d, "amqp:not-found", "no such address");
                } else {
                    wait = to_queue(p, q, msg, d);
                }
                lepi_queue_unref(q);
            } else {
                refuse(d, "amqp:not-found", "no such address");
            }
        }
    }
    lepi_bmsg_unref(msg);
    if (!wait && lep_delivery_local_state(d)->type == LEP_OUTCOME_NONE)
        lep_delivery_accept(d);
    lepi_producer_credit(p);
}

void
lepi_producer_close(bproducer_t *p)
{
    bconn_t *bc = p->bc;
    if (p->q) {
        bqueue_t *q = p->q;
        pthread_mutex_lock(&q->lock);
        for (bproducer_t **pp = &q->blocked; *pp; pp = &(*pp)->blnext)
            if (*pp == p) {
                *pp = p->blnext;
                break;
            }
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_lock(&bc->lock);
    for (bproducer_t **pp = &bc->unblock; *pp; pp = &(*pp)->wnext)
        if (*pp == p) {
            *pp = p->wnext;
            break;
        }
    pthread_mutex_unlock(&bc->lock);
    for (bproducer_t **pp = &bc->producers; *pp; pp = &(*pp)->pnext)
        if (*pp == p) {
            *pp = p->pnext;
            break;
        }
    lepi_pending_forget(p);
    lep_receiver_set_context(p->rcv, NULL);
    if (p->owns_temp && p->q)
        lepi_address_remove(bc->b, p->q);
    lepi_queue_unref(p->q);
    lep_free(p->topic);
    lep_free(p);
}
