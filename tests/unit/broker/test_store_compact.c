/* The store's compaction: a journal that enqueues and acks millions of
 * records stays within a few segments; long-lived messages in old
 * segments are moved to the head and come back intact and in order;
 * tombstones outlive the records they cancel; a random workload checked
 * against a model across many reopens (some in the middle of a
 * compaction), with segments of a few KiB so that everything moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_util.h"

/* Waits until the writer's housekeeping has nothing left to do. */
static void
wait_quiet(lepi_store_t *s, lepi_store_stats_t *st)
{
    lepi_store_stats_t prev = {0};
    int same = 0;
    for (int i = 0; i < 5000 && same < 5; i++) {
        assert_int_equal(lepi_store_sync(s), 0);
        lepi_store_stats(s, st);
        if (st->segments == prev.segments && st->compactions == prev.compactions &&
            st->disk_bytes == prev.disk_bytes)
            same++;
        else
            same = 0;
        prev = *st;
        usleep(1000);
    }
}

static long
env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

/* Enqueue and ack in a loop: the disk stays bounded. */
static void
test_bounded(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 256 * 1024;
    o.max_batch = 64 * 1024; /* (64 MiB and 8 MiB by default) */
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint64_t q = 1;
    uint8_t body[100];
    long n = env_long("LEPTON_STORE_BOUNDED_N", 1000000); /* 3 records each */
    uint64_t max_disk = 0;
    size_t max_segs = 0;
    fill(body, sizeof body, 1);
    assert_int_equal(lepi_store_queue_create(s, 1, "q", NULL, 0, NULL, NULL), 0);
    for (long id = 1; id <= n; id++) {
        assert_int_equal(lepi_store_enqueue(s, (uint64_t)id, body, sizeof body, &q, 1, NULL, NULL), 0);
        /* acks lag a little behind, as consumers do */
        if (id > 100)
            assert_int_equal(lepi_store_ack(s, 1, (uint64_t)id - 100, NULL, NULL), 0);
        if (id % 20000 == 0) {
            lepi_store_stats_t st;
            assert_int_equal(lepi_store_sync(s), 0);
            lepi_store_stats(s, &st);
            if (st.disk_bytes > max_disk)
                max_disk = st.disk_bytes;
            if (st.segments > max_segs)
                max_segs = st.segments;
            assert_int_equal(st.live_messages, 100);
        }
    }
    lepi_store_stats_t st;
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_stats(s, &st);
    print_message("bounded: %ld messages, %llu MB written, at most %zu segments / %llu KiB on "
                  "disk, %llu compactions\n",
                  n, (unsigned long long)(st.bytes_written >> 20), max_segs,
                  (unsigned long long)(max_disk >> 10), (unsigned long long)st.compactions);
    assert_true(max_segs <= 6);
    assert_true(max_disk <= 6 * o.segment_size);
    lepi_store_close(s);
    recovered_t r = {0};
    lepi_store_info_t info;
    s = open_ok(&o, &r, &info);
    assert_int_equal(r.nm, 100);
    assert_int_equal(r.ms[0].m, (uint64_t)n - 99);
    assert_int_equal(info.max_msg_id, (uint64_t)n);
    assert_true(info.segments <= 6);
    rec_free(&r);
    lepi_store_close(s);
}

/* A few messages nobody consumes, among many that are consumed at once:
 * their segments get sparse and are compacted, the messages move. */
static void
test_long_lived_move(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 16 * 1024;
    o.max_batch = 4096;
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint64_t slow = 1, fast = 2, both[] = {1, 2};
    uint8_t body[200];
    assert_int_equal(lepi_store_queue_create(s, slow, "slow", "s", 1, NULL, NULL), 0);
    assert_int_equal(lepi_store_queue_create(s, fast, "fast", NULL, 0, NULL, NULL), 0);
    uint64_t kept[64];
    size_t nkept = 0;
    for (uint64_t id = 1; id <= 20000; id++) {
        fill(body, sizeof body, id);
        bool keep = id % 313 == 0 && nkept < 64;
        if (keep)
            kept[nkept++] = id;
        assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, keep ? both : &fast,
                                            keep ? 2 : 1, NULL, NULL), 0);
        assert_int_equal(lepi_store_ack(s, fast, id, NULL, NULL), 0);
    }
    lepi_store_stats_t st;
    wait_quiet(s, &st);
    print_message("long-lived: %zu kept, %zu segments, %llu compactions\n", nkept, st.segments,
                  (unsigned long long)st.compactions);
    assert_true(st.compactions > 0);
    assert_true(st.segments <= 5); /* 64 x 250 bytes live: about one segment */
    assert_int_equal(st.live_messages, nkept);
    lepi_store_close(s);

    recovered_t r = {.keep_data = true};
    s = open_ok(&o, &r, NULL);
    assert_int_equal(r.nq, 2);
    assert_string_equal(r.qs[0].name, "slow");
    assert_memory_equal(r.qs[0].props, "s", 1);
    assert_int_equal(r.nm, nkept);
    for (size_t i = 0; i < nkept; i++) {
        fill(body, sizeof body, kept[i]);
        assert_int_equal(r.ms[i].q, slow);
        assert_int_equal(r.ms[i].m, kept[i]); /* in order */
        assert_int_equal(r.ms[i].len, sizeof body);
        assert_memory_equal(r.ms[i].data, body, sizeof body);
    }
    rec_free(&r);
    lepi_store_close(s);
}

/* An ack in a segment that would otherwise be dead must stay while the
 * enqueue it cancels is still on disk. */
static void
test_tombstone_kept(void **state)
{
    (void)state;
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = 4096;
    o.compact_ratio = 0.01; /* only dead segments go: no copying */
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    uint64_t q = 1, q2 = 2;
    uint8_t body[100] = {0};
    assert_int_equal(lepi_store_queue_create(s, 1, "a", NULL, 0, NULL, NULL), 0);
    assert_int_equal(lepi_store_queue_create(s, 2, "b", NULL, 0, NULL, NULL), 0);
    /* segment 1: the queues, message 1 (kept) and message 2 (acked later) */
    assert_int_equal(lepi_store_enqueue(s, 1, body, sizeof body, &q, 1, NULL, NULL), 0);
    assert_int_equal(lepi_store_enqueue(s, 2, body, sizeof body, &q2, 1, NULL, NULL), 0);
    /* fill segments with churn, ack 2 in the middle of it */
    for (uint64_t id = 3; id < 300; id++) {
        assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &q2, 1, NULL, NULL), 0);
        assert_int_equal(lepi_store_ack(s, 2, id, NULL, NULL), 0);
        if (id == 100)
            assert_int_equal(lepi_store_ack(s, 2, 2, NULL, NULL), 0);
    }
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_stats_t st;
    lepi_store_stats(s, &st);
    lepi_store_close(s);
    recovered_t r = {0};
    s = open_ok(&o, &r, NULL);
    assert_int_equal(r.nm, 1);
    assert_int_equal(r.ms[0].m, 1);
    rec_free(&r);
    /* now ack 1: segment 1 dies, then the segment with the ack of 2 */
    assert_int_equal(lepi_store_ack(s, 1, 1, NULL, NULL), 0);
    for (uint64_t id = 300; id < 400; id++) {
        assert_int_equal(lepi_store_enqueue(s, id, body, sizeof body, &q2, 1, NULL, NULL), 0);
        assert_int_equal(lepi_store_ack(s, 2, id, NULL, NULL), 0);
    }
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_close(s);
    lepi_store_info_t info;
    s = open_ok(&o, &r, &info);
    assert_int_equal(r.nm, 0);
    assert_int_equal(r.nq, 2);
    assert_true(info.segments <= 3);
    rec_free(&r);
    lepi_store_close(s);
}

/* ---- random workload against a model ---- */

typedef struct pair {
    uint64_t q, m;
} pair_t;

typedef struct model {
    uint64_t next_q, next_m;
    bool *qlive;       /* by queue id */
    size_t capq;
    pair_t *pairs;     /* live enqueues */
    size_t npairs, cappairs;
    uint64_t max_m, max_q;
} model_t;

static size_t
body_len(uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    return (h >> 60) == 0 ? 2000 + (size_t)(h % 3000) : (size_t)(h >> 40) % 300;
}

static void
model_add_pair(model_t *m, uint64_t q, uint64_t id)
{
    for (size_t i = 0; i < m->npairs; i++) /* (not fast; the model is small) */
        if (m->pairs[i].q == q && m->pairs[i].m == id)
            return;
    if (m->npairs == m->cappairs) {
        m->cappairs = m->cappairs ? m->cappairs * 2 : 256;
        m->pairs = realloc(m->pairs, m->cappairs * sizeof *m->pairs);
    }
    m->pairs[m->npairs++] = (pair_t){q, id};
}

static int
pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->m != y->m)
        return x->m < y->m ? -1 : 1;
    return x->q < y->q ? -1 : x->q > y->q;
}

static void
verify(const lepi_store_opts_t *o, model_t *m, lepi_store_t **sp, size_t *finished)
{
    lepi_store_close(*sp);
    recovered_t r = {.keep_data = true};
    lepi_store_info_t info;
    *sp = open_ok(o, &r, &info);
    *finished += info.compactions_finished;
    assert_int_equal(info.max_msg_id, m->max_m);
    assert_int_equal(info.max_queue_id, m->max_q);
    size_t k = 0;
    for (uint64_t q = 1; q < m->next_q; q++) {
        if (!m->qlive[q])
            continue;
        assert_true(k < r.nq);
        assert_int_equal(r.qs[k].id, q);
        char name[32];
        snprintf(name, sizeof name, "queue-%llu", (unsigned long long)q);
        assert_string_equal(r.qs[k].name, name);
        assert_int_equal(r.qs[k].plen, q % 5);
        k++;
    }
    assert_int_equal(k, r.nq);
    qsort(m->pairs, m->npairs, sizeof *m->pairs, pair_cmp);
    assert_int_equal(r.nm, m->npairs);
    static uint8_t body[5000];
    for (size_t i = 0; i < r.nm; i++) {
        if (i && r.ms[i].m == r.ms[i - 1].m)
            assert_true(r.ms[i].q > r.ms[i - 1].q);
        assert_int_equal(r.ms[i].m, m->pairs[i].m);
        assert_int_equal(r.ms[i].q, m->pairs[i].q);
        size_t len = body_len(r.ms[i].m);
        fill(body, len, r.ms[i].m);
        assert_int_equal(r.ms[i].len, len);
        assert_memory_equal(r.ms[i].data, body, len);
    }
    rec_free(&r);
}

static void
run_model(unsigned seed, size_t segment_size, double ratio, size_t step, long ops)
{
    lepi_store_opts_t o = small_opts(dir);
    o.segment_size = segment_size;
    o.compact_ratio = ratio;
    o.compact_step = step;
    model_t m = {.next_q = 1, .next_m = 1, .capq = 4096};
    m.qlive = calloc(m.capq, sizeof *m.qlive); /* ~10 creations per 1000 ops */
    lepi_store_t *s = open_ok(&o, NULL, NULL);
    static uint8_t body[5000];
    uint64_t props = 0x1122334455ull;
    size_t reopens = 0, finished = 0;
    lepi_store_stats_t st;
    srand(seed);

    for (long op = 0; op < ops; op++) {
        int r = rand() % 1000;
        uint64_t live[16];
        size_t nlive = 0;
        for (uint64_t q = m.next_q; q-- > 1 && nlive < 16;)
            if (m.qlive[q])
                live[nlive++] = q;
        if (r < 10 || nlive < 2) { /* create a queue */
            uint64_t q = m.next_q++;
            char name[32];
            snprintf(name, sizeof name, "queue-%llu", (unsigned long long)q);
            assert_int_equal(lepi_store_queue_create(s, q, name, &props, q % 5, NULL, NULL), 0);
            m.qlive[q] = true;
            if (q > m.max_q)
                m.max_q = q;
        } else if (r < 15) { /* delete one */
            uint64_t q = live[(size_t)rand() % nlive];
            assert_int_equal(lepi_store_queue_delete(s, q, NULL, NULL), 0);
            m.qlive[q] = false;
            for (size_t i = 0; i < m.npairs;)
                if (m.pairs[i].q == q)
                    m.pairs[i] = m.pairs[--m.npairs];
                else
                    i++;
        } else if (r < 520) { /* enqueue on 1-3 queues, maybe a dead one too */
            uint64_t id = m.next_m++, qs[4];
            size_t n = 1 + (size_t)rand() % 3;
            for (size_t i = 0; i < n; i++)
                qs[i] = live[(size_t)rand() % nlive];
            if (rand() % 20 == 0)
                qs[n++] = ((uint64_t)1 << 40) + (uint64_t)op; /* never created: dropped */
            size_t len = body_len(id);
            fill(body, len, id);
            assert_int_equal(lepi_store_enqueue(s, id, body, len, qs, n, NULL, NULL), 0);
            for (size_t i = 0; i < n; i++) {
                if (qs[i] < m.next_q)
                    model_add_pair(&m, qs[i], id);
                if (qs[i] > m.max_q)
                    m.max_q = qs[i];
            }
            m.max_m = id;
        } else if (r < 990) { /* ack something: mostly recent, sometimes old */
            if (!m.npairs)
                continue;
            size_t i = rand() % 4 ? m.npairs - 1 - (size_t)rand() % (m.npairs < 8 ? m.npairs : 8)
                                  : (size_t)rand() % m.npairs;
            pair_t p = m.pairs[i];
            m.pairs[i] = m.pairs[--m.npairs];
            assert_int_equal(lepi_store_ack(s, p.q, p.m, NULL, NULL), 0);
        } else if (r < 995) { /* an ack that cancels nothing */
            assert_int_equal(lepi_store_ack(s, 1, m.next_m + 5, NULL, NULL), 0);
            if (m.next_m + 5 > m.max_m)
                m.max_m = m.next_m + 5;
            m.next_m += 6;
        } else { /* reopen, sometimes in the middle of a compaction */
            if (rand() % 2)
                assert_int_equal(lepi_store_sync(s), 0);
            verify(&o, &m, &s, &finished);
            reopens++;
        }
    }
    assert_int_equal(lepi_store_sync(s), 0);
    lepi_store_stats(s, &st);
    assert_int_equal(st.live_enqueues, m.npairs);
    verify(&o, &m, &s, &finished);
    lepi_store_stats(s, &st);
    print_message("model seed %u: %ld ops, %zu reopens (%zu finishing a compaction), %zu live, "
                  "%zu segments, %llu KiB on disk\n",
                  seed, ops, reopens, finished, m.npairs, st.segments,
                  (unsigned long long)(st.disk_bytes >> 10));
    lepi_store_close(s);
    free(m.qlive);
    free(m.pairs);
}

static void
test_model(void **state)
{
    (void)state;
    /* (creating a file takes ~0.7 ms on the development VM: segments of a
     * few KiB make this test slow, but they make everything move) */
    long ops = env_long("LEPTON_STORE_MODEL_OPS", 12000);
    unsigned seed = (unsigned)env_long("LEPTON_STORE_SEED", 1);
    run_model(seed, 4096, 0.5, 512, ops);
    empty_dir();
    run_model(seed + 1, 16384, 0.8, 1 << 20, ops);
    empty_dir();
    run_model(seed + 2, 8192, 0.3, 300, ops);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_lived_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
