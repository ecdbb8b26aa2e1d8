/* The address table: names to queues, prefixes, auto-creation, dynamic
 * (temporary) queues, and topics with their subscriptions. */
#include "broker/broker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct bnode {
    struct bnode *next;
    bqueue_t *q;
    uint64_t hash;
} bnode_t;

static uint64_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool
has_prefix(const char *s, const char *prefix)
{
    return prefix && *prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Table lock held (read or write). */
static bqueue_t *
find_locked(broker_t *b, const char *name)
{
    if (!b->nbuckets)
        return NULL;
    uint64_t h = hash_str(name);
    for (bnode_t *n = b->nodes[h & (b->nbuckets - 1)].next; n; n = n->next)
        if (n->hash == h && strcmp(n->q->name, name) == 0)
            return n->q;
    return NULL;
}

/* Write lock held.  The table's reference is the caller's. */
static int
insert_locked(broker_t *b, bqueue_t *q)
{
    if (b->nnodes + 1 > b->nbuckets * 3 / 4) {
        size_t nb = b->nbuckets ? b->nbuckets * 2 : 64;
        bnode_t *buckets = lep_calloc(nb, sizeof *buckets);
        if (!buckets)
            return LEP_ERR_NOMEM;
        for (size_t i = 0; i < b->nbuckets; i++) {
            bnode_t *n = b->nodes[i].next;
            while (n) {
                bnode_t *next = n->next;
                n->next = buckets[n->hash & (nb - 1)].next;
                buckets[n->hash & (nb - 1)].next = n;
                n = next;
            }
        }
        lep_free(b->nodes);
        b->nodes = buckets;
        b->nbuckets = nb;
    }
    bnode_t *n = lep_malloc(sizeof *n);
    if (!n)
        return LEP_ERR_NOMEM;
    n->q = q;
    n->hash = hash_str(q->name);
    bnode_t *head = &b->nodes[n->hash & (b->nbuckets - 1)];
    n->next = head->next;
    head->next = n;
    b->nnodes++;
    return 0;
}

baddr_kind_t
lepi_address_kind(broker_t *b, const char *address)
{
    if (strcmp(address, "$management") == 0)
        return BA_MANAGEMENT;
    if (has_prefix(address, b->cfg.topic_prefix))
        return BA_TOPIC;
    if (has_prefix(address, b->cfg.queue_prefix))
        return BA_QUEUE;
    pthread_rwlock_rdlock(&b->table_lock);
    bool known = find_locked(b, address) != NULL;
    pthread_rwlock_unlock(&b->table_lock);
    return known || b->cfg.auto_create ? BA_QUEUE : BA_NONE;
}

/* The properties a durable queue is recorded with: its kind and, for a
 * subscription, its pattern. */
static int
store_queue(broker_t *b, bqueue_t *q)
{
    if (!b->store || !q->policy.durable)
        return 0;
    q->id = atomic_fetch_add(&b->next_queue_id, 1);
    char props[512];
    int n = snprintf(props, sizeof props, "%c%s", (char)('0' + q->kind), q->pattern ? q->pattern : "");
    return lepi_store_queue_create(b->store, q->id, q->name, props, (size_t)n, NULL, NULL);
}

/* A queue made on demand: policy from the configured queues or the
 * defaults. */
static const lep_queue_policy_t *
policy_for(broker_t *b, const char *name)
{
    for (size_t i = 0; i < b->cfg.nqueues; i++)
        if (strcmp(b->cfg.queues[i].name, name) == 0)
            return &b->cfg.queues[i].policy;
    return &b->cfg.queue_defaults;
}

bqueue_t *
lepi_address_queue(broker_t *b, const char *address, int create, int *err)
{
    *err = 0;
    pthread_rwlock_rdlock(&b->table_lock);
    bqueue_t *q = find_locked(b, address);
    if (q)
        lepi_queue_ref(q);
    pthread_rwlock_unlock(&b->table_lock);
    if (q)
        return q;
    bool ordinary = !has_prefix(address, b->cfg.topic_prefix) && strcmp(address, "$management") != 0;
    bool may = (create == LEPI_CREATE_ALWAYS && ordinary) ||
               (create == LEPI_CREATE && (has_prefix(address, b->cfg.queue_prefix) ||
                                          (b->cfg.auto_create && ordinary)));
    if (!may) {
        *err = LEP_ERR_NOT_FOUND;
        return NULL;
    }
    pthread_rwlock_wrlock(&b->table_lock);
    q = find_locked(b, address);
    if (!q) {
        if (lepi_queue_new(b, address, BQ_QUEUE, policy_for(b, address), &q) != 0) {
            pthread_rwlock_unlock(&b->table_lock);
            *err = LEP_ERR_NOMEM;
            return NULL;
        }
        if (insert_locked(b, q) != 0) {
            pthread_rwlock_unlock(&b->table_lock);
            lepi_queue_unref(q);
            *err = LEP_ERR_NOMEM;
            return NULL;
        }
        store_queue(b, q);
        lepi_log(b, LEPI_LOG_INFO, "queue %s created", address);
    }
    lepi_queue_ref(q);
    pthread_rwlock_unlock(&b->table_lock);
    return q;
}

/* Recovery and configured queues: made with a given kind and id. */
bqueue_t *
lepi_address_add(broker_t *b, const char *name, bqueue_kind_t kind, uint64_t id,
                 const char *pattern)
{
    bqueue_t *q;
    const lep_queue_policy_t *pol = kind == BQ_SUBSCRIPTION ? &b->cfg.subscription_defaults
                                                            : policy_for(b, name);
    if (lepi_queue_new(b, name, kind, pol, &q) != 0)
        return NULL;
    q->id = id;
    if (pattern && !(q->pattern = lepi_strdup(pattern))) {
        lepi_queue_unref(q);
        return NULL;
    }
    pthread_rwlock_wrlock(&b->table_lock);
    int rc = 0;
    if (kind == BQ_SUBSCRIPTION) {
        q->durable_sub = true;
        if (b->nsubs == b->capsubs) {
            size_t nc = b->capsubs ? b->capsubs * 2 : 16;
            bqueue_t **ns = lep_realloc(b->subs, nc * sizeof *ns);
            if (!ns)
                rc = LEP_ERR_NOMEM;
            else {
                b->subs = ns;
                b->capsubs = nc;
            }
        }
        if (!rc)
            b->subs[b->nsubs++] = q;
    } else if (find_locked(b, name)) {
        rc = LEP_ERR_STATE;
    } else {
        rc = insert_locked(b, q);
    }
    pthread_rwlock_unlock(&b->table_lock);
    if (rc) {
        lepi_queue_unref(q);
        return NULL;
    }
    if (!id)
        store_queue(b, q);
    return q; /* the table's reference; borrowed by the caller */
}

bqueue_t *
lepi_address_temporary(broker_t *b, bool exclusive)
{
    char name[96];
    /* not to be guessed: a temporary address is where replies go */
    uint8_t r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)lepi_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)b;
        memcpy(r, &x, sizeof r);
    }
    snprintf(name, sizeof name, "temp.%02x%02x%02x%02x%02x%02x.%llu", r[0], r[1], r[2], r[3],
             r[4], r[5], (unsigned long long)atomic_fetch_add(&b->next_temp, 1));
    lep_queue_policy_t pol = b->cfg.queue_defaults;
    pol.durable = false;
    pol.dead_letter_address = "";
    bqueue_t *q;
    if (lepi_queue_new(b, name, BQ_TEMPORARY, &pol, &q) != 0)
        return NULL;
    q->exclusive = exclusive;
    pthread_rwlock_wrlock(&b->table_lock);
    int rc = insert_locked(b, q);
    if (!rc)
        lepi_queue_ref(q);
    pthread_rwlock_unlock(&b->table_lock);
    if (rc) {
        lepi_queue_unref(q);
        return NULL;
    }
    return q;
}

void
lepi_address_remove(broker_t *b, bqueue_t *q)
{
    bool found = false;
    pthread_rwlock_wrlock(&b->table_lock);
    if (b->nbuckets) {
        uint64_t h = hash_str(q->name);
        for (bnode_t *prev = &b->nodes[h & (b->nbuckets - 1)]; prev->next; prev = prev->next)
            if (prev->next->q == q) {
                bnode_t *n = prev->next;
                prev->next = n->next;
                lep_free(n);
                b->nnodes--;
                found = true;
                break;
            }
    }
    pthread_rwlock_unlock(&b->table_lock);
    if (!found)
        return;
    pthread_mutex_lock(&q->lock);
    q->deleted = true;
    pthread_mutex_unlock(&q->lock);
    lepi_queue_purge(q);
    if (q->id && b->store)
        lepi_store_queue_delete(b->store, q->id, NULL, NULL);
    lepi_log(b, LEPI_LOG_INFO, "queue %s deleted", q->name);
    lepi_queue_unref(q);
}

/* ------------------------------------------------------------------ */
/* Topics                                                              */

typedef struct word {
    const char *p;
    size_t n;
} word_t;

enum { MAX_WORDS = 128 };

static size_t
split_words(const char *s, word_t *w)
{
    size_t n = 0;
    for (;;) {
        const char *e = strchr(s, '.');
        if (n == MAX_WORDS)
            return MAX_WORDS + 1;
        w[n].p = s;
        w[n].n = e ? (size_t)(e - s) : strlen(s);
        n++;
        if (!e)
            return n;
        s = e + 1;
    }
}

static bool
match_from(const word_t *pw, size_t np, const word_t *tw, size_t nt)
{
    if (!np)
        return nt == 0;
    if (pw->n == 1 && pw->p[0] == '#') /* zero or more words */
        return match_from(pw + 1, np - 1, tw, nt) || (nt && match_from(pw, np, tw + 1, nt - 1));
    if (!nt)
        return false;
    if (!(pw->n == 1 && pw->p[0] == '*') && (pw->n != tw->n || memcmp(pw->p, tw->p, pw->n)))
        return false;
    return match_from(pw + 1, np - 1, tw + 1, nt - 1);
}

bool
lepi_topic_match(const char *pattern, const char *topic)
{
    word_t pw[MAX_WORDS + 1], tw[MAX_WORDS + 1];
    size_t np = split_words(pattern, pw), nt = split_words(topic, tw);
    if (np > MAX_WORDS || nt > MAX_WORDS)
        return strcmp(pattern, topic) == 0;
    /* runs of '#' match like one: keeps the search linear in practice */
    size_t k = 0;
    for (size_t i = 0; i < np; i++)
        if (!(k && pw[k - 1].n == 1 && pw[k - 1].p[0] == '#' && pw[i].n == 1 && pw[i].p[0] == '#'))
            pw[k++] = pw[i];
    return match_from(pw, k, tw, nt);
}

bqueue_t *
lepi_topic_subscribe(broker_t *b, const char *pattern, const char *durable_name, int *err)
{
    *err = 0;
    if (durable_name) {
        pthread_rwlock_wrlock(&b->table_lock);
        for (size_t i = 0; i < b->nsubs; i++) {
            bqueue_t *s = b->subs[i];
            if (s->durable_sub && strcmp(s->name, durable_name) == 0) {
                if (s->attached) {
                    pthread_rwlock_unlock(&b->table_lock);
                    *err = LEP_ERR_STATE; /* one subscriber at a time */
                    return NULL;
                }
                if (strcmp(s->pattern, pattern) != 0) {
                    /* the subscriber changed its pattern: a new
                     * subscription replaces the old */
                    break;
                }
                s->attached = true;
                lepi_queue_ref(s);
                pthread_rwlock_unlock(&b->table_lock);
                return s;
            }
        }
        pthread_rwlock_unlock(&b->table_lock);
    }
    char name[300];
    if (durable_name)
        snprintf(name, sizeof name, "%s", durable_name);
    else
        snprintf(name, sizeof name, "sub.%llu",
                 (unsigned long long)atomic_fetch_add(&b->next_temp, 1));
    lep_queue_policy_t pol = b->cfg.subscription_defaults;
    pol.durable = pol.durable && durable_name != NULL;
    bqueue_t *s;
    if (lepi_queue_new(b, name, BQ_SUBSCRIPTION, &pol, &s) != 0 ||
        !(s->pattern = lepi_strdup(pattern))) {
        *err = LEP_ERR_NOMEM;
        return NULL;
    }
    s->durable_sub = durable_name != NULL;
    s->attached = true;
    pthread_rwlock_wrlock(&b->table_lock);
    /* a durable subscription of the same name with another pattern goes */
    bqueue_t *old = NULL;
    for (size_t i = 0; durable_name && i < b->nsubs; i++)
        if (b->subs[i]->durable_sub && strcmp(b->subs[i]->name, durable_name) == 0) {
            old = b->subs[i];
            b->subs[i] = b->subs[--b->nsubs];
            break;
        }
    if (b->nsubs == b->capsubs) {
        size_t nc = b->capsubs ? b->capsubs * 2 : 16;
        bqueue_t **ns = lep_realloc(b->subs, nc * sizeof *ns);
        if (!ns) {
            pthread_rwlock_unlock(&b->table_lock);
            lepi_queue_unref(s);
            *err = LEP_ERR_NOMEM;
            return NULL;
        }
        b->subs = ns;
        b->capsubs = nc;
    }
    b->subs[b->nsubs++] = s;
    lepi_queue_ref(s); /* the caller's */
    pthread_rwlock_unlock(&b->table_lock);
    if (old) {
        lepi_queue_purge(old);
        if (old->id && b->store)
            lepi_store_queue_delete(b->store, old->id, NULL, NULL);
        lepi_queue_unref(old);
    }
    store_queue(b, s);
    return s;
}

void
lepi_topic_unsubscribe(broker_t *b, bqueue_t *sub, bool keep_durable)
{
    pthread_rwlock_wrlock(&b->table_lock);
    if (sub->durable_sub && keep_durable) {
        sub->attached = false;
        pthread_rwlock_unlock(&b->table_lock);
        return;
    }
    bool found = false;
    for (size_t i = 0; i < b->nsubs; i++)
        if (b->subs[i] == sub) {
            b->subs[i] = b->subs[--b->nsubs];
            found = true;
            break;
        }
    pthread_rwlock_unlock(&b->table_lock);
    if (!found)
        return;
    pthread_mutex_lock(&sub->lock);
    sub->deleted = true;
    pthread_mutex_unlock(&sub->lock);
    lepi_queue_purge(sub);
    if (sub->id && b->store)
        lepi_store_queue_delete(b->store, sub->id, NULL, NULL);
    lepi_queue_unref(sub); /* the table's */
}

int
lepi_topic_publish(broker_t *b, const char *topic, bmsg_t *msg, lepi_store_done_fn done,
                   void *ctx, bool *pending)
{
    *pending = false;
    bqueue_t *small[16], **hit = small;
    size_t n = 0, cap = 16;
    pthread_rwlock_rdlock(&b->table_lock);
    for (size_t i = 0; i < b->nsubs; i++) {
        if (!lepi_topic_match(b->subs[i]->pattern, topic))
            continue;
        if (n == cap) {
            size_t nc = cap * 2;
            bqueue_t **nh = lep_malloc(nc * sizeof *nh);
            if (!nh)
                break;
            memcpy(nh, hit, n * sizeof *nh);
            if (hit != small)
                lep_free(hit);
            hit = nh;
            cap = nc;
        }
        lepi_queue_ref(b->subs[i]);
        hit[n++] = b->subs[i];
    }
    pthread_rwlock_unlock(&b->table_lock);
    /* Durable messages for durable subscriptions: journalled once for all
     * of them, before any consumer can take and ack one. */
    uint64_t ids_small[16], *ids = ids_small;
    size_t nids = 0;
    if (msg->durable && b->store && n) {
        if (n > 16 && !(ids = lep_malloc(n * sizeof *ids)))
            ids = ids_small, n = n > 16 ? 16 : n;
        for (size_t i = 0; i < n; i++)
            if (hit[i]->id)
                ids[nids++] = hit[i]->id;
        if (nids) {
            if (!msg->id)
                msg->id = atomic_fetch_add(&b->next_msg_id, 1);
            lep_bytes_t stored = lepi_bmsg_stored(msg);
            if (lepi_store_enqueue(b->store, msg->id, stored.ptr, stored.len, ids, nids, done, ctx) == 0)
                *pending = done != NULL;
            else
                nids = 0;
        }
    }
    int taken = 0;
    for (size_t i = 0; i < n; i++) {
        if (lepi_queue_put(hit[i], msg, nids && hit[i]->id) == 0)
            taken++;
        lepi_queue_unref(hit[i]);
    }
    if (ids != ids_small)
        lep_free(ids);
    if (hit != small)
        lep_free(hit);
    return taken;
}

void
lepi_address_each(broker_t *b, void (*fn)(void *ctx, bqueue_t *q), void *ctx)
{
    /* A snapshot, so fn runs without the table lock (it may look up or
     * create addresses: dead-lettering does). */
    pthread_rwlock_rdlock(&b->table_lock);
    size_t n = b->nnodes + b->nsubs, k = 0;
    bqueue_t **all = n ? lep_malloc(n * sizeof *all) : NULL;
    if (all) {
        for (size_t i = 0; i < b->nbuckets; i++)
            for (bnode_t *nd = b->nodes[i].next; nd; nd = nd->next)
                lepi_queue_ref(all[k++] = nd->q);
        for (size_t i = 0; i < b->nsubs; i++)
            lepi_queue_ref(all[k++] = b->subs[i]);
    }
    pthread_rwlock_unlock(&b->table_lock);
    for (size_t i = 0; i < k; i++) {
        fn(ctx, all[i]);
        lepi_queue_unref(all[i]);
    }
    lep_free(all);
}

/* Frees the table (broker teardown). */
void
lepi_address_free_all(broker_t *b)
{
    for (size_t i = 0; i < b->nbuckets; i++) {
        bnode_t *n = b->nodes[i].next;
        while (n) {
            bnode_t *next = n->next;
            lepi_queue_unref(n->q);
            lep_free(n);
            n = next;
        }
    }
    lep_free(b->nodes);
    b->nodes = NULL;
    b->nbuckets = b->nnodes = 0;
    for (size_t i = 0; i < b->nsubs; i++)
        lepi_queue_unref(b->subs[i]);
    lep_free(b->subs);
    b->subs = NULL;
    b->nsubs = b->capsubs = 0;
}
