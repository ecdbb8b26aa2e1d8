/* Proactor internals shared by the files of src/io. */
#ifndef LEPTON_IO_INTERNAL_H
#define LEPTON_IO_INTERNAL_H

#include <lepton/io.h>

#include <pthread.h>
#include <stdatomic.h>

/* What an epoll_event's data.ptr points at: the first member of each. */
enum { H_WAKE = 1, H_LISTENER, H_CONN };
typedef struct io_handle {
    int kind;
    int fd;
} io_handle_t;

typedef struct io_timer {
    int64_t due;
    uint64_t seq; /* ties fire in scheduling order */
    lep_io_fn fn;
    void *ctx;
} io_timer_t;

typedef struct io_work {
    struct io_work *next;
    lep_io_fn fn;
    void *ctx;
} io_work_t;

/* A unit of scheduling: with the thread pool, one thread at a time owns
 * it (claimed through `dirty`/the ready list), so its callbacks are
 * serialized. */
struct lep_io_conn {
    io_handle_t h;
    lep_proactor_t *p;
    lep_conn_t *c;
    lep_io_handler_t handler;
    void *ctx;
    lep_io_conn_t *prev, *next; /* p->conns */
    lep_io_conn_t *ready_next;  /* p->ready, when dirty */
    bool dirty, dead;
    bool connecting;
    bool read_closed, write_closed;
    bool want_write; /* output is waiting for EPOLLOUT */
    bool transport_error;
    uint32_t events; /* registered with epoll */
    int64_t deadline; /* from lep_conn_tick; -1: none */
    int os_error;
    char reason[160];
    /* Under p->lock: the connection's work queue, and its place in
     * p->conn_work while it has items. */
    io_work_t *work, *work_tail;
    lep_io_conn_t *work_next;
    bool work_queued, work_closed;
};

struct lep_listener {
    io_handle_t h;
    lep_proactor_t *p;
    lep_listener_t *prev, *next;
    uint16_t port;
    lep_conn_opts_t copts; /* strings and views below are owned */
    char *container_id, *hostname;
    uint8_t *blob; /* capabilities and properties, one allocation */
    lep_io_handler_t handler;
    void *ctx;
};

struct lep_proactor {
    int epfd;
    io_handle_t wake; /* eventfd */
    lep_proactor_opts_t opts;
    uint8_t *rbuf;
    size_t rbuf_len;
    int64_t now;

    lep_io_conn_t *conns;
    size_t nconns;
    lep_io_conn_t *ready, *ready_tail;
    lep_io_conn_t *dead; /* freed at the end of a loop round */
    lep_listener_t *listeners;
    lep_listener_t *dead_listeners; /* freed at the end of a loop round */
    size_t nlisteners;
    bool inactive_reported;

    /* Shared with other threads, under lock. */
    pthread_mutex_t lock;
    io_timer_t *timers; /* binary min-heap */
    size_t ntimers, captimers;
    uint64_t timer_seq;
    io_work_t *work, *work_tail;
    lep_io_conn_t *conn_work, *conn_work_tail; /* connections with queued work */
    atomic_int interrupts;
    atomic_bool running;
    atomic_bool wake_pending;
};

void lepi_io_wake(lep_proactor_t *p);
void lepi_io_conn_event(lep_io_conn_t *ic, uint32_t events);
void lepi_io_listener_event(lep_listener_t *l);
void lepi_io_conn_process(lep_io_conn_t *ic);
void lepi_io_conn_free(lep_io_conn_t *ic);
void lepi_io_run_conn_work(lep_proactor_t *p);
void lepi_io_listener_free(lep_listener_t *l);

#endif
