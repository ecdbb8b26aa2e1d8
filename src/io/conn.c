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

void
lepi_conn_set_reason(lep_io_conn_t *ic, int err, const char *what)
{
    if (ic->os_error)
        return; /* the first cause is the one worth telling */
    ic->os_error = err;
    snprintf(ic->reason, sizeof ic->reason, "%s: %s", what, strerror(err));
}

/* ------------------------------------------------------------------ */
/* Bytes                                                               */

/* Both directions of the socket are over for the engine. */
void
lepi_conn_close_io(lep_io_conn_t *ic)
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
            lepi_conn_set_reason(ic, errno, "write");
            lepi_conn_close_io(ic);
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
            lepi_conn_set_reason(ic, errno, "read");
            lepi_conn_close_io(ic);
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
            lepi_conn_set_reason(ic, err, "connect");
            lepi_conn_close_io(ic);
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
        lepi_conn_set_reason(ic, err ? err : EIO, "socket");
        lepi_conn_close_io(ic);
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
        lepi_conn_close_io(ic);
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
    lepi_conn_set_reason(ic, err, what);
    lepi_conn_close_io(ic);
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
        lepi_conn_close_io(ic);
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
        lepi_conn_set_reason(ic, cerr, "connect");
        lepi_conn_close_io(ic);
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
            lepi_conn_set_reason(ic, ECONNABORTED, "aborted");
            lepi_conn_close_io(ic);
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
    lepi_conn_free_work(late);
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
    lepi_conn_drop_ref(ic);
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
