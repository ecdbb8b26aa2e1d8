/* Fuzz target: arbitrary bytes from a client into a server-side engine
 * (and, with bit 7, from a server into a client-side engine).
 *
 * The first input byte picks the set-up:
 *   bit 0  a SASL server layer (when include/lepton/sasl.h is there):
 *          PLAIN (user/pass, allowed in the clear) and ANONYMOUS
 *   bit 1  SASL optional (a client may skip it)
 *   bits 2-4  how the rest is cut into feeds: 0 all at once, else pieces
 *          of 1, 2, 3, 7, 16, 61 or 509 bytes
 *   bit 5  small limits (512-byte frames, 2 sessions, 2 links, 4 unsettled)
 *   bit 6  no offered capabilities (else ANONYMOUS-RELAY, as a broker)
 *   bit 7  client side instead: the engine opens, begins, attaches a
 *          sender and a receiver (credit 10) and hears a server's bytes
 *          (no SASL client layer yet: one that fails before its outcome
 *          never finishes, see tests/unit/engine/pending_scenarios.c.txt)
 * The rest is what the client sent.  The engine is driven like a
 * permissive server: it answers opens, begins and attaches, grants credit,
 * accepts and settles deliveries, sends a few messages where it is the
 * sender, answers drains, and moves a fake clock so idle timeouts run.
 *
 * Checked for any input: no crash, no leak, no undefined behaviour, and no
 * hang: every loop is bounded, and once the input is closed and the output
 * written out the engine must report itself finished. */
#include <lepton/engine.h>
#if defined(__has_include)
#if __has_include(<lepton/sasl.h>) && !defined(FUZZ_NO_SASL)
#include <lepton/sasl.h>
#define FUZZ_HAVE_SASL 1
#endif
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_HAVE_SASL
static bool
authenticate(void *ctx, lep_conn_t *c, const char *mechanism, lep_bytes_t user,
             lep_bytes_t password, lep_bytes_t authzid)
{
    (void)ctx;
    (void)c;
    (void)authzid;
    if (strcmp(mechanism, "ANONYMOUS") == 0)
        return true;
    return lep_bytes_eq_str(user, "user") && lep_bytes_eq_str(password, "pass");
}
#endif

typedef struct fuzz_state {
    int sent;      /* messages we sent as a sender, bounded */
    int64_t now;
} fuzz_state_t;

static void
drain_output(lep_conn_t *c)
{
    for (int i = 0; i < 64; i++) {
        struct iovec iov[8];
        int n = lep_conn_output_iov(c, iov, 8);
        size_t total = 0;
        for (int k = 0; k < n; k++)
            total += iov[k].iov_len;
        lep_bytes_t out = lep_conn_output(c);
        CHECK(out.len == lep_conn_output_pending(c));
        CHECK(total == out.len);
        if (!out.len)
            break;
        lep_conn_consumed(c, out.len);
    }
}

static void
handle(fuzz_state_t *st, const lep_event_t *ev)
{
    lep_conn_t *c = ev->conn;
    switch (ev->type) {
    case LEP_EVENT_CONN_REMOTE_OPEN:
        if (lep_conn_local_state(c) == LEP_STATE_UNINIT)
            lep_conn_open(c);
        break;
    case LEP_EVENT_CONN_REMOTE_CLOSE:
        if (lep_conn_local_state(c) == LEP_STATE_ACTIVE)
            lep_conn_close(c, NULL);
        break;
    case LEP_EVENT_SESSION_REMOTE_BEGIN:
        if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
            lep_session_begin(ev->session);
        break;
    case LEP_EVENT_SESSION_REMOTE_END:
        if (lep_session_local_state(ev->session) == LEP_STATE_ACTIVE)
            lep_session_end(ev->session, NULL);
        break;
    case LEP_EVENT_LINK_REMOTE_ATTACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
            lep_link_attach(ev->link);
            if (lep_link_is_receiver(ev->link))
                lep_link_flow(ev->link, 10);
        }
        break;
    case LEP_EVENT_LINK_REMOTE_DETACH:
        if (lep_link_local_state(ev->link) == LEP_STATE_ACTIVE)
            lep_link_detach(ev->link, lep_link_remote_closed(ev->link), NULL);
        break;
    case LEP_EVENT_LINK_FLOW:
        if (!lep_link_is_receiver(ev->link) && lep_link_local_state(ev->link) == LEP_STATE_ACTIVE) {
            while (lep_link_credit(ev->link) > 0 && st->sent < 16) {
                if (lep_link_send(ev->link, LEP_BYTES(NULL, 0), "\x00\x53\x77\xa1\x02hi", 7,
                                  st->sent & 1, NULL) != 0)
                    break;
                st->sent++;
            }
            if (lep_link_draining(ev->link))
                lep_link_drained(ev->link);
        }
        break;
    case LEP_EVENT_DELIVERY: {
        lep_delivery_t *d = ev->delivery;
        lep_link_t *l = lep_delivery_link(d);
        if (l && lep_link_is_receiver(l)) {
            lep_bytes_t b = lep_delivery_data(d);
            if (b.len)
                lep_delivery_consume(d, b.len);
            (void)lep_delivery_tag(d);
            (void)lep_delivery_message_format(d);
            if (lep_delivery_aborted(d)) {
                lep_delivery_settle(d);
            } else if (!lep_delivery_partial(d)) {
                if (!lep_delivery_remote_settled(d))
                    lep_delivery_accept(d);
                lep_delivery_settle(d);
                lep_link_flow(l, 1);
            }
        } else if (l) {
            const lep_outcome_t *o = lep_delivery_remote_state(d);
            (void)o;
            if (lep_delivery_remote_settled(d))
                lep_delivery_settle(d);
        }
        break;
    }
    default:
        break;
    }
}

static void
events(fuzz_state_t *st, lep_conn_t *c)
{
    const lep_event_t *ev;
    for (int i = 0; i < 100000 && (ev = lep_conn_next_event(c)) != NULL; i++) {
        CHECK(ev->conn == c);
        CHECK(lep_event_name(ev->type) != NULL);
        handle(st, ev);
    }
}

static int
start_client(lep_conn_t *c)
{
    lep_session_t *s;
    lep_link_t *snd, *rcv;
    int rc;
    if ((rc = lep_conn_open(c)) || (rc = lep_session_new(c, &s)) || (rc = lep_session_begin(s)))
        return rc;
    static const uint8_t addr[] = {0xa1, 0x01, 'q'};
    lep_source_t src;
    lep_target_t tgt;
    lep_source_init(&src);
    lep_target_init(&tgt);
    src.present = LEP_SOURCE_HAS_ADDRESS;
    src.address = LEP_BYTES(addr, sizeof addr);
    tgt.present = LEP_TARGET_HAS_ADDRESS;
    tgt.address = LEP_BYTES(addr, sizeof addr);
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "out";
    lo.source = &src;
    lo.target = &tgt;
    if ((rc = lep_link_new(s, &lo, &snd)) || (rc = lep_link_attach(snd)))
        return rc;
    lo.name = "in";
    lo.receiver = true;
    if ((rc = lep_link_new(s, &lo, &rcv)) || (rc = lep_link_attach(rcv)))
        return rc;
    return lep_link_flow(rcv, 10);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[8] = {0, 1, 2, 3, 7, 16, 61, 509};
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    bool client = (mode & 0x80) != 0;
    lep_conn_opts_t o;
    lep_conn_opts_init(&o);
    o.server = !client;
    o.container_id = client ? "fuzz-client" : "fuzz-server";
    o.idle_timeout_ms = 5000;
    /* as a broker would, or with nothing at all */
    static const uint8_t caps[] = {0xa3, 0x0f, 'A', 'N', 'O', 'N', 'Y', 'M', 'O', 'U',
                                   'S', '-', 'R', 'E', 'L', 'A', 'Y'};
    if (!(mode & 0x40))
        o.offered_capabilities = LEP_BYTES(caps, sizeof caps);
    if (mode & 0x20) {
        o.max_frame_size = 512;
        o.max_sessions = 2;
        o.max_links = 2;
        o.max_unsettled = 4;
        o.max_message_size = 1000;
        o.session_window = 4;
    }
    lep_conn_t *c;
    if (lep_conn_new(&c, &o) != 0)
        return 0;
#ifdef FUZZ_HAVE_SASL
    if ((mode & 1) && !client) {
        lep_sasl_server_opts_t so;
        lep_sasl_server_opts_init(&so);
        so.mechanisms = "PLAIN ANONYMOUS";
        so.authenticate = authenticate;
        so.allow_insecure = true;
        so.optional = (mode & 2) != 0;
        if (lep_sasl_server_add(c, &so, NULL) != 0) {
            lep_conn_free(c);
            return 0;
        }
    }
#endif
    if (client && start_client(c) != 0) {
        lep_conn_free(c);
        return 0;
    }
    fuzz_state_t st = {0, 0};
    size_t piece = pieces[(mode >> 2) & 7];
    size_t off = 0;
    /* a feed that consumes nothing must not repeat forever */
    int stalls = 0;
    while (off < size && stalls < 4) {
        size_t n = size - off;
        if (piece && n > piece)
            n = piece;
        size_t used = 0;
        int rc = lep_conn_feed(c, data + off, n, &used);
        CHECK(used <= n);
        if (rc == LEP_ERR_STATE)
            break;
        off += used;
        stalls = used ? 0 : stalls + 1;
        if (!used && piece && n < size - off) {
            /* the engine may want more than one piece at once */
            piece = size - off;
            stalls = 0;
        }
        events(&st, c);
        drain_output(c);
        st.now += 250;
        lep_conn_tick(c, st.now);
        events(&st, c);
        drain_output(c);
    }
    lep_conn_input_closed(c);
    for (int i = 0; i < 16 && !lep_conn_finished(c); i++) {
        events(&st, c);
        drain_output(c);
        st.now += 1000;
        lep_conn_tick(c, st.now);
    }
    events(&st, c);
    drain_output(c);
    CHECK(lep_conn_finished(c));
    CHECK(lep_conn_next_event(c) == NULL);
    lep_conn_free(c);
    return 0;
}
