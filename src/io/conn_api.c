/* Connections from outside their turns: making and registering them,
 * the calls any thread may make on them, references.  Their turns (the
 * callbacks, bytes, attempts and reconnects) are in conn.c. */
#include "io/io_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

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

void
lepi_conn_free_work(io_work_t *w)
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
    lepi_conn_free_work(ic->work);
    lep_free(ic->timers.v);
    lep_free(ic->addrs);
    if (ic->has_copts)
        lepi_copts_fini(&ic->copts);
    pthread_mutex_destroy(&ic->wlock);
    lep_free(ic);
}

void
lepi_conn_drop_ref(lep_io_conn_t *ic)
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
        lepi_conn_drop_ref(ic);
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
    lepi_conn_free_work(w);
    pthread_mutex_lock(&ic->p->lock);
    io_timer_t *tv = ic->timers.v;
    memset(&ic->timers, 0, sizeof ic->timers);
    ic->ended = true;
    pthread_mutex_unlock(&ic->p->lock);
    lep_free(tv);
    ic->phase = PH_DONE;
    lepi_conn_drop_ref(ic);
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
/* Making connections                                                  */

/* "host:port" of the socket's peer ("[v6]:port"); "" when unknown. */
static void
peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "";
    out[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    }
}

const char *
lep_io_conn_peer(const lep_io_conn_t *ic)
{
    return ic->peer;
}

void
lepi_conn_accepted(lep_proactor_t *p, lep_listener_t *l, int fd)
{
    lep_io_conn_t *ic = conn_alloc(p, &l->handler, l->ctx);
    if (!ic) {
        close(fd);
        return;
    }
    ic->fd = fd;
    peer_name(fd, ic->peer, sizeof ic->peer);
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
        lepi_conn_set_reason(ic, cerr, "connect");
        lepi_conn_close_io(ic);
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
