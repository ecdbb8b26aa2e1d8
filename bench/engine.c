/* Protocol engine benchmark: lepton against Qpid Proton-C's
 * pn_connection_driver, side by side in one process.
 *
 * Throughput.  Two engines (client sender, server receiver) are wired
 * memory to memory.  The sender sends 100-byte messages unsettled
 * (at-least-once) as fast as credit allows; the receiver reads each,
 * accepts and settles it (dispositions batched as each engine does), and
 * keeps a credit window of 1000 topped up once half is used; the sender
 * settles on the receiver's settlement.  Both libraries do exactly this,
 * driven the same way: move all output of one side into the other, then
 * handle the events, until every message was received and settled.
 *
 * Memory.  Many idle connection pairs, each with one session and one link
 * attached and nothing in flight: bytes per connection.  lepton's figure
 * comes from its allocation hook (bytes requested, and malloc's usable
 * size of those blocks); Proton's from mallinfo2() deltas, which is also
 * given for lepton so both are measured the same way.
 *
 * Usage: engine [--messages N] [--rounds R] [--conns C]
 * Prints a table and one line of JSON. */
#include <lepton/engine.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HAVE_PROTON
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/transport.h>
#include <proton/version.h>
#endif

#define MSG_LEN 100
#define WINDOW 1000

static uint8_t payload[MSG_LEN];
/* bytes that crossed the wire in the last throughput run, both ways */
static uint64_t l_wire, p_wire;

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- lepton's allocation hook: live bytes ---- */

static size_t live_req, live_usable;

typedef struct hdr {
    size_t size;
    size_t pad; /* keeps the user block 16-aligned */
} hdr_t;

static void *
cnt_malloc(size_t n, void *ctx)
{
    (void)ctx;
    hdr_t *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    live_req += n;
    live_usable += malloc_usable_size(h);
    return h + 1;
}

static void
cnt_free(void *p, void *ctx)
{
    (void)ctx;
    if (!p)
        return;
    hdr_t *h = (hdr_t *)p - 1;
    live_req -= h->size;
    live_usable -= malloc_usable_size(h);
    free(h);
}

static void *
cnt_realloc(void *p, size_t n, void *ctx)
{
    if (!p)
        return cnt_malloc(n, ctx);
    hdr_t *h = (hdr_t *)p - 1;
    size_t old = h->size, oldu = malloc_usable_size(h);
    hdr_t *nh = realloc(h, sizeof *nh + n);
    if (!nh)
        return NULL;
    nh->size = n;
    live_req = live_req - old + n;
    live_usable = live_usable - oldu + malloc_usable_size(nh);
    return nh + 1;
}

static size_t
heap_used(void)
{
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
}

/* ================================================================== */
/* lepton                                                              */

typedef struct lside {
    lep_conn_t *c;
    lep_link_t *link;
    uint64_t received, settled;
    uint32_t credit_granted; /* receiver: credit outstanding as we count it */
    bool failed;
} lside_t;

typedef struct lrun {
    lside_t a, b; /* a: client sender, b: server receiver */
    uint64_t target, sent;
    bool attach_ok;
} lrun_t;

static size_t
l_move(lep_conn_t *from, lep_conn_t *to)
{
    size_t moved = 0;
    for (;;) {
        lep_bytes_t out = lep_conn_output(from);
        if (!out.len)
            break;
        size_t used = 0;
        if (lep_conn_feed(to, out.ptr, out.len, &used) != 0 || used == 0)
            break;
        lep_conn_consumed(from, used);
        moved += used;
        l_wire += used;
    }
    return moved;
}

static void
l_send_all(lrun_t *r)
{
    lep_link_t *l = r->a.link;
    if (!l)
        return;
    uint32_t credit = lep_link_credit(l);
    while (credit-- > 0 && r->sent < r->target) {
        if (lep_link_send(l, LEP_BYTES(NULL, 0), payload, MSG_LEN, false, NULL) != 0) {
            r->a.failed = true;
            return;
        }
        r->sent++;
    }
}

static void
l_events(lrun_t *r, lside_t *s, bool sender)
{
    const lep_event_t *ev;
    while ((ev = lep_conn_next_event(s->c)) != NULL) {
        switch (ev->type) {
        case LEP_EVENT_CONN_REMOTE_OPEN:
            if (lep_conn_local_state(s->c) == LEP_STATE_UNINIT)
                lep_conn_open(s->c);
            break;
        case LEP_EVENT_SESSION_REMOTE_BEGIN:
            if (lep_session_local_state(ev->session) == LEP_STATE_UNINIT)
                lep_session_begin(ev->session);
            break;
        case LEP_EVENT_LINK_REMOTE_ATTACH:
            if (lep_link_local_state(ev->link) == LEP_STATE_UNINIT) {
                lep_link_attach(ev->link);
                if (lep_link_is_receiver(ev->link)) {
                    s->link = ev->link;
                    lep_link_flow(ev->link, WINDOW);
                    s->credit_granted = WINDOW;
                }
            }
            r->attach_ok = true;
            break;
        case LEP_EVENT_LINK_FLOW:
            if (sender)
                l_send_all(r);
            break;
        case LEP_EVENT_DELIVERY: {
            lep_delivery_t *d = ev->delivery;
            if (!sender) {
                if (lep_delivery_partial(d))
                    break;
                lep_bytes_t b = lep_delivery_data(d);
                if (b.len != MSG_LEN)
                    s->failed = true;
                lep_delivery_accept(d);
                lep_delivery_settle(d);
                s->received++;
                if (--s->credit_granted <= WINDOW / 2) {
                    lep_link_flow(s->link, WINDOW - s->credit_granted);
                    s->credit_granted = WINDOW;
                }
            } else if (lep_delivery_remote_settled(d)) {
                lep_delivery_settle(d);
                s->settled++;
            }
            break;
        }
        case LEP_EVENT_TRANSPORT_ERROR:
            s->failed = true;
            break;
        default:
            break;
        }
    }
}

static int
l_setup(lrun_t *r, uint64_t target)
{
    memset(r, 0, sizeof *r);
    r->target = target;
    lep_conn_opts_t oa, ob;
    lep_conn_opts_init(&oa);
    lep_conn_opts_init(&ob);
    oa.container_id = "bench-client";
    ob.container_id = "bench-server";
    ob.server = true;
    if (lep_conn_new(&r->a.c, &oa) || lep_conn_new(&r->b.c, &ob))
        return -1;
    lep_session_t *s;
    if (lep_conn_open(r->a.c) || lep_session_new(r->a.c, &s) || lep_session_begin(s))
        return -1;
    lep_link_opts_t lo;
    lep_link_opts_init(&lo);
    lo.name = "bench";
    lo.snd_settle_mode = LEP_SND_SETTLE_UNSETTLED;
    lo.rcv_settle_mode = LEP_RCV_SETTLE_FIRST;
    if (lep_link_new(s, &lo, &r->a.link) || lep_link_attach(r->a.link))
        return -1;
    return 0;
}

/* Pumps until nothing moves (bounded).  Returns the rounds done. */
static int
l_pump(lrun_t *r, int max_rounds)
{
    int i;
    for (i = 0; i < max_rounds; i++) {
        size_t moved = l_move(r->a.c, r->b.c) + l_move(r->b.c, r->a.c);
        l_events(r, &r->a, true);
        l_events(r, &r->b, false);
        if (r->a.failed || r->b.failed)
            return -1;
        if (!moved && !lep_conn_output_pending(r->a.c) && !lep_conn_output_pending(r->b.c))
            break;
    }
    return i;
}

/* messages/second, or -1 */
static double
l_throughput(uint64_t n)
{
    lrun_t r;
    if (l_setup(&r, 0) != 0)
        return -1;
    l_pump(&r, 1000);
    r.target = n; /* nothing is sent before the clock starts */
    if (!r.attach_ok || !r.b.link) {
        fprintf(stderr, "engine: lepton link did not attach\n");
        lep_conn_free(r.a.c);
        lep_conn_free(r.b.c);
        return -1;
    }
    l_wire = 0;
    double t0 = now_s();
    l_send_all(&r);
    uint64_t stuck = 0;
    while (r.b.received < n || r.a.settled < n) {
        if (l_pump(&r, 1) < 0)
            break;
        if (!lep_conn_output_pending(r.a.c) && !lep_conn_output_pending(r.b.c) && ++stuck > 1000)
            break;
    }
    double dt = now_s() - t0;
    bool ok = r.b.received == n && r.a.settled == n && !r.a.failed && !r.b.failed;
    if (!ok)
        fprintf(stderr, "engine: lepton run incomplete: received %llu settled %llu of %llu\n",
                (unsigned long long)r.b.received, (unsigned long long)r.a.settled,
                (unsigned long long)n);
    lep_conn_free(r.a.c);
    lep_conn_free(r.b.c);
    return ok ? (double)n / dt : -1;
}

/* bytes per idle connection (hook: requested, usable; mallinfo2) */
static int
l_memory(int conns, double *req, double *usable, double *heap)
{
    lrun_t *runs = calloc((size_t)conns, sizeof *runs);
    if (!runs)
        return -1;
    size_t r0 = live_req, u0 = live_usable, h0 = heap_used();
    int rc = 0;
    for (int i = 0; i < conns && rc == 0; i++) {
        if (l_setup(&runs[i], 0) != 0 || l_pump(&runs[i], 1000) < 0 || !runs[i].b.link)
            rc = -1;
    }
    size_t r1 = live_req, u1 = live_usable, h1 = heap_used();
    for (int i = 0; i < conns; i++) {
        if (runs[i].a.c)
            lep_conn_free(runs[i].a.c);
        if (runs[i].b.c)
            lep_conn_free(runs[i].b.c);
    }
    free(runs);
    /* two connections (client and server) per pair */
    *req = (double)(r1 - r0) / (2.0 * conns);
    *usable = (double)(u1 - u0) / (2.0 * conns);
    *heap = (double)(h1 - h0) / (2.0 * conns);
    return rc;
}

/* ================================================================== */
/* Proton-C                                                            */

#ifdef HAVE_PROTON
typedef struct pside {
    pn_connection_driver_t d;
    pn_link_t *link;
    uint64_t received, settled;
    uint32_t credit_granted;
    bool failed;
} pside_t;

typedef struct prun {
    pside_t a, b;
    uint64_t target, sent;
    uint64_t tagno;
} prun_t;

static size_t
p_move(pn_connection_driver_t *from, pn_connection_driver_t *to)
{
    size_t moved = 0;
    for (;;) {
        pn_bytes_t wb = pn_connection_driver_write_buffer(from);
        if (!wb.size)
            break;
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(to);
        size_t n = wb.size < rb.size ? wb.size : rb.size;
        if (!n)
            break;
        memcpy(rb.start, wb.start, n);
        pn_connection_driver_read_done(to, n);
        pn_connection_driver_write_done(from, n);
        moved += n;
        p_wire += n;
    }
    return moved;
}

static void
p_send_all(prun_t *r)
{
    pn_link_t *l = r->a.link;
    if (!l)
        return;
    while (pn_link_credit(l) > 0 && r->sent < r->target) {
        /* the same 8-byte counter tags lepton's engine makes up itself */
        uint64_t tag = r->tagno++;
        pn_delivery(l, pn_dtag((const char *)&tag, sizeof tag));
        pn_link_send(l, (const char *)payload, MSG_LEN);
        pn_link_advance(l);
        r->sent++;
    }
}

static void
p_events(prun_t *r, pside_t *s, bool sender)
{
    pn_event_t *ev;
    static char buf[MSG_LEN * 2];
    while ((ev = pn_connection_driver_next_event(&s->d)) != NULL) {
        switch (pn_event_type(ev)) {
        case PN_CONNECTION_REMOTE_OPEN: {
            pn_connection_t *c = pn_event_connection(ev);
            if (pn_connection_state(c) & PN_LOCAL_UNINIT)
                pn_connection_open(c);
            break;
        }
        case PN_SESSION_REMOTE_OPEN: {
            pn_session_t *ss = pn_event_session(ev);
            if (pn_session_state(ss) & PN_LOCAL_UNINIT)
                pn_session_open(ss);
            break;
        }
        case PN_LINK_REMOTE_OPEN: {
            pn_link_t *l = pn_event_link(ev);
            if (pn_link_state(l) & PN_LOCAL_UNINIT) {
                pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
                pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
                pn_link_open(l);
                if (pn_link_is_receiver(l)) {
                    s->link = l;
                    pn_link_flow(l, WINDOW);
                    s->credit_granted = WINDOW;
                }
            }
            break;
        }
        case PN_LINK_FLOW:
            if (sender)
                p_send_all(r);
            break;
        case PN_DELIVERY: {
            pn_delivery_t *d = pn_event_delivery(ev);
            if (!sender) {
                if (!pn_delivery_readable(d) || pn_delivery_partial(d))
                    break;
                pn_link_t *l = pn_delivery_link(d);
                ssize_t n = pn_link_recv(l, buf, sizeof buf);
                if (n != MSG_LEN)
                    s->failed = true;
                pn_link_advance(l);
                pn_delivery_update(d, PN_ACCEPTED);
                pn_delivery_settle(d);
                s->received++;
                if (--s->credit_granted <= WINDOW / 2) {
                    pn_link_flow(l, (int)(WINDOW - s->credit_granted));
                    s->credit_granted = WINDOW;
                }
            } else if (pn_delivery_settled(d)) {
                pn_delivery_settle(d);
                s->settled++;
            }
            break;
        }
        case PN_TRANSPORT_ERROR:
            s->failed = true;
            break;
        default:
            break;
        }
    }
}

static int
p_setup(prun_t *r, uint64_t target)
{
    memset(r, 0, sizeof *r);
    r->target = target;
    if (pn_connection_driver_init(&r->a.d, NULL, NULL) || pn_connection_driver_init(&r->b.d, NULL, NULL))
        return -1;
    pn_transport_set_server(r->b.d.transport);
    pn_connection_set_container(r->a.d.connection, "bench-client");
    pn_connection_set_container(r->b.d.connection, "bench-server");
    pn_connection_open(r->a.d.connection);
    pn_session_t *s = pn_session(r->a.d.connection);
    pn_session_open(s);
    pn_link_t *l = pn_sender(s, "bench");
    pn_link_set_snd_settle_mode(l, PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    pn_link_open(l);
    r->a.link = l;
    return 0;
}

static int
p_pump(prun_t *r, int max_rounds)
{
    int i;
    for (i = 0; i < max_rounds; i++) {
        size_t moved = p_move(&r->a.d, &r->b.d) + p_move(&r->b.d, &r->a.d);
        p_events(r, &r->a, true);
        p_events(r, &r->b, false);
        if (r->a.failed || r->b.failed)
            return -1;
        if (!moved && !pn_connection_driver_write_buffer(&r->a.d).size &&
            !pn_connection_driver_write_buffer(&r->b.d).size)
            break;
    }
    return i;
}

static double
p_throughput(uint64_t n)
{
    prun_t r;
    if (p_setup(&r, 0) != 0)
        return -1;
    p_pump(&r, 1000);
    r.target = n;
    p_wire = 0;
    double t0 = now_s();
    p_send_all(&r);
    uint64_t stuck = 0;
    while (r.b.received < n || r.a.settled < n) {
        if (p_pump(&r, 1) < 0)
            break;
        if (!pn_connection_driver_write_buffer(&r.a.d).size &&
            !pn_connection_driver_write_buffer(&r.b.d).size && ++stuck > 1000)
            break;
    }
    double dt = now_s() - t0;
    bool ok = r.b.received == n && r.a.settled == n && !r.a.failed && !r.b.failed;
    if (!ok)
        fprintf(stderr, "engine: proton run incomplete: received %llu settled %llu of %llu\n",
                (unsigned long long)r.b.received, (unsigned long long)r.a.settled,
                (unsigned long long)n);
    pn_connection_driver_destroy(&r.a.d);
    pn_connection_driver_destroy(&r.b.d);
    return ok ? (double)n / dt : -1;
}

static int
p_memory(int conns, double *heap)
{
    prun_t *runs = calloc((size_t)conns, sizeof *runs);
    if (!runs)
        return -1;
    size_t h0 = heap_used();
    int rc = 0;
    for (int i = 0; i < conns && rc == 0; i++) {
        if (p_setup(&runs[i], 0) != 0 || p_pump(&runs[i], 1000) < 0 || !runs[i].b.link)
            rc = -1;
    }
    size_t h1 = heap_used();
    for (int i = 0; i < conns; i++) {
        pn_connection_driver_destroy(&runs[i].a.d);
        pn_connection_driver_destroy(&runs[i].b.d);
    }
    free(runs);
    *heap = (double)(h1 - h0) / (2.0 * conns);
    return rc;
}
#endif

/* ================================================================== */

int
main(int argc, char **argv)
{
    uint64_t messages = 500000;
    int rounds = 3, conns = 200;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--messages"))
            messages = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns"))
            conns = atoi(argv[i + 1]);
    }
    if (rounds < 1)
        rounds = 1;
    if (conns < 1)
        conns = 1;
    for (size_t i = 0; i < MSG_LEN; i++)
        payload[i] = (uint8_t)('a' + i % 26);

    /* lepton's memory through its hook (set before any lepton call) */
    static const lep_allocator_t hook = {cnt_malloc, cnt_realloc, cnt_free, NULL};
    lep_set_allocator(&hook);
    double l_req = 0, l_usable = 0, l_heap = 0, unused;
    int l_mem_rc = l_memory(conns, &l_req, &l_usable, &unused);
    lep_set_allocator(NULL);
    /* heap figure without the hook's per-block header, as Proton's */
    if (l_mem_rc == 0)
        l_mem_rc = l_memory(conns, &unused, &unused, &l_heap);

    double l_best = -1, p_best = -1;
    double p_heap = 0;
    int p_mem_rc = -1;
    (void)p_mem_rc;
    for (int round = 0; round < rounds; round++) {
        double l = l_throughput(messages);
        if (l > l_best)
            l_best = l;
#ifdef HAVE_PROTON
        double p = p_throughput(messages);
        if (p > p_best)
            p_best = p;
#endif
    }
#ifdef HAVE_PROTON
    p_mem_rc = p_memory(conns, &p_heap);
#endif

    printf("engine benchmark: %llu messages of %d bytes, at-least-once, credit window %d, "
           "best of %d rounds; memory over %d idle connection pairs\n",
           (unsigned long long)messages, MSG_LEN, WINDOW, rounds, conns);
    printf("%-34s %14s %14s %8s\n", "", "lepton", "proton-c", "ratio");
    printf("%-34s %14.0f %14.0f %8.2f\n", "throughput (msg/s, higher better)", l_best, p_best,
           (l_best > 0 && p_best > 0) ? l_best / p_best : 0.0);
    printf("%-34s %14.0f %14.0f %8.2f\n", "memory/conn, heap (bytes)", l_heap, p_heap,
           (p_heap > 0) ? l_heap / p_heap : 0.0);
    printf("%-34s %14.1f %14.1f %8.2f\n", "wire bytes per message (both ways)",
           (double)l_wire / (double)messages, (double)p_wire / (double)messages,
           p_wire ? (double)l_wire / (double)p_wire : 0.0);
    printf("%-34s %14.0f %14s\n", "memory/conn, lepton hook requested", l_req, "-");
    printf("%-34s %14.0f %14s\n", "memory/conn, lepton hook usable", l_usable, "-");
    if (l_mem_rc != 0)
        printf("(lepton memory set-up failed: links did not attach)\n");
    printf("targets: throughput ratio >= 3, memory ratio <= 0.25\n");
    printf("{\"bench\":\"engine\",\"messages\":%llu,\"msg_len\":%d,\"window\":%d,"
           "\"lepton_msgs_per_s\":%.0f,\"proton_msgs_per_s\":%.0f,\"throughput_ratio\":%.3f,"
           "\"lepton_bytes_per_conn\":%.0f,\"lepton_hook_bytes_per_conn\":%.0f,"
           "\"proton_bytes_per_conn\":%.0f,\"memory_ratio\":%.3f}\n",
           (unsigned long long)messages, MSG_LEN, WINDOW, l_best, p_best,
           (l_best > 0 && p_best > 0) ? l_best / p_best : 0.0, l_heap, l_req, p_heap,
           p_heap > 0 ? l_heap / p_heap : 0.0);
    return (l_best > 0 && (p_best > 0 || p_best == -1)) ? 0 : 1;
}
