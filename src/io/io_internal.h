/* Proactor internals shared by the files of src/io.
 *
 * Scheduling model.  Everything the loop serves is a task (io_task_t):
 * each connection, each listener, and one task for the proactor's own
 * work (injected functions, timers, on_notify, on_inactive).  A task is
 * served by at most one thread at a time: the thread that claims it
 * (working = true, under p->lock) owns every field marked "owner" until
 * it releases it.  Anything that wants a task served while it is not
 * claimed puts it on the ready list; wake-ups that arrive while it is
 * claimed only set flags (io_events, flags), and the owner takes them
 * before releasing, so nothing is lost and nothing runs concurrently.
 *
 * Sockets are registered with EPOLLONESHOT: the thread whose epoll_wait
 * returns a socket's event is the only one to see it until the owner
 * re-arms it.  epoll_event.data carries a slot id (index and generation
 * in a table under p->lock), never a pointer, so an event that was
 * already collected when its socket closed (or was replaced by a
 * reconnect) is recognised as stale and dropped instead of touching
 * freed memory.
 *
 * Time: one timerfd, armed for the earliest of the application timers
 * and the connections' deadlines (engine ticks, connection timers,
 * reconnect delays), which sit in an intrusive min-heap (index kept in
 * the connection).
 *
 * Lock order: a connection's wlock may be held while taking p->lock,
 * never the reverse. */
#ifndef LEPTON_IO_INTERNAL_H
#define LEPTON_IO_INTERNAL_H

#include <lepton/io.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

enum io_task_kind { TK_PROACTOR = 1, TK_LISTENER, TK_CONN };

/* Pending reasons to serve a task; set under p->lock. */
enum {
    TF_WAKE = 1u << 0,     /* engine state changed elsewhere: events and output */
    TF_WORK = 1u << 1,     /* the work queue became non-empty */
    TF_DUE = 1u << 2,      /* a deadline passed (timer, tick, reconnect) */
    TF_ABORT = 1u << 3,    /* lep_io_conn_abort from outside its context */
    TF_NOTIFY = 1u << 4,   /* proactor: on_notify */
    TF_INACTIVE = 1u << 5, /* proactor: maybe on_inactive */
};

typedef struct io_task {
    int kind;
    /* under p->lock */
    bool working, queued;
    uint32_t flags;     /* TF_* */
    uint32_t io_events; /* epoll events not yet taken by the owner */
    struct io_task *ready_next;
} io_task_t;

/* One thread inside lep_proactor_run(). */
typedef struct io_thread {
    lep_proactor_t *p;
    uint8_t *rbuf; /* per thread: reads never share a buffer */
    size_t rbuf_len;
    io_task_t *cur; /* the task being served, for same-context fast paths */
    int64_t now;
    bool leaving; /* stop or an interrupt: finish the current callback and return */
} io_thread_t;

extern _Thread_local io_thread_t *lepi_io_current;

typedef struct io_timer {
    int64_t due;
    uint64_t seq; /* ties fire in scheduling order */
    lep_io_fn fn;
    void *ctx;
} io_timer_t;

typedef struct io_timers {
    io_timer_t *v; /* binary min-heap */
    size_t n, cap;
} io_timers_t;

typedef struct io_work {
    struct io_work *next;
    lep_io_fn fn;
    void *ctx;
} io_work_t;

/* A deep copy of lep_conn_opts_t (strings and views owned). */
typedef struct io_copts {
    lep_conn_opts_t o;
    char *container_id, *hostname;
    uint8_t *blob;
} io_copts_t;

typedef struct io_slot {
    uint32_t gen;
    uint32_t next_free;
    io_task_t *task;
} io_slot_t;

enum io_phase {
    PH_WAIT = 0,   /* no socket: before an attempt or between attempts */
    PH_CONNECTING, /* connect() in progress */
    PH_ACCEPTED,   /* accepted, on_connected not called yet */
    PH_OPEN,       /* socket up */
    PH_DONE,       /* ended for good */
};

/* How an attempt's AMQP connection started to end: the first of these
 * events decides whether a reconnect may follow. */
enum { END_NONE = 0, END_LOCAL, END_REMOTE };

struct lep_io_conn {
    io_task_t task; /* first member */
    lep_proactor_t *p;
    lep_io_handler_t handler;
    void *ctx;
    atomic_uint refs;          /* the proactor's (until the end) + holds */
    atomic_bool cancel;        /* lep_io_conn_cancel_reconnect */
    bool self_ref_dropped;

    /* Configuration, fixed at creation. */
    lep_io_addr_t *addrs; /* with the host strings, one allocation */
    size_t naddrs;
    io_copts_t copts;
    bool has_copts;
    lep_reconnect_opts_t rc; /* rc.enabled false: never reconnects */

    /* Owner. */
    lep_conn_t *c;
    int fd;
    uint64_t slot;
    int phase;
    bool armed;          /* the ONESHOT registration may still fire */
    uint32_t registered; /* events of the last arm */
    bool read_closed, write_closed, want_write, transport_error;
    bool opened; /* this attempt got the peer's open */
    int end_cause;
    bool abort_req, busy, reconnecting;
    int os_error;
    char reason[192];
    char peer[64];      /* accepted: the client's address, "host:port" */
    size_t addr_index;
    uint32_t attempt; /* consecutive failed attempts */
    int64_t tick_deadline, reconnect_due; /* -1: none */
    uint64_t rng;

    /* Under p->lock. */
    lep_io_conn_t *prev, *next; /* p->conns */
    size_t hidx;                /* in p->dl, or HIDX_NONE */
    int64_t hkey;
    io_timers_t timers; /* lep_io_conn_schedule */
    bool linked; /* on p->conns (deadline heap room reserved) */
    bool timers_closed; /* from the final on_disconnected on */
    bool ended;

    /* Under wlock: the work queue. */
    pthread_mutex_t wlock;
    io_work_t *work, *work_tail;
    bool work_closed;
};

#define HIDX_NONE ((size_t)-1)

struct lep_listener {
    io_task_t task; /* first member */
    lep_proactor_t *p;
    int fd;
    uint64_t slot;
    uint16_t port;
    io_copts_t copts;
    lep_io_handler_t handler;
    void *ctx;
    atomic_bool closed;
    lep_listener_t *prev, *next; /* p->listeners, under p->lock */
    /* Out of descriptors: not re-armed until resume_at (under p->lock,
     * on p->paused meanwhile). */
    int64_t resume_at;
    lep_listener_t *paused_next;
    bool paused;
};

struct lep_proactor {
    int epfd, wakefd, timerfd;
    lep_proactor_opts_t opts;
    size_t rbuf_len;
    io_task_t ptask;

    /* Signal-safe: atomics only. */
    atomic_int interrupts;
    atomic_bool stopped;
    atomic_bool notify_pending;
    atomic_bool wake_pending;

    pthread_mutex_t lock;
    /* Under lock. */
    io_task_t *ready, *ready_tail;
    size_t nready;
    int nthreads, nidle;
    io_slot_t *slots;
    uint32_t nslots, capslots, free_slot;
    lep_io_conn_t *conns;
    size_t nconns;
    lep_listener_t *listeners;
    size_t nlisteners;
    lep_listener_t *paused; /* listeners waiting for descriptors */
    io_timers_t timers; /* application timers */
    uint64_t timer_seq;
    lep_io_conn_t **dl; /* connection deadlines, min-heap on hkey */
    size_t ndl, capdl;
    int64_t tfd_due; /* what the timerfd is armed for; INT64_MAX: nothing */
    io_work_t *work, *work_tail;
    bool inactive_reported;
};

/* proactor.c: scheduling */
void lepi_io_wake(lep_proactor_t *p);
bool lepi_io_leaving(io_thread_t *t);
bool lepi_sched_locked(lep_proactor_t *p, io_task_t *t, uint32_t flags, uint32_t io_events);
bool lepi_kick_locked(lep_proactor_t *p, bool pushed);
void lepi_maybe_inactive_locked(lep_proactor_t *p);
uint64_t lepi_slot_alloc(lep_proactor_t *p, io_task_t *t);
void lepi_slot_free(lep_proactor_t *p, uint64_t id);
void lepi_dl_set(lep_proactor_t *p, lep_io_conn_t *ic, int64_t key);
void lepi_dl_remove(lep_proactor_t *p, lep_io_conn_t *ic);
int lepi_dl_reserve(lep_proactor_t *p, size_t n);
void lepi_timer_rearm_locked(lep_proactor_t *p);
int lepi_timers_push(io_timers_t *h, io_timer_t t);
io_timer_t lepi_timers_pop(io_timers_t *h);

/* socket.c */
int lepi_copts_copy(io_copts_t *d, const lep_conn_opts_t *s, bool server);
void lepi_copts_fini(io_copts_t *d);
void lepi_tune_socket(int fd);
int lepi_sock_open(const char *host, uint16_t port, int *fd, struct sockaddr_storage *sa,
                   socklen_t *salen, int *gai_err);
int lepi_sock_start(int fd, const struct sockaddr_storage *sa, socklen_t salen);
void lepi_listener_turn(io_thread_t *t, lep_listener_t *l, uint32_t flags, uint32_t io);
void lepi_listener_free(lep_listener_t *l);
bool lepi_listeners_resume_locked(lep_proactor_t *p, int64_t now);
void lepi_listener_unpause_locked(lep_proactor_t *p, lep_listener_t *l);

/* conn.c: a connection's turns */
void lepi_conn_turn(io_thread_t *t, lep_io_conn_t *ic, uint32_t flags, uint32_t io);
void lepi_conn_set_reason(lep_io_conn_t *ic, int err, const char *what);
void lepi_conn_close_io(lep_io_conn_t *ic);

/* conn_api.c: making connections, references */
void lepi_conn_accepted(lep_proactor_t *p, lep_listener_t *l, int fd);
void lepi_conn_discard(lep_io_conn_t *ic);
void lepi_conn_drop_ref(lep_io_conn_t *ic);
void lepi_conn_free_work(io_work_t *w);

#endif
