/* The strict JSON parser and connect.json loading: syntax edge cases with
 * their line:column messages, Proton's defaults and keys, type errors, and
 * the search order under a fake environment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/messaging_config.h>

#include "messaging/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- JSON ---- */

static lepi_json_t *
jok(const char *text)
{
    lepi_json_t *v;
    char err[200];
    lepi_json_opts_t o = {.comments = true};
    int rc = lepi_json_parse(text, strlen(text), &o, &v, err, sizeof err);
    if (rc)
        fail_msg("%s: %s", text, err);
    return v;
}

static void
jbad_opts(const char *text, const lepi_json_opts_t *o, int want_rc, const char *msg)
{
    lepi_json_t *v = (lepi_json_t *)1;
    char err[200];
    int rc = lepi_json_parse(text, strlen(text), o, &v, err, sizeof err);
    if (rc == 0)
        fail_msg("accepted: %s", text);
    assert_null(v);
    assert_int_equal(rc, want_rc);
    assert_string_equal(err, msg);
}

static void
jbad(const char *text, const char *msg)
{
    jbad_opts(text, NULL, LEP_ERR_DECODE, msg);
}

static void
test_json_values(void **state)
{
    (void)state;
    lepi_json_t *v = jok(" {\"a\": [1, -2.5e3, true, false, null, \"s\"], \"b\": {}, \"c\": []} ");
    assert_int_equal(v->type, LEPI_JSON_OBJECT);
    assert_int_equal(v->u.obj.n, 3);
    const lepi_json_t *a = lepi_json_get(v, "a");
    assert_non_null(a);
    assert_int_equal(a->type, LEPI_JSON_ARRAY);
    assert_int_equal(a->u.arr.n, 6);
    assert_true(a->u.arr.items[0].u.num.is_int);
    assert_int_equal(a->u.arr.items[0].u.num.i, 1);
    assert_false(a->u.arr.items[1].u.num.is_int);
    assert_true(a->u.arr.items[1].u.num.value == -2500.0);
    assert_int_equal(a->u.arr.items[2].type, LEPI_JSON_BOOL);
    assert_true(a->u.arr.items[2].u.boolean);
    assert_false(a->u.arr.items[3].u.boolean);
    assert_int_equal(a->u.arr.items[4].type, LEPI_JSON_NULL);
    assert_string_equal(a->u.arr.items[5].u.str.ptr, "s");
    assert_int_equal(a->line, 1);
    assert_int_equal(a->col, 8);
    assert_int_equal(lepi_json_get(v, "b")->type, LEPI_JSON_OBJECT);
    assert_null(lepi_json_get(v, "zz"));
    assert_null(lepi_json_get(a, "a"));
    lepi_json_free(v);
    lepi_json_free(NULL);

    v = jok("-0");
    assert_true(v->u.num.is_int);
    lepi_json_free(v);
    v = jok("9223372036854775807");
    assert_true(v->u.num.is_int);
    assert_true(v->u.num.i == INT64_MAX);
    lepi_json_free(v);
    v = jok("9223372036854775808"); /* past int64: a double only */
    assert_false(v->u.num.is_int);
    lepi_json_free(v);
    v = jok("1E+2");
    assert_true(v->u.num.value == 100.0);
    lepi_json_free(v);
    v = jok("\n\n  [1,\n   {\"k\" : 2}]");
    assert_int_equal(v->u.arr.items[1].line, 4);
    assert_int_equal(v->u.arr.items[1].col, 4);
    assert_int_equal(v->u.arr.items[1].u.obj.members[0].line, 4);
    assert_int_equal(v->u.arr.items[1].u.obj.members[0].col, 5);
    lepi_json_free(v);
}

static void
test_json_strings(void **state)
{
    (void)state;
    lepi_json_t *v = jok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    assert_string_equal(v->u.str.ptr, "a\"b\\c/d\b\f\n\r\t");
    lepi_json_free(v);
    v = jok("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"");
    assert_string_equal(v->u.str.ptr, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    lepi_json_free(v);
    v = jok("\"x\\u0000y\"");
    assert_int_equal(v->u.str.len, 3);
    assert_memory_equal(v->u.str.ptr, "x\0y", 3);
    lepi_json_free(v);
    v = jok("\"\xc3\xa9\xf0\x9f\x98\x80\"");
    assert_int_equal(v->u.str.len, 6);
    lepi_json_free(v);

    jbad("\"abc", "1:1: unterminated string");
    jbad("\"abc\\", "1:1: unterminated string");
    jbad("\"a\\x\"", "1:3: bad escape '\\x'");
    jbad("\"\\u12G4\"", "1:2: bad \\u escape");
    jbad("\"\\u12\"", "1:2: bad \\u escape");
    jbad("\"\\ud83d\"", "1:2: unpaired high surrogate");
    jbad("\"\\ud83dx\"", "1:2: unpaired high surrogate");
    jbad("\"\\ud83d\\u0041\"", "1:2: unpaired high surrogate");
    jbad("\"\\ude00\"", "1:2: unpaired low surrogate");
    jbad("\"a\tb\"", "1:3: control character in string");
    jbad("\"\xff\"", "1:2: invalid UTF-8 in string");
    jbad("\"\xc0\xaf\"", "1:2: invalid UTF-8 in string");       /* overlong */
    jbad("\"\xed\xa0\x80\"", "1:2: invalid UTF-8 in string");   /* surrogate */
    jbad("\"\xf4\x90\x80\x80\"", "1:2: invalid UTF-8 in string"); /* > U+10FFFF */
    jbad("\"\xe2\x82\"", "1:2: invalid UTF-8 in string");
}

static void
test_json_syntax_errors(void **state)
{
    (void)state;
    jbad("", "1:1: unexpected end of input");
    jbad("   \n  ", "2:3: unexpected end of input");
    jbad("01", "1:1: leading zero in number");
    jbad("-", "1:1: bad number");
    jbad("-a", "1:1: bad number");
    jbad("1.", "1:1: bad number: digit expected after '.'");
    jbad("1.e5", "1:1: bad number: digit expected after '.'");
    jbad("1e", "1:1: bad number: digit expected in exponent");
    jbad("1e+", "1:1: bad number: digit expected in exponent");
    jbad("1e400", "1:1: number out of range");
    jbad("+1", "1:1: unexpected character '+'");
    jbad(".5", "1:1: unexpected character '.'");
    jbad("NaN", "1:1: unexpected character 'N'");
    jbad("tru", "1:1: unexpected character 't'");
    jbad("nul", "1:1: unexpected character 'n'");
    jbad("\x01", "1:1: unexpected character '?'");
    jbad("[1,]", "1:4: trailing comma in array");
    jbad("{\"a\":1,}", "1:8: trailing comma in object");
    jbad("[1 2]", "1:4: expected ',' or ']'");
    jbad("{\"a\":1 \"b\":2}", "1:8: expected ',' or '}'");
    jbad("{\"a\" 1}", "1:6: expected ':'");
    jbad("{a:1}", "1:2: expected a string key");
    jbad("{\"a\":1,\n \"a\":2}", "2:2: duplicate key \"a\"");
    jbad("[1", "1:3: unterminated array");
    jbad("{\"a\":1", "1:7: unterminated object");
    jbad("{", "1:2: unterminated object");
    jbad("[", "1:2: unexpected end of input");
    jbad("{} x", "1:4: trailing characters after the value");
    jbad("1 2", "1:3: trailing characters after the value");
    jbad("[1]\n]", "2:1: trailing characters after the value");
    jbad("[1] // c", "1:5: trailing characters after the value"); /* comments off */
    char big[80];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    jbad_opts(big, NULL, LEP_ERR_LIMIT, "1:1: number too long");
}

static void
test_json_comments(void **state)
{
    (void)state;
    lepi_json_t *v = jok("// leading\n{ /* a\n b */ \"k\": 1 // tail\n}\n/* end */");
    assert_int_equal(lepi_json_get(v, "k")->line, 3);
    assert_int_equal(lepi_json_get(v, "k")->col, 12);
    lepi_json_free(v);
    lepi_json_opts_t o = {.comments = true};
    jbad_opts("[1 /* open", &o, LEP_ERR_DECODE, "1:4: unterminated comment");
    jbad_opts("[1,\n  2 /* open\n and\n on", &o, LEP_ERR_DECODE, "2:5: unterminated comment");
    jbad_opts("/", &o, LEP_ERR_DECODE, "1:1: unexpected character '/'");
}

static void
test_json_depth(void **state)
{
    (void)state;
    char buf[300];
    lepi_json_opts_t o = {.max_depth = 5};
    strcpy(buf, "[[[[[1]]]]]");
    lepi_json_t *v;
    assert_int_equal(lepi_json_parse(buf, strlen(buf), &o, &v, NULL, 0), 0);
    lepi_json_free(v);
    jbad_opts("[[[[[[1]]]]]]", &o, LEP_ERR_LIMIT, "1:6: nesting deeper than 5");
    jbad_opts("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}", &o, LEP_ERR_LIMIT,
              "1:26: nesting deeper than 5");
    /* the default limit of 64 protects the stack from hostile input */
    memset(buf, '[', 200);
    buf[200] = '\0';
    jbad_opts(buf, NULL, LEP_ERR_LIMIT, "1:65: nesting deeper than 64");
    memset(buf, '[', 64);
    memset(buf + 64, ']', 64);
    buf[128] = '\0';
    assert_int_equal(lepi_json_parse(buf, strlen(buf), NULL, &v, NULL, 0), 0);
    lepi_json_free(v);
}

/* Fail the n-th allocation; every failure path must free what it made. */
static int fail_countdown = -1;
static int allocs;
static void *
fmalloc(size_t n, void *ctx)
{
    (void)ctx;
    if (fail_countdown >= 0 && fail_countdown-- == 0)
        return NULL;
    allocs++;
    return malloc(n);
}
static void *
frealloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    if (fail_countdown >= 0 && fail_countdown-- == 0)
        return NULL;
    if (!p)
        allocs++;
    return realloc(p, n);
}
static void
ffree(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        allocs--;
    free(p);
}

static const char full_config[] =
    "{\n"
    "  \"scheme\": \"amqps\", \"host\": \"broker.example\", \"port\": 5673,\n"
    "  \"user\": \"alice\", \"password\": \"s\\u00e9cret\",\n"
    "  \"sasl\": {\"enabled\": true, \"mechanisms\": [\"SCRAM-SHA-256\", \"PLAIN\"],\n"
    "           \"allow_insecure\": true},\n"
    "  \"tls\": {\"ca\": \"/ca.pem\", \"cert\": \"/c.pem\", \"key\": \"/k.pem\", \"verify\": false}\n"
    "}\n";

static void
test_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {fmalloc, frealloc, ffree, NULL};
    lep_set_allocator(&a);
    const char *j = "{\"a\": [1, \"xx\", {\"b\": [true]}], \"c\": \"\\u00e9\"}";
    bool succeeded = false;
    for (int i = 0; i < 200 && !succeeded; i++) {
        allocs = 0;
        fail_countdown = i;
        lepi_json_t *v;
        int rc = lepi_json_parse(j, strlen(j), NULL, &v, NULL, 0);
        if (rc == 0) {
            succeeded = true;
            lepi_json_free(v);
        } else {
            assert_int_equal(rc, LEP_ERR_NOMEM);
        }
        assert_int_equal(allocs, 0);
    }
    assert_true(succeeded);
    succeeded = false;
    for (int i = 0; i < 300 && !succeeded; i++) {
        allocs = 0;
        fail_countdown = i;
        lep_connect_config_t c;
        int rc = lep_connect_config_init(&c);
        if (rc == 0)
            rc = lep_connect_config_parse(&c, full_config, strlen(full_config), "x.json");
        if (rc == 0)
            succeeded = true;
        else {
            assert_int_equal(rc, LEP_ERR_NOMEM);
            if (c.error[0])
                assert_string_equal(c.error, "x.json: out of memory");
        }
        lep_connect_config_fini(&c);
        assert_int_equal(allocs, 0);
    }
    assert_true(succeeded);
    fail_countdown = -1;
    lep_set_allocator(NULL);
}

/* ---- connect.json ---- */

static void
test_defaults(void **state)
{
    (void)state;
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_string_equal(c.scheme, "amqps");
    assert_string_equal(c.host, "localhost");
    assert_int_equal(c.port, 5671);
    assert_null(c.user);
    assert_null(c.password);
    assert_true(c.sasl_enabled);
    assert_null(c.sasl_mechanisms);
    assert_false(c.sasl_allow_insecure);
    assert_null(c.tls_ca);
    assert_null(c.tls_cert);
    assert_null(c.tls_key);
    assert_true(c.tls_verify);
    assert_null(c.path);
    /* an empty object keeps every default */
    assert_int_equal(lep_connect_config_parse(&c, "{}", 2, "e.json"), 0);
    assert_string_equal(c.scheme, "amqps");
    assert_int_equal(c.port, 5671);
    /* the default port follows the scheme */
    const char *j = "{\"scheme\": \"amqp\"}";
    assert_int_equal(lep_connect_config_parse(&c, j, strlen(j), "e.json"), 0);
    assert_int_equal(c.port, 5672);
    lep_connect_config_fini(&c);
    lep_connect_config_fini(&c);
}

static void
test_full(void **state)
{
    (void)state;
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    int rc = lep_connect_config_parse(&c, full_config, strlen(full_config), "full.json");
    if (rc)
        fail_msg("%s", c.error);
    assert_string_equal(c.scheme, "amqps");
    assert_string_equal(c.host, "broker.example");
    assert_int_equal(c.port, 5673);
    assert_string_equal(c.user, "alice");
    assert_string_equal(c.password, "s\xc3\xa9" "cret");
    assert_true(c.sasl_enabled);
    assert_string_equal(c.sasl_mechanisms, "SCRAM-SHA-256 PLAIN");
    assert_true(c.sasl_allow_insecure);
    assert_string_equal(c.tls_ca, "/ca.pem");
    assert_string_equal(c.tls_cert, "/c.pem");
    assert_string_equal(c.tls_key, "/k.pem");
    assert_false(c.tls_verify);
    lep_connect_config_fini(&c);

    /* port as a string, mechanisms as one string, comments, sasl off */
    const char *j = "// Proton allows comments\n{\"port\": \"amqp\", /* x */ \"sasl\": "
                    "{\"mechanisms\": \"ANONYMOUS\", \"enabled\": false}}";
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_parse(&c, j, strlen(j), NULL), 0);
    assert_int_equal(c.port, 5672);
    assert_string_equal(c.scheme, "amqps");
    assert_string_equal(c.sasl_mechanisms, "ANONYMOUS");
    assert_false(c.sasl_enabled);
    j = "{\"port\": \"20000\", \"sasl\": {\"mechanisms\": []}}";
    assert_int_equal(lep_connect_config_parse(&c, j, strlen(j), NULL), 0);
    assert_int_equal(c.port, 20000);
    assert_string_equal(c.sasl_mechanisms, "");
    j = "{\"port\": \"amqps\", \"port\": 1}";
    assert_int_equal(lep_connect_config_parse(&c, j, strlen(j), NULL), LEP_ERR_DECODE);
    assert_string_equal(c.error, "connect.json: 1:19: duplicate key \"port\"");
    lep_connect_config_fini(&c);
}

/* Proton's documented template: every default spelled out, null included. */
static const char proton_template[] =
    "{\n"
    "  \"scheme\": \"amqps\",   // [string] \"amqp\" (no TLS) or \"amqps\"\n"
    "  \"host\": \"localhost\",\n"
    "  \"port\": \"amqps\",\n"
    "  \"user\": null,\n"
    "  \"password\": null,\n"
    "  \"sasl\": {\n"
    "    \"enable\": true,\n"
    "    \"mechanisms\": null,\n"
    "    \"allow_insecure\": false\n"
    "  },\n"
    "  \"tls\": {\"cert\": null, \"key\": null, \"ca\": null, \"verify\": true}\n"
    "}\n";

static void
test_proton_template(void **state)
{
    (void)state;
    lep_connect_config_t c, d;
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_init(&d), 0);
    int rc = lep_connect_config_parse(&c, proton_template, strlen(proton_template), "t.json");
    if (rc)
        fail_msg("%s", c.error);
    assert_string_equal(c.scheme, d.scheme);
    assert_string_equal(c.host, d.host);
    assert_int_equal(c.port, d.port);
    assert_null(c.user);
    assert_null(c.password);
    assert_true(c.sasl_enabled);
    assert_null(c.sasl_mechanisms);
    assert_false(c.sasl_allow_insecure);
    assert_null(c.tls_ca);
    assert_null(c.tls_cert);
    assert_null(c.tls_key);
    assert_true(c.tls_verify);
    /* null after a value keeps the value (it means "default", not "clear") */
    const char *j = "{\"sasl\": {\"enable\": false, \"enabled\": null}, \"host\": null}";
    assert_int_equal(lep_connect_config_parse(&c, j, strlen(j), "t.json"), 0);
    assert_false(c.sasl_enabled);
    assert_string_equal(c.host, "localhost");
    lep_connect_config_fini(&c);
    lep_connect_config_fini(&d);
}

static void
cbad(const char *json, int want_rc, const char *msg)
{
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    int rc = lep_connect_config_parse(&c, json, strlen(json), "/etc/x.json");
    if (rc == 0)
        fail_msg("accepted: %s", json);
    assert_int_equal(rc, want_rc);
    assert_string_equal(c.error, msg);
    lep_connect_config_fini(&c);
}

static void
test_config_errors(void **state)
{
    (void)state;
    cbad("[]", LEP_ERR_INVALID, "/etc/x.json: 1:1: the top level must be an object, not array");
    cbad("{\"host\": \"h\",}", LEP_ERR_DECODE, "/etc/x.json: 1:14: trailing comma in object");
    cbad("{\n  \"hots\": \"h\"}", LEP_ERR_INVALID, "/etc/x.json: 2:3: unknown key \"hots\"");
    cbad("{\"sasl\": {\"mechanism\": \"PLAIN\"}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:11: unknown key \"sasl.mechanism\"");
    cbad("{\"tls\": {\"verify\": true, \"cafile\": \"x\"}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:26: unknown key \"tls.cafile\"");
    cbad("{\"scheme\": \"http\"}", LEP_ERR_INVALID,
         "/etc/x.json: 1:12: \"scheme\" must be \"amqp\" or \"amqps\"");
    cbad("{\"scheme\": 1}", LEP_ERR_INVALID, "/etc/x.json: 1:12: \"scheme\" must be a string, not number");
    cbad("{\"host\": []}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"host\" must be a string, not array");
    cbad("{\"sasl\": {\"enable\": 1}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:21: \"sasl.enable\" must be a boolean, not number");
    cbad("{\"tls\": {}, \"scheme\": \"amqp\"}", LEP_ERR_INVALID,
         "/etc/x.json: 1:9: \"tls\" is not allowed unless \"scheme\" is \"amqps\"");
    cbad("{\"scheme\": \"amqp\",\n \"tls\": {\"verify\": false}}", LEP_ERR_INVALID,
         "/etc/x.json: 2:9: \"tls\" is not allowed unless \"scheme\" is \"amqps\"");
    cbad("{\"nope\": null}", LEP_ERR_INVALID, "/etc/x.json: 1:2: unknown key \"nope\"");
    cbad("{\"tls\": {\"nope\": null}}", LEP_ERR_INVALID, "/etc/x.json: 1:10: unknown key \"tls.nope\"");
    cbad("{\"host\": \"\"}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"host\" is empty");
    cbad("{\"user\": [\"a\"]}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"user\" must be a string, not array");
    cbad("{\"password\": false}", LEP_ERR_INVALID,
         "/etc/x.json: 1:14: \"password\" must be a string, not boolean");
    cbad("{\"user\": \"a\\u0000b\"}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"user\" contains a NUL character");
    cbad("{\"port\": 65536}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"port\" must be an integer from 0 to 65535");
    cbad("{\"port\": -1}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"port\" must be an integer from 0 to 65535");
    cbad("{\"port\": 56.5}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"port\" must be an integer from 0 to 65535");
    cbad("{\"port\": true}", LEP_ERR_INVALID,
         "/etc/x.json: 1:10: \"port\" must be a number or a string, not boolean");
    cbad("{\"port\": \"http\"}", LEP_ERR_INVALID,
         "/etc/x.json: 1:10: bad port \"http\" (a number 0-65535, \"amqp\" or \"amqps\")");
    cbad("{\"port\": \"70000\"}", LEP_ERR_INVALID,
         "/etc/x.json: 1:10: bad port \"70000\" (a number 0-65535, \"amqp\" or \"amqps\")");
    cbad("{\"port\": \"\"}", LEP_ERR_INVALID,
         "/etc/x.json: 1:10: bad port \"\" (a number 0-65535, \"amqp\" or \"amqps\")");
    cbad("{\"sasl\": true}", LEP_ERR_INVALID, "/etc/x.json: 1:10: \"sasl\" must be an object, not boolean");
    cbad("{\"tls\": \"yes\"}", LEP_ERR_INVALID, "/etc/x.json: 1:9: \"tls\" must be an object, not string");
    cbad("{\"sasl\": {\"enabled\": \"yes\"}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:22: \"sasl.enabled\" must be a boolean, not string");
    cbad("{\"sasl\": {\"allow_insecure\": 1}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:29: \"sasl.allow_insecure\" must be a boolean, not number");
    cbad("{\"sasl\": {\"mechanisms\": 3}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:25: \"sasl.mechanisms\" must be a string or a list of strings, not number");
    cbad("{\"sasl\": {\"mechanisms\": [\"PLAIN\", 3]}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:35: \"sasl.mechanisms\" items must be mechanism names");
    cbad("{\"sasl\": {\"mechanisms\": [\"A B\"]}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:26: \"sasl.mechanisms\" items must be mechanism names");
    cbad("{\"tls\": {\"verify\": \"no\"}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:20: \"tls.verify\" must be a boolean, not string");
    cbad("{\"tls\": {\"ca\": 5}}", LEP_ERR_INVALID, "/etc/x.json: 1:16: \"tls.ca\" must be a string, not number");
    cbad("{\"tls\": {\"cert\": {}}}", LEP_ERR_INVALID,
         "/etc/x.json: 1:18: \"tls.cert\" must be a string, not object");
    cbad("{\"tls\": {\"key\": []}}", LEP_ERR_INVALID, "/etc/x.json: 1:17: \"tls.key\" must be a string, not array");
    cbad("{\"a\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}", LEP_ERR_LIMIT,
         "/etc/x.json: 1:22: nesting deeper than 16");
}

/* ---- files and the search order ---- */

static char tmpdir[] = "/tmp/lep-cfg-XXXXXX";

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
mkdirs(const char *sub)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, sub);
    for (char *s = p + strlen(tmpdir) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0700);
            *s = '/';
        }
    mkdir(p, 0700);
}

static const char *
tpath(char *buf, const char *sub)
{
    snprintf(buf, 512, "%s/%s", tmpdir, sub);
    return buf;
}

static int
setup_dirs(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    mkdirs("cwd");
    mkdirs("home/.config/messaging");
    mkdirs("etc/messaging");
    return 0;
}

static int
teardown_dirs(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_load(void **state)
{
    (void)state;
    char p[512];
    lep_connect_config_t c;
    write_file(tpath(p, "full.json"), full_config);
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_load(&c, p), 0);
    assert_string_equal(c.path, p);
    assert_string_equal(c.host, "broker.example");
    lep_connect_config_fini(&c);

    write_file(tpath(p, "bad.json"), "{\n  \"host\": \"h\",\n  \"colour\": 1\n}\n");
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_load(&c, p), LEP_ERR_INVALID);
    char want[700];
    snprintf(want, sizeof want, "%s: 3:3: unknown key \"colour\"", p);
    assert_string_equal(c.error, want);
    assert_null(c.path);
    lep_connect_config_fini(&c);

    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_load(&c, tpath(p, "missing.json")), LEP_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", p);
    assert_string_equal(c.error, want);
    lep_connect_config_fini(&c);

    /* an oversized file is refused before parsing */
    FILE *f = fopen(tpath(p, "huge.json"), "w");
    assert_non_null(f);
    fputc('"', f);
    for (int i = 0; i < (1 << 20) + 10; i++)
        fputc('a', f);
    fputc('"', f);
    fclose(f);
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_load(&c, p), LEP_ERR_LIMIT);
    snprintf(want, sizeof want, "%s: file larger than 1048576 bytes", p);
    assert_string_equal(c.error, want);
    lep_connect_config_fini(&c);
    unlink(p);
}

static void
find_expect(const lep_config_env_t *env, int want_rc, const char *want_host, const char *want_path)
{
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    int rc = lep_connect_config_find(&c, env);
    if (rc != want_rc)
        fail_msg("rc %d (%s)", rc, c.error);
    assert_string_equal(c.host, want_host);
    if (want_path)
        assert_string_equal(c.path, want_path);
    else
        assert_null(c.path);
    lep_connect_config_fini(&c);
}

static void
test_search_order(void **state)
{
    (void)state;
    char cwd[512], home[512], etc[512], p[512], env_file[512];
    char pc[512], ph[512], pe[512];
    lep_config_env_t env = {NULL, tpath(cwd, "cwd"), tpath(home, "home"), tpath(etc, "etc")};

    find_expect(&env, LEP_ERR_NOT_FOUND, "localhost", NULL);
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_find(&c, &env), LEP_ERR_NOT_FOUND);
    assert_string_equal(c.error, "no connect.json found");
    lep_connect_config_fini(&c);

    write_file(tpath(pe, "etc/messaging/connect.json"), "{\"host\": \"etc\"}");
    find_expect(&env, 0, "etc", pe);
    write_file(tpath(ph, "home/.config/messaging/connect.json"), "{\"host\": \"home\"}");
    find_expect(&env, 0, "home", ph);
    write_file(tpath(pc, "cwd/connect.json"), "{\"host\": \"cwd\"}");
    find_expect(&env, 0, "cwd", pc);
    write_file(tpath(env_file, "env.json"), "{\"host\": \"env\"}");
    env.connect_file = env_file;
    find_expect(&env, 0, "env", env_file);

    /* MESSAGING_CONNECT_FILE must exist: no falling back */
    env.connect_file = tpath(p, "nope.json");
    find_expect(&env, LEP_ERR_IO, "localhost", NULL);
    env.connect_file = "";
    find_expect(&env, 0, "cwd", pc);

    /* a broken file earlier in the order is an error, not skipped */
    env.connect_file = NULL;
    write_file(pc, "{\"host\": 1}");
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_find(&c, &env), LEP_ERR_INVALID);
    char want[700];
    snprintf(want, sizeof want, "%s: 1:10: \"host\" must be a string, not number", pc);
    assert_string_equal(c.error, want);
    lep_connect_config_fini(&c);

    /* NULL directories are skipped */
    env.cwd = NULL;
    find_expect(&env, 0, "home", ph);
    env.home = NULL;
    find_expect(&env, 0, "etc", pe);
    env.sysconf_dir = NULL;
    find_expect(&env, LEP_ERR_NOT_FOUND, "localhost", NULL);
    unlink(pc);
    unlink(ph);
    unlink(pe);
    unlink(env_file);
}

static void
test_search_real_env(void **state)
{
    (void)state;
    char p[512], old[1024] = "";
    const char *o = getenv("MESSAGING_CONNECT_FILE");
    if (o)
        snprintf(old, sizeof old, "%s", o);
    write_file(tpath(p, "real.json"), "{\"host\": \"from-env\", \"scheme\": \"amqp\"}");
    setenv("MESSAGING_CONNECT_FILE", p, 1);
    lep_connect_config_t c;
    assert_int_equal(lep_connect_config_init(&c), 0);
    assert_int_equal(lep_connect_config_find(&c, NULL), 0);
    assert_string_equal(c.host, "from-env");
    assert_int_equal(c.port, 5672);
    lep_connect_config_fini(&c);
    if (o)
        setenv("MESSAGING_CONNECT_FILE", old, 1);
    else
        unsetenv("MESSAGING_CONNECT_FILE");
    unlink(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_syntax_errors),
        cmocka_unit_test(test_json_comments),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_nomem),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_proton_template),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_search_order),
        cmocka_unit_test(test_search_real_env),
    };
    return cmocka_run_group_tests(tests, setup_dirs, teardown_dirs);
}
