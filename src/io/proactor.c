/* The proactor loop: threads, epoll, scheduling of tasks, timers and the
 * proactor's own work.  Sockets and listeners are in socket.c,
 * connections in conn.c; io_internal.h describes the model. */
#define _GNU_SOURCE
#include "io/io_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* epoll data of the two internal descriptors; slot ids never have a
 * generation of 0xffffffff. */
#define ID_WAKE UINT64_MAX
#define ID_TIMER (UINT64_MAX - 1)

enum {
    MAXEV = 32,
    PTASK_ROUNDS = 8, /* proactor task: rounds before others get a turn */
    POLL_EVERY = 16,  /* ready tasks served between two looks at epoll */
};

_Thread_local io_thread_t *lepi_io_current;

int64_t
lep_proactor_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
lep_proactor_new(lep_proactor_t **out, const lep_proactor_opts_t *opts)
{
    if (!out)
        return LEP_ERR_INVALID;
    *out = NULL;
    lep_proactor_t *p = lep_malloc(sizeof *p);
    if (!p)
        return LEP_ERR_NOMEM;
    memset(p, 0, sizeof *p);
    if (opts)
        p->opts = *opts;
    p->rbuf_len = p->opts.read_chunk ? p->opts.read_chunk : 65536;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    /* Edge-triggered: one write wakes one waiting thread, and nothing
     * needs re-arming. */
    struct epoll_event we = {.events = EPOLLIN | EPOLLET, .data.u64 = ID_WAKE};
    struct epoll_event te = {.events = EPOLLIN | EPOLLET, .data.u64 = ID_TIMER};
    if (p->epfd < 0 || p->wakefd < 0 || p->timerfd < 0 ||
        epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &we) < 0 ||
        epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timerfd, &te) < 0) {
        if (p->epfd >= 0)
            close(p->epfd);
        if (p->wakefd >= 0)
            close(p->wakefd);
        if (p->timerfd >= 0)
            close(p->timerfd);
        lep_free(p);
        return LEP_ERR_IO;
    }
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->interrupts, 0);
    atomic_init(&p->stopped, false);
    atomic_init(&p->notify_pending, false);
    atomic_init(&p->wake_pending, false);
    p->ptask.kind = TK_PROACTOR;
    p->free_slot = UINT32_MAX;
    p->tfd_due = INT64_MAX;
    *out = p;
    return 0;
}

void
lep_proactor_free(lep_proactor_t *p)
{
    if (!p)
        return;
    /* First, while everything on it is alive: a listener closed while
     * queued is only there. */
    for (io_task_t *t = p->ready; t;) {
        io_task_t *next = t->ready_next;
        if (t->kind == TK_LISTENER && atomic_load(&((lep_listener_t *)t)->closed))
            lepi_listener_free((lep_listener_t *)t);
        t = next;
    }
    p->ready = p->ready_tail = NULL;
    while (p->conns) {
        lep_io_conn_t *ic = p->conns;
        p->conns = ic->next;
        lepi_conn_discard(ic);
    }
    while (p->listeners) {
        lep_listener_t *l = p->listeners;
        p->listeners = l->next;
        lepi_listener_free(l);
    }
    while (p->work) {
        io_work_t *w = p->work;
        p->work = w->next;
        lep_free(w);
    }
    lep_free(p->timers.v);
    lep_free(p->dl);
    lep_free(p->slots);
    pthread_mutex_destroy(&p->lock);
    close(p->wakefd);
    close(p->timerfd);
    close(p->epfd);
    lep_free(p);
}

/* ------------------------------------------------------------------ */
/* Waking threads                                                      */

static void
wake_force(lep_proactor_t *p)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(p->wakefd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

/* Coalesced: one eventfd write until a thread takes it.  Async-signal
 * safe (an atomic and write()). */
void
lepi_io_wake(lep_proactor_t *p)
{
    int saved = errno;
    if (!atomic_exchange(&p->wake_pending, true))
        wake_force(p);
    errno = saved;
}

void
lep_proactor_interrupt(lep_proactor_t *p)
{
    if (!p)
        return;
    int saved = errno;
    atomic_fetch_add(&p->interrupts, 1);
    wake_force(p);
    errno = saved;
}

void
lep_proactor_stop(lep_proactor_t *p)
{
    if (!p)
        return;
    int saved = errno;
    atomic_store(&p->stopped, true);
    wake_force(p);
    errno = saved;
}

void
lep_proactor_notify(lep_proactor_t *p)
{
    if (!p)
        return;
    atomic_store(&p->notify_pending, true);
    lepi_io_wake(p);
}

/* Whether the calling thread must leave run() now (stop, or it took an
 * interrupt).  Cheap enough to ask after every callback. */
bool
lepi_io_leaving(io_thread_t *t)
{
    if (t->leaving)
        return true;
    lep_proactor_t *p = t->p;
    if (atomic_load_explicit(&p->stopped, memory_order_relaxed))
        return t->leaving = true;
    int n = atomic_load_explicit(&p->interrupts, memory_order_relaxed);
    while (n > 0)
        if (atomic_compare_exchange_weak(&p->interrupts, &n, n - 1))
            return t->leaving = true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Ready list                                                          */

/* Under lock: records why t must be served and, unless a thread owns it
 * or it is already queued, queues it.  Returns true if it was queued. */
bool
lepi_sched_locked(lep_proactor_t *p, io_task_t *t, uint32_t flags, uint32_t io_events)
{
    t->flags |= flags;
    t->io_events |= io_events;
    if (t->working || t->queued)
        return false;
    t->queued = true;
    t->ready_next = NULL;
    if (p->ready_tail)
        p->ready_tail->ready_next = t;
    else
        p->ready = t;
    p->ready_tail = t;
    p->nready++;
    return true;
}

/* Under lock: whether the caller should lepi_io_wake() once unlocked so
 * that an idle thread takes what was queued. */
bool
lepi_kick_locked(lep_proactor_t *p, bool pushed)
{
    return pushed && p->nidle > 0;
}

static io_task_t *
pop_ready(lep_proactor_t *p)
{
    io_task_t *t = p->ready;
    if (!t)
        return NULL;
    p->ready = t->ready_next;
    if (!p->ready)
        p->ready_tail = NULL;
    p->nready--;
    t->ready_next = NULL;
    t->queued = false;
    t->working = true;
    return t;
}

static bool
is_inactive(const lep_proactor_t *p)
{
    return !p->nconns && !p->nlisteners && !p->timers.n && !p->work;
}

/* Under lock: after something went away. */
void
lepi_maybe_inactive_locked(lep_proactor_t *p)
{
    if (!p->inactive_reported && is_inactive(p) && p->opts.on_inactive) {
        if (lepi_sched_locked(p, &p->ptask, TF_INACTIVE, 0) && p->nidle > 0)
            lepi_io_wake(p);
    }
}

/* ------------------------------------------------------------------ */
/* Slots: what an epoll event refers to                                */

uint64_t
lepi_slot_alloc(lep_proactor_t *p, io_task_t *t)
{
    uint32_t i;
    if (p->free_slot != UINT32_MAX) {
        i = p->free_slot;
        p->free_slot = p->slots[i].next_free;
    } else {
        if (p->nslots == p->capslots) {
            uint32_t cap = p->capslots ? p->capslots * 2 : 64;
            io_slot_t *s = lep_realloc(p->slots, cap * sizeof *s);
            if (!s)
                return 0;
            p->slots = s;
            p->capslots = cap;
        }
        i = p->nslots++;
        p->slots[i].gen = 1;
    }
    p->slots[i].task = t;
    p->slots[i].next_free = UINT32_MAX;
    return (uint64_t)p->slots[i].gen << 32 | i;
}

void
lepi_slot_free(lep_proactor_t *p, uint64_t id)
{
    uint32_t i = (uint32_t)id;
    if (!id || i >= p->nslots)
        return;
    io_slot_t *s = &p->slots[i];
    s->task = NULL;
    s->gen = s->gen >= 0xfffffffeu ? 1 : s->gen + 1;
    s->next_free = p->free_slot;
    p->free_slot = i;
}

static io_task_t *
slot_lookup(lep_proactor_t *p, uint64_t id)
{
    uint32_t i = (uint32_t)id;
    if (i >= p->nslots || p->slots[i].gen != (uint32_t)(id >> 32))
        return NULL; /* closed since the event was collected */
    return p->slots[i].task;
}

/* ------------------------------------------------------------------ */
/* Timer heaps                                                          */

static bool
timer_before(const io_timer_t *a, const io_timer_t *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

int
lepi_timers_push(io_timers_t *h, io_timer_t nt)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        io_timer_t *v = lep_realloc(h->v, cap * sizeof *v);
        if (!v)
            return LEP_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(&nt, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = nt;
    return 0;
}

io_timer_t
lepi_timers_pop(io_timers_t *h)
{
    io_timer_t top = h->v[0];
    io_timer_t last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && timer_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!timer_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n)
        h->v[i] = last;
    return top;
}

/* Connection deadlines: a min-heap of connections on hkey, the index
 * kept in each connection so that it moves in O(log n). */

static void
dl_place(lep_proactor_t *p, size_t i, lep_io_conn_t *ic)
{
    p->dl[i] = ic;
    ic->hidx = i;
}

static void
dl_sift_up(lep_proactor_t *p, size_t i)
{
    lep_io_conn_t *ic = p->dl[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (p->dl[parent]->hkey <= ic->hkey)
            break;
        dl_place(p, i, p->dl[parent]);
        i = parent;
    }
    dl_place(p, i, ic);
}

static void
dl_sift_down(lep_proactor_t *p, size_t i)
{
    lep_io_conn_t *ic = p->dl[i];
    size_t n = p->ndl;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && p->dl[c + 1]->hkey < p->dl[c]->hkey)
            c++;
        if (p->dl[c]->hkey >= ic->hkey)
            break;
        dl_place(p, i, p->dl[c]);
        i = c;
    }
    dl_place(p, i, ic);
}

/* Room for n connections: reserved when a connection is added, so that
 * setting a deadline never fails. */
int
lepi_dl_reserve(lep_proactor_t *p, size_t n)
{
    if (n <= p->capdl)
        return 0;
    size_t cap = p->capdl ? p->capdl : 16;
    while (cap < n)
        cap *= 2;
    lep_io_conn_t **v = lep_realloc(p->dl, cap * sizeof *v);
    if (!v)
        return LEP_ERR_NOMEM;
    p->dl = v;
    p->capdl = cap;
    return 0;
}

void
lepi_dl_set(lep_proactor_t *p, lep_io_conn_t *ic, int64_t key)
{
    if (ic->hidx == HIDX_NONE) {
        ic->hkey = key;
        size_t i = p->ndl++;
        dl_place(p, i, ic);
        dl_sift_up(p, i);
    } else {
        int64_t old = ic->hkey;
        ic->hkey = key;
        if (key < old)
            dl_sift_up(p, ic->hidx);
        else
            dl_sift_down(p, ic->hidx);
    }
    if (key < p->tfd_due)
        lepi_timer_rearm_locked(p);
}

void
lepi_dl_remove(lep_proactor_t *p, lep_io_conn_t *ic)
{
    size_t i = ic->hidx;
    if (i == HIDX_NONE)
        return;
    ic->hidx = HIDX_NONE;
    lep_io_conn_t *last = p->dl[--p->ndl];
    if (last == ic)
        return;
    int64_t key = ic->hkey;
    dl_place(p, i, last);
    if (last->hkey < key)
        dl_sift_up(p, i);
    else
        dl_sift_down(p, i);
}

/* Under lock: arms the timerfd for the earliest deadline if that is
 * earlier than what it is armed for.  (A later one is left: the early
 * expiry finds nothing due and re-arms.) */
void
lepi_timer_rearm_locked(lep_proactor_t *p)
{
    int64_t next = INT64_MAX;
    if (p->ndl)
        next = p->dl[0]->hkey;
    if (p->timers.n && p->timers.v[0].due < next)
        next = p->timers.v[0].due;
    for (lep_listener_t *l = p->paused; l; l = l->paused_next)
        if (l->resume_at < next)
            next = l->resume_at;
    if (next == INT64_MAX || next >= p->tfd_due)
        return;
    if (next < 1)
        next = 1; /* an all-zero value would disarm */
    struct itimerspec its = {0};
    its.it_value.tv_sec = next / 1000;
    its.it_value.tv_nsec = (long)(next % 1000) * 1000000;
    if (timerfd_settime(p->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        p->tfd_due = next;
}

/* Under lock: the timerfd expired. */
static bool
timers_fire_locked(lep_proactor_t *p)
{
    bool pushed = false;
    p->tfd_due = INT64_MAX;
    int64_t now = lep_proactor_now_ms();
    while (p->ndl && p->dl[0]->hkey <= now) {
        lep_io_conn_t *ic = p->dl[0];
        lepi_dl_remove(p, ic);
        pushed |= lepi_sched_locked(p, &ic->task, TF_DUE, 0);
    }
    if (p->timers.n && p->timers.v[0].due <= now)
        pushed |= lepi_sched_locked(p, &p->ptask, TF_DUE, 0);
    if (p->paused)
        pushed |= lepi_listeners_resume_locked(p, now);
    lepi_timer_rearm_locked(p);
    return pushed;
}

/* ------------------------------------------------------------------ */
/* Proactor-level work: injected functions, timers, notify, inactive    */

int
lep_proactor_inject(lep_proactor_t *p, lep_io_fn fn, void *ctx)
{
    if (!p || !fn)
        return LEP_ERR_INVALID;
    io_work_t *w = lep_malloc(sizeof *w);
    if (!w)
        return LEP_ERR_NOMEM;
    w->next = NULL;
    w->fn = fn;
    w->ctx = ctx;
    pthread_mutex_lock(&p->lock);
    if (p->work_tail)
        p->work_tail->next = w;
    else
        p->work = w;
    p->work_tail = w;
    p->inactive_reported = false;
    bool kick = lepi_kick_locked(p, lepi_sched_locked(p, &p->ptask, TF_WORK, 0));
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    return 0;
}

int
lep_proactor_schedule(lep_proactor_t *p, uint64_t delay_ms, lep_io_fn fn, void *ctx)
{
    if (!p || !fn)
        return LEP_ERR_INVALID;
    if (delay_ms > (uint64_t)INT32_MAX * 1000)
        delay_ms = (uint64_t)INT32_MAX * 1000;
    int64_t now = lep_proactor_now_ms();
    int64_t due = now + (int64_t)delay_ms;
    pthread_mutex_lock(&p->lock);
    int rc = lepi_timers_push(&p->timers, (io_timer_t){due, p->timer_seq++, fn, ctx});
    bool kick = false;
    if (rc == 0) {
        p->inactive_reported = false;
        if (due <= now)
            kick = lepi_kick_locked(p, lepi_sched_locked(p, &p->ptask, TF_DUE, 0));
        else
            lepi_timer_rearm_locked(p);
    }
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    return rc;
}

static void
ptask_turn(io_thread_t *t)
{
    lep_proactor_t *p = t->p;
    for (int round = 0;; round++) {
        if (!lepi_io_leaving(t) && atomic_exchange(&p->notify_pending, false) &&
            p->opts.on_notify)
            p->opts.on_notify(p->opts.ctx, p);
        /* Injected functions, in submission order. */
        pthread_mutex_lock(&p->lock);
        io_work_t *w = p->work;
        p->work = p->work_tail = NULL;
        pthread_mutex_unlock(&p->lock);
        while (w && !lepi_io_leaving(t)) {
            io_work_t *next = w->next;
            w->fn(w->ctx);
            lep_free(w);
            w = next;
        }
        if (w) { /* leaving: the rest stays first in line */
            io_work_t *tail = w;
            while (tail->next)
                tail = tail->next;
            pthread_mutex_lock(&p->lock);
            tail->next = p->work;
            if (!p->work)
                p->work_tail = tail;
            p->work = w;
            pthread_mutex_unlock(&p->lock);
        }
        /* Due timers, one at a time: each may schedule more. */
        int64_t now = lep_proactor_now_ms();
        while (!lepi_io_leaving(t)) {
            pthread_mutex_lock(&p->lock);
            if (!p->timers.n || p->timers.v[0].due > now) {
                pthread_mutex_unlock(&p->lock);
                break;
            }
            io_timer_t tm = lepi_timers_pop(&p->timers);
            pthread_mutex_unlock(&p->lock);
            tm.fn(tm.ctx);
        }
        pthread_mutex_lock(&p->lock);
        bool report = !t->leaving && !p->inactive_reported && is_inactive(p);
        if (report)
            p->inactive_reported = true;
        pthread_mutex_unlock(&p->lock);
        if (report && p->opts.on_inactive)
            p->opts.on_inactive(p->opts.ctx, p);

        pthread_mutex_lock(&p->lock);
        io_task_t *pt = &p->ptask;
        bool due = p->timers.n && p->timers.v[0].due <= lep_proactor_now_ms();
        bool more = pt->flags || p->work || due || atomic_load(&p->notify_pending);
        pt->flags = 0;
        if (more && round + 1 < PTASK_ROUNDS && !lepi_io_leaving(t)) {
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        pt->working = false;
        bool kick = false;
        if (more)
            kick = lepi_kick_locked(p, lepi_sched_locked(p, pt, TF_WAKE, 0));
        pthread_mutex_unlock(&p->lock);
        if (kick)
            lepi_io_wake(p);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* run()                                                                */

static void
run_task(io_thread_t *t, io_task_t *task, uint32_t flags, uint32_t io)
{
    t->cur = task;
    switch (task->kind) {
    case TK_CONN:
        lepi_conn_turn(t, (lep_io_conn_t *)task, flags, io);
        break;
    case TK_LISTENER:
        lepi_listener_turn(t, (lep_listener_t *)task, flags, io);
        break;
    default:
        ptask_turn(t);
        break;
    }
    t->cur = NULL;
}

int
lep_proactor_run(lep_proactor_t *p)
{
    if (!p)
        return LEP_ERR_INVALID;
    if (lepi_io_current && lepi_io_current->p == p)
        return LEP_ERR_STATE; /* from one of its own callbacks */
    io_thread_t t = {.p = p, .rbuf_len = p->rbuf_len};
    if (lepi_io_leaving(&t))
        return 0;
    t.rbuf = lep_malloc(t.rbuf_len);
    if (!t.rbuf)
        return LEP_ERR_NOMEM;
    io_thread_t *outer = lepi_io_current;
    lepi_io_current = &t;

    pthread_mutex_lock(&p->lock);
    p->nthreads++;
    if (atomic_load(&p->notify_pending))
        lepi_sched_locked(p, &p->ptask, TF_NOTIFY, 0);
    if (!p->inactive_reported && is_inactive(p))
        lepi_sched_locked(p, &p->ptask, TF_INACTIVE, 0);
    pthread_mutex_unlock(&p->lock);

    int rc = 0;
    int served = 0; /* ready tasks since the last epoll_wait */
    struct epoll_event evs[MAXEV];
    for (;;) {
        if (lepi_io_leaving(&t))
            break;
        pthread_mutex_lock(&p->lock);
        /* Tasks that always have more to do must not keep sockets from
         * being heard: every POLL_EVERY tasks, a look at epoll. */
        io_task_t *task = served < POLL_EVERY ? pop_ready(p) : NULL;
        if (task) {
            uint32_t flags = task->flags, io = task->io_events;
            task->flags = task->io_events = 0;
            bool kick = p->nready > 0 && p->nidle > 0;
            pthread_mutex_unlock(&p->lock);
            if (kick)
                lepi_io_wake(p); /* more for another thread */
            served++;
            run_task(&t, task, flags, io);
            continue;
        }
        bool block = p->nready == 0;
        if (block)
            p->nidle++;
        pthread_mutex_unlock(&p->lock);

        int n = epoll_wait(p->epfd, evs, MAXEV, block ? -1 : 0);
        int err = errno;
        served = 0;
        bool woke = false, timer = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == ID_WAKE)
                woke = true;
            else if (evs[i].data.u64 == ID_TIMER)
                timer = true;
        }
        uint64_t v;
        if (woke) {
            /* Drain first, then let the next wake write again: cleared
             * first, a wake written in between would be drained here with
             * the flag left set, and every later wake skipped (lost for
             * good).  A wake that finds the flag still set needs no write:
             * what it announced was queued before and is looked at below. */
            while (read(p->wakefd, &v, sizeof v) < 0 && errno == EINTR)
                ;
            atomic_store(&p->wake_pending, false);
        }
        if (timer)
            while (read(p->timerfd, &v, sizeof v) < 0 && errno == EINTR)
                ;

        pthread_mutex_lock(&p->lock);
        if (block)
            p->nidle--;
        if (n < 0 && err != EINTR) {
            pthread_mutex_unlock(&p->lock);
            rc = LEP_ERR_IO;
            break;
        }
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            if (id == ID_WAKE || id == ID_TIMER)
                continue;
            io_task_t *tk = slot_lookup(p, id);
            if (tk)
                lepi_sched_locked(p, tk, 0, evs[i].events);
        }
        if (woke && atomic_load(&p->notify_pending))
            lepi_sched_locked(p, &p->ptask, TF_NOTIFY, 0);
        if (timer)
            timers_fire_locked(p);
        pthread_mutex_unlock(&p->lock);
    }

    pthread_mutex_lock(&p->lock);
    p->nthreads--;
    bool pass_on = p->nthreads > 0 || p->nready > 0;
    pthread_mutex_unlock(&p->lock);
    /* Threads still waiting must see the stop (or the next interrupt),
     * and work this thread queued must not wait for a later run(). */
    if (atomic_load(&p->stopped) || atomic_load(&p->interrupts) > 0 || pass_on)
        wake_force(p);
    lepi_io_current = outer;
    lep_free(t.rbuf);
    return rc;
}
