/* lepton proactor: sockets, timers, threads and work queues driving
 * lep_conn_t.
 *
 * The proactor owns the sockets and the clock that the sans-IO engine
 * (engine.h) leaves to its caller.  It reads in large chunks into
 * lep_conn_feed(), writes lep_conn_output_iov() with writev(), passes the
 * time to lep_conn_tick() and sleeps until the earliest deadline (engine
 * ticks, timers, reconnect delays; one timerfd, a heap of connection
 * deadlines).  It never busy-waits.
 *
 * Event delivery: callbacks.  Each connection has a handler (a struct of
 * function pointers, lep_io_handler_t) given when it is made by
 * lep_proactor_connect(), lep_proactor_connect_opts() or a listener; the
 * proactor calls it with every lep_event_t the engine produces, plus
 * proactor-level events: setup (a fresh lep_conn_t), connected (socket
 * up), disconnected (socket gone).  Callbacks run inside
 * lep_proactor_run(); in them the application may use the connection's
 * engine objects freely: whatever output they cause is written before the
 * connection waits again.
 *
 *   lep_proactor_t *p;
 *   lep_proactor_new(&p, NULL);
 *   lep_proactor_connect(p, "127.0.0.1", 5672, &conn_opts, &handler, NULL);
 *   lep_proactor_run(p);                 // until lep_proactor_interrupt/_stop
 *   lep_proactor_free(p);
 *
 * Threads.  lep_proactor_run() may be called from several threads at
 * once: they share the work.  A connection (lep_io_conn_t) is served by
 * one thread at a time: all of its callbacks (on_setup of its
 * reconnects, on_connected, on_event, on_disconnected), its injected
 * work items (lep_io_conn_inject) and its timers (lep_io_conn_schedule)
 * are serialized, never concurrent, and each sees what the previous one
 * did; different connections run in parallel.  The proactor's own
 * callbacks (lep_proactor_inject and lep_proactor_schedule functions,
 * on_notify, on_inactive) are serialized with each other but run in
 * parallel with connection callbacks: they must reach a connection
 * through lep_io_conn_inject(), never touch its engine directly (with a
 * single run() thread nothing runs in parallel, and they may).  Each
 * call below says which threads may make it.  Another thread reaches a
 * connection's engine objects only through its work queue.
 *
 * Reconnect: lep_proactor_connect_opts() makes a client connection that
 * outlives its sockets: after a failure or a loss it tries again with
 * backoff, over a list of addresses (failover).  Each attempt has its own
 * lep_conn_t, made from the same options and set up by on_setup.
 *
 * Host names are resolved with a blocking getaddrinfo() (for reconnect
 * attempts, on a loop thread); numeric addresses never block.  URLs,
 * SASL and TLS set-up live in the messaging layer above (io takes hosts
 * and ports; on_setup adds the layers). */
#ifndef LEPTON_IO_H
#define LEPTON_IO_H

#include <lepton/engine.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lep_proactor lep_proactor_t;
typedef struct lep_listener lep_listener_t;
/* A client or server connection: one socket at a time driving one
 * lep_conn_t (a reconnecting client has one per attempt).  Owned by the
 * proactor: valid from its creation until its final on_disconnected
 * returns, and after that while the application holds it
 * (lep_io_conn_hold). */
typedef struct lep_io_conn lep_io_conn_t;

/* Per-connection callbacks; every member may be NULL.  They all run in
 * the connection's serialized context (see Threads above). */
typedef struct lep_io_handler {
    /* After the lep_conn_t is made, before any byte moves: add layers
     * (SASL, TLS), set contexts, lep_conn_open(), make sessions and
     * links.  Called for every attempt of a reconnecting connection,
     * each with a fresh lep_conn_t.  A non-zero return refuses it: an
     * accepted socket is closed silently (no other callback follows);
     * lep_proactor_connect() fails with that value (no other callback
     * follows); an attempt of lep_proactor_connect_opts() counts as a
     * failed attempt (on_disconnected follows, with os_error ECANCELED
     * and lep_io_conn_engine() NULL).  It may call lep_io_conn_wake,
     * _abort, _inject and _schedule. */
    int (*on_setup)(void *ctx, lep_io_conn_t *ic, lep_conn_t *c);
    /* The socket is connected (client) or accepted (server). */
    void (*on_connected)(void *ctx, lep_io_conn_t *ic);
    /* Every engine event, in order; TRANSPORT_CLOSED is the engine's
     * last. */
    void (*on_event)(void *ctx, lep_io_conn_t *ic, const lep_event_t *ev);
    /* The end of an attempt: the socket is closed (or never opened).
     * Called once per attempt; lep_io_conn_reconnecting(ic) tells
     * whether another attempt follows.  After it returns the attempt's
     * lep_conn_t is freed; after the final one (reconnecting false) ic
     * is freed too, unless held.  os_error: 0 when the engine finished
     * both directions, else the errno that ended the attempt (e.g.
     * ECONNREFUSED, EPIPE; ECONNRESET also for an EOF before the
     * AMQP close; EPROTO for a transport error; EHOSTUNREACH when the host
     * did not resolve; ECANCELED for a refused on_setup or a cancelled
     * wait; ECONNABORTED for lep_io_conn_abort).  reason: text, never
     * NULL.  lep_io_conn_engine(ic) is the attempt's engine, or NULL if
     * the attempt never had one (ended while waiting to reconnect, or
     * refused by on_setup). */
    void (*on_disconnected)(void *ctx, lep_io_conn_t *ic, int os_error, const char *reason);
} lep_io_handler_t;

typedef struct lep_proactor_opts {
    void *ctx;
    /* Called when the proactor has nothing left: no connection (a
     * connection waiting to reconnect counts), no listener, no timer,
     * no injected function pending.  Once per transition to inactive,
     * on one thread.  Often used to lep_proactor_stop(). */
    void (*on_inactive)(void *ctx, lep_proactor_t *p);
    size_t read_chunk; /* bytes per read(), one buffer per run() thread; 0: 64 KiB */
    /* Called on a loop thread after lep_proactor_notify(); notifies made
     * before it runs coalesce into one call.  E.g. a SIGINT handler
     * calls lep_proactor_notify() and on_notify closes connections
     * gracefully (through lep_io_conn_inject) and stops listening. */
    void (*on_notify)(void *ctx, lep_proactor_t *p);
} lep_proactor_opts_t;

/* opts may be NULL (defaults). */
LEP_EXPORT int lep_proactor_new(lep_proactor_t **out, const lep_proactor_opts_t *opts);
/* Closes every socket and frees every connection, listener, timer and
 * pending injected item without calling their callbacks.  Not while
 * run() is running.  A connection the application still holds keeps
 * its memory until lep_io_conn_release(), the only call allowed on it
 * after this. */
LEP_EXPORT void lep_proactor_free(lep_proactor_t *p);

/* Serves events until this thread is interrupted or the proactor is
 * stopped.  Any number of threads may run it at once (not from one of
 * the proactor's own callbacks: LEP_ERR_STATE).  Returns 0 then, or a
 * negative LEP_ERR_* (LEP_ERR_IO when epoll fails, LEP_ERR_NOMEM for its
 * read buffer). */
LEP_EXPORT int lep_proactor_run(lep_proactor_t *p);
/* Any thread, also a callback; async-signal-safe: one run() returns
 * after its current callback (one interrupt, one return).  An
 * interrupt while no run() is running makes the next run() return at
 * once. */
LEP_EXPORT void lep_proactor_interrupt(lep_proactor_t *p);
/* Any thread, also a callback; async-signal-safe: every running run()
 * returns as soon as its current callback returns, and every later
 * run() returns at once.  Permanent.  Connections are left as they are
 * (lep_proactor_free closes them). */
LEP_EXPORT void lep_proactor_stop(lep_proactor_t *p);
/* Any thread; async-signal-safe: a loop thread calls opts.on_notify
 * once soon (several notifies before it runs make one call). */
LEP_EXPORT void lep_proactor_notify(lep_proactor_t *p);

/* Any thread: fn(ctx) runs once on some loop thread inside run(), in
 * submission order, serialized with the proactor's other callbacks but
 * not with any connection's.  Wakes a waiting run().  LEP_ERR_NOMEM on
 * allocation failure. */
typedef void (*lep_io_fn)(void *ctx);
LEP_EXPORT int lep_proactor_inject(lep_proactor_t *p, lep_io_fn fn, void *ctx);

/* Any thread: fn(ctx) runs on some loop thread no earlier than delay_ms
 * from now, serialized like lep_proactor_inject().  Timers with equal
 * deadlines fire in scheduling order.  A pending timer keeps the
 * proactor active.  For work on one connection use
 * lep_io_conn_schedule(). */
LEP_EXPORT int lep_proactor_schedule(lep_proactor_t *p, uint64_t delay_ms, lep_io_fn fn,
                                     void *ctx);

/* Monotonic milliseconds, the clock of timers and lep_conn_tick(). */
LEP_EXPORT int64_t lep_proactor_now_ms(void);

/* ------------------------------------------------------------------ */
/* Listening and connecting                                            */

/* Any thread.  Listens on host:port (IPv4 or IPv6 literal or name; NULL
 * or "" for every address; port 0: an ephemeral port, see
 * lep_listener_port).  Every accepted socket gets a lep_conn_t made with
 * copts (may be NULL; copied; its server flag is forced on) and the
 * handler (copied) with ctx; on_setup runs on the thread that accepts. */
LEP_EXPORT int lep_proactor_listen(lep_proactor_t *p, const char *host, uint16_t port,
                                   const lep_conn_opts_t *copts, const lep_io_handler_t *h,
                                   void *ctx, lep_listener_t **out);
/* The port actually bound.  Any thread while l is open. */
LEP_EXPORT uint16_t lep_listener_port(const lep_listener_t *l);
/* Any thread, once: stops listening and frees l (at once, or when
 * another thread's accept on it returns, microseconds later);
 * connections it accepted live on. */
LEP_EXPORT void lep_listener_close(lep_listener_t *l);

/* Any thread.  Starts a non-blocking connect to host:port (first
 * address getaddrinfo() gives) with a new lep_conn_t made with copts
 * (may be NULL: client defaults), without reconnect.  on_setup runs
 * inside this call, on the calling thread.  Fails synchronously only for
 * bad arguments, resolution failure, allocation or a refusing on_setup;
 * a failed connect (refused, unreachable) is reported by
 * on_disconnected.  out may be NULL; *out may end (see on_disconnected)
 * at any time once run() serves it. */
LEP_EXPORT int lep_proactor_connect(lep_proactor_t *p, const char *host, uint16_t port,
                                    const lep_conn_opts_t *copts, const lep_io_handler_t *h,
                                    void *ctx, lep_io_conn_t **out);

/* Reconnect and failover */

typedef struct lep_io_addr {
    const char *host;
    uint16_t port;
} lep_io_addr_t;

typedef struct lep_reconnect_opts {
    bool enabled;              /* default true */
    uint32_t initial_delay_ms; /* default 100 */
    uint32_t max_delay_ms;     /* default 10000 */
    uint32_t multiplier;       /* default 2; 0 acts as 1 */
    uint32_t max_attempts;     /* consecutive failed attempts before giving up; 0: unlimited (default) */
} lep_reconnect_opts_t;

typedef struct lep_io_connect_opts {
    const lep_io_addr_t *addrs; /* tried in turn (failover list); copied */
    size_t naddrs;
    const lep_conn_opts_t *copts; /* for every attempt's lep_conn_t; may be NULL; copied */
    lep_reconnect_opts_t reconnect;
} lep_io_connect_opts_t;

/* Fills o with the defaults (no address, reconnect as documented). */
LEP_EXPORT void lep_io_connect_opts_init(lep_io_connect_opts_t *o);

/* Any thread.  Makes a client connection that connects to addrs[0]
 * from the loop (the first attempt starts at once; nothing is called
 * back inside this call) and, with reconnect.enabled, keeps doing so:
 *   - every attempt makes a fresh lep_conn_t from copts and calls
 *     on_setup (add SASL/TLS layers, open, re-create sessions and links
 *     there), then on_connected when the socket connects, on_event, and
 *     on_disconnected at its end;
 *   - an attempt succeeds when the peer's open arrives
 *     (LEP_EVENT_CONN_REMOTE_OPEN): the failure count goes back to 0;
 *   - when an attempt ends, another follows unless reconnect.enabled is
 *     false, the application closed the connection first (its
 *     lep_conn_close() came before any close from the peer or transport
 *     error: LEP_EVENT_CONN_LOCAL_CLOSE was the first of the three; a
 *     close sent in answer to the peer's close still reconnects),
 *     max_attempts consecutive failures are reached, or
 *     lep_io_conn_cancel_reconnect() was called;
 *   - the delay after the n-th consecutive failure is
 *     min(max_delay, initial * multiplier^(n-1)), jittered at random into
 *     [delay/2, delay]; after losing a connection that had succeeded,
 *     initial_delay (jittered); each failure moves to the next address
 *     (wrapping), a lost success retries the same one first;
 *   - a host that does not resolve and a refused on_setup are failed
 *     attempts like a refused connect.
 * Between attempts lep_io_conn_engine(ic) is NULL; work items and
 * connection timers run then too, in the connection's serialized
 * context.  Timers survive attempts.  A pending reconnect keeps the
 * proactor active.  Fails synchronously only for bad arguments (no
 * address, an empty host, copts->server) or allocation.  out may be
 * NULL; see lep_proactor_connect() for how long *out lives. */
LEP_EXPORT int lep_proactor_connect_opts(lep_proactor_t *p, const lep_io_connect_opts_t *o,
                                         const lep_io_handler_t *h, void *ctx,
                                         lep_io_conn_t **out);

/* In the connection's context.  The address the current (or, between
 * attempts and in on_disconnected, the last) attempt used: a view of
 * the connection's copy, valid while ic is; NULL for an accepted
 * connection.  Its index in the list (0 for lep_proactor_connect). */
LEP_EXPORT const lep_io_addr_t *lep_io_conn_addr(const lep_io_conn_t *ic);
LEP_EXPORT size_t lep_io_conn_addr_index(const lep_io_conn_t *ic);
/* An accepted connection's peer, "host:port" ("[v6]:port"); "" for
 * client connections or when unknown.  Valid while ic is. */
LEP_EXPORT const char *lep_io_conn_peer(const lep_io_conn_t *ic);
/* In the connection's context: consecutive failed attempts so far (0 on
 * a first try and after a success; in on_disconnected it counts the
 * attempt that just failed). */
LEP_EXPORT uint32_t lep_io_conn_attempt(const lep_io_conn_t *ic);
/* Inside on_disconnected: whether another attempt will follow. */
LEP_EXPORT bool lep_io_conn_reconnecting(const lep_io_conn_t *ic);
/* Any thread (ic alive): no further attempt.  From on_disconnected (e.g.
 * after an authentication failure) it makes that call the final one;
 * during the wait between attempts it ends the connection at once (a
 * final on_disconnected with ECANCELED follows); during an attempt it
 * takes effect when the attempt ends. */
LEP_EXPORT void lep_io_conn_cancel_reconnect(lep_io_conn_t *ic);
/* Any thread: keeps ic's memory valid after its end (a reference
 * count); every hold needs a release.  A held connection that ended
 * answers lep_io_conn_inject/_schedule with LEP_ERR_STATE and ignores
 * wake, abort and cancel. */
LEP_EXPORT void lep_io_conn_hold(lep_io_conn_t *ic);
/* Any thread: the last release after the end frees ic. */
LEP_EXPORT void lep_io_conn_release(lep_io_conn_t *ic);

/* ------------------------------------------------------------------ */
/* Acting on a connection                                              */

/* In the connection's context (its callbacks, work items and timers):
 * the current attempt's engine; NULL between attempts. */
LEP_EXPORT lep_conn_t *lep_io_conn_engine(const lep_io_conn_t *ic);
/* Any thread. */
LEP_EXPORT lep_proactor_t *lep_io_conn_proactor(const lep_io_conn_t *ic);
LEP_EXPORT void *lep_io_conn_context(const lep_io_conn_t *ic);
/* Any thread (ic alive): the connection's engine state changed outside
 * its own context (e.g. with one run() thread, from a proactor timer);
 * deliver its events and write its output soon.  Not needed in its own
 * context, where it does nothing. */
LEP_EXPORT void lep_io_conn_wake(lep_io_conn_t *ic);
/* Any thread (ic alive): fn(ctx) runs in the connection's serialized
 * context (in run(), never concurrently with its callbacks), in
 * submission order, and the connection's events and output are handled
 * afterwards, so fn may use the engine objects freely
 * (lep_io_conn_engine may be NULL between attempts).  Every accepted
 * item runs exactly once; items queued when an attempt ends run just
 * before its on_disconnected (the engine is closed by then).  From the
 * final on_disconnected on, inject returns LEP_ERR_STATE (ic must
 * still be valid: held, or known to be alive). */
LEP_EXPORT int lep_io_conn_inject(lep_io_conn_t *ic, lep_io_fn fn, void *ctx);
/* Any thread (ic alive): fn(ctx) runs in the connection's serialized
 * context no earlier than delay_ms from now, then its events and output
 * are handled, as for lep_io_conn_inject().  Equal deadlines fire in
 * scheduling order.  Timers survive reconnects; timers still pending
 * when the connection ends for good are dropped without running (free
 * their ctx in the final on_disconnected).  LEP_ERR_STATE after the
 * end, LEP_ERR_NOMEM. */
LEP_EXPORT int lep_io_conn_schedule(lep_io_conn_t *ic, uint64_t delay_ms, lep_io_fn fn,
                                    void *ctx);
/* Any thread (ic alive): drops the socket as soon as the connection's
 * context runs (at once from inside it).  The engine is told its input
 * and output closed; remaining events and on_disconnected follow within
 * run().  A reconnecting connection follows the rules of
 * lep_proactor_connect_opts (call lep_io_conn_cancel_reconnect first to
 * end it for good); between attempts, abort ends it for good (a final
 * on_disconnected with ECONNABORTED follows). */
LEP_EXPORT void lep_io_conn_abort(lep_io_conn_t *ic);

#ifdef __cplusplus
}
#endif
#endif
