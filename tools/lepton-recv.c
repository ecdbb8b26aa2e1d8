/* lepton-recv: receives messages from an AMQP 1.0 address (or, with
 * --listen, from peers that connect to it) and prints them.  A thin
 * main() over the messaging API (include/lepton/messaging.h). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "lepton-recv"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS] URL\n"
    "Receive messages from the address in URL.\n"
    "\n"
    "URL is amqp[s]://[USER[:PASSWORD]@]HOST[:PORT]/ADDRESS (ports 5672 and\n"
    "5671 by default).  With --listen, " PROG " is the server: it listens on\n"
    "HOST:PORT (ADDRESS may be left out) and takes messages from senders that\n"
    "connect to it directly; the senders choose the delivery mode (--settle is\n"
    "theirs) and the connections need no SASL (ANONYMOUS is offered).\n"
    "\n"
    "Options:\n"
    "  -c, --count N           stop after N messages (default 1; 0: until stopped\n"
    "                          with Ctrl-C or SIGTERM)\n"
    "      --listen            listen on URL's host and port (peer-to-peer, no broker)\n"
    "      --print             print each message body on a line of its own\n"
    "      --json              print each message as a JSON object on one line\n"
    "                          (header, properties, annotations, application\n"
    "                          properties, body; binary that is not UTF-8 text as\n"
    "                          {\"base64\": \"...\"})\n"
    "      --credit N          prefetch window: messages the sender may send ahead\n"
    "                          (default 100)\n"
    "      --durable           a durable subscription (a topic subscriber's messages\n"
    "                          are kept while it is away): detaches at the end\n"
    "                          instead of closing; needs --name and --container-id\n"
    "                          to find it again\n"
    "      --unsubscribe       close the link at the end (ends a durable\n"
    "                          subscription)\n"
    "      --name NAME         the link name (default: made up)\n"
    "      --container-id ID   our AMQP container-id (default: a random UUID)\n"
    "%s"
    "\n"
    "Standard output is flushed after each message.  A summary (messages, seconds\n"
    "from the first message to the last, messages per second) goes to stderr.\n"
    "\n"
    "Exit status: 0 when COUNT messages arrived (or, with --count 0, when stopped\n"
    "by a signal), 1 on a timeout (also with --count 0), an interruption before\n"
    "COUNT, a connection or authentication failure, an unreadable TLS file, 2 for\n"
    "bad usage.\n"
    "\n"
    "Examples:\n"
    "  " PROG " --print amqp://localhost/queue.orders\n"
    "  " PROG " --listen -c 0 --json amqp://127.0.0.1:5672/inbox\n";

typedef struct receiver {
    cli_common_t common;
    uint64_t count;
    bool listen, print, json;
    uint32_t credit;
    bool durable, unsubscribe;
    const char *name;
    lep_receiver_t *rcv;
    uint64_t received;
    uint64_t issued;       /* received + the credit given and not used yet */
    uint64_t awaiting;     /* exactly-once: accepted, not yet settled by the sender */
    double t0, t_first, t_last;
    volatile bool timed_out;
    bool done;
    lep_listener_t *listener;
    lep_container_t *c;
    int failed;
} receiver_t;

/* The credit to give now so that at most `credit` messages are in flight
 * and never more than the count still wanted.  Counted against what
 * on_message has seen, not the link's credit: messages the engine took
 * in but has not handed over yet used credit already (a broker that
 * pre-settles would lose whatever we asked for beyond the count). */
static void
grant(receiver_t *s, lep_receiver_t *r)
{
    uint64_t target = s->received + s->credit;
    if (s->count && target > s->count)
        target = s->count;
    if (s->issued < s->received)
        s->issued = s->received; /* a peer sent beyond the credit */
    uint64_t out = s->issued - s->received;
    if (target > s->issued && (out <= s->credit / 2 || out == 0)) {
        lep_receiver_flow(r, (uint32_t)(target - s->issued));
        s->issued = target;
    }
}

static void
finish(receiver_t *s, lep_connection_t *conn)
{
    if (s->done)
        return;
    s->done = true;
    if (s->listener) {
        lep_container_close_listener(s->c, s->listener);
        s->listener = NULL;
    }
    /* a durable subscription stays behind unless asked to end it; a
     * connection that just goes away detaches its links */
    if (s->rcv && s->durable && !s->unsubscribe)
        lep_receiver_detach(s->rcv);
    else if (s->rcv)
        lep_receiver_close(s->rcv, NULL);
    lep_connection_close(conn, NULL);
}

static void
on_timeout(void *ctx)
{
    receiver_t *s = ctx;
    if (s->done)
        return;
    s->timed_out = true;
    finish(s, lep_receiver_connection(s->rcv));
}

static void
on_receiver_open(void *ctx, lep_receiver_t *r)
{
    receiver_t *s = ctx;
    if (s->done) {
        lep_receiver_close(r, NULL);
        return;
    }
    if (s->listen)
        lep_receiver_set_credit_window(r, 0);
    s->issued = s->received; /* a new link: the old one's credit is gone */
    grant(s, r);
}

/* The peer closed or refused our link (RabbitMQ refuses exactly-once and
 * ends the whole session): no more messages can come, so stop now
 * instead of waiting for a --timeout that may never come.  A listener's
 * clients detach when they are done. */
static void
on_receiver_close(void *ctx, lep_receiver_t *r)
{
    receiver_t *s = ctx;
    if (s->listen || s->done)
        return;
    cli_error(PROG, "the peer closed the link after %llu messages",
              (unsigned long long)s->received);
    s->failed = 1;
    finish(s, lep_receiver_connection(r));
}

/* Exactly-once: the exchange of a message ends when the sender settles
 * it after our accept; the last ones are waited for before closing, for
 * 5 s at most (a sender that never settles does not keep us). */
typedef struct grace {
    receiver_t *s;
    lep_connection_t *conn;
} grace_t;

static grace_t grace_ctx;

static void
grace_over(void *ctx)
{
    grace_t *g = ctx;
    if (!g->s->done && g->s->awaiting)
        cli_error(PROG, "%llu messages never settled by the sender",
                  (unsigned long long)g->s->awaiting);
    finish(g->s, g->conn);
}

static void
on_delivery_settled(void *ctx, lep_receiver_t *r, lep_delivery_t *d)
{
    receiver_t *s = ctx;
    if (s->awaiting)
        s->awaiting--;
    if (s->count && s->received >= s->count && !s->awaiting)
        finish(s, lep_receiver_connection(r));
}

static void
on_message(void *ctx, lep_receiver_t *r, lep_delivery_t *d, lep_message_t *m)
{
    receiver_t *s = ctx;
    if (s->done) {
        lep_delivery_release(d);
        return;
    }
    s->t_last = cli_now();
    if (!s->received)
        s->t_first = s->t_last;
    s->received++;
    if (s->json)
        cli_print_json(stdout, m);
    else if (s->print)
        cli_print_body(stdout, m);
    lep_link_t *l = lep_receiver_link(r);
    if (l && lep_link_rcv_settle_mode(l) == LEP_RCV_SETTLE_SECOND &&
        !lep_delivery_remote_settled(d))
        s->awaiting++;
    if (s->count && s->received >= s->count) {
        if (!s->awaiting) {
            finish(s, lep_receiver_connection(r));
        } else if (!grace_ctx.s) {
            grace_ctx.s = s;
            grace_ctx.conn = lep_receiver_connection(r);
            lep_connection_schedule(grace_ctx.conn, 5000, grace_over, &grace_ctx);
        }
    } else {
        grant(s, r);
    }
}

static void
on_final(void *ctx, lep_connection_t *c)
{
    receiver_t *s = ctx;
    if (s->listen && s->done)
        lep_container_stop(s->c);
    /* A client whose connection ended for good before the count failed;
     * a listener waits for the next peer. */
    if (s->listen)
        return;
    if (!s->done && !(s->count == 0 && cli_interrupted()))
        s->failed = 1;
    /* the work is over: a pending --timeout must not keep us */
    lep_container_stop(s->c);
}

int
main(int argc, char **argv)
{
    receiver_t s;
    memset(&s, 0, sizeof s);
    cli_common_init(&s.common, PROG);
    s.count = 1;
    s.credit = 100;
    enum { O_LISTEN = 1, O_PRINT, O_JSON, O_CREDIT, O_DURABLE, O_UNSUB, O_NAME, O_CID };
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'c'},
        {"listen", no_argument, NULL, O_LISTEN},
        {"print", no_argument, NULL, O_PRINT},
        {"json", no_argument, NULL, O_JSON},
        {"credit", required_argument, NULL, O_CREDIT},
        {"durable", no_argument, NULL, O_DURABLE},
        {"unsubscribe", no_argument, NULL, O_UNSUB},
        {"name", required_argument, NULL, O_NAME},
        {"container-id", required_argument, NULL, O_CID},
        {"help", no_argument, NULL, 'h'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:vhV", longopts, NULL)) != -1) {
        if (cli_common_option(&s.common, opt, optarg))
            continue;
        switch (opt) {
        case 'c': s.count = cli_parse_u64(PROG, "--count", optarg, UINT64_MAX - 1); break;
        case O_LISTEN: s.listen = true; break;
        case O_PRINT: s.print = true; break;
        case O_JSON: s.json = true; break;
        case O_DURABLE: s.durable = true; break;
        case O_UNSUB: s.unsubscribe = true; break;
        case O_NAME: s.name = optarg; break;
        case O_CID: s.common.container_id = optarg; break;
        case O_CREDIT:
            s.credit = (uint32_t)cli_parse_u64(PROG, "--credit", optarg, 1000000);
            if (!s.credit)
                cli_usage_error(PROG, "--credit must be at least 1");
            break;
        case 'h': printf(usage_text, cli_common_help); return CLI_OK;
        default: cli_bad_option(PROG, argv, longopts, opt);
        }
    }
    if (s.print && s.json)
        cli_usage_error(PROG, "--print and --json cannot be used together");
    cli_take_url(&s.common, argc, argv, !s.listen, s.listen);
    /* Scripts read the lines as they come (a message per line). */
    if (s.print || s.json)
        setvbuf(stdout, NULL, _IOLBF, 0);

    lep_handler_t h = {
        .on_receiver_open = on_receiver_open,
        .on_receiver_close = on_receiver_close,
        .on_delivery_settled = on_delivery_settled,
        .on_message = on_message,
        .on_connection_final = on_final,
    };
    s.c = cli_container_new(&s.common, &h, &s);
    lep_connection_opts_t co;
    cli_connection_opts(&s.common, &co);
    int rc;
    if (s.listen) {
        rc = lep_container_listen(s.c, s.common.url, &co, &s.listener);
    } else {
        lep_receiver_opts_t ro;
        lep_receiver_opts_init(&ro);
        ro.mode = s.common.mode;
        ro.credit_window = 0; /* granted by hand: never more than --count */
        ro.durable = s.durable;
        ro.name = s.name;
        rc = lep_container_open_receiver(s.c, s.common.url, &ro, &co, &s.rcv);
    }
    if (rc) {
        /* the URL and files were checked: what is left is at run time
         * (the port in use, a bad certificate...) */
        cli_error(PROG, "%s", lep_container_error());
        lep_container_free(s.c);
        return CLI_FAILED;
    }
    if (s.listen && s.common.verbose)
        cli_error(PROG, "listening on port %u", (unsigned)lep_listener_port(s.listener));
    cli_stop_on_signals(s.c);
    if (s.rcv && s.common.timeout_s > 0) {
        /* A client's timeout ends its link as a count would (closed, or
         * detached for a durable subscription), then its connection. */
        lep_connection_schedule(lep_receiver_connection(s.rcv),
                                (uint64_t)(s.common.timeout_s * 1000.0 + 0.5), on_timeout, &s);
    } else {
        cli_arm_timeout(s.c, s.common.timeout_s, &s.timed_out);
    }
    s.t0 = cli_now();
    rc = lep_container_run(s.c);
    double secs = s.received ? s.t_last - s.t_first : cli_now() - s.t0;
    lep_container_free(s.c);
    fflush(stdout);
    if (rc)
        cli_error(PROG, "event loop failed: %s", lep_strerror(rc));
    if (s.timed_out && s.count)
        cli_error(PROG, "timed out after %g s with %llu of %llu messages%s", s.common.timeout_s,
                  (unsigned long long)s.received, (unsigned long long)s.count,
                  s.listen && !s.received ? " (no sender came)" : "");
    else if (s.timed_out)
        cli_error(PROG, "timed out after %g s", s.common.timeout_s);
    else if (cli_interrupted() && s.count && s.received < s.count)
        cli_error(PROG, "interrupted with %llu of %llu messages", (unsigned long long)s.received,
                  (unsigned long long)s.count);
    fprintf(stderr, "%s: received %llu messages in %.3f s, %.0f msgs/s\n", PROG,
            (unsigned long long)s.received, secs,
            secs > 0 && s.received > 1 ? (double)s.received / secs : 0.0);
    bool ok = !rc && !s.timed_out && !s.failed &&
              (s.count ? s.received >= s.count : true);
    return ok ? CLI_OK : CLI_FAILED;
}
