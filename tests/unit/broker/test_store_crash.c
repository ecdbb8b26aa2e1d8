/* The store under kill -9.  A child process appends enqueues from two
 * threads and, from each completion, acks most of them; every completion
 * is reported to the parent through a pipe.  The parent kills the child
 * at a random moment, reopens the store and checks that every enqueue
 * whose completion it saw is there (lost must be 0), that no ack whose
 * completion it saw is undone, and that the bytes are intact.  The next
 * round's child starts from what is left (acking what it recovers), so
 * crashes land during appends, compactions and recoveries alike, with
 * fsync off and on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

static size_t
body_len(uint64_t id)
{
    return 60 + (size_t)(id % 80);
}

/* Whether a recovered message holds the bytes it was written with. */
static bool
body_ok(uint64_t id, const void *data, size_t len)
{
    uint8_t body[200];
    fill(body, body_len(id), id);
    return len == body_len(id) && memcmp(data, body, len) == 0;
}

/* What goes through the pipe: one write each, atomic (< PIPE_BUF). */
typedef struct note {
    char type; /* R ready, E enqueued, A acked, F failed */
    uint8_t q;
    uint8_t pad[6];
    uint64_t id;
} note_t;

static lepi_store_opts_t
crash_opts(bool fsync_on)
{
    lepi_store_opts_t o = small_opts(dir);
    o.fsync = fsync_on;
    o.segment_size = 32 * 1024;
    o.max_batch = 8 * 1024;
    o.compact_step = 4096;
    return o;
}

/* ---- the child ---- */

typedef struct child {
    lepi_store_t *s;
    int fd;
    _Atomic uint64_t next_id;
} child_t;

static child_t C;
static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cv = PTHREAD_COND_INITIALIZER;
static int inflight;

static void
tell(char type, uint8_t q, uint64_t id)
{
    note_t n = {.type = type, .q = q, .id = id};
    if (write(C.fd, &n, sizeof n) != (ssize_t)sizeof n)
        _exit(3);
}

static void
ack_done(void *ctx, int status)
{
    uint64_t v = (uint64_t)(uintptr_t)ctx;
    tell(status ? 'F' : 'A', (uint8_t)(v & 3), v >> 2);
}

/* The parent hears of an ack before it is appended: from then on the
 * message may be gone after a crash. */
static void
ack(uint64_t q, uint64_t id)
{
    tell('I', (uint8_t)q, id);
    if (lepi_store_ack(C.s, q, id, ack_done, (void *)(uintptr_t)(id << 2 | q)))
        tell('F', (uint8_t)q, id);
}

static void
enq_done(void *ctx, int status)
{
    uint64_t id = (uint64_t)(uintptr_t)ctx;
    tell(status ? 'F' : 'E', 0, id);
    /* a consumer takes most of them at once */
    if (!status && id % 3 != 0)
        ack(1, id);
    if (!status && id % 5 == 0 && id % 2 == 0)
        ack(2, id);
    pthread_mutex_lock(&inflight_mu);
    inflight--;
    pthread_cond_signal(&inflight_cv);
    pthread_mutex_unlock(&inflight_mu);
}

static void *
child_thread(void *arg)
{
    (void)arg;
    uint8_t body[200];
    for (;;) {
        pthread_mutex_lock(&inflight_mu);
        while (inflight > 3000)
            pthread_cond_wait(&inflight_cv, &inflight_mu);
        inflight++;
        pthread_mutex_unlock(&inflight_mu);
        uint64_t id = atomic_fetch_add(&C.next_id, 1);
        uint64_t qs[2] = {1, 2};
        size_t len = body_len(id);
        fill(body, len, id);
        if (lepi_store_enqueue(C.s, id, body, len, qs, id % 5 == 0 ? 2 : 1, enq_done,
                               (void *)(uintptr_t)id))
            tell('F', 0, id);
    }
    return NULL;
}

typedef struct pairs {
    uint64_t *v; /* q << 56 | id */
    size_t n, cap;
} pairs_t;

static int
child_rec(void *ctx, uint64_t q, uint64_t m, const void *data, size_t len)
{
    pairs_t *p = ctx;
    if (!body_ok(m, data, len))
        return -100;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
    }
    p->v[p->n++] = q << 56 | m;
    return 0;
}

static void
child_main(int fd, bool fsync_on)
{
    lepi_store_opts_t o = crash_opts(fsync_on);
    pairs_t rec = {0};
    lepi_store_recovery_t cb = {.ctx = &rec, .message = child_rec};
    lepi_store_info_t info;
    char err[256];
    C.fd = fd;
    if (lepi_store_open(&C.s, &o, &cb, &info, err, sizeof err)) {
        tell('F', 0, 0);
        _exit(2);
    }
    if (info.queues < 2) {
        lepi_store_queue_create(C.s, 1, "work", NULL, 0, NULL, NULL);
        lepi_store_queue_create(C.s, 2, "audit", NULL, 0, NULL, NULL);
    }
    atomic_store(&C.next_id, info.max_msg_id + 1);
    tell('R', 0, info.max_msg_id);
    /* consume what survived the last crash */
    for (size_t i = 0; i < rec.n; i++) {
        ack(rec.v[i] >> 56, rec.v[i] & ((1ull << 56) - 1));
    }
    pthread_t th[2];
    pthread_create(&th[0], NULL, child_thread, NULL);
    pthread_create(&th[1], NULL, child_thread, NULL);
    pause();
    _exit(0);
}

/* ---- the parent ---- */

/* per queue and id: 0 unknown, 1 must be there, 2 must not, 3 ack in
 * flight (either), 5 recovered in this round */
typedef struct expect {
    uint8_t *st[3];
    size_t cap;
} expect_t;

static void
expect_set(expect_t *e, uint64_t q, uint64_t id, uint8_t v, bool only_up)
{
    if (id >= e->cap) {
        size_t cap = e->cap ? e->cap : 1 << 16;
        while (cap <= id)
            cap *= 2;
        for (int k = 1; k <= 2; k++) {
            e->st[k] = realloc(e->st[k], cap);
            memset(e->st[k] + e->cap, 0, cap - e->cap);
        }
        e->cap = cap;
    }
    if (!only_up || e->st[q][id] < v)
        e->st[q][id] = v;
}

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void
note_apply(expect_t *e, const note_t *n, long *events)
{
    switch (n->type) {
    case 'E':
        expect_set(e, 1, n->id, 1, true);
        if (n->id % 5 == 0)
            expect_set(e, 2, n->id, 1, true);
        (*events)++;
        break;
    case 'A':
        expect_set(e, n->q, n->id, 2, false);
        (*events)++;
        break;
    case 'I':
        expect_set(e, n->q, n->id, 0, true);
        if (e->st[n->q][n->id] != 2)
            e->st[n->q][n->id] = 3;
        break;
    case 'R':
        break;
    default:
        fail_msg("child reported a failure for id %llu", (unsigned long long)n->id);
    }
}

typedef struct parent_rec {
    expect_t *e;
    long lost, back, seen, bad;
    uint8_t *found[3];
} parent_rec_t;

static int
parent_msg(void *ctx, uint64_t q, uint64_t m, const void *data, size_t len)
{
    parent_rec_t *p = ctx;
    if (q < 1 || q > 2 || !body_ok(m, data, len)) {
        p->bad++;
        return 0;
    }
    expect_set(p->e, q, m, 0, true); /* room */
    if (p->e->st[q][m] == 2)
        p->back++;
    else
        p->e->st[q][m] = 5;
    p->seen++;
    return 0;
}

static void
run_round(expect_t *e, int round, unsigned *seed, bool fsync_on)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would turn a crash into a test failure inside
         * the child: let it die of the signal instead */
        int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        close(pfd[0]);
        child_main(pfd[1], fsync_on);
    }
    close(pfd[1]);
    /* kill at a random moment: mostly while appending, sometimes while
     * the child is still recovering */
    double wait_ms = (double)(rand_r(seed) % 250);
    bool before_ready = rand_r(seed) % 8 == 0;
    double deadline = before_ready ? now_s() + wait_ms / 5000 : 0;
    long events = 0;
    note_t n;
    for (;;) {
        if (deadline && now_s() >= deadline)
            break;
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int left = deadline ? (int)((deadline - now_s()) * 1000) + 1 : 20000;
        int r = poll(&p, 1, left);
        if (r == 0 && !deadline)
            fail_msg("round %d: the child said nothing for 20 s", round);
        if (r <= 0)
            continue;
        if (read(pfd[0], &n, sizeof n) != (ssize_t)sizeof n)
            break;
        if (n.type == 'R' && !deadline)
            deadline = now_s() + wait_ms / 1000;
        note_apply(e, &n, &events);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status))
        fail_msg("round %d: the child exited with %d", round, WEXITSTATUS(status));
    if (WTERMSIG(status) != SIGKILL)
        fail_msg("round %d: the child died of signal %d", round, WTERMSIG(status));
    while (read(pfd[0], &n, sizeof n) == (ssize_t)sizeof n)
        note_apply(e, &n, &events);
    close(pfd[0]);

    lepi_store_opts_t o = crash_opts(fsync_on);
    parent_rec_t pr = {.e = e};
    lepi_store_recovery_t cb = {.ctx = &pr, .message = parent_msg};
    lepi_store_info_t info;
    lepi_store_t *s = NULL;
    char err[512];
    int rc = lepi_store_open(&s, &o, &cb, &info, err, sizeof err);
    if (rc)
        fail_msg("round %d: reopen: %s", round, err);
    lepi_store_close(s);
    /* What must be there and is not; what was recovered must stay until
     * acked; an ack in flight whose message is gone took effect. */
    for (int q = 1; q <= 2; q++) {
        for (uint64_t id = 0; id < e->cap; id++) {
            uint8_t *v = &e->st[q][id];
            if (*v == 1) {
                pr.lost++;
                if (pr.lost < 20)
                    print_message("lost: queue %d message %llu\n", q, (unsigned long long)id);
            }
            *v = *v == 5 ? 1 : *v == 3 ? 2 : *v;
        }
    }
    print_message("round %d (fsync %s, kill after %s%.0f ms): %ld completions seen, %llu "
                  "recovered, lost %ld, acked but back %ld, torn %llu bytes, %zu segments%s\n",
                  round, fsync_on ? "on" : "off", before_ready ? "start + " : "",
                  before_ready ? wait_ms / 5 : wait_ms, events,
                  (unsigned long long)info.enqueues, pr.lost, pr.back,
                  (unsigned long long)info.truncated_bytes, info.segments,
                  info.compactions_finished ? ", finished a compaction" : "");
    assert_int_equal(pr.bad, 0);
    assert_int_equal(pr.lost, 0);
    assert_int_equal(pr.back, 0);
}

static void
test_kill9(void **state)
{
    (void)state;
    const char *sv = getenv("LEPTON_STORE_SEED");
    unsigned seed = sv && *sv ? (unsigned)atoi(sv) : (unsigned)time(NULL);
    const char *rv = getenv("LEPTON_STORE_CRASH_ROUNDS");
    int rounds = rv && *rv ? atoi(rv) : 10;
    print_message("kill -9 rounds, seed %u (LEPTON_STORE_SEED to repeat)\n", seed);
    expect_t e = {0};
    expect_set(&e, 1, 1, 0, true);
    for (int round = 1; round <= rounds; round++)
        run_round(&e, round, &seed, round % 3 == 0);
    free(e.st[1]);
    free(e.st[2]);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
