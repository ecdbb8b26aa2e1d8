/* lep_message_decode: the sections of an encoded message, parsed with the
 * streaming reader straight into the message's fields.  The input is
 * copied once into the message's storage and every field is a view into
 * that copy, so a warm message decodes without allocating. */
#include "codec/message_internal.h"

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

static const struct {
    const char *name;
    uint8_t code;
} section_names[] = {
    {"amqp:header:list", LEP_DESC_HEADER},
    {"amqp:delivery-annotations:map", LEP_DESC_DELIVERY_ANNOTATIONS},
    {"amqp:message-annotations:map", LEP_DESC_MESSAGE_ANNOTATIONS},
    {"amqp:properties:list", LEP_DESC_PROPERTIES},
    {"amqp:application-properties:map", LEP_DESC_APPLICATION_PROPERTIES},
    {"amqp:data:binary", LEP_DESC_DATA},
    {"amqp:amqp-sequence:list", LEP_DESC_AMQP_SEQUENCE},
    {"amqp:amqp-value:*", LEP_DESC_AMQP_VALUE},
    {"amqp:footer:map", LEP_DESC_FOOTER},
};

static int
section_code(uint64_t code, lep_bytes_t name)
{
    if (name.ptr) {
        for (size_t i = 0; i < sizeof section_names / sizeof section_names[0]; i++)
            if (lep_bytes_eq_str(name, section_names[i].name))
                return section_names[i].code;
        return -1;
    }
    if (code >= LEP_DESC_HEADER && code <= LEP_DESC_FOOTER)
        return (int)code;
    return -1;
}

/* After the fields we know: a newer peer's extra fields are skipped (they
 * must still be well-formed), and the values must fill the list exactly. */
static int
list_finish(lep_reader_t *lr)
{
    int rc;
    while (!lep_reader_done(lr)) {
        lep_atom_t a;
        if ((rc = lep_reader_next(lr, &a)) != 0)
            return rc;
        if ((rc = lepi_msg_check_children(lr, &a, 1)) != 0)
            return rc;
    }
    return lr->p == lr->end ? 0 : LEP_ERR_DECODE;
}

/* True when the list has no more fields or the next one is null (absent):
 * either way it is consumed. */
static inline bool
field_absent(lep_reader_t *lr)
{
    return lep_reader_done(lr) || lep_read_null(lr);
}

static int
decode_header(lep_message_t *m, lep_reader_t *r)
{
    lep_reader_t lr;
    uint32_t count;
    int rc = lep_read_list(r, &lr, &count);
    if (rc)
        return rc;
    if (!field_absent(&lr)) {
        if ((rc = lep_read_bool(&lr, &m->durable)) != 0)
            return rc;
        m->present |= LEPI_BIT(LEP_MSG_DURABLE);
    }
    if (!field_absent(&lr)) {
        if ((rc = lep_read_ubyte(&lr, &m->priority)) != 0)
            return rc;
        m->present |= LEPI_BIT(LEP_MSG_PRIORITY);
    }
    if (!field_absent(&lr)) {
        if ((rc = lep_read_uint(&lr, &m->ttl)) != 0)
            return rc;
        m->present |= LEPI_BIT(LEP_MSG_TTL);
    }
    if (!field_absent(&lr)) {
        if ((rc = lep_read_bool(&lr, &m->first_acquirer)) != 0)
            return rc;
        m->present |= LEPI_BIT(LEP_MSG_FIRST_ACQUIRER);
    }
    if (!field_absent(&lr)) {
        if ((rc = lep_read_uint(&lr, &m->delivery_count)) != 0)
            return rc;
        m->present |= LEPI_BIT(LEP_MSG_DELIVERY_COUNT);
    }
    return list_finish(&lr);
}

static int
read_id(lep_reader_t *lr, lep_message_t *m, lep_msg_field_t f, lep_atom_t *slot)
{
    int rc = lep_reader_next(lr, slot);
    if (rc)
        return rc;
    switch (slot->type) {
    case LEP_TYPE_ULONG:
    case LEP_TYPE_UUID:
    case LEP_TYPE_BINARY:
    case LEP_TYPE_STRING:
        m->present |= LEPI_BIT(f);
        return 0;
    default:
        slot->type = LEP_TYPE_NULL;
        return LEP_ERR_TYPE;
    }
}

/* Addresses are address-strings; a symbol (ASCII, so valid UTF-8 too) is
 * tolerated because some peers send one. */
static int
read_address(lep_reader_t *lr, lep_bytes_t *out)
{
    int rc = lep_read_string(lr, out);
    if (rc == LEP_ERR_TYPE)
        rc = lep_read_symbol(lr, out);
    return rc;
}

static int
decode_properties(lep_message_t *m, lep_reader_t *r)
{
    lep_reader_t lr;
    uint32_t count;
    int rc = lep_read_list(r, &lr, &count);
    if (rc)
        return rc;
#define FIELD(f, stmt)                                                        \
    if (!field_absent(&lr)) {                                                 \
        if ((rc = (stmt)) != 0)                                               \
            return rc;                                                        \
        m->present |= LEPI_BIT(f);                                            \
    }
    if (!field_absent(&lr) &&
        (rc = read_id(&lr, m, LEP_MSG_MESSAGE_ID, &m->message_id)) != 0)
        return rc;
    FIELD(LEP_MSG_USER_ID, lep_read_binary(&lr, &m->str[LEPI_S_USER_ID]));
    FIELD(LEP_MSG_TO, read_address(&lr, &m->str[LEPI_S_TO]));
    FIELD(LEP_MSG_SUBJECT, lep_read_string(&lr, &m->str[LEPI_S_SUBJECT]));
    FIELD(LEP_MSG_REPLY_TO, read_address(&lr, &m->str[LEPI_S_REPLY_TO]));
    if (!field_absent(&lr) &&
        (rc = read_id(&lr, m, LEP_MSG_CORRELATION_ID, &m->correlation_id)) != 0)
        return rc;
    FIELD(LEP_MSG_CONTENT_TYPE, lep_read_symbol(&lr, &m->str[LEPI_S_CONTENT_TYPE]));
    FIELD(LEP_MSG_CONTENT_ENCODING, lep_read_symbol(&lr, &m->str[LEPI_S_CONTENT_ENCODING]));
    FIELD(LEP_MSG_ABSOLUTE_EXPIRY_TIME, lep_read_timestamp(&lr, &m->absolute_expiry_time));
    FIELD(LEP_MSG_CREATION_TIME, lep_read_timestamp(&lr, &m->creation_time));
    FIELD(LEP_MSG_GROUP_ID, lep_read_string(&lr, &m->str[LEPI_S_GROUP_ID]));
    FIELD(LEP_MSG_GROUP_SEQUENCE, lep_read_uint(&lr, &m->group_sequence));
    FIELD(LEP_MSG_REPLY_TO_GROUP_ID, lep_read_string(&lr, &m->str[LEPI_S_REPLY_TO_GROUP_ID]));
#undef FIELD
    return list_finish(&lr);
}

/* Annotations (string_keys false: symbol or ulong keys, any values) or
 * application-properties (string keys). */
static int
decode_map(lep_reader_t *r, lepi_msg_map_t *map, bool string_keys)
{
    lep_reader_t mr;
    uint32_t count;
    int rc = lep_read_map(r, &mr, &count);
    if (rc)
        return rc;
    if (count & 1)
        return LEP_ERR_DECODE;
    /* count is bounded by the input size, so this cannot be abused to
     * reserve more than the input could fill. */
    if ((size_t)(count / 2) > (size_t)(mr.end - mr.p))
        return LEP_ERR_DECODE;
    if ((rc = lepi_msg_map_reserve(map, count / 2)) != 0)
        return rc;
    lepi_msg_entry_t *e = map->e;
    uint32_t n = 0;
    while (!lep_reader_done(&mr)) {
        if (n == count / 2)
            return LEP_ERR_DECODE;
        if ((rc = lep_reader_next(&mr, &e[n].key)) != 0)
            return rc;
        if (string_keys ? e[n].key.type != LEP_TYPE_STRING
                        : (e[n].key.type != LEP_TYPE_SYMBOL && e[n].key.type != LEP_TYPE_ULONG))
            return LEP_ERR_TYPE;
        if (lep_reader_done(&mr))
            return LEP_ERR_DECODE;
        if ((rc = lep_reader_next(&mr, &e[n].value)) != 0)
            return rc;
        if (e[n].value.type >= LEP_TYPE_LIST &&
            (rc = lepi_msg_check_children(&mr, &e[n].value, 1)) != 0)
            return rc;
        map->n = ++n;
    }
    if (mr.p != mr.end || n != count / 2)
        return LEP_ERR_DECODE;
    return 0;
}

static int
decode_body(lep_message_t *m, lep_reader_t *r, int code)
{
    int rc;
    lep_bytes_t v;
    if (m->nbody == m->cap_body && (rc = lepi_msg_body_reserve(m, m->nbody + 1)) != 0)
        return rc;
    if (code == LEP_DESC_DATA) {
        if ((rc = lep_read_binary(r, &v)) != 0)
            return rc;
        m->body_kind = LEP_BODY_DATA;
    } else {
        lep_atom_t a;
        const uint8_t *start = r->p;
        if ((rc = lep_reader_next(r, &a)) != 0)
            return rc;
        if (code == LEP_DESC_AMQP_SEQUENCE && a.type != LEP_TYPE_LIST)
            return LEP_ERR_TYPE;
        if ((rc = lepi_msg_check_children(r, &a, 1)) != 0)
            return rc;
        v = (lep_bytes_t){start, (size_t)(r->p - start)};
        m->body_kind = code == LEP_DESC_AMQP_VALUE ? LEP_BODY_VALUE : LEP_BODY_SEQUENCE;
    }
    m->body[m->nbody++] = v;
    return 0;
}

static int
decode_sections(lep_message_t *m, const uint8_t *p, size_t len)
{
    lep_reader_t r;
    int rc;
    int last = -1;
    lep_reader_init(&r, p, len);
    while (!lep_reader_done(&r)) {
        uint64_t code64;
        lep_bytes_t name;
        if ((rc = lep_read_descriptor(&r, &code64, &name)) != 0)
            return rc;
        int code = section_code(code64, name);
        if (code < 0)
            return LEP_ERR_DECODE;
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
            rc = decode_header(m, &r);
            break;
        case LEP_DESC_DELIVERY_ANNOTATIONS:
            rc = decode_map(&r, &m->maps[LEP_MSG_DELIVERY_ANNOTATIONS], false);
            break;
        case LEP_DESC_MESSAGE_ANNOTATIONS:
            rc = decode_map(&r, &m->maps[LEP_MSG_MESSAGE_ANNOTATIONS], false);
            break;
        case LEP_DESC_PROPERTIES:
            rc = decode_properties(m, &r);
            break;
        case LEP_DESC_APPLICATION_PROPERTIES:
            rc = decode_map(&r, &m->maps[LEPI_MAP_PROPERTIES], true);
            break;
        case LEP_DESC_FOOTER:
            rc = decode_map(&r, &m->maps[LEP_MSG_FOOTER], false);
            break;
        default:
            rc = decode_body(m, &r, code);
            break;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int
lep_message_decode(lep_message_t *m, const void *p, size_t len)
{
    lep_message_clear(m);
    if (len == 0)
        return 0;
    if (!p)
        return LEP_ERR_INVALID;
    uint8_t *copy = lepi_arena_alloc(&m->arena, len);
    if (!copy)
        return LEP_ERR_NOMEM;
    memcpy(copy, p, len);
    int rc = decode_sections(m, copy, len);
    if (rc)
        lep_message_clear(m);
    return rc;
}
