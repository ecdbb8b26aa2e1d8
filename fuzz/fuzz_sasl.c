/* Fuzz target: arbitrary peer bytes into a SASL client or server layer on a
 * real connection.  The first byte picks the role and options (insecure
 * PLAIN allowed, optional SASL, offered mechanisms, TLS identity); the rest
 * is what the peer sends. */
#include <lepton/sasl.h>
#include <stdlib.h>
#include <string.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static lep_sasl_users_t *users;
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!users) {
        lep_buf_t b; lep_buf_init(&b);
        lep_sasl_users_entry(&b, "user", "SCRAM-SHA-256", "pass", 2);
        lep_sasl_users_entry(&b, "user", "SCRAM-SHA-1", "pass", 2);
        lep_sasl_users_entry(&b, "user", "SCRAM-SHA-512", "pass", 2);
        lep_sasl_users_entry(&b, "pat", "PLAIN", "pw", 0);
        lep_sasl_users_parse(&users, (const char *)b.data, b.len, "f", NULL, 0);
        lep_buf_fini(&b);
    }
    uint8_t sel = data[0];
    data++; size--;
    lep_conn_opts_t co; lep_conn_opts_init(&co);
    co.server = !(sel & 1);
    lep_conn_t *c;
    if (lep_conn_new(&c, &co)) return 0;
    lep_sasl_t *s;
    if (co.server) {
        lep_sasl_server_opts_t so; lep_sasl_server_opts_init(&so);
        so.users = users; so.allow_insecure = sel & 2; so.optional = sel & 4;
        so.scram_iterations = 2;
        if (sel & 8) so.mechanisms = "ANONYMOUS PLAIN EXTERNAL SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-512";
        if (sel & 16) lep_conn_set_user(c, lep_bytes_str("CN=x"));
        lep_sasl_server_add(c, &so, &s);
    } else {
        lep_sasl_client_opts_t so; lep_sasl_client_opts_init(&so);
        so.username = "user"; so.password = "pass"; so.allow_insecure = sel & 2;
        so.authzid = (sel & 4) ? "az" : NULL;
        if (sel & 8) so.mechanisms = "EXTERNAL SCRAM-SHA-1 PLAIN";
        if (sel & 16) lep_conn_set_encrypted(c, true);
        lep_sasl_client_add(c, &so, &s);
    }
    lep_conn_open(c);
    size_t chunk = (sel >> 5) ? (size_t)(sel >> 5) * 3 : size;
    size_t pos = 0;
    while (pos < size) {
        size_t n = size - pos < chunk ? size - pos : chunk, used;
        lep_bytes_t o = lep_conn_output(c);
        lep_conn_consumed(c, o.len);
        if (lep_conn_feed(c, data + pos, n, &used)) break;
        pos += n;
        while (lep_conn_next_event(c)) {}
    }
    lep_conn_input_closed(c);
    lep_bytes_t o = lep_conn_output(c);
    lep_conn_consumed(c, o.len);
    while (lep_conn_next_event(c)) {}
    (void)lep_sasl_outcome(s); (void)lep_sasl_error(s);
    lep_conn_free(c);
    return 0;
}
