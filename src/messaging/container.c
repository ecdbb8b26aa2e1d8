/* The container: the proactor, the handler chain, start and stop. */
#include "messaging/messaging_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

static _Thread_local char last_error[512];

void
lepi_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *
lep_container_error(void)
{
    return last_error;
}

char *
lepi_bytes_dup(lep_bytes_t b)
{
    if (!b.ptr)
        return NULL;
    char *d = lep_malloc(b.len + 1);
    if (d) {
        memcpy(d, b.ptr, b.len);
        d[b.len] = '\0';
    }
    return d;
}

const char *
lep_condition_format(const lep_condition_t *c, char *buf, size_t len)
{
    if (!len)
        return buf;
    if (!lep_condition_set(c)) {
        snprintf(buf, len, "(no error)");
        return buf;
    }
    if (c->description.len)
        snprintf(buf, len, "%.*s: %.*s", (int)c->name.len, (const char *)c->name.ptr,
                 (int)c->description.len, (const char *)c->description.ptr);
    else
        snprintf(buf, len, "%.*s", (int)c->name.len, (const char *)c->name.ptr);
    return buf;
}

lep_condition_t
lep_condition_make(const char *name, const char *description)
{
    lep_condition_t c;
    memset(&c, 0, sizeof c);
    if (name)
        c.name = lep_bytes_str(name);
    if (description)
        c.description = lep_bytes_str(description);
    return c;
}

/* The default of the *_error callbacks: one line on stderr. */
void
lepi_report(const char *who, const char *what, const lep_condition_t *cond)
{
    char buf[512];
    fprintf(stderr, "lepton: %s%s%s: %s\n", who ? who : "", who ? ": " : "", what,
            lep_condition_format(cond, buf, sizeof buf));
}

static bool
has_member(const lepi_hslot_t *s, size_t off)
{
    static const char zero[sizeof(void (*)(void))];
    return s && s->set && memcmp((const char *)&s->h + off, zero, sizeof zero) != 0;
}

const lepi_hslot_t *
lepi_pick(const lep_connection_t *c, const lepi_hslot_t *link, size_t off)
{
    if (has_member(link, off))
        return link;
    if (c && c->set && has_member(&c->set->handler, off))
        return &c->set->handler;
    if (c && has_member(&c->cont->handler, off))
        return &c->cont->handler;
    return NULL;
}

void
lep_container_opts_init(lep_container_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->auto_stop = true;
}

static void
make_uuid(char out[37])
{
    uint8_t u[16];
    if (RAND_bytes(u, sizeof u) != 1) {
        /* Not a secret: only unique enough for a container-id. */
        for (size_t i = 0; i < sizeof u; i++)
            u[i] = (uint8_t)(rand() >> 7);
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

static void on_notify(void *ctx, lep_proactor_t *p);
static void on_inactive(void *ctx, lep_proactor_t *p);

int
lep_container_new(lep_container_t **out, const lep_container_opts_t *opts)
{
    if (!out)
        return LEP_ERR_INVALID;
    *out = NULL;
    lep_container_opts_t defaults;
    if (!opts) {
        lep_container_opts_init(&defaults);
        opts = &defaults;
    }
    lep_container_t *c = lep_calloc(1, sizeof *c);
    if (!c)
        return LEP_ERR_NOMEM;
    char uuid[37];
    if (!opts->id)
        make_uuid(uuid);
    c->id = lepi_strdup(opts->id ? opts->id : uuid);
    if (opts->handler) {
        c->handler.h = *opts->handler;
        c->handler.set = true;
    }
    c->handler.ctx = opts->ctx;
    c->auto_stop = opts->auto_stop;
    c->trace = opts->trace;
    c->trace_ctx = opts->trace_ctx;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->started_cv, NULL);
    atomic_init(&c->stop_requested, false);
    atomic_init(&c->seq, 0);
    lep_proactor_opts_t po;
    memset(&po, 0, sizeof po);
    po.ctx = c;
    po.on_inactive = on_inactive;
    po.on_notify = on_notify;
    int rc = c->id ? lep_proactor_new(&c->p, &po) : LEP_ERR_NOMEM;
    if (rc) {
        pthread_cond_destroy(&c->started_cv);
        pthread_mutex_destroy(&c->lock);
        lep_free(c->id);
        lep_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
lep_container_free(lep_container_t *c)
{
    if (!c)
        return;
    /* The proactor frees the io connections without callbacks; the
     * messaging connections are ours to free. */
    lep_proactor_free(c->p);
    while (c->conns) {
        lep_connection_t *conn = c->conns;
        c->conns = conn->next;
        conn->engine = NULL; /* freed with the proactor; ic is held, released below */
        lepi_links_free_all(conn);
        atomic_store(&conn->refs, 1);
        lepi_connection_release(conn);
    }
    while (c->listeners) {
        lepi_listener_t *l = c->listeners;
        c->listeners = l->next;
        lepi_settings_fini(&l->set);
        lep_free(l);
    }
    pthread_cond_destroy(&c->started_cv);
    pthread_mutex_destroy(&c->lock);
    lep_free(c->id);
    lep_free(c);
}

const char *lep_container_id(const lep_container_t *c) { return c->id; }
void *lep_container_context(const lep_container_t *c) { return c->handler.ctx; }
lep_proactor_t *lep_container_proactor(const lep_container_t *c) { return c->p; }

uint64_t
lepi_container_next(lep_container_t *c)
{
    return atomic_fetch_add(&c->seq, 1) + 1;
}

void
lepi_container_conn_add(lep_container_t *c, lep_connection_t *conn)
{
    pthread_mutex_lock(&c->lock);
    conn->prev = NULL;
    conn->next = c->conns;
    if (c->conns)
        c->conns->prev = conn;
    c->conns = conn;
    c->nconns++;
    pthread_mutex_unlock(&c->lock);
}

void
lepi_container_conn_remove(lep_container_t *c, lep_connection_t *conn)
{
    pthread_mutex_lock(&c->lock);
    if (conn->prev)
        conn->prev->next = conn->next;
    else if (c->conns == conn)
        c->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
    c->nconns--;
    bool last = c->stopping && c->nconns == 0;
    pthread_mutex_unlock(&c->lock);
    if (last)
        lep_proactor_stop(c->p);
}

int
lep_container_schedule(lep_container_t *c, uint64_t delay_ms, lep_io_fn fn, void *ctx)
{
    if (!c)
        return LEP_ERR_INVALID;
    return lep_proactor_schedule(c->p, delay_ms, fn, ctx);
}

/* ------------------------------------------------------------------ */
/* Stop                                                                */

static void
close_conn_work(void *ctx)
{
    lep_connection_t *conn = ctx;
    if (!conn->ended && !conn->app_closed)
        lep_connection_close(conn, NULL);
    lep_connection_release(conn);
}

static void
force_stop(void *ctx)
{
    lep_container_t *c = ctx;
    lep_proactor_stop(c->p);
}

/* On a loop thread after lep_container_stop's notify. */
static void
on_notify(void *ctx, lep_proactor_t *p)
{
    lep_container_t *c = ctx;
    if (!atomic_load(&c->stop_requested))
        return;
    pthread_mutex_lock(&c->lock);
    if (c->stopping) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->stopping = true;
    for (lepi_listener_t *l = c->listeners; l; l = l->next)
        if (l->l) {
            lep_listener_close(l->l);
            l->l = NULL;
        }
    size_t n = c->nconns;
    for (lep_connection_t *conn = c->conns; conn; conn = conn->next) {
        lep_connection_hold(conn);
        if (lep_connection_inject(conn, close_conn_work, conn) != 0)
            lep_connection_release(conn);
    }
    pthread_mutex_unlock(&c->lock);
    if (n == 0)
        lep_proactor_stop(p);
    else /* a peer that never answers our close does not hold us up */
        lep_proactor_schedule(p, 2000, force_stop, c);
}

void
lep_container_stop(lep_container_t *c)
{
    if (!c)
        return;
    atomic_store(&c->stop_requested, true);
    lep_proactor_notify(c->p);
}

static void
on_inactive(void *ctx, lep_proactor_t *p)
{
    lep_container_t *c = ctx;
    if (c->auto_stop || atomic_load(&c->stop_requested))
        lep_proactor_stop(p);
}

/* ------------------------------------------------------------------ */
/* Run                                                                 */

int
lep_container_run(lep_container_t *c)
{
    if (!c)
        return LEP_ERR_INVALID;
    pthread_mutex_lock(&c->lock);
    bool first = !c->started;
    c->started = true;
    c->runners++;
    if (!first)
        while (!c->start_done)
            pthread_cond_wait(&c->started_cv, &c->lock);
    pthread_mutex_unlock(&c->lock);
    if (first) {
        const lepi_hslot_t *s = LEPI_PICK(NULL, &c->handler, on_container_start);
        if (s)
            s->h.on_container_start(s->ctx, c);
        pthread_mutex_lock(&c->lock);
        c->start_done = true;
        pthread_cond_broadcast(&c->started_cv);
        pthread_mutex_unlock(&c->lock);
    }
    int rc = lep_proactor_run(c->p);
    pthread_mutex_lock(&c->lock);
    bool last = --c->runners == 0;
    pthread_mutex_unlock(&c->lock);
    if (last) {
        const lepi_hslot_t *s = LEPI_PICK(NULL, &c->handler, on_container_stop);
        if (s)
            s->h.on_container_stop(s->ctx, c);
    }
    return rc;
}
