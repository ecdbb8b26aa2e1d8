/* Queues: priority lanes of entries, competing consumers served
 * round-robin as their credit allows, browsers, limits, dead-lettering. */
#include "broker/broker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Entry lists                                                          */


void
lepi_blist_push_back(blist_t *l, bentry_t *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

void
lepi_blist_push_front(blist_t *l, bentry_t *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->n++;
}

void
lepi_blist_remove(blist_t *l, bentry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

bentry_t *
lepi_blist_pop(blist_t *l)
{
    bentry_t *e = l->head;
    if (e)
        lepi_blist_remove(l, e);
    return e;
}

/* ------------------------------------------------------------------ */
/* Message groups                                                       */

/* Messages with the same group-id go to one consumer at a time, in
 * order: a group belongs to the consumer that has messages of it not yet
 * settled, and is free again once it has none (then its next message
 * goes to whichever consumer's turn it is).  The table holds only the
 * groups held, so it is bounded by the messages in flight. */
/* Messages waiting for their group's consumer that a dispatch walks past
 * at most, looking for others to send: those further behind wait too. */
#define LEPI_GROUP_SKIP_MAX 1024

struct bgroup {
    uint32_t hash;    /* 0: a free slot */
    uint32_t held;    /* messages of the group in its owner's outbox or in flight */
    bconsumer_t *owner;
};

static struct bgroup *
group_find(bqueue_t *q, uint32_t hash)
{
    if (!q->ngroups)
        return NULL;
    size_t mask = q->capgroups - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        if (q->groups[i].hash == hash)
            return &q->groups[i];
        if (!q->groups[i].hash)
            return NULL;
    }
}

static struct bgroup *
group_slot(struct bgroup *t, size_t cap, uint32_t hash)
{
    size_t i = hash & (cap - 1);
    while (t[i].hash && t[i].hash != hash)
        i = (i + 1) & (cap - 1);
    return &t[i];
}

/* The group's entry, made free (held 0) if it has none; NULL: no memory. */
static struct bgroup *
group_add(bqueue_t *q, uint32_t hash)
{
    struct bgroup *g = group_find(q, hash);
    if (g)
        return g;
    if ((q->ngroups + 1) * 2 > q->capgroups) {
        size_t cap = q->capgroups ? q->capgroups * 2 : 16;
        struct bgroup *t = lep_calloc(cap, sizeof *t);
        if (!t)
            return NULL;
        for (size_t i = 0; i < q->capgroups; i++)
            if (q->groups[i].hash)
                *group_slot(t, cap, q->groups[i].hash) = q->groups[i];
        lep_free(q->groups);
        q->groups = t;
        q->capgroups = cap;
    }
    g = group_slot(q->groups, q->capgroups, hash);
    *g = (struct bgroup){.hash = hash};
    q->ngroups++;
    return g;
}

/* Removes g, moving back the entries of its probe run that follow. */
static void
group_remove(bqueue_t *q, struct bgroup *g)
{
    size_t mask = q->capgroups - 1;
    size_t hole = (size_t)(g - q->groups);
    g->hash = 0;
    q->ngroups--;
    for (size_t i = (hole + 1) & mask; q->groups[i].hash; i = (i + 1) & mask) {
        size_t home = q->groups[i].hash & mask;
        /* moves back unless its home lies cyclically in (hole, i] */
        if (hole <= i ? (home <= hole || home > i) : (home <= hole && home > i)) {
            q->groups[hole] = q->groups[i];
            q->groups[i].hash = 0;
            hole = i;
        }
    }
}

/* Under lock: e leaves its consumer (settled, given back or dead).  True
 * when that freed its group. */
static bool
group_release_locked(bqueue_t *q, bentry_t *e)
{
    if (!e->grouped)
        return false;
    e->grouped = false;
    struct bgroup *g = group_find(q, e->msg->group);
    if (!g || --g->held)
        return false;
    group_remove(q, g);
    return true;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

static int
copy_policy(lep_queue_policy_t *dst, const lep_queue_policy_t *src)
{
    *dst = *src;
    dst->dead_letter_address = NULL;
    if (src->dead_letter_address && !(dst->dead_letter_address = lepi_strdup(src->dead_letter_address)))
        return LEP_ERR_NOMEM;
    return 0;
}


int
lepi_queue_new(broker_t *b, const char *name, bqueue_kind_t kind,
               const lep_queue_policy_t *policy, bqueue_t **out)
{
    bqueue_t *q = lep_calloc(1, sizeof *q);
    if (!q)
        return LEP_ERR_NOMEM;
    q->b = b;
    q->kind = kind;
    atomic_init(&q->refs, 1);
    if (!(q->name = lepi_strdup(name)) || copy_policy(&q->policy, policy) != 0) {
        lep_free(q->name);
        lep_free(q);
        return LEP_ERR_NOMEM;
    }
    pthread_mutex_init(&q->lock, NULL);
    *out = q;
    return 0;
}

void
lepi_queue_ref(bqueue_t *q)
{
    atomic_fetch_add(&q->refs, 1);
}

/* An entry for msg: the one allocated with it if no queue took it yet. */
static bentry_t *
entry_alloc(bmsg_t *msg)
{
    if (!atomic_flag_test_and_set_explicit(&msg->entry_taken, memory_order_relaxed))
        return &msg->entry;
    return lep_malloc(sizeof(bentry_t));
}

/* An entry from entry_alloc that was not used after all. */
static void
entry_unused(bentry_t *e, bmsg_t *msg)
{
    if (e == &msg->entry)
        atomic_flag_clear_explicit(&msg->entry_taken, memory_order_relaxed);
    else
        lep_free(e);
}

static void
entry_free(bentry_t *e)
{
    bmsg_t *msg = e->msg;
    if (e != &msg->entry)
        lep_free(e);
    lepi_bmsg_unref(msg); /* may free e too, with msg */
}

void
lepi_queue_unref(bqueue_t *q)
{
    if (!q || atomic_fetch_sub(&q->refs, 1) != 1)
        return;
    for (int i = 0; i < LEPI_PRIORITIES; i++) {
        bentry_t *e;
        while ((e = lepi_blist_pop(&q->lanes[i])))
            entry_free(e);
    }
    pthread_mutex_destroy(&q->lock);
    lep_free(q->groups);
    lep_free(q->consumers);
    lep_free(q->policy.dead_letter_address);
    lep_free(q->pattern);
    lep_free(q->name);
    lep_free(q);
}

/* ------------------------------------------------------------------ */
/* Room and producers                                                   */


size_t
lepi_queue_room_locked(bqueue_t *q)
{
    size_t r = SIZE_MAX;
    if (q->policy.max_depth)
        r = q->depth < q->policy.max_depth ? (size_t)(q->policy.max_depth - q->depth) : 0;
    if (q->policy.max_bytes && q->bytes >= q->policy.max_bytes)
        r = 0;
    return r;
}

size_t
lepi_queue_room(bqueue_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t r = lepi_queue_room_locked(q);
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* Under lock: producers blocked on a full queue get their turn again. */
static void
unblock_locked(bqueue_t *q)
{
    if (!q->blocked || lepi_queue_room_locked(q) == 0)
        return;
    /* Wait for some room (a tenth of the limit) before waking everyone:
     * a queue at its limit would otherwise wake producers per message. */
    if (q->policy.max_depth && lepi_queue_room_locked(q) < (q->policy.max_depth + 9) / 10)
        return;
    while (q->blocked) {
        bproducer_t *p = q->blocked;
        q->blocked = p->blnext;
        p->blnext = NULL;
        p->blocked = false;
        bconn_t *bc = p->bc;
        pthread_mutex_lock(&bc->lock);
        if (!p->in_wake) {
            p->in_wake = true;
            p->wnext = bc->unblock;
            bc->unblock = p;
        }
        pthread_mutex_unlock(&bc->lock);
        lepi_bconn_wake(bc);
    }
}

/* An entry leaves the queue for good (acked, dead-lettered, dropped). */
static void
entry_gone(bqueue_t *q, bentry_t *e, uint64_t *counter)
{
    pthread_mutex_lock(&q->lock);
    q->depth--;
    q->bytes -= e->msg->len;
    if (counter)
        (*counter)++;
    if (e->msg->group) {
        q->grouped--;
        /* its group's waiting messages may go to another consumer now */
        if (group_release_locked(q, e))
            lepi_queue_dispatch_locked(q);
    }
    unblock_locked(q);
    pthread_mutex_unlock(&q->lock);
    if (e->durable && q->b->store)
        lepi_store_ack(q->b->store, q->id, e->msg->id, NULL, NULL);
    entry_free(e);
}

void
lepi_queue_ack(bqueue_t *q, bentry_t *e)
{
    entry_gone(q, e, &q->acked);
}

/* ------------------------------------------------------------------ */
/* Dead letters                                                         */

void
lepi_queue_dead_letter(bqueue_t *q, bentry_t *e, const char *reason)
{
    broker_t *b = q->b;
    const char *dla = q->policy.dead_letter_address ? q->policy.dead_letter_address
                                                    : b->cfg.dead_letter_address;
    /* A dead letter is a copy that does not expire again (it would only
     * be dropped from the dead-letter queue). */
    bmsg_t *msg = lepi_bmsg_clone(e->msg);
    if (msg && msg->expires) {
        msg->expires = 0;
        msg->never_expires = true; /* after a restart too */
    }
    lepi_log(b, LEPI_LOG_DEBUG, "queue %s: message %s, to %s", q->name, reason,
             dla && *dla ? dla : "(dropped)");
    /* Onto the dead-letter queue first, off this one second: the journal
     * keeps that order, so a crash in between leaves it on both (a
     * duplicate), never on neither. */
    if (msg && dla && *dla && strcmp(dla, q->name) != 0) {
        int err;
        bqueue_t *dlq = lepi_address_queue(b, dla, true, &err);
        if (dlq) {
            bool stored = false;
            if (msg->durable && dlq->id && b->store) {
                msg->id = atomic_fetch_add(&b->next_msg_id, 1);
                lep_bytes_t bytes = lepi_bmsg_stored(msg);
                stored = lepi_store_enqueue(b->store, msg->id, bytes.ptr, bytes.len, &dlq->id, 1,
                                            NULL, NULL) == 0;
            }
            lepi_queue_put(dlq, msg, stored);
            lepi_queue_unref(dlq);
        }
    }
    entry_gone(q, e, &q->dead_lettered);
    lepi_bmsg_unref(msg);
}

/* ------------------------------------------------------------------ */
/* Putting and dispatching                                              */

static bentry_t *
pop_highest(bqueue_t *q)
{
    for (int i = LEPI_PRIORITIES - 1; i >= 0; i--)
        if (q->lanes[i].head)
            return lepi_blist_pop(&q->lanes[i]);
    return NULL;
}

static bool
has_messages(const bqueue_t *q)
{
    for (int i = 0; i < LEPI_PRIORITIES; i++)
        if (q->lanes[i].head)
            return true;
    return false;
}

static bconsumer_t *
next_consumer(bqueue_t *q)
{
    for (size_t k = 0; k < q->nconsumers; k++) {
        size_t i = (q->rr + k) % q->nconsumers;
        if (q->consumers[i]->credit > 0) {
            q->rr = i + 1;
            return q->consumers[i];
        }
    }
    return NULL;
}

/* Under q->lock: c has work in its outbox. */
static void
wake_consumer_locked(bconsumer_t *c)
{
    bconn_t *bc = c->bc;
    pthread_mutex_lock(&bc->lock);
    if (!c->in_wake) {
        c->in_wake = true;
        c->wnext = bc->wake;
        bc->wake = c;
    }
    pthread_mutex_unlock(&bc->lock);
    lepi_bconn_wake(bc);
}

/* Browsers see copies in arrival order, without taking anything. */
static void
feed_browsers_locked(bqueue_t *q)
{
    for (bconsumer_t *c = q->browsers; c; c = c->bnext) {
        bool fed = false;
        while (c->credit > 0) {
            bentry_t *best = NULL;
            for (int i = 0; i < LEPI_PRIORITIES; i++)
                for (bentry_t *e = q->lanes[i].head; e; e = e->next)
                    if (e->seq >= c->browse_seq && (!best || e->seq < best->seq)) {
                        best = e;
                        break; /* lanes are in arrival order but for requeued heads */
                    }
            if (!best)
                break;
            bentry_t *copy = lep_calloc(1, sizeof *copy);
            if (!copy)
                break;
            copy->msg = best->msg;
            lepi_bmsg_ref(copy->msg);
            copy->q = q;
            copy->seq = best->seq;
            copy->owner = c;
            lepi_blist_push_back(&c->outbox, copy);
            c->browse_seq = best->seq + 1;
            c->credit--;
            fed = true;
        }
        if (fed)
            wake_consumer_locked(c);
    }
}

/* Under lock: e goes to c's outbox. */
static void
hand_over_locked(bqueue_t *q, bconsumer_t *c, bentry_t *e)
{
    e->owner = c;
    lepi_blist_push_back(&c->outbox, e);
    c->credit--;
    q->delivered++;
    if (c->outbox.n == 1)
        wake_consumer_locked(c);
}

/* True when e has expired (now as for dispatch_locked; read when needed). */
static bool
expired(const bentry_t *e, int64_t *now)
{
    if (!e->msg->expires || !*now)
        return false;
    if (*now < 0)
        *now = lepi_now_ms();
    return e->msg->expires <= *now;
}

/* Under lock, with messages of some group on the queue: each message in
 * priority and arrival order goes to its group's owner, or (in no group,
 * or a group nobody holds) to the next consumer with credit; one whose
 * owner has no credit waits, and those behind it go ahead. */
static void
dispatch_groups_locked(bqueue_t *q, blist_t *dead, int64_t now)
{
    bool credit = false;
    for (size_t k = 0; k < q->nconsumers && !credit; k++)
        credit = q->consumers[k]->credit > 0;
    if (!credit)
        return; /* nothing can go: no walk */
    size_t skipped = 0;
    for (int i = LEPI_PRIORITIES - 1; i >= 0; i--) {
        for (bentry_t *e = q->lanes[i].head, *next; e; e = next) {
            next = e->next;
            uint32_t hash = e->msg->group;
            struct bgroup *g = hash ? group_find(q, hash) : NULL;
            bconsumer_t *c = g ? g->owner : next_consumer(q);
            if (!c)
                return; /* no consumer has credit */
            if (g && c->credit <= 0) {
                /* Waiting for its group's consumer.  The walk is bounded:
                 * each put and credit would otherwise walk every message
                 * a stalled consumer's group left waiting. */
                if (++skipped >= LEPI_GROUP_SKIP_MAX)
                    return;
                continue;
            }
            lepi_blist_remove(&q->lanes[i], e);
            if (expired(e, &now)) {
                lepi_blist_push_back(dead, e);
                continue;
            }
            if (hash && (g || (g = group_add(q, hash)))) {
                g->owner = c;
                g->held++;
                e->grouped = true;
            }
            hand_over_locked(q, c, e);
        }
    }
}

/* Under lock.  Expired entries found on the way go to dead; now is the
 * time in ms, 0 to skip the expiry check, -1 to read the clock only if an
 * entry with an expiry comes by (most have none: no clock read per
 * message). */
static void
dispatch_locked(bqueue_t *q, blist_t *dead, int64_t now)
{
    if (q->browsers)
        feed_browsers_locked(q);
    if (q->grouped) {
        if (q->nconsumers)
            dispatch_groups_locked(q, dead, now);
        return;
    }
    while (q->nconsumers && has_messages(q)) {
        bconsumer_t *c = next_consumer(q);
        if (!c)
            break;
        bentry_t *e = pop_highest(q);
        if (expired(e, &now)) {
            lepi_blist_push_back(dead, e);
            continue;
        }
        hand_over_locked(q, c, e);
    }
}

static void
expire_all(bqueue_t *q, blist_t *dead)
{
    bentry_t *e;
    while ((e = lepi_blist_pop(dead))) {
        e->q = q;
        q->expired++;
        lepi_queue_dead_letter(q, e, "expired");
    }
}

/* Dispatch and deal with what expired (not locked on entry). */
void
lepi_queue_dispatch(bqueue_t *q)
{
    blist_t dead = {0};
    pthread_mutex_lock(&q->lock);
    dispatch_locked(q, &dead, -1);
    pthread_mutex_unlock(&q->lock);
    expire_all(q, &dead);
}

void
lepi_queue_dispatch_locked(bqueue_t *q)
{
    blist_t dead = {0};
    dispatch_locked(q, &dead, 0); /* no expiry check: the caller holds the lock */
}

int
lepi_queue_put(bqueue_t *q, bmsg_t *msg, bool stored)
{
    bentry_t *e = entry_alloc(msg);
    if (!e)
        return LEP_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    e->msg = msg;
    e->q = q;
    e->durable = stored;
    bentry_t *dropped = NULL;
    blist_t dead = {0};
    pthread_mutex_lock(&q->lock);
    if (q->deleted) {
        pthread_mutex_unlock(&q->lock);
        entry_unused(e, msg);
        return LEP_ERR_NOT_FOUND;
    }
    if (lepi_queue_room_locked(q) == 0) {
        if (q->policy.overflow == LEP_OVERFLOW_REJECT) {
            pthread_mutex_unlock(&q->lock);
            entry_unused(e, msg);
            return LEP_ERR_LIMIT;
        }
        if (q->policy.overflow == LEP_OVERFLOW_DROP_HEAD) {
            /* the oldest of the lowest priority makes room */
            for (int i = 0; i < LEPI_PRIORITIES && !dropped; i++)
                if (q->lanes[i].head)
                    dropped = lepi_blist_pop(&q->lanes[i]);
        }
        /* LEP_OVERFLOW_BLOCK: the producers' credit is what bounds it; a
         * message already on its way is taken. */
    }
    lepi_bmsg_ref(msg);
    e->seq = q->next_seq++;
    lepi_blist_push_back(&q->lanes[msg->priority], e);
    q->depth++;
    q->bytes += msg->len;
    q->enqueued++;
    if (msg->group)
        q->grouped++;
    dispatch_locked(q, &dead, msg->expires ? -1 : 0);
    pthread_mutex_unlock(&q->lock);
    if (dropped)
        lepi_queue_dead_letter(q, dropped, "dropped (queue full)");
    expire_all(q, &dead);
    return 0;
}

size_t
lepi_queue_purge(bqueue_t *q)
{
    blist_t all = {0};
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < LEPI_PRIORITIES; i++) {
        bentry_t *e;
        while ((e = lepi_blist_pop(&q->lanes[i])))
            lepi_blist_push_back(&all, e);
    }
    pthread_mutex_unlock(&q->lock);
    size_t n = all.n;
    bentry_t *e;
    while ((e = lepi_blist_pop(&all)))
        entry_gone(q, e, NULL);
    return n;
}

/* Puts entries back at the front of their lanes (a consumer gave them
 * back), in the order given.  Under lock. */
void
lepi_queue_requeue_locked(bqueue_t *q, bentry_t *e)
{
    e->owner = NULL;
    group_release_locked(q, e); /* the caller dispatches */
    lepi_blist_push_front(&q->lanes[e->msg->priority], e);
}

/* Takes expired messages off the lanes (a timer calls it: messages nobody
 * consumes expire too). */
void
lepi_queue_expire(bqueue_t *q, int64_t now)
{
    blist_t dead = {0};
    pthread_mutex_lock(&q->lock);
    for (int i = 0; i < LEPI_PRIORITIES; i++)
        for (bentry_t *e = q->lanes[i].head, *next; e; e = next) {
            next = e->next;
            if (e->msg->expires && e->msg->expires <= now) {
                lepi_blist_remove(&q->lanes[i], e);
                lepi_blist_push_back(&dead, e);
            }
        }
    pthread_mutex_unlock(&q->lock);
    expire_all(q, &dead);
}
