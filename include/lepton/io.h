/* lepton proactor: sockets, timers and work queues driving lep_conn_t.
 *
 * The proactor owns the sockets and the clock that the sans-IO engine
 * (engine.h) leaves to its caller.  It reads in large chunks into
 * lep_conn_feed(), writes lep_conn_output_iov() with writev(), merges the
 * lep_conn_tick() deadlines of every connection and the application's
 * timers into one epoll_wait() timeout, and wakes through an eventfd when
 * another thread injects work.  It never busy-waits.
 *
 * Event delivery: callbacks.  Each connection has a handler (a struct of
 * function pointers, lep_io_handler_t) given when it is made by
 * lep_proactor_connect() or by a listener; the proactor calls it with
 * every lep_event_t the engine produces, plus proactor-level events:
 * connected (socket up), disconnected (socket gone, last call), and the
 * proactor's own inactive callback.  Callbacks run inside
 * lep_proactor_run(); in them the application may use the connection's
 * engine objects freely: whatever output they cause is written before the
 * proactor waits again.
 *
 *   lep_proactor_t *p;
 *   lep_proactor_new(&p, NULL);
 *   lep_proactor_connect(p, "127.0.0.1", 5672, &conn_opts, &handler, NULL);
 *   lep_proactor_run(p);                 // until lep_proactor_interrupt
 *   lep_proactor_free(p);
 *
 * Threads.  Today lep_proactor_run() serves everything on the one thread
 * that calls it; a second concurrent call returns LEP_ERR_STATE.  The
 * data structures are laid out for the thread pool of issue 5 (one
 * connection served by at most one thread at a time: each lep_io_conn_t
 * is a unit of scheduling with its own state), but that is NOT
 * IMPLEMENTED YET.  Thread-safe from any thread: lep_proactor_inject(),
 * lep_proactor_schedule(), lep_proactor_interrupt().  Everything else
 * only from inside callbacks or, before/after run, from the thread that
 * owns the proactor.  lep_io_conn_inject() is the thread-safe way to act
 * on one connection.
 *
 * NOT IMPLEMENTED YET (not declared, so nothing silently succeeds):
 * connect by URL, amqps, reconnect with backoff and failover, a thread
 * pool, signal-driven stop.  Host names
 * are resolved with a blocking getaddrinfo(); numeric addresses never
 * block. */
#ifndef LEPTON_IO_H
#define LEPTON_IO_H

#include <lepton/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lep_proactor lep_proactor_t;
typedef struct lep_listener lep_listener_t;
/* One socket driving one lep_conn_t.  Owned by the proactor: valid from
 * its creation until its handler's on_disconnected returns. */
typedef struct lep_io_conn lep_io_conn_t;

/* Per-connection callbacks; every member may be NULL. */
typedef struct lep_io_handler {
    /* After the lep_conn_t is made, before any byte moves: add layers
     * (SASL, TLS), set contexts, maybe lep_conn_open().  A non-zero
     * return refuses the connection: for an accepted socket it is closed
     * silently; for lep_proactor_connect() the call fails with that
     * value.  No other callback follows a refusal.  It must not call
     * lep_io_conn_wake or lep_io_conn_abort (ic is not live yet). */
    int (*on_setup)(void *ctx, lep_io_conn_t *ic, lep_conn_t *c);
    /* The socket is connected (client) or accepted (server). */
    void (*on_connected)(void *ctx, lep_io_conn_t *ic);
    /* Every engine event, in order; TRANSPORT_CLOSED is the engine's
     * last. */
    void (*on_event)(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev);
    /* Last call: the socket is closed and, after this returns, the
     * lep_conn_t and ic are freed.  os_error: 0 when the engine finished
     * both directions, else the errno that ended the socket (e.g.
     * ECONNREFUSED, ECONNRESET; EPIPE for an EOF the engine did not
     * expect).  reason: text, never NULL. */
    void (*on_disconnected)(void *ctx, lep_io_conn_t *ic, int os_error, const char *reason);
} lep_io_handler_t;

typedef struct lep_proactor_opts {
    void *ctx;
    /* Called when the proactor has nothing left: no connection, no
     * listener, no timer.  Often used to lep_proactor_interrupt(). */
    void (*on_inactive)(void *ctx, lep_proactor_t *p);
    size_t read_chunk; /* bytes per read(); 0: 64 KiB */
} lep_proactor_opts_t;

/* opts may be NULL (defaults). */
LEP_EXPORT int lep_proactor_new(lep_proactor_t **out, const lep_proactor_opts_t *opts);
/* Closes every socket and frees every connection, listener, timer and
 * pending injected item without calling their callbacks.  Not while
 * run() is running. */
LEP_EXPORT void lep_proactor_free(lep_proactor_t *p);

/* Serves events until lep_proactor_interrupt().  Returns 0 then, or a
 * negative LEP_ERR_* (LEP_ERR_IO when epoll fails, LEP_ERR_STATE when
 * run() is already running on another thread). */
LEP_EXPORT int lep_proactor_run(lep_proactor_t *p);
/* Any thread, also a callback: run() returns after the current
 * callback.  An interrupt while run() is not running makes the next
 * run() return at once (one interrupt, one return). */
LEP_EXPORT void lep_proactor_interrupt(lep_proactor_t *p);

/* Any thread: fn(ctx) runs once inside run(), in submission order, and
 * wakes a waiting run().  LEP_ERR_NOMEM on allocation failure. */
typedef void (*lep_io_fn)(void *ctx);
LEP_EXPORT int lep_proactor_inject(lep_proactor_t *p, lep_io_fn fn, void *ctx);

/* Any thread: fn(ctx) runs inside run() no earlier than delay_ms from
 * now.  Timers with equal deadlines fire in scheduling order.  A pending
 * timer keeps the proactor active. */
LEP_EXPORT int lep_proactor_schedule(lep_proactor_t *p, uint64_t delay_ms, lep_io_fn fn,
                                     void *ctx);

/* Monotonic milliseconds, the clock of timers and lep_conn_tick(). */
LEP_EXPORT int64_t lep_proactor_now_ms(void);

/* ------------------------------------------------------------------ */
/* Listening and connecting                                            */

/* Listens on host:port (IPv4 or IPv6 literal or name; NULL or "" for
 * every address; port 0: an ephemeral port, see lep_listener_port).
 * Every accepted socket gets a lep_conn_t made with copts (may be NULL;
 * its server flag is forced on) and the handler (copied) with ctx. */
LEP_EXPORT int lep_proactor_listen(lep_proactor_t *p, const char *host, uint16_t port,
                                   const lep_conn_opts_t *copts, const lep_io_handler_t *h,
                                   void *ctx, lep_listener_t **out);
/* The port actually bound. */
LEP_EXPORT uint16_t lep_listener_port(const lep_listener_t *l);
/* Stops listening and frees l; connections it accepted live on. */
LEP_EXPORT void lep_listener_close(lep_listener_t *l);

/* Starts a non-blocking connect to host:port (first address
 * getaddrinfo() gives) with a new lep_conn_t made with copts (may be
 * NULL: client defaults).  Fails synchronously only for bad arguments,
 * resolution failure, allocation or a refusing on_setup; a failed
 * connect (refused, unreachable) is reported by on_disconnected.
 * out may be NULL. */
LEP_EXPORT int lep_proactor_connect(lep_proactor_t *p, const char *host, uint16_t port,
                                    const lep_conn_opts_t *copts, const lep_io_handler_t *h,
                                    void *ctx, lep_io_conn_t **out);

LEP_EXPORT lep_conn_t *lep_io_conn_engine(const lep_io_conn_t *ic);
LEP_EXPORT lep_proactor_t *lep_io_conn_proactor(const lep_io_conn_t *ic);
LEP_EXPORT void *lep_io_conn_context(const lep_io_conn_t *ic);
/* From a callback of another connection, a timer or an injected
 * function (loop thread only): the application changed this
 * connection's engine state outside its own callbacks; deliver its
 * events and write its output before waiting again.  (Not needed inside
 * the connection's own callbacks.) */
LEP_EXPORT void lep_io_conn_wake(lep_io_conn_t *ic);
/* Any thread: fn(ctx) runs in the connection's serialized context (in
 * run(), never concurrently with its callbacks), in submission order,
 * and the connection's events and output are handled afterwards, so fn
 * may use the engine objects freely.  Every accepted item runs exactly
 * once; items still queued when the connection ends run just before
 * on_disconnected (the engine is closed by then).  The caller must know
 * ic is alive: from on_disconnected on, inject returns LEP_ERR_STATE,
 * and after on_disconnected has returned ic must not be used at all. */
LEP_EXPORT int lep_io_conn_inject(lep_io_conn_t *ic, lep_io_fn fn, void *ctx);
/* Loop thread: drops the socket now.  The engine is told its input and
 * output closed; remaining events and on_disconnected follow within
 * run(). */
LEP_EXPORT void lep_io_conn_abort(lep_io_conn_t *ic);

#ifdef __cplusplus
}
#endif
#endif
