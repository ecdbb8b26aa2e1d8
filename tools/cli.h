/* What the lepton command-line clients share: option values, the
 * connection options they map to, stopping on a signal or a timeout,
 * and printing a message as text or JSON.  Uses the public API only. */
#ifndef LEPTON_TOOLS_CLI_H
#define LEPTON_TOOLS_CLI_H

#include <lepton/messaging.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of every client. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

struct option;

/* Options every client takes. */
typedef struct cli_common {
    const char *prog;
    const char *url;
    lep_delivery_mode_t mode;
    double timeout_s;      /* 0: none */
    const char *sasl_mechanisms;
    const char *tls_ca, *tls_cert, *tls_key;
    int verbose;
    int max_reconnect;     /* consecutive attempts; 0: none */
    const char *container_id; /* NULL: a random UUID */
} cli_common_t;

void cli_common_init(cli_common_t *o, const char *prog);

/* Long options of cli_common_t, to append to a tool's table, and their
 * handler: returns 1 when it took the option, 0 when not its own, and
 * exits with CLI_USAGE on a bad value.  Ids are >= CLI_OPT_BASE. */
#define CLI_OPT_BASE 1000
#define CLI_COMMON_LONGOPTS                                                                   \
    {"settle", required_argument, NULL, CLI_OPT_BASE + 0},                                  \
        {"timeout", required_argument, NULL, CLI_OPT_BASE + 1},                             \
        {"sasl-mechanisms", required_argument, NULL, CLI_OPT_BASE + 2},                     \
        {"tls-ca", required_argument, NULL, CLI_OPT_BASE + 3},                              \
        {"tls-cert", required_argument, NULL, CLI_OPT_BASE + 4},                            \
        {"tls-key", required_argument, NULL, CLI_OPT_BASE + 5},                             \
        {"max-reconnect", required_argument, NULL, CLI_OPT_BASE + 6},                       \
        {"verbose", no_argument, NULL, 'v'},                                                \
        {"version", no_argument, NULL, 'V'}
int cli_common_option(cli_common_t *o, int opt, const char *arg);

/* The text of the common options for --help. */
extern const char cli_common_help[];

/* For getopt_long's '?' and ':' results (the tools call getopt_long with
 * opterr 0 and a short-option string starting with ':'): one line naming
 * the option and what is wrong with it, the --help hint, exit CLI_USAGE. */
void cli_bad_option(const char *prog, char **argv, const struct option *longopts, int opt)
    __attribute__((noreturn));

/* Prints "prog: message" to stderr and exits with CLI_USAGE, adding a
 * hint to run --help. */
void cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* Prints "prog: message" to stderr. */
void cli_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing: the whole string, in range; exits with
 * CLI_USAGE naming the option otherwise. */
uint64_t cli_parse_u64(const char *prog, const char *opt, const char *s, uint64_t max);
double cli_parse_seconds(const char *prog, const char *opt, const char *s);
/* A number >= 0 (decimals allowed), at most max. */
double cli_parse_rate(const char *prog, const char *opt, const char *s, double max);

/* Checks o->url and the TLS options before anything connects: a bad URL,
 * a missing ADDRESS (need_address), TLS options that do not fit the URL
 * (listen: amqps needs --tls-cert and --tls-key) exit with CLI_USAGE;
 * unreadable TLS files exit with CLI_FAILED, naming the file and why. */
void cli_check_url(const cli_common_t *o, bool need_address, bool listen);
/* The one URL argument left after the options (argv[optind]): exits with
 * CLI_USAGE when it is missing or followed by more; sets o->url and checks
 * it as cli_check_url does. */
void cli_take_url(cli_common_t *o, int argc, char **argv, bool need_address, bool listen);
/* A container with the common options' settings (-v trace) and handler h
 * with ctx; exits with CLI_FAILED when it cannot be made. */
lep_container_t *cli_container_new(const cli_common_t *o, const lep_handler_t *h, void *ctx);

/* "prog (lepton) VERSION" on stdout. */
void cli_print_version(const char *prog);

/* Connection options from the common options (strings point into o). */
void cli_connection_opts(const cli_common_t *o, lep_connection_opts_t *co);
/* Container options: -v traces frames to stderr. */
void cli_container_opts(const cli_common_t *o, lep_container_opts_t *copt);

/* SIGINT and SIGTERM stop the container cleanly (once; a second signal
 * exits at once); a timeout stops it too and sets *timed_out.  Call
 * after the container is made, before run. */
void cli_stop_on_signals(lep_container_t *c);
void cli_arm_timeout(lep_container_t *c, double seconds, volatile bool *timed_out);
/* cli_stop_on_signals for anything else: the first signal calls
 * stop(arg); cli_on_signals(NULL, NULL) once there is nothing to stop. */
void cli_on_signals(void (*stop)(void *), void *arg);
/* True once a signal asked to stop. */
bool cli_interrupted(void);

double cli_now(void); /* monotonic seconds */

/* One line per message body: a string value as is, data sections as
 * their bytes, other values in lepton's readable form. */
void cli_print_body(FILE *f, const lep_message_t *m);
/* One JSON object per message: properties, application properties,
 * annotations and body. */
void cli_print_json(FILE *f, const lep_message_t *m);

#endif
