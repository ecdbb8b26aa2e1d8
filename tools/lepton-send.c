/* lepton-send: sends messages to an AMQP 1.0 address and waits for the
 * outcome the delivery mode asks for.  A thin main() over the messaging
 * API (include/lepton/messaging.h). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define PROG "lepton-send"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS] URL\n"
    "Send messages to the address in URL and wait until each is settled.\n"
    "\n"
    "URL is amqp[s]://[USER[:PASSWORD]@]HOST[:PORT]/ADDRESS (ports 5672 and\n"
    "5671 by default); ADDRESS is the queue, topic or other node to send to.\n"
    "\n"
    "Options:\n"
    "  -c, --count N           messages to send (default 1)\n"
    "  -m, --message TEXT      body text, as an AMQP string (default \"message N\",\n"
    "                          N counting from 1)\n"
    "  -s, --size BYTES        body of BYTES bytes (a data section: abc...xyzabc...)\n"
    "                          instead of text\n"
    "      --durable           mark the messages durable\n"
    "      --property KEY=VALUE\n"
    "                          an application property (string value); repeatable\n"
    "      --subject TEXT      the subject property\n"
    "      --reply-to ADDRESS  the reply-to property\n"
    "      --rate N            send at most N messages per second (decimals allowed;\n"
    "                          default 0: as fast as the receiver's credit allows)\n"
    "%s"
    "\n"
    "Each message carries its number (1, 2, ...) as its message-id.  With\n"
    "at-least-once and exactly-once each message must be accepted; a message\n"
    "rejected, released or modified by the receiver is reported (the first ten of\n"
    "each kind) and counts as a failure.  A summary goes to stderr.\n"
    "Messages whose outcome was lost with a broken connection are sent again after\n"
    "reconnecting (at-least-once: the receiver may see some twice).\n"
    "\n"
    "Exit status: 0 when every message reached its settlement, 1 when any did not\n"
    "(rejected, released, timeout, interrupted, connection or authentication\n"
    "failure, unreadable TLS file), 2 for bad usage.\n"
    "\n"
    "Examples:\n"
    "  " PROG " amqp://localhost/queue.orders -m hello\n"
    "  " PROG " -c 100000 -s 100 amqp://guest:guest@broker:5672/bench\n";

/* Outcomes reported one by one, of each kind; the summary counts all. */
#define REPORT_MAX 10

typedef struct prop {
    const char *key;
    const char *value;
} prop_t;

typedef struct sender {
    cli_common_t common;
    uint64_t count;
    const char *text;
    size_t size;
    bool durable;
    prop_t *props;
    size_t nprops;
    const char *subject, *reply_to;
    double rate;
    /* progress */
    uint8_t *state;        /* per message: 0 to send, 1 in flight, 2 done */
    uint64_t *resend;      /* messages whose outcome was lost */
    size_t nresend;
    uint64_t next;         /* next never-sent message */
    uint64_t finished;     /* reached a final state */
    uint64_t accepted, rejected, released, modified, lost;
    double budget;         /* --rate: messages that may go now */
    double t0;
    lep_sender_t *snd;     /* NULL once the peer closed it */
    lep_connection_t *conn;
    lep_message_t *msg;
    uint8_t *body;
    volatile bool timed_out;
    bool closing;
    int failed;
    bool rate_armed;
} sender_t;

static void
build_message(sender_t *s, uint64_t n)
{
    lep_message_t *m = s->msg;
    lep_message_clear(m);
    if (s->durable)
        lep_message_set_durable(m, true);
    lep_atom_t id = {.type = LEP_TYPE_ULONG};
    id.u.u = n + 1;
    lep_message_set_id(m, &id);
    if (s->subject)
        lep_message_set_subject(m, lep_bytes_str(s->subject));
    if (s->reply_to)
        lep_message_set_reply_to(m, lep_bytes_str(s->reply_to));
    for (size_t i = 0; i < s->nprops; i++) {
        lep_atom_t v = {.type = LEP_TYPE_STRING};
        v.u.bytes = lep_bytes_str(s->props[i].value);
        lep_message_set_property(m, lep_bytes_str(s->props[i].key), &v);
    }
    if (s->body) {
        lep_message_set_body_data(m, LEP_BYTES(s->body, s->size));
    } else if (s->text) {
        lep_message_set_body_string(m, lep_bytes_str(s->text));
    } else {
        char t[40];
        snprintf(t, sizeof t, "message %llu", (unsigned long long)n + 1);
        lep_message_set_body_string(m, lep_bytes_str(t));
    }
}

static void
finish_one(sender_t *s)
{
    s->finished++;
    if (s->finished == s->count && !s->closing) {
        s->closing = true;
        lep_connection_close(s->conn, NULL);
    }
}

static bool
next_message(sender_t *s, uint64_t *n)
{
    while (s->nresend) {
        uint64_t r = s->resend[--s->nresend];
        if (s->state[r] == 0) {
            *n = r;
            return true;
        }
    }
    if (s->next < s->count) {
        *n = s->next++;
        return true;
    }
    return false;
}

static void
send_some(sender_t *s)
{
    lep_sender_t *snd = s->snd;
    while (!s->closing && snd && lep_sender_credit(snd) > 0) {
        if (s->rate > 0 && s->budget < 1)
            return; /* the next tick sends more */
        uint64_t n;
        if (!next_message(s, &n))
            return;
        build_message(s, n);
        lep_delivery_t *d;
        int rc = lep_sender_send(snd, s->msg, &d);
        if (rc) {
            cli_error(PROG, "cannot send message %llu: %s", (unsigned long long)n + 1,
                      lep_strerror(rc));
            s->failed = 1;
            s->state[n] = 2;
            finish_one(s);
            continue;
        }
        s->budget -= 1;
        if (d) {
            s->state[n] = 1;
            lep_delivery_set_context(d, (void *)(uintptr_t)(n + 1));
        } else {
            s->state[n] = 2; /* at-most-once: done when written */
            finish_one(s);
        }
    }
}

static void
rate_tick(void *ctx)
{
    sender_t *s = ctx;
    /* A tick every 100 ms adds a tenth of the rate; what is not used
     * does not pile up beyond one tick's worth. */
    double tick = s->rate / 10.0;
    s->budget += tick;
    if (s->budget > (tick > 1 ? tick : 1))
        s->budget = tick > 1 ? tick : 1;
    if (s->closing)
        return;
    send_some(s);
    lep_connection_schedule(s->conn, 100, rate_tick, s);
}

static void
on_sendable(void *ctx, lep_sender_t *snd)
{
    sender_t *s = ctx;
    if (s->rate > 0 && !s->rate_armed) {
        s->rate_armed = true;
        lep_connection_schedule(lep_sender_connection(snd), 100, rate_tick, s);
    }
    send_some(s);
}

static uint64_t
index_of(lep_delivery_t *d)
{
    return (uint64_t)(uintptr_t)lep_delivery_context(d) - 1;
}

static void
on_accepted(void *ctx, lep_sender_t *snd, lep_delivery_t *d)
{
    sender_t *s = ctx;
    uint64_t n = index_of(d);
    if (s->state[n] == 2)
        return;
    s->state[n] = 2;
    s->accepted++;
    finish_one(s);
}

static void
on_rejected(void *ctx, lep_sender_t *snd, lep_delivery_t *d)
{
    sender_t *s = ctx;
    uint64_t n = index_of(d);
    if (s->state[n] == 2)
        return;
    s->state[n] = 2;
    s->rejected++;
    const lep_condition_t *err = &lep_delivery_remote_state(d)->error;
    char why[300];
    if (s->rejected <= REPORT_MAX)
        cli_error(PROG, "message %llu rejected%s%s%s", (unsigned long long)n + 1,
                  lep_condition_set(err) ? " (" : "",
                  lep_condition_set(err) ? lep_condition_format(err, why, sizeof why) : "",
                  lep_condition_set(err) ? ")" : "");
    if (s->rejected == REPORT_MAX + 1)
        cli_error(PROG, "more messages rejected: see the summary");
    s->failed = 1;
    finish_one(s);
}

static void
on_released(void *ctx, lep_sender_t *snd, lep_delivery_t *d)
{
    sender_t *s = ctx;
    uint64_t n = index_of(d);
    if (s->state[n] == 2)
        return;
    s->state[n] = 2;
    bool modified = lep_delivery_remote_state(d)->type == LEP_OUTCOME_MODIFIED;
    uint64_t k = modified ? ++s->modified : ++s->released;
    if (k <= REPORT_MAX)
        cli_error(PROG, "message %llu %s by the receiver", (unsigned long long)n + 1,
                  modified ? "modified" : "released");
    if (k == REPORT_MAX + 1)
        cli_error(PROG, "more messages %s: see the summary", modified ? "modified" : "released");
    s->failed = 1;
    finish_one(s);
}

static void
on_disconnected(void *ctx, lep_connection_t *c, void *const *unsettled, size_t n)
{
    sender_t *s = ctx;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = (uint64_t)(uintptr_t)unsettled[i] - 1;
        if (k >= s->count || s->state[k] != 1)
            continue;
        s->state[k] = 0;
        s->resend[s->nresend++] = k;
        s->lost++;
    }
    if (lep_connection_reconnecting(c) && n && s->common.verbose)
        cli_error(PROG, "%zu messages in doubt, sending them again after reconnecting", n);
}

/* The peer closed or refused the link (RabbitMQ refuses exactly-once and
 * ends the whole session): nothing more can be sent, so give up now
 * instead of waiting for a --timeout that may never come. */
static void
on_sender_close(void *ctx, lep_sender_t *snd)
{
    sender_t *s = ctx;
    if (snd != s->snd)
        return;
    s->snd = NULL;
    if (s->closing)
        return;
    cli_error(PROG, "the peer closed the link with %llu of %llu messages settled",
              (unsigned long long)s->finished, (unsigned long long)s->count);
    s->closing = true;
    s->failed = 1;
    lep_connection_close(s->conn, NULL);
}

static void
on_final(void *ctx, lep_connection_t *c)
{
    sender_t *s = ctx;
    if (s->finished < s->count)
        s->failed = 1;
    /* the work is over: a pending --timeout must not keep us */
    lep_container_stop(lep_connection_container(c));
}

static void
add_property(sender_t *s, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        cli_usage_error(PROG, "--property: expected KEY=VALUE, got '%s'", kv);
    prop_t *p = realloc(s->props, (s->nprops + 1) * sizeof *p);
    if (!p) {
        cli_error(PROG, "out of memory");
        exit(CLI_FAILED);
    }
    s->props = p;
    size_t kl = (size_t)(eq - kv);
    char *key = malloc(kl + 1);
    memcpy(key, kv, kl);
    key[kl] = '\0';
    p[s->nprops].key = key;
    p[s->nprops].value = eq + 1;
    s->nprops++;
}

static void
free_props(sender_t *s)
{
    for (size_t i = 0; i < s->nprops; i++)
        free((char *)s->props[i].key);
    free(s->props);
    s->props = NULL;
    s->nprops = 0;
}

static void
free_all(sender_t *s)
{
    free_props(s);
    lep_message_free(s->msg);
    free(s->state);
    free(s->resend);
    free(s->body);
}

int
main(int argc, char **argv)
{
    sender_t s;
    memset(&s, 0, sizeof s);
    cli_common_init(&s.common, PROG);
    s.count = 1;
    enum { O_DURABLE = 1, O_PROPERTY, O_SUBJECT, O_REPLY_TO, O_RATE };
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'c'},
        {"message", required_argument, NULL, 'm'},
        {"size", required_argument, NULL, 's'},
        {"durable", no_argument, NULL, O_DURABLE},
        {"property", required_argument, NULL, O_PROPERTY},
        {"subject", required_argument, NULL, O_SUBJECT},
        {"reply-to", required_argument, NULL, O_REPLY_TO},
        {"rate", required_argument, NULL, O_RATE},
        {"help", no_argument, NULL, 'h'},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt;
    bool have_size = false;
    while ((opt = getopt_long(argc, argv, ":c:m:s:vhV", longopts, NULL)) != -1) {
        if (cli_common_option(&s.common, opt, optarg))
            continue;
        switch (opt) {
        case 'c': s.count = cli_parse_u64(PROG, "--count", optarg, 1000000000); break;
        case 'm': s.text = optarg; break;
        case 's':
            s.size = (size_t)cli_parse_u64(PROG, "--size", optarg, UINT64_C(1) << 31);
            have_size = true;
            break;
        case O_DURABLE: s.durable = true; break;
        case O_PROPERTY: add_property(&s, optarg); break;
        case O_SUBJECT: s.subject = optarg; break;
        case O_REPLY_TO: s.reply_to = optarg; break;
        case O_RATE: s.rate = cli_parse_rate(PROG, "--rate", optarg, 1e8); break;
        case 'h':
            printf(usage_text, cli_common_help);
            free_props(&s);
            return CLI_OK;
        default: cli_bad_option(PROG, argv, longopts, opt);
        }
    }
    cli_take_url(&s.common, argc, argv, true, false);
    if (have_size && s.text)
        cli_usage_error(PROG, "--size and --message cannot be used together");
    if (s.count == 0) {
        free_props(&s);
        return CLI_OK;
    }
    s.state = calloc(s.count, 1);
    s.resend = malloc(s.count * sizeof *s.resend);
    if (have_size) {
        s.body = malloc(s.size ? s.size : 1);
        for (size_t i = 0; i < s.size; i++)
            s.body[i] = (uint8_t)('a' + i % 26);
    }
    if (!s.state || !s.resend || (have_size && !s.body) || lep_message_new(&s.msg) != 0) {
        cli_error(PROG, "out of memory for %llu messages", (unsigned long long)s.count);
        free_all(&s);
        return CLI_FAILED;
    }

    lep_handler_t h = {
        .on_sendable = on_sendable,
        .on_accepted = on_accepted,
        .on_rejected = on_rejected,
        .on_released = on_released,
        .on_disconnected = on_disconnected,
        .on_sender_close = on_sender_close,
        .on_connection_final = on_final,
    };
    lep_container_t *c = cli_container_new(&s.common, &h, &s);
    lep_connection_opts_t co;
    cli_connection_opts(&s.common, &co);
    lep_sender_opts_t so;
    lep_sender_opts_init(&so);
    so.mode = s.common.mode;
    if (lep_container_open_sender(c, s.common.url, &so, &co, &s.snd) != 0) {
        /* the URL and files were checked: what is left is at run time */
        cli_error(PROG, "%s", lep_container_error());
        lep_container_free(c);
        free_all(&s);
        return CLI_FAILED;
    }
    s.conn = lep_sender_connection(s.snd);
    cli_stop_on_signals(c);
    cli_arm_timeout(c, s.common.timeout_s, &s.timed_out);
    s.budget = 1;
    s.t0 = cli_now();
    int rc = lep_container_run(c);
    double secs = cli_now() - s.t0;
    lep_container_free(c);
    if (rc)
        cli_error(PROG, "event loop failed: %s", lep_strerror(rc));
    if (s.timed_out)
        cli_error(PROG, "timed out after %g s with %llu of %llu messages settled",
                  s.common.timeout_s, (unsigned long long)s.finished,
                  (unsigned long long)s.count);
    else if (cli_interrupted())
        cli_error(PROG, "interrupted with %llu of %llu messages settled",
                  (unsigned long long)s.finished, (unsigned long long)s.count);
    bool ok = !rc && !s.failed && !s.timed_out && !cli_interrupted() && s.finished == s.count;
    if (s.common.mode == LEP_AT_MOST_ONCE)
        fprintf(stderr, "%s: sent %llu of %llu messages (at-most-once) in %.3f s, %.0f msgs/s\n",
                PROG, (unsigned long long)s.finished, (unsigned long long)s.count, secs,
                secs > 0 ? (double)s.finished / secs : 0.0);
    else
        fprintf(stderr,
                "%s: %llu of %llu messages accepted (%llu rejected, %llu released, %llu "
                "modified, %llu resent) in %.3f s, %.0f msgs/s\n",
                PROG, (unsigned long long)s.accepted, (unsigned long long)s.count,
                (unsigned long long)s.rejected, (unsigned long long)s.released,
                (unsigned long long)s.modified, (unsigned long long)s.lost, secs, secs > 0 ? (double)s.accepted / secs : 0.0);
    free_all(&s);
    return ok ? CLI_OK : CLI_FAILED;
}
