/* server: answer requests arriving on a broker address with their body
 * upper-cased, sent to each request's reply-to address.
 *
 *   server [URL]                   default amqp://127.0.0.1:5672/examples
 *
 * Replies go through one sender per reply-to address (or one anonymous
 * sender when the broker offers the ANONYMOUS-RELAY capability); a reply
 * waits for its sender's credit.  Stop it with Ctrl-C. */
#include <lepton/messaging.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXROUTES 64
#define MAXWAITING 256

/* A reply waiting for its sender's credit (a new sender has none yet). */
typedef struct waiting {
    lep_sender_t *sender;
    lep_message_t *reply;
} waiting_t;

typedef struct app {
    lep_sender_t *relay;
    struct {
        char address[256];
        lep_sender_t *sender;
    } routes[MAXROUTES];
    int nroutes;
    waiting_t waiting[MAXWAITING];
    int nwaiting;
} app_t;

static lep_container_t *container;

static lep_sender_t *
sender_for(app_t *a, lep_connection_t *conn, lep_bytes_t to)
{
    if (lep_connection_offers(conn, "ANONYMOUS-RELAY")) {
        if (!a->relay)
            lep_connection_open_sender(conn, NULL, NULL, &a->relay);
        return a->relay;
    }
    char address[256];
    snprintf(address, sizeof address, "%.*s", (int)to.len, (const char *)to.ptr);
    for (int i = 0; i < a->nroutes; i++)
        if (!strcmp(a->routes[i].address, address))
            return a->routes[i].sender;
    if (a->nroutes == MAXROUTES)
        return NULL;
    snprintf(a->routes[a->nroutes].address, sizeof a->routes[0].address, "%s", address);
    lep_connection_open_sender(conn, address, NULL, &a->routes[a->nroutes].sender);
    return a->routes[a->nroutes++].sender;
}

/* Sends the replies waiting for s, as its credit allows. */
static void
on_sendable(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    for (int i = 0; i < a->nwaiting && lep_sender_credit(s) > 0;) {
        if (a->waiting[i].sender != s) {
            i++;
            continue;
        }
        lep_sender_send(s, a->waiting[i].reply, NULL);
        lep_message_free(a->waiting[i].reply);
        a->waiting[i] = a->waiting[--a->nwaiting];
    }
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    app_t *a = ctx;
    lep_bytes_t body, to = lep_message_reply_to(m);
    lep_sender_t *s;
    if (lep_message_body_string(m, &body) != 0 || !to.len ||
        !(s = sender_for(a, lep_receiver_connection(r), to)) || a->nwaiting == MAXWAITING) {
        lep_delivery_reject(d, NULL);
        return;
    }
    char up[1024];
    size_t n = body.len < sizeof up ? body.len : sizeof up;
    for (size_t i = 0; i < n; i++)
        up[i] = (char)toupper(body.ptr[i]);
    lep_message_t *reply;
    lep_message_new(&reply);
    lep_message_set_to(reply, to);
    lep_message_set_correlation_id(reply, lep_message_correlation_id(m));
    lep_message_set_body_string(reply, LEP_BYTES(up, n));
    a->waiting[a->nwaiting++] = (waiting_t){s, reply};
    on_sendable(a, s);
}

static void
on_signal(int sig)
{
    lep_container_stop(container);
}

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://127.0.0.1:5672/examples";
    app_t a;
    memset(&a, 0, sizeof a);
    lep_handler_t h = {.on_message = on_message, .on_sendable = on_sendable};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    lep_container_new(&container, &o);
    if (lep_container_open_receiver(container, url, NULL, NULL, NULL) != 0) {
        fprintf(stderr, "server: %s\n", lep_container_error());
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lep_container_run(container);
    lep_container_free(container);
    return 0;
}
