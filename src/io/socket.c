/* Sockets: resolving and connecting, listeners and accepting. */
#define _GNU_SOURCE /* accept4 */
#include "common/common_internal.h"
#include "io/io_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    ACCEPTS_PER_TURN = 64, /* before other tasks get their turn */
    ACCEPT_PAUSE_MS = 100, /* out of descriptors: wait, do not spin */
};

int
lepi_copts_copy(io_copts_t *d, const lep_conn_opts_t *s, bool server)
{
    memset(d, 0, sizeof *d);
    if (s)
        d->o = *s;
    else
        lep_conn_opts_init(&d->o);
    d->o.server = server;
    if (!s)
        return 0;
    if ((s->container_id && !(d->container_id = lepi_strdup(s->container_id))) ||
        (s->hostname && !(d->hostname = lepi_strdup(s->hostname)))) {
        lepi_copts_fini(d);
        return LEP_ERR_NOMEM;
    }
    d->o.container_id = d->container_id;
    d->o.hostname = d->hostname;
    lep_bytes_t *views[3] = {&d->o.offered_capabilities, &d->o.desired_capabilities,
                             &d->o.properties};
    size_t total = 0;
    for (int i = 0; i < 3; i++)
        total += views[i]->len;
    if (!total)
        return 0;
    if (!(d->blob = lep_malloc(total))) {
        lepi_copts_fini(d);
        return LEP_ERR_NOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        if (views[i]->len)
            memcpy(d->blob + off, views[i]->ptr, views[i]->len);
        views[i]->ptr = d->blob + off;
        off += views[i]->len;
    }
    return 0;
}

void
lepi_copts_fini(io_copts_t *d)
{
    lep_free(d->container_id);
    lep_free(d->hostname);
    lep_free(d->blob);
    memset(d, 0, sizeof *d);
}

void
lepi_tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Resolves host:port (blocking getaddrinfo; numeric addresses never
 * block) and makes a non-blocking socket for its first address, kept in
 * *sa.  Returns 0, or an errno with *fd -1: for a resolution failure
 * EHOSTUNREACH and *gai_err the getaddrinfo code. */
int
lepi_sock_open(const char *host, uint16_t port, int *fd, struct sockaddr_storage *sa,
               socklen_t *salen, int *gai_err)
{
    *fd = -1;
    *gai_err = 0;
    char svc[8];
    snprintf(svc, sizeof svc, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, svc, &hints, &ai);
    if (g != 0 || !ai) {
        *gai_err = g ? g : EAI_NONAME;
        return EHOSTUNREACH;
    }
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   ai->ai_protocol);
    if (s < 0 || ai->ai_addrlen > sizeof *sa) {
        int e = s < 0 ? errno : EAFNOSUPPORT;
        if (s >= 0)
            close(s);
        freeaddrinfo(ai);
        return e;
    }
    lepi_tune_socket(s);
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *salen = ai->ai_addrlen;
    freeaddrinfo(ai);
    *fd = s;
    return 0;
}

/* Starts the connect: 0 (connected at once), EINPROGRESS, or the errno
 * connect() failed with. */
int
lepi_sock_start(int fd, const struct sockaddr_storage *sa, socklen_t salen)
{
    int r;
    do
        r = connect(fd, (const struct sockaddr *)sa, salen);
    while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
}

/* ------------------------------------------------------------------ */
/* Listeners                                                            */

void
lepi_listener_free(lep_listener_t *l)
{
    if (l->fd >= 0)
        close(l->fd);
    lepi_copts_fini(&l->copts);
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
    l->task.kind = TK_LISTENER;
    l->fd = fd;
    l->p = p;
    l->ctx = ctx;
    atomic_init(&l->closed, false);
    if (h)
        l->handler = *h;
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    int rc = lepi_copts_copy(&l->copts, copts, true);
    if (rc) {
        lepi_listener_free(l);
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    l->slot = lepi_slot_alloc(p, &l->task);
    pthread_mutex_unlock(&p->lock);
    if (!l->slot) {
        lepi_listener_free(l);
        return LEP_ERR_NOMEM;
    }
    /* Claimed by this thread until it is on the lists, so that an
     * early event only sets a flag. */
    l->task.working = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = l->slot};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        pthread_mutex_lock(&p->lock);
        lepi_slot_free(p, l->slot);
        pthread_mutex_unlock(&p->lock);
        lepi_listener_free(l);
        return LEP_ERR_IO;
    }
    pthread_mutex_lock(&p->lock);
    l->next = p->listeners;
    if (p->listeners)
        p->listeners->prev = l;
    p->listeners = l;
    p->nlisteners++;
    p->inactive_reported = false;
    l->task.working = false;
    bool kick = false;
    if (l->task.flags || l->task.io_events)
        kick = lepi_kick_locked(p, lepi_sched_locked(p, &l->task, 0, 0));
    pthread_mutex_unlock(&p->lock);
    if (kick)
        lepi_io_wake(p);
    if (out)
        *out = l;
    return 0;
}

uint16_t
lep_listener_port(const lep_listener_t *l)
{
    return l ? l->port : 0;
}

/* Under lock, l neither served nor queued: the socket goes now. */
static void
listener_finish_locked(lep_proactor_t *p, lep_listener_t *l)
{
    lepi_slot_free(p, l->slot);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, l->fd, NULL);
}

void
lep_listener_close(lep_listener_t *l)
{
    if (!l)
        return;
    lep_proactor_t *p = l->p;
    pthread_mutex_lock(&p->lock);
    if (atomic_exchange(&l->closed, true)) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    if (l->prev)
        l->prev->next = l->next;
    else
        p->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    p->nlisteners--;
    lepi_maybe_inactive_locked(p);
    /* Being served or queued: the thread that has it (or takes it off
     * the ready list) finishes the close. */
    lepi_listener_unpause_locked(p, l);
    bool now = !l->task.working && !l->task.queued;
    if (now)
        listener_finish_locked(p, l);
    pthread_mutex_unlock(&p->lock);
    if (now)
        lepi_listener_free(l);
}

/* Under lock: l waits on p->paused no more. */
void
lepi_listener_unpause_locked(lep_proactor_t *p, lep_listener_t *l)
{
    if (!l->paused)
        return;
    for (lep_listener_t **pp = &p->paused; *pp; pp = &(*pp)->paused_next)
        if (*pp == l) {
            *pp = l->paused_next;
            break;
        }
    l->paused = false;
    l->paused_next = NULL;
}

/* Under lock, from the timerfd: paused listeners whose time came try
 * accepting again.  Returns true if one was queued. */
bool
lepi_listeners_resume_locked(lep_proactor_t *p, int64_t now)
{
    bool pushed = false;
    for (lep_listener_t **pp = &p->paused; *pp;) {
        lep_listener_t *l = *pp;
        if (l->resume_at > now) {
            pp = &l->paused_next;
            continue;
        }
        *pp = l->paused_next;
        l->paused = false;
        l->paused_next = NULL;
        pushed |= lepi_sched_locked(p, &l->task, 0, EPOLLIN);
    }
    return pushed;
}

void
lepi_listener_turn(io_thread_t *t, lep_listener_t *l, uint32_t flags, uint32_t io)
{
    lep_proactor_t *p = l->p;
    (void)flags;
    for (;;) {
        bool starved = false;
        for (int i = 0; io && i < ACCEPTS_PER_TURN && !atomic_load(&l->closed); i++) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR) {
                    i--;
                    continue;
                }
                /* Out of descriptors or memory: the pending connection
                 * stays in the backlog, and a re-armed listener would
                 * fire again at once; wait a little instead.  EAGAIN:
                 * drained.  Other errors (a connection reset before
                 * accept) concern one connection only. */
                starved = errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                          errno == ENOMEM;
                if (starved || errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                continue;
            }
            lepi_tune_socket(fd);
            lepi_conn_accepted(p, l, fd);
        }
        bool closed = atomic_load(&l->closed);
        if (!closed && !starved) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = l->slot};
            epoll_ctl(p->epfd, EPOLL_CTL_MOD, l->fd, &ev);
        }
        pthread_mutex_lock(&p->lock);
        closed = atomic_load(&l->closed);
        if (closed) {
            l->task.working = false;
            listener_finish_locked(p, l);
            pthread_mutex_unlock(&p->lock);
            lepi_listener_free(l);
            return;
        }
        if (starved) {
            l->task.working = false;
            l->task.io_events = l->task.flags = 0; /* stale: it was not re-armed */
            l->resume_at = lep_proactor_now_ms() + ACCEPT_PAUSE_MS;
            l->paused = true;
            l->paused_next = p->paused;
            p->paused = l;
            lepi_timer_rearm_locked(p);
            pthread_mutex_unlock(&p->lock);
            return;
        }
        io = l->task.io_events;
        l->task.io_events = l->task.flags = 0;
        if (io && !lepi_io_leaving(t)) {
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        l->task.working = false;
        bool kick = false;
        if (io)
            kick = lepi_kick_locked(p, lepi_sched_locked(p, &l->task, 0, io));
        pthread_mutex_unlock(&p->lock);
        if (kick)
            lepi_io_wake(p);
        return;
    }
}
