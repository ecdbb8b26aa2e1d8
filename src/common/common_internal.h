/* Internal helpers every layer shares. */
#ifndef LEPTON_COMMON_INTERNAL_H
#define LEPTON_COMMON_INTERNAL_H

#include <lepton/common.h>

/* A NUL-terminated copy of n bytes (lep_malloc); NULL when out of memory. */
char *lepi_memdup(const void *p, size_t n);
/* A copy of s (lep_malloc); NULL for NULL or when out of memory. */
char *lepi_strdup(const char *s);

#endif
