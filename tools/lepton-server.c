/* lepton-server: a request-response service.  Each request's body comes
 * back upper-cased to its reply-to address, with its correlation-id.
 * Through a broker it receives from URL's address; with --listen it is
 * the server clients connect to, and gives each client's dynamic
 * receiver an address of its own (the server_direct pattern). */
#include "cli.h"

#include <ctype.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define PROG "lepton-server"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS] URL\n"
    "Answer requests: each reply is the request's body upper-cased, sent to the\n"
    "request's reply-to address with the request's correlation-id (or, when it has\n"
    "none, its message-id).  The body is a string or data sections; ASCII letters\n"
    "are upper-cased, other bytes kept.  A request without reply-to, or whose body\n"
    "is neither, is rejected.\n"
    "\n"
    "URL is amqp[s]://[USER[:PASSWORD]@]HOST[:PORT]/ADDRESS.  Without --listen,\n"
    PROG " connects to a broker and takes requests from ADDRESS; replies go to\n"
    "each reply-to address (through the broker's anonymous relay when it offers\n"
    "one).  With --listen it is the server: clients connect to HOST:PORT, send\n"
    "requests to any address and receive replies on a dynamic receiver, whose\n"
    "address " PROG " assigns.\n"
    "\n"
    "Options:\n"
    "      --listen            listen on URL's host and port (no broker)\n"
    "  -c, --count N           stop after answering N requests (default 0: until\n"
    "                          stopped with Ctrl-C or SIGTERM); requests beyond N\n"
    "                          are released\n"
    "      --credit N          requests that may be in flight (default 100)\n"
    "%s"
    "\n"
    "Exit status: 0 when stopped by a signal or after COUNT replies, 1 on a\n"
    "connection failure or timeout, 2 for bad usage.\n";

/* A reply waiting for credit on its sender. */
typedef struct pending {
    struct pending *next;
    size_t len;
    uint8_t data[];
} pending_t;

/* A sender replies go out on: one per reply-to address (broker without
 * the anonymous relay), one anonymous (broker with it), or a client's
 * dynamic receiver (--listen). */
typedef struct route {
    struct route *next;
    char *address;
    lep_sender_t *snd;
    lep_connection_t *conn;
    pending_t *head, *tail;
} route_t;

typedef struct server {
    cli_common_t common;
    bool listen;
    uint64_t count, answered;
    uint32_t credit;
    route_t *routes;
    lep_message_t *reply;
    lep_buf_t buf;
    volatile bool timed_out;
    lep_container_t *c;
    lep_listener_t *listener;
    lep_connection_t *conn;
    int failed;
    bool done;
} server_t;

static route_t *
route_find(server_t *s, lep_connection_t *conn, const char *address)
{
    for (route_t *r = s->routes; r; r = r->next)
        if (r->conn == conn && (!address ? !r->address
                                         : r->address && !strcmp(r->address, address)))
            return r;
    return NULL;
}

static route_t *
route_new(server_t *s, lep_connection_t *conn, const char *address, lep_sender_t *snd)
{
    route_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->address = address ? strdup(address) : NULL;
    r->snd = snd;
    r->conn = conn;
    lep_sender_set_context(snd, r);
    r->next = s->routes;
    s->routes = r;
    return r;
}

static void
route_free_all(server_t *s, lep_connection_t *conn)
{
    route_t **pp = &s->routes;
    while (*pp) {
        route_t *r = *pp;
        if (conn && r->conn != conn) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        while (r->head) {
            pending_t *p = r->head;
            r->head = p->next;
            free(p);
        }
        free(r->address);
        free(r);
    }
}

/* After --count replies: stop once every reply has gone out. */
static void
maybe_stop(server_t *s)
{
    if (!s->done)
        return;
    for (route_t *r = s->routes; r; r = r->next)
        if (r->head)
            return;
    lep_container_stop(s->c);
}

static void
flush_route(server_t *s, route_t *r)
{
    while (r->head && lep_sender_credit(r->snd) > 0) {
        pending_t *p = r->head;
        int rc = lep_sender_send_encoded(r->snd, p->data, p->len, NULL);
        if (rc)
            cli_error(PROG, "cannot send a reply to %s: %s", r->address ? r->address : "?",
                      lep_strerror(rc));
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
        free(p);
    }
    maybe_stop(s);
}

static void
on_sendable(void *ctx, lep_sender_t *snd)
{
    server_t *s = ctx;
    route_t *r = lep_sender_context(snd);
    if (r)
        flush_route(s, r);
}

/* --listen: a client's dynamic receiver is our sender; remember its
 * address (made up by the container) to route replies. */
static void
on_sender_open(void *ctx, lep_sender_t *snd)
{
    server_t *s = ctx;
    if (!s->listen || lep_sender_context(snd))
        return;
    const char *addr = lep_sender_source_address(snd);
    if (!addr[0]) {
        lep_condition_t cond =
            lep_condition_make("amqp:invalid-field", "replies need a dynamic receiver or an address");
        lep_sender_close(snd, &cond);
        return;
    }
    if (!route_new(s, lep_sender_connection(snd), addr, snd))
        lep_sender_close(snd, NULL);
}

static void
on_sender_close(void *ctx, lep_sender_t *snd)
{
    server_t *s = ctx;
    route_t *r = lep_sender_context(snd);
    if (!r)
        return;
    for (route_t **pp = &s->routes; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            while (r->head) {
                pending_t *p = r->head;
                r->head = p->next;
                free(p);
            }
            free(r->address);
            free(r);
            break;
        }
    maybe_stop(s);
}

static void
on_receiver_open(void *ctx, lep_receiver_t *rcv)
{
    server_t *s = ctx;
    if (s->listen)
        lep_receiver_set_credit_window(rcv, s->credit);
}

/* Through a broker: the peer closed or refused the link requests come on
 * (RabbitMQ refuses exactly-once and ends the whole session).  No request
 * can come any more, so stop now instead of serving nothing. */
static void
on_receiver_close(void *ctx, lep_receiver_t *rcv)
{
    server_t *s = ctx;
    if (s->listen || s->done || cli_interrupted())
        return;
    cli_error(PROG, "the peer closed the link requests come on");
    s->failed = 1;
    lep_connection_close(lep_receiver_connection(rcv), NULL);
}

static void
upper(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)toupper(p[i]);
}

/* The route for a reply to address on conn, made when first needed. */
static route_t *
route_for(server_t *s, lep_connection_t *conn, const char *address)
{
    if (s->listen) {
        /* Only addresses we assigned, on any client's connection. */
        for (route_t *r = s->routes; r; r = r->next)
            if (r->address && !strcmp(r->address, address))
                return r;
        return NULL;
    }
    bool relay = lep_connection_offers(conn, "ANONYMOUS-RELAY");
    route_t *r = route_find(s, conn, relay ? NULL : address);
    if (r)
        return r;
    lep_sender_t *snd;
    if (lep_connection_open_sender(conn, relay ? NULL : address, NULL, &snd) != 0)
        return NULL;
    return route_new(s, conn, relay ? NULL : address, snd);
}

static void
on_message(void *ctx, lep_receiver_t *rcv, lep_delivery_t *d, lep_message_t *m)
{
    server_t *s = ctx;
    if (s->done) {
        /* --count reached: another server may take it */
        lep_delivery_release(d);
        return;
    }
    lep_bytes_t rt = lep_message_reply_to(m);
    if (!rt.len) {
        lep_condition_t cond = lep_condition_make("amqp:invalid-field", "request without reply-to");
        lep_delivery_reject(d, &cond);
        return;
    }
    char address[1024];
    snprintf(address, sizeof address, "%.*s", (int)rt.len, (const char *)rt.ptr);
    route_t *r = route_for(s, lep_receiver_connection(rcv), address);
    if (!r) {
        char why[1100];
        snprintf(why, sizeof why, "no route to reply-to address %s", address);
        lep_condition_t cond = lep_condition_make("amqp:not-found", why);
        lep_delivery_reject(d, &cond);
        return;
    }
    lep_message_t *out = s->reply;
    lep_message_clear(out);
    lep_message_set_to(out, rt);
    const lep_atom_t *cid = lep_message_correlation_id(m);
    lep_message_set_correlation_id(out, cid ? cid : lep_message_id(m));
    lep_bytes_t text;
    if (lep_message_body_string(m, &text) == 0) {
        char *u = malloc(text.len + 1);
        memcpy(u, text.ptr, text.len);
        upper((uint8_t *)u, text.len);
        lep_message_set_body_string(out, LEP_BYTES(u, text.len));
        free(u);
    } else if (lep_message_body_kind(m) == LEP_BODY_DATA) {
        for (size_t i = 0; i < lep_message_body_count(m); i++) {
            lep_bytes_t b = lep_message_body_section(m, i);
            uint8_t *u = malloc(b.len ? b.len : 1);
            memcpy(u, b.ptr, b.len);
            upper(u, b.len);
            lep_message_add_body_data(out, LEP_BYTES(u, b.len));
            free(u);
        }
    } else {
        lep_condition_t cond = lep_condition_make("amqp:decode-error",
                                                  "the body is neither text nor data");
        lep_delivery_reject(d, &cond);
        return;
    }
    s->buf.len = 0;
    if (lep_message_encode(out, &s->buf) != 0)
        return;
    pending_t *p = malloc(sizeof *p + s->buf.len);
    if (!p)
        return;
    p->next = NULL;
    p->len = s->buf.len;
    memcpy(p->data, s->buf.data, s->buf.len);
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    flush_route(s, r);
    s->answered++;
    if (s->common.verbose)
        cli_error(PROG, "answered a request for %s", address);
    if (s->count && s->answered >= s->count && !s->done) {
        s->done = true;
        maybe_stop(s);
    }
}

static void
on_final(void *ctx, lep_connection_t *c)
{
    server_t *s = ctx;
    route_free_all(s, c);
    if (!s->listen && !cli_interrupted() && !s->done)
        s->failed = 1;
    /* Through a broker the connection ended for good: nothing is left to
     * serve, and a pending --timeout must not keep us. */
    if (!s->listen)
        lep_container_stop(s->c);
    maybe_stop(s);
}

int
main(int argc, char **argv)
{
    server_t s;
    memset(&s, 0, sizeof s);
    cli_common_init(&s.common, PROG);
    s.credit = 100;
    enum { O_LISTEN = 1, O_CREDIT };
    static const struct option longopts[] = {
        {"listen", no_argument, NULL, O_LISTEN},
        {"count", required_argument, NULL, 'c'},
        {"credit", required_argument, NULL, O_CREDIT},
        {"help", no_argument, NULL, 'h'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:vhV", longopts, NULL)) != -1) {
        if (cli_common_option(&s.common, opt, optarg))
            continue;
        switch (opt) {
        case O_LISTEN: s.listen = true; break;
        case 'c': s.count = cli_parse_u64(PROG, "--count", optarg, UINT64_MAX - 1); break;
        case O_CREDIT:
            s.credit = (uint32_t)cli_parse_u64(PROG, "--credit", optarg, 1000000);
            if (!s.credit)
                cli_usage_error(PROG, "--credit must be at least 1");
            break;
        case 'h': printf(usage_text, cli_common_help); return CLI_OK;
        default: cli_bad_option(PROG, argv, longopts, opt);
        }
    }
    cli_take_url(&s.common, argc, argv, !s.listen, s.listen);
    lep_buf_init(&s.buf);
    if (lep_message_new(&s.reply) != 0)
        return CLI_FAILED;

    lep_handler_t h = {
        .on_sendable = on_sendable,
        .on_sender_open = on_sender_open,
        .on_sender_close = on_sender_close,
        .on_receiver_open = on_receiver_open,
        .on_receiver_close = on_receiver_close,
        .on_message = on_message,
        .on_connection_final = on_final,
    };
    s.c = cli_container_new(&s.common, &h, &s);
    lep_connection_opts_t co;
    cli_connection_opts(&s.common, &co);
    int rc;
    if (s.listen) {
        rc = lep_container_listen(s.c, s.common.url, &co, &s.listener);
        if (!rc && s.common.verbose)
            cli_error(PROG, "listening on port %u", (unsigned)lep_listener_port(s.listener));
    } else {
        lep_receiver_opts_t ro;
        lep_receiver_opts_init(&ro);
        ro.mode = s.common.mode;
        ro.credit_window = s.credit;
        rc = lep_container_open_receiver(s.c, s.common.url, &ro, &co, NULL);
    }
    if (rc) {
        /* the URL and files were checked: what is left is at run time */
        cli_error(PROG, "%s", lep_container_error());
        lep_container_free(s.c);
        lep_message_free(s.reply);
        return CLI_FAILED;
    }
    cli_stop_on_signals(s.c);
    cli_arm_timeout(s.c, s.common.timeout_s, &s.timed_out);
    rc = lep_container_run(s.c);
    lep_container_free(s.c);
    route_free_all(&s, NULL);
    lep_message_free(s.reply);
    lep_buf_fini(&s.buf);
    if (s.timed_out)
        cli_error(PROG, "timed out after %g s", s.common.timeout_s);
    fprintf(stderr, "%s: answered %llu requests\n", PROG, (unsigned long long)s.answered);
    return rc || s.failed || s.timed_out ? CLI_FAILED : CLI_OK;
}
