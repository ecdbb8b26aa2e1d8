/* lepton engine internals: the structures behind engine.h, shared by the
 * files of src/engine.  Not installed. */
#ifndef LEPTON_ENGINE_INTERNAL_H
#define LEPTON_ENGINE_INTERNAL_H

#include <lepton/engine.h>

#include "common/common_internal.h"

#include <string.h>

#define LEPI_MAX_LAYERS 4
#define LEPI_TAG_MAX 32
/* What we advertise as outgoing-window: we never hold transfers back for
 * our own window, so any large value will do. */
#define LEPI_OUTGOING_WINDOW 0x7fffffffu

/* b->data + off without the null-plus-zero UB of an empty buffer. */
static inline uint8_t *
lepi_at(const lep_buf_t *b, size_t off)
{
    return b->data ? b->data + off : NULL;
}

/* An owned copy of a condition: the views point into buf. */
typedef struct lepi_cond {
    lep_condition_t view;
    lep_buf_t buf;
} lepi_cond_t;

void lepi_cond_fini(lepi_cond_t *c);
int lepi_cond_set(lepi_cond_t *c, const lep_condition_t *src);
int lepi_cond_set_str(lepi_cond_t *c, const char *name, const char *desc);
/* Decodes an encoded error (described list) into a copy.  Empty raw or
 * null clears it.  Returns LEP_ERR_DECODE / _TYPE for a bad encoding. */
int lepi_cond_decode(lepi_cond_t *c, lep_bytes_t raw);
int lepi_cond_view(lep_bytes_t raw, lep_condition_t *out);
/* Encodes c as an amqp:error (nothing when c has no name). */
void lepi_cond_encode(lep_encoder_t *e, const lep_condition_t *c);
/* 0 when c (may be NULL) encodes; LEP_ERR_INVALID otherwise. */
int lepi_cond_check(const lep_condition_t *c);

typedef struct lepi_layer {
    const lep_layer_ops_t *ops;
    void *ctx;
    lep_buf_t pin;  /* input from below not consumed yet */
    lep_buf_t pout; /* output from above not consumed yet */
    lep_buf_t up, down; /* scratch for one call */
} lepi_layer_t;

/* Delivery flags (lep_delivery.flags). */
enum {
    LEPI_D_PARTIAL = 1u << 0,      /* more transfers to come (both roles) */
    LEPI_D_ABORTED = 1u << 1,
    LEPI_D_REMOTE_SETTLED = 1u << 2,
    LEPI_D_SETTLED = 1u << 3,      /* the application settled it */
    LEPI_D_SENT_ALL = 1u << 4,     /* sender: last transfer written */
    LEPI_D_STARTED = 1u << 5,      /* sender: first transfer written */
    LEPI_D_PRESETTLED = 1u << 6,   /* sent or received settled */
    LEPI_D_DISP_QUEUED = 1u << 7,  /* on the session's disposition queue */
    LEPI_D_EVENT_QUEUED = 1u << 8, /* an event for it is in the queue */
    LEPI_D_ON_SEND = 1u << 9,      /* on the link's send queue */
    LEPI_D_UNSETTLED = 1u << 10,   /* on the session's unsettled list */
    LEPI_D_WRITE_DONE = 1u << 11,  /* sender: application wrote the last piece */
    LEPI_D_ABORT_PENDING = 1u << 12,
    LEPI_D_UNCOUNTED = 1u << 13,   /* no longer in lep_link_unsettled */
};
/* Change bits, reported per event. */
enum {
    LEPI_CHG_READABLE = 1u << 0,
    LEPI_CHG_UPDATED = 1u << 1,
    LEPI_CHG_SETTLED = 1u << 2,
};

struct lep_delivery {
    lep_link_t *link;
    lep_delivery_t *next, *prev;     /* session unsettled list (by id) */
    lep_delivery_t *snext;           /* link send queue */
    lep_delivery_t *dnext;           /* session disposition queue */
    lep_delivery_t *lnext, *lprev;   /* every live delivery of the link */
    uint32_t id;                     /* delivery-id */
    uint32_t flags;
    uint8_t chg, seen;               /* change bits: pending / of the last event */
    uint8_t taglen;
    uint8_t tag[LEPI_TAG_MAX];
    uint32_t message_format;
    lep_buf_t data;                  /* receiver: bytes; sender: bytes to send */
    size_t off;                      /* receiver: consumed; sender: sent */
    size_t total;                    /* receiver: bytes received in all */
    lep_outcome_t local, remote;
    lep_buf_t local_buf, remote_buf; /* bytes behind the outcome views */
    void *ctx;
};

struct lep_link {
    lep_session_t *session;
    lep_link_t *next;                /* session's list of links */
    char *name;
    size_t namelen;
    bool receiver;
    lep_state_t local_state, remote_state;
    bool remote_closed, local_closed_flag;
    bool attach_sent, detach_sent, freed_by_app;
    uint32_t handle;                 /* ours */
    uint32_t remote_handle;
    bool has_remote_handle;
    uint8_t snd_settle_mode, rcv_settle_mode;
    uint64_t max_message_size;       /* ours */
    uint64_t remote_max_message_size;
    /* ours */
    bool has_source, has_target, terms_set;
    lep_source_t source;
    lep_target_t target;
    lep_buf_t terms_buf;             /* bytes behind source/target views */
    lep_buf_t caps_buf;              /* offered, desired, properties */
    lep_bytes_t offered_caps, desired_caps, properties, unsettled_map;
    bool incomplete_unsettled;
    /* theirs */
    lep_attach_t remote_attach;
    lep_buf_t remote_attach_buf;     /* the whole attach body, views into it */
    bool has_remote_source, has_remote_target;
    lep_source_t remote_source;
    lep_target_t remote_target;
    lepi_cond_t remote_cond, local_cond;
    /* credit (2.6.7) */
    uint32_t delivery_count;
    uint32_t credit;
    uint32_t available;
    bool drain;                      /* receiver: asked; sender: asked by peer */
    bool flow_pending;
    /* deliveries */
    lep_delivery_t *current;         /* receiver: partial incoming */
    lep_delivery_t *all;             /* every live delivery */
    bool internal;                   /* refused by the engine, invisible to the app */
    lep_delivery_t *sq_head, *sq_tail; /* sender: queued for transfer */
    uint32_t unsettled;
    uint32_t queued;
    uint64_t next_tag;
    void *ctx;
};

struct lep_session {
    lep_conn_t *conn;
    lep_session_t *next;             /* connection's list of sessions */
    lep_state_t local_state, remote_state;
    bool begin_sent, end_sent, freed_by_app;
    bool internal;                   /* refused by the engine, invisible to the app */
    uint16_t channel;                /* ours */
    uint16_t remote_channel;
    bool has_channel, has_remote_channel;
    lepi_cond_t remote_cond, local_cond;
    /* windows (2.5.6) */
    uint32_t next_outgoing_id;
    uint32_t next_incoming_id;
    uint32_t incoming_window;        /* ours, current */
    uint32_t incoming_window_max;    /* ours, configured */
    uint32_t remote_incoming_window;
    uint32_t remote_outgoing_window;
    uint32_t next_delivery_id;       /* outgoing deliveries */
    uint32_t remote_handle_max;
    uint32_t handle_max;             /* ours */
    /* links */
    lep_link_t *links;
    lep_link_t **handles;            /* by our handle */
    uint32_t nhandles;
    lep_link_t **rhandles;           /* by the peer's handle */
    uint32_t nrhandles;
    uint32_t nlinks;
    /* deliveries */
    lep_delivery_t *out_head, *out_tail; /* outgoing unsettled, by id */
    lep_delivery_t *in_head, *in_tail;   /* incoming unsettled, by id */
    lep_delivery_t *dq_head, *dq_tail;   /* dispositions to send */
    lep_delivery_t **dsort;          /* scratch for batching dispositions */
    uint32_t dsort_cap;
    bool flow_pending;               /* a session flow is owed */
    bool links_flow_pending;         /* some link owes a flow */
    void *ctx;
};

struct lep_conn {
    bool server;
    char *container_id;
    char *hostname;
    uint32_t max_frame_size;         /* ours (incoming limit) */
    uint16_t channel_max;
    uint32_t idle_timeout;
    lep_buf_t caps_buf;
    lep_bytes_t offered_caps, desired_caps, properties;
    uint32_t max_sessions, max_links, max_unsettled, session_window;
    uint64_t max_message_size;
    void *ctx;

    /* layers, [0] nearest AMQP */
    lepi_layer_t layers[LEPI_MAX_LAYERS];
    int nlayers;
    bool io_started;

    /* AMQP-level output (after header) and the bytes for the network */
    lep_buf_t wbuf;                  /* AMQP stream produced */
    size_t wpos;                     /* with layers: passed down so far */
    lep_buf_t out;                   /* with layers: bytes for the network */
    size_t opos;                     /* consumed by the caller */
    lep_buf_t scratch;               /* layer plumbing */
    lep_buf_t scratch2;

    /* AMQP-level input */
    lep_buf_t in;                    /* incomplete frame */
    bool hdr_received, hdr_sent, hdr_deferred;
    bool input_done, output_done;
    bool close_after_flush;          /* bad header: send ours, then stop */
    bool open_sent, close_sent;
    bool finished_reported;
    bool error_reported;
    lep_state_t local_state, remote_state;
    lep_open_t remote_open;
    lep_buf_t remote_open_buf;
    lepi_cond_t local_cond, remote_cond;
    lep_buf_t user;
    bool encrypted;

    /* negotiated */
    uint32_t remote_max_frame;       /* what we may send */
    uint16_t remote_channel_max;
    uint32_t remote_idle_timeout;

    /* sessions */
    lep_session_t *sessions;
    lep_session_t **channels;        /* by our channel */
    uint32_t nchannels;
    lep_session_t **rchannels;       /* by the peer's channel */
    uint32_t nrchannels;
    uint32_t nsessions;

    /* events: ring */
    lep_event_t *ev;
    uint32_t ev_cap, ev_head, ev_count;
    lep_event_t ev_cur;

    /* delivery pool */
    lep_delivery_t *pool;
    uint32_t pool_count;

    /* time */
    int64_t now, last_in, last_out;
    bool time_known;
    bool input_seen;                 /* bytes arrived since the last tick */

    /* trace */
    lep_trace_fn trace;
    void *trace_ctx;
    lep_buf_t trace_buf;
};

/* conn.c */
void lepi_event(lep_conn_t *c, lep_event_type_t t, lep_session_t *s, lep_link_t *l,
                lep_delivery_t *d);
void lepi_event_purge(lep_conn_t *c, const void *obj);
/* Fails the connection: condition, TRANSPORT_ERROR, close sent. */
void lepi_conn_fail(lep_conn_t *c, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool lepi_conn_can_send(const lep_conn_t *c);

/* frame_out.c: performatives into wbuf.  Return 0 or LEP_ERR_*. */
int lepi_write_perf(lep_conn_t *c, uint16_t ch, const lep_performative_t *p,
                    lep_bytes_t payload);
void lepi_trace_frame(lep_conn_t *c, bool sent, uint16_t ch, lep_bytes_t body);

/* frame_in.c */
int lepi_process_input(lep_conn_t *c, const uint8_t *p, size_t len);
void lepi_process_frame(lep_conn_t *c, const lep_frame_t *f);

/* session.c */
void lepi_session_destroy(lep_session_t *s);
void lepi_on_begin(lep_conn_t *c, uint16_t ch, const lep_begin_t *b);
void lepi_on_end(lep_conn_t *c, lep_session_t *s, const lep_end_t *e);
void lepi_on_flow(lep_conn_t *c, lep_session_t *s, const lep_flow_t *f);
lep_session_t *lepi_session_by_rchannel(lep_conn_t *c, uint16_t ch);
void lepi_session_fail(lep_session_t *s, const char *cond, const char *desc);
int lepi_session_send_flow(lep_session_t *s, lep_link_t *l, bool echo);
void lepi_session_flush(lep_session_t *s);
void lepi_sessions_flush(lep_conn_t *c);

/* link.c */
void lepi_link_destroy(lep_link_t *l);
void lepi_on_attach(lep_session_t *s, const lep_attach_t *a, lep_bytes_t raw);
void lepi_on_detach(lep_session_t *s, const lep_detach_t *d);
void lepi_link_on_flow(lep_link_t *l, const lep_flow_t *f);
lep_link_t *lepi_link_by_rhandle(lep_session_t *s, uint32_t h);
void lepi_link_fail(lep_link_t *l, const char *cond, const char *desc);

/* delivery.c */
lep_delivery_t *lepi_delivery_alloc(lep_conn_t *c);
void lepi_delivery_release(lep_conn_t *c, lep_delivery_t *d);
void lepi_pool_free(lep_conn_t *c);
void lepi_on_transfer(lep_session_t *s, const lep_transfer_t *t, lep_bytes_t payload);
void lepi_on_disposition(lep_session_t *s, const lep_disposition_t *d);
void lepi_link_pump(lep_link_t *l);
void lepi_session_pump(lep_session_t *s);
void lepi_flush_dispositions(lep_session_t *s);
void lepi_link_drop_deliveries(lep_link_t *l);
void lepi_delivery_event(lep_delivery_t *d, uint8_t chg);

/* misc */

#endif
