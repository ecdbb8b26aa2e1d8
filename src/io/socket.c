/* Sockets: listeners, connects, and moving bytes between a socket and
 * its lep_conn_t. */
#define _GNU_SOURCE /* accept4 */
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Reads per readiness before other sockets get their turn. */
enum { READS_PER_EVENT = 4, IOV_MAX_OUT = 32 };

static char *
str_dup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = lep_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void
set_reason(lep_io_conn_t *ic, int err, const char *what)
{
    if (ic->os_error)
        return; /* the first cause is the one worth telling */
    ic->os_error = err;
    snprintf(ic->reason, sizeof ic->reason, "%s: %s", what, strerror(err));
}

lep_conn_t *lep_io_conn_engine(const lep_io_conn_t *ic) { return ic->c; }
lep_proactor_t *lep_io_conn_proactor(const lep_io_conn_t *ic) { return ic->p; }
void *lep_io_conn_context(const lep_io_conn_t *ic) { return ic->ctx; }

void
lep_io_conn_wake(lep_io_conn_t *ic)
{
    if (!ic || ic->dirty || ic->dead)
        return;
    lep_proactor_t *p = ic->p;
    ic->dirty = true;
    ic->ready_next = NULL;
    if (p->ready_tail)
        p->ready_tail->ready_next = ic;
    else
        p->ready = ic;
    p->ready_tail = ic;
}

static void
update_interest(lep_io_conn_t *ic)
{
    uint32_t want = 0;
    if (!ic->read_closed && !ic->connecting)
        want |= EPOLLIN;
    if (ic->connecting || (ic->want_write && !ic->write_closed))
        want |= EPOLLOUT;
    if (want == ic->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = &ic->h};
    if (epoll_ctl(ic->p->epfd, EPOLL_CTL_MOD, ic->h.fd, &ev) == 0)
        ic->events = want;
}

/* Both directions of the socket are over for the engine. */
static void
close_engine_io(lep_io_conn_t *ic)
{
    if (!ic->read_closed) {
        ic->read_closed = true;
        lep_conn_input_closed(ic->c);
    }
    if (!ic->write_closed) {
        ic->write_closed = true;
        lep_conn_output_closed(ic->c);
    }
}

static int
dispatch(lep_io_conn_t *ic)
{
    int n = 0;
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(ic->c))) {
        n++;
        if (ev->type == LEP_EVENT_TRANSPORT_ERROR)
            ic->transport_error = true;
        if (ic->handler.on_event)
            ic->handler.on_event(ic->ctx, ic, ev);
    }
    return n;
}

static void
flush(lep_io_conn_t *ic)
{
    ic->want_write = false;
    if (ic->write_closed || ic->connecting)
        return;
    for (;;) {
        struct iovec iov[IOV_MAX_OUT];
        int k = lep_conn_output_iov(ic->c, iov, IOV_MAX_OUT);
        if (k <= 0)
            return;
        /* sendmsg is writev with MSG_NOSIGNAL: a peer that went away is
         * an EPIPE here, never a SIGPIPE for the application. */
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t w = sendmsg(ic->h.fd, &mh, MSG_NOSIGNAL);
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
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&p->lock);
    if (ic->work_closed) {
        pthread_mutex_unlock(&p->lock);
        lep_free(w);
        return LEP_ERR_STATE;
    }
    if (ic->work_tail)
        ic->work_tail->next = w;
    else
        ic->work = w;
    ic->work_tail = w;
    bool was_queued = ic->work_queued;
    if (!was_queued) {
        ic->work_queued = true;
        ic->work_next = NULL;
        if (p->conn_work_tail)
            p->conn_work_tail->work_next = ic;
        else
            p->conn_work = ic;
        p->conn_work_tail = ic;
    }
    pthread_mutex_unlock(&p->lock);
    if (!was_queued)
        lepi_io_wake(p);
    return 0;
}

/* Takes the connection's queue; close: no more items accepted. */
static io_work_t *
take_conn_work(lep_io_conn_t *ic, bool close)
{
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&p->lock);
    io_work_t *w = ic->work;
    ic->work = ic->work_tail = NULL;
    if (close)
        ic->work_closed = true;
    pthread_mutex_unlock(&p->lock);
    return w;
}

static void
run_items(io_work_t *w)
{
    while (w) {
        io_work_t *next = w->next;
        w->fn(w->ctx);
        lep_free(w);
        w = next;
    }
}

void
lepi_io_run_conn_work(lep_proactor_t *p)
{
    pthread_mutex_lock(&p->lock);
    lep_io_conn_t *ic = p->conn_work;
    p->conn_work = p->conn_work_tail = NULL;
    for (lep_io_conn_t *c = ic; c; c = c->work_next)
        c->work_queued = false;
    pthread_mutex_unlock(&p->lock);
    /* A connection ended since its items were queued ran them in its
     * teardown and is not on this list any more (teardown unlinks it). */
    while (ic) {
        lep_io_conn_t *next = ic->work_next;
        ic->work_next = NULL;
        run_items(take_conn_work(ic, false));
        lep_io_conn_wake(ic);
        ic = next;
    }
}

static void
unlink_conn_work(lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    pthread_mutex_lock(&p->lock);
    if (ic->work_queued) {
        lep_io_conn_t **pp = &p->conn_work;
        lep_io_conn_t *prev = NULL;
        while (*pp && *pp != ic) {
            prev = *pp;
            pp = &(*pp)->work_next;
        }
        if (*pp) {
            *pp = ic->work_next;
            if (p->conn_work_tail == ic)
                p->conn_work_tail = prev;
        }
        ic->work_queued = false;
    }
    pthread_mutex_unlock(&p->lock);
}

static void
teardown(lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    close_engine_io(ic);
    dispatch(ic);
    unlink_conn_work(ic);
    run_items(take_conn_work(ic, true));
    dispatch(ic);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, ic->h.fd, NULL);
    close(ic->h.fd);
    ic->h.fd = -1;
    ic->h.kind = 0;
    ic->dead = true;
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
    if (ic->handler.on_disconnected)
        ic->handler.on_disconnected(ic->ctx, ic, err, reason);
    if (ic->prev)
        ic->prev->next = ic->next;
    else
        p->conns = ic->next;
    if (ic->next)
        ic->next->prev = ic->prev;
    p->nconns--;
    ic->prev = NULL;
    ic->next = p->dead;
    p->dead = ic;
}

void
lepi_io_conn_process(lep_io_conn_t *ic)
{
    if (ic->dead)
        return;
    if (!ic->connecting) {
        /* Handlers that keep making events (a sender refilled on every
         * flow) get a bounded turn; the rest waits for the next round of
         * the loop so other sockets are served meanwhile. */
        int n = 0;
        for (int round = 0; round < 64; round++) {
            n = dispatch(ic);
            ic->deadline = lep_conn_tick(ic->c, ic->p->now);
            n += dispatch(ic);
            flush(ic);
            n += dispatch(ic);
            if (!n)
                break;
        }
        if (n) {
            update_interest(ic);
            lep_io_conn_wake(ic);
            return;
        }
    }
    bool done = lep_conn_finished(ic->c) || (ic->read_closed && ic->write_closed) ||
                (ic->read_closed && !ic->want_write);
    if (done) {
        teardown(ic);
        return;
    }
    update_interest(ic);
}

static void
conn_read(lep_io_conn_t *ic)
{
    lep_proactor_t *p = ic->p;
    for (int i = 0; i < READS_PER_EVENT && !ic->read_closed; i++) {
        ssize_t r = read(ic->h.fd, p->rbuf, p->rbuf_len);
        if (r > 0) {
            size_t used;
            lep_conn_feed(ic->c, p->rbuf, (size_t)r, &used);
            if ((size_t)r < p->rbuf_len)
                break;
        } else if (r == 0) {
            ic->read_closed = true;
            lep_conn_input_closed(ic->c);
            if (!lep_conn_finished(ic->c) && lep_conn_remote_state(ic->c) != LEP_STATE_CLOSED)
                set_reason(ic, ECONNRESET, "read: peer closed the socket before AMQP close");
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

void
lepi_io_conn_event(lep_io_conn_t *ic, uint32_t events)
{
    if (ic->dead)
        return;
    if (ic->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(ic->h.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (!err && (events & (EPOLLERR | EPOLLHUP)))
            err = ECONNREFUSED;
        if (err) {
            set_reason(ic, err, "connect");
            close_engine_io(ic);
            ic->connecting = false;
            lep_io_conn_wake(ic);
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        ic->connecting = false;
        if (ic->handler.on_connected)
            ic->handler.on_connected(ic->ctx, ic);
        lep_io_conn_wake(ic);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(ic);
    if ((events & EPOLLERR) && !ic->read_closed) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(ic->h.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        set_reason(ic, err ? err : EIO, "socket");
        close_engine_io(ic);
    }
    lep_io_conn_wake(ic);
}

void
lepi_io_conn_free(lep_io_conn_t *ic)
{
    if (ic->h.fd >= 0)
        close(ic->h.fd);
    /* Proactor freed with items pending: dropped, not run. */
    for (io_work_t *w = ic->work; w;) {
        io_work_t *next = w->next;
        lep_free(w);
        w = next;
    }
    lep_conn_free(ic->c);
    lep_free(ic);
}

void
lep_io_conn_abort(lep_io_conn_t *ic)
{
    if (!ic || ic->dead)
        return;
    set_reason(ic, ECONNABORTED, "aborted");
    close_engine_io(ic);
    lep_io_conn_wake(ic);
}

/* Makes the engine and runs on_setup; the socket is added by the
 * caller.  On error nothing is left behind (fd not closed). */
static int
conn_make(lep_proactor_t *p, int fd, const lep_conn_opts_t *copts, const lep_io_handler_t *h,
          void *ctx, lep_io_conn_t **out)
{
    lep_io_conn_t *ic = lep_malloc(sizeof *ic);
    if (!ic)
        return LEP_ERR_NOMEM;
    memset(ic, 0, sizeof *ic);
    ic->h.kind = H_CONN;
    ic->h.fd = fd;
    ic->p = p;
    ic->ctx = ctx;
    ic->deadline = -1;
    if (h)
        ic->handler = *h;
    int rc = lep_conn_new(&ic->c, copts);
    if (rc) {
        lep_free(ic);
        return rc;
    }
    if (ic->handler.on_setup && (rc = ic->handler.on_setup(ctx, ic, ic->c)) != 0) {
        lep_conn_free(ic->c);
        lep_free(ic);
        return rc;
    }
    *out = ic;
    return 0;
}

static int
conn_register(lep_io_conn_t *ic, uint32_t events)
{
    lep_proactor_t *p = ic->p;
    struct epoll_event ev = {.events = events, .data.ptr = &ic->h};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, ic->h.fd, &ev) < 0)
        return LEP_ERR_IO;
    ic->events = events;
    ic->next = p->conns;
    if (p->conns)
        p->conns->prev = ic;
    p->conns = ic;
    p->nconns++;
    return 0;
}

static void
tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
    char svc[8];
    snprintf(svc, sizeof svc, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, svc, &hints, &ai) != 0 || !ai)
        return LEP_ERR_IO;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd < 0) {
        freeaddrinfo(ai);
        return LEP_ERR_IO;
    }
    tune_socket(fd);
    lep_io_conn_t *ic;
    int rc = conn_make(p, fd, copts, h, ctx, &ic);
    if (rc) {
        freeaddrinfo(ai);
        close(fd);
        return rc;
    }
    int cr = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int cerr = cr < 0 ? errno : 0;
    freeaddrinfo(ai);
    ic->connecting = true;
    if ((rc = conn_register(ic, EPOLLOUT)) != 0) {
        lepi_io_conn_free(ic);
        return rc;
    }
    if (cr == 0) {
        /* Connected at once (possible on loopback): report it from the
         * loop like the asynchronous case, so callbacks never run
         * inside this call. */
        ic->connecting = true;
    } else if (cerr != EINPROGRESS) {
        set_reason(ic, cerr, "connect");
        close_engine_io(ic);
        ic->connecting = false;
        lep_io_conn_wake(ic);
    }
    p->inactive_reported = false;
    if (out)
        *out = ic;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                            */

static int
copy_opts(lep_listener_t *l, const lep_conn_opts_t *copts)
{
    if (copts)
        l->copts = *copts;
    else
        lep_conn_opts_init(&l->copts);
    l->copts.server = true;
    if (!copts)
        return 0;
    if ((copts->container_id && !(l->container_id = str_dup(copts->container_id))) ||
        (copts->hostname && !(l->hostname = str_dup(copts->hostname))))
        return LEP_ERR_NOMEM;
    l->copts.container_id = l->container_id;
    l->copts.hostname = l->hostname;
    lep_bytes_t *views[3] = {&l->copts.offered_capabilities, &l->copts.desired_capabilities,
                             &l->copts.properties};
    size_t total = 0;
    for (int i = 0; i < 3; i++)
        total += views[i]->len;
    if (!total)
        return 0;
    if (!(l->blob = lep_malloc(total)))
        return LEP_ERR_NOMEM;
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        if (views[i]->len)
            memcpy(l->blob + off, views[i]->ptr, views[i]->len);
        views[i]->ptr = l->blob + off;
        off += views[i]->len;
    }
    return 0;
}

void
lepi_io_listener_free(lep_listener_t *l)
{
    if (l->h.fd >= 0)
        close(l->h.fd);
    lep_free(l->container_id);
    lep_free(l->hostname);
    lep_free(l->blob);
    lep_free(l);
}

int
lep_proactor_listen(lep_proactor_t *p, const char *host, uint16_t port,
                    const lep_conn_opts_t *copts, const lep_io_handler_t *h, void *ctx,
                    lep_listener_t **out)
{
    if (out)
        *out = NULL;
    if (!p)
        return LEP_ERR_INVALID;
    char svc[8];
    snprintf(svc, sizeof svc, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host && *host ? host : NULL, svc, &hints, &ai) != 0 || !ai)
        return LEP_ERR_IO;
    /* With no host, prefer the IPv6 wildcard: it takes IPv4 too. */
    struct addrinfo *pick = ai;
    if (!host || !*host)
        for (struct addrinfo *a = ai; a; a = a->ai_next)
            if (a->ai_family == AF_INET6) {
                pick = a;
                break;
            }
    int fd = socket(pick->ai_family, pick->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    pick->ai_protocol);
    if (fd < 0) {
        freeaddrinfo(ai);
        return LEP_ERR_IO;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (pick->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, pick->ai_addr, pick->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        freeaddrinfo(ai);
        close(fd);
        return LEP_ERR_IO;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        close(fd);
        return LEP_ERR_IO;
    }
    lep_listener_t *l = lep_malloc(sizeof *l);
    if (!l) {
        close(fd);
        return LEP_ERR_NOMEM;
    }
    memset(l, 0, sizeof *l);
    l->h.kind = H_LISTENER;
    l->h.fd = fd;
    l->p = p;
    l->ctx = ctx;
    if (h)
        l->handler = *h;
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    int rc = copy_opts(l, copts);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->h};
    if (!rc && epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        rc = LEP_ERR_IO;
    if (rc) {
        lepi_io_listener_free(l);
        return rc;
    }
    l->next = p->listeners;
    if (p->listeners)
        p->listeners->prev = l;
    p->listeners = l;
    p->nlisteners++;
    p->inactive_reported = false;
    if (out)
        *out = l;
    return 0;
}

uint16_t
lep_listener_port(const lep_listener_t *l)
{
    return l ? l->port : 0;
}

void
lep_listener_close(lep_listener_t *l)
{
    if (!l)
        return;
    lep_proactor_t *p = l->p;
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, l->h.fd, NULL);
    close(l->h.fd);
    l->h.fd = -1;
    l->h.kind = 0;
    if (l->prev)
        l->prev->next = l->next;
    else
        p->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    p->nlisteners--;
    /* An event for it may still sit in the current epoll batch. */
    l->prev = NULL;
    l->next = p->dead_listeners;
    p->dead_listeners = l;
}

void
lepi_io_listener_event(lep_listener_t *l)
{
    lep_proactor_t *p = l->p;
    for (int i = 0; i < 64 && l->h.kind == H_LISTENER; i++) {
        int fd = accept4(l->h.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* EAGAIN: drained.  Other errors (EMFILE, a connection reset
             * before accept) leave the listener as it is; level-triggered
             * epoll retries. */
            return;
        }
        tune_socket(fd);
        lep_io_conn_t *ic;
        if (conn_make(p, fd, &l->copts, &l->handler, l->ctx, &ic) != 0) {
            close(fd);
            continue;
        }
        if (conn_register(ic, EPOLLIN) != 0) {
            lepi_io_conn_free(ic);
            continue;
        }
        if (ic->handler.on_connected)
            ic->handler.on_connected(ic->ctx, ic);
        lep_io_conn_wake(ic);
    }
}
