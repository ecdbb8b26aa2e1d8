/* Messaging internals shared by container.c, connection.c and links.c. */
#ifndef LEPTON_MESSAGING_INTERNAL_H
#define LEPTON_MESSAGING_INTERNAL_H

#include <lepton/messaging.h>

#include "common/common_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* A handler with its context; set tells whether one was given at all. */
typedef struct lepi_hslot {
    lep_handler_t h;
    void *ctx;
    bool set;
} lepi_hslot_t;

/* The slot that handles the member at offset off: the link's, the
 * connection's or the container's, whichever first has it; NULL: none
 * has (the default behaviour applies).  link may be NULL. */
const lepi_hslot_t *lepi_pick(const lep_connection_t *c, const lepi_hslot_t *link, size_t off);
#define LEPI_PICK(conn, lslot, member) lepi_pick((conn), (lslot), offsetof(lep_handler_t, member))

/* Connection settings, copied from lep_connection_opts_t and a URL; one
 * per client connection, one per listener (shared read-only by the
 * connections it accepts). */
typedef struct lepi_settings {
    lepi_hslot_t handler;
    char *user, *password, *sasl_mechanisms, *hostname;
    bool sasl_enabled, sasl_allow_insecure, sasl_required;
    const lep_sasl_users_t *sasl_users;
    lep_sasl_authenticate_fn sasl_authenticate;
    void *sasl_auth_ctx;
    lep_tls_config_t *tls; /* our reference; NULL: no TLS */
    uint32_t idle_timeout_ms, max_frame_size;
    uint16_t channel_max;
    uint64_t max_message_size;
    lep_buf_t caps; /* offered, desired, properties, back to back */
    lep_bytes_t offered, desired, properties;
    /* clients: where to connect (failover list, first is the URL's) */
    lep_io_addr_t *addrs;
    char **hosts;
    size_t naddrs;
    lep_reconnect_opts_t reconnect;
} lepi_settings_t;

void lepi_settings_fini(lepi_settings_t *s);
/* Fills s from o (may be NULL); server: for a listener.  On error err
 * says why. */
int lepi_settings_init(lepi_settings_t *s, const lep_connection_opts_t *o, bool server,
                       const lep_url_t *url, char *err, size_t errlen);

/* A sender or receiver: the first member of struct lep_sender and
 * struct lep_receiver. */
typedef struct lepi_mlink {
    lep_connection_t *conn;
    struct lepi_mlink *prev, *next; /* the connection's list */
    lep_link_t *link;               /* the current engine link; NULL without one */
    lepi_hslot_t handler;
    void *ctx;
    char *name;
    bool receiver;
    bool incoming;       /* the peer opened it */
    bool app_closed;     /* the application closed or detached it */
    bool gone;           /* closed for good: freed at the next safe point */
    bool open_reported;  /* on_*_open called for the current link */
    lep_delivery_mode_t mode;
    /* our termini, encoded (source then target), re-decoded for each
     * attach so a reconnect attaches the same way */
    lep_buf_t terms;
    size_t source_len, target_len;
    bool has_source, has_target;
    char *address;       /* sender: target address; receiver: source address */
    char *local_address; /* sender: source address; receiver: target address */
    /* sender */
    bool auto_settle;
    /* receiver */
    uint32_t window;
    uint32_t pending_credit; /* granted before the link was attached */
    bool auto_accept;
    bool dynamic;
    /* a close asked for before the link was attached (refusal in
     * on_*_open), or inside a callback (detach_pending): the condition
     * to detach with */
    char *close_name, *close_desc;
    bool detach_pending, detach_closed;
} lepi_mlink_t;

struct lep_sender {
    lepi_mlink_t m;
};
struct lep_receiver {
    lepi_mlink_t m;
};

struct lep_container {
    lep_proactor_t *p;
    char *id;
    lepi_hslot_t handler;
    bool auto_stop;
    lep_trace_fn trace;
    void *trace_ctx;
    pthread_mutex_t lock; /* conns, listeners, start */
    pthread_cond_t started_cv;
    lep_connection_t *conns;
    size_t nconns;
    struct lepi_listener *listeners;
    bool started, start_done;
    int runners;
    atomic_bool stop_requested;
    bool stopping; /* under lock: connections are being closed */
    atomic_uint_fast64_t seq; /* link names, dynamic addresses */
};

typedef struct lepi_listener {
    struct lepi_listener *next;
    lep_container_t *cont;
    lep_listener_t *l; /* NULL once closed */
    lepi_settings_t set;
    bool tls;
} lepi_listener_t;

struct lep_connection {
    lep_container_t *cont;
    lep_connection_t *prev, *next; /* the container's list */
    lep_io_conn_t *ic;
    lep_conn_t *engine;     /* the current transport's, or NULL */
    lep_session_t *session; /* its default session */
    lepi_settings_t own;    /* clients */
    const lepi_settings_t *set; /* &own, or the listener's */
    bool server;
    bool tls;
    bool app_closed;
    bool ended;            /* final event done */
    bool transport_failed; /* the engine reported a transport error */
    bool reconnecting;     /* inside on_disconnected */
    int in_event;          /* dispatching an engine event: a close waits for its end */
    bool close_pending;
    bool links_pending;    /* some link's detach waits for the callback's end */
    char *close_name, *close_desc;
    atomic_int refs;
    atomic_bool ic_held;   /* our hold on ic, taken once by whoever sees it first */
    void *ctx;
    lepi_mlink_t *links;
    lep_message_t *msg;    /* decode scratch, reused */
    lep_buf_t enc;         /* encode scratch, reused */
    char *remote_container;
    char *user;
    char peer[80];
};

/* container.c */
void lepi_container_conn_add(lep_container_t *c, lep_connection_t *conn);
void lepi_container_conn_remove(lep_container_t *c, lep_connection_t *conn);
uint64_t lepi_container_next(lep_container_t *c);
void lepi_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *lepi_bytes_dup(lep_bytes_t b); /* NUL-terminated copy; NULL for {NULL, 0} */
void lepi_report(const char *who, const char *what, const lep_condition_t *cond);

/* connection.c */
int lepi_connection_new(lep_container_t *cont, const lepi_settings_t *set, bool server,
                        lep_connection_t **out);
void lepi_connection_release(lep_connection_t *c);

/* links.c */
/* Re-creates the engine links of every live mlink on a new transport. */
void lepi_links_attach_all(lep_connection_t *c);
/* Engine events for links and deliveries. */
void lepi_links_event(lep_connection_t *c, const lep_event_t *ev);
/* The transport is gone: engine links are dropped, links closed for good
 * are freed (unless final: the connection's final event still names
 * them); ctxs gets the contexts of unsettled sent deliveries. */
void lepi_links_transport_gone(lep_connection_t *c, bool final, void ***ctxs, size_t *n,
                               size_t *cap);
void lepi_links_free_all(lep_connection_t *c);
/* The detaches asked for inside callbacks, now that they returned. */
void lepi_links_detach_pending(lep_connection_t *c);
/* A session ended: its links are over. */
void lepi_links_session_end(lep_connection_t *c, lep_session_t *s, const lep_condition_t *cond);
/* A string address from an encoded terminus address (string or symbol);
 * "" when none.  Writes into buf. */
const char *lepi_address_str(lep_bytes_t enc, char *buf, size_t len);

#endif
