/* server_direct: the request-response server without a broker.  Clients
 * connect to it, send requests to any address and read replies on a
 * dynamic receiver; the server gives each such receiver an address of its
 * own and sends the replies straight back on it.
 *
 *   server_direct [URL]            default amqp://127.0.0.1:5672/examples
 *
 * Stop it with Ctrl-C. */
#include <lepton/messaging.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define MAXCLIENTS 64

typedef struct app {
    struct {
        char address[128];
        lep_sender_t *sender;
    } clients[MAXCLIENTS];
    int n;
} app_t;

static lep_container_t *container;

/* A client's dynamic receiver: the container has made up an address for
 * it (lep_sender_source_address); replies to that address go here. */
static void
on_sender_open(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    const lep_source_t *src = lep_sender_remote_source(s);
    if (!src || !src->dynamic || a->n == MAXCLIENTS) {
        lep_condition_t cond = lep_condition_make("amqp:not-allowed", "dynamic receivers only");
        lep_sender_close(s, &cond);
        return;
    }
    snprintf(a->clients[a->n].address, sizeof a->clients[0].address, "%s",
             lep_sender_source_address(s));
    a->clients[a->n++].sender = s;
}

static void
on_sender_close(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    for (int i = 0; i < a->n; i++)
        if (a->clients[i].sender == s)
            a->clients[i] = a->clients[--a->n];
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    app_t *a = ctx;
    lep_bytes_t body, to = lep_message_reply_to(m);
    if (lep_message_body_string(m, &body) != 0)
        return;
    for (int i = 0; i < a->n; i++) {
        if (!lep_bytes_eq_str(to, a->clients[i].address))
            continue;
        char up[1024];
        size_t n = body.len < sizeof up ? body.len : sizeof up;
        for (size_t k = 0; k < n; k++)
            up[k] = (char)toupper(body.ptr[k]);
        lep_message_t *reply;
        lep_message_new(&reply);
        lep_message_set_to(reply, to);
        lep_message_set_correlation_id(reply, lep_message_correlation_id(m));
        lep_message_set_body_string(reply, LEP_BYTES(up, n));
        lep_sender_send(a->clients[i].sender, reply, NULL);
        lep_message_free(reply);
        return;
    }
    lep_condition_t cond = lep_condition_make("amqp:not-found", "unknown reply-to address");
    lep_delivery_reject(d, &cond);
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
    lep_handler_t h = {.on_sender_open = on_sender_open, .on_sender_close = on_sender_close,
                       .on_message = on_message};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    o.auto_stop = false; /* serve until stopped, also while no client is connected */
    lep_container_new(&container, &o);
    if (lep_container_listen(container, url, NULL, NULL) != 0) {
        fprintf(stderr, "server_direct: %s\n", lep_container_error());
        return 1;
    }
    fprintf(stderr, "server_direct: listening on %s\n", url);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lep_container_run(container);
    lep_container_free(container);
    return 0;
}
