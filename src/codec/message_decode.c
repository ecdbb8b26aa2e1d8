/* lep_message_decode: the sections of an encoded message, parsed straight
 * into the message's fields -- the common encodings inline, the rest with
 * the streaming reader.  The input is copied once into the message's
 * storage and every field is a view into that copy, so a warm message
 * decodes without allocating. */
#include "codec/message_internal.h"
#include "codec/codec_internal.h"

#include <string.h>

/* Position of each section in the order the spec requires. */
enum {
    RANK_HEADER = 0,
    RANK_DELIVERY_ANNOTATIONS,
    RANK_MESSAGE_ANNOTATIONS,
    RANK_PROPERTIES,
    RANK_APPLICATION_PROPERTIES,
    RANK_BODY,
    RANK_FOOTER,
};

static int
section_code(uint64_t code, lep_bytes_t name)
{
    if (name.ptr) {
        const lep_descriptor_info_t *d = lep_descriptor_lookup_name(name);
        if (!d)
            return LEP_ERR_DECODE;
        code = d->code;
    }
    if (code >= LEP_DESC_HEADER && code <= LEP_DESC_FOOTER)
        return (int)code;
    return LEP_ERR_DECODE; /* not a message section */
}

/* ---- fast paths ----
 *
 * The fields of the header and properties lists, and the entries of the
 * maps, are read here straight from the bytes for the encodings peers
 * actually use (null, the fixed-width scalars, str8/sym8/vbin8 and their
 * 32-bit forms).  Anything else -- compounds, descriptors, decimals, or
 * malformed input -- goes through lep_reader_t, which has the last word on
 * what is well-formed. */

/* Fields of a list (or entries of a map) being read: the list's bytes and
 * how many values it claims. */
typedef struct fields {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t left;
} fields_t;

/* Reads one value through the generic reader (the slow path). */
static int
slow_next(fields_t *f, lep_atom_t *a)
{
    lep_reader_t r;
    lep_reader_init(&r, f->p, (size_t)(f->end - f->p));
    r.remaining = f->left; /* bounded: running short is malformed */
    r.depth = 2;
    int rc = lep_reader_next(&r, a);
    if (rc)
        return rc;
    if ((rc = lepi_check_inside(&r, a)) != 0)
        return rc;
    f->p = r.p;
    f->left--;
    return 0;
}

/* Decodes one scalar value at f->p into *a when its encoding is one of the
 * common ones; returns 1 (nothing consumed) to ask for the slow path. */
static inline int
fast_atom(fields_t *f, lep_atom_t *a)
{
    const uint8_t *p = f->p;
    size_t avail = (size_t)(f->end - p);
    if (avail == 0 || f->left == 0)
        return 1;
    uint8_t code = p[0];
    size_t n, hw;
    lep_type_t t;
    a->code = code;
    a->flags = 0;
    a->count = 0;
    a->content = (lep_bytes_t){0};
    a->ctor = (lep_bytes_t){0};
    switch (code) {
    case LEP_FC_NULL:  t = LEP_TYPE_NULL; n = 1; break;
    case LEP_FC_TRUE:  t = LEP_TYPE_BOOL; a->u.b = true; n = 1; break;
    case LEP_FC_FALSE: t = LEP_TYPE_BOOL; a->u.b = false; n = 1; break;
    case LEP_FC_UINT0: t = LEP_TYPE_UINT; a->u.u = 0; n = 1; break;
    case LEP_FC_ULONG0: t = LEP_TYPE_ULONG; a->u.u = 0; n = 1; break;
    case LEP_FC_UBYTE: t = LEP_TYPE_UBYTE; goto u8;
    case LEP_FC_SMALLUINT: t = LEP_TYPE_UINT; goto u8;
    case LEP_FC_SMALLULONG: t = LEP_TYPE_ULONG;
    u8:
        if (avail < 2)
            return 1;
        a->u.u = p[1];
        n = 2;
        break;
    case LEP_FC_BYTE: t = LEP_TYPE_BYTE; goto i8;
    case LEP_FC_SMALLINT: t = LEP_TYPE_INT; goto i8;
    case LEP_FC_SMALLLONG: t = LEP_TYPE_LONG;
    i8:
        if (avail < 2)
            return 1;
        a->u.i = (int8_t)p[1];
        n = 2;
        break;
    case LEP_FC_UINT:
        if (avail < 5)
            return 1;
        t = LEP_TYPE_UINT;
        a->u.u = lepi_be32(p + 1);
        n = 5;
        break;
    case LEP_FC_INT:
        if (avail < 5)
            return 1;
        t = LEP_TYPE_INT;
        a->u.i = (int32_t)lepi_be32(p + 1);
        n = 5;
        break;
    case LEP_FC_ULONG:
        if (avail < 9)
            return 1;
        t = LEP_TYPE_ULONG;
        a->u.u = lepi_be64(p + 1);
        n = 9;
        break;
    case LEP_FC_LONG:
    case LEP_FC_TIMESTAMP:
        if (avail < 9)
            return 1;
        t = code == LEP_FC_LONG ? LEP_TYPE_LONG : LEP_TYPE_TIMESTAMP;
        a->u.i = (int64_t)lepi_be64(p + 1);
        n = 9;
        break;
    case LEP_FC_DOUBLE: {
        if (avail < 9)
            return 1;
        uint64_t bits = lepi_be64(p + 1);
        t = LEP_TYPE_DOUBLE;
        memcpy(&a->u.d, &bits, 8);
        n = 9;
        break;
    }
    case LEP_FC_UUID:
        if (avail < 17)
            return 1;
        t = LEP_TYPE_UUID;
        memcpy(a->u.uuid, p + 1, 16);
        n = 17;
        break;
    case LEP_FC_VBIN8: t = LEP_TYPE_BINARY; hw = 1; goto var;
    case LEP_FC_STR8: t = LEP_TYPE_STRING; hw = 1; goto var;
    case LEP_FC_SYM8: t = LEP_TYPE_SYMBOL; hw = 1; goto var;
    case LEP_FC_VBIN32: t = LEP_TYPE_BINARY; hw = 4; goto var;
    case LEP_FC_STR32: t = LEP_TYPE_STRING; hw = 4; goto var;
    case LEP_FC_SYM32: t = LEP_TYPE_SYMBOL; hw = 4;
    var: {
        if (avail < 1 + hw)
            return 1;
        size_t len = hw == 1 ? p[1] : lepi_be32(p + 1);
        if (avail - 1 - hw < len)
            return 1;
        const uint8_t *s = p + 1 + hw;
        if (t == LEP_TYPE_STRING ? !lepi_msg_utf8_ok(s, len)
                                 : (t == LEP_TYPE_SYMBOL && !lep_ascii_valid(s, len)))
            return 1; /* the slow path names the error */
        a->u.bytes = (lep_bytes_t){s, len};
        n = 1 + hw + len;
        break;
    }
    default:
        return 1;
    }
    a->type = t;
    a->raw = (lep_bytes_t){p, n};
    f->p = p + n;
    f->left--;
    return 0;
}

static inline int
next_atom(fields_t *f, lep_atom_t *a)
{
    int rc = fast_atom(f, a);
    return rc == 1 ? slow_next(f, a) : rc;
}

/* Opens a list or map (want: LEP_TYPE_LIST or LEP_TYPE_MAP) at *p. */
static int
open_compound(const uint8_t **pp, const uint8_t *end, lep_type_t want, fields_t *f)
{
    const uint8_t *p = *pp;
    size_t avail = (size_t)(end - p);
    if (avail >= 1 && p[0] == LEP_FC_LIST0 && want == LEP_TYPE_LIST) {
        *f = (fields_t){p + 1, p + 1, 0};
        *pp = p + 1;
        return 0;
    }
    uint8_t c8 = want == LEP_TYPE_LIST ? LEP_FC_LIST8 : LEP_FC_MAP8;
    uint8_t c32 = want == LEP_TYPE_LIST ? LEP_FC_LIST32 : LEP_FC_MAP32;
    if (avail >= 3 && p[0] == c8) {
        size_t size = p[1];
        if (size >= 1 && avail - 2 >= size && p[2] <= size - 1) {
            *f = (fields_t){p + 3, p + 2 + size, p[2]};
            *pp = p + 2 + size;
            return 0;
        }
    } else if (avail >= 9 && p[0] == c32) {
        size_t size = lepi_be32(p + 1);
        uint32_t count = lepi_be32(p + 5);
        if (size >= 4 && avail - 5 >= size && count <= size - 4) {
            *f = (fields_t){p + 9, p + 5 + size, count};
            *pp = p + 5 + size;
            return 0;
        }
    }
    /* Anything else: let the reader say what is wrong with it. */
    lep_reader_t r, child;
    uint32_t count;
    lep_reader_init(&r, p, avail);
    int rc = want == LEP_TYPE_LIST ? lep_read_list(&r, &child, &count)
                                   : lep_read_map(&r, &child, &count);
    if (rc)
        return rc;
    *f = (fields_t){child.p, child.end, count};
    *pp = r.p;
    return 0;
}

/* After the fields we know: a newer peer's extra fields are skipped (they
 * must still be well-formed), and the values must fill the list exactly. */
static int
list_finish(fields_t *f)
{
    int rc;
    while (f->left) {
        lep_atom_t a;
        if ((rc = next_atom(f, &a)) != 0)
            return rc;
    }
    return f->p == f->end ? 0 : LEP_ERR_DECODE;
}

/* Reads the next field: 1 when absent (no more fields, or null), 0 with
 * *a set, or an error. */
static inline int
next_field(fields_t *f, lep_atom_t *a)
{
    if (f->left == 0)
        return 1;
    if (f->p < f->end && f->p[0] == LEP_FC_NULL) {
        f->p++;
        f->left--;
        return 1;
    }
    return next_atom(f, a);
}

/* A field in its short form (str8, sym8, vbin8 of at most 255 bytes, the
 * form nearly every peer uses) read in place; false leaves everything
 * else, errors included, to the general path. */
static inline bool
short_bytes(fields_t *f, uint8_t code8, lep_bytes_t *out)
{
    const uint8_t *p = f->p;
    if (f->left == 0 || f->end - p < 2 || p[0] != code8 || (size_t)(f->end - p - 2) < p[1])
        return false;
    const uint8_t *s = p + 2;
    size_t n = p[1];
    if (code8 == LEP_FC_STR8 ? !lepi_msg_utf8_ok(s, n)
                             : (code8 == LEP_FC_SYM8 && !lep_ascii_valid(s, n)))
        return false;
    *out = (lep_bytes_t){s, n};
    f->p = s + n;
    f->left--;
    return true;
}

static int
decode_header(lep_message_t *m, const uint8_t **pp, const uint8_t *end)
{
    fields_t f;
    lep_atom_t a;
    int rc = open_compound(pp, end, LEP_TYPE_LIST, &f);
    if (rc)
        return rc;
#define FIELD(bit, T, stmt)                                                   \
    if ((rc = next_field(&f, &a)) < 0)                                        \
        return rc;                                                            \
    if (rc == 0) {                                                            \
        if (a.type != (T))                                                    \
            return LEP_ERR_TYPE;                                              \
        stmt;                                                                 \
        m->present |= LEPI_BIT(bit);                                          \
    }
    FIELD(LEP_MSG_DURABLE, LEP_TYPE_BOOL, m->durable = a.u.b);
    FIELD(LEP_MSG_PRIORITY, LEP_TYPE_UBYTE, m->priority = (uint8_t)a.u.u);
    FIELD(LEP_MSG_TTL, LEP_TYPE_UINT, m->ttl = (uint32_t)a.u.u);
    FIELD(LEP_MSG_FIRST_ACQUIRER, LEP_TYPE_BOOL, m->first_acquirer = a.u.b);
    FIELD(LEP_MSG_DELIVERY_COUNT, LEP_TYPE_UINT, m->delivery_count = (uint32_t)a.u.u);
    return list_finish(&f);
}

static int
decode_properties(lep_message_t *m, const uint8_t **pp, const uint8_t *end)
{
    fields_t f;
    lep_atom_t a;
    int rc = open_compound(pp, end, LEP_TYPE_LIST, &f);
    if (rc)
        return rc;
#define ID_FIELD(bit, slot)                                                   \
    if ((rc = next_field(&f, &slot)) < 0)                                     \
        return rc;                                                            \
    if (rc == 0) {                                                            \
        if (slot.type != LEP_TYPE_ULONG && slot.type != LEP_TYPE_UUID &&      \
            slot.type != LEP_TYPE_BINARY && slot.type != LEP_TYPE_STRING)     \
            return LEP_ERR_TYPE;                                              \
        m->present |= LEPI_BIT(bit);                                          \
    }
/* Addresses are address-strings; a symbol (ASCII, so valid UTF-8 too) is
 * tolerated because some peers send one. */
#define ADDR_FIELD(bit, s)                                                    \
    if ((rc = next_field(&f, &a)) < 0)                                        \
        return rc;                                                            \
    if (rc == 0) {                                                            \
        if (a.type != LEP_TYPE_STRING && a.type != LEP_TYPE_SYMBOL)           \
            return LEP_ERR_TYPE;                                              \
        m->str[s] = a.u.bytes;                                                \
        m->present |= LEPI_BIT(bit);                                          \
    }
#define BYTES_FIELD(bit, code8, T, s)                                         \
    if (short_bytes(&f, code8, &m->str[s])) {                                 \
        m->present |= LEPI_BIT(bit);                                          \
    } else {                                                                  \
        FIELD(bit, T, m->str[s] = a.u.bytes);                                 \
    }
    ID_FIELD(LEP_MSG_MESSAGE_ID, m->message_id);
    BYTES_FIELD(LEP_MSG_USER_ID, LEP_FC_VBIN8, LEP_TYPE_BINARY, LEPI_S_USER_ID);
    if (short_bytes(&f, LEP_FC_STR8, &m->str[LEPI_S_TO])) {
        m->present |= LEPI_BIT(LEP_MSG_TO);
    } else {
        ADDR_FIELD(LEP_MSG_TO, LEPI_S_TO);
    }
    BYTES_FIELD(LEP_MSG_SUBJECT, LEP_FC_STR8, LEP_TYPE_STRING, LEPI_S_SUBJECT);
    if (short_bytes(&f, LEP_FC_STR8, &m->str[LEPI_S_REPLY_TO])) {
        m->present |= LEPI_BIT(LEP_MSG_REPLY_TO);
    } else {
        ADDR_FIELD(LEP_MSG_REPLY_TO, LEPI_S_REPLY_TO);
    }
    ID_FIELD(LEP_MSG_CORRELATION_ID, m->correlation_id);
    BYTES_FIELD(LEP_MSG_CONTENT_TYPE, LEP_FC_SYM8, LEP_TYPE_SYMBOL, LEPI_S_CONTENT_TYPE);
    BYTES_FIELD(LEP_MSG_CONTENT_ENCODING, LEP_FC_SYM8, LEP_TYPE_SYMBOL, LEPI_S_CONTENT_ENCODING);
    FIELD(LEP_MSG_ABSOLUTE_EXPIRY_TIME, LEP_TYPE_TIMESTAMP, m->absolute_expiry_time = a.u.i);
    FIELD(LEP_MSG_CREATION_TIME, LEP_TYPE_TIMESTAMP, m->creation_time = a.u.i);
    BYTES_FIELD(LEP_MSG_GROUP_ID, LEP_FC_STR8, LEP_TYPE_STRING, LEPI_S_GROUP_ID);
    FIELD(LEP_MSG_GROUP_SEQUENCE, LEP_TYPE_UINT, m->group_sequence = (uint32_t)a.u.u);
    BYTES_FIELD(LEP_MSG_REPLY_TO_GROUP_ID, LEP_FC_STR8, LEP_TYPE_STRING, LEPI_S_REPLY_TO_GROUP_ID);
#undef BYTES_FIELD
#undef ADDR_FIELD
#undef ID_FIELD
#undef FIELD
    return list_finish(&f);
}

/* Annotations (string_keys false: symbol or ulong keys, any values) or
 * application-properties (string keys). */
static int
decode_map(lepi_msg_map_t *map, bool string_keys, const uint8_t **pp, const uint8_t *end)
{
    fields_t f;
    int rc = open_compound(pp, end, LEP_TYPE_MAP, &f);
    if (rc)
        return rc;
    if (f.left & 1)
        return LEP_ERR_DECODE;
    uint32_t pairs = f.left / 2;
    /* Each entry takes two bytes at least, so the input bounds what a
     * count can make us reserve. */
    if ((size_t)pairs > (size_t)(f.end - f.p) / 2)
        return LEP_ERR_DECODE;
    if (pairs > map->cap && (rc = lepi_msg_map_reserve(map, pairs)) != 0)
        return rc;
    lepi_msg_entry_t *e = map->e;
    const uint8_t *start = f.p;
    for (uint32_t i = 0; i < pairs; i++) {
        if ((rc = next_atom(&f, &e[i].key)) != 0)
            return rc;
        if (string_keys ? e[i].key.type != LEP_TYPE_STRING
                        : (e[i].key.type != LEP_TYPE_SYMBOL && e[i].key.type != LEP_TYPE_ULONG))
            return LEP_ERR_TYPE;
        if ((rc = next_atom(&f, &e[i].value)) != 0)
            return rc;
        map->n = i + 1;
    }
    map->bytes = (uint64_t)(f.p - start);
    return f.p == f.end ? 0 : LEP_ERR_DECODE;
}

static int
decode_body(lep_message_t *m, int code, const uint8_t **pp, const uint8_t *end)
{
    int rc;
    const uint8_t *p = *pp;
    lep_bytes_t v;
    if (m->nbody == m->cap_body && (rc = lepi_msg_body_reserve(m, m->nbody + 1)) != 0)
        return rc;
    if (code == LEP_DESC_DATA && end - p >= 2 && p[0] == LEP_FC_VBIN8 &&
        (size_t)(end - p - 2) >= p[1]) {
        v = (lep_bytes_t){p + 2, p[1]};
        *pp = p + 2 + p[1];
    } else {
        lep_reader_t r;
        lep_atom_t a;
        lep_reader_init(&r, p, (size_t)(end - p));
        r.depth = 1;
        if ((rc = lep_reader_next(&r, &a)) != 0)
            return rc;
        if (code == LEP_DESC_DATA) {
            if (a.type != LEP_TYPE_BINARY)
                return LEP_ERR_TYPE;
            v = a.u.bytes;
        } else {
            if (code == LEP_DESC_AMQP_SEQUENCE && a.type != LEP_TYPE_LIST)
                return LEP_ERR_TYPE;
            if ((rc = lepi_check_inside(&r, &a)) != 0)
                return rc;
            v = a.raw;
        }
        *pp = r.p;
    }
    m->body_kind = code == LEP_DESC_DATA           ? LEP_BODY_DATA
                   : code == LEP_DESC_AMQP_VALUE ? LEP_BODY_VALUE
                                                 : LEP_BODY_SEQUENCE;
    m->body[m->nbody++] = v;
    return 0;
}

/* Reads a section's descriptor: 0x00 smallulong code in practice, but any
 * ulong or the symbolic name is accepted. */
static int
read_section_code(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    if (end - p >= 3 && p[0] == LEP_FC_DESCRIBED && p[1] == LEP_FC_SMALLULONG) {
        *pp = p + 3;
        return section_code(p[2], (lep_bytes_t){0});
    }
    lep_reader_t r;
    uint64_t code;
    lep_bytes_t name;
    lep_reader_init(&r, p, (size_t)(end - p));
    int rc = lep_read_descriptor(&r, &code, &name);
    if (rc)
        return rc;
    *pp = r.p;
    return section_code(code, name);
}

static int
decode_sections(lep_message_t *m, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    int rc;
    int last = -1;
    while (p < end) {
        int code = read_section_code(&p, end);
        if (code < 0)
            return code;
        if (p >= end)
            return LEP_ERR_INCOMPLETE;
        int rank;
        switch (code) {
        case LEP_DESC_HEADER:                 rank = RANK_HEADER; break;
        case LEP_DESC_DELIVERY_ANNOTATIONS:   rank = RANK_DELIVERY_ANNOTATIONS; break;
        case LEP_DESC_MESSAGE_ANNOTATIONS:    rank = RANK_MESSAGE_ANNOTATIONS; break;
        case LEP_DESC_PROPERTIES:             rank = RANK_PROPERTIES; break;
        case LEP_DESC_APPLICATION_PROPERTIES: rank = RANK_APPLICATION_PROPERTIES; break;
        case LEP_DESC_FOOTER:                 rank = RANK_FOOTER; break;
        default:                              rank = RANK_BODY; break;
        }
        if (rank < last)
            return LEP_ERR_DECODE;
        if (rank == last) {
            /* Only data and amqp-sequence sections repeat, and only with
             * their own kind. */
            bool again = (code == LEP_DESC_DATA && m->body_kind == LEP_BODY_DATA) ||
                         (code == LEP_DESC_AMQP_SEQUENCE && m->body_kind == LEP_BODY_SEQUENCE);
            if (!again)
                return LEP_ERR_DECODE;
        }
        last = rank;
        switch (code) {
        case LEP_DESC_HEADER:
            rc = decode_header(m, &p, end);
            break;
        case LEP_DESC_DELIVERY_ANNOTATIONS:
            rc = decode_map(&m->maps[LEP_MSG_DELIVERY_ANNOTATIONS], false, &p, end);
            break;
        case LEP_DESC_MESSAGE_ANNOTATIONS:
            rc = decode_map(&m->maps[LEP_MSG_MESSAGE_ANNOTATIONS], false, &p, end);
            break;
        case LEP_DESC_PROPERTIES:
            rc = decode_properties(m, &p, end);
            break;
        case LEP_DESC_APPLICATION_PROPERTIES:
            rc = decode_map(&m->maps[LEPI_MAP_PROPERTIES], true, &p, end);
            break;
        case LEP_DESC_FOOTER:
            rc = decode_map(&m->maps[LEP_MSG_FOOTER], false, &p, end);
            break;
        default:
            rc = decode_body(m, code, &p, end);
            break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* True when [p, p+len) overlaps the message's storage, as when a message
 * is decoded from a view of its own body. */
static bool
in_storage(const lep_message_t *m, const void *p, size_t len)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + len;
    for (const lepi_arena_block_t *b = m->arena.head; b; b = b->next) {
        uintptr_t blo = (uintptr_t)b->data, bhi = blo + b->cap;
        if (lo < bhi && blo < hi)
            return true;
    }
    return false;
}

int
lep_message_decode(lep_message_t *m, const void *p, size_t len)
{
    if (len && !p)
        return LEP_ERR_INVALID;
    if (len && in_storage(m, p, len)) {
        /* Clearing would recycle the bytes being decoded: decode from a
         * copy instead (rare; allocates). */
        uint8_t *tmp = lep_malloc(len);
        if (!tmp) {
            lep_message_clear(m);
            return LEP_ERR_NOMEM;
        }
        memcpy(tmp, p, len);
        int rc = lep_message_decode(m, tmp, len);
        lep_free(tmp);
        return rc;
    }
    lep_message_clear(m);
    if (len == 0)
        return 0;
    uint8_t *copy = lepi_arena_alloc(&m->arena, len);
    if (!copy)
        return LEP_ERR_NOMEM;
    memcpy(copy, p, len);
    int rc = decode_sections(m, copy, len);
    if (rc)
        lep_message_clear(m);
    return rc;
}
