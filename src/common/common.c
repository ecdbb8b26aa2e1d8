/* Error strings, byte views, growable buffers and the allocation hook. */
#include <lepton/common.h>

#include "common/common_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
lep_strerror(int err)
{
    switch (err) {
    case LEP_OK:             return "success";
    case LEP_ERR_NOMEM:      return "out of memory";
    case LEP_ERR_DECODE:     return "malformed encoding";
    case LEP_ERR_TYPE:       return "unexpected type";
    case LEP_ERR_INCOMPLETE: return "input ends inside a value or frame";
    case LEP_ERR_OVERFLOW:   return "output buffer too small";
    case LEP_ERR_LIMIT:      return "limit exceeded";
    case LEP_ERR_FRAME_SIZE: return "frame larger than max-frame-size";
    case LEP_ERR_INVALID:    return "invalid argument";
    case LEP_ERR_UTF8:       return "string is not valid UTF-8";
    case LEP_ERR_SYMBOL:     return "symbol is not ASCII";
    case LEP_ERR_FRAMING:    return "bad frame or protocol header";
    case LEP_ERR_NOT_FOUND:  return "not found";
    case LEP_ERR_STATE:      return "not allowed in this state";
    case LEP_ERR_IO:         return "I/O error";
    default:                 return "unknown error";
    }
}

lep_bytes_t
lep_bytes_str(const char *s)
{
    return (lep_bytes_t){(const uint8_t *)s, s ? strlen(s) : 0};
}

bool
lep_bytes_eq(lep_bytes_t a, lep_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool
lep_bytes_eq_str(lep_bytes_t a, const char *s)
{
    return lep_bytes_eq(a, lep_bytes_str(s));
}

/* ---- allocation hook ---- */

static void *
std_malloc(size_t n, void *ctx)
{
    (void)ctx;
    return malloc(n);
}

static void *
std_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    return realloc(p, n);
}

static void
std_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

/* Set once by the embedding program before any other call; read-only
 * afterwards, so it is configuration rather than shared mutable state. */
static lep_allocator_t alloc_hook = {std_malloc, std_realloc, std_free, NULL};

void
lep_set_allocator(const lep_allocator_t *a)
{
    if (a)
        alloc_hook = *a;
    else
        alloc_hook = (lep_allocator_t){std_malloc, std_realloc, std_free, NULL};
}

void *
lep_malloc(size_t n)
{
    return alloc_hook.malloc_fn(n ? n : 1, alloc_hook.ctx);
}

void *
lep_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = lep_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *
lep_realloc(void *p, size_t n)
{
    if (!p)
        return lep_malloc(n);
    return alloc_hook.realloc_fn(p, n ? n : 1, alloc_hook.ctx);
}

void
lep_free(void *p)
{
    if (p)
        alloc_hook.free_fn(p, alloc_hook.ctx);
}

/* ---- buffers ---- */

void
lep_buf_init(lep_buf_t *b)
{
    *b = (lep_buf_t){0};
}

void
lep_buf_init_fixed(lep_buf_t *b, void *mem, size_t cap)
{
    *b = (lep_buf_t){.data = mem, .len = 0, .cap = cap, .fixed = true};
}

void
lep_buf_fini(lep_buf_t *b)
{
    if (!b->fixed)
        lep_free(b->data);
    *b = (lep_buf_t){0};
}

int
lep_buf_reserve(lep_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    if (b->fixed)
        return LEP_ERR_OVERFLOW;
    if (n > SIZE_MAX / 2 - b->len)
        return LEP_ERR_NOMEM;
    size_t want = b->len + n;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    uint8_t *d = lep_realloc(b->data, cap);
    if (!d)
        return LEP_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int
lep_buf_append(lep_buf_t *b, const void *p, size_t n)
{
    int rc = lep_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
lep_buf_printf(lep_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return LEP_ERR_INVALID;
    if ((size_t)n < sizeof small)
        return lep_buf_append(b, small, (size_t)n);
    if (!b->fixed || b->cap - b->len > (size_t)n) {
        int rc = lep_buf_reserve(b, (size_t)n + 1);
        if (rc)
            return rc;
        va_start(ap, fmt);
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
    }
    if (b->cap - b->len < (size_t)n)
        return LEP_ERR_OVERFLOW;
    /* Fits a fixed buffer exactly, without room for vsnprintf's NUL. */
    char *tmp = lep_malloc((size_t)n + 1);
    if (!tmp)
        return LEP_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = lep_buf_append(b, tmp, (size_t)n);
    lep_free(tmp);
    return rc;
}

char *
lepi_memdup(const void *p, size_t n)
{
    char *s = lep_malloc(n + 1);
    if (!s)
        return NULL;
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

char *
lepi_strdup(const char *s)
{
    return s ? lepi_memdup(s, strlen(s)) : NULL;
}
