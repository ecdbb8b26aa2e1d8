/* Frames in: split the AMQP stream into frames, decode performatives and
 * dispatch them to the connection, its sessions and links. */
#include "engine/engine_internal.h"

void lepi_on_open(lep_conn_t *c, const lep_open_t *o, lep_bytes_t body);
void lepi_on_close(lep_conn_t *c, const lep_close_t *cl);

static const char *
perf_name(uint64_t code)
{
    const lep_descriptor_info_t *i = lep_descriptor_lookup(code);
    return i ? i->name : "?";
}

void
lepi_process_frame(lep_conn_t *c, const lep_frame_t *f)
{
    if (f->type != LEP_FRAME_AMQP) {
        lepi_conn_fail(c, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                       "frame of type %u on an AMQP connection", f->type);
        return;
    }
    if (lep_frame_is_empty(f)) {
        if (c->trace)
            c->trace(c->trace_ctx, c, false, "(empty frame)");
        return;
    }
    if (c->trace)
        lepi_trace_frame(c, false, f->channel, f->body);
    lep_reader_t r;
    lep_reader_init(&r, f->body.ptr, f->body.len);
    lep_performative_t p;
    int rc = lep_performative_decode(&r, &p);
    if (rc != 0) {
        if (rc == LEP_ERR_TYPE && p.code != LEP_DESC_OPEN && p.code != UINT64_MAX &&
            lep_descriptor_lookup(p.code) == NULL)
            lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "unknown performative 0x%llx",
                           (unsigned long long)p.code);
        else
            lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "malformed performative: %s",
                           lep_strerror(rc));
        return;
    }
    lep_bytes_t payload = LEP_BYTES(r.p, (size_t)(r.end - r.p));

    if (c->remote_state == LEP_STATE_UNINIT && p.code != LEP_DESC_OPEN) {
        lepi_conn_fail(c, LEP_AMQP_ERR_ILLEGAL_STATE, "%s before open", perf_name(p.code));
        return;
    }
    switch (p.code) {
    case LEP_DESC_OPEN:
        lepi_on_open(c, &p.u.open, f->body);
        return;
    case LEP_DESC_CLOSE:
        lepi_on_close(c, &p.u.close);
        return;
    case LEP_DESC_BEGIN:
        lepi_on_begin(c, f->channel, &p.u.begin);
        return;
    default:
        break;
    }
    lep_session_t *s = lepi_session_by_rchannel(c, f->channel);
    if (!s) {
        lepi_conn_fail(c, LEP_AMQP_ERR_ILLEGAL_STATE, "%s on channel %u, which has no session",
                       perf_name(p.code), f->channel);
        return;
    }
    /* After we sent end, the peer may still send until it sees it
     * (2.5.5); only its end matters then. */
    if (s->end_sent && p.code != LEP_DESC_END)
        return;
    switch (p.code) {
    case LEP_DESC_END:
        lepi_on_end(c, s, &p.u.end);
        break;
    case LEP_DESC_ATTACH:
        lepi_on_attach(s, &p.u.attach, f->body);
        break;
    case LEP_DESC_DETACH:
        lepi_on_detach(s, &p.u.detach);
        break;
    case LEP_DESC_FLOW:
        lepi_on_flow(c, s, &p.u.flow);
        break;
    case LEP_DESC_TRANSFER:
        lepi_on_transfer(s, &p.u.transfer, payload);
        break;
    case LEP_DESC_DISPOSITION:
        lepi_on_disposition(s, &p.u.disposition);
        break;
    default:
        lepi_conn_fail(c, LEP_AMQP_ERR_DECODE_ERROR, "unexpected performative");
        break;
    }
}

static size_t
parse_frames(lep_conn_t *c, const uint8_t *p, size_t n)
{
    size_t done = 0;
    while (!c->input_done && done < n) {
        lep_frame_t f;
        size_t used = 0;
        int rc = lep_frame_parse(p + done, n - done, c->max_frame_size, &f, &used);
        if (rc == LEP_ERR_INCOMPLETE)
            break;
        if (rc == LEP_ERR_FRAME_SIZE) {
            lepi_conn_fail(c, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR,
                           "frame larger than max-frame-size %u", c->max_frame_size);
            break;
        }
        if (rc != 0) {
            lepi_conn_fail(c, LEP_AMQP_ERR_CONNECTION_FRAMING_ERROR, "malformed frame header");
            break;
        }
        lepi_process_frame(c, &f);
        done += used;
    }
    return done;
}

int
lepi_process_input(lep_conn_t *c, const uint8_t *p, size_t n)
{
    /* A frame cut by the previous read is completed from the new bytes
     * and parsed from c->in; whole frames after it are parsed straight
     * from the caller's buffer, so each byte is copied at most once. */
    while (c->in.len && n && !c->input_done) {
        size_t need = LEP_FRAME_HEADER_SIZE;
        if (c->in.len >= LEP_FRAME_HEADER_SIZE) {
            lep_frame_t f;
            int rc = lep_frame_parse(c->in.data, c->in.len, c->max_frame_size, &f, &need);
            if (rc != LEP_ERR_INCOMPLETE)
                need = c->in.len; /* complete, or an error parse_frames reports */
        }
        size_t take = need > c->in.len ? need - c->in.len : 0;
        if (take > n)
            take = n;
        if (take && lep_buf_append(&c->in, p, take) != 0) {
            lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
            return LEP_ERR_NOMEM;
        }
        p += take;
        n -= take;
        if (c->in.len < need)
            return 0; /* still incomplete: all input taken */
        size_t done = parse_frames(c, c->in.data, c->in.len);
        if (c->input_done) {
            c->in.len = 0;
            return 0;
        }
        if (done == 0 && c->in.len >= LEP_FRAME_HEADER_SIZE && take == 0)
            break; /* cannot happen: a complete frame parses or fails */
        if (done) {
            memmove(c->in.data, c->in.data + done, c->in.len - done);
            c->in.len -= done;
        }
    }
    if (!n || c->input_done)
        return 0;
    size_t done = parse_frames(c, p, n);
    if (done < n && !c->input_done && lep_buf_append(&c->in, p + done, n - done) != 0) {
        lepi_conn_fail(c, LEP_AMQP_ERR_RESOURCE_LIMIT_EXCEEDED, "out of memory");
        return LEP_ERR_NOMEM;
    }
    return 0;
}
