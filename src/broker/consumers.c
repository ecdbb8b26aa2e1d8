/* Per-connection state (bconn) and consumers: messages handed over by
 * queues in outboxes, sent in the connection's own context, and their
 * outcomes. */
#include "broker/broker_internal.h"

#include <stdlib.h>
#include <string.h>


/* A durable message's accept, waiting for the journal. */
typedef struct pending_accept {
    struct pending_accept *next;      /* bc->accepts, in completion order */
    struct pending_accept *pprev, *pnext; /* the producer's outstanding list */
    bconn_t *bc;
    bproducer_t *p;                   /* NULL once the producer closed */
    lep_delivery_t *d;                /* NULL once gone */
    int status;
} pending_accept_t;

/* ------------------------------------------------------------------ */
/* bconn                                                               */

bconn_t *
lepi_bconn_new(broker_t *b, lep_connection_t *conn)
{
    bconn_t *bc = lep_calloc(1, sizeof *bc);
    if (!bc)
        return NULL;
    if (lep_message_new(&bc->scratch) != 0) {
        lep_free(bc);
        return NULL;
    }
    const char *user = lep_connection_user(conn);
    if (!(bc->user = lepi_strdup(user ? user : "anonymous"))) {
        lep_message_free(bc->scratch);
        lep_free(bc);
        return NULL;
    }
    bc->b = b;
    bc->conn = conn;
    lep_connection_hold(conn);
    atomic_init(&bc->refs, 1);
    lep_buf_init(&bc->buf);
    pthread_mutex_init(&bc->lock, NULL);
    return bc;
}

void
lepi_bconn_ref(bconn_t *bc)
{
    atomic_fetch_add(&bc->refs, 1);
}

void
lepi_bconn_unref(bconn_t *bc)
{
    if (atomic_fetch_sub(&bc->refs, 1) != 1)
        return;
    while (bc->accepts) {
        pending_accept_t *pa = bc->accepts;
        bc->accepts = pa->next;
        lep_free(pa);
    }
    pthread_mutex_destroy(&bc->lock);
    lep_message_free(bc->scratch);
    lep_buf_fini(&bc->buf);
    lep_connection_release(bc->conn);
    lep_free(bc->user);
    lep_free(bc);
}

void
lepi_bconn_wake(bconn_t *bc)
{
    bool inject = false;
    pthread_mutex_lock(&bc->lock);
    if (!bc->wake_queued && !bc->ended) {
        bc->wake_queued = true;
        inject = true;
    }
    pthread_mutex_unlock(&bc->lock);
    if (!inject)
        return;
    lepi_bconn_ref(bc);
    if (lep_connection_inject(bc->conn, lepi_bconn_work, bc) != 0) {
        pthread_mutex_lock(&bc->lock);
        bc->wake_queued = false;
        pthread_mutex_unlock(&bc->lock);
        lepi_bconn_unref(bc);
    }
}

static void
settle_accepts(bconn_t *bc, pending_accept_t *list)
{
    while (list) {
        pending_accept_t *pa = list;
        list = pa->next;
        if (pa->d) {
            if (pa->status == 0) {
                lep_delivery_finish(pa->d, LEP_OUTCOME_ACCEPTED);
            } else {
                lep_condition_t cond =
                    lep_condition_make("amqp:internal-error", "the journal could not store it");
                lep_delivery_reject(pa->d, &cond);
                lep_delivery_finish(pa->d, LEP_OUTCOME_REJECTED);
            }
        }
        if (pa->p) {
            if (pa->pprev)
                pa->pprev->pnext = pa->pnext;
            else
                pa->p->pending = pa->pnext;
            if (pa->pnext)
                pa->pnext->pprev = pa->pprev;
            lepi_producer_credit(pa->p);
        }
        lep_free(pa);
        lepi_bconn_unref(bc);
    }
}

void
lepi_bconn_work(void *ctx)
{
    bconn_t *bc = ctx;
    pthread_mutex_lock(&bc->lock);
    bc->wake_queued = false;
    pending_accept_t *accepts = bc->accepts;
    bc->accepts = NULL;
    bool ended = bc->ended;
    pthread_mutex_unlock(&bc->lock);
    /* One consumer (producer) at a time off the shared lists: a queue on
     * another thread may put it back on while it is being served, which
     * must not disturb the walk.  What comes back after the walk was
     * woken anew and gets a work item of its own. */
    size_t budget = 0;
    for (bconsumer_t *c = bc->consumers; c; c = c->cnext)
        budget++;
    for (size_t i = 0; i <= budget && !ended; i++) {
        pthread_mutex_lock(&bc->lock);
        bconsumer_t *c = bc->wake;
        if (c) {
            bc->wake = c->wnext;
            c->in_wake = false;
        }
        pthread_mutex_unlock(&bc->lock);
        if (!c)
            break;
        lepi_consumer_flush(c);
    }
    budget = 0;
    for (bproducer_t *p = bc->producers; p; p = p->pnext)
        budget++;
    for (size_t i = 0; i <= budget && !ended; i++) {
        pthread_mutex_lock(&bc->lock);
        bproducer_t *p = bc->unblock;
        if (p) {
            bc->unblock = p->wnext;
            p->in_wake = false;
        }
        pthread_mutex_unlock(&bc->lock);
        if (!p)
            break;
        lepi_producer_credit(p);
    }
    /* in completion order, so accepts go out in the order messages came */
    pending_accept_t *rev = NULL;
    while (accepts) {
        pending_accept_t *pa = accepts;
        accepts = pa->next;
        pa->next = rev;
        rev = pa;
    }
    settle_accepts(bc, rev);
    pthread_mutex_lock(&bc->lock);
    bool more = !ended && !bc->ended && (bc->wake || bc->unblock || bc->accepts);
    pthread_mutex_unlock(&bc->lock);
    if (more)
        lepi_bconn_wake(bc);
    lepi_bconn_unref(bc);
}

/* Store completion (writer thread). */
void
lepi_pending_done(void *ctx, int status)
{
    pending_accept_t *pa = ctx;
    bconn_t *bc = pa->bc;
    pa->status = status;
    pthread_mutex_lock(&bc->lock);
    bool ended = bc->ended;
    if (!ended) {
        pa->next = bc->accepts;
        bc->accepts = pa;
    }
    pthread_mutex_unlock(&bc->lock);
    if (ended) {
        lep_free(pa);
        lepi_bconn_unref(bc);
        return;
    }
    lepi_bconn_wake(bc);
}

/* A pending accept for d (connection context); NULL: out of memory. */
void *
lepi_pending_new(bproducer_t *p, lep_delivery_t *d)
{
    pending_accept_t *pa = lep_calloc(1, sizeof *pa);
    if (!pa)
        return NULL;
    pa->bc = p->bc;
    pa->p = p;
    pa->d = d;
    pa->pnext = p->pending;
    if (p->pending)
        ((pending_accept_t *)p->pending)->pprev = pa;
    p->pending = pa;
    lepi_bconn_ref(p->bc);
    return pa;
}

/* A pending accept that will not be needed after all. */
void
lepi_pending_forget_one(bproducer_t *p, void *ctx)
{
    pending_accept_t *pa = ctx;
    if (pa->pprev)
        pa->pprev->pnext = pa->pnext;
    else
        p->pending = pa->pnext;
    if (pa->pnext)
        pa->pnext->pprev = pa->pprev;
    bconn_t *bc = pa->bc;
    lep_free(pa);
    lepi_bconn_unref(bc);
}

/* The delivery was refused after its message went to the journal: the
 * completion (still to come) settles nothing (connection context). */
void
lepi_pending_drop(void *ctx)
{
    pending_accept_t *pa = ctx;
    pa->d = NULL;
}

/* The producer closes: its deliveries are gone with its link. */
void
lepi_pending_forget(bproducer_t *p)
{
    for (pending_accept_t *pa = p->pending; pa; pa = pa->pnext) {
        pa->d = NULL;
        pa->p = NULL;
    }
    p->pending = NULL;
}

/* The connection ended: nothing more runs in its context. */
void
lepi_bconn_end(bconn_t *bc)
{
    pthread_mutex_lock(&bc->lock);
    bc->ended = true;
    pending_accept_t *accepts = bc->accepts;
    bc->accepts = NULL;
    bc->wake = NULL;
    bc->unblock = NULL;
    pthread_mutex_unlock(&bc->lock);
    while (accepts) {
        pending_accept_t *pa = accepts;
        accepts = pa->next;
        lep_free(pa);
        lepi_bconn_unref(bc);
    }
}

/* ------------------------------------------------------------------ */
/* Consumers                                                           */

int
lepi_consumer_open(bconn_t *bc, lep_sender_t *s, bqueue_t *q, bool browse, bconsumer_t **out)
{
    bconsumer_t *c = lep_calloc(1, sizeof *c);
    if (!c)
        return LEP_ERR_NOMEM;
    c->bc = bc;
    c->q = q;
    c->snd = s;
    c->browse = browse;
    pthread_mutex_lock(&q->lock);
    if (browse) {
        c->bnext = q->browsers;
        q->browsers = c;
    } else {
        if (q->nconsumers == q->capconsumers) {
            size_t nc = q->capconsumers ? q->capconsumers * 2 : 4;
            bconsumer_t **v = lep_realloc(q->consumers, nc * sizeof *v);
            if (!v) {
                pthread_mutex_unlock(&q->lock);
                lep_free(c);
                return LEP_ERR_NOMEM;
            }
            q->consumers = v;
            q->capconsumers = nc;
        }
        q->consumers[q->nconsumers++] = c;
    }
    pthread_mutex_unlock(&q->lock);
    lep_sender_set_context(s, c);
    c->cnext = bc->consumers;
    bc->consumers = c;
    *out = c;
    return 0;
}

void
lepi_consumer_credit(bconsumer_t *c)
{
    if (c->detached)
        return;
    bqueue_t *q = c->q;
    uint32_t credit = lep_sender_credit(c->snd);
    pthread_mutex_lock(&q->lock);
    c->credit = (int64_t)credit - (int64_t)c->outbox.n;
    pthread_mutex_unlock(&q->lock);
    lepi_queue_dispatch(q);
    lepi_consumer_flush(c);
}

/* Gives entries back to the queue (in the order given), redelivered ones
 * counted; those over the delivery limit are dead-lettered. */
static void
give_back(bqueue_t *q, blist_t *l, bool count)
{
    blist_t dead = {0};
    pthread_mutex_lock(&q->lock);
    bentry_t *e;
    while ((e = l->tail)) {
        lepi_blist_remove(l, e);
        if (count)
            e->delivery_count++;
        if (q->policy.max_delivery_count && e->delivery_count >= q->policy.max_delivery_count)
            lepi_blist_push_back(&dead, e);
        else
            lepi_queue_requeue_locked(q, e);
    }
    pthread_mutex_unlock(&q->lock);
    while ((e = lepi_blist_pop(&dead))) {
        e->owner = NULL;
        lepi_queue_dead_letter(q, e, "delivered too many times");
    }
    lepi_queue_dispatch(q);
}

/* A consumer that grants much credit and reads slowly (or not at all)
 * would have every message it has credit for copied into its connection:
 * framed in the output buffer, or waiting in the engine for the peer's
 * session window.  The broker stops handing it messages while that much
 * waits, and leaves them on the queue (in its outbox, shared) instead. */
#define OUTPUT_HIGH ((size_t)1 << 20)   /* bytes framed for the socket */
#define QUEUED_HIGH 256u                /* deliveries waiting for window */
#define OUTPUT_RETRY_MS 2       /* doubled up to the max while nothing goes out */
#define OUTPUT_RETRY_MAX_MS 128

/* True when c's connection holds enough not yet sent; buffered: the
 * output's bytes, counted up by the caller as it sends. */
static bool
backed_up(bconsumer_t *c, size_t buffered, size_t next_len)
{
    if (buffered >= OUTPUT_HIGH)
        return true;
    lep_link_t *l = lep_sender_link(c->snd);
    uint32_t queued = l ? lep_link_queued(l) : 0;
    return queued >= QUEUED_HIGH || (queued && (size_t)queued * next_len >= OUTPUT_HIGH);
}

/* Connection context (a timer): the output may have drained. */
static void
output_retry(void *ctx)
{
    /* A connection's timers never run after its final event (they are
     * dropped), so bc is still the connection's. */
    bconn_t *bc = ctx;
    bc->throttled = false;
    for (bconsumer_t *c = bc->consumers; c; c = c->cnext)
        lepi_consumer_flush(c);
}

static void
throttle(bconn_t *bc)
{
    if (bc->throttled)
        return;
    /* a peer that stopped reading altogether costs a wake-up every
     * 128 ms, not every 2 */
    if (bc->sent != bc->sent_at_throttle || !bc->retry_ms)
        bc->retry_ms = OUTPUT_RETRY_MS;
    else if (bc->retry_ms < OUTPUT_RETRY_MAX_MS)
        bc->retry_ms *= 2;
    bc->sent_at_throttle = bc->sent;
    if (lep_connection_schedule(bc->conn, bc->retry_ms, output_retry, bc) == 0)
        bc->throttled = true;
}

/* Over the output limit: what is left of todo goes back to the front of
 * the outbox, and a retry is scheduled. */
static void
output_full(bconsumer_t *c, blist_t *todo)
{
    bqueue_t *q = c->q;
    pthread_mutex_lock(&q->lock);
    if (c->outbox.head) {
        todo->tail->next = c->outbox.head;
        c->outbox.head->prev = todo->tail;
    } else {
        c->outbox.tail = todo->tail;
    }
    c->outbox.head = todo->head;
    c->outbox.n += todo->n;
    pthread_mutex_unlock(&q->lock);
    *todo = (blist_t){0};
    throttle(c->bc);
}

void
lepi_consumer_flush(bconsumer_t *c)
{
    if (c->detached)
        return;
    bqueue_t *q = c->q;
    bconn_t *bc = c->bc;
    lep_conn_t *eng = lep_connection_engine(bc->conn);
    size_t buffered = eng ? lep_conn_output_buffered(eng) : 0;
    blist_t todo;
    pthread_mutex_lock(&q->lock);
    todo = c->outbox;
    c->outbox = (blist_t){0};
    pthread_mutex_unlock(&q->lock);
    bentry_t *e;
    while ((e = todo.head)) {
        if (backed_up(c, buffered, e->msg->len)) {
            output_full(c, &todo);
            return;
        }
        lep_bytes_t bytes = lepi_bmsg_bytes(e->msg, e->delivery_count, bc->scratch, &bc->buf);
        lep_delivery_t *d;
        int rc = lep_sender_send_encoded(c->snd, bytes.ptr, bytes.len, &d);
        if (rc) {
            /* no credit after all (the link is going): back they go */
            if (c->browse) {
                while ((e = lepi_blist_pop(&todo)))
                    lepi_bmsg_unref(e->msg), lep_free(e);
            } else {
                give_back(q, &todo, false);
            }
            return;
        }
        buffered += bytes.len;
        bc->sent++;
        lepi_blist_remove(&todo, e);
        atomic_fetch_add_explicit(&bc->b->messages_out, 1, memory_order_relaxed);
        if (d) {
            lep_delivery_set_context(d, e);
            lepi_blist_push_back(&c->inflight, e);
        } else if (c->browse) {
            lepi_bmsg_unref(e->msg);
            lep_free(e);
        } else {
            lepi_queue_ack(q, e); /* at-most-once: done once sent */
        }
    }
}

void
lepi_consumer_outcome(bconsumer_t *c, lep_delivery_t *d, lep_outcome_type_t t,
                      const lep_outcome_t *o)
{
    bentry_t *e = lep_delivery_context(d);
    if (!e)
        return;
    lep_delivery_set_context(d, NULL);
    lepi_blist_remove(&c->inflight, e);
    bqueue_t *q = c->q;
    if (c->browse) {
        lepi_bmsg_unref(e->msg);
        lep_free(e);
        return;
    }
    blist_t one = {0};
    switch (t) {
    case LEP_OUTCOME_REJECTED:
        e->owner = NULL;
        lepi_queue_dead_letter(q, e, "rejected");
        return;
    case LEP_OUTCOME_RELEASED:
        lepi_blist_push_back(&one, e);
        give_back(q, &one, false);
        return;
    case LEP_OUTCOME_MODIFIED:
        lepi_blist_push_back(&one, e);
        give_back(q, &one, o && o->delivery_failed);
        return;
    default: /* accepted, or settled with no outcome */
        lepi_queue_ack(q, e);
        return;
    }
}

void
lepi_consumer_close(bconsumer_t *c)
{
    bqueue_t *q = c->q;
    bconn_t *bc = c->bc;
    blist_t outbox;
    pthread_mutex_lock(&q->lock);
    c->detached = true;
    c->credit = 0; /* the groups it holds until its messages are back get no more */
    if (c->browse) {
        for (bconsumer_t **pp = &q->browsers; *pp; pp = &(*pp)->bnext)
            if (*pp == c) {
                *pp = c->bnext;
                break;
            }
    } else {
        for (size_t i = 0; i < q->nconsumers; i++)
            if (q->consumers[i] == c) {
                memmove(&q->consumers[i], &q->consumers[i + 1],
                        (q->nconsumers - i - 1) * sizeof *q->consumers);
                q->nconsumers--;
                break;
            }
    }
    outbox = c->outbox;
    c->outbox = (blist_t){0};
    pthread_mutex_unlock(&q->lock);
    pthread_mutex_lock(&bc->lock);
    for (bconsumer_t **pp = &bc->wake; *pp; pp = &(*pp)->wnext)
        if (*pp == c) {
            *pp = c->wnext;
            break;
        }
    pthread_mutex_unlock(&bc->lock);
    for (bconsumer_t **pp = &bc->consumers; *pp; pp = &(*pp)->cnext)
        if (*pp == c) {
            *pp = c->cnext;
            break;
        }
    if (c->browse) {
        bentry_t *e;
        while ((e = lepi_blist_pop(&outbox)))
            lepi_bmsg_unref(e->msg), lep_free(e);
        while ((e = lepi_blist_pop(&c->inflight)))
            lepi_bmsg_unref(e->msg), lep_free(e);
    } else {
        /* Sent and not settled: they may have been processed, so they
         * count as a delivery (3.2.1); not sent yet: they do not. */
        give_back(q, &outbox, false);
        give_back(q, &c->inflight, true);
    }
    lep_sender_set_context(c->snd, NULL);
    lep_free(c);
}
