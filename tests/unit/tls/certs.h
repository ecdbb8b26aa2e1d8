/* Test credentials for the TLS tests: made at run time by
 * tests/tls/make-certs.sh into a temp dir (cmocka group setup/teardown),
 * found through LEPTON_SOURCE_DIR, which ctest sets.  Header-only. */
#ifndef LEPTON_TEST_TLS_CERTS_H
#define LEPTON_TEST_TLS_CERTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char certdir[256];

/* Path of a credential file; up to 8 results may be live at once. */
static const char *
cert(const char *name)
{
    static char paths[8][320];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", certdir, name);
    return p;
}

static int
make_certs(void **state)
{
    const char *src = getenv("LEPTON_SOURCE_DIR");
    char cmd[768];

    (void)state;
    snprintf(certdir, sizeof certdir, "/tmp/lepton-tls-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tls/make-certs.sh' '%s'", src ? src : ".", certdir);
    if (system(cmd) == 0)
        return 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", certdir);
    fprintf(stderr, "make-certs.sh failed (is LEPTON_SOURCE_DIR set?)\n");
    return -1;
}

static int
remove_certs(void **state)
{
    char cmd[320];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
