/* lepton: definitions shared by every layer.
 *
 * Error codes, byte views, growable buffers, the allocation hook and the
 * export macro.  Every other public header includes this one. */
#ifndef LEPTON_COMMON_H
#define LEPTON_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LEPTON_BUILDING) && defined(__GNUC__)
#define LEP_EXPORT __attribute__((visibility("default")))
#else
#define LEP_EXPORT
#endif

#define LEP_VERSION_MAJOR 0
#define LEP_VERSION_MINOR 1
#define LEP_VERSION_PATCH 0
#define LEP_VERSION_STRING "0.1.0"

/* Functions that can fail return 0 or one of these negative codes. */
typedef enum lep_err {
    LEP_OK = 0,
    LEP_ERR_NOMEM = -1,       /* allocation failed */
    LEP_ERR_DECODE = -2,      /* malformed encoding (peer: amqp:decode-error) */
    LEP_ERR_TYPE = -3,        /* well-formed, but not the type expected */
    LEP_ERR_INCOMPLETE = -4,  /* input ends before the value or frame does */
    LEP_ERR_OVERFLOW = -5,    /* fixed output buffer too small */
    LEP_ERR_LIMIT = -6,       /* a configured limit (depth, size, count) was hit */
    LEP_ERR_FRAME_SIZE = -7,  /* frame larger than max-frame-size (amqp:frame-size-too-small on the peer side) */
    LEP_ERR_INVALID = -8,     /* invalid argument from the caller */
    LEP_ERR_UTF8 = -9,        /* string is not valid UTF-8 */
    LEP_ERR_SYMBOL = -10,     /* symbol is not 7-bit ASCII */
    LEP_ERR_FRAMING = -11,    /* bad frame header or protocol header (amqp:connection:framing-error) */
    LEP_ERR_NOT_FOUND = -12,  /* no such key or field */
    LEP_ERR_STATE = -13,      /* call not valid in the object's current state */
    LEP_ERR_IO = -14,         /* operating-system I/O error */
} lep_err_t;

/* Returns a static, human-readable description of an error code. */
LEP_EXPORT const char *lep_strerror(int err);

/* A view of bytes owned by someone else.  Every function returning one says
 * how long it stays valid. */
typedef struct lep_bytes {
    const uint8_t *ptr;
    size_t len;
} lep_bytes_t;

#define LEP_BYTES(p, n) ((lep_bytes_t){(const uint8_t *)(p), (n)})
/* View of a NUL-terminated C string (not including the NUL). */
LEP_EXPORT lep_bytes_t lep_bytes_str(const char *s);
LEP_EXPORT bool lep_bytes_eq(lep_bytes_t a, lep_bytes_t b);
LEP_EXPORT bool lep_bytes_eq_str(lep_bytes_t a, const char *s);

/* A growable byte buffer.  Caller-embedded: lep_buf_init / lep_buf_fini.
 * A buffer initialised with lep_buf_init_fixed never grows and reports
 * LEP_ERR_OVERFLOW instead. */
typedef struct lep_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool fixed; /* data is borrowed, capacity cannot grow */
} lep_buf_t;

LEP_EXPORT void lep_buf_init(lep_buf_t *b);
/* Borrows mem (cap bytes) for the buffer's lifetime. */
LEP_EXPORT void lep_buf_init_fixed(lep_buf_t *b, void *mem, size_t cap);
LEP_EXPORT void lep_buf_fini(lep_buf_t *b);
/* Makes room for at least n more bytes after len. */
LEP_EXPORT int lep_buf_reserve(lep_buf_t *b, size_t n);
LEP_EXPORT int lep_buf_append(lep_buf_t *b, const void *p, size_t n);
LEP_EXPORT int lep_buf_printf(lep_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void lep_buf_clear(lep_buf_t *b) { b->len = 0; }
static inline lep_bytes_t lep_buf_bytes(const lep_buf_t *b)
{
    return (lep_bytes_t){b->data, b->len};
}

/* The allocation hook.  Every allocation in lepton goes through it, so
 * tests can count allocations or fail each one in turn.  Set it before any
 * other lepton call; NULL restores the C library's functions.
 * realloc_fn(p, 0) is never called; free_fn(NULL) may be. */
typedef struct lep_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} lep_allocator_t;

LEP_EXPORT void lep_set_allocator(const lep_allocator_t *a);
LEP_EXPORT void *lep_malloc(size_t size);
LEP_EXPORT void *lep_calloc(size_t n, size_t size);
LEP_EXPORT void *lep_realloc(void *ptr, size_t size);
LEP_EXPORT void lep_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
