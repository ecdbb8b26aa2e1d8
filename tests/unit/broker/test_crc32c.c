/* CRC32C: known vectors (RFC 3720 B.4, the "123456789" check value), the
 * instruction against the table on random buffers of every alignment and
 * length, and incremental use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/crc32c.h"

#include <stdlib.h>
#include <string.h>

static void
test_vectors(void **state)
{
    (void)state;
    uint8_t b[32];
    assert_int_equal(lepi_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(lepi_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    memset(b, 0, sizeof b);
    assert_int_equal(lepi_crc32c(0, b, 32), 0x8a9136aau);
    assert_int_equal(lepi_crc32c_sw(0, b, 32), 0x8a9136aau);
    memset(b, 0xff, sizeof b);
    assert_int_equal(lepi_crc32c(0, b, 32), 0x62a8ab43u);
    assert_int_equal(lepi_crc32c_sw(0, b, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(lepi_crc32c(0, b, 32), 0x46dd794eu);
    assert_int_equal(lepi_crc32c_sw(0, b, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(lepi_crc32c(0, b, 32), 0x113fdb5cu);
    assert_int_equal(lepi_crc32c(0, NULL, 0), 0);
    assert_int_equal(lepi_crc32c(0x12345678u, b, 0), 0x12345678u);
}

static void
test_hw_matches_table(void **state)
{
    (void)state;
    uint8_t buf[4096 + 16];
    srand(7);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    for (size_t align = 0; align < 8; align++)
        for (size_t n = 0; n < 300; n++)
            assert_int_equal(lepi_crc32c(0, buf + align, n), lepi_crc32c_sw(0, buf + align, n));
    assert_int_equal(lepi_crc32c(0, buf + 3, 4096), lepi_crc32c_sw(0, buf + 3, 4096));
    print_message("crc32c: %s\n", lepi_crc32c_hw() ? "sse4.2 instruction" : "table");
}

static void
test_incremental(void **state)
{
    (void)state;
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    uint32_t whole = lepi_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37) {
        assert_int_equal(lepi_crc32c(lepi_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
        assert_int_equal(lepi_crc32c_sw(lepi_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hw_matches_table),
        cmocka_unit_test(test_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
