/* helloworld: send "Hello World!" to an address and receive it back.
 *
 *   helloworld [URL]
 *
 * With a URL (amqp://HOST:PORT/ADDRESS) the message goes through a broker:
 * a sender and a receiver on the same address.  Without one the program
 * is its own peer: it listens on a free port and sends to itself, and the
 * message arrives on the link its listener accepted (Proton's
 * helloworld_direct). */
#include <lepton/messaging.h>

#include <stdio.h>

static lep_listener_t *listener;
static int result = 1;

static void
on_start(void *ctx, lep_container_t *c)
{
    const char *url = ctx;
    char self[64];
    if (!url) {
        lep_container_listen(c, "amqp://127.0.0.1:0", NULL, &listener);
        snprintf(self, sizeof self, "amqp://127.0.0.1:%u/examples", lep_listener_port(listener));
        url = self;
    }
    lep_connection_t *conn;
    if (lep_container_connect(c, url, NULL, &conn) != 0) {
        fprintf(stderr, "helloworld: %s\n", lep_container_error());
        lep_container_stop(c);
        return;
    }
    lep_connection_open_sender(conn, "examples", NULL, NULL);
    if (!listener)
        lep_connection_open_receiver(conn, "examples", NULL, NULL);
}

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    lep_message_t *m;
    lep_message_new(&m);
    lep_message_set_body_string(m, lep_bytes_str("Hello World!"));
    lep_sender_send(s, m, NULL);
    lep_message_free(m);
    lep_sender_close(s, NULL);
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    lep_bytes_t body;
    if (lep_message_body_string(m, &body) == 0) {
        printf("%.*s\n", (int)body.len, (const char *)body.ptr);
        result = 0;
    }
    lep_connection_close(lep_receiver_connection(r), NULL);
    if (listener)
        lep_container_close_listener(lep_connection_container(lep_receiver_connection(r)), listener);
}

int
main(int argc, char **argv)
{
    lep_handler_t h = {.on_container_start = on_start, .on_sendable = on_sendable,
                       .on_message = on_message};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = argc > 1 ? argv[1] : NULL;
    lep_container_t *c;
    if (lep_container_new(&c, &o) != 0)
        return 1;
    lep_container_run(c);
    lep_container_free(c);
    return result;
}
