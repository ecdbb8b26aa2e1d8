/* simple_send: send COUNT messages to an address and wait until every one
 * is accepted.
 *
 *   simple_send [URL [COUNT]]      default amqp://127.0.0.1:5672/examples, 100 */
#include <lepton/messaging.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct app {
    int total, sent, confirmed;
    lep_message_t *msg;
} app_t;

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    app_t *a = ctx;
    while (lep_sender_credit(s) > 0 && a->sent < a->total) {
        char body[32];
        snprintf(body, sizeof body, "sequence %d", a->sent);
        lep_atom_t id = {.type = LEP_TYPE_ULONG, .u.u = (uint64_t)a->sent + 1};
        lep_message_clear(a->msg);
        lep_message_set_id(a->msg, &id);
        lep_message_set_body_string(a->msg, lep_bytes_str(body));
        lep_sender_send(s, a->msg, NULL);
        a->sent++;
    }
}

static void
on_accepted(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    app_t *a = ctx;
    if (++a->confirmed == a->total) {
        printf("all messages confirmed\n");
        lep_connection_close(lep_sender_connection(s), NULL);
    }
}

static void
on_disconnected(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n)
{
    app_t *a = ctx;
    a->sent = a->confirmed; /* send again what was not confirmed */
}

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "amqp://127.0.0.1:5672/examples";
    app_t a = {.total = argc > 2 ? atoi(argv[2]) : 100};
    lep_message_new(&a.msg);
    lep_handler_t h = {.on_sendable = on_sendable, .on_accepted = on_accepted,
                       .on_disconnected = on_disconnected};
    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.handler = &h;
    o.ctx = &a;
    lep_container_t *c;
    lep_container_new(&c, &o);
    if (lep_container_open_sender(c, url, NULL, NULL, NULL) != 0) {
        fprintf(stderr, "simple_send: %s\n", lep_container_error());
        return 1;
    }
    lep_container_run(c);
    lep_container_free(c);
    lep_message_free(a.msg);
    return a.confirmed == a.total ? 0 : 1;
}
