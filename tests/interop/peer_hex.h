/* Hex helpers shared by the interop peers (header-only): the Python side
 * passes encodings as hex text, one per line. */
#ifndef LEPTON_INTEROP_PEER_HEX_H
#define LEPTON_INTEROP_PEER_HEX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Decodes n hex digits into a malloc'd buffer; -1 on odd length or a bad
 * digit. */
static int
hex_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    if (n % 2)
        return -1;
    uint8_t *b = malloc(n / 2 + 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(b);
            return -1;
        }
        b[i] = (uint8_t)v;
    }
    *out = b;
    *outlen = n / 2;
    return 0;
}

static void
hex_print(const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putchar(hx[p[i] >> 4]);
        putchar(hx[p[i] & 15]);
    }
}

#endif
