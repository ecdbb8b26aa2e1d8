/* The broker's Prometheus endpoint: a tiny HTTP/1.1 server on its own
 * thread, and helpers that write the text exposition format (0.0.4).
 *
 * Server.  One thread polls the listening socket, a wake pipe and up to
 * LEPI_METRICS_MAX_CLIENTS accepted connections (non-blocking; more wait
 * in the listen backlog).  One request per connection, then the server
 * closes it:
 *   GET /metrics (a query string is ignored)  200, text/plain; version=0.0.4
 *   GET anything else                         404
 *   any other method                          405 (Allow: GET)
 *   a malformed request line or not HTTP/1.x  400
 * A request (line and headers) larger than LEPI_METRICS_MAX_REQUEST bytes,
 * or not complete LEPI_METRICS_REQUEST_MS after the connection was
 * accepted, is dropped without an answer; an answer the client does not
 * read within LEPI_METRICS_WRITE_MS is dropped too.  So a slow or hostile
 * client costs one slot for at most a few seconds and never blocks the
 * broker.
 *
 * The body comes from render(ctx, out), called on the server's thread
 * once per 200 answer with out empty: it must be thread-safe with
 * respect to the broker (read counters atomically, or take its locks).
 *
 * Exposition helpers.  The broker writes each family as
 *
 *   lepi_prom_metric(out, "lepton_queue_depth", "Messages on the queue", LEPI_PROM_GAUGE);
 *   for each queue:
 *       lepi_prom_sample_u64(out, "lepton_queue_depth",
 *                            (const char *[]){"queue", q->name, NULL}, q->depth);
 *
 * Label values are escaped (backslash, double quote, newline); names are
 * checked against the format's grammar. */
#ifndef LEPTON_BROKER_METRICS_HTTP_H
#define LEPTON_BROKER_METRICS_HTTP_H

#include <lepton/common.h>

#include <stdint.h>

#define LEPI_METRICS_MAX_CLIENTS 16
#define LEPI_METRICS_MAX_REQUEST 8192 /* bytes of request line and headers */
#define LEPI_METRICS_REQUEST_MS 2000  /* from accept to the end of the headers */
#define LEPI_METRICS_WRITE_MS 10000   /* to write the whole answer */

typedef void (*lepi_metrics_render_fn)(void *ctx, lep_buf_t *out);

typedef struct lepi_metrics_http lepi_metrics_http_t;

/* Splits "host:port" or "[v6-address]:port" (port 0-65535, decimal) into
 * host (NUL-terminated, brackets removed, hostlen bytes) and port.  The
 * host must not be empty.  0 or LEP_ERR_INVALID. */
int lepi_metrics_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Binds and listens on listen ("host:port"; port 0: any free port, see
 * lepi_metrics_http_port) before it returns, then starts the thread.
 * render and ctx are borrowed until lepi_metrics_http_stop() returns.
 * Returns 0, LEP_ERR_INVALID (bad listen string or unknown host),
 * LEP_ERR_IO (socket, bind, listen or thread failed), LEP_ERR_NOMEM; err
 * (may be NULL) says why. */
int lepi_metrics_http_start(lepi_metrics_http_t **out, const char *listen,
                            lepi_metrics_render_fn render, void *ctx, char *err, size_t errlen);
/* The port bound (useful with port 0). */
uint16_t lepi_metrics_http_port(const lepi_metrics_http_t *m);
/* Wakes the thread, joins it, closes every socket and frees m (NULL is
 * allowed).  Not from the server's own thread (not from render). */
void lepi_metrics_http_stop(lepi_metrics_http_t *m);

/* ---- text exposition format ---- */

typedef enum lepi_prom_type {
    LEPI_PROM_COUNTER,
    LEPI_PROM_GAUGE,
    LEPI_PROM_UNTYPED,
} lepi_prom_type_t;

/* Appends "# HELP name help" (help escaped; NULL: no HELP line) and
 * "# TYPE name type".  0, LEP_ERR_INVALID (bad name), LEP_ERR_NOMEM;
 * on error out is as it was. */
int lepi_prom_metric(lep_buf_t *out, const char *name, const char *help, lepi_prom_type_t type);
/* Appends one sample line: name{k1="v1",...} value.  labels: NULL, or
 * key, value, key, value, ..., NULL (borrowed; values any UTF-8, escaped
 * here).  Doubles print as the shortest text that reads back the same,
 * NaN as "NaN", infinities as "+Inf" / "-Inf".  0, LEP_ERR_INVALID (bad
 * metric or label name, a key without a value), LEP_ERR_NOMEM; on error
 * out is as it was. */
int lepi_prom_sample(lep_buf_t *out, const char *name, const char *const *labels, double value);
/* The same with an exact integer (counters past 2^53). */
int lepi_prom_sample_u64(lep_buf_t *out, const char *name, const char *const *labels,
                         uint64_t value);

#endif
