/* lepton messaging: the application API (Proton's container, in C).
 *
 * A container makes and accepts connections, opens senders and receivers
 * on them and calls the application's handler with the events a Proton
 * user knows: on_container_start, on_connection_open, on_sendable,
 * on_message, on_accepted, on_disconnected and the rest.  It runs on the
 * proactor of io.h and the engine of engine.h; its defaults do what most
 * programs want: a receiver keeps a prefetch window of credit, accepts and
 * settles each message after on_message returns, a sender settles each
 * message once the peer's outcome arrives, and a client connection
 * reconnects with backoff when the transport fails.
 *
 *   static void on_start(void *ctx, lep_container_t *c) {
 *       lep_container_open_sender(c, "amqp://127.0.0.1/examples", NULL, NULL);
 *   }
 *   static void on_sendable(void *ctx, lep_sender_t *s) {
 *       ... lep_message_set_body_string(m, lep_bytes_str("Hello World!")); lep_sender_send(s, m, NULL);
 *       lep_connection_close(lep_sender_connection(s), NULL);
 *   }
 *   lep_handler_t h = {.on_container_start = on_start, .on_sendable = on_sendable};
 *   lep_container_opts_t o; lep_container_opts_init(&o); o.handler = &h;
 *   lep_container_new(&c, &o); lep_container_run(c); lep_container_free(c);
 *
 * Handlers.  A handler is a struct of optional callbacks and a context
 * pointer given with it.  Each link and connection may have its own; an
 * event goes to the first of the link's, the connection's and the
 * container's handlers that has that member set.  When none has, the
 * default behaviour described with each member happens.
 *
 * Threads.  lep_container_run() may be called from several threads; each
 * returns when the container stops.  All callbacks for one connection and
 * everything under it are serialized (never concurrent), so a handler
 * needs no locks for its own connection's objects; different connections
 * run in parallel.  Objects of a connection may be used only from that
 * connection's callbacks, or from work given to lep_connection_inject()
 * (any thread) which runs in the connection's serialized context.
 * Container-level callbacks (on_container_start, lep_container_schedule
 * timers) run on some loop thread, not serialized with any connection.
 *
 * Lifetimes.  A lep_connection_t lives until on_connection_final returns
 * (or longer while held, lep_connection_hold).  Senders and receivers
 * live until their connection's final event, or until on_*_close for a
 * link that was closed at both ends.  Messages passed to on_message and
 * deliveries passed to any callback are views valid for that call, unless
 * a delivery is kept unsettled on purpose (auto_accept off): then it lives
 * until the application settles it or the connection ends.
 *
 * Reconnect.  A client connection (lep_container_connect) reconnects by
 * default when its transport fails (socket error, peer gone) or the peer
 * closes it with amqp:connection:forced (a broker shutting down), as
 * Proton does: exponential backoff with jitter over the URL and its
 * failover URLs, until a limit.  It does not after the application closed
 * it, after the peer closed it for another reason (or none), or after an
 * authentication failure.  Each new transport
 * re-opens the connection and re-attaches every sender and receiver not
 * closed by the application (on_connection_open, on_sender_open,
 * on_receiver_open come again).  Messages that were sent and not settled
 * when the transport failed are reported by on_disconnected (their
 * outcome is unknown): an at-least-once sender sends them again. */
#ifndef LEPTON_MESSAGING_H
#define LEPTON_MESSAGING_H

#include <lepton/engine.h>
#include <lepton/io.h>
#include <lepton/message.h>
#include <lepton/messaging_config.h>
#include <lepton/sasl.h>
#include <lepton/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lep_container lep_container_t;
/* A messaging connection: one lep_conn_t at a time (a new one per
 * reconnect) with its default session. */
typedef struct lep_connection lep_connection_t;
typedef struct lep_sender lep_sender_t;
typedef struct lep_receiver lep_receiver_t;
/* Deliveries, sent (a "tracker" in Proton) and received, are the engine's
 * lep_delivery_t (engine.h). */

/* The delivery guarantee of a link. */
typedef enum lep_delivery_mode {
    LEP_AT_LEAST_ONCE = 0, /* the sender keeps a message until the receiver's outcome */
    LEP_AT_MOST_ONCE,      /* sent pre-settled: no outcome, no redelivery */
    LEP_EXACTLY_ONCE,      /* rcv-settle-mode second: accept, sender settles, receiver settles */
} lep_delivery_mode_t;

/* ------------------------------------------------------------------ */
/* Handlers                                                            */

typedef struct lep_handler {
    /* First thing run() does, once per container. */
    void (*on_container_start)(void *ctx, lep_container_t *c);
    /* Last thing before the last run() returns. */
    void (*on_container_stop)(void *ctx, lep_container_t *c);

    /* The peer's open arrived (for an accepted connection, after the
     * container answered it with its own open). */
    void (*on_connection_open)(void *ctx, lep_connection_t *c);
    /* The peer closed the connection without an error (after we
     * answered).  Default: nothing. */
    void (*on_connection_close)(void *ctx, lep_connection_t *c);
    /* The peer closed the connection with an error (cond: views valid for
     * the call).  Default: print it to stderr.  on_connection_close is
     * not called then. */
    void (*on_connection_error)(void *ctx, lep_connection_t *c, const lep_condition_t *cond);

    /* The session's begin/end, both ways (rarely needed). */
    void (*on_session_open)(void *ctx, lep_connection_t *c, lep_session_t *s);
    void (*on_session_close)(void *ctx, lep_connection_t *c, lep_session_t *s);
    void (*on_session_error)(void *ctx, lep_connection_t *c, lep_session_t *s,
                             const lep_condition_t *cond);

    /* A sender or receiver opened.  For a link we opened: the peer's
     * attach arrived (lep_receiver_address() is then the address the peer
     * assigned to a dynamic source).  For a link the peer opened (the
     * peer's receiver is our sender): called before we answer, so the
     * handler may set our terminus address (lep_sender_set_source_address
     * for a dynamic source) or refuse with lep_sender_close(); when it
     * returns the container attaches.  Default for a peer's dynamic
     * terminus: an address made up by the container
     * ("<container-id>/dynamic/<n>"). */
    void (*on_sender_open)(void *ctx, lep_sender_t *s);
    void (*on_receiver_open)(void *ctx, lep_receiver_t *r);
    /* The link is closed at both ends (or detached, for a durable
     * subscription).  The object must not be used after the call. */
    void (*on_sender_close)(void *ctx, lep_sender_t *s);
    void (*on_receiver_close)(void *ctx, lep_receiver_t *r);
    /* The peer closed or refused the link with an error.  Default: print
     * it to stderr.  on_*_close follows. */
    void (*on_sender_error)(void *ctx, lep_sender_t *s, const lep_condition_t *cond);
    void (*on_receiver_error)(void *ctx, lep_receiver_t *r, const lep_condition_t *cond);

    /* The sender has credit: lep_sender_credit(s) messages may be sent
     * now.  Called when credit arrives and again after every callback
     * round while credit is left and the handler sent something. */
    void (*on_sendable)(void *ctx, lep_sender_t *s);
    /* The peer's outcome for a message we sent.  With auto_settle (the
     * default) the container settles d right after the call, and d must
     * not be kept.  on_released covers released and modified (see
     * lep_delivery_remote_state for which).  d's context is what
     * lep_sender_send's caller set with lep_delivery_set_context. */
    void (*on_accepted)(void *ctx, lep_sender_t *s, lep_delivery_t *d);
    void (*on_rejected)(void *ctx, lep_sender_t *s, lep_delivery_t *d);
    void (*on_released)(void *ctx, lep_sender_t *s, lep_delivery_t *d);
    /* The peer settled a message we sent (after its outcome, if any). */
    void (*on_settled)(void *ctx, lep_sender_t *s, lep_delivery_t *d);

    /* A whole message arrived.  m is decoded into storage the receiver
     * reuses: valid for the call only (copy what you keep).  With
     * auto_accept (the default) the container accepts d after the call
     * unless the handler already gave it an outcome (lep_delivery_accept,
     * lep_delivery_reject, lep_delivery_release, lep_delivery_modify),
     * and settles it as the link's mode says.  A message that cannot be
     * decoded is rejected with amqp:decode-error without this call. */
    void (*on_message)(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m);
    /* Exactly-once receivers: the sender settled d, which the container
     * now settles too (the end of the exchange). */
    void (*on_delivery_settled)(void *ctx, lep_receiver_t *r, lep_delivery_t *d);

    /* The transport failed (socket error, protocol error, authentication
     * failure, TLS failure): cond says why.  Default: print it to stderr.
     * on_disconnected follows. */
    void (*on_transport_error)(void *ctx, lep_connection_t *c, const lep_condition_t *cond);
    /* The transport is gone.  lep_connection_reconnecting(c) tells whether
     * the container will try again.  unsettled: messages sent on this
     * transport that were not settled (outcome unknown); their
     * deliveries are gone, only their contexts are left: the array holds
     * the context of each (lep_delivery_set_context), n of them, valid
     * for the call. */
    void (*on_disconnected)(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n);
    /* Last event of a connection: it is closed for good and is freed
     * after this call (unless held). */
    void (*on_connection_final)(void *ctx, lep_connection_t *c);
} lep_handler_t;

/* ------------------------------------------------------------------ */
/* Container                                                           */

typedef struct lep_container_opts {
    const char *id;               /* container-id; NULL: a random UUID */
    const lep_handler_t *handler; /* copied; may be NULL */
    void *ctx;                    /* the handler's context */
    /* run() returns by itself once there is nothing left to do (no
     * connection, listener or timer).  Default true. */
    bool auto_stop;
    /* Optional protocol trace, one line per frame (as -v of the tools). */
    lep_trace_fn trace;
    void *trace_ctx;
} lep_container_opts_t;

LEP_EXPORT void lep_container_opts_init(lep_container_opts_t *o);
/* opts may be NULL (defaults).  Strings are copied. */
LEP_EXPORT int lep_container_new(lep_container_t **out, const lep_container_opts_t *opts);
/* Not while run() is running.  Frees every connection and listener
 * without calling handlers. */
LEP_EXPORT void lep_container_free(lep_container_t *c);
/* Serves events until the container stops.  Several threads may call it
 * at once.  Returns 0, or a negative LEP_ERR_* for a proactor failure. */
LEP_EXPORT int lep_container_run(lep_container_t *c);
/* Any thread, also a signal handler: closes every connection (AMQP close,
 * no reconnect) and listener, then run() returns in every thread. */
LEP_EXPORT void lep_container_stop(lep_container_t *c);
/* Any thread: fn(ctx) runs on a loop thread no earlier than delay_ms from
 * now, not serialized with any connection. */
LEP_EXPORT int lep_container_schedule(lep_container_t *c, uint64_t delay_ms, lep_io_fn fn,
                                      void *ctx);
LEP_EXPORT const char *lep_container_id(const lep_container_t *c);
LEP_EXPORT void *lep_container_context(const lep_container_t *c);
LEP_EXPORT lep_proactor_t *lep_container_proactor(const lep_container_t *c);

/* ------------------------------------------------------------------ */
/* Connections                                                         */

typedef struct lep_connection_opts {
    const lep_handler_t *handler; /* NULL: the container's; copied */
    void *ctx;
    /* SASL.  Credentials from the URL win over these. */
    const char *user;
    const char *password;
    bool sasl_enabled;            /* default true (client: SASL layer; server: offer SASL) */
    const char *sasl_mechanisms;  /* space separated; NULL: the library's choice */
    bool sasl_allow_insecure;     /* PLAIN without TLS */
    /* Servers: clients must authenticate with SASL (no plain AMQP
     * header).  Without it, a server with no users and no callback lets
     * clients skip SASL. */
    bool sasl_required;
    /* Servers: the users file and/or callback (sasl.h); none: the server
     * accepts ANONYMOUS and clients that skip SASL. */
    const lep_sasl_users_t *sasl_users; /* borrowed: must outlive the listener */
    lep_sasl_authenticate_fn sasl_authenticate;
    void *sasl_auth_ctx;
    /* TLS (amqps URLs).  tls_config wins (the container takes its own
     * reference); else made from the files below. */
    lep_tls_config_t *tls_config;
    const char *tls_ca;           /* clients: trusted CAs; NULL: the system's */
    const char *tls_cert;         /* our certificate (servers: required for amqps) */
    const char *tls_key;
    const char *tls_key_password;
    bool tls_verify;              /* clients: verify the server and its name; default true */
    /* Engine settings (see lep_conn_opts_t); 0 / NULL: the defaults. */
    const char *hostname;         /* open.hostname and SNI; NULL: the URL's host */
    uint32_t idle_timeout_ms;     /* default 60000 for clients (heartbeats), 0 for servers */
    uint32_t max_frame_size;
    uint16_t channel_max;
    uint64_t max_message_size;
    lep_bytes_t offered_capabilities;
    lep_bytes_t desired_capabilities;
    lep_bytes_t properties;
    /* Reconnect (clients): default on, 100 ms doubling to 10 s, no limit. */
    lep_reconnect_opts_t reconnect;
    /* More URLs to fail over to, in order, after the first. */
    const char *const *failover_urls;
    size_t nfailover_urls;
} lep_connection_opts_t;

LEP_EXPORT void lep_connection_opts_init(lep_connection_opts_t *o);

/* Connects to url (amqp[s]://[user[:password]@]host[:port][/address]; the
 * address part is ignored here).  url NULL: connect.json as Proton finds it
 * (lep_connect_config_find), else amqp://localhost.  o may be NULL.
 * Returns 0 with *out (may be NULL) set, or LEP_ERR_INVALID for a bad URL,
 * bad options or a bad connect.json (lep_container_error() says what is
 * wrong), LEP_ERR_NOMEM.  Connection failures come later as events
 * (on_transport_error, on_disconnected). */
LEP_EXPORT int lep_container_connect(lep_container_t *c, const char *url,
                                     const lep_connection_opts_t *o, lep_connection_t **out);
/* Listens on url's host and port (port 0: any free port,
 * lep_listener_port()).  amqps: TLS, with o->tls_cert/tls_key or
 * o->tls_config.  o applies to each accepted connection; its strings are
 * copied, sasl_users is borrowed. */
LEP_EXPORT int lep_container_listen(lep_container_t *c, const char *url,
                                    const lep_connection_opts_t *o, lep_listener_t **out);
/* Stops listening (connections it accepted live on).  Use this, not
 * lep_listener_close, for a listener the container made. */
LEP_EXPORT void lep_container_close_listener(lep_container_t *c, lep_listener_t *l);
/* Why the last failed lep_container_connect / listen / open_* call on this
 * thread failed, in words ("bad URL ...: ..."); "" when none. */
LEP_EXPORT const char *lep_container_error(void);

/* Conveniences: connect to url and open a sender/receiver on its address. */
typedef struct lep_sender_opts lep_sender_opts_t;
typedef struct lep_receiver_opts lep_receiver_opts_t;
LEP_EXPORT int lep_container_open_sender(lep_container_t *c, const char *url,
                                         const lep_sender_opts_t *so,
                                         const lep_connection_opts_t *co, lep_sender_t **out);
LEP_EXPORT int lep_container_open_receiver(lep_container_t *c, const char *url,
                                           const lep_receiver_opts_t *ro,
                                           const lep_connection_opts_t *co,
                                           lep_receiver_t **out);

/* Closes the connection gracefully (AMQP close with cond, may be NULL);
 * no reconnect follows. */
LEP_EXPORT int lep_connection_close(lep_connection_t *c, const lep_condition_t *cond);
/* Any thread: fn(ctx) runs in the connection's serialized context, where
 * it may use the connection's objects (send, accept, settle...); the
 * output it causes is written afterwards.  Items queued when the
 * connection ends for good are not run.  LEP_ERR_STATE once it has ended
 * (the caller must hold it, or otherwise know it is alive). */
LEP_EXPORT int lep_connection_inject(lep_connection_t *c, lep_io_fn fn, void *ctx);
/* The same, after delay_ms; serialized like inject. */
LEP_EXPORT int lep_connection_schedule(lep_connection_t *c, uint64_t delay_ms, lep_io_fn fn,
                                       void *ctx);
/* Any thread: keep the object's memory valid (inject then fails with
 * LEP_ERR_STATE once it has ended instead of crashing). */
LEP_EXPORT void lep_connection_hold(lep_connection_t *c);
LEP_EXPORT void lep_connection_release(lep_connection_t *c);

LEP_EXPORT lep_container_t *lep_connection_container(const lep_connection_t *c);
/* The current engine connection; NULL while there is no transport. */
LEP_EXPORT lep_conn_t *lep_connection_engine(const lep_connection_t *c);
/* The default session of the current transport; NULL when none. */
LEP_EXPORT lep_session_t *lep_connection_session(const lep_connection_t *c);
LEP_EXPORT void lep_connection_set_context(lep_connection_t *c, void *ctx);
LEP_EXPORT void *lep_connection_context(const lep_connection_t *c);
/* True for a connection a listener accepted. */
LEP_EXPORT bool lep_connection_is_server(const lep_connection_t *c);
/* Inside on_disconnected: another attempt will follow. */
LEP_EXPORT bool lep_connection_reconnecting(const lep_connection_t *c);
/* The authenticated user of an accepted connection (SASL), NULL if none. */
LEP_EXPORT const char *lep_connection_user(const lep_connection_t *c);
/* The peer's container-id, once it opened ("" before). */
LEP_EXPORT const char *lep_connection_remote_container(const lep_connection_t *c);
/* True when the peer's open offered the capability (a symbol such as
 * "ANONYMOUS-RELAY"). */
LEP_EXPORT bool lep_connection_offers(const lep_connection_t *c, const char *capability);
/* host:port of the current (or last) transport, e.g. "127.0.0.1:5672". */
LEP_EXPORT const char *lep_connection_peer(const lep_connection_t *c);

/* ------------------------------------------------------------------ */
/* Senders                                                             */

struct lep_sender_opts {
    const char *name;             /* link name; NULL: made up, unique */
    lep_delivery_mode_t mode;     /* default at-least-once */
    bool auto_settle;             /* default true: settle after the outcome callback */
    /* The whole terminus, when the address alone is not enough (e.g. a
     * durable target, capabilities).  Its address is replaced by the
     * address argument when that is given. */
    const lep_target_t *target;
    const lep_source_t *source;
    /* A sender with no target address: the anonymous relay (the peer
     * routes each message by its "to"). */
    const lep_handler_t *handler; /* NULL: the connection's */
    void *ctx;
};
LEP_EXPORT void lep_sender_opts_init(lep_sender_opts_t *o);

/* Opens a sender to address (NULL: no target address, anonymous relay).
 * On a connection without a transport yet, the attach goes out when it
 * connects. */
LEP_EXPORT int lep_connection_open_sender(lep_connection_t *c, const char *address,
                                          const lep_sender_opts_t *o, lep_sender_t **out);
/* Encodes m and sends it.  Needs credit (LEP_ERR_STATE without: check
 * lep_sender_credit or wait for on_sendable); LEP_ERR_LIMIT over the
 * peer's max-message-size.  m is borrowed (not kept).  *d (may be NULL)
 * gets the delivery for an unsettled send (NULL for at-most-once); set
 * its context to match it with the outcome callbacks later. */
LEP_EXPORT int lep_sender_send(lep_sender_t *s, const lep_message_t *m, lep_delivery_t **d);
/* The same with an encoded message (sections) in [p, p+len). */
LEP_EXPORT int lep_sender_send_encoded(lep_sender_t *s, const void *p, size_t len,
                                       lep_delivery_t **d);
LEP_EXPORT uint32_t lep_sender_credit(const lep_sender_t *s);
/* Messages sent on this sender and not settled yet. */
LEP_EXPORT uint32_t lep_sender_unsettled(const lep_sender_t *s);
/* Close (detach closed=true) with cond (may be NULL). */
LEP_EXPORT int lep_sender_close(lep_sender_t *s, const lep_condition_t *cond);
/* Detach without closing (keeps a durable terminus). */
LEP_EXPORT int lep_sender_detach(lep_sender_t *s);
/* The target address (for a link the peer opened: the peer's target
 * address; our source address with lep_sender_source_address). */
LEP_EXPORT const char *lep_sender_address(const lep_sender_t *s);
LEP_EXPORT const char *lep_sender_source_address(const lep_sender_t *s);
/* In on_sender_open for a link the peer opened: our source address (the
 * answer to a dynamic source).  Copied. */
LEP_EXPORT int lep_sender_set_source_address(lep_sender_t *s, const char *address);
/* The peer's source (when it opened the link) or target, as it sent it. */
LEP_EXPORT const lep_source_t *lep_sender_remote_source(const lep_sender_t *s);
LEP_EXPORT const lep_target_t *lep_sender_remote_target(const lep_sender_t *s);
LEP_EXPORT lep_connection_t *lep_sender_connection(const lep_sender_t *s);
LEP_EXPORT lep_link_t *lep_sender_link(const lep_sender_t *s); /* NULL without transport */
LEP_EXPORT lep_bytes_t lep_sender_name(const lep_sender_t *s);
LEP_EXPORT lep_delivery_mode_t lep_sender_mode(const lep_sender_t *s);
LEP_EXPORT void lep_sender_set_context(lep_sender_t *s, void *ctx);
LEP_EXPORT void *lep_sender_context(const lep_sender_t *s);

/* ------------------------------------------------------------------ */
/* Receivers                                                           */

struct lep_receiver_opts {
    const char *name;             /* link name; NULL: made up (required to be
                                     stable for a durable subscription) */
    lep_delivery_mode_t mode;     /* default at-least-once */
    uint32_t credit_window;       /* prefetch; default 10; 0: the application
                                     grants credit with lep_receiver_flow */
    bool auto_accept;             /* default true */
    bool dynamic;                 /* ask the peer for a temporary address (reply-to) */
    /* Durable subscription: source durable (unsettled-state) and
     * expiry-policy never; detach (lep_receiver_detach) to keep it. */
    bool durable;
    const char *distribution_mode; /* "move" or "copy" (browse); NULL: the peer's */
    const char *selector;         /* JMS-style selector filter (apache.org:selector-filter:string) */
    lep_bytes_t filter;           /* an encoded filter-set map; wins over selector */
    const lep_source_t *source;   /* the whole terminus, as for senders */
    const lep_target_t *target;
    const lep_handler_t *handler;
    void *ctx;
};
LEP_EXPORT void lep_receiver_opts_init(lep_receiver_opts_t *o);

/* Opens a receiver from address (NULL with o->dynamic). */
LEP_EXPORT int lep_connection_open_receiver(lep_connection_t *c, const char *address,
                                            const lep_receiver_opts_t *o,
                                            lep_receiver_t **out);
/* Changes the prefetch window (e.g. in on_receiver_open for a link the
 * peer opened, whose default window is 10).  0: manual credit. */
LEP_EXPORT int lep_receiver_set_credit_window(lep_receiver_t *r, uint32_t window);
/* Turns auto_accept on or off (e.g. in on_receiver_open for a link the
 * peer opened, which starts with auto_accept on). */
LEP_EXPORT int lep_receiver_set_auto_accept(lep_receiver_t *r, bool on);
/* Grants n more credits (credit_window 0). */
LEP_EXPORT int lep_receiver_flow(lep_receiver_t *r, uint32_t n);
/* Asks the sender to use or return all credit. */
LEP_EXPORT int lep_receiver_drain(lep_receiver_t *r);
LEP_EXPORT uint32_t lep_receiver_credit(const lep_receiver_t *r);
LEP_EXPORT int lep_receiver_close(lep_receiver_t *r, const lep_condition_t *cond);
LEP_EXPORT int lep_receiver_detach(lep_receiver_t *r);
/* The source address: for a dynamic receiver the one the peer assigned
 * (from on_receiver_open on); "" before. */
LEP_EXPORT const char *lep_receiver_address(const lep_receiver_t *r);
/* In on_receiver_open for a link the peer opened: our target address
 * (the answer to a dynamic target).  Copied. */
LEP_EXPORT int lep_receiver_set_target_address(lep_receiver_t *r, const char *address);
LEP_EXPORT const char *lep_receiver_target_address(const lep_receiver_t *r);
LEP_EXPORT const lep_source_t *lep_receiver_remote_source(const lep_receiver_t *r);
LEP_EXPORT const lep_target_t *lep_receiver_remote_target(const lep_receiver_t *r);
LEP_EXPORT lep_connection_t *lep_receiver_connection(const lep_receiver_t *r);
LEP_EXPORT lep_link_t *lep_receiver_link(const lep_receiver_t *r);
LEP_EXPORT lep_bytes_t lep_receiver_name(const lep_receiver_t *r);
LEP_EXPORT lep_delivery_mode_t lep_receiver_mode(const lep_receiver_t *r);
LEP_EXPORT void lep_receiver_set_context(lep_receiver_t *r, void *ctx);
LEP_EXPORT void *lep_receiver_context(const lep_receiver_t *r);

/* ------------------------------------------------------------------ */
/* Outcomes for received messages (with auto_accept off, or to answer
 * other than accepted inside on_message).  lep_delivery_accept and
 * lep_delivery_release are in engine.h.  The container settles each as
 * the link's mode says (at once, or after the sender settles for
 * exactly-once); call lep_delivery_settle only for a delivery the
 * container does not manage (auto_accept off) once done with it. */

/* Rejected with an error (cond may be NULL).  Copied. */
LEP_EXPORT int lep_delivery_reject(lep_delivery_t *d, const lep_condition_t *cond);
/* Modified: failed (the delivery-count goes up), undeliverable here (not
 * to this receiver again). */
LEP_EXPORT int lep_delivery_modify(lep_delivery_t *d, bool failed, bool undeliverable_here);
/* Sets our outcome and settles as the mode of the delivery's link says:
 * the settlement helper for auto_accept off. */
LEP_EXPORT int lep_delivery_finish(lep_delivery_t *d, lep_outcome_type_t outcome);

/* ------------------------------------------------------------------ */
/* Conditions                                                           */

/* A condition from C strings (views: valid while the strings are). */
LEP_EXPORT lep_condition_t lep_condition_make(const char *name, const char *description);
/* Writes "name: description" (or "name") into buf; returns buf. */
LEP_EXPORT const char *lep_condition_format(const lep_condition_t *c, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
