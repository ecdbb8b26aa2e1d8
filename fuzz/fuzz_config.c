/* Fuzz target: arbitrary text as a connect.json file (through the strict
 * JSON parser, with and without comments) and as an AMQP URL.  The first
 * byte picks the mode; no crash, no leak, and errors always carry a
 * message. */
#include <lepton/messaging_config.h>

#include "messaging/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint8_t mode = data[0] % 3;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    if (mode == 0) {
        lep_connect_config_t c;
        if (lep_connect_config_init(&c) == 0) {
            int rc = lep_connect_config_parse(&c, text, len, "fuzz.json");
            if (rc != 0 && rc != LEP_ERR_NOMEM && c.error[0] == '\0')
                abort(); /* every failure explains itself */
        }
        lep_connect_config_fini(&c);
    } else if (mode == 1) {
        lepi_json_opts_t o = {.max_depth = 0, .comments = true};
        lepi_json_t *v = NULL;
        char err[128];
        if (lepi_json_parse(text, len, &o, &v, err, sizeof err) == 0)
            lepi_json_free(v);
    } else {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, text, len);
        s[len] = '\0';
        lep_url_t u;
        int rc = lep_url_parse(s, &u);
        if (rc == LEP_ERR_INVALID && u.error[0] == '\0')
            abort();
        lep_url_fini(&u); /* needed after a failure too */
        free(s);
    }
    return 0;
}
