/* simple_recv: receive COUNT messages from an address and print their
 * bodies.
 *
 *   simple_recv [URL [COUNT]]      default amqp://127.0.0.1:5672/examples, 100 */
#include <lepton/messaging.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct app {
    int expected, received;
} app_t;

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    app_t *a = ctx;
    lep_bytes_t body;
    if (lep_message_body_string(m, &body) == 0)
        printf("%.*s\n", (int)body.len, (const char *)body.ptr);
    if (++a->received == a->expected)
        lep_connection_close(lep_receiver_connection(r), NULL);
}

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://127.0.0.1:5672/examples";
    app_t a = {.expected = argc > 2 ? atoi(argv[2]) : 100};
    lep_handler_t h = {.on_message = on_message};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    lep_container_t *c;
    lep_container_new(&c, &o);
    if (lep_container_open_receiver(c, url, NULL, NULL, NULL) != 0) {
        fprintf(stderr, "simple_recv: %s\n", lep_container_error());
        return 1;
    }
    lep_container_run(c);
    lep_container_free(c);
    return a.received == a.expected ? 0 : 1;
}
