/* lepton-broker: the store-and-forward AMQP 1.0 broker (include/lepton/
 * broker.h) with its configuration file and the common settings as flags. */
#include <lepton/broker.h>

#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define PROG "lepton-broker"

static const char usage_text[] =
    "Usage: " PROG " [OPTIONS]\n"
    "Run the lepton AMQP 1.0 broker: queues, topics, durable storage.\n"
    "\n"
    "Options (flags override the configuration file):\n"
    "  -c, --config FILE       configuration file (JSON with comments; every key in\n"
    "                          docs/broker.md)\n"
    "  -l, --listen URL        amqp://HOST:PORT or amqps://HOST:PORT to listen on;\n"
    "                          repeatable; replaces the file's listeners (default\n"
    "                          amqp://127.0.0.1:5672)\n"
    "  -d, --data DIR          journal directory (default ./lepton-data; made if\n"
    "                          missing, locked while the broker runs)\n"
    "      --no-fsync          do not wait for the disk (faster, loses recent durable\n"
    "                          messages on a power failure)\n"
    "  -t, --threads N         threads serving connections (default 0: one per CPU)\n"
    "      --users FILE        SASL users file (lines user:SCRAM-SHA-256:... or\n"
    "                          user:PLAIN:password); anonymous logins are then refused\n"
    "      --allow-anonymous   accept SASL ANONYMOUS even with a users file\n"
    "      --metrics HOST:PORT serve Prometheus metrics at http://HOST:PORT/metrics\n"
    "      --log-level LEVEL   error, warn, info (default), debug or trace\n"
    "      --check             check the configuration, print \"configuration OK\"\n"
    "                          and exit (nothing is opened or listened on)\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show the version and exit\n"
    "\n"
    "Addresses: queue.NAME is a queue, topic.NAME a topic (subscribe with\n"
    "topic.PATTERN: '*' one word, '#' any number), other names become queues on\n"
    "first use; $management answers management requests.  The log goes to\n"
    "stderr.  SIGINT or SIGTERM stops the broker cleanly (a second one at once).\n"
    "\n"
    "Exit status: 0 after a clean stop, 1 when the broker cannot start (data\n"
    "directory locked, port in use...) or failed, 2 for bad usage or a bad\n"
    "configuration.\n";

static void
stop_broker(void *b)
{
    lep_broker_stop(b);
}

/* A value on the command line is wrong: one line, the --help hint, 2. */
static void __attribute__((noreturn))
bad_value(lep_broker_config_t *cfg, const char *fmt, const char *arg)
{
    char msg[700];
    snprintf(msg, sizeof msg, fmt, arg);
    lep_broker_config_fini(cfg);
    cli_usage_error(PROG, "%s", msg);
}

static int
out_of_memory(lep_broker_config_t *cfg)
{
    fprintf(stderr, PROG ": out of memory\n");
    lep_broker_config_fini(cfg);
    return 1;
}

int
main(int argc, char **argv)
{
    enum { O_NOFSYNC = 1, O_USERS, O_ANON, O_METRICS, O_LOG, O_CHECK };
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
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static const char shortopts[] = ":c:l:d:t:hV";
    /* First pass: the command line's own problems, --help and --version
     * (whatever the file holds), and the file, so that flags override it
     * wherever they stand. */
    const char *config = NULL;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': cli_print_version(PROG); return 0;
        case '?':
        case ':': cli_bad_option(PROG, argv, longopts, opt);
        default: break;
        }
    }
    if (optind < argc)
        cli_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
    lep_broker_config_t cfg;
    if (lep_broker_config_init(&cfg) != 0)
        return out_of_memory(&cfg);
    if (config && lep_broker_config_load(&cfg, config) != 0) {
        fprintf(stderr, PROG ": %s\n", cfg.error);
        lep_broker_config_fini(&cfg);
        return 2;
    }
    bool check = false;
    optind = 0; /* glibc: start again from scratch */
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int rc = 0;
        char *end;
        long n;
        switch (opt) {
        case 'l':
            /* the first --listen replaces the file's listeners */
            rc = lep_broker_config_add_listen(&cfg, optarg);
            if (rc == LEP_ERR_INVALID)
                bad_value(&cfg, "--%s", cfg.error); /* listen "URL": why */
            break;
        case 'd': rc = lep_broker_config_set_str(&cfg.data_dir, optarg); break;
        case O_NOFSYNC: cfg.fsync = false; break;
        case 't':
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || n < 0 || n > 1024)
                bad_value(&cfg, "--threads: '%s' is not a number from 0 (one per CPU) to 1024",
                          optarg);
            cfg.threads = (int)n;
            break;
        case O_USERS: rc = lep_broker_config_set_str(&cfg.users_file, optarg); break;
        case O_ANON:
            cfg.allow_anonymous = true;
            cfg.allow_anonymous_set = true;
            break;
        case O_METRICS: rc = lep_broker_config_set_str(&cfg.metrics_listen, optarg); break;
        case O_LOG: rc = lep_broker_config_set_str(&cfg.log_level, optarg); break;
        case O_CHECK: check = true; break;
        default: break; /* -c, and what the first pass already handled */
        }
        if (rc)
            return out_of_memory(&cfg);
    }
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
    int rc = lep_broker_new(&b, &cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, PROG ": cannot start: %s\n", *err ? err : lep_strerror(rc));
        lep_broker_config_fini(&cfg);
        return 1;
    }
    cli_on_signals(stop_broker, b);
    rc = lep_broker_run(b);
    cli_on_signals(NULL, NULL);
    if (rc != 0)
        fprintf(stderr, PROG ": %s\n", lep_strerror(rc));
    lep_broker_free(b);
    lep_broker_config_fini(&cfg);
    return rc ? 1 : 0;
}
