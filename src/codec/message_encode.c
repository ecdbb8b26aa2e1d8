/* lep_message_encode: the message's fields straight to bytes.
 *
 * Two passes over the fields: the first adds up the exact encoded size of
 * each section (so every list and map header gets its final, narrowest
 * form at once and nothing is moved afterwards), the second writes into
 * space reserved in one go.  Stored atoms carry their encoding (the
 * smallest form for values set by the caller, the form they arrived in for
 * decoded ones), so they are copied. */
#include "codec/message_internal.h"

#include <assert.h>
#include <string.h>

/* ---- sizes ---- */

static inline uint64_t
sz_vbytes(size_t n)
{
    return n <= 255 ? 2 + (uint64_t)n : 5 + (uint64_t)n;
}

static inline uint64_t
sz_uint(uint64_t v)
{
    return v == 0 ? 1 : v <= 255 ? 2 : 5;
}

/* A list or map of count elements whose encodings take body bytes. */
static inline uint64_t
sz_compound(uint64_t body, uint32_t count, bool list)
{
    if (list && count == 0)
        return 1;
    if (body + 1 <= 255 && count <= 255)
        return 3 + body;
    return 9 + body;
}

/* ---- writers: the caller reserved the space ---- */

static inline uint8_t *
w_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *
w_be64(uint8_t *p, uint64_t v)
{
    w_be32(p, (uint32_t)(v >> 32));
    return w_be32(p + 4, (uint32_t)v);
}

static inline uint8_t *
w_uint(uint8_t *p, uint32_t v)
{
    if (v == 0) {
        *p++ = LEP_FC_UINT0;
    } else if (v <= 255) {
        p[0] = LEP_FC_SMALLUINT;
        p[1] = (uint8_t)v;
        p += 2;
    } else {
        *p++ = LEP_FC_UINT;
        p = w_be32(p, v);
    }
    return p;
}

/* Copies n bytes.  Most of what a message holds is short: copy that
 * inline with overlapping word moves instead of calling memcpy. */
static inline uint8_t *
w_copy(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n <= 16) {
        if (n >= 8) {
            uint64_t a, b;
            memcpy(&a, s, 8);
            memcpy(&b, s + n - 8, 8);
            memcpy(d, &a, 8);
            memcpy(d + n - 8, &b, 8);
        } else if (n >= 4) {
            uint32_t a, b;
            memcpy(&a, s, 4);
            memcpy(&b, s + n - 4, 4);
            memcpy(d, &a, 4);
            memcpy(d + n - 4, &b, 4);
        } else if (n) {
            d[0] = s[0];
            d[n / 2] = s[n / 2];
            d[n - 1] = s[n - 1];
        }
    } else if (n <= 32) {
        uint8_t a[16], b[16];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + n - 16, b, 16);
    } else {
        memcpy(d, s, n);
    }
    return d + n;
}

static inline uint8_t *
w_vbytes(uint8_t *p, uint8_t code8, uint8_t code32, const uint8_t *s, size_t n)
{
    if (n <= 255) {
        p[0] = code8;
        p[1] = (uint8_t)n;
        p += 2;
    } else {
        *p++ = code32;
        p = w_be32(p, (uint32_t)n);
    }
    return w_copy(p, s, n);
}

/* Every stored atom carries its encoding. */
static inline uint8_t *
w_atom(uint8_t *p, const lep_atom_t *a)
{
    return w_copy(p, a->raw.ptr, a->raw.len);
}

static inline uint8_t *
w_section(uint8_t *p, uint8_t code)
{
    p[0] = LEP_FC_DESCRIBED;
    p[1] = LEP_FC_SMALLULONG;
    p[2] = code;
    return p + 3;
}

/* Header of a list or map: same choice as sz_compound. */
static inline uint8_t *
w_compound(uint8_t *p, uint64_t body, uint32_t count, bool list)
{
    if (list && count == 0) {
        *p++ = LEP_FC_LIST0;
    } else if (body + 1 <= 255 && count <= 255) {
        p[0] = list ? LEP_FC_LIST8 : LEP_FC_MAP8;
        p[1] = (uint8_t)(body + 1);
        p[2] = (uint8_t)count;
        p += 3;
    } else {
        *p++ = list ? LEP_FC_LIST32 : LEP_FC_MAP32;
        p = w_be32(p, (uint32_t)(body + 4));
        p = w_be32(p, count);
    }
    return p;
}

static uint8_t *
w_map(uint8_t *p, uint8_t code, const lepi_msg_map_t *map, uint64_t body)
{
    p = w_section(p, code);
    p = w_compound(p, body, map->n * 2, false);
    for (uint32_t i = 0; i < map->n; i++) {
        p = w_atom(p, &map->e[i].key);
        p = w_atom(p, &map->e[i].value);
    }
    return p;
}

/* ---- the message ---- */

/* Number of list fields to write: up to the last present one. */
static inline uint32_t
field_count(uint32_t bits, unsigned first)
{
    if (!bits)
        return 0;
    return (uint32_t)(32 - __builtin_clz(bits)) - first;
}

/* A compound's body must fit the 32-bit size field with its count. */
#define MAX_BODY ((uint64_t)UINT32_MAX - 8)

int
lep_message_encode(const lep_message_t *m, lep_buf_t *out)
{
    const uint32_t present = m->present;
    const uint32_t hbits = present & LEPI_HEADER_BITS;
    const uint32_t pbits = present & LEPI_PROPERTIES_BITS;
    uint64_t total = 0;
    uint64_t hbody = 0, pbody = 0, mbody[LEPI_NMAPS] = {0};
    uint32_t hcount = 0, pcount = 0;

    if (hbits) {
        hcount = field_count(hbits, LEP_MSG_DURABLE);
        /* An absent field is a null: one byte, as is a bool. */
        hbody = 2; /* durable, first-acquirer */
        hbody += (hbits & LEPI_BIT(LEP_MSG_PRIORITY)) ? 2 : 1;
        hbody += (hbits & LEPI_BIT(LEP_MSG_TTL)) ? sz_uint(m->ttl) : 1;
        hbody += (hbits & LEPI_BIT(LEP_MSG_DELIVERY_COUNT)) ? sz_uint(m->delivery_count) : 1;
        /* Trailing absent fields are left out; each was counted as 1. */
        hbody -= 5 - hcount;
        total += 3 + sz_compound(hbody, hcount, true);
    }
    for (int i = 0; i < LEPI_NMAPS; i++) {
        if (m->maps[i].n) {
            mbody[i] = m->maps[i].bytes;
            if (mbody[i] > MAX_BODY)
                return LEP_ERR_LIMIT;
            total += 3 + sz_compound(mbody[i], m->maps[i].n * 2, false);
        }
    }
    if (pbits) {
        pcount = field_count(pbits, LEP_MSG_MESSAGE_ID);
        pbody = pcount; /* a null each, corrected below for present fields */
        if (pbits & LEPI_BIT(LEP_MSG_MESSAGE_ID))
            pbody += m->message_id.raw.len - 1;
        if (pbits & LEPI_BIT(LEP_MSG_CORRELATION_ID))
            pbody += m->correlation_id.raw.len - 1;
        for (int s = 0; s < LEPI_NSTR; s++)
            if (m->str[s].ptr)
                pbody += sz_vbytes(m->str[s].len) - 1;
        if (pbits & LEPI_BIT(LEP_MSG_ABSOLUTE_EXPIRY_TIME))
            pbody += 8;
        if (pbits & LEPI_BIT(LEP_MSG_CREATION_TIME))
            pbody += 8;
        if (pbits & LEPI_BIT(LEP_MSG_GROUP_SEQUENCE))
            pbody += sz_uint(m->group_sequence) - 1;
        if (pbody > MAX_BODY)
            return LEP_ERR_LIMIT;
        total += 3 + sz_compound(pbody, pcount, true);
    }
    for (uint32_t i = 0; i < m->nbody; i++) {
        /* data: vbin around the payload; the others are already encoded */
        total += 3 + (m->body_kind == LEP_BODY_DATA ? sz_vbytes(m->body[i].len) : m->body[i].len);
    }
    if (total > SIZE_MAX / 2)
        return LEP_ERR_LIMIT;
    if (total == 0)
        return 0; /* nothing present; out may have no storage at all */

    int rc = lep_buf_reserve(out, (size_t)total);
    if (rc)
        return rc;
    uint8_t *const start = out->data + out->len;
    uint8_t *p = start;

    if (hbits) {
        p = w_section(p, LEP_DESC_HEADER);
        p = w_compound(p, hbody, hcount, true);
        uint8_t *end = p + hbody;
        *p++ = (hbits & LEPI_BIT(LEP_MSG_DURABLE)) ? (m->durable ? LEP_FC_TRUE : LEP_FC_FALSE)
                                                   : LEP_FC_NULL;
        if (p < end) {
            if (hbits & LEPI_BIT(LEP_MSG_PRIORITY)) {
                p[0] = LEP_FC_UBYTE;
                p[1] = m->priority;
                p += 2;
            } else {
                *p++ = LEP_FC_NULL;
            }
        }
        if (p < end)
            p = (hbits & LEPI_BIT(LEP_MSG_TTL)) ? w_uint(p, m->ttl) : (*p = LEP_FC_NULL, p + 1);
        if (p < end)
            *p++ = (hbits & LEPI_BIT(LEP_MSG_FIRST_ACQUIRER))
                       ? (m->first_acquirer ? LEP_FC_TRUE : LEP_FC_FALSE)
                       : LEP_FC_NULL;
        if (p < end)
            p = (hbits & LEPI_BIT(LEP_MSG_DELIVERY_COUNT)) ? w_uint(p, m->delivery_count)
                                                           : (*p = LEP_FC_NULL, p + 1);
        assert(p == end);
    }
    if (m->maps[LEP_MSG_DELIVERY_ANNOTATIONS].n)
        p = w_map(p, LEP_DESC_DELIVERY_ANNOTATIONS, &m->maps[LEP_MSG_DELIVERY_ANNOTATIONS],
                  mbody[LEP_MSG_DELIVERY_ANNOTATIONS]);
    if (m->maps[LEP_MSG_MESSAGE_ANNOTATIONS].n)
        p = w_map(p, LEP_DESC_MESSAGE_ANNOTATIONS, &m->maps[LEP_MSG_MESSAGE_ANNOTATIONS],
                  mbody[LEP_MSG_MESSAGE_ANNOTATIONS]);
    if (pbits) {
        p = w_section(p, LEP_DESC_PROPERTIES);
        p = w_compound(p, pbody, pcount, true);
        /* Field by field in list order; stop after the last present one. */
        uint32_t left = pcount;
        const lep_bytes_t *str = m->str;
#define NEXT(present_expr, write_stmt)                                        \
    if (left) {                                                               \
        left--;                                                               \
        if (present_expr) {                                                   \
            write_stmt;                                                       \
        } else {                                                              \
            *p++ = LEP_FC_NULL;                                               \
        }                                                                     \
    }
#define STR(i, c8, c32) w_vbytes(p, c8, c32, str[i].ptr, str[i].len)
        NEXT(pbits & LEPI_BIT(LEP_MSG_MESSAGE_ID), p = w_atom(p, &m->message_id));
        NEXT(str[LEPI_S_USER_ID].ptr, p = STR(LEPI_S_USER_ID, LEP_FC_VBIN8, LEP_FC_VBIN32));
        NEXT(str[LEPI_S_TO].ptr, p = STR(LEPI_S_TO, LEP_FC_STR8, LEP_FC_STR32));
        NEXT(str[LEPI_S_SUBJECT].ptr, p = STR(LEPI_S_SUBJECT, LEP_FC_STR8, LEP_FC_STR32));
        NEXT(str[LEPI_S_REPLY_TO].ptr, p = STR(LEPI_S_REPLY_TO, LEP_FC_STR8, LEP_FC_STR32));
        NEXT(pbits & LEPI_BIT(LEP_MSG_CORRELATION_ID), p = w_atom(p, &m->correlation_id));
        NEXT(str[LEPI_S_CONTENT_TYPE].ptr,
             p = STR(LEPI_S_CONTENT_TYPE, LEP_FC_SYM8, LEP_FC_SYM32));
        NEXT(str[LEPI_S_CONTENT_ENCODING].ptr,
             p = STR(LEPI_S_CONTENT_ENCODING, LEP_FC_SYM8, LEP_FC_SYM32));
        NEXT(pbits & LEPI_BIT(LEP_MSG_ABSOLUTE_EXPIRY_TIME),
             (*p++ = LEP_FC_TIMESTAMP, p = w_be64(p, (uint64_t)m->absolute_expiry_time)));
        NEXT(pbits & LEPI_BIT(LEP_MSG_CREATION_TIME),
             (*p++ = LEP_FC_TIMESTAMP, p = w_be64(p, (uint64_t)m->creation_time)));
        NEXT(str[LEPI_S_GROUP_ID].ptr, p = STR(LEPI_S_GROUP_ID, LEP_FC_STR8, LEP_FC_STR32));
        NEXT(pbits & LEPI_BIT(LEP_MSG_GROUP_SEQUENCE), p = w_uint(p, m->group_sequence));
        NEXT(str[LEPI_S_REPLY_TO_GROUP_ID].ptr,
             p = STR(LEPI_S_REPLY_TO_GROUP_ID, LEP_FC_STR8, LEP_FC_STR32));
#undef STR
#undef NEXT
    }
    if (m->maps[LEPI_MAP_PROPERTIES].n)
        p = w_map(p, LEP_DESC_APPLICATION_PROPERTIES, &m->maps[LEPI_MAP_PROPERTIES],
                  mbody[LEPI_MAP_PROPERTIES]);
    for (uint32_t i = 0; i < m->nbody; i++) {
        const lep_bytes_t *b = &m->body[i];
        switch (m->body_kind) {
        case LEP_BODY_DATA:
            p = w_section(p, LEP_DESC_DATA);
            p = w_vbytes(p, LEP_FC_VBIN8, LEP_FC_VBIN32, b->ptr, b->len);
            break;
        default:
            p = w_section(p, m->body_kind == LEP_BODY_VALUE ? LEP_DESC_AMQP_VALUE
                                                            : LEP_DESC_AMQP_SEQUENCE);
            memcpy(p, b->ptr, b->len);
            p += b->len;
            break;
        }
    }
    if (m->maps[LEP_MSG_FOOTER].n)
        p = w_map(p, LEP_DESC_FOOTER, &m->maps[LEP_MSG_FOOTER], mbody[LEP_MSG_FOOTER]);

    assert((uint64_t)(p - start) == total);
    out->len += (size_t)(p - start);
    return 0;
}
