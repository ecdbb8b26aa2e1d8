/* Streaming, zero-copy AMQP decoder.
 *
 * Every read is bounds-checked against the reader's end; compound values
 * are only measured here (size and count), their elements are decoded when
 * the caller enters them, so a reader never recurses except through
 * descriptors, which the depth counter bounds. */
#include "codec_internal.h"

const char *
lep_type_name(lep_type_t t)
{
    static const char *const names[LEP_TYPE_COUNT_] = {
        "null", "boolean", "ubyte", "ushort", "uint", "ulong", "byte", "short",
        "int", "long", "float", "double", "decimal32", "decimal64", "decimal128",
        "char", "timestamp", "uuid", "binary", "string", "symbol", "list", "map",
        "array", "described",
    };
    return (unsigned)t < LEP_TYPE_COUNT_ ? names[t] : "?";
}

int
lep_type_of_code(uint8_t code)
{
    switch (code) {
    case LEP_FC_DESCRIBED: return LEP_TYPE_DESCRIBED;
    case LEP_FC_NULL: return LEP_TYPE_NULL;
    case LEP_FC_TRUE: case LEP_FC_FALSE: case LEP_FC_BOOLEAN: return LEP_TYPE_BOOL;
    case LEP_FC_UBYTE: return LEP_TYPE_UBYTE;
    case LEP_FC_USHORT: return LEP_TYPE_USHORT;
    case LEP_FC_UINT: case LEP_FC_SMALLUINT: case LEP_FC_UINT0: return LEP_TYPE_UINT;
    case LEP_FC_ULONG: case LEP_FC_SMALLULONG: case LEP_FC_ULONG0: return LEP_TYPE_ULONG;
    case LEP_FC_BYTE: return LEP_TYPE_BYTE;
    case LEP_FC_SHORT: return LEP_TYPE_SHORT;
    case LEP_FC_INT: case LEP_FC_SMALLINT: return LEP_TYPE_INT;
    case LEP_FC_LONG: case LEP_FC_SMALLLONG: return LEP_TYPE_LONG;
    case LEP_FC_FLOAT: return LEP_TYPE_FLOAT;
    case LEP_FC_DOUBLE: return LEP_TYPE_DOUBLE;
    case LEP_FC_DECIMAL32: return LEP_TYPE_DECIMAL32;
    case LEP_FC_DECIMAL64: return LEP_TYPE_DECIMAL64;
    case LEP_FC_DECIMAL128: return LEP_TYPE_DECIMAL128;
    case LEP_FC_CHAR: return LEP_TYPE_CHAR;
    case LEP_FC_TIMESTAMP: return LEP_TYPE_TIMESTAMP;
    case LEP_FC_UUID: return LEP_TYPE_UUID;
    case LEP_FC_VBIN8: case LEP_FC_VBIN32: return LEP_TYPE_BINARY;
    case LEP_FC_STR8: case LEP_FC_STR32: return LEP_TYPE_STRING;
    case LEP_FC_SYM8: case LEP_FC_SYM32: return LEP_TYPE_SYMBOL;
    case LEP_FC_LIST0: case LEP_FC_LIST8: case LEP_FC_LIST32: return LEP_TYPE_LIST;
    case LEP_FC_MAP8: case LEP_FC_MAP32: return LEP_TYPE_MAP;
    case LEP_FC_ARRAY8: case LEP_FC_ARRAY32: return LEP_TYPE_ARRAY;
    default: return -1;
    }
}

uint8_t
lepi_wide_code(lep_type_t t)
{
    static const uint8_t codes[LEP_TYPE_COUNT_] = {
        [LEP_TYPE_NULL] = LEP_FC_NULL,        [LEP_TYPE_BOOL] = LEP_FC_BOOLEAN,     [LEP_TYPE_UBYTE] = LEP_FC_UBYTE,
        [LEP_TYPE_USHORT] = LEP_FC_USHORT,    [LEP_TYPE_UINT] = LEP_FC_UINT,
        [LEP_TYPE_ULONG] = LEP_FC_ULONG,      [LEP_TYPE_BYTE] = LEP_FC_BYTE,
        [LEP_TYPE_SHORT] = LEP_FC_SHORT,      [LEP_TYPE_INT] = LEP_FC_INT,
        [LEP_TYPE_LONG] = LEP_FC_LONG,        [LEP_TYPE_FLOAT] = LEP_FC_FLOAT,
        [LEP_TYPE_DOUBLE] = LEP_FC_DOUBLE,    [LEP_TYPE_DECIMAL32] = LEP_FC_DECIMAL32,
        [LEP_TYPE_DECIMAL64] = LEP_FC_DECIMAL64, [LEP_TYPE_DECIMAL128] = LEP_FC_DECIMAL128,
        [LEP_TYPE_CHAR] = LEP_FC_CHAR,        [LEP_TYPE_TIMESTAMP] = LEP_FC_TIMESTAMP,
        [LEP_TYPE_UUID] = LEP_FC_UUID,        [LEP_TYPE_BINARY] = LEP_FC_VBIN32,
        [LEP_TYPE_STRING] = LEP_FC_STR32,     [LEP_TYPE_SYMBOL] = LEP_FC_SYM32,
        [LEP_TYPE_LIST] = LEP_FC_LIST32,      [LEP_TYPE_MAP] = LEP_FC_MAP32,
        [LEP_TYPE_ARRAY] = LEP_FC_ARRAY32,
    };
    return (unsigned)t < LEP_TYPE_COUNT_ ? codes[t] : 0;
}

bool
lep_ascii_valid(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc < 0x80;
}

bool
lep_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* Strings on the wire are mostly ASCII: skip 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t need;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false; /* continuation byte, overlong lead or > U+10FFFF */
        }
        if (n - i - 1 < need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            uint8_t cc = p[i + k];
            if ((cc & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (cc & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

/* Width of the fixed-size payload of a code, or -1 for variable ones. */
static int
fixed_width(uint8_t code)
{
    switch (code >> 4) {
    case 0x4: return 0;
    case 0x5: return 1;
    case 0x6: return 2;
    case 0x7: return 4;
    case 0x8: return 8;
    case 0x9: return 16;
    default:  return -1;
    }
}

static int decode_value(const uint8_t *p, const uint8_t *end, unsigned depth, bool bounded,
                        lep_atom_t *a, const uint8_t **next);

/* Decodes the payload of a value whose constructor is `code`, starting at
 * q.  `bounded`: the input is the inside of a compound whose size has been
 * checked, so running short is malformed rather than incomplete. */
static int
decode_payload(uint8_t code, const uint8_t *q, const uint8_t *end, unsigned depth,
               bool bounded, lep_atom_t *a, const uint8_t **next)
{
    const int shortage = bounded ? LEP_ERR_DECODE : LEP_ERR_INCOMPLETE;
    size_t avail = (size_t)(end - q);
    size_t size;
    int t = lep_type_of_code(code);

    if (t < 0 || code == LEP_FC_DESCRIBED)
        return LEP_ERR_DECODE;
    a->type = (lep_type_t)t;
    a->code = code;
    a->fc = code;
    a->count = 0;

    int w = fixed_width(code);
    if (w >= 0) {
        if (avail < (size_t)w)
            return shortage;
        switch (code) {
        case LEP_FC_NULL: break;
        case LEP_FC_TRUE: a->u.b = true; break;
        case LEP_FC_FALSE: a->u.b = false; break;
        case LEP_FC_UINT0: case LEP_FC_ULONG0: a->u.u = 0; break;
        case LEP_FC_LIST0: a->content = (lep_bytes_t){q, 0}; break;
        case LEP_FC_BOOLEAN:
            if (q[0] > 1)
                return LEP_ERR_DECODE;
            a->u.b = q[0];
            break;
        case LEP_FC_UBYTE: case LEP_FC_SMALLUINT: case LEP_FC_SMALLULONG: a->u.u = q[0]; break;
        case LEP_FC_BYTE: case LEP_FC_SMALLINT: case LEP_FC_SMALLLONG: a->u.i = (int8_t)q[0]; break;
        case LEP_FC_USHORT: a->u.u = lepi_be16(q); break;
        case LEP_FC_SHORT: a->u.i = (int16_t)lepi_be16(q); break;
        case LEP_FC_UINT: a->u.u = lepi_be32(q); break;
        case LEP_FC_INT: a->u.i = (int32_t)lepi_be32(q); break;
        case LEP_FC_FLOAT: {
            uint32_t bits = lepi_be32(q);
            memcpy(&a->u.f, &bits, 4);
            break;
        }
        case LEP_FC_CHAR: {
            uint32_t cp = lepi_be32(q);
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return LEP_ERR_DECODE;
            a->u.u = cp;
            break;
        }
        case LEP_FC_ULONG: a->u.u = lepi_be64(q); break;
        case LEP_FC_LONG: case LEP_FC_TIMESTAMP: a->u.i = (int64_t)lepi_be64(q); break;
        case LEP_FC_DOUBLE: {
            uint64_t bits = lepi_be64(q);
            memcpy(&a->u.d, &bits, 8);
            break;
        }
        case LEP_FC_DECIMAL32: case LEP_FC_DECIMAL64: case LEP_FC_DECIMAL128:
            memset(a->u.dec, 0, sizeof a->u.dec);
            memcpy(a->u.dec, q, (size_t)w);
            break;
        case LEP_FC_UUID: memcpy(a->u.uuid, q, 16); break;
        default: return LEP_ERR_DECODE;
        }
        *next = q + w;
        return 0;
    }

    switch (code) {
    case LEP_FC_VBIN8: case LEP_FC_STR8: case LEP_FC_SYM8:
    case LEP_FC_VBIN32: case LEP_FC_STR32: case LEP_FC_SYM32: {
        size_t hw = (code & 0xf0) == 0xa0 ? 1 : 4;
        if (avail < hw)
            return shortage;
        size = hw == 1 ? q[0] : lepi_be32(q);
        if (avail - hw < size)
            return shortage;
        a->u.bytes = (lep_bytes_t){q + hw, size};
        if (a->type == LEP_TYPE_STRING && !lep_utf8_valid(q + hw, size))
            return LEP_ERR_UTF8;
        if (a->type == LEP_TYPE_SYMBOL && !lep_ascii_valid(q + hw, size))
            return LEP_ERR_SYMBOL;
        *next = q + hw + size;
        return 0;
    }
    case LEP_FC_LIST8: case LEP_FC_MAP8: case LEP_FC_ARRAY8:
    case LEP_FC_LIST32: case LEP_FC_MAP32: case LEP_FC_ARRAY32: {
        size_t hw = (code & 0x10) ? 4 : 1; /* 0xc0/0xe0: 8-bit, 0xd0/0xf0: 32-bit */
        uint32_t count;
        if (avail < hw)
            return shortage;
        size = hw == 1 ? q[0] : lepi_be32(q);
        if (avail - hw < size)
            return shortage;
        if (size < hw)
            return LEP_ERR_DECODE; /* no room for the count */
        const uint8_t *body = q + hw;
        count = hw == 1 ? body[0] : lepi_be32(body);
        const uint8_t *elems = body + hw;
        const uint8_t *stop = body + size;
        *next = stop;
        if (a->type != LEP_TYPE_ARRAY) {
            /* Every element has at least a constructor byte. */
            if (count > (size_t)(stop - elems))
                return LEP_ERR_DECODE;
            if (a->type == LEP_TYPE_MAP && (count & 1))
                return LEP_ERR_DECODE;
            a->count = count;
            a->content = (lep_bytes_t){elems, (size_t)(stop - elems)};
            return 0;
        }
        /* Array: one element constructor, then the elements' payloads. */
        const uint8_t *ctor = elems;
        const uint8_t *cp = elems;
        if (count == 0 && cp == stop) {
            /* Tolerate an empty array with no constructor (some encoders). */
            a->code = LEP_FC_NULL;
            a->count = 0;
            a->ctor = (lep_bytes_t){ctor, 0};
            a->content = (lep_bytes_t){stop, 0};
            return 0;
        }
        if (cp >= stop)
            return LEP_ERR_DECODE;
        if (*cp == LEP_FC_DESCRIBED) {
            lep_atom_t desc;
            const uint8_t *after;
            if (depth + 1 > LEP_CODEC_MAX_DEPTH)
                return LEP_ERR_LIMIT;
            int rc = decode_value(cp + 1, stop, depth + 1, true, &desc, &after);
            if (rc)
                return rc;
            cp = after;
            if (cp >= stop)
                return LEP_ERR_DECODE;
        }
        uint8_t ec = *cp++;
        int et = lep_type_of_code(ec);
        if (et < 0 || ec == LEP_FC_DESCRIBED)
            return LEP_ERR_DECODE;
        int ew = fixed_width(ec);
        size_t payload = (size_t)(stop - cp);
        if (ew == 0 && count > LEPI_MAX_ZERO_WIDTH_ELEMS)
            return LEP_ERR_LIMIT;
        if (ew >= 0) {
            /* fixed-width elements must fill the array exactly */
            if ((uint64_t)count * (uint64_t)ew != payload)
                return LEP_ERR_DECODE;
        } else if (count > payload) {
            return LEP_ERR_DECODE; /* variable-width elements take a byte at least */
        }
        a->code = ec;
        a->count = count;
        a->ctor = (lep_bytes_t){ctor, (size_t)(cp - ctor)};
        a->content = (lep_bytes_t){cp, payload};
        return 0;
    }
    default:
        return LEP_ERR_DECODE;
    }
}

/* Decodes one complete value, constructor included, starting at p. */
static int
decode_value(const uint8_t *p, const uint8_t *end, unsigned depth, bool bounded,
             lep_atom_t *a, const uint8_t **next)
{
    const int shortage = bounded ? LEP_ERR_DECODE : LEP_ERR_INCOMPLETE;
    int rc;

    if (p >= end)
        return shortage;
    a->flags = 0;
    if (*p != LEP_FC_DESCRIBED) {
        rc = decode_payload(*p, p + 1, end, depth, bounded, a, next);
        if (rc == 0)
            a->raw = (lep_bytes_t){p, (size_t)(*next - p)};
        return rc;
    }
    if (depth + 1 > LEP_CODEC_MAX_DEPTH)
        return LEP_ERR_LIMIT;
    lep_atom_t part;
    const uint8_t *mid, *stop;
    if ((rc = decode_value(p + 1, end, depth + 1, bounded, &part, &mid)) != 0)
        return rc;
    if ((rc = decode_value(mid, end, depth + 1, bounded, &part, &stop)) != 0)
        return rc;
    a->type = LEP_TYPE_DESCRIBED;
    a->code = LEP_FC_DESCRIBED;
    a->fc = LEP_FC_DESCRIBED;
    a->count = 0;
    a->ctor = (lep_bytes_t){p + 1, (size_t)(mid - (p + 1))};
    a->content = (lep_bytes_t){mid, (size_t)(stop - mid)};
    a->raw = (lep_bytes_t){p, (size_t)(stop - p)};
    *next = stop;
    return 0;
}

void
lep_reader_init(lep_reader_t *r, const void *p, size_t len)
{
    *r = (lep_reader_t){0};
    r->p = p;
    r->end = r->p + len;
    r->remaining = UINT32_MAX;
}

bool
lep_reader_done(const lep_reader_t *r)
{
    if (r->remaining == UINT32_MAX)
        return r->p >= r->end;
    return r->remaining == 0;
}

/* Decodes the next value without consuming it. */
static int
reader_decode(const lep_reader_t *r, lep_atom_t *out, const uint8_t **next)
{
    bool bounded = r->remaining != UINT32_MAX;

    if (bounded && r->remaining == 0)
        return LEP_ERR_NOT_FOUND;
    if (!r->array_code)
        return decode_value(r->p, r->end, r->depth, bounded, out, next);

    /* Array elements: the shared constructor is not repeated. */
    int rc = decode_payload(r->array_code, r->p, r->end, r->depth, true, out, next);
    if (rc)
        return rc;
    out->flags = LEP_ATOM_ARRAY_ELEM;
    out->raw = (lep_bytes_t){r->p, (size_t)(*next - r->p)};
    if (r->array_desc.len) {
        /* Described elements: present the element as a described value
         * whose value still needs the array's element code to decode. */
        out->type = LEP_TYPE_DESCRIBED;
        out->code = r->array_code;
        out->count = 0;
        out->ctor = r->array_desc;
        out->content = out->raw;
    }
    return 0;
}

int
lep_reader_peek(const lep_reader_t *r, lep_atom_t *out)
{
    const uint8_t *next;
    return reader_decode(r, out, &next);
}

int
lep_reader_next(lep_reader_t *r, lep_atom_t *out)
{
    const uint8_t *next;
    int rc = reader_decode(r, out, &next);
    if (rc)
        return rc;
    r->p = next;
    if (r->remaining != UINT32_MAX)
        r->remaining--;
    return 0;
}

/* Checks the inside of an atom just read from r. */
int
lepi_check_inside(const lep_reader_t *r, const lep_atom_t *a)
{
    lep_reader_t c, d;
    lep_atom_t x;
    int rc;

    if (a->type != LEP_TYPE_LIST && a->type != LEP_TYPE_MAP && a->type != LEP_TYPE_ARRAY &&
        a->type != LEP_TYPE_DESCRIBED)
        return 0;
    if ((rc = lep_reader_enter(r, a, &c)) != 0)
        return rc;
    /* A descriptor is checked where it is written: once for an array of
     * described elements, not once per element. */
    lep_bytes_t desc = a->type == LEP_TYPE_ARRAY ? c.array_desc
                       : (a->type == LEP_TYPE_DESCRIBED && !(a->flags & LEP_ATOM_ARRAY_ELEM))
                           ? a->ctor
                           : (lep_bytes_t){0};
    if (desc.len) {
        lep_reader_init(&d, desc.ptr, desc.len);
        d.remaining = 1;
        d.depth = c.depth;
        if ((rc = lep_reader_next(&d, &x)) != 0 || (rc = lepi_check_inside(&d, &x)) != 0)
            return rc;
        if (d.p != d.end)
            return LEP_ERR_DECODE;
    }
    if (a->type == LEP_TYPE_ARRAY && c.array_desc.len)
        c.array_desc = (lep_bytes_t){0}; /* elements: check their values only */
    while (!lep_reader_done(&c)) {
        if ((rc = lep_reader_next(&c, &x)) != 0 || (rc = lepi_check_inside(&c, &x)) != 0)
            return rc;
    }
    return c.p == c.end ? 0 : LEP_ERR_DECODE;
}

int
lep_reader_next_checked(lep_reader_t *r, lep_atom_t *out)
{
    lep_reader_t save = *r;
    int rc = lep_reader_next(r, out);
    if (rc == 0 && (rc = lepi_check_inside(&save, out)) != 0)
        *r = save;
    return rc;
}

int
lep_reader_skip(lep_reader_t *r)
{
    lep_atom_t a;
    return lep_reader_next(r, &a);
}

int
lep_reader_enter(const lep_reader_t *parent, const lep_atom_t *a, lep_reader_t *child)
{
    if ((unsigned)parent->depth + 1 > LEP_CODEC_MAX_DEPTH)
        return LEP_ERR_LIMIT;
    *child = (lep_reader_t){0};
    child->depth = (uint8_t)(parent->depth + 1);
    child->p = a->content.ptr;
    child->end = a->content.ptr + a->content.len;
    switch (a->type) {
    case LEP_TYPE_LIST:
    case LEP_TYPE_MAP:
        child->remaining = a->count;
        return 0;
    case LEP_TYPE_ARRAY:
        child->remaining = a->count;
        child->array_code = a->code;
        if (a->ctor.len > 1 && a->ctor.ptr[0] == LEP_FC_DESCRIBED)
            child->array_desc = (lep_bytes_t){a->ctor.ptr + 1, a->ctor.len - 2};
        if (a->count && a->code == LEP_FC_NULL && a->ctor.len == 0)
            return LEP_ERR_DECODE;
        return 0;
    case LEP_TYPE_DESCRIBED:
        child->remaining = 1;
        if (a->flags & LEP_ATOM_ARRAY_ELEM)
            child->array_code = a->code;
        return 0;
    default:
        return LEP_ERR_TYPE;
    }
}

/* ---- typed reads ---- */

/* Reads the next value if it has type t; leaves the reader alone otherwise. */
static int
read_typed(lep_reader_t *r, lep_type_t t, lep_atom_t *a)
{
    const uint8_t *next;
    int rc = reader_decode(r, a, &next);
    if (rc)
        return rc;
    if (a->type != t)
        return LEP_ERR_TYPE;
    r->p = next;
    if (r->remaining != UINT32_MAX)
        r->remaining--;
    return 0;
}

#define TYPED_READ(fn, T, ctype, member)            \
    int fn(lep_reader_t *r, ctype *out)             \
    {                                               \
        lep_atom_t a;                               \
        int rc = read_typed(r, T, &a);              \
        if (rc == 0)                                \
            *out = (ctype)a.u.member;               \
        return rc;                                  \
    }

TYPED_READ(lep_read_bool, LEP_TYPE_BOOL, bool, b)
TYPED_READ(lep_read_ubyte, LEP_TYPE_UBYTE, uint8_t, u)
TYPED_READ(lep_read_ushort, LEP_TYPE_USHORT, uint16_t, u)
TYPED_READ(lep_read_uint, LEP_TYPE_UINT, uint32_t, u)
TYPED_READ(lep_read_ulong, LEP_TYPE_ULONG, uint64_t, u)
TYPED_READ(lep_read_byte, LEP_TYPE_BYTE, int8_t, i)
TYPED_READ(lep_read_short, LEP_TYPE_SHORT, int16_t, i)
TYPED_READ(lep_read_int, LEP_TYPE_INT, int32_t, i)
TYPED_READ(lep_read_long, LEP_TYPE_LONG, int64_t, i)
TYPED_READ(lep_read_float, LEP_TYPE_FLOAT, float, f)
TYPED_READ(lep_read_double, LEP_TYPE_DOUBLE, double, d)
TYPED_READ(lep_read_char, LEP_TYPE_CHAR, uint32_t, u)
TYPED_READ(lep_read_timestamp, LEP_TYPE_TIMESTAMP, int64_t, i)
TYPED_READ(lep_read_binary, LEP_TYPE_BINARY, lep_bytes_t, bytes)
TYPED_READ(lep_read_string, LEP_TYPE_STRING, lep_bytes_t, bytes)
TYPED_READ(lep_read_symbol, LEP_TYPE_SYMBOL, lep_bytes_t, bytes)

int
lep_read_uuid(lep_reader_t *r, uint8_t out[16])
{
    lep_atom_t a;
    int rc = read_typed(r, LEP_TYPE_UUID, &a);
    if (rc == 0)
        memcpy(out, a.u.uuid, 16);
    return rc;
}

bool
lep_read_null(lep_reader_t *r)
{
    lep_atom_t a;
    return read_typed(r, LEP_TYPE_NULL, &a) == 0;
}

int
lep_read_descriptor(lep_reader_t *r, uint64_t *code, lep_bytes_t *name)
{
    lep_atom_t d;
    const uint8_t *next;
    int rc;

    if (r->array_code)
        return LEP_ERR_TYPE;
    if (r->remaining == 0)
        return LEP_ERR_NOT_FOUND;
    if (r->p >= r->end)
        return r->remaining == UINT32_MAX ? LEP_ERR_INCOMPLETE : LEP_ERR_DECODE;
    if (*r->p != LEP_FC_DESCRIBED)
        return LEP_ERR_TYPE;
    if ((unsigned)r->depth + 1 > LEP_CODEC_MAX_DEPTH)
        return LEP_ERR_LIMIT;
    rc = decode_value(r->p + 1, r->end, r->depth + 1, r->remaining != UINT32_MAX, &d, &next);
    if (rc)
        return rc;
    if (code)
        *code = 0;
    if (name)
        *name = (lep_bytes_t){0};
    if (d.type == LEP_TYPE_ULONG) {
        if (code)
            *code = d.u.u;
    } else if (d.type == LEP_TYPE_SYMBOL) {
        if (name)
            *name = d.u.bytes;
    } else {
        return LEP_ERR_TYPE;
    }
    /* The described value that follows still counts as the element. */
    r->p = next;
    return 0;
}

static int
read_compound(lep_reader_t *r, lep_type_t t, lep_reader_t *child, uint32_t *count)
{
    lep_atom_t a;
    lep_reader_t save = *r;
    int rc = read_typed(r, t, &a);
    if (rc)
        return rc;
    if ((rc = lep_reader_enter(r, &a, child)) != 0) {
        *r = save;
        return rc;
    }
    if (count)
        *count = a.count;
    return 0;
}

int
lep_read_list(lep_reader_t *r, lep_reader_t *child, uint32_t *count)
{
    return read_compound(r, LEP_TYPE_LIST, child, count);
}

int
lep_read_map(lep_reader_t *r, lep_reader_t *child, uint32_t *count)
{
    return read_compound(r, LEP_TYPE_MAP, child, count);
}

int
lep_read_array(lep_reader_t *r, lep_reader_t *child, uint32_t *count, lep_type_t *elem_type)
{
    lep_atom_t a;
    int rc = lep_reader_peek(r, &a);
    if (rc)
        return rc;
    if ((rc = read_compound(r, LEP_TYPE_ARRAY, child, count)) != 0)
        return rc;
    if (elem_type) {
        int t = lep_type_of_code(a.code);
        *elem_type = child->array_desc.len ? LEP_TYPE_DESCRIBED : (lep_type_t)t;
    }
    return 0;
}
