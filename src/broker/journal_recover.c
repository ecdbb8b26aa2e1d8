/* Recovery: reads every segment in order, rebuilds the index (what is
 * live, where, which tombstones are still needed), hands the live queues
 * and messages to the caller, cuts a torn tail, and finishes a compaction
 * that a crash interrupted. */
#include "broker/journal.h"

#include "broker/crc32c.h"

#include <lepton/common.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int
jr_parse(const uint8_t *p, size_t avail, size_t *total, const char **why)
{
    if (avail < JR_REC) {
        *why = "truncated record header";
        return LEP_ERR_INCOMPLETE;
    }
    uint32_t len = jr_get32(p + 4);
    bool ok;
    switch (p[8]) {
    case JR_MSG:     ok = len >= 8 && len - 8 <= JR_MAX_BODY; break;
    case JR_ENQ_T:   ok = len == 16; break;
    case JR_ACK_T:   ok = len == 20; break;
    case JR_QCREATE: ok = len >= 11 && len <= JR_MAX_BODY; break;
    case JR_QDELETE: ok = len == 12; break;
    default:
        *why = "unknown record type";
        return LEP_ERR_DECODE;
    }
    if (!ok) {
        *why = "bad length for the record type";
        return LEP_ERR_DECODE;
    }
    if (len > avail - JR_REC) {
        *why = "record runs past the end of the file";
        return LEP_ERR_INCOMPLETE;
    }
    if (lepi_crc32c(0, p + 4, 5 + (size_t)len) != jr_get32(p)) {
        *why = "checksum mismatch";
        return LEP_ERR_DECODE;
    }
    if (p[8] == JR_QCREATE) {
        size_t n = (size_t)p[JR_REC + 8] | (size_t)p[JR_REC + 9] << 8;
        if (11 + n > len || p[JR_REC + 10 + n] != 0) {
            *why = "bad queue name";
            return LEP_ERR_DECODE;
        }
    }
    *total = JR_REC + (size_t)len;
    return 0;
}

/* A bad record in the last segment is a torn write when nothing valid
 * follows it; a valid record after it means the damage is in the middle. */
static bool
valid_after(const uint8_t *p, size_t from, size_t size)
{
    size_t total;
    const char *why;
    for (size_t off = from + 1; off + JR_REC <= size; off++)
        if (jr_parse(p + off, size - off, &total, &why) == 0)
            return true;
    return false;
}

typedef struct replay {
    lepi_store_t *s;
    jr_table_t deleted;  /* queue ids with a QDELETE (jr_queue_t, seg 1) */
    uint64_t *pend;      /* queues of the ENQs waiting for their MSG */
    size_t npend, cappend;
    uint64_t pend_msg;
    const char *why;     /* a record that makes no sense (LEP_ERR_DECODE) */
} replay_t;

static void
mark_stale(jr_index_t *x, uint32_t old, uint32_t now)
{
    jr_seg_t *g;
    if (old != now && (g = jr_seg_find(x, old)))
        g->stale = true;
}

static int
tombstone(jr_index_t *x, jr_seg_t *g, uint32_t target, size_t total)
{
    if (!target || target == g->num)
        return 0;
    if (jr_dep_reserve(g))
        return LEP_ERR_NOMEM;
    jr_dep_add(x, g, target, total);
    return 0;
}

/* A tombstone's target is the segment of the record it cancelled when it
 * was written: an older one or its own.  While that segment exists, the
 * record is still there and the last one of its kind replayed (a message
 * or queue moves only by compacting its segment, which then goes).  A
 * target the replay contradicts would let compaction copy the tombstone
 * past what it did not cancel, or drop it while what it cancelled stays:
 * the next recovery would not agree with this one. */
static int
check_target(replay_t *rp, jr_seg_t *g, uint32_t target, const uint32_t *now)
{
    if (target > g->num) {
        rp->why = "cancels a record in a later segment";
        return LEP_ERR_DECODE;
    }
    if (target && target != g->num && now && *now != target &&
        jr_seg_find(&rp->s->x, target)) {
        rp->why = "cancels a record in a segment that does not hold it";
        return LEP_ERR_DECODE;
    }
    return 0;
}

static int
replay_record(replay_t *rp, jr_seg_t *g, uint32_t off, const uint8_t *p, size_t total)
{
    jr_index_t *x = &rp->s->x;
    const uint8_t *b = p + JR_REC;
    uint8_t type = p[8];

    if (type != JR_ENQ_T && type != JR_MSG)
        rp->npend = 0; /* ENQs not followed by their MSG: a unit cut short */
    switch (type) {
    case JR_ENQ_T: {
        uint64_t qid = jr_get64(b), mid = jr_get64(b + 8);
        jr_note_max(&x->max_queue_id, qid);
        jr_note_max(&x->max_msg_id, mid);
        if (rp->npend && rp->pend_msg != mid)
            rp->npend = 0;
        if (rp->npend == rp->cappend) {
            size_t cap = rp->cappend ? rp->cappend * 2 : 16;
            uint64_t *v = lep_realloc(rp->pend, cap * sizeof *v);
            if (!v)
                return LEP_ERR_NOMEM;
            rp->pend = v;
            rp->cappend = cap;
        }
        rp->pend_msg = mid;
        rp->pend[rp->npend++] = qid;
        return 0;
    }
    case JR_MSG: {
        uint64_t mid = jr_get64(b);
        jr_note_max(&x->max_msg_id, mid);
        size_t n = rp->npend && rp->pend_msg == mid ? rp->npend : 0;
        rp->npend = 0;
        jr_msg_t *m = jr_table_find(&x->msgs, mid);
        if (!m) {
            if (!n)
                return 0; /* on no queue */
            if (jr_table_reserve(&x->msgs, 1))
                return LEP_ERR_NOMEM;
            jr_msg_t tmp = {0};
            int rc = jr_msg_reserve(&tmp, n);
            if (rc)
                return rc;
            m = jr_table_insert(&x->msgs, mid);
            m->cap = tmp.cap;
            m->q = tmp.q;
        } else {
            /* A copy made by a compaction: the newer one counts, and the
             * segment with the old one must not outlive it.  The copy's
             * ENQs are all the queues the message was live on when it
             * was made (acks before it are replayed already), so they
             * replace the old ones: were they merged, an old ENQ that a
             * damaged copy lacks would be live only until the old
             * segment is compacted away, which does not copy it. */
            mark_stale(x, m->seg, g->num);
            m->nq = 0;
            if (!n) {
                jr_msg_fini(m);
                jr_table_remove(&x->msgs, m);
                return 0;
            }
            int rc = jr_msg_reserve(m, n);
            if (rc)
                return rc;
        }
        m->seg = g->num;
        m->off = off;
        m->size = (uint32_t)total;
        uint64_t *qs = jr_msg_queues(m);
        for (size_t i = 0; i < n; i++)
            qs[m->nq++] = rp->pend[i];
        jr_msg_sort(m);
        return 0;
    }
    case JR_ACK_T: {
        uint64_t qid = jr_get64(b), mid = jr_get64(b + 8);
        jr_note_max(&x->max_queue_id, qid);
        jr_note_max(&x->max_msg_id, mid);
        jr_msg_t *m = jr_table_find(&x->msgs, mid);
        int rc = check_target(rp, g, jr_get32(b + 16), m ? &m->seg : NULL);
        if (rc)
            return rc;
        if (m && jr_msg_remove(m, qid) && !m->nq) {
            jr_msg_fini(m);
            jr_table_remove(&x->msgs, m);
        }
        return tombstone(x, g, jr_get32(b + 16), total);
    }
    case JR_QCREATE: {
        uint64_t qid = jr_get64(b);
        jr_note_max(&x->max_queue_id, qid);
        if (jr_table_find(&rp->deleted, qid)) {
            /* Never written so (ids are not reused, and compaction copies
             * live queues only), and not to be ignored either: the
             * QDELETE may go with its segment, and the queue come back. */
            rp->why = "queue created again after its deletion";
            return LEP_ERR_DECODE;
        }
        jr_queue_t *q = jr_table_find(&x->queues, qid);
        if (q) {
            mark_stale(x, q->seg, g->num);
        } else {
            if (jr_table_reserve(&x->queues, 1))
                return LEP_ERR_NOMEM;
            q = jr_table_insert(&x->queues, qid);
        }
        q->seg = g->num;
        q->off = off;
        q->size = (uint32_t)total;
        return 0;
    }
    case JR_QDELETE: {
        uint64_t qid = jr_get64(b);
        jr_note_max(&x->max_queue_id, qid);
        jr_queue_t *q = jr_table_find(&x->queues, qid);
        int rc = check_target(rp, g, jr_get32(b + 8), q ? &q->seg : NULL);
        if (rc)
            return rc;
        if (!jr_table_find(&rp->deleted, qid)) {
            if (jr_table_reserve(&rp->deleted, 1))
                return LEP_ERR_NOMEM;
            ((jr_queue_t *)jr_table_insert(&rp->deleted, qid))->seg = 1;
        }
        if (q)
            jr_table_remove(&x->queues, q);
        return tombstone(x, g, jr_get32(b + 8), total);
    }
    }
    return 0;
}

static int
parse_name(const char *n, uint32_t *num)
{
    unsigned long v = 0;
    size_t i, len = strlen(n);
    if (len < 13 || strncmp(n, "journal-", 8) != 0 || strcmp(n + len - 4, ".log") != 0)
        return -1;
    for (i = 8; i < len - 4; i++) {
        if (n[i] < '0' || n[i] > '9' || v > 0xffffffffu / 10)
            return -1;
        v = v * 10 + (unsigned long)(n[i] - '0');
    }
    if (v == 0 || v > 0xffffffffu)
        return -1;
    *num = (uint32_t)v;
    return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
list_segments(lepi_store_t *s, uint32_t **out, size_t *n, char *err, size_t errlen)
{
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    uint32_t *v = NULL;
    size_t cnt = 0, cap = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return jr_errf(err, errlen, LEP_ERR_IO, "%s: cannot list: %s", s->dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        uint32_t num;
        char canon[64];
        if (parse_name(e->d_name, &num))
            continue;
        /* only the store's own spelling: "journal-1.log" next to
         * journal-00000001.log would list segment 1 twice, and deleting
         * one of them would delete the other's file */
        jr_seg_path(s, num, canon, sizeof canon);
        if (strcmp(canon, e->d_name) != 0)
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint32_t *nv = lep_realloc(v, nc * sizeof *nv);
            if (!nv) {
                lep_free(v);
                closedir(d);
                return jr_errf(err, errlen, LEP_ERR_NOMEM, "out of memory");
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = num;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_u32);
    *out = v;
    *n = cnt;
    return 0;
}

static int
map_file(lepi_store_t *s, jr_seg_t *g, char *err, size_t errlen)
{
    char name[64];
    struct stat st;

    jr_seg_path(s, g->num, name, sizeof name);
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: %s", s->dir, name, strerror(e));
    }
    g->size = (uint64_t)st.st_size;
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: mmap: %s", s->dir, name, strerror(e));
        }
        g->map = m;
        g->maplen = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

static int
check_header(lepi_store_t *s, jr_seg_t *g, char *err, size_t errlen)
{
    char name[64];
    const uint8_t *h = g->map;

    jr_seg_path(s, g->num, name, sizeof name);
    if (memcmp(h, JR_MAGIC, 8) != 0)
        return jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: not a lepton journal segment",
                       s->dir, name);
    if (lepi_crc32c(0, h, 32) != jr_get32(h + 32))
        return jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: bad header: checksum mismatch",
                       s->dir, name);
    if (jr_get32(h + 8) != g->num)
        return jr_errf(err, errlen, LEP_ERR_DECODE,
                       "%s/%s: header says segment %u", s->dir, name, jr_get32(h + 8));
    jr_note_max(&s->x.max_msg_id, jr_get64(h + 16));
    jr_note_max(&s->x.max_queue_id, jr_get64(h + 24));
    return 0;
}

/* Replays one segment; *torn_at is where a torn tail starts (last only). */
static int
replay_segment(replay_t *rp, jr_seg_t *g, bool last, uint64_t *torn_at, char *err,
               size_t errlen)
{
    lepi_store_t *s = rp->s;
    uint64_t pos = JR_HDR;
    char name[64];
    int rc;

    *torn_at = g->size;
    if ((rc = check_header(s, g, err, errlen)))
        return rc;
    uint64_t enq_run = 0; /* where the ENQ records at pos start (0: none) */
    rp->npend = 0; /* a unit never spans two segments */
    while (pos < g->size) {
        size_t total;
        const char *why;
        rc = jr_parse(g->map + pos, g->size - pos, &total, &why);
        if (rc) {
            if (last && !valid_after(g->map, pos, g->size)) {
                *torn_at = pos;
                break;
            }
            jr_seg_path(s, g->num, name, sizeof name);
            return jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: bad record at %llu: %s%s",
                           s->dir, name, (unsigned long long)pos, why,
                           last ? " (valid records follow: not a torn write)" : "");
        }
        if (pos > UINT32_MAX) {
            jr_seg_path(s, g->num, name, sizeof name);
            return jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: segment larger than 4 GiB",
                           s->dir, name);
        }
        if ((rc = replay_record(rp, g, (uint32_t)pos, g->map + pos, total))) {
            if (rc == LEP_ERR_NOMEM)
                return jr_errf(err, errlen, rc, "out of memory");
            jr_seg_path(s, g->num, name, sizeof name);
            return jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: bad record at %llu: %s", s->dir,
                           name, (unsigned long long)pos,
                           rc == LEP_ERR_DECODE ? rp->why : "a message on too many queues");
        }
        if (g->map[pos + 8] != JR_ENQ_T)
            enq_run = 0;
        else if (!enq_run)
            enq_run = pos;
        pos += total;
    }
    /* ENQs at the end without their MSG (units cut short) go with the
     * torn tail: left there, they would join the next unit appended
     * after them, if it were a copy of one of their messages. */
    if (last && enq_run)
        *torn_at = enq_run;
    rp->npend = 0;
    return 0;
}

/* Drops from every message the queues that are not live; computes live
 * bytes and counts. */
static void
settle(jr_index_t *x)
{
    for (size_t i = 0; i < x->msgs.cap;) {
        jr_msg_t *m = jr_table_slot(&x->msgs, i);
        if (!jr_table_used(m)) {
            i++;
            continue;
        }
        uint64_t *qs = jr_msg_queues(m);
        for (uint16_t k = 0; k < m->nq;) {
            if (!jr_table_find(&x->queues, qs[k])) {
                jr_msg_remove(m, qs[k]);
                qs = jr_msg_queues(m);
            } else {
                k++;
            }
        }
        if (!m->nq) {
            jr_msg_fini(m);
            jr_table_remove(&x->msgs, m);
            continue; /* the slot may hold another entry now */
        }
        i++;
    }
    for (size_t i = 0; i < x->msgs.cap; i++) {
        jr_msg_t *m = jr_table_slot(&x->msgs, i);
        if (!jr_table_used(m))
            continue;
        jr_seg_find(x, m->seg)->live += m->size + (uint64_t)m->nq * JR_ENQ;
        x->live_enqueues += m->nq;
        uint64_t *qs = jr_msg_queues(m);
        for (uint16_t k = 0; k < m->nq; k++)
            ((jr_queue_t *)jr_table_find(&x->queues, qs[k]))->count++;
    }
    for (size_t i = 0; i < x->queues.cap; i++) {
        jr_queue_t *q = jr_table_slot(&x->queues, i);
        if (jr_table_used(q))
            jr_seg_find(x, q->seg)->live += q->size;
    }
    /* tombstones whose target is gone are dead */
    for (size_t i = 0; i < x->nsegs; i++) {
        jr_seg_t *g = &x->segs[i];
        for (uint32_t d = 0; d < g->ndeps;) {
            if (!jr_seg_find(x, g->deps[d].target)) {
                g->live -= g->deps[d].bytes;
                g->deps[d] = g->deps[--g->ndeps];
            } else {
                d++;
            }
        }
    }
}

static int
cmp_queue(const void *a, const void *b)
{
    uint64_t x = (*(jr_queue_t *const *)a)->id, y = (*(jr_queue_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

static int
cmp_msg(const void *a, const void *b)
{
    uint64_t x = (*(jr_msg_t *const *)a)->id, y = (*(jr_msg_t *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* Queues in creation order (ids grow), then enqueues in message order. */
static int
deliver(lepi_store_t *s, const lepi_store_recovery_t *r, char *err, size_t errlen)
{
    jr_index_t *x = &s->x;
    size_t n = 0;
    int rc = 0;

    size_t cnt = x->queues.count > x->msgs.count ? x->queues.count : x->msgs.count;
    void **v = lep_malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v)
        return jr_errf(err, errlen, LEP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < x->queues.cap; i++)
        if (jr_table_used(jr_table_slot(&x->queues, i)))
            v[n++] = jr_table_slot(&x->queues, i);
    qsort(v, n, sizeof *v, cmp_queue);
    for (size_t i = 0; i < n && r->queue && !rc; i++) {
        jr_queue_t *q = v[i];
        const uint8_t *b = jr_seg_find(x, q->seg)->map + q->off + JR_REC;
        size_t nl = (size_t)b[8] | (size_t)b[9] << 8;
        size_t plen = q->size - JR_REC - 11 - nl;
        rc = r->queue(r->ctx, q->id, (const char *)b + 10, b + 11 + nl, plen);
    }
    n = 0;
    for (size_t i = 0; i < x->msgs.cap && !rc; i++)
        if (jr_table_used(jr_table_slot(&x->msgs, i)))
            v[n++] = jr_table_slot(&x->msgs, i);
    if (!rc)
        qsort(v, n, sizeof *v, cmp_msg);
    for (size_t i = 0; i < n && r->message && !rc; i++) {
        jr_msg_t *m = v[i];
        const uint8_t *b = jr_seg_find(x, m->seg)->map + m->off + JR_REC;
        uint64_t *qs = jr_msg_queues(m);
        for (uint16_t k = 0; k < m->nq && !rc; k++)
            rc = r->message(r->ctx, qs[k], m->id, b + 8, m->size - JR_REC - 8);
    }
    lep_free(v);
    if (rc)
        return jr_errf(err, errlen, rc, "recovery stopped by the caller (%d)", rc);
    return 0;
}

static void
unmap(jr_seg_t *g)
{
    if (g->map)
        munmap(g->map, g->maplen);
    g->map = NULL;
    g->maplen = 0;
}

static void
unmap_all(jr_index_t *x)
{
    for (size_t i = 0; i < x->nsegs; i++)
        unmap(&x->segs[i]);
}

/* Opens the last segment for appending, cut to keep, or starts a new one. */
static int
open_head(lepi_store_t *s, uint64_t keep, uint32_t next, char *err, size_t errlen)
{
    char name[64];
    jr_index_t *x = &s->x;
    jr_seg_t *g = x->nsegs ? &x->segs[x->nsegs - 1] : NULL;

    /* (the last possible segment number goes on growing: see jr_place) */
    if (g && (keep < s->o.segment_size || g->num == UINT32_MAX)) {
        jr_seg_path(s, g->num, name, sizeof name);
        s->head_fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
        if (s->head_fd < 0)
            return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: %s", s->dir, name, strerror(errno));
        if (keep != g->size) {
            if (ftruncate(s->head_fd, (off_t)keep) < 0 ||
                (s->o.fsync && fdatasync(s->head_fd) < 0))
                return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: cutting the torn tail: %s",
                               s->dir, name, strerror(errno));
            g->size = keep;
        }
        if (lseek(s->head_fd, (off_t)keep, SEEK_SET) < 0)
            return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: %s", s->dir, name, strerror(errno));
        s->head_size = keep;
        return 0;
    }
    if (g && keep != g->size) { /* a full segment with a torn tail */
        jr_seg_path(s, g->num, name, sizeof name);
        int fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)keep) < 0 || (s->o.fsync && fdatasync(fd) < 0)) {
            if (fd >= 0)
                close(fd);
            return jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: cutting the torn tail: %s", s->dir,
                           name, strerror(errno));
        }
        close(fd);
        g->size = keep;
    }
    int rc = jr_head_create(s, g ? g->num + 1 : next);
    if (rc)
        return jr_errf(err, errlen, rc, "%s: creating a segment: %s", s->dir,
                       rc == LEP_ERR_NOMEM ? "out of memory" : strerror(errno));
    return 0;
}

int
jr_recover(lepi_store_t *s, const lepi_store_recovery_t *r, lepi_store_info_t *info, char *err,
           size_t errlen)
{
    jr_index_t *x = &s->x;
    uint32_t *nums = NULL;
    size_t n = 0;
    replay_t rp = {.s = s};
    uint64_t torn_at = 0;
    uint32_t next = 1;
    int rc;

    jr_table_init(&rp.deleted, sizeof(jr_queue_t));
    if ((rc = list_segments(s, &nums, &n, err, errlen)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (jr_seg_reserve(x)) {
            rc = jr_errf(err, errlen, LEP_ERR_NOMEM, "out of memory");
            goto out;
        }
        jr_seg_t *g = jr_seg_push(x, nums[i]);
        if ((rc = map_file(s, g, err, errlen)))
            goto out;
    }
    /* A last segment too short for its header was being created. */
    if (x->nsegs && x->segs[x->nsegs - 1].size < JR_HDR) {
        jr_seg_t *g = &x->segs[x->nsegs - 1];
        char name[64];
        jr_seg_path(s, g->num, name, sizeof name);
        if (unlinkat(s->dirfd, name, 0) < 0) {
            rc = jr_errf(err, errlen, LEP_ERR_IO, "%s/%s: %s", s->dir, name, strerror(errno));
            goto out;
        }
        info->truncated_bytes += g->size;
        next = g->num;
        if (g->map)
            munmap(g->map, g->maplen);
        x->nsegs--;
    }
    for (size_t i = 0; i < x->nsegs; i++) {
        jr_seg_t *g = &x->segs[i];
        if (g->size < JR_HDR) {
            char name[64];
            jr_seg_path(s, g->num, name, sizeof name);
            rc = jr_errf(err, errlen, LEP_ERR_DECODE, "%s/%s: shorter than a segment header",
                         s->dir, name);
            goto out;
        }
        if ((rc = replay_segment(&rp, g, i + 1 == x->nsegs, &torn_at, err, errlen)))
            goto out;
    }
    settle(x);
    if (x->nsegs)
        info->truncated_bytes += x->segs[x->nsegs - 1].size - torn_at;
    if (r && (rc = deliver(s, r, err, errlen)))
        goto out;
    info->max_msg_id = x->max_msg_id;
    info->max_queue_id = x->max_queue_id;
    info->queues = x->queues.count;
    info->messages = x->msgs.count;
    info->enqueues = x->live_enqueues;

    /* From here on the store writes: keep only the stale segments mapped. */
    for (size_t i = 0; i < x->nsegs; i++)
        if (!x->segs[i].stale)
            unmap(&x->segs[i]);
    if ((rc = open_head(s, x->nsegs ? torn_at : 0, next, err, errlen)))
        goto out;
    /* A crash during a compaction left copies in the head and the
     * originals in their segment: finish it before anything is acked. */
    while (!rc && !s->werr) {
        jr_seg_t *st = NULL;
        for (size_t i = 0; i + 1 < x->nsegs && !st; i++)
            if (x->segs[i].stale)
                st = &x->segs[i];
        if (!st)
            break;
        st->stale = false;
        if ((rc = jr_compact_start(s, st->num)))
            break;
        info->compactions_finished++;
        while (s->cmp.active && !s->werr) {
            if (!jr_compact_step(s) || s->cmp.paused) {
                if (s->cmp.paused)
                    rc = LEP_ERR_NOMEM;
                break;
            }
        }
    }
    if (!rc && s->werr)
        rc = s->werr;
    if (!rc && (rc = jr_commit(s)) == 0)
        jr_delete_dead(s);
    if (rc)
        rc = jr_errf(err, errlen, rc, "%s: finishing an interrupted compaction: %s", s->dir,
                     rc == LEP_ERR_NOMEM ? "out of memory" : strerror(errno));
    info->segments = x->nsegs;
out:
    if (rc)
        unmap_all(x);
    jr_table_fini(&rp.deleted);
    lep_free(rp.pend);
    lep_free(nums);
    return rc;
}
