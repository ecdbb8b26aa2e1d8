/* idle_conns: open N AMQP connections to a broker and hold them, idle,
 * so that the broker's memory per connection can be measured (bench/
 * broker_compare reads the broker's RSS while they are held).
 *
 *   build/bench/idle_conns -n 10000 amqp://127.0.0.1:5672
 *
 * Each connection does what a client that connected and then waits does:
 * TCP, SASL (ANONYMOUS, or PLAIN with a user in the URL), the AMQP open
 * exchange; no session, no link.  Heartbeats keep them alive (the
 * container answers the broker's idle timeout).  At most --parallel
 * connections are being set up at a time, so a listen backlog never
 * overflows.  When all are open it prints one line of JSON:
 *
 *   {"bench":"idle_conns","open":10000,"failed":0,"seconds":1.93,"rss_kib":...}
 *
 * (rss_kib: this client's own RSS), then holds them until SIGINT, SIGTERM
 * or end of input on stdin (with --stdin), or for --hold SECONDS, and
 * closes them.  Exit status 0 when every connection opened, 1 when some
 * failed, 2 on a usage error, 3 on --timeout while connecting. */
#include <lepton/messaging.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PROG "idle_conns"

static lep_container_t *container;
static const char *url;
static unsigned target = 10000, parallel = 200, threads = 1;
static double timeout_s = 120, hold_s;
static bool use_stdin;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned launched, opened, failed, running;
static bool stopping;
static lep_connection_opts_t copts;

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            v = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Starts connections while fewer than --parallel are being set up.
 * Called with lock held. */
static void
launch_locked(void)
{
    while (!stopping && launched < target && launched - opened - failed < parallel) {
        lep_connection_t *c;
        launched++;
        if (lep_container_connect(container, url, &copts, &c) != 0) {
            const char *why = lep_container_error();
            fprintf(stderr, PROG ": %s\n", why && *why ? why : "cannot connect");
            failed++;
        }
    }
    pthread_cond_broadcast(&cond);
}

static void
on_open(void *ctx, lep_connection_t *c)
{
    pthread_mutex_lock(&lock);
    opened++;
    launch_locked();
    pthread_mutex_unlock(&lock);
}

static void
count_failure(const char *what, const lep_condition_t *cnd)
{
    char buf[300];
    pthread_mutex_lock(&lock);
    if (!stopping) {
        if (failed < 5)
            fprintf(stderr, PROG ": %s: %s\n", what,
                    cnd ? lep_condition_format(cnd, buf, sizeof buf) : "");
        failed++;
        launch_locked();
    }
    pthread_mutex_unlock(&lock);
}

static void
on_transport_error(void *ctx, lep_connection_t *c, const lep_condition_t *cnd)
{
    count_failure("transport", cnd);
}

static void
on_connection_error(void *ctx, lep_connection_t *c, const lep_condition_t *cnd)
{
    count_failure("connection closed by the broker", cnd);
}

static const lep_handler_t handler = {
    .on_connection_open = on_open,
    .on_transport_error = on_transport_error,
    .on_connection_error = on_connection_error,
};

static void *
serve(void *arg)
{
    int rc = lep_container_run(container);
    if (rc)
        fprintf(stderr, PROG ": event loop failed: %s\n", lep_strerror(rc));
    pthread_mutex_lock(&lock);
    running--;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *
watch_stdin(void *arg)
{
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTIONS] URL\n"
            "Open N idle AMQP connections to a broker (SASL and open, no session) and\n"
            "hold them; print one line of JSON once they are open.\n"
            "\n"
            "  -n, --connections N  connections (default 10000)\n"
            "      --parallel N     at most N being set up at once (default 200)\n"
            "      --threads N      threads serving them (default 1)\n"
            "      --hold SECONDS   then close them and exit (default: until a signal)\n"
            "      --stdin          also stop at end of input on stdin\n"
            "      --timeout SECONDS  give up connecting after this long (default 120)\n"
            "  -h, --help           this text\n"
            "\n"
            "The file-descriptor limit is raised to its hard limit; N needs N of them.\n"
            "Exit status: 0 when all opened, 1 when some failed, 2 usage, 3 timeout.\n");
}

static int
parse(int argc, char **argv)
{
    enum { O_PAR = 256, O_THREADS, O_HOLD, O_STDIN, O_TIMEOUT };
    static const struct option lo[] = {
        {"connections", required_argument, NULL, 'n'},
        {"parallel", required_argument, NULL, O_PAR},
        {"threads", required_argument, NULL, O_THREADS},
        {"hold", required_argument, NULL, O_HOLD},
        {"stdin", no_argument, NULL, O_STDIN},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
        unsigned long v;
        double d;
        switch (ch) {
        case 'n':
        case O_PAR:
        case O_THREADS:
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || *end || v == 0 || v > 1000000)
                goto bad;
            if (ch == 'n')
                target = (unsigned)v;
            else if (ch == O_PAR)
                parallel = (unsigned)v;
            else if (v <= 64)
                threads = (unsigned)v;
            else
                goto bad;
            break;
        case O_HOLD:
        case O_TIMEOUT:
            d = strtod(optarg, &end);
            if (*end || end == optarg || !(d > 0))
                goto bad;
            if (ch == O_HOLD)
                hold_s = d;
            else
                timeout_s = d;
            break;
        case O_STDIN: use_stdin = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
        continue;
    bad:
        fprintf(stderr, PROG ": invalid value '%s' for %s\n", optarg, argv[optind - 1]);
        return 2;
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    url = argv[optind];
    return 0;
}

int
main(int argc, char **argv)
{
    int rc = parse(argc, argv);
    if (rc)
        return rc;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)target + 64)
        fprintf(stderr, PROG ": warning: the file-descriptor limit (%llu) is below %u\n",
                (unsigned long long)rl.rlim_cur, target + 64);

    /* Signals go to sigwait below, never to the serving threads. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    lep_container_opts_t o;
    lep_container_opts_init(&o);
    o.id = PROG;
    o.handler = &handler;
    o.auto_stop = false;
    if (lep_container_new(&container, &o) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    lep_connection_opts_init(&copts);
    copts.reconnect.enabled = false; /* a lost connection is a failure */
    copts.sasl_allow_insecure = true; /* PLAIN to a local test broker */

    double t0 = now_s();
    pthread_mutex_lock(&lock);
    launch_locked();
    pthread_mutex_unlock(&lock);

    pthread_t th[64], in;
    running = threads;
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, PROG ": cannot start a thread\n");
            return 1;
        }
    if (use_stdin)
        pthread_create(&in, NULL, watch_stdin, NULL);

    /* Wait for all to be set up (opened or failed). */
    int status = 0;
    pthread_mutex_lock(&lock);
    while (!stopping && opened + failed < target) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cond, &lock, &ts);
        if (now_s() - t0 > timeout_s) {
            fprintf(stderr, PROG ": timed out with %u of %u open\n", opened, target);
            status = 3;
            break;
        }
    }
    double secs = now_s() - t0;
    unsigned nopen = opened, nfail = failed;
    pthread_mutex_unlock(&lock);
    if (!status && nfail)
        status = 1;
    printf("{\"bench\":\"idle_conns\",\"open\":%u,\"failed\":%u,\"seconds\":%.3f,"
           "\"rss_kib\":%ld}\n",
           nopen, nfail, secs, rss_kib());
    fflush(stdout);

    if (!status) {
        /* Hold until a signal, end of input or --hold. */
        double until = hold_s > 0 ? now_s() + hold_s : 0;
        for (;;) {
            struct timespec ts = {0, 200 * 1000 * 1000};
            int sig = sigtimedwait(&sigs, NULL, &ts);
            if (sig == SIGINT || sig == SIGTERM)
                break;
            pthread_mutex_lock(&lock);
            bool stop = stopping;
            unsigned lost = failed - nfail;
            pthread_mutex_unlock(&lock);
            if (stop || (until && now_s() >= until))
                break;
            if (lost) {
                fprintf(stderr, PROG ": %u connections were lost while held\n", lost);
                status = 1;
                break;
            }
        }
    }
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_mutex_unlock(&lock);
    lep_container_stop(container);
    /* Closing must not hang the caller (a broker that never answers a
     * close): after 15 s, leave without waiting. */
    double end = now_s() + 15;
    pthread_mutex_lock(&lock);
    while (running && now_s() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cond, &lock, &ts);
    }
    bool hung = running > 0;
    pthread_mutex_unlock(&lock);
    if (hung) {
        fprintf(stderr, PROG ": connections still closing after 15 s; leaving\n");
        _exit(status);
    }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    lep_container_free(container);
    return status;
}
