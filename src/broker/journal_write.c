/* The writer's side of the journal: the head segment (placing, rolling,
 * writing, syncing), applying appended units to the index, deleting dead
 * segments and compacting sparse ones.  Everything here runs on the writer
 * thread (or in lepi_store_open before it starts). */
#include "broker/journal.h"

#include "broker/crc32c.h"

#include <lepton/common.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void
jr_seg_path(const lepi_store_t *s, uint32_t num, char *buf, size_t len)
{
    snprintf(buf, len, "journal-%08u.log", num);
    (void)s;
}

static int
do_sync(lepi_store_t *s, int fd)
{
    int rc;
    do
        rc = s->o.sync_hook ? s->o.sync_hook(fd, s->o.hook_ctx) : fdatasync(fd);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        s->syncs++;
    return rc;
}

static int
sync_dir(lepi_store_t *s)
{
    if (!s->o.fsync)
        return 0;
    return fsync(s->dirfd) < 0 ? jr_io_fail(s, "fsync of the directory") : 0;
}

static jr_seg_t *
head_seg(lepi_store_t *s)
{
    return &s->x.segs[s->x.nsegs - 1];
}

int
jr_head_create(lepi_store_t *s, uint32_t num)
{
    char name[64];
    uint8_t h[JR_HDR] = {0};
    int fd;

    if (jr_seg_reserve(&s->x))
        return LEP_ERR_NOMEM;
    jr_seg_path(s, num, name, sizeof name);
    fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return jr_io_fail(s, "creating a segment");
    memcpy(h, JR_MAGIC, 8);
    jr_put32(h + 8, num);
    jr_put64(h + 16, s->x.max_msg_id);
    jr_put64(h + 24, s->x.max_queue_id);
    jr_put32(h + 32, lepi_crc32c(0, h, 32));
    ssize_t w;
    do
        w = write(fd, h, sizeof h);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof h) {
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return jr_io_fail(s, "writing a segment header");
    }
    s->head_fd = fd;
    s->head_size = JR_HDR;
    s->bytes_written += JR_HDR;
    jr_seg_push(&s->x, num)->size = JR_HDR;
    s->dirty = true;
    return sync_dir(s);
}

static int
roll(lepi_store_t *s)
{
    int rc = jr_commit(s);
    if (rc)
        return rc;
    close(s->head_fd);
    s->head_fd = -1;
    return jr_head_create(s, head_seg(s)->num + 1);
}

int
jr_place(lepi_store_t *s, uint64_t len, uint32_t *seg, uint32_t *off)
{
    if (s->werr)
        return s->werr;
    uint64_t at = s->head_size + s->iov_bytes;
    /* (without room for another segment in the table, or after segment
     * number 2^32-1, which a hostile directory can start from, the head
     * grows past its size rather than failing the append: numbers never
     * wrap to 0, which is no segment) */
    if (at + len > s->o.segment_size && at > JR_HDR && head_seg(s)->num != UINT32_MAX &&
        jr_seg_reserve(&s->x) == 0) {
        int rc = roll(s);
        if (rc)
            return rc;
        at = JR_HDR;
    }
    *seg = head_seg(s)->num;
    *off = (uint32_t)at;
    return 0;
}

int
jr_emit(lepi_store_t *s, const void *p, size_t len)
{
    if (s->werr)
        return s->werr;
    if (s->niov) {
        struct iovec *v = &s->iov[s->niov - 1];
        if ((const uint8_t *)v->iov_base + v->iov_len == p) {
            v->iov_len += len;
            s->iov_bytes += len;
            return 0;
        }
    }
    if (s->niov == JR_IOV) {
        int rc = jr_flush(s);
        if (rc)
            return rc;
    }
    s->iov[s->niov++] = (struct iovec){(void *)p, len};
    s->iov_bytes += len;
    return 0;
}

int
jr_flush(lepi_store_t *s)
{
    if (s->werr)
        return s->werr;
    struct iovec *v = s->iov;
    int n = s->niov;
    uint64_t start = s->head_size;
    while (n > 0) {
        int cnt = n; /* JR_IOV is below IOV_MAX */
        ssize_t w = s->o.writev_hook ? s->o.writev_hook(s->head_fd, v, cnt, s->o.hook_ctx)
                                     : writev(s->head_fd, v, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            int e = errno;
            /* cut what was written of a partial batch, so the file ends on
             * a record boundary (recovery would cut it anyway) */
            if (ftruncate(s->head_fd, (off_t)start) == 0)
                head_seg(s)->size = s->head_size = start;
            errno = e;
            return jr_io_fail(s, "write");
        }
        s->head_size += (uint64_t)w;
        s->bytes_written += (uint64_t)w;
        size_t left = (size_t)w;
        while (left && n) {
            if (left >= v->iov_len) {
                left -= v->iov_len;
                v++, n--;
            } else {
                v->iov_base = (uint8_t *)v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
    }
    if (s->niov)
        s->dirty = true;
    s->niov = 0;
    s->iov_bytes = 0;
    head_seg(s)->size = s->head_size;
    return 0;
}

int
jr_commit(lepi_store_t *s)
{
    int rc = jr_flush(s);
    if (rc)
        return rc;
    if (s->o.fsync && s->dirty && do_sync(s, s->head_fd) < 0)
        return jr_io_fail(s, "fdatasync");
    s->dirty = false;
    return 0;
}

/* ---- applying appended units ---- */

static void
seal_tombstone(uint8_t *p, size_t target_at, uint32_t target)
{
    jr_put32(p + JR_REC + target_at, target);
    uint32_t len = jr_get32(p + 4);
    jr_put32(p, lepi_crc32c(0, p + 4, 5 + (size_t)len));
}

/* A MSG unit: its ENQ records, then the MSG record that commits it. */
static int
apply_msg_unit(lepi_store_t *s, const uint8_t *p, size_t len, uint32_t seg, uint32_t off)
{
    jr_index_t *x = &s->x;
    size_t nenq = 0, at = 0;

    while (at < len && p[at + 8] == JR_ENQ_T) {
        nenq++;
        at += JR_ENQ;
    }
    if (at >= len || p[at + 8] != JR_MSG)
        return LEP_ERR_INVALID;
    const uint8_t *msg = p + at;
    uint64_t id = jr_get64(msg + JR_REC);
    uint32_t msize = (uint32_t)(len - at);
    if (jr_table_find(&x->msgs, id))
        return LEP_ERR_INVALID; /* ids are never reused */
    if (jr_table_reserve(&x->msgs, 1))
        return LEP_ERR_NOMEM;
    jr_msg_t tmp = {0};
    if (jr_msg_reserve(&tmp, nenq))
        return LEP_ERR_NOMEM;
    jr_note_max(&x->max_msg_id, id);
    jr_msg_t *m = jr_table_insert(&x->msgs, id);
    m->seg = seg;
    m->off = off + (uint32_t)at;
    m->size = msize;
    m->cap = tmp.cap;
    m->q = tmp.q;
    jr_seg_t *sg = head_seg(s);
    uint64_t *qs = jr_msg_queues(m);
    for (size_t i = 0; i < nenq; i++) {
        uint64_t qid = jr_get64(p + i * JR_ENQ + JR_REC);
        jr_note_max(&x->max_queue_id, qid);
        if (jr_table_find(&x->queues, qid))
            qs[m->nq++] = qid; /* else no such queue: the ENQ is dead */
    }
    jr_msg_sort(m);
    qs = jr_msg_queues(m);
    for (uint16_t i = 0; i < m->nq; i++)
        ((jr_queue_t *)jr_table_find(&x->queues, qs[i]))->count++;
    x->live_enqueues += m->nq;
    sg->live += (uint64_t)m->nq * JR_ENQ;
    if (m->nq)
        sg->live += msize;
    else {
        jr_msg_fini(m);
        jr_table_remove(&x->msgs, m);
    }
    return 0;
}

int
jr_apply_unit(lepi_store_t *s, uint8_t *p, size_t len, uint32_t seg, uint32_t off)
{
    jr_index_t *x = &s->x;
    jr_seg_t *sg = head_seg(s);
    const uint8_t *b = p + JR_REC;

    switch (p[8]) {
    case JR_ENQ_T:
    case JR_MSG:
        return apply_msg_unit(s, p, len, seg, off);
    case JR_ACK_T: {
        uint64_t qid = jr_get64(b), mid = jr_get64(b + 8);
        uint32_t target = 0;
        jr_note_max(&x->max_msg_id, mid); /* as recovery will: ids written are never reused */
        jr_note_max(&x->max_queue_id, qid);
        jr_msg_t *m = jr_table_find(&x->msgs, mid);
        if (m && jr_msg_has(m, qid)) {
            if (m->seg != seg && jr_dep_reserve(sg))
                return LEP_ERR_NOMEM;
            target = m->seg;
            jr_seg_t *ms = jr_seg_find(x, m->seg);
            jr_msg_remove(m, qid);
            ms->live -= JR_ENQ;
            x->live_enqueues--;
            jr_queue_t *q = jr_table_find(&x->queues, qid);
            if (q)
                q->count--;
            if (!m->nq) {
                ms->live -= m->size;
                jr_msg_fini(m);
                jr_table_remove(&x->msgs, m);
            }
            if (target != seg)
                jr_dep_add(x, sg, target, JR_ACK);
        }
        seal_tombstone(p, 16, target);
        return 0;
    }
    case JR_QCREATE: {
        uint64_t qid = jr_get64(b);
        if (jr_table_find(&x->queues, qid))
            return LEP_ERR_INVALID; /* (not written: its id is not noted) */
        if (jr_table_reserve(&x->queues, 1))
            return LEP_ERR_NOMEM;
        jr_note_max(&x->max_queue_id, qid);
        jr_queue_t *q = jr_table_insert(&x->queues, qid);
        q->seg = seg;
        q->off = off;
        q->size = (uint32_t)len;
        sg->live += len;
        return 0;
    }
    case JR_QDELETE: {
        uint64_t qid = jr_get64(b);
        uint32_t target = 0;
        jr_note_max(&x->max_queue_id, qid);
        jr_queue_t *q = jr_table_find(&x->queues, qid);
        if (q) {
            if (q->seg != seg && jr_dep_reserve(sg))
                return LEP_ERR_NOMEM;
            target = q->seg;
            jr_seg_find(x, q->seg)->live -= q->size;
            uint64_t count = q->count;
            jr_table_remove(&x->queues, q);
            if (count)
                jr_index_drop_queue(x, qid);
            if (target != seg)
                jr_dep_add(x, sg, target, JR_QDEL);
        }
        seal_tombstone(p, 8, target);
        return 0;
    }
    default:
        return LEP_ERR_INVALID;
    }
}

/* ---- deleting dead segments ---- */

static bool
deletable(lepi_store_t *s, const jr_seg_t *g)
{
    if (g == head_seg(s) || g->live)
        return false;
    /* While a compaction runs, the copies it made may be the only ones
     * the tombstones in newer segments cancel: keep those until it ends. */
    if (s->cmp.active && g->num >= s->cmp.src)
        return false;
    return true;
}

size_t
jr_delete_dead(lepi_store_t *s)
{
    size_t n = 0;
    char name[64];

    if (s->werr)
        return 0;
    for (size_t i = 0; i + 1 < s->x.nsegs;) {
        jr_seg_t *g = &s->x.segs[i];
        if (!deletable(s, g)) {
            i++;
            continue;
        }
        jr_seg_path(s, g->num, name, sizeof name);
        if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT) {
            jr_io_fail(s, "deleting a segment");
            return n;
        }
        /* durable before any deletion that relies on it */
        if (sync_dir(s))
            return n;
        jr_seg_remove(&s->x, g->num);
        n++;
        i = 0; /* tombstones elsewhere may have died with it */
    }
    return n;
}

/* ---- compaction ---- */

static int
map_segment(lepi_store_t *s, jr_seg_t *g)
{
    char name[64];
    struct stat st;

    jr_seg_path(s, g->num, name, sizeof name);
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return LEP_ERR_IO;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < g->size) {
        close(fd);
        return LEP_ERR_IO;
    }
    void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return LEP_ERR_IO;
    g->map = m;
    g->maplen = g->size;
    return 0;
}

static void
unmap_segment(jr_seg_t *g)
{
    if (g && g->map) {
        munmap(g->map, g->maplen);
        g->map = NULL;
        g->maplen = 0;
    }
}

static jr_seg_t *
pick(lepi_store_t *s)
{
    jr_seg_t *best = NULL;
    double best_ratio = 2;

    /* Not the head, nor the segment sealed last: what is still live there
     * is usually about to be acked (a queue's consumers lag a little);
     * waiting one segment saves copying it. */
    for (size_t i = 0; i + 2 < s->x.nsegs; i++) {
        jr_seg_t *g = &s->x.segs[i];
        if (!g->live || g->size <= JR_HDR)
            continue; /* deleted, not copied */
        double r = (double)g->live / (double)(g->size - JR_HDR);
        if (r < s->o.compact_ratio && r < best_ratio) {
            best = g;
            best_ratio = r;
        }
    }
    return best;
}

bool
jr_compact_pending(lepi_store_t *s)
{
    if (s->werr || s->cmp.paused)
        return false;
    if (s->cmp.active)
        return true;
    for (size_t i = 0; i + 1 < s->x.nsegs; i++)
        if (deletable(s, &s->x.segs[i]))
            return true;
    return pick(s) != NULL;
}

int
jr_compact_start(lepi_store_t *s, uint32_t num)
{
    jr_seg_t *g = jr_seg_find(&s->x, num);
    if (!g)
        return LEP_ERR_NOT_FOUND;
    if (!g->map && map_segment(s, g))
        return jr_io_fail(s, "reading a segment to compact");
    s->cmp.active = true;
    s->cmp.paused = false;
    s->cmp.src = num;
    s->cmp.pos = JR_HDR;
    return 0;
}

static int
finish(lepi_store_t *s, jr_seg_t *g)
{
    char name[64];
    int rc = jr_commit(s); /* the copies are durable before the source goes */
    if (rc)
        return rc;
    jr_seg_path(s, g->num, name, sizeof name);
    if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
        return jr_io_fail(s, "deleting a compacted segment");
    if ((rc = sync_dir(s)))
        return rc;
    unmap_segment(g);
    s->cmp.active = false;
    jr_seg_remove(&s->x, g->num);
    s->compactions++;
    return 0;
}

/* Copies the unit of m (its live ENQs, then its MSG from the source's
 * mapping) to the head.  0, or NOMEM (retry later) or IO. */
static int
move_msg(lepi_store_t *s, uint32_t srcnum, jr_msg_t *m, const uint8_t *rec)
{
    size_t need = (size_t)m->nq * JR_ENQ;
    if (s->cmp.buf.cap - s->cmp.buf.len < need) {
        int rc = jr_flush(s); /* the iovecs may point into buf */
        if (rc)
            return rc;
        lep_buf_clear(&s->cmp.buf);
        if (lep_buf_reserve(&s->cmp.buf, need))
            return LEP_ERR_NOMEM;
    }
    uint32_t seg, off;
    int rc = jr_place(s, need + m->size, &seg, &off);
    if (rc)
        return rc;
    uint8_t *e = s->cmp.buf.data + s->cmp.buf.len;
    uint64_t *qs = jr_msg_queues(m);
    for (uint16_t i = 0; i < m->nq; i++) {
        uint8_t *r = e + (size_t)i * JR_ENQ;
        jr_put32(r + 4, 16);
        r[8] = JR_ENQ_T;
        jr_put64(r + JR_REC, qs[i]);
        jr_put64(r + JR_REC + 8, m->id);
        jr_put32(r, lepi_crc32c(0, r + 4, 5 + 16));
    }
    s->cmp.buf.len += need;
    if ((rc = jr_emit(s, e, need)) || (rc = jr_emit(s, rec, m->size)))
        return rc;
    uint64_t bytes = need + m->size;
    jr_seg_find(&s->x, srcnum)->live -= bytes; /* (a roll may have moved the table) */
    head_seg(s)->live += bytes;
    m->seg = seg;
    m->off = off + (uint32_t)need;
    return 0;
}

bool
jr_compact_step(lepi_store_t *s)
{
    if (s->werr)
        return false;
    if (!s->cmp.active) {
        jr_seg_t *g = pick(s);
        if (!g || jr_compact_start(s, g->num))
            return false;
    }
    jr_seg_t *src = jr_seg_find(&s->x, s->cmp.src);
    /* at least compact_step, and twice what was appended meanwhile, so
     * that compaction keeps up with the garbage appends make */
    uint64_t budget = s->o.compact_step;
    if (s->cmp.credit * 2 > budget)
        budget = s->cmp.credit * 2;
    s->cmp.credit = 0;
    uint64_t end = s->cmp.pos + budget;
    int rc = 0;

    /* src is looked up again after anything that may roll the head: the
     * segment table may move */
    while (src->live && s->cmp.pos < src->maplen && s->cmp.pos < end) {
        const uint8_t *p = src->map + s->cmp.pos;
        uint32_t srcnum = src->num;
        size_t total;
        const char *why;
        if (jr_parse(p, src->maplen - s->cmp.pos, &total, &why)) {
            errno = EIO;
            jr_io_fail(s, "a segment read back for compaction is corrupt");
            return false;
        }
        const uint8_t *b = p + JR_REC;
        uint32_t pos = (uint32_t)s->cmp.pos;
        switch (p[8]) {
        case JR_MSG: {
            jr_msg_t *m = jr_table_find(&s->x.msgs, jr_get64(b));
            if (m && m->seg == srcnum && m->off == pos)
                rc = move_msg(s, srcnum, m, p);
            break;
        }
        case JR_QCREATE: {
            jr_queue_t *q = jr_table_find(&s->x.queues, jr_get64(b));
            uint32_t seg, off;
            if (q && q->seg == srcnum && q->off == pos &&
                !(rc = jr_place(s, total, &seg, &off)) && !(rc = jr_emit(s, p, total))) {
                jr_seg_find(&s->x, srcnum)->live -= total;
                head_seg(s)->live += total;
                q->seg = seg;
                q->off = off;
            }
            break;
        }
        case JR_ACK_T:
        case JR_QDELETE: {
            uint32_t target = jr_get32(b + (p[8] == JR_ACK_T ? 16 : 8)), seg, off;
            if (!target || target == srcnum || !jr_seg_find(&s->x, target))
                break; /* cancels nothing still on disk */
            if ((rc = jr_place(s, total, &seg, &off)))
                break;
            jr_seg_t *h = head_seg(s);
            if (target != seg && jr_dep_reserve(h)) {
                rc = LEP_ERR_NOMEM;
                break;
            }
            if ((rc = jr_emit(s, p, total)))
                break;
            jr_dep_sub(jr_seg_find(&s->x, srcnum), target, total);
            if (target != seg)
                jr_dep_add(&s->x, h, target, total);
            break;
        }
        default:
            break;
        }
        src = jr_seg_find(&s->x, srcnum);
        if (rc)
            break;
        s->cmp.pos += total;
    }
    if (rc == LEP_ERR_NOMEM) {
        /* try again after the next batch; nothing half-done */
        s->cmp.paused = true;
        return jr_flush(s) == 0;
    }
    if (rc)
        return false;
    if (!src->live || s->cmp.pos >= src->maplen)
        return finish(s, src) == 0;
    /* the iovecs point into cmp.buf, reused by the next step */
    if (jr_flush(s))
        return false;
    lep_buf_clear(&s->cmp.buf);
    return true;
}

void
jr_compact_fini(lepi_store_t *s)
{
    if (s->cmp.active)
        unmap_segment(jr_seg_find(&s->x, s->cmp.src));
    s->cmp.active = false;
    lep_buf_fini(&s->cmp.buf);
}
