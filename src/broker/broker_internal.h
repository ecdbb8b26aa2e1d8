/* Broker internals shared by the files of src/broker.
 *
 * Threads.  The broker runs on a messaging container served by several
 * threads; each connection (and its links) belongs to one thread at a
 * time.  Queues are shared by connections on any thread: a queue's state
 * is under its own mutex.  A queue never calls into a connection directly:
 * it puts messages in a consumer's outbox and wakes the consumer's
 * connection through its work queue (one work item per connection,
 * coalesced), which then sends them in its own context.  Likewise store
 * completions (on the store's writer thread) reach a producer's
 * connection through its work queue.
 *
 * Lifetimes.  A message (bmsg) is reference counted: one reference per
 * queue entry holding it.  An entry (bentry) is one message on one queue;
 * it is in exactly one place: a priority lane of its queue, a consumer's
 * outbox, or in flight to a consumer (the delivery's context).  A bconn
 * (per connection) is reference counted so that store completions and
 * queues can refer to it after its connection ended; consumers and
 * producers live in their connection's context. */
#ifndef LEPTON_BROKER_INTERNAL_H
#define LEPTON_BROKER_INTERNAL_H

#include <lepton/broker.h>
#include <lepton/messaging.h>

#include "broker/store.h"
#include "common/common_internal.h"

#include <pthread.h>
#include <stdatomic.h>

#define LEPI_PRIORITIES 10

typedef struct lep_broker broker_t;

typedef struct bqueue bqueue_t;
typedef struct bconn bconn_t;
typedef struct bconsumer bconsumer_t;
typedef struct bproducer bproducer_t;

/* ------------------------------------------------------------------ */
/* Logging                                                             */

enum { LEPI_LOG_ERROR, LEPI_LOG_WARN, LEPI_LOG_INFO, LEPI_LOG_DEBUG, LEPI_LOG_TRACE };
int lepi_log_level_parse(const char *s); /* -1 when unknown */
void lepi_log(broker_t *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ */
/* Messages                                                            */

typedef struct bmsg bmsg_t;

#define LEPI_ENV_MARK 0x01
#define LEPI_ENV_LEN 9

/* A message's place on one queue (lanes, a consumer's outbox or in
 * flight); holds a reference to the message. */
typedef struct bentry {
    struct bentry *prev, *next; /* lane, outbox or in-flight list */
    bmsg_t *msg;
    bqueue_t *q;
    uint64_t seq;              /* arrival order in the queue */
    uint32_t delivery_count;   /* deliveries so far (redelivered ones count) */
    bconsumer_t *owner;        /* in an outbox or in flight; NULL in a lane */
    bool durable;              /* journalled on this queue (ack it there) */
    bool grouped;              /* counted in its queue's group table (held by owner) */
} bentry_t;

struct bmsg {
    atomic_uint refs;
    uint64_t id;          /* store id (0: not stored) */
    int64_t expires;      /* ms since the epoch; 0: never */
    uint8_t priority;     /* 0..9 */
    uint32_t group;       /* hash of the group-id property; 0: in no group */
    bool durable;
    bool stored;          /* written to the journal (some queue holds it durably) */
    bool never_expires;   /* a dead letter: whatever its header says */
    bool recovered;       /* read back from the journal: it may have been delivered
                           * before the restart (sent with delivery-count + 1) */
    size_t header_len;    /* bytes of the header section at the start of data (0: none) */
    size_t len;
    /* The entry of the first queue the message goes on, allocated with it:
     * one allocation per message instead of two (others are allocated). */
    atomic_flag entry_taken;
    bentry_t entry;
    uint8_t env[LEPI_ENV_LEN]; /* the journal's envelope, right before data */
    uint8_t data[];       /* the encoded message as received */
};

/* What the journal holds of a message: the message as received, or, when
 * it expires, an envelope first: LEPI_ENV_MARK and the expiry time (ms,
 * little-endian 64 bits; LEPI_ENV_NEVER for a dead letter whose header
 * says it expires), so that a TTL still counts from the arrival after a
 * restart.  (An AMQP message starts with 0x00.) */
#define LEPI_ENV_NEVER INT64_MAX
lep_bytes_t lepi_bmsg_stored(bmsg_t *m);
/* The message in stored bytes, and the expiry time its envelope gives
 * (0: none). */
lep_bytes_t lepi_bmsg_unwrap(const void *data, size_t len, int64_t *expires);

/* A message from its encoded bytes (copied) and its decoded fields.
 * m may be NULL (recovery): the fields are decoded from data then.
 * now_ms: the time a TTL counts from; -1 reads the clock if there is one. */
int lepi_bmsg_new(bmsg_t **out, const void *data, size_t len, const lep_message_t *m,
                  lep_message_t *scratch, int64_t now_ms);
/* A private copy (refs 1, not stored) to change, e.g. a dead letter's. */
bmsg_t *lepi_bmsg_clone(const bmsg_t *m);
void lepi_bmsg_ref(bmsg_t *m);
void lepi_bmsg_unref(bmsg_t *m);
/* The bytes to send for a delivery number delivery_count (0: first): the
 * message as received, or with its header rewritten (delivery-count,
 * first-acquirer false; one more for a recovered message).  scratch is used for the rewrite; the view is
 * valid until scratch changes. */
lep_bytes_t lepi_bmsg_bytes(const bmsg_t *m, uint32_t delivery_count, lep_message_t *scratch,
                            lep_buf_t *out);

/* ------------------------------------------------------------------ */
/* Queues                                                              */

typedef struct blist {
    bentry_t *head, *tail;
    size_t n;
} blist_t;

typedef enum bqueue_kind {
    BQ_QUEUE = 0,     /* an address of its own */
    BQ_SUBSCRIPTION,  /* a topic subscriber's */
    BQ_TEMPORARY,     /* a dynamic node */
} bqueue_kind_t;

struct bqueue {
    broker_t *b;
    char *name;               /* the address (subscriptions: their own name) */
    uint64_t id;              /* store id (0: not durable) */
    bqueue_kind_t kind;
    lep_queue_policy_t policy; /* strings owned */
    atomic_int refs;          /* the address table, consumers, producers */
    pthread_mutex_t lock;
    /* under lock */
    blist_t lanes[LEPI_PRIORITIES];
    size_t depth;             /* messages in lanes + outboxes + in flight */
    size_t bytes;
    uint64_t next_seq;
    bconsumer_t **consumers;  /* competing consumers, round-robin */
    size_t nconsumers, capconsumers, rr;
    bconsumer_t *browsers;    /* distribution-mode copy */
    bproducer_t *blocked;     /* producers waiting for room (overflow block) */
    /* message groups: the consumer holding each group (open addressing by
     * the group-id's hash, 0 free); a group is held while its owner has
     * messages of it not yet settled */
    struct bgroup *groups;
    size_t capgroups, ngroups;
    size_t grouped;           /* messages with a group-id on the queue */
    bool deleted;
    bool exclusive;           /* a dynamic source's: no other receivers */
    /* topic subscriptions */
    char *pattern;            /* the topic pattern after the topic prefix */
    bool durable_sub;         /* survives its link (detach keeps it) */
    bool attached;            /* a subscriber link is on it */
    /* statistics (under lock) */
    uint64_t enqueued, delivered, acked, dead_lettered, expired;
};

void lepi_blist_push_back(blist_t *l, bentry_t *e);
void lepi_blist_push_front(blist_t *l, bentry_t *e);
void lepi_blist_remove(blist_t *l, bentry_t *e);
bentry_t *lepi_blist_pop(blist_t *l);

/* Makes a queue (refs 1, for the caller). */
int lepi_queue_new(broker_t *b, const char *name, bqueue_kind_t kind,
                   const lep_queue_policy_t *policy, bqueue_t **out);
void lepi_queue_ref(bqueue_t *q);
void lepi_queue_unref(bqueue_t *q);
/* Puts msg on q (the queue takes a reference).  stored: the journal holds
 * it on q.  Returns 0, LEP_ERR_LIMIT (full and overflow reject). */
int lepi_queue_put(bqueue_t *q, bmsg_t *msg, bool stored);
/* True when a producer may get credit now (room left). */
size_t lepi_queue_room(bqueue_t *q);
/* Dead-letters or drops an entry taken off q (not locked). */
void lepi_queue_dead_letter(bqueue_t *q, bentry_t *e, const char *reason);
/* Empties the queue: its messages are dropped (management purge/delete). */
size_t lepi_queue_purge(bqueue_t *q);
size_t lepi_queue_room_locked(bqueue_t *q);
/* An entry consumed for good (accepted, or sent at-most-once). */
void lepi_queue_ack(bqueue_t *q, bentry_t *e);
/* Under lock: an entry given back goes to the front of its lane. */
void lepi_queue_requeue_locked(bqueue_t *q, bentry_t *e);
/* Hands queued messages to consumers with credit (not locked on entry). */
void lepi_queue_dispatch(bqueue_t *q);
/* Dead-letters expired messages still on the lanes. */
void lepi_queue_expire(bqueue_t *q, int64_t now);

/* ------------------------------------------------------------------ */
/* Consumers and producers (connection context)                        */

struct bconsumer {
    bconn_t *bc;
    bqueue_t *q;
    lep_sender_t *snd;
    bconsumer_t *cnext;        /* bc's list */
    bool browse;
    bool owns_temp;            /* its queue is a dynamic node: deleted with it */
    bool is_sub;               /* its queue is a topic subscription */
    /* under q->lock */
    int64_t credit;            /* may still be assigned */
    blist_t outbox;
    bool in_wake;              /* on bc's wake list */
    bconsumer_t *wnext;        /* bc's wake list */
    bconsumer_t *bnext;        /* q->browsers */
    uint64_t browse_seq;       /* browsers: next seq to look at */
    int browse_lane;
    bool detached;             /* off its queue */
    /* connection context */
    blist_t inflight;          /* sent, not settled */
};

struct bproducer {
    bconn_t *bc;
    lep_receiver_t *rcv;
    bproducer_t *pnext;        /* bc's list */
    bqueue_t *q;               /* the target queue; NULL: topic, relay, management */
    char *topic;               /* the topic name (after the prefix), for topic targets */
    bool relay;
    bool management;
    bool owns_temp;            /* its queue is a dynamic node: deleted with it */
    /* under q->lock */
    bproducer_t *blnext;       /* q->blocked */
    bool blocked;
    bool in_wake;
    bproducer_t *wnext;        /* bc's unblock list */
    /* connection context */
    uint32_t window;
    char last_to[256];         /* relay: the last address checked */
    unsigned last_allow;
    void *pending;             /* accepts waiting for the journal */
};

struct bconn {
    broker_t *b;
    lep_connection_t *conn;    /* held while the bconn lives */
    atomic_int refs;
    char *user;                /* "anonymous" when none */
    bool counted;              /* in the connection limits */
    bconsumer_t *consumers;
    bproducer_t *producers;
    lep_message_t *scratch;    /* header rewrites */
    lep_buf_t buf;
    bool throttled;            /* output full: a retry is scheduled */
    uint32_t retry_ms;         /* its delay: longer while nothing drains */
    uint64_t sent, sent_at_throttle; /* messages sent to consumers */
    /* shared (under lock): work handed in from other threads */
    pthread_mutex_t lock;
    bool wake_queued;          /* a work item is on its way */
    bool ended;
    bconsumer_t *wake;         /* consumers with outbox messages */
    bproducer_t *unblock;      /* producers that may get credit again */
    struct pending_accept *accepts; /* store completions to settle */
};

bconn_t *lepi_bconn_new(broker_t *b, lep_connection_t *conn);
void lepi_bconn_ref(bconn_t *bc);
void lepi_bconn_unref(bconn_t *bc);
/* From any thread: run the connection's wake work soon. */
void lepi_bconn_wake(bconn_t *bc);
/* Connection context: send outboxes, unblock producers, settle completed
 * stores. */
void lepi_bconn_work(void *ctx);
/* The connection ended: nothing more runs in its context. */
void lepi_bconn_end(bconn_t *bc);
/* An accept waiting for the journal (connection context); its completion
 * is lepi_pending_done (any thread). */
void *lepi_pending_new(bproducer_t *p, lep_delivery_t *d);
void lepi_pending_done(void *ctx, int status);
void lepi_pending_forget_one(bproducer_t *p, void *pending);
void lepi_pending_drop(void *pending);
void lepi_pending_forget(bproducer_t *p);

/* consumers.c */
int lepi_consumer_open(bconn_t *bc, lep_sender_t *s, bqueue_t *q, bool browse,
                       bconsumer_t **out);
/* The link's credit changed (connection context). */
void lepi_consumer_credit(bconsumer_t *c);
/* Sends what the outbox holds (connection context). */
void lepi_consumer_flush(bconsumer_t *c);
/* Outcome of a delivery we sent (connection context). */
void lepi_consumer_outcome(bconsumer_t *c, lep_delivery_t *d, lep_outcome_type_t t,
                           const lep_outcome_t *o);
/* Off the queue: in-flight and outbox messages go back to it (delivery
 * count up for those sent).  Frees c. */
void lepi_consumer_close(bconsumer_t *c);
/* Under q->lock: hand queued messages to consumers with credit; wakes
 * their connections. */
void lepi_queue_dispatch_locked(bqueue_t *q);

/* producers.c */
int lepi_producer_open(bconn_t *bc, lep_receiver_t *r, const char *address,
                       bproducer_t **out, lep_condition_t *why, char *whybuf, size_t whylen);
void lepi_producer_message(bproducer_t *p, lep_delivery_t *d, lep_message_t *m);
/* Grants credit up to the window as the queue's room allows. */
void lepi_producer_credit(bproducer_t *p);
void lepi_producer_close(bproducer_t *p);

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

typedef enum baddr_kind {
    BA_QUEUE,
    BA_TOPIC,
    BA_MANAGEMENT,
    BA_NONE,   /* unknown and not to be created */
} baddr_kind_t;

/* What an address names (after the prefixes are applied). */
baddr_kind_t lepi_address_kind(broker_t *b, const char *address);
/* The queue for address: found, or made.  create: LEPI_FIND only,
 * LEPI_CREATE as the prefixes and auto_create allow (an attach),
 * LEPI_CREATE_ALWAYS (management).  A new reference, or NULL (*err:
 * LEP_ERR_NOT_FOUND, LEP_ERR_NOMEM). */
enum { LEPI_FIND = 0, LEPI_CREATE = 1, LEPI_CREATE_ALWAYS = 2 };
bqueue_t *lepi_address_queue(broker_t *b, const char *address, int create, int *err);
/* Recovery and configured queues: made with a given kind and store id
 * (0: stored now if durable).  The table's reference, borrowed. */
bqueue_t *lepi_address_add(broker_t *b, const char *name, bqueue_kind_t kind, uint64_t id,
                           const char *pattern);
void lepi_address_free_all(broker_t *b);
/* A temporary queue with a fresh address (dynamic node).  exclusive: a
 * dynamic source's, received from only by the link that made it. */
bqueue_t *lepi_address_temporary(broker_t *b, bool exclusive);
/* Removes a queue from the table (delete, temporary queue closing). */
void lepi_address_remove(broker_t *b, bqueue_t *q);
/* A subscription queue for pattern (after the topic prefix); durable:
 * name is the subscriber's (container-id and link name), found again on
 * a later attach. */
bqueue_t *lepi_topic_subscribe(broker_t *b, const char *pattern, const char *durable_name,
                               int *err);
void lepi_topic_unsubscribe(broker_t *b, bqueue_t *sub, bool keep_durable);
/* Puts msg on every subscription whose pattern matches topic; returns how
 * many took it.  Durable messages to durable subscriptions are stored
 * (once, for all) and done(ctx) runs when that is durable; otherwise done
 * is not called and the return says 0 pending.  *pending set true when a
 * completion will follow. */
int lepi_topic_publish(broker_t *b, const char *topic, bmsg_t *msg, lepi_store_done_fn done,
                       void *ctx, bool *pending);
/* Topic pattern matching: words separated by '.', '*' one word, '#' zero
 * or more. */
bool lepi_topic_match(const char *pattern, const char *topic);
/* Visits every queue (for management and metrics) under the table lock. */
void lepi_address_each(broker_t *b, void (*fn)(void *ctx, bqueue_t *q), void *ctx);

/* ------------------------------------------------------------------ */
/* The broker                                                          */

struct lep_broker {
    lep_broker_config_t cfg;  /* a copy: strings owned */
    lep_container_t *c;
    lepi_store_t *store;
    int log_level;
    pthread_mutex_t log_lock;
    lep_sasl_users_t *users;
    lep_listener_t **listeners;
    size_t nlisteners;
    uint16_t *ports;
    atomic_uint_fast64_t next_msg_id, next_queue_id, next_temp;
    /* the address table */
    pthread_rwlock_t table_lock;
    struct bnode *nodes;      /* hash chains */
    size_t nbuckets, nnodes;
    bqueue_t **subs;          /* topic subscriptions */
    size_t nsubs, capsubs;
    bqueue_t *dlq;            /* the default dead-letter queue, or NULL */
    /* connections */
    pthread_mutex_t conn_lock;
    size_t nconns;
    struct buser_count *user_counts;
    /* statistics */
    atomic_uint_fast64_t connections_total, messages_in, messages_out;
    struct lepi_metrics_http *metrics;
    uint16_t metrics_port;
    lep_message_t *recovery_scratch;
};

/* Stores msg on queues (their store ids); done(ctx, status) when durable. */
int lepi_broker_store(broker_t *b, bmsg_t *msg, const uint64_t *queue_ids, size_t n,
                      lepi_store_done_fn done, void *ctx);
int64_t lepi_now_ms(void);

/* management.c */
void lepi_management_request(bconn_t *bc, bproducer_t *p, lep_delivery_t *d, lep_message_t *m);
void lepi_metrics_render(void *ctx, lep_buf_t *out);

#endif
