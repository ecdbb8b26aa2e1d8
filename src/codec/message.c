/* lep_message_t: life cycle, storage, and how values are kept.
 *
 * Every byte a message refers to lives in its arena (message_internal.h).
 * Values set by the caller are stored already encoded: an atom's raw view
 * holds its encoding and its u.bytes (for binary, string, symbol) points
 * into that, so encoding a message is copying.  Decoded values are views
 * into the copy of the input, which holds their encoding too.
 *
 * The field accessors are in message_fields.c and message_maps.c. */
#include "codec/message_internal.h"
#include "codec/codec_internal.h"

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

/* ---- compaction ---- */

/* Moves every view into a fresh block, so that bytes left behind by
 * replaced fields are given back.  Runs when more than half of the storage
 * is dead; a message that is cleared between uses never needs it. */
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
    const uint8_t *old = a->raw.ptr;
    size_t len = a->raw.len;
    move_bytes(c, &a->raw);
    if (c->sizing || len == 0)
        return;
    if (lepi_is_bytes_type(a->type))
        shift_into(&a->u.bytes, old, len, a->raw.ptr);
    shift_into(&a->content, old, len, a->raw.ptr);
    shift_into(&a->ctor, old, len, a->raw.ptr);
}

static void
move_all(compactor_t *c, lep_message_t *m)
{
    for (int i = 0; i < LEPI_NSTR; i++)
        move_bytes(c, &m->str[i]);
    if (m->present & LEPI_BIT(LEP_MSG_MESSAGE_ID))
        move_atom(c, &m->message_id);
    if (m->present & LEPI_BIT(LEP_MSG_CORRELATION_ID))
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

void
lepi_msg_compact(lep_message_t *m)
{
    lepi_arena_t *a = &m->arena;
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
/* Values.                                                            */

int
lepi_msg_value_check(const uint8_t *p, size_t len, lep_atom_t *out)
{
    lep_reader_t r;
    lep_reader_init(&r, p, len);
    int rc = lep_reader_next(&r, out);
    if (rc)
        return rc;
    if ((rc = lepi_check_inside(&r, out)) != 0)
        return rc;
    return r.p == r.end ? 0 : LEP_ERR_DECODE;
}

/* Smallest encoding of a fixed-size scalar, as lep_encoder_t writes it: its
 * size, and the bytes.  Binary, string and symbol are written by
 * lepi_msg_atom_store itself. */
static size_t
scalar_size(const lep_atom_t *a)
{
    switch (a->type) {
    case LEP_TYPE_NULL:       return 1;
    case LEP_TYPE_BOOL:       return 1;
    case LEP_TYPE_UBYTE:      return 2;
    case LEP_TYPE_USHORT:     return 3;
    case LEP_TYPE_UINT:       return a->u.u == 0 ? 1 : a->u.u <= 255 ? 2 : 5;
    case LEP_TYPE_ULONG:      return a->u.u == 0 ? 1 : a->u.u <= 255 ? 2 : 9;
    case LEP_TYPE_BYTE:       return 2;
    case LEP_TYPE_SHORT:      return 3;
    case LEP_TYPE_INT:        return a->u.i >= -128 && a->u.i <= 127 ? 2 : 5;
    case LEP_TYPE_LONG:       return a->u.i >= -128 && a->u.i <= 127 ? 2 : 9;
    case LEP_TYPE_FLOAT:      return 5;
    case LEP_TYPE_DOUBLE:     return 9;
    case LEP_TYPE_DECIMAL32:  return 5;
    case LEP_TYPE_DECIMAL64:  return 9;
    case LEP_TYPE_DECIMAL128: return 17;
    case LEP_TYPE_CHAR:       return 5;
    case LEP_TYPE_TIMESTAMP:  return 9;
    case LEP_TYPE_UUID:       return 17;
    default:                  return 0; /* binary, string, symbol: see below */
    }
}

static uint8_t *
put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

/* Writes the encoding of a scalar atom (scalar_size(a) bytes) and returns
 * the format code. */
static uint8_t
scalar_write(uint8_t *p, const lep_atom_t *a)
{
    uint8_t code = 0;
    uint64_t bits = 0;
    int n = 0;
    switch (a->type) {
    case LEP_TYPE_NULL: code = LEP_FC_NULL; break;
    case LEP_TYPE_BOOL: code = a->u.b ? LEP_FC_TRUE : LEP_FC_FALSE; break;
    case LEP_TYPE_UBYTE: code = LEP_FC_UBYTE; bits = a->u.u; n = 1; break;
    case LEP_TYPE_USHORT: code = LEP_FC_USHORT; bits = a->u.u; n = 2; break;
    case LEP_TYPE_UINT:
    case LEP_TYPE_ULONG: {
        bool isuint = a->type == LEP_TYPE_UINT;
        bits = a->u.u;
        if (bits == 0) {
            code = isuint ? LEP_FC_UINT0 : LEP_FC_ULONG0;
        } else if (bits <= 255) {
            code = isuint ? LEP_FC_SMALLUINT : LEP_FC_SMALLULONG;
            n = 1;
        } else {
            code = isuint ? LEP_FC_UINT : LEP_FC_ULONG;
            n = isuint ? 4 : 8;
        }
        break;
    }
    case LEP_TYPE_BYTE: code = LEP_FC_BYTE; bits = (uint64_t)a->u.i; n = 1; break;
    case LEP_TYPE_SHORT: code = LEP_FC_SHORT; bits = (uint64_t)a->u.i; n = 2; break;
    case LEP_TYPE_INT:
    case LEP_TYPE_LONG: {
        bool isint = a->type == LEP_TYPE_INT;
        bits = (uint64_t)a->u.i;
        if (a->u.i >= -128 && a->u.i <= 127) {
            code = isint ? LEP_FC_SMALLINT : LEP_FC_SMALLLONG;
            n = 1;
        } else {
            code = isint ? LEP_FC_INT : LEP_FC_LONG;
            n = isint ? 4 : 8;
        }
        break;
    }
    case LEP_TYPE_FLOAT: {
        uint32_t f;
        memcpy(&f, &a->u.f, 4);
        code = LEP_FC_FLOAT;
        bits = f;
        n = 4;
        break;
    }
    case LEP_TYPE_DOUBLE:
        memcpy(&bits, &a->u.d, 8);
        code = LEP_FC_DOUBLE;
        n = 8;
        break;
    case LEP_TYPE_CHAR: code = LEP_FC_CHAR; bits = a->u.u; n = 4; break;
    case LEP_TYPE_TIMESTAMP: code = LEP_FC_TIMESTAMP; bits = (uint64_t)a->u.i; n = 8; break;
    case LEP_TYPE_DECIMAL32:
        p[0] = LEP_FC_DECIMAL32;
        memcpy(p + 1, a->u.dec, 4);
        return LEP_FC_DECIMAL32;
    case LEP_TYPE_DECIMAL64:
        p[0] = LEP_FC_DECIMAL64;
        memcpy(p + 1, a->u.dec, 8);
        return LEP_FC_DECIMAL64;
    case LEP_TYPE_DECIMAL128:
        p[0] = LEP_FC_DECIMAL128;
        memcpy(p + 1, a->u.dec, 16);
        return LEP_FC_DECIMAL128;
    case LEP_TYPE_UUID:
        p[0] = LEP_FC_UUID;
        memcpy(p + 1, a->u.uuid, 16);
        return LEP_FC_UUID;
    default:
        return 0;
    }
    p[0] = code;
    put_be(p + 1, bits, n);
    return code;
}

int
lepi_msg_atom_store(lep_message_t *m, const lep_atom_t *src, lep_atom_t *dst)
{
    int rc;
    switch (src->type) {
    case LEP_TYPE_LIST:
    case LEP_TYPE_MAP:
    case LEP_TYPE_ARRAY:
    case LEP_TYPE_DESCRIBED: {
        /* An array element's raw lacks its constructor: not a value on its
         * own. */
        if (!src->raw.ptr || src->raw.len == 0 || (src->flags & LEP_ATOM_ARRAY_ELEM))
            return LEP_ERR_INVALID;
        lep_atom_t chk;
        if ((rc = lepi_msg_value_check(src->raw.ptr, src->raw.len, &chk)) != 0)
            return rc;
        if (chk.type != src->type)
            return LEP_ERR_INVALID;
        lep_bytes_t raw;
        if ((rc = lepi_msg_copy_in(m, src->raw.ptr, src->raw.len, &raw)) != 0)
            return rc;
        lep_reader_t r;
        lep_reader_init(&r, raw.ptr, raw.len);
        /* Checked above, so this re-read of the copy cannot fail. */
        return lep_reader_next(&r, dst);
    }
    default:
        break;
    }
    if ((unsigned)src->type >= (unsigned)LEP_TYPE_COUNT_)
        return LEP_ERR_INVALID;
    if (lepi_is_bytes_type(src->type)) {
        /* The common case, kept out of the generic writer's switches. */
        const lep_type_t type = src->type;
        const uint8_t *s = src->u.bytes.ptr;
        const size_t len = src->u.bytes.len;
        if (len > UINT32_MAX - 5)
            return LEP_ERR_LIMIT;
        if (len && !s)
            return LEP_ERR_INVALID;
        if (type == LEP_TYPE_STRING && !lepi_msg_utf8_ok(s, len))
            return LEP_ERR_UTF8;
        if (type == LEP_TYPE_SYMBOL && !lep_ascii_valid(s, len))
            return LEP_ERR_SYMBOL;
        const size_t hw = len <= 255 ? 1 : 4;
        uint8_t *d = lepi_arena_alloc(&m->arena, 1 + hw + len);
        if (!d)
            return LEP_ERR_NOMEM;
        static const uint8_t c8[] = {LEP_FC_VBIN8, LEP_FC_STR8, LEP_FC_SYM8};
        static const uint8_t c32[] = {LEP_FC_VBIN32, LEP_FC_STR32, LEP_FC_SYM32};
        d[0] = hw == 1 ? c8[type - LEP_TYPE_BINARY] : c32[type - LEP_TYPE_BINARY];
        put_be(d + 1, len, (int)hw);
        if (len)
            memcpy(d + 1 + hw, s, len);
        dst->type = type;
        dst->code = d[0];
        dst->flags = 0;
        dst->count = 0;
        dst->u.bytes = (lep_bytes_t){d + 1 + hw, len};
        dst->content = (lep_bytes_t){0};
        dst->ctor = (lep_bytes_t){0};
        dst->raw = (lep_bytes_t){d, 1 + hw + len};
        return 0;
    } else if (src->type == LEP_TYPE_CHAR) {
        uint64_t c = src->u.u;
        if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return LEP_ERR_INVALID;
    }
    size_t n = scalar_size(src);
    uint8_t *d = lepi_arena_alloc(&m->arena, n);
    if (!d)
        return LEP_ERR_NOMEM;
    /* src may be dst (or point into the message): read it before
     * writing dst. */
    lep_type_t type = src->type;
    dst->code = scalar_write(d, src);
    dst->u = src->u;
    dst->type = type;
    dst->flags = 0;
    dst->count = 0;
    dst->content = (lep_bytes_t){0};
    dst->ctor = (lep_bytes_t){0};
    dst->raw = (lep_bytes_t){d, n};
    return 0;
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
    for (int i = 0; i < LEPI_NMAPS; i++) {
        m->maps[i].n = 0;
        m->maps[i].bytes = 0;
    }
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
