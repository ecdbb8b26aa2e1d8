/* The measuring half of the messaging benchmark, shared by lepton-bench
 * (tools/lepton-bench.c, lepton's messaging API) and bench/proton_peer.c
 * (Proton-C's proactor), so that both parse the same options, count,
 * time, compute percentiles and print results in exactly the same way:
 * only the messaging code differs between the two programs.
 *
 * Everything here is static: each program includes this header once.
 *
 * Work.  N messages (or as many as fit in --duration) with a data-section
 * body of S bytes go from senders to receivers over --connections pairs
 * of connections.  The first 8 bytes of each body are the sender's
 * CLOCK_MONOTONIC time in nanoseconds (host byte order) when it handed
 * the message to the library; the receiver reads the clock when the
 * message reaches its handler, and the difference is the latency.  The
 * run starts at the first send and ends at the last of: the last arrival
 * and (unsettled modes) the senders' last settlement.
 *
 * Hot path.  A sender patches the timestamp into one pre-encoded message
 * and sends those bytes; a receiver appends one uint32 (nanoseconds) to a
 * preallocated array.  Nothing is allocated per message here. */
#ifndef LEPTON_BENCH_COMMON_H
#define LEPTON_BENCH_COMMON_H

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses, the same for both programs. */
enum { BENCH_EXIT_OK = 0, BENCH_EXIT_FAIL = 1, BENCH_EXIT_USAGE = 2, BENCH_EXIT_TIMEOUT = 3 };

typedef enum bench_settle {
    BENCH_AT_LEAST_ONCE = 0,
    BENCH_AT_MOST_ONCE,
    BENCH_EXACTLY_ONCE,
} bench_settle_t;

static const char *const bench_settle_names[] = {"at-least-once", "at-most-once",
                                                 "exactly-once"};

#define BENCH_TS_LEN 8 /* timestamp bytes at the start of the body */
#define BENCH_DEFAULT_ADDRESS "lepton-bench"

typedef struct bench_opts {
    uint64_t count;          /* total over all connections; 0 with duration */
    size_t size;             /* body bytes */
    uint32_t credit;         /* receiver's window */
    bench_settle_t settle;
    unsigned threads;
    unsigned connections;
    double duration;         /* seconds; 0: by count */
    double timeout;          /* seconds; 0: none */
    bool json;               /* only the JSON line */
    bool encode_each;        /* encode the whole message for every send */
    bool sasl;               /* SASL peer-to-peer too (always with a URL) */
    const char *url;         /* NULL: peer-to-peer */
    /* From the URL (broker mode) or the defaults (peer-to-peer). */
    char host[256];
    char port[16];
    char user[128];
    char password[128];
    char address[256];
} bench_opts_t;

/* ------------------------------------------------------------------ */
/* Clock                                                               */

static inline uint64_t
bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void
bench_put_ts(uint8_t *body, uint64_t ns)
{
    memcpy(body, &ns, sizeof ns);
}

static inline uint64_t
bench_get_ts(const uint8_t *body)
{
    uint64_t ns;
    memcpy(&ns, body, sizeof ns);
    return ns;
}

/* ------------------------------------------------------------------ */
/* Latency samples: one uint32 of nanoseconds per message (saturating at
 * 4.29 s), in chunks.  The first chunk is sized before the run for every
 * message a receiver can get in count mode, and pre-touched so the run
 * takes no page faults for it; in duration mode a new chunk of 1 M
 * samples is added when one fills up (one malloc per million messages). */

#define BENCH_CHUNK_MIN (1u << 20)

typedef struct bench_chunk {
    struct bench_chunk *next;
    size_t len, cap;
    uint32_t v[];
} bench_chunk_t;

typedef struct bench_lat {
    bench_chunk_t *head, *tail;
    bool failed; /* a chunk could not be allocated: percentiles cover less */
} bench_lat_t;

static bench_chunk_t *
bench_chunk_new(size_t cap)
{
    bench_chunk_t *c = malloc(sizeof *c + cap * sizeof(uint32_t));
    if (!c)
        return NULL;
    c->next = NULL;
    c->len = 0;
    c->cap = cap;
    memset(c->v, 0, cap * sizeof(uint32_t));
    return c;
}

static int
bench_lat_init(bench_lat_t *l, size_t expected)
{
    memset(l, 0, sizeof *l);
    l->head = l->tail = bench_chunk_new(expected ? expected : BENCH_CHUNK_MIN);
    return l->head ? 0 : -1;
}

static void
bench_lat_add_slow(bench_lat_t *l, uint32_t ns)
{
    bench_chunk_t *c = bench_chunk_new(BENCH_CHUNK_MIN);
    if (!c) {
        l->failed = true;
        return;
    }
    l->tail->next = c;
    l->tail = c;
    c->v[c->len++] = ns;
}

static inline void
bench_lat_add(bench_lat_t *l, uint64_t sent_ns, uint64_t now_ns)
{
    uint64_t d = now_ns > sent_ns ? now_ns - sent_ns : 0;
    uint32_t ns = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    bench_chunk_t *c = l->tail;
    if (c->len < c->cap)
        c->v[c->len++] = ns;
    else
        bench_lat_add_slow(l, ns);
}

static void
bench_lat_fini(bench_lat_t *l)
{
    bench_chunk_t *c = l->head, *n;
    for (; c; c = n) {
        n = c->next;
        free(c);
    }
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------------ */
/* Per-pair counters.  A pair is one sender connection and the receiver
 * that gets its messages.  Each field is written by the one thread that
 * serves that side's connection at the time; the progress line reads
 * the counters from another thread, so they are relaxed atomics (plain
 * moves on x86).  The times are read after run() returned. */

typedef struct bench_pair {
    /* sender side */
    uint64_t to_send;          /* count mode: this pair's share */
    _Atomic uint64_t sent;
    uint64_t settled;          /* outcomes received (unsettled modes) */
    uint64_t accepted;
    uint64_t not_accepted;     /* rejected, released, modified */
    uint64_t t_first_send;     /* ns, 0 before */
    uint64_t t_sender_done;    /* last settlement (or last send, at-most-once) */
    uint64_t deadline;         /* duration mode: stop sending at */
    bool sending_done;
    /* receiver side */
    _Atomic uint64_t received;
    uint64_t t_last_arrival;
    bench_lat_t lat;
    bool receiver_done;
    char pad[64];
} bench_pair_t;

static inline void
bench_count_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline uint64_t
bench_count(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Allocates and prepares pairs (count split evenly, the remainder to the
 * first ones).  In broker mode a receiver may get any pair's messages, so
 * each receiver's first chunk is sized for all of them. */
static bench_pair_t *
bench_pairs_new(const bench_opts_t *o)
{
    bench_pair_t *p = calloc(o->connections, sizeof *p);
    if (!p)
        return NULL;
    for (unsigned i = 0; i < o->connections; i++) {
        uint64_t share = o->count / o->connections + (i < o->count % o->connections);
        p[i].to_send = o->duration > 0 ? UINT64_MAX : share;
        /* peer-to-peer, a receiver may serve any pair: room for the largest share */
        uint64_t most = (o->count + o->connections - 1) / o->connections;
        size_t expect = o->duration > 0 ? 0 : (size_t)(o->url ? o->count : most);
        if (bench_lat_init(&p[i].lat, expect ? expect : BENCH_CHUNK_MIN) != 0) {
            while (i--)
                bench_lat_fini(&p[i].lat);
            free(p);
            return NULL;
        }
    }
    return p;
}

static void
bench_pairs_free(bench_pair_t *p, unsigned n)
{
    if (!p)
        return;
    for (unsigned i = 0; i < n; i++)
        bench_lat_fini(&p[i].lat);
    free(p);
}

/* Sender side, for both programs: may another message go now?  Reads
 * the clock in duration mode (the send reads it anyway). */
static inline bool
bench_may_send(bench_pair_t *p, uint64_t now)
{
    if (p->sending_done)
        return false;
    if (p->deadline ? now >= p->deadline : bench_count(&p->sent) >= p->to_send) {
        p->sending_done = true;
        return false;
    }
    return true;
}

/* Sender side: called once before the first message of the pair. */
static inline void
bench_first_send(bench_pair_t *p, const bench_opts_t *o, uint64_t now)
{
    p->t_first_send = now;
    if (o->duration > 0)
        p->deadline = now + (uint64_t)(o->duration * 1e9);
}

/* Sender side: true once every message sent has its outcome (or, for
 * at-most-once, once sending stopped). */
static inline bool
bench_sender_finished(const bench_pair_t *p, const bench_opts_t *o)
{
    if (!p->sending_done)
        return false;
    if (o->settle == BENCH_AT_MOST_ONCE)
        return true;
    return p->settled >= atomic_load_explicit(&((bench_pair_t *)p)->sent,
                                               memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Broker mode: receivers share the address, so none knows its own count;
 * the end is when every sender is finished and everything sent was
 * received.  (Peer-to-peer, a receiver ends when its sender closes the
 * connection, after the last transfer.) */

typedef struct bench_global {
    _Atomic uint64_t total_received;
    _Atomic uint64_t total_sent;     /* published when each sender finishes */
    _Atomic unsigned senders_done;
    _Atomic bool all_received;
} bench_global_t;

/* Returns true exactly once, to the caller that sees the end first. */
static bool
bench_global_check(bench_global_t *g, unsigned nsenders)
{
    if (atomic_load(&g->senders_done) < nsenders)
        return false;
    if (atomic_load(&g->total_received) < atomic_load(&g->total_sent))
        return false;
    bool expected = false;
    return atomic_compare_exchange_strong(&g->all_received, &expected, true);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static int
bench_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int
bench_parse_secs(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v > 0) || v > 1e7)
        return -1;
    *out = v;
    return 0;
}

static void
bench_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Minimal amqp://[user[:password]@]host[:port][/address] split, for the
 * Proton peer and for finding the address (lepton's container parses the
 * URL itself).  Percent-escapes are not decoded; IPv6 hosts in brackets. */
static int
bench_parse_url(bench_opts_t *o, const char *url)
{
    const char *p = url;
    if (strncmp(p, "amqp://", 7) == 0)
        p += 7;
    else if (strncmp(p, "amqps://", 8) == 0) {
        fprintf(stderr, "amqps URLs are not supported by the benchmark\n");
        return -1;
    } else if (strstr(p, "://")) {
        return -1;
    }
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            bench_copy(o->user, sizeof o->user, p, (size_t)(colon - p));
            bench_copy(o->password, sizeof o->password, colon + 1, (size_t)(at - colon - 1));
        } else {
            bench_copy(o->user, sizeof o->user, p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *hend, *colon;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return -1;
        bench_copy(o->host, sizeof o->host, p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
        colon = hend < end && *hend == ':' ? hend : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        bench_copy(o->host, sizeof o->host, p, (size_t)(hend - p));
    }
    if (colon)
        bench_copy(o->port, sizeof o->port, colon + 1, (size_t)(end - colon - 1));
    else
        strcpy(o->port, "5672");
    if (!o->host[0])
        strcpy(o->host, "localhost");
    if (slash && slash[1])
        bench_copy(o->address, sizeof o->address, slash + 1, strlen(slash + 1));
    return 0;
}

enum {
    OPT_CREDIT = 256, OPT_SETTLE, OPT_THREADS, OPT_CONNECTIONS, OPT_DURATION,
    OPT_JSON, OPT_TIMEOUT, OPT_ENCODE_EACH, OPT_ADDRESS, OPT_SASL,
};

/* Parses argv into o.  Returns -1 after printing help (exit 0), -2 on a
 * usage error (already reported), 0 to run. */
static int
bench_parse_args(bench_opts_t *o, int argc, char **argv, const char *prog,
                 void (*usage)(FILE *))
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"credit", required_argument, NULL, OPT_CREDIT},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"connections", required_argument, NULL, OPT_CONNECTIONS},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"json", no_argument, NULL, OPT_JSON},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"encode-each", no_argument, NULL, OPT_ENCODE_EACH},
        {"address", required_argument, NULL, OPT_ADDRESS},
        {"sasl", no_argument, NULL, OPT_SASL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int ch;
    bool count_given = false;

    memset(o, 0, sizeof *o);
    o->count = 1000000;
    o->size = 100;
    o->credit = 1000;
    o->threads = 1;
    o->connections = 1;
    strcpy(o->host, "127.0.0.1");
    strcpy(o->port, "0");
    strcpy(o->address, BENCH_DEFAULT_ADDRESS);

    while ((ch = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            if (bench_parse_u64(optarg, &v) != 0 || v == 0)
                goto bad_value;
            o->count = v;
            count_given = true;
            break;
        case 's':
            if (bench_parse_u64(optarg, &v) != 0 || v > (1u << 30))
                goto bad_value;
            o->size = (size_t)v;
            break;
        case OPT_CREDIT:
            if (bench_parse_u64(optarg, &v) != 0 || v == 0 || v > UINT32_MAX)
                goto bad_value;
            o->credit = (uint32_t)v;
            break;
        case OPT_SETTLE:
            if (strcmp(optarg, "at-least-once") == 0)
                o->settle = BENCH_AT_LEAST_ONCE;
            else if (strcmp(optarg, "at-most-once") == 0)
                o->settle = BENCH_AT_MOST_ONCE;
            else if (strcmp(optarg, "exactly-once") == 0)
                o->settle = BENCH_EXACTLY_ONCE;
            else
                goto bad_value;
            break;
        case OPT_THREADS:
            if (bench_parse_u64(optarg, &v) != 0 || v == 0 || v > 256)
                goto bad_value;
            o->threads = (unsigned)v;
            break;
        case OPT_CONNECTIONS:
            if (bench_parse_u64(optarg, &v) != 0 || v == 0 || v > 4096)
                goto bad_value;
            o->connections = (unsigned)v;
            break;
        case OPT_DURATION:
            if (bench_parse_secs(optarg, &o->duration) != 0)
                goto bad_value;
            break;
        case OPT_TIMEOUT:
            if (bench_parse_secs(optarg, &o->timeout) != 0)
                goto bad_value;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_ENCODE_EACH:
            o->encode_each = true;
            break;
        case OPT_SASL:
            o->sasl = true;
            break;
        case OPT_ADDRESS:
            if (!*optarg || strlen(optarg) >= sizeof o->address)
                goto bad_value;
            strcpy(o->address, optarg);
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fprintf(stderr, "Try '%s --help' for more information.\n", prog);
            return -2;
        }
        continue;
    bad_value:
        fprintf(stderr, "%s: invalid value '%s' for %s\n", prog, optarg, argv[optind - 1]);
        return -2;
    }
    if (optind < argc) {
        o->url = argv[optind++];
        if (bench_parse_url(o, o->url) != 0) {
            fprintf(stderr, "%s: bad URL '%s' (amqp://[user[:password]@]host[:port]/address)\n",
                    prog, o->url);
            return -2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return -2;
    }
    if (o->duration > 0 && count_given) {
        fprintf(stderr, "%s: --count and --duration exclude each other\n", prog);
        return -2;
    }
    if (o->url)
        o->sasl = true;
    if (o->duration > 0)
        o->count = 0;
    else if (o->count < o->connections) {
        fprintf(stderr, "%s: --count must be at least --connections\n", prog);
        return -2;
    }
    return 0;
}

/* The options text shared by both programs' --help. */
static const char bench_options_help[] =
    "  -c, --count N          messages in all (default 1000000), shared by the\n"
    "                         connections\n"
    "      --duration SECONDS send for this long instead of a count\n"
    "  -s, --size BYTES       body size: one data section (default 100); the first\n"
    "                         8 bytes carry the send time, so latency is measured\n"
    "                         only for sizes of 8 or more\n"
    "      --credit N         receiver credit window, topped up as messages arrive\n"
    "                         (default 1000)\n"
    "      --settle MODE      at-least-once (default), at-most-once or exactly-once\n"
    "      --threads N        threads serving the connections (default 1)\n"
    "      --connections N    sender/receiver connection pairs (default 1)\n"
    "      --address ADDR     link address peer-to-peer (default lepton-bench; with a\n"
    "                         URL, its path)\n"
    "      --encode-each      encode the whole message for every send instead of\n"
    "                         patching the send time into one encoded message\n"
    "      --sasl             peer-to-peer, authenticate with SASL ANONYMOUS (always\n"
    "                         done through a broker)\n"
    "      --json             print only the one-line JSON result\n"
    "      --timeout SECONDS  give up after this long (exit status 3)\n"
    "  -h, --help             this text\n";

/* ------------------------------------------------------------------ */
/* Results                                                             */

typedef struct bench_result {
    uint64_t sent, received, accepted, not_accepted;
    double seconds;
    double msgs_per_s;
    bool have_latency;
    double p50_us, p99_us, p999_us, max_us, mean_us;
    size_t samples;
} bench_result_t;

/* LSD radix sort of v[0..n) in 3 passes of 11 bits (tmp: n more): a few
 * milliseconds for millions of samples, where qsort takes a large part of
 * a second and clutters profiles of the run. */
static void
bench_sort_u32(uint32_t *v, uint32_t *tmp, size_t n)
{
    static size_t cnt[2048];
    uint32_t *src = v, *dst = tmp;
    for (int shift = 0; shift < 33; shift += 11) {
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++)
            cnt[(src[i] >> shift) & 2047]++;
        size_t sum = 0;
        for (size_t b = 0; b < 2048; b++) {
            size_t c = cnt[b];
            cnt[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[(src[i] >> shift) & 2047]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double
bench_pct(const uint32_t *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k == 0)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1] / 1000.0;
}

static int
bench_collect(const bench_opts_t *o, bench_pair_t *pairs, bench_result_t *r)
{
    uint64_t t0 = UINT64_MAX, t1 = 0;
    size_t n = 0;

    memset(r, 0, sizeof *r);
    for (unsigned i = 0; i < o->connections; i++) {
        bench_pair_t *p = &pairs[i];
        r->sent += bench_count(&p->sent);
        r->received += bench_count(&p->received);
        r->accepted += p->accepted;
        r->not_accepted += p->not_accepted;
        if (p->t_first_send && p->t_first_send < t0)
            t0 = p->t_first_send;
        if (p->t_sender_done > t1)
            t1 = p->t_sender_done;
        if (p->t_last_arrival > t1)
            t1 = p->t_last_arrival;
        for (bench_chunk_t *c = p->lat.head; c; c = c->next)
            n += c->len;
    }
    r->seconds = t0 < t1 ? (double)(t1 - t0) * 1e-9 : 0;
    r->msgs_per_s = r->seconds > 0 ? (double)r->received / r->seconds : 0;
    if (o->size < BENCH_TS_LEN || n == 0)
        return 0;
    uint32_t *all = malloc(2 * n * sizeof *all);
    if (!all)
        return -1;
    size_t k = 0;
    double sum = 0;
    for (unsigned i = 0; i < o->connections; i++)
        for (bench_chunk_t *c = pairs[i].lat.head; c; c = c->next) {
            memcpy(all + k, c->v, c->len * sizeof *all);
            k += c->len;
        }
    bench_sort_u32(all, all + n, n);
    for (size_t i = 0; i < n; i++)
        sum += all[i];
    r->have_latency = true;
    r->samples = n;
    r->p50_us = bench_pct(all, n, 50);
    r->p99_us = bench_pct(all, n, 99);
    r->p999_us = bench_pct(all, n, 99.9);
    r->max_us = all[n - 1] / 1000.0;
    r->mean_us = sum / (double)n / 1000.0;
    free(all);
    return 0;
}

/* One more figure a program reports (lepton-bench: allocations). */
typedef struct bench_extra {
    const char *label; /* readable form */
    const char *key;   /* JSON key */
    double value;
} bench_extra_t;

/* Prints the result: the readable lines (unless --json), then the JSON
 * line, with n extra figures. */
static void
bench_print(const bench_opts_t *o, const bench_result_t *r, const char *impl,
            const char *impl_version, const bench_extra_t *extra, size_t n)
{
    const char *mode = o->url ? "broker" : "peer-to-peer";
    if (!o->json) {
        printf("%s %s, %s%s%s: %" PRIu64 " messages of %zu bytes, %s, credit %u, "
               "%u thread%s, %u connection%s%s%s\n",
               impl, impl_version, mode, o->url ? " " : "", o->url ? o->url : "",
               r->received, o->size, bench_settle_names[o->settle], o->credit, o->threads,
               o->threads == 1 ? "" : "s", o->connections, o->connections == 1 ? "" : "s",
               o->encode_each ? ", encode each" : "", o->sasl && !o->url ? ", SASL" : "");
        printf("  throughput  %10.0f msgs/s   (%.3f s)\n", r->msgs_per_s, r->seconds);
        if (r->have_latency)
            printf("  latency µs  p50 %.0f   p99 %.0f   p99.9 %.0f   max %.0f   mean %.0f\n",
                   r->p50_us, r->p99_us, r->p999_us, r->max_us, r->mean_us);
        else
            printf("  latency     not measured (body under %d bytes)\n", BENCH_TS_LEN);
        for (size_t i = 0; i < n; i++)
            printf("  %-16s %.4f\n", extra[i].label, extra[i].value);
        if (r->not_accepted)
            printf("  %" PRIu64 " messages were not accepted\n", r->not_accepted);
    }
    printf("{\"bench\":\"messaging\",\"impl\":\"%s\",\"version\":\"%s\",\"mode\":\"%s\","
           "\"count\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"size\":%zu,\"credit\":%u,"
           "\"settle\":\"%s\",\"threads\":%u,\"connections\":%u,\"encode_each\":%s,"
           "\"sasl\":%s,\"seconds\":%.6f,\"msgs_per_s\":%.1f",
           impl, impl_version, mode, r->received, r->sent, o->size, o->credit,
           bench_settle_names[o->settle], o->threads, o->connections,
           o->encode_each ? "true" : "false", o->sasl ? "true" : "false", r->seconds,
           r->msgs_per_s);
    if (r->have_latency)
        printf(",\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
               "\"mean\":%.1f,\"samples\":%zu}",
               r->p50_us, r->p99_us, r->p999_us, r->max_us, r->mean_us, r->samples);
    else
        printf(",\"latency_us\":null");
    for (size_t i = 0; i < n; i++)
        printf(",\"%s\":%.4f", extra[i].key, extra[i].value);
    if (o->settle != BENCH_AT_MOST_ONCE)
        printf(",\"accepted\":%" PRIu64 ",\"not_accepted\":%" PRIu64, r->accepted,
               r->not_accepted);
    printf("}\n");
    fflush(stdout);
}

/* Whether the run did what it was asked: everything sent arrived (in
 * peer-to-peer at-most-once too: loopback loses nothing unless the
 * library does), and was accepted in the unsettled modes. */
static bool
bench_result_ok(const bench_opts_t *o, const bench_result_t *r, const char *prog)
{
    bool ok = true;
    if (o->duration <= 0 && r->sent != o->count) {
        fprintf(stderr, "%s: sent %" PRIu64 " of %" PRIu64 " messages\n", prog, r->sent,
                o->count);
        ok = false;
    }
    if (r->received != r->sent) {
        fprintf(stderr, "%s: received %" PRIu64 " of %" PRIu64 " messages sent\n", prog,
                r->received, r->sent);
        ok = false;
    }
    if (o->settle != BENCH_AT_MOST_ONCE && r->accepted != r->sent) {
        fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " messages accepted\n", prog,
                r->accepted, r->sent);
        ok = false;
    }
    return ok;
}

/* ------------------------------------------------------------------ */
/* Supervision: the main thread starts the serving threads, then wakes
 * about twice a second to draw the progress line (only when stderr is a
 * terminal) and to enforce --timeout, until the serving threads are
 * done.  It touches nothing but the relaxed counters. */

typedef struct bench_super {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned running;       /* serving threads not finished */
} bench_super_t;

static bench_super_t bench_super = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

/* Each serving thread calls this last. */
static void
bench_thread_exit(void)
{
    pthread_mutex_lock(&bench_super.lock);
    bench_super.running--;
    pthread_cond_signal(&bench_super.cond);
    pthread_mutex_unlock(&bench_super.lock);
}

static void
bench_progress(const bench_opts_t *o, bench_pair_t *pairs, uint64_t t_start, uint64_t *last_n,
               uint64_t *last_t, const char *prog)
{
    uint64_t sent = 0, recv = 0, now = bench_now_ns();
    for (unsigned i = 0; i < o->connections; i++) {
        sent += bench_count(&pairs[i].sent);
        recv += bench_count(&pairs[i].received);
    }
    double dt = (double)(now - *last_t) * 1e-9;
    double rate = dt > 0 ? (double)(recv - *last_n) / dt : 0;
    double el = (double)(now - t_start) * 1e-9;
    char pct[16] = "";
    if (o->duration > 0)
        snprintf(pct, sizeof pct, "%3.0f%% ", el < o->duration ? 100 * el / o->duration : 100.0);
    else
        snprintf(pct, sizeof pct, "%3.0f%% ", 100.0 * (double)recv / (double)o->count);
    fprintf(stderr, "\r\033[K%s: %ssent %" PRIu64 "  received %" PRIu64 "  %.0f msgs/s  %.1f s",
            prog, pct, sent, recv, rate, el);
    fflush(stderr);
    *last_n = recv;
    *last_t = now;
}

/* Waits until every serving thread called bench_thread_exit().  Returns
 * 0, or BENCH_EXIT_TIMEOUT after reporting a timeout (the caller exits
 * without joining). */
static int
bench_supervise(const bench_opts_t *o, bench_pair_t *pairs, const char *prog)
{
    bool tty = isatty(STDERR_FILENO) && !o->json;
    uint64_t t_start = bench_now_ns(), last_t = t_start, last_n = 0;
    uint64_t deadline = o->timeout > 0 ? t_start + (uint64_t)(o->timeout * 1e9) : 0;
    bool drew = false;
    int rc = 0;

    pthread_mutex_lock(&bench_super.lock);
    while (bench_super.running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&bench_super.cond, &bench_super.lock, &ts);
        if (bench_super.running == 0)
            break;
        if (tty) {
            bench_progress(o, pairs, t_start, &last_n, &last_t, prog);
            drew = true;
        }
        if (deadline && bench_now_ns() >= deadline) {
            rc = BENCH_EXIT_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&bench_super.lock);
    if (drew) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    if (rc == BENCH_EXIT_TIMEOUT) {
        uint64_t recv = 0;
        for (unsigned i = 0; i < o->connections; i++)
            recv += bench_count(&pairs[i].received);
        fprintf(stderr, "%s: timed out after %.1f s (%" PRIu64 " messages received)\n", prog,
                o->timeout, recv);
    }
    return rc;
}

#endif
