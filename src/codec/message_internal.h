/* Private layout of lep_message_t, shared by message.c (fields, storage),
 * message_encode.c and message_decode.c. */
#ifndef LEPTON_MESSAGE_INTERNAL_H
#define LEPTON_MESSAGE_INTERNAL_H

#include <lepton/message.h>

/* The message's byte storage: a chain of blocks that never move, so a view
 * handed out stays put until the storage is reset or compacted.  Reset
 * merges a chain of several blocks into one, so a reused message settles
 * on a single block and stops allocating. */
typedef struct lepi_arena_block {
    struct lepi_arena_block *next;
    size_t cap;
    size_t used;
    uint8_t data[];
} lepi_arena_block_t;

typedef struct lepi_arena {
    lepi_arena_block_t *head;
    lepi_arena_block_t *cur;
    size_t used; /* bytes handed out since the last reset */
    size_t dead; /* of those, bytes no field refers to any more */
} lepi_arena_t;

/* One key/value entry of an annotations or application-properties map. */
typedef struct lepi_msg_entry {
    lep_atom_t key;
    lep_atom_t value;
} lepi_msg_entry_t;

/* Every stored key and value atom has its encoding in raw; bytes is the
 * sum of their lengths, the size of the map's encoded elements. */
typedef struct lepi_msg_map {
    lepi_msg_entry_t *e;
    uint32_t n;
    uint32_t cap;
    uint64_t bytes;
} lepi_msg_map_t;

/* Index into lep_message.maps: the three lep_msg_annotations_t values,
 * then application-properties. */
#define LEPI_MAP_PROPERTIES 3
#define LEPI_NMAPS 4

/* Byte-string properties, index into lep_message.str. */
enum {
    LEPI_S_USER_ID = 0,
    LEPI_S_TO,
    LEPI_S_SUBJECT,
    LEPI_S_REPLY_TO,
    LEPI_S_CONTENT_TYPE,
    LEPI_S_CONTENT_ENCODING,
    LEPI_S_GROUP_ID,
    LEPI_S_REPLY_TO_GROUP_ID,
    LEPI_NSTR
};

#define LEPI_BIT(f) (1u << (f))
#define LEPI_HEADER_BITS                                                      \
    (LEPI_BIT(LEP_MSG_DURABLE) | LEPI_BIT(LEP_MSG_PRIORITY) | LEPI_BIT(LEP_MSG_TTL) | \
     LEPI_BIT(LEP_MSG_FIRST_ACQUIRER) | LEPI_BIT(LEP_MSG_DELIVERY_COUNT))
#define LEPI_PROPERTIES_BITS ((LEPI_BIT(LEP_MSG_FIELD_COUNT_) - 1) & ~LEPI_HEADER_BITS)

struct lep_message {
    uint32_t present; /* LEPI_BIT(lep_msg_field_t) */
    bool durable;
    bool first_acquirer;
    uint8_t priority;
    uint8_t body_kind; /* lep_body_kind_t */
    uint32_t ttl;
    uint32_t delivery_count;
    uint32_t group_sequence;
    int64_t absolute_expiry_time;
    int64_t creation_time;
    lep_bytes_t str[LEPI_NSTR];
    lep_atom_t message_id;
    lep_atom_t correlation_id;
    lepi_msg_map_t maps[LEPI_NMAPS];
    lep_bytes_t *body; /* sections: data payloads, encoded lists or one encoded value */
    uint32_t nbody;
    uint32_t cap_body;
    lepi_arena_t arena;
};

/* Field index (lep_msg_field_t) to str[] index, or -1. */
int lepi_msg_str_index(lep_msg_field_t f);

static inline bool
lepi_is_bytes_type(lep_type_t t)
{
    return t == LEP_TYPE_BINARY || t == LEP_TYPE_STRING || t == LEP_TYPE_SYMBOL;
}

/* Storage. */
void lepi_arena_reset(lepi_arena_t *a);
void lepi_arena_fini(lepi_arena_t *a);
uint8_t *lepi_arena_alloc_slow(lepi_arena_t *a, size_t n);

static inline uint8_t *
lepi_arena_alloc(lepi_arena_t *a, size_t n)
{
    lepi_arena_block_t *b = a->cur;
    if (b && b->cap - b->used >= n) {
        uint8_t *p = b->data + b->used;
        b->used += n;
        a->used += n;
        return p;
    }
    return lepi_arena_alloc_slow(a, n);
}

/* UTF-8 check with the common case -- a short ASCII string -- inline,
 * a word at a time (the last word overlapping the one before). */
static inline bool
lepi_msg_utf8_ok(const uint8_t *p, size_t n)
{
    if (n <= 64) {
        uint64_t acc = 0;
        if (n >= 8) {
            for (size_t i = 0; i + 8 <= n; i += 8) {
                uint64_t w;
                __builtin_memcpy(&w, p + i, 8);
                acc |= w;
            }
            uint64_t w;
            __builtin_memcpy(&w, p + n - 8, 8);
            acc |= w;
        } else if (n >= 4) {
            uint32_t a, b;
            __builtin_memcpy(&a, p, 4);
            __builtin_memcpy(&b, p + n - 4, 4);
            acc = a | b;
        } else {
            for (size_t i = 0; i < n; i++)
                acc |= p[i];
        }
        if ((acc & 0x8080808080808080ull) == 0)
            return true;
    }
    return lep_utf8_valid(p, n);
}

/* Copies [p, p+n) into the message's storage; *out views the copy. */
static inline int
lepi_msg_copy_in(lep_message_t *m, const void *p, size_t n, lep_bytes_t *out)
{
    if (n == 0) {
        /* A static pointer, so that a present empty field is not NULL. */
        *out = (lep_bytes_t){(const uint8_t *)"", 0};
        return 0;
    }
    uint8_t *d = lepi_arena_alloc(&m->arena, n);
    if (!d)
        return LEP_ERR_NOMEM;
    __builtin_memcpy(d, p, n);
    *out = (lep_bytes_t){d, n};
    return 0;
}
/* Stored bytes a field no longer refers to. */
static inline void
lepi_msg_dead(lep_message_t *m, size_t n)
{
    m->arena.dead += n;
}
/* Gives dead storage back once there is much of it.  Moves every view. */
void lepi_msg_compact(lep_message_t *m);
static inline void
lepi_msg_maybe_compact(lep_message_t *m)
{
    if (m->arena.dead > 4096 && m->arena.dead > m->arena.used / 2)
        lepi_msg_compact(m);
}
/* Stores a copy of a caller's atom in *dst with its encoding in dst->raw
 * and every view pointing into the message: scalars are encoded in their
 * smallest form, compounds and described values are copied from
 * src->raw (checked to hold exactly one well-formed value).  src may point
 * into the message.  On error *dst is unchanged.  Errors: LEP_ERR_INVALID,
 * LEP_ERR_UTF8, LEP_ERR_SYMBOL, LEP_ERR_LIMIT, LEP_ERR_NOMEM, decode
 * errors. */
int lepi_msg_atom_store(lep_message_t *m, const lep_atom_t *src, lep_atom_t *dst);

/* Makes room for n entries in a map (keeps the contents).  0 or NOMEM. */
int lepi_msg_map_reserve(lepi_msg_map_t *map, uint32_t n);
/* Makes room for n body sections. */
int lepi_msg_body_reserve(lep_message_t *m, uint32_t n);

/* Checks that [p, p+len) holds exactly one well-formed value, descending
 * into compounds, and decodes it shallowly into *out.  0 or a decode
 * error. */
int lepi_msg_value_check(const uint8_t *p, size_t len, lep_atom_t *out);

#endif
