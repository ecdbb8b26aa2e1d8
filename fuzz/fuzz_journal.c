/* Fuzz target: the broker store's recovery of a hostile data directory.
 * The input becomes journal segment files in a fresh temporary directory,
 * then lepi_store_open replays them.  It must fail with a code and a
 * message, or recover what is valid and hand the callbacks consistent
 * data: queues first, in id order; then enqueues in (message, queue)
 * order, each on a recovered queue; ids within info's maxima; counts
 * equal to info's.  After a successful open the store must still work:
 * a new queue, a message and an ack are appended, the store is closed
 * and reopened, and the second recovery must be exactly the first one
 * with those changes.
 *
 * Input:
 *   byte 0   flags: bits 0-1 segment size (4 KiB, 8 KiB, 64 KiB, default);
 *            bit 2 fix the checksums (header CRC and number, record CRCs)
 *            before writing, so mutations reach the replay logic; bit 3
 *            append and reopen after recovery; bit 4 also delete a
 *            recovered queue; bit 5 a callback stops the open after
 *            byte 1 calls; bit 6 compact_ratio 0.9
 *   byte 1   callbacks before the stop (bit 5)
 *   then up to 8 segments, each:
 *     u8     low 7 bits d: 0x7f: a u32 LE segment number follows, else the
 *            number is the previous one + 1 + d; bit 7: the file is named
 *            without zero padding ("journal-%u.log")
 *     u16 LE length, then that many bytes (fewer at the end of the input)
 *
 * A broken invariant calls abort().  The directory is removed afterwards. */
#include "broker/crc32c.h"
#include "broker/journal.h"
#include "broker/store.h"

#include <lepton/common.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEGS 8
#define STOP_RC 0x5eed

typedef struct fq {
    uint64_t id;
    uint32_t hash;
} fq_t;

typedef struct fe {
    uint64_t m, q;
    size_t len;
    uint32_t hash;
} fe_t;

typedef struct rec {
    fq_t *qs;
    size_t nq, capq;
    fe_t *es;
    size_t ne, cape;
    uint64_t nmsgs;
    bool in_messages;
    bool stop;
    size_t calls, stop_after;
} rec_t;

static uint32_t
hash(uint32_t h, const void *p, size_t n)
{
    return lepi_crc32c(h, p, n);
}

static void *
grow(void *v, size_t *cap, size_t n, size_t esize)
{
    if (n < *cap)
        return v;
    size_t nc = *cap ? *cap * 2 : 16;
    void *nv = realloc(v, nc * esize);
    if (!nv)
        abort();
    *cap = nc;
    return nv;
}

static int
stop_now(rec_t *r)
{
    return r->stop && r->calls++ >= r->stop_after;
}

static int
on_queue(void *ctx, uint64_t id, const char *name, const void *props, size_t props_len)
{
    rec_t *r = ctx;
    if (stop_now(r))
        return STOP_RC;
    if (r->in_messages || !name || (!props && props_len))
        abort();
    if (r->nq && id <= r->qs[r->nq - 1].id)
        abort(); /* queues in id order, once each */
    uint32_t h = hash(0, name, strlen(name) + 1);
    h = hash(h, props, props_len);
    r->qs = grow(r->qs, &r->capq, r->nq, sizeof *r->qs);
    r->qs[r->nq++] = (fq_t){id, h};
    return 0;
}

static bool
has_queue(const rec_t *r, uint64_t id)
{
    size_t lo = 0, hi = r->nq;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->qs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nq && r->qs[lo].id == id;
}

static int
on_message(void *ctx, uint64_t q, uint64_t m, const void *data, size_t len)
{
    rec_t *r = ctx;
    if (stop_now(r))
        return STOP_RC;
    r->in_messages = true;
    if (!has_queue(r, q) || (!data && len))
        abort();
    if (r->ne) {
        const fe_t *l = &r->es[r->ne - 1];
        if (m < l->m || (m == l->m && q <= l->q))
            abort(); /* (message, queue) order, once each */
    }
    if (!r->ne || r->es[r->ne - 1].m != m)
        r->nmsgs++;
    r->es = grow(r->es, &r->cape, r->ne, sizeof *r->es);
    r->es[r->ne++] = (fe_t){m, q, len, hash(0, data, len)};
    return 0;
}

static void
rec_free(rec_t *r)
{
    free(r->qs);
    free(r->es);
    memset(r, 0, sizeof *r);
}

/* What every successful recovery must satisfy. */
static void
check_info(const rec_t *r, const lepi_store_info_t *info)
{
    if (info->queues != r->nq || info->enqueues != r->ne || info->messages != r->nmsgs)
        abort();
    if (!info->segments)
        abort(); /* there is always a head */
    for (size_t i = 0; i < r->nq; i++)
        if (r->qs[i].id > info->max_queue_id)
            abort();
    for (size_t i = 0; i < r->ne; i++)
        if (r->es[i].m > info->max_msg_id || r->es[i].q > info->max_queue_id)
            abort();
}

static void
fix_segment(uint8_t *p, size_t len, uint32_t num)
{
    if (len < JR_HDR)
        return;
    jr_put32(p + 8, num);
    jr_put32(p + 32, lepi_crc32c(0, p, 32));
    size_t pos = JR_HDR;
    while (len - pos >= JR_REC) {
        uint32_t rl = jr_get32(p + pos + 4);
        if (rl > len - pos - JR_REC)
            break;
        jr_put32(p + pos, lepi_crc32c(0, p + pos + 4, 5 + (size_t)rl));
        pos += JR_REC + rl;
    }
}

static void
rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        int fd = dirfd(d);
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(fd, e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

static void
write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w <= 0)
            abort();
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

static void
on_done(void *ctx, int status)
{
    if (status)
        *(int *)ctx = status;
}

static int
cmp_fe(const void *a, const void *b)
{
    const fe_t *x = a, *y = b;
    if (x->m != y->m)
        return x->m < y->m ? -1 : 1;
    return x->q < y->q ? -1 : x->q > y->q;
}

static void
dump(const char *what, const rec_t *r)
{
    fprintf(stderr, "fuzz_journal: %s: %zu queues:", what, r->nq);
    for (size_t i = 0; i < r->nq; i++)
        fprintf(stderr, " %llu", (unsigned long long)r->qs[i].id);
    fprintf(stderr, "; %zu enqueues (msg/queue):", r->ne);
    for (size_t i = 0; i < r->ne; i++)
        fprintf(stderr, " %llu/%llu", (unsigned long long)r->es[i].m,
                (unsigned long long)r->es[i].q);
    fprintf(stderr, "\n");
}

/* Appends to the recovered store, reopens it and compares. */
static void
append_and_reopen(lepi_store_t *s, const lepi_store_opts_t *o, rec_t *r,
                  const lepi_store_info_t *info, bool del)
{
    if (info->max_queue_id >= UINT64_MAX - 1 || info->max_msg_id >= UINT64_MAX - 1) {
        lepi_store_close(s);
        return;
    }
    uint64_t qn = info->max_queue_id + 1, mn = info->max_msg_id + 1;
    uint64_t qs[2] = {qn, r->nq ? r->qs[0].id : qn};
    static const char body[] = "fuzz message";
    int status = 0;

    if (lepi_store_queue_create(s, qn, "fuzz-new", "p", 1, on_done, &status) ||
        lepi_store_enqueue(s, mn, body, sizeof body, qs, 2, on_done, &status))
        abort();
    /* the expected state, built alongside */
    r->qs = grow(r->qs, &r->capq, r->nq, sizeof *r->qs);
    r->qs[r->nq++] = (fq_t){qn, hash(hash(0, "fuzz-new", 9), "p", 1)};
    uint64_t acked_q = 0, acked_m = 0, deleted = 0;
    bool acked = false, dodel = false;
    if (r->ne) {
        acked = true;
        acked_q = r->es[0].q;
        acked_m = r->es[0].m;
        if (lepi_store_ack(s, acked_q, acked_m, on_done, &status))
            abort();
    }
    if (del && r->nq > 1) {
        dodel = true;
        deleted = r->qs[r->nq - 2].id; /* the last recovered one */
        if (lepi_store_queue_delete(s, deleted, on_done, &status))
            abort();
    }
    if (lepi_store_sync(s) || status)
        abort();
    lepi_store_close(s);

    size_t n = 0;
    for (size_t i = 0; i < r->nq; i++)
        if (!dodel || r->qs[i].id != deleted)
            r->qs[n++] = r->qs[i];
    r->nq = n;
    n = 0;
    for (size_t i = 0; i < r->ne; i++) {
        fe_t *e = &r->es[i];
        if ((acked && e->q == acked_q && e->m == acked_m) || (dodel && e->q == deleted))
            continue;
        r->es[n++] = *e;
    }
    r->ne = n;
    for (size_t i = 0; i < (qs[0] == qs[1] ? 1u : 2u); i++) {
        if (dodel && qs[i] == deleted)
            continue;
        r->es = grow(r->es, &r->cape, r->ne, sizeof *r->es);
        r->es[r->ne++] = (fe_t){mn, qs[i], sizeof body, hash(0, body, sizeof body)};
    }
    qsort(r->es, r->ne, sizeof *r->es, cmp_fe);
    /* (qs stays sorted: qn is the largest id) */

    rec_t r2 = {0};
    lepi_store_recovery_t cb = {&r2, on_queue, on_message};
    lepi_store_info_t info2;
    char err[512];
    if (lepi_store_open(&s, o, &cb, &info2, err, sizeof err)) {
        fprintf(stderr, "fuzz_journal: reopen failed: %s\n", err);
        abort();
    }
    check_info(&r2, &info2);
    if (info2.truncated_bytes || info2.max_queue_id < qn || info2.max_msg_id < mn)
        abort();
    bool same = r2.nq == r->nq && r2.ne == r->ne;
    for (size_t i = 0; same && i < r->nq; i++)
        same = r2.qs[i].id == r->qs[i].id && r2.qs[i].hash == r->qs[i].hash;
    for (size_t i = 0; same && i < r->ne; i++)
        same = !cmp_fe(&r2.es[i], &r->es[i]) && r2.es[i].len == r->es[i].len &&
               r2.es[i].hash == r->es[i].hash;
    if (!same) {
        dump("expected", r);
        dump("recovered", &r2);
        abort();
    }
    rec_free(&r2);
    lepi_store_close(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t seg_sizes[4] = {4096, 8192, 65536, 0};

    if (size < 2 || size > 1 << 20)
        return 0;
    uint8_t flags = data[0], stop_after = data[1];
    const uint8_t *p = data + 2, *end = data + size;

    char dir[] = "/tmp/fuzz_journal-XXXXXX";
    if (!mkdtemp(dir))
        abort();

    uint32_t num = 0;
    uint8_t *buf = NULL;
    for (int k = 0; k < MAX_SEGS && end - p >= 3; k++) {
        uint8_t nb = *p++;
        if ((nb & 0x7f) == 0x7f) {
            if (end - p < 4)
                break;
            num = jr_get32(p);
            p += 4;
        } else {
            num += 1u + (nb & 0x7f);
        }
        if (end - p < 2)
            break;
        size_t len = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        char name[64];
        if (nb & 0x80)
            snprintf(name, sizeof name, "journal-%u.log", num);
        else
            snprintf(name, sizeof name, "journal-%08u.log", num);
        const uint8_t *content = p;
        if (flags & 4) {
            free(buf);
            if (!(buf = malloc(len ? len : 1)))
                abort();
            memcpy(buf, p, len);
            fix_segment(buf, len, num);
            content = buf;
        }
        write_file(dir, name, content, len);
        p += len;
    }
    free(buf);

    lepi_store_opts_t o;
    lepi_store_opts_init(&o);
    o.dir = dir;
    o.fsync = false;
    o.segment_size = seg_sizes[flags & 3];
    if (flags & 0x40)
        o.compact_ratio = 0.9;

    rec_t r = {.stop = (flags & 0x20) != 0, .stop_after = stop_after};
    lepi_store_recovery_t cb = {&r, on_queue, on_message};
    lepi_store_info_t info;
    lepi_store_t *s = NULL;
    char err[512];
    memset(err, 0, sizeof err);
    int rc = lepi_store_open(&s, &o, &cb, &info, err, sizeof err);
    if (rc) {
        if (!err[0] || s)
            abort(); /* every failure explains itself */
        if (rc > 0 && rc != STOP_RC)
            abort();
        if (rc == STOP_RC && !(r.stop && r.calls > r.stop_after))
            abort();
    } else {
        if (r.stop && r.calls > r.stop_after)
            abort(); /* the callback's stop was ignored */
        check_info(&r, &info);
        if (flags & 8)
            append_and_reopen(s, &o, &r, &info, (flags & 0x10) != 0);
        else
            lepi_store_close(s);
    }
    rec_free(&r);
    rm_dir(dir);
    return 0;
}
