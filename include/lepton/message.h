/* lepton message: an AMQP 1.0 message with all its sections
 * (OASIS AMQP 1.0 part 3, section 3.2).
 *
 *     header? delivery-annotations? message-annotations? properties?
 *     application-properties? body? footer?
 *
 * where the body is one or more data sections, one or more amqp-sequence
 * sections, or a single amqp-value section.
 *
 * Ownership.  A message owns copies of everything set into it: setters
 * copy their arguments (the caller keeps ownership of what it passes).
 * Getters return views into the message's own storage -- lep_bytes_t and
 * lep_atom_t (whose byte views point into it too) -- valid until the next
 * set, remove, clear, decode or free on the same message.  Passing a view
 * of a message back into a setter of the same message is allowed.
 *
 * Reuse.  lep_message_clear and lep_message_decode keep the storage they
 * have grown, so a message reused for a stream of similar messages makes no
 * allocation once warm: decode copies its input once into that storage and
 * points the fields into the copy.
 *
 * Presence.  Every header and properties field is either absent or
 * present; encoding writes present fields only (a present field is written
 * even when it holds the spec's default).  Getters of absent fields return
 * the spec's default (header) or zero / an empty view (properties). */
#ifndef LEPTON_MESSAGE_H
#define LEPTON_MESSAGE_H

#include <lepton/amqp_types.h>
#include <lepton/codec.h>
#include <lepton/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lep_message lep_message_t;

/* Section descriptor codes (LEP_DESC_HEADER ... LEP_DESC_FOOTER) come from
 * amqp_types.h. */

/* The header and properties fields, for lep_message_has / _unset. */
typedef enum lep_msg_field {
    LEP_MSG_DURABLE = 0,
    LEP_MSG_PRIORITY,
    LEP_MSG_TTL,
    LEP_MSG_FIRST_ACQUIRER,
    LEP_MSG_DELIVERY_COUNT,
    LEP_MSG_MESSAGE_ID,
    LEP_MSG_USER_ID,
    LEP_MSG_TO,
    LEP_MSG_SUBJECT,
    LEP_MSG_REPLY_TO,
    LEP_MSG_CORRELATION_ID,
    LEP_MSG_CONTENT_TYPE,
    LEP_MSG_CONTENT_ENCODING,
    LEP_MSG_ABSOLUTE_EXPIRY_TIME,
    LEP_MSG_CREATION_TIME,
    LEP_MSG_GROUP_ID,
    LEP_MSG_GROUP_SEQUENCE,
    LEP_MSG_REPLY_TO_GROUP_ID,
    LEP_MSG_FIELD_COUNT_
} lep_msg_field_t;

/* The three annotation maps (keys symbol or ulong, values of any type). */
typedef enum lep_msg_annotations {
    LEP_MSG_DELIVERY_ANNOTATIONS = 0,
    LEP_MSG_MESSAGE_ANNOTATIONS,
    LEP_MSG_FOOTER,
} lep_msg_annotations_t;

typedef enum lep_body_kind {
    LEP_BODY_NONE = 0,   /* no body section */
    LEP_BODY_DATA,       /* one or more data sections (binary) */
    LEP_BODY_SEQUENCE,   /* one or more amqp-sequence sections (lists) */
    LEP_BODY_VALUE,      /* one amqp-value section (any value) */
} lep_body_kind_t;

/* ------------------------------------------------------------------ */
/* Life cycle.                                                        */

/* Creates an empty message.  Returns 0 or LEP_ERR_NOMEM (*out NULL). */
LEP_EXPORT int lep_message_new(lep_message_t **out);
/* Frees the message and everything it owns.  NULL is allowed. */
LEP_EXPORT void lep_message_free(lep_message_t *m);
/* Empties the message for reuse, keeping its storage. */
LEP_EXPORT void lep_message_clear(lep_message_t *m);

/* Appends the encoded message (its sections, in spec order; absent
 * sections are left out) to out.  Errors: LEP_ERR_NOMEM, LEP_ERR_OVERFLOW
 * (out is fixed and too small; out->len is then unchanged), LEP_ERR_LIMIT
 * (a section would exceed 4 GiB). */
LEP_EXPORT int lep_message_encode(const lep_message_t *m, lep_buf_t *out);
/* Replaces the message's content with the message encoded in [p, p+len)
 * (borrowed for the call only: the message copies what it keeps; it may
 * be a view into this same message, e.g. a data section holding an
 * encoded message).
 * The sections must come in spec order, each at most once, body sections
 * of one kind.  Errors: LEP_ERR_INCOMPLETE (input ends inside a section),
 * LEP_ERR_DECODE (malformed encoding, unknown section, sections out of
 * order or repeated), LEP_ERR_TYPE (a section or field of the wrong type),
 * LEP_ERR_UTF8, LEP_ERR_SYMBOL, LEP_ERR_LIMIT, LEP_ERR_NOMEM.  On error the
 * message is left empty. */
LEP_EXPORT int lep_message_decode(lep_message_t *m, const void *p, size_t len);

/* ------------------------------------------------------------------ */
/* Presence of header and properties fields.                          */

LEP_EXPORT bool lep_message_has(const lep_message_t *m, lep_msg_field_t f);
/* Makes a field absent.  Unknown f is ignored. */
LEP_EXPORT void lep_message_unset(lep_message_t *m, lep_msg_field_t f);

/* ------------------------------------------------------------------ */
/* Header.  Setters make the field present.                           */

LEP_EXPORT bool lep_message_durable(const lep_message_t *m);          /* default false */
LEP_EXPORT void lep_message_set_durable(lep_message_t *m, bool v);
LEP_EXPORT uint8_t lep_message_priority(const lep_message_t *m);      /* default 4 */
LEP_EXPORT void lep_message_set_priority(lep_message_t *m, uint8_t v);
LEP_EXPORT uint32_t lep_message_ttl(const lep_message_t *m);          /* ms; 0 when absent */
LEP_EXPORT void lep_message_set_ttl(lep_message_t *m, uint32_t ms);
LEP_EXPORT bool lep_message_first_acquirer(const lep_message_t *m);   /* default false */
LEP_EXPORT void lep_message_set_first_acquirer(lep_message_t *m, bool v);
LEP_EXPORT uint32_t lep_message_delivery_count(const lep_message_t *m); /* default 0 */
LEP_EXPORT void lep_message_set_delivery_count(lep_message_t *m, uint32_t v);

/* ------------------------------------------------------------------ */
/* Properties.                                                        */

/* message-id and correlation-id: a ulong, uuid, binary or string atom.
 * The getters return NULL when absent, else a view (see top of file).
 * The setters copy the atom's value (type and u; for binary and string the
 * bytes u.bytes points to); a NULL id or a LEP_TYPE_NULL atom makes the
 * field absent.  Errors: LEP_ERR_TYPE (other types), LEP_ERR_UTF8,
 * LEP_ERR_NOMEM. */
LEP_EXPORT const lep_atom_t *lep_message_id(const lep_message_t *m);
LEP_EXPORT int lep_message_set_id(lep_message_t *m, const lep_atom_t *id);
LEP_EXPORT const lep_atom_t *lep_message_correlation_id(const lep_message_t *m);
LEP_EXPORT int lep_message_set_correlation_id(lep_message_t *m, const lep_atom_t *id);

/* Byte-string fields.  Getters return a view ({NULL, 0} when absent).
 * Setters copy v; v.ptr == NULL makes the field absent (an empty string is
 * {"", 0}).  user-id is binary; content-type and content-encoding are
 * symbols (LEP_ERR_SYMBOL unless 7-bit ASCII); the others are strings
 * (LEP_ERR_UTF8 unless valid UTF-8).  Errors also LEP_ERR_NOMEM,
 * LEP_ERR_LIMIT (longer than 4 GiB); on error the field is unchanged. */
LEP_EXPORT lep_bytes_t lep_message_user_id(const lep_message_t *m);
LEP_EXPORT int lep_message_set_user_id(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_to(const lep_message_t *m);
LEP_EXPORT int lep_message_set_to(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_subject(const lep_message_t *m);
LEP_EXPORT int lep_message_set_subject(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_reply_to(const lep_message_t *m);
LEP_EXPORT int lep_message_set_reply_to(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_content_type(const lep_message_t *m);
LEP_EXPORT int lep_message_set_content_type(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_content_encoding(const lep_message_t *m);
LEP_EXPORT int lep_message_set_content_encoding(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_group_id(const lep_message_t *m);
LEP_EXPORT int lep_message_set_group_id(lep_message_t *m, lep_bytes_t v);
LEP_EXPORT lep_bytes_t lep_message_reply_to_group_id(const lep_message_t *m);
LEP_EXPORT int lep_message_set_reply_to_group_id(lep_message_t *m, lep_bytes_t v);

/* Timestamps are milliseconds since the Unix epoch; 0 when absent. */
LEP_EXPORT int64_t lep_message_absolute_expiry_time(const lep_message_t *m);
LEP_EXPORT void lep_message_set_absolute_expiry_time(lep_message_t *m, int64_t ms);
LEP_EXPORT int64_t lep_message_creation_time(const lep_message_t *m);
LEP_EXPORT void lep_message_set_creation_time(lep_message_t *m, int64_t ms);
LEP_EXPORT uint32_t lep_message_group_sequence(const lep_message_t *m); /* 0 when absent */
LEP_EXPORT void lep_message_set_group_sequence(lep_message_t *m, uint32_t v);

/* ------------------------------------------------------------------ */
/* Application properties: string keys, simple values.                */

/* Sets key (valid UTF-8) to a copy of value, replacing an existing entry
 * in place or appending a new one.  value is read as for lep_encode_atom
 * (type and u); simple types only: null, bool, the integer, floating and
 * decimal types, char, timestamp, uuid, binary, string, symbol.
 * Errors: LEP_ERR_TYPE (list, map, array, described), LEP_ERR_UTF8,
 * LEP_ERR_SYMBOL, LEP_ERR_NOMEM, LEP_ERR_INVALID (value NULL, a char
 * that is not a Unicode scalar value). */
LEP_EXPORT int lep_message_set_property(lep_message_t *m, lep_bytes_t key,
                                        const lep_atom_t *value);
/* The value for key (a view), or NULL when there is none.  A decoded map
 * with repeated keys (which the spec forbids) yields the first. */
LEP_EXPORT const lep_atom_t *lep_message_property(const lep_message_t *m, lep_bytes_t key);
/* Removes key's entry; the entries after it move down one index.
 * Returns 0 or LEP_ERR_NOT_FOUND. */
LEP_EXPORT int lep_message_remove_property(lep_message_t *m, lep_bytes_t key);
LEP_EXPORT size_t lep_message_property_count(const lep_message_t *m);
/* Entry i in map order (0 <= i < count): *key and *value receive views.
 * Returns 0 or LEP_ERR_NOT_FOUND (i out of range).  Either out may be NULL.
 * Decoded values are what the peer sent; peers that put compound values in
 * application-properties are tolerated: such values come with their
 * encoding in value->raw. */
LEP_EXPORT int lep_message_property_at(const lep_message_t *m, size_t i,
                                       lep_bytes_t *key, const lep_atom_t **value);

/* ------------------------------------------------------------------ */
/* Delivery annotations, message annotations, footer.                 */

/* Keys are symbol or ulong atoms (LEP_ERR_TYPE otherwise).  Values may be
 * of any type: scalars are copied by value (as lep_encode_atom reads
 * them); list, map, array and described values are copied from value->raw,
 * which must hold exactly one well-formed encoded value of that type
 * (LEP_ERR_INVALID when raw is missing, is an array element's or holds
 * another type; a decode error when it is malformed).  Setting an
 * existing key replaces its value in place.  Errors also LEP_ERR_UTF8,
 * LEP_ERR_SYMBOL, LEP_ERR_NOMEM, LEP_ERR_INVALID (NULL key or value,
 * unknown which). */
LEP_EXPORT int lep_message_set_annotation(lep_message_t *m, lep_msg_annotations_t which,
                                          const lep_atom_t *key, const lep_atom_t *value);
/* Convenience: a symbol key given as bytes. */
LEP_EXPORT int lep_message_set_annotation_sym(lep_message_t *m, lep_msg_annotations_t which,
                                              lep_bytes_t key, const lep_atom_t *value);
/* The value for key (a view), or NULL when there is none. */
LEP_EXPORT const lep_atom_t *lep_message_annotation(const lep_message_t *m,
                                                    lep_msg_annotations_t which,
                                                    const lep_atom_t *key);
LEP_EXPORT const lep_atom_t *lep_message_annotation_sym(const lep_message_t *m,
                                                        lep_msg_annotations_t which,
                                                        lep_bytes_t key);
/* Returns 0 or LEP_ERR_NOT_FOUND. */
LEP_EXPORT int lep_message_remove_annotation(lep_message_t *m, lep_msg_annotations_t which,
                                             const lep_atom_t *key);
LEP_EXPORT size_t lep_message_annotation_count(const lep_message_t *m,
                                               lep_msg_annotations_t which);
/* Entry i in map order; either out may be NULL.  0 or LEP_ERR_NOT_FOUND. */
LEP_EXPORT int lep_message_annotation_at(const lep_message_t *m, lep_msg_annotations_t which,
                                         size_t i, const lep_atom_t **key,
                                         const lep_atom_t **value);

/* ------------------------------------------------------------------ */
/* Body.                                                              */

LEP_EXPORT lep_body_kind_t lep_message_body_kind(const lep_message_t *m);
/* Number of body sections (0 for LEP_BODY_NONE, 1 for LEP_BODY_VALUE). */
LEP_EXPORT size_t lep_message_body_count(const lep_message_t *m);
/* Section i as a view: for data the binary payload, for amqp-sequence the
 * encoded list, for amqp-value the encoded value.  {NULL, 0} when i is out
 * of range. */
LEP_EXPORT lep_bytes_t lep_message_body_section(const lep_message_t *m, size_t i);
/* Removes the body (kind becomes LEP_BODY_NONE). */
LEP_EXPORT void lep_message_clear_body(lep_message_t *m);

/* Replaces the body with one data section holding a copy of v. */
LEP_EXPORT int lep_message_set_body_data(lep_message_t *m, lep_bytes_t v);
/* Appends a data section; the body must be LEP_BODY_NONE or LEP_BODY_DATA
 * (LEP_ERR_STATE otherwise). */
LEP_EXPORT int lep_message_add_body_data(lep_message_t *m, lep_bytes_t v);
/* Replaces the body with one amqp-sequence section: a copy of encoded,
 * which must be exactly one encoded list (LEP_ERR_TYPE for another type,
 * LEP_ERR_DECODE / LEP_ERR_INCOMPLETE for a malformed one). */
LEP_EXPORT int lep_message_set_body_sequence_raw(lep_message_t *m, lep_bytes_t encoded);
/* Appends an amqp-sequence section (body must be NONE or SEQUENCE). */
LEP_EXPORT int lep_message_add_body_sequence_raw(lep_message_t *m, lep_bytes_t encoded);
/* Replaces the body with an amqp-value section: a copy of encoded, which
 * must be exactly one well-formed encoded value of any type. */
LEP_EXPORT int lep_message_set_body_value_raw(lep_message_t *m, lep_bytes_t encoded);
/* Replaces the body with an amqp-value holding the string s (UTF-8). */
LEP_EXPORT int lep_message_set_body_string(lep_message_t *m, lep_bytes_t s);
/* Decodes the amqp-value body shallowly into *out (views into the
 * message).  Returns 0, or LEP_ERR_STATE when the body is not an
 * amqp-value. */
LEP_EXPORT int lep_message_body_value(const lep_message_t *m, lep_atom_t *out);
/* Convenience over the above: the amqp-value body as a string view.
 * LEP_ERR_STATE (no amqp-value body) or LEP_ERR_TYPE (not a string). */
LEP_EXPORT int lep_message_body_string(const lep_message_t *m, lep_bytes_t *out);

#ifdef __cplusplus
}
#endif
#endif
