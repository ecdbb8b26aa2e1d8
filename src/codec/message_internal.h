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

typedef struct lepi_msg_map {
    lepi_msg_entry_t *e;
    uint32_t n;
    uint32_t cap;
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

/* Makes room for n entries in a map (keeps the contents).  0 or NOMEM. */
int lepi_msg_map_reserve(lepi_msg_map_t *map, uint32_t n);
/* Makes room for n body sections. */
int lepi_msg_body_reserve(lep_message_t *m, uint32_t n);

/* Checks that [p, p+len) holds exactly one well-formed value, descending
 * into compounds, and decodes it shallowly into *out.  0 or a decode
 * error. */
int lepi_msg_value_check(const uint8_t *p, size_t len, lep_atom_t *out);
/* Checks the inside of a compound or described atom read from r. */
int lepi_msg_check_children(const lep_reader_t *r, const lep_atom_t *a, int depth);

#endif
