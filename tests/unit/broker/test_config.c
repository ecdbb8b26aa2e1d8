/* The broker's configuration: defaults as the header documents them, every
 * key of the file, null as the default, sizes, errors with FILE:LINE:COL,
 * relative paths, the flag setters, the coherence check (with real TLS
 * files and users files), the access rules, allocation failures, and the
 * examples and the users script of docs/broker.md. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lepton/broker.h>
#include <lepton/sasl.h>

#include "../tls/certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024ull * 1024)

static void
cfg_ok(lep_broker_config_t *c, const char *json)
{
    assert_int_equal(lep_broker_config_init(c), 0);
    int rc = lep_broker_config_parse(c, json, strlen(json), "t.json");
    if (rc)
        fail_msg("rc %d: %s\n%s", rc, c->error, json);
}

static void
cfg_bad(const char *json, int want_rc, const char *want)
{
    lep_broker_config_t c;
    assert_int_equal(lep_broker_config_init(&c), 0);
    int rc = lep_broker_config_parse(&c, json, strlen(json), "t.json");
    if (rc == 0)
        fail_msg("accepted: %s", json);
    if (rc != want_rc || strcmp(c.error, want) != 0)
        fail_msg("%s\n got rc %d: %s\nwant rc %d: %s", json, rc, c.error, want_rc, want);
    lep_broker_config_fini(&c);
}

static void
check_policy(const lep_queue_policy_t *p, uint64_t depth, uint64_t bytes, lep_overflow_t ov,
             uint32_t mdc, const char *dla, bool durable)
{
    assert_int_equal(p->max_depth, depth);
    assert_int_equal(p->max_bytes, bytes);
    assert_int_equal(p->overflow, ov);
    assert_int_equal(p->max_delivery_count, mdc);
    if (dla)
        assert_string_equal(p->dead_letter_address, dla);
    else
        assert_null(p->dead_letter_address);
    assert_int_equal(p->durable, durable);
}

static void
check_defaults(const lep_broker_config_t *c)
{
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "amqp://127.0.0.1:5672");
    assert_true(c->listen_replace);
    assert_string_equal(c->data_dir, "./lepton-data");
    assert_true(c->fsync);
    assert_string_equal(c->container_id, "lepton-broker");
    assert_int_equal(c->threads, 0);
    assert_string_equal(c->log_level, "info");
    assert_null(c->tls_cert);
    assert_null(c->tls_key);
    assert_null(c->tls_key_password);
    assert_null(c->tls_ca);
    assert_false(c->tls_require_client_cert);
    assert_int_equal(c->tls_min_version, LEP_TLS_1_2);
    assert_null(c->tls_ciphers);
    assert_null(c->tls_ciphersuites);
    assert_null(c->users_file);
    assert_null(c->sasl_mechanisms);
    assert_true(c->allow_anonymous);
    assert_false(c->allow_anonymous_set);
    assert_false(c->allow_plain_without_tls);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->max_connections_per_user, 0);
    assert_int_equal(c->max_frame_size, 65536);
    assert_int_equal(c->max_message_size, 100 * MIB);
    assert_int_equal(c->max_sessions, 0);
    assert_int_equal(c->max_links, 0);
    assert_string_equal(c->queue_prefix, "queue.");
    assert_string_equal(c->topic_prefix, "topic.");
    assert_true(c->auto_create);
    assert_string_equal(c->dead_letter_address, "queue.DLQ");
    check_policy(&c->queue_defaults, 1000000, 1024 * MIB, LEP_OVERFLOW_BLOCK, 10, NULL, true);
    check_policy(&c->subscription_defaults, 100000, 256 * MIB, LEP_OVERFLOW_DROP_HEAD, 10, NULL,
                 true);
    assert_int_equal(c->nqueues, 0);
    assert_null(c->queues);
    assert_int_equal(c->nacl, 0);
    assert_null(c->acl);
    assert_null(c->metrics_listen);
    assert_null(c->path);
}

static void
test_defaults(void **state)
{
    (void)state;
    lep_broker_config_t c;
    assert_int_equal(lep_broker_config_init(&c), 0);
    check_defaults(&c);
    lep_broker_config_fini(&c);
    lep_broker_config_fini(&c); /* twice is harmless */
    lep_broker_config_fini(NULL);
    /* an empty file changes nothing */
    cfg_ok(&c, " /* nothing */ {} // at all\n");
    check_defaults(&c);
    lep_broker_config_fini(&c);
}

static const char full[] =
    "// every key\n"
    "{\n"
    "  \"listen\": [\"amqp://0.0.0.0:5672\", \"amqps://[::]:5671\", \"localhost:0\"],\n"
    "  \"data_dir\": \"/var/lib/lepton\",\n"
    "  \"fsync\": false,\n"
    "  \"container_id\": \"b1\",\n"
    "  \"threads\": 4,\n"
    "  \"log_level\": \"debug\",\n"
    "  \"tls_cert\": \"c.pem\", \"tls_key\": \"k.pem\", \"tls_key_password\": \"pw\",\n"
    "  \"tls_ca\": \"ca.pem\", \"tls_require_client_cert\": true,\n"
    "  \"tls_min_version\": \"1.3\", \"tls_ciphers\": \"ECDHE+AESGCM:!aNULL\",\n"
    "  \"tls_ciphersuites\": \"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\",\n"
    "  \"users_file\": \"users.txt\",\n"
    "  \"sasl_mechanisms\": [\"SCRAM-SHA-256\", \"PLAIN EXTERNAL\"],\n"
    "  \"allow_anonymous\": true,\n"
    "  \"allow_plain_without_tls\": true,\n"
    "  \"max_connections\": 500, \"max_connections_per_user\": 20,\n"
    "  \"max_frame_size\": \"16KiB\", \"max_message_size\": \"1 GB\",\n"
    "  \"max_sessions\": 16, \"max_links\": 64,\n"
    "  \"queue_prefix\": \"q/\", \"topic_prefix\": \"t/\", \"auto_create\": false,\n"
    "  \"dead_letter_address\": \"q/dead\",\n"
    "  \"queues\": [\n"
    "    {\"name\": \"q/a\"},\n"
    "    {\"name\": \"q/b\", \"max_depth\": 7, \"max_bytes\": 1000, \"overflow\": \"drop-head\",\n"
    "     \"max_delivery_count\": 0, \"dead_letter_address\": \"\", \"durable\": false},\n"
    "    {\"name\": \"q/c\", \"overflow\": null, \"dead_letter_address\": null}\n"
    "  ],\n"
    "  \"queue_defaults\": {\"max_depth\": 50, \"max_bytes\": \"2MiB\", \"overflow\": \"reject\",\n"
    "                     \"max_delivery_count\": 3, \"dead_letter_address\": \"q/x\",\n"
    "                     \"durable\": false},\n"
    "  \"subscription_defaults\": {\"max_depth\": 5, \"overflow\": \"block\"},\n"
    "  \"acl\": [\n"
    "    {\"user\": \"admin\", \"address\": \"*\", \"allow\": \"all\"},\n"
    "    {\"user\": \"*\", \"address\": \"q/secret*\", \"deny\": [\"receive\", \"create\"],\n"
    "     \"allow\": [\"send\"]},\n"
    "    {\"user\": \"svc-*\", \"address\": \"t/x\", \"allow\": [], \"deny\": \"manage\"}\n"
    "  ],\n"
    "  \"metrics_listen\": \"[::1]:9100\"\n"
    "}\n";

static void
test_every_key(void **state)
{
    (void)state;
    lep_broker_config_t c;
    cfg_ok(&c, full);
    assert_int_equal(c.nlisten, 3);
    assert_string_equal(c.listen[0], "amqp://0.0.0.0:5672");
    assert_string_equal(c.listen[1], "amqps://[::]:5671");
    assert_string_equal(c.listen[2], "localhost:0");
    assert_true(c.listen_replace);
    assert_string_equal(c.data_dir, "/var/lib/lepton");
    assert_false(c.fsync);
    assert_string_equal(c.container_id, "b1");
    assert_int_equal(c.threads, 4);
    assert_string_equal(c.log_level, "debug");
    /* parse() keeps relative paths as written */
    assert_string_equal(c.tls_cert, "c.pem");
    assert_string_equal(c.tls_key, "k.pem");
    assert_string_equal(c.tls_key_password, "pw");
    assert_string_equal(c.tls_ca, "ca.pem");
    assert_true(c.tls_require_client_cert);
    assert_int_equal(c.tls_min_version, LEP_TLS_1_3);
    assert_string_equal(c.tls_ciphers, "ECDHE+AESGCM:!aNULL");
    assert_string_equal(c.tls_ciphersuites, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    assert_string_equal(c.users_file, "users.txt");
    assert_string_equal(c.sasl_mechanisms, "SCRAM-SHA-256 PLAIN EXTERNAL");
    assert_true(c.allow_anonymous);
    assert_true(c.allow_anonymous_set);
    assert_true(c.allow_plain_without_tls);
    assert_int_equal(c.max_connections, 500);
    assert_int_equal(c.max_connections_per_user, 20);
    assert_int_equal(c.max_frame_size, 16384);
    assert_int_equal(c.max_message_size, 1000000000);
    assert_int_equal(c.max_sessions, 16);
    assert_int_equal(c.max_links, 64);
    assert_string_equal(c.queue_prefix, "q/");
    assert_string_equal(c.topic_prefix, "t/");
    assert_false(c.auto_create);
    assert_string_equal(c.dead_letter_address, "q/dead");
    check_policy(&c.queue_defaults, 50, 2 * MIB, LEP_OVERFLOW_REJECT, 3, "q/x", false);
    /* keys left out keep the subscription defaults */
    check_policy(&c.subscription_defaults, 5, 256 * MIB, LEP_OVERFLOW_BLOCK, 10, NULL, true);
    /* queues start from queue_defaults even though it comes later */
    assert_int_equal(c.nqueues, 3);
    assert_string_equal(c.queues[0].name, "q/a");
    check_policy(&c.queues[0].policy, 50, 2 * MIB, LEP_OVERFLOW_REJECT, 3, "q/x", false);
    assert_string_equal(c.queues[1].name, "q/b");
    check_policy(&c.queues[1].policy, 7, 1000, LEP_OVERFLOW_DROP_HEAD, 0, "", false);
    check_policy(&c.queues[2].policy, 50, 2 * MIB, LEP_OVERFLOW_REJECT, 3, "q/x", false);
    assert_int_equal(c.nacl, 3);
    assert_string_equal(c.acl[0].user, "admin");
    assert_string_equal(c.acl[0].address, "*");
    assert_int_equal(c.acl[0].allow, LEP_ACL_ALL);
    assert_int_equal(c.acl[0].deny, 0);
    assert_int_equal(c.acl[1].allow, LEP_ACL_SEND);
    assert_int_equal(c.acl[1].deny, LEP_ACL_RECEIVE | LEP_ACL_CREATE);
    assert_string_equal(c.acl[2].user, "svc-*");
    assert_int_equal(c.acl[2].allow, 0);
    assert_int_equal(c.acl[2].deny, LEP_ACL_MANAGE);
    assert_string_equal(c.metrics_listen, "[::1]:9100");

    /* a second file over the first: null puts the built-in defaults back */
    const char *nulls =
        "{\"listen\": null, \"data_dir\": null, \"fsync\": null, \"container_id\": null,"
        " \"threads\": null, \"log_level\": null, \"tls_cert\": null, \"tls_key\": null,"
        " \"tls_key_password\": null, \"tls_ca\": null, \"tls_require_client_cert\": null,"
        " \"tls_min_version\": null, \"tls_ciphers\": null, \"tls_ciphersuites\": null,"
        " \"users_file\": null, \"sasl_mechanisms\": null, \"allow_anonymous\": null,"
        " \"allow_plain_without_tls\": null, \"max_connections\": null,"
        " \"max_connections_per_user\": null, \"max_frame_size\": null,"
        " \"max_message_size\": null, \"max_sessions\": null, \"max_links\": null,"
        " \"queue_prefix\": null, \"topic_prefix\": null, \"auto_create\": null,"
        " \"dead_letter_address\": null, \"queue_defaults\": null,"
        " \"subscription_defaults\": null, \"queues\": null, \"acl\": null,"
        " \"metrics_listen\": null}";
    assert_int_equal(lep_broker_config_parse(&c, nulls, strlen(nulls), NULL), 0);
    check_defaults(&c);
    lep_broker_config_fini(&c);

    /* null inside a policy: the built-in default for that key only */
    cfg_ok(&c, "{\"queue_defaults\": {\"max_depth\": 1, \"max_bytes\": 2}}");
    const char *j = "{\"queue_defaults\": {\"max_depth\": null},"
                    " \"subscription_defaults\": {\"dead_letter_address\": \"x\","
                    " \"max_bytes\": null}}";
    assert_int_equal(lep_broker_config_parse(&c, j, strlen(j), NULL), 0);
    check_policy(&c.queue_defaults, 1000000, 2, LEP_OVERFLOW_BLOCK, 10, NULL, true);
    check_policy(&c.subscription_defaults, 100000, 256 * MIB, LEP_OVERFLOW_DROP_HEAD, 10, "x",
                 true);
    lep_broker_config_fini(&c);

    /* single strings where lists are allowed */
    cfg_ok(&c, "{\"listen\": \"amqps://h:1\", \"sasl_mechanisms\": \" ANONYMOUS  PLAIN \","
               " \"acl\": [{\"user\": \"u\", \"address\": \"a\", \"deny\": \"send\"}]}");
    assert_int_equal(c.nlisten, 1);
    assert_string_equal(c.listen[0], "amqps://h:1");
    assert_string_equal(c.sasl_mechanisms, "ANONYMOUS PLAIN");
    assert_int_equal(c.acl[0].deny, LEP_ACL_SEND);
    assert_int_equal(c.acl[0].allow, 0);
    lep_broker_config_fini(&c);

    /* tls_min_version also as OpenSSL and RabbitMQ write it; "" for
     * tls_ciphersuites is OpenSSL's "no TLS 1.3", kept as written */
    static const struct {
        const char *v;
        int want;
    } versions[] = {{"1.2", LEP_TLS_1_2}, {"1.3", LEP_TLS_1_3}, {"TLSv1.3", LEP_TLS_1_3},
                    {"tlsv1.2", LEP_TLS_1_2}};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"tls_min_version\": \"%s\", \"tls_ciphersuites\": \"\"}",
                 versions[i].v);
        cfg_ok(&c, json);
        assert_int_equal(c.tls_min_version, versions[i].want);
        assert_string_equal(c.tls_ciphersuites, "");
        lep_broker_config_fini(&c);
    }
}

static void
test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"512", 512},
        {"512B", 512},
        {"512 b", 512},
        {"64KiB", 65536},
        {"64k", 65536},
        {"64Ki", 65536},
        {"64kB", 64000},
        {"64KB", 64000},
        {"10MiB", 10 * MIB},
        {"10mib", 10 * MIB},
        {"10 M", 10 * MIB},
        {"10MB", 10000000},
        {"1GiB", 1024 * MIB},
        {"2g", 2048 * MIB},
        {"3GB", 3000000000ull},
        {"1TiB", 1ull << 40},
        {"1TB", 1000000000000ull},
        {"16777215TiB", 16777215ull << 40},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        if (lep_broker_parse_size(ok[i].s, &v) != 0)
            fail_msg("refused %s", ok[i].s);
        assert_int_equal(v, ok[i].v);
    }
    static const char *const bad[] = {
        "", "MiB", " 1", "-1", "1.5MiB", "1e3", "1 MiBs", "1 PiB", "1iB", "1  KiB x",
        "16777216TiB", "18446744073709551616", "0x10", "1,000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        if (lep_broker_parse_size(bad[i], &v) != LEP_ERR_INVALID)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(v, 7);
    }
}

static void
test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int rc;
        const char *msg;
    } cases[] = {
        /* syntax, from the JSON parser, with the file name in front */
        {"{", LEP_ERR_DECODE, "t.json:1:2: unterminated object"},
        {"{\"fsync\": true,}", LEP_ERR_DECODE, "t.json:1:16: trailing comma in object"},
        {"{\"fsync\": true, \"fsync\": false}", LEP_ERR_DECODE,
         "t.json:1:17: duplicate key \"fsync\""},
        {"[]", LEP_ERR_INVALID, "t.json:1:1: the top level must be an object, not an array"},
        /* unknown keys, anywhere */
        {"{\n  \"fsynk\": true}", LEP_ERR_INVALID, "t.json:2:3: unknown key \"fsynk\""},
        {"{\"queue_defaults\": {\"max_lenght\": 1}}", LEP_ERR_INVALID,
         "t.json:1:21: unknown key \"queue_defaults.max_lenght\""},
        {"{\"queue_defaults\": {\"name\": \"x\"}}", LEP_ERR_INVALID,
         "t.json:1:21: unknown key \"queue_defaults.name\""},
        {"{\"queues\": [{\"name\": \"a\", \"depth\": 1}]}", LEP_ERR_INVALID,
         "t.json:1:27: unknown key \"queues[0].depth\""},
        {"{\"acl\": [{\"user\": \"a\", \"address\": \"b\", \"allow\": \"all\", \"why\": 1}]}",
         LEP_ERR_INVALID,
         "t.json:1:56: unknown key \"acl[0].why\" (user, address, allow, deny)"},
        /* a key with a NUL in it is another key, not the one before the NUL
         * (the fuzzer found "threads\u0000x" taken for "threads") */
        {"{\"threads\": 1, \"threads\\u0000x\": 2}", LEP_ERR_INVALID,
         "t.json:1:16: unknown key \"threads\\u0000x\""},
        {"{\"queue_defaults\": {\"durable\\u0000\": true}}", LEP_ERR_INVALID,
         "t.json:1:21: unknown key \"queue_defaults.durable\\u0000\""},
        {"{\"queues\": [{\"name\": \"a\", \"name\\u0000\": \"b\"}]}", LEP_ERR_INVALID,
         "t.json:1:27: unknown key \"queues[0].name\\u0000\""},
        {"{\"acl\": [{\"user\\u0000\": \"*\", \"address\": \"*\", \"allow\": \"all\"}]}",
         LEP_ERR_INVALID,
         "t.json:1:11: unknown key \"acl[0].user\\u0000\" (user, address, allow, deny)"},
        /* types */
        {"{\"fsync\": \"yes\"}", LEP_ERR_INVALID,
         "t.json:1:11: \"fsync\" must be a boolean, not a string"},
        {"{\"threads\": 2.5}", LEP_ERR_INVALID,
         "t.json:1:13: \"threads\" must be an integer from 0 to 1024"},
        {"{\"threads\": 1025}", LEP_ERR_INVALID,
         "t.json:1:13: \"threads\" must be an integer from 0 to 1024"},
        {"{\"threads\": \"4\"}", LEP_ERR_INVALID,
         "t.json:1:13: \"threads\" must be a number, not a string"},
        {"{\"max_connections\": -1}", LEP_ERR_INVALID,
         "t.json:1:21: \"max_connections\" must be an integer from 0 to 4294967295"},
        {"{\"max_connections\": 4294967296}", LEP_ERR_INVALID,
         "t.json:1:21: \"max_connections\" must be an integer from 0 to 4294967295"},
        {"{\"max_sessions\": 65537}", LEP_ERR_INVALID,
         "t.json:1:18: \"max_sessions\" must be an integer from 0 to 65536"},
        {"{\"data_dir\": 5}", LEP_ERR_INVALID,
         "t.json:1:14: \"data_dir\" must be a string, not a number"},
        {"{\"data_dir\": \"\"}", LEP_ERR_INVALID, "t.json:1:14: \"data_dir\" must not be empty"},
        {"{\"container_id\": \"\"}", LEP_ERR_INVALID,
         "t.json:1:18: \"container_id\" must not be empty"},
        {"{\"queue_prefix\": \"\"}", LEP_ERR_INVALID,
         "t.json:1:18: \"queue_prefix\" must not be empty"},
        {"{\"container_id\": \"a\\u0000b\"}", LEP_ERR_INVALID,
         "t.json:1:18: \"container_id\" contains a NUL character"},
        {"{\"queue_defaults\": []}", LEP_ERR_INVALID,
         "t.json:1:20: \"queue_defaults\" must be an object, not an array"},
        {"{\"queues\": {}}", LEP_ERR_INVALID,
         "t.json:1:12: \"queues\" must be a list of objects, not an object"},
        {"{\"queues\": [\"q\"]}", LEP_ERR_INVALID,
         "t.json:1:13: \"queues[0]\" must be an object, not a string"},
        {"{\"acl\": {}}", LEP_ERR_INVALID,
         "t.json:1:9: \"acl\" must be a list of rules, not an object"},
        {"{\"queue_defaults\": {\"durable\": 1}}", LEP_ERR_INVALID,
         "t.json:1:32: \"queue_defaults.durable\" must be a boolean, not a number"},
        {"{\"queue_defaults\": {\"max_depth\": \"10\"}}", LEP_ERR_INVALID,
         "t.json:1:34: \"queue_defaults.max_depth\" must be a number, not a string"},
        /* values */
        {"{\"log_level\": \"verbose\"}", LEP_ERR_INVALID,
         "t.json:1:15: \"log_level\": unknown value \"verbose\" (\"error\", \"warn\", \"info\", "
         "\"debug\" or \"trace\")"},
        {"{\"tls_min_version\": \"1.1\"}", LEP_ERR_INVALID,
         "t.json:1:21: \"tls_min_version\": unknown value \"1.1\" (\"1.2\" or \"1.3\"; TLS 1.0 "
         "and 1.1 are not offered)"},
        {"{\n  \"tls_min_version\": \"TLS1.3\"}", LEP_ERR_INVALID,
         "t.json:2:22: \"tls_min_version\": unknown value \"TLS1.3\" (\"1.2\" or \"1.3\"; TLS "
         "1.0 and 1.1 are not offered)"},
        {"{\"tls_min_version\": \"\"}", LEP_ERR_INVALID,
         "t.json:1:21: \"tls_min_version\": unknown value \"\" (\"1.2\" or \"1.3\"; TLS 1.0 and "
         "1.1 are not offered)"},
        {"{\"tls_min_version\": 1.3}", LEP_ERR_INVALID,
         "t.json:1:21: \"tls_min_version\" must be a string (\"1.2\" or \"1.3\"), not a number"},
        {"{\"tls_min_version\": \"1.3\\u0000\"}", LEP_ERR_INVALID,
         "t.json:1:21: \"tls_min_version\" contains a NUL character"},
        {"{\"tls_ciphers\": [\"AES128-SHA\"]}", LEP_ERR_INVALID,
         "t.json:1:17: \"tls_ciphers\" must be a string, not an array"},
        {"{\"tls_ciphersuites\": 1}", LEP_ERR_INVALID,
         "t.json:1:22: \"tls_ciphersuites\" must be a string, not a number"},
        {"{\"queue_defaults\": {\"overflow\": \"drop\"}}", LEP_ERR_INVALID,
         "t.json:1:33: \"queue_defaults.overflow\": unknown value \"drop\" (\"block\", "
         "\"reject\" or \"drop-head\")"},
        {"{\"max_frame_size\": 511}", LEP_ERR_INVALID,
         "t.json:1:20: \"max_frame_size\" must be at least 512 bytes"},
        {"{\"max_frame_size\": \"4GiB\"}", LEP_ERR_INVALID,
         "t.json:1:20: \"max_frame_size\" is too large (at most 4294967295 bytes)"},
        {"{\"max_message_size\": \"10 MiBs\"}", LEP_ERR_INVALID,
         "t.json:1:22: \"max_message_size\": bad size \"10 MiBs\" (bytes, or a number with a "
         "unit such as \"64KiB\", \"10MiB\", \"1GiB\", \"500MB\")"},
        {"{\"max_message_size\": 1.5}", LEP_ERR_INVALID,
         "t.json:1:22: \"max_message_size\" must be a whole number of bytes"},
        {"{\"max_message_size\": true}", LEP_ERR_INVALID,
         "t.json:1:22: \"max_message_size\" must be a size (a number of bytes or a string such "
         "as \"10MiB\"), not a boolean"},
        {"{\"sasl_mechanisms\": \"PLAIN GSSAPI\"}", LEP_ERR_INVALID,
         "t.json:1:21: \"sasl_mechanisms\": unknown SASL mechanism \"GSSAPI\" (ANONYMOUS, "
         "PLAIN, EXTERNAL, SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512)"},
        {"{\"sasl_mechanisms\": []}", LEP_ERR_INVALID,
         "t.json:1:21: \"sasl_mechanisms\" names no mechanism"},
        {"{\"sasl_mechanisms\": [\"PLAIN\", 1]}", LEP_ERR_INVALID,
         "t.json:1:31: \"sasl_mechanisms\" must be a string, not a number"},
        {"{\"listen\": []}", LEP_ERR_INVALID, "t.json:1:12: \"listen\" must name at least one URL"},
        {"{\"listen\": 5672}", LEP_ERR_INVALID,
         "t.json:1:12: \"listen\" must be a URL or a list of URLs, not a number"},
        {"{\"listen\": [\"http://h:1\"]}", LEP_ERR_INVALID,
         "t.json:1:13: \"listen\": \"http://h:1\": unsupported scheme \"http\" (expected amqp "
         "or amqps)"},
        {"{\"listen\": [\"amqp://h:99999\"]}", LEP_ERR_INVALID,
         "t.json:1:13: \"listen\": \"amqp://h:99999\": port 99999 out of range (0-65535)"},
        {"{\"listen\": [\"amqp://u:p@h:1\"]}", LEP_ERR_INVALID,
         "t.json:1:13: \"listen\": \"amqp://u:p@h:1\": a listener URL takes no user or password "
         "(see users_file)"},
        {"{\"listen\": [\"amqp://h:1/queue.a\"]}", LEP_ERR_INVALID,
         "t.json:1:13: \"listen\": \"amqp://h:1/queue.a\": a listener URL takes no address"},
        {"{\"metrics_listen\": \"9100\"}", LEP_ERR_INVALID,
         "t.json:1:20: \"metrics_listen\": bad address \"9100\" (host:port, e.g. "
         "\"127.0.0.1:9100\")"},
        {"{\"metrics_listen\": \"::1:9100\"}", LEP_ERR_INVALID,
         "t.json:1:20: \"metrics_listen\": bad address \"::1:9100\" (host:port, e.g. "
         "\"127.0.0.1:9100\")"},
        {"{\"queues\": [{\"max_depth\": 1}]}", LEP_ERR_INVALID,
         "t.json:1:13: \"queues[0]\" has no \"name\""},
        {"{\"queues\": [{\"name\": \"\"}]}", LEP_ERR_INVALID,
         "t.json:1:22: \"queues[0].name\" must not be empty"},
        {"{\"queues\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", LEP_ERR_INVALID,
         "t.json:1:37: queue \"a\" is defined twice"},
        {"{\"acl\": [{\"address\": \"*\", \"allow\": \"all\"}]}", LEP_ERR_INVALID,
         "t.json:1:10: \"acl[0]\" has no \"user\" (\"*\" for everyone)"},
        {"{\"acl\": [{\"user\": \"*\", \"allow\": \"all\"}]}", LEP_ERR_INVALID,
         "t.json:1:10: \"acl[0]\" has no \"address\" (\"*\" for every address)"},
        {"{\"acl\": [{\"user\": \"*\", \"address\": \"*\"}]}", LEP_ERR_INVALID,
         "t.json:1:10: \"acl[0]\" has neither \"allow\" nor \"deny\""},
        {"{\"acl\": [{\"user\": \"*\", \"address\": \"*\", \"allow\": \"read\"}]}",
         LEP_ERR_INVALID,
         "t.json:1:49: \"acl[0].allow\": unknown right \"read\" (send, receive, create, manage, "
         "all)"},
        {"{\"acl\": [{\"user\": \"*\", \"address\": \"topic.*.x\", \"allow\": \"all\"}]}",
         LEP_ERR_INVALID,
         "t.json:1:35: \"acl[0].address\": pattern \"topic.*.x\" may have '*' only at its end"},
        {"{\"acl\": [{\"user\": \"\", \"address\": \"*\", \"allow\": \"all\"}]}", LEP_ERR_INVALID,
         "t.json:1:19: \"acl[0].user\": pattern \"\" is empty"},
        {"{\"acl\": [{\"user\": \"*\", \"address\": \"*\", \"deny\": 4}]}", LEP_ERR_INVALID,
         "t.json:1:48: \"acl[0].deny\" must be a right or a list of rights, not a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cfg_bad(cases[i].json, cases[i].rc, cases[i].msg);

    /* nesting is bounded; no name: "broker.json" */
    lep_broker_config_t c;
    assert_int_equal(lep_broker_config_init(&c), 0);
    const char *deep = "{\"acl\": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}";
    assert_int_equal(lep_broker_config_parse(&c, deep, strlen(deep), NULL), LEP_ERR_LIMIT);
    assert_non_null(strstr(c.error, "broker.json:1:"));
    lep_broker_config_fini(&c);
}

static void
test_setters(void **state)
{
    (void)state;
    lep_broker_config_t c;
    assert_int_equal(lep_broker_config_init(&c), 0);
    /* the first flag replaces the default, the next ones add */
    assert_int_equal(lep_broker_config_add_listen(&c, "amqp://0.0.0.0:5672"), 0);
    assert_int_equal(c.nlisten, 1);
    assert_false(c.listen_replace);
    assert_int_equal(lep_broker_config_add_listen(&c, "amqps://0.0.0.0:5671"), 0);
    assert_int_equal(c.nlisten, 2);
    assert_string_equal(c.listen[0], "amqp://0.0.0.0:5672");
    assert_string_equal(c.listen[1], "amqps://0.0.0.0:5671");
    assert_int_equal(lep_broker_config_add_listen(&c, "amqp://h:x"), LEP_ERR_INVALID);
    assert_string_equal(c.error, "listen \"amqp://h:x\": bad port \"x\"");
    assert_int_equal(c.nlisten, 2);
    /* a file's list, then flags: the flags win */
    const char *j = "{\"listen\": [\"amqp://a:1\", \"amqp://b:1\"]}";
    assert_int_equal(lep_broker_config_parse(&c, j, strlen(j), NULL), 0);
    assert_int_equal(c.nlisten, 2);
    assert_string_equal(c.listen[0], "amqp://a:1");
    assert_int_equal(lep_broker_config_add_listen(&c, "amqp://c:1"), 0);
    assert_int_equal(c.nlisten, 1);
    assert_string_equal(c.listen[0], "amqp://c:1");
    /* a file without "listen" leaves the flags' list alone */
    assert_int_equal(lep_broker_config_parse(&c, "{}", 2, NULL), 0);
    assert_int_equal(c.nlisten, 1);
    assert_false(c.listen_replace);

    assert_int_equal(lep_broker_config_set_str(&c.data_dir, "/tmp/x"), 0);
    assert_string_equal(c.data_dir, "/tmp/x");
    assert_int_equal(lep_broker_config_set_str(&c.metrics_listen, "127.0.0.1:0"), 0);
    assert_string_equal(c.metrics_listen, "127.0.0.1:0");
    assert_int_equal(lep_broker_config_set_str(&c.metrics_listen, NULL), 0);
    assert_null(c.metrics_listen);
    lep_broker_config_fini(&c);
}

static void
test_allow_anonymous(void **state)
{
    (void)state;
    lep_broker_config_t c;
    /* a users file turns the anonymous default off ... */
    cfg_ok(&c, "{\"users_file\": \"u.txt\"}");
    assert_false(c.allow_anonymous);
    assert_false(c.allow_anonymous_set);
    lep_broker_config_fini(&c);
    /* ... unless it is given, before or after */
    cfg_ok(&c, "{\"allow_anonymous\": true, \"users_file\": \"u.txt\"}");
    assert_true(c.allow_anonymous);
    lep_broker_config_fini(&c);
    cfg_ok(&c, "{\"allow_anonymous\": false}");
    assert_false(c.allow_anonymous);
    assert_true(c.allow_anonymous_set);
    lep_broker_config_fini(&c);
    /* a users file set by a flag: check() derives it */
    assert_int_equal(lep_broker_config_init(&c), 0);
    char dir[] = "/tmp/lepton-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char users[64];
    snprintf(users, sizeof users, "%s/users", dir);
    FILE *f = fopen(users, "w");
    assert_non_null(f);
    fputs("# test\nbob:PLAIN:pw\n", f);
    fclose(f);
    assert_int_equal(lep_broker_config_set_str(&c.users_file, users), 0);
    assert_int_equal(lep_broker_config_set_str(&c.data_dir, dir), 0);
    assert_true(c.allow_anonymous);
    assert_int_equal(lep_broker_config_check(&c), 0);
    assert_false(c.allow_anonymous);
    lep_broker_config_fini(&c);
    unlink(users);
    rmdir(dir);
}

/* ---- load ---- */

static char tmp[64];

static const char *
tmp_path(const char *name)
{
    static char p[4][128];
    static int next;
    char *s = p[next++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", tmp, name);
    return s;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static int
make_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/lepton-cfg-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    return make_certs(state);
}

static int
remove_tmp(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return -1;
    return remove_certs(state);
}

static void
test_load(void **state)
{
    (void)state;
    lep_broker_config_t c;
    char want[256];
    assert_int_equal(lep_broker_config_init(&c), 0);
    /* relative paths are relative to the file's directory */
    write_file(tmp_path("b.json"),
               "{\"data_dir\": \"data\", \"users_file\": \"etc/users\", \"tls_cert\": \"/abs.pem\","
               " \"tls_key\": \"../k.pem\", \"tls_ca\": \"./ca\"}");
    assert_int_equal(lep_broker_config_load(&c, tmp_path("b.json")), 0);
    snprintf(want, sizeof want, "%s/data", tmp);
    assert_string_equal(c.data_dir, want);
    snprintf(want, sizeof want, "%s/etc/users", tmp);
    assert_string_equal(c.users_file, want);
    assert_string_equal(c.tls_cert, "/abs.pem");
    snprintf(want, sizeof want, "%s/../k.pem", tmp);
    assert_string_equal(c.tls_key, want);
    snprintf(want, sizeof want, "%s/./ca", tmp);
    assert_string_equal(c.tls_ca, want);
    assert_string_equal(c.path, tmp_path("b.json"));
    /* errors carry the path */
    write_file(tmp_path("bad.json"), "{\n  \"fsync\": 1\n}\n");
    assert_int_equal(lep_broker_config_load(&c, tmp_path("bad.json")), LEP_ERR_INVALID);
    snprintf(want, sizeof want, "%s:2:12: \"fsync\" must be a boolean, not a number",
             tmp_path("bad.json"));
    assert_string_equal(c.error, want);
    assert_string_equal(c.path, tmp_path("b.json")); /* still the last good one */
    assert_int_equal(lep_broker_config_load(&c, tmp_path("none.json")), LEP_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
             tmp_path("none.json"));
    assert_string_equal(c.error, want);
    /* larger than 1 MiB */
    FILE *f = fopen(tmp_path("big.json"), "w");
    assert_non_null(f);
    fputc('{', f);
    for (int i = 0; i < (1 << 20); i++)
        fputc(' ', f);
    fputc('}', f);
    fclose(f);
    assert_int_equal(lep_broker_config_load(&c, tmp_path("big.json")), LEP_ERR_LIMIT);
    lep_broker_config_fini(&c);

    /* a file in the current directory: paths stay as written */
    char cwd[256];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmp), 0);
    assert_int_equal(lep_broker_config_init(&c), 0);
    assert_int_equal(lep_broker_config_load(&c, "b.json"), 0);
    assert_string_equal(c.data_dir, "data");
    assert_string_equal(c.users_file, "etc/users");
    lep_broker_config_fini(&c);
    assert_int_equal(chdir(cwd), 0);
}

/* ---- check ---- */

/* A checked configuration: data_dir in tmp, then the file's text over it. */
static int
check_json(lep_broker_config_t *c, const char *json)
{
    assert_int_equal(lep_broker_config_init(c), 0);
    assert_int_equal(lep_broker_config_set_str(&c->data_dir, tmp_path("data")), 0);
    int rc = lep_broker_config_parse(c, json, strlen(json), "t.json");
    if (rc)
        fail_msg("%s: %s", json, c->error);
    return lep_broker_config_check(c);
}

static void
check_ok(const char *json)
{
    lep_broker_config_t c;
    if (check_json(&c, json) != 0)
        fail_msg("refused: %s\n%s", json, c.error);
    lep_broker_config_fini(&c);
}

static void
check_bad(const char *json, const char *want)
{
    lep_broker_config_t c;
    int rc = check_json(&c, json);
    if (rc == 0)
        fail_msg("accepted: %s", json);
    assert_int_equal(rc, LEP_ERR_INVALID);
    if (strcmp(c.error, want) != 0)
        fail_msg("%s\n got: %s\nwant: %s", json, c.error, want);
    lep_broker_config_fini(&c);
}

/* JSON with each %s replaced by a credential's path (certs.h's cert()). */
static const char *
with_certs(const char *fmt, const char *a, const char *b, const char *d)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, fmt, a ? cert(a) : "", b ? cert(b) : "", d ? cert(d) : "");
    return buf;
}

static void
test_check(void **state)
{
    (void)state;
    char want[512];
    lep_broker_config_t c;

    /* the defaults pass, and 0 limits become the defaults */
    assert_int_equal(check_json(&c, "{\"max_connections\": 0, \"max_frame_size\": 0,"
                                    " \"max_message_size\": 0}"),
                     0);
    assert_int_equal(c.max_connections, 10000);
    assert_int_equal(c.max_frame_size, 65536);
    assert_int_equal(c.max_message_size, 100 * MIB);
    lep_broker_config_fini(&c);

    /* listeners */
    assert_int_equal(lep_broker_config_init(&c), 0);
    c.nlisten = 0;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "no listener: give at least one listen URL");
    c.nlisten = 1;
    lep_broker_config_fini(&c);
    assert_int_equal(lep_broker_config_init(&c), 0);
    assert_int_equal(lep_broker_config_set_str(&c.listen[0], "amqp://:1"), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "listen[0] \"amqp://:1\": empty host");
    lep_broker_config_fini(&c);
    check_bad("{\"listen\": [\"amqps://0.0.0.0:5671\"]}",
              "listen[0] \"amqps://0.0.0.0:5671\": an amqps listener needs tls_cert and tls_key");
    check_bad("{\"listen\": [\"amqp://h:1\", \"amqp://h:amqp\", \"amqp://h:5672\"]}",
              "listen[1] \"amqp://h:amqp\" and listen[2] \"amqp://h:5672\" are the same address");
    check_ok("{\"listen\": [\"amqp://h:0\", \"amqp://h:0\"]}"); /* port 0: two ports */
    check_bad("{\"metrics_listen\": \"127.0.0.1:5672\"}",
              "metrics_listen \"127.0.0.1:5672\" is also listen[0] \"amqp://127.0.0.1:5672\"");
    assert_int_equal(lep_broker_config_init(&c), 0);
    assert_int_equal(lep_broker_config_set_str(&c.metrics_listen, "9100"), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(
        c.error, "metrics_listen \"9100\": bad address (host:port, e.g. \"127.0.0.1:9100\")");
    lep_broker_config_fini(&c);

    /* TLS: the files are loaded as the listeners would */
    check_ok(with_certs("{\"listen\": [\"amqps://127.0.0.1:0\"], \"tls_cert\": \"%s\","
                        " \"tls_key\": \"%s\", \"tls_ca\": \"%s\","
                        " \"tls_require_client_cert\": true}",
                        "server.pem", "server.key", "ca.pem"));
    check_ok(with_certs("{\"listen\": [\"amqps://127.0.0.1:0\"], \"tls_cert\": \"%s\","
                        " \"tls_key\": \"%s\", \"tls_key_password\": \"secret\","
                        " \"tls_ca\": \"%s\"}",
                        "server.pem", "server-enc.key", "cadir"));
    snprintf(want, sizeof want, "tls_cert \"%s\", tls_key \"%s\": ", cert("server.pem"),
             cert("server-enc.key"));
    lep_broker_config_t c2;
    assert_int_equal(check_json(&c2, with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\","
                                                " \"tls_key_password\": \"wrong\"}",
                                                "server.pem", "server-enc.key", NULL)),
                     LEP_ERR_INVALID);
    assert_memory_equal(c2.error, want, strlen(want));
    lep_broker_config_fini(&c2);
    snprintf(want, sizeof want, "tls_cert \"%s\", tls_key \"%s\": ", cert("server.pem"),
             cert("client.key"));
    assert_int_equal(check_json(&c2, with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\"}",
                                                "server.pem", "client.key", NULL)),
                     LEP_ERR_INVALID);
    assert_memory_equal(c2.error, want, strlen(want)); /* a key of another certificate */
    lep_broker_config_fini(&c2);
    snprintf(want, sizeof want, "tls_cert \"%s\": No such file or directory", cert("nope.pem"));
    check_bad(with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\"}", "nope.pem", "server.key",
                         NULL),
              want);
    snprintf(want, sizeof want, "tls_key \"%s\": not a regular file", cert("cadir"));
    check_bad(with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\"}", "server.pem", "cadir",
                         NULL),
              want);
    snprintf(want, sizeof want, "tls_ca \"%s\": ", cert("server.key"));
    assert_int_equal(check_json(&c2, with_certs("{\"tls_ca\": \"%s\"}", "server.key", NULL, NULL)),
                     LEP_ERR_INVALID);
    assert_memory_equal(c2.error, want, strlen(want)); /* a key is not a CA certificate */
    lep_broker_config_fini(&c2);
    check_bad(with_certs("{\"tls_cert\": \"%s\"}", "server.pem", NULL, NULL),
              "tls_cert and tls_key go together: tls_key is not set");
    check_bad(with_certs("{\"tls_key\": \"%s\"}", "server.key", NULL, NULL),
              "tls_cert and tls_key go together: tls_cert is not set");
    check_bad("{\"tls_key_password\": \"x\"}", "tls_key_password is set but tls_key is not");
    check_bad("{\"tls_require_client_cert\": true}",
              "tls_require_client_cert needs tls_ca (the CAs client certificates are checked "
              "against)");
    check_bad(with_certs("{\"tls_ca\": \"%s\", \"tls_require_client_cert\": true}", "ca.pem", NULL,
                         NULL),
              "tls_require_client_cert is set but no listener is amqps");

    /* TLS versions and ciphers: OpenSSL judges the strings now, not at the
     * first connection; the message names the key */
    check_ok(with_certs("{\"listen\": [\"amqps://127.0.0.1:0\"], \"tls_cert\": \"%s\","
                        " \"tls_key\": \"%s\", \"tls_min_version\": \"1.3\","
                        " \"tls_ciphers\": \"ECDHE+AESGCM:!aNULL\","
                        " \"tls_ciphersuites\": \"TLS_AES_128_GCM_SHA256\"}",
                        "server.pem", "server.key", NULL));
    check_ok("{\"tls_ciphers\": \"HIGH:!aNULL:!MD5\"}"); /* no certificate needed to judge */
    check_ok("{\"tls_ciphersuites\": \"\"}");             /* TLS 1.2 only */
    assert_int_equal(check_json(&c2, "{\"tls_ciphers\": \"NO-SUCH-CIPHER\"}"), LEP_ERR_INVALID);
    snprintf(want, sizeof want, "tls_ciphers \"NO-SUCH-CIPHER\": OpenSSL refuses it: ");
    assert_memory_equal(c2.error, want, strlen(want));
    assert_non_null(strstr(c2.error, "no cipher match"));
    lep_broker_config_fini(&c2);
    assert_int_equal(check_json(&c2, "{\"tls_ciphers\": \"\"}"), LEP_ERR_INVALID);
    assert_memory_equal(c2.error, "tls_ciphers \"\": OpenSSL refuses it: ", 34);
    lep_broker_config_fini(&c2);
    assert_int_equal(check_json(&c2, with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\","
                                                " \"tls_ciphersuites\": \"TLS_NOPE\"}",
                                                "server.pem", "server.key", NULL)),
                     LEP_ERR_INVALID);
    snprintf(want, sizeof want, "tls_ciphersuites \"TLS_NOPE\": OpenSSL refuses it: ");
    assert_memory_equal(c2.error, want, strlen(want));
    lep_broker_config_fini(&c2);
    /* a TLS 1.2 cipher name is not a TLS 1.3 suite */
    assert_int_equal(check_json(&c2, "{\"tls_ciphersuites\": \"ECDHE-RSA-AES128-GCM-SHA256\"}"),
                     LEP_ERR_INVALID);
    assert_memory_equal(c2.error, "tls_ciphersuites \"ECDHE-RSA-AES128-GCM-SHA256\": ", 48);
    lep_broker_config_fini(&c2);
    check_bad("{\"tls_min_version\": \"1.3\", \"tls_ciphersuites\": \"\"}",
              "tls_ciphersuites \"\" turns TLS 1.3 off, but tls_min_version is \"1.3\": no client "
              "could connect");
    /* a version set by code is checked too */
    assert_int_equal(lep_broker_config_init(&c), 0);
    c.tls_min_version = 0x0302; /* TLS 1.1 */
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "tls_min_version 0x0302: LEP_TLS_1_2 or LEP_TLS_1_3");
    lep_broker_config_fini(&c);

    /* lep_broker_config_tls: the listeners' configuration, or the reason */
    lep_tls_config_t *t = (lep_tls_config_t *)&c;
    assert_int_equal(check_json(&c, with_certs("{\"tls_cert\": \"%s\", \"tls_key\": \"%s\","
                                               " \"tls_ca\": \"%s\", \"tls_min_version\": \"1.3\"}",
                                               "server.pem", "server.key", "cadir")),
                     0);
    assert_int_equal(lep_broker_config_tls(&c, &t), 0);
    assert_non_null(t);
    lep_tls_config_free(t);
    assert_int_equal(lep_broker_config_set_str(&c.tls_ciphers, "BOGUS"), 0);
    assert_int_equal(lep_broker_config_tls(&c, &t), LEP_ERR_INVALID);
    assert_null(t);
    assert_memory_equal(c.error, "tls_ciphers \"BOGUS\": ", 21);
    lep_broker_config_fini(&c);

    /* SASL and the users file */
    lep_buf_t b;
    lep_buf_init(&b);
    assert_int_equal(lep_sasl_users_entry(&b, "alice", "SCRAM-SHA-256", "pw", 64), 0);
    assert_int_equal(lep_sasl_users_entry(&b, "bob", "PLAIN", "pw", 0), 0);
    assert_int_equal(lep_buf_append(&b, "", 1), 0);
    write_file(tmp_path("users"), (const char *)b.data);
    lep_buf_fini(&b);
    write_file(tmp_path("users-bad"), "alice:SCRAM-SHA-256:4096:nonsense\n");
    char json[512];
    snprintf(json, sizeof json,
             "{\"users_file\": \"%s\", \"sasl_mechanisms\": \"SCRAM-SHA-256 PLAIN\"}",
             tmp_path("users"));
    check_ok(json);
    snprintf(json, sizeof json, "{\"users_file\": \"%s\"}", tmp_path("users-bad"));
    assert_int_equal(check_json(&c, json), LEP_ERR_INVALID);
    snprintf(want, sizeof want, "users_file: %s:1: ", tmp_path("users-bad"));
    assert_memory_equal(c.error, want, strlen(want));
    lep_broker_config_fini(&c);
    snprintf(json, sizeof json, "{\"users_file\": \"%s\"}", tmp_path("none"));
    snprintf(want, sizeof want, "users_file \"%s\": No such file or directory", tmp_path("none"));
    check_bad(json, want);
    check_bad("{\"sasl_mechanisms\": \"PLAIN\"}",
              "sasl_mechanisms lists PLAIN but no users_file is set");
    check_bad("{\"sasl_mechanisms\": \"ANONYMOUS SCRAM-SHA-512\"}",
              "sasl_mechanisms lists SCRAM-SHA-512 but no users_file is set");
    check_bad("{\"sasl_mechanisms\": \"ANONYMOUS\", \"allow_anonymous\": false}",
              "sasl_mechanisms lists ANONYMOUS but allow_anonymous is false");
    check_bad("{\"sasl_mechanisms\": \"EXTERNAL\"}",
              "sasl_mechanisms lists EXTERNAL, which needs client certificates: set tls_ca");
    check_bad("{\"allow_anonymous\": false}",
              "nobody can log in: set users_file, or allow_anonymous, or client certificates "
              "(tls_ca with EXTERNAL)");
    check_ok(with_certs("{\"allow_anonymous\": false, \"tls_ca\": \"%s\"}", "ca.pem", NULL, NULL));
    assert_int_equal(lep_broker_config_init(&c), 0);
    assert_int_equal(lep_broker_config_set_str(&c.sasl_mechanisms, "PLAIN,ANONYMOUS"), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "sasl_mechanisms: unknown mechanism \"PLAIN,ANONYMOUS\"");
    lep_broker_config_fini(&c);

    /* addresses */
    check_bad("{\"queue_prefix\": \"a.\", \"topic_prefix\": \"a.b.\"}",
              "queue_prefix \"a.\" and topic_prefix \"a.b.\" overlap: an address would be both");
    check_bad("{\"queue_prefix\": \"x\", \"topic_prefix\": \"x\"}",
              "queue_prefix \"x\" and topic_prefix \"x\" overlap: an address would be both");
    check_ok("{\"queue_prefix\": \"q.\", \"topic_prefix\": \"t.\", \"dead_letter_address\": \"\"}");
    check_bad("{\"dead_letter_address\": \"topic.dead\"}",
              "dead_letter_address \"topic.dead\" is a topic (prefix \"topic.\"); dead letters "
              "go to a queue");
    check_bad("{\"subscription_defaults\": {\"dead_letter_address\": \"topic.x\"}}",
              "subscription_defaults: dead_letter_address \"topic.x\" is a topic (prefix "
              "\"topic.\"); dead letters go to a queue");
    check_bad("{\"queues\": [{\"name\": \"topic.x\"}]}",
              "queues[0] \"topic.x\": a queue's name must not start with topic_prefix \"topic.\"");
    check_bad("{\"queues\": [{\"name\": \"$management\"}]}",
              "queues[0] \"$management\": names starting with '$' are reserved");
    check_bad("{\"queues\": [{\"name\": \"a\", \"dead_letter_address\": \"topic.a\"}]}",
              "queues[0] \"a\": dead_letter_address \"topic.a\" is a topic (prefix \"topic.\"); "
              "dead letters go to a queue");
    check_ok("{\"queues\": [{\"name\": \"queue.a\"}, {\"name\": \"plain-name\"}]}");
    /* a later topic_prefix change still catches an existing queue */
    assert_int_equal(check_json(&c, "{\"queues\": [{\"name\": \"queue.a\"}]}"), 0);
    assert_int_equal(lep_broker_config_set_str(&c.topic_prefix, "queue.a"), 0);
    assert_int_equal(lep_broker_config_set_str(&c.queue_prefix, "q."), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    lep_broker_config_fini(&c);

    /* access rules built by code are checked too */
    assert_int_equal(check_json(&c, "{\"acl\": [{\"user\": \"*\", \"address\": \"*\","
                                    " \"allow\": \"all\"}]}"),
                     0);
    c.acl[0].allow = 0;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "acl[0]: the rule allows and denies nothing");
    c.acl[0].allow = 16;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "acl[0]: unknown rights 0x10");
    c.acl[0].allow = LEP_ACL_SEND;
    assert_int_equal(lep_broker_config_set_str(&c.acl[0].address, "a*b"), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "acl[0]: address pattern \"a*b\" may have '*' only at its end");
    lep_free(c.acl[0].user);
    c.acl[0].user = NULL;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "acl[0]: user pattern \"\" is missing");
    lep_broker_config_fini(&c);

    /* the rest */
    write_file(tmp_path("afile"), "x");
    snprintf(json, sizeof json, "{\"data_dir\": \"%s\"}", tmp_path("afile"));
    assert_int_equal(lep_broker_config_init(&c), 0);
    assert_int_equal(lep_broker_config_parse(&c, json, strlen(json), NULL), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    snprintf(want, sizeof want, "data_dir \"%s\" exists and is not a directory",
             tmp_path("afile"));
    assert_string_equal(c.error, want);
    assert_int_equal(lep_broker_config_set_str(&c.data_dir, tmp), 0);
    assert_int_equal(lep_broker_config_check(&c), 0); /* an existing directory is fine */
    assert_int_equal(lep_broker_config_set_str(&c.log_level, "loud"), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "log_level \"loud\": one of error, warn, info, debug, trace");
    assert_int_equal(lep_broker_config_set_str(&c.log_level, "trace"), 0);
    c.threads = -1;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "threads -1: from 0 (one per CPU) to 1024");
    c.threads = 2;
    c.max_frame_size = 100;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "max_frame_size 100: at least 512 bytes");
    c.max_frame_size = 512;
    c.max_connections = 10;
    c.max_connections_per_user = 11;
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "max_connections_per_user 11 is more than max_connections 10");
    c.max_connections_per_user = 10;
    assert_int_equal(lep_broker_config_set_str(&c.container_id, ""), 0);
    assert_int_equal(lep_broker_config_check(&c), LEP_ERR_INVALID);
    assert_string_equal(c.error, "container_id must not be empty");
    assert_int_equal(lep_broker_config_set_str(&c.container_id, "x"), 0);
    assert_int_equal(lep_broker_config_check(&c), 0);
    lep_broker_config_fini(&c);
}

/* ---- access rules ---- */

static void
test_acl(void **state)
{
    (void)state;
    /* no rules: everything for everyone */
    assert_int_equal(lep_acl_check(NULL, 0, "x", "y"), LEP_ACL_ALL);
    assert_int_equal(lep_acl_check(NULL, 0, NULL, NULL), LEP_ACL_ALL);

    lep_broker_config_t c;
    cfg_ok(&c, "{\"acl\": [\n"
               "  {\"user\": \"admin\", \"address\": \"*\", \"allow\": \"all\"},\n"
               "  {\"user\": \"*\", \"address\": \"queue.payroll*\", \"deny\": \"all\"},\n"
               "  {\"user\": \"auditor\", \"address\": \"queue.audit\", \"allow\": \"receive\"},\n"
               "  {\"user\": \"*\", \"address\": \"queue.audit\", \"allow\": \"send\","
               "   \"deny\": \"receive\"},\n"
               "  {\"user\": \"anonymous\", \"address\": \"*\", \"allow\": \"receive\"},\n"
               "  {\"user\": \"svc-*\", \"address\": \"queue.orders*\","
               "   \"allow\": [\"send\", \"receive\"], \"deny\": \"send\"},\n"
               "  {\"user\": \"*\", \"address\": \"topic.*\", \"allow\": [\"send\", \"receive\","
               "   \"create\"]}\n"
               "]}");
    const lep_acl_rule_t *r = c.acl;
    size_t n = c.nacl;
    static const struct {
        const char *user, *address;
        unsigned want;
    } cases[] = {
        {"admin", "queue.payroll", LEP_ACL_ALL}, /* the first rule decides everything */
        {"admin", "", LEP_ACL_ALL},
        {"bob", "queue.payroll", 0},
        {"bob", "queue.payroll.eu", 0},
        {"bob", "queue.payrol", 0},             /* no rule: denied */
        {"auditor", "queue.audit", 1 | 2},      /* receive from its rule, send from the next */
        {"bob", "queue.audit", 1},
        {"bob", "queue.audit2", 0},             /* exact pattern */
        {"anonymous", "queue.x", 2},
        {NULL, "queue.x", 2},                   /* no SASL: anonymous */
        {"anonymous", "topic.a.b", 1 | 2 | 4},  /* "*" includes anonymous */
        {"anonymous", "queue.audit", 1},        /* receive denied before its own rule */
        {"svc-billing", "queue.orders", 2},     /* deny wins within a rule */
        {"svc-", "queue.orders.eu", 2},
        {"svc", "queue.orders", 0},
        {"bob", "topic.x", 1 | 2 | 4},
        {"bob", "topic.", 1 | 2 | 4},
        {"bob", "topic", 0},
        {"bob", NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned got = lep_acl_check(r, n, cases[i].user, cases[i].address);
        if (got != cases[i].want)
            fail_msg("%s on %s: got %u, want %u", cases[i].user ? cases[i].user : "(null)",
                     cases[i].address ? cases[i].address : "(null)", got, cases[i].want);
    }
    lep_broker_config_fini(&c);

    /* deny of one right does not decide the others */
    lep_acl_rule_t two[] = {
        {.user = "*", .address = "a*", .deny = LEP_ACL_MANAGE},
        {.user = "*", .address = "*", .allow = LEP_ACL_ALL},
    };
    assert_int_equal(lep_acl_check(two, 2, "u", "ab"),
                     LEP_ACL_SEND | LEP_ACL_RECEIVE | LEP_ACL_CREATE);
    assert_int_equal(lep_acl_check(two, 2, "u", "b"), LEP_ACL_ALL);
    /* a NULL pattern (code-built rule) matches nothing; bits beyond ALL are ignored */
    lep_acl_rule_t odd[] = {
        {.user = NULL, .address = "*", .allow = LEP_ACL_ALL},
        {.user = "*", .address = "*", .allow = 0xff},
    };
    assert_int_equal(lep_acl_check(odd, 2, "u", "x"), LEP_ACL_ALL);
    assert_int_equal(lep_acl_check(odd, 1, "u", "x"), 0);
}

/* ---- allocation failures ---- */

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

static void
test_nomem(void **state)
{
    (void)state;
    lep_allocator_t a = {fmalloc, frealloc, ffree, NULL};
    lep_set_allocator(&a);
    bool succeeded = false;
    for (int i = 0; i < 2000 && !succeeded; i++) {
        allocs = 0;
        fail_countdown = i;
        lep_broker_config_t c;
        int rc = lep_broker_config_init(&c);
        if (rc == 0)
            rc = lep_broker_config_parse(&c, full, strlen(full), "x.json");
        if (rc == 0)
            rc = lep_broker_config_add_listen(&c, "amqp://h:1");
        if (rc == 0)
            rc = lep_broker_config_add_listen(&c, "amqp://h:2");
        if (rc == 0) {
            succeeded = true;
            assert_int_equal(c.nlisten, 2);
        } else {
            assert_int_equal(rc, LEP_ERR_NOMEM);
            if (c.error[0] && strcmp(c.error, "out of memory") != 0)
                assert_string_equal(c.error, "x.json: out of memory");
        }
        lep_broker_config_fini(&c);
        assert_int_equal(allocs, 0);
    }
    assert_true(succeeded);
    /* load, with its path joining */
    write_file(tmp_path("n.json"), "{\"users_file\": \"u\", \"data_dir\": \"d\"}");
    succeeded = false;
    for (int i = 0; i < 200 && !succeeded; i++) {
        allocs = 0;
        fail_countdown = i;
        lep_broker_config_t c;
        int rc = lep_broker_config_init(&c);
        if (rc == 0)
            rc = lep_broker_config_load(&c, tmp_path("n.json"));
        if (rc == 0)
            succeeded = true;
        else
            assert_int_equal(rc, LEP_ERR_NOMEM);
        lep_broker_config_fini(&c);
        assert_int_equal(allocs, 0);
    }
    assert_true(succeeded);
    fail_countdown = -1;
    lep_set_allocator(NULL);
}

/* ---- docs/broker.md ---- */

static char *
read_doc(void)
{
    const char *src = getenv("LEPTON_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/docs/broker.md", src ? src : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (is LEPTON_SOURCE_DIR set?)", path);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The fenced block after marker: a view into doc, NUL-terminated in place. */
static char *
doc_block(char *doc, const char *marker, char **next)
{
    char *m = strstr(doc, marker);
    if (!m)
        return NULL;
    char *open = strstr(m, "```");
    char *body = open ? strchr(open, '\n') : NULL;
    char *close = body ? strstr(body, "\n```") : NULL;
    if (!close)
        fail_msg("unterminated block after %s", marker);
    close[1] = '\0';
    *next = close + 2;
    return body + 1;
}

static void
test_doc_examples(void **state)
{
    (void)state;
    char *doc = read_doc(), *next;
    int blocks = 0;
    for (char *p = doc, *b; (b = doc_block(p, "<!-- example", &next)) != NULL; p = next) {
        lep_broker_config_t c;
        assert_int_equal(lep_broker_config_init(&c), 0);
        if (lep_broker_config_parse(&c, b, strlen(b), "docs/broker.md example") != 0)
            fail_msg("%s\n%s", c.error, b);
        if (blocks == 0) { /* the annotated one: a few spot checks */
            assert_int_equal(c.nlisten, 2);
            assert_int_equal(c.max_frame_size, 65536);
            assert_int_equal(c.max_message_size, 10 * MIB);
            assert_false(c.allow_anonymous);
            assert_int_equal(c.nqueues, 3);
            assert_int_equal(c.queues[2].policy.overflow, LEP_OVERFLOW_REJECT);
            assert_int_equal(c.queues[2].policy.max_bytes, 1024 * MIB);
            assert_int_equal(lep_acl_check(c.acl, c.nacl, "auditor", "queue.audit"),
                             LEP_ACL_SEND | LEP_ACL_RECEIVE);
            assert_int_equal(lep_acl_check(c.acl, c.nacl, "bob", "queue.audit"), LEP_ACL_SEND);
            assert_int_equal(lep_acl_check(c.acl, c.nacl, "billing", "queue.orders"),
                             LEP_ACL_SEND | LEP_ACL_RECEIVE);
            assert_int_equal(lep_acl_check(c.acl, c.nacl, "bob", "queue.orders.failed"),
                             LEP_ACL_SEND);
            assert_int_equal(lep_acl_check(c.acl, c.nacl, "bob", "queue.other"), 0);
        }
        lep_broker_config_fini(&c);
        blocks++;
    }
    assert_int_equal(blocks, 2);

    /* the ACL snippet, inside an object */
    doc = read_doc();
    char *acl = strstr(doc, "```jsonc\n\"acl\"");
    assert_non_null(acl);
    acl += 8;
    char *end = strstr(acl, "\n```");
    assert_non_null(end);
    char json[2048];
    snprintf(json, sizeof json, "{%.*s}", (int)(end - acl), acl);
    lep_broker_config_t c;
    cfg_ok(&c, json);
    assert_int_equal(lep_acl_check(c.acl, c.nacl, "bob", "queue.payroll"), 0);
    assert_int_equal(lep_acl_check(c.acl, c.nacl, "anonymous", "queue.payroll"), 0);
    assert_int_equal(lep_acl_check(c.acl, c.nacl, "anonymous", "queue.x"), LEP_ACL_RECEIVE);
    assert_int_equal(lep_acl_check(c.acl, c.nacl, "bob", "queue.x"),
                     LEP_ACL_ALL & ~LEP_ACL_MANAGE);
    lep_broker_config_fini(&c);
}

/* The users script of the docs makes lines lepton reads and checks. */
static void
test_doc_users_script(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        skip();
        return;
    }
    char *doc = read_doc(), *next;
    char *script = doc_block(doc, "<!-- users-script", &next);
    assert_non_null(script);
    write_file(tmp_path("users.py"), script);
    const char *mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL};
    lep_buf_t b;
    lep_buf_init(&b);
    for (int i = 0; i < 4; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "LEPTON_PASSWORD='p4ss w:rd' /usr/bin/python3 '%s' alice %s %s",
                 tmp_path("users.py"), mechs[i] ? mechs[i] : "", mechs[i] ? "64" : "");
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char line[512];
        assert_non_null(fgets(line, sizeof line, p));
        assert_int_equal(pclose(p), 0);
        if (i == 3) { /* no mechanism given: SCRAM-SHA-256, 4096 iterations */
            assert_memory_equal(line, "alice:SCRAM-SHA-256:4096:", 25);
            continue;
        }
        assert_int_equal(lep_buf_append(&b, line, strlen(line)), 0);
    }
    lep_sasl_users_t *u;
    char err[256];
    if (lep_sasl_users_parse(&u, (const char *)b.data, b.len, "script", err, sizeof err) != 0)
        fail_msg("%s\n%.*s", err, (int)b.len, (const char *)b.data);
    lep_buf_fini(&b);
    for (int i = 0; mechs[i]; i++)
        assert_true(lep_sasl_users_has(u, lep_bytes_str("alice"), mechs[i]));
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("alice"), lep_bytes_str("p4ss w:rd")),
                     0);
    assert_int_equal(lep_sasl_users_check(u, lep_bytes_str("alice"), lep_bytes_str("p4ss")),
                     LEP_ERR_INVALID);
    lep_sasl_users_free(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_setters),
        cmocka_unit_test(test_allow_anonymous),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_acl),
        cmocka_unit_test(test_nomem),
        cmocka_unit_test(test_doc_examples),
        cmocka_unit_test(test_doc_users_script),
    };
    return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
