/* Helpers shared by the store's tests: scratch directories, a recovery
 * collector, completion counters and file surgery. */
#ifndef LEPTON_TEST_STORE_UTIL_H
#define LEPTON_TEST_STORE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void
rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[1024];
        struct stat st;
        snprintf(path, sizeof path, "%.700s/%.255s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(path);
        else
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* A fresh directory; free() it after rm_rf(). */
static inline char *
scratch_dir(void)
{
    const char *t = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/lepton-store-XXXXXX", t && *t ? t : "/tmp");
    char *d = mkdtemp(tmpl);
    if (!d)
        abort();
    return strdup(d);
}

static inline lepi_store_opts_t
small_opts(const char *dir)
{
    lepi_store_opts_t o;
    lepi_store_opts_init(&o);
    o.dir = dir;
    o.fsync = false;
    o.segment_size = 64 * 1024;
    return o;
}

/* A message's bytes, from its id. */
static inline void
fill(uint8_t *p, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(id * 131 + i * 7);
}

/* ---- what recovery hands over ---- */

typedef struct rq {
    uint64_t id;
    char *name;
    uint8_t *props;
    size_t plen;
} rq_t;

typedef struct rm {
    uint64_t q, m;
    uint8_t *data;
    size_t len;
} rm_t;

typedef struct recovered {
    rq_t *qs;
    size_t nq, capq;
    rm_t *ms;
    size_t nm, capm;
    bool keep_data;
    int fail_with; /* returned by the message callback when set */
} recovered_t;

static inline int
rec_queue(void *ctx, uint64_t id, const char *name, const void *props, size_t plen)
{
    recovered_t *r = ctx;
    if (r->nq == r->capq) {
        r->capq = r->capq ? r->capq * 2 : 16;
        r->qs = realloc(r->qs, r->capq * sizeof *r->qs);
    }
    rq_t *q = &r->qs[r->nq++];
    q->id = id;
    q->name = strdup(name);
    q->props = malloc(plen ? plen : 1);
    memcpy(q->props, props, plen);
    q->plen = plen;
    return 0;
}

static inline int
rec_message(void *ctx, uint64_t q, uint64_t m, const void *data, size_t len)
{
    recovered_t *r = ctx;
    if (r->fail_with)
        return r->fail_with;
    if (r->nm == r->capm) {
        r->capm = r->capm ? r->capm * 2 : 1024;
        r->ms = realloc(r->ms, r->capm * sizeof *r->ms);
    }
    rm_t *e = &r->ms[r->nm++];
    e->q = q;
    e->m = m;
    e->len = len;
    e->data = NULL;
    if (r->keep_data) {
        e->data = malloc(len ? len : 1);
        memcpy(e->data, data, len);
    }
    return 0;
}

static inline lepi_store_recovery_t
rec_callbacks(recovered_t *r)
{
    return (lepi_store_recovery_t){.ctx = r, .queue = rec_queue, .message = rec_message};
}

/* Opens the store or fails the test (r may be NULL: no callbacks). */
static inline lepi_store_t *
open_ok(const lepi_store_opts_t *o, recovered_t *r, lepi_store_info_t *info)
{
    lepi_store_t *s = NULL;
    char err[512];
    lepi_store_recovery_t cb = r ? rec_callbacks(r) : (lepi_store_recovery_t){0};
    int rc = lepi_store_open(&s, o, r ? &cb : NULL, info, err, sizeof err);
    if (rc)
        fail_msg("open: %d %s", rc, err);
    return s;
}

static inline void
rec_free(recovered_t *r)
{
    for (size_t i = 0; i < r->nq; i++) {
        free(r->qs[i].name);
        free(r->qs[i].props);
    }
    for (size_t i = 0; i < r->nm; i++)
        free(r->ms[i].data);
    free(r->qs);
    free(r->ms);
    bool keep = r->keep_data;
    memset(r, 0, sizeof *r);
    r->keep_data = keep;
}

/* ---- completions ---- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long done, ok, failed;
    int last_error;
} counter_t;

#define COUNTER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0}

static inline void
count_done(void *ctx, int status)
{
    counter_t *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->done++;
    if (status == 0)
        c->ok++;
    else {
        c->failed++;
        c->last_error = status;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline void
counter_wait(counter_t *c, long n)
{
    pthread_mutex_lock(&c->mu);
    while (c->done < n)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* ---- files ---- */

/* The journal segments of dir, ascending; returns how many (at most max). */
static inline int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline size_t
segment_files(const char *dir, char paths[][600], size_t max)
{
    DIR *d = opendir(dir);
    char *names[4096];
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 4096)
        if (strncmp(e->d_name, "journal-", 8) == 0)
            names[n++] = strdup(e->d_name);
    if (d)
        closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i < max)
            snprintf(paths[i], 600, "%s/%s", dir, names[i]);
        free(names[i]);
    }
    return n;
}

static inline off_t
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static inline void
flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    if (fd < 0 || pread(fd, &b, 1, at) != 1)
        abort();
    b ^= 0x10;
    if (pwrite(fd, &b, 1, at) != 1)
        abort();
    close(fd);
}

/* ---- each test's own directory ---- */

static char *dir;

static inline int
setup(void **state)
{
    (void)state;
    dir = scratch_dir();
    return 0;
}

static inline int
teardown(void **state)
{
    (void)state;
    rm_rf(dir);
    free(dir);
    return 0;
}

/* Starts dir again empty; mkdir's result. */
static inline int
empty_dir(void)
{
    rm_rf(dir);
    return mkdir(dir, 0700);
}

#endif
