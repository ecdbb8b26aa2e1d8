/* The store's front: options, open/close, the appenders' side (records
 * encoded into pending chunks under one mutex) and the writer thread's
 * loop (take the whole backlog, write it with writev, one fdatasync,
 * completions in append order, then housekeeping). */
#include "broker/journal.h"

#include "broker/crc32c.h"

#include <lepton/common.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Pending appends go into chunks of this size (a bigger append gets a
 * chunk of its own); the writer hands written chunks back to a small pool,
 * so appends do not allocate in the steady state. */
#define CHUNK_CAP ((size_t)1 << 20)
#define POOL_MAX 8

void
lepi_store_opts_init(lepi_store_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->segment_size = (size_t)64 << 20;
    o->fsync = true;
    o->compact_ratio = 0.5;
    o->max_batch = (size_t)8 << 20;
    o->compact_step = (size_t)1 << 20;
}

int
jr_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int
jr_io_fail(lepi_store_t *s, const char *what)
{
    int e = errno;
    if (!s->werr) {
        s->werr = LEP_ERR_IO;
        pthread_mutex_lock(&s->mu);
        s->failed = LEP_ERR_IO;
        snprintf(s->errmsg, sizeof s->errmsg, "%s: %s: %s", s->dir, what, strerror(e));
        pthread_mutex_unlock(&s->mu);
    }
    return LEP_ERR_IO;
}

static int
mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof path)
        return -1;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

static void
free_chunks(jr_chunk_t *c)
{
    while (c) {
        jr_chunk_t *next = c->next;
        lep_free(c);
        c = next;
    }
}

static void
store_free(lepi_store_t *s)
{
    jr_compact_fini(s);
    jr_index_fini(&s->x);
    if (s->head_fd >= 0)
        close(s->head_fd);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    if (s->dirfd >= 0)
        close(s->dirfd);
    free_chunks(s->pend_head);
    free_chunks(s->free_chunks);
    lep_free(s->pend.v);
    lep_free(s->wunits.v);
    lep_free(s->dir);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->synced);
    lep_free(s);
}

/* ---- the writer thread ---- */

static void
publish(lepi_store_t *s, size_t done_units, bool batch, uint64_t durable)
{
    jr_index_t *x = &s->x;
    uint64_t disk = 0;
    for (size_t i = 0; i < x->nsegs; i++)
        disk += x->segs[i].size;
    pthread_mutex_lock(&s->mu);
    s->seq_done += done_units;
    if (durable > s->seq_durable)
        s->seq_durable = durable;
    if (batch)
        s->stats.batches++;
    s->stats.syncs = s->syncs;
    s->stats.bytes_written = s->bytes_written;
    s->stats.disk_bytes = disk;
    s->stats.segments = x->nsegs;
    s->stats.live_messages = x->msgs.count;
    s->stats.live_enqueues = x->live_enqueues;
    s->stats.live_queues = x->queues.count;
    s->stats.compactions = s->compactions;
    pthread_cond_broadcast(&s->synced);
    pthread_mutex_unlock(&s->mu);
}

/* Between batches: dead segments go, and a compaction step runs. */
static void
housekeeping(lepi_store_t *s)
{
    if (s->werr)
        return;
    size_t dead = jr_delete_dead(s);
    bool stepped = jr_compact_step(s);
    if (dead || stepped)
        publish(s, 0, false, 0);
}

/* Writes units [a, b), makes them durable if one of them has a completion
 * or a lepi_store_sync caller waits (appends without completion, such as
 * most acks, ride along with the next sync), and runs their completions
 * in order. */
static void
finish_group(lepi_store_t *s, size_t a, size_t b, uint64_t bytes, bool need_sync)
{
    uint64_t last = s->wseq + (b - a), durable = 0;
    if (s->wwant >= s->wseq + 1)
        need_sync = true;
    if (!s->werr && !(need_sync ? jr_commit(s) : jr_flush(s)))
        durable = need_sync || !s->o.fsync ? last : 0;
    s->wseq = last;
    for (size_t i = a; i < b; i++) {
        jr_unit_t *u = &s->wunits.v[i];
        if (s->werr && !u->status)
            u->status = s->werr;
        if (u->done)
            u->done(u->ctx, u->status);
    }
    publish(s, b - a, true, durable);
    s->cmp.credit += bytes;
    s->cmp.paused = false;
    housekeeping(s);
}

static void
write_backlog(lepi_store_t *s, jr_chunk_t *c)
{
    size_t off = 0, first = 0;
    uint64_t group = 0;
    bool need_sync = false;

    for (size_t i = 0; i < s->wunits.n; i++) {
        jr_unit_t *u = &s->wunits.v[i];
        if (off + u->len > c->len) {
            c = c->next;
            off = 0;
        }
        uint8_t *p = c->data + off;
        off += u->len;
        uint32_t seg, soff;
        int rc = s->werr;
        if (!rc && !(rc = jr_place(s, u->len, &seg, &soff)) &&
            !(rc = jr_apply_unit(s, p, u->len, seg, soff)))
            rc = jr_emit(s, p, u->len);
        u->status = rc;
        group += u->len;
        need_sync |= u->done != NULL;
        if (group >= s->o.max_batch) {
            finish_group(s, first, i + 1, group, need_sync);
            first = i + 1;
            group = 0;
            need_sync = false;
        }
    }
    if (first < s->wunits.n)
        finish_group(s, first, s->wunits.n, group, need_sync);
}

/* Makes everything written durable (a lepi_store_sync caller waits, or the
 * store closes). */
static void
sync_now(lepi_store_t *s)
{
    if (!s->werr && !jr_commit(s))
        publish(s, 0, false, s->wseq);
}

static void *
writer_main(void *arg)
{
    lepi_store_t *s = arg;

    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->pend.n) {
            if (s->closing || (s->seq_want > s->seq_durable && !s->failed))
                break;
            pthread_mutex_unlock(&s->mu);
            bool work = jr_compact_pending(s);
            pthread_mutex_lock(&s->mu);
            if (work || s->pend.n || s->closing || (s->seq_want > s->seq_durable && !s->failed))
                break;
            s->writer_waiting = true;
            pthread_cond_wait(&s->wake, &s->mu);
            s->writer_waiting = false;
        }
        if (!s->pend.n && s->closing) {
            pthread_mutex_unlock(&s->mu);
            sync_now(s); /* what rode along without a sync */
            pthread_mutex_lock(&s->mu);
            s->stopped = true;
            pthread_cond_broadcast(&s->synced);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        jr_chunk_t *chunks = s->pend_head;
        s->pend_head = s->pend_tail = NULL;
        jr_units_t t = s->pend;
        s->pend = s->wunits;
        s->pend.n = 0;
        s->wunits = t;
        s->wwant = s->seq_want;
        bool want_sync = s->seq_want > s->seq_durable && !s->failed;
        pthread_mutex_unlock(&s->mu);

        if (s->wunits.n) {
            write_backlog(s, chunks);
            s->wunits.n = 0;
        } else if (want_sync) {
            sync_now(s);
        } else {
            housekeeping(s); /* idle */
        }
        if (chunks) {
            jr_chunk_t *spill = NULL;
            pthread_mutex_lock(&s->mu);
            while (chunks) {
                jr_chunk_t *c = chunks;
                chunks = c->next;
                if (c->cap == CHUNK_CAP && s->nfree_chunks < POOL_MAX) {
                    c->next = s->free_chunks;
                    s->free_chunks = c;
                    s->nfree_chunks++;
                } else {
                    c->next = spill;
                    spill = c;
                }
            }
            pthread_mutex_unlock(&s->mu);
            free_chunks(spill);
        }
    }
    return NULL;
}

/* ---- open / close ---- */

int
lepi_store_open(lepi_store_t **out, const lepi_store_opts_t *o, const lepi_store_recovery_t *r,
                lepi_store_info_t *info, char *err, size_t errlen)
{
    lepi_store_info_t dummy;
    lepi_store_t *s;
    int rc;

    if (err && errlen)
        err[0] = 0;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    if (!out || !o || !o->dir || !o->dir[0])
        return jr_errf(err, errlen, LEP_ERR_INVALID, "no data directory");
    *out = NULL;
    if ((o->segment_size && (o->segment_size < 4096 || o->segment_size > JR_MAX_SEGMENT)) ||
        o->compact_ratio < 0 || o->compact_ratio >= 1)
        return jr_errf(err, errlen, LEP_ERR_INVALID,
                       "segment_size must be 4 KiB..1 GiB and compact_ratio in [0, 1)");
    if (!(s = lep_calloc(1, sizeof *s)))
        return jr_errf(err, errlen, LEP_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (!s->o.segment_size)
        s->o.segment_size = (size_t)64 << 20;
    if (s->o.compact_ratio == 0)
        s->o.compact_ratio = 0.5;
    if (!s->o.max_batch)
        s->o.max_batch = (size_t)8 << 20;
    if (!s->o.compact_step)
        s->o.compact_step = (size_t)1 << 20;
    s->dirfd = s->lockfd = s->head_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->synced, NULL);
    jr_index_init(&s->x);
    lep_buf_init(&s->cmp.buf);
    size_t dl = strlen(o->dir);
    if (!(s->dir = lep_malloc(dl + 1))) {
        rc = jr_errf(err, errlen, LEP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    memcpy(s->dir, o->dir, dl + 1);
    s->o.dir = s->dir;

    if (mkdirs(s->dir) < 0 ||
        (s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = jr_errf(err, errlen, LEP_ERR_IO, "%s: %s", s->dir, strerror(errno));
        goto fail;
    }
    s->lockfd = openat(s->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0) {
        rc = jr_errf(err, errlen, LEP_ERR_IO, "%s/LOCK: %s", s->dir, strerror(errno));
        goto fail;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            char pid[24] = {0};
            ssize_t n = pread(s->lockfd, pid, sizeof pid - 1, 0);
            long v = n > 0 ? strtol(pid, NULL, 10) : 0;
            if (v > 0)
                rc = jr_errf(err, errlen, LEP_ERR_STATE,
                             "%s: locked by another process (pid %ld)", s->dir, v);
            else
                rc = jr_errf(err, errlen, LEP_ERR_STATE, "%s: locked by another process",
                             s->dir);
        } else {
            rc = jr_errf(err, errlen, LEP_ERR_IO, "%s/LOCK: %s", s->dir, strerror(errno));
        }
        goto fail;
    }
    /* who holds it, for the message above (the lock is the flock, not this) */
    char pid[24];
    int pl = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lockfd, 0) < 0 || pwrite(s->lockfd, pid, (size_t)pl, 0) != pl) {
        rc = jr_errf(err, errlen, LEP_ERR_IO, "%s/LOCK: %s", s->dir, strerror(errno));
        goto fail;
    }
    if ((rc = jr_recover(s, r, info, err, errlen)))
        goto fail;
    s->stats.segments = s->x.nsegs;
    publish(s, 0, false, 0);
    s->stats.batches = 0;
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        rc = jr_errf(err, errlen, LEP_ERR_NOMEM, "cannot start the writer thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    store_free(s);
    return rc;
}

void
lepi_store_close(lepi_store_t *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    store_free(s);
}

/* ---- appending ---- */

/* Room for one unit of n bytes at the pending tail; mu held. */
static uint8_t *
room(lepi_store_t *s, size_t n)
{
    jr_chunk_t *t = s->pend_tail;
    if (t && t->cap - t->len >= n)
        return t->data + t->len;
    jr_chunk_t *c;
    if (n <= CHUNK_CAP && s->free_chunks) {
        c = s->free_chunks;
        s->free_chunks = c->next;
        s->nfree_chunks--;
    } else {
        size_t cap = n > CHUNK_CAP ? n : CHUNK_CAP;
        if (!(c = lep_malloc(sizeof *c + cap)))
            return NULL;
        c->cap = cap;
    }
    c->next = NULL;
    c->len = 0;
    if (t)
        t->next = c;
    else
        s->pend_head = c;
    s->pend_tail = c;
    return c->data;
}

/* Starts an append of n bytes: a unit slot and room for the bytes.  On
 * success mu is held and *p is where the bytes go; finish with commit(). */
static int
begin(lepi_store_t *s, size_t n, uint8_t **p)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->failed ? s->failed : s->stopped ? LEP_ERR_STATE : 0;
    if (!rc && s->pend.n == s->pend.cap) {
        size_t cap = s->pend.cap ? s->pend.cap * 2 : 256;
        jr_unit_t *v = lep_realloc(s->pend.v, cap * sizeof *v);
        if (v) {
            s->pend.v = v;
            s->pend.cap = cap;
        } else {
            rc = LEP_ERR_NOMEM;
        }
    }
    if (!rc && !(*p = room(s, n)))
        rc = LEP_ERR_NOMEM;
    if (rc)
        pthread_mutex_unlock(&s->mu);
    return rc;
}

static void
commit(lepi_store_t *s, size_t n, lepi_store_done_fn done, void *ctx)
{
    s->pend_tail->len += n;
    s->pend.v[s->pend.n++] = (jr_unit_t){done, ctx, n, 0};
    s->seq_appended++;
    s->stats.appends++;
    if (s->writer_waiting)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

static void
rec_header(uint8_t *p, uint32_t len, uint8_t type)
{
    jr_put32(p + 4, len);
    p[8] = type;
}

static void
rec_seal(uint8_t *p)
{
    jr_put32(p, lepi_crc32c(0, p + 4, 5 + (size_t)jr_get32(p + 4)));
}

int
lepi_store_enqueue(lepi_store_t *s, uint64_t msg_id, const void *data, size_t len,
                   const uint64_t *queues, size_t nqueues, lepi_store_done_fn done, void *ctx)
{
    uint8_t h[JR_REC + 8];
    uint8_t *p;
    int rc;

    if (!s || (!data && len) || !queues || !nqueues)
        return LEP_ERR_INVALID;
    if (nqueues > JR_MAX_QUEUES || len > JR_MAX_BODY - 8)
        return LEP_ERR_LIMIT;
    /* the message's checksum is computed before taking the lock */
    rec_header(h, (uint32_t)(8 + len), JR_MSG);
    jr_put64(h + JR_REC, msg_id);
    uint32_t crc = lepi_crc32c(0, h + 4, 5 + 8);
    jr_put32(h, lepi_crc32c(crc, data, len));
    size_t n = nqueues * JR_ENQ + sizeof h + len;
    if ((rc = begin(s, n, &p)))
        return rc;
    for (size_t i = 0; i < nqueues; i++, p += JR_ENQ) {
        rec_header(p, 16, JR_ENQ_T);
        jr_put64(p + JR_REC, queues[i]);
        jr_put64(p + JR_REC + 8, msg_id);
        rec_seal(p);
    }
    memcpy(p, h, sizeof h);
    if (len)
        memcpy(p + sizeof h, data, len);
    commit(s, n, done, ctx);
    return 0;
}

int
lepi_store_ack(lepi_store_t *s, uint64_t queue_id, uint64_t msg_id, lepi_store_done_fn done,
               void *ctx)
{
    uint8_t *p;
    int rc;

    if (!s)
        return LEP_ERR_INVALID;
    if ((rc = begin(s, JR_ACK, &p)))
        return rc;
    rec_header(p, 20, JR_ACK_T);
    jr_put64(p + JR_REC, queue_id);
    jr_put64(p + JR_REC + 8, msg_id);
    jr_put32(p + JR_REC + 16, 0); /* the writer fills in the target and the checksum */
    commit(s, JR_ACK, done, ctx);
    return 0;
}

int
lepi_store_queue_create(lepi_store_t *s, uint64_t queue_id, const char *name, const void *props,
                        size_t props_len, lepi_store_done_fn done, void *ctx)
{
    uint8_t *p;
    int rc;

    if (!s || !name || (!props && props_len))
        return LEP_ERR_INVALID;
    size_t nl = strlen(name);
    if (nl > JR_MAX_NAME || props_len > JR_MAX_BODY - 11 - nl)
        return LEP_ERR_LIMIT;
    size_t blen = 11 + nl + props_len;
    if ((rc = begin(s, JR_REC + blen, &p)))
        return rc;
    rec_header(p, (uint32_t)blen, JR_QCREATE);
    uint8_t *b = p + JR_REC;
    jr_put64(b, queue_id);
    b[8] = (uint8_t)nl;
    b[9] = (uint8_t)(nl >> 8);
    memcpy(b + 10, name, nl);
    b[10 + nl] = 0;
    if (props_len)
        memcpy(b + 11 + nl, props, props_len);
    rec_seal(p);
    commit(s, JR_REC + blen, done, ctx);
    return 0;
}

int
lepi_store_queue_delete(lepi_store_t *s, uint64_t queue_id, lepi_store_done_fn done, void *ctx)
{
    uint8_t *p;
    int rc;

    if (!s)
        return LEP_ERR_INVALID;
    if ((rc = begin(s, JR_QDEL, &p)))
        return rc;
    rec_header(p, 12, JR_QDELETE);
    jr_put64(p + JR_REC, queue_id);
    jr_put32(p + JR_REC + 8, 0);
    commit(s, JR_QDEL, done, ctx);
    return 0;
}

int
lepi_store_sync(lepi_store_t *s)
{
    if (!s)
        return LEP_ERR_INVALID;
    pthread_mutex_lock(&s->mu);
    uint64_t target = s->seq_appended;
    if (target > s->seq_want)
        s->seq_want = target;
    if (s->writer_waiting)
        pthread_cond_signal(&s->wake);
    while ((s->seq_durable < target || s->seq_done < target) && !s->stopped && !s->failed)
        pthread_cond_wait(&s->synced, &s->mu);
    /* completions after a failure run too: wait for them */
    while (s->failed && s->seq_done < target && !s->stopped)
        pthread_cond_wait(&s->synced, &s->mu);
    int rc = s->failed ? s->failed : s->seq_durable >= target ? 0 : LEP_ERR_STATE;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void
lepi_store_stats(lepi_store_t *s, lepi_store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

int
lepi_store_status(lepi_store_t *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->failed;
    if (err && errlen)
        snprintf(err, errlen, "%s", rc ? s->errmsg : "");
    pthread_mutex_unlock(&s->mu);
    return rc;
}
