/* lepton-client: sends requests with a dynamic reply-to address and prints
 * the replies in the order of the requests.  The counterpart of
 * lepton-server (or any request-response service). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define PROG "lepton-client"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS] URL -m TEXT [-m TEXT]...\n"
    "Send each TEXT as a request to the address in URL and print the replies, one\n"
    "per line, in the order of the requests.\n"
    "\n"
    "URL is amqp[s]://[USER[:PASSWORD]@]HOST[:PORT]/ADDRESS.  Replies come back on a\n"
    "receiver with a dynamic source: the peer (a broker or lepton-server --listen)\n"
    "assigns its address, which each request carries as reply-to, with the\n"
    "request's number as correlation-id.\n"
    "\n"
    "Options:\n"
    "  -m, --message TEXT      a request body (repeatable, at least one)\n"
    "%s"
    "\n"
    "Exit status: 0 when every request got its reply, 1 otherwise (rejected request,\n"
    "timeout, connection failure), 2 for bad usage.\n"
    "\n"
    "Example:\n"
    "  lepton-server --listen amqp://127.0.0.1:5672/requests &\n"
    "  " PROG " amqp://127.0.0.1:5672/requests -m hello -m world\n";

typedef struct client {
    cli_common_t common;
    const char **texts;
    size_t n;
    char **replies;
    size_t printed, got, sent;
    lep_sender_t *snd;     /* NULL once the peer closed it */
    lep_receiver_t *rcv;   /* NULL once the peer closed it */
    lep_connection_t *conn;
    lep_message_t *msg;
    volatile bool timed_out;
    int failed;
    bool done;
} client_t;

static void
print_ready(client_t *c)
{
    while (c->printed < c->n && c->replies[c->printed]) {
        puts(c->replies[c->printed]);
        c->printed++;
    }
    fflush(stdout);
}

static void
send_requests(client_t *c)
{
    if (!c->snd || !c->rcv || c->done)
        return;
    const char *reply_to = lep_receiver_address(c->rcv);
    if (!reply_to[0])
        return; /* the reply address is not known yet */
    while (c->sent < c->n && lep_sender_credit(c->snd) > 0) {
        lep_message_t *m = c->msg;
        lep_message_clear(m);
        lep_atom_t id = {.type = LEP_TYPE_ULONG};
        id.u.u = c->sent + 1;
        lep_message_set_id(m, &id);
        lep_message_set_correlation_id(m, &id);
        lep_message_set_reply_to(m, lep_bytes_str(reply_to));
        lep_message_set_body_string(m, lep_bytes_str(c->texts[c->sent]));
        lep_delivery_t *d;
        int rc = lep_sender_send(c->snd, m, &d);
        if (rc) {
            cli_error(PROG, "cannot send request %zu: %s", c->sent + 1, lep_strerror(rc));
            c->failed = 1;
            lep_connection_close(c->conn, NULL);
            return;
        }
        if (d)
            lep_delivery_set_context(d, (void *)(uintptr_t)(c->sent + 1));
        c->sent++;
    }
}

static void
on_receiver_open(void *ctx, lep_receiver_t *r)
{
    client_t *c = ctx;
    if (c->common.verbose)
        cli_error(PROG, "replies come to %s", lep_receiver_address(r));
    send_requests(c);
}

static void
on_sendable(void *ctx, lep_sender_t *s)
{
    send_requests(ctx);
}

static void
fail_request(client_t *c, lep_delivery_t *d, const char *what)
{
    uintptr_t k = (uintptr_t)lep_delivery_context(d);
    char why[300];
    cli_error(PROG, "request %zu %s: %s", (size_t)k, what,
              lep_condition_format(&lep_delivery_remote_state(d)->error, why, sizeof why));
    c->failed = 1;
    lep_connection_close(c->conn, NULL);
}

/* The peer closed or refused one of our links (a broker without dynamic
 * nodes refuses the reply receiver; RabbitMQ then ends the whole
 * session): no reply can come, so give up now instead of waiting for a
 * --timeout that may never come. */
static void
link_gone(client_t *c, const char *which)
{
    if (c->done)
        return;
    cli_error(PROG, "the peer closed the %s link with %zu of %zu replies", which, c->got, c->n);
    c->failed = 1;
    c->done = true;
    lep_connection_close(c->conn, NULL);
}

static void
on_sender_close(void *ctx, lep_sender_t *s)
{
    client_t *c = ctx;
    if (s != c->snd)
        return;
    c->snd = NULL;
    link_gone(c, "request");
}

static void
on_receiver_close(void *ctx, lep_receiver_t *r)
{
    client_t *c = ctx;
    if (r != c->rcv)
        return;
    c->rcv = NULL;
    link_gone(c, "reply");
}

static void
on_rejected(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    fail_request(ctx, d, "rejected");
}

static void
on_released(void *ctx, lep_sender_t *s, lep_delivery_t *d)
{
    fail_request(ctx, d, "released");
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    client_t *c = ctx;
    const lep_atom_t *cid = lep_message_correlation_id(m);
    if (!cid || cid->type != LEP_TYPE_ULONG || cid->u.u < 1 || cid->u.u > c->n ||
        c->replies[cid->u.u - 1]) {
        cli_error(PROG, "ignoring a reply that matches no request");
        return;
    }
    size_t i = (size_t)cid->u.u - 1;
    lep_bytes_t text;
    char *line;
    if (lep_message_body_string(m, &text) == 0 ||
        (lep_message_body_kind(m) == LEP_BODY_DATA && lep_message_body_count(m) == 1 &&
         ((text = lep_message_body_section(m, 0)), true))) {
        line = malloc(text.len + 1);
        memcpy(line, text.ptr, text.len);
        line[text.len] = '\0';
    } else {
        line = strdup("<reply without a text body>");
    }
    c->replies[i] = line;
    c->got++;
    print_ready(c);
    if (c->got == c->n && !c->done) {
        c->done = true;
        lep_connection_close(lep_receiver_connection(r), NULL);
    }
}

static void
on_final(void *ctx, lep_connection_t *conn)
{
    /* the work is over: a pending --timeout must not keep us */
    lep_container_stop(lep_connection_container(conn));
}

int
main(int argc, char **argv)
{
    client_t c;
    memset(&c, 0, sizeof c);
    cli_common_init(&c.common, PROG);
    static const struct option longopts[] = {
        {"message", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    c.texts = calloc((size_t)argc, sizeof *c.texts);
    int opt;
    while ((opt = getopt_long(argc, argv, ":m:vhV", longopts, NULL)) != -1) {
        if (cli_common_option(&c.common, opt, optarg))
            continue;
        switch (opt) {
        case 'm': c.texts[c.n++] = optarg; break;
        case 'h':
            printf(usage_text, cli_common_help);
            free(c.texts);
            return CLI_OK;
        default: cli_bad_option(PROG, argv, longopts, opt);
        }
    }
    if (!c.n && optind < argc)
        cli_usage_error(PROG, "no request: give at least one -m TEXT");
    cli_take_url(&c.common, argc, argv, true, false);
    if (!c.n)
        cli_usage_error(PROG, "no request: give at least one -m TEXT");
    c.replies = calloc(c.n, sizeof *c.replies);
    if (!c.replies || lep_message_new(&c.msg) != 0)
        return CLI_FAILED;

    lep_handler_t h = {
        .on_connection_final = on_final,
        .on_receiver_open = on_receiver_open,
        .on_sender_close = on_sender_close,
        .on_receiver_close = on_receiver_close,
        .on_sendable = on_sendable,
        .on_rejected = on_rejected,
        .on_released = on_released,
        .on_message = on_message,
    };
    lep_container_t *cont = cli_container_new(&c.common, &h, &c);
    lep_connection_opts_t co;
    cli_connection_opts(&c.common, &co);
    lep_sender_opts_t so;
    lep_sender_opts_init(&so);
    so.mode = c.common.mode;
    int rc = lep_container_open_sender(cont, c.common.url, &so, &co, &c.snd);
    if (rc == 0) {
        lep_receiver_opts_t ro;
        lep_receiver_opts_init(&ro);
        ro.dynamic = true;
        ro.mode = c.common.mode;
        rc = lep_connection_open_receiver(lep_sender_connection(c.snd), NULL, &ro, &c.rcv);
    }
    if (rc) {
        /* the URL and files were checked: what is left is at run time */
        cli_error(PROG, "%s", lep_container_error());
        lep_container_free(cont);
        return CLI_FAILED;
    }
    c.conn = lep_sender_connection(c.snd);
    cli_stop_on_signals(cont);
    cli_arm_timeout(cont, c.common.timeout_s, &c.timed_out);
    rc = lep_container_run(cont);
    lep_container_free(cont);
    if (c.timed_out)
        cli_error(PROG, "timed out after %g s with %zu of %zu replies", c.common.timeout_s,
                  c.got, c.n);
    bool ok = !rc && !c.failed && !c.timed_out && c.got == c.n;
    if (!ok && !c.timed_out && c.got < c.n && !c.failed)
        cli_error(PROG, "connection ended with %zu of %zu replies", c.got, c.n);
    for (size_t i = 0; i < c.n; i++)
        free(c.replies[i]);
    free(c.replies);
    free(c.texts);
    lep_message_free(c.msg);
    return ok ? CLI_OK : CLI_FAILED;
}
