/* Connections: a lep_io_conn_t drives one socket at a time through a
 * lep_conn_t, and outlives both when it reconnects.  Its callbacks, work
 * items and timers run in one turn at a time (io_internal.h). */
#include "io/io_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    READS_PER_EVENT = 4, /* reads per readiness before other work */
    IOV_MAX_OUT = 32,
    ENGINE_ROUNDS = 64, /* dispatch/tick/flush rounds per turn */
    TURN_ROUNDS = 4,    /* wake-ups taken in one turn before re-queueing */
};

static void
set_reason(lep_io_conn_t *ic, int err, const char *what)
{
    if (ic->os_error)
        return; /* the first cause is the one worth telling */
    ic->os_error = err;
    snprintf(ic->reason, sizeof ic->reason, "%s: %s", what, strerror(err));
}

static bool
in_own_context(const lep_io_conn_t *ic)
{
    io_thread_t *t = lepi_io_current;
    return t && t->cur == &ic->task;
}

/* ------------------------------------------------------------------ */
/* Making and freeing                                                  */

static lep_io_conn_t *
conn_alloc(lep_proactor_t *p, const lep_io_handler_t *h, void *ctx)
{
    lep_io_conn_t *ic = lep_malloc(sizeof *ic);
    if (!ic)
        return NULL;
    memset(ic, 0, sizeof *ic);
    ic->task.kind = TK_CONN;
    ic->task.working = true; /* claimed by its maker until registered */
    ic->p = p;
    ic->ctx = ctx;
    if (h)
        ic->handler = *h;
    atomic_init(&ic->refs, 1);
    atomic_init(&ic->cancel, false);
    ic->fd = -1;
    ic->phase = PH_WAIT;
    ic->tick_deadline = ic->reconnect_due = -1;
    ic->hidx = HIDX_NONE;
    ic->rng = (uint64_t)(uintptr_t)ic * 0x9e3779b97f4a7c15ull ^
              (uint64_t)lep_proactor_now_ms() * 0xbf58476d1ce4e5b9ull;
    if (!ic->rng)
        ic->rng = 1;
    pthread_mutex_init(&ic->wlock, NULL);
    return ic;
}

static void
free_work(io_work_t *w)
{
    while (w) {
        io_work_t *next = w->next;
        lep_free(w);
        w = next;
    }
}

static void
conn_free_mem(lep_io_conn_t *ic)
{
    if (ic->c)
        lep_conn_free(ic->c);
    if (ic->fd >= 0)
        close(ic->fd);
    free_work(ic->work);
    lep_free(ic->timers.v);
    lep_free(ic->addrs);
    if (ic->has_copts)
        lepi_copts_fini(&ic->copts);
    pthread_mutex_destroy(&ic->wlock);
    lep_free(ic);
}

static void
drop_ref(lep_io_conn_t *ic)
{
    if (atomic_fetch_sub(&ic->refs, 1) == 1)
        conn_free_mem(ic);
}

void
lep_io_conn_hold(lep_io_conn_t *ic)
{
    if (ic)
        atomic_fetch_add(&ic->refs, 1);
}

void
lep_io_conn_release(lep_io_conn_t *ic)
{
    if (ic)
        drop_ref(ic);
}

/* lep_proactor_free (no thread runs), or a connection that never made
 * it onto the proactor: nothing is called back. */
void
lepi_conn_discard(lep_io_conn_t *ic)
{
    if (ic->c) {
        lep_conn_free(ic->c);
        ic->c = NULL;
    }
    if (ic->fd >= 0) {
        close(ic->fd);
        ic->fd = -1;
    }
    pthread_mutex_lock(&ic->wlock);
    io_work_t *w = ic->work;
    ic->work = ic->work_tail = NULL;
    ic->work_closed = true;
    pthread_mutex_unlock(&ic->wlock);
    free_work(w);
    pthread_mutex_lock(&ic->p->lock);
    io_timer_t *tv = ic->timers.v;
    memset(&ic->timers, 0, sizeof ic->timers);
    ic->ended = true;
    pthread_mutex_unlock(&ic->p->lock);
    lep_free(tv);
    ic->phase = PH_DONE;
    drop_ref(ic);
}

static int
set_addrs(lep_io_conn_t *ic, const lep_io_addr_t *a, size_t n)
{
    size_t total = n * sizeof *a;
    for (size_t i = 0; i < n; i++)
        total += strlen(a[i].host) + 1;
    uint8_t *mem = lep_malloc(total);
    if (!mem)
        return LEP_ERR_NOMEM;
    lep_io_addr_t *v = (lep_io_addr_t *)mem;
    char *s = (char *)(mem + n * sizeof *a);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(a[i].host) + 1;
        memcpy(s, a[i].host, len);
        v[i].host = s;
        v[i].port = a[i].port;
        s += len;
    }
    ic->addrs = v;
    ic->naddrs = n;
    return 0;
}

/* Adds a connection its maker still claims to the proactor (and its
 * socket, if any, to epoll), then lets it go: queued if something is
 * pending.  On error nothing is left registered. */
static int
conn_register(lep_proactor_t *p, lep_io_conn_t *ic, uint32_t events, uint32_t flags)
{
    pthread_mutex_lock(&p->lock);
    int rc = lepi_dl_reserve(p, p->nconns + 1);
    if (!rc && ic->fd >= 0 && !(ic->slot = lepi_slot_alloc(p, &ic->task)))
        rc = LEP_ERR_NOMEM;
    if (!rc) {
        ic->next = p->conns;
        if (p->conns)
            p->conns->prev = ic;
        p->conns = ic;
        p->nconns++;
        p->inactive_reported = false;
        ic->linked = true;
    }
    pthread_mutex_unlock(&p->lock);
    if (rc)
        return rc;
    if (ic->fd >= 0) {
        struct epoll_event ev = {.events = events | EPOLLONESHOT, .data.u64 = ic->slot};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, ic->fd, &ev) < 0) {
            pthread_mutex_lock(&p->lock);
            lepi_slot_free(p, ic->slot);
            ic->slot = 0;
            if (ic->prev)
                ic->prev->next = ic->next;
            else
                p->conns = ic->next;
            if (ic->next)
                ic->next->prev = ic->prev;
            ic->prev = ic->next = NULL;
            p->nconns--;
            ic->linked = false;
            lepi_maybe_inactive_locked(p);
            pthread_mutex_unlock(&p->lock);
            return LEP_ERR_IO;
        }
        ic->armed = true;
        ic->registered = events;
    }
    pthread_mutex_lock(&p->lock);
    ic->task.working = false;
    if (ic->timers.n) /* scheduled from on_setup */
        lepi_dl_set(p, ic, ic->timers.v[0].due);
    bool kick = false;
    if (flags || ic->task.flags || ic->task.io_events)
        kick = lepi_kick_locked(p, lepi_sched_locked(p, &ic->task, flags, 0));
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Thread-safe entry points                                             */

/* Asks for a turn; false if ic ended for good. */
static bool
conn_signal(lep_io_conn_t *ic, uint32_t flags)
{
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&p->lock);
    if (ic->ended) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    bool kick = lepi_kick_locked(p, lepi_sched_locked(p, &ic->task, flags, 0));
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    return true;
}

void
lep_io_conn_wake(lep_io_conn_t *ic)
{
    /* In its own context the events and output are handled after the
     * current callback anyway. */
    if (!ic || in_own_context(ic))
        return;
    conn_signal(ic, TF_WAKE);
}

void
lep_io_conn_abort(lep_io_conn_t *ic)
{
    if (!ic)
        return;
    if (in_own_context(ic))
        ic->abort_req = true;
    else
        conn_signal(ic, TF_ABORT);
}

void
lep_io_conn_cancel_reconnect(lep_io_conn_t *ic)
{
    if (!ic)
        return;
    atomic_store(&ic->cancel, true);
    if (in_own_context(ic))
        ic->reconnecting = false; /* from on_disconnected: this is the end */
    else
        conn_signal(ic, TF_WAKE); /* a wait ends now */
}

int
lep_io_conn_inject(lep_io_conn_t *ic, lep_io_fn fn, void *ctx)
{
    if (!ic || !fn)
        return LEP_ERR_INVALID;
    io_work_t *w = lep_malloc(sizeof *w);
    if (!w)
        return LEP_ERR_NOMEM;
    w->next = NULL;
    w->fn = fn;
    w->ctx = ctx;
    pthread_mutex_lock(&ic->wlock);
    if (ic->work_closed) {
        pthread_mutex_unlock(&ic->wlock);
        lep_free(w);
        return LEP_ERR_STATE;
    }
    bool first = !ic->work;
    if (ic->work_tail)
        ic->work_tail->next = w;
    else
        ic->work = w;
    ic->work_tail = w;
    /* Only the item that makes the queue non-empty asks for a turn: the
     * turn takes the whole queue.  Still under wlock, which the end of
     * the connection takes, so ic cannot go away meanwhile. */
    if (first)
        conn_signal(ic, TF_WORK);
    pthread_mutex_unlock(&ic->wlock);
    return 0;
}

int
lep_io_conn_schedule(lep_io_conn_t *ic, uint64_t delay_ms, lep_io_fn fn, void *ctx)
{
    if (!ic || !fn)
        return LEP_ERR_INVALID;
    if (delay_ms > (uint64_t)INT32_MAX * 1000)
        delay_ms = (uint64_t)INT32_MAX * 1000;
    lep_proactor_t *p = ic->p;
    int64_t now = lep_proactor_now_ms();
    int64_t due = now + (int64_t)delay_ms;
    pthread_mutex_lock(&p->lock);
    if (ic->ended || ic->timers_closed) {
        pthread_mutex_unlock(&p->lock);
        return LEP_ERR_STATE;
    }
    int rc = lepi_timers_push(&ic->timers, (io_timer_t){due, p->timer_seq++, fn, ctx});
    bool kick = false;
    if (rc == 0) {
        if (due <= now)
            kick = lepi_kick_locked(p, lepi_sched_locked(p, &ic->task, TF_DUE, 0));
        else if (ic->linked && (ic->hidx == HIDX_NONE || due < ic->hkey))
            lepi_dl_set(p, ic, due);
    }
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    return rc;
}

lep_conn_t *lep_io_conn_engine(const lep_io_conn_t *ic) { return ic ? ic->c : NULL; }
lep_proactor_t *lep_io_conn_proactor(const lep_io_conn_t *ic) { return ic ? ic->p : NULL; }
void *lep_io_conn_context(const lep_io_conn_t *ic) { return ic ? ic->ctx : NULL; }
size_t lep_io_conn_addr_index(const lep_io_conn_t *ic) { return ic ? ic->addr_index : 0; }
uint32_t lep_io_conn_attempt(const lep_io_conn_t *ic) { return ic ? ic->attempt : 0; }
bool lep_io_conn_reconnecting(const lep_io_conn_t *ic) { return ic && ic->reconnecting; }

const lep_io_addr_t *
lep_io_conn_addr(const lep_io_conn_t *ic)
{
    return ic && ic->naddrs ? &ic->addrs[ic->addr_index] : NULL;
}

/* ------------------------------------------------------------------ */
/* Bytes                                                               */

/* Both directions of the socket are over for the engine. */
static void
close_engine_io(lep_io_conn_t *ic)
{
    if (!ic->read_closed) {
        ic->read_closed = true;
        if (ic->c)
            lep_conn_input_closed(ic->c);
    }
    if (!ic->write_closed) {
        ic->write_closed = true;
        if (ic->c)
            lep_conn_output_closed(ic->c);
    }
}

static void
flush(lep_io_conn_t *ic)
{
    ic->want_write = false;
    if (ic->write_closed || ic->phase != PH_OPEN)
        return;
    for (;;) {
        struct iovec iov[IOV_MAX_OUT];
        int k = lep_conn_output_iov(ic->c, iov, IOV_MAX_OUT);
        if (k <= 0)
            return;
        /* sendmsg is writev with MSG_NOSIGNAL: a peer that went away is
         * an EPIPE here, never a SIGPIPE for the application. */
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t w = sendmsg(ic->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ic->want_write = true;
                return;
            }
            set_reason(ic, errno, "write");
            close_engine_io(ic);
            return;
        }
        lep_conn_consumed(ic->c, (size_t)w);
    }
}

static void
conn_read(io_thread_t *t, lep_io_conn_t *ic)
{
    for (int i = 0; i < READS_PER_EVENT && !ic->read_closed; i++) {
        ssize_t r = read(ic->fd, t->rbuf, t->rbuf_len);
        if (r > 0) {
            size_t used;
            lep_conn_feed(ic->c, t->rbuf, (size_t)r, &used);
            if ((size_t)r < t->rbuf_len)
                break;
        } else if (r == 0) {
            ic->read_closed = true;
            /* Asked before the engine hears of it: an unclean EOF
             * finishes the engine at once. */
            bool early = !lep_conn_finished(ic->c) &&
                         lep_conn_remote_state(ic->c) != LEP_STATE_CLOSED;
            lep_conn_input_closed(ic->c);
            if (early && !ic->os_error) {
                ic->os_error = ECONNRESET;
                snprintf(ic->reason, sizeof ic->reason,
                         "read: peer closed the socket before the AMQP close");
            }
        } else if (errno == EINTR) {
            i--;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            set_reason(ic, errno, "read");
            close_engine_io(ic);
        }
    }
}

static void
conn_io(io_thread_t *t, lep_io_conn_t *ic, uint32_t events)
{
    if (ic->phase == PH_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(ic->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (!err && (events & (EPOLLERR | EPOLLHUP)))
            err = ECONNREFUSED;
        if (err) {
            set_reason(ic, err, "connect");
            close_engine_io(ic);
            ic->phase = PH_OPEN; /* the engine turn ends the attempt */
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        ic->phase = PH_OPEN;
        if (ic->handler.on_connected)
            ic->handler.on_connected(ic->ctx, ic);
        return;
    }
    if (ic->phase != PH_OPEN)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(t, ic);
    if ((events & EPOLLERR) && !ic->read_closed) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(ic->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        set_reason(ic, err ? err : EIO, "socket");
        close_engine_io(ic);
    }
}

static void
rearm(lep_io_conn_t *ic)
{
    if (ic->fd < 0)
        return;
    uint32_t want = 0;
    if (ic->phase == PH_CONNECTING) {
        want = EPOLLOUT;
    } else {
        if (!ic->read_closed)
            want |= EPOLLIN;
        if (ic->want_write && !ic->write_closed)
            want |= EPOLLOUT;
    }
    if (!want || (ic->armed && want == ic->registered))
        return;
    struct epoll_event ev = {.events = want | EPOLLONESHOT, .data.u64 = ic->slot};
    if (epoll_ctl(ic->p->epfd, EPOLL_CTL_MOD, ic->fd, &ev) == 0) {
        ic->armed = true;
        ic->registered = want;
    }
}

static void
release_socket(lep_io_conn_t *ic)
{
    if (ic->fd < 0)
        return;
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&p->lock);
    lepi_slot_free(p, ic->slot);
    pthread_mutex_unlock(&p->lock);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, ic->fd, NULL);
    close(ic->fd);
    ic->fd = -1;
    ic->slot = 0;
    ic->armed = false;
    ic->registered = 0;
}

/* ------------------------------------------------------------------ */
/* Callbacks                                                           */

static int
dispatch(io_thread_t *t, lep_io_conn_t *ic, bool may_leave)
{
    int n = 0;
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(ic->c))) {
        n++;
        switch (ev->type) {
        case LEP_EVENT_CONN_REMOTE_OPEN:
            ic->opened = true;
            ic->attempt = 0; /* success */
            break;
        case LEP_EVENT_TRANSPORT_ERROR:
            ic->transport_error = true;
            /* fallthrough */
        case LEP_EVENT_CONN_REMOTE_CLOSE:
            if (!ic->end_cause)
                ic->end_cause = END_REMOTE;
            break;
        case LEP_EVENT_CONN_LOCAL_CLOSE:
            if (!ic->end_cause)
                ic->end_cause = END_LOCAL;
            break;
        default:
            break;
        }
        if (ic->handler.on_event)
            ic->handler.on_event(ic->ctx, ic, ev);
        if (may_leave && lepi_io_leaving(t))
            break;
    }
    return n;
}

static io_work_t *
take_work(lep_io_conn_t *ic, bool close)
{
    pthread_mutex_lock(&ic->wlock);
    io_work_t *w = ic->work;
    ic->work = ic->work_tail = NULL;
    if (close)
        ic->work_closed = true;
    pthread_mutex_unlock(&ic->wlock);
    return w;
}

/* may_leave: stop early for lepi_io_leaving(), putting the rest back. */
static void
run_work(io_thread_t *t, lep_io_conn_t *ic, io_work_t *w, bool may_leave)
{
    while (w) {
        if (may_leave && lepi_io_leaving(t)) {
            io_work_t *tail = w;
            while (tail->next)
                tail = tail->next;
            pthread_mutex_lock(&ic->wlock);
            tail->next = ic->work;
            if (!ic->work)
                ic->work_tail = tail;
            ic->work = w;
            pthread_mutex_unlock(&ic->wlock);
            ic->busy = true;
            return;
        }
        io_work_t *next = w->next;
        w->fn(w->ctx);
        lep_free(w);
        w = next;
    }
}

static void
run_timers(io_thread_t *t, lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    int64_t now = lep_proactor_now_ms();
    for (;;) {
        if (lepi_io_leaving(t)) {
            ic->busy = true;
            return;
        }
        pthread_mutex_lock(&p->lock);
        if (!ic->timers.n || ic->timers.v[0].due > now) {
            pthread_mutex_unlock(&p->lock);
            return;
        }
        io_timer_t tm = lepi_timers_pop(&ic->timers);
        pthread_mutex_unlock(&p->lock);
        tm.fn(tm.ctx);
    }
}

/* ------------------------------------------------------------------ */
/* Attempts and their end                                              */

static uint64_t
next_rand(lep_io_conn_t *ic)
{
    uint64_t x = ic->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return ic->rng = x;
}

/* After the n-th consecutive failure: min(max, initial * mult^(n-1)),
 * jittered into [d/2, d].  After losing an established connection (n
 * 0) the initial delay: a peer that accepts and drops at once must not
 * cause a tight loop. */
static uint64_t
backoff(lep_io_conn_t *ic)
{
    uint64_t d = ic->rc.initial_delay_ms, max = ic->rc.max_delay_ms;
    uint64_t mult = ic->rc.multiplier ? ic->rc.multiplier : 1;
    for (uint32_t i = 1; i < ic->attempt && d < max; i++)
        d *= mult;
    if (d > max)
        d = max;
    if (!d)
        return 0;
    uint64_t lo = d / 2;
    return lo + next_rand(ic) % (d - lo + 1);
}

static bool
may_reconnect(lep_io_conn_t *ic)
{
    if (!ic->rc.enabled || atomic_load(&ic->cancel))
        return false;
    if (ic->end_cause == END_LOCAL) /* the application closed first */
        return false;
    return !ic->rc.max_attempts || ic->attempt < ic->rc.max_attempts;
}

/* The final on_disconnected is next: no more timers. */
static void
close_timers(lep_io_conn_t *ic)
{
    pthread_mutex_lock(&ic->p->lock);
    ic->timers_closed = true;
    pthread_mutex_unlock(&ic->p->lock);
}

/* The attempt's transport is over: tell the application, then wait for
 * the next attempt or end for good (PH_DONE). */
static void
end_attempt(io_thread_t *t, lep_io_conn_t *ic)
{
    if (ic->c) {
        close_engine_io(ic);
        dispatch(t, ic, false);
    }
    release_socket(ic);
    int err = ic->os_error;
    const char *reason = ic->reason;
    if (!err && ic->transport_error) {
        err = EPROTO;
        const lep_condition_t *cond = lep_conn_local_condition(ic->c);
        if (lep_condition_set(cond))
            snprintf(ic->reason, sizeof ic->reason, "transport error: %.*s %.*s",
                     (int)cond->name.len, (const char *)cond->name.ptr,
                     (int)cond->description.len, (const char *)cond->description.ptr);
        else
            snprintf(ic->reason, sizeof ic->reason, "transport error");
    }
    if (!err)
        reason = "closed";
    bool success = ic->opened;
    if (!success)
        ic->attempt++;
    bool again = may_reconnect(ic);
    ic->reconnecting = again;
    /* Items queued now run before on_disconnected, in the closed
     * engine's context; a reconnecting connection keeps its queue. */
    run_work(t, ic, take_work(ic, !again), false);
    if (ic->c)
        dispatch(t, ic, false);
    if (!again)
        close_timers(ic);
    ic->abort_req = false; /* this attempt is over; an abort from now on ends the wait */
    if (ic->handler.on_disconnected)
        ic->handler.on_disconnected(ic->ctx, ic, err, reason);
    if (again && (atomic_load(&ic->cancel) || ic->abort_req)) {
        again = false; /* cancelled or aborted from on_disconnected */
        ic->reconnecting = false;
        close_timers(ic);
        run_work(t, ic, take_work(ic, true), false);
    }
    lep_conn_free(ic->c);
    ic->c = NULL;
    ic->tick_deadline = -1;
    if (!again) {
        ic->phase = PH_DONE;
        return;
    }
    if (!success && ic->naddrs)
        ic->addr_index = (ic->addr_index + 1) % ic->naddrs;
    ic->phase = PH_WAIT;
    ic->reconnect_due = lep_proactor_now_ms() + (int64_t)backoff(ic);
}

/* Ends for good while no attempt runs. */
static void
end_waiting(io_thread_t *t, lep_io_conn_t *ic, int err, const char *reason)
{
    ic->reconnecting = false;
    run_work(t, ic, take_work(ic, true), false);
    close_timers(ic);
    if (ic->handler.on_disconnected)
        ic->handler.on_disconnected(ic->ctx, ic, err, reason);
    ic->phase = PH_DONE;
}

/* A failure before there is a socket to wait on. */
static void
fail_early(io_thread_t *t, lep_io_conn_t *ic, int err, const char *what)
{
    set_reason(ic, err, what);
    close_engine_io(ic);
    end_attempt(t, ic);
}

static void
start_attempt(io_thread_t *t, lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    ic->read_closed = ic->write_closed = ic->want_write = false;
    ic->transport_error = ic->opened = ic->abort_req = false;
    ic->end_cause = END_NONE;
    ic->os_error = 0;
    ic->reason[0] = 0;
    ic->tick_deadline = ic->reconnect_due = -1;
    ic->phase = PH_CONNECTING;
    const lep_io_addr_t *a = &ic->addrs[ic->addr_index];
    int rc = lep_conn_new(&ic->c, &ic->copts.o);
    if (rc) {
        ic->c = NULL;
        fail_early(t, ic, ENOMEM, "new connection");
        return;
    }
    if (ic->handler.on_setup && (rc = ic->handler.on_setup(ic->ctx, ic, ic->c)) != 0) {
        lep_conn_free(ic->c);
        ic->c = NULL;
        ic->os_error = ECANCELED;
        snprintf(ic->reason, sizeof ic->reason, "on_setup refused: %s", lep_strerror(rc));
        close_engine_io(ic);
        end_attempt(t, ic);
        return;
    }
    int fd, gai;
    struct sockaddr_storage sa;
    socklen_t salen;
    int e = lepi_sock_open(a->host, a->port, &fd, &sa, &salen, &gai);
    if (e) {
        if (gai) {
            ic->os_error = EHOSTUNREACH;
            snprintf(ic->reason, sizeof ic->reason, "resolve %s: %s", a->host,
                     gai_strerror(gai));
        }
        fail_early(t, ic, e, "socket");
        return;
    }
    ic->fd = fd;
    /* Before the socket is in epoll: an unconnected socket reports
     * EPOLLOUT|EPOLLHUP, which would read as a refused connect. */
    int cerr = lepi_sock_start(fd, &sa, salen);
    pthread_mutex_lock(&p->lock);
    ic->slot = lepi_slot_alloc(p, &ic->task);
    pthread_mutex_unlock(&p->lock);
    if (!ic->slot) {
        close(fd);
        ic->fd = -1;
        fail_early(t, ic, ENOMEM, "register socket");
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLONESHOT, .data.u64 = ic->slot};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        e = errno;
        release_socket(ic); /* DEL of an unregistered fd fails harmlessly */
        fail_early(t, ic, e, "register socket");
        return;
    }
    ic->armed = true;
    ic->registered = EPOLLOUT;
    if (cerr && cerr != EINPROGRESS) {
        set_reason(ic, cerr, "connect");
        close_engine_io(ic);
        ic->phase = PH_OPEN; /* the engine turn ends the attempt */
    }
}

/* ------------------------------------------------------------------ */
/* A turn                                                              */

static void
engine_turn(io_thread_t *t, lep_io_conn_t *ic)
{
    int n = 0;
    for (int round = 0; round < ENGINE_ROUNDS; round++) {
        if (ic->abort_req) {
            ic->abort_req = false;
            set_reason(ic, ECONNABORTED, "aborted");
            close_engine_io(ic);
            if (ic->phase == PH_CONNECTING)
                ic->phase = PH_OPEN;
        }
        if (ic->phase == PH_CONNECTING)
            return;
        /* Handlers that keep making events (a sender refilled on every
         * flow) get a bounded turn; then the connection is re-queued so
         * that other tasks are served meanwhile. */
        n = dispatch(t, ic, true);
        ic->tick_deadline = lep_conn_tick(ic->c, t->now);
        n += dispatch(t, ic, true);
        flush(ic);
        n += dispatch(t, ic, true);
        if (!n || t->leaving)
            break;
    }
    if (n || t->leaving || ic->abort_req) {
        ic->busy = true;
        return;
    }
    bool done = lep_conn_finished(ic->c) || (ic->read_closed && ic->write_closed) ||
                (ic->read_closed && !ic->want_write);
    if (done)
        end_attempt(t, ic);
}

static void
wait_step(io_thread_t *t, lep_io_conn_t *ic, bool may_start)
{
    if (ic->abort_req) {
        ic->abort_req = false;
        end_waiting(t, ic, ECONNABORTED, "aborted");
    } else if (atomic_load(&ic->cancel)) {
        end_waiting(t, ic, ECANCELED, "reconnect cancelled");
    } else if (may_start && ic->reconnect_due >= 0 &&
               lep_proactor_now_ms() >= ic->reconnect_due) {
        if (lepi_io_leaving(t))
            ic->busy = true;
        else
            start_attempt(t, ic);
    }
}

static void
conn_step(io_thread_t *t, lep_io_conn_t *ic, uint32_t flags, uint32_t io)
{
    if (flags & TF_ABORT)
        ic->abort_req = true;
    if (ic->phase == PH_ACCEPTED) {
        ic->phase = PH_OPEN;
        if (ic->handler.on_connected)
            ic->handler.on_connected(ic->ctx, ic);
    }
    if (io)
        conn_io(t, ic, io);
    if (flags & TF_WORK)
        run_work(t, ic, take_work(ic, false), true);
    if (flags & TF_DUE)
        run_timers(t, ic);
    if (ic->phase == PH_WAIT)
        wait_step(t, ic, true);
    if (ic->phase == PH_CONNECTING || ic->phase == PH_OPEN)
        engine_turn(t, ic);
    if (ic->phase == PH_WAIT)
        wait_step(t, ic, false);
}

/* Under p->lock: the earliest time ic needs a turn, INT64_MAX: none. */
static int64_t
conn_deadline_locked(const lep_io_conn_t *ic)
{
    int64_t d = INT64_MAX;
    if (ic->c && ic->tick_deadline >= 0)
        d = ic->tick_deadline;
    if (ic->timers.n && ic->timers.v[0].due < d)
        d = ic->timers.v[0].due;
    if (ic->phase == PH_WAIT && ic->reconnect_due >= 0 && ic->reconnect_due < d)
        d = ic->reconnect_due;
    return d;
}

/* The connection ended for good: out of every proactor structure; the
 * memory goes with the last reference. */
static void
conn_finish(lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&ic->wlock);
    io_work_t *late = ic->work; /* nothing can be queued after the close */
    ic->work = ic->work_tail = NULL;
    ic->work_closed = true;
    pthread_mutex_unlock(&ic->wlock);
    free_work(late);
    pthread_mutex_lock(&p->lock);
    ic->ended = true; /* stays "working": nothing queues it any more */
    lepi_dl_remove(p, ic);
    io_timer_t *tv = ic->timers.v; /* dropped without running */
    memset(&ic->timers, 0, sizeof ic->timers);
    if (ic->prev)
        ic->prev->next = ic->next;
    else
        p->conns = ic->next;
    if (ic->next)
        ic->next->prev = ic->prev;
    ic->prev = ic->next = NULL;
    p->nconns--;
    ic->linked = false;
    lepi_maybe_inactive_locked(p);
    pthread_mutex_unlock(&p->lock);
    lep_free(tv);
    drop_ref(ic);
}

void
lepi_conn_turn(io_thread_t *t, lep_io_conn_t *ic, uint32_t flags, uint32_t io)
{
    lep_proactor_t *p = ic->p;
    for (int round = 0;; round++) {
        t->now = lep_proactor_now_ms();
        if (io)
            ic->armed = false; /* its one-shot registration fired */
        conn_step(t, ic, flags, io);
        if (ic->phase == PH_DONE) {
            conn_finish(ic);
            return;
        }
        /* Re-armed before letting go: events from here on find the
         * connection claimed and only set flags that are taken below. */
        rearm(ic);
        pthread_mutex_lock(&p->lock);
        flags = ic->task.flags;
        io = ic->task.io_events;
        ic->task.flags = ic->task.io_events = 0;
        int64_t d = conn_deadline_locked(ic);
        if (d != INT64_MAX && d <= lep_proactor_now_ms())
            flags |= TF_DUE;
        bool busy = ic->busy;
        ic->busy = false;
        if ((flags || io) && !busy && round + 1 < TURN_ROUNDS && !lepi_io_leaving(t)) {
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        if (busy)
            flags |= TF_WAKE | TF_WORK | TF_DUE;
        if (d != INT64_MAX && !(flags & TF_DUE) && (ic->hidx == HIDX_NONE || d < ic->hkey))
            lepi_dl_set(p, ic, d); /* a later deadline is left: it fires once, harmlessly */
        ic->task.working = false;
        bool kick = false;
        if (flags || io)
            kick = lepi_kick_locked(p, lepi_sched_locked(p, &ic->task, flags, io));
        pthread_mutex_unlock(&p->lock);
        /* ic may belong to another thread now. */
        if (kick)
            lepi_io_wake(p);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* Making connections                                                  */

void
lepi_conn_accepted(lep_proactor_t *p, lep_listener_t *l, int fd)
{
    lep_io_conn_t *ic = conn_alloc(p, &l->handler, l->ctx);
    if (!ic) {
        close(fd);
        return;
    }
    ic->fd = fd;
    if (lep_conn_new(&ic->c, &l->copts.o) != 0 ||
        (ic->handler.on_setup && ic->handler.on_setup(ic->ctx, ic, ic->c) != 0)) {
        lepi_conn_discard(ic); /* refused: closed silently */
        return;
    }
    ic->phase = PH_ACCEPTED;
    if (conn_register(p, ic, EPOLLIN, TF_WAKE) != 0)
        lepi_conn_discard(ic);
}

int
lep_proactor_connect(lep_proactor_t *p, const char *host, uint16_t port,
                     const lep_conn_opts_t *copts, const lep_io_handler_t *h, void *ctx,
                     lep_io_conn_t **out)
{
    if (out)
        *out = NULL;
    if (!p || !host || !*host)
        return LEP_ERR_INVALID;
    if (copts && copts->server)
        return LEP_ERR_INVALID;
    int fd, gai;
    struct sockaddr_storage sa;
    socklen_t salen;
    if (lepi_sock_open(host, port, &fd, &sa, &salen, &gai) != 0)
        return LEP_ERR_IO;
    lep_io_conn_t *ic = conn_alloc(p, h, ctx);
    if (!ic) {
        close(fd);
        return LEP_ERR_NOMEM;
    }
    ic->fd = fd;
    int rc = set_addrs(ic, &(lep_io_addr_t){host, port}, 1);
    if (!rc)
        rc = lep_conn_new(&ic->c, copts);
    if (!rc && ic->handler.on_setup)
        rc = ic->handler.on_setup(ctx, ic, ic->c);
    if (rc) {
        lepi_conn_discard(ic); /* a hold taken in on_setup keeps the memory */
        return rc;
    }
    /* The connect starts once on_setup accepted it. */
    ic->phase = PH_CONNECTING;
    uint32_t flags = 0;
    int cerr = lepi_sock_start(fd, &sa, salen);
    if (cerr && cerr != EINPROGRESS) {
        set_reason(ic, cerr, "connect");
        close_engine_io(ic);
        ic->phase = PH_OPEN;
        flags = TF_WAKE;
    }
    /* Connected at once (possible on loopback) or not: the loop reports
     * it, so no callback runs inside this call. */
    if ((rc = conn_register(p, ic, EPOLLOUT, flags)) != 0) {
        lepi_conn_discard(ic);
        return rc;
    }
    if (out)
        *out = ic;
    return 0;
}

void
lep_io_connect_opts_init(lep_io_connect_opts_t *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->reconnect.enabled = true;
    o->reconnect.initial_delay_ms = 100;
    o->reconnect.max_delay_ms = 10000;
    o->reconnect.multiplier = 2;
    o->reconnect.max_attempts = 0;
}

int
lep_proactor_connect_opts(lep_proactor_t *p, const lep_io_connect_opts_t *o,
                          const lep_io_handler_t *h, void *ctx, lep_io_conn_t **out)
{
    if (out)
        *out = NULL;
    if (!p || !o || !o->addrs || !o->naddrs)
        return LEP_ERR_INVALID;
    for (size_t i = 0; i < o->naddrs; i++)
        if (!o->addrs[i].host || !*o->addrs[i].host)
            return LEP_ERR_INVALID;
    if (o->copts && o->copts->server)
        return LEP_ERR_INVALID;
    lep_io_conn_t *ic = conn_alloc(p, h, ctx);
    if (!ic)
        return LEP_ERR_NOMEM;
    int rc = set_addrs(ic, o->addrs, o->naddrs);
    if (!rc && (rc = lepi_copts_copy(&ic->copts, o->copts, false)) == 0)
        ic->has_copts = true;
    if (rc) {
        conn_free_mem(ic);
        return rc;
    }
    ic->rc = o->reconnect;
    ic->reconnect_due = 0; /* the first attempt at once, from the loop */
    if ((rc = conn_register(p, ic, 0, TF_WAKE)) != 0) {
        conn_free_mem(ic);
        return rc;
    }
    if (out)
        *out = ic;
    return 0;
}
