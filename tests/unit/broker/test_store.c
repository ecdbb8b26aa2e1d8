/* The broker's store: open/close and recovery of queues and messages in
 * order, bytes written once for many queues, completions in append order
 * from many threads, sync, the directory lock, torn tails cut, corruption
 * refused, write and sync failures, allocation failures on both sides,
 * ids that outlive their records, argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_util.h"

#include "broker/crc32c.h"
#include "broker/journal.h"

#include <errno.h>
#include <stdatomic.h>

static void
test_open_empty(void **state)
{
    (void)state;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/a/b/data", dir);
    lepi_store_opts_t o = small_opts(sub);
    lepi_store_info_t info;
    lepi_store_t *s = open_ok(&o, NULL, &info);
    assert_int_equal(info.max_msg_id, 0);
    assert_int_equal(info.queues + info.messages + info.enqueues + info.truncated_bytes, 0);
    assert_int_equal(info.segments, 1);
    lepi_store_stats_t st;
    lepi_store_stats(s, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.live_messages, 0);
    assert_int_equal(lepi_store_sync(s), 0);
    assert_int_equal(lepi_store_status(s, NULL, 0), 0);
    lepi_store_close(s);
    char lock[700];
    snprintf(lock, sizeof lock, "%s/LOCK", sub);
    assert_true(file_size(lock) >= 0);
    s = open_ok(&o, NULL, &info);
    assert_int_equal(info.segments, 1);
    assert_int_equal(info.truncated_bytes, 0);
    lepi_store_close(s);
    lepi_store_close(NULL);
}

static void
test_roundtrip(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    counter_t c = COUNTER_INIT;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint8_t d1[10], d2[3000], d3[1];
    fill(d1, sizeof d1, 1);
    fill(d2, sizeof d2, 2);
    fill(d3, sizeof d3, 3);
    assert_int_equal(lepi_store_queue_create(s, 1, "alpha", "p1", 2, count_done, &c), 0);
    assert_int_equal(lepi_store_queue_create(s, 2, "beta", NULL, 0, count_done, &c), 0);
    assert_int_equal(lepi_store_queue_create(s, 3, "gamma", "xyz", 3, NULL, NULL), 0);
    uint64_t q1[] = {1}, q12[] = {1, 2}, q23[] = {2, 3}, q3[] = {3};
    assert_int_equal(lepi_store_enqueue(s, 10, d1, sizeof d1, q1, 1, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 11, d2, sizeof d2, q12, 2, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 12, d3, sizeof d3, q23, 2, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 13, NULL, 0, q1, 1, count_done, &c), 0);
    assert_int_equal(lepi_store_ack(s, 1, 10, count_done, &c), 0);
    assert_int_equal(lepi_store_ack(s, 2, 11, NULL, NULL), 0);
    assert_int_equal(lepi_store_ack(s, 7, 99, count_done, &c), 0); /* nothing: no effect */
    assert_int_equal(lepi_store_queue_delete(s, 3, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 14, d1, 5, q3, 1, count_done, &c), 0); /* dropped */
    assert_int_equal(lepi_store_sync(s), 0);
    assert_int_equal(c.done, 10);
    assert_int_equal(c.ok, 10);
    lepi_store_stats_t st;
    lepi_store_stats(s, &st);
    assert_int_equal(st.appends, 12);
    assert_int_equal(st.live_messages, 3);
    assert_int_equal(st.live_enqueues, 3);
    assert_int_equal(st.live_queues, 2);
    lepi_store_close(s);

    for (int round = 0; round < 2; round++) {
        recovered_t r = {.keep_data = true};
        lepi_store_info_t info;
        s = open_ok(&o, &r, &info);
        assert_int_equal(info.max_msg_id, 99); /* the ack of 99 counts: it was written */
        assert_int_equal(info.max_queue_id, 7);
        assert_int_equal(info.queues, 2);
        assert_int_equal(info.messages, 3);
        assert_int_equal(info.enqueues, 3);
        assert_int_equal(r.nq, 2);
        assert_int_equal(r.qs[0].id, 1);
        assert_string_equal(r.qs[0].name, "alpha");
        assert_int_equal(r.qs[0].plen, 2);
        assert_memory_equal(r.qs[0].props, "p1", 2);
        assert_int_equal(r.qs[1].id, 2);
        assert_string_equal(r.qs[1].name, "beta");
        assert_int_equal(r.qs[1].plen, 0);
        assert_int_equal(r.nm, 3);
        assert_int_equal(r.ms[0].q, 1); /* 11 on 1 (acked on 2) */
        assert_int_equal(r.ms[0].m, 11);
        assert_int_equal(r.ms[0].len, sizeof d2);
        assert_memory_equal(r.ms[0].data, d2, sizeof d2);
        assert_int_equal(r.ms[1].q, 2); /* 12 on 2 (3 deleted) */
        assert_int_equal(r.ms[1].m, 12);
        assert_int_equal(r.ms[1].len, 1);
        assert_memory_equal(r.ms[1].data, d3, 1);
        assert_int_equal(r.ms[2].q, 1);
        assert_int_equal(r.ms[2].m, 13);
        assert_int_equal(r.ms[2].len, 0);
        rec_free(&r);
        lepi_store_close(s);
    }
}

static void
test_fanout_written_once(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 1 << 20;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint64_t qs[200];
    for (uint64_t i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof name, "sub.%llu", (unsigned long long)i);
        assert_int_equal(lepi_store_queue_create(s, i + 1, name, NULL, 0, NULL, NULL), 0);
        qs[199 - i] = i + 1; /* any order, one duplicate */
    }
    qs[0] = 5;
    static uint8_t body[100000];
    fill(body, sizeof body, 42);
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_stats_t a, b;
    lepi_store_stats(s, &a);
    assert_int_equal(lepi_store_enqueue(s, 1, body, sizeof body, qs, 200, NULL, NULL), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_stats(s, &b);
    uint64_t wrote = b.bytes_written - a.bytes_written;
    assert_true(wrote >= sizeof body + 200 * 25);
    assert_true(wrote < sizeof body + 200 * 25 + 100);
    assert_int_equal(b.live_enqueues, 199);
    for (uint64_t q = 2; q <= 200; q += 2)
        assert_int_equal(lepi_store_ack(s, q, 1, NULL, NULL), 0);
    lepi_store_close(s);

    recovered_t r = {.keep_data = true};
    s = open_ok(&o, &r, NULL);
    assert_int_equal(r.nm, 100); /* 1..199 odd: 200 was not in the list */
    for (size_t i = 0; i < r.nm; i++) {
        assert_int_equal(r.ms[i].m, 1);
        assert_int_equal(r.ms[i].q % 2, 1);
        if (i)
            assert_true(r.ms[i].q > r.ms[i - 1].q);
        assert_memory_equal(r.ms[i].data, body, sizeof body);
    }
    rec_free(&r);
    lepi_store_close(s);
}

/* ---- completions from many threads ---- */

typedef struct order {
    lepi_store_t *s;
    pthread_mutex_t mu; /* serialises appends with the numbering */
    uint64_t next_append;
    _Atomic uint64_t next_done;
    _Atomic long bad;
    int per_thread;
} order_t;

typedef struct order_ctx {
    order_t *o;
    uint64_t seq;
} order_ctx_t;

static void
order_done(void *ctx, int status)
{
    order_ctx_t *c = ctx;
    uint64_t want = atomic_fetch_add(&c->o->next_done, 1);
    if (status || want != c->seq)
        atomic_fetch_add(&c->o->bad, 1);
    free(c);
}

static void *
order_thread(void *arg)
{
    order_t *o = arg;
    uint64_t q = 1;
    uint8_t body[100] = {0};
    for (int i = 0; i < o->per_thread; i++) {
        order_ctx_t *c = malloc(sizeof *c);
        c->o = o;
        pthread_mutex_lock(&o->mu);
        c->seq = o->next_append++;
        int rc = (i % 3 == 2) ? lepi_store_ack(o->s, 1, c->seq - 1, order_done, c)
                              : lepi_store_enqueue(o->s, c->seq, body, sizeof body, &q, 1,
                                                   order_done, c);
        pthread_mutex_unlock(&o->mu);
        if (rc)
            atomic_fetch_add(&o->bad, 1);
    }
    return NULL;
}

static void
test_completion_order(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.max_batch = 16 * 1024; /* several groups per backlog */
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    order_t ord = {.s = s, .mu = PTHREAD_MUTEX_INITIALIZER, .next_append = 1, .per_thread = 3000};
    atomic_store(&ord.next_done, 1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, order_thread, &ord);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(lepi_store_sync(s), 0);
    assert_int_equal(atomic_load(&ord.bad), 0);
    assert_int_equal(atomic_load(&ord.next_done), 12001);
    lepi_store_stats_t st;
    lepi_store_stats(s, &st);
    assert_int_equal(st.appends, 12001);
    assert_true(st.batches >= 1 && st.batches <= 12001);
    assert_int_equal(st.syncs, 0); /* fsync off */
    lepi_store_close(s);
}

/* Concurrent appenders without the test's lock: per-thread order holds. */
typedef struct par {
    lepi_store_t *s;
    int tid, n;
    uint64_t last_done;
    _Atomic long bad;
} par_t;

typedef struct par_ctx {
    par_t *p;
    uint64_t seq;
} par_ctx_t;

static void
par_done2(void *ctx, int status)
{
    par_ctx_t *c = ctx;
    if (status || c->seq != c->p->last_done + 1)
        atomic_fetch_add(&c->p->bad, 1);
    c->p->last_done = c->seq;
    free(c);
}

static void *
par_thread(void *arg)
{
    par_t *p = arg;
    uint64_t q = 1;
    uint8_t body[100] = {0};
    for (int i = 1; i <= p->n; i++) {
        par_ctx_t *c = malloc(sizeof *c);
        c->p = p;
        c->seq = (uint64_t)i;
        uint64_t id = (uint64_t)p->tid << 32 | (uint64_t)i;
        if (lepi_store_enqueue(p->s, id, body, sizeof body, &q, 1, par_done2, c))
            atomic_fetch_add(&p->bad, 1);
    }
    return NULL;
}

static void
test_parallel_appends(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    par_t p[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        p[i] = (par_t){.s = s, .tid = i + 1, .n = 2000};
        pthread_create(&th[i], NULL, par_thread, &p[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(lepi_store_sync(s), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(atomic_load(&p[i].bad), 0);
        assert_int_equal(p[i].last_done, 2000);
    }
    lepi_store_close(s);
    lepi_store_info_t info;
    s = open_ok(&o, NULL, &info);
    assert_int_equal(info.messages, 16000);
    assert_int_equal(info.max_msg_id, (uint64_t)8 << 32 | 2000);
    lepi_store_close(s);
}

static void
test_lock(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    lepi_store_t *a = open_ok(&o, NULL, NULL), *b = NULL;
    char err[512];
    int rc = lepi_store_open(&b, &o, NULL, NULL, err, sizeof err);
    assert_int_equal(rc, LEP_ERR_STATE);
    assert_null(b);
    assert_non_null(strstr(err, "locked by another process"));
    assert_non_null(strstr(err, dir));
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(err, pid));
    lepi_store_close(a);
    b = open_ok(&o, NULL, NULL);
    lepi_store_close(b);
}

/* Writes n messages of 100 bytes on queue 1 (ids 1..n) and closes. */
static void
write_messages(const lepi_store_opts_t *o, uint64_t first, uint64_t n)
{
    lepi_store_t *s = open_ok(o, NULL, NULL);
    uint64_t q = 1;
    uint8_t body[100];
    if (first == 1)
        assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    for (uint64_t id = first; id < first + n; id++) {
        fill(body, sizeof body, id);
        assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &q, 1, NULL, NULL), 0);
    }
    lepi_store_close(s);
}

static void
check_messages(recovered_t *r, uint64_t n)
{
    assert_int_equal(r->nm, n);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t body[100];
        fill(body, sizeof body, i + 1);
        assert_int_equal(r->ms[i].m, i + 1);
        assert_int_equal(r->ms[i].len, 100);
        assert_memory_equal(r->ms[i].data, body, 100);
    }
}

static void
test_torn_tail(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 1 << 20;
    write_messages(&o, 1, 50);
    char seg[1][600];
    assert_int_equal(segment_files(dir, seg, 1), 1);
    off_t size = file_size(seg[0]);
    /* each message is ENQ (25) + MSG (117) bytes: cut the last one's MSG */
    assert_int_equal(truncate(seg[0], size - 60), 0);
    recovered_t r = {.keep_data = true};
    lepi_store_info_t info;
    lepi_store_t *s = open_ok(&o, &r, &info);
    /* 50's ENQ, without its MSG, goes too */
    assert_int_equal(info.truncated_bytes, 25 + 117 - 60);
    check_messages(&r, 49);
    rec_free(&r);
    assert_int_equal(file_size(seg[0]), size - 25 - 117);
    lepi_store_close(s);
    /* the store goes on after the cut */
    write_messages(&o, 50, 10);
    s = open_ok(&o, &r, &info);
    assert_int_equal(info.truncated_bytes, 0);
    check_messages(&r, 59);
    rec_free(&r);
    lepi_store_close(s);

    /* a bad checksum in the very last record, then zeros after the end */
    size = file_size(seg[0]);
    flip_byte(seg[0], size - 1);
    s = open_ok(&o, &r, &info);
    assert_int_equal(info.truncated_bytes, 25 + 117); /* with the ENQ before it */
    check_messages(&r, 58);
    rec_free(&r);
    lepi_store_close(s);
    size = file_size(seg[0]);
    int fd = open(seg[0], O_WRONLY | O_APPEND);
    char zeros[300] = {0};
    assert_int_equal(write(fd, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    close(fd);
    s = open_ok(&o, &r, &info);
    assert_int_equal(info.truncated_bytes, 300);
    check_messages(&r, 58);
    rec_free(&r);
    lepi_store_close(s);

    /* a segment cut inside its header is dropped */
    write_messages(&o, 59, 1);
    size_t n = segment_files(dir, seg, 1);
    assert_int_equal(n, 1);
    char path[700];
    snprintf(path, sizeof path, "%s/journal-00000002.log", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "LEPJR", 5), 5);
    close(fd);
    s = open_ok(&o, &r, &info);
    assert_int_equal(info.truncated_bytes, 5);
    check_messages(&r, 59);
    rec_free(&r);
    lepi_store_close(s);
}

/* Opens what the store must refuse as corrupt; err says why. */
static void
open_corrupt(const lepi_store_opts_t *o, char *err, size_t errlen)
{
    lepi_store_t *s = NULL;
    assert_int_equal(lepi_store_open(&s, o, NULL, NULL, err, errlen), LEP_ERR_DECODE);
    assert_null(s);
}

static void
test_corruption(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 8192;
    write_messages(&o, 1, 300); /* several segments */
    char seg[16][600];
    size_t n = segment_files(dir, seg, 16);
    assert_true(n >= 4);
    char err[512];

    /* a bit flipped in the middle of the last segment */
    flip_byte(seg[n - 1], 50); /* the first record */
    open_corrupt(&o, err, sizeof err);
    assert_non_null(strstr(err, seg[n - 1]));
    assert_non_null(strstr(err, "bad record at 40"));
    flip_byte(seg[n - 1], 50);

    /* in an older segment: even at its very end */
    off_t s1 = file_size(seg[1]);
    flip_byte(seg[1], s1 - 1);
    open_corrupt(&o, err, sizeof err);
    assert_non_null(strstr(err, seg[1]));
    assert_non_null(strstr(err, "checksum mismatch"));
    flip_byte(seg[1], s1 - 1);

    /* a bad header */
    flip_byte(seg[0], 20);
    open_corrupt(&o, err, sizeof err);
    assert_non_null(strstr(err, "header"));
    flip_byte(seg[0], 20);

    /* the lock was released by every failed open */
    recovered_t r = {.keep_data = true};
    lepi_store_t *s = open_ok(&o, &r, NULL);
    check_messages(&r, 300);
    rec_free(&r);
    lepi_store_close(s);
}

/* ---- failing disks ---- */

typedef struct io_fault {
    _Atomic int writes_left; /* writev calls that succeed; then ENOSPC */
    _Atomic int syncs_left;
    _Atomic int short_write; /* the failing writev writes half first */
} io_fault_t;

static ssize_t
fault_writev(int fd, const struct iovec *iov, int n, void *ctx)
{
    io_fault_t *f = ctx;
    if (atomic_fetch_sub(&f->writes_left, 1) <= 0) {
        if (atomic_exchange(&f->short_write, 0) && iov[0].iov_len > 1)
            return write(fd, iov[0].iov_base, iov[0].iov_len / 2);
        errno = ENOSPC;
        return -1;
    }
    return writev(fd, iov, n);
}

static int
fault_sync(int fd, void *ctx)
{
    io_fault_t *f = ctx;
    if (atomic_fetch_sub(&f->syncs_left, 1) <= 0) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

typedef struct tracked {
    uint64_t id;
    int status;
    bool done;
} tracked_t;

static void
tracked_done(void *ctx, int status)
{
    tracked_t *t = ctx;
    t->status = status;
    t->done = true;
}

static void
run_failure(io_fault_t *f, bool fsync_on, bool short_write)
{
    lepi_store_opts_t o = small_opts(dir);
    o.fsync = fsync_on;
    o.segment_size = 16384;
    o.writev_hook = fault_writev;
    o.sync_hook = fault_sync;
    o.hook_ctx = f;
    atomic_store(&f->short_write, short_write);
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    enum { N = 400 };
    static tracked_t t[N];
    uint64_t q = 1;
    uint8_t body[100];
    int refused = 0;
    memset(t, 0, sizeof t);
    for (int i = 0; i < N; i++) {
        t[i].id = (uint64_t)i + 1;
        fill(body, sizeof body, t[i].id);
        int rc = lepi_store_enqueue(s, t[i].id, body, sizeof body, &q, 1, tracked_done, &t[i]);
        if (rc) {
            assert_int_equal(rc, LEP_ERR_IO);
            t[i].done = true;
            t[i].status = 1; /* never appended */
            refused++;
        }
        if (i % 10 == 9)
            lepi_store_sync(s);
    }
    assert_int_equal(lepi_store_sync(s), LEP_ERR_IO);
    char err[512];
    assert_int_equal(lepi_store_status(s, err, sizeof err), LEP_ERR_IO);
    assert_non_null(strstr(err, fsync_on && atomic_load(&f->writes_left) > 0
                                    ? "fdatasync"
                                    : "write"));
    assert_true(refused > 0);
    uint64_t q1 = 1;
    assert_int_equal(lepi_store_enqueue(s, 9999, body, 1, &q1, 1, NULL, NULL), LEP_ERR_IO);
    assert_int_equal(lepi_store_ack(s, 1, 1, NULL, NULL), LEP_ERR_IO);
    lepi_store_close(s);
    int ok = 0, io = 0;
    for (int i = 0; i < N; i++) {
        assert_true(t[i].done);
        if (t[i].status == 0)
            ok++;
        else if (t[i].status == LEP_ERR_IO)
            io++;
    }
    assert_true(ok > 0);
    assert_true(io > 0);

    /* every message whose completion said durable is there */
    o.writev_hook = NULL;
    o.sync_hook = NULL;
    recovered_t r = {0};
    s = open_ok(&o, &r, NULL);
    size_t k = 0;
    for (int i = 0; i < N; i++) {
        while (k < r.nm && r.ms[k].m < t[i].id)
            k++;
        bool found = k < r.nm && r.ms[k].m == t[i].id;
        if (t[i].status == 0)
            assert_true(found);
        if (t[i].status == 1)
            assert_false(found);
    }
    rec_free(&r);
    lepi_store_close(s);
}

static void
test_write_failure(void **state)
{
    (void)state;
    io_fault_t f;
    atomic_store(&f.writes_left, 20);
    atomic_store(&f.syncs_left, 1000000);
    run_failure(&f, false, false);
    empty_dir();
    atomic_store(&f.writes_left, 15);
    run_failure(&f, false, true);
}

static void
test_sync_failure(void **state)
{
    (void)state;
    io_fault_t f;
    atomic_store(&f.writes_left, 1000000);
    atomic_store(&f.syncs_left, 12);
    run_failure(&f, true, false);
}

/* ---- allocation failures ---- */

typedef struct alloc_fault {
    pthread_t test_thread;
    _Atomic long test_calls, test_fail_at; /* on the test's thread */
    _Atomic bool fail_others;              /* every call on other threads */
    _Atomic long other_failures;
} alloc_fault_t;

static alloc_fault_t AF;

static bool
should_fail(void)
{
    if (pthread_equal(pthread_self(), AF.test_thread)) {
        long n = atomic_fetch_add(&AF.test_calls, 1) + 1;
        return n == atomic_load(&AF.test_fail_at);
    }
    if (atomic_load(&AF.fail_others)) {
        atomic_fetch_add(&AF.other_failures, 1);
        return true;
    }
    return false;
}

static void *
af_malloc(size_t n, void *ctx)
{
    (void)ctx;
    return should_fail() ? NULL : malloc(n);
}

static void *
af_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    return should_fail() ? NULL : realloc(p, n);
}

static void
af_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void
af_arm(long fail_at)
{
    atomic_store(&AF.test_calls, 0);
    atomic_store(&AF.test_fail_at, fail_at);
}

static void
test_append_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {af_malloc, af_realloc, af_free, NULL};
    AF.test_thread = pthread_self();
    af_arm(0);
    lep_set_allocator(&a);
    lepi_store_opts_t o = small_opts(dir);
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    static uint8_t big[3 << 20]; /* bigger than a pending chunk */
    uint64_t q = 1, id = 1;
    int appended = 1;
    for (int kind = 0; kind < 4; kind++) {
        /* fail each allocation of the append in turn until one passes */
        for (long n = 1;; n++) {
            lepi_store_sync(s);
            lepi_store_stats_t before, after;
            lepi_store_stats(s, &before);
            af_arm(n);
            int rc;
            switch (kind) {
            case 0: rc = lepi_store_enqueue(s, id, big, 100, &q, 1, NULL, NULL); break;
            case 1: rc = lepi_store_enqueue(s, id, big, sizeof big, &q, 1, NULL, NULL); break;
            case 2: rc = lepi_store_ack(s, 1, 1, NULL, NULL); break;
            default: rc = lepi_store_queue_create(s, 1 + id, "x", "p", 1, NULL, NULL); break;
            }
            long calls = atomic_load(&AF.test_calls);
            af_arm(0);
            lepi_store_sync(s);
            lepi_store_stats(s, &after);
            if (rc == 0) {
                appended++;
                id++;
                assert_int_equal(after.appends, before.appends + 1);
                if (calls < n)
                    break; /* no allocation failed */
            } else {
                assert_int_equal(rc, LEP_ERR_NOMEM);
                assert_int_equal(after.appends, before.appends);
            }
            assert_true(n < 20);
        }
    }
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_close(s);
    lepi_store_info_t info;
    s = open_ok(&o, NULL, &info);
    assert_int_equal(info.messages, 1); /* 1 and 2, 1 acked */
    assert_int_equal(info.queues, 2);
    lepi_store_close(s);
    lep_set_allocator(NULL);
}

static void
test_writer_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {af_malloc, af_realloc, af_free, NULL};
    AF.test_thread = pthread_self();
    af_arm(0);
    lep_set_allocator(&a);
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 4096;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint64_t qs[3] = {1, 2, 3};
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(lepi_store_queue_create(s, i, "q", NULL, 0, NULL, NULL), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    enum { N = 300 };
    static tracked_t t[N], acks[N];
    memset(t, 0, sizeof t);
    memset(acks, 0, sizeof acks);
    uint8_t body[100];
    for (int i = 0; i < N; i++) {
        t[i].id = (uint64_t)i + 1;
        fill(body, sizeof body, t[i].id);
        if (i == 20) { /* the index has room for a few more: then it cannot grow */
            assert_int_equal(lepi_store_sync(s), 0);
            atomic_store(&AF.fail_others, true);
        }
        assert_int_equal(lepi_store_enqueue(s, t[i].id, body, sizeof body, qs, 1 + i % 3,
                                            tracked_done, &t[i]),
                         0);
        if (i % 7 == 0)
            assert_int_equal(lepi_store_ack(s, 1, t[i].id, tracked_done, &acks[i]), 0);
    }
    lepi_store_sync(s);
    atomic_store(&AF.fail_others, false);
    assert_true(atomic_load(&AF.other_failures) > 0);
    int ok = 0, nomem = 0;
    for (int i = 0; i < N; i++) {
        assert_true(t[i].done);
        if (t[i].status == 0)
            ok++;
        else {
            assert_int_equal(t[i].status, LEP_ERR_NOMEM);
            nomem++;
        }
    }
    assert_true(ok > 0 && nomem > 0);
    assert_int_equal(lepi_store_status(s, NULL, 0), 0); /* the store goes on */
    uint64_t more = N + 1;
    assert_int_equal(lepi_store_enqueue(s, more, body, sizeof body, qs, 1, NULL, NULL), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_close(s);

    /* what the writer refused was not written; the rest is all there */
    recovered_t r = {0};
    s = open_ok(&o, &r, NULL);
    size_t k = 0;
    for (int i = 0; i < N; i++) {
        size_t cnt = 0;
        while (k < r.nm && r.ms[k].m < t[i].id)
            k++;
        while (k + cnt < r.nm && r.ms[k + cnt].m == t[i].id)
            cnt++;
        size_t want = t[i].status ? 0 : (size_t)(1 + i % 3) - (i % 7 == 0 && !acks[i].status);
        assert_int_equal(cnt, want);
    }
    assert_int_equal(r.ms[r.nm - 1].m, more);
    rec_free(&r);
    lepi_store_close(s);
    lep_set_allocator(NULL);
}

static void
test_open_nomem(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 4096;
    write_messages(&o, 1, 100);
    lepi_store_t *s = open_ok(&o, NULL, NULL); /* some acks: tombstones, dead segments */
    for (uint64_t id = 1; id <= 100; id += 3)
        assert_int_equal(lepi_store_ack(s, 1, id, NULL, NULL), 0);
    lepi_store_close(s);

    lep_allocator_t a = {af_malloc, af_realloc, af_free, NULL};
    AF.test_thread = pthread_self();
    lep_set_allocator(&a);
    for (long n = 1;; n++) {
        recovered_t r = {0};
        lepi_store_recovery_t cb = rec_callbacks(&r);
        char err[256];
        af_arm(n);
        s = NULL;
        int rc = lepi_store_open(&s, &o, &cb, NULL, err, sizeof err);
        long calls = atomic_load(&AF.test_calls);
        af_arm(0);
        if (rc == 0) {
            assert_int_equal(r.nm, 66);
            lepi_store_close(s);
            rec_free(&r);
            if (calls < n)
                break;
            continue;
        }
        assert_int_equal(rc, LEP_ERR_NOMEM);
        assert_null(s);
        rec_free(&r);
        assert_true(n < 200);
    }
    lep_set_allocator(NULL);
}

/* ---- ids ---- */

static void
test_ids_outlive_records(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 4096;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint8_t body[100] = {0};
    for (uint64_t qid = 1; qid <= 30; qid++) {
        assert_int_equal(lepi_store_queue_create(s, qid, "tmp", NULL, 0, NULL, NULL), 0);
        for (uint64_t k = 0; k < 10; k++) {
            uint64_t id = qid * 100 + k;
            assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &qid, 1, NULL, NULL), 0);
            if (k % 2)
                assert_int_equal(lepi_store_ack(s, qid, id, NULL, NULL), 0);
        }
        assert_int_equal(lepi_store_queue_delete(s, qid, NULL, NULL), 0);
        if (qid == 10) /* acks of nothing count too, once their segment is gone */
            assert_int_equal(lepi_store_ack(s, 77, 5000, NULL, NULL), 0);
    }
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_close(s);
    lepi_store_info_t info;
    s = open_ok(&o, NULL, &info);
    assert_int_equal(info.max_msg_id, 5000);
    assert_int_equal(info.max_queue_id, 77);
    assert_int_equal(info.messages, 0);
    assert_int_equal(info.queues, 0);
    assert_true(info.segments <= 2); /* everything else was dead */
    lepi_store_close(s);
    s = open_ok(&o, NULL, &info);
    assert_int_equal(info.max_msg_id, 5000);
    assert_int_equal(info.max_queue_id, 77);
    lepi_store_close(s);
}

static void
test_invalid(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    lepi_store_t *s = NULL;
    char err[256];
    assert_int_equal(lepi_store_open(&s, NULL, NULL, NULL, err, sizeof err), LEP_ERR_INVALID);
    lepi_store_opts_t bad = o;
    bad.dir = NULL;
    assert_int_equal(lepi_store_open(&s, &bad, NULL, NULL, err, sizeof err), LEP_ERR_INVALID);
    bad = o;
    bad.segment_size = 100;
    assert_int_equal(lepi_store_open(&s, &bad, NULL, NULL, err, sizeof err), LEP_ERR_INVALID);
    bad = o;
    bad.compact_ratio = 1.5;
    assert_int_equal(lepi_store_open(&s, &bad, NULL, NULL, NULL, 0), LEP_ERR_INVALID);
    bad = o;
    bad.dir = "/proc/no/such/place";
    assert_int_equal(lepi_store_open(&s, &bad, NULL, NULL, err, sizeof err), LEP_ERR_IO);
    assert_non_null(strstr(err, "/proc/no/such/place"));

    s = open_ok(&o, NULL, NULL);
    uint64_t q = 1;
    counter_t c = COUNTER_INIT;
    assert_int_equal(lepi_store_enqueue(s, 1, NULL, 5, &q, 1, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lepi_store_enqueue(s, 1, "x", 1, NULL, 1, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lepi_store_enqueue(s, 1, "x", 1, &q, 0, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lepi_store_enqueue(NULL, 1, "x", 1, &q, 1, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lepi_store_enqueue(s, 1, "x", 1, &q, 70000, NULL, NULL), LEP_ERR_LIMIT);
    assert_int_equal(lepi_store_queue_create(s, 1, NULL, NULL, 0, NULL, NULL), LEP_ERR_INVALID);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 3, NULL, NULL), LEP_ERR_INVALID);
    char *longname = malloc(70000);
    memset(longname, 'a', 69999);
    longname[69999] = 0;
    assert_int_equal(lepi_store_queue_create(s, 1, longname, NULL, 0, NULL, NULL), LEP_ERR_LIMIT);
    free(longname);
    /* a live id again: refused by the writer, not written */
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, count_done, &c), 0);
    assert_int_equal(lepi_store_queue_create(s, 1, "again", NULL, 0, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 5, "a", 1, &q, 1, count_done, &c), 0);
    assert_int_equal(lepi_store_enqueue(s, 5, "b", 1, &q, 1, count_done, &c), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    assert_int_equal(c.ok, 2);
    assert_int_equal(c.failed, 2);
    assert_int_equal(c.last_error, LEP_ERR_INVALID);
    lepi_store_close(s);
    recovered_t r = {.keep_data = true};
    s = open_ok(&o, &r, NULL);
    assert_int_equal(r.nq, 1);
    assert_string_equal(r.qs[0].name, "q");
    assert_int_equal(r.nm, 1);
    assert_memory_equal(r.ms[0].data, "a", 1);
    rec_free(&r);
    lepi_store_close(s);
}

static void
test_recovery_abort(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    write_messages(&o, 1, 5);
    recovered_t r = {.fail_with = -42};
    lepi_store_recovery_t cb = rec_callbacks(&r);
    lepi_store_t *s = NULL;
    char err[256];
    assert_int_equal(lepi_store_open(&s, &o, &cb, NULL, err, sizeof err), -42);
    assert_null(s);
    assert_int_equal(r.nq, 1);
    rec_free(&r);
    s = open_ok(&o, &r, NULL);
    assert_int_equal(r.nm, 5);
    rec_free(&r);
    lepi_store_close(s);
}

/* ---- hostile data directories (found by fuzz/fuzz_journal.c) ---- */

/* A segment file made by hand: a header, then records whose checksums
 * are filled in. */
typedef struct seg_builder {
    uint8_t b[4096];
    size_t len;
} seg_builder_t;

static void
sb_header(seg_builder_t *sb, uint32_t num)
{
    memset(sb->b, 0, JR_HDR);
    memcpy(sb->b, JR_MAGIC, 8);
    jr_put32(sb->b + 8, num);
    jr_put32(sb->b + 32, lepi_crc32c(0, sb->b, 32));
    sb->len = JR_HDR;
}

static void
sb_record(seg_builder_t *sb, uint8_t type, const void *body, size_t blen)
{
    uint8_t *p = sb->b + sb->len;
    jr_put32(p + 4, (uint32_t)blen);
    p[8] = type;
    memcpy(p + JR_REC, body, blen);
    jr_put32(p, lepi_crc32c(0, p + 4, 5 + blen));
    sb->len += JR_REC + blen;
}

static void
sb_queue(seg_builder_t *sb, uint64_t q, const char *name)
{
    uint8_t b[64] = {0};
    size_t n = strlen(name);
    jr_put64(b, q);
    b[8] = (uint8_t)n;
    memcpy(b + 10, name, n);
    sb_record(sb, JR_QCREATE, b, 11 + n);
}

static void
sb_enq(seg_builder_t *sb, uint64_t q, uint64_t m)
{
    uint8_t b[16];
    jr_put64(b, q);
    jr_put64(b + 8, m);
    sb_record(sb, JR_ENQ_T, b, 16);
}

static void
sb_msg(seg_builder_t *sb, uint64_t m, const char *data)
{
    uint8_t b[64];
    jr_put64(b, m);
    memcpy(b + 8, data, strlen(data));
    sb_record(sb, JR_MSG, b, 8 + strlen(data));
}

static void
sb_write(seg_builder_t *sb, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, sb->b, sb->len), (ssize_t)sb->len);
    close(fd);
}

/* A message's copy (as an interrupted compaction leaves them) lacking a
 * queue its original had: recovery reported the message on both queues,
 * then finishing the compaction deleted the original, and the next
 * recovery found it on one.  The newest copy's queues count. */
static void
test_copy_lacks_queue(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    seg_builder_t sb;
    sb_header(&sb, 1);
    sb_queue(&sb, 1, "a");
    sb_queue(&sb, 2, "b");
    sb_enq(&sb, 1, 4);
    sb_enq(&sb, 2, 4);
    sb_msg(&sb, 4, "four");
    sb_write(&sb, "journal-00000001.log");
    sb_header(&sb, 2);
    sb_enq(&sb, 2, 4);
    sb_msg(&sb, 4, "four");
    sb_write(&sb, "journal-00000002.log");
    sb_header(&sb, 3);
    sb_write(&sb, "journal-00000003.log");

    for (int round = 0; round < 2; round++) {
        recovered_t r = {.keep_data = true};
        lepi_store_info_t info;
        lepi_store_t *s = open_ok(&o, &r, &info);
        assert_int_equal(info.compactions_finished, round == 0 ? 1 : 0);
        assert_int_equal(r.nq, 2);
        assert_int_equal(r.nm, 1);
        assert_int_equal(r.ms[0].q, 2);
        assert_int_equal(r.ms[0].m, 4);
        assert_memory_equal(r.ms[0].data, "four", 4);
        rec_free(&r);
        lepi_store_close(s);
    }

    /* a copy without ENQs: the message is on no queue */
    assert_int_equal(empty_dir(), 0);
    sb_header(&sb, 1);
    sb_queue(&sb, 1, "a");
    sb_enq(&sb, 1, 4);
    sb_msg(&sb, 4, "four");
    sb_msg(&sb, 4, "four");
    sb_write(&sb, "journal-00000001.log");
    for (int round = 0; round < 2; round++) {
        recovered_t r = {0};
        lepi_store_t *s = open_ok(&o, &r, NULL);
        assert_int_equal(r.nq, 1);
        assert_int_equal(r.nm, 0);
        rec_free(&r);
        lepi_store_close(s);
    }
}

/* ENQs at the end of the last segment without their MSG: recovery cut
 * them only when a torn record followed, so the copy that finishing a
 * compaction appended right after them joined them, and a queue the
 * message had been acked from had it again at the next recovery. */
static void
test_dangling_enqueues(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    seg_builder_t sb;
    uint8_t ack[20] = {0};
    jr_put64(ack, 1);
    jr_put64(ack + 8, 5);
    sb_header(&sb, 1);
    sb_queue(&sb, 1, "a");
    sb_queue(&sb, 2, "b");
    sb_enq(&sb, 1, 5);
    sb_enq(&sb, 2, 5);
    sb_msg(&sb, 5, "five");
    sb_record(&sb, JR_ACK_T, ack, sizeof ack);
    sb_write(&sb, "journal-00000001.log");
    sb_header(&sb, 2);
    sb_queue(&sb, 1, "a"); /* a copy: segment 1 is compacted at open */
    sb_enq(&sb, 1, 5);     /* units cut short */
    sb_enq(&sb, 1, 6);
    sb_write(&sb, "journal-00000002.log");

    for (int round = 0; round < 2; round++) {
        recovered_t r = {0};
        lepi_store_info_t info;
        lepi_store_t *s = open_ok(&o, &r, &info);
        assert_int_equal(info.truncated_bytes, round == 0 ? 2 * JR_ENQ : 0);
        assert_int_equal(r.nq, 2);
        assert_int_equal(r.nm, 1);
        assert_int_equal(r.ms[0].q, 2);
        assert_int_equal(r.ms[0].m, 5);
        rec_free(&r);
        lepi_store_close(s);
    }
}

/* A queue created again after its deletion (in a later segment): recovery
 * ignored it, then dropped the segment with the QDELETE (a tombstone that
 * cancelled nothing elsewhere), and the queue came back at the next
 * recovery.  The store never writes that: it is corruption. */
static void
test_queue_recreated(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    seg_builder_t sb;
    uint8_t del[12] = {0};
    jr_put64(del, 3);
    jr_put32(del + 8, 1);
    sb_header(&sb, 1);
    sb_queue(&sb, 1, "a");
    sb_queue(&sb, 3, "c");
    sb_record(&sb, JR_QDELETE, del, sizeof del);
    sb_write(&sb, "journal-00000001.log");
    sb_header(&sb, 2);
    sb_queue(&sb, 1, "a");
    sb_queue(&sb, 3, "c");
    size_t at = sb.len - (JR_REC + 12);
    sb_write(&sb, "journal-00000002.log");
    sb_header(&sb, 3);
    sb_write(&sb, "journal-00000003.log");
    char err[512], want[64];
    open_corrupt(&o, err, sizeof err);
    snprintf(want, sizeof want, "journal-00000002.log: bad record at %zu: queue", at);
    assert_non_null(strstr(err, want));
}

/* A file named like a segment but not as the store names them
 * ("journal-1.log") was listed as that segment: next to the real file,
 * the segment was replayed twice, and deleting the copy without live
 * records unlinked the real file, which the head was still writing. */
static void
test_segment_alias(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    seg_builder_t sb;
    sb_header(&sb, 1);
    sb_write(&sb, "journal-00000001.log");
    sb_write(&sb, "journal-1.log");
    sb_write(&sb, "journal-000000001.log");
    for (int round = 0; round < 2; round++) {
        recovered_t r = {0};
        lepi_store_info_t info;
        lepi_store_t *s = open_ok(&o, &r, &info);
        assert_int_equal(info.segments, 1);
        assert_int_equal(r.nq, round);
        rec_free(&r);
        if (round == 0) {
            assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
            assert_int_equal(lepi_store_sync(s), 0);
        }
        lepi_store_close(s);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/journal-1.log", dir);
    assert_int_equal(file_size(path), JR_HDR); /* not ours: left alone */
}

/* Tombstones whose target the replay contradicts: an ack naming a later
 * segment came before the message it named, had no effect, and finishing
 * a compaction copied it after the message, which the next recovery then
 * found acked; an ack naming an existing segment that does not hold the
 * message would be dropped with that segment while the message stays. */
static void
test_tombstone_targets(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    seg_builder_t sb;
    uint8_t ack[20] = {0};
    char err[512];
    jr_put64(ack, 1);
    jr_put64(ack + 8, 7);

    for (int c = 0; c < 2; c++) {
        assert_int_equal(empty_dir(), 0);
        jr_put32(ack + 16, c == 0 ? 2 : 1);
        sb_header(&sb, 1);
        sb_queue(&sb, 1, "a");
        sb_enq(&sb, 1, 3);
        sb_msg(&sb, 3, "three");
        if (c == 0)
            sb_record(&sb, JR_ACK_T, ack, sizeof ack);
        sb_write(&sb, "journal-00000001.log");
        sb_header(&sb, 2);
        sb_queue(&sb, 1, "a");
        sb_enq(&sb, 1, 7);
        sb_msg(&sb, 7, "seven");
        sb_write(&sb, "journal-00000002.log");
        sb_header(&sb, 3);
        if (c == 1)
            sb_record(&sb, JR_ACK_T, ack, sizeof ack);
        sb_write(&sb, "journal-00000003.log");
        open_corrupt(&o, err, sizeof err);
        assert_non_null(strstr(err, c == 0 ? "journal-00000001.log: bad record at "
                                           : "journal-00000003.log: bad record at 40: "));
        assert_non_null(strstr(err, c == 0 ? "later segment" : "does not hold it"));
    }

    /* a queue delete naming a later segment */
    assert_int_equal(empty_dir(), 0);
    uint8_t del[12] = {0};
    jr_put64(del, 1);
    jr_put32(del + 8, 2);
    sb_header(&sb, 1);
    sb_record(&sb, JR_QDELETE, del, sizeof del);
    sb_write(&sb, "journal-00000001.log");
    open_corrupt(&o, err, sizeof err);
    assert_non_null(strstr(err, "later segment"));
}

/* A full last segment numbered 2^32-1: the next one would be 0, which is
 * no segment (the index crashed on it, and recovery never read it). */
static void
test_last_segment_number(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 4096;
    seg_builder_t sb;
    sb_header(&sb, UINT32_MAX);
    sb_queue(&sb, 1, "q");
    char body[40];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = 0;
    uint64_t n = 0;
    while (sb.len + 90 < o.segment_size) {
        n++;
        sb_enq(&sb, 1, n);
        sb_msg(&sb, n, body);
    }
    sb_write(&sb, "journal-4294967295.log");
    for (int round = 0; round < 3; round++) {
        recovered_t r = {0};
        lepi_store_info_t info;
        lepi_store_t *s = open_ok(&o, &r, &info);
        assert_int_equal(r.nm, n + (uint64_t)round * 100);
        assert_int_equal(info.segments, 1);
        rec_free(&r);
        uint64_t q = 1;
        for (uint64_t k = 0; k < 100; k++) {
            uint64_t id = info.max_msg_id + 1 + k;
            assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &q, 1, NULL, NULL), 0);
        }
        assert_int_equal(lepi_store_sync(s), 0);
        assert_int_equal(lepi_store_status(s, NULL, 0), 0);
        lepi_store_close(s);
        char seg[4][600];
        assert_int_equal(segment_files(dir, seg, 4), 1); /* no journal-00000000.log */
    }
}

/* fsync on: one fdatasync per batch, completions after it. */
static void
test_fsync_group_commit(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.fsync = true;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    counter_t c = COUNTER_INIT;
    uint64_t q = 1;
    uint8_t body[100] = {0};
    for (uint64_t id = 1; id <= 2000; id++)
        assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &q, 1, count_done, &c), 0);
    assert_int_equal(lepi_store_sync(s), 0);
    assert_int_equal(c.ok, 2000);
    lepi_store_stats_t st;
    lepi_store_stats(s, &st);
    assert_true(st.syncs >= 1);
    assert_true(st.syncs < 1000); /* shared by many appends */
    assert_true(st.syncs <= st.batches + st.segments + 2);
    print_message("fsync: 2001 appends, %llu batches, %llu syncs\n",
                  (unsigned long long)st.batches, (unsigned long long)st.syncs);
    lepi_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_written_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_nomem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_nomem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_nomem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_outlive_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_lacks_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dangling_enqueues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_segment_number, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
