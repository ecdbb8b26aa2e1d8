/* Frames out: performatives encoded straight into the connection's
 * output buffer, and the frame trace. */
#include "engine/engine_internal.h"

#include <stdio.h>

void
lepi_trace_frame(lep_conn_t *c, bool sent, uint16_t ch, lep_bytes_t body)
{
    lep_buf_t *b = &c->trace_buf;
    lep_buf_clear(b);
    lep_buf_printf(b, "[%u] %s ", ch, sent ? "->" : "<-");
    if (!body.len) {
        lep_buf_printf(b, "(empty frame)");
    } else {
        lep_reader_t r;
        lep_reader_init(&r, body.ptr, body.len);
        if (lep_print_encoded(&r, b, LEP_PRINT_DEFAULT) != 0) {
            lep_buf_printf(b, " (undecodable)");
        } else if (r.p < r.end) {
            lep_buf_printf(b, " (%zu bytes of payload)", (size_t)(r.end - r.p));
        }
    }
    if (lep_buf_append(b, "", 1) != 0)
        return;
    c->trace(c->trace_ctx, c, sent, (const char *)b->data);
}

int
lepi_write_perf(lep_conn_t *c, uint16_t ch, const lep_performative_t *p, lep_bytes_t payload)
{
    lep_buf_t *w = &c->wbuf;
    size_t mark;
    int rc = lep_frame_begin(w, LEP_FRAME_AMQP, ch, &mark);
    if (rc != 0)
        return rc;
    lep_encoder_t e;
    lep_encoder_init(&e, w);
    lep_performative_encode(&e, p);
    rc = lep_encoder_finish(&e);
    if (rc == 0 && payload.len)
        rc = lep_buf_append(w, payload.ptr, payload.len);
    if (rc != 0) {
        w->len = mark;
        return rc;
    }
    /* Performatives other than transfers are never split; a peer that
     * announced a max-frame-size too small for an attach gets it whole
     * rather than a broken link. */
    rc = lep_frame_end(w, mark, UINT32_MAX);
    if (rc != 0)
        return rc;
    if (c->time_known)
        c->last_out = c->now;
    if (c->trace)
        lepi_trace_frame(c, true, ch,
                         LEP_BYTES(w->data + mark + LEP_FRAME_HEADER_SIZE,
                                   w->len - mark - LEP_FRAME_HEADER_SIZE));
    return 0;
}
