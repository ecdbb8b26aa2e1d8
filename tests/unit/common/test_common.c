/* Common utilities: error strings, byte views, growable and fixed buffers,
 * printf into buffers, and the allocation hook. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/common.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int all_errors[] = {
    LEP_OK, LEP_ERR_NOMEM, LEP_ERR_DECODE, LEP_ERR_TYPE, LEP_ERR_INCOMPLETE, LEP_ERR_OVERFLOW,
    LEP_ERR_LIMIT, LEP_ERR_FRAME_SIZE, LEP_ERR_INVALID, LEP_ERR_UTF8, LEP_ERR_SYMBOL, LEP_ERR_FRAMING,
    LEP_ERR_NOT_FOUND, LEP_ERR_STATE, LEP_ERR_IO,
};
#define NERR (sizeof all_errors / sizeof all_errors[0])

static void
test_strerror(void **state)
{
    (void)state;
    const char *unknown = lep_strerror(1);
    assert_non_null(unknown);
    assert_true(strlen(unknown) > 0);
    for (size_t i = 0; i < NERR; i++) {
        const char *s = lep_strerror(all_errors[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        if (strcmp(s, unknown) == 0)
            fail_msg("error %d has no description of its own", all_errors[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(s, lep_strerror(all_errors[k])) == 0)
                fail_msg("errors %d and %d share the description \"%s\"", all_errors[i], all_errors[k], s);
        /* the codes are distinct, negative except LEP_OK, and contiguous */
        assert_int_equal(all_errors[i], -(int)i);
    }
    static const int others[] = {-15, -16, -100, 2, 100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        assert_string_equal(lep_strerror(others[i]), unknown);
    assert_string_equal(lep_strerror(LEP_OK), "success");
    assert_string_equal(lep_strerror(LEP_ERR_NOMEM), "out of memory");
}

static void
test_bytes(void **state)
{
    (void)state;
    const char *s = "hello";
    lep_bytes_t b = lep_bytes_str(s);
    assert_ptr_equal(b.ptr, s);
    assert_int_equal(b.len, 5);
    b = lep_bytes_str(NULL);
    assert_int_equal(b.len, 0);
    b = lep_bytes_str("");
    assert_int_equal(b.len, 0);

    lep_bytes_t x = LEP_BYTES("abc", 3), y = LEP_BYTES("abcd", 3), z = LEP_BYTES("abd", 3);
    assert_true(lep_bytes_eq(x, y));
    assert_false(lep_bytes_eq(x, z));
    assert_false(lep_bytes_eq(x, LEP_BYTES("abcd", 4)));
    assert_false(lep_bytes_eq(LEP_BYTES("abcd", 4), x));
    assert_true(lep_bytes_eq(LEP_BYTES(NULL, 0), LEP_BYTES(NULL, 0)));
    assert_true(lep_bytes_eq(LEP_BYTES(NULL, 0), LEP_BYTES("x", 0)));
    assert_false(lep_bytes_eq(LEP_BYTES(NULL, 0), LEP_BYTES("x", 1)));
    /* binary content, NULs included */
    assert_true(lep_bytes_eq(LEP_BYTES("a\0b", 3), LEP_BYTES("a\0b", 3)));
    assert_false(lep_bytes_eq(LEP_BYTES("a\0b", 3), LEP_BYTES("a\0c", 3)));

    assert_true(lep_bytes_eq_str(x, "abc"));
    assert_false(lep_bytes_eq_str(x, "ab"));
    assert_false(lep_bytes_eq_str(x, "abcd"));
    assert_true(lep_bytes_eq_str(LEP_BYTES(NULL, 0), ""));
    assert_true(lep_bytes_eq_str(LEP_BYTES(NULL, 0), NULL));
    assert_false(lep_bytes_eq_str(LEP_BYTES("a\0", 2), "a"));
}

static void
test_buf_growable(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_buf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_false(b.fixed);
    assert_int_equal(lep_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(lep_buf_reserve(&b, 0), 0);

    /* appends of every size up to a few pages, content checked */
    size_t total = 0;
    for (size_t n = 1; n <= 600; n++) {
        uint8_t chunk[600];
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)(total + i);
        assert_int_equal(lep_buf_append(&b, chunk, n), 0);
        total += n;
        assert_int_equal(b.len, total);
        assert_true(b.cap >= b.len);
    }
    for (size_t i = 0; i < total; i++)
        if (b.data[i] != (uint8_t)i)
            fail_msg("byte %zu is %u", i, b.data[i]);

    lep_bytes_t v = lep_buf_bytes(&b);
    assert_ptr_equal(v.ptr, b.data);
    assert_int_equal(v.len, total);

    assert_int_equal(lep_buf_reserve(&b, 100000), 0);
    assert_true(b.cap - b.len >= 100000);
    assert_int_equal(b.len, total);
    size_t cap = b.cap;
    lep_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(lep_buf_append(&b, "xy", 2), 0);
    assert_int_equal(memcmp(b.data, "xy", 2), 0);

    /* absurd sizes fail cleanly and leave the buffer alone */
    uint8_t *data = b.data;
    assert_int_equal(lep_buf_reserve(&b, SIZE_MAX), LEP_ERR_NOMEM);
    assert_int_equal(lep_buf_reserve(&b, SIZE_MAX / 2), LEP_ERR_NOMEM);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.len, 2);
    assert_int_equal(b.cap, cap);

    lep_buf_fini(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    lep_buf_fini(&b); /* twice is harmless */
}

static void
test_buf_fixed(void **state)
{
    (void)state;
    uint8_t mem[16];
    memset(mem, 0xaa, sizeof mem);
    lep_buf_t b;
    lep_buf_init_fixed(&b, mem, 8);
    assert_true(b.fixed);
    assert_ptr_equal(b.data, mem);
    assert_int_equal(b.cap, 8);
    assert_int_equal(lep_buf_reserve(&b, 8), 0);
    assert_int_equal(lep_buf_reserve(&b, 9), LEP_ERR_OVERFLOW);
    assert_int_equal(lep_buf_append(&b, "12345", 5), 0);
    assert_int_equal(lep_buf_append(&b, "6789", 4), LEP_ERR_OVERFLOW);
    assert_int_equal(b.len, 5);
    assert_int_equal(lep_buf_append(&b, "678", 3), 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(lep_buf_append(&b, "9", 1), LEP_ERR_OVERFLOW);
    assert_int_equal(lep_buf_append(&b, NULL, 0), 0);
    assert_int_equal(memcmp(mem, "12345678", 8), 0);
    for (size_t i = 8; i < sizeof mem; i++)
        assert_int_equal(mem[i], 0xaa);
    assert_ptr_equal(b.data, mem);
    lep_buf_clear(&b);
    assert_int_equal(lep_buf_append(&b, "abcdefgh", 8), 0);
    lep_buf_fini(&b); /* must not free the borrowed memory */
    assert_null(b.data);
    assert_int_equal(memcmp(mem, "abcdefgh", 8), 0);

    lep_buf_init_fixed(&b, mem, 0);
    assert_int_equal(lep_buf_append(&b, NULL, 0), 0);
    assert_int_equal(lep_buf_append(&b, "x", 1), LEP_ERR_OVERFLOW);
    assert_int_equal(lep_buf_reserve(&b, SIZE_MAX), LEP_ERR_OVERFLOW);
    lep_buf_fini(&b);
}

static void
test_buf_printf(void **state)
{
    (void)state;
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_buf_printf(&b, "%s=%d", "x", 42), 0);
    assert_int_equal(lep_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(lep_buf_printf(&b, ",%05.1f|%c", 3.14159, 'z'), 0);
    assert_int_equal(b.len, strlen("x=42,003.1|z"));
    assert_int_equal(memcmp(b.data, "x=42,003.1|z", b.len), 0);

    /* lengths around the formatter's internal buffer */
    static char big[5000];
    static const size_t lens[] = {254, 255, 256, 257, 511, 512, 4999};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        memset(big, 'a' + (int)(i % 26), n);
        big[n] = 0;
        lep_buf_clear(&b);
        assert_int_equal(lep_buf_append(&b, "<", 1), 0);
        assert_int_equal(lep_buf_printf(&b, "%s>%zu", big, n), 0);
        char tail[32];
        snprintf(tail, sizeof tail, ">%zu", n);
        assert_int_equal(b.len, 1 + n + strlen(tail));
        assert_int_equal(b.data[0], '<');
        assert_int_equal(memcmp(b.data + 1, big, n), 0);
        assert_int_equal(memcmp(b.data + 1 + n, tail, strlen(tail)), 0);
    }
    lep_buf_fini(&b);

    /* fixed buffers: the output fits exactly, or nothing is written */
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        uint8_t *mem = malloc(n + 16);
        assert_non_null(mem);
        memset(big, 'q', n);
        big[n] = 0;
        for (size_t cap = n - 2; cap <= n + 1; cap++) {
            memset(mem, 0xaa, n + 16);
            lep_buf_t f;
            lep_buf_init_fixed(&f, mem, cap);
            int rc = lep_buf_printf(&f, "%s", big);
            if (cap >= n) {
                if (rc != 0)
                    fail_msg("printf of %zu chars into a fixed buffer of %zu: %s", n, cap, lep_strerror(rc));
                assert_int_equal(f.len, n);
                assert_int_equal(memcmp(mem, big, n), 0);
            } else {
                assert_int_equal(rc, LEP_ERR_OVERFLOW);
                assert_int_equal(f.len, 0);
            }
            for (size_t k = cap; k < n + 16; k++)
                if (mem[k] != 0xaa)
                    fail_msg("printf of %zu chars into %zu bytes wrote byte %zu", n, cap, k);
        }
        free(mem);
    }
}

/* ---- allocation hook ---- */

typedef struct counting {
    long mallocs, reallocs, frees, live;
    size_t last_size;
    long fail_at; /* fail the Nth malloc/realloc (1-based), 0: never */
    long calls;
    void *ctx_seen;
} counting_t;

static counting_t cnt;

static void *
c_malloc(size_t n, void *ctx)
{
    cnt.ctx_seen = ctx;
    cnt.last_size = n;
    if (++cnt.calls == cnt.fail_at)
        return NULL;
    cnt.mallocs++;
    void *p = malloc(n);
    if (p)
        cnt.live++;
    return p;
}

static void *
c_realloc(void *p, size_t n, void *ctx)
{
    cnt.ctx_seen = ctx;
    cnt.last_size = n;
    if (n == 0)
        fail_msg("realloc_fn called with size 0");
    if (!p)
        fail_msg("realloc_fn called with NULL");
    if (++cnt.calls == cnt.fail_at)
        return NULL;
    cnt.reallocs++;
    return realloc(p, n);
}

static void
c_free(void *p, void *ctx)
{
    cnt.ctx_seen = ctx;
    if (p) {
        cnt.frees++;
        cnt.live--;
    }
    free(p);
}

static int ctx_token;
static const lep_allocator_t counting_alloc = {c_malloc, c_realloc, c_free, &ctx_token};

static void
test_allocator_hook(void **state)
{
    (void)state;
    cnt = (counting_t){0};
    lep_set_allocator(&counting_alloc);

    void *p = lep_malloc(10);
    assert_non_null(p);
    assert_int_equal(cnt.mallocs, 1);
    assert_ptr_equal(cnt.ctx_seen, &ctx_token);
    p = lep_realloc(p, 100);
    assert_non_null(p);
    assert_int_equal(cnt.reallocs, 1);
    p = lep_realloc(p, 0); /* never realloc_fn(p, 0) */
    assert_non_null(p);
    assert_true(cnt.last_size > 0);
    lep_free(p);
    assert_int_equal(cnt.frees, 1);

    p = lep_realloc(NULL, 7); /* a malloc */
    assert_non_null(p);
    assert_int_equal(cnt.mallocs, 2);
    lep_free(p);

    p = lep_malloc(0); /* a real, freeable block */
    assert_non_null(p);
    assert_true(cnt.last_size > 0);
    lep_free(p);
    lep_free(NULL);

    uint8_t *z = lep_calloc(100, 3);
    assert_non_null(z);
    for (int i = 0; i < 300; i++)
        assert_int_equal(z[i], 0);
    lep_free(z);
    long calls = cnt.calls;
    assert_null(lep_calloc(SIZE_MAX / 2, 3)); /* overflow: refused */
    assert_null(lep_calloc(3, SIZE_MAX / 2));
    assert_int_equal(cnt.calls, calls);
    z = lep_calloc(0, 5);
    assert_non_null(z);
    lep_free(z);
    assert_int_equal(cnt.live, 0);

    /* buffers grow through the hook */
    lep_buf_t b;
    lep_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(lep_buf_append(&b, "0123456789", 10), 0);
    assert_true(cnt.mallocs + cnt.reallocs > 2);
    lep_buf_fini(&b);
    assert_int_equal(cnt.live, 0);

    /* NULL restores the C library: nothing more is counted */
    lep_set_allocator(NULL);
    long before = cnt.calls;
    p = lep_malloc(10);
    assert_non_null(p);
    lep_free(p);
    assert_int_equal(cnt.calls, before);
}

/* A failing allocation leaves the buffer as it was. */
static void
test_buf_alloc_failure(void **state)
{
    (void)state;
    for (long n = 1;; n++) {
        cnt = (counting_t){.fail_at = n};
        lep_set_allocator(&counting_alloc);
        lep_buf_t b;
        lep_buf_init(&b);
        int rc = 0;
        size_t len = 0;
        for (int i = 0; i < 300 && rc == 0; i++) {
            size_t before = b.len, cap = b.cap;
            uint8_t *data = b.data;
            rc = i % 3 ? lep_buf_append(&b, "abcdefghijklmnopqrstuvwxyz", 26)
                       : lep_buf_printf(&b, "%0300d", i);
            if (rc) {
                assert_int_equal(rc, LEP_ERR_NOMEM);
                assert_int_equal(b.len, before);
                assert_int_equal(b.cap, cap);
                assert_ptr_equal(b.data, data);
            } else {
                len = b.len;
            }
        }
        /* the content written before the failure is intact */
        for (size_t i = 0, k = 0; i < len; k++) {
            size_t step = k % 3 ? 26 : 300;
            if (k % 3)
                assert_int_equal(memcmp(b.data + i, "abcdefghijklmnopqrstuvwxyz", 26), 0);
            else
                assert_int_equal(b.data[i + 299], '0' + (int)(k % 10));
            i += step;
        }
        lep_buf_fini(&b);
        long live = cnt.live;
        lep_set_allocator(NULL);
        assert_int_equal(live, 0);
        if (rc == 0)
            break;
        assert_true(n < 100);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_buf_growable),
        cmocka_unit_test(test_buf_fixed),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_allocator_hook),
        cmocka_unit_test(test_buf_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
