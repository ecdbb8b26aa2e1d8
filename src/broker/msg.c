/* Broker messages: the bytes as received, shared by the queues holding
 * them, with the few fields routing needs decoded once. */
#include "broker/broker_internal.h"

#include <stddef.h>
#include <string.h>
#include <time.h>

int64_t
lepi_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes of the header section when the message starts with one. */
static size_t
header_length(const uint8_t *p, size_t len)
{
    /* Most messages start with another section, named by its first three
     * bytes (0x00 0x53 CODE): no need to decode it to know (the peek below
     * decodes the whole section: some 540 instructions per message). */
    if (len < 3 || p[0] != LEP_FC_DESCRIBED ||
        (p[1] == LEP_FC_SMALLULONG && p[2] != LEP_DESC_HEADER))
        return 0;
    lep_reader_t r;
    lep_atom_t a;
    uint64_t code;
    lep_bytes_t name;
    lep_reader_init(&r, p, len);
    if (lep_reader_peek(&r, &a) != 0 || a.type != LEP_TYPE_DESCRIBED)
        return 0;
    lep_reader_t d;
    lep_reader_init(&d, p, len);
    if (lep_read_descriptor(&d, &code, &name) != 0 || code != LEP_DESC_HEADER)
        return 0;
    return a.raw.len;
}

int
lepi_bmsg_new(bmsg_t **out, const void *data, size_t len, const lep_message_t *m,
              lep_message_t *scratch, int64_t now_ms)
{
    *out = NULL;
    if (!m) {
        int rc = lep_message_decode(scratch, data, len);
        if (rc)
            return rc;
        m = scratch;
    }
    bmsg_t *msg = lep_malloc(sizeof *msg + len);
    if (!msg)
        return LEP_ERR_NOMEM;
    atomic_init(&msg->refs, 1);
    atomic_flag_clear_explicit(&msg->entry_taken, memory_order_relaxed);
    msg->id = 0;
    msg->stored = false;
    msg->recovered = false;
    msg->never_expires = false;
    msg->durable = lep_message_durable(m);
    uint8_t prio = lep_message_priority(m);
    msg->priority = prio < LEPI_PRIORITIES ? prio : LEPI_PRIORITIES - 1;
    msg->expires = 0;
    if (lep_message_has(m, LEP_MSG_ABSOLUTE_EXPIRY_TIME) && lep_message_absolute_expiry_time(m))
        msg->expires = lep_message_absolute_expiry_time(m);
    if (lep_message_has(m, LEP_MSG_TTL) && lep_message_ttl(m)) {
        if (now_ms < 0)
            now_ms = lepi_now_ms(); /* only a TTL needs the time */
        int64_t t = now_ms + lep_message_ttl(m);
        if (!msg->expires || t < msg->expires)
            msg->expires = t;
    }
    msg->group = 0;
    lep_bytes_t group = lep_message_group_id(m);
    if (group.len) {
        /* FNV-1a; two groups with one hash share their consumer */
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < group.len; i++)
            h = (h ^ ((const uint8_t *)group.ptr)[i]) * 16777619u;
        msg->group = h ? h : 1;
    }
    msg->len = len;
    memcpy(msg->data, data, len);
    msg->header_len = header_length(msg->data, len);
    *out = msg;
    return 0;
}

void
lepi_bmsg_ref(bmsg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void
lepi_bmsg_unref(bmsg_t *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        lep_free(m);
}

lep_bytes_t
lepi_bmsg_bytes(const bmsg_t *m, uint32_t delivery_count, lep_message_t *scratch,
                lep_buf_t *out)
{
    /* A message recovered after a restart may have been sent to a
     * consumer that never settled it (the journal keeps no deliveries):
     * it says so as a redelivery does, as qpidd marks recovered messages
     * redelivered.  The dead-letter limit counts only the failures seen. */
    if (m->recovered)
        delivery_count++;
    if (delivery_count == 0)
        return LEP_BYTES(m->data, m->len);
    /* A redelivery says so in its header (3.2.1): the count of earlier
     * attempts, and not the first acquirer any more. */
    out->len = 0;
    if (lep_message_decode(scratch, m->data, m->len) != 0)
        return LEP_BYTES(m->data, m->len);
    lep_message_set_delivery_count(scratch, lep_message_delivery_count(scratch) + delivery_count);
    lep_message_set_first_acquirer(scratch, false);
    if (lep_message_encode(scratch, out) != 0)
        return LEP_BYTES(m->data, m->len);
    return LEP_BYTES(out->data, out->len);
}

_Static_assert(offsetof(bmsg_t, data) == offsetof(bmsg_t, env) + LEPI_ENV_LEN,
               "the envelope is right before the message");

lep_bytes_t
lepi_bmsg_stored(bmsg_t *m)
{
    int64_t when = m->expires ? m->expires : m->never_expires ? LEPI_ENV_NEVER : 0;
    if (!when)
        return LEP_BYTES(m->data, m->len);
    uint8_t *e = m->env;
    uint64_t x = (uint64_t)when;
    e[0] = LEPI_ENV_MARK;
    for (int i = 0; i < 8; i++)
        e[1 + i] = (uint8_t)(x >> (8 * i));
    return LEP_BYTES(e, LEPI_ENV_LEN + m->len); /* env and data are contiguous */
}

lep_bytes_t
lepi_bmsg_unwrap(const void *data, size_t len, int64_t *expires)
{
    const uint8_t *p = data;
    *expires = 0;
    if (len < LEPI_ENV_LEN || p[0] != LEPI_ENV_MARK)
        return LEP_BYTES(p, len);
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)p[1 + i] << (8 * i);
    *expires = (int64_t)x;
    return LEP_BYTES(p + LEPI_ENV_LEN, len - LEPI_ENV_LEN);
}

bmsg_t *
lepi_bmsg_clone(const bmsg_t *m)
{
    bmsg_t *c = lep_malloc(sizeof *c + m->len);
    if (!c)
        return NULL;
    memcpy(c, m, sizeof *c + m->len);
    atomic_init(&c->refs, 1);
    atomic_flag_clear_explicit(&c->entry_taken, memory_order_relaxed);
    c->id = 0;
    c->stored = false;
    return c;
}
