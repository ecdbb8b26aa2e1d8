/* A small strict JSON parser (RFC 8259) for configuration files.
 *
 * Builds a tree owned by the caller (lepi_json_free).  Strict: no trailing
 * commas, no leading zeros, no NaN, strings must be valid UTF-8 without raw
 * control characters, duplicate object keys are rejected.  The one
 * limit beyond RFC 8259 is numbers of at most 63 characters (LEP_ERR_LIMIT);
 * the one extension is optional JavaScript comments, because Proton documents
 * connect.json as "JSON with comments".  Every node records the line:column
 * where it starts so callers can report errors against the file. */
#ifndef LEPTON_MESSAGING_JSON_H
#define LEPTON_MESSAGING_JSON_H

#include <lepton/common.h>

typedef enum lepi_json_type {
    LEPI_JSON_NULL,
    LEPI_JSON_BOOL,
    LEPI_JSON_NUMBER,
    LEPI_JSON_STRING,
    LEPI_JSON_ARRAY,
    LEPI_JSON_OBJECT,
} lepi_json_type_t;

typedef struct lepi_json lepi_json_t;
typedef struct lepi_json_member lepi_json_member_t;

struct lepi_json {
    lepi_json_type_t type;
    int line, col; /* 1-based position of the value's first character */
    union {
        bool boolean;
        struct {
            double value;
            bool is_int; /* no fraction or exponent and fits in int64 */
            int64_t i;
        } num;
        struct {
            char *ptr; /* decoded UTF-8, NUL-terminated; may contain NUL (\u0000) */
            size_t len;
        } str;
        struct {
            lepi_json_t *items;
            size_t n;
        } arr;
        struct {
            lepi_json_member_t *members;
            size_t n;
        } obj;
    } u;
};

struct lepi_json_member {
    char *key; /* decoded, NUL-terminated */
    size_t key_len;
    int line, col; /* where the key starts */
    lepi_json_t value;
};

typedef struct lepi_json_opts {
    int max_depth;  /* nesting of arrays/objects; 0 means 64 */
    bool comments;  /* accept // and block comments as whitespace */
} lepi_json_opts_t;

/* Parses text[0..len).  On success *out is a new tree owned by the caller.
 * On failure returns LEP_ERR_DECODE (bad syntax), LEP_ERR_LIMIT (depth) or
 * LEP_ERR_NOMEM, and writes "line:col: message" into err (errlen bytes,
 * may be NULL/0).  opts may be NULL. */
int lepi_json_parse(const char *text, size_t len, const lepi_json_opts_t *opts,
                    lepi_json_t **out, char *err, size_t errlen);
void lepi_json_free(lepi_json_t *v);

/* Looks up a key in an object; returns a view into the tree or NULL. */
const lepi_json_t *lepi_json_get(const lepi_json_t *obj, const char *key);
const char *lepi_json_type_name(lepi_json_type_t t);

#endif
