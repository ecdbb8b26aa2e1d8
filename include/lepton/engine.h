/* lepton engine: the AMQP 1.0 transport (OASIS AMQP 1.0 part 2) as a
 * sans-IO state machine.
 *
 * The caller owns the socket and the clock.  It feeds bytes read from the
 * peer with lep_conn_feed(), writes what lep_conn_output() / _output_iov()
 * returns and reports it with lep_conn_consumed(), passes the time to
 * lep_conn_tick(), and drains events with lep_conn_next_event().  The
 * engine never blocks, never reads a clock, never touches a socket, and
 * allocates nothing per message on the hot path (deliveries come from a
 * per-connection pool, frames are encoded into one reusable buffer).
 *
 *   lep_conn_t *c;
 *   lep_conn_new(&c, &opts);            // client: opts.server = false
 *   lep_conn_open(c);                   // queue the header and open
 *   for (;;) {
 *       writev(fd, iov, lep_conn_output_iov(c, iov, 16)) -> lep_conn_consumed(c, n)
 *       read(fd, buf) -> lep_conn_feed(c, buf, n, &used)
 *       deadline = lep_conn_tick(c, now_ms)
 *       while ((ev = lep_conn_next_event(c))) handle(ev);
 *   }
 *
 * Objects.  A connection owns its sessions, a session its links, a link its
 * deliveries.  Pointers stay valid until lep_conn_free(), except:
 *   - a session or link may be released early with lep_session_free() /
 *     lep_link_free() once it is closed at both ends (or the connection is
 *     closed); after that it must not be used;
 *   - a delivery is released by the engine once the application has
 *     called lep_delivery_settle() and the engine no longer needs it; the
 *     application must not use it after settling it.
 * Views (lep_bytes_t, remote termini, error conditions) returned by getters
 * are valid until the object they came from is freed, unless a getter says
 * otherwise.
 *
 * Errors.  API calls return 0 or a negative LEP_ERR_*.  Protocol violations
 * by the peer never reach the caller as return codes: the engine closes the
 * connection (or detaches the link, or ends the session) with the AMQP error
 * condition the spec names, and reports LEP_EVENT_TRANSPORT_ERROR /
 * the remote/local close events.  All limits are in lep_conn_opts_t. */
#ifndef LEPTON_ENGINE_H
#define LEPTON_ENGINE_H

#include <lepton/amqp_types.h>
#include <lepton/codec.h>
#include <lepton/frame.h>

#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lep_conn lep_conn_t;
typedef struct lep_session lep_session_t;
typedef struct lep_link lep_link_t;
typedef struct lep_delivery lep_delivery_t;

/* ------------------------------------------------------------------ */
/* Error conditions                                                    */

/* An AMQP error as sent or received: views, valid as the getter says. */
typedef struct lep_condition {
    lep_bytes_t name;        /* symbol, e.g. "amqp:decode-error"; len 0: no error */
    lep_bytes_t description; /* UTF-8 text, may be empty */
    lep_bytes_t info;        /* encoded map (fields), may be empty */
} lep_condition_t;

static inline bool lep_condition_set(const lep_condition_t *c) { return c && c->name.len; }

/* ------------------------------------------------------------------ */
/* Transport layers (SASL, TLS) plug in between the bytes and AMQP.    */

/* A layer sits between the network (below) and the AMQP framing (above).
 * The engine calls it in both directions; it is owned by the connection
 * once added and freed by it.  include/lepton/sasl.h and tls.h make
 * layers; the engine knows nothing of their protocols. */
typedef struct lep_layer_ops {
    const char *name;
    /* Bytes from below: consume what is possible (*used), append bytes
     * for the layer above to `up`, and may append bytes to send to the
     * peer to `down` (handshakes).  Return 0 or an error; on error the
     * layer has called lep_conn_transport_error(). */
    int (*input)(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used,
                 lep_buf_t *up, lep_buf_t *down);
    /* Bytes from above: consume what may pass now (*used; a layer that
     * is not ready yet, like SASL before its outcome, consumes nothing)
     * and append what goes to the peer to `down`.  Called whenever the
     * caller asks for output, also with len 0, so a layer can start its
     * own handshake (a TLS client hello) before AMQP has anything. */
    int (*output)(void *ctx, lep_conn_t *c, const uint8_t *in, size_t len, size_t *used,
                  lep_buf_t *down);
    /* The peer closed its side: return true if that is a clean end for
     * this layer (e.g. TLS close_notify was seen). May be NULL. */
    bool (*input_closed)(void *ctx, lep_conn_t *c);
    void (*free)(void *ctx);
} lep_layer_ops_t;

/* Adds a layer below the ones added before (add SASL, then TLS): the
 * last added is nearest the network.  Takes ownership of ctx on success
 * only.  Only before any byte was fed or output. */
LEP_EXPORT int lep_conn_add_layer(lep_conn_t *c, const lep_layer_ops_t *ops, void *ctx);

/* For layers: fails the transport with an AMQP condition (e.g.
 * "amqp:unauthorized-access"); the engine reports
 * LEP_EVENT_TRANSPORT_ERROR and closes.  Strings are copied. */
LEP_EXPORT void lep_conn_transport_error(lep_conn_t *c, const char *condition,
                                         const char *description);
/* For layers: the authenticated identity (SASL) and whether the bytes
 * are encrypted (TLS).  Strings are copied. */
LEP_EXPORT int lep_conn_set_user(lep_conn_t *c, lep_bytes_t user);
LEP_EXPORT lep_bytes_t lep_conn_user(const lep_conn_t *c);
LEP_EXPORT void lep_conn_set_encrypted(lep_conn_t *c, bool encrypted);
LEP_EXPORT bool lep_conn_encrypted(const lep_conn_t *c);
/* True for a server-side connection. */
LEP_EXPORT bool lep_conn_is_server(const lep_conn_t *c);

/* ------------------------------------------------------------------ */
/* Connection                                                          */

typedef struct lep_conn_opts {
    bool server;                  /* wait for the peer's header instead of sending first */
    const char *container_id;     /* default: a random UUID string */
    const char *hostname;         /* open.hostname (virtual host); NULL: none */
    uint32_t max_frame_size;      /* default 65536; at least 512 */
    uint16_t channel_max;         /* default 255 */
    uint32_t idle_timeout_ms;     /* ours, sent in open; 0: none (default) */
    lep_bytes_t offered_capabilities; /* encoded symbol or array of symbols; may be empty */
    lep_bytes_t desired_capabilities;
    lep_bytes_t properties;       /* encoded map; may be empty */
    /* limits on what the peer may make us hold; 0: the default */
    uint32_t max_sessions;        /* default 256 */
    uint32_t max_links;           /* per session, default 1024 */
    uint32_t max_unsettled;       /* per link, incoming deliveries, default 65536 */
    uint64_t max_message_size;    /* our attach's max-message-size; 0: unlimited */
    uint32_t session_window;      /* incoming-window in frames, default 2048 */
} lep_conn_opts_t;

/* Fills opts with the defaults. */
LEP_EXPORT void lep_conn_opts_init(lep_conn_opts_t *opts);

/* opts may be NULL (defaults, client).  Strings and views are copied. */
LEP_EXPORT int lep_conn_new(lep_conn_t **out, const lep_conn_opts_t *opts);
LEP_EXPORT void lep_conn_free(lep_conn_t *c);

/* Application context pointers, for the caller's use only. */
LEP_EXPORT void lep_conn_set_context(lep_conn_t *c, void *ctx);
LEP_EXPORT void *lep_conn_context(const lep_conn_t *c);

/* Bytes in: consumes a prefix of in (*used), possibly all.  Returns 0, or
 * LEP_ERR_STATE when input is closed.  Protocol errors are not returned:
 * they become events and a close (lep_conn_finished()). */
LEP_EXPORT int lep_conn_feed(lep_conn_t *c, const uint8_t *in, size_t len, size_t *used);
/* The peer closed its side of the socket (EOF), or reading failed. */
LEP_EXPORT void lep_conn_input_closed(lep_conn_t *c);
/* Writing failed: the engine stops producing output and finishes. */
LEP_EXPORT void lep_conn_output_closed(lep_conn_t *c);

/* Bytes out.  The view is valid until the next call on the connection
 * other than lep_conn_output, lep_conn_output_iov or lep_conn_consumed. */
LEP_EXPORT lep_bytes_t lep_conn_output(lep_conn_t *c);
/* The same bytes as up to max iovecs, for writev; returns the count. */
LEP_EXPORT int lep_conn_output_iov(lep_conn_t *c, struct iovec *iov, int max);
LEP_EXPORT size_t lep_conn_output_pending(const lep_conn_t *c);
/* Bytes the connection holds for the peer that the caller has not taken
 * yet (lep_conn_consumed), encrypted or not: what a slow reader leaves
 * behind.  Unlike lep_conn_output_pending it frames nothing batched, so it
 * is cheap to ask often (e.g. before queueing more to send). */
LEP_EXPORT size_t lep_conn_output_buffered(const lep_conn_t *c);
LEP_EXPORT void lep_conn_consumed(lep_conn_t *c, size_t n);

/* Time: handles idle timeouts (sends heartbeats, fails a silent peer with
 * amqp:resource-limit-exceeded) and returns the next deadline in the same
 * clock, or -1 for none.  now_ms: any monotonic milliseconds. */
LEP_EXPORT int64_t lep_conn_tick(lep_conn_t *c, int64_t now_ms);

/* True when both directions are finished: nothing more to read or write. */
LEP_EXPORT bool lep_conn_finished(const lep_conn_t *c);

/* Endpoint actions. */
LEP_EXPORT int lep_conn_open(lep_conn_t *c);
/* cond may be NULL; copied. */
LEP_EXPORT int lep_conn_close(lep_conn_t *c, const lep_condition_t *cond);

/* What the peer sent, once LEP_EVENT_CONN_REMOTE_OPEN was seen. */
LEP_EXPORT const lep_open_t *lep_conn_remote_open(const lep_conn_t *c);
LEP_EXPORT const lep_condition_t *lep_conn_remote_condition(const lep_conn_t *c);
/* The condition the engine or the application closed with. */
LEP_EXPORT const lep_condition_t *lep_conn_local_condition(const lep_conn_t *c);
/* Negotiated values (valid after the remote open). */
LEP_EXPORT uint32_t lep_conn_max_frame_size(const lep_conn_t *c); /* what we may send */
LEP_EXPORT uint16_t lep_conn_channel_max(const lep_conn_t *c);
LEP_EXPORT uint32_t lep_conn_remote_idle_timeout(const lep_conn_t *c);

/* Endpoint states, as Proton's: local and remote halves. */
typedef enum lep_state {
    LEP_STATE_UNINIT = 0, /* not opened yet */
    LEP_STATE_ACTIVE = 1, /* opened / begun / attached */
    LEP_STATE_CLOSED = 2, /* closed / ended / detached */
} lep_state_t;
LEP_EXPORT lep_state_t lep_conn_local_state(const lep_conn_t *c);
LEP_EXPORT lep_state_t lep_conn_remote_state(const lep_conn_t *c);

/* ------------------------------------------------------------------ */
/* Events                                                              */

typedef enum lep_event_type {
    LEP_EVENT_NONE = 0,
    LEP_EVENT_CONN_REMOTE_OPEN,
    LEP_EVENT_CONN_REMOTE_CLOSE,
    LEP_EVENT_CONN_LOCAL_OPEN,
    LEP_EVENT_CONN_LOCAL_CLOSE,
    LEP_EVENT_SESSION_REMOTE_BEGIN,  /* a new remote session (lep_session_local_state UNINIT) or the answer to ours */
    LEP_EVENT_SESSION_REMOTE_END,
    LEP_EVENT_SESSION_LOCAL_BEGIN,
    LEP_EVENT_SESSION_LOCAL_END,
    LEP_EVENT_LINK_REMOTE_ATTACH,    /* a new remote link or the answer to ours */
    LEP_EVENT_LINK_REMOTE_DETACH,    /* lep_link_remote_closed() tells close from detach */
    LEP_EVENT_LINK_LOCAL_ATTACH,
    LEP_EVENT_LINK_LOCAL_DETACH,
    LEP_EVENT_LINK_FLOW,             /* credit, drain or delivery-count changed */
    LEP_EVENT_DELIVERY,              /* see lep_delivery_* for what changed */
    LEP_EVENT_TRANSPORT_ERROR,       /* lep_conn_local_condition() says why */
    LEP_EVENT_TRANSPORT_CLOSED,      /* last event: both directions finished */
} lep_event_type_t;

typedef struct lep_event {
    lep_event_type_t type;
    lep_conn_t *conn;
    lep_session_t *session;   /* NULL for connection events */
    lep_link_t *link;         /* NULL unless a link or delivery event */
    lep_delivery_t *delivery; /* LEP_EVENT_DELIVERY only */
} lep_event_t;

/* The next event, or NULL when there is none.  The event is valid until
 * the next call of lep_conn_next_event. */
LEP_EXPORT const lep_event_t *lep_conn_next_event(lep_conn_t *c);
LEP_EXPORT const char *lep_event_name(lep_event_type_t t);

/* ------------------------------------------------------------------ */
/* Sessions                                                            */

LEP_EXPORT int lep_session_new(lep_conn_t *c, lep_session_t **out);
/* Releases a session closed at both ends (or on a closed connection). */
LEP_EXPORT int lep_session_free(lep_session_t *s);
LEP_EXPORT int lep_session_begin(lep_session_t *s);
LEP_EXPORT int lep_session_end(lep_session_t *s, const lep_condition_t *cond);
LEP_EXPORT lep_conn_t *lep_session_conn(const lep_session_t *s);
LEP_EXPORT lep_state_t lep_session_local_state(const lep_session_t *s);
LEP_EXPORT lep_state_t lep_session_remote_state(const lep_session_t *s);
LEP_EXPORT const lep_condition_t *lep_session_remote_condition(const lep_session_t *s);
/* Incoming window in frames (before begin). */
LEP_EXPORT int lep_session_set_incoming_window(lep_session_t *s, uint32_t frames);
LEP_EXPORT void lep_session_set_context(lep_session_t *s, void *ctx);
LEP_EXPORT void *lep_session_context(const lep_session_t *s);

/* ------------------------------------------------------------------ */
/* Links                                                               */

typedef struct lep_link_opts {
    const char *name;              /* required, unique per connection and role */
    bool receiver;                 /* role: false sender, true receiver */
    uint8_t snd_settle_mode;       /* LEP_SND_SETTLE_*, default mixed */
    uint8_t rcv_settle_mode;       /* LEP_RCV_SETTLE_*, default first */
    const lep_source_t *source;    /* may be NULL (no source); copied */
    const lep_target_t *target;    /* may be NULL (no target); copied */
    uint64_t max_message_size;     /* 0: unlimited / connection default */
    lep_bytes_t offered_capabilities;
    lep_bytes_t desired_capabilities;
    lep_bytes_t properties;
    lep_bytes_t unsettled;         /* attach's unsettled map, encoded (resuming a link); may be empty */
    bool incomplete_unsettled;
} lep_link_opts_t;

LEP_EXPORT void lep_link_opts_init(lep_link_opts_t *o);
/* Creates a local link; attach with lep_link_attach. */
LEP_EXPORT int lep_link_new(lep_session_t *s, const lep_link_opts_t *o, lep_link_t **out);
/* For a remote-initiated link (LEP_EVENT_LINK_REMOTE_ATTACH with local
 * state UNINIT): set our termini before attaching.  NULL: echo the
 * remote's (for a dynamic terminus the application sets the address). */
LEP_EXPORT int lep_link_set_source(lep_link_t *l, const lep_source_t *src);
LEP_EXPORT int lep_link_set_target(lep_link_t *l, const lep_target_t *tgt);
LEP_EXPORT int lep_link_attach(lep_link_t *l);
/* closed: true closes the link (detach closed=true), false only detaches. */
LEP_EXPORT int lep_link_detach(lep_link_t *l, bool closed, const lep_condition_t *cond);
LEP_EXPORT int lep_link_free(lep_link_t *l);

LEP_EXPORT lep_session_t *lep_link_session(const lep_link_t *l);
LEP_EXPORT lep_bytes_t lep_link_name(const lep_link_t *l);
LEP_EXPORT bool lep_link_is_receiver(const lep_link_t *l);
LEP_EXPORT lep_state_t lep_link_local_state(const lep_link_t *l);
LEP_EXPORT lep_state_t lep_link_remote_state(const lep_link_t *l);
LEP_EXPORT bool lep_link_remote_closed(const lep_link_t *l);
LEP_EXPORT const lep_condition_t *lep_link_remote_condition(const lep_link_t *l);
/* What the peer's attach carried (views valid while the link lives). */
LEP_EXPORT const lep_attach_t *lep_link_remote_attach(const lep_link_t *l);
LEP_EXPORT const lep_source_t *lep_link_remote_source(const lep_link_t *l); /* NULL: none */
LEP_EXPORT const lep_target_t *lep_link_remote_target(const lep_link_t *l); /* NULL: none */
LEP_EXPORT const lep_source_t *lep_link_source(const lep_link_t *l);        /* ours */
LEP_EXPORT const lep_target_t *lep_link_target(const lep_link_t *l);
LEP_EXPORT uint8_t lep_link_snd_settle_mode(const lep_link_t *l); /* as agreed */
LEP_EXPORT uint8_t lep_link_rcv_settle_mode(const lep_link_t *l);
LEP_EXPORT void lep_link_set_context(lep_link_t *l, void *ctx);
LEP_EXPORT void *lep_link_context(const lep_link_t *l);

/* Credit.  Receiver: lep_link_flow grants n more credits (issues a flow);
 * lep_link_drain asks the sender to use or give up all credit.  Sender:
 * lep_link_credit is what may be sent now; lep_link_drained gives up the
 * remaining credit when the receiver asked for drain. */
LEP_EXPORT int lep_link_flow(lep_link_t *l, uint32_t n);
LEP_EXPORT int lep_link_drain(lep_link_t *l);
LEP_EXPORT bool lep_link_draining(const lep_link_t *l);
LEP_EXPORT uint32_t lep_link_credit(const lep_link_t *l);
LEP_EXPORT int lep_link_drained(lep_link_t *l);
LEP_EXPORT uint32_t lep_link_unsettled(const lep_link_t *l);  /* deliveries not yet settled */
LEP_EXPORT uint32_t lep_link_queued(const lep_link_t *l);     /* sender: deliveries not yet fully written */

/* ------------------------------------------------------------------ */
/* Deliveries                                                          */

/* Sender: a whole message in one call.  tag: delivery-tag (<= 32 bytes;
 * empty: the engine makes one).  settled: send pre-settled (at-most-once).
 * The bytes are copied; out (may be NULL) gets the delivery, which for a
 * pre-settled send is already released (do not use it: out is set NULL).
 * Needs credit (LEP_ERR_STATE without; check lep_link_credit).
 * LEP_ERR_LIMIT for a message larger than the peer's max-message-size
 * (also from lep_delivery_write, counting every piece). */
LEP_EXPORT int lep_link_send(lep_link_t *l, lep_bytes_t tag, const void *msg, size_t len,
                             bool settled, lep_delivery_t **out);
/* Sender, streaming: open a delivery, write pieces, the last with
 * more=false.  Frames go out as window and frame size allow. */
LEP_EXPORT int lep_link_delivery_new(lep_link_t *l, lep_bytes_t tag, lep_delivery_t **out);
LEP_EXPORT int lep_delivery_write(lep_delivery_t *d, const void *p, size_t len, bool more);
/* Either side: abort a partly transferred delivery (sender only).  An
 * aborted delivery counts as settled (spec 2.7.5) on both sides; each
 * application still calls lep_delivery_settle to release it. */
LEP_EXPORT int lep_delivery_abort(lep_delivery_t *d);

/* Receiver: the bytes received so far (all of the message when not
 * partial).  The view is valid until the next call on the connection
 * that can receive (feed) or lep_delivery_consume. */
LEP_EXPORT lep_bytes_t lep_delivery_data(const lep_delivery_t *d);
/* Drops the first n bytes of what was received (streaming reads). */
LEP_EXPORT void lep_delivery_consume(lep_delivery_t *d, size_t n);
LEP_EXPORT bool lep_delivery_partial(const lep_delivery_t *d);   /* more transfers to come */
LEP_EXPORT bool lep_delivery_aborted(const lep_delivery_t *d);
LEP_EXPORT lep_bytes_t lep_delivery_tag(const lep_delivery_t *d);
LEP_EXPORT uint32_t lep_delivery_message_format(const lep_delivery_t *d);
LEP_EXPORT lep_link_t *lep_delivery_link(const lep_delivery_t *d);

/* Outcomes and states (spec 3.4), as sent in dispositions. */
typedef enum lep_outcome_type {
    LEP_OUTCOME_NONE = 0,
    LEP_OUTCOME_RECEIVED,  /* section_number, section_offset */
    LEP_OUTCOME_ACCEPTED,
    LEP_OUTCOME_REJECTED,  /* error */
    LEP_OUTCOME_RELEASED,
    LEP_OUTCOME_MODIFIED,  /* delivery_failed, undeliverable_here, annotations */
    LEP_OUTCOME_OTHER,     /* raw: e.g. a transactional state */
} lep_outcome_type_t;

typedef struct lep_outcome {
    lep_outcome_type_t type;
    uint32_t section_number;
    uint64_t section_offset;
    lep_condition_t error;      /* rejected */
    bool delivery_failed;       /* modified */
    bool undeliverable_here;    /* modified */
    lep_bytes_t annotations;    /* modified: encoded map */
    lep_bytes_t raw;            /* other: the whole encoded delivery-state */
} lep_outcome_t;

/* Our state for the delivery, sent in a (batched) disposition.  Copied. */
LEP_EXPORT int lep_delivery_update(lep_delivery_t *d, const lep_outcome_t *o);
LEP_EXPORT int lep_delivery_accept(lep_delivery_t *d);
LEP_EXPORT int lep_delivery_release(lep_delivery_t *d);
/* Settles: the application is done with d, which must not be used after. */
LEP_EXPORT int lep_delivery_settle(lep_delivery_t *d);

/* What changed since the last LEP_EVENT_DELIVERY for d. */
LEP_EXPORT bool lep_delivery_readable(const lep_delivery_t *d);       /* receiver: new bytes */
LEP_EXPORT bool lep_delivery_updated(const lep_delivery_t *d);        /* remote state changed */
LEP_EXPORT bool lep_delivery_remote_settled(const lep_delivery_t *d);
/* The peer's state; views valid until the next event for d. */
LEP_EXPORT const lep_outcome_t *lep_delivery_remote_state(const lep_delivery_t *d);
LEP_EXPORT const lep_outcome_t *lep_delivery_local_state(const lep_delivery_t *d);
/* The deliveries of l the application has not settled yet, newest
 * first: for (d = lep_link_deliveries(l); d; d = lep_delivery_next(d)).
 * Settling or freeing inside the walk invalidates it. */
LEP_EXPORT lep_delivery_t *lep_link_deliveries(const lep_link_t *l);
LEP_EXPORT lep_delivery_t *lep_delivery_next(const lep_delivery_t *d);
LEP_EXPORT void lep_delivery_set_context(lep_delivery_t *d, void *ctx);
LEP_EXPORT void *lep_delivery_context(const lep_delivery_t *d);

/* ------------------------------------------------------------------ */
/* Tracing (lepton-dump style, one line per frame, both directions).   */

typedef void (*lep_trace_fn)(void *ctx, lep_conn_t *c, bool sent, const char *line);
LEP_EXPORT void lep_conn_set_trace(lep_conn_t *c, lep_trace_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
