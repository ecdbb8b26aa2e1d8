/* lep_message_t: presence, header, properties and body accessors. */
#include "codec/message_internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Presence.                                                          */

int
lepi_msg_str_index(lep_msg_field_t f)
{
    switch (f) {
    case LEP_MSG_USER_ID:           return LEPI_S_USER_ID;
    case LEP_MSG_TO:                return LEPI_S_TO;
    case LEP_MSG_SUBJECT:           return LEPI_S_SUBJECT;
    case LEP_MSG_REPLY_TO:          return LEPI_S_REPLY_TO;
    case LEP_MSG_CONTENT_TYPE:      return LEPI_S_CONTENT_TYPE;
    case LEP_MSG_CONTENT_ENCODING:  return LEPI_S_CONTENT_ENCODING;
    case LEP_MSG_GROUP_ID:          return LEPI_S_GROUP_ID;
    case LEP_MSG_REPLY_TO_GROUP_ID: return LEPI_S_REPLY_TO_GROUP_ID;
    default:                        return -1;
    }
}

bool
lep_message_has(const lep_message_t *m, lep_msg_field_t f)
{
    return (unsigned)f < LEP_MSG_FIELD_COUNT_ && (m->present & LEPI_BIT(f));
}

void
lep_message_unset(lep_message_t *m, lep_msg_field_t f)
{
    if ((unsigned)f >= LEP_MSG_FIELD_COUNT_ || !(m->present & LEPI_BIT(f)))
        return;
    m->present &= ~LEPI_BIT(f);
    int s = lepi_msg_str_index(f);
    if (s >= 0) {
        lepi_msg_dead(m, m->str[s].len);
        m->str[s] = (lep_bytes_t){0};
        return;
    }
    switch (f) {
    case LEP_MSG_DURABLE:        m->durable = false; break;
    case LEP_MSG_PRIORITY:       m->priority = 4; break;
    case LEP_MSG_TTL:            m->ttl = 0; break;
    case LEP_MSG_FIRST_ACQUIRER: m->first_acquirer = false; break;
    case LEP_MSG_DELIVERY_COUNT: m->delivery_count = 0; break;
    case LEP_MSG_MESSAGE_ID:
        lepi_msg_dead(m, m->message_id.raw.len);
        m->message_id.type = LEP_TYPE_NULL;
        break;
    case LEP_MSG_CORRELATION_ID:
        lepi_msg_dead(m, m->correlation_id.raw.len);
        m->correlation_id.type = LEP_TYPE_NULL;
        break;
    case LEP_MSG_ABSOLUTE_EXPIRY_TIME: m->absolute_expiry_time = 0; break;
    case LEP_MSG_CREATION_TIME:        m->creation_time = 0; break;
    case LEP_MSG_GROUP_SEQUENCE:       m->group_sequence = 0; break;
    default: break;
    }
}

/* ------------------------------------------------------------------ */
/* Header.                                                            */

bool lep_message_durable(const lep_message_t *m) { return m->durable; }
uint8_t lep_message_priority(const lep_message_t *m) { return m->priority; }
uint32_t lep_message_ttl(const lep_message_t *m) { return m->ttl; }
bool lep_message_first_acquirer(const lep_message_t *m) { return m->first_acquirer; }
uint32_t lep_message_delivery_count(const lep_message_t *m) { return m->delivery_count; }

void
lep_message_set_durable(lep_message_t *m, bool v)
{
    m->durable = v;
    m->present |= LEPI_BIT(LEP_MSG_DURABLE);
}

void
lep_message_set_priority(lep_message_t *m, uint8_t v)
{
    m->priority = v;
    m->present |= LEPI_BIT(LEP_MSG_PRIORITY);
}

void
lep_message_set_ttl(lep_message_t *m, uint32_t ms)
{
    m->ttl = ms;
    m->present |= LEPI_BIT(LEP_MSG_TTL);
}

void
lep_message_set_first_acquirer(lep_message_t *m, bool v)
{
    m->first_acquirer = v;
    m->present |= LEPI_BIT(LEP_MSG_FIRST_ACQUIRER);
}

void
lep_message_set_delivery_count(lep_message_t *m, uint32_t v)
{
    m->delivery_count = v;
    m->present |= LEPI_BIT(LEP_MSG_DELIVERY_COUNT);
}

/* ------------------------------------------------------------------ */
/* Properties.                                                        */

static int
set_id(lep_message_t *m, lep_msg_field_t f, lep_atom_t *slot, const lep_atom_t *id)
{
    if (!id || id->type == LEP_TYPE_NULL) {
        lep_message_unset(m, f);
        return 0;
    }
    switch (id->type) {
    case LEP_TYPE_ULONG:
    case LEP_TYPE_UUID:
    case LEP_TYPE_BINARY:
    case LEP_TYPE_STRING:
        break;
    default:
        return LEP_ERR_TYPE;
    }
    size_t old = (m->present & LEPI_BIT(f)) ? slot->raw.len : 0;
    int rc = lepi_msg_atom_store(m, id, slot);
    if (rc)
        return rc;
    lepi_msg_dead(m, old);
    m->present |= LEPI_BIT(f);
    lepi_msg_maybe_compact(m);
    return 0;
}

const lep_atom_t *
lep_message_id(const lep_message_t *m)
{
    return (m->present & LEPI_BIT(LEP_MSG_MESSAGE_ID)) ? &m->message_id : NULL;
}

int
lep_message_set_id(lep_message_t *m, const lep_atom_t *id)
{
    return set_id(m, LEP_MSG_MESSAGE_ID, &m->message_id, id);
}

const lep_atom_t *
lep_message_correlation_id(const lep_message_t *m)
{
    return (m->present & LEPI_BIT(LEP_MSG_CORRELATION_ID)) ? &m->correlation_id : NULL;
}

int
lep_message_set_correlation_id(lep_message_t *m, const lep_atom_t *id)
{
    return set_id(m, LEP_MSG_CORRELATION_ID, &m->correlation_id, id);
}

static inline int
set_str(lep_message_t *m, lep_msg_field_t f, int s, lep_type_t t, lep_bytes_t v)
{
    if (!v.ptr) {
        lep_message_unset(m, f);
        return 0;
    }
    if (v.len > UINT32_MAX)
        return LEP_ERR_LIMIT;
    if (t == LEP_TYPE_STRING && !lepi_msg_utf8_ok(v.ptr, v.len))
        return LEP_ERR_UTF8;
    if (t == LEP_TYPE_SYMBOL && !lep_ascii_valid(v.ptr, v.len))
        return LEP_ERR_SYMBOL;
    lep_bytes_t copy;
    int rc = lepi_msg_copy_in(m, v.ptr, v.len, &copy);
    if (rc)
        return rc;
    lepi_msg_dead(m, m->str[s].len);
    m->str[s] = copy;
    m->present |= LEPI_BIT(f);
    lepi_msg_maybe_compact(m);
    return 0;
}

#define STR_FIELD(name, FIELD, TYPE)                                          \
    lep_bytes_t lep_message_##name(const lep_message_t *m)                     \
    {                                                                         \
        return m->str[LEPI_S_##FIELD];                                        \
    }                                                                         \
    int lep_message_set_##name(lep_message_t *m, lep_bytes_t v)               \
    {                                                                         \
        return set_str(m, LEP_MSG_##FIELD, LEPI_S_##FIELD, TYPE, v);          \
    }

STR_FIELD(user_id, USER_ID, LEP_TYPE_BINARY)
STR_FIELD(to, TO, LEP_TYPE_STRING)
STR_FIELD(subject, SUBJECT, LEP_TYPE_STRING)
STR_FIELD(reply_to, REPLY_TO, LEP_TYPE_STRING)
STR_FIELD(content_type, CONTENT_TYPE, LEP_TYPE_SYMBOL)
STR_FIELD(content_encoding, CONTENT_ENCODING, LEP_TYPE_SYMBOL)
STR_FIELD(group_id, GROUP_ID, LEP_TYPE_STRING)
STR_FIELD(reply_to_group_id, REPLY_TO_GROUP_ID, LEP_TYPE_STRING)

int64_t lep_message_absolute_expiry_time(const lep_message_t *m) { return m->absolute_expiry_time; }
int64_t lep_message_creation_time(const lep_message_t *m) { return m->creation_time; }
uint32_t lep_message_group_sequence(const lep_message_t *m) { return m->group_sequence; }

void
lep_message_set_absolute_expiry_time(lep_message_t *m, int64_t ms)
{
    m->absolute_expiry_time = ms;
    m->present |= LEPI_BIT(LEP_MSG_ABSOLUTE_EXPIRY_TIME);
}

void
lep_message_set_creation_time(lep_message_t *m, int64_t ms)
{
    m->creation_time = ms;
    m->present |= LEPI_BIT(LEP_MSG_CREATION_TIME);
}

void
lep_message_set_group_sequence(lep_message_t *m, uint32_t v)
{
    m->group_sequence = v;
    m->present |= LEPI_BIT(LEP_MSG_GROUP_SEQUENCE);
}

/* ------------------------------------------------------------------ */
/* Body.                                                              */

lep_body_kind_t
lep_message_body_kind(const lep_message_t *m)
{
    return (lep_body_kind_t)m->body_kind;
}

size_t
lep_message_body_count(const lep_message_t *m)
{
    return m->nbody;
}

lep_bytes_t
lep_message_body_section(const lep_message_t *m, size_t i)
{
    return i < m->nbody ? m->body[i] : (lep_bytes_t){0};
}

static void
body_drop(lep_message_t *m)
{
    for (uint32_t i = 0; i < m->nbody; i++)
        lepi_msg_dead(m, m->body[i].len);
    m->nbody = 0;
    m->body_kind = LEP_BODY_NONE;
}

void
lep_message_clear_body(lep_message_t *m)
{
    body_drop(m);
}

/* Adds a section of kind (replacing the body when replace is set).
 * encoded is checked by the caller. */
static int
body_put(lep_message_t *m, lep_body_kind_t kind, lep_bytes_t v, bool replace)
{
    int rc;
    if (v.len && !v.ptr)
        return LEP_ERR_INVALID;
    if (v.len > UINT32_MAX)
        return LEP_ERR_LIMIT;
    if (!replace && m->body_kind != LEP_BODY_NONE && m->body_kind != kind)
        return LEP_ERR_STATE;
    uint32_t n = replace ? 1 : m->nbody + 1;
    if (n == 0)
        return LEP_ERR_LIMIT;
    if ((rc = lepi_msg_body_reserve(m, n)) != 0)
        return rc;
    lep_bytes_t copy;
    if ((rc = lepi_msg_copy_in(m, v.ptr, v.len, &copy)) != 0)
        return rc;
    if (replace)
        body_drop(m);
    m->body[m->nbody++] = copy;
    m->body_kind = kind;
    lepi_msg_maybe_compact(m);
    return 0;
}

int
lep_message_set_body_data(lep_message_t *m, lep_bytes_t v)
{
    return body_put(m, LEP_BODY_DATA, v, true);
}

int
lep_message_add_body_data(lep_message_t *m, lep_bytes_t v)
{
    return body_put(m, LEP_BODY_DATA, v, false);
}

static int
check_encoded(lep_bytes_t encoded, bool list)
{
    lep_atom_t a;
    if (!encoded.ptr || encoded.len == 0)
        return LEP_ERR_INCOMPLETE;
    int rc = lepi_msg_value_check(encoded.ptr, encoded.len, &a);
    if (rc)
        return rc;
    if (list && a.type != LEP_TYPE_LIST)
        return LEP_ERR_TYPE;
    return 0;
}

int
lep_message_set_body_sequence_raw(lep_message_t *m, lep_bytes_t encoded)
{
    int rc = check_encoded(encoded, true);
    return rc ? rc : body_put(m, LEP_BODY_SEQUENCE, encoded, true);
}

int
lep_message_add_body_sequence_raw(lep_message_t *m, lep_bytes_t encoded)
{
    if (m->body_kind != LEP_BODY_NONE && m->body_kind != LEP_BODY_SEQUENCE)
        return LEP_ERR_STATE;
    int rc = check_encoded(encoded, true);
    return rc ? rc : body_put(m, LEP_BODY_SEQUENCE, encoded, false);
}

int
lep_message_set_body_value_raw(lep_message_t *m, lep_bytes_t encoded)
{
    int rc = check_encoded(encoded, false);
    return rc ? rc : body_put(m, LEP_BODY_VALUE, encoded, true);
}

int
lep_message_set_body_string(lep_message_t *m, lep_bytes_t s)
{
    lep_atom_t a, st;
    memset(&a, 0, sizeof a);
    a.type = LEP_TYPE_STRING;
    a.u.bytes = s;
    int rc = lepi_msg_body_reserve(m, 1);
    if (rc || (rc = lepi_msg_atom_store(m, &a, &st)) != 0)
        return rc;
    body_drop(m);
    m->body[0] = st.raw;
    m->nbody = 1;
    m->body_kind = LEP_BODY_VALUE;
    lepi_msg_maybe_compact(m);
    return 0;
}

int
lep_message_body_value(const lep_message_t *m, lep_atom_t *out)
{
    if (m->body_kind != LEP_BODY_VALUE || m->nbody != 1)
        return LEP_ERR_STATE;
    lep_reader_t r;
    lep_reader_init(&r, m->body[0].ptr, m->body[0].len);
    return lep_reader_next(&r, out);
}

int
lep_message_body_string(const lep_message_t *m, lep_bytes_t *out)
{
    lep_atom_t a;
    int rc = lep_message_body_value(m, &a);
    if (rc)
        return rc;
    if (a.type != LEP_TYPE_STRING)
        return LEP_ERR_TYPE;
    *out = a.u.bytes;
    return 0;
}
