"""Message half of the codec interop test (called by proton_vectors.py).

  Proton -> lepton: proton.Message objects with every field and each kind
  of body are encoded by Proton (Message.encode), decoded by lepton
  (msg_peer decode); lepton's canonical line must equal canon.py's line
  for Proton's own decode of the same bytes, and lepton's re-encoding,
  decoded by Proton, must give the line again.

  lepton -> Proton: messages built in C (msg_peer build) are decoded by
  Proton; the lines must match, and where Proton can build the same
  message, so must the line of Proton's own encoding of it.
"""

import uuid

from proton import (Array, Data, Described, Message, UNDESCRIBED, byte, char,
                    decimal32, decimal64, float32, int32, short, symbol,
                    timestamp, ubyte, uint, ulong, ushort)

from canon import canon_message, canon_object

UUID1 = uuid.UUID("01234567-89ab-cdef-fedc-ba9876543210")
UNICODE = "h\u00e9llo w\u00f6rld \u2713 \U0001F600"


def msg(body=None, inferred=None, **fields):
    m = Message(body=body)
    for k, v in fields.items():
        setattr(m, k, v)
    if inferred is not None:
        m.inferred = inferred
    return m


def full_message():
    m = msg(body=b"\x00\x01\x02payload\xff", inferred=True)
    m.durable = True
    m.priority = 9
    m.ttl = 60.0
    m.first_acquirer = True
    m.delivery_count = 3
    m.id = ulong(2**40)
    m.user_id = b"guest\x00\xff"
    m.address = "queue://orders"
    m.subject = UNICODE
    m.reply_to = "/temp/reply-1"
    m.correlation_id = UUID1
    m.content_type = symbol("application/json")
    m.content_encoding = symbol("gzip")
    m.expiry_time = 1700000060.0
    m.creation_time = 1700000000.123
    m.group_id = "group-a"
    m.group_sequence = 0xFFFFFFFE
    m.reply_to_group_id = "group-b"
    m.instructions = {symbol("x-opt-d"): int32(-7), ulong(42): "numeric key"}
    m.annotations = {symbol("x-opt-sym"): symbol("amqp:sym"),
                     symbol("x-opt-list"): [uint(0), True, ""],
                     symbol("x-opt-map"): {symbol("k"): None},
                     symbol("x-opt-bool"): True}
    m.properties = {"s": "text", "i": int32(-100000), "l": -2**63, "ub": ubyte(255),
                    "us": ushort(65535), "ui": uint(0), "ul": ulong(2**64 - 1),
                    "b": byte(-1), "sh": short(-2), "d": 2.5, "f": float32(-0.5),
                    "bo": False, "u": UUID1, "bin": b"\x00\x01", "sy": symbol("sym"),
                    "c": char("\U0001F600"), "ts": timestamp(1700000000000), "n": None,
                    "dec": decimal64(0x2234000000000007), UNICODE: "unicode key"}
    return m


def proton_messages():
    """(name, proton.Message) sent from Proton to lepton."""
    v = [
        ("empty", Message()),
        ("full", full_message()),
        ("body_string", msg(body="hello")),
        ("body_unicode_long", msg(body=UNICODE * 30)),
        ("body_data", msg(body=b"\x00" * 300 + bytes(range(256)), inferred=True)),
        ("body_data_empty", msg(body=b"", inferred=True)),
        ("body_value_binary", msg(body=b"\x00\x01\x02")),
        ("body_list", msg(body=[uint(1), "two", [None], {symbol("k"): int32(-1)}])),
        ("body_map", msg(body={"a": 5, symbol("b"): UUID1, ulong(3): [1.5]})),
        ("body_sequence", msg(body=[True, "hi"], inferred=True)),
        ("body_sequence_empty", msg(body=[], inferred=True)),
        ("body_int", msg(body=int32(-5))),
        ("body_uuid", msg(body=UUID1)),
        ("body_described", msg(body=Described(symbol("x:y"), "v"))),
        ("body_array", msg(body=Array(UNDESCRIBED, Data.SYMBOL, symbol("a"), symbol("b")))),
        ("id_uuid", msg(body="", id=UUID1, correlation_id=b"\x00\xffid")),
        ("id_binary", msg(id=b"\x01\x02\x03", correlation_id="corr-1")),
        ("id_string", msg(id="ID:proton-1:0:1", correlation_id=ulong(0))),
        ("id_ulong_max", msg(id=ulong(2**64 - 1), correlation_id=UUID1)),
        ("header_only", msg(durable=True, priority=0, ttl=0.001, delivery_count=2**32 - 1)),
        ("priority_max", msg(priority=255, first_acquirer=True)),
        ("long_strings", msg(body=b"x", inferred=True, address="a" * 600, subject="s" * 256,
                             reply_to="r" * 255, group_id="g" * 300,
                             reply_to_group_id=UNICODE * 20,
                             content_type=symbol("c" * 300))),
        ("annotations_only", msg(annotations={symbol("x-opt-jms-type"): "t",
                                              ulong(1): Described(ulong(0x24), [])},
                                 instructions={symbol("x-opt-seq"): ulong(5)})),
        ("properties_many", msg(body="p", properties={"k%03d" % i: int32(i) for i in range(300)})),
        ("timestamps_negative", msg(expiry_time=-1.0, creation_time=0.001)),
    ]
    return v


def footer_bytes():
    d = Data()
    d.put_object(Described(ulong(0x78), {symbol("x-opt-hmac"): b"\xde\xad\xbe\xef",
                                         ulong(7): uint(7)}))
    return d.encode()


def section(code, value):
    d = Data()
    d.put_object(Described(ulong(code), value))
    return d.encode()


def raw_messages():
    """(name, bytes[, what Proton reads instead]): encodings Proton's
    Message.encode never writes."""
    hello = msg(body="with footer").encode()
    return [
        # A footer after the body (Proton 0.37 cannot write one).
        ("footer", hello + footer_bytes()),
        # Several data / amqp-sequence sections: a body Proton would read
        # only the last of.
        ("multi_data", section(0x75, b"one") + section(0x75, b"") + section(0x75, b"three")),
        ("multi_sequence", section(0x76, []) + section(0x76, [uint(0), ulong(0)])),
        # Sections named by symbolic descriptors (Proton 0.37 does not know
        # them: its side reads the same sections with numeric ones).
        ("symbolic_descriptors",
         Data_encode(Described(symbol("amqp:header:list"), [True]))
         + Data_encode(Described(symbol("amqp:properties:list"), [ulong(9), None, "to"]))
         + Data_encode(Described(symbol("amqp:amqp-value:*"), "v")),
         section(0x70, [True]) + section(0x73, [ulong(9), None, "to"]) + section(0x77, "v")),
        # Only a body, no header or properties.
        ("body_only", section(0x77, symbol("just-a-symbol"))),
        # Empty header and properties lists in their compact forms.
        ("list0_sections", bytes.fromhex("005370" "45" "005373" "45" "005377" "a100")),
        # Properties with trailing nulls, header fields in wide forms.
        ("wide_forms", bytes.fromhex("005370d000000013000000055601500770000000054270000000" "01")
         + bytes.fromhex("005373c0050440404040")),
    ]


def Data_encode(obj):
    d = Data()
    d.put_object(obj)
    return d.encode()


def proton_canon(hexstr):
    try:
        return canon_message(bytes.fromhex(hexstr))
    except Exception as exc:  # a refusal is a result to compare
        return "proton error: %s: %s" % (type(exc).__name__, exc)


def diff(a, b):
    """The fields that differ between two canonical lines."""
    fa, fb = a.split("\t"), b.split("\t")
    out = [x for x in fa if x not in fb]
    outb = [x for x in fb if x not in fa]
    return ["lepton: " + x[:300] for x in out] + ["proton: " + x[:300] for x in outb]


def test_proton_to_lepton(peer, res, run_peer):
    vectors = [(n, m.encode(), None) for n, m in proton_messages()]
    for raw in raw_messages():
        vectors.append((raw[0], raw[1], raw[2] if len(raw) > 2 else None))
    out = run_peer(peer, "decode", [b.hex() for _, b, _ in vectors])
    if not res.check(len(out) == len(vectors), "msg decode: %d answers for %d vectors"
                     % (len(out), len(vectors))):
        return
    for (name, enc, proton_enc), line in zip(vectors, out):
        want = proton_canon((proton_enc or enc).hex())
        fields = line.split("\t")
        if fields[0] != "ok":
            res.check(False, "message proton->lepton %s: lepton refused %s"
                      % (name, enc.hex()[:160]), "lepton: " + "\t".join(fields[1:]),
                      "proton: " + want[:300])
            continue
        got, reenc = "\t".join(fields[1:-1]), fields[-1]
        res.check(got == want, "message proton->lepton %s: %s" % (name, enc.hex()[:160]),
                  *diff(got, want))
        back = proton_canon(reenc)
        res.check(back == want, "message lepton->proton re-encoding of %s: %s"
                  % (name, reenc[:160]), *diff(back, want))


def expected_built():
    """What msg_peer build makes, built here with Proton where it can."""
    big = bytes((i * 31) & 0xFF for i in range(70000))
    return {
        "full": full_message(),
        "minimal_body": msg(body="hello"),
        "id_uuid": msg(body="", id=UUID1, correlation_id=b"\x00\xffid"),
        "id_binary": msg(id=b"\x01\x02\x03", correlation_id="corr-1"),
        "id_string": msg(id="ID:lepton-1:0:1", correlation_id=ulong(0)),
        "header_defaults": msg(body=b"", inferred=True),
        "body_list": msg(body=[uint(1), "two", [None], {symbol("k"): int32(-1)}]),
        "body_map": msg(body={"a": 5, symbol("b"): uuid.UUID(bytes=bytes(range(16)))}),
        "body_sequence": msg(body=[True, "hi"], inferred=True),
        "body_value_binary": msg(body=b"\x00\x01\x02"),
        "body_value_described": msg(body=Described(symbol("x:y"), "v")),
        "body_big": msg(body=big, inferred=True,
                        address="".join(chr(97 + i % 26) for i in range(599))),
        # Proton cannot build these: only its decode is compared.
        "body_value_null": None,
        "multi_data": None,
        "multi_sequence": None,
        "footer": None,
    }


def test_lepton_built(peer, res, run_peer):
    expected = expected_built()
    seen = set()
    for line in run_peer(peer, "build"):
        fields = line.split("\t")
        name = fields[0]
        seen.add(name)
        if fields[1] == "err":
            res.check(False, "lepton message build %s: %s" % (name, "\t".join(fields[2:])))
            continue
        got, hexstr = "\t".join(fields[1:-1]), fields[-1]
        back = proton_canon(hexstr)
        res.check(back == got, "message lepton->proton %s: %s" % (name, hexstr[:160]),
                  *diff(got, back))
        if name not in expected:
            res.check(False, "lepton message %s: no expectation in msg_vectors.py" % name)
        elif expected[name] is not None:
            want = canon_message(expected[name].encode())
            res.check(got == want, "lepton message %s is not the intended message" % name,
                      *diff(got, want))
    for name in sorted(set(expected) - seen):
        res.check(False, "msg_peer build did not produce %s" % name)


def run(peer, res, run_peer):
    test_proton_to_lepton(peer, res, run_peer)
    test_lepton_built(peer, res, run_peer)


# Keep canon_object importable from here for ad-hoc checks.
__all__ = ["run", "proton_messages", "raw_messages", "canon_object"]
