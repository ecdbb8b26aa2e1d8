/* Protocol headers and the frame layer: parsing and emitting the 8-byte
 * units that carry everything else. */
#include <lepton/frame.h>

#include <string.h>

static inline uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- protocol headers ---- */

static bool
known_proto(uint8_t id)
{
    return id == LEP_PROTO_AMQP || id == LEP_PROTO_TLS || id == LEP_PROTO_SASL;
}

int
lep_proto_header_parse(const uint8_t *p, size_t len, lep_proto_header_t *out)
{
    /* What every valid header looks like, with the id byte checked apart. */
    static const uint8_t want[LEP_PROTO_HEADER_SIZE] = {'A', 'M', 'Q', 'P', 0, 1, 0, 0};
    size_t n = len < LEP_PROTO_HEADER_SIZE ? len : LEP_PROTO_HEADER_SIZE;
    bool bad = false;

    for (size_t i = 0; i < n; i++) {
        if (i == 4)
            bad |= !known_proto(p[i]);
        else
            bad |= p[i] != want[i];
    }
    if (out) {
        memset(out, 0, sizeof *out);
        if (n)
            memcpy(out->raw, p, n);
        out->nraw = (uint8_t)n;
        if (n == LEP_PROTO_HEADER_SIZE) {
            out->id = p[4];
            out->major = p[5];
            out->minor = p[6];
            out->revision = p[7];
        }
    }
    if (bad)
        return LEP_ERR_FRAMING;
    if (n < LEP_PROTO_HEADER_SIZE)
        return LEP_ERR_INCOMPLETE;
    return p[4];
}

int
lep_proto_header_write(uint8_t out[LEP_PROTO_HEADER_SIZE], lep_proto_id_t id)
{
    if ((unsigned)id > 0xff || !known_proto((uint8_t)id))
        return LEP_ERR_INVALID;
    out[0] = 'A';
    out[1] = 'M';
    out[2] = 'Q';
    out[3] = 'P';
    out[4] = (uint8_t)id;
    out[5] = 1;
    out[6] = 0;
    out[7] = 0;
    return 0;
}

const char *
lep_proto_name(int id)
{
    switch (id) {
    case LEP_PROTO_AMQP: return "AMQP";
    case LEP_PROTO_TLS:  return "TLS";
    case LEP_PROTO_SASL: return "SASL";
    default:             return NULL;
    }
}

/* ---- frames ---- */

int
lep_frame_parse(const uint8_t *p, size_t len, uint32_t max_frame_size,
                lep_frame_t *out, size_t *used)
{
    if (len < LEP_FRAME_HEADER_SIZE) {
        if (used)
            *used = LEP_FRAME_HEADER_SIZE;
        return LEP_ERR_INCOMPLETE;
    }
    uint32_t size = be32(p);
    uint32_t hdr = (uint32_t)p[4] * 4;
    /* hdr >= 8 once doff >= 2, so hdr <= size also rules out size < 8. */
    if (p[4] < 2 || hdr > size)
        return LEP_ERR_FRAMING;
    /* Before waiting for the body: a peer must not make us buffer more
     * than we agreed to. */
    if (size > max_frame_size)
        return LEP_ERR_FRAME_SIZE;
    if (len < size) {
        if (used)
            *used = size;
        return LEP_ERR_INCOMPLETE;
    }
    out->size = size;
    out->doff = p[4];
    out->type = p[5];
    out->channel = (uint16_t)(p[6] << 8 | p[7]);
    out->ext.ptr = p + LEP_FRAME_HEADER_SIZE;
    out->ext.len = hdr - LEP_FRAME_HEADER_SIZE;
    out->body.ptr = p + hdr;
    out->body.len = size - hdr;
    if (used)
        *used = size;
    return 0;
}

static void
fill_header(uint8_t *h, uint32_t size, uint8_t type, uint16_t channel)
{
    put_be32(h, size);
    h[4] = 2; /* doff: we never send an extended header */
    h[5] = type;
    h[6] = (uint8_t)(channel >> 8);
    h[7] = (uint8_t)channel;
}

int
lep_frame_header_write(uint8_t out[LEP_FRAME_HEADER_SIZE], uint8_t type,
                       uint16_t channel, size_t body_len)
{
    if (body_len > UINT32_MAX - LEP_FRAME_HEADER_SIZE)
        return LEP_ERR_FRAME_SIZE;
    fill_header(out, (uint32_t)(body_len + LEP_FRAME_HEADER_SIZE), type, channel);
    return 0;
}

int
lep_frame_begin(lep_buf_t *buf, uint8_t type, uint16_t channel, size_t *mark)
{
    int rc = lep_buf_reserve(buf, LEP_FRAME_HEADER_SIZE);
    if (rc != 0)
        return rc;
    *mark = buf->len;
    /* Size 0 until lep_frame_end: a frame left unfinished by mistake then
     * fails every parser instead of passing as a valid one. */
    fill_header(buf->data + buf->len, 0, type, channel);
    buf->len += LEP_FRAME_HEADER_SIZE;
    return 0;
}

int
lep_frame_end(lep_buf_t *buf, size_t mark, uint32_t max_frame_size)
{
    if (mark > buf->len || buf->len - mark < LEP_FRAME_HEADER_SIZE)
        return LEP_ERR_INVALID;
    size_t size = buf->len - mark;
    if (size > max_frame_size || size > UINT32_MAX) {
        buf->len = mark;
        return LEP_ERR_FRAME_SIZE;
    }
    put_be32(buf->data + mark, (uint32_t)size);
    return 0;
}

int
lep_frame_append(lep_buf_t *buf, uint8_t type, uint16_t channel,
                 lep_bytes_t performative, lep_bytes_t payload,
                 uint32_t max_frame_size)
{
    size_t body = performative.len + payload.len;
    if (max_frame_size < LEP_FRAME_HEADER_SIZE || body < performative.len ||
        body > (size_t)max_frame_size - LEP_FRAME_HEADER_SIZE)
        return LEP_ERR_FRAME_SIZE;
    /* One reservation, so a failure leaves buf untouched. */
    int rc = lep_buf_reserve(buf, LEP_FRAME_HEADER_SIZE + body);
    if (rc != 0)
        return rc;
    uint8_t *w = buf->data + buf->len;
    fill_header(w, (uint32_t)(body + LEP_FRAME_HEADER_SIZE), type, channel);
    w += LEP_FRAME_HEADER_SIZE;
    if (performative.len)
        memcpy(w, performative.ptr, performative.len);
    if (payload.len)
        memcpy(w + performative.len, payload.ptr, payload.len);
    buf->len += LEP_FRAME_HEADER_SIZE + body;
    return 0;
}

const char *
lep_frame_type_name(int type)
{
    switch (type) {
    case LEP_FRAME_AMQP: return "amqp";
    case LEP_FRAME_SASL: return "sasl";
    default:             return NULL;
    }
}
