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


if __name__ == "__main__":
    # canon.py HEX...: prints the canonical form of each encoded value.
    import sys
    for arg in sys.argv[1:]:
        print(canon_bytes(bytes.fromhex(arg)))
