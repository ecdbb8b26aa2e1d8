/* The broker store's benchmark: durable appends per second and the
 * fdatasync() calls they share, on this machine's disk.
 *
 * First the disk itself: append 100 bytes to a file and fdatasync() it,
 * over and over, for a second: the latency of one sync, which bounds how
 * many batches a second the store can make durable.
 *
 * Then the store (src/broker/store.c): 1, 4 and 16 threads each enqueue
 * messages of 100 bytes on one queue, keeping at most W appends in flight
 * (W = 1: a producer that waits for each accept; W = 256: a producer with
 * a window, as a broker connection with link credit is), fsync off and
 * on.  Each completion acks its message (no wait), as a consumer would,
 * so that the journal stays small.  Figures: appends (enqueues) completed
 * per second, fdatasync calls per second, appends per sync (the group
 * commit at work), and the latency from append to completion.
 *
 * Usage: store [--dir DIR] [--seconds S] [--threads 1,4,16] [--windows 1,256]
 *              [--fsync on|off|both] [--size BYTES]
 * DIR defaults to a fresh directory under $TMPDIR or /var/tmp (use one on
 * the disk that matters).  Prints a table and one line of JSON. */
#include "broker/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void
rm_dir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "store: could not remove %s\n", dir);
}

/* ---- latency histogram: 1 us buckets up to 100 ms, written by the writer thread only ---- */

#define HBUCKETS 100000
static uint32_t hist[HBUCKETS + 1];
static uint64_t hist_n;

static void
hist_add(uint64_t ns)
{
    uint64_t us = ns / 1000;
    hist[us < HBUCKETS ? us : HBUCKETS]++;
    hist_n++;
}

static double
hist_pct(double p)
{
    uint64_t want = (uint64_t)(p * (double)hist_n), seen = 0;
    for (size_t i = 0; i <= HBUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)i;
    }
    return HBUCKETS;
}

/* ---- the disk ---- */

typedef struct disk {
    double mean_us, p50_us, p99_us, max_us, per_s;
    long n;
} disk_t;

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static disk_t
measure_disk(const char *dir, double seconds)
{
    char path[4200];
    disk_t d = {0};
    snprintf(path, sizeof path, "%s/fdatasync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    static double lat[200000];
    char buf[100];
    memset(buf, 'x', sizeof buf);
    double start = now_s(), end = start + seconds;
    while (now_s() < end && d.n < 200000) {
        double t = now_s();
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            perror("write/fdatasync");
            exit(1);
        }
        lat[d.n++] = (now_s() - t) * 1e6;
    }
    double total = now_s() - start;
    close(fd);
    unlink(path);
    qsort(lat, (size_t)d.n, sizeof *lat, cmp_double);
    double sum = 0;
    for (long i = 0; i < d.n; i++)
        sum += lat[i];
    d.mean_us = sum / (double)d.n;
    d.p50_us = lat[d.n / 2];
    d.p99_us = lat[d.n * 99 / 100];
    d.max_us = lat[d.n - 1];
    d.per_s = (double)d.n / total;
    return d;
}

/* ---- the store ---- */

typedef struct worker worker_t;

typedef struct slot {
    worker_t *w;
    uint64_t t0, id;
} slot_t;

struct worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight, window;
    slot_t *slots;
};

static lepi_store_t *store;
static _Atomic bool stop;
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t completed, failed;
static _Atomic bool measuring;
static size_t body_size = 100;

static void
done(void *ctx, int status)
{
    slot_t *sl = ctx;
    worker_t *w = sl->w;
    if (status)
        atomic_fetch_add(&failed, 1);
    else if (atomic_load_explicit(&measuring, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&completed, 1, memory_order_relaxed);
        hist_add(now_ns() - sl->t0);
    }
    lepi_store_ack(store, 1, sl->id, NULL, NULL);
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *
work(void *arg)
{
    worker_t *w = arg;
    uint8_t body[65536];
    uint64_t q = 1;
    memset(body, 0xab, sizeof body);
    for (uint64_t i = 0; !atomic_load(&stop); i++) {
        pthread_mutex_lock(&w->mu);
        while (w->inflight >= w->window && !atomic_load(&stop))
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->inflight >= w->window) { /* stopping: every slot is in use */
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->inflight++;
        pthread_mutex_unlock(&w->mu);
        slot_t *sl = &w->slots[i % (uint64_t)w->window];
        sl->w = w;
        sl->id = atomic_fetch_add(&next_id, 1);
        sl->t0 = now_ns();
        int rc = lepi_store_enqueue(store, sl->id, body, body_size, &q, 1, done, sl);
        if (rc) {
            fprintf(stderr, "store: enqueue: %s\n", lep_strerror(rc));
            exit(1);
        }
    }
    return NULL;
}

typedef struct result {
    bool fsync;
    int threads, window;
    double appends_s, syncs_s, batches_s, per_sync, p50_us, p99_us, mean_bytes_per_sync;
} result_t;

static result_t
run(const char *dir, bool fsync_on, int threads, int window, double seconds)
{
    lepi_store_opts_t o;
    lepi_store_opts_init(&o);
    o.dir = dir;
    o.fsync = fsync_on;
    char err[512];
    lepi_store_info_t info;
    int rc = lepi_store_open(&store, &o, NULL, &info, err, sizeof err);
    if (rc) {
        fprintf(stderr, "store: %s\n", err);
        exit(1);
    }
    if (info.queues == 0)
        lepi_store_queue_create(store, 1, "bench", NULL, 0, NULL, NULL);
    atomic_store(&next_id, info.max_msg_id + 1);
    atomic_store(&stop, false);
    atomic_store(&measuring, false);
    atomic_store(&completed, 0);
    memset(hist, 0, sizeof hist);
    hist_n = 0;

    worker_t *w = calloc((size_t)threads, sizeof *w);
    for (int i = 0; i < threads; i++) {
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        w[i].window = window;
        w[i].slots = calloc((size_t)window, sizeof *w[i].slots);
        pthread_create(&w[i].th, NULL, work, &w[i]);
    }
    struct timespec warm = {0, 300 * 1000 * 1000};
    nanosleep(&warm, NULL);
    lepi_store_stats_t a, b;
    lepi_store_stats(store, &a);
    double t0 = now_s();
    atomic_store(&measuring, true);
    struct timespec dur = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&dur, NULL);
    atomic_store(&measuring, false);
    double t = now_s() - t0;
    lepi_store_stats(store, &b);
    uint64_t n = atomic_load(&completed);
    atomic_store(&stop, true);
    for (int i = 0; i < threads; i++) {
        pthread_mutex_lock(&w[i].mu);
        pthread_cond_broadcast(&w[i].cv);
        pthread_mutex_unlock(&w[i].mu);
        pthread_join(w[i].th, NULL);
    }
    lepi_store_sync(store);
    lepi_store_close(store);
    for (int i = 0; i < threads; i++) {
        free(w[i].slots);
        pthread_mutex_destroy(&w[i].mu);
        pthread_cond_destroy(&w[i].cv);
    }
    free(w);
    if (atomic_load(&failed)) {
        fprintf(stderr, "store: %llu appends failed\n", (unsigned long long)atomic_load(&failed));
        exit(1);
    }
    result_t r = {.fsync = fsync_on, .threads = threads, .window = window};
    r.appends_s = (double)n / t;
    r.syncs_s = (double)(b.syncs - a.syncs) / t;
    r.batches_s = (double)(b.batches - a.batches) / t;
    r.per_sync = b.syncs > a.syncs ? (double)n / (double)(b.syncs - a.syncs) : 0;
    r.mean_bytes_per_sync =
        b.syncs > a.syncs ? (double)(b.bytes_written - a.bytes_written) / (double)(b.syncs - a.syncs) : 0;
    r.p50_us = hist_pct(0.50);
    r.p99_us = hist_pct(0.99);
    return r;
}

static int
parse_list(const char *s, int *v, int max)
{
    int n = 0;
    while (*s && n < max) {
        v[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

int
main(int argc, char **argv)
{
    const char *dir_arg = NULL, *fsync_arg = "both";
    double seconds = 2;
    int threads[8] = {1, 4, 16}, nthreads = 3, windows[8] = {1, 256}, nwindows = 2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v)
            dir_arg = v, i++;
        else if (!strcmp(a, "--seconds") && v)
            seconds = atof(v), i++;
        else if (!strcmp(a, "--threads") && v)
            nthreads = parse_list(v, threads, 8), i++;
        else if (!strcmp(a, "--windows") && v)
            nwindows = parse_list(v, windows, 8), i++;
        else if (!strcmp(a, "--fsync") && v)
            fsync_arg = v, i++;
        else if (!strcmp(a, "--size") && v)
            body_size = (size_t)atol(v), i++;
        else {
            fprintf(stderr,
                    "usage: store [--dir DIR] [--seconds S] [--threads 1,4,16] [--windows 1,256]\n"
                    "             [--fsync on|off|both] [--size BYTES (<= 65536)]\n");
            return strcmp(a, "--help") ? 2 : 0;
        }
    }
    if (body_size > 65536)
        body_size = 65536;
    char dir[4096];
    if (dir_arg) {
        snprintf(dir, sizeof dir, "%s/store-bench-XXXXXX", dir_arg);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/store-bench-XXXXXX", t && *t ? t : "/var/tmp");
    }
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }

    disk_t d = measure_disk(dir, 1.0);
    printf("store benchmark in %s, %zu-byte messages, %.1f s per run\n\n", dir, body_size, seconds);
    printf("disk: write(100 B) + fdatasync: mean %.0f us, p50 %.0f us, p99 %.0f us, max %.0f us"
           " -> %.0f syncs/s\n\n",
           d.mean_us, d.p50_us, d.p99_us, d.max_us, d.per_s);
    printf("fsync  threads  window    appends/s    syncs/s  appends/sync  KiB/sync   p50 us   p99 us\n");

    result_t res[64];
    int nres = 0;
    for (int f = 0; f < 2; f++) {
        bool on = f == 1;
        if ((on && !strcmp(fsync_arg, "off")) || (!on && !strcmp(fsync_arg, "on")))
            continue;
        for (int wi = 0; wi < nwindows; wi++) {
            for (int ti = 0; ti < nthreads; ti++) {
                result_t r = run(dir, on, threads[ti], windows[wi], seconds);
                res[nres++] = r;
                printf("%-5s  %7d  %6d  %11.0f  %9.0f  %12.1f  %8.1f  %7.0f  %7.0f\n",
                       on ? "on" : "off", r.threads, r.window, r.appends_s, r.syncs_s, r.per_sync,
                       r.mean_bytes_per_sync / 1024, r.p50_us, r.p99_us);
                fflush(stdout);
            }
        }
    }
    printf("\n{\"bench\":\"store\",\"size\":%zu,\"seconds\":%.1f,\"disk\":{\"fdatasync_mean_us\":%.1f,"
           "\"fdatasync_p50_us\":%.1f,\"fdatasync_p99_us\":%.1f,\"syncs_per_s\":%.0f},\"runs\":[",
           body_size, seconds, d.mean_us, d.p50_us, d.p99_us, d.per_s);
    for (int i = 0; i < nres; i++)
        printf("%s{\"fsync\":%s,\"threads\":%d,\"window\":%d,\"appends_per_s\":%.0f,\"syncs_per_s\":%.0f,"
               "\"appends_per_sync\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f}",
               i ? "," : "", res[i].fsync ? "true" : "false", res[i].threads, res[i].window,
               res[i].appends_s, res[i].syncs_s, res[i].per_sync, res[i].p50_us, res[i].p99_us);
    printf("]}\n");
    rm_dir(dir);
    return 0;
}
