/* The journal's in-memory index: live messages and queues, segments with
 * their live bytes and tombstone dependencies. */
#include "broker/journal.h"

#include <lepton/common.h>

#include <stdlib.h>
#include <string.h>

/* ---- hash table ---- */

static inline uint64_t
mix(uint64_t k)
{
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    k ^= k >> 31;
    return k;
}

static inline uint64_t
key_of(const void *e)
{
    uint64_t k;
    memcpy(&k, e, 8);
    return k;
}

void
jr_table_init(jr_table_t *t, size_t esize)
{
    *t = (jr_table_t){.esize = esize};
}

void
jr_table_fini(jr_table_t *t)
{
    lep_free(t->slots);
    t->slots = NULL;
    t->cap = t->count = 0;
}

void *
jr_table_find(const jr_table_t *t, uint64_t key)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
        void *e = jr_table_slot(t, i);
        if (!jr_table_used(e))
            return NULL;
        if (key_of(e) == key)
            return e;
    }
}

static void *
place_in(jr_table_t *t, uint64_t key)
{
    size_t mask = t->cap - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
        void *e = jr_table_slot(t, i);
        if (!jr_table_used(e))
            return e;
    }
}

int
jr_table_reserve(jr_table_t *t, size_t n)
{
    size_t need = t->count + n;
    if (need <= t->cap - t->cap / 4 && t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 64;
    while (need > cap - cap / 4) {
        if (cap > SIZE_MAX / 2 / t->esize)
            return LEP_ERR_NOMEM;
        cap *= 2;
    }
    uint8_t *slots = lep_calloc(cap, t->esize);
    if (!slots)
        return LEP_ERR_NOMEM;
    jr_table_t nt = {.slots = slots, .cap = cap, .count = t->count, .esize = t->esize};
    for (size_t i = 0; i < t->cap; i++) {
        void *e = jr_table_slot(t, i);
        if (jr_table_used(e))
            memcpy(place_in(&nt, key_of(e)), e, t->esize);
    }
    lep_free(t->slots);
    *t = nt;
    return 0;
}

void *
jr_table_insert(jr_table_t *t, uint64_t key)
{
    void *e = place_in(t, key);
    memset(e, 0, t->esize);
    memcpy(e, &key, 8);
    t->count++;
    return e;
}

void
jr_table_remove(jr_table_t *t, void *e)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)((uint8_t *)e - t->slots) / t->esize;
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        void *f = jr_table_slot(t, j);
        if (!jr_table_used(f))
            break;
        size_t home = mix(key_of(f)) & mask;
        /* f may move back to the hole at i unless its home lies in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            memcpy(jr_table_slot(t, i), f, t->esize);
            i = j;
        }
    }
    memset(jr_table_slot(t, i), 0, t->esize);
    t->count--;
}

/* ---- a message's queues ---- */

/* Index of q in the sorted queues, or where it would go. */
static size_t
qfind(jr_msg_t *m, uint64_t q, bool *found)
{
    const uint64_t *v = jr_msg_queues(m);
    size_t lo = 0, hi = m->nq;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] < q)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->nq && v[lo] == q;
    return lo;
}

bool
jr_msg_has(jr_msg_t *m, uint64_t q)
{
    bool found;
    qfind(m, q, &found);
    return found;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void
jr_msg_sort(jr_msg_t *m)
{
    uint64_t *v = jr_msg_queues(m);
    if (m->nq < 2)
        return;
    qsort(v, m->nq, sizeof *v, cmp_u64);
    uint16_t n = 1;
    for (uint16_t i = 1; i < m->nq; i++)
        if (v[i] != v[n - 1])
            v[n++] = v[i];
    m->nq = n;
}

int
jr_msg_reserve(jr_msg_t *m, size_t n)
{
    if (n > JR_MAX_QUEUES)
        return LEP_ERR_LIMIT;
    size_t cap = m->cap ? m->cap : 1;
    if (n <= cap)
        return 0;
    size_t ncap = cap < 4 ? 4 : cap;
    while (ncap < n)
        ncap *= 2;
    if (ncap > JR_MAX_QUEUES)
        ncap = JR_MAX_QUEUES;
    uint64_t *v;
    if (m->cap) {
        v = lep_realloc(m->q.many, ncap * sizeof *v);
        if (!v)
            return LEP_ERR_NOMEM;
    } else {
        v = lep_malloc(ncap * sizeof *v);
        if (!v)
            return LEP_ERR_NOMEM;
        if (m->nq)
            v[0] = m->q.one;
    }
    m->q.many = v;
    m->cap = (uint16_t)ncap;
    return 0;
}

bool
jr_msg_remove(jr_msg_t *m, uint64_t q)
{
    bool found;
    size_t i = qfind(m, q, &found);
    if (!found)
        return false;
    uint64_t *v = jr_msg_queues(m);
    memmove(v + i, v + i + 1, (m->nq - i - 1) * sizeof *v);
    m->nq--;
    if (m->cap && m->nq <= 1) { /* back inline */
        uint64_t one = m->nq ? v[0] : 0;
        lep_free(v);
        m->cap = 0;
        m->q.one = one;
    }
    return true;
}

void
jr_msg_fini(jr_msg_t *m)
{
    if (m->cap)
        lep_free(m->q.many);
    m->cap = 0;
}

/* ---- segments ---- */

void
jr_index_init(jr_index_t *x)
{
    memset(x, 0, sizeof *x);
    jr_table_init(&x->msgs, sizeof(jr_msg_t));
    jr_table_init(&x->queues, sizeof(jr_queue_t));
}

void
jr_index_fini(jr_index_t *x)
{
    for (size_t i = 0; i < x->msgs.cap; i++) {
        jr_msg_t *m = jr_table_slot(&x->msgs, i);
        if (jr_table_used(m))
            jr_msg_fini(m);
    }
    jr_table_fini(&x->msgs);
    jr_table_fini(&x->queues);
    for (size_t i = 0; i < x->nsegs; i++)
        lep_free(x->segs[i].deps);
    lep_free(x->segs);
    x->segs = NULL;
    x->nsegs = x->capsegs = 0;
}

jr_seg_t *
jr_seg_find(jr_index_t *x, uint32_t num)
{
    size_t lo = 0, hi = x->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->segs[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->nsegs && x->segs[lo].num == num ? &x->segs[lo] : NULL;
}

int
jr_seg_reserve(jr_index_t *x)
{
    if (x->nsegs + 2 <= x->capsegs)
        return 0;
    size_t cap = x->capsegs ? x->capsegs * 2 : 16;
    jr_seg_t *v = lep_realloc(x->segs, cap * sizeof *v);
    if (!v)
        return LEP_ERR_NOMEM;
    x->segs = v;
    x->capsegs = cap;
    return 0;
}

jr_seg_t *
jr_seg_push(jr_index_t *x, uint32_t num)
{
    jr_seg_t *s = &x->segs[x->nsegs++];
    *s = (jr_seg_t){.num = num};
    return s;
}

void
jr_seg_remove(jr_index_t *x, uint32_t num)
{
    jr_seg_t *s = jr_seg_find(x, num);
    if (!s)
        return;
    lep_free(s->deps);
    size_t i = (size_t)(s - x->segs);
    memmove(s, s + 1, (x->nsegs - i - 1) * sizeof *s);
    x->nsegs--;
    for (size_t k = 0; k < x->nsegs; k++) /* its tombstones elsewhere are dead */
        jr_dep_sub(&x->segs[k], num, UINT64_MAX);
}

int
jr_dep_reserve(jr_seg_t *s)
{
    if (s->ndeps < s->capdeps)
        return 0;
    uint32_t cap = s->capdeps ? s->capdeps * 2 : 4;
    jr_dep_t *v = lep_realloc(s->deps, cap * sizeof *v);
    if (!v)
        return LEP_ERR_NOMEM;
    s->deps = v;
    s->capdeps = cap;
    return 0;
}

/* s's entry for target (one at most), or NULL. */
static jr_dep_t *
dep_find(jr_seg_t *s, uint32_t target)
{
    for (uint32_t d = 0; d < s->ndeps; d++)
        if (s->deps[d].target == target)
            return &s->deps[d];
    return NULL;
}

void
jr_dep_add(jr_index_t *x, jr_seg_t *s, uint32_t target, uint64_t bytes)
{
    (void)x;
    jr_dep_t *d = dep_find(s, target);
    if (d)
        d->bytes += bytes;
    else
        s->deps[s->ndeps++] = (jr_dep_t){target, bytes};
    s->live += bytes;
}

/* (bytes UINT64_MAX: all of them) */
void
jr_dep_sub(jr_seg_t *s, uint32_t target, uint64_t bytes)
{
    jr_dep_t *d = dep_find(s, target);
    if (!d)
        return;
    uint64_t b = bytes < d->bytes ? bytes : d->bytes;
    d->bytes -= b;
    s->live -= b;
    if (!d->bytes)
        *d = s->deps[--s->ndeps];
}

void
jr_index_drop_queue(jr_index_t *x, uint64_t q)
{
    /* Walks every slot; after a removal the same slot is looked at again,
     * since backward shifting may have moved an unseen entry into it (an
     * entry seen before may come back: removing q again is a no-op). */
    for (size_t i = 0; i < x->msgs.cap;) {
        jr_msg_t *m = jr_table_slot(&x->msgs, i);
        if (jr_table_used(m) && jr_msg_remove(m, q)) {
            jr_seg_t *s = jr_seg_find(x, m->seg);
            x->live_enqueues--;
            if (s)
                s->live -= JR_ENQ;
            if (!m->nq) {
                if (s)
                    s->live -= m->size;
                jr_msg_fini(m);
                jr_table_remove(&x->msgs, m);
                continue;
            }
        }
        i++;
    }
}
