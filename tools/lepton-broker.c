/* lepton-broker: the store-and-forward AMQP 1.0 broker (include/lepton/
 * broker.h) with its configuration file and the common settings as flags. */
#include <lepton/broker.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "lepton-broker"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS]\n"
    "Run the lepton AMQP 1.0 broker: queues, topics, durable storage.\n"
    "\n"
    "Options (flags override the configuration file):\n"
    "  -c, --config FILE       configuration file (JSON with comments; see\n"
    "                          docs/broker.md)\n"
    "  -l, --listen URL        amqp://HOST:PORT or amqps://HOST:PORT to listen on;\n"
    "                          repeatable (default amqp://127.0.0.1:5672)\n"
    "  -d, --data DIR          journal directory (default ./lepton-data); \"\" keeps\n"
    "                          nothing on disk\n"
    "      --no-fsync          do not wait for the disk (faster, loses recent durable\n"
    "                          messages on a power failure or kill -9)\n"
    "  -t, --threads N         threads serving connections (default: one per CPU)\n"
    "      --users FILE        SASL users file (lines user:SCRAM-SHA-256:... or\n"
    "                          user:PLAIN:password)\n"
    "      --allow-anonymous   accept SASL ANONYMOUS even with a users file\n"
    "      --metrics HOST:PORT serve Prometheus metrics at http://HOST:PORT/metrics\n"
    "      --log-level LEVEL   error, warn, info (default), debug or trace\n"
    "      --check             check the configuration and exit\n"
    "  -h, --help              show this help and exit\n"
    "      --version           show the version and exit\n"
    "\n"
    "Addresses: queue.NAME is a queue, topic.NAME a topic (subscribe with\n"
    "topic.PATTERN: '*' one word, '#' any number), other names become queues on\n"
    "first use; $management answers management requests.  SIGINT or SIGTERM\n"
    "stops the broker cleanly.\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 when the broker failed, 2 for bad usage or\n"
    "a bad configuration.\n";

static lep_broker_t *running;

static void
on_signal(int sig)
{
    static volatile sig_atomic_t once;
    if (once) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    once = 1;
    if (running)
        lep_broker_stop(running);
}

static void __attribute__((noreturn))
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    enum { O_NOFSYNC = 1, O_USERS, O_ANON, O_METRICS, O_LOG, O_CHECK, O_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"data", required_argument, NULL, 'd'},
        {"no-fsync", no_argument, NULL, O_NOFSYNC},
        {"threads", required_argument, NULL, 't'},
        {"users", required_argument, NULL, O_USERS},
        {"allow-anonymous", no_argument, NULL, O_ANON},
        {"metrics", required_argument, NULL, O_METRICS},
        {"log-level", required_argument, NULL, O_LOG},
        {"check", no_argument, NULL, O_CHECK},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0},
    };
    /* The file first, so that flags override it wherever they stand. */
    const char *config = NULL;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:l:d:t:h", longopts, NULL)) != -1)
        if (opt == 'c')
            config = optarg;
    lep_broker_config_t cfg;
    if (lep_broker_config_init(&cfg) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    if (config && lep_broker_config_load(&cfg, config) != 0) {
        fprintf(stderr, PROG ": %s\n", cfg.error);
        lep_broker_config_fini(&cfg);
        return 2;
    }
    bool check = false;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":c:l:d:t:h", longopts, NULL)) != -1) {
        int rc = 0;
        char *end;
        switch (opt) {
        case 'c':
            break;
        case 'l':
            /* the first --listen replaces the file's listeners */
            rc = lep_broker_config_add_listen(&cfg, optarg);
            break;
        case 'd': rc = lep_broker_config_set_str(&cfg.data_dir, optarg); break;
        case O_NOFSYNC: cfg.fsync = false; break;
        case 't':
            errno = 0;
            cfg.threads = (int)strtol(optarg, &end, 10);
            if (*end || errno || cfg.threads < 1 || cfg.threads > 64)
                usage_error("--threads: '%s' is not a number from 1 to 64", optarg);
            break;
        case O_USERS: rc = lep_broker_config_set_str(&cfg.users_file, optarg); break;
        case O_ANON:
            cfg.allow_anonymous = true;
            cfg.allow_anonymous_set = true;
            break;
        case O_METRICS: rc = lep_broker_config_set_str(&cfg.metrics_listen, optarg); break;
        case O_LOG: rc = lep_broker_config_set_str(&cfg.log_level, optarg); break;
        case O_CHECK: check = true; break;
        case 'h':
            fputs(usage_text, stdout);
            lep_broker_config_fini(&cfg);
            return 0;
        case O_VERSION:
            printf(PROG " %s\n", LEP_VERSION_STRING);
            lep_broker_config_fini(&cfg);
            return 0;
        case ':': usage_error("option '%s' needs a value", argv[optind - 1]);
        default: usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (rc) {
            fprintf(stderr, PROG ": out of memory\n");
            return 1;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (lep_broker_config_check(&cfg) != 0) {
        fprintf(stderr, PROG ": %s\n", cfg.error);
        lep_broker_config_fini(&cfg);
        return 2;
    }
    if (check) {
        printf(PROG ": configuration OK\n");
        lep_broker_config_fini(&cfg);
        return 0;
    }
    char err[600] = "";
    lep_broker_t *b;
    if (lep_broker_new(&b, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        lep_broker_config_fini(&cfg);
        return 1;
    }
    running = b;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = lep_broker_run(b);
    running = NULL;
    lep_broker_free(b);
    lep_broker_config_fini(&cfg);
    return rc ? 1 : 0;
}
