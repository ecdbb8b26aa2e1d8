/* client: send requests with a dynamic reply-to address and print the
 * replies in order (the other half of server and server_direct).
 *
 *   client [URL]                   default amqp://127.0.0.1:5672/examples */
#include <lepton/messaging.h>

#include <stdio.h>

static const char *requests[] = {
    "Twas brillig, and the slithy toves",
    "Did gire and gymble in the wabe.",
    "All mimsy were the borogroves,",
    "And the mome raths outgrabe.",
};
enum { NREQ = 4 };

typedef struct app {
    lep_sender_t *sender;
    lep_receiver_t *receiver;
    int sent, received;
} app_t;

static void
send_next(app_t *a)
{
    /* one request at a time: the reply comes before the next goes */
    if (a->sent > a->received || a->sent == NREQ || !lep_sender_credit(a->sender))
        return;
    lep_message_t *m;
    lep_message_new(&m);
    lep_message_set_reply_to(m, lep_bytes_str(lep_receiver_address(a->receiver)));
    lep_message_set_body_string(m, lep_bytes_str(requests[a->sent]));
    lep_sender_send(a->sender, m, NULL);
    lep_message_free(m);
    a->sent++;
}

static void
on_receiver_open(void *ctx, lep_receiver_t *r)
{
    send_next(ctx); /* the reply-to address is known now */
}

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    if (lep_receiver_address(a->receiver)[0])
        send_next(a);
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    app_t *a = ctx;
    lep_bytes_t body;
    lep_message_body_string(m, &body);
    printf("%s => %.*s\n", requests[a->received], (int)body.len, (const char *)body.ptr);
    if (++a->received == NREQ)
        lep_connection_close(lep_receiver_connection(r), NULL);
    else
        send_next(a);
}

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://127.0.0.1:5672/examples";
    app_t a = {0};
    lep_handler_t h = {.on_receiver_open = on_receiver_open, .on_sendable = on_sendable,
                       .on_message = on_message};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    lep_container_t *c;
    lep_container_new(&c, &o);
    if (lep_container_open_sender(c, url, NULL, NULL, &a.sender) != 0) {
        fprintf(stderr, "client: %s\n", lep_container_error());
        return 1;
    }
    lep_receiver_opts_t ro;
    lep_receiver_opts_init(&ro);
    ro.dynamic = true;
    lep_connection_open_receiver(lep_sender_connection(a.sender), NULL, &ro, &a.receiver);
    lep_container_run(c);
    lep_container_free(c);
    return a.received == NREQ ? 0 : 1;
}
