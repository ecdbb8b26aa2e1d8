/* lepton frames: protocol headers and the AMQP 1.0 frame layer
 * (OASIS AMQP 1.0 part 2, sections 2.2 and 2.3; part 5, section 5.3.2).
 *
 * A connection's byte stream is a protocol header, then frames.  With a
 * security layer it is a header and that layer's frames (SASL) or records
 * (TLS), then the next header:
 *
 *     "AMQP" 3 1 0 0, SASL frames, "AMQP" 0 1 0 0, AMQP frames
 *
 * Parsing is zero-copy: a parsed frame is a set of views into the caller's
 * input, valid as long as that input is.  Nothing here allocates except the
 * lep_buf_t conveniences, which grow the caller's buffer. */
#ifndef LEPTON_FRAME_H
#define LEPTON_FRAME_H

#include <lepton/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Protocol headers: "AMQP" id major minor revision.                  */

#define LEP_PROTO_HEADER_SIZE 8

typedef enum lep_proto_id {
    LEP_PROTO_AMQP = 0,
    LEP_PROTO_TLS = 2,
    LEP_PROTO_SASL = 3,
} lep_proto_id_t;

/* The three headers of AMQP 1.0, as byte strings (8 bytes each; sizeof
 * includes a trailing NUL, so use LEP_PROTO_HEADER_SIZE). */
#define LEP_PROTO_HEADER_AMQP "AMQP\0\1\0\0"
#define LEP_PROTO_HEADER_TLS "AMQP\2\1\0\0"
#define LEP_PROTO_HEADER_SASL "AMQP\3\1\0\0"

typedef struct lep_proto_header {
    uint8_t id;             /* protocol id byte as seen */
    uint8_t major;
    uint8_t minor;
    uint8_t revision;
    uint8_t raw[LEP_PROTO_HEADER_SIZE]; /* the bytes seen (up to 8), for error reports */
    uint8_t nraw;           /* how many of raw are filled */
} lep_proto_header_t;

/* Parses a protocol header at the start of [p, p+len).  Borrows p.
 * Returns the protocol id (LEP_PROTO_AMQP, LEP_PROTO_TLS, LEP_PROTO_SASL;
 * >= 0) for one of the three AMQP 1.0 headers, having consumed exactly
 * LEP_PROTO_HEADER_SIZE bytes;
 * LEP_ERR_INCOMPLETE when fewer than 8 bytes are present and they are the
 * start of a valid header;
 * LEP_ERR_FRAMING for anything else (not "AMQP", unknown id, another
 * version such as AMQP 0-10's "AMQP" 1 1 0 10) -- as soon as the bytes
 * present rule out every valid header, so a peer speaking another
 * protocol is refused without waiting for 8 bytes.  The spec's answer to
 * a bad header is to send our own header and close the socket.
 * *out (may be NULL) always receives the bytes seen (raw, nraw) and, once 8
 * bytes are there, the id and version fields, also on LEP_ERR_FRAMING. */
LEP_EXPORT int lep_proto_header_parse(const uint8_t *p, size_t len,
                                      lep_proto_header_t *out);

/* Writes the 8-byte header for id (version 1.0.0).  Returns 0, or
 * LEP_ERR_INVALID for an id other than the three above. */
LEP_EXPORT int lep_proto_header_write(uint8_t out[LEP_PROTO_HEADER_SIZE],
                                      lep_proto_id_t id);

/* "AMQP", "TLS", "SASL", or NULL for another id. */
LEP_EXPORT const char *lep_proto_name(int id);

/* ------------------------------------------------------------------ */
/* Frames.                                                            */

/* size (4) + doff (1) + type (1) + channel (2). */
#define LEP_FRAME_HEADER_SIZE 8
/* The spec's MIN-MAX-FRAME-SIZE: every peer accepts frames this large,
 * and frames sent before the open exchange completes must not exceed it. */
#define LEP_MIN_MAX_FRAME_SIZE 512
/* The default max-frame-size of open: no limit beyond the 32-bit size. */
#define LEP_MAX_FRAME_SIZE_DEFAULT UINT32_MAX

typedef enum lep_frame_type {
    LEP_FRAME_AMQP = 0,
    LEP_FRAME_SASL = 1,
} lep_frame_type_t;

/* A parsed frame: views into the input given to lep_frame_parse, valid as
 * long as that input is. */
typedef struct lep_frame {
    uint32_t size;     /* whole frame, header included */
    uint8_t doff;      /* data offset in 4-byte words (>= 2) */
    uint8_t type;      /* LEP_FRAME_AMQP, LEP_FRAME_SASL, or another value
                          as seen: the frame layer passes it on, the engine
                          refuses it */
    uint16_t channel;  /* AMQP frames: channel; SASL frames: ignored (0) */
    lep_bytes_t ext;   /* extended header (doff*4 - 8 bytes; usually empty) */
    lep_bytes_t body;  /* performative then payload; len 0 is an empty
                          frame, which keeps the connection alive */
} lep_frame_t;

/* Parses one frame at the start of [p, p+len).  Borrows p; *out holds
 * views into it.
 * Returns 0 and sets *used to the frame size.  Errors:
 *   LEP_ERR_INCOMPLETE  the frame is not all there yet.  *used is set to
 *                       the bytes needed for the whole frame: 8 until the
 *                       header is complete, then the frame size, so the
 *                       caller can size its buffer.
 *   LEP_ERR_FRAME_SIZE  size > max_frame_size (checked as soon as the
 *                       header is there, before waiting for the body);
 *                       the engine closes with amqp:connection:framing-error.
 *   LEP_ERR_FRAMING     size < 8, doff < 2, or doff*4 > size.
 * On error *out is left untouched.  max_frame_size is the limit we
 * announced (LEP_MAX_FRAME_SIZE_DEFAULT for none); used may be NULL. */
LEP_EXPORT int lep_frame_parse(const uint8_t *p, size_t len,
                               uint32_t max_frame_size, lep_frame_t *out,
                               size_t *used);

/* True when the frame has no body: a heartbeat. */
static inline bool lep_frame_is_empty(const lep_frame_t *f)
{
    return f->body.len == 0;
}

/* Writes the 8-byte header of a frame with no extended header and a body
 * of body_len bytes, so the caller can writev header and body without
 * copying the body.  Returns 0, or LEP_ERR_FRAME_SIZE when the frame
 * would not fit the 32-bit size field. */
LEP_EXPORT int lep_frame_header_write(uint8_t out[LEP_FRAME_HEADER_SIZE],
                                      uint8_t type, uint16_t channel,
                                      size_t body_len);

/* Building a frame in place in a lep_buf_t (borrowed):
 *
 *     size_t mark;
 *     lep_frame_begin(buf, LEP_FRAME_AMQP, ch, &mark);
 *     ... encode the performative into buf (lep_encoder_init(&e, buf)),
 *         append the payload ...
 *     rc = lep_frame_end(buf, mark, max_frame_size);
 *
 * begin appends a header with a placeholder size and remembers where;
 * end fills the size in.  Returns 0 or LEP_ERR_NOMEM / LEP_ERR_OVERFLOW
 * (from the buffer).  lep_frame_end returns LEP_ERR_FRAME_SIZE, and
 * truncates buf back to mark (the frame is dropped, earlier content kept),
 * when the frame exceeds max_frame_size. */
LEP_EXPORT int lep_frame_begin(lep_buf_t *buf, uint8_t type, uint16_t channel,
                               size_t *mark);
LEP_EXPORT int lep_frame_end(lep_buf_t *buf, size_t mark,
                             uint32_t max_frame_size);

/* Appends a whole frame: header, the encoded performative, the payload.
 * Either may be empty (both empty: a heartbeat).  Copies both; on error
 * buf is as it was.  Errors as lep_frame_begin / lep_frame_end. */
LEP_EXPORT int lep_frame_append(lep_buf_t *buf, uint8_t type, uint16_t channel,
                                lep_bytes_t performative, lep_bytes_t payload,
                                uint32_t max_frame_size);

/* "amqp", "sasl", or NULL for another type. */
LEP_EXPORT const char *lep_frame_type_name(int type);

#ifdef __cplusplus
}
#endif
#endif
