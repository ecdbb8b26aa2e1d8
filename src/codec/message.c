/* lep_message_t: life cycle, storage, and the field accessors.  Encoding
 * and decoding live in message_encode.c and message_decode.c. */
#include "codec/message_internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Storage.                                                           */

#define ARENA_MIN_BLOCK 512

static lepi_arena_block_t *
block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(lepi_arena_block_t))
        return NULL;
    lepi_arena_block_t *b = lep_malloc(sizeof *b + cap);
    if (b) {
        b->next = NULL;
        b->cap = cap;
        b->used = 0;
    }
    return b;
}

static void
chain_free(lepi_arena_block_t *b)
{
    while (b) {
        lepi_arena_block_t *next = b->next;
        lep_free(b);
        b = next;
    }
}

uint8_t *
lepi_arena_alloc_slow(lepi_arena_t *a, size_t n)
{
    /* Blocks after cur are empty (reset or never used): take the first
     * that fits, else add one at the tail. */
    lepi_arena_block_t *b = a->cur ? a->cur->next : a->head;
    lepi_arena_block_t *last = a->cur;
    for (; b; b = b->next) {
        if (b->cap >= n)
            break;
        last = b;
    }
    if (!b) {
        size_t cap = ARENA_MIN_BLOCK;
        if (last && last->cap <= SIZE_MAX / 2 && last->cap * 2 > cap)
            cap = last->cap * 2;
        if (cap < n)
            cap = n;
        if (!(b = block_new(cap)))
            return NULL;
        if (last) {
            while (last->next)
                last = last->next;
            last->next = b;
        } else {
            a->head = b;
        }
    }
    a->cur = b;
    b->used = n;
    a->used += n;
    return b->data;
}

void
lepi_arena_reset(lepi_arena_t *a)
{
    a->used = 0;
    a->dead = 0;
    if (!a->head)
        return;
    a->cur = a->head;
    if (a->head->next) {
        /* One block of the chain's total size, so that next time the same
         * content fits without a new allocation.  Failing that, keep the
         * chain. */
        size_t total = 0;
        for (lepi_arena_block_t *b = a->head; b; b = b->next)
            total += b->cap;
        lepi_arena_block_t *one = block_new(total);
        if (one) {
            chain_free(a->head);
            a->head = a->cur = one;
            return;
        }
        for (lepi_arena_block_t *b = a->head; b; b = b->next)
            b->used = 0;
    }
    a->head->used = 0;
}

void
lepi_arena_fini(lepi_arena_t *a)
{
    chain_free(a->head);
    *a = (lepi_arena_t){0};
}

/* Copies [p, p+n) into the message.  An empty string gets a static
 * pointer, so a present empty field still has a non-NULL ptr. */
static int
copy_in(lep_message_t *m, const void *p, size_t n, lep_bytes_t *out)
{
    if (n == 0) {
        *out = (lep_bytes_t){(const uint8_t *)"", 0};
        return 0;
    }
    uint8_t *d = lepi_arena_alloc(&m->arena, n);
    if (!d)
        return LEP_ERR_NOMEM;
    memcpy(d, p, n);
    *out = (lep_bytes_t){d, n};
    return 0;
}

static bool
is_bytes_type(lep_type_t t)
{
    return t == LEP_TYPE_BINARY || t == LEP_TYPE_STRING || t == LEP_TYPE_SYMBOL;
}

/* Bytes of the message's storage an atom refers to. */
static size_t
atom_extent(const lep_atom_t *a)
{
    if (a->raw.len)
        return a->raw.len;
    return is_bytes_type(a->type) ? a->u.bytes.len : 0;
}

static void
mark_dead(lep_message_t *m, size_t n)
{
    m->arena.dead += n;
}

/* ---- compaction ---- */

/* Moves every view into a fresh block, so that bytes left behind by
 * replaced fields are given back.  Runs when more than half of the storage
 * is dead; a reused message that is cleared between uses never needs it. */
typedef struct compactor {
    lepi_arena_block_t *b;
    size_t need; /* sizing pass: bytes to move */
    bool sizing;
} compactor_t;

static void
move_bytes(compactor_t *c, lep_bytes_t *v)
{
    if (v->len == 0)
        return;
    if (c->sizing) {
        c->need += v->len;
        return;
    }
    uint8_t *d = c->b->data + c->b->used;
    memcpy(d, v->ptr, v->len);
    c->b->used += v->len;
    v->ptr = d;
}

static void
shift_into(lep_bytes_t *v, const uint8_t *old, size_t len, const uint8_t *now)
{
    if (v->ptr >= old && v->ptr <= old + len && v->len <= (size_t)(old + len - v->ptr))
        v->ptr = now + (v->ptr - old);
}

static void
move_atom(compactor_t *c, lep_atom_t *a)
{
    if (a->raw.len) {
        const uint8_t *old = a->raw.ptr;
        size_t len = a->raw.len;
        move_bytes(c, &a->raw);
        if (c->sizing)
            return;
        if (is_bytes_type(a->type))
            shift_into(&a->u.bytes, old, len, a->raw.ptr);
        shift_into(&a->content, old, len, a->raw.ptr);
        shift_into(&a->ctor, old, len, a->raw.ptr);
    } else if (is_bytes_type(a->type)) {
        move_bytes(c, &a->u.bytes);
    }
}

static void
move_all(compactor_t *c, lep_message_t *m)
{
    for (int i = 0; i < LEPI_NSTR; i++)
        move_bytes(c, &m->str[i]);
    move_atom(c, &m->message_id);
    move_atom(c, &m->correlation_id);
    for (int i = 0; i < LEPI_NMAPS; i++) {
        lepi_msg_map_t *map = &m->maps[i];
        for (uint32_t j = 0; j < map->n; j++) {
            move_atom(c, &map->e[j].key);
            move_atom(c, &map->e[j].value);
        }
    }
    for (uint32_t i = 0; i < m->nbody; i++)
        move_bytes(c, &m->body[i]);
}

static void
maybe_compact(lep_message_t *m)
{
    lepi_arena_t *a = &m->arena;
    if (a->dead <= 4096 || a->dead <= a->used / 2)
        return;
    compactor_t c = {.sizing = true};
    move_all(&c, m);
    size_t cap = c.need + c.need / 2;
    if (cap < ARENA_MIN_BLOCK)
        cap = ARENA_MIN_BLOCK;
    if (!(c.b = block_new(cap)))
        return; /* keep the garbage; nothing is lost */
    c.sizing = false;
    move_all(&c, m);
    chain_free(a->head);
    a->head = a->cur = c.b;
    a->used = c.b->used;
    a->dead = 0;
}

/* ------------------------------------------------------------------ */
/* Life cycle.                                                        */

int
lep_message_new(lep_message_t **out)
{
    lep_message_t *m = lep_calloc(1, sizeof *m);
    *out = m;
    if (!m)
        return LEP_ERR_NOMEM;
    m->priority = 4;
    return 0;
}

void
lep_message_free(lep_message_t *m)
{
    if (!m)
        return;
    for (int i = 0; i < LEPI_NMAPS; i++)
        lep_free(m->maps[i].e);
    lep_free(m->body);
    lepi_arena_fini(&m->arena);
    lep_free(m);
}

void
lep_message_clear(lep_message_t *m)
{
    m->present = 0;
    m->durable = false;
    m->first_acquirer = false;
    m->priority = 4;
    m->body_kind = LEP_BODY_NONE;
    m->ttl = 0;
    m->delivery_count = 0;
    m->group_sequence = 0;
    m->absolute_expiry_time = 0;
    m->creation_time = 0;
    memset(m->str, 0, sizeof m->str);
    m->message_id.type = LEP_TYPE_NULL;
    m->correlation_id.type = LEP_TYPE_NULL;
    for (int i = 0; i < LEPI_NMAPS; i++)
        m->maps[i].n = 0;
    m->nbody = 0;
    lepi_arena_reset(&m->arena);
}

int
lepi_msg_map_reserve(lepi_msg_map_t *map, uint32_t n)
{
    if (n <= map->cap)
        return 0;
    uint32_t cap = map->cap ? map->cap : 8;
    while (cap < n) {
        if (cap > UINT32_MAX / 2)
            return LEP_ERR_LIMIT;
        cap *= 2;
    }
    size_t bytes;
    if (__builtin_mul_overflow((size_t)cap, sizeof(lepi_msg_entry_t), &bytes))
        return LEP_ERR_NOMEM;
    lepi_msg_entry_t *e = lep_realloc(map->e, bytes);
    if (!e)
        return LEP_ERR_NOMEM;
    map->e = e;
    map->cap = cap;
    return 0;
}

int
lepi_msg_body_reserve(lep_message_t *m, uint32_t n)
{
    if (n <= m->cap_body)
        return 0;
    uint32_t cap = m->cap_body ? m->cap_body : 4;
    while (cap < n) {
        if (cap > UINT32_MAX / 2)
            return LEP_ERR_LIMIT;
        cap *= 2;
    }
    size_t bytes;
    if (__builtin_mul_overflow((size_t)cap, sizeof(lep_bytes_t), &bytes))
        return LEP_ERR_NOMEM;
    lep_bytes_t *b = lep_realloc(m->body, bytes);
    if (!b)
        return LEP_ERR_NOMEM;
    m->body = b;
    m->cap_body = cap;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Value checks.                                                      */

int
lepi_msg_check_children(const lep_reader_t *r, const lep_atom_t *a, int depth)
{
    if (a->type != LEP_TYPE_LIST && a->type != LEP_TYPE_MAP && a->type != LEP_TYPE_ARRAY &&
        a->type != LEP_TYPE_DESCRIBED)
        return 0;
    if (depth >= LEP_CODEC_MAX_DEPTH)
        return LEP_ERR_LIMIT;
    lep_reader_t c;
    int rc = lep_reader_enter(r, a, &c);
    if (rc)
        return rc;
    uint32_t n = 0;
    while (!lep_reader_done(&c)) {
        lep_atom_t x;
        if ((rc = lep_reader_next(&c, &x)) != 0)
            return rc;
        if ((rc = lepi_msg_check_children(&c, &x, depth + 1)) != 0)
            return rc;
        n++;
    }
    /* A described atom holds exactly one value; a compound's values must
     * fill exactly the size its header gave. */
    if (a->type == LEP_TYPE_DESCRIBED ? n != 1 : c.p != c.end)
        return LEP_ERR_DECODE;
    return 0;
}

int
lepi_msg_value_check(const uint8_t *p, size_t len, lep_atom_t *out)
{
    lep_reader_t r;
    lep_reader_init(&r, p, len);
    int rc = lep_reader_next(&r, out);
    if (rc)
        return rc;
    if ((rc = lepi_msg_check_children(&r, out, 0)) != 0)
        return rc;
    return r.p == r.end ? 0 : LEP_ERR_DECODE;
}

/* Copies a caller's atom into the message.  Scalars keep type and value
 * (bytes copied); compounds are copied from raw and re-read so every view
 * points into the copy. */
static int
atom_copy_in(lep_message_t *m, const lep_atom_t *src, lep_atom_t *dst)
{
    int rc;
    lep_atom_t a;
    switch (src->type) {
    case LEP_TYPE_LIST:
    case LEP_TYPE_MAP:
    case LEP_TYPE_ARRAY:
    case LEP_TYPE_DESCRIBED: {
        if (!src->raw.ptr || src->raw.len == 0)
            return LEP_ERR_DECODE;
        lep_atom_t chk;
        if ((rc = lepi_msg_value_check(src->raw.ptr, src->raw.len, &chk)) != 0)
            return rc;
        if (chk.type != src->type)
            return LEP_ERR_DECODE;
        lep_bytes_t raw;
        if ((rc = copy_in(m, src->raw.ptr, src->raw.len, &raw)) != 0)
            return rc;
        lep_reader_t r;
        lep_reader_init(&r, raw.ptr, raw.len);
        if ((rc = lep_reader_next(&r, dst)) != 0) {
            mark_dead(m, raw.len);
            return rc;
        }
        return 0;
    }
    default:
        break;
    }
    if ((unsigned)src->type >= (unsigned)LEP_TYPE_COUNT_)
        return LEP_ERR_TYPE;
    memset(&a, 0, sizeof a);
    a.type = src->type;
    a.code = src->code;
    a.u = src->u;
    if (is_bytes_type(src->type)) {
        if (src->u.bytes.len > UINT32_MAX)
            return LEP_ERR_LIMIT;
        if (src->u.bytes.len && !src->u.bytes.ptr)
            return LEP_ERR_INVALID;
        if (src->type == LEP_TYPE_STRING && !lep_utf8_valid(src->u.bytes.ptr, src->u.bytes.len))
            return LEP_ERR_UTF8;
        if (src->type == LEP_TYPE_SYMBOL && !lep_ascii_valid(src->u.bytes.ptr, src->u.bytes.len))
            return LEP_ERR_SYMBOL;
        if ((rc = copy_in(m, src->u.bytes.ptr, src->u.bytes.len, &a.u.bytes)) != 0)
            return rc;
    } else if (src->type == LEP_TYPE_CHAR) {
        uint64_t c = src->u.u;
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return LEP_ERR_INVALID;
    }
    *dst = a;
    return 0;
}

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
        mark_dead(m, m->str[s].len);
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
        mark_dead(m, atom_extent(&m->message_id));
        m->message_id.type = LEP_TYPE_NULL;
        break;
    case LEP_MSG_CORRELATION_ID:
        mark_dead(m, atom_extent(&m->correlation_id));
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
    lep_atom_t a;
    int rc = atom_copy_in(m, id, &a);
    if (rc)
        return rc;
    if (m->present & LEPI_BIT(f))
        mark_dead(m, atom_extent(slot));
    *slot = a;
    m->present |= LEPI_BIT(f);
    maybe_compact(m);
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

static int
set_str(lep_message_t *m, lep_msg_field_t f, lep_type_t t, lep_bytes_t v)
{
    int s = lepi_msg_str_index(f);
    if (!v.ptr) {
        lep_message_unset(m, f);
        return 0;
    }
    if (v.len > UINT32_MAX)
        return LEP_ERR_LIMIT;
    if (t == LEP_TYPE_STRING && !lep_utf8_valid(v.ptr, v.len))
        return LEP_ERR_UTF8;
    if (t == LEP_TYPE_SYMBOL && !lep_ascii_valid(v.ptr, v.len))
        return LEP_ERR_SYMBOL;
    lep_bytes_t copy;
    int rc = copy_in(m, v.ptr, v.len, &copy);
    if (rc)
        return rc;
    mark_dead(m, m->str[s].len);
    m->str[s] = copy;
    m->present |= LEPI_BIT(f);
    maybe_compact(m);
    return 0;
}

#define STR_FIELD(name, FIELD, TYPE)                                          \
    lep_bytes_t lep_message_##name(const lep_message_t *m)                     \
    {                                                                         \
        return m->str[LEPI_S_##FIELD];                                        \
    }                                                                         \
    int lep_message_set_##name(lep_message_t *m, lep_bytes_t v)               \
    {                                                                         \
        return set_str(m, LEP_MSG_##FIELD, TYPE, v);                          \
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
/* Maps.                                                              */

static bool
atom_key_eq(const lep_atom_t *a, const lep_atom_t *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == LEP_TYPE_ULONG)
        return a->u.u == b->u.u;
    return lep_bytes_eq(a->u.bytes, b->u.bytes);
}

static lepi_msg_entry_t *
map_find(const lepi_msg_map_t *map, const lep_atom_t *key)
{
    for (uint32_t i = 0; i < map->n; i++)
        if (atom_key_eq(&map->e[i].key, key))
            return &map->e[i];
    return NULL;
}

/* The caller has checked the key's type. */
static int
map_set(lep_message_t *m, lepi_msg_map_t *map, const lep_atom_t *key, const lep_atom_t *value)
{
    lep_atom_t v;
    int rc;
    lepi_msg_entry_t *e = map_find(map, key);
    if (e) {
        if ((rc = atom_copy_in(m, value, &v)) != 0)
            return rc;
        mark_dead(m, atom_extent(&e->value));
        e->value = v;
        maybe_compact(m);
        return 0;
    }
    if (map->n == UINT32_MAX / 2)
        return LEP_ERR_LIMIT;
    if ((rc = lepi_msg_map_reserve(map, map->n + 1)) != 0)
        return rc;
    lep_atom_t k;
    if ((rc = atom_copy_in(m, key, &k)) != 0)
        return rc;
    if ((rc = atom_copy_in(m, value, &v)) != 0) {
        mark_dead(m, atom_extent(&k));
        return rc;
    }
    map->e[map->n].key = k;
    map->e[map->n].value = v;
    map->n++;
    maybe_compact(m);
    return 0;
}

static int
map_remove(lep_message_t *m, lepi_msg_map_t *map, const lep_atom_t *key)
{
    lepi_msg_entry_t *e = map_find(map, key);
    if (!e)
        return LEP_ERR_NOT_FOUND;
    mark_dead(m, atom_extent(&e->key) + atom_extent(&e->value));
    size_t i = (size_t)(e - map->e);
    memmove(e, e + 1, (map->n - i - 1) * sizeof *e);
    map->n--;
    return 0;
}

static bool
simple_type(lep_type_t t)
{
    return (unsigned)t < (unsigned)LEP_TYPE_LIST;
}

static lep_atom_t
string_key(lep_bytes_t key)
{
    lep_atom_t k;
    memset(&k, 0, sizeof k);
    k.type = LEP_TYPE_STRING;
    k.u.bytes = key;
    return k;
}

int
lep_message_set_property(lep_message_t *m, lep_bytes_t key, const lep_atom_t *value)
{
    if (!value || (key.len && !key.ptr))
        return LEP_ERR_INVALID;
    if (!simple_type(value->type))
        return LEP_ERR_TYPE;
    lep_atom_t k = string_key(key);
    return map_set(m, &m->maps[LEPI_MAP_PROPERTIES], &k, value);
}

const lep_atom_t *
lep_message_property(const lep_message_t *m, lep_bytes_t key)
{
    lep_atom_t k = string_key(key);
    lepi_msg_entry_t *e = map_find(&m->maps[LEPI_MAP_PROPERTIES], &k);
    return e ? &e->value : NULL;
}

int
lep_message_remove_property(lep_message_t *m, lep_bytes_t key)
{
    lep_atom_t k = string_key(key);
    return map_remove(m, &m->maps[LEPI_MAP_PROPERTIES], &k);
}

size_t
lep_message_property_count(const lep_message_t *m)
{
    return m->maps[LEPI_MAP_PROPERTIES].n;
}

int
lep_message_property_at(const lep_message_t *m, size_t i, lep_bytes_t *key,
                        const lep_atom_t **value)
{
    const lepi_msg_map_t *map = &m->maps[LEPI_MAP_PROPERTIES];
    if (i >= map->n)
        return LEP_ERR_NOT_FOUND;
    if (key)
        *key = map->e[i].key.u.bytes;
    if (value)
        *value = &map->e[i].value;
    return 0;
}

static lepi_msg_map_t *
annotations(const lep_message_t *m, lep_msg_annotations_t which)
{
    if ((unsigned)which > LEP_MSG_FOOTER)
        return NULL;
    return (lepi_msg_map_t *)&m->maps[which];
}

static bool
annotation_key_ok(const lep_atom_t *key)
{
    return key && (key->type == LEP_TYPE_SYMBOL || key->type == LEP_TYPE_ULONG);
}

int
lep_message_set_annotation(lep_message_t *m, lep_msg_annotations_t which,
                           const lep_atom_t *key, const lep_atom_t *value)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !value || !key)
        return LEP_ERR_INVALID;
    if (!annotation_key_ok(key))
        return LEP_ERR_TYPE;
    return map_set(m, map, key, value);
}

static lep_atom_t
symbol_key(lep_bytes_t key)
{
    lep_atom_t k;
    memset(&k, 0, sizeof k);
    k.type = LEP_TYPE_SYMBOL;
    k.u.bytes = key;
    return k;
}

int
lep_message_set_annotation_sym(lep_message_t *m, lep_msg_annotations_t which,
                               lep_bytes_t key, const lep_atom_t *value)
{
    lep_atom_t k = symbol_key(key);
    return lep_message_set_annotation(m, which, &k, value);
}

const lep_atom_t *
lep_message_annotation(const lep_message_t *m, lep_msg_annotations_t which,
                       const lep_atom_t *key)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !annotation_key_ok(key))
        return NULL;
    lepi_msg_entry_t *e = map_find(map, key);
    return e ? &e->value : NULL;
}

const lep_atom_t *
lep_message_annotation_sym(const lep_message_t *m, lep_msg_annotations_t which,
                           lep_bytes_t key)
{
    lep_atom_t k = symbol_key(key);
    return lep_message_annotation(m, which, &k);
}

int
lep_message_remove_annotation(lep_message_t *m, lep_msg_annotations_t which,
                              const lep_atom_t *key)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || !annotation_key_ok(key))
        return LEP_ERR_NOT_FOUND;
    return map_remove(m, map, key);
}

size_t
lep_message_annotation_count(const lep_message_t *m, lep_msg_annotations_t which)
{
    lepi_msg_map_t *map = annotations(m, which);
    return map ? map->n : 0;
}

int
lep_message_annotation_at(const lep_message_t *m, lep_msg_annotations_t which, size_t i,
                          const lep_atom_t **key, const lep_atom_t **value)
{
    lepi_msg_map_t *map = annotations(m, which);
    if (!map || i >= map->n)
        return LEP_ERR_NOT_FOUND;
    if (key)
        *key = &map->e[i].key;
    if (value)
        *value = &map->e[i].value;
    return 0;
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
        mark_dead(m, m->body[i].len);
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
    if ((rc = copy_in(m, v.ptr, v.len, &copy)) != 0)
        return rc;
    if (replace)
        body_drop(m);
    m->body[m->nbody++] = copy;
    m->body_kind = kind;
    maybe_compact(m);
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
    if (s.len && !s.ptr)
        return LEP_ERR_INVALID;
    if (s.len > UINT32_MAX - 5)
        return LEP_ERR_LIMIT;
    if (!lep_utf8_valid(s.ptr, s.len))
        return LEP_ERR_UTF8;
    int rc = lepi_msg_body_reserve(m, 1);
    if (rc)
        return rc;
    size_t hdr = s.len <= 255 ? 2 : 5;
    uint8_t *d = lepi_arena_alloc(&m->arena, hdr + s.len);
    if (!d)
        return LEP_ERR_NOMEM;
    if (hdr == 2) {
        d[0] = LEP_FC_STR8;
        d[1] = (uint8_t)s.len;
    } else {
        d[0] = LEP_FC_STR32;
        d[1] = (uint8_t)(s.len >> 24);
        d[2] = (uint8_t)(s.len >> 16);
        d[3] = (uint8_t)(s.len >> 8);
        d[4] = (uint8_t)s.len;
    }
    if (s.len)
        memcpy(d + hdr, s.ptr, s.len);
    body_drop(m);
    m->body[0] = (lep_bytes_t){d, hdr + s.len};
    m->nbody = 1;
    m->body_kind = LEP_BODY_VALUE;
    maybe_compact(m);
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
