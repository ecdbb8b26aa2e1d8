/* AMQP URL parsing: every accepted form, defaults, decoding, each error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/messaging_config.h>

#include <stdlib.h>
#include <string.h>

static void
check_str(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void
ok(const char *s, const char *scheme, const char *user, const char *pass, const char *host,
   unsigned port, const char *address)
{
    lep_url_t u;
    int rc = lep_url_parse(s, &u);
    if (rc != 0)
        fail_msg("%s: %s", s, u.error);
    check_str(u.scheme, scheme);
    check_str(u.user, user);
    check_str(u.password, pass);
    check_str(u.host, host);
    assert_int_equal(u.port, port);
    check_str(u.address, address);
    assert_int_equal(u.tls, strcmp(scheme, "amqps") == 0);
    lep_url_fini(&u);
}

static void
bad(const char *s, const char *msg)
{
    lep_url_t u;
    int rc = lep_url_parse(s, &u);
    if (rc == 0)
        fail_msg("%s accepted", s);
    assert_int_equal(rc, LEP_ERR_INVALID);
    assert_string_equal(u.error, msg);
    lep_url_fini(&u);
    lep_url_fini(&u); /* idempotent */
}

static void
test_valid(void **state)
{
    (void)state;
    ok("amqp://host:1234/queue", "amqp", NULL, NULL, "host", 1234, "queue");
    ok("amqp://guest:secret@broker.example.com:5672/examples", "amqp", "guest", "secret",
       "broker.example.com", 5672, "examples");
    ok("amqps://u@h/a/b/c", "amqps", "u", NULL, "h", 5671, "a/b/c");
    ok("amqp://h", "amqp", NULL, NULL, "h", 5672, NULL);
    ok("amqp://h/", "amqp", NULL, NULL, "h", 5672, "");
    ok("amqp://u:@h", "amqp", "u", "", "h", 5672, NULL);
    ok("AMQPS://h:0", "amqps", NULL, NULL, "h", 0, NULL);
    ok("amqp://h:65535", "amqp", NULL, NULL, "h", 65535, NULL);
    ok("amqp://h:amqps/x", "amqp", NULL, NULL, "h", 5671, "x");
    ok("amqps://h:amqp", "amqps", NULL, NULL, "h", 5672, NULL);
    ok("amqp://127.0.0.1:5672/topic/a.*", "amqp", NULL, NULL, "127.0.0.1", 5672, "topic/a.*");
    /* the last '@' ends the userinfo */
    ok("amqp://u:p@ss@h/q", "amqp", "u", "p@ss", "h", 5672, "q");
}

static void
test_bare(void **state)
{
    (void)state;
    ok("localhost:5672/examples", "amqp", NULL, NULL, "localhost", 5672, "examples");
    ok("host", "amqp", NULL, NULL, "host", 5672, NULL);
    ok("u:p@host/q", "amqp", "u", "p", "host", 5672, "q");
    ok("[::1]:9/q", "amqp", NULL, NULL, "::1", 9, "q");
}

static void
test_ipv6(void **state)
{
    (void)state;
    ok("amqp://[::1]:5673/q", "amqp", NULL, NULL, "::1", 5673, "q");
    ok("amqps://[fe80::1%25eth0]", "amqps", NULL, NULL, "fe80::1%eth0", 5671, NULL);
    ok("amqp://u:p@[2001:db8::7]/x", "amqp", "u", "p", "2001:db8::7", 5672, "x");
}

static void
test_percent(void **state)
{
    (void)state;
    ok("amqp://us%65r:p%40ss%3A%2F@h/a%2Fb%20c", "amqp", "user", "p@ss:/", "h", 5672, "a/b c");
    ok("amqp://%C3%A9:x@h/%e2%82%ac", "amqp", "\xc3\xa9", "x", "h", 5672, "\xe2\x82\xac");
}

static void
test_port_string(void **state)
{
    (void)state;
    lep_url_t u;
    assert_int_equal(lep_url_parse("amqps://h", &u), 0);
    assert_string_equal(u.port_str, "5671");
    lep_url_fini(&u);
    assert_int_equal(lep_url_parse("amqp://h:amqps", &u), 0);
    assert_string_equal(u.port_str, "amqps");
    lep_url_fini(&u);
    assert_int_equal(lep_url_parse("amqp://h:007", &u), 0);
    assert_int_equal(u.port, 7);
    lep_url_fini(&u);
}

static void
test_errors(void **state)
{
    (void)state;
    bad("", "empty URL");
    bad("http://h/q", "unsupported scheme \"http\" (expected amqp or amqps)");
    bad("://h", "unsupported scheme \"\" (expected amqp or amqps)");
    bad("amqp://", "empty host");
    bad("amqp:///queue", "empty host");
    bad("amqp://:5672/q", "empty host");
    bad("amqp://u:p@/q", "empty host");
    bad("amqp://[]:5672", "empty host");
    bad("amqp://h:/q", "empty port");
    bad("amqp://h:abc", "bad port \"abc\"");
    bad("amqp://h:-1", "bad port \"-1\"");
    bad("amqp://h:65536", "port 65536 out of range (0-65535)");
    bad("amqp://h:99999999999999999999", "port 99999999999999999999 out of range (0-65535)");
    bad("amqp://[::1:5672/q", "unterminated '[' in IPv6 address");
    bad("amqp://[::1]x/q", "unexpected characters after ']'");
    bad("amqp://::1/q", "IPv6 address must be in brackets");
    bad("amqp://[fe80::1%eth0]/q", "bad percent escape in host");
    bad("amqp://bad host/q", "space or control character in host");
    bad("amqp://h\tx", "space or control character in host");
    bad("amqp://u%zz:p@h", "bad percent escape in user");
    bad("amqp://u:p%4@h", "bad percent escape in password");
    bad("amqp://h/a%", "bad percent escape in address");
    bad("amqp://h/a%2", "bad percent escape in address");
    bad("amqp://h/a%00b", "bad percent escape in address");
    lep_url_t u;
    assert_int_equal(lep_url_parse(NULL, &u), LEP_ERR_INVALID);
    lep_url_fini(&u);
}

/* Fails the n-th allocation: parsing must report NOMEM and leak nothing. */
static int fail_at_alloc;
static void *
fail_malloc(size_t n, void *ctx)
{
    (void)ctx;
    if (fail_at_alloc-- == 0)
        return NULL;
    return malloc(n);
}
static void *
fail_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (fail_at_alloc-- == 0)
        return NULL;
    return realloc(p, n);
}
static void
plain_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void
test_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {fail_malloc, fail_realloc, plain_free, NULL};
    lep_set_allocator(&a);
    fail_at_alloc = 0;
    lep_url_t u;
    assert_int_equal(lep_url_parse("amqp://h/q", &u), LEP_ERR_NOMEM);
    lep_url_fini(&u);
    lep_set_allocator(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),   cmocka_unit_test(test_bare),
        cmocka_unit_test(test_ipv6),    cmocka_unit_test(test_percent),
        cmocka_unit_test(test_port_string), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
