/* Readable and typed printed forms of encoded values (docs/print-format.md).
 *
 * The printer walks encoded bytes with the streaming reader, so it prints
 * trees (after encoding them) and raw input through one code path. */
#include "codec_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct printer {
    lep_buf_t *out;
    int flags;
    int err;
    size_t limit; /* output may not pass this length */
} printer_t;

static void
emit(printer_t *pr, const char *s, size_t n)
{
    if (!pr->err)
        pr->err = pr->out->len + n > pr->limit ? LEP_ERR_LIMIT : lep_buf_append(pr->out, s, n);
}

static void
emits(printer_t *pr, const char *s)
{
    emit(pr, s, strlen(s));
}

#define emitf(pr, ...)                                                  \
    do {                                                                \
        if (!(pr)->err)                                                 \
            (pr)->err = lep_buf_printf((pr)->out, __VA_ARGS__);         \
        if (!(pr)->err && (pr)->out->len > (pr)->limit)                 \
            (pr)->err = LEP_ERR_LIMIT;                                  \
    } while (0)

static void
newline(printer_t *pr, unsigned level)
{
    emit(pr, "\n", 1);
    for (unsigned i = 0; i < level; i++)
        emit(pr, "  ", 2);
}

/* Bytes outside printable ASCII, quote and backslash are escaped. */
static void
quoted(printer_t *pr, lep_bytes_t b)
{
    emit(pr, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < b.len; i++) {
        uint8_t c = b.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            run++;
            continue;
        }
        emit(pr, (const char *)b.ptr + i - run, run);
        run = 0;
        if (c == '"')
            emit(pr, "\\\"", 2);
        else if (c == '\\')
            emit(pr, "\\\\", 2);
        else
            emitf(pr, "\\x%02x", c);
    }
    emit(pr, (const char *)b.ptr + b.len - run, run);
    emit(pr, "\"", 1);
}

static bool
plain_symbol(lep_bytes_t b)
{
    if (b.len == 0)
        return false;
    for (size_t i = 0; i < b.len; i++) {
        uint8_t c = b.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static void
hex(printer_t *pr, const uint8_t *p, size_t n)
{
    char s[33];
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n && i < 16; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    emit(pr, s, 2 * (n < 16 ? n : 16));
}

static void
uuid(printer_t *pr, const uint8_t *u)
{
    hex(pr, u, 4);
    emit(pr, "-", 1);
    hex(pr, u + 4, 2);
    emit(pr, "-", 1);
    hex(pr, u + 6, 2);
    emit(pr, "-", 1);
    hex(pr, u + 8, 2);
    emit(pr, "-", 1);
    hex(pr, u + 10, 6);
}

/* Shortest decimal form that reads back to the same value. */
static void
real(printer_t *pr, double d, bool is_float)
{
    char s[40];
    if (isnan(d)) {
        emits(pr, "nan");
        return;
    }
    if (isinf(d)) {
        emits(pr, d < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, d);
        if (is_float ? strtof(s, NULL) == (float)d : strtod(s, NULL) == d)
            break;
    }
    emits(pr, s);
}

static void print_value(printer_t *pr, lep_reader_t *r, unsigned level);

/* Elements of a compound, separated, optionally one per line. */
static void
print_elements(printer_t *pr, lep_reader_t *child, bool map, const char *open,
               const char *close, unsigned level)
{
    bool indent = pr->flags & LEP_PRINT_INDENT;
    emits(pr, open);
    bool first = true;
    while (!pr->err && !lep_reader_done(child)) {
        if (!first)
            emit(pr, ",", 1);
        if (indent)
            newline(pr, level + 1);
        else if (!first)
            emit(pr, " ", 1);
        first = false;
        print_value(pr, child, level + 1);
        if (map && !pr->err) {
            emit(pr, "=", 1);
            print_value(pr, child, level + 1);
        }
    }
    if (!pr->err && child->p != child->end)
        pr->err = LEP_ERR_DECODE; /* bytes left over inside the compound */
    if (indent && !first)
        newline(pr, level);
    emits(pr, close);
}

/* A described list of a known composite: named fields, nulls left out. */
static void
print_fields(printer_t *pr, lep_reader_t *child, const lep_descriptor_info_t *info, unsigned level)
{
    bool indent = pr->flags & LEP_PRINT_INDENT;
    bool first = true;
    emit(pr, "[", 1);
    for (uint32_t i = 0; !pr->err && !lep_reader_done(child); i++) {
        lep_atom_t a;
        if ((pr->err = lep_reader_peek(child, &a)) != 0)
            break;
        if (a.type == LEP_TYPE_NULL) {
            lep_reader_skip(child);
            continue;
        }
        if (!first)
            emit(pr, ",", 1);
        if (indent)
            newline(pr, level + 1);
        else if (!first)
            emit(pr, " ", 1);
        first = false;
        if (i < info->nfields)
            emitf(pr, "%s=", info->fields[i]);
        print_value(pr, child, level + 1);
    }
    if (!pr->err && child->p != child->end)
        pr->err = LEP_ERR_DECODE;
    if (indent && !first)
        newline(pr, level);
    emit(pr, "]", 1);
}

static void
print_described(printer_t *pr, lep_reader_t *r, const lep_atom_t *a, unsigned level)
{
    lep_reader_t d, child;
    lep_atom_t desc;
    bool typed = pr->flags & LEP_PRINT_TYPED;

    lep_reader_init(&d, a->ctor.ptr, a->ctor.len);
    d.depth = r->depth;
    d.remaining = 1;
    if ((pr->err = lep_reader_peek(&d, &desc)) != 0)
        return;
    if ((pr->err = lep_reader_enter(r, a, &child)) != 0)
        return;
    if (typed) {
        emits(pr, "described(");
        print_value(pr, &d, level + 1);
        emit(pr, ", ", 2);
        print_value(pr, &child, level + 1);
        emit(pr, ")", 1);
        return;
    }
    const lep_descriptor_info_t *info = NULL;
    if (desc.type == LEP_TYPE_ULONG)
        info = lep_descriptor_lookup(desc.u.u);
    else if (desc.type == LEP_TYPE_SYMBOL)
        info = lep_descriptor_lookup_name(desc.u.bytes);
    if (info) {
        emitf(pr, "@%s(%" PRIu64 ") ", info->name, info->code);
    } else if (desc.type == LEP_TYPE_ULONG) {
        emitf(pr, "@0x%" PRIx64 " ", desc.u.u);
    } else {
        emit(pr, "@", 1);
        print_value(pr, &d, level + 1);
        emit(pr, " ", 1);
    }
    lep_atom_t v;
    if (pr->err || (pr->err = lep_reader_peek(&child, &v)) != 0)
        return;
    if (info && info->nfields && v.type == LEP_TYPE_LIST) {
        lep_reader_t fields;
        lep_reader_skip(&child);
        if ((pr->err = lep_reader_enter(&child, &v, &fields)) != 0)
            return;
        print_fields(pr, &fields, info, level);
        return;
    }
    print_value(pr, &child, level);
}

static void
print_value(printer_t *pr, lep_reader_t *r, unsigned level)
{
    lep_atom_t a;
    bool typed = pr->flags & LEP_PRINT_TYPED;

    if (pr->err)
        return;
    if ((pr->err = lep_reader_next(r, &a)) != 0)
        return;
    if (typed && a.type != LEP_TYPE_NULL && a.type < LEP_TYPE_LIST) {
        emits(pr, a.type == LEP_TYPE_BOOL ? "bool" : lep_type_name(a.type));
        emit(pr, ":", 1);
    }
    switch (a.type) {
    case LEP_TYPE_NULL: emits(pr, "null"); break;
    case LEP_TYPE_BOOL: emits(pr, a.u.b ? "true" : "false"); break;
    case LEP_TYPE_UBYTE: case LEP_TYPE_USHORT: case LEP_TYPE_UINT: case LEP_TYPE_ULONG:
        emitf(pr, "%" PRIu64, a.u.u);
        break;
    case LEP_TYPE_BYTE: case LEP_TYPE_SHORT: case LEP_TYPE_INT: case LEP_TYPE_LONG:
    case LEP_TYPE_TIMESTAMP:
        emitf(pr, "%" PRId64, a.u.i);
        break;
    case LEP_TYPE_FLOAT:
        if (typed) {
            uint32_t bits;
            memcpy(&bits, &a.u.f, 4);
            emitf(pr, "0x%08" PRIx32, bits);
        } else {
            real(pr, a.u.f, true);
        }
        break;
    case LEP_TYPE_DOUBLE:
        if (typed) {
            uint64_t bits;
            memcpy(&bits, &a.u.d, 8);
            emitf(pr, "0x%016" PRIx64, bits);
        } else {
            real(pr, a.u.d, false);
        }
        break;
    case LEP_TYPE_DECIMAL32: case LEP_TYPE_DECIMAL64: case LEP_TYPE_DECIMAL128: {
        size_t n = a.type == LEP_TYPE_DECIMAL32 ? 4 : a.type == LEP_TYPE_DECIMAL64 ? 8 : 16;
        if (!typed)
            emitf(pr, "%s:", lep_type_name(a.type));
        emit(pr, "0x", 2);
        hex(pr, a.u.dec, n);
        break;
    }
    case LEP_TYPE_CHAR:
        if (!typed && a.u.u >= 0x20 && a.u.u < 0x7f && a.u.u != '\'' && a.u.u != '\\')
            emitf(pr, "'%c'", (char)a.u.u);
        else
            emitf(pr, "U+%04" PRIX64, a.u.u);
        break;
    case LEP_TYPE_UUID: uuid(pr, a.u.uuid); break;
    case LEP_TYPE_BINARY:
        if (!typed)
            emit(pr, "b", 1);
        quoted(pr, a.u.bytes);
        break;
    case LEP_TYPE_STRING: quoted(pr, a.u.bytes); break;
    case LEP_TYPE_SYMBOL:
        if (typed) {
            quoted(pr, a.u.bytes);
        } else {
            emit(pr, ":", 1);
            if (plain_symbol(a.u.bytes))
                emit(pr, (const char *)a.u.bytes.ptr, a.u.bytes.len);
            else
                quoted(pr, a.u.bytes);
        }
        break;
    case LEP_TYPE_LIST:
    case LEP_TYPE_MAP:
    case LEP_TYPE_ARRAY: {
        lep_reader_t child;
        if ((pr->err = lep_reader_enter(r, &a, &child)) != 0)
            return;
        bool map = a.type == LEP_TYPE_MAP;
        if (a.type == LEP_TYPE_ARRAY) {
            const char *et = child.array_desc.len ? "described"
                             : lep_type_of_code(a.code) >= 0
                                 ? lep_type_name((lep_type_t)lep_type_of_code(a.code))
                                 : "?";
            if (typed)
                emitf(pr, "array<%s>", et);
            else
                emitf(pr, "@<%s>", et);
            print_elements(pr, &child, false, "[", "]", level);
        } else if (map) {
            print_elements(pr, &child, true, typed ? "map{" : "{", "}", level);
        } else {
            print_elements(pr, &child, false, typed ? "list[" : "[", "]", level);
        }
        break;
    }
    case LEP_TYPE_DESCRIBED:
        print_described(pr, r, &a, level);
        break;
    default:
        pr->err = LEP_ERR_DECODE;
        break;
    }
}

int
lep_print_encoded(lep_reader_t *r, lep_buf_t *out, int flags)
{
    /* Zero-width array elements sharing one descriptor can make a few
     * bytes print as gigabytes: bound the output by the input. */
    size_t in = (size_t)(r->end - r->p);
    printer_t pr = {out, flags, 0, out->len + ((size_t)4 << 20) + 64 * in};
    size_t mark = out->len;
    print_value(&pr, r, 0);
    if (pr.err)
        out->len = mark;
    return pr.err;
}

int
lep_value_print(const lep_value_t *v, lep_buf_t *out, int flags)
{
    lep_buf_t tmp;
    lep_encoder_t e;
    lep_reader_t r;
    int rc;

    lep_buf_init(&tmp);
    lep_encoder_init(&e, &tmp);
    lep_value_encode(&e, v);
    if ((rc = lep_encoder_error(&e)) == 0) {
        lep_reader_init(&r, tmp.data, tmp.len);
        rc = lep_print_encoded(&r, out, flags);
    }
    lep_buf_fini(&tmp);
    return rc;
}
