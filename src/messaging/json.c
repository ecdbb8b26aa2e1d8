/* Strict recursive-descent JSON parser; see json.h.  Recursion is bounded by
 * max_depth, so hostile input cannot exhaust the stack. */
#include "messaging/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *p, *end;
    const char *line_start;
    int line;
    int depth, max_depth;
    bool comments;
    char *err;
    size_t errlen;
} parser_t;

static int
col_of(const parser_t *ps, const char *at)
{
    return (int)(at - ps->line_start) + 1;
}

static int __attribute__((format(printf, 4, 5)))
fail_at(parser_t *ps, const char *at, int rc, const char *fmt, ...)
{
    if (ps->err && ps->errlen) {
        int n = snprintf(ps->err, ps->errlen, "%d:%d: ", ps->line, col_of(ps, at));
        if (n >= 0 && (size_t)n < ps->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static int
skip_ws(parser_t *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->p++;
            ps->line++;
            ps->line_start = ps->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else if (c == '/' && ps->comments && ps->p + 1 < ps->end && ps->p[1] == '/') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else if (c == '/' && ps->comments && ps->p + 1 < ps->end && ps->p[1] == '*') {
            const char *start = ps->p, *start_line = ps->line_start;
            int line = ps->line;
            ps->p += 2;
            for (;;) {
                if (ps->p + 1 >= ps->end) {
                    /* told where the comment starts */
                    ps->p = start;
                    ps->line = line;
                    ps->line_start = start_line;
                    return fail_at(ps, start, LEP_ERR_DECODE, "unterminated comment");
                }
                if (ps->p[0] == '*' && ps->p[1] == '/') {
                    ps->p += 2;
                    break;
                }
                if (*ps->p == '\n') {
                    ps->line++;
                    ps->line_start = ps->p + 1;
                }
                ps->p++;
            }
        } else {
            break;
        }
    }
    return 0;
}

static int parse_value(parser_t *ps, lepi_json_t *v);

static void
free_node(lepi_json_t *v)
{
    switch (v->type) {
    case LEPI_JSON_STRING:
        lep_free(v->u.str.ptr);
        break;
    case LEPI_JSON_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            free_node(&v->u.arr.items[i]);
        lep_free(v->u.arr.items);
        break;
    case LEPI_JSON_OBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            lep_free(v->u.obj.members[i].key);
            free_node(&v->u.obj.members[i].value);
        }
        lep_free(v->u.obj.members);
        break;
    default:
        break;
    }
    v->type = LEPI_JSON_NULL;
}

static void
put_utf8(lep_buf_t *b, uint32_t cp, int *rc)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xF0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*rc == 0)
        *rc = lep_buf_append(b, u, n);
}

static int
hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, max U+10FFFF), or 0. */
static size_t
utf8_len(const uint8_t *s, const uint8_t *end)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2; cp = c & 0x1F; min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3; cp = c & 0x0F; min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4; cp = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Parses the string starting at the opening quote into a new NUL-terminated
 * buffer. */
static int
parse_string(parser_t *ps, char **out, size_t *out_len)
{
    lep_buf_t b;
    int rc = 0;
    const char *start = ps->p;
    lep_buf_init(&b);
    ps->p++; /* opening quote */
    for (;;) {
        if (ps->p >= ps->end) {
            rc = fail_at(ps, start, LEP_ERR_DECODE, "unterminated string");
            goto out;
        }
        uint8_t c = (uint8_t)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            rc = fail_at(ps, ps->p, LEP_ERR_DECODE, "control character in string");
            goto out;
        }
        if (c == '\\') {
            const char *esc = ps->p;
            if (ps->end - ps->p < 2) {
                rc = fail_at(ps, start, LEP_ERR_DECODE, "unterminated string");
                goto out;
            }
            char e = ps->p[1];
            ps->p += 2;
            char simple = 0;
            switch (e) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp) != 0) {
                    rc = fail_at(ps, esc, LEP_ERR_DECODE, "bad \\u escape");
                    goto out;
                }
                ps->p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    rc = fail_at(ps, esc, LEP_ERR_DECODE, "unpaired low surrogate");
                    goto out;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                        hex4(ps->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                        rc = fail_at(ps, esc, LEP_ERR_DECODE, "unpaired high surrogate");
                        goto out;
                    }
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(&b, cp, &rc);
                if (rc)
                    goto out;
                continue;
            }
            default:
                rc = fail_at(ps, esc, LEP_ERR_DECODE, "bad escape '\\%c'", e);
                goto out;
            }
            if ((rc = lep_buf_append(&b, &simple, 1)) != 0)
                goto out;
            continue;
        }
        size_t n = utf8_len((const uint8_t *)ps->p, (const uint8_t *)ps->end);
        if (n == 0) {
            rc = fail_at(ps, ps->p, LEP_ERR_DECODE, "invalid UTF-8 in string");
            goto out;
        }
        if ((rc = lep_buf_append(&b, ps->p, n)) != 0)
            goto out;
        ps->p += n;
    }
    *out_len = b.len;
    if ((rc = lep_buf_append(&b, "", 1)) != 0)
        goto out;
    *out = (char *)b.data;
    return 0;
out:
    lep_buf_fini(&b);
    return rc;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
parse_number(parser_t *ps, lepi_json_t *v)
{
    const char *s = ps->p, *q = ps->p;
    bool integral = true;
    char tmp[64];
    if (q < ps->end && *q == '-')
        q++;
    if (q >= ps->end || !is_digit(*q))
        return fail_at(ps, s, LEP_ERR_DECODE, "bad number");
    if (*q == '0') {
        q++;
        if (q < ps->end && is_digit(*q))
            return fail_at(ps, s, LEP_ERR_DECODE, "leading zero in number");
    } else {
        while (q < ps->end && is_digit(*q))
            q++;
    }
    if (q < ps->end && *q == '.') {
        integral = false;
        q++;
        if (q >= ps->end || !is_digit(*q))
            return fail_at(ps, s, LEP_ERR_DECODE, "bad number: digit expected after '.'");
        while (q < ps->end && is_digit(*q))
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || !is_digit(*q))
            return fail_at(ps, s, LEP_ERR_DECODE, "bad number: digit expected in exponent");
        while (q < ps->end && is_digit(*q))
            q++;
    }
    size_t n = (size_t)(q - s);
    if (n >= sizeof tmp)
        return fail_at(ps, s, LEP_ERR_LIMIT, "number too long");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    v->type = LEPI_JSON_NUMBER;
    v->u.num.value = strtod(tmp, NULL);
    v->u.num.is_int = false;
    v->u.num.i = 0;
    if (integral) {
        errno = 0;
        long long ll = strtoll(tmp, NULL, 10);
        if (errno == 0) {
            v->u.num.is_int = true;
            v->u.num.i = ll;
        }
    }
    if (!isfinite(v->u.num.value))
        return fail_at(ps, s, LEP_ERR_DECODE, "number out of range");
    ps->p = q;
    return 0;
}

static bool
take_word(parser_t *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static int
grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = lep_realloc(*arr, ncap * elem);
    if (!p)
        return LEP_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int
parse_array(parser_t *ps, lepi_json_t *v)
{
    size_t cap = 0;
    int rc;
    v->type = LEPI_JSON_ARRAY;
    v->u.arr.items = NULL;
    v->u.arr.n = 0;
    ps->p++;
    if ((rc = skip_ws(ps)) != 0)
        return rc;
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return 0;
    }
    for (;;) {
        void *items = v->u.arr.items;
        if ((rc = grow(&items, &cap, v->u.arr.n, sizeof(lepi_json_t))) != 0)
            return rc;
        v->u.arr.items = items;
        lepi_json_t *it = &v->u.arr.items[v->u.arr.n];
        it->type = LEPI_JSON_NULL;
        if ((rc = skip_ws(ps)) != 0)
            return rc;
        rc = parse_value(ps, it);
        v->u.arr.n++; /* counted even on failure so free_node releases it */
        if (rc)
            return rc;
        if ((rc = skip_ws(ps)) != 0)
            return rc;
        if (ps->p >= ps->end)
            return fail_at(ps, ps->p, LEP_ERR_DECODE, "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            if ((rc = skip_ws(ps)) != 0)
                return rc;
            if (ps->p < ps->end && *ps->p == ']')
                return fail_at(ps, ps->p, LEP_ERR_DECODE, "trailing comma in array");
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            return 0;
        }
        return fail_at(ps, ps->p, LEP_ERR_DECODE, "expected ',' or ']'");
    }
}

static int
parse_object(parser_t *ps, lepi_json_t *v)
{
    size_t cap = 0;
    int rc;
    v->type = LEPI_JSON_OBJECT;
    v->u.obj.members = NULL;
    v->u.obj.n = 0;
    ps->p++;
    if ((rc = skip_ws(ps)) != 0)
        return rc;
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return 0;
    }
    for (;;) {
        if (ps->p >= ps->end)
            return fail_at(ps, ps->p, LEP_ERR_DECODE, "unterminated object");
        if (*ps->p != '"')
            return fail_at(ps, ps->p, LEP_ERR_DECODE, "expected a string key");
        const char *key_at = ps->p;
        int key_line = ps->line;
        const char *key_ls = ps->line_start;
        void *members = v->u.obj.members;
        if ((rc = grow(&members, &cap, v->u.obj.n, sizeof(lepi_json_member_t))) != 0)
            return rc;
        v->u.obj.members = members;
        lepi_json_member_t *m = &v->u.obj.members[v->u.obj.n];
        m->value.type = LEPI_JSON_NULL;
        m->line = key_line;
        m->col = col_of(ps, key_at);
        if ((rc = parse_string(ps, &m->key, &m->key_len)) != 0)
            return rc;
        v->u.obj.n++;
        for (size_t i = 0; i + 1 < v->u.obj.n; i++) {
            lepi_json_member_t *o = &v->u.obj.members[i];
            if (o->key_len == m->key_len && memcmp(o->key, m->key, m->key_len) == 0) {
                ps->line = key_line;
                ps->line_start = key_ls;
                return fail_at(ps, key_at, LEP_ERR_DECODE, "duplicate key \"%s\"", m->key);
            }
        }
        if ((rc = skip_ws(ps)) != 0)
            return rc;
        if (ps->p >= ps->end || *ps->p != ':')
            return fail_at(ps, ps->p, LEP_ERR_DECODE, "expected ':'");
        ps->p++;
        if ((rc = skip_ws(ps)) != 0)
            return rc;
        if ((rc = parse_value(ps, &m->value)) != 0)
            return rc;
        if ((rc = skip_ws(ps)) != 0)
            return rc;
        if (ps->p >= ps->end)
            return fail_at(ps, ps->p, LEP_ERR_DECODE, "unterminated object");
        if (*ps->p == ',') {
            ps->p++;
            if ((rc = skip_ws(ps)) != 0)
                return rc;
            if (ps->p < ps->end && *ps->p == '}')
                return fail_at(ps, ps->p, LEP_ERR_DECODE, "trailing comma in object");
            continue;
        }
        if (*ps->p == '}') {
            ps->p++;
            return 0;
        }
        return fail_at(ps, ps->p, LEP_ERR_DECODE, "expected ',' or '}'");
    }
}

static int
parse_value(parser_t *ps, lepi_json_t *v)
{
    v->type = LEPI_JSON_NULL;
    v->line = ps->line;
    v->col = col_of(ps, ps->p);
    if (ps->p >= ps->end)
        return fail_at(ps, ps->p, LEP_ERR_DECODE, "unexpected end of input");
    char c = *ps->p;
    int rc;
    switch (c) {
    case '{':
    case '[':
        if (ps->depth >= ps->max_depth)
            return fail_at(ps, ps->p, LEP_ERR_LIMIT, "nesting deeper than %d", ps->max_depth);
        ps->depth++;
        rc = c == '{' ? parse_object(ps, v) : parse_array(ps, v);
        ps->depth--;
        return rc;
    case '"':
        v->type = LEPI_JSON_STRING;
        v->u.str.ptr = NULL;
        return parse_string(ps, &v->u.str.ptr, &v->u.str.len);
    case 't':
    case 'f':
    case 'n':
        if (take_word(ps, "true")) {
            v->type = LEPI_JSON_BOOL;
            v->u.boolean = true;
            return 0;
        }
        if (take_word(ps, "false")) {
            v->type = LEPI_JSON_BOOL;
            v->u.boolean = false;
            return 0;
        }
        if (take_word(ps, "null"))
            return 0;
        break;
    default:
        if (c == '-' || is_digit(c))
            return parse_number(ps, v);
        break;
    }
    return fail_at(ps, ps->p, LEP_ERR_DECODE, "unexpected character '%c'",
                   (c >= 0x20 && c < 0x7f) ? c : '?');
}

int
lepi_json_parse(const char *text, size_t len, const lepi_json_opts_t *opts,
                lepi_json_t **out, char *err, size_t errlen)
{
    parser_t ps = {
        .p = text, .end = text + len, .line_start = text, .line = 1,
        .max_depth = (opts && opts->max_depth > 0) ? opts->max_depth : 64,
        .comments = opts && opts->comments, .err = err, .errlen = errlen,
    };
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    lepi_json_t *v = lep_malloc(sizeof *v);
    if (!v)
        return LEP_ERR_NOMEM;
    int rc = skip_ws(&ps);
    if (rc == 0)
        rc = parse_value(&ps, v);
    if (rc == 0)
        rc = skip_ws(&ps);
    if (rc == 0 && ps.p < ps.end)
        rc = fail_at(&ps, ps.p, LEP_ERR_DECODE, "trailing characters after the value");
    if (rc == LEP_ERR_NOMEM && err && errlen)
        snprintf(err, errlen, "out of memory");
    if (rc) {
        free_node(v);
        lep_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void
lepi_json_free(lepi_json_t *v)
{
    if (!v)
        return;
    free_node(v);
    lep_free(v);
}

const lepi_json_t *
lepi_json_get(const lepi_json_t *obj, const char *key)
{
    if (!obj || obj->type != LEPI_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->u.obj.n; i++)
        if (obj->u.obj.members[i].key_len == n && memcmp(obj->u.obj.members[i].key, key, n) == 0)
            return &obj->u.obj.members[i].value;
    return NULL;
}

const char *
lepi_json_type_name(lepi_json_type_t t)
{
    switch (t) {
    case LEPI_JSON_NULL: return "null";
    case LEPI_JSON_BOOL: return "boolean";
    case LEPI_JSON_NUMBER: return "number";
    case LEPI_JSON_STRING: return "string";
    case LEPI_JSON_ARRAY: return "array";
    case LEPI_JSON_OBJECT: return "object";
    }
    return "?";
}
