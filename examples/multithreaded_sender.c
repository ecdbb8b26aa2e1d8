/* multithreaded_sender: application threads produce messages; a
 * container thread sends them.  The producers never touch the sender:
 * they hand each message to the connection's work queue
 * (lep_connection_inject), whose items run in the connection's own
 * serialized context, where sending is allowed.
 *
 *   multithreaded_sender [URL [COUNT [THREADS]]]
 *                                  default amqp://127.0.0.1:5672/examples, 1000, 4 */
#include <lepton/messaging.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct app {
    lep_container_t *c;
    lep_connection_t *conn;
    lep_sender_t *sender;
    pthread_mutex_t lock;
    pthread_cond_t ready_cv;
    bool ready;
    int per_thread, threads;
    /* only touched in the connection's context */
    char **queue;
    int queued, sent, accepted, total;
    lep_message_t *msg;
} app_t;

typedef struct item {
    app_t *a;
    char *text;
} item_t;

static void
flush(app_t *a)
{
    while (a->sent < a->queued && lep_sender_credit(a->sender) > 0) {
        lep_message_clear(a->msg);
        lep_message_set_body_string(a->msg, lep_bytes_str(a->queue[a->sent]));
        lep_sender_send(a->sender, a->msg, NULL);
        free(a->queue[a->sent]);
        a->sent++;
    }
}

/* Runs in the connection's context. */
static void
enqueue(void *ctx)
{
    item_t *it = ctx;
    app_t *a = it->a;
    a->queue[a->queued++] = it->text;
    free(it);
    flush(a);
}

static void
on_sender_open(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    pthread_mutex_lock(&a->lock);
    a->ready = true;
    pthread_cond_broadcast(&a->ready_cv);
    pthread_mutex_unlock(&a->lock);
}

/* The end, also a failed start: producers must not wait forever. */
static void
on_final(void *ctx, lep_connection_t *c)
{
    on_sender_open(ctx, NULL);
}

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    flush(ctx);
}

static void
on_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    app_t *a = ctx;
    if (++a->accepted == a->total)
        lep_connection_close(a->conn, NULL);
}

typedef struct producer {
    app_t *a;
    int id;
} producer_t;

static void *
produce(void *arg)
{
    producer_t *p = arg;
    app_t *a = p->a;
    pthread_mutex_lock(&a->lock);
    while (!a->ready)
        pthread_cond_wait(&a->ready_cv, &a->lock);
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < a->per_thread; i++) {
        item_t *it = malloc(sizeof *it);
        char text[64];
        snprintf(text, sizeof text, "thread %d message %d", p->id, i);
        it->a = a;
        it->text = strdup(text);
        if (lep_connection_inject(a->conn, enqueue, it) != 0) {
            free(it->text);
            free(it);
            break;
        }
    }
    return NULL;
}

static void *
run(void *arg)
{
    lep_container_run(arg);
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://127.0.0.1:5672/examples";
    app_t a;
    memset(&a, 0, sizeof a);
    a.total = argc > 2 ? atoi(argv[2]) : 1000;
    a.threads = argc > 3 ? atoi(argv[3]) : 4;
    if (a.threads < 1 || a.total < a.threads)
        return 2;
    a.per_thread = a.total / a.threads;
    a.total = a.per_thread * a.threads;
    a.queue = calloc((size_t)a.total, sizeof *a.queue);
    pthread_mutex_init(&a.lock, NULL);
    pthread_cond_init(&a.ready_cv, NULL);
    lep_message_new(&a.msg);
    lep_handler_t h = {.on_sender_open = on_sender_open, .on_sendable = on_sendable,
                       .on_accepted = on_accepted, .on_connection_final = on_final};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    lep_container_new(&a.c, &o);
    if (lep_container_open_sender(a.c, url, NULL, NULL, &a.sender) != 0) {
        fprintf(stderr, "multithreaded_sender: %s\n", lep_container_error());
        return 1;
    }
    a.conn = lep_sender_connection(a.sender);
    lep_connection_hold(a.conn); /* producers use it from their threads */
    pthread_t loop, producers[64];
    producer_t pp[64];
    pthread_create(&loop, NULL, run, a.c);
    for (int i = 0; i < a.threads && i < 64; i++) {
        pp[i] = (producer_t){&a, i};
        pthread_create(&producers[i], NULL, produce, &pp[i]);
    }
    for (int i = 0; i < a.threads && i < 64; i++)
        pthread_join(producers[i], NULL);
    pthread_join(loop, NULL);
    printf("%d messages sent by %d threads, %d accepted\n", a.total, a.threads, a.accepted);
    lep_connection_release(a.conn);
    lep_container_free(a.c);
    lep_message_free(a.msg);
    free(a.queue);
    return a.accepted == a.total ? 0 : 1;
}
