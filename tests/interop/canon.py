"""Canonical typed printed form (docs/print-format.md, "Typed form") of
values decoded by Qpid Proton.

The interop tests compare these strings with what lepton prints with
LEP_PRINT_TYPED, so both sides must follow the document to the byte.  The
walk goes over proton.Data nodes (not over Python objects made from them)
because get_object() loses distinctions the typed form keeps: string bytes,
float bit patterns, NaN payloads, array element types.

Run with Debian's /usr/bin/python3 (the one that can import proton).
"""

import struct

import cproton
from proton import Data

# Element type names inside array<...>: the same tags the scalars carry.
TYPE_NAMES = {
    Data.NULL: "null",
    Data.BOOL: "boolean",  # lep_type_name(): array<boolean>, but scalars print bool:
    Data.UBYTE: "ubyte",
    Data.USHORT: "ushort",
    Data.UINT: "uint",
    Data.ULONG: "ulong",
    Data.BYTE: "byte",
    Data.SHORT: "short",
    Data.INT: "int",
    Data.LONG: "long",
    Data.FLOAT: "float",
    Data.DOUBLE: "double",
    Data.DECIMAL32: "decimal32",
    Data.DECIMAL64: "decimal64",
    Data.DECIMAL128: "decimal128",
    Data.CHAR: "char",
    Data.TIMESTAMP: "timestamp",
    Data.UUID: "uuid",
    Data.BINARY: "binary",
    Data.STRING: "string",
    Data.SYMBOL: "symbol",
    Data.LIST: "list",
    Data.MAP: "map",
    Data.ARRAY: "array",
    Data.DESCRIBED: "described",
}


def escape(raw):
    """Quoted bytes: printable ASCII as is, '"' and '\\' backslashed,
    everything else as \\xHH (lower case)."""
    out = ['"']
    for b in raw:
        if b == 0x22:
            out.append('\\"')
        elif b == 0x5C:
            out.append('\\\\')
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append('\\x%02x' % b)
    out.append('"')
    return ''.join(out)


def _children(data, n):
    """Canonical forms of the next n nodes inside the entered node."""
    items = []
    for _ in range(n):
        if not data.next():
            raise ValueError("proton reports fewer children than its count")
        items.append(canon_node(data))
    return items


def canon_node(data):
    """Canonical typed form of the current node of a proton.Data."""
    t = data.type()
    raw = data._data
    if t == Data.NULL:
        return "null"
    if t == Data.BOOL:
        return "bool:true" if data.get_bool() else "bool:false"
    if t in (Data.UBYTE, Data.USHORT, Data.UINT, Data.ULONG, Data.BYTE,
             Data.SHORT, Data.INT, Data.LONG, Data.TIMESTAMP):
        getter = {
            Data.UBYTE: data.get_ubyte, Data.USHORT: data.get_ushort,
            Data.UINT: data.get_uint, Data.ULONG: data.get_ulong,
            Data.BYTE: data.get_byte, Data.SHORT: data.get_short,
            Data.INT: data.get_int, Data.LONG: data.get_long,
            Data.TIMESTAMP: data.get_timestamp,
        }[t]
        return "%s:%d" % (TYPE_NAMES[t], int(getter()))
    if t == Data.FLOAT:
        # Proton hands the C float over as a Python double; narrowing it
        # back gives the original bits (quiet NaNs keep their payload).
        bits = struct.unpack(">I", struct.pack(">f", data.get_float()))[0]
        return "float:0x%08x" % bits
    if t == Data.DOUBLE:
        bits = struct.unpack(">Q", struct.pack(">d", data.get_double()))[0]
        return "double:0x%016x" % bits
    if t == Data.DECIMAL32:
        return "decimal32:0x%08x" % (int(data.get_decimal32()) & 0xFFFFFFFF)
    if t == Data.DECIMAL64:
        return "decimal64:0x%016x" % (int(data.get_decimal64()) & 0xFFFFFFFFFFFFFFFF)
    if t == Data.DECIMAL128:
        return "decimal128:0x" + bytes(data.get_decimal128()).hex()
    if t == Data.CHAR:
        return "char:U+%04X" % ord(data.get_char())
    if t == Data.UUID:
        return "uuid:" + str(data.get_uuid())
    if t == Data.BINARY:
        return "binary:" + escape(cproton.pn_data_get_binary(raw))
    if t == Data.STRING:
        return "string:" + escape(cproton.pn_data_get_string(raw))
    if t == Data.SYMBOL:
        return "symbol:" + escape(cproton.pn_data_get_symbol(raw))
    if t == Data.LIST:
        n = data.get_list()
        data.enter()
        items = _children(data, n)
        data.exit()
        return "list[" + ", ".join(items) + "]"
    if t == Data.MAP:
        n = data.get_map()
        data.enter()
        items = _children(data, n)
        data.exit()
        pairs = ["%s=%s" % (items[i], items[i + 1]) for i in range(0, n - 1, 2)]
        return "map{" + ", ".join(pairs) + "}"
    if t == Data.ARRAY:
        n, described, etype = data.get_array()
        data.enter()
        if described:
            if not data.next():
                raise ValueError("described array without descriptor")
            desc = canon_node(data)
            items = ["described(%s, %s)" % (desc, e) for e in _children(data, n)]
            name = "described"
        else:
            items = _children(data, n)
            name = TYPE_NAMES.get(etype, "?")
        data.exit()
        return "array<%s>[%s]" % (name, ", ".join(items))
    if t == Data.DESCRIBED:
        data.enter()
        parts = _children(data, 2)
        data.exit()
        return "described(%s, %s)" % (parts[0], parts[1])
    raise ValueError("unknown proton type %r" % (t,))


def canon_data(data):
    """Canonical form of the first top-level value of a proton.Data
    (rewinds it first).  None when it holds no value."""
    data.rewind()
    if not data.next():
        return None
    return canon_node(data)


def canon_bytes(encoded):
    """Decodes one encoded AMQP value with Proton and returns its
    canonical form.  Raises proton.DataException when Proton refuses the
    bytes, ValueError when there are bytes after the value."""
    data = Data()
    used = data.decode(encoded)
    if used != len(encoded):
        raise ValueError("%d trailing bytes after the value" % (len(encoded) - used))
    return canon_data(data)


def canon_object(obj):
    """Canonical form of a Python object as Proton would encode it
    (proton.Data.put_object)."""
    data = Data()
    data.put_object(obj)
    return canon_data(data)


# ---------------------------------------------------------------------
# Messages.
#
# One line of tab-separated name=value fields, in this order.  Values are
# typed forms; absent fields print null.  Where Proton cannot tell a field
# that is absent from one holding its default, both sides print the
# effective value:
#   - header fields print their value or the spec default (durable false,
#     priority 4, ttl 0, first-acquirer false, delivery-count 0);
#   - group-sequence prints uint:0 when absent;
#   - timestamps equal to 0, empty user-ids and empty annotation or
#     property maps print null.
# body is "none", "value:<typed>", "data:<binary>, <binary>..." or
# "sequence:<list>, <list>...".  Proton 0.37 has no footer support, so the
# footer is read from the raw sections here (footer=null when absent).

MSG_FIELDS = (
    "durable", "priority", "ttl", "first-acquirer", "delivery-count",
    "message-id", "user-id", "to", "subject", "reply-to", "correlation-id",
    "content-type", "content-encoding", "absolute-expiry-time",
    "creation-time", "group-id", "group-sequence", "reply-to-group-id",
    "delivery-annotations", "message-annotations", "application-properties",
    "body", "footer",
)

SECTION_CODES = {
    "amqp:header:list": 0x70, "amqp:delivery-annotations:map": 0x71,
    "amqp:message-annotations:map": 0x72, "amqp:properties:list": 0x73,
    "amqp:application-properties:map": 0x74, "amqp:data:binary": 0x75,
    "amqp:amqp-sequence:list": 0x76, "amqp:amqp-value:*": 0x77,
    "amqp:footer:map": 0x78,
}


def split_sections(encoded):
    """[(descriptor code, section bytes, canonical form of the section's
    value)] for an encoded message, read with proton.Data."""
    out = []
    off = 0
    while off < len(encoded):
        data = Data()
        n = data.decode(encoded[off:])
        if n <= 0:
            raise ValueError("proton read no section at offset %d" % off)
        data.rewind()
        data.next()
        if data.type() != Data.DESCRIBED:
            raise ValueError("section at offset %d is not described" % off)
        data.enter()
        data.next()
        if data.type() == Data.ULONG:
            code = int(data.get_ulong())
        elif data.type() == Data.SYMBOL:
            code = SECTION_CODES.get(str(data.get_symbol()), -1)
        else:
            code = -1
        data.next()
        value = canon_node(data)
        data.exit()
        out.append((code, encoded[off:off + n], value))
        off += n
    return out


def _opt_bytes(kind, raw):
    return "null" if raw is None else "%s:%s" % (kind, escape(raw))


def _opt_str(kind, s):
    if s is None:
        return "null"
    return "%s:%s" % (kind, escape(s.encode("utf-8") if isinstance(s, str) else s))


def _msg_id(v):
    import uuid as _uuid
    if v is None:
        return "null"
    if isinstance(v, _uuid.UUID):
        return "uuid:" + str(v)
    if isinstance(v, bytes):
        return "binary:" + escape(v)
    if isinstance(v, str):
        return "string:" + escape(v.encode("utf-8"))
    if isinstance(v, int):
        return "ulong:%d" % v
    raise ValueError("unexpected message id %r" % (v,))


def _map_or_null(pn_data):
    data = Data(pn_data)
    c = canon_data(data)
    return "null" if c is None or c == "map{}" else c


def _timestamp(ms):
    return "null" if not ms else "timestamp:%d" % ms


def canon_message_fields(encoded):
    """The canonical fields of an encoded message as an ordered list of
    (name, value), decoded by Proton's pn_message_decode."""
    from proton import Message
    sections = split_sections(encoded)
    footer = "null"
    if sections and sections[-1][0] == 0x78:
        footer = sections[-1][2]
        if footer == "map{}":
            footer = "null"
        sections = sections[:-1]
    rest = b"".join(s[1] for s in sections)
    body_sections = [s for s in sections if s[0] in (0x75, 0x76, 0x77)]

    msg = Message()
    if rest:
        # (pn_message_decode asserts on empty input: a message with no
        # sections is simply an empty message.)
        msg.decode(rest)
    pm = msg._msg
    f = {}
    f["durable"] = "bool:true" if cproton.pn_message_is_durable(pm) else "bool:false"
    f["priority"] = "ubyte:%d" % cproton.pn_message_get_priority(pm)
    f["ttl"] = "uint:%d" % cproton.pn_message_get_ttl(pm)
    f["first-acquirer"] = ("bool:true" if cproton.pn_message_is_first_acquirer(pm)
                           else "bool:false")
    f["delivery-count"] = "uint:%d" % cproton.pn_message_get_delivery_count(pm)
    f["message-id"] = _msg_id(msg.id)
    uid = cproton.pn_message_get_user_id(pm)
    f["user-id"] = "null" if not uid else "binary:" + escape(uid)
    f["to"] = _opt_str("string", cproton.pn_message_get_address(pm))
    f["subject"] = _opt_str("string", cproton.pn_message_get_subject(pm))
    f["reply-to"] = _opt_str("string", cproton.pn_message_get_reply_to(pm))
    f["correlation-id"] = _msg_id(msg.correlation_id)
    f["content-type"] = _opt_str("symbol", cproton.pn_message_get_content_type(pm))
    f["content-encoding"] = _opt_str("symbol", cproton.pn_message_get_content_encoding(pm))
    f["absolute-expiry-time"] = _timestamp(cproton.pn_message_get_expiry_time(pm))
    f["creation-time"] = _timestamp(cproton.pn_message_get_creation_time(pm))
    f["group-id"] = _opt_str("string", cproton.pn_message_get_group_id(pm))
    f["group-sequence"] = "uint:%d" % (cproton.pn_message_get_group_sequence(pm) & 0xFFFFFFFF)
    f["reply-to-group-id"] = _opt_str("string", cproton.pn_message_get_reply_to_group_id(pm))
    f["delivery-annotations"] = _map_or_null(cproton.pn_message_instructions(pm))
    f["message-annotations"] = _map_or_null(cproton.pn_message_annotations(pm))
    f["application-properties"] = _map_or_null(cproton.pn_message_properties(pm))

    if len(body_sections) > 1:
        # Proton keeps only the last of several body sections: read them
        # one by one (still with Proton's decoder).
        kind = {0x75: "data", 0x76: "sequence"}.get(body_sections[0][0], "?")
        f["body"] = kind + ":" + ", ".join(s[2] for s in body_sections)
    else:
        body = canon_data(Data(cproton.pn_message_body(pm)))
        if body is None and body_sections:
            # Proton reads an amqp-value of null as no body at all.
            f["body"] = "value:" + body_sections[0][2]
        elif body is None:
            f["body"] = "none"
        elif not cproton.pn_message_is_inferred(pm):
            f["body"] = "value:" + body
        elif body.startswith("binary:"):
            f["body"] = "data:" + body
        else:
            f["body"] = "sequence:" + body
    f["footer"] = footer
    return [(k, f[k]) for k in MSG_FIELDS]


def canon_message(encoded):
    """The canonical message line (tab-separated name=value fields)."""
    return "\t".join("%s=%s" % kv for kv in canon_message_fields(encoded))


if __name__ == "__main__":
    # canon.py HEX...: prints the canonical form of each encoded value.
    import sys
    for arg in sys.argv[1:]:
        print(canon_bytes(bytes.fromhex(arg)))
