/* The proactor loop: epoll, the eventfd wake, timers and injected work.
 * Sockets and connections are in socket.c. */
#include "io/io_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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
    p->rbuf = lep_malloc(p->rbuf_len);
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake.kind = H_WAKE;
    p->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!p->rbuf || p->epfd < 0 || p->wake.fd < 0) {
        int rc = p->rbuf ? LEP_ERR_IO : LEP_ERR_NOMEM;
        if (p->epfd >= 0)
            close(p->epfd);
        if (p->wake.fd >= 0)
            close(p->wake.fd);
        lep_free(p->rbuf);
        lep_free(p);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->wake};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wake.fd, &ev) < 0) {
        close(p->epfd);
        close(p->wake.fd);
        lep_free(p->rbuf);
        lep_free(p);
        return LEP_ERR_IO;
    }
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->interrupts, 0);
    atomic_init(&p->running, false);
    atomic_init(&p->wake_pending, false);
    *out = p;
    return 0;
}

static void
free_dead(lep_proactor_t *p)
{
    while (p->dead) {
        lep_io_conn_t *ic = p->dead;
        p->dead = ic->next;
        lepi_io_conn_free(ic);
    }
    while (p->dead_listeners) {
        lep_listener_t *l = p->dead_listeners;
        p->dead_listeners = l->next;
        lepi_io_listener_free(l);
    }
}

void
lep_proactor_free(lep_proactor_t *p)
{
    if (!p)
        return;
    while (p->conns) {
        lep_io_conn_t *ic = p->conns;
        p->conns = ic->next;
        lepi_io_conn_free(ic);
    }
    free_dead(p);
    while (p->listeners) {
        lep_listener_t *l = p->listeners;
        p->listeners = l->next;
        lepi_io_listener_free(l);
    }
    while (p->work) {
        io_work_t *w = p->work;
        p->work = w->next;
        lep_free(w);
    }
    lep_free(p->timers);
    pthread_mutex_destroy(&p->lock);
    close(p->wake.fd);
    close(p->epfd);
    lep_free(p->rbuf);
    lep_free(p);
}

/* Coalesced: one eventfd write per wait, however many threads wake. */
void
lepi_io_wake(lep_proactor_t *p)
{
    if (atomic_exchange(&p->wake_pending, true))
        return;
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(p->wake.fd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

void
lep_proactor_interrupt(lep_proactor_t *p)
{
    atomic_fetch_add(&p->interrupts, 1);
    lepi_io_wake(p);
}

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
    pthread_mutex_unlock(&p->lock);
    lepi_io_wake(p);
    return 0;
}

static bool
timer_before(const io_timer_t *a, const io_timer_t *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

int
lep_proactor_schedule(lep_proactor_t *p, uint64_t delay_ms, lep_io_fn fn, void *ctx)
{
    if (!p || !fn)
        return LEP_ERR_INVALID;
    if (delay_ms > (uint64_t)INT32_MAX * 1000)
        delay_ms = (uint64_t)INT32_MAX * 1000;
    int64_t due = lep_proactor_now_ms() + (int64_t)delay_ms;
    pthread_mutex_lock(&p->lock);
    if (p->ntimers == p->captimers) {
        size_t cap = p->captimers ? p->captimers * 2 : 16;
        io_timer_t *t = lep_realloc(p->timers, cap * sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&p->lock);
            return LEP_ERR_NOMEM;
        }
        p->timers = t;
        p->captimers = cap;
    }
    io_timer_t nt = {due, p->timer_seq++, fn, ctx};
    size_t i = p->ntimers++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(&nt, &p->timers[parent]))
            break;
        p->timers[i] = p->timers[parent];
        i = parent;
    }
    p->timers[i] = nt;
    bool first = i == 0;
    pthread_mutex_unlock(&p->lock);
    /* A new earliest deadline shortens the current wait. */
    if (first)
        lepi_io_wake(p);
    return 0;
}

/* Under lock. */
static io_timer_t
timer_pop(lep_proactor_t *p)
{
    io_timer_t top = p->timers[0];
    io_timer_t last = p->timers[--p->ntimers];
    size_t i = 0, n = p->ntimers;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && timer_before(&p->timers[c + 1], &p->timers[c]))
            c++;
        if (!timer_before(&p->timers[c], &last))
            break;
        p->timers[i] = p->timers[c];
        i = c;
    }
    if (n)
        p->timers[i] = last;
    return top;
}

static void
run_timers(lep_proactor_t *p)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (!p->ntimers || p->timers[0].due > p->now) {
            pthread_mutex_unlock(&p->lock);
            return;
        }
        io_timer_t t = timer_pop(p);
        pthread_mutex_unlock(&p->lock);
        t.fn(t.ctx);
    }
}

static void
run_work(lep_proactor_t *p)
{
    pthread_mutex_lock(&p->lock);
    io_work_t *w = p->work;
    p->work = p->work_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    while (w) {
        io_work_t *next = w->next;
        w->fn(w->ctx);
        lep_free(w);
        w = next;
    }
}

static void
process_ready(lep_proactor_t *p)
{
    while (p->ready) {
        lep_io_conn_t *ic = p->ready;
        p->ready = ic->ready_next;
        if (!p->ready)
            p->ready_tail = NULL;
        ic->ready_next = NULL;
        ic->dirty = false;
        if (!ic->dead)
            lepi_io_conn_process(ic);
    }
}

/* Connection deadlines are merged by a scan: cheap for the connection
 * counts of one process, and free of the bookkeeping a heap of
 * re-armed deadlines would need.  Revisit with the thread pool. */
static int64_t
next_deadline(lep_proactor_t *p, bool *has_timers)
{
    int64_t d = -1;
    pthread_mutex_lock(&p->lock);
    *has_timers = p->ntimers > 0;
    if (p->ntimers)
        d = p->timers[0].due;
    if (p->work || p->conn_work)
        d = p->now;
    pthread_mutex_unlock(&p->lock);
    for (lep_io_conn_t *ic = p->conns; ic; ic = ic->next)
        if (ic->deadline >= 0 && (d < 0 || ic->deadline < d))
            d = ic->deadline;
    return d;
}

static void
tick_due(lep_proactor_t *p)
{
    for (lep_io_conn_t *ic = p->conns; ic; ic = ic->next)
        if (ic->deadline >= 0 && ic->deadline <= p->now)
            lep_io_conn_wake(ic);
}

int
lep_proactor_run(lep_proactor_t *p)
{
    if (!p)
        return LEP_ERR_INVALID;
    if (atomic_exchange(&p->running, true))
        return LEP_ERR_STATE;
    int rc = 0;
    enum { MAXEV = 64 };
    struct epoll_event evs[MAXEV];
    for (;;) {
        p->now = lep_proactor_now_ms();
        process_ready(p);
        free_dead(p);
        if (atomic_load(&p->interrupts) > 0) {
            atomic_fetch_sub(&p->interrupts, 1);
            break;
        }
        bool has_timers;
        int64_t d = next_deadline(p, &has_timers);
        if (!p->nconns && !p->nlisteners && !has_timers && d < 0) {
            if (!p->inactive_reported) {
                p->inactive_reported = true;
                if (p->opts.on_inactive) {
                    p->opts.on_inactive(p->opts.ctx, p);
                    continue; /* it may have added work or interrupted */
                }
            }
        } else {
            p->inactive_reported = false;
        }
        int timeout = -1;
        if (d >= 0) {
            int64_t ms = d - lep_proactor_now_ms();
            timeout = ms <= 0 ? 0 : ms > INT32_MAX ? INT32_MAX : (int)ms;
        }
        int n = epoll_wait(p->epfd, evs, MAXEV, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = LEP_ERR_IO;
            break;
        }
        p->now = lep_proactor_now_ms();
        for (int i = 0; i < n; i++) {
            io_handle_t *h = evs[i].data.ptr;
            if (h->kind == H_WAKE) {
                uint64_t v;
                atomic_store(&p->wake_pending, false);
                while (read(h->fd, &v, sizeof v) < 0 && errno == EINTR)
                    ;
            } else if (h->kind == 0) {
                continue; /* closed earlier in this batch */
            } else if (h->kind == H_LISTENER) {
                lepi_io_listener_event((lep_listener_t *)h);
            } else {
                lepi_io_conn_event((lep_io_conn_t *)h, evs[i].events);
            }
        }
        run_work(p);
        lepi_io_run_conn_work(p);
        run_timers(p);
        tick_due(p);
    }
    process_ready(p);
    free_dead(p);
    atomic_store(&p->running, false);
    return rc;
}
